//! The thermometer code of a TLSH body and the header pre-filter.
//!
//! Each of the 128 two-bit body buckets `v ∈ {0,1,2,3}` becomes three bits holding `v` ones,
//! so the 384-bit codes of two digests differ in exactly `Σ|Δv|` bits. TLSH charges a bucket
//! 0, 1, 2 or 6 for `|Δv|` = 0, 1, 2, 3, so
//!
//! ```text
//! Hamming(code(a), code(b)) = Σ|Δv| ≤ body distance ≤ TLSH distance (with or without the L term)
//! ```
//!
//! and a Hamming range search with radius `r + 1` (Milvus keeps `d < radius`) returns every
//! stored digest within TLSH distance `r`: candidate generation is lossless on an exact index
//! (BIN_FLAT), and the exact TLSH distance then re-ranks the candidates.
//!
//! The header terms are each a lower bound of the whole distance too: the L term is `d` for a
//! circular L difference `d ≤ 1` and `12·d` above, the Q terms `d` for `d ≤ 1` and `12·(d−1)`
//! above, so a digest within `r` has its L within `max(1, ⌊r/12⌋)` and each Q ratio within
//! `max(1, ⌊r/12⌋ + 1)` of the query's (circularly). [`header_filter`] turns these into a
//! scalar pre-filter.

use apksift_tlsh::Digest;

/// Bits of a thermometer code.
pub const CODE_BITS: u32 = 384;
/// Bytes of a thermometer code.
pub const CODE_BYTES: usize = 48;

/// The 384-bit thermometer code of a digest's body (bucket `i` in bits `3i..3i+3`,
/// least-significant bit first within each byte).
pub fn code(d: &Digest) -> [u8; CODE_BYTES] {
    let mut out = [0u8; CODE_BYTES];
    for i in 0..128 {
        let v = d.bucket(i) as usize;
        for j in 0..v {
            let bit = 3 * i + j;
            out[bit / 8] |= 1 << (bit % 8);
        }
    }
    out
}

/// Hamming distance of two codes.
pub fn hamming(a: &[u8], b: &[u8]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// Largest circular L difference compatible with a TLSH distance `≤ bound`.
pub fn max_l_diff(bound: u32) -> u32 {
    (bound / 12).max(1)
}

/// Largest circular Q-ratio difference compatible with a TLSH distance `≤ bound`.
pub fn max_q_diff(bound: u32) -> u32 {
    (bound / 12 + 1).max(1)
}

/// `field` within `d` of `x` on a circle of `m` values, as a Milvus expression; `None` when
/// every value qualifies.
fn circular(field: &str, x: u32, d: u32, m: u32) -> Option<String> {
    if 2 * d + 1 >= m {
        return None;
    }
    let lo = (x + m - d) % m;
    let hi = (x + d) % m;
    Some(if lo <= hi {
        format!("({field} >= {lo} and {field} <= {hi})")
    } else {
        format!("({field} >= {lo} or {field} <= {hi})")
    })
}

/// A Milvus expression over the `l`, `q1`, `q2` scalars that every digest within TLSH
/// distance `bound` of `q` satisfies (`with_len` false ignores L, as `diffxlen` does).
/// `None` when it would keep everything.
pub fn header_filter(q: &Digest, bound: u32, with_len: bool) -> Option<String> {
    let mut parts = Vec::new();
    if with_len {
        parts.extend(circular("l", u32::from(q.lvalue()), max_l_diff(bound), 256));
    }
    let dq = max_q_diff(bound);
    parts.extend(circular("q1", u32::from(q.q1()), dq, 16));
    parts.extend(circular("q2", u32::from(q.q2()), dq, 16));
    (!parts.is_empty()).then(|| parts.join(" and "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use apksift_tlsh::{DIGEST_LEN, Digest};

    fn rnd(seed: &mut u64) -> Digest {
        let mut b = [0u8; DIGEST_LEN];
        for x in b.iter_mut() {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *x = *seed as u8;
        }
        Digest::from_bytes(b)
    }

    fn circ_diff(a: u32, b: u32, m: u32) -> u32 {
        let d = a.abs_diff(b);
        d.min(m - d)
    }

    #[test]
    fn hamming_of_codes_bounds_the_tlsh_distance() {
        let mut s = 0x1234_5678_9abc_def1;
        for _ in 0..5000 {
            let (a, b) = (rnd(&mut s), rnd(&mut s));
            let l1: u32 = (0..128)
                .map(|i| u32::from(a.bucket(i).abs_diff(b.bucket(i))))
                .sum();
            let h = hamming(&code(&a), &code(&b));
            assert_eq!(h, l1);
            assert!(h <= a.body_distance(&b));
            assert!(h <= a.distance(&b, false));
            assert!(h <= a.distance(&b, true));
        }
    }

    #[test]
    fn header_bounds_are_lossless() {
        let mut s = 42;
        for _ in 0..20000 {
            let (a, b) = (rnd(&mut s), rnd(&mut s));
            for with_len in [true, false] {
                let d = a.distance(&b, with_len);
                if with_len {
                    assert!(circ_diff(a.lvalue().into(), b.lvalue().into(), 256) <= max_l_diff(d));
                }
                assert!(circ_diff(a.q1().into(), b.q1().into(), 16) <= max_q_diff(d));
                assert!(circ_diff(a.q2().into(), b.q2().into(), 16) <= max_q_diff(d));
            }
        }
    }

    #[test]
    fn circular_ranges() {
        assert_eq!(circular("l", 5, 1, 256).unwrap(), "(l >= 4 and l <= 6)");
        assert_eq!(circular("l", 0, 2, 256).unwrap(), "(l >= 254 or l <= 2)");
        assert_eq!(circular("q1", 15, 1, 16).unwrap(), "(q1 >= 14 or q1 <= 0)");
        assert!(circular("q1", 3, 8, 16).is_none());
    }
}
