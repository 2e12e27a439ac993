//! tenant-bridge: read Key Vault secrets, Blob Storage blobs and registry pull tokens in this
//! tenant or others, with a managed identity and no stored secret.
//!
//! Every decision (settings, authentication, validation, the token cache, the service
//! protocols, error mapping, the blob relay) lives in modules that build and test on the host
//! target; `platform` and `handler` are the Spin edge and exist only in the WebAssembly build.
//! Modules are crate-private so the compiler finds dead code; [`fuzzing`] is the one door the
//! fuzz targets use.

mod access;
mod acr;
mod app;
mod auth;
mod authorize;
mod base64_stream;
mod blob;
mod cache;
mod clock;
mod cloud;
mod context;
mod credential;
mod entra;
mod errors;
mod health;
mod imds;
mod input;
mod json;
mod jwt;
mod keyvault;
mod log;
mod origin;
mod relay;
mod retry;
mod routes;
mod settings;
mod store;
mod timefmt;
mod token;
mod upstream;
mod urlenc;

#[doc(hidden)]
pub mod fuzzing;

#[cfg(target_arch = "wasm32")]
mod handler;
#[cfg(target_arch = "wasm32")]
mod platform;
