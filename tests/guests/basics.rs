//! A guest for the runtime tests; its first argument picks what it does.
//!
//! * `globals`: initialised data is correct and writable; bss is zero.
//! * `fpu`: SSE arithmetic gives the right answers.
//! * `time`: the clocks advance and `sleep(1 s)` sleeps about a second.
//! * `clock N`: reads the monotonic clock N times (through the vDSO when
//!   the tender handed it over), checking that it never goes back and that
//!   it agrees with the `clock_gettime` system call read just before and
//!   after; says which way it read, the wall clock, and how many system
//!   calls it made on purpose (the comparisons).
//! * `bigwrite N`: one `print!` of N bytes.
//! * `log`: one log record per level.
//! * `mem`: libos's memcpy, memmove, memset and memcmp give the right bytes.
//! * `exit N`: returns N from main.
//! * `sleep SECS`: sleeps, for tests that need a live guest.
//! * `fill [SECS]`: allocates and touches heap until no allocation
//!   succeeds, prints how much it got, sleeps SECS (default 0) holding it
//!   and exits 0 (the runtime's memory-limit and stats tests).
//! * `spin SECS`: keeps a CPU busy for SECS seconds (the stats tests).
//! * `terminated`: opts in to termination events, says `waiting`, awaits
//!   `libos::process::terminated()` and exits 0 after saying which signal.
//! * `spin-until-asked`: opts in, then computes without ever waiting, checking
//!   `terminate_requested()` between rounds; exits 0 when asked.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use core::hint::black_box;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use libos::time::{Instant, SystemTime, UNIX_EPOCH};
use libos::{env, log, println};

libos::app!(main);

fn main() -> i32 {
    let args: alloc::vec::Vec<&str> = env::args().collect();
    let arg = |i: usize| args.get(i).copied().unwrap_or("");
    match arg(1) {
        "globals" => globals(),
        "fpu" => fpu(),
        "time" => time(),
        "clock" => clock(arg(2).parse().unwrap_or(100_000)),
        "bigwrite" => {
            let n: usize = arg(2).parse().unwrap_or(10_000);
            let s: String = (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            libos::print!("{s}");
            println!();
            0
        }
        "log" => {
            log::error!("an error record");
            log::warn!("a warning record");
            log::info!("an info record");
            log::debug!("a debug record");
            log::trace!("a trace record");
            println!("log done");
            0
        }
        "mem" => mem(),
        "exit" => arg(2).parse().unwrap_or(99),
        "fill" => {
            let code = fill();
            libos::time::sleep(Duration::from_secs(arg(2).parse().unwrap_or(0)));
            code
        }
        "spin" => {
            let secs = arg(2).parse().unwrap_or(1);
            let end = Instant::now() + Duration::from_secs(secs);
            let mut x = 0u64;
            while Instant::now() < end {
                for i in 0..10_000u64 {
                    x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
                }
            }
            println!("spun {}", x & 1);
            0
        }
        "sleep" => {
            let secs = arg(2).parse().unwrap_or(1);
            println!("sleeping {secs} s");
            libos::time::sleep(Duration::from_secs(secs));
            0
        }
        "terminated" => {
            let signal = libos::task::block_on(async {
                let stop = libos::process::terminated();
                println!("waiting");
                stop.await
            });
            println!("got {signal}, exiting");
            0
        }
        "spin-until-asked" => {
            println!("spinning");
            let mut x = 1u64;
            loop {
                for _ in 0..100_000 {
                    x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
                if let Some(signal) = libos::process::terminate_requested() {
                    println!("got {signal} while spinning, exiting");
                    return 0;
                }
            }
        }
        other => {
            println!("unknown mode {other:?}");
            2
        }
    }
}

static mut INITIALISED: [u64; 4] = [0x1122_3344_5566_7788, 2, 3, 0xdead_beef];
static COUNTER: AtomicU64 = AtomicU64::new(41);
static mut ZEROED: [u64; 64] = [0; 64];

fn globals() -> i32 {
    let data = &raw mut INITIALISED;
    let bss = &raw mut ZEROED;
    // SAFETY: the guest is single-threaded and these statics are only used here.
    let (before, zero) = unsafe { ((*data), (*bss).iter().all(|&x| x == 0)) };
    if before != [0x1122_3344_5566_7788, 2, 3, 0xdead_beef] || !zero {
        println!("globals wrong: {before:x?} bss zero: {zero}");
        return 1;
    }
    // SAFETY: as above.
    unsafe {
        (*data)[1] = black_box(20);
        (*bss)[63] = black_box(7);
    }
    COUNTER.fetch_add(1, Ordering::Relaxed);
    // SAFETY: as above.
    let after = unsafe { ((*data)[1], (*bss)[63]) };
    if after != (20, 7) || COUNTER.load(Ordering::Relaxed) != 42 {
        println!("globals not writable: {after:?}");
        return 1;
    }
    println!("globals ok");
    0
}

fn fpu() -> i32 {
    use core::arch::x86_64::{
        _mm_add_ps, _mm_set_pd, _mm_set_ps, _mm_sqrt_pd, _mm_storeu_pd, _mm_storeu_ps,
    };
    let a = black_box(2.5f64);
    let b = black_box(4.0f64);
    let ok_scalar =
        a * b == 10.0 && b / a == 1.6 && (a - b) == -1.5 && black_box(1.0f32) / 3.0 > 0.333;
    let mut r = [0f64; 2];
    let mut s = [0f32; 4];
    // SAFETY: SSE and SSE2 are part of the x86_64 baseline; the stores write
    // two f64s into r and four f32s into s, unaligned stores being allowed.
    unsafe {
        let roots = _mm_sqrt_pd(_mm_set_pd(black_box(16.0), black_box(2.25)));
        _mm_storeu_pd(r.as_mut_ptr(), roots);
        let sums =
            _mm_add_ps(_mm_set_ps(1.0, 2.0, 3.0, 4.0), _mm_set_ps(0.5, 0.5, 0.5, black_box(0.5)));
        _mm_storeu_ps(s.as_mut_ptr(), sums);
    }
    if ok_scalar && r == [1.5, 4.0] && s == [4.5, 3.5, 2.5, 1.5] {
        println!("fpu ok");
        0
    } else {
        println!("fpu wrong: scalar {ok_scalar} sqrt {r:?} add {s:?}");
        1
    }
}

/// Takes the heap chunk by chunk (1 MiB, then smaller, down to 4 KiB),
/// writing every page, with fallible allocations: when none succeeds the
/// heap is full and every page of it is resident.
fn fill() -> i32 {
    let mut total = 0usize;
    let mut chunk = 1usize << 20;
    while chunk >= 4096 {
        let mut v: alloc::vec::Vec<u8> = alloc::vec::Vec::new();
        if v.try_reserve_exact(chunk).is_err() {
            chunk /= 2;
            continue;
        }
        // Written through the pointer: the capacity is reserved, and u8
        // needs no initialisation.
        let p = v.as_mut_ptr();
        for off in (0..chunk).step_by(4096) {
            // SAFETY: off < chunk, within the reservation.
            unsafe { p.add(off).write_volatile(0xa5) };
        }
        core::mem::forget(v);
        total += chunk;
    }
    println!("filled {} KiB", total / 1024);
    0
}

fn time() -> i32 {
    let t0 = Instant::now();
    let t1 = Instant::now();
    if t1 < t0 {
        println!("monotonic clock went back");
        return 1;
    }
    libos::time::sleep(Duration::from_secs(1));
    let slept = t0.elapsed();
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    println!("slept_ms={}", slept.as_millis());
    println!("wall_secs={}", wall.as_secs());
    println!("since_boot_ms={}", libos::time::since_boot().as_millis());
    0
}

fn clock(n: u64) -> i32 {
    use libos::hypercall::{Clock, clock_gettime_syscall, vdso_clock};
    // System calls made on purpose, to compare with.
    let mut syscalls = 0u64;
    let mut syscall = |clock| {
        syscalls += 1;
        clock_gettime_syscall(clock)
    };
    println!("source={}", if vdso_clock() { "vdso" } else { "syscall" });
    let first = syscall(Clock::Monotonic);
    let mut last = Instant::now();
    if last.as_duration() < first {
        println!("the clock read {:?} after the system call read {first:?}", last.as_duration());
        return 1;
    }
    for _ in 0..n {
        let now = Instant::now();
        if now < last {
            println!("monotonic clock went back: {last:?} then {now:?}");
            return 1;
        }
        last = now;
    }
    // Each clock between two system-call reads of it, a hundred times.
    for _ in 0..100 {
        let before = syscall(Clock::Monotonic);
        let now = Instant::now().as_duration();
        let after = syscall(Clock::Monotonic);
        if !(before <= now && now <= after) {
            println!("monotonic {now:?} outside the system call's [{before:?}, {after:?}]");
            return 1;
        }
        let before = syscall(Clock::Realtime);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let after = syscall(Clock::Realtime);
        // The wall clock may be stepped between two reads; not by a second.
        let bound = Duration::from_secs(1);
        if now + bound < before || now > after + bound {
            println!("realtime {now:?} far from the system call's [{before:?}, {after:?}]");
            return 1;
        }
    }
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    println!("reads={n}");
    println!("elapsed_ns={}", last.as_duration().saturating_sub(first).as_nanos());
    println!("wall_ns={}", wall.as_nanos());
    println!("syscalls={syscalls}");
    0
}

/// Exercises the mem functions through the operations that lower to them,
/// at sizes and offsets that cover short and long copies and both overlaps.
fn mem() -> i32 {
    use alloc::vec;
    for len in [0usize, 1, 7, 8, 15, 64, 255, 4096, 65_537] {
        let src: alloc::vec::Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let mut dst = vec![0u8; len];
        dst.copy_from_slice(black_box(&src)); // memcpy
        if dst != src {
            println!("memcpy wrong at len {len}");
            return 1;
        }
        let mut buf = vec![0u8; len + 9];
        buf[..len].copy_from_slice(&src);
        buf.copy_within(0..len, 9); // memmove, destination above the source
        if buf[9..] != src[..] {
            println!("memmove up wrong at len {len}");
            return 1;
        }
        buf.copy_within(9..len + 9, 0); // memmove, destination below the source
        if buf[..len] != src[..] {
            println!("memmove down wrong at len {len}");
            return 1;
        }
        let mut filled = vec![1u8; len];
        black_box(&mut filled).fill(black_box(0xa5)); // memset
        if filled.iter().any(|&b| b != 0xa5) {
            println!("memset wrong at len {len}");
            return 1;
        }
        if len > 0 {
            let mut other = src.clone();
            other[len - 1] ^= 1;
            let ord = black_box(&src[..]).cmp(black_box(&other[..])); // memcmp
            let expected = src[len - 1].cmp(&other[len - 1]);
            if ord != expected || black_box(&src) != black_box(&src.clone()) {
                println!("memcmp wrong at len {len}");
                return 1;
            }
        }
    }
    println!("mem ok");
    0
}
