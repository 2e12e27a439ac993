//! The parts of a Spin manifest (v2) the test host needs, with Spin 3.6.3's variable rules:
//! `[variables]` (default / required), component variables as templates over app variables,
//! `allowed_outbound_hosts` (literal entries checked at load, templated ones at request time).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;

use super::allowed;
use super::template::{parse_template, render, Part};
use super::variables::{AppVariable, Resolver};

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: toml::Value,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
    // Checked as Spin parses it; not used here.
    #[serde(default, rename = "secret")]
    _secret: bool,
    // Checked as Spin parses it; not used here.
    #[serde(rename = "description")]
    _description: Option<String>,
}

#[derive(Default, Deserialize)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
}

#[derive(Deserialize)]
struct RawHttpTrigger {
    route: toml::Value,
    component: toml::Value,
}

#[derive(Deserialize)]
struct RawComponent {
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

fn is_literal(parts: &[Part]) -> bool {
    parts.iter().all(|p| matches!(p, Part::Lit(_)))
}

/// `spin_expressions::Key::validate`.
pub fn validate_key(key: &str) -> Result<(), String> {
    let reason = if key.is_empty() {
        "must not be empty".to_string()
    } else if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        format!("invalid character {c:?}. Variable names may contain only lower-case letters, numbers, and underscores.")
    } else if !key.as_bytes()[0].is_ascii_lowercase() {
        "must start with a lowercase ASCII letter".to_string()
    } else if !key.as_bytes()[key.len() - 1].is_ascii_alphanumeric() {
        "must end with a lowercase ASCII letter or digit".to_string()
    } else if key.contains("__") {
        "must not contain multiple consecutive underscores".to_string()
    } else {
        return Ok(());
    };
    Err(format!("{key:?}: {reason}"))
}

/// How an HTTP trigger route matches a request path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/prefix/...` (or `/...`): the prefix itself and everything below it.
    Wildcard(String),
    Exact(String),
}

impl Route {
    fn parse(route: &str) -> Route {
        match route.strip_suffix("/...") {
            Some(prefix) => Route::Wildcard(prefix.trim_end_matches('/').to_string()),
            None => Route::Exact(route.trim_end_matches('/').to_string()),
        }
    }

    pub fn matches(&self, path: &str) -> bool {
        let path = path.trim_end_matches('/');
        match self {
            Route::Wildcard(prefix) => {
                prefix.is_empty()
                    || path == prefix
                    || path
                        .strip_prefix(prefix.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            }
            Route::Exact(r) => path == r,
        }
    }
}

/// The loaded app: one HTTP-triggered component, variables resolved.
#[derive(Debug)]
pub struct App {
    pub component_id: String,
    pub route: Route,
    pub key_value_stores: Vec<String>,
    /// What instances resolve again, at Spin's cost: variables and `allowed_outbound_hosts`.
    pub resolver: Resolver,
}

/// Accepts `name`, `NAME` or `SPIN_VARIABLE_NAME` for a provided value.
fn normalise_provided(name: &str) -> String {
    let n = name.strip_prefix("SPIN_VARIABLE_").unwrap_or(name);
    n.to_ascii_lowercase()
}

pub fn load(path: &Path, provided: &HashMap<String, String>) -> anyhow::Result<App> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading manifest {}", path.display()))?;
    load_str(&text, provided).with_context(|| format!("loading manifest {}", path.display()))
}

pub fn load_str(text: &str, provided: &HashMap<String, String>) -> anyhow::Result<App> {
    let raw: RawManifest = toml::from_str(text).context("invalid spin.toml")?;
    if raw.spin_manifest_version.as_integer() != Some(2)
        && raw.spin_manifest_version.as_str() != Some("2")
    {
        bail!("only spin_manifest_version = 2 is supported");
    }

    // [variables]
    let mut app_values: HashMap<String, String> = HashMap::new();
    let mut missing_required = Vec::new();
    for (name, var) in &raw.variables {
        validate_key(name).map_err(|e| anyhow::anyhow!("invalid variable name {e}"))?;
        match (&var.default, var.required) {
            (Some(_), true) => bail!("variable {name:?} cannot have both `default` and `required`"),
            (None, false) => {
                bail!("variable {name:?} must have a `default` or be `required = true`")
            }
            _ => {}
        }
        let value = provided
            .iter()
            .find(|(k, _)| normalise_provided(k) == *name)
            .map(|(_, v)| v.clone())
            .or_else(|| var.default.clone());
        match value {
            Some(v) => {
                app_values.insert(name.clone(), v);
            }
            None => missing_required.push(name.clone()),
        }
    }
    for k in provided.keys() {
        let n = normalise_provided(k);
        if !raw.variables.contains_key(&n) {
            bail!(
                "variable {k:?} was provided but is not declared in [variables] \
                 (declared: {:?})",
                raw.variables.keys().collect::<Vec<_>>()
            );
        }
    }
    if !missing_required.is_empty() {
        bail!(
            "no provider resolved required variable(s) {:?}",
            missing_required
        );
    }

    // [[trigger.http]]
    if raw.trigger.http.len() != 1 {
        bail!(
            "the test host supports exactly one [[trigger.http]], found {}",
            raw.trigger.http.len()
        );
    }
    let trig = &raw.trigger.http[0];
    let route = trig
        .route
        .as_str()
        .context("trigger route must be a string (private routes are not supported)")?;
    let component_id = trig
        .component
        .as_str()
        .context("trigger component must be a component id (inline components are not supported)")?
        .to_string();
    let comp = raw
        .component
        .get(&component_id)
        .with_context(|| format!("trigger refers to unknown component {component_id:?}"))?;

    // [component.<id>.variables]
    let mut component_templates = HashMap::new();
    for (key, tmpl) in &comp.variables {
        validate_key(key).map_err(|e| anyhow::anyhow!("invalid component variable name {e}"))?;
        let parts = parse_template(tmpl)?;
        for p in &parts {
            if let Part::Var(v) = p {
                if !raw.variables.contains_key(v) {
                    bail!("invalid variable template: unknown variable {v:?} in component {component_id:?} variable {key:?}");
                }
            }
        }
        // Spin renders every component variable at load: one that cannot fails the start.
        render(&parts, &app_values).map_err(anyhow::Error::msg)?;
        component_templates.insert(key.clone(), parts);
    }

    // allowed_outbound_hosts: literals must parse at load (Spin refuses to start); templated
    // entries are rendered by each instance (the resolver's `allowed_hosts`), and one that does
    // not resolve to `scheme://host[:port]` denies every request of that instance.
    let mut host_templates = Vec::new();
    for entry in &comp.allowed_outbound_hosts {
        let parts = parse_template(entry).context("`allowed_outbound_hosts` is malformed")?;
        if is_literal(&parts) {
            allowed::parse_list(std::slice::from_ref(entry))
                .map_err(|e| anyhow::anyhow!("`allowed_outbound_hosts` is malformed: {e}"))?;
        }
        host_templates.push(parts);
    }

    let resolver = Resolver {
        variables: raw
            .variables
            .iter()
            .map(|(name, var)| AppVariable {
                name: name.clone(),
                default: var.default.clone(),
            })
            .collect(),
        provided: provided
            .iter()
            .map(|(k, v)| (normalise_provided(k), v.clone()))
            .collect(),
        component: component_templates,
        allowed_hosts: host_templates,
    };
    Ok(App {
        component_id,
        route: Route::parse(route),
        key_value_stores: comp.key_value_stores.clone(),
        resolver,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const MANIFEST: &str = r#"
spin_manifest_version = 2

[application]
name = "probe"
version = "0.1.0"

[variables]
tenant = { default = "t1" }
endpoint = { required = true }
secret_thing = { required = true, secret = true }
empty = { default = "" }

[[trigger.http]]
route = "/api/..."
component = "probe"

[component.probe]
source = "probe.wasm"
allowed_outbound_hosts = ["https://*.vault.azure.net", "{{ endpoint }}"]
key_value_stores = ["default"]

[component.probe.variables]
tenant = "{{tenant}}"
url = "x-{{ endpoint }}-{{  tenant  }}/y"
plain = "literal"
"#;

    #[test]
    fn templates_parse_like_spin() {
        assert_eq!(parse_template("").unwrap(), vec![]);
        assert_eq!(
            parse_template("a-{{ x }}-b{{y}}").unwrap(),
            vec![
                Part::Lit("a-".into()),
                Part::Var("x".into()),
                Part::Lit("-b".into()),
                Part::Var("y".into())
            ]
        );
        assert!(parse_template("{{ ok }} {{ unmatched").is_err());
    }

    #[test]
    fn keys_validate_like_spin() {
        for good in ["a", "abc", "a1b2c3", "a_1", "a_1_b_3"] {
            validate_key(good).unwrap();
        }
        for bad in ["", "aX", "1bc", "_x", "x.y", "x_", "a__b", "x-y"] {
            assert!(validate_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn variables_resolve() {
        let app = load_str(
            MANIFEST,
            &vars(&[
                ("endpoint", "https://acct.blob.core.windows.net"),
                ("SPIN_VARIABLE_SECRET_THING", "s"),
            ]),
        )
        .unwrap();
        assert_eq!(app.component_id, "probe");
        assert_eq!(
            app.resolver.component_variable("tenant").unwrap().unwrap(),
            "t1"
        );
        assert_eq!(
            app.resolver.component_variable("url").unwrap().unwrap(),
            "x-https://acct.blob.core.windows.net-t1/y"
        );
        assert_eq!(
            app.resolver.component_variable("plain").unwrap().unwrap(),
            "literal"
        );
        let list = app.resolver.allowed_hosts().unwrap();
        assert!(allowed::allows(
            &list,
            &"https://acct.blob.core.windows.net/c/b".parse().unwrap()
        ));
        assert!(app.route.matches("/api"));
        assert!(app.route.matches("/api/x/y"));
        assert!(!app.route.matches("/apix"));
        assert!(!app.route.matches("/"));
    }

    #[test]
    fn required_undeclared_and_overrides() {
        let err = load_str(MANIFEST, &vars(&[("endpoint", "https://x")])).unwrap_err();
        assert!(format!("{err:#}").contains("secret_thing"), "{err:#}");
        let err = load_str(
            MANIFEST,
            &vars(&[
                ("endpoint", "https://x"),
                ("secret_thing", "s"),
                ("typo", "1"),
            ]),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("typo"), "{err:#}");
        let app = load_str(
            MANIFEST,
            &vars(&[
                ("endpoint", "https://x"),
                ("secret_thing", "s"),
                ("tenant", "t9"),
            ]),
        )
        .unwrap();
        assert_eq!(
            app.resolver.component_variable("tenant").unwrap().unwrap(),
            "t9"
        );
    }

    #[test]
    fn templated_host_with_path_or_empty_denies_everything() {
        for bad in ["https://127.0.0.1:10000/devstoreaccount1", ""] {
            let app =
                load_str(MANIFEST, &vars(&[("endpoint", bad), ("secret_thing", "s")])).unwrap();
            assert!(app.resolver.allowed_hosts().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn literal_host_with_path_refuses_to_load() {
        let m = MANIFEST.replace(
            "\"https://*.vault.azure.net\"",
            "\"https://127.0.0.1:10000/devstoreaccount1\"",
        );
        let err = load_str(
            &m,
            &vars(&[("endpoint", "https://x"), ("secret_thing", "s")]),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("malformed"), "{err:#}");
    }

    #[test]
    fn unknown_template_variable_refuses_to_load() {
        let m = MANIFEST.replace("plain = \"literal\"", "plain = \"{{ nope }}\"");
        let err = load_str(
            &m,
            &vars(&[("endpoint", "https://x"), ("secret_thing", "s")]),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("nope"), "{err:#}");
    }
}
