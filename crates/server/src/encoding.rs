//! JSON encodings of field values.
//!
//! | field type | JSON |
//! |---|---|
//! | `binary_vector` | a string: standard base64 with padding (RFC 4648 §4, the default) or hex (either case), chosen per request by `"encoding": "base64" \| "hex"` |
//! | `tlsh` | a string: `T1` + 70 hex digits (`t1` and the legacy 70-hex form are accepted; responses use `T1` upper case) |
//! | `string` | a string |
//! | `int` | an integer |
//! | `bool` | `true` / `false` |
//!
//! `null` (or an absent field) is a missing value of a nullable field.
//! Bit `i` of a binary vector is bit `i % 8` (least significant first) of byte `i / 8`.

use apksift_index::schema::FieldType;
use apksift_index::{QueryVector, Value};
use apksift_tlsh::Digest;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How binary vectors are written in JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Standard base64 with padding.
    #[default]
    Base64,
    /// Hexadecimal, two digits per byte.
    Hex,
}

impl Encoding {
    /// Encodes bytes.
    pub fn encode(self, bytes: &[u8]) -> String {
        match self {
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
            Encoding::Hex => hex::encode(bytes),
        }
    }

    /// Decodes a string; the error names the encoding.
    pub fn decode(self, s: &str) -> Result<Vec<u8>, String> {
        match self {
            Encoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| format!("invalid base64 ({e}); use standard base64 with padding, or set \"encoding\": \"hex\"")),
            Encoding::Hex => hex::decode(s).map_err(|e| format!("invalid hex ({e})")),
        }
    }
}

/// Parses a TLSH digest given by a user; the error explains the rule broken.
pub fn parse_digest(s: &str) -> Result<Digest, String> {
    Digest::parse_lenient(s).map_err(|e| {
        let shown: String = s.chars().take(80).collect();
        format!("{e} (got {shown:?})")
    })
}

/// A stored value as JSON.
pub fn value_to_json(v: &Value, enc: Encoding) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Binary(b) => serde_json::Value::String(enc.encode(b)),
        Value::Tlsh(d) => serde_json::Value::String(d.to_canonical()),
        Value::Str(s) => serde_json::Value::String(s.clone()),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Bool(b) => serde_json::Value::Bool(*b),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A JSON value of a field as an engine value; the error names what is wrong
/// (the caller adds the row and field).
pub fn json_to_value(v: &serde_json::Value, ty: FieldType, enc: Encoding) -> Result<Value, String> {
    use serde_json::Value as J;
    if v.is_null() {
        return Ok(Value::Null);
    }
    match ty {
        FieldType::BinaryVector { dim } => {
            let J::String(s) = v else {
                return Err(format!(
                    "expected a {} string for a binary vector, got {}",
                    enc_name(enc),
                    json_kind(v)
                ));
            };
            let b = enc.decode(s)?;
            let want = dim as usize / 8;
            if b.len() != want {
                return Err(format!(
                    "wrong vector length: {} bytes decoded, the field is a binary vector of dim {dim} ({want} bytes)",
                    b.len()
                ));
            }
            Ok(Value::Binary(b))
        }
        FieldType::Tlsh => match v {
            J::String(s) => parse_digest(s).map(Value::Tlsh),
            _ => Err(format!(
                "expected a TLSH digest string (T1 + 70 hex digits), got {}",
                json_kind(v)
            )),
        },
        FieldType::String { .. } => match v {
            J::String(s) => Ok(Value::Str(s.clone())),
            _ => Err(format!("expected a string, got {}", json_kind(v))),
        },
        FieldType::Int => v
            .as_i64()
            .map(Value::Int)
            .ok_or_else(|| format!("expected a 64-bit integer, got {v}")),
        FieldType::Bool => v
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| format!("expected a boolean, got {}", json_kind(v))),
    }
}

fn enc_name(e: Encoding) -> &'static str {
    match e {
        Encoding::Base64 => "base64",
        Encoding::Hex => "hex",
    }
}

/// A query vector given as a string, for a field of type `ty`.
pub fn query_vector(s: &str, ty: FieldType, enc: Encoding) -> Result<QueryVector, String> {
    match json_to_value(&serde_json::Value::String(s.to_string()), ty, enc)? {
        Value::Binary(b) => Ok(QueryVector::Binary(b)),
        Value::Tlsh(d) => Ok(QueryVector::Tlsh(d)),
        _ => Err(format!("field of type {} is not a vector field", ty.name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_names_errors() {
        let b = vec![0u8, 1, 2, 255];
        for e in [Encoding::Base64, Encoding::Hex] {
            assert_eq!(e.decode(&e.encode(&b)).unwrap(), b);
        }
        assert_eq!(Encoding::Hex.encode(&b), "000102ff");
        assert_eq!(Encoding::Base64.encode(&b), "AAEC/w==");
        assert!(
            Encoding::Base64
                .decode("AAEC/w")
                .unwrap_err()
                .contains("base64")
        );
        let ty = FieldType::BinaryVector { dim: 32 };
        let err = json_to_value(&serde_json::json!("AAEC"), ty, Encoding::Base64).unwrap_err();
        assert!(
            err.contains("wrong vector length") && err.contains("dim 32"),
            "{err}"
        );
        let err = json_to_value(
            &serde_json::json!("T1zz"),
            FieldType::Tlsh,
            Encoding::Base64,
        )
        .unwrap_err();
        assert!(err.contains("not a TLSH digest"), "{err}");
        assert!(json_to_value(&serde_json::json!(1.5), FieldType::Int, Encoding::Hex).is_err());
    }
}
