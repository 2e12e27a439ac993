//! The two-tenant world every integration test runs in: the compiled component in the testkit's
//! Spin-like wasmtime host, strict fakes of IMDS / Entra / Key Vault per tenant, and one real
//! Azurite (HTTPS, `--oauth basic`) holding an account per tenant.
//!
//! Azurite, the CA and the signing keys are shared by all tests of a process (starting them is
//! slow): the integration binary's tests all use one Azurite. Fakes and the host are fresh per
//! test so recorded traffic belongs to one test. The benchmark (`benches/bench.rs`) runs in the
//! same world.
//!
//! The host runs as users run Spin: the token cache is the default key-value store, a SQLite file
//! in a per-world state directory (Spin's `.spin/`). A replicated world
//! (`World::builder().replicated()`) puts the default store on a real redis-server of its own
//! instead, through a runtime config, so that `World::replica()` hosts share it as SpinKube
//! replicas share one Redis.
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use super::scan;
use super::{
    Tenants, ACCOUNTS, ACCOUNT_A, ACCOUNT_B, ACCOUNT_C, APP_SP_B, APP_SP_C, ENTRA_HOST,
    MI_OBJECT_ID, REGISTRY_HOST, SECRET_VALUE_A, SECRET_VALUE_B, SECRET_VALUE_C, TENANT_A,
    TENANT_B, TENANT_C,
};
use crate::fakes::acr::TokenKind;
use crate::fakes::entra::FakeEntra;
use crate::fakes::imds::FakeImds;
use crate::fakes::keyvault::FakeVault;
use crate::fakes::login_server::LoginServer;
use crate::fakes::storage_gate::{StorageAccount, StorageGate};
use crate::host::{HostConfig, HostLogs, OutboundRecord, RunningHost};
use crate::launchers::azurite::Azurite;
use crate::launchers::redis::RedisServer;
use crate::trust::jwt::{self, Signer};
use crate::trust::pki::TestPki;
use tokio::runtime::Runtime;

/// `cross_tenant_repositories` of a world with a registry: every caller may pull `base/*`.
pub const REGISTRY_RULES: &str = "base/*";

pub const KEY: &str = "test-key-1-for-the-tests";
pub const ROTATED_KEY: &str = "test-key-2-after-rotation";
pub const FUNCTION_KEYS: &str = "tests:test-key-1-for-the-tests,rotated:test-key-2-after-rotation";

pub fn rt() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// The project's root (the testkit's parent): spin.toml, scripts/, target/.
pub fn root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the testkit lies in the project")
        .to_path_buf()
}

/// Builds the component for wasm32-wasip2 under `profile` with `extra` cargo arguments and
/// returns the .wasm.
fn build_component(profile: &str, extra: &[&str]) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root())
        .args([
            "build",
            "--profile",
            profile,
            "--target",
            "wasm32-wasip2",
            "-p",
            "tenant-bridge",
        ])
        .args(extra)
        .status()
        .expect("run cargo build for wasm32-wasip2");
    assert!(
        status.success(),
        "building the component ({profile}) failed"
    );
    root().join(format!("target/wasm32-wasip2/{profile}/tenant_bridge.wasm"))
}

/// Builds the release .wasm once per test binary, exactly as `spin build` would.
pub fn wasm() -> PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| build_component("release", &[])).clone()
}

/// The component built with the `guard-probe` feature (Cargo.toml): its settings accept token
/// endpoints outside the cloud, so a test reaches the runtime guard behind them. Never shipped.
pub fn guard_probe_wasm() -> PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| build_component("guard-probe", &["--features", "guard-probe"]))
        .clone()
}

/// State shared by every test in a binary.
pub struct Shared {
    pub pki: TestPki,
    pub imds_signer: Arc<Signer>,
    pub entra_signer: Arc<Signer>,
    pub azurite: Azurite,
}

pub fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let pki = TestPki::new();
        let imds_signer = Arc::new(Signer::new("imds-key"));
        let entra_signer = Arc::new(Signer::new("entra-key"));
        let azurite = rt().block_on(async {
            let az = Azurite::start(&pki, &ACCOUNTS).await;
            super::seed_azurite(&az).await;
            az
        });
        Shared {
            pki,
            imds_signer,
            entra_signer,
            azurite,
        }
    })
}

/// A per-test world: fresh fakes, fresh host, shared Azurite.
pub struct World {
    pub imds: FakeImds,
    pub vault_a: FakeVault,
    pub vault_b: FakeVault,
    pub vault_c: FakeVault,
    pub entra: FakeEntra,
    /// Storage's token checks in front of the shared Azurite: the component's blob endpoints.
    pub storage: StorageGate,
    pub host: RunningHost,
    /// Tenant B's registry login server, when the builder asked for one.
    pub registry: Option<LoginServer>,
    pub vars: HashMap<String, String>,
    pub client: reqwest::Client,
    /// How `host` was started, for replicas.
    config: HostConfig,
    /// The Redis a replicated world's hosts share (None: SQLite in the state directory).
    pub redis: Option<RedisServer>,
    /// Spin's state directory (and the runtime config of a replicated world), held so that it
    /// is removed when the world ends.
    _state: tempfile::TempDir,
    /// The log of every host this world started (`host`, replicas, siblings), scanned when it
    /// ends even where the host itself was dropped before.
    hosts: std::sync::Mutex<Vec<(String, HostLogs)>>,
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("").to_string())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    /// The problem `code` of an RFC 9457 body.
    pub fn code(&self) -> String {
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json"),
            "body: {}",
            self.text()
        );
        self.json()["code"].as_str().unwrap_or_default().to_string()
    }
    pub fn detail(&self) -> String {
        self.json()["detail"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// Where the per-test fakes listen, for variables that must point at one of them.
pub struct Endpoints {
    pub imds: String,
    pub vault_a: String,
    pub vault_b: String,
    pub vault_c: String,
    pub entra: String,
    /// Azurite behind Storage's checks (`World::storage`): what the blob variables name.
    pub azurite: String,
    /// The registry login server as `name:port`, when there is one.
    pub registry: Option<String>,
}

type VarFn = Box<dyn FnOnce(&Endpoints) -> String>;
type ManifestEdit = Box<dyn FnOnce(String) -> String>;

pub struct WorldBuilder {
    vars: Vec<(String, Option<String>)>,
    computed: Vec<(String, VarFn)>,
    manifest_edit: Option<ManifestEdit>,
    component: Option<PathBuf>,
    registry: bool,
    replicated: bool,
}

impl WorldBuilder {
    /// Overrides a variable (None: leave it to spin.toml's default).
    pub fn var(mut self, name: &str, value: Option<&str>) -> Self {
        self.vars
            .push((name.to_string(), value.map(str::to_string)));
        self
    }
    /// Sets a variable from the fakes' endpoints once they are running.
    pub fn var_with(mut self, name: &str, f: impl FnOnce(&Endpoints) -> String + 'static) -> Self {
        self.computed.push((name.to_string(), Box::new(f)));
        self
    }
    /// Serves another build of the component (e.g. [`guard_probe_wasm`]).
    pub fn component(mut self, wasm: PathBuf) -> Self {
        self.component = Some(wasm);
        self
    }
    /// Edits the manifest the world runs (spin.toml plus the fakes' origins, each line tagged
    /// with its setting: see [`super::manifest_for`]), for tests of the host's enforcement.
    pub fn manifest_edit(mut self, edit: impl FnOnce(String) -> String + 'static) -> Self {
        self.manifest_edit = Some(Box::new(edit));
        self
    }
    /// Adds tenant B's registry: the fake token service, the real registry seeded with
    /// [`SEED_REPOSITORY`] and [`OTHER_REPOSITORY`], and the variables that serve it
    /// (`cross_tenant_registries`, `cross_tenant_repositories` = [`REGISTRY_RULES`]).
    pub fn registry(mut self) -> Self {
        self.registry = true;
        self
    }
    /// The default store on a redis-server of this world, so that `World::replica()` can share
    /// it (a SpinKube deployment with several replicas).
    pub fn replicated(mut self) -> Self {
        self.replicated = true;
        self
    }
    pub fn build(self) -> World {
        World::start(self)
    }
}

impl World {
    pub fn builder() -> WorldBuilder {
        WorldBuilder {
            vars: Vec::new(),
            computed: Vec::new(),
            manifest_edit: None,
            component: None,
            registry: false,
            replicated: false,
        }
    }

    pub fn new() -> World {
        Self::builder().build()
    }

    fn start(b: WorldBuilder) -> World {
        let wasm = b.component.clone().unwrap_or_else(wasm);
        let s = shared();
        rt().block_on(async {
            let tenants = Tenants::start(&s.pki, &s.imds_signer, &s.entra_signer, ENTRA_HOST).await;
            let storage = start_storage_gate(s).await;
            let mut vars: HashMap<String, String> = tenants
                .variables(&s.azurite)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            // Every blob endpoint is Azurite behind Storage's tenant and role checks.
            for name in [
                "blob_service_endpoint",
                "cross_blob_service_endpoint",
                "profile1_blob_service_endpoint",
            ] {
                vars.insert(name.into(), storage.endpoint());
            }
            vars.insert("function_keys".into(), FUNCTION_KEYS.into());
            let mut guest_hosts = tenants.guest_hosts();
            let registry = if b.registry {
                Some(start_registry(s).await)
            } else {
                None
            };
            if let Some(login) = &registry {
                vars.insert("cross_tenant_registries".into(), login.authority());
                vars.insert("cross_tenant_repositories".into(), REGISTRY_RULES.into());
                guest_hosts.insert(REGISTRY_HOST.into(), std::net::IpAddr::from([127, 0, 0, 1]));
            }
            let Tenants {
                imds,
                vault_a,
                vault_b,
                vault_c,
                entra,
            } = tenants;
            for (name, value) in b.vars {
                match value {
                    Some(v) => vars.insert(name, v),
                    None => vars.remove(&name),
                };
            }
            let endpoints = Endpoints {
                imds: imds.endpoint(),
                vault_a: vault_a.endpoint(),
                vault_b: vault_b.endpoint(),
                vault_c: vault_c.endpoint(),
                entra: entra.endpoint(),
                azurite: storage.endpoint(),
                registry: registry.as_ref().map(LoginServer::authority),
            };
            for (name, f) in b.computed {
                vars.insert(name, f(&endpoints));
            }
            let state = tempfile::Builder::new()
                .prefix("tenant-bridge-world-")
                .tempdir()
                .expect("state dir");
            let redis = b.replicated.then(|| {
                RedisServer::start().unwrap_or_else(|e| panic!("a replicated world: {e:#}"))
            });
            let runtime_config = redis.as_ref().map(|r| {
                let path = state.path().join("runtime-config.toml");
                let text = format!(
                    "[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n",
                    r.url()
                );
                std::fs::write(&path, text).expect("write runtime-config.toml");
                path
            });
            let settings: Vec<(&str, &str)> =
                vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            // The test registry cannot listen on 443 without root: its port is added for
            // ACR login server names; the component's own allow-list is what the tests exercise.
            let extra: Vec<(&str, String)> = registry
                .iter()
                .map(|login| ("registry", format!("https://*.azurecr.io:{}", login.port())))
                .collect();
            let shipped =
                std::fs::read_to_string(root().join("spin.toml")).expect("read spin.toml");
            let mut text = super::manifest_for(&shipped, &settings, &extra);
            if let Some(edit) = b.manifest_edit {
                text = edit(text);
            }
            let manifest = state.path().join("spin.toml");
            std::fs::write(&manifest, text).expect("write the world's manifest");
            let cfg = HostConfig {
                wasm,
                manifest,
                variables: super::spin_variables(settings.iter().copied()),
                ca_pem: Some(s.pki.ca_pem()),
                hosts: guest_hosts,
                echo_logs: std::env::var_os("TB_ECHO_LOGS").is_some(),
                runtime_config,
                state_dir: Some(state.path().join(".spin")),
            };
            let host = RunningHost::start(cfg.clone())
                .await
                .expect("start the component host");
            let client = reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client");
            let hosts = std::sync::Mutex::new(vec![("host".to_string(), host.log_view())]);
            World {
                imds,
                vault_a,
                vault_b,
                vault_c,
                entra,
                storage,
                host,
                registry,
                vars,
                client,
                config: cfg,
                redis,
                _state: state,
                hosts,
            }
        })
    }

    fn track(&self, what: &str, host: RunningHost) -> RunningHost {
        let mut hosts = self.hosts.lock().unwrap();
        let n = hosts.len();
        hosts.push((format!("{what} {n}"), host.log_view()));
        host
    }

    /// Another host serving the same component and configuration, sharing `host`'s Redis: a
    /// second replica. Only a replicated world has one (`World::builder().replicated()`).
    pub fn replica(&self) -> RunningHost {
        assert!(
            self.redis.is_some(),
            "replicas share a Redis, as on SpinKube: build the world with World::builder().replicated()"
        );
        let replica = rt()
            .block_on(RunningHost::start(self.config.clone()))
            .expect("start the replica");
        self.track("replica", replica)
    }

    /// Another component (its own .wasm and manifest, no variables) in a host configured like
    /// `host` (store, CA, names) and sharing its key-value data: the benchmark's ceilings.
    pub fn sibling(&self, wasm: PathBuf, manifest: PathBuf) -> RunningHost {
        let mut cfg = self.config.clone();
        cfg.wasm = wasm;
        cfg.manifest = manifest;
        cfg.variables = HashMap::new();
        let sibling = rt()
            .block_on(RunningHost::start(cfg))
            .expect("start the sibling host");
        self.track("sibling", sibling)
    }

    /// GET with the test function key in `x-functions-key`.
    pub fn get(&self, path_and_query: &str) -> Reply {
        self.request("GET", path_and_query, &[("x-functions-key", KEY)])
    }

    pub fn request(&self, method: &str, path_and_query: &str, headers: &[(&str, &str)]) -> Reply {
        let url = format!("{}{}", self.host.base_url(), path_and_query);
        rt().block_on(async {
            let mut req = self.client.request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                &url,
            );
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let resp = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp
                .bytes()
                .await
                .unwrap_or_else(|e| panic!("body of {url}: {e}"))
                .to_vec();
            Reply {
                status,
                headers,
                body,
            }
        })
    }

    pub fn outbound(&self) -> Vec<OutboundRecord> {
        self.host.outbound()
    }

    /// The host's log once every instance has ended: an instance writes its line after the
    /// response, so a caller can have the whole body before the line is there. An instance
    /// still running after [`IDLE_WAIT`] fails the test (its line would be missing).
    pub fn logs(&self) -> String {
        complete_log("host", &self.host.log_view())
    }

    /// The component's JSON log lines, waiting (up to 5 s) until `count` are there: an instance
    /// writes its line after the response, so it can land after the caller has the body.
    pub fn log_lines(&self, count: usize) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let lines: Vec<serde_json::Value> = self
                .logs()
                .lines()
                .filter(|l| l.starts_with('{'))
                .map(|l| {
                    serde_json::from_str(l)
                        .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"))
                })
                .collect();
            if lines.len() >= count || std::time::Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Upload a blob to an account of the shared Azurite.
    pub fn put_blob(&self, account: &str, container: &str, blob: &str, data: &[u8]) {
        let az = &shared().azurite;
        rt().block_on(async {
            az.create_container(account, container).await;
            az.put_blob(account, container, blob, data).await;
        });
    }

    /// Asserts nothing secret leaked into the body or the logs of any host: no JWT, no part of
    /// a function key, secret value or issued token, nor of the given secret values.
    pub fn assert_no_leak(&self, reply: &Reply, secrets: &[&str]) {
        let mut scanner = self.scanner_of(false);
        for s in secrets {
            scanner.add("a secret value of the test", s);
        }
        scanner.assert_clean("body", &reply.text());
        let mut scanner = self.scanner();
        for s in secrets {
            scanner.add("a secret value of the test", s);
        }
        for (whose, log) in self.all_logs() {
            scanner.assert_clean(&whose, &log);
        }
    }

    /// Every host's complete log.
    fn all_logs(&self) -> Vec<(String, String)> {
        let hosts = self.hosts.lock().unwrap().clone();
        hosts
            .iter()
            .map(|(whose, view)| (whose.clone(), complete_log(whose, view)))
            .collect()
    }

    /// What this world knows is secret: every JWT (`eyJ`), every configured function key, every
    /// secret value its vaults ever held, every token the binary's IMDS, Entra and ACR issued.
    pub fn scanner(&self) -> scan::Scanner {
        self.scanner_of(true)
    }

    /// [`World::scanner`], with the vaults' values or without (for a body that is one of them).
    fn scanner_of(&self, vault_values: bool) -> scan::Scanner {
        let mut scanner = scan::Scanner::new();
        scanner.add_marker("a JWT", "eyJ");
        let configured = self.vars.get("function_keys").cloned().unwrap_or_default();
        let keys = configured
            .split(',')
            .filter_map(|entry| entry.split_once(':').map(|(_, k)| k.trim().to_string()));
        for key in [KEY.to_string(), ROTATED_KEY.to_string()]
            .into_iter()
            .chain(keys)
        {
            scanner.add("a function key", &key);
        }
        for v in [SECRET_VALUE_A, SECRET_VALUE_B, SECRET_VALUE_C]
            .into_iter()
            .filter(|_| vault_values)
        {
            scanner.add("a seeded secret value", v);
        }
        for vault in [&self.vault_a, &self.vault_b, &self.vault_c]
            .into_iter()
            .filter(|_| vault_values)
        {
            for v in vault.secret_values() {
                scanner.add("a Key Vault secret value", &v);
            }
        }
        for part in issued_token_parts() {
            scanner.add("an issued IMDS or Entra token", &part);
        }
        for (kind, part) in self.registry_token_parts() {
            scanner.add(&format!("an ACR {kind:?} token"), &part);
        }
        scanner
    }
}

/// How long the scanner waits for instances still running when a test reads or ends its log:
/// generous (a loaded 2-core machine), and failing rather than scanning a log with lines missing.
pub const IDLE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// `view`'s log once no instance runs; fails if one still does after [`IDLE_WAIT`].
pub fn complete_log(whose: &str, view: &HostLogs) -> String {
    assert!(
        view.wait_idle(IDLE_WAIT),
        "{whose}: an instance was still running after {IDLE_WAIT:?}; its log line would be missing"
    );
    view.contents()
}

/// Every IMDS and Entra token issued in this test binary, as its claims and signature segments
/// (the header is the same in every token; the scanner matches any slice of the others).
pub fn issued_token_parts() -> Vec<String> {
    let s = shared();
    let mut tokens = s.imds_signer.issued();
    tokens.extend(s.entra_signer.issued());
    tokens
        .into_iter()
        .flat_map(|t| t.split('.').skip(1).map(str::to_string).collect::<Vec<_>>())
        .collect()
}

/// The log scanner: every host a world started has its complete log checked when the test
/// ends (`World::scanner`), so the whole integration suite runs through it.
impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let scanner = self.scanner();
        for (whose, log) in self.all_logs() {
            scanner.assert_clean(&whose, &log);
        }
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    /// Every ACR token the registry's token service issued, as its claims and signature
    /// segments.
    pub fn registry_token_parts(&self) -> Vec<(TokenKind, String)> {
        let Some(login) = &self.registry else {
            return Vec::new();
        };
        login
            .acr
            .issued()
            .into_iter()
            .flat_map(|issued| {
                let parts: Vec<String> = issued
                    .token
                    .split('.')
                    .skip(1)
                    .map(str::to_string)
                    .collect();
                parts.into_iter().map(move |p| (issued.kind, p))
            })
            .collect()
    }
}

/// The gate in front of the shared Azurite: each account in its tenant, readable by the
/// principal the world grants it to (A: the managed identity, B and C: the app's service
/// principals), trusting the world's IMDS and Entra keys.
async fn start_storage_gate(s: &Shared) -> StorageGate {
    let account = |name: &str, tenant: &str, reader: &str| StorageAccount {
        name: name.into(),
        tenant_id: tenant.into(),
        readers: vec![reader.into()],
    };
    StorageGate::start(
        &s.pki,
        std::net::SocketAddr::from(([127, 0, 0, 1], s.azurite.port())),
        vec![s.imds_signer.verifier(), s.entra_signer.verifier()],
        vec![
            account(ACCOUNT_A, TENANT_A, MI_OBJECT_ID),
            account(ACCOUNT_B, TENANT_B, APP_SP_B),
            account(ACCOUNT_C, TENANT_C, APP_SP_C),
        ],
    )
    .await
}

async fn start_registry(s: &Shared) -> LoginServer {
    let login =
        LoginServer::start(&s.pki, super::acr_config(vec![s.entra_signer.verifier()])).await;
    super::seed_registry(&login).await;
    login
}

/// The `tid` claim of a bearer token in an outbound request.
pub fn bearer_tid(record: &OutboundRecord) -> Option<String> {
    let auth = record.header("authorization")?;
    let token = auth.strip_prefix("Bearer ")?;
    jwt::decode_unverified(token)?
        .get("tid")?
        .as_str()
        .map(str::to_string)
}

/// Writes a copy of spin.toml with `edit` applied, for tests of the host's enforcement.
pub fn manifest_variant(name: &str, edit: impl FnOnce(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(root().join("spin.toml")).expect("read spin.toml");
    let dir = std::env::temp_dir().join(format!(
        "tenant-bridge-manifest-{}-{name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("spin.toml");
    std::fs::write(&path, edit(text)).expect("write manifest variant");
    path
}

pub fn base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}
