//! Percent-encoding and `application/x-www-form-urlencoded`, the little of it this component
//! needs (a URL library with IDNA tables would cost more .wasm than everything here).

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn encode_component(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

/// A form body or query string: `name=value&…`, each part percent-encoded.
#[derive(Default)]
pub(crate) struct Form(String);

impl Form {
    pub(crate) fn pair(mut self, name: &str, value: &str) -> Form {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        encode_component(name, &mut self.0);
        self.0.push('=');
        encode_component(value, &mut self.0);
        self
    }
    pub(crate) fn finish(self) -> String {
        self.0
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one form component (`+` is a space, as ASP.NET Core reads queries). Invalid escapes
/// stay as they are (as ASP.NET Core does); bytes that are not UTF-8 after decoding are an
/// error, never a U+FFFD replacement: `%FF` and `%FE` must not name the same blob.
pub(crate) fn decode_component(raw: &str) -> Result<String, ()> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ())
}

/// The pairs of a query string, in order, decoded. `Err` names the first part that does not
/// decode to UTF-8 (by position, never by value).
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
    fn decodes_plus_escapes_and_refuses_invalid_utf8() {
        assert_eq!(decode_component("a+b%2Dc").unwrap(), "a b-c");
        assert_eq!(decode_component("%zz%4").unwrap(), "%zz%4");
        assert_eq!(decode_component("%C3%BC").unwrap(), "ü");
        assert!(decode_component("%FF").is_err());
        assert!(decode_component("%FE").is_err());
        assert!(decode_component("%C3").is_err());
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
    }

    #[test]
    fn round_trips_arbitrary_text() {
        for s in ["", "plain", "a b+c&d=e", "ü/ß\u{1F600}", "%41"] {
            let mut enc = String::new();
            encode_component(s, &mut enc);
            assert_eq!(decode_component(&enc).unwrap(), s);
        }
    }
}
