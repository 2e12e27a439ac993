//! The three-tenant world: who is who in tenants A, B and C, the Entra directory that links them, the
//! strict fakes of both tenants, and the seed data. Shared by the integration tests, the
//! benchmark ([`suite`]: a world per test around the component in the host) and the local
//! sandbox (`bin/sandbox.rs`), so all run the same world. [`scan`] is the log scanner that
//! checks every log a world writes; [`load`] the endpoint table and load driver of the load
//! tests and the benchmark.
//!
//! Tenant A holds the user-assigned managed identity and the multi-tenant app registration whose
//! federated credential trusts it; tenant B holds a service principal of that app. Each tenant
//! has a Key Vault (`TEST-SECRET-001` = `TenantA` / `TenantB`) and a storage account (in one
//! Azurite, see [`seed_azurite`]). Tenant C is a second target tenant (profile `c`, a hub
//! reading from several tenants): its own service principal of the app, vault and account.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::fakes::acr::{AcrConfig, Role, ACR_RESOURCE};
use crate::fakes::entra::{AppRegistration, EntraDirectory, FakeEntra, FederatedCredential};
use crate::fakes::imds::{FakeImds, ImdsConfig};
use crate::fakes::keyvault::{FakeVault, VaultConfig, VaultNetwork};
use crate::fakes::login_server::LoginServer;
use crate::fakes::oci::Image;
use crate::launchers::azurite::Azurite;
use crate::trust::jwt::{Signer, Verifier};
use crate::trust::pki::TestPki;

#[cfg(feature = "host")]
pub mod load;
pub mod scan;
#[cfg(feature = "host")]
pub mod suite;

pub const TENANT_A: &str = "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa";
pub const TENANT_B: &str = "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb";
pub const TENANT_C: &str = "cccccccc-8888-4888-8888-cccccccccccc";
/// The user-assigned managed identity (lives in tenant A).
pub const MI_CLIENT_ID: &str = "c1c1c1c1-3333-4333-8333-c1c1c1c1c1c1";
pub const MI_OBJECT_ID: &str = "0b0b0b0b-4444-4444-8444-0b0b0b0b0b0b";
/// The multi-tenant app registration (home tenant A) and its service principals.
pub const APP_ID: &str = "a9a9a9a9-5555-4555-8555-a9a9a9a9a9a9";
pub const APP_SP_A: &str = "5a5a5a5a-6666-4666-8666-5a5a5a5a5a5a";
pub const APP_SP_B: &str = "5b5b5b5b-7777-4777-8777-5b5b5b5b5b5b";
pub const APP_SP_C: &str = "5c5c5c5c-9999-4999-8999-5c5c5c5c5c5c";
pub const VAULT_A_HOST: &str = "tenant-a-vault.vault.azure.net";
pub const VAULT_B_HOST: &str = "tenant-b-vault.vault.azure.net";
pub const VAULT_C_HOST: &str = "tenant-c-vault.vault.azure.net";
pub const ENTRA_HOST: &str = "login.microsoftonline.com";
pub const ACCOUNT_A: &str = "tenantastore";
pub const ACCOUNT_B: &str = "tenantbstore";
pub const ACCOUNT_C: &str = "tenantcstore";
/// Every Azurite account of the world.
pub const ACCOUNTS: [&str; 3] = [ACCOUNT_A, ACCOUNT_B, ACCOUNT_C];
/// The `tenant=` names of the two target tenants' profiles.
pub const PROFILE_B: &str = "b";
pub const PROFILE_C: &str = "c";
pub const EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
pub const VAULT_RESOURCE: &str = "https://vault.azure.net";
pub const STORAGE_RESOURCE: &str = "https://storage.azure.com";
/// The secret seeded in both vaults, and its value in each.
pub const SECRET_NAME: &str = "TEST-SECRET-001";
pub const SECRET_VALUE_A: &str = "TenantA";
pub const SECRET_VALUE_B: &str = "TenantB";
pub const SECRET_VALUE_C: &str = "TenantC";
/// Seeded in both Azurite accounts by [`seed_azurite`].
pub const SEED_CONTAINER: &str = "seed";
pub const SEED_BLOB: &str = "greeting.txt";
pub const SEED_A: &[u8] = b"Hello from tenant A";
pub const SEED_B: &[u8] = b"Hello from tenant B \x00\xff";
pub const SEED_C: &[u8] = b"Hello from tenant C";
/// Tenant B's container registry (the hub's images), its repositories and their seed images.
pub const REGISTRY_HOST: &str = "hubregistry.azurecr.io";
pub const SEED_REPOSITORY: &str = "base/alpine";
pub const OTHER_REPOSITORY: &str = "other/app";
pub const SEED_TAG: &str = "v1";

/// The issuer of the managed identity's token for the exchange audience (a v2 token of tenant A):
/// what the federated credential must name.
pub fn mi_exchange_issuer() -> String {
    format!("https://login.microsoftonline.com/{TENANT_A}/v2.0")
}

/// The correctly configured federated credential of the app: it trusts the managed identity.
pub fn federated_credential() -> FederatedCredential {
    FederatedCredential {
        issuer: mi_exchange_issuer(),
        subject: MI_OBJECT_ID.into(),
        audiences: vec![EXCHANGE_AUDIENCE.into()],
    }
}

/// The Entra directory of both tenants, correctly set up: the multi-tenant app with its
/// federated credential, its service principal in every tenant, and the Key Vault, Storage and
/// Container Registry resource principals in every tenant.
pub fn directory() -> EntraDirectory {
    EntraDirectory {
        tenants: vec![TENANT_A.into(), TENANT_B.into(), TENANT_C.into()],
        apps: vec![AppRegistration {
            app_id: APP_ID.into(),
            home_tenant: TENANT_A.into(),
            multi_tenant: true,
            federated_credentials: vec![federated_credential()],
        }],
        service_principals: vec![
            (TENANT_A.into(), APP_ID.into(), APP_SP_A.into()),
            (TENANT_B.into(), APP_ID.into(), APP_SP_B.into()),
            (TENANT_C.into(), APP_ID.into(), APP_SP_C.into()),
        ],
        resource_principals: [TENANT_A, TENANT_B, TENANT_C]
            .iter()
            .flat_map(|t| {
                [
                    (t.to_string(), VAULT_RESOURCE.to_string()),
                    (t.to_string(), STORAGE_RESOURCE.to_string()),
                    (t.to_string(), ACR_RESOURCE.to_string()),
                ]
            })
            .collect(),
        federation_disabled_tenants: vec![],
    }
}

/// The user-assigned identities attached to the "VM" (client id -> object id).
pub fn identities() -> Vec<(String, String)> {
    vec![(MI_CLIENT_ID.into(), MI_OBJECT_ID.into())]
}

/// The running fakes of both tenants: IMDS (tenant A's managed identity), Entra (both
/// tenants' token endpoint), and one Key Vault per tenant, each seeded with
/// [`SECRET_NAME`]. Everything stops when dropped.
pub struct Tenants {
    pub imds: FakeImds,
    pub vault_a: FakeVault,
    pub vault_b: FakeVault,
    pub vault_c: FakeVault,
    pub entra: FakeEntra,
}

impl Tenants {
    /// Starts the fakes on random loopback ports. Managed identity tokens are signed by
    /// `imds_signer`, Entra's by `entra_signer`; both vaults trust both. The Entra fake answers
    /// for `entra_host` (a name the component's host maps to 127.0.0.1, or "127.0.0.1").
    pub async fn start(
        pki: &TestPki,
        imds_signer: &Arc<Signer>,
        entra_signer: &Arc<Signer>,
        entra_host: &str,
    ) -> Tenants {
        let imds = FakeImds::start(
            ImdsConfig {
                tenant_id: TENANT_A.into(),
                identities: identities(),
                system_assigned_object_id: None,
                token_lifetime_secs: 86399,
            },
            imds_signer.clone(),
        )
        .await;
        let trusted = vec![imds_signer.verifier(), entra_signer.verifier()];
        let vault = |tenant: &str, host: &str, reader: &str| VaultConfig {
            tenant_id: tenant.into(),
            host: host.into(),
            authority_host: "login.windows.net".into(),
            trusted_issuer_keys: trusted.clone(),
            readers: vec![reader.into()],
            network: VaultNetwork::Open,
            rbac: true,
        };
        let vault_a = FakeVault::start(vault(TENANT_A, VAULT_A_HOST, MI_OBJECT_ID), pki).await;
        let vault_b = FakeVault::start(vault(TENANT_B, VAULT_B_HOST, APP_SP_B), pki).await;
        let vault_c = FakeVault::start(vault(TENANT_C, VAULT_C_HOST, APP_SP_C), pki).await;
        vault_a.set_secret(SECRET_NAME, SECRET_VALUE_A);
        vault_b.set_secret(SECRET_NAME, SECRET_VALUE_B);
        vault_c.set_secret(SECRET_NAME, SECRET_VALUE_C);
        let entra = FakeEntra::start(
            directory(),
            vec![imds_signer.verifier()],
            entra_signer.clone(),
            pki,
            entra_host,
        )
        .await;
        Tenants {
            imds,
            vault_a,
            vault_b,
            vault_c,
            entra,
        }
    }

    /// The component's variables for this world (all but `function_keys`): tenant A's vault
    /// and account for the same-tenant endpoints, tenant B's for the cross-tenant ones.
    pub fn variables(&self, azurite: &Azurite) -> Vec<(&'static str, String)> {
        vec![
            ("azure_client_id", MI_CLIENT_ID.to_string()),
            ("imds_endpoint", self.imds.endpoint()),
            ("keyvault_endpoint", self.vault_a.endpoint()),
            ("blob_service_endpoint", azurite.endpoint()),
            ("blob_service_path", azurite.account_path(ACCOUNT_A)),
            ("app_client_id", APP_ID.to_string()),
            ("cross_tenant_id", TENANT_B.to_string()),
            ("cross_keyvault_endpoint", self.vault_b.endpoint()),
            ("cross_blob_service_endpoint", azurite.endpoint()),
            ("cross_blob_service_path", azurite.account_path(ACCOUNT_B)),
            ("cross_tenant_name", PROFILE_B.to_string()),
            // Tenant C: a second target tenant in profile slot 1.
            ("profile1_name", PROFILE_C.to_string()),
            ("profile1_tenant_id", TENANT_C.to_string()),
            ("profile1_keyvault_endpoint", self.vault_c.endpoint()),
            ("profile1_blob_service_endpoint", azurite.endpoint()),
            (
                "profile1_blob_service_path",
                azurite.account_path(ACCOUNT_C),
            ),
            ("authority_host", self.entra.endpoint()),
            // Azurite listens on 127.0.0.1, outside the cloud's storage suffix: the component
            // sends a storage token there only because this says so.
            ("trusted_token_hosts", "127.0.0.1".to_string()),
        ]
    }

    /// The names the component must resolve to 127.0.0.1 (like /etc/hosts lines): both vault
    /// hosts, and the Entra host unless it is an IP address.
    pub fn guest_hosts(&self) -> HashMap<String, IpAddr> {
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let entra = self.entra.endpoint();
        let entra_host = entra
            .trim_start_matches("https://")
            .rsplit_once(':')
            .map_or(entra.as_str(), |(h, _)| h)
            .to_string();
        [
            self.vault_a.host(),
            self.vault_b.host(),
            self.vault_c.host(),
            entra_host,
        ]
        .into_iter()
        .filter(|h| h.parse::<IpAddr>().is_err())
        .map(|h| (h, localhost))
        .collect()
    }

    /// Undoes every misconfiguration: the directory, both vaults' readers and network, and the
    /// identities attached to the "VM" are back as [`Tenants::start`] set them.
    pub fn reset(&self) {
        self.entra.directory().update(|d| *d = directory());
        self.vault_a.set_readers(vec![MI_OBJECT_ID.into()]);
        self.vault_b.set_readers(vec![APP_SP_B.into()]);
        self.vault_c.set_readers(vec![APP_SP_C.into()]);
        self.vault_a.set_network(VaultNetwork::Open);
        self.vault_b.set_network(VaultNetwork::Open);
        self.vault_c.set_network(VaultNetwork::Open);
        self.imds.set_identities(identities());
    }

    /// Forgets the requests every fake has recorded.
    pub fn clear(&self) {
        self.imds.clear();
        self.vault_a.clear();
        self.vault_b.clear();
        self.vault_c.clear();
        self.entra.clear();
    }
}

/// Creates [`SEED_CONTAINER`] in every account and puts [`SEED_BLOB`] in each ([`SEED_A`],
/// [`SEED_B`], [`SEED_C`]).
pub async fn seed_azurite(az: &Azurite) {
    for (account, data) in [
        (ACCOUNT_A, SEED_A),
        (ACCOUNT_B, SEED_B),
        (ACCOUNT_C, SEED_C),
    ] {
        az.create_container(account, SEED_CONTAINER).await;
        az.put_blob(account, SEED_CONTAINER, SEED_BLOB, data).await;
    }
}

/// Tenant B's registry: an RBAC registry where the app's service principal holds AcrPull,
/// trusting Entra tokens signed by `trusted`.
pub fn acr_config(trusted: Vec<Verifier>) -> AcrConfig {
    let mut cfg = AcrConfig::new(REGISTRY_HOST, TENANT_B, trusted);
    cfg.grants = vec![(APP_SP_B.to_string(), Role::AcrPull)];
    cfg
}

/// The image seeded as `repository:SEED_TAG` (its one file names the repository, so every
/// repository's manifest has its own digest).
pub fn seed_image(repository: &str) -> Image {
    Image::new(
        "hello.txt",
        format!("Hello from {repository} in tenant B\n").as_bytes(),
    )
}

/// Pushes [`seed_image`] to [`SEED_REPOSITORY`] and [`OTHER_REPOSITORY`].
pub async fn seed_registry(login: &LoginServer) {
    for repository in [SEED_REPOSITORY, OTHER_REPOSITORY] {
        login
            .seed(repository, SEED_TAG, &seed_image(repository))
            .await;
    }
}

/// The Spin variables of a component configured with these settings (names as in README's
/// settings table): `function_keys` as it is, every other setting a member of the `settings`
/// JSON document. A `settings` entry given outright is kept as written (tests of a malformed
/// document) and the other settings are then left out.
pub fn spin_variables<'a>(
    settings: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut members = serde_json::Map::new();
    for (name, value) in settings {
        match name {
            "function_keys" | "settings" => {
                out.insert(name.to_string(), value.to_string());
            }
            _ => {
                members.insert(name.to_string(), serde_json::Value::from(value));
            }
        }
    }
    out.entry("settings".to_string())
        .or_insert_with(|| serde_json::Value::Object(members).to_string());
    out
}

/// spin.toml as a test or the sandbox runs it: the shipped manifest lists only the clouds'
/// hosts on port 443, and the fakes listen on loopback ports, so the origin of every endpoint
/// setting that holds one is added to `allowed_outbound_hosts`, as a user adds Azurite's
/// (each line tagged with its setting: `"http://127.0.0.1:4711", # imds_endpoint`). `source`
/// becomes absolute so the copy can live anywhere. `extra` adds entries of its own.
pub fn manifest_for(
    manifest_text: &str,
    settings: &[(&str, &str)],
    extra: &[(&str, String)],
) -> String {
    let mut lines = String::new();
    let endpoints = settings
        .iter()
        .filter(|(name, _)| name.ends_with("_endpoint") || *name == "authority_host")
        .filter_map(|(name, value)| Some((*name, plain_origin(value)?)));
    let extra = extra.iter().map(|(tag, entry)| (*tag, entry.clone()));
    let mut seen = Vec::new();
    for (tag, entry) in endpoints.chain(extra) {
        if !seen.contains(&entry) {
            lines.push_str(&format!("  \"{entry}\", # {tag}\n"));
            seen.push(entry);
        }
    }
    let list = "allowed_outbound_hosts = [\n";
    assert!(manifest_text.contains(list), "spin.toml has {list}");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the testkit lies in the project");
    let source = format!("source = \"{}/target/", root.display());
    manifest_text
        .replacen(list, &format!("{list}{lines}"), 1)
        .replacen("source = \"target/", &source, 1)
}

/// `scheme://host:port` of an endpoint value that is exactly an origin with a port (what the
/// fakes listen on); anything else (an unset placeholder, a malformed value a test is about)
/// adds nothing.
fn plain_origin(value: &str) -> Option<String> {
    let value = value.trim().trim_end_matches('/');
    let (scheme, rest) = value.split_once("://")?;
    let (host, port) = rest.rsplit_once(':')?;
    let ok = matches!(scheme, "http" | "https")
        && !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.[]".contains(&b))
        && port.parse::<u16>().is_ok_and(|p| p > 0);
    ok.then(|| format!("{scheme}://{host}:{port}"))
}
