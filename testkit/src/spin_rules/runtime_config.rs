//! A runtime config (`spin up --runtime-config-file`) read the way Spin 3.6.3 reads it, into a
//! typed value. Spin hands the TOML table to each factor in turn (variables, key-value, outbound
//! networking, outbound HTTP, SQLite, LLM), each takes its keys and refuses what it cannot
//! deserialize, and then any top-level key nobody took is refused. The checks and messages below
//! follow that order (crates `runtime-config`, `factor-key-value`, `key-value-spin`,
//! `key-value-redis`, `factor-outbound-networking`, `factor-outbound-http`, `variables-*`).
//!
//! Differences from Spin, on purpose:
//! - Spin visits `[key_value_store.*]` labels and unused top-level keys in hash order; this
//!   visits them sorted, so with several faults the one reported can differ.
//! - `[sqlite_database.*]` and `[llm_compute]` are checked for their `type` only (the project
//!   uses neither).
//! - Secret fields (Vault `token`, Azure `client_secret`, Cosmos `key`, Dynamo keys) are checked
//!   for presence and type but not kept in the typed value.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

/// Spin's label for the store every app has, and the file it lives in inside the state dir.
pub const DEFAULT_STORE: &str = "default";
pub const DEFAULT_STORE_FILE: &str = "sqlite_key_value.db";

/// A parsed runtime config. Nothing secret is kept.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuntimeConfig {
    /// `state_dir = "…"` (an empty string unsets the state dir).
    pub state_dir: Option<String>,
    pub log_dir: Option<String>,
    pub max_instance_memory: Option<usize>,
    /// `[[variables_provider]]` (or the legacy `[[config_provider]]`), in order; Spin always
    /// appends the env provider after them.
    pub variables_providers: Vec<VariablesProvider>,
    /// `[key_value_store.<label>]` tables as written (without the implicit `default`).
    pub key_value_stores: BTreeMap<String, StoreConfig>,
    /// `[outbound_networking] block_networks`.
    pub block_networks: Option<Vec<BlockedNetwork>>,
    pub client_tls: Vec<ClientTls>,
    /// `[outbound_http]`; when the table is present, pooling is off unless it says otherwise.
    pub outbound_http: Option<OutboundHttp>,
    /// `[sqlite_database.<label>]` types.
    pub sqlite_databases: BTreeMap<String, String>,
    /// `[llm_compute] type`.
    pub llm_compute: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreConfig {
    /// `type = "spin"`: SQLite; `path` as written (relative to the runtime config's directory).
    Spin {
        path: Option<PathBuf>,
    },
    /// `type = "redis"`: the URL as written (it may hold a password: do not print it).
    Redis {
        url: String,
    },
    AzureCosmos {
        account: String,
        database: String,
        container: String,
    },
    AwsDynamo {
        region: String,
        table: String,
    },
}

/// Where a store label's data lives once paths are resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolvedStore {
    SqliteFile(PathBuf),
    SqliteInMemory,
    Redis { url: String },
    AzureCosmos { account: String },
    AwsDynamo { region: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VariablesProvider {
    Env {
        prefix: Option<String>,
        dotenv_path: Option<PathBuf>,
    },
    Vault {
        url: String,
        mount: String,
        prefix: Option<String>,
    },
    AzureKeyVault {
        vault_url: String,
        /// `None`: the host's ambient credential; else the service principal's client id.
        client_id: Option<String>,
    },
    Static {
        names: BTreeSet<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockedNetwork {
    Private,
    Cidr(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTls {
    pub component_ids: Vec<String>,
    /// Host names or IPs, no port: the entry applies to every port of the host.
    pub hosts: Vec<String>,
    /// Spin's default: the public roots only when no `ca_roots_file` is given.
    pub use_webpki_roots: bool,
    pub ca_roots_file: Option<PathBuf>,
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundHttp {
    pub connection_pooling: bool,
    pub max_concurrent_requests: Option<usize>,
}

/// What a client TLS entry loads from disk.
#[derive(Debug)]
pub struct LoadedClientTls {
    pub entry: ClientTls,
    pub roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    pub client_auth: Option<(
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    )>,
}

impl RuntimeConfig {
    /// Parses `text` as Spin would, without touching the file system; `Err` is Spin's reason
    /// (its error chain joined with ": ").
    pub fn parse(text: &str) -> Result<RuntimeConfig, String> {
        let table: toml::Table = toml::from_str(text)
            .map_err(|e| format!("failed to parse runtime config file as toml: {e}"))?;
        parse_table(&table)
    }

    /// Reads and parses a runtime config file and loads what Spin loads at start (client TLS
    /// certificates and keys, relative to the file's directory).
    pub fn load(path: &Path) -> Result<(RuntimeConfig, Vec<LoadedClientTls>), String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "failed to read runtime config file '{}': {e}",
                path.display()
            )
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            format!(
                "failed to parse runtime config file '{}' as toml: {e}",
                path.display()
            )
        })?;
        let config = parse_table(&table)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let tls = config
            .client_tls
            .iter()
            .map(|entry| entry.load(dir))
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| {
                format!("failed to parse [[client_tls]] table: failed to parse TLS config: {e}")
            })?;
        Ok((config, tls))
    }

    /// Spin's state directory: `state_dir` from the file (empty: none), else `default` (what
    /// `spin up` derives from the app directory: `<app>/.spin`).
    pub fn state_dir(&self, default: Option<&Path>) -> Option<PathBuf> {
        match self.state_dir.as_deref() {
            Some("") => None,
            Some(dir) => Some(std::path::absolute(dir).unwrap_or_else(|_| PathBuf::from(dir))),
            None => default.map(Path::to_path_buf),
        }
    }

    /// Every store label the app can use, resolved: the tables of the file (a relative `spin`
    /// path against the file's directory `config_dir`; no path: in memory) plus `default`,
    /// which without a table is `sqlite_key_value.db` in the state dir (in memory without one).
    pub fn resolve_stores(
        &self,
        config_dir: Option<&Path>,
        state_dir: Option<&Path>,
    ) -> BTreeMap<String, ResolvedStore> {
        let mut stores: BTreeMap<String, ResolvedStore> = self
            .key_value_stores
            .iter()
            .map(|(label, config)| (label.clone(), config.resolve(config_dir)))
            .collect();
        stores
            .entry(DEFAULT_STORE.to_string())
            .or_insert_with(|| match state_dir {
                Some(dir) => ResolvedStore::SqliteFile(dir.join(DEFAULT_STORE_FILE)),
                None => ResolvedStore::SqliteInMemory,
            });
        stores
    }

    /// Spin refuses an app whose component lists a store label nothing defines.
    pub fn check_component_stores(
        &self,
        component_id: &str,
        labels: &[String],
    ) -> Result<(), String> {
        for label in labels {
            if label != DEFAULT_STORE && !self.key_value_stores.contains_key(label) {
                return Err(format!(
                    "unknown key_value_stores label {label:?} for component {component_id:?}"
                ));
            }
        }
        Ok(())
    }

    /// The `[[client_tls]]` entries that apply to `component_id`, first match per host winning.
    pub fn client_tls_for(&self, component_id: &str) -> Vec<&ClientTls> {
        self.client_tls
            .iter()
            .filter(|e| e.component_ids.iter().any(|c| c == component_id))
            .collect()
    }
}

impl StoreConfig {
    fn resolve(&self, config_dir: Option<&Path>) -> ResolvedStore {
        match self {
            // key-value-spin: with a base dir the path is joined to it (absolute paths stay);
            // without a runtime config file the path is used as given; no path: in memory.
            StoreConfig::Spin { path: Some(path) } => ResolvedStore::SqliteFile(match config_dir {
                Some(dir) => dir.join(path),
                None => path.clone(),
            }),
            StoreConfig::Spin { path: None } => ResolvedStore::SqliteInMemory,
            StoreConfig::Redis { url } => ResolvedStore::Redis { url: url.clone() },
            StoreConfig::AzureCosmos { account, .. } => ResolvedStore::AzureCosmos {
                account: account.clone(),
            },
            StoreConfig::AwsDynamo { region, .. } => ResolvedStore::AwsDynamo {
                region: region.clone(),
            },
        }
    }
}

impl ClientTls {
    /// Loads the entry's files as Spin does at start (relative to the runtime config's dir).
    pub fn load(&self, dir: &Path) -> Result<LoadedClientTls, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = |file: &Path| -> Result<Vec<CertificateDer<'static>>, String> {
            let path = dir.join(file);
            CertificateDer::pem_file_iter(&path)
                .and_then(Iterator::collect)
                .map_err(|e| {
                    format!(
                        "failed to load certificate(s) from '{}': {e}",
                        path.display()
                    )
                })
        };
        let roots = match &self.ca_roots_file {
            Some(file) => certs(file)?,
            None => Vec::new(),
        };
        let client_auth = match &self.client_cert {
            Some((cert, key)) => {
                let key_path = dir.join(key);
                let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| {
                    format!("failed to load key from '{}': {e}", key_path.display())
                })?;
                Some((certs(cert)?, key))
            }
            None => None,
        };
        Ok(LoadedClientTls {
            entry: self.clone(),
            roots,
            client_auth,
        })
    }
}

fn parse_table(table: &toml::Table) -> Result<RuntimeConfig, String> {
    let mut used = KeyTracker::new(table);
    let mut config = RuntimeConfig {
        state_dir: used
            .get("state_dir")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        log_dir: used
            .get("log_dir")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        ..RuntimeConfig::default()
    };
    if let Some(n) = used
        .get("max_instance_memory")
        .and_then(toml::Value::as_integer)
    {
        config.max_instance_memory = Some(usize::try_from(n).map_err(|e| e.to_string())?);
    }
    // Factors in TriggerFactors order.
    let providers = match used.get("variables_provider") {
        Some(v) => Some(v),
        None => used.get("config_provider"),
    };
    if let Some(providers) = providers {
        config.variables_providers = parse_variables_providers(providers)?;
    }
    if let Some(stores) = used.get("key_value_store") {
        config.key_value_stores = parse_stores(stores)?;
    }
    if let Some(net) = used.get("outbound_networking") {
        config.block_networks = Some(
            parse_block_networks(net)
                .map_err(|e| format!("failed to parse [outbound_networking] table: {e}"))?,
        );
    }
    if let Some(tls) = used.get("client_tls") {
        config.client_tls = parse_client_tls(tls)
            .map_err(|e| format!("failed to parse [[client_tls]] table: {e}"))?;
    }
    if let Some(http) = used.get("outbound_http") {
        let raw: OutboundHttpToml = deserialize(http)?;
        config.outbound_http = Some(OutboundHttp {
            connection_pooling: raw.connection_pooling,
            max_concurrent_requests: raw.max_concurrent_requests,
        });
    }
    if let Some(dbs) = used.get("sqlite_database") {
        let dbs: HashMap<String, TypedTable> = deserialize(dbs)?;
        for (label, db) in dbs {
            if !["spin", "libsql"].contains(&db.kind.as_str()) {
                return Err(format!("Unknown database kind: {}", db.kind));
            }
            config.sqlite_databases.insert(label, db.kind);
        }
    }
    if let Some(llm) = used.get("llm_compute") {
        let llm: TypedTable = deserialize(llm)?;
        if !["spin", "remote_http"].contains(&llm.kind.as_str()) {
            return Err(format!(
                "unknown variant `{}`, expected `spin` or `remote_http`",
                llm.kind
            ));
        }
        config.llm_compute = Some(llm.kind);
    }
    used.all_used()?;
    Ok(config)
}

/// Which top-level keys a factor asked for (Spin's `TomlKeyTracker`).
struct KeyTracker<'a> {
    table: &'a toml::Table,
    unused: BTreeSet<&'a str>,
}

impl<'a> KeyTracker<'a> {
    fn new(table: &'a toml::Table) -> Self {
        KeyTracker {
            table,
            unused: table.keys().map(String::as_str).collect(),
        }
    }

    fn get(&mut self, key: &str) -> Option<&'a toml::Value> {
        self.unused.remove(key);
        self.table.get(key)
    }

    fn all_used(&self) -> Result<(), String> {
        if self.unused.is_empty() {
            return Ok(());
        }
        let keys: Vec<&str> = self.unused.iter().copied().collect();
        Err(format!("unused runtime config key(s): {}", keys.join(", ")))
    }
}

fn deserialize<T: serde::de::DeserializeOwned>(value: &toml::Value) -> Result<T, String> {
    value
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| e.to_string().trim_end().to_string())
}

/// `type = "…"` plus the rest of the table (Spin's `StoreConfig` / sqlite `TomlRuntimeConfig`).
#[derive(Deserialize)]
struct TypedTable {
    #[serde(rename = "type")]
    kind: String,
    #[serde(flatten)]
    fields: toml::Table,
}

#[derive(Deserialize)]
struct SpinStoreToml {
    path: Option<PathBuf>,
}

#[derive(Deserialize)]
struct RedisStoreToml {
    url: String,
}

#[derive(Deserialize)]
struct CosmosStoreToml {
    // Checked as Spin parses it; not used here.
    #[serde(rename = "key")]
    _key: Option<String>,
    account: String,
    database: String,
    container: String,
}

#[derive(Deserialize)]
struct DynamoStoreToml {
    // Checked as Spin parses it; not used here.
    #[serde(rename = "access_key")]
    _access_key: Option<String>,
    // Checked as Spin parses it; not used here.
    #[serde(rename = "secret_key")]
    _secret_key: Option<String>,
    // Checked as Spin parses it; not used here.
    #[serde(rename = "token")]
    _token: Option<String>,
    region: String,
    // Checked as Spin parses it; not used here.
    #[serde(rename = "consistent_read")]
    _consistent_read: Option<bool>,
    table: String,
}

fn parse_stores(value: &toml::Value) -> Result<BTreeMap<String, StoreConfig>, String> {
    let tables: BTreeMap<String, TypedTable> = deserialize(value)?;
    let mut stores = BTreeMap::new();
    for (label, table) in tables {
        let store = parse_store(table).map_err(|e| {
            format!("could not configure key-value store with label '{label}': {e}")
        })?;
        stores.insert(label, store);
    }
    Ok(stores)
}

fn parse_store(table: TypedTable) -> Result<StoreConfig, String> {
    let fields = toml::Value::Table(table.fields);
    let parse_err = |e: String| format!("could not parse key-value runtime config: {e}");
    match table.kind.as_str() {
        "spin" => {
            let t: SpinStoreToml = deserialize(&fields).map_err(parse_err)?;
            Ok(StoreConfig::Spin { path: t.path })
        }
        "redis" => {
            let t: RedisStoreToml = deserialize(&fields).map_err(parse_err)?;
            // key-value-redis parses the URL when the store is made (at start) and connects on
            // first use. The URL may carry a password, so it is not repeated here.
            if ::redis::parse_redis_url(&t.url).is_none() {
                return Err(
                    "could not make key-value store from runtime config: Invalid Redis URL".into(),
                );
            }
            Ok(StoreConfig::Redis { url: t.url })
        }
        "azure_cosmos" => {
            let t: CosmosStoreToml = deserialize(&fields).map_err(parse_err)?;
            Ok(StoreConfig::AzureCosmos {
                account: t.account,
                database: t.database,
                container: t.container,
            })
        }
        "aws_dynamo" => {
            let t: DynamoStoreToml = deserialize(&fields).map_err(parse_err)?;
            Ok(StoreConfig::AwsDynamo {
                region: t.region,
                table: t.table,
            })
        }
        other => Err(format!(
            "the store type '{other}' was not registered with the config resolver"
        )),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
enum ProviderToml {
    AzureKeyVault(AzureKeyVaultToml),
    Static(StaticToml),
    Vault(VaultToml),
    Env(EnvToml),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvToml {
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    dotenv_path: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VaultToml {
    url: String,
    // Checked as Spin parses it; not used here.
    #[serde(rename = "token")]
    _token: String,
    mount: String,
    #[serde(default)]
    prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AzureKeyVaultToml {
    vault_url: String,
    client_id: Option<String>,
    client_secret: Option<String>,
    tenant_id: Option<String>,
    // Checked as Spin parses it; not used here.
    #[serde(rename = "authority_host")]
    _authority_host: Option<AuthorityHost>,
}

// Spin's variant names: they are what the file says.
#[allow(clippy::enum_variant_names)]
#[derive(Deserialize)]
enum AuthorityHost {
    AzurePublicCloud,
    AzureChina,
    AzureGermany,
    AzureGovernment,
}

#[derive(Deserialize)]
struct StaticToml {
    values: HashMap<String, String>,
}

fn parse_variables_providers(value: &toml::Value) -> Result<Vec<VariablesProvider>, String> {
    let raw: Vec<ProviderToml> = deserialize(value)?;
    raw.into_iter()
        .map(|p| {
            Ok(match p {
                ProviderToml::Env(e) => VariablesProvider::Env {
                    prefix: e.prefix,
                    dotenv_path: e.dotenv_path,
                },
                ProviderToml::Vault(v) => VariablesProvider::Vault {
                    url: v.url,
                    mount: v.mount,
                    prefix: v.prefix,
                },
                ProviderToml::AzureKeyVault(a) => {
                    let client_id = match (a.client_id, a.tenant_id, a.client_secret) {
                        (Some(id), Some(_), Some(_)) => Some(id),
                        (None, None, None) => None,
                        _ => return Err("The current runtime config specifies some but not all of the Azure KeyVault 'client_id', 'client_secret', and 'tenant_id' values. Provide the missing values to authenticate to Azure KeyVault with the given service principal, or remove all these values to authenticate using ambient authentication (e.g. env vars, Azure CLI, Managed Identity, Workload Identity).".to_string()),
                    };
                    VariablesProvider::AzureKeyVault {
                        vault_url: a.vault_url,
                        client_id,
                    }
                }
                ProviderToml::Static(s) => VariablesProvider::Static {
                    names: s.values.into_keys().collect(),
                },
            })
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboundNetworkingToml {
    #[serde(default)]
    block_networks: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboundHttpToml {
    #[serde(default)]
    connection_pooling: bool,
    #[serde(default)]
    max_concurrent_requests: Option<usize>,
}

fn parse_block_networks(value: &toml::Value) -> Result<Vec<BlockedNetwork>, String> {
    let raw: OutboundNetworkingToml = deserialize(value)?;
    raw.block_networks
        .into_iter()
        .map(|n| {
            if n == "private" {
                Ok(BlockedNetwork::Private)
            } else if is_cidr(&n) {
                Ok(BlockedNetwork::Cidr(n))
            } else {
                Err(format!("invalid value: string {n:?}, expected an IP network in CIDR notation or the keyword 'private'"))
            }
        })
        .collect()
}

/// `a.b.c.d/n` or `v6/n` (host bits may be set: Spin truncates them).
fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => bits <= 32,
        Ok(std::net::IpAddr::V6(_)) => bits <= 128,
        Err(_) => false,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientTlsToml {
    component_ids: Vec<KebabId>,
    #[serde(deserialize_with = "tls_hosts")]
    hosts: Vec<String>,
    ca_use_webpki_roots: Option<bool>,
    ca_roots_file: Option<PathBuf>,
    client_cert_file: Option<PathBuf>,
    client_private_key_file: Option<PathBuf>,
}

fn parse_client_tls(value: &toml::Value) -> Result<Vec<ClientTls>, String> {
    let raw: Vec<ClientTlsToml> = deserialize(value)?;
    raw.into_iter()
        .map(|t| client_tls(t).map_err(|e| format!("failed to parse TLS config: {e}")))
        .collect()
}

fn client_tls(t: ClientTlsToml) -> Result<ClientTls, String> {
    if t.component_ids.is_empty() {
        return Err("'component_ids' list may not be empty".into());
    }
    if t.hosts.is_empty() {
        return Err("'hosts' list may not be empty".into());
    }
    let client_cert = match (t.client_cert_file, t.client_private_key_file) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(_), None) => {
            return Err("client_cert_file specified without client_private_key_file".into())
        }
        (None, Some(_)) => {
            return Err("client_private_key_file specified without client_cert_file".into())
        }
    };
    Ok(ClientTls {
        component_ids: t.component_ids.into_iter().map(|id| id.0).collect(),
        hosts: t.hosts,
        use_webpki_roots: t.ca_use_webpki_roots.unwrap_or(t.ca_roots_file.is_none()),
        ca_roots_file: t.ca_roots_file,
        client_cert,
    })
}

/// A TLS host is an authority without a port (Spin parses it as `http::uri::Authority`).
pub fn check_tls_host(host: &str) -> Result<(), String> {
    let authority: http::uri::Authority = host
        .parse()
        .map_err(|_| format!("invalid TLS 'host' {host:?}"))?;
    if authority.port().is_some() {
        return Err(format!(
            "invalid TLS 'host' {host:?}; ports not currently supported"
        ));
    }
    Ok(())
}

fn tls_hosts<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let hosts = Vec::<String>::deserialize(d)?;
    for host in &hosts {
        check_tls_host(host).map_err(serde::de::Error::custom)?;
    }
    Ok(hosts)
}

/// A component id: `-`-separated words of ASCII letters and digits, each starting with a
/// letter, each all lowercase or all uppercase (Spin's `KebabId`).
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct KebabId(String);

impl TryFrom<String> for KebabId {
    type Error = String;

    fn try_from(id: String) -> Result<Self, String> {
        check_kebab_id(&id)?;
        Ok(KebabId(id))
    }
}

pub fn check_kebab_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("empty".into());
    }
    if id.contains('_') {
        return Err("words must be separated with '-', not '_'".into());
    }
    for word in id.split('-') {
        let mut chars = word.chars();
        let Some(first) = chars.next() else {
            return Err("'-'-separated words must not be empty".into());
        };
        if !first.is_ascii_alphabetic() {
            return Err(format!(
                "'-'-separated words must start with an ASCII letter; got {first:?}"
            ));
        }
        let upper = first.is_ascii_uppercase();
        for ch in chars {
            if ch.is_ascii_digit() {
                continue;
            }
            if !ch.is_ascii_alphanumeric() {
                return Err(format!(
                    "'-'-separated words may only contain alphanumeric ASCII; got {ch:?}"
                ));
            }
            if ch.is_ascii_uppercase() != upper {
                return Err(format!(
                    "'-'-separated words must be all lowercase or all UPPERCASE; got {word:?}"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        RuntimeConfig::parse(text).unwrap_err()
    }

    #[test]
    fn stores_are_typed_and_default_is_implicit() {
        let rc = RuntimeConfig::parse(
            "[key_value_store.cache]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n\n\
             [key_value_store.local]\ntype = \"spin\"\npath = \"data/kv.db\"\nunknown = 1\n",
        )
        .unwrap();
        assert_eq!(
            rc.key_value_stores["cache"],
            StoreConfig::Redis {
                url: "redis://127.0.0.1:6379".into()
            }
        );
        let stores = rc.resolve_stores(Some(Path::new("/rc")), Some(Path::new("/state")));
        assert_eq!(
            stores["local"],
            ResolvedStore::SqliteFile("/rc/data/kv.db".into())
        );
        assert_eq!(
            stores["default"],
            ResolvedStore::SqliteFile("/state/sqlite_key_value.db".into())
        );
        let stores = rc.resolve_stores(None, None);
        assert_eq!(stores["default"], ResolvedStore::SqliteInMemory);
        let mem = RuntimeConfig::parse("[key_value_store.default]\ntype = \"spin\"\n").unwrap();
        assert_eq!(
            mem.resolve_stores(Some(Path::new("/rc")), Some(Path::new("/s")))["default"],
            ResolvedStore::SqliteInMemory
        );
    }

    #[test]
    fn store_refusals_carry_spins_chain() {
        assert_eq!(
            err("[key_value_store.default]\ntype = \"memcached\"\n"),
            "could not configure key-value store with label 'default': the store type 'memcached' was not registered with the config resolver"
        );
        let e = err("[key_value_store.default]\ntype = \"redis\"\n");
        assert!(
            e.starts_with("could not configure key-value store with label 'default': could not parse key-value runtime config: missing field `url`"),
            "{e}"
        );
        let e = err("[key_value_store.default]\ntype = \"redis\"\nurl = \"http://r:6379\"\n");
        assert!(e.ends_with("Invalid Redis URL"), "{e}");
        assert!(!e.contains("http://r"), "{e}");
        let e = err("[key_value_store.default]\npath = \"x\"\n");
        assert!(e.contains("missing field `type`"), "{e}");
    }

    #[test]
    fn labels_the_component_lists_must_be_defined() {
        let rc = RuntimeConfig::parse("").unwrap();
        rc.check_component_stores("c", &["default".into()]).unwrap();
        assert_eq!(
            rc.check_component_stores("c", &["default".into(), "cache".into()])
                .unwrap_err(),
            "unknown key_value_stores label \"cache\" for component \"c\""
        );
    }

    #[test]
    fn client_tls_hosts_and_fields() {
        let base = "[[client_tls]]\ncomponent_ids = [\"tenant-bridge\"]\n";
        let e = err(&format!("{base}hosts = [\"v.vault.azure.net:40409\"]\n"));
        assert!(
            e.starts_with("failed to parse [[client_tls]] table: "),
            "{e}"
        );
        assert!(
            e.contains(
                "invalid TLS 'host' \"v.vault.azure.net:40409\"; ports not currently supported"
            ),
            "{e}"
        );
        let e = err(&format!("{base}hosts = [\"a b\"]\n"));
        assert!(e.contains("invalid TLS 'host' \"a b\""), "{e}");
        let e = err(&format!("{base}hosts = [\"h\"]\nca_file = \"x\"\n"));
        assert!(e.contains("unknown field `ca_file`"), "{e}");
        let e = err(&format!("{base}hosts = []\n"));
        assert!(
            e.ends_with("failed to parse TLS config: 'hosts' list may not be empty"),
            "{e}"
        );
        let e = err("[[client_tls]]\ncomponent_ids = [\"tenant_bridge\"]\nhosts = [\"h\"]\n");
        assert!(e.contains("not '_'"), "{e}");
        let ok = RuntimeConfig::parse(&format!(
            "{base}hosts = [\"127.0.0.1\", \"h.example\"]\nca_roots_file = \"ca.pem\"\n"
        ))
        .unwrap();
        assert_eq!(ok.client_tls[0].hosts, ["127.0.0.1", "h.example"]);
        assert!(!ok.client_tls[0].use_webpki_roots);
        assert_eq!(ok.client_tls_for("tenant-bridge").len(), 1);
        assert!(ok.client_tls_for("other").is_empty());
    }

    #[test]
    fn top_level_keys_and_providers() {
        assert_eq!(
            err("[token_cache]\ntype = \"spin\"\nb = 1\n"),
            "unused runtime config key(s): token_cache"
        );
        assert_eq!(
            err("zz = 1\naa = 2\n"),
            "unused runtime config key(s): aa, zz"
        );
        // keys some factor reads are fine
        RuntimeConfig::parse("state_dir = \"\"\nlog_dir = \"l\"\nmax_instance_memory = 1000\n[outbound_http]\nconnection_pooling = true\n").unwrap();
        // `config_provider` is only read when `variables_provider` is absent
        assert!(err(
            "[[variables_provider]]\ntype = \"env\"\n[[config_provider]]\ntype = \"env\"\n"
        )
        .contains("config_provider"));
        let e = err("[[variables_provider]]\ntype = \"memcached\"\n");
        assert!(e.contains("unknown variant `memcached`"), "{e}");
        let e = err("[[variables_provider]]\ntype = \"azure_key_vault\"\nvault_url = \"https://v\"\nclient_id = \"x\"\n");
        assert!(
            e.starts_with("The current runtime config specifies some but not all"),
            "{e}"
        );
        let e = err("[[variables_provider]]\ntype = \"env\"\nprefx = \"A\"\n");
        assert!(e.contains("unknown field `prefx`"), "{e}");
        let rc = RuntimeConfig::parse("[[variables_provider]]\ntype = \"vault\"\nurl = \"http://v\"\ntoken = \"s3cret\"\nmount = \"m\"\n").unwrap();
        assert!(!format!("{rc:?}").contains("s3cret"));
        let e = err("[outbound_networking]\nblock_networks = [\"10.0.0.0/33\"]\n");
        assert!(
            e.starts_with("failed to parse [outbound_networking] table: "),
            "{e}"
        );
        let e = err("[outbound_http]\npooling = true\n");
        assert!(e.contains("unknown field `pooling`"), "{e}");
    }

    #[test]
    fn state_dir_follows_spin() {
        let rc = RuntimeConfig::parse("").unwrap();
        assert_eq!(
            rc.state_dir(Some(Path::new("/app/.spin"))),
            Some("/app/.spin".into())
        );
        let rc = RuntimeConfig::parse("state_dir = \"\"\n").unwrap();
        assert_eq!(rc.state_dir(Some(Path::new("/app/.spin"))), None);
        let rc = RuntimeConfig::parse("state_dir = \"/s\"\n").unwrap();
        assert_eq!(rc.state_dir(None), Some("/s".into()));
    }
}
