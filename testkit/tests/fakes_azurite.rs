//! The Azurite launcher: starts the pinned emulator over HTTPS with OAuth, seeds it, and pins the
//! emulator facts the component relies on (accepted x-ms-version, how bad tokens are refused).

use std::time::Duration;

use serde_json::json;
use tenant_bridge_testkit::launchers::azurite::{self, Azurite, X_MS_VERSION};
use tenant_bridge_testkit::trust::jwt::{now, Signer};
use tenant_bridge_testkit::trust::pki::TestPki;

fn date() -> String {
    httpdate::fmt_http_date(std::time::SystemTime::now())
}

async fn get_blob(
    az: &Azurite,
    path: &str,
    token: &str,
    version: &str,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let res = az
        .client()
        .get(format!("{}{path}", az.endpoint()))
        .bearer_auth(token)
        .header("x-ms-version", version)
        .header("x-ms-date", date())
        .send()
        .await
        .expect("get blob");
    let status = res.status().as_u16();
    let h = res.headers().clone();
    (status, h, res.bytes().await.unwrap().to_vec())
}

fn token(patch: serde_json::Value) -> String {
    let t = now();
    let mut c = json!({
        "aud": "https://storage.azure.com",
        "iss": "https://sts.windows.net/bbbbbbbb-0000-4000-8000-00000000000b/",
        "tid": "bbbbbbbb-0000-4000-8000-00000000000b",
        "oid": "0b0b0b0b-0000-4000-8000-0000000000b1",
        "iat": t - 300, "nbf": t - 300, "exp": t + 3600,
    });
    for (k, v) in patch.as_object().unwrap() {
        c[k] = v.clone();
    }
    Signer::new("any").sign(&c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite_seeds_serves_and_refuses_like_storage() {
    let pki = TestPki::new();
    let az = Azurite::start(&pki, &["acct1", "acct2"]).await;
    assert!(az.endpoint().starts_with("https://127.0.0.1:"));
    assert_eq!(az.account_path("acct1"), "/acct1");
    az.create_container("acct1", "docs").await;
    az.create_container("acct2", "other").await;
    az.put_blob("acct1", "docs", "dir/hello world.txt", b"hello")
        .await;

    // Happy path with a token the component would hold.
    let good = token(json!({}));
    let (s, h, body) = get_blob(
        &az,
        "/acct1/docs/dir/hello%20world.txt",
        &good,
        X_MS_VERSION,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(body, b"hello");
    assert_eq!(h["x-ms-blob-type"], "BlockBlob");
    assert!(h.contains_key("etag"));
    assert!(h.contains_key("x-ms-request-id"));
    // the trailing-slash audience and the account URL audience are accepted too
    for aud in ["https://storage.azure.com/"] {
        let (s, _, _) = get_blob(
            &az,
            "/acct1/docs/dir/hello%20world.txt",
            &token(json!({"aud": aud})),
            X_MS_VERSION,
        )
        .await;
        assert_eq!(s, 200, "aud {aud}");
    }

    // Accepted API versions: 2025-11-05 (what the component sends) and the newest, 2026-06-06.
    for v in ["2025-11-05", "2026-06-06"] {
        let (s, _, _) = get_blob(&az, "/acct1/docs/dir/hello%20world.txt", &good, v).await;
        assert_eq!(s, 200, "x-ms-version {v}");
    }
    let (s, h, body) = get_blob(
        &az,
        "/acct1/docs/dir/hello%20world.txt",
        &good,
        "2099-01-01",
    )
    .await;
    assert_eq!(s, 400, "{}", String::from_utf8_lossy(&body));
    assert_eq!(h["x-ms-error-code"], "InvalidHeaderValue");

    // Range -> 206 with Content-Range.
    let res = az
        .client()
        .get(format!(
            "{}/acct1/docs/dir/hello%20world.txt",
            az.endpoint()
        ))
        .bearer_auth(&good)
        .header("x-ms-version", X_MS_VERSION)
        .header("x-ms-date", date())
        .header("x-ms-range", "bytes=1-3")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(res.headers()["content-range"], "bytes 1-3/5");
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"ell");

    // Refusals: status + x-ms-error-code + AuthenticationErrorDetail.
    let t = now();
    let cases = [
        (
            token(json!({"aud": "https://vault.azure.net"})),
            403,
            "AuthenticationFailed",
            "Invalid token audience.",
        ),
        (
            token(json!({"exp": t - 60, "nbf": t - 4000, "iat": t - 4000})),
            403,
            "AuthenticationFailed",
            "Lifetime validation failed. The token is expired.",
        ),
        (
            token(json!({"nbf": t + 3600})),
            403,
            "AuthenticationFailed",
            "Lifetime validation failed.",
        ),
        (
            token(
                json!({"iss": "https://login.microsoftonline.com/bbbbbbbb-0000-4000-8000-00000000000b/v2.0"}),
            ),
            403,
            "AuthenticationFailed",
            "Invalid token issuer.",
        ),
        (
            "garbage".to_string(),
            403,
            "AuthenticationFailed",
            "Authentication scheme Bearer is not supported.",
        ),
    ];
    for (tok, status, code, detail) in &cases {
        let (s, h, body) =
            get_blob(&az, "/acct1/docs/dir/hello%20world.txt", tok, X_MS_VERSION).await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(s, *status, "{code}: {body}");
        assert_eq!(h["x-ms-error-code"], *code, "{body}");
        assert!(body.contains(&format!("<Code>{code}</Code>")), "{body}");
        assert!(body.contains(detail), "{detail}: {body}");
    }
    // Missing token on a private container: Azurite says 403 AuthorizationFailure (real Storage
    // answers 401 NoAuthenticationInformation / 404 ResourceNotFound depending on the request).
    let res = az
        .client()
        .get(format!(
            "{}/acct1/docs/dir/hello%20world.txt",
            az.endpoint()
        ))
        .header("x-ms-version", X_MS_VERSION)
        .header("x-ms-date", date())
        .send()
        .await
        .unwrap();
    let s = res.status().as_u16();
    let code = res.headers()["x-ms-error-code"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!((s, code.as_str()), (403, "AuthorizationFailure"));

    // Not found.
    let (s, h, _) = get_blob(&az, "/acct1/docs/nope", &good, X_MS_VERSION).await;
    assert_eq!(
        (s, h["x-ms-error-code"].to_str().unwrap()),
        (404, "BlobNotFound")
    );
    let (s, h, _) = get_blob(&az, "/acct1/nope/x", &good, X_MS_VERSION).await;
    assert_eq!(
        (s, h["x-ms-error-code"].to_str().unwrap()),
        (404, "ContainerNotFound")
    );
    // accounts are separate
    let (s, _, _) = get_blob(
        &az,
        "/acct2/docs/dir/hello%20world.txt",
        &good,
        X_MS_VERSION,
    )
    .await;
    assert_eq!(s, 404);
    assert!(az.account_key("acct1").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite_large_blobs_and_killed_on_drop() {
    let pki = TestPki::new();
    let az = Azurite::start(&pki, &["big"]).await;
    az.create_container("big", "big-c").await;
    // exactly 64 MiB in one Put Blob, 64 MiB + 1 through Put Block + Put Block List
    let single: Vec<u8> = (0..azurite::MAX_SINGLE_PUT)
        .map(|i| (i % 251) as u8)
        .collect();
    az.put_blob("big", "big-c", "single.bin", &single).await;
    let multi: Vec<u8> = (0..azurite::MAX_SINGLE_PUT + 1)
        .map(|i| (i % 253) as u8)
        .collect();
    az.put_blob("big", "big-c", "multi.bin", &multi).await;
    let good = token(json!({}));
    for (name, data) in [("single.bin", &single), ("multi.bin", &multi)] {
        let (s, h, body) = get_blob(&az, &format!("/big/big-c/{name}"), &good, X_MS_VERSION).await;
        assert_eq!(s, 200);
        assert_eq!(h["content-length"], data.len().to_string().as_str());
        assert!(body == *data, "{name} round-trips");
    }

    let pid = az.pid().expect("running");
    let endpoint = az.endpoint();
    drop(az);
    // the node process is gone (reaped, so no zombie either)
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "azurite pid {pid} still exists after drop"
    );
    let err = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem().as_bytes()).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(format!("{endpoint}/big?comp=list"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
}
