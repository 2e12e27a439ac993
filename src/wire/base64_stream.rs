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

/// Room [`Base64Stream::push`] needs in `out` for an input of `n` bytes (two may be carried in).
pub fn push_room(n: usize) -> usize {
    // Whole groups in n + 2 bytes: ⌊(n + 2) / 3⌋ = ⌈n / 3⌉.
    n.div_ceil(3) * 4
}

impl Base64Stream {
    /// Encodes what can be encoded now into `out` (at least [`push_room`] of the input's
    /// length) and returns how many bytes it wrote.
    pub fn push(&mut self, mut input: &[u8], out: &mut [u8]) -> usize {
        let mut written = 0;
        if self.carried > 0 {
            let need = 3 - self.carried;
            if input.len() < need {
                self.carry[self.carried..self.carried + input.len()].copy_from_slice(input);
                self.carried += input.len();
                return 0;
            }
            let mut group = [0u8; 3];
            group[..self.carried].copy_from_slice(&self.carry[..self.carried]);
            group[self.carried..].copy_from_slice(&input[..need]);
            written = encode_groups(&group, out);
            input = &input[need..];
            self.carried = 0;
        }
        let whole = input.len() / 3 * 3;
        written += encode_groups(&input[..whole], &mut out[written..]);
        let rest = &input[whole..];
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carried = rest.len();
        written
    }

    /// Encodes the leftover bytes with padding into `out` (4 bytes suffice); returns how many
    /// bytes it wrote.
    pub fn finish(self, out: &mut [u8]) -> usize {
        scalar(&self.carry[..self.carried], out)
    }
}

/// Encodes whole 3-byte groups: 12 at a time with wasm SIMD where the build has it, the rest
/// (and every group on other targets) with the `base64` crate.
fn encode_groups(bytes: &[u8], out: &mut [u8]) -> usize {
    #[cfg(target_arch = "wasm32")]
    {
        // SAFETY: every engine Spin 3.6.3 and SpinKube run enables SIMD128 (wasmtime's
        // default); a module using it would fail to load, not misbehave, where it is off.
        let blocks = unsafe { simd::encode_blocks(bytes, out) };
        scalar(&bytes[blocks * 12..], &mut out[blocks * 16..]) + blocks * 16
    }
    #[cfg(not(target_arch = "wasm32"))]
    scalar(bytes, out)
}

fn scalar(bytes: &[u8], out: &mut [u8]) -> usize {
    // Callers size `out` with `push_room`. Were it short, nothing would be written: a body
    // short of its Content-Length, which the host breaks rather than ends.
    STANDARD.encode_slice(bytes, out).unwrap_or(0)
}

/// Base64 of 12 input bytes per 16-byte vector (the SSE method of Muła and Lemire, "Faster
/// Base64 Encoding and Decoding Using AVX2 Instructions", 2018, in WebAssembly SIMD): the
/// relay's encoding was a third of a large blob's transfer time at opt-level "s".
#[cfg(target_arch = "wasm32")]
mod simd {
    use core::arch::wasm32::*;

    /// Encodes as many 12-byte blocks as can be loaded 16 bytes at a time within `input` and
    /// stored within `out`; returns how many it encoded.
    #[target_feature(enable = "simd128")]
    pub(super) unsafe fn encode_blocks(input: &[u8], out: &mut [u8]) -> usize {
        // Block i loads input[12i..12i+16] and stores out[16i..16i+16].
        let blocks = (input.len().saturating_sub(4) / 12).min(out.len() / 16);
        let (src, dst) = (input.as_ptr(), out.as_mut_ptr());
        let mut i = 0;
        // Four blocks a turn: the loop's bookkeeping and bounds checks are paid a quarter as often.
        while i + 4 <= blocks {
            // SAFETY (both loops): 12i + 16 <= input.len() and 16i + 16 <= out.len() for every
            // i < blocks; wasm loads and stores need no alignment.
            unsafe {
                let a = v128_load(src.add(12 * i) as *const v128);
                let b = v128_load(src.add(12 * i + 12) as *const v128);
                let c = v128_load(src.add(12 * i + 24) as *const v128);
                let d = v128_load(src.add(12 * i + 36) as *const v128);
                v128_store(dst.add(16 * i) as *mut v128, encode(a));
                v128_store(dst.add(16 * i + 16) as *mut v128, encode(b));
                v128_store(dst.add(16 * i + 32) as *mut v128, encode(c));
                v128_store(dst.add(16 * i + 48) as *mut v128, encode(d));
            }
            i += 4;
        }
        while i < blocks {
            unsafe {
                let v = v128_load(src.add(12 * i) as *const v128);
                v128_store(dst.add(16 * i) as *mut v128, encode(v));
            }
            i += 1;
        }
        blocks
    }

    /// The 16 ASCII characters of the first 12 bytes of `v`.
    #[target_feature(enable = "simd128")]
    #[inline]
    fn encode(v: v128) -> v128 {
        // Each 32-bit lane gets one group's bytes as [b, a, c, b]: its low half is a:b, its
        // high half b:c, so each 6-bit index is one shift and mask away.
        let v = i8x16_swizzle(v, i8x16(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10));
        // Bytes 0 and 2 of a lane: a:b >> 10 and b:c >> 6.
        let even = v128_or(
            u16x8_shr(v128_and(v, u32x4_splat(0x0000_fc00)), 10),
            u32x4_shr(v128_and(v, u32x4_splat(0x0fc0_0000)), 6),
        );
        // Bytes 1 and 3: a:b << 4 and b:c << 8. (Not one multiply by [16, 256]: LLVM turns that
        // into per-lane shifts, which WebAssembly SIMD only has as scalar code.)
        let odd = v128_or(
            v128_and(u32x4_shl(v, 4), u32x4_splat(0x0000_3f00)),
            v128_and(u32x4_shl(v, 8), u32x4_splat(0x3f00_0000)),
        );
        let indices = v128_or(even, odd);
        // Index class -> what to add to reach its ASCII: 0 for 26..=51 ('a'..), 1..=10 for
        // 52..=61 ('0'..), 11 '+', 12 '/', 13 for 0..=25 ('A'..).
        let class = v128_or(
            u8x16_sub_sat(indices, u8x16_splat(51)),
            v128_and(i8x16_gt(i8x16_splat(26), indices), i8x16_splat(13)),
        );
        let offsets = i8x16(
            71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 65, 0, 0,
        );
        i8x16_add(indices, i8x16_swizzle(offsets, class))
    }
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
            push(&mut enc, &rest[..n], &mut out);
            rest = &rest[n..];
            i += 1;
        }
        let mut tail = [0u8; 4];
        let n = enc.finish(&mut tail);
        out.extend_from_slice(&tail[..n]);
        out
    }

    fn push(enc: &mut Base64Stream, input: &[u8], out: &mut Vec<u8>) {
        let mut buf = vec![0u8; push_room(input.len())];
        let n = enc.push(input, &mut buf);
        out.extend_from_slice(&buf[..n]);
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
        push(&mut enc, b"", &mut out);
        push(&mut enc, b"a", &mut out);
        push(&mut enc, b"", &mut out);
        let mut tail = [0u8; 4];
        let n = enc.finish(&mut tail);
        out.extend_from_slice(&tail[..n]);
        assert_eq!(out, b"YQ==");
    }
}
