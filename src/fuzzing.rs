//! The one public door, for the fuzz targets in `fuzz/`: every parser of outside input and the
//! whole request decision, with plain types so the crate's modules can stay private. Not an
//! API for anything else.

use crate::identity::store::Store;
use crate::net::clock::fake::FakeClock;
use crate::net::clock::Clock;
use crate::net::upstream::scripted::Chunks;
use crate::net::upstream::{self, BodyReader, Head, NetError, Request, Response, Transport};
use crate::request::app::{self, Platform, Reply};
use crate::request::log::RequestLine;
use crate::request::routes::Incoming;
use http::StatusCode;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

/// A problem as a caller would see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemFields {
    pub status: u16,
    pub code: String,
    pub title: String,
    pub detail: String,
    pub retry_after: Option<u64>,
    /// The rendered body and headers.
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl From<crate::errors::Problem> for ProblemFields {
    fn from(p: crate::errors::Problem) -> ProblemFields {
        let answer = p.answer();
        ProblemFields {
            status: p.status.as_u16(),
            code: p.code.to_string(),
            title: p.title.to_string(),
            detail: p.detail,
            retry_after: p.retry_after,
            body: answer.body,
            headers: answer
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }
    }
}

/// An upstream answer for the error mappers.
fn response(status: u16, headers: &[(String, String)], body: &[u8]) -> Response {
    Response {
        head: Head {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            headers: headers.to_vec(),
        },
        body: body.to_vec(),
    }
}

// ---- base64 ------------------------------------------------------------------------------

/// Streaming base64 of `data` fed in chunks of `sizes` (cycled).
pub fn base64_chunked(data: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut enc = crate::wire::base64_stream::Base64Stream::default();
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(1)
            .clamp(1, rest.len());
        let mut buf = vec![0u8; crate::wire::base64_stream::push_room(n)];
        let written = enc.push(&rest[..n], &mut buf);
        out.extend_from_slice(&buf[..written]);
        rest = &rest[n..];
        i += 1;
    }
    let mut tail = [0u8; 4];
    let written = enc.finish(&mut tail);
    out.extend_from_slice(&tail[..written]);
    out
}

pub fn base64_encoded_len(n: u64) -> u64 {
    crate::wire::base64_stream::encoded_len(n)
}

// ---- JSON answers ------------------------------------------------------------------------------

/// What the typed readers (serde) take from `body` read as each JSON answer the component
/// receives besides the tokens below and the error bodies: a Key Vault secret bundle's `value`,
/// an ACR exchange's `refresh_token` and token answer's `access_token`, and a token-cache entry
/// written back. `None` where the reader refuses the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answers {
    pub secret_value: Option<String>,
    pub refresh_token: Option<String>,
    pub access_token: Option<String>,
    pub cache_entry: Option<Vec<u8>>,
}

pub fn answers(body: &[u8]) -> Answers {
    Answers {
        secret_value: crate::services::keyvault::secret_value(body).ok(),
        refresh_token: crate::services::acr::exchange_answer(body).ok(),
        access_token: crate::services::acr::token_answer(body).ok(),
        cache_entry: crate::identity::cache::reencode(body),
    }
}

// ---- Key Vault challenge -------------------------------------------------------------------

/// `(tenant, resource)` of a `WWW-Authenticate` header.
pub fn parse_challenge(header: &str) -> Option<(String, String)> {
    crate::services::keyvault::parse_challenge(header).map(|c| (c.tenant, c.resource))
}

/// Whether a vault at `vault_origin` may be sent a token for `resource` in `cloud`; `None` when
/// the origin or cloud does not parse.
pub fn challenge_accepted(cloud: &str, vault_origin: &str, resource: &str) -> Option<bool> {
    let cloud = crate::net::cloud::Cloud::parse(cloud)?;
    let vault = crate::net::origin::parse(vault_origin).ok()?;
    Some(crate::services::keyvault::resource_matches_vault(
        cloud, &vault, resource,
    ))
}

// ---- tokens ----------------------------------------------------------------------------------

/// `(expires_on, refresh_at)` of a parsed token.
pub fn imds_token(body: &[u8], now: u64) -> Option<(u64, u64)> {
    crate::identity::imds::parse_token(body, now)
        .ok()
        .map(|t| (t.expires_on, t.refresh_at))
}

pub fn entra_token(body: &[u8], now: u64) -> Option<(u64, u64)> {
    crate::identity::entra::parse_token(body, now)
        .ok()
        .map(|t| (t.expires_on, t.refresh_at))
}

/// The longest lifetime any token is trusted for.
pub const MAX_TOKEN_LIFETIME: u64 = crate::identity::token::MAX_LIFETIME;

/// Claims diagnostics read from a token: `(iss, sub, aud, tid, oid, exp)`.
pub fn jwt_claims(token: &str) -> Option<(String, String, String, String, String, Option<i64>)> {
    crate::identity::jwt::claims(token).map(|c| (c.iss, c.sub, c.aud, c.tid, c.oid, c.exp))
}

// ---- error mappers -------------------------------------------------------------------------

pub fn imds_problem(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    client_id: Option<&str>,
) -> ProblemFields {
    crate::identity::imds::error_problem(
        &response(status, headers, body),
        "https://vault.azure.net",
        client_id,
    )
    .into()
}

pub fn entra_problem(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    assertion: &str,
) -> ProblemFields {
    let exchange = crate::config::settings::Exchange {
        client_id: "c1c1c1c1-0000-0000-0000-000000000000".into(),
        app_client_id: "a9a9a9a9-0000-0000-0000-000000000000".into(),
        authority: crate::net::origin::parse("https://login.microsoftonline.com")
            .expect("a valid origin"),
        audience: "api://AzureADTokenExchange".into(),
    };
    let claims = crate::identity::jwt::claims(assertion).unwrap_or_default();
    let ctx = crate::identity::entra::Diagnostics {
        exchange: &exchange,
        target: crate::identity::entra::TargetTenant {
            tenant_id: "bbbbbbbb-0000-0000-0000-000000000000",
            profile: "b",
            slot: crate::config::settings::Slot::Default,
        },
        resource: "https://vault.azure.net",
        assertion: &claims,
    };
    crate::identity::entra::error_problem(&response(status, headers, body), &ctx).into()
}

pub fn keyvault_problem(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    secret: &str,
) -> ProblemFields {
    let vault = crate::net::origin::parse("https://v.vault.azure.net").expect("a valid origin");
    let target = crate::services::keyvault::SecretAddress {
        cloud: crate::net::cloud::Cloud::Public,
        vault: &vault,
        name: secret,
        version: None,
    };
    crate::services::keyvault::error_problem(
        &response(status, headers, body),
        &target,
        "the managed identity",
    )
    .into()
}

pub fn storage_error_code(status: u16, headers: &[(String, String)], body: &[u8]) -> String {
    let r = response(status, headers, body);
    crate::services::blob::error_code(&r.head, &r.body)
}

pub fn storage_problem(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    container: &str,
    blob: &str,
) -> ProblemFields {
    let service = crate::config::settings::BlobService {
        origin: crate::net::origin::parse("https://127.0.0.1:10000").expect("a valid origin"),
        base_path: "/devstoreaccount1".into(),
    };
    let target = crate::services::blob::BlobAddress {
        cloud: crate::net::cloud::Cloud::Public,
        service: &service,
        container,
        blob,
    };
    crate::services::blob::error_problem(
        &response(status, headers, body),
        &target,
        "the managed identity",
    )
    .into()
}

/// The Storage path a validated blob name is sent to.
pub fn blob_path(base_path: &str, container: &str, blob: &str) -> String {
    let service = crate::config::settings::BlobService {
        origin: crate::net::origin::parse("https://127.0.0.1:10000").expect("a valid origin"),
        base_path: base_path.into(),
    };
    crate::services::blob::blob_path(&service, container, blob)
}

// ---- the whole request ---------------------------------------------------------------------

/// What a request decided, without any real service: every outbound call is refused.
#[derive(Debug, Clone)]
pub struct Served {
    pub status: u16,
    pub code: Option<String>,
    pub caller: Option<String>,
    pub tenant: Option<String>,
    pub resource: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// `service method path_and_query (n bytes)` of every outbound attempt (a refused request
    /// has none).
    pub upstream: Vec<String>,
    /// The request's log line.
    pub log_line: String,
}

struct Refusing(RefCell<Vec<String>>);

struct Empty;
impl BodyReader for Empty {
    fn next_chunk(&mut self, _wait: Duration) -> Result<Option<Vec<u8>>, NetError> {
        Ok(None)
    }
}

impl Transport for Refusing {
    type Body = Empty;
    fn open(
        &self,
        req: &Request,
        _timeout: std::time::Duration,
    ) -> Result<(Head, Empty), NetError> {
        self.0.borrow_mut().push(format!(
            "{} {} {} ({} bytes)",
            req.peer.name(),
            req.method,
            req.path_and_query,
            req.body.len()
        ));
        Err(NetError::Denied)
    }
}

/// A response body that takes everything at once.
struct Gather(Vec<u8>);
impl crate::services::relay::Sink for Gather {
    fn write(&mut self, bytes: &[u8], _wait: Duration) -> Result<(), crate::services::relay::Stop> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
    fn finish(&mut self, _wait: Duration) -> Result<(), crate::services::relay::Stop> {
        Ok(())
    }
}

/// The fuzz door's fixed wall clock.
const UNIX_NOW: u64 = 1_800_000_000;

/// Runs one request through routing, settings, authentication, validation and the rules, with
/// every upstream call refused.
pub fn decide(
    method: &str,
    path: &str,
    query: &str,
    key_headers: &[String],
    vars: &[(&str, &str)],
) -> Served {
    let method = http::Method::from_bytes(method.as_bytes()).unwrap_or(http::Method::OPTIONS);
    let vars: HashMap<&str, &str> = vars.iter().copied().collect();
    let clock = FakeClock::at(UNIX_NOW);
    let http = Refusing(RefCell::new(Vec::new()));
    let open_store = |_: &str| -> Option<Box<dyn Store>> { None };
    let platform = Platform {
        vars: &vars,
        http: &http,
        open_store: &open_store,
        clock: &clock,
        request_id: "00000000-0000-4000-8000-000000000000",
    };
    let incoming = Incoming {
        method: &method,
        path,
        query,
        key_headers: key_headers.to_vec(),
    };
    let mut line = RequestLine {
        time: crate::wire::timefmt::rfc3339(clock.unix()),
        ..RequestLine::default()
    };
    let (status, headers, body) = match app::handle(&incoming, &platform, &mut line) {
        Reply::Complete(a) => (
            a.status.as_u16(),
            a.headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            a.body,
        ),
        Reply::Blob { plan, mut body } => {
            let mut sink = Gather(Vec::new());
            crate::services::relay::relay(&plan, &mut body, &mut sink, &clock);
            (
                200,
                app::blob_headers(&plan)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                sink.0,
            )
        }
    };
    line.status = status;
    let log_line = line.to_json();
    Served {
        status,
        code: line.code,
        caller: line.caller,
        tenant: line.tenant,
        resource: line.resource,
        headers,
        body,
        upstream: http.0.into_inner(),
        log_line,
    }
}

/// The blob relay over `chunks` for a blob Storage announced as `content_length` bytes:
/// `(base64 written, whether the body was finished rather than abandoned)`.
pub fn relay(
    content_length: Option<u64>,
    limit: Option<u64>,
    chunks: &[&[u8]],
) -> Result<(Vec<u8>, bool), u16> {
    let head = Head {
        status: StatusCode::OK,
        headers: content_length
            .map(|n| ("content-length".to_string(), n.to_string()))
            .into_iter()
            .collect(),
    };
    let plan = crate::services::relay::Plan::new(
        &head,
        limit,
        crate::config::settings::TransferBounds::DEFAULT,
    )
    .map_err(|p| p.status.as_u16())?;
    let mut sink = Gather(Vec::new());
    let mut body = Chunks(chunks.iter().map(|c| Ok(c.to_vec())).collect());
    let complete = matches!(
        crate::services::relay::relay(&plan, &mut body, &mut sink, &FakeClock::at(UNIX_NOW)),
        crate::services::relay::Delivery::Complete { .. }
    );
    Ok((sink.0, complete))
}

/// The upstream error statuses the services' mappers handle, for corpora.
pub fn retry_after_seconds(headers: &[(String, String)]) -> Option<u64> {
    upstream::retry_after(&Head {
        status: StatusCode::TOO_MANY_REQUESTS,
        headers: headers.to_vec(),
    })
}
