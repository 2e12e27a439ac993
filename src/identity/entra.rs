//! The cross-tenant hop (Entra v2 client credentials with a client assertion): the managed
//! identity's token is the client assertion of the multi-tenant app at tenant B's v2 token
//! endpoint. Errors are mapped by `error_codes`, never
//! by text, to the setup step that is broken, with the concrete values that fix it.

use crate::config::settings::Exchange;
use crate::errors::{truncate, Problem};
use crate::identity::jwt::Claims;
use crate::identity::token::Token;
use crate::net::upstream::{Peer, Request, Response};
use crate::wire::typed_json::{self, Lenient};
use crate::wire::urlenc::Form;
use anyhow::Context as _;
use http::StatusCode;
use serde::Deserialize;

pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The tenant an exchange targets: a profile's id and name (for diagnostics).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TargetTenant<'a> {
    pub tenant_id: &'a str,
    pub profile: &'a str,
    /// Where the profile's settings come from, so diagnostics name the variable to fix.
    pub slot: crate::config::settings::Slot,
}

pub(crate) fn token_request(
    ex: &Exchange,
    target: TargetTenant,
    resource: &str,
    assertion: &str,
) -> Request {
    let scope = format!("{}/.default", resource.trim_end_matches('/'));
    let body = Form::default()
        .pair("client_id", &ex.app_client_id)
        .pair("scope", &scope)
        .pair("grant_type", "client_credentials")
        .pair("client_assertion_type", ASSERTION_TYPE)
        .pair("client_assertion", assertion)
        .finish();
    Request::form(
        Peer::Entra,
        &ex.authority,
        format!("/{}/oauth2/v2.0/token", target.tenant_id),
        body,
    )
}

/// A v2 token answer: `access_token` and a whole-number `expires_in` are required (Entra
/// sends numbers as numbers; a string is refused).
#[derive(Deserialize)]
struct EntraTokenAnswer {
    access_token: String,
    expires_in: u64,
    #[serde(default)]
    refresh_in: Option<u64>,
}

pub(crate) fn parse_token(body: &[u8], now: u64) -> anyhow::Result<Token> {
    let answer: EntraTokenAnswer = typed_json::object(body).context("the answer does not read")?;
    anyhow::ensure!(!answer.access_token.is_empty(), "its access_token is empty");
    Ok(Token::new(
        answer.access_token,
        now,
        now.saturating_add(answer.expires_in),
        answer.refresh_in,
    ))
}

/// What an error answer says; empty members when it says nothing readable. Each member is
/// read on its own: one of another type (or an error code that is not a whole number) is
/// left out.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: Lenient<String>,
    #[serde(default)]
    error_codes: Lenient<Vec<Lenient<u64>>>,
    #[serde(default)]
    trace_id: Lenient<String>,
    #[serde(default)]
    correlation_id: Lenient<String>,
}

impl ErrorBody {
    fn read(body: &[u8]) -> ErrorBody {
        typed_json::object(body).unwrap_or_default()
    }

    fn codes(&self) -> impl Iterator<Item = u64> + '_ {
        self.error_codes.0.iter().flatten().filter_map(|c| c.0)
    }
}

/// What the diagnostics may print about the exchange: ids and claims, never tokens.
pub(crate) struct Diagnostics<'a> {
    pub exchange: &'a Exchange,
    pub target: TargetTenant<'a>,
    pub resource: &'a str,
    /// Claims of the managed identity token that was presented.
    pub assertion: &'a Claims,
}

/// Whether Entra refused the managed identity's token itself (stale, bad signature, or no
/// federated credential matches it), so a cached copy must not be presented again.
pub(crate) fn assertion_refused(resp: &Response) -> bool {
    let refused = ErrorBody::read(&resp.body)
        .codes()
        .any(|c| matches!(c, 700024 | 700027 | 70021 | 700211 | 700212 | 700213));
    refused
}

pub(crate) fn error_problem(resp: &Response, ctx: &Diagnostics) -> Problem {
    let status = resp.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Problem::throttled(
            "Entra ID",
            crate::net::upstream::retry_after(&resp.head).unwrap_or(5),
        );
    }
    if status.is_server_error() {
        return Problem::unavailable(
            "entra-unavailable",
            format!("Entra ID answered HTTP {}; retry shortly", status.as_u16()),
            5,
        );
    }
    let status = status.as_u16();
    let err = ErrorBody::read(&resp.body);
    let code = err.codes().next().unwrap_or(0);
    let (error, trace_id, correlation_id) = (
        err.error.text(),
        err.trace_id.text(),
        err.correlation_id.text(),
    );
    let ex = ctx.exchange;
    let profile = ctx.target.profile;
    let (tenant, app, authority) = (ctx.target.tenant_id, &ex.app_client_id, &ex.authority);
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
        truncate(or_none(&trace_id), 100),
        truncate(or_none(&correlation_id), 100)
    );
    let (problem_code, detail) = match code {
        700016 => (
            "entra-app-not-in-tenant",
            format!(
                "app {app} is not provisioned in tenant {tenant} of profile '{profile}' (no service principal there), or \
                 app_client_id / the profile's tenant id is wrong; an administrator of tenant {tenant} grants consent once at \
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
            format!("tenant {tenant} of profile '{profile}' was not found at {authority}: check {} (the profile's tenant id), and that the cloud variable matches that tenant's cloud", ctx.target.slot.var("tenant_id")),
        ),
        500011 => (
            "entra-resource-not-in-tenant",
            format!(
                "the resource {} has no service principal in tenant {tenant} of profile '{profile}': the service is not \
                 registered in that tenant, or the resource URI is wrong for this cloud",
                ctx.resource
            ),
        ),
        700223 => (
            "entra-federation-disabled",
            format!("workload identity federation is disabled in tenant {tenant} of profile '{profile}' (or for app {app}) by policy: a tenant administrator must allow it"),
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
                "Entra ID refused the token exchange for app {app} in tenant {tenant} of profile '{profile}': HTTP {status}, {} (AADSTS{code})",
                truncate(or_none(&error), 100)
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
    use crate::net::origin::parse as parse_origin;
    use crate::net::upstream::Head;

    const TARGET: TargetTenant = TargetTenant {
        tenant_id: "bbbbbbbb-0000-0000-0000-000000000000",
        profile: "b",
        slot: crate::config::settings::Slot::Default,
    };

    fn exchange() -> Exchange {
        Exchange {
            client_id: "c1c1c1c1-0000-0000-0000-000000000000".into(),
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
                status: StatusCode::from_u16(status).unwrap(),
                headers: vec![],
            },
            body: body.into_bytes(),
        }
    }

    #[test]
    fn form_is_encoded_correctly() {
        let r = token_request(&exchange(), TARGET, "https://vault.azure.net", "a.b+c/d=");
        let form = crate::wire::urlenc::parse_query(std::str::from_utf8(&r.body).unwrap()).unwrap();
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
        let ctx = Diagnostics {
            exchange: &ex,
            target: TARGET,
            resource: "https://vault.azure.net",
            assertion: &claims,
        };
        let p = error_problem(&entra_error(400, 700016), &ctx);
        assert_eq!(
            (p.status.as_u16(), &*p.code),
            (502, "entra-app-not-in-tenant")
        );
        assert!(p.detail.contains("profile 'b'"));
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
        assert_eq!(
            error_problem(&entra_error(503, 0), &ctx).status.as_u16(),
            503
        );
        assert!(
            assertion_refused(&entra_error(400, 700024))
                && !assertion_refused(&entra_error(400, 700016))
        );
    }

    #[test]
    fn error_bodies_are_read_member_by_member() {
        let codes = |body: &str| ErrorBody::read(body.as_bytes()).codes().collect::<Vec<_>>();
        assert_eq!(
            codes(r#"{"error_codes":["x",70021,-1,1.5,700016]}"#),
            [70021, 700016]
        );
        assert_eq!(codes(r#"{"error_codes":70021}"#), [0u64; 0]);
        assert_eq!(codes(r#"{"error_codes":[1],"error_codes":[2]}"#), [0u64; 0]);
        let e = ErrorBody::read(br#"{"error":7,"trace_id":"t","correlation_id":null}"#);
        assert_eq!(
            (e.error.text(), e.trace_id.text(), e.correlation_id.text()),
            (String::new(), "t".into(), String::new())
        );
    }

    #[test]
    fn token_parses_numbers() {
        let t = parse_token(br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"x"}"#, 100).unwrap();
        assert_eq!(t.expires_on, 3699);
        for bad in [
            r#"{"expires_in":"3599","access_token":"x"}"#,
            r#"{"access_token":"x"}"#,
            r#"{"access_token":"","expires_in":1}"#,
            r#"{"access_token":"x","expires_in":1,"expires_in":2}"#,
            r#"{"access_token":"x","expires_in":1,"refresh_in":"1"}"#,
        ] {
            assert!(parse_token(bad.as_bytes(), 100).is_err(), "{bad}");
        }
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
        let ctx = Diagnostics {
            exchange: &ex,
            target: TARGET,
            resource: "https://vault.azure.net",
            assertion: &claims,
        };
        let long = "T".repeat(100_000);
        let body = format!(
            r#"{{"error":"{long}","error_codes":[1],"trace_id":"{long}","correlation_id":"{long}"}}"#
        );
        let resp = Response {
            head: Head {
                status: StatusCode::BAD_REQUEST,
                headers: vec![],
            },
            body: body.into_bytes(),
        };
        assert!(error_problem(&resp, &ctx).detail.len() < 2048);
    }
}
