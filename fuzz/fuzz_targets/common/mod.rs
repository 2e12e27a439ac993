//! Decoding shared by the fuzz targets. Inputs are line-oriented text so the seed corpora stay
//! readable and editable by hand; every byte string decodes to *some* input, never a rejection.
#![allow(dead_code)]

use tenant_bridge::errors::Problem;
use tenant_bridge::upstream::{Head, Response};

/// Longest problem detail accepted by the properties. Details echo names and upstream error
/// codes, each bounded by design (`errors::truncate`), so 2 KiB is far above any legitimate one.
pub const MAX_DETAIL_BYTES: usize = 2048;

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

/// `STATUS\nName: value\n…\n\nBODY`: a status line, header lines up to the first empty line,
/// then the body as raw bytes (no blank line: headers only, empty body).
pub fn upstream_response(data: &[u8]) -> Response {
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
    Response {
        head: Head {
            status: error_status(number(status)),
            headers,
        },
        body: rest.to_vec(),
    }
}

/// What every problem must satisfy, whatever produced it.
pub fn check_problem(p: &Problem, context: &str) {
    assert!(
        (400..=599).contains(&p.status),
        "{context}: status {} is not 4xx/5xx",
        p.status
    );
    assert!(
        !p.code.is_empty()
            && p.code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
        "{context}: code {:?} is not a stable kebab-case code",
        p.code
    );
    assert!(
        p.detail.len() < MAX_DETAIL_BYTES,
        "{context}: detail of {} bytes (code {}): {:?}…",
        p.detail.len(),
        p.code,
        p.detail.chars().take(300).collect::<String>()
    );
    let body: serde_json::Value = serde_json::from_slice(&p.body()).expect("problem body is JSON");
    assert_eq!(
        body["status"],
        u64::from(p.status),
        "{context}: body status"
    );
    assert_eq!(body["code"], p.code, "{context}: body code");
    assert_eq!(body["detail"], p.detail.as_str(), "{context}: body detail");
}
