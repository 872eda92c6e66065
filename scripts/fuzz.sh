#!/usr/bin/env bash
# Builds every fuzz target in fuzz/ and runs each for N seconds (default 30),
# single job each, as many targets at once as there are CPUs. Exits non-zero if a target fails to build
# or finds a crash (the input is kept in fuzz/artifacts/TARGET/).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs the nightly toolchain (cargo-fuzz builds with sanitizers); installs
# cargo-fuzz if it is missing. Builds are release with debug assertions
# (overflow checks on), cargo-fuzz's default. See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-30}"
shift || true

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi

cd fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# "The fuzz targets build": all of them, before any runs.
cargo +nightly fuzz build

# New inputs go to a scratch corpus; the seeds in fuzz/corpus stay as they are.
if [ -n "${NABLA_FUZZ_WORK:-}" ]; then
    work="$NABLA_FUZZ_WORK"
else
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
fi
# One target: its output goes to a log, shown when it ends (libFuzzer's final
# stats if the target passed, the end of the log if not); its status
# goes to TARGET.rc.
run_one() {
    local t="$1" log="$work/$1.log" rc=0
    mkdir -p "$work/$t"
    cargo +nightly fuzz run "$t" "$work/$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then
        echo "== fuzz $t for ${secs}s: no crash"
        grep -E '^(Done|stat::)' "$log" || true
    else
        echo "== fuzz $t for ${secs}s: FAILED (status $rc)"
        tail -n 100 "$log"
    fi
    echo "$rc" >"$work/$t.rc"
}

at_once="$(nproc)"
for t in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$at_once" ]; do
        wait -n || true
    done
    run_one "$t" &
done
wait
failed=()
for t in "${targets[@]}"; do
    [ "$(cat "$work/$t.rc" 2>/dev/null)" = 0 ] || failed+=("$t")
done
if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz: ${failed[*]} failed; the inputs are in fuzz/artifacts/" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${secs}s each: no crash"
