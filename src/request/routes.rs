//! From an incoming request to a decision, in the order callers can rely on: route → method →
//! configuration → caller key → parameters → tenant profile → least-privilege rules
//! ([`decide`]). Nothing here talks to a service, so every refusal is free of upstream calls.

use crate::config::function_keys::{self, Caller};
use crate::config::names;
use crate::config::rules;
use crate::config::settings::{
    self, Common, Exchange, Need, Profile, Settings, Slot, TenantServices, Variables,
};
use crate::errors::Problem;
use crate::identity::credential::{Federated, ManagedIdentity, TenantCredential};
use crate::identity::entra::TargetTenant;
use crate::net::cloud::Service;
use crate::net::origin::Origin;
use crate::request::health::{self, Report};
use crate::request::log::RequestLine;
use crate::request::query::Query;
use http::{Method, StatusCode};

/// What the edge knows about the incoming request.
pub(crate) struct Incoming<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: &'a str,
    /// Every `x-functions-key` header value.
    pub key_headers: Vec<String>,
}

/// What a request comes to, decided before any upstream call.
// One per request, moved once: boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Decision {
    /// `/api/livez`.
    Live,
    /// `/api/healthz`: the readiness report, whole only for an authenticated caller.
    Health { report: Report, authenticated: bool },
    /// A permitted action and the settings every action needs.
    Act { common: Common, action: Action },
}

/// The one path of a request to its decision: route, settings, caller, permit. Fills the log
/// line's route and caller as they become known.
pub(crate) fn decide(
    req: &Incoming,
    vars: &dyn Variables,
    line: &mut RequestLine,
) -> Result<Decision, Problem> {
    let endpoint = route(req.method, req.path, req.query)?;
    line.route = endpoint.name().to_string();
    if endpoint == Endpoint::Live {
        return Ok(Decision::Live);
    }
    let query = Query::parse(req.query)?;
    let settings = settings::load(vars, endpoint.need(query.all("tenant").first().copied()));
    if endpoint == Endpoint::Health {
        let caller = authenticate(&settings, &req.key_headers, &query).ok();
        line.caller = caller.as_ref().map(|c| c.name().to_string());
        return Ok(Decision::Health {
            report: health::report(&settings),
            authenticated: caller.is_some(),
        });
    }
    let caller = authenticate(&settings, &req.key_headers, &query)?;
    line.caller = Some(caller.name().to_string());
    let Settings {
        common,
        same,
        exchange,
        profile,
        ..
    } = settings;
    // The settings every route needs come first: without them no section was loaded, and the
    // caller must hear which variable is wrong, not that a section is missing.
    let common = common?;
    let sections = Sections {
        same,
        exchange,
        profile,
    };
    let action = permit(endpoint, sections, &caller, &query)?;
    Ok(Decision::Act { common, action })
}

/// The route's settings sections, taken out of [`Settings`] for the action to own.
struct Sections {
    same: Option<Result<TenantServices, Problem>>,
    exchange: Option<Result<Exchange, Problem>>,
    profile: Option<Result<Profile, Problem>>,
}

/// Which tenant an endpoint reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Same,
    Cross,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    GetSecret(Scope),
    DownloadBlob(Scope),
    /// `/api/acr/token`: a registry pull token minted in a tenant profile.
    RegistryToken,
    /// `/api/healthz`: the configuration check (readiness), anonymous, no upstream call.
    Health,
    /// `/api/livez`: answers while the host serves (liveness), reads nothing.
    Live,
}

/// The routes, Functions-style: case-insensitive, a trailing slash tolerated.
const ROUTES: [(&str, Endpoint); 7] = [
    ("GetSecretSameTenant", Endpoint::GetSecret(Scope::Same)),
    ("GetSecretCrossTenant", Endpoint::GetSecret(Scope::Cross)),
    (
        "DownloadBlobSameTenant",
        Endpoint::DownloadBlob(Scope::Same),
    ),
    (
        "DownloadBlobCrossTenant",
        Endpoint::DownloadBlob(Scope::Cross),
    ),
    ("acr/token", Endpoint::RegistryToken),
    ("healthz", Endpoint::Health),
    ("livez", Endpoint::Live),
];

impl Endpoint {
    pub(crate) fn from_path(path: &str) -> Option<Endpoint> {
        let path = path.strip_suffix('/').unwrap_or(path);
        let name = path
            .get(..5)
            .filter(|p| p.eq_ignore_ascii_case("/api/"))
            .map(|_| &path[5..])?;
        ROUTES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, e)| *e)
    }

    pub(crate) fn name(self) -> &'static str {
        ROUTES
            .iter()
            .find(|(_, e)| *e == self)
            .map_or("-", |(n, _)| n)
    }

    /// What configuration this endpoint reads, given the caller's `tenant=` (unvalidated:
    /// it only selects which profile's variables are read).
    pub(crate) fn need<'a>(self, tenant: Option<&'a str>) -> Need<'a> {
        match self {
            Endpoint::GetSecret(Scope::Same) => Need::Same(Service::KeyVault),
            Endpoint::DownloadBlob(Scope::Same) => Need::Same(Service::Blob),
            Endpoint::GetSecret(Scope::Cross) => Need::Cross(Service::KeyVault, tenant),
            Endpoint::DownloadBlob(Scope::Cross) => Need::Cross(Service::Blob, tenant),
            Endpoint::RegistryToken => Need::Cross(Service::Registry, tenant),
            Endpoint::Health | Endpoint::Live => Need::Health,
        }
    }
}

/// Longest path and query accepted: a maximal legal blob name (1,024 characters of 4-byte
/// UTF-8, percent-encoded: 12 KiB) plus a container and a key fit.
pub(crate) const MAX_URL_BYTES: usize = 16 * 1024;

/// Route, method and length: decided before anything is read.
pub(crate) fn route(method: &Method, path: &str, query: &str) -> Result<Endpoint, Problem> {
    if path.len() + query.len() > MAX_URL_BYTES {
        return Err(Problem::new(
            StatusCode::URI_TOO_LONG,
            "uri-too-long",
            "URI too long",
            format!("the path and query exceed {MAX_URL_BYTES} bytes"),
        ));
    }
    let endpoint = Endpoint::from_path(path).ok_or_else(|| Problem::route_not_found(path))?;
    if method != Method::GET {
        return Err(Problem::method_not_allowed(method.as_str()));
    }
    Ok(endpoint)
}

/// What a permitted request will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    Secret {
        tenant: Tenant,
        name: String,
        version: Option<String>,
    },
    Blob {
        tenant: Tenant,
        container: String,
        blob: String,
    },
    Registry {
        profile: Profile,
        exchange: Exchange,
        registry: Origin,
        repositories: Vec<String>,
    },
}

/// The tenant an action reads from, with its settings: a profile comes with the exchange
/// settings that reach it. The one place that tells the two apart.
// One per request, moved once: boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tenant {
    Same(TenantServices),
    Profile(Profile, Exchange),
}

impl Tenant {
    /// For the log line: `same-tenant` or the profile's name.
    pub(crate) fn name(&self) -> &str {
        match self {
            Tenant::Same(_) => "same-tenant",
            Tenant::Profile(p, _) => &p.name,
        }
    }

    /// Where the tenant's variables live.
    pub(crate) fn slot(&self) -> Slot {
        match self {
            Tenant::Same(_) => Slot::Same,
            Tenant::Profile(p, _) => p.slot,
        }
    }

    /// Its Key Vault and Blob service and the rules over them.
    pub(crate) fn services(&self) -> &TenantServices {
        match self {
            Tenant::Same(s) => s,
            Tenant::Profile(p, _) => &p.services,
        }
    }

    /// The directory a profile targets; `None` for the managed identity's own tenant.
    pub(crate) fn tenant_id(&self) -> Option<&str> {
        match self {
            Tenant::Same(_) => None,
            Tenant::Profile(p, _) => Some(&p.tenant_id),
        }
    }

    /// The tenant's credential for `resource`: the managed identity's own token, or the
    /// federated exchange at the profile's tenant.
    pub(crate) fn credential<'a>(
        &'a self,
        common: &'a Common,
        resource: &'a str,
    ) -> TenantCredential<'a> {
        match self {
            Tenant::Same(_) => TenantCredential::Own(ManagedIdentity {
                identity: &common.identity,
                cloud: common.cloud,
                resource,
            }),
            Tenant::Profile(profile, exchange) => {
                TenantCredential::Federated(federated(common, profile, exchange, resource))
            }
        }
    }
}

/// A profile's token for `resource`, by the federated exchange.
pub(crate) fn federated<'a>(
    common: &'a Common,
    profile: &'a Profile,
    exchange: &'a Exchange,
    resource: &'a str,
) -> Federated<'a> {
    Federated {
        identity: &common.identity,
        exchange,
        cloud: common.cloud,
        target: TargetTenant {
            tenant_id: &profile.tenant_id,
            profile: &profile.name,
            slot: profile.slot,
        },
        resource,
    }
}

/// Authenticates the caller (key in `x-functions-key` or `code`). Unusable key settings are a
/// 500 whose detail (it may name a key) goes to the log only: nobody is authenticated yet.
fn authenticate(
    settings: &Settings,
    key_headers: &[String],
    query: &Query,
) -> Result<Caller, Problem> {
    let auth = settings.auth.as_ref().map_err(|p| p.clone().withheld())?;
    if auth.disabled {
        return Ok(Caller::Anonymous);
    }
    function_keys::authenticate(&auth.keys, key_headers, &query.all("code"))
}

/// Parses the endpoint's parameters and checks them against the tenant's rules and callers.
fn permit(
    endpoint: Endpoint,
    sections: Sections,
    caller: &Caller,
    query: &Query,
) -> Result<Action, Problem> {
    match endpoint {
        Endpoint::GetSecret(scope) => {
            let name = query.required("key")?;
            names::secret_name(&name)?;
            let version = query.optional("version")?.filter(|v| !v.is_empty());
            if let Some(v) = &version {
                names::secret_version(v)?;
            }
            let tenant = tenant(scope, sections, caller, query)?;
            if !tenant.services().secrets.allows(&name) {
                return Err(rules::denied(
                    &tenant.slot().var("secrets"),
                    &format!("secret '{name}'"),
                ));
            }
            Ok(Action::Secret {
                tenant,
                name,
                version,
            })
        }
        Endpoint::DownloadBlob(scope) => {
            let container = query.required("container")?;
            let blob = query.required("blob")?;
            names::container_name(&container)?;
            names::blob_name(&blob)?;
            let tenant = tenant(scope, sections, caller, query)?;
            if !tenant.services().blobs.allows(&container, &blob) {
                return Err(rules::denied(
                    &tenant.slot().var("blobs"),
                    &format!("blob '{blob}' in container '{container}'"),
                ));
            }
            Ok(Action::Blob {
                tenant,
                container,
                blob,
            })
        }
        Endpoint::RegistryToken => {
            let registry = names::registry(&query.required("registry")?)?;
            let repositories: Vec<String> = query
                .all("repository")
                .into_iter()
                .map(str::to_string)
                .collect();
            if repositories.is_empty() {
                return Err(Problem::bad_request(
                    "missing-parameter",
                    "query parameter 'repository' is required (repeat it for several)",
                ));
            }
            if repositories.len() > 16 {
                return Err(Problem::bad_request(
                    "too-many-repositories",
                    "at most 16 repositories per token",
                ));
            }
            for r in &repositories {
                names::repository_name(r)?;
            }
            let (profile, exchange) = cross(sections, caller, query)?;
            if !profile.registries.contains(&registry) {
                return Err(rules::denied(
                    &profile.slot.var("registries"),
                    &format!("registry '{}'", registry.authority()),
                ));
            }
            if let Some(r) = repositories
                .iter()
                .find(|r| !profile.repositories.allows(caller.name(), r))
            {
                return Err(rules::denied(
                    &profile.slot.var("repositories"),
                    &format!("repository '{r}' for caller '{}'", caller.name()),
                ));
            }
            Ok(Action::Registry {
                profile,
                exchange,
                registry,
                repositories,
            })
        }
        Endpoint::Health | Endpoint::Live => unreachable!("probes carry no action"),
    }
}

/// A settings section the route needs: loaded by `settings::load` for this endpoint.
fn section<T>(s: Option<Result<T, Problem>>) -> Result<T, Problem> {
    s.unwrap_or_else(|| {
        Err(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "configuration-invalid",
            "Configuration error",
            "a settings section this route needs was not loaded",
        ))
    })
}

/// The tenant of a request: the same-tenant settings, or the selected profile if it exists and
/// the caller may use it.
fn tenant(
    scope: Scope,
    sections: Sections,
    caller: &Caller,
    query: &Query,
) -> Result<Tenant, Problem> {
    match scope {
        Scope::Same => {
            if query.optional("tenant")?.is_some() {
                return Err(Problem::bad_request(
                    "unexpected-parameter",
                    "the same-tenant endpoints take no 'tenant' parameter",
                ));
            }
            section(sections.same).map(Tenant::Same)
        }
        Scope::Cross => cross(sections, caller, query).map(|(p, x)| Tenant::Profile(p, x)),
    }
}

/// The profile a cross-tenant request selects, if it exists and the caller may use it, and the
/// exchange settings that reach it.
fn cross(
    sections: Sections,
    caller: &Caller,
    query: &Query,
) -> Result<(Profile, Exchange), Problem> {
    let name = query.optional("tenant")?;
    if let Some(n) = &name {
        names::profile_name(n)?;
    }
    let profile = match sections.profile {
        None => {
            return Err(Problem::not_found(
                "tenant-not-found",
                format!(
                    "no tenant profile is named '{}' (see cross_tenant_name and profile1_name … profile4_name)",
                    name.unwrap_or_default()
                ),
            ))
        }
        Some(p) => p?,
    };
    if !profile.callers.allows(caller.name()) {
        return Err(rules::denied(
            &profile.slot.var("callers"),
            &format!(
                "caller '{}' on tenant profile '{}'",
                caller.name(),
                profile.name
            ),
        ));
    }
    Ok((profile, section(sections.exchange)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::read;
    use std::collections::HashMap;

    const K1: &str = "0123456789abcdef-1";
    const K2: &str = "0123456789abcdef-2";

    fn vars(extra: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        let mut v: HashMap<_, _> = [
            ("function_keys", "ops:0123456789abcdef-1,0123456789abcdef-2"),
            ("azure_client_id", "c1c1c1c1-3333-4333-8333-c1c1c1c1c1c1"),
            ("app_client_id", "a9a9a9a9-5555-4555-8555-a9a9a9a9a9a9"),
            ("cross_tenant_id", "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb"),
            ("cross_tenant_name", "b"),
            ("profile1_name", "c"),
            ("profile1_tenant_id", "cccccccc-3333-4333-8333-cccccccccccc"),
            ("profile1_callers", "ops"),
        ]
        .into_iter()
        .collect();
        v.extend(extra.iter().copied());
        v
    }

    /// The whole decision for one request, as [`decide`] takes it.
    fn outcome(
        path: &str,
        query: &str,
        key: Option<&str>,
        vars: &dyn Variables,
    ) -> Result<String, Problem> {
        let req = Incoming {
            method: &Method::GET,
            path,
            query,
            key_headers: key.map(|k| vec![k.to_string()]).unwrap_or_default(),
        };
        let mut line = RequestLine::default();
        let action = match decide(&req, vars, &mut line)? {
            Decision::Act { action, .. } => action,
            Decision::Live | Decision::Health { .. } => return Ok("probe".into()),
        };
        let caller = line.caller.unwrap_or_default();
        Ok(match action {
            Action::Secret { tenant, name, .. } => {
                format!("{caller} {name} {}", label(tenant))
            }
            Action::Blob {
                tenant,
                container,
                blob,
            } => format!("{caller} {container}/{blob} {}", label(tenant)),
            Action::Registry {
                profile,
                registry,
                repositories,
                ..
            } => {
                format!("{caller} {registry} {repositories:?} {}", profile.name)
            }
        })
    }

    fn label(t: Tenant) -> String {
        match t {
            Tenant::Same(_) => "same-tenant".into(),
            Tenant::Profile(p, _) => format!("profile {}", p.name),
        }
    }

    fn status(r: Result<String, Problem>) -> u16 {
        r.map_or_else(|p| p.status.as_u16(), |_| 200)
    }

    #[test]
    fn routes_are_case_insensitive() {
        assert_eq!(
            Endpoint::from_path("/api/getsecretsametenant"),
            Some(Endpoint::GetSecret(Scope::Same))
        );
        assert_eq!(
            Endpoint::from_path("/API/DownloadBlobCrossTenant/"),
            Some(Endpoint::DownloadBlob(Scope::Cross))
        );
        assert_eq!(
            Endpoint::from_path("/api/ACR/Token"),
            Some(Endpoint::RegistryToken)
        );
        assert_eq!(Endpoint::from_path("/api/GetSecret"), None);
        assert_eq!(Endpoint::from_path("/api"), None);
        assert_eq!(Endpoint::from_path("/apix/GetSecretSameTenant"), None);
        assert_eq!(
            Endpoint::GetSecret(Scope::Cross).name(),
            "GetSecretCrossTenant"
        );
    }

    #[test]
    fn order_is_route_method_auth_input() {
        let v = vars(&[]);
        assert_eq!(status(outcome("/nope", "", None, &v)), 404);
        assert_eq!(
            route(&Method::POST, "/api/GetSecretSameTenant", "")
                .unwrap_err()
                .status
                .as_u16(),
            405
        );
        assert_eq!(
            route(&Method::GET, "/api/x", &"a".repeat(MAX_URL_BYTES))
                .unwrap_err()
                .status
                .as_u16(),
            414
        );
        assert_eq!(
            status(outcome("/api/GetSecretSameTenant", "key=../x", None, &v)),
            401
        );
        assert_eq!(
            status(outcome(
                "/api/GetSecretSameTenant",
                "key=../x",
                Some(K2),
                &v
            )),
            400
        );
        assert_eq!(
            status(outcome(
                "/api/GetSecretSameTenant",
                "Key=ok&Code=0123456789abcdef-2",
                None,
                &v
            )),
            200
        );
    }

    #[test]
    fn a_maximal_blob_name_fits_the_url_limit() {
        let name: String = "\u{10348}".repeat(1024);
        let mut encoded = String::new();
        crate::wire::urlenc::encode_component(&name, &mut encoded);
        let query = format!("container=abc&blob={encoded}&code={K1}");
        assert_eq!(
            status(outcome(
                "/api/DownloadBlobSameTenant",
                &query,
                None,
                &vars(&[])
            )),
            200
        );
    }

    #[test]
    fn profiles_are_selected_checked_and_refused_before_any_call() {
        let v = vars(&[]);
        let secret = |q: &str, key| outcome("/api/GetSecretCrossTenant", q, Some(key), &v);
        assert!(secret("key=s", K1).unwrap().contains("profile b"));
        assert!(secret("key=s&tenant=b", K1).unwrap().contains("profile b"));
        assert!(secret("key=s&tenant=C", K1).unwrap().contains("profile c"));
        // Caller key2 (unnamed, second key) may not use profile c.
        let p = secret("key=s&tenant=c", K2).unwrap_err();
        assert_eq!((p.status.as_u16(), &*p.code), (403, "access-denied"));
        assert!(p.detail.contains("profile1_callers"));
        let p = secret("key=s&tenant=zz", K1).unwrap_err();
        assert_eq!((p.status.as_u16(), &*p.code), (404, "tenant-not-found"));
        assert_eq!(status(secret("key=s&tenant=a.b", K1)), 400);
        assert_eq!(status(secret("key=s&tenant=b&tenant=c", K1)), 400);
        assert_eq!(
            status(outcome(
                "/api/GetSecretSameTenant",
                "key=s&tenant=b",
                Some(K1),
                &v
            )),
            400
        );
    }

    #[test]
    fn rules_apply_per_endpoint_and_profile() {
        let v = vars(&[
            ("same_tenant_secrets", "app-*"),
            ("profile1_secrets", "TEST-SECRET-001"),
            ("cross_tenant_blobs", "seed/greeting.txt, public"),
        ]);
        let d = |path, q: &str| outcome(path, q, Some(K1), &v);
        assert_eq!(status(d("/api/GetSecretSameTenant", "key=app-x")), 200);
        let p = d("/api/GetSecretSameTenant", "key=other").unwrap_err();
        assert!(p.detail.contains("same_tenant_secrets") && !p.detail.contains("app-*"));
        assert_eq!(
            status(d(
                "/api/GetSecretCrossTenant",
                "key=test-secret-001&tenant=c"
            )),
            200
        );
        assert_eq!(
            status(d("/api/GetSecretCrossTenant", "key=other&tenant=c")),
            403
        );
        assert_eq!(status(d("/api/GetSecretCrossTenant", "key=other")), 200);
        assert_eq!(
            status(d(
                "/api/DownloadBlobCrossTenant",
                "container=seed&blob=greeting.txt"
            )),
            200
        );
        assert_eq!(
            status(d(
                "/api/DownloadBlobCrossTenant",
                "container=seed&blob=other.txt"
            )),
            403
        );
        assert_eq!(
            status(d(
                "/api/DownloadBlobCrossTenant",
                "container=public&blob=any/thing"
            )),
            200
        );
        assert_eq!(
            status(d(
                "/api/DownloadBlobCrossTenant",
                "container=private&blob=x"
            )),
            403
        );
    }

    #[test]
    fn registry_tokens_are_an_allow_list() {
        let v = vars(&[
            ("cross_tenant_registries", "hub.azurecr.io"),
            ("cross_tenant_repositories", "base/*, ops=infra/tools"),
        ]);
        let d = |q: &str, key| outcome("/api/acr/token", q, Some(key), &v);
        assert!(d(
            "registry=HUB.azurecr.io&repository=base/alpine&repository=base/nginx",
            K2
        )
        .is_ok());
        assert_eq!(
            status(d("registry=hub.azurecr.io&repository=infra/tools", K1)),
            200
        );
        assert_eq!(
            status(d("registry=hub.azurecr.io&repository=infra/tools", K2)),
            403
        );
        assert_eq!(
            status(d("registry=other.azurecr.io&repository=base/alpine", K1)),
            403
        );
        assert_eq!(status(d("registry=hub.azurecr.io", K1)), 400);
        assert_eq!(
            status(d("registry=hub.azurecr.io&repository=Base/Alpine", K1)),
            400
        );
        assert_eq!(
            status(d("registry=hub.azurecr.io&repository=base/*", K1)),
            400
        );
        assert_eq!(
            status(d("registry=https://hub.azurecr.io&repository=base/a", K1)),
            400
        );
        assert_eq!(
            status(d("registry=hub.azurecr.io:8443&repository=base/a", K1)),
            403
        );
        assert_eq!(
            status(d("registry=hub.azurecr.io&repository=base/a&tenant=c", K1)),
            403
        );
    }

    #[test]
    fn configuration_problems_are_500s_naming_the_variable() {
        let v = vars(&[("profile1_tenant_id", "not-a-guid")]);
        let p = outcome("/api/GetSecretCrossTenant", "key=s&tenant=c", Some(K1), &v).unwrap_err();
        assert_eq!(p.status.as_u16(), 500);
        assert!(p.detail.contains("profile1_tenant_id") && !p.detail.contains("not-a-guid"));
        // Before authentication the detail (it may name a key) is for the log only.
        let v = vars(&[("function_keys", "ops:too-short")]);
        let p = outcome("/api/GetSecretSameTenant", "key=s", Some(K1), &v).unwrap_err();
        assert_eq!(
            (p.status.as_u16(), &*p.code),
            (500, "configuration-invalid")
        );
        assert!(!p.detail.contains("ops") && !p.detail.contains("function_keys"));
        assert!(p.log_detail.unwrap().contains("'ops'"));
        let v = vars(&[("function_keys", "")]);
        let p = outcome("/api/GetSecretSameTenant", "key=s", Some(K1), &v).unwrap_err();
        assert!(p.log_detail.unwrap().contains("function_keys"));
        let v = vars(&[("app_client_id", "")]);
        let p = outcome("/api/GetSecretCrossTenant", "key=s", Some(K1), &v).unwrap_err();
        assert!(p.detail.contains("app_client_id"));
    }

    #[test]
    fn two_key_headers_are_refused() {
        let v = vars(&[]);
        let endpoint = route(&Method::GET, "/api/GetSecretSameTenant", "key=a").unwrap();
        let settings = read(&v, endpoint.need(None));
        let q = Query::parse("key=a").unwrap();
        let two = [K1.to_string(), K2.to_string()];
        assert_eq!(
            authenticate(&settings, &two, &q)
                .unwrap_err()
                .status
                .as_u16(),
            401
        );
    }
}
