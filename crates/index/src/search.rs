//! Search over a collection snapshot: top-k and range search with Milvus's
//! semantics (`range_filter <= d < radius`), an inclusive TLSH-style
//! `cutoff`, scalar filters, output fields, and ties broken by key.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};

use apksift_tlsh::{DIGEST_LEN, Digest};
use rayon::prelude::*;
use serde::Serialize;

use crate::deletes::DeleteSet;
use crate::filter::Filter;
use crate::memtable::MemView;
use crate::metric::{
    Metric, and_or_counts, binary_distance, jaccard_from_counts, tanimoto_from_jaccard,
};
use crate::rows::{PartRead, VectorSlice};
use crate::schema::{FieldType, IndexSpec, Schema};
use crate::segment::Segment;
use crate::simd_binary::{self, LANES};
use crate::tlsh_kernel::TlshQuery;
use crate::tlsh_tree::{self, SearchStats, TlshSink};
use crate::value::Value;
use crate::{Error, Result};

/// Largest `k` (Milvus: topk ≤ 16,384).
pub const MAX_K: usize = 16_384;
/// Most query vectors per request (Milvus: nq ≤ 16,384).
pub const MAX_NQ: usize = 16_384;

/// A query vector.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryVector {
    /// Binary vector bytes.
    Binary(Vec<u8>),
    /// TLSH digest.
    Tlsh(Digest),
}

/// Search parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchParams {
    /// Results per query (1..=16,384).
    pub k: usize,
    /// Metric; defaults to the field's.
    pub metric: Option<Metric>,
    /// Only hits with `d <= cutoff`.
    pub cutoff: Option<f64>,
    /// Range search: only hits with `d < radius`.
    pub radius: Option<f64>,
    /// Range search: only hits with `d >= range_filter` (needs `radius`).
    pub range_filter: Option<f64>,
    /// Scalar filter expression.
    pub filter: Option<String>,
    /// Fields to return with each hit.
    pub output_fields: Vec<String>,
    /// IVF lists to probe (IVF_FLAT fields only).
    pub nprobe: Option<u32>,
    /// Scan every row instead of using the index (for checks).
    pub brute_force: bool,
}

impl Default for SearchParams {
    fn default() -> Self {
        SearchParams {
            k: 10,
            metric: None,
            cutoff: None,
            radius: None,
            range_filter: None,
            filter: None,
            output_fields: Vec::new(),
            nprobe: None,
            brute_force: false,
        }
    }
}

/// One result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Primary key.
    pub key: String,
    /// Distance (smaller is closer).
    pub distance: f64,
    /// Requested output fields.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, Value>,
}

/// Counters summed over a request.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SearchCounters {
    /// Index nodes whose bound was computed.
    pub nodes: u64,
    /// Rows whose distance was computed.
    pub rows: u64,
}

/// A segment with its deleted rows, as seen by a snapshot.
#[derive(Debug, Clone)]
pub struct SegView {
    /// The segment.
    pub seg: std::sync::Arc<Segment>,
    /// Deleted rows.
    pub dels: DeleteSet,
}

/// What a search reads: segments and memtables of one collection.
#[derive(Debug, Clone)]
pub struct Parts<'a> {
    /// Schema.
    pub schema: &'a Schema,
    /// Segments.
    pub segments: &'a [SegView],
    /// Memtables (frozen and active).
    pub mems: &'a [MemView],
}

#[derive(Debug, Clone, Copy)]
enum PartId {
    Seg(usize),
    Mem(usize),
}

struct Cand {
    dist: f64,
    /// The key's first 8 bytes, big-endian, zero-padded: ordering by
    /// (prefix, key) is ordering by key, and most ties of `dist` are
    /// settled without comparing strings.
    prefix: u64,
    key: String,
    part: PartId,
    row: u32,
}

/// First 8 bytes of a key as a big-endian number (zero-padded): for two
/// keys, `a < b` implies `key_prefix(a) <= key_prefix(b)`.
#[inline]
fn key_prefix(key: &str) -> u64 {
    let mut b = [0u8; 8];
    let k = key.as_bytes();
    let n = k.len().min(8);
    b[..n].copy_from_slice(&k[..n]);
    // Big-endian: the first byte is the most significant.
    u64::from_le_bytes(b).swap_bytes()
}

impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> Ordering {
        self.dist
            .total_cmp(&o.dist)
            .then(self.prefix.cmp(&o.prefix))
            .then_with(|| self.key.cmp(&o.key))
    }
}

/// Top-k by (distance, key) with an inclusive upper and lower bound.
struct Collector {
    k: usize,
    heap: BinaryHeap<Cand>,
    max: f64,
    min: f64,
    /// Upper bound is exclusive (radius) rather than inclusive.
    max_exclusive: bool,
}

impl Collector {
    fn accepts(&self, d: f64) -> bool {
        if d < self.min {
            return false;
        }
        if self.max_exclusive {
            d < self.max
        } else {
            d <= self.max
        }
    }

    /// Largest distance that can still enter.
    fn bound(&self) -> f64 {
        if self.heap.len() >= self.k {
            self.heap.peek().map_or(self.max, |c| c.dist.min(self.max))
        } else {
            self.max
        }
    }

    /// Integer bound for integer metrics (inclusive).
    fn bound_u32(&self) -> u32 {
        let b = self.bound();
        let full_at_b =
            self.heap.len() >= self.k && self.heap.peek().is_some_and(|c| c.dist <= self.max);
        let v = if self.max_exclusive && !full_at_b {
            // d < radius  <=>  d <= ceil(radius) - 1
            b.ceil() - 1.0
        } else {
            b.floor()
        };
        if v < 0.0 {
            0
        } else if v >= f64::from(u32::MAX) {
            u32::MAX - 1
        } else {
            v as u32
        }
    }

    fn would_take(&self, d: f64, key: &str) -> bool {
        if !self.accepts(d) {
            return false;
        }
        if self.heap.len() < self.k {
            return true;
        }
        match self.heap.peek() {
            Some(w) => {
                d < w.dist
                    || (d == w.dist && {
                        let p = key_prefix(key);
                        p < w.prefix || (p == w.prefix && key < w.key.as_str())
                    })
            }
            None => true,
        }
    }

    fn push(&mut self, dist: f64, key: &str, part: PartId, row: u32) {
        if !self.would_take(dist, key) {
            return;
        }
        let c = Cand {
            dist,
            prefix: key_prefix(key),
            key: key.to_string(),
            part,
            row,
        };
        if self.heap.len() >= self.k {
            // Replace the worst in place (one sift down instead of a pop
            // and a push).
            if let Some(mut worst) = self.heap.peek_mut() {
                *worst = c;
            }
        } else {
            self.heap.push(c);
        }
    }
}

fn part<'a>(p: &'a Parts<'_>, id: PartId) -> (&'a dyn PartRead, &'a DeleteSet) {
    match id {
        PartId::Seg(i) => {
            let s = &p.segments[i];
            (&*s.seg as &dyn PartRead, &s.dels)
        }
        PartId::Mem(i) => {
            let m = &p.mems[i];
            (m as &dyn PartRead, &m.dels)
        }
    }
}

/// A validated request for one vector field.
#[derive(Debug)]
pub struct Plan {
    field: usize,
    metric: Metric,
    index: IndexSpec,
    params: SearchParams,
    filter: Option<Filter>,
    out_fields: Vec<usize>,
}

/// Checks a request against the schema; every unsupported parameter is an
/// error that names it.
pub fn plan(
    schema: &Schema,
    field: &str,
    vectors: &[QueryVector],
    params: &SearchParams,
) -> Result<Plan> {
    let (fi, f) = schema.field(field)?;
    if !f.ty.is_vector() {
        return Err(Error::invalid(format!(
            "field {field:?} is not a vector field"
        )));
    }
    if params.k == 0 || params.k > MAX_K {
        return Err(Error::invalid(format!(
            "k (limit) {} must be between 1 and {MAX_K}",
            params.k
        )));
    }
    if vectors.is_empty() {
        return Err(Error::invalid("no query vectors"));
    }
    if vectors.len() > MAX_NQ {
        return Err(Error::invalid(format!(
            "{} query vectors exceed the maximum nq of {MAX_NQ}",
            vectors.len()
        )));
    }
    let metric = params.metric.unwrap_or(f.default_metric());
    metric.check_field(field, f.ty)?;
    for (i, v) in vectors.iter().enumerate() {
        match (v, f.ty) {
            (QueryVector::Binary(b), FieldType::BinaryVector { dim }) => {
                if b.len() != dim as usize / 8 {
                    return Err(Error::invalid(format!(
                        "query vector {i}: field {field:?} has dim {dim} ({} bytes) but the vector has {} bytes",
                        dim / 8,
                        b.len()
                    )));
                }
            }
            (QueryVector::Tlsh(_), FieldType::Tlsh) => {}
            (QueryVector::Binary(_), _) => {
                return Err(Error::invalid(format!(
                    "query vector {i}: field {field:?} takes TLSH digests, not binary vectors"
                )));
            }
            (QueryVector::Tlsh(_), _) => {
                return Err(Error::invalid(format!(
                    "query vector {i}: field {field:?} takes binary vectors, not TLSH digests"
                )));
            }
        }
    }
    let index = f.index_spec();
    if params.nprobe.is_some() && !matches!(index, IndexSpec::IvfFlat { .. }) {
        return Err(Error::invalid(format!(
            "parameter nprobe is not supported by index {} of field {field:?} (only IVF_FLAT)",
            index.name()
        )));
    }
    if let (Some(np), IndexSpec::IvfFlat { nlist }) = (params.nprobe, index)
        && (np == 0 || np > nlist)
    {
        return Err(Error::invalid(format!(
            "nprobe {np} must be between 1 and nlist ({nlist})"
        )));
    }
    if metric.is_structure()
        && (params.radius.is_some() || params.range_filter.is_some() || params.cutoff.is_some())
    {
        return Err(Error::invalid(format!(
            "{} only matches at distance 0; radius, range_filter and cutoff are not supported",
            metric.name()
        )));
    }
    if params.range_filter.is_some() && params.radius.is_none() {
        return Err(Error::invalid(
            "range_filter needs radius (range search is range_filter <= distance < radius)",
        ));
    }
    for (name, v) in [
        ("radius", params.radius),
        ("range_filter", params.range_filter),
        ("cutoff", params.cutoff),
    ] {
        if let Some(x) = v
            && (x.is_nan() || x < 0.0)
        {
            return Err(Error::invalid(format!(
                "{name} must be a non-negative number"
            )));
        }
    }
    if let (Some(r), Some(rf)) = (params.radius, params.range_filter)
        && rf >= r
    {
        return Err(Error::invalid(format!(
            "range_filter {rf} must be smaller than radius {r}"
        )));
    }
    if matches!(index, IndexSpec::IvfFlat { .. }) && !params.brute_force {
        metric.check_index(field, index).or_else(|e| {
            if metric.is_structure() {
                Ok(())
            } else {
                Err(e)
            }
        })?;
    }
    let filter = params
        .filter
        .as_deref()
        .map(|t| Filter::parse(t, schema))
        .transpose()?;
    let mut out_fields = Vec::new();
    for o in &params.output_fields {
        let (i, _) = schema.field(o)?;
        out_fields.push(i);
    }
    Ok(Plan {
        field: fi,
        metric,
        index,
        params: params.clone(),
        filter,
        out_fields,
    })
}

fn collector(plan: &Plan) -> Collector {
    let p = &plan.params;
    let (mut max, mut excl) = (f64::INFINITY, false);
    if let Some(r) = p.radius {
        max = r;
        excl = true;
    }
    if let Some(c) = p.cutoff
        && (c < max || (c == max && excl))
    {
        // cutoff is inclusive; for `d <= c` vs `d < r`, keep the tighter one.
        if c < max {
            max = c;
            excl = false;
        }
    }
    Collector {
        k: p.k,
        heap: BinaryHeap::new(),
        max,
        min: p.range_filter.unwrap_or(f64::NEG_INFINITY),
        max_exclusive: excl,
    }
}

/// Searches every query of a request; queries run in parallel.
pub fn search(
    parts: &Parts<'_>,
    plan: &Plan,
    vectors: &[QueryVector],
) -> (Vec<Vec<Hit>>, SearchCounters) {
    if let Some(r) = search_hamming_batch(parts, plan, vectors) {
        return r;
    }
    let per: Vec<(Vec<Hit>, SearchCounters)> = if vectors.len() > 1 {
        vectors
            .par_iter()
            .map(|v| search_one(parts, plan, v))
            .collect()
    } else {
        vectors.iter().map(|v| search_one(parts, plan, v)).collect()
    };
    let mut total = SearchCounters::default();
    let hits = per
        .into_iter()
        .map(|(h, c)| {
            total.nodes += c.nodes;
            total.rows += c.rows;
            h
        })
        .collect();
    (hits, total)
}

fn search_one(parts: &Parts<'_>, plan: &Plan, v: &QueryVector) -> (Vec<Hit>, SearchCounters) {
    let mut col = collector(plan);
    let mut counters = SearchCounters::default();
    match v {
        QueryVector::Tlsh(d) => {
            let q = TlshQuery::new(*d, plan.metric == Metric::Tlsh);
            for (i, s) in parts.segments.iter().enumerate() {
                let tree = if plan.params.brute_force {
                    None
                } else {
                    s.seg.tree(plan.field)
                };
                match tree {
                    Some(t) => {
                        let mut sink = TreeSink {
                            col: &mut col,
                            part: &*s.seg,
                            dels: &s.dels,
                            filter: plan.filter.as_ref(),
                            order: t.order.as_ref().map(|o| o.as_slice()),
                            id: PartId::Seg(i),
                        };
                        let mut st = SearchStats::default();
                        tlsh_tree::search(
                            t.nodes.as_slice(),
                            t.bounds.as_slice(),
                            &t.records,
                            &q,
                            &mut sink,
                            &mut st,
                        );
                        counters.nodes += st.nodes;
                        counters.rows += st.rows;
                    }
                    None => {
                        if let Some(vs) = s.seg.vectors(plan.field) {
                            counters.rows += scan_tlsh(
                                &mut col,
                                &q,
                                vs,
                                0,
                                &*s.seg,
                                &s.dels,
                                plan,
                                PartId::Seg(i),
                            );
                        }
                    }
                }
            }
            for (i, m) in parts.mems.iter().enumerate() {
                for (base, chunk) in m.chunks() {
                    if let Some(vs) = chunk.vectors(plan.field) {
                        counters.rows +=
                            scan_tlsh(&mut col, &q, vs, base, m, &m.dels, plan, PartId::Mem(i));
                    }
                }
            }
        }
        QueryVector::Binary(q) => {
            for (i, s) in parts.segments.iter().enumerate() {
                let ivf = if plan.params.brute_force {
                    None
                } else {
                    s.seg.ivf(plan.field)
                };
                match (ivf, plan.index) {
                    (Some(ivf), IndexSpec::IvfFlat { nlist }) if !plan.metric.is_structure() => {
                        let nprobe = plan.params.nprobe.unwrap_or(8.min(nlist)) as usize;
                        counters.rows += scan_ivf(
                            &mut col,
                            q,
                            ivf,
                            nprobe,
                            &*s.seg,
                            &s.dels,
                            plan,
                            PartId::Seg(i),
                        );
                    }
                    _ => {
                        if let Some(vs) = s.seg.vectors(plan.field) {
                            counters.rows += scan_binary(
                                &mut col,
                                q,
                                vs,
                                0,
                                None,
                                &*s.seg,
                                &s.dels,
                                plan,
                                PartId::Seg(i),
                            );
                        }
                    }
                }
            }
            for (i, m) in parts.mems.iter().enumerate() {
                for (base, chunk) in m.chunks() {
                    if let Some(vs) = chunk.vectors(plan.field) {
                        counters.rows += scan_binary(
                            &mut col,
                            q,
                            vs,
                            base,
                            None,
                            m,
                            &m.dels,
                            plan,
                            PartId::Mem(i),
                        );
                    }
                }
            }
        }
    }
    (hits_of(parts, plan, col), counters)
}

/// The hits of a collector, sorted by (distance, key), with output fields.
fn hits_of(parts: &Parts<'_>, plan: &Plan, col: Collector) -> Vec<Hit> {
    let mut c: Vec<Cand> = col.heap.into_vec();
    c.sort();
    c.into_iter()
        .map(|c| {
            let (p, _) = part(parts, c.part);
            let fields = plan
                .out_fields
                .iter()
                .map(|&f| {
                    (
                        parts.schema.fields[f].name.clone(),
                        p.value(f, c.row).to_value(parts.schema.fields[f].ty),
                    )
                })
                .collect();
            Hit {
                key: c.key,
                distance: c.dist,
                fields,
            }
        })
        .collect()
}

struct TreeSink<'a> {
    col: &'a mut Collector,
    part: &'a dyn PartRead,
    dels: &'a DeleteSet,
    filter: Option<&'a Filter>,
    order: Option<&'a [u32]>,
    id: PartId,
}

impl TlshSink for TreeSink<'_> {
    fn bound(&self) -> u32 {
        self.col.bound_u32()
    }
    fn offer(&mut self, pos: u32, dist: u32) {
        let row = match self.order {
            Some(o) => match o.get(pos as usize) {
                Some(r) => *r,
                None => return,
            },
            None => pos,
        };
        let d = f64::from(dist);
        if !self.col.accepts(d) || self.dels.contains(row) {
            return;
        }
        let key = self.part.key(row);
        if !self.col.would_take(d, key) {
            return;
        }
        if let Some(f) = self.filter
            && !f.matches(self.part, row)
        {
            return;
        }
        self.col.push(d, key, self.id, row);
    }
}

#[allow(clippy::too_many_arguments)]
fn scan_tlsh(
    col: &mut Collector,
    q: &TlshQuery,
    vs: VectorSlice<'_>,
    base: u32,
    p: &dyn PartRead,
    dels: &DeleteSet,
    plan: &Plan,
    id: PartId,
) -> u64 {
    struct ScanSink<'a> {
        col: &'a mut Collector,
        present: Option<crate::rows::PresentBits<'a>>,
        base: u32,
        p: &'a dyn PartRead,
        dels: &'a DeleteSet,
        plan: &'a Plan,
        id: PartId,
    }
    impl TlshSink for ScanSink<'_> {
        fn bound(&self) -> u32 {
            self.col.bound_u32()
        }
        fn offer(&mut self, pos: u32, dist: u32) {
            if self.present.is_some_and(|pb| !pb.get(pos as usize)) {
                return;
            }
            offer(
                self.col,
                f64::from(dist),
                self.p,
                self.dels,
                self.plan,
                self.id,
                self.base + pos,
            );
        }
    }
    let mut sink = ScanSink {
        col,
        present: vs.present,
        base,
        p,
        dels,
        plan,
        id,
    };
    q.scan(vs.data, 0, &mut sink);
    (vs.data.len() / DIGEST_LEN) as u64
}

#[inline]
fn offer(
    col: &mut Collector,
    d: f64,
    p: &dyn PartRead,
    dels: &DeleteSet,
    plan: &Plan,
    id: PartId,
    row: u32,
) {
    if !col.accepts(d) || dels.contains(row) {
        return;
    }
    let key = p.key(row);
    if !col.would_take(d, key) {
        return;
    }
    if let Some(f) = &plan.filter
        && !f.matches(p, row)
    {
        return;
    }
    col.push(d, key, id, row);
}

#[allow(clippy::too_many_arguments)]
fn scan_binary(
    col: &mut Collector,
    q: &[u8],
    vs: VectorSlice<'_>,
    base: u32,
    order: Option<&[u32]>,
    p: &dyn PartRead,
    dels: &DeleteSet,
    plan: &Plan,
    id: PartId,
) -> u64 {
    let w = vs.width;
    let n = (vs.data.len() / w.max(1)) as u64;
    let row_of = |i: usize| -> u32 {
        match order {
            Some(o) => o.get(i).copied().unwrap_or(u32::MAX),
            None => base + i as u32,
        }
    };
    if plan.metric == Metric::Hamming {
        let on = |col: &mut Collector, i: usize, d: u32| {
            let row = row_of(i);
            if row != u32::MAX {
                offer(col, f64::from(d), p, dels, plan, id, row);
            }
        };
        if w == 0 || q.len() != w {
            return n;
        }
        // `d <= bound` as `d < limit`; `bound_u32` is at most u32::MAX - 1.
        let limit = col.bound_u32() + 1;
        simd_binary::scan(q, vs.data, limit, |i, d| {
            on(col, i, d);
            col.bound_u32() + 1
        });
        return n;
    }
    for (i, r) in vs.data.chunks_exact(w).enumerate() {
        let d = match plan.metric {
            Metric::Jaccard | Metric::Tanimoto => {
                let (a, o) = and_or_counts(q, r);
                let j = jaccard_from_counts(a, o);
                if plan.metric == Metric::Jaccard {
                    j
                } else {
                    tanimoto_from_jaccard(j)
                }
            }
            m => match binary_distance(m, q, r) {
                Some(d) => d,
                None => continue,
            },
        };
        if d <= col.bound() {
            let row = row_of(i);
            if row != u32::MAX {
                offer(col, d, p, dels, plan, id, row);
            }
        }
    }
    n
}

/// Bytes of rows scanned by every query group of a batch before the next
/// block (a block stays in L2 while the groups pass over it).
const BATCH_BLOCK_BYTES: usize = 256 * 1024;
/// Most queries a batch task scans together (a multiple of `LANES`).
const BATCH_TASK_MAX: usize = 256;

/// Hamming top-k of a batch whose every segment is scanned in full (FLAT,
/// or brute force): queries are split into tasks (run in parallel), and a
/// task reads each block of rows once for groups of `LANES` queries. Every
/// query still visits rows in the order of `search_one` with its own
/// collector, so the answers are those of `search_one`. `None` when the
/// request is not of that kind.
fn search_hamming_batch(
    parts: &Parts<'_>,
    plan: &Plan,
    vectors: &[QueryVector],
) -> Option<(Vec<Vec<Hit>>, SearchCounters)> {
    if vectors.len() < 2 || plan.metric != Metric::Hamming {
        return None;
    }
    let full_scan = |s: &SegView| {
        plan.params.brute_force
            || !matches!(plan.index, IndexSpec::IvfFlat { .. })
            || s.seg.ivf(plan.field).is_none()
    };
    if !parts.segments.iter().all(full_scan) {
        return None;
    }
    let qs: Vec<&[u8]> = vectors
        .iter()
        .map(|v| match v {
            QueryVector::Binary(b) => Some(b.as_slice()),
            QueryVector::Tlsh(_) => None,
        })
        .collect::<Option<_>>()?;
    let w = qs[0].len();
    if w == 0 || qs.iter().any(|q| q.len() != w) {
        return None;
    }
    // About four tasks a thread (stealing evens out a core that another
    // process slows), each a whole number of groups.
    let threads = rayon::current_num_threads().max(1);
    let task = qs
        .len()
        .div_ceil(4 * threads)
        .next_multiple_of(LANES)
        .min(BATCH_TASK_MAX);
    let per: Vec<(Vec<Vec<Hit>>, u64)> = if qs.len() > task {
        qs.par_chunks(task)
            .map(|t| hamming_batch_task(parts, plan, t))
            .collect()
    } else {
        vec![hamming_batch_task(parts, plan, &qs)]
    };
    let mut total = SearchCounters::default();
    let mut hits = Vec::with_capacity(qs.len());
    for (h, rows) in per {
        total.rows += rows;
        hits.extend(h);
    }
    Some((hits, total))
}

/// One task of `search_hamming_batch`: hits per query and rows compared.
fn hamming_batch_task(parts: &Parts<'_>, plan: &Plan, qs: &[&[u8]]) -> (Vec<Vec<Hit>>, u64) {
    let mut cols: Vec<Collector> = qs.iter().map(|_| collector(plan)).collect();
    let mut rows = 0u64;
    for (i, s) in parts.segments.iter().enumerate() {
        if let Some(vs) = s.seg.vectors(plan.field) {
            rows +=
                scan_hamming_group(&mut cols, qs, vs, 0, &*s.seg, &s.dels, plan, PartId::Seg(i));
        }
    }
    for (i, m) in parts.mems.iter().enumerate() {
        for (base, chunk) in m.chunks() {
            if let Some(vs) = chunk.vectors(plan.field) {
                rows +=
                    scan_hamming_group(&mut cols, qs, vs, base, m, &m.dels, plan, PartId::Mem(i));
            }
        }
    }
    let hits = cols.into_iter().map(|c| hits_of(parts, plan, c)).collect();
    (hits, rows)
}

/// Hamming scan of one part for many queries (`cols[j]` is query `j`'s
/// collector): block by block of rows, group by group of queries. Returns
/// the rows compared, summed over queries.
#[allow(clippy::too_many_arguments)]
fn scan_hamming_group(
    cols: &mut [Collector],
    qs: &[&[u8]],
    vs: VectorSlice<'_>,
    base: u32,
    p: &dyn PartRead,
    dels: &DeleteSet,
    plan: &Plan,
    id: PartId,
) -> u64 {
    let w = vs.width;
    if w == 0 {
        return 0;
    }
    let n = vs.data.len() / w;
    let block = (BATCH_BLOCK_BYTES / w).max(1);
    for (bi, data) in vs.data[..n * w].chunks(block * w).enumerate() {
        let start = base + (bi * block) as u32;
        for (qg, cg) in qs.chunks(LANES).zip(cols.chunks_mut(LANES)) {
            let mut limits = [0u32; LANES];
            for (l, c) in limits.iter_mut().zip(cg.iter()) {
                // `d <= bound` as `d < limit`; `bound_u32` is at most u32::MAX - 1.
                *l = c.bound_u32() + 1;
            }
            simd_binary::scan_group(qg, data, &mut limits, |l, i, d| {
                let c = &mut cg[l];
                offer(c, f64::from(d), p, dels, plan, id, start + i as u32);
                c.bound_u32() + 1
            });
        }
    }
    (n * qs.len()) as u64
}

#[allow(clippy::too_many_arguments)]
fn scan_ivf(
    col: &mut Collector,
    q: &[u8],
    ivf: &crate::segment::IvfData,
    nprobe: usize,
    p: &dyn PartRead,
    dels: &DeleteSet,
    plan: &Plan,
    id: PartId,
) -> u64 {
    let w = q.len();
    let cents = ivf.centroids.as_slice();
    let lists = if plan.metric == Metric::Hamming && w > 0 {
        nearest_lists_hamming(q, cents, nprobe)
    } else {
        let mut cd: Vec<(f64, usize)> = cents
            .chunks_exact(w.max(1))
            .enumerate()
            .map(|(i, c)| {
                (
                    binary_distance(plan.metric, q, c).unwrap_or(f64::INFINITY),
                    i,
                )
            })
            .collect();
        let np = nprobe.min(cd.len());
        if np < cd.len() {
            cd.select_nth_unstable_by(np, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            cd.truncate(np);
        }
        cd.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        cd.into_iter().map(|(_, l)| l).collect()
    };
    let offs = ivf.offsets.as_slice();
    let order = ivf.order.as_ref().map(|o| o.as_slice());
    let mut n = 0;
    for l in lists {
        let (s, e) = (
            offs.get(l).copied().unwrap_or(0) as usize,
            offs.get(l + 1).copied().unwrap_or(0) as usize,
        );
        let Some(data) = ivf.vectors.get(s * w..e * w) else {
            continue;
        };
        let vs = VectorSlice {
            width: w,
            data,
            present: None,
        };
        let sub_order = order.and_then(|o| o.get(s..e));
        n += scan_binary(col, q, vs, s as u32, sub_order, p, dels, plan, id);
    }
    n
}

/// The `nprobe` centroids nearest to `q` by Hamming distance, sorted by
/// (distance, list number), as a sort of all centroids by that order would
/// give them.
fn nearest_lists_hamming(q: &[u8], cents: &[u8], nprobe: usize) -> Vec<usize> {
    let nlist = cents.len() / q.len();
    let np = nprobe.min(nlist);
    if np == 0 {
        return Vec::new();
    }
    if np <= 64 {
        // Sorted (distance, list) of the best so far; a later list at the
        // worst kept distance sorts after it, so the limit is that distance.
        let mut best: Vec<(u32, u32)> = Vec::with_capacity(np + 1);
        simd_binary::scan(q, cents, u32::MAX, |i, d| {
            let at = best.partition_point(|&(bd, _)| bd <= d);
            best.insert(at, (d, i as u32));
            best.truncate(np);
            if best.len() == np {
                best[np - 1].0
            } else {
                u32::MAX
            }
        });
        return best.into_iter().map(|(_, l)| l as usize).collect();
    }
    let mut all: Vec<u64> = Vec::with_capacity(nlist);
    simd_binary::scan(q, cents, u32::MAX, |i, d| {
        all.push(u64::from(d) << 32 | i as u64);
        u32::MAX
    });
    if np < all.len() {
        all.select_nth_unstable(np);
        all.truncate(np);
    }
    all.sort_unstable();
    all.into_iter()
        .map(|x| (x & 0xffff_ffff) as usize)
        .collect()
}

/// Rows matching a filter (or all rows), sorted by key, for `query`.
pub fn query(
    parts: &Parts<'_>,
    filter: Option<&Filter>,
    out_fields: &[usize],
    limit: usize,
    offset: usize,
) -> Vec<(String, BTreeMap<String, Value>)> {
    let mut found: Vec<(String, PartId, u32)> = Vec::new();
    let mut visit = |p: &dyn PartRead, dels: &DeleteSet, id: PartId| {
        for row in 0..p.num_rows() {
            if dels.contains(row) {
                continue;
            }
            if filter.is_none_or(|f| f.matches(p, row)) {
                found.push((p.key(row).to_string(), id, row));
            }
        }
    };
    for (i, s) in parts.segments.iter().enumerate() {
        visit(&*s.seg, &s.dels, PartId::Seg(i));
    }
    for (i, m) in parts.mems.iter().enumerate() {
        visit(m, &m.dels, PartId::Mem(i));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|(k, id, row)| {
            let (p, _) = part(parts, id);
            let fields = out_fields
                .iter()
                .map(|&f| {
                    (
                        parts.schema.fields[f].name.clone(),
                        p.value(f, row).to_value(parts.schema.fields[f].ty),
                    )
                })
                .collect();
            (k, fields)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_prefix_order_agrees_with_key_order() {
        let keys = [
            "",
            "\0",
            "\0\0",
            "a",
            "a\0",
            "a\0b",
            "ab",
            "abcdefgh",
            "abcdefgh\0",
            "abcdefghi",
            "abcdefgi",
            "abcdefg",
            "b",
            "é",
            "zzzzzzzzzz",
            "\u{7f}",
            "\u{ff}",
        ];
        for a in keys {
            for b in keys {
                let (pa, pb) = (key_prefix(a), key_prefix(b));
                if a < b {
                    assert!(pa <= pb, "{a:?} {b:?}");
                }
                assert_eq!(pa.cmp(&pb).then_with(|| a.cmp(b)), a.cmp(b), "{a:?} {b:?}");
            }
        }
    }
}
