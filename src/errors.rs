//! The one place where failures become HTTP answers.
//!
//! Every failure is a [`Problem`]: an HTTP status, a stable machine `code` (callers and runbooks
//! branch on it), a short title and a `detail` an operator can act on. Bodies follow RFC 9457
//! (`application/problem+json`). Details never carry tokens, keys or secret values: they are built
//! only from configuration values, names the caller sent, and upstream error *codes*.

use serde::Serialize;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: u16,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// Seconds for a `Retry-After` header (503 throttling).
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    code: &'a str,
    detail: &'a str,
}

impl Problem {
    pub fn new(
        status: u16,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            status,
            code,
            title,
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    // ---- caller mistakes (4xx) -------------------------------------------------------------

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(400, code, "Bad request", detail)
    }

    pub fn route_not_found(path: &str) -> Self {
        Self::new(
            404,
            "route-not-found",
            "No such endpoint",
            format!(
                "no endpoint at {}; the endpoints are /api/GetSecretSameTenant, /api/GetSecretCrossTenant, \
                 /api/DownloadBlobSameTenant and /api/DownloadBlobCrossTenant",
                truncate(path, 100)
            ),
        )
    }

    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            405,
            "method-not-allowed",
            "Method not allowed",
            format!("{} is not supported; use GET", truncate(method, 20)),
        )
    }

    // ---- our own configuration (500) ---------------------------------------------------------

    pub fn config(variable: &str, detail: impl std::fmt::Display) -> Self {
        Self::new(
            500,
            "configuration-invalid",
            "Configuration error",
            format!("Spin variable '{variable}': {detail}"),
        )
    }

    pub fn config_missing(variable: &str, what: &str) -> Self {
        Self::new(
            500,
            "configuration-missing",
            "Configuration error",
            format!(
                "Spin variable '{variable}' is not set: {what} (set it in spin.toml, with \
                 SPIN_VARIABLE_{} or a SpinApp variable)",
                variable.to_ascii_uppercase()
            ),
        )
    }

    // ---- upstream outcomes --------------------------------------------------------------------

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(404, code, "Not found", detail)
    }

    /// An upstream service refused our identity or failed in a way the operator must fix.
    pub fn upstream(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(502, code, "Upstream refused or failed", detail)
    }

    pub fn throttled(service: &str, retry_after: u64) -> Self {
        Self::new(
            503,
            "upstream-throttled",
            "Upstream throttled",
            format!("{service} is throttling requests; retry after {retry_after} s"),
        )
        .with_retry_after(retry_after)
    }

    pub fn timeout(detail: impl Into<String>) -> Self {
        Self::new(504, "upstream-timeout", "Upstream timed out", detail)
    }

    /// The JSON body. Serialisation of these plain fields cannot fail.
    pub fn body(&self) -> Vec<u8> {
        let body = Body {
            kind: format!("urn:tenant-bridge:problem:{}", self.code),
            title: self.title,
            status: self.status,
            code: self.code,
            detail: &self.detail,
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

/// Cuts caller-controlled text that is echoed in a detail, so bodies and logs stay bounded.
pub fn truncate(text: &str, max_chars: usize) -> String {
    let mut out: String = text.chars().take(max_chars).collect();
    if text.chars().count() > max_chars {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_rfc9457_with_stable_code() {
        let p = Problem::not_found(
            "secret-not-found",
            "no secret 'x' in https://v.vault.azure.net",
        );
        let v: serde_json::Value = serde_json::from_slice(&p.body()).unwrap();
        assert_eq!(v["status"], 404);
        assert_eq!(v["code"], "secret-not-found");
        assert_eq!(v["type"], "urn:tenant-bridge:problem:secret-not-found");
        assert_eq!(v["title"], "Not found");
        assert!(v["detail"].as_str().unwrap().contains("no secret"));
    }

    #[test]
    fn config_missing_names_the_variable_and_env_form() {
        let p = Problem::config_missing("keyvault_endpoint", "the same-tenant vault URL");
        assert_eq!(p.status, 500);
        assert!(p.detail.contains("'keyvault_endpoint'"));
        assert!(p.detail.contains("SPIN_VARIABLE_KEYVAULT_ENDPOINT"));
    }

    #[test]
    fn throttled_carries_retry_after() {
        let p = Problem::throttled("Key Vault", 7);
        assert_eq!((p.status, p.retry_after), (503, Some(7)));
    }

    #[test]
    fn truncate_bounds_echoed_text() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abcdef", 3), "abc…");
    }
}
