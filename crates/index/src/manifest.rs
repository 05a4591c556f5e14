//! The manifest: which collections exist, their schemas, segments and delete
//! files, and the WAL checkpoint. Replaced atomically (write temp, fsync,
//! rename, fsync directory) on every change.
//!
//! ```text
//! MANIFEST := magic "APKSMAN1" | version u32 LE | crc32c(json) u32 LE | len u64 LE | json[len]
//! ```

use apksift_storage::{Directory, Error as SErr};
use serde::{Deserialize, Serialize};

use crate::schema::Schema;
use crate::{Error, Result};

/// File name of the manifest.
pub const MANIFEST: &str = "MANIFEST";
const MAGIC: &[u8; 8] = b"APKSMAN1";
/// Current manifest format version.
pub const MANIFEST_VERSION: u32 = 1;

/// A segment as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// Segment id.
    pub id: u64,
    /// File name.
    pub file: String,
    /// Rows in the file.
    pub rows: u32,
    /// Current delete file, if any rows are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub del_file: Option<String>,
    /// Deleted rows recorded in `del_file`.
    #[serde(default)]
    pub deleted: u64,
}

/// A collection as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionEntry {
    /// Collection id (never reused).
    pub id: u32,
    /// Name.
    pub name: String,
    /// Schema.
    pub schema: Schema,
    /// Segments.
    pub segments: Vec<SegmentEntry>,
}

/// Manifest contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ManifestData {
    /// Incremented on every write.
    pub generation: u64,
    /// Every WAL record with LSN <= this is reflected in segments and delete files.
    pub checkpoint_lsn: u64,
    /// Next collection id.
    pub next_collection_id: u32,
    /// Next segment id.
    pub next_segment_id: u64,
    /// Collections.
    pub collections: Vec<CollectionEntry>,
}

impl ManifestData {
    /// Encodes with header and checksum.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::invalid(e.to_string()))?;
        let mut out = Vec::with_capacity(json.len() + 24);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&MANIFEST_VERSION.to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&json).to_le_bytes());
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        Ok(out)
    }

    /// Decodes and checks.
    pub fn decode(b: &[u8]) -> Result<ManifestData> {
        let bad = |off: u64, why: &str| Error::Storage(SErr::corrupt(MANIFEST, off, why));
        if b.len() < 24 || &b[..8] != MAGIC {
            return Err(bad(0, "bad manifest magic"));
        }
        let rd4 = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let version = rd4(8);
        if version != MANIFEST_VERSION {
            return Err(Error::Storage(SErr::UnsupportedVersion {
                file: MANIFEST.to_string(),
                found: version,
                oldest: MANIFEST_VERSION,
                newest: MANIFEST_VERSION,
            }));
        }
        let crc = rd4(12);
        let mut l = [0u8; 8];
        l.copy_from_slice(&b[16..24]);
        let len = u64::from_le_bytes(l) as usize;
        let json = b
            .get(24..24usize.saturating_add(len))
            .ok_or_else(|| bad(16, "manifest shorter than its length"))?;
        if b.len() != 24 + len {
            return Err(bad(16, "trailing bytes after the manifest"));
        }
        if crc32c::crc32c(json) != crc {
            return Err(bad(12, "manifest checksum mismatch"));
        }
        serde_json::from_slice(json).map_err(|e| bad(24, &format!("manifest JSON: {e}")))
    }

    /// Reads the manifest of a directory; `None` when there is none.
    pub fn load(dir: &dyn Directory) -> Result<Option<ManifestData>> {
        match dir.open_read(MANIFEST) {
            Ok(b) => Ok(Some(ManifestData::decode(&b)?)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the manifest atomically and durably.
    pub fn store(&self, dir: &dyn Directory) -> Result<()> {
        dir.atomic_write(MANIFEST, &self.encode()?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_roundtrip_and_damage() {
        let m = ManifestData {
            generation: 3,
            checkpoint_lsn: 9,
            next_collection_id: 2,
            next_segment_id: 5,
            collections: vec![],
        };
        let b = m.encode().unwrap();
        assert_eq!(ManifestData::decode(&b).unwrap(), m);
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert!(ManifestData::decode(&c).is_err(), "flip at {i} accepted");
        }
        assert!(ManifestData::decode(&b[..b.len() - 1]).is_err());
    }
}
