//! `routes::plan`: route, method, function key and query validation of a caller's request.
//!
//! Input: `METHOD\nPATH\nQUERY\nKEY-HEADER\nKEY-HEADER…` (every `x-functions-key` value on its own
//! line). Properties: never panics; every refusal is a well-formed, bounded problem; an accepted
//! request used the only valid GET route and a configured key; accepted secret names are
//! `^[0-9A-Za-z-]{1,127}$`; accepted blob names have no empty/`.`/`..` segment (also after
//! percent-decoding), no control character or backslash, at most 1024 characters; their Storage
//! path stays under base path + container, survives URL parsing unchanged and decodes back to the
//! name; the endpoint's access rules hold.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use tenant_bridge::auth::Caller;
use tenant_bridge::blob;
use tenant_bridge::config::{self, Tenant};
use tenant_bridge::routes::{self, Action, Endpoint, Incoming};

const VARS: &[(&str, &str)] = &[
    ("function_keys", "ops:k1, k2;ci:s3cr3t-Key"),
    ("keyvault_endpoint", "https://v.vault.azure.net"),
    ("cross_keyvault_endpoint", "https://theirs.vault.azure.net"),
    (
        "blob_service_endpoint",
        "https://acct.blob.core.windows.net",
    ),
    ("cross_blob_service_endpoint", "https://127.0.0.1:10000"),
    ("cross_blob_service_path", "/devstoreaccount1"),
    // Same tenant restricted, cross tenant open: both code paths run.
    ("same_tenant_secrets", "TEST-SECRET-001, app-*"),
    (
        "same_tenant_blobs",
        "public reports/2026/* exports/daily.csv",
    ),
];

/// The configured keys and the caller names `auth::parse_keys` must give them.
const KEYS: &[(&str, &str)] = &[("k1", "ops"), ("k2", "key2"), ("s3cr3t-Key", "ci")];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or("");
    let path = lines.next().unwrap_or("");
    let query = lines.next().unwrap_or("");
    let key_headers: Vec<String> = lines.map(str::to_string).collect();
    let vars: HashMap<&str, &str> = VARS.iter().copied().collect();
    let req = Incoming {
        method,
        path,
        query,
        key_headers: key_headers.clone(),
    };

    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let values = |name: &str| -> Vec<&str> {
        params
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    // The key the caller presented: the header wins; several headers or codes are ambiguous.
    let presented: Option<&str> = match key_headers.as_slice() {
        [one] => Some(one.as_str()),
        [] => match values("code").as_slice() {
            [one] => Some(*one),
            _ => None,
        },
        _ => None,
    };
    let key_name = presented.and_then(|p| KEYS.iter().find(|(k, _)| *k == p).map(|(_, n)| *n));

    let planned = match routes::plan(&req, &vars) {
        Ok(planned) => planned,
        Err(refusal) => {
            common::check_problem(&refusal.problem, "refusal");
            if refusal.problem.status == 401 {
                assert!(key_name.is_none(), "a valid key {presented:?} was refused");
            }
            return;
        }
    };

    assert_eq!(method, "GET", "only GET is served");
    assert!(path.len() + query.len() <= routes::MAX_URL_BYTES);
    assert_eq!(Endpoint::from_path(path), Some(planned.endpoint));
    match &planned.action {
        Action::Health => {
            assert_eq!(planned.endpoint, Endpoint::Health);
            assert_eq!(planned.caller, Caller::Anonymous);
            return;
        }
        _ => {
            let name =
                key_name.unwrap_or_else(|| panic!("accepted without a valid key: {presented:?}"));
            assert_eq!(planned.caller, Caller::Key(name.to_string()));
        }
    }

    match &planned.action {
        Action::Health => unreachable!(),
        Action::Secret {
            tenant,
            name,
            version,
        } => {
            assert_eq!(planned.endpoint, Endpoint::GetSecret(*tenant));
            assert_eq!(
                values("key"),
                [name.as_str()],
                "the validated name is the one sent"
            );
            assert!(
                (1..=127).contains(&name.len())
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
                "secret name {name:?}"
            );
            if let Some(v) = version {
                assert!(
                    v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()),
                    "version {v:?}"
                );
            }
            if *tenant == Tenant::Same {
                let lower = name.to_ascii_lowercase();
                assert!(
                    lower == "test-secret-001" || lower.starts_with("app-"),
                    "secret {name:?} is outside same_tenant_secrets"
                );
            }
        }
        Action::Blob {
            tenant,
            container,
            blob: name,
        } => {
            assert_eq!(planned.endpoint, Endpoint::DownloadBlob(*tenant));
            assert_eq!(values("container"), [container.as_str()]);
            assert_eq!(values("blob"), [name.as_str()]);
            check_container(container);
            check_blob_name(name);
            if *tenant == Tenant::Same {
                assert!(
                    container == "public"
                        || (container == "reports" && name.starts_with("2026/"))
                        || (container == "exports" && name == "daily.csv"),
                    "blob {container}/{name:?} is outside same_tenant_blobs"
                );
            }
            let svc = config::blob_service(&vars, *tenant).expect("blob service configured");
            check_blob_path(
                &svc.base_path,
                container,
                name,
                &blob::blob_path(&svc, container, name),
            );
        }
    }
});

fn check_container(c: &str) {
    let b = c.as_bytes();
    let ok = c == "$root"
        || c == "$web"
        || ((3..=63).contains(&b.len())
            && b.iter()
                .all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || *x == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
            && !c.contains("--"));
    assert!(ok, "container {c:?}");
}

fn check_blob_name(name: &str) {
    assert!(!name.is_empty(), "empty blob name");
    assert!(
        name.chars().count() <= 1024,
        "blob name of {} chars",
        name.chars().count()
    );
    assert!(
        !name.chars().any(char::is_control),
        "control char in {name:?}"
    );
    assert!(!name.contains('\\'), "backslash in {name:?}");
    let segments: Vec<&str> = name.split('/').collect();
    assert!(segments.len() <= 254, "{} segments", segments.len());
    for seg in segments {
        assert!(
            !seg.is_empty() && seg != "." && seg != "..",
            "segment {seg:?} of {name:?}"
        );
        // What a server or proxy that percent-decodes once, twice or three times would see.
        let mut decoded = seg.as_bytes().to_vec();
        for _ in 0..3 {
            decoded = percent_decode(&decoded);
            assert!(
                decoded != b"."
                    && decoded != b".."
                    && !decoded.contains(&b'/')
                    && !decoded.contains(&b'\\'),
                "segment {seg:?} of {name:?} decodes to {:?}",
                String::from_utf8_lossy(&decoded)
            );
        }
    }
}

fn check_blob_path(base: &str, container: &str, name: &str, path: &str) {
    let prefix = format!("{base}/{}/", container.replace('$', "%24"));
    assert!(
        path.starts_with(&prefix),
        "{path:?} is not under {prefix:?}"
    );
    assert!(
        !path.contains("/../")
            && !path.contains("/./")
            && !path.contains("//")
            && !path.ends_with("/..")
            && !path.ends_with("/."),
        "dot or empty segment in {path:?}"
    );
    let tail = &path[prefix.len()..];
    assert!(
        tail.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%/".contains(&b)),
        "unencoded byte in {path:?}"
    );
    // Decoding each segment once (what Storage does) gives the name back, byte for byte.
    let decoded: Vec<Vec<u8>> = tail
        .split('/')
        .map(|s| percent_decode(s.as_bytes()))
        .collect();
    assert_eq!(
        decoded.join(&b'/'),
        name.as_bytes(),
        "{path:?} does not decode to the name"
    );
    // And a URL parser leaves the path alone: nothing to normalise into another target.
    let url = url::Url::parse(&format!("https://acct.example{path}")).expect("path parses");
    assert_eq!(url.path(), path, "the URL parser normalised the path");
}

/// One round of RFC 3986 percent-decoding; malformed escapes stay as they are.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}
