//! The sample store: `samples` and `components` on a [`Backend`] (the embedded engine or
//! Milvus).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use apksift_fingerprint::{ComponentKind, Fingerprint};
use apksift_index::{Batch, Column, Database, Value};
use apksift_tlsh::Digest;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::backend::Backend;
use crate::meta::{Label, SampleMeta, ThreatLevel, normalize_key, normalize_sha256};
use crate::schema::{COMPONENTS, SAMPLES, components_schema, samples_schema};
use crate::{Error, Result};

/// Most component rows kept per sample (every `classes*.dex` and native library with a TLSH
/// digest, in fingerprint order). Further components are counted in
/// [`IngestOutcome::components_dropped`].
pub const MAX_COMPONENTS_PER_SAMPLE: usize = 200;
/// Longest escaped entry name used in a component key; longer names are cut and suffixed
/// with a hash of the full name.
const MAX_KEY_NAME: usize = 200;
/// Rows per engine write when importing or ingesting in bulk.
pub(crate) const WRITE_CHUNK: usize = 4096;

/// Options of [`Store::open`].
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// Engine options (memtable size, background work, WAL group commit...). Embedded
    /// stores only: a Milvus store takes its options from its `milvus://` address.
    pub engine: apksift_index::Options,
}

/// The APK sample store. Cheap to clone; `Send + Sync`; all methods take `&self`. The data
/// lives in a [`Backend`]: the embedded engine ([`Database`]) or, with the cargo feature
/// `milvus`, a Milvus server.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

/// The scheme of Milvus store addresses.
pub const MILVUS_SCHEME: &str = "milvus://";

/// What [`Store::ingest`] did for one sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    /// The sample's key (lower-case SHA-256).
    pub sha256: String,
    /// The sample was already stored and its row was replaced.
    pub replaced: bool,
    /// Component rows written.
    pub components: usize,
    /// Component rows of an earlier ingest that were deleted because they no longer exist.
    pub components_removed: usize,
    /// Components not stored: over [`MAX_COMPONENTS_PER_SAMPLE`].
    pub components_dropped: usize,
}

/// A stored sample, as returned by [`Store::get_sample`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Primary key (SHA-256, or `sha1:…`/`md5:…`/… for imported records without one).
    pub key: String,
    /// `sha256`, `sha1`, `md5`, or the import's id type.
    pub id_type: String,
    /// Label.
    pub label: Label,
    /// Family.
    pub family: Option<String>,
    /// Threat level.
    pub threat: Option<ThreatLevel>,
    /// Source.
    pub source: Option<String>,
    /// First seen (unix seconds).
    pub first_seen: Option<i64>,
    /// When the row was last written (unix seconds).
    pub ingested_at: Option<i64>,
    /// Manifest package.
    pub package: Option<String>,
    /// Manifest versionCode.
    pub version_code: Option<String>,
    /// SHA-256 of each signing certificate (distinct, sorted).
    pub cert_sha256: Vec<String>,
    /// File size in bytes.
    pub size: Option<u64>,
    /// `apk`, or what the import said (`file_type_guess`, `file_kind`).
    pub file_type: Option<String>,
    /// Whole-file TLSH.
    pub whole: Option<Digest>,
    /// `AndroidManifest.xml` TLSH.
    pub manifest: Option<Digest>,
    /// `resources.arsc` TLSH.
    pub resources: Option<Digest>,
    /// `classes.dex` TLSH.
    pub dex: Option<Digest>,
    /// Number of dex files.
    pub dex_count: Option<u64>,
    /// Number of native libraries.
    pub native_count: Option<u64>,
    /// Anomaly codes found when the APK was fingerprinted.
    pub anomalies: Vec<String>,
    /// Keys of the sample's rows in `components`.
    pub component_keys: Vec<String>,
}

/// Counts of a store.
#[derive(Debug, Clone, Serialize)]
pub struct StoreStats {
    /// Where the store lives.
    pub location: String,
    /// Rows in `samples`.
    pub samples: u64,
    /// Rows in `components`.
    pub components: u64,
    /// Engine statistics.
    pub engine: apksift_index::Stats,
}

pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// One row of `samples` being built.
#[derive(Debug, Clone, Default)]
pub(crate) struct SampleRow {
    pub key: String,
    pub whole: Option<Digest>,
    pub manifest: Option<Digest>,
    pub resources: Option<Digest>,
    pub dex: Option<Digest>,
    pub id_type: String,
    pub label: Label,
    pub family: Option<String>,
    pub threat: Option<ThreatLevel>,
    pub source: Option<String>,
    pub first_seen: Option<i64>,
    pub ingested_at: i64,
    pub package: Option<String>,
    pub version_code: Option<String>,
    pub cert_sha256: Option<String>,
    pub size: Option<i64>,
    pub file_type: Option<String>,
    pub dex_count: Option<i64>,
    pub native_count: Option<i64>,
    pub anomalies: Option<String>,
    pub component_keys: Option<String>,
}

pub(crate) fn samples_batch(rows: &[SampleRow]) -> Batch {
    let mut b = Batch {
        keys: rows.iter().map(|r| r.key.clone()).collect(),
        columns: BTreeMap::new(),
    };
    let mut put = |name: &str, c: Column| {
        b.columns.insert(name.to_string(), c);
    };
    put(
        "whole",
        Column::Tlsh(rows.iter().map(|r| r.whole).collect()),
    );
    put(
        "manifest",
        Column::Tlsh(rows.iter().map(|r| r.manifest).collect()),
    );
    put(
        "resources",
        Column::Tlsh(rows.iter().map(|r| r.resources).collect()),
    );
    put("dex", Column::Tlsh(rows.iter().map(|r| r.dex).collect()));
    let strs = |f: fn(&SampleRow) -> Option<String>| Column::Str(rows.iter().map(f).collect());
    let ints = |f: fn(&SampleRow) -> Option<i64>| Column::Int(rows.iter().map(f).collect());
    put("id_type", strs(|r| Some(r.id_type.clone())));
    put("label", strs(|r| Some(r.label.name().to_string())));
    put("family", strs(|r| r.family.clone()));
    put("threat", ints(|r| r.threat.map(ThreatLevel::as_i64)));
    put("source", strs(|r| r.source.clone()));
    put("first_seen", ints(|r| r.first_seen));
    put("ingested_at", ints(|r| Some(r.ingested_at)));
    put("package", strs(|r| r.package.clone()));
    put("version_code", strs(|r| r.version_code.clone()));
    put("cert_sha256", strs(|r| r.cert_sha256.clone()));
    put("size", ints(|r| r.size));
    put("file_type", strs(|r| r.file_type.clone()));
    put("dex_count", ints(|r| r.dex_count));
    put("native_count", ints(|r| r.native_count));
    put("anomalies", strs(|r| r.anomalies.clone()));
    put("component_keys", strs(|r| r.component_keys.clone()));
    b
}

struct ComponentRow {
    key: String,
    tlsh: Digest,
    kind: &'static str,
    name: String,
    sample: String,
    sha256: String,
    size: i64,
}

fn components_batch(rows: &[ComponentRow], meta: &HashMap<String, SampleMeta>) -> Batch {
    let mut b = Batch {
        keys: rows.iter().map(|r| r.key.clone()).collect(),
        columns: BTreeMap::new(),
    };
    let m = |r: &ComponentRow| meta.get(&r.sample);
    b.columns.insert(
        "tlsh".into(),
        Column::Tlsh(rows.iter().map(|r| Some(r.tlsh)).collect()),
    );
    b.columns.insert(
        "kind".into(),
        Column::Str(rows.iter().map(|r| Some(r.kind.to_string())).collect()),
    );
    b.columns.insert(
        "name".into(),
        Column::Str(rows.iter().map(|r| Some(r.name.clone())).collect()),
    );
    b.columns.insert(
        "sample".into(),
        Column::Str(rows.iter().map(|r| Some(r.sample.clone())).collect()),
    );
    b.columns.insert(
        "sha256".into(),
        Column::Str(rows.iter().map(|r| Some(r.sha256.clone())).collect()),
    );
    b.columns.insert(
        "size".into(),
        Column::Int(rows.iter().map(|r| Some(r.size)).collect()),
    );
    b.columns.insert(
        "label".into(),
        Column::Str(
            rows.iter()
                .map(|r| m(r).map(|m| m.label.name().to_string()))
                .collect(),
        ),
    );
    b.columns.insert(
        "family".into(),
        Column::Str(
            rows.iter()
                .map(|r| m(r).and_then(|m| m.family.clone()))
                .collect(),
        ),
    );
    b.columns.insert(
        "threat".into(),
        Column::Int(
            rows.iter()
                .map(|r| m(r).and_then(|m| m.threat).map(ThreatLevel::as_i64))
                .collect(),
        ),
    );
    b
}

/// The name of a component kind as stored and reported.
pub fn kind_name(k: ComponentKind) -> &'static str {
    match k {
        ComponentKind::Manifest => "manifest",
        ComponentKind::Resources => "resources",
        ComponentKind::Dex => "dex",
        ComponentKind::Native => "native",
    }
}

/// Escapes an entry name for a component key: bytes outside `[A-Za-z0-9._/+@-]` become
/// `%XX`; names longer than 200 bytes are cut and suffixed with `~` and 16 hex digits of
/// the SHA-256 of the full name.
pub fn escape_key_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"._/+@-".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.len() > MAX_KEY_NAME {
        let h = Sha256::digest(name.as_bytes());
        let tag: String = h.iter().take(8).map(|b| format!("{b:02x}")).collect();
        out.truncate(MAX_KEY_NAME - 17);
        out.push('~');
        out.push_str(&tag);
    }
    out
}

fn join_nonempty(items: impl IntoIterator<Item = String>, sep: &str) -> Option<String> {
    let v: Vec<String> = items.into_iter().collect();
    (!v.is_empty()).then(|| v.join(sep))
}

fn split_list(s: Option<String>, sep: char) -> Vec<String> {
    s.map(|s| {
        s.split(sep)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

pub(crate) fn v_str(m: &BTreeMap<String, Value>, f: &str) -> Option<String> {
    match m.get(f) {
        Some(Value::Str(s)) => Some(s.clone()),
        _ => None,
    }
}

pub(crate) fn v_int(m: &BTreeMap<String, Value>, f: &str) -> Option<i64> {
    match m.get(f) {
        Some(Value::Int(v)) => Some(*v),
        _ => None,
    }
}

pub(crate) fn v_tlsh(m: &BTreeMap<String, Value>, f: &str) -> Option<Digest> {
    match m.get(f) {
        Some(Value::Tlsh(d)) => Some(*d),
        _ => None,
    }
}

pub(crate) fn v_label(m: &BTreeMap<String, Value>) -> Label {
    v_str(m, "label")
        .and_then(|s| s.parse().ok())
        .unwrap_or(Label::Unknown)
}

pub(crate) fn v_threat(m: &BTreeMap<String, Value>) -> Option<ThreatLevel> {
    v_int(m, "threat").and_then(ThreatLevel::from_i64)
}

pub(crate) fn all_sample_fields() -> Vec<String> {
    samples_schema()
        .fields
        .iter()
        .map(|f| f.name.clone())
        .collect()
}

impl Store {
    /// Opens (or creates) the store in directory `path` as its single writer. Creates the
    /// `samples` and `components` collections when the store is new; fails with
    /// [`Error::Incompatible`] when they exist with another schema.
    pub fn open(path: impl AsRef<Path>, opts: StoreOptions) -> Result<Store> {
        let db = Database::open(path, opts.engine)?;
        Store::from_database(db)
    }

    /// Opens a read-only replica of the store in `path` (which must exist and hold a
    /// store). Scans and searches work; writes fail with [`Error::ReadOnly`].
    pub fn open_read_only(path: impl AsRef<Path>, opts: StoreOptions) -> Result<Store> {
        let p = path.as_ref();
        if !p.join(apksift_index::manifest::MANIFEST).exists() {
            return Err(Error::NotFound(format!(
                "no apksift store at {}",
                p.display()
            )));
        }
        let db = Database::open_read_only(p, opts.engine)?;
        Store::from_database(db)
    }

    /// Opens (or creates) the store at `location`: a `milvus://HOST:PORT/PREFIX?…` address
    /// (needs the cargo feature `milvus`; see `docs/SCALE.md`) or else a directory
    /// ([`Store::open`]). On Milvus the collections are created when missing, as in a new
    /// directory.
    pub fn open_url(location: &str, opts: StoreOptions) -> Result<Store> {
        if is_milvus_url(location) {
            return open_milvus(location, false);
        }
        Store::open(location, opts)
    }

    /// Opens the store at `location` (a `milvus://` address or a directory) for reading
    /// ([`Store::open_read_only`]): [`Error::NotFound`] when no store is there; writes
    /// through this handle fail with [`Error::ReadOnly`]. On Milvus nothing is created.
    pub fn open_url_read_only(location: &str, opts: StoreOptions) -> Result<Store> {
        if is_milvus_url(location) {
            return open_milvus(location, true);
        }
        Store::open_read_only(location, opts)
    }

    /// Wraps an open database, creating the collections if it is the writer and they are
    /// missing, and checking their schemas.
    pub fn from_database(db: Database) -> Result<Store> {
        Store::from_backend(Arc::new(db))
    }

    /// Wraps a backend, creating the collections if it is writable and they are missing,
    /// and checking their schemas.
    pub fn from_backend(backend: Arc<dyn Backend>) -> Result<Store> {
        let existing = backend.list_collections()?;
        for (name, schema) in [
            (SAMPLES, samples_schema()),
            (COMPONENTS, components_schema()),
        ] {
            if !existing.iter().any(|c| c == name) {
                if backend.is_read_only() {
                    return Err(Error::Incompatible(format!(
                        "{} has no {name:?} collection (not an apksift sample store, or never written)",
                        backend.location()
                    )));
                }
                backend.create_collection(name, schema.clone())?;
            }
            let found = backend.describe(name)?;
            if found != schema {
                return Err(Error::Incompatible(format!(
                    "collection {name:?} in {} has schema {:?}, this apksift expects {:?}",
                    backend.location(),
                    found.description,
                    schema.description
                )));
            }
        }
        Ok(Store { backend })
    }

    /// The engine under the store.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The embedded engine (for `inspect`, metrics, backups), or `None` on Milvus.
    pub fn embedded(&self) -> Option<&Database> {
        self.backend.as_database()
    }

    /// The Milvus engine, or `None` on an embedded store.
    #[cfg(feature = "milvus")]
    pub fn milvus(&self) -> Option<&apksift_milvus::MilvusEngine> {
        self.backend.as_milvus()
    }

    /// The underlying embedded engine (for `inspect`, metrics, backups).
    ///
    /// # Panics
    /// On a store that is not embedded (Milvus); use [`Store::embedded`] where both occur.
    pub fn database(&self) -> &Database {
        match self.backend.as_database() {
            Some(db) => db,
            None => panic!(
                "Store::database() on a {} store ({}): use Store::embedded()",
                self.backend.kind(),
                self.backend.location()
            ),
        }
    }

    /// `embedded` or `milvus`.
    pub fn backend_kind(&self) -> &'static str {
        self.backend.kind()
    }

    /// Where the store lives: its directory or its `milvus://` address.
    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// True for a read-only replica.
    pub fn is_read_only(&self) -> bool {
        self.backend.is_read_only()
    }

    /// Ingests one fingerprinted APK: upserts its `samples` row (keyed by its SHA-256) and
    /// its component rows, replacing whatever an earlier ingest of the same SHA-256 wrote.
    pub fn ingest(&self, fp: &Fingerprint, meta: &SampleMeta) -> Result<IngestOutcome> {
        let mut v = self.ingest_batch(&[(fp.clone(), meta.clone())])?;
        v.pop()
            .ok_or_else(|| Error::invalid("nothing ingested (internal)"))
    }

    /// Ingests many APKs with a few engine writes. A SHA-256 given twice is stored once
    /// (the last metadata wins); the outcomes follow the input order of first occurrence.
    pub fn ingest_batch(&self, items: &[(Fingerprint, SampleMeta)]) -> Result<Vec<IngestOutcome>> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        // Validate everything before writing anything.
        let mut order: Vec<String> = Vec::new();
        let mut latest: HashMap<String, (usize, SampleMeta)> = HashMap::new();
        for (i, (fp, meta)) in items.iter().enumerate() {
            let key = normalize_sha256(&fp.sha256)?;
            let meta = meta.normalized()?;
            if latest.insert(key.clone(), (i, meta)).is_none() {
                order.push(key);
            }
        }
        if order.is_empty() {
            return Ok(Vec::new());
        }
        let existing = self.backend.get(
            SAMPLES,
            &order,
            &["first_seen".to_string(), "component_keys".to_string()],
        )?;
        let now = now_unix();
        let mut sample_rows = Vec::with_capacity(order.len());
        let mut comp_rows = Vec::new();
        let mut stale = Vec::new();
        let mut outcomes = Vec::with_capacity(order.len());
        let mut metas: HashMap<String, SampleMeta> = HashMap::new();
        for (key, old) in order.iter().zip(existing) {
            let (idx, meta) = &latest[key];
            let fp = &items[*idx].0;
            let (row, comps, dropped) = build_rows(key, fp, meta, now);
            let new_keys: BTreeSet<&str> = comps.iter().map(|c| c.key.as_str()).collect();
            let mut removed = 0;
            let mut first_seen = meta.first_seen;
            if let Some(old) = &old {
                for k in split_list(v_str(old, "component_keys"), '\n') {
                    if !new_keys.contains(k.as_str()) {
                        stale.push(k);
                        removed += 1;
                    }
                }
                if let Some(prev) = v_int(old, "first_seen") {
                    first_seen = Some(first_seen.map_or(prev, |f| f.min(prev)));
                }
            }
            let row = SampleRow {
                first_seen: Some(first_seen.unwrap_or(now)),
                ..row
            };
            outcomes.push(IngestOutcome {
                sha256: key.clone(),
                replaced: old.is_some(),
                components: comps.len(),
                components_removed: removed,
                components_dropped: dropped,
            });
            sample_rows.push(row);
            comp_rows.extend(comps);
            metas.insert(key.clone(), meta.clone());
        }
        // Order: stale components out, new components in, then the sample rows (the
        // commit point: a scan only reports component hits whose sample row exists).
        for chunk in stale.chunks(WRITE_CHUNK) {
            self.backend.delete(COMPONENTS, chunk)?;
        }
        for chunk in comp_rows.chunks(WRITE_CHUNK) {
            self.backend
                .upsert(COMPONENTS, components_batch(chunk, &metas))?;
        }
        for chunk in sample_rows.chunks(WRITE_CHUNK) {
            self.backend.upsert(SAMPLES, samples_batch(chunk))?;
        }
        Ok(outcomes)
    }

    /// The stored sample with this key (a SHA-256 in any case, or `sha1:…`, `md5:…`, …).
    pub fn get_sample(&self, key: &str) -> Result<Option<Sample>> {
        let key = normalize_key(key)?;
        let mut rows =
            self.backend
                .get(SAMPLES, std::slice::from_ref(&key), &all_sample_fields())?;
        Ok(rows.pop().flatten().map(|m| sample_from_row(key, &m)))
    }

    /// Deletes a sample and its component rows. Returns whether it existed.
    pub fn delete_sample(&self, key: &str) -> Result<bool> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        let key = normalize_key(key)?;
        let Some(s) = self.get_sample(&key)? else {
            return Ok(false);
        };
        // The sample row goes first: without it no component row is ever reported.
        self.backend.delete(SAMPLES, std::slice::from_ref(&key))?;
        for chunk in s.component_keys.chunks(WRITE_CHUNK) {
            self.backend.delete(COMPONENTS, chunk)?;
        }
        Ok(true)
    }

    /// Row counts and engine statistics.
    pub fn stats(&self) -> Result<StoreStats> {
        Ok(StoreStats {
            location: self.backend.location(),
            samples: self.backend.count(SAMPLES)?,
            components: self.backend.count(COMPONENTS)?,
            engine: self.backend.stats(),
        })
    }

    /// Flushes memtables into segments (not needed for durability: every acknowledged write
    /// is already in the fsynced WAL; nothing to do on Milvus).
    pub fn flush(&self) -> Result<()> {
        self.backend.flush()
    }

    /// Stops background work and flushes (on the embedded writer).
    pub fn close(self) -> Result<()> {
        self.backend.close()
    }
}

/// True for a `milvus://` address (any build; opening one needs the feature `milvus`).
pub fn is_milvus_url(location: &str) -> bool {
    location
        .get(..MILVUS_SCHEME.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(MILVUS_SCHEME))
}

#[cfg(feature = "milvus")]
fn open_milvus(location: &str, read_only: bool) -> Result<Store> {
    use apksift_milvus::{MilvusEngine, MilvusUrl};
    let url = MilvusUrl::parse(location)?;
    let engine = MilvusEngine::connect(&url).map_err(|e| match e {
        apksift_milvus::Error::Milvus(m) => {
            Error::Backend(format!("cannot reach Milvus at {url}: {m}"))
        }
        e => e.into(),
    })?;
    let backend = crate::backend::MilvusBackend::new(engine, read_only);
    if read_only && !backend.list_collections()?.iter().any(|c| c == SAMPLES) {
        return Err(Error::NotFound(format!("no apksift store at {url}")));
    }
    Store::from_backend(Arc::new(backend))
}

#[cfg(not(feature = "milvus"))]
fn open_milvus(location: &str, _read_only: bool) -> Result<Store> {
    Err(Error::Invalid(format!(
        "{location}: this apksift was built without Milvus support (cargo feature `milvus`, \
         e.g. `cargo build --release -p apksift --features milvus`)"
    )))
}

fn build_rows(
    key: &str,
    fp: &Fingerprint,
    meta: &SampleMeta,
    now: i64,
) -> (SampleRow, Vec<ComponentRow>, usize) {
    let first = |k: ComponentKind| fp.components.iter().find(|c| c.kind == k);
    let dex = fp
        .components
        .iter()
        .find(|c| c.kind == ComponentKind::Dex && c.name == "classes.dex")
        .or_else(|| first(ComponentKind::Dex));
    let mut comps = Vec::new();
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut dropped = 0;
    let mut keys_len = 0usize;
    for c in &fp.components {
        if !matches!(c.kind, ComponentKind::Dex | ComponentKind::Native) {
            continue;
        }
        let Some(tlsh) = c.tlsh else { continue };
        let base = format!("{key}/{}/{}", kind_name(c.kind), escape_key_name(&c.name));
        let mut k = base.clone();
        let mut n = 2;
        while used.contains(&k) {
            k = format!("{base}#{n}");
            n += 1;
        }
        if comps.len() >= MAX_COMPONENTS_PER_SAMPLE || keys_len + k.len() + 1 > 65_000 {
            dropped += 1;
            continue;
        }
        keys_len += k.len() + 1;
        used.insert(k.clone());
        comps.push(ComponentRow {
            key: k,
            tlsh,
            kind: kind_name(c.kind),
            name: crate::meta::truncate(&c.name, 1000),
            sample: key.to_string(),
            sha256: c.sha256.clone(),
            size: c.size as i64,
        });
    }
    let mut certs: Vec<String> = fp.certificates.iter().map(|c| c.sha256.clone()).collect();
    certs.sort();
    certs.dedup();
    let mut codes: Vec<String> = fp.anomalies.iter().map(|a| a.code.clone()).collect();
    codes.sort();
    codes.dedup();
    let count = |k: ComponentKind| fp.components.iter().filter(|c| c.kind == k).count() as i64;
    let man = fp.manifest.as_ref();
    let row = SampleRow {
        key: key.to_string(),
        whole: fp.tlsh,
        manifest: first(ComponentKind::Manifest).and_then(|c| c.tlsh),
        resources: first(ComponentKind::Resources).and_then(|c| c.tlsh),
        dex: dex.and_then(|c| c.tlsh),
        id_type: "sha256".into(),
        label: meta.label,
        family: meta.family.clone(),
        threat: meta.threat,
        source: meta.source.clone(),
        first_seen: meta.first_seen,
        ingested_at: now,
        package: man
            .and_then(|m| m.package.clone())
            .map(|p| crate::meta::truncate(&p, 1000)),
        version_code: man
            .and_then(|m| m.version_code.clone())
            .map(|p| crate::meta::truncate(&p, 250)),
        cert_sha256: join_nonempty(certs, ","),
        size: Some(fp.size as i64),
        file_type: Some(if fp.zip.ok || !fp.components.is_empty() {
            "apk".into()
        } else {
            "unknown".into()
        }),
        dex_count: Some(count(ComponentKind::Dex)),
        native_count: Some(count(ComponentKind::Native)),
        anomalies: join_nonempty(codes, ",").map(|s| crate::meta::truncate(&s, 65_000)),
        component_keys: join_nonempty(comps.iter().map(|c| c.key.clone()), "\n"),
    };
    (row, comps, dropped)
}

pub(crate) fn sample_from_row(key: String, m: &BTreeMap<String, Value>) -> Sample {
    Sample {
        key,
        id_type: v_str(m, "id_type").unwrap_or_else(|| "sha256".into()),
        label: v_label(m),
        family: v_str(m, "family"),
        threat: v_threat(m),
        source: v_str(m, "source"),
        first_seen: v_int(m, "first_seen"),
        ingested_at: v_int(m, "ingested_at"),
        package: v_str(m, "package"),
        version_code: v_str(m, "version_code"),
        cert_sha256: split_list(v_str(m, "cert_sha256"), ','),
        size: v_int(m, "size").map(|v| v.max(0) as u64),
        file_type: v_str(m, "file_type"),
        whole: v_tlsh(m, "whole"),
        manifest: v_tlsh(m, "manifest"),
        resources: v_tlsh(m, "resources"),
        dex: v_tlsh(m, "dex"),
        dex_count: v_int(m, "dex_count").map(|v| v.max(0) as u64),
        native_count: v_int(m, "native_count").map(|v| v.max(0) as u64),
        anomalies: split_list(v_str(m, "anomalies"), ','),
        component_keys: split_list(v_str(m, "component_keys"), '\n'),
    }
}
