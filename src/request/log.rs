//! One structured JSON line per request on stderr. It names the route, caller key *name*,
//! resource, outcome, the configuration problem a caller was not told, and upstream request
//! ids — never the query string (it may carry `code`),
//! a token, a key or a secret value.

use crate::wire::typed_json;
use serde::Serialize;

/// One outbound attempt (the Spin transport records them as it makes them).
#[derive(Default, Serialize)]
pub(crate) struct Upstream {
    pub service: &'static str,
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub ms: u128,
}

/// The line's members are these fields, in this order, absent options left out (log queries
/// and the tests read them by these names).
#[derive(Default, Serialize)]
pub(crate) struct RequestLine {
    pub time: String,
    pub request_id: String,
    pub method: String,
    pub route: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// `same-tenant` or the tenant profile's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// What a problem's answer withheld from an unauthenticated caller (which variable is wrong
    /// and why; never a value), or why /api/healthz reports not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Set when a streamed body had to be abandoned after the status was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
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

impl RequestLine {
    /// One line of JSON; members in declaration order, absent options left out.
    pub(crate) fn to_json(&self) -> String {
        typed_json::to_string(self)
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
        assert_eq!(
            json,
            r#"{"time":"","request_id":"","method":"","route":"GetSecretSameTenant","status":200,"bytes":0,"duration_ms":0,"variable_lookups":0,"kv_reads":0,"kv_writes":0,"memory_kib":0,"upstream":[{"service":"Key Vault","host":"v","status":200,"ms":0}]}"#
        );
        assert!(!json.contains('\n'));
        assert!(json.contains(r#""service":"Key Vault""#));
        assert!(!json.contains("caller"));
    }
}
