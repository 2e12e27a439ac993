//! What a request's services share: the transport, the token cache, the common settings, the
//! clock, the request id and the deadline. Built once by the edge, passed down by reference.

use crate::config::settings::Common;
use crate::identity::cache::Cache;
use crate::net::clock::{Budget, Clock};
use crate::net::retry::Calls;
use crate::net::upstream::Transport;

pub(crate) struct Context<'a, T: Transport> {
    pub http: &'a T,
    pub cache: Cache<'a>,
    pub clock: &'a dyn Clock,
    pub common: &'a Common,
    /// `x-ms-client-request-id` of every service call of this request, and the cache's lease
    /// owner.
    pub request_id: &'a str,
    pub budget: Budget,
}

impl<T: Transport> Context<'_, T> {
    /// Unix seconds now.
    pub(crate) fn now(&self) -> u64 {
        self.clock.unix()
    }

    /// What a retried service call needs of this request.
    pub(crate) fn calls(&self) -> Calls<'_, T> {
        Calls {
            http: self.http,
            clock: self.clock,
            budget: self.budget,
            request_id: self.request_id,
        }
    }
}
