//! Reads the claims of an access token we were given, for diagnostics only (which issuer,
//! subject and audience a federated credential must carry; which tenant a token is for). Nothing
//! is verified here: the services verify their tokens. Claims hold ids, never secrets.

use crate::wire::typed_json::{self, Lenient, Object};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

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

/// A token's payload as read: every claim on its own, one of an unexpected type reads as
/// absent; a claim that occurs twice refuses the payload.
#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    iss: Lenient<String>,
    #[serde(default)]
    sub: Lenient<String>,
    #[serde(default)]
    aud: Lenient<Audience>,
    #[serde(default)]
    tid: Lenient<String>,
    #[serde(default)]
    oid: Lenient<String>,
    #[serde(default)]
    exp: Lenient<i64>,
    #[serde(default)]
    nbf: Lenient<i64>,
    /// Grants that are not objects, or repeat a member, are left out.
    #[serde(default)]
    access: Lenient<Vec<Lenient<Object<Grant>>>>,
}

#[derive(Deserialize)]
struct Grant {
    #[serde(default, rename = "type")]
    kind: Lenient<String>,
    #[serde(default)]
    name: Lenient<String>,
    #[serde(default)]
    actions: Lenient<Vec<Lenient<String>>>,
}

/// `aud`: a string, or an array whose first member is kept when it is a string.
struct Audience(String);

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AudienceVisitor;
        impl<'de> Visitor<'de> for AudienceVisitor {
            type Value = Audience;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or an array")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Audience, E> {
                Ok(Audience(s.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
                let first = seq.next_element::<Lenient<String>>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Audience(first.and_then(|f| f.0).unwrap_or_default()))
            }
        }
        d.deserialize_any(AudienceVisitor)
    }
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
    let p: Payload = typed_json::object(&bytes).ok()?;
    let access = p
        .access
        .0
        .unwrap_or_default()
        .into_iter()
        .filter_map(|grant| {
            let Object(grant) = grant.0?;
            Some(Access {
                kind: grant.kind.text(),
                name: grant.name.text(),
                actions: grant
                    .actions
                    .0
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|a| a.0)
                    .collect(),
            })
        })
        .collect();
    Some(Claims {
        iss: p.iss.text(),
        sub: p.sub.text(),
        aud: p.aud.0.map(|a| a.0).unwrap_or_default(),
        tid: p.tid.text(),
        oid: p.oid.text(),
        exp: p.exp.0,
        nbf: p.nbf.0,
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
    fn claims_of_unexpected_types_read_as_absent() {
        let c = claims(&token(r#"{"iss":1,"aud":[2,"x"],"exp":-0,"nbf":1.5,"tid":null,"access":[[1],{"type":"repository","name":"a","name":"b"},{"type":"repository","name":"c","actions":["pull",1]}]}"#)).unwrap();
        assert_eq!(
            (c.iss.as_str(), c.aud.as_str(), c.tid.as_str()),
            ("", "", "")
        );
        assert_eq!((c.exp, c.nbf), (None, None));
        assert_eq!(c.access.len(), 1);
        assert_eq!(
            (c.access[0].name.as_str(), &c.access[0].actions[..]),
            ("c", &["pull".to_string()][..])
        );
        assert_eq!(
            claims(&token(r#"{"exp":-5,"aud":{}}"#)).unwrap().exp,
            Some(-5)
        );
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
            &token(r#"{"sub":"a","sub":"b"}"#),
        ] {
            assert!(claims(bad).is_none(), "{bad}");
        }
    }
}
