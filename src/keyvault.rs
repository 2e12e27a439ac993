//! Key Vault Get Secret (azure-wire §4) with the SDKs' challenge flow: learn the vault's tenant
//! and token resource from its 401 challenge, trust the challenge only if the resource host is a
//! suffix of the vault host, refuse to send a token to a vault of another tenant, and retry once
//! with a new token when a cached one is refused.

use crate::config::{self, Origin, Tenant};
use crate::errors::{truncate, Problem};
use crate::identity::{self, Env, Scope};
use crate::upstream::{net_problem, retry_after, Request, Response, Service, Transport};
use serde::{Deserialize, Serialize};

pub const API_VERSION: &str = "7.5";

/// What a vault's challenge told us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub tenant: String,
    pub resource: String,
}

/// Parses `Bearer authorization="https://login.windows.net/{tenant}", resource="https://vault.azure.net"`
/// (also `authorization_uri` and `scope` spellings). `None` when either part is missing.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let rest = header
        .trim()
        .strip_prefix("Bearer")
        .or_else(|| header.trim().strip_prefix("bearer"))?;
    let mut authorization = None;
    let mut resource = None;
    for part in split_params(rest) {
        let (k, v) = part.split_once('=')?;
        let v = v.trim().trim_matches('"').to_string();
        match k.trim().to_ascii_lowercase().as_str() {
            "authorization" | "authorization_uri" => authorization = Some(v),
            "resource" => resource = Some(v),
            "scope" if resource.is_none() => {
                resource = Some(v.trim_end_matches("/.default").to_string())
            }
            _ => {}
        }
    }
    let authorization = url::Url::parse(&authorization?).ok()?;
    let tenant = authorization
        .path_segments()?
        .next()
        .filter(|t| !t.is_empty())?
        .to_ascii_lowercase();
    let resource = resource?.trim_end_matches('/').to_string();
    url::Url::parse(&resource).ok()?.host_str()?;
    Some(Challenge { tenant, resource })
}

/// Splits on commas outside quotes.
fn split_params(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// The SDKs' rule: the vault host must end with "." + the challenge resource's host.
pub fn resource_matches_vault(vault: &Origin, resource: &str) -> bool {
    let Some(host) = url::Url::parse(resource)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    else {
        return false;
    };
    vault.host.ends_with(&format!(".{host}"))
}

pub fn secret_path(name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("/secrets/{name}/{v}?api-version={API_VERSION}"),
        None => format!("/secrets/{name}?api-version={API_VERSION}"),
    }
}

#[derive(Deserialize)]
struct SecretBundle {
    value: String,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorInner,
}

#[derive(Deserialize, Default)]
struct ErrorInner {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    innererror: Option<Box<ErrorInner>>,
}

/// The most specific error code Key Vault gave.
fn error_code(body: &[u8]) -> (String, String) {
    let b: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let inner = b
        .error
        .innererror
        .as_ref()
        .map(|i| i.code.clone())
        .filter(|c| !c.is_empty());
    (
        truncate(&inner.unwrap_or(b.error.code), 100),
        b.error.message,
    )
}

pub struct Target<'a> {
    pub vault: &'a Origin,
    pub tenant: Tenant,
    pub name: &'a str,
    pub version: Option<&'a str>,
}

/// Maps a Key Vault answer other than 200.
pub fn error_problem(resp: &Response, target: &Target, who: &str) -> Problem {
    let (code, message) = error_code(&resp.body);
    let vault = target.vault;
    let name = target.name;
    match (resp.status(), code.as_str()) {
        (404, _) => Problem::not_found(
            "secret-not-found",
            match target.version {
                Some(v) => format!("secret '{name}' version {v} does not exist in {vault} (or is deleted)"),
                None => format!("secret '{name}' does not exist in {vault} (or is deleted)"),
            },
        ),
        (403, "SecretDisabled") => Problem::new(409, "secret-disabled", "Secret disabled", format!("secret '{name}' in {vault} is disabled: enable it or request another version")),
        (403, "ForbiddenByRbac") => Problem::upstream(
            "keyvault-forbidden-rbac",
            format!("Key Vault refused the identity (ForbiddenByRbac): grant 'Key Vault Secrets User' on {vault} to {who}"),
        ),
        (403, "ForbiddenByPolicy") | (403, "AccessDenied") => Problem::upstream(
            "keyvault-forbidden-policy",
            format!("Key Vault refused the identity (ForbiddenByPolicy): add an access policy with secret permission 'get' on {vault} for {who}, or switch the vault to Azure RBAC and grant 'Key Vault Secrets User'"),
        ),
        (403, "ForbiddenByFirewall") => Problem::upstream(
            "keyvault-network",
            format!(
                "Key Vault {vault} refused the connection (ForbiddenByFirewall): the request did not arrive through an allowed network. \
                 Check that {} resolves to the private endpoint's IP (private DNS zone privatelink.vaultcore.azure.net linked to the cluster VNet)",
                vault.host
            ),
        ),
        (403, "ForbiddenByConnection") => Problem::upstream(
            "keyvault-network",
            format!("Key Vault {vault} refused the connection (ForbiddenByConnection): the private endpoint connection is not approved; an owner of the vault must approve it"),
        ),
        (401, _) => Problem::upstream(
            "keyvault-token-refused",
            format!("Key Vault {vault} refused the access token of {who}: {}", truncate(&message, 200)),
        ),
        (429, _) => Problem::throttled("Key Vault", retry_after(&resp.head).unwrap_or(1)),
        (status, _) => Problem::upstream(
            "keyvault-failed",
            format!("Key Vault {vault} answered HTTP {status} {}: {}", code, truncate(&message, 200)),
        ),
    }
}

fn challenge_key(vault: &Origin) -> String {
    format!("challenge|v1|{vault}")
}

/// Reads a secret's value.
pub fn get_secret<T: Transport>(
    env: &Env<T>,
    tenant: Tenant,
    name: &str,
    version: Option<&str>,
) -> Result<String, Problem> {
    let cloud = config::cloud(env.vars)?;
    let vault = config::vault(env.vars, tenant)?;
    identity::preflight(env.vars, tenant, cloud)?;
    let target = Target {
        vault: &vault,
        tenant,
        name,
        version,
    };
    let path = secret_path(name, version);
    let request = |token: Option<&str>| {
        let req = Request::get(Service::KeyVault, &vault, path.clone())
            .header("x-ms-client-request-id", env.request_id.clone());
        match token {
            Some(t) => req.header("Authorization", format!("Bearer {t}")),
            None => req,
        }
    };
    let send = |req: &Request| crate::retry::send(env, req)?.map_err(|e| net_problem(req, &e));

    let mut challenge = match env
        .store
        .get(&challenge_key(&vault))
        .and_then(|v| serde_json::from_slice::<Challenge>(&v).ok())
    {
        Some(c) => c,
        None => {
            let resp = send(&request(None))?;
            match resp.status() {
                401 => challenge_from(&resp, &vault)?,
                _ => {
                    return Err(error_problem(
                        &resp,
                        &target,
                        &identity::principal(tenant, env.vars, None),
                    ))
                }
            }
        }
    };
    for attempt in 0..2 {
        check_challenge(env, &vault, tenant, &challenge)?;
        if let Ok(v) = serde_json::to_vec(&challenge) {
            env.store.set(&challenge_key(&vault), &v);
        }
        let scope = Scope {
            cloud,
            tenant,
            resource: &challenge.resource,
        };
        let token = identity::access_token(env, &scope)?;
        let resp = send(&request(Some(&token)))?;
        match resp.status() {
            200 => {
                let bundle: SecretBundle = serde_json::from_slice(&resp.body).map_err(|_| {
                    Problem::upstream(
                        "keyvault-failed",
                        format!("Key Vault {vault} answered 200 without a secret value"),
                    )
                })?;
                return Ok(bundle.value);
            }
            401 if attempt == 0 => {
                // A cached token or challenge went stale (rotation, vault moved): start over once.
                identity::forget(env, &scope)?;
                challenge = challenge_from(&resp, &vault)?;
            }
            _ => {
                return Err(error_problem(
                    &resp,
                    &target,
                    &identity::principal(tenant, env.vars, Some(&token)),
                ))
            }
        }
    }
    // Both attempts answered 401: the second one's refusal was mapped above, so this is only
    // reached if the loop bound changes.
    Err(Problem::upstream(
        "keyvault-token-refused",
        format!("Key Vault {vault} refused a freshly issued token"),
    ))
}

fn challenge_from(resp: &Response, vault: &Origin) -> Result<Challenge, Problem> {
    resp.header("www-authenticate").and_then(parse_challenge).ok_or_else(|| {
        Problem::upstream(
            "keyvault-challenge-invalid",
            format!("{vault} answered 401 without a Bearer challenge naming authorization and resource: is it really a Key Vault endpoint?"),
        )
    })
}

/// Refuses a challenge that would send our token somewhere it does not belong.
fn check_challenge<T: Transport>(
    env: &Env<T>,
    vault: &Origin,
    tenant: Tenant,
    challenge: &Challenge,
) -> Result<(), Problem> {
    if !resource_matches_vault(vault, &challenge.resource) {
        return Err(Problem::upstream(
            "keyvault-challenge-invalid",
            format!(
                "{vault} challenged for resource '{}', which is not a parent domain of the vault host; refusing to send it a token \
                 (check the endpoint variable)",
                truncate(&challenge.resource, 100)
            ),
        ));
    }
    if tenant == Tenant::Cross {
        let configured = config::required_guid(
            env.vars,
            config::var::CROSS_TENANT_ID,
            "tenant B's directory (tenant) id",
        )?;
        if challenge.tenant != configured {
            return Err(Problem::upstream(
                "keyvault-tenant-mismatch",
                format!(
                    "vault {vault} belongs to tenant {}, but the cross-tenant id (cross_tenant_id) is {configured}: no token was sent; \
                     point cross_keyvault_endpoint at tenant B's vault or correct cross_tenant_id",
                    truncate(&challenge.tenant, 40)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_origin;

    #[test]
    fn parses_real_challenge_forms() {
        let c = parse_challenge(r#"Bearer authorization="https://login.windows.net/72F988BF-86f1-41af-91ab-2d7cd011db47", resource="https://vault.azure.net""#).unwrap();
        assert_eq!(
            c,
            Challenge {
                tenant: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
                resource: "https://vault.azure.net".into()
            }
        );
        let c = parse_challenge(r#"Bearer authorization_uri="https://login.microsoftonline.com/t1/", scope="https://vault.azure.net/.default""#).unwrap();
        assert_eq!(
            (c.tenant.as_str(), c.resource.as_str()),
            ("t1", "https://vault.azure.net")
        );
    }

    #[test]
    fn rejects_incomplete_or_foreign_challenges() {
        for bad in [
            "",
            "Basic realm=x",
            r#"Bearer resource="https://vault.azure.net""#,
            r#"Bearer authorization="https://login.windows.net/t""#,
            r#"Bearer authorization="nope", resource="x""#,
        ] {
            assert!(parse_challenge(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn challenge_resource_must_be_a_parent_domain() {
        let vault = parse_origin("https://contoso.vault.azure.net").unwrap();
        assert!(resource_matches_vault(&vault, "https://vault.azure.net"));
        assert!(!resource_matches_vault(&vault, "https://evil.example.com"));
        assert!(!resource_matches_vault(
            &vault,
            "https://contoso.vault.azure.net"
        ));
        let sneaky = parse_origin("https://contoso.vault.azure.net.evil.com").unwrap();
        assert!(!resource_matches_vault(&sneaky, "https://vault.azure.net"));
    }

    #[test]
    fn secret_paths() {
        assert_eq!(secret_path("a-b", None), "/secrets/a-b?api-version=7.5");
        assert_eq!(
            secret_path("a", Some("0123")),
            "/secrets/a/0123?api-version=7.5"
        );
    }

    #[test]
    fn maps_errors_honestly() {
        let vault = parse_origin("https://v.vault.azure.net").unwrap();
        let target = Target {
            vault: &vault,
            tenant: Tenant::Same,
            name: "s",
            version: None,
        };
        let resp = |status, inner: &str| {
            Response {
            head: crate::upstream::Head { status, headers: vec![] },
            body: format!(r#"{{"error":{{"code":"Forbidden","message":"m","innererror":{{"code":"{inner}"}}}}}}"#).into_bytes(),
        }
        };
        let p = error_problem(
            &resp(403, "ForbiddenByRbac"),
            &target,
            "the managed identity",
        );
        assert_eq!((p.status, p.code), (502, "keyvault-forbidden-rbac"));
        assert!(
            p.detail.contains("Key Vault Secrets User")
                && p.detail.contains("https://v.vault.azure.net")
        );
        assert_eq!(
            error_problem(&resp(404, "SecretNotFound"), &target, "").status,
            404
        );
        assert_eq!(
            error_problem(&resp(403, "SecretDisabled"), &target, "").status,
            409
        );
        assert_eq!(
            error_problem(&resp(403, "ForbiddenByConnection"), &target, "").code,
            "keyvault-network"
        );
        assert_eq!(
            error_problem(&resp(403, "ForbiddenByPolicy"), &target, "").code,
            "keyvault-forbidden-policy"
        );
        assert_eq!(error_problem(&resp(429, ""), &target, "").status, 503);
        assert_eq!(error_problem(&resp(500, ""), &target, "").status, 502);
    }

    #[test]
    fn echoed_error_codes_are_bounded() {
        // fuzz/corpus/json_errors/crash-keyvault-long-code
        let vault = parse_origin("https://v.vault.azure.net").unwrap();
        let target = Target {
            vault: &vault,
            tenant: Tenant::Same,
            name: "s",
            version: None,
        };
        let resp = Response {
            head: crate::upstream::Head {
                status: 500,
                headers: vec![],
            },
            body: format!(
                r#"{{"error":{{"code":"{}","message":"m"}}}}"#,
                "C".repeat(100_000)
            )
            .into_bytes(),
        };
        assert!(error_problem(&resp, &target, "").detail.len() < 2048);
    }
}
