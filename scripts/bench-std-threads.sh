#!/usr/bin/env bash
# Threads in a std guest against the same program as a native Linux
# process, in one run: tests/std's std-threads-bench (spawn+join of a
# thread; handoffs between two threads through a Mutex and a Condvar) built
# as a nabla guest, and the same source built natively with plain cargo in
# a temporary crate (the `libos_std::app!();` line removed). Each side runs
# RUNS times (default 5) and its best (lowest) time counts; prints the
# nanoseconds per operation of each and the ratio guest/native. The native
# program runs twice: free on all CPUs, and pinned to one CPU with taskset
# (as the guest's threads all share one host thread).
# Then tokio's blocking pool under a burst of BURST (default 1000)
# spawn_blocking calls (tests/std's std-blocking-burst, the native build
# with `--cfg native`): threads tokio started in the guest and natively
# (median of the runs), and the guest's heap at the peak.
#   SPAWNS=5000 HANDOFFS=100000 RUNS=5 BURST=1000 scripts/bench-std-threads.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
runs=${RUNS:-5}
export SPAWNS=${SPAWNS:-5000} HANDOFFS=${HANDOFFS:-100000} BURST=${BURST:-1000}

cargo build --release -p tender --target-dir "$target" >&2
(cd tests/std && cargo build --release --bin std-threads-bench --bin std-blocking-burst \
    --target-dir "$target") >&2

native=$(mktemp -d)
trap 'rm -rf "$native"' EXIT
mkdir -p "$native/src"
cat >"$native/Cargo.toml" <<'TOML'
[package]
name = "std-threads-bench-native"
version = "0.1.0"
edition = "2024"
publish = false

[profile.release]
debug = "line-tables-only"

[workspace]
TOML
grep -v '^libos_std::app!' tests/std/src/bin/std-threads-bench.rs >"$native/src/main.rs"
cargo build --release --quiet --manifest-path "$native/Cargo.toml" --target-dir "$native/target" >&2
native_bin=$native/target/release/std-threads-bench-native

# The burst's native build: tokio at the version of tests/std's lock file.
mkdir -p "$native/burst/src"
cat >"$native/burst/Cargo.toml" <<'TOML'
[package]
name = "std-blocking-burst-native"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
tokio = { version = "1", features = ["rt", "rt-multi-thread"] }

[lints.rust]
unexpected_cfgs = { level = "allow" }

[workspace]
TOML
cp tests/std/Cargo.lock "$native/burst/"
cp tests/std/src/bin/std-blocking-burst.rs "$native/burst/src/main.rs"
RUSTFLAGS="--cfg native" cargo build --release --quiet --manifest-path "$native/burst/Cargo.toml" \
    --target-dir "$native/target" >&2
burst_native=$native/target/release/std-blocking-burst-native

# best NAME CMD...: the lowest value of NAME over $runs runs of CMD.
best() {
    local name=$1
    shift
    for _ in $(seq "$runs"); do
        "$@" | awk -v n="$name" '$1 == n { print $2 }'
    done | sort -n | head -1
}

ratio() { awk -v g="$1" -v n="$2" 'BEGIN { printf "%.3f", g / n }'; }

printf '%-34s %10s %10s %7s %12s %7s\n' "threads ($runs runs, best)" "guest ns" "native ns" "ratio" "1-CPU ns" "ratio"
for m in spawn_join_ns pingpong_ns; do
    g=$(best "$m" "$target/release/tender" --env "SPAWNS=$SPAWNS" --env "HANDOFFS=$HANDOFFS" \
        "$target/release/std-threads-bench")
    n=$(best "$m" "$native_bin")
    p=$(best "$m" taskset -c 0 "$native_bin")
    case $m in
        spawn_join_ns) what="spawn+join ($SPAWNS)" ;;
        pingpong_ns) what="Mutex+Condvar handoff ($HANDOFFS)" ;;
    esac
    printf '%-34s %10s %10s %7s %12s %7s\n' "$what" "$g" "$n" "$(ratio "$g" "$n")" "$p" "$(ratio "$g" "$p")"
done

# median NAME CMD...: the median value of NAME over $runs runs of CMD.
median() {
    local name=$1
    shift
    for _ in $(seq "$runs"); do
        "$@" | awk -v n="$name" '$1 == n { print $2 }'
    done | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

echo
printf '%-34s %10s %10s %12s %12s\n' "spawn_blocking burst ($runs runs, median)" "guest" "native" "1-CPU" "guest heap"
g=$(median threads_started "$target/release/tender" --env "BURST=$BURST" "$target/release/std-blocking-burst")
n=$(median threads_started env "BURST=$BURST" "$burst_native")
p=$(median threads_started env "BURST=$BURST" TOKIO_WORKER_THREADS=1 taskset -c 0 "$burst_native")
h=$(median heap_peak_kib "$target/release/tender" --env "BURST=$BURST" "$target/release/std-blocking-burst")
printf '%-34s %10s %10s %12s %9s KiB\n' "threads started ($BURST calls)" "$g" "$n" "$p" "$h"
