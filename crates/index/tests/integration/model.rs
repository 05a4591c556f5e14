//! Model test: random operation sequences against a BTreeMap.
use std::collections::BTreeMap;
use std::sync::Arc;

use apksift_index::{Database, QueryVector, SearchParams, Value};
use apksift_storage::{Directory, MemDirectory};
use proptest::prelude::*;

use crate::common::*;

#[derive(Debug, Clone)]
enum Op {
    Upsert(Vec<u16>, u8),
    Insert(Vec<u16>, u8),
    Delete(Vec<u16>),
    Flush,
    Compact,
    Maintain,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (prop::collection::vec(0u16..60, 1..12), any::<u8>()).prop_map(|(k, v)| Op::Upsert(k, v)),
        2 => (prop::collection::vec(0u16..60, 1..5), any::<u8>()).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => prop::collection::vec(0u16..60, 1..8).prop_map(Op::Delete),
        1 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => Just(Op::Maintain),
        1 => Just(Op::Reopen),
    ]
}

fn rows_for(keys: &[u16], v: u8) -> Vec<SampleRow> {
    let mut seen = std::collections::BTreeSet::new();
    let mut base = rows(keys.len(), u64::from(v), "x");
    let mut out = Vec::new();
    for (k, mut r) in keys.iter().zip(base.drain(..)) {
        if seen.insert(*k) {
            r.key = format!("key{k}");
            r.threat = Some(i64::from(v));
            out.push(r);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
    #[test]
    fn model_random_operations_match_a_map(ops in prop::collection::vec(op(), 1..40)) {
        let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
        let mut o = opts();
        o.memtable_rows = 7;
        o.max_segments = 3;
        let mut db = Database::open_dir(dir.clone(), o.clone()).unwrap();
        db.create_collection("s", sample_schema()).unwrap();
        let mut model: BTreeMap<String, (i64, Option<apksift_tlsh::Digest>)> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Upsert(keys, v) => {
                    let r = rows_for(&keys, v);
                    db.upsert("s", batch(&r)).unwrap();
                    for x in r { model.insert(x.key, (i64::from(v), x.tlsh)); }
                }
                Op::Insert(keys, v) => {
                    let r = rows_for(&keys, v);
                    let exists = r.iter().any(|x| model.contains_key(&x.key));
                    let res = db.insert("s", batch(&r));
                    prop_assert_eq!(res.is_err(), exists);
                    if !exists { for x in r { model.insert(x.key, (i64::from(v), x.tlsh)); } }
                }
                Op::Delete(keys) => {
                    let ks: Vec<String> = keys.iter().map(|k| format!("key{k}")).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
                    let n = db.delete("s", &ks).unwrap().rows;
                    let expect = ks.iter().filter(|k| model.remove(*k).is_some()).count() as u64;
                    prop_assert_eq!(n, expect);
                }
                Op::Flush => db.flush().unwrap(),
                Op::Compact => db.compact("s").unwrap(),
                Op::Maintain => db.maintain().unwrap(),
                Op::Reopen => { drop(db); db = Database::open_dir(dir.clone(), o.clone()).unwrap(); }
            }
            prop_assert_eq!(db.count("s").unwrap(), model.len() as u64);
        }
        let all = db.query("s", None, &["threat".into()], 10_000, 0).unwrap();
        let got: Vec<(String, i64)> = all.into_iter().map(|(k, f)| (k, match f["threat"] { Value::Int(x) => x, _ => -1 })).collect();
        let want: Vec<(String, i64)> = model.iter().map(|(k, v)| (k.clone(), v.0)).collect();
        prop_assert_eq!(got, want);
        // Every stored digest is found at distance 0.
        for (k, (_, d)) in &model {
            if let Some(d) = d {
                let res = db.search("s", "tlsh", &[QueryVector::Tlsh(*d)], &SearchParams { k: 100, cutoff: Some(0.0), ..SearchParams::default() }).unwrap();
                prop_assert!(res.hits[0].iter().any(|h| &h.key == k), "{} not found", k);
            }
        }
    }
}
