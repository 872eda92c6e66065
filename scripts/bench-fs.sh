#!/usr/bin/env bash
# The FAT file system against mtools, in one run: a std guest
# (tests/std/src/bin/std-fat-ops.rs, std::fs over libos-std and libos's FAT)
# and mtools on the host each, on a fresh 1 GiB FAT32 image of their own:
#   1. create N small files (1 KiB, default 10,000) in one directory,
#   2. read them back (the guest compares them in memory; mcopy writes
#      them to a host directory),
#   3. delete them,
#   4. write one MIB MiB file (default 256) sequentially, made durable at
#      the end (the guest's sync_all is fdatasync; mcopy is followed by
#      `sync` of the image, an fsync),
#   5. read it back sequentially (the guest checks it; mtype to /dev/null).
# Each step is one process (the tender with its guest, or one mtools
# command), timed from outside (wall clock, start-up and mount included);
# the guest's own time for the step is printed too. Both images live in the
# page cache. The script prints each time and the ratio guest / mtools,
# then checks both images with fsck.fat -n.
# Usage: scripts/bench-fs.sh [N] [MIB]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
MIB=${2:-256}
export MTOOLS_SKIP_CHECK=1

cargo build --release -p tender >&2
cargo build --release --manifest-path tests/std/Cargo.toml --target-dir target --bin std-fat-ops >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkimg() {
    truncate -s 1G "$1"
    mkfs.fat -F 32 "$1" >/dev/null
}
now() { date +%s%N; }
guest() {
    target/release/tender --mem 256 --block storage="$work/guest.img" \
        target/release/std-fat-ops "$@" > "$work/guest.out"
    if grep -q '^err ' "$work/guest.out"; then
        echo "bench-fs: the guest failed: $(grep '^err ' "$work/guest.out")" >&2
        exit 1
    fi
    sed -n 's/^time \([a-z]*\) \([0-9]*\)$/  (in the guest: \1 \2 ns)/p' "$work/guest.out" >&2
}
declare -A G M

# The files mtools copies in: the bytes the guest writes (std-fat-ops'
# pattern for seed 7, 1 KiB), made before any timing.
mkdir "$work/files" "$work/back"
python3 - "$work/files" "$N" <<'PY'
import sys
out, n = sys.argv[1], int(sys.argv[2])
x = (7 * 0x9e3779b97f4a7c15 | 1) & (2**64 - 1)
data = bytearray()
for _ in range(1024):
    x ^= (x << 13) & (2**64 - 1); x ^= x >> 7; x ^= (x << 17) & (2**64 - 1)
    data.append(x & 0xff)
for i in range(n):
    with open(f"{out}/f{i:05}.txt", "wb") as f:
        f.write(data)
PY
head -c $((MIB << 20)) /dev/urandom > "$work/big.bin"

mkimg "$work/guest.img"
mkimg "$work/mtools.img"
cat "$work/guest.img" "$work/mtools.img" "$work/big.bin" > /dev/null

echo "guest (std::fs in a std guest, libos's FAT):" >&2
t=$(now); guest mkdir /d many /d "$N" 1024; G[create]=$(( $(now) - t ))
t=$(now); guest readmany /d "$N" 1024; G[read]=$(( $(now) - t ))
t=$(now); guest rmmany /d "$N"; G[delete]=$(( $(now) - t ))
t=$(now); guest seqwrite /big.bin "$MIB"; G[write]=$(( $(now) - t ))
t=$(now); guest seqread /big.bin; G[readbig]=$(( $(now) - t ))

echo "mtools:" >&2
t=$(now)
mmd -i "$work/mtools.img" ::/d
(cd "$work/files" && mcopy -i "$work/mtools.img" f*.txt ::/d/)
M[create]=$(( $(now) - t ))
t=$(now); mcopy -i "$work/mtools.img" '::/d/*' "$work/back/"; M[read]=$(( $(now) - t ))
cmp "$work/files/f00000.txt" "$work/back/f00000.txt"
t=$(now); mdel -i "$work/mtools.img" '::/d/*'; M[delete]=$(( $(now) - t ))
t=$(now)
mcopy -i "$work/mtools.img" "$work/big.bin" ::/big.bin
sync "$work/mtools.img"
M[write]=$(( $(now) - t ))
t=$(now); mtype -i "$work/mtools.img" ::/big.bin > /dev/null; M[readbig]=$(( $(now) - t ))

fsck.fat -n "$work/guest.img" >/dev/null
fsck.fat -n "$work/mtools.img" >/dev/null

printf '%-44s %12s %12s %8s\n' "step" "guest ms" "mtools ms" "ratio"
for step in create read delete write readbig; do
    case $step in
        create) what="create $N files of 1 KiB" ;;
        read) what="read them back" ;;
        delete) what="delete them" ;;
        write) what="write $MIB MiB sequentially (+ sync)" ;;
        readbig) what="read $MIB MiB sequentially" ;;
    esac
    awk -v w="$what" -v g="${G[$step]}" -v m="${M[$step]}" 'BEGIN {
        printf "%-44s %12.1f %12.1f %7.2fx\n", w, g / 1e6, m / 1e6, g / m
    }'
done
echo "(ratio: guest time / mtools time; below 1, the guest is faster)"
