//! Ceiling (a): the least a warm tenant-bridge request can do. One key-value read (the bearer
//! token), one outbound GET with it, and the answer: a Key Vault secret's `value`
//! (`as=value`), or a small blob as base64 (`as=base64`); `as=none` answers at once (the
//! instance floor, next to tenant-bridge's `/api/livez`). See ../README.md.
#![cfg(target_arch = "wasm32")]

#[path = "../../shared.rs"]
mod shared;

use base64::Engine as _;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::wit::wasi::http0_2_0::types::IncomingBody;
use wasi::io::streams::StreamError;

#[derive(serde::Deserialize)]
struct SecretBundle {
    value: String,
}

#[spin_sdk::http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let out = out.into_inner();
    let path_and_query = req.path_with_query().unwrap_or_default();
    let Some(q) = shared::query(&path_and_query) else {
        return shared::respond(out, 400, "text/plain", b"key, as, url");
    };
    if q.mode == "none" {
        // The floor: an instance that answers without the store or the network.
        return shared::respond(out, 200, "application/json", br#"{"status":"alive"}"#);
    }
    let Some(token) = shared::token(q.key) else {
        return shared::respond(out, 500, "text/plain", b"no token in the store");
    };
    let blob = q.mode == "base64";
    let mut headers = vec![("authorization".to_string(), token)];
    if blob {
        shared::storage_headers(&mut headers);
    }
    let Some(response) = shared::get(q.url, &headers) else {
        return shared::respond(out, 502, "text/plain", b"upstream failed");
    };
    let status = response.status();
    let Some(body) = read_all(response) else {
        return shared::respond(out, 502, "text/plain", b"upstream body failed");
    };
    if status != 200 {
        return shared::respond(out, 502, "text/plain", &body);
    }
    let answer = if blob {
        base64::engine::general_purpose::STANDARD
            .encode(&body)
            .into_bytes()
    } else {
        match serde_json::from_slice::<SecretBundle>(&body) {
            Ok(bundle) => bundle.value.into_bytes(),
            Err(_) => return shared::respond(out, 502, "text/plain", b"not a secret bundle"),
        }
    };
    shared::respond(out, 200, "text/plain; charset=utf-8", &answer);
}

fn read_all(response: spin_sdk::wit::wasi::http0_2_0::types::IncomingResponse) -> Option<Vec<u8>> {
    let body = response.consume().ok()?;
    let stream = body.stream().ok()?;
    let mut all = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(bytes) => all.extend_from_slice(&bytes),
            Err(StreamError::Closed) => break,
            Err(_) => return None,
        }
    }
    drop(stream);
    drop(IncomingBody::finish(body));
    Some(all)
}
