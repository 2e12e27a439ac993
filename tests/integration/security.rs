//! Least-privilege rules, limits and the audit line, through the compiled component.

use tenant_bridge_testkit::fakes::http::Fault;
use tenant_bridge_testkit::world::suite::*;
use tenant_bridge_testkit::world::*;

fn assert_no_upstream(w: &World) {
    assert!(w.outbound().is_empty(), "called out: {:?}", w.outbound());
}

#[test]
fn secret_rules_allow_listed_names_and_prefixes_only() {
    let w = World::builder()
        .var("same_tenant_secrets", Some("TEST-SECRET-001, app-*"))
        .var("cross_tenant_secrets", Some("shared-*"))
        .build();
    w.vault_a.set_secret("app-db", "a");
    assert_eq!(
        w.get("/api/GetSecretSameTenant?key=test-secret-001").status,
        200,
        "names are case-insensitive"
    );
    assert_eq!(w.get("/api/GetSecretSameTenant?key=app-db").status, 200);
    let before = w.outbound().len();
    for (path, variable) in [
        ("/api/GetSecretSameTenant?key=other", "same_tenant_secrets"),
        ("/api/GetSecretSameTenant?key=ap", "same_tenant_secrets"),
        (
            "/api/GetSecretCrossTenant?key=TEST-SECRET-001",
            "cross_tenant_secrets",
        ),
    ] {
        let r = w.get(path);
        assert_eq!(
            (r.status, r.code().as_str()),
            (403, "access-denied"),
            "{path}"
        );
        assert!(r.detail().contains(variable), "{path}: {}", r.detail());
        assert!(
            !r.detail().contains("app-*"),
            "the rule itself is not disclosed"
        );
    }
    assert_eq!(
        w.outbound().len(),
        before,
        "denials reach no upstream service"
    );
}

#[test]
fn blob_rules_allow_containers_prefixes_and_exact_names() {
    let w = World::builder()
        .var(
            "same_tenant_blobs",
            Some(&*format!("{SEED_CONTAINER}/greet*")),
        )
        .var("cross_tenant_blobs", Some("other-container"))
        .build();
    let blob = |tenant: &str, c: &str, b: &str| {
        w.get(&format!(
            "/api/DownloadBlob{tenant}Tenant?container={c}&blob={b}"
        ))
    };
    assert_eq!(blob("Same", SEED_CONTAINER, SEED_BLOB).status, 200);
    let calls = w.outbound().len();
    for (tenant, c, b) in [
        ("Same", SEED_CONTAINER, "other.txt"),
        ("Same", "greet", "x"),
        ("Cross", SEED_CONTAINER, SEED_BLOB),
        ("Cross", SEED_CONTAINER, "x"),
    ] {
        let r = blob(tenant, c, b);
        assert_eq!(
            (r.status, r.code().as_str()),
            (403, "access-denied"),
            "{tenant} {c}/{b}"
        );
    }
    assert_eq!(
        w.outbound().len(),
        calls,
        "denials reach no upstream service"
    );
}

#[test]
fn blob_rules_of_exact_names_and_whole_containers_let_through_what_they_name() {
    let w = World::builder()
        .var(
            "same_tenant_blobs",
            Some(&*format!("{SEED_CONTAINER}/{SEED_BLOB}")),
        )
        .var("cross_tenant_blobs", Some(SEED_CONTAINER))
        .build();
    let blob = |tenant: &str, c: &str, b: &str| {
        w.get(&format!(
            "/api/DownloadBlob{tenant}Tenant?container={c}&blob={b}"
        ))
    };
    assert_eq!(
        blob("Same", SEED_CONTAINER, SEED_BLOB).text(),
        base64(SEED_A),
        "the exact name"
    );
    assert_eq!(
        blob("Cross", SEED_CONTAINER, SEED_BLOB).text(),
        base64(SEED_B),
        "any blob of the allowed container"
    );
    let calls = w.outbound().len();
    for (tenant, c, b) in [
        ("Same", SEED_CONTAINER, &*format!("{SEED_BLOB}2")),
        ("Same", SEED_CONTAINER, "greeting"),
        ("Cross", "seedling", SEED_BLOB),
        ("Cross", "other", SEED_BLOB),
    ] {
        let r = blob(tenant, c, b);
        assert_eq!(
            (r.status, r.code().as_str()),
            (403, "access-denied"),
            "{tenant} {c}/{b}"
        );
    }
    assert_eq!(
        w.outbound().len(),
        calls,
        "denials reach no upstream service"
    );
}

/// A vault whose challenge names a resource other than the cloud's vault resource gets no
/// token (the SDKs' rule: the request host must end with the challenge resource's host, and it
/// must be exactly https://vault.azure.net in the public cloud) — and no token is even fetched.
#[test]
fn a_foreign_challenge_resource_gets_no_token() {
    for (path, resource) in [
        (
            "/api/GetSecretSameTenant?key=TEST-SECRET-001",
            "https://net",
        ),
        (
            "/api/GetSecretSameTenant?key=TEST-SECRET-001",
            "https://evil.example",
        ),
        (
            "/api/GetSecretSameTenant?key=TEST-SECRET-001",
            "http://vault.azure.net",
        ),
        (
            "/api/GetSecretCrossTenant?key=TEST-SECRET-001",
            "https://azure.net",
        ),
    ] {
        let w = World::new();
        w.vault_a.set_challenge_resource(resource);
        w.vault_b.set_challenge_resource(resource);
        let r = w.get(path);
        assert_eq!(
            (r.status, r.code().as_str()),
            (502, "keyvault-challenge-invalid"),
            "{resource}: {}",
            r.text()
        );
        for vault in [&w.vault_a, &w.vault_b] {
            assert!(
                vault.requests().iter().all(|q| q.bearer().is_none()),
                "{resource}: a token reached the vault"
            );
        }
        assert!(w.imds.requests().is_empty(), "{resource}: IMDS was asked");
        assert!(w.entra.requests().is_empty(), "{resource}: Entra was asked");
    }
}

#[test]
fn blobs_over_the_size_limit_are_413_before_streaming() {
    let w = World::builder().var("max_blob_bytes", Some("10")).build();
    let r = w.get(&format!(
        "/api/DownloadBlobSameTenant?container={SEED_CONTAINER}&blob={SEED_BLOB}"
    ));
    assert_eq!((r.status, r.code().as_str()), (413, "blob-too-large"));
    assert!(
        r.detail().contains(&SEED_A.len().to_string()) && r.detail().contains("max_blob_bytes")
    );
    let w = World::builder().var("max_blob_bytes", Some("19")).build();
    let r = w.get(&format!(
        "/api/DownloadBlobSameTenant?container={SEED_CONTAINER}&blob={SEED_BLOB}"
    ));
    assert_eq!(r.status, 200, "exactly at the limit is fine");
}

#[test]
fn over_long_urls_are_414() {
    let w = World::new();
    // Over 16 KiB of path and query: refused before anything else.
    let r = w.get(&format!(
        "/api/GetSecretSameTenant?key=a&pad={}",
        "x".repeat(16 * 1024)
    ));
    assert_eq!((r.status, r.code().as_str()), (414, "uri-too-long"));
    assert_no_upstream(&w);
    // The longest legal blob name (1,024 four-byte characters, percent-encoded: 12 KiB) fits.
    let name = "%F0%90%8D%88".repeat(1024);
    let r = w.get(&format!(
        "/api/DownloadBlobSameTenant?container={SEED_CONTAINER}&blob={name}"
    ));
    assert_eq!(
        (r.status, r.code().as_str()),
        (404, "blob-not-found"),
        "{}",
        r.text()
    );
}

#[test]
fn the_audit_line_names_caller_resource_outcome_and_request_ids() {
    let w = World::new();
    let r = w.request(
        "GET",
        &format!("/api/DownloadBlobCrossTenant?container={SEED_CONTAINER}&blob={SEED_BLOB}"),
        &[("x-functions-key", ROTATED_KEY)],
    );
    assert_eq!(r.status, 200);
    let denied = w.get("/api/GetSecretSameTenant?key=nope");
    assert_eq!(denied.status, 404);
    let lines = w.log_lines(2);
    assert_eq!(lines.len(), 2, "{}", w.logs());
    let blob = &lines[0];
    assert_eq!(blob["caller"], "rotated");
    assert_eq!(blob["route"], "DownloadBlobCrossTenant");
    assert_eq!(blob["tenant"], "b", "the profile's name");
    assert_eq!(
        blob["resource"],
        format!(
            "{}/{ACCOUNT_B}/{SEED_CONTAINER}/{SEED_BLOB}",
            w.storage.endpoint()
        )
    );
    assert_eq!(blob["status"], 200);
    let services: Vec<&str> = blob["upstream"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["service"].as_str().unwrap())
        .collect();
    assert_eq!(services, ["IMDS", "Entra ID", "Blob Storage"]);
    assert!(
        blob["upstream"][2]["request_id"].is_string(),
        "Storage's x-ms-request-id is logged"
    );
    let nf = &lines[1];
    assert_eq!(
        (
            nf["caller"].as_str(),
            nf["status"].as_u64(),
            nf["code"].as_str()
        ),
        (Some("tests"), Some(404), Some("secret-not-found"))
    );
}

/// Tokens only go where they belong: a storage endpoint outside the cloud's blob suffix (and not
/// in `trusted_token_hosts`), or an authority that is not the cloud's login host, gets no token —
/// the managed identity's assertion and the storage token never leave.
#[test]
fn no_token_leaves_for_hosts_outside_the_clouds_suffixes() {
    // Azurite is on 127.0.0.1: without trusting it, no storage token may go there.
    let w = World::builder()
        .var("trusted_token_hosts", Some(""))
        .build();
    let r = w.get(&format!(
        "/api/DownloadBlobSameTenant?container={SEED_CONTAINER}&blob={SEED_BLOB}"
    ));
    assert_eq!(
        (r.status, r.code().as_str()),
        (500, "configuration-invalid"),
        "{}",
        r.text()
    );
    assert!(
        r.detail().contains("blob_service_endpoint"),
        "{}",
        r.detail()
    );
    assert!(
        w.outbound()
            .iter()
            .all(|o| o.header("authorization").is_none()),
        "a token left: {:?}",
        w.outbound()
    );

    // The same for the target tenants' endpoints: no exchange, no token.
    for (variable, value) in [
        ("cross_blob_service_endpoint", "https://storage.example.com"),
        ("cross_keyvault_endpoint", "https://vault.example.com"),
        (
            "profile1_blob_service_endpoint",
            "https://c.blob.core.windows.net.example.com",
        ),
    ] {
        let w = World::builder().var(variable, Some(value)).build();
        let tenant = if variable.starts_with("profile1") {
            "c"
        } else {
            "b"
        };
        let route = if variable.contains("keyvault") {
            format!("/api/GetSecretCrossTenant?key=TEST-SECRET-001&tenant={tenant}")
        } else {
            format!(
                "/api/DownloadBlobCrossTenant?container={SEED_CONTAINER}&blob={SEED_BLOB}&tenant={tenant}"
            )
        };
        let r = w.get(&route);
        assert_eq!(
            (r.status, r.code().as_str()),
            (500, "configuration-invalid"),
            "{variable}: {}",
            r.text()
        );
        assert!(r.detail().contains(variable), "{}", r.detail());
        assert!(w.outbound().is_empty(), "{variable}: {:?}", w.outbound());
    }

    // An authority that is not the cloud's login host never receives the assertion.
    let w = World::builder()
        .var("authority_host", Some("https://login.example-attacker.com"))
        .build();
    let r = w.get("/api/GetSecretCrossTenant?key=TEST-SECRET-001");
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.detail().contains("authority_host"), "{}", r.detail());
    assert!(w.entra.requests().is_empty());
    assert!(
        w.outbound()
            .iter()
            .all(|o| !o.url.contains("example-attacker")),
        "{:?}",
        w.outbound()
    );
}

/// The runtime guard behind the settings check. In a build whose settings accept any endpoint
/// (the `guard-probe` feature, never shipped), a Key Vault, a storage account or a registry
/// outside the cloud's hosts still gets no token: the bearer policy refuses before IMDS, Entra or
/// the service is asked anything. The shipped component refuses the same configuration earlier,
/// naming the variable (above).
#[test]
fn the_runtime_guard_refuses_what_the_settings_check_would_have() {
    let probe = guard_probe_wasm();
    let cases: [(&str, &str, String, &str); 3] = [
        (
            "cross_keyvault_endpoint",
            "https://vault.example.com",
            "/api/GetSecretCrossTenant?key=TEST-SECRET-001".to_string(),
            "vault.example.com",
        ),
        (
            // Azurite on 127.0.0.1, no longer trusted.
            "trusted_token_hosts",
            "",
            format!("/api/DownloadBlobSameTenant?container={SEED_CONTAINER}&blob={SEED_BLOB}"),
            "127.0.0.1",
        ),
        (
            "cross_tenant_registries",
            "hub.example.com",
            format!("/api/acr/token?registry=hub.example.com&repository={SEED_REPOSITORY}"),
            "hub.example.com",
        ),
    ];
    for (variable, value, route, host) in cases {
        let shipped = World::builder()
            .registry()
            .var(variable, Some(value))
            .build();
        let r = shipped.get(&route);
        assert_eq!(
            (r.status, r.code().as_str()),
            (500, "configuration-invalid"),
            "shipped, {variable}: {}",
            r.text()
        );

        let w = World::builder()
            .component(probe.clone())
            .registry()
            .var(variable, Some(value))
            .build();
        let r = w.get(&route);
        assert_eq!(
            (r.status, r.code().as_str()),
            (500, "token-destination-refused"),
            "guard probe, {variable}: {}",
            r.text()
        );
        assert!(r.detail().contains(host), "{}", r.detail());
        assert!(w.outbound().is_empty(), "{variable}: {:?}", w.outbound());
        assert!(w.entra.requests().is_empty());
    }
}

/// `trusted_token_hosts` wildcards that would trust more than one operator's hosts are refused
/// before any call: part of an IP address, a shared hosting or cloud service domain.
#[test]
fn trusted_wildcards_over_ip_addresses_or_shared_domains_are_refused() {
    for value in ["127.0.0.1, *.0.0.1", "127.0.0.1, *.azurewebsites.net"] {
        let w = World::builder()
            .var("trusted_token_hosts", Some(value))
            .build();
        let r = w.get("/api/GetSecretSameTenant?key=TEST-SECRET-001");
        assert_eq!(
            (r.status, r.code().as_str()),
            (500, "configuration-invalid"),
            "{value}: {}",
            r.text()
        );
        assert!(
            r.detail().contains("trusted_token_hosts") && r.detail().contains("entry 2"),
            "{}",
            r.detail()
        );
        assert_no_upstream(&w);
    }
}

/// A vault's tenant check fails closed: a token whose tenant cannot be read is never sent.
#[test]
fn a_token_without_a_readable_tenant_never_reaches_the_vault() {
    let w = World::new();
    w.imds.push_fault(Fault::json(
        200,
        &serde_json::json!({"access_token": "opaque-token-from-a-proxy", "expires_in": "3599"}),
    ));
    let r = w.get("/api/GetSecretSameTenant?key=TEST-SECRET-001");
    assert_eq!(
        (r.status, r.code().as_str()),
        (502, "keyvault-tenant-mismatch"),
        "{}",
        r.text()
    );
    assert!(r.detail().contains("no token was sent"), "{}", r.detail());
    assert!(
        w.vault_a.requests().iter().all(|q| q.bearer().is_none()),
        "a token went to the vault"
    );
}

/// The log scanner itself (`tenant_bridge_testkit::world::scan`, run on every host's log when a world ends)
/// finds what a leak looks like in a JSON log line: a value with escapes, a token cut anywhere, a
/// slice of a configured key, a secret percent-encoded — and passes the line that leaks nothing.
#[test]
fn the_log_scanner_finds_escaped_cut_and_sliced_secrets() {
    let third_key = "ops-key-3-only-configured-here";
    let w = World::builder()
        .var(
            "function_keys",
            Some(&*format!("{FUNCTION_KEYS},ops:{third_key}")),
        )
        .build();
    let tricky = "line one\nline \"two\" ünïcødé\t";
    w.vault_a.set_secret("tricky", tricky);
    assert_eq!(
        w.get("/api/GetSecretCrossTenant?key=TEST-SECRET-001")
            .status,
        200
    );
    let scanner = w.scanner();
    let line = |v: serde_json::Value| v.to_string();
    // The real log passes.
    scanner.assert_clean("host", &w.logs());
    assert!(scanner
        .find(&line(serde_json::json!({"msg": "ok"})))
        .is_none());

    let token = shared()
        .entra_signer
        .issued()
        .pop()
        .expect("Entra issued a token");
    let claims = token.split('.').nth(1).unwrap();
    let signature = token.split('.').nth(2).unwrap();
    let leaks = [
        (
            "an escaped secret",
            line(serde_json::json!({ "detail": tricky })),
        ),
        (
            "a slice of a secret",
            line(serde_json::json!({ "detail": format!("x{}y", &tricky[3..17]) })),
        ),
        (
            "a token cut mid-claims",
            line(serde_json::json!({ "t": &claims[7..31] })),
        ),
        (
            "the end of a signature",
            format!("sig={}", &signature[signature.len() - 12..]),
        ),
        (
            "a slice of a configured key",
            line(serde_json::json!({ "k": &third_key[4..20] })),
        ),
        (
            "a percent-encoded key",
            format!("GET /api?code={}", KEY.replace('-', "%2D")),
        ),
    ];
    for (what, leak) in leaks {
        assert!(
            scanner
                .find(&format!("{{\"before\":1}}\n{leak}\n"))
                .is_some(),
            "the scanner misses {what}: {leak}"
        );
    }
}
