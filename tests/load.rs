//! Load through the compiled component (issue 4, item 5), loopback only and bounded in time:
//!
//! - warm path: 64 concurrent clients for 20 s (`TB_LOAD_SECS` overrides) on each of the four
//!   endpoints, after one request has filled the token cache → every response is a 200 with the
//!   exact body;
//! - cold burst: 64 requests released at once against a fresh world (empty token cache), per
//!   endpoint → every response is a 200, with exactly one IMDS call and (cross-tenant) one
//!   Entra call for the whole burst (single flight);
//! - a cold burst of 64 over two replicas sharing one Redis, with the fake IMDS enforcing the
//!   real 20-per-second identity limit → all 200, one IMDS call, one Entra call, none throttled.
//!
//! A binary of its own, apart from `tests/integration/`: these tests saturate both cores by
//! design (64 clients for 20 s per endpoint), so in the shared binary libtest would run them
//! beside the timing-bounded fault tests and each would measure the other's load; here they run
//! one at a time (they share two cores) and alone. `cargo test --test load -- --nocapture` shows
//! the per-endpoint numbers.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tenant_bridge_testkit::world::load::{burst, client, hammer, Endpoint, ALL};
use tenant_bridge_testkit::world::suite::*;
use tenant_bridge_testkit::world::*;

const CLIENTS: usize = 64;
const DEFAULT_SECS: u64 = 20;
/// Error samples shown per failure.
const KEEP_ERRORS: usize = 10;

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn duration() -> Duration {
    let secs = std::env::var("TB_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECS);
    Duration::from_secs(secs)
}

/// Host log lines (`[host] …`): a failed instance, a refused connection.
fn host_lines(w: &World) -> Vec<String> {
    w.logs()
        .lines()
        .filter(|l| l.starts_with("[host]"))
        .map(str::to_string)
        .collect()
}

fn warm(ep: Endpoint) {
    let _serial = serial();
    let w = World::new();
    let first = w.get(&ep.path());
    assert_eq!(first.status, 200, "warm-up {}: {}", ep.name(), first.text());
    assert_eq!(first.body, ep.expected(), "warm-up body of {}", ep.name());
    let upstream_before = w.outbound().len();

    let url = format!("{}{}", w.host.base_url(), ep.path());
    let mut tally = hammer(&client(CLIENTS), CLIENTS, &url, &ep.expected(), duration());
    let took = Duration::from_secs_f64(tally.secs);

    let upstream = w.outbound().len() - upstream_before;
    let total = tally.ok + tally.errors;
    let (p50, p99) = (tally.percentile_ms(0.50), tally.percentile_ms(0.99));
    println!(
        "load warm {:<24} clients {CLIENTS}  {:>6.1} s  requests {total:>7}  errors {:>4}  \
         {:>7.1} req/s  p50 {p50:>7.2} ms  p99 {p99:>7.2} ms  upstream/request {:.3}",
        ep.name(),
        took.as_secs_f64(),
        tally.errors,
        total as f64 / took.as_secs_f64(),
        upstream as f64 / total.max(1) as f64,
    );
    let host = host_lines(&w);
    for line in host.iter().take(KEEP_ERRORS) {
        println!("  host: {line}");
    }
    assert!(total > 0, "no request completed");
    assert_eq!(
        tally.errors,
        0,
        "{}: {} of {total} requests failed; first ones:\n{}\nhost lines ({}):\n{}",
        ep.name(),
        tally.errors,
        tally.samples.join("\n"),
        host.len(),
        host.iter()
            .take(KEEP_ERRORS)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
    );
}

#[test]
fn warm_get_secret_same_tenant_64_clients() {
    warm(Endpoint::SecretSame);
}

#[test]
fn warm_get_secret_cross_tenant_64_clients() {
    warm(Endpoint::SecretCross);
}

#[test]
fn warm_download_blob_same_tenant_64_clients() {
    warm(Endpoint::BlobSame);
}

#[test]
fn warm_download_blob_cross_tenant_64_clients() {
    warm(Endpoint::BlobCross);
}

/// Most of `times` falling in any window of `window`.
fn max_in_window(mut times: Vec<Instant>, window: Duration) -> usize {
    times.sort_unstable();
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

/// 64 requests released together against an empty token cache, per endpoint (a fresh world
/// each): all must succeed, and the burst fetches each token once.
#[test]
fn cold_burst_of_64_per_endpoint() {
    let _serial = serial();
    let mut failures = Vec::new();
    for ep in ALL {
        let w = World::new();
        let url = format!("{}{}", w.host.base_url(), ep.path());
        let mut tally = burst(&client(CLIENTS), &[url], CLIENTS, &ep.expected());
        let took = Duration::from_secs_f64(tally.secs);
        let (p50, max) = (tally.percentile_ms(0.50), tally.percentile_ms(1.0));
        let imds = w.imds.requests();
        let imds_ok = w.imds.token_requests().len();
        let entra = w.entra.requests();
        let entra_ok = entra.iter().filter(|r| r.status == Some(200)).count();
        let outbound = w.outbound();
        let service = outbound
            .iter()
            .filter(|o| !o.url.starts_with(&w.imds.endpoint()) && !o.url.contains(ENTRA_HOST))
            .count();
        let imds_peak = max_in_window(imds.iter().map(|r| r.at).collect(), Duration::from_secs(1));
        println!(
            "load cold {:<24} burst {CLIENTS}  {:>5.2} s  ok {:>2}  errors {}  p50 {:>7.1} ms  \
             max {:>7.1} ms  | IMDS {} ({} ok, max {} in 1 s)  Entra {} ({} ok)  service {}  \
             upstream total {} = {:.2}/request",
            ep.name(),
            took.as_secs_f64(),
            tally.ok,
            tally.errors,
            p50,
            max,
            imds.len(),
            imds_ok,
            imds_peak,
            entra.len(),
            entra_ok,
            service,
            outbound.len(),
            outbound.len() as f64 / CLIENTS as f64,
        );
        let want_entra = usize::from(matches!(ep, Endpoint::SecretCross | Endpoint::BlobCross));
        if (imds.len(), entra.len()) != (1, want_entra) {
            failures.push(format!(
                "{}: {} IMDS and {} Entra calls for one cold burst (want 1 and {want_entra})",
                ep.name(),
                imds.len(),
                entra.len()
            ));
        }
        if tally.errors > 0 {
            failures.push(format!(
                "{}: {} of {CLIENTS} failed:\n{}\nhost lines:\n{}",
                ep.name(),
                tally.errors,
                tally.samples.join("\n"),
                host_lines(&w).join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A cold burst of 64 concurrent cross-tenant requests over two replicas sharing one token
/// cache (one redis-server, as SpinKube replicas share one Redis), with the fake IMDS enforcing the real identity limit (20 token requests per second,
/// then 429): single-flight means one IMDS and one Entra call in all, every request succeeds,
/// and nobody is throttled.
#[test]
fn cold_burst_over_two_replicas_fetches_each_token_once() {
    let _serial = serial();
    let ep = Endpoint::SecretCross;
    let w = World::builder().replicated().build();
    w.imds.set_rate_limit(Some(20));
    let replica = w.replica();
    let urls = [
        format!("{}{}", w.host.base_url(), ep.path()),
        format!("{}{}", replica.base_url(), ep.path()),
    ];
    let mut tally = burst(&client(CLIENTS), &urls, CLIENTS, &ep.expected());
    let took = Duration::from_secs_f64(tally.secs);
    // Every IMDS request, answered or throttled.
    let imds = w.imds.requests();
    let throttled = imds.iter().filter(|r| r.status == Some(429)).count();
    let entra = w.entra.requests().len();
    let (p50, max) = (tally.percentile_ms(0.50), tally.percentile_ms(1.0));
    println!(
        "load cold {:<24} burst {CLIENTS} over 2 replicas  {:>5.2} s  ok {:>2}  errors {}  \
         p50 {p50:>7.1} ms  max {max:>7.1} ms  | IMDS {} ({throttled} answered 429)  Entra {entra}",
        ep.name(),
        took.as_secs_f64(),
        tally.ok,
        tally.errors,
        imds.len(),
    );
    assert_eq!(
        tally.errors,
        0,
        "{} of {CLIENTS} failed:\n{}\nhost lines:\n{}",
        tally.errors,
        tally.samples.join("\n"),
        host_lines(&w).join("\n")
    );
    assert_eq!(
        (imds.len(), throttled, entra),
        (1, 0, 1),
        "one IMDS and one Entra call for the whole burst, none throttled"
    );
}
