//! Unmodified crates from crates.io in a std guest: serde's derive (a
//! proc-macro, run on the host at build time), serde_json and regex.

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
}
