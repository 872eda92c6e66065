//! The disks and the working directory: which file system a path is on,
//! each mounted at its first use, and the files open on each.
//!
//! The disks are the block devices the program declared (and the tender
//! therefore attached), placed by [`super::path`]'s rule. A disk is
//! mounted when a path first reaches it; a disk that holds no FAT volume
//! (or a corrupt one) is reported once on the console and gives `EIO` to
//! every call that reaches it. A mounted file system lives as long as the
//! program (it is leaked, so that open files can borrow it for
//! `'static`).
//!
//! embedded-sdmmc allows one handle per file, so every description open on
//! a file shares one [`Node`] (found by the file's entry, whatever name
//! opened it), each with its own offset.

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::{Rc, Weak};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use libos::block::BlockDevice;
use libos::fs::FileSystem;

use super::node::Node;
use super::path::{self, Normal};
use crate::libc::c_int;
use crate::libc::start::Lock;

enum State {
    Unmounted(BlockDevice),
    Mounted(&'static FileSystem),
    Failed,
    /// Being mounted (taken out of the table meanwhile).
    Busy,
}

struct Disk {
    name: String,
    state: State,
}

struct Table {
    disks: Vec<Disk>,
    /// The root disk's index in `disks`.
    root: Option<usize>,
    /// The other disks: (name, index in `disks`).
    others: Vec<(String, usize)>,
    cwd: String,
    nodes: Vec<(usize, u64, Weak<Node>)>,
}

static TABLE: Lock<Option<Table>> = Lock::new(None);

fn with<R>(f: impl FnOnce(&mut Table) -> R) -> R {
    TABLE.with(|t| {
        let t = t.get_or_insert_with(|| {
            let devices = libos::block::devices();
            let names: Vec<&str> = devices.iter().map(BlockDevice::name).collect();
            let root = path::root_disk(&names);
            let others = names
                .iter()
                .enumerate()
                .filter(|&(i, _)| Some(i) != root)
                .map(|(i, n)| (n.to_string(), i))
                .collect();
            let disks = devices
                .into_iter()
                .map(|d| Disk { name: d.name().to_string(), state: State::Unmounted(d) })
                .collect();
            // Files still open at exit get their directory entries
            // written back, as Linux's files keep what was written.
            // SAFETY: flush_at_exit may be called with any argument, at exit.
            unsafe {
                crate::libc::start::__cxa_atexit(
                    flush_at_exit,
                    core::ptr::null_mut(),
                    core::ptr::null_mut(),
                );
            }
            Table { disks, root, others, cwd: String::from("/"), nodes: Vec::new() }
        });
        f(t)
    })
}

/// Where a path lies.
#[derive(Debug, Clone)]
pub struct Place {
    /// The disk (an index of the table), `None` if the program has no disk.
    pub disk: Option<usize>,
    /// The path on that disk's file system.
    pub inner: String,
    /// The whole normalised path.
    pub full: String,
    /// The path is the root directory `/`.
    pub is_root: bool,
}

/// The disk and inner path of a normalised path.
pub fn place(n: &Normal) -> Place {
    with(|t| {
        let names: Vec<&str> = t.others.iter().map(|(n, _)| n.as_str()).collect();
        let (other, inner) = path::resolve(&n.parts, &names);
        let disk = match other {
            Some(i) => Some(t.others[i].1),
            None => t.root,
        };
        Place { disk, inner: path::join(inner), full: n.text(), is_root: n.parts.is_empty() }
    })
}

/// The names of the disks mounted under `/` (they appear in its listing).
pub fn mount_points() -> Vec<String> {
    with(|t| t.others.iter().map(|(n, _)| n.clone()).collect())
}

/// The file system on disk `disk`, mounted now if it is not yet.
pub fn fs(disk: usize) -> Result<&'static FileSystem, c_int> {
    let taken = with(|t| {
        let d = &mut t.disks[disk];
        match core::mem::replace(&mut d.state, State::Busy) {
            State::Mounted(fs) => {
                d.state = State::Mounted(fs);
                Ok(Err(fs))
            }
            State::Unmounted(dev) => Ok(Ok((dev, d.name.clone()))),
            State::Failed | State::Busy => {
                d.state = State::Failed;
                Err(::libc::EIO)
            }
        }
    })?;
    let (dev, name) = match taken {
        Err(fs) => return Ok(fs),
        Ok(x) => x,
    };
    let at = with(|t| if t.root == Some(disk) { String::from("/") } else { format!("/{name}") });
    match libos::fs::mount(dev) {
        Ok(fs) => {
            let fs: &'static FileSystem = Box::leak(Box::new(fs));
            with(|t| t.disks[disk].state = State::Mounted(fs));
            Ok(fs)
        }
        Err(e) => {
            libos::console::write_all(
                format!("libos-std: cannot mount disk {name} at {at}: {e}\n").as_bytes(),
            );
            with(|t| t.disks[disk].state = State::Failed);
            Err(::libc::EIO)
        }
    }
}

/// The device number of a disk (`st_dev`): distinct per disk, 0 for none.
pub fn dev(disk: Option<usize>) -> u64 {
    disk.map_or(0, |d| d as u64 + 1)
}

/// The working directory, normalised.
pub fn cwd() -> String {
    with(|t| t.cwd.clone())
}

/// Sets the working directory (normalised and checked by the caller).
pub fn set_cwd(dir: String) {
    with(|t| t.cwd = dir);
}

/// Writes back the directory entry of every file still open.
extern "C" fn flush_at_exit(_: *mut core::ffi::c_void) {
    let nodes: Vec<Rc<Node>> =
        with(|t| t.nodes.iter().filter_map(|(_, _, w)| w.upgrade()).collect());
    for n in nodes {
        let _ = n.flush();
    }
}

/// The node open on entry `id` of disk `disk`, if any.
pub fn node(disk: usize, id: u64) -> Option<Rc<Node>> {
    with(|t| {
        t.nodes.retain(|(_, _, w)| w.strong_count() > 0);
        t.nodes.iter().find(|(d, i, _)| *d == disk && *i == id).and_then(|(_, _, w)| w.upgrade())
    })
}

/// Remembers `node` as the one open on entry `id` of disk `disk`.
pub fn add_node(disk: usize, id: u64, node: &Rc<Node>) {
    with(|t| t.nodes.push((disk, id, Rc::downgrade(node))));
}
