#!/usr/bin/env bash
# Gives the registry-pull SecretStore a caller key of its own, known to tenant-bridge:
#   deploy/registry-pull/secrets/function-key.env   key=<random>   (Secret tenant-bridge-function-key)
#   deploy/secrets/function-keys.env                gains <caller>:<the same key>
# Run deploy/secrets/generate.sh first. Existing keys are kept: a second run changes nothing.
# Nothing secret is printed. Then `kubectl apply -k deploy/` (tenant-bridge learns the key) and
# `kubectl apply -k deploy/registry-pull/`.
#
# usage: deploy/registry-pull/generate.sh [CALLER_NAME]     (default caller name: registry-pull)
set -euo pipefail
umask 077
here="$(cd "$(dirname "$0")" && pwd)"
keys="$here/../secrets/function-keys.env"
mine="$here/secrets/function-key.env"

caller="${1:-registry-pull}"
if [[ ! "$caller" =~ ^[A-Za-z0-9._-]+$ ]]; then
  echo "caller name must be letters, digits, '.', '_' or '-'" >&2
  exit 2
fi
if [[ ! -f "$keys" ]]; then
  echo "no deploy/secrets/function-keys.env: run deploy/secrets/generate.sh first" >&2
  exit 1
fi

# The key tenant-bridge already knows for this caller, if any.
known=""
entries="$(sed -n 's/^function_keys=//p' "$keys")"
IFS=',' read -ra list <<<"$entries"
for entry in "${list[@]}"; do
  if [[ "$entry" == "$caller:"* ]]; then
    known="${entry#"$caller:"}"
  fi
done

if [[ -f "$mine" ]]; then
  key="$(sed -n 's/^key=//p' "$mine")"
  [[ -n "$key" ]] || { echo "deploy/registry-pull/secrets/function-key.env has no key= line" >&2; exit 1; }
  echo "kept     deploy/registry-pull/secrets/function-key.env (exists)"
elif [[ -n "$known" ]]; then
  key="$known"
  printf 'key=%s\n' "$key" >"$mine"
  echo "wrote    deploy/registry-pull/secrets/function-key.env (the key of '$caller' in function-keys.env)"
else
  key="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
  printf 'key=%s\n' "$key" >"$mine"
  echo "wrote    deploy/registry-pull/secrets/function-key.env"
fi

if [[ "$known" == "$key" ]]; then
  echo "kept     deploy/secrets/function-keys.env (knows '$caller')"
elif [[ -n "$known" ]]; then
  echo "deploy/secrets/function-keys.env has another key for '$caller': remove one of the two, then run this again" >&2
  exit 1
else
  tmp="$keys.tmp"
  sed "s/^function_keys=.*/&,$caller:$key/" "$keys" >"$tmp"
  mv "$tmp" "$keys"
  echo "added    '$caller' to deploy/secrets/function-keys.env"
fi
