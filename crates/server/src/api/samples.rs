//! Scan, search and known samples, on [`apksift_core::Store`].

use std::time::Instant;

use apksift_core::{
    Digest, Fingerprint, ImportFormat, ImportOptions, Label, SampleMeta, ScanOptions, SearchField,
    SearchOptions, ThreatLevel,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::collections::check_k_nq;
use crate::encoding::parse_digest;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, body_error};
use crate::state::AppState;
use crate::{blocking, require_read, require_write};

/// Routes of this area.
pub fn routes(state: &AppState) -> Router<AppState> {
    let read = Router::new()
        .route("/v1/scan", post(scan))
        .route("/v1/scan/fingerprint", post(scan_fingerprint))
        .route("/v1/search", post(search))
        .route("/v1/samples/{key}", get(get_sample))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_read));
    let write = Router::new()
        .route("/v1/samples", post(upsert_samples))
        .route("/v1/samples/{key}", axum::routing::delete(delete_sample))
        .route("/v1/samples/apk", post(upload_apk))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_write));
    read.merge(write)
}

impl From<apksift_core::Error> for ApiError {
    fn from(e: apksift_core::Error) -> ApiError {
        use apksift_core::Error as E;
        match e {
            E::Invalid(m) => ApiError::invalid(m),
            E::NotFound(m) => ApiError::not_found(m),
            E::AlreadyExists(m) => ApiError::new(StatusCode::CONFLICT, "already_exists", m),
            E::Storage(e) => e.into(),
            E::ReadOnly => ApiError::new(
                StatusCode::CONFLICT,
                "read_only_replica",
                "this server is a read-only replica; send writes to the writer",
            ),
            other => ApiError::internal(other),
        }
    }
}

// ------------------------------------------------------------------ scan

/// Query parameters of `POST /v1/scan` and `POST /v1/samples/apk`'s scan options.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ScanParams {
    /// A component matches when its TLSH distance is < cutoff (1..=2500, default 50).
    pub cutoff: Option<u32>,
    /// Nearest stored digests looked up per component (1..=1000, default 5).
    pub k: Option<usize>,
    /// Most samples listed in `nearest` (default 10).
    pub max_neighbours: Option<usize>,
    /// Only consider stored samples matching this filter over `label`, `family`, `threat`.
    pub filter: Option<String>,
    /// Name reported in the verdict's `file` field (default: the multipart file name).
    pub file: Option<String>,
}

impl ScanParams {
    fn options(&self) -> ScanOptions {
        let d = ScanOptions::default();
        ScanOptions {
            cutoff: self.cutoff.unwrap_or(d.cutoff),
            k: self.k.unwrap_or(d.k),
            max_neighbours: self.max_neighbours.unwrap_or(d.max_neighbours),
            filter: self.filter.clone(),
            exclude: Vec::new(),
        }
    }
}

/// Reads the APK of a scan or upload: the raw body, or the single file part
/// of a `multipart/form-data` body. Returns the bytes and the file name.
async fn read_apk(state: &AppState, req: Request) -> ApiResult<(Bytes, Option<String>)> {
    let limit = state.limits().max_body_bytes;
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !is_multipart {
        let body = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|e| {
                if std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                {
                    ApiError::too_large(format!(
                        "request body exceeds the limit of {limit} bytes (--max-body-bytes)"
                    ))
                } else {
                    ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.to_string())
                }
            })?;
        if body.is_empty() {
            return Err(ApiError::invalid(
                "empty body: send the APK bytes as the body, or as the one file of a multipart/form-data upload",
            ));
        }
        return Ok((body, None));
    }
    let mut mp = Multipart::from_request(req, state)
        .await
        .map_err(|e| body_error(e.status(), e.body_text()))?;
    let mut found: Option<(Bytes, Option<String>)> = None;
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| body_error(e.status(), e.body_text()))?
    {
        let name = field.name().unwrap_or("").to_string();
        if name != "file" {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "unknown_field",
                format!(
                    "unknown multipart part {name:?}: send the APK as the part named \"file\"; options go in the query string"
                ),
            ));
        }
        if found.is_some() {
            return Err(ApiError::invalid(
                "more than one \"file\" part: send one APK per request",
            ));
        }
        let fname = field.file_name().map(str::to_string);
        let bytes = field
            .bytes()
            .await
            .map_err(|e| body_error(e.status(), e.body_text()))?;
        found = Some((bytes, fname));
    }
    let (bytes, fname) =
        found.ok_or_else(|| ApiError::invalid("multipart body without a part named \"file\""))?;
    if bytes.is_empty() {
        return Err(ApiError::invalid("the \"file\" part is empty"));
    }
    Ok((bytes, fname))
}

/// Fingerprints with the per-APK decompression budget; 413 when it was hit. Large APKs are
/// fingerprinted on rayon's pool (whole-file hashes, ZIP part and components side by side); the
/// timings say where the time went (busy time per stage, summed over threads).
fn fingerprint_within_budget(
    state: &AppState,
    bytes: &[u8],
) -> ApiResult<(Fingerprint, apksift_fingerprint::Timings)> {
    let budget = state.limits().max_decompressed_bytes;
    let opts = apksift_core::FingerprintOptions {
        limits: apksift_apk::Limits {
            max_total_bytes: budget,
            ..apksift_apk::Limits::default()
        },
        include_entries: false,
    };
    let (fp, timings) =
        apksift_fingerprint::fingerprint_with(bytes, &opts, apksift_fingerprint::Parallelism::Auto);
    if fp
        .anomalies
        .iter()
        .any(|a| a.code == apksift_apk::codes::TOTAL_SIZE_LIMIT)
    {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "decompression_limit",
            format!(
                "the APK inflates to more than {budget} bytes (--max-decompressed-bytes); it was not scanned"
            ),
        ));
    }
    Ok((fp, timings))
}

/// Scan one APK: the body is the APK (any content type), or a
/// `multipart/form-data` body with one part named `file`. Returns the same
/// verdict object as `apksift scan --json`.
#[utoipa::path(post, path = "/v1/scan", tag = "scan",
    params(ScanParams),
    request_body(description = "The APK bytes (`application/vnd.android.package-archive` or `application/octet-stream`), or `multipart/form-data` with one part named `file`",
        content(("application/vnd.android.package-archive"), ("application/octet-stream"), ("multipart/form-data"))),
    responses(
        (status = 200, description = "The verdict, as `apksift scan --json` prints it (see docs/API.md)", body = Object),
        (status = 400, body = crate::error::ErrorBody),
        (status = 413, description = "Body over --max-body-bytes, or APK inflating past --max-decompressed-bytes", body = crate::error::ErrorBody),
        (status = 429, description = "Too many scans running and waiting", body = crate::error::ErrorBody),
        (status = 503, description = "No scan slot or request timeout", body = crate::error::ErrorBody)),
    security(("api_key" = ["read"])))]
pub async fn scan(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ScanParams>,
    req: Request,
) -> ApiResult<ApiJson<serde_json::Value>> {
    let opts = params.options();
    // The slot is taken before the body is read: memory is bounded by
    // (running + nothing) × max body, and excess requests are refused early.
    let slot = state.scan_slot().await?;
    let t0 = Instant::now();
    let (bytes, fname) = read_apk(&state, req).await?;
    let m = state.metrics();
    m.scan_stage
        .get(&["read_body"])
        .observe(t0.elapsed().as_secs_f64());
    let st = state.clone();
    let verdict = blocking(move || {
        let _slot = slot;
        let t1 = Instant::now();
        let (fp, timings) = fingerprint_within_budget(&st, &bytes)?;
        drop(bytes);
        let stages = &st.metrics().scan_stage;
        stages
            .get(&["fingerprint"])
            .observe(t1.elapsed().as_secs_f64());
        stages.get(&["unzip"]).observe(timings.unzip.as_secs_f64());
        stages.get(&["hash"]).observe(timings.hash.as_secs_f64());
        let t2 = Instant::now();
        let v = st.store().scan(&fp, &opts)?;
        st.metrics()
            .scan_stage
            .get(&["search"])
            .observe(t2.elapsed().as_secs_f64());
        Ok(v)
    })
    .await?;
    finish_verdict(&state, verdict, params.file.or(fname))
}

fn finish_verdict(
    state: &AppState,
    mut verdict: apksift_core::Verdict,
    file: Option<String>,
) -> ApiResult<ApiJson<serde_json::Value>> {
    verdict.file = file;
    state.metrics().scans.get(&[verdict.verdict.name()]).inc();
    let v = serde_json::to_value(&verdict).map_err(ApiError::internal)?;
    Ok(ApiJson(v))
}

/// `POST /v1/scan/fingerprint`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanFingerprintRequest {
    /// A fingerprint as `apksift hash` prints it (computed on the client).
    #[schema(value_type = Object)]
    pub fingerprint: Fingerprint,
    /// Match rule `distance < cutoff` (1..=2500, default 50).
    #[serde(default)]
    pub cutoff: Option<u32>,
    /// Nearest stored digests per component (1..=1000, default 5).
    #[serde(default)]
    pub k: Option<usize>,
    /// Most samples listed in `nearest` (default 10).
    #[serde(default)]
    pub max_neighbours: Option<usize>,
    /// Filter over `label`, `family`, `threat`.
    #[serde(default)]
    pub filter: Option<String>,
    /// Name reported in the verdict's `file` field.
    #[serde(default)]
    pub file: Option<String>,
}

/// Scan a fingerprint computed by the client (no upload of the APK):
/// the same verdict as `POST /v1/scan`.
#[utoipa::path(post, path = "/v1/scan/fingerprint", tag = "scan",
    request_body = ScanFingerprintRequest,
    responses((status = 200, description = "The verdict (see docs/API.md)", body = Object),
              (status = 400, body = crate::error::ErrorBody)),
    security(("api_key" = ["read"])))]
pub async fn scan_fingerprint(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ScanFingerprintRequest>,
) -> ApiResult<ApiJson<serde_json::Value>> {
    let opts = ScanParams {
        cutoff: req.cutoff,
        k: req.k,
        max_neighbours: req.max_neighbours,
        filter: req.filter,
        file: None,
    }
    .options();
    let st = state.clone();
    let fp = req.fingerprint;
    let verdict = blocking(move || {
        let t = Instant::now();
        let v = st.store().scan(&fp, &opts)?;
        st.metrics()
            .scan_stage
            .get(&["search"])
            .observe(t.elapsed().as_secs_f64());
        Ok(v)
    })
    .await?;
    finish_verdict(&state, verdict, req.file)
}

// ---------------------------------------------------------------- search

/// Which stored digests a search compares with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// Whole-file digests.
    #[default]
    Whole,
    /// `AndroidManifest.xml` digests.
    Manifest,
    /// `resources.arsc` digests.
    Resources,
    /// Every stored `classes*.dex` digest.
    Dex,
    /// Every stored native library digest.
    Native,
}

impl From<Field> for SearchField {
    fn from(f: Field) -> SearchField {
        match f {
            Field::Whole => SearchField::Whole,
            Field::Manifest => SearchField::Manifest,
            Field::Resources => SearchField::Resources,
            Field::Dex => SearchField::Dex,
            Field::Native => SearchField::Native,
        }
    }
}

/// `POST /v1/search`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// TLSH digests (`T1` + 70 hex digits; `t1` and legacy 70-hex accepted).
    #[serde(default)]
    pub digests: Vec<String>,
    /// Fingerprints (`apksift hash` output): each one queries with its digests
    /// of `field` (every dex or native library digest for those fields).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub fingerprints: Vec<Fingerprint>,
    /// Results per query (1..=16,384; default 10).
    #[serde(default = "default_k")]
    pub k: usize,
    /// Only results with distance < cutoff (the TLSH paper's rule); default: the k nearest.
    #[serde(default)]
    pub cutoff: Option<u32>,
    /// Which stored digests to compare with (default `whole`).
    #[serde(default)]
    pub field: Field,
    /// Use `diffxlen` (no file-length term).
    #[serde(default)]
    pub xlen: bool,
    /// Filter over `label`, `family`, `threat` (and every `samples` field for whole/manifest/resources).
    #[serde(default)]
    pub filter: Option<String>,
}

fn default_k() -> usize {
    10
}

/// One query's answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchResult {
    /// The query: the digest, or `fingerprint:<sha256>`.
    pub query: String,
    /// Stored digests, nearest first (ties by key). Each has `sha256`,
    /// `distance`, `tlsh`, `component` (dex/native), `label`, `family`,
    /// `threat`, `source`.
    #[schema(value_type = Vec<Object>)]
    pub matches: Vec<apksift_core::Match>,
}

/// Answer of `POST /v1/search`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchResponse {
    /// Digest queries first, then fingerprint queries, in request order.
    pub results: Vec<SearchResult>,
}

fn fingerprint_digests(fp: &Fingerprint, field: Field) -> Vec<Digest> {
    use apksift_fingerprint::ComponentKind as K;
    let kind = match field {
        Field::Whole => return fp.tlsh.into_iter().collect(),
        Field::Manifest => K::Manifest,
        Field::Resources => K::Resources,
        Field::Dex => K::Dex,
        Field::Native => K::Native,
    };
    let mut v: Vec<Digest> = fp
        .components
        .iter()
        .filter(|c| c.kind == kind)
        .filter_map(|c| c.tlsh)
        .collect();
    if matches!(field, Field::Manifest | Field::Resources) {
        v.truncate(1);
    }
    v
}

/// Search TLSH digests: for each digest (or fingerprint), the nearest
/// stored digests with their distances.
#[utoipa::path(post, path = "/v1/search", tag = "scan",
    request_body = SearchRequest,
    responses((status = 200, body = SearchResponse), (status = 400, body = crate::error::ErrorBody)),
    security(("api_key" = ["read"])))]
pub async fn search(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SearchRequest>,
) -> ApiResult<ApiJson<SearchResponse>> {
    // A fingerprint queries with every digest it holds for the field (each dex or native
    // library), so those digests are what count towards the nq limit.
    let fp_digests: Vec<_> = req
        .fingerprints
        .iter()
        .map(|fp| fingerprint_digests(fp, req.field))
        .collect();
    let nq = req.digests.len() + req.fingerprints.len();
    let searched = req.digests.len() + fp_digests.iter().map(Vec::len).sum::<usize>();
    check_k_nq(&state, req.k, nq.max(searched))?;
    let mut digests = Vec::with_capacity(req.digests.len());
    for (i, d) in req.digests.iter().enumerate() {
        digests.push(parse_digest(d).map_err(|e| ApiError::invalid(format!("digests[{i}]: {e}")))?);
    }
    let opts = SearchOptions {
        k: req.k,
        cutoff: req.cutoff,
        field: req.field.into(),
        xlen: req.xlen,
        filter: req.filter.clone(),
    };
    let st = state.clone();
    let out = blocking(move || {
        let store = st.store();
        let mut results = Vec::with_capacity(nq);
        if !digests.is_empty() {
            let hits = store.search_digests(&digests, &opts)?;
            for (d, matches) in digests.iter().zip(hits) {
                results.push(SearchResult {
                    query: d.to_canonical(),
                    matches,
                });
            }
        }
        for (fp, ds) in req.fingerprints.iter().zip(fp_digests) {
            let mut merged: Vec<apksift_core::Match> = Vec::new();
            if !ds.is_empty() {
                for hits in store.search_digests(&ds, &opts)? {
                    merged.extend(hits);
                }
            }
            merged.sort_by(|a, b| {
                a.distance
                    .cmp(&b.distance)
                    .then_with(|| a.sha256.cmp(&b.sha256))
                    .then_with(|| a.component.cmp(&b.component))
            });
            merged.dedup_by(|a, b| a.sha256 == b.sha256 && a.component == b.component);
            merged.truncate(req.k);
            results.push(SearchResult {
                query: format!("fingerprint:{}", fp.sha256),
                matches: merged,
            });
        }
        Ok(SearchResponse { results })
    })
    .await?;
    state
        .metrics()
        .search_queries
        .get(&["search"])
        .inc_by(nq as u64);
    Ok(ApiJson(out))
}

// --------------------------------------------------------------- samples

/// One sample to store: either a fingerprint (from `apksift hash`), or
/// digests without the APK (`sha256`/`sha1`/`md5` and/or `tlsh`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleIn {
    /// A full fingerprint (`apksift hash` output); its components are stored too.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub fingerprint: Option<Fingerprint>,
    /// SHA-256 (64 hex digits) of a sample known only by its digests.
    #[serde(default)]
    pub sha256: Option<String>,
    /// SHA-1 (40 hex digits), when there is no SHA-256.
    #[serde(default)]
    pub sha1: Option<String>,
    /// MD5 (32 hex digits), when there is no SHA-256 or SHA-1.
    #[serde(default)]
    pub md5: Option<String>,
    /// Whole-file TLSH digest (`T1…`).
    #[serde(default)]
    pub tlsh: Option<String>,
    /// `malware` (default), `grayware`, `benign` or `unknown`.
    #[serde(default)]
    pub label: Option<String>,
    /// Family, e.g. `Anubis`.
    #[serde(default)]
    pub family: Option<String>,
    /// `none`, `low`, `medium`, `high`, `critical` (or 0-4).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub threat: Option<serde_json::Value>,
    /// Where the sample came from.
    #[serde(default)]
    pub source: Option<String>,
    /// First-seen time, unix seconds.
    #[serde(default)]
    pub first_seen: Option<i64>,
}

/// `POST /v1/samples`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertSamples {
    /// Samples to insert or update (a known key is updated, never duplicated).
    pub samples: Vec<SampleIn>,
}

/// What one stored sample became.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SampleOutcome {
    /// The sample's key (lower-case SHA-256, or `sha1:…`/`md5:…`/`tlsh:…`).
    pub key: String,
    /// Component rows written (fingerprints only).
    pub components: usize,
}

/// Answer of `POST /v1/samples`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UpsertSamplesResult {
    /// Samples written.
    pub stored: u64,
    /// Per fingerprint sample, in request order (digest-only samples are counted in `stored`).
    pub fingerprints: Vec<SampleOutcome>,
}

fn parse_threat(v: &serde_json::Value) -> Result<ThreatLevel, String> {
    let s = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        other => return Err(format!("threat must be a name or 0-4, got {other}")),
    };
    s.parse::<ThreatLevel>().map_err(|e| e.to_string())
}

struct Validated {
    fingerprints: Vec<(Fingerprint, SampleMeta)>,
    digest_lines: Vec<String>,
}

fn validate_samples(items: Vec<SampleIn>) -> ApiResult<Validated> {
    let mut out = Validated {
        fingerprints: Vec::new(),
        digest_lines: Vec::new(),
    };
    for (i, s) in items.into_iter().enumerate() {
        let bad = |m: String| ApiError::invalid(format!("samples[{i}]: {m}"));
        let label = match &s.label {
            Some(l) => l.parse::<Label>().map_err(|e| bad(e.to_string()))?,
            None => Label::Malware,
        };
        let threat = s
            .threat
            .as_ref()
            .filter(|v| !v.is_null())
            .map(parse_threat)
            .transpose()
            .map_err(bad)?;
        let meta = SampleMeta {
            label,
            family: s.family.clone(),
            threat,
            source: s.source.clone(),
            first_seen: s.first_seen,
        }
        .normalized()
        .map_err(|e| bad(e.to_string()))?;
        if let Some(fp) = s.fingerprint {
            if s.sha256.is_some() || s.sha1.is_some() || s.md5.is_some() || s.tlsh.is_some() {
                return Err(bad(
                    "give either \"fingerprint\" or digests (sha256/sha1/md5/tlsh), not both"
                        .into(),
                ));
            }
            apksift_core::normalize_sha256(&fp.sha256)
                .map_err(|e| bad(format!("fingerprint.sha256: {e}")))?;
            out.fingerprints.push((fp, meta));
            continue;
        }
        let mut line = serde_json::Map::new();
        let mut has_id = false;
        for (name, v, len) in [
            ("sha256", &s.sha256, 64),
            ("sha1", &s.sha1, 40),
            ("md5", &s.md5, 32),
        ] {
            if let Some(h) = v {
                let h = h.trim();
                if h.len() != len || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad(format!(
                        "invalid {name} {:?}: expected {len} hex digits",
                        h.chars().take(80).collect::<String>()
                    )));
                }
                line.insert(name.into(), h.to_ascii_lowercase().into());
                has_id = true;
            }
        }
        if let Some(t) = &s.tlsh {
            let d = parse_digest(t).map_err(|e| bad(format!("tlsh: {e}")))?;
            line.insert("tlsh".into(), d.to_canonical().into());
        } else if !has_id {
            return Err(bad(
                "a sample needs \"fingerprint\", or at least one of sha256, sha1, md5, tlsh".into(),
            ));
        }
        line.insert("label".into(), meta.label.to_string().into());
        if let Some(f) = &meta.family {
            line.insert("family".into(), f.clone().into());
        }
        if let Some(t) = meta.threat {
            line.insert("threat".into(), t.to_string().into());
        }
        if let Some(src) = &meta.source {
            line.insert("source".into(), src.clone().into());
        }
        if let Some(fs) = meta.first_seen {
            line.insert("first_seen".into(), fs.to_string().into());
        }
        out.digest_lines
            .push(serde_json::Value::Object(line).to_string());
    }
    Ok(out)
}

/// Insert or update known samples: fingerprints (with their components) or
/// digests without the APK, each with label, family, threat level, source.
/// Every item is checked before anything is written.
#[utoipa::path(post, path = "/v1/samples", tag = "samples",
    request_body = UpsertSamples,
    responses((status = 200, body = UpsertSamplesResult), (status = 400, body = crate::error::ErrorBody),
              (status = 413, body = crate::error::ErrorBody)),
    security(("api_key" = ["write"])))]
pub async fn upsert_samples(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<UpsertSamples>,
) -> ApiResult<ApiJson<UpsertSamplesResult>> {
    let max = state.limits().max_batch;
    if req.samples.len() > max {
        return Err(ApiError::too_large(format!(
            "{} samples in one request exceed the batch limit of {max} (--max-batch)",
            req.samples.len()
        )));
    }
    if req.samples.is_empty() {
        return Err(ApiError::invalid("\"samples\" is empty"));
    }
    let v = validate_samples(req.samples)?;
    let st = state.clone();
    let res = blocking(move || {
        let store = st.store();
        let mut res = UpsertSamplesResult {
            stored: 0,
            fingerprints: Vec::new(),
        };
        if !v.fingerprints.is_empty() {
            for o in store.ingest_batch(&v.fingerprints)? {
                res.fingerprints.push(SampleOutcome {
                    key: o.sha256,
                    components: o.components,
                });
            }
            res.stored += res.fingerprints.len() as u64;
        }
        if !v.digest_lines.is_empty() {
            let text = v.digest_lines.join("\n");
            let report = store.import_digests(
                text.as_bytes(),
                ImportFormat::Jsonl,
                &ImportOptions::default(),
            )?;
            if report.skipped > 0 || report.field_errors > 0 {
                let first = report.issues.first().map_or(String::new(), |i| {
                    format!(": line {}: {}", i.line, i.message)
                });
                return Err(ApiError::invalid(format!(
                    "{} of {} digest samples were not stored{first}",
                    report.skipped + report.field_errors,
                    report.rows
                )));
            }
            res.stored += report.stored;
        }
        Ok(res)
    })
    .await?;
    state
        .metrics()
        .inserted_rows
        .get(&["samples"])
        .inc_by(res.stored);
    Ok(ApiJson(res))
}

/// Get a stored sample by SHA-256 (or `sha1:…`, `md5:…` key of an import).
#[utoipa::path(get, path = "/v1/samples/{key}", tag = "samples",
    params(("key" = String, Path, description = "SHA-256 (64 hex digits) or another sample key")),
    responses((status = 200, description = "The sample's stored fields", body = Object),
              (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = ["read"])))]
pub async fn get_sample(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<ApiJson<serde_json::Value>> {
    let st = state.clone();
    let k2 = key.clone();
    let s = blocking(move || Ok(st.store().get_sample(&k2)?)).await?;
    match s {
        Some(s) => Ok(ApiJson(
            serde_json::to_value(&s).map_err(ApiError::internal)?,
        )),
        None => Err(ApiError::not_found(format!("no stored sample {key:?}"))),
    }
}

/// Delete a stored sample and its component rows.
#[utoipa::path(delete, path = "/v1/samples/{key}", tag = "samples",
    params(("key" = String, Path, description = "SHA-256 (64 hex digits) or another sample key")),
    responses((status = 204), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = ["write"])))]
pub async fn delete_sample(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let st = state.clone();
    let k2 = key.clone();
    let existed = blocking(move || Ok(st.store().delete_sample(&k2)?)).await?;
    if !existed {
        return Err(ApiError::not_found(format!("no stored sample {key:?}")));
    }
    state.metrics().deleted_rows.get(&["samples"]).inc();
    Ok(StatusCode::NO_CONTENT)
}

/// Query parameters of `POST /v1/samples/apk`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// `malware` (default), `grayware`, `benign` or `unknown`.
    pub label: Option<String>,
    /// Family, e.g. `Anubis`.
    pub family: Option<String>,
    /// `none`, `low`, `medium`, `high`, `critical` (or 0-4).
    pub threat: Option<String>,
    /// Where the sample came from.
    pub source: Option<String>,
    /// First-seen time, unix seconds.
    pub first_seen: Option<i64>,
}

/// What an upload stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UploadResult {
    /// The sample's SHA-256.
    pub sha256: String,
    /// The sample was known and its row was replaced.
    pub replaced: bool,
    /// Component rows written.
    pub components: usize,
}

/// Ingest an uploaded APK as a known sample (label `malware` unless given):
/// raw body or `multipart/form-data` with one part named `file`.
#[utoipa::path(post, path = "/v1/samples/apk", tag = "samples",
    params(UploadParams),
    request_body(description = "The APK bytes, or multipart/form-data with one part named `file`",
        content(("application/vnd.android.package-archive"), ("application/octet-stream"), ("multipart/form-data"))),
    responses((status = 200, body = UploadResult), (status = 400, body = crate::error::ErrorBody),
              (status = 413, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)),
    security(("api_key" = ["write"])))]
pub async fn upload_apk(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<UploadParams>,
    req: Request,
) -> ApiResult<ApiJson<UploadResult>> {
    let label = match &p.label {
        Some(l) => l
            .parse::<Label>()
            .map_err(|e| ApiError::invalid(e.to_string()))?,
        None => Label::Malware,
    };
    let threat = p
        .threat
        .as_deref()
        .map(str::parse::<ThreatLevel>)
        .transpose()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let meta = SampleMeta {
        label,
        family: p.family,
        threat,
        source: p.source,
        first_seen: p.first_seen,
    }
    .normalized()?;
    let slot = state.scan_slot().await?;
    let (bytes, _) = read_apk(&state, req).await?;
    let st = state.clone();
    let out = blocking(move || {
        let _slot = slot;
        let (fp, _) = fingerprint_within_budget(&st, &bytes)?;
        drop(bytes);
        Ok(st.store().ingest(&fp, &meta)?)
    })
    .await?;
    state.metrics().inserted_rows.get(&["samples"]).inc();
    Ok(ApiJson(UploadResult {
        sha256: out.sha256,
        replaced: out.replaced,
        components: out.components,
    }))
}
