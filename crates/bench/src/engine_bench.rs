//! Benchmarks of the apksift engine through its public API (`Database`):
//! binary FLAT and IVF_FLAT on the peer's codes, the TLSH field (TLSH_TREE),
//! and reopen/memory of a stored collection. Every result is a JSON line
//! (see `util::Emitter`) that `bench/report.py` turns into tables beside the
//! same run's Faiss and Milvus figures.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use apksift_index::tlsh_kernel::TlshQuery;
use apksift_index::{
    Batch, Column, Database, FieldSchema, FieldType, Hit, IndexSpec, Options, QueryVector, Schema,
    SearchParams,
};
use apksift_tlsh::{DIGEST_LEN, Digest};
use serde_json::{Map, Value, json};

use crate::codes::Enc;
use crate::util::{self, Dataset, Emitter, key, mib, pct, r, row_of, rss};

/// Name of the collection and of its vector field.
const COLL: &str = "bench";
const FIELD: &str = "v";

/// Options for a bulk load: one memtable for the whole load, so `flush`
/// writes one segment and builds its index once (as Faiss's `add` does).
fn bulk_options() -> Options {
    Options {
        memtable_rows: usize::MAX,
        memtable_bytes: usize::MAX,
        background: false,
        ..Options::default()
    }
}

fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("thread pool")
}

/// Prepares a store directory: it must not exist or be empty.
fn fresh_dir(p: &Path) -> Result<()> {
    if p.exists() {
        let empty = std::fs::read_dir(p)?.next().is_none();
        ensure!(
            empty,
            "{} exists and is not empty (remove it or pick another --db)",
            p.display()
        );
    }
    std::fs::create_dir_all(p)?;
    Ok(())
}

/// Sum of file sizes under `p`, and per file kind (extension or name).
fn dir_sizes(p: &Path) -> Result<(u64, Map<String, Value>)> {
    let mut total = 0u64;
    let mut by: std::collections::BTreeMap<String, u64> = Default::default();
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let md = e.metadata()?;
            if md.is_dir() {
                stack.push(e.path());
            } else {
                total += md.len();
                let name = e.file_name().to_string_lossy().to_string();
                let kind = match name.rsplit_once('.') {
                    Some((_, ext)) => ext.to_string(),
                    None => name,
                };
                *by.entry(kind).or_default() += md.len();
            }
        }
    }
    Ok((total, by.into_iter().map(|(k, v)| (k, json!(v))).collect()))
}

struct Built {
    db: Database,
    row: Map<String, Value>,
}

/// Creates the collection and inserts `n` rows in batches (durable writes),
/// then flushes (segment + index build). Only engine calls are timed.
fn build(
    dir: &Path,
    field: FieldSchema,
    n: usize,
    batch: usize,
    mut column: impl FnMut(usize, usize) -> Column,
) -> Result<Built> {
    fresh_dir(dir)?;
    let rss0 = rss();
    let t = Instant::now();
    let db = Database::open(dir, bulk_options())?;
    db.create_collection(COLL, Schema::new("id", vec![field]))?;
    let open_s = t.elapsed().as_secs_f64();
    let mut insert_s = 0.0;
    for s in (0..n).step_by(batch) {
        let e = (s + batch).min(n);
        let b = Batch {
            keys: (s..e).map(key).collect(),
            columns: [(FIELD.to_string(), column(s, e))].into(),
        };
        let t = Instant::now();
        db.insert(COLL, b)?;
        insert_s += t.elapsed().as_secs_f64();
    }
    let rss_mem = rss();
    let t = Instant::now();
    db.flush()?;
    let flush_s = t.elapsed().as_secs_f64();
    let count = db.count(COLL)?;
    ensure!(count as usize == n, "count {count} != {n}");
    let info = db.describe(COLL)?;
    let (disk, _) = dir_sizes(dir)?;
    let mut row = Map::new();
    row.insert("n".into(), json!(n));
    row.insert("batch".into(), json!(batch));
    row.insert("open_s".into(), json!(r(open_s, 3)));
    row.insert("insert_s".into(), json!(r(insert_s, 3)));
    row.insert("flush_index_s".into(), json!(r(flush_s, 3)));
    row.insert("build_s".into(), json!(r(insert_s + flush_s, 3)));
    row.insert("segments".into(), json!(info.segments));
    row.insert("segment_mb".into(), json!(mib(info.segment_bytes)));
    row.insert("disk_mb".into(), json!(mib(disk)));
    row.insert(
        "rss_mb_memtable".into(),
        json!(mib(rss_mem.saturating_sub(rss0))),
    );
    row.insert(
        "rss_mb_after_flush".into(),
        json!(mib(rss().saturating_sub(rss0))),
    );
    row.insert(
        "vmhwm_mb".into(),
        json!(mib(util::proc_status_bytes("VmHWM"))),
    );
    Ok(Built { db, row })
}

/// Single-query calls (nq = 1, on this thread): latencies in ms and hits.
/// CPU time consumed by the calling thread, in ms (`CLOCK_THREAD_CPUTIME_ID`). On a shared
/// machine a query's wall time includes the time the thread waited for a core (a 2-core VM
/// with a load average of 4-8 preempts for whole scheduler slices of several ms); its CPU time
/// does not, so the benchmark records both.
fn thread_cpu_ms() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 / 1e6
}

/// Single-query calls on the calling thread: (wall ms, thread CPU ms) per query, hits, rows scored.
type Single = (Vec<f64>, Vec<f64>, Vec<Vec<Hit>>, u64);

fn single(db: &Database, qs: &[QueryVector], p: &SearchParams, count: usize) -> Result<Single> {
    let mut lat = Vec::with_capacity(count);
    let mut cpu = Vec::with_capacity(count);
    let mut hits = Vec::with_capacity(count);
    let mut rows = 0;
    for q in qs.iter().take(count) {
        let one = std::slice::from_ref(q);
        let c = thread_cpu_ms();
        let t = Instant::now();
        let res = db.search(COLL, FIELD, one, p)?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        cpu.push(thread_cpu_ms() - c);
        rows += res.counters.rows;
        hits.push(res.hits.into_iter().next().unwrap_or_default());
    }
    Ok((lat, cpu, hits, rows))
}

/// One batch call with all queries on a pool of `threads`; returns (QPS, hits).
fn batch(
    db: &Database,
    qs: &[QueryVector],
    p: &SearchParams,
    pool: &rayon::ThreadPool,
) -> Result<(f64, Vec<Vec<Hit>>)> {
    let t = Instant::now();
    let res = pool.install(|| db.search(COLL, FIELD, qs, p))?;
    let s = t.elapsed().as_secs_f64();
    Ok((qs.len() as f64 / s, res.hits))
}

/// Median QPS of `reps` batch calls; hits of the last.
fn batch_median(
    db: &Database,
    qs: &[QueryVector],
    p: &SearchParams,
    pool: &rayon::ThreadPool,
    reps: usize,
) -> Result<(f64, Vec<Vec<Hit>>)> {
    let mut qps = Vec::new();
    let mut last = Vec::new();
    for _ in 0..reps.max(1) {
        let (q, h) = batch(db, qs, p, pool)?;
        qps.push(q);
        last = h;
    }
    Ok((pct(&mut qps, 0.5), last))
}

fn ids(h: &[Hit]) -> Vec<u32> {
    h.iter().map(|x| row_of(&x.key)).collect()
}

/// Recall of binary-code candidates against exact TLSH, with the definitions
/// of the peer benchmark (`bench_faiss.py` `score`): tie-aware R@10 of the
/// candidates as returned, R@10 after reranking all k by exact TLSH, and the
/// share of all rows with TLSH <= 30/50/100 among the candidates; over family
/// queries, micro-averaged.
fn tlsh_recall(ds: &Dataset, hits: &[Vec<Hit>], k: usize, out: &mut Map<String, Value>) {
    let Some(gt) = &ds.gt else { return };
    let (mut asis, mut rerank, mut fam) = (0usize, 0usize, 0usize);
    let mut found = [0usize; 3];
    let mut total = [0usize; 3];
    for (qi, h) in hits.iter().enumerate() {
        if ds.qfam[qi] < 0 {
            continue;
        }
        fam += 1;
        let q = TlshQuery::new(
            Digest::from_bytes(ds.query(qi).try_into().unwrap_or([0; 35])),
            true,
        );
        let d10 = gt.top_d[qi][9];
        let dq: Vec<u32> = ids(h)
            .iter()
            .map(|&i| q.distance(ds.rec(i as usize)))
            .collect();
        asis += dq.iter().take(10).filter(|&&d| d <= d10).count();
        let mut s = dq.clone();
        s.sort_unstable();
        rerank += s.iter().take(10).filter(|&&d| d <= d10).count();
        for (j, t) in [30u32, 50, 100].iter().enumerate() {
            found[j] += dq.iter().filter(|&&d| d <= *t).count();
            total[j] += gt.rad[qi].iter().filter(|x| x.1 <= *t).count();
        }
    }
    let fam = fam.max(1) as f64;
    if k == 10 {
        out.insert(
            "recall10_asis_fam".into(),
            json!(r(asis as f64 / fam / 10.0, 4)),
        );
    }
    out.insert(
        format!("recall10_rerank_fam@k{k}"),
        json!(r(rerank as f64 / fam / 10.0, 4)),
    );
    for (j, t) in [30, 50, 100].iter().enumerate() {
        out.insert(
            format!("rad{t}_fam@k{k}"),
            json!(r(found[j] as f64 / total[j].max(1) as f64, 4)),
        );
    }
}

fn binary_queries(ds: &Dataset, enc: Enc) -> Vec<QueryVector> {
    enc.encode(&ds.queries)
        .chunks_exact(enc.width())
        .map(|c| QueryVector::Binary(c.to_vec()))
        .collect()
}

/// Exact Hamming k-th distances by a plain loop (independent of the engine).
fn reference_kth(codes: &[u8], w: usize, q: &[u8], k: usize) -> Vec<u32> {
    let mut d: Vec<u32> = codes
        .chunks_exact(w)
        .map(|c| c.iter().zip(q).map(|(a, b)| (a ^ b).count_ones()).sum())
        .collect();
    d.select_nth_unstable(k - 1);
    let mut top = d[..k].to_vec();
    top.sort_unstable();
    top
}

/// Reads a `.npy` of Faiss distances (`flat_{enc}_D10.npy`, int32) if present.
fn faiss_d10(data: &Path, enc: Enc) -> Option<Vec<Vec<u32>>> {
    let b = std::fs::read(data.join(format!("flat_{}_D10.npy", enc.name()))).ok()?;
    let a = util::parse_npy(&b).ok()?;
    let k = *a.shape.get(1)?;
    Some(
        a.data
            .chunks_exact(k)
            .map(|c| c.iter().map(|&x| x as u32).collect())
            .collect(),
    )
}

/// Common arguments of the search benchmarks.
#[derive(clap::Args, Clone)]
pub struct Common {
    /// Dataset directory (db.bin, queries.bin, queries_family.i32, gt.npz).
    #[arg(long)]
    pub data: PathBuf,
    /// Store directory (created; must be absent or empty).
    #[arg(long)]
    pub db: PathBuf,
    /// Rows per insert call.
    #[arg(long, default_value_t = 50_000)]
    pub batch: usize,
    /// Single-query calls timed.
    #[arg(long, default_value_t = 1000)]
    pub lat_queries: usize,
    /// Repetitions (median) of the k=10 batch runs.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Append result rows to this JSON-lines file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep the store directory afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Digits of the primary keys (8, or 64 for keys as long as an APK store's SHA-256 hex).
    #[arg(long, default_value_t = 8)]
    pub key_width: usize,
}

fn base_row(kind: &str, c: &Common, n: usize) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("system".into(), json!("apksift"));
    m.insert("bench".into(), json!(kind));
    m.insert("data".into(), json!(c.data.display().to_string()));
    m.insert("n".into(), json!(n));
    m.insert("key_bytes".into(), json!(util::key_width()));
    // Binary Hamming kernel of this process (`APKSIFT_SIMD` overrides it).
    m.insert(
        "hamming_kernel".into(),
        json!(apksift_index::simd_binary::kernel().name()),
    );
    m
}

fn lat_fields(m: &mut Map<String, Value>, prefix: &str, lat: &mut [f64]) {
    m.insert(format!("{prefix}p50_ms"), json!(r(pct(lat, 0.5), 4)));
    m.insert(format!("{prefix}p99_ms"), json!(r(pct(lat, 0.99), 4)));
    m.insert(
        format!("{prefix}mean_ms"),
        json!(r(lat.iter().sum::<f64>() / lat.len().max(1) as f64, 4)),
    );
}

fn finish(db: Database, c: &Common) -> Result<()> {
    db.close()?;
    if !c.keep {
        std::fs::remove_dir_all(&c.db).ok();
    }
    Ok(())
}

/// `flat`: binary FLAT (exact Hamming) on thermometer and raw codes.
pub fn flat(c: &Common, encs: &[Enc], ks: &[usize]) -> Result<()> {
    let ds = Dataset::load(&c.data, false)?;
    let em = Emitter::new(c.out.clone());
    let (p1, p2) = (pool(1)?, pool(2)?);
    for &enc in encs {
        let codes = enc.encode(&ds.db);
        let w = enc.width();
        let dim = (w * 8) as u32;
        let dir = c.db.join(format!("flat_{}", enc.name()));
        let field =
            FieldSchema::new(FIELD, FieldType::BinaryVector { dim }).with_index(IndexSpec::Flat);
        let b = build(&dir, field, ds.n(), c.batch, |s, e| {
            Column::Binary(codes[s * w..e * w].to_vec())
        })?;
        let qs = binary_queries(&ds, enc);
        let mut row = base_row("flat", c, ds.n());
        row.insert("enc".into(), json!(enc.name()));
        row.insert("index".into(), json!("FLAT"));
        row.extend(b.row.clone());
        let p = |k: usize| SearchParams {
            k,
            ..SearchParams::default()
        };
        // Warm-up: map the segment's pages once.
        batch(&b.db, &qs, &p(10), &p2)?;
        let (mut lat, mut cpu, _, _) = single(&b.db, &qs, &p(10), c.lat_queries.min(qs.len()))?;
        lat_fields(&mut row, "", &mut lat);
        lat_fields(&mut row, "cpu_", &mut cpu);
        for &k in ks {
            let reps = if k == 10 { c.reps } else { 1 };
            if k == 10 {
                let (q1, _) = batch_median(&b.db, &qs, &p(k), &p1, reps)?;
                row.insert("qps1_k10".into(), json!(r(q1, 1)));
            }
            let (q2, hits) = batch_median(&b.db, &qs, &p(k), &p2, reps)?;
            row.insert(format!("qps2_k{k}"), json!(r(q2, 1)));
            tlsh_recall(&ds, &hits, k, &mut row);
            if k == 10 {
                // Exactness: our Hamming top-10 distances against a plain
                // loop (first 100 queries) and against Faiss's (same run).
                let ours: Vec<Vec<u32>> = hits
                    .iter()
                    .map(|h| h.iter().map(|x| x.distance as u32).collect())
                    .collect();
                let mut bad = 0;
                for (qi, q) in qs.iter().enumerate().take(100) {
                    let QueryVector::Binary(qb) = q else { continue };
                    if reference_kth(&codes, w, qb, 10) != ours[qi] {
                        bad += 1;
                    }
                }
                row.insert("d10_mismatch_vs_plain_loop_100q".into(), json!(bad));
                if let Some(fd) = faiss_d10(&c.data, enc) {
                    let fb = fd.iter().zip(&ours).filter(|(a, b)| a != b).count();
                    row.insert("d10_mismatch_vs_faiss".into(), json!(fb));
                }
            }
        }
        em.emit(row.clone())?;
        finish(
            b.db,
            &Common {
                db: dir,
                ..c.clone()
            },
        )?;
        if row.get("d10_mismatch_vs_plain_loop_100q") != Some(&json!(0))
            || row
                .get("d10_mismatch_vs_faiss")
                .is_some_and(|v| v != &json!(0))
        {
            bail!("FLAT distances differ from exact Hamming ({})", enc.name());
        }
    }
    Ok(())
}

/// `ivf`: IVF_FLAT with nprobe 1/8/32, recall against exact Hamming and exact TLSH.
pub fn ivf(c: &Common, enc: Enc, nlist: Option<u32>, nprobes: &[u32], ks: &[usize]) -> Result<()> {
    let ds = Dataset::load(&c.data, false)?;
    let em = Emitter::new(c.out.clone());
    let (p1, p2) = (pool(1)?, pool(2)?);
    let n = ds.n();
    let nlist = nlist.unwrap_or_else(|| (4.0 * (n as f64).sqrt()).round() as u32);
    let codes = enc.encode(&ds.db);
    let w = enc.width();
    let dim = (w * 8) as u32;
    let dir = c.db.join(format!("ivf_{}", enc.name()));
    let field = FieldSchema::new(FIELD, FieldType::BinaryVector { dim })
        .with_index(IndexSpec::IvfFlat { nlist });
    let b = build(&dir, field, n, c.batch, |s, e| {
        Column::Binary(codes[s * w..e * w].to_vec())
    })?;
    drop(codes);
    let qs = binary_queries(&ds, enc);
    // Exact reference through the same engine (brute force = FLAT scan).
    let exact = SearchParams {
        k: 10,
        brute_force: true,
        ..SearchParams::default()
    };
    let (_, exact_hits) = batch(&b.db, &qs, &exact, &p2)?;
    let exact10: Vec<u32> = exact_hits
        .iter()
        .map(|h| h.last().map_or(u32::MAX, |x| x.distance as u32))
        .collect();
    // nprobe = nlist must equal FLAT exactly (keys and distances).
    let full = SearchParams {
        k: 10,
        nprobe: Some(nlist),
        ..SearchParams::default()
    };
    let (_, full_hits) = batch(&b.db, &qs, &full, &p2)?;
    let full_mismatch = full_hits
        .iter()
        .zip(&exact_hits)
        .filter(|(a, b)| {
            a.len() != b.len()
                || a.iter()
                    .zip(b.iter())
                    .any(|(x, y)| x.key != y.key || x.distance != y.distance)
        })
        .count();
    for &np in nprobes {
        let mut row = base_row("ivf", c, n);
        row.insert("enc".into(), json!(enc.name()));
        row.insert("index".into(), json!(format!("IVF_FLAT nlist={nlist}")));
        row.insert("nlist".into(), json!(nlist));
        row.insert("nprobe".into(), json!(np));
        row.extend(b.row.clone());
        let p = |k: usize| SearchParams {
            k,
            nprobe: Some(np),
            ..SearchParams::default()
        };
        batch(&b.db, &qs, &p(10), &p2)?;
        let (mut lat, mut cpu, _, rows) = single(&b.db, &qs, &p(10), c.lat_queries.min(qs.len()))?;
        row.insert(
            "rows_per_query".into(),
            json!(r(rows as f64 / lat.len().max(1) as f64, 1)),
        );
        lat_fields(&mut row, "", &mut lat);
        lat_fields(&mut row, "cpu_", &mut cpu);
        for &k in ks {
            let reps = if k == 10 { c.reps } else { 1 };
            if k == 10 {
                let (q1, _) = batch_median(&b.db, &qs, &p(k), &p1, reps)?;
                row.insert("qps1_k10".into(), json!(r(q1, 1)));
            }
            let (q2, hits) = batch_median(&b.db, &qs, &p(k), &p2, reps)?;
            row.insert(format!("qps2_k{k}"), json!(r(q2, 1)));
            tlsh_recall(&ds, &hits, k, &mut row);
            if k == 10 {
                let hit: usize = hits
                    .iter()
                    .zip(&exact10)
                    .map(|(h, &e)| h.iter().take(10).filter(|x| x.distance as u32 <= e).count())
                    .sum();
                row.insert(
                    "hamming_recall10".into(),
                    json!(r(hit as f64 / (10 * hits.len()) as f64, 4)),
                );
            }
        }
        row.insert(
            "nprobe_eq_nlist_mismatch_vs_flat".into(),
            json!(full_mismatch),
        );
        em.emit(row)?;
    }
    finish(
        b.db,
        &Common {
            db: dir,
            ..c.clone()
        },
    )?;
    ensure!(
        full_mismatch == 0,
        "IVF_FLAT with nprobe = nlist differs from FLAT on {full_mismatch} queries"
    );
    Ok(())
}

fn tlsh_queries(ds: &Dataset) -> Vec<QueryVector> {
    ds.queries
        .chunks_exact(DIGEST_LEN)
        .map(|c| QueryVector::Tlsh(Digest::from_bytes(c.try_into().unwrap_or([0; 35]))))
        .collect()
}

/// Arguments of `tlsh`.
#[derive(clap::Args, Clone)]
pub struct TlshArgs {
    #[command(flatten)]
    pub common: Common,
    /// Top-k.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Top-k cutoff (inclusive).
    #[arg(long, default_value_t = 100)]
    pub cutoff: u32,
    /// Range search: all rows with TLSH <= this.
    #[arg(long, default_value_t = 30)]
    pub radius: u32,
    /// Queries checked against the engine's brute-force scan.
    #[arg(long, default_value_t = 1000)]
    pub brute_queries: usize,
    /// Open an existing store in --db instead of building one.
    #[arg(long)]
    pub reuse: bool,
}

fn same_hits(a: &[Hit], b: &[Hit]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.key == y.key && x.distance == y.distance)
}

/// `tlsh`: the TLSH field (TLSH_TREE): top-k within a cutoff and radius search.
pub fn tlsh(a: &TlshArgs) -> Result<()> {
    let c = &a.common;
    let ds = Dataset::load(&c.data, false)?;
    let em = Emitter::new(c.out.clone());
    let (p1, p2) = (pool(1)?, pool(2)?);
    let n = ds.n();
    let (db, build_row) = if a.reuse && c.db.exists() {
        let t = Instant::now();
        let db = Database::open(&c.db, Options::default())?;
        let cnt = db.count(COLL)?;
        ensure!(
            cnt as usize == n,
            "reused store has {cnt} rows, dataset {n}"
        );
        let mut m = Map::new();
        m.insert("reused_store".into(), json!(true));
        m.insert("open_s".into(), json!(r(t.elapsed().as_secs_f64(), 3)));
        (db, m)
    } else {
        let field = FieldSchema::new(FIELD, FieldType::Tlsh);
        let b = build(&c.db, field, n, c.batch, |s, e| {
            Column::Tlsh(
                (s..e)
                    .map(|i| Some(Digest::from_bytes(ds.rec(i).try_into().unwrap_or([0; 35]))))
                    .collect(),
            )
        })?;
        (b.db, b.row)
    };
    let qs = tlsh_queries(&ds);
    let nq = qs.len();
    let topk = SearchParams {
        k: a.k,
        cutoff: Some(f64::from(a.cutoff)),
        ..SearchParams::default()
    };
    let range = SearchParams {
        k: apksift_index::search::MAX_K,
        radius: Some(f64::from(a.radius) + 1.0),
        ..SearchParams::default()
    };
    let mut failures = Vec::new();
    for (mode, p) in [("topk", &topk), ("radius", &range)] {
        let mut row = base_row("tlsh", c, n);
        row.insert("index".into(), json!("TLSH_TREE"));
        row.insert("mode".into(), json!(mode));
        if mode == "topk" {
            row.insert("k".into(), json!(a.k));
            row.insert("cutoff".into(), json!(a.cutoff));
        } else {
            row.insert("radius_le".into(), json!(a.radius));
        }
        row.extend(build_row.clone());
        // Warm-up (maps the segment's pages), then single-query latency.
        batch(&db, &qs, p, &p2)?;
        let (mut lat, mut cpu, hits, rows) = single(&db, &qs, p, c.lat_queries.min(nq))?;
        let mut fam: Vec<f64> = Vec::new();
        let mut unr: Vec<f64> = Vec::new();
        let mut cfam: Vec<f64> = Vec::new();
        let mut cunr: Vec<f64> = Vec::new();
        for (i, (&l, &c)) in lat.iter().zip(&cpu).enumerate() {
            if ds.qfam[i] >= 0 {
                fam.push(l);
                cfam.push(c);
            } else {
                unr.push(l);
                cunr.push(c);
            }
        }
        row.insert(
            "rows_per_query".into(),
            json!(r(rows as f64 / lat.len().max(1) as f64, 1)),
        );
        lat_fields(&mut row, "", &mut lat);
        lat_fields(&mut row, "family_", &mut fam);
        lat_fields(&mut row, "unrelated_", &mut unr);
        lat_fields(&mut row, "cpu_", &mut cpu);
        lat_fields(&mut row, "cpu_family_", &mut cfam);
        lat_fields(&mut row, "cpu_unrelated_", &mut cunr);
        row.insert("queries_family".into(), json!(fam.len()));
        row.insert("queries_unrelated".into(), json!(unr.len()));
        let (q1, _) = batch_median(&db, &qs, p, &p1, c.reps)?;
        let (q2, bhits) = batch_median(&db, &qs, p, &p2, c.reps)?;
        row.insert("qps1".into(), json!(r(q1, 1)));
        row.insert("qps2".into(), json!(r(q2, 1)));
        // Single and batch answers agree.
        let sb = hits
            .iter()
            .zip(&bhits)
            .filter(|(x, y)| !same_hits(x, y))
            .count();
        row.insert("single_vs_batch_mismatch".into(), json!(sb));
        let results: usize = bhits.iter().map(Vec::len).sum();
        row.insert(
            "hits_per_query".into(),
            json!(r(results as f64 / nq as f64, 2)),
        );
        // Against gt.npz (exact numpy brute force; ties by row id = by key).
        if let Some(gt) = &ds.gt {
            let (mut want, mut got, mut bad) = (0usize, 0usize, 0usize);
            let mut examples = Vec::new();
            for (qi, h) in bhits.iter().enumerate() {
                let truth: Vec<(u32, u32)> = if mode == "topk" {
                    gt.top_ids[qi]
                        .iter()
                        .zip(&gt.top_d[qi])
                        .filter(|x| *x.1 <= a.cutoff)
                        .take(a.k)
                        .map(|(&i, &d)| (i, d))
                        .collect()
                } else {
                    ensure!(
                        a.radius <= gt.radius,
                        "gt.npz radius {} < {}",
                        gt.radius,
                        a.radius
                    );
                    let mut v: Vec<(u32, u32)> = gt.rad[qi]
                        .iter()
                        .filter(|x| x.1 <= a.radius)
                        .copied()
                        .collect();
                    v.sort_by_key(|x| (x.1, x.0));
                    v
                };
                let ours: Vec<(u32, u32)> = h
                    .iter()
                    .map(|x| (row_of(&x.key), x.distance as u32))
                    .collect();
                want += truth.len();
                got += truth.iter().filter(|t| ours.contains(t)).count();
                if ours != truth {
                    bad += 1;
                    if examples.len() < 5 {
                        let missing: Vec<_> = truth.iter().filter(|t| !ours.contains(t)).collect();
                        let extra: Vec<_> = ours.iter().filter(|t| !truth.contains(t)).collect();
                        examples.push(json!({"query": qi, "family": ds.qfam[qi],
                            "missing_id_d": missing, "extra_id_d": extra}));
                    }
                }
            }
            row.insert("gt_neighbours".into(), json!(want));
            row.insert(
                "recall_vs_gt".into(),
                json!(r(got as f64 / want.max(1) as f64, 6)),
            );
            row.insert("gt_list_mismatch".into(), json!(bad));
            row.insert("gt_mismatch_examples".into(), json!(examples));
            if got != want || bad != 0 {
                failures.push(format!(
                    "{mode}: recall vs gt.npz {got}/{want}, {bad} lists differ"
                ));
            }
        }
        // Against the engine's own brute-force scan (same API, brute_force).
        let nb = a.brute_queries.min(nq);
        if nb > 0 {
            let bp = SearchParams {
                brute_force: true,
                ..p.clone()
            };
            let mut bl = Vec::new();
            let mut bad = 0;
            for (qi, q) in qs.iter().enumerate().take(nb) {
                let t = Instant::now();
                let res = db.search(COLL, FIELD, std::slice::from_ref(q), &bp)?;
                bl.push(t.elapsed().as_secs_f64() * 1e3);
                if !same_hits(&res.hits[0], &bhits[qi]) {
                    bad += 1;
                }
            }
            row.insert("brute_queries".into(), json!(nb));
            row.insert("brute_mismatch".into(), json!(bad));
            row.insert("brute_p50_ms".into(), json!(r(pct(&mut bl, 0.5), 3)));
            row.insert("brute_p99_ms".into(), json!(r(pct(&mut bl, 0.99), 3)));
            if bad != 0 {
                failures.push(format!(
                    "{mode}: {bad}/{nb} queries differ from brute force"
                ));
            }
        }
        row.insert("rss_mb_now".into(), json!(mib(rss())));
        em.emit(row)?;
    }
    db.close()?;
    if !c.keep && !a.reuse {
        std::fs::remove_dir_all(&c.db).ok();
    }
    if !failures.is_empty() {
        bail!("TLSH_TREE is not exact: {}", failures.join("; "));
    }
    Ok(())
}

/// `reopen`: opens a stored TLSH collection in a fresh process and reports
/// open time, file sizes and memory after one query of each kind.
pub fn reopen(data: &Path, dir: &Path, out: Option<PathBuf>) -> Result<()> {
    let ds = Dataset::load(data, false)?;
    let em = Emitter::new(out);
    let n = ds.n();
    let (disk, by_kind) = dir_sizes(dir)?;
    let rss0 = rss();
    let anon0 = util::proc_status_bytes("RssAnon");
    let file0 = util::proc_status_bytes("RssFile");
    let t = Instant::now();
    let db = Database::open(dir, Options::default())?;
    let open_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let cnt = db.count(COLL)? as usize;
    let count_s = t.elapsed().as_secs_f64();
    ensure!(cnt == n, "store has {cnt} rows, dataset {n}");
    let mem = |m: &mut Map<String, Value>, at: &str| {
        m.insert(
            format!("rss_mb_{at}"),
            json!(mib(rss().saturating_sub(rss0))),
        );
        m.insert(
            format!("rss_anon_mb_{at}"),
            json!(mib(util::proc_status_bytes("RssAnon").saturating_sub(anon0))),
        );
        m.insert(
            format!("rss_file_mb_{at}"),
            json!(mib(util::proc_status_bytes("RssFile").saturating_sub(file0))),
        );
    };
    let mut row = Map::new();
    row.insert("system".into(), json!("apksift"));
    row.insert("bench".into(), json!("reopen"));
    row.insert("data".into(), json!(data.display().to_string()));
    row.insert("n".into(), json!(n));
    row.insert("disk_mb".into(), json!(mib(disk)));
    row.insert("disk_bytes_by_kind".into(), Value::Object(by_kind));
    row.insert("reopen_s".into(), json!(r(open_s, 4)));
    row.insert("count_s".into(), json!(r(count_s, 4)));
    row.insert("rss_mb_process_before_open".into(), json!(mib(rss0)));
    mem(&mut row, "after_open");
    let qs = tlsh_queries(&ds);
    let p = SearchParams {
        k: 10,
        cutoff: Some(100.0),
        ..SearchParams::default()
    };
    for (kind, want) in [("family", true), ("unrelated", false)] {
        if let Some(qi) = (0..ds.nq()).find(|&i| (ds.qfam[i] >= 0) == want) {
            let t = Instant::now();
            let res = db.search(COLL, FIELD, std::slice::from_ref(&qs[qi]), &p)?;
            row.insert(
                format!("first_{kind}_query_ms"),
                json!(r(t.elapsed().as_secs_f64() * 1e3, 3)),
            );
            row.insert(format!("first_{kind}_query_rows"), json!(res.counters.rows));
        }
    }
    mem(&mut row, "after_2_queries");
    let t = Instant::now();
    db.search(COLL, FIELD, &qs, &p)?;
    row.insert(
        "all_queries_batch_s".into(),
        json!(r(t.elapsed().as_secs_f64(), 3)),
    );
    mem(&mut row, "after_all_queries");
    let raw = (n * DIGEST_LEN) as u64;
    let keys: u64 = (0..n).map(|i| key(i).len() as u64).sum();
    row.insert("raw_mb".into(), json!(mib(raw)));
    row.insert("keys_mb".into(), json!(mib(keys)));
    let budget = 2 * (raw + keys);
    row.insert("budget_2x_raw_plus_keys_mb".into(), json!(mib(budget)));
    row.insert("key_bytes".into(), json!(util::key_width()));
    // RSS grows as queries touch the memory-mapped segments; the segment files' size is what a
    // process that had touched every page would hold (plus its heap, in rss_anon_mb_*).
    let after_all = rss().saturating_sub(rss0);
    row.insert(
        "rss_after_all_queries_over_raw_plus_keys".into(),
        json!(r(after_all as f64 / (raw + keys) as f64, 3)),
    );
    let seg_bytes = by_kind_bytes(&row, "seg");
    row.insert(
        "segments_plus_anon_over_raw_plus_keys".into(),
        json!(r(
            (seg_bytes + util::proc_status_bytes("RssAnon").saturating_sub(anon0)) as f64
                / (raw + keys) as f64,
            3
        )),
    );
    row.insert(
        "vmhwm_mb".into(),
        json!(mib(util::proc_status_bytes("VmHWM"))),
    );
    em.emit(row)?;
    db.close()?;
    Ok(())
}

/// Bytes of the files of one kind in a `disk_bytes_by_kind` map of a row.
fn by_kind_bytes(row: &Map<String, Value>, kind: &str) -> u64 {
    row.get("disk_bytes_by_kind")
        .and_then(|m| m.get(kind))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

struct AllSink {
    bound: u32,
    hits: Vec<(u32, u32)>,
}

impl apksift_index::tlsh_tree::TlshSink for AllSink {
    fn bound(&self) -> u32 {
        self.bound
    }
    fn offer(&mut self, pos: u32, dist: u32) {
        self.hits.push((pos, dist));
    }
}

/// `tree-check`: diagnoses TLSH_TREE misses on a dataset with the index's
/// public building blocks: the body kernel (`TlshQuery::scan`) against the
/// scalar distance, and for a radius search on a tree built like a segment's,
/// every node on the path to a missed row whose lower bound exceeds the row's
/// true distance, with the parts of that bound and the node's recomputed stats.
pub fn tree_check(data: &Path, radius: u32, queries: usize, leaf: usize, seed: u64) -> Result<()> {
    use apksift_index::tlsh_tree;
    let ds = Dataset::load(data, false)?;
    let n = ds.n();
    // 1. Kernel: scan of every record with a huge bound vs distance().
    let mut kernel_bad = 0usize;
    for qi in 0..queries.min(ds.nq()) {
        let q = TlshQuery::new(Digest::from_bytes(ds.query(qi).try_into()?), true);
        let mut s = AllSink {
            bound: u32::MAX / 4,
            hits: Vec::with_capacity(n),
        };
        q.scan(&ds.db, 0, &mut s);
        for &(p, d) in &s.hits {
            let want = q.distance(ds.rec(p as usize));
            if want != d {
                kernel_bad += 1;
                if kernel_bad <= 5 {
                    println!("kernel: query {qi} row {p}: scan {d} distance {want}");
                }
            }
        }
    }
    println!("kernel mismatches: {kernel_bad}");
    // 2. Tree built over all rows (as the segment's primary tree).
    let t = Instant::now();
    let tree = tlsh_tree::build(&ds.db, (0..n as u32).collect(), leaf, seed);
    println!(
        "tree: {} nodes in {:.1}s",
        tree.nodes.len(),
        t.elapsed().as_secs_f64()
    );
    let ordered: Vec<u8> = tree
        .order
        .iter()
        .flat_map(|&r| ds.rec(r as usize).to_vec())
        .collect();
    let mut pos_of = vec![0u32; n];
    for (p, &r) in tree.order.iter().enumerate() {
        pos_of[r as usize] = p as u32;
    }
    let mut missed_total = 0;
    for qi in 0..queries.min(ds.nq()) {
        let q = TlshQuery::new(Digest::from_bytes(ds.query(qi).try_into()?), true);
        let mut s = AllSink {
            bound: radius,
            hits: Vec::new(),
        };
        tlsh_tree::search(
            &tree.nodes,
            &tree.bounds,
            &ordered,
            &q,
            &mut s,
            &mut Default::default(),
        );
        let got: std::collections::HashSet<u32> =
            s.hits.iter().map(|h| tree.order[h.0 as usize]).collect();
        let want: Vec<u32> = (0..n as u32)
            .filter(|&r| q.distance(ds.rec(r as usize)) <= radius)
            .collect();
        let missed: Vec<u32> = want.iter().copied().filter(|r| !got.contains(r)).collect();
        if missed.is_empty() {
            continue;
        }
        missed_total += missed.len();
        let r0 = missed[0];
        let p0 = pos_of[r0 as usize];
        let d0 = q.distance(ds.rec(r0 as usize));
        println!(
            "query {qi}: {} rows with TLSH <= {radius} missed, e.g. row {r0} (position {p0}, distance {d0})",
            missed.len()
        );
        // Walk the path root -> leaf containing p0.
        let mut idx = 0usize;
        let mut depth = 0;
        loop {
            let nd = &tree.nodes[idx];
            let (h, ball, set) = nd.bound_parts(&q);
            let members: Vec<u32> = (nd.start..nd.end).map(|p| tree.order[p as usize]).collect();
            // Recompute the stats from the members.
            let mut rad = 0u32;
            let mut bad_set = 0;
            let cw = apksift_index::tlsh_kernel::record_body_words(&nd.center);
            for &m in &members {
                let mw = apksift_index::tlsh_kernel::record_body_words(ds.rec(m as usize));
                rad = rad.max(apksift_index::tlsh_kernel::body_l1(&cw, &mw));
                let p = tlsh_tree::value_planes(&mw);
                for (v, pv) in p.iter().enumerate() {
                    for (hh, word) in pv.iter().enumerate() {
                        let at = v * 16 + hh * 8;
                        let have = u64::from_le_bytes(nd.planes[at..at + 8].try_into()?);
                        if word & !have != 0 {
                            bad_set += 1;
                        }
                    }
                }
            }
            let lb = h + ball.max(set);
            let last = nd.is_leaf();
            if depth < 3 || last || lb > d0 || depth % 16 == 0 {
                println!(
                    "  depth {depth}{} node {idx}: positions {}..{} ({} rows), L {}..{} Q1 {}..{} Q2 {}..{}, radius {} (recomputed {rad}), rlanes {}, planes missing member values: {bad_set}; bound header {h} + max(ball {ball}, set {set}) = {lb}{}",
                    if last { " (leaf)" } else { "" },
                    nd.start,
                    nd.end,
                    members.len(),
                    nd.lmin,
                    nd.lmax,
                    nd.q1min,
                    nd.q1max,
                    nd.q2min,
                    nd.q2max,
                    nd.radius,
                    nd.rlanes,
                    if lb > d0 {
                        "  <-- EXCEEDS the member's distance"
                    } else {
                        ""
                    }
                );
            }
            if nd.is_leaf() || depth > 500 {
                break;
            }
            let f = nd.first_child as usize;
            let Some(ci) = (f..f + nd.nchild as usize)
                .find(|&c| tree.nodes[c].start <= p0 && p0 < tree.nodes[c].end)
            else {
                println!("  no child covers position {p0}");
                break;
            };
            idx = ci;
            depth += 1;
        }
    }
    println!("rows missed over {queries} queries: {missed_total}");
    Ok(())
}
