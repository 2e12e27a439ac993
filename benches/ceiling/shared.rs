//! What both ceiling components do: read the query, the token, one outbound GET, and write a
//! response. Raw `wasi:http` as tenant-bridge's edge does it, so only the work differs.
#![allow(dead_code)] // each ceiling uses a part

// The component's own date formatter, compiled in (the ceiling links nothing of tenant-bridge).
#[path = "../../src/wire/timefmt.rs"]
#[allow(dead_code)]
mod timefmt;

use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{
    Fields, IncomingResponse, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam,
    Scheme,
};
use spin_sdk::wit::wasi::keyvalue::store;
use wasi::io::streams::OutputStream;

/// `key=K&as=M&url=U`, the URL last and taken raw.
pub struct Query<'a> {
    pub key: &'a str,
    pub mode: &'a str,
    pub url: &'a str,
}

pub fn query(path_and_query: &str) -> Option<Query<'_>> {
    let q = path_and_query.split_once('?')?.1;
    let (key, rest) = q.strip_prefix("key=")?.split_once("&as=")?;
    let (mode, url) = rest.split_once("&url=")?;
    Some(Query { key, mode, url })
}

/// The one key-value read.
pub fn token(key: &str) -> Option<Vec<u8>> {
    store::open("default").ok()?.get(key).ok()?
}

/// The one outbound GET; the response once its head has arrived.
pub fn get(url: &str, headers: &[(String, Vec<u8>)]) -> Option<IncomingResponse> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let request = OutgoingRequest::new(Fields::from_list(headers).ok()?);
    let scheme = if scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request.set_scheme(Some(&scheme)).ok()?;
    request.set_authority(Some(authority)).ok()?;
    request.set_path_with_query(Some(path)).ok()?;
    let body = request.body().ok()?;
    let future = outgoing_handler::handle(request, None).ok()?;
    OutgoingBody::finish(body, None).ok()?;
    loop {
        match future.get() {
            Some(result) => return result.ok()?.ok(),
            None => future.subscribe().block(),
        }
    }
}

/// Storage's headers for a bearer-token Get Blob.
pub fn storage_headers(headers: &mut Vec<(String, Vec<u8>)>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    headers.push(("x-ms-version".into(), b"2025-11-05".to_vec()));
    headers.push(("x-ms-date".into(), timefmt::http_date(now).into_bytes()));
}

/// Starts a response; its body stream and body.
pub fn start(
    out: ResponseOutparam,
    status: u16,
    headers: &[(String, Vec<u8>)],
) -> Option<(OutputStream, OutgoingBody)> {
    let response = OutgoingResponse::new(Fields::from_list(headers).ok()?);
    response.set_status_code(status).ok()?;
    let body = response.body().ok()?;
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().ok()?;
    Some((stream, body))
}

/// Writes as much as the host takes at once; no flush between writes.
pub fn write_all(stream: &OutputStream, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        let n = match stream.check_write() {
            Ok(n) => (n as usize).min(bytes.len()),
            Err(_) => return false,
        };
        if n == 0 {
            stream.subscribe().block();
            continue;
        }
        if stream.write(&bytes[..n]).is_err() {
            return false;
        }
        bytes = &bytes[n..];
    }
    true
}

/// Flushes and completes the body.
pub fn finish(stream: OutputStream, body: OutgoingBody) {
    // A closed stream or a failed flush: the response is broken either way; finish regardless.
    let _ = stream.blocking_flush();
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}

/// A complete response.
pub fn respond(out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
    let headers = [
        ("content-type".to_string(), content_type.as_bytes().to_vec()),
        (
            "content-length".to_string(),
            body.len().to_string().into_bytes(),
        ),
    ];
    if let Some((stream, outgoing)) = start(out, status, &headers) {
        if write_all(&stream, body) {
            finish(stream, outgoing);
        }
    }
}

/// The guest's linear memory, for the benchmark's memory column.
pub fn memory_kib() -> usize {
    core::arch::wasm32::memory_size::<0>() * 64
}
