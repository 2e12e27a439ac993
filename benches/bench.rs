//! `cargo bench --bench bench` — issue 12's benchmark: tenant-bridge side by side with the least
//! a Spin component can do for the same answers, in one run, printed as one Markdown table.
//!
//! - Warm path, each of the four endpoints: req/s and p50/p99 latency through the compiled
//!   component vs. the `kv-get` ceiling (one key-value read + one outbound GET to the same fake
//!   vault or Azurite with the same bearer token, answering the value or the base64), in
//!   alternating rounds so drift on a shared machine hits both sides alike; what a warm request
//!   costs (key-value reads / writes, variable lookups, outbound calls) from its log line.
//! - A large blob (256 MiB; `TB_BENCH_BLOB_MIB`) streamed as base64 vs. the `passthrough`
//!   ceiling (the same blob streamed through unchanged): MiB/s of blob, growth of this
//!   process's RSS (the host runs in it) and the guest's linear memory after the transfer. Each
//!   side's body is decoded and compared once; the timed transfers (one per side and round)
//!   only count bytes, as a download client would.
//! - The cold burst: 64 concurrent requests over two host instances sharing one store, per
//!   endpoint: IMDS and Entra calls, errors, the slowest request vs. the token fetch it waited
//!   for.
//! - The .wasm sizes.
//!
//! Everything runs on loopback in this process (client, host, fakes; Azurite is a node child
//! process), through the same testkit host and the same store backend as the integration tests:
//! whatever the host's configuration says (printed with the table). The ceilings are in
//! `benches/ceiling/`. Knobs: `TB_BENCH_CLIENTS` (32), `TB_BENCH_SECS` (8 per side and
//! endpoint), `TB_BENCH_ROUNDS` (4), `TB_BENCH_BLOB_MIB` (256), `TB_BENCH_ONLY` (parts to run,
//! of `warm,stream,cold`; all by default). For profiling one side with `perf`: `TB_BENCH_SIDE`
//! (`component` or `ceiling`) and `TB_BENCH_ENDPOINT` (one endpoint's name) narrow the warm runs.
//! `TB_BENCH_CEILING_VARS=N`: the `kv-get` ceiling declares N variables it never reads.
//!
//! `TB_BENCH_SPIN=/path/to/spin`: the same table with both sides served by that Spin binary
//! (`spin up`) instead of the testkit host, against the sandbox's fakes, with each side's
//! startup (`spin up` to the first answered request); every part ([`spin`] says how, and what
//! /etc/hosts needs).

#[path = "bench/spin.rs"]
mod spin;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tenant_bridge_testkit::host::RunningHost;
use tenant_bridge_testkit::world::load::{burst, client, hammer, one, Endpoint, Tally, ALL};
use tenant_bridge_testkit::world::suite::*;
use tenant_bridge_testkit::world::*;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Knobs {
    /// `TB_BENCH_ONLY`: the parts to run (warm, stream, cold); empty: all.
    only: String,
    /// `TB_BENCH_SIDE`, `TB_BENCH_ENDPOINT`: narrow the warm runs (profiling).
    side: String,
    endpoint: String,
    clients: usize,
    secs: Duration,
    rounds: u32,
    blob_mib: usize,
}

impl Knobs {
    fn runs(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.split(',').any(|p| p.trim() == part)
    }
}

// ---------------------------------------------------------------------------------------------
// The ceiling components

struct Ceilings {
    kv_get: PathBuf,
    passthrough: PathBuf,
}

/// Builds both ceilings with the workspace's release profile, as the component is built.
fn ceilings() -> Ceilings {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root())
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .args(["-p", "ceiling-kv-get", "-p", "ceiling-passthrough"])
        .status()
        .expect("run cargo build for the ceilings");
    assert!(status.success(), "building the ceiling components failed");
    let out = root().join("target/wasm32-wasip2/release");
    Ceilings {
        kv_get: out.join("ceiling_kv_get.wasm"),
        passthrough: out.join("ceiling_passthrough.wasm"),
    }
}

/// A ceiling's manifest. `TB_BENCH_CEILING_VARS=N` gives the `kv-get` ceiling N declared
/// application variables it never reads (a copy of its manifest in the target directory): the
/// cost Spin charges per declared variable, measured on the ceiling's own code.
fn ceiling_manifest(name: &str) -> PathBuf {
    let manifest = root().join("benches/ceiling").join(name).join("spin.toml");
    let declared = env_or("TB_BENCH_CEILING_VARS", 0);
    if name != "kv-get" || declared == 0 {
        return manifest;
    }
    let text = std::fs::read_to_string(&manifest).expect("the ceiling's manifest");
    let text = text.replace(
        "source = \"../../../",
        &format!("source = \"{}/", root().display()),
    );
    let variables: String = (1..=declared)
        .map(|i| format!("unread_v{i} = {{ default = \"\" }}\n"))
        .collect();
    let copy = root()
        .join("target")
        .join(format!("ceiling-{name}-{declared}-variables.toml"));
    std::fs::write(&copy, format!("{text}\n[variables]\n{variables}"))
        .expect("the ceiling's manifest copy");
    copy
}

/// A ceiling request: the store key holding `Bearer …`, the answer's form, the upstream URL.
fn ceiling_url(host: &RunningHost, key: &str, mode: &str, upstream: &str) -> String {
    format!(
        "{}/ceiling?key={key}&as={mode}&url={upstream}",
        host.base_url()
    )
}

/// The component's last authorised request to `origin`: its URL and `Authorization` header.
fn last_authorised(w: &World, origin: &str) -> (String, String) {
    let record = w
        .outbound()
        .into_iter()
        .rev()
        .find(|o| o.url.starts_with(origin) && o.header("authorization").is_some())
        .unwrap_or_else(|| panic!("no authorised request to {origin}"));
    let bearer = record.header("authorization").unwrap().to_string();
    (record.url, bearer)
}

fn service_origin(w: &World, ep: Endpoint) -> String {
    match ep {
        Endpoint::SecretSame => w.vault_a.endpoint(),
        Endpoint::SecretCross => w.vault_b.endpoint(),
        Endpoint::BlobSame | Endpoint::BlobCross => w.storage.endpoint(),
    }
}

fn get_ok(w: &World, ep: Endpoint) {
    let r = w.get(&ep.path());
    assert_eq!(r.status, 200, "{}: {}", ep.name(), r.text());
    assert_eq!(r.body, ep.expected(), "{}: body", ep.name());
}

/// The store backend the host runs with, as it describes itself.
fn store_backend(w: &World) -> String {
    w.host
        .kv()
        .backend("default")
        .unwrap_or("no default store")
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Warm path

/// What one warm request cost, averaged over the measured requests' log lines.
#[derive(Default)]
struct Costs {
    requests: usize,
    kv_reads: f64,
    kv_writes: f64,
    variable_lookups: f64,
    upstream: f64,
}

fn costs(lines: &[serde_json::Value], route: &str) -> Costs {
    let mine: Vec<_> = lines.iter().filter(|l| l["route"] == route).collect();
    let n = mine.len().max(1) as f64;
    let avg = |field: &str| {
        mine.iter()
            .map(|l| l[field].as_f64().unwrap_or(0.0))
            .sum::<f64>()
            / n
    };
    Costs {
        requests: mine.len(),
        kv_reads: avg("kv_reads"),
        kv_writes: avg("kv_writes"),
        variable_lookups: avg("variable_lookups"),
        upstream: mine
            .iter()
            .map(|l| l["upstream"].as_array().map_or(0, Vec::len) as f64)
            .sum::<f64>()
            / n,
    }
}

struct Warm {
    name: &'static str,
    component: Tally,
    ceiling: Tally,
    /// From the log lines; none for the floor.
    costs: Option<Costs>,
}

fn warm(w: &World, ceiling_host: &RunningHost, ep: Endpoint, k: &Knobs) -> Warm {
    get_ok(w, ep);
    let (upstream, bearer) = last_authorised(w, &service_origin(w, ep));
    let key = format!("ceiling-{}", ep.name());
    w.host.kv().set("default", &key, bearer.into_bytes());
    let mode = if ep.is_secret() { "value" } else { "base64" };
    let ceiling_url = ceiling_url(ceiling_host, &key, mode, &upstream);
    let component_url = format!("{}{}", w.host.base_url(), ep.path());
    let lines_before = w.log_lines(0).len();
    let opened = (
        w.host.connections_opened(),
        ceiling_host.connections_opened(),
    );
    let (component, ceiling) =
        side_by_side(k, ep.name(), &component_url, &ceiling_url, &ep.expected());
    eprintln!(
        "  outbound connections opened: component {} for {} requests, ceiling {} for {}",
        w.host.connections_opened() - opened.0,
        component.total(),
        ceiling_host.connections_opened() - opened.1,
        ceiling.total()
    );
    let lines = w.log_lines(0);
    Warm {
        name: ep.name(),
        component,
        ceiling,
        costs: Some(costs(&lines[lines_before.min(lines.len())..], ep.name())),
    }
}

/// The floor under every request: an instance that answers at once (`/api/livez`; the ceiling's
/// `as=none`), no store, no network.
fn floor(w: &World, ceiling: &RunningHost, k: &Knobs) -> Warm {
    let component_url = format!("{}/api/livez", w.host.base_url());
    let ceiling_url = ceiling_url(ceiling, "-", "none", "-");
    let (component, ceiling) = side_by_side(
        k,
        "livez",
        &component_url,
        &ceiling_url,
        br#"{"status":"alive"}"#,
    );
    Warm {
        name: "instance floor (/api/livez)",
        component,
        ceiling,
        costs: None,
    }
}

/// Both sides under the same load, in alternating rounds (A B B A …) so that drift on a shared
/// machine hits both alike, after an unmeasured second each (pools, caches).
fn side_by_side(
    k: &Knobs,
    what: &str,
    component_url: &str,
    ceiling_url: &str,
    expected: &[u8],
) -> (Tally, Tally) {
    let c = client(k.clients);
    rt().block_on(one(&c, ceiling_url, expected))
        .unwrap_or_else(|e| panic!("the ceiling for {what}: {e}"));
    for url in [component_url, ceiling_url] {
        hammer(&c, k.clients, url, expected, Duration::from_secs(1));
    }
    let (mut component, mut ceiling) = (Tally::default(), Tally::default());
    let slice = k.secs / k.rounds;
    for round in 0..k.rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            let wanted = match k.side.as_str() {
                "component" => side == 0,
                "ceiling" => side == 1,
                _ => true,
            };
            if !wanted {
                continue;
            }
            let (url, tally) = if side == 0 {
                (component_url, &mut component)
            } else {
                (ceiling_url, &mut ceiling)
            };
            tally.merge(hammer(&c, k.clients, url, expected, slice));
        }
    }
    for (side, t) in [("component", &component), ("ceiling", &ceiling)] {
        if let Some(e) = t.samples.first() {
            eprintln!("  !! {what} {side}: {} errors, first: {e}", t.errors);
        }
    }
    (component, ceiling)
}

// ---------------------------------------------------------------------------------------------
// Memory

/// `field` of `/proc/<pid>/status` (this process's without a pid), in KiB.
fn status_kib(pid: Option<u32>, field: &str) -> Option<u64> {
    let proc = pid.map_or("self".to_string(), |p| p.to_string());
    let status = std::fs::read_to_string(format!("/proc/{proc}/status")).ok()?;
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
}

impl Memory {
    fn growth_mib(&self) -> f64 {
        let peak = self.sampled_peak_kib.max(self.hwm_kib.unwrap_or(0));
        peak.saturating_sub(self.baseline_kib) as f64 / 1024.0
    }
}

/// Runs `f` while a thread samples the host's VmRSS every 2 ms: this process's (the testkit
/// host runs in it), or process `pid`'s (Spin's).
fn with_memory<T>(pid: Option<u32>, f: impl FnOnce() -> T) -> (T, Memory) {
    let proc = pid.map_or("self".to_string(), |p| p.to_string());
    // Give freed heap back first, so reuse of retained pages cannot hide growth.
    // SAFETY: malloc_trim only releases free memory of glibc's arenas.
    unsafe {
        libc::malloc_trim(0);
    }
    let baseline_kib = status_kib(pid, "VmRSS:").expect("VmRSS");
    let hwm_reset = std::fs::write(format!("/proc/{proc}/clear_refs"), "5").is_ok();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(status_kib(pid, "VmRSS:").unwrap_or(0));
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    };
    let out = f();
    stop.store(true, Ordering::Relaxed);
    let sampled_peak_kib = sampler.join().expect("sampler");
    let hwm_kib = if hwm_reset {
        status_kib(pid, "VmHWM:")
    } else {
        None
    };
    (
        out,
        Memory {
            baseline_kib,
            sampled_peak_kib,
            hwm_kib,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Streaming

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
    blob_bytes: u64,
    memory: Memory,
}

impl Transfer {
    fn blob_mib_s(&self) -> f64 {
        self.blob_bytes as f64 / (1024.0 * 1024.0) / self.secs
    }
}

/// GETs `url` and checks every byte as it arrives, decoding base64 when `base64_body` is set.
/// One GET of the big blob. With `verify`, the body is decoded and compared with what was
/// uploaded; without, it is only counted, as a download client (curl, wrk) would: on two cores
/// the client's own decoding would otherwise be charged to the side that sends base64.
fn transfer(
    url: &str,
    base64_body: bool,
    verify: bool,
    size: usize,
    pattern: &[u8],
    host_pid: Option<u32>,
) -> Transfer {
    let client = client(1);
    let ((secs, blob_bytes), memory) = with_memory(host_pid, || {
        rt().block_on(async {
            let start = Instant::now();
            let mut resp = client
                .get(url)
                .header("x-functions-key", KEY)
                .timeout(Duration::from_secs(600))
                .send()
                .await
                .expect("send");
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
                if !verify {
                    continue;
                }
                if !base64_body {
                    assert!(matches(pattern, blob, &chunk), "raw blob differs at {blob}");
                    blob += chunk.len();
                    continue;
                }
                carry.extend_from_slice(&chunk);
                let take = if wire == expected_len {
                    carry.len()
                } else {
                    carry.len() / 4 * 4
                };
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
            if verify {
                assert_eq!(blob, size, "blob length via {url}");
            }
            // A complete body of the announced length carries the whole blob.
            let blob = size;
            (start.elapsed().as_secs_f64(), blob as u64)
        })
    });
    Transfer {
        secs,
        blob_bytes,
        memory,
    }
}

/// The largest `memory_kib` in JSON log lines: the guest's linear memory when it finished.
fn guest_memory_kib(logs: &str) -> Option<u64> {
    logs.lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["memory_kib"].as_u64())
        .max()
}

struct Streaming {
    size: usize,
    /// One transfer each per round, rounds alternating which side goes first.
    component: Vec<Transfer>,
    ceiling: Vec<Transfer>,
    component_guest_kib: Option<u64>,
    ceiling_guest_kib: Option<u64>,
}

fn mean_mib_s(t: &[Transfer]) -> f64 {
    let (bytes, secs) = t
        .iter()
        .fold((0u64, 0f64), |(b, s), t| (b + t.blob_bytes, s + t.secs));
    bytes as f64 / (1024.0 * 1024.0) / secs
}

fn peak_growth_mib(t: &[Transfer]) -> f64 {
    t.iter().map(|t| t.memory.growth_mib()).fold(0.0, f64::max)
}

fn streaming(passthrough: &std::path::Path, mib: usize, rounds: u32) -> Streaming {
    const CONTAINER: &str = "bench";
    let blob = format!("big-{mib}MiB.bin");
    let size = mib * 1024 * 1024;
    let pattern = pattern();
    let w = World::new();
    eprintln!("streaming: uploading {mib} MiB to Azurite …");
    {
        let data: Vec<u8> = pattern.iter().copied().cycle().take(size).collect();
        w.put_blob(ACCOUNT_A, CONTAINER, &blob, &data);
    }
    get_ok(&w, Endpoint::BlobSame);
    let (_, bearer) = last_authorised(&w, &w.storage.endpoint());
    w.host
        .kv()
        .set("default", "ceiling-stream", bearer.into_bytes());
    let ceiling = w.sibling(passthrough.to_path_buf(), ceiling_manifest("passthrough"));
    let upstream = format!(
        "{}{}/{CONTAINER}/{blob}",
        shared().azurite.endpoint(),
        shared().azurite.account_path(ACCOUNT_A)
    );
    let ceiling_url = ceiling_url(&ceiling, "ceiling-stream", "raw", &upstream);
    let component_url = format!(
        "{}/api/DownloadBlobSameTenant?container={CONTAINER}&blob={blob}",
        w.host.base_url()
    );
    let (component, raw) = stream_rounds(&component_url, &ceiling_url, size, rounds, [None, None]);
    // The guest writes its line after the body; give it a moment.
    std::thread::sleep(Duration::from_millis(200));
    Streaming {
        size,
        component,
        ceiling: raw,
        component_guest_kib: guest_memory_kib(&w.logs()),
        ceiling_guest_kib: guest_memory_kib(&ceiling.logs()),
    }
}

/// Each side's output checked once, byte for byte, then one timed transfer per side and round,
/// alternating which goes first. `host_pids`: the processes serving the component and the
/// ceiling (None: this one).
fn stream_rounds(
    component_url: &str,
    ceiling_url: &str,
    size: usize,
    rounds: u32,
    host_pids: [Option<u32>; 2],
) -> (Vec<Transfer>, Vec<Transfer>) {
    let pattern = pattern();
    let mib = size >> 20;
    eprintln!("streaming: verifying both sides' bodies …");
    transfer(ceiling_url, false, true, size, &pattern, host_pids[1]);
    transfer(component_url, true, true, size, &pattern, host_pids[0]);
    let (mut component, mut raw) = (Vec::new(), Vec::new());
    let order = (0..rounds).flat_map(|r| if r % 2 == 0 { [1, 0] } else { [0, 1] });
    for side in order {
        if side == 0 {
            eprintln!("streaming: {mib} MiB through the component …");
            component.push(transfer(
                component_url,
                true,
                false,
                size,
                &pattern,
                host_pids[0],
            ));
        } else {
            eprintln!("streaming: {mib} MiB through the pass-through ceiling …");
            raw.push(transfer(
                ceiling_url,
                false,
                false,
                size,
                &pattern,
                host_pids[1],
            ));
        }
    }
    (component, raw)
}

// ---------------------------------------------------------------------------------------------
// Cold burst over two replicas

const BURST: usize = 64;

struct Cold {
    ep: Endpoint,
    tally: Tally,
    imds: usize,
    entra: usize,
    /// Tokens the endpoint needs: the service token, and for a cross-tenant one the assertion.
    tokens: usize,
    /// The fetching request's token calls (challenge, IMDS, Entra), from its log line.
    fetch_ms: Option<f64>,
    /// The same burst again on the now warm cache: what 64 concurrent requests cost anyway.
    warm: Tally,
}

/// Time the fetching request spent getting its token: every upstream call of its log line but
/// the final service call.
fn fetch_ms(lines: &[serde_json::Value]) -> Option<f64> {
    lines
        .iter()
        .filter_map(|l| l["upstream"].as_array())
        .filter(|u| u.iter().any(|c| c["service"] == "IMDS"))
        .map(|u| {
            u[..u.len().saturating_sub(1)]
                .iter()
                .map(|c| c["ms"].as_f64().unwrap_or(0.0))
                .sum::<f64>()
        })
        .reduce(f64::max)
}

fn json_lines(logs: &str) -> Vec<serde_json::Value> {
    logs.lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn cold_burst(ep: Endpoint) -> Cold {
    // Two replicas share one Redis, as on SpinKube.
    let w = World::builder().replicated().build();
    let replica = w.replica();
    let urls = [
        format!("{}{}", w.host.base_url(), ep.path()),
        format!("{}{}", replica.base_url(), ep.path()),
    ];
    let c = client(BURST);
    let tally = burst(&c, &urls, BURST, &ep.expected());
    let warm = burst(&c, &urls, BURST, &ep.expected());
    // Log lines follow the bodies.
    std::thread::sleep(Duration::from_millis(300));
    let mut lines = json_lines(&w.logs());
    lines.extend(json_lines(&replica.logs()));
    if let Some(e) = tally.samples.first() {
        eprintln!(
            "  !! cold {}: {} errors, first: {e}",
            ep.name(),
            tally.errors
        );
    }
    Cold {
        ep,
        imds: w.imds.token_requests().len(),
        entra: w.entra.requests().len(),
        tokens: if ep.is_cross() { 2 } else { 1 },
        fetch_ms: fetch_ms(&lines),
        tally,
        warm,
    }
}

// ---------------------------------------------------------------------------------------------

fn kib(bytes: u64) -> String {
    format!("{bytes} bytes ({:.0} KiB)", bytes as f64 / 1024.0)
}

fn main() {
    let k = Knobs {
        only: std::env::var("TB_BENCH_ONLY").unwrap_or_default(),
        side: std::env::var("TB_BENCH_SIDE").unwrap_or_default(),
        endpoint: std::env::var("TB_BENCH_ENDPOINT").unwrap_or_default(),
        clients: env_or("TB_BENCH_CLIENTS", 32) as usize,
        secs: Duration::from_secs(env_or("TB_BENCH_SECS", 8)),
        rounds: env_or("TB_BENCH_ROUNDS", 4).max(1) as u32,
        blob_mib: env_or("TB_BENCH_BLOB_MIB", 256) as usize,
    };
    let started = Instant::now();
    let wasm = wasm();
    let ceilings = ceilings();
    let spin_bin = std::env::var_os("TB_BENCH_SPIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if spin_bin.is_none() {
        shared();
    }
    eprintln!("setup: {:.1} s", started.elapsed().as_secs_f64());

    let (stream, mut warm, mut cold, backend, host, startup) = match &spin_bin {
        Some(bin) => {
            let r = spin::run(bin, &k, &wasm);
            (r.stream, r.warm, r.cold, r.backend, r.host, Some(r.startup))
        }
        None => {
            // Streaming first: its memory figure is the process's growth during a transfer, and after
            // the warm runs the process holds (and has freed) the log of some 300,000 requests, which
            // makes the allocator's growth, not the relay's, the figure.
            let stream = k
                .runs("stream")
                .then(|| streaming(&ceilings.passthrough, k.blob_mib, k.rounds));
            let (warm, backend) = {
                let w = World::new();
                let ceiling = w.sibling(ceilings.kv_get.clone(), ceiling_manifest("kv-get"));
                let mut warm: Vec<Warm> = ALL
                    .into_iter()
                    .filter(|ep| {
                        k.runs("warm") && (k.endpoint.is_empty() || k.endpoint == ep.name())
                    })
                    .map(|ep| {
                        eprintln!("warm {} …", ep.name());
                        warm(&w, &ceiling, ep, &k)
                    })
                    .collect();
                if k.runs("warm") && (k.endpoint.is_empty() || k.endpoint == "livez") {
                    eprintln!("warm floor …");
                    warm.push(floor(&w, &ceiling, &k));
                }
                (warm, store_backend(&w))
            };
            let cold: Vec<Cold> = ALL
                .into_iter()
                .filter(|_| k.runs("cold"))
                .map(|ep| {
                    eprintln!("cold burst {} …", ep.name());
                    cold_burst(ep)
                })
                .collect();
            (
                stream,
                warm,
                cold,
                backend,
                "testkit (the testkit's wasmtime host, in this process)".to_string(),
                None,
            )
        }
    };
    let size = |p: &PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());

    // -- the table ------------------------------------------------------------------------
    let mut t = String::new();
    let mut row = |cells: [String; 5]| {
        t.push_str("| ");
        t.push_str(&cells.join(" | "));
        t.push_str(" |\n");
    };
    row([
        "measure".into(),
        "tenant-bridge".into(),
        "ceiling".into(),
        "ratio".into(),
        "goal".into(),
    ]);
    row([
        "---".into(),
        "---:".into(),
        "---:".into(),
        "---:".into(),
        "---".into(),
    ]);
    for r in &warm {
        let (c, l) = (&r.component, &r.ceiling);
        row([
            format!("{} warm, req/s", r.name),
            format!("{:.0}", c.rps()),
            format!("{:.0}", l.rps()),
            format!("**{:.2}**", c.rps() / l.rps()),
            if r.costs.is_some() {
                "≥ 0.9".into()
            } else {
                "(the fixed cost under every request)".into()
            },
        ]);
    }
    for r in warm.iter_mut() {
        let (c, l) = (&mut r.component, &mut r.ceiling);
        row([
            format!("{} warm, p50 / p99 ms", r.name),
            format!("{:.2} / {:.2}", c.percentile_ms(0.5), c.percentile_ms(0.99)),
            format!("{:.2} / {:.2}", l.percentile_ms(0.5), l.percentile_ms(0.99)),
            String::new(),
            String::new(),
        ]);
    }
    row([
        "warm request: key-value reads / writes, variable lookups, outbound calls (secret same, cross; blob same, cross)".into(),
        warm.iter()
            .filter_map(|r| r.costs.as_ref())
            .map(|c| {
                format!(
                    "{:.0}/{:.0}, {:.0}, {:.0}",
                    c.kv_reads, c.kv_writes, c.variable_lookups, c.upstream
                )
            })
            .collect::<Vec<_>>()
            .join(" · "),
        "1/0, 0, 1".into(),
        String::new(),
        "1/0, –, 1".into(),
    ]);
    if let Some(stream) = &stream {
        let (cm, rm) = (mean_mib_s(&stream.component), mean_mib_s(&stream.ceiling));
        row([
            format!(
                "{} MiB blob, MiB/s of blob (base64 out vs. unchanged)",
                stream.size >> 20
            ),
            format!("{cm:.0}"),
            format!("{rm:.0}"),
            format!("**{:.2}**", cm / rm),
            "≥ 0.8".into(),
        ]);
        row([
            "peak RSS growth of the host process during the transfer".into(),
            format!("{:.1} MiB", peak_growth_mib(&stream.component)),
            format!("{:.1} MiB", peak_growth_mib(&stream.ceiling)),
            String::new(),
            "< 16 MiB for 1 GiB".into(),
        ]);
        let guest =
            |k: Option<u64>| k.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
        row([
            "guest linear memory after the transfer".into(),
            guest(stream.component_guest_kib),
            guest(stream.ceiling_guest_kib),
            String::new(),
            String::new(),
        ]);
    }
    for c in cold.iter_mut() {
        let slowest = c.tally.percentile_ms(1.0);
        let warm = c.warm.percentile_ms(1.0);
        let fetch = c.fetch_ms.map_or("n/a".into(), |f| {
            format!("{slowest:.0} ms vs {f:.0} ms (+{:.0} ms)", slowest - f)
        });
        row([
            format!(
                "{} cold burst, {BURST} concurrent over 2 replicas: IMDS + Entra calls ({} token{}), errors; slowest request vs the fetch it waited for (the same burst warm)",
                c.ep.name(),
                c.tokens,
                if c.tokens == 1 { "" } else { "s" }
            ),
            format!(
                "{} + {}, {} errors; {fetch} ({warm:.0} ms)",
                c.imds, c.entra, c.tally.errors
            ),
            String::new(),
            String::new(),
            format!(
                "1 + {}, 0 errors; ≤ +250 ms",
                if c.ep.is_cross() { 1 } else { 0 }
            ),
        ]);
    }
    if let Some(startup) = &startup {
        row([
            "startup: `spin up` to the first answered request (/api/livez; the ceiling's as=none), Spin's default compilation cache"
                .into(),
            format!("{:.0} ms", startup.component.as_secs_f64() * 1000.0),
            format!("{:.0} ms", startup.ceiling.as_secs_f64() * 1000.0),
            format!(
                "{:.2}",
                startup.component.as_secs_f64() / startup.ceiling.as_secs_f64()
            ),
            "reported".into(),
        ]);
    }
    row([
        "tenant_bridge.wasm (release)".into(),
        kib(size(&wasm)),
        format!(
            "{} (kv-get) · {} (passthrough)",
            kib(size(&ceilings.kv_get)),
            kib(size(&ceilings.passthrough))
        ),
        String::new(),
        "— (reported)".into(),
    ]);

    println!();
    println!(
        "Measured with `{}cargo bench --bench bench`: {} clients, {} s per side and endpoint in {} alternating rounds, {} MiB blob, {} CPUs, loopback (client, host and fakes share the machine); store: {backend}.",
        spin_bin
            .as_ref()
            .map_or(String::new(), |b| format!("TB_BENCH_SPIN={} ", b.display())),
        k.clients,
        k.secs.as_secs(),
        k.rounds,
        k.blob_mib,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!();
    println!("host: {host}");
    println!();
    print!("{t}");
    println!();
    println!("details:");
    for r in &warm {
        for (side, run) in [("component", &r.component), ("ceiling", &r.ceiling)] {
            println!(
                "  warm {:<24} {side:<10} {:>7} ok {:>4} errors in {:.2} s",
                r.name, run.ok, run.errors, run.secs
            );
        }
        if let Some(c) = &r.costs {
            println!(
                "  warm {:<24} {} log lines: kv reads {:.2}, writes {:.2}, variable lookups {:.2}, upstream {:.2}",
                r.name,
                c.requests,
                c.kv_reads,
                c.kv_writes,
                c.variable_lookups,
                c.upstream
            );
        }
    }
    if let Some(stream) = &stream {
        for (side, runs) in [
            ("component", &stream.component),
            ("ceiling", &stream.ceiling),
        ] {
            for tr in runs.iter() {
                println!(
                    "  stream {side:<10} {:>7.1} MiB/s of blob in {:.2} s; RSS baseline {} KiB, sampled peak {} KiB, VmHWM {}",
                    tr.blob_mib_s(),
                    tr.secs,
                    tr.memory.baseline_kib,
                    tr.memory.sampled_peak_kib,
                    tr.memory
                        .hwm_kib
                        .map_or("n/a".into(), |k| format!("{k} KiB")),
                );
            }
        }
    }
    for c in cold.iter_mut() {
        let (p50, max) = (c.tally.percentile_ms(0.5), c.tally.percentile_ms(1.0));
        println!(
            "  cold {:<24} {} ok {} errors in {:.2} s, p50 {:.0} ms, max {:.0} ms",
            c.ep.name(),
            c.tally.ok,
            c.tally.errors,
            c.tally.secs,
            p50,
            max
        );
    }
    println!(
        "  total bench time: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
