//! Least-privilege rules: which secrets, blobs and repositories an endpoint or tenant profile
//! may serve, and which callers may use a profile, so a function key does not open everything
//! the identity can read. Parsed once with the settings, enforced before any upstream call.
//!
//! Patterns are comma-separated. A pattern is exact or ends in `*` (prefix); `*` alone allows
//! all. Secret names compare case-insensitively (as Key Vault), blob and repository names
//! exactly.

use crate::errors::{truncate, Problem};

/// One pattern: exact, or a prefix when it ended in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    text: String,
    prefix: bool,
}

impl Pattern {
    fn parse(raw: &str) -> Result<Pattern, String> {
        let (text, prefix) = match raw.strip_suffix('*') {
            Some(p) => (p, true),
            None => (raw, false),
        };
        if text.contains('*') {
            return Err("'*' may only end a pattern".into());
        }
        Ok(Pattern {
            text: text.to_string(),
            prefix,
        })
    }

    fn matches(&self, value: &str, fold: bool) -> bool {
        let eq = |a: &str, b: &str| {
            if fold {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        if self.prefix {
            value.len() >= self.text.len()
                && value.is_char_boundary(self.text.len())
                && eq(&value[..self.text.len()], &self.text)
        } else {
            eq(&self.text, value)
        }
    }
}

fn entries(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(',').map(str::trim).filter(|p| !p.is_empty())
}

/// Secrets: `NAME` or `PREFIX*`. Empty: every secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SecretRules(Vec<Pattern>);

impl SecretRules {
    /// A pattern that no secret name could match is refused: a typo must not turn into a
    /// silent deny-all.
    pub(crate) fn parse(raw: &str) -> Result<SecretRules, String> {
        entries(raw)
            .enumerate()
            .map(|(i, raw)| {
                let p = Pattern::parse(raw)?;
                let all = p.prefix && p.text.is_empty();
                if !all && crate::config::names::secret_name(&p.text).is_err() {
                    return Err(format!(
                        "entry {} is not a secret name or prefix (letters, digits and '-', at most 127)",
                        i + 1
                    ));
                }
                Ok(p)
            })
            .collect::<Result<_, _>>()
            .map(SecretRules)
    }

    pub(crate) fn allows(&self, name: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|p| p.matches(name, true))
    }
}

/// Blobs: `container` (all of it), `container/PREFIX*` or `container/exact/name`; `*` alone
/// allows all. Empty: every blob.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BlobRules(Vec<(String, Option<Pattern>)>);

impl BlobRules {
    pub(crate) fn parse(raw: &str) -> Result<BlobRules, String> {
        let container = |i: usize, c: &str| {
            match crate::config::names::container_name(c) {
            Ok(()) => Ok(c.to_string()),
            Err(_) => Err(format!(
                "entry {} does not start with a container name (3-63 lowercase letters, digits and '-')",
                i + 1
            )),
        }
        };
        entries(raw)
            .enumerate()
            .map(|(i, rule)| match rule.split_once('/') {
                None if rule == "*" => Ok(("*".to_string(), None)),
                None => Ok((container(i, rule)?, None)),
                Some((c, pattern)) => {
                    let p = Pattern::parse(pattern)?;
                    if !p.prefix && crate::config::names::blob_name(&p.text).is_err() {
                        return Err(format!("entry {} names no valid blob", i + 1));
                    }
                    Ok((container(i, c)?, Some(p)))
                }
            })
            .collect::<Result<_, _>>()
            .map(BlobRules)
    }

    pub(crate) fn allows(&self, container: &str, blob: &str) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|(c, pattern)| match pattern {
                None => c == "*" || c == container,
                Some(p) => c == container && p.matches(blob, false),
            })
    }
}

/// Repositories of a registry: `name`, `prefix*`, or `caller=name|prefix*` for one caller key
/// only. Empty: **none** — a registry serves only what is listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RepositoryRules(Vec<(Option<String>, Pattern)>);

impl RepositoryRules {
    pub(crate) fn parse(raw: &str) -> Result<RepositoryRules, String> {
        entries(raw)
            .map(|rule| {
                let (caller, pattern) = match rule.split_once('=') {
                    Some((caller, p)) => (Some(caller.trim().to_string()), p.trim()),
                    None => (None, rule),
                };
                if pattern.is_empty() || pattern == "*" {
                    return Err(
                        "a repository pattern must name a repository or prefix; '*' \
                                alone is not allowed"
                            .to_string(),
                    );
                }
                Ok((caller, Pattern::parse(pattern)?))
            })
            .collect::<Result<_, _>>()
            .map(RepositoryRules)
    }

    /// Each entry's caller, in order (`None`: the entry is for every caller).
    pub(crate) fn entry_callers(&self) -> impl Iterator<Item = Option<&str>> {
        self.0.iter().map(|(who, _)| who.as_deref())
    }

    pub(crate) fn allows(&self, caller: &str, repository: &str) -> bool {
        self.0.iter().any(|(who, p)| {
            who.as_deref().is_none_or(|w| w == caller) && p.matches(repository, false)
        })
    }
}

/// Which callers (function-key names) may use a tenant profile. Empty: every caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Callers(Vec<String>);

impl Callers {
    pub(crate) fn parse(raw: &str) -> Callers {
        Callers(entries(raw).map(str::to_string).collect())
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub(crate) fn allows(&self, caller: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|c| c == caller)
    }
}

/// The 403 for a request outside the rules in the setting `name`; the rules themselves stay
/// private.
pub(crate) fn denied(name: &str, what: &str) -> Problem {
    Problem::forbidden(format!(
        "{} is not allowed here by the setting '{name}'",
        truncate(what, 160)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_or_empty_allows_every_secret_and_blob() {
        assert!(SecretRules::parse("").unwrap().allows("any"));
        assert!(BlobRules::parse(" , ").unwrap().allows("c", "b"));
        assert!(Callers::parse("").allows("anyone"));
    }

    #[test]
    fn secret_rules_exact_prefix_and_case() {
        let r = SecretRules::parse("TEST-SECRET-001, app-*").unwrap();
        assert!(r.allows("test-secret-001"));
        assert!(r.allows("APP-db-password"));
        assert!(r.allows("app-"));
        assert!(!r.allows("ap"));
        assert!(!r.allows("TEST-SECRET-0011"));
        assert!(SecretRules::parse("a*b").is_err());
    }

    #[test]
    fn blob_rules_container_prefix_and_exact() {
        let r = BlobRules::parse("public, reports/2026/*, exports/daily.csv").unwrap();
        assert!(r.allows("public", "any/thing"));
        assert!(r.allows("reports", "2026/q1.pdf"));
        assert!(!r.allows("reports", "2025/q1.pdf"));
        assert!(!r.allows("reports", "2026"));
        assert!(r.allows("exports", "daily.csv"));
        assert!(!r.allows("exports", "daily.csv.bak"));
        assert!(!r.allows("exports", "DAILY.csv"));
        assert!(!r.allows("publicx", "a"));
        assert!(BlobRules::parse("*").unwrap().allows("x", "y"));
        assert!(BlobRules::parse("re*/x").is_err());
        assert!(BlobRules::parse("/x").is_err());
    }

    #[test]
    fn prefixes_respect_character_boundaries() {
        let r = BlobRules::parse("ccc/ü*").unwrap();
        assert!(!r.allows("ccc", "u"));
        assert!(r.allows("ccc", "üx"));
        assert!(!BlobRules::parse("ccc/a*").unwrap().allows("ccc", ""));
    }

    #[test]
    fn rules_that_could_never_match_are_refused() {
        for bad in ["bad name!", "a_b", "x*y", &"a".repeat(128)] {
            assert!(SecretRules::parse(bad).is_err(), "{bad}");
        }
        assert!(SecretRules::parse("*, app-*, TEST-SECRET-001").is_ok());
        for bad in ["UPPER", "ab", "a--b", "c/../x", "c//x", "ccc/x/"] {
            assert!(BlobRules::parse(bad).is_err(), "{bad}");
        }
        assert!(BlobRules::parse("seed, seed/greeting.txt, exports/daily/*").is_ok());
    }

    #[test]
    fn repositories_are_an_allow_list_per_caller() {
        let r = RepositoryRules::parse("base/*, ci=tools/builder, ops=infra/*").unwrap();
        assert!(r.allows("anyone", "base/alpine"));
        assert!(r.allows("ci", "tools/builder"));
        assert!(!r.allows("ops", "tools/builder"));
        assert!(r.allows("ops", "infra/x"));
        assert!(!r.allows("ci", "infra/x"));
        assert!(!RepositoryRules::parse("").unwrap().allows("a", "b"));
        assert!(RepositoryRules::parse("*").is_err());
        assert!(RepositoryRules::parse("ci=*").is_err());
    }

    #[test]
    fn callers_are_exact_names() {
        let c = Callers::parse("billing, ops");
        assert!(c.allows("ops") && !c.allows("op") && !c.allows("key1"));
    }

    #[test]
    fn denials_name_the_variable_not_the_rules() {
        let p = denied("same_tenant_secrets", "secret 'other'");
        assert_eq!((p.status.as_u16(), &*p.code), (403, "access-denied"));
        assert!(p.detail.contains("same_tenant_secrets"));
    }
}
