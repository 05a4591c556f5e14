//! The memtable: rows written since the last flush, in copy-on-write chunks
//! so that a search snapshot can keep reading while the writer appends.

use std::collections::HashMap;
use std::sync::Arc;

use crate::deletes::DeleteSet;
use crate::rows::{PartRead, RowsBuf, ValueRef, VectorSlice};
use crate::schema::Schema;
use crate::value::NormBatch;

/// Rows per chunk.
pub const CHUNK_ROWS: usize = 1024;
const NONE: u32 = u32::MAX;

/// Hasher for maps keyed by an xxh3 key hash: the key is already a good hash,
/// so hashing it again (SipHash) only costs time (it was 12% of a bulk insert).
#[derive(Default, Clone, Copy)]
pub struct PreHashed(u64);

impl std::hash::Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Builder of [`PreHashed`].
pub type PreHashedBuild = std::hash::BuildHasherDefault<PreHashed>;

/// Stable 64-bit hash of a key (xxh3), also used by the segment key index.
#[inline]
pub fn key_hash(key: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key.as_bytes())
}

/// The writer's memtable.
#[derive(Debug, Clone)]
pub struct MemTable {
    schema: Arc<Schema>,
    chunks: Vec<Arc<RowsBuf>>,
    /// Per full chunk: (key hash, row in chunk) sorted, for snapshot lookups.
    chunk_index: Vec<Arc<Vec<(u64, u16)>>>,
    len: u32,
    heads: HashMap<u64, u32, PreHashedBuild>,
    row_hashes: Vec<u64>,
    chain: Vec<u32>,
    dels: DeleteSet,
    bytes: usize,
}

impl MemTable {
    /// An empty memtable.
    pub fn new(schema: Arc<Schema>) -> MemTable {
        Self::with_capacity(schema, 0)
    }

    /// An empty memtable with its key index sized for `rows`.
    pub fn with_capacity(schema: Arc<Schema>, rows: usize) -> MemTable {
        MemTable {
            schema,
            chunks: Vec::new(),
            chunk_index: Vec::new(),
            len: 0,
            heads: HashMap::with_capacity_and_hasher(rows, Default::default()),
            row_hashes: Vec::with_capacity(rows),
            chain: Vec::new(),
            dels: DeleteSet::new(),
            bytes: 0,
        }
    }

    /// Rows appended (live or not).
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True when nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Live rows.
    pub fn live(&self) -> u64 {
        u64::from(self.len) - self.dels.count()
    }

    /// Approximate bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The live row of `key`, if any.
    pub fn lookup(&self, key: &str) -> Option<u32> {
        self.lookup_hashed(key, key_hash(key))
    }

    /// [`MemTable::lookup`] with the key's hash already computed.
    pub fn lookup_hashed(&self, key: &str, h: u64) -> Option<u32> {
        let mut r = self.heads.get(&h).copied().unwrap_or(NONE);
        while r != NONE {
            if self.key_at(r) == key {
                return (!self.dels.contains(r)).then_some(r);
            }
            r = self.chain.get(r as usize).copied().unwrap_or(NONE);
        }
        None
    }

    fn key_at(&self, row: u32) -> &str {
        let r = row as usize;
        self.chunks
            .get(r / CHUNK_ROWS)
            .map_or("", |c| c.keys.get(r % CHUNK_ROWS))
    }

    /// Appends every row of a batch; returns the first new row number.
    pub fn append(&mut self, batch: &NormBatch) -> u32 {
        let hs: Vec<u64> = batch.keys.iter().map(|k| key_hash(k)).collect();
        self.append_hashed(batch, &hs)
    }

    /// [`MemTable::append`] with the keys' hashes already computed.
    pub fn append_hashed(&mut self, batch: &NormBatch, hashes: &[u64]) -> u32 {
        let first = self.len;
        let mut i = 0;
        let n = batch.len();
        self.chain.reserve(n);
        self.heads.reserve(n);
        while i < n {
            let need_new = self.chunks.last().is_none_or(|c| c.len() >= CHUNK_ROWS);
            if need_new {
                let mut rb = RowsBuf::new(&self.schema);
                rb.keys.ends.reserve(CHUNK_ROWS.min(n - i));
                self.chunks.push(Arc::new(rb));
            }
            let Some(last) = self.chunks.last_mut() else {
                break;
            };
            // Copy-on-write: a snapshot may hold this chunk.
            let chunk = Arc::make_mut(last);
            let before = chunk.heap_bytes();
            let take = (CHUNK_ROWS - chunk.len()).min(n - i);
            chunk.extend_batch_rows(batch, i..i + take);
            for _ in 0..take {
                let h = hashes.get(i).copied().unwrap_or_else(|| {
                    key_hash(batch.keys.get(i).map(String::as_str).unwrap_or(""))
                });
                let row = self.len;
                let prev = self.heads.insert(h, row).unwrap_or(NONE);
                self.chain.push(prev);
                self.row_hashes.push(h);
                self.len += 1;
                i += 1;
            }
            self.bytes += chunk.heap_bytes() - before;
            if chunk.len() >= CHUNK_ROWS {
                let base = self.len as usize - chunk.len();
                let mut idx: Vec<(u64, u16)> = (0..chunk.len())
                    .map(|r| {
                        (
                            self.row_hashes.get(base + r).copied().unwrap_or(0),
                            r as u16,
                        )
                    })
                    .collect();
                idx.sort_unstable();
                self.chunk_index.push(Arc::new(idx));
            }
        }
        first
    }

    /// Marks a row deleted.
    pub fn delete_row(&mut self, row: u32) {
        self.dels.insert(row);
    }

    /// Is `row` deleted?
    pub fn is_deleted(&self, row: u32) -> bool {
        self.dels.contains(row)
    }

    /// A read-only view of the current state.
    pub fn view(&self) -> MemView {
        MemView {
            chunks: Arc::new(self.chunks.clone()),
            chunk_index: Arc::new(self.chunk_index.clone()),
            len: self.len,
            dels: self.dels.clone(),
        }
    }
}

/// Sorted (key hash, row in chunk) per full chunk.
type ChunkIndex = Arc<Vec<Arc<Vec<(u64, u16)>>>>;

/// A snapshot of a memtable.
#[derive(Debug, Clone)]
pub struct MemView {
    chunks: Arc<Vec<Arc<RowsBuf>>>,
    chunk_index: ChunkIndex,
    len: u32,
    /// Deleted rows.
    pub dels: DeleteSet,
}

impl MemView {
    /// The chunks with their first row numbers, for scans.
    pub fn chunks(&self) -> impl Iterator<Item = (u32, &RowsBuf)> {
        self.chunks
            .iter()
            .enumerate()
            .map(|(i, c)| ((i * CHUNK_ROWS) as u32, &**c))
            .take_while(move |(base, _)| *base < self.len)
    }

    /// Number of chunks.
    pub fn num_chunks(&self) -> usize {
        self.chunks.len()
    }

    /// Live rows.
    pub fn live(&self) -> u64 {
        u64::from(self.len) - self.dels.count()
    }

    /// The live row of `key` in this view, if any.
    pub fn find(&self, key: &str) -> Option<u32> {
        let h = key_hash(key);
        let full = self.chunk_index.len();
        // The newest version wins: the partial chunk first, then full chunks newest first.
        for (ci, c) in self.chunks.iter().enumerate().skip(full).rev() {
            let base = (ci * CHUNK_ROWS) as u32;
            let n = (self.len.saturating_sub(base) as usize).min(c.len());
            for r in (0..n).rev() {
                if c.keys.get(r) == key {
                    let row = base + r as u32;
                    return (!self.dels.contains(row)).then_some(row);
                }
            }
        }
        for ci in (0..full).rev() {
            let (Some(idx), Some(c)) = (self.chunk_index.get(ci), self.chunks.get(ci)) else {
                continue;
            };
            let start = idx.partition_point(|e| e.0 < h);
            let mut best: Option<u16> = None;
            for e in idx.iter().skip(start).take_while(|e| e.0 == h) {
                if c.keys.get(e.1 as usize) == key {
                    best = Some(best.map_or(e.1, |b: u16| b.max(e.1)));
                }
            }
            if let Some(r) = best {
                let row = (ci * CHUNK_ROWS) as u32 + u32::from(r);
                return (!self.dels.contains(row)).then_some(row);
            }
        }
        None
    }

    fn chunk(&self, row: u32) -> Option<(&RowsBuf, u32)> {
        let r = row as usize;
        self.chunks
            .get(r / CHUNK_ROWS)
            .map(|c| (&**c, (r % CHUNK_ROWS) as u32))
    }
}

impl PartRead for MemView {
    fn num_rows(&self) -> u32 {
        self.len
    }
    fn key(&self, row: u32) -> &str {
        self.chunk(row).map_or("", |(c, r)| c.key(r))
    }
    fn value(&self, field: usize, row: u32) -> ValueRef<'_> {
        self.chunk(row)
            .map_or(ValueRef::Null, |(c, r)| c.value(field, r))
    }
    fn vectors(&self, _field: usize) -> Option<VectorSlice<'_>> {
        // Not contiguous across chunks: scans go chunk by chunk.
        None
    }
}
