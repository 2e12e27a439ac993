//! `fuzzing::relay` (`relay::Plan` and `relay::relay`): a blob streamed from Storage as base64,
//! with the size limit (`max_blob_bytes`) and the announced `Content-Length`, deciding whether
//! the body is finished or abandoned — a caller must never receive a short body that looks
//! complete.
//!
//! Input: byte 0 flags (bit 0: Storage announced a `Content-Length`; bit 1: a limit is set;
//! bits 2-3 and 4-5: how the length and the limit relate to the data's size — 0 equal, 1 plus
//! the delta, 2 minus the delta, 3 a raw big-endian `u64` from the next 8 bytes); byte 1 the
//! length's delta, byte 2 the limit's; then `N` (mod 16) chunk sizes in `N` bytes (0: an empty
//! chunk) and the data, cut into chunks of those sizes in turn. Properties: never panics; a
//! refusal is exactly a 413 for a length over the limit; the relay is complete exactly when
//! the bytes received equal the announced length (if any) and never exceed the limit (if any),
//! and then the output is `base64::STANDARD` of the data, of the `Content-Length` announced to
//! the caller (`base64_encoded_len`); an abandoned relay wrote exactly the whole 4-byte groups
//! of what it had received before the chunk that broke a rule (or of all of it, when the body
//! ended short or long of the announced length), a prefix of the reference.
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use tenant_bridge::fuzzing::{base64_encoded_len, relay};

fuzz_target!(|input: &[u8]| {
    let mut rest = input;
    let mut byte = || {
        let (b, r) = rest.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        rest = r;
        b
    };
    let flags = byte();
    let (delta_len, delta_limit) = (u64::from(byte()), u64::from(byte()));
    let mut raw = |mode: u8| -> Option<u64> {
        (mode == 3).then(|| u64::from_be_bytes(std::array::from_fn(|_| byte())))
    };
    let (len_mode, limit_mode) = ((flags >> 2) & 3, (flags >> 4) & 3);
    let (raw_len, raw_limit) = (raw(len_mode), raw(limit_mode));
    let n = usize::from(byte() % 16).min(rest.len());
    let (sizes, data) = rest.split_at(n);

    // The chunks: sizes in turn (0 is an empty chunk), bounded so zeros still end.
    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut left = data;
    let mut i = 0;
    while !left.is_empty() {
        let size = if sizes.is_empty() {
            left.len()
        } else {
            usize::from(sizes[i % sizes.len()])
        };
        let size = if i > 64 { size.max(1) } else { size }.min(left.len());
        chunks.push(&left[..size]);
        left = &left[size..];
        i += 1;
    }
    if flags & 0x40 != 0 {
        chunks.push(&[]);
    }

    let total = data.len() as u64;
    let derive = |mode: u8, delta: u64, raw: Option<u64>| match mode {
        0 => total,
        1 => total + delta,
        2 => total.saturating_sub(delta),
        _ => raw.unwrap_or(0),
    };
    let content_length = (flags & 1 != 0).then(|| derive(len_mode, delta_len, raw_len));
    let limit = (flags & 2 != 0).then(|| derive(limit_mode, delta_limit, raw_limit));

    let result = relay(content_length, limit, &chunks);
    // A length whose base64 would not fit a u64 Content-Length is over every limit.
    let relayable = (u64::MAX / 4) * 3;
    if let Some(n) = content_length {
        let l = limit.unwrap_or(relayable).min(relayable);
        if n > l {
            assert_eq!(result, Err(413), "a blob of {n} bytes over the limit {l}");
            return;
        }
    }
    let (out, complete) = result
        .unwrap_or_else(|s| panic!("refused with {s}: length {content_length:?}, limit {limit:?}"));

    // The oracle: the relay's rules, chunk by chunk.
    let mut received = 0u64;
    let mut broke = None;
    for c in &chunks {
        let before = received;
        received += c.len() as u64;
        if limit.is_some_and(|l| received > l) || content_length.is_some_and(|n| received > n) {
            broke = Some(before);
            break;
        }
    }
    let expected_complete = broke.is_none() && content_length.is_none_or(|n| n == total);
    assert_eq!(
        complete, expected_complete,
        "complete with {total} bytes, length {content_length:?}, limit {limit:?}"
    );
    let reference = STANDARD.encode(data);
    if complete {
        assert_eq!(String::from_utf8_lossy(&out), reference, "complete output");
        assert!(limit.is_none_or(|l| total <= l));
        if let Some(n) = content_length {
            assert_eq!(
                out.len() as u64,
                base64_encoded_len(n),
                "announced Content-Length vs body"
            );
        }
        return;
    }
    let had = broke.unwrap_or(total) as usize;
    let whole = had / 3 * 3;
    assert_eq!(
        String::from_utf8_lossy(&out),
        STANDARD.encode(&data[..whole]),
        "abandoned after {had} bytes"
    );
    assert_eq!(out.len() % 4, 0, "a partial group written");
    assert!(reference.as_bytes().starts_with(&out), "not a prefix");
});
