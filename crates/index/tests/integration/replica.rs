//! Replicas loading while the writer checkpoints: the reload must never
//! present a state that skips WAL records.
use std::sync::Arc;

use apksift_index::{Database, Options};
use apksift_storage::wal::WalOptions;
use apksift_storage::{Directory, DirectoryLock, MemDirectory, OwnedBytes, WriteHandle};
use parking_lot::Mutex;

use crate::common::*;

type Hook = Box<dyn FnOnce() + Send>;

/// A directory that runs a hook the first time its files are listed (the
/// moment a loading replica looks for WAL files, after it read the manifest).
struct OnList {
    inner: MemDirectory,
    hook: Mutex<Option<Hook>>,
}

impl std::fmt::Debug for OnList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnList")
    }
}

type R<T> = apksift_storage::Result<T>;

impl Directory for OnList {
    fn open_read(&self, name: &str) -> R<OwnedBytes> {
        self.inner.open_read(name)
    }
    fn read_at(&self, name: &str, offset: u64, max_len: usize) -> R<Vec<u8>> {
        self.inner.read_at(name, offset, max_len)
    }
    fn file_len(&self, name: &str) -> R<u64> {
        self.inner.file_len(name)
    }
    fn create(&self, name: &str) -> R<Box<dyn WriteHandle>> {
        self.inner.create(name)
    }
    fn open_append(&self, name: &str) -> R<Box<dyn WriteHandle>> {
        self.inner.open_append(name)
    }
    fn truncate(&self, name: &str, len: u64) -> R<()> {
        self.inner.truncate(name, len)
    }
    fn atomic_write(&self, name: &str, data: &[u8]) -> R<()> {
        self.inner.atomic_write(name, data)
    }
    fn delete(&self, name: &str) -> R<()> {
        self.inner.delete(name)
    }
    fn exists(&self, name: &str) -> bool {
        self.inner.exists(name)
    }
    fn list(&self) -> R<Vec<String>> {
        let hook = self.hook.lock().take();
        if let Some(h) = hook {
            h();
        }
        self.inner.list()
    }
    fn sync_dir(&self) -> R<()> {
        self.inner.sync_dir()
    }
    fn try_lock(&self, name: &str) -> R<Box<dyn DirectoryLock>> {
        self.inner.try_lock(name)
    }
    fn describe(&self) -> String {
        "on-list".into()
    }
}

#[test]
fn replica_load_racing_a_checkpoint_never_skips_records() {
    let mem = MemDirectory::new();
    let writer = Database::open_dir(
        Arc::new(mem.clone()),
        Options {
            wal: WalOptions {
                max_file_bytes: 4 << 10,
                ..WalOptions::default()
            },
            ..opts()
        },
    )
    .unwrap();
    writer.create_collection("s", sample_schema()).unwrap();
    writer.upsert("s", batch(&rows(100, 1, "a"))).unwrap();
    writer.flush().unwrap();
    // Rows only in the WAL, spread over several log files.
    for i in 0..8 {
        writer
            .upsert("s", batch(&rows(50, 10 + i, &format!("b{i}-"))))
            .unwrap();
    }
    let total = writer.count("s").unwrap();
    assert_eq!(total, 500);
    let logs = |d: &MemDirectory| {
        d.list()
            .unwrap()
            .into_iter()
            .filter(|f| f.starts_with("wal-"))
            .count()
    };
    assert!(logs(&mem) > 2, "expected several WAL files");
    // The replica reads the manifest (checkpoint before the b rows), then,
    // just before it lists the log, the writer flushes: the b rows move into
    // a segment under a new manifest and their log files are deleted.
    let w2 = writer.clone();
    let dir = Arc::new(OnList {
        inner: mem.clone(),
        hook: Mutex::new(Some(Box::new(move || {
            w2.flush().unwrap();
        }))),
    });
    let replica = Database::open_dir_read_only(
        dir.clone(),
        Options {
            background: false,
            ..opts()
        },
    )
    .unwrap();
    assert!(
        dir.hook.lock().is_none(),
        "the writer did not checkpoint during the load"
    );
    assert_eq!(
        replica.count("s").unwrap(),
        total,
        "the replica loaded a state that skips checkpointed WAL records"
    );
    for i in 0..8 {
        let k = format!("b{i}-000007");
        assert!(
            replica.get("s", &[k.clone()], &[]).unwrap()[0].is_some(),
            "{k} missing on the replica"
        );
    }
}
