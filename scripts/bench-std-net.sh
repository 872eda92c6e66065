#!/usr/bin/env bash
# Existing Rust programs as nabla guests against the same programs built
# for Linux (examples/std), in one run, with the same clients:
#
#   std-http (axum, tokio)     wrk, GET of a 1 KiB and a 1 MiB file
#   std-https (the same over   wrk, GET of a 1 KiB file on kept-alive
#     tokio-rustls, ring)      connections, and with a new connection and
#                              TLS handshake per request (ECDSA P-256)
#   mini-redis-server          redis-benchmark -t set,get, -P 1 and -P 16
#   std-echo (std threads)     64-byte round trips on 16 connections, and
#                              a stream echoed on 1 connection for as
#                              long (MiB/s of bytes that came back, and
#                              the server's CPU per GiB), with the client
#                              namespace's congestion control and with
#                              cubic
#
# The set-up is `nabla bench http`'s (tools/src/bench/net.rs): the clients
# run in a client namespace; the guest is behind a tap there (the tender
# runs in that namespace), the native program behind a veth in a namespace
# of its own, both links with MTU 1500. Both servers run on the same one
# CPU (taskset -c 1: the tender, and the native program with tokio's one
# worker thread, TOKIO_WORKER_THREADS=1), as the guest has one CPU and its
# threads are green threads on it; the clients get the rest.
# BENCH_TENDER_PIN= (empty) leaves the tender unpinned, as before
# 2026-12-05 (the native programs stay on CPU 1). std-echo's stream client
# runs on the other CPU (taskset -c 0; BENCH_CLIENT_PIN= leaves it
# unpinned, as before 2026-12-05 12:00 UTC): unpinned, its two threads
# were woken onto the server's CPU whenever the tender slept there, which
# Linux's echo thread, never sleeping, did not meet (docs/performance.md,
# "The stream"). The round-trip client (16 threads) stays unpinned: on one
# CPU it is the bottleneck of both sides.
#
# Each round runs every client once against each server, alternating which
# goes first; the figures are medians over the rounds. It prints, for every
# row, both figures, the ratio guest / native (above 1 is the guest ahead
# for rates, behind for latencies) and the p99 latencies.
#
# With --idle N, readiness at scale: N idle connections are opened to the
# server (and held, sending nothing) before its clients run, for
# mini-redis (-P 1 and -P 16; N at most 200: mini-redis serves 250
# connections at most, and redis-benchmark holds 50) and std-http's 1 KiB
# GET; the rows name N. Run it with 0 and with N to see what N idle
# connections cost each side.
#
# Usage: [BENCH_TENDER_OPTS=...] [BENCH_TENDER_PIN=...] [BENCH_CLIENT_PIN=...] [BENCH_GUESTS=DIR] [BENCH_STD_ROWS="http redis echo https"] \
#        scripts/bench-std-net.sh [--idle N] [SECONDS_PER_RUN [ROUNDS]]   (default 5 3)
# BENCH_STD_ROWS picks the programs (default the first three), and only those are
# built: `BENCH_STD_ROWS=echo` runs the std-echo rows alone.
# Run as root (namespaces, taps). Needs wrk, redis-tools, iproute2.
set -euo pipefail
cd "$(dirname "$0")/.."
IDLE=
if [ "${1:-}" = --idle ]; then
    IDLE=${2:?"bench-std-net: --idle needs a number of connections"}
    [[ "$IDLE" =~ ^[0-9]+$ ]] || { echo "bench-std-net: --idle $IDLE: not a number" >&2; exit 1; }
    shift 2
fi
SECS=${1:-5}
ROUNDS=${2:-3}
ROWS=${BENCH_STD_ROWS:-http redis echo}
for row in $ROWS; do
    case $row in
        http | redis | echo | https) ;;
        *) echo "bench-std-net: BENCH_STD_ROWS: $row is none of http, redis, echo, https" >&2; exit 1 ;;
    esac
done
wants() { case " $ROWS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
export MTOOLS_SKIP_CHECK=1
. scripts/deps.sh

[ "$(id -u)" -eq 0 ] || { echo "bench-std-net: run as root (network namespaces)" >&2; exit 1; }
for tool in wrk redis-benchmark ip taskset mkfs.fat mcopy; do
    command -v "$tool" >/dev/null || { echo "bench-std-net: $tool is missing (scripts/deps.sh)" >&2; exit 1; }
done

cargo build --release -p tender >&2
# The whole workspace, whatever the rows: Cargo unifies features over
# what it builds, and std-http built alone gets a tokio without
# mini-redis's parking_lot (another program than the full run's; the
# blocking pool's handoffs then spin: docs/performance.md).
cargo build --release --manifest-path examples/std/Cargo.toml --target-dir target >&2
nabla_build_std_native >&2
# $BENCH_GUESTS: another directory of guest binaries (another branch's
# build), to compare builds under the same load.
GUESTS=${BENCH_GUESTS:-target/release}
NATIVE=target/native/release

work=$(mktemp -d)
CLIENT=nbstd-client-$$
NATIVE_NS=nbstd-native-$$
cleanup() {
    for ns in "$CLIENT" "$NATIVE_NS"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# The load generator for std-echo: a std program, compiled here.
cat > "$work/echo-load.rs" <<'RS'
//! echo-load ADDR rr CONNS SECS: 64-byte round trips on CONNS connections
//! for SECS seconds; echo-load ADDR bulk SECS [CC]: one connection
//! written (256 KiB writes) for SECS seconds from one thread and read
//! from another until the server's EOF, every byte checked to come back,
//! with congestion control CC (`TCP_CONGESTION`) if given; prints the
//! rate and the bytes echoed;
//! echo-load ADDR idle N: N
//! connections held open, sending nothing, until killed ("ready" once all
//! are connected).
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
unsafe extern "C" {
    fn setsockopt(fd: i32, level: i32, name: i32, value: *const u8, len: u32) -> i32;
}
/// Sets the socket's congestion control (IPPROTO_TCP, TCP_CONGESTION).
fn congestion(s: &TcpStream, cc: &str) {
    // SAFETY: the fd is the open socket `s`; the value is `cc`'s bytes.
    let r = unsafe { setsockopt(s.as_raw_fd(), 6, 13, cc.as_ptr(), cc.len() as u32) };
    if r != 0 {
        eprintln!("echo-load: congestion control {cc}: {}", std::io::Error::last_os_error());
        std::process::exit(1);
    }
}
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let addr = a[1].clone();
    if a[2] == "idle" {
        let n: usize = a[3].parse().unwrap();
        let held: Vec<TcpStream> = (0..n).map(|_| TcpStream::connect(&addr).unwrap()).collect();
        println!("ready {}", held.len());
        std::io::stdout().flush().unwrap();
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    if a[2] == "rr" {
        let (conns, secs): (usize, u64) = (a[3].parse().unwrap(), a[4].parse().unwrap());
        let end = Instant::now() + Duration::from_secs(secs);
        let t0 = Instant::now();
        let workers: Vec<_> = (0..conns).map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&addr).unwrap();
                s.set_nodelay(true).unwrap();
                let (msg, mut back) = ([7u8; 64], [0u8; 64]);
                let mut lat = Vec::new();
                while Instant::now() < end {
                    let t = Instant::now();
                    s.write_all(&msg).unwrap();
                    s.read_exact(&mut back).unwrap();
                    lat.push(t.elapsed().as_nanos() as u64);
                }
                lat
            })
        }).collect();
        let mut lat: Vec<u64> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
        let took = t0.elapsed().as_secs_f64();
        lat.sort_unstable();
        let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
        println!("rr {:.1} per_s p50_us {:.1} p99_us {:.1}", lat.len() as f64 / took, p(0.5), p(0.99));
    } else {
        let secs: u64 = a[3].parse().unwrap();
        let mut s = TcpStream::connect(&addr).unwrap();
        if let Some(cc) = a.get(4) {
            congestion(&s, cc);
        }
        let mut w = s.try_clone().unwrap();
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(secs);
        let writer = std::thread::spawn(move || {
            let chunk = vec![b'x'; 256 * 1024];
            let mut sent = 0usize;
            while Instant::now() < end {
                w.write_all(&chunk).unwrap();
                sent += chunk.len();
            }
            w.shutdown(std::net::Shutdown::Write).unwrap();
            sent
        });
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0usize;
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 { break; }
            got += n;
        }
        let took = t0.elapsed().as_secs_f64();
        let sent = writer.join().unwrap();
        assert_eq!(got, sent, "echoed bytes");
        println!("bulk {:.1} MiB_per_s {} bytes", got as f64 / 1048576.0 / took, got);
    }
}
RS
rustc -O --edition 2024 -o "$work/echo-load" "$work/echo-load.rs"

# The files: the same bytes for both servers (a FAT disk for the guest).
mkdir -p "$work/site"
head -c 1024 /dev/urandom > "$work/site/1k.bin"
head -c $((1 << 20)) /dev/urandom > "$work/site/1m.bin"
truncate -s 16M "$work/site.img"
mkfs.fat -F 16 --mbr=y -n SITE "$work/site.img" >/dev/null
# std-https's certificate (ECDSA P-256, signed by a CA of its own) and key,
# on the disk too.
if wants https; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
        -subj /CN=bench-ca -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=bench \
        -keyout "$work/key.pem" -out "$work/cert.csr" 2>/dev/null
    printf 'subjectAltName=IP:10.0.0.2,IP:10.0.1.2\n' > "$work/ext"
    openssl x509 -req -in "$work/cert.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
        -CAcreateserial -days 1 -extfile "$work/ext" -out "$work/cert.pem" 2>/dev/null
    mcopy -i "$work/site.img" "$work/cert.pem" "$work/key.pem" ::/
fi
mcopy -i "$work/site.img" "$work/site/1k.bin" "$work/site/1m.bin" ::/

# The namespaces and links.
ip netns add "$CLIENT"
ip netns add "$NATIVE_NS"
ip -n "$CLIENT" link set lo up
ip -n "$NATIVE_NS" link set lo up
ip -n "$CLIENT" tuntap add dev nbtap0 mode tap
ip -n "$CLIENT" addr add 10.0.0.1/24 dev nbtap0
ip -n "$CLIENT" link set nbtap0 up
ip -n "$CLIENT" link add nbveth0 type veth peer name nbveth1 netns "$NATIVE_NS"
ip -n "$CLIENT" addr add 10.0.1.1/24 dev nbveth0
ip -n "$NATIVE_NS" addr add 10.0.1.2/24 dev nbveth1
ip -n "$CLIENT" link set nbveth0 up
ip -n "$NATIVE_NS" link set nbveth1 up
GUEST_IP=10.0.0.2
NATIVE_IP=10.0.1.2
in_client() { ip netns exec "$CLIENT" "$@"; }
# The stream's congestion controls: the client namespace's default, and
# cubic (Linux's usual default) if that is another and the kernel has it.
STREAM_CCS=$(in_client cat /proc/sys/net/ipv4/tcp_congestion_control)
if [ "$STREAM_CCS" != cubic ]; then
    if grep -qw cubic /proc/sys/net/ipv4/tcp_available_congestion_control; then
        STREAM_CCS="$STREAM_CCS cubic"
    else
        echo "bench-std-net: no cubic in this kernel: the stream runs with $STREAM_CCS only" >&2
    fi
fi

SERVER_PID=
# start guest|native PROGRAM PORT [ARGS...]: starts the server, waits until
# it accepts connections on PORT.
start() {
    local side=$1 prog=$2 port=$3
    shift 3
    local ip
    if [ "$side" = guest ]; then
        ip=$GUEST_IP
        # $BENCH_TENDER_OPTS: more tender options, for comparisons (--clock syscall).
        # shellcheck disable=SC2206
        local opts=(--net service0=nbtap0 --env NET_SERVICE0_IPV4=10.0.0.2/24
            ${BENCH_TENDER_OPTS:-})
        # std-http runs with the default --mem (its tokio blocking pool
        # stays small); the others with room for their threads' stacks.
        if [ "$prog" = std-http ] || [ "$prog" = std-https ]; then
            opts+=(--block-ro "storage=$work/site.img")
            # With idle connections held, the default --mem runs out
            # (~100 connections: "memory allocation ... failed").
            [ -n "$IDLE" ] && opts+=(--mem 1024)
        else
            opts+=(--mem 1024)
        fi
        ip netns exec "$CLIENT" ${BENCH_TENDER_PIN-taskset -c 1} target/release/tender "${opts[@]}" "$GUESTS/$prog" "$@" \
            > "$work/$prog.$side.log" 2>&1 &
    else
        ip=$NATIVE_IP
        TOKIO_WORKER_THREADS=1 ip netns exec "$NATIVE_NS" taskset -c 1 "$NATIVE/$prog" "$@" \
            > "$work/$prog.$side.log" 2>&1 &
    fi
    SERVER_PID=$!
    for _ in $(seq 100); do
        if in_client bash -c "exec 3<>/dev/tcp/$ip/$port" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "bench-std-net: $prog ($side) does not accept connections on $ip:$port:" >&2
    cat "$work/$prog.$side.log" >&2
    exit 1
}
stop() {
    if [ -n "$IDLE_PID" ]; then
        kill "$IDLE_PID" 2>/dev/null || true
        wait "$IDLE_PID" 2>/dev/null || true
        IDLE_PID=
    fi
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}
IDLE_PID=
# hold_idle IP PORT: opens $IDLE idle connections to the server, held
# until stop.
hold_idle() {
    [ "${IDLE:-0}" -gt 0 ] || return 0
    in_client "$work/echo-load" "$1:$2" idle "$IDLE" > "$work/idle.out" 2>&1 &
    IDLE_PID=$!
    for _ in $(seq 600); do
        grep -q '^ready' "$work/idle.out" && return 0
        kill -0 "$IDLE_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench-std-net: $IDLE idle connections to $1:$2 failed:" >&2
    cat "$work/idle.out" >&2
    exit 1
}
ip_of() { if [ "$1" = guest ]; then echo $GUEST_IP; else echo $NATIVE_IP; fi; }
# Sides in the order of round $1: alternating which goes first.
order() { if [ $(($1 % 2)) -eq 0 ]; then echo guest native; else echo native guest; fi; }

# wrk's 99th percentile in ms, from --latency's distribution.
wrk_p99() { awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
    if (u == "us") v /= 1000; else if (u == "s") v *= 1000; printf "%.3f", v }'; }
wrk_rps() { awk '/^Requests\/sec:/ { print $2 }'; }
wrk_requests() { awk '/ requests in / { print $1 }'; }
# CPU time of process $1 so far (user + system), in clock ticks: the
# server's CPU per request, which the load of the machine moves much less
# than its rate.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# cpu_per TICKS COUNT SCALE FORMAT: TICKS clock ticks of CPU, in seconds
# times SCALE, per one of COUNT (nothing if COUNT is 0 or empty).
cpu_per() {
    awk -v c="$1" -v n="$2" -v s="$3" -v f="$4" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { if (n > 0) printf f, c / hz * s / n }'
}
wrk_errors() { grep -E "Socket errors|Non-2xx" || true; }

# In --idle mode: the 1 KiB GET only, and the rows name the idle connections.
FILES="1k 1m"
TAG=
if [ -n "$IDLE" ]; then
    FILES=1k
    TAG=", $IDLE idle"
fi

results="$work/results"
: > "$results"
# record ROW SIDE METRIC VALUE
record() { echo "$1|$2|$3|$4" >> "$results"; }

for round in $(seq "$ROUNDS"); do
    echo "round $round of $ROUNDS" >&2
    # std-http under wrk.
    wants http && for side in $(order "$round"); do
        if [ "$side" = guest ]; then
            start guest std-http 80              # the disk's / is the root
        else
            start native std-http 80 80 "$work/site"
        fi
        ip=$(ip_of "$side")
        hold_idle "$ip" 80
        for f in $FILES; do
            conns=32
            [ "$f" = 1m ] && conns=8
            cpu0=$(cpu_ticks "$SERVER_PID")
            out=$(in_client wrk -t 1 -c "$conns" -d "${SECS}s" --latency "http://$ip/$f.bin")
            cpu1=$(cpu_ticks "$SERVER_PID")
            errs=$(echo "$out" | wrk_errors)
            [ -n "$errs" ] && echo "bench-std-net: std-http $side $f: $errs" >&2
            record "std-http GET $f (wrk -c $conns)$TAG" "$side" rate "$(echo "$out" | wrk_rps)"
            record "std-http GET $f (wrk -c $conns)$TAG" "$side" p99 "$(echo "$out" | wrk_p99)"
            # µs of the server's CPU per request (the tender, or the native
            # program); g/n > 1 is the guest costlier here.
            record "std-http GET $f$TAG: server CPU µs/request" "$side" rate \
                "$(cpu_per $((cpu1 - cpu0)) "$(echo "$out" | wrk_requests)" 1e6 %.2f)"
        done
        stop
    done
    # std-https under wrk: kept-alive, and a handshake per request.
    wants https && for side in $(order "$round"); do
        [ -n "$IDLE" ] && break
        if [ "$side" = guest ]; then
            start guest std-https 443 443 /cert.pem /key.pem
        else
            start native std-https 443 443 "$work/cert.pem" "$work/key.pem" "$work/site"
        fi
        ip=$(ip_of "$side")
        for mode in keepalive close; do
            hdr=()
            row="std-https GET 1k (wrk -c 32)"
            if [ "$mode" = close ]; then
                hdr=(-H "Connection: close")
                row="std-https GET 1k, handshake each (wrk -c 32)"
            fi
            cpu0=$(cpu_ticks "$SERVER_PID")
            out=$(in_client wrk -t 1 -c 32 -d "${SECS}s" --latency "${hdr[@]}" "https://$ip/1k.bin")
            cpu1=$(cpu_ticks "$SERVER_PID")
            errs=$(echo "$out" | wrk_errors)
            [ -n "$errs" ] && echo "bench-std-net: std-https $side $mode: $errs" >&2
            record "$row" "$side" rate "$(echo "$out" | wrk_rps)"
            record "$row" "$side" p99 "$(echo "$out" | wrk_p99)"
            record "$row: server CPU µs/request" "$side" rate \
                "$(cpu_per $((cpu1 - cpu0)) "$(echo "$out" | wrk_requests)" 1e6 %.2f)"
        done
        stop
    done
    # mini-redis under redis-benchmark.
    wants redis && for side in $(order "$round"); do
        [ "${IDLE:-0}" -gt 200 ] && break
        start "$side" mini-redis-server 6379
        ip=$(ip_of "$side")
        hold_idle "$ip" 6379
        for p in 1 16; do
            out=$(in_client redis-benchmark -h "$ip" -t set,get -n $((p == 1 ? 50000 : 200000)) -c 50 \
                -P "$p" --csv 2>/dev/null)
            for t in SET GET; do
                line=$(echo "$out" | grep "^\"$t\"" | tr -d '"')
                record "mini-redis $t -P $p (redis-benchmark -c 50)$TAG" "$side" rate "$(echo "$line" | cut -d, -f2)"
                record "mini-redis $t -P $p (redis-benchmark -c 50)$TAG" "$side" p99 "$(echo "$line" | cut -d, -f7)"
            done
        done
        stop
    done
    # std-echo: round trips and a stream.
    wants echo && for side in $(order "$round"); do
        [ -n "$IDLE" ] && break
        start "$side" std-echo 7 7
        ip=$(ip_of "$side")
        out=$(in_client "$work/echo-load" "$ip:7" rr 16 "$SECS")
        record "std-echo 64 B round trips (16 connections)" "$side" rate "$(echo "$out" | awk '{print $2}')"
        record "std-echo 64 B round trips (16 connections)" "$side" p99 "$(echo "$out" | awk '{print $7}' | awk '{printf "%.3f", $1 / 1000}')"
        # The stream with the client's congestion control: the system's
        # default, and cubic when that is another (BBR paces, which costs
        # the client a timer per segment sent and leaves it the bound of
        # the stream; with cubic the server's CPU is: docs/performance.md,
        # "The stream: which side is the bound").
        for cc in $STREAM_CCS; do
            cpu0=$(cpu_ticks "$SERVER_PID")
            out=$(in_client ${BENCH_CLIENT_PIN-taskset -c 0} "$work/echo-load" "$ip:7" bulk "$SECS" "$cc")
            cpu1=$(cpu_ticks "$SERVER_PID")
            record "std-echo stream, $cc client (MiB/s)" "$side" rate "$(echo "$out" | awk '{print $2}')"
            # The server's CPU seconds per GiB echoed; g/n > 1 is the
            # guest costlier.
            record "std-echo stream, $cc client: server CPU s/GiB" "$side" rate \
                "$(cpu_per $((cpu1 - cpu0)) "$(echo "$out" | awk '{print $4}')" 1073741824 %.3f)"
        done
        stop
    done
done

# Medians, ratios.
median() { sort -g | awk '{a[NR] = $1} END { if (NR) print a[int((NR + 1) / 2)] }'; }
printf '%-48s %12s %12s %7s   %10s %10s\n' "row (median of $ROUNDS rounds, ${SECS} s runs)" guest native g/n "p99 guest" "p99 native"
cut -d'|' -f1 "$results" | awk '!seen[$0]++' | while read -r row; do
    get() { awk -F'|' -v r="$row" -v s="$1" -v m="$2" '$1 == r && $2 == s && $3 == m { print $4 }' "$results" | median; }
    g=$(get guest rate) n=$(get native rate) gp=$(get guest p99) np=$(get native p99)
    awk -v row="$row" -v g="$g" -v n="$n" -v gp="$gp" -v np="$np" 'BEGIN {
        r = (n > 0) ? sprintf("%.2f", g / n) : "-"
        if (gp == "") gp = "-"; else gp = gp " ms"
        if (np == "") np = "-"; else np = np " ms"
        printf "%-48s %12s %12s %7s   %10s %10s\n", row, g, n, r, gp, np
    }'
done
echo "rates: requests/s (wrk, redis-benchmark), round trips/s, MiB/s; g/n > 1: the guest is faster"
