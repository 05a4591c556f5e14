//! The 35-byte TLSH record and the reference distance.

/// Length of a TLSH record (128 buckets, 1-byte checksum) in bytes.
pub const DIGEST_LEN: usize = 35;
/// Length of the body (128 buckets of 2 bits) in bytes.
pub const BODY_LEN: usize = 32;
/// Number of buckets in the body.
pub const NUM_BUCKETS: usize = 128;

/// A TLSH digest (128 buckets, 1-byte checksum) as its 35-byte record.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; DIGEST_LEN]);

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
        let (_, tail) = self.0.split_at(3);
        match <&[u8; BODY_LEN]>::try_from(tail) {
            Ok(b) => b,
            Err(_) => unreachable!("a record's tail is 32 bytes"),
        }
    }

    /// Bucket `i` (0..128) in record order: `(rec[3 + i/4] >> (6 - 2*(i%4))) & 3`.
    pub fn bucket(&self, i: usize) -> u8 {
        (self.0[3 + i / 4] >> (6 - 2 * (i % 4))) & 3
    }

    /// The header part of the distance (L-value unless `len` is false, Q ratios, checksum).
    pub fn header_distance(&self, other: &Digest, len: bool) -> u32 {
        let mut d = 0;
        if len {
            d += l_cost(self.lvalue(), other.lvalue());
        }
        d += q_cost(self.q1(), other.q1());
        d += q_cost(self.q2(), other.q2());
        if self.0[0] != other.0[0] {
            d += 1;
        }
        d
    }

    /// The body part of the distance: per bucket 0, 1, 2 or 6 for |Δ| = 0, 1, 2, 3.
    pub fn body_distance(&self, other: &Digest) -> u32 {
        let mut d = 0;
        for j in 3..DIGEST_LEN {
            d += BODY_BYTE_COST[(self.0[j] as usize) << 8 | other.0[j] as usize] as u32;
        }
        d
    }

    /// The reference TLSH distance (`tlsh.diff` with `len = true`, `tlsh.diffxlen` with `len = false`).
    pub fn distance(&self, other: &Digest, len: bool) -> u32 {
        self.header_distance(other, len) + self.body_distance(other)
    }
}

/// Circular difference `min(|x - y|, r - |x - y|)`.
pub const fn mod_diff(x: u32, y: u32, r: u32) -> u32 {
    let d = if x > y { x - y } else { y - x };
    if r - d < d { r - d } else { d }
}

/// Cost of an L-value difference.
pub const fn l_cost(a: u8, b: u8) -> u32 {
    let d = mod_diff(a as u32, b as u32, 256);
    if d <= 1 { d } else { d * 12 }
}

/// Cost of a Q-ratio difference.
pub const fn q_cost(a: u8, b: u8) -> u32 {
    let d = mod_diff(a as u32, b as u32, 16);
    if d <= 1 { d } else { (d - 1) * 12 }
}

const fn bucket_cost(x: u8, y: u8) -> u8 {
    match if x > y { x - y } else { y - x } {
        0 => 0,
        1 => 1,
        2 => 2,
        _ => 6,
    }
}

/// Body cost of two body bytes (4 buckets each), indexed by `a << 8 | b`.
static BODY_BYTE_COST: [u8; 65536] = {
    let mut t = [0u8; 65536];
    let mut i = 0;
    while i < 65536 {
        let a = (i >> 8) as u8;
        let b = (i & 0xff) as u8;
        let mut c = 0;
        let mut k = 0;
        while k < 4 {
            c += bucket_cost((a >> (2 * k)) & 3, (b >> (2 * k)) & 3);
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};
