#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and the integration suites that run
# guests under the tender. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
nabla_ensure_deps

# The suites run the tender and the examples from target/release, so build
# the whole workspace first; cargo test then builds the test guests itself.
cargo build --release --workspace
cargo test --release --workspace "$@"
