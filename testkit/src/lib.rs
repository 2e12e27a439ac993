//! Test-only support for tenant-bridge: see README.md for the contract.
//!
//! The `host` feature (default) adds the Spin-like wasmtime host. Without it the testkit is the
//! fakes, the Azurite launcher, the sandbox's fakes and Spin's file rules: what `spin up` needs
//! beside it, with no wasmtime to compile.

mod accept;
pub mod acr;
pub mod azurite;
pub mod connect_proxy;
pub mod entra;
pub mod front;
#[cfg(feature = "host")]
pub mod host;
pub mod http;
pub mod imds;
pub mod jwt;
pub mod keyvault;
pub mod login_server;
pub mod oci;
pub mod pki;
pub mod redis;
pub mod registry;
pub mod sandbox;
pub mod skopeo;
pub mod spin_rules;
pub mod storage_gate;
pub mod world;

/// Without the `host` feature: the host's manifest loader alone (plain Rust over `toml`), which
/// `spin_rules` uses to load `spin.toml` the way Spin does. The same files as the host's.
#[cfg(not(feature = "host"))]
pub mod host {
    // What the loader returns feeds the host, absent from this build: only its checks are used.
    #[allow(dead_code)]
    mod allowed;
    #[allow(dead_code)]
    mod manifest;
    #[allow(dead_code)]
    mod resolver;

    /// As `host::manifest_check` in the host build.
    pub fn manifest_check(
        text: &str,
        provided: &std::collections::HashMap<String, String>,
    ) -> anyhow::Result<()> {
        manifest::load_str(text, provided).map(|_| ())
    }
}
