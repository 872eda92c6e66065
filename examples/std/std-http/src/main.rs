//! An HTTP server on axum (hyper 1.x) and tokio, as one writes it for
//! Linux: static files from a directory and a JSON route. As a nabla guest
//! the directory is the FAT disk (`/`, the block device `storage`).
//!
//! ```text
//! std-http [PORT [ROOT]]         (80 and / by default)
//! tender --net service0=tap0 --env NET_SERVICE0_IPV4=10.0.0.2/24 \
//!     --block-ro storage=site.img target/release/std-http
//! ```
//!
//! * `GET /json`: `{"server":"std-http","requests":N,...}`, N counting the
//!   JSON requests served so far;
//! * `GET /PATH`: the file `ROOT/PATH` (`/` is `index.html`), read with
//!   `tokio::fs`; 404 if there is none (or the path leaves `ROOT`);
//! * anything else: 404, or 405 for another method on these routes.
//!
//! tokio's runtime is the default of `#[tokio::main]`: multi-threaded, one
//! worker per CPU, or `TOKIO_WORKER_THREADS` (a guest has one CPU).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde::Serialize;

#[cfg(feature = "nabla")]
libos_std::app!(devices: ["service0": Net, "storage": Block]);

/// What the handlers share.
struct Site {
    root: PathBuf,
    json_requests: AtomicU64,
}

/// The body of `GET /json`.
#[derive(Serialize)]
struct Status<'a> {
    server: &'a str,
    version: &'a str,
    requests: u64,
    root: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = match args.next() {
        Some(p) => p.parse().map_err(|e| format!("port {p:?}: {e}"))?,
        None => 80,
    };
    let root = PathBuf::from(args.next().unwrap_or_else(|| "/".into()));
    let site = Arc::new(Site { root, json_requests: AtomicU64::new(0) });
    let app = Router::new()
        .route("/json", get(status))
        .route("/", get(index))
        .route("/{*path}", get(file))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(site);
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))).await?;
    println!("std-http: listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn status(State(site): State<Arc<Site>>) -> Json<Status<'static>> {
    let requests = site.json_requests.fetch_add(1, Ordering::Relaxed) + 1;
    Json(Status {
        server: "std-http",
        version: env!("CARGO_PKG_VERSION"),
        requests,
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
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => StatusCode::NOT_FOUND.into_response(),
        // A directory, or a name FAT cannot hold.
        Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => {
            StatusCode::NOT_FOUND.into_response()
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            StatusCode::NOT_FOUND.into_response()
        }
        Err(e) => {
            eprintln!("std-http: {path}: {e}");
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
