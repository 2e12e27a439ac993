//! `fuzzing::base64_chunked` (`base64_stream::Base64Stream`): blobs are base64-encoded chunk by
//! chunk as they stream, and `fuzzing::base64_encoded_len` gives the `Content-Length` up front.
//!
//! Input: `N` (first byte, mod 16) chunk sizes in the next `N` bytes (0 is read as 1 by the
//! facade), then the data, cut into chunks of those sizes in turn. Properties: never panics; for
//! the input's chunking, one whole push, single bytes and every prefix length cut, the output
//! equals `base64::STANDARD` of the whole data; its length equals `base64_encoded_len`, which is
//! also exact (`4 * ceil(n / 3)`) for the input's size bytes read as a big `u64`.
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use tenant_bridge::fuzzing::{base64_chunked, base64_encoded_len};

/// Largest `n` whose encoded length fits a `u64`: `4 * ceil(n / 3) ≤ u64::MAX`.
const MAX_ENCODABLE: u64 = u64::MAX / 4 * 3;

fuzz_target!(|input: &[u8]| {
    let Some((&n, rest)) = input.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (sizes, data) = rest.split_at(n);
    let sizes: Vec<usize> = sizes.iter().map(|s| usize::from(*s)).collect();
    let reference = STANDARD.encode(data);

    let check = |sizes: &[usize], how: &str| {
        let out = base64_chunked(data, sizes);
        assert_eq!(
            String::from_utf8_lossy(&out),
            reference,
            "{how} chunks {sizes:?}"
        );
    };
    check(&sizes, "input");
    check(&[data.len().max(1)], "one push");
    if data.len() <= 64 {
        check(&[1], "single bytes");
        // A first chunk of every length, the rest in one push.
        for cut in 1..data.len() {
            check(&[cut, data.len()], "cut");
        }
    }
    assert_eq!(
        base64_encoded_len(data.len() as u64),
        reference.len() as u64,
        "encoded_len"
    );

    // The length formula for sizes no test data reaches (a Content-Length from Storage).
    let mut big = [0u8; 8];
    let take = sizes.len().min(8);
    for (b, s) in big.iter_mut().zip(&sizes[..take]) {
        *b = *s as u8;
    }
    let big = u64::from_be_bytes(big).min(MAX_ENCODABLE);
    assert_eq!(
        base64_encoded_len(big),
        big.div_ceil(3) * 4,
        "encoded_len({big})"
    );
});
