//! Ceiling (b): a blob streamed through unchanged. One key-value read (the bearer token), one
//! outbound GET, the body copied to the response in fixed-size reads, its length announced as
//! Storage announced it. What tenant-bridge's base64 relay is measured against. See
//! ../README.md.
#![cfg(target_arch = "wasm32")]

#[path = "../../shared.rs"]
mod shared;

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::wit::wasi::http0_2_0::types::IncomingBody;
use wasi::io::streams::StreamError;

/// Largest read; the same as tenant-bridge's relay.
const READ_CHUNK: u64 = 256 * 1024;

#[spin_sdk::http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let out = out.into_inner();
    let path_and_query = req.path_with_query().unwrap_or_default();
    let Some(q) = shared::query(&path_and_query) else {
        return shared::respond(out, 400, "text/plain", b"key, as, url");
    };
    let Some(token) = shared::token(q.key) else {
        return shared::respond(out, 500, "text/plain", b"no token in the store");
    };
    let mut headers = vec![("authorization".to_string(), token)];
    shared::storage_headers(&mut headers);
    let Some(response) = shared::get(q.url, &headers) else {
        return shared::respond(out, 502, "text/plain", b"upstream failed");
    };
    if response.status() != 200 {
        return shared::respond(out, 502, "text/plain", b"upstream refused");
    }
    let mut head = vec![(
        "content-type".to_string(),
        b"application/octet-stream".to_vec(),
    )];
    if let Some(length) = response.headers().get("content-length").into_iter().next() {
        head.push(("content-length".to_string(), length));
    }
    let (Ok(body), Some((sink, outgoing))) = (response.consume(), shared::start(out, 200, &head))
    else {
        return;
    };
    let Ok(source) = body.stream() else { return };
    loop {
        match source.blocking_read(READ_CHUNK) {
            Ok(bytes) => {
                if !shared::write_all(&sink, &bytes) {
                    return;
                }
            }
            Err(StreamError::Closed) => break,
            // Dropping the response unfinished breaks the transfer for the caller.
            Err(_) => return,
        }
    }
    drop(source);
    drop(IncomingBody::finish(body));
    shared::finish(sink, outgoing);
    eprintln!("{{\"memory_kib\":{}}}", shared::memory_kib());
}
