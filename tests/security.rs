//! Least-privilege rules, limits and the audit line, through the compiled component.

mod common;

use common::*;

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
    for (tenant, c, b) in [
        ("Same", SEED_CONTAINER, "other.txt"),
        ("Same", "greet", "x"),
        ("Cross", SEED_CONTAINER, SEED_BLOB),
    ] {
        let r = blob(tenant, c, b);
        assert_eq!(
            (r.status, r.code().as_str()),
            (403, "access-denied"),
            "{tenant} {c}/{b}"
        );
    }
    let calls = w.outbound().len();
    let _ = blob("Cross", SEED_CONTAINER, "x");
    assert_eq!(w.outbound().len(), calls);
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
    let r = w.get(&format!(
        "/api/GetSecretSameTenant?key=a&pad={}",
        "x".repeat(9000)
    ));
    assert_eq!((r.status, r.code().as_str()), (414, "uri-too-long"));
    assert_no_upstream(&w);
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
    assert_eq!(blob["tenant"], "cross-tenant");
    assert_eq!(
        blob["resource"],
        format!(
            "{}/{ACCOUNT_B}/{SEED_CONTAINER}/{SEED_BLOB}",
            shared().azurite.endpoint()
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
