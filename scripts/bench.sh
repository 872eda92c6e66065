#!/usr/bin/env bash
# Benchmarks the tender against native peers: exec-to-exit start-up time of
# hello and PSS of idle guest instances (against static C programs compiled
# with gcc); then, as root, inside network namespaces of their own, httpd
# against nginx (one worker) under wrk, and bulk TCP throughput of tcpperf
# against the same protocol between two Linux processes, and container start
# (`ctr run --rm` of hello) with nabla-runc against runc, in a containerd of
# the benchmark's own.
# Each takes --json and more: see `target/release/nabla bench --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
nabla_ensure_deps

cargo build --release
# The std guests compared with the libos ones (start-up, memory).
cargo build --release --manifest-path tests/std/Cargo.toml --target-dir target
if [ "$(id -u)" -eq 0 ]; then
    cargo build --release --manifest-path runtime/Cargo.toml --target-dir target
fi

target/release/nabla bench startup --std-guest target/release/std-hello
echo
target/release/nabla bench memory --std-guest target/release/std-sleep
echo
target/release/nabla bench block
echo
# std threads against Linux threads, and tokio's blocking pool under a
# burst of spawn_blocking (threads started, guest heap).
scripts/bench-std-threads.sh
echo
if [ "$(id -u)" -ne 0 ]; then
    echo "skipping nabla bench http, tcp, kvd and container: they need root (network namespaces, taps, containerd)" >&2
    # Issue 17's table: only its start-up row without root.
    target/release/nabla bench table --only startup
    exit 0
fi
# Start-up with a tap and a disk attached (issue 17 item 1: their seccomp
# filter comes from a compiled-in template, not libseccomp): guest-devices
# declares both; a network namespace and a tap of its own, a 64 MiB disk.
startup_devices() {
    local ns="nabla-bench-startup-$$" dir
    dir=$(mktemp -d)
    trap 'ip netns del "$ns" 2>/dev/null || true; rm -rf "$dir"' RETURN
    ip netns add "$ns"
    ip netns exec "$ns" ip tuntap add dev tap0 mode tap
    ip netns exec "$ns" ip link set tap0 up
    truncate -s 64M "$dir/disk.img"
    ip netns exec "$ns" target/release/nabla bench startup --guest target/release/guest-devices \
        --attach=--net --attach=service0=tap0 --attach=--block --attach="storage=$dir/disk.img"
}
startup_devices
echo
target/release/nabla bench http
echo
# httpd at 512 and 1,000 keep-alive connections against nginx (issue 17
# item 7): the errors column is httpd's resets, none since the lean buffers.
target/release/nabla bench http --sweep --sweep-connections 512,1000 --sweep-sizes 1k \
    --point-duration 3 --chart-dir target/bench/http-many
echo
# Fails (exit 1) when a round of either direction is below 0.9× of Linux;
# the report is printed first, and the other benchmarks still run.
target/release/nabla bench tcp || echo "nabla bench tcp: the goal is not met in every round (report above)" >&2
echo
target/release/nabla bench kvd
echo
# System calls per request with the clock read through the vDSO and by
# system call (issue 17).
scripts/bench-clock.sh
echo
target/release/nabla bench container
echo
# Readiness at scale (issue 13): std-http and mini-redis with 200, and
# std-http with 900, idle connections held open, guest against native.
scripts/bench-std-net.sh --idle 200 5 3
echo
scripts/bench-std-net.sh --idle 900 5 3
echo
# std-echo's stream and round trips alone, 5 rounds (issue 13 item
# 5; docs/performance.md, "Receive window").
BENCH_STD_ROWS=echo scripts/bench-std-net.sh 5 5
echo
# Issue 17's table: every row a ratio to its peer in the same run, the
# spread over runs, the goal judged on the worst run (HAP: one lab run).
target/release/nabla bench table
