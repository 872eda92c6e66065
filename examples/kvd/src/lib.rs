//! kv: the Redis protocol and engine of kvd, without I/O.
//!
//! The layers, bottom up:
//!
//! * [`resp`]: the incremental RESP2 request parser (multibulk and inline
//!   commands, Redis's limits), and [`reply`], the encoders of replies;
//! * [`bytes`]: keys and string values, inline when short;
//! * [`glob`]: Redis's glob patterns, for `KEYS`, `SCAN MATCH`, `CONFIG GET`;
//! * [`store`]: the keyspace (strings, lists, hashes, sets), expiry with
//!   times passed in, and `SCAN`'s cursor order;
//! * [`commands`]: the [`Engine`](commands::Engine): argv in, reply bytes
//!   out, with Redis's exact error replies, and for each command whether it
//!   changed the dataset and how to log it for persistence;
//! * [`aof`]: persistence, an append-only log of those commands on a raw
//!   block device, replayed at start and compacted from a snapshot.
//!
//! The guest (`src/main.rs`) adds the sockets, the clock and the disk. All
//! of this builds and is tested on the host.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod aof;
pub mod auth;
pub mod bytes;
pub mod client;
pub mod commands;
pub mod glob;
pub mod limits;
pub mod reply;
pub mod resp;
pub mod store;

pub use commands::{Config, Effect, Engine, OutputLimit, Session};
pub use reply::Out;
pub use resp::{Parser, ProtocolError};
