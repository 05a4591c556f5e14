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
    capacity: usize,
    inserted: usize,
}

/// The segment filters use `h` itself; this one a rotated hash, so that a key
/// colliding in one filter is unlikely to collide in the other.
#[inline]
fn mix(h: u64) -> u64 {
    h.rotate_left(29)
}

impl KeyFilter {
    /// An empty filter sized for `capacity` keys.
    pub fn with_capacity(capacity: usize) -> KeyFilter {
        let capacity = capacity.max(1 << 16);
        let blocks = crate::sbbf::blocks_for(capacity, BITS_PER_KEY);
        KeyFilter {
            words: vec![0; blocks * 8],
            capacity,
            inserted: 0,
        }
    }

    /// Adds a key hash.
    #[inline]
    pub fn insert(&mut self, h: u64) {
        crate::sbbf::insert(&mut self.words, mix(h));
        self.inserted += 1;
    }

    /// False when the key is certainly absent.
    #[inline]
    pub fn may_contain(&self, h: u64) -> bool {
        crate::sbbf::may_contain(&self.words, mix(h))
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
