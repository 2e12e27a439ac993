//! The four data endpoints and the load driver, shared by tests/load.rs and benches/bench.rs:
//! one table of what each endpoint answers, one way to drive concurrent requests and count
//! what came back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::suite::{base64, rt, KEY};
use super::{SEED_A, SEED_B, SEED_BLOB, SEED_CONTAINER};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    SecretSame,
    SecretCross,
    BlobSame,
    BlobCross,
}

pub const ALL: [Endpoint; 4] = [
    Endpoint::SecretSame,
    Endpoint::SecretCross,
    Endpoint::BlobSame,
    Endpoint::BlobCross,
];

impl Endpoint {
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::SecretSame => "GetSecretSameTenant",
            Endpoint::SecretCross => "GetSecretCrossTenant",
            Endpoint::BlobSame => "DownloadBlobSameTenant",
            Endpoint::BlobCross => "DownloadBlobCrossTenant",
        }
    }

    pub fn path(self) -> String {
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
    pub fn expected(self) -> Vec<u8> {
        match self {
            Endpoint::SecretSame => b"TenantA".to_vec(),
            Endpoint::SecretCross => b"TenantB".to_vec(),
            Endpoint::BlobSame => base64(SEED_A).into_bytes(),
            Endpoint::BlobCross => base64(SEED_B).into_bytes(),
        }
    }

    pub fn is_secret(self) -> bool {
        matches!(self, Endpoint::SecretSame | Endpoint::SecretCross)
    }

    pub fn is_cross(self) -> bool {
        matches!(self, Endpoint::SecretCross | Endpoint::BlobCross)
    }
}

/// A client with a pool as large as the number of concurrent callers (keep-alive to the host,
/// as a real caller would) and a timeout, so a stuck request fails instead of hanging.
pub fn client(pool: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(pool)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// One GET with the function key: Ok(()) for a 200 with exactly `expected`, else what went
/// wrong.
pub async fn one(client: &reqwest::Client, url: &str, expected: &[u8]) -> Result<(), String> {
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

/// Error samples kept per run (all errors are counted).
const KEEP_ERRORS: usize = 10;

/// What a run produced: successes, failures (with the first few), every latency.
#[derive(Default)]
pub struct Tally {
    pub ok: u64,
    pub errors: u64,
    pub samples: Vec<String>,
    pub latencies_us: Vec<u64>,
    /// Wall time of the runs merged into this one.
    pub secs: f64,
}

impl Tally {
    pub fn record(&mut self, result: Result<(), String>, took: Duration, since_start: Duration) {
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

    pub fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.errors += other.errors;
        let room = KEEP_ERRORS.saturating_sub(self.samples.len());
        self.samples.extend(other.samples.into_iter().take(room));
        self.latencies_us.extend(other.latencies_us);
        self.secs += other.secs;
    }

    pub fn total(&self) -> u64 {
        self.ok + self.errors
    }

    pub fn rps(&self) -> f64 {
        self.total() as f64 / self.secs
    }

    /// Latency at `p` (0.0 – 1.0) in ms; 0 without samples.
    pub fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        self.latencies_us.sort_unstable();
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

/// `clients` callers, each sending one request after the other to `url` until `run` is over.
pub fn hammer(
    client: &reqwest::Client,
    clients: usize,
    url: &str,
    expected: &[u8],
    run: Duration,
) -> Tally {
    let expected: Arc<[u8]> = expected.into();
    rt().block_on(async {
        let start = Instant::now();
        let end = start + run;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..clients {
            let (client, url, expected) = (client.clone(), url.to_string(), expected.clone());
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
        total.secs = start.elapsed().as_secs_f64();
        total
    })
}

/// `n` requests released together, spread round-robin over `urls` (replicas).
pub fn burst(client: &reqwest::Client, urls: &[String], n: usize, expected: &[u8]) -> Tally {
    let expected: Arc<[u8]> = expected.into();
    rt().block_on(async {
        let start = Instant::now();
        let gate = Arc::new(tokio::sync::Barrier::new(n));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let (client, url, expected, gate) = (
                client.clone(),
                urls[i % urls.len()].clone(),
                expected.clone(),
                gate.clone(),
            );
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
        total.secs = start.elapsed().as_secs_f64();
        total
    })
}
