//! Paths, lexically: normalisation against the working directory, and the
//! rule that maps a normalised path to a disk.
//!
//! A path is absolute, or relative to the working directory. `.` and empty
//! components are dropped and `..` removes the component before it,
//! without looking at the disk (there are no symbolic links to follow) and
//! never above `/`. The result is the list of components of an absolute
//! path. A path that ends in `/` (or `/.`, `/..`) must name a directory.
//!
//! Disks: the root disk (the block device named `storage` if the program
//! declared one, else the first block device it declared) is `/`; every
//! other block device is mounted at `/NAME`, its name, which hides a
//! directory of that name on the root disk. Names are matched exactly
//! (device names are case-sensitive); names on a FAT disk are not.

use alloc::string::String;
use alloc::vec::Vec;

use super::super::c_int;

/// Linux's `PATH_MAX`, with its NUL.
pub const PATH_MAX: usize = 4096;

/// A normalised absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normal {
    /// Its components, none empty, `.` or `..`.
    pub parts: Vec<String>,
    /// The path ended in `/`, `/.` or `/..`: it must be a directory.
    pub dir: bool,
}

impl Normal {
    /// The path as text: `/` and the components.
    pub fn text(&self) -> String {
        join(&self.parts)
    }
}

/// What the last component of a path is, before normalisation: Linux
/// refuses to remove or rename `.`, `..` and `/` with errors of their own
/// (`rmdir("x/.")` is `EINVAL`, `rmdir("x/..")` `ENOTEMPTY`, `rmdir("/")`
/// `EBUSY`), which the normalised path no longer shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Last {
    /// A name (possibly followed by `/`).
    Name,
    /// `.`
    Dot,
    /// `..`
    DotDot,
    /// The path is only slashes.
    Root,
}

/// The kind of the last component of `path` (trailing slashes ignored).
pub fn last_of(path: &[u8]) -> Last {
    let trimmed = match path.iter().rposition(|&b| b != b'/') {
        Some(end) => &path[..=end],
        None if path.is_empty() => return Last::Name,
        None => return Last::Root,
    };
    let last = trimmed.rsplit(|&b| b == b'/').next().unwrap_or(trimmed);
    match last {
        b"." => Last::Dot,
        b".." => Last::DotDot,
        _ => Last::Name,
    }
}

/// The parent directory of a normalised path that has a last component.
pub fn parent(n: &Normal) -> Option<Normal> {
    let (_, parents) = n.parts.split_last()?;
    Some(Normal { parts: parents.to_vec(), dir: true })
}

/// `/a/b` from `["a", "b"]`; `/` from none.
pub fn join<S: AsRef<str>>(parts: &[S]) -> String {
    if parts.is_empty() {
        return String::from("/");
    }
    let mut s = String::new();
    for p in parts {
        s.push('/');
        s.push_str(p.as_ref());
    }
    s
}

/// Normalises `path` against the working directory `cwd` (itself absolute
/// and normal). Errors: `ENOENT` for an empty path, `ENAMETOOLONG` past
/// `PATH_MAX`, `EINVAL` for a path that is not UTF-8 (FAT names are
/// Unicode).
pub fn normalise(cwd: &str, path: &[u8]) -> Result<Normal, c_int> {
    if path.is_empty() {
        return Err(::libc::ENOENT);
    }
    if path.len() >= PATH_MAX {
        return Err(::libc::ENAMETOOLONG);
    }
    let path = core::str::from_utf8(path).map_err(|_| ::libc::EINVAL)?;
    let mut parts: Vec<String> = Vec::new();
    if !path.starts_with('/') {
        parts.extend(cwd.split('/').filter(|c| !c.is_empty()).map(String::from));
    }
    let mut dir = false;
    for c in path.split('/') {
        dir = matches!(c, "" | "." | "..");
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => {
                if c.len() > 255 {
                    return Err(::libc::ENAMETOOLONG);
                }
                parts.push(String::from(c));
            }
        }
    }
    // A lone "/" or "." names the root or the working directory: a
    // directory, which the flag need not say.
    Ok(Normal { parts, dir })
}

/// A normalised absolute path as text (`/a/b`), in a buffer of its own:
/// what [`normalise`] gives, without allocating. The calls that a global
/// allocator makes while it initialises (`readlink`, `open`, `stat` of a
/// configuration file) decide with it what they can before anything
/// allocates (see `docs/std.md`, "Global allocators").
#[derive(Debug)]
pub struct Flat {
    buf: [u8; PATH_MAX],
    len: usize,
    /// As [`Normal::dir`].
    pub dir: bool,
}

impl Flat {
    /// The path: `/` and the components.
    pub fn text(&self) -> &[u8] {
        if self.len == 0 { b"/" } else { &self.buf[..self.len] }
    }

    /// Its first component, if any.
    pub fn first(&self) -> Option<&[u8]> {
        self.text()[1..].split(|&b| b == b'/').next().filter(|c| !c.is_empty())
    }

    fn push(&mut self, c: &[u8]) -> Result<(), c_int> {
        if self.len + 1 + c.len() >= PATH_MAX {
            return Err(::libc::ENAMETOOLONG);
        }
        self.buf[self.len] = b'/';
        self.buf[self.len + 1..self.len + 1 + c.len()].copy_from_slice(c);
        self.len += 1 + c.len();
        Ok(())
    }

    fn pop(&mut self) {
        self.len = self.buf[..self.len].iter().rposition(|&b| b == b'/').unwrap_or(0);
    }
}

/// [`normalise`] into a [`Flat`]: the same path and the same errors,
/// without allocating.
pub fn normalise_flat(cwd: &str, path: &[u8]) -> Result<Flat, c_int> {
    if path.is_empty() {
        return Err(::libc::ENOENT);
    }
    if path.len() >= PATH_MAX {
        return Err(::libc::ENAMETOOLONG);
    }
    let path = core::str::from_utf8(path).map_err(|_| ::libc::EINVAL)?;
    let mut f = Flat { buf: [0; PATH_MAX], len: 0, dir: false };
    if !path.starts_with('/') {
        for c in cwd.split('/').filter(|c| !c.is_empty()) {
            f.push(c.as_bytes())?;
        }
    }
    for c in path.split('/') {
        f.dir = matches!(c, "" | "." | "..");
        match c {
            "" | "." => {}
            ".." => f.pop(),
            _ => {
                if c.len() > 255 {
                    return Err(::libc::ENAMETOOLONG);
                }
                f.push(c.as_bytes())?;
            }
        }
    }
    Ok(f)
}

/// Which disk a normalised path lies on: `Some(i)` for the `i`-th of the
/// other disks' names `others` (its first component names it), `None` for
/// the root disk; and the path's components inside that disk.
pub fn resolve<'p, S: AsRef<str>>(
    parts: &'p [String],
    others: &[S],
) -> (Option<usize>, &'p [String]) {
    if let Some(first) = parts.first()
        && let Some(i) = others.iter().position(|o| o.as_ref() == first)
    {
        return (Some(i), &parts[1..]);
    }
    (None, parts)
}

/// The root disk among the block devices `names`, in declaration order:
/// `storage`, else the first.
pub fn root_disk<S: AsRef<str>>(names: &[S]) -> Option<usize> {
    names.iter().position(|n| n.as_ref() == "storage").or(if names.is_empty() {
        None
    } else {
        Some(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(cwd: &str, p: &str) -> Result<(String, bool), c_int> {
        normalise(cwd, p.as_bytes()).map(|n| (n.text(), n.dir))
    }

    #[test]
    fn paths_are_normalised_lexically_and_never_leave_the_root() {
        assert_eq!(n("/", "/a/b/c.txt"), Ok(("/a/b/c.txt".into(), false)));
        assert_eq!(n("/", "a//./b/"), Ok(("/a/b".into(), true)));
        assert_eq!(n("/", "/a/../b"), Ok(("/b".into(), false)));
        assert_eq!(n("/", "/../../etc/passwd"), Ok(("/etc/passwd".into(), false)));
        assert_eq!(n("/", ".."), Ok(("/".into(), true)));
        assert_eq!(n("/", "/"), Ok(("/".into(), true)));
        assert_eq!(n("/docs", "x.txt"), Ok(("/docs/x.txt".into(), false)));
        assert_eq!(n("/docs/sub", "../../../x"), Ok(("/x".into(), false)));
        assert_eq!(n("/docs", "/y"), Ok(("/y".into(), false)));
        assert_eq!(n("/docs", "."), Ok(("/docs".into(), true)));
        assert_eq!(n("/docs", "a/.."), Ok(("/docs".into(), true)));
    }

    #[test]
    fn bad_paths_get_linux_errors() {
        assert_eq!(n("/", ""), Err(::libc::ENOENT));
        assert_eq!(n("/", &"a/".repeat(2048)), Err(::libc::ENAMETOOLONG));
        assert_eq!(n("/", &"x".repeat(256)), Err(::libc::ENAMETOOLONG));
        assert_eq!(normalise("/", b"/\xff").map(|_| ()), Err(::libc::EINVAL));
    }

    #[test]
    fn the_flat_normalisation_agrees_with_the_allocating_one() {
        let cwds = ["/", "/docs", "/docs/sub"];
        let paths = [
            "/a/b/c.txt",
            "a//./b/",
            "/a/../b",
            "/../../etc/passwd",
            "..",
            "/",
            ".",
            "x.txt",
            "../../../x",
            "a/..",
            "/proc/self/exe",
            "/etc/malloc.conf",
            "",
            "a/./b/../c/",
        ];
        let long = "a/".repeat(2048);
        let name = "x".repeat(256);
        for cwd in cwds {
            for p in paths.iter().copied().chain([long.as_str(), name.as_str()]) {
                let a = normalise(cwd, p.as_bytes()).map(|n| (n.text().into_bytes(), n.dir));
                let b = normalise_flat(cwd, p.as_bytes()).map(|f| (f.text().to_vec(), f.dir));
                assert_eq!(a, b, "{cwd} {p}");
            }
        }
        assert_eq!(normalise_flat("/", b"/\xff").map(|_| ()), Err(::libc::EINVAL));
        let f = normalise_flat("/", b"/proc/self/exe").unwrap();
        assert_eq!(f.first(), Some(&b"proc"[..]));
        assert_eq!(normalise_flat("/", b"/").unwrap().first(), None);
    }

    #[test]
    fn the_last_component_is_told_apart_before_normalising() {
        assert_eq!(last_of(b"/a/b"), Last::Name);
        assert_eq!(last_of(b"a/b//"), Last::Name);
        assert_eq!(last_of(b"x"), Last::Name);
        assert_eq!(last_of(b"a/."), Last::Dot);
        assert_eq!(last_of(b"."), Last::Dot);
        assert_eq!(last_of(b"./"), Last::Dot);
        assert_eq!(last_of(b"/a/.."), Last::DotDot);
        assert_eq!(last_of(b"../"), Last::DotDot);
        assert_eq!(last_of(b"/"), Last::Root);
        assert_eq!(last_of(b"///"), Last::Root);
        assert_eq!(last_of(b"a/.x"), Last::Name);
        let n = normalise("/", b"/a/b/c").unwrap();
        assert_eq!(parent(&n).map(|p| p.text()), Some("/a/b".into()));
        assert_eq!(parent(&normalise("/", b"/").unwrap()), None);
    }

    #[test]
    fn the_first_component_picks_the_disk() {
        let others = ["data", "logs"];
        let p = |s: &str| normalise("/", s.as_bytes()).unwrap().parts;
        let parts = p("/data/x/y");
        assert_eq!(resolve(&parts, &others), (Some(0), &parts[1..]));
        let parts = p("/logs");
        assert_eq!(resolve(&parts, &others), (Some(1), &parts[1..]));
        let parts = p("/Data/x");
        assert_eq!(resolve(&parts, &others), (None, &parts[..]));
        let parts = p("/x/data");
        assert_eq!(resolve(&parts, &others), (None, &parts[..]));
        let parts = p("/data/../logs/z");
        assert_eq!(resolve(&parts, &others), (Some(1), &parts[1..]));
        assert_eq!(root_disk(&["data", "storage"]), Some(1));
        assert_eq!(root_disk(&["data", "logs"]), Some(0));
        assert_eq!(root_disk::<&str>(&[]), None);
    }
}
