//! What a reader sees in a log line or a body: for JSON, the strings it decodes to (escapes
//! undone); percent-escapes undone once. The log scanner reads lines this way, and so do the
//! fuzz targets' properties (no secret in a problem or a log line), which include this file with
//! `#[path]` (fuzz/fuzz_targets/common/mod.rs): it uses serde_json and nothing of the testkit, so
//! fuzz builds need none of the testkit's dependencies.

/// The text a reader of `bytes` sees: for JSON, every key and string it decodes to (escapes
/// undone, so a `\u0017` cannot end in a `7` that completes a secret), NUL-separated; otherwise
/// the bytes as text.
pub fn visible_text(bytes: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v) => json_strings(&v),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Every key and string of `v`, and every other value as JSON, NUL-separated (a slice of the
/// result never spans two of them).
pub fn json_strings(v: &serde_json::Value) -> String {
    fn collect(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::String(s) => {
                out.push_str(s);
                out.push('\0');
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| collect(i, out)),
            serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| {
                out.push_str(k);
                out.push('\0');
                collect(v, out);
            }),
            other => {
                out.push_str(&other.to_string());
                out.push('\0');
            }
        }
    }
    let mut out = String::new();
    collect(v, &mut out);
    out
}

/// One round of RFC 3986 percent-decoding; malformed escapes stay as they are.
pub fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}
