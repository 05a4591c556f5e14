//! Delete files: the deleted rows of one segment as a bitmap, in a container
//! file (kind "DELS") with one section.

use apksift_storage::Directory;
use apksift_storage::container::{ContainerReader, ContainerWriter};

use crate::deletes::DeleteSet;
use crate::{Error, Result};

/// Container kind of delete files ("DELS").
pub const DEL_KIND: u32 = 0x534C_4544;
/// Current delete-file format version.
pub const DEL_VERSION: u32 = 1;
const S_HEADER: u32 = 1;
const S_BITS: u32 = 2;

/// File name of a delete file.
pub fn file_name(collection: u32, segment: u64, generation: u64) -> String {
    format!("del-{collection:08x}-{segment:016x}-{generation:016x}.del")
}

/// Parses a delete file name into (collection, segment id, generation).
pub fn parse_file_name(name: &str) -> Option<(u32, u64, u64)> {
    let rest = name.strip_prefix("del-")?.strip_suffix(".del")?;
    let mut parts = rest.split('-');
    let (c, s, g) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || c.len() != 8 || s.len() != 16 || g.len() != 16 {
        return None;
    }
    Some((
        u32::from_str_radix(c, 16).ok()?,
        u64::from_str_radix(s, 16).ok()?,
        u64::from_str_radix(g, 16).ok()?,
    ))
}

/// Writes and fsyncs a delete file.
pub fn write(
    dir: &dyn Directory,
    name: &str,
    segment: u64,
    rows: u32,
    dels: &DeleteSet,
) -> Result<()> {
    let words = dels.to_words(rows);
    let mut w = ContainerWriter::create(dir, name, DEL_KIND, DEL_VERSION)?;
    let mut h = Vec::with_capacity(20);
    h.extend_from_slice(&segment.to_le_bytes());
    h.extend_from_slice(&rows.to_le_bytes());
    h.extend_from_slice(&dels.count().to_le_bytes());
    w.section(S_HEADER, &h)?;
    w.section(S_BITS, bytemuck::cast_slice(&words))?;
    w.finish()?;
    Ok(())
}

/// Reads a delete file and checks it belongs to `segment` with `rows` rows.
pub fn read(dir: &dyn Directory, name: &str, segment: u64, rows: u32) -> Result<DeleteSet> {
    let c = ContainerReader::open(dir, name, DEL_KIND, DEL_VERSION, DEL_VERSION)?;
    let h = c.section_checked(S_HEADER)?;
    let bad = |why: &str| Error::Storage(apksift_storage::Error::corrupt(name, 0, why));
    if h.len() != 20 {
        return Err(bad("bad header size"));
    }
    let seg = u64::from_le_bytes(h[0..8].try_into().map_err(|_| bad("header"))?);
    let r = u32::from_le_bytes(h[8..12].try_into().map_err(|_| bad("header"))?);
    let count = u64::from_le_bytes(h[12..20].try_into().map_err(|_| bad("header"))?);
    if seg != segment || r != rows {
        return Err(bad("delete file belongs to another segment"));
    }
    let bits = c.section_checked(S_BITS)?;
    if bits.len() != (rows as usize).div_ceil(64) * 8 {
        return Err(bad("bitmap size"));
    }
    let words: Vec<u64> = bits
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    let d = DeleteSet::from_words(words);
    if d.count() != count {
        return Err(bad("deleted count differs from the bitmap"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_names_parse_back() {
        let n = super::file_name(3, 0x26, 0xc);
        assert_eq!(super::parse_file_name(&n), Some((3, 0x26, 0xc)));
        let s = crate::segment::file_name(7, 41);
        assert_eq!(crate::segment::parse_file_name(&s), Some((7, 41)));
        assert_eq!(super::parse_file_name("del-1-2-3.del"), None);
        assert_eq!(crate::segment::parse_file_name(&n), None);
        assert_eq!(super::parse_file_name(&s), None);
    }
}
