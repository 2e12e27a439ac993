//! The manifests of deploy/ as files: against the CRDs, spin.toml, the generator sources and the
//! set-up's defaults.

use super::*;

#[test]
fn custom_resources_validate_against_the_operator_crds() {
    let mut checked = BTreeMap::new();
    let mut failures = Vec::new();
    for m in manifests() {
        let kind = m.doc["kind"].as_str().unwrap_or_default();
        if !CRDS.iter().any(|(k, ..)| *k == kind) {
            continue;
        }
        let Some(found) = violations(&m.doc) else {
            return;
        };
        *checked.entry(kind).or_insert(0) += 1;
        for v in found {
            failures.push(format!("{} ({kind}): {v}", m.file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "invalid manifests:\n{}",
        failures.join("\n")
    );
    for (kind, ..) in CRDS {
        assert_eq!(checked.get(kind), Some(&1), "one {kind} in deploy/");
    }
}

#[test]
fn the_closed_schemas_refuse_unknown_fields_and_missing_required_ones() {
    let app = the_one("SpinApp").clone();
    let Some(found) = violations(&app) else {
        return;
    };
    assert!(found.is_empty(), "{found:?}");
    let refused = |mutate: &dyn Fn(&mut Value), what: &str| {
        let mut doc = app.clone();
        mutate(&mut doc);
        assert!(!violations(&doc).unwrap().is_empty(), "accepted {what}");
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
    assert!(violations(&executor).unwrap().is_empty());
    let mut doc = executor.clone();
    doc["spec"]
        .as_object_mut()
        .unwrap()
        .remove("createDeployment");
    assert!(
        !violations(&doc).unwrap().is_empty(),
        "accepted an executor without createDeployment"
    );
    let mut doc = executor;
    doc["spec"]["deploymentConfig"]["nodeSelector"] = json!({});
    assert!(
        !violations(&doc).unwrap().is_empty(),
        "accepted deploymentConfig.nodeSelector"
    );

    // The External Secrets ones are closed the same way.
    let refused_as = |kind: &str, mutate: &dyn Fn(&mut Value), what: &str| {
        let mut doc = the_one(kind).clone();
        assert!(violations(&doc).unwrap().is_empty());
        mutate(&mut doc);
        assert!(
            !violations(&doc).unwrap().is_empty(),
            "{kind}: accepted {what}"
        );
    };
    refused_as(
        "SecretStore",
        &|d| d["spec"]["provider"]["webhook"]["header"] = json!({}),
        "an unknown webhook field",
    );
    refused_as(
        "SecretStore",
        &|d| {
            drop(
                d["spec"]["provider"]["webhook"]
                    .as_object_mut()
                    .unwrap()
                    .remove("url"),
            )
        },
        "a webhook without url",
    );
    refused_as(
        "SecretStore",
        &|d| {
            d["spec"]["provider"]["webhook"]["secrets"][0]["secretRef"]["name"] =
                json!("Not_A_Name")
        },
        "an invalid Secret name",
    );
    refused_as(
        "ExternalSecret",
        &|d| d["spec"]["target"]["template"]["engineVersion"] = json!("v1"),
        "template engine v1",
    );
    refused_as(
        "ExternalSecret",
        &|d| d["spec"]["refreshPolicy"] = json!("Sometimes"),
        "an unknown refresh policy",
    );
    refused_as(
        "ExternalSecret",
        &|d| {
            drop(
                d["spec"]["dataFrom"][0]["extract"]
                    .as_object_mut()
                    .unwrap()
                    .remove("key"),
            )
        },
        "an extract without key",
    );
    refused_as(
        "ExternalSecret",
        &|d| d["spec"]["secretStoreRef"]["kind"] = json!("Vault"),
        "an unknown store kind",
    );
}

// ---- the SpinApp against spin.toml ---------------------------------------------------------

pub(crate) struct Var {
    pub(crate) name: String,
    pub(crate) source: Source,
}

#[derive(Debug, PartialEq)]
pub(crate) enum Source {
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

pub(crate) fn app_variables() -> Vec<Var> {
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
pub(crate) fn always_set(v: &Var) -> bool {
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
    // Every declared variable is set, and never optionally: an unset `settings` falls back to
    // spin.toml's empty document (a pod that serves nothing), an unset `function_keys` refuses
    // every caller. (What the settings hold: settings.rs.)
    let always: BTreeSet<&str> = vars
        .iter()
        .filter(|v| always_set(v))
        .map(|v| v.name.as_str())
        .collect();
    let all: BTreeSet<&str> = declared.keys().map(String::as_str).collect();
    assert_eq!(
        always, all,
        "the SpinApp sets every variable spin.toml declares, none optional"
    );
    assert!(
        vars.iter().any(|v| v.name == "settings"
            && matches!(
                v.source,
                Source::ConfigMap {
                    optional: false,
                    ..
                }
            )),
        "the settings document comes from the ConfigMap"
    );
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
        // `key=path`, or `path` (the key is the file's name).
        for file in g["files"].as_array().into_iter().flatten() {
            let file = file.as_str().unwrap();
            let (key, path) = file.split_once('=').unwrap_or_else(|| {
                let name = Path::new(file).file_name().unwrap().to_str().unwrap();
                (name, file)
            });
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
    // The ConfigMaps hold nothing the SpinApp ignores, and what it reads as `settings` is a
    // document of settings the component knows (settings.rs checks what it says).
    for (name, sources) in &maps {
        for key in generated_keys(sources) {
            assert!(
                read_from_maps.contains(&key),
                "configMap {name}: key {key} is not read by the SpinApp"
            );
        }
    }
    for v in app_variables() {
        let Source::ConfigMap { name, key, .. } = &v.source else {
            continue;
        };
        let (_, path) = maps[name]
            .iter()
            .find(|(k, _)| k.as_deref() == Some(key.as_str()))
            .unwrap_or_else(|| panic!("{}: {name}/{key} is not a file of its own", v.name));
        if v.name == "settings" {
            super::settings::valid_document(&read(path), &path.display().to_string());
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

#[test]
fn the_runtime_config_puts_the_token_cache_in_redis() {
    // The store the settings name (deploy/settings.json, or the component's default).
    let store = super::settings::effective("token_cache_store");
    let store = store.as_str();
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

/// `key=value` of a label setting of config.env.example.
fn label_setting(name: &str) -> (String, String) {
    let config = config_example();
    let (k, v) = config[name]
        .split_once('=')
        .unwrap_or_else(|| panic!("{name} is key=value"));
    (k.to_string(), v.to_string())
}

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
    pins_to_the_pool_and_the_shim(runtime_class, &the_one("Shim").clone());
}

/// The RuntimeClass selects the pool the set-up creates, the pool label the shim installer
/// selects on, and the label the installer sets once the shim runs; it tolerates the taint.
pub(crate) fn pins_to_the_pool_and_the_shim(runtime_class: &Value, shim: &Value) {
    let config = config_example();
    let selector = runtime_class["scheduling"]["nodeSelector"]
        .as_object()
        .expect("scheduling.nodeSelector");
    assert_eq!(
        selector["kubernetes.azure.com/agentpool"],
        config["AKS_NODEPOOL"].as_str()
    );
    let (shim_key, shim_value) = label_setting("SHIM_NODE_LABEL");
    assert_eq!(
        selector.get(&shim_key).and_then(Value::as_str),
        Some(shim_value.as_str()),
        "the RuntimeClass selects the pool label {shim_key}={shim_value}"
    );
    // The Shim installs on exactly that label, and labels provisioned nodes with its name.
    assert_eq!(shim["apiVersion"], "runtime.spinkube.dev/v1alpha1");
    assert_eq!(
        shim["spec"]["nodeSelector"],
        json!({ shim_key.clone(): shim_value }),
        "the Shim selects what the pool is labelled with"
    );
    let shim_name = shim["metadata"]["name"].as_str().unwrap();
    assert_eq!(
        selector.get(shim_name).and_then(Value::as_str),
        Some("provisioned"),
        "a pod only lands where runtime-class-manager installed the shim"
    );
    assert_eq!(
        shim["spec"]["runtimeClass"]["handler"], runtime_class["handler"],
        "the RuntimeClass uses the handler the installer registers"
    );
    assert_ne!(
        shim["spec"]["runtimeClass"]["name"], runtime_class["metadata"]["name"],
        "the installer's own RuntimeClass must not replace ours (it has no toleration)"
    );
    // The taint the pool gets, tolerated.
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
fn the_shim_is_pinned_to_the_release_that_embeds_spin_3_6_3() {
    let shim = the_one("Shim");
    let platforms = shim["spec"]["fetchStrategy"]["platforms"]
        .as_array()
        .expect("fetchStrategy.platforms");
    let mut arches = BTreeSet::new();
    for p in platforms {
        let location = p["location"].as_str().unwrap();
        assert!(
            location.starts_with(
                "https://github.com/spinframework/containerd-shim-spin/releases/download/v0.24."
            ),
            "{location}: containerd-shim-spin v0.24.x embeds Spin 3.6.3; later releases embed Spin 4"
        );
        assert!(location.ends_with(&format!(
            "/containerd-shim-spin-v2-linux-{}.tar.gz",
            p["arch"].as_str().unwrap()
        )));
        assert_eq!(p["os"], "linux");
        arches.insert(p["arch"].as_str().unwrap().to_string());
    }
    assert_eq!(
        arches,
        BTreeSet::from(["aarch64".to_string(), "x86_64".to_string()])
    );
    // The pool label's value names the same release, so a label and a Shim never disagree.
    let (_, value) = label_setting("SHIM_NODE_LABEL");
    assert!(value.ends_with("v0.24.0"), "{value}");
    assert!(read(&repo().join("docs/deploy.md")).contains("Spin 3.6.3"));
}

#[test]
fn probes_use_the_live_and_health_routes_and_resources_are_limited() {
    let app = the_one("SpinApp");
    probes_are_split(app);
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

/// Liveness asks the route that answers while the host serves (a configuration mistake never
/// restarts a pod); readiness asks the configuration check. Neither sends a key.
pub(crate) fn probes_are_split(app: &Value) {
    let routes = read(&repo().join("src/request/routes.rs"));
    for (probe, path, route) in [
        ("liveness", "/api/livez", "\"livez\""),
        ("readiness", "/api/healthz", "\"healthz\""),
    ] {
        let check = &app["spec"]["checks"][probe];
        assert_eq!(check["httpGet"]["path"], path, "{probe} probe");
        assert!(
            check["httpGet"]["httpHeaders"].is_null(),
            "the {probe} route needs no key: the probe sends none"
        );
        assert!(routes.contains(route), "the component serves {path}");
    }
    let answer_live = routes
        .find("return Ok(Decision::Live)")
        .expect("routes::decide answers livez");
    let read_settings = routes
        .find("settings::load(")
        .expect("routes::decide reads the settings");
    assert!(
        answer_live < read_settings,
        "livez answers before any configuration is read"
    );
}

/// Every kustomization under deploy/ (the app, the shim, the registry pull secret) and what it
/// lists.
fn kustomizations() -> BTreeMap<PathBuf, Value> {
    let mut all = Vec::new();
    files_under(&deploy(), &mut all);
    all.into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "kustomization.yaml"))
        .map(|p| {
            let k = yaml_docs(&p).remove(0);
            (p.parent().unwrap().to_path_buf(), k)
        })
        .collect()
}

#[test]
fn the_kustomizations_build_every_manifest() {
    let all = kustomizations();
    let mut listed = BTreeSet::new();
    for (dir, k) in &all {
        for r in k["resources"].as_array().unwrap() {
            let path = dir.join(r.as_str().unwrap());
            if path.is_dir() {
                assert!(
                    all.contains_key(&path),
                    "{} has no kustomization",
                    path.display()
                );
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
    // The top-level one neither needs runtime-class-manager's nor ESO's CRDs.
    let top = &all[&deploy()];
    let resources: Vec<&str> = top["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(!resources.contains(&"shim") && !resources.contains(&"registry-pull"));
}

#[test]
fn the_kustomization_orders_the_executor_before_the_spinapp() {
    let k = &kustomizations()[&deploy()];
    assert_eq!(k["sortOptions"]["order"], "legacy");
    let first: Vec<&str> = k["sortOptions"]["legacySortOptions"]["orderFirst"]
        .as_array()
        .expect("orderFirst")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let last: Vec<&str> = k["sortOptions"]["legacySortOptions"]["orderLast"]
        .as_array()
        .expect("orderLast")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(last, ["SpinApp"]);
    let at = |kind: &str| first.iter().position(|k| *k == kind);
    for (before, after) in [
        ("Namespace", "RuntimeClass"),
        ("RuntimeClass", "SpinAppExecutor"),
        ("ConfigMap", "SpinAppExecutor"),
        ("Secret", "SpinAppExecutor"),
    ] {
        assert!(
            at(before).unwrap() < at(after).unwrap(),
            "{before} before {after}"
        );
    }
    // Every kind deploy/ has is placed, so nothing falls between by accident.
    for m in manifests() {
        if !m.file.starts_with(deploy().join("shim"))
            && !m.file.starts_with(deploy().join("registry-pull"))
        {
            let kind = m.doc["kind"].as_str().unwrap();
            assert!(
                first.contains(&kind) || last.contains(&kind),
                "{kind} has no place in sortOptions"
            );
        }
    }
}

#[test]
fn the_egress_policy_allows_imds_dns_redis_and_https_only() {
    let policies = of_kind("NetworkPolicy");
    let egress = policies
        .iter()
        .find(|p| {
            p.doc["spec"]["policyTypes"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("Egress")))
        })
        .expect("an egress NetworkPolicy in deploy/");
    egress_rules_are_right(&egress.doc, the_one("SpinApp"), &redis_deployment());
}

pub(crate) fn redis_deployment() -> Value {
    of_kind("Deployment")
        .into_iter()
        .find(|d| d.doc["metadata"]["name"] == "tenant-bridge-redis")
        .expect("the Redis deployment")
        .doc
        .clone()
}

pub(crate) fn egress_rules_are_right(policy: &Value, app: &Value, redis: &Value) {
    // It selects the app's pods (by the labels the SpinApp gives them).
    let selector = policy["spec"]["podSelector"]["matchLabels"]
        .as_object()
        .expect("matchLabels");
    for (k, v) in selector {
        assert_eq!(
            &app["spec"]["podLabels"][k], v,
            "the policy selects the app's pods"
        );
    }
    let rules = policy["spec"]["egress"].as_array().unwrap();
    // No rule without ports: nothing is open on every port.
    for r in rules {
        assert!(r["ports"].as_array().is_some_and(|p| !p.is_empty()), "{r}");
    }
    let allows = |cidr: &str, port: i64, proto: &str| {
        rules.iter().any(|r| {
            r["to"].as_array().is_some_and(|to| {
                to.iter()
                    .any(|t| t["ipBlock"]["cidr"] == cidr && t["ipBlock"]["except"].is_null())
            }) && r["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["port"] == port && p["protocol"] == proto)
        })
    };
    assert!(allows("169.254.169.254/32", 80, "TCP"), "IMDS");
    assert!(
        allows("0.0.0.0/0", 443, "TCP"),
        "HTTPS: Entra and the private endpoints"
    );
    // Every rule names its peers: no port is open to any address but HTTPS (issue 20: DNS was).
    for r in rules {
        assert!(
            r["to"].as_array().is_some_and(|to| !to.is_empty()),
            "a rule without peers: {r}"
        );
        let any_address = r["to"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["ipBlock"]["cidr"] == "0.0.0.0/0");
        let ports: Vec<&Value> = r["ports"].as_array().unwrap().iter().collect();
        assert!(
            !any_address || ports.iter().all(|p| p["port"] == 443),
            "only HTTPS goes to any address: {r}"
        );
    }
    // DNS: to the cluster's CoreDNS only.
    let core_dns = json!({
        "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "kube-system" } },
        "podSelector": { "matchLabels": { "k8s-app": "kube-dns" } },
    });
    for proto in ["UDP", "TCP"] {
        assert!(
            rules.iter().any(|r| r["to"] == json!([core_dns.clone()])
                && r["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["port"] == 53 && p["protocol"] == proto)),
            "DNS over {proto}, to CoreDNS"
        );
    }
    // Redis: the pods and the port of deploy/redis.
    let redis_labels = &redis["spec"]["template"]["metadata"]["labels"];
    let redis_port =
        &redis["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"];
    assert!(
        rules
            .iter()
            .any(|r| r["to"].as_array().is_some_and(|to| to.iter().any(|t| {
                t["podSelector"]["matchLabels"]
                    .as_object()
                    .is_some_and(|m| m.iter().all(|(k, v)| &redis_labels[k] == v))
            })) && r["ports"][0]["port"] == *redis_port),
        "Redis"
    );
}

// ---- registry pull secrets (External Secrets Operator) -------------------------------------

/// A Go duration as ESO writes it (`15m`, `1h30m`, `90s`), in seconds.
fn go_duration_secs(text: &str) -> u64 {
    let mut total = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().unwrap_or_else(|_| panic!("duration {text}"));
        number.clear();
        total += n * match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => panic!("duration {text}: unit {c}"),
        };
    }
    assert!(number.is_empty(), "duration {text} has no unit");
    total
}

#[test]
fn the_pull_secret_store_calls_the_token_route_with_a_function_key() {
    let store = the_one("SecretStore");
    let webhook = &store["spec"]["provider"]["webhook"];
    let url = webhook["url"].as_str().unwrap();
    // The SpinApp's Service in tenant-bridge's namespace (the operator names it after the app).
    let app = the_one("SpinApp");
    let namespace = kustomizations()[&deploy()]["namespace"]
        .as_str()
        .unwrap()
        .to_string();
    // The port written out: see upstream.rs, the_secret_store_dials_the_service_port.
    let origin = format!(
        "http://{}.{namespace}.svc.cluster.local:80/",
        app["metadata"]["name"].as_str().unwrap()
    );
    assert!(url.starts_with(&origin), "{url} is not {origin}…");
    let (path, query) = url[origin.len() - 1..].split_once('?').unwrap();
    assert_eq!(path, "/api/acr/token");
    assert!(read(&repo().join("src/request/routes.rs")).contains("(\"acr/token\""));
    assert_eq!(
        query,
        "registry={{ .remoteRef.key }}&repository={{ .remoteRef.property }}&tenant=registry"
    );
    assert!(webhook["method"].is_null() || webhook["method"] == "GET");
    assert_eq!(webhook["result"]["jsonPath"], "$");
    // Longer than the component's own deadline, so its problem answer arrives first.
    let deadline: u64 = super::settings::effective("request_deadline_secs")
        .parse()
        .unwrap();
    assert!(go_duration_secs(webhook["timeout"].as_str().unwrap()) > deadline);
    // The key: header x-functions-key from the named Secret, which the kustomization generates
    // with the label ESO's webhook provider insists on.
    let secrets = webhook["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 1);
    let name = secrets[0]["name"].as_str().unwrap();
    assert_eq!(
        webhook["headers"]["x-functions-key"],
        format!(
            "{{{{ .{name}.{} }}}}",
            secrets[0]["secretRef"]["key"].as_str().unwrap()
        )
    );
    let k = &kustomizations()[&deploy().join("registry-pull")];
    let generator = k["secretGenerator"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == secrets[0]["secretRef"]["name"])
        .expect("a generator for the key Secret");
    assert_eq!(
        generator["options"]["labels"]["external-secrets.io/type"],
        "webhook"
    );
    let source = committed(
        &deploy()
            .join("registry-pull")
            .join(generator["envs"][0].as_str().unwrap()),
    );
    assert!(env_file(&source).contains_key(secrets[0]["secretRef"]["key"].as_str().unwrap()));
}

#[test]
fn the_pull_secret_is_a_dockerconfigjson_refreshed_well_before_expiry() {
    let es = the_one("ExternalSecret");
    let spec = &es["spec"];
    assert_eq!(
        spec["secretStoreRef"]["name"],
        the_one("SecretStore")["metadata"]["name"]
    );
    assert_eq!(spec["secretStoreRef"]["kind"], "SecretStore");
    // Periodic, every 15 minutes at most: ACR tokens live an hour or more, so a failed refresh
    // has several attempts before the Secret's token could expire.
    assert_eq!(spec["refreshPolicy"], "Periodic");
    let every = go_duration_secs(spec["refreshInterval"].as_str().unwrap());
    assert!((60..=15 * 60).contains(&every), "refreshInterval {every} s");
    let template = &spec["target"]["template"];
    assert_eq!(template["type"], "kubernetes.io/dockerconfigjson");
    assert_eq!(template["engineVersion"], "v2");
    let extract = &spec["dataFrom"][0]["extract"];
    let registry = extract["key"].as_str().unwrap();
    assert!(registry.ends_with(".azurecr.io"), "{registry}");
    assert!(extract["property"].is_string(), "the repository");
    // The template, with what the route answers put in, is the JSON kubelet reads.
    let tpl = template["data"][".dockerconfigjson"].as_str().unwrap();
    let filled = tpl
        .replace("{{ .username }}", "00000000-0000-0000-0000-000000000000")
        .replace("{{ .password }}", "eyJ.token")
        .replace(
            "{{ printf \"%s:%s\" .username .password | b64enc }}",
            "QUJD",
        );
    assert!(!filled.contains("{{"), "{filled}");
    let config: Value = serde_json::from_str(&filled).expect("valid JSON");
    let auth = &config["auths"][registry];
    assert_eq!(auth["username"], "00000000-0000-0000-0000-000000000000");
    assert_eq!(auth["password"], "eyJ.token");
    assert_eq!(auth["auth"], "QUJD");
    // The fields it uses are the ones the route returns (src/services/acr.rs, PullToken).
    let acr = read(&repo().join("src/services/acr.rs"));
    for field in ["username", "password", "expires_on"] {
        assert!(
            acr.contains(&format!("pub {field}:")),
            "PullToken has no {field}"
        );
    }
}

#[test]
fn registry_pull_generate_shares_one_key_with_tenant_bridge() {
    let tmp = TempDir::new("registry-generate");
    let copy = tmp.path().join("deploy");
    copy_dir(&deploy(), &copy);
    for f in [
        "secrets/function-keys.env",
        "registry-pull/secrets/function-key.env",
    ] {
        let _ = std::fs::remove_file(copy.join(f));
    }
    let run = || {
        let out = Command::new("bash")
            .arg(copy.join("registry-pull/generate.sh"))
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    // Without tenant-bridge's keys it says what to run first.
    let (ok, said) = run();
    assert!(!ok && said.contains("deploy/secrets/generate.sh"), "{said}");
    let out = Command::new("bash")
        .arg(copy.join("secrets/generate.sh"))
        .arg("billing")
        .output()
        .unwrap();
    assert!(out.status.success());
    let (ok, said) = run();
    assert!(ok, "{said}");
    let key = env_file(&copy.join("registry-pull/secrets/function-key.env"))["key"].clone();
    assert_eq!(key.len(), 64);
    assert!(!said.contains(&key), "generate.sh printed the key");
    let keys = env_file(&copy.join("secrets/function-keys.env"))["function_keys"].clone();
    let entries: Vec<&str> = keys.split(',').collect();
    assert_eq!(entries.len(), 2, "{keys}");
    assert!(entries[0].starts_with("billing:"));
    assert_eq!(entries[1], format!("registry-pull:{key}"));
    // Again: nothing changes.
    let (ok, said) = run();
    assert!(ok, "{said}");
    assert_eq!(
        env_file(&copy.join("secrets/function-keys.env"))["function_keys"],
        keys
    );
    assert_eq!(
        env_file(&copy.join("registry-pull/secrets/function-key.env"))["key"],
        key
    );
    // Lost on one side, recovered from the other.
    std::fs::remove_file(copy.join("registry-pull/secrets/function-key.env")).unwrap();
    let (ok, said) = run();
    assert!(ok, "{said}");
    assert_eq!(
        env_file(&copy.join("registry-pull/secrets/function-key.env"))["key"],
        key
    );
    assert_eq!(
        env_file(&copy.join("secrets/function-keys.env"))["function_keys"],
        keys
    );
}

// ---- who may call tenant-bridge -------------------------------------------------------------

/// The namespaces the ingress policy admits, by their kubernetes.io/metadata.name (the name the
/// API server writes on every namespace: kubernetes pkg/registry/core/namespace/strategy.go, and
/// k8s.io/api core/v1 well_known_labels.go LabelMetadataName).
pub(crate) fn ingress_namespaces(policy: &Value, app: &Value) -> BTreeSet<String> {
    for (k, v) in policy["spec"]["podSelector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            &app["spec"]["podLabels"][k], v,
            "the policy selects the app's pods"
        );
    }
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
    let mut names = BTreeSet::new();
    for rule in policy["spec"]["ingress"].as_array().unwrap() {
        // Port 80 only: the Spin host's containerPort (spin-operator v0.6.1
        // internal/controller/spinapp_controller.go, ContainerPort spinapp.DefaultHTTPPort).
        assert_eq!(
            rule["ports"],
            json!([{ "protocol": "TCP", "port": 80 }]),
            "{rule}"
        );
        let from = rule["from"]
            .as_array()
            .expect("every rule names its sources");
        assert!(!from.is_empty(), "an empty from admits everyone: {rule}");
        for peer in from {
            assert!(
                peer["ipBlock"].is_null() && peer["podSelector"].is_null(),
                "{peer}"
            );
            let selector = &peer["namespaceSelector"];
            assert!(selector["matchLabels"].is_null(), "{peer}");
            let expressions = selector["matchExpressions"].as_array().unwrap();
            assert_eq!(expressions.len(), 1, "{peer}");
            let e = &expressions[0];
            assert_eq!(e["key"], "kubernetes.io/metadata.name");
            assert_eq!(e["operator"], "In");
            for n in e["values"].as_array().unwrap() {
                names.insert(n.as_str().unwrap().to_string());
            }
        }
    }
    names
}

/// Issue 20, defect 4: with an egress-only policy any pod of the cluster could call port 80.
#[test]
fn the_ingress_policy_admits_only_the_callers_and_eso() {
    let policy = of_kind("NetworkPolicy")
        .into_iter()
        .find(|p| p.doc["metadata"]["name"] == "tenant-bridge-ingress")
        .expect("an ingress NetworkPolicy for tenant-bridge");
    let names = ingress_namespaces(&policy.doc, the_one("SpinApp"));
    // The pulling namespace of deploy/registry-pull (where its Secret lives) and ESO's.
    let pulling = kustomizations()[&deploy().join("registry-pull")]["namespace"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        names,
        BTreeSet::from([pulling, "external-secrets".to_string()])
    );
}

/// The default name registry-pull/generate.sh gives its caller.
fn registry_pull_caller() -> String {
    let script = read(&deploy().join("registry-pull/generate.sh"));
    let line = script
        .lines()
        .find(|l| l.starts_with("caller=\"${1:-"))
        .expect("generate.sh's default caller");
    line.trim_start_matches("caller=\"${1:-")
        .trim_end_matches("}\"")
        .to_string()
}

/// Issue 20, defect 4: caller rules apply per profile (src/request/routes.rs, the profile's `callers`),
/// so the registry-pull key, allowed on the default profile, could read every secret and blob
/// of tenant B. It gets a profile of its own, whose only caller it is, and no other profile
/// admits it.
#[test]
fn the_registry_pull_key_has_a_profile_of_its_own() {
    use super::settings::{deployed, fragment, set, slot_var};
    let caller = registry_pull_caller();
    let listed = |v: Option<&str>| -> Vec<String> {
        v.unwrap_or_default()
            .split(',')
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect()
    };
    let settings = deployed();
    // The default profile names its callers, and not the registry-pull key.
    let default_callers = listed(set(&settings, "cross_tenant_callers"));
    assert!(
        !default_callers.is_empty(),
        "an empty caller list admits every key"
    );
    assert!(!default_callers.contains(&caller));
    assert!(set(&settings, "cross_tenant_registries").is_none());
    // The profiles to merge: slot 1 (a second tenant), slot 4 (the registry).
    let second = fragment("second-tenant.json");
    let callers = listed(set(&second, "profile1_callers"));
    assert!(
        !callers.is_empty() && !callers.contains(&caller),
        "{callers:?}"
    );
    let registry = fragment("registry.json");
    assert_eq!(
        listed(set(&registry, &slot_var(Some(4), "callers"))),
        std::slice::from_ref(&caller),
        "its only caller"
    );
    let registries = listed(set(&registry, "profile4_registries"));
    assert!(!registries.is_empty());
    for r in &registries {
        assert!(r.ends_with(".azurecr.io"), "{r}");
    }
    let rules = listed(set(&registry, "profile4_repositories"));
    assert!(!rules.is_empty());
    for rule in rules {
        assert!(rule.starts_with(&format!("{caller}=")), "{rule}");
    }
    // It serves no vault and no account.
    for field in ["keyvault_endpoint", "blob_service_endpoint"] {
        assert!(
            set(&registry, &slot_var(Some(4), field)).is_none(),
            "{field}"
        );
    }
    // The SecretStore asks for that profile.
    let url = the_one("SecretStore")["spec"]["provider"]["webhook"]["url"]
        .as_str()
        .unwrap();
    assert!(
        url.ends_with(&format!(
            "&tenant={}",
            set(&registry, "profile4_name").unwrap()
        )),
        "{url}"
    );
}

/// `setup.sh outputs` never puts a registry into a target's own profile (whose callers may read
/// its secrets): it points at the registry profile instead.
#[test]
fn setup_outputs_put_registries_in_the_registry_profile() {
    use super::scripts::{outputs_document, sample_config, setup};
    use super::settings::{set, valid_document};
    let tmp = TempDir::new("outputs-registry");
    let config = sample_config(
        "public",
        "REGISTRY_B_NAME=acrb\nREGISTRY_B_RESOURCE_GROUP=rg-data-b",
    );
    let run = setup(&tmp, &config, &["--dry-run", "outputs"], None);
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    let document = outputs_document(&run.stdout);
    assert!(
        !document.keys().any(|k| k.ends_with("_registries")),
        "{}",
        run.stdout
    );
    // It says what goes into the registry profile instead: members to merge, as a note.
    let hint = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("#   {"))
        .map(|l| format!("{{{l}"))
        .unwrap_or_else(|| panic!("no registry profile members:\n{}", run.stdout));
    let hint = valid_document(&hint, "setup.sh outputs, the registry note");
    assert_eq!(set(&hint, "profile4_registries"), Some("acrb.azurecr.io"));
    assert_eq!(
        set(&hint, "profile4_tenant_id"),
        Some(super::scripts::TENANT_B)
    );
    assert!(set(&hint, "profile4_repositories")
        .unwrap()
        .starts_with(&format!("{}=", registry_pull_caller())));
}
