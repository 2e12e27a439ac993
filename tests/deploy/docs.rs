//! docs/deploy.md against the code: a troubleshooting row for every problem code, every
//! variable, and what a platform engineer must be told.

use super::*;

/// Problem codes the component can answer with: the first string literal after each
/// constructor of a `Problem`, and the codes of entra.rs's AADSTS table.
fn problem_codes() -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    let mut src = Vec::new();
    files_under(&repo().join("src"), &mut src);
    for file in src
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
    {
        let text = read(file);
        let text = text.split("#[cfg(test)]").next().unwrap();
        for ctor in [
            "Problem::new(",
            "Self::new(",
            "Problem::upstream(",
            "Problem::not_found(",
            "Problem::bad_request(",
            "Problem::unavailable(",
            ".with_code(",
        ] {
            for (at, _) in text.match_indices(ctor) {
                let rest = &text[at + ctor.len()..];
                // Skip whitespace and a status (`StatusCode::NAME,`); the code is the next literal.
                let rest = rest.trim_start();
                let rest = rest.strip_prefix("StatusCode::").map_or(rest, |r| {
                    r.trim_start_matches(|c: char| c.is_ascii_uppercase() || c == '_')
                });
                let rest = rest.trim_start_matches(|c: char| {
                    c.is_whitespace() || c.is_ascii_digit() || c == ','
                });
                if let Some(code) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
                    if is_code(code) {
                        codes.insert(code.to_string());
                    }
                }
            }
        }
        for (at, _) in text.match_indices("=> (") {
            let rest = text[at + 4..].trim_start();
            if let Some(code) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
                if is_code(code) {
                    codes.insert(code.to_string());
                }
            }
        }
    }
    codes
}

fn is_code(s: &str) -> bool {
    s.contains('-') && s.chars().all(|c| c.is_ascii_lowercase() || c == '-')
}

#[test]
fn the_deploy_docs_cover_every_problem_code_and_variable() {
    let docs = read(&repo().join("docs/deploy.md"));
    let codes = problem_codes();
    // Every command of setup.sh is documented.
    let usage = read(&deploy().join("azure/setup.sh"));
    for command in [
        "tenant-a",
        "tenant-b",
        "tenant-a-dns",
        "outputs",
        "check",
        "teardown-target",
    ] {
        assert!(
            usage.contains(&format!("#   {command} ")),
            "setup.sh usage lacks {command}"
        );
        assert!(
            docs.contains(&format!("setup.sh {command}")) || docs.contains(&format!("{command}`")),
            "docs/deploy.md lacks {command}"
        );
    }
    // The scan finds the codes it must: a sample from each module.
    for code in [
        "keyvault-forbidden-rbac",
        "storage-network",
        "identity-not-found",
        "entra-fic-mismatch",
        "entra-app-not-in-tenant",
        "entra-federation-disabled",
        "upstream-dns",
        "outbound-denied",
        "configuration-missing",
        "invalid-blob-name",
        "blob-too-large",
    ] {
        assert!(codes.contains(code), "the scan missed {code}: {codes:?}");
    }
    let missing: Vec<_> = codes
        .iter()
        .filter(|c| !docs.contains(&format!("`{c}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/deploy.md lacks troubleshooting rows for {missing:?}"
    );
    // A profile slot's variable is mentioned by name, or by the range the slot table writes:
    // `profile1_x` … `profile4_x`.
    let mentioned = |v: &str| {
        if docs.contains(&format!("`{v}`")) {
            return true;
        }
        let slot_field = v
            .strip_prefix("profile")
            .and_then(|r| r.split_once('_'))
            .filter(|(n, _)| n.parse::<u8>().is_ok());
        slot_field.is_some_and(|(_, field)| {
            docs.contains(&format!("`profile1_{field}` … `profile4_{field}`"))
        })
    };
    // The two Spin variables, and every setting of the `settings` document.
    let missing: Vec<_> = spin_variables()
        .keys()
        .chain(super::settings::setting_names())
        .filter(|v| !mentioned(v))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/deploy.md does not mention the settings {missing:?}"
    );
    for warned in [
        "block_networks",
        "/api/healthz",
        "/api/livez",
        "spin registry push",
        "taint",
        // issue 13: what a platform engineer needs said
        "executor does not exist in namespace",
        "port-forward",
        "--nrg-restriction-level",
        "upgrade pipeline",
        "Spin 3.6.3",
        "Spin 4",
        "NxDomainRedirect",
        "Role Based Access Control Administrator",
        "privateEndpointConnectionsApproval/action",
        "--expose-token",
        "--password-stdin",
        "privatelink.azurecr.io",
        "podLinkLocalAccess",
        "169.254.169.254/32",
        "setup.sh check",
        "Bicep",
        "Terraform",
        // issue 14: several target tenants
        "TARGET_TENANTS",
        "teardown-target",
        // issue 15: pull secrets
        "ExternalSecret",
        "kubernetes.io/dockerconfigjson",
        // two Spin variables: the settings document, and egress without templates
        "deploy/settings.json",
        "SPIN_VARIABLE_SETTINGS",
        "jq -s add",
        "sed -n '/^{/,/^}/p'",
        "deploy/profiles/",
    ] {
        assert!(
            docs.contains(warned),
            "docs/deploy.md does not mention {warned}"
        );
    }
}

/// The settings are one JSON document now: nothing in deploy/ or docs/deploy.md tells a user to
/// set a setting as a Spin variable of its own (`SPIN_VARIABLE_<NAME>`, a SpinApp variable per
/// setting) or to edit the settings.env that the document replaced.
#[test]
fn nothing_tells_users_to_set_a_setting_as_a_variable_of_its_own() {
    let declared: BTreeSet<String> = spin_variables()
        .keys()
        .map(|k| k.to_ascii_uppercase())
        .collect();
    let mut files = vec![repo().join("docs/deploy.md")];
    files_under(&deploy(), &mut files);
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue; // not text
        };
        let shown = file.display();
        assert!(
            !text.contains("settings.env"),
            "{shown} mentions settings.env"
        );
        for (at, _) in text.match_indices("SPIN_VARIABLE_") {
            let name: String = text[at + "SPIN_VARIABLE_".len()..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == &'_')
                .collect();
            assert!(
                declared.contains(&name),
                "{shown}: SPIN_VARIABLE_{name} is not a Spin variable (settings are members of SPIN_VARIABLE_SETTINGS)"
            );
        }
    }
}

/// README links docs/deploy.md's Egress section: what spin.toml allows, what least privilege
/// rests on, and when spin.toml needs a host added.
#[test]
fn the_deploy_docs_explain_egress() {
    let docs = read(&repo().join("docs/deploy.md"));
    let at = docs
        .find("\n## Egress\n")
        .expect("docs/deploy.md has a section '## Egress'");
    let section = &docs[at + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    for said in [
        "allowed_outbound_hosts",
        "every declared variable",
        "trusted_token_hosts",
        "NetworkPolicy",
        "Azure Firewall",
        "custom",
        "spin.toml",
    ] {
        assert!(
            section.contains(said),
            "the Egress section does not say {said}"
        );
    }
    // The public cloud's suffixes it names are the ones spin.toml lists.
    for suffix in ["vault.azure.net", "blob.core.windows.net", "azurecr.io"] {
        assert!(
            section.contains(&format!("*.{suffix}")),
            "the Egress section does not name *.{suffix}"
        );
        assert!(
            super::settings::spin_admits(&format!("https://x.{suffix}")),
            "spin.toml does not list https://*.{suffix}"
        );
    }
}

// ---- helpers -------------------------------------------------------------------------------
