//! `fuzzing::storage_error_code` and `fuzzing::storage_problem` (`blob::error_code`,
//! `blob::error_problem`): a Storage error answer (`x-ms-error-code` header or the `<Code>` of
//! the XML body) and the problem it becomes.
//!
//! Input: `STATUS\nName: value\n…\n\nBODY` (status folded into 400..=599). Properties: never
//! panics; the code is exactly the trimmed first `x-ms-error-code` header (any case), else the
//! trimmed text between the first `<Code>` and the next `</Code>`, else empty — cut to 100
//! characters and `…` when longer; the problem is 404 exactly for a 404 (`container-not-found`
//! exactly for `ContainerNotFound`, else `blob-not-found`), 503 with `Retry-After` exactly for
//! 429/503, otherwise 502; well-formed and bounded (`common::check_problem`) also for a
//! maximal blob name, and its detail names the code when it names one.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tenant_bridge::fuzzing::{storage_error_code, storage_problem};

fuzz_target!(|data: &[u8]| {
    let up = common::upstream_response(data);
    let code = storage_error_code(up.status, &up.headers, &up.body);

    let expected = match up.header("x-ms-error-code") {
        Some(h) => h.trim().to_string(),
        None => {
            let text = String::from_utf8_lossy(&up.body);
            text.split_once("<Code>")
                .and_then(|(_, rest)| rest.split_once("</Code>"))
                .map(|(c, _)| c.trim().to_string())
                .unwrap_or_default()
        }
    };
    let shown: String = if expected.chars().count() > 100 {
        expected.chars().take(100).chain(['…']).collect()
    } else {
        expected
    };
    assert_eq!(code, shown, "error code");

    let long_blob = "\u{10348}".repeat(1024);
    for (container, blob) in [
        ("reports", "2026/q1.pdf"),
        ("$root", "a b/ü?#%2e.txt"),
        ("c01", long_blob.as_str()),
    ] {
        let p = storage_problem(up.status, &up.headers, &up.body, container, blob);
        common::check_problem(&p, "storage");
        assert!(matches!(p.status, 404 | 502 | 503), "status {}", p.status);
        assert_eq!(p.status == 404, up.status == 404, "404 mapping");
        if up.status == 404 {
            let want = if code == "ContainerNotFound" {
                "container-not-found"
            } else {
                "blob-not-found"
            };
            assert_eq!(p.code, want, "404 code for {code:?}");
        }
        assert_eq!(
            p.status == 503,
            matches!(up.status, 429 | 503),
            "503 mapping"
        );
        if p.status == 503 {
            assert!(p.retry_after.is_some(), "throttling without Retry-After");
        }
        if p.status == 502 && !code.is_empty() {
            assert!(
                p.detail.contains(&code),
                "detail without the code: {}",
                p.detail
            );
        }
    }
});
