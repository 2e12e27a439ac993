//! Blob Storage Get Blob with a bearer token (OAuth needs x-ms-version 2017-11-09 or later): a
//! URL that no normalisation can redirect, the headers Storage requires, and what each refusal
//! means.

use crate::config::settings::BlobService;
use crate::errors::{truncate, Problem};
use crate::identity::context::Context;
use crate::identity::credential::Credential;
use crate::net::cloud::{Cloud, Service};
use crate::net::upstream::{
    net_problem, read_small, retry_after, Head, Request, Response, Transport,
};
use crate::services::bearer::{authorize, Attempt};
use crate::wire::urlenc::encode_component;
use http::StatusCode;

/// Highest version Azurite 3.x accepts; OAuth needs ≥ 2017-11-09.
pub(crate) const API_VERSION: &str = "2025-11-05";
/// Error documents read into memory at most.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// `{base}/{container}/{seg}/{seg}…`, every segment percent-encoded so the path reaches
/// Storage byte for byte as the caller named it; names were validated, so no segment is
/// empty, `.` or `..`.
pub(crate) fn blob_path(svc: &BlobService, container: &str, blob: &str) -> String {
    let mut path =
        String::with_capacity(svc.base_path.len() + container.len() + blob.len() * 3 + 2);
    path.push_str(&svc.base_path);
    path.push('/');
    encode_component(container, &mut path);
    for segment in blob.split('/') {
        path.push('/');
        encode_component(segment, &mut path);
    }
    path
}

/// The Storage error code: `x-ms-error-code`, else `<Code>` of the XML body.
pub(crate) fn error_code(head: &Head, body: &[u8]) -> String {
    if let Some(code) = head.header("x-ms-error-code") {
        return truncate(code.trim(), 100);
    }
    let text = String::from_utf8_lossy(body);
    text.split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| truncate(code.trim(), 100))
        .unwrap_or_default()
}

pub(crate) struct BlobAddress<'a> {
    pub cloud: Cloud,
    pub service: &'a BlobService,
    pub container: &'a str,
    pub blob: &'a str,
}

pub(crate) fn error_problem(resp: &Response, target: &BlobAddress, who: &str) -> Problem {
    let code = error_code(&resp.head, &resp.body);
    let account = format!("{}{}", target.service.origin, target.service.base_path);
    let (container, blob) = (target.container, target.blob);
    match (resp.status().as_u16(), code.as_str()) {
        (404, "ContainerNotFound") => Problem::not_found("container-not-found", format!("container '{container}' does not exist in {account}")),
        (404, _) => Problem::not_found("blob-not-found", format!("blob '{}' does not exist in container '{container}' of {account}", truncate(blob, 200))),
        (403, "AuthorizationPermissionMismatch") => Problem::upstream(
            "storage-forbidden-rbac",
            format!("Blob Storage refused the identity (AuthorizationPermissionMismatch): grant 'Storage Blob Data Reader' on {account} (or container '{container}') to {who}"),
        ),
        (403, "AuthorizationFailure") => Problem::upstream(
            "storage-network",
            format!(
                "Blob Storage {account} refused the request (AuthorizationFailure): it did not arrive through an allowed network. Check that the \
                 private endpoint connection is approved and that {} resolves to its IP (private DNS zone {})",
                target.service.origin.host,
                target.cloud.private_dns_zone(Service::Blob)
            ),
        ),
        (401, _) | (403, "AuthenticationFailed") => Problem::upstream(
            "storage-token-refused",
            format!("Blob Storage {account} refused the access token of {who} ({}): check the cloud variable and that the account is in the expected tenant", non_empty(&code)),
        ),
        (429 | 503, _) => Problem::throttled("Blob Storage", retry_after(&resp.head).unwrap_or(1)),
        (status, _) => Problem::upstream("storage-failed", format!("Blob Storage {account} answered HTTP {status} {}", non_empty(&code))),
    }
}

fn non_empty(s: &str) -> &str {
    if s.is_empty() {
        "without an error code"
    } else {
        s
    }
}

/// Starts downloading a blob; returns the response head and the body to stream.
pub(crate) fn open<T: Transport, C: Credential>(
    ctx: &Context<T>,
    credential: &C,
    target: &BlobAddress,
) -> Result<(Head, T::Body), Problem> {
    let service = target.service;
    let path = blob_path(service, target.container, target.blob);
    authorize(ctx, credential, &service.origin, Service::Blob, |token| {
        let req = Request::get(Service::Blob, &service.origin, path.clone())
            .header("authorization", format!("Bearer {}", token.secret))
            .header("x-ms-version", API_VERSION)
            .header("x-ms-date", crate::wire::timefmt::http_date(ctx.now()))
            .header("x-ms-client-request-id", ctx.request_id);
        let (head, mut body) =
            crate::net::retry::open(&ctx.calls(), &req)?.map_err(|e| net_problem(&req, &e))?;
        if head.status == StatusCode::OK {
            return Ok(Attempt::Done((head, body)));
        }
        // An error document; if it cannot be read, the status and headers still tell enough.
        let time_left = || ctx.budget.remaining(ctx.clock);
        let resp = read_small(
            Service::Blob.into(),
            head.clone(),
            &mut body,
            ERROR_BODY_LIMIT,
            &time_left,
        )
        .unwrap_or(Response {
            head,
            body: Vec::new(),
        });
        let problem = error_problem(&resp, target, &credential.principal(Some(&token.secret)));
        // A refused token: Storage answers 401; Azurite 403 AuthenticationFailed.
        if resp.status() == StatusCode::UNAUTHORIZED
            || error_code(&resp.head, &resp.body) == "AuthenticationFailed"
        {
            return Ok(Attempt::Refused {
                problem,
                challenge: None,
            });
        }
        Err(problem)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::origin::parse as parse_origin;

    fn svc(base: &str) -> BlobService {
        BlobService {
            origin: parse_origin("https://127.0.0.1:10000").unwrap(),
            base_path: base.into(),
        }
    }

    #[test]
    fn paths_are_encoded_per_segment() {
        assert_eq!(
            blob_path(&svc("/devstoreaccount1"), "c", "a b/ü?#%2e.txt"),
            "/devstoreaccount1/c/a%20b/%C3%BC%3F%23%252e.txt"
        );
        assert_eq!(blob_path(&svc(""), "$web", "x"), "/%24web/x");
    }

    #[test]
    fn error_codes_from_header_or_xml() {
        let head = Head {
            status: StatusCode::from_u16(404).unwrap(),
            headers: vec![],
        };
        assert_eq!(error_code(&head, b"<?xml version=\"1.0\"?><Error><Code>BlobNotFound</Code><Message>m</Message></Error>"), "BlobNotFound");
        let head = Head {
            status: StatusCode::from_u16(403).unwrap(),
            headers: vec![("x-ms-error-code".into(), "AuthorizationFailure".into())],
        };
        assert_eq!(error_code(&head, b""), "AuthorizationFailure");
        assert_eq!(error_code(&Head::default(), b"<Code>unterminated"), "");
    }

    #[test]
    fn maps_storage_refusals() {
        let s = svc("/acct");
        let t = BlobAddress {
            cloud: Cloud::Public,
            service: &s,
            container: "c",
            blob: "b",
        };
        let resp = |status: u16, code: &str| Response {
            head: Head {
                status: StatusCode::from_u16(status).unwrap(),
                headers: vec![("x-ms-error-code".into(), code.into())],
            },
            body: vec![],
        };
        let p = error_problem(&resp(403, "AuthorizationPermissionMismatch"), &t, "mi");
        assert_eq!(
            (p.status.as_u16(), &*p.code),
            (502, "storage-forbidden-rbac")
        );
        assert!(p.detail.contains("Storage Blob Data Reader"));
        assert_eq!(
            error_problem(&resp(403, "AuthorizationFailure"), &t, "").code,
            "storage-network"
        );
        assert_eq!(
            error_problem(&resp(404, "BlobNotFound"), &t, "").code,
            "blob-not-found"
        );
        assert_eq!(
            error_problem(&resp(404, "ContainerNotFound"), &t, "").code,
            "container-not-found"
        );
        assert_eq!(
            error_problem(&resp(401, "InvalidAuthenticationInfo"), &t, "").status,
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            error_problem(&resp(503, "ServerBusy"), &t, "").status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn echoed_error_codes_are_bounded() {
        // fuzz/corpus/storage_error/crash-long-error-code-header, crash-long-xml-code
        let s = svc("/acct");
        let t = BlobAddress {
            cloud: Cloud::Public,
            service: &s,
            container: "c",
            blob: "b",
        };
        let long = "S".repeat(100_000);
        for (headers, body) in [
            (
                vec![("x-ms-error-code".to_string(), long.clone())],
                Vec::new(),
            ),
            (
                vec![],
                format!("<Error><Code>{long}</Code></Error>").into_bytes(),
            ),
        ] {
            for status in [401, 500] {
                let resp = Response {
                    head: Head {
                        status: StatusCode::from_u16(status).unwrap(),
                        headers: headers.clone(),
                    },
                    body: body.clone(),
                };
                assert!(error_problem(&resp, &t, "").detail.len() < 2048);
            }
        }
    }
}
