//! One structured JSON line per request on stderr. It names the route, caller key *name*,
//! resource, outcome and upstream request ids — never the query string (it may carry `code`),
//! a token, a key or a secret value.

use serde::Serialize;

#[derive(Serialize, Default)]
pub struct Upstream {
    pub service: &'static str,
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub ms: u128,
}

#[derive(Serialize, Default)]
pub struct RequestLine {
    pub time: String,
    pub request_id: String,
    pub method: String,
    pub route: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    /// Set when a streamed body had to be abandoned after the status was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aborted: Option<String>,
    pub bytes: u64,
    pub duration_ms: u128,
    pub upstream: Vec<Upstream>,
}

impl RequestLine {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
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
