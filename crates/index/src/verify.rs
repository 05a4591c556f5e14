//! `apksift inspect` and `apksift verify`: read a store directory and report
//! on it without modifying anything.

use std::collections::BTreeMap;

use apksift_storage::Directory;
use apksift_storage::wal;
use serde::Serialize;

use crate::codec;
use crate::delfile;
use crate::manifest::ManifestData;
use crate::segment::Segment;
use crate::{Error, Result};

/// What `inspect` shows.
#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    /// Directory.
    pub location: String,
    /// Manifest generation.
    pub generation: u64,
    /// WAL checkpoint.
    pub checkpoint_lsn: u64,
    /// Collections.
    pub collections: Vec<InspectCollection>,
    /// WAL files: (name, first LSN, bytes).
    pub wal_files: Vec<(String, u64, u64)>,
    /// Files in the directory that the manifest does not name.
    pub unreferenced: Vec<String>,
}

/// One collection in an inspect report.
#[derive(Debug, Clone, Serialize)]
pub struct InspectCollection {
    /// Name.
    pub name: String,
    /// Id.
    pub id: u32,
    /// Segments: (file, rows, deleted, bytes, indexes).
    pub segments: Vec<InspectSegment>,
}

/// One segment in an inspect report.
#[derive(Debug, Clone, Serialize)]
pub struct InspectSegment {
    /// File name.
    pub file: String,
    /// Rows.
    pub rows: u32,
    /// Deleted rows.
    pub deleted: u64,
    /// File size.
    pub bytes: u64,
    /// Index per vector field.
    pub indexes: BTreeMap<String, String>,
}

/// Summarises a store.
pub fn inspect_dir(dir: &dyn Directory) -> Result<InspectReport> {
    let m = ManifestData::load(dir)?.ok_or_else(|| {
        Error::not_found(format!("no apksift store (MANIFEST) at {}", dir.describe()))
    })?;
    let mut named = std::collections::BTreeSet::new();
    named.insert(crate::manifest::MANIFEST.to_string());
    named.insert(crate::engine::LOCK_FILE.to_string());
    let mut collections = Vec::new();
    for c in &m.collections {
        let mut segs = Vec::new();
        for s in &c.segments {
            named.insert(s.file.clone());
            if let Some(d) = &s.del_file {
                named.insert(d.clone());
            }
            let seg = Segment::open(dir, &s.file, &c.schema)?;
            segs.push(InspectSegment {
                file: s.file.clone(),
                rows: s.rows,
                deleted: s.deleted,
                bytes: seg.file_len(),
                indexes: seg
                    .meta()
                    .fields
                    .iter()
                    .filter(|f| f.ty.is_vector())
                    .map(|f| (f.name.clone(), f.index.name().to_string()))
                    .collect(),
            });
        }
        collections.push(InspectCollection {
            name: c.name.clone(),
            id: c.id,
            segments: segs,
        });
    }
    let (files, _) = wal::list_files(dir)?;
    let mut wal_files = Vec::new();
    for f in files {
        named.insert(f.name.clone());
        wal_files.push((f.name.clone(), f.header.first_lsn, dir.file_len(&f.name)?));
    }
    let unreferenced = dir
        .list()?
        .into_iter()
        .filter(|f| !named.contains(f))
        .collect();
    Ok(InspectReport {
        location: dir.describe(),
        generation: m.generation,
        checkpoint_lsn: m.checkpoint_lsn,
        collections,
        wal_files,
        unreferenced,
    })
}

/// What `verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Segments whose every section checksum was verified.
    pub segments_checked: usize,
    /// Delete files checked.
    pub delete_files_checked: usize,
    /// Rows in segments.
    pub segment_rows: u64,
    /// WAL records read and decoded.
    pub wal_records: u64,
    /// Problems that mean damage.
    pub errors: Vec<String>,
    /// Notes that are not damage (e.g. a torn WAL tail the next writer cuts).
    pub warnings: Vec<String>,
}

/// Checks every checksum and structure of a store.
pub fn verify_dir(dir: &dyn Directory) -> Result<VerifyReport> {
    let mut r = VerifyReport::default();
    let m = match ManifestData::load(dir) {
        Ok(Some(m)) => m,
        Ok(None) => {
            return Err(Error::not_found(format!(
                "no apksift store (MANIFEST) at {}",
                dir.describe()
            )));
        }
        Err(e) => {
            r.errors.push(format!("manifest: {e}"));
            return Ok(r);
        }
    };
    let mut schemas = BTreeMap::new();
    for c in &m.collections {
        if let Err(e) = c.schema.validate() {
            r.errors.push(format!("collection {}: schema: {e}", c.name));
            continue;
        }
        schemas.insert(c.id, c.schema.clone());
        for s in &c.segments {
            match Segment::open(dir, &s.file, &c.schema).and_then(|seg| seg.verify().map(|_| seg)) {
                Ok(seg) => {
                    r.segments_checked += 1;
                    r.segment_rows += u64::from(seg.meta().rows);
                    if seg.meta().rows != s.rows {
                        r.errors.push(format!(
                            "{}: manifest says {} rows, file has {}",
                            s.file,
                            s.rows,
                            seg.meta().rows
                        ));
                    }
                    // Keys: every row's key is found through the key index.
                    use crate::rows::PartRead;
                    for row in 0..seg.num_rows() {
                        if seg.find(seg.key(row)) != Some(row) {
                            r.errors
                                .push(format!("{}: key index misses row {row}", s.file));
                            break;
                        }
                    }
                }
                Err(e) => r.errors.push(format!("{}: {e}", s.file)),
            }
            if let Some(d) = &s.del_file {
                match delfile::read(dir, d, s.id, s.rows) {
                    Ok(ds) => {
                        r.delete_files_checked += 1;
                        if ds.count() != s.deleted {
                            r.errors.push(format!(
                                "{d}: {} deleted rows, manifest says {}",
                                ds.count(),
                                s.deleted
                            ));
                        }
                    }
                    Err(e) => r.errors.push(format!("{d}: {e}")),
                }
            }
        }
    }
    let mut decode_errors = Vec::new();
    // From the checkpoint: records at or below it are still read and
    // checksummed, those after it are also decoded; a log that starts after
    // the checkpoint (records missing) is an error.
    match wal::recover(dir, m.checkpoint_lsn, false, |lsn, p| {
        if let Ok(cid) = codec::peek_collection(p)
            && let Some(s) = schemas.get(&cid)
            && let Err(e) = codec::decode(p, s)
        {
            decode_errors.push(format!("WAL record {lsn}: {e}"));
        }
        Ok(())
    }) {
        Ok(rep) => {
            r.wal_records = rep.records;
            if rep.truncated_bytes > 0 {
                r.warnings.push(format!(
                    "WAL has a torn tail of {} bytes (cut when the writer next opens)",
                    rep.truncated_bytes
                ));
            }
            if rep.last_lsn < m.checkpoint_lsn && rep.records > 0 {
                r.errors.push(format!(
                    "WAL ends at LSN {} before the checkpoint {}",
                    rep.last_lsn, m.checkpoint_lsn
                ));
            }
        }
        Err(e) => r.errors.push(format!("WAL: {e}")),
    }
    r.errors.extend(decode_errors);
    Ok(r)
}
