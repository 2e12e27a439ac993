//! Blob Storage Get Blob with a bearer token (azure-wire §5): a URL that no normalisation can
//! redirect, the headers Storage requires, and what each refusal means.

use crate::config::{self, BlobService, Tenant};
use crate::errors::{truncate, Problem};
use crate::identity::{self, Env, Scope};
use crate::upstream::{
    net_problem, read_small, retry_after, Head, Request, Response, Service, Transport,
};

/// Highest version Azurite 3.x accepts; OAuth needs ≥ 2017-11-09.
pub const API_VERSION: &str = "2025-11-05";

/// Percent-encodes everything but RFC 3986 unreserved characters, so the path reaches Storage
/// byte for byte as the caller named it.
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `{base}/{container}/{seg}/{seg}…`; names were validated, so no segment is empty, `.` or `..`.
pub fn blob_path(svc: &BlobService, container: &str, blob: &str) -> String {
    let segments: Vec<String> = blob.split('/').map(encode_segment).collect();
    format!(
        "{}/{}/{}",
        svc.base_path,
        encode_segment(container),
        segments.join("/")
    )
}

/// The Storage error code: `x-ms-error-code`, else `<Code>` of the XML body.
pub fn error_code(head: &Head, body: &[u8]) -> String {
    if let Some(code) = head.header("x-ms-error-code") {
        return truncate(code.trim(), 100);
    }
    let text = String::from_utf8_lossy(body);
    text.split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| truncate(code.trim(), 100))
        .unwrap_or_default()
}

pub struct Target<'a> {
    pub service: &'a BlobService,
    pub container: &'a str,
    pub blob: &'a str,
}

pub fn error_problem(resp: &Response, target: &Target, who: &str) -> Problem {
    let code = error_code(&resp.head, &resp.body);
    let account = format!("{}{}", target.service.origin, target.service.base_path);
    let (container, blob) = (target.container, target.blob);
    match (resp.status(), code.as_str()) {
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
                 private endpoint connection is approved and that {} resolves to its IP (private DNS zone privatelink.blob.core.windows.net)",
                target.service.origin.host
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
pub fn open<T: Transport>(
    env: &Env<T>,
    tenant: Tenant,
    container: &str,
    blob: &str,
) -> Result<(Head, T::Body), Problem> {
    let cloud = config::cloud(env.vars)?;
    let service = config::blob_service(env.vars, tenant)?;
    identity::preflight(env.vars, tenant, cloud)?;
    let target = Target {
        service: &service,
        container,
        blob,
    };
    let scope = Scope {
        cloud,
        tenant,
        resource: cloud.storage_resource(),
    };
    let path = blob_path(&service, container, blob);
    for attempt in 0..2 {
        let token = identity::access_token(env, &scope)?;
        let req = Request::get(Service::Blob, &service.origin, path.clone())
            .header("Authorization", format!("Bearer {token}"))
            .header("x-ms-version", API_VERSION)
            .header("x-ms-date", crate::timefmt::http_date(env.now))
            .header("x-ms-client-request-id", env.request_id.clone());
        let (head, mut body) = crate::retry::open(env, &req)?.map_err(|e| net_problem(&req, &e))?;
        if head.status == 200 {
            return Ok((head, body));
        }
        // An error document; if it cannot be read, the status and headers still tell enough.
        let resp = read_small(Service::Blob, head.clone(), &mut body).unwrap_or(Response {
            head,
            body: Vec::new(),
        });
        let token_refused =
            resp.status() == 401 || error_code(&resp.head, &resp.body) == "AuthenticationFailed";
        if token_refused && attempt == 0 {
            // A cached token was refused (Storage: 401; Azurite: 403 AuthenticationFailed): drop
            // it and try once with a new one.
            identity::forget(env, &scope)?;
            continue;
        }
        return Err(error_problem(
            &resp,
            &target,
            &identity::principal(tenant, env.vars, Some(&token)),
        ));
    }
    Err(Problem::upstream(
        "storage-token-refused",
        format!(
            "Blob Storage {} refused a freshly issued token",
            service.origin
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_origin;

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
            status: 404,
            headers: vec![],
        };
        assert_eq!(error_code(&head, b"<?xml version=\"1.0\"?><Error><Code>BlobNotFound</Code><Message>m</Message></Error>"), "BlobNotFound");
        let head = Head {
            status: 403,
            headers: vec![("x-ms-error-code".into(), "AuthorizationFailure".into())],
        };
        assert_eq!(error_code(&head, b""), "AuthorizationFailure");
        assert_eq!(error_code(&Head::default(), b"<Code>unterminated"), "");
    }

    #[test]
    fn maps_storage_refusals() {
        let s = svc("/acct");
        let t = Target {
            service: &s,
            container: "c",
            blob: "b",
        };
        let resp = |status, code: &str| Response {
            head: Head {
                status,
                headers: vec![("x-ms-error-code".into(), code.into())],
            },
            body: vec![],
        };
        let p = error_problem(&resp(403, "AuthorizationPermissionMismatch"), &t, "mi");
        assert_eq!((p.status, p.code), (502, "storage-forbidden-rbac"));
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
            502
        );
        assert_eq!(error_problem(&resp(503, "ServerBusy"), &t, "").status, 503);
    }

    #[test]
    fn echoed_error_codes_are_bounded() {
        // fuzz/corpus/storage_error/crash-long-error-code-header, crash-long-xml-code
        let s = svc("/acct");
        let t = Target {
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
                        status,
                        headers: headers.clone(),
                    },
                    body: body.clone(),
                };
                assert!(error_problem(&resp, &t, "").detail.len() < 2048);
            }
        }
    }
}
