#!/usr/bin/env bash
# System calls per request with the guest reading the clock through the
# host's vDSO (the default) and with the system call (`--clock syscall`),
# in one run: httpd under wrk (1 KiB, 32 connections), kvd under
# redis-benchmark (SET, 50 clients, -P 1), std-http (axum) under wrk
# (1 KiB, 32 connections; `std-1m`: 1 MiB, 8 connections). `perf stat`
# counts the tender's system calls on the kernel's tracepoints while the
# load runs (no ptrace, so the guest runs at full speed), the load
# generator counts the requests, /proc/PID/stat gives the tender's CPU
# time. Prints, per server and clock: requests/s, clock_gettime and all
# system calls per request, CPU µs per request, and the requests/s ratio
# vDSO / system call.
#
# Usage: scripts/bench-clock.sh [SECONDS_PER_RUN [ROUNDS]]   (default 5 1)
# Run as root (namespaces, taps, tracepoints). Needs perf, wrk, redis-tools.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
ROUNDS=${2:-1}
export MTOOLS_SKIP_CHECK=1

[ "$(id -u)" -eq 0 ] || { echo "bench-clock: run as root" >&2; exit 1; }
for tool in perf wrk redis-benchmark ip mkfs.fat mcopy; do
    command -v "$tool" >/dev/null || { echo "bench-clock: $tool is missing" >&2; exit 1; }
done
T=target/release
for bin in tender httpd kvd std-http; do
    [ -x "$T/$bin" ] || { echo "bench-clock: build first (. scripts/deps.sh; nabla_build_all)" >&2; exit 1; }
done

work=$(mktemp -d)
NS=nbclock-$$
cleanup() {
    for pid in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The site: /bench/1k.bin on a FAT disk (httpd), / for std-http.
mkdir -p "$work/site/bench"
head -c 1024 /dev/urandom > "$work/site/bench/1k.bin"
head -c $((1 << 20)) /dev/urandom > "$work/site/bench/1m.bin"
truncate -s 32M "$work/site.img"
mkfs.fat -F 16 --mbr=y -n SITE "$work/site.img" >/dev/null
mcopy -s -i "$work/site.img" "$work/site/bench" ::/
truncate -s 1G "$work/kvd.img"

ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" tuntap add dev nbtap0 mode tap
ip -n "$NS" addr add 10.0.0.1/24 dev nbtap0
ip -n "$NS" link set nbtap0 up
IP=10.0.0.2
in_ns() { ip netns exec "$NS" "$@"; }

EVENTS=syscalls:sys_enter_clock_gettime,raw_syscalls:sys_enter
PID=
# start CLOCK PORT GUEST [TENDER OPTIONS...]
start() {
    local clock=$1 port=$2 guest=$3
    shift 3
    ip netns exec "$NS" "$T/tender" --clock "$clock" --net service0=nbtap0 \
        --env NET_SERVICE0_IPV4=10.0.0.2/24 "$@" "$T/$guest" > "$work/$guest.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do
        if in_ns bash -c "exec 3<>/dev/tcp/$IP/$port" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "bench-clock: $guest does not accept connections:" >&2
    cat "$work/$guest.log" >&2
    exit 1
}
stop() {
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
}
# count OUTPUT COMMAND...: runs the load under perf stat on the tender.
# Also writes the tender's CPU time (user + system, clock ticks) over the
# load to OUTPUT.cpu.
count() {
    local out=$1 before
    shift
    before=$(ticks)
    perf stat -x, -e "$EVENTS" -p "$PID" -o "$out.perf" -- "$@" > "$out" 2>&1
    echo $(($(ticks) - before)) > "$out.cpu"
}
ticks() { awk '{ print $14 + $15 }' "/proc/$PID/stat"; }
HZ=$(getconf CLK_TCK)
event() { awk -F, -v e="$2" '$3 == e { print $1 }' "$1.perf"; }
# report NAME CLOCK ROUND REQUESTS RPS: notes the rate and prints the row of
# NAME's run with CLOCK (its output, perf counts and CPU under $work/NAME.CLOCK).
report() {
    local name=$1 clock=$2 round=$3 reqs=$4 rps=$5 out="$work/$1.$2"
    RPS[$name.$clock.$round]=$rps
    awk -v c="$(event "$out" syscalls:sys_enter_clock_gettime)" \
        -v s="$(event "$out" raw_syscalls:sys_enter)" -v r="$reqs" -v rps="$rps" -v k="$clock" \
        -v t="$(cat "$out.cpu")" -v hz="$HZ" -v n="$name" \
        'BEGIN { printf "%-9s %-8s %10.0f %14.3f %14.3f %14.1f\n", n, k, rps, c / r, s / r, t / hz * 1e6 / r }'
}

printf '%-9s %-8s %10s %14s %14s %14s\n' server clock requests/s clock_gettime/req \
    syscalls/req "CPU µs/req"
declare -A RPS
for round in $(seq "$ROUNDS"); do
    for clock in vdso syscall; do
        # httpd, 1 KiB, wrk -c32.
        start "$clock" 80 httpd --env PORT=80 --block "storage=$work/site.img"
        in_ns wrk -t1 -c32 -d1s "http://$IP/bench/1k.bin" > /dev/null
        count "$work/httpd.$clock" ip netns exec "$NS" wrk -t1 -c32 -d"${SECS}s" "http://$IP/bench/1k.bin"
        stop
        reqs=$(awk '/requests in/ { print $1 }' "$work/httpd.$clock")
        rps=$(awk '/^Requests\/sec:/ { print $2 }' "$work/httpd.$clock")
        report httpd "$clock" "$round" "$reqs" "$rps"

        # kvd, SET, 50 clients, no pipelining.
        start "$clock" 6379 kvd --mem 1024 --block "storage=$work/kvd.img"
        n=$((SECS * 20000))
        count "$work/kvd.$clock" ip netns exec "$NS" redis-benchmark -h "$IP" -p 6379 -c 50 -n "$n" \
            -r 100000 -t set -q
        stop
        rps=$(tr '\r' '\n' < "$work/kvd.$clock" | awk '/^SET: [0-9.]+ requests per second/ { print $2 }')
        report kvd "$clock" "$round" "$n" "$rps"

        # std-http (axum on tokio), 1 KiB, wrk -c32.
        start "$clock" 80 std-http --block-ro "storage=$work/site.img"
        in_ns wrk -t1 -c32 -d1s "http://$IP/bench/1k.bin" > /dev/null
        count "$work/std-http.$clock" ip netns exec "$NS" wrk -t1 -c32 -d"${SECS}s" "http://$IP/bench/1k.bin"
        stop
        reqs=$(awk '/requests in/ { print $1 }' "$work/std-http.$clock")
        rps=$(awk '/^Requests\/sec:/ { print $2 }' "$work/std-http.$clock")
        report std-http "$clock" "$round" "$reqs" "$rps"

        # std-http, 1 MiB, wrk -c8 (CPU-bound in the guest).
        start "$clock" 80 std-http --block-ro "storage=$work/site.img"
        count "$work/std-1m.$clock" ip netns exec "$NS" wrk -t1 -c8 -d"${SECS}s" "http://$IP/bench/1m.bin"
        stop
        reqs=$(awk '/requests in/ { print $1 }' "$work/std-1m.$clock")
        rps=$(awk '/^Requests\/sec:/ { print $2 }' "$work/std-1m.$clock")
        report std-1m "$clock" "$round" "$reqs" "$rps"
    done
    for server in httpd kvd std-http std-1m; do
        awk -v a="${RPS[$server.vdso.$round]}" -v b="${RPS[$server.syscall.$round]}" -v s="$server" \
            'BEGIN { printf "%-9s requests/s vDSO / system call: %.2fx\n", s, a / b }'
    done
done
