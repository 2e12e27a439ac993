//! The local sandbox (`cargo run -p tenant-bridge-testkit --bin sandbox`, or `--bin
//! sandbox-fakes` for `spin up`; both started by `scripts/run-local`, see [`cli`]): the world of
//! [`crate::world`] served on loopback for a person instead of a test, plus what a person needs
//! around it.
//!
//! - the strict fakes of IMDS, Entra and both tenants' Key Vaults, and Azurite with an account
//!   per tenant, all seeded ([`crate::world`]);
//! - a state directory with the sandbox CA, a Spin `runtime-config.toml` (token cache +
//!   `[[client_tls]]` trusting the CA for exactly the sandbox's hosts), an `env` file of
//!   `SPIN_VARIABLE_*` lines, the `/etc/hosts` lines `spin up` needs, and `sandbox.json`, written
//!   last, that says the sandbox is ready and where everything listens;
//! - optionally the component itself, in the testkit's Spin-like wasmtime host, on a fixed port
//!   (only with the testkit's `host` feature: the `sandbox` binary; `sandbox-fakes`, built
//!   without it for `spin up`, serves the fakes alone and compiles no wasmtime);
//! - a loopback control endpoint that switches the fakes into the misconfigurations the
//!   component diagnoses ([`BREAKS`]) and back.
//!
//! Everything stops when the [`Sandbox`] is dropped (Azurite's node process included).

mod breaks;
pub mod cli;
mod served;

pub use breaks::{find_break, Breakage, BREAKS};

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::launchers::azurite::Azurite;
use crate::trust::jwt::Signer;
use crate::trust::pki::TestPki;
use crate::world::{self, Tenants};
use served::{Served, TokenCache};

/// The component id in spin.toml (`[[client_tls]] component_ids`).
pub const COMPONENT_ID: &str = "tenant-bridge";
/// The function key the sandbox accepts unless told otherwise.
pub const DEFAULT_KEY: &str = "sandbox-local-key";
/// Name of the function key in `function_keys` (it appears in the component's log lines).
pub const KEY_NAME: &str = "sandbox";
/// Where the component and the control endpoint listen by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
pub const DEFAULT_CONTROL: &str = "127.0.0.1:3001";
/// The Entra fake answers on 127.0.0.1 (its certificate names it): no /etc/hosts line needed,
/// and login.microsoftonline.com keeps working for everything else on the machine.
pub const ENTRA_HOST: &str = "127.0.0.1";
/// Files in the state directory.
pub const READY_FILE: &str = "sandbox.json";
pub const ENV_FILE: &str = "env";
/// spin.toml with the fakes' origins in `allowed_outbound_hosts` (what `spin up -f` runs).
pub const MANIFEST_FILE: &str = "spin.toml";
pub const RUNTIME_CONFIG_FILE: &str = "runtime-config.toml";
pub const HOSTS_FILE: &str = "hosts";
/// The token cache's key-value store label (spin.toml's `key_value_stores`).
pub const KV_STORE: &str = "default";

pub const SECRET_SAME: &str = "/api/GetSecretSameTenant?key=TEST-SECRET-001";
pub const SECRET_CROSS: &str = "/api/GetSecretCrossTenant?key=TEST-SECRET-001";
/// Tenant C, the second target tenant (profile `c`).
pub const SECRET_CROSS_C: &str = "/api/GetSecretCrossTenant?key=TEST-SECRET-001&tenant=c";
pub const BLOB_SAME: &str = "/api/DownloadBlobSameTenant?container=seed&blob=greeting.txt";
pub const BLOB_CROSS: &str = "/api/DownloadBlobCrossTenant?container=seed&blob=greeting.txt";

/// How to start the sandbox.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where the CA, runtime config, env file and `sandbox.json` go.
    pub state_dir: PathBuf,
    /// Where the component answers (the testkit host here, or `spin up`): loopback only.
    pub listen: SocketAddr,
    /// Serve the component in the testkit's wasmtime host (false: `spin up` serves it). Only a
    /// build with the `host` feature can ([`can_serve_component`]).
    pub serve_component: bool,
    /// The control endpoint (loopback only).
    pub control: SocketAddr,
    /// The function key callers send (`x-functions-key`).
    pub function_key: String,
    pub wasm: PathBuf,
    pub manifest: PathBuf,
    /// Misconfigurations switched on from the start.
    pub breaks: Vec<&'static Breakage>,
    /// Copy the component's log lines to stderr.
    pub echo_logs: bool,
    /// The components the runtime config's `[[client_tls]]` trusts the sandbox CA for
    /// ([`COMPONENT_ID`]; the benchmark adds its ceiling components, served by the same Spin).
    pub client_tls_components: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        let root = repo_root();
        Options {
            state_dir: root.join(".sandbox"),
            listen: DEFAULT_LISTEN.parse().expect("default listen address"),
            serve_component: can_serve_component(),
            control: DEFAULT_CONTROL.parse().expect("default control address"),
            function_key: DEFAULT_KEY.into(),
            wasm: root.join("target/wasm32-wasip2/release/tenant_bridge.wasm"),
            manifest: root.join("spin.toml"),
            breaks: Vec::new(),
            echo_logs: true,
            client_tls_components: vec![COMPONENT_ID.to_string()],
        }
    }
}

/// Whether this build serves the component itself (the testkit's `host` feature).
pub fn can_serve_component() -> bool {
    served::AVAILABLE
}

/// The repository root (the testkit's parent directory).
pub fn repo_root() -> PathBuf {
    crate::launchers::azurite::testkit_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A function key the sandbox accepts: URL-safe characters only, so `code=` works unescaped
/// and the env file needs no escaping.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 128
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// State shared by the control endpoint.
struct Control {
    tenants: Tenants,
    /// The testkit host's token cache (None: `spin up` holds the cache).
    cache: Option<TokenCache>,
    active: Mutex<Vec<&'static str>>,
    base_url: String,
    key: String,
}

impl Control {
    fn apply(&self, b: &'static Breakage) {
        (b.apply)(&self.tenants);
        let mut active = self.active.lock().unwrap();
        if !active.contains(&b.name) {
            active.push(b.name);
        }
    }

    fn fix(&self) -> Vec<&'static str> {
        self.tenants.reset();
        std::mem::take(&mut *self.active.lock().unwrap())
    }

    /// Empties the token cache so the next request meets the change; what it did, in words.
    fn clear_cache(&self) -> String {
        match &self.cache {
            Some(cache) => format!("cleared ({} cached entries dropped)", cache.clear()),
            None => "held by `spin up`: restart it to drop cached tokens (the sandbox's runtime config keeps them in memory)".into(),
        }
    }

    fn curl(&self, path: &str) -> String {
        curl_line(&self.base_url, &self.key, path)
    }

    fn handle(&self, method: &hyper::Method, path: &str) -> (u16, Value) {
        let names: Vec<&str> = BREAKS.iter().map(|b| b.name).collect();
        let path = path.trim_end_matches('/');
        let get = method == hyper::Method::GET;
        let post = method == hyper::Method::POST;
        match path {
            "" | "/status" if get => (
                200,
                json!({
                    "active": *self.active.lock().unwrap(),
                    "breaks": names,
                    "component": self.base_url,
                    "usage": "POST /break/NAME switches a misconfiguration on, POST /fix undoes them all, POST /cache/clear empties the token cache, GET /breaks lists them",
                }),
            ),
            "/breaks" if get => (
                200,
                Value::Array(
                    BREAKS
                        .iter()
                        .map(|b| {
                            let mut v = b.to_json();
                            v["try"] = json!(self.curl(b.path));
                            v
                        })
                        .collect(),
                ),
            ),
            "/fix" if post => {
                let fixed = self.fix();
                let cache = self.clear_cache();
                eprintln!("[sandbox] fixed: {}", fixed.join(", "));
                (200, json!({"fixed": fixed, "active": [], "cache": cache}))
            }
            "/cache/clear" if post => (200, json!({"cache": self.clear_cache()})),
            _ if path.starts_with("/break/") && post => {
                let name = &path["/break/".len()..];
                match find_break(name) {
                    Some(b) => {
                        self.apply(b);
                        let cache = self.clear_cache();
                        eprintln!("[sandbox] broken: {} ({})", b.name, b.azure);
                        let mut v = b.to_json();
                        v["active"] = json!(*self.active.lock().unwrap());
                        v["cache"] = json!(cache);
                        v["try"] = json!(self.curl(b.path));
                        (200, v)
                    }
                    None => (
                        404,
                        json!({"error": format!("no misconfiguration called '{name}'"), "breaks": names}),
                    ),
                }
            }
            "" | "/status" | "/breaks" | "/fix" | "/cache/clear" => (
                405,
                json!({"error": format!("{method} is not allowed on '{path}'")}),
            ),
            _ if path.starts_with("/break/") => (
                405,
                json!({"error": format!("{method} is not allowed on '{path}': use POST")}),
            ),
            _ => (
                404,
                json!({"error": format!("no control route '{path}'"), "routes": ["GET /", "GET /breaks", "POST /break/NAME", "POST /fix", "POST /cache/clear"]}),
            ),
        }
    }
}

/// A running sandbox. Dropping it stops everything.
pub struct Sandbox {
    tasks: Vec<JoinHandle<()>>,
    host: Option<Served>,
    control: Arc<Control>,
    azurite: Azurite,
    pki: TestPki,
    opts: Options,
    listen: SocketAddr,
    control_addr: SocketAddr,
    ready_file: PathBuf,
    vars: Vec<(String, String)>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = std::fs::remove_file(&self.ready_file);
    }
}

fn loopback_only(addr: SocketAddr, flag: &str) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() {
        bail!("{flag} {addr}: the sandbox listens on loopback only (it accepts a published key and serves fake tenants)");
    }
    Ok(())
}

async fn bind(addr: SocketAddr, what: &str, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for the {what}: is another sandbox or `spin up` running? Choose another with {flag} 127.0.0.1:PORT")
    })
}

/// A pid from a previous `sandbox.json` that is still a running sandbox.
fn running_sandbox(ready: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(ready).ok()?;
    let pid = serde_json::from_str::<Value>(&text).ok()?["pid"].as_u64()? as u32;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    (pid != std::process::id() && String::from_utf8_lossy(&cmdline).contains("sandbox"))
        .then_some(pid)
}

impl Sandbox {
    /// Starts everything on the current tokio runtime and writes the state directory. Fails
    /// before starting anything when a port is taken or another sandbox uses the directory.
    pub async fn start(opts: Options) -> anyhow::Result<Sandbox> {
        loopback_only(opts.listen, "--listen")?;
        loopback_only(opts.control, "--control")?;
        if !valid_key(&opts.function_key) {
            bail!("--key: use 1 to 128 characters among A-Z a-z 0-9 - . _ ~");
        }
        if opts.serve_component && !served::AVAILABLE {
            bail!("{}", served::UNAVAILABLE);
        }
        let ready_file = opts.state_dir.join(READY_FILE);
        if let Some(pid) = running_sandbox(&ready_file) {
            bail!(
                "another sandbox (pid {pid}) is using {}: stop it (Ctrl-C, or kill {pid}) or pass --state-dir",
                opts.state_dir.display()
            );
        }
        std::fs::create_dir_all(&opts.state_dir)
            .with_context(|| format!("creating {}", opts.state_dir.display()))?;
        let _ = std::fs::remove_file(&ready_file);

        // Ports first: a taken port fails in milliseconds, not after Azurite started.
        let listener = match opts.serve_component {
            true => Some(bind(opts.listen, "component", "--listen").await?),
            false => None,
        };
        let control_listener = bind(opts.control, "control endpoint", "--control").await?;
        let control_addr = control_listener.local_addr()?;
        let listen = match &listener {
            Some(l) => l.local_addr()?,
            None => opts.listen,
        };

        let pki = TestPki::new();
        let imds_signer = Arc::new(Signer::new("sandbox-imds"));
        let entra_signer = Arc::new(Signer::new("sandbox-entra"));
        let azurite = Azurite::start(&pki, &world::ACCOUNTS).await;
        world::seed_azurite(&azurite).await;
        let tenants = Tenants::start(&pki, &imds_signer, &entra_signer, ENTRA_HOST).await;

        let settings = tenants.variables(&azurite);
        let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // The manifest `spin up` and the served host run: the given one plus the fakes' origins.
        let shipped = std::fs::read_to_string(&opts.manifest)
            .with_context(|| format!("reading {}", opts.manifest.display()))?;
        let manifest = opts.state_dir.join(MANIFEST_FILE);
        std::fs::write(&manifest, world::manifest_for(&shipped, &settings, &[]))
            .with_context(|| format!("writing {}", manifest.display()))?;
        let mut opts = opts;
        opts.manifest = manifest;
        let key = format!("{KEY_NAME}:{}", opts.function_key);
        let mut spin = world::spin_variables(
            std::iter::once(("function_keys", key.as_str())).chain(settings.iter().copied()),
        );
        let vars: Vec<(String, String)> = ["function_keys", "settings"]
            .into_iter()
            .filter_map(|name| spin.remove_entry(name))
            .collect();

        let host = match opts.serve_component {
            true => Some(Served::start(&opts, &vars, &pki, &tenants).await?),
            false => None,
        };
        let base_url = format!("http://{listen}");
        let control = Arc::new(Control {
            tenants,
            cache: host.as_ref().map(Served::token_cache),
            active: Mutex::new(Vec::new()),
            base_url,
            key: opts.function_key.clone(),
        });
        for b in &opts.breaks {
            control.apply(b);
        }

        let mut tasks = Vec::new();
        if let (Some(listener), Some(host)) = (listener, &host) {
            tasks.push(tokio::spawn(forward(listener, host.addr()?)));
        }
        tasks.push(tokio::spawn(serve_control(
            control_listener,
            control.clone(),
        )));
        // The fakes record every request for tests; a long-running sandbox forgets them.
        let janitor = control.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                janitor.tenants.clear();
            }
        }));

        let sandbox = Sandbox {
            tasks,
            host,
            control,
            azurite,
            pki,
            opts,
            listen,
            control_addr,
            ready_file,
            vars,
        };
        sandbox.write_state()?;
        Ok(sandbox)
    }

    /// The component's base URL (`http://127.0.0.1:3000`), served here or by `spin up`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.listen)
    }

    pub fn control_url(&self) -> String {
        format!("http://{}", self.control_addr)
    }

    /// The manifest the component runs with ([`MANIFEST_FILE`] in the state directory).
    pub fn manifest_path(&self) -> &Path {
        &self.opts.manifest
    }

    /// The component's variables (`function_keys`, then `settings`), as written to the env file.
    pub fn variables(&self) -> &[(String, String)] {
        &self.vars
    }

    /// The fakes of the three tenants (what they recorded, for a caller checking them).
    pub fn tenants(&self) -> &Tenants {
        &self.control.tenants
    }

    /// Azurite, with an account per tenant.
    pub fn azurite(&self) -> &Azurite {
        &self.azurite
    }

    /// The runtime config `spin up` gets (`runtime-config.toml` in the state directory).
    pub fn runtime_config_path(&self) -> PathBuf {
        self.opts.state_dir.join(RUNTIME_CONFIG_FILE)
    }

    /// The host of every HTTPS service the component calls (`[[client_tls]] hosts`): Spin 3.6.3
    /// takes host names or IPs only (an entry covers every port of the host) and refuses to
    /// start on `host:port`; several services on 127.0.0.1 share one entry.
    pub fn tls_hosts(&self) -> Vec<String> {
        let t = self.tenants();
        let mut hosts: Vec<String> = Vec::new();
        for e in [
            t.vault_a.endpoint(),
            t.vault_b.endpoint(),
            t.vault_c.endpoint(),
            t.entra.endpoint(),
            self.azurite.endpoint(),
        ] {
            let authority = e.trim_start_matches("https://");
            let host = authority
                .rsplit_once(':')
                .map_or(authority, |(h, _)| h)
                .to_string();
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        hosts
    }

    /// The names `spin up` must resolve to 127.0.0.1 (the vaults: Key Vault's challenge only
    /// names `https://vault.azure.net`, so the vault must be reached as `*.vault.azure.net`).
    pub fn hosts_lines(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tenants().guest_hosts().into_keys().collect();
        names.sort();
        names.iter().map(|n| format!("127.0.0.1 {n}")).collect()
    }

    /// The `hosts_lines` names /etc/hosts does not map to 127.0.0.1.
    pub fn missing_etc_hosts(&self) -> Vec<String> {
        unmapped_in_etc_hosts(self.tenants().guest_hosts().into_keys())
    }

    fn ca_path(&self) -> PathBuf {
        self.opts.state_dir.join("ca.pem")
    }

    /// The runtime config `spin up` gets: the token cache (in memory, or on the Redis at
    /// `redis_url`, for replicas sharing it) and `[[client_tls]]` trusting the sandbox CA for
    /// the sandbox's HTTPS hosts. Refused when Spin 3.6.3 would refuse it.
    pub fn runtime_config(&self, redis_url: Option<&str>) -> anyhow::Result<String> {
        let dir = &self.opts.state_dir;
        let ca = self.ca_path();
        let ca = ca.canonicalize().unwrap_or(ca);
        let toml_str = |s: &str| Value::String(s.to_string()).to_string();
        let hosts = self
            .tls_hosts()
            .iter()
            .map(|h| toml_str(h))
            .collect::<Vec<_>>()
            .join(", ");
        let store = match redis_url {
            None => format!(
                "# Token cache in memory: restarting `spin up` starts it cold (after a /break, a warm cache\n\
                 # keeps serving tokens issued before the break until they expire).\n\
                 [key_value_store.{KV_STORE}]\n\
                 type = \"spin\"\n"
            ),
            Some(url) => format!(
                "# Token cache on Redis, shared by every `spin up` given this file.\n\
                 [key_value_store.{KV_STORE}]\n\
                 type = \"redis\"\n\
                 url = {}\n",
                toml_str(url)
            ),
        };
        let runtime_config = format!(
            "# Written by the tenant-bridge sandbox on every start; it points at this run's ports and CA.\n\
             #   set -a; . {env}; set +a\n\
             #   spin up --runtime-config-file {rc}\n\
             \n\
             {store}\
             \n\
             # Trust the sandbox CA for the sandbox's HTTPS services only (IMDS is plain HTTP).\n\
             [[client_tls]]\n\
             component_ids = [{ids}]\n\
             hosts = [{hosts}]\n\
             ca_roots_file = {ca}\n\
             ca_use_webpki_roots = false\n",
            env = dir.join(ENV_FILE).display(),
            rc = dir.join(RUNTIME_CONFIG_FILE).display(),
            ids = self
                .opts
                .client_tls_components
                .iter()
                .map(|c| toml_str(c))
                .collect::<Vec<_>>()
                .join(", "),
            ca = toml_str(&ca.display().to_string()),
        );
        // A file Spin 3.6.3 would refuse must not start the sandbox either.
        crate::spin_rules::check_runtime_config(&runtime_config).map_err(|e| {
            anyhow::anyhow!("the sandbox's runtime config would not start Spin 3.6.3: {e}")
        })?;
        Ok(runtime_config)
    }

    /// The state directory's files: CA, runtime config, env, hosts lines, then `sandbox.json`.
    fn write_state(&self) -> anyhow::Result<()> {
        let dir = &self.opts.state_dir;
        let ca = self.pki.write_ca(dir);
        let ca = ca.canonicalize().unwrap_or(ca);
        let write = |name: &str, text: &str| -> anyhow::Result<PathBuf> {
            let path = dir.join(name);
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        };

        let runtime_config = self.runtime_config(None)?;
        let rc_path = write(RUNTIME_CONFIG_FILE, &runtime_config)?;

        let mut env = String::from(
            "# Spin variables pointing at the running sandbox (written on every start).\n\
             # Load into a shell with: set -a; . .sandbox/env; set +a\n",
        );
        for (k, v) in &self.vars {
            // A URL-safe key and a JSON document of URLs, ids and paths: no `'` to escape.
            let _ = writeln!(env, "SPIN_VARIABLE_{}='{v}'", k.to_ascii_uppercase());
        }
        crate::spin_rules::check_env_file(&env, &self.opts.manifest)
            .map_err(|e| anyhow::anyhow!("the sandbox's env file: {e}"))?;
        let env_path = write(ENV_FILE, &env)?;

        let mut hosts_text = String::from(
            "# /etc/hosts lines `spin up` needs to reach the sandbox's vaults (the testkit host maps them itself).\n",
        );
        for l in self.hosts_lines() {
            let _ = writeln!(hosts_text, "{l}");
        }
        let hosts_path = write(HOSTS_FILE, &hosts_text)?;

        let t = self.tenants();
        let mut ports: Vec<u16> = vec![
            self.control_addr.port(),
            t.imds.addr().port(),
            t.entra.addr().port(),
            t.vault_a.addr().port(),
            t.vault_b.addr().port(),
            t.vault_c.addr().port(),
            self.azurite.port(),
        ];
        if let Some(h) = &self.host {
            ports.push(self.listen.port());
            ports.push(h.addr()?.port());
        }
        let ready = json!({
            "pid": std::process::id(),
            "component": self.base_url(),
            "served_by": if self.host.is_some() { "testkit-host" } else { "spin" },
            "control": self.control_url(),
            "function_key": self.opts.function_key,
            "azurite_pid": self.azurite.pid(),
            "ports": ports,
            "services": {
                "imds": t.imds.endpoint(),
                "entra": t.entra.endpoint(),
                "vault_a": t.vault_a.endpoint(),
                "vault_b": t.vault_b.endpoint(),
                "vault_c": t.vault_c.endpoint(),
                "azurite": self.azurite.endpoint(),
            },
            "files": {
                "ca": ca,
                "runtime_config": rc_path,
                "env": env_path,
                "hosts": hosts_path,
            },
            "breaks_at_start": *self.control.active.lock().unwrap(),
        });
        write(READY_FILE, &serde_json::to_string_pretty(&ready)?)?;
        Ok(())
    }

    /// What is running and how to use it, for a person.
    pub fn summary(&self) -> String {
        let t = self.tenants();
        let rel = |p: PathBuf| {
            p.strip_prefix(repo_root())
                .map(Path::to_path_buf)
                .unwrap_or(p.clone())
                .display()
                .to_string()
        };
        let dir = &self.opts.state_dir;
        let az = self.azurite.endpoint();
        let row =
            |label: &str, what: String, url: String| format!("    {label:<25} {what:<47} {url}\n");
        let mut s = format!(
            "tenant-bridge sandbox: three fake Azure tenants on loopback\n\n  tenant A  {}\n",
            world::TENANT_A
        );
        s += &row(
            "managed identity (IMDS)",
            format!("client id {}", world::MI_CLIENT_ID),
            t.imds.endpoint(),
        );
        s += &row(
            "Key Vault",
            format!("{} = {}", world::SECRET_NAME, world::SECRET_VALUE_A),
            t.vault_a.endpoint(),
        );
        s += &row(
            "storage account",
            format!("{}: seed/greeting.txt", world::ACCOUNT_A),
            format!("{az}{}", self.azurite.account_path(world::ACCOUNT_A)),
        );
        s += &format!("  tenant B  {}\n", world::TENANT_B);
        s += &row(
            "Entra ID (token endpoint)",
            format!("app {}", world::APP_ID),
            t.entra.endpoint(),
        );
        s += &row(
            "Key Vault",
            format!("{} = {}", world::SECRET_NAME, world::SECRET_VALUE_B),
            t.vault_b.endpoint(),
        );
        s += &row(
            "storage account",
            format!("{}: seed/greeting.txt", world::ACCOUNT_B),
            format!("{az}{}", self.azurite.account_path(world::ACCOUNT_B)),
        );
        s += &format!(
            "  tenant C  {} (tenant={})\n",
            world::TENANT_C,
            world::PROFILE_C
        );
        s += &row(
            "Key Vault",
            format!("{} = {}", world::SECRET_NAME, world::SECRET_VALUE_C),
            t.vault_c.endpoint(),
        );
        s += &row(
            "storage account",
            format!("{}: seed/greeting.txt", world::ACCOUNT_C),
            format!("{az}{}", self.azurite.account_path(world::ACCOUNT_C)),
        );
        let _ = writeln!(
            s,
            "  Azurite node pid {}; CA {}; for spin up: {} and {}",
            self.azurite.pid().unwrap_or(0),
            rel(self.ca_path()),
            rel(dir.join(RUNTIME_CONFIG_FILE)),
            rel(dir.join(ENV_FILE))
        );
        let served_by = match &self.host {
            Some(_) => "the .wasm in the testkit's Spin-like wasmtime host",
            None => "served by `spin up`, not by the sandbox",
        };
        let _ = writeln!(s, "\n  component  {}  ({served_by})", self.base_url());
        let _ = writeln!(
            s,
            "  control    {}  (POST /break/NAME, POST /fix, GET /breaks)",
            self.control_url()
        );
        let _ = writeln!(s, "\nTry:");
        for path in [SECRET_SAME, SECRET_CROSS, BLOB_SAME, BLOB_CROSS] {
            let _ = writeln!(s, "  {}", self.curl(path));
        }
        let _ = writeln!(
            s,
            "\nBreak something (then repeat the request it names; POST /fix undoes all):"
        );
        let _ = writeln!(
            s,
            "  curl -X POST {}/break/app-not-provisioned",
            self.control_url()
        );
        let names: Vec<&str> = BREAKS.iter().map(|b| b.name).collect();
        let _ = writeln!(s, "  ({})", names.join(", "));
        let active = self.control.active.lock().unwrap();
        if !active.is_empty() {
            let _ = writeln!(s, "  switched on now: {}", active.join(", "));
        }
        let _ = writeln!(s, "\nCtrl-C stops everything.");
        s
    }

    /// A `curl` line for `path` with the sandbox's key.
    pub fn curl(&self, path: &str) -> String {
        curl_line(&self.base_url(), &self.opts.function_key, path)
    }

    /// Stops the servers and waits until their sockets are closed, then drops the rest
    /// (Azurite is killed and reaped).
    pub async fn shutdown(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        drop(self);
    }
}

/// The `names` that /etc/hosts does not map to 127.0.0.1 (what `spin up` needs), sorted.
pub fn unmapped_in_etc_hosts(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let mapped: Vec<String> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next()? == "127.0.0.1").then(|| words.map(str::to_ascii_lowercase))
        })
        .flatten()
        .collect();
    let mut missing: Vec<String> = names
        .into_iter()
        .filter(|n| !mapped.contains(&n.to_ascii_lowercase()))
        .collect();
    missing.sort();
    missing
}

fn curl_line(base_url: &str, key: &str, path: &str) -> String {
    format!("curl -H 'x-functions-key: {key}' '{base_url}{path}'")
}

/// Forwards every connection on `listener` to the testkit host at `target` (which listens on a
/// port of its own choosing). A connection the host breaks is reset towards the client too.
async fn forward(listener: TcpListener, target: SocketAddr) {
    crate::net::accept::serve_each(listener, move |mut client| async move {
        let _ = client.set_nodelay(true);
        let Ok(mut upstream) = TcpStream::connect(target).await else {
            let _ = client.set_zero_linger();
            return;
        };
        let _ = upstream.set_nodelay(true);
        if tokio::io::copy_bidirectional(&mut client, &mut upstream)
            .await
            .is_err()
        {
            let _ = client.set_zero_linger();
        }
    })
    .await
}

type CtlBody = Full<Bytes>;

async fn serve_control(listener: TcpListener, control: Arc<Control>) {
    crate::net::accept::serve_each(listener, move |sock| {
        let control = control.clone();
        async move {
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (status, body) = control.handle(req.method(), req.uri().path());
                    let mut text = serde_json::to_string_pretty(&body).unwrap_or_default();
                    text.push('\n');
                    let resp = hyper::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(CtlBody::new(Bytes::from(text)))
                        .expect("valid response");
                    async move { Ok::<_, Infallible>(resp) }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(sock), svc)
                .await;
        }
    })
    .await
}

/// Parses `--listen`/`--control` values: `PORT`, `HOST:PORT` or `[::1]:PORT`; `localhost`
/// means 127.0.0.1.
pub fn parse_addr(s: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        let port: u16 = port.parse().with_context(|| format!("bad port in '{s}'"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse::<SocketAddr>()
        .with_context(|| format!("'{s}' is not PORT or HOST:PORT"))
}

/// A runtime-config.toml parsed by the `toml` crate (the parser Spin uses), as JSON, for
/// checks of what the sandbox wrote.
pub fn runtime_config_json(text: &str) -> anyhow::Result<Value> {
    let table: toml::Table = toml::from_str(text).context("runtime-config.toml is not TOML")?;
    Ok(serde_json::to_value(table)?)
}
