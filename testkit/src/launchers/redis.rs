//! A real `redis-server` (the Debian `redis-server` package) for the host's `type = "redis"`
//! stores: loopback only, on a free port, no persistence (no RDB snapshots, no AOF), working
//! directory in a temp dir, killed when the handle is dropped (and when the test process dies:
//! `PR_SET_PDEATHSIG`, as Azurite).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::launchers::process::{free_port, kill_group, spawn_tied_to_process};

const BINARY: &str = "redis-server";
const MISSING: &str = "redis-server is not installed: install the redis-server package \
                       (apt-get install redis-server)";

pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    /// Its working directory and log, removed when the handle drops.
    _dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }
}

impl RedisServer {
    /// Starts a fresh, empty server and waits until it answers `PING`. Fails naming the
    /// package when the binary is missing.
    pub fn start() -> anyhow::Result<RedisServer> {
        let dir = tempfile::Builder::new()
            .prefix("testkit-redis-")
            .tempdir()
            .context("temp dir for redis-server")?;
        // The port is free when chosen but may be taken before redis binds it: retry.
        let mut last = None;
        for _ in 0..3 {
            let port = free_port();
            let mut child = launch(dir.path(), port)?;
            match wait_ready(&mut child, port, dir.path()) {
                Ok(()) => {
                    return Ok(RedisServer {
                        child: Some(child),
                        port,
                        _dir: dir,
                    })
                }
                Err(e) => {
                    kill_group(&mut child);
                    last = Some(e);
                }
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// `redis://127.0.0.1:PORT` (what a runtime config's `url` takes).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

fn launch(dir: &std::path::Path, port: u16) -> anyhow::Result<Child> {
    let mut cmd = Command::new(BINARY);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        // No persistence: nothing outlives the handle.
        .args(["--save", "", "--appendonly", "no"])
        .args(["--protected-mode", "yes", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match spawn_tied_to_process(cmd) {
        Ok(child) => Ok(child),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(MISSING),
        Err(e) => Err(e).context("starting redis-server"),
    }
}

fn wait_ready(child: &mut Child, port: u16, dir: &std::path::Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
            bail!("redis-server exited ({status}) on port {port}:\n{log}");
        }
        if ping(port) {
            // The port was free when chosen, but another redis-server may have been given it
            // since (ours then exits on EADDRINUSE): ready means ours answers.
            let theirs = process_id(port);
            if theirs == Some(child.id()) {
                return Ok(());
            }
            bail!(
                "port {port} answers PING from redis-server pid {theirs:?}, not ours ({})",
                child.id()
            );
        }
        if Instant::now() > deadline {
            bail!("redis-server did not answer PING on port {port} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// The `process_id` of the redis-server answering on `port` (`INFO server`).
fn process_id(port: u16) -> Option<u32> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    s.write_all(b"INFO server\r\n").ok()?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    // A bulk string: `$<len>\r\n<text>\r\n`; read until process_id's line is complete.
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply);
        if let Some(rest) = text.split("process_id:").nth(1) {
            if let Some((pid, _)) = rest.split_once("\r\n") {
                return pid.trim().parse().ok();
            }
        }
    }
    None
}
