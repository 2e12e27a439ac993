//! `fuzzing::answers`: the typed (serde) readers of the JSON answers the component receives — a
//! Key Vault secret bundle's `value`, an ACR exchange's `refresh_token`, an ACR token answer's
//! `access_token` — and of the token cache's entries, which any replica may have written. (IMDS
//! and Entra token answers: `imds_expiry`; error bodies: `json_errors`; claims: `jwt_claims`.)
//!
//! Input: any bytes, as a body. Properties: never panics; a reader accepts only a UTF-8 body that
//! is one JSON object; a token or value read is exactly the string member of that name, and a
//! body whose object has that member once, as a string, is never refused (an oracle reading the
//! top-level members itself, so a repeated member is seen); a cache entry read and written back
//! reads back the same, with only the entry's members, in the entry's order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use tenant_bridge::fuzzing::answers;

fuzz_target!(|data: &[u8]| {
    let a = answers(data);
    let members = TopLevel::read(data);
    for (name, read) in [
        ("value", &a.secret_value),
        ("refresh_token", &a.refresh_token),
        ("access_token", &a.access_token),
    ] {
        let Some(members) = &members else {
            assert!(
                read.is_none(),
                "{name}: read from a body that is not a UTF-8 JSON object"
            );
            continue;
        };
        let found: Vec<&Value> = members
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)
            .collect();
        match (read, found.as_slice()) {
            (Some(s), [Value::String(v)]) => assert_eq!(s, v, "{name}: read differently"),
            (Some(_), other) => panic!("{name}: read although the body has {other:?}"),
            (None, [Value::String(v)]) => panic!("{name}: refused a body whose {name} is {v:?}"),
            (None, _) => {}
        }
    }
    if let Some(entry) = &a.cache_entry {
        assert!(
            members.is_some(),
            "cache entry read from a body that is not a UTF-8 JSON object"
        );
        assert_eq!(
            answers(entry).cache_entry.as_ref(),
            Some(entry),
            "a written entry reads back differently"
        );
        let written = TopLevel::read(entry).expect("a written entry is a JSON object");
        let order = [
            "token",
            "expires_on",
            "refresh_at",
            "lease",
            "owner",
            "failed",
        ];
        let positions: Vec<usize> = written
            .iter()
            .map(|(k, _)| {
                order
                    .iter()
                    .position(|o| o == k)
                    .expect("only the entry's members")
            })
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "members out of order: {written:?}"
        );
    }
});

/// The top-level members of a UTF-8 JSON object, in order, repeats kept; values that
/// serde_json's `Value` cannot hold (a number beyond `f64`, a lone surrogate) as `null`.
struct TopLevel(Vec<(String, Value)>);

impl TopLevel {
    fn read(data: &[u8]) -> Option<Vec<(String, Value)>> {
        let text = std::str::from_utf8(data).ok()?;
        serde_json::from_str::<TopLevel>(text).ok().map(|t| t.0)
    }
}

impl<'de> Deserialize<'de> for TopLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopLevel;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
                let mut members = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    let raw: Box<serde_json::value::RawValue> = map.next_value()?;
                    let v = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
                    members.push((k, v));
                }
                Ok(TopLevel(members))
            }
        }
        d.deserialize_map(V)
    }
}
