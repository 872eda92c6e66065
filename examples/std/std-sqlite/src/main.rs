//! SQLite (rusqlite with its bundled C source) on a disk: what a service
//! that embeds a database does, run as a nabla guest unchanged, with the
//! same output as its native build run against a directory of the host.
//!
//! ```text
//! std-sqlite DIR check            tables, thousands of rows in transactions,
//!                                 queries, close, reopen, verify; in
//!                                 rollback-journal (DELETE) and WAL mode
//! std-sqlite DIR crash MODE       commits rows, then starts a transaction that
//!                                 reaches the disk, prints `in transaction`
//!                                 and waits to be killed (SIGKILL)
//! std-sqlite DIR recover MODE     after the kill: opens the database again
//!                                 (SQLite rolls the journal back, or ignores
//!                                 the WAL's uncommitted frames) and verifies
//! std-sqlite DIR bench ROWS       inserts/s and a query mix (times on stderr)
//! tender --block storage=disk.img target/release/std-sqlite / check
//! ```
//!
//! MODE is `delete` or `wal`. Every line on stdout is the same for every
//! run of the same arguments, on any file system: counts, sums and
//! digests of the rows, and which of the database's files exist.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, params};

#[cfg(feature = "nabla")]
libos_std::app!(devices: ["storage": Block]);

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The rows of the check.
const ROWS: u64 = 20_000;
/// Rows per transaction.
const BATCH: u64 = 1_000;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: std-sqlite DIR check | crash MODE | recover MODE | bench ROWS";
    let (Some(dir), Some(what)) = (args.first(), args.get(1)) else {
        return Err(usage.into());
    };
    let dir = Path::new(dir);
    match (what.as_str(), args.get(2).map(String::as_str)) {
        ("check", None) => {
            check(dir, "delete")?;
            check(dir, "wal")
        }
        ("crash", Some(mode @ ("delete" | "wal"))) => crash(dir, mode),
        ("recover", Some(mode @ ("delete" | "wal"))) => recover(dir, mode),
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

/// FNV-1a, folded over whatever the rows hold.
struct Digest(u64);

impl Digest {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

/// The database `NAME.db` in `dir`, and its journal, WAL and shared-memory
/// files.
fn files(dir: &Path, name: &str) -> [PathBuf; 4] {
    ["", "-journal", "-wal", "-shm"].map(|s| dir.join(format!("{name}.db{s}")))
}

/// Removes what a previous run left of `NAME.db`.
fn remove(dir: &Path, name: &str) -> Result<()> {
    for f in files(dir, name) {
        match fs::remove_file(&f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}

/// Which of `NAME.db`'s files exist, as a line.
fn present(dir: &Path, name: &str) -> String {
    let names: Vec<String> = files(dir, name)
        .iter()
        .filter(|f| f.exists())
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.join(" ")
}

fn open(dir: &Path, name: &str) -> Result<Connection> {
    Ok(Connection::open(dir.join(format!("{name}.db")))?)
}

fn schema(db: &Connection) -> Result<()> {
    db.execute_batch(
        "CREATE TABLE grp_name (grp INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE item (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,
                            grp INTEGER NOT NULL, val BLOB NOT NULL);
         CREATE INDEX item_grp ON item (grp);",
    )?;
    let tx = db.unchecked_transaction()?;
    for g in 0..100 {
        tx.execute("INSERT INTO grp_name VALUES (?1, ?2)", params![g, format!("group {g}")])?;
    }
    tx.commit()?;
    Ok(())
}

/// Inserts rows `from..to` in transactions of [`BATCH`].
fn insert(db: &mut Connection, from: u64, to: u64, seed: u64) -> Result<()> {
    let mut rng = Rng(seed);
    let mut i = from;
    while i < to {
        let tx = db.transaction()?;
        {
            let mut st =
                tx.prepare_cached("INSERT INTO item (id, key, grp, val) VALUES (?1, ?2, ?3, ?4)")?;
            for id in i..to.min(i + BATCH) {
                let len = 16 + (rng.next() % 200) as usize;
                let key = format!("key-{:08}", id.wrapping_mul(7919) % 1_000_003);
                st.execute(params![id as i64, key, (rng.next() % 100) as i64, rng.bytes(len)])?;
            }
        }
        tx.commit()?;
        i += BATCH;
    }
    Ok(())
}

/// The rows' digest, in the order of their ids.
fn digest(db: &Connection) -> Result<String> {
    let mut d = Digest::new();
    let mut st = db.prepare("SELECT id, key, grp, val FROM item ORDER BY id")?;
    let mut rows = st.query([])?;
    let mut n = 0u64;
    while let Some(r) = rows.next()? {
        d.add(&r.get::<_, i64>(0)?.to_le_bytes());
        d.add(r.get_ref(1)?.as_str()?.as_bytes());
        d.add(&r.get::<_, i64>(2)?.to_le_bytes());
        d.add(r.get_ref(3)?.as_blob()?);
        n += 1;
    }
    Ok(format!("{n} rows, digest {:016x}", d.0))
}

fn integrity(db: &Connection) -> Result<String> {
    Ok(db.query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
}

/// The queries of the check, one line each.
fn queries(db: &Connection, out: &mut Vec<String>) -> Result<()> {
    let (n, sum, bytes): (i64, i64, f64) =
        db.query_row("SELECT count(*), sum(grp), total(length(val)) FROM item", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    out.push(format!("count {n}, sum(grp) {sum}, bytes {bytes}"));
    let mut st = db.prepare(
        "SELECT g.name, count(*) AS c FROM item i JOIN grp_name g ON g.grp = i.grp
         GROUP BY i.grp ORDER BY c DESC, i.grp LIMIT 3",
    )?;
    let top: Vec<String> = st
        .query_map([], |r| Ok(format!("{}={}", r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<std::result::Result<_, _>>()?;
    out.push(format!("largest groups: {}", top.join(", ")));
    let mut found = 0;
    for id in (0..ROWS).step_by(37) {
        let key = format!("key-{:08}", id.wrapping_mul(7919) % 1_000_003);
        let hit: Option<i64> =
            db.query_row("SELECT id FROM item WHERE key = ?1", [key], |r| r.get(0)).optional()?;
        found += u64::from(hit == Some(id as i64));
    }
    out.push(format!("lookups by key: {found} of {}", ROWS.div_ceil(37)));
    let range: i64 = db.query_row(
        "SELECT count(*) FROM item WHERE grp BETWEEN 10 AND 19 AND id > 5000",
        [],
        |r| r.get(0),
    )?;
    out.push(format!("range: {range}"));
    Ok(())
}

/// The whole check in journal mode `mode`.
fn check(dir: &Path, mode: &str) -> Result<()> {
    let name = format!("check-{mode}");
    remove(dir, &name)?;
    let mut out = Vec::new();
    {
        let mut db = open(dir, &name)?;
        let m: String = db.query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| r.get(0))?;
        out.push(format!("journal mode: {m}"));
        schema(&db)?;
        insert(&mut db, 0, ROWS, 42)?;
        out.push(format!("inserted: {}", digest(&db)?));
        // A transaction rolled back leaves nothing.
        let tx = db.transaction()?;
        tx.execute("DELETE FROM item", [])?;
        tx.rollback()?;
        out.push(format!("after a rollback: {}", digest(&db)?));
        db.execute("UPDATE item SET grp = (grp + 1) % 100 WHERE id % 10 = 0", [])?;
        let gone = db.execute("DELETE FROM item WHERE id % 97 = 0", [])?;
        out.push(format!("deleted {gone}: {}", digest(&db)?));
        queries(&db, &mut out)?;
        out.push(format!("integrity: {}", integrity(&db)?));
        db.close().map_err(|(_, e)| e)?;
    }
    out.push(format!("closed: {}", present(dir, &name)));
    {
        let db = open(dir, &name)?;
        let m: String = db.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        out.push(format!("reopened: journal mode {m}, {}", digest(&db)?));
        // VACUUM rebuilds the database through a temporary file.
        db.execute_batch("VACUUM")?;
        out.push(format!("vacuumed: {}, integrity {}", digest(&db)?, integrity(&db)?));
        let mut q = Vec::new();
        queries(&db, &mut q)?;
        out.push(format!(
            "queries after reopening: {}",
            if q == out[4..8] { "same" } else { "DIFFERENT" }
        ));
        db.close().map_err(|(_, e)| e)?;
    }
    out.push(format!("closed: {}", present(dir, &name)));
    for line in out {
        println!("{mode}: {line}");
    }
    Ok(())
}

/// Commits rows, then leaves a transaction half done on the disk and
/// waits for the kill.
fn crash(dir: &Path, mode: &str) -> Result<()> {
    let name = format!("crash-{mode}");
    remove(dir, &name)?;
    let mut db = open(dir, &name)?;
    db.query_row(&format!("PRAGMA journal_mode = {mode}"), [], |_| Ok(()))?;
    // WAL: committed transactions stay in the WAL (no checkpoint), so
    // that recovery must replay them.
    db.execute_batch("PRAGMA wal_autocheckpoint = 0")?;
    schema(&db)?;
    insert(&mut db, 0, 5_000, 7)?;
    db.execute("UPDATE item SET grp = grp + 100 WHERE id % 3 = 0", [])?;
    println!("{mode}: committed: {}", digest(&db)?);
    let watched = if mode == "wal" { format!("{name}.db-wal") } else { format!("{name}.db") };
    let before = fs::read(dir.join(&watched))?;
    // A small cache, so that the transaction's pages spill to the disk
    // (the database file, after the journal; or the WAL) before it ends.
    db.execute_batch("PRAGMA cache_size = -64; BEGIN")?;
    db.execute("UPDATE item SET val = val || val, grp = -grp", [])?;
    insert_in_open_tx(&db, 5_000, 9_000)?;
    let after = fs::read(dir.join(&watched))?;
    println!("{mode}: uncommitted pages on the disk: {}", before != after);
    println!("{mode}: files: {}", present(dir, &name));
    println!("in transaction");
    std::io::stdout().flush()?;
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn insert_in_open_tx(db: &Connection, from: u64, to: u64) -> Result<()> {
    let mut rng = Rng(99);
    let mut st = db.prepare("INSERT INTO item (id, key, grp, val) VALUES (?1, ?2, ?3, ?4)")?;
    for id in from..to {
        st.execute(params![id as i64, format!("new-{id}"), 0, rng.bytes(300)])?;
    }
    Ok(())
}

/// Opens the database a crash left and verifies that it holds what was
/// committed.
fn recover(dir: &Path, mode: &str) -> Result<()> {
    let name = format!("crash-{mode}");
    println!("{mode}: left: {}", present(dir, &name));
    let db = open(dir, &name)?;
    println!("{mode}: recovered: {}", digest(&db)?);
    println!("{mode}: integrity: {}", integrity(&db)?);
    let negative: i64 =
        db.query_row("SELECT count(*) FROM item WHERE grp < 0 OR id >= 5000", [], |r| r.get(0))?;
    println!("{mode}: rows of the killed transaction: {negative}");
    db.close().map_err(|(_, e)| e)?;
    println!("{mode}: closed: {}", present(dir, &name));
    Ok(())
}

/// Inserts/s and a query mix; the times on stderr, for the benchmark.
fn bench(dir: &Path, rows: u64) -> Result<()> {
    remove(dir, "bench")?;
    let mut db = open(dir, "bench")?;
    schema(&db)?;
    let t = Instant::now();
    insert(&mut db, 0, rows, 5)?;
    let insert_s = t.elapsed().as_secs_f64();
    // Single-row transactions: each commit syncs the journal and the file.
    let t = Instant::now();
    let commits = 200;
    for id in rows..rows + commits {
        db.execute(
            "INSERT INTO item (id, key, grp, val) VALUES (?1, ?2, 1, x'00')",
            params![id as i64, format!("one-{id}")],
        )?;
    }
    let commit_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut found = 0u64;
    let lookups = 20_000;
    {
        let mut st = db.prepare_cached("SELECT grp FROM item WHERE key = ?1")?;
        for i in 0..lookups {
            let id = i * 7 % rows;
            let key = format!("key-{:08}", id.wrapping_mul(7919) % 1_000_003);
            found += u64::from(st.query_row([key], |r| r.get::<_, i64>(0)).optional()?.is_some());
        }
        let mut st =
            db.prepare_cached("SELECT count(*), total(length(val)) FROM item WHERE grp = ?1")?;
        for g in 0..200 {
            st.query_row([g % 100], |r| r.get::<_, i64>(0))?;
        }
        db.query_row(
            "SELECT grp, count(*) FROM item GROUP BY grp ORDER BY 2 DESC LIMIT 1",
            [],
            |r| r.get::<_, i64>(0),
        )?;
    }
    let query_s = t.elapsed().as_secs_f64();
    println!("bench: {rows} rows, {found} of {lookups} lookups found, {}", integrity(&db)?);
    eprintln!(
        "bench: inserts {:.0}/s ({rows} in {insert_s:.3} s, {BATCH} a transaction); single-row commits {:.0}/s; query mix {query_s:.3} s ({lookups} lookups, 200 range aggregates, 1 group by)",
        rows as f64 / insert_s,
        commits as f64 / commit_s
    );
    Ok(())
}
