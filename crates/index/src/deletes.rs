//! Deleted-row sets with cheap copy-on-write for snapshots: an immutable base
//! bitmap plus a small sorted overlay of recent deletions, folded into a new
//! base when it grows.

use std::sync::Arc;

const FOLD_AT: usize = 2048;

/// Which rows of a part are deleted.
#[derive(Debug, Clone, Default)]
pub struct DeleteSet {
    base: Arc<Vec<u64>>,
    overlay: Arc<Vec<u32>>,
    count: u64,
}

impl DeleteSet {
    /// Nothing deleted.
    pub fn new() -> DeleteSet {
        DeleteSet::default()
    }

    /// From bitmap words (as stored in a delete file).
    pub fn from_words(words: Vec<u64>) -> DeleteSet {
        let count = words.iter().map(|w| u64::from(w.count_ones())).sum();
        DeleteSet {
            base: Arc::new(words),
            overlay: Arc::new(Vec::new()),
            count,
        }
    }

    /// Is `row` deleted?
    #[inline]
    pub fn contains(&self, row: u32) -> bool {
        let r = row as usize;
        if self
            .base
            .get(r / 64)
            .is_some_and(|w| w >> (r % 64) & 1 == 1)
        {
            return true;
        }
        !self.overlay.is_empty() && self.overlay.binary_search(&row).is_ok()
    }

    /// Marks `row` deleted; returns false if it already was.
    pub fn insert(&mut self, row: u32) -> bool {
        if self.contains(row) {
            return false;
        }
        let ov = Arc::make_mut(&mut self.overlay);
        let pos = ov.partition_point(|&x| x < row);
        ov.insert(pos, row);
        self.count += 1;
        if ov.len() >= FOLD_AT {
            self.fold();
        }
        true
    }

    fn fold(&mut self) {
        let ov = std::mem::take(Arc::make_mut(&mut self.overlay));
        let base = Arc::make_mut(&mut self.base);
        for r in ov {
            let r = r as usize;
            if base.len() <= r / 64 {
                base.resize(r / 64 + 1, 0);
            }
            if let Some(w) = base.get_mut(r / 64) {
                *w |= 1 << (r % 64);
            }
        }
    }

    /// Number of deleted rows.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Bitmap words covering `rows` rows (for a delete file).
    pub fn to_words(&self, rows: u32) -> Vec<u64> {
        let mut s = self.clone();
        s.fold();
        let mut w = (*s.base).clone();
        w.resize((rows as usize).div_ceil(64), 0);
        w
    }

    /// Deleted rows in increasing order.
    pub fn rows(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.count as usize);
        for (i, w) in self.base.iter().enumerate() {
            let mut w = *w;
            while w != 0 {
                let b = w.trailing_zeros();
                out.push((i * 64) as u32 + b);
                w &= w - 1;
            }
        }
        out.extend(self.overlay.iter().copied());
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_set_snapshots_are_isolated() {
        let mut d = DeleteSet::new();
        assert!(d.insert(5));
        assert!(!d.insert(5));
        let snap = d.clone();
        for r in 0..5000u32 {
            d.insert(r * 3);
        }
        assert!(snap.contains(5));
        assert!(!snap.contains(3));
        assert!(d.contains(3) && d.contains(14997) && !d.contains(14998));
        assert_eq!(d.count(), 5001);
        assert_eq!(d.rows().len(), 5001);
        let w = d.to_words(15000);
        let e = DeleteSet::from_words(w);
        assert_eq!(e.count(), 5001);
        assert!(e.contains(5) && e.contains(9) && !e.contains(10));
    }
}
