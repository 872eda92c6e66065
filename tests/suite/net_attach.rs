//! Attaching taps: `--net NAME=IFACE`, `--net NAME=fd:N`, `--net-mac`, every
//! refusal, and the filter with a tap attached.
//!
//! Root only (CI runs as root): each test creates its own network namespace
//! with its taps inside (`support::netns`), runs the tender there, and
//! removes the namespace afterwards, also on failure. Nothing is sent
//! anywhere but into the namespace's own taps.
//!
//! The tap's fd is read from `--print-seccomp` for the same invocation
//! (`net transmit on tap fd N (service0)`): attaching by name, the tender
//! opens the image and its snapshot and closes the image, then opens a
//! socket to query interfaces (fd 3, closed before the jump) and the tap
//! (fd 4), so N is 4 when the tender inherits only fds 0-2.

mod support;

use std::os::fd::RawFd;

use support::netns::{Netns, spawn};
use support::{KillOnDrop, SIGSYS};

const GUEST: &str = env!("CARGO_BIN_EXE_guest-net-syscall");

/// `IFF_TAP | IFF_NO_PI`: how a runtime attaches a tap for the tender
/// (adding `IFF_VNET_HDR` for offloads).
const TAP_FLAGS: i32 = libc::IFF_TAP | libc::IFF_NO_PI;

/// A namespace with `tap0` up (no address: nothing in the namespace talks
/// to it) and IPv6 off, so the tap stays silent.
fn with_tap(tag: &str, mtu: Option<u32>) -> Netns {
    let ns = Netns::new(tag);
    ns.disable_ipv6();
    ns.add_tap("tap0", None, mtu);
    ns
}

/// `tender --net service0=tap0 [EXTRA...] guest-net-syscall ARGS...`.
fn attach_args<'a>(extra: &[&'a str], guest_args: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec!["--net", "service0=tap0"];
    argv.extend_from_slice(extra);
    argv.push(GUEST);
    argv.extend_from_slice(guest_args);
    argv
}

/// The fd of device `service0` in `--print-seccomp` output.
fn tap_fd(print_seccomp: &str) -> RawFd {
    let marker = "net transmit on tap fd ";
    let line = print_seccomp
        .lines()
        .find(|l| l.contains(marker) && l.ends_with("(service0)"))
        .unwrap_or_else(|| panic!("no tap rule in:\n{print_seccomp}"));
    let rest = &line[line.find(marker).unwrap() + marker.len()..];
    rest.split_whitespace().next().unwrap().parse().expect("fd number")
}

#[test]
fn attach_by_name_runs_the_guest() {
    let ns = with_tap("attach", None);
    ns.tender(&attach_args(&[], &["231", "0"])).assert_ok();
    let out = ns.tender(&attach_args(&[], &["231", "7"]));
    assert_eq!(out.code(), Some(7), "{out:#?}");

    // The guest sees the device with the MAC it was given.
    let out = ns.tender(&attach_args(&["--net-mac", "service0=02:AB:cd:00:00:2a"], &["info"]));
    out.assert_ok();
    assert_eq!(out.stdout, "service0 mtu 1500 mac 02:ab:cd:00:00:2a offload\n");

    // Without --net-mac: derived, locally administered, unicast, and the
    // same on every run (see the_default_mac_is_stable_per_tap_and_device).
    let mac = default_mac(&ns, "tap0");
    let first = u8::from_str_radix(&mac[..2], 16).unwrap();
    assert_eq!(first & 0x03, 0x02, "default MAC {mac} must be local unicast");
}

/// The MAC the guest gets on `tap` in `ns` without `--net-mac`.
fn default_mac(ns: &Netns, tap: &str) -> String {
    let net = format!("service0={tap}");
    let out = ns.tender(&["--net", &net, GUEST, "info"]);
    out.assert_ok();
    out.stdout.split(' ').nth(4).unwrap_or_else(|| panic!("{out:#?}")).to_string()
}

#[test]
fn the_default_mac_is_stable_per_tap_and_device() {
    let ns = with_tap("mac", None);
    ns.add_tap("tap1", None, None);
    let mac = default_mac(&ns, "tap0");
    // A restarted guest on the same tap: the same MAC (and DHCP lease).
    assert_eq!(default_mac(&ns, "tap0"), mac);
    // The same tap passed as an fd (as a runtime does): the same MAC.
    let mut c = ns.command_with_tap(support::tender(), "tap0", 7, TAP_FLAGS);
    c.args(["--net", "service0=fd:7", GUEST, "info"]);
    let out = spawn(c, "tender with fd:7");
    out.assert_ok();
    assert_eq!(out.stdout, format!("service0 mtu 1500 mac {mac}\n"));
    // Another tap, or the same tap name in another namespace: another MAC.
    let other = default_mac(&ns, "tap1");
    assert_ne!(other, mac);
    assert_eq!(default_mac(&ns, "tap1"), other);
    let ns2 = with_tap("mac2", None);
    assert_ne!(default_mac(&ns2, "tap0"), mac);
    // --net-mac still wins.
    let out = ns.tender(&attach_args(&["--net-mac", "service0=02:00:00:00:00:05"], &["info"]));
    out.assert_ok();
    assert_eq!(out.stdout, "service0 mtu 1500 mac 02:00:00:00:00:05 offload\n");
}

#[test]
fn the_guest_sees_the_interfaces_mtu() {
    let ns = with_tap("mtu", Some(9000));
    let out = ns.tender(&attach_args(&[], &["info"]));
    out.assert_ok();
    assert!(out.stdout.starts_with("service0 mtu 9000 mac "), "{out:#?}");
}

#[test]
fn print_seccomp_shows_the_rules_for_the_tap_fd() {
    let ns = with_tap("pfc", None);
    let out = ns.tender(&attach_args(&["--print-seccomp"], &["231", "0"]));
    out.assert_ok();
    let s = &out.stdout;
    let fd = tap_fd(s);
    // The image and the cache directory are closed once the snapshot (fd 5)
    // is open: fd 3 is the interface socket, 4 the tap.
    assert_eq!(fd, 4, "fd 3 is the interface socket, 4 the tap:\n{s}");
    assert!(
        s.starts_with(
            "# nabla policy: 7 rules, 5 distinct system calls (clock_gettime, exit_group, ppoll, \
             read, write)"
        ),
        "{s}"
    );
    assert!(s.contains(&format!("allow read(arg0 == {fd})")), "{s}");
    assert!(s.contains(&format!("net receive on tap fd {fd} (service0)")), "{s}");
    assert!(s.contains(&format!("allow write(arg0 == {fd})")), "{s}");
    // The tap and the signalfds (SIGTERM, SIGINT): nothing reads those.
    let pollable = 1 + support::signal_fds();
    assert!(s.contains(&format!("allow ppoll(arg1 <= {pollable}, arg3 == 0)")), "{s}");
    // libseccomp's own text: read (0) pinned to the fd.
    let read = s.split("# filter for syscall \"read\" (0)").nth(1).expect("read in the PFC");
    let read = read.split("# filter for syscall").next().unwrap();
    assert!(read.contains(&format!("if ($a0.lo32 == {fd})")), "{s}");
    assert!(!s.contains("returned"), "--print-seccomp must not run the guest");
}

#[test]
fn the_filter_allows_read_and_write_on_the_tap_fd_only() {
    let ns = with_tap("filter", None);
    let fd = tap_fd(&ns.tender(&attach_args(&["--print-seccomp"], &[])).stdout);
    let (tap, below, above) = (fd.to_string(), (fd - 1).to_string(), (fd + 1).to_string());
    let call = |args: &[&str]| ns.tender(&attach_args(&[], args));

    // 60 bytes of zeroes: a frame for nobody, which the namespace drops.
    let out = call(&["1", &tap, "buf", "60"]);
    out.assert_ok();
    assert_eq!(out.stdout, "returned 60\n");
    // Nothing is queued on the tap: EAGAIN, not a block.
    let out = call(&["0", &tap, "buf", "4096"]);
    out.assert_ok();
    assert_eq!(out.stdout, "returned -11\n");
    // ppoll on one fd (fd 0, no events, zero timeout), no signal mask.
    let out = call(&["271", "buf", "1", "buf", "0", "8"]);
    out.assert_ok();
    assert_eq!(out.stdout, "returned 0\n");
    // On the tap and the signalfds: as many fds as the bound allows.
    let bound = 1 + support::signal_fds();
    let out = call(&["271", "buf", &bound.to_string(), "buf", "0", "8"]);
    out.assert_ok();
    let past = (bound + 1).to_string();
    // The console still works.
    let out = call(&["1", "1", "msg", "3"]);
    out.assert_ok();
    assert_eq!(out.stdout, "ok\nreturned 3\n");

    let killed: [&[&str]; 13] = [
        &["0", "0", "buf", "16"],                // read stdin
        &["0", "2", "buf", "16"],                // read stderr
        &["0", &below, "buf", "16"],             // read the fd below the tap
        &["0", &above, "buf", "16"],             // read the fd above the tap
        &["1", "0", "buf", "60"],                // write stdin
        &["1", "2", "msg", "3"],                 // write stderr
        &["1", &below, "buf", "60"],             // write the fd below the tap
        &["1", &above, "buf", "60"],             // write the fd above the tap
        &["18", &tap, "buf", "60", "0"],         // pwrite64 on the tap
        &["20", &tap, "buf", "1"],               // writev on the tap
        &["17", &tap, "buf", "60", "0"],         // pread64 on the tap
        &["271", "buf", &past, "buf", "0", "8"], // ppoll past the bound
        &["271", "buf", "1", "buf", "buf", "8"], // ppoll with a signal mask
    ];
    for args in killed {
        let out = call(args);
        assert_eq!(out.signal(), Some(SIGSYS), "{args:?} must be killed by SIGSYS: {out:#?}");
    }
    // The tap's fd in the upper half of the register is another fd.
    let high = format!("{:#x}", (1u64 << 32) | fd as u64);
    let out = call(&["1", &high, "buf", "60"]);
    assert_eq!(out.signal(), Some(SIGSYS), "{out:#?}");
}

#[test]
fn a_tap_passed_as_an_fd_is_used_as_it_is() {
    let ns = with_tap("fd", Some(4000));
    let tender = support::tender();
    let run_with = |flags: i32, args: &[&str]| {
        let mut c = ns.command_with_tap(&tender, "tap0", 7, flags);
        c.args(["--net", "service0=fd:7"]).args(args);
        spawn(c, "tender with fd:7")
    };
    let run = |args: &[&str]| run_with(TAP_FLAGS, args);
    let out = run(&["--net-mac", "service0=02:00:00:00:00:07", GUEST, "info"]);
    out.assert_ok();
    assert_eq!(out.stdout, "service0 mtu 4000 mac 02:00:00:00:00:07\n");
    // Attached with virtio-net headers: the guest offloads TCP.
    let vnet = TAP_FLAGS | libc::IFF_VNET_HDR;
    let out = run_with(vnet, &["--net-mac", "service0=02:00:00:00:00:07", GUEST, "info"]);
    out.assert_ok();
    assert_eq!(out.stdout, "service0 mtu 4000 mac 02:00:00:00:00:07 offload\n");
    let out = run(&["--print-seccomp", GUEST]);
    out.assert_ok();
    assert_eq!(tap_fd(&out.stdout), 7, "{}", out.stdout);
    // Made non-blocking by the tender, pinned to fd 7.
    let out = run(&[GUEST, "0", "7", "buf", "4096"]);
    out.assert_ok();
    assert_eq!(out.stdout, "returned -11\n");
    let out = run(&[GUEST, "1", "7", "buf", "60"]);
    out.assert_ok();
    assert_eq!(out.stdout, "returned 60\n");
    let out = run(&[GUEST, "1", "6", "buf", "60"]);
    assert_eq!(out.signal(), Some(SIGSYS), "{out:#?}");
}

#[test]
fn passed_fds_that_are_not_usable_taps_are_refused() {
    let ns = with_tap("badfd", None);
    ns.ip(&["tuntap", "add", "dev", "tun0", "mode", "tun"]);
    ns.ip(&["link", "set", "tun0", "up"]);
    // stdin is /dev/null.
    ns.tender(&["--net", "service0=fd:0", GUEST])
        .assert_refused("--net service0=fd:0: fd 0 is not a tap device");
    // Not open: the tender opens nothing before it checks.
    for fd in ["3", "200"] {
        ns.tender(&["--net", &format!("service0=fd:{fd}"), GUEST])
            .assert_refused(&format!("--net service0=fd:{fd}: fd {fd} is not open"));
    }
    ns.tender(&["--net", "service0=fd:1", GUEST]).assert_refused("fd 1 is the guest's console");
    ns.tender(&["--net", "service0=fd:x", GUEST])
        .assert_refused("--net service0=fd:x: expected fd:N with N a file descriptor number");

    let tender = support::tender();
    let passed = |tap: &str, flags: i32| {
        let mut c = ns.command_with_tap(&tender, tap, 7, flags);
        c.args(["--net", "service0=fd:7", GUEST, "231", "0"]);
        spawn(c, "tender with fd:7")
    };
    passed("tun0", libc::IFF_TUN | libc::IFF_NO_PI)
        .assert_refused("--net service0=fd:7: fd 7 is not a tap device");
    passed("tap0", libc::IFF_TAP).assert_refused(
        "fd 7 (interface tap0) is a tap with packet information (IFF_NO_PI is not set)",
    );
    // Down after it was attached.
    ns.ip(&["link", "set", "tap0", "down"]);
    passed("tap0", TAP_FLAGS)
        .assert_refused("--net service0=fd:7: interface tap0 is down: `ip link set tap0 up`");
}

#[test]
fn options_for_the_wrong_devices_are_refused() {
    let ns = with_tap("names", None);
    ns.tender(&[GUEST, "231", "0"]).assert_refused(
        "device `service0` (net) is declared by the image but not attached: use --net \
         service0=IFACE",
    );
    ns.tender(&["--net", "service1=tap0", GUEST]).assert_refused(
        "--net service1=tap0: device `service1` is not declared by the image (it declares: \
         service0 (net))",
    );
    ns.tender(&["--net", "service0=tap0", "--net", "service1=tap1", GUEST])
        .assert_refused("device `service1` is not declared by the image");
    ns.tender(&["--net", "service0=tap0", "--net", "service0=tap1", GUEST])
        .assert_refused("--net is given twice for device `service0`");
    ns.tender(&["--net-mac", "service0=02:00:00:00:00:01", GUEST])
        .assert_refused("--net-mac service0=02:00:00:00:00:01: device `service0` has no --net");
    ns.tender(&["--net", "service0", GUEST])
        .assert_refused("--net \"service0\": expected NAME=IFACE or NAME=fd:N");
    // A device-less guest declares nothing to attach.
    let syscall = env!("CARGO_BIN_EXE_guest-syscall");
    ns.tender(&["--net", "service0=tap0", syscall]).assert_refused(
        "--net service0=tap0: device `service0` is not declared by the image (it declares no \
         devices)",
    );
}

#[test]
fn interfaces_that_cannot_be_attached_are_refused() {
    let ns = with_tap("ifaces", None);
    ns.add_tap("tap1", None, None);
    ns.ip(&["link", "set", "tap1", "down"]);
    ns.ip(&["tuntap", "add", "dev", "tun0", "mode", "tun"]);
    ns.ip(&["link", "set", "tun0", "up"]);
    // No `dummy` module on every kernel; a veth pair is always there.
    ns.ip(&["link", "add", "veth0", "type", "veth", "peer", "name", "veth1"]);
    ns.ip(&["link", "set", "veth0", "up"]);
    ns.ip(&["tuntap", "add", "dev", "mq0", "mode", "tap", "multi_queue"]);
    ns.ip(&["link", "set", "mq0", "up"]);

    let refused = |iface: &str, needle: &str| {
        ns.tender(&["--net", &format!("service0={iface}"), GUEST, "231", "0"])
            .assert_refused(&format!("--net service0={iface}: {needle}"));
    };
    refused("tap9", "interface tap9 does not exist");
    refused("tap1", "interface tap1 is down: `ip link set tap1 up`");
    refused("tun0", "interface tun0 is not a tap device");
    refused("veth0", "interface veth0 is not a tap device");
    refused("lo", "interface lo is not a tap device");
    refused("mq0", "interface mq0 is a multi-queue tap: create it without multi_queue");
    refused(
        "averyveryverylongname",
        "`averyveryverylongname` is not an interface name: interface names are at most 15 bytes",
    );

    // Busy: another process holds tap0.
    let mut holder = ns.command_with_tap("sleep", "tap0", 7, TAP_FLAGS);
    holder.arg("30");
    let _holder = KillOnDrop(holder.spawn().expect("sleep holding tap0"));
    refused("tap0", "interface tap0 is busy: another process has it attached");
}

#[test]
fn bad_macs_are_refused() {
    let ns = with_tap("mac", None);
    for (mac, why) in [
        ("ff:ff:ff:ff:ff:ff", "a multicast or broadcast address"),
        ("01:00:5e:00:00:01", "a multicast or broadcast address"),
        ("00:00:00:00:00:00", "the all-zero address"),
        ("02:00:00:00:00", "expected six hex octets"),
        ("02:00:00:00:00:01:02", "expected six hex octets"),
        ("02-00-00-00-00-01", "expected six hex octets"),
        ("02:00:00:00:00:0g", "expected six hex octets"),
        ("", "expected six hex octets"),
    ] {
        ns.tender(&attach_args(&["--net-mac", &format!("service0={mac}")], &["231", "0"]))
            .assert_refused(&format!(
                "--net-mac service0={mac}: `{mac}` is not a usable MAC address: {why}"
            ));
    }
}

#[test]
fn attaching_a_tap_needs_privileges() {
    let ns = with_tap("unpriv", None);
    let mut c = ns.command("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(support::tender())
        .args(attach_args(&[], &["231", "0"]));
    let out = spawn(c, "tender as nobody");
    // /dev/net/tun is root's on some hosts (EACCES on open), world-usable
    // on others (EPERM on TUNSETIFF for a tap nobody does not own).
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert!(out.stderr.starts_with("tender: --net service0=tap0: "), "{out:#?}");
    assert!(
        out.stderr.contains("cannot open /dev/net/tun")
            || out.stderr.contains("no permission to attach interface tap0"),
        "{out:#?}"
    );
}

#[test]
fn namespaces_and_their_processes_go_away_when_a_test_panics() {
    let payload = std::thread::spawn(|| {
        let ns = Netns::new("panic");
        ns.add_tap("tap0", Some("10.0.0.1/24"), None);
        let mut sleeper = ns.command("sleep");
        sleeper.arg("60");
        // Left running on purpose: the namespace's Drop must kill it.
        #[allow(clippy::zombie_processes)]
        let child = sleeper.spawn().expect("sleep in the namespace");
        std::panic::panic_any((ns.name().to_string(), child.id()));
    })
    .join()
    .expect_err("the thread panics");
    let (name, pid) = *payload.downcast::<(String, u32)>().expect("payload");
    assert!(
        !support::netns::ip(&["netns", "list"])
            .lines()
            .any(|l| l.starts_with(&format!("{name} ")) || l == name),
        "{name} is still there"
    );
    // Killed: gone, or a zombie until this process reaps it.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(state.is_empty() || state.contains(") Z "), "sleep {pid} still runs: {state}");
}
