//! Test-only support for tenant-bridge: see README.md for the contract.
//!
//! The tree says what each part is; arrows point down this list only:
//!
//! - [`world`]: the two-tenant world the tests and the sandbox run in (ids, seeds, the fakes of
//!   each tenant started together).
//! - [`sandbox`]: that world served for people (`testkit/src/bin`).
//! - [`host`]: the Spin-like wasmtime host (feature `host`).
//! - [`spin_rules`]: Spin 3.6.3's rules for the files this project ships (runtime config,
//!   `spin.toml` with its `allowed_outbound_hosts` and variables, env files); the host loads
//!   through them.
//! - [`fakes`]: strict fakes of the Azure services (IMDS, Entra, Key Vault, ACR's token service
//!   and login server, Storage's token checks) and the fake-server machinery they share.
//! - [`launchers`]: real programs started for the tests (Azurite, Redis, the distribution
//!   registry, skopeo).
//! - [`net`]: listeners and fronts (accept loop, TLS front, CONNECT proxy).
//! - [`trust`]: the test CA, JWT signing and verifying, random ids.
//!
//! The `host` feature (default) adds the Spin-like wasmtime host. Without it the testkit is the
//! fakes, the launchers, the sandbox's fakes and Spin's file rules: what `spin up` needs beside
//! it, with no wasmtime to compile.

pub mod fakes;
#[cfg(feature = "host")]
pub mod host;
pub mod launchers;
pub mod net;
pub mod sandbox;
pub mod spin_rules;
pub mod trust;
pub mod world;
