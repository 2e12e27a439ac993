#!/usr/bin/env bash
# Fuzz smoke run (CI): builds every cargo-fuzz target and runs each one briefly, starting from its
# seed corpus in fuzz/corpus/<target>/. Any crash, panic or failed property fails the run; the
# input is saved under fuzz/artifacts/<target>/ and the command to replay it is printed.
#
#   bash fuzz/smoke.sh                    # every target, 15 s each
#   FUZZ_SECONDS=60 bash fuzz/smoke.sh    # longer
#   bash fuzz/smoke.sh challenge jwt_claims
#
# Needs cargo-fuzz (installed from crates.io when missing) and a nightly compiler for libFuzzer's
# sanitizer flags: the installed nightly, else `rustup toolchain install nightly`, else the default
# toolchain with RUSTC_BOOTSTRAP=1 (said so in the output). Seed corpora are never written to:
# libFuzzer's new inputs go to a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-15}"
start=$(date +%s)
log() { echo "fuzz/smoke.sh: $*"; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    log "cargo-fuzz is missing: cargo install cargo-fuzz --locked"
    if ! cargo install cargo-fuzz --locked; then
        log "FAILED: cargo-fuzz could not be installed from crates.io"
        exit 1
    fi
fi

toolchain=()
if rustup run nightly rustc --version >/dev/null 2>&1; then
    toolchain=(+nightly)
elif log "no nightly toolchain: rustup toolchain install nightly --profile minimal" &&
    rustup toolchain install nightly --profile minimal; then
    toolchain=(+nightly)
else
    log "WARNING: no nightly toolchain could be installed; building with the default toolchain" \
        "($(rustc --version)) and RUSTC_BOOTSTRAP=1, which unlocks the nightly-only flags cargo-fuzz passes"
    export RUSTC_BOOTSTRAP=1
fi
log "$(cargo "${toolchain[@]}" fuzz --version), $(rustc "${toolchain[@]}" --version)"

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo "${toolchain[@]}" fuzz list)
fi

log "building ${#targets[@]} targets"
cargo "${toolchain[@]}" fuzz build

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
for t in "${targets[@]}"; do
    mkdir -p "$work/$t"
    log "== $t: ${seconds} s from $(find "fuzz/corpus/$t" -type f | wc -l) seeds"
    if cargo "${toolchain[@]}" fuzz run "$t" "$work/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$work/$t.log" 2>&1; then
        grep -E '^#[0-9]+[[:space:]]+DONE' "$work/$t.log" | tail -n 1 || true
    else
        failed+=("$t")
        # The panic or sanitizer report and where the input was saved (lines cut at 400 bytes).
        grep -E -A4 'panicked at|ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|Test unit written' \
            "$work/$t.log" | cut -c1-400 | head -n 40
        log "FAILED: $t (replay: cargo ${toolchain[*]} fuzz run $t fuzz/artifacts/$t/<file>)"
    fi
done

log "finished in $(($(date +%s) - start)) s"
if [ "${#failed[@]}" -gt 0 ]; then
    log "FAILED targets: ${failed[*]}"
    exit 1
fi
log "${#targets[@]} passed, 0 failed"
