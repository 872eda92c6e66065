//! Writes, renames and deletes files under `/data` of the disk `storage`
//! in a loop until it is killed (tests/suite/fat_crash.rs kills it with
//! SIGKILL at random times), printing on the console what is durable.
//! Arguments: `ROUND SEED [OPS]` (stop after OPS operations; forever by
//! default).
//!
//! Every file it names is written whole to a `.part` file, synced
//! (`sync_all`), renamed to its name and the directory synced, and only
//! then logged. The log, one line each, after the call it names returned:
//!
//! * `flushed NAME LEN SEED`: NAME holds `pattern(LEN, SEED)`, durably;
//! * `replacing NAME LEN SEED` (before): NAME holds its old or new bytes;
//! * `deleting NAME` (before), `deleted NAME` (after the directory sync);
//! * `renaming OLD NEW` (before), `renamed OLD NEW` (after the sync).
//!
//! Besides, it appends to and truncates `noise.part` without syncing, and
//! makes and removes small directory trees, so that a kill also finds
//! unsynced writes and directories half made.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;

libos_std::app!(devices: ["storage": Block]);

#[path = "../pattern.rs"]
mod pattern;
use pattern::pattern;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const DIR: &str = "/data";

/// Makes the directory's entries durable (what Linux needs for a rename).
fn sync_dir() -> std::io::Result<()> {
    File::open(DIR)?.sync_all()
}

/// Writes `pattern(len, seed)` to a fresh `.part` file in pieces of random
/// sizes, syncs it and returns its path.
fn write_part(rng: &mut Rng, k: u64, len: usize, seed: u64) -> std::io::Result<String> {
    let part = format!("{DIR}/tmp-{k}.part");
    let data = pattern(len, seed);
    let mut f = File::create(&part)?;
    let mut at = 0;
    while at < data.len() {
        let n = (1 + rng.below(8192) as usize).min(data.len() - at);
        f.write_all(&data[at..at + n])?;
        at += n;
    }
    f.sync_all()?;
    Ok(part)
}

fn name(round: u64, k: u64, style: u64) -> String {
    match style % 3 {
        0 => format!("F{:07}.DAT", (round * 1000 + k) % 10_000_000),
        1 => format!("File {round}-{k} with a long name.data"),
        _ => format!("mixed{round}_{k}.Bin"),
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().unwrap_or(0)).collect();
    let (round, seed) = (args.first().copied().unwrap_or(0), args.get(1).copied().unwrap_or(1));
    let limit = args.get(2).copied().unwrap_or(u64::MAX);
    let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
    fs::create_dir_all(DIR)?;
    let mut names = BTreeSet::new();
    for e in fs::read_dir(DIR)? {
        let e = e?;
        let n = e.file_name().to_string_lossy().into_owned();
        if e.file_type()?.is_dir() {
            fs::remove_dir_all(e.path())?;
        } else if n.ends_with(".part") {
            fs::remove_file(e.path())?;
        } else {
            names.insert(n);
        }
    }
    println!("start round {round} with {} files", names.len());
    for k in 0..limit {
        let pick = |rng: &mut Rng, names: &BTreeSet<String>| {
            names.iter().nth(rng.below(names.len() as u64) as usize).cloned()
        };
        let mut op = rng.below(10);
        if names.len() > 24 && op < 6 {
            op = 6;
        }
        if names.is_empty() && (4..8).contains(&op) {
            op = 0;
        }
        match op {
            0..=3 => {
                let n = name(round, k, rng.next());
                let (len, s) = (rng.below(40_000) as usize, rng.next() >> 16);
                let part = write_part(&mut rng, k, len, s)?;
                fs::rename(&part, format!("{DIR}/{n}"))?;
                sync_dir()?;
                println!("flushed {n} {len} {s}");
                names.insert(n);
            }
            4 | 5 => {
                let n = pick(&mut rng, &names).unwrap();
                let (len, s) = (rng.below(40_000) as usize, rng.next() >> 16);
                println!("replacing {n} {len} {s}");
                let part = write_part(&mut rng, k, len, s)?;
                fs::rename(&part, format!("{DIR}/{n}"))?;
                sync_dir()?;
                println!("flushed {n} {len} {s}");
            }
            6 => {
                let n = pick(&mut rng, &names).unwrap();
                println!("deleting {n}");
                fs::remove_file(format!("{DIR}/{n}"))?;
                sync_dir()?;
                println!("deleted {n}");
                names.remove(&n);
            }
            7 => {
                let old = pick(&mut rng, &names).unwrap();
                let new = name(round, k, rng.next());
                println!("renaming {old} {new}");
                fs::rename(format!("{DIR}/{old}"), format!("{DIR}/{new}"))?;
                sync_dir()?;
                println!("renamed {old} {new}");
                names.remove(&old);
                names.insert(new);
            }
            8 => {
                let mut f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(format!("{DIR}/noise.part"))?;
                f.write_all(&pattern(rng.below(20_000) as usize, k))?;
                if rng.below(3) == 0 {
                    f.set_len(rng.below(30_000))?;
                }
            }
            _ => {
                let d = format!("{DIR}/Directory {round} {k}");
                fs::create_dir_all(format!("{d}/inner"))?;
                fs::write(format!("{d}/inner/x.txt"), pattern(rng.below(5000) as usize, k))?;
                if rng.below(2) == 0 {
                    fs::remove_dir_all(&d)?;
                }
            }
        }
    }
    Ok(())
}
