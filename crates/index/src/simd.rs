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
}
