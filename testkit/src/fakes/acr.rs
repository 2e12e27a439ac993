//! Strict fake of Azure Container Registry's token service, the `/oauth2/*` half of a login
//! server (the `/v2/*` half is the real distribution registry, see `registry.rs`; `front.rs`
//! serves both on one HTTPS origin as ACR does). Plain HTTP on loopback behind that front.
//!
//! Sources: the ACR team's protocol description (github.com/Azure/acr docs/AAD-OAuth.md: forms,
//! claim sets, "Docker login with ACR Access Token"), Azure/acr#166 (`/oauth2/exchange` answers
//! 404 to anything but POST), azure-cli's `acr/_docker_utils.py` (the same forms; refusals as
//! "Access to registry … was denied. Response code: 401/403"), ACR's documented firewall refusal
//! (403 `DENIED` "client with IP '…' is not allowed access. Refer https://aka.ms/acr/firewall to
//! grant access.", also from the exchange endpoint), recorded 401s (`UNAUTHORIZED` "authentication
//! required, visit https://aka.ms/acr/authorization for more information."), the ABAC preview
//! docs (AcrPull grants nothing on an ABAC registry; "Container Registry Repository Reader"
//! nothing on an RBAC one), and the distribution token spec. What none of them show is marked
//! *inferred*.
//!
//! Every error body is `{"errors":[{"code","message"}]}` (`Content-Type: application/json;
//! charset=utf-8`), every answer carries `x-ms-correlation-request-id`. Checks, in order:
//!
//! | request | check | status / code |
//! |---|---|---|
//! | any | registry network rules let the caller in | 403 `DENIED` (firewall message) |
//! | any | `Host` names the login server | 404 `NAME_UNKNOWN` (inferred) |
//! | `/oauth2/exchange` | POST | 404 (Azure/acr#166) |
//! | `/oauth2/exchange` | form-encoded, `grant_type=access_token` (the deprecated AAD-refresh-token grants are not modelled) | 400 `UNSUPPORTED` (inferred) |
//! | `/oauth2/exchange` | `service` is the login server | 400 `UNSUPPORTED` (inferred) |
//! | `/oauth2/exchange` | `access_token`: Entra signature, `iss` of its `tid`, `nbf`/`exp` (300 s skew), `aud` `https://containerregistry.azure.net[/]`, `tid` = `tenant` (when sent) = the registry's tenant | 401 `UNAUTHORIZED` |
//! | `/oauth2/exchange` | the principal (`oid`) holds a role that counts in the registry's mode | 401 `UNAUTHORIZED` |
//! | `/oauth2/token` POST | `grant_type` `refresh_token` (`password` for the null GUID user: 400, as containerd's authorizer records ACR answering; other users: 401, none exist) | 400 `UNSUPPORTED` (inferred) |
//! | `/oauth2/token` GET | `Authorization: Basic` (no anonymous pull) | 401 `UNAUTHORIZED` |
//! | `/oauth2/token` | `service` is the login server | 400 `UNSUPPORTED` (inferred) |
//! | `/oauth2/token` | the credential: an ACR refresh token of this registry (signature, `aud`, not expired, `grant_type` claim `refresh_token`), or as a password of the null GUID user also an ACR access token (AAD-OAuth.md) | 401 `UNAUTHORIZED` |
//! | `/oauth2/token` | a refresh token's principal still holds a role that counts (as the exchange; inferred) | 401 `UNAUTHORIZED` |
//! | `/oauth2/token` | each `scope` is `type:name:actions` | 400 `UNSUPPORTED` (inferred) |
//!
//! Grants are evaluated at every token request (a role removed after the exchange takes effect):
//! a requested repository appears in `access` only with the actions the principal holds, so a
//! grant can be narrower than the request (the distribution protocol); an access token presented
//! as a password grants at most what it holds. Refresh tokens are signed with a key the registry
//! does not trust, so one presented to `/v2/` as a bearer token is refused there too.
//!
//! Refresh token claims (AAD-OAuth.md): `jti`, `sub` (object id), `nbf`, `exp`, `iat`, `iss`
//! `Azure Container Registry`, `aud` (login server), `version`, `grant_type` `refresh_token`,
//! `tenant`, `permissions`, `roles`. Access tokens: the same with `access`
//! `[{"type","name","actions"}]` and `grant_type` `refresh_token`/`password`/`access_token`.
//! Headers: RS256 with `x5c` = the signing certificate (what distribution's token auth verifies
//! against its `rootcertbundle` in 2.8 and 3.x) and a `kid`. Lifetimes: refresh 3 h (`az acr
//! login` credentials), access 4500 s (the documented claim set); both adjustable.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rustls::pki_types::PrivatePkcs8KeyDer;
use serde_json::{json, Value};

use crate::fakes::http::{FakeServer, Fault, Recorded, Reply};
use crate::trust::ids::uuid;
use crate::trust::jwt::{self, now, Signer, Verifier};

/// The Entra resource (audience) of registry tokens in every cloud.
pub const ACR_RESOURCE: &str = "https://containerregistry.azure.net";
/// The user name that pairs with an ACR token.
pub const TOKEN_USER: &str = "00000000-0000-0000-0000-000000000000";
/// `iss` of every ACR token.
pub const ISSUER: &str = "Azure Container Registry";
pub const REFRESH_LIFETIME_SECS: i64 = 3 * 3600;
pub const ACCESS_LIFETIME_SECS: i64 = 4500;
pub const CLOCK_SKEW_SECS: i64 = 300;

/// A role assignment on the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// `AcrPull` on the registry: pull on every repository (RBAC registries only).
    AcrPull,
    /// "Container Registry Repository Reader" with an ABAC condition on repository names: exact
    /// names or `prefix*`; no condition means every repository (ABAC registries only).
    RepositoryReader(Vec<String>),
}

/// ACR's `roleAssignmentMode`: which roles count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleMode {
    /// `LegacyRegistryPermissions`: AcrPull, AcrPush, … count.
    Rbac,
    /// `AbacRepositoryPermissions`: only the Container Registry Repository roles count.
    Abac,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcrNetwork {
    Open,
    /// Public network access restricted and the caller's IP not allowed.
    FirewallBlocks,
}

#[derive(Clone, Debug)]
pub struct AcrConfig {
    /// The login server and `service` name, e.g. "hubregistry.azurecr.io".
    pub login_server: String,
    /// The tenant the registry (and its role assignments) belongs to.
    pub tenant_id: String,
    /// Keys of the Entra token issuers the registry trusts.
    pub trusted_issuer_keys: Vec<Verifier>,
    pub role_mode: RoleMode,
    /// (principal object id, role).
    pub grants: Vec<(String, Role)>,
    pub network: AcrNetwork,
    /// `aud` values accepted on the exchange.
    pub accepted_audiences: Vec<String>,
    pub refresh_lifetime_secs: i64,
    pub access_lifetime_secs: i64,
}

impl AcrConfig {
    /// An open RBAC registry of `tenant_id` with no role assignments.
    pub fn new(login_server: &str, tenant_id: &str, trusted: Vec<Verifier>) -> AcrConfig {
        AcrConfig {
            login_server: login_server.to_string(),
            tenant_id: tenant_id.to_string(),
            trusted_issuer_keys: trusted,
            role_mode: RoleMode::Rbac,
            grants: Vec::new(),
            network: AcrNetwork::Open,
            accepted_audiences: vec![ACR_RESOURCE.to_string(), format!("{ACR_RESOURCE}/")],
            refresh_lifetime_secs: REFRESH_LIFETIME_SECS,
            access_lifetime_secs: ACCESS_LIFETIME_SECS,
        }
    }
}

/// A signing key with the self-signed certificate that vouches for it.
struct TokenKey {
    signer: Signer,
    cert_der: Vec<u8>,
    cert_pem: String,
}

impl TokenKey {
    fn new(kid: &str, name: &str) -> TokenKey {
        let signer = Signer::new(kid);
        let der = PrivatePkcs8KeyDer::from(signer.pkcs8_der());
        let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256)
            .expect("RSA key for rcgen");
        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, name);
        params.distinguished_name = dn;
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2099, 12, 31);
        let cert = params
            .self_signed(&key)
            .expect("self-sign token certificate");
        TokenKey {
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            signer,
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let header = json!({
            "typ": "JWT",
            "alg": "RS256",
            "kid": self.signer.kid(),
            "x5c": [STANDARD.encode(&self.cert_der)],
        });
        self.signer.sign_with_header(&header, claims)
    }

    fn verify(&self, token: &str) -> Option<Value> {
        jwt::verify(token, &[self.signer.verifier()]).ok()
    }
}

struct State {
    cfg: Mutex<AcrConfig>,
    access_key: TokenKey,
    refresh_key: TokenKey,
    issued: Mutex<Vec<Issued>>,
    /// Refresh-token grants still to refuse (`refuse_refresh_grants`).
    refuse_refresh: Mutex<u32>,
}

/// A token the fake handed out.
#[derive(Clone, Debug)]
pub struct Issued {
    pub kind: TokenKind,
    pub token: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Refresh,
    Access,
}

/// A running fake token service. Stops when dropped.
pub struct FakeAcr {
    server: FakeServer,
    state: Arc<State>,
}

impl FakeAcr {
    /// Plain HTTP on 127.0.0.1 (put it behind the login server's TLS front). Makes two RSA keys.
    pub async fn start(cfg: AcrConfig) -> FakeAcr {
        let (access_key, refresh_key) = tokio::task::spawn_blocking(|| {
            (
                TokenKey::new("acr-access", "fake ACR access token signer"),
                TokenKey::new("acr-refresh", "fake ACR refresh token signer"),
            )
        })
        .await
        .expect("token keys");
        let state = Arc::new(State {
            cfg: Mutex::new(cfg),
            access_key,
            refresh_key,
            issued: Mutex::new(Vec::new()),
            refuse_refresh: Mutex::new(0),
        });
        let st = state.clone();
        let server = FakeServer::start(None, Arc::new(move |r: &Recorded| handle(&st, r))).await;
        FakeAcr { server, state }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `iss` of the tokens (the registry's `auth.token.issuer`).
    pub fn issuer(&self) -> &'static str {
        ISSUER
    }

    /// The certificate the registry must trust (`auth.token.rootcertbundle`): access tokens only.
    pub fn access_cert_pem(&self) -> String {
        self.state.access_key.cert_pem.clone()
    }

    /// Every request, accepted or refused.
    pub fn requests(&self) -> Vec<Recorded> {
        self.server.requests()
    }

    pub fn clear(&self) {
        self.server.clear();
    }

    pub fn push_fault(&self, f: Fault) {
        self.server.push_fault(f);
    }

    /// Every token issued so far (for leak scanners).
    pub fn issued(&self) -> Vec<Issued> {
        self.state.issued.lock().unwrap().clone()
    }

    pub fn set_grants(&self, grants: Vec<(String, Role)>) {
        self.state.cfg.lock().unwrap().grants = grants;
    }

    pub fn set_role_mode(&self, mode: RoleMode) {
        self.state.cfg.lock().unwrap().role_mode = mode;
    }

    pub fn set_network(&self, network: AcrNetwork) {
        self.state.cfg.lock().unwrap().network = network;
    }

    pub fn set_accepted_audiences(&self, audiences: Vec<String>) {
        self.state.cfg.lock().unwrap().accepted_audiences = audiences;
    }

    pub fn set_refresh_lifetime(&self, secs: i64) {
        self.state.cfg.lock().unwrap().refresh_lifetime_secs = secs;
    }

    /// The next `n` refresh-token grants are refused with 401, as for a refresh token the
    /// registry no longer honours (the exchange still works).
    pub fn refuse_refresh_grants(&self, n: u32) {
        *self.state.refuse_refresh.lock().unwrap() = n;
    }

    /// An access token issued to `subject` directly, as the registry's owner would get one
    /// (seeding images, checking what a token may do): `access` is (repository, actions
    /// comma-separated), e.g. `("base/alpine", "pull,push")`.
    pub fn mint_access_token(&self, subject: &str, access: &[(&str, &str)]) -> String {
        let cfg = self.state.cfg.lock().unwrap().clone();
        let access: Vec<Value> = access
            .iter()
            .map(|(name, actions)| {
                let actions: Vec<&str> = actions.split(',').collect();
                json!({"type": "repository", "name": name, "actions": actions})
            })
            .collect();
        issue_access(&self.state, &cfg, subject, access, "access_token")
    }
}

fn acr_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"errors": [{"code": code, "message": message}]}),
    )
}

fn unauthorized() -> Reply {
    acr_error(
        401,
        "UNAUTHORIZED",
        "authentication required, visit https://aka.ms/acr/authorization for more information.",
    )
}

fn unsupported(message: &str) -> Reply {
    acr_error(400, "UNSUPPORTED", message)
}

fn handle(state: &State, r: &Recorded) -> Reply {
    route(state, r)
        .header("x-ms-correlation-request-id", &uuid())
        .header(
            "strict-transport-security",
            "max-age=31536000; includeSubDomains",
        )
}

fn route(state: &State, r: &Recorded) -> Reply {
    let cfg = state.cfg.lock().unwrap().clone();
    if cfg.network == AcrNetwork::FirewallBlocks {
        return acr_error(
            403,
            "DENIED",
            &format!(
                "client with IP '203.0.113.7' is not allowed access. Refer https://aka.ms/acr/firewall to grant access. CorrelationId: {}",
                uuid()
            ),
        );
    }
    let host = r.header("host").unwrap_or("");
    let host_name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    if !host_name.eq_ignore_ascii_case(&cfg.login_server) {
        return acr_error(404, "NAME_UNKNOWN", "registry not found");
    }
    match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/oauth2/exchange") => exchange(state, &cfg, r),
        ("POST", "/oauth2/token") => token_post(state, &cfg, r),
        ("GET", "/oauth2/token") => token_get(state, &cfg, r),
        _ => Reply::new(404).header("content-type", "text/plain; charset=utf-8"),
    }
}

/// Form fields; `None` when the body is not a form. Repeated fields other than `scope` are
/// joined with "," so they fail the value checks.
fn form(r: &Recorded) -> Option<Vec<(String, String)>> {
    let ct = r.header("content-type").unwrap_or("");
    if !ct
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return None;
    }
    Some(r.form())
}

fn field(pairs: &[(String, String)], name: &str) -> Option<String> {
    let values: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

fn scopes(pairs: &[(String, String)]) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' '))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn service_ok(cfg: &AcrConfig, service: Option<&str>) -> bool {
    service.is_some_and(|s| s.eq_ignore_ascii_case(&cfg.login_server))
}

fn exchange(state: &State, cfg: &AcrConfig, r: &Recorded) -> Reply {
    let Some(pairs) = form(r) else {
        return unsupported("the request body must be application/x-www-form-urlencoded");
    };
    if field(&pairs, "grant_type").as_deref() != Some("access_token") {
        return unsupported("grant_type must be access_token");
    }
    if !service_ok(cfg, field(&pairs, "service").as_deref()) {
        return unsupported("service does not name this registry");
    }
    let Some(aad) = field(&pairs, "access_token") else {
        return unauthorized();
    };
    let Some(claims) = entra_claims(cfg, &aad, field(&pairs, "tenant").as_deref()) else {
        return unauthorized();
    };
    let principal = str_claim(&claims, "oid");
    if !has_role(cfg, &principal) {
        return unauthorized();
    }
    let t = now();
    let token = state.refresh_key.sign(&json!({
        "jti": uuid(),
        "sub": principal,
        "nbf": t,
        "exp": t + cfg.refresh_lifetime_secs,
        "iat": t,
        "iss": ISSUER,
        "aud": cfg.login_server,
        "version": "1.0",
        "grant_type": "refresh_token",
        "tenant": cfg.tenant_id,
        "permissions": {"actions": ["read"], "notActions": []},
        "roles": [],
    }));
    record(state, TokenKind::Refresh, &token);
    Reply::json(200, &json!({ "refresh_token": token }))
}

/// The Entra token's claims if ACR accepts it for this registry and tenant.
fn entra_claims(cfg: &AcrConfig, token: &str, tenant: Option<&str>) -> Option<Value> {
    let claims = jwt::verify(token, &cfg.trusted_issuer_keys).ok()?;
    let tid = str_claim(&claims, "tid");
    let iss = str_claim(&claims, "iss");
    let t = now();
    let exp = claims.get("exp").and_then(Value::as_i64)?;
    let nbf = claims.get("nbf").and_then(Value::as_i64).unwrap_or(0);
    let aud = str_claim(&claims, "aud");
    let issuer_ok = iss == format!("https://sts.windows.net/{tid}/")
        || iss == format!("https://login.microsoftonline.com/{tid}/v2.0");
    let ok = issuer_ok
        && exp + CLOCK_SKEW_SECS > t
        && nbf - CLOCK_SKEW_SECS <= t
        && cfg.accepted_audiences.contains(&aud)
        && tid == cfg.tenant_id
        && tenant.is_none_or(|x| x == tid);
    ok.then_some(claims)
}

fn str_claim(claims: &Value, name: &str) -> String {
    claims
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The roles of `principal` that count in the registry's mode.
fn roles<'a>(cfg: &'a AcrConfig, principal: &'a str) -> impl Iterator<Item = &'a Role> {
    cfg.grants
        .iter()
        .filter(move |(p, _)| p == principal)
        .map(|(_, role)| role)
        .filter(move |role| {
            matches!(
                (cfg.role_mode, role),
                (RoleMode::Rbac, Role::AcrPull) | (RoleMode::Abac, Role::RepositoryReader(_))
            )
        })
}

fn has_role(cfg: &AcrConfig, principal: &str) -> bool {
    roles(cfg, principal).next().is_some()
}

/// The actions on `repository` the principal's roles allow.
fn allowed_actions(cfg: &AcrConfig, principal: &str, repository: &str) -> Vec<&'static str> {
    let mut actions = Vec::new();
    for role in roles(cfg, principal) {
        let granted: &[&str] = match role {
            Role::AcrPull => &["pull"],
            Role::RepositoryReader(conditions) => {
                let covered = conditions.is_empty()
                    || conditions.iter().any(|c| match c.strip_suffix('*') {
                        Some(prefix) => repository.starts_with(prefix),
                        None => repository == c,
                    });
                if covered {
                    &["pull", "metadata_read"]
                } else {
                    &[]
                }
            }
        };
        for a in granted {
            if !actions.contains(a) {
                actions.push(*a);
            }
        }
    }
    actions
}

/// A parsed `type:name:actions` scope.
struct Scope {
    kind: String,
    name: String,
    actions: Vec<String>,
}

fn parse_scope(s: &str) -> Option<Scope> {
    // Names may not contain ':', but the type may carry a class ("repository(plugin)").
    let (kind, rest) = s.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    if kind.is_empty() || name.is_empty() || actions.is_empty() {
        return None;
    }
    Some(Scope {
        kind: kind.to_string(),
        name: name.to_string(),
        actions: actions.split(',').map(str::to_string).collect(),
    })
}

/// What a credential may be granted.
enum Credential {
    /// An ACR refresh token: whatever the principal's roles allow now.
    Refresh { principal: String },
    /// An ACR access token used as a password: at most what it holds.
    Access {
        principal: String,
        holds: Vec<Value>,
    },
}

fn refresh_credential(state: &State, cfg: &AcrConfig, token: &str) -> Option<Credential> {
    let claims = state.refresh_key.verify(token)?;
    let valid = str_claim(&claims, "grant_type") == "refresh_token"
        && str_claim(&claims, "iss") == ISSUER
        && str_claim(&claims, "aud").eq_ignore_ascii_case(&cfg.login_server)
        && claims
            .get("exp")
            .and_then(Value::as_i64)
            .is_some_and(|e| e > now());
    valid.then(|| Credential::Refresh {
        principal: str_claim(&claims, "sub"),
    })
}

fn access_credential(state: &State, cfg: &AcrConfig, token: &str) -> Option<Credential> {
    let claims = state.access_key.verify(token)?;
    let valid = str_claim(&claims, "iss") == ISSUER
        && str_claim(&claims, "aud").eq_ignore_ascii_case(&cfg.login_server)
        && claims
            .get("exp")
            .and_then(Value::as_i64)
            .is_some_and(|e| e > now());
    valid.then(|| Credential::Access {
        principal: str_claim(&claims, "sub"),
        holds: claims
            .get("access")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
    })
}

/// The null GUID user with an ACR refresh or access token as password; any other user would be
/// an admin user or a repository-scoped token, none of which this registry has.
fn password_credential(
    state: &State,
    cfg: &AcrConfig,
    user: &str,
    password: &str,
) -> Option<Credential> {
    if user != TOKEN_USER {
        return None;
    }
    refresh_credential(state, cfg, password).or_else(|| access_credential(state, cfg, password))
}

fn token_post(state: &State, cfg: &AcrConfig, r: &Recorded) -> Reply {
    let Some(pairs) = form(r) else {
        return unsupported("the request body must be application/x-www-form-urlencoded");
    };
    if !service_ok(cfg, field(&pairs, "service").as_deref()) {
        return unsupported("service does not name this registry");
    }
    let credential = match field(&pairs, "grant_type").as_deref() {
        Some("refresh_token") => {
            let mut refuse = state.refuse_refresh.lock().unwrap();
            if *refuse > 0 {
                *refuse -= 1;
                return unauthorized();
            }
            field(&pairs, "refresh_token").and_then(|t| refresh_credential(state, cfg, &t))
        }
        // containerd tries the password grant first and falls back to GET with Basic
        // authentication on 400, "As of January 2022, ACR is known to return 400" (containerd's
        // remotes/docker/authorizer.go): the null GUID user's tokens are not a password grant.
        Some("password") if field(&pairs, "username").as_deref() == Some(TOKEN_USER) => {
            return unsupported("grant_type password is not supported for this user");
        }
        // Other users would be admin users or repository-scoped tokens: none exist here.
        Some("password") => None,
        _ => return unsupported("grant_type must be refresh_token or password"),
    };
    let grant_type = field(&pairs, "grant_type").unwrap_or_default();
    answer(state, cfg, credential, &scopes(&pairs), &grant_type)
}

fn token_get(state: &State, cfg: &AcrConfig, r: &Recorded) -> Reply {
    let Some((user, password)) = basic_auth(r) else {
        return unauthorized();
    };
    let service = r.query("service");
    if !service_ok(cfg, service) {
        return unsupported("service does not name this registry");
    }
    let credential = password_credential(state, cfg, &user, &password);
    answer(state, cfg, credential, &scopes(&r.query), "password")
}

fn basic_auth(r: &Recorded) -> Option<(String, String)> {
    let v = r.header("authorization")?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn answer(
    state: &State,
    cfg: &AcrConfig,
    credential: Option<Credential>,
    scopes: &[String],
    grant_type: &str,
) -> Reply {
    let Some(credential) = credential else {
        return unauthorized();
    };
    let mut parsed = Vec::new();
    for s in scopes {
        match parse_scope(s) {
            Some(p) => parsed.push(p),
            None => return unsupported(&format!("invalid scope '{s}'")),
        }
    }
    let principal = match &credential {
        Credential::Refresh { principal } => {
            if !has_role(cfg, principal) {
                return unauthorized();
            }
            principal.clone()
        }
        Credential::Access { principal, .. } => principal.clone(),
    };
    let mut access = Vec::new();
    for scope in parsed.iter().filter(|s| s.kind == "repository") {
        let may: Vec<String> = match &credential {
            Credential::Refresh { .. } => allowed_actions(cfg, &principal, &scope.name)
                .into_iter()
                .map(str::to_string)
                .collect(),
            Credential::Access { holds, .. } => held_actions(holds, &scope.name),
        };
        let granted: Vec<&String> = scope.actions.iter().filter(|a| may.contains(*a)).collect();
        if !granted.is_empty() {
            access.push(json!({"type": "repository", "name": scope.name, "actions": granted}));
        }
    }
    let token = issue_access(state, cfg, &principal, access, grant_type);
    Reply::json(200, &json!({ "access_token": token }))
}

fn held_actions(holds: &[Value], repository: &str) -> Vec<String> {
    holds
        .iter()
        .filter(|a| a["type"] == "repository" && a["name"] == repository)
        .flat_map(|a| a["actions"].as_array().cloned().unwrap_or_default())
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

fn issue_access(
    state: &State,
    cfg: &AcrConfig,
    subject: &str,
    access: Vec<Value>,
    grant_type: &str,
) -> String {
    let t = now();
    let token = state.access_key.sign(&json!({
        "jti": uuid(),
        "sub": subject,
        "nbf": t,
        "exp": t + cfg.access_lifetime_secs,
        "iat": t,
        "iss": ISSUER,
        "aud": cfg.login_server,
        "version": "1.0",
        "access": access,
        "roles": [],
        "grant_type": grant_type,
    }));
    record(state, TokenKind::Access, &token);
    token
}

fn record(state: &State, kind: TokenKind, token: &str) {
    state.issued.lock().unwrap().push(Issued {
        kind,
        token: token.to_string(),
    });
}
