//! WAL: roundtrip, group commit, torn tails, corruption, poisoning, tailing.
use std::sync::Arc;

use apksift_storage::wal::{self, TailStatus, WalOptions, WalTailer, WalWriter};
use apksift_storage::{Directory, Error, FaultyDirectory, FsDirectory, MemDirectory};

fn collect(dir: &dyn Directory, after: u64) -> (Vec<(u64, Vec<u8>)>, wal::RecoveryReport) {
    let mut out = Vec::new();
    let rep = wal::recover(dir, after, true, |lsn, p| {
        out.push((lsn, p.to_vec()));
        Ok(())
    })
    .unwrap();
    (out, rep)
}

fn payload(i: u64) -> Vec<u8> {
    format!("record-{i}-")
        .repeat((i % 7 + 1) as usize)
        .into_bytes()
}

#[test]
fn wal_roundtrip_and_reopen_continues_lsns() {
    let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    let w = WalWriter::open(dir.clone(), 0, WalOptions::default()).unwrap();
    for i in 1..=100 {
        let lsn = w.append(&payload(i)).unwrap();
        assert_eq!(lsn, i);
        w.wait_durable(lsn).unwrap();
    }
    drop(w);
    let (recs, rep) = collect(&*dir, 0);
    assert_eq!(rep.last_lsn, 100);
    assert_eq!(recs.len(), 100);
    for (lsn, p) in &recs {
        assert_eq!(p, &payload(*lsn));
    }
    let (recs, _) = collect(&*dir, 60);
    assert_eq!(recs.first().map(|r| r.0), Some(61));
    let w = WalWriter::open(dir.clone(), rep.last_lsn, WalOptions::default()).unwrap();
    let lsn = w.append(b"after reopen").unwrap();
    assert_eq!(lsn, 101);
    w.wait_durable(lsn).unwrap();
    drop(w);
    let (recs, rep) = collect(&*dir, 100);
    assert_eq!(rep.last_lsn, 101);
    assert_eq!(recs, vec![(101, b"after reopen".to_vec())]);
}

#[test]
fn wal_rotation_and_checkpoint_removal() {
    let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    let opts = WalOptions {
        max_file_bytes: 1000,
        ..WalOptions::default()
    };
    let w = WalWriter::open(dir.clone(), 0, opts).unwrap();
    for i in 1..=200 {
        let lsn = w.append(&payload(i)).unwrap();
        w.wait_durable(lsn).unwrap();
    }
    let files_before = w.file_names().len();
    assert!(
        files_before > 5,
        "expected rotation, got {files_before} files"
    );
    let removed = w.remove_files_up_to(150).unwrap();
    assert!(!removed.is_empty());
    // Everything after the checkpoint is still there.
    let (recs, rep) = collect(&*dir, 150);
    assert_eq!(rep.last_lsn, 200);
    assert_eq!(recs.len(), 50);
    assert_eq!(recs[0].0, 151);
}

/// A directory whose file fsyncs take `delay` (a slow disk), counting them.
#[derive(Debug)]
struct SlowSync {
    inner: MemDirectory,
    delay: std::time::Duration,
    syncs: Arc<std::sync::atomic::AtomicU64>,
}

struct SlowHandle {
    inner: Box<dyn apksift_storage::WriteHandle>,
    delay: std::time::Duration,
    syncs: Arc<std::sync::atomic::AtomicU64>,
}

impl apksift_storage::WriteHandle for SlowHandle {
    fn write_all(&mut self, data: &[u8]) -> apksift_storage::Result<()> {
        self.inner.write_all(data)
    }
    fn sync(&mut self) -> apksift_storage::Result<()> {
        std::thread::sleep(self.delay);
        self.syncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.sync()
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
}

impl Directory for SlowSync {
    fn open_read(&self, name: &str) -> apksift_storage::Result<apksift_storage::OwnedBytes> {
        self.inner.open_read(name)
    }
    fn read_at(&self, name: &str, offset: u64, max_len: usize) -> apksift_storage::Result<Vec<u8>> {
        self.inner.read_at(name, offset, max_len)
    }
    fn file_len(&self, name: &str) -> apksift_storage::Result<u64> {
        self.inner.file_len(name)
    }
    fn create(&self, name: &str) -> apksift_storage::Result<Box<dyn apksift_storage::WriteHandle>> {
        Ok(Box::new(SlowHandle {
            inner: self.inner.create(name)?,
            delay: self.delay,
            syncs: self.syncs.clone(),
        }))
    }
    fn open_append(
        &self,
        name: &str,
    ) -> apksift_storage::Result<Box<dyn apksift_storage::WriteHandle>> {
        Ok(Box::new(SlowHandle {
            inner: self.inner.open_append(name)?,
            delay: self.delay,
            syncs: self.syncs.clone(),
        }))
    }
    fn truncate(&self, name: &str, len: u64) -> apksift_storage::Result<()> {
        self.inner.truncate(name, len)
    }
    fn atomic_write(&self, name: &str, data: &[u8]) -> apksift_storage::Result<()> {
        self.inner.atomic_write(name, data)
    }
    fn delete(&self, name: &str) -> apksift_storage::Result<()> {
        self.inner.delete(name)
    }
    fn exists(&self, name: &str) -> bool {
        self.inner.exists(name)
    }
    fn list(&self) -> apksift_storage::Result<Vec<String>> {
        self.inner.list()
    }
    fn sync_dir(&self) -> apksift_storage::Result<()> {
        self.inner.sync_dir()
    }
    fn try_lock(
        &self,
        name: &str,
    ) -> apksift_storage::Result<Box<dyn apksift_storage::DirectoryLock>> {
        self.inner.try_lock(name)
    }
    fn describe(&self) -> String {
        "slow-sync".into()
    }
}

#[test]
fn wal_group_commit_shares_fsyncs_across_threads() {
    // Every fsync takes 2 ms, so while one group syncs the other writers
    // queue up and must ride on the next fsync together. One fsync per
    // record (no group commit) would need 1,600 fsyncs and >= 3.2 s. Each
    // thread waits for its record before appending the next, so groups
    // alternate between the threads of the previous group and the rest:
    // about 16 / 2 = 8 records per fsync, i.e. ~200 fsyncs.
    let mem = MemDirectory::new();
    let syncs = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let d: Arc<dyn Directory> = Arc::new(SlowSync {
        inner: mem.clone(),
        delay: std::time::Duration::from_millis(2),
        syncs: syncs.clone(),
    });
    let w = Arc::new(WalWriter::open(d.clone(), 0, WalOptions::default()).unwrap());
    let syncs_before = syncs.load(std::sync::atomic::Ordering::Relaxed);
    let threads: Vec<_> = (0..16u64)
        .map(|t| {
            let w = w.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..100u64 {
                    let lsn = w.append(&payload(t * 1000 + i)).unwrap();
                    w.wait_durable(lsn).unwrap();
                    assert!(w.durable_lsn() >= lsn);
                    mine.push((lsn, t * 1000 + i));
                }
                mine
            })
        })
        .collect();
    let mut acked = Vec::new();
    for t in threads {
        acked.extend(t.join().unwrap());
    }
    let records = acked.len() as u64;
    let syncs = syncs.load(std::sync::atomic::Ordering::Relaxed) - syncs_before;
    assert_eq!(records, 1600);
    assert_eq!(w.durable_lsn(), 1600);
    eprintln!("group commit (2 ms fsync, 16 threads): {records} records, {syncs} fsyncs");
    assert!(
        syncs < records / 4,
        "concurrent writers did not share fsyncs: {syncs} fsyncs for {records} records"
    );
    drop(w);
    // Every acknowledged record is in the log, in LSN order, with its payload.
    let (recs, _) = collect(&mem, 0);
    assert_eq!(recs.len(), 1600);
    for (i, (lsn, _)) in recs.iter().enumerate() {
        assert_eq!(*lsn, i as u64 + 1);
    }
    acked.sort();
    for (lsn, id) in acked {
        assert_eq!(recs[lsn as usize - 1].1, payload(id), "record {lsn}");
    }
}

#[test]
fn wal_recover_refuses_a_gap_after_the_checkpoint() {
    // A log whose early files were removed (checkpointed) by the writer.
    let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    let opts = WalOptions {
        max_file_bytes: 1000,
        ..WalOptions::default()
    };
    let w = WalWriter::open(dir.clone(), 0, opts).unwrap();
    for i in 1..=200 {
        let lsn = w.append(&payload(i)).unwrap();
        w.wait_durable(lsn).unwrap();
    }
    w.remove_files_up_to(150).unwrap();
    let (files, _) = wal::list_files(&*dir).unwrap();
    let first = files[0].header.first_lsn;
    assert!(first > 1 && first <= 151, "first file starts at {first}");
    // A reader whose manifest checkpoint is older than the first record
    // still on disk must not skip the missing records.
    let mut seen = 0;
    let e = wal::recover(&*dir, first - 2, false, |_, _| {
        seen += 1;
        Ok(())
    })
    .unwrap_err();
    assert!(e.to_string().contains("WAL gap"), "{e}");
    assert_eq!(seen, 0, "records handed out before the gap was found");
    // Exactly at the boundary, and from the writer's checkpoint, it is fine.
    let (recs, rep) = collect(&*dir, first - 1);
    assert_eq!(recs.first().map(|r| r.0), Some(first));
    assert_eq!(rep.last_lsn, 200);
    let (recs, _) = collect(&*dir, 150);
    assert_eq!(recs.len(), 50);
}

fn written_log(n: u64) -> (MemDirectory, String) {
    let dir = MemDirectory::new();
    let d: Arc<dyn Directory> = Arc::new(dir.clone());
    let w = WalWriter::open(d, 0, WalOptions::default()).unwrap();
    for i in 1..=n {
        let lsn = w.append(&payload(i)).unwrap();
        w.wait_durable(lsn).unwrap();
    }
    let name = w.file_names().last().unwrap().clone();
    (dir, name)
}

#[test]
fn wal_truncation_torn_tail_every_cut_point() {
    let (dir, name) = written_log(20);
    let full = dir.snapshot().remove(&name).unwrap();
    // Every possible crash point inside the file: the valid prefix survives, the rest is cut.
    for cut in wal::HEADER_LEN..full.len() {
        let d = MemDirectory::from_files([(name.clone(), full[..cut].to_vec())].into());
        let (recs, rep) = collect(&d, 0);
        // Records are complete up to the last one fully inside `cut`.
        for (i, (lsn, p)) in recs.iter().enumerate() {
            assert_eq!(*lsn, i as u64 + 1);
            assert_eq!(p, &payload(*lsn));
        }
        assert_eq!(rep.last_lsn, recs.len() as u64);
        assert_eq!(
            d.file_len(&name).unwrap(),
            (cut as u64) - rep.truncated_bytes
        );
        // A second recovery finds nothing more to cut.
        let (_, rep2) = collect(&d, 0);
        assert_eq!(rep2.truncated_bytes, 0);
    }
}

#[test]
fn wal_truncation_garbage_tail_is_cut() {
    let (dir, name) = written_log(5);
    let mut bytes = dir.snapshot().remove(&name).unwrap();
    let valid = bytes.len();
    bytes.extend_from_slice(&[0xAB; 37]);
    let d = MemDirectory::from_files([(name.clone(), bytes)].into());
    let (recs, rep) = collect(&d, 0);
    assert_eq!(recs.len(), 5);
    assert_eq!(rep.truncated_bytes, 37);
    assert_eq!(d.file_len(&name).unwrap(), valid as u64);
}

#[test]
fn wal_corruption_in_the_middle_is_an_error_not_a_truncation() {
    let (dir, name) = written_log(10);
    let mut bytes = dir.snapshot().remove(&name).unwrap();
    // Damage a byte of the 3rd record's payload.
    let at = wal::HEADER_LEN + 2 * (wal::RECORD_HEADER_LEN + 12) + wal::RECORD_HEADER_LEN + 1;
    bytes[at] ^= 0x40;
    let d = MemDirectory::from_files([(name.clone(), bytes)].into());
    let r = wal::recover(&d, 0, true, |_, _| Ok(()));
    assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
}

#[test]
fn wal_poisons_after_failed_fsync() {
    let dir = FaultyDirectory::new();
    let d: Arc<dyn Directory> = Arc::new(dir.clone());
    let w = WalWriter::open(d, 0, WalOptions::default()).unwrap();
    let lsn = w.append(b"ok").unwrap();
    w.wait_durable(lsn).unwrap();
    dir.fail_sync_at(dir.sync_count() + 1);
    let lsn = w.append(b"fails").unwrap();
    assert!(w.wait_durable(lsn).is_err());
    assert!(w.poisoned().is_some());
    assert!(matches!(w.append(b"refused"), Err(Error::Poisoned(_))));
}

#[test]
fn wal_crash_image_keeps_every_acknowledged_record() {
    // Freeze the medium at every sync point; what was acknowledged before the freeze survives.
    for freeze in 1..40u64 {
        let dir = FaultyDirectory::new();
        dir.freeze_after_syncs(freeze);
        let d: Arc<dyn Directory> = Arc::new(dir.clone());
        let mut acked = 0u64;
        if let Ok(w) = WalWriter::open(
            d,
            0,
            WalOptions {
                max_file_bytes: 300,
                ..WalOptions::default()
            },
        ) {
            for i in 1..=30 {
                let Ok(lsn) = w.append(&payload(i)) else {
                    break;
                };
                if w.wait_durable(lsn).is_err() {
                    break;
                }
                if dir.sync_count() <= freeze {
                    acked = lsn;
                }
            }
        }
        let img = dir.crash_to_mem();
        let (recs, rep) = collect(&img, 0);
        assert!(
            rep.last_lsn >= acked,
            "freeze {freeze}: acked {acked} but recovered {}",
            rep.last_lsn
        );
        for (lsn, p) in &recs {
            assert_eq!(p, &payload(*lsn));
        }
    }
}

#[test]
fn wal_tailer_follows_a_growing_log_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let d: Arc<dyn Directory> = Arc::new(FsDirectory::create_dir_all(tmp.path()).unwrap());
    let w = WalWriter::open(
        d.clone(),
        0,
        WalOptions {
            max_file_bytes: 500,
            ..WalOptions::default()
        },
    )
    .unwrap();
    let mut t = WalTailer::new(1);
    let mut seen = Vec::new();
    for round in 0..10u64 {
        for i in 0..7 {
            let lsn = w.append(&payload(round * 7 + i + 1)).unwrap();
            w.wait_durable(lsn).unwrap();
        }
        let st = t
            .poll(&*d, |lsn, p| {
                seen.push((lsn, p.to_vec()));
                Ok(())
            })
            .unwrap();
        assert_eq!(st, TailStatus::CaughtUp);
        assert_eq!(seen.len() as u64, (round + 1) * 7);
    }
    for (lsn, p) in &seen {
        assert_eq!(p, &payload(*lsn));
    }
    // Checkpointing files away makes a lagging tailer ask for a reload.
    let mut lagging = WalTailer::new(1);
    w.remove_files_up_to(60).unwrap();
    let st = lagging.poll(&*d, |_, _| Ok(())).unwrap();
    assert_eq!(st, TailStatus::NeedReload);
}
