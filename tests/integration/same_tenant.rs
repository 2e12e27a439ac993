//! Same-tenant endpoints through the compiled component: secrets from the fake Key Vault, blobs
//! from Azurite, the managed identity from the fake IMDS.

use tenant_bridge_testkit::world::suite::*;
use tenant_bridge_testkit::world::*;

#[test]
fn secret_is_returned_exactly_as_plain_text() {
    let w = World::new();
    let value = "line one\nline \"two\" ünïcødé\t";
    w.vault_a.set_secret("tricky-Value-9", value);
    let r = w.get("/api/GetSecretSameTenant?key=tricky-Value-9");
    assert_eq!(r.status, 200, "{}", r.text());
    // The reply that carries the value carries nothing else secret (a token, a key), and the
    // log has no part of the value, escaped or not (the vault's values are known to the
    // scanner; it is shown to find this one in the `security` module).
    w.assert_no_leak(&r, &[]);
    assert_eq!(r.text(), value);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(
        r.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );

    let r = w.get("/api/GetSecretSameTenant?key=TEST-SECRET-001");
    assert_eq!((r.status, r.text().as_str()), (200, "TenantA"));
    w.assert_no_leak(&r, &[value]);
}

#[test]
fn warm_requests_reuse_pooled_tls_connections_like_spin() {
    // Spin 3.6.3 pools outbound connections (TLS sessions included) across requests and
    // instances; the host does too, so a warm request pays no handshake.
    let w = World::new();
    assert_eq!(
        w.get("/api/GetSecretSameTenant?key=TEST-SECRET-001").status,
        200
    );
    let before = w.vault_a.connections();
    for _ in 0..20 {
        let r = w.get("/api/GetSecretSameTenant?key=TEST-SECRET-001");
        assert_eq!((r.status, r.text().as_str()), (200, "TenantA"));
    }
    let opened = w.vault_a.connections() - before;
    assert!(
        opened <= 1,
        "20 warm requests opened {opened} TLS connections"
    );
}

#[test]
fn secret_versions_are_honoured() {
    let w = World::new();
    let v1 = w.vault_a.set_secret("rotating", "first");
    w.vault_a.set_secret("rotating", "second");
    assert_eq!(
        w.get("/api/GetSecretSameTenant?key=rotating").text(),
        "second"
    );
    assert_eq!(
        w.get(&format!(
            "/api/GetSecretSameTenant?key=rotating&version={v1}"
        ))
        .text(),
        "first"
    );
    let r = w.get("/api/GetSecretSameTenant?key=rotating&version=0123456789abcdef0123456789abcdef");
    assert_eq!((r.status, r.code().as_str()), (404, "secret-not-found"));
}

#[test]
fn imds_sees_metadata_header_client_id_and_resource_per_service() {
    let w = World::new();
    assert_eq!(
        w.get("/api/GetSecretSameTenant?key=TEST-SECRET-001").status,
        200
    );
    assert_eq!(
        w.get(&format!(
            "/api/DownloadBlobSameTenant?container={SEED_CONTAINER}&blob={SEED_BLOB}"
        ))
        .status,
        200
    );
    let reqs = w.imds.token_requests();
    let resources: Vec<_> = reqs
        .iter()
        .map(|r| r.query("resource").unwrap_or_default().to_string())
        .collect();
    assert_eq!(resources, [VAULT_RESOURCE, STORAGE_RESOURCE]);
    for r in &reqs {
        assert_eq!(r.header("metadata"), Some("true"));
        assert_eq!(r.query("client_id"), Some(MI_CLIENT_ID));
        assert_eq!(r.query("api-version"), Some("2018-02-01"));
    }
    // Key Vault saw the challenge probe, then exactly one authenticated call with a tenant-A token.
    let kv = w.vault_a.requests();
    assert_eq!(kv.len(), 2);
    assert!(kv[0].bearer().is_none());
    assert!(kv[1].bearer().is_some());
}

#[test]
fn tokens_and_challenge_are_cached_across_requests() {
    let w = World::new();
    for _ in 0..3 {
        assert_eq!(
            w.get("/api/GetSecretSameTenant?key=TEST-SECRET-001").status,
            200
        );
    }
    assert_eq!(
        w.imds.token_requests().len(),
        1,
        "one IMDS call for three requests"
    );
    assert_eq!(
        w.vault_a.requests().len(),
        4,
        "one probe, then one call per request"
    );
}

fn download(w: &World, container: &str, blob: &str) -> Reply {
    w.get(&format!(
        "/api/DownloadBlobSameTenant?container={container}&blob={}",
        urlencode(blob)
    ))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn blobs_of_every_remainder_and_size_come_back_as_exact_base64() {
    let w = World::new();
    let container = "sizes";
    // 15-17 and 27-29 straddle the 16-byte loads of 12-byte blocks (SIMD) and their tails.
    let sizes = [
        0usize,
        1,
        2,
        3,
        15,
        16,
        17,
        27,
        28,
        29,
        1024 * 1024 + 1,
        64 * 1024 * 1024,
    ];
    for n in sizes {
        let data: Vec<u8> = (0..n).map(|i| (i * 7 + i / 251) as u8).collect();
        let name = format!("dir/blob-{n}.bin");
        w.put_blob(ACCOUNT_A, container, &name, &data);
        let r = download(&w, container, &name);
        assert_eq!(r.status, 200, "{n} bytes: {}", r.text());
        assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
        assert_eq!(
            r.header("cache-control").as_deref(),
            Some("no-store"),
            "{n} bytes"
        );
        assert_eq!(
            r.header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{n} bytes"
        );
        let expected = base64(&data);
        assert_eq!(
            r.header("content-length"),
            Some(expected.len().to_string()),
            "{n} bytes"
        );
        assert!(r.body == expected.as_bytes(), "{n} bytes: base64 differs");
    }
}

#[test]
fn blob_names_with_spaces_unicode_and_reserved_characters_reach_the_right_blob() {
    let w = World::new();
    for name in ["a b/ü ñ.txt", "q?x#y&z=1+2", "percent%41.txt"] {
        w.put_blob(ACCOUNT_A, "names", name, name.as_bytes());
        let r = download(&w, "names", name);
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert_eq!(r.text(), base64(name.as_bytes()), "{name}");
    }
}

#[test]
fn blob_headers_are_what_storage_requires() {
    let w = World::new();
    assert_eq!(
        w.get(&format!(
            "/api/DownloadBlobSameTenant?container={SEED_CONTAINER}&blob={SEED_BLOB}"
        ))
        .text(),
        base64(SEED_A)
    );
    let blob_calls: Vec<_> = w
        .outbound()
        .into_iter()
        .filter(|o| o.url.contains(ACCOUNT_A))
        .collect();
    assert_eq!(blob_calls.len(), 1);
    let c = &blob_calls[0];
    assert_eq!(c.header("x-ms-version"), Some("2025-11-05"));
    let line = &w.log_lines(1)[0];
    assert!(
        line.get("aborted").is_none(),
        "a complete download is not logged as aborted: {line}"
    );
    assert_eq!(line["bytes"], base64(SEED_A).len());
    assert!(c.header("x-ms-date").is_some_and(|d| d.ends_with(" GMT")));
    assert!(c
        .header("x-ms-client-request-id")
        .is_some_and(|id| id.len() == 36));
    assert_eq!(bearer_tid(c).as_deref(), Some(TENANT_A));
}

#[test]
fn missing_blob_and_container_are_404() {
    let w = World::new();
    let r = download(&w, SEED_CONTAINER, "nope.txt");
    assert_eq!((r.status, r.code().as_str()), (404, "blob-not-found"));
    let r = download(&w, "no-such-container", "x");
    assert_eq!((r.status, r.code().as_str()), (404, "container-not-found"));
}

#[test]
fn secret_not_found_is_404_and_disabled_is_409() {
    let w = World::new();
    let r = w.get("/api/GetSecretSameTenant?key=missing");
    assert_eq!((r.status, r.code().as_str()), (404, "secret-not-found"));
    assert!(r.detail().contains("missing"));
    w.vault_a.set_secret("off", "x");
    w.vault_a.disable_secret("off");
    let r = w.get("/api/GetSecretSameTenant?key=off");
    assert_eq!((r.status, r.code().as_str()), (409, "secret-disabled"));
}

#[test]
fn missing_role_is_502_with_the_role_to_grant() {
    let w = World::new();
    w.vault_a.set_readers(vec![]);
    let r = w.get("/api/GetSecretSameTenant?key=TEST-SECRET-001");
    assert_eq!(
        (r.status, r.code().as_str()),
        (502, "keyvault-forbidden-rbac")
    );
    let d = r.detail();
    assert!(
        d.contains("Key Vault Secrets User")
            && d.contains(VAULT_A_HOST)
            && d.contains(MI_CLIENT_ID),
        "{d}"
    );
    w.assert_no_leak(&r, &["TenantA"]);
}

#[test]
fn azurite_refusing_the_token_is_502() {
    // Tokens that are already expired: Azurite refuses them, the component retries once with a
    // fresh (equally expired) token and then reports the refusal.
    let w = World::new();
    w.imds.set_token_lifetime(-600);
    let r = w.get(&format!(
        "/api/DownloadBlobSameTenant?container={SEED_CONTAINER}&blob={SEED_BLOB}"
    ));
    assert_eq!(
        (r.status, r.code().as_str()),
        (502, "storage-token-refused"),
        "{}",
        r.text()
    );
    let blob_calls = w
        .outbound()
        .into_iter()
        .filter(|o| o.url.contains(ACCOUNT_A))
        .count();
    assert_eq!(blob_calls, 2, "one retry with a new token");
    w.assert_no_leak(&r, &[]);
}

/// A system-assigned identity is each machine's own: replicas on several machines sharing one
/// Redis must not serve each other its tokens, so they are never cached.
#[test]
fn a_system_assigned_identitys_tokens_are_not_shared_between_replicas() {
    const SYSTEM_OID: &str = "5e5e5e5e-0000-4000-8000-5e5e5e5e5e5e";
    let w = World::builder()
        .var("azure_client_id", None)
        .replicated()
        .build();
    w.imds.set_system_assigned(Some(SYSTEM_OID.into()));
    w.vault_a
        .set_readers(vec![MI_OBJECT_ID.into(), SYSTEM_OID.into()]);
    let path = "/api/GetSecretSameTenant?key=TEST-SECRET-001";
    let r = w.get(path);
    assert_eq!(r.status, 200, "{}", r.text());
    let replica = w.replica();
    let status = rt().block_on(async {
        reqwest::Client::new()
            .get(format!("{}{path}", replica.base_url()))
            .header("x-functions-key", KEY)
            .send()
            .await
            .expect("the replica answers")
            .status()
            .as_u16()
    });
    assert_eq!(status, 200);
    let imds = w.imds.token_requests();
    assert_eq!(
        imds.len(),
        2,
        "the replica was served the first one's token"
    );
    assert!(imds.iter().all(|q| q.query("client_id").is_none()));
}

#[test]
fn unknown_identity_is_reported_with_the_fix() {
    let w = World::builder()
        .var(
            "azure_client_id",
            Some("dddddddd-0000-4000-8000-dddddddddddd"),
        )
        .build();
    let r = w.get("/api/GetSecretSameTenant?key=TEST-SECRET-001");
    assert_eq!((r.status, r.code().as_str()), (502, "identity-not-found"));
    assert!(r.detail().contains("dddddddd-0000-4000-8000-dddddddddddd"));
}

#[test]
fn every_request_logs_one_structured_line_without_secrets() {
    let w = World::new();
    let r = w.request(
        "GET",
        &format!("/api/GetSecretSameTenant?key=TEST-SECRET-001&code={ROTATED_KEY}"),
        &[],
    );
    assert_eq!(r.status, 200);
    let lines = w.log_lines(1);
    let logs = w.logs();
    assert_eq!(lines.len(), 1, "{logs}");
    let l = &lines[0];
    assert_eq!(l["route"], "GetSecretSameTenant");
    assert_eq!(l["caller"], "rotated");
    assert_eq!(l["status"], 200);
    assert_eq!(
        l["resource"],
        format!("{}/secrets/TEST-SECRET-001", w.vault_a.endpoint())
    );
    assert_eq!(l["tenant"], "same-tenant");
    assert!(l["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(l["duration_ms"].is_u64());
    let upstream = l["upstream"].as_array().unwrap();
    assert_eq!(upstream.len(), 3, "probe, IMDS, Key Vault: {l}");
    assert!(upstream
        .iter()
        .any(|u| u["service"] == "Key Vault" && u["request_id"].is_string()));
    w.assert_no_leak(&r, &[]);
    assert!(!logs.contains("TenantA"));
}
