//! Building a digest: the sliding-window histogram, the quartiles and the L-value.
//!
//! # Why our own hasher and not a published crate
//!
//! Measured with `bench/tlsh/crates-eval` (all of `shared/data/tlsh-ref/`, then throughput on
//! one 100 MiB buffer; the table is in `docs/BENCHMARKS.md`):
//!
//! * `fast-tlsh` 0.1.10 with `pure_integer_qratio_computation(true)`: every default-mode digest,
//!   streaming case and distance matches, but its conservative mode starts at 128 bytes where the
//!   reference (4.12.1, `MIN_CONSERVATIVE_DATA_LENGTH`) starts at 256 (2 of 153 vectors wrong:
//!   `len128_random.bin`, `len255_random.bin`); its parser rejects the trailing text the
//!   reference ignores (3 of 16 parsing cases); and it returns `TooLargeInput` for every input
//!   over 4 224 281 216 bytes instead of the saturated digest upstream defines (trendmicro/tlsh#88).
//!   It is also `unsafe` (SIMD) by default.
//! * `tlsh2` 1.1.0: digests and streaming match, but it has no conservative mode, no reason for a
//!   missing digest (`None`), rejects legacy 70-hex digests (4 of 16 parsing cases, 1 of 200
//!   pairs) and computes the Q ratios in `f32`.
//! * This file (~150 lines of logic, no `unsafe`, no dependency) passes every check, and hashed the
//!   same buffer faster than both in the same process on this 2-core machine (see the table).
//!
//! The length, parser and error-reason gaps could have been patched around `fast-tlsh`, but the
//! behaviour over 4 GiB cannot be, and with ours at least as fast there was nothing left to gain.
//! The golden tests in `tests/golden.rs` pin the behaviour, so swapping a crate in behind
//! [`Hasher`] later stays a local change.

use crate::digest::{DIGEST_LEN, Digest, NUM_BUCKETS};
use core::fmt;

/// Minimum input length (bytes) for a digest in the default mode (`MIN_DATA_LENGTH`).
pub const MIN_LEN: u64 = 50;
/// Minimum input length (bytes) for a digest in conservative mode (`MIN_CONSERVATIVE_DATA_LENGTH`).
pub const MIN_CONSERVATIVE_LEN: u64 = 256;
/// Number of leading bytes that contribute to a digest: `2^32 - 1`, the longest length the
/// reference (a 32-bit length counter) can represent. Upstream defines the TLSH of a longer input
/// as the TLSH of its first 4 GiB; the bytes after this limit are counted by [`Hasher::len`] but not
/// hashed, and the L-value is saturated.
pub const MAX_HASHED_LEN: u64 = u32::MAX as u64;

/// Why an input has no digest (the reference prints `TNULL`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoDigest {
    /// Fewer than `min` bytes (50, or 256 in conservative mode).
    TooShort {
        /// Input length in bytes.
        len: u64,
        /// The minimum for the mode used.
        min: u64,
    },
    /// The byte-triplet histogram is too flat: the third quartile is 0, or at most 64 of the
    /// 128 buckets are non-zero (e.g. 5000 × `A`, or `ab` repeated).
    TooLittleVariety {
        /// How many of the 128 buckets are non-zero (a digest needs more than 64).
        nonzero_buckets: u32,
    },
}

impl NoDigest {
    /// A stable machine-readable reason: `"too short"` or `"too little variety"`.
    pub const fn reason(&self) -> &'static str {
        match self {
            NoDigest::TooShort { .. } => "too short",
            NoDigest::TooLittleVariety { .. } => "too little variety",
        }
    }
}

impl fmt::Display for NoDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoDigest::TooShort { len, min } => write!(
                f,
                "no TLSH digest: input too short ({len} bytes, at least {min} needed)"
            ),
            NoDigest::TooLittleVariety { nonzero_buckets } => write!(
                f,
                "no TLSH digest: too little variety in the input ({nonzero_buckets} of 128 \
                 buckets non-zero, more than 64 and a non-zero third quartile needed)"
            ),
        }
    }
}

impl std::error::Error for NoDigest {}

/// Hashing options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Options {
    /// Conservative mode: no digest below 256 bytes instead of 50 (the reference's
    /// `-conservative` / `tlsh.conservativehash`). The digest itself is unchanged.
    pub conservative: bool,
}

impl Options {
    /// The minimum input length for this mode.
    pub const fn min_len(&self) -> u64 {
        if self.conservative {
            MIN_CONSERVATIVE_LEN
        } else {
            MIN_LEN
        }
    }
}

/// The TLSH digest of `data` (default mode).
pub fn hash(data: &[u8]) -> Result<Digest, NoDigest> {
    hash_with_options(data, Options::default())
}

/// The TLSH digest of `data` with `options`.
pub fn hash_with_options(data: &[u8], options: Options) -> Result<Digest, NoDigest> {
    let mut h = Hasher::with_options(options);
    h.update(data);
    h.finish()
}

/// The L-value (log-length byte) of an input of `len` bytes, as the reference's `l_capturing`
/// computes it for lengths up to 4 224 281 216 bytes, saturated at 170 above (the reference
/// table ends there: trendmicro/tlsh#88). Pure and total: never overflows, for any `u64`.
pub fn l_value(len: u64) -> u8 {
    // Number of table entries strictly below `len` = the smallest index i with len <= TOPVAL[i].
    let idx = TOPVAL.partition_point(|&top| u64::from(top) < len);
    // idx <= 170 because the table has 170 entries.
    u8::try_from(idx).unwrap_or(u8::MAX)
}

/// A streaming TLSH hasher. Feeding the input in any chunking gives the same digest as
/// [`hash`] on the whole input (unlike the C++ core for a first chunk shorter than 5 bytes,
/// trendmicro/tlsh#151: the one-shot digest is canonical and this hasher always gives it).
///
/// ```
/// let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
/// let mut h = apksift_tlsh::Hasher::new();
/// for chunk in data.chunks(3) {
///     h.update(chunk);
/// }
/// assert_eq!(h.finish(), apksift_tlsh::hash(&data));
/// ```
#[derive(Clone)]
pub struct Hasher {
    /// Pearson-bucket counters (256 of them; the digest uses the first 128). `u32` and wrapping,
    /// as in the reference.
    buckets: [u32; 256],
    /// The last four bytes seen, oldest first (valid once `len >= 4`).
    window: [u8; 4],
    checksum: u8,
    /// Total bytes fed, including any past [`MAX_HASHED_LEN`].
    len: u64,
    options: Options,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher::new()
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("len", &self.len)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Hasher {
    /// A hasher in the default mode.
    pub const fn new() -> Hasher {
        Hasher::with_options(Options {
            conservative: false,
        })
    }

    /// A hasher with `options`.
    pub const fn with_options(options: Options) -> Hasher {
        Hasher {
            buckets: [0; 256],
            window: [0; 4],
            checksum: 0,
            len: 0,
            options,
        }
    }

    /// The options this hasher was built with.
    pub const fn options(&self) -> Options {
        self.options
    }

    /// Bytes fed so far (all of them, also those past [`MAX_HASHED_LEN`]).
    pub const fn len(&self) -> u64 {
        self.len
    }

    /// True if nothing has been fed yet.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forget everything fed so far (keeps the options).
    pub fn reset(&mut self) {
        *self = Hasher::with_options(self.options);
    }

    /// Feed more input.
    pub fn update(&mut self, data: &[u8]) {
        let hashed_before = self.len.min(MAX_HASHED_LEN);
        self.len = self.len.saturating_add(data.len() as u64);
        let room = MAX_HASHED_LEN - hashed_before;
        let take = usize::try_from(room).map_or(data.len(), |r| r.min(data.len()));
        let mut data = data.get(..take).unwrap_or(&[]);

        // Warm-up: the first four bytes of the stream only fill the window.
        let mut filled = hashed_before;
        while filled < 4 {
            let Some((&b, rest)) = data.split_first() else {
                return;
            };
            self.window = [self.window[1], self.window[2], self.window[3], b];
            filled += 1;
            data = rest;
        }
        self.absorb(data);
    }

    /// The main loop: every byte with the four bytes before it.
    #[inline]
    fn absorb(&mut self, data: &[u8]) {
        self.checksum = count_and_checksum(&mut self.buckets, self.window, self.checksum, data);
        self.window = next_window(self.window, data);
    }

    /// The same state with the length set to `len` (for tests of the cap without 4 GiB of input).
    #[cfg(test)]
    pub(crate) fn with_len(mut self, len: u64) -> Hasher {
        self.len = len;
        self
    }

    /// A hasher in the state that feeding a whole stream leaves: for the parallel one-shot hash,
    /// which computes the parts separately (`crate::parallel`).
    pub(crate) const fn from_parts(
        buckets: [u32; 256],
        window: [u8; 4],
        checksum: u8,
        len: u64,
        options: Options,
    ) -> Hasher {
        Hasher {
            buckets,
            window,
            checksum,
            len,
            options,
        }
    }

    /// The raw histogram of the 128 buckets that make up a digest, in Pearson-bucket order
    /// (the reference's `HistogramCount(b)` is `bucket_counts()[127 - b]`). For debugging and
    /// for comparing with `tlsh_parts` output.
    pub fn bucket_counts(&self) -> [u32; NUM_BUCKETS] {
        let mut out = [0u32; NUM_BUCKETS];
        for (o, c) in out.iter_mut().zip(self.buckets.iter()) {
            *o = *c;
        }
        out
    }

    /// The digest of everything fed so far (the hasher can keep going afterwards).
    pub fn finish(&self) -> Result<Digest, NoDigest> {
        let min = self.options.min_len();
        if self.len < min {
            return Err(NoDigest::TooShort { len: self.len, min });
        }
        let counts = self.bucket_counts();
        let mut sorted = counts;
        sorted.sort_unstable();
        // Order statistics 31, 63 and 95 of the 128 counts, as the reference's find_quartile.
        let (q1, q2, q3) = (sorted[31], sorted[63], sorted[95]);
        let nonzero_buckets = counts.iter().map(|&c| u32::from(c != 0)).sum::<u32>();
        if q3 == 0 || nonzero_buckets <= (NUM_BUCKETS / 2) as u32 {
            return Err(NoDigest::TooLittleVariety { nonzero_buckets });
        }

        let mut rec = [0u8; DIGEST_LEN];
        rec[0] = self.checksum.rotate_left(4);
        rec[1] = l_value(self.len).rotate_left(4);
        // 64-bit ratios (trendmicro/tlsh PR #136): q * 100 overflows u32 above ~43M per bucket.
        let q1_ratio = ((u64::from(q1) * 100 / u64::from(q3)) % 16) as u8;
        let q2_ratio = ((u64::from(q2) * 100 / u64::from(q3)) % 16) as u8;
        rec[2] = (q1_ratio << 4) | q2_ratio;
        // Body: record byte 3 + j holds Pearson buckets 127 - 4j .. 124 - 4j, the first of them in
        // the two high bits (the reference's code[] array printed in reverse).
        let body = rec.iter_mut().skip(3);
        for (out, group) in body.zip(counts.chunks_exact(4).rev()) {
            let mut byte = 0u8;
            for (k, &c) in group.iter().enumerate() {
                let code = if c > q3 {
                    3
                } else if c > q2 {
                    2
                } else {
                    u8::from(c > q1)
                };
                byte |= code << (2 * k);
            }
            *out = byte;
        }
        Ok(Digest::from_bytes(rec))
    }

    /// Consume the hasher and return its digest (same as [`Hasher::finish`]).
    pub fn finalize(self) -> Result<Digest, NoDigest> {
        self.finish()
    }
}

impl std::io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The fused main loop over `data`, whose first byte follows `window`: bucket increments and the
/// checksum chain; returns the new checksum.
#[inline]
pub(crate) fn count_and_checksum(
    buckets: &mut [u32; 256],
    window: [u8; 4],
    mut checksum: u8,
    data: &[u8],
) -> u8 {
    let [mut a0, mut a1, mut a2, mut a3] = window;
    for &a4 in data {
        checksum = step(buckets, checksum, [a0, a1, a2, a3, a4]);
        (a0, a1, a2, a3) = (a1, a2, a3, a4);
    }
    checksum
}

/// Bucket increments only (no checksum) over `data`, whose first byte follows `window`. The
/// histogram is a sum over positions, so disjoint ranges can be counted apart and added.
#[inline]
pub(crate) fn count_only(buckets: &mut [u32; 256], window: [u8; 4], data: &[u8]) {
    let [mut a0, mut a1, mut a2, mut a3] = window;
    for &a4 in data {
        let [_, f49, f12, f178, f166, f84, f230, _] = first_steps(a4);
        bump(buckets, t(t(f49 ^ a3) ^ a2));
        bump(buckets, t(t(f12 ^ a3) ^ a1));
        bump(buckets, t(t(f178 ^ a2) ^ a1));
        bump(buckets, t(t(f166 ^ a2) ^ a0));
        bump(buckets, t(t(f84 ^ a3) ^ a0));
        bump(buckets, t(t(f230 ^ a1) ^ a0));
        (a0, a1, a2, a3) = (a1, a2, a3, a4);
    }
}

/// The checksum chain only over `data`, whose first byte follows the byte `prev`: one
/// independent and one dependent table look-up per byte (about a third of the fused loop's cost).
#[inline]
pub(crate) fn checksum_only(mut checksum: u8, mut prev: u8, data: &[u8]) -> u8 {
    for &a4 in data {
        let [f1, ..] = first_steps(a4);
        checksum = t(t(f1 ^ prev) ^ checksum);
        prev = a4;
    }
    checksum
}

/// The window after `data` when it was `window` before.
#[inline]
pub(crate) fn next_window(window: [u8; 4], data: &[u8]) -> [u8; 4] {
    let [_, w1, w2, w3] = window;
    match *data {
        [.., a, b, c, d] => [a, b, c, d],
        [a, b, c] => [w3, a, b, c],
        [a, b] => [w2, w3, a, b],
        [a] => [w1, w2, w3, a],
        [] => window,
    }
}

/// One input byte `a4` after `a0..a3`: the checksum step and six bucket increments (the
/// reference's `fast_b_mapping` salts 49, 12, 178, 166, 84, 230 on the same byte triplets).
#[inline(always)]
fn step(b: &mut [u32; 256], checksum: u8, [a0, a1, a2, a3, a4]: [u8; 5]) -> u8 {
    // First Pearson step of all seven mappings in one 8-byte row.
    let [f1, f49, f12, f178, f166, f84, f230, _] = first_steps(a4);
    bump(b, t(t(f49 ^ a3) ^ a2));
    bump(b, t(t(f12 ^ a3) ^ a1));
    bump(b, t(t(f178 ^ a2) ^ a1));
    bump(b, t(t(f166 ^ a2) ^ a0));
    bump(b, t(t(f84 ^ a3) ^ a0));
    bump(b, t(t(f230 ^ a1) ^ a0));
    t(t(f1 ^ a3) ^ checksum)
}

#[inline(always)]
fn bump(buckets: &mut [u32; 256], i: u8) {
    if let Some(c) = buckets.get_mut(usize::from(i)) {
        *c = c.wrapping_add(1);
    }
}

#[inline(always)]
fn t(i: u8) -> u8 {
    match PEARSON.get(usize::from(i)) {
        Some(&v) => v,
        None => 0,
    }
}

/// `T[ms ^ x]` for the seven mappings of the main loop, by `x`.
#[inline(always)]
fn first_steps(x: u8) -> [u8; 8] {
    match FIRST_STEPS.get(usize::from(x)) {
        Some(&row) => row,
        None => [0; 8],
    }
}

/// Salts of the main loop after the first Pearson step (`ms = T[salt]`): checksum (salt 0) and
/// the six bucket mappings (salts 2, 3, 5, 7, 11, 13).
const MS: [u8; 7] = [1, 49, 12, 178, 166, 84, 230];

// Built at compile time: an out-of-range index here is a build error, never a runtime panic.
#[allow(clippy::indexing_slicing)]
static FIRST_STEPS: [[u8; 8]; 256] = {
    let mut out = [[0u8; 8]; 256];
    let mut x = 0;
    while x < 256 {
        let mut k = 0;
        while k < MS.len() {
            out[x][k] = PEARSON[(MS[k] ^ x as u8) as usize];
            k += 1;
        }
        x += 1;
    }
    out
};

/// Pearson's permutation table as used by TLSH (`v_table`).
static PEARSON: [u8; 256] = [
    1, 87, 49, 12, 176, 178, 102, 166, 121, 193, 6, 84, 249, 230, 44, 163, //
    14, 197, 213, 181, 161, 85, 218, 80, 64, 239, 24, 226, 236, 142, 38, 200, //
    110, 177, 104, 103, 141, 253, 255, 50, 77, 101, 81, 18, 45, 96, 31, 222, //
    25, 107, 190, 70, 86, 237, 240, 34, 72, 242, 20, 214, 244, 227, 149, 235, //
    97, 234, 57, 22, 60, 250, 82, 175, 208, 5, 127, 199, 111, 62, 135, 248, //
    174, 169, 211, 58, 66, 154, 106, 195, 245, 171, 17, 187, 182, 179, 0, 243, //
    132, 56, 148, 75, 128, 133, 158, 100, 130, 126, 91, 13, 153, 246, 216, 219, //
    119, 68, 223, 78, 83, 88, 201, 99, 122, 11, 92, 32, 136, 114, 52, 10, //
    138, 30, 48, 183, 156, 35, 61, 26, 143, 74, 251, 94, 129, 162, 63, 152, //
    170, 7, 115, 167, 241, 206, 3, 150, 55, 59, 151, 220, 90, 53, 23, 131, //
    125, 173, 15, 238, 79, 95, 89, 16, 105, 137, 225, 224, 217, 160, 37, 123, //
    118, 73, 2, 157, 46, 116, 9, 145, 134, 228, 207, 212, 202, 215, 69, 229, //
    27, 188, 67, 124, 168, 252, 42, 4, 29, 108, 21, 247, 19, 205, 39, 203, //
    233, 40, 186, 147, 198, 192, 155, 33, 164, 191, 98, 204, 165, 180, 117, 76, //
    140, 36, 210, 172, 41, 54, 159, 8, 185, 232, 113, 196, 231, 47, 146, 120, //
    51, 65, 28, 144, 254, 221, 93, 189, 194, 139, 112, 43, 71, 109, 184, 209, //
];

/// Upper length bound (inclusive) of each L-value 0..=169: the reference's `topval` table
/// (TLSH 4.12.1 `tlsh_util.cpp`). Lengths above the last entry saturate at 170.
static TOPVAL: [u32; 170] = [
    1, 2, 3, 5, 7, 11, 17, 25, //
    38, 57, 86, 129, 194, 291, 437, 656, //
    854, 1110, 1443, 1876, 2439, 3171, 3475, 3823, //
    4205, 4626, 5088, 5597, 6157, 6772, 7450, 8195, //
    9014, 9916, 10907, 11998, 13198, 14518, 15970, 17567, //
    19323, 21256, 23382, 25720, 28292, 31121, 34233, 37656, //
    41422, 45564, 50121, 55133, 60646, 66711, 73382, 80721, //
    88793, 97672, 107439, 118183, 130002, 143002, 157302, 173032, //
    190335, 209369, 230306, 253337, 278670, 306538, 337191, 370911, //
    408002, 448802, 493682, 543050, 597356, 657091, 722800, 795081, //
    874589, 962048, 1058252, 1164078, 1280486, 1408534, 1549388, 1704327, //
    1874759, 2062236, 2268459, 2495305, 2744836, 3019320, 3321252, 3653374, //
    4018711, 4420582, 4862641, 5348905, 5883796, 6472176, 7119394, 7831333, //
    8614467, 9475909, 10423501, 11465851, 12612437, 13873681, 15261050, 16787154, //
    18465870, 20312458, 22343706, 24578077, 27035886, 29739474, 32713425, 35984770, //
    39583245, 43541573, 47895730, 52685306, 57953837, 63749221, 70124148, 77136564, //
    84850228, 93335252, 102668779, 112935659, 124229227, 136652151, 150317384, 165349128, //
    181884040, 200072456, 220079703, 242087671, 266296456, 292926096, 322218735, 354440623, //
    389884688, 428873168, 471760495, 518936559, 570830240, 627913311, 690704607, 759775136, //
    835752671, 919327967, 1011260767, 1112386880, 1223623232, 1345985727, 1480584256,
    1628642751, //
    1791507135, 1970657856, 2167723648, 2384496256, 2622945920, 2885240448, 3173764736,
    3491141248, //
    3840255616, 4224281216, //
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l_value_matches_reference_search() {
        // l_capturing: idx with TOPVAL[idx-1] < len <= TOPVAL[idx], 0 for len <= 1.
        assert_eq!(l_value(0), 0);
        assert_eq!(l_value(1), 0);
        assert_eq!(l_value(2), 1);
        assert_eq!(l_value(50), 9);
        assert_eq!(l_value(656), 15);
        assert_eq!(l_value(657), 16);
        assert_eq!(l_value(4_224_281_216), 169);
        assert_eq!(l_value(4_224_281_217), 170);
        for (i, pair) in TOPVAL.windows(2).enumerate() {
            assert_eq!(usize::from(l_value(u64::from(pair[1]))), i + 1);
            assert_eq!(usize::from(l_value(u64::from(pair[0]) + 1)), i + 1);
        }
    }

    #[test]
    fn l_value_large_inputs_saturate() {
        assert_eq!(l_value(1 << 31), 162); // 2 147 483 648: 1 970 657 856 < len <= 2 167 723 648
        assert_eq!(l_value(1 << 32), 170);
        assert_eq!(l_value(1 << 33), 170);
        assert_eq!(l_value(u64::MAX), 170);
        assert_eq!(l_value(MAX_HASHED_LEN), 170);
    }

    #[test]
    fn bytes_past_the_cap_are_counted_not_hashed() {
        // Start two hashers 10 bytes before the cap with the same state.
        let warm: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 253) as u8).collect();
        let mut a = Hasher::new();
        a.update(&warm);
        a.len = MAX_HASHED_LEN - 10;
        let mut b = a.clone();
        let more: Vec<u8> = (0..100u8).collect();
        a.update(&more);
        b.update(&more[..10]);
        assert_eq!(a.len(), MAX_HASHED_LEN + 90);
        assert_eq!(b.len(), MAX_HASHED_LEN);
        assert_eq!(a.bucket_counts(), b.bucket_counts());
        assert_eq!(a.window, b.window);
        assert_eq!(a.checksum, b.checksum);
        a.update(&more);
        assert_eq!(a.bucket_counts(), b.bucket_counts());
        let d = a.finish().unwrap();
        assert_eq!(d.lvalue(), 170);
        assert_eq!(Ok(d), b.finish());
        // The length saturates instead of overflowing.
        a.len = u64::MAX - 1;
        a.update(&more);
        assert_eq!(a.len(), u64::MAX);
    }

    #[test]
    fn no_digest_reasons_are_stable() {
        let short = NoDigest::TooShort { len: 3, min: 50 };
        assert_eq!(short.reason(), "too short");
        assert!(short.to_string().contains("3 bytes"));
        let flat = NoDigest::TooLittleVariety { nonzero_buckets: 2 };
        assert_eq!(flat.reason(), "too little variety");
        assert!(flat.to_string().contains("2 of 128"));
    }
}
