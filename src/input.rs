//! Query parsing and validation of every caller-supplied name, before anything goes upstream.
//!
//! Names are checked against the services' own rules, and blob names additionally against
//! anything a URL library or server could normalise into another target (`.`/`..` segments, also
//! percent-encoded, empty segments, backslashes).

use crate::errors::{truncate, Problem};

/// Query parameters in order, percent-decoded (`+` is a space, as in ASP.NET).
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: &str) -> Query {
        let pairs = url::form_urlencoded::parse(raw.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Query { pairs }
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Exactly one value, or a 400 naming the parameter.
    pub fn required(&self, name: &str) -> Result<String, Problem> {
        match self.optional(name)? {
            Some(v) => Ok(v),
            None => Err(Problem::bad_request(
                "missing-parameter",
                format!("query parameter '{name}' is required"),
            )),
        }
    }

    /// At most one value.
    pub fn optional(&self, name: &str) -> Result<Option<String>, Problem> {
        let mut values = self.all(name);
        match values.len() {
            0 => Ok(None),
            1 => Ok(values.pop()),
            _ => Err(Problem::bad_request(
                "duplicate-parameter",
                format!("query parameter '{name}' is given more than once"),
            )),
        }
    }
}

/// Key Vault secret names: `^[0-9A-Za-z-]{1,127}$`.
pub fn secret_name(name: &str) -> Result<(), Problem> {
    let ok = (1..=127).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Problem::bad_request(
            "invalid-secret-name",
            format!(
                "'{}' is not a Key Vault secret name: 1-127 letters, digits and '-'",
                printable(name)
            ),
        ))
    }
}

/// Secret versions: 32 hexadecimal characters.
pub fn secret_version(version: &str) -> Result<(), Problem> {
    if version.len() == 32 && version.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Problem::bad_request(
            "invalid-secret-version",
            format!(
                "'{}' is not a secret version: 32 hexadecimal characters",
                printable(version)
            ),
        ))
    }
}

/// Container names: 3-63 of `[a-z0-9-]`, starting and ending alphanumeric, no `--`; or the
/// special `$root` / `$web` containers.
pub fn container_name(name: &str) -> Result<(), Problem> {
    let b = name.as_bytes();
    let ok = name == "$root"
        || name == "$web"
        || ((3..=63).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
            && !name.contains("--"));
    if ok {
        Ok(())
    } else {
        Err(Problem::bad_request(
            "invalid-container-name",
            format!(
                "'{}' is not a container name: 3-63 lowercase letters, digits and single '-', starting and ending with a letter or digit",
                printable(name)
            ),
        ))
    }
}

pub const MAX_BLOB_NAME_CHARS: usize = 1024;
pub const MAX_BLOB_SEGMENTS: usize = 254;

/// Blob names: 1-1024 characters, no control characters or backslashes, at most 254 `/`
/// segments, none empty, `.`/`..` (also percent-encoded) or ending in `.`.
pub fn blob_name(name: &str) -> Result<(), Problem> {
    let fail = |why: &str| {
        Err(Problem::bad_request(
            "invalid-blob-name",
            format!("blob name '{}' {why}", printable(name)),
        ))
    };
    let chars = name.chars().count();
    if chars == 0 {
        return fail("is empty");
    }
    if chars > MAX_BLOB_NAME_CHARS {
        return fail("is longer than 1024 characters");
    }
    if name.chars().any(char::is_control) {
        return fail("contains a control character");
    }
    if name.contains('\\') {
        return fail("contains a backslash");
    }
    let segments: Vec<&str> = name.split('/').collect();
    if segments.len() > MAX_BLOB_SEGMENTS {
        return fail("has more than 254 path segments");
    }
    for seg in &segments {
        if seg.is_empty() {
            return fail("has an empty path segment (leading, trailing or doubled '/')");
        }
        // `%2e` is a dot to URL resolvers; decode repeatedly so `%252e` cannot sneak through.
        let decoded = fully_percent_decoded(seg);
        if decoded.contains('/') || decoded.contains('\\') {
            return fail("has an encoded slash inside a segment");
        }
        if decoded.ends_with('.') {
            return fail("has a '.' or '..' segment or a segment ending in '.'");
        }
    }
    Ok(())
}

fn fully_percent_decoded(seg: &str) -> String {
    let mut current = seg.to_string();
    for _ in 0..4 {
        let next: String =
            url::form_urlencoded::parse(format!("x={}", current.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
        if next == current {
            break;
        }
        current = next;
    }
    current
}

/// Caller text as it may appear in a problem detail: bounded and without control characters.
fn printable(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    truncate(&cleaned, 80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decodes_and_detects_duplicates() {
        let q = Query::parse("key=a%2Db&version=&x=1&x=2&blob=a+b");
        assert_eq!(q.required("key").unwrap(), "a-b");
        assert_eq!(q.optional("version").unwrap().as_deref(), Some(""));
        assert_eq!(q.required("x").unwrap_err().code, "duplicate-parameter");
        assert_eq!(q.required("nope").unwrap_err().code, "missing-parameter");
        assert_eq!(q.required("blob").unwrap(), "a b");
    }

    #[test]
    fn secret_names_and_versions() {
        assert!(secret_name("TEST-SECRET-001").is_ok());
        assert!(secret_name(&"a".repeat(127)).is_ok());
        for bad in ["", "a_b", "a.b", "a/b", "ä", &"a".repeat(128)] {
            assert!(secret_name(bad).is_err(), "{bad}");
        }
        assert!(secret_version("0123456789abcdefABCDEF0123456789").is_ok());
        assert!(secret_version("0123456789abcdef").is_err());
        assert!(secret_version("g123456789abcdef0123456789abcdef").is_err());
    }

    #[test]
    fn container_rules() {
        for ok in ["abc", "a-b-c", "0ab", &"a".repeat(63), "$root", "$web"] {
            assert!(container_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "-ab",
            "ab-",
            "a--b",
            "ABC",
            "a_b",
            "a.b",
            &"a".repeat(64),
            "$logs",
            "..",
            "a/b",
        ] {
            assert!(container_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn blob_rules() {
        for ok in [
            "a",
            "dir/file.txt",
            "a b/ü.bin",
            "v1.2/x",
            "%41",
            "a?b#c",
            &"x".repeat(1024),
        ] {
            assert!(blob_name(ok).is_ok(), "{ok}");
        }
        let deep = vec!["d"; 255].join("/");
        for bad in [
            "",
            "../x",
            "a/../b",
            "a/./b",
            ".",
            "..",
            "/a",
            "a/",
            "a//b",
            "a.",
            "a\\b",
            "a\u{0}b",
            "a\nb",
            "%2e%2e/x",
            "a/%2E/b",
            "%252e%252e/x",
            "a%2fb",
            "x/..%2f",
            &"x".repeat(1025),
            &deep,
        ] {
            assert!(blob_name(bad).is_err(), "{bad:?}");
        }
        assert!(blob_name(&vec!["d"; 254].join("/")).is_ok());
    }

    #[test]
    fn details_are_printable_and_bounded() {
        let p = blob_name(&format!("a\u{1}{}", "..".repeat(600))).unwrap_err();
        assert!(!p.detail.chars().any(char::is_control));
        assert!(p.detail.len() < 300);
    }
}
