//! kvd's persistence under the tender, with `appendfsync always`: rounds of
//! many clients writing while the tender is killed with SIGKILL at a random
//! moment, restarted, and checked (every acknowledged write is there, no
//! value appears that was never sent); and logs damaged by hand between
//! runs (a torn last record, a flipped byte in the middle), which must
//! start and say what they cut.
//!
//! Each test runs as root in a network namespace of its own with its tap
//! (10.0.0.1 on the host side, kvd at 10.0.0.2:6379) and its disk file in
//! a temporary directory. The random moments come from a fixed seed
//! (`KVD_CRASH_SEED` to try another; `KVD_CRASH_ROUNDS` for more rounds).

mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use support::netns::{Netns, require_root};
use support::{KillOnDrop, TempDir, tender, workspace_bin};

/// Where kvd listens.
const KVD: &str = "10.0.0.2:6379";
/// What kvd prints when it serves.
const READY: &str = "kvd: ready";
/// How the report of the log begins on kvd's console.
const REPORT: &str = "aof: ";
const MIB: u64 = 1 << 20;

/// SplitMix64, for reproducible random moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn namespace(tag: &str) -> Netns {
    require_root();
    let ns = Netns::new(tag);
    ns.add_tap("tap0", Some("10.0.0.1/24"), None);
    ns
}

/// A zero (sparse) disk file of `size` bytes.
fn disk(dir: &TempDir, size: u64) -> PathBuf {
    let path = dir.path().join("kvd.img");
    File::create(&path).unwrap().set_len(size).unwrap();
    path
}

/// kvd running under the tender, its console collected.
struct Kvd {
    child: KillOnDrop,
    lines: Arc<Mutex<Vec<String>>>,
    /// The threads collecting stdout and stderr: each ends at its pipe's
    /// end of file, once the tender (their only writer) is gone.
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Kvd {
    /// Starts kvd on `disk` with `appendfsync always`, without waiting.
    fn spawn(ns: &Netns, disk: &Path) -> Self {
        let kvd = workspace_bin("kvd");
        let mut child = ns
            .command(tender())
            .arg("--block")
            .arg(format!("storage={}", disk.display()))
            .args(["--net", "service0=tap0", "--net-mac", "service0=02:00:00:00:00:02"])
            .args(["--env", "NET_SERVICE0_IPV4=10.0.0.2/24"])
            .args(["--env", "KVD_APPENDFSYNC=always"])
            .arg(kvd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the tender");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
            }));
        }
        Self { child: KillOnDrop(child), lines, readers }
    }

    /// Starts kvd and waits until it serves; returns it and its report line.
    fn start(ns: &Netns, disk: &Path) -> (Self, String) {
        let mut kvd = Self::spawn(ns, disk);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let lines = kvd.lines();
            if lines.iter().any(|l| l.contains(READY)) {
                let report = lines.iter().find(|l| l.contains(REPORT)).cloned();
                let report = report.unwrap_or_else(|| panic!("no report line: {lines:#?}"));
                return (kvd, report);
            }
            let exited = kvd.exited();
            assert!(exited.is_none() && Instant::now() < deadline, "kvd: {exited:?}: {lines:#?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.0.try_wait().ok().flatten()
    }

    /// Waits (at most 20 s) for kvd to exit by itself; returns its status
    /// and everything it printed. The lines are read to the pipes' end,
    /// not at some moment after the exit: under load the collecting
    /// threads may still be behind when the process is reaped.
    fn wait_exit(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.exited() {
                break status;
            }
            assert!(Instant::now() < deadline, "kvd did not exit: {:#?}", self.lines());
            std::thread::sleep(Duration::from_millis(10));
        };
        for reader in std::mem::take(&mut self.readers) {
            reader.join().unwrap();
        }
        (status, self.lines())
    }

    /// SIGKILL, and wait for the process to be gone.
    fn kill(mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
    }
}

// --- A small RESP client -----------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    /// Connects to kvd, retrying for a few seconds (it may still be booting).
    fn connect() -> std::io::Result<Self> {
        let addr: SocketAddr = KVD.parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(s) => {
                    s.set_nodelay(true)?;
                    s.set_read_timeout(Some(Duration::from_secs(10)))?;
                    return Ok(Self { r: BufReader::new(s.try_clone()?), w: s });
                }
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn encode(argv: &[&[u8]], out: &mut Vec<u8>) {
        out.extend_from_slice(format!("*{}\r\n", argv.len()).as_bytes());
        for a in argv {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
    }

    fn send(&mut self, argv: &[&[u8]]) -> std::io::Result<()> {
        let mut out = Vec::new();
        Self::encode(argv, &mut out);
        self.w.write_all(&out)
    }

    fn line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(line.trim_end_matches("\r\n").to_string())
    }

    fn reply(&mut self) -> std::io::Result<Reply> {
        let line = self.line()?;
        let bad = || std::io::Error::other(format!("bad reply line {line:?}"));
        let (kind, rest) = line.split_at_checked(1).ok_or_else(bad)?;
        let n = || rest.parse::<i64>().map_err(|_| bad());
        Ok(match kind {
            "+" => Reply::Simple(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(n()?),
            "$" if n()? < 0 => Reply::Bulk(None),
            "$" => {
                let mut buf = vec![0; n()? as usize + 2];
                self.r.read_exact(&mut buf)?;
                buf.truncate(buf.len() - 2);
                Reply::Bulk(Some(buf))
            }
            "*" if n()? < 0 => Reply::Array(None),
            "*" => Reply::Array(Some((0..n()?).map(|_| self.reply()).collect::<Result<_, _>>()?)),
            _ => return Err(bad()),
        })
    }

    fn call(&mut self, argv: &[&[u8]]) -> std::io::Result<Reply> {
        self.send(argv)?;
        self.reply()
    }

    /// GET of every key, pipelined.
    fn get_all(&mut self, keys: &[String]) -> std::io::Result<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::new();
        for k in keys {
            Self::encode(&[b"GET", k.as_bytes()], &mut out);
        }
        self.w.write_all(&out)?;
        keys.iter()
            .map(|k| match self.reply()? {
                Reply::Bulk(v) => Ok(v),
                other => Err(std::io::Error::other(format!("GET {k}: {other:?}"))),
            })
            .collect()
    }
}

/// Reads every key in `keys` and the number of keys in kvd, from `ns`.
fn read_back(ns: &Netns, keys: Vec<String>) -> (Vec<Option<Vec<u8>>>, i64) {
    ns.enter(move || {
        let mut c = Client::connect().expect("connect to kvd");
        let values = c.get_all(&keys).expect("GET every key");
        let Reply::Int(n) = c.call(&[b"DBSIZE"]).expect("DBSIZE") else { panic!("DBSIZE") };
        (values, n)
    })
}

// --- Crash rounds ----------------------------------------------------------------

/// Clients writing at once, each to keys of its own.
const CLIENTS: usize = 8;
/// Keys per client: the dataset stays small while the log grows, so that
/// the log is compacted now and then on the 2 MiB disk.
const KEYS_PER_CLIENT: usize = 16;

/// What the test knows about one key.
#[derive(Debug, Default, Clone)]
struct KeyState {
    /// The value read back after the last restart (durable since).
    known: Option<Vec<u8>>,
    /// SETs since, in order (one client per key), and whether each got `+OK`.
    writes: Vec<(Vec<u8>, bool)>,
}

impl KeyState {
    /// Checks the value read back after a crash: at least the last
    /// acknowledged write, or a later one sent; with none acknowledged,
    /// the known value or any sent one. Never anything else.
    fn check(&self, key: &str, got: &Option<Vec<u8>>) -> Result<(), String> {
        let acked = self.writes.iter().rposition(|(_, ok)| *ok);
        let allowed: Vec<Option<&Vec<u8>>> = match acked {
            Some(a) => self.writes[a..].iter().map(|(v, _)| Some(v)).collect(),
            None => std::iter::once(self.known.as_ref())
                .chain(self.writes.iter().map(|(v, _)| Some(v)))
                .collect(),
        };
        if allowed.contains(&got.as_ref()) {
            return Ok(());
        }
        let show = |v: Option<&Vec<u8>>| v.map(|v| String::from_utf8_lossy(v).into_owned());
        Err(format!(
            "{key}: read back {:?}; the last acknowledged write was {:?}, writes since the \
             last check: {}",
            show(got.as_ref()),
            acked.map(|a| show(Some(&self.writes[a].0))),
            self.writes.len()
        ))
    }
}

fn key(client: usize, i: usize) -> String {
    format!("c{client}:k{}", i % KEYS_PER_CLIENT)
}

/// One client: SETs until its connection breaks or `stop`; records each
/// value before sending it and whether `+OK` came back.
fn writer(
    client: usize,
    round: u64,
    seed: u64,
    stop: Arc<AtomicBool>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
) -> Vec<(String, Vec<u8>, bool)> {
    let mut log = Vec::new();
    let Ok(mut c) = Client::connect() else { return log };
    sockets.lock().unwrap().push(c.w.try_clone().unwrap());
    let mut rng = Rng(seed);
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let k = key(client, rng.below(KEYS_PER_CLIENT as u64) as usize);
        let pad = "x".repeat(rng.below(200) as usize);
        let v = format!("r{round}-c{client}-{i}-{pad}").into_bytes();
        i += 1;
        log.push((k.clone(), v.clone(), false));
        match c.call(&[b"SET", k.as_bytes(), &v]) {
            Ok(Reply::Simple(s)) if s == "OK" => log.last_mut().unwrap().2 = true,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    log
}

#[test]
fn killed_at_random_moments_kvd_keeps_every_acknowledged_write() {
    let ns = namespace("kvd-crash");
    let dir = TempDir::new("kvd-crash");
    let disk = disk(&dir, 2 * MIB);
    let seed = env_u64("KVD_CRASH_SEED", 0x6b76_6421);
    let rounds = env_u64("KVD_CRASH_ROUNDS", 50);
    let mut rng = Rng(seed);
    let keys: Vec<String> =
        (0..CLIENTS).flat_map(|c| (0..KEYS_PER_CLIENT).map(move |i| key(c, i))).collect();
    let mut state: BTreeMap<String, KeyState> =
        keys.iter().map(|k| (k.clone(), KeyState::default())).collect();
    let (mut acked, mut sent, mut generations) = (0usize, 0usize, Vec::new());
    for round in 0..=rounds {
        // Now and then, a kill while kvd boots and replays.
        if round % 8 == 3 {
            let early = Kvd::spawn(&ns, &disk);
            std::thread::sleep(Duration::from_millis(rng.below(40)));
            early.kill();
        }
        let (kvd, report) = Kvd::start(&ns, &disk);
        let generation = report.split("generation ").nth(1).and_then(|s| {
            s.split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse::<u64>().ok())
        });
        generations.extend(generation);
        // Everything acknowledged before the kill is there; nothing else is.
        let (values, dbsize) = read_back(&ns, keys.clone());
        let mut failures = Vec::new();
        for (k, got) in keys.iter().zip(&values) {
            let st = state.get_mut(k).unwrap();
            if let Err(e) = st.check(k, got) {
                failures.push(e);
            }
            *st = KeyState { known: got.clone(), writes: Vec::new() };
        }
        let present = values.iter().filter(|v| v.is_some()).count() as i64;
        assert!(
            failures.is_empty(),
            "round {round} (seed {seed:#x}): {failures:#?}\nreport: {report}"
        );
        assert_eq!(dbsize, present, "round {round}: keys that were never written");
        if round == rounds {
            kvd.kill();
            break;
        }
        // Many clients write; the tender is killed at a random moment.
        let stop = Arc::new(AtomicBool::new(false));
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        for client in 0..CLIENTS {
            let (stop, sockets, tx) = (stop.clone(), sockets.clone(), tx.clone());
            let file = File::open(format!("/run/netns/{}", ns.name())).unwrap();
            let seed = rng.next();
            std::thread::spawn(move || {
                // SAFETY: setns on this thread only, with a valid namespace fd.
                #[allow(unsafe_code)]
                let ret = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(ret, 0, "setns: {}", std::io::Error::last_os_error());
                let _ = tx.send(writer(client, round, seed, stop, sockets));
            });
        }
        drop(tx);
        std::thread::sleep(Duration::from_millis(20 + rng.below(300)));
        kvd.kill();
        stop.store(true, Ordering::Relaxed);
        for s in sockets.lock().unwrap().iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        for log in rx.iter().take(CLIENTS) {
            for (k, v, ok) in log {
                acked += usize::from(ok);
                sent += 1;
                state.get_mut(&k).unwrap().writes.push((v, ok));
            }
        }
    }
    eprintln!(
        "{rounds} kills; {acked} of {sent} writes acknowledged; generations seen: {generations:?}"
    );
    assert!(acked > rounds as usize * 10, "too few writes to mean much: {acked}");
}

// --- Logs damaged by hand ------------------------------------------------------------

/// Starts kvd on a fresh disk, SETs `key{i}` = `value{i}` for `n` keys, one
/// at a time (one record each), and kills it.
fn write_keys(ns: &Netns, disk: &Path, n: usize) {
    let (kvd, report) = Kvd::start(ns, disk);
    assert!(report.contains("initialised"), "{report}");
    ns.enter(move || {
        let mut c = Client::connect().unwrap();
        for i in 0..n {
            let reply = c.call(&[b"SET", format!("key{i}").as_bytes(), &value(i)]).unwrap();
            assert_eq!(reply, Reply::Simple("OK".into()));
        }
    });
    kvd.kill();
}

fn value(i: usize) -> Vec<u8> {
    format!("value-{i:03}-{}", "v".repeat(40)).into_bytes()
}

fn find(image: &[u8], needle: &[u8]) -> usize {
    image.windows(needle.len()).position(|w| w == needle).expect("value on the disk")
}

/// Checks that `key{i}` holds its value for `i` in `present` and is absent
/// for `i` in `absent`.
fn check_keys(ns: &Netns, present: std::ops::Range<usize>, absent: std::ops::Range<usize>) {
    let keys: Vec<String> =
        present.clone().chain(absent.clone()).map(|i| format!("key{i}")).collect();
    let (values, dbsize) = read_back(ns, keys);
    for (i, v) in present.clone().chain(absent.clone()).zip(values) {
        let want = present.contains(&i).then(|| value(i));
        assert_eq!(v, want, "key{i}");
    }
    assert_eq!(dbsize, present.len() as i64);
}

#[test]
fn a_torn_last_record_is_cut_and_reported() {
    let ns = namespace("kvd-torn");
    let dir = TempDir::new("kvd-torn");
    let disk = disk(&dir, MIB);
    write_keys(&ns, &disk, 20);
    // Tear the last record: its sector was only partly written (the end
    // of the value and the padding after it are old zeros).
    let mut image = std::fs::read(&disk).unwrap();
    let at = find(&image, &value(19)) + 12;
    let end = (at / 512 + 1) * 512;
    image[at..end].fill(0);
    std::fs::write(&disk, &image).unwrap();

    let (kvd, report) = Kvd::start(&ns, &disk);
    assert!(report.contains("replayed 19 commands"), "{report}");
    assert!(report.contains("checksum mismatch (torn tail)"), "{report}");
    assert!(report.contains(&format!("cut 512 bytes at offset {}", end - 512)), "{report}");
    check_keys(&ns, 0..19, 19..20);
    // The cut is final: kvd goes on writing, and the next start is clean.
    ns.enter(|| {
        let mut c = Client::connect().unwrap();
        let reply = c.call(&[b"SET", b"key19", &value(19)]).unwrap();
        assert_eq!(reply, Reply::Simple("OK".into()));
    });
    kvd.kill();
    let (kvd, report) = Kvd::start(&ns, &disk);
    assert!(report.contains("replayed 20 commands") && !report.contains("cut"), "{report}");
    check_keys(&ns, 0..20, 0..0);
    kvd.kill();
}

#[test]
fn a_flipped_byte_in_the_middle_cuts_the_log_there_and_says_so() {
    let ns = namespace("kvd-flip");
    let dir = TempDir::new("kvd-flip");
    let disk = disk(&dir, MIB);
    write_keys(&ns, &disk, 20);
    let mut image = std::fs::read(&disk).unwrap();
    let at = find(&image, &value(10)) + 20;
    image[at] ^= 0x04;
    std::fs::write(&disk, &image).unwrap();

    let (kvd, report) = Kvd::start(&ns, &disk);
    assert!(report.contains("replayed 10 commands"), "{report}");
    assert!(
        report.contains("checksum mismatch, dropping 9 later records (9 commands)"),
        "{report}"
    );
    assert!(report.contains(&format!("at offset {}", at / 512 * 512)), "{report}");
    check_keys(&ns, 0..10, 10..20);
    kvd.kill();
}

#[test]
fn a_disk_with_foreign_data_is_refused_untouched() {
    let ns = namespace("kvd-foreign");
    let dir = TempDir::new("kvd-foreign");
    let disk = disk(&dir, MIB);
    let mut image = vec![0u8; MIB as usize];
    image[1024..1024 + 11].copy_from_slice(b"not kvd's!\n");
    std::fs::write(&disk, &image).unwrap();
    let (status, lines) = Kvd::spawn(&ns, &disk).wait_exit();
    assert!(!status.success(), "{status:?}: {lines:#?}");
    assert!(lines.iter().any(|l| l.contains("refusing to overwrite")), "{lines:#?}");
    assert_eq!(std::fs::read(&disk).unwrap(), image);
}
