//! Reads the claims of an access token we were given, for diagnostics only (which issuer,
//! subject and audience a federated credential must carry; which tenant a token is for). Nothing
//! is verified here: the services verify their tokens. Claims hold ids, never secrets.

use crate::wire::json::{self, Value};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Claims {
    pub iss: String,
    pub sub: String,
    /// `aud`, a string or an array of strings (RFC 7519); diagnostics show the first.
    pub aud: String,
    pub tid: String,
    pub oid: String,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    /// A registry token's grants (the distribution token spec's `access` claim).
    pub access: Vec<Access>,
}

/// One grant of a registry token: `{"type":"repository","name":"base/alpine","actions":["pull"]}`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Access {
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// Decodes the payload of a compact JWS. `None` for anything that is not one. A claim of an
/// unexpected type reads as absent.
pub(crate) fn claims(token: &str) -> Option<Claims> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.len() > 16 * 1024 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let doc = json::parse(&bytes)?;
    let [iss, sub, aud, tid, oid, exp, nbf, access] =
        doc.pick(["iss", "sub", "aud", "tid", "oid", "exp", "nbf", "access"])?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let aud = match aud {
        Some(Value::Array(a)) => text(a.first()),
        other => text(other),
    };
    let access = access
        .map(Value::as_array)
        .unwrap_or_default()
        .iter()
        .filter_map(|grant| {
            let [kind, name, actions] = grant.pick(["type", "name", "actions"])?;
            Some(Access {
                kind: text(kind),
                name: text(name),
                actions: actions
                    .map(Value::as_array)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|a| a.as_str().map(str::to_string))
                    .collect(),
            })
        })
        .collect();
    Some(Claims {
        iss: text(iss),
        sub: text(sub),
        aud,
        tid: text(tid),
        oid: text(oid),
        exp: exp.and_then(Value::as_i64),
        nbf: nbf.and_then(Value::as_i64),
        access,
    })
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
    fn reads_registry_grants_and_array_audiences() {
        let c = claims(&token(r#"{"aud":["hub.azurecr.io","x"],"exp":9,"access":[{"type":"repository","name":"base/a","actions":["pull"]}]}"#)).unwrap();
        assert_eq!(c.aud, "hub.azurecr.io");
        assert_eq!(c.access[0].name, "base/a");
        assert_eq!(c.access[0].actions, ["pull"]);
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
