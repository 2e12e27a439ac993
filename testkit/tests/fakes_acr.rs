//! The fake ACR token service checks what ACR checks and answers with ACR's shapes, and the real
//! registry behind the same login server accepts exactly the access tokens it issues.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use tenant_bridge_testkit::fakes::acr::{
    AcrConfig, AcrNetwork, Role, RoleMode, TokenKind, ACR_RESOURCE, TOKEN_USER,
};
use tenant_bridge_testkit::fakes::login_server::LoginServer;
use tenant_bridge_testkit::fakes::oci::Image;
use tenant_bridge_testkit::trust::jwt::{self, now, Signer};
use tenant_bridge_testkit::trust::pki::TestPki;

const TENANT: &str = "bbbbbbbb-0000-4000-8000-00000000000b";
const OTHER_TENANT: &str = "aaaaaaaa-0000-4000-8000-00000000000a";
const PULLER: &str = "5b5b5b5b-0000-4000-8000-0000000000b5";
const HOST: &str = "hub.azurecr.io";
const REPO: &str = "base/alpine";

struct Env {
    login: LoginServer,
    signer: Signer,
    client: reqwest::Client,
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn env() -> Env {
    let pki = TestPki::new();
    let signer = Signer::new("entra-b");
    let mut cfg = AcrConfig::new(HOST, TENANT, vec![signer.verifier()]);
    cfg.grants = vec![(PULLER.into(), Role::AcrPull)];
    let login = LoginServer::start(&pki, cfg).await;
    login
        .seed(REPO, "v1", &Image::new("hello.txt", b"hello\n"))
        .await;
    let client = login.client();
    Env {
        login,
        signer,
        client,
    }
}

fn entra_claims() -> Value {
    let t = now();
    json!({
        "aud": ACR_RESOURCE,
        "iss": format!("https://sts.windows.net/{TENANT}/"),
        "tid": TENANT,
        "oid": PULLER,
        "iat": t - 300, "nbf": t - 300, "exp": t + 3600,
    })
}

impl Env {
    fn entra_token(&self, patch: Value) -> String {
        let mut c = entra_claims();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        self.signer.sign(&c)
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let r = self
            .client
            .post(format!("{}{path}", self.login.origin()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn exchange(&self, token: &str) -> (u16, Value) {
        self.post(
            "/oauth2/exchange",
            &[
                ("grant_type", "access_token"),
                ("service", HOST),
                ("tenant", TENANT),
                ("access_token", token),
            ],
        )
        .await
    }

    async fn refresh_token(&self) -> String {
        let (status, body) = self.exchange(&self.entra_token(json!({}))).await;
        assert_eq!(status, 200, "{body}");
        body["refresh_token"].as_str().unwrap().to_string()
    }

    async fn token(&self, refresh: &str, scope: &str) -> (u16, Value) {
        self.post(
            "/oauth2/token",
            &[
                ("grant_type", "refresh_token"),
                ("service", HOST),
                ("scope", scope),
                ("refresh_token", refresh),
            ],
        )
        .await
    }

    async fn basic(&self, user: &str, password: &str, scope: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}/oauth2/token", self.login.origin()))
            .query(&[("account", user), ("service", HOST), ("scope", scope)])
            .header(
                "authorization",
                format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))),
            )
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The registry's status for the manifest with `token` as bearer.
    async fn manifest(&self, repository: &str, token: &str) -> u16 {
        self.client
            .get(format!(
                "{}/v2/{repository}/manifests/v1",
                self.login.origin()
            ))
            .bearer_auth(token)
            .header(
                "accept",
                tenant_bridge_testkit::fakes::oci::MANIFEST_MEDIA_TYPE,
            )
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

fn code(body: &Value) -> &str {
    body["errors"][0]["code"].as_str().unwrap_or_default()
}

#[test]
fn the_exchange_checks_what_acr_checks() {
    rt().block_on(async {
        let e = env().await;
        let ok = e.entra_token(json!({}));
        let (status, body) = e.exchange(&ok).await;
        assert_eq!(status, 200, "{body}");
        let refresh = body["refresh_token"].as_str().unwrap();
        let claims = jwt::decode_unverified(refresh).unwrap();
        assert_eq!(claims["grant_type"], "refresh_token");
        assert_eq!(claims["aud"], HOST);
        assert_eq!(claims["sub"], PULLER);
        assert_eq!(claims["iss"], "Azure Container Registry");
        let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
        assert_eq!(lifetime, 3 * 3600);

        let forged = Signer::new("entra-b").sign(&entra_claims());
        let t = now();
        for (why, token) in [
            ("forged signature", forged),
            ("expired", e.entra_token(json!({"exp": t - 400}))),
            ("not yet valid", e.entra_token(json!({"nbf": t + 400}))),
            ("vault audience", e.entra_token(json!({"aud": "https://vault.azure.net"}))),
            ("ARM audience", e.entra_token(json!({"aud": "https://management.azure.com/"}))),
            (
                "another tenant",
                e.entra_token(json!({"tid": OTHER_TENANT, "iss": format!("https://sts.windows.net/{OTHER_TENANT}/")})),
            ),
            ("issuer of another tenant", e.entra_token(json!({"iss": format!("https://sts.windows.net/{OTHER_TENANT}/")}))),
            ("no role", e.entra_token(json!({"oid": "00000000-1111-4000-8000-000000000000"}))),
            ("not a JWT", "opaque".to_string()),
        ] {
            let (status, body) = e.exchange(&token).await;
            assert_eq!((status, code(&body)), (401, "UNAUTHORIZED"), "{why}: {body}");
            assert!(body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("https://aka.ms/acr/authorization"));
        }
        // The form's tenant must be the token's.
        let (status, _) = e
            .post(
                "/oauth2/exchange",
                &[
                    ("grant_type", "access_token"),
                    ("service", HOST),
                    ("tenant", OTHER_TENANT),
                    ("access_token", &ok),
                ],
            )
            .await;
        assert_eq!(status, 401);
        // Without `tenant` (as ACR's own samples send it) the token's tenant is used.
        let (status, _) = e
            .post(
                "/oauth2/exchange",
                &[("grant_type", "access_token"), ("service", HOST), ("access_token", &ok)],
            )
            .await;
        assert_eq!(status, 200);
        for (why, form) in [
            ("grant_type", vec![("grant_type", "refresh_token"), ("service", HOST), ("access_token", ok.as_str())]),
            ("service", vec![("grant_type", "access_token"), ("service", "other.azurecr.io"), ("access_token", ok.as_str())]),
        ] {
            let (status, body) = e.post("/oauth2/exchange", &form).await;
            assert_eq!((status, code(&body)), (400, "UNSUPPORTED"), "{why}");
        }
        // Only POST (Azure/acr#166).
        let r = e
            .client
            .get(format!("{}/oauth2/exchange", e.login.origin()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404);
        // An ABAC registry does not count AcrPull.
        e.login.acr.set_role_mode(RoleMode::Abac);
        assert_eq!(e.exchange(&ok).await.0, 401);
        e.login
            .acr
            .set_grants(vec![(PULLER.into(), Role::RepositoryReader(vec!["base/*".into()]))]);
        assert_eq!(e.exchange(&ok).await.0, 200);
        // Firewall: ACR's own refusal.
        e.login.acr.set_network(AcrNetwork::FirewallBlocks);
        let (status, body) = e.exchange(&ok).await;
        assert_eq!((status, code(&body)), (403, "DENIED"));
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("is not allowed access. Refer https://aka.ms/acr/firewall"), "{message}");
    });
}

#[test]
fn tokens_grant_what_the_role_allows_and_the_registry_agrees() {
    rt().block_on(async {
        let e = env().await;
        let refresh = e.refresh_token().await;
        let (status, body) = e
            .token(
                &refresh,
                &format!("repository:{REPO}:pull,push repository:other/app:pull"),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let access = body["access_token"].as_str().unwrap();
        let claims = jwt::decode_unverified(access).unwrap();
        // AcrPull: pull only, on every repository asked for.
        assert_eq!(
            claims["access"],
            json!([
                {"type": "repository", "name": REPO, "actions": ["pull"]},
                {"type": "repository", "name": "other/app", "actions": ["pull"]},
            ])
        );
        assert_eq!(claims["aud"], HOST);
        let header = jwt::decode_header(access).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert!(header["x5c"][0].is_string());
        // The real registry takes it for what it grants, and nothing else.
        assert_eq!(
            e.manifest(REPO, access).await,
            200,
            "{}",
            e.login.registry.log()
        );
        let only_other = e
            .login
            .acr
            .mint_access_token(PULLER, &[("other/app", "pull")]);
        assert_eq!(e.manifest(REPO, &only_other).await, 401);
        // A refresh token is never an access token: the registry refuses it…
        assert_eq!(e.manifest(REPO, &refresh).await, 401);
        // …and an access token is never a refresh token.
        let (status, _) = e.token(access, &format!("repository:{REPO}:pull")).await;
        assert_eq!(status, 401);
        // A token signed by anyone else is refused by the registry.
        let forged = Signer::new("acr-access").sign(&claims);
        assert_eq!(e.manifest(REPO, &forged).await, 401);

        // Repeated scope parameters work as one space-separated one.
        let (status, body) = e
            .post(
                "/oauth2/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("service", HOST),
                    ("scope", &format!("repository:{REPO}:pull")),
                    ("scope", "repository:other/app:pull"),
                    ("refresh_token", &refresh),
                ],
            )
            .await;
        assert_eq!(status, 200);
        let claims = jwt::decode_unverified(body["access_token"].as_str().unwrap()).unwrap();
        assert_eq!(claims["access"].as_array().unwrap().len(), 2);

        // ABAC conditions: a narrower grant is still a 200.
        e.login.acr.set_role_mode(RoleMode::Abac);
        e.login.acr.set_grants(vec![(
            PULLER.into(),
            Role::RepositoryReader(vec![REPO.into()]),
        )]);
        let (status, body) = e
            .token(
                &refresh,
                &format!("repository:{REPO}:pull repository:other/app:pull"),
            )
            .await;
        assert_eq!(status, 200);
        let claims = jwt::decode_unverified(body["access_token"].as_str().unwrap()).unwrap();
        assert_eq!(
            claims["access"],
            json!([{"type": "repository", "name": REPO, "actions": ["pull"]}])
        );
        // No role left at all: the refresh token is refused.
        e.login.acr.set_grants(vec![]);
        let (status, body) = e.token(&refresh, &format!("repository:{REPO}:pull")).await;
        assert_eq!((status, code(&body)), (401, "UNAUTHORIZED"));
        // Malformed requests.
        e.login.acr.set_role_mode(RoleMode::Rbac);
        e.login.acr.set_grants(vec![(PULLER.into(), Role::AcrPull)]);
        let (status, _) = e.token(&refresh, "repository-base").await;
        assert_eq!(status, 400);
        let (status, _) = e
            .post(
                "/oauth2/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("service", "x.azurecr.io"),
                    ("refresh_token", &refresh),
                ],
            )
            .await;
        assert_eq!(status, 400);
        // Refusals on demand.
        e.login.acr.refuse_refresh_grants(1);
        assert_eq!(
            e.token(&refresh, &format!("repository:{REPO}:pull"))
                .await
                .0,
            401
        );
        assert_eq!(
            e.token(&refresh, &format!("repository:{REPO}:pull"))
                .await
                .0,
            200
        );
    });
}

#[test]
fn clients_present_tokens_as_the_password_of_the_null_guid_user() {
    rt().block_on(async {
        let e = env().await;
        let refresh = e.refresh_token().await;
        let scope = format!("repository:{REPO}:pull");
        // A refresh token as the password: what the role allows.
        let (status, body) = e.basic(TOKEN_USER, &refresh, &scope).await;
        assert_eq!(status, 200, "{body}");
        let access = body["access_token"].as_str().unwrap().to_string();
        assert_eq!(e.manifest(REPO, &access).await, 200);
        // An access token as the password: at most what it holds.
        let (status, body) = e.basic(TOKEN_USER, &access, &scope).await;
        assert_eq!(status, 200);
        let again = body["access_token"].as_str().unwrap();
        assert_eq!(e.manifest(REPO, again).await, 200);
        let (status, body) = e
            .basic(TOKEN_USER, &access, "repository:other/app:pull")
            .await;
        assert_eq!(status, 200);
        let claims = jwt::decode_unverified(body["access_token"].as_str().unwrap()).unwrap();
        assert_eq!(claims["access"], json!([]));
        let (_, body) = e
            .basic(TOKEN_USER, &access, &format!("repository:{REPO}:pull,push"))
            .await;
        let claims = jwt::decode_unverified(body["access_token"].as_str().unwrap()).unwrap();
        assert_eq!(claims["access"][0]["actions"], json!(["pull"]));
        // Anyone else, or nothing: 401.
        let entra = e.entra_token(json!({}));
        for (user, password) in [
            ("admin", refresh.as_str()),
            (TOKEN_USER, "nope"),
            (TOKEN_USER, entra.as_str()),
        ] {
            assert_eq!(e.basic(user, password, &scope).await.0, 401, "{user}");
        }
        let r = e
            .client
            .get(format!(
                "{}/oauth2/token?service={HOST}&scope={scope}",
                e.login.origin()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "no anonymous pull");
        // containerd's password grant first: ACR answers 400, so it falls back to GET.
        let (status, _) = e
            .post(
                "/oauth2/token",
                &[
                    ("grant_type", "password"),
                    ("service", HOST),
                    ("scope", &scope),
                    ("username", TOKEN_USER),
                    ("password", &refresh),
                ],
            )
            .await;
        assert_eq!(status, 400);
        // Every token handed out is on record for leak scanners.
        let issued = e.login.acr.issued();
        assert!(issued
            .iter()
            .any(|i| i.kind == TokenKind::Refresh && i.token == refresh));
        assert!(issued
            .iter()
            .any(|i| i.kind == TokenKind::Access && i.token == access));
    });
}
