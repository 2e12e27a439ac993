//! The shape of an outbound call, independent of Spin, so every service decision (identity,
//! Key Vault, Blob, registry) runs on the host target with a scripted transport.

use crate::errors::Problem;
use crate::net::cloud::Service;
use crate::net::origin::Origin;
use http::{Method, StatusCode};
use std::time::Duration;

/// Who a call goes to: the identity endpoints, or a service; names it in logs and problem
/// details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    Imds,
    Entra,
    Service(Service),
}

impl Peer {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Peer::Imds => "IMDS",
            Peer::Entra => "Entra ID",
            Peer::Service(service) => service.name(),
        }
    }
}

impl From<Service> for Peer {
    fn from(service: Service) -> Peer {
        Peer::Service(service)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub peer: Peer,
    pub method: Method,
    pub origin: Origin,
    /// Already encoded: never re-parsed, so nothing can normalise it into another target.
    pub path_and_query: String,
    /// Lower-case names: the transport sends them as they are.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub(crate) fn get(peer: impl Into<Peer>, origin: &Origin, path_and_query: String) -> Request {
        Request {
            peer: peer.into(),
            method: Method::GET,
            origin: origin.clone(),
            path_and_query,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A form POST; `Content-Length` is set from the body by the transport.
    pub(crate) fn form(
        peer: impl Into<Peer>,
        origin: &Origin,
        path: String,
        body: String,
    ) -> Request {
        Request {
            method: Method::POST,
            body: body.into_bytes(),
            ..Request::get(peer, origin, path)
        }
        .header("content-type", "application/x-www-form-urlencoded")
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Request {
        self.headers.push((name, value.into()));
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
// Most variants are made by the Spin transport, which exists only in the wasm32 build.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) enum NetError {
    /// Spin refused the destination: `allowed_outbound_hosts` does not cover it.
    Denied,
    /// Connecting, the first byte, or the gap between two body chunks took too long.
    Timeout,
    ConnectionRefused,
    Dns,
    Tls(String),
    /// The connection broke after the response started.
    Broken(String),
    /// The request could not even be built (an invalid header value): nothing went out, and
    /// trying again cannot help.
    Local(String),
    Other(String),
}

/// Response status and headers; the body is read separately so blobs can stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct Head {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn content_length(&self) -> Option<u64> {
        self.header("content-length")?.trim().parse().ok()
    }
}

/// A response whose body has been read completely (tokens, secrets, errors).
#[derive(Debug, Clone, Default)]
pub(crate) struct Response {
    pub head: Head,
    pub body: Vec<u8>,
}

impl Response {
    pub(crate) fn status(&self) -> StatusCode {
        self.head.status
    }
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }
}

/// Reads a body in chunks; `Ok(None)` at the end.
pub(crate) trait BodyReader {
    /// The next chunk, waiting at most `wait` for it to arrive (then [`NetError::Timeout`]).
    fn next_chunk(&mut self, wait: Duration) -> Result<Option<Vec<u8>>, NetError>;
}

/// Largest body read into memory (tokens, secrets of ≤ 25 KB, error documents).
pub(crate) const SMALL_BODY_LIMIT: usize = 1024 * 1024;

pub(crate) trait Transport {
    type Body: BodyReader;

    /// Sends the request and returns once the response head has arrived; `timeout` (the
    /// request's remaining deadline) bounds every stage of the attempt.
    fn open(&self, req: &Request, timeout: Duration) -> Result<(Head, Self::Body), NetError>;
}

/// Reads a whole small body, refusing more than `limit` bytes. Every read waits at most what
/// `time_left` says is left of the request's deadline *then*, so a body that trickles or stalls
/// ends as a timeout at the deadline, not a between-bytes timeout past it.
pub(crate) fn read_small(
    peer: Peer,
    head: Head,
    body: &mut impl BodyReader,
    limit: usize,
    time_left: &dyn Fn() -> Duration,
) -> Result<Response, NetError> {
    let mut buf = Vec::new();
    loop {
        let wait = time_left();
        if wait.is_zero() {
            return Err(NetError::Timeout);
        }
        let Some(chunk) = body.next_chunk(wait)? else {
            break;
        };
        if buf.len() + chunk.len() > limit {
            return Err(NetError::Other(format!(
                "{} answered with more than {limit} bytes",
                peer.name()
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Response { head, body: buf })
}

/// What a failed connection means for the caller and what the operator should check.
pub(crate) fn net_problem(req: &Request, err: &NetError) -> Problem {
    let service = req.peer.name();
    let target = req.origin.to_string();
    match err {
        NetError::Denied => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "outbound-denied",
            "Configuration error",
            format!(
                "Spin refused the request to {target}: it is not in allowed_outbound_hosts (spin.toml \
                 lists the clouds' service hosts on port 443: add any other host there), or an entry \
                 of allowed_outbound_hosts did not resolve to scheme://host[:port] (Spin then denies \
                 every outbound request)"
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
        NetError::Local(detail) => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "request-invalid",
            "Internal error",
            format!("the request to {service} at {target} could not be built ({detail})"),
        ),
        NetError::Broken(detail) | NetError::Other(detail) => {
            Problem::upstream("upstream-failed", format!("request to {service} at {target} failed: {detail}"))
        }
    }
}

/// Seconds to wait, from `retry-after-ms`, `x-ms-retry-after-ms` or `Retry-After` (seconds; an
/// HTTP date is read as "soon", 1 s, rather than parsed).
pub(crate) fn retry_after(head: &Head) -> Option<u64> {
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = head.header(name).and_then(|v| v.trim().parse::<u64>().ok()) {
            return Some(ms.div_ceil(1000).max(1));
        }
    }
    let value = head.header("retry-after")?.trim();
    Some(value.parse::<u64>().unwrap_or(1))
}

// Not test-only: the fuzz door (fuzzing.rs) feeds the relay with it too.
pub(crate) mod scripted {
    //! Scripted response bodies, for host tests and the fuzz door.

    use super::*;
    use std::collections::VecDeque;

    pub(crate) struct Chunks(pub VecDeque<Result<Vec<u8>, NetError>>);

    impl BodyReader for Chunks {
        fn next_chunk(&mut self, _wait: Duration) -> Result<Option<Vec<u8>>, NetError> {
            self.0.pop_front().transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(headers: &[(&str, &str)]) -> Head {
        Head {
            status: StatusCode::TOO_MANY_REQUESTS,
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

    #[test]
    fn forms_carry_their_content_type() {
        let o = crate::net::origin::parse("https://login.microsoftonline.com").unwrap();
        let r = Request::form(Peer::Entra, &o, "/t".into(), "a=b".into());
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.headers[0].0, "content-type");
        assert_eq!(r.body, b"a=b");
    }

    /// A body whose reads take `step` each on a shared clock, recording each wait it was given.
    struct Slow<'a> {
        now: &'a std::cell::Cell<Duration>,
        step: Duration,
        waits: Vec<Duration>,
    }
    impl BodyReader for Slow<'_> {
        fn next_chunk(&mut self, wait: Duration) -> Result<Option<Vec<u8>>, NetError> {
            self.waits.push(wait);
            if self.step > wait {
                self.now.set(self.now.get() + wait);
                return Err(NetError::Timeout);
            }
            self.now.set(self.now.get() + self.step);
            Ok(Some(b"x".to_vec()))
        }
    }

    #[test]
    fn every_read_waits_only_for_the_time_left_then() {
        let now = std::cell::Cell::new(Duration::ZERO);
        let deadline = Duration::from_secs(10);
        let mut body = Slow {
            now: &now,
            step: Duration::from_secs(4),
            waits: Vec::new(),
        };
        let left = || deadline.saturating_sub(now.get());
        let got = read_small(
            Peer::Service(Service::KeyVault),
            Head::default(),
            &mut body,
            100,
            &left,
        );
        assert_eq!(got.unwrap_err(), NetError::Timeout);
        // 10 s, then 6 s, then 2 s (not 10 s each, as when every wait was fixed at the open).
        let secs: Vec<u64> = body.waits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [10, 6, 2]);
        assert_eq!(now.get(), deadline, "the deadline is never overrun");
    }
}
