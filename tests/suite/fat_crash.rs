//! A guest killed at any moment leaves a FAT that `fsck.fat -n` accepts
//! and keeps every file it flushed: tests/std/src/bin/std-fat-crash.rs
//! writes, renames and deletes in a loop (syncing what it names, logging
//! what is durable on the console), and is killed with SIGKILL after a
//! random time; then `fsck.fat -n` must report the disk clean, or with at
//! most lost clusters, a wrong free count, the dirty bit, two intact FAT
//! copies that differ (killed between their writes) or, for the one file
//! the guest grows and shortens without syncing, a chain longer than its
//! size (killed between the link and the size, or between a shorter size
//! and the cut: docs/storage.md, rules 1 and 3) (never
//! cross-linked or bad chains, never an entry pointing at a free cluster,
//! never an orphaned long name), and every file the log names is compared
//! byte for byte with what it must hold. The next round runs on the same
//! disk. 150 rounds on each of FAT12, FAT16 and FAT32 (small disks, short
//! rounds), the three side by side: about 20 s here.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{KillOnDrop, TempDir, fat_tool, std_guest, tender};

const ROUNDS: u64 = 150;

use support::pattern::pattern;

/// What a file may hold: absent (`None`) or bytes of this hash.
type Content = Option<u64>;

/// FNV-1a of `bytes`.
fn hash(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// What `pattern(len, seed)` hashes to.
fn pattern_hash(len: u64, seed: u64) -> Content {
    Some(hash(&pattern(len as usize, seed)))
}

/// The names the log mentions and what each may hold now.
#[derive(Default, Debug)]
struct Model {
    files: BTreeMap<String, BTreeSet<Content>>,
    /// What a name being renamed held, until `renamed`.
    moving: BTreeMap<String, BTreeSet<Content>>,
}

impl Model {
    fn now(&self, name: &str) -> BTreeSet<Content> {
        self.files.get(name).cloned().unwrap_or_else(|| [None].into())
    }

    /// Applies one complete log line.
    fn apply(&mut self, line: &str) -> Result<(), String> {
        let w: Vec<&str> = line.split(' ').collect();
        // Names hold spaces: the numbers are the last words.
        let num = |s: &str| s.parse::<u64>().map_err(|_| format!("bad log line {line:?}"));
        match w[0] {
            "flushed" | "replacing" if w.len() >= 4 => {
                let name = w[1..w.len() - 2].join(" ");
                let c = pattern_hash(num(w[w.len() - 2])?, num(w[w.len() - 1])?);
                if w[0] == "flushed" {
                    self.files.insert(name, [c].into());
                } else {
                    let mut s = self.now(&name);
                    s.insert(c);
                    self.files.insert(name, s);
                }
            }
            "deleting" | "deleted" => {
                let name = w[1..].join(" ");
                let mut s = if w[0] == "deleting" { self.now(&name) } else { BTreeSet::new() };
                s.insert(None);
                self.files.insert(name, s);
            }
            "renaming" | "renamed" => {
                // Two names with spaces: split where the second begins (a
                // name of the guest's three forms).
                let rest = w[1..].join(" ");
                let (old, new) = split_names(&rest).ok_or(format!("bad log line {line:?}"))?;
                if w[0] == "renaming" {
                    let c = self.now(&old);
                    let mut o = c.clone();
                    o.insert(None);
                    let mut n = self.now(&new);
                    n.extend(c.iter().copied());
                    self.moving.insert(old.clone(), c);
                    self.files.insert(old, o);
                    self.files.insert(new, n);
                } else {
                    let c = self.moving.remove(&old).unwrap_or_default();
                    self.files.insert(old, [None].into());
                    self.files.insert(new, c);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Splits `OLD NEW` where both are names the guest makes: `F0000000.DAT`,
/// `File R-K with a long name.data`, `mixedR_K.Bin`.
fn split_names(s: &str) -> Option<(String, String)> {
    for (i, _) in s.match_indices(' ') {
        let (a, b) = (&s[..i], &s[i + 1..]);
        let whole = |n: &str| {
            (n.starts_with('F') && n.ends_with(".DAT") && !n.contains(' '))
                || (n.starts_with("File ") && n.ends_with(" with a long name.data"))
                || (n.starts_with("mixed") && n.ends_with(".Bin") && !n.contains(' '))
        };
        if whole(a) && whole(b) {
            return Some((a.to_string(), b.to_string()));
        }
    }
    None
}

/// `fsck.fat -n`'s verdict: `Err` with its output if it reports anything
/// but lost clusters, a wrong free count, the dirty bit, intact FAT
/// copies that differ or `noise.part` growing; else whether it
/// reported anything at all (`Ok(false)`: clean).
fn fsck_verdict(img: &Path) -> Result<bool, String> {
    let out = Command::new("fsck.fat").arg("-n").arg(img).env("TZ", "UTC").output().unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let allowed = |l: &str| {
        l.is_empty()
            || l.starts_with("fsck.fat ")
            || l.starts_with("Checking we can access the last sector")
            || l.contains(" files, ") && l.contains(" clusters")
            || l.starts_with("Leaving filesystem unchanged")
            || l.starts_with("Reclaimed ")
            || l.contains("unused cluster")
            || l.starts_with("Free cluster summary")
            || l.starts_with("Dirty bit is set")
            // Killed between the writes of the two FAT copies (libos
            // writes the mirror first, then the first FAT, then the
            // directories): both are intact, and the first, which fsck
            // uses, agrees with the directories.
            || l.starts_with("FATs differ but appear to be intact")
            || l.starts_with("  Using first FAT")
            || l.starts_with(" Automatically removing dirty bit")
            || l.starts_with("Automatically removing dirty bit")
            || l.starts_with("The changes have not yet been written")
            || l.starts_with("Perform changes")
            || l.starts_with("  Auto-correcting")
            || l.starts_with("  Auto-setting")
            || l.starts_with("1) Correct")
            || l.starts_with("2) Don't correct")
    };
    let noted = |l: &&str| {
        l.starts_with("Reclaimed")
            || l.starts_with("Free cluster")
            || l.starts_with("Dirty bit")
            || l.starts_with("FATs differ")
    };
    // Growing a file that has clusters leaves, between the write of the
    // link in the FAT and that of the entry's size, a chain longer than
    // the size (docs/storage.md, rule 1), and so does shortening it
    // between the size and the cut (rule 3): accepted for `noise.part`,
    // the one file the guest resizes without syncing, and only in that
    // form.
    let lines: Vec<&str> = text.lines().collect();
    let mut growing = vec![false; lines.len()];
    for (i, w) in lines.windows(3).enumerate() {
        if w[0].ends_with("/noise.part")
            && w[1].starts_with("  File size is ")
            && w[1].contains("cluster chain length is >")
            && w[2].starts_with("  Truncating file to ")
        {
            growing[i..i + 3].fill(true);
        }
    }
    let mut lines = lines.iter().zip(&growing);
    match lines.find(|&(l, &g)| !g && !allowed(l)) {
        None => Ok(text.lines().any(|l| noted(&l)) || growing.contains(&true)),
        Some((l, _)) => Err(format!("fsck.fat -n: {l:?} in:\n{text}")),
    }
}

/// Reads `/data` of `img` into `into` with mtools (`None`: no `/data`).
fn data_files(img: &Path, into: &Path) -> BTreeMap<String, Vec<u8>> {
    let _ = std::fs::remove_dir_all(into);
    std::fs::create_dir_all(into).unwrap();
    let listing = Command::new("mdir")
        .args(["-b", "-i"])
        .arg(img)
        .arg("::/data")
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap();
    let mut files = BTreeMap::new();
    if !listing.status.success() {
        return files;
    }
    fat_tool(
        "mcopy",
        &["-s", "-n", "-i", img.to_str().unwrap(), "::/data", into.to_str().unwrap()],
    );
    for e in std::fs::read_dir(into.join("data")).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            files.insert(
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            );
        }
    }
    files
}

/// Checks the files of the model against the disk, and settles each name
/// to what it holds. A file the log does not name yet (made whole and
/// renamed into place, but killed before the guest logged it) joins the
/// model as it is: the next rounds may rename or delete it.
fn check_files(model: &mut Model, files: &BTreeMap<String, Vec<u8>>) -> Result<(), String> {
    for (name, bytes) in files {
        if !name.ends_with(".part") && !model.files.contains_key(name) {
            model.files.insert(name.clone(), [Some(hash(bytes))].into());
        }
    }
    for (name, may) in model.files.iter_mut() {
        let found = files.get(name).map(|b| hash(b));
        let matched = may.iter().copied().find(|c| *c == found);
        match matched {
            Some(c) => *may = [c].into(),
            None => {
                return Err(format!(
                    "{name}: holds {:?} bytes, not what the log allows ({} possibilities: {may:?})",
                    files.get(name).map(Vec::len),
                    may.len()
                ));
            }
        }
    }
    Ok(())
}

/// Runs the rounds on one FAT; returns how many operations were logged
/// and after how many rounds fsck.fat noted something it accepts.
fn crash_rounds(bits: u32, mib: u64, seed0: u64) -> (u64, u64) {
    let dir = TempDir::new(&format!("fat-crash-{bits}"));
    let img = dir.path().join("disk.img");
    std::fs::File::create(&img).unwrap().set_len(mib << 20).unwrap();
    fat_tool("mkfs.fat", &["-F", &bits.to_string(), "--mbr=y", img.to_str().unwrap()]);
    let guest = std_guest("std-fat-crash");
    let mut model = Model::default();
    let mut logged = 0;
    let mut noted = 0;
    let mut rng = seed0 | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut log_all = String::new();
    for round in 0..ROUNDS {
        let seed = next();
        // Mostly in the middle of the work; sometimes at the very start
        // (mounting, cleaning up the last round's leftovers).
        let after =
            Duration::from_millis(if round % 7 == 0 { next() % 15 } else { 15 + next() % 120 });
        let child = Command::new(tender())
            .arg("--block")
            .arg(format!("storage={}", img.display()))
            .arg(&guest)
            .arg(round.to_string())
            .arg(seed.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = KillOnDrop(child);
        let start = Instant::now();
        let mut exited = None;
        while start.elapsed() < after {
            if let Some(s) = child.0.try_wait().unwrap() {
                exited = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // SIGKILL, the tender and with it the guest, mid-operation.
        let _ = child.0.kill();
        let status = child.0.wait().unwrap();
        let mut out = String::new();
        let mut err = String::new();
        use std::io::Read;
        child.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        child.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        if let Some(s) = exited {
            panic!("FAT{bits} round {round}: the guest ended by itself ({s}): {out}{err}");
        }
        assert!(
            status.code().is_none(),
            "FAT{bits} round {round}: not killed ({status}): {out}{err}"
        );
        // Only complete lines were durable when printed.
        let complete = match out.rfind('\n') {
            Some(i) => &out[..=i],
            None => "",
        };
        log_all.push_str(&format!(
            "== FAT{bits} round {round} seed {seed} after {after:?}\n{complete}"
        ));
        for line in complete.lines() {
            model.apply(line).unwrap();
            if line.starts_with("flushed")
                || line.starts_with("deleted")
                || line.starts_with("renamed")
            {
                logged += 1;
            }
        }
        let fail = |what: String| -> ! {
            let keep = std::env::temp_dir().join(format!("fat-crash-FAT{bits}-failed.img"));
            let _ = std::fs::copy(&img, &keep);
            let log = std::env::temp_dir().join(format!("fat-crash-FAT{bits}-failed.log"));
            let _ = std::fs::write(&log, &log_all);
            panic!(
                "FAT{bits} round {round}: {what}\n(disk kept at {}, log at {})\nlast round's \
                 log:\n{complete}",
                keep.display(),
                log.display()
            );
        };
        match fsck_verdict(&img) {
            Ok(n) => noted += u64::from(n),
            Err(e) => fail(e),
        }
        let files = data_files(&img, &dir.path().join("read"));
        if let Err(e) = check_files(&mut model, &files) {
            fail(e);
        }
    }
    (logged, noted)
}

#[test]
fn a_guest_killed_at_random_leaves_a_consistent_fat_and_its_flushed_files() {
    let runs: Vec<_> =
        [(12u32, 4u64, 0x1234_5678u64), (16, 32, 0xdead_beef), (32, 64, 0x0bad_cafe)]
            .into_iter()
            .map(|(bits, mib, seed)| {
                std::thread::spawn(move || (bits, crash_rounds(bits, mib, seed)))
            })
            .collect();
    let mut total = 0;
    for r in runs {
        let (bits, (logged, noted)) = r.join().unwrap();
        eprintln!(
            "FAT{bits}: {ROUNDS} rounds, {logged} durable operations logged; fsck.fat clean after \
             {} rounds, lost clusters, free count, dirty bit or FAT copies after {noted}",
            ROUNDS - noted
        );
        // The rounds must have done work, not only mounted and died.
        assert!(logged >= ROUNDS, "FAT{bits}: only {logged} operations in {ROUNDS} rounds");
        total += logged;
    }
    eprintln!("{} rounds, {total} durable operations", 3 * ROUNDS);
}

#[test]
fn the_log_model_allows_what_a_crash_can_leave() {
    let mut m = Model::default();
    for l in [
        "flushed F0000001.DAT 10 5",
        "flushed File 0-2 with a long name.data 0 7",
        "replacing F0000001.DAT 20 6",
        "renaming File 0-2 with a long name.data mixed0_3.Bin",
        "deleting F0000001.DAT",
    ] {
        m.apply(l).unwrap();
    }
    let p = pattern_hash;
    assert_eq!(m.now("F0000001.DAT"), [None, p(10, 5), p(20, 6)].into());
    assert_eq!(m.now("File 0-2 with a long name.data"), [None, p(0, 7)].into());
    assert_eq!(m.now("mixed0_3.Bin"), [None, p(0, 7)].into());
    m.apply("renamed File 0-2 with a long name.data mixed0_3.Bin").unwrap();
    assert_eq!(m.now("mixed0_3.Bin"), [p(0, 7)].into());
    assert_eq!(m.now("File 0-2 with a long name.data"), [None].into());
    // What the disk holds settles each name; what the log forbids fails.
    let mut files = BTreeMap::new();
    files.insert("F0000001.DAT".to_string(), pattern(20, 6));
    files.insert("mixed0_3.Bin".to_string(), Vec::new());
    assert_eq!(check_files(&mut m, &files), Ok(()));
    assert_eq!(m.now("F0000001.DAT"), [p(20, 6)].into());
    // A file the log never named joins the model as it is.
    files.insert("mixed9_9.Bin".to_string(), b"unlogged".to_vec());
    assert_eq!(check_files(&mut m, &files), Ok(()));
    assert_eq!(m.now("mixed9_9.Bin"), [Some(hash(b"unlogged"))].into());
    files.insert("F0000001.DAT".to_string(), pattern(20, 7));
    assert!(check_files(&mut m, &files).is_err());
    m.apply("flushed F0000009.DAT 3 3").unwrap();
    assert!(check_files(&mut m, &BTreeMap::new()).is_err(), "a flushed file is missing");
}
