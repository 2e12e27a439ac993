//! The benchmark under a given Spin binary (`TB_BENCH_SPIN=/path/to/spin`): tenant-bridge and
//! the ceilings each served by `spin up` of that binary (warm path, streaming, startup; the cold
//! burst with two tenant-bridge replicas on one fresh redis-server, as in the testkit mode),
//! against the fakes of the local sandbox
//! (`testkit/src/sandbox/`, fakes only, as `scripts/run-local` starts them for `spin up`): its
//! runtime config (in-memory `spin` key-value store, `[[client_tls]]` trusting the sandbox CA for
//! tenant-bridge and both ceilings) and its `SPIN_VARIABLE_*`s. Nothing here runs unless the
//! variable is set, and nothing looks for `spin` on PATH.
//!
//! Spin resolves the vault host names through the system: /etc/hosts must map them to
//! 127.0.0.1 (the lines the sandbox writes to its `hosts` file; docs/sandbox.md, Host names).
//! The bench stops with those lines when they are missing.
//!
//! Differences from the testkit-host mode, both sides alike: Spin holds the store and the
//! outbound connections (no per-side connection count); the blobs come from Azurite directly
//! (the sandbox has no Storage gate in front of it); the ceiling's storage token is a managed
//! identity token from the IMDS fake (Azurite checks the audience, not the tenant), its vault
//! tokens the ones tenant-bridge sent; the ceiling's tokens reach its store through
//! `spin up --key-value`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tenant_bridge_testkit::launchers::spin::{self as spin_up, SpinApp, SpinUp};
use tenant_bridge_testkit::sandbox::{self, Options, Sandbox};
use tenant_bridge_testkit::world::load::{client, one, Endpoint, ALL};
use tenant_bridge_testkit::world::suite::*;
use tenant_bridge_testkit::world::*;

use tenant_bridge_testkit::launchers::redis::RedisServer;
use tenant_bridge_testkit::world::load::burst;

use super::{
    ceiling_manifest, costs, fetch_ms, guest_memory_kib, json_lines, pattern, side_by_side,
    stream_rounds, Cold, Knobs, Streaming, Warm, BURST,
};

/// `spin up` to the first answered request.
pub struct Startup {
    pub component: Duration,
    pub ceiling: Duration,
}

pub struct SpinRun {
    /// "spin 3.6.3 (…) at /path".
    pub host: String,
    pub backend: String,
    pub warm: Vec<Warm>,
    pub stream: Option<Streaming>,
    pub cold: Vec<Cold>,
    pub startup: Startup,
}

/// The component ids of spin.toml and the ceilings' manifests (`[[client_tls]] component_ids`).
const COMPONENTS: [&str; 3] = [
    sandbox::COMPONENT_ID,
    "ceiling-kv-get",
    "ceiling-passthrough",
];

fn state_dir() -> PathBuf {
    root().join("target/bench-spin")
}

/// Polls `url` until it answers `expected`; the time since `from`.
fn first_answer(url: &str, expected: &[u8], from: Instant) -> Duration {
    let c = client(1);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match rt().block_on(one(&c, url, expected)) {
            Ok(()) => return from.elapsed(),
            Err(e) if Instant::now() > deadline => panic!("{url} never answered: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// A managed identity token for `resource` from the IMDS fake, as the component asks for one.
fn imds_token(sb: &Sandbox, resource: &str) -> String {
    let url = format!(
        "{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource={resource}&client_id={MI_CLIENT_ID}",
        sb.tenants().imds.endpoint()
    );
    let body: serde_json::Value = rt()
        .block_on(async {
            reqwest::Client::new()
                .get(&url)
                .header("Metadata", "true")
                .send()
                .await?
                .json()
                .await
        })
        .expect("a token from the IMDS fake");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// The ceiling's upstream URL and `Bearer …` for `ep`: what tenant-bridge called.
fn upstream(sb: &Sandbox, ep: Endpoint) -> (String, String) {
    let t = sb.tenants();
    let vault = match ep {
        Endpoint::SecretSame => Some(&t.vault_a),
        Endpoint::SecretCross => Some(&t.vault_b),
        _ => None,
    };
    if let Some(vault) = vault {
        let r = vault
            .requests()
            .into_iter()
            .rev()
            .find(|r| r.bearer().is_some() && r.status == Some(200))
            .unwrap_or_else(|| panic!("{}: no authorised vault request", ep.name()));
        let query: Vec<String> = r.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let url = format!("{}{}?{}", vault.endpoint(), r.path, query.join("&"));
        return (url, format!("Bearer {}", r.bearer().unwrap()));
    }
    let account = if ep.is_cross() { ACCOUNT_B } else { ACCOUNT_A };
    let az = sb.azurite();
    let url = format!(
        "{}{}/{SEED_CONTAINER}/{SEED_BLOB}",
        az.endpoint(),
        az.account_path(account)
    );
    (url, format!("Bearer {}", imds_token(sb, STORAGE_RESOURCE)))
}

/// The log lines (JSON) in `spin`'s stderr from byte `from` on.
fn lines_since(spin: &SpinUp, from: usize) -> Vec<serde_json::Value> {
    let err = spin.stderr();
    json_lines(err.get(from..).unwrap_or(""))
}

/// Runs the parts `k` asks for under `spin` (the ceilings are built already: their manifests
/// name the .wasm files).
pub fn run(spin: &Path, k: &Knobs, wasm: &Path) -> SpinRun {
    let version = spin_up::version(spin).unwrap_or_else(|e| panic!("TB_BENCH_SPIN: {e:#}"));
    let host = format!("{version} at {}", spin.display());
    eprintln!("host: {host}");
    let dir = state_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let opts = Options {
        state_dir: dir.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        serve_component: false,
        control: "127.0.0.1:0".parse().unwrap(),
        function_key: KEY.into(),
        wasm: wasm.to_path_buf(),
        manifest: root().join("spin.toml"),
        breaks: Vec::new(),
        echo_logs: false,
        client_tls_components: COMPONENTS.map(String::from).to_vec(),
    };
    let sb = rt()
        .block_on(Sandbox::start(opts))
        .expect("the sandbox's fakes");
    let missing = sb.missing_etc_hosts();
    assert!(
        missing.is_empty(),
        "TB_BENCH_SPIN: Spin resolves the vaults through the system, and /etc/hosts does not map {missing:?} to 127.0.0.1. Add once:\n  sudo sh -c 'cat {} >> /etc/hosts'",
        dir.join(sandbox::HOSTS_FILE).display()
    );
    let rc = sb.runtime_config_path();
    // `TB_BENCH_STATIC_VARIABLES=1`: tenant-bridge's two variables from a `static` variables
    // provider in its runtime config (consulted before the environment provider, without its
    // blocking hand-off), as a SpinKube runtime-config Secret can hold them.
    let component_rc = if std::env::var_os("TB_BENCH_STATIC_VARIABLES").is_some() {
        let mut values = toml::Table::new();
        for (k, v) in sb.variables() {
            values.insert(k.clone(), toml::Value::String(v.clone()));
        }
        let mut provider = toml::Table::new();
        provider.insert("type".into(), "static".into());
        provider.insert("values".into(), toml::Value::Table(values));
        let mut doc = toml::Table::new();
        doc.insert(
            "variables_provider".into(),
            toml::Value::Array(vec![toml::Value::Table(provider)]),
        );
        let text = format!(
            "{}\n{}",
            std::fs::read_to_string(&rc).expect("the sandbox's runtime config"),
            toml::to_string(&doc).expect("a static provider")
        );
        let path = dir.join("runtime-config-static.toml");
        std::fs::write(&path, text).expect("write the static runtime config");
        eprintln!(
            "tenant-bridge's variables from a static provider: {}",
            path.display()
        );
        path
    } else {
        rc.clone()
    };

    eprintln!("spin up tenant-bridge …");
    let component = SpinUp::start(
        &SpinApp {
            spin,
            manifest: sb.manifest_path(),
            runtime_config: &component_rc,
            variables: sb.variables(),
            key_values: &[],
            log_dir: &dir.join("logs-tenant-bridge"),
        },
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    let component_startup = first_answer(
        &format!("{}/api/livez", component.base_url()),
        br#"{"status":"alive"}"#,
        component.started(),
    );
    // One request per endpoint: the tokens cached, the vault tokens recorded for the ceiling.
    let c = client(1);
    let mut key_values = Vec::new();
    let mut upstreams = Vec::new();
    for ep in ALL {
        let url = format!("{}{}", component.base_url(), ep.path());
        rt().block_on(one(&c, &url, &ep.expected()))
            .unwrap_or_else(|e| panic!("{} through spin: {e}\n{}", ep.name(), component.stderr()));
        let (up, bearer) = upstream(&sb, ep);
        key_values.push((format!("ceiling-{}", ep.name()), bearer));
        upstreams.push(up);
    }

    eprintln!("spin up the kv-get ceiling …");
    let ceiling = SpinUp::start(
        &SpinApp {
            spin,
            manifest: &ceiling_manifest("kv-get"),
            runtime_config: &rc,
            variables: &[],
            key_values: &key_values,
            log_dir: &dir.join("logs-ceiling-kv-get"),
        },
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    let ceiling_url = |key: &str, mode: &str, up: &str| {
        format!(
            "{}/ceiling?key={key}&as={mode}&url={up}",
            ceiling.base_url()
        )
    };
    let ceiling_startup = first_answer(
        &ceiling_url("-", "none", "-"),
        br#"{"status":"alive"}"#,
        ceiling.started(),
    );

    let stream = k.runs("stream").then(|| {
        streaming(
            &sb,
            &component,
            &SpinApp {
                spin,
                manifest: &ceiling_manifest("passthrough"),
                runtime_config: &rc,
                variables: &[],
                key_values: &[],
                log_dir: &dir.join("logs-ceiling-passthrough"),
            },
            k,
        )
    });

    let mut warm = Vec::new();
    for (ep, up) in ALL.into_iter().zip(&upstreams) {
        if !k.runs("warm") || !(k.endpoint.is_empty() || k.endpoint == ep.name()) {
            continue;
        }
        eprintln!("warm {} (spin) …", ep.name());
        let mode = if ep.is_secret() { "value" } else { "base64" };
        let key = format!("ceiling-{}", ep.name());
        let from = component.stderr().len();
        let (c, l) = side_by_side(
            k,
            ep.name(),
            &format!("{}{}", component.base_url(), ep.path()),
            &ceiling_url(&key, mode, up),
            &ep.expected(),
        );
        // The log lines follow the bodies.
        std::thread::sleep(Duration::from_millis(300));
        warm.push(Warm {
            name: ep.name(),
            component: c,
            ceiling: l,
            costs: Some(costs(&lines_since(&component, from), ep.name())),
        });
    }
    if k.runs("warm") && (k.endpoint.is_empty() || k.endpoint == "livez") {
        eprintln!("warm floor (spin) …");
        let (c, l) = side_by_side(
            k,
            "livez",
            &format!("{}/api/livez", component.base_url()),
            &ceiling_url("-", "none", "-"),
            br#"{"status":"alive"}"#,
        );
        warm.push(Warm {
            name: "instance floor (/api/livez)",
            component: c,
            ceiling: l,
            costs: None,
        });
    }
    drop(ceiling);
    drop(component);
    let cold = ALL
        .into_iter()
        .filter(|_| k.runs("cold"))
        .map(|ep| {
            eprintln!("cold burst {} (spin) …", ep.name());
            cold_burst(&sb, spin, &dir, ep)
        })
        .collect();
    rt().block_on(sb.shutdown());
    SpinRun {
        host,
        backend: "Spin's `spin` key-value store in memory (the sandbox's runtime config); for the cold burst's two replicas, a redis-server they share".into(),
        warm,
        stream,
        cold,
        startup: Startup {
            component: component_startup,
            ceiling: ceiling_startup,
        },
    }
}

/// The large blob through tenant-bridge (base64) and through the pass-through ceiling
/// (unchanged), both under Spin; the memory figures are the serving Spin processes'.
fn streaming(sb: &Sandbox, component: &SpinUp, passthrough: &SpinApp, k: &Knobs) -> Streaming {
    const CONTAINER: &str = "bench";
    let mib = k.blob_mib;
    let blob = format!("big-{mib}MiB.bin");
    let size = mib * 1024 * 1024;
    let az = sb.azurite();
    eprintln!("streaming: uploading {mib} MiB to Azurite …");
    {
        let data: Vec<u8> = pattern().iter().copied().cycle().take(size).collect();
        rt().block_on(async {
            az.create_container(ACCOUNT_A, CONTAINER).await;
            az.put_blob(ACCOUNT_A, CONTAINER, &blob, &data).await;
        });
    }
    let key_values = [(
        "ceiling-stream".to_string(),
        format!("Bearer {}", imds_token(sb, STORAGE_RESOURCE)),
    )];
    eprintln!("spin up the passthrough ceiling …");
    let ceiling = SpinUp::start(
        &SpinApp {
            key_values: &key_values,
            ..*passthrough
        },
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    let upstream = format!(
        "{}{}/{CONTAINER}/{blob}",
        az.endpoint(),
        az.account_path(ACCOUNT_A)
    );
    let ceiling_url = format!(
        "{}/ceiling?key=ceiling-stream&as=raw&url={upstream}",
        ceiling.base_url()
    );
    let component_url = format!(
        "{}/api/DownloadBlobSameTenant?container={CONTAINER}&blob={blob}",
        component.base_url()
    );
    let (c, r) = stream_rounds(
        &component_url,
        &ceiling_url,
        size,
        k.rounds,
        [Some(component.serving_pid()), Some(ceiling.serving_pid())],
    );
    // The guest writes its line after the body; give it a moment.
    std::thread::sleep(Duration::from_millis(200));
    Streaming {
        size,
        component: c,
        ceiling: r,
        component_guest_kib: guest_memory_kib(&component.stderr()),
        ceiling_guest_kib: guest_memory_kib(&ceiling.stderr()),
    }
}

/// The cold burst under Spin: two `spin up` replicas of tenant-bridge sharing one fresh
/// redis-server as their default store (as two SpinKube replicas share one), 64 concurrent
/// requests over both, then the same burst warm.
fn cold_burst(sb: &Sandbox, spin: &Path, dir: &Path, ep: Endpoint) -> Cold {
    let redis = RedisServer::start().expect("redis-server for the replicas' shared store");
    let rc = dir.join(format!("runtime-config-redis-{}.toml", ep.name()));
    let text = sb
        .runtime_config(Some(&redis.url()))
        .expect("runtime config on Redis");
    std::fs::write(&rc, text).expect("write the runtime config");
    let replicas: Vec<SpinUp> = (0..2)
        .map(|i| {
            let spin_up = SpinUp::start(
                &SpinApp {
                    spin,
                    manifest: sb.manifest_path(),
                    runtime_config: &rc,
                    variables: sb.variables(),
                    key_values: &[],
                    log_dir: &dir.join(format!("logs-cold-{}-{i}", ep.name())),
                },
                Duration::from_secs(120),
            )
            .unwrap_or_else(|e| panic!("{e:#}"));
            first_answer(
                &format!("{}/api/livez", spin_up.base_url()),
                br#"{"status":"alive"}"#,
                spin_up.started(),
            );
            spin_up
        })
        .collect();
    sb.tenants().clear();
    let urls: Vec<String> = replicas
        .iter()
        .map(|r| format!("{}{}", r.base_url(), ep.path()))
        .collect();
    let c = client(BURST);
    let tally = burst(&c, &urls, BURST, &ep.expected());
    let warm = burst(&c, &urls, BURST, &ep.expected());
    // Log lines follow the bodies.
    std::thread::sleep(Duration::from_millis(300));
    let lines: Vec<serde_json::Value> = replicas
        .iter()
        .flat_map(|r| json_lines(&r.stderr()))
        .collect();
    if let Some(e) = tally.samples.first() {
        eprintln!(
            "  !! cold {}: {} errors, first: {e}",
            ep.name(),
            tally.errors
        );
    }
    let t = sb.tenants();
    Cold {
        ep,
        imds: t.imds.token_requests().len(),
        entra: t.entra.requests().len(),
        tokens: if ep.is_cross() { 2 } else { 1 },
        fetch_ms: fetch_ms(&lines),
        tally,
        warm,
    }
}
