#!/usr/bin/env bash
# Cross-tenant set-up of tenant-bridge with the Azure CLI, tenant by tenant (docs/deploy.md).
#
# usage: deploy/azure/setup.sh [--dry-run] [--config FILE] [--yes] COMMAND
#
#   tenant-a           in tenant A (the identity's tenant, with AKS and the VNet):
#                        1. resource group and user-assigned managed identity
#                        2. the dedicated, tainted AKS node pool
#                        3. the identity assigned to that node pool's VM scale set
#                        4. the multi-tenant app registration
#                        5. its federated credential trusting the identity
#                        6. same-tenant roles for the identity (only if configured)
#                        7. private endpoints to tenant B's vault and account (manual approval)
#   tenant-b           in tenant B (the vault's and the account's tenant):
#                        1. the app's service principal
#                        2. Key Vault Secrets User / Storage Blob Data Reader for it
#                        3. approval of tenant A's pending private endpoint connections
#   tenant-a-dns       back in tenant A, once approved: private DNS zones, VNet links and the
#                      private endpoints' DNS zone groups
#   all                tenant-a, tenant-b, tenant-a-dns, outputs (one person signed in to both)
#   outputs            the Spin variable values for deploy/settings.env
#   teardown-tenant-b  tenant B: connections, roles, service principal
#   teardown-tenant-a  tenant A: private endpoints, DNS, app registration, roles, node pool,
#                      identity
#   teardown           both teardowns, tenant B first
#
#   --dry-run (or DRY_RUN=1)  print every command instead of running it; nothing is looked up
#   --config FILE             the settings (default: deploy/azure/config.env, or $TB_CONFIG)
#   --yes                     confirm a teardown (not needed with --dry-run)
#   VERBOSE=1                 also print the read-only checks a real run makes
#
# Every step checks before it changes anything, so re-running a command is safe and finishes a
# set-up that stopped half-way. No step creates, reads or prints a secret: the app
# authenticates with the identity's token (federation), never with a client secret.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

# A dry run shows the first-run sequence: checks answer "absent". A teardown's dry run shows
# the full teardown: checks answer "present".
DRY_ASSUME_PRESENT=0

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

# exists, but a dry run of a teardown assumes the object is there.
present() {
  if is_dry_run && [[ "$DRY_ASSUME_PRESENT" == 1 ]]; then
    printf '? %s\n' "$(quote_cmd "$@")"
    return 0
  fi
  exists "$@"
}

has_cross_vault() { [[ -n "${KEYVAULT_B_NAME:-}" ]]; }
has_cross_blob() { [[ -n "${STORAGE_B_NAME:-}" ]]; }

check_common_config() {
  require_guid TENANT_A_ID SUBSCRIPTION_A_ID TENANT_B_ID SUBSCRIPTION_B_ID
  require RESOURCE_GROUP_A
  has_cross_vault || has_cross_blob ||
    die "set KEYVAULT_B_NAME, STORAGE_B_NAME or both: the resources tenant-bridge reads in tenant B"
  if has_cross_vault; then require KEYVAULT_B_RESOURCE_GROUP; fi
  if has_cross_blob; then require STORAGE_B_RESOURCE_GROUP; fi
  [[ "$(lower "$TENANT_A_ID")" != "$(lower "$TENANT_B_ID")" ]] ||
    die "TENANT_A_ID and TENANT_B_ID are the same tenant: the same-tenant endpoints need no federation"
  if [[ -n "$APP_CLIENT_ID" ]]; then require_guid APP_CLIENT_ID; fi
}

check_tenant_a_config() {
  check_common_config
  require LOCATION AKS_RESOURCE_GROUP AKS_CLUSTER_NAME AKS_NODEPOOL IDENTITY_NAME APP_DISPLAY_NAME \
    FIC_NAME VNET_RESOURCE_GROUP VNET_NAME PE_SUBNET_NAME DNS_RESOURCE_GROUP
  require_bool AKS_NODEPOOL_CREATE DELETE_DNS_ZONES
  if [[ -n "${KEYVAULT_A_NAME:-}" ]]; then require KEYVAULT_A_RESOURCE_GROUP; fi
  if [[ -n "${STORAGE_A_NAME:-}" ]]; then require STORAGE_A_RESOURCE_GROUP; fi
}

# ---- shared steps --------------------------------------------------------------------------

# grant_role PRINCIPAL_ID ROLE SCOPE
grant_role() {
  local principal="$1" role="$2" scope="$3" existing
  lookup existing "" az role assignment list --scope "$scope" --role "$role" \
    --query "[?principalId=='$principal'].id | [0]" --output tsv
  if [[ -n "$existing" ]]; then
    note "'$role' already granted on $scope"
  else
    run_retry az role assignment create --assignee-object-id "$principal" \
      --assignee-principal-type ServicePrincipal --role "$role" --scope "$scope"
  fi
}

# revoke_role PRINCIPAL_ID ROLE SCOPE
revoke_role() {
  local principal="$1" role="$2" scope="$3" ids
  lookup ids "<id of the '$role' assignment on $scope>" az role assignment list --scope "$scope" \
    --role "$role" --query "[?principalId=='$principal'].id" --output tsv
  if [[ -z "$ids" ]]; then
    note "no '$role' assignment on $scope"
    return 0
  fi
  local list=()
  mapfile -t list <<<"$ids"
  run az role assignment delete --ids "${list[@]}"
}

# vault_uses_rbac NAME RESOURCE_GROUP: true for an Azure RBAC vault, false for access policies.
vault_uses_rbac() {
  local rbac
  lookup rbac "true" az keyvault show --name "$1" --resource-group "$2" \
    --query properties.enableRbacAuthorization --output tsv
  [[ "$(lower "$rbac")" == true ]]
}

# grant_secret_read VAULT RESOURCE_GROUP VAULT_ID PRINCIPAL_ID SECRETS: Key Vault Secrets User
# on the vault, or on each listed secret; `get` on secrets for an access-policy vault.
grant_secret_read() {
  local name="$1" group="$2" id="$3" principal="$4" secrets="$5" secret
  if vault_uses_rbac "$name" "$group"; then
    if [[ -n "$secrets" ]]; then
      for secret in ${secrets//,/ }; do
        grant_role "$principal" "Key Vault Secrets User" "$id/secrets/$secret"
      done
    else
      grant_role "$principal" "Key Vault Secrets User" "$id"
    fi
  else
    note "vault $name uses access policies: 'get' on secrets, for the whole vault (switch it to Azure RBAC to scope per secret)"
    if [[ " $(secret_permissions "$name" "$group" "$principal" "") " == *" get "* ]]; then
      note "the access policy of $principal already has 'get'"
    else
      run az keyvault set-policy --name "$name" --resource-group "$group" --object-id "$principal" \
        --secret-permissions get
    fi
  fi
}

# secret_permissions VAULT RESOURCE_GROUP PRINCIPAL_ID PLACEHOLDER: the principal's secret
# permissions in an access-policy vault, lowercase and space-separated.
secret_permissions() {
  local permissions
  lookup permissions "$4" az keyvault show --name "$1" --resource-group "$2" \
    --query "properties.accessPolicies[?objectId=='$3'].permissions.secrets[]" --output tsv
  lower "${permissions//[$'\t\n']/ }"
}

revoke_secret_read() {
  local name="$1" group="$2" id="$3" principal="$4" secrets="$5" secret
  if vault_uses_rbac "$name" "$group"; then
    if [[ -n "$secrets" ]]; then
      for secret in ${secrets//,/ }; do
        revoke_role "$principal" "Key Vault Secrets User" "$id/secrets/$secret"
      done
    else
      revoke_role "$principal" "Key Vault Secrets User" "$id"
    fi
  elif [[ -n "$(secret_permissions "$name" "$group" "$principal" "get")" ]]; then
    run az keyvault delete-policy --name "$name" --resource-group "$group" --object-id "$principal"
  fi
}

# blob_scope ACCOUNT_ID CONTAINER: the account, or one container of it.
blob_scope() {
  if [[ -n "$2" ]]; then
    printf '%s/blobServices/default/containers/%s' "$1" "$2"
  else
    printf '%s' "$1"
  fi
}

# find_connection VAR_ID VAR_STATUS TARGET_ID PE_ID PE_NAME: the connection of tenant A's
# private endpoint PE_ID on tenant B's resource TARGET_ID, and its status (both empty if none).
# Locals start with __ so they never shadow the caller's variables.
find_connection() {
  local __id_var="$1" __status_var="$2" __target="$3" __pe_id="$4" __pe_name="$5"
  local __rows __line __conn __pe __st
  lookup __rows "<id of the connection from $__pe_name>"$'\t'"$__pe_id"$'\t'"Pending" \
    az network private-endpoint-connection list --id "$__target" \
    --query "[].[id, properties.privateEndpoint.id, properties.privateLinkServiceConnectionState.status]" \
    --output tsv
  printf -v "$__id_var" '%s' ""
  printf -v "$__status_var" '%s' ""
  while IFS= read -r __line; do
    [[ -n "$__line" ]] || continue
    IFS=$'\t' read -r __conn __pe __st <<<"$__line"
    if [[ "$(lower "$__pe")" == "$(lower "$__pe_id")" ]]; then
      printf -v "$__id_var" '%s' "$__conn"
      printf -v "$__status_var" '%s' "$__st"
    fi
  done <<<"$__rows"
}

# resolve_app: APP_CLIENT_ID from the configuration, or the app registration's by display name.
resolve_app() {
  local placeholder="$1" ids count
  [[ -n "$APP_CLIENT_ID" ]] && return 0
  lookup ids "$placeholder" az ad app list --display-name "$APP_DISPLAY_NAME" --query "[].appId" --output tsv
  count="$(grep -c . <<<"$ids" || true)"
  ((count <= 1)) || die "$count app registrations are named '$APP_DISPLAY_NAME': set APP_CLIENT_ID to the right one"
  APP_CLIENT_ID="$ids"
}

# node_pool_vmss VAR: the VM scale set behind the node pool.
node_pool_vmss() {
  local __var="$1"
  lookup NODE_RESOURCE_GROUP "<node resource group of $AKS_CLUSTER_NAME>" \
    az aks show --resource-group "$AKS_RESOURCE_GROUP" --name "$AKS_CLUSTER_NAME" \
    --query nodeResourceGroup --output tsv
  [[ -n "$NODE_RESOURCE_GROUP" ]] || die "AKS cluster $AKS_CLUSTER_NAME not found in $AKS_RESOURCE_GROUP"
  lookup "$__var" "<VM scale set of node pool $AKS_NODEPOOL>" \
    az vmss list --resource-group "$NODE_RESOURCE_GROUP" \
    --query "[?tags.\"aks-managed-poolName\"=='$AKS_NODEPOOL'].name | [0]" --output tsv
}

# ---- tenant A ------------------------------------------------------------------------------

tenant_a() {
  check_tenant_a_config
  heading "tenant A ($TENANT_A_ID): sign in"
  use_tenant "tenant A" "$TENANT_A_ID" "$SUBSCRIPTION_A_ID"

  heading "tenant A 1/7: resource group $RESOURCE_GROUP_A and user-assigned managed identity $IDENTITY_NAME"
  exists az group show --name "$RESOURCE_GROUP_A" --query id --output tsv ||
    run az group create --name "$RESOURCE_GROUP_A" --location "$LOCATION"
  exists az identity show --resource-group "$RESOURCE_GROUP_A" --name "$IDENTITY_NAME" --query id --output tsv ||
    run az identity create --resource-group "$RESOURCE_GROUP_A" --name "$IDENTITY_NAME" --location "$LOCATION"
  lookup MI_PRINCIPAL_ID "<principalId of $IDENTITY_NAME>" az identity show --resource-group "$RESOURCE_GROUP_A" \
    --name "$IDENTITY_NAME" --query principalId --output tsv
  [[ -n "$MI_PRINCIPAL_ID" ]] || die "identity $IDENTITY_NAME has no principal id yet: run again in a minute"

  heading "tenant A 2/7: dedicated node pool $AKS_NODEPOOL (taint $NODE_TAINT)"
  if exists az aks nodepool show --resource-group "$AKS_RESOURCE_GROUP" --cluster-name "$AKS_CLUSTER_NAME" \
    --name "$AKS_NODEPOOL" --query name --output tsv; then
    note "node pool $AKS_NODEPOOL exists"
  elif [[ "$AKS_NODEPOOL_CREATE" == true ]]; then
    run az aks nodepool add --resource-group "$AKS_RESOURCE_GROUP" --cluster-name "$AKS_CLUSTER_NAME" \
      --name "$AKS_NODEPOOL" --mode User --os-type Linux --node-count "$AKS_NODEPOOL_COUNT" \
      --node-vm-size "$AKS_NODEPOOL_VM_SIZE" --node-taints "$NODE_TAINT" --labels "$NODE_LABEL"
  elif is_dry_run; then
    note "AKS_NODEPOOL_CREATE=false: node pool $AKS_NODEPOOL must already exist"
  else
    die "node pool $AKS_NODEPOOL does not exist in $AKS_CLUSTER_NAME: create it, or set AKS_NODEPOOL_CREATE=true"
  fi

  heading "tenant A 3/7: identity on the node pool's VM scale set (reached through IMDS)"
  local vmss assigned
  node_pool_vmss vmss
  [[ -n "$vmss" ]] || die "no VM scale set for node pool $AKS_NODEPOOL in $NODE_RESOURCE_GROUP: only VM-scale-set node pools can carry the identity"
  lookup assigned "" az vmss identity show --resource-group "$NODE_RESOURCE_GROUP" --name "$vmss" \
    --query userAssignedIdentities --output json
  if grep -qiF "$MI_ID" <<<"$assigned"; then
    note "$IDENTITY_NAME is already assigned to $vmss"
  else
    run az vmss identity assign --resource-group "$NODE_RESOURCE_GROUP" --name "$vmss" --identities "$MI_ID"
  fi

  heading "tenant A 4/7: multi-tenant app registration $APP_DISPLAY_NAME"
  if [[ -n "$APP_CLIENT_ID" ]]; then
    exists az ad app show --id "$APP_CLIENT_ID" --query appId --output tsv || is_dry_run ||
      die "APP_CLIENT_ID $APP_CLIENT_ID is not an app registration of tenant A"
  else
    resolve_app ""
    if [[ -z "$APP_CLIENT_ID" ]]; then
      run az ad app create --display-name "$APP_DISPLAY_NAME" --sign-in-audience AzureADMultipleOrgs
      resolve_app "<appId of $APP_DISPLAY_NAME>"
      [[ -n "$APP_CLIENT_ID" ]] || die "app registration $APP_DISPLAY_NAME not found after creating it: run again"
    fi
  fi
  local audience
  lookup audience "AzureADMultipleOrgs" az ad app show --id "$APP_CLIENT_ID" --query signInAudience --output tsv
  if [[ "$audience" != AzureADMultipleOrgs ]]; then
    run az ad app update --id "$APP_CLIENT_ID" --sign-in-audience AzureADMultipleOrgs
  fi

  heading "tenant A 5/7: federated credential $FIC_NAME: the app trusts the identity"
  note "issuer $FIC_ISSUER, subject = the identity's object id, audience $FIC_AUDIENCE"
  local params current
  params="$(printf '{"name":"%s","issuer":"%s","subject":"%s","description":"%s","audiences":["%s"]}' \
    "$FIC_NAME" "$FIC_ISSUER" "$MI_PRINCIPAL_ID" \
    "tenant-bridge: managed identity $IDENTITY_NAME on AKS node pool $AKS_NODEPOOL" "$FIC_AUDIENCE")"
  lookup current "" az ad app federated-credential show --id "$APP_CLIENT_ID" --federated-credential-id "$FIC_NAME" \
    --query "join('|', [subject, issuer, join(',', audiences)])" --output tsv
  if [[ -z "$current" ]]; then
    run az ad app federated-credential create --id "$APP_CLIENT_ID" --parameters "$params"
  elif [[ "$current" != "$MI_PRINCIPAL_ID|$FIC_ISSUER|$FIC_AUDIENCE" ]]; then
    note "federated credential $FIC_NAME differs ($current): updating it"
    run az ad app federated-credential update --id "$APP_CLIENT_ID" --federated-credential-id "$FIC_NAME" \
      --parameters "$params"
  else
    note "federated credential $FIC_NAME is up to date"
  fi

  heading "tenant A 6/7: same-tenant roles for the identity"
  if [[ -n "$KEYVAULT_A_ID" ]]; then
    grant_secret_read "$KEYVAULT_A_NAME" "$KEYVAULT_A_RESOURCE_GROUP" "$KEYVAULT_A_ID" "$MI_PRINCIPAL_ID" \
      "${KEYVAULT_A_SECRETS:-}"
  fi
  if [[ -n "$STORAGE_A_ID" ]]; then
    grant_role "$MI_PRINCIPAL_ID" "Storage Blob Data Reader" "$(blob_scope "$STORAGE_A_ID" "${STORAGE_A_CONTAINER:-}")"
  fi
  if [[ -z "$KEYVAULT_A_ID$STORAGE_A_ID" ]]; then
    note "no same-tenant vault or account configured: nothing to grant"
  fi

  heading "tenant A 7/7: private endpoints to tenant B's resources (connection requests for tenant B to approve)"
  if has_cross_vault; then
    create_private_endpoint "$PE_KEYVAULT_NAME" "$KEYVAULT_B_ID" vault "vault $KEYVAULT_B_NAME"
  fi
  if has_cross_blob; then
    create_private_endpoint "$PE_BLOB_NAME" "$STORAGE_B_ID" blob "account $STORAGE_B_NAME"
  fi

  note "tenant A done. Tenant B's administrator runs 'setup.sh tenant-b' with APP_CLIENT_ID=$APP_CLIENT_ID"
}

# create_private_endpoint NAME TARGET_ID GROUP WHAT
create_private_endpoint() {
  local name="$1" target="$2" group="$3" what="$4"
  exists az network private-endpoint show --resource-group "$RESOURCE_GROUP_A" --name "$name" --query id --output tsv ||
    run az network private-endpoint create --resource-group "$RESOURCE_GROUP_A" --name "$name" \
      --location "$LOCATION" --subnet "$SUBNET_ID" --private-connection-resource-id "$target" \
      --group-id "$group" --connection-name "$name" --manual-request true \
      --request-message "tenant-bridge in tenant $TENANT_A_ID asks for private access to $what"
}

# ---- tenant B ------------------------------------------------------------------------------

tenant_b() {
  check_common_config
  require_guid APP_CLIENT_ID
  heading "tenant B ($TENANT_B_ID): sign in"
  use_tenant "tenant B" "$TENANT_B_ID" "$SUBSCRIPTION_B_ID"

  heading "tenant B 1/3: service principal of app $APP_CLIENT_ID"
  local sp
  lookup sp "" az ad sp show --id "$APP_CLIENT_ID" --query id --output tsv
  if [[ -z "$sp" ]]; then
    run az ad sp create --id "$APP_CLIENT_ID"
    lookup sp "<object id of the service principal of the app in tenant B>" \
      az ad sp show --id "$APP_CLIENT_ID" --query id --output tsv
    [[ -n "$sp" ]] || die "service principal of $APP_CLIENT_ID not found after creating it: run again"
  else
    note "service principal exists"
  fi

  heading "tenant B 2/3: least-privilege roles for the service principal"
  if has_cross_vault; then
    grant_secret_read "$KEYVAULT_B_NAME" "$KEYVAULT_B_RESOURCE_GROUP" "$KEYVAULT_B_ID" "$sp" "${KEYVAULT_B_SECRETS:-}"
  fi
  if has_cross_blob; then
    grant_role "$sp" "Storage Blob Data Reader" "$(blob_scope "$STORAGE_B_ID" "${STORAGE_B_CONTAINER:-}")"
  fi

  heading "tenant B 3/3: approve tenant A's private endpoint connections"
  if has_cross_vault; then
    approve_connection "$KEYVAULT_B_ID" "$PE_KEYVAULT_ID" "$PE_KEYVAULT_NAME"
  fi
  if has_cross_blob; then
    approve_connection "$STORAGE_B_ID" "$PE_BLOB_ID" "$PE_BLOB_NAME"
  fi
  note "tenant B done. Tenant A runs 'setup.sh tenant-a-dns'"
}

# approve_connection TARGET_ID PE_ID PE_NAME
approve_connection() {
  local target="$1" pe_id="$2" pe_name="$3" conn status
  find_connection conn status "$target" "$pe_id" "$pe_name"
  case "$status" in
    Approved) note "connection from $pe_name is approved" ;;
    Pending)
      run az network private-endpoint-connection approve --id "$conn" \
        --description "tenant-bridge: approved for tenant $TENANT_A_ID"
      ;;
    "") die "no connection from $pe_id on $target yet: run 'setup.sh tenant-a' in tenant A first" ;;
    *) die "the connection from $pe_name is $status: delete $pe_name in tenant A, run 'setup.sh tenant-a', then this again" ;;
  esac
}

# ---- tenant A, after approval --------------------------------------------------------------

tenant_a_dns() {
  check_tenant_a_config
  heading "tenant A ($TENANT_A_ID), after tenant B's approval: sign in"
  use_tenant "tenant A" "$TENANT_A_ID" "$SUBSCRIPTION_A_ID"
  local n=0 total=0
  if has_cross_vault; then total=$((total + 1)); fi
  if has_cross_blob; then total=$((total + 1)); fi
  if has_cross_vault; then
    n=$((n + 1))
    heading "tenant A DNS $n/$total: $VAULT_ZONE for $PE_KEYVAULT_NAME"
    private_dns "$PE_KEYVAULT_NAME" "$VAULT_ZONE" vault
  fi
  if has_cross_blob; then
    n=$((n + 1))
    heading "tenant A DNS $n/$total: $BLOB_ZONE for $PE_BLOB_NAME"
    private_dns "$PE_BLOB_NAME" "$BLOB_ZONE" blob
  fi
}

# private_dns PE_NAME ZONE GROUP
private_dns() {
  local pe="$1" zone="$2" group="$3" status links zone_id
  lookup status "Approved" az network private-endpoint show --resource-group "$RESOURCE_GROUP_A" --name "$pe" \
    --query "manualPrivateLinkServiceConnections[0].privateLinkServiceConnectionState.status" --output tsv
  [[ "$status" == Approved ]] ||
    die "the connection of $pe is '${status:-missing}', not Approved: tenant B runs 'setup.sh tenant-b' (or approves it in the portal), then run this again"
  zone_id="/subscriptions/$SUBSCRIPTION_A_ID/resourceGroups/$DNS_RESOURCE_GROUP/providers/Microsoft.Network/privateDnsZones/$zone"
  exists az network private-dns zone show --resource-group "$DNS_RESOURCE_GROUP" --name "$zone" --query id --output tsv ||
    run az network private-dns zone create --resource-group "$DNS_RESOURCE_GROUP" --name "$zone"
  lookup links "" az network private-dns link vnet list --resource-group "$DNS_RESOURCE_GROUP" --zone-name "$zone" \
    --query "[].virtualNetwork.id" --output tsv
  if grep -qixF "$VNET_ID" <<<"$links"; then
    note "$zone is already linked to $VNET_NAME"
  else
    run az network private-dns link vnet create --resource-group "$DNS_RESOURCE_GROUP" --zone-name "$zone" \
      --name "$VNET_LINK_NAME" --virtual-network "$VNET_ID" --registration-enabled false
  fi
  exists az network private-endpoint dns-zone-group show --resource-group "$RESOURCE_GROUP_A" --endpoint-name "$pe" \
    --name default --query id --output tsv ||
    run az network private-endpoint dns-zone-group create --resource-group "$RESOURCE_GROUP_A" --endpoint-name "$pe" \
      --name default --private-dns-zone "$zone_id" --zone-name "$group"
}

# ---- outputs -------------------------------------------------------------------------------

outputs() {
  check_tenant_a_config
  heading "Spin variables (deploy/settings.env)"
  local client_id
  if ! is_dry_run; then
    use_tenant "tenant A" "$TENANT_A_ID" "$SUBSCRIPTION_A_ID" >/dev/null
  fi
  lookup client_id "<clientId of $IDENTITY_NAME>" az identity show --resource-group "$RESOURCE_GROUP_A" \
    --name "$IDENTITY_NAME" --query clientId --output tsv
  resolve_app "<appId of $APP_DISPLAY_NAME>"
  local unset=https://unset.invalid
  printf 'cloud=%s\n' "$CLOUD"
  printf 'azure_client_id=%s\n' "${client_id:-<run setup.sh tenant-a first>}"
  printf 'app_client_id=%s\n' "${APP_CLIENT_ID:-<run setup.sh tenant-a first>}"
  printf 'cross_tenant_id=%s\n' "$TENANT_B_ID"
  if has_cross_vault; then
    printf 'cross_keyvault_endpoint=https://%s.%s\n' "$KEYVAULT_B_NAME" "$VAULT_SUFFIX"
  else
    printf 'cross_keyvault_endpoint=%s\n' "$unset"
  fi
  if has_cross_blob; then
    printf 'cross_blob_service_endpoint=https://%s.%s\n' "$STORAGE_B_NAME" "$BLOB_SUFFIX"
  else
    printf 'cross_blob_service_endpoint=%s\n' "$unset"
  fi
  if [[ -n "${KEYVAULT_A_NAME:-}" ]]; then
    printf 'keyvault_endpoint=https://%s.%s\n' "$KEYVAULT_A_NAME" "$VAULT_SUFFIX"
  else
    printf 'keyvault_endpoint=%s\n' "$unset"
  fi
  if [[ -n "${STORAGE_A_NAME:-}" ]]; then
    printf 'blob_service_endpoint=https://%s.%s\n' "$STORAGE_A_NAME" "$BLOB_SUFFIX"
  else
    printf 'blob_service_endpoint=%s\n' "$unset"
  fi
}

# ---- teardown ------------------------------------------------------------------------------

teardown_tenant_b() {
  check_common_config
  require_guid APP_CLIENT_ID
  heading "teardown, tenant B ($TENANT_B_ID): sign in"
  use_tenant "tenant B" "$TENANT_B_ID" "$SUBSCRIPTION_B_ID"

  heading "teardown, tenant B 1/3: tenant A's private endpoint connections"
  local conn status
  if has_cross_vault; then
    find_connection conn status "$KEYVAULT_B_ID" "$PE_KEYVAULT_ID" "$PE_KEYVAULT_NAME"
    if [[ -n "$conn" ]]; then run az network private-endpoint-connection delete --id "$conn" --yes; fi
  fi
  if has_cross_blob; then
    find_connection conn status "$STORAGE_B_ID" "$PE_BLOB_ID" "$PE_BLOB_NAME"
    if [[ -n "$conn" ]]; then run az network private-endpoint-connection delete --id "$conn" --yes; fi
  fi

  heading "teardown, tenant B 2/3: role assignments of the app's service principal"
  local sp
  lookup sp "<object id of the service principal of the app in tenant B>" \
    az ad sp show --id "$APP_CLIENT_ID" --query id --output tsv
  if [[ -z "$sp" ]]; then
    note "app $APP_CLIENT_ID has no service principal in tenant B: nothing to remove"
    return 0
  fi
  if has_cross_vault; then
    revoke_secret_read "$KEYVAULT_B_NAME" "$KEYVAULT_B_RESOURCE_GROUP" "$KEYVAULT_B_ID" "$sp" "${KEYVAULT_B_SECRETS:-}"
  fi
  if has_cross_blob; then
    revoke_role "$sp" "Storage Blob Data Reader" "$(blob_scope "$STORAGE_B_ID" "${STORAGE_B_CONTAINER:-}")"
  fi

  heading "teardown, tenant B 3/3: the app's service principal"
  run az ad sp delete --id "$APP_CLIENT_ID"
}

teardown_tenant_a() {
  check_tenant_a_config
  heading "teardown, tenant A ($TENANT_A_ID): sign in"
  use_tenant "tenant A" "$TENANT_A_ID" "$SUBSCRIPTION_A_ID"

  heading "teardown, tenant A 1/5: private endpoints (their DNS zone groups go with them)"
  local pe
  for pe in "$PE_KEYVAULT_NAME" "$PE_BLOB_NAME"; do
    if { [[ "$pe" == "$PE_KEYVAULT_NAME" ]] && has_cross_vault; } || { [[ "$pe" == "$PE_BLOB_NAME" ]] && has_cross_blob; }; then
      if present az network private-endpoint show --resource-group "$RESOURCE_GROUP_A" --name "$pe" --query id --output tsv; then
        run az network private-endpoint delete --resource-group "$RESOURCE_GROUP_A" --name "$pe"
      fi
    fi
  done

  heading "teardown, tenant A 2/5: VNet links of the private DNS zones"
  local zone zones=()
  if has_cross_vault; then zones+=("$VAULT_ZONE"); fi
  if has_cross_blob; then zones+=("$BLOB_ZONE"); fi
  for zone in "${zones[@]}"; do
    if present az network private-dns link vnet show --resource-group "$DNS_RESOURCE_GROUP" --zone-name "$zone" \
      --name "$VNET_LINK_NAME" --query id --output tsv; then
      run az network private-dns link vnet delete --resource-group "$DNS_RESOURCE_GROUP" --zone-name "$zone" \
        --name "$VNET_LINK_NAME" --yes
    fi
    if [[ "$DELETE_DNS_ZONES" == true ]]; then
      if present az network private-dns zone show --resource-group "$DNS_RESOURCE_GROUP" --name "$zone" --query id --output tsv; then
        run az network private-dns zone delete --resource-group "$DNS_RESOURCE_GROUP" --name "$zone" --yes
      fi
    else
      note "zone $zone kept (other private endpoints may use it; DELETE_DNS_ZONES=true removes it)"
    fi
  done

  heading "teardown, tenant A 3/5: app registration (its federated credential goes with it)"
  resolve_app "<appId of $APP_DISPLAY_NAME>"
  if [[ -n "$APP_CLIENT_ID" ]]; then
    run az ad app delete --id "$APP_CLIENT_ID"
  else
    note "no app registration named $APP_DISPLAY_NAME"
  fi

  heading "teardown, tenant A 4/5: same-tenant roles of the identity"
  local principal
  lookup principal "<principalId of $IDENTITY_NAME>" az identity show --resource-group "$RESOURCE_GROUP_A" \
    --name "$IDENTITY_NAME" --query principalId --output tsv
  if [[ -n "$principal" && -n "$KEYVAULT_A_ID" ]]; then
    revoke_secret_read "$KEYVAULT_A_NAME" "$KEYVAULT_A_RESOURCE_GROUP" "$KEYVAULT_A_ID" "$principal" "${KEYVAULT_A_SECRETS:-}"
  fi
  if [[ -n "$principal" && -n "$STORAGE_A_ID" ]]; then
    revoke_role "$principal" "Storage Blob Data Reader" "$(blob_scope "$STORAGE_A_ID" "${STORAGE_A_CONTAINER:-}")"
  fi
  if [[ -z "$KEYVAULT_A_ID$STORAGE_A_ID" ]]; then
    note "no same-tenant vault or account configured"
  fi

  heading "teardown, tenant A 5/5: node pool, identity assignment and identity"
  if [[ "$AKS_NODEPOOL_CREATE" == true ]]; then
    if present az aks nodepool show --resource-group "$AKS_RESOURCE_GROUP" --cluster-name "$AKS_CLUSTER_NAME" \
      --name "$AKS_NODEPOOL" --query name --output tsv; then
      run az aks nodepool delete --resource-group "$AKS_RESOURCE_GROUP" --cluster-name "$AKS_CLUSTER_NAME" \
        --name "$AKS_NODEPOOL"
    fi
  else
    local vmss assigned
    node_pool_vmss vmss
    if [[ -n "$vmss" ]]; then
      lookup assigned "$MI_ID" az vmss identity show --resource-group "$NODE_RESOURCE_GROUP" --name "$vmss" \
        --query userAssignedIdentities --output json
      if grep -qiF "$MI_ID" <<<"$assigned"; then
        run az vmss identity remove --resource-group "$NODE_RESOURCE_GROUP" --name "$vmss" --identities "$MI_ID"
      fi
    fi
  fi
  if present az identity show --resource-group "$RESOURCE_GROUP_A" --name "$IDENTITY_NAME" --query id --output tsv; then
    run az identity delete --resource-group "$RESOURCE_GROUP_A" --name "$IDENTITY_NAME"
  fi
  note "resource group $RESOURCE_GROUP_A is kept (it may hold other resources): 'az group delete --name $RESOURCE_GROUP_A' removes it"
}

# ---- main ----------------------------------------------------------------------------------

main() {
  local config="${TB_CONFIG:-$HERE/config.env}" command="" yes=0
  while (($# > 0)); do
    case "$1" in
      --dry-run) DRY_RUN=1 ;;
      --config)
        (($# > 1)) || die "--config needs a file"
        config="$2"
        shift
        ;;
      --config=*) config="${1#--config=}" ;;
      --yes | -y) yes=1 ;;
      -h | --help)
        usage
        return 0
        ;;
      -*) die "unknown option $1 (see --help)" ;;
      *)
        [[ -z "$command" ]] || die "one command at a time (see --help)"
        command="$1"
        ;;
    esac
    shift
  done
  [[ -n "$command" ]] || {
    usage >&2
    exit 2
  }
  load_config "$config"

  case "$command" in
    teardown*)
      if ! is_dry_run && [[ "$yes" != 1 ]]; then
        die "'$command' deletes what the set-up created; run it with --dry-run to see what, then with --yes"
      fi
      DRY_ASSUME_PRESENT=1
      ;;
  esac
  if is_dry_run; then
    note "DRY RUN of '$command': nothing is changed and nothing is looked up. '+' lines are the changes,"
    note "'?' lines the checks a real run makes first, <...> the values those checks would find."
  else
    command -v az >/dev/null || die "the Azure CLI (az) is not installed: https://aka.ms/azure-cli"
  fi

  case "$command" in
    tenant-a) tenant_a ;;
    tenant-b) tenant_b ;;
    tenant-a-dns) tenant_a_dns ;;
    outputs) outputs ;;
    all)
      tenant_a
      tenant_b
      tenant_a_dns
      outputs
      ;;
    teardown-tenant-a) teardown_tenant_a ;;
    teardown-tenant-b) teardown_tenant_b ;;
    teardown)
      if [[ -z "$APP_CLIENT_ID" ]]; then
        # Tenant B finds the app's service principal by the app id, which lives in tenant A.
        heading "teardown: find the app registration in tenant A ($TENANT_A_ID)"
        check_tenant_a_config
        use_tenant "tenant A" "$TENANT_A_ID" "$SUBSCRIPTION_A_ID"
        resolve_app "<appId of $APP_DISPLAY_NAME>"
        [[ -n "$APP_CLIENT_ID" ]] || die "no app registration named $APP_DISPLAY_NAME in tenant A: set APP_CLIENT_ID"
      fi
      teardown_tenant_b
      teardown_tenant_a
      ;;
    *) die "unknown command '$command' (see --help)" ;;
  esac
}

main "$@"
