//! Origins (`scheme://host[:port]`), parsed by `url` and held to stricter rules: they come from
//! the endpoint settings, and they decide where tokens go. A path is refused with a reason (an
//! account path has a setting of its own).

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub https: bool,
    /// Lowercase; IPv6 addresses keep their brackets.
    pub host: String,
    /// `None` for the scheme's default port.
    pub port: Option<u16>,
}

impl Origin {
    /// `host[:port]` as it goes into the request authority.
    pub(crate) fn authority(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.authority())
    }
}

/// A DNS name as DNS allows it, stricter than `Url`'s domains: ASCII letters, digits and `-`
/// (internationalised names in their `xn--` form), labels of 1 to 63 characters that neither
/// start nor end with `-`, 253 characters at most.
fn dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Parses an origin with `url::Url`, and keeps stricter rules on top of it: the scheme exactly
/// `https://` or `http://`; no userinfo, path, query or fragment (a trailing `/` is tolerated:
/// Spin trims it too); a port from 1 to 65535; and the host exactly as written (lower-cased):
/// a DNS name of ASCII letters, digits and `-`, or an IP address. `Url` would turn `bücher` into
/// its `xn--` form, `0x7f.1` or `127.1` into `127.0.0.1`, and drop tabs; those are refused here,
/// since the host decides where tokens go. IPv6 addresses take `Url`'s canonical form. The
/// error says why without repeating the value (it may be a secret in the wrong variable).
pub(crate) fn parse(value: &str) -> Result<Origin, String> {
    let value = value.trim();
    let value = value.strip_suffix('/').unwrap_or(value);
    let (https, rest) = if let Some(rest) = value.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = value.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err("it must start with https:// (or http:// for IMDS)".into());
    };
    if rest.contains('@') {
        return Err(CREDENTIALS.into());
    }
    if rest.contains(['/', '?', '#']) {
        return Err(PATH.into());
    }
    let bad_host = || {
        "its host is not a DNS name or IP address (write internationalised names in their \
         xn-- form)"
            .to_string()
    };
    let bad_port = || "its port is not a number from 1 to 65535".to_string();
    // Only the characters a host and port are written with reach `Url`: its IDNA step then has
    // nothing to map. The ASCII-only backend (Cargo.toml) asserts in debug builds that it is
    // never handed upper-case ASCII beside non-ASCII, and `Url` percent-decodes a host first, so
    // `%ae` is as non-ASCII as `®` (fuzz/corpus/challenge/crash-idna-*).
    if !rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
    {
        return Err(bad_host());
    }
    let url = url::Url::parse(value).map_err(|e| match e {
        url::ParseError::InvalidPort => bad_port(),
        _ => bad_host(),
    })?;
    // What the checks above already rule out, asked of the parser too.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(CREDENTIALS.into());
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(PATH.into());
    }
    // The host as written: what precedes a `:port` (an IPv6 address keeps its brackets).
    let written = match rest.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => {
            if port.is_empty() || url.port() == Some(0) {
                return Err(bad_port());
            }
            host
        }
        _ => rest,
    };
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        Some(url::Host::Domain(name)) if dns_name(name) && name.eq_ignore_ascii_case(written) => {
            name.to_string()
        }
        Some(url::Host::Ipv4(ip)) if ip.to_string().eq_ignore_ascii_case(written) => ip.to_string(),
        _ => return Err(bad_host()),
    };
    Ok(Origin {
        https,
        host,
        port: url.port(),
    })
}

const CREDENTIALS: &str = "credentials do not belong in an endpoint";
const PATH: &str =
    "it has a path or query; it must be an origin like https://name.example.net[:port] \
     (put an account path in its own *_path setting)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_origins_with_trailing_slash_and_port() {
        let o = parse("https://MyVault.vault.azure.net/").unwrap();
        assert_eq!(o.to_string(), "https://myvault.vault.azure.net");
        let o = parse("https://127.0.0.1:10000").unwrap();
        assert_eq!((o.host.as_str(), o.port), ("127.0.0.1", Some(10000)));
        assert_eq!(parse("https://h.example:443").unwrap().port, None);
        assert_eq!(
            parse("http://[::1]:8080").unwrap().authority(),
            "[::1]:8080"
        );
        assert!(!parse("http://169.254.169.254").unwrap().https);
    }

    #[test]
    fn refuses_paths_queries_credentials_and_odd_hosts() {
        assert!(parse("https://127.0.0.1:10000/devstoreaccount1")
            .unwrap_err()
            .contains("*_path"));
        for bad in [
            "https://h/?x=1",
            "https://h#f",
            "https://u:p@h",
            "ftp://h",
            "h.example.net",
            "https://",
            "https://h:0",
            "https://h:99999",
            "https://h:x",
            "https://exa mple.com",
            "https://bücher.example",
            "https://-a.example",
            "https://a..b",
            "https://[::1",
            "https://h:",
            "https://h:+80",
            "https://@h",
            "https://h/.",
            "https://h//",
            "https://h\\x",
            "https://h%41.example",
            "https://Host.example%ae",
            "https://h\tx.example",
            // Forms `Url` would rewrite: IPv4 shorthands, a numeric last label, bad punycode.
            "https://1.2.3",
            "https://0x7f.1",
            "https://127.000.0.1",
            "https://foo.123",
            "https://xn--zz",
            // Unicode host names (only their xn-- form is accepted).
            "https://bücher.example",
            "HTTPS://h",
            "https:h",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_are_kept_as_written_and_ipv6_canonical() {
        assert_eq!(
            parse("https://XN--BCHER-KVA.example").unwrap().host,
            "xn--bcher-kva.example"
        );
        assert_eq!(
            parse("http://[0:0::1]:8080").unwrap().authority(),
            "[::1]:8080"
        );
        assert_eq!(parse("https://h:0443").unwrap().port, None);
        assert_eq!(parse("http://h:080").unwrap().port, None);
        assert_eq!(parse("https://h:80").unwrap().port, Some(80));
        assert_eq!(
            parse("  https://a-b.c1.example/ ").unwrap().host,
            "a-b.c1.example"
        );
        assert!(parse("https://h:x").unwrap_err().contains("port"));
        assert!(parse("https://h:").unwrap_err().contains("port"));
    }

    #[test]
    fn errors_never_repeat_the_value() {
        let e = parse("https://secret-value@h").unwrap_err();
        assert!(!e.contains("secret-value"));
    }
}
