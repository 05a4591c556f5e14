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

#[test]
fn wal_group_commit_shares_fsyncs_across_threads() {
    let dir = FaultyDirectory::new();
    let d: Arc<dyn Directory> = Arc::new(dir.clone());
    let w = Arc::new(WalWriter::open(d.clone(), 0, WalOptions::default()).unwrap());
    let syncs_before = dir.sync_count();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let w = w.clone();
            std::thread::spawn(move || {
                for i in 0..200u64 {
                    let lsn = w.append(&payload(t * 1000 + i)).unwrap();
                    w.wait_durable(lsn).unwrap();
                    assert!(w.durable_lsn() >= lsn);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let syncs = dir.sync_count() - syncs_before;
    assert_eq!(w.durable_lsn(), 1600);
    assert!(
        syncs <= 1600,
        "never more than one fsync per record ({syncs})"
    );
    eprintln!("group commit: 1600 records, {syncs} fsyncs");
    drop(w);
    let (recs, _) = collect(&*d, 0);
    assert_eq!(recs.len(), 1600);
    for (i, (lsn, _)) in recs.iter().enumerate() {
        assert_eq!(*lsn, i as u64 + 1);
    }
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
