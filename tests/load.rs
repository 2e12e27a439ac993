//! Load through the compiled component (issue 4, item 5), loopback only and bounded in time:
//!
//! - warm path: 64 concurrent clients for 20 s (`TB_LOAD_SECS` overrides) on each of the four
//!   endpoints, after one request has filled the token cache → every response is a 200 with the
//!   exact body;
//! - cold burst: 64 requests released at once against a fresh world (empty token cache), per
//!   endpoint → every response is a 200, and the IMDS / Entra calls the burst caused are printed
//!   (IMDS allows 5 concurrent / 20 per second per VM; the fake does not enforce it);
//! - the same cold burst with 44 of its IMDS calls answered 429 `Retry-After: 1` → still all 200.
//!
//! The tests of this binary run one at a time (they share two cores). `cargo test --test load --
//! --nocapture` shows the per-endpoint numbers.

mod common;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::*;

const CLIENTS: usize = 64;
const DEFAULT_SECS: u64 = 20;
/// Error samples kept per run (all errors are counted).
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

#[derive(Clone, Copy, Debug)]
enum Endpoint {
    SecretSame,
    SecretCross,
    BlobSame,
    BlobCross,
}

const ALL: [Endpoint; 4] = [
    Endpoint::SecretSame,
    Endpoint::SecretCross,
    Endpoint::BlobSame,
    Endpoint::BlobCross,
];

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::SecretSame => "GetSecretSameTenant",
            Endpoint::SecretCross => "GetSecretCrossTenant",
            Endpoint::BlobSame => "DownloadBlobSameTenant",
            Endpoint::BlobCross => "DownloadBlobCrossTenant",
        }
    }
    fn path(self) -> String {
        match self {
            Endpoint::SecretSame | Endpoint::SecretCross => {
                format!("/api/{}?key=TEST-SECRET-001", self.name())
            }
            Endpoint::BlobSame | Endpoint::BlobCross => format!(
                "/api/{}?container={SEED_CONTAINER}&blob={SEED_BLOB}",
                self.name()
            ),
        }
    }
    /// The exact 200 body (the world seeds these).
    fn expected(self) -> Vec<u8> {
        match self {
            Endpoint::SecretSame => b"TenantA".to_vec(),
            Endpoint::SecretCross => b"TenantB".to_vec(),
            Endpoint::BlobSame => base64(SEED_A).into_bytes(),
            Endpoint::BlobCross => base64(SEED_B).into_bytes(),
        }
    }
}

/// A client of its own: a timeout so a stuck request fails the test instead of hanging it, and a
/// pool as large as the number of clients (keep-alive to the host, as a real caller would).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(CLIENTS)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// One request: Ok(()) for a 200 with the exact body, else what went wrong.
async fn one(client: &reqwest::Client, url: &str, expected: &[u8]) -> Result<(), String> {
    let resp = client
        .get(url)
        .header("x-functions-key", KEY)
        .send()
        .await
        .map_err(|e| format!("send: {e:?}"))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| format!("body: {e:?}"))?;
    if status == 200 && body.as_ref() == expected {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&body);
    let cut: String = text.chars().take(400).collect();
    Err(format!("status {status}, body {cut:?}"))
}

#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    samples: Vec<String>,
    latencies_us: Vec<u64>,
}

impl Tally {
    fn record(&mut self, result: Result<(), String>, took: Duration, since_start: Duration) {
        self.latencies_us.push(took.as_micros() as u64);
        match result {
            Ok(()) => self.ok += 1,
            Err(e) => {
                self.errors += 1;
                if self.samples.len() < KEEP_ERRORS {
                    self.samples
                        .push(format!("at {:.3}s: {e}", since_start.as_secs_f64()));
                }
            }
        }
    }
    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.errors += other.errors;
        let room = KEEP_ERRORS.saturating_sub(self.samples.len());
        self.samples.extend(other.samples.into_iter().take(room));
        self.latencies_us.extend(other.latencies_us);
    }
    fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        self.latencies_us.sort_unstable();
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

/// `CLIENTS` clients, each sending one request after the other until `run` is over.
fn hammer(w: &World, ep: Endpoint, run: Duration) -> (Tally, Duration) {
    let url = format!("{}{}", w.host.base_url(), ep.path());
    let expected: Arc<[u8]> = ep.expected().into();
    let client = client();
    rt().block_on(async {
        let start = Instant::now();
        let end = start + run;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..CLIENTS {
            let (client, url, expected) = (client.clone(), url.clone(), expected.clone());
            tasks.spawn(async move {
                let mut tally = Tally::default();
                while Instant::now() < end {
                    let t = Instant::now();
                    let result = one(&client, &url, &expected).await;
                    tally.record(result, t.elapsed(), t - start);
                }
                tally
            });
        }
        let mut total = Tally::default();
        while let Some(t) = tasks.join_next().await {
            total.merge(t.expect("client task"));
        }
        (total, start.elapsed())
    })
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

    let (mut tally, took) = hammer(&w, ep, duration());

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
/// each): all must succeed; what they cost upstream is printed.
#[test]
fn cold_burst_of_64_per_endpoint() {
    let _serial = serial();
    let mut failures = Vec::new();
    for ep in ALL {
        let w = World::new();
        let url = format!("{}{}", w.host.base_url(), ep.path());
        let expected: Arc<[u8]> = ep.expected().into();
        let client = client();
        let start = Instant::now();
        let (tally, took) = rt().block_on(async {
            let gate = Arc::new(tokio::sync::Barrier::new(CLIENTS));
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..CLIENTS {
                let (client, url, expected, gate) =
                    (client.clone(), url.clone(), expected.clone(), gate.clone());
                tasks.spawn(async move {
                    gate.wait().await;
                    let t = Instant::now();
                    let result = one(&client, &url, &expected).await;
                    let mut tally = Tally::default();
                    tally.record(result, t.elapsed(), t - start);
                    tally
                });
            }
            let mut total = Tally::default();
            while let Some(t) = tasks.join_next().await {
                total.merge(t.expect("client task"));
            }
            (total, start.elapsed())
        });
        let mut tally = tally;
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

/// The fake IMDS does not enforce IMDS's 5 concurrent / 20 per second limit. Approximation of a
/// throttled burst: the first 44 IMDS calls of a cold burst of 64 cross-tenant requests are
/// answered 429 with `Retry-After: 1` (as if only 20 of 64 got through) → all 64 still succeed.
#[test]
fn cold_burst_survives_imds_throttling() {
    let _serial = serial();
    let ep = Endpoint::SecretCross;
    let w = World::new();
    const THROTTLED: usize = CLIENTS - 20;
    for _ in 0..THROTTLED {
        w.imds
            .push_fault(tenant_bridge_testkit::http::Fault::retry_after(429, 1));
    }
    let url = format!("{}{}", w.host.base_url(), ep.path());
    let expected: Arc<[u8]> = ep.expected().into();
    let client = client();
    let start = Instant::now();
    let mut tally = rt().block_on(async {
        let gate = Arc::new(tokio::sync::Barrier::new(CLIENTS));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..CLIENTS {
            let (client, url, expected, gate) =
                (client.clone(), url.clone(), expected.clone(), gate.clone());
            tasks.spawn(async move {
                gate.wait().await;
                let t = Instant::now();
                let result = one(&client, &url, &expected).await;
                let mut tally = Tally::default();
                tally.record(result, t.elapsed(), t - start);
                tally
            });
        }
        let mut total = Tally::default();
        while let Some(t) = tasks.join_next().await {
            total.merge(t.expect("client task"));
        }
        total
    });
    let took = start.elapsed();
    let imds = w.imds.requests();
    let throttled = imds.iter().filter(|r| r.status == Some(429)).count();
    let (p50, max) = (tally.percentile_ms(0.50), tally.percentile_ms(1.0));
    println!(
        "load cold {:<24} burst {CLIENTS}, IMDS throttled  {:>5.2} s  ok {:>2}  errors {}  \
         p50 {p50:>7.1} ms  max {max:>7.1} ms  | IMDS {} ({} answered 429)  \
         Entra {}",
        ep.name(),
        took.as_secs_f64(),
        tally.ok,
        tally.errors,
        imds.len(),
        throttled,
        w.entra.requests().len(),
    );
    assert_eq!(
        tally.errors,
        0,
        "{} of {CLIENTS} failed under IMDS throttling:\n{}\nhost lines:\n{}",
        tally.errors,
        tally.samples.join("\n"),
        host_lines(&w).join("\n")
    );
}
