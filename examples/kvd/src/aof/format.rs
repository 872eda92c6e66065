//! The on-disk structures: superblock, record header, the encoding of
//! commands, and CRC-32C. Integers are little-endian.

use alloc::vec::Vec;

use super::{AofError, Command};

/// Superblock magic, at byte 0 of sectors 0 and 1.
pub(super) const SB_MAGIC: [u8; 8] = *b"nablakvd";
/// On-disk format version.
pub(super) const VERSION: u32 = 1;
/// Bytes of a superblock that carry data; the rest of its sector is zero.
pub(super) const SB_LEN: usize = 128;
/// Record magic, at the start of each record's first sector.
pub(super) const RECORD_MAGIC: [u8; 4] = *b"KVDR";
/// Record header size.
pub(super) const HEADER_LEN: usize = 48;
/// Record kind: commands appended by a commit.
pub(super) const KIND_LOG: u16 = 1;
/// Record kind: part of the snapshot that starts a generation.
pub(super) const KIND_SNAPSHOT: u16 = 2;

/// CRC-32C (Castagnoli), slice-by-8. `crc32c(crc32c(0, a), b)` is the CRC
/// of `a` followed by `b`.
pub fn crc32c(crc: u32, data: &[u8]) -> u32 {
    const fn tables() -> [[u32; 256]; 8] {
        let mut t = [[0u32; 256]; 8];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { (c >> 1) ^ 0x82F6_3B78 } else { c >> 1 };
                k += 1;
            }
            t[0][i] = c;
            i += 1;
        }
        let mut i = 0;
        while i < 256 {
            let mut k = 1;
            while k < 8 {
                t[k][i] = (t[k - 1][i] >> 8) ^ t[0][(t[k - 1][i] & 0xff) as usize];
                k += 1;
            }
            i += 1;
        }
        t
    }
    static T: [[u32; 256]; 8] = tables();
    let mut c = !crc;
    let mut chunks = data.chunks_exact(8);
    for b in &mut chunks {
        let lo = c ^ u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let hi = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        c = T[7][(lo & 0xff) as usize]
            ^ T[6][((lo >> 8) & 0xff) as usize]
            ^ T[5][((lo >> 16) & 0xff) as usize]
            ^ T[4][(lo >> 24) as usize]
            ^ T[3][(hi & 0xff) as usize]
            ^ T[2][((hi >> 8) & 0xff) as usize]
            ^ T[1][((hi >> 16) & 0xff) as usize]
            ^ T[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        c = (c >> 8) ^ T[0][((c ^ u32::from(b)) & 0xff) as usize];
    }
    !c
}

pub(super) fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
pub(super) fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default())
}
pub(super) fn get_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}
pub(super) fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

/// The superblock: which area is live, and the counters that tell current
/// records from stale ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Superblock {
    /// Counts superblock updates: the copy with the larger one wins.
    pub(super) epoch: u64,
    pub(super) generation: u64,
    pub(super) boot: u64,
    pub(super) sector_size: u32,
    /// Sectors in each area.
    pub(super) area_sectors: u64,
    /// First sector of each area.
    pub(super) areas: [u64; 2],
    /// The live area, 0 or 1.
    pub(super) live: u32,
}

impl Superblock {
    /// Layout for a new log at `generation`: both areas as large as the
    /// disk allows.
    pub(super) fn fresh(ss: u32, sectors: u64, generation: u64) -> Self {
        let n = (sectors - 2) / 2;
        Self {
            epoch: 0,
            generation,
            boot: 0,
            sector_size: ss,
            area_sectors: n,
            areas: [2, 2 + n],
            live: 0,
        }
    }

    pub(super) fn encode(&self, sector: &mut [u8]) {
        sector.fill(0);
        put(sector, 0, &SB_MAGIC);
        put(sector, 8, &VERSION.to_le_bytes());
        put(sector, 12, &self.sector_size.to_le_bytes());
        put(sector, 16, &self.epoch.to_le_bytes());
        put(sector, 24, &self.generation.to_le_bytes());
        put(sector, 32, &self.boot.to_le_bytes());
        put(sector, 40, &self.area_sectors.to_le_bytes());
        put(sector, 48, &self.areas[0].to_le_bytes());
        put(sector, 56, &self.areas[1].to_le_bytes());
        put(sector, 64, &self.live.to_le_bytes());
        let crc = crc32c(0, &sector[..SB_LEN - 4]);
        put(sector, SB_LEN - 4, &crc.to_le_bytes());
    }

    /// The superblock in `sector`, if it holds one (right magic and
    /// checksum), with its format version.
    pub(super) fn decode(sector: &[u8]) -> Option<(Self, u32)> {
        if sector[..8] != SB_MAGIC
            || get_u32(sector, SB_LEN - 4) != crc32c(0, &sector[..SB_LEN - 4])
        {
            return None;
        }
        let sb = Self {
            sector_size: get_u32(sector, 12),
            epoch: get_u64(sector, 16),
            generation: get_u64(sector, 24),
            boot: get_u64(sector, 32),
            area_sectors: get_u64(sector, 40),
            areas: [get_u64(sector, 48), get_u64(sector, 56)],
            live: get_u32(sector, 64),
        };
        Some((sb, get_u32(sector, 8)))
    }

    /// Checks a decoded superblock against the disk it was read from.
    pub(super) fn check(&self, version: u32, ss: u32, capacity: u64) -> Result<(), AofError> {
        if version != VERSION {
            return Err(AofError::Unsupported { version });
        }
        if self.sector_size != ss {
            return Err(AofError::SectorSizeChanged { formatted: self.sector_size, attached: ss });
        }
        if self.live > 1 {
            return Err(AofError::Corrupt("live area is neither 0 nor 1"));
        }
        // A new log starts below 2^62 + 1 and each compaction adds one:
        // a generation this high was never written by kvd, and counting on
        // from it could wrap onto one already used.
        if self.generation == 0 || self.generation >= 1 << 63 {
            return Err(AofError::Corrupt("generation out of range"));
        }
        let n = self.area_sectors;
        let [a, b] = self.areas;
        if n < 2 || a < 2 || b < 2 || a.abs_diff(b) < n {
            return Err(AofError::Corrupt("areas overlap the superblocks or each other"));
        }
        let needed = a
            .max(b)
            .checked_add(n)
            .and_then(|s| s.checked_mul(u64::from(ss)))
            .ok_or(AofError::Corrupt("areas beyond any disk"))?;
        if needed > capacity {
            return Err(AofError::Shrunk { needed, capacity });
        }
        Ok(())
    }

    pub(super) fn live_start(&self) -> u64 {
        self.areas[self.live as usize]
    }
}

/// A record's header, with its checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) kind: u16,
    pub(super) len: u32,
    pub(super) count: u32,
    pub(super) seq: u64,
    pub(super) generation: u64,
    pub(super) boot: u64,
    pub(super) crc: u32,
}

impl Header {
    pub(super) fn parse(b: &[u8]) -> Option<Self> {
        if b[..4] != RECORD_MAGIC || get_u16(b, 6) != 0 || get_u32(b, 44) != 0 {
            return None;
        }
        let h = Self {
            kind: get_u16(b, 4),
            len: get_u32(b, 8),
            count: get_u32(b, 12),
            seq: get_u64(b, 16),
            generation: get_u64(b, 24),
            boot: get_u64(b, 32),
            crc: get_u32(b, 40),
        };
        matches!(h.kind, KIND_LOG | KIND_SNAPSHOT).then_some(h)
    }

    /// The header's bytes with the checksum field zero.
    pub(super) fn bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        put(&mut b, 0, &RECORD_MAGIC);
        put(&mut b, 4, &self.kind.to_le_bytes());
        put(&mut b, 8, &self.len.to_le_bytes());
        put(&mut b, 12, &self.count.to_le_bytes());
        put(&mut b, 16, &self.seq.to_le_bytes());
        put(&mut b, 24, &self.generation.to_le_bytes());
        put(&mut b, 32, &self.boot.to_le_bytes());
        b
    }

    /// Sectors the record takes.
    pub(super) fn sectors(&self, ss: u64) -> u64 {
        (HEADER_LEN as u64 + u64::from(self.len)).div_ceil(ss)
    }
}

/// Appends a record (header, payload, zero padding to a sector boundary)
/// to `out`; returns the sectors it takes.
#[allow(clippy::too_many_arguments)]
pub(super) fn push_record(
    out: &mut Vec<u8>,
    ss: usize,
    kind: u16,
    seq: u64,
    generation: u64,
    boot: u64,
    count: u32,
    payload: &[u8],
) -> u64 {
    let mut h = Header { kind, len: payload.len() as u32, count, seq, generation, boot, crc: 0 };
    let mut bytes = h.bytes();
    h.crc = crc32c(crc32c(0, &bytes), payload);
    put(&mut bytes, 40, &h.crc.to_le_bytes());
    let start = out.len();
    out.extend_from_slice(&bytes);
    out.extend_from_slice(payload);
    let padded = (out.len() - start).div_ceil(ss) * ss;
    out.resize(start + padded, 0);
    (padded / ss) as u64
}

/// Appends one command to a payload: argc, then each argument's length and
/// bytes, all lengths `u32` little-endian.
pub(super) fn encode_command(out: &mut Vec<u8>, argv: &[&[u8]]) -> Result<(), AofError> {
    let argc = u32::try_from(argv.len()).map_err(|_| AofError::Full)?;
    out.extend_from_slice(&argc.to_le_bytes());
    for arg in argv {
        let len = u32::try_from(arg.len()).map_err(|_| AofError::Full)?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(arg);
    }
    Ok(())
}

/// Decodes a payload of exactly `count` commands.
pub(super) fn decode_commands(mut p: &[u8], count: u32) -> Option<Vec<Command>> {
    fn take<'a>(p: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = p.split_at_checked(n)?;
        *p = rest;
        Some(head)
    }
    fn take_u32(p: &mut &[u8]) -> Option<usize> {
        take(p, 4).map(|b| get_u32(b, 0) as usize)
    }
    // Each command takes at least 4 bytes: a corrupt count cannot make
    // this allocate more than the payload justifies.
    let mut commands = Vec::with_capacity((count as usize).min(p.len() / 4));
    for _ in 0..count {
        let argc = take_u32(&mut p)?;
        let mut argv = Vec::with_capacity(argc.min(p.len() / 4));
        for _ in 0..argc {
            let len = take_u32(&mut p)?;
            argv.push(take(&mut p, len)?.to_vec());
        }
        commands.push(argv);
    }
    p.is_empty().then_some(commands)
}
