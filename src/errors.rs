//! Failures: every one is a [`Problem`], spoken by every layer; `request::answer` turns it into
//! HTTP.
//!
//! A problem has an HTTP status, a stable machine `code` (callers and runbooks
//! branch on it), a short title and a `detail` an operator can act on. Bodies follow RFC 9457
//! (`application/problem+json`). Details never carry tokens, keys, secret values or configured
//! values a caller should not see: they are built from variable *names*, names the caller sent,
//! and upstream error *codes*.

use crate::wire::typed_json;
use http::StatusCode;
use serde::Serialize;
use std::borrow::Cow;

pub(crate) const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";
/// The detail of a problem withheld from an unauthenticated caller.
pub(crate) const WITHHELD_DETAIL: &str =
    "the configuration is incomplete or invalid; this request's log line says what to fix";
/// Longest `Retry-After` passed on to a caller: a service's hint of an hour is not ours to give.
pub(crate) const MAX_RETRY_AFTER: u64 = 120;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub title: Cow<'static, str>,
    pub detail: String,
    /// Seconds for a `Retry-After` header (503 throttling).
    pub retry_after: Option<u64>,
    /// The detail an anonymous caller must not read (see [`Problem::withheld`]): written to the
    /// request's log line only.
    pub log_detail: Option<String>,
}

impl Problem {
    pub(crate) fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        title: impl Into<Cow<'static, str>>,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            status,
            code: code.into(),
            title: title.into(),
            detail: detail.into(),
            retry_after: None,
            log_detail: None,
        }
    }

    /// This problem for a caller who has not been authenticated: the status and code stay, the
    /// detail (which may name a caller key or a profile) moves to the log line.
    pub(crate) fn withheld(mut self) -> Self {
        let detail = std::mem::replace(&mut self.detail, WITHHELD_DETAIL.to_string());
        self.log_detail = Some(detail);
        self
    }

    pub(crate) fn with_code(mut self, code: &'static str) -> Self {
        self.code = code.into();
        self
    }

    pub(crate) fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.clamp(1, MAX_RETRY_AFTER));
        self
    }

    // ---- caller mistakes (4xx) -------------------------------------------------------------

    pub(crate) fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, "Bad request", detail)
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", "")
    }

    pub(crate) fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "access-denied", "Forbidden", detail)
    }

    pub(crate) fn route_not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "route-not-found",
            "No such endpoint",
            format!(
                "no endpoint at {}; the endpoints are /api/GetSecretSameTenant, /api/GetSecretCrossTenant, \
                 /api/DownloadBlobSameTenant, /api/DownloadBlobCrossTenant and /api/acr/token",
                truncate(path, 100)
            ),
        )
    }

    pub(crate) fn method_not_allowed(method: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            format!("{} is not supported; use GET", truncate(method, 20)),
        )
    }

    // ---- our own configuration (500) ---------------------------------------------------------

    /// A setting (a member of the `settings` variable's JSON) holds something unusable. `why`
    /// must not repeat the value.
    pub(crate) fn setting(name: &str, why: impl std::fmt::Display) -> Self {
        Self::invalid(format!(
            "setting '{name}' (in the Spin variable 'settings'): {why}"
        ))
    }

    /// A Spin variable of its own (`function_keys`, `settings` itself) holds something
    /// unusable. `why` must not repeat the value.
    pub(crate) fn variable(name: &str, why: impl std::fmt::Display) -> Self {
        Self::invalid(format!("Spin variable '{name}': {why}"))
    }

    fn invalid(detail: String) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "configuration-invalid",
            "Configuration error",
            detail,
        )
    }

    /// A setting the request needs is absent from the `settings` variable.
    pub(crate) fn setting_missing(name: &str, what: &str) -> Self {
        Self::missing(format!(
            "setting '{name}' is not set: {what} (add \"{name}\" to the JSON object in the Spin \
             variable 'settings': SPIN_VARIABLE_SETTINGS or a SpinApp variable)"
        ))
    }

    /// A Spin variable of its own the request needs is not set.
    pub(crate) fn variable_missing(name: &str, what: &str) -> Self {
        Self::missing(format!(
            "Spin variable '{name}' is not set: {what} (set it with SPIN_VARIABLE_{} or a SpinApp \
             variable)",
            name.to_ascii_uppercase()
        ))
    }

    fn missing(detail: String) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "configuration-missing",
            "Configuration error",
            detail,
        )
    }

    // ---- upstream outcomes --------------------------------------------------------------------

    pub(crate) fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, "Not found", detail)
    }

    /// An upstream service refused our identity or failed in a way the operator must fix.
    pub(crate) fn upstream(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            code,
            "Upstream refused or failed",
            detail,
        )
    }

    pub(crate) fn unavailable(code: &'static str, detail: impl Into<String>, retry: u64) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code,
            "Upstream unavailable",
            detail,
        )
        .with_retry_after(retry)
    }

    pub(crate) fn throttled(service: &str, retry_after: u64) -> Self {
        let retry_after = retry_after.clamp(1, MAX_RETRY_AFTER);
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream-throttled",
            "Upstream throttled",
            format!("{service} is throttling requests; retry after {retry_after} s"),
        )
        .with_retry_after(retry_after)
    }

    pub(crate) fn timeout(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream-timeout",
            "Upstream timed out",
            detail,
        )
    }

    /// The JSON body.
    pub(crate) fn body(&self) -> Vec<u8> {
        ProblemBody::new(&self.code, &self.title, self.status.as_u16(), &self.detail).to_json()
    }
}

/// An RFC 9457 body: these members, in this order (clients and tests read them so).
#[derive(Serialize)]
pub(crate) struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    code: &'a str,
    detail: &'a str,
}

impl<'a> ProblemBody<'a> {
    pub(crate) fn new(code: &'a str, title: &'a str, status: u16, detail: &'a str) -> Self {
        ProblemBody {
            kind: format!("urn:tenant-bridge:problem:{code}"),
            title,
            status,
            code,
            detail,
        }
    }

    pub(crate) fn to_json(&self) -> Vec<u8> {
        typed_json::to_string(self).into_bytes()
    }
}

/// Cuts caller-controlled text that is echoed in a detail, so bodies and logs stay bounded.
pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
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
        let body = p.body();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"type":"urn:tenant-bridge:problem:secret-not-found","title":"Not found","status":404,"code":"secret-not-found","detail":"no secret 'x' in https://v.vault.azure.net"}"#
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], 404);
        assert_eq!(v["code"], "secret-not-found");
        assert_eq!(v["type"], "urn:tenant-bridge:problem:secret-not-found");
        assert_eq!(v["title"], "Not found");
        assert!(v["detail"].as_str().unwrap().contains("no secret"));
    }

    #[test]
    fn missing_settings_and_variables_say_where_they_are_set() {
        let p = Problem::setting_missing("keyvault_endpoint", "the same-tenant vault URL");
        assert_eq!(p.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(p.detail.contains("\"keyvault_endpoint\""));
        assert!(p.detail.contains("SPIN_VARIABLE_SETTINGS"));
        let p = Problem::variable_missing("function_keys", "no key");
        assert!(
            p.detail.contains("SPIN_VARIABLE_FUNCTION_KEYS"),
            "{}",
            p.detail
        );
    }

    #[test]
    fn a_withheld_detail_goes_to_the_log_only() {
        let p = Problem::variable("function_keys", "key 'ops' (entry 2) is too short").withheld();
        assert_eq!(
            (p.status.as_u16(), &*p.code),
            (500, "configuration-invalid")
        );
        let body = String::from_utf8(p.body()).unwrap();
        assert!(
            !body.contains("ops") && !body.contains("function_keys"),
            "{body}"
        );
        assert!(p.log_detail.unwrap().contains("'ops'"));
    }

    #[test]
    fn truncate_bounds_echoed_text() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abcdef", 3), "abc…");
    }
}
