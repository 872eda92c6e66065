//! Moving names: `rename`, `renameat`, `renameat2`, over libos's FAT
//! (`FileSystem::rename`, files and directories, within and across
//! directories of one disk, replacing an existing file).
//!
//! The checks are Linux's (`do_renameat2`, `vfs_rename`), in its order:
//! the flags; both parents (`ENOENT`, `ENOTDIR`); two disks (`EXDEV`);
//! `.`, `..` or `/` as either name (`EBUSY`; `EEXIST` for the new name
//! with `RENAME_NOREPLACE`); a read-only disk (`EROFS`); the old name
//! (`ENOENT`); `RENAME_NOREPLACE` over an existing name (`EEXIST`); a
//! trailing `/` on a file (`ENOTDIR`); a directory moved under itself
//! (`EINVAL`) or a target above the source (`ENOTEMPTY`); then, when both
//! name one entry, nothing happens (as on Linux's vfat, where a rename
//! that changes only the case of a name finds the same file and does
//! nothing); a directory over a file (`ENOTDIR`), a file over a directory
//! (`EISDIR`), a mount point (`EBUSY`), a non-empty directory
//! (`ENOTEMPTY`). An empty directory is replaced, as Linux does.
//! `RENAME_EXCHANGE` and `RENAME_WHITEOUT` are `EINVAL` (FAT cannot swap
//! two entries atomically).
//!
//! Files open under the old name follow it (their nodes learn the new
//! path); an open directory's descriptor keeps the path it was opened by.

use super::{Target, mounts, node::errno, target_at};
use crate::libc::fd::{Res, ret_int};
use crate::libc::{c_char, c_int, c_uint};

/// `RENAME_NOREPLACE`: fail with `EEXIST` rather than replace.
pub const RENAME_NOREPLACE: c_uint = 1;
/// `RENAME_EXCHANGE`: swap the two names.
pub const RENAME_EXCHANGE: c_uint = 2;
/// `RENAME_WHITEOUT`: leave a whiteout (overlay file systems).
pub const RENAME_WHITEOUT: c_uint = 4;

/// How the new name relates to the old one in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ancestry {
    /// Neither is above the other.
    Apart,
    /// The old name is a directory above the new one (moving it into
    /// itself).
    OldAboveNew,
    /// The new name is a directory above the old one.
    NewAboveOld,
}

/// What a rename does once the checks pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Both names are one entry: nothing to do.
    Same,
    /// Move the entry (replacing a file at the new name, or an empty
    /// directory when the entry is one: libos's FAT does both in one
    /// step, `NotEmpty` for a directory that is not).
    Move,
}

/// Whether `renameat2` takes `flags`: 0 or `RENAME_NOREPLACE` (exchange
/// and whiteouts are not for FAT; unknown bits are `EINVAL` too).
fn flags_valid(flags: c_uint) -> bool {
    flags & !RENAME_NOREPLACE == 0
}

/// What `renameat2` decides, before touching the disk. `ancestry` is
/// asked only once the other checks have passed.
fn rename_check(
    flags: c_uint,
    old: &Target,
    new: &Target,
    ancestry: impl FnOnce() -> Res<Ancestry>,
) -> Res<Step> {
    use super::path::Last;
    if !flags_valid(flags) {
        return Err(::libc::EINVAL);
    }
    let noreplace = flags & RENAME_NOREPLACE != 0;
    if old.parent_disk != new.parent_disk {
        return Err(::libc::EXDEV);
    }
    if old.last != Last::Name {
        return Err(::libc::EBUSY);
    }
    if new.last != Last::Name {
        return Err(if noreplace { ::libc::EEXIST } else { ::libc::EBUSY });
    }
    if old.read_only {
        return Err(::libc::EROFS);
    }
    let Some(old_is_dir) = old.is_dir() else { return Err(::libc::ENOENT) };
    if noreplace && new.found.is_some() {
        return Err(::libc::EEXIST);
    }
    if !old_is_dir && (old.slash() || new.slash()) {
        return Err(::libc::ENOTDIR);
    }
    match ancestry()? {
        Ancestry::OldAboveNew => return Err(::libc::EINVAL),
        Ancestry::NewAboveOld => return Err(::libc::ENOTEMPTY),
        Ancestry::Apart => {}
    }
    let Some(new_is_dir) = new.is_dir() else {
        return if old.mount_point { Err(::libc::EBUSY) } else { Ok(Step::Move) };
    };
    if old.found.as_ref().map(|m| m.id) == new.found.as_ref().map(|m| m.id)
        && old.place.disk == new.place.disk
    {
        return Ok(Step::Same);
    }
    match (old_is_dir, new_is_dir) {
        (true, false) => Err(::libc::ENOTDIR),
        (false, true) => Err(::libc::EISDIR),
        _ if old.mount_point || new.mount_point => Err(::libc::EBUSY),
        _ => Ok(Step::Move),
    }
}

/// Where `new` lies relative to `old` (both on one disk), by the entries
/// of their ancestors: an alias (8.3 or other case) of a directory is the
/// same directory.
fn ancestry(old: &Target, new: &Target) -> Res<Ancestry> {
    let (Some(old_m), Some(disk)) = (&old.found, old.place.disk) else {
        return Ok(Ancestry::Apart);
    };
    if new.place.disk != Some(disk) {
        return Ok(Ancestry::Apart);
    }
    let fs = mounts::fs(disk)?;
    let above = |of: &str, id: u64| -> Res<bool> {
        let parts: alloc::vec::Vec<&str> = of.split('/').filter(|c| !c.is_empty()).collect();
        for k in 1..parts.len() {
            let prefix = super::path::join(&parts[..k]);
            match fs.metadata(&prefix) {
                Ok(m) if m.id == id => return Ok(true),
                Ok(_) => {}
                Err(e) => return Err(errno(e)),
            }
        }
        Ok(false)
    };
    if old_m.is_dir && above(&new.place.inner, old_m.id)? {
        return Ok(Ancestry::OldAboveNew);
    }
    if let Some(new_m) = &new.found
        && new_m.is_dir
        && above(&old.place.inner, new_m.id)?
    {
        return Ok(Ancestry::NewAboveOld);
    }
    Ok(Ancestry::Apart)
}

fn rename_targets(old: &Target, new: &Target, flags: c_uint) -> Res<c_int> {
    let step = rename_check(flags, old, new, || ancestry(old, new))?;
    let fs = old.fs()?;
    if step == Step::Same {
        return Ok(0);
    }
    fs.rename(&old.place.inner, &new.place.inner).map_err(errno)?;
    let disk = old.place.disk.ok_or(::libc::EROFS)?;
    if let Some(replaced) = &new.found {
        mounts::forget_node(disk, replaced.id);
    }
    if let Some(moved) = &old.found {
        // The entry's number after the move (its position may change).
        let to_id = fs.metadata(&new.place.inner).map_or(moved.id, |m| m.id);
        mounts::renamed(&old.place, moved.id, &new.place, to_id);
    }
    Ok(0)
}

/// `renameat2(olddirfd, old, newdirfd, new, flags)`: flags 0 or
/// `RENAME_NOREPLACE`.
///
/// # Safety
///
/// `old` and `new` are NUL-terminated strings.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn renameat2(
    olddirfd: c_int,
    old: *const c_char,
    newdirfd: c_int,
    new: *const c_char,
    flags: c_uint,
) -> c_int {
    // The flags come first, before either path is looked at.
    if !flags_valid(flags) {
        return crate::libc::fail(::libc::EINVAL);
    }
    // SAFETY: the caller guarantees NUL-terminated strings.
    let r = unsafe { target_at(olddirfd, old) }.and_then(|o| {
        // SAFETY: as above.
        let n = unsafe { target_at(newdirfd, new) }?;
        rename_targets(&o, &n, flags)
    });
    ret_int(r)
}

/// `renameat(olddirfd, old, newdirfd, new)`.
///
/// # Safety
///
/// `old` and `new` are NUL-terminated strings.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn renameat(
    olddirfd: c_int,
    old: *const c_char,
    newdirfd: c_int,
    new: *const c_char,
) -> c_int {
    // SAFETY: the same contract.
    unsafe { renameat2(olddirfd, old, newdirfd, new, 0) }
}

/// `rename(old, new)`: what `std::fs::rename` calls.
///
/// # Safety
///
/// `old` and `new` are NUL-terminated strings.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn rename(old: *const c_char, new: *const c_char) -> c_int {
    // SAFETY: the same contract.
    unsafe { renameat2(::libc::AT_FDCWD, old, ::libc::AT_FDCWD, new, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(raw: &str, found: Option<bool>) -> Target {
        super::super::test_target(raw, found, false)
    }

    fn check(flags: c_uint, old: &Target, new: &Target) -> Res<Step> {
        rename_check(flags, old, new, || Ok(Ancestry::Apart))
    }

    fn with_id(mut x: Target, id: u64) -> Target {
        if let Some(m) = &mut x.found {
            m.id = id;
        }
        x
    }

    #[test]
    fn renames_move_replace_or_do_nothing() {
        let file = |p| with_id(t(p, Some(false)), 1);
        let other = |p| with_id(t(p, Some(false)), 2);
        let dir = |p| with_id(t(p, Some(true)), 3);
        let dir2 = |p| with_id(t(p, Some(true)), 4);
        assert_eq!(check(0, &file("/a"), &t("/b", None)), Ok(Step::Move));
        assert_eq!(check(0, &file("/a"), &other("/b")), Ok(Step::Move));
        assert_eq!(check(0, &dir("/d"), &t("/e", None)), Ok(Step::Move));
        assert_eq!(check(0, &dir("/d"), &dir2("/e")), Ok(Step::Move));
        // One entry by two names (another case, an 8.3 alias): nothing.
        assert_eq!(check(0, &file("/a"), &file("/A")), Ok(Step::Same));
        assert_eq!(check(0, &dir("/d"), &dir("/d/")), Ok(Step::Same));
        assert_eq!(check(RENAME_NOREPLACE, &file("/a"), &t("/b", None)), Ok(Step::Move));
    }

    #[test]
    fn renames_fail_as_linux_does_in_its_order() {
        let file = |p| with_id(t(p, Some(false)), 1);
        let other = |p| with_id(t(p, Some(false)), 2);
        let dir = |p| with_id(t(p, Some(true)), 3);
        let none = |p| t(p, None);
        assert_eq!(check(RENAME_EXCHANGE, &file("/a"), &other("/b")), Err(::libc::EINVAL));
        assert_eq!(check(RENAME_WHITEOUT, &file("/a"), &other("/b")), Err(::libc::EINVAL));
        assert_eq!(check(8, &file("/a"), &other("/b")), Err(::libc::EINVAL));
        assert_eq!(
            check(RENAME_NOREPLACE | RENAME_EXCHANGE, &file("/a"), &none("/b")),
            Err(::libc::EINVAL)
        );
        let mut far = none("/data/b");
        far.parent_disk = Some(1);
        assert_eq!(check(0, &file("/a"), &far), Err(::libc::EXDEV));
        assert_eq!(check(0, &dir("/d/."), &none("/e")), Err(::libc::EBUSY));
        assert_eq!(check(0, &t("/", Some(true)), &none("/e")), Err(::libc::EBUSY));
        assert_eq!(check(0, &file("/a"), &dir("/d/..")), Err(::libc::EBUSY));
        assert_eq!(check(RENAME_NOREPLACE, &file("/a"), &dir("/d/.")), Err(::libc::EEXIST));
        let mut ro = none("/nope");
        ro.read_only = true;
        assert_eq!(check(0, &ro, &none("/b")), Err(::libc::EROFS));
        assert_eq!(check(0, &none("/nope"), &none("/b")), Err(::libc::ENOENT));
        assert_eq!(check(RENAME_NOREPLACE, &file("/a"), &other("/b")), Err(::libc::EEXIST));
        assert_eq!(check(RENAME_NOREPLACE, &file("/a"), &file("/A")), Err(::libc::EEXIST));
        assert_eq!(check(0, &file("/a/"), &none("/b")), Err(::libc::ENOTDIR));
        assert_eq!(check(0, &file("/a"), &none("/b/")), Err(::libc::ENOTDIR));
        assert_eq!(check(0, &dir("/d"), &none("/e/")), Ok(Step::Move));
        assert_eq!(check(0, &dir("/d"), &other("/b")), Err(::libc::ENOTDIR));
        assert_eq!(check(0, &file("/a"), &dir("/d")), Err(::libc::EISDIR));
        let into = rename_check(0, &dir("/d"), &none("/d/x"), || Ok(Ancestry::OldAboveNew));
        assert_eq!(into, Err(::libc::EINVAL));
        let above = rename_check(0, &file("/d/a"), &dir("/d"), || Ok(Ancestry::NewAboveOld));
        assert_eq!(above, Err(::libc::ENOTEMPTY));
        let mut mp = with_id(t("/data", Some(true)), 9);
        mp.mount_point = true;
        assert_eq!(check(0, &mp, &none("/e")), Err(::libc::EBUSY));
        assert_eq!(check(0, &dir("/d"), &mp), Err(::libc::EBUSY));
    }
}
