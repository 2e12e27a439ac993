//! tenant-bridge: read Key Vault secrets, Blob Storage blobs and registry pull tokens in this
//! tenant or others, with a managed identity and no stored secret.
//!
//! Every decision (settings, authentication, validation, the token cache, the service
//! protocols, error mapping, the blob relay) lives in modules that build and test on the host
//! target; `edge` (handler, platform) is the Spin side and exist only in the WebAssembly build.
//! Modules are crate-private so the compiler finds dead code; [`fuzzing`] is the one door the
//! fuzz targets use.

// The layers, bottom to top (kept in this order, not sorted): a module uses only its own layer
// and the layers above it in this list.
mod wire;
// `Problem`: the failure vocabulary every layer speaks, and its one mapping to HTTP.
mod errors;
// Other hosts: transport, origins, clouds, clock, retries.
mod net;
// Typed settings from the Spin variables, rules, keys, Azure names.
mod config;
// Credentials, tokens, the token cache.
mod identity;
// Key Vault, Blob, the registry, behind the bearer-token policy.
mod services;
// One request from route to answer.
mod request;
// The Spin edge (WebAssembly only).
#[cfg(target_arch = "wasm32")]
mod edge;

#[doc(hidden)]
pub mod fuzzing;

#[cfg(test)]
mod layering;
