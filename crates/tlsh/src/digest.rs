//! The 35-byte TLSH record and the reference distance.

/// Length of a TLSH record (128 buckets, 1-byte checksum) in bytes.
pub const DIGEST_LEN: usize = 35;
/// Length of the body (128 buckets of 2 bits) in bytes.
pub const BODY_LEN: usize = 32;
/// Number of buckets in the body.
pub const NUM_BUCKETS: usize = 128;

/// A TLSH digest (128 buckets, 1-byte checksum) as its 35-byte record.
///
/// `Display` prints the canonical `T1` + 70 upper-case hex digits; see
/// [`Digest::parse`] and [`Digest::parse_lenient`] for the accepted spellings.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub(crate) [u8; DIGEST_LEN]);

impl Digest {
    /// Wraps a record. Every 35-byte value is a syntactically valid record.
    pub const fn from_bytes(bytes: [u8; DIGEST_LEN]) -> Digest {
        Digest(bytes)
    }

    /// The record bytes.
    pub const fn as_bytes(&self) -> &[u8; DIGEST_LEN] {
        &self.0
    }

    /// The checksum byte as stored (nibble-swapped; only equality matters).
    pub const fn checksum_byte(&self) -> u8 {
        self.0[0]
    }

    /// The checksum value as the reference prints it (nibbles swapped back).
    pub const fn checksum(&self) -> u8 {
        self.0[0].rotate_left(4)
    }

    /// The L-value (log length).
    pub const fn lvalue(&self) -> u8 {
        self.0[1].rotate_left(4)
    }

    /// The Q1 ratio (0..16).
    pub const fn q1(&self) -> u8 {
        self.0[2] >> 4
    }

    /// The Q2 ratio (0..16).
    pub const fn q2(&self) -> u8 {
        self.0[2] & 0x0f
    }

    /// The 32 body bytes.
    pub fn body(&self) -> &[u8; BODY_LEN] {
        let [_, _, _, body @ ..] = &self.0;
        body
    }

    /// Bucket `i` (0..128) in record order: `(rec[3 + i/4] >> (6 - 2*(i%4))) & 3`. This is the
    /// reference's `BucketValue(i)` (`tlsh_parts`). Returns 0 for `i >= 128`.
    pub fn bucket(&self, i: usize) -> u8 {
        match self.body().get(i / 4) {
            Some(&b) if i < NUM_BUCKETS => (b >> (6 - 2 * (i % 4))) & 3,
            _ => 0,
        }
    }

    /// The header part of the distance (L-value unless `len` is false, Q ratios, checksum).
    #[inline]
    pub fn header_distance(&self, other: &Digest, len: bool) -> u32 {
        let [c1, l1, q1, ..] = self.0;
        let [c2, l2, q2, ..] = other.0;
        // Swapped nibbles do not change a wrapping difference's cost, so no swap back is needed
        // for the checksum; the L-value is swapped back (rotations do not commute with `-`).
        let mut d = u32::from(c1 != c2);
        if len {
            d += lookup(&L_COST, l1.rotate_left(4).wrapping_sub(l2.rotate_left(4)));
        }
        d += lookup(&Q_COST, (q1 >> 4).wrapping_sub(q2 >> 4) & 0x0f);
        d + lookup(&Q_COST, q1.wrapping_sub(q2) & 0x0f)
    }

    /// The body part of the distance: per bucket 0, 1, 2 or 6 for |Δ| = 0, 1, 2, 3.
    ///
    /// Computed bit-parallel on four 64-bit words (32 buckets each) with popcounts; equal to the
    /// reference's byte-pair table (`bit_pairs_diff_table`), which [`body_byte_cost`] exposes and
    /// the tests compare against.
    #[inline]
    pub fn body_distance(&self, other: &Digest) -> u32 {
        let a = self.body_words();
        let b = other.body_words();
        let mut d = 0;
        for (x, y) in a.into_iter().zip(b) {
            d += word_cost(x, y);
        }
        d
    }

    /// The reference TLSH distance (`tlsh.diff` with `len = true`, `tlsh.diffxlen` with `len = false`).
    #[inline]
    pub fn distance(&self, other: &Digest, len: bool) -> u32 {
        self.header_distance(other, len) + self.body_distance(other)
    }

    #[inline(always)]
    fn body_words(&self) -> [u64; 4] {
        let [
            _,
            _,
            _,
            b0,
            b1,
            b2,
            b3,
            b4,
            b5,
            b6,
            b7,
            c0,
            c1,
            c2,
            c3,
            c4,
            c5,
            c6,
            c7,
            d0,
            d1,
            d2,
            d3,
            d4,
            d5,
            d6,
            d7,
            e0,
            e1,
            e2,
            e3,
            e4,
            e5,
            e6,
            e7,
        ] = self.0;
        [
            u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
            u64::from_le_bytes([c0, c1, c2, c3, c4, c5, c6, c7]),
            u64::from_le_bytes([d0, d1, d2, d3, d4, d5, d6, d7]),
            u64::from_le_bytes([e0, e1, e2, e3, e4, e5, e6, e7]),
        ]
    }
}

/// `l_cost` by the wrapping difference of the two L-values.
// Built at compile time: an out-of-range index here is a build error, never a runtime panic.
#[allow(clippy::indexing_slicing)]
static L_COST: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = l_cost(i as u8, 0) as u16;
        i += 1;
    }
    t
};

/// `q_cost` by the wrapping difference of the two Q ratios (mod 16).
// Built at compile time: an out-of-range index here is a build error, never a runtime panic.
#[allow(clippy::indexing_slicing)]
static Q_COST: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 16 {
        t[i] = q_cost(i as u8, 0) as u16;
        i += 1;
    }
    t
};

#[inline(always)]
fn lookup(table: &[u16; 256], i: u8) -> u32 {
    match table.get(usize::from(i)) {
        Some(&v) => u32::from(v),
        None => 0,
    }
}

const LOW_BITS: u64 = 0x5555_5555_5555_5555;

/// Body cost of 32 bucket pairs packed two bits each (lanes at even bit offsets).
///
/// Per lane with `z = x ^ y`: z = 00 → 0; 01 → 1; 10 → 2; 11 → 1 for {1, 2} and 6 for {0, 3}.
/// {0, 3} is the z = 11 case where `x`'s two bits are equal. So the cost is
/// `popcount(z0) + 2·popcount(z1 & !z0) + 5·popcount(z1 & z0 & same(x))`.
#[inline(always)]
const fn word_cost(x: u64, y: u64) -> u32 {
    let z = x ^ y;
    let z0 = z & LOW_BITS;
    let z1 = (z >> 1) & LOW_BITS;
    let same = !((x >> 1) ^ x) & LOW_BITS;
    let both = z0 & z1;
    z0.count_ones() + 2 * (z1 & !z0).count_ones() + 5 * (both & same).count_ones()
}

/// Circular difference `min(|x - y|, r - |x - y|)`. Meant for `x, y < r` (L-values with
/// `r = 256`, Q ratios with `r = 16`); saturates instead of overflowing otherwise.
pub const fn mod_diff(x: u32, y: u32, r: u32) -> u32 {
    let d = x.abs_diff(y);
    let other = r.saturating_sub(d);
    if other < d { other } else { d }
}

/// Cost of an L-value difference.
pub const fn l_cost(a: u8, b: u8) -> u32 {
    let d = mod_diff(a as u32, b as u32, 256);
    if d <= 1 { d } else { d * 12 }
}

/// Cost of a Q-ratio difference (arguments are nibbles, 0..16).
pub const fn q_cost(a: u8, b: u8) -> u32 {
    let d = mod_diff((a & 0x0f) as u32, (b & 0x0f) as u32, 16);
    if d <= 1 { d } else { (d - 1) * 12 }
}

const fn bucket_cost(x: u8, y: u8) -> u8 {
    match x.abs_diff(y) {
        0 => 0,
        1 => 1,
        2 => 2,
        _ => 6,
    }
}

/// Body cost of two body bytes (4 buckets each): the reference's `bit_pairs_diff_table[a][b]`.
pub const fn body_byte_cost(a: u8, b: u8) -> u32 {
    let mut c = 0;
    let mut k = 0;
    while k < 4 {
        c += bucket_cost((a >> (2 * k)) & 3, (b >> (2 * k)) & 3) as u32;
        k += 1;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_cost_equals_byte_table_for_every_byte_pair() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                // Put the pair in every byte position of a word.
                for pos in 0..8 {
                    let x = u64::from(a) << (8 * pos);
                    let y = u64::from(b) << (8 * pos);
                    assert_eq!(
                        word_cost(x, y),
                        body_byte_cost(a, b),
                        "{a:#x} {b:#x} @{pos}"
                    );
                }
            }
        }
    }

    #[test]
    fn body_distance_equals_bytewise_sum() {
        let mut x = Digest([0; DIGEST_LEN]);
        let mut y = Digest([0; DIGEST_LEN]);
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            for i in 0..DIGEST_LEN {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                x.0[i] = s as u8;
                y.0[i] = (s >> 8) as u8;
            }
            let want: u32 = x
                .body()
                .iter()
                .zip(y.body())
                .map(|(&a, &b)| body_byte_cost(a, b))
                .sum();
            assert_eq!(x.body_distance(&y), want);
        }
    }

    #[test]
    fn reference_table_corners() {
        // Spot values of the reference's bit_pairs_diff_table.
        assert_eq!(body_byte_cost(0, 0), 0);
        assert_eq!(body_byte_cost(0, 3), 6);
        assert_eq!(body_byte_cost(0, 0xff), 24);
        assert_eq!(body_byte_cost(1, 0), 1);
        assert_eq!(body_byte_cost(0x0f, 0xf0), 24);
        assert_eq!(body_byte_cost(0x1b, 0xe4), 1 + 1 + 6 + 6);
    }

    #[test]
    fn header_tables_equal_formula() {
        let mut x = Digest([0; DIGEST_LEN]);
        let mut y = Digest([0; DIGEST_LEN]);
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                x.0[..3].copy_from_slice(&[a, a, a]);
                y.0[..3].copy_from_slice(&[b, b.rotate_left(3), b]);
                for len in [true, false] {
                    let mut want = q_cost(x.q1(), y.q1()) + q_cost(x.q2(), y.q2());
                    want += u32::from(x.checksum() != y.checksum());
                    if len {
                        want += l_cost(x.lvalue(), y.lvalue());
                    }
                    assert_eq!(x.header_distance(&y, len), want, "{a} {b} {len}");
                }
            }
        }
    }

    #[test]
    fn bucket_out_of_range_is_zero() {
        let d = Digest([0xff; DIGEST_LEN]);
        assert_eq!(d.bucket(127), 3);
        assert_eq!(d.bucket(128), 0);
        assert_eq!(d.bucket(usize::MAX), 0);
    }

    #[test]
    fn mod_diff_never_overflows() {
        assert_eq!(mod_diff(0, 255, 256), 1);
        assert_eq!(mod_diff(0, 15, 16), 1);
        assert_eq!(mod_diff(3, 300, 16), 0);
        assert_eq!(mod_diff(u32::MAX, 0, 16), 0);
    }
}
