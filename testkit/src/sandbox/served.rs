//! The component served inside the sandbox process: the testkit's Spin-like wasmtime host, with
//! the `host` feature. A build without it (`sandbox-fakes`, what `scripts/run-local` runs for
//! `spin up`) has no host, so there a [`Served`] cannot exist and `spin up` serves the component.

#[cfg(feature = "host")]
pub use with_host::{Served, TokenCache};
#[cfg(not(feature = "host"))]
pub use without_host::{Served, TokenCache};

/// Whether this build can serve the component itself.
pub const AVAILABLE: bool = cfg!(feature = "host");

/// Why a build without the host cannot serve the component, and what to run instead.
pub const UNAVAILABLE: &str = "this build of the sandbox has no component host (the testkit was \
built without its `host` feature): run it with --no-component and serve the component with \
`spin up`, or build the `sandbox` binary (default features) to serve it in the testkit host";

#[cfg(feature = "host")]
mod with_host {
    use std::net::SocketAddr;

    use anyhow::Context as _;

    use super::super::{Options, KV_STORE};
    use crate::host::{HostConfig, KvHandle, RunningHost};
    use crate::trust::pki::TestPki;
    use crate::world::Tenants;

    /// The component in the testkit host; dropping it stops the host.
    pub struct Served(RunningHost);

    /// The host's key-value data, where the component caches tokens.
    pub struct TokenCache(KvHandle);

    impl Served {
        pub async fn start(
            opts: &Options,
            vars: &[(String, String)],
            pki: &TestPki,
            tenants: &Tenants,
        ) -> anyhow::Result<Served> {
            let host = RunningHost::start(HostConfig {
                wasm: opts.wasm.clone(),
                manifest: opts.manifest.clone(),
                variables: vars.iter().cloned().collect(),
                ca_pem: Some(pki.ca_pem()),
                hosts: tenants.guest_hosts(),
                echo_logs: opts.echo_logs,
                ..HostConfig::default()
            })
            .await
            .context("starting the component in the testkit host")?;
            Ok(Served(host))
        }

        /// Where the host listens (a port of its own choosing; the sandbox forwards to it).
        pub fn addr(&self) -> anyhow::Result<SocketAddr> {
            self.0
                .base_url()
                .trim_start_matches("http://")
                .parse()
                .context("host address")
        }

        pub fn token_cache(&self) -> TokenCache {
            TokenCache(self.0.kv())
        }
    }

    impl TokenCache {
        /// Drops every cached entry; how many there were.
        pub fn clear(&self) -> usize {
            let keys = self.0.keys(KV_STORE);
            for k in &keys {
                self.0.delete(KV_STORE, k);
            }
            keys.len()
        }
    }
}

#[cfg(not(feature = "host"))]
mod without_host {
    use std::net::SocketAddr;

    use super::super::Options;
    use crate::trust::pki::TestPki;
    use crate::world::Tenants;

    /// No value: without the host nothing serves the component in this process.
    pub enum Served {}

    /// No value: the token cache belongs to `spin up`.
    pub enum TokenCache {}

    impl Served {
        pub async fn start(
            _opts: &Options,
            _vars: &[(String, String)],
            _pki: &TestPki,
            _tenants: &Tenants,
        ) -> anyhow::Result<Served> {
            anyhow::bail!("{}", super::UNAVAILABLE)
        }

        pub fn addr(&self) -> anyhow::Result<SocketAddr> {
            match *self {}
        }

        pub fn token_cache(&self) -> TokenCache {
            match *self {}
        }
    }

    impl TokenCache {
        pub fn clear(&self) -> usize {
            match *self {}
        }
    }
}
