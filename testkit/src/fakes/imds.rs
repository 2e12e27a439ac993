//! Strict fake of the Azure Instance Metadata Service managed-identity token endpoint
//! (plain HTTP, like the real `http://169.254.169.254`).
//!
//! Refusals, checked in this order (first failing check answers), each with IMDS's
//! `{"error","error_description"}` JSON:
//!
//! | check | status | error |
//! |---|---|---|
//! | path is `/metadata/identity/oauth2/token` | 404 | `not_found` |
//! | method is GET | 405 | `method_not_allowed` |
//! | header `Metadata: true` (exactly) | 400 | `bad_request_102` "Required metadata header not specified" |
//! | no `X-Forwarded-For` | 400 | `bad_request_102` (status real, text inferred) |
//! | no repeated query names | 400 | `invalid_request` |
//! | `api-version` present and `2018-02-01` | 400 | `invalid_request` |
//! | no `scope` parameter | 400 | `invalid_request` |
//! | `resource` present | 400 | `invalid_request` "Required query variable 'resource' is missing" |
//! | `resource` not a v2 scope (`/.default`) | 400 | `invalid_resource` AADSTS500011 |
//! | at most one of client_id/object_id/msi_res_id | 400 | `invalid_request` |
//! | the identity exists | 400 | `invalid_request` "Identity not found" |

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::fakes::http::{FakeServer, Fault, Recorded, Reply};
use crate::trust::jwt::{now, Signer};

pub const TOKEN_PATH: &str = "/metadata/identity/oauth2/token";
pub const API_VERSION: &str = "2018-02-01";

/// Fake IMDS configuration.
#[derive(Clone, Debug)]
pub struct ImdsConfig {
    pub tenant_id: String,
    /// user-assigned identities: client_id -> object (principal) id
    pub identities: Vec<(String, String)>,
    /// object id used when no client_id is given; None => 400 like a VM with no system identity
    pub system_assigned_object_id: Option<String>,
    /// default 86399 like real MI tokens
    pub token_lifetime_secs: i64,
}

impl Default for ImdsConfig {
    fn default() -> Self {
        ImdsConfig {
            tenant_id: String::new(),
            identities: Vec::new(),
            system_assigned_object_id: None,
            token_lifetime_secs: 86399,
        }
    }
}

struct State {
    cfg: Mutex<ImdsConfig>,
    signer: Arc<Signer>,
    /// IMDS's identity rate limit (per VM, per second), when enforced, and the token requests
    /// answered in the last second.
    rate: Mutex<(
        Option<usize>,
        std::collections::VecDeque<std::time::Instant>,
    )>,
}

fn over_rate(state: &State) -> bool {
    let mut rate = state.rate.lock().unwrap();
    let Some(limit) = rate.0 else {
        return false;
    };
    let now = std::time::Instant::now();
    while rate
        .1
        .front()
        .is_some_and(|t| now.duration_since(*t) >= std::time::Duration::from_secs(1))
    {
        rate.1.pop_front();
    }
    if rate.1.len() >= limit {
        return true;
    }
    rate.1.push_back(now);
    false
}

/// A running fake IMDS. Stops when dropped.
pub struct FakeImds {
    server: FakeServer,
    state: Arc<State>,
}

impl FakeImds {
    pub async fn start(cfg: ImdsConfig, signer: Arc<Signer>) -> FakeImds {
        let state = Arc::new(State {
            cfg: Mutex::new(cfg),
            signer,
            rate: Mutex::new((None, std::collections::VecDeque::new())),
        });
        let st = state.clone();
        let server = FakeServer::start(None, Arc::new(move |r: &Recorded| handle(&st, r))).await;
        FakeImds { server, state }
    }

    /// Enforces IMDS's identity limit of `per_second` token requests per second (20 on a real
    /// VM): beyond it, 429 with `Retry-After: 1`, as a cold burst without single-flight meets.
    pub fn set_rate_limit(&self, per_second: Option<usize>) {
        self.state.rate.lock().unwrap().0 = per_second;
    }

    /// "http://127.0.0.1:PORT" (origin, no path).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    /// Every request, accepted or refused.
    pub fn requests(&self) -> Vec<Recorded> {
        self.server.requests()
    }

    /// Only those answered 200.
    pub fn token_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.status == Some(200))
            .collect()
    }

    pub fn push_fault(&self, f: Fault) {
        self.server.push_fault(f);
    }

    /// Forget recorded requests.
    pub fn clear(&self) {
        self.server.clear();
    }

    /// Lifetime of tokens issued from now on (e.g. short-lived tokens to test refresh).
    pub fn set_token_lifetime(&self, secs: i64) {
        self.state.cfg.lock().unwrap().token_lifetime_secs = secs;
    }

    /// Gives the "VM" a system-assigned identity with this object id (`None`: none, so a
    /// request without a client id is refused).
    pub fn set_system_assigned(&self, object_id: Option<String>) {
        self.state.cfg.lock().unwrap().system_assigned_object_id = object_id;
    }

    /// Replace the user-assigned identities attached to the "VM".
    pub fn set_identities(&self, identities: Vec<(String, String)>) {
        self.state.cfg.lock().unwrap().identities = identities;
    }
}

fn err(status: u16, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": error, "error_description": description}),
    )
    .header("server", "IMDS/150.870.65.1854")
}

/// True for the token-exchange audiences, which get v2 tokens.
pub fn is_exchange_audience(resource: &str) -> bool {
    resource
        .trim_end_matches('/')
        .starts_with("api://AzureADTokenExchange")
}

fn handle(state: &State, r: &Recorded) -> Reply {
    if r.path == TOKEN_PATH && over_rate(state) {
        let mut reply = err(429, "too_many_requests", "Too many requests");
        reply.headers.push(("retry-after".into(), "1".into()));
        return reply;
    }
    if r.path != TOKEN_PATH {
        return err(
            404,
            "not_found",
            &format!("The requested path {} was not found", r.path),
        );
    }
    if r.method != "GET" {
        return err(
            405,
            "method_not_allowed",
            &format!("The method {} is not allowed on {TOKEN_PATH}", r.method),
        );
    }
    let metadata = r.header_all("metadata");
    if metadata.len() != 1 || metadata[0] != "true" {
        return err(
            400,
            "bad_request_102",
            "Required metadata header not specified",
        );
    }
    if r.header("x-forwarded-for").is_some() {
        return err(
            400,
            "bad_request_102",
            "Request contains X-Forwarded-For header; requests through a proxy are rejected",
        );
    }
    for (i, (k, _)) in r.query.iter().enumerate() {
        if r.query[..i].iter().any(|(k2, _)| k2 == k) {
            return err(
                400,
                "invalid_request",
                &format!("Query parameter '{k}' is specified more than once"),
            );
        }
    }
    match r.query("api-version") {
        None => {
            return err(
                400,
                "invalid_request",
                "Required query variable 'api-version' is missing",
            )
        }
        Some(API_VERSION) => {}
        Some(v) => {
            return err(
                400,
                "invalid_request",
                &format!("Invalid or unsupported api-version '{v}'"),
            )
        }
    }
    if r.query("scope").is_some() {
        return err(
            400,
            "invalid_request",
            "Unsupported query variable 'scope': the managed identity endpoint takes a v1 'resource'",
        );
    }
    let cfg = state.cfg.lock().unwrap().clone();
    let resource = match r.query("resource") {
        None | Some("") => {
            return err(
                400,
                "invalid_request",
                "Required query variable 'resource' is missing",
            )
        }
        Some(res) => res.to_string(),
    };
    if resource.ends_with("/.default") {
        return err(
            400,
            "invalid_resource",
            &format!(
                "AADSTS500011: The resource principal named {resource} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
                cfg.tenant_id
            ),
        );
    }
    let selectors: Vec<(&str, &str)> = ["client_id", "object_id", "msi_res_id"]
        .iter()
        .filter_map(|k| r.query(k).map(|v| (*k, v)))
        .collect();
    if selectors.len() > 1 {
        return err(
            400,
            "invalid_request",
            "Only one of client_id, object_id, msi_res_id may be specified",
        );
    }
    let identity: Option<(String, String)> = match selectors.first() {
        None => cfg
            .system_assigned_object_id
            .clone()
            // A system-assigned identity's app id is not configured: reuse its object id.
            .map(|oid| (oid.clone(), oid)),
        Some(("client_id", id)) => cfg
            .identities
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(id))
            .cloned(),
        Some(("object_id", id)) => cfg
            .identities
            .iter()
            .find(|(_, o)| o.eq_ignore_ascii_case(id))
            .cloned(),
        // No resource ids are configured: msi_res_id never matches.
        Some(_) => None,
    };
    let Some((client_id, object_id)) = identity else {
        return err(400, "invalid_request", "Identity not found");
    };

    let t = now();
    let iat = t - 300; // Entra backdates iat/nbf by five minutes.
    let exp = t + cfg.token_lifetime_secs;
    let v2 = is_exchange_audience(&resource);
    let mut claims = json!({
        "aud": resource,
        "iss": if v2 {
            format!("https://login.microsoftonline.com/{}/v2.0", cfg.tenant_id)
        } else {
            format!("https://sts.windows.net/{}/", cfg.tenant_id)
        },
        "iat": iat,
        "nbf": iat,
        "exp": exp,
        "tid": cfg.tenant_id,
        "oid": object_id,
        "sub": object_id,
        "idtyp": "app",
        "ver": if v2 { "2.0" } else { "1.0" },
        "uti": crate::trust::ids::random_hex(11),
        "xms_mirid": format!("/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{object_id}"),
    });
    let obj = claims.as_object_mut().expect("object");
    if v2 {
        obj.insert("azp".into(), Value::String(client_id.clone()));
        obj.insert("azpacr".into(), Value::String("2".into()));
    } else {
        obj.insert("appid".into(), Value::String(client_id.clone()));
        obj.insert("appidacr".into(), Value::String("2".into()));
    }
    // The token-exchange assertion keeps `appid` too: some validators look for it.
    obj.entry("appid")
        .or_insert_with(|| Value::String(client_id.clone()));
    let token = state.signer.sign(&claims);
    Reply::json(
        200,
        &json!({
            "access_token": token,
            "refresh_token": "",
            "expires_in": cfg.token_lifetime_secs.to_string(),
            "expires_on": exp.to_string(),
            "not_before": iat.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id,
        }),
    )
    .header("server", "IMDS/150.870.65.1854")
}
