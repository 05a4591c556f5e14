/*!
The apksift fingerprint of one APK: SHA-256 and TLSH of the whole file and of each component
(`AndroidManifest.xml`, `resources.arsc`, `classes*.dex`, `lib/<abi>/<name>.so`), the manifest's
identity fields, the SHA-256 of each signing certificate (v1, v2, v3, v3.1), and the anomalies
the ZIP layer found.

[`fingerprint`] never fails and never panics: whatever breaks becomes a field (`zip.error`,
`manifest_error`, `tlsh_error`, an entry's `error`) or an anomaly. The whole-file hashes are
computed from the raw bytes before any parsing, so they exist for every input.

```
use apksift_fingerprint::{fingerprint, Options};

let fp = fingerprint(b"not a zip at all", &Options::default());
assert_eq!(fp.size, 16);
assert_eq!(fp.sha256.len(), 64);
assert!(fp.tlsh.is_none());
assert_eq!(fp.tlsh_error.as_deref(), Some("too short"));
assert!(!fp.zip.ok);
```

Content is hashed as it is inflated (SHA-256 via `sha2`, TLSH via the streaming
[`apksift_tlsh::Hasher`]), so memory stays bounded however large an entry claims or turns out to be.

# Parallelism

From [`PARALLEL_MIN_LEN`] bytes on, the work runs on rayon's pool (the global one, or the one
the caller is running in, so nested use inside a pool's task adds no threads): the whole-file
SHA-256, the whole-file TLSH (split with [`apksift_tlsh::SharedHash`]) and the ZIP part run side
by side, and inside the ZIP part several components are read at once, each by a worker with its
own view of the archive (one 64 KiB inflate buffer each: nothing else is buffered). The result is
bit-identical with [`Parallelism::Sequential`]: the per-archive byte budget
([`Limits::max_total_bytes`]) is consumed in the sequential order, so a worker's read is kept only
when the budget could not have cut it there; otherwise (an archive that hits the budget) every
component is read again in order on the calling thread. [`fingerprint_with`] reports where the time
went ([`Timings`]).
*/
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apksift_apk::{self as apk, Archive, ComponentKind as Kind, Limits, Truncation, hex};
use apksift_tlsh::{Digest, Hasher, SharedHash};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// What to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Bounds on the ZIP layer (entries, bytes inflated, ratio, ...).
    pub limits: Limits,
    /// Also hash every entry and list it in [`Fingerprint::entries`].
    pub include_entries: bool,
}

/// The fingerprint of one APK (or of any bytes: a non-ZIP input still gets the whole-file fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Lower-case hex SHA-256 of the raw file bytes.
    pub sha256: String,
    /// File size in bytes.
    pub size: u64,
    /// TLSH of the raw file bytes (`null` when the input has no digest). Never depends on parsing.
    pub tlsh: Option<Digest>,
    /// Why there is no whole-file TLSH: `"too short"` or `"too little variety"`.
    pub tlsh_error: Option<String>,
    /// How the ZIP structure read.
    pub zip: ZipSummary,
    /// The components, in the order manifest, resources, dex files (central-directory order),
    /// native libraries (central-directory order). Duplicated names give one component per copy.
    pub components: Vec<Component>,
    /// Identity fields of `AndroidManifest.xml`, when a root element could be read.
    pub manifest: Option<ManifestInfo>,
    /// Why the manifest is missing or incomplete (set together with `manifest` for a partial parse).
    pub manifest_error: Option<String>,
    /// Signing certificates, v1 first, then v2, v3, v3.1; no duplicates within a scheme.
    pub certificates: Vec<Certificate>,
    /// Structural anomalies (see `docs/APK.md` for the codes).
    pub anomalies: Vec<Anomaly>,
    /// Every entry with its content hashes; only with [`Options::include_entries`].
    pub entries: Option<Vec<EntryInfo>>,
}

/// The ZIP layer's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZipSummary {
    /// The central directory was found and read.
    pub ok: bool,
    /// Why it was not (entries may still come from a salvage scan, flagged `salvaged`).
    pub error: Option<String>,
    /// Entries processed (central-directory records, or salvaged local headers).
    pub entry_count: u64,
}

/// The kind of a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentKind {
    /// `AndroidManifest.xml`.
    Manifest,
    /// `resources.arsc`.
    Resources,
    /// `classes*.dex`.
    Dex,
    /// `lib/<abi>/*.so`.
    Native,
}

impl ComponentKind {
    fn from_apk(k: Kind) -> Option<Self> {
        Some(match k {
            Kind::Manifest => ComponentKind::Manifest,
            Kind::Resources => ComponentKind::Resources,
            Kind::Dex => ComponentKind::Dex,
            Kind::Native => ComponentKind::Native,
            _ => return None,
        })
    }
}

/// One hashed component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// What it is.
    pub kind: ComponentKind,
    /// Escaped entry name.
    pub name: String,
    /// Bytes actually read (and hashed).
    pub size: u64,
    /// Lower-case hex SHA-256 of the bytes read.
    pub sha256: String,
    /// TLSH of the bytes read.
    pub tlsh: Option<Digest>,
    /// Why there is no TLSH.
    pub tlsh_error: Option<String>,
    /// A limit stopped the read: the hashes cover a prefix of the content.
    pub truncated: bool,
}

/// Identity fields of the manifest, as written there (integers in decimal, references as
/// `@XXXXXXXX`, codenames as text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestInfo {
    /// `package`.
    pub package: Option<String>,
    /// `android:versionCode`.
    pub version_code: Option<String>,
    /// `android:versionName`.
    pub version_name: Option<String>,
    /// `<uses-sdk android:minSdkVersion>`.
    pub min_sdk: Option<String>,
    /// `<uses-sdk android:targetSdkVersion>`.
    pub target_sdk: Option<String>,
    /// `<uses-sdk android:maxSdkVersion>`.
    pub max_sdk: Option<String>,
}

/// One signing certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Certificate {
    /// `"v1"`, `"v2"`, `"v3"` or `"v3.1"`.
    pub scheme: String,
    /// Lower-case hex SHA-256 of the DER certificate.
    pub sha256: String,
}

/// A structural anomaly (see [`apksift_apk::codes`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Anomaly {
    /// Stable snake_case code.
    pub code: String,
    /// Escaped name of the entry concerned.
    pub entry: Option<String>,
    /// Human-readable detail.
    pub detail: String,
}

impl From<apk::Anomaly> for Anomaly {
    fn from(a: apk::Anomaly) -> Self {
        Anomaly {
            code: a.code.to_string(),
            entry: a.entry,
            detail: a.detail,
        }
    }
}

/// One entry (with [`Options::include_entries`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryInfo {
    /// Escaped name.
    pub name: String,
    /// Hex of the raw name bytes, when they include bytes outside printable ASCII.
    pub raw_name_hex: Option<String>,
    /// Compression method from the central directory.
    pub method: u16,
    /// Declared compressed size.
    pub compressed_size: u64,
    /// Declared uncompressed size.
    pub uncompressed_size: u64,
    /// Declared CRC-32, 8 lower-case hex digits.
    pub crc32: String,
    /// SHA-256 of the bytes read; `null` when the read failed.
    pub sha256: Option<String>,
    /// TLSH of the bytes read.
    pub tlsh: Option<Digest>,
    /// Bytes read (before an error, or up to a limit).
    pub read_size: u64,
    /// A limit stopped the read (the hashes cover a prefix).
    pub truncated: bool,
    /// Why the read failed.
    pub error: Option<String>,
}

/// Inputs from this size on are fingerprinted on several threads by [`fingerprint`] (below it,
/// handing work to other threads costs more than it saves).
pub const PARALLEL_MIN_LEN: usize = apksift_tlsh::PARALLEL_MIN_LEN;

/// Whether [`fingerprint_with`] may use rayon's pool. The fingerprint is the same in every mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Parallelism {
    /// On the calling thread only.
    Sequential,
    /// In parallel from [`PARALLEL_MIN_LEN`] bytes on (what [`fingerprint`] does).
    #[default]
    Auto,
    /// In parallel whatever the size (for tests and measurements).
    Always,
}

/// Where the time of one fingerprint went: busy time, added up over the threads that worked on
/// it, so with parallel work `unzip + hash` can exceed the wall-clock time. Measured with a clock
/// read around each 64 KiB chunk of inflated data (a few hundred reads per 10 MB APK).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timings {
    /// Reading the archive: ZIP structures, manifest, signing blocks, and inflating (or copying)
    /// the entries that are hashed.
    pub unzip: Duration,
    /// SHA-256 and TLSH of the whole file, the components and (with
    /// [`Options::include_entries`]) the other entries.
    pub hash: Duration,
    /// Wall-clock time of the whole fingerprint.
    pub wall: Duration,
}

/// Busy-time counters shared by the workers of one fingerprint.
#[derive(Default)]
struct Clock {
    unzip_ns: AtomicU64,
    hash_ns: AtomicU64,
}

impl Clock {
    fn add(counter: &AtomicU64, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        counter.fetch_add(ns, Ordering::Relaxed);
    }

    fn unzip(&self, d: Duration) {
        Clock::add(&self.unzip_ns, d);
    }

    fn hash(&self, d: Duration) {
        Clock::add(&self.hash_ns, d);
    }

    /// `f`'s run time as hashing time.
    fn hashing<T>(&self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.hash(t.elapsed());
        out
    }
}

/// Computes the fingerprint of `bytes`. Never fails, never panics. Inputs of [`PARALLEL_MIN_LEN`]
/// bytes or more are processed on rayon's pool (see the crate documentation); the result does not
/// depend on it.
pub fn fingerprint(bytes: &[u8], opts: &Options) -> Fingerprint {
    fingerprint_with(bytes, opts, Parallelism::Auto).0
}

/// [`fingerprint`] on the calling thread only (for callers that must not use rayon's pool).
pub fn fingerprint_sequential(bytes: &[u8], opts: &Options) -> Fingerprint {
    fingerprint_with(bytes, opts, Parallelism::Sequential).0
}

/// [`fingerprint`] with the [`Parallelism`] to use, and where the time went.
pub fn fingerprint_with(bytes: &[u8], opts: &Options, par: Parallelism) -> (Fingerprint, Timings) {
    let t0 = Instant::now();
    let clock = Clock::default();
    let parallel = match par {
        Parallelism::Sequential => false,
        Parallelism::Auto => bytes.len() >= PARALLEL_MIN_LEN,
        Parallelism::Always => true,
    };
    let ((sha256, tlsh), mut fp) = if parallel {
        rayon::join(
            || whole_file_parallel(bytes, &clock),
            || contents_guarded(bytes, opts, true, &clock),
        )
    } else {
        let whole = clock.hashing(|| (Sha256::digest(bytes), apksift_tlsh::hash(bytes)));
        (whole, contents_guarded(bytes, opts, false, &clock))
    };
    fp.sha256 = hex(&sha256);
    (fp.tlsh, fp.tlsh_error) = split_tlsh(tlsh);
    let timings = Timings {
        unzip: Duration::from_nanos(clock.unzip_ns.load(Ordering::Relaxed)),
        hash: Duration::from_nanos(clock.hash_ns.load(Ordering::Relaxed)),
        wall: t0.elapsed(),
    };
    (fp, timings)
}

type WholeFile = (
    sha2::digest::Output<Sha256>,
    Result<Digest, apksift_tlsh::NoDigest>,
);

/// Whole-file SHA-256 and TLSH on rayon's pool: the TLSH checksum chain runs here at once, while
/// the SHA-256 and TLSH helpers (one per other thread of the pool) wait to be picked up by idle
/// threads; a helper that starts after all is done returns at once.
fn whole_file_parallel(bytes: &[u8], clock: &Clock) -> WholeFile {
    let shared = SharedHash::new(bytes, apksift_tlsh::Options::default());
    let helpers = rayon::current_num_threads().saturating_sub(1).max(1);
    let ((), sha) = rayon::join(
        || clock.hashing(|| shared.run_checksum()),
        || {
            rayon::scope(|s| {
                for _ in 0..helpers {
                    s.spawn(|_| clock.hashing(|| shared.help()));
                }
                clock.hashing(|| Sha256::digest(bytes))
            })
        },
    );
    let tlsh = clock.hashing(|| shared.finish());
    (sha, tlsh)
}

/// A fingerprint with only the size set (the ZIP part fills the rest, the caller the whole-file
/// hashes).
fn empty(size: u64) -> Fingerprint {
    Fingerprint {
        sha256: String::new(),
        size,
        tlsh: None,
        tlsh_error: None,
        zip: ZipSummary {
            ok: false,
            error: None,
            entry_count: 0,
        },
        components: Vec::new(),
        manifest: None,
        manifest_error: None,
        certificates: Vec::new(),
        anomalies: Vec::new(),
        entries: None,
    }
}

/// Runs the ZIP-dependent part. Without the `fuzzing` feature, a panic there (a bug: the code is written
/// not to panic) is caught and reported as an `internal_error` anomaly so that a scan never dies;
/// fuzzing builds let it through so the fuzzer sees it.
fn contents_guarded(bytes: &[u8], opts: &Options, parallel: bool, clock: &Clock) -> Fingerprint {
    let mut fp = empty(bytes.len() as u64);
    #[cfg(not(feature = "fuzzing"))]
    {
        let mut part = fp.clone();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            contents(bytes, opts, &mut part, parallel, clock)
        })) {
            Ok(()) => fp = part,
            Err(_) => {
                fp.zip.error = Some("internal error while reading the archive".into());
                fp.anomalies.push(Anomaly {
                    code: "internal_error".into(),
                    entry: None,
                    detail:
                        "the archive reader panicked (a bug); only whole-file hashes are reported"
                            .into(),
                });
            }
        }
    }
    #[cfg(feature = "fuzzing")]
    contents(bytes, opts, &mut fp, parallel, clock);
    fp
}

fn split_tlsh(r: Result<Digest, apksift_tlsh::NoDigest>) -> (Option<Digest>, Option<String>) {
    match r {
        Ok(d) => (Some(d), None),
        Err(e) => (None, Some(e.reason().to_string())),
    }
}

/// Anomalies without exact repeats (a read reports the same CRC mismatch each time).
struct AnomalyList {
    seen: HashSet<Anomaly>,
    list: Vec<Anomaly>,
    cap: usize,
    dropped: u64,
}

impl AnomalyList {
    fn push(&mut self, a: impl Into<Anomaly>) {
        let a = a.into();
        if self.seen.contains(&a) {
            return;
        }
        if self.list.len() >= self.cap {
            self.dropped += 1;
            return;
        }
        self.seen.insert(a.clone());
        self.list.push(a);
    }

    fn finish(mut self) -> Vec<Anomaly> {
        if self.dropped > 0 {
            self.list.push(Anomaly {
                code: apk::codes::ANOMALY_LIMIT.into(),
                entry: None,
                detail: format!(
                    "{} further anomalies were not listed (cap {})",
                    self.dropped, self.cap
                ),
            });
        }
        self.list
    }
}

/// Content hashes of one read.
struct Hashed {
    sha256: String,
    tlsh: Result<Digest, apksift_tlsh::NoDigest>,
    bytes: u64,
    truncation: Option<Truncation>,
    error: Option<String>,
    /// The read's anomalies, to be listed in the sequential order.
    anomalies: Vec<apk::Anomaly>,
}

fn hash_entry(archive: &Archive<'_>, index: usize, clock: &Clock) -> Hashed {
    let mut sha = Sha256::new();
    let mut th = Hasher::new();
    let mut hashing = Duration::ZERO;
    let t0 = Instant::now();
    let report = archive.read(index, u64::MAX, &mut |c: &[u8]| {
        let t = Instant::now();
        sha.update(c);
        th.update(c);
        hashing += t.elapsed();
    });
    let t = Instant::now();
    let sha256 = hex(&sha.finalize());
    let tlsh = th.finish();
    hashing += t.elapsed();
    clock.unzip(t0.elapsed().saturating_sub(hashing));
    clock.hash(hashing);
    Hashed {
        sha256,
        tlsh,
        bytes: report.bytes,
        truncation: report.truncated,
        error: report.error.map(|e| e.to_string()),
        anomalies: report.anomalies,
    }
}

/// Reads and hashes the entries `order[0]`, `order[1]`, … as if one after the other on `archive`
/// (whose budget has already been charged for the manifest and signing reads), on several
/// workers when `parallel`.
fn hash_entries(
    bytes: &[u8],
    archive: &Archive<'_>,
    salvaged: bool,
    order: &[usize],
    parallel: bool,
    clock: &Clock,
) -> Vec<Hashed> {
    let workers = rayon::current_num_threads().min(order.len());
    if parallel
        && workers > 1
        && let Some(all) = hash_entries_parallel(bytes, archive, salvaged, order, workers, clock)
    {
        return all;
    }
    order
        .iter()
        .map(|&i| hash_entry(archive, i, clock))
        .collect()
}

/// [`hash_entries`] on `workers` rayon tasks, each reading with its own view of the archive (an
/// [`Archive`] counts its byte budget in a `Cell`, so one view cannot be shared). Big entries are
/// taken first. The budget is per view, so a read is kept only if the sequential order could not
/// have cut it: not stopped by the budget, and everything before it in `order` plus itself fits.
/// `None` when some read fails that test (the archive exceeds its budget): the caller then reads
/// everything again in order. The workers stop taking entries once the bytes read show that the
/// budget will be exceeded, which bounds the work thrown away.
fn hash_entries_parallel(
    bytes: &[u8],
    archive: &Archive<'_>,
    salvaged: bool,
    order: &[usize],
    workers: usize,
    clock: &Clock,
) -> Option<Vec<Hashed>> {
    let limits = archive.limits();
    let base = archive.bytes_read();
    let mut by_size: Vec<usize> = (0..order.len()).collect();
    by_size.sort_by_key(|&k| {
        let size = order
            .get(k)
            .and_then(|&i| archive.entries().get(i))
            .map_or(0, |e| e.uncompressed_size.max(e.compressed_size));
        std::cmp::Reverse(size)
    });
    let slots: Vec<Mutex<Option<Hashed>>> = order.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let spent = AtomicU64::new(0);
    let abort = AtomicBool::new(false);
    let entry_count = archive.entries().len();
    let worker = || {
        // Opened on the first entry taken, so that a worker that finds nothing costs nothing.
        let mut view: Option<Archive<'_>> = None;
        while !abort.load(Ordering::Relaxed) {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&pos) = by_size.get(k) else { break };
            let Some(&index) = order.get(pos) else { break };
            if view.is_none() {
                let t = Instant::now();
                view =
                    open_view(bytes, limits, salvaged).filter(|v| v.entries().len() == entry_count);
                clock.unzip(t.elapsed());
            }
            let Some(v) = view.as_ref() else {
                abort.store(true, Ordering::Relaxed);
                break;
            };
            let h = hash_entry(v, index, clock);
            let total = spent
                .fetch_add(h.bytes, Ordering::Relaxed)
                .saturating_add(h.bytes);
            if base.saturating_add(total) > limits.max_total_bytes {
                abort.store(true, Ordering::Relaxed);
            }
            if let Some(slot) = slots.get(pos) {
                *slot
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(h);
            }
        }
    };
    rayon::scope(|s| {
        for _ in 1..workers {
            s.spawn(|_| worker());
        }
        worker();
    });
    if abort.load(Ordering::Relaxed) {
        return None;
    }
    let mut used = base;
    let mut out = Vec::with_capacity(order.len());
    for slot in slots {
        let h = slot
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)?;
        used = used.saturating_add(h.bytes);
        if h.truncation == Some(Truncation::TotalLimit) || used > limits.max_total_bytes {
            return None;
        }
        out.push(h);
    }
    Some(out)
}

/// Another view of the archive that `contents` reads: entries are a pure function of the bytes
/// and limits, so parsing (or salvaging) again gives the same ones.
fn open_view<'a>(bytes: &'a [u8], limits: &Limits, salvaged: bool) -> Option<Archive<'a>> {
    if salvaged {
        Some(Archive::salvage(bytes, limits))
    } else {
        Archive::parse(bytes, limits).ok()
    }
}

fn contents(bytes: &[u8], opts: &Options, fp: &mut Fingerprint, parallel: bool, clock: &Clock) {
    let t_open = Instant::now();
    let limits = &opts.limits;
    let mut an = AnomalyList {
        seen: HashSet::new(),
        list: Vec::new(),
        cap: limits.max_anomalies,
        dropped: 0,
    };
    let archive = match Archive::parse(bytes, limits) {
        Ok(a) => {
            fp.zip.ok = true;
            Some(a)
        }
        Err(e) => {
            fp.zip.error = Some(e.to_string());
            let salvageable = !matches!(e, apk::ZipError::Empty);
            (limits.salvage && salvageable)
                .then(|| Archive::salvage(bytes, limits))
                .filter(|a| !a.entries().is_empty())
        }
    };
    let Some(archive) = archive else {
        fp.manifest_error = Some(match &fp.zip.error {
            Some(e) => format!("no archive: {e}"),
            None => "no archive".into(),
        });
        fp.anomalies = an.finish();
        clock.unzip(t_open.elapsed());
        return;
    };
    fp.zip.entry_count = archive.entries().len() as u64;
    for a in archive.anomalies() {
        an.push(a.clone());
    }

    // Identity first, so that the byte budget cannot starve it.
    let m = archive.manifest();
    for a in m.anomalies {
        an.push(a);
    }
    match m.result {
        Ok(man) => {
            if !man.problems.is_empty() {
                fp.manifest_error = Some(format!(
                    "manifest partly unreadable: {}",
                    man.problems.join("; ")
                ));
            }
            fp.manifest = Some(ManifestInfo {
                package: man.package,
                version_code: man.version_code,
                version_name: man.version_name,
                min_sdk: man.min_sdk,
                target_sdk: man.target_sdk,
                max_sdk: man.max_sdk,
            });
        }
        Err(e) => fp.manifest_error = Some(e.to_string()),
    }
    let (certs, cert_anomalies) = apk::certificates(&archive);
    for a in cert_anomalies {
        an.push(a);
    }
    fp.certificates = certs
        .iter()
        .map(|c| Certificate {
            scheme: c.scheme.as_str().to_string(),
            sha256: hex(&Sha256::digest(&c.der)),
        })
        .collect();

    // Components, then (optionally) every other entry; each entry is read once.
    let mut comps: Vec<(ComponentKind, usize)> = archive
        .entries()
        .iter()
        .filter_map(|e| {
            Kind::of(e.name)
                .and_then(ComponentKind::from_apk)
                .map(|k| (k, e.index))
        })
        .collect();
    comps.sort_by_key(|&(k, i)| (k, i));
    let n = archive.entries().len();
    let mut order: Vec<usize> = comps.iter().map(|&(_, i)| i).collect();
    if opts.include_entries {
        let mut is_component = vec![false; n];
        for &i in &order {
            if let Some(c) = is_component.get_mut(i) {
                *c = true;
            }
        }
        order.extend((0..n).filter(|&i| !is_component.get(i).copied().unwrap_or(true)));
    }
    clock.unzip(t_open.elapsed());
    let salvaged = !fp.zip.ok;
    let mut results = hash_entries(bytes, &archive, salvaged, &order, parallel, clock);
    // The reads' anomalies in the order of the reads, as if read one after the other.
    for h in &mut results {
        for a in std::mem::take(&mut h.anomalies) {
            an.push(a);
        }
    }
    let mut results = results.into_iter();
    let mut hashed: Vec<Option<Hashed>> = Vec::new();
    if opts.include_entries {
        hashed.resize_with(n, || None);
    }
    for &(kind, index) in &comps {
        let Some(h) = results.next() else { break };
        let name = archive
            .entries()
            .get(index)
            .map(|e| e.display_name())
            .unwrap_or_default();
        if h.error.is_none() {
            let (tlsh, tlsh_error) = split_tlsh(h.tlsh);
            fp.components.push(Component {
                kind,
                name,
                size: h.bytes,
                sha256: h.sha256.clone(),
                tlsh,
                tlsh_error,
                truncated: h.truncation.is_some(),
            });
        }
        if let Some(slot) = hashed.get_mut(index) {
            *slot = Some(h);
        }
    }
    if opts.include_entries {
        for (&index, h) in order.iter().skip(comps.len()).zip(results) {
            if let Some(slot) = hashed.get_mut(index) {
                *slot = Some(h);
            }
        }
        let mut list = Vec::with_capacity(n);
        for (e, slot) in archive.entries().iter().zip(hashed) {
            // Every entry is in `order`, so every slot is filled.
            let Some(h) = slot else { continue };
            let ok = h.error.is_none();
            list.push(EntryInfo {
                name: e.display_name(),
                raw_name_hex: apk::needs_raw_hex(e.name).then(|| hex(e.name)),
                method: e.method,
                compressed_size: e.compressed_size,
                uncompressed_size: e.uncompressed_size,
                crc32: format!("{:08x}", e.crc32),
                sha256: ok.then_some(h.sha256),
                tlsh: if ok { h.tlsh.ok() } else { None },
                read_size: h.bytes,
                truncated: h.truncation.is_some(),
                error: h.error,
            });
        }
        fp.entries = Some(list);
    }
    fp.anomalies = an.finish();
}
