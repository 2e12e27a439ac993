//! Managed identity tokens from IMDS (api-version 2018-02-01, the one every SDK pins): request
//! shape, tolerant response parsing, and what each failure means for the operator.

use crate::errors::{truncate, Problem};
use crate::identity::token::Token;
use crate::net::origin::Origin;
use crate::net::upstream::{retry_after, Peer, Request, Response};
use crate::wire::typed_json::{self, Lenient};
use crate::wire::urlenc::Form;
use anyhow::Context as _;
use serde::Deserialize;

pub(crate) const API_VERSION: &str = "2018-02-01";

/// `resource` is a v1 resource URI: a scope's `/.default` is stripped.
pub(crate) fn token_request(imds: &Origin, resource: &str, client_id: Option<&str>) -> Request {
    let resource = resource.strip_suffix("/.default").unwrap_or(resource);
    let mut query = Form::default()
        .pair("api-version", API_VERSION)
        .pair("resource", resource);
    if let Some(id) = client_id {
        query = query.pair("client_id", id);
    }
    Request::get(
        Peer::Imds,
        imds,
        format!("/metadata/identity/oauth2/token?{}", query.finish()),
    )
    .header("metadata", "true")
}

/// A 200 answer. IMDS sends every value as a string; other hosts send numbers. Both are read
/// (`typed_json::NumberOrString`): absent or `null` is absent, a string is read if it holds a
/// number, a number must be whole, another type refuses the answer.
#[derive(Deserialize)]
struct ImdsTokenAnswer {
    access_token: String,
    #[serde(default, deserialize_with = "typed_json::number_or_string")]
    expires_in: Option<u64>,
    #[serde(default, deserialize_with = "typed_json::number_or_string")]
    expires_on: Option<u64>,
    #[serde(default, deserialize_with = "typed_json::number_or_string")]
    refresh_in: Option<u64>,
}

/// Parses a 200 answer. Expiry: `expires_on` (epoch) when readable, else `now + expires_in`,
/// else a short 5 minutes so an odd answer is not cached for long.
pub(crate) fn parse_token(body: &[u8], now: u64) -> anyhow::Result<Token> {
    let answer: ImdsTokenAnswer = typed_json::object(body).context("the answer does not read")?;
    anyhow::ensure!(!answer.access_token.is_empty(), "its access_token is empty");
    let expires_on = answer
        .expires_on
        .filter(|e| *e > 1_000_000_000)
        .or_else(|| answer.expires_in.map(|s| now.saturating_add(s)))
        .unwrap_or(now + 300);
    Ok(Token::new(
        answer.access_token,
        now,
        expires_on,
        answer.refresh_in,
    ))
}

/// The `error` of an error answer, when it has one.
#[derive(Deserialize, Default)]
struct ImdsErrorAnswer {
    #[serde(default)]
    error: Lenient<String>,
}

/// Maps a non-200 IMDS answer.
pub(crate) fn error_problem(resp: &Response, resource: &str, client_id: Option<&str>) -> Problem {
    let error = typed_json::object::<ImdsErrorAnswer>(&resp.body)
        .unwrap_or_default()
        .error
        .text();
    let error = error.as_str();
    let identity = match client_id {
        Some(id) => format!("the user-assigned managed identity with client id {id}"),
        None => "the system-assigned managed identity".to_string(),
    };
    match (resp.status().as_u16(), error) {
        (400, "invalid_resource") => Problem::upstream(
            "identity-resource-unknown",
            format!("IMDS could not get a token for resource '{resource}' (invalid_resource): the resource is unknown to the identity's tenant; check the cloud variable and endpoints"),
        ),
        (400 | 401, _) if client_id.is_some() => Problem::upstream(
            "identity-not-found",
            format!(
                "IMDS refused to issue a token for {identity} ({}): assign that identity to this node pool's VM scale set \
                 (az vmss identity assign) or correct azure_client_id",
                truncate(non_empty(error), 100)
            ),
        ),
        (400 | 401, _) => Problem::upstream(
            "identity-not-found",
            format!("IMDS refused to issue a token for {identity} ({}): enable a system-assigned identity or set azure_client_id to a user-assigned one", truncate(non_empty(error), 100)),
        ),
        (429, _) => Problem::throttled("IMDS", retry_after(&resp.head).unwrap_or(1)),
        (404 | 410 | 500..=599, _) => Problem::unavailable(
            "identity-unavailable",
            format!("IMDS is temporarily unavailable (HTTP {}); retry shortly", resp.status().as_u16()),
            retry_after(&resp.head).unwrap_or(5),
        ),
        (status, _) => Problem::upstream("identity-failed", format!("IMDS answered HTTP {status} ({})", truncate(non_empty(error), 100))),
    }
}

/// IMDS is only reachable from an Azure VM; say so when it is not.
pub(crate) fn unreachable_problem(imds: &Origin) -> Problem {
    Problem::upstream(
        "identity-unreachable",
        format!(
            "IMDS at {imds} is not reachable: run on an Azure VM / AKS node with a managed identity, make sure no network \
             policy blocks 169.254.169.254, and do not use Spin's block_networks = [\"private\"]"
        ),
    )
}

fn non_empty(s: &str) -> &str {
    if s.is_empty() {
        "no error code"
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::origin::parse as parse_origin;
    use http::StatusCode;

    #[test]
    fn request_uses_resource_not_scope_and_metadata_header() {
        let imds = parse_origin("http://169.254.169.254").unwrap();
        let r = token_request(&imds, "https://vault.azure.net/.default", Some("abc"));
        assert_eq!(
            r.path_and_query,
            "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net&client_id=abc"
        );
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| *k == "metadata" && v == "true"));
        let r = token_request(&imds, "api://AzureADTokenExchange", None);
        assert!(!r.path_and_query.contains("client_id"));
    }

    #[test]
    fn parses_string_and_number_expiry() {
        let t = parse_token(br#"{"access_token":"x","expires_in":"3599","expires_on":"1800086000","token_type":"Bearer"}"#, 1_800_000_000).unwrap();
        assert_eq!(t.expires_on, 1_800_086_000);
        let t = parse_token(br#"{"access_token":"x","expires_in":3599}"#, 1_800_000_000).unwrap();
        assert_eq!(t.expires_on, 1_800_003_599);
        let t = parse_token(br#"{"access_token":"x","expires_on":"11/28/2026 1:35:55 PM +00:00","expires_in":"60"}"#, 1_800_000_000).unwrap();
        assert_eq!(t.expires_on, 1_800_000_060);
        let t = parse_token(br#"{"access_token":"x"}"#, 1_800_000_000).unwrap();
        assert_eq!(t.expires_on, 1_800_000_300);
        assert!(parse_token(br#"{"access_token":""}"#, 0).is_err());
        assert!(parse_token(b"<html>", 0).is_err());
        // A number must be whole; a string that is not one is ignored.
        for bad in [
            r#"{"access_token":"x","expires_in":-1}"#,
            r#"{"access_token":"x","expires_in":1.5}"#,
            r#"{"access_token":"x","expires_on":true}"#,
            r#"{"access_token":"x","access_token":"y"}"#,
            r#"["x","3599"]"#,
        ] {
            assert!(parse_token(bad.as_bytes(), 0).is_err(), "{bad}");
        }
        let t = parse_token(
            br#"{"access_token":"x","expires_in":" 60 ","refresh_in":null}"#,
            1_800_000_000,
        )
        .unwrap();
        assert_eq!(t.expires_on, 1_800_000_060);
    }

    #[test]
    fn unknown_identity_tells_how_to_assign_it() {
        let resp = Response {
            head: crate::net::upstream::Head {
                status: StatusCode::from_u16(400).unwrap(),
                headers: vec![],
            },
            body: br#"{"error":"invalid_request","error_description":"Identity not found"}"#
                .to_vec(),
        };
        let p = error_problem(&resp, "https://vault.azure.net", Some("1111"));
        assert_eq!((p.status.as_u16(), &*p.code), (502, "identity-not-found"));
        assert!(p.detail.contains("1111") && p.detail.contains("vmss"));
    }

    #[test]
    fn transient_failures_are_503() {
        let resp = Response {
            head: crate::net::upstream::Head {
                status: StatusCode::from_u16(410).unwrap(),
                headers: vec![],
            },
            body: vec![],
        };
        assert_eq!(error_problem(&resp, "r", None).status.as_u16(), 503);
        let resp = Response {
            head: crate::net::upstream::Head {
                status: StatusCode::from_u16(429).unwrap(),
                headers: vec![("Retry-After".into(), "3".into())],
            },
            body: vec![],
        };
        assert_eq!(error_problem(&resp, "r", None).retry_after, Some(3));
    }

    #[test]
    fn huge_lifetimes_do_not_overflow() {
        // fuzz/corpus/imds_expiry/crash-imds-expires-in-overflow, crash-refresh-in-overflow
        let now = 1_800_000_000;
        let t = parse_token(
            br#"{"access_token":"x","expires_in":"18446744073709551615"}"#,
            now,
        )
        .unwrap();
        assert!(t.expires_on >= now && t.refresh_at <= t.expires_on);
        let t = parse_token(br#"{"access_token":"x","expires_on":"1800086000","refresh_in":"18446744073709551615"}"#, now).unwrap();
        assert_eq!(t.expires_on, 1_800_086_000);
        // An absurd expiry is capped, not trusted.
        let t = parse_token(br#"{"access_token":"x","expires_on":"99999999999"}"#, now).unwrap();
        assert_eq!(t.expires_on, now + crate::identity::token::MAX_LIFETIME);
        assert!(t.refresh_at <= t.expires_on);
    }

    #[test]
    fn echoed_error_codes_are_bounded() {
        // fuzz/corpus/json_errors/crash-long-error
        let resp = Response {
            head: crate::net::upstream::Head {
                status: StatusCode::from_u16(400).unwrap(),
                headers: vec![],
            },
            body: format!(r#"{{"error":"{}"}}"#, "E".repeat(100_000)).into_bytes(),
        };
        for client_id in [None, Some("1111")] {
            assert!(
                error_problem(&resp, "https://vault.azure.net", client_id)
                    .detail
                    .len()
                    < 2048
            );
        }
    }
}
