use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::directory::{Directory, DirectoryLock, WriteHandle};
use crate::{Error, OwnedBytes, Result};

type FileMap = BTreeMap<String, Arc<Mutex<Vec<u8>>>>;

/// A [`Directory`] held in memory. Every write is immediately "durable".
#[derive(Debug, Clone, Default)]
pub struct MemDirectory {
    files: Arc<Mutex<FileMap>>,
    locks: Arc<Mutex<BTreeMap<String, ()>>>,
}

impl MemDirectory {
    /// An empty directory.
    pub fn new() -> MemDirectory {
        MemDirectory::default()
    }

    /// A directory holding exactly these files.
    pub fn from_files(files: BTreeMap<String, Vec<u8>>) -> MemDirectory {
        let d = MemDirectory::new();
        {
            let mut map = d.files.lock();
            for (k, v) in files {
                map.insert(k, Arc::new(Mutex::new(v)));
            }
        }
        d
    }

    /// A copy of every file's bytes.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        self.files
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.lock().clone()))
            .collect()
    }

    fn get(&self, name: &str) -> Result<Arc<Mutex<Vec<u8>>>> {
        self.files
            .lock()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NotFound(name.to_string()))
    }
}

struct MemWrite {
    file: Arc<Mutex<Vec<u8>>>,
}

impl WriteHandle for MemWrite {
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.file.lock().extend_from_slice(data);
        Ok(())
    }
    fn sync(&mut self) -> Result<()> {
        Ok(())
    }
    fn len(&self) -> u64 {
        self.file.lock().len() as u64
    }
}

#[derive(Debug)]
struct MemLock {
    name: String,
    locks: Arc<Mutex<BTreeMap<String, ()>>>,
}

impl Drop for MemLock {
    fn drop(&mut self) {
        self.locks.lock().remove(&self.name);
    }
}

impl DirectoryLock for MemLock {}

impl Directory for MemDirectory {
    fn open_read(&self, name: &str) -> Result<OwnedBytes> {
        Ok(OwnedBytes::from_vec(self.get(name)?.lock().clone()))
    }

    fn read_at(&self, name: &str, offset: u64, max_len: usize) -> Result<Vec<u8>> {
        let f = self.get(name)?;
        let data = f.lock();
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let end = start.saturating_add(max_len).min(data.len());
        Ok(data.get(start..end).unwrap_or(&[]).to_vec())
    }

    fn file_len(&self, name: &str) -> Result<u64> {
        Ok(self.get(name)?.lock().len() as u64)
    }

    fn create(&self, name: &str) -> Result<Box<dyn WriteHandle>> {
        let file = Arc::new(Mutex::new(Vec::new()));
        self.files.lock().insert(name.to_string(), file.clone());
        Ok(Box::new(MemWrite { file }))
    }

    fn open_append(&self, name: &str) -> Result<Box<dyn WriteHandle>> {
        Ok(Box::new(MemWrite {
            file: self.get(name)?,
        }))
    }

    fn truncate(&self, name: &str, len: u64) -> Result<()> {
        let f = self.get(name)?;
        let mut data = f.lock();
        let len = usize::try_from(len).unwrap_or(usize::MAX).min(data.len());
        data.truncate(len);
        Ok(())
    }

    fn atomic_write(&self, name: &str, data: &[u8]) -> Result<()> {
        self.files
            .lock()
            .insert(name.to_string(), Arc::new(Mutex::new(data.to_vec())));
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.files.lock().remove(name);
        Ok(())
    }

    fn exists(&self, name: &str) -> bool {
        self.files.lock().contains_key(name)
    }

    fn list(&self) -> Result<Vec<String>> {
        Ok(self.files.lock().keys().cloned().collect())
    }

    fn sync_dir(&self) -> Result<()> {
        Ok(())
    }

    fn try_lock(&self, name: &str) -> Result<Box<dyn DirectoryLock>> {
        let mut locks = self.locks.lock();
        if locks.contains_key(name) {
            return Err(Error::Locked(format!("memory:{name}")));
        }
        locks.insert(name.to_string(), ());
        Ok(Box::new(MemLock {
            name: name.to_string(),
            locks: self.locks.clone(),
        }))
    }

    fn describe(&self) -> String {
        "memory".to_string()
    }
}
