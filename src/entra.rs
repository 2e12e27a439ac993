//! The cross-tenant hop (azure-wire §3): the managed identity's token is the client assertion of
//! the multi-tenant app at tenant B's v2 token endpoint. Errors are mapped by `error_codes`, never
//! by text, to the setup step that is broken, with the concrete values that fix it.

use crate::config::Exchange;
use crate::errors::{truncate, Problem};
use crate::identity::Token;
use crate::jwt::Claims;
use crate::upstream::{Method, Request, Response, Service};
use serde::Deserialize;

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub fn token_request(ex: &Exchange, resource: &str, assertion: &str) -> Request {
    let scope = format!("{}/.default", resource.trim_end_matches('/'));
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &ex.app_client_id)
        .append_pair("scope", &scope)
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_assertion_type", ASSERTION_TYPE)
        .append_pair("client_assertion", assertion)
        .finish();
    Request {
        service: Service::Entra,
        method: Method::Post,
        origin: ex.authority.clone(),
        path_and_query: format!("/{}/oauth2/v2.0/token", ex.tenant_id),
        headers: vec![(
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body: body.into_bytes(),
        timeout: None,
    }
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    expires_in: u64,
    #[serde(default)]
    refresh_in: Option<u64>,
}

pub fn parse_token(body: &[u8], now: u64) -> Option<Token> {
    let t: TokenBody = serde_json::from_slice(body).ok()?;
    (!t.access_token.is_empty()).then(|| {
        Token::new(
            t.access_token,
            now,
            now.saturating_add(t.expires_in),
            t.refresh_in,
        )
    })
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_codes: Vec<u64>,
    #[serde(default)]
    trace_id: String,
    #[serde(default)]
    correlation_id: String,
}

/// What the diagnostics may print about the exchange: ids and claims, never tokens.
pub struct Context<'a> {
    pub exchange: &'a Exchange,
    pub resource: &'a str,
    /// Claims of the managed identity token that was presented.
    pub assertion: &'a Claims,
}

pub fn error_problem(resp: &Response, ctx: &Context) -> Problem {
    let status = resp.status();
    if status == 429 {
        return Problem::throttled(
            "Entra ID",
            crate::upstream::retry_after(&resp.head).unwrap_or(5),
        );
    }
    if status >= 500 {
        return Problem::new(
            503,
            "entra-unavailable",
            "Upstream unavailable",
            format!("Entra ID answered HTTP {status}; retry shortly"),
        )
        .with_retry_after(5);
    }
    let err: ErrorBody = serde_json::from_slice(&resp.body).unwrap_or_default();
    let ex = ctx.exchange;
    let (tenant, app, authority) = (&ex.tenant_id, &ex.app_client_id, &ex.authority);
    let a = ctx.assertion;
    let fic = format!(
        "the app registration {app} (in the managed identity's tenant {}) needs a federated identity credential with \
         issuer '{}', subject '{}' (the managed identity's object id, case-sensitive) and audience '{}'",
        if a.tid.is_empty() { "A" } else { &a.tid },
        a.iss,
        a.sub,
        a.aud
    );
    let trace = format!(
        " [Entra trace id {}, correlation id {}]",
        truncate(or_none(&err.trace_id), 100),
        truncate(or_none(&err.correlation_id), 100)
    );
    let code = err.error_codes.first().copied().unwrap_or(0);
    let (problem_code, detail) = match code {
        700016 => (
            "entra-app-not-in-tenant",
            format!(
                "app {app} is not provisioned in tenant {tenant} (no service principal there), or app_client_id / \
                 cross_tenant_id is wrong; an administrator of tenant {tenant} grants consent once at \
                 {authority}/{tenant}/adminconsent?client_id={app}"
            ),
        ),
        70021 => ("entra-fic-mismatch", format!("no federated credential of app {app} matches the managed identity token: {fic}. A credential created minutes ago may not have propagated yet")),
        700211 => ("entra-fic-mismatch", format!("federated credential issuer mismatch: {fic}")),
        700212 => ("entra-fic-mismatch", format!("federated credential audience mismatch: {fic}")),
        700213 => ("entra-fic-mismatch", format!("federated credential subject mismatch: {fic}")),
        70025 => ("entra-fic-missing", format!("app {app} has no federated identity credential: {fic}")),
        700024 => (
            "entra-assertion-expired",
            "the managed identity token used as client assertion is outside its validity time range: check the node clock (NTP) \
             and that tokens are not served from a stale cache"
                .to_string(),
        ),
        700027 => (
            "entra-assertion-invalid",
            format!("Entra could not verify the managed identity token's signature: the identity and tenant {tenant} must be in the same cloud (cloud / authority_host)"),
        ),
        90002 => (
            "entra-tenant-not-found",
            format!("tenant {tenant} was not found at {authority}: check cross_tenant_id, and that the cloud variable matches tenant B's cloud"),
        ),
        500011 => (
            "entra-resource-not-in-tenant",
            format!(
                "the resource {} has no service principal in tenant {tenant}: the service is not registered in that tenant, \
                 or the resource URI is wrong for this cloud",
                ctx.resource
            ),
        ),
        700223 => (
            "entra-federation-disabled",
            format!("workload identity federation is disabled in tenant {tenant} (or for app {app}) by policy: a tenant administrator must allow it"),
        ),
        700236 => ("entra-fic-mismatch", format!("the federated credential has the wrong trust direction: {fic}")),
        7000215 | 7000222 | 7000218 => (
            "entra-client-credential",
            format!("Entra rejected the client credential sent for app {app} (AADSTS{code}); tenant-bridge sends only the managed identity assertion, so report this"),
        ),
        70011 | 700022 => ("entra-invalid-scope", format!("Entra rejected the scope {}/.default (AADSTS{code}): check the cloud variable", ctx.resource.trim_end_matches('/'))),
        _ => (
            "entra-refused",
            format!(
                "Entra ID refused the token exchange for app {app} in tenant {tenant}: HTTP {status}, {} (AADSTS{code})",
                truncate(or_none(&err.error), 100)
            ),
        ),
    };
    Problem::upstream(problem_code, format!("{detail}{trace}"))
}

fn or_none(s: &str) -> &str {
    if s.is_empty() {
        "none"
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_origin;
    use crate::upstream::Head;

    fn exchange() -> Exchange {
        Exchange {
            tenant_id: "bbbbbbbb-0000-0000-0000-000000000000".into(),
            app_client_id: "aaaaaaaa-0000-0000-0000-000000000000".into(),
            authority: parse_origin("https://login.microsoftonline.com").unwrap(),
            audience: "api://AzureADTokenExchange".into(),
        }
    }

    fn entra_error(status: u16, code: u64) -> Response {
        let body = format!(
            r#"{{"error":"invalid_client","error_description":"AADSTS{code}: text","error_codes":[{code}],"trace_id":"t-1","correlation_id":"c-1"}}"#
        );
        Response {
            head: Head {
                status,
                headers: vec![],
            },
            body: body.into_bytes(),
        }
    }

    #[test]
    fn form_is_encoded_correctly() {
        let r = token_request(&exchange(), "https://vault.azure.net", "a.b+c/d=");
        let form: Vec<(String, String)> =
            url::form_urlencoded::parse(&r.body).into_owned().collect();
        assert_eq!(
            r.path_and_query,
            "/bbbbbbbb-0000-0000-0000-000000000000/oauth2/v2.0/token"
        );
        assert_eq!(
            form,
            vec![
                (
                    "client_id".into(),
                    "aaaaaaaa-0000-0000-0000-000000000000".into()
                ),
                ("scope".into(), "https://vault.azure.net/.default".into()),
                ("grant_type".into(), "client_credentials".into()),
                ("client_assertion_type".into(), ASSERTION_TYPE.into()),
                ("client_assertion".into(), "a.b+c/d=".into()),
            ]
        );
    }

    #[test]
    fn maps_by_code_with_fix_values() {
        let ex = exchange();
        let claims = Claims {
            iss: "https://login.microsoftonline.com/aaaa/v2.0".into(),
            sub: "Oid-1".into(),
            aud: "api://AzureADTokenExchange".into(),
            tid: "aaaa".into(),
            ..Claims::default()
        };
        let ctx = Context {
            exchange: &ex,
            resource: "https://vault.azure.net",
            assertion: &claims,
        };
        let p = error_problem(&entra_error(400, 700016), &ctx);
        assert_eq!((p.status, p.code), (502, "entra-app-not-in-tenant"));
        assert!(p.detail.contains("https://login.microsoftonline.com/bbbbbbbb-0000-0000-0000-000000000000/adminconsent?client_id=aaaaaaaa-0000-0000-0000-000000000000"));
        for code in [70021, 700211, 700212, 700213] {
            let p = error_problem(&entra_error(400, code), &ctx);
            assert_eq!(p.code, "entra-fic-mismatch");
            assert!(
                p.detail.contains("'Oid-1'")
                    && p.detail
                        .contains("'https://login.microsoftonline.com/aaaa/v2.0'")
                    && p.detail.contains("'api://AzureADTokenExchange'")
            );
            assert!(p.detail.contains("t-1") && p.detail.contains("c-1"));
        }
        assert_eq!(
            error_problem(&entra_error(400, 90002), &ctx).code,
            "entra-tenant-not-found"
        );
        assert_eq!(
            error_problem(&entra_error(401, 500011), &ctx).code,
            "entra-resource-not-in-tenant"
        );
        assert_eq!(
            error_problem(&entra_error(400, 700223), &ctx).code,
            "entra-federation-disabled"
        );
        assert_eq!(
            error_problem(&entra_error(400, 700024), &ctx).code,
            "entra-assertion-expired"
        );
        assert_eq!(
            error_problem(&entra_error(400, 12345), &ctx).code,
            "entra-refused"
        );
        assert_eq!(error_problem(&entra_error(503, 0), &ctx).status, 503);
    }

    #[test]
    fn token_parses_numbers() {
        let t = parse_token(br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"x"}"#, 100).unwrap();
        assert_eq!(t.expires_on, 3699);
        assert!(parse_token(br#"{"expires_in":"3599","access_token":"x"}"#, 100).is_none());
    }

    #[test]
    fn huge_expires_in_does_not_overflow() {
        // fuzz/corpus/imds_expiry/crash-entra-expires-in-overflow
        let t = parse_token(br#"{"access_token":"x","expires_in":18446744073709551615,"refresh_in":18446744073709551615}"#, 1_800_000_000).unwrap();
        assert!(t.expires_on >= 1_800_000_000 && t.refresh_at <= t.expires_on);
    }

    #[test]
    fn echoed_error_fields_are_bounded() {
        // fuzz/corpus/json_errors/crash-entra-long-trace-id, crash-long-error
        let ex = exchange();
        let claims = Claims::default();
        let ctx = Context {
            exchange: &ex,
            resource: "https://vault.azure.net",
            assertion: &claims,
        };
        let long = "T".repeat(100_000);
        let body = format!(
            r#"{{"error":"{long}","error_codes":[1],"trace_id":"{long}","correlation_id":"{long}"}}"#
        );
        let resp = Response {
            head: Head {
                status: 400,
                headers: vec![],
            },
            body: body.into_bytes(),
        };
        assert!(error_problem(&resp, &ctx).detail.len() < 2048);
    }
}
