use std::fmt;
use std::ops::{Deref, Range};
use std::sync::Arc;

/// Immutable, cheaply cloneable bytes owned by a memory map or a vector.
#[derive(Clone)]
pub struct OwnedBytes {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    range: Range<usize>,
}

impl OwnedBytes {
    /// Wraps an owner of bytes.
    pub fn new(owner: Arc<dyn AsRef<[u8]> + Send + Sync>) -> OwnedBytes {
        let len = (*owner).as_ref().len();
        OwnedBytes {
            owner,
            range: 0..len,
        }
    }

    /// Bytes from a vector.
    pub fn from_vec(v: Vec<u8>) -> OwnedBytes {
        OwnedBytes::new(Arc::new(v))
    }

    /// Empty bytes.
    pub fn empty() -> OwnedBytes {
        OwnedBytes::from_vec(Vec::new())
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        let all = (*self.owner).as_ref();
        all.get(self.range.clone()).unwrap_or(&[])
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.range.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }

    /// A sub-range; `None` when out of bounds.
    pub fn slice(&self, r: Range<usize>) -> Option<OwnedBytes> {
        if r.start > r.end || r.end > self.len() {
            return None;
        }
        Some(OwnedBytes {
            owner: self.owner.clone(),
            range: self.range.start + r.start..self.range.start + r.end,
        })
    }
}

impl Deref for OwnedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for OwnedBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl fmt::Debug for OwnedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OwnedBytes({} bytes)", self.len())
    }
}
