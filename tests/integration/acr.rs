//! Registry pull tokens (`GET /api/acr/token`, issue 15) through the compiled component, against
//! tenant B's login server: the strict fake of ACR's token service in front of the real
//! distribution registry (`docker-registry`), seeded at test time, and pulled from with the real
//! client (`skopeo`) exactly as the README documents: user `00000000-0000-0000-0000-000000000000`,
//! the returned password.

use serde_json::{json, Value};
use tenant_bridge_testkit::fakes::acr::{
    AcrNetwork, Role, RoleMode, TokenKind, ACR_RESOURCE, REFRESH_LIFETIME_SECS, TOKEN_USER,
};
use tenant_bridge_testkit::fakes::http::{Fault, Recorded};
use tenant_bridge_testkit::fakes::login_server::LoginServer;
use tenant_bridge_testkit::host::OutboundRecord;
use tenant_bridge_testkit::launchers::skopeo::{Creds, Skopeo};
use tenant_bridge_testkit::trust::jwt;
use tenant_bridge_testkit::world::seed_image;
use tenant_bridge_testkit::world::suite::*;
use tenant_bridge_testkit::world::*;

fn registry_world() -> World {
    World::builder()
        .registry()
        .var("retry_base_ms", Some("10"))
        .build()
}

fn login(w: &World) -> &LoginServer {
    w.registry.as_ref().expect("a world with a registry")
}

/// `/api/acr/token` for these repositories at the world's login server.
fn token_path(w: &World, repositories: &[&str]) -> String {
    let mut p = format!("/api/acr/token?registry={}", login(w).authority());
    for r in repositories {
        p.push_str(&format!("&repository={r}"));
    }
    p
}

fn image(w: &World, repository: &str) -> String {
    format!("{}/{repository}:{SEED_TAG}", login(w).authority())
}

fn skopeo(w: &World) -> Skopeo {
    Skopeo::new(&shared().pki.ca_pem(), &login(w).proxy().url())
}

/// The component's calls to the login server.
fn registry_calls(w: &World) -> Vec<OutboundRecord> {
    w.outbound()
        .into_iter()
        .filter(|r| r.url.contains(REGISTRY_HOST))
        .collect()
}

fn acr_requests(w: &World, path: &str) -> Vec<Recorded> {
    login(w)
        .acr
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

fn exchanges(w: &World) -> usize {
    acr_requests(w, "/oauth2/exchange").len()
}

/// Asserts no refresh token (whole, or its claims or signature) is in `text`.
fn assert_no_refresh_token(w: &World, text: &str) {
    for (kind, part) in w.registry_token_parts() {
        if kind == TokenKind::Refresh {
            assert!(!text.contains(&part), "a refresh token leaked: {text}");
        }
    }
}

fn problem(r: &Reply) -> (u16, String) {
    (r.status, r.code())
}

#[test]
fn a_minted_token_lets_skopeo_pull_the_allowed_repository_and_no_other() {
    let w = registry_world();
    let r = w.get(&token_path(&w, &[SEED_REPOSITORY]));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    let body = r.json();
    let password = body["password"].as_str().expect("password").to_string();
    let claims = jwt::decode_unverified(&password).expect("an ACR access token");
    assert_eq!(
        body,
        json!({
            "username": TOKEN_USER,
            "password": password,
            "expires_on": claims["exp"],
            "scope": format!("repository:{SEED_REPOSITORY}:pull"),
        })
    );
    assert_eq!(
        claims["access"],
        json!([{"type": "repository", "name": SEED_REPOSITORY, "actions": ["pull"]}])
    );
    assert_no_refresh_token(&w, &r.text());

    // The README's usage: user 00000000-…, the password (skopeo --creds, like docker login).
    let client = skopeo(&w);
    let creds = Creds::Password {
        user: TOKEN_USER,
        password: &password,
    };
    let run = client.inspect(&image(&w, SEED_REPOSITORY), creds);
    assert!(
        run.success,
        "skopeo: {}\n--- registry ---\n{}",
        run.stderr,
        login(&w).registry.log()
    );
    assert_eq!(
        run.json()["Digest"],
        seed_image(SEED_REPOSITORY).manifest_digest()
    );
    assert_eq!(
        run.json()["Layers"],
        json!([seed_image(SEED_REPOSITORY).layer_digest()])
    );
    // A whole pull: skopeo copies the manifest, the config and the layer (each checked against
    // its digest by skopeo), and they are byte for byte the image the registry was seeded with.
    let pulled = tempfile::tempdir().unwrap();
    let run = client.copy(&image(&w, SEED_REPOSITORY), creds, pulled.path());
    assert!(run.success, "skopeo copy: {}", run.stderr);
    let seeded = seed_image(SEED_REPOSITORY);
    let blob = |digest: &str| {
        std::fs::read(pulled.path().join(digest.trim_start_matches("sha256:"))).unwrap_or_default()
    };
    assert!(
        std::fs::read(pulled.path().join("manifest.json")).unwrap() == seeded.manifest,
        "the pulled manifest differs from the seeded one"
    );
    assert!(blob(&seeded.layer_digest()) == seeded.layer, "layer");
    assert!(
        blob(&tenant_bridge_testkit::fakes::oci::digest(&seeded.config)) == seeded.config,
        "config"
    );
    // skopeo presented the password with Basic authentication at the realm, as docker does.
    let realm = acr_requests(&w, "/oauth2/token");
    let basic: Vec<&Recorded> = realm.iter().filter(|r| r.method == "GET").collect();
    assert!(!basic.is_empty(), "skopeo asked the realm for a token");
    for r in &basic {
        assert!(
            r.header("authorization")
                .is_some_and(|a| a.starts_with("Basic ")),
            "{:?}",
            r.headers
        );
        assert_eq!(r.query("account"), Some(TOKEN_USER));
        assert_eq!(r.status, Some(200));
    }

    // The same credentials are refused for another repository, by the registry.
    let run = client.inspect(&image(&w, OTHER_REPOSITORY), creds);
    assert!(!run.success, "{}", run.stdout);
    assert!(
        run.stderr
            .contains("requested access to the resource is denied"),
        "{}",
        run.stderr
    );
    // …which exists and is readable with a token that covers it: the refusal is the scope.
    let other = login(&w)
        .acr
        .mint_access_token(APP_SP_B, &[(OTHER_REPOSITORY, "pull")]);
    let run = client.inspect(
        &image(&w, OTHER_REPOSITORY),
        Creds::Password {
            user: TOKEN_USER,
            password: &other,
        },
    );
    assert!(run.success, "{}", run.stderr);
    assert_eq!(
        run.json()["Digest"],
        seed_image(OTHER_REPOSITORY).manifest_digest()
    );

    // Every skopeo connection went through the proxy to the login server's name and port.
    let tunnels = login(&w).proxy().tunnels();
    assert!(!tunnels.is_empty());
    assert!(
        tunnels.iter().all(|t| *t == login(&w).authority()),
        "{tunnels:?}"
    );
}

#[test]
fn the_password_also_works_as_a_bearer_token() {
    let w = registry_world();
    let r = w.get(&token_path(&w, &[SEED_REPOSITORY]));
    assert_eq!(r.status, 200, "{}", r.text());
    let password = r.json()["password"].as_str().unwrap().to_string();
    let run = skopeo(&w).inspect(&image(&w, SEED_REPOSITORY), Creds::Bearer(&password));
    assert!(run.success, "{}", run.stderr);
    let run = skopeo(&w).inspect(&image(&w, OTHER_REPOSITORY), Creds::Bearer(&password));
    assert!(!run.success);
    // The registry never takes a refresh token as an access token.
    let refresh = login(&w)
        .acr
        .issued()
        .into_iter()
        .find(|i| i.kind == TokenKind::Refresh)
        .expect("the exchange issued a refresh token");
    let run = skopeo(&w).inspect(&image(&w, SEED_REPOSITORY), Creds::Bearer(&refresh.token));
    assert!(!run.success, "a refresh token pulled as a bearer token");
}

#[test]
fn one_token_covers_several_repositories() {
    let w = World::builder()
        .registry()
        .var("cross_tenant_repositories", Some("base/*, other/*"))
        .build();
    let r = w.get(&token_path(&w, &[SEED_REPOSITORY, OTHER_REPOSITORY]));
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(
        body["scope"],
        format!("repository:{SEED_REPOSITORY}:pull repository:{OTHER_REPOSITORY}:pull")
    );
    let password = body["password"].as_str().unwrap();
    for repository in [SEED_REPOSITORY, OTHER_REPOSITORY] {
        let run = skopeo(&w).inspect(
            &image(&w, repository),
            Creds::Password {
                user: TOKEN_USER,
                password,
            },
        );
        assert!(run.success, "{repository}: {}", run.stderr);
    }
}

#[test]
fn the_flow_is_entra_then_exchange_then_a_pull_only_token() {
    let w = registry_world();
    assert_eq!(w.get(&token_path(&w, &[SEED_REPOSITORY])).status, 200);
    // Entra: the app's token for the registry audience in tenant B.
    let entra = w.entra.requests();
    assert_eq!(entra.len(), 1);
    assert!(entra[0].path.starts_with(&format!("/{TENANT_B}/")));
    let form = entra[0].form();
    assert!(form.contains(&("scope".into(), format!("{ACR_RESOURCE}/.default"))));
    // The exchange: tenant B's token, the service, the tenant.
    let ex = acr_requests(&w, "/oauth2/exchange");
    assert_eq!(ex.len(), 1);
    let form = ex[0].form();
    let value = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(value("grant_type").as_deref(), Some("access_token"));
    assert_eq!(value("service").as_deref(), Some(REGISTRY_HOST));
    assert_eq!(value("tenant").as_deref(), Some(TENANT_B));
    let aad = jwt::decode_unverified(&value("access_token").unwrap()).unwrap();
    assert_eq!(
        (aad["tid"].as_str(), aad["aud"].as_str()),
        (Some(TENANT_B), Some(ACR_RESOURCE))
    );
    // The token request: pull only, with the refresh token from the exchange.
    let tok = acr_requests(&w, "/oauth2/token");
    assert_eq!(tok.len(), 1);
    let form = tok[0].form();
    let value = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(value("grant_type").as_deref(), Some("refresh_token"));
    assert_eq!(value("service").as_deref(), Some(REGISTRY_HOST));
    assert_eq!(
        value("scope"),
        Some(format!("repository:{SEED_REPOSITORY}:pull"))
    );
    let refresh: Vec<String> = login(&w)
        .acr
        .issued()
        .into_iter()
        .filter(|i| i.kind == TokenKind::Refresh)
        .map(|i| i.token)
        .collect();
    assert_eq!(value("refresh_token"), refresh.first().cloned());
    // Exact lengths: Spin sends chunked bodies unless told the length.
    for r in ex.iter().chain(&tok) {
        assert_eq!(
            r.header("content-length"),
            Some(r.body.len().to_string().as_str())
        );
    }
}

#[test]
fn a_warm_token_request_makes_one_upstream_call() {
    let w = registry_world();
    let path = token_path(&w, &[SEED_REPOSITORY]);
    assert_eq!(w.get(&path).status, 200);
    let before = w.outbound().len();
    let exchanges_before = exchanges(&w);
    w.host.kv().reset_ops();
    let r = w.get(&path);
    assert_eq!(r.status, 200, "{}", r.text());
    let ops = w.host.kv().ops();
    assert_eq!(
        (ops.reads, ops.writes),
        (1, 0),
        "one key-value read, no write"
    );
    let calls = &w.outbound()[before..];
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].method, "POST");
    assert!(calls[0].url.ends_with("/oauth2/token"), "{}", calls[0].url);
    assert_eq!(
        exchanges(&w),
        exchanges_before,
        "the refresh token was reused"
    );
    assert_eq!(w.entra.requests().len(), 1);
    assert_no_refresh_token(&w, &r.text());
}

/// The cache entry of the ACR refresh token.
fn refresh_entry(w: &World) -> Value {
    let kv = w.host.kv();
    let key = kv
        .keys("default")
        .into_iter()
        .find(|k| k.contains("|acr|") && !k.contains("|ticket|"))
        .expect("a cached refresh token");
    serde_json::from_slice(&kv.get("default", &key).unwrap()).unwrap()
}

#[test]
fn the_refresh_token_lives_as_long_as_its_exp_says() {
    let w = registry_world();
    let path = token_path(&w, &[SEED_REPOSITORY]);
    // Three hours: cached with the token's own exp, reused.
    assert_eq!(w.get(&path).status, 200);
    let issued = login(&w).acr.issued();
    let refresh = issued
        .iter()
        .find(|i| i.kind == TokenKind::Refresh)
        .unwrap();
    let exp = jwt::decode_unverified(&refresh.token).unwrap()["exp"].clone();
    assert_eq!(refresh_entry(&w)["expires_on"], exp);
    let lifetime = exp.as_i64().unwrap() - jwt::now();
    assert!((REFRESH_LIFETIME_SECS - 5..=REFRESH_LIFETIME_SECS).contains(&lifetime));
    assert_eq!(w.get(&path).status, 200);
    assert_eq!(exchanges(&w), 1);

    // A registry that issues refresh tokens for 302 s: usable for 2 s (300 s margin), then
    // exchanged again — the component read the lifetime, it did not assume one.
    login(&w).acr.set_refresh_lifetime(302);
    w.host
        .kv()
        .set("default", &cache_key_of_refresh(&w), b"{}".to_vec());
    assert_eq!(w.get(&path).status, 200);
    assert_eq!(exchanges(&w), 2);
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(w.get(&path).status, 200);
    assert_eq!(
        exchanges(&w),
        3,
        "the refresh token near its exp was replaced"
    );
    assert_eq!(w.entra.requests().len(), 1, "the Entra token stayed cached");
}

fn cache_key_of_refresh(w: &World) -> String {
    w.host
        .kv()
        .keys("default")
        .into_iter()
        .find(|k| k.contains("|acr|") && !k.contains("|ticket|"))
        .expect("a cached refresh token")
}

#[test]
fn the_refresh_token_never_leaves_the_gateway() {
    let w = World::builder()
        .registry()
        .var("cross_tenant_repositories", Some("base/*, other/*"))
        .build();
    let mut bodies = Vec::new();
    for repos in [
        vec![SEED_REPOSITORY],
        vec![SEED_REPOSITORY],
        vec![OTHER_REPOSITORY, SEED_REPOSITORY],
    ] {
        let r = w.get(&token_path(&w, &repos));
        assert_eq!(r.status, 200, "{}", r.text());
        bodies.push(r.text());
    }
    // A refusal carries no token either.
    login(&w).acr.set_network(AcrNetwork::FirewallBlocks);
    w.host
        .kv()
        .set("default", &cache_key_of_refresh(&w), b"{}".to_vec());
    let r = w.get(&token_path(&w, &[SEED_REPOSITORY]));
    assert_eq!(problem(&r), (502, "registry-network".into()));
    bodies.push(r.text());
    let parts = w.registry_token_parts();
    assert!(parts.iter().any(|(k, _)| *k == TokenKind::Refresh));
    for body in &bodies {
        assert_no_refresh_token(&w, body);
    }
    // The log scanner (World's drop) checks every issued token against the whole log.
}

#[test]
fn no_role_on_the_registry_is_named_at_the_exchange() {
    let w = registry_world();
    login(&w).acr.set_grants(vec![]);
    let r = w.get(&token_path(&w, &[SEED_REPOSITORY]));
    assert_eq!(
        problem(&r),
        (502, "registry-exchange-refused".into()),
        "{}",
        r.text()
    );
    let detail = r.detail();
    for want in [
        "AcrPull",
        "Container Registry Repository Reader",
        APP_SP_B,
        "HTTP 401",
        "UNAUTHORIZED",
        REGISTRY_HOST,
    ] {
        assert!(detail.contains(want), "{want}: {detail}");
    }
    assert_eq!(exchanges(&w), 1, "a refusal is not retried");
    assert!(acr_requests(&w, "/oauth2/token").is_empty());
}

#[test]
fn acrpull_counts_for_nothing_on_an_abac_registry() {
    let w = registry_world();
    login(&w).acr.set_role_mode(RoleMode::Abac);
    let r = w.get(&token_path(&w, &[SEED_REPOSITORY]));
    assert_eq!(
        problem(&r),
        (502, "registry-exchange-refused".into()),
        "{}",
        r.text()
    );
    assert!(
        r.detail().contains("Container Registry Repository Reader"),
        "{}",
        r.detail()
    );
    // With the ABAC role it works.
    login(&w).acr.set_grants(vec![(
        APP_SP_B.into(),
        Role::RepositoryReader(vec!["base/*".into()]),
    )]);
    let r = w.get(&token_path(&w, &[SEED_REPOSITORY]));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_registry_that_refuses_the_audience_is_named() {
    let w = registry_world();
    // A registry that takes only ARM-audience tokens would refuse the registry audience.
    login(&w)
        .acr
        .set_accepted_audiences(vec!["https://management.azure.com/".into()]);
    let r = w.get(&token_path(&w, &[SEED_REPOSITORY]));
    assert_eq!(
        problem(&r),
        (502, "registry-exchange-refused".into()),
        "{}",
        r.text()
    );
    assert!(
        r.detail()
            .contains("audience https://containerregistry.azure.net"),
        "{}",
        r.detail()
    );
}

#[test]
fn a_profile_of_another_tenant_is_refused_by_the_registry() {
    // Tenant C's profile names tenant B's registry: its token is tenant C's, which the
    // registry does not accept.
    let w = World::builder()
        .registry()
        .var_with("profile1_registries", |e| e.registry.clone().unwrap())
        .var("profile1_repositories", Some("base/*"))
        .build();
    let r = w.get(&format!(
        "{}&tenant={PROFILE_C}",
        token_path(&w, &[SEED_REPOSITORY])
    ));
    assert_eq!(
        problem(&r),
        (502, "registry-exchange-refused".into()),
        "{}",
        r.text()
    );
    let ex = acr_requests(&w, "/oauth2/exchange");
    assert_eq!(ex.len(), 1);
    let form = ex[0].form();
    let aad = form.iter().find(|(k, _)| k == "access_token").unwrap();
    assert_eq!(
        jwt::decode_unverified(&aad.1).unwrap()["tid"],
        json!(TENANT_C)
    );
    assert!(r.detail().contains(APP_SP_C), "{}", r.detail());
}

#[test]
fn a_narrower_grant_is_a_403_naming_what_is_missing() {
    let w = World::builder()
        .registry()
        .var("cross_tenant_repositories", Some("base/*"))
        .build();
    login(&w).acr.set_role_mode(RoleMode::Abac);
    login(&w).acr.set_grants(vec![(
        APP_SP_B.into(),
        Role::RepositoryReader(vec![SEED_REPOSITORY.into()]),
    )]);
    let r = w.get(&token_path(&w, &[SEED_REPOSITORY, "base/tools"]));
    assert_eq!(
        problem(&r),
        (403, "registry-repository-denied".into()),
        "{}",
        r.text()
    );
    assert!(
        r.detail().contains("no pull granted for base/tools"),
        "{}",
        r.detail()
    );
    assert!(r.detail().contains("Container Registry Repository Reader"));
    // The registry did answer with a (narrower) token; it is not passed on.
    let tok = acr_requests(&w, "/oauth2/token");
    assert_eq!(tok.last().and_then(|t| t.status), Some(200));
    let last_access = login(&w)
        .acr
        .issued()
        .into_iter()
        .rfind(|i| i.kind == TokenKind::Access)
        .unwrap();
    assert!(!r.text().contains(&last_access.token));
}

#[test]
fn a_repository_the_role_does_not_cover_is_a_403() {
    let w = registry_world();
    login(&w).acr.set_role_mode(RoleMode::Abac);
    login(&w).acr.set_grants(vec![(
        APP_SP_B.into(),
        Role::RepositoryReader(vec!["other/*".into()]),
    )]);
    let r = w.get(&token_path(&w, &[SEED_REPOSITORY]));
    assert_eq!(
        problem(&r),
        (403, "registry-repository-denied".into()),
        "{}",
        r.text()
    );
    assert!(
        r.detail()
            .contains(&format!("no pull granted for {SEED_REPOSITORY}")),
        "{}",
        r.detail()
    );
}

#[test]
fn a_refused_refresh_token_is_exchanged_again_once() {
    let w = registry_world();
    let path = token_path(&w, &[SEED_REPOSITORY]);
    assert_eq!(w.get(&path).status, 200);
    // Refused once: dropped, exchanged again, and the retry succeeds.
    login(&w).acr.refuse_refresh_grants(1);
    let r = w.get(&path);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(exchanges(&w), 2);
    // Refused again after the new exchange: the refusal is the answer.
    login(&w).acr.refuse_refresh_grants(2);
    let r = w.get(&path);
    assert_eq!(
        problem(&r),
        (502, "registry-token-refused".into()),
        "{}",
        r.text()
    );
    assert!(r.detail().contains("UNAUTHORIZED"), "{}", r.detail());
    assert_eq!(exchanges(&w), 3);
}

#[test]
fn a_role_removed_after_the_exchange_is_named_at_the_next_exchange() {
    let w = registry_world();
    let path = token_path(&w, &[SEED_REPOSITORY]);
    assert_eq!(w.get(&path).status, 200);
    login(&w).acr.set_grants(vec![]);
    let r = w.get(&path);
    assert_eq!(
        problem(&r),
        (502, "registry-exchange-refused".into()),
        "{}",
        r.text()
    );
    assert!(r.detail().contains("AcrPull"));
}

#[test]
fn an_entra_token_the_exchange_refused_is_dropped() {
    let w = registry_world();
    let path = token_path(&w, &[SEED_REPOSITORY]);
    login(&w).acr.set_grants(vec![]);
    let r = w.get(&path);
    assert_eq!(
        problem(&r),
        (502, "registry-exchange-refused".into()),
        "{}",
        r.text()
    );
    assert_eq!(w.entra.requests().len(), 1);
    // The role is granted: the next request exchanges a new Entra token, not the refused one.
    login(&w)
        .acr
        .set_grants(vec![(APP_SP_B.into(), Role::AcrPull)]);
    let r = w.get(&path);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(w.entra.requests().len(), 2, "the refused token was reused");
    let ex = acr_requests(&w, "/oauth2/exchange");
    let presented = |i: usize| {
        ex[i]
            .form()
            .into_iter()
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v)
    };
    assert_ne!(presented(0), presented(1));
}

#[test]
fn the_registry_network_rules_are_named() {
    let w = registry_world();
    login(&w).acr.set_network(AcrNetwork::FirewallBlocks);
    let r = w.get(&token_path(&w, &[SEED_REPOSITORY]));
    assert_eq!(
        problem(&r),
        (502, "registry-network".into()),
        "{}",
        r.text()
    );
    for want in [
        "private endpoint",
        "privatelink.azurecr.io",
        REGISTRY_HOST,
        "DENIED",
    ] {
        assert!(r.detail().contains(want), "{want}: {}", r.detail());
    }
    assert_eq!(exchanges(&w), 1, "a network refusal is not retried");
}

#[test]
fn throttling_is_retried_then_a_503_with_retry_after() {
    let w = registry_world();
    let throttled = Fault::json(
        429,
        &json!({"errors": [{"code": "TOOMANYREQUESTS", "message": "too many requests"}]}),
    );
    // Once: retried, then served.
    login(&w).acr.push_fault(throttled.clone());
    let r = w.get(&token_path(&w, &[SEED_REPOSITORY]));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(exchanges(&w), 2);
    // Persisting: 503 with Retry-After after the first try and 4 retries.
    w.host
        .kv()
        .set("default", &cache_key_of_refresh(&w), b"{}".to_vec());
    login(&w).acr.clear();
    for _ in 0..5 {
        login(&w).acr.push_fault(throttled.clone());
    }
    let r = w.get(&token_path(&w, &[SEED_REPOSITORY]));
    assert_eq!(
        problem(&r),
        (503, "upstream-throttled".into()),
        "{}",
        r.text()
    );
    assert!(r.header("retry-after").is_some());
    assert_eq!(exchanges(&w), 5);
}

#[test]
fn registry_outages_are_retried_then_a_503() {
    let w = registry_world();
    let outage = Fault::Status {
        status: 503,
        headers: vec![],
        body: String::new(),
    };
    login(&w).acr.push_fault(outage.clone());
    let r = w.get(&token_path(&w, &[SEED_REPOSITORY]));
    assert_eq!(r.status, 200, "{}", r.text());
    // The token request fails for good: the refresh token stays cached, the answer is a 503.
    for _ in 0..5 {
        login(&w).acr.push_fault(outage.clone());
    }
    let r = w.get(&token_path(&w, &[SEED_REPOSITORY]));
    assert_eq!(
        problem(&r),
        (503, "registry-unavailable".into()),
        "{}",
        r.text()
    );
    assert!(r.header("retry-after").is_some());
    assert!(r.detail().contains("HTTP 503"), "{}", r.detail());
}

#[test]
fn entra_errors_are_reported_as_for_the_other_services() {
    let w = registry_world();
    w.entra.directory().update(|d| {
        d.resource_principals
            .retain(|(t, r)| !(t == TENANT_B && r == ACR_RESOURCE))
    });
    let r = w.get(&token_path(&w, &[SEED_REPOSITORY]));
    assert_eq!(
        problem(&r),
        (502, "entra-resource-not-in-tenant".into()),
        "{}",
        r.text()
    );
    assert!(
        login(&w).acr.requests().is_empty(),
        "nothing reached the registry"
    );
}

#[test]
fn bad_registry_and_repository_names_are_400_before_any_upstream_call() {
    let w = registry_world();
    let at = login(&w).authority();
    let cases: Vec<(String, &str)> = vec![
        (format!("registry={at}"), "missing-parameter"),
        ("repository=base/alpine".into(), "missing-parameter"),
        (
            "registry=&repository=base/alpine".into(),
            "invalid-registry-name",
        ),
        (
            "registry=https://hub.azurecr.io&repository=base/alpine".into(),
            "invalid-registry-name",
        ),
        (
            "registry=hub.azurecr.io/v2&repository=base/alpine".into(),
            "invalid-registry-name",
        ),
        (
            "registry=user@hub.azurecr.io&repository=base/alpine".into(),
            "invalid-registry-name",
        ),
        (
            "registry=localhost&repository=base/alpine".into(),
            "invalid-registry-name",
        ),
        (
            "registry=hub.azurecr.io:99999&repository=base/alpine".into(),
            "invalid-registry-name",
        ),
        (
            format!("registry={at}&repository=Base/Alpine"),
            "invalid-repository-name",
        ),
        (
            format!("registry={at}&repository=base//alpine"),
            "invalid-repository-name",
        ),
        (
            format!("registry={at}&repository=base/alpine/"),
            "invalid-repository-name",
        ),
        (
            format!("registry={at}&repository=-base"),
            "invalid-repository-name",
        ),
        (
            format!("registry={at}&repository=base/alpine:latest"),
            "invalid-repository-name",
        ),
        (
            format!("registry={at}&repository=base/alpine%2A"),
            "invalid-repository-name",
        ),
        (
            format!("registry={at}&repository=base/../other"),
            "invalid-repository-name",
        ),
        (
            format!("registry={at}&repository=base/a___b"),
            "invalid-repository-name",
        ),
        (
            format!("registry={at}&repository={}", "a".repeat(256)),
            "invalid-repository-name",
        ),
    ];
    for (query, code) in &cases {
        let r = w.get(&format!("/api/acr/token?{query}"));
        assert_eq!(
            problem(&r),
            (400, code.to_string()),
            "{query}: {}",
            r.text()
        );
    }
    let many: String = (0..17).map(|i| format!("&repository=base/r{i}")).collect();
    let r = w.get(&format!("/api/acr/token?registry={at}{many}"));
    assert_eq!(problem(&r), (400, "too-many-repositories".into()));
    assert!(w.outbound().is_empty(), "{:?}", w.outbound());
    assert!(login(&w).acr.requests().is_empty());
}

#[test]
fn callers_profiles_registries_and_repositories_not_allowed_are_403_before_any_upstream_call() {
    let w = World::builder()
        .registry()
        .var("cross_tenant_repositories", Some("base/*, rotated=other/*"))
        .var("profile1_callers", Some("rotated"))
        .var_with("profile1_registries", |e| e.registry.clone().unwrap())
        .var("profile1_repositories", Some("base/*"))
        .build();
    let at = login(&w).authority();
    // A registry the profile does not list (same suffix, same host with another port).
    for other in [
        "otherhub.azurecr.io".to_string(),
        format!("{REGISTRY_HOST}:8443"),
    ] {
        let r = w.get(&format!(
            "/api/acr/token?registry={other}&repository=base/alpine"
        ));
        assert_eq!(problem(&r), (403, "access-denied".into()), "{}", r.text());
        assert!(
            r.detail().contains("cross_tenant_registries"),
            "{}",
            r.detail()
        );
    }
    // A repository outside the caller's rules.
    let r = w.get(&format!(
        "/api/acr/token?registry={at}&repository={OTHER_REPOSITORY}"
    ));
    assert_eq!(problem(&r), (403, "access-denied".into()));
    assert!(
        r.detail().contains("cross_tenant_repositories"),
        "{}",
        r.detail()
    );
    assert!(r.detail().contains("caller 'tests'"), "{}", r.detail());
    // One forbidden repository spoils the request.
    let r = w.get(&format!(
        "/api/acr/token?registry={at}&repository=base/alpine&repository={OTHER_REPOSITORY}"
    ));
    assert_eq!(problem(&r), (403, "access-denied".into()));
    // A profile this caller may not use, and one that does not exist.
    let r = w.get(&format!(
        "/api/acr/token?registry={at}&repository=base/alpine&tenant=c"
    ));
    assert_eq!(problem(&r), (403, "access-denied".into()));
    assert!(r.detail().contains("profile1_callers"), "{}", r.detail());
    let r = w.get(&format!(
        "/api/acr/token?registry={at}&repository=base/alpine&tenant=nowhere"
    ));
    assert_eq!(problem(&r), (404, "tenant-not-found".into()));
    // No key, wrong key.
    let r = w.request("GET", &token_path(&w, &[SEED_REPOSITORY]), &[]);
    assert_eq!(r.status, 401);
    let r = w.request(
        "GET",
        &token_path(&w, &[SEED_REPOSITORY]),
        &[("x-functions-key", "not-a-key-of-this-world")],
    );
    assert_eq!(r.status, 401);
    assert!(w.outbound().is_empty(), "{:?}", w.outbound());
    assert!(login(&w).acr.requests().is_empty());
    // The rules do let the other caller pull other/*.
    let r = w.request(
        "GET",
        &token_path(&w, &[OTHER_REPOSITORY]),
        &[("x-functions-key", ROTATED_KEY)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn only_pull_is_ever_asked_for() {
    let w = registry_world();
    assert_eq!(w.get(&token_path(&w, &[SEED_REPOSITORY])).status, 200);
    // One access token, asked for with exactly the one pull scope.
    let tokens = acr_requests(&w, "/oauth2/token");
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let scopes: Vec<String> = tokens[0]
        .form()
        .into_iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(scopes, [format!("repository:{SEED_REPOSITORY}:pull")]);
    // The exchange asks for no scope at all: what it yields is a refresh token.
    let exchanges = acr_requests(&w, "/oauth2/exchange");
    assert_eq!(exchanges.len(), 1, "{exchanges:?}");
    let mut fields: Vec<String> = exchanges[0].form().into_iter().map(|(k, _)| k).collect();
    fields.sort();
    assert_eq!(fields, ["access_token", "grant_type", "service", "tenant"]);
    // A push scope in the query is just a bad repository name.
    let r = w.get(&format!(
        "/api/acr/token?registry={}&repository=base/alpine:push",
        login(&w).authority()
    ));
    assert_eq!(problem(&r), (400, "invalid-repository-name".into()));
}

#[test]
fn registry_calls_go_to_the_login_server_only() {
    let w = registry_world();
    assert_eq!(w.get(&token_path(&w, &[SEED_REPOSITORY])).status, 200);
    let calls = registry_calls(&w);
    assert_eq!(calls.len(), 2);
    for c in &calls {
        assert!(
            c.url
                .starts_with(&format!("{}/oauth2/", login(&w).origin())),
            "{}",
            c.url
        );
        assert!(!c.denied);
    }
}
