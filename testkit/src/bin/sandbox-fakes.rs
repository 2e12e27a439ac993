//! `sandbox-fakes`: the sandbox's fakes alone, for `spin up` to serve the component against.
//! `scripts/run-local` builds it with `--no-default-features` when a `spin` CLI is on PATH, so
//! that build compiles no wasmtime; docs/sandbox.md explains it.

fn main() -> std::process::ExitCode {
    tenant_bridge_testkit::sandbox::cli::main(
        tenant_bridge_testkit::sandbox::cli::Binary::FakesOnly,
    )
}
