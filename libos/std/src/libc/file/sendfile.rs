//! `sendfile64`: bytes from a file to any descriptor (a socket, a pipe,
//! another file), copied inside the guest as Linux copies them inside the
//! kernel, with Linux's rules: the source must be readable and seekable
//! (`EINVAL` otherwise, as for a socket or a pipe), the destination
//! writable and not in append mode; the bytes come from `*offset`, which
//! is advanced, or from the source's own offset, which is advanced; a
//! short or refused write ends the call with what was sent.

use alloc::vec;

use crate::libc::fd::{self, Res, ret};
use crate::libc::{c_int, size_t, ssize_t};

/// Linux's most per call (`MAX_RW_COUNT`).
const MAX_COUNT: usize = 0x7fff_f000;

/// Bytes moved per step.
const CHUNK: usize = 64 << 10;

/// Copies up to `count` bytes from offset `pos` (read with `read_at`) to
/// `write`, a chunk at a time, until the source ends, a write takes less
/// than it was given, or an error comes after some bytes were sent (the
/// error is then dropped, as Linux reports the bytes). Returns the bytes
/// sent.
fn transfer(
    mut read_at: impl FnMut(&mut [u8], u64) -> Res<usize>,
    mut write: impl FnMut(&[u8]) -> Res<usize>,
    pos: u64,
    count: usize,
) -> Res<usize> {
    let mut buf = vec![0u8; count.min(CHUNK)];
    let mut sent = 0;
    while sent < count {
        let want = (count - sent).min(buf.len());
        let got = match read_at(&mut buf[..want], pos + sent as u64) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        };
        let put = match write(&buf[..got]) {
            Ok(n) => n,
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        };
        sent += put;
        if put < got {
            break;
        }
    }
    Ok(sent)
}

/// `sendfile64(out, in, offset, count)`: up to `count` bytes of the file
/// open as `in`, from `*offset` (advanced by what was sent) or, if
/// `offset` is null, from `in`'s offset (advanced), written to `out`.
///
/// # Safety
///
/// `offset` is null or points to a writable `i64`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn sendfile64(
    out: c_int,
    from: c_int,
    offset: *mut i64,
    count: size_t,
) -> ssize_t {
    ret((|| {
        let (o, i) = (fd::get(out)?, fd::get(from)?);
        let access = |open: &fd::Open| open.flags.get() & ::libc::O_ACCMODE;
        if access(&i) == ::libc::O_WRONLY || access(&o) == ::libc::O_RDONLY {
            return Err(::libc::EBADF);
        }
        if o.flags.get() & ::libc::O_APPEND != 0 {
            return Err(::libc::EINVAL);
        }
        // SAFETY: the caller guarantees offset is null or valid.
        let start = match unsafe { offset.as_ref() } {
            Some(&p) => u64::try_from(p).map_err(|_| ::libc::EINVAL)?,
            None => i.offset.get(),
        };
        let read_at = |b: &mut [u8], at: u64| match i.file.pread(b, at) {
            Err(::libc::ESPIPE) => Err(::libc::EINVAL),
            r => r,
        };
        let sent = transfer(read_at, |b| o.file.write(&o, b), start, count.min(MAX_COUNT))?;
        let end = start + sent as u64;
        // SAFETY: as above.
        match unsafe { offset.as_mut() } {
            Some(p) => *p = end as i64,
            None => i.offset.set(end),
        }
        Ok(sent)
    })())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn source(len: usize) -> Vec<u8> {
        (0..len).map(|i| i as u8).collect()
    }

    fn read_from(data: &[u8]) -> impl FnMut(&mut [u8], u64) -> Res<usize> + '_ {
        move |b, at| {
            let at = (at as usize).min(data.len());
            let n = b.len().min(data.len() - at);
            b[..n].copy_from_slice(&data[at..at + n]);
            Ok(n)
        }
    }

    #[test]
    fn sends_the_range_asked_for_across_chunks_and_stops_at_the_end() {
        let data = source(3 * CHUNK + 5);
        let mut out = Vec::new();
        let n = transfer(
            read_from(&data),
            |b| {
                out.extend_from_slice(b);
                Ok(b.len())
            },
            7,
            2 * CHUNK,
        );
        assert_eq!(n, Ok(2 * CHUNK));
        assert_eq!(out, data[7..7 + 2 * CHUNK]);
        out.clear();
        let n = transfer(
            read_from(&data),
            |b| {
                out.extend_from_slice(b);
                Ok(b.len())
            },
            CHUNK as u64,
            usize::MAX >> 1,
        );
        assert_eq!(n, Ok(2 * CHUNK + 5), "to the end of the source");
        assert_eq!(out, data[CHUNK..]);
        assert_eq!(transfer(read_from(&data), |b| Ok(b.len()), data.len() as u64, 10), Ok(0));
    }

    #[test]
    fn a_short_or_failing_write_ends_the_call_with_what_was_sent() {
        let data = source(4 * CHUNK);
        let mut calls = 0;
        let short = |b: &[u8]| {
            calls += 1;
            Ok(if calls == 2 { b.len() / 2 } else { b.len() })
        };
        assert_eq!(transfer(read_from(&data), short, 0, 4 * CHUNK), Ok(CHUNK + CHUNK / 2));
        let mut calls = 0;
        let full_later = |b: &[u8]| {
            calls += 1;
            if calls == 1 { Ok(b.len()) } else { Err(::libc::EAGAIN) }
        };
        assert_eq!(transfer(read_from(&data), full_later, 0, 4 * CHUNK), Ok(CHUNK));
        assert_eq!(transfer(read_from(&data), |_| Err(::libc::EAGAIN), 0, 10), Err(::libc::EAGAIN));
        let unseekable = |_: &mut [u8], _| Err(::libc::EINVAL);
        assert_eq!(transfer(unseekable, |b| Ok(b.len()), 0, 10), Err(::libc::EINVAL));
    }
}
