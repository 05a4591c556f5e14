//! Split-block Bloom filter arithmetic shared by the segment key filter (on
//! disk) and the collection-wide key filter (in memory): blocks of 8 × u32,
//! one bit set per word.

const SALT: [u32; 8] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];

/// Block index and per-word masks of hash `h` in a filter of `blocks` blocks.
#[inline]
pub fn position(h: u64, blocks: usize) -> (usize, [u32; 8]) {
    let b = (((h >> 32) * blocks as u64) >> 32) as usize;
    let lo = h as u32;
    let mut mask = [0u32; 8];
    for (m, salt) in mask.iter_mut().zip(SALT) {
        *m = 1 << (lo.wrapping_mul(salt) >> 27);
    }
    (b, mask)
}

/// Sets the bits of `h`.
#[inline]
pub fn insert(words: &mut [u32], h: u64) {
    let (b, mask) = position(h, words.len() / 8);
    if let Some(block) = words.get_mut(b * 8..b * 8 + 8) {
        for (w, m) in block.iter_mut().zip(mask) {
            *w |= m;
        }
    }
}

/// False when `h` was certainly never inserted.
#[inline]
pub fn may_contain(words: &[u32], h: u64) -> bool {
    let (b, mask) = position(h, words.len() / 8);
    match words.get(b * 8..b * 8 + 8) {
        Some(block) => block.iter().zip(mask).all(|(w, m)| w & m != 0),
        None => true,
    }
}

/// Number of blocks for `keys` keys at `bits_per_key` bits each.
pub fn blocks_for(keys: usize, bits_per_key: usize) -> usize {
    (keys * bits_per_key).div_ceil(256).max(1)
}
