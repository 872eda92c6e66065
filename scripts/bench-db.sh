#!/usr/bin/env bash
# Embedded databases, guest against native: examples/std's std-sqlite
# (rusqlite, bundled SQLite, rollback journal, synchronous=FULL: SQLite's
# defaults) and std-redb (redb 5, Durability::Immediate), each `bench ROWS`:
# ROWS inserts in transactions of 1,000, then 200 single-row transactions
# (each commit syncs), then a query mix (20,000 point lookups by key and 200
# range queries). The program times each phase itself and prints it on
# stderr.
#
# Three runs of the same source per round, in an order that rotates each
# round: the guest on a FAT disk image (a file on the host's disk, /tmp),
# the native build in a directory on the same host file system (ext4:
# its fsync reaches the same disk as the guest's fdatasync of the image),
# and the native build in a tmpfs directory (/dev/shm: fsync costs
# nothing). The script prints each round's ratios guest/native (rates; for
# the query mix, native time / guest time: above 1 the guest is faster)
# and their medians. Timings are noisy on a shared machine; only the
# ratios of one round, measured side by side, mean anything.
# Usage: scripts/bench-db.sh [ROUNDS] [ROWS]   (defaults 5, 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
ROWS=${2:-20000}

cargo build --release -p tender >&2
cargo build --release --manifest-path examples/std/Cargo.toml --target-dir target \
    -p std-sqlite -p std-redb >&2
cargo build --release --manifest-path examples/std/Cargo.toml --target-dir target/native \
    --no-default-features -p std-sqlite -p std-redb >&2

work=$(mktemp -d /tmp/bench-db.XXXXXX)
shm=$(mktemp -d /dev/shm/bench-db.XXXXXX)
trap 'rm -rf "$work" "$shm"' EXIT
truncate -s 256M "$work/disk.img"
mkfs.fat -F 32 --mbr=y -n BENCH "$work/disk.img" >/dev/null
mkdir "$work/ext4"

# One run: prints "INSERTS/s COMMITS/s QUERY_S".
run() {
    local what=$1 db=$2 err
    case $what in
        # A guest's stderr is the console too: the tender's stdout.
        guest) err=$(target/release/tender --block storage="$work/disk.img" \
            "target/release/$db" / bench "$ROWS" 2>&1) ;;
        ext4) err=$("target/native/release/$db" "$work/ext4" bench "$ROWS" 2>&1 >/dev/null) ;;
        tmpfs) err=$("target/native/release/$db" "$shm" bench "$ROWS" 2>&1 >/dev/null) ;;
    esac
    echo "$err" | sed -n 's/^bench: inserts \([0-9]*\)\/s .* single-row commits \([0-9]*\)\/s; query mix \([0-9.]*\) s.*/\1 \2 \3/p'
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for db in std-sqlite std-redb; do
    : > "$work/$db.ratios"
    echo "$db, $ROWS rows: guest / native (ext4 | tmpfs): inserts, single-row commits, query mix"
    for round in $(seq "$ROUNDS"); do
        order=(guest ext4 tmpfs)
        case $((round % 3)) in
            1) order=(ext4 tmpfs guest) ;;
            2) order=(tmpfs guest ext4) ;;
        esac
        declare -A got=()
        for what in "${order[@]}"; do
            got[$what]=$(run "$what" "$db")
        done
        read -r gi gc gq <<< "${got[guest]}"
        read -r ei ec eq <<< "${got[ext4]}"
        read -r ti tc tq <<< "${got[tmpfs]}"
        line=$(awk -v gi="$gi" -v gc="$gc" -v gq="$gq" -v ei="$ei" -v ec="$ec" -v eq="$eq" \
            -v ti="$ti" -v tc="$tc" -v tq="$tq" 'BEGIN {
                printf "%.2f %.2f %.2f %.2f %.2f %.2f", gi/ei, gc/ec, eq/gq, gi/ti, gc/tc, tq/gq }')
        echo "$line" >> "$work/$db.ratios"
        echo "  round $round: guest ${gi}/s ${gc}/s ${gq}s; ext4 ${ei}/s ${ec}/s ${eq}s; tmpfs ${ti}/s ${tc}/s ${tq}s; ratios $line"
        unset got
    done
    meds=""
    for col in 1 2 3 4 5 6; do
        meds="$meds $(awk -v c=$col '{print $c}' "$work/$db.ratios" | median)"
    done
    read -r m1 m2 m3 m4 m5 m6 <<< "$meds"
    echo "  median: vs ext4: inserts ${m1}x, commits ${m2}x, query mix ${m3}x; vs tmpfs: inserts ${m4}x, commits ${m5}x, query mix ${m6}x"
done
