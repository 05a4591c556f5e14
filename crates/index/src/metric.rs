//! Distance metrics with Milvus 1.x's definitions for binary vectors, plus
//! TLSH distance for TLSH fields.
//!
//! | metric | definition | edge cases |
//! |---|---|---|
//! | `HAMMING` | popcount(a xor b) | integer 0..=dim |
//! | `JACCARD` | 1 − \|a∧b\| / \|a∨b\| | both vectors all-zero: **1.0** (Milvus 1.x `JaccardComputer*`, `bvec_jaccard`: `accu_den == 0 ? 1.0 : …`) |
//! | `TANIMOTO` | −log2(1 − Jaccard) | Jaccard 0 → 0 (not −0); Jaccard 1 (disjoint or both all-zero) → +∞ |
//! | `SUBSTRUCTURE` | 0 when every bit of the query is set in the row (query ⊆ row, `(q & r) == q`), otherwise no match | only matches are returned, all at distance 0 |
//! | `SUPERSTRUCTURE` | 0 when every bit of the row is set in the query (row ⊆ query, `(q & r) == r`), otherwise no match | as above |
//! | `TLSH` | reference TLSH `diff` (header + body) | TLSH fields only |
//! | `TLSH_XLEN` | TLSH `diffxlen` (no length term) | TLSH fields only |
//!
//! Milvus 1.x sources: `core/src/index/thirdparty/faiss/utils/jaccard-inl.h`,
//! `substructure-inl.h`, `superstructure-inl.h`, `BinaryDistance.cpp`
//! (`Jaccard_2_Tanimoto`). Smaller is closer for every metric.

use serde::{Deserialize, Serialize};

use crate::schema::{FieldType, IndexSpec};
use crate::{Error, Result};

/// A distance metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Metric {
    /// Number of differing bits.
    Hamming,
    /// 1 − |a∧b| / |a∨b|.
    Jaccard,
    /// −log2(1 − Jaccard).
    Tanimoto,
    /// Matches rows that contain the query (query ⊆ row).
    Substructure,
    /// Matches rows contained in the query (row ⊆ query).
    Superstructure,
    /// TLSH distance with the length term.
    Tlsh,
    /// TLSH distance without the length term (`diffxlen`).
    TlshXlen,
}

impl Metric {
    /// Parses Milvus-style names (case-insensitive).
    pub fn parse(s: &str) -> Result<Metric> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "HAMMING" => Metric::Hamming,
            "JACCARD" => Metric::Jaccard,
            "TANIMOTO" => Metric::Tanimoto,
            "SUBSTRUCTURE" => Metric::Substructure,
            "SUPERSTRUCTURE" => Metric::Superstructure,
            "TLSH" => Metric::Tlsh,
            "TLSH_XLEN" | "TLSHXLEN" => Metric::TlshXlen,
            _ => {
                return Err(Error::invalid(format!(
                    "unknown metric {s:?}; metrics are HAMMING, JACCARD, TANIMOTO, SUBSTRUCTURE, SUPERSTRUCTURE, TLSH, TLSH_XLEN"
                )));
            }
        })
    }

    /// Milvus-style name.
    pub fn name(&self) -> &'static str {
        match self {
            Metric::Hamming => "HAMMING",
            Metric::Jaccard => "JACCARD",
            Metric::Tanimoto => "TANIMOTO",
            Metric::Substructure => "SUBSTRUCTURE",
            Metric::Superstructure => "SUPERSTRUCTURE",
            Metric::Tlsh => "TLSH",
            Metric::TlshXlen => "TLSH_XLEN",
        }
    }

    /// True for the TLSH metrics.
    pub fn is_tlsh(&self) -> bool {
        matches!(self, Metric::Tlsh | Metric::TlshXlen)
    }

    /// True for the match-only structure metrics.
    pub fn is_structure(&self) -> bool {
        matches!(self, Metric::Substructure | Metric::Superstructure)
    }

    /// Checks that this metric applies to a field type.
    pub fn check_field(&self, field: &str, ty: FieldType) -> Result<()> {
        let ok = match ty {
            FieldType::Tlsh => self.is_tlsh(),
            FieldType::BinaryVector { .. } => !self.is_tlsh(),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "metric {} does not apply to {} field {field:?} (binary fields: HAMMING, JACCARD, TANIMOTO, SUBSTRUCTURE, SUPERSTRUCTURE; TLSH fields: TLSH, TLSH_XLEN)",
                self.name(),
                ty.name()
            )))
        }
    }

    /// Checks that an index can answer this metric.
    pub fn check_index(&self, field: &str, index: IndexSpec) -> Result<()> {
        let ok = match index {
            IndexSpec::Flat => true,
            IndexSpec::IvfFlat { .. } => {
                matches!(self, Metric::Hamming | Metric::Jaccard | Metric::Tanimoto)
            }
            IndexSpec::TlshTree { .. } => self.is_tlsh(),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "index {} of field {field:?} does not support metric {} (IVF_FLAT: HAMMING, JACCARD, TANIMOTO; SUBSTRUCTURE/SUPERSTRUCTURE need FLAT)",
                index.name(),
                self.name()
            )))
        }
    }
}

/// popcount(a xor b) over equal-length byte slices.
#[inline]
pub fn hamming(a: &[u8], b: &[u8]) -> u32 {
    let mut d = 0u32;
    let mut ac = a.chunks_exact(8);
    let mut bc = b.chunks_exact(8);
    for (x, y) in (&mut ac).zip(&mut bc) {
        d += (word(x) ^ word(y)).count_ones();
    }
    for (x, y) in ac.remainder().iter().zip(bc.remainder()) {
        d += (x ^ y).count_ones();
    }
    d
}

/// (|a∧b|, |a∨b|).
#[inline]
pub fn and_or_counts(a: &[u8], b: &[u8]) -> (u32, u32) {
    let (mut n, mut u) = (0u32, 0u32);
    let mut ac = a.chunks_exact(8);
    let mut bc = b.chunks_exact(8);
    for (x, y) in (&mut ac).zip(&mut bc) {
        let (x, y) = (word(x), word(y));
        n += (x & y).count_ones();
        u += (x | y).count_ones();
    }
    for (x, y) in ac.remainder().iter().zip(bc.remainder()) {
        n += (x & y).count_ones();
        u += (x | y).count_ones();
    }
    (n, u)
}

/// Jaccard distance with Milvus 1.x's edge case (both all-zero → 1.0).
#[inline]
pub fn jaccard_from_counts(and: u32, or: u32) -> f64 {
    if or == 0 {
        1.0
    } else {
        f64::from(or - and) / f64::from(or)
    }
}

/// Tanimoto distance from a Jaccard distance (0 stays 0, 1 becomes +∞).
#[inline]
pub fn tanimoto_from_jaccard(j: f64) -> f64 {
    if j == 0.0 { 0.0 } else { -(1.0 - j).log2() }
}

/// True when every bit of `sub` is set in `sup`.
#[inline]
pub fn is_subset(sub: &[u8], sup: &[u8]) -> bool {
    sub.iter().zip(sup).all(|(a, b)| a & b == *a)
}

#[inline]
fn word(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_le_bytes(a)
}

/// Distance of a binary query to a binary row; `None` when a structure
/// metric does not match (the row is not a result).
#[inline]
pub fn binary_distance(metric: Metric, q: &[u8], r: &[u8]) -> Option<f64> {
    match metric {
        Metric::Hamming => Some(f64::from(hamming(q, r))),
        Metric::Jaccard => {
            let (a, o) = and_or_counts(q, r);
            Some(jaccard_from_counts(a, o))
        }
        Metric::Tanimoto => {
            let (a, o) = and_or_counts(q, r);
            Some(tanimoto_from_jaccard(jaccard_from_counts(a, o)))
        }
        Metric::Substructure => is_subset(q, r).then_some(0.0),
        Metric::Superstructure => is_subset(r, q).then_some(0.0),
        Metric::Tlsh | Metric::TlshXlen => None,
    }
}

/// Plain bit-by-bit definitions, used by tests as the reference.
pub mod reference {
    fn bit(v: &[u8], i: usize) -> bool {
        v.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 == 1)
    }

    /// Hamming by bits.
    pub fn hamming(a: &[u8], b: &[u8]) -> u32 {
        (0..a.len() * 8).filter(|&i| bit(a, i) != bit(b, i)).count() as u32
    }

    /// Jaccard by bits (Milvus 1.x: both empty → 1.0).
    pub fn jaccard(a: &[u8], b: &[u8]) -> f64 {
        let inter = (0..a.len() * 8).filter(|&i| bit(a, i) && bit(b, i)).count();
        let union = (0..a.len() * 8).filter(|&i| bit(a, i) || bit(b, i)).count();
        if union == 0 {
            1.0
        } else {
            1.0 - inter as f64 / union as f64
        }
    }

    /// Tanimoto by bits.
    pub fn tanimoto(a: &[u8], b: &[u8]) -> f64 {
        let j = jaccard(a, b);
        if j == 0.0 { 0.0 } else { -(1.0 - j).log2() }
    }

    /// query ⊆ row.
    pub fn substructure(q: &[u8], r: &[u8]) -> bool {
        (0..q.len() * 8).all(|i| !bit(q, i) || bit(r, i))
    }

    /// row ⊆ query.
    pub fn superstructure(q: &[u8], r: &[u8]) -> bool {
        (0..q.len() * 8).all(|i| !bit(r, i) || bit(q, i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn metrics_equal_reference(len in 1usize..80, seed in any::<u64>()) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let density: f64 = rng.random();
            let mut mk = || -> Vec<u8> { (0..len).map(|_| (0..8).fold(0u8, |acc, b| acc | (u8::from(rng.random_bool(density)) << b))).collect() };
            let a = mk();
            let b = mk();
            prop_assert_eq!(hamming(&a, &b), reference::hamming(&a, &b));
            let j = binary_distance(Metric::Jaccard, &a, &b).unwrap();
            prop_assert!((j - reference::jaccard(&a, &b)).abs() < 1e-12);
            let t = binary_distance(Metric::Tanimoto, &a, &b).unwrap();
            let rt = reference::tanimoto(&a, &b);
            prop_assert!(t == rt || (t - rt).abs() < 1e-9, "{} vs {}", t, rt);
            prop_assert_eq!(binary_distance(Metric::Substructure, &a, &b).is_some(), reference::substructure(&a, &b));
            prop_assert_eq!(binary_distance(Metric::Superstructure, &a, &b).is_some(), reference::superstructure(&a, &b));
            let sub: Vec<u8> = a.iter().zip(&b).map(|(x, y)| x & y).collect();
            prop_assert_eq!(binary_distance(Metric::Substructure, &sub, &a), Some(0.0));
            prop_assert_eq!(binary_distance(Metric::Superstructure, &a, &sub), Some(0.0));
        }
    }

    #[test]
    fn metric_edge_cases_follow_milvus_1x() {
        let z = [0u8; 24];
        let ones = [0xffu8; 24];
        assert_eq!(binary_distance(Metric::Jaccard, &z, &z), Some(1.0));
        assert_eq!(
            binary_distance(Metric::Tanimoto, &z, &z),
            Some(f64::INFINITY)
        );
        assert_eq!(binary_distance(Metric::Jaccard, &ones, &ones), Some(0.0));
        let t = binary_distance(Metric::Tanimoto, &ones, &ones).unwrap();
        assert!(t == 0.0 && t.is_sign_positive());
        assert_eq!(binary_distance(Metric::Jaccard, &z, &ones), Some(1.0));
        assert_eq!(binary_distance(Metric::Hamming, &z, &ones), Some(192.0));
        // The empty query is a substructure of everything; the empty row of nothing but the empty query's superstructure.
        assert_eq!(binary_distance(Metric::Substructure, &z, &ones), Some(0.0));
        assert_eq!(binary_distance(Metric::Superstructure, &z, &ones), None);
        assert_eq!(
            binary_distance(Metric::Superstructure, &ones, &z),
            Some(0.0)
        );
        assert!(Metric::parse("jaccard").is_ok());
        assert!(
            Metric::parse("L2")
                .unwrap_err()
                .to_string()
                .contains("unknown metric")
        );
    }
}
