//! Exact TLSH distance against a fixed query, and lower bounds for groups of
//! digests. Written here rather than calling `apksift_tlsh::Digest::distance`
//! per row because the query-side work (header cost tables, the body's lane
//! masks) is done once per query and the body cost is computed with 12
//! popcounts over four 64-bit words instead of 32 table lookups; tests check
//! it against the reference distance on random and real digests.

use apksift_tlsh::{DIGEST_LEN, Digest, l_cost, q_cost};

const M55: u64 = 0x5555_5555_5555_5555;

#[inline]
fn w64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

#[inline]
fn body_words(rec: &[u8]) -> [u64; 4] {
    [w64(rec, 3), w64(rec, 11), w64(rec, 19), w64(rec, 27)]
}

/// A query digest prepared for fast distance computations.
#[derive(Clone)]
pub struct TlshQuery {
    digest: Digest,
    with_len: bool,
    /// L cost by the row's raw (nibble-swapped) L byte.
    lcost: [u16; 256],
    /// Q1 + Q2 cost by the row's raw Q byte.
    qcost: [u16; 256],
    checksum: u8,
    body: [u64; 4],
    /// Low bit of each lane: query lane value is 1 or 2.
    s: [u64; 4],
    l: u8,
    q1: u8,
    q2: u8,
    /// near[d][v]: buckets whose query value is at distance d from v (128 bits).
    near: [[[u64; 2]; 4]; 3],
    /// L cost by linear L-value (0 without length), Q cost by Q1 / Q2 ratio.
    lc_lin: [u16; 256],
    q1c: [u16; 16],
    q2c: [u16; 16],
    /// Body and lane masks as bytes (for the SIMD kernels).
    body_b: [u8; 32],
    s_b: [u8; 32],
}

impl std::fmt::Debug for TlshQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlshQuery({}, len={})", self.digest, self.with_len)
    }
}

impl TlshQuery {
    /// Prepares `digest`; `with_len` selects `diff` (true) or `diffxlen` (false).
    pub fn new(digest: Digest, with_len: bool) -> TlshQuery {
        let qb = digest.as_bytes();
        let l = digest.lvalue();
        let (q1, q2) = (digest.q1(), digest.q2());
        let mut lcost = [0u16; 256];
        let mut qcost = [0u16; 256];
        for raw in 0..256usize {
            let rl = (raw as u8).rotate_left(4);
            lcost[raw] = if with_len { l_cost(l, rl) as u16 } else { 0 };
            let (r1, r2) = ((raw >> 4) as u8, (raw & 15) as u8);
            qcost[raw] = (q_cost(q1, r1) + q_cost(q2, r2)) as u16;
        }
        let body = body_words(qb);
        let s = [
            (body[0] ^ (body[0] >> 1)) & M55,
            (body[1] ^ (body[1] >> 1)) & M55,
            (body[2] ^ (body[2] >> 1)) & M55,
            (body[3] ^ (body[3] >> 1)) & M55,
        ];
        let planes = crate::tlsh_tree::value_planes(&body);
        let mut near = [[[0u64; 2]; 4]; 3];
        for (d, nd) in near.iter_mut().enumerate() {
            for (v, nv) in nd.iter_mut().enumerate() {
                for (w, pw) in planes.iter().enumerate() {
                    if (v as i32 - w as i32).unsigned_abs() as usize == d {
                        nv[0] |= pw[0];
                        nv[1] |= pw[1];
                    }
                }
            }
        }
        let mut lc_lin = [0u16; 256];
        for (x, c) in lc_lin.iter_mut().enumerate() {
            *c = if with_len {
                l_cost(l, x as u8) as u16
            } else {
                0
            };
        }
        let mut q1c = [0u16; 16];
        let mut q2c = [0u16; 16];
        for x in 0..16u8 {
            q1c[x as usize] = q_cost(q1, x) as u16;
            q2c[x as usize] = q_cost(q2, x) as u16;
        }
        let mut body_b = [0u8; 32];
        let mut s_b = [0u8; 32];
        for i in 0..4 {
            body_b[i * 8..i * 8 + 8].copy_from_slice(&body[i].to_le_bytes());
            s_b[i * 8..i * 8 + 8].copy_from_slice(&s[i].to_le_bytes());
        }
        TlshQuery {
            lc_lin,
            q1c,
            q2c,
            body_b,
            s_b,
            near,
            digest,
            with_len,
            lcost,
            qcost,
            checksum: qb[0],
            body,
            s,
            l,
            q1,
            q2,
        }
    }

    /// The query digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// True for `diff`, false for `diffxlen`.
    pub fn with_len(&self) -> bool {
        self.with_len
    }

    /// The query body and its lane masks as bytes (record order), for the SIMD kernel.
    pub fn body_bytes_and_s(&self) -> ([u8; 32], [u8; 32]) {
        (self.body_b, self.s_b)
    }

    /// [`TlshQuery::header_lower_bound`] by table look-ups (same value).
    #[inline]
    pub fn header_range_bound(&self, l: (u8, u8), q1: (u8, u8), q2: (u8, u8)) -> u32 {
        #[inline]
        fn rc(t: &[u16], q: u8, (lo, hi): (u8, u8)) -> u32 {
            if lo <= q && q <= hi {
                0
            } else {
                let a = t.get(lo as usize).copied().unwrap_or(0);
                let b = t.get(hi as usize).copied().unwrap_or(0);
                u32::from(a.min(b))
            }
        }
        let lb = if self.with_len {
            rc(&self.lc_lin, self.l, l)
        } else {
            0
        };
        lb + rc(&self.q1c, self.q1, q1) + rc(&self.q2c, self.q2, q2)
    }

    /// Offers to `sink` (as position `base + i`) every 35-byte record `i` of
    /// `records` whose exact distance is at most `sink.bound()`, re-reading
    /// the bound after every offer. Body costs are computed 64 records at a
    /// time with the AVX2 kernel when the CPU has it.
    #[inline]
    pub fn scan(&self, records: &[u8], base: usize, sink: &mut dyn crate::tlsh_tree::TlshSink) {
        let (qb, s) = self.body_bytes_and_s();
        let mut costs = [0u16; 64];
        let mut b = sink.bound();
        for (ci, chunk) in records.chunks(64 * DIGEST_LEN).enumerate() {
            let simd = crate::simd::body_costs(&qb, &s, chunk, &mut costs);
            for (i, r) in chunk.chunks_exact(DIGEST_LEN).enumerate() {
                let h = self.header(r);
                if h > b {
                    continue;
                }
                let body = if simd {
                    u32::from(costs[i])
                } else {
                    self.body(r)
                };
                let d = h + body;
                if d <= b {
                    sink.offer((base + ci * 64 + i) as u32, d);
                    b = sink.bound();
                }
            }
        }
    }

    /// Header part of the distance to a 35-byte record.
    #[inline]
    pub fn header(&self, rec: &[u8]) -> u32 {
        let (c, l, q) = match rec {
            [c, l, q, ..] => (*c, *l, *q),
            _ => return u32::MAX / 2,
        };
        u32::from(self.lcost[l as usize])
            + u32::from(self.qcost[q as usize])
            + u32::from(c != self.checksum)
    }

    /// Body part of the distance to a record.
    #[inline]
    pub fn body(&self, rec: &[u8]) -> u32 {
        let r = body_words(rec);
        let mut d = 0u32;
        #[allow(clippy::needless_range_loop)] // three arrays indexed together
        for i in 0..4 {
            // Per 2-bit lane, (x1, x0) says which bits differ. Both differ means
            // |Δ| = 3 (cost 6) unless the query value is 1 or 2 (s = 1), where it
            // means |Δ| = 1: clearing x1 there leaves cost = x0 + 2·x1 + 3·(x0∧x1).
            let x = self.body[i] ^ r[i];
            let x0 = x & M55;
            let x1 = (x >> 1) & M55 & !(x0 & self.s[i]);
            d += x0.count_ones() + 2 * x1.count_ones() + 3 * (x0 & x1).count_ones();
        }
        d
    }

    /// L1 distance between the bodies (thermometer Hamming): a lower bound of the body part.
    #[inline]
    pub fn body_l1_words(&self, r: &[u64; 4]) -> u32 {
        let mut d = 0u32;
        #[allow(clippy::needless_range_loop)] // three arrays indexed together
        for i in 0..4 {
            let x = self.body[i] ^ r[i];
            let x0 = x & M55;
            let x1 = (x >> 1) & M55;
            d += x0.count_ones() + 2 * x1.count_ones() - 2 * (x0 & x1 & self.s[i]).count_ones();
        }
        d
    }

    /// (L1 distance, number of buckets 3 apart) between the query body and `r`.
    #[inline]
    pub fn body_l1_and_far(&self, r: &[u64; 4]) -> (u32, u32) {
        let (mut d, mut far) = (0u32, 0u32);
        #[allow(clippy::needless_range_loop)] // three arrays indexed together
        for i in 0..4 {
            let x = self.body[i] ^ r[i];
            let x0 = x & M55;
            let x1 = (x >> 1) & M55;
            let both = x0 & x1;
            d += x0.count_ones() + 2 * x1.count_ones() - 2 * (both & self.s[i]).count_ones();
            far += (both & !self.s[i]).count_ones();
        }
        (d, far)
    }

    /// Lower bound of the body cost for digests whose bucket values lie in
    /// per-bucket sets: `planes[v*16..v*16+16]` holds 128 bits, bit k set
    /// when value v occurs in bucket k. Exact per bucket: the cost of the
    /// nearest value in the set.
    #[inline]
    pub fn value_set_lower_bound(&self, planes: &[u8; 64]) -> u32 {
        let mut total = 0u32;
        for half in 0..2 {
            let mut m = [0u64; 3];
            for v in 0..4 {
                let at = v * 16 + half * 8;
                let mut a = [0u8; 8];
                a.copy_from_slice(&planes[at..at + 8]);
                let p = u64::from_le_bytes(a);
                for (d, md) in m.iter_mut().enumerate() {
                    *md |= p & self.near[d][v][half];
                }
            }
            let (m0, m1, m2) = (m[0], m[1], m[2]);
            total += (m1 & !m0).count_ones()
                + 2 * (m2 & !m0 & !m1).count_ones()
                + 6 * (!(m0 | m1 | m2)).count_ones();
        }
        total
    }

    /// Exact TLSH distance to a record.
    #[inline]
    pub fn distance(&self, rec: &[u8]) -> u32 {
        self.header(rec) + self.body(rec)
    }

    /// Exact distance, or `None` as soon as it is known to exceed `max`.
    #[inline]
    pub fn distance_within(&self, rec: &[u8], max: u32) -> Option<u32> {
        let h = self.header(rec);
        if h > max {
            return None;
        }
        let d = h + self.body(rec);
        (d <= max).then_some(d)
    }

    /// Lower bound of the header cost for digests whose L, Q1, Q2 lie in the
    /// given (linear, inclusive) ranges.
    #[inline]
    pub fn header_lower_bound(&self, l: (u8, u8), q1: (u8, u8), q2: (u8, u8)) -> u32 {
        let lb_l = if self.with_len {
            range_cost(self.l, l, 256, l_cost)
        } else {
            0
        };
        lb_l + range_cost(self.q1, q1, 16, q_cost) + range_cost(self.q2, q2, 16, q_cost)
    }
}

/// Minimum of `cost(q, x)` over x in the linear range `[lo, hi]`, where cost
/// grows with the circular distance modulo `modulus`.
#[inline]
fn range_cost(q: u8, (lo, hi): (u8, u8), modulus: u32, cost: impl Fn(u8, u8) -> u32) -> u32 {
    if lo <= q && q <= hi {
        return 0;
    }
    let _ = modulus;
    cost(q, lo).min(cost(q, hi))
}

/// Body words of a record (for node bounds).
#[inline]
pub fn record_body_words(rec: &[u8]) -> [u64; 4] {
    body_words(rec)
}

/// L1 (sum of |Δ| over buckets) between two bodies given as words.
#[inline]
pub fn body_l1(a: &[u64; 4], b: &[u64; 4]) -> u32 {
    let mut d = 0u32;
    for i in 0..4 {
        let x = a[i] ^ b[i];
        let x0 = x & M55;
        let x1 = (x >> 1) & M55;
        let s = (a[i] ^ (a[i] >> 1)) & M55;
        d += x0.count_ones() + 2 * x1.count_ones() - 2 * (x0 & x1 & s).count_ones();
    }
    d
}

/// Checks a record length.
pub fn is_record(b: &[u8]) -> bool {
    b.len() == DIGEST_LEN
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn rand_digest(rng: &mut impl Rng) -> Digest {
        let mut a = [0u8; DIGEST_LEN];
        rng.fill(&mut a[..]);
        Digest::from_bytes(a)
    }

    fn lane(words: &[u64; 4], k: usize) -> u8 {
        ((words[k / 32] >> (2 * (k % 32))) & 3) as u8
    }

    #[test]
    fn kernel_equals_reference_distance() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..20_000 {
            let a = rand_digest(&mut rng);
            let mut b = rand_digest(&mut rng);
            if rng.random_bool(0.5) {
                // near digest: mutate a few bytes of a
                let mut x = *a.as_bytes();
                for _ in 0..rng.random_range(0..6) {
                    let i = rng.random_range(0..DIGEST_LEN);
                    x[i] ^= 1 << rng.random_range(0..8);
                }
                b = Digest::from_bytes(x);
            }
            for len in [true, false] {
                let q = TlshQuery::new(a, len);
                assert_eq!(q.distance(b.as_bytes()), a.distance(&b, len));
                assert_eq!(q.header(b.as_bytes()), a.header_distance(&b, len));
                let d = q.distance(b.as_bytes());
                assert_eq!(q.distance_within(b.as_bytes(), d), Some(d));
                if d > 0 {
                    assert_eq!(q.distance_within(b.as_bytes(), d - 1), None);
                }
            }
            let (wa, wb) = (body_words(a.as_bytes()), body_words(b.as_bytes()));
            let l1: u32 = (0..128)
                .map(|k| (lane(&wa, k) as i32 - lane(&wb, k) as i32).unsigned_abs())
                .sum();
            assert_eq!(body_l1(&wa, &wb), l1);
            assert_eq!(TlshQuery::new(a, true).body_l1_words(&wb), l1);
            assert!(l1 <= a.body_distance(&b));
        }
    }

    #[test]
    fn value_set_bound_equals_naive_and_bounds_members() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let cost = |d: i32| -> u32 { [0, 1, 2, 6][d.unsigned_abs() as usize] };
        for _ in 0..5_000 {
            let q = rand_digest(&mut rng);
            let members: Vec<Digest> = (0..rng.random_range(1..4))
                .map(|_| rand_digest(&mut rng))
                .collect();
            let mut planes = [0u8; 64];
            for m in &members {
                let p = crate::tlsh_tree::value_planes(&body_words(m.as_bytes()));
                for (v, pv) in p.iter().enumerate() {
                    for (h, word) in pv.iter().enumerate() {
                        let at = v * 16 + h * 8;
                        let old = u64::from_le_bytes(planes[at..at + 8].try_into().unwrap());
                        planes[at..at + 8].copy_from_slice(&(old | word).to_le_bytes());
                    }
                }
            }
            let wq = body_words(q.as_bytes());
            let naive: u32 = (0..128)
                .map(|k| {
                    let v = lane(&wq, k) as i32;
                    members
                        .iter()
                        .map(|m| cost(v - lane(&body_words(m.as_bytes()), k) as i32))
                        .min()
                        .unwrap()
                })
                .sum();
            let tq = TlshQuery::new(q, true);
            assert_eq!(tq.value_set_lower_bound(&planes), naive);
            for m in &members {
                assert!(naive <= q.body_distance(m));
                let (l1, far) = tq.body_l1_and_far(&body_words(m.as_bytes()));
                assert_eq!(l1 + 3 * far, q.body_distance(m));
            }
        }
    }

    #[test]
    fn header_bound_is_a_lower_bound_with_wraparound() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..20_000 {
            let q = rand_digest(&mut rng);
            let xs: Vec<Digest> = (0..rng.random_range(1..5))
                .map(|_| rand_digest(&mut rng))
                .collect();
            let lr = (
                xs.iter().map(|d| d.lvalue()).min().unwrap(),
                xs.iter().map(|d| d.lvalue()).max().unwrap(),
            );
            let q1 = (
                xs.iter().map(|d| d.q1()).min().unwrap(),
                xs.iter().map(|d| d.q1()).max().unwrap(),
            );
            let q2 = (
                xs.iter().map(|d| d.q2()).min().unwrap(),
                xs.iter().map(|d| d.q2()).max().unwrap(),
            );
            for len in [true, false] {
                let tq = TlshQuery::new(q, len);
                let lb = tq.header_lower_bound(lr, q1, q2);
                assert_eq!(tq.header_range_bound(lr, q1, q2), lb);
                for x in &xs {
                    let h = q.header_distance(x, len)
                        - u32::from(q.checksum_byte() != x.checksum_byte());
                    assert!(lb <= h, "lb {lb} > header {h}");
                }
            }
        }
    }
}
