//! Spin-specific I/O, kept at the edge: variables, the key-value store with its atomics,
//! outbound HTTP through `wasi:http/outgoing-handler`, and writing the response. Everything here
//! waits on WASI pollables: a Spin instance serves exactly one request, so there is nothing to
//! overlap. Every wait is polled together with a `wasi:clocks` timer for the time its caller
//! allows: Spin 3.6.3 sets no request timeout for WASIp2 components, so a wait without one (a
//! caller that stops reading, a service that stops sending) would hold the instance forever.
//! Compiled only for wasm32; every decision it feeds is made (and tested) elsewhere.
//!
//! Why raw `wasi:http` streams rather than spin-sdk 5.2's `send` and body sink: the sink
//! finishes the body when it is dropped, so a blob transfer that breaks midway would end like a
//! complete one (a short body a caller cannot tell from the real thing); and `send` passes no
//! request options, so connect, first-byte and between-bytes timeouts could not be set. Here an
//! unfinished response is abandoned, which the host turns into a broken transfer.

use crate::config::settings::Variables;
use crate::identity::store::{swap_outcome, CasReport, Store, Swap};
use crate::net::clock::Clock;
use crate::net::upstream::{BodyReader, Head, NetError, Request, Transport};
use crate::request::log::Upstream;
use crate::services::relay::{Sink, Stop};
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{
    ErrorCode, Fields, IncomingBody, Method as WasiMethod, OutgoingBody, OutgoingRequest,
    OutgoingResponse, RequestOptions, ResponseOutparam, Scheme,
};
use spin_sdk::wit::wasi::keyvalue::{atomics, store as kv};
use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wasi::io::poll::Pollable;
use wasi::io::streams::{InputStream, OutputStream, StreamError};

/// Per-call network timeouts (the wasi:http request options), each also bounded by what is
/// left of the request's deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
const BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(30);
/// Read size for upstream bodies.
const READ_CHUNK: u64 = crate::services::relay::READ_CHUNK as u64;

/// The real clocks (`wasi:clocks` in the component); monotonic time counts from the request's
/// start.
pub(crate) struct SystemClock {
    pub start: std::time::Instant,
}

impl SystemClock {
    pub(crate) fn new() -> SystemClock {
        SystemClock {
            start: std::time::Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn unix(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
    fn monotonic(&self) -> Duration {
        self.start.elapsed()
    }
    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration)
    }
}

/// Spin variables, counting lookups for the log line.
#[derive(Default)]
pub(crate) struct SpinVariables {
    pub lookups: Cell<u32>,
}

impl Variables for SpinVariables {
    fn get(&self, name: &str) -> Option<String> {
        self.lookups.set(self.lookups.get() + 1);
        spin_sdk::variables::get(name).ok()
    }
}

/// Store operations of a request, for its log line.
#[derive(Default)]
pub(crate) struct KvCounts {
    pub reads: Cell<u32>,
    pub writes: Cell<u32>,
}

fn bump(c: &Cell<u32>) {
    c.set(c.get() + 1);
}

/// The token cache's bucket (`wasi:keyvalue@0.2.0-draft2`, the same labelled stores as
/// `key_value_stores`). Failures are logged once and read as "not cached".
pub(crate) struct KvStore<'a> {
    bucket: kv::Bucket,
    warned: Cell<bool>,
    counts: &'a KvCounts,
}

impl<'a> KvStore<'a> {
    pub(crate) fn open(label: &str, counts: &'a KvCounts) -> Option<KvStore<'a>> {
        match kv::open(label) {
            Ok(bucket) => Some(KvStore {
                bucket,
                warned: Cell::new(false),
                counts,
            }),
            Err(e) => {
                // Through the JSON writer: a store error's Debug form carries quotes.
                log(&serde_json::json!({
                    "level": "warn",
                    "msg": format!("token cache disabled: cannot open key-value store '{label}' ({e:?}); list it in key_value_stores and runtime-config.toml"),
                })
                .to_string());
                None
            }
        }
    }

    fn warn<T>(&self, what: &str, e: impl std::fmt::Debug) -> Option<T> {
        if !self.warned.replace(true) {
            log(&serde_json::json!({
                "level": "warn",
                "msg": format!("token cache {what} failed: {e:?}"),
            })
            .to_string());
        }
        None
    }
}

impl Store for KvStore<'_> {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        bump(&self.counts.reads);
        self.bucket
            .get(key)
            .unwrap_or_else(|e| self.warn("read", e))
    }
    fn set(&self, key: &str, value: &[u8]) {
        bump(&self.counts.writes);
        if let Err(e) = self.bucket.set(key, value) {
            self.warn::<()>("write", e);
        }
    }
    fn increment(&self, key: &str, delta: i64) -> Option<i64> {
        bump(&self.counts.writes);
        atomics::increment(&self.bucket, key, delta)
            .map_or_else(|e| self.warn("increment", e), Some)
    }
    fn swap(&self, key: &str, expected: &[u8], value: &[u8]) -> Swap {
        bump(&self.counts.reads);
        bump(&self.counts.writes);
        let Ok(cas) = atomics::Cas::new(&self.bucket, key) else {
            return Swap::Lost;
        };
        // Compare with what the caller read: the swap below only checks against the value
        // `Cas::new` saw.
        if cas.current().ok().flatten().as_deref() != Some(expected) {
            return Swap::Lost;
        }
        let report = match atomics::swap(cas, value) {
            Ok(()) => CasReport::Swapped,
            // The returned handle has read the key again (see `swap_outcome`).
            Err(atomics::CasError::CasFailed(fresh)) => CasReport::Failed {
                now: fresh.current().ok().flatten(),
            },
            Err(atomics::CasError::StoreError(_)) => CasReport::StoreError,
        };
        swap_outcome(value, report)
    }
}

#[derive(Default)]
pub(crate) struct SpinTransport {
    /// Every attempt, for the request's log line.
    pub attempts: RefCell<Vec<Upstream>>,
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
        // What we sent or how the host is configured: another attempt would fail the same way.
        ErrorCode::HttpRequestMethodInvalid
        | ErrorCode::HttpRequestUriInvalid
        | ErrorCode::HttpRequestUriTooLong
        | ErrorCode::HttpRequestHeaderSectionSize(_)
        | ErrorCode::HttpRequestHeaderSize(_)
        | ErrorCode::HttpRequestBodySize(_)
        | ErrorCode::HttpRequestLengthRequired
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::ConfigurationError => NetError::Local(format!("{e:?}")),
        other => NetError::Other(format!("{other:?}")),
    }
}

/// A deadline for one wait, made only when the wait has to happen: a read or write that can go
/// on at once costs no timer.
struct Timer {
    wait: Duration,
    pollable: Option<Pollable>,
}

impl Timer {
    fn new(wait: Duration) -> Timer {
        Timer {
            wait,
            pollable: None,
        }
    }

    /// Waits until `ready` is ready (`true`) or the timer fires first (`false`). The timer
    /// starts at the first wait and keeps running across waits.
    fn until(&mut self, ready: &Pollable) -> bool {
        let wait = self.wait;
        let timer = self.pollable.get_or_insert_with(|| {
            wasi::clocks::monotonic_clock::subscribe_duration(wait.as_nanos() as u64)
        });
        // `poll` lists the ready ones by index; ours is 0.
        wasi::io::poll::poll(&[ready, timer]).contains(&0)
    }
}

/// Why an output stream could not take bytes.
#[derive(Debug)]
enum WriteError {
    Stream(StreamError),
    /// Not taken within the wait.
    Stalled,
}

impl From<StreamError> for WriteError {
    fn from(e: StreamError) -> WriteError {
        WriteError::Stream(e)
    }
}

impl From<WriteError> for Stop {
    fn from(e: WriteError) -> Stop {
        match e {
            WriteError::Stalled => Stop::Stalled,
            WriteError::Stream(_) => Stop::Gone,
        }
    }
}

/// Hands `bytes` to the host as fast as it takes them, without waiting for them to go out: the
/// next chunk is read (and encoded) while the host sends this one. [`flush`] waits. Gives up
/// when the host has not taken them all within `wait`.
fn write_all(stream: &OutputStream, mut bytes: &[u8], wait: Duration) -> Result<(), WriteError> {
    let mut timer = Timer::new(wait);
    while !bytes.is_empty() {
        let n = (stream.check_write()? as usize).min(bytes.len());
        if n == 0 {
            if !timer.until(&stream.subscribe()) {
                return Err(WriteError::Stalled);
            }
            continue;
        }
        stream.write(&bytes[..n])?;
        bytes = &bytes[n..];
    }
    Ok(())
}

/// Waits, at most `wait`, until everything written has gone out.
fn flush(stream: &OutputStream, wait: Duration) -> Result<(), WriteError> {
    let done = (|| {
        stream.flush()?;
        let mut timer = Timer::new(wait);
        // `check-write` answers 0 until the flush has completed.
        while stream.check_write()? == 0 {
            if !timer.until(&stream.subscribe()) {
                return Err(WriteError::Stalled);
            }
        }
        Ok(())
    })();
    match done {
        // Every byte was accepted; a host that has read the whole Content-Length may close the
        // stream before our flush, which is not a failure.
        Err(WriteError::Stream(StreamError::Closed)) => Ok(()),
        other => other,
    }
}

fn method(m: &http::Method) -> WasiMethod {
    match *m {
        http::Method::GET => WasiMethod::Get,
        http::Method::POST => WasiMethod::Post,
        ref other => WasiMethod::Other(other.to_string()),
    }
}

impl SpinTransport {
    fn start(&self, req: &Request, timeout: Duration) -> Result<(Head, IncomingBody), NetError> {
        let mut pairs: Vec<(String, Vec<u8>)> = req
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        if !req.body.is_empty() {
            // An exact length, as the Azure SDKs and MSAL send: a body written as a stream
            // without one goes out chunked, which some proxies read as empty.
            pairs.push((
                "content-length".into(),
                req.body.len().to_string().into_bytes(),
            ));
        }
        let local = |what: String| NetError::Local(what);
        let fields =
            Fields::from_list(&pairs).map_err(|e| local(format!("invalid header: {e:?}")))?;
        let outgoing = OutgoingRequest::new(fields);
        let scheme = if req.origin.https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        outgoing
            .set_method(&method(&req.method))
            .map_err(|_| local("invalid method".into()))?;
        outgoing
            .set_scheme(Some(&scheme))
            .map_err(|_| local("invalid scheme".into()))?;
        outgoing
            .set_authority(Some(&req.origin.authority()))
            .map_err(|_| local("invalid authority".into()))?;
        outgoing
            .set_path_with_query(Some(&req.path_and_query))
            .map_err(|_| local("invalid path".into()))?;
        let body = outgoing
            .body()
            .map_err(|_| local("body unavailable".into()))?;

        let options = RequestOptions::new();
        let nanos = |d: Duration| d.as_nanos() as u64;
        // Hosts that do not support an option refuse it; the deadline still bounds the call.
        // Every timeout is bounded by the request's remaining deadline, so a stalled body ends
        // as a timeout (504) before the deadline rather than as a broken connection after it.
        let bound = |d: Duration| timeout.min(d).max(Duration::from_millis(1));
        let _ = options.set_connect_timeout(Some(nanos(bound(CONNECT_TIMEOUT))));
        let _ = options.set_first_byte_timeout(Some(nanos(bound(FIRST_BYTE_TIMEOUT))));
        let _ = options.set_between_bytes_timeout(Some(nanos(bound(BETWEEN_BYTES_TIMEOUT))));

        let future = outgoing_handler::handle(outgoing, Some(options)).map_err(net_error)?;
        if !req.body.is_empty() {
            let stream = body
                .write()
                .map_err(|_| local("body stream unavailable".into()))?;
            write_all(&stream, &req.body, timeout)
                .and_then(|()| flush(&stream, timeout))
                .map_err(|e| match e {
                    WriteError::Stalled => NetError::Timeout,
                    WriteError::Stream(e) => NetError::Broken(format!("request body: {e:?}")),
                })?;
        }
        OutgoingBody::finish(body, None).map_err(net_error)?;

        // The first-byte timeout bounds this too where the host supports it; the timer makes
        // sure of it.
        let mut timer = Timer::new(timeout);
        let response = loop {
            match future.get() {
                Some(Ok(Ok(resp))) => break resp,
                Some(Ok(Err(e))) => return Err(net_error(e)),
                Some(Err(())) => return Err(NetError::Other("response already taken".into())),
                None => {
                    if !timer.until(&future.subscribe()) {
                        return Err(NetError::Timeout);
                    }
                }
            }
        };
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let head = Head {
            status: http::StatusCode::from_u16(response.status())
                .unwrap_or(http::StatusCode::BAD_GATEWAY),
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

    fn open(&self, req: &Request, timeout: Duration) -> Result<(Head, SpinBody), NetError> {
        let started = Instant::now();
        let result = self.start(req, timeout);
        self.attempts.borrow_mut().push(Upstream {
            service: req.peer.name(),
            host: req.origin.authority(),
            status: result.as_ref().ok().map(|(h, _)| h.status.as_u16()),
            request_id: result
                .as_ref()
                .ok()
                .and_then(|(h, _)| upstream_request_id(h)),
            ms: started.elapsed().as_millis(),
        });
        let (head, body) = result?;
        let stream = body
            .stream()
            .map_err(|_| NetError::Other("response body stream unavailable".into()))?;
        let remaining = head.content_length();
        Ok((
            head,
            SpinBody {
                stream: Some(stream),
                body: Some(body),
                remaining,
            },
        ))
    }
}

/// The service's correlation id, for the log line.
fn upstream_request_id(head: &Head) -> Option<String> {
    head.header("x-ms-request-id")
        .or_else(|| head.header("x-ms-correlation-request-id"))
        .map(|id| crate::errors::truncate(id, 100))
}

/// An upstream body read in chunks. The stream must be dropped before its body.
pub(crate) struct SpinBody {
    stream: Option<InputStream>,
    body: Option<IncomingBody>,
    /// What is left of the announced `Content-Length`: once it has all arrived the body is
    /// complete, and neither the read that would report the end nor the trailers (six host
    /// calls) are needed.
    remaining: Option<u64>,
}

impl BodyReader for SpinBody {
    fn next_chunk(&mut self, wait: Duration) -> Result<Option<Vec<u8>>, NetError> {
        let Some(stream) = &self.stream else {
            return Ok(None);
        };
        if self.remaining == Some(0) {
            self.stream = None;
            self.body = None;
            return Ok(None);
        }
        let mut timer = Timer::new(wait);
        let read = loop {
            match stream.read(READ_CHUNK) {
                // Nothing yet: wait for bytes, or for the time to run out.
                Ok(bytes) if bytes.is_empty() => {
                    if !timer.until(&stream.subscribe()) {
                        return Err(NetError::Timeout);
                    }
                }
                other => break other,
            }
        };
        match read {
            Ok(bytes) => {
                if let Some(left) = &mut self.remaining {
                    *left = left.saturating_sub(bytes.len() as u64);
                }
                Ok(Some(bytes))
            }
            Err(StreamError::Closed) => {
                self.stream = None;
                // Trailers carry the outcome of a body that ended early on some hosts.
                if let Some(body) = self.body.take() {
                    let trailers = IncomingBody::finish(body);
                    if !timer.until(&trailers.subscribe()) {
                        return Err(NetError::Timeout);
                    }
                    if let Some(Ok(Err(e))) = trailers.get() {
                        return Err(match net_error(e) {
                            NetError::Timeout => NetError::Timeout,
                            other => NetError::Broken(format!("{other:?}")),
                        });
                    }
                }
                Ok(None)
            }
            Err(StreamError::LastOperationFailed(e)) => {
                self.stream = None;
                let text = e.to_debug_string();
                // A between-bytes timeout is a timeout, not a broken connection.
                if text.contains("Timeout") || text.contains("timed out") {
                    Err(NetError::Timeout)
                } else {
                    Err(NetError::Broken(text))
                }
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

/// A response whose body is written in pieces; dropped without [`StreamingResponse::finish`]
/// it is abandoned, which the host turns into a broken transfer.
pub(crate) struct StreamingResponse {
    stream: Option<OutputStream>,
    body: Option<OutgoingBody>,
}

impl StreamingResponse {
    pub(crate) fn start(
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
}

impl Sink for StreamingResponse {
    fn write(&mut self, bytes: &[u8], wait: Duration) -> Result<(), Stop> {
        match &self.stream {
            Some(s) => Ok(write_all(s, bytes, wait)?),
            None => Err(Stop::Gone),
        }
    }

    /// Completes the body normally; when the last bytes cannot be delivered within `wait` the
    /// body is abandoned instead.
    fn finish(&mut self, wait: Duration) -> Result<(), Stop> {
        let stream = self.stream.take().ok_or(Stop::Gone)?;
        flush(&stream, wait)?;
        drop(stream);
        let body = self.body.take().ok_or(Stop::Gone)?;
        OutgoingBody::finish(body, None).map_err(|_| Stop::Gone)
    }
}

impl Drop for StreamingResponse {
    fn drop(&mut self) {
        self.stream.take();
        self.body.take();
    }
}

/// Sends a complete response, waiting at most `wait` for the caller to take it; `false` when
/// its body could not be written (then it was abandoned, never finished as if complete).
pub(crate) fn respond(
    out: ResponseOutparam,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
    wait: Duration,
) -> bool {
    let Some(mut response) = StreamingResponse::start(out, status, headers) else {
        return false;
    };
    (body.is_empty() || response.write(body, wait).is_ok()) && response.finish(wait).is_ok()
}

/// Writes one line to stderr through `wasi:cli/stderr` itself: std's stderr goes through
/// wasi-libc's descriptor table, whose first use (in every instance: one per request) costs six
/// more host calls than the write.
pub(crate) fn log(line: &str) {
    let stderr = wasi::cli::stderr::get_stderr();
    let mut text = String::with_capacity(line.len() + 1);
    text.push_str(line);
    text.push('\n');
    // One call for a line up to the 4096 bytes `blocking-write-and-flush` takes. Spin's
    // stderr never holds a write back for long; the bound is only against a host that would.
    const LOG_WAIT: Duration = Duration::from_secs(5);
    let _ = match text.len() {
        ..=4096 => stderr
            .blocking_write_and_flush(text.as_bytes())
            .map_err(WriteError::from),
        _ => write_all(&stderr, text.as_bytes(), LOG_WAIT).and_then(|()| flush(&stderr, LOG_WAIT)),
    };
}

/// 16 random bytes as a UUID v4, for `x-ms-client-request-id` and the cache's lease owner.
pub(crate) fn request_id() -> String {
    let mut b = spin_sdk::wit::wasi::random0_2_0::random::get_random_bytes(16);
    b.resize(16, 0);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        id.push(char::from(HEX[usize::from(x >> 4)]));
        id.push(char::from(HEX[usize::from(x & 0xf)]));
    }
    id
}
