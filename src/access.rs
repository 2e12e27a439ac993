//! Optional least-privilege rules: which secrets and blobs each endpoint may serve, so a function
//! key does not open everything the managed identity can read. Enforced before any upstream call.
//!
//! Rules are Spin variables holding patterns separated by commas or whitespace. Unset or empty
//! means no restriction (the original's behaviour).
//! - secrets (`same_tenant_secrets`, `cross_tenant_secrets`): `NAME` (exact, case-insensitive
//!   like Key Vault) or `PREFIX*`; `*` allows all.
//! - blobs (`same_tenant_blobs`, `cross_tenant_blobs`): `container` (all of it),
//!   `container/PREFIX*` or `container/exact/name`; `*` allows all.

use crate::config::{Tenant, Variables};
use crate::errors::Problem;

pub fn secrets_variable(tenant: Tenant) -> &'static str {
    match tenant {
        Tenant::Same => "same_tenant_secrets",
        Tenant::Cross => "cross_tenant_secrets",
    }
}

pub fn blobs_variable(tenant: Tenant) -> &'static str {
    match tenant {
        Tenant::Same => "same_tenant_blobs",
        Tenant::Cross => "cross_tenant_blobs",
    }
}

fn patterns(vars: &dyn Variables, name: &str) -> Vec<String> {
    vars.get(name)
        .unwrap_or_default()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// `pattern` is exact or ends in `*` (prefix); `fold` compares case-insensitively.
fn matches(pattern: &str, value: &str, fold: bool) -> bool {
    let eq = |a: &str, b: &str| {
        if fold {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    match pattern.strip_suffix('*') {
        Some(prefix) => {
            value.len() >= prefix.len()
                && value.is_char_boundary(prefix.len())
                && eq(&value[..prefix.len()], prefix)
        }
        None => eq(pattern, value),
    }
}

fn denied(variable: &str, what: String) -> Problem {
    Problem::new(
        403,
        "access-denied",
        "Forbidden",
        format!("{what} is not allowed on this endpoint by the Spin variable '{variable}'"),
    )
}

pub fn check_secret(vars: &dyn Variables, tenant: Tenant, name: &str) -> Result<(), Problem> {
    let variable = secrets_variable(tenant);
    let rules = patterns(vars, variable);
    if rules.is_empty() || rules.iter().any(|p| matches(p, name, true)) {
        return Ok(());
    }
    Err(denied(variable, format!("secret '{name}'")))
}

pub fn check_blob(
    vars: &dyn Variables,
    tenant: Tenant,
    container: &str,
    blob: &str,
) -> Result<(), Problem> {
    let variable = blobs_variable(tenant);
    let rules = patterns(vars, variable);
    let allowed = rules.is_empty()
        || rules.iter().any(|rule| match rule.split_once('/') {
            _ if rule == "*" => true,
            None => rule == container,
            Some((c, pattern)) => c == container && matches(pattern, blob, false),
        });
    if allowed {
        Ok(())
    } else {
        Err(denied(
            variable,
            format!(
                "blob '{}' in container '{container}'",
                crate::errors::truncate(blob, 100)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn unset_or_empty_allows_everything() {
        assert!(check_secret(&vars(&[]), Tenant::Same, "any").is_ok());
        assert!(check_blob(
            &vars(&[("cross_tenant_blobs", " , ")]),
            Tenant::Cross,
            "c",
            "b"
        )
        .is_ok());
    }

    #[test]
    fn secret_rules_exact_prefix_and_case() {
        let v = vars(&[("same_tenant_secrets", "TEST-SECRET-001, app-*")]);
        assert!(check_secret(&v, Tenant::Same, "test-secret-001").is_ok());
        assert!(check_secret(&v, Tenant::Same, "APP-db-password").is_ok());
        assert!(check_secret(&v, Tenant::Same, "app-").is_ok());
        assert!(check_secret(&v, Tenant::Same, "ap").is_err());
        assert!(check_secret(&v, Tenant::Same, "TEST-SECRET-0011").is_err());
        // Rules are per endpoint: the cross-tenant endpoint is unrestricted here.
        assert!(check_secret(&v, Tenant::Cross, "other").is_ok());
        let p = check_secret(&v, Tenant::Same, "other").unwrap_err();
        assert_eq!((p.status, p.code), (403, "access-denied"));
        assert!(p.detail.contains("same_tenant_secrets") && !p.detail.contains("app-*"));
    }

    #[test]
    fn blob_rules_container_prefix_and_exact() {
        let v = vars(&[(
            "same_tenant_blobs",
            "public reports/2026/* exports/daily.csv",
        )]);
        assert!(check_blob(&v, Tenant::Same, "public", "any/thing").is_ok());
        assert!(check_blob(&v, Tenant::Same, "reports", "2026/q1.pdf").is_ok());
        assert!(check_blob(&v, Tenant::Same, "reports", "2025/q1.pdf").is_err());
        assert!(check_blob(&v, Tenant::Same, "reports", "2026").is_err());
        assert!(check_blob(&v, Tenant::Same, "exports", "daily.csv").is_ok());
        assert!(check_blob(&v, Tenant::Same, "exports", "daily.csv.bak").is_err());
        assert!(check_blob(&v, Tenant::Same, "publicx", "a").is_err());
        // Blob names are case-sensitive in Storage.
        assert!(check_blob(&v, Tenant::Same, "exports", "DAILY.csv").is_err());
        assert!(check_blob(&vars(&[("same_tenant_blobs", "*")]), Tenant::Same, "x", "y").is_ok());
    }

    #[test]
    fn prefixes_respect_character_boundaries() {
        assert!(!matches("ü*", "u", false));
        assert!(matches("ü*", "üx", false));
        assert!(!matches("a*", "", false));
    }
}
