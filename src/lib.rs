//! tenant-bridge: read Key Vault secrets and Blob Storage blobs in this tenant or another one,
//! with a managed identity and no stored secret.
//!
//! The pure logic (configuration, authentication, validation, service protocols, error mapping)
//! lives in modules that build and test on the host target; `platform` and `handler` are the
//! Spin edge and exist only in the WebAssembly build.

pub mod access;
pub mod auth;
pub mod base64_stream;
pub mod blob;
pub mod config;
pub mod entra;
pub mod errors;
pub mod identity;
pub mod imds;
pub mod input;
pub mod jwt;
pub mod keyvault;
pub mod log;
pub mod retry;
pub mod routes;
pub mod timefmt;
pub mod upstream;

#[cfg(target_arch = "wasm32")]
mod handler;
#[cfg(target_arch = "wasm32")]
mod platform;
