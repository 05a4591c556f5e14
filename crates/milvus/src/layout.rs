//! How an apksift collection is laid out in Milvus.
//!
//! Milvus 2.3 allows **one vector field per collection** ("multiple vector fields is not
//! supported") and has **no nullable fields**. So an apksift collection `C` (schema
//! [`apksift_index::Schema`]) becomes:
//!
//! * `PREFIX_C` (*main*): primary key `key` (VarChar), every scalar field (VarChar, Int64,
//!   Bool), a Bool `<field>__null` next to each nullable scalar, each TLSH field as its
//!   70-hex legacy string (`""` for null), a padding vector `pad` (8 bits, zero: Milvus
//!   needs a vector field to load a collection), and the apksift schema as JSON in the
//!   collection description;
//! * `PREFIX_C__F` for each TLSH field `F` (*code collection*): `key`, the 384-bit
//!   thermometer code `code` (BINARY_VECTOR, BIN_FLAT or BIN_IVF_FLAT, HAMMING), the digest
//!   `tlsh` and its header scalars `l`, `q1`, `q2`. Only rows whose digest is not null are
//!   there.
//!
//! The main row is the commit point: an upsert writes the code collections first and the
//! main row last, a delete removes the main row first, and a search only reports candidates
//! whose main row exists (the same rule as apksift's embedded `components`).

use apksift_index::{FieldType, Schema};

/// Suffix of the null flag of a nullable scalar.
pub const NULL_SUFFIX: &str = "__null";
/// Name of the padding vector of a main collection.
pub const PAD: &str = "pad";
/// Longest primary key, in bytes.
pub const MAX_KEY: i64 = 2048;
/// Marker at the start of a main collection's description.
pub const MARK: &str = "apksift:";

/// The Milvus name of apksift collection `name`.
pub fn main_name(prefix: &str, name: &str) -> String {
    format!("{prefix}_{name}")
}

/// The Milvus name of the code collection of TLSH field `field`.
pub fn code_name(prefix: &str, name: &str, field: &str) -> String {
    format!("{prefix}_{name}__{field}")
}

/// TLSH fields of a schema, in schema order.
pub fn tlsh_fields(schema: &Schema) -> Vec<String> {
    schema
        .fields
        .iter()
        .filter(|f| f.ty == FieldType::Tlsh)
        .map(|f| f.name.clone())
        .collect()
}

/// Checks that a schema can be laid out (no binary-vector fields; names Milvus accepts).
pub fn check(schema: &Schema) -> crate::Result<()> {
    for f in &schema.fields {
        if matches!(f.ty, FieldType::BinaryVector { .. }) {
            return Err(crate::Error::Unsupported(format!(
                "field {:?}: binary-vector fields are not supported on Milvus (TLSH fields are)",
                f.name
            )));
        }
        if f.name == PAD || f.name.ends_with(NULL_SUFFIX) || f.name.contains("__") {
            return Err(crate::Error::Unsupported(format!(
                "field name {:?} is reserved by the Milvus layout",
                f.name
            )));
        }
    }
    Ok(())
}
