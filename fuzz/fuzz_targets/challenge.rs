//! `fuzzing::parse_challenge` and `fuzzing::challenge_accepted` (`keyvault::parse_challenge`,
//! `keyvault::resource_matches_vault`): the `WWW-Authenticate` header of a vault's 401, which
//! decides whether our token may go to that vault.
//!
//! Input: `VAULT-ORIGIN\nHEADER` (no newline: the whole input is the header). The first line is
//! tried as a vault origin beside the fixed ones, and as a cloud name. Properties: never panics;
//! a parsed challenge came from a Bearer header and has a non-empty lower-case tenant without
//! `/`, `?` or `#` and a non-empty resource, taken from the header, without a trailing `/`;
//! `challenge_accepted` is `None` for a cloud name that does not parse (and never for the fixed
//! vaults), and otherwise true exactly when the resource is the cloud's Key Vault resource (any
//! case) and the vault host is a strict subdomain of that resource's host — never for another
//! cloud's resource, an equal host, a look-alike suffix, a port, a path or plain http. Checked
//! for fixed vaults and resources of every cloud, the input's vault, the raw header text and
//! the parsed resource.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenant_bridge::fuzzing::{challenge_accepted, parse_challenge};

/// Each cloud's name (and alias) and Key Vault resource.
const CLOUDS: &[(&str, &str)] = &[
    ("public", "https://vault.azure.net"),
    ("AzureCloud", "https://vault.azure.net"),
    ("usgov", "https://vault.usgovcloudapi.net"),
    ("china", "https://vault.azure.cn"),
    ("AzureChinaCloud", "https://vault.azure.cn"),
];

const VAULTS: &[&str] = &[
    "https://contoso.vault.azure.net",
    "https://Contoso.Vault.Azure.Net/",
    "https://contoso.vault.azure.net.evil.com",
    "https://contosovault.azure.net",
    "https://theirs.vault.usgovcloudapi.net:8443",
    "https://a.b.vault.azure.cn",
    "https://127.0.0.1:8443",
    "https://vault.azure.net",
];

/// Resources a challenge could name, beside the input's.
const RESOURCES: &[&str] = &[
    "https://vault.azure.net",
    "HTTPS://VAULT.AZURE.NET",
    "https://vault.azure.net/",
    "https://vault.azure.net:443",
    "http://vault.azure.net",
    "https://vault.usgovcloudapi.net",
    "https://vault.azure.cn",
    "https://azure.net",
    "https://evil.com",
    "",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (vault_line, header) = match text.split_once('\n') {
        Some((v, h)) => (Some(v), h),
        None => (None, &*text),
    };
    // Fixed vaults against fixed resources: the same every run, so checked once.
    static FIXED: std::sync::Once = std::sync::Once::new();
    FIXED.call_once(|| {
        for (cloud, expected) in CLOUDS {
            for vault in VAULTS {
                for resource in RESOURCES {
                    check_accepted(cloud, expected, vault, resource);
                }
            }
        }
    });

    let parsed = parse_challenge(header);
    // What this input adds: its vault against every resource, its resources against every vault.
    let mut resources: Vec<&str> = vec![header, header.trim().trim_matches('"')];
    if let Some((_, r)) = &parsed {
        resources.push(r);
    }
    for (cloud, expected) in CLOUDS {
        for vault in VAULTS.iter().chain(&vault_line) {
            for resource in &resources {
                check_accepted(cloud, expected, vault, resource);
            }
        }
        if let Some(vault) = vault_line {
            for resource in RESOURCES {
                check_accepted(cloud, expected, vault, resource);
            }
        }
    }
    // A cloud name that does not parse decides nothing.
    if let Some(line) = vault_line {
        let known = matches!(
            line.to_ascii_lowercase().as_str(),
            "" | "public"
                | "azurecloud"
                | "usgov"
                | "azureusgovernment"
                | "china"
                | "azurechinacloud"
        );
        if !known {
            assert_eq!(
                challenge_accepted(line, VAULTS[0], CLOUDS[0].1),
                None,
                "cloud {line:?} parsed"
            );
        }
    }

    let Some((tenant, resource)) = parsed else {
        return;
    };
    let scheme = header.trim();
    // The scheme is case-insensitive (RFC 9110 §11.1), as the Azure SDKs read it.
    assert!(
        scheme
            .get(..6)
            .is_some_and(|s| s.eq_ignore_ascii_case("bearer")),
        "challenge parsed from a non-Bearer header {header:?}"
    );
    assert!(!tenant.is_empty(), "empty tenant from {header:?}");
    assert_eq!(
        tenant,
        tenant.to_ascii_lowercase(),
        "tenant not lower-cased"
    );
    assert!(
        !tenant.contains(['/', '?', '#']),
        "tenant {tenant:?} holds a path or query character"
    );
    assert!(!resource.is_empty(), "empty resource from {header:?}");
    assert!(
        !resource.ends_with('/'),
        "resource {resource:?} ends with '/'"
    );
    assert!(
        header.contains(&*resource),
        "resource {resource:?} is not from {header:?}"
    );
});

/// The host of an origin as `origin::parse` reads it, when it does (scheme, no userinfo, path,
/// query or fragment; an optional port; a lower-cased host).
fn origin_host(origin: &str) -> Option<String> {
    let v = origin.trim();
    let v = v.strip_suffix('/').unwrap_or(v);
    let rest = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"))?;
    if rest.contains(['@', '/', '?', '#']) {
        return None;
    }
    let host = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !p.contains(']') => h,
        _ => rest,
    };
    Some(host.to_ascii_lowercase())
}

fn check_accepted(cloud: &str, expected: &str, vault: &str, resource: &str) {
    let Some(accepted) = challenge_accepted(cloud, vault, resource) else {
        // Only an origin that does not parse (the clouds here all do).
        let host = origin_host(vault);
        assert!(
            !VAULTS.contains(&vault),
            "fixed vault {vault:?} did not parse ({host:?})"
        );
        return;
    };
    let host = origin_host(vault)
        .unwrap_or_else(|| panic!("{vault:?} parsed as an origin, but not by the oracle"));
    let resource_host = &expected["https://".len()..];
    let oracle = resource.eq_ignore_ascii_case(expected)
        && host.len() > resource_host.len() + 1
        && host.ends_with(&format!(".{resource_host}"));
    assert_eq!(
        accepted, oracle,
        "cloud {cloud}, vault {vault:?} (host {host:?}), resource {resource:?}"
    );
}
