//! The real registry client `skopeo` (Debian package), run against a test login server. Go reads
//! only /etc/hosts, so it reaches the login server's name through the testkit's CONNECT proxy
//! (`HTTPS_PROXY`), and trusts the test CA through `--cert-dir`. It runs with an empty
//! environment and a private HOME, so no credentials or registries.conf of the machine's user
//! take part. A missing binary fails naming the package.

use std::path::PathBuf;
use std::process::Command;

use crate::launchers::registry::find_on_path;

/// The `skopeo` executable, or a panic naming the package.
pub fn skopeo_bin() -> PathBuf {
    find_on_path("skopeo").unwrap_or_else(|| {
        panic!(
            "skopeo is not installed: install the Debian package `skopeo` (apt-get install \
             skopeo); the registry tests pull with the real client"
        )
    })
}

/// How skopeo presents credentials.
#[derive(Clone, Copy, Debug)]
pub enum Creds<'a> {
    /// `--creds USER:PASSWORD` (Basic authentication at the token realm, like `docker login`).
    Password { user: &'a str, password: &'a str },
    /// `--registry-token TOKEN` (a bearer token sent to the registry as is).
    Bearer(&'a str),
    /// `--no-creds`.
    Anonymous,
}

/// What one run printed.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout as JSON (what `inspect` prints on success).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "skopeo printed no JSON ({e}): {}\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A skopeo set up for one login server.
pub struct Skopeo {
    bin: PathBuf,
    home: PathBuf,
    proxy_url: String,
}

impl Drop for Skopeo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

impl Skopeo {
    /// Trusts `ca_pem` and tunnels through the CONNECT proxy at `proxy_url`.
    pub fn new(ca_pem: &str, proxy_url: &str) -> Skopeo {
        let bin = skopeo_bin();
        let home = std::env::temp_dir().join(format!(
            "tenant-bridge-skopeo-{}-{}",
            std::process::id(),
            crate::trust::ids::random_hex(6)
        ));
        std::fs::create_dir_all(home.join("certs")).expect("skopeo cert dir");
        std::fs::create_dir_all(home.join("run")).expect("skopeo runtime dir");
        std::fs::write(home.join("certs/ca.crt"), ca_pem).expect("write ca.crt");
        Skopeo {
            bin,
            home,
            proxy_url: proxy_url.to_string(),
        }
    }

    /// skopeo with this instance's home, trust and proxy, and nothing else of the environment.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("XDG_RUNTIME_DIR", self.home.join("run"))
            .env("XDG_CONFIG_HOME", self.home.join("config"))
            .env("HTTPS_PROXY", &self.proxy_url)
            .env("https_proxy", &self.proxy_url)
            .env("NO_PROXY", "")
            .env("no_proxy", "")
            .args(["--command-timeout", "60s"]);
        cmd
    }

    fn run(mut cmd: Command) -> Run {
        let out = cmd.output().expect("run skopeo");
        Run {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `skopeo inspect --no-tags` of `image` (`host:port/name:tag`). Blocks until skopeo exits.
    /// `--no-tags`: listing tags needs ACR's `metadata_read`, which a pull token does not carry;
    /// inspecting reads the manifest and the config blob, as a pull starts.
    pub fn inspect(&self, image: &str, creds: Creds) -> Run {
        let mut cmd = self.command();
        cmd.args(["inspect", "--no-tags", "--cert-dir"])
            .arg(self.home.join("certs"));
        match creds {
            Creds::Password { user, password } => {
                cmd.arg("--creds").arg(format!("{user}:{password}"));
            }
            Creds::Bearer(token) => {
                cmd.arg("--registry-token").arg(token);
            }
            Creds::Anonymous => {
                cmd.arg("--no-creds");
            }
        }
        cmd.arg(format!("docker://{image}"));
        Self::run(cmd)
    }

    /// `skopeo copy` of `image` into the directory `dest` (the `dir:` transport): the whole pull,
    /// manifest, config and every layer, each checked against its digest by skopeo. `dest` then
    /// holds `manifest.json` and each blob under its digest's hex.
    pub fn copy(&self, image: &str, creds: Creds, dest: &std::path::Path) -> Run {
        let mut cmd = self.command();
        cmd.args(["copy", "--src-cert-dir"])
            .arg(self.home.join("certs"));
        match creds {
            Creds::Password { user, password } => {
                cmd.arg("--src-creds").arg(format!("{user}:{password}"));
            }
            Creds::Bearer(token) => {
                cmd.arg("--src-registry-token").arg(token);
            }
            Creds::Anonymous => {
                cmd.arg("--src-no-creds");
            }
        }
        cmd.arg(format!("docker://{image}"))
            .arg(format!("dir:{}", dest.display()));
        Self::run(cmd)
    }
}
