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
  CONFIG_FILE="$file"
  # What the set-up learns and must not guess again (the app registration's id).
  STATE_FILE="$file.state"

  CLOUD="${CLOUD:-public}"
  AKS_NODEPOOL="${AKS_NODEPOOL:-tbridge}"
  AKS_NODEPOOL_CREATE="${AKS_NODEPOOL_CREATE:-true}"
  AKS_NODEPOOL_VM_SIZE="${AKS_NODEPOOL_VM_SIZE:-Standard_D2s_v5}"
  AKS_NODEPOOL_COUNT="${AKS_NODEPOOL_COUNT:-2}"
  NODE_TAINT="${NODE_TAINT:-tenant-bridge.io/identity=true:NoSchedule}"
  NODE_LABEL="${NODE_LABEL:-tenant-bridge.io/identity=true}"
  SHIM_NODE_LABEL="${SHIM_NODE_LABEL:-tenant-bridge.io/shim=containerd-shim-spin-v0.24.0}"
  IDENTITY_NAME="${IDENTITY_NAME:-id-tenant-bridge}"
  APP_DISPLAY_NAME="${APP_DISPLAY_NAME:-tenant-bridge-cross-tenant}"
  FIC_NAME="${FIC_NAME:-tenant-bridge-node-pool-identity}"
  DNS_RESOURCE_GROUP="${DNS_RESOURCE_GROUP:-${RESOURCE_GROUP_A:-}}"
  DNS_SUBSCRIPTION_ID="${DNS_SUBSCRIPTION_ID:-${SUBSCRIPTION_A_ID:-}}"
  DNS_RESOLUTION_POLICY="${DNS_RESOLUTION_POLICY:-NxDomainRedirect}"
  VNET_LINK_NAME="${VNET_LINK_NAME:-${VNET_NAME:-vnet}-tenant-bridge}"
  APP_CLIENT_ID="${APP_CLIENT_ID:-}"
  APP_ID_SOURCE=""
  if [[ -n "$APP_CLIENT_ID" ]]; then
    APP_ID_SOURCE=config
  elif [[ -f "$STATE_FILE" ]]; then
    APP_CLIENT_ID="$(sed -n 's/^APP_CLIENT_ID=//p' "$STATE_FILE" | tail -n 1)"
    [[ -z "$APP_CLIENT_ID" ]] || APP_ID_SOURCE=remembered
  fi
  DELETE_DNS_ZONES="${DELETE_DNS_ZONES:-false}"
  POOL_LABELS="$NODE_LABEL $SHIM_NODE_LABEL"

  case "$CLOUD" in
    public)
      AZ_CLOUD=AzureCloud
      AUTHORITY=https://login.microsoftonline.com
      FIC_AUDIENCE_DEFAULT=api://AzureADTokenExchange
      VAULT_SUFFIX=vault.azure.net
      BLOB_SUFFIX=blob.core.windows.net
      VAULT_ZONE=privatelink.vaultcore.azure.net
      BLOB_ZONE=privatelink.blob.core.windows.net
      REGISTRY_SUFFIX=azurecr.io
      ;;
    usgov)
      AZ_CLOUD=AzureUSGovernment
      AUTHORITY=https://login.microsoftonline.us
      FIC_AUDIENCE_DEFAULT=api://AzureADTokenExchangeUSGov
      VAULT_SUFFIX=vault.usgovcloudapi.net
      BLOB_SUFFIX=blob.core.usgovcloudapi.net
      VAULT_ZONE=privatelink.vaultcore.usgovcloudapi.net
      BLOB_ZONE=privatelink.blob.core.usgovcloudapi.net
      REGISTRY_SUFFIX=azurecr.us
      ;;
    china)
      AZ_CLOUD=AzureChinaCloud
      AUTHORITY=https://login.chinacloudapi.cn
      FIC_AUDIENCE_DEFAULT=api://AzureADTokenExchangeChina
      VAULT_SUFFIX=vault.azure.cn
      BLOB_SUFFIX=blob.core.chinacloudapi.cn
      VAULT_ZONE=privatelink.vaultcore.azure.cn
      BLOB_ZONE=privatelink.blob.core.chinacloudapi.cn
      REGISTRY_SUFFIX=azurecr.cn
      ;;
    *) die "CLOUD must be public, usgov or china, not '$CLOUD'" ;;
  esac
  FIC_ISSUER="${FIC_ISSUER:-$AUTHORITY/${TENANT_A_ID:-}/v2.0}"
  FIC_AUDIENCE="${FIC_AUDIENCE:-$FIC_AUDIENCE_DEFAULT}"

  # Resource ids, built from the configuration: a target tenant cannot read tenant A's
  # resources, and identifies tenant A's private endpoints by these ids.
  MI_ID="/subscriptions/${SUBSCRIPTION_A_ID:-}/resourceGroups/${RESOURCE_GROUP_A:-}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/$IDENTITY_NAME"
  VNET_ID="/subscriptions/${SUBSCRIPTION_A_ID:-}/resourceGroups/${VNET_RESOURCE_GROUP:-}/providers/Microsoft.Network/virtualNetworks/${VNET_NAME:-}"
  SUBNET_ID="$VNET_ID/subnets/${PE_SUBNET_NAME:-}"
  KEYVAULT_A_ID=""
  if [[ -n "${KEYVAULT_A_NAME:-}" ]]; then
    KEYVAULT_A_ID="/subscriptions/${SUBSCRIPTION_A_ID:-}/resourceGroups/${KEYVAULT_A_RESOURCE_GROUP:-}/providers/Microsoft.KeyVault/vaults/$KEYVAULT_A_NAME"
  fi
  STORAGE_A_ID=""
  if [[ -n "${STORAGE_A_NAME:-}" ]]; then
    STORAGE_A_ID="/subscriptions/${SUBSCRIPTION_A_ID:-}/resourceGroups/${STORAGE_A_RESOURCE_GROUP:-}/providers/Microsoft.Storage/storageAccounts/$STORAGE_A_NAME"
  fi
  parse_targets
}

# remember_app ID: the app registration's id, kept beside the configuration so that later runs
# (and the teardown) act on this app only, never on one found by name.
remember_app() {
  is_dry_run && return 0
  [[ "$APP_ID_SOURCE" == config ]] && return 0
  if [[ "$APP_ID_SOURCE" != remembered ]] || ! grep -qxF "APP_CLIENT_ID=$1" "$STATE_FILE" 2>/dev/null; then
    printf '# Written by deploy/azure/setup.sh: the app registration this configuration created or adopted.\nAPP_CLIENT_ID=%s\n' "$1" >"$STATE_FILE"
    note "remembered app $1 in $STATE_FILE (or set APP_CLIENT_ID in the configuration)"
  fi
  APP_ID_SOURCE=remembered
}

forget_app() {
  if ! is_dry_run && [[ -f "$STATE_FILE" ]]; then
    rm -f "$STATE_FILE"
  fi
}

# ---- the settings document --------------------------------------------------------------------
#
# tenant-bridge reads every setting but the function keys from one Spin variable, `settings`, a
# JSON object whose members are named as the settings (deploy/settings.json). `outputs` writes
# members of it, `check` reads it. Plain bash, so that neither needs jq.

# json_string TEXT: TEXT as a JSON string literal.
json_string() {
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="${s//$'\t'/\\t}"
  s="${s//$'\r'/\\r}"
  s="${s//$'\n'/\\n}"
  [[ "$s" != *[[:cntrl:]]* ]] || die "a setting's value holds a control character: $(quote_cmd "$1")"
  printf '"%s"' "$s"
}

# The VALUE that json_member writes as null (the setting is unset): a control character, which
# no setting holds (json_string refuses them), so that no value, "null" included, is taken for it.
JSON_NULL=$'\x1e'

# json_member NAME VALUE: `"NAME": VALUE`, or `"NAME": null` for $JSON_NULL.
json_member() {
  printf '%s: ' "$(json_string "$1")"
  if [[ "$2" == "$JSON_NULL" ]]; then printf 'null'; else json_string "$2"; fi
}

# json_members [--line] NAME VALUE [NAME VALUE]...: a settings document of these members as a
# JSON object, one member a line (--line: all on one line).
json_members() {
  local open=$'{\n  ' sep=$',\n  ' close=$'\n}\n'
  if [[ "${1:-}" == --line ]]; then
    open="{" sep=", " close="}"
    shift
  fi
  printf '%s' "$open"
  json_member "$1" "$2"
  shift 2
  while (($# >= 2)); do
    printf '%s' "$sep"
    json_member "$1" "$2"
    shift 2
  done
  printf '%s' "$close"
}

declare -gA SETTINGS=()
SETTINGS_ERROR=""
__rest=""

__skip_space() {
  if [[ "$__rest" =~ ^[[:space:]]+ ]]; then __rest="${__rest:${#BASH_REMATCH[0]}}"; fi
}

# __json_text VAR: the JSON string at the front of __rest, unescaped, into VAR (1: none there).
__json_text() {
  local re='^"(([^"\\]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*)"' s out="" esc
  [[ "$__rest" =~ $re ]] || return 1
  __rest="${__rest:${#BASH_REMATCH[0]}}"
  s="${BASH_REMATCH[1]}"
  while [[ "$s" == *\\* ]]; do
    out+="${s%%\\*}"
    s="${s#*\\}"
    esc="${s:0:1}"
    s="${s:1}"
    case "$esc" in
      n) out+=$'\n' ;;
      t) out+=$'\t' ;;
      r) out+=$'\r' ;;
      b) out+=$'\b' ;;
      f) out+=$'\f' ;;
      u)
        printf -v esc '%b' "\\u${s:0:4}"
        s="${s:4}"
        out+="$esc"
        ;;
      *) out+="$esc" ;;
    esac
  done
  printf -v "$1" '%s' "$out$s"
}

# read_settings FILE: SETTINGS[NAME] for each member of the settings document in FILE, read as
# the component reads it (src/config/document.rs): a string as itself, a number or true/false
# as its text, a list of strings as its items joined by commas, null as absent; a blank file
# sets nothing. Returns 1, with SETTINGS_ERROR saying why, where the component refuses the whole
# document: not one JSON object, a member written twice, a nested object, a list item that is
# not a string or holds a comma.
read_settings() {
  local name value item items number='^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?'
  local -A written=()
  SETTINGS=()
  SETTINGS_ERROR=""
  __rest="$(<"$1")"
  __skip_space
  [[ -n "$__rest" ]] || return 0 # blank: no member is set
  if [[ "${__rest:0:1}" != "{" ]]; then
    SETTINGS_ERROR="it is not a JSON object"
    return 1
  fi
  __rest="${__rest:1}"
  __skip_space
  if [[ "${__rest:0:1}" == "}" ]]; then
    __rest="${__rest:1}"
  else
    while :; do
      __skip_space
      if ! __json_text name; then
        SETTINGS_ERROR="it is not valid JSON: a member name was expected"
        return 1
      fi
      __skip_space
      if [[ "${__rest:0:1}" != : ]]; then
        SETTINGS_ERROR="it is not valid JSON: ':' was expected after \"$name\""
        return 1
      fi
      __rest="${__rest:1}"
      __skip_space
      if [[ -n "${written[$name]:-}" ]]; then
        SETTINGS_ERROR="'$name' is written twice"
        return 1
      fi
      written[$name]=1
      if __json_text value; then
        SETTINGS[$name]="$value"
      elif [[ "$__rest" =~ ^(true|false)|$number ]]; then
        SETTINGS[$name]="${BASH_REMATCH[0]}"
        __rest="${__rest:${#BASH_REMATCH[0]}}"
      elif [[ "${__rest:0:4}" == null ]]; then
        __rest="${__rest:4}"
      elif [[ "${__rest:0:1}" == "[" ]]; then
        __rest="${__rest:1}"
        items=()
        __skip_space
        if [[ "${__rest:0:1}" != "]" ]]; then
          while :; do
            __skip_space
            if ! __json_text item; then
              SETTINGS_ERROR="setting '$name': item $((${#items[@]} + 1)) is not a string"
              return 1
            fi
            if [[ "$item" == *,* ]]; then
              SETTINGS_ERROR="setting '$name': item $((${#items[@]} + 1)) holds a comma; a list item is one entry"
              return 1
            fi
            items+=("$item")
            __skip_space
            [[ "${__rest:0:1}" == , ]] || break
            __rest="${__rest:1}"
          done
        fi
        if [[ "${__rest:0:1}" != "]" ]]; then
          SETTINGS_ERROR="setting '$name': it is not valid JSON: ']' was expected"
          return 1
        fi
        __rest="${__rest:1}"
        value="$(IFS=,; printf '%s' "${items[*]}")"
        SETTINGS[$name]="$value"
      else
        SETTINGS_ERROR="setting '$name': expected a string, a number, true/false or a list of strings"
        return 1
      fi
      __skip_space
      case "${__rest:0:1}" in
        ,) __rest="${__rest:1}" ;;
        "}")
          __rest="${__rest:1}"
          break
          ;;
        *)
          SETTINGS_ERROR="it is not valid JSON: ',' or '}' was expected after \"$name\""
          return 1
          ;;
      esac
    done
  fi
  __skip_space
  if [[ -n "$__rest" ]]; then
    SETTINGS_ERROR="it is not valid JSON: text follows the object"
    return 1
  fi
}

# ---- target tenants --------------------------------------------------------------------------
#
# TARGET_TENANTS="B C": the tenants tenant-bridge reads from. Target X has TENANT_X_ID,
# SUBSCRIPTION_X_ID, KEYVAULT_X_NAME / _RESOURCE_GROUP / _SECRETS, STORAGE_X_NAME /
# _RESOURCE_GROUP / _CONTAINER, REGISTRY_X_NAME / _RESOURCE_GROUP / _ROLE (a registry the app
# may pull from, for /api/acr/token), and optionally PE_KEYVAULT_X_NAME, PE_BLOB_X_NAME,
# PROFILE_X_SLOT (default or 1-4: which settings it fills) and PROFILE_X_NAME (the tenant= name
# callers use). The first target without a slot takes the default profile (the cross_*
# settings), the others profile slots 1-4 in order.

TARGETS=()
declare -A SLOT_OF=() PROFILE_OF=()

# tval PATTERN X: the setting named PATTERN with @ replaced by X (empty when unset).
tval() {
  local __name="${1//@/$2}"
  printf '%s' "${!__name:-}"
}

parse_targets() {
  local raw="${TARGET_TENANTS:-B}" t seen=" "
  TARGETS=()
  for t in ${raw//,/ }; do
    t="${t^^}"
    [[ "$t" =~ ^[A-Z][A-Z0-9]{0,15}$ ]] ||
      die "TARGET_TENANTS: '$t' is not a target name (letters and digits, such as B or STAGING)"
    [[ "$t" != A ]] || die "TARGET_TENANTS: A is the identity's own tenant, not a target"
    [[ "$seen" != *" $t "* ]] || die "TARGET_TENANTS names $t twice"
    seen+="$t "
    TARGETS+=("$t")
  done
  ((${#TARGETS[@]} > 0)) || die "TARGET_TENANTS is empty: name at least one target tenant, such as B"
  ((${#TARGETS[@]} <= 5)) ||
    die "TARGET_TENANTS has ${#TARGETS[@]} targets: at most 5 (the default profile and profile slots 1-4)"

  local slot used=" " next=1 name names=" "
  for t in "${TARGETS[@]}"; do
    slot="$(tval PROFILE_@_SLOT "$t")"
    [[ -n "$slot" ]] || continue
    [[ "$slot" =~ ^(default|[1-4])$ ]] || die "PROFILE_${t}_SLOT must be default or 1-4, not '$slot'"
    [[ "$used" != *" $slot "* ]] || die "PROFILE_${t}_SLOT: slot $slot is already another target's"
    used+="$slot "
    SLOT_OF[$t]="$slot"
  done
  for t in "${TARGETS[@]}"; do
    [[ -z "${SLOT_OF[$t]:-}" ]] || continue
    if [[ "$used" != *" default "* ]]; then
      slot=default
    else
      while [[ "$used" == *" $next "* ]]; do next=$((next + 1)); done
      ((next <= 4)) || die "no free profile slot for target $t"
      slot="$next"
    fi
    used+="$slot "
    SLOT_OF[$t]="$slot"
  done
  for t in "${TARGETS[@]}"; do
    name="$(tval PROFILE_@_NAME "$t")"
    name="${name:-${t,,}}"
    [[ "$name" =~ ^[a-z0-9_-]{1,32}$ ]] ||
      die "PROFILE_${t}_NAME must be 1-32 lowercase letters, digits, '-' or '_', not '$name'"
    [[ "$names" != *" $name "* ]] || die "PROFILE_${t}_NAME: profile name '$name' is already another target's"
    names+="$name "
    PROFILE_OF[$t]="$name"
  done
}

# slot_var SLOT FIELD: the setting of FIELD in a profile slot (src/config/settings.rs, Slot::var).
slot_var() {
  local slot="$1" field="$2"
  if [[ "$slot" != default ]]; then
    printf 'profile%s_%s' "$slot" "$field"
    return 0
  fi
  case "$field" in
    name | callers | secrets | blobs | registries | repositories) printf 'cross_tenant_%s' "$field" ;;
    tenant_id) printf 'cross_tenant_id' ;;
    *) printf 'cross_%s' "$field" ;;
  esac
}

# select_target X: the T_* settings of target tenant X.
select_target() {
  T="$1"
  T_LABEL="tenant $T"
  T_TENANT_ID="$(tval TENANT_@_ID "$T")"
  T_SUBSCRIPTION_ID="$(tval SUBSCRIPTION_@_ID "$T")"
  T_KEYVAULT_NAME="$(tval KEYVAULT_@_NAME "$T")"
  T_KEYVAULT_RESOURCE_GROUP="$(tval KEYVAULT_@_RESOURCE_GROUP "$T")"
  T_KEYVAULT_SECRETS="$(tval KEYVAULT_@_SECRETS "$T")"
  T_STORAGE_NAME="$(tval STORAGE_@_NAME "$T")"
  T_STORAGE_RESOURCE_GROUP="$(tval STORAGE_@_RESOURCE_GROUP "$T")"
  T_STORAGE_CONTAINER="$(tval STORAGE_@_CONTAINER "$T")"
  T_REGISTRY_NAME="$(tval REGISTRY_@_NAME "$T")"
  T_REGISTRY_RESOURCE_GROUP="$(tval REGISTRY_@_RESOURCE_GROUP "$T")"
  T_REGISTRY_ROLE="$(tval REGISTRY_@_ROLE "$T")"
  T_REGISTRY_ROLE="${T_REGISTRY_ROLE:-AcrPull}"
  T_REGISTRY_ID=""
  if [[ -n "$T_REGISTRY_NAME" ]]; then
    T_REGISTRY_ID="/subscriptions/$T_SUBSCRIPTION_ID/resourceGroups/$T_REGISTRY_RESOURCE_GROUP/providers/Microsoft.ContainerRegistry/registries/$T_REGISTRY_NAME"
  fi
  T_PE_KEYVAULT_NAME="$(tval PE_KEYVAULT_@_NAME "$T")"
  T_PE_BLOB_NAME="$(tval PE_BLOB_@_NAME "$T")"
  # PE_KEYVAULT_NAME / PE_BLOB_NAME: the names of tenant B's endpoints before targets existed.
  if [[ "$T" == B ]]; then
    T_PE_KEYVAULT_NAME="${T_PE_KEYVAULT_NAME:-${PE_KEYVAULT_NAME:-}}"
    T_PE_BLOB_NAME="${T_PE_BLOB_NAME:-${PE_BLOB_NAME:-}}"
  fi
  T_PE_KEYVAULT_NAME="${T_PE_KEYVAULT_NAME:-pe-tenant-bridge-vault-${T,,}}"
  T_PE_BLOB_NAME="${T_PE_BLOB_NAME:-pe-tenant-bridge-blob-${T,,}}"
  T_PE_KEYVAULT_ID="/subscriptions/${SUBSCRIPTION_A_ID:-}/resourceGroups/${RESOURCE_GROUP_A:-}/providers/Microsoft.Network/privateEndpoints/$T_PE_KEYVAULT_NAME"
  T_PE_BLOB_ID="/subscriptions/${SUBSCRIPTION_A_ID:-}/resourceGroups/${RESOURCE_GROUP_A:-}/providers/Microsoft.Network/privateEndpoints/$T_PE_BLOB_NAME"
  T_KEYVAULT_ID=""
  if [[ -n "$T_KEYVAULT_NAME" ]]; then
    T_KEYVAULT_ID="/subscriptions/$T_SUBSCRIPTION_ID/resourceGroups/$T_KEYVAULT_RESOURCE_GROUP/providers/Microsoft.KeyVault/vaults/$T_KEYVAULT_NAME"
  fi
  T_STORAGE_ID=""
  if [[ -n "$T_STORAGE_NAME" ]]; then
    T_STORAGE_ID="/subscriptions/$T_SUBSCRIPTION_ID/resourceGroups/$T_STORAGE_RESOURCE_GROUP/providers/Microsoft.Storage/storageAccounts/$T_STORAGE_NAME"
  fi
  T_SLOT="${SLOT_OF[$T]}"
  T_PROFILE="${PROFILE_OF[$T]}"
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
