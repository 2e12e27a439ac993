//! The whole request decision (`fuzzing::decide`: route, method, settings, function key, query
//! parsing, name validation, tenant profile, access rules), with every upstream call refused,
//! and the Storage path of an accepted blob (`fuzzing::blob_path`).
//!
//! Input: `METHOD\nPATH\nQUERY\nKEY-HEADER\nKEY-HEADER…` (every `x-functions-key` value on its
//! own line), run against one fixed configuration (`VARS`: keys, same-tenant rules, tenant profiles
//! `b` (default) and `c`, and profiles `d`, `e`, `f` whose variables are broken on purpose).
//!
//! Properties: never panics. Exact predictions: a path and query over 16 KiB is a 414, an
//! unknown route a 404, another method than GET a 405, a query that is not UTF-8 after
//! percent-decoding a 400, a missing, ambiguous or unknown key a 401, and a configured key is
//! never refused with 401 (it is the logged caller). Every refusal is a well-formed bounded
//! problem (`common::check_problem_answer`), its code the one logged; a refusal for bad input
//! (400/401/403/404/405/413/414) made no upstream attempt. No function key and no marked
//! variable value (`SECRETS`) appears in the body or the log line unless the caller sent it.
//! A request that reached upstream used GET on a real route and a configured key; its secret
//! name is `^[0-9A-Za-z-]{1,127}$` (version 32 hex) and is the one sent to the vault; its blob
//! name has no empty/`.`/`..` segment (also after percent-decoding), no control character or
//! backslash, ≤ 1024 characters, and its Storage path stays under base path + container,
//! survives URL parsing unchanged and decodes back to the name; its tenant is the `tenant=`
//! profile (case-insensitive, default `b`) or the same tenant; and the endpoint's and profile's
//! access rules and callers hold.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tenant_bridge::fuzzing::{self, Served};

const KEY_OPS: &str = "fk-ops-7Q2xW9pL4mN8vB3c";
const KEY_2: &str = "fk-anon-5Tz8Kd1Rw6Yh0Jq";
const KEY_CI: &str = "fk-ci-3Xe9Lm2Pq7Ws4VaU";

/// The configured keys and the caller names `auth::parse_keys` must give them (an entry
/// without `name:` is named after its position).
const KEYS: &[(&str, &str)] = &[(KEY_OPS, "ops"), (KEY_2, "key2"), (KEY_CI, "ci")];

const VARS: &[(&str, &str)] = &[
    (
        "function_keys",
        "ops:fk-ops-7Q2xW9pL4mN8vB3c, fk-anon-5Tz8Kd1Rw6Yh0Jq ,ci:fk-ci-3Xe9Lm2Pq7Ws4VaU",
    ),
    ("azure_client_id", "c1c1c1c1-3333-4333-8333-c1c1c1c1c1c1"),
    ("app_client_id", "a9a9a9a9-5555-4555-8555-a9a9a9a9a9a9"),
    // Azurite-style cross-tenant Storage outside the cloud's suffix.
    ("trusted_token_hosts", "127.0.0.1"),
    // Same tenant: restricted.
    ("keyvault_endpoint", "https://v.vault.azure.net"),
    (
        "same_tenant_secrets",
        "TEST-SECRET-001, app-*, private-Zq85-*",
    ),
    (
        "blob_service_endpoint",
        "https://acct.blob.core.windows.net",
    ),
    (
        "same_tenant_blobs",
        "public, reports/2026/*, exports/daily.csv",
    ),
    // Default profile `b`: open, every caller.
    ("cross_tenant_id", "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb"),
    ("cross_tenant_name", "b"),
    ("cross_keyvault_endpoint", "https://b.vault.azure.net"),
    ("cross_blob_service_endpoint", "https://127.0.0.1:10000"),
    ("cross_blob_service_path", "/devstoreaccount1"),
    ("cross_tenant_registries", "hub.azurecr.io"),
    ("cross_tenant_repositories", "base/*, ops=infra/tools"),
    // Profile `c`: caller `ops` only, restricted, no registry.
    ("profile1_name", "c"),
    ("profile1_tenant_id", "cccccccc-3333-4333-8333-cccccccccccc"),
    ("profile1_callers", "ops"),
    ("profile1_keyvault_endpoint", "https://c.vault.azure.net"),
    ("profile1_secrets", "TEST-SECRET-001"),
    (
        "profile1_blob_service_endpoint",
        "https://c.blob.core.windows.net",
    ),
    ("profile1_blobs", "public"),
    // Profiles `d`, `e`, `f`: broken variables whose values must never be echoed.
    ("profile2_name", "d"),
    ("profile2_tenant_id", "MARKER-tenant-Zq81"),
    ("profile3_name", "e"),
    ("profile3_tenant_id", "eeeeeeee-5555-4555-8555-eeeeeeeeeeee"),
    (
        "profile3_keyvault_endpoint",
        "https://MARKER-pw-Zq82@e.vault.azure.net",
    ),
    (
        "profile3_blob_service_endpoint",
        "https://e.blob.core.windows.net/MARKER-path-Zq83",
    ),
    ("profile4_name", "f"),
    ("profile4_tenant_id", "ffffffff-6666-4666-8666-ffffffffffff"),
    ("profile4_keyvault_endpoint", "https://f.vault.azure.net"),
    ("profile4_secrets", "MARK*ER-rule-Zq84"),
    (
        "profile4_blob_service_endpoint",
        "https://f.blob.core.windows.net",
    ),
    ("profile4_blobs", "pub*lic/Zq86"),
];

/// Configured values no answer or log line may show: the keys (and their tails, in case one is
/// cut), the marked variable values and the private rule.
const SECRETS: &[&str] = &[
    KEY_OPS,
    KEY_2,
    KEY_CI,
    "7Q2xW9pL4mN8vB3c",
    "5Tz8Kd1Rw6Yh0Jq",
    "3Xe9Lm2Pq7Ws4VaU",
    "Zq81",
    "Zq82",
    "Zq83",
    "Zq84",
    "Zq85",
    "Zq86",
];

/// Statuses of refusals decided from the request alone.
const BAD_INPUT: &[u16] = &[400, 401, 403, 404, 405, 413, 414];

const MAX_URL_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ep {
    Secret { same: bool },
    Blob { same: bool },
    Registry,
    Health,
    Live,
}

/// The routes, Functions-style: `/api/` and the name case-insensitive, one trailing `/`.
fn endpoint(path: &str) -> Option<Ep> {
    let p = path.strip_suffix('/').unwrap_or(path);
    let prefix = p.get(..5)?;
    if !prefix.eq_ignore_ascii_case("/api/") {
        return None;
    }
    Some(match p[5..].to_ascii_lowercase().as_str() {
        "getsecretsametenant" => Ep::Secret { same: true },
        "getsecretcrosstenant" => Ep::Secret { same: false },
        "downloadblobsametenant" => Ep::Blob { same: true },
        "downloadblobcrosstenant" => Ep::Blob { same: false },
        "acr/token" => Ep::Registry,
        "healthz" => Ep::Health,
        "livez" => Ep::Live,
        _ => return None,
    })
}

/// One form component: `+` is a space, `%XX` a byte (malformed escapes stay), strict UTF-8.
fn decode(raw: &str) -> Result<String, Vec<u8>> {
    let b = raw.as_bytes();
    let hex = |x: u8| (x as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            x => out.push(x),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|e| e.into_bytes())
}

/// The query's pairs in order; `Err` (with the lossy pairs) when one part is not UTF-8.
fn parse_query(query: &str) -> Result<Vec<(String, String)>, Vec<(String, String)>> {
    let mut ok = true;
    let pairs = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (n, v) = part.split_once('=').unwrap_or((part, ""));
            let mut one = |s: &str| {
                decode(s).unwrap_or_else(|bytes| {
                    ok = false;
                    String::from_utf8_lossy(&bytes).into_owned()
                })
            };
            (one(n), one(v))
        })
        .collect();
    if ok {
        Ok(pairs)
    } else {
        Err(pairs)
    }
}

/// The one value of a parameter an accepted request must have had.
fn single<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    match values(pairs, name).as_slice() {
        [v] => v,
        other => panic!("accepted with {name} = {other:?}"),
    }
}

fn values<'a>(pairs: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or("");
    let path = lines.next().unwrap_or("");
    let query = lines.next().unwrap_or("");
    let key_headers: Vec<String> = lines.map(str::to_string).collect();

    let d = fuzzing::decide(method, path, query, &key_headers, VARS);

    let (query_ok, pairs) = match parse_query(query) {
        Ok(p) => (true, p),
        Err(p) => (false, p),
    };
    // The key the caller presented: one header wins; several headers or codes are ambiguous.
    let presented: Option<&str> = match key_headers.as_slice() {
        [one] => Some(one.as_str()),
        [] => match values(&pairs, "code").as_slice() {
            [one] => Some(*one),
            _ => None,
        },
        _ => None,
    };
    let caller = presented.and_then(|p| KEYS.iter().find(|(k, _)| *k == p).map(|(_, n)| *n));

    check_well_formed(&d);
    check_no_secrets(&d, method, path, &pairs);

    let reached_upstream = !d.upstream.is_empty();
    if BAD_INPUT.contains(&d.status) {
        assert!(
            !reached_upstream,
            "a {} ({:?}) after upstream attempts {:?}",
            d.status, d.code, d.upstream
        );
    }
    if let Some(name) = &d.caller {
        assert_eq!(
            Some(name.as_str()),
            caller,
            "logged caller vs presented key"
        );
    }

    // Route, method and length come first, in that order.
    if path.len() + query.len() > MAX_URL_BYTES {
        assert_eq!((d.status, d.code.as_deref()), (414, Some("uri-too-long")));
        return;
    }
    let Some(ep) = endpoint(path) else {
        assert_eq!(
            (d.status, d.code.as_deref()),
            (404, Some("route-not-found"))
        );
        return;
    };
    if method != "GET" {
        assert_eq!(
            (d.status, d.code.as_deref()),
            (405, Some("method-not-allowed"))
        );
        return;
    }
    if ep == Ep::Live {
        assert_eq!(
            (d.status, d.body.as_slice()),
            (200, &br#"{"status":"alive"}"#[..])
        );
        return;
    }
    if !query_ok {
        assert_eq!(
            (d.status, d.code.as_deref()),
            (400, Some("invalid-encoding"))
        );
        return;
    }
    if ep == Ep::Health {
        // The readiness report: no key needed, no upstream call; a valid key (logged as the
        // caller) gets the whole report, anyone else ready or not and a code.
        assert!(matches!(d.status, 200 | 503), "health status {}", d.status);
        assert!(!reached_upstream && d.caller.as_deref() == caller);
        let v: serde_json::Value = serde_json::from_slice(&d.body).expect("health is JSON");
        // Ready: `"status":"ok"`; unready: an RFC 9457 problem whose `status` is the HTTP status.
        if d.status == 200 {
            assert_eq!(v["status"], "ok");
        } else {
            assert_eq!(v["status"], 503);
            assert!(
                v["code"].is_string(),
                "unready health names its first problem"
            );
        }
        return;
    }
    // Then the caller's key, exactly.
    let Some(caller) = caller else {
        assert_eq!(
            (d.status, d.code.as_deref()),
            (401, Some("unauthorized")),
            "no valid key presented ({presented:?})"
        );
        return;
    };
    assert_ne!(d.status, 401, "the configured key of {caller} was refused");
    assert_eq!(d.caller.as_deref(), Some(caller), "caller not logged");

    if !reached_upstream {
        return;
    }
    // Everything below held for a request that got as far as calling a service.
    assert!(
        d.status >= 500,
        "status {} after upstream attempts (all refused)",
        d.status
    );
    let one = |name: &str| single(&pairs, name);
    let tenant_values = values(&pairs, "tenant");
    let profile = |same: bool| -> &'static str {
        if same {
            assert!(tenant_values.is_empty(), "same tenant with tenant=");
            return "same-tenant";
        }
        assert!(tenant_values.len() <= 1, "tenant= twice");
        let name = tenant_values
            .first()
            .map_or("b".to_string(), |t| t.to_ascii_lowercase());
        match name.as_str() {
            "b" => "b",
            "c" => {
                assert_eq!(caller, "ops", "profile c serves ops only");
                "c"
            }
            other => panic!("profile {other:?} served"),
        }
    };
    match ep {
        Ep::Secret { same } => {
            let name = one("key");
            assert!(
                (1..=127).contains(&name.len())
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
                "secret name {name:?}"
            );
            let version = match values(&pairs, "version").as_slice() {
                [] | [""] => None,
                [v] => {
                    assert!(
                        v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()),
                        "version {v:?}"
                    );
                    Some(*v)
                }
                other => panic!("version = {other:?}"),
            };
            let tenant = profile(same);
            let lower = name.to_ascii_lowercase();
            let (vault, allowed) = match tenant {
                "same-tenant" => (
                    "https://v.vault.azure.net",
                    lower == "test-secret-001"
                        || lower.starts_with("app-")
                        || lower.starts_with("private-zq85-"),
                ),
                "b" => ("https://b.vault.azure.net", true),
                _ => ("https://c.vault.azure.net", lower == "test-secret-001"),
            };
            assert!(allowed, "secret {name:?} is outside the rules of {tenant}");
            assert_eq!(d.tenant.as_deref(), Some(tenant));
            let path = match version {
                Some(v) => format!("/secrets/{name}/{v}"),
                None => format!("/secrets/{name}"),
            };
            assert_eq!(
                d.resource.as_deref(),
                Some(format!("{vault}{path}").as_str())
            );
            // The SDKs' first step, the unauthenticated challenge request, names exactly it.
            assert_eq!(
                d.upstream[0],
                format!("Key Vault GET {path}?api-version=7.5 (0 bytes)")
            );
        }
        Ep::Blob { same } => {
            let container = one("container");
            let name = one("blob");
            check_container(container);
            check_blob_name(name);
            let tenant = profile(same);
            let (origin, base, allowed) = match tenant {
                "same-tenant" => (
                    "https://acct.blob.core.windows.net",
                    "",
                    container == "public"
                        || (container == "reports" && name.starts_with("2026/"))
                        || (container == "exports" && name == "daily.csv"),
                ),
                "b" => ("https://127.0.0.1:10000", "/devstoreaccount1", true),
                _ => ("https://c.blob.core.windows.net", "", container == "public"),
            };
            assert!(
                allowed,
                "blob {container}/{name:?} is outside the rules of {tenant}"
            );
            assert_eq!(d.tenant.as_deref(), Some(tenant));
            let resource = d.resource.as_deref().expect("a resource");
            assert!(
                resource.starts_with(&format!("{origin}{base}/{container}/")),
                "resource {resource:?}"
            );
            check_blob_path(
                base,
                container,
                name,
                &fuzzing::blob_path(base, container, name),
            );
            // A blob is fetched with a token: the first call is for one, never Storage.
            assert!(
                d.upstream[0].starts_with("IMDS GET /metadata/identity/oauth2/token?"),
                "first call {:?}",
                d.upstream[0]
            );
        }
        Ep::Registry => {
            let registry = one("registry");
            assert!(is_hub(registry), "registry {registry:?} served");
            let repositories = values(&pairs, "repository");
            assert!((1..=16).contains(&repositories.len()));
            for r in repositories {
                assert!(
                    !r.is_empty()
                        && r.len() <= 255
                        && r.bytes().all(|b| b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || b"._-/".contains(&b)),
                    "repository {r:?}"
                );
                assert!(
                    r.starts_with("base/") || (caller == "ops" && r == "infra/tools"),
                    "repository {r:?} for {caller} is outside the rules"
                );
            }
            assert_eq!(profile(false), "b", "only profile b has a registry");
            assert_eq!(d.tenant.as_deref(), Some("b"));
            assert!(
                d.upstream[0].starts_with("IMDS GET /metadata/identity/oauth2/token?"),
                "first call {:?}",
                d.upstream[0]
            );
        }
        Ep::Health | Ep::Live => unreachable!("answered above"),
    }
});

/// `hub.azurecr.io` as `input::registry` and `origin::parse` read it: any case, the default port
/// spelled out or not, trailing white space trimmed.
fn is_hub(name: &str) -> bool {
    let n = name.trim_end().to_ascii_lowercase();
    match n.rsplit_once(':') {
        Some((host, port)) => host == "hub.azurecr.io" && port.parse::<u16>() == Ok(443),
        None => n == "hub.azurecr.io",
    }
}

/// Status, headers and body agree; a refusal is a problem whose code is the one logged.
fn check_well_formed(d: &Served) {
    assert!((200..=599).contains(&d.status), "status {}", d.status);
    let line: serde_json::Value = serde_json::from_str(&d.log_line).expect("the log line is JSON");
    assert!(!d.log_line.contains('\n'), "a log line on several lines");
    assert_eq!(line["status"], u64::from(d.status), "logged status");
    assert!(
        d.upstream.len() <= 2,
        "{} upstream attempts for one refused call: {:?}",
        d.upstream.len(),
        d.upstream
    );
    if d.status < 400 || d.code.is_none() {
        // A success, or the readiness report's 503: complete, never cached.
        common::check_answer_headers(&d.headers, &d.body, "answer");
        assert!(d.code.is_none(), "a success with a problem code");
        assert!(
            d.body.len() <= 16 * 1024,
            "answer of {} bytes",
            d.body.len()
        );
        return;
    }
    let code = d.code.as_deref().expect("a refusal logs its code");
    assert_eq!(line["code"], code, "logged code");
    common::check_problem_answer(d.status, code, &d.headers, &d.body, "refusal");
}

/// No configured secret in the answer or the log line, unless the caller sent that text itself
/// (outside the key headers and `code`, which are never echoed).
fn check_no_secrets(d: &Served, method: &str, path: &str, pairs: &[(String, String)]) {
    let sent: Vec<String> = [method.to_string(), path.to_string()]
        .into_iter()
        .chain(pairs.iter().flat_map(|(k, v)| {
            let value = (!k.eq_ignore_ascii_case("code")).then(|| v.clone());
            std::iter::once(k.clone()).chain(value)
        }))
        .map(|s| s.to_ascii_lowercase())
        .collect();
    // Decoded, not as escaped JSON: `\u0017Q2x…` shows no key tail `7Q2x…` to anyone.
    let body = common::reading::visible_text(&d.body);
    let log_line = common::reading::visible_text(d.log_line.as_bytes());
    for secret in SECRETS {
        let lower = secret.to_ascii_lowercase();
        if sent.iter().any(|s| s.contains(&lower)) {
            continue;
        }
        assert!(
            !body.contains(secret),
            "{secret:?} in the body: {}",
            String::from_utf8_lossy(&d.body)
        );
        assert!(
            !log_line.contains(secret),
            "{secret:?} in the log line: {}",
            d.log_line
        );
        assert!(
            !d.headers.iter().any(|(_, v)| v.contains(secret)),
            "{secret:?} in a header"
        );
    }
}

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
            decoded = common::reading::percent_decode(&decoded);
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
        .map(|s| common::reading::percent_decode(s.as_bytes()))
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
