//! `fuzzing::json_document` (`json::parse`): the component's own JSON reader, which reads every
//! upstream answer and the token cache's entries.
//!
//! Input: any bytes, as a document. Properties: never panics; it accepts exactly what serde_json
//! accepts as a `Value` (syntax, escapes, control characters, UTF-8, nesting depth, numbers out
//! of `f64` range, trailing bytes), and what it read, written back, is the same `Value` (strings
//! unescaped exactly, numbers as written, the last of repeated members as serde_json keeps it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tenant_bridge::fuzzing::json_document;

fuzz_target!(|data: &[u8]| {
    let ours = json_document(data);
    let reference = serde_json::from_slice::<Value>(data);
    match (ours, reference) {
        (Some(text), Ok(value)) => {
            let back: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("our rendering is not JSON ({e}): {text}"));
            assert_eq!(back, value, "read differently: {text}");
        }
        (None, Err(_)) => {}
        (Some(text), Err(e)) => panic!("accepted what serde_json refuses ({e}): {text}"),
        (None, Ok(value)) => panic!("refused what serde_json reads: {value}"),
    }
});
