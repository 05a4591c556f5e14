/*!
Bytes, files and checksums for apksift's store. This crate knows nothing about
vectors or TLSH: it offers

* [`Directory`]: a flat namespace of files with atomic replace, fsync and an
  exclusive writer lock. [`FsDirectory`] is the real one (segments are
  memory-mapped), [`MemDirectory`] lives in memory, and [`FaultyDirectory`]
  (feature `testing`) tracks live versus durable bytes to simulate crashes.
* [`wal`]: a write-ahead log of framed, checksummed records with group commit:
  concurrent writers share one fsync and nobody is acknowledged before it.
* [`container`]: an immutable file made of checksummed sections with a footer
  (magic, format version, section table).

The byte layouts are in `docs/FORMAT.md`.
*/

mod bytes;
pub mod container;
mod directory;
mod error;
mod faulty;
mod fs;
mod mem;
pub mod wal;

pub use bytes::OwnedBytes;
pub use directory::{Directory, DirectoryLock, WriteHandle};
pub use error::{Error, Result};
#[cfg(any(test, feature = "testing"))]
pub use faulty::FaultyDirectory;
pub use fs::FsDirectory;
pub use mem::MemDirectory;

/// CRC-32C (Castagnoli) of `data`, hardware-accelerated where available.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// CRC-32C continuing from `crc`.
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, data)
}
