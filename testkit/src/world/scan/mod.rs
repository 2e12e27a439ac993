//! The log scanner: finds any known secret — a function key, a secret value, an issued token —
//! in a log, whole or in part, raw or as a reader of the line would decode it.
//!
//! Each line is searched as written, and for a JSON line also as the strings it decodes to
//! (escapes undone: a secret with a newline or a quote is written `\n`, `\"` in the line), and
//! each of those percent-decoded once. A value of at least [`WINDOW`] bytes is found by any
//! [`WINDOW`]-byte slice of it, so a token cut anywhere or a key's middle is found too; shorter
//! values are found whole from [`MIN_WHOLE`] bytes on (below that they are ordinary words).

use std::collections::HashMap;

pub mod reading;

use reading::{json_strings, percent_decode};

/// Bytes of a value that, found together in a log, count as a leak of it.
pub const WINDOW: usize = 12;
/// Shorter values than [`WINDOW`] are searched whole from this length on.
pub const MIN_WHOLE: usize = 7;

#[derive(Default)]
pub struct Scanner {
    /// What each value is, for the failure message (never the value itself).
    names: Vec<String>,
    windows: HashMap<[u8; WINDOW], u32>,
    whole: Vec<(Vec<u8>, u32)>,
}

impl Scanner {
    pub fn new() -> Scanner {
        Scanner::default()
    }

    fn name(&mut self, what: &str) -> u32 {
        self.names.push(what.to_string());
        (self.names.len() - 1) as u32
    }

    /// A secret value: found by any [`WINDOW`]-byte slice, or whole when shorter.
    pub fn add(&mut self, what: &str, value: &str) {
        let bytes = value.as_bytes();
        if bytes.len() >= WINDOW {
            let id = self.name(what);
            for w in bytes.windows(WINDOW) {
                self.windows.entry(w.try_into().unwrap()).or_insert(id);
            }
        } else if bytes.len() >= MIN_WHOLE {
            let id = self.name(what);
            self.whole.push((bytes.to_vec(), id));
        }
    }

    /// A marker searched whole whatever its length (`eyJ`, the start of every JWT).
    pub fn add_marker(&mut self, what: &str, marker: &str) {
        let id = self.name(what);
        self.whole.push((marker.as_bytes().to_vec(), id));
    }

    /// The first leak in `log`, as "what (in line …)"; None when clean.
    pub fn find(&self, log: &str) -> Option<String> {
        for line in log.lines() {
            for text in readings(line) {
                if let Some(id) = self.find_in(text.as_bytes()) {
                    return Some(format!("{} appears in: {line}", self.names[id as usize]));
                }
            }
        }
        None
    }

    fn find_in(&self, text: &[u8]) -> Option<u32> {
        if let Some((_, id)) = self
            .whole
            .iter()
            .find(|(w, _)| text.windows(w.len()).any(|t| t == w.as_slice()))
        {
            return Some(*id);
        }
        text.windows(WINDOW)
            .find_map(|w| self.windows.get(<&[u8; WINDOW]>::try_from(w).unwrap()))
            .copied()
    }

    /// Panics naming the leak, if any.
    pub fn assert_clean(&self, whose: &str, log: &str) {
        if let Some(leak) = self.find(log) {
            panic!("log scanner ({whose}): {leak}");
        }
    }
}

/// The ways a reader sees `line`: as written, its JSON strings decoded, each percent-decoded.
fn readings(line: &str) -> Vec<String> {
    let mut out = vec![line.to_string()];
    let json = line
        .find('{')
        .and_then(|i| serde_json::from_str::<serde_json::Value>(&line[i..]).ok());
    if let Some(v) = json {
        out.push(json_strings(&v));
    }
    let percent: Vec<String> = out
        .iter()
        .map(|t| String::from_utf8_lossy(&percent_decode(t.as_bytes())).into_owned())
        .filter(|d| !out.contains(d))
        .collect();
    out.extend(percent);
    out
}
