//! Import `tlsh-datasets/all_digests.csv` and check exact top-10 search against
//! `knn_ground_truth.jsonl` (both `diff` and `diffxlen`). Exact search must give recall 1.0.

use std::collections::{HashMap, HashSet};

use apksift_core::{Digest, ImportFormat, ImportOptions, SearchOptions};

use crate::common::*;

#[test]
fn knn_all_digests_exact_top10_recall_is_one() {
    let Some(dir) = testdata().map(|d| d.join("tlsh-datasets")).filter(|d| {
        d.join("all_digests.csv").is_file() && d.join("knn_ground_truth.jsonl").is_file()
    }) else {
        println!(
            "SKIP: knn_all_digests_exact_top10_recall_is_one: no tlsh-datasets in APKSIFT_TESTDATA"
        );
        return;
    };
    let csv_path = dir.join("all_digests.csv");
    let store = store("knn_all_digests_exact_top10_recall_is_one");
    let t = std::time::Instant::now();
    let report = store
        .import_digests(
            std::fs::File::open(&csv_path).unwrap(),
            ImportFormat::Auto,
            &ImportOptions::default(),
        )
        .unwrap();
    println!("import: {:?} in {:?}", report, t.elapsed());
    assert_eq!(report.format, "all_digests_csv");
    assert_eq!(report.rows, 27_176);
    assert_eq!(
        report.rows,
        report.stored + report.duplicates + report.skipped
    );
    assert_eq!(report.tnull, 17);
    assert_eq!(report.invalid_digest, 0);
    assert_eq!(report.with_digest, 27_159);

    // The ground truth's corpus: distinct valid digests, first occurrence's source.
    let text = std::fs::read_to_string(&csv_path).unwrap();
    let mut first_source: HashMap<String, String> = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (src, d) = (f[0], f[3]);
        if d != "TNULL" {
            first_source
                .entry(d.to_string())
                .or_insert_with(|| src.to_string());
        }
    }
    let gt = std::fs::read_to_string(dir.join("knn_ground_truth.jsonl")).unwrap();
    let (mut queries, mut found, mut wanted) = (0usize, 0usize, 0usize);
    let t = std::time::Instant::now();
    for line in gt.lines() {
        let q: serde_json::Value = serde_json::from_str(line).unwrap();
        let query = Digest::parse(q["query"].as_str().unwrap()).unwrap();
        let qset = q["query_set"].as_str().unwrap();
        let excluded = |d: &str| -> bool {
            if qset == "mb_2021-09-18" {
                first_source.get(d).map(String::as_str) == Some("tlshCluster/mb_2021-09-18.tlsh")
            } else {
                d == query.to_string()
            }
        };
        for (xlen, key, dist_key) in [(false, "knn", "diff"), (true, "knn_xlen", "diffxlen")] {
            let want: Vec<u32> = q[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h[dist_key].as_u64().unwrap() as u32)
                .collect();
            // Ask for more than 10: several stored rows can share one digest.
            let mut k = 64;
            let got: Vec<u32> = loop {
                let opts = SearchOptions {
                    k,
                    xlen,
                    ..SearchOptions::default()
                };
                let hits = store
                    .search_digests(&[query], &opts)
                    .unwrap()
                    .pop()
                    .unwrap();
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                for h in &hits {
                    let d = h.tlsh.unwrap().to_string();
                    if excluded(&d) || !seen.insert(d) {
                        continue;
                    }
                    out.push(h.distance);
                }
                if out.len() >= want.len() || hits.len() < k {
                    out.truncate(want.len());
                    break out;
                }
                k *= 4;
            };
            // Recall by distance: ties at the 10th distance are equal sets by distance.
            let mut matched = 0;
            let mut pool = got.clone();
            for w in &want {
                if let Some(i) = pool.iter().position(|g| g == w) {
                    pool.remove(i);
                    matched += 1;
                }
            }
            found += matched;
            wanted += want.len();
            assert_eq!(
                got, want,
                "query {} ({qset}, {dist_key}): distances differ",
                query
            );
        }
        queries += 1;
    }
    let recall = found as f64 / wanted as f64;
    println!(
        "knn: {queries} queries x (diff, diffxlen), recall {recall:.4} ({found}/{wanted}) in {:?}",
        t.elapsed()
    );
    assert_eq!(queries, 546);
    assert_eq!(recall, 1.0);
}
