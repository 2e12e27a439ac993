//! A complete answer (status, headers, body), and how a [`Problem`] becomes one: the one place
//! where failures become HTTP.

use crate::errors::{Problem, MAX_RETRY_AFTER, PROBLEM_CONTENT_TYPE};
use http::StatusCode;

/// A complete answer: status, headers, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Headers on every answer that carries a secret, a blob, a token or a problem: never cached,
/// never sniffed.
pub(crate) fn sensitive_headers(content_type: &str) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", content_type.to_string()),
        ("cache-control", "no-store".to_string()),
        ("x-content-type-options", "nosniff".to_string()),
    ]
}

impl Answer {
    /// A complete body with its exact length.
    pub(crate) fn new(status: StatusCode, content_type: &str, body: Vec<u8>) -> Answer {
        let mut headers = sensitive_headers(content_type);
        headers.push(("content-length", body.len().to_string()));
        Answer {
            status,
            headers,
            body,
        }
    }
}

impl Problem {
    /// The HTTP answer for this problem.
    pub(crate) fn answer(&self) -> Answer {
        if self.status == StatusCode::UNAUTHORIZED {
            // Functions answers a missing or wrong key with an empty 401.
            let mut a = Answer::new(StatusCode::UNAUTHORIZED, "text/plain", Vec::new());
            a.headers.retain(|(k, _)| *k != "content-type");
            return a;
        }
        let mut a = Answer::new(self.status, PROBLEM_CONTENT_TYPE, self.body());
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            a.headers.push(("allow", "GET".to_string()));
        }
        if let Some(s) = self.retry_after {
            a.headers
                .push(("retry-after", s.clamp(1, MAX_RETRY_AFTER).to_string()));
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
        a.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn every_problem_answer_is_no_store_and_nosniff_with_exact_length() {
        for p in [
            Problem::bad_request("missing-parameter", "x"),
            Problem::throttled("Key Vault", 7),
            Problem::method_not_allowed("POST"),
            Problem::unauthorized(),
        ] {
            let a = p.answer();
            assert_eq!(header(&a, "cache-control"), Some("no-store"));
            assert_eq!(header(&a, "x-content-type-options"), Some("nosniff"));
            assert_eq!(
                header(&a, "content-length"),
                Some(a.body.len().to_string().as_str())
            );
        }
        assert_eq!(
            header(&Problem::method_not_allowed("PUT").answer(), "allow"),
            Some("GET")
        );
        let unauthorized = Problem::unauthorized().answer();
        assert!(unauthorized.body.is_empty() && header(&unauthorized, "content-type").is_none());
    }

    #[test]
    fn retry_after_is_capped() {
        let a = Problem::throttled("Key Vault", 86_400).answer();
        assert_eq!(
            header(&a, "retry-after"),
            Some(MAX_RETRY_AFTER.to_string().as_str())
        );
        assert_eq!(Problem::throttled("x", 0).retry_after, Some(1));
    }
}
