//! Replay: reading the live area record by record, and looking past where
//! it stops for what the cut drops.

use alloc::vec::Vec;

use super::format::{HEADER_LEN, Header, KIND_SNAPSHOT, Superblock, crc32c, decode_commands};
use super::{AofError, CHUNK, Command, Cut, CutReason, Disk};

/// Records after a cut are looked for until this many bytes pass without one.
const LATER_SCAN_GAP: u64 = 8 * 1024 * 1024;

/// Reads a range of sectors through a window of [`CHUNK`] bytes.
struct Reader<'d, D: Disk> {
    disk: &'d D,
    ss: u64,
    /// First sector of `buf`.
    first: u64,
    buf: Vec<u8>,
    /// Sectors at and past this one are never read.
    limit: u64,
}

impl<'d, D: Disk> Reader<'d, D> {
    fn new(disk: &'d D, limit: u64) -> Self {
        Self { disk, ss: u64::from(disk.sector_size()), first: 0, buf: Vec::new(), limit }
    }

    /// `n` sectors at `at` (`n` at most a window; `at + n <= limit`).
    fn sectors(&mut self, at: u64, n: u64) -> Result<&[u8], AofError> {
        let have = self.buf.len() as u64 / self.ss;
        if at < self.first || at + n > self.first + have {
            let want = (CHUNK as u64 / self.ss).max(n).min(self.limit - at);
            self.buf.resize((want * self.ss) as usize, 0);
            self.disk.read(at, &mut self.buf)?;
            self.first = at;
        }
        let off = ((at - self.first) * self.ss) as usize;
        Ok(&self.buf[off..off + (n * self.ss) as usize])
    }

    /// Feeds the `len` bytes starting at sector `at` to `f`, a window at a time.
    fn stream(&mut self, at: u64, len: u64, mut f: impl FnMut(&[u8])) -> Result<(), AofError> {
        let (mut s, mut left) = (at, len);
        let window = CHUNK as u64 / self.ss;
        while left > 0 {
            let n = left.div_ceil(self.ss).min(window);
            let bytes = self.sectors(s, n)?;
            let take = left.min(bytes.len() as u64) as usize;
            f(&bytes[..take]);
            s += n;
            left -= take as u64;
        }
        Ok(())
    }

    /// The record starting at sector `at` if its checksum holds, with the
    /// sectors it takes; `Err(reason)` otherwise. `end` bounds the area.
    fn record(&mut self, at: u64, end: u64) -> Result<Result<(Header, u64), CutReason>, AofError> {
        let Some(h) = Header::parse(self.sectors(at, 1)?) else {
            return Ok(Err(CutReason::BadHeader));
        };
        let n = h.sectors(self.ss);
        if n > end - at {
            return Ok(Err(CutReason::BadHeader));
        }
        let mut crc = crc32c(0, &h.bytes());
        let mut skip = HEADER_LEN;
        self.stream(at, HEADER_LEN as u64 + u64::from(h.len), |b| {
            crc = crc32c(crc, &b[skip..]);
            skip = 0;
        })?;
        Ok(if crc == h.crc { Ok((h, n)) } else { Err(CutReason::ChecksumMismatch) })
    }

    /// The payload of a record whose checksum holds.
    fn payload(&mut self, at: u64, h: &Header) -> Result<Vec<u8>, AofError> {
        let mut out = Vec::with_capacity(HEADER_LEN + h.len as usize);
        self.stream(at, HEADER_LEN as u64 + u64::from(h.len), |b| out.extend_from_slice(b))?;
        out.drain(..HEADER_LEN);
        Ok(out)
    }
}

/// Where replay of an area stopped.
#[derive(Debug)]
pub(super) struct Scan {
    /// Sectors of valid log.
    pub(super) tail: u64,
    /// Sequence number of the next command.
    pub(super) seq: u64,
    /// Boot of the last valid record (0 if none).
    pub(super) last_boot: u64,
    pub(super) records: u64,
    pub(super) commands: u64,
    pub(super) snapshot_commands: u64,
    /// Sectors of the snapshot that starts the generation.
    pub(super) snapshot_sectors: u64,
    /// Why it stopped inside the area: `None` at a zero sector or the end.
    pub(super) stop: Option<(CutReason, u64)>,
}

impl Scan {
    /// A new log's: nothing written yet.
    pub(super) fn empty() -> Self {
        Self {
            tail: 0,
            seq: 1,
            last_boot: 0,
            records: 0,
            commands: 0,
            snapshot_commands: 0,
            snapshot_sectors: 0,
            stop: None,
        }
    }
}

/// Replays the live area of `sb`, feeding each command to `replay`.
pub(super) fn scan<D: Disk>(
    disk: &D,
    sb: &Superblock,
    replay: &mut dyn FnMut(Command),
) -> Result<(Scan, Option<Cut>), AofError> {
    let start = sb.live_start();
    let end = sb.area_sectors;
    let ss = u64::from(sb.sector_size);
    let mut r = Reader::new(disk, start + end);
    let mut s = Scan::empty();
    while s.tail < end {
        let at = start + s.tail;
        if r.sectors(at, 1)?.iter().all(|&b| b == 0) {
            break;
        }
        let (h, n) = match r.record(at, start + end)? {
            Ok(found) => found,
            Err(reason) => {
                let n = Header::parse(r.sectors(at, 1)?).map_or(1, |h| h.sectors(ss));
                s.stop = Some((reason, n));
                break;
            }
        };
        let reason = if h.generation != sb.generation || h.boot < s.last_boot || h.boot > sb.boot {
            Some(CutReason::Stale)
        } else if h.seq != s.seq {
            Some(CutReason::SequenceGap { expected: s.seq, found: h.seq })
        } else {
            None
        };
        let commands = match reason {
            Some(_) => None,
            None => decode_commands(&r.payload(at, &h)?, h.count),
        };
        let Some(commands) = commands else {
            s.stop = Some((reason.unwrap_or(CutReason::BadPayload), n));
            break;
        };
        for c in commands {
            replay(c);
        }
        // The snapshot is the run of snapshot records at the start.
        if h.kind == KIND_SNAPSHOT && s.snapshot_sectors == s.tail {
            s.snapshot_sectors += n;
            s.snapshot_commands += u64::from(h.count);
        }
        s.records += 1;
        s.commands += u64::from(h.count);
        s.tail += n;
        s.seq += u64::from(h.count);
        s.last_boot = h.boot;
    }
    let cut = later_records(&mut r, sb, &s)?;
    Ok((s, cut))
}

/// Looks past where replay stopped for records that would have followed
/// (this generation, no older boot, checksums that hold): they are lost
/// with the cut, and the report counts them.
fn later_records<D: Disk>(
    r: &mut Reader<'_, D>,
    sb: &Superblock,
    s: &Scan,
) -> Result<Option<Cut>, AofError> {
    let start = sb.live_start();
    let end = sb.area_sectors;
    let ss = u64::from(sb.sector_size);
    if s.tail >= end {
        return Ok(None);
    }
    // The bad record's own extent (one sector for a zero sector or an
    // unusable header); the scan still starts at its second sector, as a
    // corrupt header may declare any length.
    let bad_end = (s.tail + s.stop.map_or(1, |(_, n)| n.max(1))).min(end);
    let (mut at, mut cut_end, mut quiet_from) = (s.tail + 1, bad_end, s.tail + 1);
    let (mut records, mut commands) = (0, 0);
    while at < end && (at - quiet_from) * ss < LATER_SCAN_GAP {
        let later = match Header::parse(r.sectors(start + at, 1)?) {
            Some(h)
                if h.generation == sb.generation
                    && (s.last_boot..=sb.boot).contains(&h.boot)
                    && h.seq >= s.seq =>
            {
                r.record(start + at, start + end)?.ok()
            }
            _ => None,
        };
        match later {
            Some((h, n)) => {
                records += 1;
                commands += u64::from(h.count);
                at += n;
                cut_end = cut_end.max(at);
                quiet_from = at;
            }
            None => at += 1,
        }
    }
    let reason = match s.stop {
        Some((reason, _)) => reason,
        None if records > 0 => CutReason::Hole,
        None => return Ok(None),
    };
    Ok(Some(Cut {
        offset: (start + s.tail) * ss,
        reason,
        bytes: (cut_end - s.tail) * ss,
        dropped_records: records,
        dropped_commands: commands,
    }))
}
