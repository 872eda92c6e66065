//! Unmodified crates from crates.io in a std guest: serde's derive (a
//! proc-macro, run on the host at build time), serde_json and regex; and
//! crates that call further into the C library: rand (its thread RNG
//! seeds from `getrandom`, which the getrandom crate finds with `dlsym`),
//! time (the local offset, through `localtime_r`), nix (`uname`, the
//! resource limits, `EMFILE` under a lowered `RLIMIT_NOFILE`) and ctrlc (a
//! thread waiting on a POSIX semaphore).

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

libos_std::app!();

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Request {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
}

fn main() {
    let text = r#"{"method":"GET","path":"/index.html","headers":{"host":"example"}}"#;
    let req: Request = serde_json::from_str(text).expect("valid JSON");
    println!("parsed {} {} host={}", req.method, req.path, req.headers["host"]);
    let back = serde_json::to_string(&req).expect("serialisable");
    println!("round trip equal: {}", back == text);
    let re = Regex::new(r"(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})").expect("valid regex");
    let dates: Vec<String> = re
        .captures_iter("released 2026-12-04, patched 2027-01-15")
        .map(|c| format!("{}/{}/{}", &c["d"], &c["m"], &c["y"]))
        .collect();
    println!("dates: {}", dates.join(" "));
    let bad = serde_json::from_str::<Request>("{\"method\": 3}");
    println!("bad JSON: {}", bad.is_err());
    libc_crates();
}

fn libc_crates() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let draws: Vec<u64> = (0..4).map(|_| rand::random()).collect();
    println!(
        "rand: {} distinct draws",
        draws.iter().collect::<std::collections::HashSet<_>>().len()
    );
    let local = time::OffsetDateTime::now_local().map(|t| t.offset().is_utc());
    println!("time: local offset is UTC: {local:?}");
    let u = nix::sys::utsname::uname().expect("uname");
    println!("nix: {} {}", u.sysname().to_string_lossy(), u.machine().to_string_lossy());
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    println!("nix: open files {soft}/{hard}");
    setrlimit(Resource::RLIMIT_NOFILE, 8, hard).expect("lowering the soft limit");
    let mut open = Vec::new();
    let err = loop {
        match nix::unistd::pipe() {
            Ok(p) => open.push(p),
            Err(e) => break e,
        }
    };
    println!("nix: {} pipes under a limit of 8, then {err}", open.len());
    drop(open);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).expect("raising it back");
    println!(
        "nix: raising the hard limit: {:?}",
        setrlimit(Resource::RLIMIT_NOFILE, soft, hard + 1)
    );
    println!("ctrlc: {:?}", ctrlc::set_handler(|| println!("never")));
}
