//! `setup.sh check`: every link of the chain read back from a recorded Azure state (the
//! stand-in `az` of world.rs), one broken link per test, each reported with its step and the
//! problem code the component would answer with. Read-only: the stub logs every call.

use super::scripts::{sample_config, setup, subcommand, Run, TENANT_B};
use super::world::*;
use super::*;

/// The settings document (deploy/settings.json) a deployment of the default world has.
fn settings() -> String {
    format!(
        r#"{{
  "cloud": "public",
  "azure_client_id": "{CLIENT}",
  "app_client_id": "{APP}",
  "cross_tenant_name": "b",
  "cross_tenant_id": "{TENANT_B}",
  "cross_keyvault_endpoint": "https://kv-b.vault.azure.net",
  "cross_blob_service_endpoint": "https://stb.blob.core.windows.net",
  "cross_tenant_callers": ["caller1"],
  "keyvault_endpoint": "https://kv-a.vault.azure.net",
  "blob_service_endpoint": "https://sta.blob.core.windows.net"
}}
"#
    )
}

fn check(label: &str, world: &World, settings_text: &str) -> (Run, TempDir) {
    let tmp = TempDir::new(label);
    let settings_file = tmp.path().join("settings.json");
    std::fs::write(&settings_file, settings_text).unwrap();
    // The fixture is a document the component reads.
    if settings_text.trim_start().starts_with('{') && label != "check-json-invalid" {
        super::settings::valid_document(settings_text, label);
    }
    let stub = world.stub();
    let run = setup(
        &tmp,
        &sample_config("public", ""),
        &["--settings", settings_file.to_str().unwrap(), "check"],
        Some(&stub),
    );
    // Read-only: nothing but reads and the CLI's own subscription selection.
    for call in read(&tmp.path().join("az.log")).lines() {
        let words = subcommand(call);
        let verb = words.rsplit(' ').next().unwrap_or_default();
        assert!(
            matches!(verb, "show" | "list") || words == "account set",
            "check changed something: {call}"
        );
    }
    (run, tmp)
}

/// The report's lines that are not ok: (status, step, the rest, the fix line).
fn broken(run: &Run) -> Vec<(String, String, String, String)> {
    let lines: Vec<&str> = run.stdout.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let mut words = l.split_whitespace();
        let status = words.next().unwrap_or_default();
        if status == "missing" || status == "drifted" {
            let step = words.next().unwrap_or_default().to_string();
            let fix = lines.get(i + 1).copied().unwrap_or_default();
            assert!(fix.trim_start().starts_with("fix: "), "{l} has no fix line");
            out.push((status.into(), step, l.to_string(), fix.to_string()));
        }
    }
    out
}

/// One broken link: the run fails, exactly one line says so, with this step and code.
fn one_broken(
    label: &str,
    world: World,
    settings_text: &str,
    status: &str,
    step: &str,
    code: &str,
    about: &str,
) {
    let (run, _tmp) = check(label, &world, settings_text);
    assert!(
        !run.ok,
        "a broken link must fail the check:\n{}",
        run.stdout
    );
    let found = broken(&run);
    assert_eq!(found.len(), 1, "expected one broken link:\n{}", run.stdout);
    let (s, st, line, fix) = &found[0];
    assert_eq!((s.as_str(), st.as_str()), (status, step), "{line}");
    assert!(line.contains(about), "{line} does not name {about}");
    assert!(
        fix.ends_with(&format!("(meanwhile the component answers {code})")),
        "{fix}"
    );
    // The code is one the troubleshooting table has, under that step.
    let docs = read(&repo().join("docs/deploy.md"));
    assert!(
        docs.contains(&format!("| `{code}`")),
        "docs/deploy.md has no row for {code}"
    );
}

#[test]
fn check_reports_every_link_ok_on_a_complete_setup() {
    let (run, _tmp) = check("check-ok", &World::default(), &settings());
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert!(broken(&run).is_empty(), "{}", run.stdout);
    let steps: BTreeSet<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ok       "))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        steps,
        BTreeSet::from([
            "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7", "2.1", "2.2", "2.3", "3", "6"
        ])
    );
    assert!(run
        .stdout
        .contains("kv-b.vault.azure.net resolves to 10.1.0.4"));
    // Its dry run prints the reads and calls nothing.
    let tmp = TempDir::new("check-dry");
    let run = setup(
        &tmp,
        &sample_config("public", ""),
        &["--dry-run", "check"],
        None,
    );
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout
            .lines()
            .filter(|l| l.starts_with("? az "))
            .count()
            > 20
    );
    assert!(!run.stdout.lines().any(|l| l.starts_with("+ az ")
        && !l.contains("account set")
        && !l.contains("az login")
        && !l.contains("cloud set")));
}

#[test]
fn check_finds_a_recreated_identity_on_the_scale_set() {
    let world = World {
        vmss_principals: "99999999-0000-4000-8000-999999999999".into(),
        ..World::default()
    };
    one_broken(
        "check-vmss",
        world,
        &settings(),
        "drifted",
        "1.3",
        "identity-not-found",
        VMSS,
    );
}

#[test]
fn check_finds_the_identity_missing_from_a_recreated_pool() {
    let world = World {
        vmss_ids: String::new(),
        vmss_principals: String::new(),
        ..World::default()
    };
    one_broken(
        "check-vmss-gone",
        world,
        &settings(),
        "missing",
        "1.3",
        "identity-not-found",
        "re-created",
    );
}

#[test]
fn check_finds_a_drifted_federated_credential() {
    let world = World {
        fic: fic_ok().replace(PRINCIPAL, "11111111-9999-4999-8999-111111111111"),
        ..World::default()
    };
    one_broken(
        "check-fic",
        world,
        &settings(),
        "drifted",
        "1.5",
        "entra-fic-mismatch",
        "11111111-9999",
    );
}

#[test]
fn check_finds_a_missing_federated_credential() {
    let world = World {
        fic: String::new(),
        ..World::default()
    };
    one_broken(
        "check-fic-gone",
        world,
        &settings(),
        "missing",
        "1.5",
        "entra-fic-missing",
        "bridge-fic",
    );
}

#[test]
fn check_finds_no_consent_in_the_target_tenant() {
    let world = World {
        sp: false,
        ..World::default()
    };
    one_broken(
        "check-sp",
        world,
        &settings(),
        "missing",
        "2.1",
        "entra-app-not-in-tenant",
        "tenant B",
    );
}

#[test]
fn check_finds_a_pending_connection_as_the_target_sees_it() {
    let world = World {
        connection: "Pending".into(),
        ..World::default()
    };
    let (run, _tmp) = check("check-pending", &world, &settings());
    assert!(!run.ok);
    let found = broken(&run);
    // Both of tenant B's resources have a pending connection: one link each.
    assert_eq!(found.len(), 2, "{}", run.stdout);
    assert!(found
        .iter()
        .all(|(s, step, ..)| s == "missing" && step == "2.3"));
    assert!(found[0].3.contains("keyvault-network") && found[1].3.contains("storage-network"));
}

#[test]
fn check_finds_a_missing_dns_zone_group() {
    let world = World {
        zone_groups: Some(String::new()),
        a_record: String::new(),
        ..World::default()
    };
    let (run, _tmp) = check("check-dns", &world, &settings());
    assert!(!run.ok);
    let found = broken(&run);
    assert!(
        found.iter().all(|(_, step, ..)| step == "3"),
        "{}",
        run.stdout
    );
    assert!(found
        .iter()
        .any(|(_, _, l, f)| l.contains("DNS zone group of pe-kv-b")
            && f.contains("keyvault-network")));
}

#[test]
fn check_finds_a_name_that_resolves_publicly() {
    let world = World {
        a_record: "20.50.2.1".into(),
        pe_ip: "20.50.2.1".into(),
        ..World::default()
    };
    let (run, _tmp) = check("check-public-ip", &world, &settings());
    assert!(!run.ok);
    let found = broken(&run);
    assert_eq!(found.len(), 2, "{}", run.stdout);
    assert!(found.iter().all(|(s, step, l, _)| s == "drifted"
        && step == "3"
        && l.contains("not a private address")));
}

#[test]
fn check_finds_a_missing_role_in_the_target_tenant() {
    let world = World {
        roles: false,
        ..World::default()
    };
    let (run, _tmp) = check("check-roles", &world, &settings());
    assert!(!run.ok);
    let found = broken(&run);
    // Every role assignment is its own link: 2 same-tenant (1.6), 3 in tenant B (2.2).
    let codes: Vec<(&str, bool)> = found
        .iter()
        .map(|(_, step, _, fix)| (step.as_str(), fix.contains("forbidden-rbac")))
        .collect();
    assert_eq!(
        codes,
        [
            ("1.6", true),
            ("1.6", true),
            ("2.2", true),
            ("2.2", true),
            ("2.2", true)
        ],
        "{}",
        run.stdout
    );
}

#[test]
fn check_finds_settings_that_disagree_with_azure() {
    let wrong = settings().replace(CLIENT, "c2c2c2c2-3333-4333-8333-c2c2c2c2c2c2");
    one_broken(
        "check-settings",
        World::default(),
        &wrong,
        "drifted",
        "6",
        "identity-not-found",
        "azure_client_id",
    );
    let wrong = settings().replace(
        "https://kv-b.vault.azure.net",
        "https://kv-x.vault.azure.net",
    );
    one_broken(
        "check-settings-vault",
        World::default(),
        &wrong,
        "drifted",
        "6",
        "keyvault-tenant-mismatch",
        "cross_keyvault_endpoint",
    );
}

/// check reads the settings document as the component does (deploy/azure/lib.sh,
/// read_settings): any JSON layout, lists, escapes, null; and a document the component would
/// refuse whole is one broken link, configuration-invalid.
#[test]
fn check_reads_the_settings_document_as_the_component_does() {
    // One line, other member order, escapes, a list, a number, null, true/false.
    let compact = format!(
        r#"{{"app_client_id":"{APP}","cloud":"\u0070ublic","azure_client_id":"{CLIENT}","cross_tenant_id":"{TENANT_B}","cross_keyvault_endpoint":"https:\/\/kv-b.vault.azure.net/","cross_blob_service_endpoint":"https://stb.blob.core.windows.net","keyvault_endpoint":"https://kv-a.vault.azure.net","blob_service_endpoint":"https://sta.blob.core.windows.net","cross_tenant_secrets":["a","b\"c"],"max_blob_bytes":10,"same_tenant_blobs":null,"auth_disabled":false}}"#
    );
    let (run, _tmp) = check("check-json-compact", &World::default(), &compact);
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("ok       6    cloud=public (the configured cloud)"),
        "{}",
        run.stdout
    );
    // A member the set-up knows, set to null: missing.
    let unset = settings().replace("\"https://kv-b.vault.azure.net\"", "null");
    one_broken(
        "check-json-null",
        World::default(),
        &unset,
        "missing",
        "6",
        "keyvault-tenant-mismatch",
        "cross_keyvault_endpoint",
    );
    // What the component refuses whole: one link, with the reason and never a value.
    for (text, why) in [
        (
            format!("cloud=public\nazure_client_id={CLIENT}\n"),
            "it is not a JSON object",
        ),
        (
            settings().replacen(
                "\"cloud\": \"public\"",
                "\"cloud\": \"secret-ish\", \"cloud\": \"public\"",
                1,
            ),
            "'cloud' is written twice",
        ),
        (
            settings().replace("[\"caller1\"]", "[\"caller1,secret-ish\"]"),
            "holds a comma",
        ),
        (
            settings().replace("[\"caller1\"]", "{\"name\": \"secret-ish\"}"),
            "expected a string",
        ),
        (settings().replace("\n}", ",\n}"), "not valid JSON"),
    ] {
        let (run, _tmp) = check("check-json-invalid", &World::default(), &text);
        assert!(!run.ok, "{text}");
        let found = broken(&run);
        assert_eq!(found.len(), 1, "{}", run.stdout);
        let (status, step, line, fix) = &found[0];
        assert_eq!((status.as_str(), step.as_str()), ("drifted", "6"), "{line}");
        assert!(line.contains(why), "{line}");
        assert!(!line.contains("secret-ish"), "{line}");
        assert!(
            fix.ends_with("(meanwhile the component answers configuration-invalid)"),
            "{fix}"
        );
    }
    // No document at all.
    let tmp = TempDir::new("check-no-settings");
    let stub = World::default().stub();
    let run = setup(
        &tmp,
        &sample_config("public", ""),
        &[
            "--settings",
            tmp.path().join("absent.json").to_str().unwrap(),
            "check",
        ],
        Some(&stub),
    );
    let found = broken(&run);
    assert_eq!(found.len(), 1, "{}", run.stdout);
    assert!(found[0].2.contains("no such file"), "{}", found[0].2);
    assert!(found[0].3.contains("configuration-missing"));
}
