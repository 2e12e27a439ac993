//! `sandbox`: two fake Azure tenants on loopback, and tenant-bridge served against them.
//! `scripts/run-local` builds the component and runs this; docs/sandbox.md explains it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use tenant_bridge_testkit::sandbox::{self, Options, Sandbox, BREAKS};
use tokio::signal::unix::{signal, SignalKind};

const USAGE: &str = "\
usage: sandbox [options]

Starts fake IMDS, Entra ID and Key Vaults of two tenants plus Azurite on loopback, writes
.sandbox/ (CA, runtime-config.toml, env, hosts, sandbox.json) and serves the component
(target/wasm32-wasip2/release/tenant_bridge.wasm) in the testkit's Spin-like wasmtime host.
Ctrl-C or SIGTERM stops everything.

options:
  --listen ADDR       where the component answers (default 127.0.0.1:3000; PORT or HOST:PORT, loopback)
  --control ADDR      the control endpoint (default 127.0.0.1:3001; 0 = any free port)
  --no-component      start the fakes only, for `spin up` (scripts/run-local does this when spin is on PATH)
  --key KEY           the function key callers send in x-functions-key (default sandbox-key)
  --break NAME        start with a misconfiguration switched on (repeatable; see --list-breaks)
  --list-breaks       print the misconfigurations and exit
  --state-dir DIR     where the files go (default <repo>/.sandbox)
  --wasm PATH         the component (default <repo>/target/wasm32-wasip2/release/tenant_bridge.wasm)
  --manifest PATH     the spin.toml (default <repo>/spin.toml)
  --quiet             do not copy the component's log lines to stderr
  -h, --help          this text
";

fn parse(args: Vec<String>) -> anyhow::Result<Option<Options>> {
    let mut opts = Options::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || -> anyhow::Result<String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().with_context(|| format!("{flag} needs a value")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            "--list-breaks" => {
                for b in BREAKS {
                    println!("{:<26} {} {:<30} {}", b.name, b.status, b.code, b.azure);
                }
                return Ok(None);
            }
            "--listen" => opts.listen = sandbox::parse_addr(&value()?)?,
            "--control" => opts.control = sandbox::parse_addr(&value()?)?,
            "--no-component" => opts.serve_component = false,
            "--key" => opts.function_key = value()?,
            "--break" => {
                let name = value()?;
                let b = sandbox::find_break(&name).with_context(|| {
                    let names: Vec<&str> = BREAKS.iter().map(|b| b.name).collect();
                    format!("--break {name}: unknown; one of {}", names.join(", "))
                })?;
                opts.breaks.push(b);
            }
            "--state-dir" => opts.state_dir = absolute(value()?)?,
            "--wasm" => opts.wasm = absolute(value()?)?,
            "--manifest" => opts.manifest = absolute(value()?)?,
            "--quiet" => opts.echo_logs = false,
            other => bail!("unknown argument '{other}'\n\n{USAGE}"),
        }
    }
    Ok(Some(opts))
}

fn absolute(p: String) -> anyhow::Result<PathBuf> {
    Ok(std::path::absolute(&p)?)
}

fn main() -> ExitCode {
    let opts = match parse(std::env::args().skip(1).collect()) {
        Ok(Some(o)) => o,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sandbox: {e:#}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sandbox: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(run(opts));
    // Everything was stopped and awaited in `run`; idle worker threads need no waiting for.
    rt.shutdown_background();
    code
}

async fn run(opts: Options) -> ExitCode {
    let (mut int, mut term, mut hup) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        _ => {
            eprintln!("sandbox: cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    let serve_component = opts.serve_component;
    eprintln!("sandbox: starting Azurite, the fakes and the component host…");
    let started = tokio::select! {
        s = Sandbox::start(opts) => s,
        _ = int.recv() => return stopped("interrupted while starting"),
        _ = term.recv() => return stopped("terminated while starting"),
        _ = hup.recv() => return stopped("hung up while starting"),
    };
    let sandbox = match started {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sandbox: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", sandbox.summary());
    if !serve_component {
        let missing = sandbox.missing_etc_hosts();
        if !missing.is_empty() {
            println!(
                "`spin up` resolves names through the system: the vaults need these /etc/hosts lines\n\
                 (Key Vault's challenge names https://vault.azure.net, so a vault must be reached as *.vault.azure.net):\n"
            );
            for line in sandbox.hosts_lines() {
                println!("  {line}");
            }
            println!(
                "\n  sudo sh -c 'cat .sandbox/hosts >> /etc/hosts'   # once; both names are fake vaults\n"
            );
        }
    }
    let why = tokio::select! {
        _ = int.recv() => "interrupted",
        _ = term.recv() => "terminated",
        _ = hup.recv() => "hung up",
    };
    eprintln!("sandbox: {why}, stopping…");
    sandbox.shutdown().await;
    eprintln!("sandbox: stopped (Azurite and every port released)");
    ExitCode::SUCCESS
}

fn stopped(why: &str) -> ExitCode {
    eprintln!("sandbox: {why}; nothing left running");
    ExitCode::SUCCESS
}
