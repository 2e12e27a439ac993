//! Managed identity tokens from IMDS (api-version 2018-02-01, the one every SDK pins): request
//! shape, tolerant response parsing, and what each failure means for the operator.

use crate::errors::{truncate, Problem};
use crate::identity::token::Token;
use crate::net::origin::Origin;
use crate::net::upstream::{retry_after, Peer, Request, Response};
use crate::wire::json::{self, Value};
use crate::wire::urlenc::Form;

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

/// IMDS sends every value as a string; other hosts send numbers. Accept both: absent or
/// `null` is `Ok(None)`, a string is read if it holds a number, another type is `Err`.
fn number_or_string(v: Option<&Value>) -> Result<Option<u64>, ()> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(s.trim().parse().ok()),
        Some(n) => n.as_u64().map(Some).ok_or(()),
    }
}

/// Parses a 200 answer. Expiry: `expires_on` (epoch) when readable, else `now + expires_in`,
/// else a short 5 minutes so an odd answer is not cached for long.
pub(crate) fn parse_token(body: &[u8], now: u64) -> Option<Token> {
    let doc = json::parse(body)?;
    let [access_token, expires_in, expires_on, refresh_in] =
        doc.pick(["access_token", "expires_in", "expires_on", "refresh_in"])?;
    let access_token = access_token?.as_str()?;
    let (expires_in, expires_on, refresh_in) = (
        number_or_string(expires_in).ok()?,
        number_or_string(expires_on).ok()?,
        number_or_string(refresh_in).ok()?,
    );
    if access_token.is_empty() {
        return None;
    }
    let expires_on = expires_on
        .filter(|e| *e > 1_000_000_000)
        .or_else(|| expires_in.map(|s| now.saturating_add(s)))
        .unwrap_or(now + 300);
    Some(Token::new(
        access_token.to_string(),
        now,
        expires_on,
        refresh_in,
    ))
}

/// Maps a non-200 IMDS answer.
pub(crate) fn error_problem(resp: &Response, resource: &str, client_id: Option<&str>) -> Problem {
    let doc = json::parse(&resp.body);
    let error = doc
        .as_ref()
        .and_then(|d| d.pick(["error"]))
        .and_then(|[e]| e)
        .and_then(Value::as_str)
        .unwrap_or_default();
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
        assert!(parse_token(br#"{"access_token":""}"#, 0).is_none());
        assert!(parse_token(b"<html>", 0).is_none());
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
