//! Reads the claims of an access token we were given, for diagnostics only (which issuer,
//! subject and audience a federated credential must carry; which tenant a token is for). Nothing
//! is verified here: the services verify their tokens. Claims hold ids, never secrets.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub iss: String,
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub aud: String,
    #[serde(default)]
    pub tid: String,
    #[serde(default)]
    pub oid: String,
    #[serde(default)]
    pub exp: Option<i64>,
    #[serde(default)]
    pub nbf: Option<i64>,
}

/// Decodes the payload of a compact JWS. `None` for anything that is not one.
pub fn claims(token: &str) -> Option<Claims> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.len() > 16 * 1024 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(payload: &str) -> String {
        format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn reads_the_claims_diagnostics_need() {
        let c = claims(&token(r#"{"iss":"https://login.microsoftonline.com/t/v2.0","sub":"Oid","aud":"api://AzureADTokenExchange","tid":"t","oid":"Oid","exp":5,"extra":[1]}"#)).unwrap();
        assert_eq!(c.sub, "Oid");
        assert_eq!(c.aud, "api://AzureADTokenExchange");
        assert_eq!(c.exp, Some(5));
    }

    #[test]
    fn rejects_non_jwts_without_panicking() {
        for bad in [
            "",
            "a",
            "a.b",
            "a.b.c.d",
            "a.!!!.c",
            &token("[1,2]"),
            &token("not json"),
        ] {
            assert!(claims(bad).is_none(), "{bad}");
        }
    }
}
