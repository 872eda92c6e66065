#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and the integration suites that run
# guests under the tender. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
nabla_ensure_deps

# A merge left half done must not land (one did, in docs): no conflict
# markers in the tracked files.
if git rev-parse --git-dir >/dev/null 2>&1 && git grep -n -E '^(<<<<<<<|>>>>>>>) ' -- . ; then
    echo "test.sh: merge conflict markers in the files above" >&2
    exit 1
fi

# The suites run the tender, the examples, nabla and nabla-runc from
# target/release, so build them first; cargo test builds the test guests.
nabla_build_all
cargo test --release --manifest-path runtime/Cargo.toml --target-dir target
cargo test --release --workspace "$@"
# The CRI suite (Kubernetes through containerd's CRI): a workspace of its
# own (tests/cri/Cargo.toml says why), run on the binaries built above.
cargo test --release --manifest-path tests/cri/Cargo.toml --target-dir target "$@"
