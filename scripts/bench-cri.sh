#!/usr/bin/env bash
# Kubernetes pods through containerd's CRI: nabla-runc against runc, in one
# run, on one containerd of its own (the CRI suite's node: tests/cri/cri.rs,
# a CNI bridge in a network namespace of its own, images packed or built
# here and imported, never pulled).
#
#   nabla-runc   httpd as a nabla guest
#   runc         busybox httpd (Debian's static busybox), a native static
#                server, with busybox `sleep` as the pod's pause
#
# For each handler, NABLA_BENCH_PODS pods (default 5), one at a time: the
# time from RunPodSandbox to the first HTTP 200 at the pod IP (curl every
# 10 ms), then, after a second idle, the pod's memory as the kubelet sees it
# (PodSandboxStats' working set, from the pod's cgroup) and as the host
# pays for it (the PSS of the pod's shim, sandbox process and server). It
# prints the medians and the ratios nabla-runc / runc (below 1: nabla-runc
# ahead). Root, as the CRI suite.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
nabla_ensure_deps
cargo build --release --workspace
cargo build --release --manifest-path runtime/Cargo.toml --target-dir target
cargo build --release -p nabla-tests --bins
cargo test --release --manifest-path tests/cri/Cargo.toml --target-dir target -- --ignored --exact \
    bench_pod_start_and_memory_against_runc --nocapture 2>&1 |
    grep -v "^time=\|^running\|^test \|^$\|test result"
