//! Key Vault Get Secret with the SDKs' challenge flow, stricter: a vault's 401 challenge tells
//! its tenant and token resource; the resource must be exactly the cloud's Key Vault resource and
//! a parent domain of the vault host, and the tenant must be the one the profile targets (and the
//! one the token was issued in), or no token is sent.
//!
//! The vault's token is cached per vault, so a warm request is one cache read and one GET.

use crate::config::settings::Slot;
use crate::errors::{truncate, Problem};
use crate::identity::cache;
use crate::identity::context::Context;
use crate::identity::credential::Credential;
use crate::identity::jwt;
use crate::identity::token::Token;
use crate::net::cloud::{Cloud, Service};
use crate::net::origin::Origin;
use crate::net::retry;
use crate::net::upstream::{net_problem, retry_after, Request, Response, Transport};
use crate::services::bearer::{authorize, Attempt};
use crate::wire::typed_json::{self, Lenient, Object};
use http::StatusCode;
use serde::Deserialize;
use std::cell::RefCell;

pub(crate) const API_VERSION: &str = "7.5";

/// What a vault's challenge told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub tenant: String,
    pub resource: String,
}

/// Parses `Bearer authorization="https://login.windows.net/{tenant}", resource="https://vault.azure.net"`
/// (also `authorization_uri` and `scope` spellings). `None` when either part is missing.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    // The scheme is case-insensitive (RFC 9110).
    let header = header.trim();
    let (scheme, rest) = header.split_at(header.find(char::is_whitespace)?);
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
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
    let authorization = authorization?;
    let after_scheme = authorization
        .strip_prefix("https://")
        .or_else(|| authorization.strip_prefix("http://"))?;
    let (_host, path) = after_scheme.split_once('/')?;
    let tenant = path
        .split(['/', '?', '#'])
        .next()
        .filter(|t| !t.is_empty())?
        .to_ascii_lowercase();
    let resource = resource?.trim_end_matches('/').to_string();
    Some(Challenge { tenant, resource }).filter(|c| !c.resource.is_empty())
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

/// The challenge's resource must be exactly the cloud's Key Vault resource (no port, path,
/// userinfo or plain http), and the vault host a subdomain of it.
pub(crate) fn resource_matches_vault(cloud: Cloud, vault: &Origin, resource: &str) -> bool {
    let expected = cloud.vault_resource();
    let host = &expected["https://".len()..];
    resource.eq_ignore_ascii_case(expected)
        && vault.host.len() > host.len() + 1
        && vault.host.ends_with(host)
        && vault.host[..vault.host.len() - host.len()].ends_with('.')
}

pub(crate) fn secret_path(name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("/secrets/{name}/{v}?api-version={API_VERSION}"),
        None => format!("/secrets/{name}?api-version={API_VERSION}"),
    }
}

/// A Key Vault error body: `{"error":{"code":…,"message":…,"innererror":{"code":…}}}`, each
/// member read on its own (one of another type reads as absent).
#[derive(Deserialize, Default)]
struct VaultErrorAnswer {
    #[serde(default)]
    error: Lenient<Object<ErrorDetail>>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: Lenient<String>,
    #[serde(default)]
    message: Lenient<String>,
    #[serde(default)]
    innererror: Lenient<Object<InnerError>>,
}

#[derive(Deserialize)]
struct InnerError {
    #[serde(default)]
    code: Lenient<String>,
}

/// The most specific error code Key Vault gave (`error.innererror.code`, else `error.code`)
/// and its message; empty when the body says nothing readable.
fn error_code(body: &[u8]) -> (String, String) {
    let Some(Object(error)) = typed_json::object::<VaultErrorAnswer>(body)
        .unwrap_or_default()
        .error
        .0
    else {
        return (String::new(), String::new());
    };
    let inner = error
        .innererror
        .0
        .and_then(|Object(i)| i.code.0)
        .filter(|c| !c.is_empty());
    let code = inner.unwrap_or_else(|| error.code.text());
    (truncate(&code, 100), error.message.text())
}

/// A secret bundle: only its `value` is read.
#[derive(Deserialize)]
struct SecretBundle {
    value: String,
}

/// The value of a 200 answer's secret bundle.
pub(crate) fn secret_value(body: &[u8]) -> anyhow::Result<String> {
    typed_json::object::<SecretBundle>(body).map(|b| b.value)
}

/// The secret a request asks for, for error details.
pub(crate) struct SecretAddress<'a> {
    pub cloud: Cloud,
    pub vault: &'a Origin,
    pub name: &'a str,
    pub version: Option<&'a str>,
}

/// Maps a Key Vault answer other than 200.
pub(crate) fn error_problem(resp: &Response, target: &SecretAddress, who: &str) -> Problem {
    let (code, message) = error_code(&resp.body);
    let vault = target.vault;
    let name = target.name;
    match (resp.status().as_u16(), code.as_str()) {
        (404, _) => Problem::not_found(
            "secret-not-found",
            match target.version {
                Some(v) => format!("secret '{name}' version {v} does not exist in {vault} (or is deleted)"),
                None => format!("secret '{name}' does not exist in {vault} (or is deleted)"),
            },
        ),
        (403, "SecretDisabled") => Problem::new(StatusCode::CONFLICT, "secret-disabled", "Secret disabled", format!("secret '{name}' in {vault} is disabled: enable it or request another version")),
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
                 Check that {} resolves to the private endpoint's IP (private DNS zone {} linked to the cluster VNet)",
                vault.host,
                target.cloud.private_dns_zone(Service::KeyVault)
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

fn challenge_invalid(vault: &Origin) -> Problem {
    Problem::upstream(
        "keyvault-challenge-invalid",
        format!("{vault} answered 401 without a Bearer challenge naming authorization and resource: is it really a Key Vault endpoint?"),
    )
}

const REQUEST_ID: &str = "x-ms-client-request-id";

/// A token for one vault: the underlying credential's, fetched only after the vault's
/// challenge has shown that the vault belongs to the expected tenant and wants the cloud's Key
/// Vault resource.
pub(crate) struct VaultCredential<'a, C: Credential> {
    pub inner: C,
    pub cloud: Cloud,
    pub vault: &'a Origin,
    /// The tenant the profile targets; `None` for the managed identity's own tenant (then the
    /// token's own tenant is what the vault must name).
    pub expected_tenant: Option<&'a str>,
    /// Where the tenant's variables live, for mismatch details: which variable chose the vault
    /// and which names the tenant.
    pub slot: Slot,
    pub target: &'a SecretAddress<'a>,
    /// A challenge already in hand (the one a refusal carried), used instead of probing.
    pub pending: RefCell<Option<Challenge>>,
}

impl<C: Credential> VaultCredential<'_, C> {
    fn challenge<T: Transport>(&self, ctx: &Context<T>) -> Result<Challenge, Problem> {
        if let Some(c) = self.pending.borrow_mut().take() {
            return Ok(c);
        }
        // The SDKs' first step: an unauthenticated request, answered with the challenge.
        let req = Request::get(
            Service::KeyVault,
            self.vault,
            secret_path(self.target.name, self.target.version),
        )
        .header(REQUEST_ID, ctx.request_id);
        let resp = retry::send(&ctx.calls(), &req)?.map_err(|e| net_problem(&req, &e))?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Err(error_problem(
                &resp,
                self.target,
                &self.inner.principal(None),
            ));
        }
        resp.header("www-authenticate")
            .and_then(parse_challenge)
            .ok_or_else(|| challenge_invalid(self.vault))
    }

    fn check_resource(&self, challenge: &Challenge) -> Result<(), Problem> {
        if resource_matches_vault(self.cloud, self.vault, &challenge.resource) {
            return Ok(());
        }
        Err(Problem::upstream(
            "keyvault-challenge-invalid",
            format!(
                "{} challenged for resource '{}', which is not the {} cloud's Key Vault resource {} of which the vault \
                 host is a subdomain; refusing to send it a token (check {})",
                self.vault,
                truncate(&challenge.resource, 100),
                self.cloud.name(),
                self.cloud.vault_resource(),
                self.slot.var("keyvault_endpoint")
            ),
        ))
    }

    fn check_tenant(&self, challenge: &Challenge, tenant: &str) -> Result<(), Problem> {
        if challenge.tenant == tenant {
            return Ok(());
        }
        Err(Problem::upstream(
            "keyvault-tenant-mismatch",
            format!(
                "vault {} belongs to tenant {}, but the token is for tenant {tenant}: no token was sent; \
                 point {} at a vault of that tenant or correct {}",
                self.vault,
                truncate(&challenge.tenant, 40),
                self.slot.var("keyvault_endpoint"),
                self.tenant_variable()
            ),
        ))
    }
}

impl<C: Credential> VaultCredential<'_, C> {
    /// The variable naming the tenant the vault must belong to (the same tenant has none).
    fn tenant_variable(&self) -> String {
        match self.slot {
            Slot::Same => "the tenant id".into(),
            profile => profile.var("tenant_id"),
        }
    }

    fn tenant_unreadable(&self, challenge: &Challenge) -> Problem {
        Problem::upstream(
            "keyvault-tenant-mismatch",
            format!(
                "vault {} belongs to tenant {}, but the token for it names no tenant (no readable tid \
                 claim), so it could not be checked: no token was sent ({})",
                self.vault,
                truncate(&challenge.tenant, 40),
                self.inner.principal(None)
            ),
        )
    }
}

impl<C: Credential> Credential for VaultCredential<'_, C> {
    fn cache_key(&self) -> Option<String> {
        let inner = self.inner.cache_key()?;
        Some(cache::key("kv", &[&inner, &self.vault.to_string()]))
    }

    fn fetch<T: Transport>(&self, ctx: &Context<T>) -> Result<Token, Problem> {
        let challenge = self.challenge(ctx)?;
        self.check_resource(&challenge)?;
        if let Some(tenant) = self.expected_tenant {
            self.check_tenant(&challenge, tenant)?;
        }
        let token = self.inner.fetch(ctx)?;
        // Whatever was configured, the token's own tenant must be the vault's; a token whose
        // tenant cannot be read is not sent (fail closed).
        let tid = jwt::claims(&token.secret)
            .map(|c| c.tid.to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.tenant_unreadable(&challenge))?;
        self.check_tenant(&challenge, &tid)?;
        Ok(token)
    }

    fn principal(&self, token: Option<&str>) -> String {
        self.inner.principal(token)
    }

    fn refused(&self, challenge: Option<&str>) -> Result<(), Problem> {
        let challenge = challenge
            .and_then(parse_challenge)
            .ok_or_else(|| challenge_invalid(self.vault))?;
        *self.pending.borrow_mut() = Some(challenge);
        Ok(())
    }
}

/// Reads a secret's value.
pub(crate) fn get_secret<T: Transport, C: Credential>(
    ctx: &Context<T>,
    credential: &VaultCredential<C>,
) -> Result<String, Problem> {
    let target = credential.target;
    let path = secret_path(target.name, target.version);
    authorize(ctx, credential, target.vault, Service::KeyVault, |token| {
        let req = Request::get(Service::KeyVault, target.vault, path.clone())
            .header(REQUEST_ID, ctx.request_id)
            .header("authorization", format!("Bearer {}", token.secret));
        let resp = retry::send(&ctx.calls(), &req)?.map_err(|e| net_problem(&req, &e))?;
        // Who the vault saw, for refusals only: it decodes the token.
        let who = || credential.principal(Some(&token.secret));
        match resp.status() {
            // The reason is not shown: the answer carries the secret.
            StatusCode::OK => secret_value(&resp.body).map(Attempt::Done).map_err(|_| {
                Problem::upstream(
                    "keyvault-failed",
                    format!(
                        "Key Vault {} answered 200 without a secret value",
                        target.vault
                    ),
                )
            }),
            StatusCode::UNAUTHORIZED => Ok(Attempt::Refused {
                problem: error_problem(&resp, target, &who()),
                challenge: resp.header("www-authenticate").map(str::to_string),
            }),
            _ => Err(error_problem(&resp, target, &who())),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::origin::parse as parse_origin;
    use crate::net::upstream::Head;

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
        let c = parse_challenge(r#"BEARER authorization_uri="https://login.microsoftonline.com/t1/", scope="https://vault.azure.net/.default""#).unwrap();
        assert_eq!(
            (c.tenant.as_str(), c.resource.as_str()),
            ("t1", "https://vault.azure.net")
        );
    }

    #[test]
    fn rejects_incomplete_challenges() {
        for bad in [
            "",
            "Basic realm=x",
            r#"Bearer resource="https://vault.azure.net""#,
            r#"Bearer authorization="https://login.windows.net/t""#,
            r#"Bearer authorization="nope", resource="x""#,
            r#"Bearer authorization="https://login.windows.net/", resource="https://vault.azure.net""#,
        ] {
            assert!(parse_challenge(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn challenge_resource_must_be_exactly_the_clouds_vault_resource() {
        let vault = parse_origin("https://contoso.vault.azure.net").unwrap();
        let c = Cloud::Public;
        assert!(resource_matches_vault(c, &vault, "https://vault.azure.net"));
        for bad in [
            "https://net",
            "https://azure.net",
            "http://vault.azure.net",
            "https://vault.azure.net:443",
            "https://vault.azure.net/path",
            "https://user@vault.azure.net",
            "https://evil.example.com",
            "https://contoso.vault.azure.net",
            "https://vault.usgovcloudapi.net",
        ] {
            assert!(!resource_matches_vault(c, &vault, bad), "{bad}");
        }
        let sneaky = parse_origin("https://contoso.vault.azure.net.evil.com").unwrap();
        assert!(!resource_matches_vault(
            c,
            &sneaky,
            "https://vault.azure.net"
        ));
        let glued = parse_origin("https://evilvault.azure.net").unwrap();
        assert!(!resource_matches_vault(
            c,
            &glued,
            "https://vault.azure.net"
        ));
        let gov = parse_origin("https://v.vault.usgovcloudapi.net").unwrap();
        assert!(resource_matches_vault(
            Cloud::UsGov,
            &gov,
            "https://vault.usgovcloudapi.net"
        ));
    }

    #[test]
    fn secret_paths() {
        assert_eq!(secret_path("a-b", None), "/secrets/a-b?api-version=7.5");
        assert_eq!(
            secret_path("a", Some("0123")),
            "/secrets/a/0123?api-version=7.5"
        );
    }

    fn resp(status: u16, inner: &str) -> Response {
        Response {
            head: Head {
                status: StatusCode::from_u16(status).unwrap(),
                headers: vec![],
            },
            body: format!(r#"{{"error":{{"code":"Forbidden","message":"m","innererror":{{"code":"{inner}"}}}}}}"#).into_bytes(),
        }
    }

    #[test]
    fn maps_errors_honestly() {
        let vault = parse_origin("https://v.vault.azure.net").unwrap();
        let target = SecretAddress {
            cloud: Cloud::Public,
            vault: &vault,
            name: "s",
            version: None,
        };
        let p = error_problem(
            &resp(403, "ForbiddenByRbac"),
            &target,
            "the managed identity",
        );
        assert_eq!(
            (p.status.as_u16(), &*p.code),
            (502, "keyvault-forbidden-rbac")
        );
        assert!(
            p.detail.contains("Key Vault Secrets User")
                && p.detail.contains("https://v.vault.azure.net")
        );
        // The private DNS zone named is the cloud's own.
        let gov = SecretAddress {
            cloud: Cloud::UsGov,
            ..target
        };
        let p = error_problem(&resp(403, "ForbiddenByFirewall"), &gov, "");
        assert!(
            p.detail.contains("privatelink.vaultcore.usgovcloudapi.net"),
            "{}",
            p.detail
        );
        let code = |status, inner| error_problem(&resp(status, inner), &target, "").code;
        assert_eq!(
            error_problem(&resp(404, "SecretNotFound"), &target, "").status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            error_problem(&resp(403, "SecretDisabled"), &target, "").status,
            StatusCode::CONFLICT
        );
        assert_eq!(code(403, "ForbiddenByConnection"), "keyvault-network");
        assert_eq!(code(403, "ForbiddenByFirewall"), "keyvault-network");
        assert_eq!(code(403, "ForbiddenByPolicy"), "keyvault-forbidden-policy");
        assert_eq!(
            error_problem(&resp(429, ""), &target, "").status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            error_problem(&resp(500, ""), &target, "").status,
            StatusCode::BAD_GATEWAY
        );
    }

    #[test]
    fn error_bodies_are_read_member_by_member() {
        let code = |body: &str| error_code(body.as_bytes());
        let pair = |c: &str, m: &str| (c.to_string(), m.to_string());
        assert_eq!(
            code(r#"{"error":{"code":"Forbidden","message":"m","innererror":{"code":""}}}"#),
            pair("Forbidden", "m")
        );
        assert_eq!(
            code(
                r#"{"error":{"code":"Forbidden","message":1,"innererror":{"code":"A","code":"B"}}}"#
            ),
            pair("Forbidden", "")
        );
        assert_eq!(
            code(r#"{"error":{"code":"Forbidden","innererror":["A"]}}"#),
            pair("Forbidden", "")
        );
        for nothing in [
            r#"{"error":{"code":"A","code":"B"}}"#,
            r#"{"error":"Forbidden"}"#,
            r#"{"error":{"code":"A"},"error":{"code":"B"}}"#,
            r#"[{"error":{"code":"A"}}]"#,
            r#"{"error":{"code":"A"}"#,
            "<html>",
        ] {
            assert_eq!(code(nothing), pair("", ""), "{nothing}");
        }
        assert_eq!(
            secret_value(br#"{"value":"s","id":"x","attributes":{"enabled":true}}"#).unwrap(),
            "s"
        );
        for bad in [
            &br#"{"value":1}"#[..],
            br#"{"value":"a","value":"b"}"#,
            br#"["s"]"#,
            b"{}",
        ] {
            assert!(secret_value(bad).is_err());
        }
    }

    #[test]
    fn echoed_error_codes_are_bounded() {
        // fuzz/corpus/json_errors/crash-keyvault-long-code
        let vault = parse_origin("https://v.vault.azure.net").unwrap();
        let target = SecretAddress {
            cloud: Cloud::Public,
            vault: &vault,
            name: "s",
            version: None,
        };
        let resp = Response {
            head: Head {
                status: StatusCode::INTERNAL_SERVER_ERROR,
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
