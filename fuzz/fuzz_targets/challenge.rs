//! `keyvault::parse_challenge` and `keyvault::resource_matches_vault`: the `WWW-Authenticate`
//! header of a vault's 401, which decides where our token may go.
//!
//! Input: `VAULT-ORIGIN\nHEADER` (no newline: the whole input is the header; a first line that is
//! not an origin is ignored). Properties: never panics; a parsed challenge came from a Bearer
//! header, has a non-empty lower-case tenant without `/` and a resource that parses as a URL with
//! a host and no trailing `/`; `resource_matches_vault` is true only when the vault host ends
//! with "." + the resource's host (never for an equal host, another domain, or no host), for
//! fixed vaults, the input's vault, and the raw header text taken as a resource.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tenant_bridge::config::{parse_origin, Origin};
use tenant_bridge::keyvault::{parse_challenge, resource_matches_vault};

const VAULTS: &[&str] = &[
    "https://contoso.vault.azure.net",
    "https://contoso.vault.azure.net.evil.com",
    "https://theirs.vault.usgovcloudapi.net:8443",
    "https://127.0.0.1:8443",
    "https://vault.azure.net",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (vault_line, header) = match text.split_once('\n') {
        Some((v, h)) => (Some(v), h),
        None => (None, &*text),
    };
    let mut vaults: Vec<Origin> = VAULTS.iter().map(|v| parse_origin(v).unwrap()).collect();
    if let Some(v) = vault_line.and_then(|v| parse_origin(v).ok()) {
        vaults.push(v);
    }

    // Any text as a resource: the rule must hold for what a challenge could carry.
    for vault in &vaults {
        check_match(vault, header);
        check_match(vault, header.trim().trim_matches('"'));
    }

    let Some(c) = parse_challenge(header) else {
        return;
    };
    let scheme = header.trim();
    assert!(
        scheme.starts_with("Bearer") || scheme.starts_with("bearer"),
        "challenge parsed from a non-Bearer header {header:?}"
    );
    assert!(!c.tenant.is_empty(), "empty tenant from {header:?}");
    assert_eq!(
        c.tenant,
        c.tenant.to_ascii_lowercase(),
        "tenant not lower-cased"
    );
    assert!(!c.tenant.contains('/'), "tenant {:?} holds a '/'", c.tenant);
    assert!(
        !c.resource.ends_with('/'),
        "resource {:?} ends with '/'",
        c.resource
    );
    let resource = url::Url::parse(&c.resource).expect("resource is a URL");
    assert!(
        resource.host_str().is_some_and(|h| !h.is_empty()),
        "resource {:?} has no host",
        c.resource
    );
    for vault in &vaults {
        check_match(vault, &c.resource);
    }
});

fn check_match(vault: &Origin, resource: &str) {
    if !resource_matches_vault(vault, resource) {
        return;
    }
    let host = url::Url::parse(resource)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_else(|| panic!("{resource:?} without a host matched {vault}"));
    assert!(
        !host.is_empty(),
        "empty host of {resource:?} matched {vault}"
    );
    assert!(
        vault.host.ends_with(&format!(".{host}")),
        "{resource:?} (host {host:?}) matched {vault}, which is not below it"
    );
    assert!(vault.host.len() > host.len() + 1 && vault.host != host);
}
