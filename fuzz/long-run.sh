#!/usr/bin/env bash
# The longer fuzz run whose figures go in issue 7's closing note (not run by CI).
#
#   bash fuzz/long-run.sh                     # every target, 240 s each, 2 at a time
#   FUZZ_SECONDS=600 FUZZ_JOBS=1 bash fuzz/long-run.sh query_and_validation
#
# Each target runs in libFuzzer's fork mode with -ignore_crashes=1, so a finding does not end the
# run: every crashing input lands in fuzz/artifacts/<target>/. The growing corpus is kept in
# fuzz/work/long/<target>/ (ignored by git), the full logs in fuzz/work/long/<target>.log, and the
# final figures (executions, cov, ft, corpus, crashes) are printed per target at the end.
# Needs what smoke.sh needs; run smoke.sh first to install it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-240}"
jobs="${FUZZ_JOBS:-2}"
toolchain=(+nightly)
rustup run nightly rustc --version >/dev/null 2>&1 || { toolchain=(); export RUSTC_BOOTSTRAP=1; }

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo "${toolchain[@]}" fuzz list)
fi
cargo "${toolchain[@]}" fuzz build
out=fuzz/work/long
mkdir -p "$out"

run() {
    local t=$1
    mkdir -p "$out/$t"
    cargo "${toolchain[@]}" fuzz run "$t" "$out/$t" "fuzz/corpus/$t" -- \
        -fork=1 -ignore_crashes=1 -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        >"$out/$t.log" 2>&1 || true
}

running=0
for t in "${targets[@]}"; do
    run "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait

printf '%-22s %12s %6s %7s %7s %9s %8s\n' target executions cov ft corpus exec/s crashes
for t in "${targets[@]}"; do
    # Fork mode's last status line: "#EXECS: cov: N ft: N corp: N exec/s: N oom/timeout/crash: a/b/c …"
    line=$(grep -E '^#[0-9]+: cov:' "$out/$t.log" | tail -n 1)
    execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$line")
    field() { sed -E "s|.* $1: ([0-9/]+).*|\1|" <<<"$line"; }
    printf '%-22s %12s %6s %7s %7s %9s %8s\n' "$t" "$execs" "$(field cov)" "$(field ft)" \
        "$(find "$out/$t" -type f | wc -l)" "$(field exec/s)" "$(field oom/timeout/crash | cut -d/ -f3)"
done
