//! Generic collections: the engine's operations for binary-vector users.

use std::collections::BTreeMap;

use apksift_index::metric::Metric;
use apksift_index::schema::{FieldSchema, FieldType, IndexSpec, Schema};
use apksift_index::{Batch, Row, SearchParams};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::blocking;
use crate::encoding::{Encoding, json_to_value, query_vector, value_to_json};
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::state::AppState;

/// Type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// Binary vector of `dim` bits.
    BinaryVector,
    /// TLSH digest (T1, 128 buckets, 1-byte checksum).
    Tlsh,
    /// UTF-8 string.
    String,
    /// 64-bit signed integer.
    Int,
    /// Boolean.
    Bool,
}

/// Index kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IndexKind {
    /// Exact scan.
    Flat,
    /// Inverted lists over `nlist` k-majority centroids (binary vectors).
    IvfFlat,
    /// Exact TLSH tree (TLSH fields).
    TlshTree,
}

/// An index on a vector field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexDef {
    /// Index kind.
    pub kind: IndexKind,
    /// IVF_FLAT: number of lists (1..=65,536).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nlist: Option<u32>,
    /// TLSH_TREE: rows per leaf (8..=1,024, default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf_size: Option<u32>,
}

/// A field definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    /// Field name, `[A-Za-z_][A-Za-z0-9_]{0,63}`.
    pub name: String,
    /// Field type.
    #[serde(rename = "type")]
    pub kind: FieldKind,
    /// binary_vector: width in bits (multiple of 8, 8..=262,144).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dim: Option<u32>,
    /// string: longest value in bytes (default 65,535).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<u32>,
    /// May rows omit it? Binary vectors never; others default to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nullable: Option<bool>,
    /// Index of a vector field (default FLAT for binary, TLSH_TREE for TLSH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexDef>,
    /// Default metric of a vector field: HAMMING, JACCARD, TANIMOTO,
    /// SUBSTRUCTURE, SUPERSTRUCTURE (binary) or TLSH, TLSH_XLEN (TLSH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
}

impl FieldDef {
    fn to_schema(&self) -> ApiResult<FieldSchema> {
        let n = &self.name;
        let ty = match self.kind {
            FieldKind::BinaryVector => FieldType::BinaryVector {
                dim: self.dim.ok_or_else(|| {
                    ApiError::invalid(format!("field {n:?}: binary_vector fields need \"dim\""))
                })?,
            },
            FieldKind::Tlsh => FieldType::Tlsh,
            FieldKind::String => FieldType::String {
                max_len: self
                    .max_len
                    .unwrap_or(apksift_index::schema::MAX_STRING_LEN),
            },
            FieldKind::Int => FieldType::Int,
            FieldKind::Bool => FieldType::Bool,
        };
        if self.dim.is_some() && self.kind != FieldKind::BinaryVector {
            return Err(ApiError::invalid(format!(
                "field {n:?}: \"dim\" is only for binary_vector fields"
            )));
        }
        if self.max_len.is_some() && self.kind != FieldKind::String {
            return Err(ApiError::invalid(format!(
                "field {n:?}: \"max_len\" is only for string fields"
            )));
        }
        let mut f = FieldSchema::new(n.clone(), ty);
        if let Some(nb) = self.nullable {
            f.nullable = nb;
        }
        if let Some(ix) = &self.index {
            let spec = match ix.kind {
                IndexKind::Flat => IndexSpec::Flat,
                IndexKind::IvfFlat => IndexSpec::IvfFlat {
                    nlist: ix.nlist.ok_or_else(|| {
                        ApiError::invalid(format!("field {n:?}: IVF_FLAT needs \"nlist\""))
                    })?,
                },
                IndexKind::TlshTree => IndexSpec::TlshTree {
                    leaf_size: ix.leaf_size.unwrap_or(32),
                },
            };
            if ix.nlist.is_some() && ix.kind != IndexKind::IvfFlat {
                return Err(ApiError::invalid(format!(
                    "field {n:?}: \"nlist\" is only for IVF_FLAT"
                )));
            }
            if ix.leaf_size.is_some() && ix.kind != IndexKind::TlshTree {
                return Err(ApiError::invalid(format!(
                    "field {n:?}: \"leaf_size\" is only for TLSH_TREE"
                )));
            }
            f.index = Some(spec);
        }
        if let Some(m) = &self.metric {
            f.metric = Some(Metric::parse(m)?);
        }
        Ok(f)
    }

    fn from_schema(f: &FieldSchema) -> FieldDef {
        let (kind, dim, max_len) = match f.ty {
            FieldType::BinaryVector { dim } => (FieldKind::BinaryVector, Some(dim), None),
            FieldType::Tlsh => (FieldKind::Tlsh, None, None),
            FieldType::String { max_len } => (FieldKind::String, None, Some(max_len)),
            FieldType::Int => (FieldKind::Int, None, None),
            FieldType::Bool => (FieldKind::Bool, None, None),
        };
        let vector = f.ty.is_vector();
        FieldDef {
            name: f.name.clone(),
            kind,
            dim,
            max_len,
            nullable: Some(f.nullable),
            index: vector.then(|| match f.index_spec() {
                IndexSpec::Flat => IndexDef {
                    kind: IndexKind::Flat,
                    nlist: None,
                    leaf_size: None,
                },
                IndexSpec::IvfFlat { nlist } => IndexDef {
                    kind: IndexKind::IvfFlat,
                    nlist: Some(nlist),
                    leaf_size: None,
                },
                IndexSpec::TlshTree { leaf_size } => IndexDef {
                    kind: IndexKind::TlshTree,
                    nlist: None,
                    leaf_size: Some(leaf_size),
                },
            }),
            metric: vector.then(|| f.default_metric().name().to_string()),
        }
    }
}

/// `POST /v1/collections`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCollection {
    /// Collection name, `[A-Za-z_][A-Za-z0-9_]{0,63}`.
    pub name: String,
    /// Name of the string primary key (default `id`).
    #[serde(default)]
    pub primary_key: Option<String>,
    /// Fields besides the primary key (at least one vector field).
    pub fields: Vec<FieldDef>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// A collection's description.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CollectionInfo {
    /// Name.
    pub name: String,
    /// Name of the primary key.
    pub primary_key: String,
    /// Fields with their effective index and metric.
    pub fields: Vec<FieldDef>,
    /// Free text.
    pub description: String,
    /// Live rows.
    pub rows: u64,
    /// Immutable segments.
    pub segments: usize,
    /// Rows not yet flushed to a segment.
    pub memtable_rows: u64,
    /// Bytes of segment files.
    pub segment_bytes: u64,
}

/// `GET /v1/collections`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CollectionList {
    /// Names, sorted.
    pub collections: Vec<String>,
}

/// `POST …/insert` and `…/upsert`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteRows {
    /// Rows as objects: the primary key and field values by name. Fields
    /// not in the schema are rejected; missing nullable fields are null.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Encoding of binary vectors (default base64).
    #[serde(default)]
    pub encoding: Encoding,
}

/// Result of a write.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WriteResult {
    /// Rows written, or keys that existed and were deleted.
    pub rows: u64,
    /// Log sequence number of the write (durable when answered); absent on a Milvus store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lsn: Option<u64>,
}

/// `POST …/delete`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRows {
    /// Primary keys.
    pub keys: Vec<String>,
}

/// `POST …/get`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetRows {
    /// Primary keys.
    pub keys: Vec<String>,
    /// Fields to return (default: all).
    #[serde(default)]
    pub output_fields: Option<Vec<String>>,
    /// Encoding of binary vectors (default base64).
    #[serde(default)]
    pub encoding: Encoding,
}

/// A row in a response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RowOut {
    /// Primary key.
    pub key: String,
    /// Requested fields.
    #[schema(value_type = Object)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// Result of `…/get`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GetResult {
    /// Rows found, in the order asked.
    pub rows: Vec<RowOut>,
    /// Keys not found.
    pub missing: Vec<String>,
}

/// `POST …/search`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionSearchRequest {
    /// Vector field to search.
    pub field: String,
    /// Query vectors: encoded binary vectors or TLSH digests, per the field's type.
    pub vectors: Vec<String>,
    /// Results per query vector (1..=16,384; default 10).
    #[serde(default = "default_k")]
    pub k: usize,
    /// Metric (default: the field's).
    #[serde(default)]
    pub metric: Option<String>,
    /// Only hits with distance <= cutoff.
    #[serde(default)]
    pub cutoff: Option<f64>,
    /// Range search: only hits with distance < radius.
    #[serde(default)]
    pub radius: Option<f64>,
    /// Range search: only hits with distance >= range_filter (needs radius).
    #[serde(default)]
    pub range_filter: Option<f64>,
    /// Scalar filter, e.g. `family == "Anubis" and threat >= 3`.
    #[serde(default)]
    pub filter: Option<String>,
    /// Fields returned with each hit.
    #[serde(default)]
    pub output_fields: Vec<String>,
    /// IVF lists to probe (IVF_FLAT fields only).
    #[serde(default)]
    pub nprobe: Option<u32>,
    /// Encoding of binary vectors, in and out (default base64).
    #[serde(default)]
    pub encoding: Encoding,
}

fn default_k() -> usize {
    10
}

/// One hit.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HitOut {
    /// Primary key.
    pub key: String,
    /// Distance (smaller is closer).
    pub distance: f64,
    /// Requested output fields.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = Object)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// Hits of one query vector.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueryHits {
    /// Hits, nearest first (ties by key).
    pub hits: Vec<HitOut>,
}

/// Result of `…/search`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CollectionSearchResponse {
    /// One entry per query vector, in order.
    pub results: Vec<QueryHits>,
}

/// `POST …/query`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// Scalar filter (default: every row).
    #[serde(default)]
    pub filter: Option<String>,
    /// Fields to return (default: none).
    #[serde(default)]
    pub output_fields: Vec<String>,
    /// Rows to return (1..=16,384; default 100).
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Rows to skip (sorted by key).
    #[serde(default)]
    pub offset: usize,
    /// Encoding of binary vectors (default base64).
    #[serde(default)]
    pub encoding: Encoding,
}

fn default_limit() -> usize {
    100
}

/// Result of `…/query`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueryResult {
    /// Matching rows, sorted by key.
    pub rows: Vec<RowOut>,
}

/// Result of `…/count`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CountResult {
    /// Live rows.
    pub count: u64,
}

fn info(c: apksift_index::CollectionInfo) -> CollectionInfo {
    CollectionInfo {
        name: c.name,
        primary_key: c.schema.primary_key.clone(),
        fields: c.schema.fields.iter().map(FieldDef::from_schema).collect(),
        description: c.schema.description.clone(),
        rows: c.rows,
        segments: c.segments,
        memtable_rows: c.memtable_rows,
        segment_bytes: c.segment_bytes,
    }
}

/// The sample store's own collections: readable here, written only
/// through `/v1/samples` so their invariants hold.
pub const RESERVED: &[&str] = &[
    apksift_core::schema::SAMPLES,
    apksift_core::schema::COMPONENTS,
];

fn check_not_reserved(name: &str) -> ApiResult<()> {
    if RESERVED.contains(&name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "reserved_collection",
            format!(
                "collection {name:?} belongs to the sample store: read it here, write it through /v1/samples"
            ),
        ));
    }
    Ok(())
}

fn check_batch(state: &AppState, n: usize, what: &str) -> ApiResult<()> {
    let max = state.limits().max_batch;
    if n > max {
        return Err(ApiError::too_large(format!(
            "{n} {what} in one request exceed the batch limit of {max} (--max-batch)"
        )));
    }
    Ok(())
}

/// Create a collection.
#[utoipa::path(post, path = "/v1/collections", tag = "collections",
    request_body = CreateCollection,
    responses((status = 201, body = CollectionInfo), (status = 400, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)),
    security(("api_key" = ["admin"])))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateCollection>,
) -> ApiResult<(StatusCode, ApiJson<CollectionInfo>)> {
    check_not_reserved(&req.name)?;
    let fields = req
        .fields
        .iter()
        .map(FieldDef::to_schema)
        .collect::<ApiResult<Vec<_>>>()?;
    let mut schema = Schema::new(req.primary_key.unwrap_or_else(|| "id".into()), fields);
    schema.description = req.description.unwrap_or_default();
    let db = state.backend().clone();
    let out = blocking(move || {
        if !db.create_collection(&req.name, schema)? {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_exists",
                format!("collection {:?} already exists", req.name),
            ));
        }
        Ok(db.info(&req.name)?)
    })
    .await?;
    Ok((StatusCode::CREATED, ApiJson(info(out))))
}

/// List collections.
#[utoipa::path(get, path = "/v1/collections", tag = "collections",
    responses((status = 200, body = CollectionList)), security(("api_key" = ["read"])))]
pub async fn list(State(state): State<AppState>) -> ApiResult<ApiJson<CollectionList>> {
    let db = state.backend().clone();
    let collections = blocking(move || Ok(db.list_collections()?)).await?;
    Ok(ApiJson(CollectionList { collections }))
}

/// Describe a collection.
#[utoipa::path(get, path = "/v1/collections/{name}", tag = "collections",
    params(("name" = String, Path, description = "Collection name")),
    responses((status = 200, body = CollectionInfo), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = ["read"])))]
pub async fn describe(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<ApiJson<CollectionInfo>> {
    let db = state.backend().clone();
    let c = blocking(move || Ok(db.info(&name)?)).await?;
    Ok(ApiJson(info(c)))
}

/// Drop a collection and its data.
#[utoipa::path(delete, path = "/v1/collections/{name}", tag = "collections",
    params(("name" = String, Path, description = "Collection name")),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = ["admin"])))]
pub async fn drop_collection(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    check_not_reserved(&name)?;
    let db = state.backend().clone();
    blocking(move || Ok(db.drop_collection(&name)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Count live rows.
#[utoipa::path(get, path = "/v1/collections/{name}/count", tag = "collections",
    params(("name" = String, Path, description = "Collection name")),
    responses((status = 200, body = CountResult), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = ["read"])))]
pub async fn count(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<ApiJson<CountResult>> {
    let db = state.backend().clone();
    let count = blocking(move || Ok(db.count(&name)?)).await?;
    Ok(ApiJson(CountResult { count }))
}

fn rows_to_batch(
    schema: &Schema,
    rows: &[serde_json::Map<String, serde_json::Value>],
    enc: Encoding,
) -> ApiResult<Batch> {
    let pk = &schema.primary_key;
    let mut out = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let key = match r.get(pk) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "row {i}: primary key {pk:?} must be a string, got {other}"
                )));
            }
            None => {
                return Err(ApiError::invalid(format!(
                    "row {i}: missing primary key field {pk:?}"
                )));
            }
        };
        let mut fields = BTreeMap::new();
        for (name, v) in r {
            if name == pk {
                continue;
            }
            let Some(f) = schema.fields.iter().find(|f| &f.name == name) else {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unknown_field",
                    format!(
                        "row {i} ({key:?}): unknown field {name:?}; fields are: {}, {}",
                        pk,
                        schema
                            .fields
                            .iter()
                            .map(|f| f.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            };
            let val = json_to_value(v, f.ty, enc).map_err(|e| {
                ApiError::invalid(format!("row {i} ({key:?}), field {name:?}: {e}"))
            })?;
            fields.insert(name.clone(), val);
        }
        out.push(Row { key, fields });
    }
    Ok(Batch::from_rows(schema, &out)?)
}

async fn write(
    state: AppState,
    name: String,
    req: WriteRows,
    replace: bool,
) -> ApiResult<ApiJson<WriteResult>> {
    check_not_reserved(&name)?;
    check_batch(&state, req.rows.len(), "rows")?;
    let db = state.backend().clone();
    let ack = blocking(move || {
        let schema = db.describe(&name)?;
        let batch = rows_to_batch(&schema, &req.rows, req.encoding)?;
        Ok(if replace {
            db.upsert(&name, batch)?
        } else {
            db.insert(&name, batch)?
        })
    })
    .await?;
    state
        .metrics()
        .inserted_rows
        .get(&["collections"])
        .inc_by(ack.rows);
    Ok(ApiJson(WriteResult {
        rows: ack.rows,
        lsn: ack.lsn,
    }))
}

/// Insert rows (fails, storing nothing, if a key exists).
#[utoipa::path(post, path = "/v1/collections/{name}/insert", tag = "collections",
    params(("name" = String, Path, description = "Collection name")),
    request_body = WriteRows,
    responses((status = 200, body = WriteResult), (status = 400, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody)),
    security(("api_key" = ["write"])))]
pub async fn insert(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<WriteRows>,
) -> ApiResult<ApiJson<WriteResult>> {
    write(state, name, req, false).await
}

/// Insert or replace rows.
#[utoipa::path(post, path = "/v1/collections/{name}/upsert", tag = "collections",
    params(("name" = String, Path, description = "Collection name")),
    request_body = WriteRows,
    responses((status = 200, body = WriteResult), (status = 400, body = crate::error::ErrorBody),
              (status = 413, body = crate::error::ErrorBody)),
    security(("api_key" = ["write"])))]
pub async fn upsert(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<WriteRows>,
) -> ApiResult<ApiJson<WriteResult>> {
    write(state, name, req, true).await
}

/// Delete rows by key.
#[utoipa::path(post, path = "/v1/collections/{name}/delete", tag = "collections",
    params(("name" = String, Path, description = "Collection name")),
    request_body = DeleteRows,
    responses((status = 200, body = WriteResult), (status = 400, body = crate::error::ErrorBody)),
    security(("api_key" = ["write"])))]
pub async fn delete_rows(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<DeleteRows>,
) -> ApiResult<ApiJson<WriteResult>> {
    check_not_reserved(&name)?;
    check_batch(&state, req.keys.len(), "keys")?;
    let db = state.backend().clone();
    let ack = blocking(move || Ok(db.delete(&name, &req.keys)?)).await?;
    state
        .metrics()
        .deleted_rows
        .get(&["collections"])
        .inc_by(ack.rows);
    Ok(ApiJson(WriteResult {
        rows: ack.rows,
        lsn: ack.lsn,
    }))
}

fn fields_json(
    m: &BTreeMap<String, apksift_index::Value>,
    enc: Encoding,
) -> BTreeMap<String, serde_json::Value> {
    m.iter()
        .map(|(k, v)| (k.clone(), value_to_json(v, enc)))
        .collect()
}

/// Get rows by key.
#[utoipa::path(post, path = "/v1/collections/{name}/get", tag = "collections",
    params(("name" = String, Path, description = "Collection name")),
    request_body = GetRows,
    responses((status = 200, body = GetResult), (status = 400, body = crate::error::ErrorBody)),
    security(("api_key" = ["read"])))]
pub async fn get_rows(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<GetRows>,
) -> ApiResult<ApiJson<GetResult>> {
    check_batch(&state, req.keys.len(), "keys")?;
    let db = state.backend().clone();
    let enc = req.encoding;
    let out = blocking(move || {
        let fields = match req.output_fields {
            Some(f) => f,
            None => {
                let schema = db.describe(&name)?;
                schema.fields.iter().map(|f| f.name.clone()).collect()
            }
        };
        let got = db.get(&name, &req.keys, &fields)?;
        let mut res = GetResult {
            rows: Vec::new(),
            missing: Vec::new(),
        };
        for (k, r) in req.keys.into_iter().zip(got) {
            match r {
                Some(m) => res.rows.push(RowOut {
                    key: k,
                    fields: fields_json(&m, enc),
                }),
                None => res.missing.push(k),
            }
        }
        Ok(res)
    })
    .await?;
    Ok(ApiJson(out))
}

/// Checks `k` and `nq` against the limits.
pub(crate) fn check_k_nq(state: &AppState, k: usize, nq: usize) -> ApiResult<()> {
    let lim = state.limits();
    if k == 0 || k > lim.max_k {
        return Err(ApiError::invalid(format!(
            "k = {k} is out of range: k must be between 1 and {}",
            lim.max_k
        )));
    }
    if nq == 0 {
        return Err(ApiError::invalid("no query vectors given"));
    }
    if nq > lim.max_nq {
        return Err(ApiError::invalid(format!(
            "{nq} query vectors exceed the limit of {} per request (--max-nq)",
            lim.max_nq
        )));
    }
    Ok(())
}

/// Search a vector field.
#[utoipa::path(post, path = "/v1/collections/{name}/search", tag = "collections",
    params(("name" = String, Path, description = "Collection name")),
    request_body = CollectionSearchRequest,
    responses((status = 200, body = CollectionSearchResponse), (status = 400, body = crate::error::ErrorBody)),
    security(("api_key" = ["read"])))]
pub async fn search(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<CollectionSearchRequest>,
) -> ApiResult<ApiJson<CollectionSearchResponse>> {
    check_k_nq(&state, req.k, req.vectors.len())?;
    let nq = req.vectors.len() as u64;
    let db = state.backend().clone();
    let enc = req.encoding;
    let out = blocking(move || {
        let schema = db.describe(&name)?;
        let (_, f) = schema.field(&req.field)?;
        if !f.ty.is_vector() {
            return Err(ApiError::invalid(format!(
                "field {:?} is a {} field; search needs a vector field",
                req.field,
                f.ty.name()
            )));
        }
        let ty = f.ty;
        let vectors = req
            .vectors
            .iter()
            .enumerate()
            .map(|(i, v)| {
                query_vector(v, ty, enc).map_err(|e| {
                    ApiError::invalid(format!("vectors[{i}] for field {:?}: {e}", req.field))
                })
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let params = SearchParams {
            k: req.k,
            metric: req.metric.as_deref().map(Metric::parse).transpose()?,
            cutoff: req.cutoff,
            radius: req.radius,
            range_filter: req.range_filter,
            filter: req.filter,
            output_fields: req.output_fields,
            nprobe: req.nprobe,
            brute_force: false,
        };
        let r = db.search(&name, &req.field, &vectors, &params)?;
        Ok(CollectionSearchResponse {
            results: r
                .hits
                .into_iter()
                .map(|hs| QueryHits {
                    hits: hs
                        .into_iter()
                        .map(|h| HitOut {
                            key: h.key,
                            distance: h.distance,
                            fields: fields_json(&h.fields, enc),
                        })
                        .collect(),
                })
                .collect(),
        })
    })
    .await?;
    state
        .metrics()
        .search_queries
        .get(&["collections"])
        .inc_by(nq);
    Ok(ApiJson(out))
}

/// Rows matching a scalar filter, sorted by key.
#[utoipa::path(post, path = "/v1/collections/{name}/query", tag = "collections",
    params(("name" = String, Path, description = "Collection name")),
    request_body = QueryRequest,
    responses((status = 200, body = QueryResult), (status = 400, body = crate::error::ErrorBody)),
    security(("api_key" = ["read"])))]
pub async fn query(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<QueryRequest>,
) -> ApiResult<ApiJson<QueryResult>> {
    let max = state.limits().max_k;
    if req.limit == 0 || req.limit > max {
        return Err(ApiError::invalid(format!(
            "limit = {} is out of range: limit must be between 1 and {max}",
            req.limit
        )));
    }
    let db = state.backend().clone();
    let enc = req.encoding;
    let rows = blocking(move || {
        Ok(db.query(
            &name,
            req.filter.as_deref(),
            &req.output_fields,
            req.limit,
            req.offset,
        )?)
    })
    .await?;
    Ok(ApiJson(QueryResult {
        rows: rows
            .into_iter()
            .map(|(key, m)| RowOut {
                key,
                fields: fields_json(&m, enc),
            })
            .collect(),
    }))
}
