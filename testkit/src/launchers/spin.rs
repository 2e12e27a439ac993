//! A given `spin` binary serving an application: `spin up --from MANIFEST --listen
//! 127.0.0.1:0 --runtime-config-file FILE …`, with the port read from its `Serving
//! http://127.0.0.1:PORT` line (Spin 3.6.3 binds first, then prints the bound address). The
//! binary is whatever the caller names: nothing here looks for one on PATH. Its stdout and
//! stderr (the components' stdio included) are kept in memory. Like the other launchers, the
//! process is tied to this one and killed with its group when dropped.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::process::{kill_group, spawn_tied_to_process};

/// The port of `spin up`'s `Serving http://127.0.0.1:PORT` line in `output`, once it is there.
pub fn serving_port(output: &str) -> Option<u16> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Serving http://"))
        .and_then(|addr| addr.rsplit_once(':'))
        .and_then(|(_, port)| port.trim().parse().ok())
}

/// `spin --version`'s line ("spin 3.6.3 (88d51cf1 2026-04-09)").
pub fn version(spin: &Path) -> anyhow::Result<String> {
    let out = Command::new(spin)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", spin.display()))?;
    if !out.status.success() {
        bail!("{} --version failed: {}", spin.display(), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// How to start one application.
#[derive(Clone, Copy)]
pub struct SpinApp<'a> {
    pub spin: &'a Path,
    pub manifest: &'a Path,
    pub runtime_config: &'a Path,
    /// `SPIN_VARIABLE_*` given to `spin up` (names as in spin.toml; upper-cased here).
    pub variables: &'a [(String, String)],
    /// `--key-value KEY=VALUE` pairs for the application's default store.
    pub key_values: &'a [(String, String)],
    /// `--log-dir`: where Spin writes the components' stdio besides its own output.
    pub log_dir: &'a Path,
}

/// A running `spin up`. Killed (with its process group) when dropped.
pub struct SpinUp {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    port: u16,
    started: Instant,
}

fn keep(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
            into.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
}

impl SpinUp {
    /// Starts `spin up` and waits (up to `timeout`) for its `Serving` line.
    pub fn start(app: &SpinApp, timeout: Duration) -> anyhow::Result<SpinUp> {
        let mut cmd = Command::new(app.spin);
        cmd.arg("up")
            .arg("--from")
            .arg(app.manifest)
            .args(["--listen", "127.0.0.1:0"])
            .arg("--runtime-config-file")
            .arg(app.runtime_config)
            .arg("--log-dir")
            .arg(app.log_dir);
        for (k, v) in app.key_values {
            cmd.arg("--key-value").arg(format!("{k}={v}"));
        }
        // Only the variables given: none of this process's SPIN_VARIABLE_*s leak in.
        for (k, _) in std::env::vars() {
            if k.starts_with("SPIN_VARIABLE_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in app.variables {
            cmd.env(format!("SPIN_VARIABLE_{}", k.to_ascii_uppercase()), v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = spawn_tied_to_process(cmd)
            .with_context(|| format!("starting {} up", app.spin.display()))?;
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        keep(child.stdout.take().expect("piped stdout"), stdout.clone());
        keep(child.stderr.take().expect("piped stderr"), stderr.clone());
        let deadline = started + timeout;
        let port = loop {
            if let Some(port) = serving_port(&stdout.lock().unwrap()) {
                break port;
            }
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                // Let the reader threads catch the last words.
                std::thread::sleep(Duration::from_millis(100));
                let why = match exited {
                    Some(status) => format!("exited ({status})"),
                    None => format!("did not serve within {timeout:?}"),
                };
                let (out, err) = (
                    stdout.lock().unwrap().clone(),
                    stderr.lock().unwrap().clone(),
                );
                kill_group(&mut child);
                bail!(
                    "spin up --from {} {why}\nstdout:\n{out}\nstderr:\n{err}",
                    app.manifest.display()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        Ok(SpinUp {
            child,
            stdout,
            stderr,
            port,
            started,
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// When `spin up` was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Spin's stderr: the components' stderr (their log lines) among Spin's own.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process that serves: `spin up` runs the trigger as a child (`spin trigger http`);
    /// that child's pid, or `spin up`'s own when it has none.
    pub fn serving_pid(&self) -> u32 {
        let pid = self.pid();
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()
            .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()))
            .unwrap_or(pid)
    }
}

impl Drop for SpinUp {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}
