//! mini-redis 0.4.1 (tokio's example Redis server, from crates.io,
//! unmodified) as a program: the crate's own `src/bin/server.rs`, except
//! that it listens on every address (`0.0.0.0`), not only `127.0.0.1`, or
//! no client outside the guest could reach it; and it says where it
//! listens. In a guest, `tokio::signal::ctrl_c()` registers and never
//! fires (nothing delivers a signal to a guest: docs/std.md): the server
//! runs until its tender is stopped.
//!
//! ```text
//! mini-redis-server [--port PORT]       (6379 by default)
//! tender --net service0=tap0 --env NET_SERVICE0_IPV4=10.0.0.2/24 \
//!     target/release/mini-redis-server
//! ```

use mini_redis::{DEFAULT_PORT, server};
use structopt::StructOpt;
use tokio::net::TcpListener;
use tokio::signal;

#[cfg(feature = "nabla")]
libos_std::app!(devices: ["service0": Net]);

#[tokio::main]
pub async fn main() -> mini_redis::Result<()> {
    tracing_subscriber::fmt::try_init()?;

    let cli = Cli::from_args();
    let port = cli.port.as_deref().unwrap_or(DEFAULT_PORT);

    let listener = TcpListener::bind(&format!("0.0.0.0:{port}")).await?;
    println!("mini-redis-server: listening on {}", listener.local_addr()?);

    server::run(listener, signal::ctrl_c()).await
}

#[derive(StructOpt, Debug)]
#[structopt(name = "mini-redis-server", version = env!("CARGO_PKG_VERSION"), about = "A Redis server")]
struct Cli {
    #[structopt(name = "port", long = "--port")]
    port: Option<String>,
}
