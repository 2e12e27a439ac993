//! pki: certificates clients accept for the right names only; jwt: RS256 round trip and refusals;
//! http: the shared server plumbing records requests and stops on drop.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::json;
use tenant_bridge_testkit::fakes::http::{client_trusting, FakeServer, Recorded, Reply};
use tenant_bridge_testkit::trust::jwt::{self, JwtError, Signer};
use tenant_bridge_testkit::trust::pki::TestPki;

#[test]
fn jwt_round_trip_and_refusals() {
    let s = Signer::new("k1");
    let claims = json!({"aud": "x", "n": 1});
    let tok = s.sign(&claims);
    let parts: Vec<&str> = tok.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert!(!tok.contains('='), "base64url without padding");
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header, json!({"alg": "RS256", "typ": "JWT", "kid": "k1"}));
    assert_eq!(
        URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len(),
        256,
        "RSA 2048"
    );

    assert_eq!(jwt::verify(&tok, &[s.verifier()]).unwrap(), claims);
    assert_eq!(jwt::decode_unverified(&tok).unwrap(), claims);

    // same kid, another key
    let other = Signer::new("k1");
    assert_eq!(
        jwt::verify(&tok, &[other.verifier()]),
        Err(JwtError::BadSignature)
    );
    // the first key with that kid decides (kids are unique in a real JWKS)
    assert!(jwt::verify(&tok, &[other.verifier(), s.verifier()]).is_err());
    let s2 = Signer::new("k2");
    assert!(jwt::verify(&s2.sign(&claims), &[s.verifier(), s2.verifier()]).is_ok());
    // unknown kid
    assert_eq!(
        jwt::verify(&tok, &[s2.verifier()]),
        Err(JwtError::UnknownKid("k1".into()))
    );
    // tampered claims
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(br#"{"aud":"y","n":1}"#),
        parts[2]
    );
    assert_eq!(
        jwt::verify(&forged, &[s.verifier()]),
        Err(JwtError::BadSignature)
    );
    // alg none / HS256
    let none = s.sign_with_header(&json!({"alg": "none", "kid": "k1"}), &claims);
    assert!(matches!(
        jwt::verify(&none, &[s.verifier()]),
        Err(JwtError::UnsupportedAlg(_))
    ));
    // malformed
    for bad in [
        "",
        "a.b",
        "a.b.c.d",
        "!!.e30.AA",
        "e30.e30.!!",
        "W10.e30.AA",
    ] {
        assert!(
            matches!(
                jwt::verify(bad, &[s.verifier()]),
                Err(JwtError::Malformed(_))
            ),
            "{bad}"
        );
    }
    // padded base64 is refused (Entra uses unpadded base64url)
    let padded = format!("{}=.{}.{}", parts[0], parts[1], parts[2]);
    assert!(jwt::verify(&padded, &[s.verifier()]).is_err());
    assert!(jwt::decode_unverified("nope").is_none());
    assert!((jwt::now() - 1_700_000_000) > 0);
    let jwk = s.verifier().jwk();
    assert_eq!(jwk["kid"], "k1");
    assert_eq!(jwk["e"], "AQAB");
}

async fn echo_server(pki: &TestPki, names: &[&str]) -> FakeServer {
    FakeServer::start(
        Some(pki.rustls_server_config(names)),
        Arc::new(|r: &Recorded| Reply::json(200, &json!({"path": r.path, "q": r.query("a")}))),
    )
    .await
}

#[tokio::test]
async fn tls_names_and_trust() {
    let pki = TestPki::new();
    let srv = echo_server(&pki, &["svc.example.test", "127.0.0.1"]).await;
    let port = srv.port();

    // DNS SAN
    let c = client_trusting(&pki.ca_pem(), &[("svc.example.test", srv.addr())]);
    let v: serde_json::Value = c
        .get(format!("https://svc.example.test:{port}/p?a=%2Fx%20y"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, json!({"path": "/p", "q": "/x y"}));
    // IP SAN
    let c = client_trusting(&pki.ca_pem(), &[]);
    assert!(c
        .get(format!("https://127.0.0.1:{port}/"))
        .send()
        .await
        .is_ok());
    // a name not in the certificate
    let c = client_trusting(&pki.ca_pem(), &[("other.example.test", srv.addr())]);
    assert!(c
        .get(format!("https://other.example.test:{port}/"))
        .send()
        .await
        .is_err());
    // another CA
    let c = client_trusting(&TestPki::new().ca_pem(), &[]);
    assert!(c
        .get(format!("https://127.0.0.1:{port}/"))
        .send()
        .await
        .is_err());
    // plain HTTP to the TLS port is not served
    assert!(reqwest::get(format!("http://127.0.0.1:{port}/"))
        .await
        .is_err());

    let rs = srv.requests();
    assert_eq!(
        rs.len(),
        2,
        "only the requests that got through TLS are recorded"
    );
    assert_eq!(rs[0].query, vec![("a".to_string(), "/x y".to_string())]);
    assert_eq!(rs[0].status, Some(200));
    assert_eq!(
        rs[0].header("HOST"),
        Some(format!("svc.example.test:{port}").as_str())
    );

    // PEM files and the CA on disk
    let pair = pki.server_cert(&["a.test", "::1"]);
    assert!(pair.cert_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(pair.key_pem.contains("PRIVATE KEY-----"));
    let dir = std::env::temp_dir().join(format!("testkit-pki-{}", std::process::id()));
    let path = pki.write_ca(&dir);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), pki.ca_pem());
    std::fs::remove_dir_all(dir).unwrap();

    // stops on drop
    let addr = srv.addr();
    drop(srv);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
