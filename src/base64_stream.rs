//! Standard base64 (with padding) produced chunk by chunk, so a blob of any size streams through a
//! fixed buffer: whole 3-byte groups are encoded as they arrive and the 0-2 leftover bytes wait
//! for the next chunk.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

#[derive(Default)]
pub struct Base64Stream {
    carry: [u8; 2],
    carried: usize,
}

/// Exact encoded length of `n` input bytes, for `Content-Length`.
pub fn encoded_len(n: u64) -> u64 {
    n.div_ceil(3) * 4
}

impl Base64Stream {
    /// Encodes what can be encoded now and appends it to `out`.
    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        if self.carried > 0 {
            let need = 3 - self.carried;
            if input.len() < need {
                self.carry[self.carried..self.carried + input.len()].copy_from_slice(input);
                self.carried += input.len();
                return;
            }
            let mut group = [0u8; 3];
            group[..self.carried].copy_from_slice(&self.carry[..self.carried]);
            group[self.carried..].copy_from_slice(&input[..need]);
            encode_into(&group, out);
            input = &input[need..];
            self.carried = 0;
        }
        let whole = input.len() / 3 * 3;
        encode_into(&input[..whole], out);
        let rest = &input[whole..];
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carried = rest.len();
    }

    /// Encodes the leftover bytes with padding.
    pub fn finish(self, out: &mut Vec<u8>) {
        encode_into(&self.carry[..self.carried], out);
    }
}

fn encode_into(bytes: &[u8], out: &mut Vec<u8>) {
    if bytes.is_empty() {
        return;
    }
    let start = out.len();
    out.resize(start + encoded_len(bytes.len() as u64) as usize, 0);
    // The slice is sized exactly, so encoding cannot run out of room.
    let written = STANDARD.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(data: &[u8], sizes: &[usize]) -> Vec<u8> {
        let mut enc = Base64Stream::default();
        let mut out = Vec::new();
        let mut rest = data;
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes[i % sizes.len()].min(rest.len());
            enc.push(&rest[..n], &mut out);
            rest = &rest[n..];
            i += 1;
        }
        enc.finish(&mut out);
        out
    }

    #[test]
    fn matches_reference_for_every_small_length_and_chunking() {
        let data: Vec<u8> = (0..=255u8).cycle().take(300).collect();
        for len in 0..40 {
            let reference = STANDARD.encode(&data[..len]);
            for sizes in [
                &[1][..],
                &[2],
                &[3],
                &[4],
                &[1, 2],
                &[2, 5, 1],
                &[7],
                &[1000],
            ] {
                let got = chunked(&data[..len], sizes);
                assert_eq!(
                    String::from_utf8(got).unwrap(),
                    reference,
                    "len {len} sizes {sizes:?}"
                );
            }
        }
    }

    #[test]
    fn encoded_len_is_exact() {
        for n in 0..50u64 {
            assert_eq!(
                encoded_len(n) as usize,
                STANDARD.encode(vec![0u8; n as usize]).len()
            );
        }
    }

    #[test]
    fn empty_pushes_are_harmless() {
        let mut enc = Base64Stream::default();
        let mut out = Vec::new();
        enc.push(b"", &mut out);
        enc.push(b"a", &mut out);
        enc.push(b"", &mut out);
        enc.finish(&mut out);
        assert_eq!(out, b"YQ==");
    }
}
