//! The fake Entra token endpoint: the cross-tenant exchange works end to end with a real IMDS
//! assertion, and every misconfiguration answers the AADSTS code real Entra gives.

use std::sync::Arc;

use serde_json::{json, Value};
use tenant_bridge_testkit::fakes::entra::{
    AppRegistration, EntraDirectory, FakeEntra, FederatedCredential, JWT_BEARER,
};
use tenant_bridge_testkit::fakes::http::{client_trusting, Fault};
use tenant_bridge_testkit::fakes::imds::{FakeImds, ImdsConfig};
use tenant_bridge_testkit::trust::jwt::{self, now, Signer};
use tenant_bridge_testkit::trust::pki::TestPki;

const A: &str = "aaaaaaaa-0000-4000-8000-00000000000a";
const B: &str = "bbbbbbbb-0000-4000-8000-00000000000b";
const C: &str = "cccccccc-0000-4000-8000-00000000000c";
const MI_CLIENT: &str = "c1c1c1c1-0000-4000-8000-0000000000c1";
const MI_OID: &str = "0b0b0b0b-0000-4000-8000-0000000000b1";
const APP: &str = "a9a9a9a9-0000-4000-8000-0000000000a9";
const SP_A: &str = "5a5a5a5a-0000-4000-8000-0000000000a5";
const SP_B: &str = "5b5b5b5b-0000-4000-8000-0000000000b5";
const VAULT: &str = "https://vault.azure.net";
const STORAGE: &str = "https://storage.azure.com";
const XCHG: &str = "api://AzureADTokenExchange";
const HOST: &str = "login.microsoftonline.com";

struct Env {
    entra: FakeEntra,
    imds_signer: Arc<Signer>,
    token_signer: Arc<Signer>,
    client: reqwest::Client,
    pki: TestPki,
}

fn issuer_a() -> String {
    format!("https://login.microsoftonline.com/{A}/v2.0")
}

fn directory() -> EntraDirectory {
    EntraDirectory {
        tenants: vec![A.into(), B.into(), C.into()],
        apps: vec![AppRegistration {
            app_id: APP.into(),
            home_tenant: A.into(),
            multi_tenant: true,
            federated_credentials: vec![FederatedCredential {
                issuer: issuer_a(),
                subject: MI_OID.into(),
                audiences: vec![XCHG.into()],
            }],
        }],
        service_principals: vec![
            (A.into(), APP.into(), SP_A.into()),
            (B.into(), APP.into(), SP_B.into()),
        ],
        resource_principals: vec![
            (B.into(), VAULT.into()),
            (B.into(), STORAGE.into()),
            (A.into(), VAULT.into()),
        ],
        federation_disabled_tenants: vec![],
    }
}

async fn env() -> Env {
    let pki = TestPki::new();
    let imds_signer = Arc::new(Signer::new("imds-key"));
    let token_signer = Arc::new(Signer::new("entra-key"));
    let entra = FakeEntra::start(
        directory(),
        vec![imds_signer.verifier()],
        token_signer.clone(),
        &pki,
        HOST,
    )
    .await;
    let client = client_trusting(&pki.ca_pem(), &[(HOST, entra.addr())]);
    Env {
        entra,
        imds_signer,
        token_signer,
        client,
        pki,
    }
}

/// Claims of the IMDS token for api://AzureADTokenExchange.
fn assertion_claims() -> Value {
    let t = now();
    json!({
        "aud": XCHG, "iss": issuer_a(), "sub": MI_OID, "oid": MI_OID, "tid": A,
        "azp": MI_CLIENT, "appid": MI_CLIENT, "ver": "2.0",
        "iat": t - 300, "nbf": t - 300, "exp": t + 86399,
    })
}

fn patched(patch: Value) -> Value {
    let mut c = assertion_claims();
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn form(assertion: &str, scope: &str) -> Vec<(String, String)> {
    vec![
        ("client_id".into(), APP.into()),
        ("scope".into(), scope.into()),
        ("grant_type".into(), "client_credentials".into()),
        ("client_assertion_type".into(), JWT_BEARER.into()),
        ("client_assertion".into(), assertion.into()),
    ]
}

fn encode(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

impl Env {
    fn assertion(&self, patch: Value) -> String {
        self.imds_signer.sign(&patched(patch))
    }

    async fn post(&self, tenant: &str, body: String) -> (u16, Value, reqwest::header::HeaderMap) {
        let res = self
            .client
            .post(self.entra.token_url(tenant))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("client-request-id", "corr-1")
            .body(body)
            .send()
            .await
            .expect("send");
        let status = res.status().as_u16();
        let h = res.headers().clone();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            h,
        )
    }

    async fn exchange(&self, tenant: &str, pairs: &[(String, String)]) -> (u16, Value) {
        let (s, v, _) = self.post(tenant, encode(pairs)).await;
        (s, v)
    }
}

/// (what, form, status, error, AADSTS code)
type Case<'a> = (&'a str, Vec<(String, String)>, u16, &'a str, u64);

fn assert_error(status: u16, body: &Value, want_status: u16, want_error: &str, code: u64) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], want_error, "{body}");
    assert_eq!(body["error_codes"], json!([code]), "{body}");
    let desc = body["error_description"].as_str().unwrap();
    assert!(desc.starts_with(&format!("AADSTS{code}: ")), "{desc}");
    assert!(desc.contains("\r\nTrace ID: "), "{desc}");
    assert!(desc.contains("\r\nCorrelation ID: corr-1\r\n"), "{desc}");
    assert!(desc.contains("\r\nTimestamp: "), "{desc}");
    assert_eq!(body["correlation_id"], "corr-1");
    assert!(body["trace_id"].as_str().unwrap().len() == 36);
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        body["error_uri"],
        format!("https://{HOST}/error?code={code}")
    );
}

#[tokio::test]
async fn end_to_end_exchange_with_a_real_imds_assertion() {
    let e = env().await;
    let imds = FakeImds::start(
        ImdsConfig {
            tenant_id: A.into(),
            identities: vec![(MI_CLIENT.into(), MI_OID.into())],
            system_assigned_object_id: None,
            token_lifetime_secs: 86399,
        },
        e.imds_signer.clone(),
    )
    .await;
    let res: Value = reqwest::Client::new()
        .get(format!(
            "{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource={XCHG}&client_id={MI_CLIENT}",
            imds.endpoint()
        ))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let assertion = res["access_token"].as_str().unwrap();

    let (s, body, h) = e
        .post(B, encode(&form(assertion, &format!("{VAULT}/.default"))))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(h["client-request-id"], "corr-1");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], json!(3599));
    assert_eq!(body["ext_expires_in"], json!(3599));
    let claims = jwt::verify(
        body["access_token"].as_str().unwrap(),
        &[e.token_signer.verifier()],
    )
    .expect("signed by the Entra token signer");
    assert_eq!(claims["iss"], format!("https://sts.windows.net/{B}/"));
    assert_eq!(claims["tid"], B);
    assert_eq!(claims["aud"], VAULT);
    assert_eq!(claims["oid"], SP_B);
    assert_eq!(claims["appid"], APP);
    assert_eq!(claims["idtyp"], "app");
    let t = now();
    assert!(claims["nbf"].as_i64().unwrap() <= t && claims["iat"].as_i64().unwrap() <= t);
    assert!((claims["exp"].as_i64().unwrap() - (t + 3599)).abs() <= 2);

    // storage in B, and the same-tenant exchange in A
    let (s, body) = e
        .exchange(B, &form(assertion, &format!("{STORAGE}/.default")))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        jwt::decode_unverified(body["access_token"].as_str().unwrap()).unwrap()["aud"],
        STORAGE
    );
    let (s, body) = e
        .exchange(A, &form(assertion, &format!("{VAULT}/.default")))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        jwt::decode_unverified(body["access_token"].as_str().unwrap()).unwrap()["oid"],
        SP_A
    );

    // recorded exactly as sent
    let r = &e.entra.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, format!("/{B}/oauth2/v2.0/token"));
    let f = r.form();
    assert_eq!(f.len(), 5);
    assert!(f.contains(&("client_assertion".into(), assertion.into())));
}

#[tokio::test]
async fn request_shape_refusals() {
    let e = env().await;
    let good = e.assertion(json!({}));
    let scope = format!("{VAULT}/.default");
    let base = form(&good, &scope);
    let without = |k: &str| -> Vec<(String, String)> {
        base.iter().filter(|(n, _)| n != k).cloned().collect()
    };
    let with = |k: &str, v: &str| -> Vec<(String, String)> {
        let mut f = without(k);
        f.push((k.into(), v.into()));
        f
    };
    let mut plus = base.clone();
    plus.push(("client_secret".into(), "s3cr3t".into()));
    let mut dup_scope = base.clone();
    dup_scope.push(("scope".into(), format!("{STORAGE}/.default")));
    let cases: Vec<Case> = vec![
        (
            "unknown tenant",
            base.clone(),
            400,
            "invalid_request",
            90002,
        ),
        (
            "no grant_type",
            without("grant_type"),
            400,
            "invalid_request",
            900144,
        ),
        (
            "bad grant_type",
            with("grant_type", "authorization_code"),
            400,
            "unsupported_grant_type",
            70003,
        ),
        (
            "no client_id",
            without("client_id"),
            400,
            "invalid_request",
            900144,
        ),
        ("no scope", without("scope"), 400, "invalid_request", 900144),
        (
            "scope without /.default",
            with("scope", VAULT),
            400,
            "invalid_scope",
            70011,
        ),
        (
            "delegated scope",
            with("scope", "https://vault.azure.net/user_impersonation"),
            400,
            "invalid_scope",
            70011,
        ),
        (
            "extra openid scope",
            with("scope", &format!("{VAULT}/.default openid")),
            400,
            "invalid_scope",
            70011,
        ),
        (
            "two resources",
            with("scope", &format!("{VAULT}/.default {STORAGE}/.default")),
            400,
            "invalid_scope",
            700022,
        ),
        (
            "repeated scope field",
            dup_scope,
            400,
            "invalid_scope",
            70011,
        ),
        ("client secret", plus, 401, "invalid_client", 7000215),
        (
            "no assertion",
            without("client_assertion"),
            401,
            "invalid_client",
            7000218,
        ),
        (
            "no assertion type",
            without("client_assertion_type"),
            400,
            "invalid_request",
            900144,
        ),
        (
            "bad assertion type",
            with("client_assertion_type", "jwt-bearer"),
            400,
            "invalid_request",
            900144,
        ),
        (
            "unknown app",
            with("client_id", "dddddddd-0000-4000-8000-0000000000dd"),
            400,
            "unauthorized_client",
            700016,
        ),
        (
            "malformed assertion",
            with("client_assertion", "abc.def"),
            400,
            "invalid_request",
            50027,
        ),
    ];
    for (what, pairs, status, error, code) in &cases {
        let tenant = if *what == "unknown tenant" {
            "eeeeeeee-0000-4000-8000-00000000000e"
        } else {
            B
        };
        let (s, body) = e.exchange(tenant, pairs).await;
        eprintln!("{what}: {}", body["error_description"]);
        assert_error(s, &body, *status, error, *code);
    }
    // GET instead of POST
    let res = e
        .client
        .get(e.entra.token_url(B))
        .header("client-request-id", "corr-1")
        .send()
        .await
        .unwrap();
    let s = res.status().as_u16();
    assert_error(
        s,
        &res.json().await.unwrap(),
        400,
        "invalid_request",
        900561,
    );
    // JSON instead of a form: the form is empty
    let res = e
        .client
        .post(e.entra.token_url(B))
        .header("client-request-id", "corr-1")
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    let s = res.status().as_u16();
    assert_error(
        s,
        &res.json().await.unwrap(),
        400,
        "invalid_request",
        900144,
    );
    // unknown path
    let res = e
        .client
        .post(format!("{}/{B}/oauth2/token", e.entra.endpoint()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    assert_eq!(e.entra.requests().len(), cases.len() + 3);
    assert!(e.entra.requests().iter().all(|r| r.status != Some(200)));
}

#[tokio::test]
async fn assertion_refusals() {
    let e = env().await;
    let scope = format!("{VAULT}/.default");
    let t = now();
    let forged = Signer::new("imds-key").sign(&assertion_claims()); // same kid, other key
    let cases: Vec<(&str, String, u16, &str, u64)> = vec![
        ("forged signature", forged, 401, "invalid_client", 700027),
        (
            "unknown kid",
            Signer::new("other").sign(&assertion_claims()),
            401,
            "invalid_client",
            700027,
        ),
        (
            "expired",
            e.assertion(json!({"exp": t - 400, "nbf": t - 4000, "iat": t - 4000})),
            400,
            "invalid_client",
            700024,
        ),
        (
            "not yet valid",
            e.assertion(json!({"nbf": t + 3600})),
            400,
            "invalid_client",
            700024,
        ),
        (
            "no exp",
            e.assertion(json!({"exp": null})),
            400,
            "invalid_client",
            700024,
        ),
        (
            "wrong issuer (v1)",
            e.assertion(json!({"iss": format!("https://sts.windows.net/{A}/")})),
            400,
            "invalid_client",
            700211,
        ),
        (
            "wrong audience",
            e.assertion(json!({"aud": "api://AzureADTokenExchangeUSGov"})),
            400,
            "invalid_client",
            700212,
        ),
        (
            "subject in upper case",
            e.assertion(json!({"sub": MI_OID.to_uppercase()})),
            400,
            "invalid_client",
            700213,
        ),
        (
            "subject and audience wrong",
            e.assertion(json!({"sub": "x", "aud": "https://vault.azure.net"})),
            400,
            "invalid_client",
            70021,
        ),
    ];
    for (what, assertion, status, error, code) in &cases {
        let (s, body) = e.exchange(B, &form(assertion, &scope)).await;
        eprintln!("{what}: {}", body["error_description"]);
        assert_error(s, &body, *status, error, *code);
    }
    // aud as an array containing the exchange audience is fine
    let (s, body) = e
        .exchange(B, &form(&e.assertion(json!({"aud": [XCHG]})), &scope))
        .await;
    assert_eq!(s, 200, "{body}");
    // default clock skew tolerates an assertion expired 2 minutes ago; a zero skew does not
    let stale = e.assertion(json!({"exp": t - 120}));
    assert_eq!(e.exchange(B, &form(&stale, &scope)).await.0, 200);
    e.entra.set_clock_skew(0);
    let (s, body) = e.exchange(B, &form(&stale, &scope)).await;
    assert_error(s, &body, 400, "invalid_client", 700024);
}

#[tokio::test]
async fn directory_misconfigurations() {
    let e = env().await;
    let good = e.assertion(json!({}));
    let vault = form(&good, &format!("{VAULT}/.default"));
    let dir = e.entra.directory();
    assert_eq!(e.exchange(B, &vault).await.0, 200);

    // resource principal missing in B (e.g. Key Vault never used in that tenant)
    let (s, body) = e.exchange(C, &vault).await;
    assert_error(s, &body, 400, "unauthorized_client", 700016); // no SP in C first
    dir.add_service_principal(C, APP, "5c5c5c5c-0000-4000-8000-0000000000c5");
    let (s, body) = e.exchange(C, &vault).await;
    assert_error(s, &body, 400, "invalid_resource", 500011);

    // app not provisioned in B
    dir.remove_service_principal(B, APP);
    let (s, body) = e.exchange(B, &vault).await;
    assert_error(s, &body, 400, "unauthorized_client", 700016);
    dir.add_service_principal(B, APP, SP_B);
    // single-tenant app: not usable in B even with a stale SP entry
    dir.set_multi_tenant(APP, false);
    let (s, body) = e.exchange(B, &vault).await;
    assert_error(s, &body, 400, "unauthorized_client", 700016);
    dir.set_multi_tenant(APP, true);

    // FIC subject changed (e.g. MI recreated)
    dir.set_fic_subject(APP, "ffffffff-0000-4000-8000-0000000000ff");
    let (s, body) = e.exchange(B, &vault).await;
    assert_error(s, &body, 400, "invalid_client", 700213);
    dir.set_fic_subject(APP, MI_OID);
    dir.set_fic_issuer(APP, &format!("https://login.microsoftonline.com/{B}/v2.0"));
    let (s, body) = e.exchange(B, &vault).await;
    assert_error(s, &body, 400, "invalid_client", 700211);
    dir.set_fic_issuer(APP, &issuer_a());
    dir.set_fic_audiences(APP, vec!["api://AzureADTokenExchangeChina".into()]);
    let (s, body) = e.exchange(B, &vault).await;
    assert_error(s, &body, 400, "invalid_client", 700212);
    dir.set_fic_audiences(APP, vec![XCHG.into()]);

    // no FIC at all
    dir.set_federated_credentials(APP, vec![]);
    let (s, body) = e.exchange(B, &vault).await;
    assert_error(s, &body, 400, "invalid_client", 70025);
    // two FICs: a near miss first, the right one second -> accepted
    dir.set_federated_credentials(
        APP,
        vec![
            FederatedCredential {
                issuer: issuer_a(),
                subject: "someone-else".into(),
                audiences: vec![XCHG.into()],
            },
            FederatedCredential {
                issuer: issuer_a(),
                subject: MI_OID.into(),
                audiences: vec![XCHG.into()],
            },
        ],
    );
    assert_eq!(e.exchange(B, &vault).await.0, 200);

    // federation disabled in the resource tenant, then in the home tenant
    dir.disable_federation(B);
    let (s, body) = e.exchange(B, &vault).await;
    assert_error(s, &body, 400, "invalid_request", 700223);
    dir.enable_federation(B);
    dir.disable_federation(A);
    let (s, body) = e.exchange(B, &vault).await;
    assert_error(s, &body, 400, "invalid_request", 700223);
    dir.enable_federation(A);

    dir.remove_resource_principal(B, VAULT);
    let (s, body) = e.exchange(B, &vault).await;
    assert_error(s, &body, 400, "invalid_resource", 500011);
    assert_eq!(
        e.exchange(B, &form(&good, &format!("{STORAGE}/.default")))
            .await
            .0,
        200
    );
    assert!(dir
        .snapshot()
        .resource_principals
        .iter()
        .all(|(t, r)| !(t == B && r == VAULT)));
}

#[tokio::test]
async fn faults_and_wrong_host() {
    let e = env().await;
    let good = e.assertion(json!({}));
    let vault = form(&good, &format!("{VAULT}/.default"));
    e.entra.push_fault(Fault::retry_after(429, 2));
    e.entra.push_fault(Fault::Status {
        status: 503,
        headers: vec![],
        body: String::new(),
    });
    let (s, _, h) = e.post(B, encode(&vault)).await;
    assert_eq!((s, h["retry-after"].to_str().unwrap()), (429, "2"));
    assert_eq!(e.exchange(B, &vault).await.0, 503);
    assert_eq!(e.exchange(B, &vault).await.0, 200);
    // reaching the address under another name (Host header) is not the token service
    let c = client_trusting(&e.pki.ca_pem(), &[]);
    let res = c
        .post(format!(
            "https://127.0.0.1:{}/{B}/oauth2/v2.0/token",
            e.entra.addr().port()
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&vault))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
}
