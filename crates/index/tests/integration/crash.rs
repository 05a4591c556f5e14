//! Simulated crashes: a fault-injecting directory tracks live and durable
//! bytes, freezes at the N-th sync, and the crash image is reopened.
use std::collections::BTreeMap;
use std::sync::Arc;

use apksift_index::{Database, Options};
use apksift_storage::{Directory, FaultyDirectory};

use crate::common::*;

/// Per key: the acknowledged state (`None` = absent) and the other states an
/// unacknowledged (in-flight or later) operation may have left.
#[derive(Default)]
struct Expect {
    acked: BTreeMap<String, Option<i64>>,
    maybe: BTreeMap<String, Vec<Option<i64>>>,
}

impl Expect {
    fn record(&mut self, key: &str, v: Option<i64>, acked: bool) {
        if acked && !self.maybe.contains_key(key) {
            self.acked.insert(key.to_string(), v);
        } else {
            self.maybe.entry(key.to_string()).or_default().push(v);
        }
    }
}

/// Upserts, deletes, flushes and merges; an operation counts as acknowledged
/// only if it returned Ok before the medium froze (the simulated crash).
fn workload(db: &Database, dir: &FaultyDirectory, freeze: u64, ex: &mut Expect) {
    let live = || dir.sync_count() <= freeze;
    if db.create_collection("s", sample_schema()).is_err() || !live() {
        return;
    }
    for round in 0..12u64 {
        let mut r = rows(120, 100 + round, "k");
        for (i, x) in r.iter_mut().enumerate() {
            x.threat = Some((round * 1000 + i as u64) as i64);
            // Overlapping keys across rounds: upserts replace.
            x.key = format!("k{:06}", (i + round as usize * 60) % 400);
        }
        let ok = db.upsert("s", batch(&r)).is_ok() && live();
        for x in &r {
            ex.record(&x.key, x.threat, ok);
        }
        let dels: Vec<String> = (0..400)
            .filter(|i| i % 9 == round as usize % 9)
            .map(|i| format!("k{i:06}"))
            .collect();
        let ok = db.delete("s", &dels).is_ok() && live();
        for d in &dels {
            ex.record(d, None, ok);
        }
        if round % 3 == 1 {
            let _ = db.flush();
        }
        if round % 5 == 4 {
            let _ = db.compact("s");
        }
    }
}

#[test]
fn crash_at_every_sync_point_keeps_acknowledged_writes() {
    // First learn how many syncs the whole workload takes.
    let probe = FaultyDirectory::new();
    {
        let db = Database::open_dir(Arc::new(probe.clone()), opts()).unwrap();
        workload(&db, &probe, u64::MAX, &mut Expect::default());
    }
    let total = probe.sync_count();
    assert!(total > 20, "workload too small ({total} syncs)");
    let step = (total / 60).max(1);
    let mut points = 0;
    for freeze in (1..total).step_by(step as usize) {
        let dir = FaultyDirectory::new();
        dir.freeze_after_syncs(freeze);
        let mut ex = Expect::default();
        if let Ok(db) = Database::open_dir(Arc::new(dir.clone()), opts()) {
            workload(&db, &dir, freeze, &mut ex);
            drop(db);
        }
        let image = dir.crash();
        // The first restart must succeed.
        let db = Database::open_dir(
            Arc::new(image.clone()),
            Options {
                background: false,
                ..opts()
            },
        )
        .unwrap_or_else(|e| panic!("restart after crash at sync {freeze} failed: {e}"));
        points += 1;
        if db.count("s").is_err() {
            assert!(
                ex.acked.is_empty(),
                "collection lost after crash at sync {freeze}"
            );
            continue;
        }
        let mut keys: std::collections::BTreeSet<&String> = ex.acked.keys().collect();
        keys.extend(ex.maybe.keys());
        for k in keys {
            let got = db
                .get("s", std::slice::from_ref(k), &["threat".into()])
                .unwrap();
            let val: Option<i64> = got[0].as_ref().map(|row| match &row["threat"] {
                apksift_index::Value::Int(x) => *x,
                other => panic!("unexpected {other:?}"),
            });
            let acked = ex.acked.get(k).copied().flatten();
            let allowed = val == acked || ex.maybe.get(k).is_some_and(|m| m.contains(&val));
            assert!(
                allowed,
                "crash at sync {freeze}: key {k} is {val:?}, acknowledged {acked:?}, in flight {:?}",
                ex.maybe.get(k)
            );
        }
        // The recovered store is fully usable and verifies.
        db.upsert("s", batch(&rows(3, 999, "post"))).unwrap();
        db.flush().unwrap();
        let report = apksift_index::verify::verify_dir(&image).unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    }
    eprintln!("simulated crash points checked: {points} (of {total} syncs)");
    assert!(points >= 20);
}

#[test]
fn crash_after_failed_fsync_refuses_writes_and_recovers() {
    let dir = FaultyDirectory::new();
    let db = Database::open_dir(Arc::new(dir.clone()), opts()).unwrap();
    db.create_collection("s", sample_schema()).unwrap();
    db.upsert("s", batch(&rows(10, 1, "a"))).unwrap();
    dir.fail_sync_at(dir.sync_count() + 1);
    assert!(db.upsert("s", batch(&rows(10, 2, "b"))).is_err());
    let e = db.upsert("s", batch(&rows(10, 3, "c"))).unwrap_err();
    assert!(e.to_string().contains("failed fsync"), "{e}");
    assert!(db.flush().is_err());
    // Reads still work and never show the failed write.
    assert_eq!(db.count("s").unwrap(), 10);
    drop(db);
    let db = Database::open_dir(Arc::new(dir.crash()), opts()).unwrap();
    assert_eq!(db.count("s").unwrap(), 10);
}

#[test]
fn crash_torn_wal_tail_is_cut_and_store_opens() {
    let dir = FaultyDirectory::new();
    {
        let db = Database::open_dir(Arc::new(dir.clone()), opts()).unwrap();
        db.create_collection("s", sample_schema()).unwrap();
        db.upsert("s", batch(&rows(50, 1, "a"))).unwrap();
    }
    let mut files = dir.crash_image();
    let wal = files
        .keys()
        .rfind(|k| k.starts_with("wal-"))
        .unwrap()
        .clone();
    files.get_mut(&wal).unwrap().extend_from_slice(&[0x55; 100]);
    let d2 = FaultyDirectory::from_files(files);
    let db = Database::open_dir(Arc::new(d2.clone()), opts()).unwrap();
    assert_eq!(db.count("s").unwrap(), 50);
    assert!(d2.file_len(&wal).unwrap() < 1_000_000);
}

/// A store with segments, delete files and rows only in the WAL; returns the
/// acknowledged state (key → threat).
fn seeded(dir: &FaultyDirectory) -> (Database, BTreeMap<String, i64>) {
    let db = Database::open_dir(
        Arc::new(dir.clone()),
        Options {
            obsolete_file_grace: std::time::Duration::ZERO,
            ..opts()
        },
    )
    .unwrap();
    db.create_collection("s", sample_schema()).unwrap();
    let mut acked = BTreeMap::new();
    for round in 0..4u64 {
        let mut r = rows(150, 10 + round, "k");
        for (i, x) in r.iter_mut().enumerate() {
            x.key = format!("k{:05}", (i as u64 + round * 100) % 400);
            x.threat = Some((round * 1000 + i as u64) as i64);
        }
        db.upsert("s", batch(&r)).unwrap();
        for x in &r {
            acked.insert(x.key.clone(), x.threat.unwrap());
        }
        let dels: Vec<String> = (0..400)
            .filter(|i| i % 11 == round as usize)
            .map(|i| format!("k{i:05}"))
            .collect();
        db.delete("s", &dels).unwrap();
        for d in &dels {
            acked.remove(d);
        }
        if round < 3 {
            db.flush().unwrap();
        }
    }
    (db, acked)
}

fn check_rows(db: &Database, acked: &BTreeMap<String, i64>, what: &str) {
    assert_eq!(
        db.count("s").unwrap(),
        acked.len() as u64,
        "{what}: row count"
    );
    for i in 0..400 {
        let k = format!("k{i:05}");
        let got = db
            .get("s", std::slice::from_ref(&k), &["threat".into()])
            .unwrap();
        let val = got[0].as_ref().map(|row| match &row["threat"] {
            apksift_index::Value::Int(x) => *x,
            other => panic!("unexpected {other:?}"),
        });
        assert_eq!(val, acked.get(&k).copied(), "{what}: key {k}");
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Sync,
    Write,
}

/// Injects the `n`-th fault of a kind into a flush or a merge (compaction).
/// Returns None when the operation completed before the `n`-th point.
fn fail_during(op: &str, fault: Fault, n: u64) -> Option<()> {
    let dir = FaultyDirectory::new();
    let (db, acked) = seeded(&dir);
    match fault {
        Fault::Sync => dir.fail_sync_at(dir.sync_count() + n),
        Fault::Write => dir.fail_write_at(dir.write_count() + n),
    }
    let r = match op {
        "flush" => db.flush(),
        _ => db.compact("s"),
    };
    let Err(e) = r else {
        return None;
    };
    let what = format!("{op}, {fault:?} fault {n} ({e})");
    let msg = e.to_string();
    // A failed write of the new segment file (disk full) abandons the
    // operation; the store stays writable and a retry succeeds. Every other
    // failure (any fsync, any write in the commit) poisons the writer.
    let recoverable = matches!(fault, Fault::Write) && msg.contains(".seg");
    let mut acked = acked;
    if recoverable {
        let mut extra = rows(5, 77, "z");
        for (i, x) in extra.iter_mut().enumerate() {
            x.threat = Some(9000 + i as i64);
        }
        db.upsert("s", batch(&extra))
            .unwrap_or_else(|e| panic!("{what}: write refused after a recoverable failure: {e}"));
        for x in &extra {
            acked.insert(x.key.clone(), x.threat.unwrap());
        }
        match op {
            "flush" => db.flush(),
            _ => db.compact("s"),
        }
        .unwrap_or_else(|e| panic!("{what}: retry failed: {e}"));
    } else {
        let e2 = db
            .upsert("s", batch(&rows(5, 78, "y")))
            .expect_err(&format!(
                "{what}: a write was accepted after the commit path failed"
            ));
        assert!(e2.to_string().contains("read-only"), "{what}: {e2}");
        assert!(
            db.delete("s", &["k00001".to_string()]).is_err(),
            "{what}: delete accepted"
        );
        assert!(db.flush().is_err(), "{what}: flush accepted");
        assert!(db.compact("s").is_err(), "{what}: compact accepted");
    }
    // Reads keep working and show exactly the acknowledged rows.
    check_rows(&db, &acked, &what);
    drop(db);
    // Power loss now: the image reopens with every acknowledged row.
    let image = dir.crash();
    let db = Database::open_dir(Arc::new(image.clone()), opts())
        .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    check_rows(&db, &acked, &format!("{what}, after reopen"));
    let report = apksift_index::verify::verify_dir(&image).unwrap();
    assert!(report.errors.is_empty(), "{what}: {:?}", report.errors);
    // … and is writable again; a later flush and merge commit cleanly.
    db.upsert("s", batch(&rows(3, 79, "post"))).unwrap();
    db.flush().unwrap();
    db.compact("s").unwrap();
    let report = apksift_index::verify::verify_dir(&image).unwrap();
    assert!(report.errors.is_empty(), "{what}: {:?}", report.errors);
    Some(())
}

#[test]
fn crash_failed_commit_io_poisons_the_writer_and_keeps_acknowledged_rows() {
    let mut cases = 0;
    for op in ["flush", "merge"] {
        for fault in [Fault::Sync, Fault::Write] {
            let mut n = 1;
            while fail_during(op, fault, n).is_some() {
                cases += 1;
                n += 1;
                assert!(n < 200, "{op}: too many fault points");
            }
            assert!(n > 1, "{op} {fault:?}: no fault point was hit");
            eprintln!("{op}: {} {fault:?} fault points", n - 1);
        }
    }
    eprintln!("failed-commit cases checked: {cases}");
}

#[test]
fn crash_generation_is_not_reused_after_a_failed_manifest_dir_fsync() {
    // The rename of the new manifest succeeds but the directory fsync fails:
    // the live MANIFEST has generation g+1 and names del-…-<g+1> files. The
    // writer must not commit g+1 again with different contents.
    let mut hit = false;
    for n in 1..20 {
        let d2 = FaultyDirectory::new();
        let (db2, acked2) = seeded(&d2);
        d2.fail_sync_at(d2.sync_count() + n);
        let Err(_) = db2.flush() else { break };
        let live = apksift_index::manifest::ManifestData::load(&d2)
            .unwrap()
            .unwrap();
        let g0 = live.generation;
        // Whatever the writer does next must not overwrite what that
        // manifest names.
        let named: Vec<(String, Vec<u8>)> = live
            .collections
            .iter()
            .flat_map(|c| c.segments.iter())
            .flat_map(|s| std::iter::once(s.file.clone()).chain(s.del_file.clone()))
            .map(|f| {
                let b = d2.read_at(&f, 0, usize::MAX).unwrap();
                (f, b)
            })
            .collect();
        let _ = db2.delete("s", &["k00002".to_string()]);
        let _ = db2.flush();
        for (f, b) in &named {
            assert_eq!(
                &d2.read_at(f, 0, usize::MAX).unwrap(),
                b,
                "sync fault {n}: {f} (named by generation {g0}) was rewritten"
            );
        }
        let now = apksift_index::manifest::ManifestData::load(&d2)
            .unwrap()
            .unwrap();
        assert_eq!(
            now, live,
            "sync fault {n}: the manifest changed after the failure"
        );
        hit = true;
        drop(db2);
        let db3 = Database::open_dir(Arc::new(d2.crash()), opts()).unwrap();
        check_rows(&db3, &acked2, &format!("sync fault {n} reopened"));
    }
    assert!(hit);
}
