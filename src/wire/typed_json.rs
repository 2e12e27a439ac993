//! Typed reading of the JSON tenant-bridge receives (token answers, error bodies, token
//! claims, the token cache's entries) with serde and serde_json, and the few rules the component
//! keeps on top of them:
//!
//! - [`object`] reads a whole body as a struct: the body must be UTF-8 throughout (serde_json
//!   skips unknown members of a byte slice without checking them), and a JSON object — serde's
//!   derive would otherwise read an array into a struct field by field ([`Object`]). A field the
//!   struct knows that occurs twice refuses the document (serde's derive does that); unknown
//!   members are skipped.
//! - [`Lenient`] marks diagnostic members (error codes, trace ids, claims): one of another type
//!   reads as absent instead of making the whole answer unreadable.
//! - [`NumberOrString`]: IMDS sends every number as a string.
//!
//! Writing is serde_json's too ([`to_string`]): `Serialize` structs, whose members come out in
//! declaration order (problem bodies, the health report, the log line, cache entries).

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::error::Category;
use serde_json::value::RawValue;
use std::fmt;
use std::marker::PhantomData;

/// The JSON object `T` in `body`. The error says what is wrong and where, never a value (it may
/// reach a problem's detail).
pub(crate) fn object<T: DeserializeOwned>(body: &[u8]) -> anyhow::Result<T> {
    let text = std::str::from_utf8(body)
        .map_err(|e| anyhow::anyhow!("not UTF-8 (from byte {})", e.valid_up_to()))?;
    serde_json::from_str::<Object<T>>(text)
        .map(|o| o.0)
        .map_err(|e| anyhow::anyhow!(describe(&e)))
}

/// serde_json's error without the values it may quote (`invalid type: string "…"`).
fn describe(e: &serde_json::Error) -> String {
    let at = format!("at line {} column {}", e.line(), e.column());
    match e.classify() {
        Category::Data => {
            let message = e.to_string();
            if message.starts_with("missing field") || message.starts_with("duplicate field") {
                message
            } else if message.contains("expected a JSON object") {
                format!("not a JSON object {at}")
            } else {
                format!("a member of an unexpected type or value {at}")
            }
        }
        Category::Syntax => format!("not JSON {at}"),
        Category::Eof => "JSON cut short".to_string(),
        Category::Io => "unreadable".to_string(),
    }
}

/// A `T` read only from a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Map<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Map<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Map(PhantomData)).map(Object)
    }
}

/// An object member (`null` is absent); use with `#[serde(default, deserialize_with = …)]`.
pub(crate) fn optional_object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<Object<T>>::deserialize(d).map(|o| o.map(|o| o.0))
}

/// A member whose `null` reads as the type's default; use with `#[serde(default,
/// deserialize_with = …)]`.
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// A member kept when it is a `T`, absent when it is of any other type (or `null`, or missing
/// with `#[serde(default)]`). Still JSON: a malformed member refuses the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lenient<T>(pub Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Read as JSON text first, so that a member of another type is dropped without losing
        // serde_json's checks (a repeated field inside an object member still refuses it).
        let raw = Box::<RawValue>::deserialize(d)?;
        Ok(Lenient(serde_json::from_str(raw.get()).ok()))
    }
}

impl Lenient<String> {
    /// The text, or empty.
    pub(crate) fn text(self) -> String {
        self.0.unwrap_or_default()
    }
}

/// A whole number IMDS may send as a string: a number must be a `u64` (anything else refuses the
/// answer), a string is read when it holds one (`"3599"`, `" 3599 "`) and is absent otherwise
/// (App Service has sent a date in `expires_on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NumberOrString(pub Option<u64>);

impl<'de> Deserialize<'de> for NumberOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NumberOrStringVisitor;
        impl Visitor<'_> for NumberOrStringVisitor {
            type Value = NumberOrString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a whole number, or a string")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<NumberOrString, E> {
                Ok(NumberOrString(Some(n)))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<NumberOrString, E> {
                Ok(NumberOrString(s.trim().parse().ok()))
            }
        }
        d.deserialize_any(NumberOrStringVisitor)
    }
}

/// A number-or-string member (`null` is absent); use with `#[serde(default, deserialize_with =
/// …)]`.
pub(crate) fn number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<NumberOrString>::deserialize(d).map(|n| n.and_then(|n| n.0))
}

/// `value` as compact JSON, members in declaration order.
pub(crate) fn to_string<T: serde::Serialize + ?Sized>(value: &T) -> String {
    // The component writes only strings, numbers, options and vectors of them.
    serde_json::to_string(value).expect("plain data serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Sample {
        a: String,
        #[serde(default)]
        n: Option<u64>,
        #[serde(default)]
        l: Lenient<Vec<Lenient<Object<Inner>>>>,
        #[serde(default, deserialize_with = "number_or_string")]
        s: Option<u64>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        k: Lenient<String>,
    }

    fn read(doc: &str) -> Option<Sample> {
        object::<Sample>(doc.as_bytes()).ok()
    }

    #[test]
    fn reads_objects_only_once_per_field_and_utf8_throughout() {
        assert_eq!(
            read(r#" {"a":"x","other":[1,{"b":null}]} "#).unwrap().a,
            "x"
        );
        for bad in [
            r#"["x"]"#,
            r#"{"a":"x","a":"y"}"#,
            r#"{"a":1}"#,
            r#"{"a":null}"#,
            r#"{"n":1}"#,
            r#"{"a":"x"} 1"#,
            r#"{"a":"x","n":-1}"#,
            r#"{"a":"x","n":1.0}"#,
            r#"{"a":"x","n":-0}"#,
            r#"{"a":"x","n":18446744073709551616}"#,
            r#"{"a":"x","other":[1,]}"#,
            r#"{"a":"\ud83d"}"#,
            "",
        ] {
            assert!(read(bad).is_none(), "{bad}");
        }
        assert!(object::<Sample>(b"{\"a\":\"x\",\"other\":\"\xff\"}").is_err());
        assert_eq!(read(r#"{"a":"x","n":null}"#).unwrap().n, None);
        assert_eq!(read(r#"{"a":"\u0078"}"#).unwrap().a, "x");
    }

    #[test]
    fn lenient_members_of_another_type_read_as_absent() {
        let a = read(r#"{"a":"x","l":[{"k":"v"},{"k":1},[1],"s",{"k":"a","k":"b"}]}"#).unwrap();
        let kept: Vec<Option<String>> =
            a.l.0
                .unwrap()
                .into_iter()
                .map(|i| i.0.and_then(|o| o.0.k.0))
                .collect();
        assert_eq!(kept, [Some("v".to_string()), None, None, None, None]);
        assert_eq!(read(r#"{"a":"x","l":{"k":"v"}}"#).unwrap().l, Lenient(None));
        assert!(read(r#"{"a":"x","l":[01]}"#).is_none(), "still JSON");
    }

    #[test]
    fn numbers_may_be_strings() {
        let s = |doc: &str| read(doc).map(|a| a.s);
        assert_eq!(s(r#"{"a":"x","s":"3599"}"#), Some(Some(3599)));
        assert_eq!(s(r#"{"a":"x","s":" 7 "}"#), Some(Some(7)));
        assert_eq!(s(r#"{"a":"x","s":"11/28/2026"}"#), Some(None));
        assert_eq!(s(r#"{"a":"x","s":null}"#), Some(None));
        assert_eq!(s(r#"{"a":"x","s":12}"#), Some(Some(12)));
        for bad in ["-1", "1.5", "true", "[1]", "{}"] {
            assert_eq!(s(&format!(r#"{{"a":"x","s":{bad}}}"#)), None, "{bad}");
        }
    }

    #[test]
    fn errors_never_quote_values() {
        for doc in [
            r#"{"a":"x","s":{"secret-value":1}}"#,
            r#"{"a":"x","n":"secret-value"}"#,
            r#"{"a":"secret-value","a":"x"}"#,
            r#"["secret-value"]"#,
            r#"{"a":"x""secret-value"}"#,
        ] {
            let e = object::<Sample>(doc.as_bytes()).unwrap_err().to_string();
            assert!(!e.contains("secret-value"), "{e}");
        }
        let e = object::<Sample>(br#"{"n":1}"#).unwrap_err().to_string();
        assert!(e.contains("missing field `a`"), "{e}");
    }
}
