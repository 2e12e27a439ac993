//! The blob relay's decisions, on the host target: whether a blob may be served (size limit),
//! the exact `Content-Length` of its base64, and when a transfer must be abandoned rather than
//! finished — a caller must never receive a short body that looks complete. The edge only moves
//! bytes (as spin-fileserver keeps decisions out of its handler).

use crate::base64_stream::{encoded_len, push_room, Base64Stream};
use crate::errors::Problem;
use crate::upstream::{BodyReader, Head};
use http::StatusCode;

/// Where the base64 goes: the response body. `false`: the caller went away.
pub(crate) trait Sink {
    fn write(&mut self, bytes: &[u8]) -> bool;
}

/// What may be served: the blob's length as Storage announced it, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub blob_bytes: Option<u64>,
    pub limit: Option<u64>,
}

impl Plan {
    /// Refuses a blob over `max_blob_bytes` before anything is sent.
    pub(crate) fn new(head: &Head, limit: Option<u64>) -> Result<Plan, Problem> {
        let blob_bytes = head.content_length();
        // Past this, the base64 length does not fit a Content-Length (u64): no such blob exists,
        // so the announced length is a lie, and the relay could never finish it exactly.
        let relayable = (u64::MAX / 4) * 3;
        if let (limit, Some(n)) = (limit.unwrap_or(relayable).min(relayable), blob_bytes) {
            if n > limit {
                return Err(Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "blob-too-large",
                    "Blob too large",
                    format!("the blob is {n} bytes; max_blob_bytes allows {limit}"),
                ));
            }
        }
        Ok(Plan { blob_bytes, limit })
    }

    /// The response's exact `Content-Length`, when Storage gave the blob's.
    pub(crate) fn content_length(&self) -> Option<u64> {
        self.blob_bytes.map(encoded_len)
    }
}

/// How a relay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every byte went out; finish the body.
    Complete { sent: u64 },
    /// Stop and abandon the body (the host resets the transfer); the reason is for the log.
    Abandoned { sent: u64, reason: String },
}

/// The most a body read asks the host for at once (the edge reads upstream bodies in chunks of
/// this size; the relay sizes its base64 buffer for it).
pub(crate) const READ_CHUNK: usize = 256 * 1024;

/// Reads the blob chunk by chunk, writes its base64 through one reused buffer, and decides how
/// the body ends.
pub(crate) fn relay(plan: &Plan, body: &mut impl BodyReader, sink: &mut impl Sink) -> Outcome {
    let mut encoder = Base64Stream::default();
    // One buffer for the whole transfer: a chunk's base64 is encoded into it and written from
    // it. Sized for the blob when it is smaller than a read: a warm small-blob request should
    // not grow the instance's memory (which Spin zeroes after every request) by 340 KiB.
    let step = plan
        .blob_bytes
        .map_or(READ_CHUNK, |n| (n.max(1)).min(READ_CHUNK as u64) as usize);
    let mut out = vec![0u8; push_room(step)];
    let (mut received, mut sent) = (0u64, 0u64);
    let abandon = |sent, reason: String| Outcome::Abandoned { sent, reason };
    loop {
        match body.next_chunk() {
            Ok(Some(chunk)) => {
                received += chunk.len() as u64;
                if plan.limit.is_some_and(|l| received > l) {
                    return abandon(
                        sent,
                        "blob exceeds max_blob_bytes (no Content-Length from Storage)".into(),
                    );
                }
                if let Some(n) = plan.blob_bytes.filter(|&n| received > n) {
                    return abandon(
                        sent,
                        format!("upstream sent more than its Content-Length of {n} bytes"),
                    );
                }
                // A chunk may be larger than the buffer's step (the edge reads up to
                // READ_CHUNK; other readers any size): encode it a step at a time.
                for piece in chunk.chunks(step) {
                    let n = encoder.push(piece, &mut out);
                    if !sink.write(&out[..n]) {
                        return abandon(sent, "caller went away".into());
                    }
                    sent += n as u64;
                }
            }
            Ok(None) => break,
            Err(e) => {
                return abandon(
                    sent,
                    format!("upstream body failed after {received} bytes: {e:?}"),
                )
            }
        }
    }
    if let Some(n) = plan.blob_bytes.filter(|n| *n != received) {
        return abandon(sent, format!("upstream sent {received} of {n} bytes"));
    }
    let n = encoder.finish(&mut out);
    if !sink.write(&out[..n]) {
        return abandon(sent, "caller went away".into());
    }
    Outcome::Complete {
        sent: sent + n as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::scripted::Chunks;
    use crate::upstream::NetError;
    use base64::Engine;
    use std::collections::VecDeque;

    #[derive(Default)]
    struct Collect {
        bytes: Vec<u8>,
        fail_after: Option<usize>,
    }
    impl Sink for Collect {
        fn write(&mut self, b: &[u8]) -> bool {
            if self.fail_after.is_some_and(|n| self.bytes.len() >= n) {
                return false;
            }
            self.bytes.extend_from_slice(b);
            true
        }
    }

    fn head(len: Option<u64>) -> Head {
        Head {
            status: StatusCode::OK,
            headers: len
                .map(|n| ("Content-Length".to_string(), n.to_string()))
                .into_iter()
                .collect(),
        }
    }

    fn body(chunks: &[&[u8]]) -> Chunks {
        Chunks(
            chunks
                .iter()
                .map(|c| Ok(c.to_vec()))
                .collect::<VecDeque<_>>(),
        )
    }

    #[test]
    fn a_length_whose_base64_overflows_is_refused_without_a_limit() {
        let max = (u64::MAX / 4) * 3;
        let plan = Plan::new(&head(Some(max)), None).unwrap();
        assert_eq!(plan.content_length(), Some(u64::MAX / 4 * 4));
        let e = Plan::new(&head(Some(max + 1)), None).unwrap_err();
        assert_eq!(
            (e.status, e.code.as_ref()),
            (StatusCode::PAYLOAD_TOO_LARGE, "blob-too-large")
        );
        assert!(Plan::new(&head(Some(u64::MAX)), Some(u64::MAX)).is_err());
    }

    #[test]
    fn a_complete_blob_is_exact_base64_of_announced_length() {
        let data: Vec<u8> = (0..=255).cycle().take(1000).collect();
        let plan = Plan::new(&head(Some(1000)), None).unwrap();
        assert_eq!(plan.content_length(), Some(1336));
        let mut sink = Collect::default();
        let out = relay(
            &plan,
            &mut body(&[&data[..7], &data[7..500], &data[500..]]),
            &mut sink,
        );
        assert_eq!(out, Outcome::Complete { sent: 1336 });
        assert_eq!(
            sink.bytes,
            base64::engine::general_purpose::STANDARD
                .encode(&data)
                .as_bytes()
        );
    }

    #[test]
    fn the_limit_refuses_before_streaming_and_aborts_without_a_length() {
        let p = Plan::new(&head(Some(11)), Some(10)).unwrap_err();
        assert_eq!(
            (p.status, &*p.code),
            (StatusCode::PAYLOAD_TOO_LARGE, "blob-too-large")
        );
        assert!(Plan::new(&head(Some(10)), Some(10)).is_ok());
        let plan = Plan::new(&head(None), Some(10)).unwrap();
        assert_eq!(plan.content_length(), None);
        let out = relay(
            &plan,
            &mut body(&[b"123456", b"78901"]),
            &mut Collect::default(),
        );
        assert!(matches!(out, Outcome::Abandoned { .. }));
    }

    #[test]
    fn short_long_and_broken_bodies_are_abandoned() {
        let plan = Plan::new(&head(Some(10)), None).unwrap();
        assert!(matches!(
            relay(&plan, &mut body(&[b"12345"]), &mut Collect::default()),
            Outcome::Abandoned { .. }
        ));
        assert!(matches!(
            relay(&plan, &mut body(&[b"12345678901"]), &mut Collect::default()),
            Outcome::Abandoned { .. }
        ));
        let mut broken = Chunks(VecDeque::from([
            Ok(b"123".to_vec()),
            Err(NetError::Broken("reset".into())),
        ]));
        let out = relay(&plan, &mut broken, &mut Collect::default());
        assert!(matches!(out, Outcome::Abandoned { sent: 4, .. }), "{out:?}");
    }

    #[test]
    fn a_caller_that_goes_away_abandons() {
        let plan = Plan::new(&head(None), None).unwrap();
        let mut sink = Collect {
            fail_after: Some(1),
            ..Collect::default()
        };
        let out = relay(&plan, &mut body(&[b"abc", b"def"]), &mut sink);
        assert_eq!(
            out,
            Outcome::Abandoned {
                sent: 4,
                reason: "caller went away".into()
            }
        );
    }

    #[test]
    fn an_empty_blob_is_complete_and_empty() {
        let plan = Plan::new(&head(Some(0)), None).unwrap();
        let mut sink = Collect::default();
        assert_eq!(
            relay(&plan, &mut body(&[]), &mut sink),
            Outcome::Complete { sent: 0 }
        );
        assert!(sink.bytes.is_empty());
    }
}
