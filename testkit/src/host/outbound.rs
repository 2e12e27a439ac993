//! Outbound HTTP for the guest (`wasi:http/outgoing-handler`): Spin's allow-list check, then a
//! pooled hyper HTTP/1.1 client (keep-alive, as Spin's) with the test's name mapping and CA. Structure copied from
//! wasmtime-wasi-http's `default_send_request`; error codes as Spin 3.6.3 reports them.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::p2::bindings::http::types::{DnsErrorPayload, ErrorCode};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::logs::LogSink;
use super::OutboundRecord;
use crate::spin_rules::allowed::{self, AllowedList};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

type Sender = hyper::client::conn::http1::SendRequest<WasiBody>;

/// Keep-alive connections (TLS sessions included) by scheme, host and port: Spin 3.6.3 pools
/// outbound connections across requests and instances of an app (`connection_pooling_enabled`
/// defaults to true), so a warm request does not pay a TCP and TLS handshake.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<(bool, String, u16), Vec<Sender>>>,
    opened: std::sync::atomic::AtomicU64,
}

impl Pool {
    /// A connection that is open and has no request in flight.
    fn take(&self, key: &(bool, String, u16)) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap();
        let list = idle.get_mut(key)?;
        list.retain(|s| !s.is_closed());
        let at = list.iter().position(|s| s.is_ready())?;
        Some(list.swap_remove(at))
    }

    /// Back into the pool (it becomes ready once its response body has been read).
    fn put(&self, key: (bool, String, u16), sender: Sender) {
        if !sender.is_closed() {
            self.idle
                .lock()
                .unwrap()
                .entry(key)
                .or_default()
                .push(sender);
        }
    }

    /// Connections opened so far (TCP + TLS handshakes).
    pub(crate) fn opened(&self) -> u64 {
        self.opened.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Everything outbound requests of every instance share.
pub(crate) struct Outbound {
    pub component_id: String,
    /// Renders `allowed_outbound_hosts` for each instance, as Spin's outbound-networking factor.
    pub resolver: Arc<crate::spin_rules::variables::Resolver>,
    pub tls: TlsConfigs,
    pub hosts: HashMap<String, IpAddr>,
    pub records: Arc<Mutex<Vec<OutboundRecord>>>,
    pub logs: LogSink,
    pub pool: Pool,
    /// Spin's `connection_pooling_enabled` (true unless `[outbound_http]` turns it off).
    pub pooling: bool,
}

/// The `WasiHttpHooks` of one instance.
pub(crate) struct OutboundHooks {
    pub shared: Arc<Outbound>,
    /// The instance's allow-list, made at its first outbound request (Spin's per-instance
    /// shared future: every app variable resolved, every entry rendered and parsed). Spin logs a
    /// failure once per instance, when it is made.
    pub allowed: Option<AllowedList>,
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        let mut request = request;
        set_host_header(&mut request);
        let shared = self.shared.clone();
        let uri = request.uri().clone();
        let allowed = self.allowed.get_or_insert_with(|| {
            let list = shared.resolver.allowed_hosts();
            if let Err(err) = &list {
                shared.logs.host(&format!(
                    "ERROR Error parsing allowed outbound hosts (component {:?}): {err}",
                    shared.component_id
                ));
            }
            list
        });
        let denied = match allowed {
            Err(_) => true,
            Ok(list) => {
                let ok = allowed::allows(list, &uri);
                if !ok {
                    let scheme = uri.scheme_str().unwrap_or("https");
                    let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
                    shared.logs.line(&format!(
                        "A component tried to make an outbound network connection to disallowed destination '{scheme}://{authority}'."
                    ));
                    shared.logs.line(&format!(
                        "To allow this request, add '{scheme}://{authority}' to the allowed outbound hosts config."
                    ));
                }
                !ok
            }
        };
        shared.records.lock().unwrap().push(OutboundRecord {
            method: request.method().to_string(),
            url: uri.to_string(),
            headers: request
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            denied,
        });
        if denied {
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        Box::new(async move {
            let (resp, io) = send(shared, request, options).await?;
            Ok((
                resp.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// Spin drops the guest's `host` header and hyper-util puts back `host[:port]`, the port only
/// when it is not the scheme's default.
fn set_host_header(request: &mut http::Request<WasiBody>) {
    let uri = request.uri();
    let Some(host) = uri.host() else {
        return;
    };
    let default = match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    };
    let value = match uri.port_u16() {
        Some(p) if Some(p) != default => format!("{host}:{p}"),
        _ => host.to_string(),
    };
    if let Ok(v) = http::HeaderValue::from_str(&value) {
        request.headers_mut().insert(http::header::HOST, v);
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

fn dns_error(rcode: &str) -> Error {
    Error::DnsError {
        rcode: Some(rcode.to_string()),
        info_code: Some(0),
    }
}

async fn resolve(
    hosts: &HashMap<String, IpAddr>,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, Error> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Some(ip) = hosts
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(bare))
        .map(|(_, ip)| *ip)
    {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    // RFC 6761/2606 names that can never resolve: fail here instead of asking the resolver.
    let lower = bare.to_ascii_lowercase();
    if [".invalid", ".test", ".example"]
        .iter()
        .any(|tld| lower.ends_with(tld) || lower == tld[1..])
    {
        return Err(dns_error("address not available"));
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|_| dns_error("address not available"))?
        .collect();
    if addrs.is_empty() {
        return Err(dns_error("address not available"));
    }
    Ok(addrs)
}

fn first_non_loopback(addrs: &[SocketAddr]) -> Option<SocketAddr> {
    addrs.iter().find(|a| !a.ip().is_loopback()).copied()
}

async fn send(
    shared: Arc<Outbound>,
    mut req: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<
    (
        http::Response<IncomingResponseBody>,
        impl Future<Output = Result<(), Error>> + Send,
    ),
    Error,
> {
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let between_bytes_timeout = options
        .and_then(|o| o.between_bytes_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);

    let uri = req.uri().clone();
    let use_tls = uri.scheme() == Some(&Scheme::HTTPS);
    let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?.to_string();
    let port = uri.port_u16().unwrap_or(if use_tls { 443 } else { 80 });
    let addrs = resolve(&shared.hosts, &host, port).await?;
    // Tests talk to this machine only: never open a connection anywhere else (e.g. the real
    // IMDS address or a cloud endpoint a test forgot to point at a fake).
    if let Some(far) = first_non_loopback(&addrs) {
        shared.logs.host(&format!(
            "refusing outbound connection to non-loopback address {far} ({host}:{port}): \
             point the endpoint at a local fake or map the name in HostConfig.hosts"
        ));
        return Err(Error::ConnectionRefused);
    }

    let key = (use_tls, host.to_ascii_lowercase(), port);
    let pooled = match shared.pooling {
        true => shared.pool.take(&key),
        false => None,
    };
    let mut sender = match pooled {
        Some(sender) => sender,
        None => connect(&shared, &host, port, &addrs, use_tls, connect_timeout).await?,
    };

    // The request line carries only path and query (not addressing a proxy).
    *req.uri_mut() = http::Uri::builder()
        .path_and_query(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;

    let res = tokio::time::timeout(first_byte_timeout, sender.send_request(req))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)?
        .map_err(Error::from)?;
    if shared.pooling {
        shared.pool.put(key, sender);
    }
    let between = if between_bytes_timeout.is_zero() {
        Duration::from_nanos(1)
    } else {
        between_bytes_timeout
    };
    let mut timeout = tokio::time::interval(between);
    timeout.reset();
    let res = res.map(|incoming| IncomingResponseBody { incoming, timeout });
    Ok((res, async { Ok::<(), Error>(()) }))
}

/// A new connection (TCP, TLS when https, HTTP/1.1 handshake); its driver runs as a task so
/// the connection outlives the request and can be pooled.
async fn connect(
    shared: &Outbound,
    host: &str,
    port: u16,
    addrs: &[SocketAddr],
    use_tls: bool,
    connect_timeout: Duration,
) -> Result<Sender, Error> {
    let tcp = match tokio::time::timeout(connect_timeout, TcpStream::connect(addrs)).await {
        Err(_) => return Err(Error::ConnectionTimeout),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
            return Err(dns_error("address not available"))
        }
        Ok(Err(e)) => {
            shared.logs.host(&format!(
                "outbound connect to {host}:{port} ({addrs:?}) failed: {e}"
            ));
            return Err(Error::ConnectionRefused);
        }
        Ok(Ok(s)) => s,
    };

    let stream: Box<dyn Io> = if use_tls {
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let name = rustls::pki_types::ServerName::try_from(bare)
            .map_err(|_| dns_error("invalid dns name"))?;
        let connector = tokio_rustls::TlsConnector::from(shared.tls.for_host(host));
        match tokio::time::timeout(connect_timeout, connector.connect(name, tcp)).await {
            Err(_) => return Err(Error::ConnectionTimeout),
            Ok(Err(e)) => {
                shared.logs.host(&format!(
                    "outbound TLS handshake with {host}:{port} failed: {e}"
                ));
                // Spin 3.6.3 reports every TLS connect failure (untrusted certificate included)
                // as tls-protocol-error.
                return Err(Error::TlsProtocolError);
            }
            Ok(Ok(s)) => Box::new(s),
        }
    } else {
        Box::new(tcp)
    };

    let (sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;

    shared
        .pool
        .opened
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// The response body, with the between-bytes timeout (`connection-read-timeout`, as Spin).
struct IncomingResponseBody {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
}

impl Body for IncomingResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(if e.is_timeout() {
                Error::HttpResponseTimeout
            } else {
                Error::from(e)
            }))),
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.timeout.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

/// The TLS client configs of the component, by host name, as Spin picks them: a host listed in
/// one of its `[[client_tls]]` entries (the first entry naming it wins; every port) trusts that
/// entry's roots; every other host gets the default. The default here is `ca_pem`, standing in
/// for the public (webpki) roots Spin trusts by default, which no test certificate chains to.
pub(crate) struct TlsConfigs {
    by_host: HashMap<String, Arc<rustls::ClientConfig>>,
    default: Arc<rustls::ClientConfig>,
}

impl TlsConfigs {
    pub(crate) fn new(
        ca_pem: Option<&str>,
        client_tls: &[crate::spin_rules::LoadedClientTls],
    ) -> anyhow::Result<TlsConfigs> {
        let public_roots = pem_roots(ca_pem)?;
        let mut by_host = HashMap::new();
        for tls in client_tls {
            let mut roots = tls.roots.clone();
            if tls.entry.use_webpki_roots {
                roots.extend(public_roots.iter().cloned());
            }
            let client_auth = tls
                .client_auth
                .as_ref()
                .map(|(chain, key)| (chain.clone(), key.clone_key()));
            let config = client_config(roots, client_auth).map_err(|e| {
                anyhow::anyhow!(
                    "failed to parse [[client_tls]] table: error building TLS client config: {e}"
                )
            })?;
            for host in &tls.entry.hosts {
                by_host
                    .entry(host.clone())
                    .or_insert_with(|| config.clone());
            }
        }
        Ok(TlsConfigs {
            by_host,
            default: client_config(public_roots, None)?,
        })
    }

    /// Spin matches the request URI's host exactly (no port).
    fn for_host(&self, host: &str) -> Arc<rustls::ClientConfig> {
        self.by_host.get(host).unwrap_or(&self.default).clone()
    }
}

fn pem_roots(
    ca_pem: Option<&str>,
) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let Some(pem) = ca_pem else {
        return Ok(Vec::new());
    };
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("bad ca_pem: {e:?}"))?;
    anyhow::ensure!(!certs.is_empty(), "ca_pem contains no CERTIFICATE block");
    Ok(certs)
}

type ClientAuth = (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
);

/// A rustls client config trusting exactly `roots` (none: nothing is trusted).
fn client_config(
    roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    client_auth: Option<ClientAuth>,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut store = rustls::RootCertStore::empty();
    for cert in roots {
        store.add(cert)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(store);
    let config = match client_auth {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// `wasi:http/types.http-error-code` as Spin 3.6.3 answers it. wasmtime-wasi-http 48 stores
/// response-body failures as its own `Error` and then only recognises a p2 `ErrorCode`, so a
/// guest would always get `none`; Spin (whose bodies carry `ErrorCode`s) reports the code.
pub(crate) fn io_error_code(e: &wasmtime::Error) -> Option<ErrorCode> {
    if let Some(code) = e.downcast_ref::<ErrorCode>() {
        return Some(code.clone());
    }
    let err = e.downcast_ref::<Error>()?;
    Some(match err {
        Error::Hyper(h) => {
            use std::error::Error as _;
            match h.source().and_then(|s| s.downcast_ref::<ErrorCode>()) {
                Some(code) => code.clone(),
                None if h.is_timeout() => ErrorCode::HttpResponseTimeout,
                None => ErrorCode::HttpProtocolError,
            }
        }
        Error::Connect(_) => ErrorCode::ConnectionRefused,
        Error::Tls(_) => ErrorCode::TlsProtocolError,
        Error::HttpRequestBodySize(n) => ErrorCode::HttpRequestBodySize(*n),
        Error::DnsTimeout => ErrorCode::DnsTimeout,
        Error::DnsError { rcode, info_code } => ErrorCode::DnsError(DnsErrorPayload {
            rcode: rcode.clone(),
            info_code: *info_code,
        }),
        Error::DestinationNotFound => ErrorCode::DestinationNotFound,
        Error::DestinationUnavailable => ErrorCode::DestinationUnavailable,
        Error::DestinationIpProhibited => ErrorCode::DestinationIpProhibited,
        Error::DestinationIpUnroutable => ErrorCode::DestinationIpUnroutable,
        Error::ConnectionRefused => ErrorCode::ConnectionRefused,
        Error::ConnectionTerminated => ErrorCode::ConnectionTerminated,
        Error::ConnectionTimeout => ErrorCode::ConnectionTimeout,
        Error::ConnectionReadTimeout => ErrorCode::ConnectionReadTimeout,
        Error::ConnectionWriteTimeout => ErrorCode::ConnectionWriteTimeout,
        Error::ConnectionLimitReached => ErrorCode::ConnectionLimitReached,
        Error::TlsProtocolError => ErrorCode::TlsProtocolError,
        Error::TlsCertificateError => ErrorCode::TlsCertificateError,
        Error::HttpRequestDenied => ErrorCode::HttpRequestDenied,
        Error::HttpRequestUriInvalid => ErrorCode::HttpRequestUriInvalid,
        Error::HttpResponseIncomplete => ErrorCode::HttpResponseIncomplete,
        Error::HttpResponseBodySize(n) => ErrorCode::HttpResponseBodySize(*n),
        Error::HttpResponseTimeout => ErrorCode::HttpResponseTimeout,
        Error::HttpProtocolError => ErrorCode::HttpProtocolError,
        Error::InternalError(m) => ErrorCode::InternalError(m.clone()),
        other => ErrorCode::InternalError(Some(other.to_string())),
    })
}

/// Replaces wasmtime-wasi-http's `http-error-code` (see [`io_error_code`]).
pub(crate) fn shadow_http_error_code<T: 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    table: fn(&mut T) -> &mut wasmtime::component::ResourceTable,
) -> wasmtime::Result<()> {
    use wasmtime::component::Resource;
    linker.allow_shadowing(true);
    // The version wasmtime-wasi-http 48 defines; guests importing any 0.2.x resolve to it.
    linker.instance("wasi:http/types@0.2.12")?.func_wrap(
        "http-error-code",
        move |mut store: wasmtime::StoreContextMut<'_, T>, (err,): (Resource<wasmtime::Error>,)| {
            let e = table(store.data_mut()).get(&err)?;
            Ok((io_error_code(e),))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_and_addresses() {
        let hosts = HashMap::from([("Vault.Test".to_string(), IpAddr::from([127, 0, 0, 1]))]);
        let a = resolve(&hosts, "vault.test", 8443).await.unwrap();
        assert_eq!(a, vec!["127.0.0.1:8443".parse().unwrap()]);
        let a = resolve(&hosts, "[::1]", 80).await.unwrap();
        assert_eq!(a, vec!["[::1]:80".parse().unwrap()]);
        for never in ["unset.invalid", "other.test", "x.example", "invalid"] {
            assert!(
                matches!(
                    resolve(&hosts, never, 80).await,
                    Err(Error::DnsError { .. })
                ),
                "{never}"
            );
        }
        let far: Vec<SocketAddr> = vec![
            "127.0.0.1:1".parse().unwrap(),
            "169.254.169.254:80".parse().unwrap(),
        ];
        assert_eq!(first_non_loopback(&far), Some(far[1]));
        assert_eq!(first_non_loopback(&far[..1]), None);
        assert_eq!(first_non_loopback(&["[::1]:1".parse().unwrap()]), None);
    }

    #[test]
    fn host_header_like_hyper_util() {
        for (url, want) in [
            ("https://a.test:443/x", "a.test"),
            ("https://a.test:8443/x", "a.test:8443"),
            ("http://a.test:80/", "a.test"),
            ("http://127.0.0.1:9/", "127.0.0.1:9"),
        ] {
            let mut req = http::Request::builder()
                .uri(url)
                .header("host", "guest-set")
                .body(WasiBody::default())
                .unwrap();
            set_host_header(&mut req);
            assert_eq!(req.headers()["host"], want, "{url}");
        }
    }

    #[test]
    fn body_errors_map_to_spin_codes() {
        let e = wasmtime::Error::from(Error::ConnectionReadTimeout);
        assert!(matches!(
            io_error_code(&e),
            Some(ErrorCode::ConnectionReadTimeout)
        ));
        let e = wasmtime::Error::from(ErrorCode::HttpResponseIncomplete);
        assert!(matches!(
            io_error_code(&e),
            Some(ErrorCode::HttpResponseIncomplete)
        ));
        assert!(io_error_code(&wasmtime::Error::msg("other")).is_none());
    }
}
