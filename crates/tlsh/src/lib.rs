/*!
TLSH digests for apksift: hashing bit-exact with the reference (TLSH 4.12.1 as shipped in
py-tlsh 5.0.0; 128 buckets, 1-byte checksum, `T1` digests), parsing, printing and the exact
reference distance.

```
use apksift_tlsh::{hash, Digest, Hasher, NoDigest};

let text = b"The quick brown fox jumps over the lazy dog. \
             Pack my box with five dozen liquor jugs! 0123456789";
let one_shot = hash(text)?;

// Streaming gives the same digest for any chunking.
let mut h = Hasher::new();
for chunk in text.chunks(7) {
    h.update(chunk);
}
assert_eq!(h.finish()?, one_shot);

// Canonical text form and back.
let s = one_shot.to_string();
assert!(s.starts_with("T1") && s.len() == 72);
assert_eq!(Digest::parse(&s)?, one_shot);
assert_eq!(one_shot.distance(&one_shot, true), 0);

// No digest, with a reason.
assert_eq!(hash(&[b'A'; 5000]).unwrap_err().reason(), "too little variety");
assert!(matches!(hash(b"short"), Err(NoDigest::TooShort { len: 5, min: 50 })));
# Ok::<(), Box<dyn std::error::Error>>(())
```

# Record layout

A [`Digest`] is the hex-decoded `T1` string without its prefix: 35 bytes.

| byte | meaning |
|---|---|
| 0 | checksum, nibbles swapped (only equality matters) |
| 1 | L-value, nibbles swapped |
| 2 | `q1 << 4 \| q2` (the reference stores `swap(q2 << 4 \| q1)`) |
| 3..35 | body: [`Digest::bucket`]`(4*j + k)` is `(rec[3 + j] >> (6 - 2k)) & 3` |

Bucket numbering follows the reference's `BucketValue(i)` (`tlsh_parts`), which reads the body
left to right, most significant bits first. That is the *reverse* of the Pearson bucket index
used while hashing: `bucket(i)` is the quartile code of Pearson bucket `127 - i`, and
`tlsh_parts`'s `HistogramCount(i)` is [`Hasher::bucket_counts`]`()[127 - i]`. Checked against
`exp/out.parts.*.EXP` in `tests/golden.rs`.

# Distance

[`Digest::distance`] is `tlsh.diff` (`len = true`) and `tlsh.diffxlen` (`len = false`):
L-value ([`l_cost`]) + Q ratios ([`q_cost`]) + 1 if the checksums differ + the body cost
(0, 1, 2 or 6 per bucket for |Δ| = 0..3). It is symmetric and `d(x, x) = 0`, but not a metric
(the triangle inequality fails by up to 430).

# Inputs over 4 GiB

Upstream defines the TLSH of a longer stream as the TLSH of its first 4 GiB (trendmicro/tlsh#84,
#88). [`Hasher`] counts every byte in a `u64` ([`Hasher::len`]), hashes the first
[`MAX_HASHED_LEN`] (`2^32 - 1`, the longest length the reference can represent) and saturates the
L-value at 170 ([`l_value`]). py-tlsh itself truncates lengths to 32 bits there, so no reference
digest exists to compare with.

# Features

* `serde`: `Serialize`/`Deserialize` for [`Digest`] as the canonical string (deserialising with
  [`Digest::parse_lenient`]).
*/
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::indexing_slicing))]

mod digest;
mod hasher;
mod parallel;
mod parse;

pub use digest::{
    BODY_LEN, DIGEST_LEN, Digest, NUM_BUCKETS, body_byte_cost, l_cost, mod_diff, q_cost,
};
pub use hasher::{
    Hasher, MAX_HASHED_LEN, MIN_CONSERVATIVE_LEN, MIN_LEN, NoDigest, Options, hash,
    hash_with_options, l_value,
};
pub use parallel::{CHAIN_SPEEDUP, DEFAULT_CHUNK_LEN, PARALLEL_MIN_LEN, SharedHash, hash_parallel};
pub use parse::{HEX_LEN, ParseError};
