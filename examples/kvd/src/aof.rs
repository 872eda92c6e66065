//! kvd's persistence: an append-only log of commands on a raw block device,
//! replayed at start, cut where it is torn or corrupt, and compacted into a
//! snapshot when it grows. `docs/kvd-persistence.md` describes the format
//! and the guarantees; in short:
//!
//! * Sectors 0 and 1 hold two copies of the **superblock**, each written
//!   and flushed in turn, a copy that is not the current one first; the
//!   valid copy with the larger epoch wins, so a torn write never leaves
//!   the disk without a whole, current one. It names the live
//!   half of the disk (an **area**), the log's **generation** and the
//!   **boot** count, which every open increments.
//! * The live area holds **records**, one per [`Aof::commit`], each starting
//!   at a sector boundary: a 48-byte header (magic, length, command count,
//!   sequence number of its first command, generation, boot, CRC-32C of
//!   header and payload) and the commands. A commit writes its record and a
//!   zero sector after it, and never rewrites a sector that holds an earlier
//!   record, so a torn write can only damage the record being written.
//! * Replay stops at the first sector that is not a valid, in-sequence
//!   record of this generation whose boot is no older than its
//!   predecessor's; the rest is cut and reported. Because each open raises
//!   the boot count, records left behind a cut can never come back later.
//! * Compaction writes the engine's snapshot into the other area under a
//!   new generation, flushes, then switches the superblock and flushes: a
//!   crash leaves either the old or the new log.
//!
//! The log is generic over [`Disk`] so that all of it runs on the host in
//! tests; the guest uses `libos::block::BlockDevice`, the default type.

mod disk;
mod format;
mod replay;
#[cfg(test)]
mod tests;

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

pub use disk::{DefaultDisk, Disk, DiskError, MemDisk};
pub use format::crc32c;
use format::{
    HEADER_LEN, KIND_LOG, KIND_SNAPSHOT, SB_LEN, SB_MAGIC, Superblock, VERSION, encode_command,
    push_record,
};
use replay::{Scan, scan};

/// One command: its arguments, the name first.
pub type Command = Vec<Vec<u8>>;

/// Smallest disk the log accepts.
pub const MIN_CAPACITY: u64 = 1024 * 1024;
/// Snapshot records are closed at this payload size.
const SNAPSHOT_RECORD: usize = 64 * 1024;
/// Snapshots are written in chunks of this size, and reads look ahead this far.
const CHUNK: usize = 1024 * 1024;
/// `EverySec`: flush once the oldest write not yet flushed is this old.
const EVERYSEC_MS: u64 = 1000;

/// Milliseconds on a monotonic clock, for `EverySec`.
#[cfg(not(test))]
fn now_ms() -> u64 {
    libos::time::since_boot().as_millis() as u64
}

/// Milliseconds on the unit tests' clock, which they move by hand.
#[cfg(test)]
fn now_ms() -> u64 {
    test_clock::now()
}

/// The unit tests' clock: per thread, moved by hand.
#[cfg(test)]
pub mod test_clock {
    use std::cell::Cell;

    std::thread_local!(static NOW: Cell<u64> = const { Cell::new(0) });

    /// The current time in milliseconds.
    pub fn now() -> u64 {
        NOW.with(Cell::get)
    }

    /// Moves the clock forward.
    pub fn advance(ms: u64) {
        NOW.with(|n| n.set(n.get() + ms));
    }
}

// --- Policy, errors, report --------------------------------------------

/// When commits are made durable, as Redis's `appendfsync`.
///
/// Every policy writes each commit to the disk before [`Aof::commit`]
/// returns, so a committed command survives a kill of the tender (the host
/// keeps what was written). The policy decides what survives a host crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fsync {
    /// Flush before `commit` returns: an acknowledged write survives a host crash.
    Always,
    /// Flush at most once a second (in `commit` or `tick`): a host crash
    /// loses at most about the last second.
    #[default]
    EverySec,
    /// Never flush (the host writes back when it likes).
    No,
}

impl Fsync {
    /// The policy's name: `always`, `everysec` or `no`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::EverySec => "everysec",
            Self::No => "no",
        }
    }
}

impl fmt::Display for Fsync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy name other than `always`, `everysec` or `no`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseFsyncError;

impl fmt::Display for ParseFsyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("appendfsync must be always, everysec or no")
    }
}

impl core::error::Error for ParseFsyncError {}

impl FromStr for Fsync {
    type Err = ParseFsyncError;

    /// `always`, `everysec` or `no`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Always, Self::EverySec, Self::No]
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or(ParseFsyncError)
    }
}

/// Why the log cannot be opened or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AofError {
    /// The disk refused a request.
    Disk(DiskError),
    /// A flush failed earlier: what the host kept is unknown, so the log
    /// takes no more writes until kvd restarts and replays it.
    Halted(DiskError),
    /// The disk is smaller than [`MIN_CAPACITY`].
    TooSmall {
        /// Its capacity in bytes.
        capacity: u64,
    },
    /// The sector size is not a power of two of at least 512 bytes.
    BadSectorSize(u32),
    /// The disk is not all zeros and holds no kvd superblock.
    Unrecognised,
    /// The superblock is of a format version this kvd does not know.
    Unsupported {
        /// The version found.
        version: u32,
    },
    /// The disk was initialised with another sector size.
    SectorSizeChanged {
        /// The sector size in the superblock.
        formatted: u32,
        /// The sector size attached now.
        attached: u32,
    },
    /// The disk is smaller than when it was initialised.
    Shrunk {
        /// Bytes the log's layout needs.
        needed: u64,
        /// The capacity now.
        capacity: u64,
    },
    /// A superblock with a valid checksum but an impossible layout.
    Corrupt(&'static str),
    /// The record does not fit in the live area: compact, or the dataset
    /// does not fit in half the disk.
    Full,
}

impl fmt::Display for AofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disk(e) => write!(f, "disk error: {e}"),
            Self::Halted(e) => {
                write!(f, "an earlier flush failed ({e}): no more writes until kvd restarts")
            }
            Self::TooSmall { capacity } => write!(
                f,
                "disk of {capacity} bytes is too small: the log needs at least {} MiB",
                MIN_CAPACITY >> 20
            ),
            Self::BadSectorSize(s) => write!(f, "unsupported sector size {s}"),
            Self::Unrecognised => f.write_str(
                "the disk is not all zeros and holds no kvd log (no valid superblock in \
                 sectors 0 and 1): refusing to overwrite it; give kvd a zeroed disk \
                 (e.g. `truncate -s 64M kvd.img` on a new file)",
            ),
            Self::Unsupported { version } => {
                write!(f, "the log is in format version {version}; this kvd reads {VERSION}")
            }
            Self::SectorSizeChanged { formatted, attached } => write!(
                f,
                "the log was written with {formatted}-byte sectors, the disk is attached \
                 with {attached}-byte sectors"
            ),
            Self::Shrunk { needed, capacity } => {
                write!(f, "the disk shrank to {capacity} bytes; the log's layout needs {needed}")
            }
            Self::Corrupt(what) => write!(f, "corrupt superblock: {what}"),
            Self::Full => f.write_str("the log is full"),
        }
    }
}

impl core::error::Error for AofError {}

impl From<DiskError> for AofError {
    fn from(e: DiskError) -> Self {
        Self::Disk(e)
    }
}

/// Why replay stopped before the end of the valid-looking data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutReason {
    /// A record whose checksum does not match (torn or corrupt).
    ChecksumMismatch,
    /// A sector that is neither zero nor the start of a record.
    BadHeader,
    /// A valid record of another generation, or of an older boot than the
    /// record before it: an older write shows through where a newer one
    /// was lost.
    Stale,
    /// A record whose sequence number does not follow its predecessor's.
    SequenceGap {
        /// The sequence number expected.
        expected: u64,
        /// The one found.
        found: u64,
    },
    /// A record with a valid checksum whose commands do not decode.
    BadPayload,
    /// A zero sector where a record was expected, with records after it:
    /// a write was lost.
    Hole,
}

impl fmt::Display for CutReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ChecksumMismatch => f.write_str("checksum mismatch"),
            Self::BadHeader => f.write_str("no record header"),
            Self::Stale => f.write_str("stale record (an older write where a newer one was lost)"),
            Self::SequenceGap { expected, found } => {
                write!(f, "sequence gap (expected {expected}, found {found})")
            }
            Self::BadPayload => f.write_str("malformed commands"),
            Self::Hole => f.write_str("unwritten sector"),
        }
    }
}

/// What replay cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Byte offset on the disk where the first unusable record starts.
    pub offset: u64,
    /// Why it is unusable.
    pub reason: CutReason,
    /// Bytes cut: that record (its declared length, or one sector when
    /// there is no usable header), through the end of the last record dropped.
    pub bytes: u64,
    /// Valid-looking records after it, dropped with it (replay must not
    /// skip a record).
    pub dropped_records: u64,
    /// Commands in those records.
    pub dropped_commands: u64,
}

/// What [`Aof::open`] found: one line for the console with `Display`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// The disk was blank (see `blank`) and has been initialised.
    pub initialised: bool,
    /// The live log's generation (one per compaction, from 1).
    pub generation: u64,
    /// This boot's number (one per open, from 1).
    pub boot: u64,
    /// Records replayed.
    pub records: u64,
    /// Commands replayed, snapshot included.
    pub commands: u64,
    /// Of which from the snapshot that started the generation.
    pub snapshot_commands: u64,
    /// Bytes of the live log (whole sectors).
    pub log_bytes: u64,
    /// Bytes of each area.
    pub area_bytes: u64,
    /// What was cut, if anything.
    pub cut: Option<Cut>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.initialised {
            return write!(
                f,
                "aof: initialised an empty log (two areas of {} KiB), boot {}",
                self.area_bytes / 1024,
                self.boot
            );
        }
        write!(
            f,
            "aof: generation {}, boot {}: replayed {} commands ({} from the snapshot) in {} \
             records, {} of {} KiB used",
            self.generation,
            self.boot,
            self.commands,
            self.snapshot_commands,
            self.records,
            self.log_bytes.div_ceil(1024),
            self.area_bytes / 1024
        )?;
        if let Some(c) = self.cut {
            write!(f, "; cut {} bytes at offset {}: {}", c.bytes, c.offset, c.reason)?;
            if c.dropped_records == 0 {
                f.write_str(" (torn tail)")?;
            } else {
                write!(
                    f,
                    ", dropping {} later records ({} commands) after it",
                    c.dropped_records, c.dropped_commands
                )?;
            }
        }
        Ok(())
    }
}

// --- The log -------------------------------------------------------------

/// The append-only log on a disk.
pub struct Aof<D: Disk = DefaultDisk> {
    disk: D,
    fsync: Fsync,
    ss: usize,
    sb: Superblock,
    /// Sectors used in the live area: the next record goes here.
    tail: u64,
    /// Sectors of the snapshot at the start of the live area (or of the
    /// whole log when a compaction last failed for lack of room):
    /// compaction is due when the log has grown enough past it.
    base: u64,
    /// Sequence number of the next command.
    seq: u64,
    /// Highest generation used in this boot, by a compaction that
    /// succeeded or not: no generation is written twice in one boot.
    max_generation: u64,
    /// Encoded commands appended since the last commit.
    pending: Vec<u8>,
    pending_count: u32,
    /// The record being written, reused.
    buf: Vec<u8>,
    /// Written since the last flush.
    dirty: bool,
    /// When the oldest write not yet flushed was made (valid while
    /// `dirty`): `EverySec` flushes a second after it, not a second after
    /// the last flush, so that the first write after an idle second does
    /// not stall its batch on an `fdatasync` at once.
    dirty_since: u64,
    clock: fn() -> u64,
    /// The last commit did not fit.
    full: bool,
    halted: Option<DiskError>,
    /// The flush started by `EverySec` and not yet seen done (at most one):
    /// it covers what was written before it started.
    in_flight: Option<u64>,
    /// The superblock copy to write first: one that does not hold the
    /// current superblock, if there is one, so that a torn write never
    /// leaves the disk without a valid copy.
    sb_first: u64,
}

impl<D: Disk> fmt::Debug for Aof<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aof")
            .field("fsync", &self.fsync)
            .field("generation", &self.sb.generation)
            .field("boot", &self.sb.boot)
            .field("live", &self.sb.live)
            .field("tail", &self.tail)
            .field("seq", &self.seq)
            .field("pending", &self.pending_count)
            .field("halted", &self.halted)
            .finish_non_exhaustive()
    }
}

impl<D: Disk> Aof<D> {
    /// Opens the log on `disk`, initialising it if it is blank (see
    /// [`Aof::open_with`]; a new log starts at generation 1). Returns the
    /// commands to replay, oldest first, and what was found.
    pub fn open(disk: D, fsync: Fsync) -> Result<(Self, Vec<Command>, Report), AofError> {
        let mut commands = Vec::new();
        let (aof, report) = Self::open_with(disk, fsync, 0, &mut |c| commands.push(c))?;
        Ok((aof, commands, report))
    }

    /// Like [`Aof::open`], but hands each command to `replay` as it is
    /// read, so that the log need not be in memory twice. A disk is blank
    /// when it holds no superblock (or only one torn by a crash of the
    /// very first start) and its probed regions are zero (`blank`); a new
    /// log on it starts at generation `1 + (nonce >> 2)`. kvd passes a
    /// random `nonce`, so that records an earlier log left outside the
    /// probed regions can never pass for this one's (their generation
    /// differs): `docs/kvd-persistence.md`, "Initialising a disk".
    pub fn open_with(
        disk: D,
        fsync: Fsync,
        nonce: u64,
        replay: &mut dyn FnMut(Command),
    ) -> Result<(Self, Report), AofError> {
        let ss = disk.sector_size();
        if ss < 512 || !ss.is_power_of_two() {
            return Err(AofError::BadSectorSize(ss));
        }
        let capacity = disk.capacity();
        if capacity < MIN_CAPACITY {
            return Err(AofError::TooSmall { capacity });
        }
        let mut sector = vec![0u8; ss as usize];
        let mut copies: [Option<(Superblock, u32)>; 2] = [None, None];
        for (copy, found) in (0..).zip(copies.iter_mut()) {
            disk.read(copy, &mut sector)?;
            *found = Superblock::decode(&sector);
        }
        let best = match copies {
            [Some(a), Some(b)] => Some(if b.0.epoch > a.0.epoch { b } else { a }),
            [a, b] => a.or(b),
        };
        // Write first a copy that is not the current superblock.
        let sb_first = match copies {
            [Some(a), Some(b)] if a == b => 0,
            [Some(a), _] if best == Some(a) => 1,
            _ => 0,
        };
        let (sb, initialised) = match best {
            Some((sb, version)) => {
                sb.check(version, ss, capacity)?;
                (sb, false)
            }
            None if blank(&disk)? => {
                let generation = 1 + (nonce >> 2);
                (Superblock::fresh(ss, capacity / u64::from(ss), generation), true)
            }
            None => return Err(AofError::Unrecognised),
        };
        // A new log has nothing to replay (and nothing of its generation
        // past its start to report as cut: that would read 8 MiB).
        let (scan, cut) =
            if initialised { (Scan::empty(), None) } else { scan(&disk, &sb, replay)? };
        let mut aof = Self {
            ss: ss as usize,
            tail: scan.tail,
            base: scan.snapshot_sectors,
            seq: scan.seq,
            max_generation: sb.generation,
            pending: Vec::new(),
            pending_count: 0,
            in_flight: None,
            buf: Vec::new(),
            dirty: false,
            dirty_since: 0,
            clock: now_ms,
            full: false,
            halted: None,
            sb_first,
            sb,
            disk,
            fsync,
        };
        // A new boot number before anything is appended: records this boot
        // writes outrank whatever lies past the cut, which can therefore
        // never be replayed after them. The zero sector at the cut ends
        // the log there (later records were counted above).
        if scan.stop.is_some() {
            aof.buf.clear();
            aof.buf.resize(aof.ss, 0);
            aof.disk.write(aof.sb.live_start() + aof.tail, &aof.buf)?;
        }
        let next = Superblock { epoch: aof.sb.epoch + 1, boot: aof.sb.boot + 1, ..aof.sb };
        aof.write_superblock(next)?;
        let report = Report {
            initialised,
            generation: aof.sb.generation,
            boot: aof.sb.boot,
            records: scan.records,
            commands: scan.commands,
            snapshot_commands: scan.snapshot_commands,
            log_bytes: scan.tail * u64::from(ss),
            area_bytes: sb.area_sectors * u64::from(ss),
            cut,
        };
        Ok((aof, report))
    }

    /// The policy chosen at open.
    pub fn fsync(&self) -> Fsync {
        self.fsync
    }

    /// Bytes of the live log.
    pub fn log_bytes(&self) -> u64 {
        self.tail * self.ss as u64
    }

    /// Queues one command for the next [`Aof::commit`].
    pub fn append(&mut self, argv: &[&[u8]]) -> Result<(), AofError> {
        if let Some(e) = self.halted {
            return Err(AofError::Halted(e));
        }
        let mark = self.pending.len();
        let fits = encode_command(&mut self.pending, argv);
        if fits.is_err() || self.pending_count == u32::MAX {
            self.pending.truncate(mark);
            return Err(AofError::Full);
        }
        self.pending_count += 1;
        Ok(())
    }

    /// Writes the queued commands as one record (all or nothing after a
    /// crash) and, with `Always`, flushes before returning. On an error
    /// the commands stay queued, so that the log remains a faithful history
    /// of what the engine applied: the next commit retries them, and a
    /// compaction supersedes them.
    pub fn commit(&mut self) -> Result<(), AofError> {
        if let Some(e) = self.halted {
            return Err(AofError::Halted(e));
        }
        if self.pending_count > 0 {
            let ss = self.ss as u64;
            let room = self.sb.area_sectors - self.tail;
            let len = HEADER_LEN as u64 + self.pending.len() as u64;
            if len.div_ceil(ss) > room || self.pending.len() > u32::MAX as usize {
                self.full = true;
                return Err(AofError::Full);
            }
            self.buf.clear();
            let n = push_record(
                &mut self.buf,
                self.ss,
                KIND_LOG,
                self.seq,
                self.sb.generation,
                self.sb.boot,
                self.pending_count,
                &self.pending,
            );
            // The zero sector after the record ends the log there; the
            // next commit overwrites it (it holds no record).
            if n < room {
                self.buf.resize(self.buf.len() + self.ss, 0);
            }
            self.disk.write(self.sb.live_start() + self.tail, &self.buf)?;
            self.tail += n;
            self.seq += u64::from(self.pending_count);
            self.pending.clear();
            self.pending_count = 0;
            self.mark_dirty();
            self.full = false;
        }
        match self.fsync {
            Fsync::Always => self.flush_if_dirty(),
            Fsync::EverySec => self.start_due_flush(),
            Fsync::No => Ok(()),
        }
    }

    /// With `EverySec`, learns whether the flush in flight is done, and
    /// starts one if the oldest write not yet flushed is a second old or
    /// more. The flush runs in the tender's flush thread while kvd serves
    /// (as Redis's `everysec` runs in a thread of its own), at most one at
    /// a time: a flush still running when the next is due delays it.
    /// Call it at least once a second.
    pub fn tick(&mut self) -> Result<(), AofError> {
        if let Some(e) = self.halted {
            return Err(AofError::Halted(e));
        }
        self.poll_flush()?;
        self.start_due_flush()
    }

    /// Whether a flush is in flight.
    pub fn flushing(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Takes the answer of the flush in flight, if it has come; a failure
    /// halts the log, as a failed `fdatasync` does.
    fn poll_flush(&mut self) -> Result<(), AofError> {
        if let Some(t) = self.in_flight {
            match self.disk.flush_done(t) {
                None => {}
                Some(Ok(())) => self.in_flight = None,
                Some(Err(e)) => {
                    self.in_flight = None;
                    self.halted = Some(e);
                    return Err(AofError::Disk(e));
                }
            }
        }
        Ok(())
    }

    /// With `EverySec`, starts a flush if one is due and none is in flight
    /// (the writes made after it starts mark the log dirty again).
    fn start_due_flush(&mut self) -> Result<(), AofError> {
        if self.fsync != Fsync::EverySec
            || !self.dirty
            || (self.clock)().saturating_sub(self.dirty_since) < EVERYSEC_MS
        {
            return Ok(());
        }
        self.poll_flush()?;
        if self.in_flight.is_some() {
            return Ok(());
        }
        match self.disk.flush_start() {
            Ok(t) => {
                self.in_flight = Some(t);
                self.dirty = false;
                Ok(())
            }
            Err(e) => {
                self.halted = Some(e);
                Err(AofError::Disk(e))
            }
        }
    }

    /// Waits for the flush in flight, if any.
    fn wait_flush(&mut self) -> Result<(), AofError> {
        if let Some(t) = self.in_flight.take()
            && let Err(e) = self.disk.flush_wait(t)
        {
            self.halted = Some(e);
            return Err(AofError::Disk(e));
        }
        Ok(())
    }

    /// Commits what is queued and flushes, whatever the policy: for a clean
    /// shutdown.
    pub fn sync(&mut self) -> Result<(), AofError> {
        self.commit()?;
        self.flush_if_dirty()
    }

    /// Whether the log has grown enough that [`Aof::compact`] is worth it:
    /// it fills half its area and has doubled since the last snapshot, or
    /// it fills seven eighths and has grown by a sixteenth, or the last
    /// commit did not fit.
    pub fn wants_compaction(&self) -> bool {
        if self.halted.is_some() {
            return false;
        }
        let (used, area) = (self.tail, self.sb.area_sectors);
        let grown = used - self.base;
        self.full
            || (grown > 0 && used * 2 >= area && grown >= self.base)
            || (used * 8 >= area * 7 && grown * 16 >= area)
    }

    /// Replaces the log with `snapshot`, the commands that rebuild the
    /// engine's current dataset. The snapshot must reflect every command
    /// appended so far: queued commands are dropped, as the snapshot
    /// supersedes them. It is written to the other area under a new
    /// generation and flushed; then the superblock switches to it and is
    /// flushed. A crash at any point leaves the old log or the new one.
    /// On `Full` (the snapshot does not fit in an area) the old log stays,
    /// and `wants_compaction` says no until the log has grown again or a
    /// commit fails, so that a dataset too large for the disk does not
    /// make every timer tick rewrite it.
    pub fn compact(&mut self, snapshot: &mut dyn Iterator<Item = Command>) -> Result<(), AofError> {
        if let Some(e) = self.halted {
            return Err(AofError::Halted(e));
        }
        let result = self.write_snapshot(snapshot);
        if result == Err(AofError::Full) {
            self.full = false;
            self.base = self.tail;
        }
        result
    }

    fn write_snapshot(
        &mut self,
        snapshot: &mut dyn Iterator<Item = Command>,
    ) -> Result<(), AofError> {
        self.max_generation += 1;
        let generation = self.max_generation;
        let target = 1 - self.sb.live;
        let start = self.sb.areas[target as usize];
        let area = self.sb.area_sectors;
        let (ss, boot) = (self.ss, self.sb.boot);
        // Sectors written to the target area, and queued in `out`.
        let (mut written, mut queued) = (0u64, 0u64);
        let mut seq = 1u64;
        let mut payload = Vec::new();
        let mut count = 0u32;
        let mut out = Vec::new();
        let mut commands = snapshot.peekable();
        loop {
            let last = commands.peek().is_none();
            if let Some(argv) = commands.next() {
                let args: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
                encode_command(&mut payload, &args)?;
                count += 1;
            }
            if count > 0 && (last || payload.len() >= SNAPSHOT_RECORD || count == u32::MAX) {
                if payload.len() > u32::MAX as usize {
                    return Err(AofError::Full);
                }
                queued += push_record(
                    &mut out,
                    ss,
                    KIND_SNAPSHOT,
                    seq,
                    generation,
                    boot,
                    count,
                    &payload,
                );
                seq += u64::from(count);
                payload.clear();
                count = 0;
            }
            if last {
                break;
            }
            // Every write stays inside the target area: past it lies the
            // live area, or the end of the disk.
            if out.len() >= CHUNK {
                if written + queued > area {
                    return Err(AofError::Full);
                }
                self.disk.write(start + written, &out)?;
                written += queued;
                (queued, out) = (0, Vec::new());
            }
        }
        if written + queued > area {
            return Err(AofError::Full);
        }
        let used = written + queued;
        if used < area {
            out.resize(out.len() + ss, 0);
        }
        if !out.is_empty() {
            self.disk.write(start + written, &out)?;
        }
        let next = Superblock { epoch: self.sb.epoch + 1, generation, live: target, ..self.sb };
        self.write_superblock(next)?;
        self.tail = used;
        self.base = used;
        self.seq = seq;
        self.pending.clear();
        self.pending_count = 0;
        self.full = false;
        Ok(())
    }

    /// Makes `sb` current: flushes what came before (the records it
    /// vouches for), then writes and flushes one copy, then the other. The
    /// first is one that does not hold the current superblock (a copy torn
    /// or stale from an earlier crash), so that a torn write never leaves
    /// the disk without a valid copy; once it is on the disk the update
    /// holds, and the second is there so that one damaged sector cannot
    /// lose it. A failure halts the log: the update may or may not have
    /// reached the disk.
    fn write_superblock(&mut self, sb: Superblock) -> Result<(), AofError> {
        self.sync_disk()?;
        self.buf.clear();
        self.buf.resize(self.ss, 0);
        sb.encode(&mut self.buf);
        for copy in [self.sb_first, 1 - self.sb_first] {
            if let Err(e) = self.disk.write(copy, &self.buf) {
                self.halted = Some(e);
                return Err(AofError::Disk(e));
            }
            self.mark_dirty();
            self.sync_disk()?;
        }
        self.sb = sb;
        self.sb_first = 0;
        Ok(())
    }

    /// Records a write, and when it is the first since the last flush.
    fn mark_dirty(&mut self) {
        if !self.dirty {
            self.dirty = true;
            self.dirty_since = (self.clock)();
        }
    }

    fn flush_if_dirty(&mut self) -> Result<(), AofError> {
        if self.dirty { self.sync_disk() } else { self.wait_flush() }
    }

    /// Flushes the disk and waits, after the flush in flight (whose
    /// failure must not be hidden by this one's success). A failure halts
    /// the log: after a failed `fdatasync` the host may have dropped
    /// writes it reported done.
    fn sync_disk(&mut self) -> Result<(), AofError> {
        self.wait_flush()?;
        if let Err(e) = self.disk.flush() {
            self.halted = Some(e);
            return Err(AofError::Disk(e));
        }
        self.dirty = false;
        Ok(())
    }

    /// The disk, for tests that crash it.
    #[cfg(test)]
    fn disk(&self) -> &D {
        &self.disk
    }
}

/// Bytes probed at each place [`blank`] looks.
const PROBE: u64 = 1024 * 1024;

/// Whether the disk may be initialised. Sectors 0 and 1 hold nothing but
/// perhaps a superblock torn by a crash during the very first start (no
/// record is written before the first superblock is whole, so there is
/// nothing to lose; a torn superblock has non-zero bytes only in its first
/// `SB_LEN`, and only the magic's own at the magic's place), and these are
/// zero: the rest of the disk's first MiB (where area 0, and so any log
/// that was ever live there, begins, and where partition tables and file
/// systems keep their labels), the first MiB of area 1 of the layout a new
/// log would get (where a log compacted into area 1 begins), and the last
/// MiB (backup GPT, ZFS and MD labels). The rest is not read: a 1 GiB disk
/// costs 3 MiB of reads, not 1 GiB. What lies there cannot be replayed:
/// replay stops at the first sector of the area that is not a record of
/// the live generation, and a new log's generation is random
/// ([`Aof::open_with`]). `docs/kvd-persistence.md` gives the argument.
fn blank<D: Disk>(disk: &D) -> Result<bool, AofError> {
    let ss = u64::from(disk.sector_size());
    let mut sector = vec![0u8; ss as usize];
    for copy in 0..2 {
        disk.read(copy, &mut sector)?;
        let mut magic = sector[..SB_MAGIC.len()].iter().zip(SB_MAGIC);
        if sector[SB_LEN..].iter().any(|&b| b != 0) || magic.any(|(&b, m)| b != 0 && b != m) {
            return Ok(false);
        }
    }
    let sectors = disk.capacity() / ss;
    let per = PROBE / ss;
    let area1 = Superblock::fresh(ss as u32, sectors, 1).areas[1];
    for (from, to) in [(2, per), (area1, area1 + per), (sectors.saturating_sub(per), sectors)] {
        if !all_zero(disk, from.max(2), to.min(sectors))? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether every byte of sectors `from..to` is zero.
fn all_zero<D: Disk>(disk: &D, from: u64, to: u64) -> Result<bool, AofError> {
    let ss = u64::from(disk.sector_size());
    let per = CHUNK as u64 / ss;
    let mut buf = vec![0u8; CHUNK];
    let mut at = from;
    while at < to {
        let n = per.min(to - at);
        let chunk = &mut buf[..(n * ss) as usize];
        disk.read(at, chunk)?;
        if chunk.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n;
    }
    Ok(true)
}
