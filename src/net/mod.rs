//! Talking to other hosts: the transport seam, origins, the clouds and their hosts, the clock
//! and deadlines, retries. Uses only `wire` and `errors`.

pub(crate) mod clock;
pub(crate) mod cloud;
pub(crate) mod origin;
pub(crate) mod retry;
pub(crate) mod upstream;
