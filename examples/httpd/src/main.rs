//! httpd: an HTTP/1.1 static file server as a unikernel, serving the FAT
//! disk attached as `storage`.
//!
//! ```text
//! nabla disk create site.img --from examples/httpd/site
//! tender --net service0=tap0 --env NET_SERVICE0_IPV4=10.0.0.2/24 \
//!        --block storage=site.img target/release/httpd
//! curl http://10.0.0.2/
//! ```
//!
//! Port 80, or `$PORT`. GET and HEAD, keep-alive and pipelining, an index
//! file (`index.html`) for directories, `Content-Type` by extension, single
//! byte ranges (206/416), `Last-Modified` and `If-Modified-Since` (304) from
//! the files' FAT times; 400, 404, 405, 413 as HTTP says. Every connection is
//! a task of its own, and a connection idle for `IDLE_TIMEOUT` is closed, so
//! no client can stop the others. Files up to 4 MiB are cached in memory
//! after their first request (32 MiB in all): the disk is the guest's while
//! it runs.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::time::Duration;

use http::{Head, Method, Parsed, RangeAnswer, Status};
use libos::fs::{self, FileSystem, FsError};
use libos::net::{NetError, TcpListener, TcpOptions, TcpStream};
use libos::time::{SystemTime, UNIX_EPOCH};
use libos::{env, log, println, task};

libos::app!(async main, devices: ["service0": Net, "storage": Block]);

/// A connection with no complete request for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Files up to this size (an eighth of the cache) are kept in memory once
/// read: read from the disk, a file costs two more copies of its bytes in
/// the guest and one in the host per request.
const CACHE_FILE_MAX: u64 = 4 * 1024 * 1024;
/// Total bytes the cache may hold.
const CACHE_TOTAL_MAX: usize = 32 * 1024 * 1024;
/// Larger bodies go out in chunks of this size.
const CHUNK: usize = 64 * 1024;

/// The site: the file system and a cache of small files.
struct Site {
    fs: FileSystem,
    cache: RefCell<BTreeMap<String, Rc<[u8]>>>,
    cached: RefCell<usize>,
}

/// A file to send.
struct Found {
    path: String,
    len: u64,
    modified: u64,
}

async fn main() -> Result<(), NetError> {
    let port = match env::var("PORT").map(str::parse::<u16>) {
        None => 80,
        Some(Ok(p)) if p != 0 => p,
        Some(_) => {
            println!("httpd: PORT must be a port number, 1-65535");
            return Err(NetError::InvalidAddress);
        }
    };
    // The tender refuses to start without the declared disk.
    let Some(disk) = libos::block::device("storage") else {
        println!("httpd: no disk attached as storage");
        libos::process::exit(1);
    };
    let fs = match fs::mount(disk) {
        Ok(fs) => fs,
        Err(e) => {
            println!("httpd: storage: {e}");
            libos::process::exit(1);
        }
    };
    let files = count_files(&fs, "/");
    let site = Rc::new(Site { fs, cache: RefCell::new(BTreeMap::new()), cached: RefCell::new(0) });
    let opts = TcpOptions { backlog: 64, nodelay: true, ..TcpOptions::default() };
    let listener = TcpListener::bind_with(port, opts)?;
    libos::net::wait_configured().await;
    for i in libos::net::interfaces() {
        if let Some((addr, prefix)) = i.ipv4 {
            println!("httpd: serving {files} files on http://{addr}:{port}/ ({}/{prefix})", i.name);
        }
    }
    loop {
        let (stream, peer) = listener.accept().await?;
        let site = site.clone();
        task::spawn(async move {
            if let Err(e) = serve(&site, stream).await {
                log::debug!("{peer}: {e}");
            }
        });
    }
}

/// Number of files in the tree under `dir`.
fn count_files(fs: &FileSystem, dir: &str) -> usize {
    let Ok(entries) = fs.read_dir(dir) else { return 0 };
    entries
        .iter()
        .map(|e| {
            if e.metadata.is_dir {
                count_files(fs, &alloc::format!("{}/{}", dir.trim_end_matches('/'), e.name))
            } else {
                1
            }
        })
        .sum()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

impl Site {
    /// The file `path` names: itself, or a directory's index file.
    fn find(&self, path: &str) -> Result<Found, FsError> {
        let meta = self.fs.metadata(path)?;
        if !meta.is_dir {
            return Ok(Found { path: path.into(), len: meta.len, modified: meta.modified });
        }
        let index = alloc::format!("{}/index.html", path.trim_end_matches('/'));
        let meta = self.fs.metadata(&index)?;
        if meta.is_dir {
            return Err(FsError::NotFound);
        }
        Ok(Found { path: index, len: meta.len, modified: meta.modified })
    }

    /// The whole contents of a small file, from the cache or the disk.
    fn small_file(&self, f: &Found) -> Result<Rc<[u8]>, FsError> {
        if let Some(b) = self.cache.borrow().get(&f.path) {
            return Ok(b.clone());
        }
        let bytes: Rc<[u8]> = self.fs.read(&f.path)?.into();
        let mut cached = self.cached.borrow_mut();
        if *cached + bytes.len() <= CACHE_TOTAL_MAX {
            *cached += bytes.len();
            self.cache.borrow_mut().insert(f.path.clone(), bytes.clone());
        }
        Ok(bytes)
    }
}

/// Serves one connection until it closes, errs, or idles out.
async fn serve(site: &Site, mut stream: TcpStream) -> Result<(), NetError> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        // Answer every complete request already received (pipelining),
        // batching small responses into one write.
        let close = loop {
            match http::parse(&buf) {
                Parsed::Partial => break false,
                Parsed::Error(status) => {
                    respond_error(&mut out, status, false, false);
                    break true;
                }
                Parsed::Request { request, len } => {
                    let body_end = len.saturating_add(request.body_len);
                    if body_end > buf.len() {
                        // Wait for the (ignored) body to arrive in full.
                        break false;
                    }
                    buf.drain(..body_end);
                    respond(site, &mut stream, &mut out, &request).await?;
                    if !request.keep_alive {
                        break true;
                    }
                }
            }
        };
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if close {
            stream.shutdown();
            return Ok(());
        }
        let n = match task::timeout(IDLE_TIMEOUT, stream.read(&mut chunk)).await {
            Ok(r) => r?,
            Err(_) => {
                stream.shutdown();
                return Ok(());
            }
        };
        if n == 0 {
            stream.shutdown();
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn method_name(m: Method) -> &'static str {
    if m == Method::Head { "HEAD" } else { "GET" }
}

/// Appends the response to `request` to `out`, or, for a large body,
/// writes what is pending and then the body: from the cache, or in chunks
/// read from the disk.
async fn respond(
    site: &Site,
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    request: &http::Request,
) -> Result<(), NetError> {
    let found = match site.find(&request.path) {
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
            respond_error(out, status, request.keep_alive, request.method == Method::Head);
            return Ok(());
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
        head.write(out);
        return Ok(());
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
            head.write(out);
            return Ok(());
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
    if found.len <= CACHE_FILE_MAX {
        let body = match site.small_file(&found) {
            Ok(b) => b,
            Err(e) => {
                log::warn!("{}: {e}", found.path);
                respond_error(out, Status::InternalError, false, false);
                return Ok(());
            }
        };
        head.write(out);
        if request.method == Method::Get {
            let body = &body[start as usize..end as usize];
            if body.len() < CHUNK {
                // Batched with the other responses to pipelined requests.
                out.extend_from_slice(body);
            } else {
                // Straight from the cache, not through `out`.
                stream.write_all(out).await?;
                out.clear();
                stream.write_all(body).await?;
            }
        }
        return Ok(());
    }
    head.write(out);
    if request.method == Method::Head {
        return Ok(());
    }
    stream.write_all(out).await?;
    out.clear();
    let mut chunk = vec![0u8; CHUNK];
    let mut at = start;
    while at < end {
        let want = ((end - at) as usize).min(CHUNK);
        let n = match site.fs.read_at(&found.path, at, &mut chunk[..want]) {
            Ok(n) if n > 0 => n,
            // The response is under way: all we can do is cut it short.
            _ => return Err(NetError::ConnectionReset),
        };
        stream.write_all(&chunk[..n]).await?;
        at += n as u64;
    }
    Ok(())
}

/// Appends an error response; `head_only` for a HEAD request.
fn respond_error(out: &mut Vec<u8>, status: Status, keep_alive: bool, head_only: bool) {
    let (code, reason) = status.line();
    let body = alloc::format!("{code} {reason}\n");
    Head {
        status,
        content_type: "text/plain; charset=utf-8",
        content_length: body.len(),
        keep_alive,
        date: now(),
        last_modified: None,
        content_range: None,
    }
    .write(out);
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
}
