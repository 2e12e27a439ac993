//! `cargo bench --bench bench` — issue 4's benchmark, one run, printed as a Markdown table:
//!
//! - warm-path requests/s and p50/p99 latency of GetSecretSameTenant and GetSecretCrossTenant
//!   through the component (the compiled .wasm in the testkit host) vs. a native Rust client
//!   calling the same fake vault directly with the same bearer token, over a kept-alive
//!   connection and over a new TLS connection per request (what the host does for every
//!   outbound request);
//! - upstream calls per request, warm and cold, for all four endpoints;
//! - a 256 MiB blob streamed as base64 through the component vs. a raw GET of the same blob from
//!   Azurite with the same token and headers, and the process's peak RSS growth during each;
//! - the .wasm size.
//!
//! Everything runs in this one process on loopback: the client, the host, the fakes (Azurite is
//! a node child process). Knobs: `TB_BENCH_CLIENTS` (16), `TB_BENCH_SECS` (8 per measured run),
//! `TB_BENCH_BLOB_MIB` (256).

#[path = "../tests/common/mod.rs"]
mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// Concurrent fixed-duration runs

type CallFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Call = Arc<dyn Fn(reqwest::Client) -> CallFuture + Send + Sync>;

#[derive(Default)]
struct Run {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    secs: f64,
    latencies_us: Vec<u64>,
}

impl Run {
    fn rps(&self) -> f64 {
        (self.ok + self.errors) as f64 / self.secs
    }
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

/// `clients` tasks each sending one request after the other for `secs`.
fn drive(clients: usize, secs: Duration, client: &reqwest::Client, call: &Call) -> Run {
    rt().block_on(async {
        let start = Instant::now();
        let end = start + secs;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..clients {
            let (client, call) = (client.clone(), call.clone());
            tasks.spawn(async move {
                let mut run = Run::default();
                while Instant::now() < end {
                    let t = Instant::now();
                    let result = call(client.clone()).await;
                    run.latencies_us.push(t.elapsed().as_micros() as u64);
                    match result {
                        Ok(()) => run.ok += 1,
                        Err(e) => {
                            run.errors += 1;
                            run.first_error.get_or_insert(e);
                        }
                    }
                }
                run
            });
        }
        let mut total = Run::default();
        while let Some(r) = tasks.join_next().await {
            let r = r.expect("client task");
            total.ok += r.ok;
            total.errors += r.errors;
            if total.first_error.is_none() {
                total.first_error = r.first_error;
            }
            total.latencies_us.extend(r.latencies_us);
        }
        total.secs = start.elapsed().as_secs_f64();
        total.latencies_us.sort_unstable();
        total
    })
}

/// A one-second unmeasured run (pools, caches), then the measured one.
fn measure(clients: usize, secs: Duration, client: &reqwest::Client, call: &Call) -> Run {
    drive(clients, Duration::from_secs(1), client, call);
    let run = drive(clients, secs, client, call);
    if let Some(e) = &run.first_error {
        eprintln!("  !! {} errors, first: {e}", run.errors);
    }
    run
}

fn plain_client(pool: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(pool)
        .timeout(Duration::from_secs(300))
        .build()
        .expect("client")
}

/// The kind of client the host uses outbound: rustls, only the test CA, names mapped to loopback.
/// `keep_alive = false`: a new TCP + TLS connection per request, as the host opens.
fn tls_client(
    keep_alive: bool,
    pool: usize,
    resolve: &[(&str, std::net::SocketAddr)],
) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(shared().pki.ca_pem().as_bytes()).expect("CA");
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(300))
        .pool_max_idle_per_host(if keep_alive { pool } else { 0 });
    for (name, addr) in resolve {
        b = b.resolve(name, *addr);
    }
    b.build().expect("tls client")
}

fn component_call(url: String, expected: &'static str) -> Call {
    Arc::new(move |client: reqwest::Client| {
        let url = url.clone();
        Box::pin(async move {
            let resp = client
                .get(&url)
                .header("x-functions-key", KEY)
                .send()
                .await
                .map_err(|e| format!("send: {e:?}"))?;
            let status = resp.status().as_u16();
            let body = resp.bytes().await.map_err(|e| format!("body: {e:?}"))?;
            if status == 200 && body.as_ref() == expected.as_bytes() {
                Ok(())
            } else {
                Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
            }
        })
    })
}

fn native_vault_call(
    url: String,
    bearer: String,
    keep_alive: bool,
    expected: &'static str,
) -> Call {
    Arc::new(move |client: reqwest::Client| {
        let (url, bearer) = (url.clone(), bearer.clone());
        Box::pin(async move {
            let mut req = client.get(&url).header("authorization", bearer);
            if !keep_alive {
                req = req.header("connection", "close");
            }
            let resp = req.send().await.map_err(|e| format!("send: {e:?}"))?;
            let status = resp.status().as_u16();
            let body = resp.bytes().await.map_err(|e| format!("body: {e:?}"))?;
            let value: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| format!("{status}: not JSON ({e})"))?;
            if status == 200 && value["value"] == expected {
                Ok(())
            } else {
                Err(format!("{status}: {value}"))
            }
        })
    })
}

// ---------------------------------------------------------------------------------------------
// Endpoints

#[derive(Clone, Copy)]
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
    fn expected(self) -> Vec<u8> {
        match self {
            Endpoint::SecretSame => b"TenantA".to_vec(),
            Endpoint::SecretCross => b"TenantB".to_vec(),
            Endpoint::BlobSame => base64(SEED_A).into_bytes(),
            Endpoint::BlobCross => base64(SEED_B).into_bytes(),
        }
    }
}

fn get_ok(w: &World, ep: Endpoint) {
    let r = w.get(&ep.path());
    assert_eq!(r.status, 200, "{}: {}", ep.name(), r.text());
    assert_eq!(r.body, ep.expected(), "{}: body", ep.name());
}

// ---------------------------------------------------------------------------------------------
// Warm path: component vs. native

struct WarmRow {
    endpoint: &'static str,
    component: Run,
    native_keep_alive: Run,
    native_new_conn: Run,
}

fn warm_secret(ep: Endpoint, clients: usize, secs: Duration) -> WarmRow {
    let w = World::new();
    get_ok(&w, ep);
    let (vault, vault_host, expected) = match ep {
        Endpoint::SecretSame => (&w.vault_a, VAULT_A_HOST, "TenantA"),
        _ => (&w.vault_b, VAULT_B_HOST, "TenantB"),
    };
    // The exact request the component made with its cached token: URL and bearer.
    let record = w
        .outbound()
        .into_iter()
        .rev()
        .find(|o| o.url.starts_with(&vault.endpoint()) && o.header("authorization").is_some())
        .expect("an authenticated vault request");
    let (url, bearer) = (
        record.url.clone(),
        record.header("authorization").unwrap().to_string(),
    );

    eprintln!("warm {}: component …", ep.name());
    let component = measure(
        clients,
        secs,
        &plain_client(clients),
        &component_call(format!("{}{}", w.host.base_url(), ep.path()), expected),
    );
    let resolve = [(vault_host, vault.addr())];
    eprintln!("warm {}: native keep-alive …", ep.name());
    let native_keep_alive = measure(
        clients,
        secs,
        &tls_client(true, clients, &resolve),
        &native_vault_call(url.clone(), bearer.clone(), true, expected),
    );
    eprintln!("warm {}: native new connection per request …", ep.name());
    let native_new_conn = measure(
        clients,
        secs,
        &tls_client(false, clients, &resolve),
        &native_vault_call(url, bearer, false, expected),
    );
    WarmRow {
        endpoint: ep.name(),
        component,
        native_keep_alive,
        native_new_conn,
    }
}

// ---------------------------------------------------------------------------------------------
// Upstream calls per request

struct Calls {
    endpoint: &'static str,
    cold_total: usize,
    cold_imds: usize,
    cold_entra: usize,
    cold_service: usize,
    warm_per_request: f64,
    burst_imds: usize,
    burst_entra: usize,
    burst_total: usize,
    burst_errors: usize,
}

fn classify(
    w: &World,
    records: &[tenant_bridge_testkit::host::OutboundRecord],
) -> (usize, usize, usize) {
    let imds = w.imds.endpoint();
    let i = records.iter().filter(|o| o.url.starts_with(&imds)).count();
    let e = records
        .iter()
        .filter(|o| o.url.contains(ENTRA_HOST))
        .count();
    (i, e, records.len() - i - e)
}

const WARM_SAMPLE: usize = 100;
const BURST: usize = 64;

fn upstream_calls(ep: Endpoint) -> Calls {
    // Cold: one request on an empty cache; warm: the next WARM_SAMPLE, one at a time.
    let w = World::new();
    get_ok(&w, ep);
    let cold = w.outbound();
    let (cold_imds, cold_entra, cold_service) = classify(&w, &cold);
    for _ in 0..WARM_SAMPLE {
        get_ok(&w, ep);
    }
    let warm = w.outbound().len() - cold.len();
    drop(w);

    // Cold burst: BURST requests released together on an empty cache.
    let w = World::new();
    let url = format!("{}{}", w.host.base_url(), ep.path());
    let expected: Arc<[u8]> = ep.expected().into();
    let client = plain_client(BURST);
    let burst_errors = rt().block_on(async {
        let gate = Arc::new(tokio::sync::Barrier::new(BURST));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..BURST {
            let (client, url, expected, gate) =
                (client.clone(), url.clone(), expected.clone(), gate.clone());
            tasks.spawn(async move {
                gate.wait().await;
                match client.get(&url).header("x-functions-key", KEY).send().await {
                    Ok(r) if r.status() == 200 => r
                        .bytes()
                        .await
                        .map(|b| b.as_ref() == &expected[..])
                        .unwrap_or(false),
                    _ => false,
                }
            });
        }
        let mut errors = 0;
        while let Some(ok) = tasks.join_next().await {
            if !ok.expect("burst task") {
                errors += 1;
            }
        }
        errors
    });
    let burst = w.outbound();
    let (burst_imds, burst_entra, _) = classify(&w, &burst);
    Calls {
        endpoint: ep.name(),
        cold_total: cold.len(),
        cold_imds,
        cold_entra,
        cold_service,
        warm_per_request: warm as f64 / WARM_SAMPLE as f64,
        burst_imds,
        burst_entra,
        burst_total: burst.len(),
        burst_errors,
    }
}

// ---------------------------------------------------------------------------------------------
// Memory

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

struct Memory {
    baseline_kib: u64,
    sampled_peak_kib: u64,
    /// VmHWM after resetting it (`/proc/self/clear_refs` = 5) just before the run.
    hwm_kib: Option<u64>,
    /// Every VmRSS sample.
    samples_kib: Vec<u64>,
}

impl Memory {
    fn growth_mib(&self) -> f64 {
        let peak = self.sampled_peak_kib.max(self.hwm_kib.unwrap_or(0));
        peak.saturating_sub(self.baseline_kib) as f64 / 1024.0
    }
    /// Growth over the baseline at 10 %, 25 %, 50 %, 75 % and 100 % of the run, in MiB.
    fn timeline(&self) -> String {
        if self.samples_kib.is_empty() {
            return "n/a".into();
        }
        let last = self.samples_kib.len() - 1;
        [0.10, 0.25, 0.50, 0.75, 1.0]
            .iter()
            .map(|p| {
                let kib = self.samples_kib[(last as f64 * p).round() as usize];
                format!(
                    "{:.1}",
                    kib.saturating_sub(self.baseline_kib) as f64 / 1024.0
                )
            })
            .collect::<Vec<_>>()
            .join(" → ")
    }
}

/// Runs `f` while a thread samples VmRSS every 2 ms.
fn with_memory<T>(f: impl FnOnce() -> T) -> (T, Memory) {
    // Give freed heap back first, so reuse of retained pages cannot hide growth.
    // SAFETY: malloc_trim only releases free memory of glibc's arenas.
    unsafe {
        libc::malloc_trim(0);
    }
    let baseline_kib = status_kib("VmRSS:").expect("VmRSS");
    let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                samples.push(status_kib("VmRSS:").unwrap_or(0));
                std::thread::sleep(Duration::from_millis(2));
            }
            samples
        })
    };
    let out = f();
    stop.store(true, Ordering::Relaxed);
    let samples_kib = sampler.join().expect("sampler");
    let sampled_peak_kib = samples_kib.iter().copied().max().unwrap_or(0);
    let hwm_kib = if hwm_reset {
        status_kib("VmHWM:")
    } else {
        None
    };
    (
        out,
        Memory {
            baseline_kib,
            sampled_peak_kib,
            hwm_kib,
            samples_kib,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Blob streaming

/// The blob is this block repeated: a prime length so no chunk boundary lines up with it.
const PATTERN_LEN: usize = 65_521;

fn pattern() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..PATTERN_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Whether `data` equals the blob's bytes at `offset`.
fn matches(pattern: &[u8], mut offset: usize, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        let at = offset % PATTERN_LEN;
        let n = data.len().min(PATTERN_LEN - at);
        if data[..n] != pattern[at..at + n] {
            return false;
        }
        offset += n;
        data = &data[n..];
    }
    true
}

struct Transfer {
    secs: f64,
    wire_bytes: u64,
    blob_bytes: u64,
    memory: Memory,
}

impl Transfer {
    fn blob_mib_s(&self) -> f64 {
        self.blob_bytes as f64 / (1024.0 * 1024.0) / self.secs
    }
}

/// GETs `url` and checks every byte as it arrives, decoding base64 when `base64` is set.
fn transfer(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    base64_body: bool,
    size: usize,
    pattern: &[u8],
) -> Transfer {
    let ((secs, wire_bytes, blob_bytes), memory) = with_memory(|| {
        rt().block_on(async {
            let start = Instant::now();
            let mut req = client.get(url);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let mut resp = req.send().await.expect("send");
            assert_eq!(resp.status(), 200, "GET {url}");
            let expected_len = if base64_body {
                size.div_ceil(3) * 4
            } else {
                size
            };
            assert_eq!(
                resp.content_length(),
                Some(expected_len as u64),
                "Content-Length of {url}"
            );
            let (mut wire, mut blob) = (0usize, 0usize);
            let mut carry: Vec<u8> = Vec::with_capacity(1 << 20);
            let mut decoded = vec![0u8; 1 << 20];
            while let Some(chunk) = resp.chunk().await.expect("body chunk") {
                wire += chunk.len();
                if !base64_body {
                    assert!(
                        matches(pattern, blob, &chunk[..]),
                        "raw blob differs at {blob}"
                    );
                    blob += chunk.len();
                    continue;
                }
                carry.extend_from_slice(&chunk);
                let whole = carry.len() / 4 * 4;
                let last = wire == expected_len;
                let take = if last { carry.len() } else { whole };
                let mut done = 0;
                while done < take {
                    let n = (take - done).min(decoded.len() / 3 * 4);
                    let out = base64::engine::general_purpose::STANDARD
                        .decode_slice(&carry[done..done + n], &mut decoded)
                        .expect("valid base64");
                    assert!(
                        matches(pattern, blob, &decoded[..out]),
                        "decoded blob differs at {blob}"
                    );
                    blob += out;
                    done += n;
                }
                carry.drain(..take);
            }
            assert_eq!(wire, expected_len, "body length of {url}");
            assert_eq!(blob, size, "blob length via {url}");
            (start.elapsed().as_secs_f64(), wire as u64, blob as u64)
        })
    });
    Transfer {
        secs,
        wire_bytes,
        blob_bytes,
        memory,
    }
}

struct Streaming {
    size: usize,
    raw: Transfer,
    component: Transfer,
    /// The same memory measurement around one request for a 19-byte blob.
    small: Memory,
    upload_secs: f64,
}

fn streaming(mib: usize) -> Streaming {
    const CONTAINER: &str = "bench";
    let blob = format!("big-{mib}MiB.bin");
    let size = mib * 1024 * 1024;
    let pattern = pattern();
    let w = World::new();
    {
        eprintln!("streaming: uploading {mib} MiB to Azurite …");
        let t = Instant::now();
        let data: Vec<u8> = pattern.iter().copied().cycle().take(size).collect();
        w.put_blob(ACCOUNT_A, CONTAINER, &blob, &data);
        let upload_secs = t.elapsed().as_secs_f64();
        drop(data);
        // Warm the cache and learn the exact request the component sends (token, headers).
        get_ok(&w, Endpoint::BlobSame);
        let record = w
            .outbound()
            .into_iter()
            .rev()
            .find(|o| o.url.starts_with(&shared().azurite.endpoint()) && o.method == "GET")
            .expect("the component's Get Blob");
        let raw_url = format!(
            "{}{}/{CONTAINER}/{blob}",
            shared().azurite.endpoint(),
            shared().azurite.account_path(ACCOUNT_A)
        );
        let headers: Vec<(String, String)> = record
            .headers
            .iter()
            .filter(|(k, _)| k != "host")
            .cloned()
            .collect();

        eprintln!("streaming: raw GET from Azurite …");
        let raw = transfer(
            &tls_client(true, 1, &[]),
            &raw_url,
            &headers,
            false,
            size,
            &pattern,
        );
        eprintln!("streaming: through the component …");
        let url = format!(
            "{}/api/DownloadBlobSameTenant?container={CONTAINER}&blob={blob}",
            w.host.base_url()
        );
        let key = [("x-functions-key".to_string(), KEY.to_string())];
        let component = transfer(&plain_client(1), &url, &key, true, size, &pattern);
        // For scale: the same measurement around one small-blob request (an instance's floor).
        let ((), small) = with_memory(|| get_ok(&w, Endpoint::BlobSame));
        Streaming {
            size,
            raw,
            component,
            small,
            upload_secs,
        }
    }
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let clients = env_or("TB_BENCH_CLIENTS", 16) as usize;
    let secs = Duration::from_secs(env_or("TB_BENCH_SECS", 8));
    let mib = env_or("TB_BENCH_BLOB_MIB", 256) as usize;
    let started = Instant::now();

    let wasm = wasm();
    let wasm_bytes = std::fs::metadata(&wasm).expect(".wasm").len();
    shared();
    eprintln!("setup: {:.1} s", started.elapsed().as_secs_f64());

    let warm: Vec<WarmRow> = [Endpoint::SecretSame, Endpoint::SecretCross]
        .into_iter()
        .map(|ep| warm_secret(ep, clients, secs))
        .collect();
    let calls: Vec<Calls> = ALL.into_iter().map(upstream_calls).collect();
    let stream = streaming(mib);

    // -- the table ------------------------------------------------------------------------
    let mut t = String::new();
    let mut row = |cells: &[String]| {
        t.push_str("| ");
        t.push_str(&cells.join(" | "));
        t.push_str(" |\n");
    };
    row(&[
        "measure".into(),
        "tenant-bridge".into(),
        "direct (native Rust client, same token)".into(),
        "ratio".into(),
        "goal".into(),
    ]);
    row(&[
        "---".into(),
        "---:".into(),
        "---:".into(),
        "---:".into(),
        "---".into(),
    ]);
    for r in &warm {
        let c = &r.component;
        let (k, n) = (&r.native_keep_alive, &r.native_new_conn);
        row(&[
            format!("{} warm, {clients} clients: req/s", r.endpoint),
            format!("{:.0}", c.rps()),
            format!(
                "{:.0} keep-alive · {:.0} new TLS connection each",
                k.rps(),
                n.rps()
            ),
            format!("{:.2} · {:.2}", c.rps() / k.rps(), c.rps() / n.rps()),
            String::new(),
        ]);
        row(&[
            format!("{} warm: p50 / p99 latency", r.endpoint),
            format!(
                "{:.2} / {:.2} ms",
                c.percentile_ms(0.5),
                c.percentile_ms(0.99)
            ),
            format!(
                "{:.2} / {:.2} ms · {:.2} / {:.2} ms",
                k.percentile_ms(0.5),
                k.percentile_ms(0.99),
                n.percentile_ms(0.5),
                n.percentile_ms(0.99)
            ),
            String::new(),
            String::new(),
        ]);
    }
    let names = calls
        .iter()
        .map(|c| {
            c.endpoint
                .trim_start_matches("Get")
                .trim_start_matches("Download")
        })
        .collect::<Vec<_>>()
        .join(" / ");
    row(&[
        format!("upstream calls per request, warm ({names})"),
        calls
            .iter()
            .map(|c| format!("{:.2}", c.warm_per_request))
            .collect::<Vec<_>>()
            .join(" / "),
        "1".into(),
        String::new(),
        "1.0".into(),
    ]);
    row(&[
        "upstream calls, first request on an empty cache (IMDS + Entra + service)".into(),
        calls
            .iter()
            .map(|c| {
                format!(
                    "{} ({}+{}+{})",
                    c.cold_total, c.cold_imds, c.cold_entra, c.cold_service
                )
            })
            .collect::<Vec<_>>()
            .join(" / "),
        String::new(),
        String::new(),
        String::new(),
    ]);
    row(&[
        format!("cold burst of {BURST} concurrent: IMDS + Entra calls (all calls)"),
        calls
            .iter()
            .map(|c| {
                let failed = if c.burst_errors > 0 {
                    format!(", {} FAILED", c.burst_errors)
                } else {
                    String::new()
                };
                format!(
                    "{}+{} ({}{failed})",
                    c.burst_imds, c.burst_entra, c.burst_total
                )
            })
            .collect::<Vec<_>>()
            .join(" / "),
        String::new(),
        String::new(),
        "IMDS: ≤ 5 concurrent, ≤ 20/s".into(),
    ]);
    let (raw, comp) = (&stream.raw, &stream.component);
    row(&[
        format!("{} MiB blob → base64, MiB/s of blob", stream.size >> 20),
        format!("{:.1} ({:.1} s)", comp.blob_mib_s(), comp.secs),
        format!(
            "{:.1} ({:.1} s) raw GET from Azurite",
            raw.blob_mib_s(),
            raw.secs
        ),
        format!("{:.2}", comp.blob_mib_s() / raw.blob_mib_s()),
        String::new(),
    ]);
    row(&[
        "peak RSS growth of this process during the transfer".into(),
        format!("{:.1} MiB", comp.memory.growth_mib()),
        format!("{:.1} MiB", raw.memory.growth_mib()),
        String::new(),
        "flat, < 32 MiB".into(),
    ]);
    row(&[
        "tenant_bridge.wasm (release, wasm32-wasip2)".into(),
        format!(
            "{} bytes ({:.0} KiB)",
            wasm_bytes,
            wasm_bytes as f64 / 1024.0
        ),
        String::new(),
        String::new(),
        String::new(),
    ]);

    println!();
    println!("Measured with `cargo bench --bench bench` ({clients} clients, {} s per run, {} CPUs, loopback; client, host and fakes share the machine):", secs.as_secs(), std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
    println!();
    print!("{t}");
    println!();
    println!("details:");
    for r in &warm {
        for (what, run) in [
            ("component", &r.component),
            ("native keep-alive", &r.native_keep_alive),
            ("native new conn", &r.native_new_conn),
        ] {
            println!(
                "  {:<22} {:<18} {:>7} ok {:>4} errors in {:.2} s",
                r.endpoint, what, run.ok, run.errors, run.secs
            );
        }
    }
    for (what, tr) in [("raw GET", raw), ("component", comp)] {
        println!(
            "  stream {:<10} {:>10} wire bytes  {:>7.1} MiB/s on the wire  RSS baseline {} KiB, sampled peak {} KiB, VmHWM {}",
            what,
            tr.wire_bytes,
            tr.wire_bytes as f64 / (1024.0 * 1024.0) / tr.secs,
            tr.memory.baseline_kib,
            tr.memory.sampled_peak_kib,
            tr.memory.hwm_kib.map(|k| format!("{k} KiB")).unwrap_or_else(|| "n/a".into()),
        );
        println!(
            "  stream {:<10} RSS growth over the transfer (10/25/50/75/100 %): {} MiB ({} samples)",
            what,
            tr.memory.timeline(),
            tr.memory.samples_kib.len()
        );
    }
    println!(
        "  RSS growth around one small-blob request through the component: {:.1} MiB",
        stream.small.growth_mib()
    );
    println!(
        "  upload of the blob to Azurite: {:.1} s",
        stream.upload_secs
    );
    println!(
        "  total bench time: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
