//! Retries with exponential backoff and jitter, bounded by the request's deadline.
//!
//! What is retried follows the services' documented guidance and the Azure SDKs: IMDS on 404 (identity
//! being assigned), 408, 429 and 5xx, and on 410 (IMDS upgrading) at a slow fixed pace; Entra on
//! 429 and 5xx; Key Vault and Storage on 408, 429, 500, 502, 503, 504, honouring `Retry-After`,
//! `retry-after-ms` and `x-ms-retry-after-ms`. Lost connections and timeouts are retried too;
//! a denied destination, DNS or TLS failure never is (waiting does not fix configuration).

use crate::errors::Problem;
use crate::net::clock::{Budget, Clock};
use crate::net::upstream::{
    read_small, retry_after, BodyReader, Head, NetError, Peer, Request, Response, Transport,
    SMALL_BODY_LIMIT,
};
use std::time::Duration;

/// Attempts after the first one for ordinary transient failures.
pub(crate) const MAX_RETRIES: u32 = 4;
/// IMDS answers 410 for up to ~70 s while it upgrades; MSAL polls 7 times.
pub(crate) const MAX_GONE_RETRIES: u32 = 7;
/// Longest single backoff wait.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(30);

/// Bytes of an error body drained before a retry (so the connection can be reused).
const DRAIN_LIMIT: usize = 64 * 1024;

/// What one attempt produced, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Status(u16),
    /// Connection refused, timed out or broken: worth another try.
    Transient,
    /// Denied, DNS, TLS: configuration, not luck.
    Permanent,
}

pub(crate) fn outcome_of(err: &NetError) -> Outcome {
    match err {
        NetError::ConnectionRefused
        | NetError::Timeout
        | NetError::Broken(_)
        | NetError::Other(_) => Outcome::Transient,
        NetError::Denied | NetError::Dns | NetError::Tls(_) | NetError::Local(_) => {
            Outcome::Permanent
        }
    }
}

/// How long to wait before retry number `retry` (1-based), or `None` to stop. `server_hint` is
/// the service's own Retry-After; `jitter` is in [0, 1).
pub(crate) fn delay(
    peer: Peer,
    outcome: Outcome,
    retry: u32,
    base: Duration,
    server_hint: Option<Duration>,
    jitter: f64,
) -> Option<Duration> {
    let retryable = match (peer, outcome) {
        (_, Outcome::Permanent) => false,
        (_, Outcome::Transient) => true,
        (Peer::Imds, Outcome::Status(s)) => matches!(s, 404 | 408 | 410 | 429 | 500..=599),
        (Peer::Entra, Outcome::Status(s)) => s == 429 || (500..=599).contains(&s),
        (Peer::Service(_), Outcome::Status(s)) => {
            matches!(s, 408 | 429 | 500 | 502 | 503 | 504)
        }
    };
    if !retryable {
        return None;
    }
    if peer == Peer::Imds && outcome == Outcome::Status(410) {
        // A fixed, slow pace: 12.5 × base, i.e. 10 s with the default 800 ms base.
        return (retry <= MAX_GONE_RETRIES).then(|| base.mul_f64(12.5).min(MAX_DELAY));
    }
    if retry > MAX_RETRIES {
        return None;
    }
    let exponential = base.saturating_mul(1 << (retry - 1).min(16)).min(MAX_DELAY);
    // ±20 % jitter spreads the retries of replicas that failed together.
    let jittered = exponential.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0));
    Some(
        server_hint
            .map_or(jittered, |hint| hint.max(jittered))
            .min(MAX_DELAY),
    )
}

/// A small xorshift generator seeded per request: jitter needs spread, not secrecy.
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new(seed: &str) -> Jitter {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in seed.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Jitter(h | 1)
    }
    pub(crate) fn sample(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn deadline_problem(req: &Request, budget: &Budget) -> Problem {
    let hint = if req.peer == Peer::Imds {
        " (IMDS answers only on an Azure VM or AKS node; check that nothing blocks 169.254.169.254)"
    } else {
        ""
    };
    budget.exhausted(&format!("{} at {}{hint}", req.peer.name(), req.origin))
}

/// What a retried call needs of its request: the transport, the clock, the time budget and the
/// request id (`x-ms-client-request-id`, the jitter's seed).
pub(crate) struct Calls<'a, T: Transport> {
    pub http: &'a T,
    pub clock: &'a dyn Clock,
    pub budget: Budget,
    pub request_id: &'a str,
}

/// Sends `req` (each attempt bounded by the time that remains) until it
/// succeeds, fails for good, or the deadline leaves no room for another try. Returns the last
/// response head and body reader, or the last network error.
pub(crate) fn open<T: Transport>(
    ctx: &Calls<T>,
    req: &Request,
) -> Result<Result<(Head, T::Body), NetError>, Problem> {
    let mut jitter = Jitter::new(ctx.request_id);
    let mut retry = 0;
    loop {
        let remaining = ctx.budget.remaining(ctx.clock);
        if remaining.is_zero() {
            return Err(deadline_problem(req, &ctx.budget));
        }
        let result = ctx.http.open(req, remaining);
        let (outcome, hint) = match &result {
            Ok((head, _)) if head.status.as_u16() < 400 => return Ok(result),
            Ok((head, _)) => (
                Outcome::Status(head.status.as_u16()),
                retry_after(head).map(Duration::from_secs),
            ),
            Err(NetError::Timeout) if ctx.budget.remaining(ctx.clock).is_zero() => {
                return Err(deadline_problem(req, &ctx.budget));
            }
            Err(e) => (outcome_of(e), None),
        };
        retry += 1;
        let Some(wait) = delay(
            req.peer,
            outcome,
            retry,
            ctx.budget.base,
            hint,
            jitter.sample(),
        ) else {
            return Ok(result);
        };
        if wait >= ctx.budget.remaining(ctx.clock) {
            // No time to wait and try again: give the caller the real answer (a 429's
            // Retry-After tells them when to come back) rather than a blind 504.
            return Ok(result);
        }
        if let Ok((_, mut body)) = result {
            // Drain a little of the error body so the connection can be reused; a large or
            // slow one is dropped instead (each read is bounded by the between-bytes timeout,
            // the whole drain by the deadline).
            let mut drained = 0;
            // At most the wait before the retry: the drain must not eat into the next attempt.
            let until = ctx.clock.monotonic() + wait;
            while drained < DRAIN_LIMIT {
                let left = until.saturating_sub(ctx.clock.monotonic());
                if left.is_zero() {
                    break;
                }
                match body.next_chunk(left) {
                    Ok(Some(chunk)) => drained += chunk.len(),
                    _ => break,
                }
            }
        }
        ctx.clock.sleep(wait);
    }
}

/// As [`open`], reading the whole (small) body. A body that stalls until the deadline is a 504.
pub(crate) fn send<T: Transport>(
    ctx: &Calls<T>,
    req: &Request,
) -> Result<Result<Response, NetError>, Problem> {
    let time_left = || ctx.budget.remaining(ctx.clock);
    let read = open(ctx, req)?.and_then(|(head, mut body)| {
        read_small(req.peer, head, &mut body, SMALL_BODY_LIMIT, &time_left)
    });
    match read {
        Err(NetError::Timeout) if ctx.budget.remaining(ctx.clock).is_zero() => {
            Err(deadline_problem(req, &ctx.budget))
        }
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::cloud::Service;

    const BASE: Duration = Duration::from_millis(800);

    #[test]
    fn imds_retries_what_the_docs_say() {
        for s in [404, 408, 429, 500, 503] {
            assert!(
                delay(Peer::Imds, Outcome::Status(s), 1, BASE, None, 0.5).is_some(),
                "{s}"
            );
        }
        for s in [400, 401, 403] {
            assert!(
                delay(Peer::Imds, Outcome::Status(s), 1, BASE, None, 0.5).is_none(),
                "{s}"
            );
        }
    }

    #[test]
    fn gone_polls_slowly_up_to_seven_times() {
        assert_eq!(
            delay(Peer::Imds, Outcome::Status(410), 1, BASE, None, 0.0),
            Some(Duration::from_secs(10))
        );
        assert!(delay(Peer::Imds, Outcome::Status(410), 7, BASE, None, 0.0).is_some());
        assert!(delay(Peer::Imds, Outcome::Status(410), 8, BASE, None, 0.0).is_none());
    }

    #[test]
    fn services_retry_only_transient_statuses() {
        assert!(delay(Peer::Entra, Outcome::Status(400), 1, BASE, None, 0.5).is_none());
        assert!(delay(Peer::Entra, Outcome::Status(503), 1, BASE, None, 0.5).is_some());
        assert!(delay(
            Peer::Service(Service::KeyVault),
            Outcome::Status(404),
            1,
            BASE,
            None,
            0.5
        )
        .is_none());
        assert!(delay(
            Peer::Service(Service::KeyVault),
            Outcome::Status(501),
            1,
            BASE,
            None,
            0.5
        )
        .is_none());
        assert!(delay(
            Peer::Service(Service::Blob),
            Outcome::Status(503),
            1,
            BASE,
            None,
            0.5
        )
        .is_some());
        assert!(delay(
            Peer::Service(Service::Blob),
            Outcome::Permanent,
            1,
            BASE,
            None,
            0.5
        )
        .is_none());
        assert!(delay(
            Peer::Service(Service::Blob),
            Outcome::Transient,
            1,
            BASE,
            None,
            0.5
        )
        .is_some());
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter_and_stops() {
        let d = |retry, j| {
            delay(
                Peer::Service(Service::KeyVault),
                Outcome::Status(503),
                retry,
                BASE,
                None,
                j,
            )
            .unwrap()
        };
        assert_eq!(d(1, 0.5), BASE);
        assert_eq!(d(2, 0.5), BASE * 2);
        assert_eq!(d(3, 0.0), (BASE * 4).mul_f64(0.8));
        assert!(d(4, 0.999) < (BASE * 8).mul_f64(1.2));
        assert!(delay(
            Peer::Service(Service::KeyVault),
            Outcome::Status(503),
            MAX_RETRIES + 1,
            BASE,
            None,
            0.5
        )
        .is_none());
    }

    #[test]
    fn server_hints_win_when_longer_and_are_capped() {
        let hint = Some(Duration::from_secs(5));
        assert_eq!(
            delay(
                Peer::Service(Service::KeyVault),
                Outcome::Status(429),
                1,
                BASE,
                hint,
                0.5
            ),
            Some(Duration::from_secs(5))
        );
        let tiny = Some(Duration::from_millis(1));
        assert_eq!(
            delay(
                Peer::Service(Service::KeyVault),
                Outcome::Status(429),
                1,
                BASE,
                tiny,
                0.5
            ),
            Some(BASE)
        );
        let huge = Some(Duration::from_secs(3600));
        assert_eq!(
            delay(
                Peer::Service(Service::KeyVault),
                Outcome::Status(429),
                1,
                BASE,
                huge,
                0.5
            ),
            Some(MAX_DELAY)
        );
    }

    #[test]
    fn jitter_is_in_range_and_varies() {
        let mut j = Jitter::new("req-1");
        let values: Vec<f64> = (0..100).map(|_| j.sample()).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        assert!(values.windows(2).any(|w| w[0] != w[1]));
    }
}
