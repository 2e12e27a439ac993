//! Test-only support for tenant-bridge: see README.md for the contract.

pub mod azurite;
pub mod entra;
pub mod host;
pub mod http;
pub mod imds;
pub mod jwt;
pub mod keyvault;
pub mod pki;
pub mod sandbox;
pub mod world;
