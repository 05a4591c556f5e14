//! Immutable files made of checksummed sections, closed by a footer.
//!
//! ```text
//! [section 0][pad to 64][section 1][pad] ... [section table][footer]
//! section table: n × { id u32 | flags u32 | offset u64 | len u64 | crc32c u32 | reserved u32 }  (32 bytes each)
//! footer (40 bytes): table_offset u64 | n_sections u32 | table_crc u32 |
//!                    kind u32 | format_version u32 | reserved u64 | magic "APKSFTR1"
//! ```
//! All integers are little-endian. Every section has its own CRC-32C, so a
//! reader can open a file after checking only the footer and the table, and
//! verify the big sections lazily (`apksift verify` checks all of them).

use std::collections::BTreeMap;

use crate::{Directory, Error, OwnedBytes, Result, WriteHandle};

const MAGIC: &[u8; 8] = b"APKSFTR1";
/// Footer size in bytes.
pub const FOOTER_LEN: usize = 40;
const ENTRY_LEN: usize = 32;
const ALIGN: u64 = 64;

/// Writes a container file section by section.
pub struct ContainerWriter {
    out: Box<dyn WriteHandle>,
    name: String,
    pos: u64,
    table: Vec<(u32, u64, u64, u32)>,
    kind: u32,
    version: u32,
}

impl ContainerWriter {
    /// Starts a new file `name` of the given kind and format version.
    pub fn create(
        dir: &dyn Directory,
        name: &str,
        kind: u32,
        version: u32,
    ) -> Result<ContainerWriter> {
        Ok(ContainerWriter {
            out: dir.create(name)?,
            name: name.to_string(),
            pos: 0,
            table: Vec::new(),
            kind,
            version,
        })
    }

    /// Appends a section.
    pub fn section(&mut self, id: u32, data: &[u8]) -> Result<()> {
        self.section_parts(id, &[data])
    }

    /// Appends a section given as several consecutive parts.
    pub fn section_parts(&mut self, id: u32, parts: &[&[u8]]) -> Result<()> {
        if self.table.iter().any(|t| t.0 == id) {
            return Err(Error::corrupt(
                &self.name,
                self.pos,
                format!("duplicate section id {id:#x}"),
            ));
        }
        let pad = (ALIGN - self.pos % ALIGN) % ALIGN;
        if pad > 0 {
            self.out.write_all(&[0u8; ALIGN as usize][..pad as usize])?;
            self.pos += pad;
        }
        let offset = self.pos;
        let mut crc = 0u32;
        let mut len = 0u64;
        for p in parts {
            crc = crc32c::crc32c_append(crc, p);
            self.out.write_all(p)?;
            len += p.len() as u64;
        }
        self.pos += len;
        self.table.push((id, offset, len, crc));
        Ok(())
    }

    /// Writes the table and footer, fsyncs, and returns the file size.
    /// The caller syncs the directory before publishing the name.
    pub fn finish(mut self) -> Result<u64> {
        let mut table = Vec::with_capacity(self.table.len() * ENTRY_LEN);
        for (id, off, len, crc) in &self.table {
            table.extend_from_slice(&id.to_le_bytes());
            table.extend_from_slice(&0u32.to_le_bytes());
            table.extend_from_slice(&off.to_le_bytes());
            table.extend_from_slice(&len.to_le_bytes());
            table.extend_from_slice(&crc.to_le_bytes());
            table.extend_from_slice(&0u32.to_le_bytes());
        }
        let table_offset = self.pos;
        self.out.write_all(&table)?;
        let mut footer = Vec::with_capacity(FOOTER_LEN);
        footer.extend_from_slice(&table_offset.to_le_bytes());
        footer.extend_from_slice(&(self.table.len() as u32).to_le_bytes());
        footer.extend_from_slice(&crc32c::crc32c(&table).to_le_bytes());
        footer.extend_from_slice(&self.kind.to_le_bytes());
        footer.extend_from_slice(&self.version.to_le_bytes());
        footer.extend_from_slice(&0u64.to_le_bytes());
        footer.extend_from_slice(MAGIC);
        self.out.write_all(&footer)?;
        self.out.sync()?;
        Ok(self.pos + table.len() as u64 + FOOTER_LEN as u64)
    }
}

/// A section's place in the file.
#[derive(Debug, Clone, Copy)]
pub struct SectionInfo {
    /// Offset in the file.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// CRC-32C of its bytes.
    pub crc: u32,
}

/// An opened container: footer and table checked, sections not yet.
#[derive(Debug, Clone)]
pub struct ContainerReader {
    name: String,
    data: OwnedBytes,
    sections: BTreeMap<u32, SectionInfo>,
    kind: u32,
    version: u32,
}

fn rd_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn rd_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

impl ContainerReader {
    /// Opens `name`, checking magic, kind, version range and the table checksum.
    pub fn open(
        dir: &dyn Directory,
        name: &str,
        kind: u32,
        oldest: u32,
        newest: u32,
    ) -> Result<ContainerReader> {
        let data = dir.open_read(name)?;
        Self::from_bytes(name, data, kind, oldest, newest)
    }

    /// Same as [`ContainerReader::open`] on bytes already in hand.
    pub fn from_bytes(
        name: &str,
        data: OwnedBytes,
        kind: u32,
        oldest: u32,
        newest: u32,
    ) -> Result<ContainerReader> {
        let b: &[u8] = &data;
        if b.len() < FOOTER_LEN {
            return Err(Error::corrupt(name, 0, "file shorter than its footer"));
        }
        let f = b.len() - FOOTER_LEN;
        if b.get(f + 32..f + 40) != Some(&MAGIC[..]) {
            return Err(Error::corrupt(
                name,
                (f + 32) as u64,
                "bad footer magic (not an apksift file, or truncated)",
            ));
        }
        let table_offset = rd_u64(b, f);
        let n = rd_u32(b, f + 8) as usize;
        let table_crc = rd_u32(b, f + 12);
        let found_kind = rd_u32(b, f + 16);
        let version = rd_u32(b, f + 20);
        if found_kind != kind {
            return Err(Error::corrupt(
                name,
                (f + 16) as u64,
                format!("file kind {found_kind:#x}, expected {kind:#x}"),
            ));
        }
        if version < oldest || version > newest {
            return Err(Error::UnsupportedVersion {
                file: name.to_string(),
                found: version,
                oldest,
                newest,
            });
        }
        let tlen = n
            .checked_mul(ENTRY_LEN)
            .ok_or_else(|| Error::corrupt(name, f as u64, "section count overflow"))?;
        let tstart = usize::try_from(table_offset)
            .map_err(|_| Error::corrupt(name, f as u64, "table offset overflow"))?;
        if tstart.checked_add(tlen) != Some(f) {
            return Err(Error::corrupt(
                name,
                f as u64,
                "section table does not end at the footer",
            ));
        }
        let table = b
            .get(tstart..f)
            .ok_or_else(|| Error::corrupt(name, table_offset, "table out of bounds"))?;
        if crc32c::crc32c(table) != table_crc {
            return Err(Error::corrupt(
                name,
                table_offset,
                "section table checksum mismatch",
            ));
        }
        let mut sections = BTreeMap::new();
        for i in 0..n {
            let e = i * ENTRY_LEN;
            let id = rd_u32(table, e);
            let info = SectionInfo {
                offset: rd_u64(table, e + 8),
                len: rd_u64(table, e + 16),
                crc: rd_u32(table, e + 24),
            };
            let end = info.offset.checked_add(info.len);
            if end.is_none_or(|end| end > table_offset) {
                return Err(Error::corrupt(
                    name,
                    table_offset + e as u64,
                    format!("section {id:#x} out of bounds"),
                ));
            }
            if sections.insert(id, info).is_some() {
                return Err(Error::corrupt(
                    name,
                    table_offset + e as u64,
                    format!("duplicate section {id:#x}"),
                ));
            }
        }
        Ok(ContainerReader {
            name: name.to_string(),
            data,
            sections,
            kind,
            version,
        })
    }

    /// File name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Format version of the file.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// File kind.
    pub fn kind(&self) -> u32 {
        self.kind
    }

    /// Total size in bytes.
    pub fn file_len(&self) -> u64 {
        self.data.len() as u64
    }

    /// Section ids and places.
    pub fn sections(&self) -> &BTreeMap<u32, SectionInfo> {
        &self.sections
    }

    /// A section's bytes, without checking its checksum.
    pub fn section(&self, id: u32) -> Result<OwnedBytes> {
        let info = self
            .sections
            .get(&id)
            .ok_or_else(|| Error::corrupt(&self.name, 0, format!("missing section {id:#x}")))?;
        self.data
            .slice(info.offset as usize..(info.offset + info.len) as usize)
            .ok_or_else(|| {
                Error::corrupt(
                    &self.name,
                    info.offset,
                    format!("section {id:#x} out of bounds"),
                )
            })
    }

    /// A section's bytes after checking its checksum.
    pub fn section_checked(&self, id: u32) -> Result<OwnedBytes> {
        let s = self.section(id)?;
        let info = self
            .sections
            .get(&id)
            .copied()
            .ok_or_else(|| Error::corrupt(&self.name, 0, "missing section"))?;
        if crc32c::crc32c(&s) != info.crc {
            return Err(Error::corrupt(
                &self.name,
                info.offset,
                format!("section {id:#x} checksum mismatch"),
            ));
        }
        Ok(s)
    }

    /// True when the section exists.
    pub fn has_section(&self, id: u32) -> bool {
        self.sections.contains_key(&id)
    }

    /// Checks every section's checksum.
    pub fn verify_all(&self) -> Result<()> {
        for id in self.sections.keys() {
            self.section_checked(*id)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemDirectory;

    #[test]
    fn container_roundtrip_and_damage() {
        let dir = MemDirectory::new();
        let mut w = ContainerWriter::create(&dir, "a.seg", 7, 1).unwrap();
        w.section(1, b"hello").unwrap();
        w.section_parts(2, &[b"wor", b"ld"]).unwrap();
        assert!(w.section(1, b"again").is_err());
        w.finish().unwrap();
        let r = ContainerReader::open(&dir, "a.seg", 7, 1, 1).unwrap();
        assert_eq!(&*r.section_checked(1).unwrap(), b"hello");
        assert_eq!(&*r.section_checked(2).unwrap(), b"world");
        r.verify_all().unwrap();
        assert!(matches!(
            ContainerReader::open(&dir, "a.seg", 8, 1, 1),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            ContainerReader::open(&dir, "a.seg", 7, 2, 3),
            Err(Error::UnsupportedVersion { .. })
        ));

        // Flip one byte of section 2: the section check fails, the file still opens.
        let mut bytes = dir.snapshot().remove("a.seg").unwrap();
        bytes[64] ^= 1;
        let d2 = MemDirectory::from_files([("a.seg".to_string(), bytes.clone())].into());
        let r2 = ContainerReader::open(&d2, "a.seg", 7, 1, 1).unwrap();
        assert!(r2.section_checked(1).is_ok());
        assert!(matches!(r2.section_checked(2), Err(Error::Corrupt { .. })));
        assert!(r2.verify_all().is_err());

        // Truncation is detected by the footer.
        let d3 = MemDirectory::from_files(
            [("a.seg".to_string(), bytes[..bytes.len() - 3].to_vec())].into(),
        );
        assert!(ContainerReader::open(&d3, "a.seg", 7, 1, 1).is_err());
    }
}
