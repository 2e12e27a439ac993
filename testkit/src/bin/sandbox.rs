//! `sandbox`: three fake Azure tenants on loopback, and tenant-bridge served against them in the
//! testkit's wasmtime host (feature `host`). `scripts/run-local` runs this when no `spin` CLI is
//! on PATH; docs/sandbox.md explains it.

fn main() -> std::process::ExitCode {
    tenant_bridge_testkit::sandbox::cli::main(tenant_bridge_testkit::sandbox::cli::Binary::Sandbox)
}
