//! Throughput benchmark (not a timed test): TLSH hashing in MiB/s and distance in ns/pair.
//!
//! ```text
//! cargo bench -p apksift-tlsh --bench hash -- [--buf FILE] [--repeats N] [--mib N]
//! ```
//!
//! Without `--buf` it hashes a deterministic pseudo-random buffer of `--mib` MiB (default 100).
//! `bench/tlsh/run.sh` passes the same file to this bench and to py-tlsh and prints the ratio.
//! Output lines start with `RESULT` and are `key=value` pairs, for scripts.

use apksift_tlsh::{
    DEFAULT_CHUNK_LEN, Digest, Hasher, Options, SharedHash, body_byte_cost, hash, hash_parallel,
};
use std::hint::black_box;
use std::time::{Duration, Instant};

struct Args {
    buf: Option<String>,
    repeats: usize,
    mib: usize,
}

fn args() -> Args {
    let mut a = Args {
        buf: None,
        repeats: 5,
        mib: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--buf" => a.buf = it.next(),
            "--repeats" => a.repeats = it.next().and_then(|v| v.parse().ok()).unwrap_or(5),
            "--mib" => a.mib = it.next().and_then(|v| v.parse().ok()).unwrap_or(100),
            _ => {} // `cargo bench` adds `--bench`; ignore anything else
        }
    }
    a.repeats = a.repeats.max(1);
    a
}

/// xorshift64* bytes: deterministic, incompressible enough for TLSH.
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

/// CPU time of this thread (ns) from `/proc/thread-self/schedstat`, if available. On a shared
/// machine it is less disturbed by other processes than wall-clock time.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Best (wall, cpu) time of `repeats` runs.
fn best_wall_cpu<F: FnMut()>(repeats: usize, mut f: F) -> (Duration, Option<Duration>) {
    let mut wall = Duration::MAX;
    let mut cpu: Option<Duration> = None;
    for _ in 0..repeats {
        let c0 = cpu_ns();
        let t = Instant::now();
        f();
        wall = wall.min(t.elapsed());
        if let (Some(a), Some(b)) = (c0, cpu_ns()) {
            let d = Duration::from_nanos(b.saturating_sub(a));
            cpu = Some(cpu.map_or(d, |c| c.min(d)));
        }
    }
    (wall, cpu)
}

fn best<F: FnMut()>(repeats: usize, f: F) -> Duration {
    best_wall_cpu(repeats, f).0
}

fn cpu_field(bytes: usize, cpu: Option<Duration>) -> String {
    cpu.map(|c| format!(" cpu_mib_s={:.1}", mib_per_s(bytes, c)))
        .unwrap_or_default()
}

fn mib_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

/// The previous body distance: one lookup per byte pair in a 64 KiB table (kept here only to
/// compare with the popcount version the crate uses).
fn body_distance_lut(table: &[u8], a: &Digest, b: &Digest) -> u32 {
    a.body()
        .iter()
        .zip(b.body())
        .map(|(&x, &y)| u32::from(table[usize::from(x) << 8 | usize::from(y)]))
        .sum()
}

fn main() {
    let args = args();
    let (buf, source) = match &args.buf {
        Some(path) => (
            std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}")),
            path.clone(),
        ),
        None => (
            pseudo_random(args.mib << 20, 0x9e37_79b9_7f4a_7c15),
            format!("xorshift64*, {} MiB", args.mib),
        ),
    };
    let n = buf.len();
    println!(
        "input: {source} ({n} bytes), best of {} repeats",
        args.repeats
    );

    // One-shot hashing.
    let digest = hash(&buf)
        .map(|d| d.to_string())
        .unwrap_or_else(|e| e.to_string());
    let (t, cpu) = best_wall_cpu(args.repeats, || {
        black_box(hash(black_box(&buf))).ok();
    });
    println!(
        "RESULT impl=apksift-tlsh op=hash bytes={n} best_s={:.4} mib_s={:.1}{} digest={digest}",
        t.as_secs_f64(),
        mib_per_s(n, t),
        cpu_field(n, cpu)
    );

    // Streaming in 64 KiB chunks (how files are read).
    let (t, cpu) = best_wall_cpu(args.repeats, || {
        let mut h = Hasher::new();
        for c in black_box(&buf).chunks(64 << 10) {
            h.update(c);
        }
        black_box(h.finish()).ok();
    });
    println!(
        "RESULT impl=apksift-tlsh op=hash_stream_64k bytes={n} best_s={:.4} mib_s={:.1}{}",
        t.as_secs_f64(),
        mib_per_s(n, t),
        cpu_field(n, cpu)
    );

    // Parallel one-shot hashing: `hash_parallel`, and the ways to split the checksum chain.
    for t in [2, 3, 4] {
        let (tw, _) = best_wall_cpu(args.repeats, || {
            black_box(hash_parallel(black_box(&buf), Options::default(), t)).ok();
        });
        println!(
            "RESULT impl=apksift-tlsh op=hash_parallel threads={t} bytes={n} best_s={:.4} mib_s={:.1}",
            tw.as_secs_f64(),
            mib_per_s(n, tw)
        );
    }
    for (split, speedup) in [
        ("balanced", apksift_tlsh::CHAIN_SPEEDUP),
        ("chain_separate", 0),
        ("owner_greedy", usize::MAX),
    ] {
        let run = || {
            let s = SharedHash::with_tuning(&buf, Options::default(), DEFAULT_CHUNK_LEN, speedup);
            std::thread::scope(|sc| {
                sc.spawn(|| s.help());
                s.run_checksum();
            });
            s.finish()
        };
        assert_eq!(run(), hash(&buf), "split {split} differs");
        let (tw, _) = best_wall_cpu(args.repeats, || {
            black_box(run()).ok();
        });
        println!(
            "RESULT impl=apksift-tlsh op=shared_hash_2_threads split={split} bytes={n} best_s={:.4} mib_s={:.1}",
            tw.as_secs_f64(),
            mib_per_s(n, tw)
        );
    }

    // Distance: 2^16 pseudo-random digests, each compared with 256 others (16.7 M pairs).
    let raw = pseudo_random(35 << 16, 42);
    let digests: Vec<Digest> = raw
        .chunks_exact(35)
        .map(|c| {
            let mut r = [0u8; 35];
            r.copy_from_slice(c);
            Digest::from_bytes(r)
        })
        .collect();
    let table: Vec<u8> = (0..=u16::MAX)
        .map(|i| body_byte_cost((i >> 8) as u8, i as u8) as u8)
        .collect();
    let pairs = digests.len() * 256;
    let scan = |f: &dyn Fn(&Digest, &Digest) -> u32| {
        let mut acc = 0u64;
        for (i, a) in digests.iter().enumerate() {
            for k in 1..=256 {
                let b = &digests[(i + k * 97) % digests.len()];
                acc += u64::from(f(black_box(a), black_box(b)));
            }
        }
        acc
    };
    let mut sums = Vec::new();
    for (name, f) in [
        (
            "distance",
            &(|a: &Digest, b: &Digest| a.distance(b, true)) as &dyn Fn(&Digest, &Digest) -> u32,
        ),
        ("body_distance_popcount", &|a: &Digest, b: &Digest| {
            a.body_distance(b)
        }),
        ("body_distance_lut64k", &|a: &Digest, b: &Digest| {
            body_distance_lut(&table, a, b)
        }),
    ] {
        let mut sum = 0;
        let t = best(args.repeats, || sum = black_box(scan(f)));
        sums.push((name, sum));
        println!(
            "RESULT impl=apksift-tlsh op={name} pairs={pairs} best_s={:.4} ns_per_pair={:.2}",
            t.as_secs_f64(),
            t.as_secs_f64() * 1e9 / pairs as f64
        );
    }
    assert_eq!(
        sums[1].1, sums[2].1,
        "popcount and table body distances differ"
    );
}
