//! The fake Key Vault checks what the real one checks and answers with the real shapes.

use std::time::Duration;

use serde_json::{json, Value};
use tenant_bridge_testkit::fakes::http::{client_trusting, Fault};
use tenant_bridge_testkit::fakes::keyvault::{FakeVault, VaultConfig, VaultNetwork};
use tenant_bridge_testkit::trust::jwt::{now, Signer};
use tenant_bridge_testkit::trust::pki::TestPki;

const TENANT: &str = "bbbbbbbb-0000-4000-8000-00000000000b";
const OTHER_TENANT: &str = "aaaaaaaa-0000-4000-8000-00000000000a";
const READER: &str = "5b5b5b5b-0000-4000-8000-0000000000b5";
const HOST: &str = "tenant-b.vault.azure.net";

struct Env {
    vault: FakeVault,
    signer: Signer,
    client: reqwest::Client,
    pki: TestPki,
}

async fn env(rbac: bool) -> Env {
    let pki = TestPki::new();
    let signer = Signer::new("entra-b");
    let vault = FakeVault::start(
        VaultConfig {
            tenant_id: TENANT.into(),
            host: HOST.into(),
            authority_host: "login.microsoftonline.com".into(),
            trusted_issuer_keys: vec![signer.verifier()],
            readers: vec![READER.into()],
            network: VaultNetwork::Open,
            rbac,
        },
        &pki,
    )
    .await;
    let client = client_trusting(&pki.ca_pem(), &[(HOST, vault.addr())]);
    Env {
        vault,
        signer,
        client,
        pki,
    }
}

fn claims() -> Value {
    let t = now();
    json!({
        "aud": "https://vault.azure.net",
        "iss": format!("https://sts.windows.net/{TENANT}/"),
        "tid": TENANT,
        "oid": READER,
        "appid": "a9a9a9a9-0000-4000-8000-0000000000a9",
        "iat": t - 300, "nbf": t - 300, "exp": t + 3600,
    })
}

impl Env {
    fn token(&self, patch: Value) -> String {
        let mut c = claims();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        self.signer.sign(&c)
    }

    async fn get(
        &self,
        path_and_query: &str,
        token: Option<&str>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut req = self
            .client
            .get(format!("{}{path_and_query}", self.vault.endpoint()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.expect("send");
        let status = res.status().as_u16();
        let h = res.headers().clone();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            h,
        )
    }
}

fn challenge() -> String {
    format!("Bearer authorization=\"https://login.microsoftonline.com/{TENANT}\", resource=\"https://vault.azure.net\"")
}

#[tokio::test]
async fn happy_path_latest_and_specific_version_case_insensitive() {
    let e = env(true).await;
    let v1 = e.vault.set_secret("Db-Password", "one");
    let v2 = e.vault.set_secret("db-password", "two");
    assert_eq!(v1.len(), 32);
    assert!(v1.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(v1, v2);
    let tok = e.token(json!({}));
    let res = e
        .client
        .get(format!(
            "{}/secrets/DB-PASSWORD?api-version=7.5",
            e.vault.endpoint()
        ))
        .bearer_auth(&tok)
        .header("x-ms-client-request-id", "corr-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["x-ms-client-request-id"], "corr-123");
    assert!(res.headers().contains_key("x-ms-request-id"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["value"], "two");
    assert_eq!(
        body["id"],
        format!("{}/secrets/Db-Password/{v2}", e.vault.endpoint())
    );
    assert_eq!(body["attributes"]["enabled"], true);
    assert!(body["attributes"]["created"].is_i64());
    assert!(body["attributes"]["updated"].is_i64());
    assert!(body["attributes"]["recoveryLevel"].is_string());

    let (s, body, _) = e
        .get(
            &format!("/secrets/db-password/{v1}?api-version=7.5"),
            Some(&tok),
        )
        .await;
    assert_eq!((s, body["value"].as_str()), (200, Some("one")));
    // trailing slash on the aud, v2 issuer: both accepted
    let tok2 = e.token(json!({"aud": "https://vault.azure.net/", "iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0")}));
    let (s, _, _) = e
        .get("/secrets/db-password?api-version=7.5", Some(&tok2))
        .await;
    assert_eq!(s, 200);

    let rs = e.vault.requests();
    assert_eq!(rs.len(), 3);
    assert_eq!(rs[0].path, "/secrets/DB-PASSWORD");
    assert_eq!(rs[0].query("api-version"), Some("7.5"));
    assert_eq!(rs[0].bearer(), Some(tok.as_str()));
    assert_eq!(
        rs[0].header("host"),
        Some(format!("{HOST}:{}", e.vault.addr().port()).as_str())
    );
}

#[tokio::test]
async fn authentication_refusals_are_401_with_challenge() {
    let e = env(true).await;
    e.vault.set_secret("s", "v");
    let other_signer = Signer::new("entra-b"); // same kid, different key
    let t = now();
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "AKV10000"),
        (Some("not-a-jwt".into()), "MalformedToken"),
        (Some(other_signer.sign(&claims())), "InvalidSignature"),
        (Some(Signer::new("unknown-kid").sign(&claims())), "InvalidSignature"),
        (Some(e.token(json!({"exp": t - 600, "nbf": t - 4000, "iat": t - 4000}))), "TokenExpired"),
        (Some(e.token(json!({"nbf": t + 3600}))), "TokenNotYetValid"),
        (Some(e.token(json!({"exp": null}))), "InvalidToken"),
        (Some(e.token(json!({"aud": "https://storage.azure.com"}))), "AKV10022"),
        (Some(e.token(json!({"aud": "https://vault.azure.net/.default"}))), "AKV10022"),
        (Some(e.token(json!({"tid": OTHER_TENANT, "iss": format!("https://sts.windows.net/{OTHER_TENANT}/")}))), "AKV10032"),
        (Some(e.token(json!({"tid": OTHER_TENANT}))), "AKV10032"),
        (Some(e.token(json!({"iss": format!("https://sts.windows.net/{OTHER_TENANT}/")}))), "AKV10032"),
    ];
    for (tok, marker) in &cases {
        let (s, body, h) = e.get("/secrets/s?api-version=7.5", tok.as_deref()).await;
        assert_eq!(s, 401, "{marker}: {body}");
        assert_eq!(body["error"]["code"], "Unauthorized", "{body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(marker), "{marker}: {msg}");
        assert_eq!(h["www-authenticate"].to_str().unwrap(), challenge());
    }
    let (_, body, _) = e
        .get(
            "/secrets/s?api-version=7.5",
            Some(&e.token(json!({"tid": OTHER_TENANT, "iss": format!("https://sts.windows.net/{OTHER_TENANT}/")}))),
        )
        .await;
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with(&format!(
            "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{TENANT}/"
        )));
    // A wrong "Basic" scheme is "missing a Bearer token"
    let res = e
        .client
        .get(format!("{}/secrets/s?api-version=7.5", e.vault.endpoint()))
        .header("authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert_eq!(e.vault.requests().len(), cases.len() + 2);
}

#[tokio::test]
async fn request_shape_refusals() {
    let e = env(true).await;
    e.vault.set_secret("s", "v");
    let tok = e.token(json!({}));
    for (pq, status, code) in [
        ("/secrets/s", 400, "BadParameter"),
        ("/secrets/s?api-version=7.4", 400, "BadParameter"),
        ("/secrets/s?api-version=2025-07-01", 400, "BadParameter"),
        (
            "/secrets/s?api-version=7.5&api-version=7.5",
            400,
            "BadParameter",
        ),
        ("/keys/s?api-version=7.5", 404, "NotFound"),
        ("/secrets?api-version=7.5", 404, "NotFound"),
        ("/secrets/bad_name?api-version=7.5", 400, "BadParameter"),
        (
            "/secrets/s/not-a-version?api-version=7.5",
            400,
            "BadParameter",
        ),
        (
            "/secrets/s/0123456789abcdef0123456789abcdef?api-version=7.5",
            404,
            "SecretNotFound",
        ),
        ("/secrets/missing?api-version=7.5", 404, "SecretNotFound"),
    ] {
        let (s, body, _) = e.get(pq, Some(&tok)).await;
        assert_eq!(s, status, "{pq}: {body}");
        assert_eq!(body["error"]["code"], code, "{pq}: {body}");
    }
    // non-GET
    let res = e
        .client
        .put(format!("{}/secrets/s?api-version=7.5", e.vault.endpoint()))
        .bearer_auth(&tok)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 405);
    // wrong Host header (vault routing by host): reach the address under another name
    let res = e
        .client
        .get(format!(
            "https://127.0.0.1:{}/secrets/s?api-version=7.5",
            e.vault.addr().port()
        ))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "VaultNotFound");
}

#[tokio::test]
async fn authorization_network_and_disabled() {
    let e = env(true).await;
    e.vault.set_secret("s", "v");
    let tok = e.token(json!({}));
    let stranger = e.token(json!({"oid": "99999999-0000-4000-8000-000000000099"}));

    let (s, body, _) = e.get("/secrets/s?api-version=7.5", Some(&stranger)).await;
    assert_eq!(s, 403);
    assert_eq!(body["error"]["code"], "Forbidden");
    assert_eq!(body["error"]["innererror"]["code"], "ForbiddenByRbac");
    // unknown secret without permission is still 403, not 404
    let (s, _, _) = e
        .get("/secrets/nope?api-version=7.5", Some(&stranger))
        .await;
    assert_eq!(s, 403);

    e.vault.set_network(VaultNetwork::FirewallBlocks);
    let (s, body, _) = e.get("/secrets/s?api-version=7.5", Some(&tok)).await;
    assert_eq!(
        (s, body["error"]["innererror"]["code"].as_str()),
        (403, Some("ForbiddenByFirewall"))
    );
    // authentication still comes first
    let (s, _, _) = e.get("/secrets/s?api-version=7.5", None).await;
    assert_eq!(s, 401);
    e.vault.set_network(VaultNetwork::ConnectionNotApproved);
    let (s, body, _) = e.get("/secrets/s?api-version=7.5", Some(&tok)).await;
    assert_eq!(
        (s, body["error"]["innererror"]["code"].as_str()),
        (403, Some("ForbiddenByConnection"))
    );
    e.vault.set_network(VaultNetwork::Open);

    e.vault.set_readers(vec![]);
    let (s, _, _) = e.get("/secrets/s?api-version=7.5", Some(&tok)).await;
    assert_eq!(s, 403);
    e.vault.set_readers(vec![READER.into()]);

    let latest = e.vault.set_secret("s", "v2");
    e.vault.disable_secret("S");
    let (s, body, _) = e.get("/secrets/s?api-version=7.5", Some(&tok)).await;
    assert_eq!(s, 403, "{body}");
    assert_eq!(body["error"]["code"], "Forbidden");
    assert_eq!(body["error"]["innererror"]["code"], "SecretDisabled");
    let (s, body, _) = e
        .get(&format!("/secrets/s/{latest}?api-version=7.5"), Some(&tok))
        .await;
    assert_eq!(s, 403, "the disabled version is {latest}: {body}");
    let (s, _, _) = e.get("/secrets/missing?api-version=7.5", Some(&tok)).await;
    assert_eq!(s, 404);
    e.vault.delete_secret("s");
    let (s, _, _) = e.get("/secrets/s?api-version=7.5", Some(&tok)).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn access_policy_vault_refuses_with_forbidden_by_policy() {
    let e = env(false).await;
    e.vault.set_secret("s", "v");
    let stranger = e.token(json!({"oid": "99999999-0000-4000-8000-000000000099"}));
    let (s, body, _) = e.get("/secrets/s?api-version=7.5", Some(&stranger)).await;
    assert_eq!(s, 403);
    assert_eq!(body["error"]["innererror"]["code"], "ForbiddenByPolicy");
    let (s, _, _) = e
        .get("/secrets/s?api-version=7.5", Some(&e.token(json!({}))))
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn faults_429_hang_drop() {
    let e = env(true).await;
    e.vault.set_secret("s", "v");
    let tok = e.token(json!({}));
    e.vault.push_fault(Fault::Status {
        status: 429,
        headers: vec![("retry-after".into(), "1".into())],
        body: json!({"error":{"code":"Throttled","message":"Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"}}).to_string(),
    });
    let (s, body, h) = e.get("/secrets/s?api-version=7.5", Some(&tok)).await;
    assert_eq!(s, 429);
    assert_eq!(h["retry-after"], "1");
    assert_eq!(body["error"]["code"], "Throttled");
    e.vault.push_fault(Fault::DropConnection);
    let err = e
        .client
        .get(format!("{}/secrets/s?api-version=7.5", e.vault.endpoint()))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_timeout());
    e.vault.push_fault(Fault::Hang);
    let err = e
        .client
        .get(format!("{}/secrets/s?api-version=7.5", e.vault.endpoint()))
        .bearer_auth(&tok)
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    let (s, _, _) = e.get("/secrets/s?api-version=7.5", Some(&tok)).await;
    assert_eq!(s, 200);
    let statuses: Vec<_> = e.vault.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![Some(429), None, None, Some(200)]);
}

#[tokio::test]
async fn tls_name_checked_by_clients() {
    // The vault's certificate names its host and nothing else: a client trusting the test CA
    // reaches it under that name and refuses the same socket under any other name.
    let e = env(true).await;
    let other = "tenant-x.vault.azure.net";
    let c = client_trusting(
        &e.pki.ca_pem(),
        &[(HOST, e.vault.addr()), (other, e.vault.addr())],
    );
    let path = "/secrets/s?api-version=7.5";
    let own = c
        .get(format!("{}{path}", e.vault.endpoint()))
        .send()
        .await
        .expect("its own name is served");
    assert_eq!(own.status(), 401, "answered (no token)");
    let err = c
        .get(format!("https://{other}:{}{path}", e.vault.addr().port()))
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("NotValidForName"),
        "refused for its name: {err:?}"
    );
    // And a client trusting another CA refuses even the right name.
    let stranger = client_trusting(&TestPki::new().ca_pem(), &[(HOST, e.vault.addr())]);
    let err = stranger
        .get(format!("{}{path}", e.vault.endpoint()))
        .send()
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("InvalidCertificate"), "{err:?}");
    assert_eq!(
        e.vault.requests().len(),
        1,
        "only the request under its name"
    );
}
