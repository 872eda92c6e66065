//! Devices: attaching what the image's manifest declares.
//!
//! Each device kind is a module of the same shape (Solo5's
//! `DECLARE_MODULE`): it parses its options, attaches (opens and checks the
//! host resource), and returns a [`Device`]: its boot-info entry, its
//! seccomp rules pinned to its fd, how many fds the guest may wait on, and
//! the fd itself. This module checks the options against the manifest and
//! hands each declared device to its kind.
//!
//! * `net` (`--net NAME=IFACE`, `--net NAME=fd:N`, `--net-mac NAME=MAC`):
//!   a tap; `tap` holds its host calls, `rtnl` reads what rtnetlink says
//!   about an interface.
//! * `block` (`--block NAME=PATH`, `--block-ro NAME=PATH`,
//!   `--block-sector-size NAME=BYTES`): a disk file; `disk` holds the host
//!   calls std does not wrap (`RLIMIT_FSIZE`, `fcntl`, `fstat`).
//!
//! The tender attaches only devices the application declared, and refuses
//! to start a guest whose declared devices are not all attached: a guest
//! must never find a device missing at run time.

mod block;
mod disk;
mod net;
mod rtnl;
mod tap;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use abi::{DeviceInfo, DeviceKind, Manifest};

pub use block::{BlockArgs, BlockError, FileSizeLimit};
pub use net::NetError;

use crate::seccomp::Rule;

/// An option refers to the wrong device, a declared device is not
/// attached, or a device cannot be attached.
/// A device option is not `NAME=VALUE` with a valid device name.
#[derive(Debug, thiserror::Error)]
pub enum OptionError {
    /// Not `NAME=VALUE`.
    #[error("{option} {value:?}: expected {expected}")]
    Syntax {
        /// The option, e.g. `--net` or `--block`.
        option: &'static str,
        /// The value as given.
        value: String,
        /// What the option takes.
        expected: &'static str,
    },
    /// `NAME` is not a valid device name.
    #[error("{option} {value:?}: `{name}` is not a device name: {reason}")]
    BadName {
        /// The option.
        option: &'static str,
        /// The value as given.
        value: String,
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: abi::NameError,
    },
}

/// Splits an option's `NAME=VALUE` and checks `NAME`; `expected` says what
/// the option takes, for the message.
pub fn split_option<'a>(
    option: &'static str,
    value: &'a str,
    expected: &'static str,
) -> Result<(&'a str, &'a str), OptionError> {
    let syntax = || OptionError::Syntax { option, value: value.to_string(), expected };
    let (name, rest) = value.split_once('=').ok_or_else(syntax)?;
    abi::check_name(name.as_bytes()).map_err(|reason| OptionError::BadName {
        option,
        value: value.to_string(),
        name: name.to_string(),
        reason,
    })?;
    Ok((name, rest))
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// An option names a device the image does not declare.
    #[error("{option}: device `{name}` is not declared by the image ({declared})")]
    NotDeclared {
        /// The option as given, e.g. `--net service1=tap0`.
        option: String,
        /// The device name.
        name: String,
        /// What the image declares, e.g. `it declares: service0 (net)`.
        declared: String,
    },
    /// An option for one kind names a device of another kind.
    #[error("{option}: device `{name}` is a {kind} device, not a {wanted} device")]
    WrongKind {
        /// The option as given.
        option: String,
        /// The device name.
        name: String,
        /// Its declared kind.
        kind: &'static str,
        /// The kind the option attaches.
        wanted: &'static str,
    },
    /// A declared device has no option attaching it.
    #[error("device `{name}` ({kind}) is declared by the image but not attached: {hint}")]
    NotAttached {
        /// The device name.
        name: String,
        /// Its kind.
        kind: &'static str,
        /// What to do about it, e.g. `use --net service0=IFACE`.
        hint: String,
    },
    /// A net device cannot be attached, or its options are malformed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A block device cannot be attached, or its options are malformed.
    #[error(transparent)]
    Block(#[from] BlockError),
}

/// The device options of one invocation, parsed but not yet checked
/// against the image.
#[derive(Debug, Clone, Default)]
pub struct Options {
    net: net::NetOptions,
    block: block::BlockOptions,
}

impl Options {
    /// Parses the `--net` and `--net-mac` values and the block options.
    pub fn parse(
        net: &[String],
        net_mac: &[String],
        block: &BlockArgs,
    ) -> Result<Self, DeviceError> {
        Ok(Self {
            net: net::NetOptions::parse(net, net_mac)?,
            block: block::BlockOptions::parse(block)?,
        })
    }

    /// Checks that every fd the caller passed (`fd:N`) is open. Call it
    /// before the tender opens any file of its own.
    pub fn check_fds_open(&self) -> Result<(), DeviceError> {
        Ok(self.net.check_fds_open()?)
    }

    /// Each device option with its kind: `(option as given, device name)`.
    fn named(&self) -> impl Iterator<Item = (String, &str, DeviceKind)> {
        let nets = self.net.specs.iter().map(|s| {
            (
                format!("{} {}={}", net::NET_OPTION, s.name, s.backend),
                s.name.as_str(),
                DeviceKind::Net,
            )
        });
        let blocks =
            self.block.specs.iter().map(|s| (s.option(), s.name.as_str(), DeviceKind::Block));
        nets.chain(blocks)
    }
}

/// The host fd behind an attached device.
#[derive(Debug)]
pub enum DeviceFd {
    /// Opened by the tender: open until the jump, closed if the tender
    /// gives up before it.
    Owned(OwnedFd),
    /// Handed over by the caller (`fd:N`): used as it is, never closed by
    /// the tender.
    Inherited(RawFd),
}

impl AsRawFd for DeviceFd {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Self::Owned(fd) => fd.as_raw_fd(),
            Self::Inherited(fd) => *fd,
        }
    }
}

/// One attached device, of any kind: what each kind's `attach` returns.
#[derive(Debug)]
pub struct Device {
    /// Its boot-info entry.
    pub info: DeviceInfo,
    /// The seccomp rules it needs, pinned to its fd.
    pub rules: Vec<Rule>,
    /// How many of its fds the guest may wait on in `ppoll`.
    pub pollable: u64,
    /// Its host fd.
    pub fd: DeviceFd,
}

/// The devices attached for one guest.
#[derive(Debug, Default)]
pub struct Attached {
    /// Boot-info entries, in manifest order.
    pub infos: Vec<DeviceInfo>,
    /// Seccomp rules the devices need.
    pub rules: Vec<Rule>,
    /// How many fds the guest may wait on in `ppoll`.
    pub pollable: u64,
    /// The devices' fds, kept open until the jump (the process then
    /// becomes the guest and never drops them).
    pub fds: Vec<DeviceFd>,
}

impl Attached {
    fn push(&mut self, device: Device) {
        self.infos.push(device.info);
        self.rules.extend(device.rules);
        self.pollable += device.pollable;
        self.fds.push(device.fd);
    }

    /// The file size limit the writable disks need (the largest capacity),
    /// if any disk is writable.
    pub fn file_size_limit(&self) -> Option<u64> {
        block::needed_file_size(&self.infos)
    }

    /// Sets `RLIMIT_FSIZE` to [`file_size_limit`](Self::file_size_limit),
    /// unless the console is a regular file. Call it last before sealing.
    pub fn limit_file_size(&self) -> Result<FileSizeLimit, DeviceError> {
        Ok(block::limit_file_size(&self.infos)?)
    }
}

/// `it declares: service0 (net), storage (block)`, or `it declares no devices`.
fn declared(manifest: &Manifest) -> String {
    let entries = manifest.entries();
    if entries.is_empty() {
        return "it declares no devices".to_string();
    }
    let list: Vec<String> = entries
        .iter()
        .map(|e| format!("{} ({})", e.name().unwrap_or("?"), kind_name(e.kind)))
        .collect();
    format!("it declares: {}", list.join(", "))
}

fn kind_name(raw: u32) -> &'static str {
    DeviceKind::from_raw(raw).map_or("unknown", DeviceKind::as_str)
}

/// Checks `options` against what `manifest` (validated by `image`)
/// declares, then attaches every declared device, in manifest order.
pub fn attach(manifest: &Manifest, options: &Options) -> Result<Attached, DeviceError> {
    let entries = manifest.entries();
    for (option, name, wanted) in options.named() {
        let Some(entry) = entries.iter().find(|e| e.name() == Ok(name)) else {
            return Err(DeviceError::NotDeclared {
                option,
                name: name.to_string(),
                declared: declared(manifest),
            });
        };
        if entry.kind != wanted as u32 {
            return Err(DeviceError::WrongKind {
                option,
                name: name.to_string(),
                kind: kind_name(entry.kind),
                wanted: wanted.as_str(),
            });
        }
    }
    let mut attached = Attached::default();
    let mut disks = block::AttachedFiles::default();
    for entry in entries {
        let name = entry.name().unwrap_or("?");
        let not_attached = |hint: String| DeviceError::NotAttached {
            name: name.to_string(),
            kind: kind_name(entry.kind),
            hint,
        };
        match DeviceKind::from_raw(entry.kind) {
            Some(DeviceKind::Net) => {
                let spec = options
                    .net
                    .get(name)
                    .ok_or_else(|| not_attached(format!("use {} {name}=IFACE", net::NET_OPTION)))?;
                attached.push(net::attach(spec)?);
            }
            Some(DeviceKind::Block) => {
                let spec = options.block.get(name).ok_or_else(|| {
                    not_attached(format!("use {} {name}=PATH", block::BLOCK_OPTION))
                })?;
                attached.push(block::attach(spec, &mut disks)?);
            }
            None => {
                // Unreachable: `image` validated the manifest's kinds.
                return Err(not_attached("this tender does not know its kind".to_string()));
            }
        }
    }
    Ok(attached)
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::DeviceDecl;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn options(net: &[&str], macs: &[&str]) -> Options {
        Options::parse(&s(net), &s(macs), &BlockArgs::default()).unwrap()
    }

    fn block_options(block: &[&str], ro: &[&str]) -> Options {
        let args = BlockArgs { block: s(block), block_ro: s(ro), sector_size: vec![] };
        Options::parse(&[], &[], &args).unwrap()
    }

    fn net_and_block() -> Manifest {
        Manifest::build(&[
            DeviceDecl { name: "service0", kind: DeviceKind::Net },
            DeviceDecl { name: "storage", kind: DeviceKind::Block },
        ])
    }

    #[test]
    fn no_devices_attach_to_nothing() {
        let a = attach(&Manifest::build(&[]), &Options::default()).unwrap();
        assert!(a.infos.is_empty() && a.rules.is_empty() && a.fds.is_empty());
        assert_eq!(a.pollable, 0);
    }

    #[test]
    fn a_declared_net_device_without_net_is_refused_with_a_hint() {
        let m = Manifest::build(&[DeviceDecl { name: "service0", kind: DeviceKind::Net }]);
        assert_eq!(
            attach(&m, &Options::default()).unwrap_err().to_string(),
            "device `service0` (net) is declared by the image but not attached: use --net \
             service0=IFACE"
        );
    }

    #[test]
    fn a_declared_block_device_without_block_is_refused_with_a_hint() {
        let m = Manifest::build(&[DeviceDecl { name: "storage", kind: DeviceKind::Block }]);
        assert_eq!(
            attach(&m, &Options::default()).unwrap_err().to_string(),
            "device `storage` (block) is declared by the image but not attached: use --block \
             storage=PATH"
        );
    }

    #[test]
    fn block_options_for_the_wrong_devices_are_refused() {
        let e = attach(&net_and_block(), &block_options(&["service0=d.img"], &[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--block service0=d.img: device `service0` is a net device, not a block device"
        );
        let e = attach(&net_and_block(), &block_options(&[], &["disk=d.img"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--block-ro disk=d.img: device `disk` is not declared by the image (it declares: \
             service0 (net), storage (block))"
        );
    }

    #[test]
    fn a_declared_disk_is_attached_with_its_rules() {
        let path = std::env::temp_dir().join(format!("tender-devices-{}", std::process::id()));
        std::fs::File::create(&path).unwrap().set_len(1 << 20).unwrap();
        let m = Manifest::build(&[DeviceDecl { name: "storage", kind: DeviceKind::Block }]);
        let attached =
            attach(&m, &block_options(&[&format!("storage={}", path.display())], &[])).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(attached.infos.len(), 1);
        assert_eq!(attached.infos[0].capacity, 1 << 20);
        assert_eq!(attached.rules.len(), 11);
        assert_eq!(attached.pollable, 0);
        assert_eq!(attached.file_size_limit(), Some(1 << 20));
    }

    #[test]
    fn options_for_undeclared_devices_are_refused_with_the_declared_list() {
        let e = attach(&net_and_block(), &options(&["service1=tap0"], &[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--net service1=tap0: device `service1` is not declared by the image (it declares: \
             service0 (net), storage (block))"
        );
        let e = attach(&Manifest::build(&[]), &options(&["a=fd:5"], &[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--net a=fd:5: device `a` is not declared by the image (it declares no devices)"
        );
    }

    #[test]
    fn net_options_for_block_devices_are_refused() {
        let e = attach(&net_and_block(), &options(&["storage=tap0"], &[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--net storage=tap0: device `storage` is a block device, not a net device"
        );
    }
}
