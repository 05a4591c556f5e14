//! Column buffers shared by the memtable and the segment writer, and the
//! read interface every part of a collection (memtable chunk or segment)
//! offers to search.

use apksift_tlsh::DIGEST_LEN;

use crate::schema::{FieldType, Schema};
use crate::value::{Column, NormBatch, Value};

/// A growable bit vector.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BitVec {
    words: Vec<u64>,
    len: usize,
}

impl BitVec {
    /// Empty.
    pub fn new() -> BitVec {
        BitVec::default()
    }

    /// `n` bits, all `value`.
    pub fn filled(n: usize, value: bool) -> BitVec {
        let mut words = vec![if value { u64::MAX } else { 0 }; n.div_ceil(64)];
        if value
            && !n.is_multiple_of(64)
            && let Some(last) = words.last_mut()
        {
            *last = (1u64 << (n % 64)) - 1;
        }
        BitVec { words, len: n }
    }

    /// Appends a bit.
    pub fn push(&mut self, v: bool) {
        if self.len.is_multiple_of(64) {
            self.words.push(0);
        }
        if v && let Some(w) = self.words.last_mut() {
            *w |= 1 << (self.len % 64);
        }
        self.len += 1;
    }

    /// Bit `i` (false beyond the end).
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w >> (i % 64) & 1 == 1)
    }

    /// Sets bit `i`, growing as needed.
    pub fn set(&mut self, i: usize) {
        if i >= self.len {
            self.len = i + 1;
            self.words.resize(self.len.div_ceil(64), 0);
        }
        if let Some(w) = self.words.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    /// Number of bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of set bits.
    pub fn count_ones(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Little-endian bytes (`len.div_ceil(8)` of them).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out: Vec<u8> = self.words.iter().flat_map(|w| w.to_le_bytes()).collect();
        out.truncate(self.len.div_ceil(8));
        out
    }

    /// From little-endian bytes.
    pub fn from_bytes(b: &[u8], len: usize) -> BitVec {
        let mut words = vec![0u64; len.div_ceil(64)];
        for (i, byte) in b.iter().take(len.div_ceil(8)).enumerate() {
            if let Some(w) = words.get_mut(i / 8) {
                *w |= u64::from(*byte) << (8 * (i % 8));
            }
        }
        BitVec { words, len }
    }
}

/// Strings (or keys) as one blob plus end offsets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StrBuf {
    pub(crate) data: Vec<u8>,
    pub(crate) ends: Vec<u64>,
}

impl StrBuf {
    /// Appends a string.
    pub fn push(&mut self, s: &[u8]) {
        self.data.extend_from_slice(s);
        self.ends.push(self.data.len() as u64);
    }

    /// String `i` as bytes.
    pub fn get_bytes(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.ends.get(i - 1).copied().unwrap_or(0) as usize
        };
        let end = self.ends.get(i).copied().unwrap_or(0) as usize;
        self.data.get(start..end).unwrap_or(&[])
    }

    /// String `i` (empty if the bytes are not UTF-8, which writers never produce).
    pub fn get(&self, i: usize) -> &str {
        std::str::from_utf8(self.get_bytes(i)).unwrap_or("")
    }

    /// Number of strings.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// One field's values in a buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum ColBuf {
    /// Fixed-width vectors (binary: `dim/8` bytes; TLSH: 35 bytes, zeros for null).
    Vector {
        /// Bytes per row.
        width: usize,
        /// Row-major bytes.
        data: Vec<u8>,
        /// Present (non-null) bits.
        present: BitVec,
    },
    /// Strings.
    Str {
        /// Values (empty for null).
        values: StrBuf,
        /// Present bits.
        present: BitVec,
    },
    /// Integers.
    Int {
        /// Values (0 for null).
        values: Vec<i64>,
        /// Present bits.
        present: BitVec,
    },
    /// Booleans.
    Bool {
        /// Values.
        values: BitVec,
        /// Present bits.
        present: BitVec,
    },
}

impl ColBuf {
    /// An empty buffer for a field type.
    pub fn new(ty: FieldType) -> ColBuf {
        match ty {
            FieldType::BinaryVector { dim } => ColBuf::Vector {
                width: dim as usize / 8,
                data: Vec::new(),
                present: BitVec::new(),
            },
            FieldType::Tlsh => ColBuf::Vector {
                width: DIGEST_LEN,
                data: Vec::new(),
                present: BitVec::new(),
            },
            FieldType::String { .. } => ColBuf::Str {
                values: StrBuf::default(),
                present: BitVec::new(),
            },
            FieldType::Int => ColBuf::Int {
                values: Vec::new(),
                present: BitVec::new(),
            },
            FieldType::Bool => ColBuf::Bool {
                values: BitVec::new(),
                present: BitVec::new(),
            },
        }
    }

    /// Appends row `i` of a batch column.
    pub fn push_column(&mut self, col: &Column, i: usize) {
        match (self, col) {
            (
                ColBuf::Vector {
                    width,
                    data,
                    present,
                },
                Column::Binary(d),
            ) => {
                data.extend_from_slice(d.get(i * *width..(i + 1) * *width).unwrap_or(&[]));
                present.push(true);
            }
            (ColBuf::Vector { data, present, .. }, Column::Tlsh(v)) => {
                match v.get(i).copied().flatten() {
                    Some(dg) => {
                        data.extend_from_slice(dg.as_bytes());
                        present.push(true);
                    }
                    None => {
                        data.extend_from_slice(&[0u8; DIGEST_LEN]);
                        present.push(false);
                    }
                }
            }
            (ColBuf::Str { values, present }, Column::Str(v)) => {
                let s = v.get(i).and_then(|s| s.as_deref());
                values.push(s.unwrap_or("").as_bytes());
                present.push(s.is_some());
            }
            (ColBuf::Int { values, present }, Column::Int(v)) => {
                let x = v.get(i).copied().flatten();
                values.push(x.unwrap_or(0));
                present.push(x.is_some());
            }
            (ColBuf::Bool { values, present }, Column::Bool(v)) => {
                let x = v.get(i).copied().flatten();
                values.push(x.unwrap_or(false));
                present.push(x.is_some());
            }
            _ => {}
        }
    }

    /// Appends a value taken from another part.
    pub fn push_value(&mut self, v: &ValueRef<'_>) {
        match (self, v) {
            (
                ColBuf::Vector {
                    width,
                    data,
                    present,
                },
                ValueRef::Bytes(b),
            ) => {
                data.extend_from_slice(b);
                if b.len() < *width {
                    data.resize(data.len() + *width - b.len(), 0);
                }
                present.push(true);
            }
            (
                ColBuf::Vector {
                    width,
                    data,
                    present,
                },
                ValueRef::Null,
            ) => {
                data.resize(data.len() + *width, 0);
                present.push(false);
            }
            (ColBuf::Str { values, present }, ValueRef::Str(s)) => {
                values.push(s.as_bytes());
                present.push(true);
            }
            (ColBuf::Str { values, present }, ValueRef::Null) => {
                values.push(b"");
                present.push(false);
            }
            (ColBuf::Int { values, present }, ValueRef::Int(x)) => {
                values.push(*x);
                present.push(true);
            }
            (ColBuf::Int { values, present }, ValueRef::Null) => {
                values.push(0);
                present.push(false);
            }
            (ColBuf::Bool { values, present }, ValueRef::Bool(x)) => {
                values.push(*x);
                present.push(true);
            }
            (ColBuf::Bool { values, present }, ValueRef::Null) => {
                values.push(false);
                present.push(false);
            }
            _ => {}
        }
    }

    /// Value of row `i`.
    pub fn get(&self, i: usize) -> ValueRef<'_> {
        match self {
            ColBuf::Vector {
                width,
                data,
                present,
            } => {
                if present.get(i) {
                    ValueRef::Bytes(data.get(i * width..(i + 1) * width).unwrap_or(&[]))
                } else {
                    ValueRef::Null
                }
            }
            ColBuf::Str { values, present } => {
                if present.get(i) {
                    ValueRef::Str(values.get(i))
                } else {
                    ValueRef::Null
                }
            }
            ColBuf::Int { values, present } => {
                if present.get(i) {
                    ValueRef::Int(values.get(i).copied().unwrap_or(0))
                } else {
                    ValueRef::Null
                }
            }
            ColBuf::Bool { values, present } => {
                if present.get(i) {
                    ValueRef::Bool(values.get(i))
                } else {
                    ValueRef::Null
                }
            }
        }
    }

    /// Approximate heap bytes.
    pub fn heap_bytes(&self) -> usize {
        match self {
            ColBuf::Vector { data, present, .. } => data.len() + present.len() / 8,
            ColBuf::Str { values, present } => {
                values.data.len() + values.ends.len() * 8 + present.len() / 8
            }
            ColBuf::Int { values, present } => values.len() * 8 + present.len() / 8,
            ColBuf::Bool { values, present } => values.len() / 8 + present.len() / 8,
        }
    }
}

/// A borrowed value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// Missing.
    Null,
    /// Vector bytes (binary or TLSH record).
    Bytes(&'a [u8]),
    /// String.
    Str(&'a str),
    /// Integer.
    Int(i64),
    /// Boolean.
    Bool(bool),
}

impl ValueRef<'_> {
    /// An owned value of a field type.
    pub fn to_value(&self, ty: FieldType) -> Value {
        match (self, ty) {
            (ValueRef::Null, _) => Value::Null,
            (ValueRef::Bytes(b), FieldType::Tlsh) => {
                let mut a = [0u8; DIGEST_LEN];
                if b.len() == DIGEST_LEN {
                    a.copy_from_slice(b);
                }
                Value::Tlsh(apksift_tlsh::Digest::from_bytes(a))
            }
            (ValueRef::Bytes(b), _) => Value::Binary(b.to_vec()),
            (ValueRef::Str(s), _) => Value::Str((*s).to_string()),
            (ValueRef::Int(x), _) => Value::Int(*x),
            (ValueRef::Bool(x), _) => Value::Bool(*x),
        }
    }
}

/// Rows in column buffers: what a memtable chunk holds and what a segment is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct RowsBuf {
    /// Primary keys.
    pub keys: StrBuf,
    /// One buffer per schema field.
    pub cols: Vec<ColBuf>,
}

impl RowsBuf {
    /// Empty buffers for a schema.
    pub fn new(schema: &Schema) -> RowsBuf {
        RowsBuf {
            keys: StrBuf::default(),
            cols: schema.fields.iter().map(|f| ColBuf::new(f.ty)).collect(),
        }
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Appends row `i` of a batch.
    pub fn push_batch_row(&mut self, b: &NormBatch, i: usize) {
        self.keys
            .push(b.keys.get(i).map(String::as_bytes).unwrap_or(b""));
        for (c, col) in self.cols.iter_mut().zip(&b.columns) {
            c.push_column(col, i);
        }
    }

    /// Appends rows `range` of a batch, column by column.
    pub fn extend_batch_rows(&mut self, b: &NormBatch, range: std::ops::Range<usize>) {
        for i in range.clone() {
            self.keys
                .push(b.keys.get(i).map(String::as_bytes).unwrap_or(b""));
        }
        for (c, col) in self.cols.iter_mut().zip(&b.columns) {
            match (c, col) {
                (
                    ColBuf::Vector {
                        width,
                        data,
                        present,
                    },
                    Column::Binary(d),
                ) => {
                    data.extend_from_slice(
                        d.get(range.start * *width..range.end * *width)
                            .unwrap_or(&[]),
                    );
                    for _ in range.clone() {
                        present.push(true);
                    }
                }
                (c, col) => {
                    for i in range.clone() {
                        c.push_column(col, i);
                    }
                }
            }
        }
    }

    /// Appends row `row` of any part.
    pub fn push_part_row(&mut self, p: &dyn PartRead, row: u32) {
        self.keys.push(p.key(row).as_bytes());
        for (f, c) in self.cols.iter_mut().enumerate() {
            c.push_value(&p.value(f, row));
        }
    }

    /// Approximate heap bytes.
    pub fn heap_bytes(&self) -> usize {
        self.keys.data.len()
            + self.keys.ends.len() * 8
            + self.cols.iter().map(ColBuf::heap_bytes).sum::<usize>()
    }
}

/// Read access to the rows of one part (a memtable chunk or a segment).
pub trait PartRead: Send + Sync {
    /// Rows in the part (live or not).
    fn num_rows(&self) -> u32;
    /// Key of a row.
    fn key(&self, row: u32) -> &str;
    /// Value of field `field` (schema position) of a row.
    fn value(&self, field: usize, row: u32) -> ValueRef<'_>;
    /// Contiguous bytes of a vector field: `(width, data, present bits or None if all present)`.
    fn vectors(&self, field: usize) -> Option<VectorSlice<'_>>;
}

/// A vector column as one slice.
#[derive(Debug, Clone, Copy)]
pub struct VectorSlice<'a> {
    /// Bytes per row.
    pub width: usize,
    /// Row-major bytes.
    pub data: &'a [u8],
    /// Presence bits (little-endian bytes), `None` when every row is present.
    pub present: Option<PresentBits<'a>>,
}

/// Presence bits of a column.
#[derive(Debug, Clone, Copy)]
pub enum PresentBits<'a> {
    /// An in-memory bit vector.
    Mem(&'a BitVec),
    /// Little-endian bytes from a segment.
    Bytes(&'a [u8]),
}

impl PresentBits<'_> {
    /// Is row `i` present?
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        match self {
            PresentBits::Mem(b) => b.get(i),
            PresentBits::Bytes(b) => b.get(i / 8).is_some_and(|x| x >> (i % 8) & 1 == 1),
        }
    }
}

impl PartRead for RowsBuf {
    fn num_rows(&self) -> u32 {
        self.len() as u32
    }
    fn key(&self, row: u32) -> &str {
        self.keys.get(row as usize)
    }
    fn value(&self, field: usize, row: u32) -> ValueRef<'_> {
        self.cols
            .get(field)
            .map_or(ValueRef::Null, |c| c.get(row as usize))
    }
    fn vectors(&self, field: usize) -> Option<VectorSlice<'_>> {
        match self.cols.get(field)? {
            ColBuf::Vector {
                width,
                data,
                present,
            } => Some(VectorSlice {
                width: *width,
                data,
                present: Some(PresentBits::Mem(present)),
            }),
            _ => None,
        }
    }
}
