#!/usr/bin/env bash
# Benchmarks the tender against native static peers (compiled with gcc):
# exec-to-exit start-up time of hello, and PSS of idle guest instances.
# Each takes --json and more: see `target/release/nabla bench --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
nabla_ensure_deps

cargo build --release

target/release/nabla bench startup
echo
target/release/nabla bench memory
