//! Bounds-checked little-endian reads over untrusted bytes.
//!
//! Every accessor returns `None` instead of panicking when the read would leave the slice, so the
//! parsers above can use `?` and never index directly.

/// Reads a `u8` at `off`.
pub(crate) fn u8_at(d: &[u8], off: usize) -> Option<u8> {
    d.get(off).copied()
}

/// Reads a little-endian `u16` at `off`.
pub(crate) fn u16_at(d: &[u8], off: usize) -> Option<u16> {
    let b = d.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([*b.first()?, *b.get(1)?]))
}

/// Reads a little-endian `u32` at `off`.
pub(crate) fn u32_at(d: &[u8], off: usize) -> Option<u32> {
    let b: [u8; 4] = d.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

/// Reads a little-endian `u64` at `off`.
pub(crate) fn u64_at(d: &[u8], off: usize) -> Option<u64> {
    let b: [u8; 8] = d.get(off..off.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// `d[off..off + len]`, or `None` when out of bounds.
pub(crate) fn slice(d: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    d.get(off..off.checked_add(len)?)
}

/// Converts a declared 64-bit offset or size to `usize`, or `None` if it cannot index memory.
pub(crate) fn to_usize(v: u64) -> Option<usize> {
    usize::try_from(v).ok()
}

/// Lower-case hex of `b`.
pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len().saturating_mul(2));
    for &x in b {
        s.push(hex_digit(x >> 4));
        s.push(hex_digit(x & 0x0f));
    }
    s
}

/// The lower-case hex digit for the low nibble of `n`.
pub(crate) fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n & 0x0f), 16).unwrap_or('0')
}

/// A cursor for length-prefixed little-endian structures (APK Signing Block).
#[derive(Clone, Copy)]
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        let v = u32_at(self.data, self.pos)?;
        self.pos += 4;
        Some(v)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        let v = u64_at(self.data, self.pos)?;
        self.pos += 8;
        Some(v)
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let v = slice(self.data, self.pos, n)?;
        self.pos += n;
        Some(v)
    }

    /// A `u32`-length-prefixed block.
    pub(crate) fn prefixed(&mut self) -> Option<&'a [u8]> {
        let n = to_usize(u64::from(self.u32()?))?;
        self.take(n)
    }
}
