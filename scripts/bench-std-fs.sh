#!/usr/bin/env bash
# std::fs::read of a 64 MiB file: a std guest (tests/std/src/bin/std-fs.rs,
# `bench PATH`) reading it from a FAT disk through libos-std and libos's FAT,
# against the same std program compiled natively reading the same bytes from
# a host file. Both files are in the host's page cache (read once before).
# Each side reads ROUNDS times in its own process and reports the time of
# std::fs::read alone; the script prints the medians and their ratio.
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
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let t = std::time::Instant::now();
    let data = std::fs::read(&path).unwrap();
    let ns = t.elapsed().as_nanos();
    let sum = data.iter().fold(0u64, |s, &b| s.wrapping_add(u64::from(b)));
    println!("bench read {} bytes in {ns} ns (sum {sum})", data.len());
}
RS
rustc -O --edition 2024 -o "$work/native" "$work/native.rs"

cat "$work/BIG.BIN" "$work/disk.img" > /dev/null  # into the page cache

ns_of() { sed -n 's/^bench read .* in \([0-9]*\) ns.*/\1/p'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
guest=() native=()
for _ in $(seq "$ROUNDS"); do
    native+=("$("$work/native" "$work/BIG.BIN" | ns_of)")
    guest+=("$(target/release/tender --mem 256 --block-ro storage="$work/disk.img" \
        target/release/std-fs bench /BIG.BIN | ns_of)")
done
if [ -z "${guest[*]// /}" ] || [ -z "${native[*]// /}" ]; then
    echo "bench-std-fs: a run printed no time" >&2
    exit 1
fi
g=$(printf '%s\n' "${guest[@]}" | median)
n=$(printf '%s\n' "${native[@]}" | median)
awk -v g="$g" -v n="$n" -v r="$ROUNDS" 'BEGIN {
    printf "std::fs::read of 64 MiB, median of %d runs\n", r
    printf "  native (host file, page cache):        %8.1f ms  %7.0f MiB/s\n", n / 1e6, 64e9 / n
    printf "  std guest (FAT disk via libos-std):    %8.1f ms  %7.0f MiB/s\n", g / 1e6, 64e9 / g
    printf "  guest / native time: %.2fx\n", g / n
}'
