//! Wiring a container's network namespace to a guest.
//!
//! For each net device the image declares, the runtime takes one Ethernet
//! interface of the namespace (in interface-index order, those with an IPv4
//! address first), makes a tap beside it, and joins the two with tc: a
//! `mirred` redirect on each one's ingress sends every frame that arrives on
//! the interface out of the tap, to the guest, and every frame the guest
//! sends out of the interface. The guest gets the interface's MAC address,
//! IPv4 address, prefix and default gateway (and the gateway's MAC when the
//! namespace has a permanent neighbour entry for it, as /32 pod networks
//! do), so to the network nothing changed. The namespace's own stack no
//! longer sees the interface's traffic; the interface keeps its address, so
//! the engine that made it finds it as it left it.
//!
//! This uses `ip` and `tc` from iproute2, run inside the namespace.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;

/// What `create` set up in a namespace, for `delete` to take down.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Wiring {
    /// The namespace's interface.
    pub iface: String,
    /// The tap the guest reads and writes.
    pub tap: String,
}

/// A guest's view of one wired interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestNet {
    pub device: String,
    pub wiring: Wiring,
    pub mac: String,
    /// `a.b.c.d/prefix`; `None`: the interface has none (the guest uses DHCP).
    pub ipv4: Option<String>,
    pub gateway: Option<String>,
    pub gateway_mac: Option<String>,
}

impl GuestNet {
    /// The tender's options for this device.
    pub fn tender_args(&self) -> Vec<String> {
        let mut a = vec![
            "--net".into(),
            format!("{}={}", self.device, self.wiring.tap),
            "--net-mac".into(),
            format!("{}={}", self.device, self.mac),
        ];
        let var = |key: &str| format!("NET_{}_{key}", self.device.to_ascii_uppercase());
        let mut env = |key: &str, value: &Option<String>| {
            if let Some(v) = value {
                a.push("--env".into());
                a.push(format!("{}={v}", var(key)));
            }
        };
        env("IPV4", &self.ipv4);
        env("GATEWAY", &self.gateway);
        env("GATEWAY_MAC", &self.gateway_mac);
        a
    }
}

/// Moves this (single-threaded) process into the network namespace at `path`.
pub fn enter(path: &Path) -> Result<(), Error> {
    let f = std::fs::File::open(path)
        .map_err(|e| Error(format!("network namespace {}: {e}", path.display())))?;
    use std::os::fd::AsRawFd;
    // SAFETY: setns on an fd we own; the runtime has no other threads.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(Error(format!(
            "network namespace {}: setns: {}",
            path.display(),
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// One interface as `ip -j addr` describes it.
#[derive(Debug, Clone)]
struct Iface {
    index: u64,
    name: String,
    mac: String,
    ipv4: Option<String>,
}

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    PathBuf::from(name)
}

fn run(prog: &str, args: &[&str]) -> Result<String, Error> {
    let out = Command::new(tool(prog))
        .args(args)
        .output()
        .map_err(|e| Error(format!("{prog}: {e} (iproute2 is needed to wire networks)")))?;
    if !out.status.success() {
        return Err(Error(format!(
            "{prog} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn json(prog: &str, args: &[&str]) -> Result<Vec<Value>, Error> {
    let text = run(prog, args)?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(&text).map_err(|e| Error(format!("{prog} {}: {e}", args.join(" "))))
}

/// The namespace's Ethernet interfaces a guest could take, best first.
fn candidates() -> Result<Vec<Iface>, Error> {
    let mut list = Vec::new();
    for v in json("ip", &["-d", "-j", "addr", "show"])? {
        let name = v["ifname"].as_str().unwrap_or_default().to_string();
        let ether = v["link_type"].as_str() == Some("ether");
        let is_tap =
            v["linkinfo"]["info_kind"].as_str() == Some("tun") || name.starts_with("nabla");
        if !ether || is_tap || name.is_empty() {
            continue;
        }
        let ipv4 = v["addr_info"].as_array().and_then(|a| {
            a.iter()
                .find(|ai| ai["family"] == "inet" && ai["scope"] == "global")
                .map(|ai| format!("{}/{}", ai["local"].as_str().unwrap_or(""), ai["prefixlen"]))
        });
        list.push(Iface {
            index: v["ifindex"].as_u64().unwrap_or(u64::MAX),
            name,
            mac: v["address"].as_str().unwrap_or_default().to_string(),
            ipv4,
        });
    }
    list.sort_by_key(|i| (i.ipv4.is_none(), i.index));
    Ok(list)
}

/// Wires one interface per device in `devices`, in order, in the namespace
/// this process is in. The taps belong to `uid`/`gid`. On failure, what was
/// already set up is taken down again.
pub fn wire(devices: &[&str], uid: u32, gid: u32) -> Result<Vec<GuestNet>, Error> {
    let ifaces = candidates()?;
    if ifaces.len() < devices.len() {
        return Err(Error(format!(
            "the image declares net device{} {}, but the container's network namespace has {} Ethernet interface{} to wire (found: {})",
            if devices.len() == 1 { "" } else { "s" },
            devices.join(", "),
            if ifaces.is_empty() { "no".to_string() } else { format!("only {}", ifaces.len()) },
            if ifaces.len() == 1 { "" } else { "s" },
            if ifaces.is_empty() {
                "none".to_string()
            } else {
                ifaces.iter().map(|i| i.name.clone()).collect::<Vec<_>>().join(", ")
            },
        )));
    }
    let routes = json("ip", &["-j", "-4", "route", "show", "default"])?;
    let mut done: Vec<GuestNet> = Vec::new();
    for (i, (device, iface)) in devices.iter().zip(&ifaces).enumerate() {
        match wire_one(i, device, iface, &routes, uid, gid) {
            Ok(g) => done.push(g),
            Err(e) => {
                unwire(&done.iter().map(|g| g.wiring.clone()).collect::<Vec<_>>());
                return Err(e);
            }
        }
    }
    Ok(done)
}

fn wire_one(
    i: usize,
    device: &str,
    iface: &Iface,
    routes: &[Value],
    uid: u32,
    gid: u32,
) -> Result<GuestNet, Error> {
    let gateway = routes
        .iter()
        .find(|r| r["dev"].as_str() == Some(&iface.name))
        .and_then(|r| r["gateway"].as_str())
        .map(str::to_string);
    let gateway_mac = match &gateway {
        None => None,
        Some(gw) => json("ip", &["-j", "neigh", "show", "dev", &iface.name, "to", gw])?
            .iter()
            .find(|n| n["state"].as_array().is_some_and(|s| s.iter().any(|s| s == "PERMANENT")))
            .and_then(|n| n["lladdr"].as_str())
            .map(str::to_string),
    };
    let mtu = json("ip", &["-j", "link", "show", "dev", &iface.name])?
        .first()
        .and_then(|l| l["mtu"].as_u64())
        .unwrap_or(1500)
        .to_string();
    let qdiscs = run("tc", &["qdisc", "show", "dev", &iface.name, "ingress"])?;
    if !qdiscs.trim().is_empty() {
        let filters = run("tc", &["filter", "show", "dev", &iface.name, "parent", "ffff:"])?;
        if let Some(tap) = redirect_target(&filters).filter(|t| t.starts_with("nabla")) {
            return Err(Error(format!(
                "interface {} is already wired to another nabla guest (tap {tap}): a network namespace holds one networked nabla guest, which owns its interface's address; in a pod, a second container with a net device (a sidecar) cannot share it: give it no net device, or serve its part from the same guest (docs/kubernetes.md, Sidecars)",
                iface.name
            )));
        }
        return Err(Error(format!(
            "interface {} already has an ingress qdisc ({}): nabla-runc would replace it",
            iface.name,
            qdiscs.trim()
        )));
    }
    let tap = format!("nabla{i}");
    let wiring = Wiring { iface: iface.name.clone(), tap: tap.clone() };
    let (uid, gid) = (uid.to_string(), gid.to_string());
    let steps: [Vec<&str>; 7] = [
        vec!["ip", "tuntap", "add", "dev", &tap, "mode", "tap", "user", &uid, "group", &gid],
        vec!["ip", "link", "set", "dev", &tap, "mtu", &mtu, "up"],
        vec!["tc", "qdisc", "add", "dev", &iface.name, "ingress"],
        vec!["tc", "qdisc", "add", "dev", &tap, "ingress"],
        redirect(&iface.name, &tap),
        redirect(&tap, &iface.name),
        vec!["ip", "link", "set", "dev", &iface.name, "up"],
    ];
    for step in steps {
        if let Err(e) = run(step[0], &step[1..]) {
            unwire(std::slice::from_ref(&wiring));
            return Err(e);
        }
    }
    Ok(GuestNet {
        device: device.to_string(),
        wiring,
        mac: iface.mac.clone(),
        ipv4: iface.ipv4.clone(),
        gateway,
        gateway_mac,
    })
}

/// The device that a `tc filter show` listing redirects to, if any
/// (`... mirred (Egress Redirect to device nabla0) stolen`).
fn redirect_target(filters: &str) -> Option<String> {
    let at = filters.find("Redirect to device ")? + "Redirect to device ".len();
    let name: String =
        filters[at..].chars().take_while(|c| !c.is_whitespace() && *c != ')').collect();
    (!name.is_empty()).then_some(name)
}

/// `tc filter` arguments that send every frame arriving on `from` out of `to`.
fn redirect<'a>(from: &'a str, to: &'a str) -> Vec<&'a str> {
    vec![
        "tc", "filter", "add", "dev", from, "parent", "ffff:", "protocol", "all", "u32", "match",
        "u8", "0", "0", "action", "mirred", "egress", "redirect", "dev", to,
    ]
}

/// Takes down what `wire` set up, in the namespace this process is in.
/// Best effort: a part that is already gone is not an error.
pub fn unwire(wirings: &[Wiring]) {
    for w in wirings {
        let _ = run("ip", &["link", "del", "dev", &w.tap]);
        let _ = run("tc", &["qdisc", "del", "dev", &w.iface, "ingress"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redirect_target_is_read_from_tc_filter_show() {
        let listing = "filter protocol all pref 49152 u32 chain 0 \n\
            filter protocol all pref 49152 u32 chain 0 fh 800::800 order 2048 key ht 800 bkt 0 terminal flowid not_in_hw \n\
            \x20 match 00000000/00000000 at 0\n\
            \taction order 1: mirred (Egress Redirect to device nabla0) stolen\n\
            \tindex 1 ref 1 bind 1\n";
        assert_eq!(redirect_target(listing).as_deref(), Some("nabla0"));
        assert_eq!(redirect_target("filter protocol all pref 1 u32"), None);
        assert_eq!(redirect_target("mirred (Egress Redirect to device )"), None);
    }
}
