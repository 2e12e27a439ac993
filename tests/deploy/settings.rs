//! The `settings` Spin variable as deploy/ fills it: deploy/settings.json (the ConfigMap's
//! document), the profiles of deploy/profiles/ that are merged into it, and what `setup.sh
//! outputs` prints, each read by the component's rules (the member names it knows, the value
//! types it accepts), its endpoints origins that spin.toml's `allowed_outbound_hosts` admits.

use super::*;

// ---- the component's rules, replicated -----------------------------------------------------

fn settings_rs() -> String {
    read(&repo().join("src/config/settings.rs"))
}

/// The string literals of `const NAME: [&str; N] = [ … ];` in src/config/settings.rs.
fn string_array(source: &str, name: &str) -> Vec<String> {
    let at = source
        .find(&format!("const {name}: [&str; "))
        .unwrap_or_else(|| panic!("src/config/settings.rs has no const {name}"));
    let rest = &source[at..];
    let declared: usize = rest["const ".len() + name.len() + ": [&str; ".len()..]
        .split(']')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{name}'s length"));
    let body = &rest[rest.find("= [").unwrap() + 3..rest.find("];").unwrap()];
    let names: Vec<String> = body
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert_eq!(names.len(), declared, "{name}: every entry read");
    names
}

/// The setting of `field` in a target-tenant slot: `None` the default profile, `Some(n)` slot
/// `profileN_*`. A replica of `Slot::var` (src/config/settings.rs), which
/// `the_slot_rule_is_the_components` holds to the source.
pub(crate) fn slot_var(slot: Option<u8>, field: &str) -> String {
    match slot {
        Some(n) => format!("profile{n}_{field}"),
        None => match field {
            "name" | "callers" | "secrets" | "blobs" | "registries" | "repositories" => {
                format!("cross_tenant_{field}")
            }
            "tenant_id" => "cross_tenant_id".into(),
            other => format!("cross_{other}"),
        },
    }
}

/// Every member the `settings` document may have: `is_setting` of src/config/settings.rs, that
/// is `GLOBAL_SETTINGS` and each field of `PROFILE_FIELDS` in the default profile and in slots
/// 1..=`PROFILE_SLOTS`, read from the source so that a new setting is known here at once.
pub(crate) fn setting_names() -> &'static BTreeSet<String> {
    static NAMES: OnceLock<BTreeSet<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let source = settings_rs();
        let slots: u8 = source
            .split("const PROFILE_SLOTS: u8 = ")
            .nth(1)
            .and_then(|r| r.split(';').next())
            .and_then(|n| n.trim().parse().ok())
            .expect("src/config/settings.rs: const PROFILE_SLOTS: u8 = N;");
        let mut names: BTreeSet<String> = string_array(&source, "GLOBAL_SETTINGS")
            .into_iter()
            .collect();
        for field in string_array(&source, "PROFILE_FIELDS") {
            names.insert(slot_var(None, &field));
            for n in 1..=slots {
                names.insert(slot_var(Some(n), &field));
            }
        }
        names
    })
}

/// A settings document read as src/config/document.rs reads it: blank is no member; otherwise
/// one JSON object whose members are settings, each written once, a string (as itself), a
/// number or true/false (as its text), a list of strings (joined by commas; an item holding a
/// comma is refused) or null (unset: `None`).
pub(crate) fn document(text: &str) -> Result<BTreeMap<String, Option<String>>, String> {
    use serde::de::{Deserializer as _, MapAccess, Visitor};
    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = Vec<(String, Value)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(member) = map.next_entry::<String, Value>()? {
                out.push(member);
            }
            Ok(out)
        }
    }
    let mut out = BTreeMap::new();
    if text.trim().is_empty() {
        return Ok(out);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let members = de
        .deserialize_map(Members)
        .and_then(|m| de.end().map(|()| m))
        .map_err(|e| format!("not a JSON object of settings: {e}"))?;
    for (name, value) in members {
        if !setting_names().contains(&name) {
            return Err(format!("'{name}' is not a setting"));
        }
        let text = match value {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null => None,
            Value::Array(items) => {
                let mut texts = Vec::new();
                for (i, item) in items.into_iter().enumerate() {
                    match item {
                        Value::String(s) if !s.contains(',') => texts.push(s),
                        _ => return Err(format!("{name}: item {} is not one entry", i + 1)),
                    }
                }
                Some(texts.join(","))
            }
            Value::Object(_) => return Err(format!("{name}: settings are flat")),
        };
        if out.insert(name.clone(), text).is_some() {
            return Err(format!("'{name}' is written twice"));
        }
    }
    Ok(out)
}

/// A document that must be valid: its members, by name.
pub(crate) fn valid_document(text: &str, origin: &str) -> BTreeMap<String, Option<String>> {
    document(text).unwrap_or_else(|e| panic!("{origin}: {e}\n{text}"))
}

/// The settings a member sets: `None` when absent, null, blank or the old placeholder
/// `https://unset.invalid` (all "unset" to the component: src/config/settings.rs, `UNSET`).
pub(crate) fn set<'a>(doc: &'a BTreeMap<String, Option<String>>, name: &str) -> Option<&'a str> {
    doc.get(name)
        .and_then(|v| v.as_deref())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.trim_end_matches('/') != "https://unset.invalid")
}

pub(crate) fn settings_file() -> PathBuf {
    deploy().join("settings.json")
}

/// deploy/settings.json, read by the component's rules.
pub(crate) fn deployed() -> BTreeMap<String, Option<String>> {
    valid_document(&read(&settings_file()), "deploy/settings.json")
}

/// The profiles of deploy/profiles/, each merged into settings.json by `jq -s add`.
fn profile_fragments() -> Vec<(PathBuf, BTreeMap<String, Option<String>>)> {
    let mut files = Vec::new();
    files_under(&deploy().join("profiles"), &mut files);
    files
        .into_iter()
        .map(|f| {
            let doc = valid_document(&read(&f), &f.display().to_string());
            (f, doc)
        })
        .collect()
}

pub(crate) fn fragment(name: &str) -> BTreeMap<String, Option<String>> {
    let path = deploy().join("profiles").join(name);
    valid_document(&read(&path), &path.display().to_string())
}

/// A setting the component reads when the document leaves it unset: the literal default of
/// `self.number("NAME", DEFAULT, …)` or `.get("NAME") … .unwrap_or_else(|| "DEFAULT".into())`
/// in src/config/settings.rs.
pub(crate) fn effective(name: &str) -> String {
    if let Some(v) = set(&deployed(), name) {
        return v.to_string();
    }
    let source = settings_rs();
    if let Some(rest) = source.split(&format!("self.number(\"{name}\", ")).nth(1) {
        return rest.split(',').next().unwrap().trim().replace('_', "");
    }
    let rest = source
        .split(&format!(".get(\"{name}\")"))
        .nth(1)
        .unwrap_or_else(|| panic!("src/config/settings.rs does not read {name}"));
    let default = rest
        .split("unwrap_or_else(|| \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no literal default for {name}"));
    default.to_string()
}

// ---- spin.toml's egress --------------------------------------------------------------------

/// An `allowed_outbound_hosts` entry or an endpoint: (scheme, host, port).
fn parts(url: &str) -> (String, String, Option<String>) {
    let (scheme, rest) = url
        .split_once("://")
        .unwrap_or_else(|| panic!("{url}: scheme://host"));
    let rest = rest.trim_end_matches('/');
    assert!(!rest.contains('/'), "{url}: an origin has no path");
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => (h, Some(p.to_string())),
        _ => (rest, None),
    };
    (scheme.to_string(), host.to_ascii_lowercase(), port)
}

/// Whether spin.toml's `allowed_outbound_hosts` lets the component reach `url` (an origin): an
/// entry of its scheme whose host is the same or a `*.suffix` wildcard the host ends in, and
/// the same port (none: the scheme's default).
pub(crate) fn spin_admits(url: &str) -> bool {
    let (scheme, host, port) = parts(url);
    let default_port = match scheme.as_str() {
        "https" => "443",
        "http" => "80",
        _ => return false,
    };
    let port = port.unwrap_or_else(|| default_port.into());
    let component = spin_toml()["component"]["tenant-bridge"]
        .as_table()
        .unwrap();
    component["allowed_outbound_hosts"]
        .as_array()
        .expect("allowed_outbound_hosts")
        .iter()
        .map(|h| h.as_str().unwrap())
        .any(|entry| {
            assert!(
                !entry.contains("{{"),
                "{entry}: allowed_outbound_hosts templates a variable (every declared variable costs every instance)"
            );
            let (s, h, p) = parts(entry);
            let host_ok = match h.strip_prefix("*.") {
                Some(suffix) => {
                    host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}"))
                }
                None => h == host,
            };
            s == scheme && host_ok && p.unwrap_or_else(|| default_port.into()) == port
        })
}

/// `value` is an origin: `scheme://host[:port]`, a trailing `/` at most, no path.
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

/// Every endpoint, login server and trusted host a document sets is an origin (`scheme://host`,
/// no path) that spin.toml lets the component reach: a host outside it answers
/// `outbound-denied`.
pub(crate) fn assert_reachable(doc: &BTreeMap<String, Option<String>>, origin: &str) {
    for name in doc.keys() {
        let Some(value) = set(doc, name) else {
            continue;
        };
        let urls: Vec<String> = if name.ends_with("_endpoint") || name == "authority_host" {
            vec![value.to_string()]
        } else if name.ends_with("_registries") || name == "trusted_token_hosts" {
            value
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                // A wildcard stands for any host under it (spin.toml needs `https://*.suffix`).
                .map(|h| match h.strip_prefix("*.") {
                    Some(suffix) => format!("https://x.{suffix}"),
                    None => format!("https://{h}"),
                })
                .collect()
        } else {
            continue;
        };
        for url in urls {
            assert_origin(name, &url);
            assert!(
                spin_admits(&url),
                "{origin}: {name}={url} is outside spin.toml's allowed_outbound_hosts (Spin would answer outbound-denied)"
            );
        }
    }
}

// ---- tests ---------------------------------------------------------------------------------

#[test]
fn the_slot_rule_is_the_components() {
    // The replica above, against the source it copies: a change there fails here.
    let source = settings_rs();
    for line in [
        "Slot::Numbered(n) => format!(\"profile{n}_{field}\"),",
        "\"name\" | \"callers\" | \"secrets\" | \"blobs\" | \"registries\" | \"repositories\" => {",
        "format!(\"cross_tenant_{field}\")",
        "\"tenant_id\" => \"cross_tenant_id\".into(),",
        "other => format!(\"cross_{other}\"),",
    ] {
        assert!(
            source.contains(line),
            "Slot::var changed (src/config/settings.rs): update slot_var here; missing {line}"
        );
    }
    // … and `is_setting`, which setting_names replicates: the globals, and every field in the
    // default profile and slots 1..=PROFILE_SLOTS.
    let at = source.find("fn is_setting(").expect("fn is_setting");
    let body = &source[at..at + source[at..].find("\n}\n").unwrap()];
    for part in [
        "GLOBAL_SETTINGS.contains(&name)",
        "std::iter::once(Slot::Default)",
        "(1..=PROFILE_SLOTS).map(Slot::Numbered)",
        "PROFILE_FIELDS.iter().any(|f| slot.var(f) == name)",
    ] {
        assert!(
            body.contains(part),
            "is_setting changed (src/config/settings.rs): update setting_names here; missing {part}"
        );
    }
    let names = setting_names();
    for name in [
        "cloud",
        "azure_client_id",
        "cross_tenant_id",
        "cross_keyvault_endpoint",
        "cross_tenant_secrets",
        "cross_blob_service_path",
        "profile1_name",
        "profile4_repositories",
    ] {
        assert!(names.contains(name), "{name}");
    }
    for name in [
        "function_keys",
        "settings",
        "cross_name",
        "profile5_name",
        "profile1_tenant_name",
    ] {
        assert!(!names.contains(name), "{name} is not a setting");
    }
    // The set-up's scripts name the slots' settings the same way (deploy/azure/lib.sh slot_var).
    let fields = string_array(&source, "PROFILE_FIELDS");
    let mut script = format!("source {}\n", deploy().join("azure/lib.sh").display());
    for slot in ["default", "1", "4"] {
        for f in &fields {
            script.push_str(&format!("slot_var {slot} {f}; echo\n"));
        }
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let expected: Vec<String> = [None, Some(1), Some(4)]
        .into_iter()
        .flat_map(|slot| fields.iter().map(move |f| slot_var(slot, f)))
        .collect();
    assert_eq!(printed, expected);
}

#[test]
fn the_document_rule_refuses_what_the_component_refuses() {
    // The reader the other tests rely on can fail, the way the component does.
    for (text, says) in [
        (r#"{"clud": "public"}"#, "'clud' is not a setting"),
        (
            r#"{"function_keys": "ops:0123456789abcdef"}"#,
            "'function_keys' is not a setting",
        ),
        (r#"{"cloud": "public", "cloud": "usgov"}"#, "written twice"),
        (r#"{"cloud": {"name": "public"}}"#, "flat"),
        (r#"{"same_tenant_secrets": ["a,b"]}"#, "item 1"),
        (r#"{"same_tenant_secrets": [1]}"#, "item 1"),
        (r#"["cloud"]"#, "not a JSON object"),
        ("cloud=public\n", "not a JSON object"),
        (r#"{"cloud": "public"} {}"#, "not a JSON object"),
    ] {
        let e = document(text).expect_err(text);
        assert!(e.contains(says), "{text}: {e}");
    }
    let doc = valid_document(
        r#"{"cloud": "usgov", "max_blob_bytes": 1048576, "auth_disabled": false,
            "same_tenant_secrets": ["db-*", "api-key"], "keyvault_endpoint": null,
            "blob_service_endpoint": "https://unset.invalid"}"#,
        "sample",
    );
    assert_eq!(set(&doc, "cloud"), Some("usgov"));
    assert_eq!(set(&doc, "max_blob_bytes"), Some("1048576"));
    assert_eq!(set(&doc, "same_tenant_secrets"), Some("db-*,api-key"));
    assert_eq!(set(&doc, "keyvault_endpoint"), None);
    assert_eq!(set(&doc, "blob_service_endpoint"), None);
    assert!(document(" \n").unwrap().is_empty());
}

#[test]
fn the_settings_document_configures_a_cross_tenant_deployment() {
    let doc = deployed();
    // What a cross-tenant deployment cannot work without (placeholders to fill, but present).
    for name in [
        "azure_client_id",
        "app_client_id",
        "cross_tenant_id",
        "cloud",
    ] {
        assert!(set(&doc, name).is_some(), "settings.json needs {name}");
    }
    assert!(
        ["cross_keyvault_endpoint", "cross_blob_service_endpoint"]
            .iter()
            .any(|n| set(&doc, n).is_some()),
        "settings.json needs a cross-tenant endpoint"
    );
    assert!(
        ["public", "usgov", "china"].contains(&set(&doc, "cloud").unwrap()),
        "cloud"
    );
    // Never an unauthenticated deployment.
    for name in ["auth_disabled", "auth_disabled_ready"] {
        assert!(
            matches!(set(&doc, name), None | Some("false")),
            "{name} on a cluster"
        );
    }
    // The default profile names its callers: an empty list would admit every key.
    assert!(set(&doc, "cross_tenant_callers").is_some());
    assert_reachable(&doc, "deploy/settings.json");
}

#[test]
fn the_profiles_to_merge_are_settings_and_add_profiles_only() {
    let base = deployed();
    let fragments = profile_fragments();
    assert!(fragments.len() >= 2, "deploy/profiles/: {fragments:?}");
    let mut merged = base.clone();
    let mut names = BTreeSet::from([set(&base, "cross_tenant_name")
        .unwrap_or("default")
        .to_string()]);
    for (file, doc) in &fragments {
        assert_reachable(doc, &file.display().to_string());
        // A profile of its own: one numbered slot, named, with its tenant, and nothing of
        // settings.json overwritten by the merge.
        let slots: BTreeSet<&str> = doc
            .keys()
            .map(|k| {
                k.strip_prefix("profile")
                    .and_then(|r| r.split_once('_'))
                    .unwrap_or_else(|| panic!("{}: {k} is not a slot's", file.display()))
                    .0
            })
            .collect();
        assert_eq!(slots.len(), 1, "{}: one slot", file.display());
        let n: u8 = slots.first().unwrap().parse().unwrap();
        let name = set(doc, &slot_var(Some(n), "name")).expect("a profile name");
        assert!(names.insert(name.to_string()), "profile name {name} twice");
        assert!(set(doc, &slot_var(Some(n), "tenant_id")).is_some());
        for k in doc.keys() {
            assert!(
                !base.contains_key(k),
                "{}: {k} is in settings.json already",
                file.display()
            );
            assert!(
                merged.insert(k.clone(), doc[k].clone()).is_none(),
                "{k} in two profiles"
            );
        }
    }
    // Merged as the docs say (`jq -s add`), the document is still one the component reads.
    let text = serde_json::to_string(&merged).unwrap();
    valid_document(&text, "settings.json with deploy/profiles/ merged");
}

#[test]
fn the_second_tenant_profile_is_complete() {
    let profile = fragment("second-tenant.json");
    for field in [
        "name",
        "tenant_id",
        "keyvault_endpoint",
        "blob_service_endpoint",
        "callers",
    ] {
        assert!(
            set(&profile, &slot_var(Some(1), field)).is_some(),
            "profile1_{field}"
        );
    }
    // Its endpoints are on the clouds' suffixes, so spin.toml needs no change for it.
    assert_reachable(&profile, "deploy/profiles/second-tenant.json");
}
