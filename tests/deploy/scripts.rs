//! deploy/azure/setup.sh: shellcheck, the dry run of every command in order, refusals, and real
//! runs against a stand-in `az` (tests/deploy/world.rs) that answers from a recorded state.

use super::world::*;
use super::*;

fn scripts() -> Vec<PathBuf> {
    let mut all = Vec::new();
    files_under(&deploy(), &mut all);
    all.retain(|p| p.extension().and_then(|e| e.to_str()) == Some("sh"));
    all.push(deploy().join("azure/config.env.example"));
    all
}

#[test]
fn the_scripts_pass_shellcheck() {
    let shellcheck = tool(
        "shellcheck",
        "the shellcheck package (apt-get install shellcheck)",
    );
    let out = Command::new(shellcheck)
        .arg("--external-sources")
        .arg("--severity=style")
        .args(scripts())
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "shellcheck:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) const TENANT_A: &str = "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa";
pub(crate) const TENANT_B: &str = "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb";
pub(crate) const TENANT_C: &str = "cccccccc-2222-4222-8222-cccccccccccc";
pub(crate) const SUB_A: &str = "5a5a5a5a-3333-4333-8333-5a5a5a5a5a5a";
pub(crate) const SUB_B: &str = "5b5b5b5b-4444-4444-8444-5b5b5b5b5b5b";
pub(crate) const SUB_C: &str = "5c5c5c5c-4444-4444-8444-5c5c5c5c5c5c";
pub(crate) const SUB_HUB: &str = "5d5d5d5d-4444-4444-8444-5d5d5d5d5d5d";
/// Put in the environment of every script run: none may ever show up in the output.
const SENTINELS: [(&str, &str); 3] = [
    (
        "SPIN_VARIABLE_FUNCTION_KEYS",
        "ops:sentinel-function-key-0xC0FFEE",
    ),
    ("AZURE_CLIENT_SECRET", "sentinel-client-secret-0xBADC0DE"),
    ("REDIS_PASSWORD", "sentinel-redis-password-0xF00D"),
];

pub(crate) fn sample_config(cloud: &str, extra: &str) -> String {
    format!(
        "CLOUD={cloud}
TENANT_A_ID={TENANT_A}
SUBSCRIPTION_A_ID={SUB_A}
LOCATION=westeurope
RESOURCE_GROUP_A=rg-bridge
IDENTITY_NAME=id-bridge
AKS_RESOURCE_GROUP=rg-aks
AKS_CLUSTER_NAME=aks-main
AKS_NODEPOOL=tbridge
AKS_NODEPOOL_CREATE=true
APP_DISPLAY_NAME=bridge-app
FIC_NAME=bridge-fic
VNET_RESOURCE_GROUP=rg-net
VNET_NAME=vnet-main
PE_SUBNET_NAME=snet-pe
PE_KEYVAULT_NAME=pe-kv-b
PE_BLOB_NAME=pe-blob-b
DNS_RESOURCE_GROUP=rg-dns
VNET_LINK_NAME=bridge-link
KEYVAULT_A_NAME=kv-a
KEYVAULT_A_RESOURCE_GROUP=rg-data-a
STORAGE_A_NAME=sta
STORAGE_A_RESOURCE_GROUP=rg-data-a
TENANT_B_ID={TENANT_B}
SUBSCRIPTION_B_ID={SUB_B}
KEYVAULT_B_NAME=kv-b
KEYVAULT_B_RESOURCE_GROUP=rg-data-b
KEYVAULT_B_SECRETS=TEST-SECRET-001,billing-export
STORAGE_B_NAME=stb
STORAGE_B_RESOURCE_GROUP=rg-data-b
STORAGE_B_CONTAINER=exports
{extra}
"
    )
}

pub(crate) struct Run {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) ok: bool,
}

/// Runs setup.sh with the given configuration. `az` on PATH is `stub` (a script), or, when
/// `stub` is None, one that records that it was called at all: a dry run must never call it.
pub(crate) fn setup(tmp: &TempDir, config: &str, args: &[&str], stub: Option<&str>) -> Run {
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let marker = tmp.path().join("az-was-called");
    let az = stub.map(str::to_string).unwrap_or_else(|| {
        format!(
            "#!/usr/bin/env bash\necho called >> '{}'\nexit 99\n",
            marker.display()
        )
    });
    write_executable(&bin.join("az"), &az);
    let config_file = tmp.path().join("config.env");
    std::fs::write(&config_file, config).unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg(deploy().join("azure/setup.sh"))
        .arg("--config")
        .arg(&config_file)
        .args(args)
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env_remove("DRY_RUN")
        .env_remove("VERBOSE")
        .env_remove("TB_CONFIG")
        .env("AZURE_CONFIG_DIR", tmp.path().join("azure-config"))
        .env("STUB_LOG", tmp.path().join("az.log"))
        .env("STUB_STATE", tmp.path().join("az.state"))
        .stdin(std::process::Stdio::null());
    for (k, v) in SENTINELS {
        cmd.env(k, v);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    let run = Run {
        stdout: String::from_utf8_lossy(&stdout).into(),
        stderr: String::from_utf8_lossy(&stderr).into(),
        ok: status.success(),
    };
    if stub.is_none() {
        assert!(!marker.exists(), "a dry run called az:\n{}", run.stdout);
    }
    for (name, value) in SENTINELS {
        assert!(
            !run.stdout.contains(value) && !run.stderr.contains(value),
            "the output carries ${name}"
        );
    }
    run
}

/// `+ az ...` lines: the changes, as their subcommand words ("identity create").
fn changes(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("+ az "))
        .map(subcommand)
        .collect()
}

pub(crate) fn subcommand(args: &str) -> String {
    args.split(' ')
        .take_while(|w| !w.starts_with('-'))
        .collect::<Vec<_>>()
        .join(" ")
}

fn change_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with("+ az ")).collect()
}

/// What no deployment of this pattern ever needs: a secret, a key, a privileged role.
pub(crate) fn assert_nothing_secret(stdout: &str) {
    let commands: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("+ ") || l.starts_with("? "))
        .collect();
    let lower = commands.join("\n").to_lowercase();
    for bad in [
        "credential reset",
        "client-secret",
        "client_secret",
        "--password",
        "keys list",
        "connection-string",
        "accountkey",
        "generate-sas",
        "\"owner\"",
        "'owner'",
        "contributor",
        "administrator",
        "officer",
    ] {
        assert!(
            !lower.contains(bad),
            "the output mentions '{bad}':\n{stdout}"
        );
    }
}

/// The settings document `outputs` prints: the lines from a line `{` to a line `}` (what
/// `sed -n '/^{/,/^}/p'` cuts out, docs/deploy.md step 6), exactly one such document, whose
/// members are all settings the component knows. Members by name; null is `None`.
pub(crate) fn outputs_document(stdout: &str) -> BTreeMap<String, Option<String>> {
    let lines: Vec<&str> = stdout.lines().collect();
    let starts: Vec<usize> = (0..lines.len()).filter(|&i| lines[i] == "{").collect();
    assert_eq!(starts.len(), 1, "one settings document:\n{stdout}");
    let end = (starts[0]..lines.len())
        .find(|&i| lines[i] == "}")
        .unwrap_or_else(|| panic!("the document does not end:\n{stdout}"));
    let text = lines[starts[0]..=end].join("\n");
    super::settings::valid_document(&text, "setup.sh outputs")
}

/// `name: value` of the outputs document (`None`: null).
fn member(doc: &BTreeMap<String, Option<String>>, name: &str) -> Option<String> {
    doc.get(name)
        .unwrap_or_else(|| panic!("setup.sh outputs has no member {name}: {doc:?}"))
        .clone()
}

#[test]
fn dry_run_prints_the_whole_setup_in_order() {
    let tmp = TempDir::new("dry-run");
    let run = setup(
        &tmp,
        &sample_config("public", ""),
        &["--dry-run", "all"],
        None,
    );
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    let expected = [
        // tenant A
        "cloud set",
        "login",
        "account set",
        "group create",
        "identity create",
        "aks nodepool add",
        "vmss identity assign",
        "ad app create",
        "ad app federated-credential create",
        "role assignment create", // same tenant: vault
        "role assignment create", // same tenant: account
        "provider register",      // Microsoft.KeyVault, in the endpoints' subscription
        "provider register",      // Microsoft.Storage
        "network private-endpoint create",
        "network private-endpoint create",
        // tenant B
        "login",
        "account set",
        "ad sp create",
        "role assignment create", // TEST-SECRET-001
        "role assignment create", // billing-export
        "role assignment create", // container exports
        "network private-endpoint-connection approve",
        "network private-endpoint-connection approve",
        // tenant A, after approval
        "login",
        "account set",
        "network private-dns zone create",
        "network private-dns link vnet create",
        "network private-endpoint dns-zone-group create",
        "network private-dns zone create",
        "network private-dns link vnet create",
        "network private-endpoint dns-zone-group create",
    ];
    assert_eq!(changes(&run.stdout), expected, "\n{}", run.stdout);
    assert_nothing_secret(&run.stdout);

    let lines = change_lines(&run.stdout);
    let line = |prefix: &str, n: usize| -> &str {
        lines
            .iter()
            .filter(|l| l.starts_with(prefix))
            .nth(n)
            .unwrap_or_else(|| panic!("no {prefix} #{n}"))
    };
    // Each tenant is entered explicitly, in the order of the walkthrough.
    assert!(line("+ az login", 0).ends_with(&format!("--tenant {TENANT_A}")));
    assert!(line("+ az login", 1).ends_with(&format!("--tenant {TENANT_B}")));
    assert!(line("+ az login", 2).ends_with(&format!("--tenant {TENANT_A}")));
    assert!(line("+ az account set", 1).ends_with(SUB_B));
    // The dedicated, tainted pool and the identity on its scale set.
    let pool = line("+ az aks nodepool add", 0);
    assert!(
        pool.contains("--node-taints tenant-bridge.io/identity=true:NoSchedule"),
        "{pool}"
    );
    assert!(pool.contains("--name tbridge"), "{pool}");
    // Labelled with what the shim installer selects on (AKS keeps pool labels on new nodes).
    assert!(
        pool.ends_with(
            "--labels tenant-bridge.io/identity=true tenant-bridge.io/shim=containerd-shim-spin-v0.24.0"
        ),
        "{pool}"
    );
    let mi_id = format!(
        "/subscriptions/{SUB_A}/resourceGroups/rg-bridge/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-bridge"
    );
    assert!(line("+ az vmss identity assign", 0).ends_with(&format!("--identities {mi_id}")));
    // Multi-tenant app; federated credential: issuer of tenant A, subject the identity's object
    // id, the public cloud's audience.
    assert!(line("+ az ad app create", 0).contains("--sign-in-audience AzureADMultipleOrgs"));
    let fic = line("+ az ad app federated-credential create", 0);
    let params: Value = serde_json::from_str(
        fic.split("--parameters ")
            .nth(1)
            .unwrap()
            .trim_matches('\''),
    )
    .unwrap();
    assert_eq!(
        params["issuer"],
        format!("https://login.microsoftonline.com/{TENANT_A}/v2.0")
    );
    assert_eq!(params["subject"], "<principalId of id-bridge>");
    assert_eq!(params["audiences"], json!(["api://AzureADTokenExchange"]));
    assert_eq!(params["name"], "bridge-fic");
    // Least privilege: reader roles only, scoped to the secret, the container, the vault.
    let roles: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("+ az role assignment create"))
        .copied()
        .collect();
    let kv_b = format!(
        "/subscriptions/{SUB_B}/resourceGroups/rg-data-b/providers/Microsoft.KeyVault/vaults/kv-b"
    );
    let st_b = format!("/subscriptions/{SUB_B}/resourceGroups/rg-data-b/providers/Microsoft.Storage/storageAccounts/stb");
    let kv_a = format!(
        "/subscriptions/{SUB_A}/resourceGroups/rg-data-a/providers/Microsoft.KeyVault/vaults/kv-a"
    );
    let expected_roles = [
        ("Key Vault Secrets User", kv_a.clone()),
        (
            "Storage Blob Data Reader",
            format!("/subscriptions/{SUB_A}/resourceGroups/rg-data-a/providers/Microsoft.Storage/storageAccounts/sta"),
        ),
        ("Key Vault Secrets User", format!("{kv_b}/secrets/TEST-SECRET-001")),
        ("Key Vault Secrets User", format!("{kv_b}/secrets/billing-export")),
        ("Storage Blob Data Reader", format!("{st_b}/blobServices/default/containers/exports")),
    ];
    assert_eq!(roles.len(), expected_roles.len());
    for (line, (role, scope)) in roles.iter().zip(&expected_roles) {
        assert!(line.contains(&format!("--role '{role}'")), "{line}");
        assert!(line.ends_with(&format!("--scope {scope}")), "{line}");
        assert!(
            line.contains("--assignee-principal-type ServicePrincipal"),
            "{line}"
        );
    }
    assert!(roles[0].contains("--assignee-object-id '<principalId of id-bridge>'"));
    assert!(roles[2].contains("service principal of the app in tenant B"));
    // Cross-tenant private endpoints by resource id, for manual approval.
    let pe_kv = line("+ az network private-endpoint create", 0);
    assert!(
        pe_kv.contains(&format!("--private-connection-resource-id {kv_b} ")),
        "{pe_kv}"
    );
    assert!(pe_kv.contains("--group-id vault") && pe_kv.contains("--manual-request true"));
    // In the VNet's region (looked up), not LOCATION's.
    assert!(
        pe_kv.contains("--location '<region of vnet-main>'"),
        "{pe_kv}"
    );
    assert!(line("+ az provider register", 0).contains("--namespace Microsoft.KeyVault"));
    assert!(line("+ az provider register", 1).contains("--namespace Microsoft.Storage"));
    assert!(pe_kv.contains(&format!(
        "--subnet /subscriptions/{SUB_A}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-main/subnets/snet-pe"
    )));
    let pe_blob = line("+ az network private-endpoint create", 1);
    assert!(pe_blob.contains(&format!("--private-connection-resource-id {st_b} ")));
    assert!(pe_blob.contains("--group-id blob"));
    assert!(line("+ az network private-endpoint-connection approve", 0).contains("pe-kv-b"));
    assert!(line("+ az network private-endpoint-connection approve", 1).contains("pe-blob-b"));
    // The privatelink zones, linked to the cluster VNet, in the private endpoints' zone groups.
    assert!(line("+ az network private-dns zone create", 0)
        .ends_with("--name privatelink.vaultcore.azure.net"));
    assert!(line("+ az network private-dns zone create", 1)
        .ends_with("--name privatelink.blob.core.windows.net"));
    let link = line("+ az network private-dns link vnet create", 0);
    assert!(link.contains("--registration-enabled false"));
    // Names the zone has no record for (other storage accounts) still resolve; teardown knows
    // the link is ours.
    assert!(link.contains("--resolution-policy NxDomainRedirect --tags created-by=tenant-bridge"));
    let group = line("+ az network private-endpoint dns-zone-group create", 0);
    assert!(group.contains("--endpoint-name pe-kv-b") && group.ends_with("--zone-name vault"));
    // Each create follows the check that makes it idempotent.
    for (check, change) in [
        ("? az group show", "+ az group create"),
        ("? az identity show", "+ az identity create"),
        ("? az aks nodepool show", "+ az aks nodepool add"),
        ("? az vmss identity show", "+ az vmss identity assign"),
        ("restrictionLevel", "+ az vmss identity assign"),
        ("? az ad app list", "+ az ad app create"),
        ("? az provider show", "+ az provider register"),
        (
            "? az network vnet show",
            "+ az network private-endpoint create",
        ),
        (
            "? az ad app federated-credential show",
            "+ az ad app federated-credential create",
        ),
        ("? az role assignment list", "+ az role assignment create"),
        (
            "? az network private-endpoint show",
            "+ az network private-endpoint create",
        ),
        ("? az ad sp show", "+ az ad sp create"),
        (
            "? az network private-endpoint-connection list",
            "+ az network private-endpoint-connection approve",
        ),
        (
            "? az network private-dns zone show",
            "+ az network private-dns zone create",
        ),
        (
            "? az network private-dns link vnet list",
            "+ az network private-dns link vnet create",
        ),
        (
            "? az network private-endpoint dns-zone-group list",
            "+ az network private-endpoint dns-zone-group create",
        ),
    ] {
        let at = |p: &str| run.stdout.find(p).unwrap_or_else(|| panic!("no {p}"));
        assert!(at(check) < at(change), "{change} before {check}");
    }
    // The app registration is looked up by its exact name, never by a prefix.
    for l in run
        .stdout
        .lines()
        .filter(|l| l.starts_with("? az ad app list"))
    {
        assert!(
            l.contains("--filter \"displayName eq 'bridge-app'\"") && !l.contains("--display-name"),
            "{l}"
        );
    }
    // The settings document it ends with: exactly these members.
    let document = outputs_document(&run.stdout);
    let expected: BTreeMap<String, Option<String>> = [
        ("cloud", "public".to_string()),
        ("azure_client_id", "<clientId of id-bridge>".into()),
        ("app_client_id", "<appId of bridge-app>".into()),
        ("cross_tenant_id", TENANT_B.into()),
        ("cross_tenant_name", "b".into()),
        (
            "cross_keyvault_endpoint",
            "https://kv-b.vault.azure.net".into(),
        ),
        (
            "cross_blob_service_endpoint",
            "https://stb.blob.core.windows.net".into(),
        ),
        ("keyvault_endpoint", "https://kv-a.vault.azure.net".into()),
        (
            "blob_service_endpoint",
            "https://sta.blob.core.windows.net".into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Some(v)))
    .collect();
    assert_eq!(document, expected, "\n{}", run.stdout);
    // Its endpoints are hosts spin.toml lets the component reach.
    super::settings::assert_reachable(&document, "setup.sh outputs");
}

#[test]
fn dry_run_follows_the_sovereign_cloud() {
    for (cloud, az_cloud, authority, audience, vault_zone, blob_zone, vault_host) in [
        (
            "usgov",
            "AzureUSGovernment",
            "https://login.microsoftonline.us",
            "api://AzureADTokenExchangeUSGov",
            "privatelink.vaultcore.usgovcloudapi.net",
            "privatelink.blob.core.usgovcloudapi.net",
            "kv-b.vault.usgovcloudapi.net",
        ),
        (
            "china",
            "AzureChinaCloud",
            "https://login.chinacloudapi.cn",
            "api://AzureADTokenExchangeChina",
            "privatelink.vaultcore.azure.cn",
            "privatelink.blob.core.chinacloudapi.cn",
            "kv-b.vault.azure.cn",
        ),
    ] {
        let tmp = TempDir::new(cloud);
        let run = setup(&tmp, &sample_config(cloud, ""), &["--dry-run", "all"], None);
        assert!(run.ok, "{}", run.stderr);
        let out = &run.stdout;
        assert!(
            out.contains(&format!("+ az cloud set --name {az_cloud}")),
            "{cloud}"
        );
        assert!(
            out.contains(&format!("\"issuer\":\"{authority}/{TENANT_A}/v2.0\"")),
            "{cloud}"
        );
        assert!(
            out.contains(&format!("\"audiences\":[\"{audience}\"]")),
            "{cloud}"
        );
        assert!(out.contains(&format!("--name {vault_zone}")), "{cloud}");
        assert!(out.contains(&format!("--name {blob_zone}")), "{cloud}");
        let document = outputs_document(out);
        assert_eq!(
            member(&document, "cross_keyvault_endpoint"),
            Some(format!("https://{vault_host}")),
            "{cloud}"
        );
        assert_eq!(member(&document, "cloud").as_deref(), Some(cloud));
        // spin.toml lists every cloud's service suffixes: no edit for a sovereign cloud.
        super::settings::assert_reachable(&document, cloud);
    }
}

#[test]
fn dry_run_of_the_teardown_undoes_the_setup_tenant_by_tenant() {
    let tmp = TempDir::new("teardown");
    let run = setup(
        &tmp,
        &sample_config("public", "DELETE_DNS_ZONES=true"),
        &["--dry-run", "teardown"],
        None,
    );
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    let expected = [
        "cloud set",
        "login",
        "account set",
        // tenant B: cut the network path and the roles, then the service principal
        "login",
        "account set",
        "network private-endpoint-connection delete",
        "network private-endpoint-connection delete",
        "role assignment delete",
        "role assignment delete",
        "role assignment delete",
        "ad sp delete",
        // tenant A
        "login",
        "account set",
        "network private-endpoint delete",
        "network private-endpoint delete",
        "network private-dns link vnet delete",
        "network private-dns zone delete",
        "network private-dns link vnet delete",
        "network private-dns zone delete",
        "ad app delete",
        "role assignment delete",
        "role assignment delete",
        "aks nodepool delete",
        "identity delete",
    ];
    assert_eq!(changes(&run.stdout), expected, "\n{}", run.stdout);
    assert_nothing_secret(&run.stdout);

    // A real teardown asks for --yes.
    let run = setup(
        &tmp,
        &sample_config("public", ""),
        &["teardown"],
        Some("#!/bin/sh\nexit 99\n"),
    );
    assert!(!run.ok);
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
}

#[test]
fn the_scripts_refuse_an_incomplete_or_wrong_configuration() {
    let tmp = TempDir::new("refuse");
    for (config, args, message) in [
        (
            sample_config("public", ""),
            vec!["--dry-run", "tenant-b"],
            "APP_CLIENT_ID",
        ),
        (
            sample_config("mars", ""),
            vec!["--dry-run", "all"],
            "CLOUD must be public, usgov or china",
        ),
        (
            sample_config("public", &format!("TENANT_B_ID={TENANT_A}")),
            vec!["--dry-run", "all"],
            "same tenant",
        ),
        (
            sample_config("public", "TENANT_A_ID=not-a-guid"),
            vec!["--dry-run", "tenant-a"],
            "TENANT_A_ID must be a GUID",
        ),
        (
            sample_config("public", "KEYVAULT_B_NAME=\nSTORAGE_B_NAME="),
            vec!["--dry-run", "tenant-a"],
            "KEYVAULT_B_NAME, STORAGE_B_NAME",
        ),
        (
            sample_config("public", "VNET_NAME="),
            vec!["--dry-run", "tenant-a"],
            "VNET_NAME",
        ),
        (
            sample_config("public", ""),
            vec!["--dry-run", "deploy-everything"],
            "unknown command",
        ),
        (
            sample_config("public", "TARGET_TENANTS='B A'"),
            vec!["--dry-run", "all"],
            "A is the identity's own tenant",
        ),
        (
            sample_config("public", "TARGET_TENANTS='B C'"),
            vec!["--dry-run", "all"],
            "TENANT_C_ID",
        ),
        (
            format!(
                "{}{}",
                sample_config("public", ""),
                target_c("PROFILE_B_SLOT=default\nPROFILE_C_SLOT=default")
            ),
            vec!["--dry-run", "all"],
            "slot default is already another target's",
        ),
        (
            format!(
                "{}{}",
                sample_config("public", ""),
                target_c("PROFILE_C_NAME=b")
            ),
            vec!["--dry-run", "all"],
            "profile name 'b' is already another target's",
        ),
        (
            sample_config("public", ""),
            vec!["--dry-run", "--target", "Z", "tenant-b"],
            "--target Z is not in TARGET_TENANTS",
        ),
        (
            sample_config("public", ""),
            vec!["--dry-run", "teardown-target"],
            "teardown-target needs --target",
        ),
        (
            sample_config("public", ""),
            vec!["--dry-run", "--target", "B", "teardown"],
            "teardown-target --target X",
        ),
        (
            sample_config("public", "DNS_RESOLUTION_POLICY=Fallback"),
            vec!["--dry-run", "tenant-a-dns"],
            "DNS_RESOLUTION_POLICY must be",
        ),
    ] {
        let run = setup(&tmp, &config, &args, None);
        assert!(!run.ok, "{args:?} accepted");
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
    }
    // The example configuration is complete: its dry run works with its placeholders.
    let run = setup(
        &tmp,
        &read(&deploy().join("azure/config.env.example")),
        &["--dry-run", "all"],
        None,
    );
    assert!(run.ok, "{}", run.stderr);
}

pub(crate) fn logged_changes(tmp: &TempDir) -> Vec<String> {
    read(&tmp.path().join("az.log"))
        .lines()
        .map(subcommand)
        .filter(|s| {
            let verb = s.rsplit(' ').next().unwrap_or_default();
            !matches!(verb, "show" | "list")
        })
        .collect()
}

#[test]
fn a_second_run_against_an_existing_setup_changes_nothing() {
    let tmp = TempDir::new("rerun");
    let stub = World::default().stub();
    let run = setup(&tmp, &sample_config("public", ""), &["all"], Some(&stub));
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    // It only selects each tenant's subscription, in turn.
    assert_eq!(
        logged_changes(&tmp),
        ["account set", "account set", "account set", "account set"],
        "\n{}",
        run.stdout
    );
    // (outputs selects tenant A quietly: its stdout is notes and the settings document only.)
    assert_eq!(changes(&run.stdout), ["account set"; 3]);
    let document = outputs_document(&run.stdout);
    assert_eq!(
        member(&document, "azure_client_id").as_deref(),
        Some(CLIENT)
    );
    assert_eq!(member(&document, "app_client_id").as_deref(), Some(APP));
    // The app found by its exact name is remembered beside the configuration.
    let state = read(&tmp.path().join("config.env.state"));
    assert!(
        state.lines().any(|l| l == format!("APP_CLIENT_ID={APP}")),
        "{state}"
    );

    // A credential whose subject is stale (the identity was re-created) is updated, and pending
    // connections are approved; nothing else changes.
    let tmp = TempDir::new("rerun-drift");
    let stub = World {
        fic: fic_ok().replace(PRINCIPAL, "11111111-9999-4999-8999-111111111111"),
        connection: "Pending".into(),
        ..World::default()
    }
    .stub();
    let run = setup(&tmp, &sample_config("public", ""), &["all"], Some(&stub));
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        logged_changes(&tmp),
        [
            "account set",
            "ad app federated-credential update",
            "account set",
            "network private-endpoint-connection approve",
            "network private-endpoint-connection approve",
            "account set",
            "account set",
        ]
    );
    let log = read(&tmp.path().join("az.log"));
    assert!(
        log.contains(&format!("\"subject\":\"{PRINCIPAL}\"")),
        "{log}"
    );
    assert!(
        log.contains("approve --id conn-pe-kv-b ") && log.contains("approve --id conn-pe-blob-b ")
    );

    // Access-policy vaults: `get` on secrets is added where missing (keeping what the principal
    // has: set-policy replaces its secret permissions), left alone where present.
    for (permissions, expected) in [("", 2), ("get\tlist", 0), ("list\tset", 2)] {
        let tmp = TempDir::new("rerun-policy");
        let stub = World {
            vault_permissions: Some(permissions.into()),
            ..World::default()
        }
        .stub();
        let run = setup(&tmp, &sample_config("public", ""), &["all"], Some(&stub));
        assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
        let changed = logged_changes(&tmp);
        let policies = changed
            .iter()
            .filter(|c| *c == "keyvault set-policy")
            .count();
        assert_eq!(policies, expected, "{permissions:?}: {changed:?}");
        assert_eq!(changed.len(), 4 + expected, "{changed:?}");
        let log = read(&tmp.path().join("az.log"));
        assert!(!log.contains("role assignment create"));
        if permissions == "list\tset" {
            assert!(log.contains("--secret-permissions list set get\n"), "{log}");
        }
    }
}

/// A real `outputs`: notes and the document only, the document cut out by the command the docs
/// give, and merged into deploy/settings.json as `jq -s add` does, a document the component
/// reads, with the set-up's values in place of the placeholders.
#[test]
fn outputs_is_a_document_to_merge_into_settings_json() {
    use super::settings::{deployed, set, valid_document};
    let tmp = TempDir::new("outputs-merge");
    let run = run_with(
        &tmp,
        &sample_config("public", ""),
        &["outputs"],
        &World::default(),
    );
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    let document = outputs_document(&run.stdout);
    let mut inside = false;
    for l in run.stdout.lines() {
        inside |= l == "{";
        assert!(
            inside || l.is_empty() || l.starts_with('#'),
            "not a note: {l}"
        );
        inside &= l != "}";
    }
    let out = Command::new("sed")
        .args(["-n", "/^{/,/^}/p"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut sed| {
            use std::io::Write as _;
            sed.stdin.take().unwrap().write_all(run.stdout.as_bytes())?;
            sed.wait_with_output()
        })
        .unwrap();
    let cut = String::from_utf8(out.stdout).unwrap();
    assert_eq!(valid_document(&cut, "sed's cut"), document);
    assert!(
        run.stdout.contains("sed -n '/^{/,/^}/p'"),
        "the note says how"
    );
    // The merge: the outputs' members replace settings.json's of the same name.
    let mut merged = deployed();
    merged.extend(document.clone());
    let merged = valid_document(&serde_json::to_string(&merged).unwrap(), "merged");
    assert_eq!(set(&merged, "azure_client_id"), Some(CLIENT));
    assert_eq!(set(&merged, "app_client_id"), Some(APP));
    assert_eq!(set(&merged, "cross_tenant_id"), Some(TENANT_B));
    assert_eq!(
        set(&merged, "cross_keyvault_endpoint"),
        Some("https://kv-b.vault.azure.net")
    );
    assert!(set(&merged, "cross_tenant_callers").is_some(), "kept");
    for (name, value) in &merged {
        assert!(
            !value.as_deref().unwrap_or_default().contains('<'),
            "{name} still holds a placeholder after the merge"
        );
    }

    // No target in the default profile: its members are written as null, so a merge unsets
    // the tenant and endpoints an older settings.json had there.
    let tmp = TempDir::new("outputs-no-default");
    let config = sample_config("public", "PROFILE_B_SLOT=2");
    let run = setup(&tmp, &config, &["--dry-run", "outputs"], None);
    assert!(run.ok, "{}", run.stderr);
    let document = outputs_document(&run.stdout);
    for name in [
        "cross_tenant_id",
        "cross_keyvault_endpoint",
        "cross_blob_service_endpoint",
    ] {
        assert_eq!(document.get(name), Some(&None), "{name}");
    }
    assert_eq!(
        document.get("profile2_tenant_id"),
        Some(&Some(TENANT_B.to_string()))
    );
}

/// Configuration lines adding target tenant C (a vault only) to `sample_config`.
pub(crate) fn target_c(extra: &str) -> String {
    format!(
        "TARGET_TENANTS='B C'
TENANT_C_ID={TENANT_C}
SUBSCRIPTION_C_ID={SUB_C}
KEYVAULT_C_NAME=kv-c
KEYVAULT_C_RESOURCE_GROUP=rg-data-c
{extra}
"
    )
}

fn two_targets() -> String {
    format!("{}{}", sample_config("public", ""), target_c(""))
}

fn run_with(tmp: &TempDir, config: &str, args: &[&str], world: &World) -> Run {
    let stub = world.stub();
    setup(tmp, config, args, Some(&stub))
}

// ---- the app registration: exact name, remembered id ---------------------------------------

/// Graph's `--display-name` filter is startswith: a staging configuration named "bridge-app"
/// would adopt "bridge-app-prod", federate it and, on teardown, delete it.
#[test]
fn a_look_alike_app_registration_is_never_adopted() {
    let prod = "dddddddd-8888-4888-8888-dddddddddddd";
    let tmp = TempDir::new("look-alike");
    let world = World {
        // The exact filter finds only a case variant (Graph's eq ignores case); a prefix match
        // would have found prod.
        app_rows: format!("{prod}\tBridge-App"),
        app_prefix_rows: format!("{prod}\tbridge-app-prod"),
        fic: String::new(),
        ..World::default()
    };
    let run = run_with(&tmp, &sample_config("public", ""), &["tenant-a"], &world);
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    let log = read(&tmp.path().join("az.log"));
    assert!(!log.contains(prod), "acted on the look-alike app:\n{log}");
    assert!(
        log.lines()
            .all(|l| !l.starts_with("ad app list")
                || l.contains("--filter displayName eq 'bridge-app'")),
        "{log}"
    );
    // It created its own app, federated that one, and remembered its id.
    let changed = logged_changes(&tmp);
    assert!(
        changed.contains(&"ad app create".to_string()),
        "{changed:?}"
    );
    assert!(log.contains(&format!(
        "ad app federated-credential create --id {CREATED_APP} "
    )));
    let state = read(&tmp.path().join("config.env.state"));
    assert!(
        state.contains(&format!("APP_CLIENT_ID={CREATED_APP}")),
        "{state}"
    );

    // The teardown deletes the remembered app, not whatever a name finds, and forgets it.
    let world = World {
        app_rows: format!("{prod}\tbridge-app"),
        ..World::default()
    };
    let log_before = read(&tmp.path().join("az.log")).len();
    let run = run_with(
        &tmp,
        &sample_config("public", ""),
        &["--yes", "teardown"],
        &world,
    );
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    let log = read(&tmp.path().join("az.log"));
    let teardown = &log[log_before..];
    assert!(
        teardown.contains(&format!("ad app delete --id {CREATED_APP}")),
        "{teardown}"
    );
    assert!(
        teardown.contains(&format!("ad sp delete --id {CREATED_APP}")),
        "{teardown}"
    );
    assert!(!teardown.contains(prod), "{teardown}");
    assert!(!tmp.path().join("config.env.state").exists());
}

#[test]
fn two_exact_matches_or_a_renamed_remembered_app_stop_the_script() {
    let tmp = TempDir::new("two-apps");
    let world = World {
        app_rows: format!("{APP}\tbridge-app\n{CREATED_APP}\tbridge-app"),
        ..World::default()
    };
    for command in ["tenant-a", "outputs"] {
        let run = run_with(&tmp, &sample_config("public", ""), &[command], &world);
        assert!(!run.ok, "{command}");
        assert!(
            run.stderr
                .contains("2 app registrations are named exactly 'bridge-app'")
                && run.stderr.contains("APP_CLIENT_ID"),
            "{}",
            run.stderr
        );
    }
    assert!(logged_changes(&tmp).iter().all(|c| c == "account set"));
    // The teardown refuses too, before touching any tenant.
    let run = run_with(
        &tmp,
        &sample_config("public", ""),
        &["--yes", "teardown"],
        &world,
    );
    assert!(
        !run.ok && run.stderr.contains("named exactly"),
        "{}",
        run.stderr
    );
    assert!(!read(&tmp.path().join("az.log")).contains(" delete"));

    // A remembered id whose app now has another name is not trusted.
    let tmp = TempDir::new("renamed-app");
    std::fs::write(
        tmp.path().join("config.env.state"),
        format!("APP_CLIENT_ID={APP}\n"),
    )
    .unwrap();
    let world = World {
        app_name: "someone-elses-app".into(),
        ..World::default()
    };
    let run = run_with(&tmp, &sample_config("public", ""), &["tenant-a"], &world);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("is named 'someone-elses-app'"),
        "{}",
        run.stderr
    );
}

// ---- the identity on the scale set ---------------------------------------------------------

#[test]
fn a_recreated_identity_is_assigned_again_by_principal_id() {
    // The scale set lists the identity's resource id, with the principal of the identity that
    // was deleted: IMDS answers identity-not-found. Comparing ids alone said "assigned".
    let tmp = TempDir::new("stale-identity");
    let world = World {
        vmss_principals: "99999999-0000-4000-8000-999999999999".into(),
        ..World::default()
    };
    let run = run_with(&tmp, &sample_config("public", ""), &["tenant-a"], &world);
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        logged_changes(&tmp),
        [
            "account set",
            "vmss identity remove",
            "vmss identity assign"
        ]
    );
    assert!(
        run.stdout.contains("the identity was re-created"),
        "{}",
        run.stdout
    );
    let log = read(&tmp.path().join("az.log"));
    assert!(log.contains(&format!("vmss identity assign --resource-group MC_rg-aks_aks-main_westeurope --name {VMSS} --identities {}", mi_id())));

    // Missing entirely (the pool was re-created): assigned, nothing removed.
    let tmp = TempDir::new("no-identity");
    let world = World {
        vmss_ids: String::new(),
        vmss_principals: String::new(),
        ..World::default()
    };
    let run = run_with(&tmp, &sample_config("public", ""), &["tenant-a"], &world);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(
        logged_changes(&tmp),
        ["account set", "vmss identity assign"]
    );
}

#[test]
fn node_resource_group_lockdown_stops_with_what_to_do() {
    let tmp = TempDir::new("lockdown");
    let world = World {
        restriction: "ReadOnly".into(),
        vmss_ids: String::new(),
        vmss_principals: String::new(),
        ..World::default()
    };
    let run = run_with(&tmp, &sample_config("public", ""), &["tenant-a"], &world);
    assert!(!run.ok);
    for said in [
        "lockdown",
        "ReadOnly",
        "AKS Automatic",
        "--nrg-restriction-level Unrestricted",
        "kubelet identity",
    ] {
        assert!(run.stderr.contains(said), "no '{said}': {}", run.stderr);
    }
    assert!(!read(&tmp.path().join("az.log")).contains("vmss identity assign"));
    // With the identity already in place, lockdown is no obstacle.
    let tmp = TempDir::new("lockdown-ok");
    let world = World {
        restriction: "ReadOnly".into(),
        ..World::default()
    };
    let run = run_with(&tmp, &sample_config("public", ""), &["tenant-a"], &world);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(logged_changes(&tmp), ["account set"]);
}

// ---- the pool's labels ---------------------------------------------------------------------

#[test]
fn an_existing_pool_gets_the_shim_label_and_keeps_its_own() {
    let tmp = TempDir::new("labels");
    let world = World {
        pool_labels: r#"{"team": "payments", "tenant-bridge.io/identity": "true"}"#.into(),
        ..World::default()
    };
    let run = run_with(&tmp, &sample_config("public", ""), &["tenant-a"], &world);
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(logged_changes(&tmp), ["account set", "aks nodepool update"]);
    let log = read(&tmp.path().join("az.log"));
    assert!(
        log.contains("aks nodepool update --resource-group rg-aks --cluster-name aks-main --name tbridge --labels team=payments tenant-bridge.io/identity=true tenant-bridge.io/shim=containerd-shim-spin-v0.24.0\n"),
        "{log}"
    );
}

// ---- private DNS in enterprise networks ----------------------------------------------------

#[test]
fn dns_uses_hub_zones_and_keeps_a_policy_made_zone_group() {
    // Zones in a hub subscription: every zone command names it, and the zone group points there.
    let tmp = TempDir::new("hub-dry");
    let config = sample_config("public", &format!("DNS_SUBSCRIPTION_ID={SUB_HUB}"));
    let run = setup(&tmp, &config, &["--dry-run", "tenant-a-dns"], None);
    assert!(run.ok, "{}", run.stderr);
    for l in change_lines(&run.stdout)
        .iter()
        .filter(|l| l.contains("az network private-dns"))
    {
        assert!(l.contains(&format!("--subscription {SUB_HUB} ")), "{l}");
    }
    let group = change_lines(&run.stdout)
        .into_iter()
        .find(|l| l.starts_with("+ az network private-endpoint dns-zone-group create"))
        .unwrap();
    assert!(
        group.contains(&format!(
            "--private-dns-zone {}",
            zone_id(SUB_HUB, "privatelink.vaultcore.azure.net")
        )),
        "{group}"
    );
    // An endpoint that already has a zone group of another name (an Azure Landing Zone policy
    // made it, into the hub's zone): no second group is attempted.
    let tmp = TempDir::new("hub-policy");
    let world = World {
        zone_groups: Some(format!(
            "deployedByPolicy\t{}",
            zone_id(SUB_HUB, "privatelink.blob.core.windows.net")
        )),
        dns_sub: SUB_HUB.into(),
        ..World::default()
    };
    let run = run_with(&tmp, &config, &["tenant-a-dns"], &world);
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(logged_changes(&tmp), ["account set"], "{}", run.stdout);
    assert!(run.stdout.contains("'deployedByPolicy'"), "{}", run.stdout);
}

#[test]
fn teardown_keeps_vnet_links_others_rely_on() {
    let config = sample_config("public", "");
    for (tag, records, deleted) in [
        ("", "", false),                          // a link someone else made
        ("tenant-bridge", "otheraccount", false), // ours, but other endpoints' records need it
        ("tenant-bridge", "", true),              // ours, and nothing else in the zone
    ] {
        let tmp = TempDir::new("unlink");
        let world = World {
            link_tag: tag.into(),
            zone_records: records.into(),
            ..World::default()
        };
        let run = run_with(&tmp, &config, &["--yes", "teardown-tenant-a"], &world);
        assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
        let unlinked = logged_changes(&tmp)
            .iter()
            .filter(|c| *c == "network private-dns link vnet delete")
            .count();
        assert_eq!(
            unlinked,
            if deleted { 2 } else { 0 },
            "tag {tag:?}, records {records:?}"
        );
        assert!(!read(&tmp.path().join("az.log")).contains("private-dns zone delete"));
    }
}

// ---- smaller az points ---------------------------------------------------------------------

#[test]
fn private_endpoints_follow_the_vnet_region_after_registering_their_providers() {
    let tmp = TempDir::new("pe-region");
    let world = World {
        pe_status: String::new(),
        vnet_location: "northeurope".into(),
        provider: "NotRegistered".into(),
        ..World::default()
    };
    let run = run_with(&tmp, &sample_config("public", ""), &["tenant-a"], &world);
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        logged_changes(&tmp),
        [
            "account set",
            "provider register",
            "provider register",
            "network private-endpoint create",
            "network private-endpoint create",
        ]
    );
    let log = read(&tmp.path().join("az.log"));
    assert!(log.contains("provider register --namespace Microsoft.KeyVault --wait"));
    assert!(log.contains("provider register --namespace Microsoft.Storage --wait"));
    for l in log
        .lines()
        .filter(|l| l.starts_with("network private-endpoint create"))
    {
        assert!(l.contains("--location northeurope "), "{l}");
    }
}

#[test]
fn removing_get_keeps_the_other_access_policy_permissions() {
    for (permissions, expected) in [
        ("get", "keyvault delete-policy"),
        ("get\tlist", "keyvault set-policy"),
    ] {
        let tmp = TempDir::new("revoke-policy");
        let world = World {
            vault_permissions: Some(permissions.into()),
            ..World::default()
        };
        let config = sample_config("public", &format!("APP_CLIENT_ID={APP}"));
        let run = run_with(&tmp, &config, &["--yes", "teardown-tenant-b"], &world);
        assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
        let changed = logged_changes(&tmp);
        assert!(
            changed.contains(&expected.to_string()),
            "{permissions:?}: {changed:?}"
        );
        if expected == "keyvault set-policy" {
            let log = read(&tmp.path().join("az.log"));
            assert!(log.contains("--secret-permissions list\n"), "{log}");
            assert!(!changed.contains(&"keyvault delete-policy".to_string()));
        }
    }
}

// ---- several target tenants ----------------------------------------------------------------

#[test]
fn dry_run_sets_up_every_target_tenant_in_turn() {
    let tmp = TempDir::new("targets");
    let run = setup(&tmp, &two_targets(), &["--dry-run", "all"], None);
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert_nothing_secret(&run.stdout);
    let lines = change_lines(&run.stdout);
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle}:\n{}", run.stdout))
    };
    // Tenant A asks both targets for private endpoints; then B, then C consent, grant and
    // approve, each in its own sign-in; then tenant A's DNS covers both.
    let pe_c = pos("--name pe-tenant-bridge-vault-c ");
    assert!(lines[pe_c].contains("/providers/Microsoft.KeyVault/vaults/kv-c "));
    let login_b = pos(&format!("az login --tenant {TENANT_B}"));
    let login_c = pos(&format!("az login --tenant {TENANT_C}"));
    assert!(pe_c < login_b && login_b < login_c);
    let after_c: Vec<String> = changes(&lines[login_c..].join("\n"));
    assert_eq!(
        &after_c[..5],
        [
            "login",
            "account set",
            "ad sp create",
            "role assignment create",
            "network private-endpoint-connection approve",
        ]
    );
    assert!(lines[login_c + 3].ends_with(&format!(
        "--scope /subscriptions/{SUB_C}/resourceGroups/rg-data-c/providers/Microsoft.KeyVault/vaults/kv-c"
    )));
    assert!(lines[login_c + 4].contains("pe-tenant-bridge-vault-c"));
    assert!(run.stdout.contains("adminconsent?client_id="));
    assert!(lines.iter().any(|l| l.contains("dns-zone-group create")
        && l.contains("--endpoint-name pe-tenant-bridge-vault-c")));
    // Outputs: B is the default profile, C profile slot 1 (C has no account: its blob
    // endpoint is unset, null, so a merge clears an old one). outputs_document has checked that
    // every member is a setting the component knows.
    let document = outputs_document(&run.stdout);
    for (name, value) in [
        ("cross_tenant_name", Some("b")),
        ("cross_tenant_id", Some(TENANT_B)),
        ("profile1_name", Some("c")),
        ("profile1_tenant_id", Some(TENANT_C)),
        (
            "profile1_keyvault_endpoint",
            Some("https://kv-c.vault.azure.net"),
        ),
        ("profile1_blob_service_endpoint", None),
    ] {
        assert_eq!(member(&document, name).as_deref(), value, "{name}");
    }
    assert!(run
        .stdout
        .contains("# tenant C: profile slot 1, profile1_* (tenant=c)"));
    super::settings::assert_reachable(&document, "setup.sh outputs");
}

#[test]
fn one_target_tenant_at_a_time() {
    let tmp = TempDir::new("one-target");
    let config = format!("{}APP_CLIENT_ID={APP}\n", two_targets());
    let run = setup(
        &tmp,
        &config,
        &["--dry-run", "--target", "C", "tenant-b"],
        None,
    );
    assert!(run.ok, "{}", run.stderr);
    assert!(
        !run.stdout.contains(TENANT_B) && run.stdout.contains(TENANT_C),
        "{}",
        run.stdout
    );

    // Removing one target: its side first, then tenant A's endpoints to it; the app, the
    // identity, the zones' links and the other target stay.
    let run = setup(
        &tmp,
        &config,
        &["--dry-run", "--target", "C", "teardown-target"],
        None,
    );
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        changes(&run.stdout),
        [
            "cloud set",
            "login",
            "account set",
            "network private-endpoint-connection delete",
            "role assignment delete",
            "ad sp delete",
            "login",
            "account set",
            "network private-endpoint delete",
        ],
        "\n{}",
        run.stdout
    );
    assert!(change_lines(&run.stdout)
        .last()
        .unwrap()
        .ends_with("--name pe-tenant-bridge-vault-c"));
    assert!(!run.stdout.contains(TENANT_B));

    // And for real, against a world where C is set up: C's objects only.
    let tmp = TempDir::new("one-target-real");
    let run = run_with(
        &tmp,
        &config,
        &["--target", "C", "--yes", "teardown-target"],
        &World::default(),
    );
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    let log = read(&tmp.path().join("az.log"));
    assert!(
        log.contains("private-endpoint-connection delete --id conn-pe-tenant-bridge-vault-c --yes")
    );
    assert!(log.contains("network private-endpoint delete --resource-group rg-bridge --name pe-tenant-bridge-vault-c"));
    assert!(
        !log.contains("pe-kv-b --yes")
            && !log.contains("ad app delete")
            && !log.contains("identity delete")
    );
}

#[test]
fn a_second_run_with_two_targets_changes_nothing() {
    let tmp = TempDir::new("targets-rerun");
    let run = run_with(&tmp, &two_targets(), &["all"], &World::default());
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(logged_changes(&tmp), ["account set"; 5], "\n{}", run.stdout);
    let document = outputs_document(&run.stdout);
    assert_eq!(
        member(&document, "profile1_keyvault_endpoint").as_deref(),
        Some("https://kv-c.vault.azure.net")
    );
}
