//! The layers of `src/` (README, Layout), checked from the sources: every `crate::` path a file
//! names must be in its own layer or one below, and no modules may name each other in a ring.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom to top, as `lib.rs` declares them.
const LAYERS: [&str; 8] = [
    "wire", "errors", "net", "config", "identity", "services", "request", "edge",
];

/// Outside the layers: the crate root, the fuzz door and this check.
const ROOT_FILES: [&str; 3] = ["lib.rs", "fuzzing.rs", "layering.rs"];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `layer::module` of a file (`errors` for the one-file layer; `mod.rs` is its folder's layer).
fn node_of(relative: &Path) -> String {
    let parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    match parts.as_slice() {
        [one] => one.clone(),
        [layer, module, ..] if module == "mod" => layer.clone(),
        [layer, module, ..] => format!("{layer}::{module}"),
        [] => unreachable!(),
    }
}

/// Every `crate::a::b` a text names, as `a::b` (or `a` when nothing follows).
fn named_paths(text: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    text.match_indices("crate::")
        .map(|(i, m)| {
            let rest = &text[i + m.len()..];
            let first = ident(rest);
            let after = &rest[first.len()..];
            match after.strip_prefix("::").map(ident) {
                Some(second) if !second.is_empty() && first != "errors" => {
                    format!("{first}::{second}")
                }
                _ => first,
            }
        })
        .collect()
}

/// The module graph of `src/` and the upward arrows in it.
fn graph() -> (BTreeMap<String, BTreeSet<String>>, Vec<String>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let rank = |layer: &str| LAYERS.iter().position(|l| *l == layer);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut upward = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        if ROOT_FILES.iter().any(|r| relative == Path::new(r)) {
            continue;
        }
        let node = node_of(relative);
        let layer = node.split("::").next().unwrap();
        let own = rank(layer).unwrap_or_else(|| panic!("{relative:?} is in no layer"));
        for target in named_paths(&std::fs::read_to_string(&file).unwrap()) {
            let target_layer = target.split("::").next().unwrap();
            match rank(target_layer) {
                Some(r) if r > own => {
                    upward.push(format!("{} names crate::{target}", relative.display()))
                }
                Some(_) => {}
                None => upward.push(format!(
                    "{} names crate::{target}, in no layer",
                    relative.display()
                )),
            }
            if target != node && target.contains("::") || target == "errors" && node != "errors" {
                edges.entry(node.clone()).or_default().insert(target);
            }
        }
    }
    (edges, upward)
}

/// A ring in the graph, if there is one.
fn ring(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut ring = path[i..].to_vec();
            ring.push(node.to_string());
            return Some(ring);
        }
        if !done.insert(node.to_string()) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(ring) = visit(next, edges, path, done) {
                return Some(ring);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

#[test]
fn the_layers_point_one_way() {
    let (edges, upward) = graph();
    assert!(edges.len() > 20, "the graph was not read: {edges:?}");
    assert!(upward.is_empty(), "upward arrows: {upward:#?}");
    assert_eq!(ring(&edges), None, "modules that name each other");
}

#[test]
fn the_check_sees_an_upward_arrow_and_a_ring() {
    assert_eq!(
        named_paths("use crate::net::clock::Clock; crate::errors::Problem; crate::wire"),
        ["net::clock", "errors", "wire"]
    );
    assert_eq!(node_of(Path::new("request/app/tests.rs")), "request::app");
    assert_eq!(node_of(Path::new("net/mod.rs")), "net");
    let edges: BTreeMap<String, BTreeSet<String>> = [
        ("config::settings", "request::health"),
        ("request::health", "config::settings"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), BTreeSet::from([b.to_string()])))
    .collect();
    assert_eq!(
        ring(&edges).unwrap(),
        ["config::settings", "request::health", "config::settings"]
    );
}

/// `struct`, `enum` and `trait` names defined in more than one place in `src/` (one concept, one
/// name: two types of one name are two things a reader must tell apart by path).
fn twice_defined_types() -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let kinds = ["struct", "enum", "trait"];
            if let Some(i) = words.iter().position(|w| kinds.contains(w)) {
                let prefix_ok = words[..i]
                    .iter()
                    .all(|w| *w == "pub" || w.starts_with("pub("));
                let name: String = words
                    .get(i + 1)
                    .unwrap_or(&"")
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if prefix_ok && name.starts_with(|c: char| c.is_ascii_uppercase()) {
                    let at = file.strip_prefix(&src).unwrap().display().to_string();
                    seen.entry(name).or_default().push(at);
                }
            }
        }
    }
    seen.into_iter()
        .filter(|(_, at)| at.len() > 1)
        .map(|(name, at)| format!("{name}: {}", at.join(", ")))
        .collect()
}

#[test]
fn no_type_name_is_defined_twice() {
    assert_eq!(twice_defined_types(), Vec::<String>::new());
}
