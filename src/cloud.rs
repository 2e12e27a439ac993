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
    pub(crate) fn private_dns_zone(self, service: TokenService) -> &'static str {
        match (self, service) {
            (Cloud::Public, TokenService::Vault) => "privatelink.vaultcore.azure.net",
            (Cloud::UsGov, TokenService::Vault) => "privatelink.vaultcore.usgovcloudapi.net",
            (Cloud::China, TokenService::Vault) => "privatelink.vaultcore.azure.cn",
            (Cloud::Public, TokenService::Blob) => "privatelink.blob.core.windows.net",
            (Cloud::UsGov, TokenService::Blob) => "privatelink.blob.core.usgovcloudapi.net",
            (Cloud::China, TokenService::Blob) => "privatelink.blob.core.chinacloudapi.cn",
            (Cloud::Public, TokenService::Registry) => "privatelink.azurecr.io",
            (Cloud::UsGov, TokenService::Registry) => "privatelink.azurecr.us",
            (Cloud::China, TokenService::Registry) => "privatelink.azurecr.cn",
        }
    }

    pub(crate) fn service_suffix(self, service: TokenService) -> &'static str {
        match (self, service) {
            (Cloud::Public, TokenService::Vault) => ".vault.azure.net",
            (Cloud::UsGov, TokenService::Vault) => ".vault.usgovcloudapi.net",
            (Cloud::China, TokenService::Vault) => ".vault.azure.cn",
            (Cloud::Public, TokenService::Blob) => ".blob.core.windows.net",
            (Cloud::UsGov, TokenService::Blob) => ".blob.core.usgovcloudapi.net",
            (Cloud::China, TokenService::Blob) => ".blob.core.chinacloudapi.cn",
            (Cloud::Public, TokenService::Registry) => ".azurecr.io",
            (Cloud::UsGov, TokenService::Registry) => ".azurecr.us",
            (Cloud::China, TokenService::Registry) => ".azurecr.cn",
        }
    }
}

/// The services a bearer token is sent to, for the host rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenService {
    Vault,
    Blob,
    Registry,
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
            let suffix = entry.strip_prefix("*.");
            let name = suffix.unwrap_or(entry);
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !valid {
                return Err(format!(
                    "entry {} is not a host name, IP address or *.suffix",
                    hosts.len() + 1
                ));
            }
            // `*.com` would trust every host under a public suffix: a wildcard needs a domain.
            if suffix.is_some() && !name.trim_matches('.').contains('.') {
                return Err(format!(
                    "entry {} trusts a whole top-level domain: a wildcard needs at least two labels (*.example.com)",
                    hosts.len() + 1
                ));
            }
            hosts.push(entry.to_ascii_lowercase());
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
    service: TokenService,
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
            TokenService::Blob,
            "acct.blob.core.windows.net"
        ));
        assert!(!may_receive(
            c,
            &none,
            TokenService::Blob,
            "blob.core.windows.net"
        ));
        assert!(!may_receive(
            c,
            &none,
            TokenService::Blob,
            "acct.blob.core.windows.net.evil.com"
        ));
        assert!(!may_receive(
            c,
            &none,
            TokenService::Blob,
            "evilblob.core.windows.net"
        ));
        assert!(!may_receive(
            c,
            &none,
            TokenService::Blob,
            "acct.vault.azure.net"
        ));
        assert!(!may_receive(
            Cloud::China,
            &none,
            TokenService::Blob,
            "a.blob.core.windows.net"
        ));
        assert!(may_receive(
            c,
            &none,
            TokenService::Registry,
            "hub.azurecr.io"
        ));
        assert!(may_receive_assertion(c, &none, "login.microsoftonline.com"));
        assert!(!may_receive_assertion(c, &none, "login.microsoftonline.us"));
        assert!(!may_receive_assertion(c, &none, "evil.example"));
    }

    #[test]
    fn trusted_hosts_extend_exactly() {
        let t = TrustedHosts::parse(" 127.0.0.1, *.Sandbox.test ").unwrap();
        assert!(may_receive(
            Cloud::Public,
            &t,
            TokenService::Blob,
            "127.0.0.1"
        ));
        assert!(may_receive(
            Cloud::Public,
            &t,
            TokenService::Vault,
            "v.sandbox.test"
        ));
        assert!(!may_receive(
            Cloud::Public,
            &t,
            TokenService::Vault,
            "sandbox.test"
        ));
        assert!(!may_receive(
            Cloud::Public,
            &t,
            TokenService::Vault,
            "127.0.0.2"
        ));
        assert!(may_receive_assertion(Cloud::Public, &t, "127.0.0.1"));
        assert!(TrustedHosts::parse("a b").is_err());
        assert!(TrustedHosts::parse("https://x").is_err());
        assert!(TrustedHosts::parse("*.").is_err());
        assert!(TrustedHosts::parse("*.com").is_err());
        assert!(TrustedHosts::parse("*.sandbox.test, localhost").is_ok());
    }
}
