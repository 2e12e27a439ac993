//! Blob Storage's authentication and authorization of bearer tokens, in front of Azurite.
//!
//! Azurite with `--oauth basic` checks no signature, no tenant and no role: any
//! storage-audience token from any tenant reads every account. This HTTPS front holds what the
//! real service holds — which tenant each account belongs to and who has a data role on it —
//! and answers as Storage does before passing a request on to Azurite (over HTTPS, streaming
//! both ways, one upstream connection per client connection):
//!
//! | check (bearer requests to a known account) | status | `x-ms-error-code` / `AuthenticationErrorDetail` |
//! |---|---|---|
//! | signature by a trusted key (RS256) | 401 | `InvalidAuthenticationInfo` / "Signature validation failed." |
//! | `iss` (v1 or v2) and `tid` of the account's tenant | 401 | `InvalidAuthenticationInfo` / "Issuer validation failed. Issuer did not match." |
//! | `oid` holds a data role on the account | 403 | `AuthorizationPermissionMismatch` |
//!
//! A 401 carries `WWW-Authenticate: Bearer authorization_uri=https://login.microsoftonline.com/{account
//! tenant}/oauth2/authorize resource_id=https://storage.azure.com`; every refusal is an XML
//! `<Error>` with `Code` and `Message` (`RequestId:`/`Time:` lines), `x-ms-request-id` and
//! `Content-Type: application/xml`, the shapes Storage answers. Audience and lifetime are left to
//! Azurite, which checks them (403 `AuthenticationFailed`). Requests without a bearer token,
//! and to accounts the gate does not know, go to Azurite unchecked. Stops when dropped.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::trust::jwt::{self, Verifier};
use crate::trust::pki::TestPki;

type Body = BoxBody<Bytes, hyper::Error>;
type Sender = hyper::client::conn::http1::SendRequest<Incoming>;

/// The resource of Storage's 401 challenge.
pub const RESOURCE: &str = "https://storage.azure.com";

/// One storage account as Storage knows it.
#[derive(Clone, Debug)]
pub struct StorageAccount {
    pub name: String,
    pub tenant_id: String,
    /// Object ids holding a blob data role (Storage Blob Data Reader) on the account.
    pub readers: Vec<String>,
}

/// A refusal the gate answered (the request never reached Azurite).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub account: String,
    pub status: u16,
    pub code: String,
    /// The token's `tid` (empty when it had none or could not be read).
    pub tid: String,
}

struct State {
    accounts: Mutex<HashMap<String, StorageAccount>>,
    trusted: Vec<Verifier>,
    upstream: SocketAddr,
    connector: tokio_rustls::TlsConnector,
    refusals: Mutex<Vec<Refusal>>,
    /// Requests passed on to Azurite.
    passed: Mutex<u64>,
}

/// A running gate. Stops (with every open connection) when dropped.
pub struct StorageGate {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for StorageGate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StorageGate {
    /// Serves HTTPS for 127.0.0.1 (a certificate of `pki`) in front of Azurite on `upstream`
    /// (HTTPS with a certificate of the same CA), trusting tokens signed by `trusted`.
    pub async fn start(
        pki: &TestPki,
        upstream: SocketAddr,
        trusted: Vec<Verifier>,
        accounts: Vec<StorageAccount>,
    ) -> StorageGate {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca_der()).expect("CA certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let state = Arc::new(State {
            accounts: Mutex::new(accounts.into_iter().map(|a| (a.name.clone(), a)).collect()),
            trusted,
            upstream,
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
            refusals: Mutex::new(Vec::new()),
            passed: Mutex::new(0),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind gate");
        let addr = listener.local_addr().expect("gate address");
        let acceptor = tokio_rustls::TlsAcceptor::from(pki.rustls_server_config(&["127.0.0.1"]));
        let st = state.clone();
        let task = tokio::spawn(crate::net::accept::serve_each(listener, move |stream| {
            serve(stream, acceptor.clone(), st.clone())
        }));
        StorageGate { addr, state, task }
    }

    /// "https://127.0.0.1:PORT" (origin).
    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Who holds a data role on `account` from now on.
    pub fn set_readers(&self, account: &str, readers: Vec<String>) {
        self.state
            .accounts
            .lock()
            .unwrap()
            .get_mut(account)
            .unwrap_or_else(|| panic!("set_readers: no account {account}"))
            .readers = readers;
    }

    /// Every refusal so far, in order.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.state.refusals.lock().unwrap().clone()
    }

    /// Requests passed on to Azurite so far.
    pub fn passed(&self) -> u64 {
        *self.state.passed.lock().unwrap()
    }
}

async fn serve(stream: TcpStream, acceptor: tokio_rustls::TlsAcceptor, state: Arc<State>) {
    let _ = stream.set_nodelay(true);
    let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
    else {
        return;
    };
    // One upstream connection per client connection, opened at its first request: HTTP/1
    // serves a connection's requests one after another, so it is never shared.
    let upstream: Arc<tokio::sync::Mutex<Option<Sender>>> = Arc::default();
    let svc = service_fn(move |req| handle(req, state.clone(), upstream.clone()));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), svc)
        .await;
}

fn full(status: u16, headers: Vec<(&str, String)>, body: String) -> hyper::Response<Body> {
    let mut resp = hyper::Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never: Infallible| -> hyper::Error { match never {} })
            .boxed(),
    );
    *resp.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
    for (name, value) in headers {
        resp.headers_mut().insert(
            hyper::header::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            hyper::header::HeaderValue::from_str(&value).expect("header value"),
        );
    }
    resp
}

/// Storage's error answer: XML `<Error>`, `x-ms-error-code`, `x-ms-request-id`.
fn storage_error(
    status: u16,
    code: &str,
    message: &str,
    detail: Option<&str>,
    challenge_tenant: Option<&str>,
) -> hyper::Response<Body> {
    let request_id = crate::trust::ids::uuid();
    let time = iso8601_now();
    let detail = detail
        .map(|d| format!("<AuthenticationErrorDetail>{d}</AuthenticationErrorDetail>"))
        .unwrap_or_default();
    let body = format!(
        "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}\nRequestId:{request_id}\nTime:{time}</Message>{detail}</Error>"
    );
    let mut headers = vec![
        ("content-type", "application/xml".to_string()),
        (
            "server",
            "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0".to_string(),
        ),
        ("x-ms-request-id", request_id),
        (
            "x-ms-version",
            crate::launchers::azurite::X_MS_VERSION.to_string(),
        ),
        ("x-ms-error-code", code.to_string()),
        (
            "date",
            httpdate::fmt_http_date(std::time::SystemTime::now()),
        ),
    ];
    if let Some(tenant) = challenge_tenant {
        headers.push((
            "www-authenticate",
            format!(
                "Bearer authorization_uri=https://login.microsoftonline.com/{tenant}/oauth2/authorize resource_id={RESOURCE}"
            ),
        ));
    }
    full(status, headers, body)
}

const AUTH_MESSAGE: &str =
    "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.";
const PERMISSION_MESSAGE: &str =
    "This request is not authorized to perform this operation using this permission.";

/// Storage's verdict on a bearer token for `account`: None lets the request through.
fn check(
    state: &State,
    account: &StorageAccount,
    token: &str,
) -> Option<(hyper::Response<Body>, Refusal)> {
    let tenant = account.tenant_id.as_str();
    let refusal = |status: u16, code: &str, tid: &str| Refusal {
        account: account.name.clone(),
        status,
        code: code.to_string(),
        tid: tid.to_string(),
    };
    let claims = match jwt::verify(token, &state.trusted) {
        Ok(c) => c,
        Err(_) => {
            let tid = jwt::decode_unverified(token)
                .and_then(|c| c.get("tid").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_default();
            return Some((
                storage_error(
                    401,
                    "InvalidAuthenticationInfo",
                    AUTH_MESSAGE,
                    Some("Signature validation failed."),
                    Some(tenant),
                ),
                refusal(401, "InvalidAuthenticationInfo", &tid),
            ));
        }
    };
    let tid = claims.get("tid").and_then(Value::as_str).unwrap_or("");
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    let issuers = [
        format!("https://sts.windows.net/{tenant}/"),
        format!("https://login.microsoftonline.com/{tenant}/v2.0"),
    ];
    if !tid.eq_ignore_ascii_case(tenant) || !issuers.iter().any(|i| i.eq_ignore_ascii_case(iss)) {
        return Some((
            storage_error(
                401,
                "InvalidAuthenticationInfo",
                AUTH_MESSAGE,
                Some("Issuer validation failed. Issuer did not match."),
                Some(tenant),
            ),
            refusal(401, "InvalidAuthenticationInfo", tid),
        ));
    }
    let oid = claims.get("oid").and_then(Value::as_str).unwrap_or("");
    if !account.readers.iter().any(|r| r.eq_ignore_ascii_case(oid)) {
        return Some((
            storage_error(
                403,
                "AuthorizationPermissionMismatch",
                PERMISSION_MESSAGE,
                None,
                None,
            ),
            refusal(403, "AuthorizationPermissionMismatch", tid),
        ));
    }
    None
}

async fn handle(
    req: hyper::Request<Incoming>,
    state: Arc<State>,
    upstream: Arc<tokio::sync::Mutex<Option<Sender>>>,
) -> Result<hyper::Response<Body>, Infallible> {
    let name = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let account = state.accounts.lock().unwrap().get(&name).cloned();
    let bearer = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    if let (Some(account), Some(token)) = (account, bearer) {
        if let Some((resp, refusal)) = check(&state, &account, &token) {
            state.refusals.lock().unwrap().push(refusal);
            return Ok(resp);
        }
    }
    *state.passed.lock().unwrap() += 1;
    Ok(match forward(req, &state, &upstream).await {
        Ok(resp) => resp.map(BodyExt::boxed),
        Err(e) => full(
            502,
            vec![("content-type", "text/plain; charset=utf-8".into())],
            format!("storage gate: Azurite: {e}\n"),
        ),
    })
}

async fn forward(
    req: hyper::Request<Incoming>,
    state: &State,
    upstream: &tokio::sync::Mutex<Option<Sender>>,
) -> Result<hyper::Response<Incoming>, Box<dyn std::error::Error + Send + Sync>> {
    let mut slot = upstream.lock().await;
    let reusable = match slot.as_mut() {
        Some(sender) => sender.ready().await.is_ok(),
        None => false,
    };
    if !reusable {
        let stream = TcpStream::connect(state.upstream).await?;
        let _ = stream.set_nodelay(true);
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?;
        let tls = state.connector.connect(name, stream).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        *slot = Some(sender);
    }
    let sender = slot.as_mut().expect("an upstream connection");
    Ok(sender.send_request(req).await?)
}

/// Now as Storage writes it in `Time:` (`2025-01-02T03:04:05.0000000Z`).
fn iso8601_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z"
        ))
        .expect("now formats")
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_as_storage_writes_it() {
        // `2025-01-02T03:04:05.0000000Z`: seven digits of fraction, UTC.
        let t = super::iso8601_now();
        assert_eq!(t.len(), 28, "{t}");
        assert!(
            t.ends_with('Z') && &t[10..11] == "T" && &t[19..20] == ".",
            "{t}"
        );
        assert!(t[20..27].bytes().all(|b| b.is_ascii_digit()), "{t}");
    }
}
