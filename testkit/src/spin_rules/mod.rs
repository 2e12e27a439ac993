//! Spin 3.6.3's rules for the files this project ships or generates, with Spin's reasons: a
//! runtime config (`spin up --runtime-config-file`), the manifest (`spin.toml`, through the test
//! host's own loader) and a `SPIN_VARIABLE_*` env file. What Spin refuses, this refuses; a file
//! that passes here is one `spin up` starts with. Each rule was read off Spin 3.6.3's source
//! or seen running it; the reasons are its own messages.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

pub mod allowed;
pub mod manifest;
mod runtime_config;
pub mod template;
pub mod variables;

pub use runtime_config::{
    check_kebab_id, check_tls_host, BlockedNetwork, ClientTls, LoadedClientTls, OutboundHttp,
    ResolvedStore, RuntimeConfig, StoreConfig, VariablesProvider, DEFAULT_STORE,
    DEFAULT_STORE_FILE,
};

/// Checks a runtime config the way Spin 3.6.3 loads it (without reading the files it names);
/// `Err` carries Spin's reason. [`RuntimeConfig::parse`] gives the typed value.
pub fn check_runtime_config(text: &str) -> Result<(), String> {
    RuntimeConfig::parse(text).map(|_| ())
}

/// Checks an env file of `SPIN_VARIABLE_<NAME>=value` lines against the variables `spin.toml`
/// declares: Spin's env provider maps `SPIN_VARIABLE_FOO_BAR` to `foo_bar`, so a line for an
/// undeclared variable is silently ignored by Spin — a mistake this reports.
pub fn check_env_file(text: &str, manifest: &Path) -> Result<(), String> {
    let declared = declared_variables(manifest)?;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, _) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: not NAME=value", n + 1))?;
        let name = key
            .strip_prefix("SPIN_VARIABLE_")
            .ok_or_else(|| format!("line {}: {key} is not a SPIN_VARIABLE_*", n + 1))?
            .to_ascii_lowercase();
        if !declared.contains(&name) {
            return Err(format!(
                "line {}: {key} sets `{name}`, which spin.toml does not declare",
                n + 1
            ));
        }
    }
    Ok(())
}

/// The `[variables]` names of a manifest, after checking the manifest loads the way Spin loads
/// it (names, templates, `allowed_outbound_hosts`, stores).
pub fn declared_variables(manifest: &Path) -> Result<BTreeSet<String>, String> {
    let text = std::fs::read_to_string(manifest)
        .map_err(|e| format!("read {}: {e}", manifest.display()))?;
    check_manifest(&text)?;
    let doc: toml::Table = text.parse().map_err(|e| format!("{e}"))?;
    Ok(doc
        .get("variables")
        .and_then(toml::Value::as_table)
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default())
}

/// Checks a manifest with every required variable provided (a placeholder value), the way
/// `spin up` loads it.
pub fn check_manifest(text: &str) -> Result<(), String> {
    let doc: toml::Table = text.parse().map_err(|e| format!("invalid manifest: {e}"))?;
    let provided: HashMap<String, String> = doc
        .get("variables")
        .and_then(toml::Value::as_table)
        .map(|t| {
            t.iter()
                .filter(|(_, v)| v.get("required").and_then(toml::Value::as_bool) == Some(true))
                .map(|(k, _)| (k.clone(), "placeholder".to_string()))
                .collect()
        })
        .unwrap_or_default();
    manifest_check(text, &provided).map_err(|e| format!("{e:#}"))
}

/// Loads a manifest as `spin up` would (with `provided` variable values): Spin's rules for
/// names, templates, routes, stores and `allowed_outbound_hosts`.
pub fn manifest_check(text: &str, provided: &HashMap<String, String>) -> anyhow::Result<()> {
    manifest::load_str(text, provided).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_host_with_a_port_is_refused_with_spins_reason() {
        let rc = "[[client_tls]]\ncomponent_ids = [\"c\"]\nhosts = [\"v.vault.azure.net:40409\"]\nca_roots_file = \"ca.pem\"\n";
        let e = check_runtime_config(rc).unwrap_err();
        assert!(e.contains("ports not currently supported"), "{e}");
        assert!(e.starts_with("failed to parse [[client_tls]] table"), "{e}");
        let ok = rc.replace(":40409", "");
        check_runtime_config(&ok).unwrap();
        let ip = rc.replace("v.vault.azure.net:40409", "127.0.0.1");
        check_runtime_config(&ip).unwrap();
    }

    #[test]
    fn unknown_keys_and_store_types_are_refused() {
        let e = check_runtime_config("[token_cache]\ntype = \"spin\"\n").unwrap_err();
        assert_eq!(e, "unused runtime config key(s): token_cache");
        let e =
            check_runtime_config("[key_value_store.default]\ntype = \"memcached\"\n").unwrap_err();
        assert!(
            e.contains("the store type 'memcached' was not registered"),
            "{e}"
        );
        let e = check_runtime_config("[key_value_store.default]\ntype = \"redis\"\n").unwrap_err();
        assert!(e.contains("missing field `url`"), "{e}");
        let e = check_runtime_config(
            "[[client_tls]]\ncomponent_ids = [\"c\"]\nhosts = [\"h\"]\nca_file = \"x\"\n",
        )
        .unwrap_err();
        assert!(e.contains("unknown field `ca_file`"), "{e}");
        check_runtime_config(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://r:6379\"\n\n[[variables_provider]]\ntype = \"env\"\n",
        )
        .unwrap();
    }
}
