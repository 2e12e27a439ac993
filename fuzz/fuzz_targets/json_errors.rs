//! The JSON error mappers of Key Vault, Entra ID and IMDS, and Storage's (`fuzzing::
//! keyvault_problem`, `entra_problem`, `imds_problem`, `storage_problem`), on any error status,
//! headers and body.
//!
//! Input: `STATUS\nName: value\n…\n\nBODY` (status folded into 400..=599; headers such as
//! `Retry-After` matter for 429/503). Properties: never panics; every problem is 4xx/5xx with a
//! kebab-case code, a detail under 2 KiB and a JSON body and headers that agree
//! (`common::check_problem`); only the statuses each mapping documents appear (Key Vault 404
//! exactly for 404, 409, 502, or 503 exactly for 429; Entra 503 for 429/5xx, else 502; IMDS 503
//! for 404/410/429/5xx, else 502; Storage 404 exactly for 404, 503 for 429/503, else 502); a
//! throttled 429 passes the service's `Retry-After` on (capped at 120 s); the managed identity's
//! assertion (the whole token, or its signature) is never echoed; and no JSON mapper reads a
//! token the body carries: replacing every `access_token`/`refresh_token`/`id_token` value in
//! the body changes no Key Vault, Entra or IMDS problem.
#![no_main]

mod common;

use common::Upstream;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tenant_bridge::fuzzing::{
    entra_problem, imds_problem, keyvault_problem, retry_after_seconds, storage_problem,
    ProblemFields,
};

/// A managed identity token as the exchange presents it: header, claims (iss, sub, aud, tid,
/// oid), and a signature that must never show up in a detail.
const ASSERTION: &str = concat!(
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.",
    "eyJpc3MiOiJodHRwczovL2xvZ2luLm1pY3Jvc29mdG9ubGluZS5jb20vYWFhYS92Mi4wIiwic3ViIjoiT2lkLTEi",
    "LCJhdWQiOiJhcGk6Ly9BenVyZUFEVG9rZW5FeGNoYW5nZSIsInRpZCI6ImFhYWEiLCJvaWQiOiJPaWQtMSJ9.",
    "U0lHTkFUVVJFLW9mLXRoZS1tYW5hZ2VkLWlkZW50aXR5LVpxOTE",
);
const SIGNATURE: &str = "U0lHTkFUVVJFLW9mLXRoZS1tYW5hZ2VkLWlkZW50aXR5LVpxOTE";

/// Body fields that hold tokens: no mapper may read them.
const TOKEN_FIELDS: &[&str] = &["access_token", "refresh_token", "id_token"];

fuzz_target!(|data: &[u8]| {
    let up = common::upstream_response(data);
    let problems = map_all(&up);

    // No mapper reads a token the body carries.
    if let Ok(mut v) = serde_json::from_slice::<Value>(&up.body) {
        let original = serde_json::to_vec(&v).expect("a Value serialises");
        if redact(&mut v) {
            let redacted = serde_json::to_vec(&v).expect("a Value serialises");
            let before = map_all(&Upstream {
                body: original,
                headers: up.headers.clone(),
                ..up
            });
            let after = map_all(&Upstream {
                body: redacted,
                headers: up.headers.clone(),
                ..up
            });
            // Storage answers in XML, read as text: only the JSON mappers are held to this.
            assert_eq!(
                (before.keyvault, before.entra, before.imds),
                (after.keyvault, after.entra, after.imds),
                "a token field changed a problem"
            );
        }
    }

    let status = up.status;
    let hint = retry_after_seconds(&up.headers);
    let throttled = |p: &ProblemFields, default: u64, who: &str| {
        assert_eq!(p.status, 503, "{who}: 429 is a 503");
        assert_eq!(p.code, "upstream-throttled", "{who}: 429 code");
        assert_eq!(
            p.retry_after,
            Some(hint.unwrap_or(default).clamp(1, common::MAX_RETRY_AFTER)),
            "{who}: Retry-After of a 429 ({:?})",
            up.header("retry-after")
        );
    };

    for p in &problems.keyvault {
        common::check_problem(p, "keyvault");
        assert!(
            matches!(p.status, 404 | 409 | 502 | 503),
            "keyvault status {}",
            p.status
        );
        assert_eq!(p.status == 404, status == 404, "keyvault 404 mapping");
        assert_eq!(p.status == 503, status == 429, "keyvault 503 mapping");
        assert_eq!(p.status == 409, p.code == "secret-disabled");
        if status == 429 {
            throttled(p, 1, "keyvault");
        }
    }

    for (p, assertion) in problems.entra.iter().zip([ASSERTION, "not-a-jwt"]) {
        common::check_problem(p, "entra");
        let transient = status == 429 || status >= 500;
        assert_eq!(
            p.status,
            if transient { 503 } else { 502 },
            "entra status for {status}"
        );
        if status == 429 {
            throttled(p, 5, "entra");
        } else if transient {
            assert_eq!(p.retry_after, Some(5), "entra 5xx retry");
        }
        // Text the upstream answer itself carried may be echoed (error codes, trace ids).
        for secret in [assertion, SIGNATURE] {
            if !upstream_carries(&up, secret) {
                assert!(
                    !common::problem_mentions(p, secret),
                    "entra echoed the assertion: {}",
                    p.detail
                );
            }
        }
    }

    for p in &problems.imds {
        common::check_problem(p, "imds");
        let transient = matches!(status, 404 | 410 | 429 | 500..=599);
        assert_eq!(
            p.status,
            if transient { 503 } else { 502 },
            "imds status for {status}"
        );
        if status == 429 {
            throttled(p, 1, "imds");
        } else if transient {
            assert_eq!(
                p.retry_after,
                Some(hint.unwrap_or(5).clamp(1, common::MAX_RETRY_AFTER)),
                "imds unavailable retry"
            );
        }
    }

    for p in &problems.storage {
        common::check_problem(p, "storage");
        assert!(
            matches!(p.status, 404 | 502 | 503),
            "storage status {}",
            p.status
        );
        assert_eq!(p.status == 404, status == 404, "storage 404 mapping");
        assert_eq!(
            p.status == 503,
            matches!(status, 429 | 503),
            "storage 503 mapping"
        );
        if matches!(status, 429 | 503) {
            throttled(p, 1, "storage");
        }
    }
});

#[derive(Debug, PartialEq, Eq)]
struct Problems {
    keyvault: Vec<ProblemFields>,
    entra: Vec<ProblemFields>,
    imds: Vec<ProblemFields>,
    storage: Vec<ProblemFields>,
}

fn map_all(up: &Upstream) -> Problems {
    let (s, h, b) = (up.status, up.headers.as_slice(), up.body.as_slice());
    // A long name at its limit too: 1024 four-byte characters (cut to 200 in details).
    let long_blob = "\u{10348}".repeat(1024);
    Problems {
        keyvault: ["TEST-SECRET-001", &"a".repeat(127)]
            .iter()
            .map(|name| keyvault_problem(s, h, b, name))
            .collect(),
        entra: [ASSERTION, "not-a-jwt"]
            .iter()
            .map(|a| entra_problem(s, h, b, a))
            .collect(),
        imds: [None, Some("11111111-2222-3333-4444-555555555555")]
            .iter()
            .map(|id| imds_problem(s, h, b, *id))
            .collect(),
        storage: [("reports", "2026/q1.pdf"), ("$web", long_blob.as_str())]
            .iter()
            .map(|(c, blob)| storage_problem(s, h, b, c, blob))
            .collect(),
    }
}

/// Whether `needle` is in the upstream answer: its headers, its body as text, or any string the
/// body's JSON decodes to (escapes undone).
fn upstream_carries(up: &Upstream, needle: &str) -> bool {
    fn strings(v: &Value, needle: &str) -> bool {
        match v {
            Value::String(s) => s.contains(needle),
            Value::Array(items) => items.iter().any(|i| strings(i, needle)),
            Value::Object(map) => map
                .iter()
                .any(|(k, v)| k.contains(needle) || strings(v, needle)),
            _ => false,
        }
    }
    String::from_utf8_lossy(&up.body).contains(needle)
        || up
            .headers
            .iter()
            .any(|(k, v)| k.contains(needle) || v.contains(needle))
        || serde_json::from_slice::<Value>(&up.body).is_ok_and(|v| strings(&v, needle))
}

/// Replaces every token field's value, at any depth; whether there was one.
fn redact(v: &mut Value) -> bool {
    match v {
        Value::Object(map) => {
            let mut any = false;
            for (k, value) in map.iter_mut() {
                if TOKEN_FIELDS.contains(&k.as_str()) {
                    *value = Value::String("redacted-token".into());
                    any = true;
                } else {
                    any |= redact(value);
                }
            }
            any
        }
        Value::Array(items) => items.iter_mut().fold(false, |any, i| redact(i) | any),
        _ => false,
    }
}
