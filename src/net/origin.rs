//! Origins (`scheme://host[:port]`), parsed strictly: they come from endpoint variables that
//! also feed Spin's `allowed_outbound_hosts`, and they decide where tokens go.
//!
//! Spin 3.6.3 denies *every* outbound request of a component when one `allowed_outbound_hosts`
//! entry resolves to something that is not an origin, so a path is refused here with a reason.

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

/// A host name (ASCII letters, digits, `-`, `.` — internationalised names in their `xn--`
/// form), an IPv4 address, or a bracketed IPv6 address.
pub(crate) fn valid_host(host: &str) -> bool {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
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

/// Parses an origin; a trailing `/` is tolerated (Spin trims it too). The error says why
/// without repeating the value (it may be a secret in the wrong variable).
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
        return Err("credentials do not belong in an endpoint".into());
    }
    if rest.contains(['/', '?', '#']) {
        return Err(
            "it has a path or query; it must be an origin like https://name.example.net[:port] \
             (Spin's allowed_outbound_hosts accepts only origins and otherwise denies every \
             outbound request; put an account path in its own *_path variable)"
                .into(),
        );
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && !port.contains(']') => {
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or("its port is not a number from 1 to 65535")?;
            (host, Some(port))
        }
        _ => (rest, None),
    };
    let host = host.to_ascii_lowercase();
    if !valid_host(&host) {
        return Err(
            "its host is not a DNS name or IP address (write internationalised names in their \
             xn-- form)"
                .into(),
        );
    }
    let default = if https { 443 } else { 80 };
    Ok(Origin {
        https,
        host,
        port: port.filter(|p| *p != default),
    })
}

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
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_never_repeat_the_value() {
        let e = parse("https://secret-value@h").unwrap_err();
        assert!(!e.contains("secret-value"));
    }
}
