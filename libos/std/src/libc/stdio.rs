//! C's streams (`FILE *`), for C code inside crates: `stdin`, `stdout`,
//! `stderr`, `fopen`, `fdopen`, `fclose`, reading (`fread`, `fgets`,
//! `fgetc`, `getc`, `getchar`, `ungetc`, `getline`, `getdelim`), writing
//! (`fwrite`, `fputs`, `puts`, `fputc`, `putc`, `putchar`), positioning
//! (`fseek`, `fseeko`, `ftell`, `ftello`, `rewind`, `fgetpos`, `fsetpos`),
//! state (`feof`, `ferror`, `clearerr`, `fileno`), buffering (`fflush`,
//! `setvbuf`, `setbuf`, `setlinebuf`), locking (`flockfile`,
//! `funlockfile`, `ftrylockfile`), `perror`, streams in memory
//! (`fmemopen`, `open_memstream`, `tmpfile`: [`Mem`]), `freopen`, `popen`
//! (`ENOSYS`: no processes) and `pclose`, and glibc's `__uflow` and
//! `__overflow` that its headers' inline `getc_unlocked` and
//! `putc_unlocked` call. The `printf` family writing to a stream is in
//! [`super::printf`].
//!
//! Buffered as glibc buffers, over the descriptor table: a stream from
//! `fopen` is fully buffered (4 KiB), `stdout` too unless it is a
//! terminal (then line-buffered; the guest's console is not one, as a
//! pipe on Linux), `stderr` unbuffered (a `printf` to it is still one
//! write). Everything buffered is flushed by `fflush(NULL)` and at
//! `exit` (after the `atexit` handlers, as glibc), not by `_exit` or a
//! crash. Rust's `print!` keeps its own buffer, as with glibc: C and Rust
//! output to `stdout` interleave only at flushes.
//!
//! The first fields of [`File`] are glibc's (`_flags` with its end-of-file
//! and error bits, the read and write pointers): C compiled against
//! glibc's headers may read them inline. The write pointers stay NULL, so
//! that an inline `putc_unlocked` always calls `__overflow`; the read
//! pointers frame the buffered input, as glibc's.
//!
//! Threads: each call takes the stream's lock (recursive, per thread, as
//! `flockfile`); a thread switch can only happen inside a blocking read or
//! write, and another thread's call on the same stream waits (yielding)
//! until it is done.
//!
//! Modes of `fopen` and `fdopen`: `r`, `w`, `a`, each with `+`, and the
//! modifiers `b` (nothing), `e` (`O_CLOEXEC`), `x` (`O_EXCL`); anything
//! else is `EINVAL`, as glibc.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::UnsafeCell;

use super::{c_char, c_int, c_void, size_t, ssize_t};

/// Bytes kept free in front of the buffer for `ungetc`.
const HEAD: usize = 8;
/// A buffered stream's buffer (`BUFSIZ`).
const BUFSIZ: usize = 4096;

/// glibc's flag bits that its headers test inline.
const EOF_SEEN: c_int = 0x10;
const ERR_SEEN: c_int = 0x20;
/// glibc's magic in `_flags`' high half.
const MAGIC: c_int = 0xfbad_0000_u32 as c_int;

/// How a stream buffers its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Not decided yet (`stdout`: by `isatty` at the first use).
    Unset,
    Full,
    Line,
    Unbuffered,
}

/// A C stream.
#[repr(C)]
#[derive(Debug)]
pub struct File {
    // glibc's `struct _IO_FILE`, as far as its inline functions read it.
    flags: c_int,
    read_ptr: *mut u8,
    read_end: *mut u8,
    read_base: *mut u8,
    write_base: *mut u8,
    write_ptr: *mut u8,
    write_end: *mut u8,
    buf_base: *mut u8,
    buf_end: *mut u8,
    // libos-std's own.
    fd: c_int,
    readable: bool,
    writable: bool,
    /// A stream of the program (`stdin`...), never freed.
    fixed: bool,
    mode: Mode,
    /// The buffer: `HEAD` bytes of room for `ungetc`, then the data.
    buf: Vec<u8>,
    /// Bytes written and not yet flushed, at `buf[HEAD..]`.
    pending: usize,
    /// The thread holding the lock (0: none) and how many times.
    owner: u32,
    depth: u32,
    /// A stream in memory (`fmemopen`, `open_memstream`, `tmpfile`):
    /// where its bytes go instead of a descriptor.
    mem: Option<Box<Mem>>,
}

/// The bytes of a stream in memory and its position.
#[derive(Debug)]
struct Mem {
    pos: usize,
    store: Store,
}

/// Where a stream in memory keeps its bytes.
#[derive(Debug)]
enum Store {
    /// `fmemopen`: the caller's buffer of `size` bytes (or one allocated
    /// for the stream, `owned`), of which `end` are the contents
    /// (glibc's `maxpos`).
    Fixed { buf: *mut u8, size: usize, end: usize, owned: bool, append: bool },
    /// `open_memstream` and `tmpfile`: a `malloc`ed buffer that grows,
    /// `len` bytes of contents and a NUL after them (zeros up to `cap`);
    /// `open_memstream` tells the program where it is and its size
    /// (`publish`) at each flush.
    Grow { p: *mut u8, cap: usize, len: usize, publish: Option<(*mut *mut c_char, *mut size_t)> },
}

impl Mem {
    /// Reads at the position: the number of bytes (0 at the end).
    fn read(&mut self, out: &mut [u8]) -> usize {
        let (p, end) = match self.store {
            Store::Fixed { buf, end, .. } => (buf, end),
            Store::Grow { p, len, .. } => (p, len),
        };
        let n = end.saturating_sub(self.pos).min(out.len());
        // SAFETY: pos + n <= end, inside the buffer.
        unsafe { core::ptr::copy_nonoverlapping(p.add(self.pos), out.as_mut_ptr(), n) };
        self.pos += n;
        n
    }

    /// Writes at the position: the number of bytes taken (fewer when a
    /// fixed buffer is full, 0 with `ENOSPC` when nothing fits; -1 with
    /// `ENOMEM`).
    fn write(&mut self, b: &[u8]) -> isize {
        match &mut self.store {
            Store::Fixed { buf, size, end, append, .. } => {
                // glibc's fmemopen_write: a NUL after the data when it
                // does not end with one, if it fits.
                if *append {
                    self.pos = *end;
                }
                let nul = usize::from((b.is_empty() || b[b.len() - 1] != 0) && *end < *size);
                let mut s = b.len();
                if self.pos + s + nul > *size {
                    if self.pos + nul >= *size {
                        super::set_errno(::libc::ENOSPC);
                        return 0;
                    }
                    s = *size - self.pos - nul;
                }
                // SAFETY: pos + s <= size, inside the caller's buffer.
                unsafe { core::ptr::copy_nonoverlapping(b.as_ptr(), buf.add(self.pos), s) };
                self.pos += s;
                if self.pos > *end {
                    *end = self.pos;
                    if *end < *size && nul == 1 {
                        // SAFETY: end < size.
                        unsafe { *buf.add(*end) = 0 };
                    } else if !*append && nul == 1 {
                        // SAFETY: size > 0 here (end < size held).
                        unsafe { *buf.add(*size - 1) = 0 };
                    }
                }
                s as isize
            }
            Store::Grow { p, cap, len, publish } => {
                let Some(need) = self.pos.checked_add(b.len()).and_then(|n| n.checked_add(1))
                else {
                    super::set_errno(::libc::ENOMEM);
                    return -1;
                };
                if need > *cap {
                    let new = need.max(cap.saturating_mul(2)).max(64);
                    // SAFETY: p is NULL or this stream's malloc'ed buffer.
                    let q = unsafe { super::memory::realloc(p.cast(), new) }.cast::<u8>();
                    if q.is_null() {
                        super::set_errno(::libc::ENOMEM);
                        return -1;
                    }
                    // SAFETY: the new part, zeroed (the NUL and what a
                    // seek past the end leaves).
                    unsafe { core::ptr::write_bytes(q.add(*cap), 0, new - *cap) };
                    (*p, *cap) = (q, new);
                }
                // SAFETY: pos + len(b) < cap.
                unsafe { core::ptr::copy_nonoverlapping(b.as_ptr(), p.add(self.pos), b.len()) };
                self.pos += b.len();
                *len = (*len).max(self.pos);
                if publish.is_some() {
                    // glibc's memstream ends the string where the write
                    // ended (after a seek back, what followed is cut).
                    // SAFETY: pos < cap (need above).
                    unsafe { *p.add(self.pos) = 0 };
                }
                b.len() as isize
            }
        }
    }

    /// Moves the position: the new one, or -1 with `EINVAL` (before the
    /// start; past a fixed buffer's size).
    fn seek(&mut self, offset: i64, whence: c_int) -> i64 {
        let (end, limit) = match self.store {
            Store::Fixed { end, size, .. } => (end, size),
            Store::Grow { len, .. } => (len, isize::MAX as usize),
        };
        let base = match whence {
            ::libc::SEEK_SET => 0,
            ::libc::SEEK_CUR => self.pos as i64,
            ::libc::SEEK_END => end as i64,
            _ => return super::fail(::libc::EINVAL).into(),
        };
        match base.checked_add(offset).and_then(|at| usize::try_from(at).ok()) {
            Some(at) if at <= limit => {
                self.pos = at;
                at as i64
            }
            _ => super::fail(::libc::EINVAL).into(),
        }
    }

    /// Tells an `open_memstream` program where its bytes are: `*ptr` the
    /// buffer (NUL-terminated), `*sizeloc` the smaller of the position
    /// and the length, as glibc.
    fn publish(&mut self) {
        if let Store::Grow { p, len, publish: Some((ptr, sizeloc)), .. } = self.store {
            // SAFETY: the pointers open_memstream was given stay valid
            // while the stream is open (its contract).
            unsafe {
                *ptr = p.cast();
                *sizeloc = self.pos.min(len);
            }
        }
    }

    /// Frees what the stream allocated (`open_memstream`'s buffer stays
    /// the program's).
    fn close(&mut self) {
        match self.store {
            // SAFETY: allocated by fmemopen for this stream.
            Store::Fixed { buf, owned: true, .. } => unsafe { super::memory::free(buf.cast()) },
            Store::Grow { p, publish: None, .. } => {
                // SAFETY: tmpfile's buffer, this stream's alone.
                unsafe { super::memory::free(p.cast()) }
            }
            _ => {}
        }
    }
}

impl File {
    const fn new(fd: c_int, readable: bool, writable: bool, fixed: bool, mode: Mode) -> File {
        let null = core::ptr::null_mut();
        File {
            flags: MAGIC,
            read_ptr: null,
            read_end: null,
            read_base: null,
            write_base: null,
            write_ptr: null,
            write_end: null,
            buf_base: null,
            buf_end: null,
            fd,
            readable,
            writable,
            fixed,
            mode,
            buf: Vec::new(),
            pending: 0,
            owner: 0,
            depth: 0,
            mem: None,
        }
    }

    /// The buffer's data capacity.
    fn cap(&self) -> usize {
        self.buf.len().saturating_sub(HEAD)
    }

    /// Allocates the buffer on first use; decides `stdout`'s mode.
    fn ensure_buffer(&mut self) -> bool {
        if self.mode == Mode::Unset {
            self.mode = if super::fd::isatty(self.fd) == 1 { Mode::Line } else { Mode::Full };
        }
        if self.buf.is_empty() {
            let cap = if self.mode == Mode::Unbuffered { 1 } else { BUFSIZ };
            if self.buf.try_reserve_exact(HEAD + cap).is_err() {
                return false;
            }
            self.buf.resize(HEAD + cap, 0);
            self.reset_read();
        }
        true
    }

    /// The start of the data area.
    fn data(&mut self) -> *mut u8 {
        // SAFETY: buf has at least HEAD bytes once allocated (callers
        // ensure_buffer first).
        unsafe { self.buf.as_mut_ptr().add(HEAD) }
    }

    /// Points the glibc read pointers nowhere (the buffer is gone).
    fn reset_read_pointers(&mut self) {
        let null = core::ptr::null_mut();
        (self.read_ptr, self.read_end, self.read_base) = (null, null, null);
        (self.buf_base, self.buf_end) = (null, null);
    }

    /// Drops buffered input.
    fn reset_read(&mut self) {
        let d = self.data();
        self.read_ptr = d;
        self.read_end = d;
        self.read_base = d;
        self.buf_base = d;
        // SAFETY: the data area's end, one past its last byte.
        self.buf_end = unsafe { d.add(self.cap()) };
    }

    /// Buffered input not yet read.
    fn unread(&self) -> usize {
        (self.read_end as usize).saturating_sub(self.read_ptr as usize)
    }

    /// Writes `bytes` to the descriptor, all of it; false on an error.
    fn write_fd(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            let n = match &mut self.mem {
                Some(m) => m.write(bytes),
                // SAFETY: bytes is readable for its length.
                None => unsafe { super::fd::write(self.fd, bytes.as_ptr().cast(), bytes.len()) },
            };
            if n <= 0 {
                self.flags |= ERR_SEEN;
                return false;
            }
            bytes = &bytes[n as usize..];
        }
        true
    }

    /// Writes out what is pending.
    fn flush_out(&mut self) -> bool {
        let ok = self.pending == 0 || {
            let n = core::mem::take(&mut self.pending);
            let data = core::mem::take(&mut self.buf);
            let ok = self.write_fd(&data[HEAD..HEAD + n]);
            self.buf = data;
            ok
        };
        if let Some(m) = &mut self.mem {
            // open_memstream's pointer and size, at each flush.
            m.publish();
        }
        ok
    }

    /// Gives back buffered input to the descriptor's offset (seekable
    /// descriptors), so that the next write or seek starts where the
    /// program has read to.
    fn drop_input(&mut self) {
        let unread = self.unread();
        if unread > 0 {
            self.seek(-(unread as i64), ::libc::SEEK_CUR);
        }
        if !self.buf.is_empty() {
            self.reset_read();
        }
    }

    /// Writes `bytes` through the buffer: the number taken (all, or
    /// fewer after an error).
    fn put(&mut self, bytes: &[u8]) -> usize {
        if !self.writable {
            self.flags |= ERR_SEEN;
            super::set_errno(::libc::EBADF);
            return 0;
        }
        if !self.ensure_buffer() {
            super::set_errno(::libc::ENOMEM);
            return 0;
        }
        self.drop_input();
        let cap = self.cap();
        if self.mode == Mode::Unbuffered || (self.pending == 0 && bytes.len() >= cap) {
            if !self.flush_out() {
                return 0;
            }
            return if self.write_fd(bytes) { bytes.len() } else { 0 };
        }
        // Line-buffered: through the last newline goes out now, the rest
        // stays buffered (as glibc's).
        let through = match self.mode {
            Mode::Line => bytes.iter().rposition(|&b| b == b'\n').map(|i| i + 1),
            _ => None,
        };
        if let Some(n) = through {
            let head = self.buffer(&bytes[..n]);
            if head < n || !self.flush_out() {
                return head.min(n.saturating_sub(self.pending));
            }
            return n + self.buffer(&bytes[n..]);
        }
        self.buffer(bytes)
    }

    /// Appends `bytes` to the buffer, writing it out each time it fills:
    /// the number taken.
    fn buffer(&mut self, bytes: &[u8]) -> usize {
        let cap = self.cap();
        let mut rest = bytes;
        while !rest.is_empty() {
            let k = rest.len().min(cap - self.pending);
            let at = HEAD + self.pending;
            self.buf[at..at + k].copy_from_slice(&rest[..k]);
            self.pending += k;
            rest = &rest[k..];
            if self.pending == cap && !self.flush_out() {
                return bytes.len() - rest.len() - k;
            }
        }
        bytes.len()
    }

    /// Refills the input buffer: false at end of file (`feof`) or on an
    /// error (`ferror`).
    fn fill(&mut self) -> bool {
        if !self.readable {
            self.flags |= ERR_SEEN;
            super::set_errno(::libc::EBADF);
            return false;
        }
        if !self.ensure_buffer() {
            super::set_errno(::libc::ENOMEM);
            return false;
        }
        if self.unread() > 0 {
            return true;
        }
        if !self.flush_out() {
            return false;
        }
        // Reading a terminal-like stream flushes line-buffered output
        // first (glibc flushes stdout), so a prompt shows.
        if self.mode != Mode::Full {
            flush_line_buffered(self);
        }
        self.reset_read();
        let cap = self.cap();
        let d = self.data();
        let n = match &mut self.mem {
            // SAFETY: d has cap writable bytes.
            Some(m) => m.read(unsafe { core::slice::from_raw_parts_mut(d, cap) }) as isize,
            // SAFETY: d has cap writable bytes.
            None => unsafe { super::fd::read(self.fd, d.cast(), cap) },
        };
        if n < 0 {
            self.flags |= ERR_SEEN;
            return false;
        }
        if n == 0 {
            self.flags |= EOF_SEEN;
            return false;
        }
        // SAFETY: n <= cap bytes were read.
        self.read_end = unsafe { d.add(n as usize) };
        true
    }

    /// The next byte, or `None` at end of file or on an error.
    fn get(&mut self) -> Option<u8> {
        if self.unread() == 0 && !self.fill() {
            return None;
        }
        // SAFETY: read_ptr < read_end, inside the buffer.
        unsafe {
            let b = *self.read_ptr;
            self.read_ptr = self.read_ptr.add(1);
            Some(b)
        }
    }

    /// The next byte without taking it (`scanf`): `None` at end of file
    /// or on an error.
    pub(super) fn peek_byte(&mut self) -> Option<u8> {
        let b = self.get()?;
        // SAFETY: get took the byte before read_ptr, in the buffer.
        self.read_ptr = unsafe { self.read_ptr.sub(1) };
        Some(b)
    }

    /// Takes the byte `peek_byte` returned.
    pub(super) fn take_byte(&mut self) {
        if self.unread() > 0 {
            // SAFETY: read_ptr < read_end.
            self.read_ptr = unsafe { self.read_ptr.add(1) };
        }
    }

    /// `lseek` on the descriptor, or the stream in memory.
    fn seek(&mut self, offset: i64, whence: c_int) -> i64 {
        match &mut self.mem {
            Some(m) => m.seek(offset, whence),
            None => super::fd::lseek64(self.fd, offset, whence),
        }
    }

    /// The stream's position: the descriptor's, less the input not yet
    /// read, plus the output not yet written.
    fn tell(&mut self) -> i64 {
        let at = self.seek(0, ::libc::SEEK_CUR);
        if at < 0 {
            return -1;
        }
        at - self.unread() as i64 + self.pending as i64
    }
}

/// A static stream: the C library's three.
struct Fixed(UnsafeCell<File>);

// SAFETY: every guest thread runs on the one host thread, and each call
// takes the stream's lock before touching it.
unsafe impl Sync for Fixed {}

static STDIN: Fixed = Fixed(UnsafeCell::new(File::new(0, true, false, true, Mode::Unset)));
static STDOUT: Fixed = Fixed(UnsafeCell::new(File::new(1, false, true, true, Mode::Unset)));
static STDERR: Fixed = Fixed(UnsafeCell::new(File::new(2, false, true, true, Mode::Unbuffered)));

/// `stdin`.
#[cfg_attr(not(test), unsafe(no_mangle))]
#[allow(non_upper_case_globals)]
pub static mut stdin: *mut File = STDIN.0.get();

/// `stdout`.
#[cfg_attr(not(test), unsafe(no_mangle))]
#[allow(non_upper_case_globals)]
pub static mut stdout: *mut File = STDOUT.0.get();

/// `stderr`.
#[cfg_attr(not(test), unsafe(no_mangle))]
#[allow(non_upper_case_globals)]
pub static mut stderr: *mut File = STDERR.0.get();

/// The streams `fopen` and `fdopen` made and `fclose` has not closed.
struct Open(UnsafeCell<Vec<*mut File>>);

// SAFETY: one host thread; the list is changed only between switches.
unsafe impl Sync for Open {}

static OPEN: Open = Open(UnsafeCell::new(Vec::new()));

/// The open streams: the three, then those opened.
fn all() -> Vec<*mut File> {
    let mut v = alloc::vec![STDIN.0.get(), STDOUT.0.get(), STDERR.0.get()];
    // SAFETY: the list is only touched here and in fopen/fclose, none of
    // which can switch threads while it holds the reference.
    v.extend_from_slice(unsafe { &*OPEN.0.get() });
    v
}

/// Flushes every stream's output (`fflush(NULL)`): -1 if any failed.
pub fn flush_all() -> c_int {
    let mut r = 0;
    for f in all() {
        // SAFETY: the list holds live streams.
        if unsafe { with(f, File::flush_out) } != Some(true) {
            r = ::libc::EOF;
        }
    }
    r
}

/// At `exit`: flushes every stream that no other thread holds (one
/// blocked inside a write keeps its buffer, as glibc's `_IO_cleanup`
/// skips a stream it cannot lock, rather than wait for ever).
pub fn flush_at_exit() {
    let me = me();
    for f in all() {
        // SAFETY: the list holds live streams; the lock is checked first.
        unsafe {
            if (*f).owner == 0 || (*f).owner == me {
                with(f, File::flush_out);
            }
        }
    }
}

/// Flushes the line-buffered streams other than `reading` (before
/// reading a terminal-like stream), skipping those another thread holds.
fn flush_line_buffered(reading: &File) {
    let me = me();
    for f in all() {
        if core::ptr::eq(f, reading) {
            continue;
        }
        // SAFETY: a live stream other than the one the caller borrows;
        // its lock is checked before it is taken.
        unsafe {
            if (*f).mode == Mode::Line && ((*f).owner == 0 || (*f).owner == me) {
                with(f, File::flush_out);
            }
        }
    }
}

/// The calling thread's number (never 0).
#[cfg(not(test))]
fn me() -> u32 {
    super::thread::switch::with(|s| s.me().id)
}

/// Host unit tests: one number per host thread.
#[cfg(test)]
fn me() -> u32 {
    extern crate std;
    static NEXT: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(1);
    std::thread_local!(static ME: u32 = NEXT.fetch_add(1, core::sync::atomic::Ordering::Relaxed));
    ME.with(|m| *m)
}

/// Takes `f`'s lock, waiting (yielding to other threads) while another
/// thread holds it.
///
/// # Safety
///
/// `f` is a live stream.
unsafe fn lock(f: *mut File) {
    let me = me();
    loop {
        // SAFETY: a live stream; no reference outlives this block.
        let taken = unsafe {
            let s = &mut *f;
            if s.owner == 0 || s.owner == me {
                s.owner = me;
                s.depth += 1;
                true
            } else {
                false
            }
        };
        if taken {
            return;
        }
        super::thread::sched_yield();
    }
}

/// Releases one hold of `f`'s lock.
///
/// # Safety
///
/// `f` is a live stream whose lock the calling thread holds.
unsafe fn unlock(f: *mut File) {
    // SAFETY: the caller's contract.
    let s = unsafe { &mut *f };
    s.depth = s.depth.saturating_sub(1);
    if s.depth == 0 {
        s.owner = 0;
    }
}

/// Runs `op` on `f` under its lock; `None` (with `EBADF`) for NULL.
///
/// # Safety
///
/// `f` is NULL or a live stream.
unsafe fn with<R>(f: *mut File, op: impl FnOnce(&mut File) -> R) -> Option<R> {
    if f.is_null() {
        super::set_errno(::libc::EBADF);
        return None;
    }
    // SAFETY: a live stream (the caller's contract); the lock keeps other
    // threads off it while op runs, even if op blocks.
    unsafe {
        lock(f);
        let r = op(&mut *f);
        unlock(f);
        Some(r)
    }
}

/// A [`super::printf::Sink`] into a stream.
/// Runs `op` on the stream, locked (`scanf`); `None` with `EBADF` for a
/// NULL stream.
///
/// # Safety
///
/// `f` is NULL or an open stream.
pub unsafe fn with_locked<R>(f: *mut File, op: impl FnOnce(&mut File) -> R) -> Option<R> {
    // SAFETY: the caller's contract.
    unsafe { with(f, op) }
}

struct StreamSink<'a> {
    f: &'a mut File,
    /// An unbuffered stream collects the whole output, written at once.
    whole: Option<Vec<u8>>,
}

impl super::printf::Sink for StreamSink<'_> {
    fn put(&mut self, bytes: &[u8]) -> bool {
        match &mut self.whole {
            Some(v) => v.put(bytes),
            None => self.f.put(bytes) == bytes.len(),
        }
    }
}

/// Runs the formatter `op` with a sink into `f`, under its lock: its
/// result, or `EBADF` for a NULL or read-only stream.
///
/// # Safety
///
/// `f` is NULL or a live stream.
pub unsafe fn with_sink(
    f: *mut File,
    op: impl FnOnce(&mut dyn super::printf::Sink) -> Result<usize, c_int>,
) -> Result<usize, c_int> {
    // SAFETY: the caller's contract.
    let r = unsafe {
        with(f, |f| {
            if !f.writable {
                f.flags |= ERR_SEEN;
                return Err(::libc::EBADF);
            }
            let whole = (f.mode == Mode::Unbuffered).then(Vec::new);
            let mut sink = StreamSink { f, whole };
            let r = op(&mut sink);
            if let Some(v) = sink.whole.take()
                && sink.f.put(&v) != v.len()
            {
                return Err(::libc::EIO);
            }
            r
        })
    };
    r.unwrap_or(Err(::libc::EBADF))
}

/// Parses a mode string: `open` flags, and whether the stream reads and
/// writes.
fn parse_mode(mode: &[u8]) -> Option<(c_int, bool, bool)> {
    let (mut flags, mut r, mut w) = match mode.first()? {
        b'r' => (::libc::O_RDONLY, true, false),
        b'w' => (::libc::O_WRONLY | ::libc::O_CREAT | ::libc::O_TRUNC, false, true),
        b'a' => (::libc::O_WRONLY | ::libc::O_CREAT | ::libc::O_APPEND, false, true),
        _ => return None,
    };
    // glibc reads at most six modifier characters and ignores others
    // (such as ",ccs=").
    for &c in mode[1..].iter().take(6) {
        match c {
            b'+' => {
                flags = (flags & !::libc::O_ACCMODE) | ::libc::O_RDWR;
                (r, w) = (true, true);
            }
            b'e' => flags |= ::libc::O_CLOEXEC,
            b'x' => flags |= ::libc::O_EXCL,
            b'b' | b't' | b'm' | b'c' => {}
            b',' => break,
            _ => {}
        }
    }
    Some((flags, r, w))
}

/// A new stream on `fd`, on the list of open streams.
fn new_stream(fd: c_int, r: bool, w: bool) -> *mut File {
    let f = Box::into_raw(Box::new(File::new(fd, r, w, false, Mode::Full)));
    // SAFETY: see all(); nothing here switches threads.
    unsafe { (*OPEN.0.get()).push(f) };
    f
}

/// `fopen(path, mode)`: a buffered stream on the file, or NULL with
/// `errno` (`EINVAL` for a bad mode, or `open`'s error).
///
/// # Safety
///
/// `path` and `mode` are NUL-terminated strings.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fopen(path: *const c_char, mode: *const c_char) -> *mut File {
    // SAFETY: a NUL-terminated string.
    let Some((flags, r, w)) = parse_mode(unsafe { super::c_str(mode) }) else {
        super::set_errno(::libc::EINVAL);
        return core::ptr::null_mut();
    };
    // SAFETY: path is a NUL-terminated string.
    let fd = unsafe { super::file::open64(path, flags, 0o666) };
    if fd < 0 {
        return core::ptr::null_mut();
    }
    new_stream(fd, r, w)
}

/// `fdopen(fd, mode)`: a stream on an open descriptor, whose access mode
/// must allow the stream's (`EINVAL`); `a` sets `O_APPEND` on it, as
/// glibc.
///
/// # Safety
///
/// `mode` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fdopen(fd: c_int, mode: *const c_char) -> *mut File {
    // SAFETY: a NUL-terminated string.
    let mode = unsafe { super::c_str(mode) };
    let Some((flags, r, w)) = parse_mode(mode) else {
        super::set_errno(::libc::EINVAL);
        return core::ptr::null_mut();
    };
    let have = super::fd::fcntl(fd, ::libc::F_GETFL, 0);
    if have < 0 {
        return core::ptr::null_mut();
    }
    let acc = have & ::libc::O_ACCMODE;
    if (r && acc == ::libc::O_WRONLY) || (w && acc == ::libc::O_RDONLY) {
        super::set_errno(::libc::EINVAL);
        return core::ptr::null_mut();
    }
    if flags & ::libc::O_APPEND != 0 && have & ::libc::O_APPEND == 0 {
        super::fd::fcntl(fd, ::libc::F_SETFL, (have | ::libc::O_APPEND) as usize);
    }
    new_stream(fd, r, w)
}

/// A new stream in memory, on the list of open streams.
fn new_mem_stream(r: bool, w: bool, pos: usize, store: Store) -> *mut File {
    let mut file = File::new(-1, r, w, false, Mode::Full);
    file.mem = Some(Box::new(Mem { pos, store }));
    let f = Box::into_raw(Box::new(file));
    // SAFETY: see all(); nothing here switches threads.
    unsafe { (*OPEN.0.get()).push(f) };
    f
}

/// `fmemopen(buf, size, mode)`: a stream over the `size` bytes at `buf`
/// (NULL: `size` zeroed bytes of its own, freed by `fclose`), as glibc's
/// (2.22 on): `r` reads all `size` bytes, `w` starts empty, `a` at the
/// first NUL; a write puts a NUL after the data when it fits, `ENOSPC`
/// past the end; a seek may go up to `size`. `fileno` is -1.
///
/// # Safety
///
/// `mode` is a NUL-terminated string; `buf` is NULL or `size` bytes
/// readable and writable while the stream is open.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fmemopen(
    buf: *mut c_void,
    size: size_t,
    mode: *const c_char,
) -> *mut File {
    // SAFETY: a NUL-terminated string.
    let mode = unsafe { super::c_str(mode) };
    let Some((_, r, w)) = parse_mode(mode) else {
        super::set_errno(::libc::EINVAL);
        return core::ptr::null_mut();
    };
    let owned = buf.is_null();
    let buf = if owned {
        let p = super::memory::calloc(1, size.max(1));
        if p.is_null() {
            super::set_errno(::libc::ENOMEM);
            return core::ptr::null_mut();
        }
        p.cast::<u8>()
    } else {
        buf.cast::<u8>()
    };
    let append = mode[0] == b'a';
    let end = match mode[0] {
        // SAFETY: buf has size readable bytes.
        b'a' => (0..size).find(|&k| unsafe { *buf.add(k) } == 0).unwrap_or(size),
        b'w' => 0,
        _ => size,
    };
    let pos = if append { end } else { 0 };
    new_mem_stream(r, w, pos, Store::Fixed { buf, size, end, owned, append })
}

/// `open_memstream(ptr, sizeloc)`: a stream that writes into a growing
/// `malloc`ed buffer; each flush (and `fclose`) sets `*ptr` to it (NUL
/// after the contents) and `*sizeloc` to the smaller of the position and
/// the length. The buffer is the program's to `free` after `fclose`.
/// Write-only, as glibc's.
///
/// # Safety
///
/// `ptr` and `sizeloc` are writable while the stream is open.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn open_memstream(ptr: *mut *mut c_char, sizeloc: *mut size_t) -> *mut File {
    if ptr.is_null() || sizeloc.is_null() {
        super::set_errno(::libc::EINVAL);
        return core::ptr::null_mut();
    }
    let cap = 64;
    let p = super::memory::calloc(1, cap).cast::<u8>();
    if p.is_null() {
        super::set_errno(::libc::ENOMEM);
        return core::ptr::null_mut();
    }
    let f = new_mem_stream(
        false,
        true,
        0,
        Store::Grow { p, cap, len: 0, publish: Some((ptr, sizeloc)) },
    );
    // SAFETY: a stream just made; the pointers are writable (contract).
    if let Some(m) = unsafe { &mut (*f).mem } {
        m.publish();
    }
    f
}

/// `tmpfile()`: a temporary file for reading and writing (`w+`). It is
/// kept in the guest's memory, not on a disk (a guest may have none, and
/// nothing else could open it: it has no name): it is gone at `fclose`
/// or exit, as on Linux, and `fileno` is -1 (`EBADF`). See docs/std.md.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn tmpfile() -> *mut File {
    new_mem_stream(
        true,
        true,
        0,
        Store::Grow { p: core::ptr::null_mut(), cap: 0, len: 0, publish: None },
    )
}

/// `tmpfile64()`: as `tmpfile`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn tmpfile64() -> *mut File {
    tmpfile()
}

/// `freopen(path, mode, f)`: flushes and closes what `f` was on and
/// opens `path` with `mode` on the same `FILE` (whose descriptor keeps
/// its number, as glibc's: `freopen("log", "w", stdout)` sends
/// descriptor 1 to the file). With `path` NULL, the mode of the same
/// descriptor changes (it must allow it, `EINVAL`; a stream in memory:
/// `EBADF`). On failure the stream is closed and NULL returned, as C
/// says.
///
/// # Safety
///
/// `path` is NULL or a NUL-terminated string, `mode` one; `f` an open
/// stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn freopen(
    path: *const c_char,
    mode: *const c_char,
    f: *mut File,
) -> *mut File {
    // SAFETY: a NUL-terminated string.
    let parsed = parse_mode(unsafe { super::c_str(mode) });
    // SAFETY: the caller's contract.
    let r = unsafe {
        with(f, |s| {
            s.flush_out();
            s.drop_input();
            let old = s.fd;
            let in_memory = s.mem.take().map(|mut m| {
                m.publish();
                m.close();
            });
            s.readable = false;
            s.writable = false;
            s.buf = Vec::new();
            s.pending = 0;
            s.flags = MAGIC;
            s.reset_read_pointers();
            let Some((flags, r, w)) = parsed else {
                if old >= 0 {
                    super::fd::close(old);
                }
                s.fd = -1;
                return Err(::libc::EINVAL);
            };
            let fd = if path.is_null() {
                if in_memory.is_some() {
                    return Err(::libc::EBADF);
                }
                let have = super::fd::fcntl(old, ::libc::F_GETFL, 0);
                let acc = have & ::libc::O_ACCMODE;
                if have < 0 || (r && acc == ::libc::O_WRONLY) || (w && acc == ::libc::O_RDONLY) {
                    let e = if have < 0 { super::errno() } else { ::libc::EINVAL };
                    super::fd::close(old);
                    s.fd = -1;
                    return Err(e);
                }
                let append = (flags & ::libc::O_APPEND) as usize;
                super::fd::fcntl(
                    old,
                    ::libc::F_SETFL,
                    (have & !::libc::O_APPEND) as usize | append,
                );
                old
            } else {
                if old >= 0 {
                    super::fd::close(old);
                }
                // SAFETY: path is a NUL-terminated string.
                let fd = super::file::open64(path, flags, 0o666);
                if fd < 0 {
                    s.fd = -1;
                    return Err(super::errno());
                }
                if old >= 0 && fd != old {
                    // Keep the number the stream had (glibc's dup3).
                    if super::fd::dup2(fd, old) < 0 {
                        let e = super::errno();
                        super::fd::close(fd);
                        s.fd = -1;
                        return Err(e);
                    }
                    super::fd::close(fd);
                    old
                } else {
                    fd
                }
            };
            s.fd = fd;
            s.readable = r;
            s.writable = w;
            if !s.fixed {
                s.mode = Mode::Full;
            }
            Ok(())
        })
    };
    match r {
        Some(Ok(())) => f,
        Some(Err(e)) => {
            super::set_errno(e);
            core::ptr::null_mut()
        }
        None => core::ptr::null_mut(),
    }
}

/// `freopen64`: as `freopen`.
///
/// # Safety
///
/// As `freopen`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn freopen64(
    path: *const c_char,
    mode: *const c_char,
    f: *mut File,
) -> *mut File {
    // SAFETY: the same contract.
    unsafe { freopen(path, mode, f) }
}

/// `popen(command, mode)`: NULL with `ENOSYS`. A guest cannot start a
/// process; glibc's `popen` fails with the error of the `posix_spawn`
/// it starts the shell with, and libos-std's `posix_spawn` says
/// `ENOSYS` (as std's `Command`). A bad mode is `EINVAL` first, as
/// glibc.
///
/// # Safety
///
/// `mode` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn popen(_command: *const c_char, mode: *const c_char) -> *mut File {
    // SAFETY: a NUL-terminated string.
    let mode = unsafe { super::c_str(mode) };
    let ok = matches!(mode.first(), Some(b'r' | b'w')) && mode[1..].iter().all(|&c| c == b'e');
    super::set_errno(if ok { ::libc::ENOSYS } else { ::libc::EINVAL });
    core::ptr::null_mut()
}

/// `pclose(f)`: no stream comes from `popen`; one from elsewhere is
/// closed and `fclose`'s result returned, as glibc's `pclose` does with
/// a stream that has no process.
///
/// # Safety
///
/// `f` is an open stream, not used again.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn pclose(f: *mut File) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { fclose(f) }
}

/// `fclose(f)`: flushes, closes the descriptor, frees the stream (the
/// three standard ones stay allocated, their descriptor closed). `EOF` if
/// the flush or the close failed.
///
/// # Safety
///
/// `f` is an open stream, not used again.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fclose(f: *mut File) -> c_int {
    // SAFETY: the caller's contract.
    let Some((flushed, fd, fixed)) = (unsafe {
        with(f, |s| {
            let ok = s.flush_out();
            s.drop_input();
            let fd = if let Some(mut m) = s.mem.take() {
                m.publish();
                m.close();
                -1
            } else {
                s.fd
            };
            (ok, fd, s.fixed)
        })
    }) else {
        return ::libc::EOF;
    };
    let closed = fd < 0 || super::fd::close(fd) == 0;
    if fixed {
        // SAFETY: a standard stream: it stays, unusable.
        unsafe {
            (*f).readable = false;
            (*f).writable = false;
        }
    } else {
        // SAFETY: see all(); f was made by new_stream and is dropped once.
        unsafe {
            (*OPEN.0.get()).retain(|&g| g != f);
            drop(Box::from_raw(f));
        }
    }
    if flushed && closed { 0 } else { ::libc::EOF }
}

/// `fflush(f)`: writes out what is buffered (`f` NULL: every stream);
/// on an input stream, gives back what was read ahead. 0 or `EOF`.
///
/// # Safety
///
/// `f` is NULL or an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fflush(f: *mut File) -> c_int {
    if f.is_null() {
        return flush_all();
    }
    // SAFETY: the caller's contract.
    match unsafe {
        with(f, |s| {
            let ok = s.flush_out();
            s.drop_input();
            if let Some(m) = &mut s.mem {
                m.publish();
            }
            ok
        })
    } {
        Some(true) => 0,
        _ => ::libc::EOF,
    }
}

/// `setvbuf(f, buf, mode, size)`: `_IOFBF`, `_IOLBF` or `_IONBF`, before
/// any I/O on the stream. The buffer is the stream's own, of `size` bytes
/// (`buf`'s contents are not used). `EOF` for a bad mode or size.
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn setvbuf(
    f: *mut File,
    _buf: *mut c_char,
    mode: c_int,
    size: size_t,
) -> c_int {
    let mode = match mode {
        ::libc::_IOFBF => Mode::Full,
        ::libc::_IOLBF => Mode::Line,
        ::libc::_IONBF => Mode::Unbuffered,
        _ => return ::libc::EOF,
    };
    // SAFETY: the caller's contract.
    let r = unsafe {
        with(f, |s| {
            if !s.flush_out() {
                return false;
            }
            s.drop_input();
            let cap = match mode {
                Mode::Unbuffered => 1,
                _ if size == 0 => BUFSIZ,
                _ => size.min(1 << 24),
            };
            let mut buf = Vec::new();
            if buf.try_reserve_exact(HEAD + cap).is_err() {
                return false;
            }
            buf.resize(HEAD + cap, 0);
            s.buf = buf;
            s.mode = mode;
            s.reset_read();
            true
        })
    };
    if r == Some(true) { 0 } else { ::libc::EOF }
}

/// `setbuf(f, buf)`: unbuffered for NULL, else fully buffered.
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn setbuf(f: *mut File, buf: *mut c_char) {
    let mode = if buf.is_null() { ::libc::_IONBF } else { ::libc::_IOFBF };
    // SAFETY: the caller's contract.
    unsafe { setvbuf(f, buf, mode, BUFSIZ) };
}

/// `setlinebuf(f)`.
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn setlinebuf(f: *mut File) {
    // SAFETY: the caller's contract.
    unsafe { setvbuf(f, core::ptr::null_mut(), ::libc::_IOLBF, 0) };
}

// ---------------------------------------------------------------------
// Writing.

/// `fwrite(p, size, n, f)`: the number of whole items written.
///
/// # Safety
///
/// `p` is readable for `size * n` bytes; `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fwrite(p: *const c_void, size: size_t, n: size_t, f: *mut File) -> size_t {
    let Some(len) = size.checked_mul(n).filter(|&l| l > 0) else { return 0 };
    // SAFETY: the caller guarantees len readable bytes at p.
    let bytes = unsafe { core::slice::from_raw_parts(p.cast::<u8>(), len) };
    // SAFETY: the caller's contract.
    unsafe { with(f, |s| s.put(bytes)) }.map_or(0, |w| w / size)
}

/// `fputs(s, f)`: a non-negative number, or `EOF`.
///
/// # Safety
///
/// `s` is a NUL-terminated string; `f` an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fputs(s: *const c_char, f: *mut File) -> c_int {
    // SAFETY: the caller's contract.
    let bytes = unsafe { super::c_str(s) };
    // SAFETY: the caller's contract.
    match unsafe { with(f, |st| st.put(bytes)) } {
        Some(n) if n == bytes.len() => 1,
        _ => ::libc::EOF,
    }
}

/// `puts(s)`: `s` and a newline on `stdout`.
///
/// # Safety
///
/// `s` is a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn puts(s: *const c_char) -> c_int {
    // SAFETY: the caller's contract.
    let bytes = unsafe { super::c_str(s) };
    // SAFETY: stdout is a live stream.
    match unsafe { with(STDOUT.0.get(), |st| st.put(bytes) == bytes.len() && st.put(b"\n") == 1) } {
        Some(true) => 1,
        _ => ::libc::EOF,
    }
}

/// `fputc(c, f)`: the byte written, or `EOF`.
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fputc(c: c_int, f: *mut File) -> c_int {
    // SAFETY: the caller's contract.
    match unsafe { with(f, |s| s.put(&[c as u8])) } {
        Some(1) => c_int::from(c as u8),
        _ => ::libc::EOF,
    }
}

/// `putc(c, f)`: as `fputc`.
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn putc(c: c_int, f: *mut File) -> c_int {
    // SAFETY: the same contract.
    unsafe { fputc(c, f) }
}

/// `putc_unlocked(c, f)`: as `fputc`.
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn putc_unlocked(c: c_int, f: *mut File) -> c_int {
    // SAFETY: the same contract.
    unsafe { fputc(c, f) }
}

/// `putchar(c)`: `fputc` on `stdout`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn putchar(c: c_int) -> c_int {
    // SAFETY: stdout is a live stream.
    unsafe { fputc(c, STDOUT.0.get()) }
}

/// `__overflow(f, c)`: glibc's slow path of the inline `putc_unlocked`
/// (here its only path: the inline write window is always empty).
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn __overflow(f: *mut File, c: c_int) -> c_int {
    if c == ::libc::EOF {
        // SAFETY: the caller's contract.
        return unsafe { fflush(f) };
    }
    // SAFETY: the caller's contract.
    unsafe { fputc(c, f) }
}

// ---------------------------------------------------------------------
// Reading.

/// `fgetc(f)`: the next byte, or `EOF` (end of file or error: `feof`
/// and `ferror` tell).
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fgetc(f: *mut File) -> c_int {
    // SAFETY: the caller's contract.
    match unsafe { with(f, File::get) } {
        Some(Some(b)) => c_int::from(b),
        _ => ::libc::EOF,
    }
}

/// `getc(f)`: as `fgetc`.
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn getc(f: *mut File) -> c_int {
    // SAFETY: the same contract.
    unsafe { fgetc(f) }
}

/// `getc_unlocked(f)`: as `fgetc`.
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn getc_unlocked(f: *mut File) -> c_int {
    // SAFETY: the same contract.
    unsafe { fgetc(f) }
}

/// `getchar()`: `fgetc` on `stdin`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub extern "C" fn getchar() -> c_int {
    // SAFETY: stdin is a live stream.
    unsafe { fgetc(STDIN.0.get()) }
}

/// `__uflow(f)`: glibc's slow path of the inline `getc_unlocked`, when
/// the read window is empty: the next byte, consumed.
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn __uflow(f: *mut File) -> c_int {
    // SAFETY: the same contract.
    unsafe { fgetc(f) }
}

/// `ungetc(c, f)`: pushes `c` back, to be read next (several in a row
/// as long as the room in front of the buffer lasts); clears end of
/// file. `c`, or `EOF`.
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn ungetc(c: c_int, f: *mut File) -> c_int {
    if c == ::libc::EOF {
        return ::libc::EOF;
    }
    let op = |s: &mut File| {
        if !s.readable || !s.ensure_buffer() || !s.flush_out() {
            return false;
        }
        if s.read_ptr <= s.buf.as_mut_ptr() {
            return false;
        }
        // SAFETY: read_ptr is after the buffer's first byte.
        unsafe {
            s.read_ptr = s.read_ptr.sub(1);
            *s.read_ptr = c as u8;
        }
        s.flags &= !EOF_SEEN;
        true
    };
    // SAFETY: the caller's contract.
    let ok = unsafe { with(f, op) };
    if ok == Some(true) { c_int::from(c as u8) } else { ::libc::EOF }
}

/// `fread(p, size, n, f)`: the number of whole items read.
///
/// # Safety
///
/// `p` is writable for `size * n` bytes; `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fread(p: *mut c_void, size: size_t, n: size_t, f: *mut File) -> size_t {
    let Some(len) = size.checked_mul(n).filter(|&l| l > 0) else { return 0 };
    // SAFETY: the caller guarantees len writable bytes at p.
    let out = unsafe { core::slice::from_raw_parts_mut(p.cast::<u8>(), len) };
    let op = |s: &mut File| {
        let mut got = 0;
        while got < len {
            if s.unread() == 0 && !s.fill() {
                break;
            }
            let k = s.unread().min(len - got);
            // SAFETY: k buffered bytes at read_ptr.
            unsafe {
                core::ptr::copy_nonoverlapping(s.read_ptr, out[got..].as_mut_ptr(), k);
                s.read_ptr = s.read_ptr.add(k);
            }
            got += k;
        }
        got
    };
    // SAFETY: the caller's contract.
    let got = unsafe { with(f, op) };
    got.map_or(0, |g| g / size)
}

/// `fgets(s, n, f)`: up to `n - 1` bytes, through a newline, and a NUL;
/// NULL at end of file before any byte, or on an error.
///
/// # Safety
///
/// `s` is writable for `n` bytes; `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fgets(s: *mut c_char, n: c_int, f: *mut File) -> *mut c_char {
    let Ok(n) = usize::try_from(n) else { return core::ptr::null_mut() };
    if n == 0 {
        return core::ptr::null_mut();
    }
    // SAFETY: the caller guarantees n writable bytes.
    let out = unsafe { core::slice::from_raw_parts_mut(s.cast::<u8>(), n) };
    // SAFETY: the caller's contract.
    let got = unsafe {
        with(f, |st| {
            let mut k = 0;
            while k + 1 < n {
                match st.get() {
                    Some(b) => {
                        out[k] = b;
                        k += 1;
                        if b == b'\n' {
                            break;
                        }
                    }
                    None if st.flags & ERR_SEEN != 0 => return None,
                    None => break,
                }
            }
            Some(k)
        })
    };
    match got.flatten() {
        Some(k) if k > 0 || n == 1 => {
            out[k] = 0;
            s
        }
        _ => core::ptr::null_mut(),
    }
}

/// `getdelim(lineptr, n, delim, f)`: a line through `delim` into the
/// `malloc`ed buffer `*lineptr` of `*n` bytes (grown with `realloc`),
/// NUL-terminated: its length, or -1 at end of file or on an error.
///
/// # Safety
///
/// `lineptr` and `n` are writable; `*lineptr` is NULL or a `malloc`ed
/// block of `*n` bytes; `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn getdelim(
    lineptr: *mut *mut c_char,
    n: *mut size_t,
    delim: c_int,
    f: *mut File,
) -> ssize_t {
    if lineptr.is_null() || n.is_null() {
        return super::fail_size(::libc::EINVAL);
    }
    let mut line = Vec::new();
    // SAFETY: the caller's contract.
    let r = unsafe {
        with(f, |st| {
            loop {
                match st.get() {
                    Some(b) => {
                        line.push(b);
                        if c_int::from(b) == delim & 0xff {
                            return true;
                        }
                    }
                    None => return st.flags & ERR_SEEN == 0 && !line.is_empty(),
                }
            }
        })
    };
    if r != Some(true) {
        return -1;
    }
    // SAFETY: lineptr and n are writable; *lineptr is malloc'ed or NULL.
    unsafe {
        if (*lineptr).is_null() || *n < line.len() + 1 {
            let p = super::memory::realloc((*lineptr).cast(), line.len() + 1);
            if p.is_null() {
                return super::fail_size(::libc::ENOMEM);
            }
            *lineptr = p.cast();
            *n = line.len() + 1;
        }
        core::ptr::copy_nonoverlapping(line.as_ptr(), (*lineptr).cast::<u8>(), line.len());
        *(*lineptr).add(line.len()) = 0;
    }
    line.len() as ssize_t
}

/// `__getdelim`: glibc's name of `getdelim`, which its headers' inline
/// `getline` calls.
///
/// # Safety
///
/// As `getdelim`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn __getdelim(
    lineptr: *mut *mut c_char,
    n: *mut size_t,
    delim: c_int,
    f: *mut File,
) -> ssize_t {
    // SAFETY: the same contract.
    unsafe { getdelim(lineptr, n, delim, f) }
}

/// `getline(lineptr, n, f)`: `getdelim` through a newline.
///
/// # Safety
///
/// As `getdelim`.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn getline(
    lineptr: *mut *mut c_char,
    n: *mut size_t,
    f: *mut File,
) -> ssize_t {
    // SAFETY: the same contract.
    unsafe { getdelim(lineptr, n, c_int::from(b'\n'), f) }
}

// ---------------------------------------------------------------------
// Positioning and state.

/// `fseeko(f, offset, whence)`: flushes, moves the descriptor (for
/// `SEEK_CUR` from the stream's position), drops the input read ahead and
/// clears end of file. 0, or -1 with `lseek`'s error (`ESPIPE` on a
/// pipe).
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fseeko(f: *mut File, offset: i64, whence: c_int) -> c_int {
    // SAFETY: the caller's contract.
    let r = unsafe {
        with(f, |s| {
            if !s.flush_out() {
                return -1;
            }
            let offset =
                if whence == ::libc::SEEK_CUR { offset - s.unread() as i64 } else { offset };
            let at = s.seek(offset, whence);
            if at < 0 {
                return -1;
            }
            if !s.buf.is_empty() {
                s.reset_read();
            }
            s.flags &= !EOF_SEEN;
            0
        })
    };
    r.unwrap_or(-1)
}

/// `fseek(f, offset, whence)`: as `fseeko`.
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fseek(f: *mut File, offset: ::libc::c_long, whence: c_int) -> c_int {
    // SAFETY: the same contract.
    unsafe { fseeko(f, offset, whence) }
}

/// `ftello(f)`: the stream's position, or -1 (`ESPIPE` on a pipe).
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn ftello(f: *mut File) -> i64 {
    // SAFETY: the caller's contract.
    unsafe { with(f, File::tell) }.unwrap_or(-1)
}

/// `ftell(f)`: as `ftello`.
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn ftell(f: *mut File) -> ::libc::c_long {
    // SAFETY: the same contract.
    unsafe { ftello(f) }
}

/// `rewind(f)`: to the start, errors cleared.
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn rewind(f: *mut File) {
    // SAFETY: the caller's contract.
    unsafe {
        fseeko(f, 0, ::libc::SEEK_SET);
        clearerr(f);
    }
}

/// `fgetpos(f, pos)`: the position into the `fpos_t` (its first field).
///
/// # Safety
///
/// `f` is an open stream; `pos` is writable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fgetpos(f: *mut File, pos: *mut ::libc::fpos_t) -> c_int {
    // SAFETY: the caller's contract.
    let at = unsafe { ftello(f) };
    if at < 0 {
        return -1;
    }
    // SAFETY: pos is writable; an fpos_t starts with its offset.
    unsafe {
        pos.write_bytes(0, 1);
        pos.cast::<i64>().write_unaligned(at);
    }
    0
}

/// `fsetpos(f, pos)`: back to a position from `fgetpos`.
///
/// # Safety
///
/// `f` is an open stream; `pos` is readable.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fsetpos(f: *mut File, pos: *const ::libc::fpos_t) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { fseeko(f, pos.cast::<i64>().read_unaligned(), ::libc::SEEK_SET) }
}

/// `feof(f)`: non-zero once a read met the end of file.
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn feof(f: *mut File) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { with(f, |s| c_int::from(s.flags & EOF_SEEN != 0)) }.unwrap_or(0)
}

/// `ferror(f)`: non-zero once a read or write failed.
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn ferror(f: *mut File) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { with(f, |s| c_int::from(s.flags & ERR_SEEN != 0)) }.unwrap_or(0)
}

/// `clearerr(f)`: clears end of file and error.
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn clearerr(f: *mut File) {
    // SAFETY: the caller's contract.
    unsafe { with(f, |s| s.flags &= !(EOF_SEEN | ERR_SEEN)) };
}

/// `fileno(f)`: the stream's descriptor.
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn fileno(f: *mut File) -> c_int {
    // SAFETY: the caller's contract.
    match unsafe { with(f, |s| s.fd) } {
        // A stream in memory has none, as glibc's fmemopen.
        Some(-1) => super::fail(::libc::EBADF),
        r => r.unwrap_or(-1),
    }
}

/// `flockfile(f)`: takes the stream's lock (recursive) for a sequence of
/// calls.
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn flockfile(f: *mut File) {
    // SAFETY: the caller's contract.
    unsafe { lock(f) }
}

/// `ftrylockfile(f)`: 0 if taken, non-zero if another thread holds it.
///
/// # Safety
///
/// `f` is an open stream.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn ftrylockfile(f: *mut File) -> c_int {
    let me = me();
    // SAFETY: the caller's contract.
    let s = unsafe { &mut *f };
    if s.owner == 0 || s.owner == me {
        s.owner = me;
        s.depth += 1;
        0
    } else {
        1
    }
}

/// `funlockfile(f)`.
///
/// # Safety
///
/// `f` is an open stream the calling thread locked.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn funlockfile(f: *mut File) {
    // SAFETY: the caller's contract.
    unsafe { unlock(f) }
}

/// `perror(s)`: `s: ` (if `s` is neither NULL nor empty) and the message
/// for `errno`, on `stderr`.
///
/// # Safety
///
/// `s` is NULL or a NUL-terminated string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn perror(s: *const c_char) {
    let e = super::errno();
    let mut line = Vec::new();
    if !s.is_null() {
        // SAFETY: a NUL-terminated string.
        let prefix = unsafe { super::c_str(s) };
        if !prefix.is_empty() {
            line.extend_from_slice(prefix);
            line.extend_from_slice(b": ");
        }
    }
    match super::string::message(e) {
        Some(m) => line.extend_from_slice(m.as_bytes()),
        None => {
            use core::fmt::Write as _;
            struct W<'a>(&'a mut Vec<u8>);
            impl core::fmt::Write for W<'_> {
                fn write_str(&mut self, s: &str) -> core::fmt::Result {
                    self.0.extend_from_slice(s.as_bytes());
                    Ok(())
                }
            }
            let _ = write!(W(&mut line), "Unknown error {e}");
        }
    }
    line.push(b'\n');
    // SAFETY: stderr is a live stream.
    unsafe { with(STDERR.0.get(), |st| st.put(&line)) };
    super::set_errno(e);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipe from the descriptor table: (read end, write end).
    fn pipe() -> (c_int, c_int) {
        let mut fds = [0; 2];
        // SAFETY: fds has room for two.
        assert_eq!(unsafe { super::super::pipe::pipe2(fds.as_mut_ptr(), ::libc::O_NONBLOCK) }, 0);
        (fds[0], fds[1])
    }

    #[test]
    fn modes_parse_as_glibc() {
        assert_eq!(parse_mode(b"r"), Some((::libc::O_RDONLY, true, false)));
        assert_eq!(
            parse_mode(b"wb+"),
            Some((::libc::O_RDWR | ::libc::O_CREAT | ::libc::O_TRUNC, true, true))
        );
        assert_eq!(
            parse_mode(b"a+e"),
            Some((
                ::libc::O_RDWR | ::libc::O_CREAT | ::libc::O_APPEND | ::libc::O_CLOEXEC,
                true,
                true
            ))
        );
        assert_eq!(
            parse_mode(b"wx"),
            Some((
                ::libc::O_WRONLY | ::libc::O_CREAT | ::libc::O_TRUNC | ::libc::O_EXCL,
                false,
                true
            ))
        );
        assert_eq!(parse_mode(b""), None);
        assert_eq!(parse_mode(b"z"), None);
        assert_eq!(parse_mode(b"+r"), None);
    }

    #[test]
    fn streams_buffer_read_unget_and_line_as_glibc() {
        let _t = super::super::FD_TABLE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let (r, w) = pipe();
        // SAFETY: the modes are strings; the streams live until fclose.
        unsafe {
            let out = fdopen(w, c"w".as_ptr());
            let inp = fdopen(r, c"r".as_ptr());
            assert!(!out.is_null() && !inp.is_null());
            assert!(fdopen(r, c"w".as_ptr()).is_null(), "read-only descriptor");
            assert_eq!(super::super::errno(), ::libc::EINVAL);
            assert_eq!(fputs(c"first line\nsecond".as_ptr(), out), 1);
            assert_eq!(fputc(i32::from(b'\n'), out), i32::from(b'\n'));
            // Fully buffered: nothing reached the pipe yet.
            let mut buf = [0 as c_char; 64];
            assert!(fgets(buf.as_mut_ptr(), 64, inp).is_null());
            assert_eq!(ferror(inp), 1, "EAGAIN on the empty nonblocking pipe");
            clearerr(inp);
            assert_eq!(fflush(out), 0);
            assert_eq!(fgetc(inp), i32::from(b'f'));
            assert_eq!(ungetc(i32::from(b'F'), inp), i32::from(b'F'));
            assert!(!fgets(buf.as_mut_ptr(), 64, inp).is_null());
            assert_eq!(super::super::c_str(buf.as_ptr()), b"First line\n");
            assert!(!fgets(buf.as_mut_ptr(), 4, inp).is_null());
            assert_eq!(super::super::c_str(buf.as_ptr()), b"sec");
            let mut line: *mut c_char = core::ptr::null_mut();
            let mut n = 0;
            assert_eq!(getline(&mut line, &mut n, inp), 4);
            assert_eq!(super::super::c_str(line), b"ond\n");
            super::super::memory::free(line.cast());
            // Seeking a pipe fails as lseek does.
            assert_eq!(ftell(inp), -1);
            assert_eq!(super::super::errno(), ::libc::ESPIPE);
            // Line buffering writes at each newline.
            assert_eq!(setvbuf(out, core::ptr::null_mut(), ::libc::_IOLBF, 0), 0);
            assert_eq!(fwrite(b"ab\ncd".as_ptr().cast(), 1, 5, out), 5);
            let mut got = [0u8; 8];
            assert_eq!(fread(got.as_mut_ptr().cast(), 1, 8, inp), 3);
            assert_eq!(&got[..3], b"ab\n");
            assert_eq!(ferror(inp), 1, "then EAGAIN, as glibc on a nonblocking pipe");
            clearerr(inp);
            assert_eq!(fclose(out), 0, "flushes cd");
            assert_eq!(fread(got.as_mut_ptr().cast(), 1, 8, inp), 2);
            assert_eq!(&got[..2], b"cd");
            assert_eq!(fgetc(inp), ::libc::EOF);
            assert_eq!((feof(inp), ferror(inp)), (1, 0));
            assert_eq!(fclose(inp), 0);
        }
    }

    #[test]
    fn a_read_only_stream_refuses_writes() {
        let _t = super::super::FD_TABLE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let (r, w) = pipe();
        // SAFETY: as above.
        unsafe {
            let inp = fdopen(r, c"r".as_ptr());
            assert_eq!(fputs(c"x".as_ptr(), inp), ::libc::EOF);
            assert_eq!(ferror(inp), 1);
            assert_eq!(fclose(inp), 0);
            assert_eq!(super::super::fd::close(w), 0);
            assert_eq!(fputs(c"x".as_ptr(), core::ptr::null_mut()), ::libc::EOF);
        }
    }
    /// The same calls on streams in memory, with `$m`'s functions (this
    /// C library's or the host's glibc's): what each returned, and the
    /// buffers' bytes after.
    macro_rules! memory_scenario {
        ($m:ident, $free:path) => {{
            use std::format;
            let mut log = std::vec::Vec::new();
            // SAFETY: the buffers outlive their streams; the strings are
            // NUL-terminated.
            unsafe {
                let mut b = [b'x'; 16];
                b[2] = 0;
                let f = $m::fmemopen(b.as_mut_ptr().cast(), 10, c"r".as_ptr());
                let mut r = [0u8; 32];
                let n = $m::fread(r.as_mut_ptr().cast(), 1, 32, f);
                log.push(format!("r {n} {:?} eof {} tell {}", &r[..n], $m::feof(f), $m::ftell(f)));
                log.push(format!("close {}", $m::fclose(f)));
                let mut b = [b'x'; 16];
                let f = $m::fmemopen(b.as_mut_ptr().cast(), 8, c"w".as_ptr());
                log.push(format!("w {} {}", $m::fputs(c"hello".as_ptr(), f), $m::fflush(f)));
                log.push(format!("{b:?}"));
                log.push(format!("full {} {}", $m::fputs(c"world".as_ptr(), f), $m::fflush(f)));
                log.push(format!("{b:?} err {}", $m::ferror(f)));
                $m::fclose(f);
                let mut b = *b"abc\0zzzzzzzzzzzz";
                let f = $m::fmemopen(b.as_mut_ptr().cast(), 8, c"a+".as_ptr());
                log.push(format!("a tell {}", $m::ftell(f)));
                $m::fputs(c"de".as_ptr(), f);
                $m::rewind(f);
                let n = $m::fread(r.as_mut_ptr().cast(), 1, 32, f);
                log.push(format!("a+ {:?} {}", &r[..n], $m::fclose(f)));
                log.push(format!("{b:?}"));
                let mut b = *b"abcdef\0zzzzzzzzz";
                let f = $m::fmemopen(b.as_mut_ptr().cast(), 8, c"r+".as_ptr());
                $m::fgets(r.as_mut_ptr().cast(), 3, f);
                $m::fputs(c"XY".as_ptr(), f);
                log.push(format!("r+ {:?} {:?} {}", &r[..3], b, $m::ftell(f)));
                log.push(format!(
                    "seek {} {} {} {} {}",
                    $m::fseek(f, 9, ::libc::SEEK_SET),
                    $m::fseek(f, 8, ::libc::SEEK_SET),
                    $m::fseek(f, -3, ::libc::SEEK_END),
                    $m::ftell(f),
                    $m::fgetc(f),
                ));
                $m::fclose(f);
                let f = $m::fmemopen(core::ptr::null_mut(), 8, c"w+".as_ptr());
                $m::fputs(c"1234".as_ptr(), f);
                $m::rewind(f);
                let n = $m::fread(r.as_mut_ptr().cast(), 1, 32, f);
                log.push(format!("null {:?} {}", &r[..n], $m::fclose(f)));
                let mut p: *mut c_char = core::ptr::null_mut();
                let mut sz: size_t = 99;
                let f = $m::open_memstream(&mut p, &mut sz);
                $m::fputs(c"hi 42".as_ptr(), f);
                $m::fflush(f);
                log.push(format!("ms {:?} {sz}", core::ffi::CStr::from_ptr(p)));
                $m::fseek(f, 1, ::libc::SEEK_SET);
                $m::fflush(f);
                log.push(format!("ms {:?} {sz}", core::ffi::CStr::from_ptr(p)));
                for _ in 0..300 {
                    $m::fputs(c"ZZZZ".as_ptr(), f);
                }
                log.push(format!("ms {}", $m::fclose(f)));
                let text = core::ffi::CStr::from_ptr(p).to_bytes();
                log.push(format!("ms {} {sz} {:?}", text.len(), &text[..8]));
                $free(p.cast());
                let f = $m::tmpfile();
                $m::fputs(c"temporary\nfile".as_ptr(), f);
                log.push(format!("tmp tell {}", $m::ftell(f)));
                $m::fseek(f, 3, ::libc::SEEK_SET);
                $m::fputs(c"P".as_ptr(), f);
                $m::rewind(f);
                let n = $m::fread(r.as_mut_ptr().cast(), 1, 32, f);
                log.push(format!("tmp {:?} {}", &r[..n], $m::fclose(f)));
            }
            log
        }};
    }

    #[test]
    fn memory_streams_behave_as_glibcs() {
        let ours = memory_scenario!(self, super::super::memory::free);
        let host = memory_scenario!(libc, libc::free);
        assert_eq!(ours, host);
    }

    #[test]
    fn memory_stream_oddities() {
        // SAFETY: as memory_scenario!'s.
        unsafe {
            let f = tmpfile();
            assert_eq!((fileno(f), super::super::errno()), (-1, ::libc::EBADF));
            fclose(f);
            assert!(popen(c"true".as_ptr(), c"r".as_ptr()).is_null());
            assert_eq!(super::super::errno(), ::libc::ENOSYS);
            assert!(popen(c"true".as_ptr(), c"rw".as_ptr()).is_null());
            assert_eq!(super::super::errno(), ::libc::EINVAL);
            // A write far past a growing buffer's end: ENOMEM, no wrap.
            let f = tmpfile();
            assert_eq!(fseeko(f, i64::MAX - 2, ::libc::SEEK_SET), 0);
            assert_eq!(fputs(c"abcdefgh".as_ptr(), f), 1);
            assert_eq!((fflush(f), super::super::errno()), (::libc::EOF, ::libc::ENOMEM));
            fclose(f);
            // A fixed buffer of 0 bytes takes nothing.
            let f = fmemopen(core::ptr::null_mut(), 0, c"w".as_ptr());
            assert!(!f.is_null());
            assert_eq!(fputc(i32::from(b'a'), f), i32::from(b'a'));
            assert_eq!(fflush(f), ::libc::EOF);
            fclose(f);
        }
    }
}
