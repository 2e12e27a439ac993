//! The shape of an outbound call, independent of Spin, so the service logic (identity, Key Vault,
//! Blob) can be exercised on the host target with a scripted transport.

use crate::config::Origin;
use crate::errors::Problem;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// Which service a call goes to; names the service in logs and problem details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Imds,
    Entra,
    KeyVault,
    Blob,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Imds => "IMDS",
            Service::Entra => "Entra ID",
            Service::KeyVault => "Key Vault",
            Service::Blob => "Blob Storage",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub service: Service,
    pub method: Method,
    pub origin: Origin,
    /// Already encoded: never re-parsed, so nothing can normalise it into another target.
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Time left for this attempt (the request's remaining deadline).
    pub timeout: Option<std::time::Duration>,
}

impl Request {
    pub fn get(service: Service, origin: &Origin, path_and_query: String) -> Request {
        Request {
            service,
            method: Method::Get,
            origin: origin.clone(),
            path_and_query,
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Request {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The URL without query, for logs and details (queries may carry nothing secret here, but
    /// the path is what an operator needs).
    pub fn display_url(&self) -> String {
        let path = self.path_and_query.split('?').next().unwrap_or("");
        format!("{}{}", self.origin, path)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// Spin refused the destination: `allowed_outbound_hosts` does not cover it.
    Denied,
    Timeout,
    ConnectionRefused,
    Dns,
    Tls(String),
    /// The connection broke after the response started.
    Broken(String),
    Other(String),
}

/// Response status and headers; the body is read separately so blobs can stream.
#[derive(Debug, Clone, Default)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")?.trim().parse().ok()
    }

    /// Upstream correlation id for logs.
    pub fn request_id(&self) -> Option<&str> {
        self.header("x-ms-request-id")
            .or_else(|| self.header("x-ms-correlation-request-id"))
    }
}

/// A response whose body has been read completely (small bodies: tokens, secrets, errors).
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub head: Head,
    pub body: Vec<u8>,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.head.status
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }
}

/// Reads a body in chunks; `Ok(None)` at the end.
pub trait BodyReader {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, NetError>;
}

/// Largest body read into memory (tokens, secrets of ≤ 25 KB, error documents).
pub const SMALL_BODY_LIMIT: usize = 1024 * 1024;

pub trait Transport {
    type Body: BodyReader;

    /// Sends the request and returns once the response head has arrived.
    fn open(&self, req: &Request) -> Result<(Head, Self::Body), NetError>;
}

/// Reads a whole small body (tokens, secrets, error documents), refusing more than 1 MiB.
pub fn read_small(
    service: Service,
    head: Head,
    body: &mut impl BodyReader,
) -> Result<Response, NetError> {
    let mut buf = Vec::new();
    while let Some(chunk) = body.next_chunk()? {
        if buf.len() + chunk.len() > SMALL_BODY_LIMIT {
            return Err(NetError::Other(format!(
                "{} answered with more than 1 MiB",
                service.name()
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Response { head, body: buf })
}

/// What a failed connection means for the caller and what the operator should check.
pub fn net_problem(req: &Request, err: &NetError) -> Problem {
    let service = req.service.name();
    let target = req.origin.to_string();
    match err {
        NetError::Denied => Problem::new(
            500,
            "outbound-denied",
            "Configuration error",
            format!(
                "Spin refused the request to {target}: it is not in allowed_outbound_hosts, or an entry of \
                 allowed_outbound_hosts did not resolve to scheme://host[:port] (Spin then denies every \
                 outbound request; check the endpoint variables for paths or empty values)"
            ),
        ),
        NetError::Timeout => Problem::timeout(format!("{service} at {target} did not answer in time")),
        NetError::ConnectionRefused => Problem::upstream(
            "upstream-unreachable",
            format!("connection to {service} at {target} was refused: check the endpoint and that the service (or its private endpoint) is up"),
        ),
        NetError::Dns => Problem::upstream(
            "upstream-dns",
            format!(
                "{target} does not resolve: check the endpoint variable and, for private endpoints, that the private DNS zone \
                 (privatelink) is linked to the cluster VNet and has a record for it"
            ),
        ),
        NetError::Tls(detail) => Problem::upstream(
            "upstream-tls",
            format!("TLS with {service} at {target} failed ({detail}): the certificate does not match the host or is not trusted"),
        ),
        NetError::Broken(detail) | NetError::Other(detail) => {
            Problem::upstream("upstream-failed", format!("request to {service} at {target} failed: {detail}"))
        }
    }
}

/// Seconds to wait, from `retry-after-ms`, `x-ms-retry-after-ms` or `Retry-After` (seconds; an
/// HTTP date is read as "soon", 1 s, rather than parsed).
pub fn retry_after(head: &Head) -> Option<u64> {
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = head.header(name).and_then(|v| v.trim().parse::<u64>().ok()) {
            return Some(ms.div_ceil(1000).max(1));
        }
    }
    let value = head.header("retry-after")?.trim();
    Some(value.parse::<u64>().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(headers: &[(&str, &str)]) -> Head {
        Head {
            status: 429,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn retry_after_reads_all_three_headers() {
        assert_eq!(retry_after(&head(&[("Retry-After", "7")])), Some(7));
        assert_eq!(retry_after(&head(&[("retry-after-ms", "1500")])), Some(2));
        assert_eq!(
            retry_after(&head(&[("x-ms-retry-after-ms", "10")])),
            Some(1)
        );
        assert_eq!(
            retry_after(&head(&[("Retry-After", "Fri, 31 Dec 1999 23:59:59 GMT")])),
            Some(1)
        );
        assert_eq!(retry_after(&head(&[])), None);
    }
}
