//! The `settings` Spin variable: one JSON object that holds every setting except the function
//! keys, each member named as in README's settings table.
//!
//! Why one variable and not one per setting: Spin 3.6.3 resolves **every** declared application
//! variable through its provider chain for every instance that makes an outbound request (it
//! renders `allowed_outbound_hosts` that way), and the environment provider hands each lookup to
//! a blocking thread. Sixty-eight declared variables cost a third of a warm request; four cost
//! a few percent (README, Benchmarks).
//!
//! Members are strings; numbers and `true`/`false` read as their text, a list of strings as its
//! items joined by commas (an item holding a comma is refused: it would become two), `null` as
//! absent. A member tenant-bridge does not know, a member written twice, or a value of another
//! type is refused with the member's name and never its value.

use crate::errors::{truncate, Problem};
use serde::de::{Deserializer, MapAccess, Visitor};
use std::collections::HashMap;

/// The Spin variable that holds the document.
pub(crate) const VARIABLE: &str = "settings";

/// The parsed members, each a setting's text.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Document {
    members: HashMap<String, String>,
}

impl Document {
    /// Parses the variable's text; blank means no member is set. `is_setting` names the
    /// members tenant-bridge reads.
    pub(crate) fn parse(text: &str, is_setting: impl Fn(&str) -> bool) -> Result<Self, Problem> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let members = de
            .deserialize_map(MembersVisitor)
            .and_then(|m| de.end().map(|()| m))
            .map_err(|e| Problem::variable(VARIABLE, json_error(&e)))?;
        let mut out = HashMap::with_capacity(members.len());
        for (name, value) in members {
            let shown = truncate(&name, 64);
            if !is_setting(&name) {
                return Err(Problem::variable(
                    VARIABLE,
                    format!("'{shown}' is not a setting (README lists them; check the spelling)"),
                ));
            }
            let text = member_text(value).map_err(|why| Problem::setting(&name, why))?;
            if out.insert(name, text).is_some() {
                return Err(Problem::variable(
                    VARIABLE,
                    format!("'{shown}' is written twice"),
                ));
            }
        }
        Ok(Self { members: out })
    }

    /// A member's text, as written; `None` when absent.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.members.get(name).map(String::as_str)
    }
}

/// Says what is wrong and where without quoting the text (serde_json's messages can quote it).
fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = format!("line {}, column {}", e.line(), e.column());
    match e.classify() {
        Category::Syntax | Category::Eof => format!("it is not valid JSON ({at})"),
        Category::Data => "it must be a JSON object whose members are settings, e.g. \
                           {\"cloud\": \"public\", \"keyvault_endpoint\": \"https://…\"}"
            .into(),
        Category::Io => "it could not be read".into(),
    }
}

fn member_text(value: serde_json::Value) -> Result<String, String> {
    use serde_json::Value;
    match value {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok(String::new()),
        Value::Array(items) => {
            let mut texts = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Value::String(s) if !s.contains(',') => texts.push(s),
                    Value::String(_) => {
                        return Err(format!(
                            "item {} holds a comma; a list item is one entry",
                            i + 1
                        ))
                    }
                    _ => return Err(format!("item {} is not a string", i + 1)),
                }
            }
            Ok(texts.join(","))
        }
        Value::Object(_) => Err(
            "expected a string, a number, true/false or a list of strings \
                                 (settings are flat: see README)"
                .into(),
        ),
    }
}

/// Every member in order, repeats included (serde_json's own maps keep the last of a repeat).
struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Vec<(String, serde_json::Value)>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry::<String, serde_json::Value>()? {
            members.push(member);
        }
        Ok(members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(name: &str) -> bool {
        [
            "cloud",
            "keyvault_endpoint",
            "max_blob_bytes",
            "auth_disabled",
            "same_tenant_secrets",
        ]
        .contains(&name)
    }

    fn detail(p: Problem) -> String {
        p.detail
    }

    #[test]
    fn members_read_as_text() {
        let d = Document::parse(
            r#"{"cloud": "usgov", "max_blob_bytes": 1048576, "auth_disabled": true,
                "same_tenant_secrets": ["db-*", "api-key"], "keyvault_endpoint": null}"#,
            known,
        )
        .unwrap();
        assert_eq!(d.get("cloud"), Some("usgov"));
        assert_eq!(d.get("max_blob_bytes"), Some("1048576"));
        assert_eq!(d.get("auth_disabled"), Some("true"));
        assert_eq!(d.get("same_tenant_secrets"), Some("db-*,api-key"));
        assert_eq!(d.get("keyvault_endpoint"), Some(""));
        assert_eq!(d.get("retry_base_ms"), None);
        assert_eq!(Document::parse("  ", known).unwrap(), Document::default());
    }

    #[test]
    fn refusals_name_the_member_never_the_value() {
        for (text, says, names) in [
            (
                r#"{"cloud": "public""#,
                "not valid JSON (line 1",
                "settings",
            ),
            (r#"{"cloud": "secret-ish"} x"#, "not valid JSON", "settings"),
            (
                r#"["cloud", "secret-ish"]"#,
                "must be a JSON object",
                "settings",
            ),
            (r#""secret-ish""#, "must be a JSON object", "settings"),
            (
                r#"{"clud": "secret-ish"}"#,
                "'clud' is not a setting",
                "settings",
            ),
            (
                r#"{"cloud": "secret-ish", "cloud": "public"}"#,
                "'cloud' is written twice",
                "settings",
            ),
            (
                r#"{"cloud": {"a": "secret-ish"}}"#,
                "expected a string",
                "cloud",
            ),
            (
                r#"{"same_tenant_secrets": ["a", "secret-ish,b"]}"#,
                "item 2 holds a comma",
                "same_tenant_secrets",
            ),
            (
                r#"{"same_tenant_secrets": ["a", 1]}"#,
                "item 2 is not a string",
                "same_tenant_secrets",
            ),
        ] {
            let d = detail(Document::parse(text, known).unwrap_err());
            assert!(d.contains(says), "{text}: {d}");
            assert!(d.contains(&format!("'{names}'")), "{text}: {d}");
            assert!(!d.contains("secret-ish"), "{text}: {d}");
        }
    }
}
