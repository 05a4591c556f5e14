//! Dataset generator: real TLSH digests (files under a directory, plus the
//! labelled digests of `tlsh-datasets`) mutated into realistic families.
//! It follows the rules of the peer benchmark's generator
//! (`../shared/bench/README.md`, "How the data are made") and writes the same
//! file formats, so the peers' scripts run on our data unchanged. The random
//! streams differ from numpy's, so the bytes differ; the distributions match
//! (see `meta.json`: within-family TLSH p5/p50/p95).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use apksift_tlsh::{DIGEST_LEN, Digest};
use rand::distr::Distribution;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

const P_MIN: f64 = 0.02;
const P_MAX: f64 = 0.25;
const P_PM1: f64 = 0.85;
const L_STEPS: [(i32, f64); 5] = [(0, 0.65), (1, 0.15), (-1, 0.15), (2, 0.025), (-2, 0.025)];
const Q_STEPS: [(i32, f64); 5] = [(0, 0.70), (1, 0.135), (-1, 0.135), (2, 0.015), (-2, 0.015)];
const FAM_MU: f64 = 2.0;
const FAM_SIGMA: f64 = 1.2;
const FAM_MAX: usize = 20_000;

/// Fields of a record.
#[derive(Clone, Copy)]
struct Fields {
    checksum: u8,
    l: u8,
    q1: u8,
    q2: u8,
    buckets: [u8; 128],
}

fn unpack(r: &[u8]) -> Fields {
    let d = Digest::from_bytes(r.try_into().unwrap_or([0; DIGEST_LEN]));
    let mut buckets = [0u8; 128];
    for (k, b) in buckets.iter_mut().enumerate() {
        *b = d.bucket(k);
    }
    Fields {
        checksum: d.checksum_byte(),
        l: d.lvalue(),
        q1: d.q1(),
        q2: d.q2(),
        buckets,
    }
}

fn pack(f: &Fields) -> [u8; DIGEST_LEN] {
    let mut r = [0u8; DIGEST_LEN];
    r[0] = f.checksum;
    r[1] = f.l.rotate_left(4);
    r[2] = (f.q1 << 4) | f.q2;
    for (k, v) in f.buckets.iter().enumerate() {
        r[3 + k / 4] |= (v & 3) << (6 - 2 * (k % 4));
    }
    r
}

fn pick(rng: &mut impl Rng, steps: &[(i32, f64)]) -> i32 {
    let mut x: f64 = rng.random();
    for (v, p) in steps {
        if x < *p {
            return *v;
        }
        x -= p;
    }
    0
}

fn mutate(rng: &mut impl Rng, root: &Fields) -> Fields {
    let p = rng.random_range(P_MIN..P_MAX);
    let mut f = *root;
    for b in f.buckets.iter_mut() {
        if rng.random::<f64>() < p {
            let v = *b as i32;
            *b = if rng.random::<f64>() < P_PM1 {
                let s = if rng.random_bool(0.5) { -1 } else { 1 };
                match v + s {
                    -1 => 1,
                    4 => 2,
                    x => x,
                }
            } else {
                (v + rng.random_range(1..4)) % 4
            } as u8;
        }
    }
    f.l = (i32::from(root.l) + pick(rng, &L_STEPS)).rem_euclid(256) as u8;
    f.q1 = (i32::from(root.q1) + pick(rng, &Q_STEPS)).rem_euclid(16) as u8;
    f.q2 = (i32::from(root.q2) + pick(rng, &Q_STEPS)).rem_euclid(16) as u8;
    f.checksum = rng.random();
    f
}

fn synthetic_root(rng: &mut impl Rng, real: &[Fields]) -> Fields {
    let src = real[rng.random_range(0..real.len())];
    let mut b = src.buckets;
    // Permuting the 128 positions keeps TLSH's quartile balance.
    for i in (1..128).rev() {
        b.swap(i, rng.random_range(0..=i));
    }
    let il = real[rng.random_range(0..real.len())];
    let iq = real[rng.random_range(0..real.len())];
    Fields {
        checksum: rng.random(),
        l: il.l,
        q1: iq.q1,
        q2: iq.q2,
        buckets: b,
    }
}

/// `real`: TLSH of every regular file of at least 256 bytes under `root`,
/// plus every valid digest of `extra_csv` files (`tlsh` column), unique and sorted.
pub fn real(root: &Path, extra_csv: &[PathBuf], out: &Path) -> Result<()> {
    let t = std::time::Instant::now();
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() && e.metadata().map(|m| m.len() >= 256).unwrap_or(false) {
                files.push(e.path());
            }
        }
    }
    files.sort();
    let hashed: Vec<Option<[u8; DIGEST_LEN]>> = files
        .par_iter()
        .map(|p| {
            let mut h = apksift_tlsh::Hasher::new();
            let mut f = std::fs::File::open(p).ok()?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf).ok()?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            h.finish().ok().map(|d| *d.as_bytes())
        })
        .collect();
    let from_files = hashed.iter().flatten().count();
    let mut recs: Vec<[u8; DIGEST_LEN]> = hashed.into_iter().flatten().collect();
    let mut from_csv = 0usize;
    for c in extra_csv {
        let text =
            std::fs::read_to_string(c).with_context(|| format!("reading {}", c.display()))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
        let Some(col) = header.iter().position(|h| *h == "tlsh") else {
            continue;
        };
        for line in lines {
            if let Some(Ok(d)) = line.split(',').nth(col).map(Digest::parse_lenient) {
                recs.push(*d.as_bytes());
                from_csv += 1;
            }
        }
    }
    recs.sort_unstable();
    recs.dedup();
    std::fs::create_dir_all(out)?;
    let bytes: Vec<u8> = recs.iter().flatten().copied().collect();
    std::fs::write(out.join("real.bin"), bytes)?;
    let meta = serde_json::json!({
        "root": root, "regular_files_ge_256": files.len(), "digests_from_files": from_files,
        "digests_from_csv": from_csv, "unique_digests": recs.len(), "seconds": t.elapsed().as_secs_f64(),
    });
    std::fs::write(
        out.join("real_meta.json"),
        serde_json::to_string_pretty(&meta)?,
    )?;
    println!("{meta}");
    Ok(())
}

/// `synth`: N digests in families plus 800 family and 200 unrelated queries.
pub fn synth(
    real_bin: &Path,
    n: usize,
    seed: u64,
    family_queries: usize,
    unrelated_queries: usize,
    out: &Path,
) -> Result<()> {
    let t = std::time::Instant::now();
    let raw = std::fs::read(real_bin).with_context(|| format!("reading {}", real_bin.display()))?;
    anyhow::ensure!(
        !raw.is_empty() && raw.len() % DIGEST_LEN == 0,
        "{} is not a record file",
        real_bin.display()
    );
    let real: Vec<Fields> = raw.chunks_exact(DIGEST_LEN).map(unpack).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let ln = rand_distr_lognormal(FAM_MU, FAM_SIGMA);
    let mut sizes: Vec<usize> = Vec::new();
    let mut total = 0usize;
    while total < n {
        let s = (ln.sample(&mut rng).round() as usize)
            .clamp(1, FAM_MAX)
            .min(n - total);
        sizes.push(s);
        total += s;
    }
    let nf = sizes.len();
    // Roots: real digests in shuffled order, then synthetic ones.
    let mut order: Vec<usize> = (0..real.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let roots: Vec<Fields> = (0..nf)
        .map(|i| {
            if i < real.len() {
                real[order[i]]
            } else {
                synthetic_root(&mut rng, &real)
            }
        })
        .collect();
    // Members, generated in parallel from per-family seeds.
    let fam_seeds: Vec<u64> = (0..nf).map(|_| rng.random()).collect();
    let mut db: Vec<([u8; DIGEST_LEN], i32)> = (0..nf)
        .into_par_iter()
        .flat_map_iter(|f| {
            let mut r = rand::rngs::StdRng::seed_from_u64(fam_seeds[f]);
            let root = roots[f];
            (0..sizes[f])
                .map(move |m| {
                    (
                        pack(&if m == 0 { root } else { mutate(&mut r, &root) }),
                        f as i32,
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    for i in (1..db.len()).rev() {
        db.swap(i, rng.random_range(0..=i));
    }
    // Queries: families drawn proportionally to size, plus unrelated roots.
    let cum: Vec<usize> = sizes
        .iter()
        .scan(0, |a, s| {
            *a += s;
            Some(*a)
        })
        .collect();
    let mut queries = Vec::new();
    let mut qfam = Vec::new();
    for _ in 0..family_queries {
        let x = rng.random_range(0..n);
        let f = cum.partition_point(|&c| c <= x);
        queries.push(pack(&mutate(&mut rng, &roots[f])));
        qfam.push(f as i32);
    }
    for _ in 0..unrelated_queries {
        queries.push(pack(&synthetic_root(&mut rng, &real)));
        qfam.push(-1);
    }
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("db.bin"),
        db.iter().flat_map(|x| x.0).collect::<Vec<u8>>(),
    )?;
    std::fs::write(
        out.join("db_family.i32"),
        db.iter()
            .flat_map(|x| x.1.to_le_bytes())
            .collect::<Vec<u8>>(),
    )?;
    std::fs::write(
        out.join("queries.bin"),
        queries.iter().flatten().copied().collect::<Vec<u8>>(),
    )?;
    std::fs::write(
        out.join("queries_family.i32"),
        qfam.iter()
            .flat_map(|x| x.to_le_bytes())
            .collect::<Vec<u8>>(),
    )?;
    // Within-family distance statistics on a sample.
    let mut by_fam: std::collections::HashMap<i32, Vec<usize>> = std::collections::HashMap::new();
    for (i, (_, f)) in db.iter().enumerate().take(2_000_000) {
        by_fam.entry(*f).or_default().push(i);
    }
    let mut within: Vec<u32> = Vec::new();
    for rows in by_fam.values().filter(|r| r.len() >= 2).take(20_000) {
        let a = Digest::from_bytes(db[rows[0]].0);
        let b = Digest::from_bytes(db[rows[1]].0);
        within.push(a.distance(&b, true));
    }
    within.sort_unstable();
    let p = |q: f64| {
        within
            .get(((within.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    let meta = serde_json::json!({
        "n": n, "seed": seed, "families": nf, "real_digests": real.len(),
        "real_roots": nf.min(real.len()), "synthetic_roots": nf.saturating_sub(real.len()),
        "family_queries": family_queries, "unrelated_queries": unrelated_queries,
        "within_family_tlsh_p5_p50_p95": [p(0.05), p(0.5), p(0.95)],
        "rules": "../shared/bench/README.md (How the data are made)", "seconds": t.elapsed().as_secs_f64(),
    });
    std::fs::write(out.join("meta.json"), serde_json::to_string_pretty(&meta)?)?;
    println!("{meta}");
    Ok(())
}

/// Log-normal distribution (exp of a normal), via Box–Muller, to avoid a
/// dependency for one distribution.
fn rand_distr_lognormal(mu: f64, sigma: f64) -> LogNormal {
    LogNormal { mu, sigma }
}

struct LogNormal {
    mu: f64,
    sigma: f64,
}

impl Distribution<f64> for LogNormal {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        (self.mu + self.sigma * z).exp()
    }
}
