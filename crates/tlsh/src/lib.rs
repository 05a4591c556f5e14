/*!
TLSH digests: the 35-byte record, its header fields and body buckets, and the
exact reference distance.

The record layout is the hex-decoded `T1` string without its prefix (the same
layout as `../shared/bench/README.md` "TLSH records"):

| byte | meaning |
|---|---|
| 0 | checksum, nibbles swapped (only equality matters) |
| 1 | L-value, nibbles swapped |
| 2 | `q1 << 4 \| q2` |
| 3..35 | body: bucket `4*j + k` is `(rec[3 + j] >> (6 - 2k)) & 3` |
*/

mod digest;

pub use digest::{Digest, DIGEST_LEN, BODY_LEN, NUM_BUCKETS};
