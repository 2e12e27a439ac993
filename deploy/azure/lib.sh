# shellcheck shell=bash source-path=SCRIPTDIR
# shellcheck disable=SC2034 # the names set here are read by setup.sh
# Shared by setup.sh: the dry-run runner, configuration loading, tenant switching and the names
# every step derives from the configuration. Sourced, never run.
#
# Output conventions (stdout, the same in a dry run and a real one):
#   # ...       a step heading or a note
#   + az ...    a command that changes something; a dry run prints it instead of running it
#   ? az ...    a read-only check or lookup; a real run prints it only with VERBOSE=1, a dry run
#               always prints it and does not run it (it assumes "absent", so the dry run shows
#               the complete first-run sequence, with <placeholders> for looked-up values)
# Errors go to stderr. No command here handles a secret: federation means there is none.

DRY_RUN="${DRY_RUN:-0}"
VERBOSE="${VERBOSE:-0}"
CLOUD_SELECTED=0

die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

note() { printf '# %s\n' "$*"; }

heading() {
  printf '\n# ==== %s\n' "$*"
}

# Prints its arguments as one shell-quoted command line.
quote_cmd() {
  local out="" arg
  for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
      out+="$arg "
    elif [[ "$arg" == *"'"* && "$arg" != *[\"\$\`\\!]* ]]; then
      out+="\"$arg\" "
    else
      out+="'${arg//\'/\'\\\'\'}' "
    fi
  done
  printf '%s\n' "${out% }"
}

is_dry_run() { [[ "$DRY_RUN" == 1 ]]; }

# run CMD...: a change. Printed with "+", run unless this is a dry run. Its normal output is
# dropped (ids are looked up afterwards); its errors stop the script.
run() {
  printf '+ %s' "$(quote_cmd "$@")"
  printf '\n'
  is_dry_run && return 0
  "$@" >/dev/null || die "command failed: $(quote_cmd "$@")"
}

# run_retry CMD...: a change that Azure may refuse for a minute after the previous step (a new
# principal not yet replicated to Azure RBAC). Retried 6 times, 20 s apart.
run_retry() {
  printf '+ %s\n' "$(quote_cmd "$@")"
  is_dry_run && return 0
  local attempt
  for attempt in 1 2 3 4 5 6; do
    if "$@" >/dev/null; then
      return 0
    fi
    [[ "$attempt" == 6 ]] && break
    note "not yet accepted (new principals take a minute to replicate); retrying in 20 s"
    sleep 20
  done
  die "command failed: $(quote_cmd "$@")"
}

# exists CMD...: a read-only check; true when CMD succeeds and prints something. A dry run
# prints it and answers "absent".
exists() {
  if is_dry_run || [[ "$VERBOSE" == 1 ]]; then
    printf '? %s\n' "$(quote_cmd "$@")"
  fi
  is_dry_run && return 1
  local out
  out="$("$@" 2>/dev/null)" || return 1
  [[ -n "$out" ]]
}

# lookup VAR PLACEHOLDER CMD...: sets VAR to CMD's trimmed output (empty when CMD fails). A dry
# run prints CMD and sets VAR to PLACEHOLDER instead.
lookup() {
  local __var="$1" __placeholder="$2"
  shift 2
  if is_dry_run || [[ "$VERBOSE" == 1 ]]; then
    printf '? %s\n' "$(quote_cmd "$@")"
  fi
  local __out=""
  if is_dry_run; then
    __out="$__placeholder"
  else
    __out="$("$@" 2>/dev/null)" || __out=""
    __out="${__out//$'\r'/}"
    __out="${__out%$'\n'}"
  fi
  printf -v "$__var" '%s' "$__out"
}

lower() { printf '%s' "${1,,}"; }

# ---- configuration ---------------------------------------------------------------------------

GUID_RE='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'

load_config() {
  local file="$1"
  [[ -f "$file" ]] || die "no configuration file $file: copy deploy/azure/config.env.example to it and fill it in"
  # shellcheck source=config.env.example
  source "$file"

  CLOUD="${CLOUD:-public}"
  AKS_NODEPOOL="${AKS_NODEPOOL:-tbridge}"
  AKS_NODEPOOL_CREATE="${AKS_NODEPOOL_CREATE:-true}"
  AKS_NODEPOOL_VM_SIZE="${AKS_NODEPOOL_VM_SIZE:-Standard_D2s_v5}"
  AKS_NODEPOOL_COUNT="${AKS_NODEPOOL_COUNT:-2}"
  NODE_TAINT="${NODE_TAINT:-tenant-bridge.io/identity=true:NoSchedule}"
  NODE_LABEL="${NODE_LABEL:-tenant-bridge.io/identity=true}"
  IDENTITY_NAME="${IDENTITY_NAME:-id-tenant-bridge}"
  APP_DISPLAY_NAME="${APP_DISPLAY_NAME:-tenant-bridge-cross-tenant}"
  FIC_NAME="${FIC_NAME:-tenant-bridge-node-pool-identity}"
  PE_KEYVAULT_NAME="${PE_KEYVAULT_NAME:-pe-tenant-bridge-vault-b}"
  PE_BLOB_NAME="${PE_BLOB_NAME:-pe-tenant-bridge-blob-b}"
  DNS_RESOURCE_GROUP="${DNS_RESOURCE_GROUP:-${RESOURCE_GROUP_A:-}}"
  VNET_LINK_NAME="${VNET_LINK_NAME:-${VNET_NAME:-vnet}-tenant-bridge}"
  APP_CLIENT_ID="${APP_CLIENT_ID:-}"
  DELETE_DNS_ZONES="${DELETE_DNS_ZONES:-false}"

  case "$CLOUD" in
    public)
      AZ_CLOUD=AzureCloud
      AUTHORITY=https://login.microsoftonline.com
      FIC_AUDIENCE_DEFAULT=api://AzureADTokenExchange
      VAULT_SUFFIX=vault.azure.net
      BLOB_SUFFIX=blob.core.windows.net
      VAULT_ZONE=privatelink.vaultcore.azure.net
      BLOB_ZONE=privatelink.blob.core.windows.net
      ;;
    usgov)
      AZ_CLOUD=AzureUSGovernment
      AUTHORITY=https://login.microsoftonline.us
      FIC_AUDIENCE_DEFAULT=api://AzureADTokenExchangeUSGov
      VAULT_SUFFIX=vault.usgovcloudapi.net
      BLOB_SUFFIX=blob.core.usgovcloudapi.net
      VAULT_ZONE=privatelink.vaultcore.usgovcloudapi.net
      BLOB_ZONE=privatelink.blob.core.usgovcloudapi.net
      ;;
    china)
      AZ_CLOUD=AzureChinaCloud
      AUTHORITY=https://login.chinacloudapi.cn
      FIC_AUDIENCE_DEFAULT=api://AzureADTokenExchangeChina
      VAULT_SUFFIX=vault.azure.cn
      BLOB_SUFFIX=blob.core.chinacloudapi.cn
      VAULT_ZONE=privatelink.vaultcore.azure.cn
      BLOB_ZONE=privatelink.blob.core.chinacloudapi.cn
      ;;
    *) die "CLOUD must be public, usgov or china, not '$CLOUD'" ;;
  esac
  FIC_ISSUER="${FIC_ISSUER:-$AUTHORITY/${TENANT_A_ID:-}/v2.0}"
  FIC_AUDIENCE="${FIC_AUDIENCE:-$FIC_AUDIENCE_DEFAULT}"

  # Resource ids, built from the configuration: tenant A cannot read tenant B's resources, and
  # tenant B identifies tenant A's private endpoints by these ids.
  MI_ID="/subscriptions/${SUBSCRIPTION_A_ID:-}/resourceGroups/${RESOURCE_GROUP_A:-}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/$IDENTITY_NAME"
  VNET_ID="/subscriptions/${SUBSCRIPTION_A_ID:-}/resourceGroups/${VNET_RESOURCE_GROUP:-}/providers/Microsoft.Network/virtualNetworks/${VNET_NAME:-}"
  SUBNET_ID="$VNET_ID/subnets/${PE_SUBNET_NAME:-}"
  PE_KEYVAULT_ID="/subscriptions/${SUBSCRIPTION_A_ID:-}/resourceGroups/${RESOURCE_GROUP_A:-}/providers/Microsoft.Network/privateEndpoints/$PE_KEYVAULT_NAME"
  PE_BLOB_ID="/subscriptions/${SUBSCRIPTION_A_ID:-}/resourceGroups/${RESOURCE_GROUP_A:-}/providers/Microsoft.Network/privateEndpoints/$PE_BLOB_NAME"
  KEYVAULT_B_ID=""
  if [[ -n "${KEYVAULT_B_NAME:-}" ]]; then
    KEYVAULT_B_ID="/subscriptions/${SUBSCRIPTION_B_ID:-}/resourceGroups/${KEYVAULT_B_RESOURCE_GROUP:-}/providers/Microsoft.KeyVault/vaults/$KEYVAULT_B_NAME"
  fi
  STORAGE_B_ID=""
  if [[ -n "${STORAGE_B_NAME:-}" ]]; then
    STORAGE_B_ID="/subscriptions/${SUBSCRIPTION_B_ID:-}/resourceGroups/${STORAGE_B_RESOURCE_GROUP:-}/providers/Microsoft.Storage/storageAccounts/$STORAGE_B_NAME"
  fi
  KEYVAULT_A_ID=""
  if [[ -n "${KEYVAULT_A_NAME:-}" ]]; then
    KEYVAULT_A_ID="/subscriptions/${SUBSCRIPTION_A_ID:-}/resourceGroups/${KEYVAULT_A_RESOURCE_GROUP:-}/providers/Microsoft.KeyVault/vaults/$KEYVAULT_A_NAME"
  fi
  STORAGE_A_ID=""
  if [[ -n "${STORAGE_A_NAME:-}" ]]; then
    STORAGE_A_ID="/subscriptions/${SUBSCRIPTION_A_ID:-}/resourceGroups/${STORAGE_A_RESOURCE_GROUP:-}/providers/Microsoft.Storage/storageAccounts/$STORAGE_A_NAME"
  fi
}

# require NAME...: every named setting is non-empty.
require() {
  local name missing=()
  for name in "$@"; do
    [[ -n "${!name:-}" ]] || missing+=("$name")
  done
  ((${#missing[@]} == 0)) || die "set ${missing[*]} in the configuration file"
}

# require_guid NAME...: every named setting is a GUID (directory, subscription, client ids).
require_guid() {
  local name
  require "$@"
  for name in "$@"; do
    # A dry run carries <placeholders> for ids an earlier step would have looked up.
    if is_dry_run && [[ "${!name}" == "<"*">" ]]; then continue; fi
    [[ "${!name}" =~ $GUID_RE ]] || die "$name must be a GUID, not '${!name}'"
  done
}

require_bool() {
  local name
  for name in "$@"; do
    [[ "${!name}" == true || "${!name}" == false ]] || die "$name must be true or false, not '${!name}'"
  done
}

# ---- signing in ----------------------------------------------------------------------------

# use_tenant LABEL TENANT_ID SUBSCRIPTION_ID: make TENANT_ID's subscription the current one,
# signing in to that tenant first when the Azure CLI has no session there (interactive only).
use_tenant() {
  local label="$1" tenant="$2" subscription="$3" current_cloud current_tenant
  if [[ "$CLOUD_SELECTED" != 1 ]]; then
    lookup current_cloud "<current cloud>" az cloud show --query name --output tsv
    if [[ "$current_cloud" != "$AZ_CLOUD" ]]; then
      run az cloud set --name "$AZ_CLOUD"
    fi
    CLOUD_SELECTED=1
  fi
  lookup current_tenant "<tenant of subscription $subscription>" \
    az account show --subscription "$subscription" --query tenantId --output tsv
  if [[ "$(lower "$current_tenant")" != "$(lower "$tenant")" ]]; then
    if is_dry_run; then
      note "only when the Azure CLI has no session in $label yet:"
    elif [[ -n "$current_tenant" ]]; then
      die "subscription $subscription belongs to tenant $current_tenant, not to $label ($tenant): check the configuration"
    elif [[ ! -t 0 ]]; then
      die "the Azure CLI is not signed in to $label ($tenant): run 'az login --tenant $tenant' first"
    fi
    run az login --tenant "$tenant"
  fi
  run az account set --subscription "$subscription"
  if ! is_dry_run; then
    lookup current_tenant "" az account show --query tenantId --output tsv
    [[ "$(lower "$current_tenant")" == "$(lower "$tenant")" ]] ||
      die "subscription $subscription is not in $label ($tenant) but in '$current_tenant': check the configuration"
  fi
}
