//! Hooks for the fuzz targets in `fuzz/`, compiled only with `--cfg fuzzing`
//! (which `cargo fuzz` sets); never part of a guest.
//!
//! libos's hypercalls are plain Linux system calls, so its code runs
//! unchanged in a fuzz process: a target maps a boot region where the
//! tender would, with a socketpair end for a tap and a memfd for a disk,
//! and boots libos on it as the entry point does. The network stack then
//! runs on a clock the target drives, one turn at a time.

use crate::net::{self, ConfigError, STACK};
use crate::time::Instant;

/// What the runtime does at boot before `main`, on the boot info at `addr`:
/// checks it (false if the runtime would refuse it), makes it the one
/// [`crate::env`] and [`crate::block`] read, sets the log level from it,
/// and builds the network interfaces of its net devices, configured from
/// its environment. The heap is the fuzz process's own.
pub fn boot(addr: usize) -> Result<bool, ConfigError> {
    STACK.lock().ifaces.clear();
    let Some(info) = crate::rt::boot::init(addr) else { return Ok(false) };
    crate::console::init_log(info.log_level, true);
    net::init()?;
    Ok(true)
}

/// Removes every network interface, and the sockets on them. Drop the
/// sockets first: a socket dropped afterwards finds no interface.
pub fn remove_interfaces() {
    STACK.lock().ifaces.clear();
}

/// One turn of the executor's network work at time `now`: marks every tap
/// readable (as a `ppoll` that saw frames would), processes what arrived,
/// sends what is queued. Returns whether a socket changed state.
pub fn poll(now: Instant) -> bool {
    for i in &mut STACK.lock().ifaces {
        i.tap.readable = true;
    }
    net::poll(now)
}

/// When the stack next wants polling.
pub fn poll_at(now: Instant) -> Option<Instant> {
    net::poll_at(now)
}
