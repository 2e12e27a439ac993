//! `allowed_outbound_hosts`, parsed and matched the way Spin 3.6.3 does it
//! (`spin-outbound-networking-config`'s `AllowedHostConfig`), so that an entry Spin rejects is
//! rejected here too and a URL Spin denies is denied here too.

use std::net::IpAddr;

/// One parsed `allowed_outbound_hosts` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: SchemeCfg,
    host: HostCfg,
    port: PortCfg,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum SchemeCfg {
    Any,
    One(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostCfg {
    Any,
    /// `*.example.com`, stored as the suffix `.example.com`.
    AnySubdomain(String),
    /// `self` / `self.alt`: only relative (self) requests, never an absolute URL.
    ToSelf,
    Exact(String),
    Cidr(IpAddr, u8),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PortCfg {
    Any,
    Port(u16),
    /// Half-open like Spin's `Range<u16>`: `a..b` allows a <= p < b.
    Range(u16, u16),
}

fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl AllowedHost {
    /// Spin's `AllowedHostConfig::parse`.
    pub fn parse(entry: &str) -> Result<AllowedHost, String> {
        let url = entry.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(match url {
                "*" | ":" | "" | "?" => format!(
                    "{url:?} is not an allowed outbound host format. Hosts must be in the form \
                     <scheme>://<host>[:<port>], with '*' wildcards allowed for each."
                ),
                _ => format!("{url:?} does not contain a scheme (e.g., 'http://' or '*://')"),
            });
        };
        let (host, port_part) = rest.rsplit_once(':').unwrap_or((rest, ""));
        let port = match port_part.split_once('/') {
            Some((port, path)) => {
                if !path.is_empty() {
                    return Err(format!("{url:?} has a path but is not allowed to"));
                }
                port
            }
            None => port_part,
        };
        Ok(AllowedHost {
            scheme: parse_scheme(scheme)?,
            host: parse_host(host)?,
            port: parse_port(port, scheme)?,
        })
    }

    /// Spin's `AllowedHostConfig::allows` for an absolute URL.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let scheme_ok = match &self.scheme {
            SchemeCfg::Any => true,
            SchemeCfg::One(s) => s == scheme,
        };
        let host_ok = match &self.host {
            HostCfg::Any => true,
            HostCfg::AnySubdomain(suffix) => host.ends_with(suffix.as_str()),
            HostCfg::ToSelf => false,
            HostCfg::Exact(h) => h == host,
            HostCfg::Cidr(net, len) => host
                .parse::<IpAddr>()
                .is_ok_and(|ip| cidr_contains(*net, *len, ip)),
        };
        let port_ok = match &self.port {
            PortCfg::Any => true,
            other => match port.or_else(|| well_known_port(scheme)) {
                None => false,
                Some(p) => match other {
                    PortCfg::Port(q) => *q == p,
                    PortCfg::Range(a, b) => (*a..*b).contains(&p),
                    PortCfg::Any => true,
                },
            },
        };
        scheme_ok && host_ok && port_ok
    }
}

fn parse_scheme(scheme: &str) -> Result<SchemeCfg, String> {
    if scheme == "*" {
        return Ok(SchemeCfg::Any);
    }
    if scheme.starts_with('{') {
        return Err("scheme lists are not yet supported".into());
    }
    if scheme.chars().any(|c| !c.is_alphabetic()) {
        return Err(format!(
            "scheme {scheme:?} contains non alphabetic character"
        ));
    }
    Ok(SchemeCfg::One(scheme.to_string()))
}

fn parse_host(host: &str) -> Result<HostCfg, String> {
    let host = host.trim();
    if host == "*" {
        return Ok(HostCfg::Any);
    }
    if host == "self" || host == "self.alt" {
        return Ok(HostCfg::ToSelf);
    }
    if host.starts_with('{') {
        return Err("host lists are not yet supported".into());
    }
    if let Some((net, len)) = parse_cidr_truncate(host) {
        return Ok(HostCfg::Cidr(net, len));
    }
    if matches!(host.split('/').nth(1), Some(path) if !path.is_empty()) {
        return Err("hosts must not contain paths".into());
    }
    if let Some(domain) = host.strip_prefix("*.") {
        if domain.contains('*') {
            return Err(format!(
                "Invalid allowed host {host}: wildcards are allowed only as prefixes"
            ));
        }
        return Ok(HostCfg::AnySubdomain(format!(".{domain}")));
    }
    if host.contains('*') {
        return Err(format!(
            "Invalid allowed host {host}: wildcards are allowed only as subdomains"
        ));
    }
    Ok(HostCfg::Exact(host.trim_end_matches('/').to_string()))
}

fn parse_port(port: &str, scheme: &str) -> Result<PortCfg, String> {
    if port.is_empty() {
        return well_known_port(scheme).map(PortCfg::Port).ok_or_else(|| {
            format!(
                "no port was provided and the scheme {scheme:?} does not have a known default port number"
            )
        });
    }
    if port == "*" {
        return Ok(PortCfg::Any);
    }
    if port.starts_with('{') {
        return Err("port lists are not yet supported".into());
    }
    if let Some((start, end)) = port.split_once("..") {
        let bad = || format!("port range {port:?} contains non-number");
        return Ok(PortCfg::Range(
            start.parse().map_err(|_| bad())?,
            end.parse().map_err(|_| bad())?,
        ));
    }
    port.parse()
        .map(PortCfg::Port)
        .map_err(|_| format!("port {port:?} is not a number"))
}

/// `ip_network::IpNetwork::from_str_truncate`: only `ip/len` (a bare IP is not a network there,
/// and falls through to an exact host match).
fn parse_cidr_truncate(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = s.split_once('/')?;
    if ip.is_empty() || len.is_empty() {
        return None;
    }
    let ip: IpAddr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if len > max {
        return None;
    }
    Some((mask(ip, len), len))
}

fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            IpAddr::V6((u128::from(v6) & m).into())
        }
    }
}

fn cidr_contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    net.is_ipv4() == ip.is_ipv4() && mask(ip, len) == net
}

/// A component's list, as Spin holds it at request time: either every entry parsed, or the
/// error of the first that did not (then every request is denied).
pub type AllowedList = Result<Vec<AllowedHost>, String>;

/// Spin's `AllowedHostsConfig::parse` over already-resolved entries.
pub fn parse_list<S: AsRef<str>>(entries: &[S]) -> AllowedList {
    if entries.len() == 1 && entries[0].as_ref() == "insecure:allow-all" {
        return Err("'insecure:allow-all' is not allowed - use '*://*:*' instead if you really want to allow all outbound traffic".into());
    }
    entries
        .iter()
        .map(|e| AllowedHost::parse(e.as_ref()).map_err(|err| format!("{:?}: {err}", e.as_ref())))
        .collect()
}

/// Whether `uri` (absolute) is allowed by `list`.
pub fn allows(list: &[AllowedHost], uri: &http::Uri) -> bool {
    let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
    let Some(host) = uri.host() else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    // Like `url::Url::port()`: the scheme's default port counts as "no port".
    let port = uri
        .port_u16()
        .filter(|p| Some(*p) != well_known_port(&scheme));
    list.iter().any(|h| h.allows(&scheme, &host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(entry: &str) -> AllowedHost {
        AllowedHost::parse(entry).unwrap_or_else(|e| panic!("{entry}: {e}"))
    }

    fn uri(s: &str) -> http::Uri {
        s.parse().unwrap()
    }

    fn allowed(entries: &[&str], url: &str) -> bool {
        allows(&parse_list(entries).unwrap(), &uri(url))
    }

    #[test]
    fn paths_are_rejected_like_spin() {
        for bad in [
            "https://127.0.0.1:10000/devstoreaccount1",
            "https://example.com/path",
            "https://example.com:443/x",
            "http://127.0.0.1/x",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad} must not parse");
        }
        // a trailing slash is no path
        assert_eq!(ok("https://example.com:443/"), ok("https://example.com"));
        assert_eq!(ok("https://example.com/"), ok("https://example.com"));
    }

    #[test]
    fn empty_and_schemeless_entries_are_errors() {
        for bad in [
            "",
            "*",
            "example.com",
            "example.com:443",
            "ht1p://x",
            "https://x:abc",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad:?} must not parse");
        }
        assert!(AllowedHost::parse("gopher://x").is_err(), "no default port");
        assert!(parse_list(&["https://ok.example", ""]).is_err());
        assert!(parse_list(&["insecure:allow-all"]).is_err());
    }

    #[test]
    fn wildcards_ports_and_cidrs() {
        assert!(allowed(&["*://*:*"], "http://anything:1234/x"));
        assert!(allowed(
            &["https://*.vault.azure.net"],
            "https://tenant-a.vault.azure.net/secrets/x"
        ));
        assert!(!allowed(
            &["https://*.vault.azure.net"],
            "https://vault.azure.net/"
        ));
        assert!(!allowed(
            &["https://*.vault.azure.net"],
            "http://a.vault.azure.net/"
        ));
        assert!(!allowed(
            &["https://*.vault.azure.net"],
            "https://a.vault.azure.net:8443/"
        ));
        assert!(allowed(
            &["https://*.vault.azure.net:*"],
            "https://a.vault.azure.net:8443/"
        ));
        assert!(allowed(&["https://a.example:443"], "https://a.example/"));
        assert!(allowed(&["https://a.example"], "https://a.example:443/"));
        assert!(allowed(&["http://h:8000..8010"], "http://h:8009/"));
        assert!(!allowed(&["http://h:8000..8010"], "http://h:8010/"));
        assert!(allowed(&["*://h:80"], "http://h/"));
        assert!(!allowed(&["*://h:80"], "https://h/"));
        assert!(allowed(
            &["http://169.254.169.254"],
            "http://169.254.169.254/metadata/identity/oauth2/token?x=1"
        ));
        assert!(allowed(&["http://127.0.0.0/8:*"], "http://127.0.0.1:9/"));
        assert!(!allowed(&["http://10.0.0.0/8:*"], "http://127.0.0.1:9/"));
        assert!(!allowed(&["http://self"], "http://self/"));
        // Spin compares the entry as written with the URL's lowercased host and scheme
        assert!(
            AllowedHost::parse("HTTPS://example.com").is_err(),
            "no default port"
        );
        assert!(!allowed(&["https://Example.COM"], "https://example.com/"));
        assert!(allowed(&["https://example.com"], "https://EXAMPLE.com/"));
    }

    #[test]
    fn cidr_parse_truncates() {
        assert_eq!(
            parse_cidr_truncate("10.1.2.3/8"),
            Some(("10.0.0.0".parse().unwrap(), 8))
        );
        assert_eq!(parse_cidr_truncate("10.1.2.3"), None);
        assert_eq!(parse_cidr_truncate("10.1.2.3/33"), None);
        assert_eq!(parse_cidr_truncate("127.0.0.1/devstoreaccount1"), None);
        assert_eq!(
            parse_cidr_truncate("fe80::1/10"),
            Some(("fe80::".parse().unwrap(), 10))
        );
    }
}
