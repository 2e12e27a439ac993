//! Managed identity tokens from IMDS (azure-wire §1): request shape, tolerant response parsing,
//! and what each failure means for the operator.

use crate::config::Origin;
use crate::errors::{truncate, Problem};
use crate::identity::Token;
use crate::upstream::{retry_after, Request, Response, Service};
use serde::Deserialize;

pub const API_VERSION: &str = "2018-02-01";

/// `resource` is a v1 resource URI: a scope's `/.default` is stripped.
pub fn token_request(imds: &Origin, resource: &str, client_id: Option<&str>) -> Request {
    let resource = resource.strip_suffix("/.default").unwrap_or(resource);
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("api-version", API_VERSION)
        .append_pair("resource", resource);
    if let Some(id) = client_id {
        query.append_pair("client_id", id);
    }
    Request::get(
        Service::Imds,
        imds,
        format!("/metadata/identity/oauth2/token?{}", query.finish()),
    )
    .header("Metadata", "true")
}

/// IMDS sends every value as a string; other hosts send numbers. Accept both.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    Number(u64),
    Text(String),
}

impl NumberOrString {
    fn as_u64(&self) -> Option<u64> {
        match self {
            NumberOrString::Number(n) => Some(*n),
            NumberOrString::Text(s) => s.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    #[serde(default)]
    expires_in: Option<NumberOrString>,
    #[serde(default)]
    expires_on: Option<NumberOrString>,
    #[serde(default)]
    refresh_in: Option<NumberOrString>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: String,
}

/// Parses a 200 answer. Expiry: `expires_on` (epoch) when readable, else `now + expires_in`,
/// else a short 5 minutes so an odd answer is not cached for long.
pub fn parse_token(body: &[u8], now: u64) -> Option<Token> {
    let t: TokenBody = serde_json::from_slice(body).ok()?;
    if t.access_token.is_empty() {
        return None;
    }
    let expires_on = t
        .expires_on
        .as_ref()
        .and_then(NumberOrString::as_u64)
        .filter(|e| *e > 1_000_000_000)
        .or_else(|| {
            t.expires_in
                .as_ref()
                .and_then(NumberOrString::as_u64)
                .map(|s| now.saturating_add(s))
        })
        .unwrap_or(now + 300);
    let refresh_in = t.refresh_in.as_ref().and_then(NumberOrString::as_u64);
    Some(Token::new(t.access_token, now, expires_on, refresh_in))
}

/// Maps a non-200 IMDS answer.
pub fn error_problem(resp: &Response, resource: &str, client_id: Option<&str>) -> Problem {
    let err: ErrorBody = serde_json::from_slice(&resp.body).unwrap_or_default();
    let identity = match client_id {
        Some(id) => format!("the user-assigned managed identity with client id {id}"),
        None => "the system-assigned managed identity".to_string(),
    };
    match (resp.status(), err.error.as_str()) {
        (400, "invalid_resource") => Problem::upstream(
            "identity-resource-unknown",
            format!("IMDS could not get a token for resource '{resource}' (invalid_resource): the resource is unknown to the identity's tenant; check the cloud variable and endpoints"),
        ),
        (400 | 401, _) if client_id.is_some() => Problem::upstream(
            "identity-not-found",
            format!(
                "IMDS refused to issue a token for {identity} ({}): assign that identity to this node pool's VM scale set \
                 (az vmss identity assign) or correct azure_client_id",
                truncate(non_empty(&err.error), 100)
            ),
        ),
        (400 | 401, _) => Problem::upstream(
            "identity-not-found",
            format!("IMDS refused to issue a token for {identity} ({}): enable a system-assigned identity or set azure_client_id to a user-assigned one", truncate(non_empty(&err.error), 100)),
        ),
        (429, _) => Problem::throttled("IMDS", retry_after(&resp.head).unwrap_or(1)),
        (404 | 410 | 500..=599, _) => Problem::new(
            503,
            "identity-unavailable",
            "Upstream unavailable",
            format!("IMDS is temporarily unavailable (HTTP {}); retry shortly", resp.status()),
        )
        .with_retry_after(retry_after(&resp.head).unwrap_or(5)),
        (status, _) => Problem::upstream("identity-failed", format!("IMDS answered HTTP {status} ({})", truncate(non_empty(&err.error), 100))),
    }
}

/// IMDS is only reachable from an Azure VM; say so when it is not.
pub fn unreachable_problem(imds: &Origin) -> Problem {
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
    use crate::config::parse_origin;

    #[test]
    fn request_uses_resource_not_scope_and_metadata_header() {
        let imds = parse_origin("http://169.254.169.254").unwrap();
        let r = token_request(&imds, "https://vault.azure.net/.default", Some("abc"));
        assert_eq!(
            r.path_and_query,
            "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net&client_id=abc"
        );
        assert!(r.headers.contains(&("Metadata".into(), "true".into())));
        let r = token_request(&imds, "api://AzureADTokenExchange", None);
        assert!(!r.path_and_query.contains("client_id"));
    }

    #[test]
    fn parses_string_and_number_expiry() {
        let t = parse_token(br#"{"access_token":"x","expires_in":"3599","expires_on":"1900000000","token_type":"Bearer"}"#, 1_800_000_000).unwrap();
        assert_eq!(t.expires_on, 1_900_000_000);
        let t = parse_token(br#"{"access_token":"x","expires_in":3599}"#, 1_800_000_000).unwrap();
        assert_eq!(t.expires_on, 1_800_003_599);
        let t = parse_token(br#"{"access_token":"x","expires_on":"11/28/2026 1:35:55 PM +00:00","expires_in":"60"}"#, 1_800_000_000).unwrap();
        assert_eq!(t.expires_on, 1_800_000_060);
        let t = parse_token(br#"{"access_token":"x"}"#, 1_800_000_000).unwrap();
        assert_eq!(t.expires_on, 1_800_000_300);
        assert!(parse_token(br#"{"access_token":""}"#, 0).is_none());
        assert!(parse_token(b"<html>", 0).is_none());
    }

    #[test]
    fn unknown_identity_tells_how_to_assign_it() {
        let resp = Response {
            head: crate::upstream::Head {
                status: 400,
                headers: vec![],
            },
            body: br#"{"error":"invalid_request","error_description":"Identity not found"}"#
                .to_vec(),
        };
        let p = error_problem(&resp, "https://vault.azure.net", Some("1111"));
        assert_eq!((p.status, p.code), (502, "identity-not-found"));
        assert!(p.detail.contains("1111") && p.detail.contains("vmss"));
    }

    #[test]
    fn transient_failures_are_503() {
        let resp = Response {
            head: crate::upstream::Head {
                status: 410,
                headers: vec![],
            },
            body: vec![],
        };
        assert_eq!(error_problem(&resp, "r", None).status, 503);
        let resp = Response {
            head: crate::upstream::Head {
                status: 429,
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
        let t = parse_token(br#"{"access_token":"x","expires_on":"1900000000","refresh_in":"18446744073709551615"}"#, now).unwrap();
        assert_eq!(t.expires_on, 1_900_000_000);
        assert!(t.refresh_at <= t.expires_on);
    }

    #[test]
    fn echoed_error_codes_are_bounded() {
        // fuzz/corpus/json_errors/crash-long-error
        let resp = Response {
            head: crate::upstream::Head {
                status: 400,
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
