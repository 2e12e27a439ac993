//! Cross-tenant endpoints through the compiled component: the managed identity's token is
//! exchanged at tenant B's (fake, strict) Entra endpoint, and tenant B's token reads tenant B's
//! vault and Azurite account. Each misconfiguration yields a diagnostic naming the fix.

use tenant_bridge_testkit::fakes::entra::FederatedCredential;
use tenant_bridge_testkit::fakes::http::Recorded;
use tenant_bridge_testkit::fakes::keyvault::VaultNetwork;
use tenant_bridge_testkit::world::suite::*;
use tenant_bridge_testkit::world::*;

const SECRET_B: &str = "/api/GetSecretCrossTenant?key=TEST-SECRET-001";

#[test]
fn the_originals_check_tenant_a_and_tenant_b() {
    let w = World::new();
    let same = w.get("/api/GetSecretSameTenant?key=TEST-SECRET-001");
    let cross = w.get(SECRET_B);
    assert_eq!((same.status, same.text().as_str()), (200, "TenantA"));
    assert_eq!(
        (cross.status, cross.text().as_str()),
        (200, "TenantB"),
        "{}",
        cross.text()
    );
    let blob = |tenant: &str| {
        w.get(&format!(
            "/api/DownloadBlob{tenant}Tenant?container={SEED_CONTAINER}&blob={SEED_BLOB}"
        ))
    };
    let (a, b) = (blob("Same"), blob("Cross"));
    assert_eq!((a.status, a.text()), (200, base64(SEED_A)));
    assert_eq!((b.status, b.text()), (200, base64(SEED_B)), "{}", b.text());
    assert_eq!(
        b.header("content-length"),
        Some(base64(SEED_B).len().to_string())
    );
    w.assert_no_leak(&cross, &[]);
}

#[test]
fn the_exchange_follows_the_exact_sequence() {
    let w = World::new();
    assert_eq!(w.get(SECRET_B).status, 200);

    let out = w.outbound();
    let targets: Vec<String> = out
        .iter()
        .map(|o| o.url.split('?').next().unwrap_or("").to_string())
        .collect();
    let entra_url = format!("{}/{TENANT_B}/oauth2/v2.0/token", w.entra.endpoint());
    let vault_url = format!("{}/secrets/TEST-SECRET-001", w.vault_b.endpoint());
    let imds_url = format!("{}/metadata/identity/oauth2/token", w.imds.endpoint());
    assert_eq!(
        targets,
        [vault_url.clone(), imds_url, entra_url, vault_url],
        "probe, assertion, exchange, read"
    );

    let imds = w.imds.token_requests();
    assert_eq!(imds.len(), 1);
    assert_eq!(imds[0].query("resource"), Some(EXCHANGE_AUDIENCE));
    assert_eq!(imds[0].query("client_id"), Some(MI_CLIENT_ID));

    let entra = w.entra.requests();
    assert_eq!(entra.len(), 1);
    let form = entra[0].form();
    let field = |k: &str| {
        form.iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(field("client_id"), [APP_ID]);
    assert_eq!(field("scope"), [format!("{VAULT_RESOURCE}/.default")]);
    assert_eq!(field("grant_type"), ["client_credentials"]);
    assert_eq!(
        field("client_assertion_type"),
        ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]
    );
    assert_eq!(field("client_assertion").len(), 1);
    assert_eq!(entra[0].path, format!("/{TENANT_B}/oauth2/v2.0/token"));

    let kv = w.vault_b.requests();
    assert_eq!(kv.len(), 2);
    assert!(
        kv[0].bearer().is_none(),
        "the challenge probe carries no token"
    );
    assert_eq!(tid_of(&kv[1]).as_deref(), Some(TENANT_B));
}

fn tid_of(r: &Recorded) -> Option<String> {
    tenant_bridge_testkit::trust::jwt::decode_unverified(r.bearer()?)?
        .get("tid")?
        .as_str()
        .map(str::to_string)
}

#[test]
fn tokens_never_cross_tenants() {
    let w = World::new();
    for path in [
        "/api/GetSecretSameTenant?key=TEST-SECRET-001",
        SECRET_B,
        &format!("/api/DownloadBlobSameTenant?container={SEED_CONTAINER}&blob={SEED_BLOB}"),
        &format!("/api/DownloadBlobCrossTenant?container={SEED_CONTAINER}&blob={SEED_BLOB}"),
    ] {
        assert_eq!(w.get(path).status, 200, "{path}");
    }
    let mut checked = 0;
    for o in w.outbound() {
        let expected = if o.url.contains(VAULT_A_HOST) || o.url.contains(&format!("/{ACCOUNT_A}/"))
        {
            TENANT_A
        } else if o.url.contains(VAULT_B_HOST) || o.url.contains(&format!("/{ACCOUNT_B}/")) {
            TENANT_B
        } else {
            continue;
        };
        if let Some(tid) = bearer_tid(&o) {
            assert_eq!(tid, expected, "{}", o.url);
            checked += 1;
        }
    }
    assert_eq!(checked, 4, "one authenticated call per endpoint");
}

#[test]
fn the_warm_path_is_one_round_trip() {
    let w = World::new();
    assert_eq!(w.get(SECRET_B).status, 200);
    let before = w.outbound().len();
    assert_eq!(w.get(SECRET_B).status, 200);
    let after = w.outbound();
    assert_eq!(after.len() - before, 1, "warm: only the vault call");
    assert!(after.last().unwrap().url.contains(VAULT_B_HOST));
}

#[test]
fn a_vault_of_another_tenant_gets_no_token() {
    // cross_keyvault_endpoint points at tenant A's vault by mistake.
    let w = World::builder()
        .var_with("cross_keyvault_endpoint", |e| e.vault_a.clone())
        .build();
    let r = w.get(SECRET_B);
    assert_eq!(
        (r.status, r.code().as_str()),
        (502, "keyvault-tenant-mismatch"),
        "{}",
        r.text()
    );
    let d = r.detail();
    assert!(
        d.contains(TENANT_A) && d.contains(TENANT_B) && d.contains("cross_tenant_id"),
        "{d}"
    );
    assert!(
        w.vault_a.requests().iter().all(|r| r.bearer().is_none()),
        "a token was sent to the wrong vault"
    );
    assert!(
        w.entra.requests().is_empty() && w.imds.requests().is_empty(),
        "no token was even minted"
    );
}

/// Runs the cross-tenant secret call and checks the diagnostic.
fn diagnose(w: &World, path: &str, status: u16, code: &str, must_contain: &[&str]) {
    let r = w.get(path);
    assert_eq!(
        (r.status, r.code().as_str()),
        (status, code),
        "{}",
        r.text()
    );
    let d = r.detail();
    for s in must_contain {
        assert!(d.contains(s), "detail lacks {s:?}: {d}");
    }
    w.assert_no_leak(&r, &["TenantB", "TenantA"]);
}

fn fic_fix_values() -> Vec<String> {
    vec![
        format!("'https://login.microsoftonline.com/{TENANT_A}/v2.0'"),
        format!("'{MI_OBJECT_ID}'"),
        format!("'{EXCHANGE_AUDIENCE}'"),
    ]
}

#[test]
fn app_not_provisioned_in_tenant_b_gives_the_consent_url() {
    let w = World::new();
    w.entra
        .directory()
        .remove_service_principal(TENANT_B, APP_ID);
    let consent = format!(
        "{}/{TENANT_B}/adminconsent?client_id={APP_ID}",
        w.entra.endpoint()
    );
    diagnose(&w, SECRET_B, 502, "entra-app-not-in-tenant", &[&consent]);
}

#[test]
fn federated_credential_mismatches_print_the_required_values() {
    let fix = fic_fix_values();
    let fix: Vec<&str> = fix.iter().map(String::as_str).collect();
    type BreakIt = Box<dyn Fn(&World)>;
    let cases: Vec<(&str, BreakIt)> = vec![
        (
            "subject (case differs)",
            Box::new(|w: &World| {
                w.entra
                    .directory()
                    .set_fic_subject(APP_ID, &MI_OBJECT_ID.to_uppercase())
            }),
        ),
        (
            "issuer",
            Box::new(|w: &World| {
                w.entra.directory().set_fic_issuer(
                    APP_ID,
                    &format!("https://login.microsoftonline.com/{TENANT_B}/v2.0"),
                )
            }),
        ),
        (
            "audience",
            Box::new(|w: &World| {
                w.entra
                    .directory()
                    .set_fic_audiences(APP_ID, vec!["api://AzureADTokenExchangeUSGov".into()])
            }),
        ),
        (
            "everything",
            Box::new(|w: &World| {
                w.entra.directory().set_federated_credentials(
                    APP_ID,
                    vec![FederatedCredential {
                        issuer: "https://example.com".into(),
                        subject: "x".into(),
                        audiences: vec!["y".into()],
                    }],
                )
            }),
        ),
    ];
    for (what, break_it) in cases {
        let w = World::new();
        break_it(&w);
        let r = w.get(SECRET_B);
        assert_eq!(
            (r.status, r.code().as_str()),
            (502, "entra-fic-mismatch"),
            "{what}: {}",
            r.text()
        );
        for s in &fix {
            assert!(
                r.detail().contains(s),
                "{what}: detail lacks {s}: {}",
                r.detail()
            );
        }
        w.assert_no_leak(&r, &["TenantB"]);
    }
    let w = World::new();
    w.entra
        .directory()
        .set_federated_credentials(APP_ID, vec![]);
    diagnose(&w, SECRET_B, 502, "entra-fic-missing", &fix);
}

#[test]
fn stale_assertion_is_reported_as_clock_skew() {
    let w = World::new();
    w.imds.set_token_lifetime(-3600);
    diagnose(&w, SECRET_B, 502, "entra-assertion-expired", &["clock"]);
}

#[test]
fn an_assertion_entra_rejects_is_not_reused() {
    // Entra's clock runs two hours off (a negative tolerance on nbf/exp): it calls IMDS's
    // fresh token expired (AADSTS700024).
    let w = World::new();
    w.entra.set_clock_skew(-7200);
    diagnose(&w, SECRET_B, 502, "entra-assertion-expired", &["clock"]);
    let fetched = w.imds.token_requests().len();
    assert!(fetched >= 1);
    // Once the clocks agree, the next request fetches a new assertion instead of replaying the
    // cached one Entra refused.
    w.entra.set_clock_skew(300);
    let r = w.get(SECRET_B);
    assert_eq!((r.status, r.text().as_str()), (200, "TenantB"));
    assert_eq!(
        w.imds.token_requests().len(),
        fetched + 1,
        "the refused assertion was dropped from the cache"
    );
}

#[test]
fn unknown_tenant_resource_principal_and_disabled_federation() {
    let ghost = "99999999-9999-4999-8999-999999999999";
    // The vault's challenge already exposes a wrong tenant id before any token is minted, so the
    // unknown tenant surfaces at Entra through the blob endpoint, which has no challenge.
    let w = World::builder().var("cross_tenant_id", Some(ghost)).build();
    let blob = format!("/api/DownloadBlobCrossTenant?container={SEED_CONTAINER}&blob={SEED_BLOB}");
    diagnose(
        &w,
        &blob,
        502,
        "entra-tenant-not-found",
        &[ghost, "cross_tenant_id"],
    );

    let w = World::new();
    w.entra
        .directory()
        .remove_resource_principal(TENANT_B, VAULT_RESOURCE);
    diagnose(
        &w,
        SECRET_B,
        502,
        "entra-resource-not-in-tenant",
        &[VAULT_RESOURCE, TENANT_B],
    );

    let w = World::new();
    w.entra.directory().disable_federation(TENANT_B);
    diagnose(&w, SECRET_B, 502, "entra-federation-disabled", &[TENANT_B]);
}

#[test]
fn key_vault_refusals_in_tenant_b() {
    let w = World::new();
    w.vault_b.set_readers(vec![]);
    diagnose(
        &w,
        SECRET_B,
        502,
        "keyvault-forbidden-rbac",
        &["Key Vault Secrets User", VAULT_B_HOST, APP_ID],
    );

    let w = World::new();
    w.vault_b.set_network(VaultNetwork::ConnectionNotApproved);
    diagnose(
        &w,
        SECRET_B,
        502,
        "keyvault-network",
        &["ForbiddenByConnection", "approve"],
    );

    let w = World::new();
    w.vault_b.set_network(VaultNetwork::FirewallBlocks);
    diagnose(
        &w,
        SECRET_B,
        502,
        "keyvault-network",
        &["ForbiddenByFirewall", "private", VAULT_B_HOST],
    );
}

#[test]
fn cross_tenant_needs_a_user_assigned_identity() {
    let w = World::builder().var("azure_client_id", None).build();
    let r = w.get(SECRET_B);
    assert_eq!(
        (r.status, r.code().as_str()),
        (500, "configuration-missing")
    );
    assert!(r.detail().contains("azure_client_id"));
}

/// Azurite has no RBAC or network rules, so these two refusals come from a server that answers
/// exactly as Storage does (status, `x-ms-error-code`, XML body).
#[test]
fn storage_refusals_in_tenant_b() {
    use std::sync::Arc;
    use tenant_bridge_testkit::fakes::http::{FakeServer, Reply};
    for (code, problem, hints) in [
        (
            "AuthorizationPermissionMismatch",
            "storage-forbidden-rbac",
            vec!["Storage Blob Data Reader", APP_ID],
        ),
        (
            "AuthorizationFailure",
            "storage-network",
            vec![
                "private endpoint",
                "approved",
                "privatelink.blob.core.windows.net",
            ],
        ),
    ] {
        let body = format!(
            "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>This request is not authorized to perform this operation.\nRequestId:1</Message></Error>"
        );
        let storage = rt().block_on(FakeServer::start(
            Some(shared().pki.rustls_server_config(&["127.0.0.1"])),
            Arc::new(move |_r: &Recorded| {
                let mut reply = Reply::new(403)
                    .header("x-ms-error-code", code)
                    .header("content-type", "application/xml");
                reply.body = body.clone().into_bytes();
                reply
            }),
        ));
        let origin = format!("https://127.0.0.1:{}", storage.port());
        let w = World::builder()
            .var("cross_blob_service_endpoint", Some(origin.as_str()))
            .var("cross_blob_service_path", Some("/tenantbstore"))
            .build();
        let r = w.get("/api/DownloadBlobCrossTenant?container=seed&blob=greeting.txt");
        assert_eq!(
            (r.status, r.code().as_str()),
            (502, problem),
            "{}",
            r.text()
        );
        for h in hints {
            assert!(
                r.detail().contains(h),
                "{code}: detail lacks {h}: {}",
                r.detail()
            );
        }
        let seen = storage.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path, "/tenantbstore/seed/greeting.txt");
        assert_eq!(tid_of(&seen[0]).as_deref(), Some(TENANT_B));
        w.assert_no_leak(&r, &[]);
    }
}

/// Spin 3.6.3 sends a streamed body without `content-length` as `transfer-encoding: chunked`;
/// the Azure SDKs and MSAL always send a length for the token POST, and so does the component:
/// what Entra received for every POST carries its exact length and is not chunked (the guest
/// cannot set `transfer-encoding` itself; the host chooses it on the wire).
#[test]
fn every_outbound_body_has_an_exact_content_length() {
    let w = World::new();
    assert_eq!(w.get(SECRET_B).status, 200);
    let posts = w
        .outbound()
        .into_iter()
        .filter(|r| r.method == "POST")
        .count();
    let received: Vec<_> = w
        .entra
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(received.len(), 1, "the exchange is one POST");
    assert_eq!(posts, received.len(), "every POST went to Entra");
    for seen in &received {
        assert_eq!(
            seen.header("content-length")
                .and_then(|l| l.parse::<usize>().ok()),
            Some(seen.body.len()),
            "{}: {:?}",
            seen.path,
            seen.headers
        );
        assert_eq!(seen.header("transfer-encoding"), None, "{}", seen.path);
    }
}
