//! One connection, from accept to close: the I/O around `http::conn`.
//!
//! The loop asks [`Conn`] what to do, answers requests into `out` (at most
//! [`OUT_MAX`] bytes, allocated fallibly), and reads only once what it owes
//! the client is written: a client that does not read its responses stops
//! being read, and its connection ends when a write cannot complete within
//! `send_timeout`. Every read waits until the [`Conn`]'s deadline at most,
//! and an idle one also until the accept loop asks for the connection back
//! ([`Slot::evict`]).
//!
//! A connection ends in one of two ways. Gracefully, after a response with
//! `Connection: close`, a refusal, or an idle keep-alive timeout: the
//! pending output is written, the sending side shut, and the connection
//! lingers (reading and dropping what still comes) until the client
//! closes too, for [`LINGER`] at most, as nginx's lingering close does, so
//! that a client still sending does not get a reset that destroys the
//! response it has not read yet. Or by a reset, when a request times out, a
//! write cannot complete, the heap has no room, or the connection is
//! evicted: its socket is freed at once.

use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::{Future, poll_fn};
use core::pin::{Pin, pin};
use core::task::{Poll, Waker};
use core::time::Duration;

use http::conn::{Conn, Limits, Next, OUT_MAX, OutOfMemory, READ_CHUNK, WRITE_MAX};
use http::{Head, Method, RangeAnswer, Status};
use libos::fs::FsError;
use libos::log;
use libos::net::{NetError, TcpStream};
use libos::task::{self, Sleep};
use libos::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::site::Site;

/// Longest a closing connection waits for the client to close its side.
pub(crate) const LINGER: Duration = Duration::from_secs(5);

/// Reads (of up to [`READ_CHUNK`] bytes each, and the answers to what they
/// brought) a connection may make in one turn of the executor before the
/// others have theirs: 16 KiB, so a pipelining client gets a batch of
/// requests answered per turn, not all it has sent.
const READS_PER_TURN: u32 = 4;

/// What the accept loop knows of a connection, to take it back when
/// connections run out (see `main`).
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// Since when it has been waiting for a request, if it is.
    pub(crate) idle_since: Cell<Option<Duration>>,
    /// Set by the accept loop: close at once if idle.
    pub(crate) evict: Cell<bool>,
    /// Set when the server stops: finish the request under way (answered
    /// with `Connection: close`), then close gracefully; close at once if
    /// idle.
    pub(crate) drain: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Slot {
    /// Asks the connection to finish what it is doing and close, waking
    /// it if it is idle.
    pub(crate) fn drain(&self) {
        self.drain.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Asks the connection to close, waking it.
    pub(crate) fn evict(&self) {
        self.evict.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

/// Why a connection ended with a reset.
#[derive(Debug)]
enum Reset {
    Net(NetError),
    /// A request, a body or a write took too long.
    TimedOut(&'static str),
    NoMemory,
    Evicted,
}

impl core::fmt::Display for Reset {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Net(e) => write!(f, "{e}"),
            Self::TimedOut(what) => write!(f, "the {what} took too long"),
            Self::NoMemory => f.write_str("no memory for its buffers"),
            Self::Evicted => f.write_str("idle, closed to make room"),
        }
    }
}

impl From<NetError> for Reset {
    fn from(e: NetError) -> Self {
        Self::Net(e)
    }
}

impl From<OutOfMemory> for Reset {
    fn from(_: OutOfMemory) -> Self {
        Self::NoMemory
    }
}

/// The time since boot, read from the clock only when it may have moved on
/// much: after a read, and after a write that had to wait. One clock read
/// per request, as before the limits.
struct Clock {
    now: Cell<Duration>,
    stale: Cell<bool>,
}

impl Clock {
    fn now(&self) -> Duration {
        if self.stale.replace(false) {
            self.now.set(Instant::now().as_duration());
        }
        self.now.get()
    }
}

/// A connection's state while it runs.
struct Connection<'a> {
    site: &'a Site,
    stream: TcpStream,
    limits: Limits,
    out: Vec<u8>,
    clock: Clock,
    /// The reads' deadline timer, made by the first read that has to wait
    /// and moved by the next ones ([`Sleep::reset`]): a later deadline,
    /// the next request's, costs no timer of its own.
    timer: Option<Sleep>,
}

/// Serves `stream` until it closes, errs, or times out.
pub(crate) async fn serve(site: &Site, stream: TcpStream, limits: Limits, slot: &Slot) {
    let clock = Clock { now: Cell::new(Instant::now().as_duration()), stale: Cell::new(false) };
    let mut conn = Conn::new(clock.now(), limits);
    let mut c = Connection { site, stream, limits, out: Vec::new(), clock, timer: None };
    let peer = c.stream.peer_addr();
    let ended = c.run(&mut conn, slot).await;
    slot.idle_since.set(None);
    match ended {
        Ok(()) => c.close_gracefully().await,
        Err(e) => {
            log::debug!("{peer:?}: reset: {e}");
            c.stream.abort();
        }
    }
}

impl Connection<'_> {
    /// Serves requests until the connection is to be closed gracefully
    /// (`Ok`) or reset (`Err`).
    async fn run(&mut self, conn: &mut Conn, slot: &Slot) -> Result<(), Reset> {
        let mut chunk = [0u8; READ_CHUNK];
        // A client that keeps data coming (pipelined requests, a body being
        // discarded) would otherwise be served for as long as it sends,
        // every read ready at once, while the other connections wait.
        let mut budget = task::Budget::new(READS_PER_TURN);
        loop {
            match conn.next(self.clock.now()) {
                Next::Request(mut request) => {
                    // The server is stopping: this is the last response.
                    if slot.drain.get() {
                        request.keep_alive = false;
                    }
                    self.respond(&request).await?;
                    if !request.keep_alive {
                        return Ok(());
                    }
                    conn.answered(self.clock.now());
                }
                Next::Refuse(status) => {
                    log::info!("refused: {}", status.line().0);
                    respond_error(&mut self.out, status, false, false)?;
                    return Ok(());
                }
                // Nothing under way: the keep-alive wait ended.
                Next::TimedOut if conn.is_idle() => return Ok(()),
                Next::TimedOut => return Err(Reset::TimedOut("request")),
                Next::Read { deadline, idle } => {
                    self.send_out().await?;
                    budget.spend().await;
                    if idle {
                        slot.idle_since.set(Some(self.clock.now()));
                    }
                    let read = read_until(
                        &mut self.stream,
                        &mut chunk,
                        (&mut self.timer, deadline),
                        idle,
                        slot,
                    )
                    .await;
                    slot.idle_since.set(None);
                    self.clock.stale.set(true);
                    match read {
                        Read::Data(n) => conn.received(&chunk[..n], self.clock.now())?,
                        Read::End => return Ok(()),
                        Read::Error(e) => return Err(e.into()),
                        Read::Deadline if idle => return Ok(()),
                        Read::Deadline => return Err(Reset::TimedOut("request")),
                        Read::Evicted => return Err(Reset::Evicted),
                        Read::Drained => return Ok(()),
                    }
                }
            }
        }
    }

    /// Writes `bytes`, each piece of at most [`WRITE_MAX`] within the send
    /// timeout.
    async fn send(&mut self, bytes: &[u8]) -> Result<(), Reset> {
        for piece in bytes.chunks(WRITE_MAX) {
            match with_timeout(self.limits.send_timeout, self.stream.write_all(piece)).await {
                Timed::Done(r, waited) => {
                    r?;
                    if waited {
                        self.clock.stale.set(true);
                    }
                }
                Timed::Elapsed => return Err(Reset::TimedOut("write")),
            }
        }
        Ok(())
    }

    /// Writes what `out` holds.
    async fn send_out(&mut self) -> Result<(), Reset> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = core::mem::take(&mut self.out);
        let sent = self.send(&out).await;
        self.out = out;
        self.out.clear();
        sent
    }

    /// Appends `bytes` to `out`, writing `out` first if it would pass
    /// [`OUT_MAX`]; a larger `bytes` goes to the socket directly.
    async fn push(&mut self, bytes: &[u8]) -> Result<(), Reset> {
        if self.out.len() + bytes.len() > OUT_MAX {
            self.send_out().await?;
            if bytes.len() > OUT_MAX {
                return self.send(bytes).await;
            }
        }
        let grows = self.out.len() + bytes.len() > self.out.capacity();
        if grows && !crate::room_for(bytes.len()) {
            return Err(Reset::NoMemory);
        }
        self.out.try_reserve(bytes.len()).map_err(|_| Reset::NoMemory)?;
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    /// Writes what is pending, shuts the sending side, waits (within the
    /// send timeout) until the client has it all, then lingers until the
    /// client closes; resets the connection if either wait runs out.
    async fn close_gracefully(mut self) {
        if self.send_out().await.is_err() {
            self.stream.abort();
            return;
        }
        self.stream.shutdown();
        let flushed = with_timeout(self.limits.send_timeout, self.stream.flush()).await;
        if !matches!(flushed, Timed::Done(Ok(()), _)) {
            self.stream.abort();
            return;
        }
        let stream = &mut self.stream;
        let lingered = task::timeout(LINGER, async {
            let mut sink = [0u8; 512];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<(), NetError>(())
        })
        .await;
        match lingered {
            // The client closed: the socket goes once its last ACK is in.
            Ok(Ok(())) => drop(self.stream),
            _ => self.stream.abort(),
        }
    }

    /// Answers `request`: into `out`, or, for a body that does not fit,
    /// through the socket after what `out` holds.
    async fn respond(&mut self, request: &http::Request) -> Result<(), Reset> {
        let head_only = request.method == Method::Head;
        if self.site.status.as_ref().is_some_and(|p| *p == request.path) {
            return Ok(respond_status(&mut self.out, request.keep_alive, head_only)?);
        }
        let found = match self.site.find(&request.path) {
            Ok(f) => f,
            Err(e) => {
                let status = match e {
                    FsError::NotFound | FsError::NotADirectory | FsError::InvalidName => {
                        Status::NotFound
                    }
                    _ => {
                        log::warn!("{}: {e}", request.path);
                        Status::InternalError
                    }
                };
                log::info!("{} {} {}", method_name(request.method), request.path, status.line().0);
                return Ok(respond_error(&mut self.out, status, request.keep_alive, head_only)?);
            }
        };
        let mut head = Head {
            status: Status::Ok,
            content_type: http::content_type(&found.path),
            content_length: found.len as usize,
            keep_alive: request.keep_alive,
            date: now(),
            last_modified: Some(found.modified),
            content_range: None,
        };
        if request.if_modified_since.is_some_and(|t| found.modified <= t) {
            head.status = Status::NotModified;
            head.content_length = 0;
            return Ok(head.try_write(&mut self.out)?);
        }
        let (start, end) = match request.range.as_deref().map(|r| http::byte_range(r, found.len)) {
            None | Some(RangeAnswer::Full) => (0, found.len),
            Some(RangeAnswer::Partial { start, end }) => {
                head.status = Status::PartialContent;
                head.content_range = Some((start, end, found.len));
                (start, end + 1)
            }
            Some(RangeAnswer::Unsatisfiable) => {
                head.status = Status::RangeNotSatisfiable;
                head.content_range = Some((0, 0, found.len));
                head.content_type = "text/plain; charset=utf-8";
                head.content_length = 0;
                return Ok(head.try_write(&mut self.out)?);
            }
        };
        head.content_length = (end - start) as usize;
        log::info!(
            "{} {} {} {}",
            method_name(request.method),
            request.path,
            head.status.line().0,
            end - start
        );
        let cached = match self.site.cached(&found) {
            Ok(c) => c,
            Err(e) => {
                log::warn!("{}: {e}", found.path);
                return Ok(respond_error(
                    &mut self.out,
                    Status::InternalError,
                    request.keep_alive,
                    head_only,
                )?);
            }
        };
        if let Some(body) = cached {
            head.try_write(&mut self.out)?;
            if !head_only {
                self.push(&body[start as usize..end as usize]).await?;
            }
            return Ok(());
        }
        if head_only {
            return Ok(head.try_write(&mut self.out)?);
        }
        // From the disk, in pieces, through a buffer allocated fallibly
        // before anything of the response is written: twice what the
        // socket's send buffer holds (more would only wait in it), within
        // the heap's reserve.
        let mut piece = Vec::new();
        let size = WRITE_MAX.min(head.content_length).min(2 * self.stream.send_capacity()).max(1);
        if !crate::room_for(size) || piece.try_reserve_exact(size).is_err() {
            return Ok(respond_error(
                &mut self.out,
                Status::ServiceUnavailable,
                request.keep_alive,
                head_only,
            )?);
        }
        piece.resize(size, 0);
        head.try_write(&mut self.out)?;
        self.send_out().await?;
        let mut at = start;
        while at < end {
            let want = ((end - at) as usize).min(piece.len());
            let n = match self.site.fs.read_at(&found.path, at, &mut piece[..want]) {
                Ok(n) if n > 0 => n,
                // The response is under way: all we can do is cut it short.
                _ => return Err(Reset::Net(NetError::ConnectionReset)),
            };
            self.send(&piece[..n]).await?;
            at += n as u64;
        }
        Ok(())
    }
}

fn method_name(m: Method) -> &'static str {
    if m == Method::Head { "HEAD" } else { "GET" }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Appends an error response (`NNN Reason\n`); `head_only` for a HEAD
/// request.
fn respond_error(
    out: &mut Vec<u8>,
    status: Status,
    keep_alive: bool,
    head_only: bool,
) -> Result<(), OutOfMemory> {
    let (code, reason) = status.line();
    let digits =
        [b'0' + (code / 100) as u8, b'0' + (code / 10 % 10) as u8, b'0' + (code % 10) as u8];
    respond_text(out, status, &[&digits, b" ", reason.as_bytes(), b"\n"], keep_alive, head_only)
}

/// Appends the status page (`HTTPD_STATUS_PATH`): the heap's figures, one
/// `name: value` a line, as `libos::heap_stats` gives them.
fn respond_status(out: &mut Vec<u8>, keep_alive: bool, head_only: bool) -> Result<(), OutOfMemory> {
    use core::fmt::Write;
    let heap = libos::heap_stats();
    let mut body = heapless_line::Line::new();
    let _ = write!(
        body,
        "heap_size: {}\nheap_in_use: {}\nheap_allocations: {}\n",
        heap.size, heap.in_use, heap.allocations
    );
    respond_text(out, Status::Ok, &[body.as_bytes()], keep_alive, head_only)
}

/// Appends a `text/plain` response of `status` whose body is `parts`, one
/// after the other (the head alone for a HEAD request, `head_only`).
fn respond_text(
    out: &mut Vec<u8>,
    status: Status,
    parts: &[&[u8]],
    keep_alive: bool,
    head_only: bool,
) -> Result<(), OutOfMemory> {
    let body_len = parts.iter().map(|p| p.len()).sum();
    Head {
        status,
        content_type: "text/plain; charset=utf-8",
        content_length: body_len,
        keep_alive,
        date: now(),
        last_modified: None,
        content_range: None,
    }
    .try_write(out)?;
    if !head_only {
        out.try_reserve(body_len).map_err(|_| OutOfMemory)?;
        for part in parts {
            out.extend_from_slice(part);
        }
    }
    Ok(())
}

/// A short line of text on the stack: the status page's figures are read
/// before anything is allocated for them.
mod heapless_line {
    /// At most [`Line::CAP`] bytes; what does not fit is dropped.
    pub(crate) struct Line {
        buf: [u8; Line::CAP],
        len: usize,
    }

    impl Line {
        pub(crate) const CAP: usize = 128;

        pub(crate) fn new() -> Self {
            Self { buf: [0; Self::CAP], len: 0 }
        }

        pub(crate) fn as_bytes(&self) -> &[u8] {
            &self.buf[..self.len]
        }
    }

    impl core::fmt::Write for Line {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self.len + s.len();
            if end > Self::CAP {
                return Err(core::fmt::Error);
            }
            self.buf[self.len..end].copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }
}

/// What a read brought.
enum Read {
    Data(usize),
    /// The client closed its side.
    End,
    Error(NetError),
    Deadline,
    Evicted,
    /// Idle while the server stops.
    Drained,
}

/// Reads into `buf` until `deadline`; an `idle` read also ends when the
/// accept loop evicts the connection or the server stops. The deadline is
/// set on `timer` (made if there is none) only if the read has to wait.
async fn read_until(
    stream: &mut TcpStream,
    buf: &mut [u8],
    (timer, deadline): (&mut Option<Sleep>, Duration),
    idle: bool,
    slot: &Slot,
) -> Read {
    let mut read = pin!(stream.read(buf));
    let deadline = Instant::from_duration(deadline);
    let mut set = false;
    poll_fn(|cx| {
        // An evicted connection's room is already another's.
        if idle && slot.evict.get() {
            return Poll::Ready(Read::Evicted);
        }
        // What the client already sent comes before the server's stop: a
        // request that reached the socket before the signal is under way
        // and is answered, not cut because this task ran after the accept
        // loop in the same turn.
        match read.as_mut().poll(cx) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Read::End),
            Poll::Ready(Ok(n)) => return Poll::Ready(Read::Data(n)),
            Poll::Ready(Err(e)) => return Poll::Ready(Read::Error(e)),
            Poll::Pending => {}
        }
        if idle && slot.drain.get() {
            return Poll::Ready(Read::Drained);
        }
        let timer = match timer {
            Some(t) if !set => {
                t.reset(deadline);
                t
            }
            Some(t) => t,
            None => timer.insert(task::sleep_until(deadline)),
        };
        set = true;
        if Pin::new(timer).poll(cx).is_ready() {
            return Poll::Ready(Read::Deadline);
        }
        if idle {
            *slot.waker.borrow_mut() = Some(cx.waker().clone());
        }
        Poll::Pending
    })
    .await
}

/// A future's output within a time limit.
enum Timed<T> {
    /// It finished; whether it had to wait.
    Done(T, bool),
    Elapsed,
}

/// Runs `future` for at most `limit` from when it first has to wait: one
/// that is ready at once costs no timer (and no clock read).
async fn with_timeout<F: Future>(limit: Duration, future: F) -> Timed<F::Output> {
    let mut future = pin!(future);
    let mut timer: Option<Sleep> = None;
    poll_fn(|cx| {
        if let Poll::Ready(v) = future.as_mut().poll(cx) {
            return Poll::Ready(Timed::Done(v, timer.is_some()));
        }
        let timer = timer.get_or_insert_with(|| task::sleep(limit));
        if Pin::new(timer).poll(cx).is_ready() {
            return Poll::Ready(Timed::Elapsed);
        }
        Poll::Pending
    })
    .await
}
