//! A guest for the block suite (a port of Solo5's `test_blk`, written
//! anew); it declares one block device, `storage`, and its first argument
//! picks what it does:
//!
//! * `info`: prints `storage: N sectors of S bytes, read-write|read-only`.
//! * `check`: writes a pattern to every 10th sector and the last one, reads
//!   each back and compares, then checks that libos refuses (with an error,
//!   not a kill) a sector past the end, a buffer that is not a whole number
//!   of sectors and a read straddling the end; prints `check: ...: ok`.
//! * `multi`: transfers of 3 MiB and 3 sectors (several calls each, split
//!   by libos) at offsets from the start to exactly the end of the disk,
//!   each written and read back.
//! * `ro`: on a read-only disk, reads work and a write or flush is refused
//!   by libos without any call.
//! * `asyncflush`: writes 16 sectors of the pattern, one at a time, each
//!   followed by a flush through the flush channel
//!   (`BlockDevice::flush_start`) that it polls while writing the next and
//!   then waits for; prints `asyncflush: 16 flushes answered, ok`.
//! * `hold`: prints `holding storage` and sleeps until killed, keeping the
//!   disk attached.
//! * `bench KIB`: writes the whole disk sequentially in transfers of KIB
//!   KiB, then reads it back the same way; prints `write BYTES NANOS` and
//!   `read BYTES NANOS`.
//!
//! Sector `i` of the pattern starts with `i` (little-endian u64) followed
//! by bytes `(i * 7 + j) mod 251`, so that the suite can check the disk
//! file from the host afterwards.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use libos::block::{BlockDevice, BlockError};
use libos::time::Instant;
use libos::{env, println};

libos::app!(main, devices: ["storage": Block]);

fn main() -> i32 {
    let args: Vec<&str> = env::args().collect();
    let Some(disk) = libos::block::device("storage") else {
        println!("no block device `storage`");
        return 3;
    };
    let result = match args.get(1).copied().unwrap_or("check") {
        "info" => {
            let mode = if disk.read_only() { "read-only" } else { "read-write" };
            println!(
                "{}: {} sectors of {} bytes, {mode}",
                disk.name(),
                disk.sectors(),
                disk.sector_size()
            );
            Ok(())
        }
        "check" => check(&disk),
        "multi" => multi(&disk),
        "ro" => read_only(&disk),
        "asyncflush" => async_flush(&disk),
        "hold" => {
            println!("holding {}", disk.name());
            loop {
                libos::time::sleep(core::time::Duration::from_secs(3600));
            }
        }
        "bench" => bench(&disk, args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1024)),
        other => {
            println!("unknown command {other:?}");
            return 2;
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            println!("FAILED: {e}");
            1
        }
    }
}

/// The pattern of sector `sector`, `buf.len()` bytes long.
fn fill(sector: u64, buf: &mut [u8]) {
    for (j, b) in buf.iter_mut().enumerate() {
        *b = ((sector * 7 + j as u64) % 251) as u8;
    }
    buf[..8].copy_from_slice(&sector.to_le_bytes());
}

/// The pattern of `count` sectors from `first`.
fn pattern(first: u64, count: usize, ss: usize) -> Vec<u8> {
    let mut buf = vec![0u8; count * ss];
    for (i, chunk) in buf.chunks_exact_mut(ss).enumerate() {
        fill(first + i as u64, chunk);
    }
    buf
}

/// An error with what was being done.
type Result<T = ()> = core::result::Result<T, alloc::string::String>;

fn io(what: &str, sector: u64) -> impl FnOnce(BlockError) -> alloc::string::String + '_ {
    move |e| alloc::format!("{what} at sector {sector}: {e}")
}

fn expect_refused(
    what: &str,
    got: core::result::Result<(), BlockError>,
    want: BlockError,
) -> Result {
    match got {
        Err(e) if e == want => Ok(()),
        other => Err(alloc::format!("{what}: expected Err({want:?}), got {other:?}")),
    }
}

fn check(disk: &BlockDevice) -> Result {
    let ss = disk.sector_size() as usize;
    let n = disk.sectors();
    let mut sectors: Vec<u64> = (0..n).step_by(10).collect();
    if sectors.last() != Some(&(n - 1)) {
        sectors.push(n - 1);
    }
    let mut buf = vec![0u8; ss];
    for &s in &sectors {
        fill(s, &mut buf);
        disk.write(s, &buf).map_err(io("write", s))?;
    }
    disk.flush().map_err(io("flush", 0))?;
    let mut want = vec![0u8; ss];
    for &s in &sectors {
        buf.fill(0);
        disk.read(s, &mut buf).map_err(io("read", s))?;
        fill(s, &mut want);
        if buf != want {
            return Err(alloc::format!("sector {s} reads back different bytes"));
        }
    }
    // Refused by libos, before any call: the guest lives on.
    expect_refused("write past the end", disk.write(n, &buf), BlockError::OutOfRange)?;
    expect_refused("read past the end", disk.read(n, &mut buf), BlockError::OutOfRange)?;
    expect_refused("read far past the end", disk.read(u64::MAX, &mut buf), BlockError::OutOfRange)?;
    let mut two = vec![0u8; 2 * ss];
    expect_refused("read straddling the end", disk.read(n - 1, &mut two), BlockError::OutOfRange)?;
    expect_refused("write straddling the end", disk.write(n - 1, &two), BlockError::OutOfRange)?;
    let mut odd = vec![0u8; ss + 1];
    expect_refused("read of a sector and a byte", disk.read(0, &mut odd), BlockError::Misaligned)?;
    expect_refused(
        "write of half a sector",
        disk.write(0, &buf[..ss / 2]),
        BlockError::Misaligned,
    )?;
    println!(
        "check: {n} sectors of {ss} bytes, {} written and read back, 7 bad requests refused: ok",
        sectors.len()
    );
    Ok(())
}

fn multi(disk: &BlockDevice) -> Result {
    let ss = disk.sector_size() as usize;
    let n = disk.sectors();
    let count = (3 << 20) / ss + 3;
    if n < count as u64 + 2 {
        return Err(alloc::format!("disk too small for {count} sectors"));
    }
    let last = n - count as u64;
    let starts = [0, 1, 63, 65, last / 2, last - 1, last];
    for &first in &starts {
        let data = pattern(first, count, ss);
        disk.write(first, &data).map_err(io("write", first))?;
        let mut back = vec![0u8; data.len()];
        disk.read(first, &mut back).map_err(io("read", first))?;
        if back != data {
            return Err(alloc::format!("{count} sectors from {first} read back different bytes"));
        }
    }
    // One whole-disk read, ending exactly at the capacity.
    let mut all = vec![0u8; disk.capacity() as usize];
    disk.read(0, &mut all).map_err(io("read of the whole disk", 0))?;
    let tail = &all[last as usize * ss..];
    if tail != pattern(last, count, ss) {
        return Err("the whole-disk read differs at the end".into());
    }
    println!("multi: {} transfers of {count} sectors of {ss} bytes: ok", starts.len());
    Ok(())
}

fn read_only(disk: &BlockDevice) -> Result {
    let ss = disk.sector_size() as usize;
    let mut buf = vec![0u8; ss];
    disk.read(0, &mut buf).map_err(io("read", 0))?;
    disk.read(disk.sectors() - 1, &mut buf).map_err(io("read", disk.sectors() - 1))?;
    expect_refused("write", disk.write(0, &buf), BlockError::ReadOnly)?;
    disk.flush().map_err(io("flush", 0))?;
    println!("ro: read-only {}, reads ok, write refused: ok", disk.read_only());
    Ok(())
}

fn bench(disk: &BlockDevice, kib: usize) -> Result {
    let ss = disk.sector_size() as usize;
    let len = kib * 1024;
    if len == 0 || !len.is_multiple_of(ss) || !disk.capacity().is_multiple_of(len as u64) {
        return Err(alloc::format!("{kib} KiB transfers do not tile the disk"));
    }
    let per = (len / ss) as u64;
    let mut buf = vec![0u8; len];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = i as u8;
    }
    let start = Instant::now();
    let mut s = 0;
    while s < disk.sectors() {
        disk.write(s, &buf).map_err(io("write", s))?;
        s += per;
    }
    let write = start.elapsed();
    let start = Instant::now();
    let mut s = 0;
    while s < disk.sectors() {
        disk.read(s, &mut buf).map_err(io("read", s))?;
        s += per;
    }
    let read = start.elapsed();
    println!("write {} {}", disk.capacity(), write.as_nanos());
    println!("read {} {}", disk.capacity(), read.as_nanos());
    Ok(())
}

fn async_flush(disk: &BlockDevice) -> Result {
    let ss = disk.sector_size() as usize;
    if disk.flush_fd().is_none() {
        return Err("no flush channel".into());
    }
    let mut previous = None;
    for i in 0..16u64 {
        disk.write(i, &pattern(i, 1, ss)).map_err(io("write", i))?;
        let t = disk.flush_start().map_err(io("flush_start", i))?;
        if let Some(p) = previous {
            // The earlier flush: polled (it may be done), then waited for.
            let _ = disk.flush_poll(p);
            disk.flush_wait(p).map_err(io("flush_wait", i))?;
        }
        previous = Some(t);
    }
    if let Some(p) = previous {
        disk.flush_wait(p).map_err(io("flush_wait", 16))?;
    }
    println!("asyncflush: 16 flushes answered, ok");
    Ok(())
}
