//! Engine behaviour: collections, writes, reads, persistence, merges.
use std::sync::Arc;

use apksift_index::{
    Batch, Column, Database, Error, FieldSchema, FieldType, QueryVector, Schema, SearchParams,
    Value,
};
use apksift_storage::{Directory, FsDirectory, MemDirectory};

use crate::common::*;

#[test]
fn engine_collection_lifecycle_and_errors() {
    let (db, _) = mem_db();
    db.create_collection("samples", sample_schema()).unwrap();
    assert!(matches!(
        db.create_collection("samples", sample_schema()),
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        db.create_collection("bad name", sample_schema()),
        Err(Error::Invalid(_))
    ));
    assert_eq!(db.list_collections(), vec!["samples".to_string()]);
    let info = db.describe("samples").unwrap();
    assert_eq!(info.rows, 0);
    assert_eq!(info.schema, sample_schema());
    db.drop_collection("samples").unwrap();
    assert!(db.list_collections().is_empty());
    assert!(matches!(db.describe("samples"), Err(Error::NotFound(_))));
    assert!(matches!(
        db.drop_collection("samples"),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn engine_rejects_bad_batches_and_stores_nothing() {
    let (db, _) = mem_db();
    db.create_collection("s", sample_schema()).unwrap();
    let good = rows(5, 1, "k");
    // Wrong vector length (one byte short).
    let mut b = batch(&good);
    b.columns
        .insert("code".into(), Column::Binary(vec![0u8; 5 * 8 - 1]));
    let e = db.upsert("s", b).unwrap_err().to_string();
    assert!(e.contains("dim 64") && e.contains("39 bytes"), "{e}");
    // Unknown field.
    let mut b = batch(&good);
    b.columns
        .insert("nope".into(), Column::Int(vec![Some(1); 5]));
    assert!(
        db.upsert("s", b)
            .unwrap_err()
            .to_string()
            .contains("unknown field \"nope\"")
    );
    // Wrong type.
    let mut b = batch(&good);
    b.columns
        .insert("threat".into(), Column::Str(vec![None; 5]));
    assert!(
        db.upsert("s", b)
            .unwrap_err()
            .to_string()
            .contains("is int")
    );
    // Bad and duplicate keys.
    let mut b = batch(&good);
    b.keys[2] = String::new();
    assert!(db.upsert("s", b).unwrap_err().to_string().contains("empty"));
    let mut b = batch(&good);
    b.keys[3] = b.keys[1].clone();
    assert!(
        db.upsert("s", b)
            .unwrap_err()
            .to_string()
            .contains("duplicate primary key")
    );
    // Missing required binary field.
    let mut b = batch(&good);
    b.columns.remove("code");
    assert!(
        db.upsert("s", b)
            .unwrap_err()
            .to_string()
            .contains("required")
    );
    assert_eq!(db.count("s").unwrap(), 0);
    assert!(matches!(
        db.upsert("nope", batch(&good)),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn engine_upsert_never_duplicates_and_insert_refuses_existing() {
    let (db, _) = mem_db();
    db.create_collection("s", sample_schema()).unwrap();
    let r = rows(50, 2, "k");
    db.insert("s", batch(&r)).unwrap();
    assert_eq!(db.count("s").unwrap(), 50);
    let e = db.insert("s", batch(&r[10..11])).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists(_)), "{e}");
    // Upsert changes the row in place.
    let mut changed = rows(50, 2, "k");
    for x in &mut changed {
        x.threat = Some(99);
    }
    db.upsert("s", batch(&changed[..20])).unwrap();
    assert_eq!(db.count("s").unwrap(), 50);
    db.flush().unwrap();
    db.upsert("s", batch(&changed[10..30])).unwrap();
    assert_eq!(db.count("s").unwrap(), 50);
    let got = db
        .get(
            "s",
            &["k000015".into(), "k000040".into(), "zz".into()],
            &["threat".into()],
        )
        .unwrap();
    assert_eq!(got[0].as_ref().unwrap()["threat"], Value::Int(99));
    assert_eq!(
        got[1].as_ref().unwrap()["threat"],
        r[40].threat.map_or(Value::Null, Value::Int)
    );
    assert!(got[2].is_none());
    let all = db.query("s", None, &[], 1000, 0).unwrap();
    assert_eq!(all.len(), 50);
    let keys: Vec<&str> = all.iter().map(|x| x.0.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 50, "no duplicate keys");
}

#[test]
fn engine_deletes_are_final_across_flush_and_merge() {
    let (db, _) = mem_db();
    db.create_collection("s", sample_schema()).unwrap();
    let r = rows(300, 3, "k");
    for chunk in r.chunks(100) {
        db.upsert("s", batch(chunk)).unwrap();
        db.flush().unwrap();
    }
    let del: Vec<String> = (0..300).step_by(3).map(|i| format!("k{i:06}")).collect();
    let ack = db.delete("s", &del).unwrap();
    assert_eq!(ack.rows, 100);
    assert_eq!(
        db.delete("s", &del).unwrap().rows,
        0,
        "deleting again finds nothing"
    );
    assert_eq!(db.count("s").unwrap(), 200);
    let check = |db: &Database| {
        for k in &del {
            assert!(
                db.get("s", std::slice::from_ref(k), &[]).unwrap()[0].is_none(),
                "{k} still visible"
            );
        }
        // Search with a huge cutoff must not return deleted rows.
        let q = QueryVector::Tlsh(r[0].tlsh.unwrap_or(r[1].tlsh.unwrap()));
        let res = db
            .search(
                "s",
                "tlsh",
                &[q],
                &SearchParams {
                    k: 1000,
                    ..SearchParams::default()
                },
            )
            .unwrap();
        for h in &res.hits[0] {
            assert!(!del.contains(&h.key), "deleted {} found by search", h.key);
        }
        let with_tlsh = r
            .iter()
            .filter(|x| x.tlsh.is_some() && !del.contains(&x.key))
            .count();
        assert_eq!(res.hits[0].len(), with_tlsh);
    };
    check(&db);
    db.compact("s").unwrap();
    assert_eq!(db.describe("s").unwrap().segments, 1);
    check(&db);
    assert_eq!(db.count("s").unwrap(), 200);
}

#[test]
fn engine_reopen_replays_wal_and_keeps_everything() {
    let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    let r = rows(2500, 4, "k");
    {
        let db = Database::open_dir(dir.clone(), opts()).unwrap();
        db.create_collection("s", sample_schema()).unwrap();
        db.upsert("s", batch(&r[..1200])).unwrap();
        db.flush().unwrap();
        db.upsert("s", batch(&r[1200..])).unwrap();
        db.delete("s", &["k000001".into(), "k001300".into()])
            .unwrap();
        // No close: the memtable is only in the WAL.
    }
    let db = Database::open_dir(dir.clone(), opts()).unwrap();
    assert_eq!(db.count("s").unwrap(), 2498);
    assert!(db.get("s", &["k001300".into()], &[]).unwrap()[0].is_none());
    assert!(db.get("s", &["k002499".into()], &[]).unwrap()[0].is_some());
    db.close().unwrap();
    let db = Database::open_dir(dir, opts()).unwrap();
    assert_eq!(db.count("s").unwrap(), 2498);
    assert_eq!(
        db.describe("s").unwrap().memtable_rows,
        0,
        "clean close flushed everything"
    );
}

#[test]
fn engine_single_writer_lock_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::open(tmp.path(), opts()).unwrap();
    let e = Database::open(tmp.path(), opts()).unwrap_err();
    assert!(e.to_string().contains("locked"), "{e}");
    drop(db);
    let _again = Database::open(tmp.path(), opts()).unwrap();
}

#[test]
fn engine_read_only_replica_follows_and_refuses_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let w = Database::open(tmp.path(), opts()).unwrap();
    w.create_collection("s", sample_schema()).unwrap();
    let r = rows(3000, 5, "k");
    w.upsert("s", batch(&r[..1000])).unwrap();
    let ro = Database::open_read_only(
        tmp.path(),
        apksift_index::Options {
            background: false,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(ro.count("s").unwrap(), 1000);
    assert!(matches!(
        ro.upsert("s", batch(&r[..1])),
        Err(Error::ReadOnly)
    ));
    w.upsert("s", batch(&r[1000..2000])).unwrap();
    ro.refresh().unwrap();
    assert_eq!(ro.count("s").unwrap(), 2000);
    w.flush().unwrap(); // new manifest, WAL checkpointed
    w.upsert("s", batch(&r[2000..])).unwrap();
    w.delete("s", &["k000000".into()]).unwrap();
    ro.refresh().unwrap();
    assert_eq!(ro.count("s").unwrap(), 2999);
    w.compact("s").unwrap();
    ro.refresh().unwrap();
    assert_eq!(ro.count("s").unwrap(), 2999);
    assert!(ro.get("s", &["k000000".into()], &[]).unwrap()[0].is_none());
}

#[test]
fn engine_backup_is_a_consistent_openable_store() {
    let (db, _) = mem_db();
    db.create_collection("s", sample_schema()).unwrap();
    let r = rows(1500, 6, "k");
    db.upsert("s", batch(&r[..1000])).unwrap();
    db.flush().unwrap();
    db.upsert("s", batch(&r[1000..])).unwrap();
    let dest = MemDirectory::new();
    let rep = db.backup(&dest).unwrap();
    assert!(rep.files >= 3);
    db.upsert("s", batch(&rows(10, 7, "after"))).unwrap();
    let restored = Database::open_dir(Arc::new(dest), opts()).unwrap();
    assert_eq!(restored.count("s").unwrap(), 1500);
}

#[test]
fn engine_fs_store_survives_reopen_with_segments_and_deletes() {
    let tmp = tempfile::tempdir().unwrap();
    let r = rows(4000, 8, "k");
    {
        let db = Database::open(tmp.path(), opts()).unwrap();
        db.create_collection("s", sample_schema()).unwrap();
        for c in r.chunks(500) {
            db.upsert("s", batch(c)).unwrap();
        }
        db.maintain().unwrap();
        db.delete(
            "s",
            &(0..100).map(|i| format!("k{i:06}")).collect::<Vec<_>>(),
        )
        .unwrap();
        db.flush().unwrap();
    }
    let dir = FsDirectory::open_existing(tmp.path()).unwrap();
    assert!(dir.list().unwrap().iter().any(|f| f.ends_with(".del")));
    let db = Database::open(tmp.path(), opts()).unwrap();
    assert_eq!(db.count("s").unwrap(), 3900);
}

#[test]
fn engine_schemas_with_every_field_kind_roundtrip() {
    let (db, _) = mem_db();
    let schema = Schema::new(
        "k",
        vec![
            FieldSchema::new("b8", FieldType::BinaryVector { dim: 8 }),
            FieldSchema::new("b288", FieldType::BinaryVector { dim: 288 }),
            FieldSchema::new("big", FieldType::BinaryVector { dim: 262_144 }),
            FieldSchema::new("s", FieldType::String { max_len: 3 }),
        ],
    );
    db.create_collection("c", schema).unwrap();
    let mut b = Batch {
        keys: vec!["a".into(), "b".into()],
        ..Batch::default()
    };
    b.columns.insert("b8".into(), Column::Binary(vec![1, 2]));
    b.columns
        .insert("b288".into(), Column::Binary(vec![7u8; 72]));
    b.columns
        .insert("big".into(), Column::Binary(vec![9u8; 2 * 32_768]));
    b.columns
        .insert("s".into(), Column::Str(vec![Some("abcd".into()), None]));
    assert!(
        db.upsert("c", b.clone())
            .unwrap_err()
            .to_string()
            .contains("max_len 3")
    );
    b.columns
        .insert("s".into(), Column::Str(vec![Some("abc".into()), None]));
    db.upsert("c", b).unwrap();
    db.flush().unwrap();
    let g = db
        .get("c", &["a".into()], &["b8".into(), "s".into()])
        .unwrap();
    assert_eq!(g[0].as_ref().unwrap()["b8"], Value::Binary(vec![1]));
    assert_eq!(g[0].as_ref().unwrap()["s"], Value::Str("abc".into()));
    let res = db
        .search(
            "c",
            "big",
            &[QueryVector::Binary(vec![9u8; 32_768])],
            &SearchParams::default(),
        )
        .unwrap();
    assert_eq!(res.hits[0][0].distance, 0.0);
}

#[test]
fn engine_backup_after_reopens_with_a_checkpointed_log() {
    let tmp = tempfile::tempdir().unwrap();
    let bg = apksift_index::Options {
        background: true,
        ..opts()
    };
    for round in 0..3 {
        let db = Database::open(tmp.path(), bg.clone()).unwrap();
        if round == 0 {
            db.create_collection("s", sample_schema()).unwrap();
        }
        db.upsert("s", batch(&rows(20, round, &format!("r{round}-"))))
            .unwrap();
        db.close().unwrap();
    }
    let db = Database::open(tmp.path(), bg).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let dest = tempfile::tempdir().unwrap();
    let d = FsDirectory::create_dir_all(dest.path()).unwrap();
    db.backup(&d).unwrap();
    let restored = Database::open(dest.path(), opts()).unwrap();
    assert_eq!(restored.count("s").unwrap(), 60);
}

#[test]
fn engine_backup_while_writes_continue_is_consistent() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::open(
        tmp.path(),
        apksift_index::Options {
            background: true,
            memtable_rows: 300,
            ..opts()
        },
    )
    .unwrap();
    db.create_collection("s", sample_schema()).unwrap();
    db.upsert("s", batch(&rows(1000, 1, "pre"))).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let db = db.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                db.upsert("s", batch(&rows(50, 100 + i, &format!("w{i}-"))))
                    .unwrap();
                if i.is_multiple_of(3) {
                    db.delete("s", &[format!("pre{:06}", i % 1000)]).unwrap();
                }
                i += 1;
            }
            i
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    let before = db.count("s").unwrap();
    let dest = tempfile::tempdir().unwrap();
    let d = FsDirectory::create_dir_all(dest.path()).unwrap();
    db.backup(&d).unwrap();
    let after = db.count("s").unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = writer.join().unwrap();
    assert!(rounds > 0);
    let restored = Database::open(dest.path(), opts()).unwrap();
    let n = restored.count("s").unwrap();
    assert!(
        n >= before.min(after).saturating_sub(1000) && n <= after + 1000,
        "backup count {n} outside [{before}, {after}]"
    );
    // Whole write batches only: every `w<i>-` batch is complete or absent.
    let all = restored.query("s", None, &[], 1_000_000, 0).unwrap();
    let mut per: std::collections::BTreeMap<String, usize> = Default::default();
    for (k, _) in &all {
        if let Some(p) = k.strip_prefix('w').and_then(|r| r.split('-').next()) {
            *per.entry(p.to_string()).or_default() += 1;
        }
    }
    assert!(
        per.values().all(|&c| c == 50),
        "a write batch was split by the backup"
    );
    let rep = apksift_index::verify::verify_dir(&FsDirectory::open_existing(dest.path()).unwrap())
        .unwrap();
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
}
