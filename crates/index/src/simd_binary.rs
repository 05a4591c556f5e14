//! Hamming scans for binary vectors: one query against a run of rows
//! ([`scan`]) and a group of up to [`LANES`] queries against a run of rows
//! ([`scan_group`]). Each has a portable version ([`scan_portable`],
//! [`scan_group_portable`]), which is the reference the tests compare with;
//! AVX-512 versions (VPOPCNTDQ, BW, VBMI) and AVX2 versions (nibble-lookup
//! popcount, for CPUs with AVX2 but no VPOPCNTDQ such as AMD Zen 2/3) are
//! chosen at run time with `is_x86_feature_detected!` (the one other module
//! of this crate with `unsafe`; see `UNSAFE.md`). The environment variable
//! `APKSIFT_SIMD=portable|avx2|avx512` forces one for benchmarks and tests
//! (see [`kernel`]).
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

/// Hamming scan of one query; returns the last limit. Runs [`kernel`].
pub fn scan(q: &[u8], data: &[u8], limit: u32, hit: impl FnMut(usize, u32) -> u32) -> u32 {
    scan_with(kernel(), q, data, limit, hit)
}

/// [`scan`] with kernel `k`, or the portable loop when the CPU lacks `k`'s
/// features.
pub fn scan_with(
    k: Kernel,
    q: &[u8],
    data: &[u8],
    limit: u32,
    hit: impl FnMut(usize, u32) -> u32,
) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if k == Kernel::Avx512 && avx512() && !q.is_empty() {
            // SAFETY: the CPU has AVX-512 F/BW/VPOPCNTDQ/VBMI (checked just
            // above); the kernel reads `q` and whole rows of `data` only
            // within bounds (see `avx512::scan`).
            return unsafe { avx512::scan(q, data, limit, hit) };
        }
        // Rows of 8, 16 or 24 bytes: one to three scalar popcounts a row
        // beat a vector's nibble lookups (measured), so the portable loop.
        let words = q.len() < 32 && q.len().is_multiple_of(8);
        if k == Kernel::Avx2 && avx2() && !q.is_empty() && !words {
            // SAFETY: the CPU has AVX2 (checked just above); the kernel reads
            // `q` and `data` only within bounds (see `avx2::scan`).
            return unsafe { avx2::scan(q, data, limit, hit) };
        }
    }
    let _ = k;
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
/// Runs [`kernel`].
pub fn scan_group(
    qs: &[&[u8]],
    data: &[u8],
    limits: &mut [u32],
    hit: impl FnMut(usize, usize, u32) -> u32,
) {
    scan_group_with(kernel(), qs, data, limits, hit)
}

/// [`scan_group`] with kernel `k`, or the portable loop when the CPU lacks
/// `k`'s features (or the group is not 1..=[`LANES`] queries of one
/// non-zero width with as many limits).
pub fn scan_group_with(
    k: Kernel,
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
        if ok && k == Kernel::Avx512 && avx512() {
            // SAFETY: the CPU has AVX-512 F/BW/VPOPCNTDQ/VBMI (checked just
            // above); every query is `w > 0` bytes, there are 1..=LANES of
            // them and as many limits; the kernel reads only within `qs`,
            // whole rows of `data` and `limits[..qs.len()]` (see
            // `avx512::scan_group`).
            unsafe { avx512::scan_group(qs, data, limits, hit) };
            return;
        }
        if ok && k == Kernel::Avx2 && avx2() {
            // SAFETY: the CPU has AVX2 (checked just above); the group is
            // as above; the kernel reads only within `qs`, whole rows of
            // `data` and `limits[..qs.len()]` (see `avx2::scan_group`).
            unsafe { avx2::scan_group(qs, data, limits, hit) };
            return;
        }
    }
    let _ = (ok, k);
    scan_group_portable(qs, data, limits, hit)
}

/// A Hamming kernel of [`scan`] and [`scan_group`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// `u64::count_ones` loops ([`scan_portable`], [`scan_group_portable`]).
    Portable,
    /// AVX2: nibble-lookup popcount (`vpshufb` on the low and high nibbles,
    /// `vpsadbw` to sum bytes).
    Avx2,
    /// AVX-512 F, BW, VPOPCNTDQ and VBMI.
    Avx512,
}

impl Kernel {
    /// Every kernel, slowest first.
    pub const ALL: [Kernel; 3] = [Kernel::Portable, Kernel::Avx2, Kernel::Avx512];

    /// The name `APKSIFT_SIMD` takes: `portable`, `avx2` or `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Portable => "portable",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512",
        }
    }

    /// The kernel named `s` (see [`Kernel::name`]; case and surrounding
    /// blanks ignored).
    pub fn parse(s: &str) -> Option<Kernel> {
        let s = s.trim();
        Kernel::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
    }

    /// True when this CPU can run the kernel.
    pub fn available(self) -> bool {
        match self {
            Kernel::Portable => true,
            Kernel::Avx2 => avx2(),
            Kernel::Avx512 => avx512(),
        }
    }

    /// The fastest kernel this CPU can run.
    pub fn best() -> Kernel {
        if avx512() {
            Kernel::Avx512
        } else if avx2() {
            Kernel::Avx2
        } else {
            Kernel::Portable
        }
    }

    /// The kernel for a value of `APKSIFT_SIMD`: the one named when it is
    /// available, else (unset, empty, unknown name or a kernel this CPU
    /// cannot run) [`Kernel::best`].
    pub fn select(choice: Option<&str>) -> Kernel {
        match choice.map(str::trim) {
            None | Some("") => Kernel::best(),
            Some(s) => match Kernel::parse(s) {
                Some(k) if k.available() => k,
                _ => Kernel::best(),
            },
        }
    }
}

/// The kernel [`scan`] and [`scan_group`] run, chosen once per process:
/// the fastest one this CPU has ([`Kernel::best`]: AVX-512 VPOPCNTDQ, then
/// AVX2, then portable), unless the environment variable `APKSIFT_SIMD` is
/// `portable`, `avx2` or `avx512` (for benchmarks and tests). A kernel the
/// CPU cannot run, or an unknown value, falls back to the best available
/// one (with a warning); every choice gives the same results.
pub fn kernel() -> Kernel {
    static KERNEL: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
    *KERNEL.get_or_init(|| {
        let v = std::env::var("APKSIFT_SIMD").ok();
        let k = Kernel::select(v.as_deref());
        if let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty())
            && Kernel::parse(v) != Some(k)
        {
            tracing::warn!(
                APKSIFT_SIMD = v,
                kernel = k.name(),
                "APKSIFT_SIMD names no kernel this CPU can run; using the best available"
            );
        }
        k
    })
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

/// True when the AVX2 kernels can run (cached by the std macro).
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// True when the AVX2 kernels can run.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
pub fn avx2() -> bool {
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

/// AVX2 kernels. A popcount is the nibble lookup of Mula, Kurz and Lemire:
/// `vpshufb` of a 16-entry table by the low and by the high nibble of each
/// byte gives per-byte counts (at most 8 a byte for one vector), which are
/// added bytewise over a few vectors (never past 255) before `vpsadbw`
/// sums each 8 bytes into a 64-bit lane.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use crate::metric::hamming;

    /// Widest row of the several-rows-at-a-time single-query kernels;
    /// longer rows go to `scan_long`.
    const SHORT: usize = 256;
    /// Most vectors whose byte counts may be added bytewise (31 × 8 < 256).
    const BYTE_SUMS: usize = 31;

    /// The nibble-popcount table and the low-nibble mask.
    #[derive(Clone, Copy)]
    struct Pop {
        tab: __m256i,
        m0f: __m256i,
    }

    impl Pop {
        #[inline]
        #[target_feature(enable = "avx2")]
        fn new() -> Pop {
            Pop {
                tab: _mm256_setr_epi8(
                    0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2,
                    2, 3, 2, 3, 3, 4,
                ),
                m0f: _mm256_set1_epi8(0x0f),
            }
        }

        /// Popcount of each byte of `x` (0..=8).
        #[inline]
        #[target_feature(enable = "avx2")]
        fn bytes(self, x: __m256i) -> __m256i {
            let lo = _mm256_and_si256(x, self.m0f);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(x), self.m0f);
            _mm256_add_epi8(
                _mm256_shuffle_epi8(self.tab, lo),
                _mm256_shuffle_epi8(self.tab, hi),
            )
        }

        /// Byte counts of `a ^ b`.
        #[inline]
        #[target_feature(enable = "avx2")]
        fn xor(self, a: __m256i, b: __m256i) -> __m256i {
            self.bytes(_mm256_xor_si256(a, b))
        }
    }

    /// 32 bytes of `s` from `at`; panics unless `at + 32 <= s.len()`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn load(s: &[u8], at: usize) -> __m256i {
        let b: &[u8; 32] = s[at..at + 32].try_into().expect("32 bytes");
        // SAFETY: `b` is 32 bytes.
        unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
    }

    /// 32 bytes from `p` (unaligned).
    ///
    /// # Safety
    /// `p..p + 32` must lie inside one live allocation.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn ld(p: *const u8) -> __m256i {
        // SAFETY: the caller's.
        unsafe { _mm256_loadu_si256(p.cast()) }
    }

    /// Mask of the bytes `from..32` of a vector.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn mask_from(from: usize) -> __m256i {
        let mut m = [0u8; 32];
        for b in m.iter_mut().skip(from) {
            *b = 0xff;
        }
        load(&m, 0)
    }

    /// `vpsadbw` against zero: the sum of each 8 bytes in a 64-bit lane.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn sad(c: __m256i) -> __m256i {
        _mm256_sad_epu8(c, _mm256_setzero_si256())
    }

    /// Distances of 4 rows `[a, b, c, d]` (32-bit lanes) from their `vpsadbw`
    /// sums (each lane below 2^32, sums of four below 2^32).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn reduce4(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> __m128i {
        // 32-bit lanes [a0 b0 a1 b1 | a2 b2 a3 b3] and [c0 d0 c1 d1 | ..].
        let x = _mm256_or_si256(a, _mm256_slli_epi64::<32>(b));
        let y = _mm256_or_si256(c, _mm256_slli_epi64::<32>(d));
        // [a0+a1 b0+b1 c0+c1 d0+d1 | a2+a3 b2+b3 c2+c3 d2+d3]
        let t = _mm256_add_epi32(_mm256_unpacklo_epi64(x, y), _mm256_unpackhi_epi64(x, y));
        _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256::<1>(t))
    }

    /// A limit as a signed 32-bit lane: distances are below 2^31 (rows are
    /// at most 2^28 bytes here), so `d < limit` iff `d < min(limit, 2^31 - 1)`.
    #[inline]
    fn lane(limit: u32) -> i32 {
        limit.min(i32::MAX as u32) as i32
    }

    /// Bit `r` set when distance `r` of `dist` is below the limit.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn below4(dist: __m128i, limv: __m128i) -> u32 {
        _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpgt_epi32(limv, dist))) as u32
    }

    /// Reports rows `i + r` for the bits `r` of `m` (ascending) whose
    /// distance is still below the limit; returns the limit.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn report4(
        mut m: u32,
        dist: __m128i,
        i: usize,
        mut lim: u32,
        hit: &mut impl FnMut(usize, u32) -> u32,
    ) -> u32 {
        let mut ds = [0u32; 4];
        // SAFETY: `ds` is 16 bytes.
        unsafe { _mm_storeu_si128(ds.as_mut_ptr().cast(), dist) };
        while m != 0 {
            let r = m.trailing_zeros() as usize;
            m &= m - 1;
            if ds[r] < lim {
                lim = hit(i + r, ds[r]);
            }
        }
        lim
    }

    /// The plain loop over rows `from..` of `data`.
    fn rest(
        q: &[u8],
        data: &[u8],
        from: usize,
        mut lim: u32,
        hit: &mut impl FnMut(usize, u32) -> u32,
    ) -> u32 {
        let w = q.len();
        let n = data.len() / w;
        for (j, r) in data[from * w..n * w].chunks_exact(w).enumerate() {
            let d = hamming(q, r);
            if d < lim {
                lim = hit(from + j, d);
            }
        }
        lim
    }

    /// One query. Rows of at most `SHORT` bytes are done 4 at a time (byte
    /// counts of a row, `vpsadbw`, then the four rows' lanes summed
    /// together); rows of 32·k + 16 bytes two by two as 2·(2k + 1) bytes
    /// read straight through; longer rows one at a time. (`scan` sends rows
    /// of 8, 16 and 24 bytes to the portable loop, which is faster there.)
    ///
    /// Callers must make sure the CPU has AVX2 (hence `unsafe` to call from
    /// code without it). Panics when `q` is empty.
    #[target_feature(enable = "avx2")]
    pub fn scan(q: &[u8], data: &[u8], limit: u32, mut hit: impl FnMut(usize, u32) -> u32) -> u32 {
        let w = q.len();
        assert!(w > 0);
        let hit = &mut hit;
        if w > SHORT {
            return scan_long(q, data, limit, hit);
        }
        match (w % 32, w / 32) {
            (0, 1) => scan_whole::<1>(q, data, limit, hit),
            (0, 2) => scan_whole::<2>(q, data, limit, hit),
            (0, 3) => scan_whole::<3>(q, data, limit, hit),
            (0, 4) => scan_whole::<4>(q, data, limit, hit),
            (0, 5) => scan_whole::<5>(q, data, limit, hit),
            (0, 6) => scan_whole::<6>(q, data, limit, hit),
            (0, 7) => scan_whole::<7>(q, data, limit, hit),
            (0, _) => scan_whole::<8>(q, data, limit, hit),
            (16, 0) => scan_pairs::<1>(q, data, limit, hit),
            (16, 1) => scan_pairs::<3>(q, data, limit, hit),
            (16, 2) => scan_pairs::<5>(q, data, limit, hit),
            (16, 3) => scan_pairs::<7>(q, data, limit, hit),
            (16, 4) => scan_pairs::<9>(q, data, limit, hit),
            (16, 5) => scan_pairs::<11>(q, data, limit, hit),
            (16, 6) => scan_pairs::<13>(q, data, limit, hit),
            (16, _) => scan_pairs::<15>(q, data, limit, hit),
            _ => scan_masked(q, data, limit, hit),
        }
    }

    /// Byte counts of the row at `row` (`K` whole vectors) against `qv`.
    ///
    /// # Safety
    /// `row..row + 32K` must lie inside one live allocation.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn whole<const K: usize>(pop: Pop, row: *const u8, qv: &[__m256i; K]) -> __m256i {
        // SAFETY: bytes 32j..32j + 32 of the row, j < K (the caller's).
        let mut c = pop.xor(unsafe { ld(row) }, qv[0]);
        for (j, qj) in qv.iter().enumerate().skip(1) {
            c = _mm256_add_epi8(c, pop.xor(unsafe { ld(row.add(32 * j)) }, *qj));
        }
        c
    }

    /// Byte counts of a pair of rows at `base` (`M` whole vectors against
    /// `pv`; the low half of the middle one is the first row's).
    ///
    /// # Safety
    /// `base..base + 32M` must lie inside one live allocation.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn pair_counts<const M: usize>(
        pop: Pop,
        base: *const u8,
        pv: &[__m256i; M],
        hi: __m256i,
    ) -> (__m256i, __m256i) {
        let h = M / 2;
        let (mut a, mut b) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        for (j, pj) in pv.iter().enumerate() {
            // SAFETY: bytes 32j..32j + 32 from `base`, j < M (the caller's).
            let c = pop.xor(unsafe { ld(base.add(32 * j)) }, *pj);
            if j < h {
                a = _mm256_add_epi8(a, c);
            } else if j > h {
                b = _mm256_add_epi8(b, c);
            } else {
                a = _mm256_add_epi8(a, _mm256_andnot_si256(hi, c));
                b = _mm256_add_epi8(b, _mm256_and_si256(hi, c));
            }
        }
        (a, b)
    }

    /// Byte counts of the row at `row`: whole vectors against `qv`, then
    /// the 32 bytes at `tail_at` masked with `tmask` against `qt`.
    ///
    /// # Safety
    /// `row..row + 32·qv.len()` and `row + tail_at..row + tail_at + 32`
    /// must lie inside one live allocation.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn masked(
        pop: Pop,
        row: *const u8,
        qv: &[__m256i],
        tail_at: usize,
        tmask: __m256i,
        qt: __m256i,
    ) -> __m256i {
        // SAFETY: the caller's.
        let t = unsafe { ld(row.add(tail_at)) };
        let mut c = pop.xor(_mm256_and_si256(t, tmask), qt);
        for (j, qj) in qv.iter().enumerate() {
            // SAFETY: the caller's.
            c = _mm256_add_epi8(c, pop.xor(unsafe { ld(row.add(32 * j)) }, *qj));
        }
        c
    }

    /// Rows of `K` (1..=8) whole vectors.
    #[target_feature(enable = "avx2")]
    fn scan_whole<const K: usize>(
        q: &[u8],
        data: &[u8],
        limit: u32,
        hit: &mut impl FnMut(usize, u32) -> u32,
    ) -> u32 {
        let w = 32 * K;
        debug_assert_eq!(q.len(), w);
        let n = data.len() / w;
        let pop = Pop::new();
        let qv: [__m256i; K] = std::array::from_fn(|j| load(q, 32 * j));
        let mut lim = limit;
        let mut limv = _mm_set1_epi32(lane(lim));
        let p = data.as_ptr();
        let mut i = 0;
        while i + 4 <= n {
            // SAFETY: rows i..i + 4 are below n, so each one's w = 32K
            // bytes lie inside `data`.
            let (c0, c1, c2, c3) = unsafe {
                (
                    whole(pop, p.add(i * w), &qv),
                    whole(pop, p.add((i + 1) * w), &qv),
                    whole(pop, p.add((i + 2) * w), &qv),
                    whole(pop, p.add((i + 3) * w), &qv),
                )
            };
            let dist = reduce4(sad(c0), sad(c1), sad(c2), sad(c3));
            let m = below4(dist, limv);
            if m != 0 {
                lim = report4(m, dist, i, lim, hit);
                limv = _mm_set1_epi32(lane(lim));
            }
            i += 4;
        }
        rest(q, data, i, lim, hit)
    }

    /// Rows of 32·(M − 1)/2 + 16 bytes: a pair of rows is `M` (odd, 1..=15)
    /// whole vectors, the middle one half in each row.
    #[target_feature(enable = "avx2")]
    fn scan_pairs<const M: usize>(
        q: &[u8],
        data: &[u8],
        limit: u32,
        hit: &mut impl FnMut(usize, u32) -> u32,
    ) -> u32 {
        let w = 16 * M;
        debug_assert_eq!(q.len(), w);
        let n = data.len() / w;
        let pop = Pop::new();
        let mut qq = vec![0u8; 2 * w];
        qq[..w].copy_from_slice(q);
        qq[w..].copy_from_slice(q);
        let pv: [__m256i; M] = std::array::from_fn(|j| load(&qq, 32 * j));
        let hi = mask_from(16);
        let mut lim = limit;
        let mut limv = _mm_set1_epi32(lane(lim));
        let p = data.as_ptr();
        let mut i = 0;
        while i + 4 <= n {
            // SAFETY: rows i..i + 4 are below n, so the 2w = 32M bytes of
            // rows i, i + 1 and of rows i + 2, i + 3 lie inside `data`.
            let ((c0, c1), (c2, c3)) = unsafe {
                (
                    pair_counts(pop, p.add(i * w), &pv, hi),
                    pair_counts(pop, p.add((i + 2) * w), &pv, hi),
                )
            };
            let dist = reduce4(sad(c0), sad(c1), sad(c2), sad(c3));
            let m = below4(dist, limv);
            if m != 0 {
                lim = report4(m, dist, i, lim, hit);
                limv = _mm_set1_epi32(lane(lim));
            }
            i += 4;
        }
        rest(q, data, i, lim, hit)
    }

    /// Rows of any other width below `SHORT`: whole vectors, then the last
    /// 32 bytes of the row with the bytes already counted masked off (rows
    /// of at least 32 bytes), or 32 bytes from the row's start with the
    /// bytes past the row masked off (shorter rows, while those 32 bytes lie
    /// inside `data`).
    #[target_feature(enable = "avx2")]
    fn scan_masked(
        q: &[u8],
        data: &[u8],
        limit: u32,
        hit: &mut impl FnMut(usize, u32) -> u32,
    ) -> u32 {
        let w = q.len();
        let n = data.len() / w;
        let full = w / 32;
        debug_assert!(full < 8 && !w.is_multiple_of(32));
        let pop = Pop::new();
        let zero = _mm256_setzero_si256();
        let qv: [__m256i; 8] =
            std::array::from_fn(|j| if j < full { load(q, 32 * j) } else { zero });
        // Tail: row bytes [tail_at, tail_at + 32) ∧ tmask.
        let (tail_at, tmask, qt) = if w >= 32 {
            let m = mask_from(32 * (full + 1) - w);
            (w - 32, m, _mm256_and_si256(m, load(q, w - 32)))
        } else {
            let mut b = [0u8; 32];
            b[..w].copy_from_slice(q);
            let mut m = [0u8; 32];
            m[..w].fill(0xff);
            (0, load(&m, 0), load(&b, 0))
        };
        // Rows whose tail load stays inside `data`.
        let nv = if data.len() >= tail_at + 32 {
            n.min((data.len() - tail_at - 32) / w + 1)
        } else {
            0
        };
        let mut lim = limit;
        let mut limv = _mm_set1_epi32(lane(lim));
        let p = data.as_ptr();
        let mut i = 0;
        while i + 4 <= nv {
            // SAFETY: rows i..i + 4 are below nv <= n: their whole vectors
            // (bytes 32j..32j + 32 <= w) lie inside the row, and their tail
            // bytes (i + r)·w + tail_at .. + 32 inside `data` (that is what
            // nv counts).
            let qf = &qv[..full];
            let (c0, c1, c2, c3) = unsafe {
                (
                    masked(pop, p.add(i * w), qf, tail_at, tmask, qt),
                    masked(pop, p.add((i + 1) * w), qf, tail_at, tmask, qt),
                    masked(pop, p.add((i + 2) * w), qf, tail_at, tmask, qt),
                    masked(pop, p.add((i + 3) * w), qf, tail_at, tmask, qt),
                )
            };
            let dist = reduce4(sad(c0), sad(c1), sad(c2), sad(c3));
            let m = below4(dist, limv);
            if m != 0 {
                lim = report4(m, dist, i, lim, hit);
                limv = _mm_set1_epi32(lane(lim));
            }
            i += 4;
        }
        rest(q, data, i, lim, hit)
    }

    /// Sum of the four 64-bit lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum(v: __m256i) -> u64 {
        let s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        (_mm_cvtsi128_si64(s) as u64).wrapping_add(_mm_extract_epi64::<1>(s) as u64)
    }

    /// Rows longer than `SHORT` bytes, one at a time: byte counts of up to
    /// `BYTE_SUMS` vectors, then `vpsadbw` into 64-bit sums; the last 32
    /// bytes of the row with the bytes already counted masked off.
    #[target_feature(enable = "avx2")]
    fn scan_long(
        q: &[u8],
        data: &[u8],
        limit: u32,
        hit: &mut impl FnMut(usize, u32) -> u32,
    ) -> u32 {
        let w = q.len();
        debug_assert!(w >= 32);
        let n = data.len() / w;
        let full = w / 32;
        let pop = Pop::new();
        let zero = _mm256_setzero_si256();
        let tmask = mask_from(32 * (full + 1) - w);
        let qt = _mm256_and_si256(tmask, load(q, w - 32));
        let mut lim = limit;
        let qp = q.as_ptr();
        for (i, row) in data[..n * w].chunks_exact(w).enumerate() {
            let rp = row.as_ptr();
            let mut acc = zero;
            let mut j = 0;
            while j < full {
                let end = (j + BYTE_SUMS).min(full);
                let mut c = zero;
                while j < end {
                    // SAFETY: bytes 32j..32j + 32 <= w of the row and of `q`.
                    let (a, b) = unsafe { (ld(rp.add(32 * j)), ld(qp.add(32 * j))) };
                    c = _mm256_add_epi8(c, pop.xor(a, b));
                    j += 1;
                }
                acc = _mm256_add_epi64(acc, _mm256_sad_epu8(c, zero));
            }
            if !w.is_multiple_of(32) {
                let t = _mm256_and_si256(load(row, w - 32), tmask);
                acc = _mm256_add_epi64(acc, _mm256_sad_epu8(pop.xor(t, qt), zero));
            }
            let d = hsum(acc) as u32;
            if d < lim {
                lim = hit(i, d);
            }
        }
        lim
    }

    /// A group of queries, one per 64-bit lane (queries 0..4 in the first
    /// vector, 4..8 in the second): word `j` of each row is broadcast and
    /// XORed with word `j` of every query.
    ///
    /// Callers must make sure the CPU has AVX2. Panics unless `qs` has
    /// 1..=8 queries of the same width and `limits.len() >= qs.len()`.
    #[target_feature(enable = "avx2")]
    pub fn scan_group(
        qs: &[&[u8]],
        data: &[u8],
        limits: &mut [u32],
        mut hit: impl FnMut(usize, usize, u32) -> u32,
    ) {
        let w = qs[0].len();
        assert!(w > 0 && qs.len() <= 8 && limits.len() >= qs.len());
        let nw = w.div_ceil(8);
        // Word j of query l at qt[j][l / 4] lane l % 4 (zero past the
        // query's end and in lanes without a query).
        let mut qt: Vec<[__m256i; 2]> = Vec::with_capacity(nw);
        for j in 0..nw {
            let mut lanes = [0u64; 8];
            for (l, q) in qs.iter().enumerate() {
                let s = &q[8 * j..(8 * j + 8).min(w)];
                let mut b = [0u8; 8];
                b[..s.len()].copy_from_slice(s);
                lanes[l] = u64::from_le_bytes(b);
            }
            let v = |k: usize| {
                _mm256_setr_epi64x(
                    lanes[4 * k] as i64,
                    lanes[4 * k + 1] as i64,
                    lanes[4 * k + 2] as i64,
                    lanes[4 * k + 3] as i64,
                )
            };
            qt.push([v(0), v(1)]);
        }
        let nq = qs.len();
        let hit = &mut hit;
        match (w.is_multiple_of(8), nw) {
            (true, 1) => group_words::<1>(&qt, nq, data, limits, hit),
            (true, 2) => group_words::<2>(&qt, nq, data, limits, hit),
            (true, 3) => group_words::<3>(&qt, nq, data, limits, hit),
            (true, 4) => group_words::<4>(&qt, nq, data, limits, hit),
            (true, 5) => group_words::<5>(&qt, nq, data, limits, hit),
            (true, 6) => group_words::<6>(&qt, nq, data, limits, hit),
            (true, 7) => group_words::<7>(&qt, nq, data, limits, hit),
            (true, 8) => group_words::<8>(&qt, nq, data, limits, hit),
            (true, 16) => group_words::<16>(&qt, nq, data, limits, hit),
            _ => group_any(&qt, w, nq, data, limits, hit),
        }
    }

    /// 32-bit lane of query `l` in `group_dist`'s vector.
    #[inline]
    fn at(l: usize) -> usize {
        2 * (l % 4) + l / 4
    }

    /// The limits as 32-bit lanes laid out like `group_dist` (0 in lanes
    /// without a query, so that nothing is below them).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn group_limits(limits: &[u32], nq: usize) -> __m256i {
        let mut v = [0i32; 8];
        for (l, x) in limits[..nq].iter().enumerate() {
            v[at(l)] = lane(*x);
        }
        // SAFETY: `v` is 32 bytes.
        unsafe { _mm256_loadu_si256(v.as_ptr().cast()) }
    }

    /// Distances of the 8 lanes from their `vpsadbw` sums: query l at
    /// 32-bit lane `at(l)`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn group_dist(s0: __m256i, s1: __m256i) -> __m256i {
        _mm256_or_si256(s0, _mm256_slli_epi64::<32>(s1))
    }

    /// Bit `at(l)` set when query `l`'s distance is below its limit.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn group_below(dist: __m256i, limv: __m256i) -> u32 {
        _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(limv, dist))) as u32
    }

    /// Reports the queries (ascending) whose bit is set in `m` and whose
    /// distance is still below their limit; returns the new limit vector.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn group_report(
        m: u32,
        dist: __m256i,
        i: usize,
        limits: &mut [u32],
        nq: usize,
        hit: &mut impl FnMut(usize, usize, u32) -> u32,
    ) -> __m256i {
        let mut ds = [0u32; 8];
        // SAFETY: `ds` is 32 bytes.
        unsafe { _mm256_storeu_si256(ds.as_mut_ptr().cast(), dist) };
        for l in 0..nq {
            let d = ds[at(l)];
            if m >> at(l) & 1 != 0 && d < limits[l] {
                limits[l] = hit(l, i, d);
            }
        }
        group_limits(limits, nq)
    }

    /// Rows of exactly `W` (at most `BYTE_SUMS`) words.
    ///
    /// Needs `qt.len() >= W`, `1 <= nq <= 8`, `limits.len() >= nq` (else it
    /// panics).
    #[target_feature(enable = "avx2")]
    fn group_words<const W: usize>(
        qt: &[[__m256i; 2]],
        nq: usize,
        data: &[u8],
        limits: &mut [u32],
        hit: &mut impl FnMut(usize, usize, u32) -> u32,
    ) {
        const { assert!(W <= BYTE_SUMS) };
        let mut q = [[_mm256_setzero_si256(); 2]; W];
        q.copy_from_slice(&qt[..W]);
        let pop = Pop::new();
        let zero = _mm256_setzero_si256();
        let mut limv = group_limits(limits, nq);
        let (words, _) = data.as_chunks::<8>();
        for (i, r) in words.chunks_exact(W).enumerate() {
            let (mut a0, mut a1) = (zero, zero);
            for (qx, rx) in q.iter().zip(r) {
                let b = _mm256_set1_epi64x(i64::from_le_bytes(*rx));
                a0 = _mm256_add_epi8(a0, pop.xor(qx[0], b));
                a1 = _mm256_add_epi8(a1, pop.xor(qx[1], b));
            }
            let dist = group_dist(_mm256_sad_epu8(a0, zero), _mm256_sad_epu8(a1, zero));
            let m = group_below(dist, limv);
            if m != 0 {
                limv = group_report(m, dist, i, limits, nq, hit);
            }
        }
    }

    /// Rows of any width `w` (the last word may be partial), byte counts
    /// summed `BYTE_SUMS` words at a time.
    ///
    /// Needs `qt.len() == w.div_ceil(8)`, `1 <= nq <= 8`,
    /// `limits.len() >= nq` (else it panics).
    #[target_feature(enable = "avx2")]
    fn group_any(
        qt: &[[__m256i; 2]],
        w: usize,
        nq: usize,
        data: &[u8],
        limits: &mut [u32],
        hit: &mut impl FnMut(usize, usize, u32) -> u32,
    ) {
        let full = w / 8;
        let pop = Pop::new();
        let zero = _mm256_setzero_si256();
        let mut limv = group_limits(limits, nq);
        for (i, r) in data.chunks_exact(w).enumerate() {
            let (words, tail) = r.as_chunks::<8>();
            let (mut s0, mut s1) = (zero, zero);
            for (qc, rc) in qt[..full].chunks(BYTE_SUMS).zip(words.chunks(BYTE_SUMS)) {
                let (mut a0, mut a1) = (zero, zero);
                for (qx, rx) in qc.iter().zip(rc) {
                    let b = _mm256_set1_epi64x(i64::from_le_bytes(*rx));
                    a0 = _mm256_add_epi8(a0, pop.xor(qx[0], b));
                    a1 = _mm256_add_epi8(a1, pop.xor(qx[1], b));
                }
                s0 = _mm256_add_epi64(s0, _mm256_sad_epu8(a0, zero));
                s1 = _mm256_add_epi64(s1, _mm256_sad_epu8(a1, zero));
            }
            if !tail.is_empty() {
                let mut b = [0u8; 8];
                b[..tail.len()].copy_from_slice(tail);
                let b = _mm256_set1_epi64x(i64::from_le_bytes(b));
                s0 = _mm256_add_epi64(s0, _mm256_sad_epu8(pop.xor(qt[full][0], b), zero));
                s1 = _mm256_add_epi64(s1, _mm256_sad_epu8(pop.xor(qt[full][1], b), zero));
            }
            let dist = group_dist(s0, s1);
            let m = group_below(dist, limv);
            if m != 0 {
                limv = group_report(m, dist, i, limits, nq, hit);
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
        // Rows near the query (so many are reported), random ones, the
        // query's complement (every bit differs: the most a byte counter can
        // hold) and a few extra bytes at the end that make no whole row.
        let mut data = Vec::with_capacity(w * n + 3);
        for _ in 0..n {
            if rng.random_bool(0.1) {
                data.extend(q.iter().map(|b| !b));
            } else if rng.random_bool(0.5) {
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

    /// Kernels this CPU can run (a SKIP line for the others).
    fn kernels() -> Vec<Kernel> {
        Kernel::ALL
            .into_iter()
            .filter(|k| {
                let ok = k.available();
                if !ok {
                    println!("SKIP {}: not supported by this CPU", k.name());
                }
                ok
            })
            .collect()
    }

    /// Limits a scan may start with: none, exact matches only, a few bits,
    /// around i32::MAX (the AVX2 lanes are signed) and u32::MAX.
    fn caps(w: usize) -> [u32; 7] {
        let b = (w * 8) as u32;
        [
            0,
            1,
            b / 3 + 1,
            b,
            i32::MAX as u32,
            i32::MAX as u32 + 1,
            u32::MAX,
        ]
    }

    /// The reports of a scan with kernel `k` and a top-`k` limit source
    /// (`keep_all`: `hit` always returns `cap`).
    fn run_scan(
        kern: Option<Kernel>,
        q: &[u8],
        data: &[u8],
        k: usize,
        cap: u32,
        keep_all: bool,
    ) -> (Vec<(usize, u32)>, u32) {
        let mut t = TopK {
            k,
            best: vec![],
            cap,
        };
        let mut got = vec![];
        let f = |i: usize, d: u32| {
            got.push((i, d));
            let l = t.push(d);
            if keep_all { cap } else { l }
        };
        let last = match kern {
            None => {
                #[cfg(target_arch = "x86_64")]
                {
                    assert!(std::arch::is_x86_feature_detected!("avx2"));
                    // SAFETY: AVX2 is available (asserted just above) and
                    // `q` is not empty (every caller's widths are >= 1).
                    unsafe { avx2::scan(q, data, cap, f) }
                }
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!()
            }
            Some(kern) => scan_with(kern, q, data, cap, f),
        };
        (got, last)
    }

    fn check_scan(kern: Option<Kernel>, seed: u64) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for w in widths() {
            let n = if w > 1000 {
                37
            } else {
                rng.random_range(0..90)
            };
            let q: Vec<u8> = (0..w).map(|_| rng.random()).collect();
            let buf = rows(&mut rng, w, n, &q);
            // Also a start that is not where the allocation starts.
            let off = rng.random_range(0..=1usize.min(buf.len()));
            let mut shifted = vec![0u8; off];
            shifted.extend_from_slice(&buf);
            let data = &shifted[off..];
            for k in [1, 3, 10, 100] {
                for cap in caps(w) {
                    for keep_all in [false, true] {
                        let want = plain(&q, data, k, cap);
                        let (want_all, want_last) =
                            run_scan(Some(Kernel::Portable), &q, data, k, cap, keep_all);
                        if !keep_all {
                            assert_eq!(want_all, want, "portable w {w} n {n} k {k} cap {cap}");
                        }
                        let (got, last) = run_scan(kern, &q, data, k, cap, keep_all);
                        assert_eq!(
                            (got, last),
                            (want_all, want_last),
                            "{kern:?} w {w} n {n} k {k} cap {cap} keep_all {keep_all}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn scan_equals_plain_loop_at_every_width() {
        for k in kernels() {
            check_scan(Some(k), 1);
        }
    }

    #[test]
    fn avx2_scan_equals_portable_at_every_width() {
        if !avx2() {
            println!("SKIP avx2_scan_equals_portable_at_every_width: no AVX2");
            return;
        }
        check_scan(None, 3);
    }

    fn check_group(kern: Option<Kernel>, seed: u64) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for w in widths() {
            let n = if w > 1000 {
                29
            } else {
                rng.random_range(0..70)
            };
            for nq in 1..=LANES {
                let qs: Vec<Vec<u8>> = (0..nq)
                    .map(|_| (0..w).map(|_| rng.random()).collect())
                    .collect();
                let near = rng.random_range(0..nq);
                let data = rows(&mut rng, w, n, &qs[near]);
                let k = [1usize, 2, 10, 50][rng.random_range(0..4)];
                let cs = caps(w);
                // Per query its own starting limit; some queries keep
                // every row (`hit` returns the cap).
                let cap: Vec<u32> = (0..nq).map(|_| cs[rng.random_range(0..cs.len())]).collect();
                let keep: Vec<bool> = (0..nq).map(|_| rng.random_bool(0.2)).collect();
                let qr: Vec<&[u8]> = qs.iter().map(|q| q.as_slice()).collect();
                let run = |kern: Option<Kernel>| {
                    let mut tops: Vec<TopK> = (0..nq)
                        .map(|l| TopK {
                            k,
                            best: vec![],
                            cap: cap[l],
                        })
                        .collect();
                    let mut got = vec![vec![]; nq];
                    // One limit more than queries: the kernels leave it alone.
                    let mut limits = cap.clone();
                    limits.push(7);
                    let f = |l: usize, i: usize, d: u32| {
                        got[l].push((i, d));
                        let t = tops[l].push(d);
                        if keep[l] { cap[l] } else { t }
                    };
                    match kern {
                        None => {
                            #[cfg(target_arch = "x86_64")]
                            {
                                assert!(std::arch::is_x86_feature_detected!("avx2"));
                                // SAFETY: AVX2 is available (asserted just
                                // above); 1..=8 queries of width w >= 1 and
                                // more limits than queries.
                                unsafe { avx2::scan_group(&qr, &data, &mut limits, f) }
                            }
                            #[cfg(not(target_arch = "x86_64"))]
                            unreachable!()
                        }
                        Some(kern) => scan_group_with(kern, &qr, &data, &mut limits, f),
                    }
                    (got, limits)
                };
                let want = run(Some(Kernel::Portable));
                for (l, q) in qs.iter().enumerate() {
                    if !keep[l] {
                        assert_eq!(
                            want.0[l],
                            plain(q, &data, k, cap[l]),
                            "portable w {w} l {l}"
                        );
                    }
                }
                assert_eq!(
                    run(kern),
                    want,
                    "{kern:?} w {w} n {n} nq {nq} k {k} caps {cap:?}"
                );
            }
        }
    }

    #[test]
    fn scan_group_equals_plain_loop_at_every_width() {
        for k in kernels() {
            check_group(Some(k), 2);
        }
    }

    #[test]
    fn avx2_scan_group_equals_portable_at_every_width() {
        if !avx2() {
            println!("SKIP avx2_scan_group_equals_portable_at_every_width: no AVX2");
            return;
        }
        check_group(None, 4);
    }

    #[test]
    fn group_falls_back_when_not_a_group() {
        // Mixed widths, no queries, too few limits: the portable loop.
        let data: Vec<u8> = (0..200u8).collect();
        let (a, b) = (vec![1u8; 4], vec![2u8; 5]);
        for k in kernels() {
            let mut limits = [u32::MAX; 2];
            let mut got = vec![];
            scan_group_with(k, &[&a, &b], &data, &mut limits, |l, i, d| {
                got.push((l, i, d));
                u32::MAX
            });
            assert_eq!(got.len(), 50 + 40, "{k:?}");
            scan_group_with(k, &[], &data, &mut limits, |_, _, _| unreachable!());
            let mut one = [5u32];
            let mut n = 0;
            scan_group_with(k, &[&a, &a], &data, &mut one, |_, _, _| {
                n += 1;
                0
            });
            assert!(n <= 1, "{k:?}");
            assert_eq!(scan_with(k, &[], &data, 9, |_, _| unreachable!()), 9);
        }
    }

    #[test]
    fn kernel_choice() {
        assert_eq!(Kernel::select(Some("portable")), Kernel::Portable);
        assert_eq!(
            Kernel::select(Some(" AVX2 ")),
            if avx2() { Kernel::Avx2 } else { Kernel::best() }
        );
        assert_eq!(
            Kernel::select(Some("avx512")),
            if avx512() {
                Kernel::Avx512
            } else {
                Kernel::best()
            }
        );
        assert_eq!(Kernel::select(Some("sse9")), Kernel::best());
        assert_eq!(Kernel::select(Some("")), Kernel::best());
        assert_eq!(Kernel::select(None), Kernel::best());
        assert!(kernel().available());
        for k in Kernel::ALL {
            assert_eq!(Kernel::parse(k.name()), Some(k));
        }
    }
}
