//! Strict fake of the Entra ID v2 token endpoint (HTTPS), client_credentials with a federated
//! client assertion: `POST /{tenant}/oauth2/v2.0/token`, form-encoded.
//!
//! Checks, in order (first failing check answers). Every error is Entra's JSON
//! `{"error","error_description":"AADSTSn: …\r\nTrace ID: …\r\nCorrelation ID: …\r\nTimestamp: …",
//! "error_codes":[n],"timestamp","trace_id","correlation_id","error_uri"}`:
//!
//! | check | status | error | AADSTS |
//! |---|---|---|---|
//! | `Host` is `{host}:{port}` or `{host}` | 404 | `not_found` | (no code; inferred) |
//! | path `/{tenant}/oauth2/v2.0/token` | 404 | `not_found` | (no code) |
//! | method POST | 400 | `invalid_request` | 900561 |
//! | tenant exists | 400 | `invalid_request` | 90002 |
//! | body is form-encoded (else parsed as empty) and has `grant_type` | 400 | `invalid_request` | 900144 |
//! | `grant_type=client_credentials` | 400 | `unsupported_grant_type` | 70003 |
//! | `client_id` present | 400 | `invalid_request` | 900144 |
//! | `scope` present | 400 | `invalid_request` | 900144 |
//! | `scope` is one `<resource>/.default` | 400 | `invalid_scope` | 70011 (700022 when several resources) |
//! | no `client_secret` | 401 | `invalid_client` | 7000215 |
//! | `client_assertion` present | 401 | `invalid_client` | 7000218 |
//! | `client_assertion_type` is jwt-bearer | 400 | `invalid_request` | 900144 (inferred) |
//! | app exists, has a service principal in the tenant (single-tenant apps only at home) | 400 | `unauthorized_client` | 700016 |
//! | assertion is a JWT | 400 | `invalid_request` | 50027 |
//! | federation not disabled in the request tenant nor the app's home tenant | 400 | `invalid_request` | 700223 |
//! | the app has FICs | 400 | `invalid_client` | 70025 |
//! | assertion signature (RS256, assertion keys) | 401 | `invalid_client` | 700027 |
//! | assertion `nbf`/`exp` present and valid (clock skew, default 300 s) | 400 | `invalid_client` | 700024 |
//! | a FIC matches `iss`, `sub` (case-sensitive) and `aud` | 400 | `invalid_client` | 700211 / 700212 / 700213 when the first FIC that differs in exactly one field differs in issuer / audience / subject; else 70021 |
//! | the resource principal exists in the tenant | 400 | `invalid_resource` | 500011 |
//!
//! Duplicate form fields are joined with "," (as ASP.NET form binding does), so they fail the
//! value checks above. Success: `{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,
//! "access_token":"…"}` with a v1 token (`iss` `https://sts.windows.net/{tenant}/`, `tid`,
//! `aud` = resource, `oid`/`sub` = the app's service principal in the tenant, `appid`, `idtyp`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Value};

use crate::fakes::http::{FakeServer, Fault, Recorded, Reply};
use crate::trust::ids::uuid;
use crate::trust::jwt::{self, now, JwtError, Signer, Verifier};
use crate::trust::pki::TestPki;

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
pub const TOKEN_LIFETIME_SECS: i64 = 3599;
pub const DEFAULT_CLOCK_SKEW_SECS: i64 = 300;

#[derive(Clone, Debug, Default)]
pub struct EntraDirectory {
    pub tenants: Vec<String>,
    /// app_id, home_tenant, multi_tenant, federated_credentials
    pub apps: Vec<AppRegistration>,
    /// (tenant, app_id, service principal object id)
    pub service_principals: Vec<(String, String, String)>,
    /// (tenant, resource uri), e.g. ("tenant-b", "https://vault.azure.net")
    pub resource_principals: Vec<(String, String)>,
    pub federation_disabled_tenants: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct AppRegistration {
    pub app_id: String,
    pub home_tenant: String,
    pub multi_tenant: bool,
    pub federated_credentials: Vec<FederatedCredential>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FederatedCredential {
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
}

struct State {
    dir: Mutex<EntraDirectory>,
    assertion_keys: Mutex<Vec<Verifier>>,
    token_signer: Arc<Signer>,
    host: String,
    port: OnceLock<u16>,
    clock_skew: Mutex<i64>,
}

/// A running fake Entra token endpoint. Stops when dropped.
pub struct FakeEntra {
    server: FakeServer,
    state: Arc<State>,
}

/// Mutates the directory of a running [`FakeEntra`] (misconfigurations at runtime).
#[derive(Clone)]
pub struct EntraDirectoryHandle {
    state: Arc<State>,
}

impl FakeEntra {
    pub async fn start(
        dir: EntraDirectory,
        assertion_keys: Vec<Verifier>,
        token_signer: Arc<Signer>,
        pki: &TestPki,
        host: &str,
    ) -> FakeEntra {
        let tls = pki.rustls_server_config(&[host, "127.0.0.1"]);
        let state = Arc::new(State {
            dir: Mutex::new(dir),
            assertion_keys: Mutex::new(assertion_keys),
            token_signer,
            host: host.to_string(),
            port: OnceLock::new(),
            clock_skew: Mutex::new(DEFAULT_CLOCK_SKEW_SECS),
        });
        let st = state.clone();
        let server =
            FakeServer::start(Some(tls), Arc::new(move |r: &Recorded| handle(&st, r))).await;
        state.port.set(server.port()).expect("port set once");
        FakeEntra { server, state }
    }

    /// "https://{host}:{port}"
    pub fn endpoint(&self) -> String {
        format!("https://{}:{}", self.state.host, self.server.port())
    }

    /// "https://{host}:{port}/{tenant}/oauth2/v2.0/token"
    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.endpoint())
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.server.requests()
    }

    pub fn clear(&self) {
        self.server.clear();
    }

    pub fn directory(&self) -> EntraDirectoryHandle {
        EntraDirectoryHandle {
            state: self.state.clone(),
        }
    }

    pub fn push_fault(&self, f: Fault) {
        self.server.push_fault(f);
    }

    /// Tolerance on the assertion's `nbf`/`exp` (default 300 s, like Entra's clock skew).
    pub fn set_clock_skew(&self, secs: i64) {
        *self.state.clock_skew.lock().unwrap() = secs;
    }

    /// Replace the keys client assertions are verified with (the IMDS signer's public keys).
    pub fn set_assertion_keys(&self, keys: Vec<Verifier>) {
        *self.state.assertion_keys.lock().unwrap() = keys;
    }
}

impl EntraDirectoryHandle {
    pub fn snapshot(&self) -> EntraDirectory {
        self.state.dir.lock().unwrap().clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut EntraDirectory)) {
        f(&mut self.state.dir.lock().unwrap());
    }

    pub fn remove_service_principal(&self, tenant: &str, app_id: &str) {
        self.update(|d| {
            d.service_principals.retain(|(t, a, _)| {
                !(t.eq_ignore_ascii_case(tenant) && a.eq_ignore_ascii_case(app_id))
            })
        });
    }

    pub fn add_service_principal(&self, tenant: &str, app_id: &str, object_id: &str) {
        self.update(|d| {
            d.service_principals
                .push((tenant.into(), app_id.into(), object_id.into()))
        });
    }

    pub fn remove_resource_principal(&self, tenant: &str, resource: &str) {
        self.update(|d| {
            d.resource_principals
                .retain(|(t, r)| !(t.eq_ignore_ascii_case(tenant) && r == resource))
        });
    }

    pub fn set_federated_credentials(&self, app_id: &str, fics: Vec<FederatedCredential>) {
        self.update(|d| app_mut(d, app_id).federated_credentials = fics);
    }

    /// Changes the subject of every FIC of `app_id`.
    pub fn set_fic_subject(&self, app_id: &str, subject: &str) {
        self.update(|d| {
            for f in &mut app_mut(d, app_id).federated_credentials {
                f.subject = subject.to_string();
            }
        });
    }

    /// Changes the issuer of every FIC of `app_id`.
    pub fn set_fic_issuer(&self, app_id: &str, issuer: &str) {
        self.update(|d| {
            for f in &mut app_mut(d, app_id).federated_credentials {
                f.issuer = issuer.to_string();
            }
        });
    }

    /// Changes the audiences of every FIC of `app_id`.
    pub fn set_fic_audiences(&self, app_id: &str, audiences: Vec<String>) {
        self.update(|d| {
            for f in &mut app_mut(d, app_id).federated_credentials {
                f.audiences = audiences.clone();
            }
        });
    }

    pub fn set_multi_tenant(&self, app_id: &str, multi_tenant: bool) {
        self.update(|d| app_mut(d, app_id).multi_tenant = multi_tenant);
    }

    pub fn disable_federation(&self, tenant: &str) {
        self.update(|d| d.federation_disabled_tenants.push(tenant.into()));
    }

    pub fn enable_federation(&self, tenant: &str) {
        self.update(|d| {
            d.federation_disabled_tenants
                .retain(|t| !t.eq_ignore_ascii_case(tenant))
        });
    }
}

fn app_mut<'a>(d: &'a mut EntraDirectory, app_id: &str) -> &'a mut AppRegistration {
    d.apps
        .iter_mut()
        .find(|a| a.app_id.eq_ignore_ascii_case(app_id))
        .unwrap_or_else(|| panic!("no app registration {app_id}"))
}

struct Ctx<'a> {
    host: &'a str,
    correlation_id: String,
}

impl Ctx<'_> {
    fn error(&self, status: u16, error: &str, code: u32, message: &str) -> Reply {
        let trace_id = uuid();
        let ts = entra_timestamp(now());
        Reply::json(
            status,
            &json!({
                "error": error,
                "error_description": format!(
                    "AADSTS{code}: {message}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {}\r\nTimestamp: {ts}",
                    self.correlation_id
                ),
                "error_codes": [code],
                "timestamp": ts,
                "trace_id": trace_id,
                "correlation_id": self.correlation_id,
                "error_uri": format!("https://{}/error?code={code}", self.host),
            }),
        )
        .header("x-ms-request-id", &trace_id)
    }
}

fn handle(state: &State, r: &Recorded) -> Reply {
    let correlation_id = r
        .header("client-request-id")
        .map(str::to_string)
        .unwrap_or_else(uuid);
    let ctx = Ctx {
        host: &state.host,
        correlation_id: correlation_id.clone(),
    };
    let reply = route(state, &ctx, r);
    reply
        .header("client-request-id", &correlation_id)
        .header("cache-control", "no-store, no-cache")
        .header("pragma", "no-cache")
        .header("x-ms-ests-server", "2.1.19000.4 - fake")
}

fn find<'a>(form: &'a [(String, String)], name: &str) -> Option<String> {
    let vals: Vec<&'a str> = form
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect();
    if vals.is_empty() {
        None
    } else {
        Some(vals.join(","))
    }
}

fn aud_values(claims: &Value) -> Vec<String> {
    match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    }
}

fn route(state: &State, ctx: &Ctx, r: &Recorded) -> Reply {
    let port = *state.port.get().expect("port");
    let host_ok = r.header("host").is_some_and(|h| {
        h.eq_ignore_ascii_case(&format!("{}:{port}", state.host))
            || h.eq_ignore_ascii_case(&state.host)
    });
    if !host_ok {
        return Reply::json(
            404,
            &json!({"error": "not_found", "error_description": format!("No service for host '{}'", r.header("host").unwrap_or(""))}),
        );
    }
    let segs: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
    let tenant = match segs.as_slice() {
        [tenant, "oauth2", "v2.0", "token"] if !tenant.is_empty() => tenant.to_string(),
        _ => {
            return Reply::json(
                404,
                &json!({"error": "not_found", "error_description": format!("The requested path {} was not found", r.path)}),
            )
        }
    };
    if r.method != "POST" {
        return ctx.error(
            400,
            "invalid_request",
            900561,
            &format!(
                "The endpoint only accepts POST, OPTIONS requests. Received a {} request.",
                r.method
            ),
        );
    }
    let dir = state.dir.lock().unwrap().clone();
    let Some(tenant) = dir
        .tenants
        .iter()
        .find(|t| t.eq_ignore_ascii_case(&tenant))
        .cloned()
    else {
        return ctx.error(400, "invalid_request", 90002, &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."));
    };
    let is_form = r
        .header("content-type")
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
        .unwrap_or(false);
    let form = if is_form { r.form() } else { Vec::new() };
    let missing = |p: &str| {
        ctx.error(
            400,
            "invalid_request",
            900144,
            &format!("The request body must contain the following parameter: '{p}'."),
        )
    };

    let Some(grant_type) = find(&form, "grant_type") else {
        return missing("grant_type");
    };
    if grant_type != "client_credentials" {
        return ctx.error(
            400,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant_type}'."),
        );
    }
    let Some(client_id) = find(&form, "client_id") else {
        return missing("client_id");
    };
    let Some(scope) = find(&form, "scope") else {
        return missing("scope");
    };
    let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
    let resources: Vec<&str> = scopes
        .iter()
        .filter_map(|s| s.strip_suffix("/.default"))
        .collect();
    let distinct = {
        let mut r: Vec<&str> = resources.clone();
        r.sort_unstable();
        r.dedup();
        r.len()
    };
    if distinct > 1 {
        return ctx.error(400, "invalid_scope", 700022, &format!("The provided value for the input parameter scope is not valid because it contains more than one resource. Scope {scope} is not valid."));
    }
    let valid_resource =
        |res: &str| !res.is_empty() && !res.contains(',') && (res.contains("://") || is_guid(res));
    if scopes.len() != 1 || resources.len() != 1 || !valid_resource(resources[0]) {
        return ctx.error(400, "invalid_scope", 70011, &format!("The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid. For the client_credentials grant the scope must be a single '<resource>/.default'."));
    }
    let resource = resources[0].to_string();

    if find(&form, "client_secret").is_some() {
        return ctx.error(401, "invalid_client", 7000215, &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."));
    }
    let Some(assertion) = find(&form, "client_assertion") else {
        return ctx.error(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    };
    if find(&form, "client_assertion_type").as_deref() != Some(JWT_BEARER) {
        return ctx.error(
            400,
            "invalid_request",
            900144,
            &format!("The request body must contain the following parameter: 'client_assertion_type' with the value '{JWT_BEARER}'."),
        );
    }

    let app = dir
        .apps
        .iter()
        .find(|a| a.app_id.eq_ignore_ascii_case(&client_id));
    let sp = dir
        .service_principals
        .iter()
        .find(|(t, a, _)| t.eq_ignore_ascii_case(&tenant) && a.eq_ignore_ascii_case(&client_id));
    let (app, sp_oid) = match (app, sp) {
        (Some(app), Some((_, _, oid)))
            if app.multi_tenant || app.home_tenant.eq_ignore_ascii_case(&tenant) =>
        {
            (app, oid.clone())
        }
        _ => return ctx.error(400, "unauthorized_client", 700016, &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.")),
    };

    if jwt::decode_header(&assertion).is_err() || jwt::decode_unverified(&assertion).is_none() {
        return ctx.error(
            400,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        );
    }
    if dir
        .federation_disabled_tenants
        .iter()
        .any(|t| t.eq_ignore_ascii_case(&tenant) || t.eq_ignore_ascii_case(&app.home_tenant))
    {
        return ctx.error(400, "invalid_request", 700223, "Workload identity federation is disabled for this tenant: federated identity credentials cannot be used to obtain tokens.");
    }
    if app.federated_credentials.is_empty() {
        return ctx.error(
            400,
            "invalid_client",
            70025,
            &format!(
                "The client '{}'(app) has no configured federated identity credentials.",
                app.app_id
            ),
        );
    }
    let keys = state.assertion_keys.lock().unwrap().clone();
    let claims = match jwt::verify(&assertion, &keys) {
        Ok(c) => c,
        Err(JwtError::Malformed(_)) => {
            return ctx.error(
                400,
                "invalid_request",
                50027,
                "JWT token is invalid or malformed.",
            )
        }
        Err(e) => {
            return ctx.error(
                401,
                "invalid_client",
                700027,
                &format!("Client assertion failed signature validation. ({e})"),
            )
        }
    };
    let t = now();
    let skew = *state.clock_skew.lock().unwrap();
    let nbf = claims.get("nbf").and_then(Value::as_i64);
    let exp = claims.get("exp").and_then(Value::as_i64);
    let in_range =
        matches!((nbf, exp), (Some(nbf), Some(exp)) if nbf - skew <= t && t < exp + skew);
    if !in_range {
        let fmt = |v: Option<i64>| v.map(entra_timestamp).unwrap_or_else(|| "<missing>".into());
        return ctx.error(400, "invalid_client", 700024, &format!("Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .", entra_timestamp(t), fmt(nbf), fmt(exp)));
    }
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let auds = aud_values(&claims);
    let matches = |f: &FederatedCredential| -> (bool, bool, bool) {
        (
            f.issuer == iss,
            f.subject == sub,
            auds.iter().any(|a| f.audiences.contains(a)),
        )
    };
    if !app
        .federated_credentials
        .iter()
        .any(|f| matches(f) == (true, true, true))
    {
        let aud_shown = auds.join(",");
        let suffix = "Please note that the matching is done using a case-sensitive comparison. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation";
        let near = app
            .federated_credentials
            .iter()
            .find_map(|f| match matches(f) {
                (false, true, true) => Some(700211),
                (true, true, false) => Some(700212),
                (true, false, true) => Some(700213),
                _ => None,
            });
        return match near {
            Some(700211) => ctx.error(400, "invalid_client", 700211, &format!("No matching federated identity record found for presented assertion issuer '{iss}'. {suffix}")),
            Some(700212) => ctx.error(400, "invalid_client", 700212, &format!("No matching federated identity record found for presented assertion audience '{aud_shown}'. {suffix}")),
            Some(_) => ctx.error(400, "invalid_client", 700213, &format!("No matching federated identity record found for presented assertion subject '{sub}'. {suffix}")),
            None => ctx.error(400, "invalid_client", 70021, &format!("No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{aud_shown}'. https://learn.microsoft.com/entra/workload-id/workload-identity-federation")),
        };
    }
    let res_norm = resource.trim_end_matches('/');
    if !dir.resource_principals.iter().any(|(t, r)| {
        t.eq_ignore_ascii_case(&tenant) && r.trim_end_matches('/').eq_ignore_ascii_case(res_norm)
    }) {
        return ctx.error(400, "invalid_resource", 500011, &format!("The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."));
    }

    let iat = t - 300;
    let token = state.token_signer.sign(&json!({
        "aud": resource,
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": iat,
        "nbf": iat,
        "exp": t + TOKEN_LIFETIME_SECS,
        "tid": tenant,
        "oid": sp_oid,
        "sub": sp_oid,
        "appid": app.app_id,
        "appidacr": "2",
        "idp": format!("https://sts.windows.net/{tenant}/"),
        "idtyp": "app",
        "ver": "1.0",
        "uti": crate::trust::ids::random_hex(11),
    }));
    Reply::json(
        200,
        &json!({
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_SECS,
            "ext_expires_in": TOKEN_LIFETIME_SECS,
            "access_token": token,
        }),
    )
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `2024-05-01 12:34:56Z` (Entra's `timestamp` field format); a time outside years 1-9999 (an
/// absurd `nbf` or `exp` claim) as its number.
fn entra_timestamp(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::entra_timestamp;

    #[test]
    fn timestamps_as_entra_writes_them() {
        assert_eq!(entra_timestamp(0), "1970-01-01 00:00:00Z");
        assert_eq!(entra_timestamp(951_868_799), "2000-02-29 23:59:59Z");
        assert_eq!(entra_timestamp(1_795_872_955), "2026-11-28 13:35:55Z");
        assert_eq!(entra_timestamp(i64::MAX), i64::MAX.to_string());
    }
}
