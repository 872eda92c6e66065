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
//! Every description open on a file shares one [`Node`] (found by the
//! file's entry, whatever name opened it), each with its own offset, so
//! that they see one length and one time. `unlink` and `rename` keep the
//! table right: a removed file's node is forgotten (its entry may be
//! reused by the next file), a moved file's node follows it, and so do
//! open directories and the working directory under a moved directory.

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::{Rc, Weak};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use libos::block::BlockDevice;
use libos::fs::FileSystem;

use super::node::{Directory, Node};
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
    /// The directories open as descriptors.
    dirs: Vec<Weak<Directory>>,
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
            // However the program ends, what it wrote reaches the disks,
            // as Linux's page cache keeps a process's writes past its end.
            libos::process::at_exit(write_back_at_end);
            Table {
                disks,
                root,
                others,
                cwd: String::from("/"),
                nodes: Vec::new(),
                dirs: Vec::new(),
            }
        });
        f(t)
    })
}

/// Calls `f` with the working directory, without allocating: `/` until
/// a path is first used (the table is made then).
pub fn peek_cwd<R>(f: impl FnOnce(&str) -> R) -> R {
    TABLE.with(|t| f(t.as_ref().map_or("/", |t| t.cwd.as_str())))
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
    match libos::fs::mount_with_cache(dev, cache_bytes()) {
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

/// The block cache of each disk, in bytes: `NABLA_FS_CACHE_KIB` from the
/// guest's environment (`--env`), from 32 KiB to 1 GiB; else
/// [`CACHE_KIB`]. (Measured: 256 KiB, 1 MiB and 4 MiB give the same times
/// for 5,000 files in one directory, whose entries take 160 KiB; the
/// host's page cache is behind it.)
fn cache_bytes() -> usize {
    let kib = libos::env::var("NABLA_FS_CACHE_KIB")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(CACHE_KIB)
        .clamp(32, 1 << 20);
    kib << 10
}

/// The default block cache per disk: libos's FAT's own default.
pub const CACHE_KIB: usize = 256;

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

/// Runs as the program ends, however it ends (libos's
/// `process::at_exit`: `exit` after the `atexit` handlers and the C
/// streams' flush, `_exit`, `abort`, a panic, the default action of
/// `SIGTERM` or `SIGINT`), as Linux keeps what a process wrote in its
/// page cache whichever way the process ends: writes back what shared
/// mappings of files hold, the directory entry of every file still open,
/// then everything each mounted disk's cache holds (the allocation table,
/// FSInfo's free count), and flushes the disks: the disks are left as
/// `fsck.fat` wants them, as an unmount leaves them.
///
/// Unless the program ended inside a file operation (a panic there, or
/// memory that ran out): then what that operation had half changed stays
/// off the disks, which keep what they held before, as after a kill.
fn write_back_at_end() {
    if in_use() {
        libos::console::write_all(
            b"libos-std: the program ended inside a file operation; its files were not written back\n",
        );
        return;
    }
    // Shared mappings' bytes first, as Linux writes dirty mapped pages.
    super::map::sync_all();
    let nodes: Vec<Rc<Node>> =
        with(|t| t.nodes.iter().filter_map(|(_, _, w)| w.upgrade()).collect());
    for n in nodes {
        let _ = n.flush();
    }
    let mounted: Vec<&'static FileSystem> = with(|t| {
        t.disks
            .iter()
            .filter_map(|d| match d.state {
                State::Mounted(fs) => Some(fs),
                _ => None,
            })
            .collect()
    });
    for fs in mounted {
        let _ = fs.sync();
    }
}

/// Whether a file operation is under way: the table, the mappings, an
/// open file or a mounted volume is held (only while a call runs: the
/// program's threads switch at blocking calls, never inside one).
fn in_use() -> bool {
    let held = TABLE.try_with(|t| {
        t.as_ref().is_some_and(|t| {
            t.nodes.iter().filter_map(|(_, _, w)| w.upgrade()).any(|n| n.in_use())
                || t.disks.iter().any(|d| matches!(d.state, State::Mounted(fs) if fs.in_use()))
        })
    });
    held.is_none_or(|held| held) || super::map::in_use()
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

/// Forgets the node open on entry `id` of disk `disk` (its file was
/// removed: the entry may be reused). Descriptions open on it keep it.
pub fn forget_node(disk: usize, id: u64) {
    with(|t| t.nodes.retain(|(d, i, w)| w.strong_count() > 0 && !(*d == disk && *i == id)));
}

/// Remembers the open directory `dir`, for [`renamed`] to move.
pub fn add_dir(dir: &Rc<Directory>) {
    with(|t| {
        t.dirs.retain(|w| w.strong_count() > 0);
        t.dirs.push(Rc::downgrade(dir));
    });
}

/// Follows a rename of `from` (entry `from_id`) to `to` (entry `to_id`),
/// both on one disk: the moved file's node is found by its new entry,
/// every node at or under `from` gets its new path, and so does every
/// open directory and the working directory at or under it (names compare
/// as FAT's do, ignoring ASCII case).
pub fn renamed(from: &Place, from_id: u64, to: &Place, to_id: u64) {
    let Some(disk) = from.disk else { return };
    let (nodes, dirs) = with(|t| {
        for (d, i, _) in t.nodes.iter_mut() {
            if *d == disk && *i == from_id {
                *i = to_id;
            }
        }
        if let Some(rest) = under(&t.cwd, &from.full) {
            t.cwd = format!("{}{rest}", to.full);
        }
        let nodes: Vec<Rc<Node>> = t
            .nodes
            .iter()
            .filter(|(d, _, _)| *d == disk)
            .filter_map(|(_, _, w)| w.upgrade())
            .collect();
        let dirs: Vec<Rc<Directory>> = t.dirs.iter().filter_map(Weak::upgrade).collect();
        (nodes, dirs)
    });
    for n in nodes {
        if let Some(rest) = under(&n.path(), &from.inner) {
            n.moved(format!("{}{rest}", to.inner));
        }
    }
    for d in dirs {
        d.follow(from, to);
    }
}

/// What follows `prefix` in `path` if `path` is `prefix` or lies under it
/// (ASCII case ignored), e.g. `/b.txt` for `/a/b.txt` under `/a`.
pub fn under<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    let head = path.get(..prefix.len())?;
    let rest = &path[prefix.len()..];
    (head.eq_ignore_ascii_case(prefix) && (rest.is_empty() || rest.starts_with('/')))
        .then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_a_renamed_directory_are_found_ignoring_case() {
        assert_eq!(under("/a/b.txt", "/A"), Some("/b.txt"));
        assert_eq!(under("/a", "/a"), Some(""));
        assert_eq!(under("/ab/c", "/a"), None);
        assert_eq!(under("/x", "/a"), None);
        assert_eq!(under("/", "/a/b"), None);
        assert_eq!(under("/é/x", "/é"), Some("/x"));
    }

    /// An end inside a file call (a panic while it holds the table or the
    /// mappings) is seen, so that the files are not written back then.
    /// (Only the held case: other tests may hold them at any moment.)
    #[test]
    fn an_end_inside_a_file_call_is_seen() {
        TABLE.with(|_| assert!(in_use()));
        super::super::map::holding(|| assert!(in_use()));
    }
}
