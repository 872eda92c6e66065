//! Host tests of the log: targeted cases (fresh, foreign and small disks,
//! torn tails, flipped bytes, stale records, compaction, full disks, disk
//! errors, the fsync policies) and a seeded property loop that crashes a
//! simulated disk at random points, by kill or by power loss, mid-write or
//! between calls, and checks every recovery against a model.
//!
//! `AOF_FUZZ_ROUNDS=N cargo test -p kvd aof` runs the property loops longer
//! (default: enough for a few seconds in debug).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::format::{HEADER_LEN, Superblock};
use super::*;

const MIB: u64 = 1024 * 1024;

/// SplitMix64: small, seeded, reproducible.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn rounds(default: u64) -> u64 {
    std::env::var("AOF_FUZZ_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

// --- A disk that crashes -------------------------------------------------

/// What the simulated host holds: the durable image, and the writes since
/// the last flush (in the page cache, not yet on the platter).
#[derive(Debug)]
struct State {
    ss: usize,
    durable: Vec<u8>,
    /// `durable` with `unflushed` applied: what reads see.
    current: Vec<u8>,
    unflushed: Vec<(usize, Vec<u8>)>,
    /// The sequence number of each write in `unflushed`, and of the next.
    unflushed_seq: Vec<u64>,
    seq: u64,
    /// Flushes are started and answered later, as by the tender's flush
    /// thread: each covers the writes before its start.
    asynchronous: bool,
    /// Started and not yet done: ticket and the first write not covered.
    in_flight: Vec<(u64, u64)>,
    next_ticket: u64,
    /// Tickets done, in order, and which failed.
    completed: Vec<u64>,
    /// Writes and flushes left before the process dies (`None`: no limit).
    budget: Option<u64>,
    /// The process died: every request fails.
    dead: bool,
    /// The write the process died in landed only partly.
    torn: bool,
    /// A write the process dies in lands whole, as garbage.
    garble: bool,
    /// Fail the next write, or every flush, without dying.
    fail_write: bool,
    fail_flush: bool,
    flushes: u64,
    rng: Rng,
}

/// A disk whose host can crash: [`CrashDisk::kill`] (the tender dies; the
/// host keeps every write it was given) or [`CrashDisk::power_loss`] (the
/// host dies; unflushed writes land in part, sector by sector, some torn).
/// A budget makes the process die inside a later request, that write
/// landing only in part.
#[derive(Debug, Clone)]
struct CrashDisk(Rc<RefCell<State>>);

impl CrashDisk {
    fn new(image: Vec<u8>, ss: usize, seed: u64) -> Self {
        Self(Rc::new(RefCell::new(State {
            ss,
            current: image.clone(),
            durable: image,
            unflushed: Vec::new(),
            unflushed_seq: Vec::new(),
            seq: 0,
            asynchronous: false,
            in_flight: Vec::new(),
            next_ticket: 1,
            completed: Vec::new(),
            budget: None,
            dead: false,
            torn: false,
            garble: false,
            fail_write: false,
            fail_flush: false,
            flushes: 0,
            rng: Rng(seed),
        })))
    }

    fn zeroed(capacity: u64, ss: usize, seed: u64) -> Self {
        Self::new(vec![0; capacity as usize], ss, seed)
    }

    /// The process dies at the `n`th write or flush from now.
    fn die_after(&self, n: u64) {
        self.0.borrow_mut().budget = Some(n);
    }

    fn dead(&self) -> bool {
        self.0.borrow().dead
    }

    /// Flushes made with [`Disk::flush`] (not the started ones).
    fn flushes(&self) -> u64 {
        self.0.borrow().flushes
    }

    /// From now on, `flush_start` starts a flush that a later
    /// `flush_done` (at random) or `flush_wait` completes.
    fn asynchronous(self) -> Self {
        self.0.borrow_mut().asynchronous = true;
        self
    }

    /// Flushes started so far (their tickets are 1 to this).
    fn flush_starts(&self) -> u64 {
        self.0.borrow().next_ticket - 1
    }

    /// Tickets of the started flushes that completed, in order.
    fn completed(&self) -> Vec<u64> {
        self.0.borrow().completed.clone()
    }

    /// Completes the started flush `ticket`: the writes before its start
    /// become durable (in order), unless flushes fail.
    fn complete(st: &mut State, ticket: u64) -> Result<(), DiskError> {
        let Some(i) = st.in_flight.iter().position(|&(t, _)| t == ticket) else {
            return Ok(());
        };
        let (_, upto) = st.in_flight.remove(i);
        if st.dead {
            return Err(DiskError::Io(5));
        }
        if st.fail_flush {
            return Err(DiskError::Io(5));
        }
        let n = st.unflushed_seq.iter().take_while(|&&q| q < upto).count();
        for (at, data) in st.unflushed.drain(..n) {
            st.durable[at..at + data.len()].copy_from_slice(&data);
        }
        st.unflushed_seq.drain(..n);
        st.completed.push(ticket);
        Ok(())
    }

    /// The image after the process died (or was killed): the host keeps
    /// everything it was given.
    fn kill(&self) -> Vec<u8> {
        self.0.borrow().current.clone()
    }

    /// The image after the host lost power: each unflushed write lands,
    /// in order, sector by sector: whole, not at all, or torn (a prefix).
    fn power_loss(&self) -> Vec<u8> {
        let mut st = self.0.borrow_mut();
        let st = &mut *st;
        let mut image = st.durable.clone();
        for (off, data) in &st.unflushed {
            for (i, sector) in data.chunks(st.ss).enumerate() {
                let at = off + i * st.ss;
                match st.rng.below(10) {
                    0..=4 => image[at..at + sector.len()].copy_from_slice(sector),
                    5..=7 => {}
                    _ => {
                        let n = st.rng.below(sector.len() as u64) as usize;
                        image[at..at + n].copy_from_slice(&sector[..n]);
                    }
                }
            }
        }
        image
    }

    /// Takes one request from the budget; `true` if the process dies in it.
    fn spend(st: &mut State) -> bool {
        match &mut st.budget {
            Some(0) => true,
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        }
    }
}

impl Disk for CrashDisk {
    fn sector_size(&self) -> u32 {
        self.0.borrow().ss as u32
    }
    fn capacity(&self) -> u64 {
        self.0.borrow().current.len() as u64
    }
    fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        let st = self.0.borrow();
        if st.dead {
            return Err(DiskError::Io(5));
        }
        let at = sector as usize * st.ss;
        assert!(buf.len().is_multiple_of(st.ss), "reads are whole sectors");
        let src = st.current.get(at..at + buf.len()).ok_or(DiskError::OutOfRange)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write(&self, sector: u64, buf: &[u8]) -> Result<(), DiskError> {
        let mut st = self.0.borrow_mut();
        let st = &mut *st;
        if st.dead {
            return Err(DiskError::Io(5));
        }
        assert!(buf.len().is_multiple_of(st.ss), "writes are whole sectors");
        let at = sector as usize * st.ss;
        if at + buf.len() > st.current.len() {
            return Err(DiskError::OutOfRange);
        }
        if std::mem::take(&mut st.fail_write) {
            return Err(DiskError::Io(28));
        }
        let mut len = buf.len();
        if Self::spend(st) {
            // Dies in this write: a prefix of it lands, maybe ending in a
            // torn sector.
            st.dead = true;
            st.torn = true;
            len = st.rng.below(buf.len() as u64 + 1) as usize;
        }
        if st.garble && st.dead {
            len = buf.len();
            for b in &mut st.current[at..at + len] {
                *b = st.rng.next() as u8;
            }
        } else {
            st.current[at..at + len].copy_from_slice(&buf[..len]);
        }
        // Keep whole sectors in the unflushed list; a torn last sector is
        // old bytes after the prefix.
        let whole = len.div_ceil(st.ss) * st.ss;
        st.unflushed.push((at, st.current[at..at + whole].to_vec()));
        st.unflushed_seq.push(st.seq);
        st.seq += 1;
        if st.dead { Err(DiskError::Io(5)) } else { Ok(()) }
    }
    fn flush(&self) -> Result<(), DiskError> {
        let mut st = self.0.borrow_mut();
        let st = &mut *st;
        if st.dead || Self::spend(st) {
            st.dead = true;
            return Err(DiskError::Io(5));
        }
        if st.fail_flush {
            return Err(DiskError::Io(5));
        }
        for (at, data) in std::mem::take(&mut st.unflushed) {
            st.durable[at..at + data.len()].copy_from_slice(&data);
        }
        st.unflushed_seq.clear();
        st.flushes += 1;
        Ok(())
    }
    fn flush_start(&self) -> Result<u64, DiskError> {
        if !self.0.borrow().asynchronous {
            return self.flush().map(|()| 0);
        }
        let mut st = self.0.borrow_mut();
        let st = &mut *st;
        if st.dead || Self::spend(st) {
            st.dead = true;
            return Err(DiskError::Io(5));
        }
        let t = st.next_ticket;
        st.next_ticket += 1;
        st.in_flight.push((t, st.seq));
        Ok(t)
    }
    fn flush_done(&self, ticket: u64) -> Option<Result<(), DiskError>> {
        let mut st = self.0.borrow_mut();
        let st = &mut *st;
        if !st.asynchronous {
            return Some(Ok(()));
        }
        if st.in_flight.iter().any(|&(t, _)| t == ticket) {
            // Still running, half the time.
            if st.rng.chance(50) {
                return None;
            }
            return Some(Self::complete(st, ticket));
        }
        Some(Ok(()))
    }
    fn flush_wait(&self, ticket: u64) -> Result<(), DiskError> {
        let mut st = self.0.borrow_mut();
        Self::complete(&mut st, ticket)
    }
}

// --- Helpers ---------------------------------------------------------------

fn argv(parts: &[&str]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.as_bytes().to_vec()).collect()
}

fn set(k: &str, v: &str) -> Vec<Vec<u8>> {
    argv(&["SET", k, v])
}

fn append(aof: &mut Aof<impl Disk>, cmd: &[Vec<u8>]) {
    let args: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
    aof.append(&args).unwrap();
}

/// Appends and commits each command on its own.
fn commit_each(aof: &mut Aof<impl Disk>, cmds: &[Vec<Vec<u8>>]) {
    for c in cmds {
        append(aof, c);
        aof.commit().unwrap();
    }
}

fn sets(range: std::ops::Range<usize>) -> Vec<Vec<Vec<u8>>> {
    range.map(|i| set(&format!("key{i}"), &format!("value-{i}-{}", "x".repeat(i % 40)))).collect()
}

/// Byte offset of the first occurrence of `needle` in `image`.
fn find(image: &[u8], needle: &[u8]) -> usize {
    image.windows(needle.len()).position(|w| w == needle).expect("needle in image")
}

fn mem(image: Vec<u8>, ss: u32) -> MemDisk {
    MemDisk::from_bytes(image, ss)
}

// --- Targeted tests -------------------------------------------------------

#[test]
fn crc32c_matches_the_standard_check_value() {
    assert_eq!(crc32c(0, b"123456789"), 0xE306_9283);
    assert_eq!(crc32c(0, b""), 0);
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
    for split in [0, 1, 7, 8, 9, 500, 1000] {
        assert_eq!(crc32c(crc32c(0, &data[..split]), &data[split..]), crc32c(0, &data));
    }
}

#[test]
fn fsync_policies_parse() {
    assert_eq!("always".parse(), Ok(Fsync::Always));
    assert_eq!("EverySec".parse(), Ok(Fsync::EverySec));
    assert_eq!("no".parse(), Ok(Fsync::No));
    assert_eq!("sometimes".parse::<Fsync>(), Err(ParseFsyncError));
    assert_eq!(Fsync::default(), Fsync::EverySec);
    assert_eq!(Fsync::Always.to_string(), "always");
}

#[test]
fn a_zeroed_disk_is_initialised_and_commands_come_back_exactly() {
    let disk = MemDisk::new(MIB, 512);
    let (mut aof, replay, report) = Aof::open(disk, Fsync::Always).unwrap();
    assert!(replay.is_empty());
    assert!(report.initialised && report.cut.is_none(), "{report:?}");
    assert_eq!((report.generation, report.boot), (1, 1));
    assert!(report.to_string().contains("initialised an empty log"), "{report}");
    let big = vec![0xA5u8; 100_000];
    let cmds = vec![
        argv(&["SET", "k", "v"]),
        vec![b"SET".to_vec(), b"bin\0\r\n".to_vec(), vec![]],
        vec![b"SET".to_vec(), b"big".to_vec(), big],
        vec![],
    ];
    for c in &cmds {
        append(&mut aof, c);
    }
    aof.commit().unwrap();
    commit_each(&mut aof, &sets(0..10));
    let image = aof.disk().to_bytes();
    let (_, replay, report) = Aof::open(mem(image, 512), Fsync::Always).unwrap();
    let mut want = cmds;
    want.extend(sets(0..10));
    assert_eq!(replay, want);
    assert!(!report.initialised && report.cut.is_none(), "{report:?}");
    assert_eq!((report.records, report.commands, report.boot), (11, 14, 2));
    assert!(report.to_string().starts_with("aof: generation 1, boot 2: replayed 14 commands"));
}

#[test]
fn a_disk_that_is_not_zero_and_has_no_superblock_is_refused_untouched() {
    for at in [0usize, 512, 700_000, MIB as usize - 1] {
        let mut image = vec![0u8; MIB as usize];
        image[at] = 1;
        let disk = CrashDisk::new(image.clone(), 512, 0);
        let err = Aof::open(disk.clone(), Fsync::Always).unwrap_err();
        assert_eq!(err, AofError::Unrecognised);
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        assert_eq!(disk.kill(), image);
    }
}

/// A disk that counts the bytes read from it.
struct Counting(MemDisk, std::cell::Cell<u64>);

impl Disk for Counting {
    fn sector_size(&self) -> u32 {
        self.0.sector_size()
    }
    fn capacity(&self) -> u64 {
        self.0.capacity()
    }
    fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        self.1.set(self.1.get() + buf.len() as u64);
        self.0.read(sector, buf)
    }
    fn write(&self, sector: u64, buf: &[u8]) -> Result<(), DiskError> {
        self.0.write(sector, buf)
    }
    fn flush(&self) -> Result<(), DiskError> {
        self.0.flush()
    }
}

/// The first start reads the probed regions, not the whole disk: what
/// lies outside them is neither read nor a reason to refuse; a byte in
/// any of them is.
#[test]
fn a_first_start_reads_a_bounded_part_of_the_disk() {
    let size = 64 * MIB;
    let disk = Counting(MemDisk::new(size, 512), std::cell::Cell::new(0));
    let (_, replay, report) = Aof::open(disk, Fsync::No).unwrap();
    assert!(replay.is_empty() && report.initialised, "{report}");
    let area1 = 2 + (size / 512 - 2) / 2;
    let probes = [1024..MIB, area1 * 512..area1 * 512 + MIB, size - MIB..size];
    // Outside every probe: initialised (the bytes are the operator's to lose).
    for at in [MIB, area1 * 512 - 1, area1 * 512 + MIB, size - MIB - 1] {
        let mut image = vec![0u8; size as usize];
        image[at as usize] = 0xee;
        let disk = Counting(mem(image, 512), std::cell::Cell::new(0));
        let (aof, replay, report) = Aof::open(disk, Fsync::No).unwrap();
        assert!(replay.is_empty() && report.initialised, "byte at {at}: {report}");
        // Superblocks, 3 probes, replay's first window: well under the disk.
        assert!(aof.disk.1.get() <= 5 * MIB, "read {} bytes", aof.disk.1.get());
    }
    for probe in probes {
        for at in [probe.start, probe.end - 1] {
            let mut image = vec![0u8; size as usize];
            image[at as usize] = 1;
            let disk = CrashDisk::new(image.clone(), 512, 0);
            assert_eq!(Aof::open(disk.clone(), Fsync::No).unwrap_err(), AofError::Unrecognised);
            assert_eq!(disk.kill(), image, "byte at {at}: refused, untouched");
        }
    }
}

/// A disk that held a kvd log, whose superblocks and probed regions were
/// zeroed but not the rest: a new log on it, cut where a commit's trailing
/// zero sector never landed, must not run on into the old log's records,
/// even where they line up with its own (same sizes, same sequence
/// numbers). Only the new log's generation tells them apart: with the old
/// one's (nonce 0 both times) the stale records are replayed.
#[test]
fn records_of_an_earlier_log_outside_the_probes_never_pass_for_a_new_one() {
    let size = 8 * MIB;
    let value = vec![b'x'; 4000]; // one record: 9 sectors
    let write = |nonce: u64, image: Vec<u8>, n: usize| {
        let disk = MemDisk::from_bytes(image, 512);
        let (mut aof, report) = Aof::open_with(disk, Fsync::No, nonce, &mut |_| {}).unwrap();
        assert!(report.initialised, "{report}");
        for i in 0..n {
            append(&mut aof, &[b"SET".to_vec(), format!("k{i:04}").into_bytes(), value.clone()]);
            aof.commit().unwrap();
        }
        (aof.tail, aof.disk().to_bytes())
    };
    for (nonce, replayed_old) in [(0, true), (0x5eed_0000_0001, false)] {
        let (_, old) = write(0, vec![0u8; size as usize], 600);
        let mut image = old.clone();
        image[..MIB as usize].fill(0);
        image[(size - MIB) as usize..].fill(0);
        let area1 = (2 + (size / 512 - 2) / 2) as usize * 512;
        image[area1..area1 + MIB as usize].fill(0);
        let (tail, mut new) = write(nonce, image, 300);
        // The last commit's zero sector did not land: the old bytes are there.
        let at = (2 + tail) as usize * 512;
        assert!(at > MIB as usize);
        new[at..at + 512].copy_from_slice(&old[at..at + 512]);
        let (_, replay, _) = Aof::open(mem(new, 512), Fsync::No).unwrap();
        let want = if replayed_old { 600 } else { 300 };
        assert_eq!(replay.len(), want, "nonce {nonce:#x}");
    }
}

/// A crash during the very first start, while the superblock is written:
/// the disk holds a torn superblock and nothing else, and starts afresh.
#[test]
fn a_crash_during_the_first_start_leaves_a_disk_that_starts() {
    for power in [false, true] {
        for budget in 0..4 {
            for seed in 0..20 {
                let disk = CrashDisk::zeroed(MIB, 512, seed);
                disk.die_after(budget);
                if Aof::open(disk.clone(), Fsync::Always).is_ok() {
                    continue;
                }
                let image = if power { disk.power_loss() } else { disk.kill() };
                let (_, replay, report) = Aof::open(mem(image, 512), Fsync::Always)
                    .unwrap_or_else(|e| panic!("budget {budget} seed {seed}: {e}"));
                assert!(replay.is_empty() && report.cut.is_none(), "{report}");
            }
        }
    }
    // Only a torn superblock: foreign bytes after it, or where the magic
    // goes, are refused.
    let (aof, _, _) = Aof::open(MemDisk::new(MIB, 512), Fsync::No).unwrap();
    let image = aof.disk().to_bytes();
    for (at, byte) in [(3, b'x'), (200, 1)] {
        let mut torn = vec![0u8; MIB as usize];
        torn[..60].copy_from_slice(&image[..60]);
        torn[at] = byte;
        assert_eq!(Aof::open(mem(torn, 512), Fsync::No).unwrap_err(), AofError::Unrecognised);
    }
}

/// A superblock update never writes over the only valid copy: with one
/// copy damaged (torn by an earlier crash) or stale (an update that died
/// between its two copies), the process dies writing the first copy of
/// the next update, leaving garbage there. The current superblock, and
/// the log it vouches for, must survive.
#[test]
fn a_superblock_update_never_overwrites_the_only_current_copy() {
    for damaged in 0..2usize {
        for stale in [false, true] {
            let what = format!("copy {damaged} {}", if stale { "stale" } else { "torn" });
            let disk = CrashDisk::zeroed(MIB, 512, 0);
            let (mut aof, _, _) = Aof::open(disk.clone(), Fsync::Always).unwrap();
            commit_each(&mut aof, &sets(0..3));
            let before = disk.kill();
            // A second boot: its records need its superblock (boot 2).
            let disk = CrashDisk::new(before.clone(), 512, 0);
            let (mut aof, _, _) = Aof::open(disk.clone(), Fsync::Always).unwrap();
            commit_each(&mut aof, &sets(3..6));
            let mut image = disk.kill();
            let sector = damaged * 512..(damaged + 1) * 512;
            if stale {
                // The copy from before this boot's update.
                image[sector.clone()].copy_from_slice(&before[sector]);
            } else {
                image[damaged * 512 + 20] ^= 0xff;
            }
            let disk = CrashDisk::new(image, 512, 0);
            disk.0.borrow_mut().garble = true;
            disk.die_after(1); // a flush, then the first copy's write
            assert!(Aof::open(disk.clone(), Fsync::Always).is_err(), "{what}");
            let (_, replay, report) = Aof::open(CrashDisk::new(disk.kill(), 512, 0), Fsync::Always)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!((replay, report.cut), (sets(0..6), None), "{what}");
        }
    }
}

#[test]
fn small_disks_and_odd_sector_sizes_are_refused() {
    let err = Aof::open(MemDisk::new(MIB - 512, 512), Fsync::No).unwrap_err();
    assert_eq!(err, AofError::TooSmall { capacity: MIB - 512 });
    assert!(err.to_string().contains("at least 1 MiB"), "{err}");
    let err = Aof::open(MemDisk::new(MIB, 256), Fsync::No).unwrap_err();
    assert_eq!(err, AofError::BadSectorSize(256));
}

#[test]
fn a_superblock_from_another_sector_size_version_or_a_larger_disk_is_refused() {
    let (aof, _, _) = Aof::open(MemDisk::new(2 * MIB, 512), Fsync::No).unwrap();
    let image = aof.disk().to_bytes();
    let err = Aof::open(mem(image.clone(), 4096), Fsync::No).unwrap_err();
    assert_eq!(err, AofError::SectorSizeChanged { formatted: 512, attached: 4096 });
    let err = Aof::open(mem(image[..MIB as usize].to_vec(), 512), Fsync::No).unwrap_err();
    assert!(matches!(err, AofError::Shrunk { capacity, .. } if capacity == MIB), "{err}");
    // A newer format: a valid superblock (checksum and all) of version 2.
    let mut image = image;
    for copy in 0..2 {
        let sector = &mut image[copy * 512..(copy + 1) * 512];
        sector[8..12].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32c(0, &sector[..124]);
        sector[124..128].copy_from_slice(&crc.to_le_bytes());
    }
    let err = Aof::open(mem(image, 512), Fsync::No).unwrap_err();
    assert_eq!(err, AofError::Unsupported { version: 2 });
}

#[test]
fn a_superblock_whose_generation_could_wrap_is_refused() {
    let (aof, _, _) = Aof::open(MemDisk::new(MIB, 512), Fsync::No).unwrap();
    let image = aof.disk().to_bytes();
    for (generation, ok) in
        [(0u64, false), (1 << 63, false), (u64::MAX, false), ((1 << 62) + 1, true)]
    {
        let mut image = image.clone();
        for copy in 0..2 {
            let sector = &mut image[copy * 512..(copy + 1) * 512];
            sector[24..32].copy_from_slice(&generation.to_le_bytes());
            let crc = crc32c(0, &sector[..124]);
            sector[124..128].copy_from_slice(&crc.to_le_bytes());
        }
        match Aof::open(mem(image, 512), Fsync::No) {
            Err(e) => assert!(!ok && e == AofError::Corrupt("generation out of range"), "{e}"),
            Ok((mut aof, _, report)) => {
                assert!(ok && report.generation == generation, "{generation:#x}");
                aof.compact(&mut core::iter::empty()).unwrap();
            }
        }
    }
}

#[test]
fn a_grown_disk_keeps_its_log() {
    let (mut aof, _, _) = Aof::open(MemDisk::new(MIB, 512), Fsync::No).unwrap();
    commit_each(&mut aof, &sets(0..5));
    let mut image = aof.disk().to_bytes();
    image.resize(4 * MIB as usize, 0);
    let (_, replay, report) = Aof::open(mem(image, 512), Fsync::No).unwrap();
    assert_eq!(replay, sets(0..5));
    assert_eq!(report.area_bytes, (MIB / 512 - 2) / 2 * 512);
}

#[test]
fn a_damaged_superblock_copy_is_outvoted_by_the_other() {
    let (mut aof, _, _) = Aof::open(MemDisk::new(MIB, 512), Fsync::Always).unwrap();
    commit_each(&mut aof, &sets(0..3));
    aof.compact(&mut sets(0..3).into_iter()).unwrap();
    commit_each(&mut aof, &sets(3..6));
    let image = aof.disk().to_bytes();
    for copy in 0..2 {
        let mut image = image.clone();
        image[copy * 512 + 30] ^= 0x40;
        let (_, replay, report) = Aof::open(mem(image, 512), Fsync::Always).unwrap();
        assert_eq!(replay, sets(0..6), "copy {copy}");
        assert_eq!((report.generation, report.cut), (2, None));
    }
    // Both copies damaged: not zero, no superblock.
    let mut image = image;
    image[30] ^= 0x40;
    image[512 + 30] ^= 0x40;
    assert_eq!(Aof::open(mem(image, 512), Fsync::Always).unwrap_err(), AofError::Unrecognised);
}

#[test]
fn a_torn_last_record_is_cut_and_reported_once() {
    for ss in [512u32, 4096] {
        let (mut aof, _, _) = Aof::open(MemDisk::new(2 * MIB, ss), Fsync::Always).unwrap();
        commit_each(&mut aof, &sets(0..20));
        // The last record, two sectors long: its second sector never landed.
        let last = vec![b"SET".to_vec(), b"last".to_vec(), vec![b'z'; ss as usize]];
        append(&mut aof, &last);
        aof.commit().unwrap();
        let mut image = aof.disk().to_bytes();
        let at = find(&image, b"zzzz");
        let sector_end = (at / ss as usize + 1) * ss as usize;
        image[sector_end..sector_end + ss as usize].fill(0);
        let (aof, replay, report) = Aof::open(mem(image, ss), Fsync::Always).unwrap();
        assert_eq!(replay, sets(0..20), "ss {ss}");
        let cut = report.cut.expect("a cut");
        assert_eq!(cut.reason, CutReason::ChecksumMismatch);
        assert_eq!((cut.dropped_records, cut.bytes), (0, 2 * u64::from(ss)));
        assert_eq!(cut.offset as usize, sector_end - ss as usize);
        let line = report.to_string();
        assert!(line.contains("checksum mismatch (torn tail)"), "{line}");
        assert!(line.contains(&format!("at offset {}", cut.offset)), "{line}");
        // The cut is final: reopening finds a clean log, and appends go on.
        let image = aof.disk().to_bytes();
        let (mut aof, replay, report) = Aof::open(mem(image, ss), Fsync::Always).unwrap();
        assert_eq!((replay.len(), report.cut), (20, None));
        commit_each(&mut aof, &sets(20..25));
        let (_, replay, _) = Aof::open(mem(aof.disk().to_bytes(), ss), Fsync::Always).unwrap();
        assert_eq!(replay, sets(0..25));
    }
}

#[test]
fn a_flipped_byte_in_the_middle_cuts_there_and_counts_what_follows() {
    let (mut aof, _, _) = Aof::open(MemDisk::new(MIB, 512), Fsync::Always).unwrap();
    commit_each(&mut aof, &sets(0..50));
    let mut image = aof.disk().to_bytes();
    let at = find(&image, b"value-20-");
    image[at + 3] ^= 0x01;
    let (aof, replay, report) = Aof::open(mem(image, 512), Fsync::Always).unwrap();
    assert_eq!(replay, sets(0..20));
    let cut = report.cut.expect("a cut");
    assert_eq!(cut.reason, CutReason::ChecksumMismatch);
    assert_eq!((cut.dropped_records, cut.dropped_commands), (29, 29));
    assert_eq!(cut.offset as usize, at / 512 * 512);
    let line = report.to_string();
    assert!(line.contains("checksum mismatch, dropping 29 later records (29 commands)"), "{line}");
    // Records after the cut never come back, even where new records line
    // up with them exactly.
    let mut aof = aof;
    commit_each(&mut aof, &sets(100..101));
    let (_, replay, report) = Aof::open(mem(aof.disk().to_bytes(), 512), Fsync::Always).unwrap();
    let mut want = sets(0..20);
    want.extend(sets(100..101));
    assert_eq!((replay, report.cut), (want, None));
}

#[test]
fn a_corrupt_header_is_cut_too() {
    let (mut aof, _, _) = Aof::open(MemDisk::new(MIB, 512), Fsync::Always).unwrap();
    commit_each(&mut aof, &sets(0..10));
    let mut image = aof.disk().to_bytes();
    let at = find(&image, b"value-5-") / 512 * 512;
    image[at] ^= 0xff; // the magic
    let (_, replay, report) = Aof::open(mem(image.clone(), 512), Fsync::Always).unwrap();
    assert_eq!(replay, sets(0..5));
    let cut = report.cut.unwrap();
    assert_eq!((cut.reason, cut.dropped_records), (CutReason::BadHeader, 4));
    // A length that reaches past the area.
    image[at] ^= 0xff;
    image[at + 8..at + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    let (_, replay, report) = Aof::open(mem(image, 512), Fsync::Always).unwrap();
    assert_eq!(replay, sets(0..5));
    assert_eq!(report.cut.unwrap().reason, CutReason::BadHeader);
}

/// The scenario the boot number exists for: a host crash keeps a later
/// record but loses the one before it; after the cut, a new record takes
/// exactly the lost one's place, and another host crash loses the zero
/// sector written after it. The old later record, next in sequence, must
/// not follow it.
#[test]
fn records_behind_a_cut_never_come_back() {
    let disk = CrashDisk::zeroed(MIB, 512, 1);
    let (mut aof, _, _) = Aof::open(disk.clone(), Fsync::No).unwrap();
    commit_each(&mut aof, &sets(0..3));
    aof.sync().unwrap();
    commit_each(&mut aof, &[set("a", "old-1"), set("b", "old-2"), set("c", "old-3")]);
    // Power loss: the write of old-1 is lost, old-2 and old-3 land.
    let mut image = disk.power_loss();
    let current = disk.kill();
    let p1 = find(&current, b"old-1") / 512 * 512;
    image[p1..p1 + 512].fill(0);
    for v in [b"old-2", b"old-3"] {
        let p = find(&current, v) / 512 * 512;
        image[p..p + 512].copy_from_slice(&current[p..p + 512]);
    }
    let disk = CrashDisk::new(image, 512, 2);
    let (mut aof, replay, report) = Aof::open(disk.clone(), Fsync::No).unwrap();
    assert_eq!(replay, sets(0..3));
    let cut = report.cut.expect("lost write reported");
    assert_eq!((cut.reason, cut.dropped_records), (CutReason::Hole, 2));
    assert!(report.to_string().contains("unwritten sector, dropping 2 later records"));
    // Same size as old-1's record: lands exactly where it was.
    commit_each(&mut aof, &[set("a", "new-1")]);
    let mut image = disk.kill();
    assert_eq!(find(&image, b"new-1") / 512 * 512, p1);
    let p2 = p1 + 512;
    assert!(image[p2..p2 + 512].iter().all(|&b| b == 0), "zero sector after new-1");
    image[p2..p2 + 512].copy_from_slice(&current[p2..p2 + 512]);
    let (_, replay, report) = Aof::open(CrashDisk::new(image, 512, 3), Fsync::No).unwrap();
    let mut want = sets(0..3);
    want.push(set("a", "new-1"));
    assert_eq!(replay, want);
    assert_eq!(report.cut.map(|c| c.reason), Some(CutReason::Stale));
}

#[test]
fn compaction_preserves_the_dataset_and_alternates_areas() {
    let (mut aof, _, _) = Aof::open(MemDisk::new(MIB, 512), Fsync::Always).unwrap();
    let mut model = BTreeMap::new();
    for round in 0..5 {
        for i in 0..30 {
            let (k, v) = (format!("k{}", i % 7), format!("v{round}-{i}"));
            append(&mut aof, &set(&k, &v));
            aof.commit().unwrap();
            model.insert(k, v);
        }
        let snapshot: Vec<_> = model.iter().map(|(k, v)| set(k, v)).collect();
        aof.compact(&mut snapshot.clone().into_iter()).unwrap();
        assert_eq!(aof.sb.generation, round + 2);
        assert_eq!(aof.sb.live, (round as u32 + 1) % 2);
        let (_, replay, report) =
            Aof::open(mem(aof.disk().to_bytes(), 512), Fsync::Always).unwrap();
        assert_eq!(replay, snapshot);
        assert_eq!((report.snapshot_commands, report.cut), (7, None));
    }
    // An empty snapshot leaves an empty log, not the area's old records.
    aof.compact(&mut std::iter::empty()).unwrap();
    aof.compact(&mut std::iter::empty()).unwrap();
    let (_, replay, report) = Aof::open(mem(aof.disk().to_bytes(), 512), Fsync::Always).unwrap();
    assert_eq!((replay.len(), report.cut), (0, None));
}

#[test]
fn a_large_snapshot_spans_many_records_and_chunks() {
    let (mut aof, _, _) = Aof::open(MemDisk::new(8 * MIB, 512), Fsync::No).unwrap();
    let snapshot: Vec<_> = (0..40_000)
        .map(|i| set(&format!("key{i}"), &format!("{i:0>50}")))
        .chain([vec![b"SET".to_vec(), b"huge".to_vec(), vec![7; 300_000]]])
        .collect();
    aof.compact(&mut snapshot.clone().into_iter()).unwrap();
    assert!(aof.log_bytes() > 2 * CHUNK as u64);
    let (_, replay, report) = Aof::open(mem(aof.disk().to_bytes(), 512), Fsync::No).unwrap();
    assert_eq!(replay, snapshot);
    assert!(report.records > 20, "{report:?}");
    assert_eq!(report.snapshot_commands, 40_001);
}

#[test]
fn a_crash_anywhere_in_a_compaction_leaves_the_old_log_or_the_new() {
    let old = sets(0..40);
    let new: Vec<_> = (0..40).map(|i| set(&format!("key{i}"), "compacted")).collect();
    for power in [false, true] {
        for budget in 0..40 {
            let disk = CrashDisk::zeroed(MIB, 512, budget);
            let (mut aof, _, _) = Aof::open(disk.clone(), Fsync::Always).unwrap();
            commit_each(&mut aof, &old);
            disk.die_after(budget);
            let done = aof.compact(&mut new.clone().into_iter()).is_ok();
            let image = if power { disk.power_loss() } else { disk.kill() };
            let (_, replay, report) = Aof::open(CrashDisk::new(image, 512, 0), Fsync::Always)
                .unwrap_or_else(|e| panic!("budget {budget}: {e}"));
            assert!(replay == old || replay == new, "budget {budget} power {power}: {report}");
            if done {
                assert_eq!(replay, new, "budget {budget}");
            }
        }
    }
}

#[test]
fn a_full_log_refuses_commits_until_compaction_makes_room() {
    let (mut aof, _, _) = Aof::open(MemDisk::new(MIB, 512), Fsync::Always).unwrap();
    let value = "v".repeat(400);
    let mut n = 0;
    let err = loop {
        append(&mut aof, &set(&format!("k{}", n % 10), &value));
        match aof.commit() {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
        assert!(n < 5000);
    };
    assert_eq!(err, AofError::Full);
    assert!(aof.wants_compaction());
    // The failed command stays queued (the log stays a faithful history)
    // and fails again.
    assert_eq!(aof.commit(), Err(AofError::Full));
    let snapshot: Vec<_> = (0..10).map(|i| set(&format!("k{i}"), &value)).collect();
    aof.compact(&mut snapshot.clone().into_iter()).unwrap();
    assert!(!aof.wants_compaction());
    commit_each(&mut aof, &[set("after", "compaction")]);
    let (_, replay, _) = Aof::open(mem(aof.disk().to_bytes(), 512), Fsync::Always).unwrap();
    let mut want = snapshot;
    want.push(set("after", "compaction"));
    assert_eq!(replay, want);
    // A snapshot larger than an area: Full, and the old log stays live.
    let huge = vec![vec![b"SET".to_vec(), b"huge".to_vec(), vec![1; MIB as usize]]];
    assert_eq!(aof.compact(&mut huge.into_iter()), Err(AofError::Full));
    // No retry at every tick: only once the log grows again, or a commit fails.
    assert!(!aof.wants_compaction());
    let (_, replay2, _) = Aof::open(mem(aof.disk().to_bytes(), 512), Fsync::Always).unwrap();
    assert_eq!(replay2, want);
}

#[test]
fn wants_compaction_when_the_log_fills_half_and_has_doubled() {
    let (mut aof, _, _) = Aof::open(MemDisk::new(MIB, 512), Fsync::No).unwrap();
    let area = aof.sb.area_sectors;
    while aof.tail * 2 < area {
        assert!(!aof.wants_compaction(), "tail {}", aof.tail);
        commit_each(&mut aof, &[set("k", "v")]);
    }
    assert!(aof.wants_compaction());
    aof.compact(&mut sets(0..1).into_iter()).unwrap();
    assert!(!aof.wants_compaction());
}

#[test]
fn a_failed_write_keeps_the_commands_for_the_next_commit() {
    let disk = CrashDisk::zeroed(MIB, 512, 0);
    let (mut aof, _, _) = Aof::open(disk.clone(), Fsync::Always).unwrap();
    commit_each(&mut aof, &sets(0..2));
    append(&mut aof, &sets(2..3)[0]);
    disk.0.borrow_mut().fail_write = true;
    assert_eq!(aof.commit(), Err(AofError::Disk(DiskError::Io(28))));
    append(&mut aof, &sets(3..4)[0]);
    aof.commit().unwrap();
    let (_, replay, _) = Aof::open(CrashDisk::new(disk.kill(), 512, 0), Fsync::Always).unwrap();
    assert_eq!(replay, sets(0..4));
}

#[test]
fn a_failed_flush_halts_the_log() {
    let disk = CrashDisk::zeroed(MIB, 512, 0);
    let (mut aof, _, _) = Aof::open(disk.clone(), Fsync::Always).unwrap();
    disk.0.borrow_mut().fail_flush = true;
    append(&mut aof, &sets(0..1)[0]);
    assert_eq!(aof.commit(), Err(AofError::Disk(DiskError::Io(5))));
    disk.0.borrow_mut().fail_flush = false;
    let halted = AofError::Halted(DiskError::Io(5));
    assert_eq!(aof.commit(), Err(halted));
    assert_eq!(aof.append(&[b"x"]), Err(halted));
    assert_eq!(aof.compact(&mut std::iter::empty()), Err(halted));
    assert!(!aof.wants_compaction());
    assert!(halted.to_string().contains("until kvd restarts"));
}

#[test]
fn a_read_only_disk_cannot_be_opened() {
    struct ReadOnly(MemDisk);
    impl Disk for ReadOnly {
        fn sector_size(&self) -> u32 {
            self.0.sector_size()
        }
        fn capacity(&self) -> u64 {
            self.0.capacity()
        }
        fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), DiskError> {
            self.0.read(sector, buf)
        }
        fn write(&self, _: u64, _: &[u8]) -> Result<(), DiskError> {
            Err(DiskError::ReadOnly)
        }
        fn flush(&self) -> Result<(), DiskError> {
            Ok(())
        }
    }
    let err = Aof::open(ReadOnly(MemDisk::new(MIB, 512)), Fsync::Always).unwrap_err();
    assert_eq!(err.to_string(), "disk error: disk is read-only");
}

#[test]
fn the_policies_flush_when_they_say() {
    for fsync in [Fsync::Always, Fsync::EverySec, Fsync::No] {
        let disk = CrashDisk::zeroed(MIB, 512, 0);
        let (mut aof, _, _) = Aof::open(disk.clone(), fsync).unwrap();
        let at_open = disk.flushes();
        commit_each(&mut aof, &sets(0..3));
        test_clock::advance(400);
        aof.tick().unwrap();
        let early = disk.flushes() - at_open;
        test_clock::advance(700);
        aof.tick().unwrap();
        let late = disk.flushes() - at_open;
        // A busy server flushes from commit too, once the second is up.
        commit_each(&mut aof, &sets(3..4));
        test_clock::advance(1000);
        commit_each(&mut aof, &sets(4..5));
        let busy = disk.flushes() - at_open;
        match fsync {
            Fsync::Always => assert_eq!((early, late, busy), (3, 3, 5)),
            Fsync::EverySec => assert_eq!((early, late, busy), (0, 1, 2)),
            Fsync::No => assert_eq!((early, late, busy), (0, 0, 0)),
        }
        aof.sync().unwrap();
        let (_, replay, _) = Aof::open(CrashDisk::new(disk.power_loss(), 512, 0), fsync).unwrap();
        assert_eq!(replay, sets(0..5), "{fsync} after sync");
    }
}

#[test]
fn everysec_flushes_a_second_after_the_oldest_unflushed_write() {
    let disk = CrashDisk::zeroed(MIB, 512, 0);
    let (mut aof, _, _) = Aof::open(disk.clone(), Fsync::EverySec).unwrap();
    let at_open = disk.flushes();
    // Idle for longer than a second (ticks find nothing to flush), then a
    // burst: its first commit is not held up by a flush.
    test_clock::advance(5000);
    aof.tick().unwrap();
    commit_each(&mut aof, &sets(0..2));
    assert_eq!(disk.flushes(), at_open, "no flush on the first write after idling");
    // Within the second, more commits and ticks: still none.
    test_clock::advance(999);
    commit_each(&mut aof, &sets(2..3));
    aof.tick().unwrap();
    assert_eq!(disk.flushes(), at_open);
    // A second after the first unflushed write: flushed, all of it.
    test_clock::advance(1);
    aof.tick().unwrap();
    assert_eq!(disk.flushes(), at_open + 1);
    let (_, replay, _) =
        Aof::open(CrashDisk::new(disk.power_loss(), 512, 0), Fsync::EverySec).unwrap();
    assert_eq!(replay, sets(0..3), "what was written before the flush survives a power loss");
    // Clean again: nothing to flush, however long it waits.
    test_clock::advance(3000);
    aof.tick().unwrap();
    assert_eq!(disk.flushes(), at_open + 1);
    // The next write starts a new second.
    commit_each(&mut aof, &sets(3..4));
    test_clock::advance(500);
    commit_each(&mut aof, &sets(4..5));
    assert_eq!(disk.flushes(), at_open + 1);
    test_clock::advance(500);
    commit_each(&mut aof, &sets(5..6));
    assert_eq!(disk.flushes(), at_open + 2, "a busy server flushes from commit");
}

#[test]
fn sector_sizes_up_to_64k_work() {
    for ss in [512u32, 1024, 4096, 65536] {
        let (mut aof, _, _) = Aof::open(MemDisk::new(MIB, ss), Fsync::Always).unwrap();
        commit_each(&mut aof, &sets(0..5));
        aof.compact(&mut sets(0..5).into_iter()).unwrap();
        commit_each(&mut aof, &sets(5..6));
        let (_, replay, report) = Aof::open(mem(aof.disk().to_bytes(), ss), Fsync::Always).unwrap();
        assert_eq!(replay, sets(0..6), "ss {ss}");
        assert_eq!(report.cut, None);
    }
}

// --- Property loops ---------------------------------------------------------

/// The engine the tests pretend to be: a map, and the history of commands
/// that built it.
#[derive(Debug, Default)]
struct Model {
    history: Vec<Vec<Vec<u8>>>,
    /// The state after the whole history.
    now: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Commands known to be written (commit or compaction returned), and
    /// known to be flushed.
    written: usize,
    flushed: usize,
    next_value: u64,
}

fn apply(map: &mut BTreeMap<Vec<u8>, Vec<u8>>, cmd: &[Vec<u8>]) {
    match cmd[0].as_slice() {
        b"SET" => {
            map.insert(cmd[1].clone(), cmd[2].clone());
        }
        b"DEL" => {
            map.remove(&cmd[1]);
        }
        other => panic!("unexpected command {other:?}"),
    }
}

impl Model {
    fn state(&self, n: usize) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut map = BTreeMap::new();
        for c in &self.history[..n] {
            apply(&mut map, c);
        }
        map
    }

    /// A command that changes the state: a SET of a value never used, or a
    /// DEL of a key that is there.
    fn command(&mut self, rng: &mut Rng) -> Vec<Vec<u8>> {
        let key = format!("k{}", rng.below(40)).into_bytes();
        let cmd = if self.now.contains_key(&key) && rng.chance(15) {
            vec![b"DEL".to_vec(), key]
        } else {
            self.next_value += 1;
            let most = if rng.chance(5) { 3000 } else { 60 };
            let pad = "p".repeat(rng.below(most) as usize);
            vec![b"SET".to_vec(), key, format!("v{}{pad}", self.next_value).into_bytes()]
        };
        apply(&mut self.now, &cmd);
        self.history.push(cmd.clone());
        cmd
    }

    /// Forgets the history past `n` commands.
    fn truncate(&mut self, n: usize) {
        if n < self.history.len() {
            self.history.truncate(n);
            self.now = self.state(n);
        }
    }

    /// Checks a recovery: the replayed state is the state after some
    /// prefix of the history no shorter than `floor`; returns its length.
    fn recovered(&self, replay: &[Vec<Vec<u8>>], floor: usize, what: &str) -> usize {
        let mut got = BTreeMap::new();
        for c in replay {
            apply(&mut got, c);
        }
        let mut state = self.state(floor);
        for n in floor..=self.history.len() {
            if n > floor {
                apply(&mut state, &self.history[n - 1]);
            }
            if state == got {
                return n;
            }
        }
        panic!(
            "{what}: recovered state matches no prefix of the history between {floor} and {} \
             ({} keys recovered)",
            self.history.len(),
            got.len()
        );
    }
}

/// One run: a log on a crashing disk, random appends, commits, ticks and
/// compactions, crashes (kill or power loss, between calls or inside one),
/// reopen and check, `crashes` times.
fn crash_loop(seed: u64, crashes: u64) -> u64 {
    let mut rng = Rng(seed);
    let ss = [512u32, 512, 4096][rng.below(3) as usize];
    let capacity = [MIB, 2 * MIB][rng.below(2) as usize];
    let fsync = [Fsync::Always, Fsync::EverySec, Fsync::No][rng.below(3) as usize];
    let mut m = Model::default();
    let asynchronous = rng.chance(50);
    let fresh = |image: Vec<u8>, seed: u64| {
        let d = CrashDisk::new(image, ss as usize, seed);
        if asynchronous { d.asynchronous() } else { d }
    };
    let mut disk = fresh(vec![0; capacity as usize], rng.next());
    let mut cuts = 0;
    for round in 0..crashes {
        let what = format!("seed {seed} round {round} ({fsync}, {ss}-byte sectors)");
        // Open, perhaps dying inside the open too.
        if rng.chance(10) {
            disk.die_after(rng.below(4));
        }
        let (mut aof, replay, report) = match Aof::open(disk.clone(), fsync) {
            Ok(opened) => opened,
            Err(e) => {
                assert!(disk.dead(), "{what}: open failed: {e}");
                disk = fresh(disk.kill(), rng.next());
                continue;
            }
        };
        disk.0.borrow_mut().budget = None;
        let n = m.recovered(&replay, m.flushed.min(m.written), &what);
        assert_eq!(report.commands as usize, replay.len(), "{what}");
        cuts += u64::from(report.cut.is_some());
        m.truncate(n);
        (m.written, m.flushed) = (n, n);
        // Work until the crash.
        let kill = rng.chance(50);
        if rng.chance(60) {
            disk.die_after(rng.below(30));
        }
        let steps = rng.below(60);
        // What each started flush covers (by ticket), and the completions
        // already credited.
        let mut covers = std::collections::HashMap::new();
        let mut credited = disk.completed().len();
        for _ in 0..steps {
            if disk.dead() {
                break;
            }
            let flushes = disk.flushes();
            let starts = disk.flush_starts();
            let written_before = m.written;
            let (ok, writes) = match rng.below(100) {
                0..=79 => {
                    for _ in 0..1 + rng.below(4) {
                        let c = m.command(&mut rng);
                        append(&mut aof, &c);
                    }
                    (aof.commit().is_ok(), true)
                }
                80..=89 => {
                    test_clock::advance(rng.below(1500));
                    (aof.tick().is_ok(), false)
                }
                _ if aof.wants_compaction() || rng.chance(20) => {
                    let mut snap =
                        m.now.iter().map(|(k, v)| vec![b"SET".to_vec(), k.clone(), v.clone()]);
                    (aof.compact(&mut snap).is_ok(), true)
                }
                _ => (true, false),
            };
            if ok && writes {
                m.written = m.history.len();
            }
            // A started flush covers what was written before it: a commit
            // starts one after its write, a tick writes nothing.
            for t in starts + 1..=disk.flush_starts() {
                covers.insert(t, if ok { m.written } else { written_before });
            }
            let done = disk.completed();
            for t in &done[credited..] {
                m.flushed = m.flushed.max(covers[t]);
            }
            credited = done.len();
            // A flush makes durable what was written before it: all of it
            // if the call succeeded, what was written before the call if not.
            if disk.flushes() > flushes {
                m.flushed = m.flushed.max(if ok { m.written } else { written_before });
            }
            if !ok && !disk.dead() {
                // Full: compaction is due.
                assert!(aof.wants_compaction(), "{what}: a commit failed on a live disk");
            }
        }
        let image = if kill { disk.kill() } else { disk.power_loss() };
        if kill {
            // The host kept every write: everything written survives.
            m.flushed = m.written;
        }
        disk = fresh(image, rng.next());
    }
    cuts
}

#[test]
fn random_crashes_lose_nothing_acknowledged_and_invent_nothing() {
    let cuts: u64 = (0..rounds(12)).map(|seed| crash_loop(seed, 40)).sum();
    // Torn writes happen, and recoveries cut them: without any, the loop
    // would test little.
    assert!(cuts > 10, "only {cuts} recoveries cut anything");
}

/// Random damage anywhere in the areas: open never panics, and what it
/// replays is always a prefix of what was written.
#[test]
fn random_damage_replays_a_prefix_or_nothing_invented() {
    let mut rng = Rng(77);
    for round in 0..rounds(12) * 10 {
        let ss = [512u32, 4096][rng.below(2) as usize];
        let (mut aof, _, _) = Aof::open(MemDisk::new(MIB, ss), Fsync::No).unwrap();
        let cmds = sets(0..(rng.below(60) as usize));
        if rng.chance(30) {
            aof.compact(&mut cmds[..cmds.len() / 2].iter().cloned()).unwrap();
            commit_each(&mut aof, &cmds[cmds.len() / 2..]);
        } else {
            commit_each(&mut aof, &cmds);
        }
        let mut image = aof.disk().to_bytes();
        let sb = Superblock::decode(&image[..512]).unwrap().0;
        let area = (sb.live_start() * u64::from(ss)) as usize;
        let used = aof.log_bytes() as usize + ss as usize;
        for _ in 0..1 + rng.below(5) {
            let at = area + rng.below(used as u64) as usize;
            match rng.below(3) {
                0 => image[at] ^= 1 << rng.below(8),
                1 => image[at] = rng.next() as u8,
                _ => {
                    let n = (rng.below(2 * HEADER_LEN as u64) as usize).min(image.len() - at);
                    image[at..at + n].fill(0);
                }
            }
        }
        let (_, replay, report) = Aof::open(mem(image, ss), Fsync::No).unwrap();
        assert!(replay.len() <= cmds.len(), "round {round}");
        assert_eq!(replay[..], cmds[..replay.len()], "round {round}: {report}");
    }
}

/// Garbage that carries valid superblocks: open returns an error or a
/// log, never panics or reads outside the disk.
#[test]
fn garbage_behind_a_valid_superblock_does_not_panic() {
    let mut rng = Rng(99);
    for _ in 0..rounds(12) * 5 {
        let ss = 512;
        let mut image: Vec<u8> = (0..MIB / 8).flat_map(|_| rng.next().to_le_bytes()).collect();
        let sectors = MIB / u64::from(ss);
        let mut sb = Superblock::fresh(ss, sectors, 1);
        sb.epoch = 1;
        let sector = &mut image[..ss as usize];
        sb.encode(sector);
        // Plant records with valid checksums but hostile counts and lengths.
        let start = (sb.live_start() * u64::from(ss)) as usize;
        let mut at = start;
        for _ in 0..20 {
            let mut payload: Vec<u8> = (0..rng.below(200)).map(|_| rng.next() as u8).collect();
            if rng.chance(50) {
                let n = payload.len().min(4);
                payload[..n].fill(0xff);
            }
            let mut rec = Vec::new();
            let count = rng.next() as u32 % 5;
            let n = format::push_record(&mut rec, ss as usize, 1, 1, 1, 0, count, &payload);
            image[at..at + rec.len()].copy_from_slice(&rec);
            at += n as usize * ss as usize;
        }
        if let Ok((_, replay, _)) = Aof::open(mem(image, ss), Fsync::No) {
            assert!(replay.len() < 100);
        }
    }
}

/// `EverySec` on a disk whose flushes run beside the server (the tender's
/// flush thread): the flush is started, not waited for; it covers what was
/// written before it started and nothing after; at most one runs; a
/// clean shutdown waits for it and flushes the rest; `Always` never
/// leaves a flush in flight.
#[test]
fn an_everysec_flush_runs_beside_the_server_and_covers_what_came_before() {
    let disk = CrashDisk::zeroed(MIB, 512, 7).asynchronous();
    let (mut aof, _, _) = Aof::open(disk.clone(), Fsync::EverySec).unwrap();
    let sync_flushes = disk.flushes();
    commit_each(&mut aof, &sets(0..2));
    test_clock::advance(1000);
    // Due: this commit writes, then starts the flush, and returns.
    commit_each(&mut aof, &sets(2..3));
    assert_eq!(disk.flush_starts(), 1);
    assert!(aof.flushing());
    assert_eq!(disk.flushes(), sync_flushes, "nobody waited for a flush");
    // Written after the start: not covered.
    commit_each(&mut aof, &sets(3..5));
    // Due again while the first still runs: no second one (commits
    // poll it only when due, and it is still running at every poll).
    test_clock::advance(1000);
    disk.0.borrow_mut().fail_flush = false;
    while aof.flushing() && disk.flush_starts() == 1 {
        let before = disk.completed().len();
        commit_each(&mut aof, &sets(5..6));
        if disk.completed().len() == before {
            assert_eq!(disk.flush_starts(), 1, "a second flush while the first runs");
        }
    }
    // The first is done: what was written before it started survives a
    // power loss, whatever happens to the rest.
    assert_eq!(disk.completed()[0], 1);
    let survived = |image| Aof::open(CrashDisk::new(image, 512, 0), Fsync::EverySec).unwrap().1;
    for seed in 0..20 {
        disk.0.borrow_mut().rng = Rng(seed);
        let replay = survived(disk.power_loss());
        assert_eq!(replay[..3], sets(0..3)[..], "written before the start survives");
    }
    // A clean shutdown: everything, whatever was in flight.
    aof.sync().unwrap();
    assert!(!aof.flushing());
    let all = survived(disk.power_loss());
    assert_eq!(all[..5], sets(0..5)[..]);
    assert!(all[5..].iter().all(|c| *c == sets(5..6)[0]));

    // A failed flush halts the log, found by the tick that polls it.
    let disk = CrashDisk::zeroed(MIB, 512, 8).asynchronous();
    let (mut aof, _, _) = Aof::open(disk.clone(), Fsync::EverySec).unwrap();
    commit_each(&mut aof, &sets(0..1));
    test_clock::advance(1000);
    commit_each(&mut aof, &sets(1..2));
    assert!(aof.flushing());
    disk.0.borrow_mut().fail_flush = true;
    let mut failed = false;
    for _ in 0..64 {
        if aof.tick().is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "the failure was seen");
    let more = aof.append(&[b"SET", b"k", b"v"]).and_then(|()| aof.commit());
    assert!(matches!(more, Err(AofError::Halted(_))), "{more:?}");

    // `Always` flushes and waits at every commit: nothing in flight.
    let disk = CrashDisk::zeroed(MIB, 512, 9).asynchronous();
    let (mut aof, _, _) = Aof::open(disk.clone(), Fsync::Always).unwrap();
    let before = disk.flushes();
    commit_each(&mut aof, &sets(0..3));
    assert_eq!(disk.flushes(), before + 3);
    assert_eq!(disk.flush_starts(), 0);
    assert!(!aof.flushing());
}
