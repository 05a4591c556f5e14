//! Hamming scans for binary vectors: one query against a run of rows
//! ([`scan`]) and a group of up to [`LANES`] queries against a run of rows
//! ([`scan_group`]). Each has a portable version ([`scan_portable`],
//! [`scan_group_portable`]), which is the reference the tests compare with;
//! AVX-512 versions (VPOPCNTDQ, BW, VBMI) are chosen at run time with
//! `is_x86_feature_detected!` (the one other module of this crate with
//! `unsafe`; see `UNSAFE.md`).
//!
//! Contract, the same for every version: rows are `q.len()` bytes each
//! (trailing bytes of `data` that do not make a whole row are ignored) and
//! are visited in order. For each query, a row `i` at Hamming distance `d`
//! is reported with `hit(.., i, d)` when `d < limit`, the query's current
//! limit; `hit` returns the query's new limit. Limits must never grow (a
//! kernel may test several rows against a limit before it reports the
//! first of them, and a row that failed a limit cannot pass a smaller one),
//! so every version reports exactly the same calls in the same order per
//! query as the plain loop `for i in rows { if d(i) < limit { limit = hit(i, d(i)) } }`.
#![allow(unsafe_code)]

use crate::metric::hamming;

/// Queries per group in [`scan_group`].
pub const LANES: usize = 8;

#[inline]
fn word(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_le_bytes(a)
}

/// Hamming scan of one query (the plain loop; reference and fallback).
pub fn scan_portable(
    q: &[u8],
    data: &[u8],
    limit: u32,
    mut hit: impl FnMut(usize, u32) -> u32,
) -> u32 {
    match q.len() {
        8 => scan_words::<1>(q, data, limit, &mut hit),
        16 => scan_words::<2>(q, data, limit, &mut hit),
        24 => scan_words::<3>(q, data, limit, &mut hit),
        32 => scan_words::<4>(q, data, limit, &mut hit),
        48 => scan_words::<6>(q, data, limit, &mut hit),
        64 => scan_words::<8>(q, data, limit, &mut hit),
        128 => scan_words::<16>(q, data, limit, &mut hit),
        0 => limit,
        w => {
            let mut lim = limit;
            for (i, r) in data.chunks_exact(w).enumerate() {
                let d = hamming(q, r);
                if d < lim {
                    lim = hit(i, d);
                }
            }
            lim
        }
    }
}

/// Plain loop for rows of `W` whole words (the compiler unrolls it).
fn scan_words<const W: usize>(
    q: &[u8],
    data: &[u8],
    limit: u32,
    hit: &mut impl FnMut(usize, u32) -> u32,
) -> u32 {
    let mut qw = [0u64; W];
    for (x, c) in qw.iter_mut().zip(q.chunks_exact(8)) {
        *x = word(c);
    }
    let mut lim = limit;
    let (words, _) = data.as_chunks::<8>();
    for (i, r) in words.chunks_exact(W).enumerate() {
        let mut d = 0u32;
        for (qx, rx) in qw.iter().zip(r) {
            d += (qx ^ u64::from_le_bytes(*rx)).count_ones();
        }
        if d < lim {
            lim = hit(i, d);
        }
    }
    lim
}

/// Hamming scan of one query; returns the last limit.
pub fn scan(q: &[u8], data: &[u8], limit: u32, hit: impl FnMut(usize, u32) -> u32) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if avx512() && !q.is_empty() {
            // SAFETY: the CPU has AVX-512 F/BW/VPOPCNTDQ/VBMI (checked just
            // above); the kernel reads `q` and whole rows of `data` only
            // within bounds (see `avx512::scan`).
            return unsafe { avx512::scan(q, data, limit, hit) };
        }
    }
    scan_portable(q, data, limit, hit)
}

/// Hamming scan of a group of at most [`LANES`] queries of equal width
/// (the plain loop per query; reference and fallback). `limits[l]` is query
/// `l`'s limit, updated in place; `hit(l, i, d)`.
pub fn scan_group_portable(
    qs: &[&[u8]],
    data: &[u8],
    limits: &mut [u32],
    mut hit: impl FnMut(usize, usize, u32) -> u32,
) {
    for (l, (q, lim)) in qs.iter().zip(limits.iter_mut()).enumerate() {
        *lim = scan_portable(q, data, *lim, |i, d| hit(l, i, d));
    }
}

/// Hamming scan of a group of at most [`LANES`] queries of equal width
/// (`limits.len() >= qs.len()`): each row is read once for the whole group.
pub fn scan_group(
    qs: &[&[u8]],
    data: &[u8],
    limits: &mut [u32],
    hit: impl FnMut(usize, usize, u32) -> u32,
) {
    let w = qs.first().map_or(0, |q| q.len());
    let ok = !qs.is_empty()
        && qs.len() <= LANES
        && limits.len() >= qs.len()
        && w > 0
        && qs.iter().all(|q| q.len() == w);
    #[cfg(target_arch = "x86_64")]
    {
        if ok && avx512() {
            // SAFETY: the CPU has AVX-512 F/BW/VPOPCNTDQ/VBMI (checked just
            // above); every query is `w > 0` bytes, there are 1..=LANES of
            // them and as many limits; the kernel reads only within `qs`,
            // whole rows of `data` and `limits[..qs.len()]` (see
            // `avx512::scan_group`).
            unsafe { avx512::scan_group(qs, data, limits, hit) };
            return;
        }
    }
    let _ = ok;
    scan_group_portable(qs, data, limits, hit)
}

/// True when the AVX-512 kernels can run (cached by the std macro).
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
        && std::arch::is_x86_feature_detected!("avx512vbmi")
}

/// True when the AVX-512 kernels can run.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
pub fn avx512() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use crate::metric::hamming;

    /// Byte mask of the first `len` (<= 64) bytes.
    #[inline]
    fn bytes_mask(len: usize) -> u64 {
        if len >= 64 {
            u64::MAX
        } else {
            (1u64 << len) - 1
        }
    }

    /// One query. Rows of at most 192 bytes are done 8 at a time: a row's
    /// popcounts (one per 64-bit lane, at most 3 × 64 = 192, so a byte) are
    /// packed into byte `r` of each lane, bytes are transposed with `vpermb`
    /// and `vpsadbw` sums each row's 8 bytes. Longer rows are summed one at
    /// a time.
    ///
    /// Callers must make sure the CPU has AVX-512 F, BW, VPOPCNTDQ and VBMI
    /// (hence `unsafe` to call from code without those features). Panics
    /// when `q` is empty.
    #[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq,avx512vbmi")]
    pub fn scan(q: &[u8], data: &[u8], limit: u32, mut hit: impl FnMut(usize, u32) -> u32) -> u32 {
        let w = q.len();
        let n = data.len() / w;
        let mut lim = limit;
        if w > 192 {
            return scan_long(q, data, limit, hit);
        }
        let chunks = w.div_ceil(64);
        let mut qv = [_mm512_setzero_si512(); 3];
        let mut mk = [0u64; 3];
        for (c, (v, m)) in qv.iter_mut().zip(mk.iter_mut()).enumerate().take(chunks) {
            *m = bytes_mask(w - 64 * c);
            // SAFETY: the mask covers bytes 64c..min(w, 64c + 64) of `q`,
            // which are in bounds; masked-off bytes are not read.
            *v = unsafe { _mm512_maskz_loadu_epi8(*m, q.as_ptr().add(64 * c).cast()) };
        }
        // Output byte 8r + l takes input byte 8l + r.
        let mut tr = [0u8; 64];
        for (o, t) in tr.iter_mut().enumerate() {
            *t = ((o % 8) * 8 + o / 8) as u8;
        }
        // SAFETY: `tr` is 64 bytes.
        let tr = unsafe { _mm512_loadu_si512(tr.as_ptr().cast()) };
        let zero = _mm512_setzero_si512();
        let mut limv = _mm512_set1_epi64(i64::from(lim));
        let p = data.as_ptr();
        let mut i = 0;
        while i + 8 <= n {
            let mut y = zero;
            for r in (0..8).rev() {
                // SAFETY: row i + r < n lies inside `data`; each masked load
                // reads only bytes of that row.
                let row = unsafe { p.add((i + r) * w) };
                let mut x = unsafe {
                    _mm512_popcnt_epi64(_mm512_xor_si512(
                        qv[0],
                        _mm512_maskz_loadu_epi8(mk[0], row.cast()),
                    ))
                };
                for c in 1..chunks {
                    // SAFETY: as above, bytes 64c.. of the row.
                    let v = unsafe { _mm512_maskz_loadu_epi8(mk[c], row.add(64 * c).cast()) };
                    x = _mm512_add_epi64(x, _mm512_popcnt_epi64(_mm512_xor_si512(qv[c], v)));
                }
                y = _mm512_or_si512(_mm512_slli_epi64::<8>(y), x);
            }
            let s = _mm512_sad_epu8(_mm512_permutexvar_epi8(tr, y), zero);
            let mut m = _mm512_cmplt_epu64_mask(s, limv);
            if m != 0 {
                let mut ds = [0u64; 8];
                // SAFETY: `ds` is 64 bytes.
                unsafe { _mm512_storeu_si512(ds.as_mut_ptr().cast(), s) };
                while m != 0 {
                    let r = m.trailing_zeros() as usize;
                    m &= m - 1;
                    let d = ds[r] as u32;
                    if d < lim {
                        lim = hit(i + r, d);
                    }
                }
                limv = _mm512_set1_epi64(i64::from(lim));
            }
            i += 8;
        }
        for (j, r) in data[i * w..n * w].chunks_exact(w).enumerate() {
            let d = hamming(q, r);
            if d < lim {
                lim = hit(i + j, d);
            }
        }
        lim
    }

    /// One query, rows longer than 192 bytes: 64 bytes at a time per row.
    #[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq")]
    fn scan_long(q: &[u8], data: &[u8], limit: u32, mut hit: impl FnMut(usize, u32) -> u32) -> u32 {
        let w = q.len();
        let n = data.len() / w;
        let full = w / 64;
        let tail = bytes_mask(w % 64);
        let mut lim = limit;
        let qp = q.as_ptr();
        for i in 0..n {
            // SAFETY: row i < n lies inside `data`; loads read bytes
            // 64c..64c + 64 <= w of the row and of `q`, and the masked tail
            // only bytes below w.
            let d = unsafe {
                let row = data.as_ptr().add(i * w);
                let mut acc = _mm512_setzero_si512();
                for c in 0..full {
                    let a = _mm512_loadu_si512(qp.add(64 * c).cast());
                    let b = _mm512_loadu_si512(row.add(64 * c).cast());
                    acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(a, b)));
                }
                if !w.is_multiple_of(64) {
                    let a = _mm512_maskz_loadu_epi8(tail, qp.add(64 * full).cast());
                    let b = _mm512_maskz_loadu_epi8(tail, row.add(64 * full).cast());
                    acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(a, b)));
                }
                _mm512_reduce_add_epi64(acc) as u32
            };
            if d < lim {
                lim = hit(i, d);
            }
        }
        lim
    }

    /// A group of queries, one per 64-bit lane: word `j` of each row is
    /// broadcast to every lane and XORed with word `j` of every query.
    ///
    /// Callers must make sure the CPU has AVX-512 F, BW and VPOPCNTDQ.
    /// Panics unless `qs` has 1..=8 queries of the same width and
    /// `limits.len() >= qs.len()`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq")]
    pub fn scan_group(
        qs: &[&[u8]],
        data: &[u8],
        limits: &mut [u32],
        mut hit: impl FnMut(usize, usize, u32) -> u32,
    ) {
        let w = qs[0].len();
        let nw = w.div_ceil(8);
        // Word j of query l at qt[j] lane l (zero past the query's end and
        // in lanes without a query).
        let mut qt: Vec<__m512i> = Vec::with_capacity(nw);
        for j in 0..nw {
            let mut lanes = [0u64; 8];
            for (l, q) in qs.iter().enumerate() {
                let s = &q[8 * j..(8 * j + 8).min(w)];
                let mut b = [0u8; 8];
                b[..s.len()].copy_from_slice(s);
                lanes[l] = u64::from_le_bytes(b);
            }
            // SAFETY: `lanes` is 64 bytes.
            qt.push(unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) });
        }
        let nq = qs.len();
        match (w.is_multiple_of(8), nw) {
            (true, 1) => group_words::<1>(&qt, nq, data, limits, &mut hit),
            (true, 2) => group_words::<2>(&qt, nq, data, limits, &mut hit),
            (true, 3) => group_words::<3>(&qt, nq, data, limits, &mut hit),
            (true, 4) => group_words::<4>(&qt, nq, data, limits, &mut hit),
            (true, 5) => group_words::<5>(&qt, nq, data, limits, &mut hit),
            (true, 6) => group_words::<6>(&qt, nq, data, limits, &mut hit),
            (true, 7) => group_words::<7>(&qt, nq, data, limits, &mut hit),
            (true, 8) => group_words::<8>(&qt, nq, data, limits, &mut hit),
            (true, 16) => group_words::<16>(&qt, nq, data, limits, &mut hit),
            _ => group_any(&qt, w, nq, data, limits, &mut hit),
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load_limits(limits: &[u32], nq: usize) -> __m512i {
        let mut l = [0u64; 8];
        for (x, y) in l.iter_mut().zip(&limits[..nq]) {
            *x = u64::from(*y);
        }
        // SAFETY: `l` is 64 bytes.
        unsafe { _mm512_loadu_si512(l.as_ptr().cast()) }
    }

    /// Reports the lanes of `m` (ascending) whose distance in `acc` is below
    /// their limit; returns the new limit vector.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn report(
        mut m: u8,
        acc: __m512i,
        i: usize,
        limits: &mut [u32],
        nq: usize,
        hit: &mut impl FnMut(usize, usize, u32) -> u32,
    ) -> __m512i {
        let mut ds = [0u64; 8];
        // SAFETY: `ds` is 64 bytes.
        unsafe { _mm512_storeu_si512(ds.as_mut_ptr().cast(), acc) };
        while m != 0 {
            let l = m.trailing_zeros() as usize;
            m &= m - 1;
            let d = ds[l] as u32;
            if d < limits[l] {
                limits[l] = hit(l, i, d);
            }
        }
        load_limits(limits, nq)
    }

    /// Rows of exactly `W` words.
    ///
    /// Needs `qt.len() >= W`, `1 <= nq <= 8`, `limits.len() >= nq` (else it
    /// panics).
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    fn group_words<const W: usize>(
        qt: &[__m512i],
        nq: usize,
        data: &[u8],
        limits: &mut [u32],
        hit: &mut impl FnMut(usize, usize, u32) -> u32,
    ) {
        let mut q = [_mm512_setzero_si512(); W];
        q.copy_from_slice(&qt[..W]);
        let mut limv = load_limits(limits, nq);
        let (words, _) = data.as_chunks::<8>();
        for (i, r) in words.chunks_exact(W).enumerate() {
            let mut acc = _mm512_setzero_si512();
            for (qx, rx) in q.iter().zip(r) {
                let b = _mm512_set1_epi64(i64::from_le_bytes(*rx));
                acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(*qx, b)));
            }
            let m = _mm512_cmplt_epu64_mask(acc, limv);
            if m != 0 {
                limv = report(m, acc, i, limits, nq, hit);
            }
        }
    }

    /// Rows of any width `w` (the last word may be partial).
    ///
    /// Needs `qt.len() == w.div_ceil(8)`, `1 <= nq <= 8`,
    /// `limits.len() >= nq` (else it panics).
    #[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq")]
    fn group_any(
        qt: &[__m512i],
        w: usize,
        nq: usize,
        data: &[u8],
        limits: &mut [u32],
        hit: &mut impl FnMut(usize, usize, u32) -> u32,
    ) {
        let full = w / 8;
        let rem = w % 8;
        let mut limv = load_limits(limits, nq);
        for (i, r) in data.chunks_exact(w).enumerate() {
            let (words, tail) = r.as_chunks::<8>();
            let mut acc = _mm512_setzero_si512();
            for (qx, rx) in qt.iter().zip(words) {
                let b = _mm512_set1_epi64(i64::from_le_bytes(*rx));
                acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(*qx, b)));
            }
            if rem != 0 {
                let mut b = [0u8; 8];
                b[..rem].copy_from_slice(tail);
                let b = _mm512_set1_epi64(i64::from_le_bytes(b));
                acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(qt[full], b)));
            }
            let m = _mm512_cmplt_epu64_mask(acc, limv);
            if m != 0 {
                limv = report(m, acc, i, limits, nq, hit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::reference;
    use rand::{Rng, SeedableRng};

    /// A top-k of distances as a limit source: limit = k-th best + 1 once
    /// full (never grows), like the search collector.
    struct TopK {
        k: usize,
        best: Vec<u32>,
        cap: u32,
    }
    impl TopK {
        fn limit(&self) -> u32 {
            if self.best.len() >= self.k {
                self.best[self.k - 1].min(self.cap)
            } else {
                self.cap
            }
        }
        fn push(&mut self, d: u32) -> u32 {
            let p = self.best.partition_point(|&x| x <= d);
            self.best.insert(p, d);
            self.best.truncate(self.k);
            self.limit()
        }
    }

    fn plain(q: &[u8], data: &[u8], k: usize, cap: u32) -> Vec<(usize, u32)> {
        let mut t = TopK {
            k,
            best: vec![],
            cap,
        };
        let mut lim = t.limit();
        let mut out = vec![];
        for (i, r) in data.chunks_exact(q.len()).enumerate() {
            let d = reference::hamming(q, r);
            if d < lim {
                out.push((i, d));
                lim = t.push(d);
            }
        }
        out
    }

    fn rows(rng: &mut impl Rng, w: usize, n: usize, q: &[u8]) -> Vec<u8> {
        // Rows near the query (so many are reported), random ones and a few
        // extra bytes at the end that make no whole row.
        let mut data = Vec::with_capacity(w * n + 3);
        for _ in 0..n {
            if rng.random_bool(0.5) {
                let mut r = q.to_vec();
                for _ in 0..rng.random_range(0..=w.min(40)) {
                    let j = rng.random_range(0..w);
                    r[j] ^= 1 << rng.random_range(0..8);
                }
                data.extend_from_slice(&r);
            } else {
                data.extend((0..w).map(|_| rng.random::<u8>()));
            }
        }
        data.extend([1u8, 2, 3].iter().take(rng.random_range(0..=3)));
        data
    }

    fn widths() -> Vec<usize> {
        let mut v: Vec<usize> = (1..=200).collect();
        v.extend([
            255, 256, 257, 383, 384, 1000, 1024, 4095, 4096, 4097, 32_767, 32_768,
        ]);
        v
    }

    #[test]
    fn scan_equals_plain_loop_at_every_width() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for w in widths() {
            let n = if w > 1000 {
                37
            } else {
                rng.random_range(0..90)
            };
            let q: Vec<u8> = (0..w).map(|_| rng.random()).collect();
            let data = rows(&mut rng, w, n, &q);
            for k in [1, 3, 10, 100] {
                let cap = if k == 3 { (w * 2) as u32 } else { u32::MAX };
                let want = plain(&q, &data, k, cap);
                for fast in [false, true] {
                    let mut t = TopK {
                        k,
                        best: vec![],
                        cap,
                    };
                    let mut got = vec![];
                    let f = |i: usize, d: u32| {
                        got.push((i, d));
                        t.push(d)
                    };
                    let lim0 = cap;
                    if fast {
                        scan(&q, &data, lim0, f);
                    } else {
                        scan_portable(&q, &data, lim0, f);
                    }
                    assert_eq!(got, want, "w {w} n {n} k {k} fast {fast}");
                }
            }
        }
    }

    #[test]
    fn scan_group_equals_plain_loop_at_every_width() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        for w in widths() {
            let n = if w > 1000 {
                29
            } else {
                rng.random_range(0..70)
            };
            for nq in [1usize, 3, 8] {
                let qs: Vec<Vec<u8>> = (0..nq)
                    .map(|_| (0..w).map(|_| rng.random()).collect())
                    .collect();
                let data = rows(&mut rng, w, n, &qs[0]);
                let k = [1usize, 2, 10, 50][rng.random_range(0..4)];
                let want: Vec<Vec<(usize, u32)>> =
                    qs.iter().map(|q| plain(q, &data, k, u32::MAX)).collect();
                let qr: Vec<&[u8]> = qs.iter().map(|q| q.as_slice()).collect();
                for fast in [false, true] {
                    let mut tops: Vec<TopK> = (0..nq)
                        .map(|_| TopK {
                            k,
                            best: vec![],
                            cap: u32::MAX,
                        })
                        .collect();
                    let mut got = vec![vec![]; nq];
                    let mut limits = vec![u32::MAX; nq];
                    let f = |l: usize, i: usize, d: u32| {
                        got[l].push((i, d));
                        tops[l].push(d)
                    };
                    if fast {
                        scan_group(&qr, &data, &mut limits, f);
                    } else {
                        scan_group_portable(&qr, &data, &mut limits, f);
                    }
                    assert_eq!(got, want, "w {w} n {n} nq {nq} k {k} fast {fast}");
                }
            }
        }
    }
}
