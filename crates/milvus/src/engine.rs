//! [`MilvusEngine`]: apksift's engine calls over Milvus (see the crate docs and [`crate::layout`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use apksift_index::search::SearchCounters;
use apksift_index::{
    Batch, Column, FieldType, Hit, Metric, QueryVector, Schema, SearchParams, SearchResult, Value,
};
use apksift_tlsh::Digest;

use crate::client::{Client, ReadTs};
use crate::expr::{Translated, quote, translate};
use crate::layout::{self, MARK, NULL_SUFFIX, PAD};
use crate::proto::common::ConsistencyLevel;
use crate::proto::schema::{
    self as ps, BoolArray, DataType, FieldData, LongArray, ScalarField, StringArray, VectorField,
    field_data, scalar_field, vector_field,
};
use crate::thermo::{self, CODE_BITS};
use crate::url::{CodeIndex, Consistency, MilvusUrl};
use crate::{Error, Result};

/// Keys per `key in [...]` expression.
const KEYS_PER_EXPR: usize = 1000;
/// Rows per upsert request.
const ROWS_PER_WRITE: usize = 1000;
/// Largest Milvus `topk` / query window.
const MAX_WINDOW: usize = 16_384;

/// What one search cost on the Milvus side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchStats {
    /// Milvus range-search requests.
    pub requests: u64,
    /// Candidates returned by Milvus (before exact re-ranking).
    pub candidates: u64,
}

/// A segment of a code collection as the query nodes hold it
/// ([`MilvusEngine::code_segments`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Milvus segment ID.
    pub id: i64,
    /// Milvus's `SegmentState` name, e.g. `Sealed`.
    pub state: String,
    /// Rows in the segment.
    pub rows: i64,
    /// ID of the index the segment is searched with; 0 when it has none and Milvus scans its
    /// raw codes (BIN_FLAT, and segments too small to index).
    pub index_id: i64,
}

struct Inner {
    url: MilvusUrl,
    /// Always `Some` until dropped (taken out by `Drop`).
    rt: Option<tokio::runtime::Runtime>,
    client: Client,
    last_ts: AtomicU64,
    /// Number of deletes acknowledged so far.
    deletes: AtomicU64,
    /// Sequence number of the newest delete not yet covered by a write timestamp (0: none).
    /// Milvus 2.3 answers `Delete` with timestamp 0, so a Session read cannot be made to
    /// wait for it: until a later upsert returns a timestamp, Session reads use Strong.
    unstamped_delete: AtomicU64,
    schemas: Mutex<HashMap<String, Schema>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A plain drop of a runtime panics inside an async context (the last clone of an
        // engine may go away in a server's task); shutting down in the background never
        // blocks and works anywhere.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// apksift's engine API on a Milvus server. `Clone + Send + Sync`; clones share one
/// connection and one session timestamp. Synchronous: the calls block on an internal tokio
/// runtime, and may be made from any thread (including one inside another runtime).
#[derive(Clone)]
pub struct MilvusEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MilvusEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MilvusEngine({})", self.inner.url)
    }
}

// ------------------------------------------------------------------ field data helpers

fn scalar(name: &str, ty: DataType, data: scalar_field::Data) -> FieldData {
    FieldData {
        r#type: ty as i32,
        field_name: name.to_string(),
        field: Some(field_data::Field::Scalars(ScalarField { data: Some(data) })),
        ..Default::default()
    }
}

fn fd_str(name: &str, v: Vec<String>) -> FieldData {
    scalar(
        name,
        DataType::VarChar,
        scalar_field::Data::StringData(StringArray { data: v }),
    )
}

fn fd_long(name: &str, v: Vec<i64>) -> FieldData {
    scalar(
        name,
        DataType::Int64,
        scalar_field::Data::LongData(LongArray { data: v }),
    )
}

fn fd_bool(name: &str, v: Vec<bool>) -> FieldData {
    scalar(
        name,
        DataType::Bool,
        scalar_field::Data::BoolData(BoolArray { data: v }),
    )
}

fn fd_bin(name: &str, dim: u32, v: Vec<u8>) -> FieldData {
    FieldData {
        r#type: DataType::BinaryVector as i32,
        field_name: name.to_string(),
        field: Some(field_data::Field::Vectors(VectorField {
            dim: i64::from(dim),
            data: Some(vector_field::Data::BinaryVector(v)),
        })),
        ..Default::default()
    }
}

/// Columns of a query/search result by field name.
struct Cols(HashMap<String, FieldData>);

impl Cols {
    fn new(v: Vec<FieldData>) -> Cols {
        Cols(v.into_iter().map(|f| (f.field_name.clone(), f)).collect())
    }
    fn data(&self, name: &str) -> Option<&scalar_field::Data> {
        match self.0.get(name)?.field.as_ref()? {
            field_data::Field::Scalars(s) => s.data.as_ref(),
            _ => None,
        }
    }
    fn strs(&self, name: &str) -> Result<&[String]> {
        match self.data(name) {
            Some(scalar_field::Data::StringData(a)) => Ok(&a.data),
            _ => Err(Error::Milvus(format!(
                "result has no string column {name:?}"
            ))),
        }
    }
    fn longs(&self, name: &str) -> Result<&[i64]> {
        match self.data(name) {
            Some(scalar_field::Data::LongData(a)) => Ok(&a.data),
            _ => Err(Error::Milvus(format!(
                "result has no int64 column {name:?}"
            ))),
        }
    }
    fn bools(&self, name: &str) -> Result<&[bool]> {
        match self.data(name) {
            Some(scalar_field::Data::BoolData(a)) => Ok(&a.data),
            _ => Err(Error::Milvus(format!("result has no bool column {name:?}"))),
        }
    }
    fn len(&self) -> usize {
        self.strs("key").map_or(0, <[String]>::len)
    }
}

fn field_schema(
    name: &str,
    ty: DataType,
    params: Vec<(&str, String)>,
    pk: bool,
) -> ps::FieldSchema {
    ps::FieldSchema {
        name: name.to_string(),
        is_primary_key: pk,
        data_type: ty as i32,
        type_params: params
            .into_iter()
            .map(|(k, v)| crate::client::kv(k, v))
            .collect(),
        ..Default::default()
    }
}

fn key_expr(keys: &[String]) -> String {
    let list: Vec<String> = keys.iter().map(|k| quote(k)).collect();
    format!("key in [{}]", list.join(", "))
}

fn parse_hex(s: &str) -> Option<Digest> {
    if s.is_empty() {
        None
    } else {
        Digest::parse_lenient(s).ok()
    }
}

/// The stored (70-hex) form of a digest.
fn hex(d: &Digest) -> String {
    d.to_legacy_hex()
}

impl MilvusEngine {
    /// Connects to the server of `url` (no collection is created until
    /// [`create_collection`](Self::create_collection)).
    pub fn connect(url: &MilvusUrl) -> Result<MilvusEngine> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("apksift-milvus")
            .enable_all()
            .build()
            .map_err(|e| Error::Milvus(format!("tokio runtime: {e}")))?;
        let fut = Client::connect(
            url.endpoint(),
            url.db.clone(),
            Duration::from_secs(url.timeout_s),
        );
        let client = if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| s.spawn(|| rt.block_on(fut)).join())
                .map_err(|_| Error::Milvus("connect thread panicked".into()))??
        } else {
            rt.block_on(fut)?
        };
        let e = MilvusEngine {
            inner: Arc::new(Inner {
                url: url.clone(),
                rt: Some(rt),
                client,
                last_ts: AtomicU64::new(0),
                deletes: AtomicU64::new(0),
                unstamped_delete: AtomicU64::new(0),
                schemas: Mutex::new(HashMap::new()),
            }),
        };
        e.server_version()?;
        if url.consistency == Consistency::Session {
            // The session starts now: its reads also see every write any client had
            // acknowledged before this connect (e.g. an `apksift ingest` that just exited),
            // not only this process's own writes. Servers without the RPC keep the old
            // behaviour (own writes only).
            if let Ok(ts) = e.run(e.c().alloc_timestamp()) {
                e.inner.last_ts.fetch_max(ts, Ordering::AcqRel);
            }
        }
        Ok(e)
    }

    /// Runs a future on the engine's runtime and waits for it.
    fn run<F: Future + Send>(&self, f: F) -> F::Output
    where
        F::Output: Send,
    {
        let Some(rt) = self.inner.rt.as_ref() else {
            unreachable!("the runtime is only taken when the engine is dropped")
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Inside someone else's runtime: block a scoped plain thread instead.
            std::thread::scope(|s| {
                s.spawn(|| rt.block_on(f))
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
        } else {
            rt.block_on(f)
        }
    }

    fn c(&self) -> &Client {
        &self.inner.client
    }

    /// The address this engine talks to.
    pub fn url(&self) -> &MilvusUrl {
        &self.inner.url
    }

    /// `milvus://HOST:PORT/PREFIX`.
    pub fn location(&self) -> String {
        self.inner.url.to_string()
    }

    /// The server's version string (e.g. `v2.3.5-lite`).
    pub fn server_version(&self) -> Result<String> {
        self.run(self.c().version())
    }

    /// Records the timestamp of a write that started after `deletes_before` deletes.
    fn note_write(&self, ts: u64, deletes_before: u64) {
        if ts == 0 {
            return;
        }
        self.inner.last_ts.fetch_max(ts, Ordering::AcqRel);
        // This write's timestamp is after every delete acknowledged before it started.
        let _ =
            self.inner
                .unstamped_delete
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                    (p != 0 && p <= deletes_before).then_some(0)
                });
    }

    fn note_delete(&self, ts: u64) {
        let seq = self.inner.deletes.fetch_add(1, Ordering::AcqRel) + 1;
        if ts == 0 {
            self.inner.unstamped_delete.fetch_max(seq, Ordering::AcqRel);
        } else {
            self.note_write(ts, seq);
        }
    }

    fn read_ts(&self) -> ReadTs {
        match self.inner.url.consistency {
            Consistency::Strong => ReadTs {
                level: ConsistencyLevel::Strong,
                guarantee: 0,
            },
            Consistency::Session if self.inner.unstamped_delete.load(Ordering::Acquire) != 0 => {
                ReadTs {
                    level: ConsistencyLevel::Strong,
                    guarantee: 0,
                }
            }
            Consistency::Session => ReadTs {
                level: ConsistencyLevel::Session,
                guarantee: self.inner.last_ts.load(Ordering::Acquire).max(1),
            },
            Consistency::Bounded => ReadTs {
                level: ConsistencyLevel::Bounded,
                guarantee: 0,
            },
            Consistency::Eventually => ReadTs {
                level: ConsistencyLevel::Eventually,
                guarantee: 1,
            },
        }
    }

    fn main_name(&self, name: &str) -> String {
        layout::main_name(&self.inner.url.prefix, name)
    }

    fn code_name(&self, name: &str, field: &str) -> String {
        layout::code_name(&self.inner.url.prefix, name, field)
    }

    // -------------------------------------------------------------------- collections

    /// Creates apksift collection `name` (its main and code collections, indexes, loaded).
    /// Fails with [`Error::AlreadyExists`] when the main collection exists.
    pub fn create_collection(&self, name: &str, schema: Schema) -> Result<()> {
        schema.validate()?;
        layout::check(&schema)?;
        let main = self.main_name(name);
        if self.run(self.c().has_collection(&main))? {
            return Err(Error::AlreadyExists(name.to_string()));
        }
        let json =
            serde_json::to_string(&schema).map_err(|e| Error::Invalid(format!("schema: {e}")))?;
        let mut fields = vec![
            field_schema(
                "key",
                DataType::VarChar,
                vec![("max_length", layout::MAX_KEY.to_string())],
                true,
            ),
            field_schema(
                PAD,
                DataType::BinaryVector,
                vec![("dim", "8".into())],
                false,
            ),
        ];
        for f in &schema.fields {
            match f.ty {
                FieldType::Tlsh => fields.push(field_schema(
                    &f.name,
                    DataType::VarChar,
                    vec![("max_length", "70".into())],
                    false,
                )),
                FieldType::String { max_len } => fields.push(field_schema(
                    &f.name,
                    DataType::VarChar,
                    vec![("max_length", max_len.clamp(1, 65_535).to_string())],
                    false,
                )),
                FieldType::Int => {
                    fields.push(field_schema(&f.name, DataType::Int64, vec![], false))
                }
                FieldType::Bool => {
                    fields.push(field_schema(&f.name, DataType::Bool, vec![], false))
                }
                FieldType::BinaryVector { .. } => unreachable!("checked by layout::check"),
            }
            if f.nullable && f.ty != FieldType::Tlsh {
                fields.push(field_schema(
                    &format!("{}{NULL_SUFFIX}", f.name),
                    DataType::Bool,
                    vec![],
                    false,
                ));
            }
        }
        let tlsh = layout::tlsh_fields(&schema);
        let index = self.inner.url.index;
        self.run(async {
            // Code collections first: the main collection's existence marks a complete set.
            for f in &tlsh {
                let cname = self.code_name(name, f);
                if self.c().has_collection(&cname).await? {
                    self.c().drop_collection(&cname).await?;
                }
                let cs = ps::CollectionSchema {
                    name: cname.clone(),
                    description: format!("{MARK}code of {name}.{f}"),
                    fields: vec![
                        field_schema(
                            "key",
                            DataType::VarChar,
                            vec![("max_length", layout::MAX_KEY.to_string())],
                            true,
                        ),
                        field_schema(
                            "code",
                            DataType::BinaryVector,
                            vec![("dim", CODE_BITS.to_string())],
                            false,
                        ),
                        field_schema(
                            "tlsh",
                            DataType::VarChar,
                            vec![("max_length", "70".into())],
                            false,
                        ),
                        field_schema("l", DataType::Int64, vec![], false),
                        field_schema("q1", DataType::Int64, vec![], false),
                        field_schema("q2", DataType::Int64, vec![], false),
                    ],
                    ..Default::default()
                };
                self.c().create_collection(cs).await?;
                match index {
                    CodeIndex::BinFlat => {
                        self.c()
                            .create_index(&cname, "code", "BIN_FLAT", serde_json::json!({}))
                            .await?
                    }
                    CodeIndex::BinIvfFlat { nlist } => {
                        self.c()
                            .create_index(
                                &cname,
                                "code",
                                "BIN_IVF_FLAT",
                                serde_json::json!({ "nlist": nlist }),
                            )
                            .await?
                    }
                }
                self.c().load(&cname).await?;
            }
            let cs = ps::CollectionSchema {
                name: main.clone(),
                description: format!("{MARK}{json}"),
                fields,
                ..Default::default()
            };
            self.c().create_collection(cs).await?;
            self.c()
                .create_index(&main, PAD, "BIN_FLAT", serde_json::json!({}))
                .await?;
            self.c().load(&main).await
        })?;
        self.inner
            .schemas
            .lock()
            .expect("schema cache")
            .insert(name.to_string(), schema);
        Ok(())
    }

    /// Drops apksift collection `name` and its code collections.
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        let schema = self.describe(name)?;
        let main = self.main_name(name);
        self.run(async {
            self.c().drop_collection(&main).await?;
            for f in layout::tlsh_fields(&schema) {
                let cname = self.code_name(name, &f);
                if self.c().has_collection(&cname).await? {
                    self.c().drop_collection(&cname).await?;
                }
            }
            Ok::<_, Error>(())
        })?;
        self.inner
            .schemas
            .lock()
            .expect("schema cache")
            .remove(name);
        Ok(())
    }

    /// Names of the apksift collections under this engine's prefix.
    pub fn list_collections(&self) -> Result<Vec<String>> {
        let names = self.run(self.c().show_collections())?;
        let p = format!("{}_", self.inner.url.prefix);
        let mut out: Vec<String> = names
            .into_iter()
            .filter_map(|n| n.strip_prefix(&p).map(str::to_string))
            .filter(|n| !n.contains("__"))
            .collect();
        out.sort();
        Ok(out)
    }

    /// The apksift schema of collection `name` (from the main collection's description).
    pub fn describe(&self, name: &str) -> Result<Schema> {
        if let Some(s) = self.inner.schemas.lock().expect("schema cache").get(name) {
            return Ok(s.clone());
        }
        let main = self.main_name(name);
        if !self.run(self.c().has_collection(&main))? {
            return Err(Error::NotFound(format!("collection {name:?} ({main})")));
        }
        let cs = self.run(self.c().describe(&main))?;
        let json = cs.description.strip_prefix(MARK).ok_or_else(|| {
            Error::Incompatible(format!(
                "Milvus collection {main} was not created by apksift"
            ))
        })?;
        let schema: Schema = serde_json::from_str(json)
            .map_err(|e| Error::Incompatible(format!("{main}: schema: {e}")))?;
        self.inner
            .schemas
            .lock()
            .expect("schema cache")
            .insert(name.to_string(), schema.clone());
        Ok(schema)
    }

    /// The index parameters of the code collection of `field` (for reports).
    pub fn code_index(&self, name: &str, field: &str) -> Result<Vec<(String, String)>> {
        self.run(self.c().describe_index(&self.code_name(name, field)))
    }

    /// The sealed segments of the code collection of `field` that the query nodes hold
    /// (`GetQuerySegmentInfo`). Milvus 2.3.5 lists no growing segments there: rows missing
    /// from these segments are still in growing ones, which are scanned exhaustively. For
    /// tests and benchmarks.
    pub fn code_segments(&self, name: &str, field: &str) -> Result<Vec<SegmentInfo>> {
        let segs = self.run(self.c().query_segments(&self.code_name(name, field)))?;
        Ok(segs
            .into_iter()
            .map(|(id, state, rows, index_id)| SegmentInfo {
                id,
                state: crate::proto::common::SegmentState::try_from(state).map_or_else(
                    |_| format!("state {state}"),
                    |s| s.as_str_name().to_string(),
                ),
                rows,
                index_id,
            })
            .collect())
    }

    // ------------------------------------------------------------------------- writes

    /// Inserts or replaces rows by key (missing columns are null). A key given twice in one
    /// batch is written once, with its last values. Code collections are written first, the
    /// main rows last.
    pub fn upsert(&self, name: &str, batch: Batch) -> Result<()> {
        let schema = self.describe(name)?;
        let n = batch.keys.len();
        for (c, col) in &batch.columns {
            schema.field(c)?;
            let len = match col {
                Column::Tlsh(v) => v.len(),
                Column::Str(v) => v.len(),
                Column::Int(v) => v.len(),
                Column::Bool(v) => v.len(),
                Column::Binary(_) => {
                    return Err(Error::Unsupported(format!("binary column {c:?}")));
                }
            };
            if len != n {
                return Err(Error::Invalid(format!(
                    "column {c:?} has {len} values for {n} keys"
                )));
            }
        }
        // Last occurrence of each key wins.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(n);
        for (i, k) in batch.keys.iter().enumerate() {
            apksift_index::schema::check_key(k)?;
            last.insert(k, i);
        }
        let mut rows: Vec<usize> = last.into_values().collect();
        rows.sort_unstable();
        for f in &schema.fields {
            if !f.nullable {
                let ok = match batch.columns.get(&f.name) {
                    None => rows.is_empty(),
                    Some(c) => rows
                        .iter()
                        .all(|&i| !matches!(c.value(i, f.ty), Value::Null)),
                };
                if !ok {
                    return Err(Error::Invalid(format!(
                        "field {:?} is not nullable",
                        f.name
                    )));
                }
            }
        }
        for chunk in rows.chunks(ROWS_PER_WRITE) {
            self.upsert_rows(name, &schema, &batch, chunk)?;
        }
        Ok(())
    }

    /// Same as [`upsert`](Self::upsert): keys are unique on Milvus only through upsert.
    pub fn insert(&self, name: &str, batch: Batch) -> Result<()> {
        self.upsert(name, batch)
    }

    fn upsert_rows(&self, name: &str, schema: &Schema, b: &Batch, rows: &[usize]) -> Result<()> {
        let keys: Vec<String> = rows.iter().map(|&i| b.keys[i].clone()).collect();
        let val = |f: &apksift_index::FieldSchema, i: usize| -> Value {
            b.columns
                .get(&f.name)
                .map_or(Value::Null, |c| c.value(i, f.ty))
        };
        // Code collections.
        let mut code_writes = Vec::new();
        for f in schema.fields.iter().filter(|f| f.ty == FieldType::Tlsh) {
            let (mut ks, mut codes, mut hexes, mut l, mut q1, mut q2, mut gone) =
                (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
            for (&i, k) in rows.iter().zip(&keys) {
                match val(f, i) {
                    Value::Tlsh(d) => {
                        ks.push(k.clone());
                        codes.extend_from_slice(&thermo::code(&d));
                        hexes.push(hex(&d));
                        l.push(i64::from(d.lvalue()));
                        q1.push(i64::from(d.q1()));
                        q2.push(i64::from(d.q2()));
                    }
                    _ => gone.push(k.clone()),
                }
            }
            let cname = self.code_name(name, &f.name);
            let n = ks.len();
            let data = (n > 0).then(|| {
                vec![
                    fd_str("key", ks),
                    fd_bin("code", CODE_BITS, codes),
                    fd_str("tlsh", hexes),
                    fd_long("l", l),
                    fd_long("q1", q1),
                    fd_long("q2", q2),
                ]
            });
            code_writes.push((cname, data, n, gone));
        }
        // Main rows.
        let mut data = vec![
            fd_str("key", keys.clone()),
            fd_bin(PAD, 8, vec![0; keys.len()]),
        ];
        for f in &schema.fields {
            let vals: Vec<Value> = rows.iter().map(|&i| val(f, i)).collect();
            match f.ty {
                FieldType::Tlsh => data.push(fd_str(
                    &f.name,
                    vals.iter()
                        .map(|v| match v {
                            Value::Tlsh(d) => hex(d),
                            _ => String::new(),
                        })
                        .collect(),
                )),
                FieldType::String { .. } => data.push(fd_str(
                    &f.name,
                    vals.iter()
                        .map(|v| match v {
                            Value::Str(s) => s.clone(),
                            _ => String::new(),
                        })
                        .collect(),
                )),
                FieldType::Int => data.push(fd_long(
                    &f.name,
                    vals.iter()
                        .map(|v| match v {
                            Value::Int(x) => *x,
                            _ => 0,
                        })
                        .collect(),
                )),
                FieldType::Bool => data.push(fd_bool(
                    &f.name,
                    vals.iter()
                        .map(|v| matches!(v, Value::Bool(true)))
                        .collect(),
                )),
                FieldType::BinaryVector { .. } => unreachable!(),
            }
            if f.nullable && f.ty != FieldType::Tlsh {
                data.push(fd_bool(
                    &format!("{}{NULL_SUFFIX}", f.name),
                    vals.iter().map(|v| matches!(v, Value::Null)).collect(),
                ));
            }
        }
        let main = self.main_name(name);
        let n = keys.len();
        let (ts, before_main) = self.run(async {
            let mut ts = 0;
            for (cname, data, n, gone) in code_writes {
                if let Some(data) = data {
                    ts = ts.max(self.c().upsert(&cname, data, n).await?);
                }
                for g in gone.chunks(KEYS_PER_EXPR) {
                    let t = self.c().delete(&cname, key_expr(g)).await?;
                    self.note_delete(t);
                }
            }
            // Every delete acknowledged by now, this upsert's own code deletes included,
            // has a smaller timestamp than the main-row upsert issued next (Milvus stamps a
            // request when the proxy receives it), so that upsert's timestamp covers them.
            let before_main = self.inner.deletes.load(Ordering::Acquire);
            ts = ts.max(self.c().upsert(&main, data, n).await?);
            Ok::<_, Error>((ts, before_main))
        })?;
        self.note_write(ts, before_main);
        Ok(())
    }

    /// Deletes rows by key (missing keys are ignored): the main rows first, then the codes.
    pub fn delete(&self, name: &str, keys: &[String]) -> Result<()> {
        let schema = self.describe(name)?;
        let main = self.main_name(name);
        let codes: Vec<String> = layout::tlsh_fields(&schema)
            .iter()
            .map(|f| self.code_name(name, f))
            .collect();
        let ts = self.run(async {
            let mut ts = u64::MAX;
            for chunk in keys.chunks(KEYS_PER_EXPR) {
                ts = ts.min(self.c().delete(&main, key_expr(chunk)).await?);
                for c in &codes {
                    ts = ts.min(self.c().delete(c, key_expr(chunk)).await?);
                }
            }
            Ok::<_, Error>(ts)
        })?;
        if ts != u64::MAX {
            self.note_delete(ts);
            if ts == 0 {
                self.stamp_deletes();
            }
        }
        Ok(())
    }

    /// Milvus 2.3 answers `Delete` with timestamp 0. A timestamp allocated after the deletes
    /// were acknowledged is larger than theirs (one timestamp oracle stamps every request),
    /// so using it as the Session guarantee makes those deletes visible to this engine's
    /// reads without falling back to Strong reads (which wait for a time tick, ~200 ms).
    /// Servers without `AllocTimestamp` keep the Strong fallback.
    fn stamp_deletes(&self) {
        let seq = self.inner.deletes.load(Ordering::Acquire);
        if let Ok(t) = self.run(self.c().alloc_timestamp()) {
            self.note_write(t, seq);
        }
    }

    /// Milvus makes acknowledged writes durable in its log; nothing to do. (Growing
    /// segments are searched exhaustively; see [`seal`](Self::seal).)
    pub fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// Seals the growing segments of collection `name`, waits until the code indexes cover
    /// them, and then until the query nodes have loaded them as sealed segments: only then
    /// does a BIN_IVF_FLAT index (approximate) answer for that data; before, Milvus scans the
    /// growing copies exhaustively. [`code_segments`](Self::code_segments) shows the result.
    /// For benchmarks and tests; Milvus seals segments by itself as they grow.
    pub fn seal(&self, name: &str) -> Result<()> {
        let schema = self.describe(name)?;
        let main = self.main_name(name);
        let codes: Vec<String> = layout::tlsh_fields(&schema)
            .iter()
            .map(|f| self.code_name(name, f))
            .collect();
        self.run(async {
            self.c().flush(&main).await?;
            for c in &codes {
                self.c().flush(c).await?;
            }
            for c in &codes {
                self.c().wait_index(c, "code").await?;
            }
            // Sealed segments must also be loaded by the query node before they answer.
            for c in &codes {
                self.c().load(c).await?;
            }
            for c in &codes {
                self.c().wait_sealed_loaded(c).await?;
            }
            Ok::<_, Error>(())
        })
    }

    // -------------------------------------------------------------------------- reads

    /// Milvus output fields needed to rebuild the apksift `fields`.
    fn out_fields(schema: &Schema, fields: &[String]) -> Result<Vec<String>> {
        let mut out = vec!["key".to_string()];
        for f in fields {
            let (_, fs) = schema.field(f)?;
            out.push(f.clone());
            if fs.nullable && fs.ty != FieldType::Tlsh {
                out.push(format!("{f}{NULL_SUFFIX}"));
            }
        }
        Ok(out)
    }

    fn rows_of(
        schema: &Schema,
        fields: &[String],
        cols: &Cols,
    ) -> Result<Vec<(String, BTreeMap<String, Value>)>> {
        let keys = cols.strs("key")?;
        let mut out: Vec<(String, BTreeMap<String, Value>)> =
            keys.iter().map(|k| (k.clone(), BTreeMap::new())).collect();
        for f in fields {
            let (_, fs) = schema.field(f)?;
            let nulls: Option<&[bool]> = if fs.nullable && fs.ty != FieldType::Tlsh {
                Some(cols.bools(&format!("{f}{NULL_SUFFIX}"))?)
            } else {
                None
            };
            let is_null = |i: usize| nulls.is_some_and(|n| n.get(i).copied().unwrap_or(true));
            for (i, (_, m)) in out.iter_mut().enumerate() {
                let v = if is_null(i) {
                    Value::Null
                } else {
                    match fs.ty {
                        FieldType::Tlsh => cols
                            .strs(f)?
                            .get(i)
                            .and_then(|s| parse_hex(s))
                            .map_or(Value::Null, Value::Tlsh),
                        FieldType::String { .. } => Value::Str(cols.strs(f)?[i].clone()),
                        FieldType::Int => Value::Int(cols.longs(f)?[i]),
                        FieldType::Bool => Value::Bool(cols.bools(f)?[i]),
                        FieldType::BinaryVector { .. } => Value::Null,
                    }
                };
                m.insert(f.clone(), v);
            }
        }
        Ok(out)
    }

    /// Main rows (with `fields`) of the keys that exist and match `filter` (a Milvus
    /// expression).
    fn fetch(
        &self,
        name: &str,
        schema: &Schema,
        keys: &[String],
        fields: &[String],
        filter: Option<&str>,
    ) -> Result<HashMap<String, BTreeMap<String, Value>>> {
        let main = self.main_name(name);
        let out_fields = Self::out_fields(schema, fields)?;
        let mut out = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_EXPR) {
            let mut expr = key_expr(chunk);
            if let Some(f) = filter {
                expr = format!("({expr}) and ({f})");
            }
            let data =
                self.run(
                    self.c()
                        .query(&main, expr, out_fields.clone(), None, self.read_ts()),
                )?;
            let cols = Cols::new(data);
            if cols.0.is_empty() {
                continue;
            }
            out.extend(Self::rows_of(schema, fields, &cols)?);
        }
        Ok(out)
    }

    /// Rows by key, in the order of `keys` (`None` for a missing key), with `output_fields`.
    pub fn get(
        &self,
        name: &str,
        keys: &[String],
        output_fields: &[String],
    ) -> Result<Vec<Option<BTreeMap<String, Value>>>> {
        let schema = self.describe(name)?;
        let mut m = self.fetch(name, &schema, keys, output_fields, None)?;
        Ok(keys
            .iter()
            .map(|k| m.get(k).cloned().or_else(|| m.remove(k)))
            .collect())
    }

    /// Rows matching an apksift filter, sorted by key, `offset` skipped, at most `limit`.
    pub fn query(
        &self,
        name: &str,
        filter: Option<&str>,
        output_fields: &[String],
        limit: usize,
        offset: usize,
    ) -> Result<Vec<(String, BTreeMap<String, Value>)>> {
        let schema = self.describe(name)?;
        let expr = match filter.map(|f| translate(f, &schema)).transpose()? {
            None | Some(Translated::All) => None,
            Some(Translated::Nothing) => return Ok(Vec::new()),
            Some(Translated::Expr(e)) => Some(e),
        };
        let main = self.main_name(name);
        let out_fields = Self::out_fields(&schema, output_fields)?;
        let want = offset.saturating_add(limit);
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        // Pages by key: Milvus returns the smallest keys first for a query with a limit.
        while out.len() < want {
            let page = (want - out.len()).min(MAX_WINDOW);
            let mut e = match &after {
                Some(k) => format!("key > {}", quote(k)),
                None => "key != \"\"".to_string(),
            };
            if let Some(f) = &expr {
                e = format!("({e}) and ({f})");
            }
            let data =
                self.run(
                    self.c()
                        .query(&main, e, out_fields.clone(), Some(page), self.read_ts()),
                )?;
            let cols = Cols::new(data);
            let n = cols.len();
            if n == 0 {
                break;
            }
            let mut rows = Self::rows_of(&schema, output_fields, &cols)?;
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            after = rows.last().map(|r| r.0.clone());
            out.extend(rows);
            if n < page {
                break;
            }
        }
        Ok(out.into_iter().skip(offset).take(limit).collect())
    }

    /// Exact number of live rows.
    pub fn count(&self, name: &str) -> Result<u64> {
        self.describe(name)?;
        let main = self.main_name(name);
        let data = self.run(self.c().query(
            &main,
            String::new(),
            vec!["count(*)".into()],
            None,
            self.read_ts(),
        ))?;
        let cols = Cols::new(data);
        Ok(cols.longs("count(*)")?.first().copied().unwrap_or(0).max(0) as u64)
    }

    /// TLSH search on field `field`: per query digest, the `k` nearest stored digests by
    /// exact TLSH distance (ties by key), within `cutoff` (`d <= cutoff`) and `radius`
    /// (`range_filter <= d < radius`) when given, among rows matching `filter`.
    pub fn search(
        &self,
        name: &str,
        field: &str,
        vectors: &[QueryVector],
        params: &SearchParams,
    ) -> Result<SearchResult> {
        Ok(self.search_with_stats(name, field, vectors, params)?.0)
    }

    /// [`search`](Self::search) with the Milvus-side cost.
    pub fn search_with_stats(
        &self,
        name: &str,
        field: &str,
        vectors: &[QueryVector],
        params: &SearchParams,
    ) -> Result<(SearchResult, SearchStats)> {
        let schema = self.describe(name)?;
        let (_, fs) = schema.field(field)?;
        if fs.ty != FieldType::Tlsh {
            return Err(Error::Unsupported(format!(
                "search on {field:?}: only TLSH fields are searchable on Milvus"
            )));
        }
        let with_len = match params.metric {
            None | Some(Metric::Tlsh) => true,
            Some(Metric::TlshXlen) => false,
            Some(m) => {
                return Err(Error::Invalid(format!("metric {m:?} on a TLSH field")));
            }
        };
        if params.k == 0 || params.k > MAX_WINDOW {
            return Err(Error::Invalid(format!("k must be 1..={MAX_WINDOW}")));
        }
        let filter = match params
            .filter
            .as_deref()
            .map(|f| translate(f, &schema))
            .transpose()?
        {
            None | Some(Translated::All) => None,
            Some(Translated::Nothing) => {
                return Ok((
                    SearchResult {
                        hits: vec![Vec::new(); vectors.len()],
                        counters: SearchCounters::default(),
                    },
                    SearchStats::default(),
                ));
            }
            Some(Translated::Expr(e)) => Some(e),
        };
        // Largest TLSH distance wanted (inclusive).
        let mut bound: Option<u32> = params
            .cutoff
            .map(|c| c.max(-1.0).floor() as i64)
            .map(|c| c.max(-1) as u32);
        if params.cutoff.is_some_and(|c| c < 0.0) {
            return Ok((
                SearchResult {
                    hits: vec![Vec::new(); vectors.len()],
                    counters: SearchCounters::default(),
                },
                SearchStats::default(),
            ));
        }
        if let Some(r) = params.radius {
            if r <= 0.0 {
                return Ok((
                    SearchResult {
                        hits: vec![Vec::new(); vectors.len()],
                        counters: SearchCounters::default(),
                    },
                    SearchStats::default(),
                ));
            }
            let rb = (r.ceil() as u32).saturating_sub(1);
            bound = Some(bound.map_or(rb, |b| b.min(rb)));
        }
        let min_d = params.range_filter.unwrap_or(f64::NEG_INFINITY);
        let nprobe = match (self.inner.url.index, params.brute_force) {
            (CodeIndex::BinIvfFlat { nlist }, true) => nlist,
            _ => params.nprobe.unwrap_or(self.inner.url.nprobe),
        };
        let cname = self.code_name(name, field);
        let mut stats = SearchStats::default();
        let mut all = Vec::with_capacity(vectors.len());
        for v in vectors {
            let q = match v {
                QueryVector::Tlsh(d) => *d,
                QueryVector::Binary(_) => {
                    return Err(Error::Invalid(format!(
                        "{field:?} is a TLSH field: query with digests"
                    )));
                }
            };
            let hits = self.search_one(
                name,
                &schema,
                &cname,
                &q,
                with_len,
                bound,
                min_d,
                params,
                filter.as_deref(),
                nprobe,
                &mut stats,
            )?;
            all.push(hits);
        }
        let counters = SearchCounters {
            rows: stats.candidates,
            ..SearchCounters::default()
        };
        Ok((
            SearchResult {
                hits: all,
                counters,
            },
            stats,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn search_one(
        &self,
        name: &str,
        schema: &Schema,
        cname: &str,
        q: &Digest,
        with_len: bool,
        bound: Option<u32>,
        min_d: f64,
        params: &SearchParams,
        filter: Option<&str>,
        nprobe: u32,
        stats: &mut SearchStats,
    ) -> Result<Vec<Hit>> {
        let k = params.k;
        let code = thermo::code(q).to_vec();
        // Hamming <= TLSH, so Hamming radius bound+1 keeps every digest within bound.
        let mut window = self.inner.url.window.min(MAX_WINDOW);
        let mut lo = 0u32;
        let mut seen: HashSet<String> = HashSet::new();
        // Candidates within the bound, exact distance known, row not yet checked.
        let mut pending: Vec<(u32, String)> = Vec::new();
        // Accepted (row exists and matches the filter): (distance, key, fields), sorted, <= k.
        let mut best: Vec<(u32, String, BTreeMap<String, Value>)> = Vec::new();
        loop {
            // The bound tightens to the current k-th distance: nothing farther can enter, and
            // both the Hamming radius and the header pre-filter stay lossless for the answer.
            let kth = (best.len() >= k).then(|| best[k - 1].0);
            let eff = match (bound, kth) {
                (Some(b), Some(t)) => Some(b.min(t)),
                (b, t) => b.or(t),
            };
            let radius = eff.map_or(CODE_BITS + 1, |b| (b + 1).min(CODE_BITS + 1));
            if radius <= lo {
                break;
            }
            let header = eff.and_then(|b| thermo::header_filter(q, b, with_len));
            let res = self.run(self.c().range_search(
                cname,
                vec![code.clone()],
                lo,
                radius,
                window,
                header.unwrap_or_default(),
                nprobe,
                vec!["tlsh".into()],
                self.read_ts(),
            ))?;
            stats.requests += 1;
            let ids = match res.ids.and_then(|i| i.id_field) {
                Some(ps::i_ds::IdField::StrId(s)) => s.data,
                None => Vec::new(),
                Some(_) => return Err(Error::Milvus("integer ids in a code collection".into())),
            };
            let got = ids.len();
            stats.candidates += got as u64;
            let cols = Cols::new(res.fields_data);
            let tl = if got > 0 {
                cols.strs("tlsh")?.to_vec()
            } else {
                Vec::new()
            };
            let hmax = res
                .scores
                .iter()
                .chain(&res.distances)
                .fold(0f32, |a, &b| a.max(b)) as u32;
            for (key, t) in ids.into_iter().zip(tl) {
                if !seen.insert(key.clone()) {
                    continue;
                }
                let Some(d) = parse_hex(&t) else { continue };
                let dist = q.distance(&d, with_len);
                if eff.is_some_and(|b| dist > b) || f64::from(dist) < min_d {
                    continue;
                }
                pending.push((dist, key));
            }
            // Check rows (existence, filter, output fields) best first, only as many as can
            // still enter the top k.
            pending.sort_unstable();
            while !pending.is_empty() {
                let room = k - best.len().min(k);
                let limit = best.get(k.wrapping_sub(1)).map(|b| (b.0, b.1.clone()));
                let take: Vec<(u32, String)> = pending
                    .iter()
                    .take_while(|p| limit.as_ref().is_none_or(|l| (p.0, &p.1) < (l.0, &l.1)))
                    .take(room.max(1).max(k.min(64)))
                    .cloned()
                    .collect();
                if take.is_empty() {
                    break;
                }
                pending.drain(..take.len());
                let keys: Vec<String> = take.iter().map(|t| t.1.clone()).collect();
                let mut rows = self.fetch(name, schema, &keys, &params.output_fields, filter)?;
                for (d, key) in take {
                    if let Some(fields) = rows.remove(&key) {
                        best.push((d, key, fields));
                    }
                }
                best.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
                best.truncate(k);
            }
            if got < window {
                break; // every row with lo <= hamming < radius was returned
            }
            // Rows with hamming < hmax are complete; those at hmax may continue.
            if best.len() >= k && best[k - 1].0 < hmax {
                break; // nothing unseen can beat the k-th
            }
            if hmax <= lo {
                // A whole window at one Hamming distance: widen it.
                if window >= MAX_WINDOW {
                    return Err(Error::Unsupported(format!(
                        "more than {MAX_WINDOW} stored digests at Hamming distance {lo} from one query"
                    )));
                }
                window = (window * 4).min(MAX_WINDOW);
                continue;
            }
            lo = hmax;
        }
        Ok(best
            .into_iter()
            .map(|(d, key, fields)| Hit {
                key,
                distance: f64::from(d),
                fields,
            })
            .collect())
    }
}
