//! Caller authentication with function keys, as Azure Functions' `AuthorizationLevel.Function`.
//!
//! The key comes from the `x-functions-key` header or the `code` query parameter (the header
//! wins when both are present). Accepted keys come from the secret variable `function_keys`:
//! comma-separated entries, each `key` or `name:key` (split on the first `:` only, and only when
//! the name is a plain identifier), so keys can be rotated and log lines can say which caller it
//! was. Keys shorter than 16 characters are refused at configuration time (Functions' own are
//! 40+).
//!
//! An unnamed key is called `keyN` after its entry's position. Positions shift when a key is
//! added or removed, so that name must never carry meaning: an explicit `keyN:` name and two keys
//! with one name are refused, and rules may name only explicitly named keys
//! ([`is_positional_name`]).

use crate::errors::Problem;

pub(crate) const MIN_KEY_CHARS: usize = 16;
/// Every comparison covers this many bytes and this many key slots, whatever is configured, so
/// timing reveals neither a key's length nor how many keys exist.
pub(crate) const MAX_KEY_BYTES: usize = 256;
pub(crate) const MAX_KEYS: usize = 32;

/// A configured key. The name is safe to log; the value never is.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct FunctionKey {
    pub name: String,
    value: Vec<u8>,
}

impl std::fmt::Debug for FunctionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FunctionKey({})", self.name)
    }
}

/// Who called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// Authenticated with the key of this name.
    Key(String),
    /// `auth_disabled = true` (local use only), or an anonymous probe route.
    Anonymous,
}

impl Caller {
    pub(crate) fn name(&self) -> &str {
        match self {
            Caller::Key(name) => name,
            Caller::Anonymous => "anonymous",
        }
    }
}

fn is_identifier(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Whether `name` has the form of the name an unnamed key gets (`key` and digits, any case):
/// it means "the key at this position", which changes as keys rotate.
pub(crate) fn is_positional_name(name: &str) -> bool {
    name.len() > 3
        && name[..3].eq_ignore_ascii_case("key")
        && name[3..].bytes().all(|b| b.is_ascii_digit())
}

/// Parses `function_keys`. The error says which entry is wrong, never its value.
pub(crate) fn parse_keys(raw: &str) -> Result<Vec<FunctionKey>, String> {
    let mut keys: Vec<FunctionKey> = Vec::new();
    for (i, entry) in raw
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .enumerate()
    {
        let (name, value) = match entry.split_once(':') {
            Some((name, value)) if is_identifier(name) => {
                if is_positional_name(name) {
                    return Err(format!(
                        "entry {} is named '{name}', the form of the positional name an unnamed key gets; \
                         choose another name",
                        i + 1
                    ));
                }
                (name.to_string(), value)
            }
            _ => (format!("key{}", i + 1), entry),
        };
        if let Some(first) = keys.iter().position(|k| k.name == name) {
            return Err(format!(
                "entries {} and {} are both named '{name}'; each key needs its own name",
                first + 1,
                i + 1
            ));
        }
        let chars = value.chars().count();
        if chars < MIN_KEY_CHARS {
            return Err(format!(
                "key '{name}' (entry {}) is shorter than {MIN_KEY_CHARS} characters; use a long random key (openssl rand -base64 30)",
                i + 1
            ));
        }
        if value.len() > MAX_KEY_BYTES {
            return Err(format!(
                "key '{name}' (entry {}) is longer than {MAX_KEY_BYTES} bytes",
                i + 1
            ));
        }
        keys.push(FunctionKey {
            name,
            value: value.as_bytes().to_vec(),
        });
    }
    if keys.len() > MAX_KEYS {
        return Err(format!("more than {MAX_KEYS} keys are configured"));
    }
    Ok(keys)
}

/// Words per key slot: a key is compared as `MAX_KEY_BYTES / 8` 64-bit words.
const SLOT_WORDS: usize = MAX_KEY_BYTES / 8;

/// A key laid out in a fixed-size slot: the bytes, zero padding, and the length.
fn slot(bytes: &[u8]) -> ([u64; SLOT_WORDS], usize) {
    let mut padded = [0u8; MAX_KEY_BYTES];
    let n = bytes.len().min(MAX_KEY_BYTES);
    padded[..n].copy_from_slice(&bytes[..n]);
    let mut words = [0u64; SLOT_WORDS];
    for (word, b) in words.iter_mut().zip(padded.chunks_exact(8)) {
        *word = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    }
    (words, bytes.len())
}

/// Finds the configured key equal to `presented`. Always compares `MAX_KEYS` full slots, with
/// no early exit, so the time is the same whatever is configured.
fn match_key<'a>(keys: &'a [FunctionKey], presented: &[u8]) -> Option<&'a FunctionKey> {
    let (p, plen) = slot(presented);
    let mut found = usize::MAX;
    for i in 0..MAX_KEYS {
        let (k, klen) = keys
            .get(i)
            .map_or(([u64::MAX; SLOT_WORDS], usize::MAX), |k| slot(&k.value));
        let mut diff = (plen ^ klen) as u64;
        for j in 0..SLOT_WORDS {
            diff |= p[j] ^ k[j];
        }
        // Branch-free select of the first match.
        let hit = (diff == 0) as usize & (found == usize::MAX) as usize;
        found = hit * i + (1 - hit) * found;
    }
    keys.get(found)
}

/// Authenticates a request. `header` is the `x-functions-key` values, `code` the values of the
/// `code` query parameter (several are ambiguous and refused).
pub(crate) fn authenticate(
    keys: &[FunctionKey],
    header: &[String],
    code: &[&str],
) -> Result<Caller, Problem> {
    let presented = match (header, code) {
        ([one], _) => one.as_str(),
        ([], [only]) => only,
        _ => return Err(Problem::unauthorized()),
    };
    if presented.is_empty() || presented.len() > MAX_KEY_BYTES {
        return Err(Problem::unauthorized());
    }
    match_key(keys, presented.as_bytes())
        .map(|k| Caller::Key(k.name.clone()))
        .ok_or_else(Problem::unauthorized)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "k1-0123456789abcdef";
    const K2: &str = "k2-0123456789abcdef";

    fn keys(raw: &str) -> Vec<FunctionKey> {
        parse_keys(raw).unwrap()
    }

    #[test]
    fn parses_plain_and_named_keys_on_commas_only() {
        let k = keys(&format!(" {K1} , ops:{K2}"));
        let names: Vec<_> = k.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["key1", "ops"]);
        assert!(parse_keys(" , ").unwrap().is_empty());
        // Semicolons and spaces are part of a key, not separators.
        let k = keys("a;b c d e f g h i j");
        assert_eq!(k.len(), 1);
    }

    #[test]
    fn splits_on_the_first_colon_of_an_identifier_only() {
        let k = keys("ci:abc:def:0123456789");
        assert_eq!(
            (k[0].name.as_str(), k[0].value.as_slice()),
            ("ci", &b"abc:def:0123456789"[..])
        );
        // Not an identifier before the colon: the whole entry is the key.
        let k = keys("a b:0123456789abcdef");
        assert_eq!(
            (k[0].name.as_str(), k[0].value.as_slice()),
            ("key1", &b"a b:0123456789abcdef"[..])
        );
    }

    #[test]
    fn positional_names_and_duplicate_names_are_refused() {
        // Both would be called key1; and a rotation would move rules to another key.
        let e = parse_keys(&format!("{K1},key1:{K2}")).unwrap_err();
        assert!(e.contains("entry 2") && e.contains("key1"), "{e}");
        assert!(parse_keys(&format!("KEY7:{K1}")).is_err());
        let e = parse_keys(&format!("ops:{K1},ops:{K2}")).unwrap_err();
        assert!(e.contains("entries 1 and 2") && !e.contains(K1), "{e}");
        // Names that only start like a positional one are fine.
        let k = keys(&format!("keyring:{K1},key:{K2}"));
        assert_eq!(k.len(), 2);
        assert!(is_positional_name("key12") && is_positional_name("Key3"));
        assert!(!is_positional_name("key") && !is_positional_name("key1a"));
    }

    #[test]
    fn short_keys_are_refused_without_echoing_them() {
        let e = parse_keys("ops:short-key").unwrap_err();
        assert!(e.contains("'ops'") && e.contains("16") && !e.contains("short-key"));
        assert!(parse_keys(&"x".repeat(300)).is_err());
        let many = (0..33)
            .map(|i| format!("{K1}{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(parse_keys(&many).is_err());
    }

    #[test]
    fn header_wins_over_code() {
        let k = keys(K1);
        let h = |v: &str| vec![v.to_string()];
        assert_eq!(
            authenticate(&k, &h("bad-bad-bad-bad-bad"), &[K1]),
            Err(Problem::unauthorized())
        );
        assert_eq!(
            authenticate(&k, &h(K1), &[]),
            Ok(Caller::Key("key1".into()))
        );
        assert_eq!(authenticate(&k, &[], &[K1]), Ok(Caller::Key("key1".into())));
    }

    #[test]
    fn missing_wrong_prefix_longer_empty_and_ambiguous_keys_are_refused() {
        let k = keys(K1);
        let h = |v: &str| vec![v.to_string()];
        assert!(authenticate(&k, &[], &[]).is_err());
        assert!(authenticate(&k, &h(&K1[..K1.len() - 1]), &[]).is_err());
        assert!(authenticate(&k, &h(&format!("{K1}x")), &[]).is_err());
        assert!(authenticate(&k, &h(""), &[]).is_err());
        assert!(authenticate(&k, &[], &[K1, K1]).is_err());
        assert!(authenticate(&k, &[K1.to_string(), K1.to_string()], &[]).is_err());
        assert!(authenticate(&[], &h(K1), &[]).is_err());
    }

    #[test]
    fn rotation_accepts_every_configured_key() {
        let k = keys(&format!("old:{K1},new:{K2}"));
        assert_eq!(authenticate(&k, &[], &[K1]), Ok(Caller::Key("old".into())));
        assert_eq!(authenticate(&k, &[], &[K2]), Ok(Caller::Key("new".into())));
    }

    #[test]
    fn every_byte_and_the_length_count() {
        let key = "k".repeat(MAX_KEY_BYTES);
        let k = keys(&format!("long:{key},short:{K1}"));
        assert_eq!(
            authenticate(&k, &[], &[&key]),
            Ok(Caller::Key("long".into()))
        );
        for i in [0, 7, 8, 100, MAX_KEY_BYTES - 1] {
            let mut other = key.clone().into_bytes();
            other[i] = b'j';
            let other = String::from_utf8(other).unwrap();
            assert!(authenticate(&k, &[], &[&other]).is_err(), "byte {i}");
        }
        // Zero padding is not a wildcard: a key with a trailing NUL is another key.
        assert!(authenticate(&k, &[], &[&format!("{K1}\0")]).is_err());
        assert_eq!(
            authenticate(&k, &[], &[K1]),
            Ok(Caller::Key("short".into()))
        );
    }

    #[test]
    fn debug_output_never_shows_the_value() {
        assert!(!format!("{:?}", keys(K1)).contains("0123456789"));
    }
}
