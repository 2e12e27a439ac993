//! Registry pull tokens across tenants, without a stored secret: the profile's Entra token for
//! the registry audience becomes an ACR refresh token (`/oauth2/exchange`), cached and never
//! returned, which becomes a pull-only access token for the requested repositories
//! (`/oauth2/token`). Lifetimes come from the tokens' own `exp`; a grant narrower than the
//! request is refused, since the protocol lets a registry grant less than asked.

use crate::errors::{truncate, Problem};
use crate::identity::cache;
use crate::identity::context::Context;
use crate::identity::credential::{Credential, Federated};
use crate::identity::jwt;
use crate::identity::token::Token;
use crate::net::cloud::{Cloud, Service};
use crate::net::origin::Origin;
use crate::net::retry;
use crate::net::upstream::{net_problem, retry_after, Request, Response, Transport};
use crate::services::bearer::{authorize, may_send_to, Attempt};
use crate::wire::typed_json::{self, Lenient, Object};
use crate::wire::urlenc::Form;
use http::StatusCode;
use serde::{Deserialize, Serialize};

/// The user name registry clients pair with an ACR token.
pub(crate) const TOKEN_USER: &str = "00000000-0000-0000-0000-000000000000";

/// The repositories a pull token is asked for, with their `scope` (computed once: the
/// exchange sends it and the log line and the answer repeat it).
pub(crate) struct Pull {
    pub repositories: Vec<String>,
    pub scope: String,
}

impl Pull {
    pub(crate) fn new(repositories: Vec<String>) -> Pull {
        let scope = repositories
            .iter()
            .map(|r| format!("repository:{r}:pull"))
            .collect::<Vec<_>>()
            .join(" ");
        Pull {
            repositories,
            scope,
        }
    }
}

/// A registry error body (`{"errors":[{"code":…,"message":…}]}`), each member read on its own.
#[derive(Deserialize, Default)]
struct RegistryErrorAnswer {
    #[serde(default)]
    errors: Lenient<Vec<Lenient<Object<RegistryError>>>>,
}

#[derive(Deserialize)]
struct RegistryError {
    #[serde(default)]
    code: Lenient<String>,
    #[serde(default)]
    message: Lenient<String>,
}

/// The first entry of a registry error body; empty when it says nothing readable.
fn first_error(resp: &Response) -> (String, String) {
    let answer: RegistryErrorAnswer = typed_json::object(&resp.body).unwrap_or_default();
    let first = answer
        .errors
        .0
        .and_then(|e| e.into_iter().next())
        .and_then(|f| f.0);
    match first {
        Some(Object(e)) => (
            truncate(&e.code.text(), 60),
            truncate(&e.message.text(), 200),
        ),
        None => (String::new(), String::new()),
    }
}

/// `/oauth2/exchange`'s answer.
#[derive(Deserialize)]
struct ExchangeAnswer {
    refresh_token: String,
}

/// `/oauth2/token`'s answer.
#[derive(Deserialize)]
struct RegistryTokenAnswer {
    access_token: String,
}

/// The refresh token of an `/oauth2/exchange` answer.
pub(crate) fn exchange_answer(body: &[u8]) -> anyhow::Result<String> {
    typed_json::object::<ExchangeAnswer>(body).map(|a| a.refresh_token)
}

/// The access token of an `/oauth2/token` answer.
pub(crate) fn token_answer(body: &[u8]) -> anyhow::Result<String> {
    typed_json::object::<RegistryTokenAnswer>(body).map(|a| a.access_token)
}

/// Failures every registry call shares: throttling, outages, and the registry's network rules.
fn common_problem(resp: &Response, registry: &Origin, cloud: Cloud) -> Option<Problem> {
    let (code, message) = first_error(resp);
    let status = resp.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Some(Problem::throttled(
            "the container registry",
            retry_after(&resp.head).unwrap_or(5),
        ));
    }
    if status.is_server_error() {
        return Some(Problem::unavailable(
            "registry-unavailable",
            format!(
                "{registry} answered HTTP {}; retry shortly",
                status.as_u16()
            ),
            5,
        ));
    }
    let network = message.to_ascii_lowercase();
    if status == StatusCode::FORBIDDEN
        && (network.contains("not allowed access")
            || network.contains("firewall")
            || code == "DENIED" && network.contains("ip"))
    {
        return Some(Problem::upstream(
            "registry-network",
            format!(
                "{registry} refused the connection by its network rules ({code}): allow the cluster's network, or reach the \
                 registry through its private endpoint (private DNS zone {} linked to the cluster VNet, \
                 {} resolving to the endpoint's IP)",
                cloud.private_dns_zone(Service::Registry),
                registry.host
            ),
        ));
    }
    None
}

/// An ACR refresh token for one registry in one tenant: minted from the profile's Entra token.
pub(crate) struct RefreshCredential<'a> {
    pub entra: Federated<'a>,
    pub registry: &'a Origin,
}

impl Credential for RefreshCredential<'_> {
    fn cache_key(&self) -> Option<String> {
        let entra = self.entra.cache_key()?;
        Some(cache::key("acr", &[&entra, &self.registry.authority()]))
    }

    fn fetch<T: Transport>(&self, ctx: &Context<T>) -> Result<Token, Problem> {
        // The Entra token is cached on its own (single-flight, like every other token): a new
        // refresh token, or one per registry, must not cost a new Entra exchange each time.
        // The Entra token travels in the form body, not through `authorize`: check its host.
        may_send_to(ctx.common, self.registry, Service::Registry)?;
        let entra = self.entra.token(ctx)?;
        let form = Form::default()
            .pair("grant_type", "access_token")
            .pair("service", &self.registry.host)
            .pair("tenant", self.entra.target.tenant_id)
            .pair("access_token", &entra.secret)
            .finish();
        let req = Request::form(
            Service::Registry,
            self.registry,
            "/oauth2/exchange".into(),
            form,
        );
        let resp = retry::send(&ctx.calls(), &req)?.map_err(|e| net_problem(&req, &e))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            // The registry refused this Entra token (revoked, a role granted since, a token the
            // registry no longer takes): the next request must get a new one, not reuse it
            // until it expires. Not retried: a missing role answers the same to a fresh token.
            self.entra.forget(ctx);
        }
        if resp.status() != StatusCode::OK {
            return Err(common_problem(&resp, self.registry, ctx.common.cloud).unwrap_or_else(|| {
                let (code, message) = first_error(&resp);
                Problem::upstream(
                    "registry-exchange-refused",
                    format!(
                        "{} refused to exchange the Entra token of {} (HTTP {}, {code}: {message}): grant it 'AcrPull' on the \
                         registry (RBAC registries) or 'Container Registry Repository Reader' (ABAC registries), and check that \
                         the registry accepts Entra tokens for the audience https://containerregistry.azure.net",
                        self.registry,
                        self.principal(Some(&entra.secret)),
                        resp.status().as_u16()
                    ),
                )
            }));
        }
        let refresh_token = exchange_answer(&resp.body).map_err(|e| {
            Problem::upstream(
                "registry-failed",
                format!(
                    "{} answered the exchange without a refresh_token: {e}",
                    self.registry
                ),
            )
        })?;
        registry_token(refresh_token, ctx.now(), self.registry)
    }

    fn principal(&self, token: Option<&str>) -> String {
        self.entra.principal(token)
    }
}

/// A registry token with its lifetime from its own `exp`.
fn registry_token(secret: String, now: u64, registry: &Origin) -> Result<Token, Problem> {
    let exp = expiry(jwt::claims(&secret).as_ref(), registry)?;
    Ok(Token::new(secret, now, exp, None))
}

/// A registry token's `exp`, which its lifetime is read from (never assumed).
fn expiry(claims: Option<&jwt::Claims>, registry: &Origin) -> Result<u64, Problem> {
    claims
        .and_then(|c| c.exp)
        .and_then(|e| u64::try_from(e).ok())
        .ok_or_else(|| {
            Problem::upstream(
                "registry-failed",
                format!("{registry} issued a token without a readable expiry (exp)"),
            )
        })
}

/// What the caller receives (members in this order).
#[derive(Debug, PartialEq, Eq, Serialize)]
pub(crate) struct PullToken {
    pub username: &'static str,
    pub password: String,
    pub expires_on: u64,
    pub scope: String,
}

impl PullToken {
    pub(crate) fn to_json(&self) -> Vec<u8> {
        typed_json::to_string(self).into_bytes()
    }
}

/// A pull token for `pull`'s repositories, with every one of them granted.
pub(crate) fn pull_token<T: Transport>(
    ctx: &Context<T>,
    credential: &RefreshCredential,
    pull: &Pull,
) -> Result<PullToken, Problem> {
    let registry = credential.registry;
    let (repositories, scope) = (&pull.repositories, &pull.scope);
    authorize(ctx, credential, registry, Service::Registry, |refresh| {
        let form = Form::default()
            .pair("grant_type", "refresh_token")
            .pair("service", &registry.host)
            .pair("scope", scope)
            .pair("refresh_token", &refresh.secret)
            .finish();
        let req = Request::form(Service::Registry, registry, "/oauth2/token".into(), form);
        let resp = retry::send(&ctx.calls(), &req)?.map_err(|e| net_problem(&req, &e))?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => {
                let (code, message) = first_error(&resp);
                return Ok(Attempt::Refused {
                    problem: Problem::upstream(
                        "registry-token-refused",
                        format!("{registry} refused the refresh token ({code}: {message})"),
                    ),
                    challenge: None,
                });
            }
            _ => {
                return Err(
                    common_problem(&resp, registry, ctx.common.cloud).unwrap_or_else(|| {
                        let (code, message) = first_error(&resp);
                        denied(
                            registry,
                            repositories,
                            &format!("HTTP {}, {code}: {message}", resp.status().as_u16()),
                        )
                    }),
                )
            }
        }
        let access_token = token_answer(&resp.body).map_err(|e| {
            Problem::upstream(
                "registry-failed",
                format!("{registry} answered without an access_token: {e}"),
            )
        })?;
        // One decode for both the lifetime and the granted access.
        let claims = jwt::claims(&access_token);
        let exp = expiry(claims.as_ref(), registry)?;
        let token = Token::new(access_token, ctx.now(), exp, None);
        let claims = claims.unwrap_or_default();
        let missing: Vec<&str> = repositories
            .iter()
            .filter(|r| {
                !claims.access.iter().any(|a| {
                    a.kind == "repository" && a.name == **r && a.actions.iter().any(|x| x == "pull")
                })
            })
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(denied(
                registry,
                repositories,
                &format!("no pull granted for {}", missing.join(", ")),
            ));
        }
        Ok(Attempt::Done(PullToken {
            username: TOKEN_USER,
            password: token.secret,
            expires_on: token.expires_on,
            scope: scope.to_string(),
        }))
    })
}

fn denied(registry: &Origin, repositories: &[String], why: &str) -> Problem {
    Problem::forbidden(format!(
        "{registry} did not grant pull on {} ({why}): the identity's role does not cover these repositories \
         ('Container Registry Repository Reader' conditions on ABAC registries, or 'AcrPull' on RBAC ones)",
        truncate(&repositories.join(", "), 300)
    ))
    .with_code("registry-repository-denied")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::upstream::Head;

    fn resp(status: u16, body: &str) -> Response {
        Response {
            head: Head {
                status: StatusCode::from_u16(status).unwrap(),
                headers: vec![],
            },
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn scopes_are_pull_only() {
        assert_eq!(
            Pull::new(vec!["a".into(), "b/c".into()]).scope,
            "repository:a:pull repository:b/c:pull"
        );
    }

    #[test]
    fn network_refusals_and_outages_are_told_apart() {
        let reg = crate::net::origin::parse("https://hub.azurecr.io").unwrap();
        let p = common_problem(&resp(403, r#"{"errors":[{"code":"DENIED","message":"client with IP '1.2.3.4' is not allowed access"}]}"#), &reg, Cloud::Public).unwrap();
        assert_eq!(&*p.code, "registry-network");
        assert_eq!(
            common_problem(&resp(503, ""), &reg, Cloud::Public)
                .unwrap()
                .status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            common_problem(&resp(429, ""), &reg, Cloud::Public)
                .unwrap()
                .status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert!(common_problem(
            &resp(401, r#"{"errors":[{"code":"UNAUTHORIZED","message":"x"}]}"#),
            &reg,
            Cloud::Public
        )
        .is_none());
    }

    #[test]
    fn registry_tokens_need_an_expiry() {
        use base64::Engine;
        let reg = crate::net::origin::parse("https://hub.azurecr.io").unwrap();
        let jwt = |payload: &str| {
            format!(
                "e30.{}.c2ln",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload)
            )
        };
        let t = registry_token(jwt(r#"{"exp":1800010800}"#), 1_800_000_000, &reg).unwrap();
        assert_eq!(t.expires_on, 1_800_010_800);
        assert!(registry_token(jwt("{}"), 1_800_000_000, &reg).is_err());
        assert!(registry_token("opaque".into(), 1_800_000_000, &reg).is_err());
    }
}
