//! Percent-encoding and `application/x-www-form-urlencoded`, with `url`'s `form_urlencoded` and
//! the `percent-encoding` crate it is built on.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`) is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes everything but RFC 3986 unreserved characters (upper-case hex): a path
/// segment that reaches the service byte for byte.
pub(crate) fn encode_component(value: &str, out: &mut String) {
    out.extend(utf8_percent_encode(value, COMPONENT));
}

/// A form body or query string: `name=value&…`, encoded as `application/x-www-form-urlencoded`
/// (a space is `+`).
pub(crate) struct Form(url::form_urlencoded::Serializer<'static, String>);

impl Default for Form {
    fn default() -> Form {
        Form(url::form_urlencoded::Serializer::new(String::new()))
    }
}

impl Form {
    pub(crate) fn pair(mut self, name: &str, value: &str) -> Form {
        self.0.append_pair(name, value);
        self
    }
    pub(crate) fn finish(mut self) -> String {
        self.0.finish()
    }
}

/// Percent-decodes `raw` (nothing else: a `+` stays a `+`). Invalid escapes stay as they are;
/// bytes that are not UTF-8 after decoding are an error, never a U+FFFD replacement.
pub(crate) fn percent_decoded(raw: &str) -> Result<String, ()> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ())
}

/// Decodes one form component (`+` is a space, as ASP.NET Core reads queries). Invalid escapes
/// stay as they are (as ASP.NET Core does); bytes that are not UTF-8 after decoding are an
/// error, never a U+FFFD replacement: `%FF` and `%FE` must not name the same blob. (This is
/// `form_urlencoded::parse` without its lossy UTF-8 step.)
pub(crate) fn decode_component(raw: &str) -> Result<String, ()> {
    percent_decoded(&raw.replace('+', " "))
}

/// The pairs of a query string, in order, decoded, split as `form_urlencoded::parse` splits
/// (`&`-separated, empty parts skipped, the first `=` separates name and value). `Err` names the
/// first part that does not decode to UTF-8 (by position, never by value).
pub(crate) fn parse_query(raw: &str) -> Result<Vec<(String, String)>, usize> {
    raw.split('&')
        .filter(|part| !part.is_empty())
        .enumerate()
        .map(|(i, part)| {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            Ok((
                decode_component(name).map_err(|_| i + 1)?,
                decode_component(value).map_err(|_| i + 1)?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_rfc3986_unreserved() {
        let mut s = String::new();
        encode_component("a b/ü?#%2e.~_-", &mut s);
        assert_eq!(s, "a%20b%2F%C3%BC%3F%23%252e.~_-");
        assert_eq!(
            Form::default().pair("a", "x=y&z").pair("b", "").finish(),
            "a=x%3Dy%26z&b="
        );
    }

    #[test]
    fn forms_are_encoded_as_form_urlencoded_and_read_back_by_it() {
        let body = Form::default()
            .pair("scope", "repository:a:pull repository:b/c:pull")
            .pair("x", "~*+&=é")
            .finish();
        assert_eq!(
            body,
            "scope=repository%3Aa%3Apull+repository%3Ab%2Fc%3Apull&x=%7E*%2B%26%3D%C3%A9"
        );
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(pairs, parse_query(&body).unwrap());
        assert_eq!(pairs[1].1, "~*+&=é");
    }

    #[test]
    fn decodes_plus_escapes_and_refuses_invalid_utf8() {
        assert_eq!(decode_component("a+b%2Dc").unwrap(), "a b-c");
        assert_eq!(decode_component("%zz%4").unwrap(), "%zz%4");
        assert_eq!(decode_component("%C3%BC").unwrap(), "ü");
        assert_eq!(decode_component("%2B").unwrap(), "+");
        assert!(decode_component("%FF").is_err());
        assert!(decode_component("%FE").is_err());
        assert!(decode_component("%C3").is_err());
        assert_eq!(percent_decoded("a+b%2E").unwrap(), "a+b.");
    }

    #[test]
    fn parses_queries_in_order() {
        assert_eq!(
            parse_query("key=a%2Db&&version=&x").unwrap(),
            vec![
                ("key".to_string(), "a-b".to_string()),
                ("version".to_string(), String::new()),
                ("x".to_string(), String::new())
            ]
        );
        assert_eq!(parse_query("a=1&b=%FF"), Err(2));
        // Where form_urlencoded would read U+FFFD, the query is refused.
        let lossy: Vec<(String, String)> =
            url::form_urlencoded::parse(b"b=%FF").into_owned().collect();
        assert_eq!(lossy[0].1, "\u{FFFD}");
        assert_eq!(parse_query("b=%FF"), Err(1));
    }

    #[test]
    fn round_trips_arbitrary_text() {
        for s in ["", "plain", "a b+c&d=e", "ü/ß\u{1F600}", "%41", "~*"] {
            let mut enc = String::new();
            encode_component(s, &mut enc);
            assert_eq!(decode_component(&enc).unwrap(), s);
            let form = Form::default().pair("k", s).finish();
            assert_eq!(
                parse_query(&form).unwrap(),
                [("k".to_string(), s.to_string())]
            );
        }
    }
}
