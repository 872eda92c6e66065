//! Random numbers: `getrandom` and `getentropy`, from a ChaCha20 stream
//! keyed by the seed the tender hands over at every start (256 bits,
//! from the tender's `getrandom`; no system call of the guest's). std's hash maps
//! take their keys from here, so they differ from run to run as on Linux.
//! Each request takes fresh keystream blocks; after every request the key
//! is replaced by keystream it never handed out, so that what was
//! returned cannot be recomputed from a later state.

use super::start::Lock;
use super::{c_int, c_uint, c_void, fail, fail_size, size_t, ssize_t};

struct ChaCha {
    key: [u32; 8],
    counter: u64,
}

static RNG: Lock<ChaCha> = Lock::new(ChaCha { key: [0; 8], counter: 0 });

fn quarter(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(12);
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(7);
}

/// One ChaCha20 block (RFC 8439's function, 64-bit counter, zero nonce).
fn block(key: &[u32; 8], counter: u64) -> [u8; 64] {
    let mut s = [0u32; 16];
    s[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    s[4..12].copy_from_slice(key);
    s[12] = counter as u32;
    s[13] = (counter >> 32) as u32;
    let input = s;
    for _ in 0..10 {
        quarter(&mut s, 0, 4, 8, 12);
        quarter(&mut s, 1, 5, 9, 13);
        quarter(&mut s, 2, 6, 10, 14);
        quarter(&mut s, 3, 7, 11, 15);
        quarter(&mut s, 0, 5, 10, 15);
        quarter(&mut s, 1, 6, 11, 12);
        quarter(&mut s, 2, 7, 8, 13);
        quarter(&mut s, 3, 4, 9, 14);
    }
    let mut out = [0u8; 64];
    for (i, w) in s.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&w.wrapping_add(input[i]).to_le_bytes());
    }
    out
}

impl ChaCha {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(64) {
            let b = block(&self.key, self.counter);
            self.counter = self.counter.wrapping_add(1);
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        // Forward secrecy: a new key from keystream never handed out.
        let next = block(&self.key, self.counter);
        self.counter = 0;
        for (k, w) in self.key.iter_mut().zip(next.chunks_exact(4)) {
            *k = u32::from_le_bytes(w.try_into().expect("4 bytes"));
        }
    }
}

/// Keys the generator with the boot seed.
pub fn seed(seed: [u64; 4]) {
    RNG.with(|r| {
        for (i, w) in seed.iter().enumerate() {
            r.key[2 * i] = *w as u32;
            r.key[2 * i + 1] = (*w >> 32) as u32;
        }
        r.counter = 0;
    });
}

/// Random bytes into `buf`.
pub fn fill(buf: &mut [u8]) {
    RNG.with(|r| r.fill(buf));
}

/// A stack protector canary: random, its low byte zero (as glibc's, so
/// that string functions stop at it).
pub fn canary() -> usize {
    let mut b = [0u8; 8];
    fill(&mut b);
    (u64::from_le_bytes(b) & !0xff) as usize
}

/// `getrandom(buf, len, flags)`: never blocks, never short.
///
/// # Safety
///
/// `buf` is writable for `len` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn getrandom(buf: *mut c_void, len: size_t, flags: c_uint) -> ssize_t {
    let known = ::libc::GRND_NONBLOCK | ::libc::GRND_RANDOM | ::libc::GRND_INSECURE;
    if flags & !known != 0 || len > isize::MAX as usize {
        return fail_size(::libc::EINVAL);
    }
    if len > 0 {
        // SAFETY: the caller guarantees len writable bytes.
        fill(unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), len) });
    }
    len as ssize_t
}

/// `getentropy(buf, len)`: at most 256 bytes, as POSIX says.
///
/// # Safety
///
/// `buf` is writable for `len` bytes.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn getentropy(buf: *mut c_void, len: size_t) -> c_int {
    if len > 256 {
        return fail(::libc::EIO);
    }
    // SAFETY: the same contract.
    if unsafe { getrandom(buf, len, 0) } < 0 { -1 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chacha20_matches_rfc_8439() {
        // RFC 8439 2.3.2's key, with its nonce folded into our counter
        // layout: counter 1, nonce 0:0x4a:0 -> words 12..15 = 1, 0x09000000,
        // 0x4a000000, 0. Our block has a zero nonce, so check the
        // all-zero-key test vector of RFC 8439 A.1 (block 0) instead.
        let out = block(&[0; 8], 0);
        assert_eq!(
            &out[..16],
            &[
                0x76, 0xb8, 0xe0, 0xad, 0xa0, 0xf1, 0x3d, 0x90, 0x40, 0x5d, 0x6a, 0xe5, 0x53, 0x86,
                0xbd, 0x28
            ]
        );
    }

    #[test]
    fn streams_differ_with_the_seed_and_never_repeat() {
        seed([1, 2, 3, 4]);
        let mut a = [0u8; 100];
        let mut b = [0u8; 100];
        fill(&mut a);
        fill(&mut b);
        assert_ne!(a, b);
        seed([1, 2, 3, 5]);
        let mut c = [0u8; 100];
        fill(&mut c);
        assert_ne!(a, c);
        assert_eq!(canary() & 0xff, 0);
    }
}
