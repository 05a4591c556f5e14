//! Differential check of the published TLSH crates (fast-tlsh, tlsh2) and apksift-tlsh against
//! the reference data in `shared/data/tlsh-ref/`, then hashing throughput on one buffer.
//!
//! ```text
//! cargo run --release -- [--data DIR] [--buf FILE] [--repeats N] [--rounds N]
//! ```
//!
//! `--data` defaults to `$APKSIFT_TESTDATA/tlsh-ref` or `../../../../shared/data/tlsh-ref`.
//! Prints a Markdown table: one row per check, one column per implementation.

use serde_json::Value;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tlsh::prelude::*;

/// One implementation under test, behind a common shape.
trait Impl {
    fn name(&self) -> &'static str;
    /// Digest as printed (`T1…`) or `None` for TNULL.
    fn hash(&self, data: &[u8]) -> Option<String>;
    /// Conservative mode, if supported.
    fn hash_conservative(&self, data: &[u8]) -> Option<Option<String>>;
    /// Streaming in the given chunk sizes (the last size repeats).
    fn hash_chunks(&self, data: &[u8], sizes: &[usize]) -> Option<String>;
    /// Parse accepted?
    fn parses(&self, s: &str) -> bool;
    /// (diff, diffxlen) of two digest strings.
    fn diff(&self, a: &str, b: &str) -> Option<(u32, u32)>;
}

fn chunked<'a>(data: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i.min(sizes.len() - 1)].min(rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
        i += 1;
    }
    out
}

struct Ours;
impl Impl for Ours {
    fn name(&self) -> &'static str {
        "apksift-tlsh"
    }
    fn hash(&self, data: &[u8]) -> Option<String> {
        apksift_tlsh::hash(data).ok().map(|d| d.to_string())
    }
    fn hash_conservative(&self, data: &[u8]) -> Option<Option<String>> {
        let o = apksift_tlsh::Options { conservative: true };
        Some(
            apksift_tlsh::hash_with_options(data, o)
                .ok()
                .map(|d| d.to_string()),
        )
    }
    fn hash_chunks(&self, data: &[u8], sizes: &[usize]) -> Option<String> {
        let mut h = apksift_tlsh::Hasher::new();
        for c in chunked(data, sizes) {
            h.update(c);
        }
        h.finish().ok().map(|d| d.to_string())
    }
    fn parses(&self, s: &str) -> bool {
        apksift_tlsh::Digest::parse(s).is_ok()
    }
    fn diff(&self, a: &str, b: &str) -> Option<(u32, u32)> {
        let a = apksift_tlsh::Digest::parse(a).ok()?;
        let b = apksift_tlsh::Digest::parse(b).ok()?;
        Some((a.distance(&b, true), a.distance(&b, false)))
    }
}

struct FastTlsh;
impl FastTlsh {
    fn opts(conservative: bool) -> tlsh::generate::GeneratorOptions {
        let o = tlsh::generate::GeneratorOptions::new().pure_integer_qratio_computation(true);
        if conservative {
            o.length_processing_mode(tlsh::length::DataLengthProcessingMode::Conservative)
        } else {
            o
        }
    }
}
impl Impl for FastTlsh {
    fn name(&self) -> &'static str {
        "fast-tlsh 0.1.10 (int q)"
    }
    fn hash(&self, data: &[u8]) -> Option<String> {
        let mut g = TlshGenerator::new();
        g.update(data);
        g.finalize_with_options(Self::opts(false))
            .ok()
            .map(|h| h.to_string())
    }
    fn hash_conservative(&self, data: &[u8]) -> Option<Option<String>> {
        let mut g = TlshGenerator::new();
        g.update(data);
        Some(
            g.finalize_with_options(Self::opts(true))
                .ok()
                .map(|h| h.to_string()),
        )
    }
    fn hash_chunks(&self, data: &[u8], sizes: &[usize]) -> Option<String> {
        let mut g = TlshGenerator::new();
        for c in chunked(data, sizes) {
            g.update(c);
        }
        g.finalize_with_options(Self::opts(false))
            .ok()
            .map(|h| h.to_string())
    }
    fn parses(&self, s: &str) -> bool {
        s.parse::<Tlsh>().is_ok()
    }
    fn diff(&self, a: &str, b: &str) -> Option<(u32, u32)> {
        let a: Tlsh = a.parse().ok()?;
        let b: Tlsh = b.parse().ok()?;
        Some((
            a.compare(&b),
            a.compare_with_config(&b, tlsh::compare::ComparisonConfiguration::NoDistance),
        ))
    }
}

struct Tlsh2;
impl Impl for Tlsh2 {
    fn name(&self) -> &'static str {
        "tlsh2 1.1.0 (fast)"
    }
    fn hash(&self, data: &[u8]) -> Option<String> {
        let mut b = tlsh2::TlshDefaultBuilder::new();
        b.update(data);
        b.build()
            .map(|h| String::from_utf8_lossy(&h.hash()).into_owned())
    }
    fn hash_conservative(&self, _: &[u8]) -> Option<Option<String>> {
        None // no conservative mode
    }
    fn hash_chunks(&self, data: &[u8], sizes: &[usize]) -> Option<String> {
        let mut b = tlsh2::TlshDefaultBuilder::new();
        for c in chunked(data, sizes) {
            b.update(c);
        }
        b.build()
            .map(|h| String::from_utf8_lossy(&h.hash()).into_owned())
    }
    fn parses(&self, s: &str) -> bool {
        s.parse::<tlsh2::TlshDefault>().is_ok()
    }
    fn diff(&self, a: &str, b: &str) -> Option<(u32, u32)> {
        let a: tlsh2::TlshDefault = a.parse().ok()?;
        let b: tlsh2::TlshDefault = b.parse().ok()?;
        Some((a.diff(&b, true) as u32, a.diff(&b, false) as u32))
    }
}

#[derive(Default)]
struct Score {
    ok: usize,
    total: usize,
    first_miss: Option<String>,
}
impl Score {
    fn check(&mut self, pass: bool, what: impl FnOnce() -> String) {
        self.total += 1;
        if pass {
            self.ok += 1;
        } else if self.first_miss.is_none() {
            self.first_miss = Some(what());
        }
    }
    fn cell(&self) -> String {
        if self.total == 0 {
            "n/a".into()
        } else if self.ok == self.total {
            format!("{}/{}", self.ok, self.total)
        } else {
            format!("**{}/{}**", self.ok, self.total)
        }
    }
}

fn read(dir: &Path, rel: &str) -> Vec<u8> {
    std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(rel).display()))
}
fn text(dir: &Path, rel: &str) -> String {
    String::from_utf8(read(dir, rel)).unwrap()
}
fn jsonl(dir: &Path, rel: &str) -> Vec<Value> {
    text(dir, rel)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn check_all(imp: &dyn Impl, dir: &Path) -> BTreeMap<&'static str, Score> {
    let mut s: BTreeMap<&'static str, Score> = BTreeMap::new();
    let out = text(dir, "exp/example_data.128.1.len.out_EXP");
    let examples: Vec<(String, String)> = out
        .lines()
        .map(|l| {
            let (d, p) = l.split_once('\t').unwrap();
            (d.to_owned(), p.to_owned())
        })
        .collect();
    for (want, p) in &examples {
        let data = read(dir, p);
        let got = imp.hash(&data);
        s.entry("1 exp/ out_EXP digests")
            .or_default()
            .check(got.as_deref() == Some(want), || p.clone());
        for sizes in [&[1usize][..], &[3, 97], &[4, 1, 4099], &[7], &[4099]] {
            let c = imp.hash_chunks(&data, sizes);
            s.entry("5 streaming == one-shot (chunks 1; 3,97; 4,1,4099; 7; 4099)")
                .or_default()
                .check(c == got, || format!("{p} {sizes:?}"));
        }
    }
    for v in jsonl(dir, "vectors.jsonl") {
        let f = v["file"].as_str().unwrap();
        let data = read(dir, f);
        let want = v["tlsh"].as_str().unwrap();
        let got = imp.hash(&data).unwrap_or_else(|| "TNULL".into());
        s.entry("2 vectors.jsonl tlsh (incl. 13 TNULL)")
            .or_default()
            .check(got == want, || f.into());
        if let Some(c) = imp.hash_conservative(&data) {
            let c = c.unwrap_or_else(|| "TNULL".into());
            s.entry("3 vectors.jsonl conservative")
                .or_default()
                .check(c == v["tlsh_conservative"].as_str().unwrap(), || f.into());
        } else {
            s.entry("3 vectors.jsonl conservative").or_default();
        }
    }
    // testlen
    let tl = text(dir, "exp/testlen.128.1.out_EXP");
    let want: Vec<&str> = tl
        .lines()
        .filter(|l| l.starts_with("T1"))
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    let l: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ1234567890!@#$%^&*()\n";
    let mut a = [l, l].concat();
    let mut b = [a.as_slice(), a.as_slice()].concat();
    for w in want {
        let got = imp.hash(&b);
        s.entry("4 testlen (22 sizes to 6.8 MB)")
            .or_default()
            .check(got.as_deref() == Some(w), || format!("{} bytes", b.len()));
        let next = [a.as_slice(), b.as_slice()].concat();
        a = b;
        b = next;
    }
    for p in jsonl(dir, "pairs.jsonl") {
        let (a, b) = (p["a"].as_str().unwrap(), p["b"].as_str().unwrap());
        let want = (
            p["diff"].as_u64().unwrap() as u32,
            p["diffxlen"].as_u64().unwrap() as u32,
        );
        s.entry("6 pairs.jsonl diff+diffxlen")
            .or_default()
            .check(imp.diff(a, b) == Some(want), || format!("{a} {b}"));
    }
    let digest_of: BTreeMap<&str, &str> = examples
        .iter()
        .map(|(d, p)| (p.as_str(), d.as_str()))
        .collect();
    for (kind, want_len) in [("len", true), ("xlen", false)] {
        for line in text(
            dir,
            &format!("exp/example_data.128.1.{kind}.xref.scores_EXP"),
        )
        .lines()
        {
            let f: Vec<&str> = line.split('\t').collect();
            let want: u32 = f[2].parse().unwrap();
            let got = imp
                .diff(digest_of[f[0]], digest_of[f[1]])
                .map(|(l, x)| if want_len { l } else { x });
            s.entry("7 xref.scores len+xlen")
                .or_default()
                .check(got == Some(want), || line.into());
        }
    }
    for c in jsonl(dir, "digest_parsing.jsonl") {
        let input = c["input"].as_str().unwrap();
        s.entry("8 digest_parsing.jsonl accept/reject")
            .or_default()
            .check(
                imp.parses(input) == c["accepted"].as_bool().unwrap(),
                || c["note"].as_str().unwrap().into(),
            );
    }
    s
}

fn pseudo_random(len: usize, mut s: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        out.extend_from_slice(&s.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn main() {
    let mut data: Option<PathBuf> = None;
    let mut buf_path: Option<String> = None;
    let (mut repeats, mut rounds) = (3usize, 2usize);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--data" => data = it.next().map(PathBuf::from),
            "--buf" => buf_path = it.next(),
            "--repeats" => repeats = it.next().unwrap().parse().unwrap(),
            "--rounds" => rounds = it.next().unwrap().parse().unwrap(),
            _ => panic!("unknown argument {a}"),
        }
    }
    let data = data.unwrap_or_else(|| match std::env::var_os("APKSIFT_TESTDATA") {
        Some(d) => PathBuf::from(d).join("tlsh-ref"),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../../shared/data/tlsh-ref"
        )),
    });
    let impls: [&dyn Impl; 3] = [&FastTlsh, &Tlsh2, &Ours];

    println!("## Correctness against {}\n", data.display());
    let results: Vec<_> = impls.iter().map(|i| check_all(*i, &data)).collect();
    print!("| check |");
    for i in &impls {
        print!(" {} |", i.name());
    }
    println!("\n|---|{}", "---|".repeat(impls.len()));
    for key in results[0].keys() {
        print!("| {key} |");
        for r in &results {
            print!(" {} |", r[key].cell());
        }
        println!();
    }
    for (i, r) in impls.iter().zip(&results) {
        for (k, v) in r {
            if let Some(m) = &v.first_miss {
                println!("\nfirst miss, {} / {k}: {m}", i.name());
            }
        }
    }

    let buf = match &buf_path {
        Some(p) => std::fs::read(p).unwrap(),
        None => pseudo_random(100 << 20, 0x9e37_79b9_7f4a_7c15),
    };
    let mib = buf.len() as f64 / (1024.0 * 1024.0);
    println!(
        "\n## Hashing throughput, {} ({mib:.0} MiB), best of {repeats} x {rounds} interleaved rounds\n",
        buf_path.as_deref().unwrap_or("xorshift64* buffer")
    );
    let mut best = vec![f64::MAX; impls.len()];
    let mut digests = vec![String::new(); impls.len()];
    for _ in 0..rounds {
        for (k, imp) in impls.iter().enumerate() {
            for _ in 0..repeats {
                let t = Instant::now();
                let d = black_box(imp.hash(black_box(&buf)));
                best[k] = best[k].min(t.elapsed().as_secs_f64());
                digests[k] = d.unwrap_or_default();
            }
        }
    }
    println!("| implementation | MiB/s | digest |\n|---|---|---|");
    for (k, imp) in impls.iter().enumerate() {
        println!("| {} | {:.1} | {} |", imp.name(), mib / best[k], digests[k]);
    }
}
