//! The database: collections over one write-ahead log and one manifest in a
//! directory, with a single writer process and any number of read-only
//! replicas.
//!
//! Write path: validate → append the WAL record (group commit) → apply to the
//! memtable under the write lock → wait for the fsync → publish a snapshot.
//! A write is visible to searches exactly when it is acknowledged
//! (read-your-writes on the writer). Background work flushes memtables into
//! segments and merges segments; every structural change is committed by
//! writing a new manifest after the files it names are durable.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use apksift_storage::wal::{self, Lsn, TailStatus, WalOptions, WalTailer, WalWriter};
use apksift_storage::{Directory, DirectoryLock, FsDirectory};
use arc_swap::ArcSwap;
use parking_lot::{Condvar, Mutex};
use serde::Serialize;

use crate::codec::{self, Op};
use crate::deletes::DeleteSet;
use crate::delfile;
use crate::filter::Filter;
use crate::keyfilter::KeyFilter;
use crate::manifest::{CollectionEntry, ManifestData, SegmentEntry};
use crate::memtable::{MemTable, MemView, key_hash};
use crate::rows::{PartRead, RowsBuf};
use crate::schema::{Schema, check_key, check_name};
use crate::search::{self, Hit, Parts, QueryVector, SearchCounters, SearchParams, SegView};
use crate::segment::{self, Segment};
use crate::value::{Batch, NormBatch, Value};
use crate::{Error, Result};

/// Name of the writer lock file.
pub const LOCK_FILE: &str = "LOCK";

/// Engine options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Flush a memtable once it holds this many rows.
    pub memtable_rows: usize,
    /// … or this many bytes.
    pub memtable_bytes: usize,
    /// Merge when a collection has more segments than this.
    pub max_segments: usize,
    /// Merge a segment whose deleted share exceeds this.
    pub max_deleted_ratio: f64,
    /// Run flushes and merges in a background thread.
    pub background: bool,
    /// WAL options.
    pub wal: WalOptions,
    /// Seed for index building (clustering).
    pub seed: u64,
    /// How often a replica polls for new commits.
    pub replica_poll: Duration,
    /// How long an obsolete segment or delete file (one the current manifest
    /// no longer names) is kept before the writer deletes it, so that a
    /// replica that is still loading an older manifest (possibly over NFS/EFS)
    /// can read it.
    pub obsolete_file_grace: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            memtable_rows: 250_000,
            memtable_bytes: 256 << 20,
            max_segments: 8,
            max_deleted_ratio: 0.3,
            background: true,
            wal: WalOptions::default(),
            seed: 0x5eed,
            replica_poll: Duration::from_millis(100),
            obsolete_file_grace: Duration::from_secs(30),
        }
    }
}

/// What a write returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WriteAck {
    /// LSN of the write's WAL record.
    pub lsn: Lsn,
    /// Rows written (upsert/insert) or deleted (delete).
    pub rows: u64,
}

/// A segment in the writer's state.
#[derive(Debug, Clone)]
struct SegState {
    seg: Arc<Segment>,
    dels: DeleteSet,
    dirty: bool,
    del_file: Option<String>,
}

#[derive(Debug, Clone)]
struct Frozen {
    mem: MemTable,
    first_lsn: Lsn,
}

#[derive(Debug, Clone)]
struct CollState {
    id: u32,
    name: String,
    schema: Arc<Schema>,
    segments: Vec<SegState>,
    frozen: VecDeque<Frozen>,
    active: MemTable,
    active_first_lsn: Lsn,
    /// Keys in segments (built on first use; see `keyfilter`).
    filter: Option<KeyFilter>,
}

impl CollState {
    fn new(id: u32, name: String, schema: Arc<Schema>) -> CollState {
        CollState {
            id,
            name,
            active: MemTable::new(schema.clone()),
            schema,
            segments: Vec::new(),
            frozen: VecDeque::new(),
            active_first_lsn: 0,
            filter: None,
        }
    }

    /// Adds a new segment's keys to the key filter (if it is built).
    fn note_segment(&mut self, seg: &Segment) {
        if let Some(f) = &mut self.filter {
            for &h in seg.key_hashes() {
                f.insert(h);
            }
            if f.is_full() {
                self.filter = None;
            }
        }
    }

    fn ensure_filter(&mut self) {
        if self.filter.is_some() || self.segments.is_empty() {
            return;
        }
        let total: usize = self
            .segments
            .iter()
            .map(|s| s.seg.meta().rows as usize)
            .sum();
        let mut f = KeyFilter::with_capacity(total.saturating_mul(2));
        for s in &self.segments {
            for &h in s.seg.key_hashes() {
                f.insert(h);
            }
        }
        self.filter = Some(f);
    }

    fn snapshot(&self) -> Arc<CollSnapshot> {
        let mut mems: Vec<MemView> = self.frozen.iter().map(|f| f.mem.view()).collect();
        mems.push(self.active.view());
        Arc::new(CollSnapshot {
            id: self.id,
            name: self.name.clone(),
            schema: self.schema.clone(),
            segments: self
                .segments
                .iter()
                .map(|s| SegView {
                    seg: s.seg.clone(),
                    dels: s.dels.clone(),
                })
                .collect(),
            mems,
        })
    }

    /// Where the live row of `key` is.
    fn find_live(&self, key: &str) -> Option<Loc> {
        self.find_live_hashed(key, key_hash(key))
    }

    fn find_live_hashed(&self, key: &str, h: u64) -> Option<Loc> {
        if let Some(r) = self.active.lookup_hashed(key, h) {
            return Some(Loc::Active(r));
        }
        for (i, f) in self.frozen.iter().enumerate().rev() {
            if let Some(r) = f.mem.lookup_hashed(key, h) {
                return Some(Loc::Frozen(i, r));
            }
        }
        for (i, s) in self.segments.iter().enumerate() {
            if let Some(r) = s.seg.find_hashed(key, h)
                && !s.dels.contains(r)
            {
                return Some(Loc::Seg(i, r));
            }
        }
        None
    }

    fn delete_loc(&mut self, loc: Loc) {
        match loc {
            Loc::Active(r) => self.active.delete_row(r),
            Loc::Frozen(i, r) => {
                if let Some(f) = self.frozen.get_mut(i) {
                    f.mem.delete_row(r);
                }
            }
            Loc::Seg(i, r) => {
                if let Some(s) = self.segments.get_mut(i)
                    && s.dels.insert(r)
                {
                    s.dirty = true;
                }
            }
        }
    }

    /// Hashes and current live locations of a batch's keys.
    ///
    /// Segments are probed one at a time over the whole batch, so the Bloom
    /// lookups of different keys are independent loads the CPU overlaps
    /// (probing key by key across segments was a third of bulk-insert time).
    fn locate(&mut self, b: &NormBatch) -> (Vec<u64>, Vec<Option<Loc>>) {
        self.ensure_filter();
        let hs: Vec<u64> = b.keys.iter().map(|k| key_hash(k)).collect();
        let mut locs: Vec<Option<Loc>> = Vec::with_capacity(hs.len());
        let mut pending: Vec<usize> = Vec::new();
        for (i, (k, h)) in b.keys.iter().zip(&hs).enumerate() {
            let mut loc = self.active.lookup_hashed(k, *h).map(Loc::Active);
            if loc.is_none() {
                for (fi, f) in self.frozen.iter().enumerate().rev() {
                    if let Some(r) = f.mem.lookup_hashed(k, *h) {
                        loc = Some(Loc::Frozen(fi, r));
                        break;
                    }
                }
            }
            if loc.is_none()
                && !self.segments.is_empty()
                && self.filter.as_ref().is_none_or(|f| f.may_contain(*h))
            {
                pending.push(i);
            }
            locs.push(loc);
        }
        for (si, s) in self.segments.iter().enumerate() {
            if pending.is_empty() {
                break;
            }
            let maybe: Vec<usize> = pending
                .iter()
                .copied()
                .filter(|&i| s.seg.may_contain(hs[i]))
                .collect();
            for i in maybe {
                if let Some(r) = s.seg.find_hashed(&b.keys[i], hs[i])
                    && !s.dels.contains(r)
                {
                    locs[i] = Some(Loc::Seg(si, r));
                }
            }
            pending.retain(|&i| locs[i].is_none());
        }
        (hs, locs)
    }

    fn apply_upsert(&mut self, b: &NormBatch, lsn: Lsn) {
        let (hs, locs) = self.locate(b);
        self.apply_upsert_located(b, &hs, &locs, lsn);
    }

    /// Applies an upsert whose keys were located by [`CollState::locate`]
    /// under the same lock (keys within a batch are distinct, so locations
    /// stay valid while the batch is applied).
    fn apply_upsert_located(&mut self, b: &NormBatch, hs: &[u64], locs: &[Option<Loc>], lsn: Lsn) {
        for loc in locs.iter().flatten() {
            self.delete_loc(*loc);
        }
        if self.active.is_empty() {
            self.active_first_lsn = lsn;
        }
        self.active.append_hashed(b, hs);
    }

    fn apply_delete(&mut self, keys: &[String]) -> u64 {
        let mut n = 0;
        for k in keys {
            if let Some(loc) = self.find_live(k) {
                self.delete_loc(loc);
                n += 1;
            }
        }
        n
    }

    /// Smallest LSN whose rows live only in memtables.
    fn first_unflushed(&self) -> Option<Lsn> {
        let mut m: Option<Lsn> = self.frozen.front().map(|f| f.first_lsn);
        if !self.active.is_empty() {
            m = Some(m.map_or(self.active_first_lsn, |x| x.min(self.active_first_lsn)));
        }
        m
    }
}

#[derive(Debug, Clone, Copy)]
enum Loc {
    Active(u32),
    Frozen(usize, u32),
    Seg(usize, u32),
}

/// A consistent, read-only view of one collection.
#[derive(Debug, Clone)]
pub struct CollSnapshot {
    /// Collection id.
    pub id: u32,
    /// Name.
    pub name: String,
    /// Schema.
    pub schema: Arc<Schema>,
    /// Segments.
    pub segments: Vec<SegView>,
    /// Memtables, oldest first.
    pub mems: Vec<MemView>,
}

impl CollSnapshot {
    /// Parts for search.
    pub fn parts(&self) -> Parts<'_> {
        Parts {
            schema: &self.schema,
            segments: &self.segments,
            mems: &self.mems,
        }
    }

    /// Exact number of live rows.
    pub fn count(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| u64::from(s.seg.meta().rows) - s.dels.count())
            .sum::<u64>()
            + self.mems.iter().map(|m| m.live()).sum::<u64>()
    }

    /// Searches.
    pub fn search(
        &self,
        field: &str,
        vectors: &[QueryVector],
        params: &SearchParams,
    ) -> Result<SearchResult> {
        let plan = search::plan(&self.schema, field, vectors, params)?;
        let (hits, counters) = search::search(&self.parts(), &plan, vectors);
        Ok(SearchResult { hits, counters })
    }

    /// Rows of `keys` (None for a missing key).
    pub fn get(
        &self,
        keys: &[String],
        output_fields: &[String],
    ) -> Result<Vec<Option<BTreeMap<String, Value>>>> {
        let outs: Vec<usize> = output_fields
            .iter()
            .map(|f| self.schema.field(f).map(|x| x.0))
            .collect::<Result<_>>()?;
        let mut res = Vec::with_capacity(keys.len());
        for k in keys {
            res.push(self.find(k).map(|(p, row)| {
                outs.iter()
                    .map(|&f| {
                        (
                            self.schema.fields[f].name.clone(),
                            p.value(f, row).to_value(self.schema.fields[f].ty),
                        )
                    })
                    .collect()
            }));
        }
        Ok(res)
    }

    fn find(&self, key: &str) -> Option<(&dyn PartRead, u32)> {
        for m in self.mems.iter().rev() {
            if let Some(row) = m.find(key) {
                return Some((m as &dyn PartRead, row));
            }
        }
        for s in &self.segments {
            if let Some(r) = s.seg.find(key)
                && !s.dels.contains(r)
            {
                return Some((&*s.seg as &dyn PartRead, r));
            }
        }
        None
    }

    /// Rows matching a filter, sorted by key.
    pub fn query(
        &self,
        filter: Option<&str>,
        output_fields: &[String],
        limit: usize,
        offset: usize,
    ) -> Result<Vec<(String, BTreeMap<String, Value>)>> {
        let f = filter.map(|t| Filter::parse(t, &self.schema)).transpose()?;
        let outs: Vec<usize> = output_fields
            .iter()
            .map(|f| self.schema.field(f).map(|x| x.0))
            .collect::<Result<_>>()?;
        Ok(search::query(
            &self.parts(),
            f.as_ref(),
            &outs,
            limit,
            offset,
        ))
    }
}

/// Results of a search request.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    /// Hits per query vector.
    pub hits: Vec<Vec<Hit>>,
    /// Work counters.
    pub counters: SearchCounters,
}

/// A consistent view of the whole database.
#[derive(Debug, Clone, Default)]
pub struct DbSnapshot {
    /// Last LSN included.
    pub lsn: Lsn,
    /// Collections by name.
    pub collections: BTreeMap<String, Arc<CollSnapshot>>,
}

impl DbSnapshot {
    /// A collection, or an error naming it.
    pub fn collection(&self, name: &str) -> Result<&Arc<CollSnapshot>> {
        self.collections
            .get(name)
            .ok_or_else(|| Error::not_found(format!("collection {name:?} does not exist")))
    }
}

/// Description of a collection.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionInfo {
    /// Name.
    pub name: String,
    /// Id.
    pub id: u32,
    /// Schema.
    pub schema: Schema,
    /// Live rows.
    pub rows: u64,
    /// Segments.
    pub segments: usize,
    /// Rows in memtables.
    pub memtable_rows: u64,
    /// Bytes of segment files.
    pub segment_bytes: u64,
}

/// Engine statistics (for metrics).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Live rows in every collection.
    pub rows: u64,
    /// Segments.
    pub segments: u64,
    /// Bytes of segment files.
    pub segment_bytes: u64,
    /// Rows in memtables.
    pub memtable_rows: u64,
    /// Flushes done.
    pub flushes: u64,
    /// Merges done.
    pub merges: u64,
    /// Rows written (insert/upsert).
    pub rows_written: u64,
    /// Rows deleted.
    pub rows_deleted: u64,
    /// Last durable LSN.
    pub durable_lsn: u64,
    /// Manifest generation.
    pub generation: u64,
    /// Read-only replica?
    pub read_only: bool,
    /// Replica: seconds since it last caught up with the writer.
    pub replica_lag_seconds: f64,
    /// Last background error.
    pub last_error: Option<String>,
}

struct WriteState {
    manifest: ManifestData,
    colls: BTreeMap<u32, CollState>,
    last_lsn: Lsn,
    pending: VecDeque<(Lsn, Arc<DbSnapshot>)>,
    /// Files no manifest names any more, with the time after which they may
    /// be deleted (`obsolete_file_grace` after they became unreferenced);
    /// never deleted while a backup pins them.
    garbage: Vec<(String, Instant)>,
    /// The highest manifest generation that may be on disk (in a manifest or
    /// a delete file name), including attempts whose commit failed: a new
    /// commit always uses a larger one.
    max_generation: u64,
}

struct Inner {
    dir: Arc<dyn Directory>,
    opts: Options,
    _lock: Option<Box<dyn DirectoryLock>>,
    wal: Option<WalWriter>,
    write: Mutex<WriteState>,
    snap: ArcSwap<DbSnapshot>,
    stop: AtomicBool,
    wake: (Mutex<bool>, Condvar),
    bg: Mutex<Option<std::thread::JoinHandle<()>>>,
    flushes: AtomicU64,
    merges: AtomicU64,
    rows_written: AtomicU64,
    rows_deleted: AtomicU64,
    pins: AtomicU64,
    last_error: Mutex<Option<String>>,
    replica: Mutex<Option<ReplicaState>>,
    caught_up: Mutex<Instant>,
    bg_lock: Mutex<()>,
}

struct ReplicaState {
    tailer: WalTailer,
    generation: u64,
}

/// A database handle (cheap to clone).
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({})", self.inner.dir.describe())
    }
}

fn io_err(e: apksift_storage::Error) -> Error {
    Error::Storage(e)
}

impl Database {
    /// Opens (or creates) the store in `path` as the single writer.
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Database> {
        let dir = FsDirectory::create_dir_all(path).map_err(io_err)?;
        Self::open_dir(Arc::new(dir), opts)
    }

    /// Opens a read-only replica of the store in `path`.
    pub fn open_read_only(path: impl AsRef<Path>, opts: Options) -> Result<Database> {
        let dir = FsDirectory::open_existing(path).map_err(io_err)?;
        Self::open_dir_read_only(Arc::new(dir), opts)
    }

    /// Opens the writer over any [`Directory`].
    pub fn open_dir(dir: Arc<dyn Directory>, opts: Options) -> Result<Database> {
        let lock = dir.try_lock(LOCK_FILE).map_err(io_err)?;
        let manifest = match ManifestData::load(&*dir)? {
            Some(m) => m,
            None => {
                let m = ManifestData {
                    generation: 1,
                    checkpoint_lsn: 0,
                    next_collection_id: 1,
                    next_segment_id: 1,
                    collections: Vec::new(),
                };
                m.store(&*dir)?;
                m
            }
        };
        let mut colls = load_collections(&*dir, &manifest)?;
        let report = wal::recover(&*dir, manifest.checkpoint_lsn, true, |lsn, payload| {
            apply_record(&mut colls, lsn, payload)
        })?;
        if report.truncated_bytes > 0 {
            tracing::warn!(
                bytes = report.truncated_bytes,
                "recovery cut a torn WAL tail"
            );
        }
        let last = report.last_lsn.max(manifest.checkpoint_lsn);
        let wal = WalWriter::open(dir.clone(), last, opts.wal.clone())?;
        let db = Self::assemble(dir, opts, Some(lock), Some(wal), manifest, colls, last);
        // Remove files no manifest names (left by a crash mid-flush/merge).
        db.collect_orphans()?;
        // A new generation tells replicas that the writer restarted: they
        // reload instead of trusting what they read of the old log's tail.
        {
            let mut ws = db.inner.write.lock();
            db.commit_manifest(&mut ws)?;
        }
        if db.inner.opts.background {
            db.start_background();
        }
        Ok(db)
    }

    /// Opens a read-only replica over any [`Directory`].
    pub fn open_dir_read_only(dir: Arc<dyn Directory>, opts: Options) -> Result<Database> {
        let (manifest, colls, last) = load_replica_state(&*dir)?;
        let generation = manifest.generation;
        let db = Self::assemble(dir, opts, None, None, manifest, colls, last);
        *db.inner.replica.lock() = Some(ReplicaState {
            tailer: WalTailer::new(last + 1),
            generation,
        });
        db.start_background();
        Ok(db)
    }

    fn assemble(
        dir: Arc<dyn Directory>,
        opts: Options,
        lock: Option<Box<dyn DirectoryLock>>,
        wal: Option<WalWriter>,
        manifest: ManifestData,
        colls: BTreeMap<u32, CollState>,
        last: Lsn,
    ) -> Database {
        let ws = WriteState {
            manifest,
            colls,
            last_lsn: last,
            pending: VecDeque::new(),
            garbage: Vec::new(),
            max_generation: 0,
        };
        let snap = build_snapshot(&ws);
        Database {
            inner: Arc::new(Inner {
                dir,
                opts,
                _lock: lock,
                wal,
                write: Mutex::new(ws),
                snap: ArcSwap::from_pointee(snap),
                stop: AtomicBool::new(false),
                wake: (Mutex::new(false), Condvar::new()),
                bg: Mutex::new(None),
                flushes: AtomicU64::new(0),
                merges: AtomicU64::new(0),
                rows_written: AtomicU64::new(0),
                rows_deleted: AtomicU64::new(0),
                pins: AtomicU64::new(0),
                last_error: Mutex::new(None),
                replica: Mutex::new(None),
                caught_up: Mutex::new(Instant::now()),
                bg_lock: Mutex::new(()),
            }),
        }
    }

    /// True for a read-only replica.
    pub fn is_read_only(&self) -> bool {
        self.inner.wal.is_none()
    }

    /// The directory description (path).
    pub fn location(&self) -> String {
        self.inner.dir.describe()
    }

    fn wal(&self) -> Result<&WalWriter> {
        self.inner.wal.as_ref().ok_or(Error::ReadOnly)
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<DbSnapshot> {
        self.inner.snap.load_full()
    }

    // ----------------------------------------------------------- collections

    /// Creates a collection.
    pub fn create_collection(&self, name: &str, schema: Schema) -> Result<()> {
        check_name("collection", name)?;
        schema.validate()?;
        self.wal()?;
        let mut ws = self.inner.write.lock();
        if ws.colls.values().any(|c| c.name == name) {
            return Err(Error::AlreadyExists(format!(
                "collection {name:?} already exists"
            )));
        }
        let id = ws.manifest.next_collection_id;
        ws.manifest.next_collection_id += 1;
        ws.colls
            .insert(id, CollState::new(id, name.to_string(), Arc::new(schema)));
        self.commit_manifest(&mut ws)?;
        Ok(())
    }

    /// Drops a collection and its files.
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        self.wal()?;
        let mut ws = self.inner.write.lock();
        let id = ws
            .colls
            .values()
            .find(|c| c.name == name)
            .map(|c| c.id)
            .ok_or_else(|| Error::not_found(format!("collection {name:?} does not exist")))?;
        let Some(c) = ws.colls.remove(&id) else {
            return Ok(());
        };
        let due = self.grace_deadline();
        for s in &c.segments {
            ws.garbage.push((s.seg.name().to_string(), due));
            if let Some(d) = &s.del_file {
                ws.garbage.push((d.clone(), due));
            }
        }
        self.commit_manifest(&mut ws)?;
        Ok(())
    }

    /// Collection names.
    pub fn list_collections(&self) -> Vec<String> {
        self.snapshot().collections.keys().cloned().collect()
    }

    /// Describes a collection.
    pub fn describe(&self, name: &str) -> Result<CollectionInfo> {
        let s = self.snapshot();
        let c = s.collection(name)?;
        Ok(CollectionInfo {
            name: c.name.clone(),
            id: c.id,
            schema: (*c.schema).clone(),
            rows: c.count(),
            segments: c.segments.len(),
            memtable_rows: c.mems.iter().map(|m| m.live()).sum(),
            segment_bytes: c.segments.iter().map(|s| s.seg.file_len()).sum(),
        })
    }

    // ---------------------------------------------------------------- writes

    /// Inserts rows; fails (storing nothing) if a key already exists.
    pub fn insert(&self, collection: &str, batch: Batch) -> Result<WriteAck> {
        self.write_rows(collection, batch, false)
    }

    /// Inserts or replaces rows (a key is never duplicated).
    pub fn upsert(&self, collection: &str, batch: Batch) -> Result<WriteAck> {
        self.write_rows(collection, batch, true)
    }

    fn write_rows(&self, collection: &str, batch: Batch, replace: bool) -> Result<WriteAck> {
        let wal = self.wal()?;
        let mut ws = self.inner.write.lock();
        let last = ws.last_lsn;
        let c = coll_mut(&mut ws, collection)?;
        let nb = batch.normalize(&c.schema)?;
        if nb.is_empty() {
            return Ok(WriteAck { lsn: last, rows: 0 });
        }
        let (hs, locs) = c.locate(&nb);
        if !replace && let Some((k, _)) = nb.keys.iter().zip(&locs).find(|(_, l)| l.is_some()) {
            return Err(Error::AlreadyExists(format!(
                "key {k:?} already exists in collection {collection:?} (use upsert to replace)"
            )));
        }
        let payload = codec::encode_upsert(c.id, &nb);
        let lsn = wal.append(&payload)?;
        c.apply_upsert_located(&nb, &hs, &locs, lsn);
        let n = nb.len() as u64;
        let big = c.active.len() as usize >= self.inner.opts.memtable_rows
            || c.active.bytes() >= self.inner.opts.memtable_bytes;
        ws.last_lsn = lsn;
        let snap = build_snapshot(&ws);
        ws.pending.push_back((lsn, Arc::new(snap)));
        drop(ws);
        self.finish_write(lsn)?;
        self.inner.rows_written.fetch_add(n, Ordering::Relaxed);
        if big {
            self.wake_background();
        }
        Ok(WriteAck { lsn, rows: n })
    }

    /// Deletes keys; returns how many existed.
    pub fn delete(&self, collection: &str, keys: &[String]) -> Result<WriteAck> {
        let wal = self.wal()?;
        for k in keys {
            check_key(k)?;
        }
        let mut ws = self.inner.write.lock();
        let last = ws.last_lsn;
        let c = coll_mut(&mut ws, collection)?;
        if keys.is_empty() {
            return Ok(WriteAck { lsn: last, rows: 0 });
        }
        let payload = codec::encode_delete(c.id, keys);
        let lsn = wal.append(&payload)?;
        let n = c.apply_delete(keys);
        ws.last_lsn = lsn;
        let snap = build_snapshot(&ws);
        ws.pending.push_back((lsn, Arc::new(snap)));
        drop(ws);
        self.finish_write(lsn)?;
        self.inner.rows_deleted.fetch_add(n, Ordering::Relaxed);
        Ok(WriteAck { lsn, rows: n })
    }

    /// Waits for durability, then publishes the newest durable snapshot.
    fn finish_write(&self, lsn: Lsn) -> Result<()> {
        let wal = self.wal()?;
        wal.wait_durable(lsn)?;
        let durable = wal.durable_lsn();
        let mut ws = self.inner.write.lock();
        let mut newest = None;
        while ws.pending.front().is_some_and(|(l, _)| *l <= durable) {
            newest = ws.pending.pop_front();
        }
        if let Some((l, s)) = newest
            && l > self.inner.snap.load().lsn
        {
            self.inner.snap.store(s);
        }
        Ok(())
    }

    /// Publishes the current state (caller made sure it is durable).
    fn publish_now(&self, ws: &mut WriteState) {
        ws.pending.clear();
        self.inner.snap.store(Arc::new(build_snapshot(ws)));
    }

    // ----------------------------------------------------------------- reads

    /// Searches a collection.
    pub fn search(
        &self,
        collection: &str,
        field: &str,
        vectors: &[QueryVector],
        params: &SearchParams,
    ) -> Result<SearchResult> {
        self.snapshot()
            .collection(collection)?
            .search(field, vectors, params)
    }

    /// Gets rows by key.
    pub fn get(
        &self,
        collection: &str,
        keys: &[String],
        output_fields: &[String],
    ) -> Result<Vec<Option<BTreeMap<String, Value>>>> {
        self.snapshot()
            .collection(collection)?
            .get(keys, output_fields)
    }

    /// Filter-only retrieval, sorted by key.
    pub fn query(
        &self,
        collection: &str,
        filter: Option<&str>,
        output_fields: &[String],
        limit: usize,
        offset: usize,
    ) -> Result<Vec<(String, BTreeMap<String, Value>)>> {
        self.snapshot()
            .collection(collection)?
            .query(filter, output_fields, limit, offset)
    }

    /// Exact count of live rows.
    pub fn count(&self, collection: &str) -> Result<u64> {
        Ok(self.snapshot().collection(collection)?.count())
    }

    // ------------------------------------------------------------ background

    fn wake_background(&self) {
        let (m, c) = &self.inner.wake;
        *m.lock() = true;
        c.notify_all();
    }

    fn start_background(&self) {
        let weak = Arc::downgrade(&self.inner);
        let poll = if self.is_read_only() {
            self.inner.opts.replica_poll
        } else {
            Duration::from_millis(200)
        };
        let h = std::thread::Builder::new()
            .name("apksift-bg".into())
            .spawn(move || {
                loop {
                    let Some(inner) = weak.upgrade() else { return };
                    if inner.stop.load(Ordering::Acquire) {
                        return;
                    }
                    let db = Database { inner };
                    let poisoned = db
                        .inner
                        .wal
                        .as_ref()
                        .is_some_and(|w| w.poisoned().is_some());
                    let r = if db.is_read_only() {
                        db.replica_poll()
                    } else if poisoned {
                        // Writes are refused until a restart; the error was
                        // recorded when it happened (no log line every round).
                        Ok(())
                    } else {
                        db.maintain()
                    };
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "background work failed");
                        *db.inner.last_error.lock() = Some(e.to_string());
                    }
                    let (m, c) = &db.inner.wake;
                    let mut woke = m.lock();
                    if !*woke && !db.inner.stop.load(Ordering::Acquire) {
                        c.wait_for(&mut woke, poll);
                    }
                    *woke = false;
                }
            })
            .ok();
        *self.inner.bg.lock() = h;
    }

    /// One round of background work: flush big memtables, merge when
    /// needed, remove obsolete files whose grace period has passed.
    pub fn maintain(&self) -> Result<()> {
        self.check_writable()?;
        let _g = self.inner.bg_lock.lock();
        {
            let mut ws = self.inner.write.lock();
            self.collect_garbage(&mut ws);
        }
        let ids: Vec<u32> = self.inner.write.lock().colls.keys().copied().collect();
        for id in ids {
            let need = {
                let ws = self.inner.write.lock();
                ws.colls.get(&id).is_some_and(|c| {
                    !c.frozen.is_empty()
                        || c.active.len() as usize >= self.inner.opts.memtable_rows
                        || c.active.bytes() >= self.inner.opts.memtable_bytes
                })
            };
            if need {
                self.flush_collection(id)?;
            }
            self.maybe_merge(id, false)?;
        }
        Ok(())
    }

    /// Flushes every memtable into segments and checkpoints the WAL.
    pub fn flush(&self) -> Result<()> {
        self.check_writable()?;
        let _g = self.inner.bg_lock.lock();
        let ids: Vec<u32> = self.inner.write.lock().colls.keys().copied().collect();
        for id in ids {
            self.flush_collection(id)?;
        }
        let mut ws = self.inner.write.lock();
        self.commit_manifest(&mut ws)
    }

    /// Merges all segments of a collection into one.
    pub fn compact(&self, collection: &str) -> Result<()> {
        self.check_writable()?;
        let _g = self.inner.bg_lock.lock();
        let id = {
            let ws = self.inner.write.lock();
            ws.colls
                .values()
                .find(|c| c.name == collection)
                .map(|c| c.id)
                .ok_or_else(|| {
                    Error::not_found(format!("collection {collection:?} does not exist"))
                })?
        };
        self.flush_collection(id)?;
        self.maybe_merge(id, true)
    }

    fn flush_collection(&self, id: u32) -> Result<()> {
        // Phase 1: freeze the active memtable.
        let (mem, schema, seg_id) = {
            let mut ws = self.inner.write.lock();
            let next_seg = ws.manifest.next_segment_id;
            let Some(c) = ws.colls.get_mut(&id) else {
                return Ok(());
            };
            if !c.active.is_empty() {
                let first = c.active_first_lsn;
                let cap = self.inner.opts.memtable_rows.min(1 << 20);
                let m = std::mem::replace(
                    &mut c.active,
                    MemTable::with_capacity(c.schema.clone(), cap),
                );
                c.frozen.push_back(Frozen {
                    mem: m,
                    first_lsn: first,
                });
            }
            let Some(f) = c.frozen.front() else {
                return Ok(());
            };
            let mem = f.mem.view();
            let schema = c.schema.clone();
            ws.manifest.next_segment_id += 1;
            (mem, schema, next_seg)
        };
        // Phase 2: write the segment without holding the lock.
        let view = mem;
        let mut rows = RowsBuf::new(&schema);
        let mut src = Vec::new();
        for r in 0..view.num_rows() {
            if !view.dels.contains(r) {
                rows.push_part_row(&view, r);
                src.push(r);
            }
        }
        let (seg, order) = if rows.is_empty() {
            (None, Vec::new())
        } else {
            let (seg, order) = self.write_segment(&schema, id, seg_id, &rows)?;
            (Some(seg), order)
        };
        drop(rows);
        // Phase 3: commit.
        let mut ws = self.inner.write.lock();
        let Some(c) = ws.colls.get_mut(&id) else {
            if seg.is_some() {
                ws.garbage
                    .push((segment::file_name(id, seg_id), self.grace_deadline()));
            }
            return Ok(());
        };
        let Some(f) = c.frozen.pop_front() else {
            return Ok(());
        };
        if let Some(seg) = seg {
            let dels = carried_deletes(&order, |input| {
                src.get(input).is_some_and(|&r| f.mem.is_deleted(r))
            });
            let dirty = dels.count() > 0;
            c.note_segment(&seg);
            c.segments.push(SegState {
                seg,
                dels,
                dirty,
                del_file: None,
            });
        }
        self.commit_manifest(&mut ws)?;
        self.inner.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn maybe_merge(&self, id: u32, all: bool) -> Result<()> {
        // Phase 1: choose.
        let (chosen, schema, seg_id) = {
            let mut ws = self.inner.write.lock();
            let next_seg = ws.manifest.next_segment_id;
            let max_segments = self.inner.opts.max_segments;
            let ratio = self.inner.opts.max_deleted_ratio;
            let Some(c) = ws.colls.get_mut(&id) else {
                return Ok(());
            };
            let mut idx: Vec<usize> = Vec::new();
            if all {
                if c.segments.len() > 1 || c.segments.iter().any(|s| s.dels.count() > 0) {
                    idx = (0..c.segments.len()).collect();
                }
            } else {
                for (i, s) in c.segments.iter().enumerate() {
                    let rows = u64::from(s.seg.meta().rows).max(1);
                    if s.dels.count() as f64 / rows as f64 > ratio {
                        idx.push(i);
                    }
                }
                if c.segments.len() > max_segments {
                    // Size-tiered: merge the smallest segments down to half the limit.
                    let mut by_size: Vec<usize> = (0..c.segments.len()).collect();
                    by_size.sort_by_key(|&i| c.segments[i].seg.meta().rows);
                    let take = c.segments.len() - max_segments / 2;
                    for i in by_size.into_iter().take(take.max(2)) {
                        if !idx.contains(&i) {
                            idx.push(i);
                        }
                    }
                }
            }
            if idx.is_empty() {
                return Ok(());
            }
            let chosen: Vec<(Arc<Segment>, DeleteSet)> = idx
                .iter()
                .map(|&i| (c.segments[i].seg.clone(), c.segments[i].dels.clone()))
                .collect();
            let schema = c.schema.clone();
            ws.manifest.next_segment_id += 1;
            (chosen, schema, next_seg)
        };
        // Phase 2: write the merged segment.
        let mut rows = RowsBuf::new(&schema);
        let mut src: Vec<(usize, u32)> = Vec::new();
        for (si, (seg, dels)) in chosen.iter().enumerate() {
            for r in 0..seg.num_rows() {
                if !dels.contains(r) {
                    rows.push_part_row(&**seg, r);
                    src.push((si, r));
                }
            }
        }
        let merged = if rows.is_empty() {
            None
        } else {
            Some(self.write_segment(&schema, id, seg_id, &rows)?)
        };
        drop(rows);
        // Phase 3: commit, carrying over deletes that happened meanwhile.
        let mut ws = self.inner.write.lock();
        let Some(c) = ws.colls.get_mut(&id) else {
            return Ok(());
        };
        let names: Vec<&str> = chosen.iter().map(|(s, _)| s.name()).collect();
        let current: Vec<Option<DeleteSet>> = names
            .iter()
            .map(|n| {
                c.segments
                    .iter()
                    .find(|s| s.seg.name() == *n)
                    .map(|s| s.dels.clone())
            })
            .collect();
        if current.iter().any(Option::is_none) {
            // A source vanished (dropped collection): abandon.
            if merged.is_some() {
                ws.garbage
                    .push((segment::file_name(id, seg_id), self.grace_deadline()));
            }
            return Ok(());
        }
        let mut garbage = Vec::new();
        c.segments.retain(|s| {
            let hit = names.contains(&s.seg.name());
            if hit {
                garbage.push(s.seg.name().to_string());
                if let Some(d) = &s.del_file {
                    garbage.push(d.clone());
                }
            }
            !hit
        });
        if let Some((seg, order)) = merged {
            let dels = carried_deletes(&order, |input| {
                src.get(input)
                    .is_some_and(|&(si, r)| current[si].as_ref().is_some_and(|d| d.contains(r)))
            });
            let dirty = dels.count() > 0;
            c.segments.push(SegState {
                seg,
                dels,
                dirty,
                del_file: None,
            });
        }
        let due = self.grace_deadline();
        ws.garbage.extend(garbage.into_iter().map(|g| (g, due)));
        self.commit_manifest(&mut ws)?;
        self.inner.merges.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes a new segment file (not yet named by any manifest), syncs it
    /// and the directory, and opens it.
    ///
    /// On failure the partial file is removed and nothing that is committed
    /// changes: the rows are still in the memtable and the WAL, and the flush
    /// or merge is retried later (e.g. after a disk-full error). A failed
    /// fsync, however, poisons the writer like a failed WAL fsync: the medium
    /// reported that it lost data, and only a restart rereads what is durable.
    fn write_segment(
        &self,
        schema: &Schema,
        id: u32,
        seg_id: u64,
        rows: &RowsBuf,
    ) -> Result<(Arc<Segment>, Vec<u32>)> {
        let name = segment::file_name(id, seg_id);
        let dir = &*self.inner.dir;
        let r = (|| {
            let (_, order) =
                segment::write(dir, schema, id, seg_id, rows, self.inner.opts.seed ^ seg_id)?;
            dir.sync_dir().map_err(io_err)?;
            let seg = Segment::open(dir, &name, schema)?;
            Ok((seg, order))
        })();
        if let Err(e) = &r {
            if is_sync_failure(e) {
                self.poison(&format!("writing segment {name}"), e);
            }
            if let Err(d) = dir.delete(&name) {
                tracing::warn!(file = %name, error = %d, "could not remove a partial segment");
            }
        }
        r
    }

    /// Makes the writer refuse every further write (reads keep working).
    fn poison(&self, what: &str, e: &Error) {
        if let Some(w) = &self.inner.wal {
            w.poison(format!("{what}: {e}"));
        }
        *self.inner.last_error.lock() = Some(format!("{what}: {e}"));
    }

    /// An error when the writer is poisoned (or a replica).
    fn check_writable(&self) -> Result<&WalWriter> {
        let wal = self.wal()?;
        if let Some(p) = wal.poisoned() {
            return Err(Error::Storage(apksift_storage::Error::Poisoned(p)));
        }
        Ok(wal)
    }

    /// Writes dirty delete files and a new manifest, then publishes and
    /// removes obsolete files. Called with the write lock held.
    ///
    /// Any failure here leaves the on-disk state uncertain (a delete file or
    /// manifest may be partly written or not durable, or the rename may have
    /// happened without its directory fsync), so it poisons the writer: no
    /// further write is accepted until the store is reopened, which rereads
    /// whatever is durable. Reads keep serving the last published snapshot.
    fn commit_manifest(&self, ws: &mut WriteState) -> Result<()> {
        let wal = self.check_writable()?;
        // Everything applied must be durable before the manifest can reflect
        // it (a failure here poisons the WAL itself).
        wal.wait_durable(ws.last_lsn)?;
        let r = self.commit_manifest_unchecked(ws, wal);
        if let Err(e) = &r {
            self.poison("committing the manifest", e);
        }
        r
    }

    fn commit_manifest_unchecked(&self, ws: &mut WriteState, wal: &WalWriter) -> Result<()> {
        // Never reuse a generation that may already be on disk, even from a
        // commit that failed half-way (its delete files or a renamed manifest).
        let generation = ws.max_generation.max(ws.manifest.generation) + 1;
        ws.max_generation = generation;
        let mut new_files = false;
        let mut replaced = Vec::new();
        for c in ws.colls.values_mut() {
            for s in c.segments.iter_mut() {
                if s.dirty {
                    let name = delfile::file_name(c.id, s.seg.id(), generation);
                    delfile::write(
                        &*self.inner.dir,
                        &name,
                        s.seg.id(),
                        s.seg.meta().rows,
                        &s.dels,
                    )?;
                    if let Some(old) = s.del_file.replace(name) {
                        replaced.push(old);
                    }
                    s.dirty = false;
                    new_files = true;
                }
            }
        }
        let due = self.grace_deadline();
        ws.garbage.extend(replaced.into_iter().map(|g| (g, due)));
        if new_files {
            self.inner.dir.sync_dir().map_err(io_err)?;
        }
        let checkpoint = ws
            .colls
            .values()
            .filter_map(CollState::first_unflushed)
            .min()
            .map_or(ws.last_lsn, |l| l - 1);
        let mut m = ManifestData {
            generation,
            checkpoint_lsn: checkpoint.max(ws.manifest.checkpoint_lsn),
            next_collection_id: ws.manifest.next_collection_id,
            next_segment_id: ws.manifest.next_segment_id,
            collections: Vec::new(),
        };
        for c in ws.colls.values() {
            m.collections.push(CollectionEntry {
                id: c.id,
                name: c.name.clone(),
                schema: (*c.schema).clone(),
                segments: c
                    .segments
                    .iter()
                    .map(|s| SegmentEntry {
                        id: s.seg.id(),
                        file: s.seg.name().to_string(),
                        rows: s.seg.meta().rows,
                        del_file: s.del_file.clone(),
                        deleted: s.dels.count(),
                    })
                    .collect(),
            });
        }
        m.store(&*self.inner.dir)?;
        ws.manifest = m;
        self.publish_now(ws);
        // A running backup copies WAL files it listed earlier: keep them
        // until it is done (the next commit removes them).
        if self.inner.pins.load(Ordering::Acquire) == 0 {
            wal.remove_files_up_to(ws.manifest.checkpoint_lsn)?;
        }
        self.collect_garbage(ws);
        Ok(())
    }

    /// Deletes obsolete files that have been unreferenced for at least
    /// `obsolete_file_grace`, unless a backup is running. A failed delete is
    /// retried later (it does not affect what is committed).
    fn collect_garbage(&self, ws: &mut WriteState) {
        if self.inner.pins.load(Ordering::Acquire) > 0 || ws.garbage.is_empty() {
            return;
        }
        let now = Instant::now();
        let named = manifest_files(&ws.manifest);
        let dir = &self.inner.dir;
        ws.garbage.retain(|(name, due)| {
            if named.contains(name) {
                // Named again (cannot happen: ids and generations are never
                // reused); never delete a live file.
                return false;
            }
            if now < *due {
                return true;
            }
            match dir.delete(name) {
                Ok(()) => false,
                Err(e) => {
                    tracing::warn!(file = %name, error = %e, "could not remove an obsolete file");
                    true
                }
            }
        });
    }

    /// When a file that becomes unreferenced now may be deleted.
    fn grace_deadline(&self) -> Instant {
        Instant::now() + self.inner.opts.obsolete_file_grace
    }

    /// Files that no manifest names (a crash between writing a segment and
    /// committing it, or obsolete files still in their grace period when the
    /// previous writer stopped) become garbage, and segment ids and
    /// generations are moved past theirs so they are never reused while the
    /// files exist. Such a file has been unreferenced at least since the
    /// current MANIFEST was written, so its grace period counts from the
    /// MANIFEST's modification time (short-lived writers such as CLI imports
    /// would otherwise never get to delete anything).
    fn collect_orphans(&self) -> Result<()> {
        let mut ws = self.inner.write.lock();
        let keep = manifest_files(&ws.manifest);
        let age = self
            .inner
            .dir
            .modified(crate::manifest::MANIFEST)
            .ok()
            .flatten()
            .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
            .unwrap_or_default();
        let due = Instant::now() + self.inner.opts.obsolete_file_grace.saturating_sub(age);
        for f in self.inner.dir.list()? {
            if f.starts_with(".MANIFEST.tmp") {
                self.inner.dir.delete(&f)?;
                continue;
            }
            if keep.contains(&f) {
                continue;
            }
            if let Some((_, seg)) = segment::parse_file_name(&f) {
                ws.manifest.next_segment_id = ws.manifest.next_segment_id.max(seg + 1);
            } else if let Some((_, _, generation)) = delfile::parse_file_name(&f) {
                ws.max_generation = ws.max_generation.max(generation);
            } else {
                continue;
            }
            ws.garbage.push((f, due));
        }
        Ok(())
    }

    // --------------------------------------------------------------- replica

    /// Replica: follows the writer's WAL and manifest.
    fn replica_poll(&self) -> Result<()> {
        let mut rep_guard = self.inner.replica.lock();
        let Some(rep) = rep_guard.as_mut() else {
            return Ok(());
        };
        let m = ManifestData::load(&*self.inner.dir)?;
        let reload = m.as_ref().is_some_and(|m| m.generation != rep.generation);
        let mut status = TailStatus::CaughtUp;
        if !reload {
            let mut ws = self.inner.write.lock();
            let mut applied = false;
            let colls = &mut ws.colls;
            status = rep.tailer.poll(&*self.inner.dir, |lsn, payload| {
                applied = true;
                apply_record(colls, lsn, payload)
            })?;
            if applied {
                ws.last_lsn = rep.tailer.next_lsn() - 1;
                let s = build_snapshot(&ws);
                self.inner.snap.store(Arc::new(s));
            }
        }
        if reload || status == TailStatus::NeedReload {
            let (manifest, colls, last) =
                load_replica_state_reusing(&*self.inner.dir, &self.inner.write.lock().colls)?;
            let mut ws = self.inner.write.lock();
            rep.generation = manifest.generation;
            rep.tailer = WalTailer::new(last + 1);
            ws.manifest = manifest;
            ws.colls = colls;
            ws.last_lsn = last;
            let s = build_snapshot(&ws);
            self.inner.snap.store(Arc::new(s));
        }
        *self.inner.caught_up.lock() = Instant::now();
        Ok(())
    }

    /// Replica: catch up now (used by tests and `/readyz`).
    pub fn refresh(&self) -> Result<()> {
        if self.is_read_only() {
            self.replica_poll()
        } else {
            Ok(())
        }
    }

    // ------------------------------------------------------------ operations

    /// Statistics.
    pub fn stats(&self) -> Stats {
        let snap = self.snapshot();
        let mut st = Stats {
            flushes: self.inner.flushes.load(Ordering::Relaxed),
            merges: self.inner.merges.load(Ordering::Relaxed),
            rows_written: self.inner.rows_written.load(Ordering::Relaxed),
            rows_deleted: self.inner.rows_deleted.load(Ordering::Relaxed),
            durable_lsn: self
                .inner
                .wal
                .as_ref()
                .map_or(snap.lsn, |w| w.durable_lsn()),
            generation: self.inner.write.lock().manifest.generation,
            read_only: self.is_read_only(),
            replica_lag_seconds: if self.is_read_only() {
                self.inner.caught_up.lock().elapsed().as_secs_f64()
            } else {
                0.0
            },
            last_error: self.inner.last_error.lock().clone(),
            ..Stats::default()
        };
        for c in snap.collections.values() {
            st.rows += c.count();
            st.segments += c.segments.len() as u64;
            st.segment_bytes += c.segments.iter().map(|s| s.seg.file_len()).sum::<u64>();
            st.memtable_rows += c.mems.iter().map(|m| m.live()).sum::<u64>();
        }
        st
    }

    /// WAL fsync latencies (nanoseconds) since the last call.
    pub fn take_fsync_nanos(&self) -> Vec<u64> {
        self.inner
            .wal
            .as_ref()
            .map(|w| w.take_fsync_nanos())
            .unwrap_or_default()
    }

    /// Copies a consistent snapshot of the store into `dest` (an empty or new
    /// directory) while writes continue.
    pub fn backup(&self, dest: &dyn Directory) -> Result<BackupReport> {
        let wal = self.wal()?;
        self.inner.pins.fetch_add(1, Ordering::AcqRel);
        let result = (|| {
            let (manifest_bytes, files, wal_files) = {
                let ws = self.inner.write.lock();
                wal.wait_durable(ws.last_lsn)?;
                let mut files = Vec::new();
                for c in &ws.manifest.collections {
                    for s in &c.segments {
                        files.push(s.file.clone());
                        if let Some(d) = &s.del_file {
                            files.push(d.clone());
                        }
                    }
                }
                let mut wal_files = Vec::new();
                for w in wal.file_names() {
                    let len = self.inner.dir.file_len(&w)?;
                    wal_files.push((w, len));
                }
                (ws.manifest.encode()?, files, wal_files)
            };
            let mut bytes = 0u64;
            for f in &files {
                let data = self.inner.dir.open_read(f)?;
                let mut w = dest.create(f)?;
                w.write_all(&data)?;
                w.sync()?;
                bytes += data.len() as u64;
            }
            for (f, len) in &wal_files {
                let data = self.inner.dir.read_at(f, 0, *len as usize)?;
                let mut w = dest.create(f)?;
                w.write_all(&data)?;
                w.sync()?;
                bytes += data.len() as u64;
            }
            dest.sync_dir()?;
            dest.atomic_write(crate::manifest::MANIFEST, &manifest_bytes)?;
            Ok(BackupReport {
                files: files.len() + wal_files.len() + 1,
                bytes: bytes + manifest_bytes.len() as u64,
            })
        })();
        self.inner.pins.fetch_sub(1, Ordering::AcqRel);
        result
    }

    /// Stops background work and, on the writer, flushes memtables so the
    /// next start replays nothing.
    pub fn close(self) -> Result<()> {
        self.inner.stop.store(true, Ordering::Release);
        self.wake_background();
        if let Some(h) = self.inner.bg.lock().take() {
            let _ = h.join();
        }
        if !self.is_read_only()
            && self
                .inner
                .wal
                .as_ref()
                .is_some_and(|w| w.poisoned().is_none())
        {
            self.flush()?;
        }
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.wake.1.notify_all();
    }
}

/// Result of a backup.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BackupReport {
    /// Files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// Deletes that happened while a segment was being written: `order[pos]` is
/// the input row written at `pos`, and `deleted(input)` says whether that
/// input row has been deleted since.
fn carried_deletes(order: &[u32], deleted: impl Fn(usize) -> bool) -> DeleteSet {
    let mut dels = DeleteSet::new();
    for (pos, &input) in order.iter().enumerate() {
        if deleted(input as usize) {
            dels.insert(pos as u32);
        }
    }
    dels
}

fn coll_mut<'a>(ws: &'a mut WriteState, name: &str) -> Result<&'a mut CollState> {
    ws.colls
        .values_mut()
        .find(|c| c.name == name)
        .ok_or_else(|| Error::not_found(format!("collection {name:?} does not exist")))
}

fn build_snapshot(ws: &WriteState) -> DbSnapshot {
    DbSnapshot {
        lsn: ws.last_lsn,
        collections: ws
            .colls
            .values()
            .map(|c| (c.name.clone(), c.snapshot()))
            .collect(),
    }
}

fn load_collections(dir: &dyn Directory, m: &ManifestData) -> Result<BTreeMap<u32, CollState>> {
    load_collections_reusing(dir, m, &BTreeMap::new())
}

fn load_collections_reusing(
    dir: &dyn Directory,
    m: &ManifestData,
    old: &BTreeMap<u32, CollState>,
) -> Result<BTreeMap<u32, CollState>> {
    let mut out = BTreeMap::new();
    for ce in &m.collections {
        ce.schema.validate()?;
        let schema = Arc::new(ce.schema.clone());
        let mut c = CollState::new(ce.id, ce.name.clone(), schema.clone());
        for se in &ce.segments {
            let reuse = old
                .get(&ce.id)
                .and_then(|oc| oc.segments.iter().find(|s| s.seg.name() == se.file))
                .map(|s| s.seg.clone());
            let seg = match reuse {
                Some(s) => s,
                None => Segment::open(dir, &se.file, &schema)?,
            };
            let dels = match &se.del_file {
                Some(f) => delfile::read(dir, f, se.id, se.rows)?,
                None => DeleteSet::new(),
            };
            c.segments.push(SegState {
                seg,
                dels,
                dirty: false,
                del_file: se.del_file.clone(),
            });
        }
        out.insert(ce.id, c);
    }
    Ok(out)
}

fn load_replica_state(
    dir: &dyn Directory,
) -> Result<(ManifestData, BTreeMap<u32, CollState>, Lsn)> {
    load_replica_state_reusing(dir, &BTreeMap::new())
}

/// Loads manifest, segments and the WAL tail without modifying anything.
/// The writer may replace the manifest or remove WAL files meanwhile, so a
/// failed attempt is retried.
fn load_replica_state_reusing(
    dir: &dyn Directory,
    old: &BTreeMap<u32, CollState>,
) -> Result<(ManifestData, BTreeMap<u32, CollState>, Lsn)> {
    let mut last_err = None;
    for _ in 0..20 {
        let attempt = (|| {
            let m = ManifestData::load(dir)?.ok_or_else(|| {
                Error::not_found(format!("no apksift store at {}", dir.describe()))
            })?;
            let mut colls = load_collections_reusing(dir, &m, old)?;
            let rep = wal::recover(dir, m.checkpoint_lsn, false, |lsn, p| {
                apply_record(&mut colls, lsn, p)
            })?;
            Ok((m.clone(), colls, rep.last_lsn.max(m.checkpoint_lsn)))
        })();
        match attempt {
            Ok(x) => return Ok(x),
            Err(e) => {
                last_err = Some(e);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    Err(last_err.unwrap_or_else(|| Error::invalid("replica load failed")))
}

/// Applies one WAL record to the collections (recovery and replicas).
fn apply_record(
    colls: &mut BTreeMap<u32, CollState>,
    lsn: Lsn,
    payload: &[u8],
) -> apksift_storage::Result<()> {
    let to_storage = |e: Error| match e {
        Error::Storage(s) => s,
        other => apksift_storage::Error::corrupt("wal payload", lsn, other.to_string()),
    };
    let cid = codec::peek_collection(payload).map_err(to_storage)?;
    let Some(c) = colls.get_mut(&cid) else {
        // Dropped collection.
        return Ok(());
    };
    match codec::decode(payload, &c.schema).map_err(to_storage)? {
        Op::Upsert { batch, .. } => c.apply_upsert(&batch, lsn),
        Op::Delete { keys, .. } => {
            c.apply_delete(&keys);
        }
    }
    Ok(())
}

/// True when an error is a failed fsync.
fn is_sync_failure(e: &Error) -> bool {
    matches!(e, Error::Storage(s) if s.is_sync_failure())
}

/// Every segment and delete file a manifest names.
fn manifest_files(m: &ManifestData) -> std::collections::BTreeSet<String> {
    let mut keep = std::collections::BTreeSet::new();
    for c in &m.collections {
        for s in &c.segments {
            keep.insert(s.file.clone());
            if let Some(d) = &s.del_file {
                keep.insert(d.clone());
            }
        }
    }
    keep
}
