//! The Spin HTTP entry point: hand the request to [`crate::request::app`], write what it returns, log
//! one line. It only moves bytes; every decision is made in host-testable code.

use crate::edge::platform::{
    self, KvCounts, KvStore, SpinTransport, SpinVariables, StreamingResponse, SystemClock,
};
use crate::identity::store::Store;
use crate::net::clock::Clock;
use crate::request::app::{self, Platform, Reply};
use crate::request::log::RequestLine;
use crate::request::routes::Incoming;
use crate::services::relay::{self, Delivery};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

/// How long a caller may take to accept a complete answer (a secret or a problem, a few KB at
/// most) before the instance lets it go: not configurable, as it bounds no transfer.
const ANSWER_WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

#[spin_sdk::http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let clock = SystemClock::new();
    let out = out.into_inner();
    let method_text = req.method().to_string();
    let method = http::Method::from_bytes(method_text.as_bytes()).unwrap_or(http::Method::OPTIONS);
    let path_and_query = req.path_with_query().unwrap_or_default();
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((&path_and_query, ""));
    let incoming = Incoming {
        method: &method,
        path,
        query,
        key_headers: req
            .headers()
            .get("x-functions-key")
            .into_iter()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .collect(),
    };
    let vars = SpinVariables::default();
    let transport = SpinTransport::default();
    let request_id = platform::request_id();
    let kv_counts = KvCounts::default();
    let open_store =
        |label: &str| KvStore::open(label, &kv_counts).map(|s| Box::new(s) as Box<dyn Store>);
    let platform = Platform {
        vars: &vars,
        http: &transport,
        open_store: &open_store,
        clock: &clock,
        request_id: &request_id,
    };
    let mut line = RequestLine {
        time: crate::wire::timefmt::rfc3339(clock.unix()),
        request_id: request_id.clone(),
        method: method_text,
        route: "-".into(),
        ..Default::default()
    };

    match app::handle(&incoming, &platform, &mut line) {
        Reply::Complete(answer) => {
            line.status = answer.status.as_u16();
            line.bytes = answer.body.len() as u64;
            if !platform::respond(
                out,
                line.status,
                &answer.headers,
                &answer.body,
                ANSWER_WRITE_WAIT,
            ) {
                line.aborted = Some("could not write the response".into());
            }
        }
        Reply::Blob { plan, mut body, .. } => {
            line.status = 200;
            match StreamingResponse::start(out, 200, &app::blob_headers(&plan)) {
                None => line.aborted = Some("could not start the response".into()),
                Some(mut response) => match relay::relay(&plan, &mut body, &mut response, &clock) {
                    Delivery::Complete { sent } => line.bytes = sent,
                    // Dropping `response` unfinished breaks the transfer for the caller.
                    Delivery::Abandoned { sent, reason } => {
                        line.bytes = sent;
                        line.aborted = Some(reason);
                    }
                },
            }
        }
    }

    line.variable_lookups = vars.lookups.get();
    line.kv_reads = kv_counts.reads.get();
    line.kv_writes = kv_counts.writes.get();
    line.memory_kib = (core::arch::wasm32::memory_size::<0>() * 64) as u32;
    line.upstream = transport.attempts.take();
    line.duration_ms = clock.start.elapsed().as_millis();
    platform::log(&line.to_json());
}
