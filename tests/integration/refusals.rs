//! Everything the component refuses before any upstream call: routes, methods, caller keys,
//! bad input, broken configuration; and the host's enforcement of allowed_outbound_hosts.

use tenant_bridge_testkit::world::suite::*;
use tenant_bridge_testkit::world::*;

fn assert_no_upstream(w: &World, context: &str) {
    assert!(
        w.outbound().is_empty(),
        "{context}: component called out: {:?}",
        w.outbound()
    );
    assert!(w.imds.requests().is_empty(), "{context}: IMDS was called");
    assert!(
        w.vault_a.requests().is_empty() && w.vault_b.requests().is_empty(),
        "{context}: a vault was called"
    );
    assert!(w.entra.requests().is_empty(), "{context}: Entra was called");
}

#[test]
fn callers_without_the_right_key_get_an_empty_401() {
    let w = World::new();
    let path = "/api/GetSecretSameTenant?key=TEST-SECRET-001";
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        ("no key", path.to_string(), vec![]),
        (
            "wrong header",
            path.to_string(),
            vec![("x-functions-key", "nope")],
        ),
        ("wrong code", format!("{path}&code=nope"), vec![]),
        (
            "prefix of a key",
            path.to_string(),
            vec![("x-functions-key", "test-key")],
        ),
        (
            "header wrong, code right: header wins",
            format!("{path}&code={KEY}"),
            vec![("x-functions-key", "nope")],
        ),
        (
            "empty header",
            format!("{path}&code={KEY}"),
            vec![("x-functions-key", "")],
        ),
        ("two codes", format!("{path}&code={KEY}&code={KEY}"), vec![]),
    ];
    for (what, url, headers) in cases {
        let r = w.request("GET", &url, &headers);
        assert_eq!(r.status, 401, "{what}");
        assert!(
            r.body.is_empty(),
            "{what}: 401 body must be empty, got {}",
            r.text()
        );
    }
    assert_no_upstream(&w, "401s");
    // Both rotated keys and both places work.
    assert_eq!(
        w.request("GET", &format!("{path}&code={ROTATED_KEY}"), &[])
            .status,
        200
    );
    assert_eq!(
        w.request("GET", path, &[("x-functions-key", ROTATED_KEY)])
            .status,
        200
    );
}

#[test]
fn parameter_names_are_case_insensitive_as_in_the_functions_host() {
    // ASP.NET Core's query collection ignores the case of names: ?Key= and ?Code= work in the
    // original, so they work here.
    let w = World::new();
    let r = w.request(
        "GET",
        &format!("/api/GetSecretSameTenant?Key=TEST-SECRET-001&Code={KEY}"),
        &[],
    );
    assert_eq!((r.status, r.text().as_str()), (200, "TenantA"));
    let r = w.get(&format!(
        "/api/DownloadBlobSameTenant?CONTAINER={SEED_CONTAINER}&Blob={SEED_BLOB}"
    ));
    assert_eq!((r.status, r.text()), (200, base64(SEED_A)));
    // Two spellings of one name are one parameter given twice.
    let r = w.get("/api/GetSecretSameTenant?key=a&KEY=b");
    assert_eq!((r.status, r.code().as_str()), (400, "duplicate-parameter"));
}

#[test]
fn function_keys_shorter_than_16_characters_are_refused_at_configuration() {
    let short = "fifteen-chars-k";
    assert_eq!(short.len(), 15);
    let w = World::builder()
        .var("function_keys", Some(&*format!("ops:{short}")))
        .build();
    let r = w.request(
        "GET",
        "/api/GetSecretSameTenant?key=TEST-SECRET-001",
        &[("x-functions-key", short)],
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (500, "configuration-invalid"),
        "{}",
        r.text()
    );
    // Nobody is authenticated yet: the detail, which names the key, is in the log line only.
    assert!(
        !r.text().contains("ops") && !r.text().contains("function_keys"),
        "{}",
        r.text()
    );
    assert!(!r.text().contains(short), "the key is not echoed");
    let line = &w.log_lines(1)[0];
    assert!(
        line["detail"]
            .as_str()
            .is_some_and(|d| d.contains("function_keys") && d.contains("'ops'")),
        "{line}"
    );
    assert_no_upstream(&w, "short key");
    let r = w.request("GET", "/api/healthz", &[]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(!r.text().contains(short), "{}", r.text());
}

/// An anonymous caller learns nothing about the configuration: a broken key list is a 500
/// without its detail, and health says ready or not with a code, no profile, no service.
#[test]
fn anonymous_callers_learn_no_configuration() {
    let w = World::builder()
        .var(
            "function_keys",
            Some(&*format!("{KEY},ops:{ROTATED_KEY},ops:{KEY}x")),
        )
        .build();
    let r = w.request("GET", "/api/GetSecretSameTenant?key=TEST-SECRET-001", &[]);
    assert_eq!(
        (r.status, r.code().as_str()),
        (500, "configuration-invalid"),
        "{}",
        r.text()
    );
    assert!(!r.text().contains("ops"), "{}", r.text());
    let r = w.request("GET", "/api/healthz", &[]);
    assert_eq!(
        (r.status, r.code().as_str()),
        (503, "configuration-invalid")
    );
    let text = r.text();
    for hidden in ["ops", "function_keys"] {
        assert!(!text.contains(hidden), "health shows {hidden}: {text}");
    }
    let members: Vec<String> = r.json().as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        members,
        ["code", "detail", "status", "title", "type"],
        "no report, profile or service: {text}"
    );
    assert_no_upstream(&w, "anonymous");
    let logs = w.logs();
    assert!(
        logs.contains("entries 2 and 3 are both named 'ops'"),
        "{logs}"
    );

    // Authentication off: not ready, unless explicitly allowed.
    let w = World::builder()
        .var("auth_disabled", Some("true"))
        .var("function_keys", None)
        .build();
    let r = w.request("GET", "/api/healthz", &[]);
    assert_eq!(
        (r.status, r.code().as_str()),
        (503, "configuration-invalid"),
        "{}",
        r.text()
    );
    let w = World::builder()
        .var("auth_disabled", Some("true"))
        .var("auth_disabled_ready", Some("true"))
        .var("function_keys", None)
        .build();
    assert_eq!(w.request("GET", "/api/healthz", &[]).status, 200);
}

#[test]
fn positional_key_names_are_refused_where_they_could_shift() {
    // An unnamed key is key1 by position: a second key explicitly named key1 would share it.
    let w = World::builder()
        .var("function_keys", Some(&*format!("{KEY},key1:{ROTATED_KEY}")))
        .build();
    let r = w.get("/api/GetSecretSameTenant?key=TEST-SECRET-001");
    assert_eq!(
        (r.status, r.code().as_str()),
        (500, "configuration-invalid"),
        "{}",
        r.text()
    );
    assert_no_upstream(&w, "positional key name");
    // A rule naming an unnamed key by its position would follow whichever key is second.
    let w = World::builder()
        .var(
            "function_keys",
            Some(&*format!("tests:{KEY},{ROTATED_KEY}")),
        )
        .var("profile1_callers", Some("key2"))
        .build();
    let r = w.get(&format!(
        "/api/GetSecretCrossTenant?key=TEST-SECRET-001&tenant={PROFILE_C}"
    ));
    assert_eq!(
        (r.status, r.code().as_str()),
        (500, "configuration-invalid"),
        "{}",
        r.text()
    );
    assert!(r.detail().contains("profile1_callers"), "{}", r.detail());
    assert_no_upstream(&w, "positional caller rule");
}

#[test]
fn auth_is_off_only_when_explicitly_disabled() {
    let w = World::builder()
        .var("auth_disabled", Some("true"))
        .var("function_keys", None)
        .build();
    assert_eq!(
        w.request("GET", "/api/GetSecretSameTenant?key=TEST-SECRET-001", &[])
            .status,
        200
    );
    let w = World::builder().var("function_keys", None).build();
    let r = w.request("GET", "/api/GetSecretSameTenant?key=TEST-SECRET-001", &[]);
    assert_eq!(
        (r.status, r.code().as_str()),
        (500, "configuration-missing")
    );
    let line = &w.log_lines(1)[0];
    assert!(
        line["detail"]
            .as_str()
            .is_some_and(|d| d.contains("function_keys")),
        "{line}"
    );
    assert_no_upstream(&w, "no keys configured");
}

#[test]
fn other_methods_are_405_with_allow_and_unknown_routes_404() {
    let w = World::new();
    for method in ["POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
        let r = w.request(
            method,
            "/api/GetSecretSameTenant?key=TEST-SECRET-001",
            &[("x-functions-key", KEY)],
        );
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow").as_deref(), Some("GET"), "{method}");
    }
    for path in ["/", "/api", "/api/GetSecret", "/api/GetSecretSameTenantX"] {
        let r = w.get(path);
        assert_eq!(r.status, 404, "{path}");
    }
    assert_eq!(w.get("/api/GetSecretSameTenantX").code(), "route-not-found");
    assert_no_upstream(&w, "405/404");
}

#[test]
fn bad_input_is_400_and_reaches_no_upstream_service() {
    let long_blob = "x".repeat(1025);
    let deep_blob = vec!["d"; 255].join("/");
    let long_secret = "a".repeat(128);
    let blob = |tenant: &str, q: &str| format!("/api/DownloadBlob{tenant}Tenant?{q}");
    let secret = |tenant: &str, q: &str| format!("/api/GetSecret{tenant}Tenant?{q}");
    let mut cases: Vec<(String, &str)> = Vec::new();
    for t in ["Same", "Cross"] {
        cases.extend([
            (blob(t, "container=seed&blob=../x"), "invalid-blob-name"),
            (blob(t, "container=seed&blob=%2e%2e/x"), "invalid-blob-name"),
            (
                blob(t, "container=seed&blob=%252e%252e%252fx"),
                "invalid-blob-name",
            ),
            (blob(t, "container=seed&blob=a/./b"), "invalid-blob-name"),
            (
                blob(t, "container=seed&blob=a/../../other/x"),
                "invalid-blob-name",
            ),
            (
                blob(t, "container=seed&blob=a%2F..%2Fb"),
                "invalid-blob-name",
            ),
            (blob(t, "container=seed&blob=a%252Fb"), "invalid-blob-name"),
            (blob(t, "container=seed&blob=a//b"), "invalid-blob-name"),
            (blob(t, "container=seed&blob=/abs"), "invalid-blob-name"),
            (blob(t, "container=seed&blob=dir/"), "invalid-blob-name"),
            (blob(t, "container=seed&blob=name."), "invalid-blob-name"),
            (blob(t, "container=seed&blob=a%5Cb"), "invalid-blob-name"),
            (blob(t, "container=seed&blob=a%00b"), "invalid-blob-name"),
            (blob(t, "container=seed&blob=a%0Ab"), "invalid-blob-name"),
            (blob(t, "container=seed&blob=a%7Fb"), "invalid-blob-name"),
            (
                blob(t, &format!("container=seed&blob={long_blob}")),
                "invalid-blob-name",
            ),
            (
                blob(t, &format!("container=seed&blob={deep_blob}")),
                "invalid-blob-name",
            ),
            (blob(t, "container=seed&blob="), "invalid-blob-name"),
            (blob(t, "container=seed"), "missing-parameter"),
            (blob(t, "blob=x"), "missing-parameter"),
            (
                blob(t, "container=seed&blob=a&blob=b"),
                "duplicate-parameter",
            ),
            (
                blob(t, "container=seed&container=seed&blob=a"),
                "duplicate-parameter",
            ),
            (blob(t, "container=Seed&blob=a"), "invalid-container-name"),
            (blob(t, "container=ab&blob=a"), "invalid-container-name"),
            (blob(t, "container=a--b&blob=a"), "invalid-container-name"),
            (blob(t, "container=-ab&blob=a"), "invalid-container-name"),
            (blob(t, "container=..&blob=a"), "invalid-container-name"),
            (blob(t, "container=a%2Fb&blob=a"), "invalid-container-name"),
            (
                blob(t, &format!("container={}&blob=a", "c".repeat(64))),
                "invalid-container-name",
            ),
            (secret(t, "key=../x"), "invalid-secret-name"),
            (secret(t, "key=a_b"), "invalid-secret-name"),
            (secret(t, "key=a%2Fb"), "invalid-secret-name"),
            (secret(t, "key=a%00"), "invalid-secret-name"),
            (
                secret(t, &format!("key={long_secret}")),
                "invalid-secret-name",
            ),
            (secret(t, "key="), "invalid-secret-name"),
            (secret(t, ""), "missing-parameter"),
            (secret(t, "key=a&key=b"), "duplicate-parameter"),
            (
                secret(t, "key=a&version=1&version=2"),
                "duplicate-parameter",
            ),
            (secret(t, "key=a&version=xyz"), "invalid-secret-version"),
            // Invalid UTF-8 after percent-decoding is refused, not replaced by U+FFFD (which
            // would make blob=%FF and blob=%FE the same blob).
            (blob(t, "container=seed&blob=%FF"), "invalid-encoding"),
            (blob(t, "container=seed&blob=a%C3"), "invalid-encoding"),
            (secret(t, "key=%FE"), "invalid-encoding"),
            (
                secret(t, "key=a&version=0123456789abcdef0123456789abcdeg"),
                "invalid-secret-version",
            ),
            (
                secret(t, "key=a&version=../0123456789abcdef0123456789abcd"),
                "invalid-secret-version",
            ),
        ]);
    }
    assert!(cases.len() >= 40);
    let w = World::new();
    for (url, code) in &cases {
        let r = w.get(url);
        assert_eq!(r.status, 400, "{url}: {}", r.text());
        assert_eq!(r.code(), *code, "{url}");
        let detail = r.detail();
        assert!(!detail.is_empty() && detail.len() < 400, "{url}: {detail}");
        assert_eq!(
            (
                r.header("cache-control").as_deref(),
                r.header("x-content-type-options").as_deref()
            ),
            (Some("no-store"), Some("nosniff")),
            "{url}: every problem response"
        );
        assert!(
            !detail.chars().any(char::is_control),
            "{url}: control characters in detail"
        );
    }
    assert_no_upstream(&w, "bad input");
}

#[test]
fn missing_and_malformed_configuration_is_500_naming_the_variable() {
    let cases: [(&str, Option<&str>, &str, &str); 5] = [
        (
            "keyvault_endpoint",
            None,
            "/api/GetSecretSameTenant?key=a",
            "configuration-missing",
        ),
        (
            "blob_service_endpoint",
            None,
            "/api/DownloadBlobSameTenant?container=seed&blob=a",
            "configuration-missing",
        ),
        (
            "cross_tenant_id",
            Some("contoso.onmicrosoft.com"),
            "/api/GetSecretCrossTenant?key=a",
            "configuration-invalid",
        ),
        (
            "app_client_id",
            None,
            "/api/GetSecretCrossTenant?key=a",
            "configuration-missing",
        ),
        (
            "cloud",
            Some("mars"),
            "/api/GetSecretSameTenant?key=a",
            "configuration-invalid",
        ),
    ];
    for (var, value, url, code) in cases {
        let w = World::builder().var(var, value).build();
        let r = w.get(url);
        assert_eq!(r.status, 500, "{var}: {}", r.text());
        assert_eq!(r.code(), code, "{var}");
        assert!(r.detail().contains(var), "{var}: {}", r.detail());
        assert!(
            w.vault_a.requests().is_empty()
                && w.vault_b.requests().is_empty()
                && w.entra.requests().is_empty(),
            "{var}"
        );
    }
}

#[test]
fn an_endpoint_with_a_path_is_named_and_breaks_nothing_else() {
    // Endpoints no longer feed allowed_outbound_hosts, so a path in one is the component's own
    // 500 naming the setting, and every other route keeps working.
    let path_value = format!("{}/devstoreaccount1", shared().azurite.endpoint());
    let w = World::builder()
        .var("blob_service_endpoint", Some(path_value.as_str()))
        .build();
    let r = w.get("/api/DownloadBlobSameTenant?container=seed&blob=a");
    assert_eq!(
        (r.status, r.code().as_str()),
        (500, "configuration-invalid")
    );
    assert!(
        r.detail().contains("blob_service_endpoint") && r.detail().contains("_path"),
        "{}",
        r.detail()
    );
    assert!(
        !w.outbound()
            .iter()
            .any(|o| o.url.contains("devstoreaccount1")),
        "the refused endpoint was never called"
    );
    let r = w.get("/api/GetSecretSameTenant?key=TEST-SECRET-001");
    assert_eq!((r.status, r.text().as_str()), (200, SECRET_VALUE_A));
}

#[test]
fn an_allowed_host_entry_with_a_path_denies_every_call_as_in_spin() {
    // Spin 3.6.3: one allowed_outbound_hosts template that resolves to a URL with a path makes
    // Spin deny every outbound request of the component (a literal one stops `spin up`). The
    // host reproduces that, and the component explains the denial.
    let w = World::builder()
        .manifest_edit(|m| {
            m.replacen(
                "[variables]\n",
                "[variables]\nextra_host = { default = \"https://127.0.0.1:10000/devstoreaccount1\" }\n",
                1,
            )
            .replacen(
                "allowed_outbound_hosts = [\n",
                "allowed_outbound_hosts = [\n  \"{{ extra_host }}\",\n",
                1,
            )
        })
        .build();
    let r = w.get("/api/GetSecretSameTenant?key=TEST-SECRET-001");
    assert_eq!(
        (r.status, r.code().as_str()),
        (500, "outbound-denied"),
        "{}",
        r.text()
    );
    assert!(r.detail().contains("allowed_outbound_hosts"));
    assert!(w.outbound().iter().all(|o| o.denied));
    assert!(
        w.logs().contains("Error parsing allowed outbound hosts"),
        "{}",
        w.logs()
    );
    assert!(w.vault_a.requests().is_empty() && w.imds.requests().is_empty());
}

#[test]
fn the_host_enforces_allowed_outbound_hosts_from_spin_toml() {
    // Drop the IMDS entry from the manifest: the component's IMDS call must be denied by the host.
    let w = World::builder()
        .manifest_edit(|m| {
            let kept: Vec<&str> = m
                .lines()
                .filter(|l| !l.ends_with("# imds_endpoint"))
                .collect();
            assert!(
                kept.len() < m.lines().count(),
                "the world's manifest lists the IMDS fake"
            );
            kept.join("\n")
        })
        .build();
    let r = w.get("/api/GetSecretSameTenant?key=TEST-SECRET-001");
    assert_eq!(
        (r.status, r.code().as_str()),
        (500, "outbound-denied"),
        "{}",
        r.text()
    );
    let out = w.outbound();
    let imds: Vec<_> = out
        .iter()
        .filter(|o| o.url.starts_with(&w.imds.endpoint()))
        .collect();
    assert_eq!(imds.len(), 1);
    assert!(imds[0].denied);
    assert!(
        w.imds.requests().is_empty(),
        "the denied request never reached IMDS"
    );
    // The vault probe (allowed) did go out.
    assert!(out
        .iter()
        .any(|o| o.url.contains(VAULT_A_HOST) && !o.denied));
}

#[test]
fn health_needs_no_key_checks_configuration_only_and_names_what_is_missing() {
    let w = World::new();
    let r = w.request("GET", "/api/healthz", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, r#"{"status":"ok"}"#));
    // With a key, the whole report.
    let r = w.get("/api/healthz");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["serves"].as_array().map(Vec::len), Some(4));
    assert!(
        !r.text().contains(KEY) && !r.text().contains(TENANT_B),
        "reveals nothing sensitive: {}",
        r.text()
    );
    assert_no_upstream(&w, "healthy probe");

    let w = World::builder().var("app_client_id", None).build();
    let r = w.request("GET", "/api/healthz", &[]);
    assert_eq!(
        (r.status, r.code().as_str()),
        (503, "configuration-missing")
    );
    assert!(!r.detail().contains("app_client_id"), "{}", r.detail());
    let r = w.get("/api/healthz");
    assert_eq!(
        (r.status, r.code().as_str()),
        (503, "configuration-missing")
    );
    assert!(r.detail().contains("app_client_id"));
    // The 503 names variables, never configured values.
    let text = r.text();
    for value in [TENANT_B, MI_CLIENT_ID, KEY, VAULT_A_HOST, ACCOUNT_A] {
        assert!(!text.contains(value), "health shows {value}: {text}");
    }
    assert_eq!(w.request("POST", "/api/healthz", &[]).status, 405);
    assert_no_upstream(&w, "unhealthy probe");
}
