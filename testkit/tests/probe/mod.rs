//! The probe guest (tests/fixtures/hostprobe, a small spin-sdk 5.2 component built here for
//! wasm32-wasip2 on first use) and the manifests and host configs the host tests serve it with.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tenant_bridge_testkit::host::{HostConfig, RunningHost};

pub const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

pub fn probe_wasm() -> PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        if let Ok(p) = std::env::var("HOSTPROBE_WASM") {
            return PathBuf::from(p);
        }
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostprobe");
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostprobe");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(fixture.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .status()
            .expect("running cargo to build the probe guest");
        assert!(status.success(), "building the probe guest failed");
        target.join("wasm32-wasip2/release/hostprobe.wasm")
    })
    .clone()
}

pub fn write_manifest(allowed: &[&str], kv: &[&str]) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "host-smoke-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let list = |xs: &[&str]| {
        xs.iter()
            .map(|x| format!("{x:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = format!(
        r#"spin_manifest_version = 2

[application]
name = "hostprobe"
version = "0.1.0"

[variables]
tenant = {{ default = "t1" }}
up_port = {{ default = "1" }}
tls_port = {{ default = "1" }}
extra = {{ default = "http://extra.test" }}
token = {{ required = true, secret = true }}

[[trigger.http]]
route = "/..."
component = "hostprobe"

[component.hostprobe]
source = "hostprobe.wasm"
allowed_outbound_hosts = [{allowed}]
key_value_stores = [{kv}]

[component.hostprobe.variables]
greeting = "hello {{{{ tenant }}}} / {{{{token}}}}"
target_url = "http://upstream.test:{{{{ up_port }}}}/from-variable"
"#,
        allowed = list(allowed),
        kv = list(kv),
    );
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn config(manifest: PathBuf, vars: &[(&str, String)]) -> HostConfig {
    let mut variables: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    variables
        .entry("token".into())
        .or_insert_with(|| "s3cret".into());
    HostConfig {
        wasm: probe_wasm(),
        manifest,
        variables,
        ca_pem: None,
        hosts: HashMap::from([
            ("upstream.test".to_string(), LOCAL),
            ("vault.test".to_string(), LOCAL),
        ]),
        echo_logs: false,
        ..HostConfig::default()
    }
}

pub async fn get(host: &RunningHost, path_and_query: &str) -> String {
    let resp = reqwest::get(format!("{}{}", host.base_url(), path_and_query))
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "{path_and_query}\nhost log:\n{}",
        host.logs()
    );
    resp.text().await.unwrap()
}
