use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::directory::{Directory, DirectoryLock, WriteHandle};
use crate::{Error, OwnedBytes, Result};

/// A [`Directory`] on the local (or a shared network) filesystem.
#[derive(Debug, Clone)]
pub struct FsDirectory {
    root: PathBuf,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl FsDirectory {
    /// Opens `root`, creating it if needed.
    pub fn create_dir_all(root: impl AsRef<Path>) -> Result<FsDirectory> {
        let root = root.as_ref().to_path_buf();
        std::fs::create_dir_all(&root).map_err(|e| Error::io(root.display().to_string(), e))?;
        Ok(FsDirectory { root })
    }

    /// Opens an existing directory without creating it (read-only users).
    pub fn open_existing(root: impl AsRef<Path>) -> Result<FsDirectory> {
        let root = root.as_ref().to_path_buf();
        if !root.is_dir() {
            return Err(Error::NotFound(root.display().to_string()));
        }
        Ok(FsDirectory { root })
    }

    /// The directory path.
    pub fn path(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, name: &str) -> Result<PathBuf> {
        if name.is_empty()
            || name.contains('/')
            || name.contains('\\')
            || name == "."
            || name == ".."
        {
            return Err(Error::io(
                name,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "invalid file name"),
            ));
        }
        Ok(self.root.join(name))
    }

    fn err(&self, name: &str, e: std::io::Error) -> Error {
        Error::io(self.root.join(name).display().to_string(), e)
    }
}

struct FsWrite {
    file: File,
    len: u64,
    name: String,
}

impl WriteHandle for FsWrite {
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.file
            .write_all(data)
            .map_err(|e| Error::io(self.name.clone(), e))?;
        self.len += data.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::sync_failed(self.name.clone(), e))
    }

    fn len(&self) -> u64 {
        self.len
    }
}

#[derive(Debug)]
struct FsLock {
    _file: File,
}

impl DirectoryLock for FsLock {}

impl Directory for FsDirectory {
    fn open_read(&self, name: &str) -> Result<OwnedBytes> {
        let path = self.path_of(name)?;
        let file = File::open(&path).map_err(|e| self.err(name, e))?;
        let len = file.metadata().map_err(|e| self.err(name, e))?.len();
        if len == 0 {
            return Ok(OwnedBytes::empty());
        }
        let map = crate::fs::mmap::map(&file).map_err(|e| self.err(name, e))?;
        Ok(OwnedBytes::new(Arc::new(map)))
    }

    fn read_at(&self, name: &str, offset: u64, max_len: usize) -> Result<Vec<u8>> {
        let path = self.path_of(name)?;
        let mut file = File::open(&path).map_err(|e| self.err(name, e))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| self.err(name, e))?;
        let mut out = Vec::new();
        file.take(max_len as u64)
            .read_to_end(&mut out)
            .map_err(|e| self.err(name, e))?;
        Ok(out)
    }

    fn file_len(&self, name: &str) -> Result<u64> {
        let path = self.path_of(name)?;
        Ok(std::fs::metadata(&path)
            .map_err(|e| self.err(name, e))?
            .len())
    }

    fn create(&self, name: &str) -> Result<Box<dyn WriteHandle>> {
        let path = self.path_of(name)?;
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| self.err(name, e))?;
        Ok(Box::new(FsWrite {
            file,
            len: 0,
            name: path.display().to_string(),
        }))
    }

    fn open_append(&self, name: &str) -> Result<Box<dyn WriteHandle>> {
        let path = self.path_of(name)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| self.err(name, e))?;
        let len = file.metadata().map_err(|e| self.err(name, e))?.len();
        Ok(Box::new(FsWrite {
            file,
            len,
            name: path.display().to_string(),
        }))
    }

    fn truncate(&self, name: &str, len: u64) -> Result<()> {
        let path = self.path_of(name)?;
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| self.err(name, e))?;
        file.set_len(len).map_err(|e| self.err(name, e))?;
        file.sync_all()
            .map_err(|e| Error::sync_failed(path.display().to_string(), e))
    }

    fn atomic_write(&self, name: &str, data: &[u8]) -> Result<()> {
        let path = self.path_of(name)?;
        let tmp_name = format!(
            ".{}.tmp-{}-{}",
            name,
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = self.path_of(&tmp_name)?;
        let result = (|| {
            let mut f = File::create(&tmp).map_err(|e| self.err(&tmp_name, e))?;
            f.write_all(data).map_err(|e| self.err(&tmp_name, e))?;
            f.sync_all()
                .map_err(|e| Error::sync_failed(tmp.display().to_string(), e))?;
            std::fs::rename(&tmp, &path).map_err(|e| self.err(name, e))?;
            self.sync_dir()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn delete(&self, name: &str) -> Result<()> {
        let path = self.path_of(name)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err(name, e)),
        }
    }

    fn exists(&self, name: &str) -> bool {
        self.path_of(name).map(|p| p.exists()).unwrap_or(false)
    }

    fn list(&self) -> Result<Vec<String>> {
        let rd = std::fs::read_dir(&self.root)
            .map_err(|e| Error::io(self.root.display().to_string(), e))?;
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io(self.root.display().to_string(), e))?;
            if let Some(name) = entry.file_name().to_str()
                && entry.file_type().map(|t| t.is_file()).unwrap_or(false)
            {
                out.push(name.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    fn sync_dir(&self) -> Result<()> {
        let dir =
            File::open(&self.root).map_err(|e| Error::io(self.root.display().to_string(), e))?;
        dir.sync_all()
            .map_err(|e| Error::sync_failed(self.root.display().to_string(), e))
    }

    fn try_lock(&self, name: &str) -> Result<Box<dyn DirectoryLock>> {
        let path = self.path_of(name)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| self.err(name, e))?;
        // flock(2): released by the kernel when the process dies, so a crash
        // never leaves a lock that blocks the next start.
        match file.try_lock() {
            Ok(()) => Ok(Box::new(FsLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(Error::Locked(self.root.display().to_string()))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(self.err(name, e)),
        }
    }

    fn modified(&self, name: &str) -> Result<Option<std::time::SystemTime>> {
        let path = self.path_of(name)?;
        let meta = std::fs::metadata(&path).map_err(|e| self.err(name, e))?;
        Ok(meta.modified().ok())
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}

#[allow(unsafe_code)]
mod mmap {
    //! The one place this crate maps files. See `UNSAFE.md`.
    use std::fs::File;

    pub(super) struct Map(memmap2::Mmap);

    impl AsRef<[u8]> for Map {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }

    /// Maps a file read-only.
    ///
    /// SAFETY: apksift maps only files it never modifies after writing them
    /// (segments, delete bitmaps, manifests are written once under a fresh name
    /// and replaced by rename). A file that another program truncates while it
    /// is mapped would make reads fault (SIGBUS); that is outside the contract
    /// documented in `docs/FORMAT.md` ("media and environment assumptions").
    pub(super) fn map(file: &File) -> std::io::Result<Map> {
        let m = unsafe { memmap2::Mmap::map(file)? };
        Ok(Map(m))
    }
}
