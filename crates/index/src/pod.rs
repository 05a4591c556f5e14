//! Typed views of little-endian arrays inside mapped sections.

use apksift_storage::OwnedBytes;
use bytemuck::Pod;

/// A `[T]` stored in a section: borrowed from the mapping when aligned,
/// copied otherwise.
#[derive(Clone)]
pub struct PodArray<T: Pod> {
    bytes: OwnedBytes,
    owned: Option<Vec<T>>,
}

impl<T: Pod> std::fmt::Debug for PodArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PodArray({} items)", self.as_slice().len())
    }
}

impl<T: Pod> PodArray<T> {
    /// Views `bytes` as `[T]`; `None` when the length is not a multiple of `size_of::<T>()`.
    pub fn new(bytes: OwnedBytes) -> Option<PodArray<T>> {
        let sz = std::mem::size_of::<T>();
        if sz == 0 || !bytes.len().is_multiple_of(sz) {
            return None;
        }
        if bytemuck::try_cast_slice::<u8, T>(&bytes).is_ok() {
            Some(PodArray { bytes, owned: None })
        } else {
            let v = bytes
                .chunks_exact(sz)
                .map(bytemuck::pod_read_unaligned::<T>)
                .collect();
            Some(PodArray {
                bytes: OwnedBytes::empty(),
                owned: Some(v),
            })
        }
    }

    /// An owned array.
    pub fn from_vec(v: Vec<T>) -> PodArray<T> {
        PodArray {
            bytes: OwnedBytes::empty(),
            owned: Some(v),
        }
    }

    /// The items.
    #[inline]
    pub fn as_slice(&self) -> &[T] {
        match &self.owned {
            Some(v) => v,
            None => bytemuck::try_cast_slice(&self.bytes).unwrap_or(&[]),
        }
    }
}
