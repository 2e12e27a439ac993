//! One structured JSON line per request on stderr. It names the route, caller key *name*,
//! resource, outcome, the configuration problem a caller was not told, and upstream request
//! ids — never the query string (it may carry `code`),
//! a token, a key or a secret value.

use crate::wire::json::{self, Object};

#[derive(Default)]
/// One outbound attempt (the Spin transport records them as it makes them).
pub(crate) struct Upstream {
    pub service: &'static str,
    pub host: String,
    pub status: Option<u16>,
    pub request_id: Option<String>,
    pub ms: u128,
}

#[derive(Default)]
pub(crate) struct RequestLine {
    pub time: String,
    pub request_id: String,
    pub method: String,
    pub route: String,
    pub caller: Option<String>,
    /// `same-tenant` or the tenant profile's name.
    pub tenant: Option<String>,
    pub resource: Option<String>,
    pub status: u16,
    pub code: Option<String>,
    /// What a problem's answer withheld from an unauthenticated caller (which variable is wrong
    /// and why; never a value), or why /api/healthz reports not ready.
    pub detail: Option<String>,
    /// Set when a streamed body had to be abandoned after the status was sent.
    pub aborted: Option<String>,
    pub bytes: u64,
    pub duration_ms: u128,
    /// Spin variable lookups and token-cache reads and writes of this request: what a warm
    /// request costs besides its one upstream call.
    pub variable_lookups: u32,
    pub kv_reads: u32,
    pub kv_writes: u32,
    /// The instance's linear memory when the line is written (it never shrinks): what a
    /// request, a blob relay included, cost in memory.
    pub memory_kib: u32,
    pub upstream: Vec<Upstream>,
}

impl Upstream {
    fn to_json(&self) -> String {
        Object::new()
            .str("service", self.service)
            .str("host", &self.host)
            .opt_num("status", self.status.map(u64::from))
            .opt_str("request_id", self.request_id.as_deref())
            .num("ms", self.ms)
            .finish()
    }
}

impl RequestLine {
    /// One line of JSON; members in declaration order, absent options left out.
    pub(crate) fn to_json(&self) -> String {
        Object::with_capacity(512)
            .str("time", &self.time)
            .str("request_id", &self.request_id)
            .str("method", &self.method)
            .str("route", &self.route)
            .opt_str("caller", self.caller.as_deref())
            .opt_str("tenant", self.tenant.as_deref())
            .opt_str("resource", self.resource.as_deref())
            .num("status", self.status)
            .opt_str("code", self.code.as_deref())
            .opt_str("detail", self.detail.as_deref())
            .opt_str("aborted", self.aborted.as_deref())
            .num("bytes", self.bytes)
            .num("duration_ms", self.duration_ms)
            .num("variable_lookups", self.variable_lookups)
            .num("kv_reads", self.kv_reads)
            .num("kv_writes", self.kv_writes)
            .num("memory_kib", self.memory_kib)
            .raw(
                "upstream",
                &json::array(self.upstream.iter().map(Upstream::to_json)),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_compactly_on_one_line() {
        let line = RequestLine {
            route: "GetSecretSameTenant".into(),
            status: 200,
            upstream: vec![Upstream {
                service: "Key Vault",
                host: "v".into(),
                status: Some(200),
                ..Default::default()
            }],
            ..Default::default()
        };
        let json = line.to_json();
        assert!(!json.contains('\n'));
        assert!(json.contains(r#""service":"Key Vault""#));
        assert!(!json.contains("caller"));
    }
}
