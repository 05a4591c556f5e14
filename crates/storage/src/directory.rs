use std::fmt::Debug;

use crate::{OwnedBytes, Result};

/// A flat namespace of files: the seam between the store and the medium.
///
/// Names are plain file names (no `/`). Semantics every implementation keeps:
/// * `create` truncates; bytes written are *live* at once and *durable* only
///   after [`WriteHandle::sync`];
/// * a new or renamed name is durable only after [`Directory::sync_dir`];
/// * [`Directory::atomic_write`] either leaves the old content or the new one,
///   never a mix, and is durable when it returns.
pub trait Directory: Send + Sync + Debug {
    /// Reads a whole file as immutable bytes (memory-mapped on the filesystem).
    /// Meant for files that no longer change (segments, manifests).
    fn open_read(&self, name: &str) -> Result<OwnedBytes>;
    /// Reads up to `max_len` bytes from `offset` of a file that may still grow (the log).
    fn read_at(&self, name: &str, offset: u64, max_len: usize) -> Result<Vec<u8>>;
    /// Current length of a file.
    fn file_len(&self, name: &str) -> Result<u64>;
    /// Creates (or truncates) a file for sequential writing.
    fn create(&self, name: &str) -> Result<Box<dyn WriteHandle>>;
    /// Opens an existing file for appending at its end.
    fn open_append(&self, name: &str) -> Result<Box<dyn WriteHandle>>;
    /// Cuts a file to `len` bytes and makes that durable.
    fn truncate(&self, name: &str, len: u64) -> Result<()>;
    /// Replaces `name` with `data` atomically and durably (temp file, fsync, rename, directory fsync).
    fn atomic_write(&self, name: &str, data: &[u8]) -> Result<()>;
    /// Removes a file. Removing a missing file is not an error.
    fn delete(&self, name: &str) -> Result<()>;
    /// True when the file exists.
    fn exists(&self, name: &str) -> bool;
    /// All file names, sorted.
    fn list(&self) -> Result<Vec<String>>;
    /// Makes created, renamed and deleted names durable.
    fn sync_dir(&self) -> Result<()>;
    /// Takes the exclusive writer lock. The lock dies with the process, so a
    /// stale lock never blocks a restart.
    fn try_lock(&self, name: &str) -> Result<Box<dyn DirectoryLock>>;
    /// When a file was last modified, where the medium records it (`None`
    /// for in-memory directories).
    fn modified(&self, name: &str) -> Result<Option<std::time::SystemTime>> {
        let _ = name;
        Ok(None)
    }
    /// A human description (path) for messages.
    fn describe(&self) -> String;
}

/// A file being written sequentially.
pub trait WriteHandle: Send {
    /// Appends bytes (live, not yet durable).
    fn write_all(&mut self, data: &[u8]) -> Result<()>;
    /// Makes every byte written so far durable (fdatasync).
    fn sync(&mut self) -> Result<()>;
    /// Bytes in the file.
    fn len(&self) -> u64;
    /// True when the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Held while a process is the writer; dropping it releases the lock.
pub trait DirectoryLock: Send + Sync + Debug {}
