//! The Spin edge (WebAssembly only): the HTTP handler and the platform behind the ports the
//! layers below define (outbound HTTP, key-value, variables, clock, log sink). Moves bytes and
//! decides nothing.

pub(crate) mod handler;
pub(crate) mod platform;
