#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and the integration suites that run
# guests under the tender. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
nabla_ensure_deps

# The suites run the tender, the examples, nabla and nabla-runc from
# target/release, so build them first; cargo test builds the test guests.
nabla_build_all
cargo test --release --manifest-path runtime/Cargo.toml --target-dir target
cargo test --release --workspace "$@"
# The CRI suite (Kubernetes through containerd's CRI): a workspace of its
# own (tests/cri/Cargo.toml says why), run on the binaries built above.
cargo test --release --manifest-path tests/cri/Cargo.toml --target-dir target "$@"
