#!/usr/bin/env bash
# Regenerates tender/hot-start-symbols.txt (or the file given), the functions the linker lays out
# together at the front of the tender's text (tender/build.rs): those a
# profile of 300 starts of `tender hello` samples, glibc's IFUNC resolvers
# (all run at start), and the first-touched functions of the start's page
# faults. Rust's mangled names carry hashes of the crate's metadata: rerun
# this after a dependency or toolchain update (a name that no longer exists
# is ignored by the linker, so a stale list only loses its effect).
set -euo pipefail
cd "$(dirname "$0")/.."
tender=target/release/tender
guest=target/release/hello
out=${1:-tender/hot-start-symbols.txt}
data=$(mktemp)
trap 'rm -f "$data"' EXIT
perf record -q -o "$data" -F 20000 -e cpu-clock -- \
    bash -c "for i in \$(seq 300); do $tender $guest >/dev/null; done"
{
    echo _start
    perf report -i "$data" --comm tender --dso tender --sort sym --stdio --no-demangle 2>/dev/null |
        grep -v '^#' | awk 'NF {print $NF}' | grep -v '^0x'
    nm "$tender" | awk '$2 ~ /^[iI]$/ {print $3} $2 ~ /^[tT]$/ && $3 ~ /_ifunc$/ {print $3}'
    perf record -q -o "$data" -e page-faults -c 1 -d "$tender" "$guest" >/dev/null
    perf script -i "$data" -F ip,sym --no-demangle 2>/dev/null | awk '{print $2}' | grep -v '^\[' | grep -v '^$'
} | awk '!seen[$0]++' > "$out"
wc -l "$out"
