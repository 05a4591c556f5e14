//! One-shot hashing on several threads, bit-identical with [`hash_with_options`].
//!
//! The 128-bucket histogram is a sum over byte positions, and each position needs only the four
//! bytes before it, so disjoint ranges can be counted on different threads and added (wrapping, as
//! the `u32` counters are). The one-byte checksum is a sequential chain; it costs about a third of
//! the fused loop per byte (one independent and one dependent table look-up), and inside the fused
//! loop it is nearly free, so the thread that owns the chain also counts buckets for as long as
//! that keeps the threads balanced.
//!
//! The work is cut into chunks ([`DEFAULT_CHUNK_LEN`]). The chain's owner ([`SharedHash::run_checksum`])
//! takes chunks from the front and runs the fused loop on them; helpers ([`SharedHash::help`]) take
//! chunks from the back and only count. The owner stops taking chunks when the helpers at work would
//! finish the untaken ones no later than the chain alone would cover the rest
//! ([`CHAIN_SPEEDUP`]); it then runs the chain alone to the end and helps with whatever is left.
//! With no helper at work the owner takes every chunk: the cost is then that of [`hash`](crate::hash),
//! which is what a saturated pool (batch ingest) wants.

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::digest::Digest;
use crate::hasher::{
    Hasher, MAX_HASHED_LEN, NoDigest, Options, checksum_only, count_and_checksum, count_only,
    hash_with_options, next_window,
};

/// Inputs shorter than this are hashed on the calling thread by [`hash_parallel`]: starting a thread
/// costs about as much as hashing a few KiB, and below this size the gain is a fraction of a
/// millisecond.
pub const PARALLEL_MIN_LEN: usize = 256 << 10;

/// Bytes per chunk of work in [`SharedHash::new`] (about 0.6 ms of hashing at 200 MiB/s).
pub const DEFAULT_CHUNK_LEN: usize = 128 << 10;

/// How many times faster the checksum chain alone runs than the fused loop (measured about 3.2 on
/// the 2-core AMD EPYC development machine: 15 ms vs 49 ms of CPU time per 10 MiB; see
/// `docs/BENCHMARKS.md`). It only steers how the work is split, never the result.
pub const CHAIN_SPEEDUP: usize = 3;

/// Leading bytes that only fill the window (no bucket, no checksum step).
const WARMUP: usize = 4;

/// How many leading bytes of a one-shot input of `len` bytes are hashed: all of them up to
/// [`MAX_HASHED_LEN`] (the rule [`Hasher::update`] applies to a stream).
pub(crate) fn hashed_len(len: usize) -> usize {
    usize::try_from(MAX_HASHED_LEN).map_or(len, |cap| len.min(cap))
}

/// The TLSH digest of `data` with `options`, computed on up to `threads` threads (the calling one
/// included, others through [`std::thread::scope`]). Always equal to
/// [`hash_with_options`]`(data, options)`. Inputs under [`PARALLEL_MIN_LEN`] bytes, and
/// `threads <= 1`, are hashed on the calling thread without starting any.
///
/// On a thread pool of your own (rayon, a server's workers) use [`SharedHash`] instead, so that
/// the hash does not start threads on top of the pool's.
///
/// ```
/// use apksift_tlsh::{Options, hash_parallel, hash_with_options};
/// let data: Vec<u8> = (0..1_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
/// let one = hash_with_options(&data, Options::default());
/// assert_eq!(hash_parallel(&data, Options::default(), 4), one);
/// ```
pub fn hash_parallel(data: &[u8], options: Options, threads: usize) -> Result<Digest, NoDigest> {
    if threads <= 1 || data.len() < PARALLEL_MIN_LEN {
        return hash_with_options(data, options);
    }
    let shared = SharedHash::new(data, options);
    std::thread::scope(|s| {
        for _ in 1..threads {
            // A helper that cannot be started leaves its share to the others.
            let _ = std::thread::Builder::new()
                .name("tlsh-helper".into())
                .spawn_scoped(s, || shared.help());
        }
        shared.run_checksum();
    });
    shared.finish()
}

/// A one-shot hash of one buffer that any number of workers, on any threads, can share: one calls
/// [`run_checksum`](SharedHash::run_checksum), the others [`help`](SharedHash::help), and
/// [`finish`](SharedHash::finish) gives the digest, equal to [`hash_with_options`] for every
/// input, however many helpers ran and whenever they started (a helper that starts late finds
/// nothing left and returns at once). `finish` does whatever no worker did, so even with no worker
/// at all the result is right.
///
/// ```
/// use apksift_tlsh::{Options, SharedHash, hash};
/// let data: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
/// let shared = SharedHash::new(&data, Options::default());
/// std::thread::scope(|s| {
///     s.spawn(|| shared.help());
///     shared.run_checksum();
/// });
/// assert_eq!(shared.finish(), hash(&data));
/// ```
#[derive(Debug)]
pub struct SharedHash<'a> {
    /// The hashed prefix of the input (at most [`MAX_HASHED_LEN`] bytes).
    data: &'a [u8],
    /// The whole input's length (for the minimum length and the L-value).
    len: u64,
    options: Options,
    chunk_len: usize,
    /// See [`CHAIN_SPEEDUP`].
    chain_speedup: usize,
    /// Chunks in the counted range `WARMUP..data.len()`.
    chunks: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Chunks `front..back` are not taken yet (the owner takes `front`, helpers `back - 1`).
    front: usize,
    back: usize,
    /// Helpers counting right now.
    helpers: usize,
    /// Bucket counts added by the workers that are done.
    counts: [u32; 256],
    chain_started: bool,
    /// The checksum over the whole input, once the chain is done.
    checksum: Option<u8>,
}

impl<'a> SharedHash<'a> {
    /// Work for `data` in chunks of [`DEFAULT_CHUNK_LEN`] bytes.
    pub fn new(data: &'a [u8], options: Options) -> SharedHash<'a> {
        SharedHash::with_chunk_len(data, options, DEFAULT_CHUNK_LEN)
    }

    /// Work for `data` in chunks of `chunk_len` bytes (at least 1). Smaller chunks balance better
    /// and cost one lock per chunk.
    pub fn with_chunk_len(data: &'a [u8], options: Options, chunk_len: usize) -> SharedHash<'a> {
        SharedHash::with_tuning(data, options, chunk_len, CHAIN_SPEEDUP)
    }

    /// Work for `data` in chunks of `chunk_len` bytes, with the owner of the chain taking chunks
    /// as if the chain alone were `chain_speedup` times faster than the fused loop
    /// ([`CHAIN_SPEEDUP`]). For measuring the split: `0` leaves all counting to the helpers once one
    /// is at work (the chain as a separate pass); `usize::MAX` has the owner take chunks for as long
    /// as any is left (then run the chain over the helpers' chunks). The digest is the same.
    pub fn with_tuning(
        data: &'a [u8],
        options: Options,
        chunk_len: usize,
        chain_speedup: usize,
    ) -> SharedHash<'a> {
        let hashed = data.get(..hashed_len(data.len())).unwrap_or(data);
        let mut s = SharedHash::with_cap(hashed, data.len() as u64, options, chunk_len);
        s.chain_speedup = chain_speedup;
        s
    }

    /// `hashed` is the prefix that contributes (at most [`MAX_HASHED_LEN`] bytes); `len` the
    /// whole input's length.
    fn with_cap(hashed: &'a [u8], len: u64, options: Options, chunk_len: usize) -> SharedHash<'a> {
        let chunk_len = chunk_len.max(1);
        let chunks = hashed.len().saturating_sub(WARMUP).div_ceil(chunk_len);
        SharedHash {
            data: hashed,
            len,
            options,
            chunk_len,
            chain_speedup: CHAIN_SPEEDUP,
            chunks,
            state: Mutex::new(State {
                front: 0,
                back: chunks,
                helpers: 0,
                counts: [0; 256],
                chain_started: false,
                checksum: None,
            }),
        }
    }

    /// The input's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty input.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; recover the data anyway if something did.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// First position of chunk `i` (positions `WARMUP..` are counted).
    fn chunk_start(&self, i: usize) -> usize {
        i.saturating_mul(self.chunk_len)
            .saturating_add(WARMUP)
            .min(self.data.len())
    }

    /// The four bytes before chunk `i` and its bytes.
    fn chunk(&self, i: usize) -> ([u8; 4], &'a [u8]) {
        let start = self.chunk_start(i);
        let end = self.chunk_start(i.saturating_add(1));
        let window = match self.data.get(start.saturating_sub(WARMUP)..start) {
            Some(&[a, b, c, d]) => [a, b, c, d],
            _ => [0; 4],
        };
        (window, self.data.get(start..end).unwrap_or(&[]))
    }

    /// Runs the checksum chain over the whole input, counting buckets on the chunks it takes from
    /// the front while that keeps the work balanced, then helps with what is left. Call it once,
    /// from one worker; further calls only [`help`](SharedHash::help).
    pub fn run_checksum(&self) {
        {
            let mut st = self.lock();
            if st.chain_started {
                drop(st);
                self.help();
                return;
            }
            st.chain_started = true;
        }
        let mut buckets = [0u32; 256];
        let mut checksum = 0u8;
        let mut next = 0;
        loop {
            let taken = {
                let mut st = self.lock();
                if st.front < st.back && owner_takes(&st, self.chunks, self.chain_speedup) {
                    st.front += 1;
                    Some(st.front - 1)
                } else {
                    None
                }
            };
            // Only the owner takes from the front, so `i == next`.
            let Some(i) = taken else { break };
            let (window, part) = self.chunk(i);
            checksum = count_and_checksum(&mut buckets, window, checksum, part);
            next = i + 1;
        }
        // The chain over the chunks the helpers count (or will).
        let start = self.chunk_start(next);
        if let (Some(&prev), Some(rest)) =
            (self.data.get(start.wrapping_sub(1)), self.data.get(start..))
        {
            checksum = checksum_only(checksum, prev, rest);
        }
        {
            let mut st = self.lock();
            add(&mut st.counts, &buckets);
            st.checksum = Some(checksum);
        }
        self.help();
    }

    /// Counts chunks taken from the back until none is left. Any number of calls, from any
    /// threads, at any time (also after everything is done: it then returns at once).
    pub fn help(&self) {
        {
            let mut st = self.lock();
            if st.front >= st.back {
                return;
            }
            st.helpers += 1;
        }
        let mut buckets = [0u32; 256];
        loop {
            let taken = {
                let mut st = self.lock();
                if st.front < st.back {
                    st.back -= 1;
                    Some(st.back)
                } else {
                    add(&mut st.counts, &buckets);
                    st.helpers -= 1;
                    None
                }
            };
            let Some(i) = taken else { return };
            let (window, part) = self.chunk(i);
            count_only(&mut buckets, window, part);
        }
    }

    /// The digest, equal to [`hash_with_options`] of the input. Does any work that no worker did
    /// (all of it when none ran).
    pub fn finish(self) -> Result<Digest, NoDigest> {
        self.run_checksum();
        let data = self.data;
        let st = self
            .state
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let checksum = st.checksum.unwrap_or_else(|| {
            // Only if a worker died inside the chain (it cannot panic): redo it.
            match (data.get(WARMUP - 1), data.get(WARMUP..)) {
                (Some(&prev), Some(rest)) => checksum_only(0, prev, rest),
                _ => 0,
            }
        });
        let window = next_window([0; 4], data);
        Hasher::from_parts(st.counts, window, checksum, self.len, self.options).finish()
    }
}

/// Whether the chain's owner takes the next chunk from the front: always when no helper is at
/// work; otherwise while the helpers, at one chunk each per chunk-time, would need longer for the
/// untaken chunks than the chain alone for everything from the front on.
fn owner_takes(st: &State, chunks: usize, chain_speedup: usize) -> bool {
    if st.helpers == 0 {
        return true;
    }
    let untaken = st.back.saturating_sub(st.front);
    let chain_rest = chunks.saturating_sub(st.front);
    untaken.saturating_mul(chain_speedup) > chain_rest.saturating_mul(st.helpers)
}

fn add(into: &mut [u32; 256], from: &[u32; 256]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a = a.wrapping_add(*b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash;

    fn pseudo_random(len: usize, mut s: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }

    /// What a stream longer than the cap hashes: the first `cap` bytes with the whole length
    /// counted (the rule `Hasher::update` applies at `MAX_HASHED_LEN`; tested there with the
    /// length preset near the cap, as `bytes_past_the_cap_are_counted_not_hashed` does).
    fn capped_stream(data: &[u8], cap: usize, len: u64) -> Result<Digest, NoDigest> {
        let mut h = Hasher::new();
        h.update(&data[..cap]);
        h.with_len(len).finish()
    }

    #[test]
    fn hashed_len_caps_at_max_hashed_len() {
        assert_eq!(hashed_len(0), 0);
        assert_eq!(hashed_len(5), 5);
        #[cfg(target_pointer_width = "64")]
        {
            let max = MAX_HASHED_LEN as usize;
            assert_eq!(hashed_len(max - 1), max - 1);
            assert_eq!(hashed_len(max), max);
            assert_eq!(hashed_len(max + 1), max);
            assert_eq!(hashed_len(5 << 30), max);
            assert_eq!(hashed_len(usize::MAX), max);
        }
    }

    #[test]
    fn the_cap_hashes_a_prefix_and_counts_the_whole_length() {
        // The same split with a small cap: the digest of the prefix with the whole length.
        let data = pseudo_random(40_000, 3);
        for cap in [0, 3, 4, 5, 49, 50, 1000, 4097, 39_999] {
            for len in [cap as u64, 40_000, MAX_HASHED_LEN + 1, u64::MAX] {
                let want = capped_stream(&data, cap, len);
                for chunk in [1, 7, 4096] {
                    let shared = SharedHash::with_cap(&data[..cap], len, Options::default(), chunk);
                    std::thread::scope(|s| {
                        s.spawn(|| shared.help());
                        shared.run_checksum();
                    });
                    assert_eq!(shared.finish(), want, "cap {cap} len {len} chunk {chunk}");
                }
            }
        }
        // With the real cap the result for a long length is the saturated L-value.
        let d = capped_stream(&data, 40_000, MAX_HASHED_LEN + 1).unwrap();
        assert_eq!(d.lvalue(), 170);
        // And `Hasher::update` past the cap behaves like `capped_stream` (see hasher.rs tests).
        let mut h = Hasher::new();
        h.update(&data);
        assert_eq!(
            h.finish(),
            capped_stream(&data, data.len(), data.len() as u64)
        );
    }

    #[test]
    fn owner_alone_takes_everything() {
        let data = pseudo_random(100_000, 9);
        let shared = SharedHash::with_chunk_len(&data, Options::default(), 1000);
        shared.run_checksum();
        {
            let st = shared.lock();
            assert_eq!((st.front, st.back), (shared.chunks, shared.chunks));
        }
        assert_eq!(shared.finish(), hash(&data));
    }

    #[test]
    fn helpers_alone_and_no_worker_at_all() {
        let data = pseudo_random(70_000, 5);
        let shared = SharedHash::with_chunk_len(&data, Options::default(), 333);
        shared.help();
        shared.help();
        assert_eq!(shared.finish(), hash(&data));
        let shared = SharedHash::with_chunk_len(&data, Options::default(), 333);
        assert_eq!(shared.finish(), hash(&data));
    }

    #[test]
    fn owner_stops_taking_when_helpers_would_be_slower() {
        // 100 chunks, one helper: the owner takes while 3 * untaken > chunks - front.
        let st = |front, back, helpers| State {
            front,
            back,
            helpers,
            counts: [0; 256],
            chain_started: true,
            checksum: None,
        };
        assert!(owner_takes(&st(0, 100, 0), 100, CHAIN_SPEEDUP));
        assert!(owner_takes(&st(50, 51, 0), 100, CHAIN_SPEEDUP));
        assert!(owner_takes(&st(0, 100, 1), 100, CHAIN_SPEEDUP));
        assert!(!owner_takes(&st(40, 60, 1), 100, CHAIN_SPEEDUP)); // 3 * 20 = 60, not > 60
        assert!(owner_takes(&st(39, 61, 1), 100, CHAIN_SPEEDUP)); // 66 > 61
        assert!(!owner_takes(&st(10, 40, 3), 100, CHAIN_SPEEDUP)); // 90 > 270? no
    }
}
