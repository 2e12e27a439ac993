//! `deploy/` and `docs/deploy.md`: the SpinKube manifests validate against the operator's CRD
//! schemas (every field known, required fields present) and agree with spin.toml, the
//! ConfigMap/Secret sources and each other; the Azure CLI scripts pass shellcheck, their dry run
//! prints the expected commands in order with nothing secret, and a re-run against an Azure
//! where everything exists changes nothing; the docs name every problem code and variable.
//!
//! Nothing here talks to Azure or Kubernetes: the scripts run in dry-run mode, or against a stub
//! `az` that only answers from a table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{json, Value};

// ---- files ---------------------------------------------------------------------------------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy() -> PathBuf {
    repo().join("deploy")
}

/// `shared/` lies beside the repository, in a checkout and in CI alike.
fn shared_schemas() -> PathBuf {
    let dir = repo().join("..").join("shared").join("schemas");
    assert!(
        dir.join("core.spinkube.dev_spinapps.yaml").is_file(),
        "the SpinKube CRD schemas are missing: expected {} (shared/ beside the repository)",
        dir.display()
    );
    dir
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every YAML document of a file, as JSON values.
fn yaml_docs(path: &Path) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(&read(path))
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The Kubernetes manifests of deploy/: every YAML file but kustomize's own.
fn manifest_files() -> Vec<PathBuf> {
    let mut all = Vec::new();
    files_under(&deploy(), &mut all);
    all.into_iter()
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name != "kustomization.yaml" && name != "kustomizeconfig.yaml"
        })
        .collect()
}

struct Manifest {
    file: PathBuf,
    doc: Value,
}

fn manifests() -> &'static [Manifest] {
    static ALL: OnceLock<Vec<Manifest>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut out = Vec::new();
        for file in manifest_files() {
            for doc in yaml_docs(&file) {
                out.push(Manifest {
                    file: file.clone(),
                    doc,
                });
            }
        }
        out
    })
}

fn of_kind(kind: &str) -> Vec<&'static Manifest> {
    manifests()
        .iter()
        .filter(|m| m.doc["kind"] == kind)
        .collect()
}

fn the_one(kind: &str) -> &'static Value {
    let found = of_kind(kind);
    assert_eq!(found.len(), 1, "expected exactly one {kind} in deploy/");
    &found[0].doc
}

fn spin_toml() -> &'static toml::Table {
    static T: OnceLock<toml::Table> = OnceLock::new();
    T.get_or_init(|| {
        read(&repo().join("spin.toml"))
            .parse()
            .expect("spin.toml parses")
    })
}

fn spin_variables() -> &'static toml::Table {
    spin_toml()["variables"].as_table().expect("[variables]")
}

/// `name=value` lines of a kustomize env file (comments and blanks skipped).
fn env_file(path: &Path) -> BTreeMap<String, String> {
    read(path)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("{}: not name=value: {l}", path.display()));
            (k.to_string(), v.to_string())
        })
        .collect()
}

// ---- the CRD schemas, closed ---------------------------------------------------------------

/// The openAPIV3Schema of a CRD's v1alpha1 version, with every object that lists its properties
/// closed (`additionalProperties: false`) unless it says it keeps unknown fields. The CRDs leave
/// objects open, and the API server merely prunes unknown fields (or, with strict field
/// validation, refuses them): a typo such as `spec.nodeSelector` would be silently dropped.
fn crd_schema(file: &str) -> Value {
    let docs = yaml_docs(&shared_schemas().join(file));
    let crd = &docs[0];
    assert_eq!(crd["kind"], "CustomResourceDefinition", "{file}");
    let version = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1alpha1")
        .unwrap_or_else(|| panic!("{file}: no v1alpha1"));
    let mut schema = version["schema"]["openAPIV3Schema"].clone();
    close(&mut schema);
    schema
}

fn close(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    let keeps_unknown = obj
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if obj.contains_key("properties") && !obj.contains_key("additionalProperties") && !keeps_unknown
    {
        obj.insert("additionalProperties".into(), Value::Bool(false));
    }
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        props.values_mut().for_each(close);
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(sub) = obj.get_mut(key) {
            close(sub);
        }
    }
    for key in ["anyOf", "allOf", "oneOf"] {
        if let Some(Value::Array(subs)) = obj.get_mut(key) {
            subs.iter_mut().for_each(close);
        }
    }
}

fn validator(kind: &str) -> &'static jsonschema::Validator {
    static APP: OnceLock<jsonschema::Validator> = OnceLock::new();
    static EXECUTOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    let (cell, file) = match kind {
        "SpinApp" => (&APP, "core.spinkube.dev_spinapps.yaml"),
        "SpinAppExecutor" => (&EXECUTOR, "core.spinkube.dev_spinappexecutors.yaml"),
        other => panic!("no CRD for {other}"),
    };
    // OpenAPI v3.0 schemas are JSON Schema draft 4 with extensions (x-kubernetes-*, which
    // validators ignore).
    cell.get_or_init(|| {
        jsonschema::draft4::new(&crd_schema(file)).expect("the CRD schema compiles")
    })
}

/// Every schema violation of a SpinKube resource, plus ObjectMeta fields the CRD leaves open.
fn violations(doc: &Value) -> Vec<String> {
    let kind = doc["kind"].as_str().unwrap_or_default();
    let mut out: Vec<String> = validator(kind)
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if doc["apiVersion"] != "core.spinkube.dev/v1alpha1" {
        out.push(format!(
            "apiVersion {} is not core.spinkube.dev/v1alpha1",
            doc["apiVersion"]
        ));
    }
    match doc["metadata"].as_object() {
        None => out.push("no metadata".into()),
        Some(meta) => {
            if !meta.get("name").is_some_and(Value::is_string) {
                out.push("metadata.name is missing".into());
            }
            for key in meta.keys() {
                if !["name", "namespace", "labels", "annotations"].contains(&key.as_str()) {
                    out.push(format!("metadata.{key} is not expected in a manifest"));
                }
            }
        }
    }
    if doc.get("status").is_some() {
        out.push("a manifest carries no status".into());
    }
    out
}

#[test]
fn spinkube_resources_validate_against_the_operator_crds() {
    let mut checked = BTreeMap::new();
    let mut failures = Vec::new();
    for m in manifests() {
        let kind = m.doc["kind"].as_str().unwrap_or_default();
        if !matches!(kind, "SpinApp" | "SpinAppExecutor") {
            continue;
        }
        *checked.entry(kind).or_insert(0) += 1;
        for v in violations(&m.doc) {
            failures.push(format!("{} ({kind}): {v}", m.file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "invalid manifests:\n{}",
        failures.join("\n")
    );
    assert_eq!(checked.get("SpinApp"), Some(&1), "one SpinApp in deploy/");
    assert_eq!(
        checked.get("SpinAppExecutor"),
        Some(&1),
        "one SpinAppExecutor in deploy/"
    );
}

#[test]
fn the_closed_schemas_refuse_unknown_fields_and_missing_required_ones() {
    let app = the_one("SpinApp").clone();
    assert!(violations(&app).is_empty());
    let refused = |mutate: &dyn Fn(&mut Value), what: &str| {
        let mut doc = app.clone();
        mutate(&mut doc);
        assert!(!violations(&doc).is_empty(), "accepted {what}");
    };
    refused(
        &|d| d["spec"]["nodeSelector"] = json!({"agentpool": "x"}),
        "spec.nodeSelector",
    );
    refused(
        &|d| d["spec"]["tolerations"] = json!([]),
        "spec.tolerations",
    );
    refused(
        &|d| d["spec"]["variables"][0]["valueFrom"]["secretKeyRef"]["bogus"] = json!(1),
        "an unknown field deep in a variable",
    );
    refused(
        &|d| d["spec"]["checks"]["readiness"]["httpGet"]["port"] = json!(80),
        "httpGet.port",
    );
    refused(
        &|d| d["spec"]["replicas"] = json!("2"),
        "a string replica count",
    );
    refused(
        &|d| d["spec"]["resources"]["limits"]["memory"] = json!("lots"),
        "a bad quantity",
    );
    refused(
        &|d| drop(d["spec"].as_object_mut().unwrap().remove("image")),
        "no image",
    );
    refused(
        &|d| drop(d["spec"].as_object_mut().unwrap().remove("executor")),
        "no executor",
    );
    refused(
        &|d| {
            drop(
                d["spec"]["variables"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("name"),
            )
        },
        "a variable without a name",
    );
    refused(
        &|d| d["metadata"]["generateName"] = json!("x-"),
        "metadata.generateName",
    );

    let executor = the_one("SpinAppExecutor").clone();
    assert!(violations(&executor).is_empty());
    let mut doc = executor.clone();
    doc["spec"]
        .as_object_mut()
        .unwrap()
        .remove("createDeployment");
    assert!(
        !violations(&doc).is_empty(),
        "accepted an executor without createDeployment"
    );
    let mut doc = executor;
    doc["spec"]["deploymentConfig"]["nodeSelector"] = json!({});
    assert!(
        !violations(&doc).is_empty(),
        "accepted deploymentConfig.nodeSelector"
    );
}

// ---- the SpinApp against spin.toml ---------------------------------------------------------

struct Var {
    name: String,
    source: Source,
}

#[derive(Debug, PartialEq)]
enum Source {
    Value(String),
    ConfigMap {
        name: String,
        key: String,
        optional: bool,
    },
    Secret {
        name: String,
        key: String,
        optional: bool,
    },
    Other,
}

fn app_variables() -> Vec<Var> {
    let app = the_one("SpinApp");
    app["spec"]["variables"]
        .as_array()
        .expect("spec.variables")
        .iter()
        .map(|v| {
            let name = v["name"].as_str().unwrap().to_string();
            let from = &v["valueFrom"];
            let reference = |r: &Value| {
                (
                    r["name"].as_str().unwrap_or_default().to_string(),
                    r["key"].as_str().unwrap().to_string(),
                    r["optional"].as_bool().unwrap_or(false),
                )
            };
            let source = if let Some(value) = v["value"].as_str() {
                Source::Value(value.into())
            } else if from["configMapKeyRef"].is_object() {
                let (name, key, optional) = reference(&from["configMapKeyRef"]);
                Source::ConfigMap {
                    name,
                    key,
                    optional,
                }
            } else if from["secretKeyRef"].is_object() {
                let (name, key, optional) = reference(&from["secretKeyRef"]);
                Source::Secret {
                    name,
                    key,
                    optional,
                }
            } else {
                Source::Other
            };
            Var { name, source }
        })
        .collect()
}

/// Set for sure: a literal value, or a reference that is not optional.
fn always_set(v: &Var) -> bool {
    match &v.source {
        Source::Value(_) => true,
        Source::ConfigMap { optional, .. } | Source::Secret { optional, .. } => !optional,
        Source::Other => false,
    }
}

#[test]
fn every_variable_the_spinapp_sets_is_declared_in_spin_toml() {
    let declared = spin_variables();
    let vars = app_variables();
    let mut seen = BTreeSet::new();
    for v in &vars {
        assert!(
            seen.insert(v.name.clone()),
            "variable {} is set twice",
            v.name
        );
        assert!(
            declared.contains_key(&v.name),
            "the SpinApp sets '{}', which spin.toml does not declare",
            v.name
        );
        let valid_name = v.name.starts_with(|c: char| c.is_ascii_lowercase())
            && v.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        assert!(valid_name, "'{}' is not a Spin variable name", v.name);
        assert_ne!(
            v.source,
            Source::Other,
            "{}: only value, configMapKeyRef or secretKeyRef",
            v.name
        );
        if declared[&v.name]
            .get("secret")
            .and_then(toml::Value::as_bool)
            == Some(true)
        {
            assert!(
                matches!(v.source, Source::Secret { .. }),
                "{} is secret in spin.toml: it must come from a Secret",
                v.name
            );
        }
    }
    // What spin.toml requires, the deployment sets.
    for (name, decl) in declared {
        if decl.get("required").and_then(toml::Value::as_bool) == Some(true) {
            assert!(
                vars.iter().any(|v| &v.name == name && always_set(v)),
                "spin.toml requires '{name}' but the SpinApp does not always set it"
            );
        }
    }
    // None is required today, so also what a cross-tenant deployment cannot work without.
    for name in [
        "function_keys",
        "azure_client_id",
        "app_client_id",
        "cross_tenant_id",
    ] {
        assert!(
            vars.iter().any(|v| v.name == name && always_set(v)),
            "a cross-tenant deployment needs '{name}' set (not optional)"
        );
    }
    assert!(
        vars.iter().any(|v| {
            always_set(v)
                && ["cross_keyvault_endpoint", "cross_blob_service_endpoint"]
                    .contains(&v.name.as_str())
        }),
        "a cross-tenant deployment needs a cross-tenant endpoint"
    );
    // Never an unauthenticated deployment.
    for v in &vars {
        if v.name == "auth_disabled" {
            assert_eq!(
                v.source,
                Source::Value("false".into()),
                "auth_disabled on a cluster"
            );
        }
    }
}

/// kustomization.yaml's generators: name → (files it reads, each as (key, path)).
fn generators(kind: &str) -> BTreeMap<String, Vec<(Option<String>, PathBuf)>> {
    let k = &yaml_docs(&deploy().join("kustomization.yaml"))[0];
    let mut out = BTreeMap::new();
    for g in k[kind].as_array().into_iter().flatten() {
        let mut sources = Vec::new();
        for env in g["envs"].as_array().into_iter().flatten() {
            sources.push((None, deploy().join(env.as_str().unwrap())));
        }
        for file in g["files"].as_array().into_iter().flatten() {
            let (key, path) = file
                .as_str()
                .unwrap()
                .split_once('=')
                .expect("files: key=path");
            sources.push((Some(key.to_string()), deploy().join(path)));
        }
        out.insert(g["name"].as_str().unwrap().to_string(), sources);
    }
    out
}

/// The committed template of a git-ignored secret file (`secrets/x.env` → `secrets/x.env.example`).
fn committed(path: &Path) -> PathBuf {
    if path.exists() && !path.starts_with(deploy().join("secrets")) {
        return path.to_path_buf();
    }
    let mut name = path.file_name().unwrap().to_os_string();
    name.push(".example");
    path.with_file_name(name)
}

/// The keys a generator's data will have.
fn generated_keys(sources: &[(Option<String>, PathBuf)]) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for (key, path) in sources {
        let file = committed(path);
        assert!(
            file.is_file(),
            "generator source {} is missing",
            file.display()
        );
        match key {
            Some(key) => {
                keys.insert(key.clone());
            }
            None => keys.extend(env_file(&file).into_keys()),
        }
    }
    keys
}

#[test]
fn the_configmap_and_secrets_hold_every_key_the_spinapp_reads() {
    let maps = generators("configMapGenerator");
    let secrets = generators("secretGenerator");
    let declared = spin_variables();
    let mut read_from_maps = BTreeSet::new();
    for v in app_variables() {
        let (generators, name, key, optional) = match &v.source {
            Source::ConfigMap {
                name,
                key,
                optional,
            } => (&maps, name, key, optional),
            Source::Secret {
                name,
                key,
                optional,
            } => (&secrets, name, key, optional),
            _ => continue,
        };
        let sources = generators.get(name).unwrap_or_else(|| {
            panic!(
                "{}: no generator in kustomization.yaml makes {name}",
                v.name
            )
        });
        if !optional {
            assert!(
                generated_keys(sources).contains(key),
                "{}: {name} has no key {key}",
                v.name
            );
        }
        if matches!(v.source, Source::ConfigMap { .. }) {
            read_from_maps.insert(key.clone());
        }
    }
    // settings.env has nothing the SpinApp ignores, and its endpoints are origins, never empty
    // (an empty or path-carrying allowed_outbound_hosts entry makes Spin deny every request).
    let outbound: BTreeSet<String> = outbound_template_variables();
    for (name, sources) in &maps {
        for (_, path) in sources {
            for (key, value) in env_file(&committed(path)) {
                assert!(
                    read_from_maps.contains(&key),
                    "{}: {key} is not read by the SpinApp (configMap {name})",
                    path.display()
                );
                assert!(
                    declared.contains_key(&key),
                    "{key} is not a spin.toml variable"
                );
                if outbound.contains(&key) {
                    assert_origin(&key, &value);
                }
            }
        }
    }
    // The runtime config Secret has the one key the operator mounts.
    let app = the_one("SpinApp");
    let secret = app["spec"]["runtimeConfig"]["loadFromSecret"]
        .as_str()
        .expect("runtimeConfig.loadFromSecret");
    let keys = generated_keys(
        secrets
            .get(secret)
            .expect("a generator for the runtime config"),
    );
    assert_eq!(keys, BTreeSet::from(["runtime-config.toml".to_string()]));
}

/// Variables used as `{{ name }}` in allowed_outbound_hosts.
fn outbound_template_variables() -> BTreeSet<String> {
    let component = spin_toml()["component"]["tenant-bridge"]
        .as_table()
        .unwrap();
    component["allowed_outbound_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| {
            let h = h.as_str()?;
            let inner = h.strip_prefix("{{")?.strip_suffix("}}")?;
            Some(inner.trim().to_string())
        })
        .collect()
}

fn assert_origin(key: &str, value: &str) {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("{key}={value}: an endpoint is scheme://host"));
    let host = rest.strip_suffix('/').unwrap_or(rest);
    assert!(!host.is_empty(), "{key} is empty");
    assert!(
        !host.contains('/'),
        "{key}={value}: an endpoint has no path"
    );
}

#[test]
fn the_runtime_config_puts_the_token_cache_in_redis() {
    let store = spin_variables()["token_cache_store"]["default"]
        .as_str()
        .unwrap();
    let component = spin_toml()["component"]["tenant-bridge"]
        .as_table()
        .unwrap();
    assert!(
        component["key_value_stores"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str() == Some(store)),
        "spin.toml grants the component the store '{store}'"
    );
    let check = |path: &Path| {
        let config: toml::Table = read(path).parse().unwrap();
        let kv = &config["key_value_store"][store];
        assert_eq!(
            kv["type"].as_str(),
            Some("redis"),
            "{}: store '{store}'",
            path.display()
        );
        let url = kv["url"].as_str().unwrap();
        assert!(
            url.starts_with("redis://") || url.starts_with("rediss://"),
            "{}: {url}",
            path.display()
        );
        let blocked = config
            .get("outbound_networking")
            .and_then(|o| o.get("block_networks"))
            .and_then(toml::Value::as_array)
            .is_some_and(|b| b.iter().any(|n| n.as_str() == Some("private")));
        assert!(
            !blocked,
            "{}: block_networks = [\"private\"] blocks IMDS",
            path.display()
        );
    };
    check(&deploy().join("secrets/runtime-config.toml.example"));

    // generate.sh writes working secret files and prints none of their contents.
    let tmp = TempDir::new("generate");
    let dir = tmp.path().join("secrets");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["generate.sh", "runtime-config.toml.example"] {
        std::fs::copy(deploy().join("secrets").join(name), dir.join(name)).unwrap();
    }
    let out = Command::new("bash")
        .arg(dir.join("generate.sh"))
        .arg("billing")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    check(&dir.join("runtime-config.toml"));
    let keys = env_file(&dir.join("function-keys.env"));
    let entry = &keys["function_keys"];
    let (name, key) = entry.split_once(':').unwrap();
    assert_eq!(name, "billing");
    assert_eq!(key.len(), 64);
    let password = &env_file(&dir.join("redis.env"))["password"];
    assert!(read(&dir.join("runtime-config.toml")).contains(&format!(":{password}@")));
    for secret in [key, password.as_str()] {
        assert!(!printed.contains(secret), "generate.sh printed a secret");
    }
    // A second run keeps what exists.
    let again = Command::new("bash")
        .arg(dir.join("generate.sh"))
        .output()
        .unwrap();
    assert!(again.status.success());
    assert_eq!(
        &env_file(&dir.join("function-keys.env"))["function_keys"],
        entry
    );
}

// ---- pinning, probes, resources ------------------------------------------------------------

#[test]
fn the_executor_pins_the_pods_to_the_identity_node_pool() {
    let app = the_one("SpinApp");
    let executor = the_one("SpinAppExecutor");
    assert_eq!(app["spec"]["executor"], executor["metadata"]["name"]);
    assert_eq!(executor["spec"]["createDeployment"], true);
    let class = executor["spec"]["deploymentConfig"]["runtimeClassName"]
        .as_str()
        .expect("the executor names a RuntimeClass");
    let runtime_class = the_one("RuntimeClass");
    assert_eq!(runtime_class["apiVersion"], "node.k8s.io/v1");
    assert_eq!(runtime_class["metadata"]["name"], class);
    assert!(runtime_class["handler"].is_string());

    // The pool and taint the Azure set-up creates by default.
    let config = env_file(&deploy().join("azure/config.env.example"));
    let pool = &config["AKS_NODEPOOL"];
    let selector = &runtime_class["scheduling"]["nodeSelector"];
    assert_eq!(selector["kubernetes.azure.com/agentpool"], pool.as_str());
    let taint = &config["NODE_TAINT"]; // key=value:effect
    let (key_value, effect) = taint.split_once(':').unwrap();
    let (key, value) = key_value.split_once('=').unwrap();
    let tolerations = runtime_class["scheduling"]["tolerations"]
        .as_array()
        .unwrap();
    assert!(
        tolerations.iter().any(|t| t["key"] == key
            && t["value"] == value
            && t["effect"] == effect
            && t["operator"] == "Equal"),
        "the RuntimeClass tolerates the pool's taint {taint}"
    );
}

#[test]
fn probes_use_the_health_route_and_resources_are_limited() {
    let app = the_one("SpinApp");
    for probe in ["readiness", "liveness"] {
        assert_eq!(
            app["spec"]["checks"][probe]["httpGet"]["path"], "/api/healthz",
            "{probe} probe"
        );
        assert!(
            app["spec"]["checks"][probe]["httpGet"]["httpHeaders"].is_null(),
            "the health route needs no key: the {probe} probe sends none"
        );
    }
    assert!(
        read(&repo().join("src/routes.rs")).contains("\"healthz\""),
        "the component serves /api/healthz"
    );
    for (kind, what) in [
        ("limits", "cpu"),
        ("limits", "memory"),
        ("requests", "cpu"),
        ("requests", "memory"),
    ] {
        assert!(
            app["spec"]["resources"][kind][what].is_string(),
            "resources.{kind}.{what}"
        );
    }
    assert!(
        app["spec"]["replicas"].as_i64().unwrap() >= 2,
        "more than one replica"
    );
}

#[test]
fn the_kustomization_builds_every_manifest() {
    let mut listed = BTreeSet::new();
    let mut dirs = vec![deploy()];
    while let Some(dir) = dirs.pop() {
        let k = &yaml_docs(&dir.join("kustomization.yaml"))[0];
        for r in k["resources"].as_array().unwrap() {
            let path = dir.join(r.as_str().unwrap());
            if path.is_dir() {
                dirs.push(path);
            } else {
                assert!(
                    path.is_file(),
                    "kustomization lists a missing {}",
                    path.display()
                );
                listed.insert(path);
            }
        }
    }
    for file in manifest_files() {
        assert!(
            listed.contains(&file),
            "{} is in no kustomization",
            file.display()
        );
    }
}

/// `kubectl kustomize` (when kubectl is there): the generated ConfigMap and Secret names, with
/// their hash suffixes, reach the SpinApp through kustomizeconfig.yaml, as does the image.
#[test]
fn kustomize_renames_generated_objects_inside_the_spinapp() {
    let Some(kubectl) = which("kubectl") else {
        println!("notice: kubectl not found; skipping the kustomize build check");
        return;
    };
    let tmp = TempDir::new("kustomize");
    let copy = tmp.path().join("deploy");
    copy_dir(&deploy(), &copy);
    let out = Command::new("bash")
        .arg(copy.join("secrets/generate.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built: Vec<Value> = serde_yaml::Deserializer::from_slice(&out.stdout)
        .map(|d| Value::deserialize(d).unwrap())
        .collect();
    let names = |kind: &str| -> BTreeSet<String> {
        built
            .iter()
            .filter(|d| d["kind"] == kind)
            .map(|d| d["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (maps, secrets) = (names("ConfigMap"), names("Secret"));
    let app = built.iter().find(|d| d["kind"] == "SpinApp").unwrap();
    assert!(violations(app).is_empty(), "{:?}", violations(app));
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
    // The cluster-scoped RuntimeClass stays cluster-scoped.
    let rc = built.iter().find(|d| d["kind"] == "RuntimeClass").unwrap();
    assert!(rc["metadata"]["namespace"].is_null());
}

// ---- the Azure scripts ---------------------------------------------------------------------

fn scripts() -> Vec<PathBuf> {
    let mut all = Vec::new();
    files_under(&deploy(), &mut all);
    all.retain(|p| p.extension().and_then(|e| e.to_str()) == Some("sh"));
    all.push(deploy().join("azure/config.env.example"));
    all
}

#[test]
fn the_scripts_pass_shellcheck() {
    let Some(shellcheck) = which("shellcheck") else {
        assert!(
            std::env::var("CI").ok().as_deref() != Some("true"),
            "shellcheck is not installed: .ci/run must install it (apt-get install shellcheck)"
        );
        println!("notice: shellcheck not found; skipping (CI installs it)");
        return;
    };
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

const TENANT_A: &str = "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa";
const TENANT_B: &str = "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb";
const SUB_A: &str = "5a5a5a5a-3333-4333-8333-5a5a5a5a5a5a";
const SUB_B: &str = "5b5b5b5b-4444-4444-8444-5b5b5b5b5b5b";
/// Put in the environment of every script run: none may ever show up in the output.
const SENTINELS: [(&str, &str); 3] = [
    (
        "SPIN_VARIABLE_FUNCTION_KEYS",
        "ops:sentinel-function-key-0xC0FFEE",
    ),
    ("AZURE_CLIENT_SECRET", "sentinel-client-secret-0xBADC0DE"),
    ("REDIS_PASSWORD", "sentinel-redis-password-0xF00D"),
];

fn sample_config(cloud: &str, extra: &str) -> String {
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

struct Run {
    stdout: String,
    stderr: String,
    ok: bool,
}

/// Runs setup.sh with the given configuration. `az` on PATH is `stub` (a script), or, when
/// `stub` is None, one that records that it was called at all: a dry run must never call it.
fn setup(tmp: &TempDir, config: &str, args: &[&str], stub: Option<&str>) -> Run {
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

fn subcommand(args: &str) -> String {
    args.split(' ')
        .take_while(|w| !w.starts_with('-'))
        .collect::<Vec<_>>()
        .join(" ")
}

fn change_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with("+ az ")).collect()
}

/// What no deployment of this pattern ever needs: a secret, a key, a privileged role.
fn assert_nothing_secret(stdout: &str) {
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
    assert!(line("+ az network private-dns link vnet create", 0)
        .contains("--registration-enabled false"));
    let group = line("+ az network private-endpoint dns-zone-group create", 0);
    assert!(group.contains("--endpoint-name pe-kv-b") && group.ends_with("--zone-name vault"));
    // Each create follows the check that makes it idempotent.
    for (check, change) in [
        ("? az group show", "+ az group create"),
        ("? az identity show", "+ az identity create"),
        ("? az aks nodepool show", "+ az aks nodepool add"),
        ("? az vmss identity show", "+ az vmss identity assign"),
        ("? az ad app list", "+ az ad app create"),
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
            "? az network private-endpoint dns-zone-group show",
            "+ az network private-endpoint dns-zone-group create",
        ),
    ] {
        let at = |p: &str| run.stdout.find(p).unwrap_or_else(|| panic!("no {p}"));
        assert!(at(check) < at(change), "{change} before {check}");
    }
    // The Spin variables it ends with.
    for expected in [
        "cloud=public",
        "azure_client_id=<clientId of id-bridge>",
        "app_client_id=<appId of bridge-app>",
        &format!("cross_tenant_id={TENANT_B}"),
        "cross_keyvault_endpoint=https://kv-b.vault.azure.net",
        "cross_blob_service_endpoint=https://stb.blob.core.windows.net",
        "keyvault_endpoint=https://kv-a.vault.azure.net",
        "blob_service_endpoint=https://sta.blob.core.windows.net",
    ] {
        assert!(run.stdout.lines().any(|l| l == expected), "no {expected}");
    }
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
        assert!(
            out.contains(&format!("cross_keyvault_endpoint=https://{vault_host}\n")),
            "{cloud}"
        );
        assert!(out.contains(&format!("cloud={cloud}\n")));
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

/// A stub `az` for an Azure where everything the set-up makes already exists: it answers each
/// read from a table, logs every call, and remembers the current subscription.
/// `vault_permissions`: None for Azure RBAC vaults, else the secret permissions each principal
/// has in access-policy vaults.
fn existing_world_stub(
    fic_subject: &str,
    connection_status: &str,
    vault_permissions: Option<&str>,
) -> String {
    let rbac = vault_permissions.is_none();
    let permissions = vault_permissions.unwrap_or_default();
    let mi_id = format!(
        "/subscriptions/{SUB_A}/resourceGroups/rg-bridge/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-bridge"
    );
    let pe = |name: &str| {
        format!("/subscriptions/{SUB_A}/resourceGroups/rg-bridge/providers/Microsoft.Network/privateEndpoints/{name}")
    };
    let vnet = format!("/subscriptions/{SUB_A}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-main");
    format!(
        r#"#!/usr/bin/env bash
printf '%s\n' "$*" >> "$STUB_LOG"
args=" $* "
case "$args" in
  *" cloud show "*) echo AzureCloud ;;
  *" account set --subscription "*) printf '%s' "$4" > "$STUB_STATE" ;;
  *" account show --subscription {SUB_A} "*) echo {TENANT_A} ;;
  *" account show --subscription {SUB_B} "*) echo {TENANT_B} ;;
  *" account show "*)
    case "$(cat "$STUB_STATE")" in {SUB_A}) echo {TENANT_A} ;; {SUB_B}) echo {TENANT_B} ;; esac ;;
  *" identity show "*"--query principalId "*) echo 0b0b0b0b-4444-4444-8444-0b0b0b0b0b0b ;;
  *" identity show "*"--query clientId "*) echo c1c1c1c1-3333-4333-8333-c1c1c1c1c1c1 ;;
  *" aks show "*) echo MC_rg-aks_aks-main_westeurope ;;
  *" vmss list "*) echo aks-tbridge-12345678-vmss ;;
  *" vmss identity show "*) printf '{{"%s": {{"clientId": "c1c1"}}}}\n' '{mi_id}' ;;
  *" ad app list "*) echo a9a9a9a9-5555-4555-8555-a9a9a9a9a9a9 ;;
  *" ad app show "*"signInAudience"*) echo AzureADMultipleOrgs ;;
  *" ad app federated-credential show "*)
    echo '{fic_subject}|https://login.microsoftonline.com/{TENANT_A}/v2.0|api://AzureADTokenExchange' ;;
  *" role assignment list "*) echo /subscriptions/x/providers/Microsoft.Authorization/roleAssignments/1 ;;
  *" keyvault show "*"enableRbacAuthorization"*) echo {rbac} ;;
  *" keyvault show "*"accessPolicies"*) printf '{permissions}' ;;
  *" ad sp show "*) echo 5b5b5b5b-7777-4777-8777-5b5b5b5b5b5b ;;
  *" private-endpoint-connection list "*"KeyVault"*)
    printf 'conn-kv\t%s\t{connection_status}\n' '{pe_kv}' ;;
  *" private-endpoint-connection list "*"Storage"*)
    printf 'conn-blob\t%s\t{connection_status}\n' '{pe_blob}' ;;
  *" private-endpoint show "*"privateLinkServiceConnectionState"*) echo Approved ;;
  *" private-dns link vnet list "*) echo '{vnet}' ;;
  *" show "*) echo /subscriptions/x/exists ;;
  *) exit 0 ;;
esac
"#,
        pe_kv = pe("pe-kv-b"),
        pe_blob = pe("pe-blob-b"),
    )
}

fn logged_changes(tmp: &TempDir) -> Vec<String> {
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
    let principal = "0b0b0b0b-4444-4444-8444-0b0b0b0b0b0b";
    let stub = existing_world_stub(principal, "Approved", None);
    let run = setup(&tmp, &sample_config("public", ""), &["all"], Some(&stub));
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    // It only selects each tenant's subscription, in turn.
    assert_eq!(
        logged_changes(&tmp),
        ["account set", "account set", "account set", "account set"],
        "\n{}",
        run.stdout
    );
    // (outputs selects tenant A quietly: its stdout is the variables only.)
    assert_eq!(changes(&run.stdout), ["account set"; 3]);
    assert!(run
        .stdout
        .contains("azure_client_id=c1c1c1c1-3333-4333-8333-c1c1c1c1c1c1"));
    assert!(run
        .stdout
        .contains("app_client_id=a9a9a9a9-5555-4555-8555-a9a9a9a9a9a9"));

    // A credential whose subject is stale (the identity was re-created) is updated, and pending
    // connections are approved; nothing else changes.
    let tmp = TempDir::new("rerun-drift");
    let stub = existing_world_stub("11111111-9999-4999-8999-111111111111", "Pending", None);
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
        log.contains(&format!("\"subject\":\"{principal}\"")),
        "{log}"
    );
    assert!(log.contains("approve --id conn-kv ") && log.contains("approve --id conn-blob "));

    // Access-policy vaults: `get` on secrets is added where missing, left alone where present.
    for (permissions, expected) in [("", 2), ("get\tlist\n", 0)] {
        let tmp = TempDir::new("rerun-policy");
        let stub = existing_world_stub(principal, "Approved", Some(permissions));
        let run = setup(&tmp, &sample_config("public", ""), &["all"], Some(&stub));
        assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
        let changed = logged_changes(&tmp);
        let policies = changed
            .iter()
            .filter(|c| *c == "keyvault set-policy")
            .count();
        assert_eq!(policies, expected, "{permissions:?}: {changed:?}");
        assert_eq!(changed.len(), 4 + expected, "{changed:?}");
        assert!(!read(&tmp.path().join("az.log")).contains("role assignment create"));
    }
}

// ---- the docs ------------------------------------------------------------------------------

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
        ] {
            for (at, _) in text.match_indices(ctor) {
                let rest = &text[at + ctor.len()..];
                // Skip whitespace and a numeric status; the code is the next literal.
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
    let missing: Vec<_> = spin_variables()
        .keys()
        .filter(|v| !docs.contains(&format!("`{v}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/deploy.md does not mention the variables {missing:?}"
    );
    for warned in [
        "block_networks",
        "/api/healthz",
        "spin registry push",
        "taint",
    ] {
        assert!(
            docs.contains(warned),
            "docs/deploy.md does not mention {warned}"
        );
    }
}

// ---- helpers -------------------------------------------------------------------------------

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tenant-bridge-deploy-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
