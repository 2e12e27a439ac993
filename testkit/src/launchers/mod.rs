//! Real programs the tests start and stop: Azurite, redis-server, the distribution registry and
//! the skopeo client.

pub mod azurite;
mod process;
pub mod redis;
pub mod registry;
pub mod skopeo;
