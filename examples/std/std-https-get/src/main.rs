//! An HTTPS client as one writes it for Linux: ureq over rustls (on ring),
//! or with `--hyper` hyper 1's client (hyper-util's legacy client) over
//! hyper-rustls on a tokio runtime, trusting only the certificate
//! authorities of a PEM file, GETs each URL on one agent or client (a
//! kept-alive connection where the server allows it) and prints, per URL,
//! the status, the media type, the length and the SHA-256 of the body, or
//! the error. As a nabla guest the PEM file is on the FAT disk (the block
//! device `storage`).
//!
//! ```text
//! std-https-get [--hyper] CA_PEM URL...
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
    Ok(summary(status.as_u16(), &media, &body))
}

/// One line of what came back: status, media type, length, SHA-256.
fn summary(status: u16, media: &str, body: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    format!("{status} {media}, {} bytes, sha256 {}", body.len(), hex(digest.as_ref()))
}

/// The GETs with hyper's client over hyper-rustls; whether one failed.
mod with_hyper {
    use std::io::Write;
    use std::sync::Arc;

    use http_body_util::{BodyExt, Empty, Limited};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use rustls::pki_types::CertificateDer;

    type Error = Box<dyn std::error::Error + Send + Sync>;

    /// `e` and its sources, as `a: b: c` (hyper's errors say little alone).
    fn chain(e: &(dyn std::error::Error + 'static)) -> String {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text += &format!(": {s}");
            source = s.source();
        }
        text
    }

    pub fn run(certs: &[ureq::tls::Certificate<'static>], urls: &[String]) -> bool {
        let mut roots = rustls::RootCertStore::empty();
        for c in certs {
            roots.add(CertificateDer::from(c.der().to_vec())).expect("a CA certificate");
        }
        // ring's provider (rustls 0.23.48 deprecates it for its lack of
        // post-quantum key exchange only).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .build();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        runtime.block_on(async {
            let client = Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(https);
            let get = async |url: &str| -> Result<String, Error> {
                let response = client.get(url.parse()?).await?;
                let status = response.status().as_u16();
                let media = response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_string();
                let limited = Limited::new(response.into_body(), super::BODY_LIMIT as usize);
                let body = limited.collect().await?.to_bytes();
                Ok(super::summary(status, &media, &body))
            };
            let mut failed = false;
            let mut out = std::io::stdout().lock();
            for url in urls {
                match get(url).await {
                    Ok(line) => writeln!(out, "GET {url}: {line}").unwrap(),
                    Err(e) => {
                        failed = true;
                        writeln!(out, "GET {url}: error: {}", chain(e.as_ref())).unwrap();
                    }
                }
            }
            out.flush().unwrap();
            failed
        })
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let hyper = args.first().is_some_and(|a| a == "--hyper");
    if hyper {
        args.remove(0);
    }
    let [ca, urls @ ..] = args.as_slice() else {
        eprintln!("usage: std-https-get [--hyper] CA_PEM URL...");
        std::process::exit(2);
    };
    let certs = roots(ca).unwrap_or_else(|e| {
        eprintln!("std-https-get: {e}");
        std::process::exit(2);
    });
    if hyper {
        std::process::exit(i32::from(with_hyper::run(&certs, urls)));
    }
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
