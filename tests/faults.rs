//! Faults and the token cache, through the compiled component: each case asserts the status,
//! the body and the exact number of upstream attempts.

mod common;

use common::*;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenant_bridge_testkit::http::{FakeServer, Fault, Recorded, Reply};

const SECRET_A: &str = "/api/GetSecretSameTenant?key=TEST-SECRET-001";
const SECRET_B: &str = "/api/GetSecretCrossTenant?key=TEST-SECRET-001";

/// Fast backoff so retries take milliseconds.
fn fast() -> WorldBuilder {
    World::builder().var("retry_base_ms", Some("10"))
}

fn status_fault(status: u16) -> Fault {
    Fault::Status {
        status,
        headers: vec![],
        body: String::new(),
    }
}

#[test]
fn imds_503_twice_then_ok() {
    let w = fast().build();
    w.imds.push_fault(status_fault(503));
    w.imds.push_fault(status_fault(503));
    let r = w.get(SECRET_A);
    assert_eq!((r.status, r.text().as_str()), (200, "TenantA"));
    assert_eq!(w.imds.requests().len(), 3);
}

#[test]
fn imds_410_waits_then_ok() {
    let w = fast().build();
    w.imds.push_fault(status_fault(410));
    let started = Instant::now();
    let r = w.get(SECRET_A);
    assert_eq!((r.status, r.text().as_str()), (200, "TenantA"));
    assert_eq!(w.imds.requests().len(), 2);
    // 410 waits 12.5 × retry_base_ms (125 ms here; 10 s with the default base).
    assert!(started.elapsed() >= Duration::from_millis(125));
}

#[test]
fn key_vault_429_retry_after_is_honoured() {
    let w = fast().build();
    assert_eq!(
        w.get(SECRET_A).status,
        200,
        "warm up: challenge and token cached"
    );
    w.vault_a.clear();
    w.vault_a.push_fault(Fault::retry_after(429, 1));
    let started = Instant::now();
    let r = w.get(SECRET_A);
    assert_eq!((r.status, r.text().as_str()), (200, "TenantA"));
    assert_eq!(w.vault_a.requests().len(), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured"
    );
}

#[test]
fn key_vault_throttling_that_persists_is_503_with_retry_after() {
    let w = fast().build();
    assert_eq!(w.get(SECRET_A).status, 200);
    w.vault_a.clear();
    for _ in 0..10 {
        w.vault_a.push_fault(Fault::json(
            429,
            &serde_json::json!({"error":{"code":"Throttled","message":"Rate limit is exceeded."}}),
        ));
    }
    let r = w.get(SECRET_A);
    assert_eq!((r.status, r.code().as_str()), (503, "upstream-throttled"));
    assert!(r.header("retry-after").is_some());
    assert_eq!(w.vault_a.requests().len(), 5, "the first try and 4 retries");
}

#[test]
fn entra_503_then_ok() {
    let w = fast().build();
    w.entra.push_fault(status_fault(503));
    let r = w.get(&format!(
        "/api/DownloadBlobCrossTenant?container={SEED_CONTAINER}&blob={SEED_BLOB}"
    ));
    assert_eq!((r.status, r.text()), (200, base64(SEED_B)));
    assert_eq!(w.entra.requests().len(), 2);
}

#[test]
fn blob_503_server_busy_then_ok() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let storage = rt().block_on(FakeServer::start(
        Some(shared().pki.rustls_server_config(&["127.0.0.1"])),
        Arc::new(move |_r: &Recorded| {
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                let mut reply = Reply::new(503).header("x-ms-error-code", "ServerBusy").header("content-type", "application/xml");
                reply.body = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>ServerBusy</Code><Message>Operations per second is over the account limit.</Message></Error>".to_vec();
                reply
            } else {
                let mut reply = Reply::new(200).header("x-ms-blob-type", "BlockBlob");
                reply.body = b"busy no more".to_vec();
                reply
            }
        }),
    ));
    let w = fast()
        .var(
            "blob_service_endpoint",
            Some(format!("https://127.0.0.1:{}", storage.port()).as_str()),
        )
        .build();
    let r = w.get("/api/DownloadBlobSameTenant?container=seed&blob=x");
    assert_eq!((r.status, r.text()), (200, base64(b"busy no more")));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn connection_refused_is_retried_then_502() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let w = fast()
        .var(
            "blob_service_endpoint",
            Some(format!("https://127.0.0.1:{port}").as_str()),
        )
        .build();
    let r = w.get("/api/DownloadBlobSameTenant?container=seed&blob=x");
    assert_eq!(
        (r.status, r.code().as_str()),
        (502, "upstream-unreachable"),
        "{}",
        r.text()
    );
    let attempts = w
        .outbound()
        .iter()
        .filter(|o| o.url.contains(&format!(":{port}/")))
        .count();
    assert_eq!(attempts, 5, "the first try and 4 retries");
}

#[test]
fn an_upstream_that_never_answers_is_504_within_the_deadline() {
    let w = fast().var("request_deadline_secs", Some("2")).build();
    assert_eq!(w.get(SECRET_A).status, 200);
    for _ in 0..10 {
        w.vault_a.push_fault(Fault::Hang);
    }
    let started = Instant::now();
    let r = w.get(SECRET_A);
    let took = started.elapsed();
    assert_eq!(
        (r.status, r.code().as_str()),
        (504, "upstream-timeout"),
        "{}",
        r.text()
    );
    assert!(r.detail().contains("request_deadline_secs = 2"));
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(5),
        "took {took:?}"
    );
}

#[test]
fn a_blob_connection_dropped_mid_body_breaks_the_callers_transfer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let acceptor =
        tokio_rustls::TlsAcceptor::from(shared().pki.rustls_server_config(&["127.0.0.1"]));
    let listener = rt()
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt().spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut buf = vec![0u8; 16 * 1024];
                let _ = tls.read(&mut buf).await;
                // Promise 300 000 bytes, send 100 000, then vanish.
                let head = "HTTP/1.1 200 OK\r\nContent-Length: 300000\r\nx-ms-blob-type: BlockBlob\r\n\r\n";
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(&vec![7u8; 100_000]).await;
                let _ = tls.flush().await;
                drop(tls);
            });
        }
    });
    let w = fast()
        .var(
            "blob_service_endpoint",
            Some(format!("https://127.0.0.1:{port}").as_str()),
        )
        .build();
    let url = format!(
        "{}/api/DownloadBlobSameTenant?container=seed&blob=x",
        w.host.base_url()
    );
    let outcome = rt().block_on(async {
        let resp = w
            .client
            .get(&url)
            .header("x-functions-key", KEY)
            .send()
            .await
            .expect("response head");
        let status = resp.status().as_u16();
        let length = resp.content_length();
        (status, length, resp.bytes().await)
    });
    assert_eq!(
        outcome.0, 200,
        "the status was already sent when the body broke"
    );
    assert_eq!(
        outcome.1,
        Some(400_000),
        "Content-Length announces the full base64 length"
    );
    match outcome.2 {
        Err(_) => {}
        Ok(body) => panic!(
            "the caller received a body that ends cleanly ({} bytes)",
            body.len()
        ),
    }
    let log = w.logs();
    assert!(log.contains("\"aborted\""), "{log}");
}

fn cache_key(resource: &str) -> String {
    format!("token|v1|public|mi|{MI_CLIENT_ID}|{resource}")
}

fn edit_cached(w: &World, key: &str, f: impl FnOnce(&mut Value)) {
    let kv = w.host.kv();
    let mut v: Value =
        serde_json::from_slice(&kv.get("default", key).expect("cached token")).unwrap();
    f(&mut v);
    kv.set("default", key, serde_json::to_vec(&v).unwrap());
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn warm_paths_make_exactly_one_upstream_request() {
    let w = World::new();
    let paths = [
        SECRET_A.to_string(),
        SECRET_B.to_string(),
        format!("/api/DownloadBlobSameTenant?container={SEED_CONTAINER}&blob={SEED_BLOB}"),
        format!("/api/DownloadBlobCrossTenant?container={SEED_CONTAINER}&blob={SEED_BLOB}"),
    ];
    for p in &paths {
        assert_eq!(w.get(p).status, 200, "{p}");
    }
    for p in &paths {
        let before = w.outbound().len();
        assert_eq!(w.get(p).status, 200, "{p}");
        assert_eq!(w.outbound().len() - before, 1, "{p}: warm path");
    }
    // The cache holds tokens, never in a log line.
    assert!(w
        .host
        .kv()
        .keys("default")
        .iter()
        .any(|k| k.starts_with("token|")));
    assert!(!w.logs().contains("eyJ"));
}

#[test]
fn tokens_are_refreshed_inside_the_300_s_window() {
    let w = World::new();
    assert_eq!(w.get(SECRET_A).status, 200);
    let key = cache_key(VAULT_RESOURCE);
    // 400 s left: still served from cache.
    edit_cached(&w, &key, |v| v["expires_on"] = (now() + 400).into());
    assert_eq!(w.get(SECRET_A).status, 200);
    assert_eq!(w.imds.token_requests().len(), 1);
    // 299 s left: refreshed.
    edit_cached(&w, &key, |v| v["expires_on"] = (now() + 299).into());
    assert_eq!(w.get(SECRET_A).status, 200);
    assert_eq!(w.imds.token_requests().len(), 2);
}

#[test]
fn a_failed_refresh_keeps_serving_the_still_valid_token() {
    let w = fast().build();
    assert_eq!(w.get(SECRET_A).status, 200);
    let key = cache_key(VAULT_RESOURCE);
    // Past its refresh time (half-life) but far from expiry.
    edit_cached(&w, &key, |v| v["refresh_at"] = (now() - 10).into());
    w.imds.push_fault(Fault::json(
        400,
        &serde_json::json!({"error":"invalid_request","error_description":"Identity not found"}),
    ));
    let r = w.get(SECRET_A);
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "TenantA"),
        "served with the old token"
    );
    assert_eq!(w.imds.requests().len(), 2, "the refresh was attempted");
}

#[test]
fn a_refused_cached_token_is_dropped_and_retried_once() {
    let w = World::new();
    assert_eq!(w.get(SECRET_B).status, 200);
    let key = format!("token|v1|public|{TENANT_B}|{MI_CLIENT_ID}|{APP_ID}|{VAULT_RESOURCE}");
    // A token the vault will refuse (signature does not verify).
    edit_cached(&w, &key, |v| {
        v["access_token"] = "eyJhbGciOiJSUzI1NiJ9.eyJ0aWQiOiJ4In0.c2ln".into()
    });
    let entra_before = w.entra.requests().len();
    let r = w.get(SECRET_B);
    assert_eq!((r.status, r.text().as_str()), (200, "TenantB"));
    assert_eq!(
        w.entra.requests().len(),
        entra_before + 1,
        "one new exchange"
    );
}
