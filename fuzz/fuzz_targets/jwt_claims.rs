//! `jwt::claims`: decoding the payload of a token we were handed (diagnostics only).
//!
//! Input, two modes:
//! - raw (first byte not 0x01): the whole input is the token. Properties: never panics; `Some`
//!   only for exactly three `.`-separated parts whose payload is at most 16 KiB of base64url
//!   decoding to a JSON object (or array, which serde also reads as a struct).
//! - round trip (first byte 0x01): the rest, split at NUL bytes, gives iss, sub, aud, tid, oid,
//!   exp, nbf and an unknown extra claim; they are encoded into a token, and `claims` must give
//!   exactly those back (also with `=` padding), and `None` for the same token with a fourth part.
#![no_main]

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use tenant_bridge::jwt::{claims, Claims};

const HEADER: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9";

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((1, rest)) => round_trip(rest),
        _ => raw(&String::from_utf8_lossy(data)),
    }
});

fn raw(token: &str) {
    let Some(_claims) = claims(token) else {
        return;
    };
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "accepted {token:?}");
    assert!(
        parts[1].len() <= 16 * 1024,
        "accepted a payload of {} bytes",
        parts[1].len()
    );
    let json = URL_SAFE_NO_PAD
        .decode(parts[1].trim_end_matches('='))
        .expect("accepted payload is base64url");
    // serde skips unknown claims without validating them, so only the outer shape is checked.
    let first = json.iter().find(|b| !b.is_ascii_whitespace());
    assert!(
        matches!(first, Some(b'{' | b'[')),
        "accepted payload {:?} is not a JSON object or array",
        String::from_utf8_lossy(&json)
    );
}

fn round_trip(rest: &[u8]) {
    let mut fields = rest.split(|b| *b == 0);
    let mut text = || String::from_utf8_lossy(fields.next().unwrap_or(b"")).into_owned();
    let (iss, sub, aud, tid, oid) = (text(), text(), text(), text(), text());
    let (exp, nbf, extra) = (text(), text(), text());
    let number = |s: &str| (!s.is_empty()).then(|| common::number(s.as_bytes()) as i64);
    let expected = Claims {
        iss,
        sub,
        aud,
        tid,
        oid,
        exp: number(&exp),
        nbf: number(&nbf),
    };
    let payload = serde_json::json!({
        "iss": expected.iss,
        "sub": expected.sub,
        "aud": expected.aud,
        "tid": expected.tid,
        "oid": expected.oid,
        "exp": expected.exp,
        "nbf": expected.nbf,
        "x-extra": extra,
    });
    let encoded = URL_SAFE_NO_PAD.encode(payload.to_string());
    let token = format!("{HEADER}.{encoded}.c2lnbmF0dXJl");
    let got = claims(&token);
    if encoded.len() > 16 * 1024 {
        assert_eq!(got, None, "a payload over 16 KiB was decoded");
        return;
    }
    assert_eq!(got.as_ref(), Some(&expected), "claims of {payload}");
    let padding = "=".repeat((4 - encoded.len() % 4) % 4);
    let padded = format!("{HEADER}.{encoded}{padding}.c2lnbmF0dXJl");
    assert_eq!(claims(&padded).as_ref(), Some(&expected), "padded token");
    assert_eq!(claims(&format!("{token}.x")), None, "four parts accepted");
}
