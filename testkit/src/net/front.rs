//! One HTTPS origin for a registry login server, as ACR serves it: the token service
//! (`/oauth2/*`) and the registry API (`/v2/*`) behind one name and certificate. A TLS-terminating
//! reverse proxy that routes by path prefix to plain-HTTP upstreams on loopback, streaming bodies
//! both ways and keeping the client's `Host`. Stops when dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

type Body = BoxBody<Bytes, hyper::Error>;

/// Requests whose path starts with `prefix` go to `upstream`.
#[derive(Clone, Debug)]
pub struct Route {
    pub prefix: &'static str,
    pub upstream: SocketAddr,
}

/// A running front. Stops (with every open connection) when dropped.
pub struct Front {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Front {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Front {
    /// Serves on `listener` (bound beforehand, so its port can go into the upstreams'
    /// configuration) with `tls`.
    pub fn start(
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        routes: Vec<Route>,
    ) -> Front {
        let addr = listener.local_addr().expect("front address");
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let routes = Arc::new(routes);
        let task = tokio::spawn(crate::net::accept::serve_each(listener, move |stream| {
            serve(stream, acceptor.clone(), routes.clone())
        }));
        Front { addr, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

async fn serve(stream: TcpStream, acceptor: tokio_rustls::TlsAcceptor, routes: Arc<Vec<Route>>) {
    let _ = stream.set_nodelay(true);
    let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
    else {
        return;
    };
    let svc = service_fn(move |req| forward(req, routes.clone()));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), svc)
        .await;
}

fn plain(status: u16, text: &str) -> hyper::Response<Body> {
    let mut resp = hyper::Response::new(
        Full::new(Bytes::from(text.to_string()))
            .map_err(|never: Infallible| -> hyper::Error { match never {} })
            .boxed(),
    );
    *resp.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

async fn forward(
    mut req: hyper::Request<Incoming>,
    routes: Arc<Vec<Route>>,
) -> Result<hyper::Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let Some(route) = routes.iter().find(|r| path.starts_with(r.prefix)) else {
        return Ok(plain(404, "404 page not found\n"));
    };
    req.headers_mut().insert(
        "x-forwarded-proto",
        hyper::header::HeaderValue::from_static("https"),
    );
    let upstream = async {
        let stream = TcpStream::connect(route.upstream).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Incoming>(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(sender.send_request(req).await?)
    };
    Ok(match upstream.await {
        Ok(resp) => resp.map(BodyExt::boxed),
        Err(e) => plain(502, &format!("upstream {path}: {e}\n")),
    })
}
