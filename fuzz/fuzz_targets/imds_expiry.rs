//! Token expiry parsing of IMDS (`fuzzing::imds_token`: strings or numbers, `expires_on` epoch
//! or `expires_in` seconds) and Entra ID (`fuzzing::entra_token`: numbers), through
//! `token::Token::new` (refresh time, lifetime cap).
//!
//! Input: `NOW\nBODY`; `now` is the first line's number reduced below 2^40 (a clock, not
//! upstream data: year 36812 at most); every body value is unbounded. Properties: never panics
//! (no overflow, whatever the body says); when a token is returned, `expires_on ≤ now +
//! MAX_TOKEN_LIFETIME` and `refresh_at ≤ expires_on − 300` (the refresh margin; 0 below it);
//! IMDS's `expires_on` is the body's epoch `expires_on` (> 10^9), else `now + expires_in`, else
//! `now + 300`, each capped at the maximum lifetime; Entra's is `now + expires_in`, capped; a
//! `refresh_in` is honoured (`refresh_at ≤ now + refresh_in`).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::Value;
use tenant_bridge::fuzzing::{entra_token, imds_token, MAX_TOKEN_LIFETIME};

/// `token::REFRESH_MARGIN`: a token is refreshed at the latest this long before it expires.
const REFRESH_MARGIN: u64 = 300;

fuzz_target!(|data: &[u8]| {
    let (line, body) = common::first_line(data);
    let now = common::number(line) % (1 << 40);
    let cap = now + MAX_TOKEN_LIFETIME;
    // The oracles mirror each parser's fields, in order, as plain JSON values: serde then accepts
    // the same documents (unknown fields skipped unvalidated, duplicates refused, and a JSON array
    // read field by field), so they read whatever the parser reads.
    let number = |v: &Option<Value>| v.as_ref().and_then(as_u64);

    if let Some((expires_on, refresh_at)) = imds_token(body, now) {
        let Ok(f) = serde_json::from_slice::<ImdsFields>(body) else {
            panic!("imds accepted a body the oracle cannot read");
        };
        assert!(
            f.access_token.as_str().is_some_and(|t| !t.is_empty()),
            "imds: a token without an access_token"
        );
        let expected = match number(&f.expires_on).filter(|e| *e > 1_000_000_000) {
            Some(epoch) => epoch,
            None => match number(&f.expires_in) {
                Some(s) => now.saturating_add(s),
                None => now + 300,
            },
        };
        assert_eq!(expires_on, expected.min(cap), "imds: expires_on");
        check_times(expires_on, refresh_at, now, number(&f.refresh_in), "imds");
    }

    if let Some((expires_on, refresh_at)) = entra_token(body, now) {
        let Ok(f) = serde_json::from_slice::<EntraFields>(body) else {
            panic!("entra accepted a body the oracle cannot read");
        };
        let expires_in = f
            .expires_in
            .as_u64()
            .expect("entra accepted a token without a whole expires_in");
        assert_eq!(
            expires_on,
            now.saturating_add(expires_in).min(cap),
            "entra: now + expires_in"
        );
        let refresh_in = f.refresh_in.as_ref().and_then(Value::as_u64);
        check_times(expires_on, refresh_at, now, refresh_in, "entra");
    }
});

/// The fields of `imds::parse_token`'s body, in its order.
#[derive(Deserialize)]
#[allow(dead_code)]
struct ImdsFields {
    access_token: Value,
    #[serde(default)]
    expires_in: Option<Value>,
    #[serde(default)]
    expires_on: Option<Value>,
    #[serde(default)]
    refresh_in: Option<Value>,
}

/// The fields of `entra::parse_token`'s body, in its order.
#[derive(Deserialize)]
#[allow(dead_code)]
struct EntraFields {
    access_token: Value,
    expires_in: Value,
    #[serde(default)]
    refresh_in: Option<Value>,
}

/// IMDS sends numbers as strings; both forms are read.
fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn check_times(expires_on: u64, refresh_at: u64, now: u64, refresh_in: Option<u64>, who: &str) {
    assert!(
        expires_on <= now + MAX_TOKEN_LIFETIME,
        "{who}: expires_on {expires_on} is more than {MAX_TOKEN_LIFETIME} s after now {now}"
    );
    assert!(
        refresh_at <= expires_on,
        "{who}: refresh_at {refresh_at} after expires_on {expires_on}"
    );
    assert!(
        refresh_at <= expires_on.saturating_sub(REFRESH_MARGIN),
        "{who}: refresh_at {refresh_at} within the margin of expires_on {expires_on}"
    );
    if let Some(r) = refresh_in {
        assert!(
            refresh_at <= now.saturating_add(r),
            "{who}: refresh_at {refresh_at} later than refresh_in {r} from now {now}"
        );
    }
}
