//! A stand-in `az` for a recorded Azure state: it answers each read from a table (a `World`),
//! logs every call, remembers the selected subscription and the apps it created, and changes
//! nothing. The default world is a complete set-up of `sample_config` (targets B and, when
//! configured, C); each field breaks one link.

use super::scripts::{SUB_A, SUB_B, SUB_C, TENANT_A, TENANT_B, TENANT_C};

pub(crate) const PRINCIPAL: &str = "0b0b0b0b-4444-4444-8444-0b0b0b0b0b0b";
pub(crate) const CLIENT: &str = "c1c1c1c1-3333-4333-8333-c1c1c1c1c1c1";
pub(crate) const APP: &str = "a9a9a9a9-5555-4555-8555-a9a9a9a9a9a9";
pub(crate) const CREATED_APP: &str = "a1a1a1a1-6666-4666-8666-a1a1a1a1a1a1";
pub(crate) const SP: &str = "5b5b5b5b-7777-4777-8777-5b5b5b5b5b5b";
pub(crate) const VMSS: &str = "aks-tbridge-12345678-vmss";

pub(crate) fn mi_id() -> String {
    format!("/subscriptions/{SUB_A}/resourceGroups/rg-bridge/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-bridge")
}

pub(crate) fn vnet_id() -> String {
    format!("/subscriptions/{SUB_A}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-main")
}

pub(crate) fn pe_id(name: &str) -> String {
    format!("/subscriptions/{SUB_A}/resourceGroups/rg-bridge/providers/Microsoft.Network/privateEndpoints/{name}")
}

pub(crate) fn zone_id(sub: &str, zone: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/rg-dns/providers/Microsoft.Network/privateDnsZones/{zone}")
}

pub(crate) fn fic_ok() -> String {
    format!(
        "{PRINCIPAL}|https://login.microsoftonline.com/{TENANT_A}/v2.0|api://AzureADTokenExchange"
    )
}

#[derive(Clone)]
pub(crate) struct World {
    /// `subject|issuer|audiences` of the federated credential; empty: none.
    pub fic: String,
    /// The connections' status as the target resources see them.
    pub connection: String,
    /// The connection status on tenant A's private endpoints; empty: no endpoint.
    pub pe_status: String,
    /// None: Azure RBAC vaults; Some: the principals' secret permissions (tab-separated).
    pub vault_permissions: Option<String>,
    /// `keys(userAssignedIdentities)` and their principal ids on the pool's scale set.
    pub vmss_ids: String,
    pub vmss_principals: String,
    /// nodeResourceGroupProfile.restrictionLevel.
    pub restriction: String,
    pub pool_exists: bool,
    pub pool_labels: String,
    pub taints: String,
    /// The app's service principal exists in the target tenants.
    pub sp: bool,
    /// Role assignments exist.
    pub roles: bool,
    /// `appId<TAB>displayName` rows of `ad app list --filter "displayName eq '…'"`.
    pub app_rows: String,
    /// Rows of `ad app list --display-name` (Graph's startswith): what a prefix match adopts.
    pub app_prefix_rows: String,
    /// `ad app show --query displayName`.
    pub app_name: String,
    /// Rows of `dns-zone-group list`; None: a group `default` writing into the right zone.
    pub zone_groups: Option<String>,
    pub dns_sub: String,
    /// The VNet ids linked to the zones.
    pub links: String,
    pub link_tag: String,
    /// `record-set a list` names, and the A record a pod resolves.
    pub zone_records: String,
    pub a_record: String,
    pub pe_ip: String,
    pub vnet_location: String,
    pub provider: String,
}

impl Default for World {
    fn default() -> World {
        World {
            fic: fic_ok(),
            connection: "Approved".into(),
            pe_status: "Approved".into(),
            vault_permissions: None,
            vmss_ids: mi_id(),
            vmss_principals: PRINCIPAL.into(),
            restriction: "Unrestricted".into(),
            pool_exists: true,
            pool_labels: r#"{"tenant-bridge.io/identity": "true", "tenant-bridge.io/shim": "containerd-shim-spin-v0.24.0"}"#.into(),
            taints: "tenant-bridge.io/identity=true:NoSchedule".into(),
            sp: true,
            roles: true,
            app_rows: format!("{APP}\tbridge-app"),
            app_prefix_rows: format!("{APP}\tbridge-app"),
            app_name: "bridge-app".into(),
            zone_groups: None,
            dns_sub: SUB_A.into(),
            links: vnet_id(),
            link_tag: "tenant-bridge".into(),
            zone_records: String::new(),
            a_record: "10.1.0.4".into(),
            pe_ip: "10.1.0.4".into(),
            vnet_location: "westeurope".into(),
            provider: "Registered".into(),
        }
    }
}

/// Single-quoted for bash.
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `printf '%s\n'` of a value whose `\t` and `\n` are meant literally (rows).
fn rows(s: &str) -> String {
    if s.is_empty() {
        ":".into()
    } else {
        format!(
            "printf '%b\\n' {}",
            q(&s.replace('\t', "\\t").replace('\n', "\\n"))
        )
    }
}

impl World {
    pub(crate) fn stub(&self) -> String {
        let mut cases: Vec<(String, String)> = Vec::new();
        let mut case = |pattern: &str, body: String| cases.push((pattern.to_string(), body));
        let echo = |s: &str| format!("echo {}", q(s));
        let absent = |yes: bool, s: &str| if yes { echo(s) } else { "exit 3".into() };

        case(r#"*" cloud show "*"#, echo("AzureCloud"));
        case(
            r#"*" account set --subscription "*"#,
            r#"printf '%s' "$4" > "$STUB_STATE""#.into(),
        );
        for (sub, tenant) in [(SUB_A, TENANT_A), (SUB_B, TENANT_B), (SUB_C, TENANT_C)] {
            case(
                &format!(r#"*" account show --subscription {sub} "*"#),
                echo(tenant),
            );
        }
        case(
            r#"*" account show "*"#,
            format!(
                r#"case "$(cat "$STUB_STATE")" in {SUB_A}) echo {TENANT_A} ;; {SUB_B}) echo {TENANT_B} ;; {SUB_C}) echo {TENANT_C} ;; esac"#
            ),
        );
        case(
            r#"*" vmss identity show "*"keys(userAssignedIdentities)"*"#,
            rows(&self.vmss_ids),
        );
        case(
            r#"*" vmss identity show "*"principalId"*"#,
            rows(&self.vmss_principals),
        );
        case(r#"*" vmss list "*"#, echo(VMSS));
        case(
            r#"*" identity show "*"--query principalId "*"#,
            echo(PRINCIPAL),
        );
        case(r#"*" identity show "*"--query clientId "*"#, echo(CLIENT));
        case(
            r#"*" aks nodepool show "*"--query name "*"#,
            absent(self.pool_exists, "tbridge"),
        );
        case(
            r#"*" aks nodepool show "*"--query nodeLabels "*"#,
            echo(&self.pool_labels),
        );
        case(
            r#"*" aks nodepool show "*"--query nodeTaints "*"#,
            rows(&self.taints),
        );
        case(
            r#"*" aks show "*"restrictionLevel"*"#,
            echo(&self.restriction),
        );
        case(r#"*" aks show "*"#, echo("MC_rg-aks_aks-main_westeurope"));
        case(
            r#"*" ad app create "*"#,
            r#"touch "$STUB_STATE.app""#.into(),
        );
        case(
            r#"*" ad app list "*"--filter "*"#,
            format!(
                r#"if [ -e "$STUB_STATE.app" ]; then printf '%s\tbridge-app\n' {CREATED_APP}; else {}; fi"#,
                rows(&self.app_rows)
            ),
        );
        case(
            r#"*" ad app list "*"--display-name "*"#,
            rows(&self.app_prefix_rows),
        );
        case(r#"*" ad app show "*"displayName"*"#, echo(&self.app_name));
        case(
            r#"*" ad app show "*"signInAudience"*"#,
            echo("AzureADMultipleOrgs"),
        );
        case(
            r#"*" ad app federated-credential show "*"#,
            absent(!self.fic.is_empty(), &self.fic),
        );
        case(
            r#"*" role assignment list "*"#,
            if self.roles {
                echo("/subscriptions/x/providers/Microsoft.Authorization/roleAssignments/1")
            } else {
                ":".into()
            },
        );
        case(
            r#"*" keyvault show "*"enableRbacAuthorization"*"#,
            echo(if self.vault_permissions.is_none() {
                "true"
            } else {
                "false"
            }),
        );
        case(
            r#"*" keyvault show "*"accessPolicies"*"#,
            rows(self.vault_permissions.as_deref().unwrap_or_default()),
        );
        case(r#"*" ad sp show "*"#, absent(self.sp, SP));
        for (resource, pe) in [
            ("/vaults/kv-b", "pe-kv-b"),
            ("/storageAccounts/stb", "pe-blob-b"),
            ("/vaults/kv-c", "pe-tenant-bridge-vault-c"),
        ] {
            case(
                &format!(r#"*" private-endpoint-connection list "*"{resource} "*"#),
                rows(&format!("conn-{pe}\t{}\t{}", pe_id(pe), self.connection)),
            );
        }
        case(
            r#"*" network private-endpoint show "*"privateLinkServiceConnectionState"*"#,
            rows(&self.pe_status),
        );
        case(
            r#"*" network private-endpoint show "*"customDnsConfigs"*"#,
            rows(&self.pe_ip),
        );
        case(
            r#"*" network private-endpoint show "*"--query id "*"#,
            absent(!self.pe_status.is_empty(), "/subscriptions/x/pe"),
        );
        let groups = match &self.zone_groups {
            Some(g) => rows(g),
            None => format!(
                r#"case "$args" in *kv*|*vault*) {} ;; *) {} ;; esac"#,
                rows(&format!(
                    "default\t{}",
                    zone_id(&self.dns_sub, "privatelink.vaultcore.azure.net")
                )),
                rows(&format!(
                    "default\t{}",
                    zone_id(&self.dns_sub, "privatelink.blob.core.windows.net")
                )),
            ),
        };
        case(r#"*" dns-zone-group list "*"#, groups);
        case(r#"*" private-dns link vnet list "*"#, rows(&self.links));
        case(
            r#"*" private-dns link vnet show "*"created-by"*"#,
            rows(&self.link_tag),
        );
        case(
            r#"*" private-dns record-set a show "*"#,
            rows(&self.a_record),
        );
        case(
            r#"*" private-dns record-set a list "*"#,
            rows(&self.zone_records),
        );
        case(
            r#"*" network vnet show "*"location"*"#,
            echo(&self.vnet_location),
        );
        case(r#"*" network vnet show "*"dnsServers"*"#, ":".into());
        case(r#"*" provider show "*"#, echo(&self.provider));
        case(r#"*" show "*"#, echo("/subscriptions/x/exists"));

        let mut out = String::from(
            "#!/usr/bin/env bash\nprintf '%s\\n' \"$*\" >> \"$STUB_LOG\"\nargs=\" $* \"\ncase \"$args\" in\n",
        );
        for (pattern, body) in cases {
            out.push_str(&format!("  {pattern})\n    {body} ;;\n"));
        }
        out.push_str("  *) exit 0 ;;\nesac\n");
        out
    }
}
