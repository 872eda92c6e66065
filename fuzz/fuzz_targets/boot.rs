//! The boot region, both ways: the tender encodes argv, the environment and
//! the device table (`tender::boot::build`), and the guest's runtime decodes
//! them (libos's boot-info check, `env::args`, `env::vars`, `env::var`, the
//! block device table and the network configuration read from the
//! environment, `net::config::ipv4_config`).
//!
//! The encoded region is copied to where the guest finds it
//! (`abi::BOOT_REGION_START`, mapped once in this process), and what libos
//! reads back must be exactly what went in. Arguments and environment
//! entries are untrusted: they come from whoever starts the container.
//!
//! Input: strings separated by NUL; the first byte splits them into
//! arguments and environment, the second gives how many devices follow
//! (each a name and a kind from the next strings). With the second byte's
//! top bit, the last string is also given as the file `/etc/hosts`
//! (`--etc`), which libos must hand back byte for byte.

#![no_main]

use abi::{BOOT_REGION_START, DeviceInfo};
use libfuzzer_sys::fuzz_target;
use nabla_fuzz::{device, region, write_boot_region_etc};

fuzz_target!(|data: &[u8]| {
    let (split, ndev, with_etc, rest) = match data {
        [a, b, rest @ ..] => (usize::from(*a), usize::from(*b) % 8, b & 0x80 != 0, rest),
        _ => return,
    };
    let etc: Vec<(String, Vec<u8>)> = match rest.rsplit(|&b| b == 0).next() {
        Some(last) if with_etc => vec![("hosts".to_string(), last.to_vec())],
        _ => Vec::new(),
    };
    let mut strings = rest.split(|&b| b == 0).map(|s| String::from_utf8_lossy(s).into_owned());
    let mut devices: Vec<DeviceInfo> = Vec::new();
    for _ in 0..ndev {
        let (Some(name), Some(kind)) = (strings.next(), strings.next()) else { break };
        // No fd: nothing reads or writes the devices here.
        let mut d = device(&name, abi::DeviceKind::Net, -1);
        d.kind = u32::from(kind.bytes().next().unwrap_or(0) % 3);
        d.capacity = 1 << 20;
        devices.push(d);
    }
    let strings: Vec<String> = strings.collect();
    let (args, env) = strings.split_at(split.min(strings.len()));

    let Ok(len) = write_boot_region_etc(args, env, &devices, &etc, abi::log_level::OFF) else {
        return;
    };
    let booted = libos::fuzzing::boot(BOOT_REGION_START as usize);
    // The runtime refuses a bad network configuration at boot: the first
    // net device whose NET_* variables are malformed.
    let config_error = devices
        .iter()
        .filter(|d| d.kind == abi::DeviceKind::Net as u32)
        .map(|d| {
            let entry = abi::DeviceEntry { name: d.name, kind: d.kind, reserved: 0 };
            let name = entry.name().unwrap_or("net").to_string();
            libos::net::config::ipv4_config(&name, libos::env::var)
        })
        .find_map(Result::err);
    match (booted, config_error) {
        (Ok(true), None) => {}
        (Err(got), Some(want)) => assert_eq!(got, want),
        (got, want) => panic!("boot: {got:?}, expected error {want:?}"),
    }
    let got_args: Vec<&str> = libos::env::args().collect();
    assert_eq!(got_args, args);
    let got_env: Vec<(&str, &str)> = libos::env::vars().collect();
    let want_env: Vec<(&str, &str)> = env.iter().filter_map(|e| e.split_once('=')).collect();
    assert_eq!(got_env, want_env);
    for (key, _) in &want_env {
        let last = want_env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v);
        assert_eq!(libos::env::var(key), last);
    }
    assert_eq!(libos::env::etc_file("hosts"), etc.first().map(|(_, d)| d.as_slice()));
    assert_eq!(libos::env::etc_files().count(), etc.len());
    let blocks = libos::block::devices();
    let want_blocks = devices.iter().filter(|d| d.kind == abi::DeviceKind::Block as u32).count();
    assert_eq!(blocks.len(), want_blocks);
    // Leave no boot info behind for the next input to trip on.
    libos::fuzzing::remove_interfaces();
    region()[..len].fill(0);
});
