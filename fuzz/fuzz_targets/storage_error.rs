//! `blob::error_code` and `blob::error_problem`: a Storage error answer (`x-ms-error-code` header
//! or the `<Code>` of the XML body) and the problem it becomes.
//!
//! Input: `STATUS\nName: value\n…\n\nBODY` (status folded into 400..=599). Properties: never
//! panics; the code is the trimmed first `x-ms-error-code` header, else the trimmed text between
//! the first `<Code>` and the next `</Code>`, else empty (a long one may be cut to at least 64
//! characters and `…`); the problem is 404 exactly for a 404,
//! otherwise 502 or 503, well-formed and bounded (see `common::check_problem`).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tenant_bridge::blob::{error_code, error_problem, Target};
use tenant_bridge::config::{parse_origin, BlobService};

fuzz_target!(|data: &[u8]| {
    let resp = common::upstream_response(data);
    let code = error_code(&resp.head, &resp.body);

    let header = resp
        .head
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-ms-error-code"))
        .map(|(_, v)| v.trim().to_string());
    let expected = header.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&resp.body);
        match text.find("<Code>") {
            Some(start) => {
                let inner = &text[start + "<Code>".len()..];
                inner
                    .find("</Code>")
                    .map(|end| inner[..end].trim().to_string())
                    .unwrap_or_default()
            }
            None => String::new(),
        }
    });
    // The code may be cut (`errors::truncate`, ending in '…') to keep details bounded.
    let shown = code.strip_suffix('…').unwrap_or(&code);
    assert!(
        code == expected || (shown.chars().count() >= 64 && expected.starts_with(shown)),
        "error code {code:?}, expected {expected:?}"
    );

    let service = BlobService {
        origin: parse_origin("https://acct.blob.core.windows.net").unwrap(),
        base_path: String::new(),
    };
    let target = Target {
        service: &service,
        container: "reports",
        blob: "2026/q1.pdf",
    };
    let p = error_problem(&resp, &target, "the managed identity");
    common::check_problem(&p, "storage");
    assert_eq!(p.status == 404, resp.status() == 404, "404 mapping");
    assert!(matches!(p.status, 404 | 502 | 503), "status {}", p.status);
});
