//! IVF_FLAT for binary vectors: k-majority clustering (k-means with Hamming
//! distance and a per-bit majority vote as the centroid update), inverted
//! lists, and probe selection. No crate does k-majority (the surveyed
//! k-means crates are float-only), so it is written here.

use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::simd_binary;

/// Training points per list (the peer benchmark used 32 at 1M).
pub const TRAIN_PER_LIST: usize = 32;
/// k-majority iterations.
pub const ITERATIONS: usize = 10;

/// A trained IVF: centroids (`nlist × width` bytes) and the list of each row.
#[derive(Debug, Clone)]
pub struct Ivf {
    /// Bytes per vector.
    pub width: usize,
    /// Centroids, row-major.
    pub centroids: Vec<u8>,
    /// Number of lists.
    pub nlist: usize,
}

/// The first nearest centroid of `v` and its distance (the plain loop:
/// `if d < best { best = (d, i) }`, through the fast Hamming scan).
fn nearest(centroids: &[u8], width: usize, v: &[u8]) -> (u32, u32) {
    let mut best = (u32::MAX, 0u32);
    if width == 0 || v.len() != width {
        return (best.1, best.0);
    }
    simd_binary::scan(v, centroids, u32::MAX, |i, d| {
        best = (d, i as u32);
        d
    });
    (best.1, best.0)
}

impl Ivf {
    /// Trains `nlist` centroids on `data` (`n × width` bytes).
    pub fn train(data: &[u8], width: usize, nlist: usize, seed: u64) -> Ivf {
        let n = data.len() / width.max(1);
        let nlist = nlist.clamp(1, n.max(1));
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let row = |i: usize| data.get(i * width..(i + 1) * width).unwrap_or(&[]);
        let ns = n.min(nlist * TRAIN_PER_LIST).max(nlist.min(n));
        let sample: Vec<usize> = if ns >= n {
            (0..n).collect()
        } else {
            rand::seq::index::sample(&mut rng, n, ns).into_vec()
        };
        let mut centroids = Vec::with_capacity(nlist * width);
        if n == 0 {
            centroids.resize(nlist * width, 0);
            return Ivf {
                width,
                centroids,
                nlist,
            };
        }
        for &i in sample.iter().take(nlist) {
            centroids.extend_from_slice(row(i));
        }
        while centroids.len() < nlist * width {
            centroids.extend_from_slice(row(rng.random_range(0..n)));
        }
        for _ in 0..ITERATIONS {
            let assign: Vec<u32> = sample
                .par_iter()
                .map(|&i| nearest(&centroids, width, row(i)).0)
                .collect();
            // Per-bit majority vote.
            let mut counts = vec![0u32; nlist * width * 8];
            let mut sizes = vec![0u32; nlist];
            for (&i, &c) in sample.iter().zip(&assign) {
                let c = c as usize;
                sizes[c] += 1;
                let base = c * width * 8;
                for (b, byte) in row(i).iter().enumerate() {
                    if *byte == 0 {
                        continue;
                    }
                    for bit in 0..8 {
                        if byte >> bit & 1 == 1 {
                            counts[base + b * 8 + bit] += 1;
                        }
                    }
                }
            }
            for c in 0..nlist {
                let out = &mut centroids[c * width..(c + 1) * width];
                if sizes[c] == 0 {
                    out.copy_from_slice(row(sample[rng.random_range(0..sample.len())]));
                    continue;
                }
                for (b, o) in out.iter_mut().enumerate() {
                    let mut v = 0u8;
                    for bit in 0..8 {
                        if 2 * counts[c * width * 8 + b * 8 + bit] > sizes[c] {
                            v |= 1 << bit;
                        }
                    }
                    *o = v;
                }
            }
        }
        Ivf {
            width,
            centroids,
            nlist,
        }
    }

    /// The list of every vector of `data`.
    pub fn assign(&self, data: &[u8]) -> Vec<u32> {
        data.par_chunks_exact(self.width)
            .map(|v| nearest(&self.centroids, self.width, v).0)
            .collect()
    }
}

/// Orders rows by list: returns the permutation (position → row) and the
/// `nlist + 1` list offsets.
pub fn lists(assign: &[u32], nlist: usize) -> (Vec<u32>, Vec<u64>) {
    let mut offs = vec![0u64; nlist + 1];
    for &a in assign {
        if let Some(o) = offs.get_mut(a as usize + 1) {
            *o += 1;
        }
    }
    for i in 0..nlist {
        offs[i + 1] += offs[i];
    }
    let mut fill: Vec<u64> = offs.clone();
    let mut order = vec![0u32; assign.len()];
    for (row, &a) in assign.iter().enumerate() {
        let f = &mut fill[a as usize];
        order[*f as usize] = row as u32;
        *f += 1;
    }
    (order, offs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_is_the_first_minimum_of_the_plain_loop() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for w in [1usize, 5, 8, 24, 32, 48, 63, 64, 65, 100, 192, 200, 512] {
            let mut cents = vec![0u8; 300 * w];
            rng.fill(&mut cents[..]);
            // Duplicate centroids, so the first of equal minima must win.
            let dup = cents[7 * w..8 * w].to_vec();
            cents[200 * w..201 * w].copy_from_slice(&dup);
            for t in 0..40 {
                let mut v = vec![0u8; w];
                rng.fill(&mut v[..]);
                if t % 4 == 0 {
                    v.copy_from_slice(&dup);
                }
                let mut want = (u32::MAX, 0u32);
                for (i, c) in cents.chunks_exact(w).enumerate() {
                    let d = crate::metric::reference::hamming(c, &v);
                    if d < want.0 {
                        want = (d, i as u32);
                    }
                }
                assert_eq!(nearest(&cents, w, &v), (want.1, want.0), "w {w}");
            }
        }
    }

    #[test]
    fn ivf_lists_partition_all_rows() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let n = 2000;
        let w = 24;
        let mut data = vec![0u8; n * w];
        rng.fill(&mut data[..]);
        let ivf = Ivf::train(&data, w, 32, 1);
        assert_eq!(ivf.centroids.len(), 32 * w);
        let a = ivf.assign(&data);
        let (order, offs) = lists(&a, 32);
        assert_eq!(offs[32] as usize, n);
        let mut seen = order.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..n as u32).collect::<Vec<_>>());
        for l in 0..32 {
            for p in offs[l]..offs[l + 1] {
                assert_eq!(a[order[p as usize] as usize] as usize, l);
            }
        }
    }
}
