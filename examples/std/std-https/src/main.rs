//! An HTTPS server as one writes it for Linux: axum's router served by
//! hyper over tokio-rustls (rustls with its `ring` provider), TLS 1.2 and
//! 1.3, static files from a directory and a JSON route. As a nabla guest
//! the directory, the certificate and the key are on the FAT disk (`/`,
//! the block device `storage`).
//!
//! ```text
//! std-https PORT CERT KEY [ROOT]        (ROOT is / by default)
//! tender --net service0=tap0 --env NET_SERVICE0_IPV4=10.0.0.2/24 \
//!     --block-ro storage=site.img target/release/std-https 443 /cert.pem /key.pem
//! ```
//!
//! CERT is a PEM file of the certificate chain (the server's first), KEY a
//! PEM private key (PKCS#8, PKCS#1 or SEC1).
//!
//! * `GET /json`: `{"server":"std-https","requests":N,"handshakes":H,
//!   "failed_handshakes":F,...}`, N counting the JSON requests served so far,
//!   H the TLS handshakes completed, F those that failed or timed out;
//! * `GET /PATH`: the file `ROOT/PATH` (`/` is `index.html`), read with
//!   `tokio::fs`; 404 if there is none (or the path leaves `ROOT`);
//! * anything else: 404, or 405 for another method on these routes.
//!
//! A client has 10 seconds to complete its handshake; one that sends
//! something else than TLS, or vanishes, costs only its own connection.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use tokio_rustls::TlsAcceptor;

#[cfg(feature = "nabla")]
libos_std::app!(devices: ["service0": Net, "storage": Block]);

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may take to send a request's head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// What the handlers and the connections share.
struct Site {
    root: PathBuf,
    json_requests: AtomicU64,
    handshakes: AtomicU64,
    failed_handshakes: AtomicU64,
}

/// The body of `GET /json`.
#[derive(Serialize)]
struct Status<'a> {
    server: &'a str,
    version: &'a str,
    requests: u64,
    handshakes: u64,
    failed_handshakes: u64,
    root: String,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The server's TLS configuration: the chain in `cert`, the key in `key`.
fn tls_config(cert: &str, key: &str) -> Result<rustls::ServerConfig, Error> {
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{cert}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{cert}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{cert}: no certificate").into());
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{key}: {e}"))?;
    // ring, not aws-lc-rs (rustls's default, a large C build with cmake);
    // rustls 0.23.48 deprecates ring's provider only for its lack of
    // post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [port, cert, key, rest @ ..] = args.as_slice() else {
        return Err("usage: std-https PORT CERT KEY [ROOT]".into());
    };
    let port: u16 = port.parse().map_err(|e| format!("port {port:?}: {e}"))?;
    let root = PathBuf::from(rest.first().map_or("/", String::as_str));
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(cert, key)?));
    let site = Arc::new(Site {
        root,
        json_requests: AtomicU64::new(0),
        handshakes: AtomicU64::new(0),
        failed_handshakes: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/json", get(status))
        .route("/", get(index))
        .route("/{*path}", get(file))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(site.clone());
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))).await?;
    println!("std-https: listening on {}", listener.local_addr()?);
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of descriptors or memory: wait for connections to
                // end rather than spin.
                eprintln!("std-https: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, app, site) = (acceptor.clone(), app.clone(), site.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                // Not TLS, a handshake that failed, or a client gone.
                Ok(Err(_)) | Err(_) => {
                    site.failed_handshakes.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            site.handshakes.fetch_add(1, Ordering::Relaxed);
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                .await;
        });
    }
}

async fn status(State(site): State<Arc<Site>>) -> Json<Status<'static>> {
    let requests = site.json_requests.fetch_add(1, Ordering::Relaxed) + 1;
    Json(Status {
        server: "std-https",
        version: env!("CARGO_PKG_VERSION"),
        requests,
        handshakes: site.handshakes.load(Ordering::Relaxed),
        failed_handshakes: site.failed_handshakes.load(Ordering::Relaxed),
        root: site.root.display().to_string(),
    })
}

async fn index(state: State<Arc<Site>>) -> Response {
    file(state, UrlPath("index.html".into())).await
}

async fn file(State(site): State<Arc<Site>>, UrlPath(path): UrlPath<String>) -> Response {
    // Only plain names below the root: no `..`, no absolute path.
    let rel = Path::new(&path);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match tokio::fs::read(site.root.join(rel)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type(rel))], bytes).into_response(),
        Err(e)
            if matches!(
                e.kind(),
                // Missing, a directory, or a name FAT cannot hold.
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::IsADirectory
                    | std::io::ErrorKind::InvalidInput
            ) =>
        {
            StatusCode::NOT_FOUND.into_response()
        }
        Err(e) => {
            eprintln!("std-https: {path}: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The media type of a file, by its extension.
fn content_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt") => "text/plain; charset=utf-8",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}
