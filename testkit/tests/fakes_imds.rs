//! The fake IMDS refuses what the real one refuses and answers with the real shapes.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tenant_bridge_testkit::fakes::http::Fault;
use tenant_bridge_testkit::fakes::imds::{FakeImds, ImdsConfig};
use tenant_bridge_testkit::trust::jwt::{self, now, Signer};

const TENANT: &str = "aaaaaaaa-0000-4000-8000-00000000000a";
const CLIENT: &str = "c1c1c1c1-0000-4000-8000-0000000000c1";
const OID: &str = "0b0b0b0b-0000-4000-8000-0000000000b1";

async fn imds() -> (FakeImds, Arc<Signer>) {
    let signer = Arc::new(Signer::new("imds-key"));
    let cfg = ImdsConfig {
        tenant_id: TENANT.into(),
        identities: vec![(CLIENT.into(), OID.into())],
        system_assigned_object_id: None,
        token_lifetime_secs: 86399,
    };
    (FakeImds::start(cfg, signer.clone()).await, signer)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = client().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("send");
    let status = res.status().as_u16();
    let h = res.headers().clone();
    let body = res.text().await.unwrap();
    let v = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, v, h)
}

fn url(imds: &FakeImds, query: &str) -> String {
    format!("{}/metadata/identity/oauth2/token?{query}", imds.endpoint())
}

const MD: (&str, &str) = ("Metadata", "true");

/// (query, headers, status, error)
type Case<'a> = (String, Vec<(&'a str, &'a str)>, u16, &'a str);

#[tokio::test]
async fn happy_path_user_assigned_v1_token() {
    let (imds, signer) = imds().await;
    let (status, body, headers) = get(
        &url(
            &imds,
            &format!(
                "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net&client_id={CLIENT}"
            ),
        ),
        &[MD],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    // every value is a JSON string
    for k in [
        "access_token",
        "refresh_token",
        "expires_in",
        "expires_on",
        "not_before",
        "resource",
        "token_type",
        "client_id",
    ] {
        assert!(body[k].is_string(), "{k} must be a string: {body}");
    }
    assert_eq!(body["refresh_token"], "");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], "86399");
    assert_eq!(body["resource"], "https://vault.azure.net");
    assert_eq!(body["client_id"], CLIENT);
    let expires_on: i64 = body["expires_on"].as_str().unwrap().parse().unwrap();
    assert!((expires_on - (now() + 86399)).abs() <= 2);

    let claims = jwt::verify(body["access_token"].as_str().unwrap(), &[signer.verifier()])
        .expect("signed by the IMDS signer");
    assert_eq!(claims["aud"], "https://vault.azure.net");
    assert_eq!(claims["iss"], format!("https://sts.windows.net/{TENANT}/"));
    assert_eq!(claims["tid"], TENANT);
    assert_eq!(claims["oid"], OID);
    assert_eq!(claims["sub"], OID);
    assert_eq!(claims["appid"], CLIENT);
    assert_eq!(claims["ver"], "1.0");
    assert_eq!(claims["exp"].as_i64().unwrap(), expires_on);
    assert!(claims["nbf"].as_i64().unwrap() <= now());
    assert!(claims["iat"].is_i64());

    assert_eq!(imds.requests().len(), 1);
    assert_eq!(imds.token_requests().len(), 1);
    let r = &imds.requests()[0];
    assert_eq!(r.query("resource"), Some("https://vault.azure.net"));
    assert_eq!(r.header("metadata"), Some("true"));
}

#[tokio::test]
async fn exchange_audience_gets_v2_issuer_and_object_id_selector_works() {
    let (imds, signer) = imds().await;
    let (status, body, _) = get(
        &url(
            &imds,
            &format!("api-version=2018-02-01&resource=api://AzureADTokenExchange&object_id={OID}"),
        ),
        &[MD],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let claims = jwt::verify(body["access_token"].as_str().unwrap(), &[signer.verifier()]).unwrap();
    assert_eq!(claims["aud"], "api://AzureADTokenExchange");
    assert_eq!(
        claims["iss"],
        format!("https://login.microsoftonline.com/{TENANT}/v2.0")
    );
    assert_eq!(claims["sub"], OID);
    assert_eq!(claims["ver"], "2.0");
    assert_eq!(body["client_id"], CLIENT);
}

#[tokio::test]
async fn refusals() {
    let (imds, _) = imds().await;
    let ok_q =
        format!("api-version=2018-02-01&resource=https://vault.azure.net&client_id={CLIENT}");
    let cases: Vec<Case> = vec![
        // Metadata header missing / wrong value
        (ok_q.clone(), vec![], 400, "bad_request_102"),
        (ok_q.clone(), vec![("Metadata", "True")], 400, "bad_request_102"),
        (ok_q.clone(), vec![("Metadata", "false")], 400, "bad_request_102"),
        // proxied
        (
            ok_q.clone(),
            vec![MD, ("X-Forwarded-For", "10.0.0.1")],
            400,
            "bad_request_102",
        ),
        // repeated query names
        (
            format!("{ok_q}&resource=https://storage.azure.com"),
            vec![MD],
            400,
            "invalid_request",
        ),
        (
            format!("{ok_q}&api-version=2018-02-01"),
            vec![MD],
            400,
            "invalid_request",
        ),
        // api-version
        (
            format!("resource=https://vault.azure.net&client_id={CLIENT}"),
            vec![MD],
            400,
            "invalid_request",
        ),
        (
            format!("api-version=2019-08-01&resource=https://vault.azure.net&client_id={CLIENT}"),
            vec![MD],
            400,
            "invalid_request",
        ),
        // resource
        (
            format!("api-version=2018-02-01&client_id={CLIENT}"),
            vec![MD],
            400,
            "invalid_request",
        ),
        (
            format!("api-version=2018-02-01&resource=https://vault.azure.net/.default&client_id={CLIENT}"),
            vec![MD],
            400,
            "invalid_resource",
        ),
        (
            format!("api-version=2018-02-01&scope=https://vault.azure.net/.default&client_id={CLIENT}"),
            vec![MD],
            400,
            "invalid_request",
        ),
        (format!("{ok_q}&scope=x"), vec![MD], 400, "invalid_request"),
        // selectors
        (
            format!("{ok_q}&object_id={OID}"),
            vec![MD],
            400,
            "invalid_request",
        ),
        (
            "api-version=2018-02-01&resource=https://vault.azure.net&client_id=unknown".into(),
            vec![MD],
            400,
            "invalid_request",
        ),
        (
            "api-version=2018-02-01&resource=https://vault.azure.net&msi_res_id=/subscriptions/x".into(),
            vec![MD],
            400,
            "invalid_request",
        ),
        // no client_id and no system-assigned identity
        (
            "api-version=2018-02-01&resource=https://vault.azure.net".into(),
            vec![MD],
            400,
            "invalid_request",
        ),
    ];
    for (q, headers, status, error) in &cases {
        let (s, body, _) = get(&url(&imds, q), headers).await;
        assert_eq!(s, *status, "{q} {headers:?}: {body}");
        assert_eq!(body["error"], *error, "{q} {headers:?}: {body}");
        assert!(body["error_description"].is_string(), "{body}");
    }
    let (_, body, _) = get(&url(&imds, &ok_q), &[]).await;
    assert_eq!(
        body["error_description"],
        "Required metadata header not specified"
    );
    let (_, body, _) = get(
        &url(
            &imds,
            "api-version=2018-02-01&resource=https://vault.azure.net&client_id=unknown",
        ),
        &[MD],
    )
    .await;
    assert_eq!(body["error_description"], "Identity not found");
    let (_, body, _) = get(
        &url(&imds, &format!("api-version=2018-02-01&client_id={CLIENT}")),
        &[MD],
    )
    .await;
    assert_eq!(
        body["error_description"],
        "Required query variable 'resource' is missing"
    );

    // wrong path / method
    let (s, _, _) = get(
        &format!("{}/metadata/identity/oauth2/tokens?{ok_q}", imds.endpoint()),
        &[MD],
    )
    .await;
    assert_eq!(s, 404);
    let res = client()
        .post(url(&imds, &ok_q))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 405);

    // every request recorded, none answered 200
    assert_eq!(imds.requests().len(), cases.len() + 5);
    assert!(imds.token_requests().is_empty());
    imds.clear();
    assert!(imds.requests().is_empty());
}

#[tokio::test]
async fn system_assigned_identity() {
    let signer = Arc::new(Signer::new("imds-key"));
    let imds = FakeImds::start(
        ImdsConfig {
            tenant_id: TENANT.into(),
            identities: vec![],
            system_assigned_object_id: Some(OID.into()),
            token_lifetime_secs: 3600,
        },
        signer.clone(),
    )
    .await;
    let (s, body, _) = get(
        &url(
            &imds,
            "api-version=2018-02-01&resource=https://storage.azure.com",
        ),
        &[MD],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["expires_in"], "3600");
    let claims = jwt::decode_unverified(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["oid"], OID);
    assert_eq!(claims["aud"], "https://storage.azure.com");
}

#[tokio::test]
async fn scripted_faults_are_consumed_one_per_request() {
    let (imds, _) = imds().await;
    let q = format!("api-version=2018-02-01&resource=https://vault.azure.net&client_id={CLIENT}");
    imds.push_fault(Fault::Status {
        status: 503,
        headers: vec![],
        body: String::new(),
    });
    imds.push_fault(Fault::Status {
        status: 503,
        headers: vec![],
        body: String::new(),
    });
    imds.push_fault(Fault::Status {
        status: 410,
        headers: vec![],
        body: String::new(),
    });
    imds.push_fault(Fault::retry_after(429, 3));
    for expect in [503, 503, 410] {
        let (s, _, _) = get(&url(&imds, &q), &[MD]).await;
        assert_eq!(s, expect);
    }
    let (s, _, h) = get(&url(&imds, &q), &[MD]).await;
    assert_eq!(s, 429);
    assert_eq!(h["retry-after"], "3");
    // faults come before normal checks (even a request without Metadata gets the fault)
    imds.push_fault(Fault::json(
        500,
        &serde_json::json!({"error":"unknown","error_description":"x"}),
    ));
    let (s, body, _) = get(&url(&imds, &q), &[]).await;
    assert_eq!((s, body["error"].as_str()), (500, Some("unknown")));
    let (s, _, _) = get(&url(&imds, &q), &[MD]).await;
    assert_eq!(s, 200);
    let statuses: Vec<_> = imds.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![
            Some(503),
            Some(503),
            Some(410),
            Some(429),
            Some(500),
            Some(200)
        ]
    );
    assert_eq!(imds.token_requests().len(), 1);
}

#[tokio::test]
async fn hang_and_drop_connection() {
    let (imds, _) = imds().await;
    let q = format!("api-version=2018-02-01&resource=https://vault.azure.net&client_id={CLIENT}");
    imds.push_fault(Fault::DropConnection);
    let err = client()
        .get(url(&imds, &q))
        .header("Metadata", "true")
        .send()
        .await
        .expect_err("connection dropped without a response");
    assert!(!err.is_timeout(), "{err:?}");

    imds.push_fault(Fault::Hang);
    let err = client()
        .get(url(&imds, &q))
        .header("Metadata", "true")
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .expect_err("hangs");
    assert!(err.is_timeout(), "{err:?}");

    // both recorded, without a status
    let rs = imds.requests();
    assert_eq!(rs.len(), 2);
    assert!(rs.iter().all(|r| r.status.is_none()));
    // and the fake still works afterwards
    let (s, _, _) = get(&url(&imds, &q), &[MD]).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn short_lifetime_and_stop_on_drop() {
    let (imds, _) = imds().await;
    imds.set_token_lifetime(5);
    let q = format!("api-version=2018-02-01&resource=https://vault.azure.net&client_id={CLIENT}");
    let (s, body, _) = get(&url(&imds, &q), &[MD]).await;
    assert_eq!(s, 200);
    assert_eq!(body["expires_in"], "5");
    let u = url(&imds, &q);
    drop(imds);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = client()
        .get(u)
        .header("Metadata", "true")
        .send()
        .await
        .expect_err("stopped");
    assert!(err.is_connect() || err.is_request(), "{err:?}");
}
