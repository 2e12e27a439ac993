//! The Azure clouds: which hosts may receive which token, and the resources tokens are for.
//! A leaf module: everything else asks it, so a host rule lives once.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cloud {
    Public,
    UsGov,
    China,
}

impl Cloud {
    pub(crate) fn parse(value: &str) -> Option<Cloud> {
        match value.to_ascii_lowercase().as_str() {
            "" | "public" | "azurecloud" => Some(Cloud::Public),
            "usgov" | "azureusgovernment" => Some(Cloud::UsGov),
            "china" | "azurechinacloud" => Some(Cloud::China),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Cloud::Public => "public",
            Cloud::UsGov => "usgov",
            Cloud::China => "china",
        }
    }

    /// Entra's login host: the only host that receives the managed identity's assertion.
    pub(crate) fn login_host(self) -> &'static str {
        match self {
            Cloud::Public => "login.microsoftonline.com",
            Cloud::UsGov => "login.microsoftonline.us",
            Cloud::China => "login.chinacloudapi.cn",
        }
    }

    pub(crate) fn exchange_audience(self) -> &'static str {
        match self {
            Cloud::Public => "api://AzureADTokenExchange",
            Cloud::UsGov => "api://AzureADTokenExchangeUSGov",
            Cloud::China => "api://AzureADTokenExchangeChina",
        }
    }

    /// Key Vault's token resource; a vault's challenge must name exactly this.
    pub(crate) fn vault_resource(self) -> &'static str {
        match self {
            Cloud::Public => "https://vault.azure.net",
            Cloud::UsGov => "https://vault.usgovcloudapi.net",
            Cloud::China => "https://vault.azure.cn",
        }
    }

    /// Storage uses one resource URI in every cloud.
    pub(crate) fn storage_resource(self) -> &'static str {
        "https://storage.azure.com"
    }

    /// The registry audience works in every cloud, whether or not the registry also accepts
    /// ARM-audience tokens.
    pub(crate) fn registry_resource(self) -> &'static str {
        "https://containerregistry.azure.net"
    }

    /// Hosts that may receive a token for `service` in this cloud: `*.suffix` entries.
    /// The private DNS zone a private endpoint of `service` registers in: what must be linked to
    /// the cluster's VNet for the service's name to resolve to the endpoint.
    pub(crate) fn private_dns_zone(self, service: Service) -> &'static str {
        match (self, service) {
            (Cloud::Public, Service::KeyVault) => "privatelink.vaultcore.azure.net",
            (Cloud::UsGov, Service::KeyVault) => "privatelink.vaultcore.usgovcloudapi.net",
            (Cloud::China, Service::KeyVault) => "privatelink.vaultcore.azure.cn",
            (Cloud::Public, Service::Blob) => "privatelink.blob.core.windows.net",
            (Cloud::UsGov, Service::Blob) => "privatelink.blob.core.usgovcloudapi.net",
            (Cloud::China, Service::Blob) => "privatelink.blob.core.chinacloudapi.cn",
            (Cloud::Public, Service::Registry) => "privatelink.azurecr.io",
            (Cloud::UsGov, Service::Registry) => "privatelink.azurecr.us",
            (Cloud::China, Service::Registry) => "privatelink.azurecr.cn",
        }
    }

    pub(crate) fn service_suffix(self, service: Service) -> &'static str {
        match (self, service) {
            (Cloud::Public, Service::KeyVault) => ".vault.azure.net",
            (Cloud::UsGov, Service::KeyVault) => ".vault.usgovcloudapi.net",
            (Cloud::China, Service::KeyVault) => ".vault.azure.cn",
            (Cloud::Public, Service::Blob) => ".blob.core.windows.net",
            (Cloud::UsGov, Service::Blob) => ".blob.core.usgovcloudapi.net",
            (Cloud::China, Service::Blob) => ".blob.core.chinacloudapi.cn",
            (Cloud::Public, Service::Registry) => ".azurecr.io",
            (Cloud::UsGov, Service::Registry) => ".azurecr.us",
            (Cloud::China, Service::Registry) => ".azurecr.cn",
        }
    }
}

/// The Azure services tenant-bridge reads: what a route serves, which resource its tokens are
/// for and which hosts may receive them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    KeyVault,
    Blob,
    Registry,
}

impl Service {
    /// The service's name in logs and problem details.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Service::KeyVault => "Key Vault",
            Service::Blob => "Blob Storage",
            Service::Registry => "the container registry",
        }
    }
}

/// Domains under which anyone can create a host name: the clouds' services (one trusted list
/// serves every service, so `*.blob.core.windows.net` would send vault tokens and the
/// assertion to any storage account), Azure's shared hosting, and common hosting and
/// wildcard-DNS domains. Not the whole Public Suffix List (246 KB, more than half the
/// component): the ones a token would plausibly be pointed at.
const SHARED_SUFFIXES: &[&str] = &[
    // The clouds' token services.
    "vault.azure.net",
    "vault.usgovcloudapi.net",
    "vault.azure.cn",
    "blob.core.windows.net",
    "blob.core.usgovcloudapi.net",
    "blob.core.chinacloudapi.cn",
    "azurecr.io",
    "azurecr.us",
    "azurecr.cn",
    // Other Azure services and hosting with customer-chosen names.
    "web.core.windows.net",
    "dfs.core.windows.net",
    "file.core.windows.net",
    "queue.core.windows.net",
    "table.core.windows.net",
    "database.windows.net",
    "servicebus.windows.net",
    "azurewebsites.net",
    "azurewebsites.us",
    "chinacloudsites.cn",
    "azurecontainer.io",
    "azurecontainerapps.io",
    "azurestaticapps.net",
    "azure-mobile.net",
    "azure-api.net",
    "azure-devices.net",
    "azurefd.net",
    "azureedge.net",
    "trafficmanager.net",
    "cloudapp.net",
    "cloudapp.azure.com",
    "usgovcloudapp.net",
    "chinacloudapp.cn",
    // Common hosting and wildcard DNS (nip.io resolves any name to the IP it spells).
    "github.io",
    "githubusercontent.com",
    "herokuapp.com",
    "appspot.com",
    "amazonaws.com",
    "cloudfront.net",
    "web.app",
    "firebaseapp.com",
    "vercel.app",
    "netlify.app",
    "pages.dev",
    "workers.dev",
    "onrender.com",
    "fly.dev",
    "ngrok.io",
    "ngrok-free.app",
    "nip.io",
    "sslip.io",
];

/// A DNS label: 1-63 letters, digits and '-', not at either end.
fn is_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Why a wildcard's `domain` (lowercase, valid labels) may not be trusted, if it may not.
fn wildcard_refusal(domain: &str) -> Option<&'static str> {
    if !domain.contains('.') {
        return Some(
            "trusts a whole top-level domain: a wildcard needs at least two labels (*.example.com)",
        );
    }
    // No top-level domain is numeric: `*.0.0.1` is part of an IP address and trusts 10.0.0.1.
    if domain
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Some("is part of an IP address; list IP addresses one by one");
    }
    let covers = |shared: &str| {
        shared == domain
            || shared
                .strip_suffix(domain)
                .is_some_and(|rest| rest.ends_with('.'))
    };
    SHARED_SUFFIXES.iter().any(|s| covers(s)).then_some(
        "covers a domain where anyone can create a host (a cloud service's or a hosting \
         provider's); list the hosts themselves",
    )
}

/// Hosts the operator trusts in addition to the cloud's own (`trusted_token_hosts`): exact
/// names or `*.suffix` patterns, lowercase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TrustedHosts(Vec<String>);

impl TrustedHosts {
    /// Comma-separated entries; an entry is a host name, an IP address or `*.suffix`.
    pub(crate) fn parse(raw: &str) -> Result<TrustedHosts, String> {
        let mut hosts = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let entry = entry.to_ascii_lowercase();
            let suffix = entry.strip_prefix("*.");
            let name = suffix.unwrap_or(&entry);
            if !name.split('.').all(is_label) {
                return Err(format!(
                    "entry {} is not a host name, IP address or *.suffix",
                    hosts.len() + 1
                ));
            }
            if let Some(why) = suffix.and_then(wildcard_refusal) {
                return Err(format!("entry {} {why}", hosts.len() + 1));
            }
            hosts.push(entry);
        }
        Ok(TrustedHosts(hosts))
    }

    fn allows(&self, host: &str) -> bool {
        self.0.iter().any(|entry| match entry.strip_prefix('*') {
            Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
            None => entry == host,
        })
    }
}

/// Whether `host` may receive a token for `service`: the cloud's own suffix, or a trusted host.
pub(crate) fn may_receive(
    cloud: Cloud,
    trusted: &TrustedHosts,
    service: Service,
    host: &str,
) -> bool {
    let suffix = cloud.service_suffix(service);
    (host.len() > suffix.len() && host.ends_with(suffix)) || trusted.allows(host)
}

/// Whether `host` may receive the managed identity's assertion: the cloud's login host, or a
/// trusted host.
pub(crate) fn may_receive_assertion(cloud: Cloud, trusted: &TrustedHosts, host: &str) -> bool {
    host == cloud.login_host() || trusted.allows(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_aliases() {
        assert_eq!(Cloud::parse("China"), Some(Cloud::China));
        assert_eq!(Cloud::parse("AzureUSGovernment"), Some(Cloud::UsGov));
        assert_eq!(Cloud::parse(""), Some(Cloud::Public));
        assert_eq!(Cloud::parse("mars"), None);
    }

    #[test]
    fn tokens_go_only_to_the_clouds_own_hosts() {
        let none = TrustedHosts::default();
        let c = Cloud::Public;
        assert!(may_receive(
            c,
            &none,
            Service::Blob,
            "acct.blob.core.windows.net"
        ));
        assert!(!may_receive(
            c,
            &none,
            Service::Blob,
            "blob.core.windows.net"
        ));
        assert!(!may_receive(
            c,
            &none,
            Service::Blob,
            "acct.blob.core.windows.net.evil.com"
        ));
        assert!(!may_receive(
            c,
            &none,
            Service::Blob,
            "evilblob.core.windows.net"
        ));
        assert!(!may_receive(
            c,
            &none,
            Service::Blob,
            "acct.vault.azure.net"
        ));
        assert!(!may_receive(
            Cloud::China,
            &none,
            Service::Blob,
            "a.blob.core.windows.net"
        ));
        assert!(may_receive(c, &none, Service::Registry, "hub.azurecr.io"));
        assert!(may_receive_assertion(c, &none, "login.microsoftonline.com"));
        assert!(!may_receive_assertion(c, &none, "login.microsoftonline.us"));
        assert!(!may_receive_assertion(c, &none, "evil.example"));
    }

    #[test]
    fn trusted_hosts_extend_exactly() {
        let t = TrustedHosts::parse(" 127.0.0.1, *.Sandbox.test ").unwrap();
        assert!(may_receive(Cloud::Public, &t, Service::Blob, "127.0.0.1"));
        assert!(may_receive(
            Cloud::Public,
            &t,
            Service::KeyVault,
            "v.sandbox.test"
        ));
        assert!(!may_receive(
            Cloud::Public,
            &t,
            Service::KeyVault,
            "sandbox.test"
        ));
        assert!(!may_receive(
            Cloud::Public,
            &t,
            Service::KeyVault,
            "127.0.0.2"
        ));
        assert!(may_receive_assertion(Cloud::Public, &t, "127.0.0.1"));
        assert!(TrustedHosts::parse("a b").is_err());
        assert!(TrustedHosts::parse("https://x").is_err());
        assert!(TrustedHosts::parse("*.").is_err());
        assert!(TrustedHosts::parse("*.com").is_err());
        assert!(TrustedHosts::parse("*.sandbox.test, localhost").is_ok());
    }

    #[test]
    fn wildcards_never_cover_ip_addresses_or_shared_domains() {
        for bad in [
            "*.0.0.1",
            "*.168.1.1",
            "*.azurewebsites.net",
            "*.AzureWebsites.net",
            "*.blob.core.windows.net",
            "*.core.windows.net",
            "*.windows.net",
            "*.azure.com",
            "*.vault.azure.net",
            "*.azurecr.io",
            "*.nip.io",
            "*.github.io",
            "a..b",
            ".a.b",
            "-a.b",
            "*.a-.b",
        ] {
            assert!(TrustedHosts::parse(bad).is_err(), "{bad}");
        }
        // One app's or account's own domain, exact names and IPs stay possible.
        let t = TrustedHosts::parse(
            "*.myapp.azurewebsites.net, proxy.azurewebsites.net, *.corp.example, 10.0.0.1, *.a1.example",
        )
        .unwrap();
        assert!(t.allows("x.myapp.azurewebsites.net") && t.allows("10.0.0.1"));
        assert!(!t.allows("other.azurewebsites.net") && !t.allows("10.0.0.2"));
    }
}
