//! Devices: attaching what the image's manifest declares.
//!
//! Each device kind will be a module of the same shape: parse its option
//! (`--net NAME=IFACE`, `--block NAME=PATH`), attach (open and check the
//! host resource), contribute its seccomp rules (pinned to its fd) and its
//! boot-info entry. The tender attaches only devices the application
//! declared, and refuses to start a guest whose declared devices are not
//! all attached: a guest must never find a device missing at run time.
//!
//! This tender has no device kinds yet, so any declared device is refused
//! with a message that says so.

use abi::{DeviceInfo, DeviceKind, Manifest};

use crate::seccomp::Rule;

/// A declared device cannot be attached.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    /// The image declares a device that nothing attaches.
    #[error(
        "device `{name}` ({kind}) is declared by the image but not attached: this tender \
         cannot attach {kind} devices yet"
    )]
    Unsupported {
        /// Device name from the manifest.
        name: String,
        /// Its kind.
        kind: &'static str,
    },
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
}

/// Attaches every device `manifest` declares (validated by `image`).
pub fn attach(manifest: &Manifest) -> Result<Attached, DeviceError> {
    let attached = Attached::default();
    if let Some(entry) = manifest.entries().first() {
        let name = entry.name().unwrap_or("?").to_string();
        let kind = DeviceKind::from_raw(entry.kind).map_or("unknown", DeviceKind::as_str);
        return Err(DeviceError::Unsupported { name, kind });
    }
    Ok(attached)
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::DeviceDecl;

    #[test]
    fn no_devices_attach_to_nothing() {
        let a = attach(&Manifest::build(&[])).unwrap();
        assert!(a.infos.is_empty() && a.rules.is_empty());
        assert_eq!(a.pollable, 0);
    }

    #[test]
    fn a_declared_device_is_refused_by_name() {
        let m = Manifest::build(&[DeviceDecl { name: "service0", kind: DeviceKind::Net }]);
        assert_eq!(
            attach(&m).unwrap_err(),
            DeviceError::Unsupported { name: "service0".into(), kind: "net" }
        );
    }
}
