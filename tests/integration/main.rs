//! The integration tests: the compiled component in the testkit's Spin-like wasmtime host,
//! against strict fakes and a real Azurite (`tenant_bridge_testkit::world::suite`), plus the
//! sandbox and the Spin files the project ships. One binary: wasmtime is linked once, and the
//! CA, the signing keys and Azurite are started once for all of its tests. Each module is one
//! subject; a test is named `module::test`, e.g. `cargo test --test integration -- faults::`.
//!
//! The load tests are a binary of their own (`tests/load.rs`): they saturate both cores by
//! design and must run alone.

mod acr;
mod cross_tenant;
mod faults;
mod refusals;
mod same_tenant;
mod sandbox;
mod security;
mod spin_files;
mod tenants;
