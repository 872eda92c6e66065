//! An HTTPS client as one writes it for Linux: ureq over rustls (on ring),
//! trusting only the certificate authorities of a PEM file, GETs each URL
//! on one agent (a kept-alive connection where the server allows it) and
//! prints, per URL, the status, the media type, the length and the SHA-256
//! of the body, or the error. As a nabla guest the PEM file is on the FAT
//! disk (the block device `storage`).
//!
//! ```text
//! std-https-get CA_PEM URL...
//! tender --net service0=tap0 --env NET_SERVICE0_IPV4=10.0.0.2/24 \
//!     --block-ro storage=ca.img target/release/std-https-get /ca.pem https://10.0.0.1:4433/a.txt
//! ```
//!
//! The exit status is 0 if every GET got a response (any status), else 1.

use std::io::Write;
use std::time::Duration;

use ureq::Agent;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};

#[cfg(feature = "nabla")]
libos_std::app!(devices: ["service0": Net, "storage": Block]);

/// The largest body read.
const BODY_LIMIT: u64 = 64 << 20;

/// The certificates of the PEM file `path`.
fn roots(path: &str) -> Result<Vec<Certificate<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let PemItem::Certificate(c) = item.map_err(|e| format!("{path}: {e}"))? {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        return Err(format!("{path}: no certificate"));
    }
    Ok(certs)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// GETs `url`; one line of what came back.
fn get(agent: &Agent, url: &str) -> Result<String, ureq::Error> {
    let mut response = agent.get(url).call()?;
    let status = response.status();
    let media = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let body = response.body_mut().with_config().limit(BODY_LIMIT).read_to_vec()?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &body);
    Ok(format!(
        "{} {media}, {} bytes, sha256 {}",
        status.as_u16(),
        body.len(),
        hex(digest.as_ref())
    ))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ca, urls @ ..] = args.as_slice() else {
        eprintln!("usage: std-https-get CA_PEM URL...");
        std::process::exit(2);
    };
    let certs = roots(ca).unwrap_or_else(|e| {
        eprintln!("std-https-get: {e}");
        std::process::exit(2);
    });
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::new_with_certs(&certs))
        .build();
    let agent: Agent = Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for url in urls {
        match get(&agent, url) {
            Ok(line) => writeln!(out, "GET {url}: {line}").unwrap(),
            Err(e) => {
                failed = true;
                writeln!(out, "GET {url}: error: {e}").unwrap();
            }
        }
    }
    out.flush().unwrap();
    std::process::exit(i32::from(failed));
}
