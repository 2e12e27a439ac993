#!/usr/bin/env bash
# Cross-tenant set-up of tenant-bridge with the Azure CLI, tenant by tenant (docs/deploy.md).
#
# usage: deploy/azure/setup.sh [--dry-run] [--config FILE] [--target X]... [--yes] COMMAND
#
#   tenant-a           in tenant A (the identity's tenant, with AKS and the VNet):
#                        1. resource group and user-assigned managed identity
#                        2. the dedicated, tainted AKS node pool, labelled for the shim installer
#                        3. the identity assigned to that node pool's VM scale set
#                        4. the multi-tenant app registration (found by its exact name, then
#                           remembered by id)
#                        5. its federated credential trusting the identity
#                        6. same-tenant roles for the identity (only if configured)
#                        7. private endpoints to every target tenant's vault and account
#                           (manual approval)
#   tenant-b           in each target tenant (TARGET_TENANTS; B by default):
#                        1. the app's service principal (consent)
#                        2. Key Vault Secrets User / Storage Blob Data Reader for it
#                        3. approval of tenant A's pending private endpoint connections
#   tenant-a-dns       back in tenant A, once approved: private DNS zones, VNet links and the
#                      private endpoints' DNS zone groups
#   all                tenant-a, tenant-b, tenant-a-dns, outputs (one person signed in to all)
#   outputs            the settings the set-up determines, per target tenant: members of the
#                      `settings` JSON document, to merge into deploy/settings.json
#   check              read back every link of the chain and report it ok / missing / drifted,
#                      with the fix (read-only; exit status 1 when a link is broken)
#   teardown-tenant-b  in each target tenant: connections, roles, service principal
#   teardown-tenant-a  tenant A: private endpoints, DNS links it made, app registration, roles,
#                      node pool, identity
#   teardown           both teardowns, target tenants first
#   teardown-target    with --target X: one target tenant only (its connections, roles and
#                      service principal, then tenant A's private endpoints to it); the app, the
#                      identity and the other targets stay
#
#   --dry-run (or DRY_RUN=1)  print every command instead of running it; nothing is looked up
#   --config FILE             the settings (default: deploy/azure/config.env, or $TB_CONFIG)
#   --target X                only target tenant X (repeatable); tenant-b, tenant-a-dns,
#                             outputs, check, teardown-tenant-b and teardown-target honour it
#   --settings FILE           check: the settings document to compare (default:
#                             deploy/settings.json)
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
ONLY_TARGETS=()
SETTINGS_FILE="$HERE/../settings.json"

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

t_has_vault() { [[ -n "$T_KEYVAULT_NAME" ]]; }
t_has_blob() { [[ -n "$T_STORAGE_NAME" ]]; }
t_has_registry() { [[ -n "$T_REGISTRY_NAME" ]]; }

# The targets a command acts on: TARGET_TENANTS, or those given with --target.
selected_targets() {
  if ((${#ONLY_TARGETS[@]} == 0)); then
    printf '%s\n' "${TARGETS[@]}"
  else
    printf '%s\n' "${ONLY_TARGETS[@]}"
  fi
}

any_target_has() { # vault|blob: true when some target reads that service
  local t
  for t in "${TARGETS[@]}"; do
    select_target "$t"
    if [[ "$1" == vault ]] && t_has_vault; then return 0; fi
    if [[ "$1" == blob ]] && t_has_blob; then return 0; fi
  done
  return 1
}

check_target_config() {
  local t="$1"
  select_target "$t"
  require_guid "TENANT_${t}_ID" "SUBSCRIPTION_${t}_ID"
  t_has_vault || t_has_blob || t_has_registry ||
    die "set KEYVAULT_${t}_NAME, STORAGE_${t}_NAME or both: the resources tenant-bridge reads in tenant $t"
  if t_has_vault; then require "KEYVAULT_${t}_RESOURCE_GROUP"; fi
  if t_has_blob; then require "STORAGE_${t}_RESOURCE_GROUP"; fi
  if t_has_registry; then
    require "REGISTRY_${t}_RESOURCE_GROUP"
    [[ "$T_REGISTRY_ROLE" == AcrPull || "$T_REGISTRY_ROLE" == "Container Registry Repository Reader" ]] ||
      die "REGISTRY_${t}_ROLE must be AcrPull (RBAC registries) or 'Container Registry Repository Reader' (ABAC registries), not '$T_REGISTRY_ROLE'"
  fi
  [[ "$(lower "${TENANT_A_ID:-}")" != "$(lower "$T_TENANT_ID")" ]] ||
    die "TENANT_A_ID and TENANT_${t}_ID are the same tenant: the same-tenant endpoints need no federation"
}

check_common_config() {
  require_guid TENANT_A_ID SUBSCRIPTION_A_ID
  require RESOURCE_GROUP_A
  local t
  for t in "${TARGETS[@]}"; do check_target_config "$t"; done
  if ((${#ONLY_TARGETS[@]} > 0)); then
    for t in "${ONLY_TARGETS[@]}"; do
      [[ " ${TARGETS[*]} " == *" $t "* ]] || die "--target $t is not in TARGET_TENANTS (${TARGETS[*]})"
    done
  fi
  if [[ -n "$APP_CLIENT_ID" ]]; then require_guid APP_CLIENT_ID; fi
}

check_tenant_a_config() {
  check_common_config
  require LOCATION AKS_RESOURCE_GROUP AKS_CLUSTER_NAME AKS_NODEPOOL IDENTITY_NAME APP_DISPLAY_NAME \
    FIC_NAME VNET_RESOURCE_GROUP VNET_NAME PE_SUBNET_NAME DNS_RESOURCE_GROUP
  require_guid DNS_SUBSCRIPTION_ID
  require_bool AKS_NODEPOOL_CREATE DELETE_DNS_ZONES
  [[ "$DNS_RESOLUTION_POLICY" == NxDomainRedirect || "$DNS_RESOLUTION_POLICY" == Default ]] ||
    die "DNS_RESOLUTION_POLICY must be NxDomainRedirect or Default, not '$DNS_RESOLUTION_POLICY'"
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

# secret_permissions VAULT RESOURCE_GROUP PRINCIPAL_ID PLACEHOLDER: the principal's secret
# permissions in an access-policy vault, lowercase and space-separated.
secret_permissions() {
  local permissions
  lookup permissions "$4" az keyvault show --name "$1" --resource-group "$2" \
    --query "properties.accessPolicies[?objectId=='$3'].permissions.secrets[]" --output tsv
  local words=()
  read -ra words <<<"$(lower "${permissions//[$'\t\n']/ }")"
  printf '%s' "${words[*]:-}"
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
    local have
    have="$(secret_permissions "$name" "$group" "$principal" "")"
    if [[ " $have " == *" get "* ]]; then
      note "the access policy of $principal already has 'get'"
    else
      # set-policy replaces the principal's secret permissions: keep what it has, add get.
      local merged=()
      read -ra merged <<<"$have"
      merged+=(get)
      run az keyvault set-policy --name "$name" --resource-group "$group" --object-id "$principal" \
        --secret-permissions "${merged[@]}"
    fi
  fi
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
    return 0
  fi
  local have rest=() p
  have="$(secret_permissions "$name" "$group" "$principal" "get")"
  [[ " $have " == *" get "* ]] || return 0
  for p in $have; do [[ "$p" == get ]] || rest+=("$p"); done
  if ((${#rest[@]} == 0)); then
    run az keyvault delete-policy --name "$name" --resource-group "$group" --object-id "$principal"
  else
    note "the access policy of $principal has more than 'get' ($have): only 'get' is removed"
    run az keyvault set-policy --name "$name" --resource-group "$group" --object-id "$principal" \
      --secret-permissions "${rest[@]}"
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
# private endpoint PE_ID on a target's resource TARGET_ID, and its status (both empty if none).
# Locals start with __ so they never shadow the caller's variables.
find_connection() {
  local __id_var="$1" __status_var="$2" __target="$3" __pe_id="$4" __pe_name="$5"
  local __rows __line __conn __pe __st
  lookup __rows "<id of the connection from $__pe_name>"$'\t'"$__pe_id"$'\t'"${DRY_CONNECTION_STATUS:-Pending}" \
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

# find_app PLACEHOLDER: APP_CLIENT_ID from the configuration or the remembered id, else the one
# app registration whose display name is exactly APP_DISPLAY_NAME (empty when there is none).
# `az ad app list --display-name` matches prefixes (Graph startswith): a staging configuration
# would adopt "...-prod". So the filter is an exact `eq`, every row is compared again here, and
# more than one match stops the script.
find_app() {
  local placeholder="$1" rows line id name matches=()
  if [[ -n "$APP_CLIENT_ID" ]]; then
    return 0
  fi
  lookup rows "$placeholder" az ad app list --filter "displayName eq '${APP_DISPLAY_NAME//\'/\'\'}'" \
    --query "[].[appId, displayName]" --output tsv
  while IFS= read -r line; do
    [[ -n "$line" ]] || continue
    IFS=$'\t' read -r id name <<<"$line"
    if [[ "$name" == "$APP_DISPLAY_NAME" ]]; then matches+=("$id"); fi
  done <<<"$rows"
  if ((${#matches[@]} > 1)); then
    die "${#matches[@]} app registrations are named exactly '$APP_DISPLAY_NAME' (${matches[*]}): set APP_CLIENT_ID to the right one"
  fi
  APP_CLIENT_ID="${matches[0]:-}"
  [[ -z "$APP_CLIENT_ID" ]] || APP_ID_SOURCE=found
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

# vmss_identity VAR_STATE VMSS: "assigned" when the identity (by principal id) is on the scale
# set, "stale" when its resource id is there with another principal (the identity was deleted
# and re-created under the same name: IMDS answers identity-not-found), "absent" otherwise.
vmss_identity() {
  local __var="$1" vmss="$2" ids principals
  lookup ids "" az vmss identity show --resource-group "$NODE_RESOURCE_GROUP" --name "$vmss" \
    --query "keys(userAssignedIdentities)" --output tsv
  lookup principals "" az vmss identity show --resource-group "$NODE_RESOURCE_GROUP" --name "$vmss" \
    --query "userAssignedIdentities.*.principalId" --output tsv
  if [[ -n "$MI_PRINCIPAL_ID" ]] && grep -qixF "$MI_PRINCIPAL_ID" <<<"$principals"; then
    printf -v "$__var" assigned
  elif grep -qixF "$MI_ID" <<<"$ids"; then
    printf -v "$__var" stale
  else
    printf -v "$__var" absent
  fi
}

# pool_labels VAR: the node pool's labels as "key=value" words (empty when it has none).
pool_labels() {
  local __var="$1" __json __pairs=() __pair
  lookup __json "{}" az aks nodepool show --resource-group "$AKS_RESOURCE_GROUP" \
    --cluster-name "$AKS_CLUSTER_NAME" --name "$AKS_NODEPOOL" --query nodeLabels --output json
  while IFS= read -r __pair; do
    [[ -n "$__pair" ]] || continue
    __pair="${__pair//\"/}"
    __pairs+=("${__pair%%:*}=${__pair#*: }")
  done < <(grep -oE '"[^"]+": *"[^"]*"' <<<"$__json" | sed 's/": *"/: /; s/^"//; s/"$//')
  printf -v "$__var" '%s' "${__pairs[*]:-}"
}

# missing_labels CURRENT: the POOL_LABELS not among CURRENT ("key=value" words).
missing_labels() {
  local want out=()
  for want in $POOL_LABELS; do
    [[ " $1 " == *" $want "* ]] || out+=("$want")
  done
  printf '%s' "${out[*]:-}"
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

  heading "tenant A 2/7: dedicated node pool $AKS_NODEPOOL (taint $NODE_TAINT, labels $POOL_LABELS)"
  if exists az aks nodepool show --resource-group "$AKS_RESOURCE_GROUP" --cluster-name "$AKS_CLUSTER_NAME" \
    --name "$AKS_NODEPOOL" --query name --output tsv; then
    note "node pool $AKS_NODEPOOL exists"
    local current missing
    pool_labels current
    missing="$(missing_labels "$current")"
    if [[ -z "$missing" ]]; then
      note "node pool $AKS_NODEPOOL has the labels $POOL_LABELS"
    else
      # --labels replaces the pool's labels: keep the others. AKS applies them to every node,
      # present and future.
      local merged=() pair key
      for pair in $current; do
        key="${pair%%=*}"
        [[ " $POOL_LABELS " == *" $key="* ]] || merged+=("$pair")
      done
      # shellcheck disable=SC2206 # key=value words
      merged+=($POOL_LABELS)
      run az aks nodepool update --resource-group "$AKS_RESOURCE_GROUP" --cluster-name "$AKS_CLUSTER_NAME" \
        --name "$AKS_NODEPOOL" --labels "${merged[@]}"
    fi
  elif [[ "$AKS_NODEPOOL_CREATE" == true ]]; then
    # shellcheck disable=SC2086 # POOL_LABELS is a list of key=value words
    run az aks nodepool add --resource-group "$AKS_RESOURCE_GROUP" --cluster-name "$AKS_CLUSTER_NAME" \
      --name "$AKS_NODEPOOL" --mode User --os-type Linux --node-count "$AKS_NODEPOOL_COUNT" \
      --node-vm-size "$AKS_NODEPOOL_VM_SIZE" --node-taints "$NODE_TAINT" --labels $POOL_LABELS
  elif is_dry_run; then
    note "AKS_NODEPOOL_CREATE=false: node pool $AKS_NODEPOOL must already exist"
  else
    die "node pool $AKS_NODEPOOL does not exist in $AKS_CLUSTER_NAME: create it, or set AKS_NODEPOOL_CREATE=true"
  fi

  heading "tenant A 3/7: identity on the node pool's VM scale set (reached through IMDS)"
  local vmss state level
  node_pool_vmss vmss
  [[ -n "$vmss" ]] || die "no VM scale set for node pool $AKS_NODEPOOL in $NODE_RESOURCE_GROUP: only VM-scale-set node pools can carry the identity"
  lookup level "" az aks show --resource-group "$AKS_RESOURCE_GROUP" --name "$AKS_CLUSTER_NAME" \
    --query nodeResourceGroupProfile.restrictionLevel --output tsv
  vmss_identity state "$vmss"
  case "$state" in
    assigned) note "$IDENTITY_NAME (principal $MI_PRINCIPAL_ID) is assigned to $vmss" ;;
    stale | absent)
      if [[ "$(lower "$level")" == readonly ]]; then
        die "node resource group lockdown (nodeResourceGroupProfile.restrictionLevel ReadOnly, preset on AKS Automatic) denies 'az vmss identity assign' on $NODE_RESOURCE_GROUP. Either allow it ('az aks update --resource-group $AKS_RESOURCE_GROUP --name $AKS_CLUSTER_NAME --nrg-restriction-level Unrestricted', then run this again), or use the identity as the cluster's kubelet identity (docs/deploy.md, 'Identity on SpinKube': every pool then carries it)"
      fi
      if [[ "$state" == stale ]]; then
        note "$vmss lists $IDENTITY_NAME with another principal id than $MI_PRINCIPAL_ID (the identity was re-created): assigning it again"
        run az vmss identity remove --resource-group "$NODE_RESOURCE_GROUP" --name "$vmss" --identities "$MI_ID"
      fi
      run az vmss identity assign --resource-group "$NODE_RESOURCE_GROUP" --name "$vmss" --identities "$MI_ID"
      ;;
  esac

  heading "tenant A 4/7: multi-tenant app registration $APP_DISPLAY_NAME"
  if [[ -n "$APP_CLIENT_ID" ]]; then
    local shown
    lookup shown "$APP_DISPLAY_NAME" az ad app show --id "$APP_CLIENT_ID" --query displayName --output tsv
    [[ -n "$shown" ]] || die "APP_CLIENT_ID $APP_CLIENT_ID ($APP_ID_SOURCE) is not an app registration of tenant A"
    if [[ "$APP_ID_SOURCE" == remembered && "$shown" != "$APP_DISPLAY_NAME" ]]; then
      die "the remembered app $APP_CLIENT_ID ($STATE_FILE) is named '$shown', not '$APP_DISPLAY_NAME': set APP_CLIENT_ID, or delete $STATE_FILE"
    fi
    note "app registration $APP_CLIENT_ID ($APP_ID_SOURCE)"
  else
    find_app ""
    if [[ -z "$APP_CLIENT_ID" ]]; then
      run az ad app create --display-name "$APP_DISPLAY_NAME" --sign-in-audience AzureADMultipleOrgs
      find_app "<appId of $APP_DISPLAY_NAME>"$'\t'"$APP_DISPLAY_NAME"
      [[ -n "$APP_CLIENT_ID" ]] || die "app registration $APP_DISPLAY_NAME not found after creating it: run again"
    fi
  fi
  remember_app "$APP_CLIENT_ID"
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

  heading "tenant A 7/7: private endpoints to the target tenants' resources (connection requests for each target to approve)"
  # A private endpoint to a vault or account needs that resource provider registered in the
  # endpoint's own subscription, even though the resource lives in another tenant.
  if any_target_has vault; then register_provider Microsoft.KeyVault; fi
  if any_target_has blob; then register_provider Microsoft.Storage; fi
  # A private endpoint lives in its VNet's region, whatever LOCATION says.
  local pe_location t
  lookup pe_location "<region of $VNET_NAME>" az network vnet show --resource-group "$VNET_RESOURCE_GROUP" \
    --name "$VNET_NAME" --query location --output tsv
  [[ -n "$pe_location" ]] || die "VNet $VNET_NAME not found in $VNET_RESOURCE_GROUP"
  for t in "${TARGETS[@]}"; do
    select_target "$t"
    if t_has_vault; then
      create_private_endpoint "$T_PE_KEYVAULT_NAME" "$T_KEYVAULT_ID" vault "vault $T_KEYVAULT_NAME" "$pe_location"
    fi
    if t_has_blob; then
      create_private_endpoint "$T_PE_BLOB_NAME" "$T_STORAGE_ID" blob "account $T_STORAGE_NAME" "$pe_location"
    fi
  done

  note "tenant A done. Each target tenant's administrator runs 'setup.sh tenant-b' (or '--target X tenant-b') with APP_CLIENT_ID=$APP_CLIENT_ID"
}

# register_provider NAMESPACE: registered once per subscription (needs */register/action).
register_provider() {
  local state
  lookup state "" az provider show --namespace "$1" --query registrationState --output tsv
  if [[ "$state" == Registered ]]; then
    note "resource provider $1 is registered"
  else
    run az provider register --namespace "$1" --wait
  fi
}

# create_private_endpoint NAME TARGET_ID GROUP WHAT LOCATION
# The request message is at most 140 characters (ARM's PrivateLinkServiceConnection
# requestMessage): with a tenant id (36) and a vault or account name (24 at most) this one is 115
# at most, whatever the target is called (tests/deploy/upstream.rs).
create_private_endpoint() {
  local name="$1" target="$2" group="$3" what="$4" location="$5"
  exists az network private-endpoint show --resource-group "$RESOURCE_GROUP_A" --name "$name" --query id --output tsv ||
    run az network private-endpoint create --resource-group "$RESOURCE_GROUP_A" --name "$name" \
      --location "$location" --subnet "$SUBNET_ID" --private-connection-resource-id "$target" \
      --group-id "$group" --connection-name "$name" --manual-request true \
      --request-message "tenant-bridge (tenant $TENANT_A_ID) asks private access to $what"
}

# ---- target tenants ------------------------------------------------------------------------

# sp_of VAR PLACEHOLDER: the object id of the app's service principal in the current tenant.
sp_of() {
  lookup "$1" "$2" az ad sp show --id "$APP_CLIENT_ID" --query id --output tsv
}

tenant_b() {
  check_common_config
  require_guid APP_CLIENT_ID
  local t sel=()
  mapfile -t sel < <(selected_targets)
  for t in "${sel[@]}"; do
    tenant_target "$t"
  done
}

tenant_target() {
  select_target "$1"
  heading "$T_LABEL ($T_TENANT_ID, profile '$T_PROFILE'): sign in"
  use_tenant "$T_LABEL" "$T_TENANT_ID" "$T_SUBSCRIPTION_ID"

  heading "$T_LABEL 1/3: service principal of app $APP_CLIENT_ID (consent)"
  local sp
  sp_of sp ""
  if [[ -z "$sp" ]]; then
    note "or an administrator of $T_LABEL consents once: $AUTHORITY/$T_TENANT_ID/adminconsent?client_id=$APP_CLIENT_ID"
    run az ad sp create --id "$APP_CLIENT_ID"
    sp_of sp "<object id of the service principal of the app in $T_LABEL>"
    [[ -n "$sp" ]] || die "service principal of $APP_CLIENT_ID not found after creating it: run again"
  else
    note "service principal exists"
  fi

  heading "$T_LABEL 2/3: least-privilege roles for the service principal"
  if t_has_vault; then
    grant_secret_read "$T_KEYVAULT_NAME" "$T_KEYVAULT_RESOURCE_GROUP" "$T_KEYVAULT_ID" "$sp" "$T_KEYVAULT_SECRETS"
  fi
  if t_has_blob; then
    grant_role "$sp" "Storage Blob Data Reader" "$(blob_scope "$T_STORAGE_ID" "$T_STORAGE_CONTAINER")"
  fi
  if t_has_registry; then
    grant_role "$sp" "$T_REGISTRY_ROLE" "$T_REGISTRY_ID"
  fi

  heading "$T_LABEL 3/3: approve tenant A's private endpoint connections"
  if t_has_vault; then
    approve_connection "$T_KEYVAULT_ID" "$T_PE_KEYVAULT_ID" "$T_PE_KEYVAULT_NAME"
  fi
  if t_has_blob; then
    approve_connection "$T_STORAGE_ID" "$T_PE_BLOB_ID" "$T_PE_BLOB_NAME"
  fi
  note "$T_LABEL done. Tenant A runs 'setup.sh tenant-a-dns'"
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

# zone_args: --subscription for the privatelink zones when they live in another subscription
# (a hub / connectivity subscription).
ZONE_ARGS=()
set_zone_args() {
  ZONE_ARGS=()
  if [[ "$(lower "$DNS_SUBSCRIPTION_ID")" != "$(lower "$SUBSCRIPTION_A_ID")" ]]; then
    ZONE_ARGS=(--subscription "$DNS_SUBSCRIPTION_ID")
  fi
}

tenant_a_dns() {
  check_tenant_a_config
  heading "tenant A ($TENANT_A_ID), after the target tenants' approval: sign in"
  use_tenant "tenant A" "$TENANT_A_ID" "$SUBSCRIPTION_A_ID"
  set_zone_args
  local t sel=() work=() item n=0
  mapfile -t sel < <(selected_targets)
  for t in "${sel[@]}"; do
    select_target "$t"
    if t_has_vault; then work+=("$t vault"); fi
    if t_has_blob; then work+=("$t blob"); fi
  done
  for item in "${work[@]}"; do
    n=$((n + 1))
    select_target "${item% *}"
    if [[ "${item#* }" == vault ]]; then
      heading "tenant A DNS $n/${#work[@]}: $VAULT_ZONE for $T_PE_KEYVAULT_NAME ($T_LABEL)"
      private_dns "$T_PE_KEYVAULT_NAME" "$VAULT_ZONE" vault
    else
      heading "tenant A DNS $n/${#work[@]}: $BLOB_ZONE for $T_PE_BLOB_NAME ($T_LABEL)"
      private_dns "$T_PE_BLOB_NAME" "$BLOB_ZONE" blob
    fi
  done
}

zone_id_of() {
  printf '/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/privateDnsZones/%s' \
    "$DNS_SUBSCRIPTION_ID" "$DNS_RESOURCE_GROUP" "$1"
}

# zone_groups VAR PE PLACEHOLDER: "name<TAB>zone ids" rows of the endpoint's DNS zone groups.
zone_groups() {
  lookup "$1" "$3" az network private-endpoint dns-zone-group list --resource-group "$RESOURCE_GROUP_A" \
    --endpoint-name "$2" --query "[].[name, join(',', privateDnsZoneConfigs[].privateDnsZoneId)]" --output tsv
}

# private_dns PE ZONE GROUP
private_dns() {
  local pe="$1" zone="$2" group="$3" status links zone_id groups
  lookup status "Approved" az network private-endpoint show --resource-group "$RESOURCE_GROUP_A" --name "$pe" \
    --query "manualPrivateLinkServiceConnections[0].privateLinkServiceConnectionState.status" --output tsv
  [[ "$status" == Approved ]] ||
    die "the connection of $pe is '${status:-missing}', not Approved: the target tenant runs 'setup.sh tenant-b' (or approves it in the portal), then run this again"
  zone_id="$(zone_id_of "$zone")"
  exists az network private-dns zone show "${ZONE_ARGS[@]}" --resource-group "$DNS_RESOURCE_GROUP" --name "$zone" --query id --output tsv ||
    run az network private-dns zone create "${ZONE_ARGS[@]}" --resource-group "$DNS_RESOURCE_GROUP" --name "$zone"
  lookup links "" az network private-dns link vnet list "${ZONE_ARGS[@]}" --resource-group "$DNS_RESOURCE_GROUP" --zone-name "$zone" \
    --query "[].virtualNetwork.id" --output tsv
  if grep -qixF "$VNET_ID" <<<"$links"; then
    note "$zone is already linked to $VNET_NAME"
  else
    # NxDomainRedirect: a name this zone has no record for (another tenant's storage account
    # behind its own private endpoint, any public account) falls back to public resolution
    # instead of failing. The tag tells teardown the link is ours.
    run az network private-dns link vnet create "${ZONE_ARGS[@]}" --resource-group "$DNS_RESOURCE_GROUP" --zone-name "$zone" \
      --name "$VNET_LINK_NAME" --virtual-network "$VNET_ID" --registration-enabled false \
      --resolution-policy "$DNS_RESOLUTION_POLICY" --tags created-by=tenant-bridge
  fi
  # A private endpoint has at most one DNS zone group, whatever its name: an Azure Landing Zone
  # policy (deployIfNotExists) may have created one already, pointing at the hub's zone.
  zone_groups groups "$pe" ""
  if [[ -z "$groups" ]]; then
    run az network private-endpoint dns-zone-group create --resource-group "$RESOURCE_GROUP_A" --endpoint-name "$pe" \
      --name default --private-dns-zone "$zone_id" --zone-name "$group"
  elif grep -qiF "$zone_id" <<<"$groups"; then
    note "$pe's DNS zone group '${groups%%$'\t'*}' already writes into $zone"
  else
    note "$pe already has the DNS zone group '${groups%%$'\t'*}' (${groups#*$'\t'}), e.g. from an Azure Landing Zone policy: kept, it is the one its records go to (a private endpoint takes one group)"
  fi
}

# ---- outputs -------------------------------------------------------------------------------

outputs() {
  check_tenant_a_config
  heading "settings: members of the settings JSON document (deploy/settings.json)"
  local client_id
  if ! is_dry_run; then
    use_tenant "tenant A" "$TENANT_A_ID" "$SUBSCRIPTION_A_ID" >/dev/null
  fi
  lookup client_id "<clientId of $IDENTITY_NAME>" az identity show --resource-group "$RESOURCE_GROUP_A" \
    --name "$IDENTITY_NAME" --query clientId --output tsv
  find_app "<appId of $APP_DISPLAY_NAME>"$'\t'"$APP_DISPLAY_NAME"
  # The document runs from a line '{' to a line '}' (`sed -n '/^{/,/^}/p'` cuts it out); every
  # other line is a note ('#') or, in a dry run, a command. null unsets a member (an endpoint
  # this configuration does not serve).
  local t default_set=0 sel=() members=() registries=()
  mapfile -t sel < <(selected_targets)
  members+=(cloud "$CLOUD")
  members+=(azure_client_id "${client_id:-<run setup.sh tenant-a first>}")
  members+=(app_client_id "${APP_CLIENT_ID:-<run setup.sh tenant-a first>}")
  for t in "${sel[@]}"; do
    select_target "$t"
    if [[ "$T_SLOT" == default ]]; then
      default_set=1
      note "$T_LABEL: the default profile, cross_* (requests without tenant=, or with tenant=$T_PROFILE)"
    else
      note "$T_LABEL: profile slot $T_SLOT, profile${T_SLOT}_* (tenant=$T_PROFILE)"
    fi
    members+=("$(slot_var "$T_SLOT" name)" "$T_PROFILE")
    members+=("$(slot_var "$T_SLOT" tenant_id)" "$T_TENANT_ID")
    if t_has_vault; then
      members+=("$(slot_var "$T_SLOT" keyvault_endpoint)" "https://$T_KEYVAULT_NAME.$VAULT_SUFFIX")
    else
      members+=("$(slot_var "$T_SLOT" keyvault_endpoint)" "$JSON_NULL")
    fi
    if t_has_blob; then
      members+=("$(slot_var "$T_SLOT" blob_service_endpoint)" "https://$T_STORAGE_NAME.$BLOB_SUFFIX")
    else
      members+=("$(slot_var "$T_SLOT" blob_service_endpoint)" "$JSON_NULL")
    fi
    if t_has_registry; then
      # Not in this profile: caller rules are per profile, and the registry-pull key must read
      # nothing but pull tokens. The registry profile (slot 4, deploy/profiles/registry.json)
      # takes these.
      registries+=("$T_LABEL" "$T_TENANT_ID" "$T_REGISTRY_NAME.$REGISTRY_SUFFIX")
    fi
  done
  if [[ "$default_set" != 1 && ${#ONLY_TARGETS[@]} == 0 ]]; then
    note "no target in the default profile: its members are unset"
    members+=(cross_tenant_id "$JSON_NULL" cross_keyvault_endpoint "$JSON_NULL" cross_blob_service_endpoint "$JSON_NULL")
  fi
  if [[ -n "${KEYVAULT_A_NAME:-}" ]]; then
    members+=(keyvault_endpoint "https://$KEYVAULT_A_NAME.$VAULT_SUFFIX")
  else
    members+=(keyvault_endpoint "$JSON_NULL")
  fi
  if [[ -n "${STORAGE_A_NAME:-}" ]]; then
    members+=(blob_service_endpoint "https://$STORAGE_A_NAME.$BLOB_SUFFIX")
  else
    members+=(blob_service_endpoint "$JSON_NULL")
  fi
  note "merge into deploy/settings.json (a member of the same name is replaced; docs/deploy.md, step 6):"
  note "  jq -s add deploy/settings.json <(deploy/azure/setup.sh outputs | sed -n '/^{/,/^}/p') > settings.new && mv settings.new deploy/settings.json"
  json_members "${members[@]}"
  while ((${#registries[@]} >= 3)); do
    note "${registries[0]} registry: for the registry profile (slot 4, deploy/profiles/registry.json; deploy/registry-pull/), not the profile above:"
    note "  $(json_members --line profile4_tenant_id "${registries[1]}" profile4_registries "${registries[2]}" \
      profile4_repositories "registry-pull=<repository prefix>*")"
    registries=("${registries[@]:3}")
  done
}

# ---- check ---------------------------------------------------------------------------------
#
# Every link of the chain, read back. One line per link:
#   ok       STEP  what
#   missing  STEP  what            (then "fix:" and the problem code the component answers)
#   drifted  STEP  what (found vs expected)
# STEP is the walk-through's: 1.x setup.sh tenant-a, 2.x setup.sh tenant-b, 3 tenant-a-dns,
# 4 the shim, 6 deploy/settings.json; the same steps the troubleshooting table gives for each code.

BROKEN=0
LINKS=0

report() { # STATUS STEP WHAT [FIX [CODE]]
  local status="$1" step="$2" what="$3" fix="${4:-}" code="${5:-}"
  LINKS=$((LINKS + 1))
  printf '%-8s %-4s %s\n' "$status" "$step" "$what"
  [[ "$status" == ok ]] && return 0
  BROKEN=$((BROKEN + 1))
  if [[ -n "$fix" ]]; then
    if [[ -n "$code" ]]; then
      printf '              fix: %s (meanwhile the component answers %s)\n' "$fix" "$code"
    else
      printf '              fix: %s\n' "$fix"
    fi
  fi
}

# check_setting NAME EXPECTED WHAT CODE: a member of the settings document (read_settings).
check_setting() {
  local name="$1" want="$2" what="$3" code="$4" have file="${SETTINGS_FILE##*/}"
  have="${SETTINGS[$name]:-}"
  if [[ -z "$have" ]]; then
    report missing 6 "$name ($what) in $file" "set \"$name\": \"$want\" (setup.sh outputs)" "$code"
  elif [[ "$(lower "${have%/}")" != "$(lower "$want")" ]]; then
    report drifted 6 "$name=$have in $file, but $what is $want" "set \"$name\": \"$want\", then kubectl apply -k deploy/" "$code"
  else
    report ok 6 "$name=$have ($what)"
  fi
}

is_private_ip() {
  [[ "$1" =~ ^10\. || "$1" =~ ^192\.168\. || "$1" =~ ^172\.(1[6-9]|2[0-9]|3[01])\. || "$1" =~ ^100\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\. ]]
}

check_chain() {
  check_tenant_a_config
  # A dry run of the check shows every read, assuming each link is there.
  DRY_ASSUME_PRESENT=1
  DRY_CONNECTION_STATUS=Approved
  heading "check, tenant A ($TENANT_A_ID)"
  use_tenant "tenant A" "$TENANT_A_ID" "$SUBSCRIPTION_A_ID"
  set_zone_args

  local client_id
  lookup MI_PRINCIPAL_ID "<principalId of $IDENTITY_NAME>" az identity show --resource-group "$RESOURCE_GROUP_A" \
    --name "$IDENTITY_NAME" --query principalId --output tsv
  lookup client_id "<clientId of $IDENTITY_NAME>" az identity show --resource-group "$RESOURCE_GROUP_A" \
    --name "$IDENTITY_NAME" --query clientId --output tsv
  if [[ -z "$MI_PRINCIPAL_ID" ]]; then
    report missing 1.1 "user-assigned managed identity $IDENTITY_NAME in $RESOURCE_GROUP_A" "setup.sh tenant-a" identity-not-found
  else
    report ok 1.1 "identity $IDENTITY_NAME (client id $client_id, principal id $MI_PRINCIPAL_ID)"
  fi

  # 1.2: the pool, its taint and its labels.
  local taints current missing
  if ! present az aks nodepool show --resource-group "$AKS_RESOURCE_GROUP" --cluster-name "$AKS_CLUSTER_NAME" \
    --name "$AKS_NODEPOOL" --query name --output tsv; then
    report missing 1.2 "node pool $AKS_NODEPOOL in $AKS_CLUSTER_NAME" "setup.sh tenant-a" identity-not-found
  else
    lookup taints "$NODE_TAINT" az aks nodepool show --resource-group "$AKS_RESOURCE_GROUP" --cluster-name "$AKS_CLUSTER_NAME" \
      --name "$AKS_NODEPOOL" --query nodeTaints --output tsv
    if grep -qxF "$NODE_TAINT" <<<"$taints"; then
      report ok 1.2 "node pool $AKS_NODEPOOL is tainted $NODE_TAINT"
    else
      report drifted 1.2 "node pool $AKS_NODEPOOL lacks the taint $NODE_TAINT (has: ${taints:-none}): other pods may land on the identity's nodes" \
        "a pool's taints are set when it is created: let setup.sh tenant-a create the pool anew"
    fi
    pool_labels current
    missing="$(missing_labels "$current")"
    if is_dry_run || [[ -z "$missing" ]]; then
      report ok 1.2 "node pool $AKS_NODEPOOL is labelled $POOL_LABELS"
    else
      report missing 1.2 "node pool labels $missing (the shim installer and deploy/runtimeclass.yaml select on them; pods stay Pending)" \
        "setup.sh tenant-a (merges them into the pool's labels)"
    fi
  fi

  # 1.3: the identity on the pool's scale set, by principal id.
  local vmss state
  node_pool_vmss vmss
  if [[ -z "$vmss" ]]; then
    report missing 1.3 "VM scale set of node pool $AKS_NODEPOOL" "setup.sh tenant-a" identity-not-found
  else
    vmss_identity state "$vmss"
    is_dry_run && state=assigned
    case "$state" in
      assigned) report ok 1.3 "$IDENTITY_NAME on scale set $vmss (principal $MI_PRINCIPAL_ID)" ;;
      stale) report drifted 1.3 "$vmss lists $IDENTITY_NAME, but not its principal $MI_PRINCIPAL_ID (identity re-created)" \
        "setup.sh tenant-a (re-assigns it); after a pool re-creation, run it in the upgrade pipeline" identity-not-found ;;
      *) report missing 1.3 "$IDENTITY_NAME on scale set $vmss (the pool was re-created, or never assigned)" \
        "setup.sh tenant-a; after a pool re-creation, run it in the upgrade pipeline" identity-not-found ;;
    esac
  fi

  # 1.4: the app registration.
  find_app "<appId of $APP_DISPLAY_NAME>"$'\t'"$APP_DISPLAY_NAME"
  local audience="" shown=""
  if [[ -n "$APP_CLIENT_ID" ]]; then
    lookup shown "$APP_DISPLAY_NAME" az ad app show --id "$APP_CLIENT_ID" --query displayName --output tsv
  fi
  if [[ -z "$APP_CLIENT_ID" || -z "$shown" ]]; then
    report missing 1.4 "app registration ${APP_CLIENT_ID:-named $APP_DISPLAY_NAME}" "setup.sh tenant-a" entra-app-not-in-tenant
  else
    lookup audience "AzureADMultipleOrgs" az ad app show --id "$APP_CLIENT_ID" --query signInAudience --output tsv
    if [[ "$audience" == AzureADMultipleOrgs ]]; then
      report ok 1.4 "app registration $APP_CLIENT_ID ($shown), multi-tenant"
    else
      report drifted 1.4 "app $APP_CLIENT_ID signs in '$audience', not AzureADMultipleOrgs" "setup.sh tenant-a" entra-app-not-in-tenant
    fi

    # 1.5: its federated credential.
    local fic
    lookup fic "$MI_PRINCIPAL_ID|$FIC_ISSUER|$FIC_AUDIENCE" az ad app federated-credential show --id "$APP_CLIENT_ID" \
      --federated-credential-id "$FIC_NAME" --query "join('|', [subject, issuer, join(',', audiences)])" --output tsv
    if [[ -z "$fic" ]]; then
      report missing 1.5 "federated credential $FIC_NAME of app $APP_CLIENT_ID" "setup.sh tenant-a" entra-fic-missing
    elif [[ "$fic" != "$MI_PRINCIPAL_ID|$FIC_ISSUER|$FIC_AUDIENCE" ]]; then
      report drifted 1.5 "federated credential $FIC_NAME is '$fic', expected '$MI_PRINCIPAL_ID|$FIC_ISSUER|$FIC_AUDIENCE' (subject|issuer|audience)" \
        "setup.sh tenant-a (updates it)" entra-fic-mismatch
    else
      report ok 1.5 "federated credential $FIC_NAME: subject $MI_PRINCIPAL_ID, issuer $FIC_ISSUER, audience $FIC_AUDIENCE"
    fi
  fi

  # 1.6: same-tenant roles.
  if [[ -n "$KEYVAULT_A_ID" ]]; then
    check_secret_read 1.6 "$KEYVAULT_A_NAME" "$KEYVAULT_A_RESOURCE_GROUP" "$KEYVAULT_A_ID" "$MI_PRINCIPAL_ID" \
      "${KEYVAULT_A_SECRETS:-}" "the identity" "setup.sh tenant-a"
  fi
  if [[ -n "$STORAGE_A_ID" ]]; then
    check_role 1.6 "$MI_PRINCIPAL_ID" "Storage Blob Data Reader" "$(blob_scope "$STORAGE_A_ID" "${STORAGE_A_CONTAINER:-}")" \
      "the identity" "setup.sh tenant-a" storage-forbidden-rbac
  fi

  # 1.7 and 3: each private endpoint, its DNS zone group, the zone's link and record.
  local dns_servers t sel=()
  mapfile -t sel < <(selected_targets)
  lookup dns_servers "" az network vnet show --resource-group "$VNET_RESOURCE_GROUP" --name "$VNET_NAME" \
    --query "dhcpOptions.dnsServers" --output tsv
  if [[ -n "$dns_servers" ]]; then
    note "VNet $VNET_NAME uses custom DNS servers (${dns_servers//$'\n'/ }): they must forward privatelink.* to Azure DNS (168.63.129.16), or hold these records themselves"
  fi
  for t in "${sel[@]}"; do
    select_target "$t"
    if t_has_vault; then
      check_endpoint "$T_PE_KEYVAULT_NAME" "$VAULT_ZONE" "$T_KEYVAULT_NAME" "$T_KEYVAULT_NAME.$VAULT_SUFFIX" \
        "vault $T_KEYVAULT_NAME ($T_LABEL)" keyvault-network
    fi
    if t_has_blob; then
      check_endpoint "$T_PE_BLOB_NAME" "$BLOB_ZONE" "$T_STORAGE_NAME" "$T_STORAGE_NAME.$BLOB_SUFFIX" \
        "account $T_STORAGE_NAME ($T_LABEL)" storage-network
    fi
  done

  # 6: the settings document against these objects.
  if is_dry_run; then
    note "then: the settings document $SETTINGS_FILE compared with the values found (cloud, azure_client_id, app_client_id, each profile's tenant and endpoints)"
  else
    check_settings "$client_id"
  fi

  # 2.x: each target tenant.
  for t in "${sel[@]}"; do
    check_target "$t"
  done

  heading "check: $((LINKS - BROKEN)) of $LINKS links ok"
  if ((BROKEN > 0)); then
    note "$BROKEN broken: fix them in the order shown (docs/deploy.md, Troubleshooting, has each code)"
    return 1
  fi
}

# check_settings CLIENT_ID: the settings document (what the SpinApp's `settings` variable
# holds) against the Azure objects.
check_settings() {
  local client_id="$1" t sel=()
  mapfile -t sel < <(selected_targets)
  if [[ ! -f "$SETTINGS_FILE" ]]; then
    report missing 6 "the settings document $SETTINGS_FILE (no such file)" \
      "setup.sh outputs, merged into deploy/settings.json (docs/deploy.md, step 6)" configuration-missing
    return 0
  fi
  if ! read_settings "$SETTINGS_FILE"; then
    report drifted 6 "$SETTINGS_FILE: $SETTINGS_ERROR (the component refuses the whole document)" \
      "correct it: one JSON object of settings (docs/deploy.md, step 6)" configuration-invalid
    return 0
  fi
  check_setting cloud "$CLOUD" "the configured cloud" configuration-invalid
  check_setting azure_client_id "${client_id:-<clientId of $IDENTITY_NAME>}" "the identity's client id" identity-not-found
  check_setting app_client_id "${APP_CLIENT_ID:-<appId of $APP_DISPLAY_NAME>}" "the app registration's id" entra-app-not-in-tenant
  for t in "${sel[@]}"; do
    select_target "$t"
    check_setting "$(slot_var "$T_SLOT" tenant_id)" "$T_TENANT_ID" "$T_LABEL's directory id" entra-tenant-not-found
    if t_has_vault; then
      check_setting "$(slot_var "$T_SLOT" keyvault_endpoint)" "https://$T_KEYVAULT_NAME.$VAULT_SUFFIX" "$T_LABEL's vault" keyvault-tenant-mismatch
    fi
    if t_has_blob; then
      check_setting "$(slot_var "$T_SLOT" blob_service_endpoint)" "https://$T_STORAGE_NAME.$BLOB_SUFFIX" "$T_LABEL's account" storage-token-refused
    fi
  done
}

# check_endpoint PE ZONE RECORD FQDN WHAT CODE
check_endpoint() {
  local pe="$1" zone="$2" name="$3" fqdn="$4" what="$5" code="$6" status groups zone_id links ips records ip
  lookup status "Approved" az network private-endpoint show --resource-group "$RESOURCE_GROUP_A" --name "$pe" \
    --query "manualPrivateLinkServiceConnections[0].privateLinkServiceConnectionState.status" --output tsv
  if [[ -z "$status" ]]; then
    report missing 1.7 "private endpoint $pe to $what" "setup.sh tenant-a" upstream-unreachable
    return 0
  fi
  report ok 1.7 "private endpoint $pe to $what"
  case "$status" in
    Approved) report ok 2.3 "connection of $pe is Approved" ;;
    Pending) report missing 2.3 "approval of $pe's connection (Pending)" "setup.sh --target $T tenant-b, in $T_LABEL" "$code" ;;
    *) report drifted 2.3 "connection of $pe is $status" "delete $pe, run setup.sh tenant-a, then setup.sh --target $T tenant-b" "$code" ;;
  esac
  zone_id="$(zone_id_of "$zone")"
  zone_groups groups "$pe" "default"$'\t'"$zone_id"
  if [[ -z "$groups" ]]; then
    report missing 3 "DNS zone group of $pe ($fqdn resolves to its public address)" "setup.sh tenant-a-dns" "$code"
  elif ! grep -qiF "/privateDnsZones/$zone" <<<"$groups"; then
    report drifted 3 "DNS zone group '${groups%%$'\t'*}' of $pe writes into ${groups#*$'\t'}, not a $zone zone" \
      "point it at a $zone zone linked to $VNET_NAME" "$code"
  else
    report ok 3 "DNS zone group '${groups%%$'\t'*}' of $pe"
  fi
  lookup links "$VNET_ID" az network private-dns link vnet list "${ZONE_ARGS[@]}" --resource-group "$DNS_RESOURCE_GROUP" \
    --zone-name "$zone" --query "[].virtualNetwork.id" --output tsv
  if grep -qixF "$VNET_ID" <<<"$links"; then
    report ok 3 "$zone is linked to $VNET_NAME"
  else
    report missing 3 "link of $zone to $VNET_NAME" "setup.sh tenant-a-dns" upstream-dns
  fi
  # What a pod in the VNet resolves: the zone's A record, which must be the endpoint's IP.
  lookup ips "10.0.0.4" az network private-endpoint show --resource-group "$RESOURCE_GROUP_A" --name "$pe" \
    --query "customDnsConfigs[].ipAddresses[]" --output tsv
  lookup records "10.0.0.4" az network private-dns record-set a show "${ZONE_ARGS[@]}" --resource-group "$DNS_RESOURCE_GROUP" \
    --zone-name "$zone" --name "$name" --query "aRecords[].ipv4Address" --output tsv
  ip="${records%%$'\n'*}"
  if [[ -z "$records" ]]; then
    report missing 3 "A record $name in $zone" "setup.sh tenant-a-dns (the DNS zone group writes it)" "$code"
  elif ! is_private_ip "$ip"; then
    report drifted 3 "$fqdn resolves to $ip, not a private address" "setup.sh tenant-a-dns" "$code"
  elif [[ -n "$ips" ]] && ! grep -qxF "$ip" <<<"$ips"; then
    report drifted 3 "$name in $zone is $ip, but $pe has ${ips//$'\n'/ } (a stale record of an older endpoint)" \
      "delete the record and the DNS zone group, then setup.sh tenant-a-dns" "$code"
  else
    report ok 3 "$fqdn resolves to $ip (the record of $pe in $zone, linked to $VNET_NAME)"
  fi
}

# check_role STEP PRINCIPAL ROLE SCOPE WHO FIX CODE
check_role() {
  local step="$1" principal="$2" role="$3" scope="$4" who="$5" fix="$6" code="$7" existing
  lookup existing "<id of the assignment>" az role assignment list --scope "$scope" --role "$role" \
    --query "[?principalId=='$principal'].id | [0]" --output tsv
  if [[ -n "$existing" ]]; then
    report ok "$step" "'$role' for $who on $scope"
  else
    report missing "$step" "'$role' for $who on $scope" "$fix" "$code"
  fi
}

# check_secret_read STEP VAULT RESOURCE_GROUP VAULT_ID PRINCIPAL SECRETS WHO FIX
check_secret_read() {
  local step="$1" name="$2" group="$3" id="$4" principal="$5" secrets="$6" who="$7" fix="$8" secret
  if vault_uses_rbac "$name" "$group"; then
    if [[ -n "$secrets" ]]; then
      for secret in ${secrets//,/ }; do
        check_role "$step" "$principal" "Key Vault Secrets User" "$id/secrets/$secret" "$who" "$fix" keyvault-forbidden-rbac
      done
    else
      check_role "$step" "$principal" "Key Vault Secrets User" "$id" "$who" "$fix" keyvault-forbidden-rbac
    fi
  elif [[ " $(secret_permissions "$name" "$group" "$principal" "get") " == *" get "* ]]; then
    report ok "$step" "access policy of $who on $name has 'get' on secrets"
  else
    report missing "$step" "'get' on secrets for $who in the access policies of $name" "$fix" keyvault-forbidden-policy
  fi
}

check_target() {
  select_target "$1"
  heading "check, $T_LABEL ($T_TENANT_ID, profile '$T_PROFILE')"
  use_tenant "$T_LABEL" "$T_TENANT_ID" "$T_SUBSCRIPTION_ID"
  local sp
  if [[ -z "$APP_CLIENT_ID" ]]; then
    report missing 2.1 "service principal of the app in $T_LABEL (no app registration yet)" "setup.sh tenant-a first" entra-app-not-in-tenant
    return 0
  fi
  sp_of sp "<object id of the service principal of the app in $T_LABEL>"
  if [[ -z "$sp" ]]; then
    report missing 2.1 "service principal of app $APP_CLIENT_ID in $T_LABEL (no consent)" \
      "setup.sh --target $T tenant-b, or admin consent at $AUTHORITY/$T_TENANT_ID/adminconsent?client_id=$APP_CLIENT_ID" entra-app-not-in-tenant
    return 0
  fi
  report ok 2.1 "service principal $sp of app $APP_CLIENT_ID in $T_LABEL"
  if t_has_vault; then
    check_secret_read 2.2 "$T_KEYVAULT_NAME" "$T_KEYVAULT_RESOURCE_GROUP" "$T_KEYVAULT_ID" "$sp" "$T_KEYVAULT_SECRETS" \
      "the app's service principal" "setup.sh --target $T tenant-b"
    check_connection "$T_KEYVAULT_ID" "$T_PE_KEYVAULT_ID" "$T_PE_KEYVAULT_NAME" keyvault-network
  fi
  if t_has_blob; then
    check_role 2.2 "$sp" "Storage Blob Data Reader" "$(blob_scope "$T_STORAGE_ID" "$T_STORAGE_CONTAINER")" \
      "the app's service principal" "setup.sh --target $T tenant-b" storage-forbidden-rbac
    check_connection "$T_STORAGE_ID" "$T_PE_BLOB_ID" "$T_PE_BLOB_NAME" storage-network
  fi
  if t_has_registry; then
    check_role 2.2 "$sp" "$T_REGISTRY_ROLE" "$T_REGISTRY_ID" "the app's service principal" \
      "setup.sh --target $T tenant-b" registry-exchange-refused
  fi
}

# check_connection TARGET_ID PE_ID PE_NAME CODE: the connection as the target resource sees it.
check_connection() {
  local conn status
  find_connection conn status "$1" "$2" "$3"
  case "$status" in
    Approved) report ok 2.3 "$T_LABEL's resource has $3's connection Approved" ;;
    Pending) report missing 2.3 "approval of $3's connection on $T_LABEL's resource" "setup.sh --target $T tenant-b" "$4" ;;
    "") report missing 2.3 "no connection from $3 on $T_LABEL's resource" "setup.sh tenant-a, then setup.sh --target $T tenant-b" "$4" ;;
    *) report drifted 2.3 "$3's connection is $status on $T_LABEL's resource" "delete $3, run setup.sh tenant-a and setup.sh --target $T tenant-b" "$4" ;;
  esac
}

# ---- teardown ------------------------------------------------------------------------------

teardown_tenant_b() {
  check_common_config
  require_guid APP_CLIENT_ID
  local t sel=()
  mapfile -t sel < <(selected_targets)
  for t in "${sel[@]}"; do
    teardown_target_tenant "$t"
  done
}

teardown_target_tenant() {
  select_target "$1"
  heading "teardown, $T_LABEL ($T_TENANT_ID): sign in"
  use_tenant "$T_LABEL" "$T_TENANT_ID" "$T_SUBSCRIPTION_ID"

  heading "teardown, $T_LABEL 1/3: tenant A's private endpoint connections"
  local conn status
  if t_has_vault; then
    find_connection conn status "$T_KEYVAULT_ID" "$T_PE_KEYVAULT_ID" "$T_PE_KEYVAULT_NAME"
    if [[ -n "$conn" ]]; then run az network private-endpoint-connection delete --id "$conn" --yes; fi
  fi
  if t_has_blob; then
    find_connection conn status "$T_STORAGE_ID" "$T_PE_BLOB_ID" "$T_PE_BLOB_NAME"
    if [[ -n "$conn" ]]; then run az network private-endpoint-connection delete --id "$conn" --yes; fi
  fi

  heading "teardown, $T_LABEL 2/3: role assignments of the app's service principal"
  local sp
  sp_of sp "<object id of the service principal of the app in $T_LABEL>"
  if [[ -z "$sp" ]]; then
    note "app $APP_CLIENT_ID has no service principal in $T_LABEL: nothing to remove"
    return 0
  fi
  if t_has_vault; then
    revoke_secret_read "$T_KEYVAULT_NAME" "$T_KEYVAULT_RESOURCE_GROUP" "$T_KEYVAULT_ID" "$sp" "$T_KEYVAULT_SECRETS"
  fi
  if t_has_blob; then
    revoke_role "$sp" "Storage Blob Data Reader" "$(blob_scope "$T_STORAGE_ID" "$T_STORAGE_CONTAINER")"
  fi
  if t_has_registry; then
    revoke_role "$sp" "$T_REGISTRY_ROLE" "$T_REGISTRY_ID"
  fi

  heading "teardown, $T_LABEL 3/3: the app's service principal"
  run az ad sp delete --id "$APP_CLIENT_ID"
}

# remove_private_endpoint NAME
remove_private_endpoint() {
  if present az network private-endpoint show --resource-group "$RESOURCE_GROUP_A" --name "$1" --query id --output tsv; then
    run az network private-endpoint delete --resource-group "$RESOURCE_GROUP_A" --name "$1"
  fi
}

# unlink_zone ZONE: the VNet link this set-up made, unless others rely on it. A link is ours when
# it has our name and tag; it is relied on while the zone holds records (of other private
# endpoints: ours went with their endpoints, which teardown deletes first).
unlink_zone() {
  local zone="$1" tag records
  if ! present az network private-dns link vnet show "${ZONE_ARGS[@]}" --resource-group "$DNS_RESOURCE_GROUP" --zone-name "$zone" \
    --name "$VNET_LINK_NAME" --query id --output tsv; then
    note "no link $VNET_LINK_NAME on $zone"
    return 0
  fi
  lookup tag "tenant-bridge" az network private-dns link vnet show "${ZONE_ARGS[@]}" --resource-group "$DNS_RESOURCE_GROUP" \
    --zone-name "$zone" --name "$VNET_LINK_NAME" --query "tags.\"created-by\"" --output tsv
  if [[ "$tag" != tenant-bridge ]]; then
    note "link $VNET_LINK_NAME on $zone was not made by this set-up (no created-by=tenant-bridge tag): kept"
    return 0
  fi
  lookup records "" az network private-dns record-set a list "${ZONE_ARGS[@]}" --resource-group "$DNS_RESOURCE_GROUP" \
    --zone-name "$zone" --query "[].name" --output tsv
  if [[ -n "$records" ]]; then
    note "link $VNET_LINK_NAME on $zone kept: the zone still holds records others resolve through it (${records//$'\n'/ })"
    return 0
  fi
  run az network private-dns link vnet delete "${ZONE_ARGS[@]}" --resource-group "$DNS_RESOURCE_GROUP" --zone-name "$zone" \
    --name "$VNET_LINK_NAME" --yes
  if [[ "$DELETE_DNS_ZONES" == true ]]; then
    if present az network private-dns zone show "${ZONE_ARGS[@]}" --resource-group "$DNS_RESOURCE_GROUP" --name "$zone" --query id --output tsv; then
      run az network private-dns zone delete "${ZONE_ARGS[@]}" --resource-group "$DNS_RESOURCE_GROUP" --name "$zone" --yes
    fi
  else
    note "zone $zone kept (DELETE_DNS_ZONES=true removes it when nothing else uses it)"
  fi
}

teardown_tenant_a() {
  check_tenant_a_config
  heading "teardown, tenant A ($TENANT_A_ID): sign in"
  use_tenant "tenant A" "$TENANT_A_ID" "$SUBSCRIPTION_A_ID"
  set_zone_args

  heading "teardown, tenant A 1/5: private endpoints (their DNS zone groups and records go with them)"
  local t
  for t in "${TARGETS[@]}"; do
    select_target "$t"
    if t_has_vault; then remove_private_endpoint "$T_PE_KEYVAULT_NAME"; fi
    if t_has_blob; then remove_private_endpoint "$T_PE_BLOB_NAME"; fi
  done

  heading "teardown, tenant A 2/5: VNet links of the private DNS zones (only those this set-up made and nothing else needs)"
  if any_target_has vault; then unlink_zone "$VAULT_ZONE"; fi
  if any_target_has blob; then unlink_zone "$BLOB_ZONE"; fi

  heading "teardown, tenant A 3/5: app registration (its federated credential goes with it)"
  find_app "<appId of $APP_DISPLAY_NAME>"$'\t'"$APP_DISPLAY_NAME"
  if [[ -n "$APP_CLIENT_ID" ]]; then
    note "app registration $APP_CLIENT_ID (${APP_ID_SOURCE:-found by its exact name})"
    run az ad app delete --id "$APP_CLIENT_ID"
    forget_app
  else
    note "no app registration named exactly $APP_DISPLAY_NAME"
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
    local vmss ids
    node_pool_vmss vmss
    if [[ -n "$vmss" ]]; then
      lookup ids "$MI_ID" az vmss identity show --resource-group "$NODE_RESOURCE_GROUP" --name "$vmss" \
        --query "keys(userAssignedIdentities)" --output tsv
      if grep -qixF "$MI_ID" <<<"$ids"; then
        run az vmss identity remove --resource-group "$NODE_RESOURCE_GROUP" --name "$vmss" --identities "$MI_ID"
      fi
    fi
    note "the pool's labels ($POOL_LABELS) are kept: 'az aks nodepool update --labels' without them removes them"
  fi
  if present az identity show --resource-group "$RESOURCE_GROUP_A" --name "$IDENTITY_NAME" --query id --output tsv; then
    run az identity delete --resource-group "$RESOURCE_GROUP_A" --name "$IDENTITY_NAME"
  fi
  note "resource group $RESOURCE_GROUP_A is kept (it may hold other resources): 'az group delete --name $RESOURCE_GROUP_A' removes it"
}

# teardown_target: one target tenant out of the hub: its side, then tenant A's endpoints to it.
teardown_target() {
  check_tenant_a_config
  ((${#ONLY_TARGETS[@]} > 0)) || die "teardown-target needs --target X (one of ${TARGETS[*]})"
  find_app_in_tenant_a
  teardown_tenant_b
  heading "teardown-target, tenant A ($TENANT_A_ID): the private endpoints to ${ONLY_TARGETS[*]}"
  use_tenant "tenant A" "$TENANT_A_ID" "$SUBSCRIPTION_A_ID"
  local t
  for t in "${ONLY_TARGETS[@]}"; do
    select_target "$t"
    if t_has_vault; then remove_private_endpoint "$T_PE_KEYVAULT_NAME"; fi
    if t_has_blob; then remove_private_endpoint "$T_PE_BLOB_NAME"; fi
  done
  note "the VNet links stay (the other targets' endpoints use the zones); remove the target's members from deploy/settings.json, and it from TARGET_TENANTS"
}

# The target tenants find the app's service principal by the app id, which lives in tenant A.
find_app_in_tenant_a() {
  [[ -z "$APP_CLIENT_ID" ]] || return 0
  heading "teardown: find the app registration in tenant A ($TENANT_A_ID)"
  check_tenant_a_config
  use_tenant "tenant A" "$TENANT_A_ID" "$SUBSCRIPTION_A_ID"
  find_app "<appId of $APP_DISPLAY_NAME>"$'\t'"$APP_DISPLAY_NAME"
  [[ -n "$APP_CLIENT_ID" ]] || die "no app registration named exactly $APP_DISPLAY_NAME in tenant A: set APP_CLIENT_ID"
}

# ---- main ----------------------------------------------------------------------------------

main() {
  local config="${TB_CONFIG:-$HERE/config.env}" command="" yes=0 t
  local targets=()
  while (($# > 0)); do
    case "$1" in
      --dry-run) DRY_RUN=1 ;;
      --config)
        (($# > 1)) || die "--config needs a file"
        config="$2"
        shift
        ;;
      --config=*) config="${1#--config=}" ;;
      --target)
        (($# > 1)) || die "--target needs a target name"
        targets+=("$2")
        shift
        ;;
      --target=*) targets+=("${1#--target=}") ;;
      --settings)
        (($# > 1)) || die "--settings needs a file"
        SETTINGS_FILE="$2"
        shift
        ;;
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
  local given
  for given in "${targets[@]}"; do
    for t in ${given//,/ }; do ONLY_TARGETS+=("${t^^}"); done
  done

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
    check) check_chain ;;
    all)
      tenant_a
      tenant_b
      tenant_a_dns
      outputs
      ;;
    teardown-tenant-a) teardown_tenant_a ;;
    teardown-tenant-b) teardown_tenant_b ;;
    teardown)
      ((${#ONLY_TARGETS[@]} == 0)) || die "teardown removes everything; for one target tenant use teardown-target --target X"
      find_app_in_tenant_a
      teardown_tenant_b
      teardown_tenant_a
      ;;
    teardown-target) teardown_target ;;
    *) die "unknown command '$command' (see --help)" ;;
  esac
}

main "$@"
