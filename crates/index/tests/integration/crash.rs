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
