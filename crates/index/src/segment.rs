//! Immutable segments: a container file (see `apksift_storage::container`)
//! holding one collection's rows column by column, a key index (sorted key
//! hashes with a 16-bit radix table and a split-block Bloom filter), and the
//! vector indexes (TLSH tree, IVF lists). Rows are ordered by the primary
//! vector field's index so that a tree leaf or an IVF list is one contiguous
//! run of rows. The byte layout is in `docs/FORMAT.md`.

use std::sync::Arc;

use apksift_storage::container::{ContainerReader, ContainerWriter};
use apksift_storage::{Directory, OwnedBytes};
use apksift_tlsh::DIGEST_LEN;
use serde::{Deserialize, Serialize};

use crate::ivf::{self, Ivf};
use crate::memtable::key_hash;
use crate::pod::PodArray;
use crate::rows::{BitVec, ColBuf, PartRead, PresentBits, RowsBuf, ValueRef, VectorSlice};
use crate::schema::{FieldType, IndexSpec, Schema};
use crate::tlsh_tree::{self, Node, NodeBounds};
use crate::{Error, Result};

/// Container kind of segment files ("SEGM").
pub const SEGMENT_KIND: u32 = 0x4D47_4553;
/// Current segment format version.
pub const SEGMENT_VERSION: u32 = 1;
/// Oldest segment format version this build reads.
pub const SEGMENT_OLDEST_VERSION: u32 = 1;

const S_META: u32 = 0x01;
const S_KEY_ENDS: u32 = 0x02;
const S_KEY_DATA: u32 = 0x03;
const S_KEY_HASHES: u32 = 0x04;
const S_KEY_ROWS: u32 = 0x05;
const S_KEY_RADIX: u32 = 0x06;
const S_BLOOM: u32 = 0x07;

const F_DATA: u32 = 0x00;
const F_PRESENT: u32 = 0x01;
const F_STR_ENDS: u32 = 0x02;
const F_TREE_NODES: u32 = 0x10;
const F_TREE_ORDER: u32 = 0x11;
const F_TREE_RECORDS: u32 = 0x12;
const F_TREE_BOUNDS: u32 = 0x13;
const F_IVF_CENTROIDS: u32 = 0x20;
const F_IVF_OFFSETS: u32 = 0x21;
const F_IVF_ORDER: u32 = 0x22;
const F_IVF_VECTORS: u32 = 0x23;

fn fsec(field: usize, kind: u32) -> u32 {
    ((field as u32 + 1) << 8) | kind
}

const RADIX_BITS: u32 = 16;
const BLOOM_BITS_PER_KEY: usize = 10;

/// What the META section says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// Segment format version.
    pub format: u32,
    /// Segment id.
    pub id: u64,
    /// Collection id.
    pub collection: u32,
    /// Rows.
    pub rows: u32,
    /// Field that orders the rows, if any.
    pub primary_field: Option<usize>,
    /// Per field.
    pub fields: Vec<FieldMeta>,
}

/// Per-field facts of a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldMeta {
    /// Field name.
    pub name: String,
    /// Field type.
    pub ty: FieldType,
    /// Rows where the field is present.
    pub present: u32,
    /// Index built for the field.
    pub index: IndexSpec,
}

/// File name of a segment.
pub fn file_name(collection: u32, id: u64) -> String {
    format!("seg-{collection:08x}-{id:016x}.seg")
}

/// Parses a segment file name into (collection, segment id).
pub fn parse_file_name(name: &str) -> Option<(u32, u64)> {
    let rest = name.strip_prefix("seg-")?.strip_suffix(".seg")?;
    let (c, id) = rest.split_once('-')?;
    if c.len() != 8 || id.len() != 16 {
        return None;
    }
    Some((
        u32::from_str_radix(c, 16).ok()?,
        u64::from_str_radix(id, 16).ok()?,
    ))
}

/// Writes a segment from `rows`; returns (file size, order) where
/// `order[position] = input row`.
pub fn write(
    dir: &dyn Directory,
    schema: &Schema,
    collection: u32,
    id: u64,
    rows: &RowsBuf,
    seed: u64,
) -> Result<(u64, Vec<u32>)> {
    let n = rows.len();
    if n > u32::MAX as usize - 1 {
        return Err(Error::invalid("segment too large"));
    }
    let primary = schema.primary_vector_field();
    // 1. Row order from the primary field's index.
    let mut primary_tree: Option<tlsh_tree::Tree> = None;
    let mut primary_ivf: Option<(Ivf, Vec<u64>)> = None;
    let order: Vec<u32> = match primary.map(|p| (p, schema.fields[p].index_spec(), &rows.cols[p])) {
        Some((_, IndexSpec::TlshTree { leaf_size }, ColBuf::Vector { data, present, .. })) => {
            let ids: Vec<u32> = (0..n as u32).filter(|&r| present.get(r as usize)).collect();
            let tree = tlsh_tree::build(data, ids, leaf_size as usize, seed);
            let mut order = tree.order.clone();
            order.extend((0..n as u32).filter(|&r| !present.get(r as usize)));
            primary_tree = Some(tree);
            order
        }
        Some((_, IndexSpec::IvfFlat { nlist }, ColBuf::Vector { data, width, .. })) => {
            let ivf = Ivf::train(data, *width, nlist as usize, seed);
            let assign = ivf.assign(data);
            let (order, offs) = ivf::lists(&assign, ivf.nlist);
            primary_ivf = Some((ivf, offs));
            order
        }
        _ => (0..n as u32).collect(),
    };

    let name = file_name(collection, id);
    let mut w = ContainerWriter::create(dir, &name, SEGMENT_KIND, SEGMENT_VERSION)?;

    // 2. Keys.
    let mut key_ends = Vec::with_capacity(n);
    let mut key_data = Vec::with_capacity(rows.keys.data.len());
    let mut hashes: Vec<(u64, u32)> = Vec::with_capacity(n);
    for (pos, &r) in order.iter().enumerate() {
        let k = rows.keys.get_bytes(r as usize);
        key_data.extend_from_slice(k);
        key_ends.push(key_data.len() as u64);
        hashes.push((key_hash(std::str::from_utf8(k).unwrap_or("")), pos as u32));
    }
    w.section(S_KEY_ENDS, bytemuck::cast_slice(&key_ends))?;
    w.section(S_KEY_DATA, &key_data)?;
    drop(key_data);
    hashes.sort_unstable();
    let hs: Vec<u64> = hashes.iter().map(|h| h.0).collect();
    let rs: Vec<u32> = hashes.iter().map(|h| h.1).collect();
    let mut radix = vec![0u32; (1 << RADIX_BITS) + 1];
    for h in &hs {
        radix[(h >> (64 - RADIX_BITS)) as usize + 1] += 1;
    }
    for i in 0..(1 << RADIX_BITS) {
        radix[i + 1] += radix[i];
    }
    w.section(S_KEY_HASHES, bytemuck::cast_slice(&hs))?;
    w.section(S_KEY_ROWS, bytemuck::cast_slice(&rs))?;
    w.section(S_KEY_RADIX, bytemuck::cast_slice(&radix))?;
    w.section(S_BLOOM, &bloom_build(&hs))?;
    drop((hs, rs, radix, hashes));

    // 3. Columns, permuted.
    let mut fields = Vec::with_capacity(schema.fields.len());
    for (fi, f) in schema.fields.iter().enumerate() {
        let col = &rows.cols[fi];
        let present_count;
        match col {
            ColBuf::Vector {
                width,
                data,
                present,
            } => {
                let mut out = Vec::with_capacity(n * width);
                let mut pbits = BitVec::new();
                for &r in &order {
                    let r = r as usize;
                    out.extend_from_slice(data.get(r * width..(r + 1) * width).unwrap_or(&[]));
                    pbits.push(present.get(r));
                }
                present_count = pbits.count_ones() as u32;
                w.section(fsec(fi, F_DATA), &out)?;
                w.section(fsec(fi, F_PRESENT), &pbits.to_bytes())?;
                // Index sections.
                let spec = f.index_spec();
                match spec {
                    IndexSpec::TlshTree { leaf_size } => {
                        if Some(fi) == primary {
                            let tree = primary_tree.take().unwrap_or_default();
                            // Positions of the primary tree are the segment rows themselves.
                            let mut nodes = tree.nodes;
                            renumber_identity(&mut nodes);
                            w.section(fsec(fi, F_TREE_NODES), bytemuck::cast_slice(&nodes))?;
                            w.section(fsec(fi, F_TREE_BOUNDS), bytemuck::cast_slice(&tree.bounds))?;
                        } else {
                            let ids: Vec<u32> =
                                (0..n as u32).filter(|&p| pbits.get(p as usize)).collect();
                            let tree =
                                tlsh_tree::build(&out, ids, leaf_size as usize, seed ^ fi as u64);
                            let recs: Vec<u8> = tree
                                .order
                                .iter()
                                .flat_map(|&p| {
                                    out.get(p as usize * DIGEST_LEN..(p as usize + 1) * DIGEST_LEN)
                                        .unwrap_or(&[])
                                        .to_vec()
                                })
                                .collect();
                            w.section(fsec(fi, F_TREE_NODES), bytemuck::cast_slice(&tree.nodes))?;
                            w.section(fsec(fi, F_TREE_BOUNDS), bytemuck::cast_slice(&tree.bounds))?;
                            w.section(fsec(fi, F_TREE_ORDER), bytemuck::cast_slice(&tree.order))?;
                            w.section(fsec(fi, F_TREE_RECORDS), &recs)?;
                        }
                    }
                    IndexSpec::IvfFlat { nlist } => {
                        if Some(fi) == primary {
                            let (ivf, offs) = primary_ivf.take().unwrap_or_else(|| {
                                (
                                    Ivf {
                                        width: *width,
                                        centroids: vec![0; *width],
                                        nlist: 1,
                                    },
                                    vec![0, n as u64],
                                )
                            });
                            w.section(fsec(fi, F_IVF_CENTROIDS), &ivf.centroids)?;
                            w.section(fsec(fi, F_IVF_OFFSETS), bytemuck::cast_slice(&offs))?;
                        } else {
                            let ivf = Ivf::train(&out, *width, nlist as usize, seed ^ fi as u64);
                            let assign = ivf.assign(&out);
                            let (lorder, offs) = ivf::lists(&assign, ivf.nlist);
                            let vecs: Vec<u8> = lorder
                                .iter()
                                .flat_map(|&p| {
                                    out.get(p as usize * width..(p as usize + 1) * width)
                                        .unwrap_or(&[])
                                        .to_vec()
                                })
                                .collect();
                            w.section(fsec(fi, F_IVF_CENTROIDS), &ivf.centroids)?;
                            w.section(fsec(fi, F_IVF_OFFSETS), bytemuck::cast_slice(&offs))?;
                            w.section(fsec(fi, F_IVF_ORDER), bytemuck::cast_slice(&lorder))?;
                            w.section(fsec(fi, F_IVF_VECTORS), &vecs)?;
                        }
                    }
                    IndexSpec::Flat => {}
                }
            }
            ColBuf::Str { values, present } => {
                let mut ends = Vec::with_capacity(n);
                let mut data = Vec::new();
                let mut pbits = BitVec::new();
                for &r in &order {
                    data.extend_from_slice(values.get_bytes(r as usize));
                    ends.push(data.len() as u64);
                    pbits.push(present.get(r as usize));
                }
                present_count = pbits.count_ones() as u32;
                w.section(fsec(fi, F_STR_ENDS), bytemuck::cast_slice(&ends))?;
                w.section(fsec(fi, F_DATA), &data)?;
                w.section(fsec(fi, F_PRESENT), &pbits.to_bytes())?;
            }
            ColBuf::Int { values, present } => {
                let mut out = Vec::with_capacity(n);
                let mut pbits = BitVec::new();
                for &r in &order {
                    out.push(values.get(r as usize).copied().unwrap_or(0));
                    pbits.push(present.get(r as usize));
                }
                present_count = pbits.count_ones() as u32;
                w.section(fsec(fi, F_DATA), bytemuck::cast_slice(&out))?;
                w.section(fsec(fi, F_PRESENT), &pbits.to_bytes())?;
            }
            ColBuf::Bool { values, present } => {
                let mut out = BitVec::new();
                let mut pbits = BitVec::new();
                for &r in &order {
                    out.push(values.get(r as usize));
                    pbits.push(present.get(r as usize));
                }
                present_count = pbits.count_ones() as u32;
                w.section(fsec(fi, F_DATA), &out.to_bytes())?;
                w.section(fsec(fi, F_PRESENT), &pbits.to_bytes())?;
            }
        }
        fields.push(FieldMeta {
            name: f.name.clone(),
            ty: f.ty,
            present: present_count,
            index: if f.ty.is_vector() {
                f.index_spec()
            } else {
                IndexSpec::Flat
            },
        });
    }
    let meta = SegmentMeta {
        format: SEGMENT_VERSION,
        id,
        collection,
        rows: n as u32,
        primary_field: primary,
        fields,
    };
    let meta_json = serde_json::to_vec(&meta).map_err(|e| Error::invalid(e.to_string()))?;
    w.section(S_META, &meta_json)?;
    let len = w.finish()?;
    Ok((len, order))
}

/// Tree node positions already equal segment rows for the primary field.
fn renumber_identity(_nodes: &mut [Node]) {}

fn bloom_build(hashes: &[u64]) -> Vec<u8> {
    let mut words = vec![0u32; crate::sbbf::blocks_for(hashes.len(), BLOOM_BITS_PER_KEY) * 8];
    for &h in hashes {
        crate::sbbf::insert(&mut words, h);
    }
    bytemuck::cast_slice(&words).to_vec()
}

/// Bytes of a present-bits section.
#[derive(Debug, Clone)]
enum Present {
    All,
    Bits(OwnedBytes),
}

impl Present {
    #[inline]
    fn get(&self, i: usize) -> bool {
        match self {
            Present::All => true,
            Present::Bits(b) => b.get(i / 8).is_some_and(|x| x >> (i % 8) & 1 == 1),
        }
    }
}

/// A TLSH tree as stored.
#[derive(Debug, Clone)]
pub struct TreeData {
    /// Nodes.
    pub nodes: PodArray<Node>,
    /// The nodes' [`NodeBounds`] (section TREE_BOUNDS; derived from the
    /// nodes when a segment written before that section was added is opened).
    pub bounds: PodArray<NodeBounds>,
    /// Position → row (None: positions are rows).
    pub order: Option<PodArray<u32>>,
    /// Digests in position order.
    pub records: OwnedBytes,
}

/// An IVF as stored.
#[derive(Debug, Clone)]
pub struct IvfData {
    /// Centroids.
    pub centroids: OwnedBytes,
    /// List offsets (`nlist + 1`).
    pub offsets: PodArray<u64>,
    /// Position → row (None: positions are rows).
    pub order: Option<PodArray<u32>>,
    /// Vectors in position order.
    pub vectors: OwnedBytes,
}

#[derive(Debug, Clone)]
enum FieldData {
    Vector {
        width: usize,
        data: OwnedBytes,
        present: Present,
        tree: Option<Box<TreeData>>,
        ivf: Option<Box<IvfData>>,
    },
    Str {
        ends: PodArray<u64>,
        data: OwnedBytes,
        present: Present,
    },
    Int {
        values: PodArray<i64>,
        present: Present,
    },
    Bool {
        values: OwnedBytes,
        present: Present,
    },
}

/// An open segment.
#[derive(Debug, Clone)]
pub struct Segment {
    name: String,
    meta: SegmentMeta,
    container: ContainerReader,
    key_ends: PodArray<u64>,
    key_data: OwnedBytes,
    key_hashes: PodArray<u64>,
    key_rows: PodArray<u32>,
    radix: PodArray<u32>,
    bloom: PodArray<u32>,
    fields: Vec<FieldData>,
}

fn arr<T: bytemuck::Pod>(c: &ContainerReader, id: u32, want: Option<usize>) -> Result<PodArray<T>> {
    let b = c.section(id)?;
    let a =
        PodArray::new(b).ok_or_else(|| corrupt(c, id, "length is not a whole number of items"))?;
    if let Some(w) = want
        && a.as_slice().len() != w
    {
        return Err(corrupt(
            c,
            id,
            &format!("{} items, expected {w}", a.as_slice().len()),
        ));
    }
    Ok(a)
}

fn corrupt(c: &ContainerReader, id: u32, why: &str) -> Error {
    Error::Storage(apksift_storage::Error::corrupt(
        c.name(),
        0,
        format!("section {id:#x}: {why}"),
    ))
}

impl Segment {
    /// Opens a segment, checking its footer, table, META and structural sizes
    /// (big sections are checksummed by [`Segment::verify`]).
    pub fn open(dir: &dyn Directory, name: &str, schema: &Schema) -> Result<Arc<Segment>> {
        let c = ContainerReader::open(
            dir,
            name,
            SEGMENT_KIND,
            SEGMENT_OLDEST_VERSION,
            SEGMENT_VERSION,
        )?;
        let meta: SegmentMeta = serde_json::from_slice(&c.section_checked(S_META)?)
            .map_err(|e| corrupt(&c, S_META, &format!("bad META: {e}")))?;
        let n = meta.rows as usize;
        if meta.fields.len() != schema.fields.len()
            || meta
                .fields
                .iter()
                .zip(&schema.fields)
                .any(|(m, f)| m.name != f.name || m.ty != f.ty)
        {
            return Err(corrupt(
                &c,
                S_META,
                "fields differ from the collection schema",
            ));
        }
        let key_ends = arr::<u64>(&c, S_KEY_ENDS, Some(n))?;
        let key_data = c.section(S_KEY_DATA)?;
        if key_ends.as_slice().last().copied().unwrap_or(0) != key_data.len() as u64 {
            return Err(corrupt(
                &c,
                S_KEY_ENDS,
                "key offsets do not match the key data",
            ));
        }
        let key_hashes = arr::<u64>(&c, S_KEY_HASHES, Some(n))?;
        let key_rows = arr::<u32>(&c, S_KEY_ROWS, Some(n))?;
        let radix_bytes = c.section_checked(S_KEY_RADIX)?;
        let radix = PodArray::<u32>::new(radix_bytes)
            .ok_or_else(|| corrupt(&c, S_KEY_RADIX, "bad radix"))?;
        if radix.as_slice().len() != (1 << RADIX_BITS) + 1
            || radix.as_slice().last().copied() != Some(n as u32)
        {
            return Err(corrupt(
                &c,
                S_KEY_RADIX,
                "radix table does not cover the rows",
            ));
        }
        let bloom = arr::<u32>(&c, S_BLOOM, None)?;
        if bloom.as_slice().is_empty() || bloom.as_slice().len() % 8 != 0 {
            return Err(corrupt(&c, S_BLOOM, "bad Bloom filter size"));
        }
        let mut fields = Vec::with_capacity(meta.fields.len());
        for (fi, fm) in meta.fields.iter().enumerate() {
            let present = if fm.present as usize == n {
                Present::All
            } else {
                let b = c.section(fsec(fi, F_PRESENT))?;
                if b.len() != n.div_ceil(8) {
                    return Err(corrupt(&c, fsec(fi, F_PRESENT), "wrong size"));
                }
                Present::Bits(b)
            };
            fields.push(match fm.ty {
                FieldType::BinaryVector { .. } | FieldType::Tlsh => {
                    let width = fm.ty.vector_bytes().unwrap_or(0);
                    let data = c.section(fsec(fi, F_DATA))?;
                    if data.len() != n * width {
                        return Err(corrupt(&c, fsec(fi, F_DATA), "vector data size"));
                    }
                    let mut tree = None;
                    let mut ivf = None;
                    match fm.index {
                        IndexSpec::TlshTree { .. } => {
                            let nodes = arr::<Node>(&c, fsec(fi, F_TREE_NODES), None)?;
                            let positions = if meta.primary_field == Some(fi) {
                                n
                            } else {
                                fm.present as usize
                            };
                            tlsh_tree::check_shape(nodes.as_slice(), positions)
                                .map_err(|e| corrupt(&c, fsec(fi, F_TREE_NODES), &e))?;
                            let bounds = if c.has_section(fsec(fi, F_TREE_BOUNDS)) {
                                arr::<NodeBounds>(
                                    &c,
                                    fsec(fi, F_TREE_BOUNDS),
                                    Some(nodes.as_slice().len()),
                                )?
                            } else {
                                PodArray::from_vec(tlsh_tree::node_bounds(nodes.as_slice()))
                            };
                            if meta.primary_field == Some(fi) {
                                tree = Some(Box::new(TreeData {
                                    nodes,
                                    bounds,
                                    order: None,
                                    records: data.clone(),
                                }));
                            } else {
                                let order = arr::<u32>(
                                    &c,
                                    fsec(fi, F_TREE_ORDER),
                                    Some(fm.present as usize),
                                )?;
                                let records = c.section(fsec(fi, F_TREE_RECORDS))?;
                                if records.len() != fm.present as usize * DIGEST_LEN {
                                    return Err(corrupt(&c, fsec(fi, F_TREE_RECORDS), "size"));
                                }
                                tree = Some(Box::new(TreeData {
                                    nodes,
                                    bounds,
                                    order: Some(order),
                                    records,
                                }));
                            }
                        }
                        IndexSpec::IvfFlat { .. } => {
                            let centroids = c.section(fsec(fi, F_IVF_CENTROIDS))?;
                            if width == 0 || centroids.len() % width != 0 {
                                return Err(corrupt(&c, fsec(fi, F_IVF_CENTROIDS), "size"));
                            }
                            let nlist = centroids.len() / width;
                            let offsets = arr::<u64>(&c, fsec(fi, F_IVF_OFFSETS), Some(nlist + 1))?;
                            if offsets.as_slice().last().copied() != Some(n as u64)
                                || offsets.as_slice().windows(2).any(|w| w[0] > w[1])
                            {
                                return Err(corrupt(&c, fsec(fi, F_IVF_OFFSETS), "offsets"));
                            }
                            if meta.primary_field == Some(fi) {
                                ivf = Some(Box::new(IvfData {
                                    centroids,
                                    offsets,
                                    order: None,
                                    vectors: data.clone(),
                                }));
                            } else {
                                let order = arr::<u32>(&c, fsec(fi, F_IVF_ORDER), Some(n))?;
                                let vectors = c.section(fsec(fi, F_IVF_VECTORS))?;
                                ivf = Some(Box::new(IvfData {
                                    centroids,
                                    offsets,
                                    order: Some(order),
                                    vectors,
                                }));
                            }
                        }
                        IndexSpec::Flat => {}
                    }
                    FieldData::Vector {
                        width,
                        data,
                        present,
                        tree,
                        ivf,
                    }
                }
                FieldType::String { .. } => {
                    let ends = arr::<u64>(&c, fsec(fi, F_STR_ENDS), Some(n))?;
                    let data = c.section(fsec(fi, F_DATA))?;
                    if ends.as_slice().last().copied().unwrap_or(0) != data.len() as u64 {
                        return Err(corrupt(&c, fsec(fi, F_STR_ENDS), "string offsets"));
                    }
                    FieldData::Str {
                        ends,
                        data,
                        present,
                    }
                }
                FieldType::Int => FieldData::Int {
                    values: arr::<i64>(&c, fsec(fi, F_DATA), Some(n))?,
                    present,
                },
                FieldType::Bool => {
                    let values = c.section(fsec(fi, F_DATA))?;
                    if values.len() != n.div_ceil(8) {
                        return Err(corrupt(&c, fsec(fi, F_DATA), "size"));
                    }
                    FieldData::Bool { values, present }
                }
            });
        }
        Ok(Arc::new(Segment {
            name: name.to_string(),
            meta,
            container: c,
            key_ends,
            key_data,
            key_hashes,
            key_rows,
            radix,
            bloom,
            fields,
        }))
    }

    /// Checks every section checksum.
    pub fn verify(&self) -> Result<()> {
        Ok(self.container.verify_all()?)
    }

    /// File name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Segment id.
    pub fn id(&self) -> u64 {
        self.meta.id
    }

    /// Metadata.
    pub fn meta(&self) -> &SegmentMeta {
        &self.meta
    }

    /// File size.
    pub fn file_len(&self) -> u64 {
        self.container.file_len()
    }

    /// The row holding `key`, if any.
    pub fn find(&self, key: &str) -> Option<u32> {
        self.find_hashed(key, key_hash(key))
    }

    /// The sorted key hashes of every row.
    pub fn key_hashes(&self) -> &[u64] {
        self.key_hashes.as_slice()
    }

    /// True when the Bloom filter says `h` may be in this segment.
    #[inline]
    pub fn may_contain(&self, h: u64) -> bool {
        crate::sbbf::may_contain(self.bloom.as_slice(), h)
    }

    /// [`Segment::find`] with the key's hash already computed.
    pub fn find_hashed(&self, key: &str, h: u64) -> Option<u32> {
        if !self.may_contain(h) {
            return None;
        }
        let t = (h >> (64 - RADIX_BITS)) as usize;
        let radix = self.radix.as_slice();
        let (lo, hi) = (
            radix.get(t).copied()? as usize,
            radix.get(t + 1).copied()? as usize,
        );
        let hashes = self.key_hashes.as_slice().get(lo..hi)?;
        let rows = self.key_rows.as_slice().get(lo..hi)?;
        let start = hashes.partition_point(|&x| x < h);
        for (hh, &r) in hashes.iter().zip(rows).skip(start) {
            if *hh != h {
                break;
            }
            if self.key(r) == key {
                return Some(r);
            }
        }
        None
    }

    /// The TLSH tree of a field.
    pub fn tree(&self, field: usize) -> Option<&TreeData> {
        match self.fields.get(field)? {
            FieldData::Vector { tree, .. } => tree.as_deref(),
            _ => None,
        }
    }

    /// The IVF of a field.
    pub fn ivf(&self, field: usize) -> Option<&IvfData> {
        match self.fields.get(field)? {
            FieldData::Vector { ivf, .. } => ivf.as_deref(),
            _ => None,
        }
    }
}

impl PartRead for Segment {
    fn num_rows(&self) -> u32 {
        self.meta.rows
    }

    fn key(&self, row: u32) -> &str {
        let ends = self.key_ends.as_slice();
        let r = row as usize;
        let start = if r == 0 {
            0
        } else {
            ends.get(r - 1).copied().unwrap_or(0) as usize
        };
        let end = ends.get(r).copied().unwrap_or(0) as usize;
        self.key_data
            .get(start..end)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    fn value(&self, field: usize, row: u32) -> ValueRef<'_> {
        let r = row as usize;
        match self.fields.get(field) {
            Some(FieldData::Vector {
                width,
                data,
                present,
                ..
            }) => {
                if present.get(r) {
                    data.get(r * width..(r + 1) * width)
                        .map_or(ValueRef::Null, ValueRef::Bytes)
                } else {
                    ValueRef::Null
                }
            }
            Some(FieldData::Str {
                ends,
                data,
                present,
            }) => {
                if !present.get(r) {
                    return ValueRef::Null;
                }
                let e = ends.as_slice();
                let start = if r == 0 {
                    0
                } else {
                    e.get(r - 1).copied().unwrap_or(0) as usize
                };
                let end = e.get(r).copied().unwrap_or(0) as usize;
                data.get(start..end)
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .map_or(ValueRef::Null, ValueRef::Str)
            }
            Some(FieldData::Int { values, present }) => {
                if present.get(r) {
                    values
                        .as_slice()
                        .get(r)
                        .copied()
                        .map_or(ValueRef::Null, ValueRef::Int)
                } else {
                    ValueRef::Null
                }
            }
            Some(FieldData::Bool { values, present }) => {
                if present.get(r) {
                    ValueRef::Bool(values.get(r / 8).is_some_and(|x| x >> (r % 8) & 1 == 1))
                } else {
                    ValueRef::Null
                }
            }
            None => ValueRef::Null,
        }
    }

    fn vectors(&self, field: usize) -> Option<VectorSlice<'_>> {
        match self.fields.get(field)? {
            FieldData::Vector {
                width,
                data,
                present,
                ..
            } => Some(VectorSlice {
                width: *width,
                data,
                present: match present {
                    Present::All => None,
                    Present::Bits(b) => Some(PresentBits::Bytes(b)),
                },
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::FieldSchema;
    use crate::value::{Column, NormBatch};
    use apksift_storage::MemDirectory;

    #[test]
    fn segment_key_index_and_bloom_false_positive_rate() {
        let schema = Schema::new(
            "id",
            vec![FieldSchema::new("v", FieldType::BinaryVector { dim: 8 })],
        );
        let n = 100_000;
        let b = NormBatch {
            keys: (0..n).map(|i| i.to_string()).collect(),
            columns: vec![Column::Binary(vec![7u8; n])],
        };
        let mut rows = RowsBuf::new(&schema);
        for i in 0..n {
            rows.push_batch_row(&b, i);
        }
        let dir = MemDirectory::new();
        write(&dir, &schema, 1, 1, &rows, 1).unwrap();
        let seg = Segment::open(&dir, &file_name(1, 1), &schema).unwrap();
        for i in (0..n).step_by(97) {
            let k = i.to_string();
            let r = seg.find(&k).unwrap();
            assert_eq!(seg.key(r), k);
        }
        let fp = (n..2 * n)
            .filter(|i| seg.may_contain(key_hash(&i.to_string())))
            .count();
        assert!(seg.find("nope").is_none());
        let rate = fp as f64 / n as f64;
        assert!(rate < 0.02, "Bloom false-positive rate {rate}");
    }

    /// Segments written before the TREE_BOUNDS section existed (nodes only) open with the
    /// bounds derived from the nodes, equal to the ones a new segment stores, for the primary
    /// and a secondary TLSH field.
    #[test]
    fn segment_without_tree_bounds_section_derives_them() {
        let schema = Schema::new(
            "id",
            vec![
                FieldSchema::new("t", FieldType::Tlsh),
                FieldSchema::new("u", FieldType::Tlsh),
            ],
        );
        let n = 3_000;
        let rec = |i: usize, salt: u8| -> apksift_tlsh::Digest {
            let mut r = [0u8; DIGEST_LEN];
            for (j, b) in r.iter_mut().enumerate() {
                *b = ((i / 7) as u8).wrapping_mul(31)
                    ^ (j as u8).wrapping_mul(97)
                    ^ salt
                    ^ u8::from(j % 5 == i % 5);
            }
            apksift_tlsh::Digest::from_bytes(r)
        };
        let b = NormBatch {
            keys: (0..n).map(|i| format!("k{i}")).collect(),
            columns: vec![
                Column::Tlsh((0..n).map(|i| Some(rec(i, 0))).collect()),
                Column::Tlsh((0..n).map(|i| (i % 3 != 0).then(|| rec(i, 0x5a))).collect()),
            ],
        };
        let mut rows = RowsBuf::new(&schema);
        for i in 0..n {
            rows.push_batch_row(&b, i);
        }
        let dir = MemDirectory::new();
        write(&dir, &schema, 1, 1, &rows, 1).unwrap();
        let name = file_name(1, 1);
        let new = Segment::open(&dir, &name, &schema).unwrap();
        // Rewrite the file without its TREE_BOUNDS sections.
        let c = ContainerReader::open(
            &dir,
            &name,
            SEGMENT_KIND,
            SEGMENT_OLDEST_VERSION,
            SEGMENT_VERSION,
        )
        .unwrap();
        let old_name = file_name(1, 2);
        let mut w = ContainerWriter::create(&dir, &old_name, c.kind(), c.version()).unwrap();
        let mut dropped = 0;
        for &id in c.sections().keys() {
            if id & 0xff == F_TREE_BOUNDS {
                dropped += 1;
                continue;
            }
            w.section(id, &c.section(id).unwrap()).unwrap();
        }
        w.finish().unwrap();
        assert_eq!(dropped, 2, "one bounds section per TLSH field");
        let old = Segment::open(&dir, &old_name, &schema).unwrap();
        for f in 0..2 {
            let (a, b) = (new.tree(f).unwrap(), old.tree(f).unwrap());
            assert_eq!(a.nodes.as_slice(), b.nodes.as_slice());
            assert_eq!(a.bounds.as_slice(), b.bounds.as_slice());
            assert_eq!(a.bounds.as_slice().len(), a.nodes.as_slice().len());
            assert!(a.nodes.as_slice().len() > 10, "a real tree");
        }
    }
}
