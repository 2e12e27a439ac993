//! The local sandbox (`testkit/src/bin/sandbox.rs`) and README's first command
//! (`scripts/run-local`), driven as a user drives them: start, wait until ready, call the
//! component's four endpoints, break things through the control endpoint, stop with SIGTERM or
//! Ctrl-C, and check that no process and no listening port is left behind. One test serves the
//! component with exactly what `spin up` would get from the sandbox (runtime config, env file,
//! /etc/hosts lines); another puts a stand-in `spin` on PATH to check how run-local calls it.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{base64, root, rt, wasm, SEED_A, SEED_B};
use serde_json::Value;
use tenant_bridge_testkit::host::{HostConfig, RunningHost};
use tenant_bridge_testkit::sandbox::runtime_config_json;

const KEY: &str = "sandbox-test-key";
const SECRET_SAME: &str = "/api/GetSecretSameTenant?key=TEST-SECRET-001";
const SECRET_CROSS: &str = "/api/GetSecretCrossTenant?key=TEST-SECRET-001";
const BLOB_SAME: &str = "/api/DownloadBlobSameTenant?container=seed&blob=greeting.txt";
const BLOB_CROSS: &str = "/api/DownloadBlobCrossTenant?container=seed&blob=greeting.txt";

/// Removes what cargo sets for this test process, so that a nested cargo behaves as in a shell:
/// ring's build script tracks CARGO_MANIFEST_DIR, so passing it on would rebuild ring, rustls,
/// reqwest and the testkit here and again in the next `cargo test`.
fn without_test_env(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_EXE_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "OUT_DIR",
            ]
            .contains(&name.as_ref())
        {
            cmd.env_remove(name.as_ref());
        }
    }
}

/// Builds the sandbox binary (another package's binary: `CARGO_BIN_EXE_*` does not reach it)
/// and returns its path as cargo reports it.
fn sandbox_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        without_test_env(&mut cmd);
        let out = cmd
            .current_dir(root())
            .args([
                "build",
                "-p",
                "tenant-bridge-testkit",
                "--bin",
                "sandbox",
                "--message-format=json",
            ])
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo build for the sandbox");
        assert!(out.status.success(), "building the sandbox failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "sandbox")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported the sandbox executable")
    })
    .clone()
}

/// A started sandbox (directly, or through scripts/run-local) and what its `sandbox.json` says.
struct Running {
    child: Option<Child>,
    /// Started in its own process group, stopped like Ctrl-C in a terminal (SIGINT to the group).
    ctrl_c: bool,
    dir: PathBuf,
    ready: Value,
    client: reqwest::Client,
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed assertion must not leave the sandbox running (Azurite dies with it).
        if let Some(mut c) = self.child.take() {
            if self.ctrl_c {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", c.id())])
                    .status();
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tenant-bridge-sandbox-test-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    dir
}

impl Running {
    /// The sandbox binary with `args` (and a state dir and key of the test's).
    fn start(name: &str, args: &[&str]) -> Running {
        let _ = wasm();
        let dir = test_dir(name);
        let mut cmd = Command::new(sandbox_bin());
        cmd.args([
            "--state-dir",
            dir.join("state").to_str().unwrap(),
            "--key",
            KEY,
        ])
        .args(args);
        Running::spawn(cmd, dir, false)
    }

    /// README's first command, `scripts/run-local`, with `args`, in a process group of its own
    /// as a terminal would start it; `spin`: a directory holding the `spin` it finds on PATH
    /// (told where to log by SPIN_STUB_LOG).
    fn run_local(name: &str, args: &[&str], spin: Option<&Path>) -> Running {
        let dir = test_dir(name);
        let mut cmd = Command::new(root().join("scripts/run-local"));
        without_test_env(&mut cmd);
        // PATH without any real spin CLI, and with the given stand-in first.
        let old = std::env::var_os("PATH").unwrap_or_default();
        let paths: Vec<PathBuf> = spin
            .map(Path::to_path_buf)
            .into_iter()
            .chain(std::env::split_paths(&old).filter(|d| !d.join("spin").exists()))
            .collect();
        cmd.env("PATH", std::env::join_paths(paths).unwrap());
        if let Some(dir) = spin {
            cmd.env("SPIN_STUB_LOG", dir.join("spin.log"));
        }
        cmd.current_dir(root())
            .args([
                "--state-dir",
                dir.join("state").to_str().unwrap(),
                "--key",
                KEY,
            ])
            .args(args)
            .process_group(0);
        Running::spawn(cmd, dir, true)
    }

    fn spawn(mut cmd: Command, dir: PathBuf, ctrl_c: bool) -> Running {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .expect("start the sandbox");
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let mut r = Running {
            child: Some(child),
            ctrl_c,
            dir,
            ready: Value::Null,
            client,
        };
        let deadline = Instant::now() + Duration::from_secs(600);
        let ready_file = r.dir.join("state/sandbox.json");
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready_file) {
                r.ready = serde_json::from_str(&text).expect("sandbox.json is JSON");
                break;
            }
            if let Ok(Some(status)) = r.child.as_mut().unwrap().try_wait() {
                panic!(
                    "the sandbox exited ({status}) before it was ready:\n{}",
                    r.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the sandbox was not ready after 600 s:\n{}",
                r.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        r
    }

    /// The sandbox's pid (run-local's own pid when it exec'd the sandbox).
    fn pid(&self) -> u32 {
        self.ready["pid"].as_u64().expect("pid") as u32
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout")).unwrap_or_default()
    }

    fn output(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout(),
            std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
        )
    }

    fn str(&self, pointer: &str) -> String {
        self.ready
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("sandbox.json has no {pointer}: {}", self.ready))
            .to_string()
    }

    fn call(&self, method: &str, url: &str, key: Option<&str>) -> (u16, String) {
        rt().block_on(async {
            let mut req = self
                .client
                .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
            if let Some(k) = key {
                req = req.header("x-functions-key", k);
            }
            let resp = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        })
    }

    /// GET through the component with the sandbox's key.
    fn get(&self, path: &str) -> (u16, String) {
        self.call(
            "GET",
            &format!("{}{path}", self.str("/component")),
            Some(KEY),
        )
    }

    fn control(&self, method: &str, path: &str) -> (u16, Value) {
        let (status, body) = self.call(method, &format!("{}{path}", self.str("/control")), None);
        let v = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("control {path} answered non-JSON ({e}): {body}"));
        (status, v)
    }

    /// Stops it as a user does: SIGTERM to the sandbox (`kill`, a service manager), or Ctrl-C in
    /// the terminal of run-local (SIGINT to its process group). Then nothing may be left: no
    /// process of the sandbox (Azurite's node process included), no listening port, no ready file.
    fn stop_and_check_nothing_left(mut self) {
        let pid = self.pid();
        let child_pid = self.child.as_ref().expect("running").id();
        let azurite = self.ready["azurite_pid"].as_u64().expect("azurite_pid") as u32;
        let ports: Vec<u16> = self.ready["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .map(|p| p.as_u64().unwrap() as u16)
            .collect();
        assert!(
            process_alive(azurite),
            "Azurite (pid {azurite}) runs while the sandbox does"
        );
        let listening = listening_ports();
        for p in &ports {
            assert!(listening.contains(p), "port {p} listens while running");
        }

        let t0 = Instant::now();
        let (signal, target, how) = match self.ctrl_c {
            true => ("-INT", format!("-{child_pid}"), "Ctrl-C"),
            false => ("-TERM", pid.to_string(), "SIGTERM"),
        };
        let status = Command::new("kill")
            .args([signal, "--", &target])
            .status()
            .expect("run kill");
        assert!(status.success());
        let mut child = self.child.take().unwrap();
        let exit = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("{how} did not stop it within 30 s:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // run-local's shell exits 130 after Ctrl-C when it ran `spin up` (its INT trap).
        assert!(
            exit.success() || (self.ctrl_c && exit.code() == Some(130)),
            "exit after {how}: {exit}\n{}",
            self.output()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while process_alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            !process_alive(pid),
            "the sandbox (pid {pid}) outlived {how}"
        );
        assert!(
            self.output().contains("sandbox: stopped"),
            "says it stopped:\n{}",
            self.output()
        );

        assert!(
            !process_alive(azurite),
            "Azurite (pid {azurite}) outlived the sandbox"
        );
        let leftovers: Vec<String> = processes()
            .into_iter()
            .filter(|p| {
                p.ppid == pid
                    || p.pgrp == azurite
                    || (self.ctrl_c && p.pgrp == child_pid)
                    || p.cmdline.contains(&format!("tenant-bridge-azurite-{pid}-"))
            })
            .map(|p| format!("{} {}", p.pid, p.cmdline))
            .collect();
        assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
        let listening = listening_ports();
        for p in &ports {
            assert!(!listening.contains(p), "port {p} still listening");
            std::net::TcpListener::bind(("127.0.0.1", *p))
                .unwrap_or_else(|e| panic!("port {p} cannot be bound again: {e}"));
        }
        assert!(
            !self.dir.join("state/sandbox.json").exists(),
            "sandbox.json says ready after the sandbox stopped"
        );
        eprintln!("sandbox stopped {:?} after {how}", t0.elapsed());
    }
}

struct Proc {
    pid: u32,
    ppid: u32,
    pgrp: u32,
    cmdline: String,
}

fn processes() -> Vec<Proc> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() < 3 || f[0] == "Z" {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        out.push(Proc {
            pid,
            ppid: f[1].parse().unwrap_or(0),
            pgrp: f[2].parse().unwrap_or(0),
            cmdline,
        });
    }
    out
}

fn process_alive(pid: u32) -> bool {
    processes().iter().any(|p| p.pid == pid)
}

/// Ports in LISTEN state (IPv4 and IPv6), from /proc/net.
fn listening_ports() -> HashSet<u16> {
    let mut ports = HashSet::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 3 && f[3] == "0A" {
                if let Some((_, port)) = f[1].rsplit_once(':') {
                    if let Ok(p) = u16::from_str_radix(port, 16) {
                        ports.insert(p);
                    }
                }
            }
        }
    }
    ports
}

fn problem_code(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("<no problem body: {body}>"))
}

#[test]
fn the_sandbox_serves_both_tenants_breaks_on_request_and_leaves_nothing_behind() {
    let t0 = Instant::now();
    let s = Running::start(
        "serve",
        &[
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
            "--quiet",
        ],
    );
    eprintln!("sandbox ready after {:?}", t0.elapsed());
    assert_eq!(s.ready["served_by"], "testkit-host");
    let base = s.str("/component");
    let out = s.stdout();
    for path in [SECRET_SAME, SECRET_CROSS, BLOB_SAME, BLOB_CROSS] {
        let line = format!("curl -H 'x-functions-key: {KEY}' '{base}{path}'");
        assert!(out.contains(&line), "prints `{line}`:\n{out}");
    }

    // The four endpoints, through the component, as the printed curl lines call them.
    assert_eq!(s.get(SECRET_SAME), (200, "TenantA".to_string()));
    assert_eq!(s.get(SECRET_CROSS), (200, "TenantB".to_string()));
    assert_eq!(s.get(BLOB_SAME), (200, base64(SEED_A)));
    assert_eq!(s.get(BLOB_CROSS), (200, base64(SEED_B)));
    assert_eq!(
        s.call("GET", &format!("{base}{SECRET_CROSS}"), Some("wrong"))
            .0,
        401
    );

    // One misconfiguration, in detail: tenant B never consented to the app. The cache is warm,
    // so this also checks that /break empties it.
    let (status, broken) = s.control("POST", "/break/app-not-provisioned");
    assert_eq!(status, 200, "{broken}");
    assert_eq!(broken["expect"]["code"], "entra-app-not-in-tenant");
    assert!(
        broken["cache"].as_str().unwrap().starts_with("cleared"),
        "{broken}"
    );
    let (status, body) = s.get(SECRET_CROSS);
    assert_eq!(
        (status, problem_code(&body).as_str()),
        (502, "entra-app-not-in-tenant"),
        "{body}"
    );
    assert!(body.contains("/adminconsent?client_id="), "{body}");
    assert_eq!(
        s.get(SECRET_SAME),
        (200, "TenantA".to_string()),
        "same tenant unaffected"
    );
    assert_eq!(s.control("GET", "/").1["active"][0], "app-not-provisioned");
    let (status, fixed) = s.control("POST", "/fix");
    assert_eq!(
        (status, &fixed["fixed"][0]),
        (200, &"app-not-provisioned".into())
    );
    assert_eq!(s.get(SECRET_CROSS), (200, "TenantB".to_string()));

    // Every misconfiguration the control endpoint lists answers what it says it does.
    let (_, breaks) = s.control("GET", "/breaks");
    let breaks = breaks.as_array().expect("a list").clone();
    assert!(breaks.len() >= 4, "{breaks:?}");
    let names: Vec<&str> = breaks.iter().map(|b| b["name"].as_str().unwrap()).collect();
    for must in [
        "app-not-provisioned",
        "wrong-fic-subject",
        "missing-role",
        "endpoint-not-approved",
    ] {
        assert!(names.contains(&must), "{must} in {names:?}");
    }
    for b in &breaks {
        let name = b["name"].as_str().unwrap();
        let path = b["path"].as_str().unwrap();
        let want = (
            b["expect"]["status"].as_u64().unwrap() as u16,
            b["expect"]["code"].as_str().unwrap().to_string(),
        );
        assert_eq!(s.control("POST", &format!("/break/{name}")).0, 200);
        let (status, body) = s.get(path);
        assert_eq!((status, problem_code(&body)), want, "{name}: {body}");
        assert_eq!(s.control("POST", "/fix").0, 200);
        assert_eq!(s.get(path).0, 200, "{name} fixed");
    }
    assert_eq!(s.control("POST", "/break/no-such-thing").0, 404);
    assert_eq!(s.control("GET", "/fix").0, 405);

    s.stop_and_check_nothing_left();
    eprintln!("whole test {:?}", t0.elapsed());
}

/// The env file as `set -a; . .sandbox/env` would load it: name -> value.
fn read_env(path: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .expect("env file")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("not NAME=VALUE: {l}"));
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or_else(|| panic!("value not single-quoted: {l}"));
            assert!(!v.contains('\''), "{l}");
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn fakes_only_mode_gives_spin_up_everything_it_needs() {
    let listen = free_port();
    let s = Running::start(
        "spin",
        &[
            "--no-component",
            "--listen",
            &format!("127.0.0.1:{listen}"),
            "--control",
            "127.0.0.1:0",
        ],
    );
    assert_eq!(s.ready["served_by"], "spin");
    assert!(
        !listening_ports().contains(&listen),
        "the component port is left to `spin up`"
    );

    // env: every variable, pointing at this sandbox.
    let env = read_env(Path::new(&s.str("/files/env")));
    let var = |name: &str| {
        env.get(&format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()))
            .unwrap_or_else(|| panic!("{name} in env: {env:?}"))
            .clone()
    };
    assert_eq!(var("function_keys"), format!("sandbox:{KEY}"));
    assert_eq!(var("imds_endpoint"), s.str("/services/imds"));
    assert_eq!(var("keyvault_endpoint"), s.str("/services/vault_a"));
    assert_eq!(var("cross_keyvault_endpoint"), s.str("/services/vault_b"));
    assert_eq!(var("authority_host"), s.str("/services/entra"));
    assert_eq!(var("blob_service_endpoint"), s.str("/services/azurite"));
    assert_eq!(
        var("cross_blob_service_endpoint"),
        s.str("/services/azurite")
    );
    for name in [
        "azure_client_id",
        "app_client_id",
        "cross_tenant_id",
        "blob_service_path",
        "cross_blob_service_path",
    ] {
        assert!(!var(name).is_empty(), "{name}");
    }
    assert!(var("keyvault_endpoint").contains(".vault.azure.net:"));

    // runtime-config.toml: a token cache and one [[client_tls]] trusting the sandbox CA for
    // exactly the HTTPS endpoints in env.
    let rc_text = std::fs::read_to_string(s.str("/files/runtime_config")).unwrap();
    let rc = runtime_config_json(&rc_text).expect("runtime config parses");
    assert_eq!(rc["key_value_store"]["default"]["type"], "spin", "{rc}");
    let tls = rc["client_tls"].as_array().expect("[[client_tls]]");
    assert_eq!(tls.len(), 1, "{rc}");
    assert_eq!(
        tls[0]["component_ids"],
        serde_json::json!(["tenant-bridge"])
    );
    assert_eq!(tls[0]["ca_use_webpki_roots"], false);
    let tls_hosts: HashSet<String> = tls[0]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect();
    let https: HashSet<String> = env
        .values()
        .filter_map(|v| v.strip_prefix("https://"))
        .map(str::to_string)
        .collect();
    assert_eq!(tls_hosts, https, "client_tls hosts = the HTTPS endpoints");
    let ca_file = tls[0]["ca_roots_file"].as_str().unwrap();
    assert_eq!(ca_file, s.str("/files/ca"));
    let ca_pem = std::fs::read_to_string(ca_file).expect("ca_roots_file exists");
    assert!(
        ca_pem.starts_with("-----BEGIN CERTIFICATE-----"),
        "{ca_pem}"
    );

    // hosts: the lines /etc/hosts needs for the vault names.
    let hosts: HashMap<String, IpAddr> = std::fs::read_to_string(s.str("/files/hosts"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (ip, name) = l.split_once(' ').unwrap();
            (name.to_string(), ip.parse().unwrap())
        })
        .collect();
    let mut names: Vec<&String> = hosts.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "tenant-a-vault.vault.azure.net",
            "tenant-b-vault.vault.azure.net"
        ]
    );

    // Serve the component with exactly those inputs (the SPIN_VARIABLE_* environment, the CA of
    // ca_roots_file, the /etc/hosts lines), as `spin up` would.
    let serve = || {
        rt().block_on(RunningHost::start(HostConfig {
            wasm: wasm(),
            variables: env.clone(),
            ca_pem: Some(ca_pem.clone()),
            hosts: hosts.clone(),
            ..HostConfig::default()
        }))
        .expect("the component starts with the sandbox's env")
    };
    let host = serve();
    let get = |host: &RunningHost, path: &str| {
        s.call("GET", &format!("{}{path}", host.base_url()), Some(KEY))
    };
    assert_eq!(get(&host, SECRET_SAME), (200, "TenantA".to_string()));
    assert_eq!(get(&host, SECRET_CROSS), (200, "TenantB".to_string()));
    assert_eq!(get(&host, BLOB_SAME), (200, base64(SEED_A)));
    assert_eq!(get(&host, BLOB_CROSS), (200, base64(SEED_B)));

    // With `spin up` the cache is Spin's: the control endpoint says so, and a restarted
    // `spin up` (cold cache) shows the diagnostic.
    let (status, broken) = s.control("POST", "/break/missing-role");
    assert_eq!(status, 200);
    assert!(
        broken["cache"].as_str().unwrap().contains("spin up"),
        "{broken}"
    );
    let (status, body) = get(&host, SECRET_CROSS);
    assert_eq!(
        (status, problem_code(&body).as_str()),
        (502, "keyvault-forbidden-rbac"),
        "{body}"
    );
    s.control("POST", "/fix");
    s.control("POST", "/break/app-not-provisioned");
    assert_eq!(
        get(&host, SECRET_CROSS),
        (200, "TenantB".to_string()),
        "a warm cache hides an identity-level break"
    );
    drop(host);
    let restarted = serve();
    let (status, body) = get(&restarted, SECRET_CROSS);
    assert_eq!(
        (status, problem_code(&body).as_str()),
        (502, "entra-app-not-in-tenant"),
        "{body}"
    );
    drop(restarted);

    s.stop_and_check_nothing_left();
}

/// README's first command as written, on a machine without the spin CLI: it builds what it
/// needs, says it uses the testkit host, serves the component, and README's curl line prints
/// TenantB. Ctrl-C stops everything.
#[test]
fn run_local_without_spin_serves_the_component_itself() {
    let listen = free_port();
    let s = Running::run_local(
        "run-local",
        &[
            "--listen",
            &format!("127.0.0.1:{listen}"),
            "--control",
            "127.0.0.1:0",
            "--quiet",
        ],
        None,
    );
    assert_eq!(s.ready["served_by"], "testkit-host");
    assert!(s.stdout().contains("no spin CLI on PATH"), "{}", s.output());
    let (status, body) = s.call(
        "GET",
        &format!("http://localhost:{listen}/api/GetSecretCrossTenant?key=TEST-SECRET-001"),
        Some(KEY),
    );
    assert_eq!((status, body.as_str()), (200, "TenantB"));
    s.stop_and_check_nothing_left();
}

/// With a spin CLI on PATH, run-local runs the sandbox in the background and hands
/// `spin up` the sandbox's runtime config and variables. A stand-in `spin` records how it was
/// called; Ctrl-C stops it, the sandbox and Azurite.
#[test]
fn run_local_with_spin_hands_spin_up_the_sandbox() {
    let stub = test_dir("spin-stub");
    let log = stub.join("spin.log");
    let spin = stub.join("spin");
    std::fs::write(
        &spin,
        "#!/bin/sh\n\
         # stands in for the Spin CLI: records how it is called, then serves until interrupted\n\
         { printf '%s\\n' \"$*\"; env | grep '^SPIN_VARIABLE_' | sort; } > \"$SPIN_STUB_LOG.tmp\"\n\
         mv \"$SPIN_STUB_LOG.tmp\" \"$SPIN_STUB_LOG\"\n\
         exec sleep 600\n",
    )
    .unwrap();
    std::fs::set_permissions(&spin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let listen = free_port();
    let s = Running::run_local(
        "run-local-spin",
        &[
            "--listen",
            &format!("127.0.0.1:{listen}"),
            "--control",
            "127.0.0.1:0",
        ],
        Some(&stub),
    );
    assert_eq!(s.ready["served_by"], "spin");
    let deadline = Instant::now() + Duration::from_secs(60);
    let called = loop {
        if let Ok(text) = std::fs::read_to_string(&log) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "spin was not called:\n{}",
            s.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut lines = called.lines();
    let state = s.dir.join("state");
    assert_eq!(
        lines.next(),
        Some(
            format!(
                "up --listen 127.0.0.1:{listen} --runtime-config-file {}/runtime-config.toml",
                state.display()
            )
            .as_str()
        ),
        "{called}"
    );
    let given: HashMap<String, String> = lines
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let env = read_env(&state.join("env"));
    assert!(env.len() >= 12, "{env:?}");
    assert_eq!(
        given, env,
        "spin up gets every SPIN_VARIABLE_* of .sandbox/env, and no other"
    );
    s.stop_and_check_nothing_left();
    let _ = std::fs::remove_dir_all(&stub);
}
