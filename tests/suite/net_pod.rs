//! Pod networks: a guest with a /32 address and a default gateway outside
//! it that no host owns (169.254.1.1), wired as Kubernetes CNIs wire a pod.
//!
//! Each test builds a namespace like a node with one pod (see
//! `support::netns`; everything stays inside it): tap0 is the node's end of
//! the pod's link, without an address, with a host route to the guest's
//! /32 through it; the client's address is on the namespace's loopback,
//! so that every reply from the guest has to go through the gateway.
//!
//! * Calico: the node's end answers ARP for the gateway by proxy ARP.
//! * AWS VPC CNI: nothing answers for the gateway; the guest is given its
//!   MAC (`NET_SERVICE0_GATEWAY_MAC`), as the pod's permanent neighbour
//!   entry would give it.
//! * Neither: the gateway cannot be reached, and the guest keeps running.

mod support;

use std::io::{BufRead, BufReader, Write};

use support::netns::{Netns, require_root};
use support::{KillOnDrop, TempDir, workspace_bin};

const NETINFO: &str = env!("CARGO_BIN_EXE_guest-netinfo");

/// The pod's address, a /32.
const GUEST: &str = "10.100.0.5";
const GUEST_MAC: &str = "02:00:00:00:00:05";
/// The gateway no interface owns.
const GATEWAY: &str = "169.254.1.1";
/// The client, on the namespace's loopback: off the guest's link.
const CLIENT: &str = "10.200.0.1";

/// A namespace wired like a node with one pod on tap0, with proxy ARP on
/// tap0 if `proxy_arp` (Calico) or without (AWS VPC CNI).
fn node(tag: &str, proxy_arp: bool) -> Netns {
    require_root();
    let ns = Netns::new(tag);
    ns.disable_ipv6();
    ns.add_tap("tap0", None, None);
    ns.ip(&["route", "add", &format!("{GUEST}/32"), "dev", "tap0"]);
    ns.ip(&["addr", "add", &format!("{CLIENT}/32"), "dev", "lo"]);
    // A node routes the gateway's address out of its uplink (its default
    // route): proxy ARP answers only for an address routed through another
    // interface, and only when forwarding is on. The uplink here is a
    // bridge without ports (this kernel has no dummy or veth).
    ns.ip(&["link", "add", "uplink0", "type", "bridge"]);
    ns.ip(&["link", "set", "uplink0", "up"]);
    ns.ip(&["route", "add", "169.254.0.0/16", "dev", "uplink0"]);
    sysctl(&ns, "net/ipv4/ip_forward", "1");
    if proxy_arp {
        sysctl(&ns, "net/ipv4/conf/tap0/proxy_arp", "1");
        // Answer at once, not after up to 0.8 s.
        sysctl(&ns, "net/ipv4/neigh/tap0/proxy_delay", "0");
    }
    // netinfo declares a second device: on a link of its own, unused.
    ns.add_tap("tap1", Some("10.0.1.1/24"), None);
    ns
}

fn sysctl(ns: &Netns, key: &str, value: &str) {
    let out = ns.run("sh", &["-c", &format!("echo {value} > /proc/sys/{key}")]);
    assert_eq!(out.code(), Some(0), "{key}={value} in {}: {out:#?}", ns.name());
}

/// The MAC of the namespace's end of tap0.
fn tap_mac(ns: &Netns) -> String {
    let out = ns.ip(&["-brief", "link", "show", "tap0"]);
    out.split_whitespace().nth(2).expect("tap0's MAC").to_string()
}

/// The guest's network variables: the pod's /32, the gateway, and its MAC
/// if given.
fn pod_env(gateway_mac: Option<&str>) -> Vec<String> {
    let mut env = vec![
        "--env".to_string(),
        format!("NET_SERVICE0_IPV4={GUEST}/32"),
        "--env".to_string(),
        format!("NET_SERVICE0_GATEWAY={GATEWAY}"),
    ];
    if let Some(mac) = gateway_mac {
        env.extend(["--env".to_string(), format!("NET_SERVICE0_GATEWAY_MAC={mac}")]);
    }
    env
}

/// httpd on tap0 (and the site disk), with the pod's configuration.
fn httpd(ns: &Netns, gateway_mac: Option<&str>) -> KillOnDrop {
    let mut args: Vec<String> =
        ["--net", "service0=tap0", "--net-mac"].iter().map(|s| s.to_string()).collect();
    args.push(format!("service0={GUEST_MAC}"));
    args.extend(["--block-ro".to_string(), format!("storage={}", support::site_image().display())]);
    args.extend(pod_env(gateway_mac));
    args.push(workspace_bin("httpd").display().to_string());
    ns.start_tender(&args, "httpd: serving").0
}

/// `ping ARGS` from the client's address.
fn ping(ns: &Netns, args: &[&str]) -> support::Outcome {
    let mut all = vec!["-I", CLIENT];
    all.extend_from_slice(args);
    all.push(GUEST);
    ns.run("ping", &all)
}

/// Everything a pod's clients and the pod itself do works: ping (a flood,
/// every reply), HTTP from the off-link client, and a connection the guest
/// makes out through the gateway, from its own address.
fn pod_works(ns: &Netns, gateway_mac: Option<&str>) {
    let mut guest = httpd(ns, gateway_mac);
    serves_off_link_clients(ns, &mut guest);
    drop(guest);

    // The guest as a client: its SYN leaves from its own address (not the
    // gateway's, the interface's second address) through the gateway.
    let server = ns.enter(|| std::net::TcpListener::bind((CLIENT, 7070)).unwrap());
    let peer = std::thread::spawn(move || {
        let (mut s, from) = server.accept().unwrap();
        let mut line = String::new();
        BufReader::new(s.try_clone().unwrap()).read_line(&mut line).unwrap();
        s.write_all(format!("you said {line}").as_bytes()).unwrap();
        from
    });
    let mut args: Vec<String> = vec!["--net".into(), "service0=tap0".into()];
    args.extend(["--net".into(), "service1=tap1".into()]);
    args.extend(["--env".into(), "NET_SERVICE1_IPV4=10.0.1.2/24".into()]);
    args.extend(["--env".into(), format!("CONNECT={CLIENT}:7070")]);
    args.extend(pod_env(gateway_mac));
    args.push(NETINFO.into());
    let (_guest, lines) = ns.start_tender(&args, "ready");
    assert!(lines.contains(&"reply you said hello from the guest".to_string()), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("iface service0 ") && l.ends_with(&format!("ipv4 {GUEST}/32"))),
        "{lines:#?}"
    );
    assert_eq!(peer.join().unwrap().ip().to_string(), GUEST);
}

/// httpd at GUEST (`guest`) answers ping (a flood, every reply) and HTTP
/// from the off-link client, through the gateway.
fn serves_off_link_clients(ns: &Netns, guest: &mut KillOnDrop) {
    // The first echo may be lost while the guest resolves the gateway.
    let warm = (0..5).any(|_| ping(ns, &["-c", "1", "-W", "1"]).code() == Some(0));
    assert!(warm, "no reply from {GUEST} through {GATEWAY}");
    let out = ping(ns, &["-f", "-c", "2000", "-W", "2"]);
    assert!(out.stdout.contains("2000 packets transmitted, 2000 received"), "{out:#?}");
    // The node resolved the guest although it asked from an address
    // outside the guest's /32.
    let neigh = ns.ip(&["neigh", "show", GUEST, "dev", "tap0"]);
    assert!(neigh.contains(GUEST_MAC), "{neigh}");

    let url = format!("http://{GUEST}/robots.txt");
    let out = ns.run(
        "curl",
        &["--silent", "--show-error", "--max-time", "10", "--interface", CLIENT, &url],
    );
    assert_eq!(out.code(), Some(0), "{out:#?}");
    assert_eq!(out.stdout, "User-agent: *\nDisallow:\n");
    let url = format!("http://{GUEST}/bench/1m.bin");
    let out = ns.run(
        "curl",
        &[
            "--silent",
            "--show-error",
            "--max-time",
            "10",
            "--interface",
            CLIENT,
            "--output",
            "-",
            &url,
        ],
    );
    assert_eq!(out.stdout.len(), 1 << 20, "{}", out.stderr);
    assert!(out.stdout.bytes().enumerate().all(|(i, b)| b == b'a' + (i % 26) as u8));
    assert_eq!(guest.0.try_wait().expect("wait"), None, "httpd exited");
}

#[test]
fn calico_a_proxy_arp_gateway_reaches_off_link_clients() {
    let ns = node("calico", true);
    pod_works(&ns, None);
}

#[test]
fn aws_a_fixed_gateway_mac_needs_no_arp_answer() {
    let ns = node("aws", false);
    let mac = tap_mac(&ns);
    pod_works(&ns, Some(&mac));
}

#[test]
fn a_dhcp_lease_with_an_off_link_router_works_like_a_static_one() {
    // A /32 lease whose router is Calico's 169.254.1.1. dnsmasq serves
    // only an interface with an address in the range's subnet: tap0 gets
    // one, and the lease's netmask option says /32.
    let ns = node("dhcp", true);
    ns.ip(&["addr", "add", "10.100.0.1/24", "dev", "tap0"]);
    let dir = TempDir::new("dnsmasq");
    let range = format!("--dhcp-range={GUEST},{GUEST},255.255.255.0,1h");
    let router = format!("--dhcp-option=option:router,{GATEWAY}");
    let netmask = "--dhcp-option=option:netmask,255.255.255.255";
    let _dnsmasq = ns.dnsmasq("tap0", &dir.path().join("leases"), &[&range, netmask, &router]);
    let args = [
        "--net".to_string(),
        "service0=tap0".to_string(),
        "--net-mac".to_string(),
        format!("service0={GUEST_MAC}"),
        "--block-ro".to_string(),
        format!("storage={}", support::site_image().display()),
        workspace_bin("httpd").display().to_string(),
    ];
    let (mut guest, lines) = ns.start_tender(&args, "httpd: serving");
    let serving = lines.last().unwrap();
    assert!(serving.contains(&format!("http://{GUEST}:80/ (service0/32)")), "{lines:#?}");
    serves_off_link_clients(&ns, &mut guest);
}

#[test]
fn an_unreachable_gateway_fails_cleanly() {
    let ns = node("nogw", false);
    let mut guest = httpd(&ns, None);
    let out = ping(&ns, &["-c", "3", "-i", "0.3", "-W", "1"]);
    assert!(out.stdout.contains("3 packets transmitted, 0 received"), "{out:#?}");
    let url = format!("http://{GUEST}/robots.txt");
    let out = ns.run("curl", &["--silent", "--max-time", "3", "--interface", CLIENT, &url]);
    assert_ne!(out.code(), Some(0), "{out:#?}");
    // The node's ARP for the guest was still answered; the guest runs on.
    let neigh = ns.ip(&["neigh", "show", GUEST, "dev", "tap0"]);
    assert!(neigh.contains(GUEST_MAC), "{neigh}");
    assert_eq!(guest.0.try_wait().expect("wait"), None, "httpd exited");
}
