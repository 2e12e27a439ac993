//! Every Spin file the project ships goes through Spin 3.6.3's rules (testkit `spin_rules`):
//! what `spin up` or SpinKube's shim would refuse fails here, with Spin's reason. The sandbox's
//! generated files are checked in the `sandbox` module, where they are generated.

use std::path::{Path, PathBuf};

use tenant_bridge_testkit::spin_rules;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn the_shipped_runtime_configs_start_spin() {
    for file in [
        "runtime-config.toml",
        "deploy/secrets/runtime-config.toml.example",
    ] {
        let text = read(&repo().join(file));
        spin_rules::check_runtime_config(&text)
            .unwrap_or_else(|e| panic!("Spin 3.6.3 refuses {file}: {e}"));
    }
}

#[test]
fn the_commented_redis_alternative_starts_spin_too() {
    // runtime-config.toml documents the Redis store in comments: uncommented, it must work.
    let text = read(&repo().join("runtime-config.toml"));
    let redis: String = text
        .lines()
        .map(|l| l.strip_prefix('#').unwrap_or(l).trim())
        .skip_while(|l| !(l.starts_with("[key_value_store.default]")))
        .skip(1)
        .skip_while(|l| !l.starts_with("[key_value_store.default]"))
        .take_while(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(redis.contains("type = \"redis\""), "{redis}");
    spin_rules::check_runtime_config(&redis).unwrap_or_else(|e| panic!("{e}\n{redis}"));
}

#[test]
fn the_manifest_loads_like_spin_up() {
    let vars = spin_rules::declared_variables(&repo().join("spin.toml")).expect("spin.toml loads");
    let mut vars: Vec<&str> = vars.iter().map(String::as_str).collect();
    vars.sort();
    assert_eq!(vars, ["function_keys", "settings"]);
}

#[test]
fn the_rules_refuse_what_spin_refuses() {
    // The checks above cannot pass vacuously: the same rules refuse Spin's known refusals.
    let port = "[[client_tls]]\ncomponent_ids = [\"tenant-bridge\"]\nhosts = [\"tenant-a-vault.vault.azure.net:40409\"]\nca_roots_file = \"ca.pem\"\n";
    let e = spin_rules::check_runtime_config(port).unwrap_err();
    assert!(e.contains("ports not currently supported"), "{e}");
    let e = spin_rules::check_runtime_config("[token_cache]\n").unwrap_err();
    assert!(e.contains("unused runtime config key(s)"), "{e}");
    let manifest = read(&repo().join("spin.toml")).replace(
        "allowed_outbound_hosts = [",
        "allowed_outbound_hosts = [\"https://127.0.0.1:10000/devstoreaccount1\", ",
    );
    assert!(spin_rules::check_manifest(&manifest).is_err());
    let env = "SPIN_VARIABLE_FUNCTION_KEYS=a:0123456789abcdef\nSPIN_VARIABLE_NOT_DECLARED=x\n";
    let e = spin_rules::check_env_file(env, &repo().join("spin.toml")).unwrap_err();
    assert!(e.contains("not_declared"), "{e}");
}
