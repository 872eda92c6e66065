//! kvd's append-only file on a corrupt disk (`kv::aof`): the superblocks,
//! the log's records and the snapshot are read back at start, whatever the
//! disk holds, and the commands found replayed into the engine, as kvd does
//! at boot. A log that opens must then take a new command and give it back
//! on the next open.
//!
//! The disk starts as a valid log (commands appended, a compaction, more
//! commands), and the input corrupts it: records of `[off_lo, off_hi, len,
//! bytes...]` overwrite bytes in its first 64 KiB, where the superblocks
//! and records lie. The first byte picks the sector size (512 to 4096).

#![no_main]

use std::rc::Rc;
use std::sync::OnceLock;

use kv::aof::{Aof, Disk, DiskError, Fsync, MIN_CAPACITY, MemDisk};
use kv::commands::{Config, Engine};
use libfuzzer_sys::fuzz_target;

/// One disk that several opens share (a `MemDisk` clone is a copy).
#[derive(Clone)]
struct Shared(Rc<MemDisk>);

impl Disk for Shared {
    fn sector_size(&self) -> u32 {
        self.0.sector_size()
    }
    fn capacity(&self) -> u64 {
        self.0.capacity()
    }
    fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        self.0.read(sector, buf)
    }
    fn write(&self, sector: u64, buf: &[u8]) -> Result<(), DiskError> {
        self.0.write(sector, buf)
    }
    fn flush(&self) -> Result<(), DiskError> {
        self.0.flush()
    }
}

/// A valid log for each sector size, built once.
fn valid_disk(sector_size: u32) -> Vec<u8> {
    static DISKS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let disks = DISKS.get_or_init(|| {
        (0..4)
            .map(|shift| {
                let disk = Shared(Rc::new(MemDisk::new(MIN_CAPACITY, 512 << shift)));
                let (mut aof, _, _) = Aof::open(disk.clone(), Fsync::Always).expect("empty disk");
                let cmds: [&[&[u8]]; 4] = [
                    &[b"SET", b"k", b"v"],
                    &[b"RPUSH", b"l", b"a", b"b"],
                    &[b"HSET", b"h", b"f", b"1"],
                    &[b"PEXPIREAT", b"k", b"99999999999999"],
                ];
                for c in cmds {
                    aof.append(c).unwrap();
                    aof.commit().unwrap();
                }
                let snapshot: Vec<Vec<Vec<u8>>> =
                    vec![vec![b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()]];
                aof.compact(&mut snapshot.into_iter()).unwrap();
                aof.append(&[b"INCR", b"n"]).unwrap();
                aof.commit().unwrap();
                drop(aof);
                disk.0.to_bytes()
            })
            .collect()
    });
    disks[(sector_size / 512).trailing_zeros() as usize].clone()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let sector_size = 512u32 << (mode & 3);
    let mut bytes = valid_disk(sector_size);
    while let [lo, hi, len, tail @ ..] = rest {
        let off = usize::from(u16::from_le_bytes([*lo, *hi]));
        let len = usize::from(*len).min(tail.len());
        bytes[off..off + len].copy_from_slice(&tail[..len]);
        rest = &tail[len..];
    }
    let disk = Shared(Rc::new(MemDisk::from_bytes(bytes, sector_size)));
    let mut engine = Engine::new(Config::default(), 1_700_000_000_000, 1);
    engine.begin_loading();
    // A blank disk's new generation: any value kvd's random nonce may give.
    let nonce = u64::from(mode >> 2).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let opened = Aof::open_with(disk.clone(), Fsync::Always, nonce, &mut |argv| {
        let argv: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        // A corrupt log can hold any command: an error reply is fine.
        let _ = engine.replay(&argv);
    });
    engine.end_loading();
    let Ok((mut aof, report)) = opened else { return };
    let _ = format!("{report:?}");
    if aof.append(&[b"SET", b"fuzz", b"1"]).is_err() || aof.commit().is_err() {
        return;
    }
    drop(aof);
    let (_, commands, _) = Aof::open(disk, Fsync::Always).expect("reopening what just opened");
    let last: &[u8] = commands.last().map_or(&[], |c| c.get(1).map_or(&[], Vec::as_slice));
    assert_eq!(last, b"fuzz", "the committed command is not the last one replayed");
});
