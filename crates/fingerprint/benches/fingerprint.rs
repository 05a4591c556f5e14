//! Latency of one fingerprint (not a timed test): sequential vs parallel, with the stage split.
//!
//! ```text
//! cargo bench -p apksift-fingerprint --bench fingerprint -- [--apk FILE] [--repeats N]
//! ```
//!
//! `--apk` defaults to `$WORK/bench10m.apk` (`WORK=/tmp/svcbench`), the 9.9 MB APK that
//! `bench/service/run.sh` builds with `bench/service/make_apk.py`. Each mode runs `--repeats`
//! times (default 40) after one warm-up run; lines starting with `RESULT` are `key=value` pairs:
//! wall-clock best / median / max, the process CPU time per run (all threads, from
//! `/proc/self/stat`), and the mean busy time per stage from [`apksift_fingerprint::Timings`].

use apksift_fingerprint::{Options, Parallelism, fingerprint_with};
use std::time::Duration;

fn arg(name: &str) -> Option<String> {
    let mut it = std::env::args().skip_while(|a| a != name);
    it.next()?;
    it.next()
}

/// User + system CPU time of the whole process (clock ticks of 10 ms).
fn process_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let work = std::env::var("WORK").unwrap_or_else(|_| "/tmp/svcbench".into());
    let path = arg("--apk").unwrap_or_else(|| format!("{work}/bench10m.apk"));
    let repeats: usize = arg("--repeats")
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
        .max(1);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{path}: {e} (build it with bench/service/make_apk.py, see bench/service/run.sh)")
    });
    let opts = Options::default();
    println!(
        "input: {path} ({} bytes), {repeats} runs per mode, rayon threads {}",
        bytes.len(),
        rayon::current_num_threads()
    );
    let reference = fingerprint_with(&bytes, &opts, Parallelism::Sequential).0;
    for (name, par) in [
        ("sequential", Parallelism::Sequential),
        ("parallel", Parallelism::Auto),
    ] {
        let (fp, _) = fingerprint_with(&bytes, &opts, par); // warm-up
        assert_eq!(fp, reference, "{name}: different fingerprint");
        let load_before = loadavg();
        let cpu0 = process_cpu();
        let mut walls = Vec::with_capacity(repeats);
        let (mut unzip, mut hash) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..repeats {
            let (fp, t) = fingerprint_with(&bytes, &opts, par);
            std::hint::black_box(fp);
            walls.push(t.wall);
            unzip += t.unzip;
            hash += t.hash;
        }
        let cpu = match (cpu0, process_cpu()) {
            (Some(a), Some(b)) => format!("{:.1}", ms(b.saturating_sub(a)) / repeats as f64),
            _ => "?".into(),
        };
        walls.sort_unstable();
        let n = repeats as u32;
        println!(
            "RESULT mode={name} bytes={} best_ms={:.1} p50_ms={:.1} max_ms={:.1} cpu_ms_per_run={cpu} \
             unzip_ms={:.1} hash_ms={:.1} load_before={load_before} load_after={}",
            bytes.len(),
            ms(walls[0]),
            ms(walls[walls.len() / 2]),
            ms(walls[walls.len() - 1]),
            ms(unzip / n),
            ms(hash / n),
            loadavg()
        );
    }
}
