//! Recall and latency of the Milvus path against exact search on the embedded engine.
//!
//! `milvus-recall [--milvus milvus://127.0.0.1:19530] [--csv ../shared/data/tlsh-datasets/all_digests.csv]
//!  [--queries 300] [--nlist 64]`
//!
//! Loads the digests of the CSV (column `tlsh`) into an embedded store (exact TLSH tree) and
//! into Milvus twice (BIN_FLAT, and BIN_IVF_FLAT with `nlist` lists, sealed and indexed), then
//! for a sample of stored digests as queries compares, per `nprobe`, top-10 recall (hits
//! whose distance is within the exact 10th distance) and range recall at cutoffs 50 and 100,
//! with the median latency. Prints a Markdown table (used in `docs/SCALE.md`).

use std::collections::BTreeMap;
use std::time::Instant;

use apksift_index::{
    Batch, Column, Database, FieldSchema, FieldType, Options, QueryVector, Schema, SearchParams,
};
use apksift_milvus::{MilvusEngine, MilvusUrl};
use apksift_tlsh::Digest;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |n: &str, d: &str| {
        args.iter()
            .position(|a| a == n)
            .and_then(|i| args.get(i + 1).cloned())
            .unwrap_or_else(|| d.to_string())
    };
    let base = arg("--milvus", "milvus://127.0.0.1:19530");
    let csv = arg("--csv", "../shared/data/tlsh-datasets/all_digests.csv");
    let nq: usize = arg("--queries", "300").parse()?;
    let nlist: u32 = arg("--nlist", "64").parse()?;
    let text = std::fs::read_to_string(&csv)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "tlsh")
        .ok_or("no tlsh column")?;
    let mut digests: Vec<Digest> = lines
        .filter_map(|l| {
            l.split(',')
                .nth(col)
                .and_then(|t| Digest::parse_lenient(t).ok())
        })
        .collect();
    digests.sort_by_key(|d| *d.as_bytes());
    digests.dedup();
    let n = digests.len();
    let keys: Vec<String> = (0..n).map(|i| format!("{i:08}")).collect();
    let schema = Schema::new("key", vec![FieldSchema::new("tlsh", FieldType::Tlsh)]);
    let batch = Batch {
        keys: keys.clone(),
        columns: BTreeMap::from([(
            "tlsh".to_string(),
            Column::Tlsh(digests.iter().map(|d| Some(*d)).collect()),
        )]),
    };
    let dir = tempfile::tempdir()?;
    let db = Database::open(dir.path(), Options::default())?;
    db.create_collection("r", schema.clone())?;
    db.upsert("r", batch.clone())?;
    db.flush()?;
    let flat = MilvusEngine::connect(&MilvusUrl::parse(&format!(
        "{base}/recall_flat?consistency=session"
    ))?)?;
    let ivf = MilvusEngine::connect(&MilvusUrl::parse(&format!(
        "{base}/recall_ivf?consistency=session&index=bin_ivf_flat&nlist={nlist}"
    ))?)?;
    for e in [&flat, &ivf] {
        for c in e.list_collections()? {
            e.drop_collection(&c)?;
        }
        e.create_collection("r", schema.clone())?;
        let t = Instant::now();
        e.upsert("r", batch.clone())?;
        let ins = t.elapsed().as_secs_f64();
        let t = Instant::now();
        e.seal("r")?;
        eprintln!(
            "{}: {n} rows inserted in {ins:.1} s, sealed+indexed in {:.1} s",
            e.location(),
            t.elapsed().as_secs_f64()
        );
    }
    let step = (n / nq.max(1)).max(1);
    let queries: Vec<Digest> = digests.iter().step_by(step).take(nq).copied().collect();
    println!(
        "{n} distinct digests from {csv}, {} queries (stored digests), Milvus {}",
        queries.len(),
        flat.server_version()?
    );
    println!();
    println!(
        "| path | top-10 recall | recall d≤50 | recall d≤100 | p50 top-10 ms | p50 cutoff-100 ms | candidates/query (top-10) |"
    );
    println!("|---|---|---|---|---|---|---|");
    // Exact answers.
    let top = |k: usize, cutoff: Option<f64>| SearchParams {
        k,
        cutoff,
        ..SearchParams::default()
    };
    let mut exact10 = Vec::new();
    let mut exact_r = Vec::new();
    let (mut lat10, mut latr) = (Vec::new(), Vec::new());
    for q in &queries {
        let v = [QueryVector::Tlsh(*q)];
        let t = Instant::now();
        exact10.push(db.search("r", "tlsh", &v, &top(10, None))?.hits.remove(0));
        lat10.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        exact_r.push(
            db.search("r", "tlsh", &v, &top(16384, Some(100.0)))?
                .hits
                .remove(0),
        );
        latr.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "| embedded (exact TLSH tree) | 1.000 | 1.000 | 1.000 | {:.2} | {:.2} | – |",
        median(lat10),
        median(latr)
    );
    let mut paths: Vec<(String, &MilvusEngine, Option<u32>)> =
        vec![("Milvus BIN_FLAT".into(), &flat, None)];
    for p in [1u32, 4, 16, nlist] {
        if p <= nlist {
            paths.push((
                format!("Milvus BIN_IVF_FLAT nlist {nlist} nprobe {p}"),
                &ivf,
                Some(p),
            ));
        }
    }
    for (name, e, nprobe) in paths {
        let (mut r10, mut r50, mut r100, mut t50, mut t100) =
            (0usize, 0usize, 0usize, 0usize, 0usize);
        let (mut l10, mut lr, mut cand) = (Vec::new(), Vec::new(), 0u64);
        for (i, q) in queries.iter().enumerate() {
            let v = [QueryVector::Tlsh(*q)];
            let mut p = top(10, None);
            p.nprobe = nprobe;
            let t = Instant::now();
            let (got, st) = e.search_with_stats("r", "tlsh", &v, &p)?;
            l10.push(t.elapsed().as_secs_f64() * 1e3);
            cand += st.candidates;
            let d10 = exact10[i].last().map_or(f64::MAX, |h| h.distance);
            r10 += got.hits[0]
                .iter()
                .filter(|h| h.distance <= d10)
                .count()
                .min(10);
            let mut p = top(16384, Some(100.0));
            p.nprobe = nprobe;
            let t = Instant::now();
            let got = e.search("r", "tlsh", &v, &p)?;
            lr.push(t.elapsed().as_secs_f64() * 1e3);
            let count = |hits: &[apksift_index::Hit], c: f64| {
                hits.iter().filter(|h| h.distance <= c).count()
            };
            t50 += count(&exact_r[i], 50.0);
            t100 += count(&exact_r[i], 100.0);
            r50 += count(&got.hits[0], 50.0);
            r100 += count(&got.hits[0], 100.0);
        }
        let want10: usize = exact10.iter().map(|h| h.len().min(10)).sum();
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.2} | {:.2} | {:.0} |",
            r10 as f64 / want10.max(1) as f64,
            r50 as f64 / t50.max(1) as f64,
            r100 as f64 / t100.max(1) as f64,
            median(l10),
            median(lr),
            cand as f64 / queries.len() as f64
        );
    }
    for e in [&flat, &ivf] {
        e.drop_collection("r")?;
    }
    Ok(())
}
