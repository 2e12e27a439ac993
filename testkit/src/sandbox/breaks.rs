//! The misconfigurations the sandbox can switch on (`--break NAME`, `POST /break/NAME`): each
//! undoes one Azure set-up step in the fakes, and says which diagnostic the component answers.

use serde_json::{json, Value};

use super::{SECRET_CROSS, SECRET_CROSS_C, SECRET_SAME};
use crate::fakes::keyvault::VaultNetwork;
use crate::world::{self, Tenants};

/// One misconfiguration the sandbox can switch on: the Azure setup step it undoes and the
/// diagnostic the component answers with.
#[derive(Debug)]
pub struct Breakage {
    /// `--break NAME`, `POST /break/NAME`
    pub name: &'static str,
    /// The setup step of the Azure walkthrough this undoes, in Azure's words.
    pub azure: &'static str,
    /// What the sandbox changes in its fakes.
    pub sandbox: &'static str,
    /// The request that shows it.
    pub path: &'static str,
    /// The answer: HTTP status and problem `code`.
    pub status: u16,
    pub code: &'static str,
    pub(super) apply: fn(&Tenants),
}

impl Breakage {
    pub(super) fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "azure": self.azure,
            "sandbox": self.sandbox,
            "path": self.path,
            "expect": {"status": self.status, "code": self.code},
        })
    }
}

/// Every misconfiguration the control endpoint and `--break` know. Storage refusals
/// (`storage-forbidden-rbac`, `storage-network`) are not among them: Azurite checks neither
/// role assignments nor networks.
pub const BREAKS: &[Breakage] = &[
    Breakage {
        name: "app-not-provisioned",
        azure: "the multi-tenant app has no service principal in tenant B: no administrator of tenant B granted admin consent",
        sandbox: "Entra: the app's service principal in tenant B is deleted",
        path: SECRET_CROSS,
        status: 502,
        code: "entra-app-not-in-tenant",
        apply: |t| t.entra.directory().remove_service_principal(world::TENANT_B, world::APP_ID),
    },
    Breakage {
        name: "app-not-provisioned-c",
        azure: "the multi-tenant app has no service principal in tenant C: tenant C's administrator never granted admin consent (tenant B is fine)",
        sandbox: "Entra: the app's service principal in tenant C is deleted",
        path: SECRET_CROSS_C,
        status: 502,
        code: "entra-app-not-in-tenant",
        apply: |t| t.entra.directory().remove_service_principal(world::TENANT_C, world::APP_ID),
    },
    Breakage {
        name: "single-tenant-app",
        azure: "the app registration's supported account types is 'this organizational directory only'",
        sandbox: "Entra: the app is single-tenant",
        path: SECRET_CROSS,
        status: 502,
        code: "entra-app-not-in-tenant",
        apply: |t| t.entra.directory().set_multi_tenant(world::APP_ID, false),
    },
    Breakage {
        name: "fic-missing",
        azure: "the app registration has no federated credential",
        sandbox: "Entra: the app's federated credentials are deleted",
        path: SECRET_CROSS,
        status: 502,
        code: "entra-fic-missing",
        apply: |t| t.entra.directory().set_federated_credentials(world::APP_ID, vec![]),
    },
    Breakage {
        name: "wrong-fic-subject",
        azure: "the federated credential's subject is the managed identity's client id instead of its object (principal) id",
        sandbox: "Entra: the federated credential's subject is the managed identity's client id",
        path: SECRET_CROSS,
        status: 502,
        code: "entra-fic-mismatch",
        apply: |t| t.entra.directory().set_fic_subject(world::APP_ID, world::MI_CLIENT_ID),
    },
    Breakage {
        name: "wrong-fic-issuer",
        azure: "the federated credential's issuer is the v1 issuer https://sts.windows.net/{tenant A}/ instead of https://login.microsoftonline.com/{tenant A}/v2.0",
        sandbox: "Entra: the federated credential's issuer is tenant A's v1 issuer",
        path: SECRET_CROSS,
        status: 502,
        code: "entra-fic-mismatch",
        apply: |t| {
            t.entra
                .directory()
                .set_fic_issuer(world::APP_ID, &format!("https://sts.windows.net/{}/", world::TENANT_A))
        },
    },
    Breakage {
        name: "wrong-fic-audience",
        azure: "the federated credential's audience is not api://AzureADTokenExchange",
        sandbox: "Entra: the federated credential's audience is api://AzureADTokenExchangeUSGov",
        path: SECRET_CROSS,
        status: 502,
        code: "entra-fic-mismatch",
        apply: |t| {
            t.entra
                .directory()
                .set_fic_audiences(world::APP_ID, vec!["api://AzureADTokenExchangeUSGov".into()])
        },
    },
    Breakage {
        name: "federation-disabled",
        azure: "a policy in tenant B forbids workload identity federation",
        sandbox: "Entra: federation is disabled in tenant B",
        path: SECRET_CROSS,
        status: 502,
        code: "entra-federation-disabled",
        apply: |t| t.entra.directory().disable_federation(world::TENANT_B),
    },
    Breakage {
        name: "resource-not-in-tenant",
        azure: "Key Vault's own service principal is missing from tenant B (the resource provider was never registered there)",
        sandbox: "Entra: tenant B has no resource principal for https://vault.azure.net",
        path: SECRET_CROSS,
        status: 502,
        code: "entra-resource-not-in-tenant",
        apply: |t| {
            t.entra
                .directory()
                .remove_resource_principal(world::TENANT_B, world::VAULT_RESOURCE)
        },
    },
    Breakage {
        name: "missing-role",
        azure: "the app's service principal in tenant B has no 'Key Vault Secrets User' role on tenant B's vault",
        sandbox: "tenant B's vault: no reader",
        path: SECRET_CROSS,
        status: 502,
        code: "keyvault-forbidden-rbac",
        apply: |t| t.vault_b.set_readers(vec![]),
    },
    Breakage {
        name: "missing-role-c",
        azure: "the app's service principal in tenant C has no 'Key Vault Secrets User' role on tenant C's vault (tenant B is fine)",
        sandbox: "tenant C's vault: no reader",
        path: SECRET_CROSS_C,
        status: 502,
        code: "keyvault-forbidden-rbac",
        apply: |t| t.vault_c.set_readers(vec![]),
    },
    Breakage {
        name: "missing-role-same-tenant",
        azure: "the managed identity has no 'Key Vault Secrets User' role on tenant A's vault",
        sandbox: "tenant A's vault: no reader",
        path: SECRET_SAME,
        status: 502,
        code: "keyvault-forbidden-rbac",
        apply: |t| t.vault_a.set_readers(vec![]),
    },
    Breakage {
        name: "endpoint-not-approved",
        azure: "the private endpoint to tenant B's vault is pending: its owner has not approved the connection",
        sandbox: "tenant B's vault: ForbiddenByConnection",
        path: SECRET_CROSS,
        status: 502,
        code: "keyvault-network",
        apply: |t| t.vault_b.set_network(VaultNetwork::ConnectionNotApproved),
    },
    Breakage {
        name: "dns-zone-missing",
        azure: "no private DNS zone group (privatelink.vaultcore.azure.net linked to the VNet): the vault name resolves to its public IP, which the vault's firewall refuses",
        sandbox: "tenant B's vault: ForbiddenByFirewall",
        path: SECRET_CROSS,
        status: 502,
        code: "keyvault-network",
        apply: |t| t.vault_b.set_network(VaultNetwork::FirewallBlocks),
    },
    Breakage {
        name: "identity-not-assigned",
        azure: "the user-assigned managed identity is not assigned to the VM / node pool (or azure_client_id is wrong)",
        sandbox: "IMDS: no user-assigned identity attached",
        path: SECRET_SAME,
        status: 502,
        code: "identity-not-found",
        apply: |t| t.imds.set_identities(vec![]),
    },
];

/// The misconfiguration called `name`.
pub fn find_break(name: &str) -> Option<&'static Breakage> {
    BREAKS.iter().find(|b| b.name == name)
}
