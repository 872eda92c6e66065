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
# The OCI runtime is a workspace of its own (see runtime/Cargo.toml); it
# goes next to the tender, where it looks for it.
cargo build --release --manifest-path runtime/Cargo.toml --target-dir target
cargo test --release --manifest-path runtime/Cargo.toml --target-dir target
cargo test --release --workspace "$@"
