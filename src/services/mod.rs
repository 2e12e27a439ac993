//! The Azure services a request reaches, each through the one bearer-token policy: Key Vault,
//! Blob Storage (with the streaming relay) and the registry. Uses `identity` and below.

pub(crate) mod acr;
pub(crate) mod bearer;
pub(crate) mod blob;
pub(crate) mod keyvault;
pub(crate) mod relay;
