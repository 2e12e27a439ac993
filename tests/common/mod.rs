//! The two-tenant world every integration test runs in: the compiled component in the testkit's
//! Spin-like wasmtime host, strict fakes of IMDS / Entra / Key Vault per tenant, and one real
//! Azurite (HTTPS, `--oauth basic`) holding an account per tenant.
//!
//! Azurite, the CA and the signing keys are shared by all tests of a binary (starting them is
//! slow); fakes and the host are fresh per test so recorded traffic belongs to one test.
#![allow(dead_code, unused_imports)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use tenant_bridge_testkit::azurite::Azurite;
use tenant_bridge_testkit::entra::FakeEntra;
use tenant_bridge_testkit::host::{HostConfig, OutboundRecord, RunningHost};
use tenant_bridge_testkit::imds::FakeImds;
use tenant_bridge_testkit::jwt::{self, Signer};
use tenant_bridge_testkit::keyvault::FakeVault;
use tenant_bridge_testkit::pki::TestPki;
use tenant_bridge_testkit::world::Tenants;
use tokio::runtime::Runtime;

/// The world's ids, hosts, seed data and Entra directory (shared with the sandbox).
pub use tenant_bridge_testkit::world::{
    directory, ACCOUNT_A, ACCOUNT_B, APP_ID, APP_SP_A, APP_SP_B, ENTRA_HOST, EXCHANGE_AUDIENCE,
    MI_CLIENT_ID, MI_OBJECT_ID, SEED_A, SEED_B, SEED_BLOB, SEED_CONTAINER, STORAGE_RESOURCE,
    TENANT_A, TENANT_B, VAULT_A_HOST, VAULT_B_HOST, VAULT_RESOURCE,
};

pub const KEY: &str = "test-key-1";
pub const ROTATED_KEY: &str = "test-key-2";
pub const FUNCTION_KEYS: &str = "tests:test-key-1,rotated:test-key-2";

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

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the release .wasm once per test binary, exactly as `spin build` would.
pub fn wasm() -> PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(root())
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "-p",
                "tenant-bridge",
            ])
            .status()
            .expect("run cargo build for wasm32-wasip2");
        assert!(status.success(), "building the component failed");
        root().join("target/wasm32-wasip2/release/tenant_bridge.wasm")
    })
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
            let az = Azurite::start(&pki, &[ACCOUNT_A, ACCOUNT_B]).await;
            tenant_bridge_testkit::world::seed_azurite(&az).await;
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
    pub entra: FakeEntra,
    pub host: RunningHost,
    pub vars: HashMap<String, String>,
    pub client: reqwest::Client,
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
    pub entra: String,
    pub azurite: String,
}

type VarFn = Box<dyn FnOnce(&Endpoints) -> String>;

pub struct WorldBuilder {
    vars: Vec<(String, Option<String>)>,
    computed: Vec<(String, VarFn)>,
    manifest: Option<PathBuf>,
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
    pub fn manifest(mut self, path: PathBuf) -> Self {
        self.manifest = Some(path);
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
            manifest: None,
        }
    }

    pub fn new() -> World {
        Self::builder().build()
    }

    fn start(b: WorldBuilder) -> World {
        let wasm = wasm();
        let s = shared();
        rt().block_on(async {
            let tenants = Tenants::start(&s.pki, &s.imds_signer, &s.entra_signer, ENTRA_HOST).await;
            let mut vars: HashMap<String, String> = tenants
                .variables(&s.azurite)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            vars.insert("function_keys".into(), FUNCTION_KEYS.into());
            let guest_hosts = tenants.guest_hosts();
            let Tenants {
                imds,
                vault_a,
                vault_b,
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
                entra: entra.endpoint(),
                azurite: s.azurite.endpoint(),
            };
            for (name, f) in b.computed {
                vars.insert(name, f(&endpoints));
            }
            let mut cfg = HostConfig {
                wasm,
                variables: vars.clone(),
                ca_pem: Some(s.pki.ca_pem()),
                hosts: guest_hosts,
                echo_logs: std::env::var_os("TB_ECHO_LOGS").is_some(),
                ..HostConfig::default()
            };
            if let Some(m) = b.manifest {
                cfg.manifest = m;
            }
            let host = RunningHost::start(cfg)
                .await
                .expect("start the component host");
            let client = reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client");
            World {
                imds,
                vault_a,
                vault_b,
                entra,
                host,
                vars,
                client,
            }
        })
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

    pub fn logs(&self) -> String {
        self.host.logs()
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

    /// Asserts nothing secret leaked into the body or the logs: no JWT, no function key, none of
    /// the given secret values.
    pub fn assert_no_leak(&self, reply: &Reply, secrets: &[&str]) {
        let logs = self.logs();
        for (what, text) in [("body", reply.text()), ("log", logs)] {
            assert!(!text.contains("eyJ"), "{what} contains a JWT: {text}");
            for s in [KEY, ROTATED_KEY].iter().chain(secrets) {
                assert!(!text.contains(s), "{what} contains secret {s:?}: {text}");
            }
        }
    }
}

/// What must never appear in a log line: any JWT (tokens, assertions), the function keys, the
/// seeded secret values.
pub const NEVER_LOGGED: &[&str] = &["eyJ", KEY, ROTATED_KEY, "TenantA", "TenantB"];

/// The log scanner: every world's complete log output is checked when the test ends, so the whole
/// integration suite runs through it.
impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let logs = self.host.logs();
        for needle in NEVER_LOGGED {
            if let Some(line) = logs.lines().find(|l| l.contains(needle)) {
                panic!("log scanner: {needle:?} appears in the log: {line}");
            }
        }
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
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
