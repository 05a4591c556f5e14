//! Binary encoding of write operations in WAL records (layout in
//! `docs/FORMAT.md`, "WAL payload").

use apksift_tlsh::{DIGEST_LEN, Digest};

use crate::schema::{FieldType, Schema};
use crate::value::{Column, NormBatch};
use crate::{Error, Result};

/// Payload format version (first byte of every payload).
pub const PAYLOAD_VERSION: u8 = 1;

const OP_UPSERT: u8 = 1;
const OP_DELETE: u8 = 2;

/// A decoded write.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Insert-or-replace rows.
    Upsert {
        /// Collection id.
        collection: u32,
        /// The rows.
        batch: NormBatch,
    },
    /// Delete keys.
    Delete {
        /// Collection id.
        collection: u32,
        /// The keys.
        keys: Vec<String>,
    },
}

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn nulls<T>(&mut self, v: &[Option<T>]) {
        let mut bits = vec![0u8; v.len().div_ceil(8)];
        for (i, x) in v.iter().enumerate() {
            if x.is_some()
                && let Some(b) = bits.get_mut(i / 8)
            {
                *b |= 1 << (i % 8);
            }
        }
        self.0.extend_from_slice(&bits);
    }
}

fn keys_into(w: &mut W, keys: &[String]) {
    w.u32(keys.len() as u32);
    for k in keys {
        w.bytes(k.as_bytes());
    }
}

/// Encodes an upsert.
pub fn encode_upsert(collection: u32, batch: &NormBatch) -> Vec<u8> {
    let est: usize = batch.keys.iter().map(|k| k.len() + 4).sum::<usize>()
        + batch
            .columns
            .iter()
            .map(|c| match c {
                Column::Binary(d) => d.len(),
                Column::Tlsh(v) => v.len() * (DIGEST_LEN + 1),
                Column::Str(v) => v
                    .iter()
                    .map(|s| s.as_ref().map_or(0, String::len) + 5)
                    .sum(),
                Column::Int(v) => v.len() * 9,
                Column::Bool(v) => v.len() * 2,
            })
            .sum::<usize>();
    let mut w = W(Vec::with_capacity(est + 64));
    w.u8(PAYLOAD_VERSION);
    w.u8(OP_UPSERT);
    w.u32(collection);
    keys_into(&mut w, &batch.keys);
    w.u32(batch.columns.len() as u32);
    for c in &batch.columns {
        match c {
            Column::Binary(d) => {
                w.u8(1);
                w.bytes(d);
            }
            Column::Tlsh(v) => {
                w.u8(2);
                w.nulls(v);
                for d in v.iter().flatten() {
                    w.0.extend_from_slice(d.as_bytes());
                }
            }
            Column::Str(v) => {
                w.u8(3);
                w.nulls(v);
                for s in v.iter().flatten() {
                    w.bytes(s.as_bytes());
                }
            }
            Column::Int(v) => {
                w.u8(4);
                w.nulls(v);
                for x in v.iter().flatten() {
                    w.0.extend_from_slice(&x.to_le_bytes());
                }
            }
            Column::Bool(v) => {
                w.u8(5);
                w.nulls(v);
                for x in v.iter().flatten() {
                    w.u8(u8::from(*x));
                }
            }
        }
    }
    w.0
}

/// Encodes a delete.
pub fn encode_delete(collection: u32, keys: &[String]) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(
        16 + keys.iter().map(|k| k.len() + 4).sum::<usize>(),
    ));
    w.u8(PAYLOAD_VERSION);
    w.u8(OP_DELETE);
    w.u32(collection);
    keys_into(&mut w, keys);
    w.0
}

struct R<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let s = self
            .b
            .get(self.at..self.at.checked_add(n).ok_or_else(short)?)
            .ok_or_else(short)?;
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(*self.take(1)?.first().ok_or_else(short)?)
    }
    fn u32(&mut self) -> Result<u32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Result<String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| bad("invalid UTF-8 in a string"))
    }
    fn present(&mut self, n: usize) -> Result<Vec<bool>> {
        let bits = self.take(n.div_ceil(8))?;
        Ok((0..n)
            .map(|i| bits.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 == 1))
            .collect())
    }
}

fn short() -> Error {
    bad("truncated payload")
}

fn bad(what: &str) -> Error {
    Error::Storage(apksift_storage::Error::corrupt("wal payload", 0, what))
}

/// Reads the collection id of a payload without decoding the rest.
pub fn peek_collection(payload: &[u8]) -> Result<u32> {
    let mut r = R { b: payload, at: 2 };
    r.u32()
}

/// Decodes a payload; `schema_of` gives the schema of a collection id
/// (`None` for a dropped collection, whose ops are skipped by the caller).
pub fn decode(payload: &[u8], schema: &Schema) -> Result<Op> {
    let mut r = R { b: payload, at: 0 };
    if r.u8()? != PAYLOAD_VERSION {
        return Err(bad("unknown payload version"));
    }
    let op = r.u8()?;
    let collection = r.u32()?;
    let n = r.u32()? as usize;
    if n > payload.len() {
        return Err(bad("row count larger than the payload"));
    }
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        keys.push(r.string()?);
    }
    match op {
        OP_DELETE => Ok(Op::Delete { collection, keys }),
        OP_UPSERT => {
            let nc = r.u32()? as usize;
            if nc != schema.fields.len() {
                return Err(bad("column count differs from the schema"));
            }
            let mut columns = Vec::with_capacity(nc);
            for f in &schema.fields {
                let tag = r.u8()?;
                let col = match (tag, f.ty) {
                    (1, FieldType::BinaryVector { dim }) => {
                        let d = r.bytes()?;
                        if d.len() != n * dim as usize / 8 {
                            return Err(bad("binary column length"));
                        }
                        Column::Binary(d.to_vec())
                    }
                    (2, FieldType::Tlsh) => {
                        let p = r.present(n)?;
                        let mut v = Vec::with_capacity(n);
                        for has in p {
                            v.push(if has {
                                let mut a = [0u8; DIGEST_LEN];
                                a.copy_from_slice(r.take(DIGEST_LEN)?);
                                Some(Digest::from_bytes(a))
                            } else {
                                None
                            });
                        }
                        Column::Tlsh(v)
                    }
                    (3, FieldType::String { .. }) => {
                        let p = r.present(n)?;
                        let mut v = Vec::with_capacity(n);
                        for has in p {
                            v.push(if has { Some(r.string()?) } else { None });
                        }
                        Column::Str(v)
                    }
                    (4, FieldType::Int) => {
                        let p = r.present(n)?;
                        let mut v = Vec::with_capacity(n);
                        for has in p {
                            v.push(if has {
                                let mut a = [0u8; 8];
                                a.copy_from_slice(r.take(8)?);
                                Some(i64::from_le_bytes(a))
                            } else {
                                None
                            });
                        }
                        Column::Int(v)
                    }
                    (5, FieldType::Bool) => {
                        let p = r.present(n)?;
                        let mut v = Vec::with_capacity(n);
                        for has in p {
                            v.push(if has { Some(r.u8()? != 0) } else { None });
                        }
                        Column::Bool(v)
                    }
                    _ => return Err(bad("column type differs from the schema")),
                };
                columns.push(col);
            }
            if r.at != payload.len() {
                return Err(bad("trailing bytes after the payload"));
            }
            Ok(Op::Upsert {
                collection,
                batch: NormBatch { keys, columns },
            })
        }
        _ => Err(bad("unknown operation")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::FieldSchema;

    #[test]
    fn codec_roundtrip_and_truncation() {
        let schema = Schema::new(
            "k",
            vec![
                FieldSchema::new("v", FieldType::BinaryVector { dim: 16 }),
                FieldSchema::new("t", FieldType::Tlsh),
                FieldSchema::new("s", FieldType::String { max_len: 100 }),
                FieldSchema::new("i", FieldType::Int),
                FieldSchema::new("b", FieldType::Bool),
            ],
        );
        let d = Digest::from_bytes([7u8; DIGEST_LEN]);
        let batch = NormBatch {
            keys: vec!["a".into(), "bb".into(), "ccc".into()],
            columns: vec![
                Column::Binary(vec![1, 2, 3, 4, 5, 6]),
                Column::Tlsh(vec![Some(d), None, Some(d)]),
                Column::Str(vec![None, Some("x".into()), Some(String::new())]),
                Column::Int(vec![Some(-5), Some(i64::MAX), None]),
                Column::Bool(vec![Some(true), None, Some(false)]),
            ],
        };
        let enc = encode_upsert(9, &batch);
        assert_eq!(peek_collection(&enc).unwrap(), 9);
        assert_eq!(
            decode(&enc, &schema).unwrap(),
            Op::Upsert {
                collection: 9,
                batch
            }
        );
        for cut in 0..enc.len() {
            assert!(decode(&enc[..cut], &schema).is_err(), "cut {cut}");
        }
        let del = encode_delete(3, &["x".to_string(), "y".to_string()]);
        assert_eq!(
            decode(&del, &schema).unwrap(),
            Op::Delete {
                collection: 3,
                keys: vec!["x".into(), "y".into()]
            }
        );
    }
}
