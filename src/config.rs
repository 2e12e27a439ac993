//! Spin variables → typed settings, validated at request time.
//!
//! Each route asks only for what it needs, so a same-tenant deployment never has to set the
//! cross-tenant variables. Every failure names the variable and says how to fix it.
//!
//! Endpoint variables appear in `allowed_outbound_hosts` templates, and Spin 3.6.3 denies *every*
//! outbound request of a component when one entry resolves to something that is not
//! `scheme://host[:port]` (a path, or an empty string). So endpoint variables are origins, their
//! defaults are the harmless placeholder [`UNSET`], and Azurite's account path lives in its own
//! variable.

use crate::errors::Problem;

/// Placeholder default of endpoint variables: a valid origin (so Spin can parse the allow-list)
/// in a reserved TLD that never resolves, meaning "not configured".
pub const UNSET: &str = "https://unset.invalid";

/// Read access to Spin variables; `None` when undefined. The Spin implementation lives in
/// `platform`, tests use a map.
pub trait Variables {
    fn get(&self, name: &str) -> Option<String>;
}

impl Variables for std::collections::HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).map(|v| v.to_string())
    }
}

/// Names of the Spin variables, in one place (spin.toml declares the same names).
pub mod var {
    pub const FUNCTION_KEYS: &str = "function_keys";
    pub const AUTH_DISABLED: &str = "auth_disabled";
    pub const CLOUD: &str = "cloud";
    pub const AZURE_CLIENT_ID: &str = "azure_client_id";
    pub const IMDS_ENDPOINT: &str = "imds_endpoint";
    pub const KEYVAULT_ENDPOINT: &str = "keyvault_endpoint";
    pub const BLOB_SERVICE_ENDPOINT: &str = "blob_service_endpoint";
    pub const BLOB_SERVICE_PATH: &str = "blob_service_path";
    pub const APP_CLIENT_ID: &str = "app_client_id";
    pub const CROSS_TENANT_ID: &str = "cross_tenant_id";
    pub const CROSS_KEYVAULT_ENDPOINT: &str = "cross_keyvault_endpoint";
    pub const CROSS_BLOB_SERVICE_ENDPOINT: &str = "cross_blob_service_endpoint";
    pub const CROSS_BLOB_SERVICE_PATH: &str = "cross_blob_service_path";
    pub const AUTHORITY_HOST: &str = "authority_host";
    pub const TOKEN_EXCHANGE_AUDIENCE: &str = "token_exchange_audience";
    pub const TOKEN_CACHE_STORE: &str = "token_cache_store";
    pub const REQUEST_DEADLINE_SECS: &str = "request_deadline_secs";
    pub const RETRY_BASE_MS: &str = "retry_base_ms";
}

/// The Azure cloud: decides token resources, DNS suffixes, authority and exchange audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Public,
    UsGov,
    China,
}

impl Cloud {
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Public => "public",
            Cloud::UsGov => "usgov",
            Cloud::China => "china",
        }
    }
    pub fn authority_host(self) -> &'static str {
        match self {
            Cloud::Public => "https://login.microsoftonline.com",
            Cloud::UsGov => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }
    pub fn exchange_audience(self) -> &'static str {
        match self {
            Cloud::Public => "api://AzureADTokenExchange",
            Cloud::UsGov => "api://AzureADTokenExchangeUSGov",
            Cloud::China => "api://AzureADTokenExchangeChina",
        }
    }
    /// Token resource of Key Vault in this cloud (the challenge must agree).
    pub fn vault_resource(self) -> &'static str {
        match self {
            Cloud::Public => "https://vault.azure.net",
            Cloud::UsGov => "https://vault.usgovcloudapi.net",
            Cloud::China => "https://vault.azure.cn",
        }
    }
    /// Storage uses one resource URI in every cloud.
    pub fn storage_resource(self) -> &'static str {
        "https://storage.azure.com"
    }
    pub fn vault_suffix(self) -> &'static str {
        match self {
            Cloud::Public => "vault.azure.net",
            Cloud::UsGov => "vault.usgovcloudapi.net",
            Cloud::China => "vault.azure.cn",
        }
    }
    pub fn storage_suffix(self) -> &'static str {
        match self {
            Cloud::Public => "core.windows.net",
            Cloud::UsGov => "core.usgovcloudapi.net",
            Cloud::China => "core.chinacloudapi.cn",
        }
    }
}

/// `scheme://host[:port]` with nothing after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub https: bool,
    pub host: String,
    pub port: Option<u16>,
}

impl Origin {
    /// `host[:port]` as it goes into the request authority.
    pub fn authority(&self) -> String {
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

/// Parses an origin the way Spin's allow-list needs it; a trailing `/` is tolerated (Spin trims
/// it too), any path, query or credentials are refused with an explanation.
pub fn parse_origin(value: &str) -> Result<Origin, String> {
    let value = value.trim();
    let value = value.strip_suffix('/').unwrap_or(value);
    let url = url::Url::parse(value).map_err(|e| format!("'{value}' is not a URL ({e})"))?;
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        other => return Err(format!("scheme '{other}' is not http or https")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials do not belong in an endpoint".into());
    }
    if url.path() != "/" && !url.path().is_empty()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(format!(
            "'{value}' has a path or query; it must be an origin like https://name.example.net[:port] \
             (Spin's allowed_outbound_hosts accepts only origins and otherwise denies every outbound \
             request; put an account path in its own *_path variable)"
        ));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("'{value}' has no host"))?;
    Ok(Origin {
        https,
        host: host.to_ascii_lowercase(),
        port: url.port(),
    })
}

/// Reads a variable, treating undefined and blank alike.
fn get(vars: &dyn Variables, name: &str) -> Option<String> {
    vars.get(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

pub fn cloud(vars: &dyn Variables) -> Result<Cloud, Problem> {
    match get(vars, var::CLOUD)
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("public") | Some("azurecloud") => Ok(Cloud::Public),
        Some("usgov") | Some("azureusgovernment") => Ok(Cloud::UsGov),
        Some("china") | Some("azurechinacloud") => Ok(Cloud::China),
        Some(other) => Err(Problem::config(
            var::CLOUD,
            format!("'{other}' is not one of public, usgov, china"),
        )),
    }
}

/// An origin-valued endpoint variable that must be configured.
pub fn endpoint(vars: &dyn Variables, name: &str, what: &str) -> Result<Origin, Problem> {
    let value = get(vars, name).unwrap_or_default();
    if value.is_empty() || value.trim_end_matches('/') == UNSET {
        return Err(Problem::config_missing(name, what));
    }
    let origin = parse_origin(&value).map_err(|e| Problem::config(name, e))?;
    if origin.host.ends_with(".invalid") {
        return Err(Problem::config_missing(name, what));
    }
    Ok(origin)
}

/// An endpoint that receives bearer tokens: never over plain HTTP.
pub fn secure_endpoint(vars: &dyn Variables, name: &str, what: &str) -> Result<Origin, Problem> {
    let origin = endpoint(vars, name, what)?;
    if !origin.https {
        return Err(Problem::config(
            name,
            format!("{origin} must use https: bearer tokens are never sent over plain http"),
        ));
    }
    Ok(origin)
}

/// An optional base path such as Azurite's `/devstoreaccount1`; normalised to `""` or `/seg[/seg]`.
pub fn base_path(vars: &dyn Variables, name: &str) -> Result<String, Problem> {
    let raw = get(vars, name).unwrap_or_default();
    let trimmed = raw.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let ok = trimmed.split('/').all(|seg| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if !ok {
        return Err(Problem::config(name, format!("'{raw}' must be a path of letters, digits, '-' and '_' segments like /devstoreaccount1")));
    }
    Ok(format!("/{trimmed}"))
}

/// A GUID-valued variable (tenant id, client id); `None` when unset.
pub fn guid(vars: &dyn Variables, name: &str) -> Result<Option<String>, Problem> {
    match get(vars, name) {
        None => Ok(None),
        Some(v) if is_guid(&v) => Ok(Some(v.to_ascii_lowercase())),
        Some(v) => Err(Problem::config(
            name,
            format!(
                "'{}' is not a GUID like 00000000-0000-0000-0000-000000000000",
                crate::errors::truncate(&v, 60)
            ),
        )),
    }
}

pub fn required_guid(vars: &dyn Variables, name: &str, what: &str) -> Result<String, Problem> {
    guid(vars, name)?.ok_or_else(|| Problem::config_missing(name, what))
}

pub fn is_guid(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

pub fn flag(vars: &dyn Variables, name: &str) -> Result<bool, Problem> {
    match get(vars, name).map(|v| v.to_ascii_lowercase()).as_deref() {
        None | Some("false") | Some("0") | Some("no") => Ok(false),
        Some("true") | Some("1") | Some("yes") => Ok(true),
        Some(other) => Err(Problem::config(
            name,
            format!("'{other}' is not true or false"),
        )),
    }
}

/// The user-assigned managed identity's client id; `None` means the system-assigned identity.
pub fn managed_identity(vars: &dyn Variables) -> Result<Option<String>, Problem> {
    guid(vars, var::AZURE_CLIENT_ID)
}

pub fn imds_endpoint(vars: &dyn Variables) -> Result<Origin, Problem> {
    match get(vars, var::IMDS_ENDPOINT) {
        None => parse_origin("http://169.254.169.254")
            .map_err(|e| Problem::config(var::IMDS_ENDPOINT, e)),
        Some(v) => parse_origin(&v).map_err(|e| Problem::config(var::IMDS_ENDPOINT, e)),
    }
}

pub fn token_cache_store(vars: &dyn Variables) -> String {
    get(vars, var::TOKEN_CACHE_STORE).unwrap_or_else(|| "default".into())
}

/// A whole-number variable with a default, within bounds.
fn number(
    vars: &dyn Variables,
    name: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, Problem> {
    match get(vars, name) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(Problem::config(
                name,
                format!(
                    "'{}' is not a whole number from {} to {}",
                    crate::errors::truncate(&v, 20),
                    range.start(),
                    range.end()
                ),
            )),
        },
    }
}

/// The per-request deadline in seconds (default 30): when it runs out the caller gets a 504.
pub fn request_deadline_secs(vars: &dyn Variables) -> Result<u64, Problem> {
    number(vars, var::REQUEST_DEADLINE_SECS, 30, 1..=600)
}

/// The first retry wait in milliseconds (default 800, as the Azure SDKs); doubles per retry.
pub fn retry_base_ms(vars: &dyn Variables) -> Result<u64, Problem> {
    number(vars, var::RETRY_BASE_MS, 800, 1..=60_000)
}

/// Largest blob served (`max_blob_bytes`); `None` when 0 or unset.
pub fn max_blob_bytes(vars: &dyn Variables) -> Result<Option<u64>, Problem> {
    Ok(Some(number(vars, "max_blob_bytes", 0, 0..=u64::MAX)?).filter(|n| *n > 0))
}

/// Where a blob service lives: origin plus optional account path (Azurite path-style).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobService {
    pub origin: Origin,
    pub base_path: String,
}

/// Settings of the tenant a request targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenant {
    /// The managed identity's own tenant: IMDS tokens for the resource itself.
    Same,
    /// Tenant B: IMDS assertion exchanged at tenant B's token endpoint.
    Cross,
}

impl Tenant {
    pub fn label(self) -> &'static str {
        match self {
            Tenant::Same => "same-tenant",
            Tenant::Cross => "cross-tenant",
        }
    }
}

pub fn vault(vars: &dyn Variables, tenant: Tenant) -> Result<Origin, Problem> {
    match tenant {
        Tenant::Same => secure_endpoint(
            vars,
            var::KEYVAULT_ENDPOINT,
            "the same-tenant Key Vault URL, e.g. https://myvault.vault.azure.net",
        ),
        Tenant::Cross => secure_endpoint(
            vars,
            var::CROSS_KEYVAULT_ENDPOINT,
            "tenant B's Key Vault URL, e.g. https://theirvault.vault.azure.net",
        ),
    }
}

pub fn blob_service(vars: &dyn Variables, tenant: Tenant) -> Result<BlobService, Problem> {
    let (endpoint_var, path_var, what) = match tenant {
        Tenant::Same => (
            var::BLOB_SERVICE_ENDPOINT,
            var::BLOB_SERVICE_PATH,
            "the same-tenant Blob service URL, e.g. https://myaccount.blob.core.windows.net",
        ),
        Tenant::Cross => (
            var::CROSS_BLOB_SERVICE_ENDPOINT,
            var::CROSS_BLOB_SERVICE_PATH,
            "tenant B's Blob service URL, e.g. https://theiraccount.blob.core.windows.net",
        ),
    };
    Ok(BlobService {
        origin: secure_endpoint(vars, endpoint_var, what)?,
        base_path: base_path(vars, path_var)?,
    })
}

/// Everything the cross-tenant exchange needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub tenant_id: String,
    pub app_client_id: String,
    pub authority: Origin,
    pub audience: String,
}

pub fn exchange(vars: &dyn Variables, cloud: Cloud) -> Result<Exchange, Problem> {
    let tenant_id = required_guid(
        vars,
        var::CROSS_TENANT_ID,
        "tenant B's directory (tenant) id",
    )?;
    let app_client_id = required_guid(vars, var::APP_CLIENT_ID, "the application (client) id of the multi-tenant app registration that trusts the managed identity")?;
    let authority =
        match get(vars, var::AUTHORITY_HOST).filter(|v| v.trim_end_matches('/') != UNSET) {
            None => parse_origin(cloud.authority_host())
                .map_err(|e| Problem::config(var::AUTHORITY_HOST, e))?,
            Some(_) => secure_endpoint(vars, var::AUTHORITY_HOST, "the Entra authority host")?,
        };
    let audience = get(vars, var::TOKEN_EXCHANGE_AUDIENCE)
        .unwrap_or_else(|| cloud.exchange_audience().to_string());
    Ok(Exchange {
        tenant_id,
        app_client_id,
        authority,
        audience,
    })
}

/// Whether an endpoint variable holds something other than "not configured".
fn configured(vars: &dyn Variables, name: &str) -> bool {
    get(vars, name).is_some_and(|v| v.trim_end_matches('/') != UNSET)
}

/// The readiness check: every setting the configured endpoints need is present and valid.
/// Returns the API endpoints this configuration serves. Never calls anything upstream.
pub fn health(vars: &dyn Variables) -> Result<Vec<&'static str>, Problem> {
    if !flag(vars, var::AUTH_DISABLED)?
        && crate::auth::parse_keys(&vars.get(var::FUNCTION_KEYS).unwrap_or_default()).is_empty()
    {
        return Err(Problem::config_missing(
            var::FUNCTION_KEYS,
            "no function key is configured, so every caller would be refused",
        ));
    }
    let cloud = cloud(vars)?;
    imds_endpoint(vars)?;
    let mi = managed_identity(vars)?;
    crate::config::request_deadline_secs(vars)?;
    crate::config::retry_base_ms(vars)?;
    max_blob_bytes(vars)?;
    let mut serves = Vec::new();
    if configured(vars, var::KEYVAULT_ENDPOINT) {
        vault(vars, Tenant::Same)?;
        serves.push("GetSecretSameTenant");
    }
    if configured(vars, var::BLOB_SERVICE_ENDPOINT) {
        blob_service(vars, Tenant::Same)?;
        serves.push("DownloadBlobSameTenant");
    }
    let cross_vault = configured(vars, var::CROSS_KEYVAULT_ENDPOINT);
    let cross_blob = configured(vars, var::CROSS_BLOB_SERVICE_ENDPOINT);
    if cross_vault || cross_blob {
        exchange(vars, cloud)?;
        if mi.is_none() {
            return Err(Problem::config_missing(
                var::AZURE_CLIENT_ID,
                "cross-tenant federation works only with a user-assigned managed identity",
            ));
        }
    }
    if cross_vault {
        vault(vars, Tenant::Cross)?;
        serves.push("GetSecretCrossTenant");
    }
    if cross_blob {
        blob_service(vars, Tenant::Cross)?;
        serves.push("DownloadBlobCrossTenant");
    }
    if serves.is_empty() {
        return Err(Problem::config_missing(
            var::KEYVAULT_ENDPOINT,
            "no vault or blob endpoint is configured (keyvault_endpoint, blob_service_endpoint, cross_keyvault_endpoint, cross_blob_service_endpoint)",
        ));
    }
    Ok(serves)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn origin_accepts_trailing_slash_and_port() {
        let o = parse_origin("https://MyVault.vault.azure.net/").unwrap();
        assert_eq!(o.to_string(), "https://myvault.vault.azure.net");
        let o = parse_origin("https://127.0.0.1:10000").unwrap();
        assert_eq!((o.host.as_str(), o.port), ("127.0.0.1", Some(10000)));
    }

    #[test]
    fn origin_refuses_paths_queries_and_credentials() {
        assert!(parse_origin("https://127.0.0.1:10000/devstoreaccount1")
            .unwrap_err()
            .contains("*_path"));
        assert!(parse_origin("https://h/?x=1").is_err());
        assert!(parse_origin("https://u:p@h").is_err());
        assert!(parse_origin("ftp://h").is_err());
        assert!(parse_origin("h.example.net").is_err());
    }

    #[test]
    fn unset_placeholder_reads_as_missing() {
        let v = vars(&[("keyvault_endpoint", UNSET)]);
        let p = vault(&v, Tenant::Same).unwrap_err();
        assert_eq!((p.status, p.code), (500, "configuration-missing"));
        assert!(p.detail.contains("keyvault_endpoint"));
        assert_eq!(
            vault(&vars(&[]), Tenant::Cross).unwrap_err().code,
            "configuration-missing"
        );
    }

    #[test]
    fn bearer_endpoints_must_be_https() {
        let v = vars(&[("keyvault_endpoint", "http://v.vault.azure.net")]);
        assert!(vault(&v, Tenant::Same)
            .unwrap_err()
            .detail
            .contains("https"));
    }

    #[test]
    fn blob_path_is_separate_and_normalised() {
        let v = vars(&[
            ("blob_service_endpoint", "https://127.0.0.1:10000"),
            ("blob_service_path", "devstoreaccount1/"),
        ]);
        let b = blob_service(&v, Tenant::Same).unwrap();
        assert_eq!(b.base_path, "/devstoreaccount1");
        let v = vars(&[
            ("blob_service_endpoint", "https://127.0.0.1:10000"),
            ("blob_service_path", "/../x"),
        ]);
        assert_eq!(
            blob_service(&v, Tenant::Same).unwrap_err().code,
            "configuration-invalid"
        );
    }

    #[test]
    fn cloud_decides_exchange_defaults_and_can_be_overridden() {
        let v = vars(&[
            ("cross_tenant_id", "11111111-2222-3333-4444-555555555555"),
            ("app_client_id", "AAAAAAAA-2222-3333-4444-555555555555"),
        ]);
        let e = exchange(&v, Cloud::UsGov).unwrap();
        assert_eq!(e.authority.to_string(), "https://login.microsoftonline.us");
        assert_eq!(e.audience, "api://AzureADTokenExchangeUSGov");
        assert_eq!(e.app_client_id, "aaaaaaaa-2222-3333-4444-555555555555");
        let v = vars(&[
            ("cross_tenant_id", "11111111-2222-3333-4444-555555555555"),
            ("app_client_id", "aaaaaaaa-2222-3333-4444-555555555555"),
            ("authority_host", "https://login.example.test:8443"),
            ("token_exchange_audience", "api://Custom"),
        ]);
        let e = exchange(&v, Cloud::Public).unwrap();
        assert_eq!(e.authority.to_string(), "https://login.example.test:8443");
        assert_eq!(e.audience, "api://Custom");
    }

    #[test]
    fn exchange_names_missing_and_malformed_ids() {
        let p = exchange(&vars(&[]), Cloud::Public).unwrap_err();
        assert!(p.detail.contains("cross_tenant_id"));
        let v = vars(&[("cross_tenant_id", "contoso.onmicrosoft.com")]);
        let p = exchange(&v, Cloud::Public).unwrap_err();
        assert_eq!(p.code, "configuration-invalid");
        assert!(p.detail.contains("GUID"));
    }

    #[test]
    fn cloud_and_flags_parse_strictly() {
        assert_eq!(cloud(&vars(&[])).unwrap(), Cloud::Public);
        assert_eq!(cloud(&vars(&[("cloud", "China")])).unwrap(), Cloud::China);
        assert!(cloud(&vars(&[("cloud", "mars")])).is_err());
        assert!(!flag(&vars(&[]), "auth_disabled").unwrap());
        assert!(flag(&vars(&[("auth_disabled", "TRUE")]), "auth_disabled").unwrap());
        assert!(flag(&vars(&[("auth_disabled", "maybe")]), "auth_disabled").is_err());
    }

    #[test]
    fn health_lists_what_the_configuration_serves() {
        let v = vars(&[
            ("function_keys", "k"),
            ("keyvault_endpoint", "https://v.vault.azure.net"),
        ]);
        assert_eq!(health(&v).unwrap(), ["GetSecretSameTenant"]);
        let v = vars(&[
            ("function_keys", "k"),
            (
                "cross_blob_service_endpoint",
                "https://b.blob.core.windows.net",
            ),
        ]);
        assert!(health(&v).unwrap_err().detail.contains("cross_tenant_id"));
        let v = vars(&[
            ("function_keys", "k"),
            (
                "cross_blob_service_endpoint",
                "https://b.blob.core.windows.net",
            ),
            ("cross_tenant_id", "11111111-2222-3333-4444-555555555555"),
            ("app_client_id", "11111111-2222-3333-4444-555555555555"),
        ]);
        assert!(health(&v).unwrap_err().detail.contains("azure_client_id"));
        assert!(health(&vars(&[("function_keys", "k")])).is_err());
        assert!(
            health(&vars(&[("keyvault_endpoint", "https://v.vault.azure.net")]))
                .unwrap_err()
                .detail
                .contains("function_keys")
        );
    }

    #[test]
    fn imds_defaults_to_link_local() {
        assert_eq!(
            imds_endpoint(&vars(&[])).unwrap().to_string(),
            "http://169.254.169.254"
        );
    }
}
