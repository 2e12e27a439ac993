//! The real distribution registry: Debian's `docker-registry` (distribution 2.8), started as
//! `docker-registry serve config.yml` on a free loopback port with a temporary storage directory
//! and token authentication, the way ACR's registry half works:
//!
//! - `realm` = the login server's `/oauth2/token`, `service` = the login server's name;
//! - `issuer` and `rootcertbundle` = the token service's `iss` and signing certificate. Read off
//!   distribution's `registry/auth/token` (2.8.2): a token must be `Bearer`, its `iss` the
//!   issuer, its `aud` (a string in 2.8) the service, `exp`/`nbf` within 60 s of leeway, and its
//!   key found through the header — an `x5c` chain verified against the bundle (what this uses;
//!   2.8 and 3.x both check it), else a `jwk`, else a `kid` (libtrust fingerprint in 2.8, JWK
//!   thumbprint in 3.x); then every action the request needs must be in `access`;
//! - `relativeurls`, so upload locations work behind the HTTPS front.
//!
//! Missing binary: the start fails naming the package to install. The process gets its own
//! process group, dies with the test process (`PR_SET_PDEATHSIG`), and is killed on drop.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::launchers::process::{free_port, kill_group, spawn_tied_to_process};

/// How the registry authenticates.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// `https://<login server>[:port]/oauth2/token`
    pub realm: String,
    /// The login server's name (the tokens' `aud`).
    pub service: String,
    pub issuer: String,
    /// PEM of the certificate(s) token signers must chain to.
    pub root_cert_pem: String,
}

/// A running registry. Killed on drop.
pub struct Registry {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `docker-registry` executable, or a panic naming the package.
pub fn docker_registry_bin() -> PathBuf {
    find_on_path("docker-registry").unwrap_or_else(|| {
        panic!(
            "docker-registry is not installed: install the Debian package `docker-registry` \
             (apt-get install docker-registry); the registry tests need the real registry"
        )
    })
}

/// An executable named `name` on PATH (or in /usr/bin, /usr/sbin).
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn yaml_string(s: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    serde_json::to_string(s).expect("string")
}

fn write_config(dir: &Path, port: u16, cfg: &RegistryConfig) -> io::Result<PathBuf> {
    let bundle = dir.join("token-root.pem");
    std::fs::write(&bundle, &cfg.root_cert_pem)?;
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let text = format!(
        "version: 0.1\n\
         log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n  relativeurls: true\n  secret: {secret}\n\
         auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    \
         rootcertbundle: {bundle}\n",
        data = yaml_string(&data.to_string_lossy()),
        secret = yaml_string(&crate::trust::ids::random_hex(16)),
        realm = yaml_string(&cfg.realm),
        service = yaml_string(&cfg.service),
        issuer = yaml_string(&cfg.issuer),
        bundle = yaml_string(&bundle.to_string_lossy()),
    );
    let path = dir.join("config.yml");
    std::fs::write(&path, text)?;
    Ok(path)
}

fn launch(bin: &Path, dir: &Path, config: &Path) -> io::Result<Child> {
    let log = std::fs::File::create(dir.join("registry.log"))?;
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .arg(config)
        .current_dir(dir)
        .env_remove("REGISTRY_HTTP_ADDR")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    spawn_tied_to_process(cmd)
}

impl Registry {
    /// Starts the registry and waits until it answers `/v2/` with this configuration's
    /// challenge.
    pub async fn start(cfg: &RegistryConfig) -> Registry {
        let bin = docker_registry_bin();
        let dir = std::env::temp_dir().join(format!(
            "tenant-bridge-registry-{}-{}",
            std::process::id(),
            crate::trust::ids::random_hex(6)
        ));
        std::fs::create_dir_all(&dir).expect("registry temp dir");
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let config = write_config(&dir, port, cfg).expect("write registry config");
            let mut child = launch(&bin, &dir, &config).expect("spawn docker-registry");
            match wait_ready(&mut child, port, cfg).await {
                Ok(()) => {
                    return Registry {
                        child: Some(child),
                        port,
                        dir,
                    }
                }
                Err(e) => {
                    last_err = e;
                    kill_group(&mut child);
                }
            }
        }
        let log = std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        panic!("docker-registry did not become ready: {last_err}\n--- registry output ---\n{log}");
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// What the registry logged so far (why it refused a token, for failing tests).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }
}

async fn wait_ready(child: &mut Child, port: u16, cfg: &RegistryConfig) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let want = format!("Bearer realm=\"{}\",service=\"{}\"", cfg.realm, cfg.service);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("docker-registry exited early: {status}"));
        }
        match client
            .get(format!("http://127.0.0.1:{port}/v2/"))
            .send()
            .await
        {
            Ok(r) => {
                let challenge = r
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                return if r.status().as_u16() == 401 && challenge == want {
                    Ok(())
                } else {
                    Err(format!(
                        "/v2/ answered {} with challenge {challenge:?}, expected {want:?}",
                        r.status()
                    ))
                };
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(format!("not answering after 20 s: {e}")),
        }
    }
}
