#!/usr/bin/env bash
# Builds everything and runs the hello example as a unikernel under the tender.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
nabla_ensure_deps

nabla_build_all

tender=target/release/tender
hello=target/release/hello

echo "== the image the tender will run"
"$tender" --inspect "$hello"
echo
echo "== the seccomp filter it installs (libseccomp PFC)"
"$tender" --print-seccomp "$hello"
echo
echo "== tender --env NAME=nabla $hello one two"
status=0
"$tender" --env NAME=nabla "$hello" one two || status=$?
echo "(exit status $status)"
echo
echo "== run directly on Linux, the same file refuses to start:"
"$hello" 2>&1 || true
exit "$status"
