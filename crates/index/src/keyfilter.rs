//! A collection-wide Bloom filter over the keys stored in segments.
//!
//! Locating the keys of a write batch must tell, for every key, whether some
//! segment holds it. Probing each segment's own filter costs one cache miss
//! per segment per key; this filter answers "in no segment" with one probe.
//! It only grows (a key leaving a segment by delete or merge stays in it,
//! which can only cause an extra, exact lookup), and is rebuilt from the
//! segments' key hashes when it fills up. It lives in memory only and is
//! built on the first write after opening, so reopening stays cheap.

const BITS_PER_KEY: usize = 10;

/// Split-block Bloom filter keyed by xxh3 key hashes.
#[derive(Debug, Clone)]
pub struct KeyFilter {
    words: Vec<u32>,
    blocks: usize,
    capacity: usize,
    inserted: usize,
}

const SALT: [u32; 8] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];

#[inline]
fn pos(h: u64, blocks: usize) -> (usize, [u32; 8]) {
    // Block from the high bits, bits within the block from a different mix
    // of the hash than the segment filters use, so the two are independent.
    let b = ((h.rotate_left(17) >> 32).wrapping_mul(blocks as u64) >> 32) as usize;
    let lo = (h >> 7) as u32 ^ (h >> 41) as u32;
    let mut m = [0u32; 8];
    for i in 0..8 {
        m[i] = 1 << (lo.wrapping_mul(SALT[i]) >> 27);
    }
    (b, m)
}

impl KeyFilter {
    /// An empty filter sized for `capacity` keys.
    pub fn with_capacity(capacity: usize) -> KeyFilter {
        let capacity = capacity.max(1 << 16);
        let blocks = (capacity * BITS_PER_KEY).div_ceil(256);
        KeyFilter {
            words: vec![0; blocks * 8],
            blocks,
            capacity,
            inserted: 0,
        }
    }

    /// Adds a key hash.
    #[inline]
    pub fn insert(&mut self, h: u64) {
        let (b, m) = pos(h, self.blocks);
        if let Some(block) = self.words.get_mut(b * 8..b * 8 + 8) {
            for (w, x) in block.iter_mut().zip(m) {
                *w |= x;
            }
        }
        self.inserted += 1;
    }

    /// False when the key is certainly absent.
    #[inline]
    pub fn may_contain(&self, h: u64) -> bool {
        let (b, m) = pos(h, self.blocks);
        match self.words.get(b * 8..b * 8 + 8) {
            Some(block) => block.iter().zip(m).all(|(w, x)| w & x != 0),
            None => true,
        }
    }

    /// True when more keys were added than it was sized for.
    pub fn is_full(&self) -> bool {
        self.inserted > self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_filter_has_no_false_negatives_and_few_false_positives() {
        let mut f = KeyFilter::with_capacity(100_000);
        for i in 0..100_000u64 {
            f.insert(xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()));
        }
        for i in 0..100_000u64 {
            assert!(f.may_contain(xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes())));
        }
        let fp = (100_000..200_000u64)
            .filter(|i| f.may_contain(xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes())))
            .count();
        assert!(fp < 2_000, "{fp} false positives in 100000");
        assert!(!f.is_full());
    }
}
