//! The parallel one-shot hash equals the serial one for every input, thread count and chunking.
//! (The `MAX_HASHED_LEN` rule is tested without 4 GiB of input in `src/parallel.rs`.)

use apksift_tlsh::{
    DEFAULT_CHUNK_LEN, Options, PARALLEL_MIN_LEN, SharedHash, hash_parallel, hash_with_options,
};
use proptest::prelude::*;

/// `len` bytes of one of three kinds: varied, low-variety (4 symbols), or a long run with noise.
fn make(len: usize, seed: u64, kind: u8) -> Vec<u8> {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    (0..len)
        .map(|i| match kind % 3 {
            0 => (next() >> 24) as u8,
            1 => (next() >> 24) as u8 & 3,
            _ => {
                if i % 4096 < 7 {
                    (next() >> 24) as u8
                } else {
                    b'A'
                }
            }
        })
        .collect()
}

/// Sizes that matter: tiny (the 4-byte warm-up and the 50/256-byte minimums), around the
/// threshold and chunk boundaries, and anything up to 4 MiB.
fn size() -> impl Strategy<Value = usize> {
    let c = DEFAULT_CHUNK_LEN;
    prop_oneof![
        0usize..12,
        45usize..60,
        250usize..260,
        (PARALLEL_MIN_LEN - 3)..(PARALLEL_MIN_LEN + 8),
        (1usize..24, 0usize..9).prop_map(move |(k, d)| k * c + d),
        0usize..(4 << 20),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn hash_parallel_equals_hash(
        len in size(),
        seed in any::<u64>(),
        kind in 0u8..3,
        threads in 0usize..=8,
        conservative in any::<bool>(),
    ) {
        let data = make(len, seed, kind);
        let options = Options { conservative };
        prop_assert_eq!(
            hash_parallel(&data, options, threads),
            hash_with_options(&data, options)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Small inputs and chunks (every chunk boundary near the warm-up), with 0–3 helper threads,
    /// with or without the chain's owner (then `finish` does its part).
    #[test]
    fn shared_hash_any_chunking_and_workers(
        len in prop_oneof![0usize..16, 0usize..20_000],
        seed in any::<u64>(),
        kind in 0u8..3,
        chunk in prop_oneof![1usize..9, 1usize..5000],
        helpers in 0usize..4,
        owner in any::<bool>(),
        conservative in any::<bool>(),
    ) {
        let data = make(len, seed, kind);
        let options = Options { conservative };
        let shared = SharedHash::with_chunk_len(&data, options, chunk);
        prop_assert_eq!(shared.len(), len as u64);
        std::thread::scope(|s| {
            for _ in 0..helpers {
                s.spawn(|| shared.help());
            }
            if owner {
                shared.run_checksum();
            }
        });
        prop_assert_eq!(shared.finish(), hash_with_options(&data, options));
    }
}

#[test]
fn every_boundary_near_the_threshold_and_chunks() {
    let c = DEFAULT_CHUNK_LEN;
    let big = make(3 * c + 64, 42, 0);
    let mut lens: Vec<usize> = (0..12).collect();
    for base in [PARALLEL_MIN_LEN, c, 2 * c, 3 * c] {
        lens.extend(base.saturating_sub(6)..base + 7);
    }
    for len in lens {
        let data = &big[..len.min(big.len())];
        let want = hash_with_options(data, Options::default());
        for threads in 1..=8 {
            assert_eq!(
                hash_parallel(data, Options::default(), threads),
                want,
                "len {len} threads {threads}"
            );
        }
    }
}

#[test]
fn late_helpers_find_nothing_and_repeated_calls_are_harmless() {
    let data = make(1 << 20, 7, 0);
    let want = hash_with_options(&data, Options::default());
    let shared = SharedHash::new(&data, Options::default());
    shared.run_checksum();
    shared.run_checksum();
    shared.help();
    assert_eq!(shared.finish(), want);
}
