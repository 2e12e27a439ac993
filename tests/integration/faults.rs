//! Faults and the token cache, through the compiled component: each case asserts the status,
//! the body and the exact number of upstream attempts.

use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenant_bridge_testkit::fakes::http::{FakeServer, Fault, Recorded, Reply};
use tenant_bridge_testkit::world::suite::*;
use tenant_bridge_testkit::world::*;

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
fn a_retry_after_past_the_deadline_is_passed_on_capped() {
    let w = fast().build();
    assert_eq!(w.get(SECRET_A).status, 200);
    w.vault_a.clear();
    // An hour: no point waiting within the deadline; the caller hears when to come back,
    // capped at two minutes.
    w.vault_a.push_fault(Fault::Status {
        status: 429,
        headers: vec![
            (
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            ),
            ("retry-after".into(), "3600".into()),
        ],
        body: r#"{"error":{"code":"Throttled","message":"Rate limit is exceeded."}}"#.into(),
    });
    let started = Instant::now();
    let r = w.get(SECRET_A);
    assert_eq!((r.status, r.code().as_str()), (503, "upstream-throttled"));
    assert_eq!(r.header("retry-after").as_deref(), Some("120"));
    assert_eq!(w.vault_a.requests().len(), 1, "no blind wait");
    // Generous for a loaded 2-core machine: a wait would have been 120 s or more.
    assert!(started.elapsed() < Duration::from_secs(60));
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
    // A port bound and never listened on refuses connections, and stays ours meanwhile (a
    // port bound, dropped and named could be someone else's by the time it is called).
    let refusing = tokio::net::TcpSocket::new_v4().unwrap();
    refusing.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = refusing.local_addr().unwrap().port();
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
        // A hung upstream never answers: any end is the deadline's; the bound is generous.
        took >= Duration::from_secs(2) && took < Duration::from_secs(30),
        "took {took:?}"
    );
}

#[test]
fn a_body_that_trickles_past_the_deadline_is_504() {
    // Every byte arrives well within the between-bytes timeout; the whole body would take 60 s.
    let w = fast().var("request_deadline_secs", Some("2")).build();
    assert_eq!(w.get(SECRET_A).status, 200);
    w.vault_a.push_fault(Fault::Trickle {
        status: 200,
        bytes: 200,
        every: Duration::from_millis(300),
    });
    let started = Instant::now();
    let r = w.get(SECRET_A);
    let took = started.elapsed();
    assert_eq!(
        (r.status, r.code().as_str()),
        (504, "upstream-timeout"),
        "{}",
        r.text()
    );
    // Half of the 60 s the whole body would take: generous, and still the deadline's doing.
    assert!(took < Duration::from_secs(30), "took {took:?}");
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
    // The instance writes its line after the caller saw the body break: `logs` waits for it.
    let log = w.logs();
    assert!(log.contains("\"aborted\""), "{log}");
}

/// The cached entry of a vault's token: its credential's key wrapped with the vault origin
/// (the challenge, and so the token, is per vault).
fn vault_entry(w: &World, credential: &str) -> String {
    let keys = w.host.kv().keys("default");
    keys.iter()
        .find(|k| k.starts_with(&format!("tb2|kv|{credential}|")) && !k.contains("|ticket|"))
        .unwrap_or_else(|| panic!("no cache entry for {credential}: {keys:?}"))
        .clone()
}

fn cache_key(w: &World, resource: &str) -> String {
    vault_entry(w, &format!("tb2|mi|public|{MI_CLIENT_ID}|{resource}"))
}

fn edit_cached(w: &World, key: &str, f: impl FnOnce(&mut Value)) {
    let kv = w.host.kv();
    let mut v: Value = serde_json::from_slice(
        &kv.get("default", key)
            .unwrap_or_else(|| panic!("no cached token {key}: {:?}", kv.keys("default"))),
    )
    .unwrap();
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
    // The request log lines so far (a blob's line follows its body, so wait for it).
    let request_lines = |n: usize| -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let lines: Vec<Value> = w
                .log_lines(0)
                .into_iter()
                .filter(|l| l.get("route").is_some())
                .collect();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    for (i, p) in paths.iter().enumerate() {
        let served = paths.len() + i;
        assert_eq!(request_lines(served).len(), served);
        let before = w.outbound().len();
        w.host.kv().reset_ops();
        assert_eq!(w.get(p).status, 200, "{p}");
        assert_eq!(w.outbound().len() - before, 1, "{p}: warm path");
        let ops = w.host.kv().ops();
        assert_eq!(
            (ops.reads, ops.writes),
            (1, 0),
            "{p}: one key-value read, no write"
        );
        let line = request_lines(served + 1).pop().unwrap();
        assert_eq!(
            (line["kv_reads"].as_u64(), line["kv_writes"].as_u64()),
            (Some(1), Some(0)),
            "{line}"
        );
        println!(
            "warm {}: kv reads 1, writes 0, variable lookups {}",
            line["route"], line["variable_lookups"]
        );
    }
    // The cache holds tokens, never in a log line.
    assert!(w
        .host
        .kv()
        .keys("default")
        .iter()
        .any(|k| k.starts_with("tb2|")));
    assert!(!w.logs().contains("eyJ"));
}

#[test]
fn tokens_are_refreshed_inside_the_300_s_window() {
    let w = World::new();
    assert_eq!(w.get(SECRET_A).status, 200);
    let key = cache_key(&w, VAULT_RESOURCE);
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
    let key = cache_key(&w, VAULT_RESOURCE);
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
    let key = vault_entry(
        &w,
        &format!("tb2|fed|public|{TENANT_B}|{MI_CLIENT_ID}|{APP_ID}|{VAULT_RESOURCE}"),
    );
    // A token the vault will refuse (signature does not verify).
    edit_cached(&w, &key, |v| {
        v["token"] = "eyJhbGciOiJSUzI1NiJ9.eyJ0aWQiOiJ4In0.c2ln".into()
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

/// Spin 3.6.3's Redis store reports every compare-and-swap as failed, though an unconflicted
/// one is written (src/edge/platform.rs): the component still takes its leases there. A due token is
/// refreshed, and a dead fetcher's lapsed lease is taken over at once, not after the bounded
/// wait (11 s here).
#[test]
fn leases_work_on_the_redis_store_too() {
    let w = fast().replicated().build();
    assert_eq!(w.get(SECRET_A).status, 200);
    let key = cache_key(&w, VAULT_RESOURCE);
    edit_cached(&w, &key, |v| v["refresh_at"] = (now() - 10).into());
    assert_eq!(w.get(SECRET_A).status, 200);
    assert_eq!(
        w.imds.token_requests().len(),
        2,
        "the due token was refreshed"
    );
    assert_eq!(w.get(SECRET_A).status, 200);
    assert_eq!(w.imds.token_requests().len(), 2, "the new one is cached");

    edit_cached(
        &w,
        &key,
        |v| *v = serde_json::json!({"lease": now() - 1, "owner": "a-fetcher-that-died"}),
    );
    let started = Instant::now();
    let r = w.get(SECRET_A);
    assert_eq!((r.status, r.text().as_str()), (200, "TenantA"));
    // At once: under half of the 11 s bounded wait it would otherwise sit out.
    assert!(
        started.elapsed() < Duration::from_millis(5500),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(w.imds.token_requests().len(), 3);
}

/// The token of the cache entry `key` (what the next warm request will send).
fn cached_token(w: &World, key: &str) -> String {
    let raw = w.host.kv().get("default", key).expect("cache entry");
    let v: Value = serde_json::from_slice(&raw).unwrap();
    v["token"].as_str().unwrap_or_default().to_string()
}

/// GETs `path` on the world's host from the runtime, so several can be in flight at once:
/// status, body and when it finished.
fn spawn_get(w: &World, path: &str) -> tokio::task::JoinHandle<(u16, String, Instant)> {
    let (client, url) = (w.client.clone(), format!("{}{path}", w.host.base_url()));
    rt().spawn(async move {
        let resp = client
            .get(&url)
            .header("x-functions-key", KEY)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .expect("response");
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        (status, body, Instant::now())
    })
}

#[test]
fn a_fetcher_stuck_past_its_lease_holds_the_others_only_until_the_lease_ends() {
    // A lease lasts min(request_deadline_secs, 10 s): with a 30 s deadline the stuck fetcher is
    // still in its request when its lease ends, and gives up (504) 20 s after that. (16 s left
    // 3 s of margin below, which two test suites sharing 2 cores once exceeded: 15.8 s.)
    const LEASE: Duration = Duration::from_secs(10);
    const DEADLINE: Duration = Duration::from_secs(30);
    let w = World::builder()
        .var("request_deadline_secs", Some("30"))
        .build();
    w.imds.push_fault(Fault::Hang);
    let fetcher = spawn_get(&w, SECRET_A);
    // The fetcher holds the lease once its IMDS call is out.
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.imds.requests().is_empty() {
        assert!(Instant::now() < deadline, "the fetcher never called IMDS");
        std::thread::sleep(Duration::from_millis(10));
    }
    let leased = Instant::now();
    let others: Vec<_> = (0..8).map(|_| spawn_get(&w, SECRET_A)).collect();
    for other in others {
        let (status, body, done) = rt().block_on(other).unwrap();
        assert_eq!((status, body.as_str()), (200, "TenantA"));
        // Served once the lease ran out (plus a fetch): long before the stuck fetcher gives up,
        // half way between the two. (Waiters that ignored the lease would each fetch: the IMDS
        // count below.)
        assert!(
            done - leased < LEASE + (DEADLINE - LEASE) / 2,
            "held {:?} by a lease of {LEASE:?}",
            done - leased
        );
    }
    assert_eq!(
        w.imds.requests().len(),
        2,
        "the stuck call and one taking over, not one per waiter"
    );
    let (status, body, _) = rt().block_on(fetcher).unwrap();
    assert_eq!(status, 504, "the stuck fetcher ran out of time: {body}");
    // Giving up did not overwrite the token the others fetched.
    let r = w.get(SECRET_A);
    assert_eq!((r.status, r.text().as_str()), (200, "TenantA"));
    assert_eq!(w.imds.requests().len(), 2, "still cached");
}

#[test]
fn an_expiring_token_is_refreshed_once_while_the_others_are_served_the_old_one() {
    const SLOW: Duration = Duration::from_secs(3);
    let w = World::new();
    assert_eq!(w.get(SECRET_A).status, 200);
    let key = cache_key(&w, VAULT_RESOURCE);
    let old = cached_token(&w, &key);
    // Due for refresh, still usable for an hour.
    edit_cached(&w, &key, |v| v["refresh_at"] = (now() - 10).into());
    w.imds.push_fault(Fault::Delay(SLOW));
    let imds_before = w.imds.token_requests().len();
    w.vault_a.clear();

    let started = Instant::now();
    let requests: Vec<_> = (0..16).map(|_| spawn_get(&w, SECRET_A)).collect();
    let mut took = Vec::new();
    for r in requests {
        let (status, body, done) = rt().block_on(r).unwrap();
        assert_eq!((status, body.as_str()), (200, "TenantA"));
        took.push(done - started);
    }
    assert_eq!(
        w.imds.token_requests().len(),
        imds_before + 1,
        "refreshed exactly once"
    );
    let new = cached_token(&w, &key);
    assert_ne!(new, old, "the entry holds the refreshed token");
    let sent: Vec<String> = w
        .vault_a
        .requests()
        .iter()
        .filter_map(|r| r.bearer().map(str::to_string))
        .collect();
    assert_eq!(sent.len(), 16, "one vault call per request");
    assert_eq!(
        (
            sent.iter().filter(|t| **t == old).count(),
            sent.iter().filter(|t| **t == new).count()
        ),
        (15, 1),
        "the refresher used the new token; everyone else the old one"
    );
    // Nobody waited for the refresh but the refresher.
    took.sort();
    assert!(took[15] >= SLOW, "the refresher waited for IMDS: {took:?}");
    assert!(took[14] < SLOW, "others waited for the refresh: {took:?}");
    // The next request uses the new token without refreshing.
    assert_eq!(w.get(SECRET_A).status, 200);
    assert_eq!(w.imds.token_requests().len(), imds_before + 1);
}

/// Spin 3.6.3 sets no request timeout for WASIp2 components (spin-facts, Limits): a caller that
/// stops reading must not hold its instance. 200 callers ask for a 64 MiB blob and never read;
/// every instance is released once its next chunk has waited `transfer_stall_secs`, and
/// meanwhile `/api/livez` and a secret read answer.
#[test]
fn callers_that_stop_reading_are_cut_off_and_the_rest_is_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const CALLERS: usize = 200;
    const STALL_SECS: u64 = 2;
    let w = fast()
        .var("transfer_stall_secs", Some(&STALL_SECS.to_string()))
        // Azurite itself, not behind World::storage: 200 streams through a second TLS hop
        // starve some upstream reads past the 2 s stall on 2 cores (tokens are not the point).
        .var_with("blob_service_endpoint", |_| shared().azurite.endpoint())
        .build();
    let blob: Vec<u8> = (0..64 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    w.put_blob(ACCOUNT_A, "slow", "big.bin", &blob);
    let encoded_len = blob.len().div_ceil(3) * 4;
    // A warm token first, so the callers' instances go straight to streaming.
    assert_eq!(w.get(SECRET_A).status, 200);

    let addr: std::net::SocketAddr = w
        .host
        .base_url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let request = format!(
        "GET /api/DownloadBlobSameTenant?container=slow&blob=big.bin HTTP/1.1\r\nhost: {addr}\r\nx-functions-key: {KEY}\r\n\r\n"
    );
    let started = Instant::now();
    let callers: Vec<tokio::net::TcpStream> = rt().block_on(async {
        let mut all = Vec::new();
        for _ in 0..CALLERS {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            // A small window, so each stalls after little data (and the kernel holds little).
            socket.set_recv_buffer_size(64 * 1024).unwrap();
            let mut tcp = socket.connect(addr).await.unwrap();
            tcp.write_all(request.as_bytes()).await.unwrap();
            all.push(tcp);
        }
        all
    });
    // Wait until they are all being served (each holds an instance), then ask the others.
    let deadline = Instant::now() + Duration::from_secs(120);
    while w.host.instances_running() < CALLERS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let held = w.host.instances_running();
    let all_held = Instant::now();
    let probe = Instant::now();
    let livez = w.get("/api/livez");
    let livez_ms = probe.elapsed().as_millis();
    let probe = Instant::now();
    let secret = w.get(SECRET_A);
    let secret_ms = probe.elapsed().as_millis();
    assert_eq!(livez.status, 200, "{}", livez.text());
    assert_eq!((secret.status, secret.text().as_str()), (200, "TenantA"));

    // Every stalled instance ends. Before the fix none ever did; the bound is generous for a
    // loaded 2-core machine, the figure is printed.
    assert!(
        w.host.wait_idle(Duration::from_secs(120)),
        "{} instances still held after 120 s",
        w.host.instances_running()
    );
    let released_ms = all_held.elapsed().as_millis();
    let lines: Vec<Value> = w
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &Value| l["route"] == "DownloadBlobSameTenant")
        .collect();
    assert_eq!(lines.len(), CALLERS);
    for line in &lines {
        let reason = line["aborted"].as_str().unwrap_or_default();
        assert!(reason.contains("transfer_stall_secs"), "{line}");
    }
    // Each caller now finds its transfer broken, short of the announced length.
    let received: Vec<usize> = rt().block_on(async {
        let mut sizes = Vec::new();
        for mut tcp in callers {
            let mut buf = vec![0u8; 1 << 20];
            let mut n = 0;
            while let Ok(Ok(k)) =
                tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await
            {
                if k == 0 {
                    break;
                }
                n += k;
            }
            sizes.push(n);
        }
        sizes
    });
    assert!(
        received.iter().all(|&n| n < encoded_len),
        "a stalled caller still received the whole body"
    );
    eprintln!(
        "slow readers: {CALLERS} callers of a 64 MiB blob, transfer_stall_secs={STALL_SECS}: {held} instances held; \
         /api/livez answered in {livez_ms} ms and a secret in {secret_ms} ms meanwhile; all released {released_ms} ms after all were held \
         ({} ms after the first request); each had received {}..{} bytes",
        started.elapsed().as_millis(),
        received.iter().min().unwrap(),
        received.iter().max().unwrap()
    );
}

/// A connection lost before the answer (the vault closes it without a response) is retried:
/// the caller gets the secret, the vault saw the lost attempt and the answered one.
#[test]
fn key_vault_connection_lost_mid_answer_is_retried() {
    let w = fast().build();
    assert_eq!(
        w.get(SECRET_A).status,
        200,
        "warm: challenge and token cached"
    );
    w.vault_a.clear();
    w.vault_a.push_fault(Fault::DropConnection);
    let r = w.get(SECRET_A);
    assert_eq!((r.status, r.text().as_str()), (200, "TenantA"));
    let statuses: Vec<Option<u16>> = w.vault_a.requests().iter().map(|q| q.status).collect();
    assert_eq!(statuses, [None, Some(200)], "one lost, one answered");
}

/// The same for Storage: the blob is opened again and served whole.
#[test]
fn storage_connection_lost_mid_answer_is_retried() {
    let storage = rt().block_on(FakeServer::start(
        Some(shared().pki.rustls_server_config(&["127.0.0.1"])),
        Arc::new(|_r: &Recorded| {
            let mut reply = Reply::new(200).header("x-ms-blob-type", "BlockBlob");
            reply.body = b"after a lost connection".to_vec();
            reply
        }),
    ));
    storage.push_fault(Fault::DropConnection);
    let w = fast()
        .var(
            "blob_service_endpoint",
            Some(format!("https://127.0.0.1:{}", storage.port()).as_str()),
        )
        .build();
    let r = w.get("/api/DownloadBlobSameTenant?container=seed&blob=x");
    assert_eq!(
        (r.status, r.text()),
        (200, base64(b"after a lost connection"))
    );
    let statuses: Vec<Option<u16>> = storage.requests().iter().map(|q| q.status).collect();
    assert_eq!(statuses, [None, Some(200)], "one lost, one answered");
}

/// Two replicas sharing one real Redis (as SpinKube replicas do), where Spin reports every
/// compare-and-swap as failed: 16 concurrent requests for a due token, half on each replica,
/// refresh it exactly once; everyone is served (the old token is still valid), and the next
/// request on either replica uses the new one without another IMDS call.
#[test]
fn a_due_token_is_refreshed_once_across_two_replicas_on_redis() {
    const SLOW: Duration = Duration::from_secs(2);
    let w = fast().replicated().build();
    let replica = w.replica();
    assert_eq!(w.get(SECRET_A).status, 200);
    let key = cache_key(&w, VAULT_RESOURCE);
    edit_cached(&w, &key, |v| v["refresh_at"] = (now() - 10).into());
    // The refresher holds its lease while every contender arrives.
    w.imds.push_fault(Fault::Delay(SLOW));
    let imds_before = w.imds.token_requests().len();
    let bases = [w.host.base_url(), replica.base_url()];
    let requests: Vec<_> = (0..16)
        .map(|i| {
            let (client, url) = (w.client.clone(), format!("{}{SECRET_A}", bases[i % 2]));
            rt().spawn(async move {
                let resp = client
                    .get(&url)
                    .header("x-functions-key", KEY)
                    .timeout(Duration::from_secs(60))
                    .send()
                    .await
                    .expect("response");
                let status = resp.status().as_u16();
                (status, resp.text().await.unwrap_or_default())
            })
        })
        .collect();
    for r in requests {
        let (status, body) = rt().block_on(r).unwrap();
        assert_eq!((status, body.as_str()), (200, "TenantA"));
    }
    assert_eq!(
        w.imds.token_requests().len(),
        imds_before + 1,
        "refreshed exactly once over both replicas"
    );
    for base in &bases {
        let r = rt()
            .block_on(
                w.client
                    .get(format!("{base}{SECRET_A}"))
                    .header("x-functions-key", KEY)
                    .send(),
            )
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    assert_eq!(w.imds.token_requests().len(), imds_before + 1, "cached");
}
