//! The Azure services' naming rules, checked on every caller-supplied name before anything goes
//! upstream, and on the names the configuration holds (rules, profiles, registries).
//!
//! Names are checked against the services' own rules, and blob names additionally against
//! anything a URL library or server could normalise into another target (`.`/`..` segments, also
//! percent-encoded, empty segments, backslashes).

use crate::errors::{truncate, Problem};
use crate::net::origin::Origin;

/// Key Vault secret names: `^[0-9A-Za-z-]{1,127}$`.
pub(crate) fn secret_name(name: &str) -> Result<(), Problem> {
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
pub(crate) fn secret_version(version: &str) -> Result<(), Problem> {
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
pub(crate) fn container_name(name: &str) -> Result<(), Problem> {
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

pub(crate) const MAX_BLOB_NAME_CHARS: usize = 1024;
pub(crate) const MAX_BLOB_SEGMENTS: usize = 254;

/// Blob names: 1-1024 characters, no control characters or backslashes, at most 254 `/`
/// segments, none empty, `.`/`..` (also percent-encoded) or ending in `.`.
pub(crate) fn blob_name(name: &str) -> Result<(), Problem> {
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
        // A segment that stops being UTF-8 when decoded cannot be a dot; keep it as it is.
        let Ok(next) = crate::wire::urlenc::percent_decoded(&current) else {
            break;
        };
        if next == current {
            break;
        }
        current = next;
    }
    current
}

/// Repository names, the distribution spec's grammar: `/`-separated components of lowercase
/// letters and digits joined by `.`, `_`, `__` or runs of `-`; at most 255 characters.
pub(crate) fn repository_name(name: &str) -> Result<(), Problem> {
    fn component(c: &str) -> bool {
        let b = c.as_bytes();
        let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
        if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
            return false;
        }
        let mut i = 0;
        while i < b.len() {
            if alnum(b[i]) {
                i += 1;
                continue;
            }
            // A separator: ".", "_", "__" or one or more "-", followed by an alphanumeric.
            let start = i;
            match b[i] {
                b'.' => i += 1,
                b'_' => i += if b.get(i + 1) == Some(&b'_') { 2 } else { 1 },
                b'-' => {
                    while b.get(i) == Some(&b'-') {
                        i += 1;
                    }
                }
                _ => return false,
            }
            if i == start || !b.get(i).copied().is_some_and(alnum) {
                return false;
            }
        }
        true
    }
    if name.len() <= 255 && name.split('/').all(component) {
        Ok(())
    } else {
        Err(Problem::bad_request(
            "invalid-repository-name",
            format!(
                "'{}' is not a repository name: lowercase letters and digits in '/'-separated parts, joined by '.', '_', '__' or '-'",
                printable(name)
            ),
        ))
    }
}

/// A registry login server as callers name it: `host[:port]` (ACR's have no port; a port is
/// for registries in tests and behind custom DNS).
pub(crate) fn registry(name: &str) -> Result<Origin, Problem> {
    registry_server(name).ok_or_else(|| {
        Problem::bad_request(
            "invalid-registry-name",
            format!(
                "'{}' is not a registry login server like myregistry.azurecr.io",
                printable(name)
            ),
        )
    })
}

/// A registry login server as callers and `*_registries` name it: a bare host name with a dot
/// and an optional port (`myregistry.azurecr.io`), as the HTTPS origin it is.
pub(crate) fn registry_server(name: &str) -> Option<Origin> {
    let plain = !name.is_empty() && !name.contains(['/', '?', '#', '@', '[']);
    plain
        .then(|| crate::net::origin::parse(&format!("https://{name}")).ok())
        .flatten()
        .filter(|o| o.host.contains('.'))
}

/// Tenant profile names (`tenant=`, `*_name`): 1-32 letters, digits, `-` and `_`, compared in
/// lowercase.
pub(crate) fn is_profile_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `tenant=` values: profile names.
pub(crate) fn profile_name(name: &str) -> Result<(), Problem> {
    if is_profile_name(name) {
        Ok(())
    } else {
        Err(Problem::bad_request(
            "invalid-tenant",
            format!(
                "'{}' is not a tenant profile name: 1-32 letters, digits, '-' and '_'",
                printable(name)
            ),
        ))
    }
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
    fn repository_names_follow_the_distribution_grammar() {
        for ok in [
            "a",
            "base/alpine",
            "a.b_c__d---e/f0",
            "x/y/z",
            &"a".repeat(255),
        ] {
            assert!(repository_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "A",
            "a/",
            "/a",
            "a//b",
            "a_",
            "-a",
            "a..b",
            "a___b",
            "a:b",
            "a*",
            "a b",
            &"a".repeat(256),
        ] {
            assert!(repository_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn registry_and_tenant_names() {
        assert_eq!(
            registry("Hub.AzureCR.io").unwrap().to_string(),
            "https://hub.azurecr.io"
        );
        assert_eq!(registry("hub.azurecr.io:8443").unwrap().port, Some(8443));
        for bad in [
            "",
            "hub",
            "https://hub.azurecr.io",
            "[::1]",
            "hub.azurecr.io/x",
            "u@hub.azurecr.io",
        ] {
            assert!(registry(bad).is_err(), "{bad}");
        }
        assert!(profile_name("c").is_ok() && profile_name("prod-eu_1").is_ok());
        assert!(
            profile_name("").is_err()
                && profile_name("a.b").is_err()
                && profile_name(&"a".repeat(33)).is_err()
        );
    }

    #[test]
    fn details_are_printable_and_bounded() {
        let p = blob_name(&format!("a\u{1}{}", "..".repeat(600))).unwrap_err();
        assert!(!p.detail.chars().any(char::is_control));
        assert!(p.detail.len() < 300);
    }
}
