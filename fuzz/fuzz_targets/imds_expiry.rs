//! Token expiry parsing of IMDS (`imds::parse_token`: strings or numbers, `expires_on` epoch or
//! `expires_in` seconds) and Entra ID (`entra::parse_token`: numbers).
//!
//! Input: `NOW\nBODY`; `now` is the first line's number reduced below 2^40 (a clock, not upstream
//! data: year 36812 at most); every body value is unbounded. Properties: never panics; when a
//! token is returned, `expires_on` is the body's epoch `expires_on` (> 10^9) or else at least
//! `now` (`now + expires_in`, or `now + 300` without either), `refresh_at <= expires_on`, and a
//! fresh token is usable.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::Value;
use tenant_bridge::identity::Token;
use tenant_bridge::{entra, imds};

fuzz_target!(|data: &[u8]| {
    let (line, body) = common::first_line(data);
    let now = common::number(line) % (1 << 40);
    // The oracles mirror each parser's fields, in order, as plain JSON values: serde then accepts
    // the same documents (unknown fields skipped unvalidated, duplicates refused, and a JSON array
    // read field by field), so they read whatever the parser reads.
    let oracle: Option<ImdsFields> = serde_json::from_slice(body).ok();

    if let Some(t) = imds::parse_token(body, now) {
        check_token(&t, now, "imds");
        let Some(f) = &oracle else {
            panic!("imds accepted a body the oracle cannot read");
        };
        let number = |v: &Option<Value>| v.as_ref().and_then(as_u64);
        match number(&f.expires_on).filter(|e| *e > 1_000_000_000) {
            Some(epoch) => assert_eq!(t.expires_on, epoch, "imds: epoch expires_on"),
            None => {
                assert!(
                    t.expires_on >= now,
                    "imds: expires_on {} before now {now}",
                    t.expires_on
                );
                match number(&f.expires_in) {
                    Some(s) => {
                        if let Some(e) = now.checked_add(s) {
                            assert_eq!(t.expires_on, e, "imds: now + expires_in");
                        }
                    }
                    None => assert_eq!(t.expires_on, now + 300, "imds: default lifetime"),
                }
            }
        }
    }

    if let Some(t) = entra::parse_token(body, now) {
        check_token(&t, now, "entra");
        assert!(
            t.expires_on >= now,
            "entra: expires_on {} before now {now}",
            t.expires_on
        );
        let expires_in = serde_json::from_slice::<EntraFields>(body)
            .ok()
            .and_then(|f| f.expires_in)
            .and_then(|v| v.as_u64())
            .expect("entra accepted a token without a numeric expires_in");
        if let Some(e) = now.checked_add(expires_in) {
            assert_eq!(t.expires_on, e, "entra: now + expires_in");
        }
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
    expires_in: Option<Value>,
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

fn check_token(t: &Token, now: u64, who: &str) {
    assert!(!t.access_token.is_empty(), "{who}: empty access token");
    assert!(
        t.refresh_at <= t.expires_on,
        "{who}: refresh_at {} after expires_on {}",
        t.refresh_at,
        t.expires_on
    );
    if t.fresh(now) {
        assert!(t.usable(now), "{who}: fresh but not usable");
    }
}
