//! A fault-injecting in-memory directory for crash tests (after redb's
//! `crash_consistency` backend): every file has *live* bytes (what the running
//! process sees) and *durable* bytes (what survives a power cut); names are
//! durable only after `sync_dir`. It can freeze at the N-th sync (everything
//! after it is lost in the crash image), fail the N-th sync with EIO, and
//! fail the N-th file write (`write_all`) with ENOSPC.
#![cfg_attr(not(any(test, feature = "testing")), allow(dead_code))]

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::directory::{Directory, DirectoryLock, WriteHandle};
use crate::{Error, MemDirectory, OwnedBytes, Result};

#[derive(Debug, Default)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    next_inode: u64,
    inodes: BTreeMap<u64, Inode>,
    live_names: BTreeMap<String, u64>,
    durable_names: BTreeMap<String, u64>,
    syncs: u64,
    freeze_after: Option<u64>,
    fail_sync_at: Option<u64>,
    writes: u64,
    fail_write_at: Option<u64>,
    locks: BTreeMap<String, ()>,
}

impl State {
    /// Counts a sync; returns Ok(true) when it must take effect, Ok(false)
    /// when the image is frozen, Err when this sync is the injected failure.
    fn count_sync(&mut self) -> std::result::Result<bool, ()> {
        self.syncs += 1;
        if self.fail_sync_at == Some(self.syncs) {
            return Err(());
        }
        Ok(match self.freeze_after {
            Some(n) => self.syncs <= n,
            None => true,
        })
    }
}

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct FaultyDirectory {
    state: Arc<Mutex<State>>,
}

fn eio(name: &str) -> Error {
    Error::sync_failed(name, std::io::Error::other("injected fsync failure (EIO)"))
}

fn enospc(name: &str) -> Error {
    Error::io(
        name,
        std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            "injected write failure (ENOSPC)",
        ),
    )
}

impl FaultyDirectory {
    /// An empty directory with no faults.
    pub fn new() -> FaultyDirectory {
        FaultyDirectory::default()
    }

    /// A directory whose files are `files`, all durable.
    pub fn from_files(files: BTreeMap<String, Vec<u8>>) -> FaultyDirectory {
        let d = FaultyDirectory::new();
        {
            let mut s = d.state.lock();
            for (name, data) in files {
                let id = s.next_inode;
                s.next_inode += 1;
                s.inodes.insert(
                    id,
                    Inode {
                        live: data.clone(),
                        durable: data,
                    },
                );
                s.live_names.insert(name.clone(), id);
                s.durable_names.insert(name, id);
            }
        }
        d
    }

    /// Syncs that took effect after the `n`-th are lost: the crash happens right after sync `n`.
    pub fn freeze_after_syncs(&self, n: u64) {
        self.state.lock().freeze_after = Some(n);
    }

    /// The `n`-th sync (counting from 1, including earlier ones) fails with EIO.
    pub fn fail_sync_at(&self, n: u64) {
        self.state.lock().fail_sync_at = Some(n);
    }

    /// The `n`-th file write (`write_all`, counting from 1, including
    /// earlier ones) fails with ENOSPC and writes nothing.
    pub fn fail_write_at(&self, n: u64) {
        self.state.lock().fail_write_at = Some(n);
    }

    /// File writes (`write_all` calls) so far.
    pub fn write_count(&self) -> u64 {
        self.state.lock().writes
    }

    /// Syncs so far.
    pub fn sync_count(&self) -> u64 {
        self.state.lock().syncs
    }

    /// The files a machine would see after a power cut now.
    pub fn crash_image(&self) -> BTreeMap<String, Vec<u8>> {
        let s = self.state.lock();
        s.durable_names
            .iter()
            .filter_map(|(n, id)| s.inodes.get(id).map(|i| (n.clone(), i.durable.clone())))
            .collect()
    }

    /// The crash image as a fresh [`FaultyDirectory`] (all durable, no faults).
    pub fn crash(&self) -> FaultyDirectory {
        FaultyDirectory::from_files(self.crash_image())
    }

    /// The crash image as a [`MemDirectory`].
    pub fn crash_to_mem(&self) -> MemDirectory {
        MemDirectory::from_files(self.crash_image())
    }

    fn inode_of(s: &State, name: &str) -> Result<u64> {
        s.live_names
            .get(name)
            .copied()
            .ok_or_else(|| Error::NotFound(name.to_string()))
    }
}

struct FaultyWrite {
    state: Arc<Mutex<State>>,
    inode: u64,
    name: String,
}

impl WriteHandle for FaultyWrite {
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        let mut s = self.state.lock();
        s.writes += 1;
        if s.fail_write_at == Some(s.writes) {
            return Err(enospc(&self.name));
        }
        if let Some(i) = s.inodes.get_mut(&self.inode) {
            i.live.extend_from_slice(data);
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        let mut s = self.state.lock();
        match s.count_sync() {
            Err(()) => Err(eio(&self.name)),
            Ok(false) => Ok(()),
            Ok(true) => {
                if let Some(i) = s.inodes.get_mut(&self.inode) {
                    i.durable = i.live.clone();
                }
                Ok(())
            }
        }
    }

    fn len(&self) -> u64 {
        let s = self.state.lock();
        s.inodes
            .get(&self.inode)
            .map(|i| i.live.len() as u64)
            .unwrap_or(0)
    }
}

#[derive(Debug)]
struct FaultyLock {
    state: Arc<Mutex<State>>,
    name: String,
}

impl Drop for FaultyLock {
    fn drop(&mut self) {
        self.state.lock().locks.remove(&self.name);
    }
}

impl DirectoryLock for FaultyLock {}

impl Directory for FaultyDirectory {
    fn open_read(&self, name: &str) -> Result<OwnedBytes> {
        let s = self.state.lock();
        let id = Self::inode_of(&s, name)?;
        Ok(OwnedBytes::from_vec(
            s.inodes
                .get(&id)
                .map(|i| i.live.clone())
                .unwrap_or_default(),
        ))
    }

    fn read_at(&self, name: &str, offset: u64, max_len: usize) -> Result<Vec<u8>> {
        let s = self.state.lock();
        let id = Self::inode_of(&s, name)?;
        let data = s.inodes.get(&id).map(|i| &i.live[..]).unwrap_or(&[]);
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let end = start.saturating_add(max_len).min(data.len());
        Ok(data.get(start..end).unwrap_or(&[]).to_vec())
    }

    fn file_len(&self, name: &str) -> Result<u64> {
        let s = self.state.lock();
        let id = Self::inode_of(&s, name)?;
        Ok(s.inodes.get(&id).map(|i| i.live.len() as u64).unwrap_or(0))
    }

    fn create(&self, name: &str) -> Result<Box<dyn WriteHandle>> {
        let mut s = self.state.lock();
        let id = s.next_inode;
        s.next_inode += 1;
        s.inodes.insert(id, Inode::default());
        s.live_names.insert(name.to_string(), id);
        Ok(Box::new(FaultyWrite {
            state: self.state.clone(),
            inode: id,
            name: name.to_string(),
        }))
    }

    fn open_append(&self, name: &str) -> Result<Box<dyn WriteHandle>> {
        let s = self.state.lock();
        let id = Self::inode_of(&s, name)?;
        Ok(Box::new(FaultyWrite {
            state: self.state.clone(),
            inode: id,
            name: name.to_string(),
        }))
    }

    fn truncate(&self, name: &str, len: u64) -> Result<()> {
        let mut s = self.state.lock();
        let id = Self::inode_of(&s, name)?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if let Some(i) = s.inodes.get_mut(&id) {
            i.live.truncate(len);
        }
        match s.count_sync() {
            Err(()) => Err(eio(name)),
            Ok(false) => Ok(()),
            Ok(true) => {
                if let Some(i) = s.inodes.get_mut(&id) {
                    i.durable = i.live.clone();
                }
                Ok(())
            }
        }
    }

    fn atomic_write(&self, name: &str, data: &[u8]) -> Result<()> {
        let mut s = self.state.lock();
        let id = s.next_inode;
        s.next_inode += 1;
        s.inodes.insert(
            id,
            Inode {
                live: data.to_vec(),
                durable: Vec::new(),
            },
        );
        // fsync of the temp file
        match s.count_sync() {
            Err(()) => {
                s.inodes.remove(&id);
                return Err(eio(name));
            }
            Ok(true) => {
                if let Some(i) = s.inodes.get_mut(&id) {
                    i.durable = i.live.clone();
                }
            }
            Ok(false) => {}
        }
        // rename (live), then fsync of the directory
        s.live_names.insert(name.to_string(), id);
        match s.count_sync() {
            Err(()) => Err(eio(name)),
            Ok(true) => {
                s.durable_names = s.live_names.clone();
                Ok(())
            }
            Ok(false) => Ok(()),
        }
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.state.lock().live_names.remove(name);
        Ok(())
    }

    fn exists(&self, name: &str) -> bool {
        self.state.lock().live_names.contains_key(name)
    }

    fn list(&self) -> Result<Vec<String>> {
        Ok(self.state.lock().live_names.keys().cloned().collect())
    }

    fn sync_dir(&self) -> Result<()> {
        let mut s = self.state.lock();
        match s.count_sync() {
            Err(()) => Err(eio("<dir>")),
            Ok(true) => {
                s.durable_names = s.live_names.clone();
                Ok(())
            }
            Ok(false) => Ok(()),
        }
    }

    fn try_lock(&self, name: &str) -> Result<Box<dyn DirectoryLock>> {
        let mut s = self.state.lock();
        if s.locks.contains_key(name) {
            return Err(Error::Locked(format!("faulty:{name}")));
        }
        s.locks.insert(name.to_string(), ());
        Ok(Box::new(FaultyLock {
            state: self.state.clone(),
            name: name.to_string(),
        }))
    }

    fn describe(&self) -> String {
        "faulty-memory".to_string()
    }
}
