//! Rules of the upstream controllers and CLIs that deploy/ relies on, one test each. Nothing here
//! can run a cluster: each rule is read from the upstream source at the version deploy/ pins,
//! restated here as a small function, and cited beside it (project, tag or commit, file). When
//! a pinned version moves, re-read the cited file and update the rule with it.

use super::*;

// ---- runtime-class-manager v0.2.0 (commit 7e6b1b8f7bb3a51fc202f0b20e3cae704ad2f824) ---------

/// The file the downloader copies to the node for a Shim: runtime-class-manager v0.2.0
/// images/downloader/download_shim.sh, `tar -xzf … -C /tmp` then, under `set -euo pipefail`,
/// `cp /tmp/containerd-shim-${SHIM_NAME} /assets`; SHIM_NAME is the Shim's metadata.name
/// (internal/controller/shim_controller.go, setOperationConfiguration).
fn downloader_copies(shim_name: &str) -> String {
    format!("containerd-shim-{shim_name}")
}

/// The containerd runtime (the RuntimeClass handler) the node installer registers for a copied
/// file: runtime-class-manager v0.2.0 internal/shim/shim.go `RuntimeName` (strings.TrimPrefix of
/// "containerd-shim-"), used by internal/containerd/configure.go `AddRuntime`.
fn runtime_name(file: &str) -> &str {
    file.strip_prefix("containerd-shim-").unwrap_or(file)
}

/// The files in a containerd-shim-spin release archive, from its name: containerd-shim-spin
/// v0.24.0 (commit de7f584fd60ef0a83461bf332f92093b103dff35) .github/workflows/action-build.yaml,
/// "Package release assets": `tar czf containerd-shim-spin-v2-<os>-<arch>.tar.gz
/// containerd-shim-spin-v2` — one file, the binary.
fn release_archive_files(location: &str) -> Vec<String> {
    let file = location.rsplit('/').next().unwrap();
    let stem = file.strip_suffix(".tar.gz").expect("a .tar.gz archive");
    // <binary>-<os>-<arch>; the arch may hold '_' but no '-'.
    let mut parts = stem.rsplitn(3, '-');
    let (_arch, os, binary) = (parts.next(), parts.next(), parts.next());
    assert_eq!(os, Some("linux"), "{location}");
    vec![binary.expect("<binary>-<os>-<arch>").to_string()]
}

/// Issue 20, defect 1: a Shim named `tenant-bridge-shim` made the downloader copy a file the
/// archive does not have, so the shim never installed and every pod stayed Pending.
#[test]
fn the_shim_is_named_after_the_binary_in_the_pinned_release() {
    let shim = the_one("Shim");
    let name = shim["metadata"]["name"].as_str().unwrap();
    let copied = downloader_copies(name);
    for platform in shim["spec"]["fetchStrategy"]["platforms"]
        .as_array()
        .unwrap()
    {
        let location = platform["location"].as_str().unwrap();
        let files = release_archive_files(location);
        assert!(
            files.contains(&copied),
            "the downloader copies /tmp/{copied}, but {location} holds only {files:?}: \
             the Shim must be named {:?}",
            runtime_name(&files[0])
        );
    }
    // The handler the installer registers is the copied file's runtime name; both the Shim's
    // own RuntimeClass and ours must use it.
    let handler = runtime_name(&copied);
    assert_eq!(shim["spec"]["runtimeClass"]["handler"], handler);
    assert_eq!(the_one("RuntimeClass")["handler"], handler);
}

/// runtime-class-manager v0.2.0 internal/controller/shim_controller.go: `updateNodeLabels` sets
/// `node.Labels[shim.Name] = status`, "provisioned" once the install Job succeeded
/// (ProvisioningStatusProvisioned). Our RuntimeClass waits for exactly that label.
#[test]
fn the_runtime_class_waits_for_the_label_the_installer_sets() {
    let shim = the_one("Shim");
    let label_key = shim["metadata"]["name"].as_str().unwrap();
    let selector = &the_one("RuntimeClass")["scheduling"]["nodeSelector"];
    assert_eq!(
        selector[label_key], "provisioned",
        "the RuntimeClass must select {label_key}=provisioned, the label runtime-class-manager sets"
    );
}

// ---- External Secrets Operator v2.9.0 (commit 378bdb622ed9712ef4a58370f6a17af033b7d343) ------

/// The host and port ESO dials to validate a webhook SecretStore: ESO v2.9.0
/// providers/v1/webhook/webhook.go `Validate` calls runtime/esutils/utils.go `NetworkValidate`
/// with the store's URL, which takes url.Hostname() and url.Port() and, when the port is empty,
/// dials 443 — whatever the scheme. A failed dial leaves the store `Ready=False`
/// (pkg/controllers/secretstore/common.go), and an ExternalSecret of a store that is not ready
/// is never synced (pkg/controllers/secretstore/client_manager.go, assertStoreIsUsable).
fn eso_validation_dials(url: &str) -> (String, u16) {
    let (_scheme, rest) = url.split_once("://").expect("scheme://");
    let authority = rest.split(['/', '?']).next().unwrap();
    match authority.rsplit_once(':') {
        Some((host, port)) => (host.to_string(), port.parse().expect("a numeric port")),
        None => (authority.to_string(), 443),
    }
}

/// The Service spin-operator creates for a SpinApp: named after the app, in its namespace, one
/// TCP port 80 (spin-operator v0.6.1, commit 96c9d1d1d69c2c04e005375c44f323fb10e31002,
/// internal/controller/service.go constructService, `Port: spinapp.DefaultHTTPPort`;
/// pkg/spinapp/spinapp.go `DefaultHTTPPort = 80`).
const SPIN_OPERATOR_SERVICE_PORT: u16 = 80;

/// Issue 20, defect 2: the store's URL had no port, so ESO dialled 443, nothing answered there,
/// and the pull secret was never synced.
#[test]
fn the_secret_store_dials_the_service_port() {
    let url = the_one("SecretStore")["spec"]["provider"]["webhook"]["url"]
        .as_str()
        .unwrap();
    let (host, port) = eso_validation_dials(url);
    let app = the_one("SpinApp");
    let namespace = yaml_docs(&deploy().join("kustomization.yaml"))[0]["namespace"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        host,
        format!(
            "{}.{namespace}.svc.cluster.local",
            app["metadata"]["name"].as_str().unwrap()
        )
    );
    assert_eq!(
        port, SPIN_OPERATOR_SERVICE_PORT,
        "ESO validates {url} by dialling port {port}; the SpinApp's Service listens on {SPIN_OPERATOR_SERVICE_PORT}"
    );
    // The model itself: no port means 443, even for http.
    assert_eq!(eso_validation_dials("http://a.b/x?y={{ .z }}").1, 443);
}

// ---- spin-operator v0.6.1 (commit 96c9d1d1d69c2c04e005375c44f323fb10e31002) ----------------

/// The executor names spin-operator's own samples and charts use (config/samples at v0.6.1:
/// `containerd-shim-spin`, `spintainer`, `otel-shim-executor`): names other namespaces' apps are
/// likely to give their executors.
const COMMON_EXECUTOR_NAMES: [&str; 3] =
    ["containerd-shim-spin", "spintainer", "otel-shim-executor"];

/// Issue 20, defect 5: spin-operator v0.6.1 internal/controller/spinappexecutor_controller.go
/// `handleDeletion` lists SpinApps with `client.MatchingFields{spinAppExecutorKey: executor.Name}`
/// and no namespace, so it keeps the executor's finalizer while a SpinApp in *any* namespace names
/// an executor of that name: ours, named `containerd-shim-spin`, hung `kubectl delete -k deploy/`
/// on a cluster with ordinary SpinKube apps. Its name is tenant-bridge's own.
#[test]
fn the_executor_has_a_name_no_other_app_uses() {
    let executor = the_one("SpinAppExecutor");
    let name = executor["metadata"]["name"].as_str().unwrap();
    assert!(
        !COMMON_EXECUTOR_NAMES.contains(&name),
        "executor {name}: spin-operator keeps it while any namespace has a SpinApp naming {name}"
    );
    assert!(name.starts_with("tenant-bridge"), "{name}");
    assert_eq!(the_one("SpinApp")["spec"]["executor"], name);
}

/// Issue 20, defect 6: spin-operator v0.6.1's SpinApp webhook reads the executor through the
/// manager's cache-backed client (internal/webhook/admission.go, `mgr.GetClient()`) and answers
/// any error of that read with "executor does not exist in namespace"
/// (internal/webhook/spinapp_validating.go, validateExecutor): right after the executor is
/// created, the first apply can be refused even in the right order. The documented first apply
/// is retried.
#[test]
fn the_documented_first_apply_retries_while_the_webhook_cache_catches_up() {
    let docs = read(&repo().join("docs/deploy.md"));
    let step = docs
        .split("### 7. Apply and call")
        .nth(1)
        .and_then(|s| s.split("\n### ").next())
        .expect("step 7");
    let apply = step
        .lines()
        .find(|l| l.contains("kubectl apply -k deploy/"))
        .expect("step 7 applies deploy/");
    assert!(
        apply.starts_with("for ") && apply.contains("&& break") && apply.contains("sleep"),
        "the first apply must be retried: {apply}"
    );
}

// ---- Azure Resource Manager ----------------------------------------------------------------

/// ARM's Microsoft.Network PrivateLinkServiceConnectionProperties.requestMessage: "A message
/// passed to the owner of the remote resource with this connection request. Restricted to 140
/// chars." (the Network REST API spec, and `az network private-endpoint create
/// --request-message` help, which repeat it).
const REQUEST_MESSAGE_MAX: usize = 140;

/// Issue 20, defect 6: the request message named the target's label too, and passed 140
/// characters for long names. The dry run, with vault and account names of the most characters
/// Azure allows (24) and a target of the longest name setup.sh accepts (16: lib.sh,
/// `^[A-Z][A-Z0-9]{0,15}$`), prints messages within the limit.
#[test]
fn the_private_endpoint_request_message_fits_arm() {
    use super::scripts::{sample_config, setup, SUB_C, TENANT_C};
    let target = "CONTOSOPRODUCTS1";
    let vault = "kv-x-aaaaaaaaaaaaaaaaaaa";
    let longest = format!(
        "KEYVAULT_B_NAME=kv-b-aaaaaaaaaaaaaaaaaaa
STORAGE_B_NAME=stbaaaaaaaaaaaaaaaaaaaaa
TARGET_TENANTS='B {target}'
TENANT_{target}_ID={TENANT_C}
SUBSCRIPTION_{target}_ID={SUB_C}
KEYVAULT_{target}_NAME={vault}
KEYVAULT_{target}_RESOURCE_GROUP=rg-data-x"
    );
    assert_eq!((target.len(), vault.len()), (16, 24));
    let tmp = TempDir::new("request-message");
    let run = setup(
        &tmp,
        &sample_config("public", &longest),
        &["--dry-run", "all"],
        None,
    );
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    let messages: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.split_once("--request-message '"))
        .map(|(_, rest)| rest.split('\'').next().unwrap())
        .collect();
    assert_eq!(messages.len(), 3, "{}", run.stdout);
    for m in messages {
        assert!(
            m.len() <= REQUEST_MESSAGE_MAX,
            "{} characters: {m}",
            m.len()
        );
    }
}
