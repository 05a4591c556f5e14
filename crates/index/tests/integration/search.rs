//! Search equals brute force for every metric, index and parameter mix.
use std::collections::BTreeMap;

use apksift_index::metric::reference;
use apksift_index::{
    Batch, Column, Database, Error, FieldSchema, FieldType, IndexSpec, Metric, QueryVector, Schema,
    SearchParams,
};
use apksift_tlsh::Digest;
use rand::{Rng, SeedableRng};

use crate::common::*;

/// Brute force over (key, value) pairs: sorted by (distance, key), filtered by range.
fn brute<F: Fn(&[u8]) -> Option<f64>>(
    data: &BTreeMap<String, Vec<u8>>,
    dist: F,
    k: usize,
    lo: f64,
    hi: f64,
    hi_incl: bool,
) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = data
        .iter()
        .filter_map(|(key, x)| dist(x).map(|d| (key.clone(), d)))
        .filter(|(_, d)| *d >= lo && if hi_incl { *d <= hi } else { *d < hi })
        .collect();
    v.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    v.truncate(k);
    v
}

fn binary_db(
    dim: u32,
    index: IndexSpec,
    n: usize,
    seed: u64,
) -> (Database, BTreeMap<String, Vec<u8>>) {
    let (db, _) = mem_db();
    let schema = Schema::new(
        "id",
        vec![FieldSchema::new("v", FieldType::BinaryVector { dim }).with_index(index)],
    );
    db.create_collection("c", schema).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let w = dim as usize / 8;
    let mut data = BTreeMap::new();
    // Clustered data with exact duplicates, so ties happen.
    let centers: Vec<Vec<u8>> = (0..20)
        .map(|_| (0..w).map(|_| rng.random()).collect())
        .collect();
    for i in 0..n {
        let mut v = centers[i % 20].clone();
        for _ in 0..rng.random_range(0..(w * 2)) {
            let j = rng.random_range(0..w);
            v[j] ^= 1 << rng.random_range(0..8);
        }
        if i % 17 == 0 {
            v = centers[0].clone();
        }
        if i % 29 == 0 {
            v.iter_mut().for_each(|b| *b &= 0x11);
        }
        data.insert(format!("r{i:05}"), v);
    }
    let keys: Vec<String> = data.keys().cloned().collect();
    for (ci, chunk) in keys.chunks(n / 3 + 1).enumerate() {
        let b = Batch {
            keys: chunk.to_vec(),
            columns: [(
                "v".to_string(),
                Column::Binary(chunk.iter().flat_map(|k| data[k].clone()).collect()),
            )]
            .into(),
        };
        db.upsert("c", b).unwrap();
        if ci < 2 {
            db.flush().unwrap(); // two segments + a memtable
        }
    }
    (db, data)
}

#[test]
fn search_every_binary_metric_equals_reference_flat() {
    for dim in [64u32, 192, 256, 384, 520] {
        let (db, data) = binary_db(dim, IndexSpec::Flat, 900, u64::from(dim));
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let w = dim as usize / 8;
        for qi in 0..12 {
            let q: Vec<u8> = if qi % 2 == 0 {
                data.values().nth(qi * 31).unwrap().clone()
            } else {
                (0..w).map(|_| rng.random()).collect()
            };
            for metric in [
                Metric::Hamming,
                Metric::Jaccard,
                Metric::Tanimoto,
                Metric::Substructure,
                Metric::Superstructure,
            ] {
                let r: fn(&[u8], &[u8]) -> Option<f64> = match metric {
                    Metric::Hamming => |a, b| Some(f64::from(reference::hamming(a, b))),
                    Metric::Jaccard => |a, b| Some(reference::jaccard(a, b)),
                    Metric::Tanimoto => |a, b| Some(reference::tanimoto(a, b)),
                    Metric::Substructure => |a, b| reference::substructure(a, b).then_some(0.0),
                    _ => |a, b| reference::superstructure(a, b).then_some(0.0),
                };
                let k = 25;
                let want = brute(
                    &data,
                    |x| r(&q, x),
                    k,
                    f64::NEG_INFINITY,
                    f64::INFINITY,
                    true,
                );
                let res = db
                    .search(
                        "c",
                        "v",
                        &[QueryVector::Binary(q.clone())],
                        &SearchParams {
                            k,
                            metric: Some(metric),
                            ..SearchParams::default()
                        },
                    )
                    .unwrap();
                let got: Vec<(String, f64)> = res.hits[0]
                    .iter()
                    .map(|h| (h.key.clone(), h.distance))
                    .collect();
                assert_eq!(got.len(), want.len(), "dim {dim} {metric:?}");
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g.0, w.0, "dim {dim} {metric:?} q{qi}");
                    assert!(
                        (g.1 - w.1).abs() < 1e-9 || g.1 == w.1,
                        "dim {dim} {metric:?}: {} vs {}",
                        g.1,
                        w.1
                    );
                }
            }
            // Range search, Milvus semantics.
            let want = brute(
                &data,
                |x| Some(f64::from(reference::hamming(&q, x))),
                16_384,
                5.0,
                40.0,
                false,
            );
            let res = db
                .search(
                    "c",
                    "v",
                    &[QueryVector::Binary(q.clone())],
                    &SearchParams {
                        k: 16_384,
                        radius: Some(40.0),
                        range_filter: Some(5.0),
                        ..SearchParams::default()
                    },
                )
                .unwrap();
            let got: Vec<(String, f64)> = res.hits[0]
                .iter()
                .map(|h| (h.key.clone(), h.distance))
                .collect();
            assert_eq!(got, want, "range dim {dim}");
        }
    }
}

#[test]
fn search_ivf_probing_every_list_equals_flat_and_reports_recall() {
    let (db, data) = binary_db(256, IndexSpec::IvfFlat { nlist: 16 }, 3000, 11);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut found = 0usize;
    let mut total = 0usize;
    for qi in 0..40 {
        let mut q = data.values().nth(qi * 50).unwrap().clone();
        q[rng.random_range(0..32)] ^= 0x21;
        let flat = db
            .search(
                "c",
                "v",
                &[QueryVector::Binary(q.clone())],
                &SearchParams {
                    k: 10,
                    brute_force: true,
                    ..SearchParams::default()
                },
            )
            .unwrap();
        let all = db
            .search(
                "c",
                "v",
                &[QueryVector::Binary(q.clone())],
                &SearchParams {
                    k: 10,
                    nprobe: Some(16),
                    ..SearchParams::default()
                },
            )
            .unwrap();
        assert_eq!(all.hits, flat.hits, "nprobe = nlist must equal FLAT");
        let one = db
            .search(
                "c",
                "v",
                &[QueryVector::Binary(q.clone())],
                &SearchParams {
                    k: 10,
                    nprobe: Some(1),
                    ..SearchParams::default()
                },
            )
            .unwrap();
        let truth: std::collections::HashSet<&str> =
            flat.hits[0].iter().map(|h| h.key.as_str()).collect();
        found += one.hits[0]
            .iter()
            .filter(|h| truth.contains(h.key.as_str()))
            .count();
        total += truth.len();
        for m in [Metric::Jaccard, Metric::Tanimoto] {
            let f = db
                .search(
                    "c",
                    "v",
                    &[QueryVector::Binary(q.clone())],
                    &SearchParams {
                        k: 10,
                        metric: Some(m),
                        brute_force: true,
                        ..SearchParams::default()
                    },
                )
                .unwrap();
            let a = db
                .search(
                    "c",
                    "v",
                    &[QueryVector::Binary(q.clone())],
                    &SearchParams {
                        k: 10,
                        metric: Some(m),
                        nprobe: Some(16),
                        ..SearchParams::default()
                    },
                )
                .unwrap();
            assert_eq!(a.hits, f.hits);
        }
    }
    let recall = found as f64 / total as f64;
    eprintln!("IVF nlist 16 nprobe 1 recall@10 on clustered data: {recall:.3}");
    assert!(recall > 0.0 && recall <= 1.0);
}

#[test]
fn search_tlsh_tree_equals_brute_force_with_filters_and_ranges() {
    let (db, _) = mem_db();
    db.create_collection("s", sample_schema()).unwrap();
    let r = rows(6000, 21, "k");
    for (i, c) in r.chunks(1500).enumerate() {
        db.upsert("s", batch(c)).unwrap();
        if i < 3 {
            db.flush().unwrap();
        }
    }
    db.delete(
        "s",
        &(0..6000)
            .step_by(10)
            .map(|i| format!("k{i:06}"))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for qi in 0..60 {
        let q: Digest = if qi % 3 == 0 {
            digest(&mut rng)
        } else {
            near(
                &r[rng.random_range(0..6000)]
                    .tlsh
                    .unwrap_or(digest(&mut rng)),
                &mut rng,
                4,
            )
        };
        for (k, cutoff, radius, filter, metric) in [
            (10usize, None, None, None, Metric::Tlsh),
            (10, Some(100.0), None, None, Metric::Tlsh),
            (50, Some(30.0), None, Some("threat >= 2"), Metric::Tlsh),
            (16_384, None, Some(31.0), None, Metric::Tlsh),
            (
                5,
                None,
                None,
                Some("family == \"Kmin\" and malware"),
                Metric::TlshXlen,
            ),
            (1, Some(0.0), None, None, Metric::Tlsh),
        ] {
            let p = SearchParams {
                k,
                cutoff,
                radius,
                filter: filter.map(String::from),
                metric: Some(metric),
                output_fields: vec!["family".into()],
                ..SearchParams::default()
            };
            let fast = db.search("s", "tlsh", &[QueryVector::Tlsh(q)], &p).unwrap();
            let slow = db
                .search(
                    "s",
                    "tlsh",
                    &[QueryVector::Tlsh(q)],
                    &SearchParams {
                        brute_force: true,
                        ..p.clone()
                    },
                )
                .unwrap();
            assert_eq!(
                fast.hits, slow.hits,
                "q{qi} k{k} cutoff {cutoff:?} radius {radius:?} {filter:?}"
            );
            assert!(fast.counters.rows <= slow.counters.rows);
        }
    }
}

#[test]
fn search_batches_run_every_query() {
    let (db, _) = mem_db();
    db.create_collection("s", sample_schema()).unwrap();
    let r = rows(500, 9, "k");
    db.upsert("s", batch(&r)).unwrap();
    let qs: Vec<QueryVector> = r
        .iter()
        .filter_map(|x| x.tlsh)
        .take(64)
        .map(QueryVector::Tlsh)
        .collect();
    let res = db
        .search(
            "s",
            "tlsh",
            &qs,
            &SearchParams {
                k: 1,
                ..SearchParams::default()
            },
        )
        .unwrap();
    assert_eq!(res.hits.len(), 64);
    for (q, h) in qs.iter().zip(&res.hits) {
        let QueryVector::Tlsh(d) = q else {
            unreachable!()
        };
        assert_eq!(h[0].distance, 0.0, "{d}");
    }
}

#[test]
fn search_rejects_unsupported_parameters_by_name() {
    let (db, _) = mem_db();
    db.create_collection("s", sample_schema()).unwrap();
    db.create_collection("i", ivf_schema(64, 4)).unwrap();
    let t = QueryVector::Tlsh(Digest::from_bytes([1u8; 35]));
    let b = QueryVector::Binary(vec![0u8; 8]);
    let cases: Vec<(&str, &str, QueryVector, SearchParams, &str)> = vec![
        (
            "s",
            "tlsh",
            t.clone(),
            SearchParams {
                nprobe: Some(4),
                ..SearchParams::default()
            },
            "nprobe",
        ),
        (
            "s",
            "tlsh",
            t.clone(),
            SearchParams {
                k: 0,
                ..SearchParams::default()
            },
            "k (limit)",
        ),
        (
            "s",
            "tlsh",
            t.clone(),
            SearchParams {
                k: 16_385,
                ..SearchParams::default()
            },
            "16384",
        ),
        (
            "s",
            "tlsh",
            t.clone(),
            SearchParams {
                metric: Some(Metric::Hamming),
                ..SearchParams::default()
            },
            "does not apply",
        ),
        (
            "s",
            "code",
            b.clone(),
            SearchParams {
                metric: Some(Metric::Tlsh),
                ..SearchParams::default()
            },
            "does not apply",
        ),
        (
            "s",
            "code",
            QueryVector::Binary(vec![0u8; 9]),
            SearchParams::default(),
            "8 bytes",
        ),
        (
            "s",
            "code",
            t.clone(),
            SearchParams::default(),
            "binary vectors",
        ),
        (
            "s",
            "family",
            b.clone(),
            SearchParams::default(),
            "not a vector field",
        ),
        (
            "s",
            "nope",
            b.clone(),
            SearchParams::default(),
            "unknown field",
        ),
        (
            "s",
            "code",
            b.clone(),
            SearchParams {
                range_filter: Some(1.0),
                ..SearchParams::default()
            },
            "needs radius",
        ),
        (
            "s",
            "code",
            b.clone(),
            SearchParams {
                metric: Some(Metric::Substructure),
                radius: Some(3.0),
                ..SearchParams::default()
            },
            "only matches at distance 0",
        ),
        (
            "s",
            "code",
            b.clone(),
            SearchParams {
                filter: Some("threat = 3".into()),
                ..SearchParams::default()
            },
            "filter",
        ),
        (
            "s",
            "code",
            b.clone(),
            SearchParams {
                output_fields: vec!["zz".into()],
                ..SearchParams::default()
            },
            "unknown field",
        ),
        (
            "i",
            "v",
            b.clone(),
            SearchParams {
                nprobe: Some(5),
                ..SearchParams::default()
            },
            "nprobe 5",
        ),
        (
            "i",
            "v",
            b.clone(),
            SearchParams {
                metric: Some(Metric::Substructure),
                ..SearchParams::default()
            },
            "",
        ),
    ];
    for (c, f, v, p, needle) in cases {
        let r = db.search(c, f, &[v], &p);
        if needle.is_empty() {
            // Substructure on an IVF field falls back to a FLAT scan (Milvus: FLAT only).
            assert!(r.is_ok(), "{r:?}");
            continue;
        }
        let e = r.unwrap_err();
        assert!(matches!(e, Error::Invalid(_) | Error::NotFound(_)), "{e}");
        assert!(e.to_string().contains(needle), "{needle:?} not in {e}");
    }
}

/// Live rows of `hamming_db`: key → (vector, t).
type Live = BTreeMap<String, (Vec<u8>, Option<i64>)>;

/// A collection with a binary field `v` (dim bits) and an int `t`: two
/// segments and a memtable, upserts that move keys between parts, and
/// deletes in segments and in the memtable.
fn hamming_db(dim: u32, index: IndexSpec, n: usize, seed: u64) -> (Database, Live) {
    let (db, _) = mem_db();
    let schema = Schema::new(
        "id",
        vec![
            FieldSchema::new("v", FieldType::BinaryVector { dim }).with_index(index),
            FieldSchema::new("t", FieldType::Int),
        ],
    );
    db.create_collection("c", schema).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let w = dim as usize / 8;
    let centers: Vec<Vec<u8>> = (0..7)
        .map(|_| (0..w).map(|_| rng.random()).collect())
        .collect();
    let mut live = Live::new();
    let put = |db: &Database, live: &mut Live, keys: Vec<String>, rng: &mut rand::rngs::StdRng| {
        let mut vs = Vec::new();
        let mut ts = Vec::new();
        for k in &keys {
            // Near a center (ties and small distances), or an exact copy.
            let mut v = centers[rng.random_range(0..centers.len())].clone();
            if rng.random_bool(0.8) {
                for _ in 0..rng.random_range(0..=w.min(12)) {
                    let j = rng.random_range(0..w);
                    v[j] ^= 1 << rng.random_range(0..8);
                }
            }
            let t = (!rng.random_bool(0.1)).then(|| rng.random_range(0..5));
            vs.extend_from_slice(&v);
            ts.push(t);
            live.insert(k.clone(), (v, t));
        }
        let b = Batch {
            keys,
            columns: [
                ("v".to_string(), Column::Binary(vs)),
                ("t".to_string(), Column::Int(ts)),
            ]
            .into(),
        };
        db.upsert("c", b).unwrap();
    };
    // Keys are not in row order: rows are inserted in a shuffled key order.
    // Keys of 2..9 bytes, many sharing their first 8 bytes.
    let mut keys: Vec<String> = (0..n)
        .map(|i| {
            if i % 2 == 0 {
                format!("key-{i:05}")
            } else {
                format!("k{i}")
            }
        })
        .collect();
    for i in (1..keys.len()).rev() {
        keys.swap(i, rng.random_range(0..=i));
    }
    let third = n / 3 + 1;
    for (ci, chunk) in keys.chunks(third).enumerate() {
        put(&db, &mut live, chunk.to_vec(), &mut rng);
        if ci < 2 {
            db.flush().unwrap();
        }
    }
    // Upserts of keys of the segments (the old rows become deleted) and deletes.
    let again: Vec<String> = keys.iter().step_by(9).cloned().collect();
    put(&db, &mut live, again, &mut rng);
    let gone: Vec<String> = keys.iter().skip(3).step_by(7).cloned().collect();
    db.delete("c", &gone).unwrap();
    for k in &gone {
        live.remove(k);
    }
    (db, live)
}

fn hits_of(r: &apksift_index::SearchResult) -> Vec<Vec<(String, f64, Option<i64>)>> {
    r.hits
        .iter()
        .map(|h| {
            h.iter()
                .map(|x| {
                    let t = match x.fields.get("t") {
                        Some(apksift_index::Value::Int(i)) => Some(*i),
                        _ => None,
                    };
                    (x.key.clone(), x.distance, t)
                })
                .collect()
        })
        .collect()
}

#[test]
fn search_hamming_batches_equal_single_queries_and_brute_force() {
    // Widths with and without special cases, odd ones, and long ones.
    for (dim, n) in [
        (8u32, 300usize),
        (24, 300),
        (40, 300),
        (64, 500),
        (136, 300),
        (256, 500),
        (384, 500),
        (520, 300),
        (1032, 200),
        (1544, 200),
        (4104, 100),
    ] {
        let index = if dim == 384 {
            IndexSpec::IvfFlat { nlist: 8 }
        } else {
            IndexSpec::Flat
        };
        let (db, live) = hamming_db(dim, index, n, u64::from(dim) * 7 + 1);
        let w = dim as usize / 8;
        let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(dim));
        let vals: Vec<&(Vec<u8>, Option<i64>)> = live.values().collect();
        let qs: Vec<QueryVector> = (0..70)
            .map(|i| {
                let v = if i % 3 == 0 {
                    (0..w).map(|_| rng.random()).collect()
                } else {
                    let mut v = vals[rng.random_range(0..vals.len())].0.clone();
                    if i % 3 == 2 {
                        let j = rng.random_range(0..w);
                        v[j] ^= 0x81;
                    }
                    v
                };
                QueryVector::Binary(v)
            })
            .collect();
        let pool1 = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        for (k, filter, radius, range_filter, cutoff) in [
            (1usize, None, None, None, None),
            (7, None, None, None, None),
            (10, Some("t < 3"), None, None, None),
            (50, None, Some(40.0), Some(3.0), None),
            (33, Some("t is null or t == 4"), None, None, Some(20.0)),
            (16_384, None, None, None, None),
        ] {
            let p = SearchParams {
                k,
                filter: filter.map(str::to_string),
                radius,
                range_filter,
                cutoff,
                output_fields: vec!["t".into()],
                brute_force: matches!(index, IndexSpec::IvfFlat { .. }),
                ..SearchParams::default()
            };
            let single: Vec<Vec<(String, f64, Option<i64>)>> = qs
                .iter()
                .map(|q| {
                    let r = db.search("c", "v", std::slice::from_ref(q), &p).unwrap();
                    hits_of(&r).remove(0)
                })
                .collect();
            for (i, q) in qs.iter().enumerate() {
                let QueryVector::Binary(qb) = q else {
                    unreachable!()
                };
                let (lo, hi, incl) = match (radius, cutoff) {
                    (Some(r), _) => (range_filter.unwrap_or(f64::NEG_INFINITY), r, false),
                    (None, Some(c)) => (f64::NEG_INFINITY, c, true),
                    _ => (f64::NEG_INFINITY, f64::INFINITY, true),
                };
                let keep = |t: Option<i64>| match filter {
                    Some("t < 3") => t.is_some_and(|t| t < 3),
                    Some(_) => t.is_none_or(|t| t == 4),
                    None => true,
                };
                let data: BTreeMap<String, Vec<u8>> = live
                    .iter()
                    .filter(|(_, (_, t))| keep(*t))
                    .map(|(key, (v, _))| (key.clone(), v.clone()))
                    .collect();
                let want = brute(
                    &data,
                    |x| Some(f64::from(reference::hamming(qb, x))),
                    k,
                    lo,
                    hi,
                    incl,
                );
                let got: Vec<(String, f64)> =
                    single[i].iter().map(|x| (x.0.clone(), x.1)).collect();
                assert_eq!(got, want, "dim {dim} k {k} {filter:?} q{i}");
            }
            for nq in [2usize, 9, 70] {
                let batch = db.search("c", "v", &qs[..nq], &p).unwrap();
                assert_eq!(hits_of(&batch), single[..nq], "dim {dim} k {k} nq {nq}");
                let one = pool1.install(|| db.search("c", "v", &qs[..nq], &p).unwrap());
                assert_eq!(
                    hits_of(&one),
                    single[..nq],
                    "dim {dim} k {k} nq {nq} 1 thread"
                );
                let rows = batch.counters.rows;
                let each: u64 = qs[..nq]
                    .iter()
                    .map(|q| {
                        db.search("c", "v", std::slice::from_ref(q), &p)
                            .unwrap()
                            .counters
                            .rows
                    })
                    .sum();
                assert_eq!(rows, each, "dim {dim} rows compared");
            }
        }
    }
}
