//! The Spin HTTP entry point: plan the request, run it against the services, answer, log.

use crate::base64_stream::{encoded_len, Base64Stream};
use crate::config::{self, Tenant};
use crate::errors::{Problem, PROBLEM_CONTENT_TYPE};
use crate::identity::Env;
use crate::log::{RequestLine, Upstream};
use crate::platform::{self, KvStore, SpinBody, SpinTransport, SpinVariables, StreamingResponse};
use crate::retry::Budget;
use crate::routes::{self, Action, Incoming};
use crate::upstream::{BodyReader, Head};
use crate::{blob, keyvault};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::wit::wasi::http0_2_0::types::{Method, ResponseOutparam as RawOutparam};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Headers on every answer that carries a secret or blob: never cached, never sniffed.
fn sensitive_headers(content_type: &str) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", content_type.to_string()),
        ("cache-control", "no-store".to_string()),
        ("x-content-type-options", "nosniff".to_string()),
    ]
}

#[spin_sdk::http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let started = Instant::now();
    let out = out.into_inner();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let method = match req.method() {
        Method::Get => "GET".to_string(),
        Method::Head => "HEAD".to_string(),
        Method::Post => "POST".to_string(),
        Method::Put => "PUT".to_string(),
        Method::Delete => "DELETE".to_string(),
        Method::Patch => "PATCH".to_string(),
        Method::Options => "OPTIONS".to_string(),
        Method::Connect => "CONNECT".to_string(),
        Method::Trace => "TRACE".to_string(),
        Method::Other(m) => m,
    };
    let path_and_query = req.path_with_query().unwrap_or_default();
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((&path_and_query, ""));
    let key_headers = req
        .headers()
        .get("x-functions-key")
        .into_iter()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .collect();
    let incoming = Incoming {
        method: &method,
        path,
        query,
        key_headers,
    };

    let vars = SpinVariables;
    let transport = SpinTransport::default();
    let store = KvStore::new(config::token_cache_store(&vars));
    // A malformed deadline or backoff setting is reported once the route needs upstream calls.
    let budget = Budget::from_config(&vars, started);
    let env = Env {
        http: &transport,
        store: &store,
        vars: &vars,
        now,
        request_id: platform::request_id(),
        budget: budget.clone().unwrap_or(Budget {
            deadline: started + Duration::from_secs(30),
            limit_secs: 30,
            base: Duration::from_millis(800),
        }),
    };
    let mut line = RequestLine {
        time: crate::timefmt::rfc3339(now),
        request_id: env.request_id.clone(),
        method: method.clone(),
        ..Default::default()
    };

    match routes::plan(&incoming, &vars) {
        Err(refusal) => {
            line.route = refusal
                .endpoint
                .map(|e| e.name().to_string())
                .unwrap_or_else(|| "-".into());
            line.caller = refusal.caller.map(caller_name);
            respond_problem(out, &refusal.problem, &mut line);
        }
        Ok(planned) => {
            line.route = planned.endpoint.name().to_string();
            line.caller = Some(caller_name(planned.caller));
            line.resource = Some(planned.action.resource(&vars));
            serve(planned.action, &env, budget, out, &mut line);
        }
    }

    line.upstream = transport
        .attempts
        .borrow()
        .iter()
        .map(|a| Upstream {
            service: a.service,
            host: a.host.clone(),
            status: a.status,
            request_id: a.request_id.clone(),
            ms: a.millis,
        })
        .collect();
    line.duration_ms = started.elapsed().as_millis();
    eprintln!("{}", line.to_json());
}

/// Runs a planned action and answers.
fn serve(
    action: Action,
    env: &Env<SpinTransport>,
    budget: Result<Budget, Problem>,
    out: RawOutparam,
    line: &mut RequestLine,
) {
    let action = match (action, budget) {
        (Action::Health, _) => return health(env, out, line),
        (_, Err(p)) => return respond_problem(out, &p, line),
        (action, Ok(_)) => action,
    };
    match action {
        Action::Secret {
            tenant,
            name,
            version,
        } => {
            line.tenant = Some(tenant.label());
            match keyvault::get_secret(env, tenant, &name, version.as_deref()) {
                Ok(value) => {
                    line.status = 200;
                    line.bytes = value.len() as u64;
                    platform::respond(
                        out,
                        200,
                        &sensitive_headers("text/plain; charset=utf-8"),
                        value.as_bytes(),
                    );
                }
                Err(p) => respond_problem(out, &p, line),
            }
        }
        Action::Blob {
            tenant,
            container,
            blob,
        } => {
            line.tenant = Some(tenant.label());
            download(env, out, tenant, &container, &blob, line);
        }
        Action::Health => health(env, out, line),
    }
}

/// Readiness: 200 with the endpoints this configuration serves, or 503 naming the variable.
fn health(env: &Env<SpinTransport>, out: RawOutparam, line: &mut RequestLine) {
    match config::health(env.vars) {
        Ok(serves) => {
            line.status = 200;
            let body = serde_json::json!({ "status": "ok", "serves": serves }).to_string();
            let headers = [
                ("content-type", "application/json".to_string()),
                ("cache-control", "no-store".to_string()),
            ];
            platform::respond(out, 200, &headers, body.as_bytes());
        }
        Err(mut p) => {
            p.status = 503;
            respond_problem(out, &p, line);
        }
    }
}

fn caller_name(caller: crate::auth::Caller) -> String {
    match caller {
        crate::auth::Caller::Key(name) => name,
        crate::auth::Caller::Anonymous => "anonymous".into(),
    }
}

fn respond_problem(out: RawOutparam, problem: &Problem, line: &mut RequestLine) {
    line.status = problem.status;
    line.code = Some(problem.code);
    if problem.status == 401 {
        // Functions answers a missing or wrong key with an empty 401.
        platform::respond(out, 401, &[], b"");
        return;
    }
    let mut headers = vec![("content-type", PROBLEM_CONTENT_TYPE.to_string())];
    if problem.status == 405 {
        headers.push(("allow", "GET".to_string()));
    }
    if let Some(s) = problem.retry_after {
        headers.push(("retry-after", s.to_string()));
    }
    platform::respond(out, problem.status, &headers, &problem.body());
}

/// Streams the blob as base64: fixed-size reads, 0-2 bytes carried between chunks, an exact
/// `Content-Length` when Storage gave one, and an abandoned body if anything breaks midway.
fn download(
    env: &Env<SpinTransport>,
    out: RawOutparam,
    tenant: Tenant,
    container: &str,
    name: &str,
    line: &mut RequestLine,
) {
    let limit = match config::max_blob_bytes(env.vars) {
        Ok(limit) => limit,
        Err(p) => return respond_problem(out, &p, line),
    };
    let (head, mut body): (Head, SpinBody) = match blob::open(env, tenant, container, name) {
        Ok(opened) => opened,
        Err(p) => return respond_problem(out, &p, line),
    };
    let expected = head.content_length();
    if let (Some(limit), Some(n)) = (limit, expected) {
        if n > limit {
            let p = Problem::new(
                413,
                "blob-too-large",
                "Blob too large",
                format!("the blob is {n} bytes; max_blob_bytes allows {limit}"),
            );
            return respond_problem(out, &p, line);
        }
    }
    let mut headers = sensitive_headers("text/plain");
    if let Some(n) = expected {
        headers.push(("content-length", encoded_len(n).to_string()));
    }
    line.status = 200;
    let Some(mut response) = StreamingResponse::start(out, 200, &headers) else {
        line.aborted = Some("could not start the response".into());
        return;
    };
    let mut encoder = Base64Stream::default();
    let mut encoded = Vec::with_capacity(96 * 1024);
    let mut received: u64 = 0;
    loop {
        match body.next_chunk() {
            Ok(Some(chunk)) => {
                received += chunk.len() as u64;
                if limit.is_some_and(|l| received > l) {
                    line.aborted =
                        Some("blob exceeds max_blob_bytes (no Content-Length from Storage)".into());
                    return;
                }
                encoded.clear();
                encoder.push(&chunk, &mut encoded);
                if !response.write(&encoded) {
                    line.aborted = Some("caller went away".into());
                    return;
                }
                line.bytes += encoded.len() as u64;
            }
            Ok(None) => break,
            Err(e) => {
                // Dropping `response` unfinished breaks the transfer for the caller.
                line.aborted = Some(format!(
                    "upstream body failed after {received} bytes: {e:?}"
                ));
                return;
            }
        }
    }
    if expected.is_some_and(|n| n != received) {
        line.aborted = Some(format!(
            "upstream sent {received} of {} bytes",
            expected.unwrap_or(0)
        ));
        return;
    }
    encoded.clear();
    encoder.finish(&mut encoded);
    if response.write(&encoded) {
        line.bytes += encoded.len() as u64;
        response.finish();
    } else {
        line.aborted = Some("caller went away".into());
    }
}
