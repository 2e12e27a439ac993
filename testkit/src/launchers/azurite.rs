//! The real Blob emulator (Azurite, pinned in testkit/package.json) over HTTPS with `--oauth basic`.
//!
//! Azurite 3.37.0 facts (verified by tests/fakes_azurite.rs):
//! - Bearer tokens: no signature check; `iat`, `nbf`, `exp` required; `iss` must start with
//!   `https://sts.windows.net/` (or the sovereign/ppe v1 issuers); `aud` must be
//!   `https://storage.azure.com[/]` or the account URL. A refused token answers
//!   403 `AuthenticationFailed` (detail "Invalid token audience." / "Lifetime validation failed.
//!   The token is expired."); a bearer over plain HTTP is refused too.
//! - `x-ms-version` up to `2026-06-06` is accepted; the seeding below uses [`X_MS_VERSION`].
//!
//! The node process runs in its own process group, is tied to this process with
//! `PR_SET_PDEATHSIG` (spawned from a thread that lives as long as the process, so a handle kept
//! in a `static` does not orphan it), and is killed (SIGKILL to the group) and reaped on drop.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;

use crate::launchers::process::{free_port, kill_group, spawn_tied_to_process};
use crate::trust::jwt::{now, Signer};
use crate::trust::pki::TestPki;

/// `x-ms-version` used for seeding (the same the component sends).
pub const X_MS_VERSION: &str = "2025-11-05";
/// Tenant named in the seeding token's v1 issuer.
pub const SEED_TENANT: &str = "a2e1a2e1-0000-4000-8000-00000000a2e1";
/// Largest body sent in one Put Blob / Put Block while seeding.
pub const MAX_SINGLE_PUT: usize = 64 * 1024 * 1024;
const BLOCK_SIZE: usize = 16 * 1024 * 1024;

/// A running Azurite Blob service. Killed on drop.
pub struct Azurite {
    child: Option<Child>,
    port: u16,
    client: reqwest::Client,
    accounts: Vec<(String, String)>,
    dir: PathBuf,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The testkit directory (holds package.json and node_modules).
pub fn testkit_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of the azurite-blob launcher installed by `npm ci`.
pub fn azurite_blob_bin() -> PathBuf {
    testkit_dir().join("node_modules/.bin/azurite-blob")
}

fn ensure_installed() {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if azurite_blob_bin().exists() {
        return;
    }
    let dir = testkit_dir();
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .current_dir(&dir)
        .output()
        .expect("run `npm ci` for azurite (is npm installed?)");
    assert!(
        out.status.success() && azurite_blob_bin().exists(),
        "`npm ci --prefix {}` failed: {}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn random_key() -> String {
    let mut k = [0u8; 64];
    getrandom::fill(&mut k).expect("getrandom");
    base64::engine::general_purpose::STANDARD.encode(k)
}

fn seed_signer() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(|| Signer::new("azurite-seed"))
}

/// A bearer token Azurite accepts (v1 issuer, `aud` https://storage.azure.com), valid 1 h.
pub fn storage_token(tenant: &str) -> String {
    let t = now();
    seed_signer().sign(&json!({
        "aud": "https://storage.azure.com",
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": t - 300,
        "nbf": t - 300,
        "exp": t + 3600,
        "tid": tenant,
        "oid": "5eed5eed-0000-4000-8000-000000005eed",
        "sub": "5eed5eed-0000-4000-8000-000000005eed",
        "appid": "5eed5eed-0000-4000-8000-000000005eed",
        "idtyp": "app",
        "ver": "1.0"
    }))
}

fn http_date() -> String {
    httpdate::fmt_http_date(std::time::SystemTime::now())
}

impl Azurite {
    /// Starts node_modules/.bin/azurite-blob (installed by `npm ci` in testkit/; if missing, runs it)
    /// over HTTPS with --oauth basic, --inMemoryPersistence, --disableTelemetry, on 127.0.0.1:PORT,
    /// with the given accounts (AZURITE_ACCOUNTS). Waits until it answers.
    pub async fn start(pki: &TestPki, accounts: &[&str]) -> Azurite {
        assert!(!accounts.is_empty(), "Azurite needs at least one account");
        tokio::task::spawn_blocking(ensure_installed)
            .await
            .expect("npm ci task");
        let accounts: Vec<(String, String)> = accounts
            .iter()
            .map(|a| (a.to_string(), random_key()))
            .collect();
        let dir = std::env::temp_dir().join(format!(
            "tenant-bridge-azurite-{}-{}",
            std::process::id(),
            crate::trust::ids::random_hex(6)
        ));
        std::fs::create_dir_all(&dir).expect("azurite temp dir");
        let pair = pki.server_cert(&["127.0.0.1", "localhost"]);
        std::fs::write(dir.join("cert.pem"), &pair.cert_pem).expect("write cert");
        std::fs::write(dir.join("key.pem"), &pair.key_pem).expect("write key");
        let client = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(pki.ca_pem().as_bytes()).expect("CA pem"),
            )
            .https_only(true)
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("reqwest client");

        let mut last_err = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let mut child = launch(&dir, port, &accounts).expect("spawn azurite-blob");
            match wait_ready(&mut child, &client, port, &accounts[0].0).await {
                Ok(()) => {
                    // Azurite has read its certificate and keeps everything in memory: the
                    // directory is not needed any more, and a handle kept in a `static` (never
                    // dropped) must not leave it behind.
                    let _ = std::fs::remove_dir_all(&dir);
                    return Azurite {
                        child: Some(child),
                        port,
                        client,
                        accounts,
                        dir,
                    };
                }
                Err(e) => {
                    last_err = e;
                    kill_group(&mut child);
                }
            }
        }
        let log = std::fs::read_to_string(dir.join("azurite.log")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        panic!("Azurite did not become ready: {last_err}\n--- azurite output ---\n{log}");
    }

    /// "https://127.0.0.1:PORT" (origin).
    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// "/{account}"
    pub fn account_path(&self, account: &str) -> String {
        format!("/{account}")
    }

    /// The base64 shared key generated for `account`.
    pub fn account_key(&self, account: &str) -> Option<String> {
        self.accounts
            .iter()
            .find(|(a, _)| a == account)
            .map(|(_, k)| k.clone())
    }

    /// Process id of the node process (tests check it is gone after drop).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A reqwest client trusting the test CA (HTTPS only).
    pub fn client(&self) -> reqwest::Client {
        self.client.clone()
    }

    /// Sends one seeding request and returns its status and body. Seeding is idempotent (a
    /// container that exists is accepted, a blob is overwritten), so a request that got no
    /// response at all (the connection was reset or closed under it, seen in CI right after
    /// the readiness probe) is sent again on a new connection: up to three sends in all. A
    /// timeout is not retried (Azurite is hung; waiting again would only delay the failure).
    async fn seed(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: bytes::Bytes,
        what: &str,
    ) -> (u16, String) {
        let mut attempt = 1;
        loop {
            let mut req = self
                .client
                .request(method.clone(), url)
                .bearer_auth(storage_token(SEED_TENANT))
                .header("x-ms-version", X_MS_VERSION)
                .header("x-ms-date", http_date())
                .header("content-length", body.len().to_string());
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            match req.body(body.clone()).send().await {
                Ok(res) => {
                    let status = res.status().as_u16();
                    return (status, res.text().await.unwrap_or_default());
                }
                Err(e) if attempt < 3 && !e.is_timeout() => {
                    eprintln!("azurite: {what}: attempt {attempt} got no response ({e}); again");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{what}: {e:?}"),
            }
        }
    }

    pub async fn create_container(&self, account: &str, container: &str) {
        let url = format!(
            "{}/{account}/{container}?restype=container",
            self.endpoint()
        );
        let what = format!("create_container {account}/{container}");
        let (status, body) = self
            .seed(reqwest::Method::PUT, &url, &[], bytes::Bytes::new(), &what)
            .await;
        // Idempotent: tests share one Azurite and may create the same container twice.
        assert!(
            status == 201 || (status == 409 && body.contains("ContainerAlreadyExists")),
            "{what}: {status} {body}"
        );
    }

    /// Uploads a block blob. Up to [`MAX_SINGLE_PUT`] bytes in one Put Blob, larger bodies as
    /// Put Block (16 MiB each) + Put Block List.
    pub async fn put_blob(&self, account: &str, container: &str, blob: &str, data: &[u8]) {
        let url = format!(
            "{}/{account}/{container}/{}",
            self.endpoint(),
            encode_blob_path(blob)
        );
        let put = reqwest::Method::PUT;
        if data.len() <= MAX_SINGLE_PUT {
            let headers = [
                ("x-ms-blob-type", "BlockBlob"),
                ("content-type", "application/octet-stream"),
            ];
            let what = format!("put_blob {account}/{container}/{blob}");
            let (status, body) = self
                .seed(
                    put,
                    &url,
                    &headers,
                    bytes::Bytes::copy_from_slice(data),
                    &what,
                )
                .await;
            assert_eq!(status, 201, "{what}: {body}");
            return;
        }
        let mut ids = Vec::new();
        for (i, chunk) in data.chunks(BLOCK_SIZE).enumerate() {
            let id = base64::engine::general_purpose::STANDARD.encode(format!("block-{i:08}"));
            let block_url = format!(
                "{url}?comp=block&blockid={}",
                form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
            );
            let what = format!("put block {i} of {blob}");
            let chunk = bytes::Bytes::copy_from_slice(chunk);
            let (status, body) = self.seed(put.clone(), &block_url, &[], chunk, &what).await;
            assert_eq!(status, 201, "{what}: {body}");
            ids.push(id);
        }
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for id in &ids {
            xml.push_str(&format!("<Latest>{id}</Latest>"));
        }
        xml.push_str("</BlockList>");
        let headers = [("x-ms-blob-content-type", "application/octet-stream")];
        let what = format!("put block list of {blob}");
        let (status, body) = self
            .seed(
                put,
                &format!("{url}?comp=blocklist"),
                &headers,
                xml.into(),
                &what,
            )
            .await;
        assert_eq!(status, 201, "{what}: {body}");
    }
}

async fn wait_ready(
    child: &mut Child,
    client: &reqwest::Client,
    port: u16,
    account: &str,
) -> Result<(), String> {
    let timeout = Duration::from_secs(60);
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("azurite-blob exited early: {status}"));
        }
        let res = client
            .get(format!("https://127.0.0.1:{port}/{account}?comp=list"))
            .bearer_auth(storage_token(SEED_TENANT))
            .header("x-ms-version", X_MS_VERSION)
            .header("x-ms-date", http_date())
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        match res {
            // The body is read so that the probe's connection ends its exchange cleanly.
            Ok(r) if r.status().as_u16() == 200 => {
                let _ = r.bytes().await;
                return Ok(());
            }
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                return Err(format!("readiness probe answered {status}: {body}"));
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(format!("not answering after {timeout:?}: {e}")),
        }
    }
}

/// Percent-encodes a blob name for the URL path, keeping `/` as the segment separator.
pub fn encode_blob_path(blob: &str) -> String {
    blob.split('/')
        .map(|seg| {
            seg.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn launch(dir: &Path, port: u16, accounts: &[(String, String)]) -> io::Result<Child> {
    let log = std::fs::File::create(dir.join("azurite.log"))?;
    let mut cmd = Command::new(azurite_blob_bin());
    cmd.args([
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        &port.to_string(),
        "--oauth",
        "basic",
        "--cert",
    ])
    .arg(dir.join("cert.pem"))
    .arg("--key")
    .arg(dir.join("key.pem"))
    // No --location: Azurite refuses it together with --inMemoryPersistence; the working
    // directory is the per-instance temp dir in case anything is written anyway.
    .args(["--inMemoryPersistence", "--disableTelemetry", "--silent"])
    .current_dir(dir)
    .env(
        "AZURITE_ACCOUNTS",
        accounts
            .iter()
            .map(|(a, k)| format!("{a}:{k}"))
            .collect::<Vec<_>>()
            .join(";"),
    )
    .stdin(Stdio::null())
    .stdout(log.try_clone()?)
    .stderr(log);
    spawn_tied_to_process(cmd)
}
