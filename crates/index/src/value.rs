//! Values, columns and write batches.

use std::collections::BTreeMap;

use apksift_tlsh::Digest;
use serde::Serialize;

use crate::schema::{FieldType, Schema, check_key};
use crate::{Error, Result};

/// One value of a field.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// Missing (nullable fields).
    Null,
    /// Binary vector bytes (bit `i` of the vector is bit `i % 8` of byte `i / 8`).
    Binary(Vec<u8>),
    /// TLSH digest.
    Tlsh(Digest),
    /// String.
    Str(String),
    /// Integer.
    Int(i64),
    /// Boolean.
    Bool(bool),
}

/// A column of values of one field, for batch writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// `dim / 8` bytes per row, concatenated.
    Binary(Vec<u8>),
    /// TLSH digests.
    Tlsh(Vec<Option<Digest>>),
    /// Strings.
    Str(Vec<Option<String>>),
    /// Integers.
    Int(Vec<Option<i64>>),
    /// Booleans.
    Bool(Vec<Option<bool>>),
}

impl Column {
    fn type_name(&self) -> &'static str {
        match self {
            Column::Binary(_) => "binary_vector",
            Column::Tlsh(_) => "tlsh",
            Column::Str(_) => "string",
            Column::Int(_) => "int",
            Column::Bool(_) => "bool",
        }
    }

    /// An all-null column of a nullable type.
    pub fn nulls(ty: FieldType, n: usize) -> Option<Column> {
        Some(match ty {
            FieldType::BinaryVector { .. } => return None,
            FieldType::Tlsh => Column::Tlsh(vec![None; n]),
            FieldType::String { .. } => Column::Str(vec![None; n]),
            FieldType::Int => Column::Int(vec![None; n]),
            FieldType::Bool => Column::Bool(vec![None; n]),
        })
    }

    /// Value of row `i`.
    pub fn value(&self, i: usize, ty: FieldType) -> Value {
        match self {
            Column::Binary(d) => {
                let w = ty.vector_bytes().unwrap_or(0);
                Value::Binary(d.get(i * w..(i + 1) * w).unwrap_or(&[]).to_vec())
            }
            Column::Tlsh(v) => v.get(i).copied().flatten().map_or(Value::Null, Value::Tlsh),
            Column::Str(v) => v.get(i).cloned().flatten().map_or(Value::Null, Value::Str),
            Column::Int(v) => v.get(i).copied().flatten().map_or(Value::Null, Value::Int),
            Column::Bool(v) => v.get(i).copied().flatten().map_or(Value::Null, Value::Bool),
        }
    }
}

/// Rows to write, column-oriented: keys plus one column per field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Primary keys.
    pub keys: Vec<String>,
    /// Columns by field name; missing nullable fields are null.
    pub columns: BTreeMap<String, Column>,
}

/// A validated batch: one column per schema field, in schema order.
#[derive(Debug, Clone, PartialEq)]
pub struct NormBatch {
    /// Primary keys.
    pub keys: Vec<String>,
    /// Columns in schema order.
    pub columns: Vec<Column>,
}

impl NormBatch {
    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A row given as a map, for callers that build rows one by one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    /// Primary key.
    pub key: String,
    /// Field values by name (missing = null).
    pub fields: BTreeMap<String, Value>,
}

impl Batch {
    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Builds a batch from rows (checked later by [`Batch::normalize`]).
    pub fn from_rows(schema: &Schema, rows: &[Row]) -> Result<Batch> {
        let mut b = Batch {
            keys: rows.iter().map(|r| r.key.clone()).collect(),
            columns: BTreeMap::new(),
        };
        for r in rows {
            for name in r.fields.keys() {
                schema.field(name)?;
            }
        }
        for f in &schema.fields {
            let col = match f.ty {
                FieldType::BinaryVector { dim } => {
                    let w = dim as usize / 8;
                    let mut data = Vec::with_capacity(rows.len() * w);
                    for r in rows {
                        match r.fields.get(&f.name) {
                            Some(Value::Binary(v)) => {
                                if v.len() != w {
                                    return Err(wrong_len(&f.name, dim, v.len(), &r.key));
                                }
                                data.extend_from_slice(v);
                            }
                            Some(Value::Null) | None => {
                                return Err(Error::invalid(format!(
                                    "row {:?}: binary vector field {:?} is required",
                                    r.key, f.name
                                )));
                            }
                            Some(other) => return Err(wrong_type(&f.name, f.ty, other, &r.key)),
                        }
                    }
                    Column::Binary(data)
                }
                FieldType::Tlsh => Column::Tlsh(
                    rows.iter()
                        .map(|r| match r.fields.get(&f.name) {
                            Some(Value::Tlsh(d)) => Ok(Some(*d)),
                            Some(Value::Null) | None => Ok(None),
                            Some(o) => Err(wrong_type(&f.name, f.ty, o, &r.key)),
                        })
                        .collect::<Result<_>>()?,
                ),
                FieldType::String { .. } => Column::Str(
                    rows.iter()
                        .map(|r| match r.fields.get(&f.name) {
                            Some(Value::Str(s)) => Ok(Some(s.clone())),
                            Some(Value::Null) | None => Ok(None),
                            Some(o) => Err(wrong_type(&f.name, f.ty, o, &r.key)),
                        })
                        .collect::<Result<_>>()?,
                ),
                FieldType::Int => Column::Int(
                    rows.iter()
                        .map(|r| match r.fields.get(&f.name) {
                            Some(Value::Int(v)) => Ok(Some(*v)),
                            Some(Value::Null) | None => Ok(None),
                            Some(o) => Err(wrong_type(&f.name, f.ty, o, &r.key)),
                        })
                        .collect::<Result<_>>()?,
                ),
                FieldType::Bool => Column::Bool(
                    rows.iter()
                        .map(|r| match r.fields.get(&f.name) {
                            Some(Value::Bool(v)) => Ok(Some(*v)),
                            Some(Value::Null) | None => Ok(None),
                            Some(o) => Err(wrong_type(&f.name, f.ty, o, &r.key)),
                        })
                        .collect::<Result<_>>()?,
                ),
            };
            b.columns.insert(f.name.clone(), col);
        }
        Ok(b)
    }

    /// Checks the batch against a schema and orders columns by field. Every
    /// rule broken is reported with the field and row; nothing is partially
    /// accepted.
    pub fn normalize(self, schema: &Schema) -> Result<NormBatch> {
        let n = self.keys.len();
        // Duplicate keys: by xxh3 hash first (cheap), strings compared on a hash match.
        let mut seen: std::collections::HashMap<u64, usize, crate::memtable::PreHashedBuild> =
            std::collections::HashMap::with_capacity_and_hasher(n, Default::default());
        let mut collide: Vec<(usize, usize)> = Vec::new();
        for (i, k) in self.keys.iter().enumerate() {
            check_key(k)?;
            if let Some(j) = seen.insert(crate::memtable::key_hash(k), i) {
                collide.push((j, i));
            }
        }
        if !collide.is_empty() {
            let mut all = std::collections::HashSet::with_capacity(n);
            for k in &self.keys {
                if !all.insert(k.as_str()) {
                    return Err(Error::invalid(format!(
                        "duplicate primary key {k:?} within one batch"
                    )));
                }
            }
        }
        for name in self.columns.keys() {
            schema.field(name)?;
        }
        let mut columns = self.columns;
        let mut out = Vec::with_capacity(schema.fields.len());
        for f in &schema.fields {
            let col = match columns.remove(&f.name) {
                Some(c) => c,
                None => Column::nulls(f.ty, n).ok_or_else(|| {
                    Error::invalid(format!("field {:?} ({}) is required", f.name, f.ty.name()))
                })?,
            };
            let len_ok = match (&col, f.ty) {
                (Column::Binary(d), FieldType::BinaryVector { dim }) => {
                    let w = dim as usize / 8;
                    if d.len() != n * w {
                        return Err(Error::invalid(format!(
                            "field {:?}: binary vectors of dim {dim} take {w} bytes each; got {} bytes for {n} rows (expected {})",
                            f.name,
                            d.len(),
                            n * w
                        )));
                    }
                    true
                }
                (Column::Tlsh(v), FieldType::Tlsh) => v.len() == n,
                (Column::Str(v), FieldType::String { max_len }) => {
                    for (i, s) in v.iter().enumerate() {
                        if let Some(s) = s
                            && s.len() > max_len as usize
                        {
                            return Err(Error::invalid(format!(
                                "field {:?}, row {:?}: string of {} bytes exceeds max_len {max_len}",
                                f.name,
                                self.keys.get(i).map(String::as_str).unwrap_or(""),
                                s.len()
                            )));
                        }
                    }
                    v.len() == n
                }
                (Column::Int(v), FieldType::Int) => v.len() == n,
                (Column::Bool(v), FieldType::Bool) => v.len() == n,
                (c, ty) => {
                    return Err(Error::invalid(format!(
                        "field {:?} is {} but the batch gives {} values",
                        f.name,
                        ty.name(),
                        c.type_name()
                    )));
                }
            };
            if !len_ok {
                return Err(Error::invalid(format!(
                    "field {:?}: column length differs from the number of keys ({n})",
                    f.name
                )));
            }
            if !f.nullable {
                let has_null = match &col {
                    Column::Tlsh(v) => v.iter().any(Option::is_none),
                    Column::Str(v) => v.iter().any(Option::is_none),
                    Column::Int(v) => v.iter().any(Option::is_none),
                    Column::Bool(v) => v.iter().any(Option::is_none),
                    Column::Binary(_) => false,
                };
                if has_null {
                    return Err(Error::invalid(format!(
                        "field {:?} is not nullable but the batch has nulls",
                        f.name
                    )));
                }
            }
            out.push(col);
        }
        Ok(NormBatch {
            keys: self.keys,
            columns: out,
        })
    }
}

fn wrong_len(field: &str, dim: u32, got: usize, key: &str) -> Error {
    Error::invalid(format!(
        "row {key:?}: field {field:?} is a binary vector of dim {dim} ({} bytes), got {got} bytes",
        dim / 8
    ))
}

fn wrong_type(field: &str, ty: FieldType, got: &Value, key: &str) -> Error {
    let got = match got {
        Value::Null => "null",
        Value::Binary(_) => "binary",
        Value::Tlsh(_) => "tlsh",
        Value::Str(_) => "string",
        Value::Int(_) => "int",
        Value::Bool(_) => "bool",
    };
    Error::invalid(format!(
        "row {key:?}: field {field:?} is {} but got a {got} value",
        ty.name()
    ))
}
