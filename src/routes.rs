//! From an incoming request to a validated action: route, method, caller key, parameters, in
//! that order. Nothing here talks to a service, so every refusal is free of upstream calls.

use crate::access;
use crate::auth::{self, Caller};
use crate::config::{self, var, Tenant, Variables};
use crate::errors::Problem;
use crate::input::{self, Query};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    GetSecret(Tenant),
    DownloadBlob(Tenant),
    /// `/api/healthz`: configuration check for probes, no key, no upstream call.
    Health,
}

impl Endpoint {
    /// Functions routes are case-insensitive; a trailing slash is tolerated.
    pub fn from_path(path: &str) -> Option<Endpoint> {
        let path = path.strip_suffix('/').unwrap_or(path);
        let name = path
            .get(..5)
            .filter(|p| p.eq_ignore_ascii_case("/api/"))
            .map(|_| &path[5..])?;
        [
            ("GetSecretSameTenant", Endpoint::GetSecret(Tenant::Same)),
            ("GetSecretCrossTenant", Endpoint::GetSecret(Tenant::Cross)),
            (
                "DownloadBlobSameTenant",
                Endpoint::DownloadBlob(Tenant::Same),
            ),
            (
                "DownloadBlobCrossTenant",
                Endpoint::DownloadBlob(Tenant::Cross),
            ),
            ("healthz", Endpoint::Health),
        ]
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, e)| e)
    }

    pub fn name(self) -> &'static str {
        match self {
            Endpoint::GetSecret(Tenant::Same) => "GetSecretSameTenant",
            Endpoint::GetSecret(Tenant::Cross) => "GetSecretCrossTenant",
            Endpoint::DownloadBlob(Tenant::Same) => "DownloadBlobSameTenant",
            Endpoint::DownloadBlob(Tenant::Cross) => "DownloadBlobCrossTenant",
            Endpoint::Health => "healthz",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Report configuration health.
    Health,
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
}

impl Action {
    /// The resource, for the log line (names only).
    pub fn resource(&self, vars: &dyn Variables) -> String {
        match self {
            Action::Health => "configuration".to_string(),
            Action::Secret {
                tenant,
                name,
                version,
            } => {
                let vault = config::vault(vars, *tenant)
                    .map_or_else(|_| "(vault not configured)".to_string(), |v| v.to_string());
                match version {
                    Some(v) => format!("{vault}/secrets/{name}/{v}"),
                    None => format!("{vault}/secrets/{name}"),
                }
            }
            Action::Blob {
                tenant,
                container,
                blob,
            } => {
                let account = config::blob_service(vars, *tenant).map_or_else(
                    |_| "(blob service not configured)".to_string(),
                    |s| format!("{}{}", s.origin, s.base_path),
                );
                format!(
                    "{account}/{container}/{}",
                    crate::errors::truncate(blob, 200)
                )
            }
        }
    }
}

/// What the handler knows about the incoming request.
pub struct Incoming<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// Every `x-functions-key` header value.
    pub key_headers: Vec<String>,
}

#[derive(Debug)]
pub struct Planned {
    pub endpoint: Endpoint,
    pub caller: Caller,
    pub action: Action,
}

/// A refusal, with the endpoint when the route was known (for the log line).
#[derive(Debug)]
pub struct Refusal {
    pub endpoint: Option<Endpoint>,
    pub caller: Option<Caller>,
    pub problem: Problem,
}

/// Longest path and query accepted (a 1024-character blob name percent-encoded fits easily).
pub const MAX_URL_BYTES: usize = 8 * 1024;

pub fn plan(req: &Incoming, vars: &dyn Variables) -> Result<Planned, Refusal> {
    if req.path.len() + req.query.len() > MAX_URL_BYTES {
        return Err(Refusal {
            endpoint: None,
            caller: None,
            problem: Problem::new(
                414,
                "uri-too-long",
                "URI too long",
                format!("the path and query exceed {MAX_URL_BYTES} bytes"),
            ),
        });
    }
    let Some(endpoint) = Endpoint::from_path(req.path) else {
        return Err(Refusal {
            endpoint: None,
            caller: None,
            problem: Problem::route_not_found(req.path),
        });
    };
    let refuse = |caller: Option<Caller>, problem| Refusal {
        endpoint: Some(endpoint),
        caller,
        problem,
    };
    if req.method != "GET" {
        return Err(refuse(None, Problem::method_not_allowed(req.method)));
    }
    let query = Query::parse(req.query);
    let action = |caller: Caller, action| {
        Ok(Planned {
            endpoint,
            caller,
            action,
        })
    };
    let tenant = match endpoint {
        // Probes carry no key; the answer reveals only whether configuration is complete.
        Endpoint::Health => return action(Caller::Anonymous, Action::Health),
        Endpoint::GetSecret(tenant) | Endpoint::DownloadBlob(tenant) => tenant,
    };
    let caller = authenticate(req, &query, vars).map_err(|p| refuse(None, p))?;
    let parsed = match endpoint {
        Endpoint::DownloadBlob(_) => blob_action(tenant, &query),
        _ => secret_action(tenant, &query),
    }
    .and_then(|action| permit(&action, vars).map(|()| action));
    match parsed {
        Ok(parsed) => action(caller, parsed),
        Err(p) => Err(refuse(Some(caller), p)),
    }
}

/// The endpoint's least-privilege rules, if any.
fn permit(action: &Action, vars: &dyn Variables) -> Result<(), Problem> {
    match action {
        Action::Secret { tenant, name, .. } => access::check_secret(vars, *tenant, name),
        Action::Blob {
            tenant,
            container,
            blob,
        } => access::check_blob(vars, *tenant, container, blob),
        Action::Health => Ok(()),
    }
}

fn authenticate(req: &Incoming, query: &Query, vars: &dyn Variables) -> Result<Caller, Problem> {
    let disabled = config::flag(vars, var::AUTH_DISABLED)?;
    let header = match req.key_headers.as_slice() {
        [] => None,
        [one] => Some(one.as_str()),
        _ => return Err(auth::unauthorized()),
    };
    auth::authenticate(
        vars.get(var::FUNCTION_KEYS).as_deref(),
        disabled,
        header,
        &query.all("code"),
    )
}

fn secret_action(tenant: Tenant, q: &Query) -> Result<Action, Problem> {
    let name = q.required("key")?;
    input::secret_name(&name)?;
    let version = q.optional("version")?.filter(|v| !v.is_empty());
    if let Some(v) = &version {
        input::secret_version(v)?;
    }
    Ok(Action::Secret {
        tenant,
        name,
        version,
    })
}

fn blob_action(tenant: Tenant, q: &Query) -> Result<Action, Problem> {
    let container = q.required("container")?;
    let blob = q.required("blob")?;
    input::container_name(&container)?;
    input::blob_name(&blob)?;
    Ok(Action::Blob {
        tenant,
        container,
        blob,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars() -> HashMap<&'static str, &'static str> {
        [("function_keys", "ops:k1,k2")].into_iter().collect()
    }

    fn req<'a>(method: &'a str, path: &'a str, query: &'a str, key: Option<&str>) -> Incoming<'a> {
        Incoming {
            method,
            path,
            query,
            key_headers: key.map(|k| vec![k.to_string()]).unwrap_or_default(),
        }
    }

    #[test]
    fn routes_are_case_insensitive() {
        assert_eq!(
            Endpoint::from_path("/api/getsecretsametenant"),
            Some(Endpoint::GetSecret(Tenant::Same))
        );
        assert_eq!(
            Endpoint::from_path("/API/DownloadBlobCrossTenant/"),
            Some(Endpoint::DownloadBlob(Tenant::Cross))
        );
        assert_eq!(Endpoint::from_path("/api/GetSecret"), None);
        assert_eq!(Endpoint::from_path("/api"), None);
        assert_eq!(Endpoint::from_path("/apix/GetSecretSameTenant"), None);
    }

    #[test]
    fn order_is_route_method_auth_input() {
        let v = vars();
        assert_eq!(
            plan(&req("GET", "/nope", "", None), &v)
                .unwrap_err()
                .problem
                .status,
            404
        );
        assert_eq!(
            plan(&req("POST", "/api/GetSecretSameTenant", "", None), &v)
                .unwrap_err()
                .problem
                .status,
            405
        );
        assert_eq!(
            plan(
                &req("GET", "/api/GetSecretSameTenant", "key=../x", None),
                &v
            )
            .unwrap_err()
            .problem
            .status,
            401
        );
        assert_eq!(
            plan(
                &req("GET", "/api/GetSecretSameTenant", "key=../x", Some("k2")),
                &v
            )
            .unwrap_err()
            .problem
            .status,
            400
        );
    }

    #[test]
    fn builds_actions() {
        let v = vars();
        let p = plan(
            &req(
                "GET",
                "/api/GetSecretCrossTenant",
                "key=TEST-SECRET-001&code=k1",
                None,
            ),
            &v,
        )
        .unwrap();
        assert_eq!(p.caller, Caller::Key("ops".into()));
        assert_eq!(
            p.action,
            Action::Secret {
                tenant: Tenant::Cross,
                name: "TEST-SECRET-001".into(),
                version: None
            }
        );
        let p = plan(
            &req(
                "GET",
                "/api/DownloadBlobSameTenant",
                "container=c01&blob=a%2Fb.txt",
                Some("k2"),
            ),
            &v,
        )
        .unwrap();
        assert_eq!(
            p.action,
            Action::Blob {
                tenant: Tenant::Same,
                container: "c01".into(),
                blob: "a/b.txt".into()
            }
        );
    }

    #[test]
    fn two_key_headers_are_refused() {
        let mut r = req("GET", "/api/GetSecretSameTenant", "key=a", None);
        r.key_headers = vec!["k1".into(), "k2".into()];
        assert_eq!(plan(&r, &vars()).unwrap_err().problem.status, 401);
    }
}
