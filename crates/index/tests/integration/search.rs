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
