//! Listening plumbing shared by the fakes, the host and the sandbox: the accept loop, a TLS
//! front for a plain-HTTP server, a CONNECT proxy.

pub(crate) mod accept;
pub mod connect_proxy;
pub mod front;
