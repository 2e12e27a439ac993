//! What `kubectl apply -k` would send: `kubectl kustomize` of a copy of deploy/ with its secret
//! files generated. Needs kubectl with kustomize 5 (scripts/test installs it).

use super::manifests::{egress_rules_are_right, pins_to_the_pool_and_the_shim, probes_are_split};
use super::*;

fn find<'a>(built: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = built.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} rendered");
    found[0]
}

fn names(built: &[Value], kind: &str) -> BTreeSet<String> {
    built
        .iter()
        .filter(|d| d["kind"] == kind)
        .map(|d| d["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// Issue: the first `kubectl apply -k deploy/` was refused, because kustomize put the SpinApp
/// before its executor and spin-operator's fail-closed webhook refuses a SpinApp whose
/// executor does not exist. The rendered order is the order kubectl applies in.
#[test]
fn the_rendered_order_creates_the_executor_before_the_spinapp() {
    let kubectl = kubectl();
    let tmp = TempDir::new("order");
    let built = kustomize(&kubectl, &deploy_copy(&tmp));
    let kinds: Vec<&str> = built.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    let first = |kind: &str| {
        kinds
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_else(|| panic!("no {kind} in {kinds:?}"))
    };
    assert_eq!(kinds[0], "Namespace", "{kinds:?}");
    assert_eq!(*kinds.last().unwrap(), "SpinApp", "{kinds:?}");
    for kind in [
        "RuntimeClass",
        "SpinAppExecutor",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "NetworkPolicy",
    ] {
        assert!(
            first(kind) < first("SpinApp"),
            "{kind} after the SpinApp: {kinds:?}"
        );
    }
    assert!(
        first("RuntimeClass") < first("SpinAppExecutor"),
        "{kinds:?}"
    );
}

/// The generated ConfigMap and Secret names, with their hash suffixes, reach the SpinApp
/// through kustomizeconfig.yaml, as does the image.
#[test]
fn kustomize_renames_generated_objects_inside_the_spinapp() {
    let kubectl = kubectl();
    let tmp = TempDir::new("kustomize");
    let built = kustomize(&kubectl, &deploy_copy(&tmp));
    let (maps, secrets) = (names(&built, "ConfigMap"), names(&built, "Secret"));
    let app = find(&built, "SpinApp");
    if let Some(found) = violations(app) {
        assert!(found.is_empty(), "{found:?}");
    }
    assert_eq!(app["metadata"]["namespace"], "tenant-bridge");
    let kustomization = &yaml_docs(&deploy().join("kustomization.yaml"))[0];
    let image = &kustomization["images"][0];
    assert_eq!(
        app["spec"]["image"].as_str().unwrap(),
        format!(
            "{}:{}",
            image["newName"].as_str().unwrap(),
            image["newTag"].as_str().unwrap()
        )
    );
    let loaded = app["spec"]["runtimeConfig"]["loadFromSecret"]
        .as_str()
        .unwrap();
    assert!(
        secrets.contains(loaded) && loaded != "tenant-bridge-runtime-config",
        "{loaded}"
    );
    for v in app["spec"]["variables"].as_array().unwrap() {
        let from = &v["valueFrom"];
        if let Some(name) = from["configMapKeyRef"]["name"].as_str() {
            assert!(maps.contains(name), "{name} is not a built ConfigMap");
        }
        if let Some(name) = from["secretKeyRef"]["name"].as_str() {
            assert!(secrets.contains(name), "{name} is not a built Secret");
        }
    }
    // The registry pull caller's key reached tenant-bridge's function keys (one Secret, two
    // entries), without kustomize printing anything else about it.
    assert!(secrets
        .iter()
        .any(|s| s.starts_with("tenant-bridge-function-keys-")));
}

/// The rendered ConfigMap carries deploy/settings.json whole, under the key the SpinApp's
/// `settings` variable reads, and the function keys come from the generated Secret: what the
/// pods get as SPIN_VARIABLE_SETTINGS is the document the other tests check.
#[test]
fn the_rendered_settings_variable_is_the_settings_document() {
    let kubectl = kubectl();
    let tmp = TempDir::new("settings");
    let built = kustomize(&kubectl, &deploy_copy(&tmp));
    let app = find(&built, "SpinApp");
    let variables = app["spec"]["variables"].as_array().unwrap();
    let names: BTreeSet<&str> = variables
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["function_keys", "settings"]));
    let settings = variables.iter().find(|v| v["name"] == "settings").unwrap();
    let reference = &settings["valueFrom"]["configMapKeyRef"];
    let map = built
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == reference["name"])
        .unwrap_or_else(|| panic!("no ConfigMap {}", reference["name"]));
    assert!(
        map["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("tenant-bridge-settings-"),
        "a generated (hashed) name: a changed document rolls the pods"
    );
    let text = map["data"][reference["key"].as_str().unwrap()]
        .as_str()
        .unwrap_or_else(|| panic!("{map}: no key {}", reference["key"]));
    assert_eq!(
        super::settings::valid_document(text, "the rendered ConfigMap"),
        super::settings::deployed()
    );
    let keys = &variables
        .iter()
        .find(|v| v["name"] == "function_keys")
        .unwrap()["valueFrom"]["secretKeyRef"];
    let secret = find_named(&built, "Secret", keys["name"].as_str().unwrap());
    assert!(secret["data"][keys["key"].as_str().unwrap()].is_string());
}

fn find_named<'a>(built: &'a [Value], kind: &str, name: &str) -> &'a Value {
    built
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// Liveness never checks configuration; readiness does (rendered SpinApp).
#[test]
fn the_rendered_probes_split_liveness_from_readiness() {
    let kubectl = kubectl();
    let tmp = TempDir::new("probes");
    let built = kustomize(&kubectl, &deploy_copy(&tmp));
    probes_are_split(find(&built, "SpinApp"));
}

/// The rendered RuntimeClass pins to the pool, the shim's pool label and the installer's
/// "provisioned" label, and stays cluster-scoped; the rendered Shim selects that pool label.
#[test]
fn the_rendered_runtime_class_admits_only_nodes_with_the_pinned_shim() {
    let kubectl = kubectl();
    let tmp = TempDir::new("shim");
    let copy = deploy_copy(&tmp);
    let built = kustomize(&kubectl, &copy);
    let rc = find(&built, "RuntimeClass");
    assert!(
        rc["metadata"]["namespace"].is_null(),
        "a RuntimeClass is cluster-scoped"
    );
    let shim_built = kustomize(&kubectl, &copy.join("shim"));
    let shim = find(&shim_built, "Shim");
    assert!(
        shim["metadata"]["namespace"].is_null(),
        "a Shim is cluster-scoped"
    );
    pins_to_the_pool_and_the_shim(rc, shim);
    let executor = find(&built, "SpinAppExecutor");
    assert_eq!(
        executor["spec"]["deploymentConfig"]["runtimeClassName"],
        rc["metadata"]["name"]
    );
}

/// A default-deny egress namespace still lets the pods reach IMDS, DNS, Redis and HTTPS.
#[test]
fn the_rendered_egress_policy_allows_imds() {
    let kubectl = kubectl();
    let tmp = TempDir::new("egress");
    let built = kustomize(&kubectl, &deploy_copy(&tmp));
    let policy = built
        .iter()
        .find(|d| d["kind"] == "NetworkPolicy" && d["metadata"]["name"] == "tenant-bridge-egress")
        .expect("the egress NetworkPolicy is rendered");
    assert_eq!(policy["metadata"]["namespace"], "tenant-bridge");
    let redis = built
        .iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "tenant-bridge-redis")
        .unwrap();
    egress_rules_are_right(policy, find(&built, "SpinApp"), redis);
}

/// deploy/registry-pull renders for ESO: the SecretStore names the generated key Secret (with
/// its hash), which carries the label ESO requires, all in the pulling namespace.
#[test]
fn the_rendered_registry_pull_store_names_its_key_secret() {
    let kubectl = kubectl();
    let tmp = TempDir::new("registry-pull");
    let copy = deploy_copy(&tmp);
    let built = kustomize(&kubectl, &copy.join("registry-pull"));
    let store = find(&built, "SecretStore");
    let secret = find(&built, "Secret");
    let name = secret["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("tenant-bridge-function-key-"), "{name}");
    assert_eq!(
        store["spec"]["provider"]["webhook"]["secrets"][0]["secretRef"]["name"],
        name
    );
    assert_eq!(
        secret["metadata"]["labels"]["external-secrets.io/type"],
        "webhook"
    );
    let namespace = &store["metadata"]["namespace"];
    assert!(namespace.is_string());
    assert_eq!(&secret["metadata"]["namespace"], namespace);
    assert_eq!(
        &find(&built, "ExternalSecret")["metadata"]["namespace"],
        namespace
    );
    for kind in ["SecretStore", "ExternalSecret"] {
        if let Some(found) = violations(find(&built, kind)) {
            assert!(found.is_empty(), "{kind}: {found:?}");
        }
    }
    // The key in that Secret is the one tenant-bridge's function keys give registry-pull.
    let key = env_file(&copy.join("registry-pull/secrets/function-key.env"))["key"].clone();
    let keys = env_file(&copy.join("secrets/function-keys.env"))["function_keys"].clone();
    assert!(keys.split(',').any(|e| e == format!("registry-pull:{key}")));
}

/// Issue 20, defect 6: Redis came from a Docker Hub tag, which a cluster with locked-down egress
/// cannot pull. Every rendered image comes from the registry tenant-bridge's own image is pushed
/// to (the one `--attach-acr` lets the nodes pull from).
#[test]
fn every_rendered_image_comes_from_the_deployment_registry() {
    let kubectl = kubectl();
    let tmp = TempDir::new("images");
    let built = kustomize(&kubectl, &deploy_copy(&tmp));
    let app_image = find(&built, "SpinApp")["spec"]["image"].as_str().unwrap();
    let registry = app_image.split('/').next().unwrap();
    assert!(registry.ends_with(".azurecr.io"), "{app_image}");
    let mut seen = 0;
    for doc in &built {
        for container in doc["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let image = container["image"].as_str().unwrap();
            assert!(
                image.starts_with(&format!("{registry}/")),
                "{image} is not from {registry}"
            );
            seen += 1;
        }
    }
    assert!(seen >= 1, "the Redis deployment's container");
}
