//! Net devices: a tap interface on the host for each net device the image
//! declares.
//!
//! * `--net NAME=IFACE` attaches the existing tap `IFACE`, which must be up:
//!   the tender checks that it exists and is up (`SIOCGIFINDEX`,
//!   `SIOCGIFFLAGS`) and that it is a single-queue tap (rtnetlink), opens
//!   `/dev/net/tun` (non-blocking, close-on-exec), attaches it with
//!   `TUNSETIFF` (`IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`), checks the name the
//!   kernel answers, sets the virtio-net header's length
//!   (`TUNSETVNETHDRSZ`, [`abi::VNET_HDR_LEN`]) and the offloads
//!   (`TUNSETOFFLOAD`: checksums and TCPv4 segmentation), reads the MTU
//!   (`SIOCGIFMTU`) and waits until the kernel reports the tap running
//!   (`wait_running`).
//! * `--net NAME=fd:N` takes a tap the caller already attached on fd `N`
//!   (a container runtime): `TUNGETIFF` must report a tap, rtnetlink that
//!   its frames carry no packet-information header; the tender checks its
//!   interface as above, sets `O_NONBLOCK` on it and the offloads as above
//!   if it was attached with `IFF_VNET_HDR` (the header's length too), none
//!   if not: the offloads belong to the interface and outlive whoever set
//!   them. The fd is used as it is, not duplicated.
//! * `--net-mac NAME=MAC` sets the guest's MAC address. By default it is
//!   derived from the host, the network namespace, the tap's interface and
//!   the device (see [`derived_mac`]): locally administered, the same every
//!   time a guest runs on that tap, so that a restarted guest keeps its
//!   DHCP lease, and different for another tap or device.
//!
//! With virtio-net headers ([`abi::DEVICE_FLAG_VNET_HDR`] in the boot
//! info) TCP bursts of up to 64 KiB cross the tap in one `read` or `write`,
//! cut into segments and checksummed by the host (the way a VM's virtio
//! NIC works): bulk transfers cost a system call per 64 KiB rather than
//! per frame. A caller's tap without them still works, a frame per call.
//!
//! Each tap contributes two seccomp rules pinned to its fd, `read` (receive)
//! and `write` (transmit), and one fd the guest may wait on with `ppoll`.
//!
//! The interface is looked up in the tender's own network namespace: run
//! the tender in the namespace of its taps (`ip netns exec`, `nsenter`).

use std::fmt;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use abi::{DeviceInfo, DeviceKind};

use super::{Device, DeviceFd};
use super::{rtnl, tap};

/// The option that attaches a net device.
pub const NET_OPTION: &str = "--net";
/// The option that sets a net device's MAC address.
pub const MAC_OPTION: &str = "--net-mac";

/// Longest interface name Linux accepts (`IFNAMSIZ` less the NUL).
const IFACE_NAME_MAX: usize = 15;

/// Where a net device's tap comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `IFACE`: an existing tap interface the tender attaches by name.
    Iface(String),
    /// `fd:N`: a tap the caller attached and left open on fd `N`.
    Fd(RawFd),
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Iface(iface) => f.write_str(iface),
            Self::Fd(fd) => write!(f, "fd:{fd}"),
        }
    }
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

/// Why a `--net-mac` value is not a usable MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacError {
    /// Not six hex octets separated by colons.
    Syntax,
    /// Bit 0 of the first octet is set: a multicast (or the broadcast)
    /// address, which no interface may have.
    Multicast,
    /// `00:00:00:00:00:00`.
    Zero,
}

impl fmt::Display for MacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Syntax => "expected six hex octets separated by colons, like 02:00:00:00:00:01",
            Self::Multicast => {
                "a multicast or broadcast address (bit 0 of the first octet is set) cannot be an \
                 interface's address"
            }
            Self::Zero => "the all-zero address cannot be an interface's address",
        })
    }
}

impl Mac {
    /// Parses `aa:bb:cc:dd:ee:ff` (hex digits in either case, one or two
    /// per octet) and refuses addresses no interface may have.
    pub fn parse(s: &str) -> Result<Self, MacError> {
        let mut mac = [0u8; 6];
        let mut parts = s.split(':');
        for octet in &mut mac {
            let part = parts.next().ok_or(MacError::Syntax)?;
            if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(MacError::Syntax);
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| MacError::Syntax)?;
        }
        if parts.next().is_some() {
            return Err(MacError::Syntax);
        }
        if mac[0] & 1 != 0 {
            return Err(MacError::Multicast);
        }
        if mac == [0; 6] {
            return Err(MacError::Zero);
        }
        Ok(Self(mac))
    }

    /// A locally administered unicast address from six random (or
    /// hashed) bytes: the multicast bit cleared, the local bit set.
    pub fn local_from(mut bytes: [u8; 6]) -> Self {
        bytes[0] = (bytes[0] | 0x02) & !0x01;
        Self(bytes)
    }
}

/// What identifies the host, for [`derived_mac`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostId {
    /// `/etc/machine-id`: the installation, across reboots.
    MachineId(String),
    /// `/proc/sys/kernel/random/boot_id`, on a host without a machine id:
    /// this boot only.
    BootId(String),
}

/// Where [`HostId::read`] finds the machine id.
const MACHINE_ID: &str = "/etc/machine-id";
/// The boot id, for a host without a machine id.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
/// The tender's network namespace.
const NETNS: &str = "/proc/self/ns/net";

impl HostId {
    /// The machine id, else the boot id, else `None` (neither readable nor
    /// well-formed: an unset machine id reads `uninitialized` or is empty).
    pub fn read() -> Option<Self> {
        let read = |path| std::fs::read_to_string(path).ok();
        Self::from_files(read(MACHINE_ID).as_deref(), read(BOOT_ID).as_deref())
    }

    /// [`read`](Self::read) on the files' contents, if readable.
    fn from_files(machine_id: Option<&str>, boot_id: Option<&str>) -> Option<Self> {
        let hex = |s: &str, len| {
            s.len() == len
                && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
                && s.bytes().any(|b| b != b'0' && b != b'-')
        };
        if let Some(id) = machine_id.map(str::trim).filter(|id| hex(id, 32)) {
            return Some(Self::MachineId(id.to_ascii_lowercase()));
        }
        let id = boot_id.map(str::trim).filter(|id| hex(id, 36))?;
        Some(Self::BootId(id.to_ascii_lowercase()))
    }
}

/// The inode number of the tender's network namespace (`st_ino` of
/// `/proc/self/ns/net`): the same for as long as the namespace exists, and
/// for the host's initial namespace a constant of the kernel's.
pub fn netns_id() -> Option<u64> {
    std::fs::metadata(NETNS).ok().map(|m| m.ino())
}

/// The default MAC of device `device` on the tap `iface`: the first six
/// bytes of a SHA-256 of the host's identity, the network namespace's,
/// the interface's name and the device's name, made locally administered
/// and unicast. A fixed hash, never std's `DefaultHasher`, whose output may
/// change with the compiler: the address must survive an upgrade.
///
/// The same guest restarted on the same tap gets the same MAC, so a DHCP
/// server gives it the same lease (with a one-address range, the only
/// one). Another tap, namespace, host or device gets another MAC. The
/// image is not an input: a new build of a service on its tap is the same
/// service, and keeps its address. systemd derives interfaces' MACs the
/// same way (a hash of the machine id and the interface's name), and
/// neither reveals the machine id.
pub fn derived_mac(host: &HostId, netns: Option<u64>, iface: &str, device: &str) -> Mac {
    let mut h = Sha256::new();
    // Each field with its length, so that no two inputs hash alike.
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(b"nabla tender default MAC, v1");
    match host {
        HostId::MachineId(id) => field(format!("machine-id {id}").as_bytes()),
        HostId::BootId(id) => field(format!("boot-id {id}").as_bytes()),
    }
    match netns {
        Some(ino) => field(&ino.to_le_bytes()),
        None => field(b""),
    }
    field(iface.as_bytes());
    field(device.as_bytes());
    let digest = h.finalize();
    let mut bytes = [0; 6];
    bytes.copy_from_slice(&digest[..6]);
    Mac::local_from(bytes)
}

/// One `--net` option, with its `--net-mac` if there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetSpec {
    /// The device name.
    pub name: String,
    /// The tap.
    pub backend: Backend,
    /// `--net-mac`, if given.
    pub mac: Option<Mac>,
}

impl NetSpec {
    /// The option as given, for messages: `--net service0=tap0`.
    fn option(&self) -> String {
        format!("{NET_OPTION} {}={}", self.name, self.backend)
    }
}

/// The net devices of one invocation, in command-line order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetOptions {
    /// One per `--net`.
    pub specs: Vec<NetSpec>,
}

/// A net option is malformed, or a tap cannot be attached.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Not `NAME=VALUE` with a valid device name.
    #[error(transparent)]
    Option(#[from] super::OptionError),
    /// `IFACE` cannot be an interface name.
    #[error("{NET_OPTION} {name}={iface}: `{iface}` is not an interface name: {reason}")]
    BadInterface {
        /// The device.
        name: String,
        /// The interface name as given.
        iface: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `fd:N` with `N` not a descriptor number.
    #[error("{NET_OPTION} {name}={value}: expected fd:N with N a file descriptor number")]
    BadFd {
        /// The device.
        name: String,
        /// The value as given.
        value: String,
    },
    /// `fd:1` or `fd:2`.
    #[error(
        "{NET_OPTION} {name}=fd:{fd}: fd {fd} is the guest's console (stdout or stderr), not a \
         tap: pass the tap on fd 3 or above"
    )]
    ConsoleFd {
        /// The device.
        name: String,
        /// The fd.
        fd: RawFd,
    },
    /// Two `--net` for one device.
    #[error("{NET_OPTION} is given twice for device `{name}`")]
    Duplicate {
        /// The device.
        name: String,
    },
    /// Two `--net-mac` for one device.
    #[error("{MAC_OPTION} is given twice for device `{name}`")]
    DuplicateMac {
        /// The device.
        name: String,
    },
    /// Two devices on one tap.
    #[error("{NET_OPTION}: devices `{first}` and `{second}` are both given {backend}")]
    SharedTap {
        /// The earlier device.
        first: String,
        /// The later device.
        second: String,
        /// The interface or fd.
        backend: Backend,
    },
    /// `--net-mac` for a device with no `--net`.
    #[error("{MAC_OPTION} {name}={mac}: device `{name}` has no {NET_OPTION}")]
    MacWithoutNet {
        /// The device.
        name: String,
        /// The MAC as given.
        mac: String,
    },
    /// The `--net-mac` value is not usable.
    #[error("{MAC_OPTION} {name}={value}: `{value}` is not a usable MAC address: {reason}")]
    BadMac {
        /// The device.
        name: String,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: MacError,
    },
    /// `fd:N` names a descriptor that is not open.
    #[error("{NET_OPTION} {name}=fd:{fd}: fd {fd} is not open")]
    FdNotOpen {
        /// The device.
        name: String,
        /// The fd.
        fd: RawFd,
    },
    /// `fd:N` is not an attached tap (`TUNGETIFF` failed or reports a tun).
    #[error("{NET_OPTION} {name}=fd:{fd}: fd {fd} is not a tap device")]
    FdNotTap {
        /// The device.
        name: String,
        /// The fd.
        fd: RawFd,
    },
    /// `fd:N` is a tap whose frames carry a header the guest does not expect.
    #[error(
        "{NET_OPTION} {name}=fd:{fd}: fd {fd} (interface {iface}) is a tap with {what}: attach \
         it with IFF_NO_PI"
    )]
    FdHeaders {
        /// The device.
        name: String,
        /// The fd.
        fd: RawFd,
        /// Its interface.
        iface: String,
        /// Which header.
        what: &'static str,
    },
    /// Setting `O_NONBLOCK` on `fd:N` failed.
    #[error("{NET_OPTION} {name}=fd:{fd}: cannot make fd {fd} non-blocking: {source}")]
    FdNonBlocking {
        /// The device.
        name: String,
        /// The fd.
        fd: RawFd,
        /// The host's error.
        source: std::io::Error,
    },
    /// No interface by that name in the tender's network namespace.
    #[error("{option}: interface {iface} does not exist{hint}")]
    NoInterface {
        /// The option as given.
        option: String,
        /// The interface.
        iface: String,
        /// For `fd:N`: the tap is in another network namespace.
        hint: &'static str,
    },
    /// The interface is down.
    #[error("{option}: interface {iface} is down: `ip link set {iface} up`")]
    Down {
        /// The option as given.
        option: String,
        /// The interface.
        iface: String,
    },
    /// The interface is not a tap (a tun, a veth, a bridge, ...).
    #[error("{option}: interface {iface} is not a tap device")]
    NotTap {
        /// The option as given.
        option: String,
        /// The interface.
        iface: String,
    },
    /// A multi-queue tap: `TUNSETIFF` without `IFF_MULTI_QUEUE` cannot
    /// attach it.
    #[error(
        "{option}: interface {iface} is a multi-queue tap: create it without multi_queue \
         (`ip tuntap add dev {iface} mode tap`)"
    )]
    MultiQueue {
        /// The option as given.
        option: String,
        /// The interface.
        iface: String,
    },
    /// Another process has the tap attached.
    #[error("{option}: interface {iface} is busy: another process has it attached")]
    Busy {
        /// The option as given.
        option: String,
        /// The interface.
        iface: String,
    },
    /// No permission to attach the tap.
    #[error(
        "{option}: no permission to attach interface {iface}: run as root, or as the tap's owner \
         (`ip tuntap add dev {iface} mode tap user USER`) with access to /dev/net/tun"
    )]
    Permission {
        /// The option as given.
        option: String,
        /// The interface.
        iface: String,
    },
    /// `/dev/net/tun` cannot be opened.
    #[error("{option}: cannot open /dev/net/tun: {source}{hint}")]
    OpenTun {
        /// The option as given.
        option: String,
        /// The host's error.
        source: std::io::Error,
        /// What to do about it, if we know.
        hint: &'static str,
    },
    /// A host call about the interface failed unexpectedly.
    #[error("{option}: interface {iface}: {call} failed: {source}")]
    Host {
        /// The option as given.
        option: String,
        /// The interface.
        iface: String,
        /// The call, e.g. `TUNSETIFF`.
        call: &'static str,
        /// The host's error.
        source: std::io::Error,
    },
    /// `TUNSETIFF` attached another interface than the one asked for.
    #[error("{option}: the kernel attached interface {got} instead of {iface}")]
    NameMismatch {
        /// The option as given.
        option: String,
        /// The interface asked for.
        iface: String,
        /// The interface attached.
        got: String,
    },
    /// No random bytes for a MAC address.
    #[error("device `{name}`: cannot draw a random MAC address: {source}")]
    Random {
        /// The device.
        name: String,
        /// The host's error.
        source: std::io::Error,
    },
}

/// Checks an interface name as Linux would (`dev_valid_name`).
fn check_iface(iface: &str) -> Result<(), &'static str> {
    if iface.is_empty() {
        return Err("empty interface name");
    }
    if iface.len() > IFACE_NAME_MAX {
        return Err("interface names are at most 15 bytes");
    }
    if iface == "." || iface == ".." {
        return Err("`.` and `..` are not interface names");
    }
    if iface.bytes().any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace()) {
        return Err("interface names cannot contain `/`, `:`, NUL or white space");
    }
    Ok(())
}

/// Splits `NAME=VALUE` and checks `NAME`.
fn split<'a>(
    option: &'static str,
    value: &'a str,
    expected: &'static str,
) -> Result<(&'a str, &'a str), NetError> {
    Ok(super::split_option(option, value, expected)?)
}

impl NetOptions {
    /// Parses the `--net` and `--net-mac` values, in command-line order.
    /// Whether each device is declared is checked later, against the image.
    pub fn parse(nets: &[String], macs: &[String]) -> Result<Self, NetError> {
        let mut specs: Vec<NetSpec> = Vec::with_capacity(nets.len());
        for value in nets {
            let (name, rest) = split(NET_OPTION, value, "NAME=IFACE or NAME=fd:N")?;
            let backend = match rest.strip_prefix("fd:") {
                Some(n) => {
                    let bad =
                        || NetError::BadFd { name: name.to_string(), value: rest.to_string() };
                    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(bad());
                    }
                    let fd: RawFd = n.parse().map_err(|_| bad())?;
                    if fd == 1 || fd == 2 {
                        return Err(NetError::ConsoleFd { name: name.to_string(), fd });
                    }
                    Backend::Fd(fd)
                }
                None => {
                    check_iface(rest).map_err(|reason| NetError::BadInterface {
                        name: name.to_string(),
                        iface: rest.to_string(),
                        reason,
                    })?;
                    Backend::Iface(rest.to_string())
                }
            };
            if let Some(other) = specs.iter().find(|s| s.name == name) {
                return Err(NetError::Duplicate { name: other.name.clone() });
            }
            if let Some(other) = specs.iter().find(|s| s.backend == backend) {
                return Err(NetError::SharedTap {
                    first: other.name.clone(),
                    second: name.to_string(),
                    backend,
                });
            }
            specs.push(NetSpec { name: name.to_string(), backend, mac: None });
        }
        for value in macs {
            let (name, mac) = split(MAC_OPTION, value, "NAME=MAC")?;
            let Some(spec) = specs.iter_mut().find(|s| s.name == name) else {
                return Err(NetError::MacWithoutNet {
                    name: name.to_string(),
                    mac: mac.to_string(),
                });
            };
            if spec.mac.is_some() {
                return Err(NetError::DuplicateMac { name: name.to_string() });
            }
            spec.mac = Some(Mac::parse(mac).map_err(|reason| NetError::BadMac {
                name: name.to_string(),
                value: mac.to_string(),
                reason,
            })?);
        }
        Ok(Self { specs })
    }

    /// The option for device `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&NetSpec> {
        self.specs.iter().find(|s| s.name == name)
    }

    /// Checks that every `fd:N` is open. Called before the tender opens
    /// anything itself, so that a descriptor the caller did not pass is
    /// reported as such rather than mistaken for one of the tender's own.
    pub fn check_fds_open(&self) -> Result<(), NetError> {
        for spec in &self.specs {
            if let Backend::Fd(fd) = spec.backend
                && !tap::fd_is_open(fd)
            {
                return Err(NetError::FdNotOpen { name: spec.name.clone(), fd });
            }
        }
        Ok(())
    }
}

/// The seccomp rules for a tap on `fd` attached as device `name`: its
/// `read` and `write` (`seccomp::tap_rules`, shared with the build script).
pub use crate::seccomp::tap_rules as rules;

/// The boot-info entry for a tap; `vnet_hdr`: its frames carry virtio-net
/// headers.
pub fn info(name: &str, fd: RawFd, mtu: u32, mac: Mac, vnet_hdr: bool) -> DeviceInfo {
    let mut info = DeviceInfo {
        name: [0; abi::DEVICE_NAME_MAX + 1],
        kind: DeviceKind::Net as u32,
        fd,
        mtu,
        sector_size: 0,
        capacity: 0,
        mac: mac.0,
        flags: if vnet_hdr { abi::DEVICE_FLAG_VNET_HDR } else { 0 },
    };
    let bytes = name.as_bytes();
    let len = bytes.len().min(abi::DEVICE_NAME_MAX);
    info.name[..len].copy_from_slice(&bytes[..len]);
    info
}

/// Attaches the tap `spec` names as net device `spec.name`.
pub fn attach(spec: &NetSpec) -> Result<Device, NetError> {
    let option = spec.option();
    let ifs = tap::Interfaces::new().map_err(|source| NetError::Host {
        option: option.clone(),
        iface: spec.backend.to_string(),
        call: "socket(AF_INET, SOCK_DGRAM)",
        source,
    })?;
    let (fd, iface, vnet_hdr) = match &spec.backend {
        Backend::Iface(iface) => {
            (DeviceFd::Owned(open_by_name(&option, iface, &ifs)?), iface.clone(), true)
        }
        Backend::Fd(fd) => {
            let iface = check_passed_fd(spec, *fd)?;
            check_interface(&option, &iface, &ifs, true)?;
            let vnet_hdr = check_passed_tap(spec, *fd, &iface)?;
            (DeviceFd::Inherited(*fd), iface, vnet_hdr)
        }
    };
    let host = |call, source| NetError::Host {
        option: option.clone(),
        iface: iface.clone(),
        call,
        source,
    };
    let raw = fd.as_raw_fd();
    if vnet_hdr {
        tap::set_vnet_hdr_len(raw, abi::VNET_HDR_LEN).map_err(|e| host("TUNSETVNETHDRSZ", e))?;
    }
    tap::set_offload(raw, vnet_hdr).map_err(|e| host("TUNSETOFFLOAD", e))?;
    let mtu = ifs.mtu(&iface).map_err(|e| host("SIOCGIFMTU", e))?;
    wait_running(&ifs, &iface);
    drop(ifs);
    let mac = match (spec.mac, HostId::read()) {
        (Some(mac), _) => mac,
        (None, Some(host)) => derived_mac(&host, netns_id(), &iface, &spec.name),
        // Nothing stable to derive it from (no /etc, no /proc).
        (None, None) => {
            let mut bytes = [0; 6];
            tap::random_bytes(&mut bytes)
                .map_err(|source| NetError::Random { name: spec.name.clone(), source })?;
            Mac::local_from(bytes)
        }
    };
    Ok(Device {
        info: info(&spec.name, raw, mtu, mac, vnet_hdr),
        rules: rules(&spec.name, raw),
        pollable: 1,
        fd,
    })
}

/// How long [`wait_running`] waits at most: the kernel handles a carrier
/// change within a second (`linkwatch`), at once for this one when it
/// is not busy.
const RUNNING_WAIT: Duration = Duration::from_secs(1);

/// Waits (at most [`RUNNING_WAIT`]) until the kernel reports `iface`
/// running (`IFF_RUNNING`): attaching a tap raises its carrier, and until
/// the kernel has handled that (`linkwatch` activates the interface's
/// queue, then reports it running) whatever the host sends to the guest is
/// dropped. A guest that started at once lost the host's answer to its
/// first ARP request now and then, and waited a second for its next one
/// (a DNS lookup with `timeout:1` asked again; the std_dns suite saw it in
/// about 5 % of its runs). An interface not running after the wait (no
/// carrier for another reason) is used as it is; the guest copes as a
/// Linux host does with a link that is not ready.
fn wait_running(ifs: &tap::Interfaces, iface: &str) {
    let deadline = Instant::now() + RUNNING_WAIT;
    while ifs.flags(iface).is_ok_and(|f| f & libc::IFF_RUNNING == 0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Checks that `iface` exists and is up; `passed` says it came from a
/// caller's fd (the hint for a missing interface differs).
fn check_interface(
    option: &str,
    iface: &str,
    ifs: &tap::Interfaces,
    passed: bool,
) -> Result<(), NetError> {
    let host = |call, source| NetError::Host {
        option: option.to_string(),
        iface: iface.to_string(),
        call,
        source,
    };
    if ifs.index(iface).map_err(|e| host("SIOCGIFINDEX", e))?.is_none() {
        let hint = if passed {
            " in the tender's network namespace: run the tender in the tap's namespace"
        } else {
            ""
        };
        return Err(NetError::NoInterface {
            option: option.to_string(),
            iface: iface.to_string(),
            hint,
        });
    }
    let flags = ifs.flags(iface).map_err(|e| host("SIOCGIFFLAGS", e))?;
    if flags & libc::IFF_UP == 0 {
        return Err(NetError::Down { option: option.to_string(), iface: iface.to_string() });
    }
    Ok(())
}

/// What rtnetlink says about `iface`: `None` if it is not a tun or tap.
fn tun_link(option: &str, iface: &str) -> Result<Option<rtnl::Tun>, NetError> {
    let host = |source| NetError::Host {
        option: option.to_string(),
        iface: iface.to_string(),
        call: "rtnetlink RTM_GETLINK",
        source,
    };
    let answer = tap::rtnetlink(&rtnl::request(iface, 1)).map_err(host)?;
    match rtnl::parse(&answer, 1) {
        Ok(rtnl::Answer::Link(link)) => Ok(link.tun),
        Ok(rtnl::Answer::Error(libc::ENODEV)) => Err(NetError::NoInterface {
            option: option.to_string(),
            iface: iface.to_string(),
            hint: "",
        }),
        Ok(rtnl::Answer::Error(errno)) => Err(host(std::io::Error::from_raw_os_error(errno))),
        Err(e) => Err(host(std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))),
    }
}

/// Checks `iface` and attaches it: exists, is up, is a (single-queue) tap,
/// then `TUNSETIFF`.
fn open_by_name(
    option: &str,
    iface: &str,
    ifs: &tap::Interfaces,
) -> Result<std::os::fd::OwnedFd, NetError> {
    check_interface(option, iface, ifs, false)?;
    let not_tap = || NetError::NotTap { option: option.to_string(), iface: iface.to_string() };
    // Tell a tap from a tun, a veth or a bridge before touching it (with
    // TUNSETIFF's EINVAL as the backstop).
    match tun_link(option, iface)? {
        Some(tun) if tun.tap && tun.multi_queue => {
            return Err(NetError::MultiQueue {
                option: option.to_string(),
                iface: iface.to_string(),
            });
        }
        Some(tun) if tun.tap => {}
        _ => return Err(not_tap()),
    }
    let tun = tap::open_tun().map_err(|source| {
        let hint = match source.raw_os_error() {
            Some(libc::EACCES) | Some(libc::EPERM) => {
                ": run as root, or as a user with access to /dev/net/tun who owns the tap"
            }
            Some(libc::ENOENT) | Some(libc::ENODEV) => ": is the tun module loaded?",
            _ => "",
        };
        NetError::OpenTun { option: option.to_string(), source, hint }
    })?;
    let got = tap::set_iff(&tun, iface).map_err(|source| match source.raw_os_error() {
        Some(libc::EBUSY) => {
            NetError::Busy { option: option.to_string(), iface: iface.to_string() }
        }
        Some(libc::EPERM) | Some(libc::EACCES) => {
            NetError::Permission { option: option.to_string(), iface: iface.to_string() }
        }
        Some(libc::EINVAL) => not_tap(),
        _ => NetError::Host {
            option: option.to_string(),
            iface: iface.to_string(),
            call: "TUNSETIFF",
            source,
        },
    })?;
    if got != iface {
        return Err(NetError::NameMismatch {
            option: option.to_string(),
            iface: iface.to_string(),
            got,
        });
    }
    Ok(tun)
}

/// Checks that the caller's `fd:N` is an attached tap; returns its
/// interface's name.
fn check_passed_fd(spec: &NetSpec, fd: RawFd) -> Result<String, NetError> {
    let name = || spec.name.clone();
    if !tap::fd_is_open(fd) {
        return Err(NetError::FdNotOpen { name: name(), fd });
    }
    let (iface, flags) = tap::get_iff(fd).map_err(|_| NetError::FdNotTap { name: name(), fd })?;
    if flags & tap::IFF_TAP == 0 || flags & tap::IFF_TUN != 0 {
        return Err(NetError::FdNotTap { name: name(), fd });
    }
    Ok(iface)
}

/// Checks the frame format of the tap behind the caller's `fd:N`, as
/// rtnetlink reports it for `iface`, and makes the fd non-blocking.
/// Returns whether its frames carry virtio-net headers.
fn check_passed_tap(spec: &NetSpec, fd: RawFd, iface: &str) -> Result<bool, NetError> {
    let name = || spec.name.clone();
    let headers = |what| NetError::FdHeaders { name: name(), fd, iface: iface.to_string(), what };
    let vnet_hdr = match tun_link(&spec.option(), iface)? {
        Some(tun) if tun.pi => return Err(headers("packet information (IFF_NO_PI is not set)")),
        Some(tun) if tun.tap => tun.vnet_hdr,
        _ => return Err(NetError::FdNotTap { name: name(), fd }),
    };
    tap::set_nonblocking(fd).map_err(|source| NetError::FdNonBlocking {
        name: name(),
        fd,
        source,
    })?;
    Ok(vnet_hdr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn parse(nets: &[&str], macs: &[&str]) -> Result<NetOptions, NetError> {
        NetOptions::parse(&strings(nets), &strings(macs))
    }

    fn err(nets: &[&str], macs: &[&str]) -> String {
        parse(nets, macs).unwrap_err().to_string()
    }

    #[test]
    fn macs_parse_in_either_case() {
        assert_eq!(Mac::parse("02:00:00:00:00:01"), Ok(Mac([2, 0, 0, 0, 0, 1])));
        assert_eq!(Mac::parse("AA:bb:Cc:0:1:ff"), Ok(Mac([0xaa, 0xbb, 0xcc, 0, 1, 0xff])));
        assert_eq!(Mac([0xaa, 0xbb, 0xcc, 0, 1, 0xff]).to_string(), "aa:bb:cc:00:01:ff");
    }

    #[test]
    fn bad_macs_are_refused_with_the_reason() {
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "02:00:00:00:00:",
            "02-00-00-00-00-01",
            "020:00:00:00:00:01",
            "0g:00:00:00:00:01",
            "+2:00:00:00:00:01",
            "02:00:00:00:00:01 ",
        ] {
            assert_eq!(Mac::parse(bad), Err(MacError::Syntax), "{bad:?}");
        }
        assert_eq!(Mac::parse("01:00:5e:00:00:01"), Err(MacError::Multicast));
        assert_eq!(Mac::parse("ff:ff:ff:ff:ff:ff"), Err(MacError::Multicast));
        assert_eq!(Mac::parse("00:00:00:00:00:00"), Err(MacError::Zero));
    }

    #[test]
    fn random_macs_are_local_unicast() {
        for first in [0x00, 0x01, 0xff, 0xfe, 0x03] {
            let mac = Mac::local_from([first, 1, 2, 3, 4, 5]);
            assert_eq!(mac.0[0] & 0x03, 0x02, "{mac}");
            assert_eq!(&mac.0[1..], &[1, 2, 3, 4, 5]);
        }
    }

    fn machine(id: &str) -> HostId {
        HostId::MachineId(id.into())
    }

    const ID: &str = "3d1219c7c4c5404aaa1f6d2a48adfda4";

    #[test]
    fn derived_macs_are_stable() {
        let mac = derived_mac(&machine(ID), Some(4026531833), "tap0", "service0");
        assert_eq!(mac, derived_mac(&machine(ID), Some(4026531833), "tap0", "service0"));
        // Fixed for good: the same inputs give the same MAC whatever the
        // compiler, so that a guest keeps its lease across upgrades. (The
        // value was checked against Python's hashlib.sha256 over the
        // fields as docs/networking.md lists them.)
        assert_eq!(mac.to_string(), "42:06:13:29:ee:e2");
    }

    #[test]
    fn derived_macs_differ_per_input_and_are_local_unicast() {
        let macs = [
            derived_mac(&machine(ID), Some(1), "tap0", "service0"),
            derived_mac(&machine(ID), Some(1), "tap1", "service0"),
            derived_mac(&machine(ID), Some(1), "tap0", "service1"),
            derived_mac(&machine(ID), Some(2), "tap0", "service0"),
            derived_mac(&machine(ID), None, "tap0", "service0"),
            derived_mac(&machine("3d1219c7c4c5404aaa1f6d2a48adfda5"), Some(1), "tap0", "service0"),
            derived_mac(&HostId::BootId(ID.into()), Some(1), "tap0", "service0"),
            // Fields are delimited: moving a byte from one to the next
            // changes the MAC.
            derived_mac(&machine(ID), Some(1), "tap0s", "ervice0"),
        ];
        for (i, a) in macs.iter().enumerate() {
            assert_eq!(a.0[0] & 0x03, 0x02, "{a} must be locally administered unicast");
            for b in &macs[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Bit rules hold whatever the hash's first byte: many inputs.
        for n in 0..512u64 {
            let mac = derived_mac(&machine(ID), Some(n), "tap0", "service0");
            assert_eq!(mac.0[0] & 0x03, 0x02, "{mac}");
            assert_eq!(Mac::parse(&mac.to_string()), Ok(mac), "a usable --net-mac");
        }
    }

    #[test]
    fn the_host_is_its_machine_id_else_its_boot_id() {
        let boot = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        assert_eq!(HostId::from_files(Some(&format!("{ID}\n")), Some(boot)), Some(machine(ID)));
        assert_eq!(
            HostId::from_files(Some("3D1219C7C4C5404AAA1F6D2A48ADFDA4"), None),
            Some(machine(ID))
        );
        // Unset, empty, malformed or missing: the boot id.
        for bad in [None, Some(""), Some("uninitialized\n"), Some(&"0".repeat(32)), Some("abc")] {
            assert_eq!(
                HostId::from_files(bad, Some(&format!("{boot}\n"))),
                Some(HostId::BootId(boot.into())),
                "{bad:?}"
            );
        }
        assert_eq!(HostId::from_files(None, None), None);
        assert_eq!(HostId::from_files(Some("x"), Some("not a uuid")), None);
    }

    #[test]
    fn this_hosts_identity_and_namespace_are_readable() {
        // Where the tests run (Linux with /proc), the default MAC is
        // derived, not random.
        assert!(HostId::read().is_some());
        assert!(netns_id().is_some());
    }

    #[test]
    fn options_parse_by_name_and_fd() {
        let o = parse(&["service0=tap0", "admin=fd:7"], &["admin=02:00:00:00:00:09"]).unwrap();
        assert_eq!(
            o.specs,
            [
                NetSpec {
                    name: "service0".into(),
                    backend: Backend::Iface("tap0".into()),
                    mac: None
                },
                NetSpec {
                    name: "admin".into(),
                    backend: Backend::Fd(7),
                    mac: Some(Mac([2, 0, 0, 0, 0, 9]))
                },
            ]
        );
        assert_eq!(o.get("admin").unwrap().option(), "--net admin=fd:7");
        assert!(o.get("storage").is_none());
        assert_eq!(parse(&[], &[]).unwrap(), NetOptions::default());
        assert_eq!(parse(&["a=fd:0"], &[]).unwrap().specs[0].backend, Backend::Fd(0));
    }

    #[test]
    fn malformed_options_name_the_option() {
        assert_eq!(err(&["service0"], &[]), "--net \"service0\": expected NAME=IFACE or NAME=fd:N");
        assert_eq!(
            err(&["Service=tap0"], &[]),
            "--net \"Service=tap0\": `Service` is not a \
             device name: device name must match [a-z][a-z0-9_]*"
        );
        assert_eq!(
            err(&["service0=averyveryverylongname"], &[]),
            "--net service0=averyveryverylongname: `averyveryverylongname` is not an interface \
             name: interface names are at most 15 bytes"
        );
        assert!(err(&["service0="], &[]).contains("empty interface name"));
        assert!(err(&["service0=a/b"], &[]).contains("cannot contain `/`"));
        assert!(err(&["service0=.."], &[]).contains("not interface names"));
        for bad in ["fd:", "fd:x", "fd:-1", "fd:99999999999"] {
            assert_eq!(
                err(&[&format!("service0={bad}")], &[]),
                format!("--net service0={bad}: expected fd:N with N a file descriptor number")
            );
        }
        assert!(err(&["service0=fd:1"], &[]).contains("fd 1 is the guest's console"));
        assert!(err(&["service0=fd:2"], &[]).contains("fd 2 is the guest's console"));
        assert_eq!(err(&[], &["service0"]), "--net-mac \"service0\": expected NAME=MAC");
    }

    #[test]
    fn duplicates_and_orphans_are_refused() {
        assert_eq!(
            err(&["service0=tap0", "service0=tap1"], &[]),
            "--net is given twice for device `service0`"
        );
        assert_eq!(
            err(&["a=tap0", "b=tap0"], &[]),
            "--net: devices `a` and `b` are both given tap0"
        );
        assert_eq!(
            err(&["a=fd:5", "b=fd:5"], &[]),
            "--net: devices `a` and `b` are both given fd:5"
        );
        assert_eq!(
            err(&["a=tap0"], &["b=02:00:00:00:00:01"]),
            "--net-mac b=02:00:00:00:00:01: device `b` has no --net"
        );
        assert_eq!(
            err(&["a=tap0"], &["a=02:00:00:00:00:01", "a=02:00:00:00:00:02"]),
            "--net-mac is given twice for device `a`"
        );
    }

    #[test]
    fn bad_mac_options_name_the_device_and_value() {
        assert_eq!(
            err(&["service0=tap0"], &["service0=01:00:5e:00:00:01"]),
            "--net-mac service0=01:00:5e:00:00:01: `01:00:5e:00:00:01` is not a usable MAC \
             address: a multicast or broadcast address (bit 0 of the first octet is set) cannot \
             be an interface's address"
        );
        assert!(err(&["service0=tap0"], &["service0=zz"]).contains("expected six hex octets"));
        assert!(err(&["service0=tap0"], &["service0=0:0:0:0:0:0"]).contains("all-zero"));
    }

    #[test]
    fn rules_pin_read_and_write_to_the_tap_fd() {
        let r = rules("service0", 4);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].to_string(), "read(arg0 == 4)");
        assert_eq!(r[0].why, "net receive on tap fd 4 (service0)");
        assert_eq!(r[1].to_string(), "write(arg0 == 4)");
        assert_eq!(r[1].why, "net transmit on tap fd 4 (service0)");
    }

    #[test]
    fn info_carries_name_fd_mtu_and_mac() {
        let i = info("service0", 5, 9000, Mac([2, 0, 0, 0, 0, 1]), false);
        assert_eq!(&i.name[..9], b"service0\0");
        assert_eq!((i.kind, i.fd, i.mtu, i.mac), (1, 5, 9000, [2, 0, 0, 0, 0, 1]));
        assert_eq!((i.sector_size, i.capacity, i.flags), (0, 0, 0));
        let i = info("service0", 5, 1500, Mac([2, 0, 0, 0, 0, 1]), true);
        assert_eq!(i.flags, abi::DEVICE_FLAG_VNET_HDR);
    }

    #[test]
    fn attach_errors_name_the_option_and_interface() {
        let option = "--net service0=tap0".to_string();
        let e = NetError::Down { option: option.clone(), iface: "tap0".into() };
        assert_eq!(
            e.to_string(),
            "--net service0=tap0: interface tap0 is down: `ip link set tap0 up`"
        );
        let e = NetError::NoInterface { option: option.clone(), iface: "tap0".into(), hint: "" };
        assert_eq!(e.to_string(), "--net service0=tap0: interface tap0 does not exist");
        let e = NetError::NotTap { option, iface: "tap0".into() };
        assert_eq!(e.to_string(), "--net service0=tap0: interface tap0 is not a tap device");
        let e = NetError::FdNotTap { name: "service0".into(), fd: 0 };
        assert_eq!(e.to_string(), "--net service0=fd:0: fd 0 is not a tap device");
        let e = NetError::FdNotOpen { name: "service0".into(), fd: 9 };
        assert_eq!(e.to_string(), "--net service0=fd:9: fd 9 is not open");
    }

    #[test]
    fn passed_fds_that_are_not_taps_are_refused() {
        let spec = NetSpec { name: "service0".into(), backend: Backend::Fd(0), mac: None };
        let null = std::fs::File::open("/dev/null").unwrap();
        let fd = null.as_raw_fd();
        assert!(
            matches!(check_passed_fd(&spec, fd), Err(NetError::FdNotTap { fd: f, .. }) if f == fd)
        );
        // Far above any descriptor limit: never open.
        assert!(matches!(check_passed_fd(&spec, 1 << 30), Err(NetError::FdNotOpen { .. })));
    }
}
