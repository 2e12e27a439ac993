//! Whole requests on the host target: a scripted Azure (IMDS, Entra, Key Vault, Storage, a
//! registry) behind the transport, an in-memory store, a still clock. These pin the decisions;
//! the integration tests in `tests/` prove the same through the compiled component.

use super::*;
use crate::identity::cache;
use crate::identity::store::memory::{Counts, MemStore};
use crate::net::clock::fake::FakeClock;
use crate::net::cloud::Service;
use crate::net::upstream::scripted::Chunks;
use crate::net::upstream::{BodyReader, Head, NetError, Peer, Request};
use base64::Engine;
use std::collections::{HashMap, VecDeque};

const NOW: u64 = 1_800_000_000;
const KEY: &str = "ops:0123456789abcdef";
const TA: &str = "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa";
const TB: &str = "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb";
const TC: &str = "cccccccc-3333-4333-8333-cccccccccccc";
const MI: &str = "c1c1c1c1-3333-4333-8333-c1c1c1c1c1c1";
const APP: &str = "a9a9a9a9-5555-4555-8555-a9a9a9a9a9a9";

fn jwt(claims: serde_json::Value) -> String {
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    format!(
        "{}.{}.c2ln",
        b64(br#"{"alg":"RS256"}"#),
        b64(claims.to_string().as_bytes())
    )
}

/// A reply: status, headers, body.
type Canned = (u16, Vec<(&'static str, String)>, String);

/// A scripted Azure: answers by service and path, records every request.
#[derive(Default)]
struct Azure {
    sent: RefCell<Vec<Request>>,
    /// Replies queued for the next request whose path starts with the key.
    overrides: RefCell<Vec<(String, Canned)>>,
    /// The tenant each vault host belongs to.
    vault_tenants: HashMap<&'static str, &'static str>,
    counter: RefCell<u32>,
}

impl Azure {
    fn new() -> Azure {
        Azure {
            vault_tenants: [
                ("a.vault.azure.net", TA),
                ("b.vault.azure.net", TB),
                ("c.vault.azure.net", TC),
            ]
            .into_iter()
            .collect(),
            ..Azure::default()
        }
    }
    fn once(&self, path_part: &str, status: u16, headers: &[(&'static str, &str)], body: &str) {
        self.overrides.borrow_mut().push((
            path_part.to_string(),
            (
                status,
                headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
                body.to_string(),
            ),
        ));
    }
    fn calls(&self) -> Vec<String> {
        self.sent
            .borrow()
            .iter()
            .map(|r| format!("{} {}", r.peer.name(), r.origin.host))
            .collect()
    }
    fn clear(&self) {
        self.sent.borrow_mut().clear();
    }
    fn bearer_to(&self, host: &str) -> Vec<String> {
        self.sent
            .borrow()
            .iter()
            .filter(|r| r.origin.host == host)
            .filter_map(|r| {
                r.headers
                    .iter()
                    .find(|(k, _)| *k == "authorization")
                    .map(|(_, v)| v.clone())
            })
            .collect()
    }
    fn serial(&self) -> u32 {
        let mut c = self.counter.borrow_mut();
        *c += 1;
        *c
    }
    fn answer(&self, req: &Request) -> (u16, Vec<(&'static str, String)>, String) {
        let found = self
            .overrides
            .borrow()
            .iter()
            .position(|(p, _)| req.path_and_query.starts_with(p.as_str()));
        if let Some(i) = found {
            return self.overrides.borrow_mut().remove(i).1;
        }
        let n = self.serial();
        let form = crate::wire::urlenc::parse_query(std::str::from_utf8(&req.body).unwrap_or(""))
            .unwrap_or_default();
        let field = |k: &str| {
            form.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let bearer = req.headers.iter().any(|(k, _)| *k == "authorization");
        match req.peer {
            Peer::Imds => {
                let resource = req
                    .path_and_query
                    .split("resource=")
                    .nth(1)
                    .unwrap_or("")
                    .split('&')
                    .next()
                    .unwrap_or("");
                let token = jwt(
                    serde_json::json!({"tid": TA, "oid": "mi-oid", "aud": resource, "n": n, "exp": NOW + 86_400}),
                );
                (200, vec![], serde_json::json!({"access_token": token, "expires_on": (NOW + 86_400).to_string(), "expires_in": "86400"}).to_string())
            }
            Peer::Entra => {
                let tenant = req
                    .path_and_query
                    .split('/')
                    .nth(1)
                    .unwrap_or("")
                    .to_string();
                let token = jwt(
                    serde_json::json!({"tid": tenant, "oid": "sp-oid", "scope": field("scope"), "n": n, "exp": NOW + 3_600}),
                );
                (200, vec![], serde_json::json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}).to_string())
            }
            Peer::Service(Service::KeyVault) => {
                let tenant = self
                    .vault_tenants
                    .get(req.origin.host.as_str())
                    .copied()
                    .unwrap_or(TA);
                let challenge = format!(
                    r#"Bearer authorization="https://login.windows.net/{tenant}", resource="https://vault.azure.net""#
                );
                if bearer {
                    (
                        200,
                        vec![],
                        serde_json::json!({"value": format!("secret-of-{}", req.origin.host)})
                            .to_string(),
                    )
                } else {
                    (
                        401,
                        vec![("www-authenticate", challenge)],
                        r#"{"error":{"code":"Unauthorized"}}"#.into(),
                    )
                }
            }
            Peer::Service(Service::Blob) => {
                (200, vec![("content-length", "5".into())], "hello".into())
            }
            Peer::Service(Service::Registry) if req.path_and_query == "/oauth2/exchange" => {
                let rt = jwt(
                    serde_json::json!({"n": n, "exp": NOW + 10_800, "tenant": field("tenant")}),
                );
                (
                    200,
                    vec![],
                    serde_json::json!({"refresh_token": rt}).to_string(),
                )
            }
            Peer::Service(Service::Registry) => {
                let access: Vec<serde_json::Value> = field("scope")
                    .split(' ')
                    .filter_map(|s| s.split(':').nth(1).map(|name| serde_json::json!({"type": "repository", "name": name, "actions": ["pull"]})))
                    .collect();
                let at = jwt(serde_json::json!({"n": n, "exp": NOW + 4_500, "access": access}));
                (
                    200,
                    vec![],
                    serde_json::json!({"access_token": at}).to_string(),
                )
            }
        }
    }
}

impl Transport for Azure {
    type Body = Chunks;
    fn open(&self, req: &Request, _timeout: Duration) -> Result<(Head, Chunks), NetError> {
        self.sent.borrow_mut().push(req.clone());
        let (status, headers, body) = self.answer(req);
        Ok((
            Head {
                status: StatusCode::from_u16(status).unwrap(),
                headers: headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            },
            Chunks(VecDeque::from([Ok(body.into_bytes())])),
        ))
    }
}

fn base_vars() -> HashMap<&'static str, &'static str> {
    [
        ("function_keys", KEY),
        ("azure_client_id", MI),
        ("app_client_id", APP),
        ("keyvault_endpoint", "https://a.vault.azure.net"),
        ("blob_service_endpoint", "https://a.blob.core.windows.net"),
        ("cross_tenant_name", "b"),
        ("cross_tenant_id", TB),
        ("cross_keyvault_endpoint", "https://b.vault.azure.net"),
        (
            "cross_blob_service_endpoint",
            "https://b.blob.core.windows.net",
        ),
        ("cross_tenant_registries", "hub.azurecr.io"),
        ("cross_tenant_repositories", "base/*"),
        ("profile1_name", "c"),
        ("profile1_tenant_id", TC),
        ("profile1_keyvault_endpoint", "https://c.vault.azure.net"),
    ]
    .into_iter()
    .collect()
}

struct Run {
    status: u16,
    body: Vec<u8>,
    code: Option<String>,
}

fn run(azure: &Azure, store: &MemStore, vars: &HashMap<&str, &str>, path_and_query: &str) -> Run {
    let clock = FakeClock::at(NOW);
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let open = |_: &str| Some(Box::new(store.clone()) as Box<dyn Store>);
    let platform = Platform {
        vars,
        http: azure,
        open_store: &open,
        clock: &clock,
        request_id: "req-1",
    };
    let incoming = Incoming {
        method: &http::Method::GET,
        path,
        query,
        key_headers: vec!["0123456789abcdef".into()],
    };
    let mut line = RequestLine::default();
    match handle(&incoming, &platform, &mut line) {
        Reply::Complete(a) => Run {
            status: a.status.as_u16(),
            body: a.body,
            code: line.code,
        },
        Reply::Blob { plan, mut body } => {
            let mut out = Vec::new();
            while let Ok(Some(c)) = body.next_chunk(Duration::from_secs(1)) {
                out.extend(c);
            }
            assert_eq!(plan.blob_bytes, Some(out.len() as u64));
            Run {
                status: 200,
                body: out,
                code: None,
            }
        }
    }
}

const ENDPOINTS: [&str; 6] = [
    "/api/GetSecretSameTenant?key=TEST-SECRET-001",
    "/api/GetSecretCrossTenant?key=TEST-SECRET-001",
    "/api/GetSecretCrossTenant?key=TEST-SECRET-001&tenant=c",
    "/api/DownloadBlobSameTenant?container=seed&blob=greeting.txt",
    "/api/DownloadBlobCrossTenant?container=seed&blob=greeting.txt",
    "/api/acr/token?registry=hub.azurecr.io&repository=base/alpine",
];

#[test]
fn a_warm_request_is_one_read_no_write_and_one_call_on_every_endpoint() {
    let vars = base_vars();
    for endpoint in ENDPOINTS {
        let (azure, store) = (Azure::new(), MemStore::default());
        assert_eq!(
            run(&azure, &store, &vars, endpoint).status,
            200,
            "{endpoint} cold"
        );
        azure.clear();
        store.reset_counts();
        let warm = run(&azure, &store, &vars, endpoint);
        assert_eq!(warm.status, 200, "{endpoint}");
        assert_eq!(azure.calls().len(), 1, "{endpoint}: {:?}", azure.calls());
        assert_eq!(
            store.counts(),
            Counts {
                reads: 1,
                writes: 0
            },
            "{endpoint}"
        );
    }
}

#[test]
fn cold_paths_make_the_calls_the_flow_needs() {
    let vars = base_vars();
    let cold = |endpoint| {
        let (azure, store) = (Azure::new(), MemStore::default());
        assert_eq!(run(&azure, &store, &vars, endpoint).status, 200);
        azure.calls()
    };
    assert_eq!(
        cold(ENDPOINTS[0]),
        [
            "Key Vault a.vault.azure.net",
            "IMDS 169.254.169.254",
            "Key Vault a.vault.azure.net"
        ]
    );
    assert_eq!(
        cold(ENDPOINTS[1]),
        [
            "Key Vault b.vault.azure.net",
            "IMDS 169.254.169.254",
            "Entra ID login.microsoftonline.com",
            "Key Vault b.vault.azure.net"
        ]
    );
    assert_eq!(
        cold(ENDPOINTS[3]),
        [
            "IMDS 169.254.169.254",
            "Blob Storage a.blob.core.windows.net"
        ]
    );
    assert_eq!(
        cold(ENDPOINTS[5]),
        [
            "IMDS 169.254.169.254",
            "Entra ID login.microsoftonline.com",
            "the container registry hub.azurecr.io",
            "the container registry hub.azurecr.io"
        ]
    );
}

#[test]
fn each_profile_gets_its_own_tenants_tokens() {
    let vars = base_vars();
    let (azure, store) = (Azure::new(), MemStore::default());
    let b = run(&azure, &store, &vars, ENDPOINTS[1]);
    let c = run(&azure, &store, &vars, ENDPOINTS[2]);
    assert_eq!(b.body, b"secret-of-b.vault.azure.net");
    assert_eq!(c.body, b"secret-of-c.vault.azure.net");
    let tid = |bearer: &str| {
        crate::identity::jwt::claims(bearer.trim_start_matches("Bearer "))
            .unwrap()
            .tid
    };
    assert!(azure
        .bearer_to("b.vault.azure.net")
        .iter()
        .all(|t| tid(t) == TB));
    assert!(azure
        .bearer_to("c.vault.azure.net")
        .iter()
        .all(|t| tid(t) == TC));
    // The assertion was fetched once and shared; each tenant's token once.
    let calls = azure.calls();
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("IMDS")).count(),
        1,
        "{calls:?}"
    );
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("Entra")).count(),
        2,
        "{calls:?}"
    );
}

#[test]
fn a_refused_cached_token_is_dropped_and_retried_once() {
    let vars = base_vars();
    let (azure, store) = (Azure::new(), MemStore::default());
    run(&azure, &store, &vars, ENDPOINTS[0]);
    azure.clear();
    let challenge = r#"Bearer authorization="https://login.windows.net/aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa", resource="https://vault.azure.net""#;
    azure.once(
        "/secrets/",
        401,
        &[("www-authenticate", challenge)],
        r#"{"error":{"code":"Unauthorized","message":"expired"}}"#,
    );
    let r = run(&azure, &store, &vars, ENDPOINTS[0]);
    assert_eq!(r.status, 200);
    // The refusal's own challenge is used: no second probe.
    assert_eq!(
        azure.calls(),
        [
            "Key Vault a.vault.azure.net",
            "IMDS 169.254.169.254",
            "Key Vault a.vault.azure.net"
        ]
    );
    // Refused twice: the answer is the mapped refusal, after exactly one retry.
    azure.clear();
    for _ in 0..3 {
        azure.once(
            "/secrets/",
            401,
            &[("www-authenticate", challenge)],
            r#"{"error":{"code":"Unauthorized","message":"no"}}"#,
        );
    }
    let r = run(&azure, &store, &vars, ENDPOINTS[0]);
    assert_eq!(
        (r.status, r.code.as_deref()),
        (502, Some("keyvault-token-refused"))
    );
}

#[test]
fn a_system_assigned_identitys_tokens_never_enter_the_shared_store() {
    let mut vars = base_vars();
    vars.remove("azure_client_id");
    for endpoint in [ENDPOINTS[0], ENDPOINTS[3]] {
        let (azure, store) = (Azure::new(), MemStore::default());
        for _ in 0..2 {
            assert_eq!(
                run(&azure, &store, &vars, endpoint).status,
                200,
                "{endpoint}"
            );
        }
        let imds = azure
            .calls()
            .iter()
            .filter(|c| c.starts_with("IMDS"))
            .count();
        assert_eq!(imds, 2, "{endpoint}: {:?}", azure.calls());
        assert_eq!(store.counts(), Counts::default(), "{endpoint}");
    }
}

#[test]
fn a_foreign_challenge_resource_or_tenant_gets_no_token() {
    let vars = base_vars();
    for (challenge, code) in [
        (
            r#"Bearer authorization="https://login.windows.net/aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa", resource="https://net""#,
            "keyvault-challenge-invalid",
        ),
        (
            r#"Bearer authorization="https://login.windows.net/aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa", resource="https://evil.example""#,
            "keyvault-challenge-invalid",
        ),
        (
            r#"Bearer authorization="https://login.windows.net/dddddddd-1111-4111-8111-dddddddddddd", resource="https://vault.azure.net""#,
            "keyvault-tenant-mismatch",
        ),
    ] {
        for endpoint in [ENDPOINTS[0], ENDPOINTS[1]] {
            let (azure, store) = (Azure::new(), MemStore::default());
            azure.once("/secrets/", 401, &[("www-authenticate", challenge)], "");
            let r = run(&azure, &store, &vars, endpoint);
            assert_eq!(
                (r.status, r.code.as_deref()),
                (502, Some(code)),
                "{endpoint} {challenge}"
            );
            let host = if endpoint == ENDPOINTS[0] {
                "a.vault.azure.net"
            } else {
                "b.vault.azure.net"
            };
            assert!(azure.bearer_to(host).is_empty(), "a token went to {host}");
        }
    }
}

#[test]
fn a_token_whose_tenant_cannot_be_read_is_not_sent_to_a_vault() {
    let vars = base_vars();
    for (endpoint, issuer_path) in [
        (ENDPOINTS[0], "/metadata/identity/oauth2/token"),
        (
            ENDPOINTS[1],
            "/bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb/oauth2/v2.0/token",
        ),
    ] {
        let (azure, store) = (Azure::new(), MemStore::default());
        for token in ["opaque-not-a-jwt", &jwt(serde_json::json!({"oid": "x"}))] {
            azure.once(
                issuer_path,
                200,
                &[],
                &serde_json::json!({"access_token": token, "expires_in": 3599}).to_string(),
            );
            let r = run(&azure, &store, &vars, endpoint);
            assert_eq!(
                (r.status, r.code.as_deref()),
                (502, Some("keyvault-tenant-mismatch")),
                "{endpoint}"
            );
        }
        for host in ["a.vault.azure.net", "b.vault.azure.net"] {
            assert!(azure.bearer_to(host).is_empty(), "a token went to {host}");
        }
    }
}

#[test]
fn a_storage_endpoint_outside_the_cloud_is_refused_with_no_call() {
    let mut vars = base_vars();
    vars.insert("cross_blob_service_endpoint", "https://attacker.example");
    let (azure, store) = (Azure::new(), MemStore::default());
    let r = run(&azure, &store, &vars, ENDPOINTS[4]);
    assert_eq!(
        (r.status, r.code.as_deref()),
        (500, Some("configuration-invalid"))
    );
    assert!(String::from_utf8_lossy(&r.body).contains("cross_blob_service_endpoint"));
    assert!(azure.calls().is_empty());
}

#[test]
fn a_rejected_assertion_is_not_presented_again() {
    let vars = base_vars();
    let (azure, store) = (Azure::new(), MemStore::default());
    azure.once(
        "/bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb/oauth2/v2.0/token",
        400,
        &[],
        r#"{"error":"invalid_client","error_codes":[700024]}"#,
    );
    let r = run(&azure, &store, &vars, ENDPOINTS[1]);
    assert_eq!(
        (r.status, r.code.as_deref()),
        (502, Some("entra-assertion-expired"))
    );
    azure.clear();
    assert_eq!(run(&azure, &store, &vars, ENDPOINTS[1]).status, 200);
    // A new assertion was fetched from IMDS rather than the refused one reused.
    assert!(
        azure.calls().iter().any(|c| c.starts_with("IMDS")),
        "{:?}",
        azure.calls()
    );
}

#[test]
fn a_registry_that_grants_less_is_refused() {
    let vars = base_vars();
    let (azure, store) = (Azure::new(), MemStore::default());
    let at = jwt(
        serde_json::json!({"exp": NOW + 4_500, "access": [{"type": "repository", "name": "base/alpine", "actions": []}]}),
    );
    azure.once(
        "/oauth2/token",
        200,
        &[],
        &serde_json::json!({"access_token": at}).to_string(),
    );
    let r = run(&azure, &store, &vars, ENDPOINTS[5]);
    assert_eq!(
        (r.status, r.code.as_deref()),
        (403, Some("registry-repository-denied"))
    );
    assert!(!String::from_utf8_lossy(&r.body).contains(&at));
}

#[test]
fn an_entra_token_the_registry_refused_is_not_presented_again() {
    let vars = base_vars();
    let (azure, store) = (Azure::new(), MemStore::default());
    azure.once(
        "/oauth2/exchange",
        401,
        &[],
        r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
    );
    let r = run(&azure, &store, &vars, ENDPOINTS[5]);
    assert_eq!(
        (r.status, r.code.as_deref()),
        (502, Some("registry-exchange-refused"))
    );
    azure.clear();
    assert_eq!(run(&azure, &store, &vars, ENDPOINTS[5]).status, 200);
    // A new Entra token was fetched rather than the refused one reused.
    assert!(
        azure.calls().iter().any(|c| c.starts_with("Entra")),
        "{:?}",
        azure.calls()
    );
}

#[test]
fn a_pull_token_has_the_documented_shape_and_never_the_refresh_token() {
    let vars = base_vars();
    let (azure, store) = (Azure::new(), MemStore::default());
    let r = run(
        &azure,
        &store,
        &vars,
        "/api/acr/token?registry=hub.azurecr.io&repository=base/a&repository=base/b",
    );
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["username"], "00000000-0000-0000-0000-000000000000");
    assert_eq!(v["scope"], "repository:base/a:pull repository:base/b:pull");
    assert_eq!(v["expires_on"], NOW + 4_500);
    let password = v["password"].as_str().unwrap();
    assert!(crate::identity::jwt::claims(password).unwrap().access.len() == 2);
    let exchange = azure
        .sent
        .borrow()
        .iter()
        .find(|r| r.path_and_query == "/oauth2/exchange")
        .cloned()
        .unwrap();
    let form =
        crate::wire::urlenc::parse_query(std::str::from_utf8(&exchange.body).unwrap()).unwrap();
    assert!(form.contains(&("tenant".to_string(), TB.to_string())));
    assert!(form.contains(&("service".to_string(), "hub.azurecr.io".to_string())));
    let refresh = store
        .raw(&cache::key("acr", &["tb2|fed|public|bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb|c1c1c1c1-3333-4333-8333-c1c1c1c1c1c1|a9a9a9a9-5555-4555-8555-a9a9a9a9a9a9|https://containerregistry.azure.net", "hub.azurecr.io"]))
        .expect("the refresh token is cached");
    let refresh: serde_json::Value = serde_json::from_slice(&refresh).unwrap();
    let refresh = refresh["token"].as_str().unwrap();
    assert!(!String::from_utf8_lossy(&r.body).contains(refresh));
}

#[test]
fn probes_read_nothing_or_only_configuration() {
    let vars = base_vars();
    let (azure, store) = (Azure::new(), MemStore::default());
    let live = run(&azure, &store, &HashMap::new(), "/api/livez");
    assert_eq!(
        (live.status, live.body.as_slice()),
        (200, &br#"{"status":"alive"}"#[..])
    );
    let health = run(&azure, &store, &vars, "/api/healthz");
    assert_eq!(
        health.status,
        200,
        "{}",
        String::from_utf8_lossy(&health.body)
    );
    assert!(azure.calls().is_empty() && store.counts() == Counts::default());
}

#[test]
fn the_blob_body_is_relayed_from_storage() {
    let vars = base_vars();
    let (azure, store) = (Azure::new(), MemStore::default());
    let r = run(&azure, &store, &vars, ENDPOINTS[3]);
    assert_eq!(r.body, b"hello");
    let mut limited = vars.clone();
    limited.insert("max_blob_bytes", "4");
    let r = run(&azure, &store, &limited, ENDPOINTS[3]);
    assert_eq!((r.status, r.code.as_deref()), (413, Some("blob-too-large")));
}
