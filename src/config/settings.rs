//! Spin variables → typed settings, once per request. The only module that reads variables
//! (besides the Spin edge that implements [`Variables`]): `function_keys`, and `settings`, whose
//! JSON members are every other setting ([`document`]).
//!
//! A request reads only the sections its route needs (a same-tenant deployment never sets the
//! cross-tenant variables, and a warm request should not pay for forty lookups), and each
//! variable at most once. A section that fails to parse keeps its [`Problem`], which names the
//! variable and says why without repeating the value; the route surfaces it when it needs the
//! section, health reports every section by name.
//!
//! Endpoints are origins (`scheme://host[:port]`); an account path has its own setting. The
//! placeholder [`UNSET`] (the old variables' default) still reads as "not configured".

use crate::config::document::{self, Document};
use crate::config::function_keys::{self, FunctionKey};
use crate::config::names;
use crate::config::rules::{BlobRules, Callers, RepositoryRules, SecretRules};
use crate::errors::Problem;
use crate::net::cloud::{self, Cloud, Service, TrustedHosts};
use crate::net::origin::{self, Origin};
use std::time::Duration;

/// Placeholder meaning "not configured" (the default of the endpoint variables before they
/// moved into `settings`).
pub(crate) const UNSET: &str = "https://unset.invalid";
/// Target-tenant profile slots `profile1_*` … `profile4_*`.
pub(crate) const PROFILE_SLOTS: u8 = 4;
/// The Spin variable of the function keys: a variable of its own, so it can be `secret` and
/// come from a Kubernetes Secret while the rest of the settings do not.
pub(crate) const FUNCTION_KEYS: &str = "function_keys";
/// The settings outside the tenant slots (members of the `settings` variable).
const GLOBAL_SETTINGS: [&str; 20] = [
    "cloud",
    "azure_client_id",
    "imds_endpoint",
    "keyvault_endpoint",
    "blob_service_endpoint",
    "blob_service_path",
    "same_tenant_secrets",
    "same_tenant_blobs",
    "app_client_id",
    "authority_host",
    "token_exchange_audience",
    "token_cache_store",
    "trusted_token_hosts",
    "max_blob_bytes",
    "transfer_stall_secs",
    "transfer_max_secs",
    "request_deadline_secs",
    "retry_base_ms",
    "auth_disabled",
    "auth_disabled_ready",
];

/// The fields of a target-tenant slot ([`Slot::var`] names them).
const PROFILE_FIELDS: [&str; 10] = [
    "name",
    "tenant_id",
    "keyvault_endpoint",
    "blob_service_endpoint",
    "blob_service_path",
    "secrets",
    "blobs",
    "callers",
    "registries",
    "repositories",
];

/// Whether `name` is a member of the `settings` document tenant-bridge reads.
pub(crate) fn is_setting(name: &str) -> bool {
    GLOBAL_SETTINGS.contains(&name)
        || std::iter::once(Slot::Default)
            .chain((1..=PROFILE_SLOTS).map(Slot::Numbered))
            .any(|slot| PROFILE_FIELDS.iter().any(|f| slot.var(f) == name))
}

/// Read access to settings by name; `None` when undefined. The Spin edge implements it over
/// Spin variables (`function_keys`, `settings`); [`load`] reads the document; tests use a map.
pub(crate) trait Variables {
    fn get(&self, name: &str) -> Option<String>;
}

/// A map of settings by name (tests, fuzzing), read as the Spin edge reads its variables:
/// `settings` is the document of every entry but `function_keys`.
impl Variables for std::collections::HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        if name == document::VARIABLE && !self.contains_key(name) {
            return Some(document_of(self.iter().map(|(k, v)| (*k, *v))));
        }
        std::collections::HashMap::get(self, name).map(|v| v.to_string())
    }
}

/// The `settings` document holding these settings (`function_keys` left out).
pub(crate) fn document_of<'a>(settings: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let members: serde_json::Map<String, serde_json::Value> = settings
        .filter(|(k, _)| *k != FUNCTION_KEYS)
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(v)))
        .collect();
    serde_json::Value::Object(members).to_string()
}

/// What a request needs from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need<'a> {
    /// The managed identity's own tenant.
    Same(Service),
    /// A target-tenant profile: the default one, or the one with this name.
    Cross(Service, Option<&'a str>),
    /// Everything, for the readiness report.
    Health,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Auth {
    /// `auth_disabled = true`: local use only.
    pub disabled: bool,
    /// `auth_disabled_ready = true`: health may report ready while authentication is off.
    pub disabled_ready: bool,
    pub keys: Vec<FunctionKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The user-assigned managed identity's client id; `None`: the system-assigned identity.
    pub client_id: Option<String>,
    pub imds: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Common {
    pub cloud: Cloud,
    pub identity: Identity,
    pub trusted: TrustedHosts,
    pub deadline_secs: u64,
    pub retry_base_ms: u64,
    /// Largest blob served; `None`: no limit.
    pub max_blob_bytes: Option<u64>,
    /// How long a blob transfer may wait on each step and run in all (read for blob routes).
    pub transfer: TransferBounds,
    /// Key-value store label of the token cache.
    pub store_label: String,
}

/// How long a blob transfer may take: every step (one read from Storage, one chunk handed to the
/// caller) at most `stall` (`transfer_stall_secs`), the whole transfer at most `total`
/// (`transfer_max_secs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TransferBounds {
    pub stall: Duration,
    pub total: Duration,
}

impl TransferBounds {
    pub(crate) const DEFAULT: TransferBounds = TransferBounds {
        stall: Duration::from_secs(30),
        total: Duration::from_secs(3600),
    };
}

/// Where a blob service lives: origin plus optional account path (Azurite path-style).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlobService {
    pub origin: Origin,
    pub base_path: String,
}

/// A tenant's Key Vault and Blob service and the rules over them, for the managed identity's
/// own tenant and every profile alike (only what the route needs is read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TenantServices {
    pub vault: Option<Origin>,
    pub blob: Option<BlobService>,
    pub secrets: SecretRules,
    pub blobs: BlobRules,
}

/// Everything the federated exchange needs besides the target tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exchange {
    /// The user-assigned managed identity (cross-tenant federation needs one).
    pub client_id: String,
    pub app_client_id: String,
    pub authority: Origin,
    pub audience: String,
}

/// Where a tenant's variables live: the managed identity's own tenant (`keyvault_endpoint`,
/// `same_tenant_*`), the default profile (`cross_*`) or slot `profileN_*`. Every tenant-scoped
/// variable name comes from [`Slot::var`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Same,
    Default,
    Numbered(u8),
}

impl Slot {
    /// The variable of `field` in this slot (`field` as in `profileN_<field>`).
    pub(crate) fn var(self, field: &str) -> String {
        match self {
            Slot::Same => match field {
                "secrets" | "blobs" => format!("same_tenant_{field}"),
                other => other.into(),
            },
            Slot::Numbered(n) => format!("profile{n}_{field}"),
            Slot::Default => match field {
                "name" | "callers" | "secrets" | "blobs" | "registries" | "repositories" => {
                    format!("cross_tenant_{field}")
                }
                "tenant_id" => "cross_tenant_id".into(),
                other => format!("cross_{other}"),
            },
        }
    }
}

/// A target tenant: its id, services, rules and callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Profile {
    pub name: String,
    pub slot: Slot,
    pub tenant_id: String,
    pub services: TenantServices,
    pub callers: Callers,
    /// Allowed registry login servers.
    pub registries: Vec<Origin>,
    pub repositories: RepositoryRules,
}

/// A profile as health sees it: its name and whether it parses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProfileState {
    pub name: String,
    pub profile: Result<Profile, Problem>,
}

/// The request's settings. Sections not needed by the route are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub auth: Result<Auth, Problem>,
    pub common: Result<Common, Problem>,
    pub same: Option<Result<TenantServices, Problem>>,
    pub exchange: Option<Result<Exchange, Problem>>,
    /// For `Need::Cross`: the selected profile, or `None` when no profile has the name asked
    /// for. For `Need::Health`: unused.
    pub profile: Option<Result<Profile, Problem>>,
    /// For `Need::Health`: every configured profile.
    pub profiles: Vec<ProfileState>,
}

impl Settings {
    /// Every section refused for one problem (the `settings` document does not parse).
    fn unreadable(problem: Problem) -> Self {
        Settings {
            auth: Err(problem.clone()),
            common: Err(problem),
            same: None,
            exchange: None,
            profile: None,
            profiles: Vec::new(),
        }
    }
}

/// Spin variables → settings: `function_keys` as it is, every other setting from the
/// `settings` document, parsed once.
pub(crate) fn load(spin: &dyn Variables, need: Need) -> Settings {
    let text = spin.get(document::VARIABLE).unwrap_or_default();
    match Document::parse(&text, is_setting) {
        Ok(doc) => read(&Members { spin, doc }, need),
        Err(problem) => Settings::unreadable(problem),
    }
}

/// The settings as [`read`] sees them: the function keys from their variable, the rest from
/// the document.
struct Members<'a> {
    spin: &'a dyn Variables,
    doc: Document,
}

impl Variables for Members<'_> {
    fn get(&self, name: &str) -> Option<String> {
        if name == FUNCTION_KEYS {
            self.spin.get(name)
        } else {
            self.doc.get(name).map(str::to_string)
        }
    }
}

/// The one function from settings by name to typed settings.
pub(crate) fn read(vars: &dyn Variables, need: Need) -> Settings {
    let r = Reader(vars);
    let blobs = matches!(
        need,
        Need::Same(Service::Blob) | Need::Cross(Service::Blob, _) | Need::Health
    );
    let mut settings = Settings {
        auth: r.auth(),
        common: r.common(blobs),
        same: None,
        exchange: None,
        profile: None,
        profiles: Vec::new(),
    };
    let one;
    let services: &[Service] = match need {
        Need::Same(s) | Need::Cross(s, _) => {
            one = [s];
            &one
        }
        Need::Health => &[Service::KeyVault, Service::Blob, Service::Registry],
    };
    // The sections below are written beside `common`, which they borrow (disjoint fields).
    let Ok(common) = &settings.common else {
        return settings;
    };
    let (cloud, trusted) = (common.cloud, &common.trusted);
    match need {
        Need::Same(_) => {
            settings.same = Some(r.tenant_services(Slot::Same, services, cloud, trusted))
        }
        Need::Cross(_, name) => {
            settings.exchange = Some(r.exchange(common, cloud, trusted));
            settings.profile = r.select(name).map(|(slot, name)| {
                no_positional_callers(
                    &settings.auth,
                    r.profile(slot, name, services, cloud, trusted),
                )
            });
        }
        Need::Health => {
            settings.same = Some(r.tenant_services(Slot::Same, services, cloud, trusted));
            settings.profiles = r
                .all_profiles(services, cloud, trusted)
                .into_iter()
                .map(|state| ProfileState {
                    profile: no_positional_callers(&settings.auth, state.profile),
                    ..state
                })
                .collect();
            if !settings.profiles.is_empty() {
                settings.exchange = Some(r.exchange(common, cloud, trusted));
            }
        }
    }
    settings
}

/// While any function key is unnamed, a profile's rules may not name a caller `keyN`: that is
/// a position in `function_keys`, which moves to another key when keys are added or removed.
fn no_positional_callers(
    auth: &Result<Auth, Problem>,
    profile: Result<Profile, Problem>,
) -> Result<Profile, Problem> {
    let profile = profile?;
    let Ok(auth) = auth else {
        return Ok(profile);
    };
    if !auth
        .keys
        .iter()
        .any(|k| function_keys::is_positional_name(&k.name))
    {
        return Ok(profile);
    }
    let refuse = |variable: String, entry: usize| {
        Err(Problem::setting(
            &variable,
            format!(
                "entry {entry} names a caller keyN, the position of an unnamed key in function_keys, \
                 which moves to another key when keys rotate: name that key (name:key) and use its name"
            ),
        ))
    };
    if let Some(i) = profile
        .callers
        .names()
        .position(function_keys::is_positional_name)
    {
        return refuse(profile.slot.var("callers"), i + 1);
    }
    if let Some(i) = profile
        .repositories
        .entry_callers()
        .position(|c| c.is_some_and(function_keys::is_positional_name))
    {
        return refuse(profile.slot.var("repositories"), i + 1);
    }
    Ok(profile)
}

fn is_guid(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Whether the settings accept `host` as an endpoint that receives `service` tokens: the host
/// rule of [`cloud::may_receive`]. The `guard-probe` feature turns this first check off so the
/// tests can show the runtime guard (`may_send_to` in the bearer policy) refusing through the
/// compiled component; that build is never shipped (scripts/test builds it under its own
/// profile, and the component's tests run the shipped one).
fn endpoint_may_receive(
    cloud: Cloud,
    trusted: &TrustedHosts,
    service: Service,
    host: &str,
) -> bool {
    cfg!(feature = "guard-probe") || cloud::may_receive(cloud, trusted, service, host)
}

/// Reads and parses settings; every error names the setting, never its value.
struct Reader<'a>(&'a dyn Variables);

impl Reader<'_> {
    /// A variable, trimmed; undefined and blank alike are `None`.
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn auth(&self) -> Result<Auth, Problem> {
        let disabled = self.flag("auth_disabled")?;
        // Read only when it matters: a normal request pays no lookup for it.
        let disabled_ready = disabled && self.flag("auth_disabled_ready")?;
        let keys = function_keys::parse_keys(&self.get(FUNCTION_KEYS).unwrap_or_default())
            .map_err(|e| Problem::variable(FUNCTION_KEYS, e))?;
        if keys.is_empty() && !disabled {
            return Err(Problem::variable_missing(
                FUNCTION_KEYS,
                "no function key is configured, so every caller would be refused (set function_keys, \
                 or auth_disabled = true for local use only)",
            ));
        }
        Ok(Auth {
            disabled,
            disabled_ready,
            keys,
        })
    }

    fn flag(&self, name: &str) -> Result<bool, Problem> {
        match self.get(name).map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("false") | Some("0") | Some("no") => Ok(false),
            Some("true") | Some("1") | Some("yes") => Ok(true),
            Some(_) => Err(Problem::setting(name, "it is not true or false")),
        }
    }

    fn number(
        &self,
        name: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, Problem> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    Problem::setting(
                        name,
                        format!(
                            "it is not a whole number from {} to {}",
                            range.start(),
                            range.end()
                        ),
                    )
                }),
        }
    }

    fn guid(&self, name: &str) -> Result<Option<String>, Problem> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if is_guid(&v) => Ok(Some(v.to_ascii_lowercase())),
            Some(_) => Err(Problem::setting(
                name,
                "it is not a GUID like 00000000-0000-0000-0000-000000000000",
            )),
        }
    }

    fn required_guid(&self, name: &str, what: &str) -> Result<String, Problem> {
        self.guid(name)?
            .ok_or_else(|| Problem::setting_missing(name, what))
    }

    /// An endpoint setting: `None` when unset, blank or the placeholder [`UNSET`].
    fn endpoint(&self, name: &str) -> Result<Option<Origin>, Problem> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        if value.trim_end_matches('/') == UNSET {
            return Ok(None);
        }
        let origin = origin::parse(&value).map_err(|e| Problem::setting(name, e))?;
        Ok(Some(origin).filter(|o| !o.host.ends_with(".invalid")))
    }

    /// An endpoint that receives bearer tokens: https, and a host of the cloud's service (or a
    /// trusted one), so no configuration can send a token elsewhere.
    fn token_endpoint(
        &self,
        name: &str,
        service: Service,
        cloud: Cloud,
        trusted: &TrustedHosts,
    ) -> Result<Option<Origin>, Problem> {
        let Some(origin) = self.endpoint(name)? else {
            return Ok(None);
        };
        if !origin.https {
            return Err(Problem::setting(
                name,
                "it must use https: bearer tokens are never sent over plain http",
            ));
        }
        if !endpoint_may_receive(cloud, trusted, service, &origin.host) {
            return Err(Problem::setting(
                name,
                format!(
                    "its host is not a {} host of the {} cloud (*{}); tokens are sent only there \
                     (list other hosts in trusted_token_hosts, e.g. for Azurite or custom DNS)",
                    match service {
                        Service::KeyVault => "Key Vault",
                        Service::Blob => "Blob Storage",
                        Service::Registry => "container registry",
                    },
                    cloud.name(),
                    cloud.service_suffix(service)
                ),
            ));
        }
        Ok(Some(origin))
    }

    /// An optional base path such as Azurite's `/devstoreaccount1`; `""` or `/seg[/seg]`.
    fn base_path(&self, name: &str) -> Result<String, Problem> {
        let raw = self.get(name).unwrap_or_default();
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
            return Err(Problem::setting(
                name,
                "it must be a path of letters, digits, '-' and '_' segments like /devstoreaccount1",
            ));
        }
        Ok(format!("/{trimmed}"))
    }

    fn blob_service(
        &self,
        endpoint: &str,
        path: &str,
        cloud: Cloud,
        trusted: &TrustedHosts,
    ) -> Result<Option<BlobService>, Problem> {
        let Some(origin) = self.token_endpoint(endpoint, Service::Blob, cloud, trusted)? else {
            return Ok(None);
        };
        Ok(Some(BlobService {
            origin,
            base_path: self.base_path(path)?,
        }))
    }

    fn rules<T>(&self, name: &str, parse: fn(&str) -> Result<T, String>) -> Result<T, Problem> {
        parse(&self.get(name).unwrap_or_default()).map_err(|e| Problem::setting(name, e))
    }

    /// The settings every route shares; the blob size limit only for routes that serve blobs.
    fn common(&self, blobs: bool) -> Result<Common, Problem> {
        let cloud = match self.get("cloud") {
            None => Cloud::Public,
            Some(v) => Cloud::parse(&v).ok_or_else(|| {
                Problem::setting("cloud", "it is not one of public, usgov, china")
            })?,
        };
        let client_id = self.guid("azure_client_id")?;
        let imds = match self.endpoint("imds_endpoint")? {
            Some(o) => o,
            None => origin::parse("http://169.254.169.254")
                .map_err(|e| Problem::setting("imds_endpoint", e))?,
        };
        let trusted = TrustedHosts::parse(&self.get("trusted_token_hosts").unwrap_or_default())
            .map_err(|e| Problem::setting("trusted_token_hosts", e))?;
        Ok(Common {
            cloud,
            identity: Identity { client_id, imds },
            trusted,
            deadline_secs: self.number("request_deadline_secs", 30, 1..=600)?,
            retry_base_ms: self.number("retry_base_ms", 800, 1..=60_000)?,
            max_blob_bytes: if blobs {
                Some(self.number("max_blob_bytes", 0, 0..=u64::MAX)?).filter(|n| *n > 0)
            } else {
                None
            },
            transfer: if blobs {
                let default = TransferBounds::DEFAULT;
                TransferBounds {
                    stall: Duration::from_secs(self.number(
                        "transfer_stall_secs",
                        default.stall.as_secs(),
                        1..=600,
                    )?),
                    total: Duration::from_secs(self.number(
                        "transfer_max_secs",
                        default.total.as_secs(),
                        1..=86_400,
                    )?),
                }
            } else {
                TransferBounds::DEFAULT
            },
            store_label: self
                .get("token_cache_store")
                .unwrap_or_else(|| "default".into()),
        })
    }

    /// The Key Vault and Blob settings of the tenant in `slot`, for the services asked.
    fn tenant_services(
        &self,
        slot: Slot,
        services: &[Service],
        cloud: Cloud,
        trusted: &TrustedHosts,
    ) -> Result<TenantServices, Problem> {
        let mut read = TenantServices::default();
        for service in services {
            match service {
                Service::KeyVault => {
                    read.vault = self.token_endpoint(
                        &slot.var("keyvault_endpoint"),
                        Service::KeyVault,
                        cloud,
                        trusted,
                    )?;
                    read.secrets = self.rules(&slot.var("secrets"), SecretRules::parse)?;
                }
                Service::Blob => {
                    read.blob = self.blob_service(
                        &slot.var("blob_service_endpoint"),
                        &slot.var("blob_service_path"),
                        cloud,
                        trusted,
                    )?;
                    read.blobs = self.rules(&slot.var("blobs"), BlobRules::parse)?;
                }
                Service::Registry => {}
            }
        }
        Ok(read)
    }

    fn exchange(
        &self,
        common: &Common,
        cloud: Cloud,
        trusted: &TrustedHosts,
    ) -> Result<Exchange, Problem> {
        let client_id = common
            .identity
            .client_id
            .clone()
            .ok_or_else(|| {
                Problem::setting_missing(
                    "azure_client_id",
                    "cross-tenant federation works only with a user-assigned managed identity; set its client id",
                )
            })?;
        let app_client_id = self.required_guid(
            "app_client_id",
            "the application (client) id of the multi-tenant app registration that trusts the managed identity",
        )?;
        let authority = match self.endpoint("authority_host")? {
            None => Origin {
                https: true,
                host: cloud.login_host().to_string(),
                port: None,
            },
            Some(o) if !o.https => {
                return Err(Problem::setting("authority_host", "it must use https"))
            }
            Some(o) if !cloud::may_receive_assertion(cloud, trusted, &o.host) => {
                return Err(Problem::setting(
                    "authority_host",
                    format!(
                        "its host is not the {} cloud's Entra authority ({}); the managed identity's \
                         assertion is sent only there (list another host in trusted_token_hosts)",
                        cloud.name(),
                        cloud.login_host()
                    ),
                ))
            }
            Some(o) => o,
        };
        Ok(Exchange {
            client_id,
            app_client_id,
            authority,
            audience: self
                .get("token_exchange_audience")
                .unwrap_or_else(|| cloud.exchange_audience().to_string()),
        })
    }

    /// The name of the profile in `slot`, if the slot is in use.
    fn profile_name(&self, slot: Slot) -> Option<String> {
        match slot {
            Slot::Default => Some(
                self.get(&slot.var("name"))
                    .unwrap_or_else(|| "default".into())
                    .to_ascii_lowercase(),
            ),
            Slot::Numbered(_) => self.get(&slot.var("name")).map(|n| n.to_ascii_lowercase()),
            Slot::Same => None,
        }
    }

    /// The slot of the profile named `name` (the default one when `None`), with the name when
    /// it was read to find the slot (so that `profile` does not read it again). A name held by
    /// two slots selects the first and is reported by health; `None`: no such profile.
    fn select(&self, name: Option<&str>) -> Option<(Slot, Option<String>)> {
        let Some(name) = name else {
            return Some((Slot::Default, None));
        };
        let name = name.to_ascii_lowercase();
        std::iter::once(Slot::Default)
            .chain((1..=PROFILE_SLOTS).map(Slot::Numbered))
            .find_map(|slot| {
                let held = self.profile_name(slot)?;
                (held == name).then_some((slot, Some(held)))
            })
    }

    /// The profile in `slot`; `name`: its name when the caller has already read it.
    fn profile(
        &self,
        slot: Slot,
        name: Option<String>,
        services: &[Service],
        cloud: Cloud,
        trusted: &TrustedHosts,
    ) -> Result<Profile, Problem> {
        let name = name.unwrap_or_else(|| self.profile_name(slot).unwrap_or_default());
        if !names::is_profile_name(&name) {
            return Err(Problem::setting(
                &slot.var("name"),
                "a profile name is 1-32 lowercase letters, digits, '-' or '_'",
            ));
        }
        let tenant_id = self.required_guid(
            &slot.var("tenant_id"),
            &format!("the directory (tenant) id of tenant profile '{name}'"),
        )?;
        let mut profile = Profile {
            name,
            slot,
            tenant_id,
            services: self.tenant_services(slot, services, cloud, trusted)?,
            callers: Callers::parse(&self.get(&slot.var("callers")).unwrap_or_default()),
            registries: Vec::new(),
            repositories: RepositoryRules::default(),
        };
        for service in services {
            match service {
                Service::KeyVault | Service::Blob => {}
                Service::Registry => {
                    let var = slot.var("registries");
                    for server in self
                        .get(&var)
                        .unwrap_or_default()
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                    {
                        let parsed = names::registry_server(server).filter(|o| {
                            endpoint_may_receive(cloud, trusted, Service::Registry, &o.host)
                        });
                        let Some(server) = parsed else {
                            return Err(Problem::setting(
                                &var,
                                format!(
                                    "entry {} is not a login server of the {} cloud (*{}) or a trusted host",
                                    profile.registries.len() + 1,
                                    cloud.name(),
                                    cloud.service_suffix(Service::Registry)
                                ),
                            ));
                        };
                        profile.registries.push(server);
                    }
                    profile.repositories =
                        self.rules(&slot.var("repositories"), RepositoryRules::parse)?;
                }
            }
        }
        Ok(profile)
    }

    /// Every profile in use: the default one when its tenant or a service is configured, and
    /// each named slot. Two profiles with one name are an error of the later one.
    fn all_profiles(
        &self,
        services: &[Service],
        cloud: Cloud,
        trusted: &TrustedHosts,
    ) -> Vec<ProfileState> {
        let default_used = [
            "tenant_id",
            "keyvault_endpoint",
            "blob_service_endpoint",
            "registries",
        ]
        .iter()
        .any(|f| {
            self.get(&Slot::Default.var(f))
                .is_some_and(|v| v.trim_end_matches('/') != UNSET)
        });
        let slots = std::iter::once(Slot::Default)
            .filter(|_| default_used)
            .chain((1..=PROFILE_SLOTS).map(Slot::Numbered));
        let mut states: Vec<ProfileState> = Vec::new();
        for slot in slots {
            let Some(raw) = self.profile_name(slot) else {
                continue;
            };
            // An invalid name is reported by its variable: health never echoes a value.
            let name = if names::is_profile_name(&raw) {
                raw.clone()
            } else {
                slot.var("name")
            };
            let profile = if states.iter().any(|s| s.name == name) {
                Err(Problem::setting(
                    &slot.var("name"),
                    "another profile already has this name",
                ))
            } else {
                self.profile(slot, Some(raw), services, cloud, trusted)
            };
            states.push(ProfileState { name, profile });
        }
        states
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    #[test]
    fn the_manifest_declares_two_variables_and_lists_the_clouds_hosts() {
        let manifest: toml::Table = include_str!("../../spin.toml").parse().unwrap();
        let declared: Vec<&String> = manifest["variables"].as_table().unwrap().keys().collect();
        assert_eq!(declared, [FUNCTION_KEYS, document::VARIABLE]);
        let hosts: Vec<&str> = manifest["component"]["tenant-bridge"]["allowed_outbound_hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap())
            .collect();
        let mut expected = vec!["http://169.254.169.254".to_string()];
        for cloud in [Cloud::Public, Cloud::UsGov, Cloud::China] {
            expected.push(format!("https://{}", cloud.login_host()));
            for service in [Service::KeyVault, Service::Blob, Service::Registry] {
                expected.push(format!("https://*{}", cloud.service_suffix(service)));
            }
        }
        let mut sorted = hosts.clone();
        sorted.sort();
        expected.sort();
        assert_eq!(sorted, expected, "no template: only literal cloud hosts");
    }

    #[test]
    fn a_blank_endpoint_is_unset() {
        for unset in ["", " ", UNSET] {
            let v = vars(&[("keyvault_endpoint", unset)]);
            let s = read(&v, Need::Same(Service::KeyVault));
            assert_eq!(s.same.unwrap().unwrap().vault, None);
        }
    }

    #[test]
    fn settings_come_from_one_document_and_the_keys_from_their_variable() {
        let spin: HashMap<&str, &str> = HashMap::from([
            ("function_keys", KEY),
            (
                "settings",
                r#"{"keyvault_endpoint": "https://kv.vault.azure.net", "cloud": "public"}"#,
            ),
            // A variable of the old surface is not read: only `settings` members are.
            ("cross_tenant_id", TB),
        ]);
        let s = load(&spin, Need::Same(Service::KeyVault));
        assert_eq!(s.auth.unwrap().keys.len(), 1);
        assert_eq!(
            s.same.unwrap().unwrap().vault.unwrap().host,
            "kv.vault.azure.net"
        );
        let spin: HashMap<&str, &str> = HashMap::from([
            ("function_keys", KEY),
            ("settings", r#"{"function_keys": "x"}"#),
        ]);
        let s = load(&spin, Need::Same(Service::KeyVault));
        let p = s.common.unwrap_err();
        assert!(
            p.detail.contains("'function_keys' is not a setting"),
            "{}",
            p.detail
        );
        assert!(s.auth.is_err());
    }

    pub(crate) const KEY: &str = "ops:0123456789abcdef";
    pub(crate) const TB: &str = "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb";
    pub(crate) const TC: &str = "cccccccc-3333-4333-8333-cccccccccccc";
    pub(crate) const MI: &str = "c1c1c1c1-3333-4333-8333-c1c1c1c1c1c1";
    pub(crate) const APP: &str = "a9a9a9a9-5555-4555-8555-a9a9a9a9a9a9";

    /// Variables that count lookups.
    pub(crate) struct Vars(HashMap<&'static str, &'static str>, RefCell<Vec<String>>);
    /// Read by [`read`], the map holds settings by name; read by [`load`] (as the Spin edge
    /// is), `settings` is the document of every entry that is not a Spin variable of its own.
    impl Variables for Vars {
        fn get(&self, name: &str) -> Option<String> {
            self.1.borrow_mut().push(name.to_string());
            Variables::get(&self.0, name)
        }
    }
    pub(crate) fn vars(pairs: &[(&'static str, &'static str)]) -> Vars {
        let mut m: HashMap<_, _> = [("function_keys", KEY)].into_iter().collect();
        m.extend(pairs.iter().copied());
        Vars(m, RefCell::default())
    }
    pub(crate) fn cross() -> Vec<(&'static str, &'static str)> {
        vec![
            ("azure_client_id", MI),
            ("app_client_id", APP),
            ("cross_tenant_id", TB),
            ("cross_keyvault_endpoint", "https://b.vault.azure.net"),
            (
                "cross_blob_service_endpoint",
                "https://b.blob.core.windows.net",
            ),
        ]
    }

    #[test]
    fn the_setting_names_are_exactly_what_is_read() {
        // What `read` looks up, every slot named and every route asked, is a setting …
        let mut pairs: Vec<(&'static str, &'static str)> = vec![("function_keys", KEY)];
        for n in 1..=PROFILE_SLOTS {
            pairs.push((Box::leak(format!("profile{n}_name").into_boxed_str()), "p"));
        }
        pairs.push(("auth_disabled", "true"));
        let v = vars(&pairs);
        read(&v, Need::Health);
        for service in [Service::KeyVault, Service::Blob, Service::Registry] {
            read(&v, Need::Same(service));
            read(&v, Need::Cross(service, Some("p")));
        }
        for name in v.1.borrow().iter() {
            assert!(
                name == FUNCTION_KEYS || is_setting(name),
                "{name} is read but not a setting"
            );
        }
        // … and every global setting is read somewhere in this file (the profile fields are
        // read through `Slot::var` by construction).
        let source = include_str!("settings.rs");
        let code = &source[source.find("impl Reader<'_>").unwrap()..];
        for name in GLOBAL_SETTINGS {
            let through_slot = PROFILE_FIELDS.iter().any(|f| Slot::Same.var(f) == name);
            assert!(
                through_slot || code.contains(&format!("\"{name}\"")),
                "{name} is never read"
            );
        }
    }

    #[test]
    fn defaults() {
        let s = read(&vars(&[]), Need::Same(Service::KeyVault));
        let c = s.common.unwrap();
        assert_eq!(c.cloud, Cloud::Public);
        assert_eq!(c.identity.imds.to_string(), "http://169.254.169.254");
        assert_eq!(
            (c.deadline_secs, c.retry_base_ms, c.max_blob_bytes),
            (30, 800, None)
        );
        assert_eq!(c.store_label, "default");
        assert_eq!(s.same.unwrap().unwrap().vault, None);
        assert_eq!(s.auth.unwrap().keys.len(), 1);
    }

    #[test]
    fn each_variable_is_read_at_most_once_and_only_when_needed() {
        let mut pairs = cross();
        pairs.push(("profile1_name", "c"));
        let v = vars(&pairs);
        let s = read(&v, Need::Cross(Service::KeyVault, None));
        assert!(s.profile.unwrap().is_ok());
        let names = v.1.borrow().clone();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("profile") || n.contains("blob")),
            "{names:?}"
        );
        assert_eq!(names.len(), 17, "{names:?}");
    }

    #[test]
    fn every_number_has_bounds_and_keeps_its_value_private() {
        for (name, bad) in [
            ("request_deadline_secs", "0"),
            ("request_deadline_secs", "601"),
            ("retry_base_ms", "x"),
            ("max_blob_bytes", "-1"),
            ("transfer_stall_secs", "0"),
            ("transfer_stall_secs", "601"),
            ("transfer_max_secs", "0"),
            ("transfer_max_secs", "86401"),
        ] {
            let p = read(&vars(&[(name, bad)]), Need::Same(Service::Blob))
                .common
                .unwrap_err();
            assert_eq!(&*p.code, "configuration-invalid");
            assert!(p.detail.contains(name));
        }
        let c = read(
            &vars(&[("max_blob_bytes", "10"), ("request_deadline_secs", "5")]),
            Need::Same(Service::Blob),
        )
        .common
        .unwrap();
        assert_eq!((c.max_blob_bytes, c.deadline_secs), (Some(10), 5));
        let c = read(
            &vars(&[("transfer_stall_secs", "2"), ("transfer_max_secs", "9")]),
            Need::Same(Service::Blob),
        )
        .common
        .unwrap();
        assert_eq!(
            c.transfer,
            TransferBounds {
                stall: Duration::from_secs(2),
                total: Duration::from_secs(9)
            }
        );
    }

    #[test]
    fn cloud_and_flags_parse_strictly() {
        assert_eq!(
            read(&vars(&[("cloud", "China")]), Need::Health)
                .common
                .unwrap()
                .cloud,
            Cloud::China
        );
        assert!(read(&vars(&[("cloud", "mars")]), Need::Health)
            .common
            .is_err());
        assert!(read(&vars(&[("auth_disabled", "maybe")]), Need::Health)
            .auth
            .is_err());
        let a = read(
            &vars(&[("auth_disabled", "TRUE"), ("function_keys", "")]),
            Need::Health,
        )
        .auth
        .unwrap();
        assert!(a.disabled && a.keys.is_empty());
        let p = read(&vars(&[("function_keys", "")]), Need::Health)
            .auth
            .unwrap_err();
        assert!(p.detail.contains("function_keys"));
        let p = read(&vars(&[("function_keys", "tiny")]), Need::Health)
            .auth
            .unwrap_err();
        assert!(p.detail.contains("16") && !p.detail.contains("tiny"));
    }

    #[test]
    fn endpoints_unset_valid_invalid_and_private() {
        let same = |pairs: &[(&'static str, &'static str)]| {
            read(&vars(pairs), Need::Same(Service::KeyVault))
                .same
                .unwrap()
        };
        assert_eq!(same(&[("keyvault_endpoint", UNSET)]).unwrap().vault, None);
        assert_eq!(
            same(&[("keyvault_endpoint", "https://V.vault.azure.net/")])
                .unwrap()
                .vault
                .unwrap()
                .to_string(),
            "https://v.vault.azure.net"
        );
        for bad in [
            "http://v.vault.azure.net",
            "https://v.vault.azure.net/secret-path",
            "https://v.evil.example",
            "https://vault.azure.net.evil.example",
        ] {
            let p = same(&[("keyvault_endpoint", bad)]).unwrap_err();
            assert!(
                p.detail.contains("keyvault_endpoint"),
                "{bad}: {}",
                p.detail
            );
            assert!(
                !p.detail.contains("evil") && !p.detail.contains("secret-path"),
                "{}",
                p.detail
            );
        }
    }

    #[test]
    fn storage_outside_the_cloud_needs_a_trusted_host() {
        let pairs = [
            ("blob_service_endpoint", "https://127.0.0.1:10000"),
            ("blob_service_path", "devstoreaccount1/"),
        ];
        let p = read(&vars(&pairs), Need::Same(Service::Blob))
            .same
            .unwrap()
            .unwrap_err();
        assert!(
            p.detail.contains("blob_service_endpoint") && p.detail.contains("trusted_token_hosts")
        );
        let mut pairs = pairs.to_vec();
        pairs.push(("trusted_token_hosts", "127.0.0.1"));
        let b = read(&vars(&pairs), Need::Same(Service::Blob))
            .same
            .unwrap()
            .unwrap()
            .blob
            .unwrap();
        assert_eq!(b.base_path, "/devstoreaccount1");
        let mut bad = pairs.clone();
        bad.push(("blob_service_path", "/../x"));
        assert!(read(&vars(&bad), Need::Same(Service::Blob))
            .same
            .unwrap()
            .is_err());
        let china = [
            ("cloud", "china"),
            ("blob_service_endpoint", "https://a.blob.core.windows.net"),
        ];
        assert!(read(&vars(&china), Need::Same(Service::Blob))
            .same
            .unwrap()
            .is_err());
    }

    #[test]
    fn exchange_follows_the_cloud_and_guards_the_authority() {
        let mut pairs = cross();
        pairs.push(("cloud", "usgov"));
        pairs.retain(|(k, _)| !k.contains("endpoint"));
        let e = read(&vars(&pairs), Need::Cross(Service::KeyVault, None))
            .exchange
            .unwrap()
            .unwrap();
        assert_eq!(e.authority.to_string(), "https://login.microsoftonline.us");
        assert_eq!(e.audience, "api://AzureADTokenExchangeUSGov");
        let mut pairs = cross();
        pairs.push(("authority_host", "https://login.evil.example"));
        let p = read(&vars(&pairs), Need::Cross(Service::KeyVault, None))
            .exchange
            .unwrap()
            .unwrap_err();
        assert!(p.detail.contains("authority_host") && !p.detail.contains("evil"));
        pairs.push(("trusted_token_hosts", "login.evil.example"));
        pairs.push(("token_exchange_audience", "api://Custom"));
        let e = read(&vars(&pairs), Need::Cross(Service::KeyVault, None))
            .exchange
            .unwrap()
            .unwrap();
        assert_eq!(
            (e.authority.host.as_str(), e.audience.as_str()),
            ("login.evil.example", "api://Custom")
        );
    }

    #[test]
    fn cross_tenant_needs_a_user_assigned_identity_and_guids() {
        let mut pairs = cross();
        pairs.retain(|(k, _)| *k != "azure_client_id");
        let p = read(&vars(&pairs), Need::Cross(Service::Blob, None))
            .exchange
            .unwrap()
            .unwrap_err();
        assert!(p.detail.contains("azure_client_id"));
        let mut pairs = cross();
        pairs.push(("cross_tenant_id", "contoso.onmicrosoft.com"));
        let p = read(&vars(&pairs), Need::Cross(Service::Blob, None))
            .profile
            .unwrap()
            .unwrap_err();
        assert!(
            p.detail.contains("cross_tenant_id")
                && p.detail.contains("GUID")
                && !p.detail.contains("contoso")
        );
    }

    #[test]
    fn profiles_are_selected_by_name() {
        let mut pairs = cross();
        pairs.extend([
            ("cross_tenant_name", "B"),
            ("profile2_name", "c"),
            ("profile2_tenant_id", TC),
            ("profile2_keyvault_endpoint", "https://c.vault.azure.net"),
            ("profile2_callers", "ops"),
        ]);
        let v = vars(&pairs);
        let p = read(&v, Need::Cross(Service::KeyVault, Some("C")))
            .profile
            .unwrap()
            .unwrap();
        assert_eq!(
            (p.name.as_str(), p.slot, p.tenant_id.as_str()),
            ("c", Slot::Numbered(2), TC)
        );
        assert!(p.callers.allows("ops") && !p.callers.allows("billing"));
        let b = read(&v, Need::Cross(Service::KeyVault, Some("b")))
            .profile
            .unwrap()
            .unwrap();
        assert_eq!(
            (b.slot, b.services.vault.unwrap().host.as_str()),
            (Slot::Default, "b.vault.azure.net")
        );
        let d = read(&v, Need::Cross(Service::KeyVault, None))
            .profile
            .unwrap()
            .unwrap();
        assert_eq!(d.name, "b");
        assert!(read(&v, Need::Cross(Service::KeyVault, Some("x")))
            .profile
            .is_none());
    }

    #[test]
    fn health_sees_every_profile_and_duplicates() {
        let mut pairs = cross();
        pairs.extend([
            ("profile1_name", "c"),
            ("profile1_tenant_id", TC),
            ("profile3_name", "c"),
            ("profile4_name", "d"),
        ]);
        let s = read(&vars(&pairs), Need::Health);
        let names: Vec<_> = s
            .profiles
            .iter()
            .map(|p| (p.name.as_str(), p.profile.is_ok()))
            .collect();
        assert_eq!(
            names,
            [("default", true), ("c", true), ("c", false), ("d", false)]
        );
        assert!(s.exchange.unwrap().is_ok());
        let d = s.profiles[3].profile.as_ref().unwrap_err();
        assert!(d.detail.contains("profile4_tenant_id"));
        // No cross-tenant variable at all: no profile, no exchange.
        let s = read(&vars(&[]), Need::Health);
        assert!(s.profiles.is_empty() && s.exchange.is_none());
    }

    #[test]
    fn registries_must_be_the_clouds_login_servers() {
        let mut pairs = cross();
        pairs.extend([
            (
                "cross_tenant_registries",
                "Hub.azurecr.io, other.azurecr.io",
            ),
            ("cross_tenant_repositories", "base/*"),
        ]);
        let p = read(&vars(&pairs), Need::Cross(Service::Registry, None))
            .profile
            .unwrap()
            .unwrap();
        let names: Vec<_> = p.registries.iter().map(|o| o.authority()).collect();
        assert_eq!(names, ["hub.azurecr.io", "other.azurecr.io"]);
        assert!(p.repositories.allows("any", "base/alpine"));
        pairs.push(("cross_tenant_registries", "hub.evil.example"));
        let p = read(&vars(&pairs), Need::Cross(Service::Registry, None))
            .profile
            .unwrap()
            .unwrap_err();
        assert!(p.detail.contains("cross_tenant_registries") && !p.detail.contains("evil"));
    }

    #[test]
    fn rules_name_only_named_keys_while_a_key_is_unnamed() {
        const UNNAMED: &str = "ops:0123456789abcdef,fedcba9876543210";
        let mut pairs = cross();
        pairs.extend([
            ("function_keys", UNNAMED),
            ("cross_tenant_callers", "ops, key2"),
        ]);
        let p = read(&vars(&pairs), Need::Cross(Service::KeyVault, None))
            .profile
            .unwrap()
            .unwrap_err();
        assert!(p.detail.contains("cross_tenant_callers") && p.detail.contains("entry 2"));
        // Health reports it on the profile.
        let s = read(&vars(&pairs), Need::Health);
        assert!(s.profiles[0].profile.is_err());
        let mut pairs = cross();
        pairs.extend([
            ("function_keys", UNNAMED),
            ("cross_tenant_registries", "hub.azurecr.io"),
            ("cross_tenant_repositories", "base/*, key2=infra/*"),
        ]);
        let p = read(&vars(&pairs), Need::Cross(Service::Registry, None))
            .profile
            .unwrap()
            .unwrap_err();
        assert!(
            p.detail.contains("cross_tenant_repositories"),
            "{}",
            p.detail
        );
        // Every key named: the rules are read as written.
        let mut pairs = cross();
        pairs.extend([
            ("function_keys", "ops:0123456789abcdef,ci:fedcba9876543210"),
            ("cross_tenant_callers", "ops, ci"),
        ]);
        assert!(read(&vars(&pairs), Need::Cross(Service::KeyVault, None))
            .profile
            .unwrap()
            .is_ok());
    }

    #[test]
    fn slot_variables() {
        assert_eq!(Slot::Default.var("tenant_id"), "cross_tenant_id");
        assert_eq!(
            Slot::Default.var("keyvault_endpoint"),
            "cross_keyvault_endpoint"
        );
        assert_eq!(
            Slot::Default.var("blob_service_path"),
            "cross_blob_service_path"
        );
        assert_eq!(Slot::Default.var("secrets"), "cross_tenant_secrets");
        assert_eq!(Slot::Numbered(3).var("callers"), "profile3_callers");
    }
}
