//! nabla: developer tools for the nabla workspace.
//!
//! ```text
//! nabla bench startup [--runs N] [--warmup N] [--tender PATH] [--guest PATH] [--json]
//! nabla bench memory [--instances N] [--tender PATH] [--guest PATH] [--json]
//! nabla bench http [--duration S] [--connections C] [--threads T] [--rounds N] [--mtu BYTES] [--json]
//! nabla bench tcp [--size MIB] [--rounds N] [--mtu BYTES] [--goal RATIO] [--guest-env KEY=VALUE] [--json]
//! nabla bench block [--size-mib MIB] [--block-kib KIB] [--rounds N] [--dir DIR] [--json]
//! nabla bench container [--runs N] [--warmup N] [--nabla-runc PATH] [--runc PATH] [--guest PATH] [--json]
//! nabla disk create IMG --from DIR | get | ls | check
//! nabla hap compare [--pairs hello,httpd,kvd] [--requests N] [--mode auto|direct|lab] [--out DIR] [--json]
//! nabla hap run [--ready ADDR:PORT] [--load SHELL] [--filter] [--mode ...] -- COMMAND...
//! nabla pack BINARY [--files DIR] [--arg ARG]... [--env KEY=VALUE]... [--port PORT/PROTO]... -t REF [-o FILE.tar] [--layout DIR]
//! ```
//!
//! The benchmarks compare the tender running a guest with a native static
//! C peer that does the same (compiled with `gcc -O2 -static` from
//! `tools/bench/*.c`); the network ones compare a guest behind a tap with
//! the same service run natively behind a veth (nginx; the tcpperf
//! protocol in Rust), inside network namespaces they create and remove.
//! They report; they do not fail on a missed goal. Any
//! error prints `nabla: <what is wrong>` on stderr and exits with status 1.

#![deny(unsafe_code)]

mod bench;
mod disk;
mod hap;
mod netns;
mod pack;
mod smaps;
mod stats;
mod svg;
mod tcpperf;
mod wrk;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Developer tools for nabla.
#[derive(Debug, Parser)]
#[command(name = "nabla", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmarks the tender against native static peers.
    #[command(subcommand)]
    Bench(bench::Bench),
    /// Makes, lists, reads and checks FAT disk images for guests.
    #[command(subcommand)]
    Disk(disk::Disk),
    /// Measures the Horizontal Attack Profile: the distinct host-kernel
    /// functions a workload executes, start-up and steady state, with the
    /// function tracer (on this host, or in a QEMU VM where it is refused).
    #[command(subcommand)]
    Hap(hap::Hap),
    /// Packs a nabla binary as an OCI image (layout directory or archive).
    Pack(pack::Pack),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(b) => bench::run(b),
        Command::Disk(d) => disk::run(d),
        Command::Hap(h) => hap::run(h),
        Command::Pack(p) => pack::run(p),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            netns::exit_if_signalled();
            eprintln!("nabla: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_summary_names_what_every_subcommand_does() {
        let cmd = Cli::command();
        let about = cmd.get_about().map(ToString::to_string).unwrap_or_default();
        for (sub, words) in [
            ("bench", "benchmarks"),
            ("disk", "disks"),
            ("hap", "Horizontal Attack Profile"),
            ("pack", "OCI images"),
        ] {
            assert!(cmd.find_subcommand(sub).is_some(), "no subcommand {sub}");
            assert!(about.contains(words), "`nabla --help` does not say it {sub}: {about}");
        }
    }
}
