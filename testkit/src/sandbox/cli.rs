//! The command line of the sandbox binaries: `sandbox` (fakes + the component in the testkit
//! host) and `sandbox-fakes` (fakes only, for `spin up`; built without the host, so a first
//! `scripts/run-local` with Spin compiles no wasmtime). Both take the same options.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use tokio::signal::unix::{signal, SignalKind};

use super::{Options, Sandbox, BREAKS};

/// Which binary is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    /// `sandbox`: serves the component itself unless told `--no-component`.
    Sandbox,
    /// `sandbox-fakes`: always `--no-component`; `spin up` serves the component.
    FakesOnly,
}

impl Binary {
    fn name(self) -> &'static str {
        match self {
            Binary::Sandbox => "sandbox",
            Binary::FakesOnly => "sandbox-fakes",
        }
    }
}

const OPTIONS: &str = "\
options:
  --listen ADDR       where the component answers (default 127.0.0.1:3000; PORT or HOST:PORT, loopback)
  --control ADDR      the control endpoint (default 127.0.0.1:3001; 0 = any free port)
  --no-component      start the fakes only, for `spin up` (scripts/run-local does this when spin is on PATH)
  --key KEY           the function key callers send in x-functions-key (default sandbox-local-key)
  --break NAME        start with a misconfiguration switched on (repeatable; see --list-breaks)
  --list-breaks       print the misconfigurations and exit
  --state-dir DIR     where the files go (default <repo>/.sandbox)
  --wasm PATH         the component (default <repo>/target/wasm32-wasip2/release/tenant_bridge.wasm)
  --manifest PATH     the spin.toml (default <repo>/spin.toml)
  --quiet             do not copy the component's log lines to stderr
  -h, --help          this text
";

fn usage(bin: Binary) -> String {
    let what = match bin {
        Binary::Sandbox => {
            "\
Starts fake IMDS, Entra ID and Key Vaults of three tenants plus Azurite on loopback, writes
.sandbox/ (CA, runtime-config.toml, env, hosts, sandbox.json) and serves the component
(target/wasm32-wasip2/release/tenant_bridge.wasm) in the testkit's Spin-like wasmtime host.
`sandbox-fakes` is the same without the host, for `spin up`."
        }
        Binary::FakesOnly => {
            "\
Starts fake IMDS, Entra ID and Key Vaults of three tenants plus Azurite on loopback and writes
.sandbox/ (CA, runtime-config.toml, env, hosts, sandbox.json) for `spin up` to serve the
component: this build has no component host (always --no-component; --wasm and --quiet have
nothing to act on). The `sandbox` binary serves the component itself."
        }
    };
    format!(
        "usage: {} [options]\n\n{what}\nCtrl-C or SIGTERM stops everything.\n\n{OPTIONS}",
        bin.name()
    )
}

fn parse(bin: Binary, args: Vec<String>) -> anyhow::Result<Option<Options>> {
    let mut opts = Options {
        serve_component: bin == Binary::Sandbox,
        ..Options::default()
    };
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
                print!("{}", usage(bin));
                return Ok(None);
            }
            "--list-breaks" => {
                for b in BREAKS {
                    println!("{:<26} {} {:<30} {}", b.name, b.status, b.code, b.azure);
                }
                return Ok(None);
            }
            "--listen" => opts.listen = super::parse_addr(&value()?)?,
            "--control" => opts.control = super::parse_addr(&value()?)?,
            "--no-component" => opts.serve_component = false,
            "--key" => opts.function_key = value()?,
            "--break" => {
                let name = value()?;
                let b = super::find_break(&name).with_context(|| {
                    let names: Vec<&str> = BREAKS.iter().map(|b| b.name).collect();
                    format!("--break {name}: unknown; one of {}", names.join(", "))
                })?;
                opts.breaks.push(b);
            }
            "--state-dir" => opts.state_dir = absolute(value()?)?,
            "--wasm" => opts.wasm = absolute(value()?)?,
            "--manifest" => opts.manifest = absolute(value()?)?,
            "--quiet" => opts.echo_logs = false,
            other => bail!("unknown argument '{other}'\n\n{}", usage(bin)),
        }
    }
    Ok(Some(opts))
}

fn absolute(p: String) -> anyhow::Result<PathBuf> {
    Ok(std::path::absolute(&p)?)
}

/// The binary's `main`: parses the process arguments, runs until a signal, stops everything.
pub fn main(bin: Binary) -> ExitCode {
    let name = bin.name();
    let opts = match parse(bin, std::env::args().skip(1).collect()) {
        Ok(Some(o)) => o,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
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
            eprintln!("{name}: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(run(name, opts));
    // Everything was stopped and awaited in `run`; idle worker threads need no waiting for.
    rt.shutdown_background();
    code
}

async fn run(name: &str, opts: Options) -> ExitCode {
    let (mut int, mut term, mut hup) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        _ => {
            eprintln!("{name}: cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    let serve_component = opts.serve_component;
    match serve_component {
        true => eprintln!("{name}: starting Azurite, the fakes and the component host…"),
        false => eprintln!(
            "{name}: starting Azurite and the fakes (the component is left to `spin up`)…"
        ),
    }
    let started = tokio::select! {
        s = Sandbox::start(opts) => s,
        _ = int.recv() => return stopped(name, "interrupted while starting"),
        _ = term.recv() => return stopped(name, "terminated while starting"),
        _ = hup.recv() => return stopped(name, "hung up while starting"),
    };
    let sandbox = match started {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{name}: {e:#}");
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
                "\n  sudo sh -c 'cat .sandbox/hosts >> /etc/hosts'   # once; the names are fake vaults\n"
            );
        }
    }
    let why = tokio::select! {
        _ = int.recv() => "interrupted",
        _ = term.recv() => "terminated",
        _ = hup.recv() => "hung up",
    };
    eprintln!("{name}: {why}, stopping…");
    sandbox.shutdown().await;
    eprintln!("{name}: stopped (Azurite and every port released)");
    ExitCode::SUCCESS
}

fn stopped(name: &str, why: &str) -> ExitCode {
    eprintln!("{name}: {why}; nothing left running");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_fakes_only_binary_never_serves_the_component() {
        let o = parse(Binary::FakesOnly, args(&["--listen", "4000"]))
            .unwrap()
            .unwrap();
        assert!(!o.serve_component);
        assert_eq!(o.listen.to_string(), "127.0.0.1:4000");
        let o = parse(Binary::Sandbox, args(&["--key=k1"]))
            .unwrap()
            .unwrap();
        assert!(o.serve_component);
        assert_eq!(o.function_key, "k1");
        let o = parse(Binary::Sandbox, args(&["--no-component"]))
            .unwrap()
            .unwrap();
        assert!(!o.serve_component);
    }

    #[test]
    fn unknown_arguments_and_breaks_are_refused() {
        let e = parse(Binary::Sandbox, args(&["--nope"])).unwrap_err();
        assert!(
            format!("{e}").starts_with("unknown argument '--nope'"),
            "{e}"
        );
        let e = parse(Binary::FakesOnly, args(&["--break", "nope"])).unwrap_err();
        assert!(format!("{e}").contains("one of app-not-provisioned"), "{e}");
    }
}
