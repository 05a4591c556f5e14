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
/// moment a loading replica looks for WAL files, after it read the manifest),
/// or with `on_create`, the first time a file is created.
struct OnList {
    inner: MemDirectory,
    hook: Mutex<Option<Hook>>,
    on_create: bool,
}

impl OnList {
    fn new(inner: MemDirectory, on_create: bool, hook: Hook) -> OnList {
        OnList {
            inner,
            hook: Mutex::new(Some(hook)),
            on_create,
        }
    }

    fn run_hook(&self) {
        let hook = self.hook.lock().take();
        if let Some(h) = hook {
            h();
        }
    }
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
        if self.on_create {
            self.run_hook();
        }
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
        if !self.on_create {
            self.run_hook();
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
    let dir = Arc::new(OnList::new(
        mem.clone(),
        false,
        Box::new(move || {
            w2.flush().unwrap();
        }),
    ));
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
            replica.get("s", std::slice::from_ref(&k), &[]).unwrap()[0].is_some(),
            "{k} missing on the replica"
        );
    }
}

#[test]
fn backup_without_the_lock_retries_when_the_writer_checkpoints_mid_copy() {
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
    for i in 0..8 {
        writer
            .upsert("s", batch(&rows(50, 10 + i, &format!("b{i}-"))))
            .unwrap();
    }
    // The copy reads the manifest, then the writer checkpoints and deletes
    // the log files it needs: the first attempt must give up, the second
    // copy a consistent state.
    let w2 = writer.clone();
    let src = OnList::new(
        mem.clone(),
        false,
        Box::new(move || {
            w2.flush().unwrap();
        }),
    );
    let dest = MemDirectory::new();
    let rep = apksift_index::backup::copy_store(&src, &dest).unwrap();
    assert!(src.hook.lock().is_none(), "the writer did not checkpoint");
    assert_eq!(rep.attempts, 2, "{rep:?}");
    let check = apksift_index::backup::check_copy(Arc::new(dest.clone())).unwrap();
    assert_eq!(check.rows["s"], 500, "{check:?}");
    // Nothing of the failed attempt is left behind: every file is named by
    // the copied manifest or is a log file the copy needs.
    let m = apksift_index::manifest::ManifestData::load(&dest)
        .unwrap()
        .unwrap();
    assert_eq!(m.generation, rep.generation);
    let named: Vec<String> = m
        .collections
        .iter()
        .flat_map(|c| c.segments.iter())
        .flat_map(|s| std::iter::once(s.file.clone()).chain(s.del_file.clone()))
        .collect();
    for f in dest.list().unwrap() {
        assert!(
            f == "MANIFEST" || f.starts_with("wal-") || named.contains(&f),
            "left over: {f}"
        );
    }
}

/// A source whose segment files always vanish before they can be read.
#[derive(Debug)]
struct Vanishing(MemDirectory);

impl Directory for Vanishing {
    fn open_read(&self, name: &str) -> R<OwnedBytes> {
        if name.starts_with("seg-") {
            return Err(apksift_storage::Error::NotFound(name.into()));
        }
        self.0.open_read(name)
    }
    fn read_at(&self, name: &str, offset: u64, max_len: usize) -> R<Vec<u8>> {
        self.0.read_at(name, offset, max_len)
    }
    fn file_len(&self, name: &str) -> R<u64> {
        self.0.file_len(name)
    }
    fn create(&self, name: &str) -> R<Box<dyn WriteHandle>> {
        self.0.create(name)
    }
    fn open_append(&self, name: &str) -> R<Box<dyn WriteHandle>> {
        self.0.open_append(name)
    }
    fn truncate(&self, name: &str, len: u64) -> R<()> {
        self.0.truncate(name, len)
    }
    fn atomic_write(&self, name: &str, data: &[u8]) -> R<()> {
        self.0.atomic_write(name, data)
    }
    fn delete(&self, name: &str) -> R<()> {
        self.0.delete(name)
    }
    fn exists(&self, name: &str) -> bool {
        self.0.exists(name)
    }
    fn list(&self) -> R<Vec<String>> {
        self.0.list()
    }
    fn sync_dir(&self) -> R<()> {
        self.0.sync_dir()
    }
    fn try_lock(&self, name: &str) -> R<Box<dyn DirectoryLock>> {
        self.0.try_lock(name)
    }
    fn describe(&self) -> String {
        "vanishing".into()
    }
}

#[test]
fn backup_without_the_lock_gives_up_with_a_clear_error() {
    let mem = MemDirectory::new();
    let writer = Database::open_dir(Arc::new(mem.clone()), opts()).unwrap();
    writer.create_collection("s", sample_schema()).unwrap();
    writer.upsert("s", batch(&rows(20, 1, "a"))).unwrap();
    writer.flush().unwrap();
    let dest = MemDirectory::new();
    let e = apksift_index::backup::copy_store(&Vanishing(mem), &dest).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("gave up after 20 attempts"), "{msg}");
    assert!(msg.contains("seg-"), "{msg}");
    assert!(dest.list().unwrap().is_empty(), "{:?}", dest.list());
}

#[test]
fn backup_in_process_keeps_the_log_files_it_copies() {
    // The writer checkpoints (and would delete WAL files) while its own
    // backup is copying them: the backup pins them.
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
    for i in 0..8 {
        writer
            .upsert("s", batch(&rows(50, 10 + i, &format!("b{i}-"))))
            .unwrap();
    }
    let w2 = writer.clone();
    let dest = OnList::new(
        MemDirectory::new(),
        true,
        Box::new(move || {
            w2.flush().unwrap();
        }),
    );
    writer.backup(&dest).unwrap();
    assert!(dest.hook.lock().is_none(), "the writer did not checkpoint");
    let check = apksift_index::backup::check_copy(Arc::new(dest.inner.clone())).unwrap();
    assert_eq!(check.rows["s"], 400, "{check:?}");
    // After the backup, the next commit removes the checkpointed log files.
    let before = mem
        .list()
        .unwrap()
        .iter()
        .filter(|f| f.starts_with("wal-"))
        .count();
    writer.flush().unwrap();
    let after = mem
        .list()
        .unwrap()
        .iter()
        .filter(|f| f.starts_with("wal-"))
        .count();
    assert!(after < before, "WAL files {before} -> {after}");
}

#[test]
fn obsolete_files_outlive_their_manifest_by_the_grace_period() {
    let mem = MemDirectory::new();
    let grace = std::time::Duration::from_millis(300);
    let writer = Database::open_dir(
        Arc::new(mem.clone()),
        Options {
            obsolete_file_grace: grace,
            ..opts()
        },
    )
    .unwrap();
    writer.create_collection("s", sample_schema()).unwrap();
    for i in 0..3 {
        writer
            .upsert("s", batch(&rows(50, 10 + i, &format!("b{i}-"))))
            .unwrap();
        writer.flush().unwrap();
    }
    writer.delete("s", &["b0-000001".to_string()]).unwrap();
    writer.flush().unwrap();
    let files = |prefix: &str| -> Vec<String> {
        mem.list()
            .unwrap()
            .into_iter()
            .filter(|f| f.starts_with(prefix))
            .collect()
    };
    let old_segs = files("seg-");
    let old_dels = files("del-");
    assert_eq!(old_segs.len(), 3);
    assert_eq!(old_dels.len(), 1);
    let t = std::time::Instant::now();
    writer.compact("s").unwrap();
    // The merge's sources and the old delete file are no longer named, but
    // a replica still loading the previous manifest can read them.
    for f in old_segs.iter().chain(&old_dels) {
        assert!(mem.exists(f), "{f} deleted within the grace period");
    }
    let m = apksift_index::manifest::ManifestData::load(&mem)
        .unwrap()
        .unwrap();
    assert_eq!(m.collections[0].segments.len(), 1);
    std::thread::sleep(grace.saturating_sub(t.elapsed()) + std::time::Duration::from_millis(50));
    writer.maintain().unwrap();
    for f in old_segs.iter().chain(&old_dels) {
        assert!(!mem.exists(f), "{f} still there after the grace period");
    }
    assert_eq!(files("seg-").len(), 1);
    assert_eq!(writer.count("s").unwrap(), 149);
    // A restart treats files left unreferenced as garbage with a fresh
    // grace period and never reuses their names.
    drop(writer);
    let orphan = "seg-00000001-00000000000000ff.seg";
    mem.create(orphan).unwrap().write_all(b"junk").unwrap();
    let writer = Database::open_dir(
        Arc::new(mem.clone()),
        Options {
            obsolete_file_grace: grace,
            ..opts()
        },
    )
    .unwrap();
    assert!(mem.exists(orphan));
    writer.upsert("s", batch(&rows(5, 99, "c"))).unwrap();
    writer.flush().unwrap();
    let m = apksift_index::manifest::ManifestData::load(&mem)
        .unwrap()
        .unwrap();
    assert!(m.next_segment_id > 0xff, "{}", m.next_segment_id);
    assert!(
        m.collections[0].segments.iter().all(|s| s.file != orphan),
        "an orphan's name was reused"
    );
    std::thread::sleep(grace + std::time::Duration::from_millis(50));
    writer.maintain().unwrap();
    assert!(!mem.exists(orphan));
    assert_eq!(writer.count("s").unwrap(), 154);
}

#[test]
fn short_lived_writers_still_remove_obsolete_files() {
    // CLI imports run for less than the grace period. Files they leave
    // unreferenced are removed by a later writer once the MANIFEST that
    // stopped naming them is older than the grace period.
    let t = tempfile::tempdir().unwrap();
    let o = || Options {
        obsolete_file_grace: std::time::Duration::from_secs(5),
        ..opts()
    };
    let segs = || -> Vec<String> {
        std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|f| f.starts_with("seg-"))
            .collect()
    };
    let db = Database::open(t.path(), o()).unwrap();
    db.create_collection("s", sample_schema()).unwrap();
    for i in 0..3 {
        db.upsert("s", batch(&rows(20, i, &format!("b{i}-"))))
            .unwrap();
        db.flush().unwrap();
    }
    db.compact("s").unwrap();
    db.close().unwrap();
    assert_eq!(
        segs().len(),
        4,
        "the merge's sources are in their grace period"
    );
    // A writer right after: still within the grace period.
    let db = Database::open(t.path(), o()).unwrap();
    db.maintain().unwrap();
    assert_eq!(segs().len(), 4);
    db.close().unwrap();
    // The MANIFEST is now a minute old: the next writer removes them at once.
    let m = std::fs::File::options()
        .write(true)
        .open(t.path().join("MANIFEST"))
        .unwrap();
    m.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60))
        .unwrap();
    drop(m);
    let db = Database::open(t.path(), o()).unwrap();
    db.maintain().unwrap();
    assert_eq!(segs().len(), 1, "{:?}", segs());
    assert_eq!(db.count("s").unwrap(), 60);
}
