//! Who the component is to a service: credentials as values (the managed identity from IMDS,
//! federated tokens from Entra), tokens and their claims, and the token cache over the
//! key-value store. Uses `config`, `net`, `wire`, `errors`.

pub(crate) mod cache;
pub(crate) mod context;
pub(crate) mod credential;
pub(crate) mod entra;
pub(crate) mod imds;
pub(crate) mod jwt;
pub(crate) mod store;
pub(crate) mod token;
