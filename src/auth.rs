//! Caller authentication with function keys, as Azure Functions' `AuthorizationLevel.Function`.
//!
//! The key comes from the `x-functions-key` header or the `code` query parameter (the header wins
//! when both are present). Accepted keys come from the secret variable `function_keys`: entries
//! separated by commas, semicolons or whitespace, each `key` or `name:key`, so keys can be rotated
//! (add the new one, deploy, remove the old one) and log lines can say which caller it was.

use crate::errors::Problem;

/// A configured key. The name is safe to log; the value never is.
pub struct FunctionKey {
    pub name: String,
    value: Vec<u8>,
}

/// Outcome of checking a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Caller {
    /// Authenticated with the key of this name.
    Key(String),
    /// `auth_disabled = true`: local use only.
    Anonymous,
}

pub fn parse_keys(raw: &str) -> Vec<FunctionKey> {
    raw.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|entry| !entry.is_empty())
        .enumerate()
        .filter_map(|(i, entry)| {
            let (name, value) = match entry.split_once(':') {
                Some((name, value)) => (name.to_string(), value),
                None => (format!("key{}", i + 1), entry),
            };
            (!value.is_empty()).then(|| FunctionKey {
                name,
                value: value.as_bytes().to_vec(),
            })
        })
        .collect()
}

/// Compares in time that depends only on the lengths, never on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    diff == 0
}

/// Finds the configured key matching `presented`, checking every key so timing does not reveal
/// which one (or how many) exist.
pub fn match_key<'a>(keys: &'a [FunctionKey], presented: &str) -> Option<&'a FunctionKey> {
    let mut found = None;
    for key in keys {
        if constant_time_eq(&key.value, presented.as_bytes()) && found.is_none() {
            found = Some(key);
        }
    }
    found
}

/// The 401 every authentication failure produces: status only, empty body, like Functions.
pub fn unauthorized() -> Problem {
    Problem::new(401, "unauthorized", "Unauthorized", String::new())
}

/// Authenticates a request. `header` is the `x-functions-key` value, `code` the query values of
/// `code` (several values are ambiguous and refused).
pub fn authenticate(
    keys_raw: Option<&str>,
    disabled: bool,
    header: Option<&str>,
    code: &[String],
) -> Result<Caller, Problem> {
    if disabled {
        return Ok(Caller::Anonymous);
    }
    let keys = parse_keys(keys_raw.unwrap_or(""));
    if keys.is_empty() {
        return Err(Problem::config_missing(
            crate::config::var::FUNCTION_KEYS,
            "no function key is configured, so every caller would be refused (set function_keys, or \
             auth_disabled = true for local use only)",
        ));
    }
    let presented = match (header, code) {
        (Some(h), _) => h,
        (None, [only]) => only.as_str(),
        _ => return Err(unauthorized()),
    };
    match match_key(&keys, presented) {
        Some(key) if !presented.is_empty() => Ok(Caller::Key(key.name.clone())),
        _ => Err(unauthorized()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_named_keys() {
        let keys = parse_keys(" k1 , ops:k2;ci:k3\nk4 ");
        let names: Vec<_> = keys.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["key1", "ops", "ci", "key4"]);
        assert!(parse_keys(" , ;").is_empty());
        assert!(parse_keys("name:").is_empty());
    }

    #[test]
    fn header_wins_over_code() {
        let code = vec!["good".to_string()];
        assert_eq!(
            authenticate(Some("good"), false, Some("bad"), &code),
            Err(unauthorized())
        );
        assert_eq!(
            authenticate(Some("good"), false, Some("good"), &[]),
            Ok(Caller::Key("key1".into()))
        );
        assert_eq!(
            authenticate(Some("a:good"), false, None, &code),
            Ok(Caller::Key("a".into()))
        );
    }

    #[test]
    fn missing_wrong_empty_and_ambiguous_keys_are_refused() {
        assert_eq!(
            authenticate(Some("good"), false, None, &[]),
            Err(unauthorized())
        );
        assert_eq!(
            authenticate(Some("good"), false, Some("goo"), &[]),
            Err(unauthorized())
        );
        assert_eq!(
            authenticate(Some("good"), false, Some("goodx"), &[]),
            Err(unauthorized())
        );
        assert_eq!(
            authenticate(Some("good"), false, Some(""), &[]),
            Err(unauthorized())
        );
        let two = vec!["good".to_string(), "good".to_string()];
        assert_eq!(
            authenticate(Some("good"), false, None, &two),
            Err(unauthorized())
        );
    }

    #[test]
    fn rotation_accepts_every_configured_key() {
        assert!(authenticate(Some("old,new"), false, Some("old"), &[]).is_ok());
        assert!(authenticate(Some("old,new"), false, Some("new"), &[]).is_ok());
    }

    #[test]
    fn auth_is_off_only_when_disabled_explicitly() {
        assert_eq!(authenticate(None, true, None, &[]), Ok(Caller::Anonymous));
        let p = authenticate(None, false, None, &[]).unwrap_err();
        assert_eq!(p.status, 500);
        assert!(p.detail.contains("function_keys"));
    }

    #[test]
    fn constant_time_eq_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
