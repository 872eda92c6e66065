#!/usr/bin/env bash
# Builds every fuzz target in fuzz/ and runs each for N seconds (default 30),
# one after the other, single job. Exits non-zero if a target fails to build
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
for t in "${targets[@]}"; do
    echo "== fuzz $t for ${secs}s"
    mkdir -p "$work/$t"
    cargo +nightly fuzz run "$t" "$work/$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
echo "fuzz: ${#targets[@]} targets, ${secs}s each: no crash"
