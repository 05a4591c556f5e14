//! Collection schemas: a string primary key, vector fields (binary of 8 to
//! 262,144 bits, or TLSH digests) and scalar fields (string, int, bool).

use serde::{Deserialize, Serialize};

use crate::metric::Metric;
use crate::{Error, Result};

/// Smallest binary vector width in bits.
pub const MIN_BINARY_DIM: u32 = 8;
/// Largest binary vector width in bits (Milvus 2.4+: 32,768 × 8).
pub const MAX_BINARY_DIM: u32 = 262_144;
/// Most fields a collection may have (Milvus: 64).
pub const MAX_FIELDS: usize = 64;
/// Longest primary key in bytes.
pub const MAX_KEY_LEN: usize = 512;
/// Longest string value in bytes (Milvus VARCHAR: 65,535).
pub const MAX_STRING_LEN: u32 = 65_535;

/// The type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FieldType {
    /// A binary vector of `dim` bits (a multiple of 8).
    BinaryVector {
        /// Width in bits.
        dim: u32,
    },
    /// A TLSH digest (128 buckets, 1-byte checksum; 35 bytes), searched by exact TLSH distance.
    Tlsh,
    /// UTF-8 string of at most `max_len` bytes.
    String {
        /// Maximum length in bytes.
        #[serde(default = "default_max_len")]
        max_len: u32,
    },
    /// 64-bit signed integer.
    Int,
    /// Boolean.
    Bool,
}

fn default_max_len() -> u32 {
    MAX_STRING_LEN
}

impl FieldType {
    /// True for vector fields (binary or TLSH).
    pub fn is_vector(&self) -> bool {
        matches!(self, FieldType::BinaryVector { .. } | FieldType::Tlsh)
    }

    /// Bytes per value of a vector field.
    pub fn vector_bytes(&self) -> Option<usize> {
        match self {
            FieldType::BinaryVector { dim } => Some(*dim as usize / 8),
            FieldType::Tlsh => Some(apksift_tlsh::DIGEST_LEN),
            _ => None,
        }
    }

    /// Short name used in messages.
    pub fn name(&self) -> &'static str {
        match self {
            FieldType::BinaryVector { .. } => "binary_vector",
            FieldType::Tlsh => "tlsh",
            FieldType::String { .. } => "string",
            FieldType::Int => "int",
            FieldType::Bool => "bool",
        }
    }
}

/// An index on a vector field.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IndexSpec {
    /// Exact scan (no structure). Valid for every vector field and metric.
    Flat,
    /// Inverted lists over `nlist` k-majority centroids (binary fields).
    IvfFlat {
        /// Number of lists, 1..=65,536.
        nlist: u32,
    },
    /// apksift's exact TLSH index: a tree of clusters with lower bounds on
    /// the TLSH distance (TLSH fields). Answers equal brute force.
    TlshTree {
        /// Rows per leaf (8..=1024).
        #[serde(default = "default_leaf")]
        leaf_size: u32,
    },
}

fn default_leaf() -> u32 {
    32
}

impl IndexSpec {
    /// Index name as Milvus spells it where there is one.
    pub fn name(&self) -> &'static str {
        match self {
            IndexSpec::Flat => "FLAT",
            IndexSpec::IvfFlat { .. } => "IVF_FLAT",
            IndexSpec::TlshTree { .. } => "TLSH_TREE",
        }
    }
}

/// One field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldSchema {
    /// Field name.
    pub name: String,
    /// Its type.
    #[serde(flatten)]
    pub ty: FieldType,
    /// May rows omit it? Binary vectors are always required; TLSH digests and
    /// scalars are nullable by default (an APK without a manifest has no
    /// manifest digest).
    #[serde(default = "yes")]
    pub nullable: bool,
    /// Index of a vector field; `None` means FLAT for binary fields and
    /// TLSH_TREE for TLSH fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexSpec>,
    /// Default metric of a vector field (Hamming for binary, TLSH for TLSH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<Metric>,
}

fn yes() -> bool {
    true
}

impl FieldSchema {
    /// A field with defaults.
    pub fn new(name: impl Into<String>, ty: FieldType) -> FieldSchema {
        FieldSchema {
            name: name.into(),
            ty,
            nullable: !matches!(ty, FieldType::BinaryVector { .. }),
            index: None,
            metric: None,
        }
    }

    /// Sets the index.
    pub fn with_index(mut self, index: IndexSpec) -> FieldSchema {
        self.index = Some(index);
        self
    }

    /// Sets the default metric.
    pub fn with_metric(mut self, metric: Metric) -> FieldSchema {
        self.metric = Some(metric);
        self
    }

    /// The effective index.
    pub fn index_spec(&self) -> IndexSpec {
        match (self.index, self.ty) {
            (Some(i), _) => i,
            (None, FieldType::Tlsh) => IndexSpec::TlshTree { leaf_size: 32 },
            (None, _) => IndexSpec::Flat,
        }
    }

    /// The effective default metric.
    pub fn default_metric(&self) -> Metric {
        match (self.metric, self.ty) {
            (Some(m), _) => m,
            (None, FieldType::Tlsh) => Metric::Tlsh,
            (None, _) => Metric::Hamming,
        }
    }
}

/// A collection's schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// Name of the string primary key.
    #[serde(default = "default_pk")]
    pub primary_key: String,
    /// The other fields, in order.
    pub fields: Vec<FieldSchema>,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

fn default_pk() -> String {
    "id".to_string()
}

/// Checks a collection or field name: `[A-Za-z_][A-Za-z0-9_]{0,63}`.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid {what} name {name:?}: names are 1 to 64 characters [A-Za-z0-9_], starting with a letter or _"
        )))
    }
}

/// Checks a primary key value.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid("primary key must not be empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Error::invalid(format!(
            "primary key of {} bytes exceeds the maximum of {MAX_KEY_LEN} bytes",
            key.len()
        )));
    }
    if key.bytes().any(|b| b == 0) {
        return Err(Error::invalid("primary key must not contain NUL bytes"));
    }
    Ok(())
}

impl Schema {
    /// A schema with the given primary key name and fields.
    pub fn new(primary_key: impl Into<String>, fields: Vec<FieldSchema>) -> Schema {
        Schema {
            primary_key: primary_key.into(),
            fields,
            description: String::new(),
        }
    }

    /// Validates every rule; the message names the rule broken.
    pub fn validate(&self) -> Result<()> {
        check_name("primary key", &self.primary_key)?;
        if self.fields.is_empty() {
            return Err(Error::invalid("a schema needs at least one vector field"));
        }
        if self.fields.len() > MAX_FIELDS {
            return Err(Error::invalid(format!(
                "{} fields exceed the maximum of {MAX_FIELDS}",
                self.fields.len()
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        seen.insert(self.primary_key.as_str());
        for f in &self.fields {
            check_name("field", &f.name)?;
            if !seen.insert(f.name.as_str()) {
                return Err(Error::invalid(format!("duplicate field name {:?}", f.name)));
            }
            match f.ty {
                FieldType::BinaryVector { dim } => {
                    if !(MIN_BINARY_DIM..=MAX_BINARY_DIM).contains(&dim) || dim % 8 != 0 {
                        return Err(Error::invalid(format!(
                            "field {:?}: binary vector dim {dim} must be a multiple of 8 between {MIN_BINARY_DIM} and {MAX_BINARY_DIM}",
                            f.name
                        )));
                    }
                    if f.nullable {
                        return Err(Error::invalid(format!(
                            "field {:?}: binary vector fields cannot be nullable",
                            f.name
                        )));
                    }
                }
                FieldType::String { max_len } if (max_len == 0 || max_len > MAX_STRING_LEN) => {
                    return Err(Error::invalid(format!(
                        "field {:?}: string max_len {max_len} must be between 1 and {MAX_STRING_LEN}",
                        f.name
                    )));
                }
                _ => {}
            }
            if !f.ty.is_vector() && (f.index.is_some() || f.metric.is_some()) {
                return Err(Error::invalid(format!(
                    "field {:?}: only vector fields take an index or a metric",
                    f.name
                )));
            }
            match (f.ty, f.index_spec()) {
                (_, IndexSpec::Flat) => {}
                (FieldType::BinaryVector { .. }, IndexSpec::IvfFlat { nlist }) => {
                    if !(1..=65_536).contains(&nlist) {
                        return Err(Error::invalid(format!(
                            "field {:?}: IVF_FLAT nlist {nlist} must be between 1 and 65536",
                            f.name
                        )));
                    }
                }
                (FieldType::Tlsh, IndexSpec::TlshTree { leaf_size }) => {
                    if !(8..=1024).contains(&leaf_size) {
                        return Err(Error::invalid(format!(
                            "field {:?}: TLSH_TREE leaf_size {leaf_size} must be between 8 and 1024",
                            f.name
                        )));
                    }
                }
                (ty, idx) => {
                    return Err(Error::invalid(format!(
                        "field {:?}: index {} is not available for {} fields",
                        f.name,
                        idx.name(),
                        ty.name()
                    )));
                }
            }
            if f.ty.is_vector() {
                let m = f.default_metric();
                m.check_field(&f.name, f.ty)?;
                if let IndexSpec::IvfFlat { .. } = f.index_spec() {
                    m.check_index(&f.name, f.index_spec())?;
                }
            }
        }
        if !self.fields.iter().any(|f| f.ty.is_vector()) {
            return Err(Error::invalid("a schema needs at least one vector field"));
        }
        Ok(())
    }

    /// Position of a field by name.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// A field by name, or an error naming the unknown field.
    pub fn field(&self, name: &str) -> Result<(usize, &FieldSchema)> {
        self.fields
            .iter()
            .enumerate()
            .find(|(_, f)| f.name == name)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown field {name:?}; fields are: {}",
                    self.fields
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    /// The field that orders rows inside segments: the first vector field
    /// with a clustering index, else the first vector field.
    pub fn primary_vector_field(&self) -> Option<usize> {
        self.fields
            .iter()
            .position(|f| f.ty.is_vector() && !matches!(f.index_spec(), IndexSpec::Flat))
            .or_else(|| self.fields.iter().position(|f| f.ty.is_vector()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(name: &str, dim: u32) -> FieldSchema {
        FieldSchema::new(name, FieldType::BinaryVector { dim })
    }

    #[test]
    fn schema_rules_are_enforced_with_messages() {
        let ok = Schema::new(
            "sha256",
            vec![bin("v", 192), FieldSchema::new("t", FieldType::Tlsh)],
        );
        ok.validate().unwrap();
        for (schema, needle) in [
            (Schema::new("sha256", vec![bin("v", 12)]), "multiple of 8"),
            (Schema::new("sha256", vec![bin("v", 0)]), "multiple of 8"),
            (
                Schema::new("sha256", vec![bin("v", 262_152)]),
                "between 8 and 262144",
            ),
            (
                Schema::new("sha256", vec![bin("v", 8), bin("v", 16)]),
                "duplicate field",
            ),
            (
                Schema::new("sha256", vec![bin("sha256", 8)]),
                "duplicate field",
            ),
            (
                Schema::new("sha256", vec![FieldSchema::new("s", FieldType::Int)]),
                "vector field",
            ),
            (
                Schema::new("1bad", vec![bin("v", 8)]),
                "invalid primary key name",
            ),
            (Schema::new("k", vec![bin("v-x", 8)]), "invalid field name"),
            (
                Schema::new(
                    "k",
                    vec![bin("v", 8).with_index(IndexSpec::TlshTree { leaf_size: 32 })],
                ),
                "not available",
            ),
            (
                Schema::new(
                    "k",
                    vec![bin("v", 8).with_index(IndexSpec::IvfFlat { nlist: 0 })],
                ),
                "nlist",
            ),
            (
                Schema::new(
                    "k",
                    vec![FieldSchema::new("t", FieldType::Tlsh).with_metric(Metric::Jaccard)],
                ),
                "metric",
            ),
        ] {
            let err = schema.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
        }
        for dim in [8, 192, 256, 288, 384, 262_144] {
            Schema::new("k", vec![bin("v", dim)]).validate().unwrap();
        }
    }

    #[test]
    fn keys_are_checked() {
        check_key("abc").unwrap();
        assert!(check_key("").is_err());
        assert!(check_key("a\0b").is_err());
        assert!(check_key(&"x".repeat(513)).is_err());
        check_key(&"x".repeat(512)).unwrap();
    }
}
