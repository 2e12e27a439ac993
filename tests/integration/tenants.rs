//! Many target tenants from one deployment (profiles), through the compiled component: the
//! default profile (`cross_*`, named `b`) and profile slot 1 (`c`, tenant C) each read their own
//! tenant's vault and account, tokens never cross tenants, and a wrong or forbidden `tenant=`
//! is refused before any upstream call.

use tenant_bridge_testkit::world::suite::*;
use tenant_bridge_testkit::world::*;

const SECRET: &str = "/api/GetSecretCrossTenant?key=TEST-SECRET-001";

fn blob(tenant: Option<&str>) -> String {
    let mut p = format!("/api/DownloadBlobCrossTenant?container={SEED_CONTAINER}&blob={SEED_BLOB}");
    if let Some(t) = tenant {
        p.push_str(&format!("&tenant={t}"));
    }
    p
}

#[test]
fn each_profile_reads_its_own_tenant_and_tokens_never_cross() {
    let w = World::new();
    for (path, want) in [
        (format!("{SECRET}&tenant={PROFILE_B}"), "TenantB"),
        (format!("{SECRET}&tenant={PROFILE_C}"), "TenantC"),
        (format!("{SECRET}&TENANT=C"), "TenantC"),
        (SECRET.to_string(), "TenantB"),
    ] {
        let r = w.get(&path);
        assert_eq!((r.status, r.text().as_str()), (200, want), "{path}");
    }
    for (tenant, want) in [
        (Some(PROFILE_C), SEED_C),
        (Some(PROFILE_B), SEED_B),
        (None, SEED_B),
    ] {
        let r = w.get(&blob(tenant));
        assert_eq!((r.status, r.text()), (200, base64(want)), "{tenant:?}");
    }
    // Each vault only ever saw its own tenant's tokens.
    for (vault, tenant) in [(&w.vault_b, TENANT_B), (&w.vault_c, TENANT_C)] {
        let tids: Vec<Option<String>> = vault
            .requests()
            .iter()
            .filter_map(|r| r.bearer())
            .map(|t| {
                tenant_bridge_testkit::trust::jwt::decode_unverified(t)
                    .and_then(|c| c.get("tid").and_then(|v| v.as_str()).map(str::to_string))
            })
            .collect();
        assert!(!tids.is_empty(), "{tenant}'s vault was read with a token");
        assert!(
            tids.iter().all(|t| t.as_deref() == Some(tenant)),
            "{tenant}'s vault saw {tids:?}"
        );
    }
    assert!(
        w.vault_a.requests().iter().all(|r| r.bearer().is_none()),
        "no cross-tenant token reached tenant A's vault"
    );
    // Storage: each account path got its own tenant's token, and both accounts were read.
    let mut seen = Vec::new();
    for rec in w.outbound().iter().filter(|r| r.url.contains("/seed/")) {
        let (account, want) = if rec.url.contains(&format!("/{ACCOUNT_C}/")) {
            (ACCOUNT_C, TENANT_C)
        } else {
            assert!(rec.url.contains(&format!("/{ACCOUNT_B}/")), "{}", rec.url);
            (ACCOUNT_B, TENANT_B)
        };
        assert_eq!(bearer_tid(rec).as_deref(), Some(want), "{}", rec.url);
        seen.push(account);
    }
    assert!(
        seen.contains(&ACCOUNT_B) && seen.contains(&ACCOUNT_C),
        "both accounts were read: {seen:?}"
    );
    // One exchange per tenant and resource, at that tenant's authority.
    let exchanges: Vec<String> = w.entra.requests().iter().map(|r| r.path.clone()).collect();
    for tenant in [TENANT_B, TENANT_C] {
        let n = exchanges.iter().filter(|p| p.contains(tenant)).count();
        assert_eq!(n, 2, "vault + storage token in {tenant}: {exchanges:?}");
    }
    w.assert_no_leak(&w.get(SECRET), &[]);
}

#[test]
fn unknown_or_forbidden_profiles_are_refused_before_any_upstream_call() {
    let w = World::builder()
        .var("profile1_callers", Some("rotated"))
        .build();
    let before = w.outbound().len();
    let r = w.get(&format!("{SECRET}&tenant=nowhere"));
    assert_eq!(
        (r.status, r.code().as_str()),
        (404, "tenant-not-found"),
        "{}",
        r.text()
    );
    assert!(r.detail().contains("profile1_name"), "{}", r.detail());
    let r = w.get(&format!("{SECRET}&tenant=C"));
    assert_eq!(
        (r.status, r.code().as_str()),
        (403, "access-denied"),
        "{}",
        r.text()
    );
    assert!(r.detail().contains("profile1_callers"), "{}", r.detail());
    let r = w.get(&format!("{SECRET}&tenant=no%20spaces"));
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "invalid-tenant"),
        "{}",
        r.text()
    );
    let r = w.get("/api/GetSecretSameTenant?key=TEST-SECRET-001&tenant=c");
    assert_eq!((r.status, r.code().as_str()), (400, "unexpected-parameter"));
    assert_eq!(w.outbound().len(), before, "nothing went upstream");
    // The allowed caller gets tenant C.
    let r = w.request(
        "GET",
        &format!("{SECRET}&tenant=c"),
        &[("x-functions-key", ROTATED_KEY)],
    );
    assert_eq!((r.status, r.text().as_str()), (200, "TenantC"));
}

#[test]
fn a_profile_whose_vault_is_another_tenants_gets_no_token() {
    // Tenant C's slot points at tenant B's vault by mistake: the challenge names tenant B.
    let w = World::builder()
        .var_with("profile1_keyvault_endpoint", |e| e.vault_b.clone())
        .build();
    let r = w.get(&format!("{SECRET}&tenant=c"));
    assert_eq!(
        (r.status, r.code().as_str()),
        (502, "keyvault-tenant-mismatch"),
        "{}",
        r.text()
    );
    let d = r.detail();
    assert!(
        d.contains(TENANT_C) && d.contains("profile1_tenant_id"),
        "{d}"
    );
    assert!(w.vault_b.requests().iter().all(|r| r.bearer().is_none()));
}

#[test]
fn health_reports_each_profile_by_name_never_its_values() {
    let w = World::builder()
        .var("profile1_tenant_id", Some("not-a-guid"))
        .build();
    // Anonymous: not ready and a code, no profile names.
    let r = w.request("GET", "/api/healthz", &[]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(!r.text().contains("profile1"), "{}", r.text());
    // With a key: every profile by name.
    let r = w.get("/api/healthz");
    assert_eq!(r.status, 503, "{}", r.text());
    let body = r.text();
    assert!(body.contains("profile1_tenant_id"), "{body}");
    let report = r.json();
    assert_eq!(
        (
            &report["profiles"][0]["name"],
            &report["profiles"][0]["status"]
        ),
        (&serde_json::json!(PROFILE_B), &serde_json::json!("ok")),
        "{body}"
    );
    assert_eq!(
        (
            &report["profiles"][1]["name"],
            &report["profiles"][1]["status"]
        ),
        (&serde_json::json!(PROFILE_C), &serde_json::json!("error")),
        "{body}"
    );
    assert!(!body.contains("not-a-guid"), "a value leaked: {body}");
    assert!(!body.contains(TENANT_B), "a value leaked: {body}");
}

#[test]
fn app_not_consented_in_c_only_names_c_while_b_keeps_working() {
    let w = World::new();
    w.entra
        .directory()
        .remove_service_principal(TENANT_C, APP_ID);
    let r = w.get(&format!("{SECRET}&tenant=c"));
    assert_eq!(
        (r.status, r.code().as_str()),
        (502, "entra-app-not-in-tenant"),
        "{}",
        r.text()
    );
    let d = r.detail();
    let consent = format!(
        "{}/{TENANT_C}/adminconsent?client_id={APP_ID}",
        w.entra.endpoint()
    );
    assert!(d.contains(&consent) && d.contains("'c'"), "{d}");
    assert!(!d.contains(TENANT_B), "{d}");
    let r = w.get(&format!("{SECRET}&tenant=b"));
    assert_eq!((r.status, r.text().as_str()), (200, "TenantB"));
}

#[test]
fn role_missing_in_c_only_names_c_while_b_keeps_working_and_warm_is_one_call() {
    let w = World::new();
    w.vault_c.set_readers(vec![]);
    let r = w.get(&format!("{SECRET}&tenant=c"));
    assert_eq!(
        (r.status, r.code().as_str()),
        (502, "keyvault-forbidden-rbac"),
        "{}",
        r.text()
    );
    let d = r.detail();
    assert!(d.contains(VAULT_C_HOST), "{d}");
    assert!(d.contains(APP_SP_C) || d.contains(TENANT_C), "{d}");
    assert_eq!(w.get(&format!("{SECRET}&tenant={PROFILE_B}")).status, 200);
    // Warm, for either profile and either service: one upstream call.
    w.vault_c.set_readers(vec![APP_SP_C.into()]);
    for profile in [PROFILE_B, PROFILE_C] {
        let secret = format!("{SECRET}&tenant={profile}");
        for path in [secret.clone(), blob(Some(profile))] {
            assert_eq!(w.get(&path).status, 200, "cold {path}");
            let before = w.outbound().len();
            let r = w.get(&path);
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(w.outbound().len() - before, 1, "warm {path}");
        }
    }
}

/// Storage checks the token's tenant against the account's (World::storage holds each
/// account's tenant, as the real service does; Azurite alone would serve any tenant's token):
/// a profile whose blob path names another tenant's account is refused with Storage's 401
/// `InvalidAuthenticationInfo`, the component retries once with a fresh token and reports the
/// refusal, and the account's data never reaches the caller.
#[test]
fn an_account_of_another_tenant_refuses_the_token() {
    for (variable, path, account, token_tenant) in [
        (
            "cross_blob_service_path",
            blob(Some(PROFILE_B)),
            ACCOUNT_A,
            TENANT_B,
        ),
        (
            "profile1_blob_service_path",
            blob(Some(PROFILE_C)),
            ACCOUNT_B,
            TENANT_C,
        ),
        (
            "blob_service_path",
            format!("/api/DownloadBlobSameTenant?container={SEED_CONTAINER}&blob={SEED_BLOB}"),
            ACCOUNT_C,
            TENANT_A,
        ),
    ] {
        let w = World::builder()
            .var(variable, Some(&*format!("/{account}")))
            .build();
        let r = w.get(&path);
        assert_eq!(
            (r.status, r.code().as_str()),
            (502, "storage-token-refused"),
            "{variable}: {}",
            r.text()
        );
        assert!(
            r.detail().contains("InvalidAuthenticationInfo"),
            "{}",
            r.detail()
        );
        let refusals = w.storage.refusals();
        assert_eq!(refusals.len(), 2, "{variable}: one retry: {refusals:?}");
        for refusal in &refusals {
            assert_eq!(
                (
                    refusal.account.as_str(),
                    refusal.status,
                    refusal.code.as_str()
                ),
                (account, 401, "InvalidAuthenticationInfo"),
                "{variable}"
            );
            assert_eq!(refusal.tid, token_tenant, "{variable}");
        }
        assert_eq!(w.storage.passed(), 0, "{variable}: nothing reached Azurite");
    }
}

/// In its own tenant, a principal without a data role on the account gets Storage's 403
/// `AuthorizationPermissionMismatch`, named as the missing role on that account.
#[test]
fn no_data_role_on_the_account_is_named() {
    let w = World::new();
    w.storage.set_readers(ACCOUNT_C, vec![]);
    let r = w.get(&blob(Some(PROFILE_C)));
    assert_eq!(
        (r.status, r.code().as_str()),
        (502, "storage-forbidden-rbac"),
        "{}",
        r.text()
    );
    assert!(
        r.detail().contains("Storage Blob Data Reader") && r.detail().contains(ACCOUNT_C),
        "{}",
        r.detail()
    );
    assert_eq!(
        w.storage
            .refusals()
            .iter()
            .map(|f| (f.status, f.code.as_str(), f.tid.as_str()))
            .collect::<Vec<_>>(),
        [(403, "AuthorizationPermissionMismatch", TENANT_C)],
        "refused once: a missing role is not a refused token"
    );
    // Tenant B's account is untouched.
    assert_eq!(w.get(&blob(Some(PROFILE_B))).text(), base64(SEED_B));
}
