//! Prometheus metrics, written in the text exposition format 0.0.4.
//!
//! A tiny registry of our own (counters, gauges and histograms with fixed
//! label sets) so that the same encoder serves `/metrics` and the
//! Pushgateway client ([`crate::push`]), which wants the classic text format
//! rather than OpenMetrics. Names follow the Prometheus conventions: an
//! `apksift_` prefix, base units (seconds, bytes), `_total` on counters, and
//! only low-cardinality labels (route templates, never raw paths or keys).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

/// Latency buckets in seconds. 0.05 and 0.095 are the scan goal and the
/// 95 ms figure of the source case study, so SLO ratios need no interpolation.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.095, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0,
];

/// Buckets for WAL fsync latency in seconds.
pub const FSYNC_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (stored as f64 bits).
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    /// Adds `d` (may be negative).
    pub fn add(&self, d: f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some((f64::from_bits(b) + d).to_bits())
            });
    }

    /// Current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// A histogram with fixed upper bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum: Gauge,
    count: AtomicU64,
}

impl Histogram {
    /// A histogram with the given upper bounds (ascending; `+Inf` is implied).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: Gauge::default(),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum.add(v);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of observations.
    pub fn sum(&self) -> f64 {
        self.sum.get()
    }
}

/// Metric kinds, for `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Counter (`_total`).
    Counter,
    /// Gauge.
    Gauge,
    /// Histogram (`_bucket`, `_sum`, `_count`).
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Label values in label-name order.
pub type LabelValues = Vec<String>;

/// A family of metrics of one name, by label values.
#[derive(Debug)]
pub struct Family<T> {
    labels: &'static [&'static str],
    members: RwLock<BTreeMap<LabelValues, Arc<T>>>,
    make: fn() -> T,
}

impl<T> Family<T> {
    /// A family with these label names; `make` builds a new member.
    pub fn new(labels: &'static [&'static str], make: fn() -> T) -> Family<T> {
        Family {
            labels,
            members: RwLock::new(BTreeMap::new()),
            make,
        }
    }

    /// The member for these label values (in the order of the label names).
    pub fn get(&self, values: &[&str]) -> Arc<T> {
        debug_assert_eq!(values.len(), self.labels.len());
        {
            let m = self.members.read();
            if let Some(x) = m
                .iter()
                .find(|(k, _)| k.iter().map(String::as_str).eq(values.iter().copied()))
                .map(|(_, v)| v.clone())
            {
                return x;
            }
        }
        let key: LabelValues = values.iter().map(|s| s.to_string()).collect();
        self.members
            .write()
            .entry(key)
            .or_insert_with(|| Arc::new((self.make)()))
            .clone()
    }

    /// Every member.
    pub fn members(&self) -> Vec<(LabelValues, Arc<T>)> {
        self.members
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Label names.
    pub fn label_names(&self) -> &'static [&'static str] {
        self.labels
    }
}

/// Writes metrics in the text exposition format 0.0.4.
#[derive(Debug, Default)]
pub struct Encoder {
    out: String,
}

/// Escapes a label value.
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

fn labels_text(names: &[&str], values: &[String], extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape_label(v)))
        .collect();
    if let Some((n, v)) = extra {
        parts.push(format!("{n}=\"{}\"", escape_label(v)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

impl Encoder {
    /// An empty output.
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// Writes `# HELP` and `# TYPE`.
    pub fn header(&mut self, name: &str, help: &str, kind: Kind) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.name());
    }

    /// Writes one sample line.
    pub fn sample(&mut self, name: &str, names: &[&str], values: &[String], v: f64) {
        let _ = writeln!(
            self.out,
            "{name}{} {}",
            labels_text(names, values, None),
            fmt_f64(v)
        );
    }

    /// A single unlabelled gauge.
    pub fn gauge(&mut self, name: &str, help: &str, v: f64) {
        self.header(name, help, Kind::Gauge);
        self.sample(name, &[], &[], v);
    }

    /// A single unlabelled counter (`name` ends in `_total`).
    pub fn counter(&mut self, name: &str, help: &str, v: f64) {
        self.header(name, help, Kind::Counter);
        self.sample(name, &[], &[], v);
    }

    /// A counter family.
    pub fn counter_family(&mut self, name: &str, help: &str, f: &Family<Counter>) {
        self.header(name, help, Kind::Counter);
        for (vals, c) in f.members() {
            self.sample(name, f.label_names(), &vals, c.get() as f64);
        }
    }

    /// A gauge family.
    pub fn gauge_family(&mut self, name: &str, help: &str, f: &Family<Gauge>) {
        self.header(name, help, Kind::Gauge);
        for (vals, g) in f.members() {
            self.sample(name, f.label_names(), &vals, g.get());
        }
    }

    fn histogram_body(&mut self, name: &str, names: &[&str], vals: &[String], h: &Histogram) {
        let mut cum = 0u64;
        for (i, b) in h.bounds.iter().enumerate() {
            cum += h.counts.get(i).map_or(0, |c| c.load(Ordering::Relaxed));
            let _ = writeln!(
                self.out,
                "{name}_bucket{} {cum}",
                labels_text(names, vals, Some(("le", &fmt_f64(*b))))
            );
        }
        let total = h.count();
        let _ = writeln!(
            self.out,
            "{name}_bucket{} {total}",
            labels_text(names, vals, Some(("le", "+Inf")))
        );
        let _ = writeln!(
            self.out,
            "{name}_sum{} {}",
            labels_text(names, vals, None),
            fmt_f64(h.sum())
        );
        let _ = writeln!(
            self.out,
            "{name}_count{} {total}",
            labels_text(names, vals, None)
        );
    }

    /// A single unlabelled histogram.
    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.header(name, help, Kind::Histogram);
        self.histogram_body(name, &[], &[], h);
    }

    /// A histogram family.
    pub fn histogram_family(&mut self, name: &str, help: &str, f: &Family<Histogram>) {
        self.header(name, help, Kind::Histogram);
        for (vals, h) in f.members() {
            self.histogram_body(name, f.label_names(), &vals, &h);
        }
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Process metrics read from `/proc/self` (Linux); absent elsewhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessStats {
    /// User + system CPU seconds.
    pub cpu_seconds: f64,
    /// Resident set size in bytes.
    pub resident_bytes: f64,
    /// Virtual memory size in bytes.
    pub virtual_bytes: f64,
    /// Threads.
    pub threads: f64,
    /// Open file descriptors.
    pub open_fds: f64,
    /// Soft limit on file descriptors.
    pub max_fds: f64,
}

/// Reads [`ProcessStats`]; `None` when `/proc/self/stat` is unreadable.
pub fn process_stats() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name (which may contain spaces).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); field n is f[n - 3].
    let field = |n: usize| -> f64 { f.get(n - 3).and_then(|s| s.parse().ok()).unwrap_or(0.0) };
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let page = rustix::param::page_size() as f64;
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as f64)
        .unwrap_or(0.0);
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0.0);
    Some(ProcessStats {
        cpu_seconds: (field(14) + field(15)) / ticks,
        resident_bytes: field(24) * page,
        virtual_bytes: field(23),
        threads: field(20),
        open_fds,
        max_fds,
    })
}

/// Free and total bytes of the filesystem holding `path`.
pub fn filesystem_space(path: &std::path::Path) -> Option<(f64, f64)> {
    let st = rustix::fs::statvfs(path).ok()?;
    let frsize = st.f_frsize as f64;
    Some((st.f_bavail as f64 * frsize, st.f_blocks as f64 * frsize))
}

/// Total size of the regular files directly in `dir` and one level below.
pub fn dir_bytes(dir: &std::path::Path) -> f64 {
    fn walk(dir: &std::path::Path, depth: u32) -> u64 {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return 0;
        };
        rd.flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_file() => m.len(),
                Ok(m) if m.is_dir() && depth > 0 => walk(&e.path(), depth - 1),
                _ => 0,
            })
            .sum()
    }
    walk(dir, 2) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_histogram_is_cumulative_and_escaped() {
        let f: Family<Histogram> = Family::new(&["endpoint"], || Histogram::new(&[0.1, 1.0]));
        f.get(&["/v1/a\"b"]).observe(0.05);
        f.get(&["/v1/a\"b"]).observe(0.5);
        f.get(&["/v1/a\"b"]).observe(5.0);
        let mut e = Encoder::new();
        e.histogram_family("x_seconds", "help", &f);
        let t = e.finish();
        assert!(t.contains("# TYPE x_seconds histogram"), "{t}");
        assert!(
            t.contains("x_seconds_bucket{endpoint=\"/v1/a\\\"b\",le=\"0.1\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("x_seconds_bucket{endpoint=\"/v1/a\\\"b\",le=\"1\"} 2"),
            "{t}"
        );
        assert!(
            t.contains("x_seconds_bucket{endpoint=\"/v1/a\\\"b\",le=\"+Inf\"} 3"),
            "{t}"
        );
        assert!(
            t.contains("x_seconds_count{endpoint=\"/v1/a\\\"b\"} 3"),
            "{t}"
        );
        assert!(
            t.contains("x_seconds_sum{endpoint=\"/v1/a\\\"b\"} 5.55"),
            "{t}"
        );
    }

    #[test]
    fn metrics_process_stats_on_linux() {
        let p = process_stats().expect("/proc/self/stat");
        assert!(p.resident_bytes > 1e6, "{p:?}");
        assert!(
            p.threads >= 1.0 && p.open_fds >= 1.0 && p.max_fds >= 1.0,
            "{p:?}"
        );
        let (free, total) = filesystem_space(std::path::Path::new("/")).unwrap();
        assert!(total > 0.0 && free <= total);
    }
}
