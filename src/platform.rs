//! Spin-specific I/O, kept at the edge: variables, the key-value store, outbound HTTP through
//! `wasi:http/outgoing-handler` (with timeouts) and writing the response. Everything here blocks
//! on WASI pollables: a Spin instance serves exactly one request, so there is nothing to overlap.
//! Compiled only for wasm32; the logic it feeds is tested on the host target.

use crate::config::Variables;
use crate::identity::Store;
use crate::upstream::{BodyReader, Head, Method, NetError, Request, Transport};
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{
    ErrorCode, Fields, IncomingBody, Method as WasiMethod, OutgoingBody, OutgoingRequest,
    OutgoingResponse, RequestOptions, ResponseOutparam, Scheme,
};
use std::cell::RefCell;
use std::time::{Duration, Instant};
use wasi::io::streams::{InputStream, OutputStream, StreamError};

/// Per-call network timeouts (the wasi:http request options).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
const BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(30);
/// Read size for upstream bodies: the fixed buffer blobs stream through.
const READ_CHUNK: u64 = 64 * 1024;

pub struct SpinVariables;

impl Variables for SpinVariables {
    fn get(&self, name: &str) -> Option<String> {
        spin_sdk::variables::get(name).ok()
    }
}

/// The token cache's store, opened on first use. A store that cannot be opened is reported once
/// per request and then treated as empty: tokens still work, just without caching.
pub struct KvStore {
    label: String,
    store: RefCell<Option<Option<spin_sdk::key_value::Store>>>,
}

impl KvStore {
    pub fn new(label: String) -> KvStore {
        KvStore {
            label,
            store: RefCell::new(None),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&spin_sdk::key_value::Store) -> R) -> Option<R> {
        let mut slot = self.store.borrow_mut();
        let store = slot.get_or_insert_with(|| match spin_sdk::key_value::Store::open(&self.label) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!(
                    "{{\"level\":\"warn\",\"msg\":\"token cache disabled: cannot open key-value store '{}' ({e:?}); list it in key_value_stores and runtime-config.toml\"}}",
                    self.label
                );
                None
            }
        });
        store.as_ref().map(f)
    }
}

impl Store for KvStore {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.with(|s| s.get(key).ok().flatten()).flatten()
    }
    fn set(&self, key: &str, value: &[u8]) {
        self.with(|s| s.set(key, value));
    }
    fn delete(&self, key: &str) {
        self.with(|s| s.delete(key));
    }
}

/// One outbound attempt, for the request's log line.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub service: &'static str,
    pub host: String,
    pub status: Option<u16>,
    pub request_id: Option<String>,
    pub millis: u128,
}

#[derive(Default)]
pub struct SpinTransport {
    pub attempts: RefCell<Vec<Attempt>>,
}

fn net_error(e: ErrorCode) -> NetError {
    match e {
        ErrorCode::HttpRequestDenied => NetError::Denied,
        ErrorCode::ConnectionRefused => NetError::ConnectionRefused,
        ErrorCode::DnsTimeout | ErrorCode::DnsError(_) => NetError::Dns,
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::HttpResponseTimeout => NetError::Timeout,
        ErrorCode::TlsProtocolError
        | ErrorCode::TlsAlertReceived(_)
        | ErrorCode::TlsCertificateError => NetError::Tls(format!("{e:?}")),
        other => NetError::Other(format!("{other:?}")),
    }
}

fn write_all(stream: &OutputStream, mut bytes: &[u8]) -> Result<(), StreamError> {
    while !bytes.is_empty() {
        let n = (stream.check_write()? as usize).min(bytes.len());
        if n == 0 {
            stream.subscribe().block();
            continue;
        }
        stream.write(&bytes[..n])?;
        bytes = &bytes[n..];
    }
    match stream.blocking_flush() {
        // Every byte was accepted; a host that has read the whole Content-Length may close the
        // stream before our flush, which is not a failure.
        Err(StreamError::Closed) => Ok(()),
        other => other,
    }
}

impl SpinTransport {
    fn start(&self, req: &Request) -> Result<(Head, IncomingBody), NetError> {
        let pairs: Vec<(String, Vec<u8>)> = req
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
            .collect();
        let fields = Fields::from_list(&pairs)
            .map_err(|e| NetError::Other(format!("invalid header: {e:?}")))?;
        let outgoing = OutgoingRequest::new(fields);
        let method = match req.method {
            Method::Get => WasiMethod::Get,
            Method::Post => WasiMethod::Post,
        };
        let scheme = if req.origin.https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let invalid = |what: &str| NetError::Other(format!("invalid {what}"));
        outgoing
            .set_method(&method)
            .map_err(|_| invalid("method"))?;
        outgoing
            .set_scheme(Some(&scheme))
            .map_err(|_| invalid("scheme"))?;
        outgoing
            .set_authority(Some(&req.origin.authority()))
            .map_err(|_| invalid("authority"))?;
        outgoing
            .set_path_with_query(Some(&req.path_and_query))
            .map_err(|_| invalid("path"))?;
        let body = outgoing.body().map_err(|_| invalid("body"))?;

        let options = RequestOptions::new();
        let nanos = |d: Duration| d.as_nanos() as u64;
        // Hosts that do not support an option refuse it; the deadline still bounds the call.
        // The request's remaining deadline bounds connecting and the first byte; body streaming
        // is bounded between bytes only, so a large blob may take longer than the deadline.
        let bound = |d: Duration| {
            req.timeout
                .map_or(d, |t| t.min(d))
                .max(Duration::from_millis(1))
        };
        let _ = options.set_connect_timeout(Some(nanos(bound(CONNECT_TIMEOUT))));
        let _ = options.set_first_byte_timeout(Some(nanos(bound(FIRST_BYTE_TIMEOUT))));
        let _ = options.set_between_bytes_timeout(Some(nanos(BETWEEN_BYTES_TIMEOUT)));

        let future = outgoing_handler::handle(outgoing, Some(options)).map_err(net_error)?;
        if !req.body.is_empty() {
            let stream = body.write().map_err(|_| invalid("body stream"))?;
            write_all(&stream, &req.body)
                .map_err(|e| NetError::Broken(format!("request body: {e:?}")))?;
        }
        OutgoingBody::finish(body, None).map_err(net_error)?;

        let response = loop {
            match future.get() {
                Some(Ok(Ok(resp))) => break resp,
                Some(Ok(Err(e))) => return Err(net_error(e)),
                Some(Err(())) => return Err(NetError::Other("response already taken".into())),
                None => future.subscribe().block(),
            }
        };
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let head = Head {
            status: response.status(),
            headers,
        };
        let body = response
            .consume()
            .map_err(|_| NetError::Other("response body unavailable".into()))?;
        Ok((head, body))
    }
}

impl Transport for SpinTransport {
    type Body = SpinBody;

    fn open(&self, req: &Request) -> Result<(Head, SpinBody), NetError> {
        let started = Instant::now();
        let result = self.start(req);
        self.attempts.borrow_mut().push(Attempt {
            service: req.service.name(),
            host: req.origin.authority(),
            status: result.as_ref().ok().map(|(h, _)| h.status),
            request_id: result
                .as_ref()
                .ok()
                .and_then(|(h, _)| h.request_id().map(str::to_string)),
            millis: started.elapsed().as_millis(),
        });
        let (head, body) = result?;
        let stream = body
            .stream()
            .map_err(|_| NetError::Other("response body stream unavailable".into()))?;
        Ok((
            head,
            SpinBody {
                stream: Some(stream),
                body: Some(body),
            },
        ))
    }
}

/// An upstream body read in fixed-size chunks. The stream must be dropped before its body.
pub struct SpinBody {
    stream: Option<InputStream>,
    body: Option<IncomingBody>,
}

impl BodyReader for SpinBody {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, NetError> {
        let Some(stream) = &self.stream else {
            return Ok(None);
        };
        match stream.blocking_read(READ_CHUNK) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(StreamError::Closed) => {
                self.stream = None;
                // Trailers carry the outcome of a body that ended early on some hosts.
                if let Some(body) = self.body.take() {
                    let trailers = IncomingBody::finish(body);
                    trailers.subscribe().block();
                    if let Some(Ok(Err(e))) = trailers.get() {
                        return Err(NetError::Broken(format!("{e:?}")));
                    }
                }
                Ok(None)
            }
            Err(StreamError::LastOperationFailed(e)) => {
                self.stream = None;
                Err(NetError::Broken(e.to_debug_string()))
            }
        }
    }
}

impl Drop for SpinBody {
    fn drop(&mut self) {
        self.stream.take();
        self.body.take();
    }
}

/// Sends a complete response.
pub fn respond(out: ResponseOutparam, status: u16, headers: &[(&str, String)], body: &[u8]) {
    let Some((response, body_handle)) = response_head(status, headers) else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = body_handle.write() {
        let _ = write_all(&stream, body);
        drop(stream);
    }
    let _ = OutgoingBody::finish(body_handle, None);
}

fn response_head(
    status: u16,
    headers: &[(&str, String)],
) -> Option<(OutgoingResponse, OutgoingBody)> {
    let pairs: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    let fields = Fields::from_list(&pairs).ok()?;
    let response = OutgoingResponse::new(fields);
    response.set_status_code(status).ok()?;
    let body = response.body().ok()?;
    Some((response, body))
}

/// A response whose body is written in pieces.
pub struct StreamingResponse {
    stream: Option<OutputStream>,
    body: Option<OutgoingBody>,
}

impl StreamingResponse {
    pub fn start(
        out: ResponseOutparam,
        status: u16,
        headers: &[(&str, String)],
    ) -> Option<StreamingResponse> {
        let (response, body) = response_head(status, headers)?;
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().ok()?;
        Some(StreamingResponse {
            stream: Some(stream),
            body: Some(body),
        })
    }

    pub fn write(&mut self, bytes: &[u8]) -> bool {
        match &self.stream {
            Some(s) => write_all(s, bytes).is_ok(),
            None => false,
        }
    }

    /// Completes the body normally.
    pub fn finish(mut self) {
        self.stream.take();
        if let Some(body) = self.body.take() {
            let _ = OutgoingBody::finish(body, None);
        }
    }
}

impl Drop for StreamingResponse {
    /// Dropped without `finish`: the body is abandoned, which the host turns into a broken
    /// transfer, so the caller never mistakes a truncated blob for a complete one.
    fn drop(&mut self) {
        self.stream.take();
        self.body.take();
    }
}

/// 16 random bytes as a UUID v4, for `x-ms-client-request-id`.
pub fn request_id() -> String {
    let mut b = spin_sdk::wit::wasi::random0_2_0::random::get_random_bytes(16);
    b.resize(16, 0);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
