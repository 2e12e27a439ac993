//! Strict fake Key Vault (secrets, Get Secret only) of one tenant, over HTTPS.
//!
//! Checks, in order (first failing check answers). Error body
//! `{"error":{"code","message"[,"innererror":{"code"}]}}`:
//!
//! | check | status | code / innererror |
//! |---|---|---|
//! | `Host` equals `{host}:{port}` (or `{host}`), case-insensitive | 404 | `VaultNotFound` (inferred) |
//! | method is GET | 405 | `MethodNotAllowed` |
//! | path `/secrets/{name}[/{version}]` | 404 | `NotFound` |
//! | `api-version` present and `7.5` | 400 | `BadParameter` |
//! | bearer token present | 401 | `Unauthorized` AKV10000 + challenge |
//! | signature (trusted keys, RS256) | 401 | `Unauthorized` `[InvalidSignature]` + challenge |
//! | `nbf`/`exp` present and valid (5 min skew) | 401 | `Unauthorized` `[TokenExpired]` S2S12086 + challenge |
//! | `aud` is `https://vault.azure.net[/]` | 401 | `Unauthorized` AKV10022 + challenge |
//! | `iss` v1/v2 of the vault tenant and `tid` = tenant | 401 | `Unauthorized` AKV10032 + challenge |
//! | name `^[0-9a-zA-Z-]{1,127}$`, version 32 hex | 400 | `BadParameter` |
//! | network | 403 | `Forbidden` / `ForbiddenByFirewall`, `ForbiddenByConnection` |
//! | `oid` among readers | 403 | `Forbidden` / `ForbiddenByRbac` (rbac) or `ForbiddenByPolicy` |
//! | secret (version) exists | 404 | `SecretNotFound` |
//! | version enabled | 403 | `Forbidden` / `SecretDisabled` |
//!
//! Every 401 carries `WWW-Authenticate: Bearer authorization="https://{authority_host}/{tenant}",
//! resource="https://vault.azure.net"`. Every answer echoes `x-ms-client-request-id` and sets
//! `x-ms-request-id`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Value};

use crate::fakes::http::{FakeServer, Fault, Recorded, Reply};
use crate::trust::jwt::{self, now, JwtError, Verifier};
use crate::trust::pki::TestPki;

pub const API_VERSION: &str = "7.5";
pub const RESOURCE: &str = "https://vault.azure.net";
/// Clock skew Key Vault tolerates on `nbf`/`exp` (seconds).
pub const CLOCK_SKEW_SECS: i64 = 300;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VaultNetwork {
    Open,
    /// Public network access restricted and the caller is not allowed: ForbiddenByFirewall.
    FirewallBlocks,
    /// Public access disabled and the private endpoint connection not approved: ForbiddenByConnection.
    ConnectionNotApproved,
}

#[derive(Clone, Debug)]
pub struct VaultConfig {
    pub tenant_id: String,
    /// e.g. "tenant-a.vault.azure.net" (cert SAN; Host header checked)
    pub host: String,
    /// challenge authorization="https://{authority_host}/{tenant}"
    pub authority_host: String,
    pub trusted_issuer_keys: Vec<Verifier>,
    /// object ids holding "Key Vault Secrets User"
    pub readers: Vec<String>,
    pub network: VaultNetwork,
    /// false => access-policy vault: refusals are ForbiddenByPolicy
    pub rbac: bool,
}

#[derive(Clone, Debug)]
struct SecretVersion {
    version: String,
    value: String,
    enabled: bool,
    created: i64,
}

#[derive(Clone, Debug)]
struct Secret {
    name: String,
    versions: Vec<SecretVersion>, // oldest first; last is the current one
}

struct State {
    cfg: Mutex<VaultConfig>,
    /// The `resource` of the 401 challenge (the real service: [`RESOURCE`]).
    resource: Mutex<String>,
    secrets: Mutex<HashMap<String, Secret>>, // key: lowercased name
    /// Every value ever set, deleted ones included (for log scanners).
    values: Mutex<Vec<String>>,
    port: OnceLock<u16>,
}

/// A running fake Key Vault. Stops when dropped.
pub struct FakeVault {
    server: FakeServer,
    state: Arc<State>,
}

impl FakeVault {
    pub async fn start(cfg: VaultConfig, pki: &TestPki) -> FakeVault {
        let tls = pki.rustls_server_config(&[cfg.host.as_str(), "127.0.0.1"]);
        let state = Arc::new(State {
            cfg: Mutex::new(cfg),
            resource: Mutex::new(RESOURCE.to_string()),
            secrets: Mutex::new(HashMap::new()),
            values: Mutex::new(Vec::new()),
            port: OnceLock::new(),
        });
        let st = state.clone();
        let server =
            FakeServer::start(Some(tls), Arc::new(move |r: &Recorded| handle(&st, r))).await;
        state.port.set(server.port()).expect("port set once");
        FakeVault { server, state }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// "https://{host}:{port}"
    pub fn endpoint(&self) -> String {
        format!(
            "https://{}:{}",
            self.state.cfg.lock().unwrap().host,
            self.server.port()
        )
    }

    pub fn host(&self) -> String {
        self.state.cfg.lock().unwrap().host.clone()
    }

    /// Adds a new version (32 hex) of `name` and returns its id; the latest version wins.
    pub fn set_secret(&self, name: &str, value: &str) -> String {
        let version = crate::trust::ids::random_hex(16);
        self.state.values.lock().unwrap().push(value.to_string());
        let mut secrets = self.state.secrets.lock().unwrap();
        let s = secrets
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| Secret {
                name: name.to_string(),
                versions: Vec::new(),
            });
        s.versions.push(SecretVersion {
            version: version.clone(),
            value: value.to_string(),
            enabled: true,
            created: now(),
        });
        version
    }

    /// Disables the current (latest) version of `name`.
    pub fn disable_secret(&self, name: &str) {
        let mut secrets = self.state.secrets.lock().unwrap();
        let s = secrets
            .get_mut(&name.to_ascii_lowercase())
            .unwrap_or_else(|| panic!("disable_secret: no secret {name}"));
        s.versions.last_mut().expect("a version").enabled = false;
    }

    /// Removes `name` and all its versions (like a soft delete: later GETs are 404).
    pub fn delete_secret(&self, name: &str) {
        self.state
            .secrets
            .lock()
            .unwrap()
            .remove(&name.to_ascii_lowercase());
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.server.requests()
    }

    /// Every secret value ever set in this vault (disabled and deleted ones too), in order.
    pub fn secret_values(&self) -> Vec<String> {
        self.state.values.lock().unwrap().clone()
    }

    /// TLS connections clients opened to this vault (completed handshakes).
    pub fn connections(&self) -> u64 {
        self.server.connections()
    }

    pub fn clear(&self) {
        self.server.clear();
    }

    pub fn push_fault(&self, f: Fault) {
        self.server.push_fault(f);
    }

    pub fn set_network(&self, n: VaultNetwork) {
        self.state.cfg.lock().unwrap().network = n;
    }

    /// Makes the 401 challenge name another `resource`, as a hostile or misconfigured vault
    /// (or a proxy in front of one) would.
    pub fn set_challenge_resource(&self, resource: &str) {
        *self.state.resource.lock().unwrap() = resource.to_string();
    }

    pub fn set_readers(&self, oids: Vec<String>) {
        self.state.cfg.lock().unwrap().readers = oids;
    }
}

fn vault_name(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

fn kv_error(status: u16, code: &str, message: &str, inner: Option<&str>) -> Reply {
    let mut e = json!({"code": code, "message": message});
    if let Some(inner) = inner {
        e["innererror"] = json!({ "code": inner });
    }
    Reply::json(status, &json!({ "error": e }))
}

fn unauthorized(cfg: &VaultConfig, resource: &str, message: &str) -> Reply {
    kv_error(401, "Unauthorized", message, None).header(
        "www-authenticate",
        &format!(
            "Bearer authorization=\"https://{}/{}\", resource=\"{resource}\"",
            cfg.authority_host, cfg.tenant_id
        ),
    )
}

fn is_name(s: &str) -> bool {
    (1..=127).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn is_version(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn handle(state: &State, r: &Recorded) -> Reply {
    let mut reply = route(state, r);
    if let Some(id) = r.header("x-ms-client-request-id") {
        reply = reply.header("x-ms-client-request-id", id);
    }
    reply
        .header("x-ms-request-id", &crate::trust::ids::uuid())
        .header("x-ms-keyvault-service-version", "1.9.2600.1")
        .header("x-ms-keyvault-region", "westeurope")
        .header("cache-control", "no-cache")
        .header(
            "strict-transport-security",
            "max-age=31536000;includeSubDomains",
        )
}

fn route(state: &State, r: &Recorded) -> Reply {
    let cfg = state.cfg.lock().unwrap().clone();
    let resource = state.resource.lock().unwrap().clone();
    let port = *state.port.get().expect("port");
    let host_ok = r.header("host").is_some_and(|h| {
        h.eq_ignore_ascii_case(&format!("{}:{port}", cfg.host)) || h.eq_ignore_ascii_case(&cfg.host)
    });
    if !host_ok {
        return kv_error(
            404,
            "VaultNotFound",
            &format!(
                "No vault is served for host '{}' at this address (expected '{}:{port}').",
                r.header("host").unwrap_or(""),
                cfg.host
            ),
            None,
        );
    }
    if r.method != "GET" {
        return kv_error(
            405,
            "MethodNotAllowed",
            &format!(
                "The requested resource does not support http method '{}'.",
                r.method
            ),
            None,
        );
    }
    let segs: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
    let (name, version) = match segs.as_slice() {
        ["secrets", name] => (*name, None),
        ["secrets", name, ""] => (*name, None),
        ["secrets", name, version] => (*name, Some(*version)),
        _ => {
            return kv_error(
                404,
                "NotFound",
                &format!("The requested URI {} does not exist.", r.path),
                None,
            )
        }
    };
    for (i, (k, _)) in r.query.iter().enumerate() {
        if k == "api-version" && r.query[..i].iter().any(|(k2, _)| k2 == k) {
            return kv_error(
                400,
                "BadParameter",
                "The api-version query parameter is specified more than once.",
                None,
            );
        }
    }
    match r.query("api-version") {
        Some(API_VERSION) => {}
        None => {
            return kv_error(
                400,
                "BadParameter",
                "The request is missing the api-version query parameter (supported: 7.5).",
                None,
            )
        }
        Some(v) => {
            return kv_error(
                400,
                "BadParameter",
                &format!("The specified version ({v}) is not recognized. Consider using the latest supported version (7.5)."),
                None,
            )
        }
    }

    // Authentication.
    let Some(token) = r.bearer() else {
        return unauthorized(
            &cfg,
            &resource,
            "AKV10000: Request is missing a Bearer or PoP token.",
        );
    };
    let claims = match jwt::verify(token, &cfg.trusted_issuer_keys) {
        Ok(c) => c,
        Err(JwtError::Malformed(why)) => {
            return unauthorized(
                &cfg,
                &resource,
                &format!("[MalformedToken] Error validating token: 'S2S12001'. ({why})"),
            )
        }
        Err(e) => {
            return unauthorized(
                &cfg,
                &resource,
                &format!("[InvalidSignature] Error validating token: 'S2S12005'. ({e})"),
            )
        }
    };
    let t = now();
    let (Some(nbf), Some(exp)) = (
        claims.get("nbf").and_then(Value::as_i64),
        claims.get("exp").and_then(Value::as_i64),
    ) else {
        return unauthorized(
            &cfg,
            &resource,
            "[InvalidToken] Error validating token: 'S2S12001'. (nbf/exp missing)",
        );
    };
    if exp + CLOCK_SKEW_SECS <= t {
        return unauthorized(
            &cfg,
            &resource,
            "[TokenExpired] Error validating token: 'S2S12086'.",
        );
    }
    if nbf - CLOCK_SKEW_SECS > t {
        return unauthorized(
            &cfg,
            &resource,
            "[TokenNotYetValid] Error validating token: 'S2S12085'.",
        );
    }
    let aud = claims.get("aud").and_then(Value::as_str).unwrap_or("");
    if aud != RESOURCE && aud != format!("{RESOURCE}/") {
        return unauthorized(
            &cfg,
            &resource,
            &format!("AKV10022: Invalid audience. Expected {RESOURCE}, found: {aud}."),
        );
    }
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    let tid = claims.get("tid").and_then(Value::as_str).unwrap_or("");
    let v1 = format!("https://sts.windows.net/{}/", cfg.tenant_id);
    let v2 = format!("https://login.microsoftonline.com/{}/v2.0", cfg.tenant_id);
    if (iss != v1 && iss != v2) || !tid.eq_ignore_ascii_case(&cfg.tenant_id) {
        return unauthorized(
            &cfg,
            &resource,
            &format!("AKV10032: Invalid issuer. Expected one of {v1}, {v2}, found {iss}."),
        );
    }
    let oid = claims.get("oid").and_then(Value::as_str).unwrap_or("");
    let appid = claims
        .get("appid")
        .or_else(|| claims.get("azp"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let caller = format!("appid={appid};oid={oid};iss={iss}");
    let vault = vault_name(&cfg.host);

    if !is_name(name) {
        return kv_error(
            400,
            "BadParameter",
            &format!("The request URI contains an invalid name: {name}"),
            None,
        );
    }
    if let Some(v) = version {
        if !is_version(v) {
            return kv_error(
                400,
                "BadParameter",
                &format!("The request URI contains an invalid version: {v}"),
                None,
            );
        }
    }

    // Network rules.
    match cfg.network {
        VaultNetwork::Open => {}
        VaultNetwork::FirewallBlocks => {
            return kv_error(
                403,
                "Forbidden",
                &format!("Client address is not authorized and caller is not a trusted service.\r\nClient address: 127.0.0.1\r\nCaller: {caller}\r\nVault: {vault};location=westeurope"),
                Some("ForbiddenByFirewall"),
            )
        }
        VaultNetwork::ConnectionNotApproved => {
            return kv_error(
                403,
                "Forbidden",
                &format!("Connection is not an approved private link and caller was ignored because bypass is not set to 'AzureServices' and PublicNetworkAccess is set to 'Disabled'. \r\nVault: {vault};location=westeurope"),
                Some("ForbiddenByConnection"),
            )
        }
    }

    // Authorization.
    if !cfg.readers.iter().any(|o| o.eq_ignore_ascii_case(oid)) {
        return if cfg.rbac {
            kv_error(
                403,
                "Forbidden",
                &format!("Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: {caller}\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nResource: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/microsoft.keyvault/vaults/{vault}/secrets/{name}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null \r\nVault: {vault};location=westeurope\r\n"),
                Some("ForbiddenByRbac"),
            )
        } else {
            kv_error(
                403,
                "Forbidden",
                &format!("The user, group or application '{caller}' does not have secrets get permission on key vault '{vault};location=westeurope'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287"),
                Some("ForbiddenByPolicy"),
            )
        };
    }

    // Lookup.
    let secrets = state.secrets.lock().unwrap();
    let found = secrets.get(&name.to_ascii_lowercase()).and_then(|s| {
        let v = match version {
            None => s.versions.last(),
            Some(v) => s
                .versions
                .iter()
                .find(|x| x.version.eq_ignore_ascii_case(v)),
        }?;
        Some((s.name.clone(), v.clone()))
    });
    let Some((stored_name, v)) = found else {
        let what = match version {
            Some(ver) => format!("{name}/{ver}"),
            None => name.to_string(),
        };
        return kv_error(
            404,
            "SecretNotFound",
            &format!("A secret with (name/id) {what} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"),
            None,
        );
    };
    if !v.enabled {
        return kv_error(
            403,
            "Forbidden",
            "Operation get is not allowed on a disabled secret.",
            Some("SecretDisabled"),
        );
    }
    Reply::json(
        200,
        &json!({
            "value": v.value,
            "id": format!("https://{}:{port}/secrets/{stored_name}/{}", cfg.host, v.version),
            "attributes": {
                "enabled": true,
                "created": v.created,
                "updated": v.created,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90
            },
            "tags": {}
        }),
    )
}
