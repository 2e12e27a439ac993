//! Real programs the tests start and stop: Azurite, redis-server, the distribution registry, the
//! skopeo client, and a given `spin` (the benchmark's Spin mode).

pub mod azurite;
mod process;
pub mod redis;
pub mod registry;
pub mod skopeo;
pub mod spin;
