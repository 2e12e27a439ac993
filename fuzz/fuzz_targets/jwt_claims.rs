//! `fuzzing::jwt_claims` (`jwt::claims`): decoding the payload of a token we were handed
//! (diagnostics only): `(iss, sub, aud, tid, oid, exp)`.
//!
//! Input, two modes:
//! - raw (first byte not 0x01): the whole input is the token. Properties: never panics; `Some`
//!   only for exactly three `.`-separated parts whose payload is at most 16 KiB of base64url
//!   (trailing `=` allowed) decoding to a JSON object (or array, which serde also reads as a
//!   struct); for an object, the claims are its string `iss`, `sub`, `tid`, `oid` (empty when
//!   absent), its `aud` string or first array element, and its whole-number `exp`.
//! - round trip (first byte 0x01): the rest, split at NUL bytes, gives iss, sub, aud, tid, oid,
//!   exp, nbf, an unknown extra claim and a second audience (non-empty: `aud` is an array); they
//!   are encoded into a token, and `jwt_claims` must give exactly those back (also with `=`
//!   padding), and `None` for the same token with a fourth part or a payload over 16 KiB.
#![no_main]

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tenant_bridge::fuzzing::jwt_claims;

const HEADER: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9";

type Claims = (String, String, String, String, String, Option<i64>);

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((1, rest)) => round_trip(rest),
        _ => raw(&String::from_utf8_lossy(data)),
    }
});

fn raw(token: &str) {
    let Some(claims) = jwt_claims(token) else {
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
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(&json) else {
        return;
    };
    let text = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let aud = match o.get("aud") {
        Some(Value::String(a)) => a.clone(),
        Some(Value::Array(a)) => a.first().and_then(Value::as_str).unwrap_or("").to_string(),
        _ => String::new(),
    };
    let exp = o.get("exp").and_then(Value::as_i64);
    let expected: Claims = (text("iss"), text("sub"), aud, text("tid"), text("oid"), exp);
    assert_eq!(
        claims,
        expected,
        "claims of {}",
        String::from_utf8_lossy(&json)
    );
}

fn round_trip(rest: &[u8]) {
    let mut fields = rest.split(|b| *b == 0);
    let mut text = || String::from_utf8_lossy(fields.next().unwrap_or(b"")).into_owned();
    let (iss, sub, aud, tid, oid) = (text(), text(), text(), text(), text());
    let (exp, nbf, extra, aud2) = (text(), text(), text(), text());
    let number = |s: &str| (!s.is_empty()).then(|| common::number(s.as_bytes()) as i64);
    let expected: Claims = (iss, sub, aud, tid, oid, number(&exp));
    let audience = if aud2.is_empty() {
        Value::String(expected.2.clone())
    } else {
        Value::Array(vec![expected.2.clone().into(), aud2.into()])
    };
    let payload = serde_json::json!({
        "iss": expected.0,
        "sub": expected.1,
        "aud": audience,
        "tid": expected.3,
        "oid": expected.4,
        "exp": expected.5,
        "nbf": number(&nbf),
        "x-extra": extra,
    });
    let encoded = URL_SAFE_NO_PAD.encode(payload.to_string());
    let token = format!("{HEADER}.{encoded}.c2lnbmF0dXJl");
    let got = jwt_claims(&token);
    if encoded.len() > 16 * 1024 {
        assert_eq!(got, None, "a payload over 16 KiB was decoded");
        return;
    }
    assert_eq!(got.as_ref(), Some(&expected), "claims of {payload}");
    let padding = "=".repeat((4 - encoded.len() % 4) % 4);
    let padded = format!("{HEADER}.{encoded}{padding}.c2lnbmF0dXJl");
    assert_eq!(
        jwt_claims(&padded).as_ref(),
        Some(&expected),
        "padded token"
    );
    assert_eq!(
        jwt_claims(&format!("{token}.x")),
        None,
        "four parts accepted"
    );
    let oversized = format!("{HEADER}.{encoded}{}.c2lnbmF0dXJl", "=".repeat(16 * 1024));
    assert_eq!(
        jwt_claims(&oversized),
        None,
        "a payload over 16 KiB was decoded"
    );
}
