//! File handles: a position over a shared open file.

use core::fmt;

use super::{FileSystem, FsError, SeekFrom};

/// An open file. Several may be open on the same file at once: they share
/// its length and contents, each with its own position. Closing (or
/// dropping) the last one writes its entry back; [`File::close`] reports
/// errors.
pub struct File<'a> {
    fs: &'a FileSystem,
    id: usize,
    pos: u64,
    writable: bool,
    append: bool,
}

impl fmt::Debug for File<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("len", &self.len())
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl<'a> File<'a> {
    pub(crate) fn new(
        fs: &'a FileSystem,
        id: usize,
        pos: u64,
        writable: bool,
        append: bool,
    ) -> Self {
        Self { fs, id, pos, writable, append }
    }

    /// Reads into `buf` at the position; 0 at the end of the file.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, FsError> {
        let n = self.read_at(self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }

    /// Reads into `buf` at `offset` (the position stays); 0 at or past the
    /// end.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        self.fs.vol.borrow_mut().read(self.id, offset, buf)
    }

    /// Writes all of `buf` at the position (at the end for a file opened
    /// to append); a position past the end fills the gap with zeros.
    pub fn write_all(&mut self, buf: &[u8]) -> Result<(), FsError> {
        if self.append {
            self.pos = self.len();
        }
        self.write_at(self.pos, buf)?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    /// Writes all of `buf` at `offset` (the position stays).
    pub fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), FsError> {
        if !self.writable {
            return Err(FsError::ReadOnly);
        }
        if buf.is_empty() {
            return Ok(());
        }
        self.fs.vol.borrow_mut().write(self.id, offset, buf)
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.fs.vol.borrow().node_ref(self.id).map_or(0, |n| n.len)
    }

    /// Metadata of the file, as [`FileSystem::metadata`] of its path gives
    /// it, without looking the path up again. `NotFound` once removed.
    pub fn metadata(&self) -> Result<super::Metadata, FsError> {
        self.fs.node_meta(self.id)
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current position.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Moves the position (past the end is allowed: a write there fills
    /// the gap with zeros); returns the new one. `Unsupported` before the
    /// start.
    pub fn seek(&mut self, to: SeekFrom) -> Result<u64, FsError> {
        let target = match to {
            SeekFrom::Start(n) => i128::from(n),
            SeekFrom::End(d) => i128::from(self.len()) + i128::from(d),
            SeekFrom::Current(d) => i128::from(self.pos) + i128::from(d),
        };
        self.pos = u64::try_from(target).map_err(|_| FsError::Unsupported)?;
        Ok(self.pos)
    }

    /// Sets the length: longer is zero-filled, shorter frees the clusters
    /// past the new end.
    pub fn set_len(&mut self, len: u64) -> Result<(), FsError> {
        if !self.writable {
            return Err(FsError::ReadOnly);
        }
        self.fs.vol.borrow_mut().set_len(self.id, len)
    }

    /// Writes the file's data, its clusters and its directory entry to the
    /// disk (not waiting for the device: see [`File::sync`]).
    pub fn flush(&mut self) -> Result<(), FsError> {
        if !self.writable {
            return Ok(());
        }
        self.fs.vol.borrow_mut().commit(self.id)
    }

    /// [`File::flush`], then FSInfo, then the device's own flush
    /// (`fdatasync`): what `sync_all` asks.
    pub fn sync(&mut self) -> Result<(), FsError> {
        let mut v = self.fs.vol.borrow_mut();
        if self.writable {
            v.commit(self.id)?;
        }
        v.sync_disk()
    }

    /// Closes the file, reporting what closing found.
    pub fn close(self) -> Result<(), FsError> {
        let this = core::mem::ManuallyDrop::new(self);
        this.fs.vol.borrow_mut().release(this.id)
    }
}

impl Drop for File<'_> {
    fn drop(&mut self) {
        if let Ok(mut v) = self.fs.vol.try_borrow_mut() {
            let _ = v.release(self.id);
        }
    }
}
