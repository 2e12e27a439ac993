//! `{{ name }}` templates over application variables, as Spin 3.6.3 splits and renders them
//! (`spin_expressions::Template`): component variables and `allowed_outbound_hosts` entries.

use std::collections::HashMap;

use anyhow::bail;

/// `{{ name }}` templates, split like `spin_expressions::Template`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    Var(String),
}

pub fn parse_template(s: &str) -> anyhow::Result<Vec<Part>> {
    let mut parts = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(expr_rest) = rest.strip_prefix("{{") {
            let Some((expr, after)) = expr_rest.split_once("}}") else {
                bail!("invalid variable template {s:?}: unmatched '{{{{' in template");
            };
            parts.push(Part::Var(expr.trim().to_string()));
            rest = after;
        } else if let Some(idx) = rest.find("{{") {
            parts.push(Part::Lit(rest[..idx].to_string()));
            rest = &rest[idx..];
        } else {
            parts.push(Part::Lit(rest.to_string()));
            rest = "";
        }
    }
    Ok(parts)
}

pub fn render(parts: &[Part], values: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    for p in parts {
        match p {
            Part::Lit(l) => out.push_str(l),
            Part::Var(v) => match values.get(v) {
                Some(val) => out.push_str(val),
                None => return Err(format!("invalid variable name: {v}")),
            },
        }
    }
    Ok(out)
}
