//! Decoding and checks shared by the fuzz targets, against the `tenant_bridge::fuzzing` facade
//! (the crate's modules are private). Inputs are line-oriented text so the seed corpora stay
//! readable and editable by hand; every byte string decodes to *some* input, never a rejection.
#![allow(dead_code)]

use tenant_bridge::fuzzing::ProblemFields;

/// What a reader sees in a body or a log line (JSON decoded, percent-escapes undone): the
/// testkit's log scanner reads lines the same way, from this one file.
#[path = "../../../testkit/src/world/scan/reading.rs"]
pub mod reading;

/// Longest problem detail accepted by the properties. Details echo names and upstream error
/// codes, each bounded by design (`errors::truncate`), so 2 KiB is far above any legitimate one.
pub const MAX_DETAIL_BYTES: usize = 2048;
/// Longest rendered problem body: the detail (JSON-escaped, so up to 6 bytes for a control
/// character a path may carry) plus type, title, status and code.
pub const MAX_BODY_BYTES: usize = 4096;
/// Longest `Retry-After` passed on to a caller (`errors::MAX_RETRY_AFTER`).
pub const MAX_RETRY_AFTER: u64 = 120;

/// Splits off the first line (without its `\n`); the rest follows the newline.
pub fn first_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// A decimal number from a line; other bytes are folded in so every line maps to some number.
pub fn number(line: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(line);
    match text.trim().parse::<u64>() {
        Ok(n) => n,
        Err(_) => line.iter().fold(0u64, |acc, b| {
            acc.wrapping_mul(31).wrapping_add(u64::from(*b))
        }),
    }
}

/// An upstream error status: numbers in 400..=599 stay, others are folded into that range.
pub fn error_status(n: u64) -> u16 {
    if (400..600).contains(&n) {
        n as u16
    } else {
        (400 + n % 200) as u16
    }
}

/// An upstream answer as the facade's error mappers take it.
pub struct Upstream {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Upstream {
    /// The first header of that name (case-insensitive), as `upstream::Head::header`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `STATUS\nName: value\n…\n\nBODY`: a status line, header lines up to the first empty line,
/// then the body as raw bytes (no blank line: headers only, empty body).
pub fn upstream_response(data: &[u8]) -> Upstream {
    let (status, mut rest) = first_line(data);
    let mut headers = Vec::new();
    loop {
        if rest.is_empty() {
            break;
        }
        let (line, after) = first_line(rest);
        rest = after;
        if line.is_empty() {
            break;
        }
        let line = String::from_utf8_lossy(line);
        let (name, value) = line.split_once(':').unwrap_or((&line, ""));
        headers.push((
            name.to_string(),
            value.strip_prefix(' ').unwrap_or(value).to_string(),
        ));
    }
    Upstream {
        status: error_status(number(status)),
        headers,
        body: rest.to_vec(),
    }
}

/// A stable machine code: lowercase letters, digits and single inner dashes.
pub fn is_code(code: &str) -> bool {
    let b = code.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1] != b'-'
        && !code.contains("--")
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// What every answer carrying a problem, a secret, a blob or a token must have: never cached,
/// never sniffed, and (for complete bodies) an exact `Content-Length`.
pub fn check_answer_headers(headers: &[(String, String)], body: &[u8], context: &str) {
    assert_eq!(
        header(headers, "cache-control"),
        Some("no-store"),
        "{context}: cache-control in {headers:?}"
    );
    assert_eq!(
        header(headers, "x-content-type-options"),
        Some("nosniff"),
        "{context}: nosniff in {headers:?}"
    );
    assert_eq!(
        header(headers, "content-length"),
        Some(body.len().to_string().as_str()),
        "{context}: content-length in {headers:?}"
    );
}

/// A rendered problem answer (status, headers, body) as a caller sees it; `code` is the code
/// the problem was made with. Returns the parsed body (`Null` for the empty 401).
pub fn check_problem_answer(
    status: u16,
    code: &str,
    headers: &[(String, String)],
    body: &[u8],
    context: &str,
) -> serde_json::Value {
    assert!(
        (400..=599).contains(&status),
        "{context}: status {status} is not 4xx/5xx"
    );
    assert!(
        is_code(code),
        "{context}: code {code:?} is not a stable kebab-case code"
    );
    check_answer_headers(headers, body, context);
    match header(headers, "retry-after") {
        Some(v) => {
            let s: u64 = v
                .parse()
                .unwrap_or_else(|_| panic!("{context}: retry-after {v:?}"));
            assert!(
                (1..=MAX_RETRY_AFTER).contains(&s),
                "{context}: retry-after {s}"
            );
        }
        None => {}
    }
    if status == 405 {
        assert_eq!(header(headers, "allow"), Some("GET"), "{context}: allow");
    }
    if status == 401 {
        // Functions answers a missing or wrong key with an empty 401.
        assert!(body.is_empty(), "{context}: a 401 with a body");
        assert_eq!(code, "unauthorized", "{context}: 401 code");
        return serde_json::Value::Null;
    }
    assert_eq!(
        header(headers, "content-type"),
        Some("application/problem+json"),
        "{context}: content-type"
    );
    assert!(
        body.len() <= MAX_BODY_BYTES,
        "{context}: problem body of {} bytes (code {code}): {:?}…",
        body.len(),
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{context}: problem body is not JSON ({e})"));
    assert_eq!(v["status"], u64::from(status), "{context}: body status");
    assert_eq!(v["code"], code, "{context}: body code");
    assert_eq!(
        v["type"],
        format!("urn:tenant-bridge:problem:{code}"),
        "{context}: body type"
    );
    let title = v["title"].as_str().expect("a title");
    assert!(
        !title.is_empty() && title.len() < 64,
        "{context}: title {title:?}"
    );
    let detail = v["detail"].as_str().expect("a detail");
    assert!(
        detail.len() < MAX_DETAIL_BYTES,
        "{context}: detail of {} bytes (code {code}): {:?}…",
        detail.len(),
        detail.chars().take(300).collect::<String>()
    );
    v
}

/// What every problem must satisfy, whatever produced it: the answer is well-formed and agrees
/// with the problem's fields.
pub fn check_problem(p: &ProblemFields, context: &str) {
    let v = check_problem_answer(p.status, &p.code, &p.headers, &p.body, context);
    assert!(
        p.detail.len() < MAX_DETAIL_BYTES,
        "{context}: detail of {} bytes (code {})",
        p.detail.len(),
        p.code
    );
    assert_eq!(
        header(&p.headers, "retry-after").map(str::to_string),
        p.retry_after.map(|s| s.to_string()),
        "{context}: retry-after header vs field"
    );
    if let Some(s) = p.retry_after {
        assert!(
            (1..=MAX_RETRY_AFTER).contains(&s),
            "{context}: retry_after {s}"
        );
    }
    if p.status != 401 {
        assert_eq!(v["detail"], p.detail.as_str(), "{context}: body detail");
        assert_eq!(v["title"], p.title.as_str(), "{context}: body title");
    }
}

/// Whether `needle` occurs anywhere in a problem as a caller or operator would see it.
pub fn problem_mentions(p: &ProblemFields, needle: &str) -> bool {
    p.detail.contains(needle)
        || p.title.contains(needle)
        || reading::visible_text(&p.body).contains(needle)
        || p.headers
            .iter()
            .any(|(k, v)| k.contains(needle) || v.contains(needle))
}
