//! Just the JSON tenant-bridge reads and writes, without serde: a few small documents per
//! request (token answers, error bodies, the cache entry, the log line), where a generic
//! deserializer per type cost a fifth of the component's size.
//!
//! Reading: [`parse`] checks the whole document as strictly as serde_json does (syntax, string
//! escapes, control characters, nesting depth, trailing bytes) and builds a small tree that
//! borrows from the input; numbers stay text until a reader asks for an integer. Readers take the
//! fields they know with [`Value::pick`], which refuses a document that repeats one of them (as a
//! serde struct does). Writing: [`Object`] appends members with serde_json's escaping.

use std::borrow::Cow;

/// Deepest nesting of arrays and objects accepted (serde_json refuses the 128th level).
const MAX_DEPTH: usize = 127;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Null,
    Bool(bool),
    /// The number's text, already checked against JSON's grammar.
    Number(&'a str),
    String(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    Object(Vec<(Cow<'a, str>, Value<'a>)>),
}

/// The document in `text`, or `None` when it is not exactly one JSON value.
pub(crate) fn parse(text: &[u8]) -> Option<Value<'_>> {
    let text = std::str::from_utf8(text).ok()?;
    let mut p = Parser { text, at: 0 };
    let value = p.value(0)?;
    p.space();
    (p.at == text.len()).then_some(value)
}

impl<'a> Value<'a> {
    /// The members `keys` of an object, each `None` when absent; `None` for anything that is
    /// not an object, or an object that repeats one of `keys`.
    pub(crate) fn pick<const N: usize>(&self, keys: [&str; N]) -> Option<[Option<&Value<'a>>; N]> {
        let Value::Object(members) = self else {
            return None;
        };
        let mut found = [None; N];
        for (name, value) in members {
            if let Some(i) = keys.iter().position(|k| *k == name.as_ref()) {
                if found[i].replace(value).is_some() {
                    return None;
                }
            }
        }
        Some(found)
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A whole number in `u64` (no fraction, no exponent, not negative).
    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// A whole number in `i64`; `-0` is not one (serde_json reads it as a float).
    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number("-0") => None,
            Value::Number(n) => n.parse().ok(),
            _ => None,
        }
    }

    pub(crate) fn as_array(&self) -> &[Value<'a>] {
        match self {
            Value::Array(items) => items,
            _ => &[],
        }
    }
}

/// The string member `name` of the object in `body`: a required field, as a serde struct reads
/// it (`None` when absent, repeated, of another type, or the body is not JSON).
pub(crate) fn string_member(body: &[u8], name: &str) -> Option<String> {
    let doc = parse(body)?;
    let [v] = doc.pick([name])?;
    v?.as_str().map(str::to_string)
}

/// A string member of `pick`'s result: absent and `null` are `Ok(None)`, another type `Err`.
pub(crate) fn opt_str<'v>(v: Option<&'v Value>) -> Result<Option<&'v str>, ()> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_str().map(Some).ok_or(()),
    }
}

/// A whole-number member: absent and `null` are `Ok(None)`, anything else but a `u64` `Err`.
pub(crate) fn opt_u64(v: Option<&Value>) -> Result<Option<u64>, ()> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(()),
    }
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, literal: &str) -> Option<()> {
        self.text[self.at..].starts_with(literal).then(|| {
            self.at += literal.len();
        })
    }

    fn value(&mut self, depth: usize) -> Option<Value<'a>> {
        self.space();
        match self.peek()? {
            b'n' => self.eat("null").map(|()| Value::Null),
            b't' => self.eat("true").map(|()| Value::Bool(true)),
            b'f' => self.eat("false").map(|()| Value::Bool(false)),
            b'"' => self.string().map(Value::String),
            b'[' if depth < MAX_DEPTH => {
                self.at += 1;
                let mut items = Vec::new();
                self.space();
                if self.peek()? == b']' {
                    self.at += 1;
                    return Some(Value::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.space();
                    match self.peek()? {
                        b',' => self.at += 1,
                        b']' => {
                            self.at += 1;
                            return Some(Value::Array(items));
                        }
                        _ => return None,
                    }
                }
            }
            b'{' if depth < MAX_DEPTH => {
                self.at += 1;
                let mut members = Vec::new();
                self.space();
                if self.peek()? == b'}' {
                    self.at += 1;
                    return Some(Value::Object(members));
                }
                loop {
                    self.space();
                    if self.peek()? != b'"' {
                        return None;
                    }
                    let name = self.string()?;
                    self.space();
                    if self.peek()? != b':' {
                        return None;
                    }
                    self.at += 1;
                    members.push((name, self.value(depth + 1)?));
                    self.space();
                    match self.peek()? {
                        b',' => self.at += 1,
                        b'}' => {
                            self.at += 1;
                            return Some(Value::Object(members));
                        }
                        _ => return None,
                    }
                }
            }
            b'-' | b'0'..=b'9' => self.number().map(Value::Number),
            _ => None,
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Option<&'a str> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.one_or_more_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.one_or_more_digits()?;
        }
        let text = &self.text[start..self.at];
        finite(text).then_some(text)
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
    }

    fn one_or_more_digits(&mut self) -> Option<()> {
        let start = self.at;
        self.digits();
        (self.at > start).then_some(())
    }

    /// A string at `"`: borrowed when it has no escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.at += 1;
        let start = self.at;
        let bytes = self.text.as_bytes();
        loop {
            match *bytes.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return Some(Cow::Borrowed(&self.text[start..self.at - 1]));
                }
                b'\\' => break,
                0x00..=0x1f => return None,
                _ => self.at += 1,
            }
        }
        let mut out = String::from(&self.text[start..self.at]);
        loop {
            match *bytes.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' => {
                    self.at += 1;
                    let c = match *bytes.get(self.at)? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    };
                    self.at += 1;
                    out.push(c);
                }
                0x00..=0x1f => return None,
                _ => {
                    // Copy the run up to the next quote or escape in one go.
                    let run = self.at;
                    while !matches!(bytes.get(self.at), None | Some(b'"' | b'\\' | 0x00..=0x1f)) {
                        self.at += 1;
                    }
                    out.push_str(&self.text[run..self.at]);
                }
            }
        }
    }

    /// `\uXXXX` (the parser is at the `u`), with a following low surrogate when it is a high
    /// one; leaves the parser at the last hex digit. Lone surrogates are refused.
    fn unicode_escape(&mut self) -> Option<char> {
        let first = self.hex4(self.at + 1)?;
        self.at += 4;
        let code = match first {
            0xD800..=0xDBFF => {
                let bytes = self.text.as_bytes();
                if bytes.get(self.at + 1) != Some(&b'\\') || bytes.get(self.at + 2) != Some(&b'u') {
                    return None;
                }
                let second = self.hex4(self.at + 3)?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return None;
                }
                self.at += 6;
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return None,
            _ => first,
        };
        char::from_u32(code)
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let hex = self.text.as_bytes().get(at..at + 4)?;
        hex.iter()
            .try_fold(0u32, |acc, b| Some(acc * 16 + char::from(*b).to_digit(16)?))
    }
}

/// Whether a number (JSON grammar already checked) rounds to a finite `f64`, as serde_json needs
/// to read it ("number out of range" otherwise). Decided on the decimal digits: the value is
/// `0.DIGITS × 10^position`; at position 309 the digits are compared with those of 2^1024 −
/// 2^970, the first value that rounds to infinity.
fn finite(number: &str) -> bool {
    const INFINITE_FROM: &str =
        "17976931348623158079372897140530341507993413271003782693617377898044496829276475\
        09466490179775872070963302864166928879109465555478519404026306574886715058206819\
        08902000708383676273854845817711531764475730270069855571366959622842914819860834\
        936475292719074168444365510704342711559699508093042880177904174497792";
    let unsigned = number.strip_prefix('-').unwrap_or(number);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], &unsigned[i + 1..]),
        None => (unsigned, ""),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let (leading, digits) = if int != "0" {
        (int.len() as i64, [int, frac].concat())
    } else {
        let zeros = frac.len() - frac.trim_start_matches('0').len();
        (-(zeros as i64), frac[zeros..].to_string())
    };
    let digits = digits.trim_end_matches('0');
    if digits.is_empty() {
        return true;
    }
    let (negative, magnitude) = match exponent.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, exponent.trim_start_matches('+')),
    };
    // Saturates: 10^(±1000000) is out of range (or zero) either way.
    let e = magnitude
        .bytes()
        .fold(0i64, |e, d| (e * 10 + i64::from(d - b'0')).min(1_000_000));
    let position = leading + if negative { -e } else { e };
    match position {
        ..=308 => true,
        309 => digits < INFINITE_FROM,
        _ => false,
    }
}

/// Appends `s` as a JSON string, escaped as serde_json does.
pub(crate) fn write_str(out: &mut String, s: &str) {
    out.push('"');
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[run..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(escape);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// A JSON object written member by member.
pub(crate) struct Object {
    out: String,
}

impl Object {
    pub(crate) fn new() -> Object {
        Object::with_capacity(64)
    }

    pub(crate) fn with_capacity(bytes: usize) -> Object {
        let mut out = String::with_capacity(bytes);
        out.push('{');
        Object { out }
    }

    fn key(&mut self, key: &str) -> &mut String {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        write_str(&mut self.out, key);
        self.out.push(':');
        &mut self.out
    }

    pub(crate) fn str(mut self, key: &str, value: &str) -> Object {
        write_str(self.key(key), value);
        self
    }

    /// `value` when it is `Some`; nothing otherwise.
    pub(crate) fn opt_str(self, key: &str, value: Option<&str>) -> Object {
        match value {
            Some(v) => self.str(key, v),
            None => self,
        }
    }

    pub(crate) fn num(mut self, key: &str, value: impl Into<u128>) -> Object {
        let n: u128 = value.into();
        // Integer formatting without the fmt machinery's padding paths.
        let mut digits = [0u8; 40];
        let mut i = digits.len();
        let mut n = n;
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let out = self.key(key);
        out.push_str(std::str::from_utf8(&digits[i..]).unwrap_or("0"));
        self
    }

    pub(crate) fn opt_num(self, key: &str, value: Option<u64>) -> Object {
        match value {
            Some(v) => self.num(key, v),
            None => self,
        }
    }

    /// A member whose value is already JSON (a nested object or array).
    pub(crate) fn raw(mut self, key: &str, json: &str) -> Object {
        self.key(key).push_str(json);
        self
    }

    pub(crate) fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// `[a,b,…]` of already written JSON values.
pub(crate) fn array<I: IntoIterator<Item = String>>(items: I) -> String {
    let mut out = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&item);
    }
    out.push(']');
    out
}

/// `["a","b",…]`
pub(crate) fn string_array<'s>(items: impl IntoIterator<Item = &'s str>) -> String {
    array(items.into_iter().map(|s| {
        let mut out = String::with_capacity(s.len() + 2);
        write_str(&mut out, s);
        out
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value as Reference;

    /// Our tree as serde_json's, numbers compared as serde reads them.
    fn same(ours: &Value, theirs: &Reference) -> bool {
        match (ours, theirs) {
            (Value::Null, Reference::Null) => true,
            (Value::Bool(a), Reference::Bool(b)) => a == b,
            (Value::Number(n), Reference::Number(r)) => {
                let ours: serde_json::Number = serde_json::from_str(n).unwrap();
                &ours == r
            }
            (Value::String(a), Reference::String(b)) => a == b,
            (Value::Array(a), Reference::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
            }
            (Value::Object(a), Reference::Object(b)) => {
                // serde_json keeps the last of repeated names.
                b.iter().all(|(k, v)| {
                    a.iter()
                        .rev()
                        .find(|(name, _)| name == k)
                        .is_some_and(|(_, x)| same(x, v))
                }) && a.iter().all(|(k, _)| b.contains_key(k.as_ref()))
            }
            _ => false,
        }
    }

    fn agrees(doc: &[u8]) {
        let ours = parse(doc);
        let theirs = serde_json::from_slice::<Reference>(doc);
        match (&ours, &theirs) {
            (Some(o), Ok(t)) => assert!(
                same(o, t),
                "{:?}: {o:?} vs {t:?}",
                String::from_utf8_lossy(doc)
            ),
            (None, Err(_)) => {}
            _ => panic!(
                "{:?}: ours {:?}, serde_json {:?}",
                String::from_utf8_lossy(doc),
                ours,
                theirs
            ),
        }
    }

    #[test]
    fn reads_what_serde_json_reads_and_refuses_what_it_refuses() {
        for doc in [
            r#"{"a":1,"b":[true,false,null],"c":{"d":"e"}}"#,
            r#"  {"value" : "TenantA" }  "#,
            r#""plain""#,
            r#""esc \" \\ \/ \b \f \n \r \t \u00e9 \ud83d\ude00 end""#,
            r#"[0, -0, 12, -7, 1.5, 1e3, 1E-3, 2.5e+10, 18446744073709551615, 18446744073709551616]"#,
            r#"{"a":1,"a":2}"#,
            "[]",
            "{}",
            "\"\u{10348} utf-8\"",
            // refused by both
            "",
            " ",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "{a:1}",
            "01",
            "1.",
            ".5",
            "+1",
            "-",
            "1e",
            "tru",
            "nul",
            "[1] x",
            "\"\u{1}\"",
            "\"tab\tin string\"",
            r#""\x""#,
            r#""\u12""#,
            r#""\ud83d""#,
            r#""\ude00""#,
            r#""\ud83d\u0041""#,
            "{\"a\" 1}",
            "[1 2]",
            "\"unterminated",
        ] {
            agrees(doc.as_bytes());
        }
        agrees(b"\"\xff\"");
        agrees(b"[\"\xc3\"]");
    }

    #[test]
    fn numbers_out_of_f64_range_are_refused_as_serde_json_refuses_them() {
        for doc in [
            "1e308",
            "1.7976931348623157e308",
            "1.8e308",
            "1e309",
            "-1e309",
            "1e-400",
            "0e99999",
            "0.000e400",
            "0.0001e312",
            "0.0001e313",
            "1e99999999999999999999",
            "1e-99999999999999999999",
            "[1E+308, 10e308]",
        ] {
            agrees(doc.as_bytes());
        }
        agrees("9".repeat(308).as_bytes());
        agrees("9".repeat(309).as_bytes());
        agrees(format!("1{}", "0".repeat(308)).as_bytes());
    }

    #[test]
    fn nesting_stops_where_serde_json_stops() {
        for depth in [1, 64, 127, 128, 129, 500] {
            let doc = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            agrees(doc.as_bytes());
            let doc = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
            agrees(doc.as_bytes());
        }
    }

    #[test]
    fn agrees_with_serde_json_on_generated_documents() {
        // A small deterministic generator of near-JSON: valid pieces, broken pieces, noise.
        let pieces: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"k\"",
            "\"v\\n\"",
            "\"\\u00e9\"",
            "1",
            "-2",
            "3.5",
            "1e9",
            "true",
            "false",
            "null",
            " ",
            "\"",
            "\\",
            "0",
            "\u{e9}",
            "\"\\ud83d\\ude00\"",
        ];
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            let mut doc = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for i in 0..(x % 12) {
                doc.push_str(pieces[((x >> (i * 5)) % pieces.len() as u64) as usize]);
            }
            agrees(doc.as_bytes());
        }
    }

    #[test]
    fn pick_takes_known_members_and_refuses_repeats() {
        let v = parse(br#"{"a":"x","b":7,"zz":[1],"c":null}"#).unwrap();
        let [a, b, c, d] = v.pick(["a", "b", "c", "d"]).unwrap();
        assert_eq!(a.and_then(Value::as_str), Some("x"));
        assert_eq!(b.and_then(Value::as_u64), Some(7));
        assert!(matches!(c, Some(Value::Null)) && d.is_none());
        assert_eq!(opt_str(c), Ok(None));
        assert_eq!(opt_u64(a), Err(()));
        let repeated = parse(br#"{"a":1,"zz":2,"a":3}"#).unwrap();
        assert!(repeated.pick(["a"]).is_none());
        assert!(
            repeated.pick(["zz"]).is_some(),
            "only the picked members count"
        );
        assert!(parse(b"[1]").unwrap().pick(["a"]).is_none());
    }

    #[test]
    fn integers_are_read_as_serde_json_reads_them() {
        let n = |t: &'static str| Value::Number(t);
        assert_eq!(n("0").as_u64(), Some(0));
        assert_eq!(n("18446744073709551615").as_u64(), Some(u64::MAX));
        assert_eq!(n("18446744073709551616").as_u64(), None);
        assert_eq!(n("-1").as_u64(), None);
        assert_eq!(n("1.0").as_u64(), None);
        assert_eq!(n("1e3").as_u64(), None);
        assert_eq!(n("-9223372036854775808").as_i64(), Some(i64::MIN));
        assert_eq!(n("-0").as_i64(), None);
        assert_eq!(n("9223372036854775808").as_i64(), None);
    }

    #[test]
    fn writes_what_serde_json_writes() {
        for s in [
            "plain",
            "quote \" backslash \\ slash /",
            "controls \n \r \t \u{8} \u{c} \u{0} \u{1f} \u{7f}",
            "unicode é 😀 \u{2028}",
            "",
        ] {
            let mut ours = String::new();
            write_str(&mut ours, s);
            assert_eq!(ours, serde_json::to_string(s).unwrap());
        }
        let o = Object::new()
            .str("a", "x\"y")
            .num("n", 18446744073709551615u64)
            .num("z", 0u8)
            .opt_str("skip", None)
            .opt_num("m", Some(5))
            .raw("list", &string_array(["p", "q"]))
            .raw("empty", &array(Vec::new()))
            .finish();
        assert_eq!(
            o,
            r#"{"a":"x\"y","n":18446744073709551615,"z":0,"m":5,"list":["p","q"],"empty":[]}"#
        );
        assert_eq!(Object::new().finish(), "{}");
    }
}
