#!/usr/bin/env bash
# std::fs::read of a 64 MiB file: a std guest (tests/std/src/bin/std-fs.rs,
# `bench PATH`) reading it from a FAT disk through libos-std and libos's FAT,
# against the same std program compiled natively reading the same bytes from
# a host file. Both files are in the host's page cache (read once before).
# Each side reads ROUNDS times in its own process and reports the time of
# std::fs::read alone, then of reading the file again into the same buffer
# (the copy without the page faults of a fresh 64 MiB allocation); the
# script prints the medians and their ratios.
# Usage: scripts/bench-std-fs.sh [ROUNDS]   (default 7)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-7}
export MTOOLS_SKIP_CHECK=1

cargo build --release -p tender >&2
cargo build --release --manifest-path tests/std/Cargo.toml --target-dir target --bin std-fs >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c $((64 << 20)) /dev/urandom > "$work/BIG.BIN"
truncate -s 128M "$work/disk.img"
mkfs.fat -F 32 --mbr=y -n BENCH "$work/disk.img" >/dev/null
mcopy -i "$work/disk.img" "$work/BIG.BIN" ::/BIG.BIN

# The native peer: the guest's bench function, as a host program.
cat > "$work/native.rs" <<'RS'
use std::io::Read;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let t = std::time::Instant::now();
    let data = std::fs::read(&path).unwrap();
    let ns = t.elapsed().as_nanos();
    let sum = data.iter().fold(0u64, |s, &b| s.wrapping_add(u64::from(b)));
    println!("bench read {} bytes in {ns} ns (sum {sum})", data.len());
    let mut buf = data;
    let t = std::time::Instant::now();
    std::fs::File::open(&path).unwrap().read_exact(&mut buf).unwrap();
    let ns = t.elapsed().as_nanos();
    let sum = buf.iter().fold(0u64, |s, &b| s.wrapping_add(u64::from(b)));
    println!("bench reread {} bytes in {ns} ns (sum {sum})", buf.len());
}
RS
rustc -O --edition 2024 -o "$work/native" "$work/native.rs"

cat "$work/BIG.BIN" "$work/disk.img" > /dev/null  # into the page cache

ns_of() { sed -n "s/^bench $1 .* in \([0-9]*\) ns.*/\1/p"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: > "$work/native.out"
: > "$work/guest.out"
for _ in $(seq "$ROUNDS"); do
    "$work/native" "$work/BIG.BIN" >> "$work/native.out"
    target/release/tender --mem 256 --block-ro storage="$work/disk.img" \
        target/release/std-fs bench /BIG.BIN >> "$work/guest.out"
done
# Both sides must have read the same bytes.
sums() { sed -n 's/.*(sum \([0-9]*\))/\1/p' | sort -u; }
if [ "$(sums < "$work/guest.out")" != "$(sums < "$work/native.out")" ]; then
    echo "bench-std-fs: the guest read other bytes than the native program" >&2
    exit 1
fi
for what in read reread; do
    g=$(ns_of "$what" < "$work/guest.out" | median)
    n=$(ns_of "$what" < "$work/native.out" | median)
    if [ -z "$g" ] || [ -z "$n" ]; then
        echo "bench-std-fs: no time for $what (guest: $(cat "$work/guest.out"))" >&2
        exit 1
    fi
    awk -v g="$g" -v n="$n" -v r="$ROUNDS" -v what="$what" 'BEGIN {
        if (what == "read") printf "std::fs::read of 64 MiB into a new Vec, median of %d runs\n", r
        else printf "File::read_exact of the same 64 MiB into that Vec again (no page faults)\n"
        printf "  native (host file, page cache):      %8.1f ms  %6.0f MiB/s\n", n / 1e6, 64e9 / n
        printf "  std guest (FAT disk via libos-std):  %8.1f ms  %6.0f MiB/s\n", g / 1e6, 64e9 / g
        printf "  guest / native time: %.2fx\n", g / n
    }'
done
