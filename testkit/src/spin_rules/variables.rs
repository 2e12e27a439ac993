//! Variables as Spin 3.6.3 resolves them, at the cost Spin pays (spin-facts, "Per-request costs"):
//!
//! - Every resolution of an application variable goes through the provider chain. The
//!   environment provider, always present and the only one `spin up` and SpinKube use here, runs
//!   each lookup inside `tokio::task::block_in_place` and reads `SPIN_VARIABLE_<NAME>` from the
//!   process environment (spin `crates/variables-env/src/lib.rs`, `Provider::get`).
//! - A guest's `variables::get` renders its component variable's template, resolving each
//!   application variable in it (spin `crates/expressions/src/lib.rs`, `resolve`).
//! - The first outbound request of every instance renders `allowed_outbound_hosts`, and to do so
//!   resolves *every* declared application variable, whether a template uses it or not
//!   (spin `crates/factor-outbound-networking/src/lib.rs` `prepare` → `resolver.prepare()`).
//!
//! The test's provided values stand for that environment: a provided value wins, then the real
//! process environment (as Spin would read it), then the manifest's default.

use std::collections::HashMap;

use super::allowed::{self, AllowedList};
use super::template::{self, Part};

/// One declared application variable.
#[derive(Debug, Clone)]
pub struct AppVariable {
    pub name: String,
    pub default: Option<String>,
}

/// The app's variables, the component's templates and its `allowed_outbound_hosts` entries.
#[derive(Debug)]
pub struct Resolver {
    pub variables: Vec<AppVariable>,
    /// What the test provided, by variable name (stands for the process environment).
    pub provided: HashMap<String, String>,
    pub component: HashMap<String, Vec<Part>>,
    /// Each entry as written, already split into parts.
    pub allowed_hosts: Vec<Vec<Part>>,
}

/// Runs `f` as Spin's environment provider does: handed off with `block_in_place` on a
/// multi-threaded runtime (the only kind Spin runs). A current-thread runtime (a unit test)
/// cannot hand off, so `f` runs in place there.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl Resolver {
    /// One application variable through the provider chain, then its default.
    pub fn variable(&self, name: &str) -> Result<String, String> {
        let var = self
            .variables
            .iter()
            .find(|v| v.name == name)
            .ok_or_else(|| format!("no variable for {name:?}"))?;
        let found = blocking(|| {
            // Spin builds the key and reads the environment on every lookup.
            let key = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
            let from_env = std::env::var(&key).ok();
            self.provided.get(name).cloned().or(from_env)
        });
        found
            .or_else(|| var.default.clone())
            .ok_or_else(|| format!("no provider resolved required variable {name:?}"))
    }

    /// Every application variable, as the outbound-networking factor prepares them.
    pub fn prepare(&self) -> Result<HashMap<String, String>, String> {
        let mut values = HashMap::with_capacity(self.variables.len());
        for v in &self.variables {
            values.insert(v.name.clone(), self.variable(&v.name)?);
        }
        Ok(values)
    }

    /// A component variable, rendered from its template; `None` when it is not declared.
    pub fn component_variable(&self, key: &str) -> Option<Result<String, String>> {
        let parts = self.component.get(key)?;
        let mut out = String::new();
        for p in parts {
            match p {
                Part::Lit(l) => out.push_str(l),
                Part::Var(v) => match self.variable(v) {
                    Ok(value) => out.push_str(&value),
                    Err(e) => return Some(Err(e)),
                },
            }
        }
        Some(Ok(out))
    }

    /// `allowed_outbound_hosts` as one instance sees it: every variable prepared, each entry
    /// rendered and parsed (an entry that fails denies every request, as in Spin).
    pub fn allowed_hosts(&self) -> AllowedList {
        let values = self.prepare()?;
        let mut rendered = Vec::with_capacity(self.allowed_hosts.len());
        for parts in &self.allowed_hosts {
            rendered.push(template::render(parts, &values)?);
        }
        allowed::parse_list(&rendered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver() -> Resolver {
        let var = |name: &str, default: Option<&str>| AppVariable {
            name: name.into(),
            default: default.map(str::to_string),
        };
        Resolver {
            variables: vec![
                var("host", Some("a.example")),
                var("port", None),
                var("unused", Some("x")),
            ],
            provided: HashMap::from([("port".to_string(), "8443".to_string())]),
            component: HashMap::from([(
                "url".to_string(),
                vec![
                    Part::Lit("https://".into()),
                    Part::Var("host".into()),
                    Part::Lit(":".into()),
                    Part::Var("port".into()),
                ],
            )]),
            allowed_hosts: vec![vec![
                Part::Lit("https://".into()),
                Part::Var("host".into()),
                Part::Lit(":".into()),
                Part::Var("port".into()),
            ]],
        }
    }

    #[test]
    fn provided_values_win_over_defaults_and_templates_render() {
        let r = resolver();
        assert_eq!(
            r.component_variable("url"),
            Some(Ok("https://a.example:8443".into()))
        );
        assert_eq!(r.component_variable("nope"), None);
        assert_eq!(r.prepare().unwrap().len(), 3);
        assert!(r.allowed_hosts().is_ok());
    }

    #[test]
    fn a_required_variable_without_a_value_fails_its_resolution() {
        let mut r = resolver();
        r.provided.clear();
        assert!(r.component_variable("url").unwrap().is_err());
        assert!(r.allowed_hosts().is_err());
    }
}
