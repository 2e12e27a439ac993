//! `base64_stream::Base64Stream`: blobs are base64-encoded chunk by chunk as they stream.
//!
//! Input: `N` (first byte, mod 16) chunk sizes in the next `N` bytes (0 = an empty push), then the
//! data, cut into chunks of those sizes in turn. Properties: never panics; the concatenated
//! output equals `base64::STANDARD` of the whole data, and its length equals `encoded_len`; the
//! output after each push is a whole number of 4-byte groups and a prefix of the reference.
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use tenant_bridge::base64_stream::{encoded_len, Base64Stream};

fuzz_target!(|input: &[u8]| {
    let Some((&n, rest)) = input.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (sizes, data) = rest.split_at(n);
    let sizes: Vec<usize> = if sizes.is_empty() {
        vec![data.len().max(1)]
    } else {
        sizes.iter().map(|s| usize::from(*s)).collect()
    };
    let reference = STANDARD.encode(data);

    let mut enc = Base64Stream::default();
    let mut out = Vec::new();
    let mut remaining = data;
    let mut i = 0;
    // Empty pushes are allowed, but bounded so a run of zero sizes still ends.
    while !remaining.is_empty() && i < data.len() + sizes.len() * 2 {
        let take = sizes[i % sizes.len()].min(remaining.len());
        enc.push(&remaining[..take], &mut out);
        remaining = &remaining[take..];
        assert_eq!(out.len() % 4, 0, "partial group after a push");
        assert!(
            reference.as_bytes().starts_with(&out),
            "output is not a prefix"
        );
        i += 1;
    }
    enc.push(remaining, &mut out);
    enc.finish(&mut out);
    assert_eq!(out, reference.as_bytes());
    assert_eq!(out.len() as u64, encoded_len(data.len() as u64));
});
