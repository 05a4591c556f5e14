//! Shared helpers: machine facts, load average, RSS, percentiles, JSON lines,
//! the dataset files of the peer benchmark format, and a minimal `.npz` reader
//! for `gt.npz` (written by `../shared/bench/ground_truth.py` with `np.savez`:
//! an uncompressed zip of `.npy` arrays).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use apksift_tlsh::DIGEST_LEN;
use serde_json::{Map, Value, json};

/// 1-minute load average.
pub fn loadavg1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(-1.0)
}

/// A `/proc/self/status` field in bytes (`VmRSS`, `RssAnon`, `RssFile`, `VmHWM`).
pub fn proc_status_bytes(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for line in s.lines() {
        if let Some(rest) = line.strip_prefix(field)
            && let Some(rest) = rest.strip_prefix(':')
        {
            let kb: u64 = rest
                .split_whitespace()
                .next()
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            return kb * 1024;
        }
    }
    0
}

/// Resident set size in bytes.
pub fn rss() -> u64 {
    proc_status_bytes("VmRSS")
}

/// Bytes to MiB, one decimal.
pub fn mib(b: u64) -> f64 {
    (b as f64 / 1048576.0 * 10.0).round() / 10.0
}

/// Machine facts recorded with every row.
pub fn machine() -> Value {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = proc_meminfo_kb("MemTotal") / 1024 / 1024;
    json!({"host": host, "cpu": cpu, "nproc": nproc, "kernel": kernel, "mem_gib": mem,
           "avx2": std::arch::is_x86_feature_detected!("avx2"),
           "popcnt": std::arch::is_x86_feature_detected!("popcnt")})
}

fn proc_meminfo_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    s.lines()
        .find_map(|l| {
            l.strip_prefix(field)
                .and_then(|r| r.strip_prefix(':'))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|x| x.parse().ok())
        })
        .unwrap_or(0)
}

/// Percentile of `v` (sorted in place), `p` in 0..=1, with numpy's default
/// convention (linear interpolation between ranks).
pub fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let x = (v.len() - 1) as f64 * p;
    let lo = x.floor() as usize;
    let hi = x.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (x - lo as f64)
}

/// Rounds to `d` decimals (for readable JSON).
pub fn r(x: f64, d: i32) -> f64 {
    let m = 10f64.powi(d);
    (x * m).round() / m
}

/// Where result rows go: stdout and, if set, appended to a JSON-lines file.
pub struct Emitter {
    out: Option<PathBuf>,
    run: String,
    machine: Value,
}

impl Emitter {
    /// A new emitter; `run` tags every row.
    pub fn new(out: Option<PathBuf>) -> Emitter {
        let run = std::env::var("APKSIFT_BENCH_RUN")
            .unwrap_or_else(|_| format!("{}-{}", std::process::id(), unix_now()));
        Emitter {
            out,
            run,
            machine: machine(),
        }
    }

    /// Writes one row (adds run id, date, machine and the current load average).
    pub fn emit(&self, mut row: Map<String, Value>) -> Result<()> {
        row.insert("run".into(), json!(self.run));
        row.insert("unix_time".into(), json!(unix_now()));
        row.insert("loadavg1".into(), json!(loadavg1()));
        row.insert("machine".into(), self.machine.clone());
        let line = serde_json::to_string(&Value::Object(row))?;
        println!("{line}");
        if let Some(p) = &self.out {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening {}", p.display()))?;
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads a file of 35-byte TLSH records.
pub fn read_records(p: &Path) -> Result<Vec<u8>> {
    let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    ensure!(
        b.len() % DIGEST_LEN == 0,
        "{} is not a multiple of 35 bytes",
        p.display()
    );
    Ok(b)
}

/// Reads a little-endian int32 file.
pub fn read_i32(p: &Path) -> Result<Vec<i32>> {
    let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    Ok(b.chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// One array of a `.npz`/`.npy` file, widened to i64.
#[derive(Debug, Clone)]
pub struct NpArray {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values in C order.
    pub data: Vec<i64>,
}

fn u16le(b: &[u8], o: usize) -> Result<usize> {
    let s = b.get(o..o + 2).context("truncated zip")?;
    Ok(usize::from(u16::from_le_bytes([s[0], s[1]])))
}

fn u32le(b: &[u8], o: usize) -> Result<u64> {
    let s = b.get(o..o + 4).context("truncated zip")?;
    Ok(u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]])))
}

/// Parses one `.npy` blob (integer dtypes only).
pub fn parse_npy(b: &[u8]) -> Result<NpArray> {
    ensure!(
        b.len() >= 10 && &b[..6] == b"\x93NUMPY",
        "not an .npy array"
    );
    let (hlen, hstart) = if b[6] == 1 {
        (u16le(b, 8)?, 10)
    } else {
        (u32le(b, 8)? as usize, 12)
    };
    let header = std::str::from_utf8(b.get(hstart..hstart + hlen).context("truncated npy")?)?;
    let descr = header
        .split("'descr':")
        .nth(1)
        .and_then(|s| s.split('\'').nth(1))
        .context("npy header without descr")?;
    ensure!(
        !header.contains("'fortran_order': True"),
        "fortran order not supported"
    );
    let shape_s = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split('(').nth(1))
        .and_then(|s| s.split(')').next())
        .context("npy header without shape")?;
    let shape: Vec<usize> = shape_s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<_, _>>()?;
    let count: usize = shape.iter().product();
    let body = &b[hstart + hlen..];
    let data: Vec<i64> = match descr {
        "<i8" => body
            .get(..count * 8)
            .context("truncated npy data")?
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect(),
        "<i4" => body
            .get(..count * 4)
            .context("truncated npy data")?
            .chunks_exact(4)
            .map(|c| i64::from(i32::from_le_bytes(c.try_into().unwrap_or([0; 4]))))
            .collect(),
        d => bail!("npy dtype {d} not supported"),
    };
    Ok(NpArray { shape, data })
}

/// Reads every array of an uncompressed `.npz` archive.
pub fn read_npz(p: &Path) -> Result<std::collections::BTreeMap<String, NpArray>> {
    let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    // End of central directory: the last "PK\x05\x06".
    let eocd = (0..b.len().saturating_sub(21))
        .rev()
        .find(|&i| b[i..].starts_with(b"PK\x05\x06"))
        .context("npz: no end of central directory")?;
    let entries = u16le(&b, eocd + 10)?;
    let mut off = u32le(&b, eocd + 16)? as usize;
    if off == 0xFFFF_FFFF {
        bail!("npz: zip64 central directory not supported");
    }
    let mut out = std::collections::BTreeMap::new();
    for _ in 0..entries {
        ensure!(
            b.get(off..off + 4) == Some(b"PK\x01\x02"),
            "npz: bad central directory"
        );
        let method = u16le(&b, off + 10)?;
        let nlen = u16le(&b, off + 28)?;
        let elen = u16le(&b, off + 30)?;
        let clen = u16le(&b, off + 32)?;
        let local = u32le(&b, off + 42)? as usize;
        let name = String::from_utf8_lossy(&b[off + 46..off + 46 + nlen]).to_string();
        ensure!(method == 0, "npz: {name} is compressed (method {method})");
        ensure!(local != 0xFFFF_FFFF, "npz: zip64 offsets not supported");
        ensure!(
            b.get(local..local + 4) == Some(b"PK\x03\x04"),
            "npz: bad local header"
        );
        let lnlen = u16le(&b, local + 26)?;
        let lelen = u16le(&b, local + 28)?;
        let start = local + 30 + lnlen + lelen;
        let arr = parse_npy(&b[start..])?;
        out.insert(name.trim_end_matches(".npy").to_string(), arr);
        off += 46 + nlen + elen + clen;
    }
    Ok(out)
}

/// Ground truth of one dataset (`gt.npz`).
pub struct GroundTruth {
    /// Exact TLSH top-10 ids per query (ties by id).
    pub top_ids: Vec<Vec<u32>>,
    /// Their distances.
    pub top_d: Vec<Vec<u32>>,
    /// All rows with TLSH <= radius per query: (id, distance), ascending id.
    pub rad: Vec<Vec<(u32, u32)>>,
    /// The radius of `rad`.
    pub radius: u32,
}

impl GroundTruth {
    /// Loads `dir/gt.npz`.
    pub fn load(dir: &Path) -> Result<GroundTruth> {
        let z = read_npz(&dir.join("gt.npz"))?;
        let get = |k: &str| z.get(k).with_context(|| format!("gt.npz has no {k}"));
        let (ti, td) = (get("top_ids")?, get("top_d")?);
        ensure!(
            ti.shape.len() == 2 && ti.shape == td.shape,
            "gt.npz top shapes"
        );
        let (nq, k) = (ti.shape[0], ti.shape[1]);
        let rows = |a: &NpArray| -> Vec<Vec<u32>> {
            a.data
                .chunks_exact(k)
                .map(|c| c.iter().map(|&x| x as u32).collect())
                .collect()
        };
        let (ptr, ids, ds) = (get("rad_ptr")?, get("rad_ids")?, get("rad_d")?);
        ensure!(ptr.data.len() == nq + 1, "gt.npz rad_ptr length");
        let rad = (0..nq)
            .map(|q| {
                let (s, e) = (ptr.data[q] as usize, ptr.data[q + 1] as usize);
                (s..e)
                    .map(|i| (ids.data[i] as u32, ds.data[i] as u32))
                    .collect()
            })
            .collect();
        let radius = z
            .get("radius")
            .and_then(|a| a.data.first().copied())
            .unwrap_or(100) as u32;
        Ok(GroundTruth {
            top_ids: rows(ti),
            top_d: rows(td),
            rad,
            radius,
        })
    }
}

/// A dataset directory in the peer format.
pub struct Dataset {
    /// Database records (n × 35 bytes).
    pub db: Vec<u8>,
    /// Query records.
    pub queries: Vec<u8>,
    /// Family of each query (-1 = unrelated).
    pub qfam: Vec<i32>,
    /// Exact ground truth, if `gt.npz` exists.
    pub gt: Option<GroundTruth>,
}

impl Dataset {
    /// Loads `dir` (`db.bin`, `queries.bin`, `queries_family.i32`, `gt.npz`).
    pub fn load(dir: &Path, need_gt: bool) -> Result<Dataset> {
        let db = read_records(&dir.join("db.bin"))?;
        let queries = read_records(&dir.join("queries.bin"))?;
        let qfam = read_i32(&dir.join("queries_family.i32"))?;
        ensure!(
            qfam.len() * DIGEST_LEN == queries.len(),
            "queries_family.i32 does not match queries.bin"
        );
        let gt = if dir.join("gt.npz").exists() {
            let g = GroundTruth::load(dir)?;
            ensure!(
                g.top_ids.len() == qfam.len(),
                "gt.npz has {} queries, queries.bin {}",
                g.top_ids.len(),
                qfam.len()
            );
            Some(g)
        } else if need_gt {
            bail!("{} has no gt.npz (run ground_truth.py)", dir.display());
        } else {
            None
        };
        Ok(Dataset {
            db,
            queries,
            qfam,
            gt,
        })
    }

    /// Rows.
    pub fn n(&self) -> usize {
        self.db.len() / DIGEST_LEN
    }

    /// Queries.
    pub fn nq(&self) -> usize {
        self.qfam.len()
    }

    /// Record `i` of the database.
    pub fn rec(&self, i: usize) -> &[u8] {
        &self.db[i * DIGEST_LEN..(i + 1) * DIGEST_LEN]
    }

    /// Query record `i`.
    pub fn query(&self, i: usize) -> &[u8] {
        &self.queries[i * DIGEST_LEN..(i + 1) * DIGEST_LEN]
    }
}

/// Width of the keys made by [`key`] (digits); set once by `--key-width`.
static KEY_WIDTH: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(8);

/// Sets the width of the keys made by [`key`]: 8 (the default, as short as the peers' integer
/// ids allow) or 64, the length of the SHA-256 hex keys of an APK store.
pub fn set_key_width(w: usize) {
    KEY_WIDTH.store(w.clamp(8, 64), std::sync::atomic::Ordering::Relaxed);
}

/// Width of the keys made by [`key`].
pub fn key_width() -> usize {
    KEY_WIDTH.load(std::sync::atomic::Ordering::Relaxed)
}

/// Primary key of row `i`, so that key order is row order and the engine's tie order
/// (distance, then key) equals the ground truth's (distance, then row id): the zero-padded
/// decimal row number, 8 digits by default. With a width of 64 the key is as long as an APK
/// store's SHA-256 hex key and, like one, differs from other keys in its first bytes: 10
/// decimal digits of the row, then 54 pseudo-random hex digits.
pub fn key(i: usize) -> String {
    let w = key_width();
    if w < 64 {
        return format!("{i:0w$}");
    }
    let mut k = format!("{i:010}");
    let mut x = i as u64;
    while k.len() < 64 {
        // splitmix64
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        k.push_str(&format!("{:016x}", z ^ (z >> 31)));
    }
    k.truncate(64);
    k
}

/// Row id of a key made by [`key`].
pub fn row_of(key: &str) -> u32 {
    let digits = if key.len() == 64 { &key[..10] } else { key };
    digits.parse().unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_like_rows_and_map_back() {
        for w in [8, 64] {
            set_key_width(w);
            let rows = [0usize, 1, 9, 10, 99_999, 1_000_000, 9_999_999, 12_345_678];
            let keys: Vec<String> = rows.iter().map(|&i| key(i)).collect();
            for (k, &i) in keys.iter().zip(&rows) {
                assert_eq!(k.len(), w.max(8));
                assert_eq!(row_of(k), i as u32, "{k}");
            }
            assert!(keys.windows(2).all(|p| p[0] < p[1]), "{keys:?}");
        }
        set_key_width(8);
    }

    #[test]
    fn npy_header_parse() {
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        let h = "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut hs = h.to_string();
        while !(10 + hs.len() + 1).is_multiple_of(64) {
            hs.push(' ');
        }
        hs.push('\n');
        b.extend_from_slice(&(hs.len() as u16).to_le_bytes());
        b.extend_from_slice(hs.as_bytes());
        for v in [1i32, -2, 3, 4, 5, 6] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let a = parse_npy(&b).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, vec![1, -2, 3, 4, 5, 6]);
    }

    #[test]
    fn percentile_like_numpy() {
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(pct(&mut v, 0.5), 2.5);
        assert_eq!(pct(&mut v, 0.0), 1.0);
        assert_eq!(pct(&mut v, 1.0), 4.0);
    }
}
