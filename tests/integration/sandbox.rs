//! The local sandbox (`testkit/src/bin/sandbox.rs`) and README's first command
//! (`scripts/run-local`), driven as a user drives them: start, wait until ready, call the
//! component's four endpoints, break things through the control endpoint, stop with SIGTERM or
//! Ctrl-C, and check that no process and no listening port is left behind. One test serves the
//! component with exactly what `spin up` would get from the sandbox (runtime config, env file,
//! /etc/hosts lines); another puts a stand-in `spin` on PATH to check how run-local calls it and
//! that what it hands `spin up` passes Spin 3.6.3's rules; where a real Spin 3.x CLI is on PATH,
//! one more drives run-local with it for real (and otherwise says, uncaptured, that it could not).
//!
//! The sandbox binary these tests run is the one cargo builds with the test suite's own feature
//! set, so that wasmtime is not compiled a second time; run-local's `spin up` path builds the
//! fakes-only `sandbox-fakes` (no wasmtime), as it does for a user.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tenant_bridge_testkit::host::{HostConfig, RunningHost};
use tenant_bridge_testkit::sandbox::{runtime_config_json, DEFAULT_KEY};
use tenant_bridge_testkit::world::scan::Scanner;
use tenant_bridge_testkit::world::suite::{base64, complete_log, root, rt, wasm};
use tenant_bridge_testkit::world::{
    SECRET_VALUE_A, SECRET_VALUE_B, SECRET_VALUE_C, SEED_A, SEED_B, VAULT_A_HOST, VAULT_B_HOST,
    VAULT_C_HOST,
};

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
/// and returns its path as cargo reports it. It is built together with this test target, so
/// cargo unifies features as for this test (dev-dependencies included): the testkit and wasmtime
/// this binary was linked with are reused, and only the sandbox binary is linked. A plain
/// `cargo build -p tenant-bridge-testkit` resolves features for the testkit alone and compiles
/// wasmtime again (minutes).
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
                "tenant-bridge",
                "--test",
                "integration",
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
            // The testkit's binary, not a test target (the testkit's unit tests of bin/sandbox.rs
            // are also named `sandbox`).
            .filter(|m| {
                m["reason"] == "compiler-artifact"
                    && m["target"]["name"] == "sandbox"
                    && m["target"]["kind"] == serde_json::json!(["bin"])
            })
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported the sandbox executable")
    })
    .clone()
}

/// What `scripts/run-local` finds as `spin` on PATH.
enum SpinOnPath<'a> {
    /// None: run-local serves the component in the testkit host (given the sandbox binary the
    /// suite built, through RUN_LOCAL_SANDBOX).
    Absent,
    /// A stand-in in this directory, logging to `spin.log` there.
    Stub(&'a Path),
    /// The real Spin CLI already on PATH.
    Real,
}

/// A started sandbox (directly, or through scripts/run-local) and what its `sandbox.json` says.
struct Running {
    child: Option<Child>,
    /// Started in its own process group, stopped like Ctrl-C in a terminal (SIGINT to the group).
    ctrl_c: bool,
    dir: PathBuf,
    ready: Value,
    client: reqwest::Client,
    /// The component's port when something outside the sandbox (`spin up`) serves it: it must
    /// listen while running and be free after Ctrl-C.
    served_elsewhere: Option<u16>,
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

/// The log scanner for the sandbox's component (its output, or a host serving it here): the
/// sandbox's keys and secret values and any JWT. The sandbox's tokens are issued in its own
/// process, so `eyJ` (every JWT's start) is what is known of them here.
fn sandbox_scanner() -> Scanner {
    let mut scanner = Scanner::new();
    scanner.add_marker("a JWT", "eyJ");
    for key in [KEY, DEFAULT_KEY] {
        scanner.add("a function key", key);
    }
    for value in [SECRET_VALUE_A, SECRET_VALUE_B, SECRET_VALUE_C] {
        scanner.add("a secret value", value);
    }
    scanner
}

/// The component's lines in a sandbox's output: its JSON log lines and the host's `[host]` ones
/// (the rest is what the sandbox tells its user, the key to use among it).
fn component_lines(output: &str) -> String {
    output
        .lines()
        .filter(|l| l.starts_with('{') || l.starts_with("[host]"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A loopback port held for as long as the value lives: bound and never listened on, so no
/// other program can be given it meanwhile and it is never in LISTEN state. For a port that is
/// only written down (handed on to `spin up`, or left to it): a port bound, dropped and named
/// could be someone else's by then. A program that listens itself is given port 0 instead and
/// asked which port it got (the sandbox's `sandbox.json`, Spin's `Serving http://…` line).
struct ReservedPort {
    _socket: tokio::net::TcpSocket,
    port: u16,
}

impl ReservedPort {
    fn new() -> ReservedPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind a loopback port");
        let port = socket.local_addr().expect("the bound port").port();
        ReservedPort {
            _socket: socket,
            port,
        }
    }
}

/// The port of the component's base URL in `sandbox.json` (`http://127.0.0.1:PORT`).
fn component_port(s: &Running) -> u16 {
    let url = s.str("/component");
    url.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in the component URL {url}"))
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
    /// as a terminal would start it, with `spin` as the `spin` it finds on PATH.
    fn run_local(name: &str, args: &[&str], spin: SpinOnPath) -> Running {
        let dir = test_dir(name);
        let mut cmd = Command::new(root().join("scripts/run-local"));
        without_test_env(&mut cmd);
        cmd.env_remove("RUN_LOCAL_SANDBOX");
        let old = std::env::var_os("PATH").unwrap_or_default();
        let without_spin = || std::env::split_paths(&old).filter(|d| !d.join("spin").exists());
        let paths: Vec<PathBuf> = match spin {
            SpinOnPath::Absent => {
                // The sandbox binary cargo built for this suite, not a second wasmtime build.
                cmd.env("RUN_LOCAL_SANDBOX", sandbox_bin());
                without_spin().collect()
            }
            SpinOnPath::Stub(stub) => {
                cmd.env("SPIN_STUB_LOG", stub.join("spin.log"));
                std::iter::once(stub.to_path_buf())
                    .chain(without_spin())
                    .collect()
            }
            SpinOnPath::Real => std::env::split_paths(&old).collect(),
        };
        cmd.env("PATH", std::env::join_paths(paths).unwrap());
        // README's command as a user runs it: the sandbox's default function key.
        cmd.current_dir(root())
            .args(["--state-dir", dir.join("state").to_str().unwrap()])
            .args(args)
            .process_group(0);
        // A terminal starts it with Ctrl-C's signals at their defaults; a test run started in
        // the background of a non-interactive shell inherits them ignored, and a shell that
        // starts with SIGINT ignored can neither trap it nor pass it on to `spin`.
        // SAFETY: signal() is async-signal-safe, as pre_exec requires.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::signal(libc::SIGQUIT, libc::SIG_DFL);
                Ok(())
            });
        }
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
            served_elsewhere: None,
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
        let ports: Vec<u16> = ports.into_iter().chain(self.served_elsewhere).collect();
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
        // Everything it wrote is there now.
        let log = component_lines(&self.output());
        sandbox_scanner().assert_clean("sandbox output", &log);
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
            self.output()
                .contains(": stopped (Azurite and every port released)"),
            "says it stopped:\n{}",
            self.output()
        );

        assert!(
            !process_alive(azurite),
            "Azurite (pid {azurite}) outlived the sandbox"
        );
        let ours = |p: &Proc| {
            p.pid == pid
                || p.ppid == pid
                || p.pgrp == azurite
                || (self.ctrl_c && p.pgrp == child_pid)
                || p.cmdline.contains(&format!("tenant-bridge-azurite-{pid}-"))
        };
        let leftovers: Vec<String> = processes()
            .into_iter()
            .filter(ours)
            .map(|p| format!("{} {}", p.pid, p.cmdline))
            .collect();
        assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
        let listening = listening_ports();
        for p in &ports {
            if listening.contains(p) {
                // Other programs on a shared machine may be given a port the sandbox released;
                // only a listener that is none of ours is let pass.
                let holders = port_holders(*p);
                assert!(
                    !holders.is_empty() && !holders.iter().any(ours),
                    "port {p} still listening: {:?}",
                    holders.iter().map(|h| &h.cmdline).collect::<Vec<_>>()
                );
                eprintln!(
                    "port {p} was released and is now another program's: {:?}",
                    holders.iter().map(|h| &h.cmdline).collect::<Vec<_>>()
                );
                continue;
            }
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

/// The processes holding a listening socket on `port` (socket inodes of /proc/net/tcp{,6},
/// matched against every process's open files).
fn port_holders(port: u16) -> Vec<Proc> {
    let mut inodes = HashSet::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local = f.get(1).and_then(|a| a.rsplit_once(':'));
            if f.len() > 9
                && f[3] == "0A"
                && local.and_then(|(_, p)| u16::from_str_radix(p, 16).ok()) == Some(port)
            {
                inodes.insert(format!("socket:[{}]", f[9]));
            }
        }
    }
    processes()
        .into_iter()
        .filter(|p| {
            std::fs::read_dir(format!("/proc/{}/fd", p.pid))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .any(|target| inodes.contains(target.to_string_lossy().as_ref()))
        })
        .collect()
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
    // The hub's second target tenant (README).
    assert_eq!(
        s.get(&format!("{SECRET_CROSS}&tenant=c")),
        (200, "TenantC".to_string())
    );
    assert_eq!(
        s.get(&format!("{BLOB_CROSS}&tenant=c")),
        (200, base64(tenant_bridge_testkit::world::SEED_C))
    );
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
    // A break in one target tenant leaves the other serving: the hub's tenants are independent.
    for name in ["app-not-provisioned-c", "missing-role-c"] {
        assert_eq!(s.control("POST", &format!("/break/{name}")).0, 200);
        let (status, body) = s.get(&format!("{SECRET_CROSS}&tenant=c"));
        assert_eq!(status, 502, "{name}: {body}");
        assert!(
            body.contains(tenant_bridge_testkit::world::TENANT_C)
                || body.contains(tenant_bridge_testkit::world::VAULT_C_HOST),
            "{name} names tenant C: {body}"
        );
        assert_eq!(
            s.get(&format!("{SECRET_CROSS}&tenant=b")),
            (200, "TenantB".to_string()),
            "{name}: tenant B keeps working"
        );
        assert_eq!(s.control("POST", "/fix").0, 200);
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
    // Left to `spin up`: the sandbox only writes it down, and must not listen on it.
    let reserved = ReservedPort::new();
    let listen = reserved.port;
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

    // env: every variable, pointing at this sandbox; each one spin.toml declares.
    let env_text = std::fs::read_to_string(s.str("/files/env")).unwrap();
    tenant_bridge_testkit::spin_rules::check_env_file(&env_text, &root().join("spin.toml"))
        .unwrap_or_else(|e| panic!("the sandbox's env file: {e}"));
    let env = read_env(Path::new(&s.str("/files/env")));
    assert_eq!(env.len(), 2, "function_keys and settings: {env:?}");
    let settings: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&env["SPIN_VARIABLE_SETTINGS"]).expect("settings is a JSON object");
    let var = |name: &str| {
        if name == "function_keys" {
            return env["SPIN_VARIABLE_FUNCTION_KEYS"].clone();
        }
        settings
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("{name} in settings: {settings:?}"))
            .to_string()
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
    // The manifest spin up runs: the shipped one plus each endpoint's origin, tagged.
    let manifest =
        std::fs::read_to_string(Path::new(&s.str("/files/env")).with_file_name("spin.toml"))
            .expect("the sandbox's spin.toml");
    for name in [
        "imds_endpoint",
        "keyvault_endpoint",
        "authority_host",
        "blob_service_endpoint",
    ] {
        assert!(
            manifest.contains(&format!("\"{}\", # {name}", var(name))),
            "{name} in the sandbox's manifest:\n{manifest}"
        );
    }
    tenant_bridge_testkit::spin_rules::check_manifest(&manifest)
        .unwrap_or_else(|e| panic!("the sandbox's manifest: {e}"));

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
    // Hosts only (Spin 3.6.3 refuses `host:port`), each once.
    let https: HashSet<String> = settings
        .values()
        .filter_map(|v| v.as_str()?.strip_prefix("https://"))
        .map(|a| a.rsplit_once(':').map_or(a, |(h, _)| h).to_string())
        .collect();
    assert_eq!(
        tls_hosts, https,
        "client_tls hosts = the HTTPS endpoints' hosts"
    );
    assert_eq!(
        tls[0]["hosts"].as_array().unwrap().len(),
        tls_hosts.len(),
        "no host listed twice: {rc}"
    );
    tenant_bridge_testkit::spin_rules::check_runtime_config(&rc_text)
        .unwrap_or_else(|e| panic!("Spin 3.6.3 would refuse the sandbox's runtime config: {e}"));
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
            "tenant-b-vault.vault.azure.net",
            "tenant-c-vault.vault.azure.net"
        ]
    );

    // Serve the component with exactly those inputs (the SPIN_VARIABLE_* environment, the CA of
    // ca_roots_file, the /etc/hosts lines), as `spin up` would.
    let serve = || {
        rt().block_on(RunningHost::start(HostConfig {
            wasm: wasm(),
            manifest: Path::new(&s.str("/files/env")).with_file_name("spin.toml"),
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
    let scanner = sandbox_scanner();
    scanner.assert_clean("host", &complete_log("host", &host.log_view()));
    drop(host);
    let restarted = serve();
    let (status, body) = get(&restarted, SECRET_CROSS);
    assert_eq!(
        (status, problem_code(&body).as_str()),
        (502, "entra-app-not-in-tenant"),
        "{body}"
    );
    scanner.assert_clean(
        "restarted host",
        &complete_log("restarted host", &restarted.log_view()),
    );
    drop(restarted);

    s.stop_and_check_nothing_left();
}

/// README's first command as written, on a machine without the spin CLI: it says it uses the
/// testkit host, serves the component, and README's curl line prints TenantB. Ctrl-C stops
/// everything. (run-local is given the sandbox binary this suite built, RUN_LOCAL_SANDBOX, in
/// place of its own `cargo build -p tenant-bridge-testkit --bin sandbox`.)
#[test]
fn run_local_without_spin_serves_the_component_in_the_testkit_host() {
    // The sandbox listens itself: on a port it picks, which sandbox.json names.
    let s = Running::run_local(
        "run-local",
        &[
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
            "--quiet",
        ],
        SpinOnPath::Absent,
    );
    assert_eq!(s.ready["served_by"], "testkit-host");
    let listen = component_port(&s);
    assert_ne!(listen, 0, "sandbox.json names the port it listens on");
    assert!(s.stdout().contains("no spin CLI on PATH"), "{}", s.output());
    let (status, body) = s.call(
        "GET",
        &format!("http://localhost:{listen}/api/GetSecretCrossTenant?key=TEST-SECRET-001"),
        Some(DEFAULT_KEY),
    );
    assert_eq!(
        (status, body.as_str()),
        (200, "TenantB"),
        "README's curl with the default key"
    );
    s.stop_and_check_nothing_left();
}

/// The command line of a running process.
fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// With a spin CLI on PATH, run-local runs the fakes-only sandbox (`sandbox-fakes`, built
/// without the wasmtime host) in the background and hands `spin up` the sandbox's runtime config
/// and variables. A stand-in `spin` records how it was called and from where; what it received
/// (runtime config, variables, the manifest in its working directory) passes Spin 3.6.3's rules.
/// Ctrl-C stops it, the sandbox and Azurite. Real Spin: the next test.
#[test]
fn run_local_with_a_stub_spin_hands_spin_up_the_sandbox_through_the_fakes_only_build() {
    let stub = test_dir("spin-stub");
    let log = stub.join("spin.log");
    let spin = stub.join("spin");
    std::fs::write(
        &spin,
        "#!/bin/sh\n\
         # stands in for the Spin CLI: records how it is called, then serves until interrupted\n\
         { printf '%s\\n' \"$*\" \"$PWD\"; env | grep '^SPIN_VARIABLE_' | sort; } > \"$SPIN_STUB_LOG.tmp\"\n\
         mv \"$SPIN_STUB_LOG.tmp\" \"$SPIN_STUB_LOG\"\n\
         exec sleep 600\n",
    )
    .unwrap();
    std::fs::set_permissions(&spin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // The stub `spin` only logs its arguments: the port is held here meanwhile.
    let reserved = ReservedPort::new();
    let listen = reserved.port;
    let s = Running::run_local(
        "run-local-spin",
        &[
            "--listen",
            &format!("127.0.0.1:{listen}"),
            "--control",
            "127.0.0.1:0",
        ],
        SpinOnPath::Stub(&stub),
    );
    assert_eq!(s.ready["served_by"], "spin");
    let running = cmdline(s.pid());
    assert!(
        running.contains("sandbox-fakes"),
        "the spin path runs the fakes-only build, not the host: {running}"
    );
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
                "up -f {}/spin.toml --listen 127.0.0.1:{listen} --runtime-config-file {}/runtime-config.toml",
                state.display(),
                state.display()
            )
            .as_str()
        ),
        "{called}"
    );
    let cwd = PathBuf::from(lines.next().expect("the stub's working directory"));
    assert_eq!(
        cwd.canonicalize().unwrap(),
        root().canonicalize().unwrap(),
        "spin up runs beside spin.toml"
    );
    let given: HashMap<String, String> = lines
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let env = read_env(&state.join("env"));
    assert_eq!(env.len(), 2, "function_keys and settings: {env:?}");
    assert_eq!(
        given, env,
        "spin up gets every SPIN_VARIABLE_* of .sandbox/env, and no other"
    );
    // What `spin up` receives passes Spin 3.6.3's rules: the runtime config it is pointed at,
    // every variable it is given is one spin.toml declares, and the manifest it is given (the
    // sandbox's copy of spin.toml) loads with exactly those variables.
    let rc = std::fs::read_to_string(state.join("runtime-config.toml")).unwrap();
    tenant_bridge_testkit::spin_rules::check_runtime_config(&rc)
        .unwrap_or_else(|e| panic!("spin up would refuse the runtime config: {e}\n{rc}"));
    let given_env: String = given.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    tenant_bridge_testkit::spin_rules::check_env_file(&given_env, &state.join("spin.toml"))
        .unwrap_or_else(|e| panic!("spin up's variables: {e}"));
    let manifest = std::fs::read_to_string(state.join("spin.toml")).unwrap();
    tenant_bridge_testkit::spin_rules::manifest_check(&manifest, &given)
        .unwrap_or_else(|e| panic!("spin up would refuse spin.toml with these variables: {e:#}"));
    s.stop_and_check_nothing_left();
    let _ = std::fs::remove_dir_all(&stub);
}

/// The build run-local makes for `spin up` (`--no-default-features`) has no wasmtime, cranelift
/// or wasmtime-wasi(-http) in it, while the default build (the host) does: a new user's first
/// run with Spin does not compile them.
#[test]
fn the_fakes_only_build_for_spin_up_contains_no_wasmtime() {
    let tree = |extra: &[&str]| -> Vec<String> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        without_test_env(&mut cmd);
        let out = cmd
            .current_dir(root())
            .args(["tree", "-e", "normal", "-p", "tenant-bridge-testkit"])
            .args(["--prefix", "none", "--format", "{p}"])
            .args(extra)
            .output()
            .expect("run cargo tree");
        assert!(
            out.status.success(),
            "cargo tree: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect()
    };
    let host_only = |name: &str| {
        name.starts_with("wasmtime") || name.starts_with("cranelift") || name.starts_with("wasi")
    };
    let fakes: Vec<String> = tree(&["--no-default-features"]);
    assert!(
        fakes.iter().any(|n| n == "tokio") && fakes.iter().any(|n| n == "rustls"),
        "the fakes-only tree is the fakes' tree: {fakes:?}"
    );
    let leaked: Vec<&String> = fakes.iter().filter(|n| host_only(n)).collect();
    assert!(leaked.is_empty(), "in the fakes-only build: {leaked:?}");
    let full = tree(&[]);
    for must in [
        "wasmtime",
        "wasmtime-wasi",
        "wasmtime-wasi-http",
        "cranelift-codegen",
    ] {
        assert!(full.iter().any(|n| n == must), "{must} in the host build");
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// The `spin` on PATH and its `--version` line, if it is Spin 3.x (the reference is 3.6.3);
/// otherwise why real Spin cannot be driven here.
fn real_spin() -> Result<String, String> {
    let spin = which("spin").ok_or("no `spin` CLI on PATH")?;
    let out = Command::new(&spin)
        .arg("--version")
        .output()
        .map_err(|e| format!("{} --version: {e}", spin.display()))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // "spin 3.6.3 (abcdef0 2025-…)"
    match version.split_whitespace().nth(1) {
        Some(v) if out.status.success() && v.starts_with("3.") => Ok(version),
        _ => Err(format!(
            "{} --version says {version:?}, not Spin 3.x",
            spin.display()
        )),
    }
}

/// Says, past libtest's output capture (so it shows even when the test passes), that the
/// real-Spin check did not run; fails instead where TENANT_BRIDGE_REQUIRE_SPIN=1.
fn real_spin_not_run(why: &str) {
    assert!(
        std::env::var("TENANT_BRIDGE_REQUIRE_SPIN").as_deref() != Ok("1"),
        "TENANT_BRIDGE_REQUIRE_SPIN=1 but run-local cannot be driven with real Spin: {why}"
    );
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "\nnotice: tests/integration/sandbox.rs did NOT drive scripts/run-local with real Spin: {why}. \
         Only the stand-in `spin` test checked the spin up path."
    );
}

/// Where a Spin 3.x CLI is on PATH: README's first command with it, for real. run-local builds
/// the fakes-only sandbox and runs `spin up`; the four endpoints (and tenant C) answer through
/// Spin, a break shows Azure's diagnostic through Spin and is undone, and Ctrl-C leaves no
/// process (Spin's included) and no port. Without Spin 3.x (or without the /etc/hosts lines
/// `spin up` needs for the vault names) it prints that it could not, uncaptured.
#[test]
fn run_local_through_real_spin_up_when_spin_3_is_on_path() {
    let version = match real_spin() {
        Ok(v) => v,
        Err(why) => return real_spin_not_run(&why),
    };
    let unmapped = tenant_bridge_testkit::sandbox::unmapped_in_etc_hosts(
        [VAULT_A_HOST, VAULT_B_HOST, VAULT_C_HOST].map(String::from),
    );
    if !unmapped.is_empty() {
        return real_spin_not_run(&format!(
            "{version} is on PATH, but /etc/hosts does not map {unmapped:?} to 127.0.0.1 \
             (docs/sandbox.md, Host names: sudo sh -c 'cat .sandbox/hosts >> /etc/hosts')"
        ));
    }
    eprintln!("driving scripts/run-local with {version}");
    // `spin up` listens on a port it picks (`--listen 127.0.0.1:0`) and names it in its
    // `Serving http://127.0.0.1:PORT` line (Spin 3.6.3 binds first, then prints the bound
    // address).
    let mut s = Running::run_local(
        "run-local-real-spin",
        &["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"],
        SpinOnPath::Real,
    );
    assert_eq!(s.ready["served_by"], "spin");
    assert!(cmdline(s.pid()).contains("sandbox-fakes"), "{}", s.output());

    // Spin starts after the sandbox is ready: wait until it says where it serves.
    let deadline = Instant::now() + Duration::from_secs(120);
    let listen = loop {
        if let Some(port) = tenant_bridge_testkit::launchers::spin::serving_port(&s.stdout()) {
            break port;
        }
        if let Ok(Some(status)) = s.child.as_mut().unwrap().try_wait() {
            panic!(
                "run-local exited ({status}) before spin up served:\n{}",
                s.output()
            );
        }
        assert!(
            Instant::now() < deadline,
            "spin up did not serve within 120 s:\n{}",
            s.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        listening_ports().contains(&listen),
        "spin up said it serves on {listen}, which nothing listens on:\n{}",
        s.output()
    );
    let base = format!("http://127.0.0.1:{listen}");
    let get = |s: &Running, path: &str| s.call("GET", &format!("{base}{path}"), Some(DEFAULT_KEY));
    s.served_elsewhere = Some(listen);

    assert_eq!(
        get(&s, SECRET_SAME),
        (200, "TenantA".to_string()),
        "{}",
        s.output()
    );
    assert_eq!(get(&s, SECRET_CROSS), (200, "TenantB".to_string()));
    assert_eq!(get(&s, BLOB_SAME), (200, base64(SEED_A)));
    assert_eq!(get(&s, BLOB_CROSS), (200, base64(SEED_B)));
    assert_eq!(
        get(&s, &format!("{SECRET_CROSS}&tenant=c")),
        (200, "TenantC".to_string())
    );

    // One break: the vault checks every request, so Spin's warm token cache does not hide it.
    let (status, broken) = s.control("POST", "/break/missing-role");
    assert_eq!(status, 200, "{broken}");
    assert!(
        broken["cache"].as_str().unwrap().contains("spin up"),
        "{broken}"
    );
    let (status, body) = get(&s, SECRET_CROSS);
    assert_eq!(
        (status, problem_code(&body).as_str()),
        (502, "keyvault-forbidden-rbac"),
        "{body}"
    );
    assert_eq!(s.control("POST", "/fix").0, 200);
    assert_eq!(get(&s, SECRET_CROSS), (200, "TenantB".to_string()));

    s.stop_and_check_nothing_left();
}
