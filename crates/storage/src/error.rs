use std::sync::Arc;

/// Storage errors. Corruption is its own variant so that recovery can tell
/// damaged bytes from a failing device.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a named file.
    #[error("I/O error on {file}: {source}")]
    Io {
        /// The file (or directory) the operation was on.
        file: String,
        /// The underlying error.
        source: Arc<std::io::Error>,
    },
    /// Bytes on disk that fail a checksum or a structural check.
    #[error("corrupt data in {file} at offset {offset}: {reason}")]
    Corrupt {
        /// The file.
        file: String,
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An fsync (of a file or of the directory) failed: after this the
    /// kernel may have dropped the dirty pages, so what is on disk is unknown.
    #[error("fsync failed on {file}: {source}")]
    SyncFailed {
        /// The file (or directory) that was being synced.
        file: String,
        /// The underlying error.
        source: Arc<std::io::Error>,
    },
    /// The file does not exist.
    #[error("file not found: {0}")]
    NotFound(String),
    /// Another process holds the writer lock.
    #[error("the store at {0} is locked by another writer process")]
    Locked(String),
    /// An earlier fsync (or a write of the commit path) failed: the store
    /// refuses further writes until it is reopened.
    #[error(
        "store is read-only after a failed fsync or write ({0}); restart the process to recover from the log"
    )]
    Poisoned(String),
    /// A format version this build cannot read.
    #[error("{file}: unsupported format version {found} (this build reads {oldest}..={newest})")]
    UnsupportedVersion {
        /// The file.
        file: String,
        /// Version found on disk.
        found: u32,
        /// Oldest version this build reads.
        oldest: u32,
        /// Newest version this build reads.
        newest: u32,
    },
    /// A record larger than the format allows.
    #[error("record of {0} bytes exceeds the maximum of {1} bytes")]
    TooLarge(u64, u64),
}

impl Error {
    /// Wraps an I/O error with the file it happened on.
    pub fn io(file: impl Into<String>, source: std::io::Error) -> Error {
        if source.kind() == std::io::ErrorKind::NotFound {
            return Error::NotFound(file.into());
        }
        Error::Io {
            file: file.into(),
            source: Arc::new(source),
        }
    }

    /// Wraps a failed fsync of `file`.
    pub fn sync_failed(file: impl Into<String>, source: std::io::Error) -> Error {
        Error::SyncFailed {
            file: file.into(),
            source: Arc::new(source),
        }
    }

    /// True for [`Error::SyncFailed`].
    pub fn is_sync_failure(&self) -> bool {
        matches!(self, Error::SyncFailed { .. })
    }

    /// Builds a corruption error.
    pub fn corrupt(file: impl Into<String>, offset: u64, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
