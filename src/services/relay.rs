//! The blob relay's decisions, on the host target: whether a blob may be served (size limit),
//! the exact `Content-Length` of its base64, how long each step of a transfer may wait, and when
//! a transfer must be abandoned rather than finished — a caller must never receive a short body
//! that looks complete, and no caller or storage account may hold an instance without bound
//! (Spin 3.6.3 sets no request timeout for WASIp2 components). The edge only moves bytes (as
//! spin-fileserver keeps decisions out of its handler).

use crate::config::settings::TransferBounds;
use crate::errors::Problem;
use crate::net::clock::Clock;
use crate::net::upstream::{BodyReader, Head, NetError};
use crate::wire::base64_stream::{encoded_len, push_room, Base64Stream};
use http::StatusCode;
use std::time::Duration;

/// Why a hand-over to the caller failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Made by the Spin edge's response body, which exists only in the wasm32 build.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) enum Stop {
    /// The caller closed the connection.
    Gone,
    /// The caller did not take the bytes within the wait.
    Stalled,
}

/// Where the base64 goes: the response body.
pub(crate) trait Sink {
    /// Hands `bytes` over, waiting at most `wait` for the caller to take them.
    fn write(&mut self, bytes: &[u8], wait: Duration) -> Result<(), Stop>;
    /// Completes the body, waiting at most `wait` for its last bytes to go out.
    fn finish(&mut self, wait: Duration) -> Result<(), Stop>;
}

/// What may be served: the blob's length as Storage announced it, if it did, and how long the
/// transfer may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub blob_bytes: Option<u64>,
    pub limit: Option<u64>,
    pub bounds: TransferBounds,
}

impl Plan {
    /// Refuses a blob over `max_blob_bytes` before anything is sent.
    pub(crate) fn new(
        head: &Head,
        limit: Option<u64>,
        bounds: TransferBounds,
    ) -> Result<Plan, Problem> {
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
        Ok(Plan {
            blob_bytes,
            limit,
            bounds,
        })
    }

    /// The response's exact `Content-Length`, when Storage gave the blob's.
    pub(crate) fn content_length(&self) -> Option<u64> {
        self.blob_bytes.map(encoded_len)
    }
}

/// How a relay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Every byte went out; finish the body.
    Complete { sent: u64 },
    /// Stop and abandon the body (the host resets the transfer); the reason is for the log.
    Abandoned { sent: u64, reason: String },
}

/// The most a body read asks the host for at once (the edge reads upstream bodies in chunks of
/// this size; the relay sizes its base64 buffer for it).
pub(crate) const READ_CHUNK: usize = 256 * 1024;

/// When the transfer that started at `start` must end, and how long its next step may wait.
struct Clockwork<'a> {
    clock: &'a dyn Clock,
    ends: Duration,
    stall: Duration,
}

impl Clockwork<'_> {
    /// The next step's wait: the stall bound, or what is left of the total if less; `None`
    /// once the total is spent.
    fn wait(&self) -> Option<Duration> {
        let left = self.ends.saturating_sub(self.clock.monotonic());
        (!left.is_zero()).then(|| left.min(self.stall))
    }
}

fn stopped(stop: Stop, stall: Duration) -> String {
    match stop {
        Stop::Gone => "caller went away".into(),
        Stop::Stalled => format!(
            "caller took nothing for {} s (transfer_stall_secs)",
            stall.as_secs()
        ),
    }
}

/// Reads the blob chunk by chunk, writes its base64 through one reused buffer, and decides how
/// the body ends. Every wait is bounded by `plan.bounds`, counted on `clock` from now.
pub(crate) fn relay(
    plan: &Plan,
    body: &mut impl BodyReader,
    sink: &mut impl Sink,
    clock: &dyn Clock,
) -> Delivery {
    let time = Clockwork {
        clock,
        ends: clock.monotonic().saturating_add(plan.bounds.total),
        stall: plan.bounds.stall,
    };
    let mut encoder = Base64Stream::default();
    // One buffer for the whole transfer: a chunk's base64 is encoded into it and written from
    // it. Sized for the blob when it is smaller than a read: a warm small-blob request should
    // not grow the instance's memory (which Spin zeroes after every request) by 340 KiB.
    let step = plan
        .blob_bytes
        .map_or(READ_CHUNK, |n| (n.max(1)).min(READ_CHUNK as u64) as usize);
    let mut out = vec![0u8; push_room(step)];
    let (mut received, mut sent) = (0u64, 0u64);
    let abandon = |sent, reason: String| Delivery::Abandoned { sent, reason };
    let out_of_time = || {
        format!(
            "transfer ran past {} s (transfer_max_secs)",
            plan.bounds.total.as_secs()
        )
    };
    loop {
        let Some(wait) = time.wait() else {
            return abandon(sent, out_of_time());
        };
        match body.next_chunk(wait) {
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
                    let Some(wait) = time.wait() else {
                        return abandon(sent, out_of_time());
                    };
                    if let Err(stop) = sink.write(&out[..n], wait) {
                        return abandon(sent, stopped(stop, time.stall));
                    }
                    sent += n as u64;
                }
            }
            Ok(None) => break,
            Err(NetError::Timeout) if time.wait().is_none() => return abandon(sent, out_of_time()),
            Err(NetError::Timeout) => {
                return abandon(
                    sent,
                    format!(
                    "Storage sent nothing for {} s after {received} bytes (transfer_stall_secs)",
                    wait.as_secs()
                ),
                )
            }
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
    let Some(wait) = time.wait() else {
        return abandon(sent, out_of_time());
    };
    if let Err(stop) = sink.write(&out[..n], wait) {
        return abandon(sent, stopped(stop, time.stall));
    }
    sent += n as u64;
    let Some(wait) = time.wait() else {
        return abandon(sent, out_of_time());
    };
    match sink.finish(wait) {
        Ok(()) => Delivery::Complete { sent },
        Err(stop) => abandon(sent, stopped(stop, time.stall)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::clock::fake::FakeClock;
    use crate::net::upstream::scripted::Chunks;
    use crate::net::upstream::NetError;
    use base64::Engine;
    use std::collections::VecDeque;

    #[derive(Default)]
    struct Collect {
        bytes: Vec<u8>,
        fail_after: Option<usize>,
        /// How a hand-over past `fail_after` fails.
        stall: bool,
        finished: bool,
        waits: Vec<Duration>,
    }
    impl Sink for Collect {
        fn write(&mut self, b: &[u8], wait: Duration) -> Result<(), Stop> {
            self.waits.push(wait);
            if self.fail_after.is_some_and(|n| self.bytes.len() >= n) {
                return Err(if self.stall {
                    Stop::Stalled
                } else {
                    Stop::Gone
                });
            }
            self.bytes.extend_from_slice(b);
            Ok(())
        }
        fn finish(&mut self, wait: Duration) -> Result<(), Stop> {
            self.waits.push(wait);
            self.finished = true;
            Ok(())
        }
    }

    fn plan_for(len: Option<u64>, limit: Option<u64>) -> Result<Plan, Problem> {
        Plan::new(&head(len), limit, TransferBounds::DEFAULT)
    }

    fn run(plan: &Plan, body: &mut impl BodyReader, sink: &mut Collect) -> Delivery {
        relay(plan, body, sink, &FakeClock::default())
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
        let plan = plan_for(Some(max), None).unwrap();
        assert_eq!(plan.content_length(), Some(u64::MAX / 4 * 4));
        let e = plan_for(Some(max + 1), None).unwrap_err();
        assert_eq!(
            (e.status, e.code.as_ref()),
            (StatusCode::PAYLOAD_TOO_LARGE, "blob-too-large")
        );
        assert!(plan_for(Some(u64::MAX), Some(u64::MAX)).is_err());
    }

    #[test]
    fn a_complete_blob_is_exact_base64_of_announced_length() {
        let data: Vec<u8> = (0..=255).cycle().take(1000).collect();
        let plan = plan_for(Some(1000), None).unwrap();
        assert_eq!(plan.content_length(), Some(1336));
        let mut sink = Collect::default();
        let out = run(
            &plan,
            &mut body(&[&data[..7], &data[7..500], &data[500..]]),
            &mut sink,
        );
        assert!(sink.finished);
        assert_eq!(out, Delivery::Complete { sent: 1336 });
        assert_eq!(
            sink.bytes,
            base64::engine::general_purpose::STANDARD
                .encode(&data)
                .as_bytes()
        );
    }

    #[test]
    fn the_limit_refuses_before_streaming_and_aborts_without_a_length() {
        let p = plan_for(Some(11), Some(10)).unwrap_err();
        assert_eq!(
            (p.status, &*p.code),
            (StatusCode::PAYLOAD_TOO_LARGE, "blob-too-large")
        );
        assert!(plan_for(Some(10), Some(10)).is_ok());
        let plan = plan_for(None, Some(10)).unwrap();
        assert_eq!(plan.content_length(), None);
        let out = run(
            &plan,
            &mut body(&[b"123456", b"78901"]),
            &mut Collect::default(),
        );
        assert!(matches!(out, Delivery::Abandoned { .. }));
    }

    #[test]
    fn short_long_and_broken_bodies_are_abandoned() {
        let plan = plan_for(Some(10), None).unwrap();
        assert!(matches!(
            run(&plan, &mut body(&[b"12345"]), &mut Collect::default()),
            Delivery::Abandoned { .. }
        ));
        assert!(matches!(
            run(&plan, &mut body(&[b"12345678901"]), &mut Collect::default()),
            Delivery::Abandoned { .. }
        ));
        let mut broken = Chunks(VecDeque::from([
            Ok(b"123".to_vec()),
            Err(NetError::Broken("reset".into())),
        ]));
        let out = run(&plan, &mut broken, &mut Collect::default());
        assert!(
            matches!(out, Delivery::Abandoned { sent: 4, .. }),
            "{out:?}"
        );
        let mut stalled = Chunks(VecDeque::from([
            Ok(b"123".to_vec()),
            Err(NetError::Timeout),
        ]));
        let out = run(&plan, &mut stalled, &mut Collect::default());
        let Delivery::Abandoned { reason, .. } = out else {
            panic!("{out:?}")
        };
        assert!(
            reason.contains("Storage sent nothing for 30 s after 3 bytes (transfer_stall_secs)"),
            "{reason}"
        );
    }

    #[test]
    fn a_caller_that_goes_away_abandons() {
        let plan = plan_for(None, None).unwrap();
        let mut sink = Collect {
            fail_after: Some(1),
            ..Collect::default()
        };
        let out = run(&plan, &mut body(&[b"abc", b"def"]), &mut sink);
        assert_eq!(
            out,
            Delivery::Abandoned {
                sent: 4,
                reason: "caller went away".into()
            }
        );
    }

    #[test]
    fn an_empty_blob_is_complete_and_empty() {
        let plan = plan_for(Some(0), None).unwrap();
        let mut sink = Collect::default();
        assert_eq!(
            run(&plan, &mut body(&[]), &mut sink),
            Delivery::Complete { sent: 0 }
        );
        assert!(sink.bytes.is_empty());
    }

    /// A body whose every read moves the clock by `step` (a storage account that trickles).
    struct Trickle<'a> {
        clock: &'a FakeClock,
        step: Duration,
        waits: Vec<Duration>,
    }
    impl BodyReader for Trickle<'_> {
        fn next_chunk(&mut self, wait: Duration) -> Result<Option<Vec<u8>>, NetError> {
            self.waits.push(wait);
            if self.step > wait {
                self.clock.advance(wait);
                return Err(NetError::Timeout);
            }
            self.clock.advance(self.step);
            Ok(Some(b"x".to_vec()))
        }
    }

    #[test]
    fn a_caller_that_stops_reading_is_cut_off_as_stalled() {
        let plan = plan_for(None, None).unwrap();
        let mut sink = Collect {
            fail_after: Some(1),
            stall: true,
            ..Collect::default()
        };
        let out = run(&plan, &mut body(&[b"abc", b"def"]), &mut sink);
        let Delivery::Abandoned { sent: 4, reason } = out else {
            panic!("{out:?}")
        };
        assert!(reason.contains("transfer_stall_secs"), "{reason}");
        // Every hand-over waited at most the stall bound.
        assert!(sink
            .waits
            .iter()
            .all(|w| *w == TransferBounds::DEFAULT.stall));
    }

    #[test]
    fn a_trickling_upstream_is_cut_off_at_the_total_bound() {
        let clock = FakeClock::default();
        let bounds = TransferBounds {
            stall: Duration::from_secs(30),
            total: Duration::from_secs(100),
        };
        let plan = Plan::new(&head(None), None, bounds).unwrap();
        // One byte every 29 s: never a stall, but never done.
        let mut body = Trickle {
            clock: &clock,
            step: Duration::from_secs(29),
            waits: Vec::new(),
        };
        let out = relay(&plan, &mut body, &mut Collect::default(), &clock);
        let Delivery::Abandoned { reason, .. } = out else {
            panic!("{out:?}")
        };
        assert!(reason.contains("transfer_max_secs"), "{reason}");
        assert_eq!(clock.monotonic(), Duration::from_secs(100));
        // The last read waited only for what was left of the total (100 - 3 × 29 = 13 s).
        let secs: Vec<u64> = body.waits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [30, 30, 30, 13]);
    }
}
