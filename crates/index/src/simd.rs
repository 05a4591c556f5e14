//! AVX2 kernel for TLSH body costs (the one place this crate uses `unsafe`;
//! see `UNSAFE.md`). Chosen at run time with `is_x86_feature_detected!`; the
//! portable popcount kernel in `tlsh_kernel.rs` is used otherwise and is the
//! reference the tests compare this one with.
#![allow(unsafe_code)]

use apksift_tlsh::DIGEST_LEN;

/// Writes the TLSH body cost of every 35-byte record of `records` to `out`
/// (`out.len() >= records.len() / 35`). `qbody` is the query body (record
/// bytes 3..35) and `s` has, at the low bit of each 2-bit lane, whether the
/// query's value in that bucket is 1 or 2.
pub fn body_costs(qbody: &[u8; 32], s: &[u8; 32], records: &[u8], out: &mut [u16]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available (checked just above); the function
            // only reads `records` within bounds (see its loop) and writes
            // `out` within bounds.
            unsafe { body_costs_avx2(qbody, s, records, out) };
            return true;
        }
    }
    let _ = (qbody, s, records, out);
    false
}

/// For the 35-byte records that start every `stride` bytes of `bytes` (the
/// centres of consecutive tree nodes, `stride` = 128): their TLSH body cost
/// and L1 distance (Σ bucket |Δ|) from the query, in `cost[i]` and `l1[i]`,
/// for `i < min(records, cost.len(), l1.len())`, where record `i` is the one
/// at `stride·i` and only records that end inside `bytes` count. Returns
/// false (nothing written) without AVX2.
pub fn center_costs(
    qbody: &[u8; 32],
    s: &[u8; 32],
    bytes: &[u8],
    stride: usize,
    cost: &mut [u16],
    l1: &mut [u16],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if stride >= DIGEST_LEN && std::arch::is_x86_feature_detected!("avx2") {
            let whole = if bytes.len() >= DIGEST_LEN {
                (bytes.len() - DIGEST_LEN) / stride + 1
            } else {
                0
            };
            let n = whole.min(cost.len()).min(l1.len());
            // SAFETY: AVX2 is available (checked just above); for i < n the
            // function reads bytes [stride·i + 3, stride·i + 35), inside
            // `bytes` because stride·i + 35 <= bytes.len() for i < whole,
            // and writes cost[i], l1[i] for i < n <= their lengths.
            unsafe { center_costs_avx2(qbody, s, bytes, stride, n, cost, l1) };
            return true;
        }
    }
    let _ = (qbody, s, bytes, stride, cost, l1);
    false
}

/// Hints the CPU to fetch the first `lines` cache lines (64 bytes) of
/// `bytes` into cache; no effect on results. The tree search calls it for
/// the children (or leaf digests) of a node when it queues the node, so the
/// memory is on its way by the time the node is expanded.
#[inline]
pub fn prefetch(bytes: &[u8], lines: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let n = lines.min(bytes.len().div_ceil(64));
        for j in 0..n {
            if let Some(b) = bytes.get(64 * j) {
                // SAFETY: a prefetch never faults and reads nothing observable;
                // the address is that of an element of `bytes` (SSE, which
                // provides the instruction, is part of the x86_64 baseline).
                #[allow(unused_unsafe)]
                unsafe {
                    _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(b).cast());
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, lines);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn center_costs_avx2(
    qbody: &[u8; 32],
    s: &[u8; 32],
    bytes: &[u8],
    stride: usize,
    n: usize,
    cost: &mut [u16],
    l1: &mut [u16],
) {
    use std::arch::x86_64::*;
    // Per nibble (two lanes holding |Δ| codes 0..3): TLSH cost and L1 of both lanes.
    const T: [i8; 16] = [0, 1, 2, 6, 1, 2, 3, 7, 2, 3, 4, 8, 6, 7, 8, 12];
    const U: [i8; 16] = [0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6];
    // SAFETY (whole body): the caller guarantees stride·i + 35 <= bytes.len()
    // for i < n and n <= cost.len(), l1.len(); loads are unaligned.
    unsafe {
        let qb = _mm256_loadu_si256(qbody.as_ptr().cast());
        let sv = _mm256_loadu_si256(s.as_ptr().cast());
        let m55 = _mm256_set1_epi8(0x55);
        let m0f = _mm256_set1_epi8(0x0f);
        let tab = _mm256_setr_epi8(
            T[0], T[1], T[2], T[3], T[4], T[5], T[6], T[7], T[8], T[9], T[10], T[11], T[12], T[13],
            T[14], T[15], T[0], T[1], T[2], T[3], T[4], T[5], T[6], T[7], T[8], T[9], T[10], T[11],
            T[12], T[13], T[14], T[15],
        );
        let tl1 = _mm256_setr_epi8(
            U[0], U[1], U[2], U[3], U[4], U[5], U[6], U[7], U[8], U[9], U[10], U[11], U[12], U[13],
            U[14], U[15], U[0], U[1], U[2], U[3], U[4], U[5], U[6], U[7], U[8], U[9], U[10], U[11],
            U[12], U[13], U[14], U[15],
        );
        let zero = _mm256_setzero_si256();
        let base = bytes.as_ptr();
        for i in 0..n {
            let r = _mm256_loadu_si256(base.add(i * stride + 3).cast());
            let x = _mm256_xor_si256(r, qb);
            let x0 = _mm256_and_si256(x, m55);
            let x1 = _mm256_and_si256(_mm256_srli_epi16(x, 1), m55);
            let x1 = _mm256_andnot_si256(_mm256_and_si256(x0, sv), x1);
            let code = _mm256_or_si256(x0, _mm256_slli_epi16(x1, 1));
            let lo = _mm256_and_si256(code, m0f);
            let hi = _mm256_and_si256(_mm256_srli_epi16(code, 4), m0f);
            let c = _mm256_add_epi8(_mm256_shuffle_epi8(tab, lo), _mm256_shuffle_epi8(tab, hi));
            let d = _mm256_add_epi8(_mm256_shuffle_epi8(tl1, lo), _mm256_shuffle_epi8(tl1, hi));
            let sc = _mm256_sad_epu8(c, zero);
            let sd = _mm256_sad_epu8(d, zero);
            let tc = _mm_add_epi64(_mm256_castsi256_si128(sc), _mm256_extracti128_si256(sc, 1));
            let td = _mm_add_epi64(_mm256_castsi256_si128(sd), _mm256_extracti128_si256(sd, 1));
            *cost.get_unchecked_mut(i) = (_mm_cvtsi128_si64(tc) + _mm_extract_epi64(tc, 1)) as u16;
            *l1.get_unchecked_mut(i) = (_mm_cvtsi128_si64(td) + _mm_extract_epi64(td, 1)) as u16;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn body_costs_avx2(qbody: &[u8; 32], s: &[u8; 32], records: &[u8], out: &mut [u16]) {
    use std::arch::x86_64::*;
    // Per nibble (two lanes, codes 00/01/10/11 = cost 0/1/2/6): the sum of both lanes' costs.
    const T: [i8; 16] = [0, 1, 2, 6, 1, 2, 3, 7, 2, 3, 4, 8, 6, 7, 8, 12];
    let n = (records.len() / DIGEST_LEN).min(out.len());
    // SAFETY (whole body): loads are unaligned loads of 32 bytes starting at
    // byte 3 of record i, i.e. bytes [35 i + 3, 35 i + 35) which lie inside
    // `records` for every i < n; `out[i]` is written for i < n <= out.len().
    unsafe {
        let qb = _mm256_loadu_si256(qbody.as_ptr().cast());
        let sv = _mm256_loadu_si256(s.as_ptr().cast());
        let m55 = _mm256_set1_epi8(0x55);
        let m0f = _mm256_set1_epi8(0x0f);
        let tab = _mm256_setr_epi8(
            T[0], T[1], T[2], T[3], T[4], T[5], T[6], T[7], T[8], T[9], T[10], T[11], T[12], T[13],
            T[14], T[15], T[0], T[1], T[2], T[3], T[4], T[5], T[6], T[7], T[8], T[9], T[10], T[11],
            T[12], T[13], T[14], T[15],
        );
        let zero = _mm256_setzero_si256();
        let base = records.as_ptr();
        for i in 0..n {
            let r = _mm256_loadu_si256(base.add(i * DIGEST_LEN + 3).cast());
            let x = _mm256_xor_si256(r, qb);
            let x0 = _mm256_and_si256(x, m55);
            let x1 = _mm256_and_si256(_mm256_srli_epi16(x, 1), m55);
            let x1 = _mm256_andnot_si256(_mm256_and_si256(x0, sv), x1);
            let code = _mm256_or_si256(x0, _mm256_slli_epi16(x1, 1));
            let lo = _mm256_and_si256(code, m0f);
            let hi = _mm256_and_si256(_mm256_srli_epi16(code, 4), m0f);
            let c = _mm256_add_epi8(_mm256_shuffle_epi8(tab, lo), _mm256_shuffle_epi8(tab, hi));
            let sad = _mm256_sad_epu8(c, zero);
            let t = _mm_add_epi64(
                _mm256_castsi256_si128(sad),
                _mm256_extracti128_si256(sad, 1),
            );
            let total = _mm_cvtsi128_si64(t) + _mm_extract_epi64(t, 1);
            *out.get_unchecked_mut(i) = total as u16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlsh_kernel::TlshQuery;
    use apksift_tlsh::Digest;
    use rand::{Rng, SeedableRng};

    #[test]
    fn avx2_body_costs_equal_the_portable_kernel() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let n = 5000;
        let mut recs = vec![0u8; n * DIGEST_LEN];
        rng.fill(&mut recs[..]);
        for _ in 0..50 {
            let mut q = [0u8; DIGEST_LEN];
            rng.fill(&mut q[..]);
            let tq = TlshQuery::new(Digest::from_bytes(q), true);
            let (qb, s) = tq.body_bytes_and_s();
            let mut out = vec![0u16; n];
            if !body_costs(&qb, &s, &recs, &mut out) {
                eprintln!("SKIP: no AVX2 on this CPU");
                return;
            }
            for (i, r) in recs.chunks_exact(DIGEST_LEN).enumerate() {
                assert_eq!(u32::from(out[i]), tq.body(r), "record {i}");
            }
        }
        // A trailing partial record is not read.
        let mut out = vec![0u16; 2];
        let short = &recs[..DIGEST_LEN + 10];
        let q = TlshQuery::new(Digest::from_bytes([0u8; DIGEST_LEN]), true);
        let (qb, s) = q.body_bytes_and_s();
        body_costs(&qb, &s, short, &mut out);
        assert_eq!(out[1], 0);
    }

    #[test]
    fn avx2_centre_costs_equal_the_portable_kernel() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        let (n, stride) = (3000, 128);
        let mut bytes = vec![0u8; n * stride - (stride - DIGEST_LEN)];
        rng.fill(&mut bytes[..]);
        for _ in 0..20 {
            let mut q = [0u8; DIGEST_LEN];
            rng.fill(&mut q[..]);
            let tq = TlshQuery::new(Digest::from_bytes(q), true);
            let (qb, s) = tq.body_bytes_and_s();
            let (mut cost, mut l1) = (vec![u16::MAX; n + 1], vec![u16::MAX; n + 1]);
            if !center_costs(&qb, &s, &bytes, stride, &mut cost, &mut l1) {
                eprintln!("SKIP: no AVX2 on this CPU");
                return;
            }
            for i in 0..n {
                let r = &bytes[i * stride..i * stride + DIGEST_LEN];
                assert_eq!(u32::from(cost[i]), tq.body(r), "record {i}");
                let w = crate::tlsh_kernel::record_body_words(r);
                assert_eq!(u32::from(l1[i]), tq.body_l1_words(&w), "record {i}");
            }
            // Only whole records inside the slice are read and written.
            assert_eq!((cost[n], l1[n]), (u16::MAX, u16::MAX));
        }
    }
}
