//! Tiny shared server plumbing for the fakes: hyper 1 (HTTP/1.1) on tokio, optional TLS
//! (tokio-rustls), request recording and scripted faults.
//!
//! A [`FakeServer`] binds `127.0.0.1:0`, records every request it reads (accepted or refused),
//! answers the next queued [`Fault`] if any (one fault per request, before normal logic), else
//! calls its handler. Dropping it aborts the accept loop and every open connection.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A request as a fake saw it. Header names lowercased. Query pairs percent-decoded, in order.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// The path as sent (not percent-decoded), without the query.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: std::time::Instant,
    /// Status answered; `None` when no response was sent (`Fault::Hang` / `Fault::DropConnection`).
    pub status: Option<u16>,
}

impl Recorded {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// First value of query parameter `name` (case-sensitive, like Azure services).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
    pub fn bearer(&self) -> Option<&str> {
        let v = self.header("authorization")?;
        let (scheme, token) = v.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
            Some(token.trim())
        } else {
            None
        }
    }

    /// The body parsed as `application/x-www-form-urlencoded`, pairs in order.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }

    /// The body as (lossy) UTF-8.
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Scripted faults: a fake answers the next queued fault instead of its normal logic.
#[derive(Clone, Debug)]
pub enum Fault {
    Status {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Accept, read the request, never answer (until the fake is dropped).
    Hang,
    /// Close the socket without a response.
    DropConnection,
    /// Answer `status` with a body of `bytes` spaces (and its `Content-Length`), one byte every
    /// `every`: each read arrives in time, the whole body does not.
    Trickle {
        status: u16,
        bytes: usize,
        every: Duration,
    },
    /// Answer normally, but only after this long (a slow upstream).
    Delay(Duration),
}

impl Fault {
    /// `Fault::Status` with a JSON body and `Content-Type: application/json; charset=utf-8`.
    pub fn json(status: u16, body: &Value) -> Fault {
        Fault::Status {
            status,
            headers: vec![(
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: body.to_string(),
        }
    }

    /// A status with `Retry-After: {secs}` and an empty body.
    pub fn retry_after(status: u16, secs: u64) -> Fault {
        Fault::Status {
            status,
            headers: vec![("retry-after".into(), secs.to_string())],
            body: String::new(),
        }
    }
}

/// A response a fake handler gives.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// JSON body, `Content-Type: application/json; charset=utf-8`.
    pub fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            headers: vec![(
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: serde_json::to_vec(body).expect("json"),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }
}

/// The handler of a fake: pure function of the recorded request.
pub type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

#[derive(Default)]
struct ServerState {
    requests: Mutex<Vec<Recorded>>,
    faults: Mutex<VecDeque<Fault>>,
    /// Connections accepted (TLS handshakes completed, for a TLS server).
    connections: std::sync::atomic::AtomicU64,
}

/// A running fake server (see module docs). Stops when dropped.
pub struct FakeServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
    task: JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    /// Binds `127.0.0.1:0` and serves HTTP/1.1 (over TLS when `tls` is given) on the current
    /// tokio runtime.
    pub async fn start(tls: Option<Arc<rustls::ServerConfig>>, handler: Handler) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(ServerState::default());
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let served = state.clone();
        let task = tokio::spawn(crate::net::accept::serve_each(listener, move |stream| {
            serve_conn(stream, acceptor.clone(), handler.clone(), served.clone())
        }));
        FakeServer { addr, state, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far (for a TLS server: completed handshakes).
    pub fn connections(&self) -> u64 {
        self.state
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every request read so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn push_fault(&self, f: Fault) {
        self.state.faults.lock().unwrap().push_back(f);
    }

    /// Faults still queued.
    pub fn pending_faults(&self) -> usize {
        self.state.faults.lock().unwrap().len()
    }

    /// Forget recorded requests (queued faults stay).
    pub fn clear(&self) {
        self.state.requests.lock().unwrap().clear();
    }
}

async fn serve_conn(
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handler: Handler,
    state: Arc<ServerState>,
) {
    let _ = stream.set_nodelay(true);
    let counter = state.clone();
    let svc = service_fn(move |req| handle(req, handler.clone(), state.clone()));
    let builder = hyper::server::conn::http1::Builder::new();
    let count = || {
        counter
            .connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    };
    match tls {
        None => {
            count();
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        }
        Some(acceptor) => {
            let Ok(Ok(tls_stream)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
            else {
                return;
            };
            count();
            let _ = builder
                .serve_connection(TokioIo::new(tls_stream), svc)
                .await;
        }
    }
}

#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("scripted fault: drop connection")
    }
}

impl std::error::Error for DropConnection {}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// A body that yields one space every `every`, `remaining` times.
struct Trickle {
    remaining: usize,
    every: Duration,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Body for Trickle {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.remaining == 0 {
            return std::task::Poll::Ready(None);
        }
        std::task::ready!(std::future::Future::poll(self.sleep.as_mut(), cx));
        let next = tokio::time::Instant::now() + self.every;
        self.sleep.as_mut().reset(next);
        self.remaining -= 1;
        std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b" ")))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining as u64)
    }
}

async fn handle(
    req: hyper::Request<Incoming>,
    handler: Handler,
    state: Arc<ServerState>,
) -> Result<hyper::Response<ResponseBody>, BoxError> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let query = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut rec = Recorded {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query,
        headers,
        body: body.to_vec(),
        at: Instant::now(),
        status: None,
    };
    let fault = state.faults.lock().unwrap().pop_front();
    let reply = match fault {
        Some(Fault::Hang) => {
            state.requests.lock().unwrap().push(rec);
            std::future::pending::<Infallible>().await;
            unreachable!("pending never completes")
        }
        Some(Fault::DropConnection) => {
            state.requests.lock().unwrap().push(rec);
            return Err(Box::new(DropConnection));
        }
        Some(Fault::Trickle {
            status,
            bytes,
            every,
        }) => {
            rec.status = Some(status);
            state.requests.lock().unwrap().push(rec);
            let body = Trickle {
                remaining: bytes,
                every,
                sleep: Box::pin(tokio::time::sleep(every)),
            };
            return Ok(hyper::Response::builder()
                .status(status)
                .header("content-length", bytes.to_string())
                .body(UnsyncBoxBody::new(body))?);
        }
        Some(Fault::Status {
            status,
            headers,
            body,
        }) => Reply {
            status,
            headers,
            body: body.into_bytes(),
        },
        Some(Fault::Delay(pause)) => {
            tokio::time::sleep(pause).await;
            handler(&rec)
        }
        None => handler(&rec),
    };
    rec.status = Some(reply.status);
    state.requests.lock().unwrap().push(rec);
    let mut resp = hyper::Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        resp = resp.header(k.as_str(), v.as_str());
    }
    let body = Full::new(Bytes::from(reply.body)).map_err(|never| match never {});
    Ok(resp.body(UnsyncBoxBody::new(body))?)
}

/// A reqwest client (rustls, ring) trusting only `ca_pem`, with `resolve` overrides like
/// /etc/hosts (name -> address; the port in the URL is ignored by reqwest for overrides, so
/// give the fake's real port in the URL). No proxy, no redirects.
pub fn client_trusting(ca_pem: &str, resolve: &[(&str, SocketAddr)]) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA pem"))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30));
    for (name, addr) in resolve {
        b = b.resolve(name, *addr);
    }
    b.build().expect("reqwest client")
}
