//! Backups without the writer lock (`apksift backup` while another process,
//! e.g. `apksift serve`, is the writer), and the check of a finished copy.
//!
//! [`copy_store`] reads like a replica: it never locks or modifies the
//! source. It copies the manifest's segment and delete files and the WAL
//! records after the manifest's checkpoint (only complete, verifying records:
//! the writer may be appending), then writes the manifest last. Every source
//! file is opened (segments mapped) before anything is written, so a file the
//! writer deletes after that stays readable on a local filesystem. The writer
//! may remove files before they are opened (a merge's sources after their
//! grace period, WAL files at a checkpoint); a missing file or a log that no
//! longer reaches back to the checkpoint restarts the copy from a fresh
//! manifest, at most [`MAX_ATTEMPTS`] times. The copy is a consistent committed state: the
//! manifest's files plus a prefix of the log, exactly what a replica would
//! load (it may include records that the writer had written but not yet
//! acknowledged, as a replica may; see `docs/FORMAT.md` §7).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use apksift_storage::wal::{self, Lsn};
use apksift_storage::{Directory, Error as SErr};
use serde::Serialize;

use crate::engine::{Database, Options};
use crate::manifest::{MANIFEST, ManifestData};
use crate::{Error, Result};

/// Copies attempted before [`copy_store`] gives up.
pub const MAX_ATTEMPTS: u32 = 20;

/// What [`copy_store`] copied.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    /// Files written (segments, delete files, WAL files, the manifest).
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
    /// Generation of the copied manifest.
    pub generation: u64,
    /// Its WAL checkpoint.
    pub checkpoint_lsn: Lsn,
    /// Last WAL record in the copy (the checkpoint when none follows it).
    pub last_lsn: Lsn,
    /// Attempts it took (1 unless the writer removed a file mid-copy).
    pub attempts: u32,
}

enum Attempt {
    /// The writer changed the store under the copy: start again.
    Retry(String),
    Fail(Error),
}

fn from_source(e: SErr) -> Attempt {
    if e.is_not_found() {
        Attempt::Retry(e.to_string())
    } else {
        Attempt::Fail(e.into())
    }
}

/// Copies the store in `src` into the empty directory `dest` without the
/// writer lock. See the module documentation.
pub fn copy_store(src: &dyn Directory, dest: &dyn Directory) -> Result<CopyReport> {
    let mut last = String::new();
    for attempt in 1..=MAX_ATTEMPTS {
        let mut written = Vec::new();
        let r = copy_once(src, dest, &mut written);
        match r {
            Ok(mut rep) => {
                rep.attempts = attempt;
                return Ok(rep);
            }
            Err(a) => {
                for f in written.iter().rev() {
                    let _ = dest.delete(f);
                }
                match a {
                    Attempt::Fail(e) => return Err(e),
                    Attempt::Retry(why) => {
                        tracing::info!(attempt, reason = %why, "backup restarts from a fresh manifest");
                        last = why;
                        std::thread::sleep(Duration::from_millis(10 * u64::from(attempt)));
                    }
                }
            }
        }
    }
    Err(Error::Storage(SErr::io(
        src.describe(),
        std::io::Error::other(format!(
            "backup gave up after {MAX_ATTEMPTS} attempts: the writer kept removing files \
             while they were copied (last: {last})"
        )),
    )))
}

fn write_file(
    dest: &dyn Directory,
    name: &str,
    data: &[u8],
    written: &mut Vec<String>,
) -> std::result::Result<(), Attempt> {
    written.push(name.to_string());
    let mut w = dest.create(name).map_err(|e| Attempt::Fail(e.into()))?;
    w.write_all(data).map_err(|e| Attempt::Fail(e.into()))?;
    w.sync().map_err(|e| Attempt::Fail(e.into()))
}

fn copy_once(
    src: &dyn Directory,
    dest: &dyn Directory,
    written: &mut Vec<String>,
) -> std::result::Result<CopyReport, Attempt> {
    let mbytes = match src.open_read(MANIFEST) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => {
            return Err(Attempt::Fail(Error::not_found(format!(
                "no apksift store (MANIFEST) at {}",
                src.describe()
            ))));
        }
        Err(e) => return Err(Attempt::Fail(e.into())),
    };
    let m = ManifestData::decode(&mbytes).map_err(Attempt::Fail)?;
    // Open every file first (segments are memory-mapped: once open, a local
    // file stays readable even if the writer deletes it), so the window in
    // which the writer can remove one is the few milliseconds between reading
    // the manifest and opening its files, not the whole copy.
    let mut named = Vec::new();
    for c in &m.collections {
        for s in &c.segments {
            for f in std::iter::once(&s.file).chain(s.del_file.as_ref()) {
                named.push((f.clone(), src.open_read(f).map_err(from_source)?));
            }
        }
    }
    // The log: from the file holding the first record after the checkpoint.
    let after = m.checkpoint_lsn;
    let (wfiles, _torn_last) = wal::list_files(src).map_err(from_source)?;
    if let Some(first) = wfiles.first()
        && first.header.first_lsn > after + 1
    {
        return Err(Attempt::Retry(format!(
            "WAL gap: the log starts at LSN {} but the manifest's checkpoint is {after}",
            first.header.first_lsn
        )));
    }
    let start = wfiles
        .iter()
        .rposition(|f| f.header.first_lsn <= after + 1)
        .unwrap_or(0);
    let mut last_lsn = after;
    let mut logs = Vec::new();
    let tail = wfiles.get(start..).unwrap_or(&[]);
    for (i, f) in tail.iter().enumerate() {
        let read = || -> std::result::Result<(Vec<u8>, wal::ValidPrefix), Attempt> {
            let data = src.read_at(&f.name, 0, usize::MAX).map_err(from_source)?;
            let p = wal::valid_prefix(&f.name, &data).map_err(|e| Attempt::Fail(e.into()))?;
            Ok((data, p))
        };
        let (mut data, mut p) = read()?;
        if let Some(next) = tail.get(i + 1) {
            // Read before the writer finished it? It has rotated since, so a
            // second read sees the whole file.
            if p.next_lsn != next.header.first_lsn {
                (data, p) = read()?;
            }
            if p.next_lsn != next.header.first_lsn {
                return Err(Attempt::Retry(format!(
                    "{} ends before LSN {} but {} starts at LSN {}",
                    f.name, p.next_lsn, next.name, next.header.first_lsn
                )));
            }
        }
        data.truncate(p.len);
        last_lsn = last_lsn.max(p.next_lsn.saturating_sub(1));
        logs.push((f.name.clone(), data));
    }
    let mut bytes = 0u64;
    let mut files = 0usize;
    for (f, data) in &named {
        write_file(dest, f, data, written)?;
        bytes += data.len() as u64;
        files += 1;
    }
    for (f, data) in &logs {
        write_file(dest, f, data, written)?;
        bytes += data.len() as u64;
        files += 1;
    }
    dest.sync_dir().map_err(|e| Attempt::Fail(e.into()))?;
    written.push(MANIFEST.to_string());
    dest.atomic_write(MANIFEST, &mbytes)
        .map_err(|e| Attempt::Fail(e.into()))?;
    Ok(CopyReport {
        files: files + 1,
        bytes: bytes + mbytes.len() as u64,
        generation: m.generation,
        checkpoint_lsn: m.checkpoint_lsn,
        last_lsn,
        attempts: 0,
    })
}

/// What [`check_copy`] found in a finished backup.
#[derive(Debug, Clone, Serialize)]
pub struct CopyCheck {
    /// Segments whose every checksum and key verified.
    pub segments_checked: usize,
    /// WAL records read.
    pub wal_records: u64,
    /// Live rows per collection when the copy is opened.
    pub rows: BTreeMap<String, u64>,
    /// Last LSN the opened copy includes.
    pub last_lsn: Lsn,
}

/// Checks a backup: every checksum and structure (as `apksift verify` does,
/// where any error or warning is a failure), then opens it read-only and
/// counts the rows of every collection.
pub fn check_copy(dest: Arc<dyn Directory>) -> Result<CopyCheck> {
    let r = crate::verify::verify_dir(&*dest)?;
    if !r.errors.is_empty() || !r.warnings.is_empty() {
        let mut all = r.errors.clone();
        all.extend(r.warnings.iter().cloned());
        return Err(Error::Storage(SErr::corrupt(
            dest.describe(),
            0,
            format!("the backup does not verify: {}", all.join("; ")),
        )));
    }
    let db = Database::open_dir_read_only(
        dest,
        Options {
            replica_poll: Duration::from_secs(3600),
            ..Options::default()
        },
    )?;
    let snap = db.snapshot();
    let rows = snap
        .collections
        .iter()
        .map(|(n, c)| (n.clone(), c.count()))
        .collect();
    let segment_rows_ok = r.segments_checked;
    Ok(CopyCheck {
        segments_checked: segment_rows_ok,
        wal_records: r.wal_records,
        rows,
        last_lsn: snap.lsn,
    })
}
