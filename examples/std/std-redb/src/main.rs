//! redb (a pure-Rust embedded key-value store: copy-on-write B-trees in
//! one file) on a disk, run as a nabla guest unchanged, with the same
//! output as its native build run against a directory of the host.
//!
//! ```text
//! std-redb DIR check          a table and an index, thousands of rows in
//!                             transactions, an aborted one, queries,
//!                             close, reopen, verify, compact
//! std-redb DIR crash          commits rows, then fills a write transaction
//!                             past the cache, prints `in transaction` and
//!                             waits to be killed (SIGKILL)
//! std-redb DIR recover        after the kill: opens the database again
//!                             (redb repairs it) and verifies
//! std-redb DIR bench ROWS     inserts/s and a query mix (times on stderr)
//! tender --block storage=disk.img target/release/std-redb / check
//! ```

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use redb::{
    Builder, Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};

#[cfg(feature = "nabla")]
libos_std::app!(devices: ["storage": Block]);

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// id -> (group, value bytes).
const ITEMS: TableDefinition<u64, (u64, &[u8])> = TableDefinition::new("items");
/// key -> id.
const KEYS: TableDefinition<&str, u64> = TableDefinition::new("keys");

const ROWS: u64 = 20_000;
const BATCH: u64 = 1_000;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: std-redb DIR check | crash | recover | bench ROWS";
    let (Some(dir), Some(what)) = (args.first(), args.get(1)) else {
        return Err(usage.into());
    };
    let dir = Path::new(dir);
    match (what.as_str(), args.get(2)) {
        ("check", None) => check(dir),
        ("crash", None) => crash(dir),
        ("recover", None) => recover(dir),
        ("bench", Some(rows)) => bench(dir, rows.parse()?),
        _ => Err(usage.into()),
    }
}

/// A small deterministic generator (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn key(id: u64) -> String {
    format!("key-{:08}", id.wrapping_mul(7919) % 1_000_003)
}

/// Inserts rows `from..to` in transactions of [`BATCH`].
fn insert(db: &Database, from: u64, to: u64, seed: u64, len: usize) -> Result<()> {
    let mut rng = Rng(seed);
    let mut i = from;
    while i < to {
        let tx = db.begin_write()?;
        {
            let mut items = tx.open_table(ITEMS)?;
            let mut keys = tx.open_table(KEYS)?;
            for id in i..to.min(i + BATCH) {
                let n = len + (rng.next() % 200) as usize;
                items.insert(id, (rng.next() % 100, rng.bytes(n).as_slice()))?;
                keys.insert(key(id).as_str(), id)?;
            }
        }
        tx.commit()?;
        i += BATCH;
    }
    Ok(())
}

/// The rows' digest (FNV-1a), in the order of their ids.
fn digest(db: &Database) -> Result<String> {
    let tx = db.begin_read()?;
    let items = tx.open_table(ITEMS)?;
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut add = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    };
    let mut n = 0;
    for row in items.iter()? {
        let (id, v) = row?;
        let (grp, val) = v.value();
        add(&id.value().to_le_bytes());
        add(&grp.to_le_bytes());
        add(val);
        n += 1;
    }
    Ok(format!("{n} rows ({} keys), digest {h:016x}", tx.open_table(KEYS)?.len()?))
}

fn queries(db: &Database) -> Result<Vec<String>> {
    let tx = db.begin_read()?;
    let items = tx.open_table(ITEMS)?;
    let keys = tx.open_table(KEYS)?;
    let mut out = Vec::new();
    let (mut sum, mut bytes) = (0u64, 0usize);
    for row in items.iter()? {
        let (_, v) = row?;
        sum += v.value().0;
        bytes += v.value().1.len();
    }
    out.push(format!("sum(grp) {sum}, bytes {bytes}"));
    let mut found = 0;
    for id in (0..ROWS).step_by(37) {
        found += u64::from(keys.get(key(id).as_str())?.is_some_and(|v| v.value() == id));
    }
    out.push(format!("lookups by key: {found} of {}", ROWS.div_ceil(37)));
    let range = items
        .range(5_001..15_000)?
        .filter(|r| r.as_ref().is_ok_and(|(_, v)| v.value().0 < 10))
        .count();
    out.push(format!("range: {range}"));
    let last = items.last()?.map(|(k, _)| k.value());
    out.push(format!("last id: {last:?}"));
    Ok(out)
}

/// Which of the files exist.
fn present(dir: &Path, name: &str) -> String {
    if dir.join(name).exists() { format!("{name} exists") } else { format!("no {name}") }
}

fn check(dir: &Path) -> Result<()> {
    let path = dir.join("check.redb");
    let _ = fs::remove_file(&path);
    let mut out = Vec::new();
    {
        let db = Database::create(&path)?;
        insert(&db, 0, ROWS, 42, 16)?;
        out.push(format!("inserted: {}", digest(&db)?));
        // An aborted transaction leaves nothing.
        let tx = db.begin_write()?;
        {
            let mut items = tx.open_table(ITEMS)?;
            items.retain(|_, _| false)?;
        }
        tx.abort()?;
        out.push(format!("after an abort: {}", digest(&db)?));
        let tx = db.begin_write()?;
        let mut gone = 0;
        {
            let mut items = tx.open_table(ITEMS)?;
            let mut keys = tx.open_table(KEYS)?;
            for id in (0..ROWS).step_by(97) {
                items.remove(id)?;
                keys.remove(key(id).as_str())?;
                gone += 1;
            }
            for id in (0..ROWS).step_by(10) {
                let v = items.get(id)?.map(|v| (v.value().0, v.value().1.to_vec()));
                if let Some((grp, val)) = v {
                    items.insert(id, ((grp + 1) % 100, val.as_slice()))?;
                }
            }
        }
        tx.commit()?;
        out.push(format!("deleted {gone}: {}", digest(&db)?));
        out.extend(queries(&db)?);
    }
    out.push(format!("closed: {}", present(dir, "check.redb")));
    let q = out[3..7].to_vec();
    {
        let mut db = Database::open(&path)?;
        out.push(format!("reopened: {}", digest(&db)?));
        out.push(format!("integrity: {}", db.check_integrity()?));
        db.compact(redb::CompactionMode::default())?;
        out.push(format!("compacted: {}", digest(&db)?));
        let same = queries(&db)? == q;
        out.push(format!("queries after reopening: {}", if same { "same" } else { "DIFFERENT" }));
    }
    out.push(format!("closed: {}", present(dir, "check.redb")));
    for line in out {
        println!("redb: {line}");
    }
    Ok(())
}

/// Commits rows, then fills a write transaction past the cache and waits
/// for the kill.
fn crash(dir: &Path) -> Result<()> {
    let path = dir.join("crash.redb");
    let _ = fs::remove_file(&path);
    // A small cache: the transaction's pages go to the file before it
    // commits.
    let db = Builder::new().set_cache_size(256 * 1024).create(&path)?;
    insert(&db, 0, 5_000, 7, 16)?;
    println!("redb: committed: {}", digest(&db)?);
    let before = fs::read(&path)?;
    let mut tx = db.begin_write()?;
    tx.set_durability(Durability::Immediate)?;
    {
        let mut items = tx.open_table(ITEMS)?;
        let mut rng = Rng(99);
        for id in 0..9_000u64 {
            items.insert(id, (1_000, rng.bytes(600).as_slice()))?;
        }
    }
    let after = fs::read(&path)?;
    println!("redb: uncommitted pages on the disk: {}", before != after);
    println!("in transaction");
    std::io::stdout().flush()?;
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn recover(dir: &Path) -> Result<()> {
    let path = dir.join("crash.redb");
    println!("redb: left: {}", present(dir, "crash.redb"));
    let mut db = Database::open(&path)?;
    println!("redb: recovered: {}", digest(&db)?);
    println!("redb: integrity: {}", db.check_integrity()?);
    let tx = db.begin_read()?;
    let items = tx.open_table(ITEMS)?;
    let mut killed = 0;
    for row in items.iter()? {
        killed += u64::from(row?.1.value().0 >= 1_000);
    }
    println!("redb: rows of the killed transaction: {killed}");
    Ok(())
}

/// Inserts/s and a query mix; the times on stderr, for the benchmark.
fn bench(dir: &Path, rows: u64) -> Result<()> {
    let path = dir.join("bench.redb");
    let _ = fs::remove_file(&path);
    let db = Database::create(&path)?;
    let t = Instant::now();
    insert(&db, 0, rows, 5, 16)?;
    let insert_s = t.elapsed().as_secs_f64();
    // Single-row transactions: each commit syncs the file.
    let t = Instant::now();
    let commits = 200;
    for id in rows..rows + commits {
        let tx = db.begin_write()?;
        tx.open_table(ITEMS)?.insert(id, (1, [0u8].as_slice()))?;
        tx.commit()?;
    }
    let commit_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let lookups = 20_000;
    let mut found = 0u64;
    {
        let tx = db.begin_read()?;
        let keys = tx.open_table(KEYS)?;
        let items = tx.open_table(ITEMS)?;
        for i in 0..lookups {
            let id = i * 7 % rows;
            if let Some(v) = keys.get(key(id).as_str())? {
                found += u64::from(items.get(v.value())?.is_some());
            }
        }
        for g in 0..200u64 {
            let from = g * rows / 200;
            let _ = items.range(from..from + 100)?.count();
        }
    }
    let query_s = t.elapsed().as_secs_f64();
    println!("bench: {rows} rows, {found} of {lookups} lookups found");
    eprintln!(
        "bench: inserts {:.0}/s ({rows} in {insert_s:.3} s, {BATCH} a transaction); single-row commits {:.0}/s; query mix {query_s:.3} s ({lookups} lookups, 200 range scans)",
        rows as f64 / insert_s,
        commits as f64 / commit_s
    );
    Ok(())
}
