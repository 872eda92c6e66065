#!/usr/bin/env bash
# kvd's first start on a fresh disk (as root): the time from starting the
# tender to kvd's `kvd: aof:` line, on a new sparse 1 GiB disk file each
# run, kvd with --mem 1024, in a network namespace of its own (a tap, no
# traffic). Usage: scripts/bench-kvd-start.sh [RUNS [GUEST...]]; the
# guests (default target/release/kvd) alternate run by run, so that two
# builds are compared under the same load. Prints one line per run and
# the median per guest.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
shift || true
guests=("$@")
[ ${#guests[@]} -gt 0 ] || guests=(target/release/kvd)
tender=target/release/tender
ns=kvd-start-$$
dir=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" ip tuntap add tap0 mode tap
ip netns exec "$ns" ip link set tap0 up
declare -A times
for run in $(seq 1 "$runs"); do
    for g in "${guests[@]}"; do
        rm -f "$dir/disk.img" "$dir/out"
        truncate -s 1G "$dir/disk.img"
        t0=$(date +%s%N)
        ip netns exec "$ns" "$tender" --mem 1024 --block "storage=$dir/disk.img" \
            --net service0=tap0 --env NET_SERVICE0_IPV4=10.0.0.2/24 "$g" >"$dir/out" 2>&1 &
        pid=$!
        until grep -q "aof:" "$dir/out"; do
            if ! kill -0 "$pid" 2>/dev/null; then
                cat "$dir/out" >&2
                echo "kvd exited before its log was open" >&2
                exit 1
            fi
            sleep 0.002
        done
        ms=$((($(date +%s%N) - t0) / 1000000))
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        pid=
        echo "run $run: $g: $ms ms to the log open"
        times[$g]="${times[$g]:-} $ms"
    done
done
for g in "${guests[@]}"; do
    # shellcheck disable=SC2086
    median=$(printf '%s\n' ${times[$g]} | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    echo "$g: median $median ms over $runs runs (load average $(cut -d' ' -f1 /proc/loadavg))"
done
