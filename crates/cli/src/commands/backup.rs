//! `apksift backup DEST`.
//!
//! Without a running writer, the store is opened as the writer and copied by
//! `Database::backup`. When another process holds the writer lock (e.g.
//! `apksift serve`), the copy is taken without the lock, as a replica reads
//! (`apksift_index::backup::copy_store`): the manifest's files and the WAL
//! records after its checkpoint, restarted from a fresh manifest when the
//! writer removes a file mid-copy. Either way the copy is then verified (every
//! checksum, as `apksift verify`, and opened to count rows).

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use apksift_storage::{Directory, FsDirectory};
use serde::Serialize;

use super::Status;
use crate::cli::BackupArgs;
use crate::output;
use crate::util::{self, StoreLoc};

#[derive(Serialize)]
struct Report {
    /// `writer` (this process held the writer lock) or `read-only` (another
    /// process is the writer).
    mode: &'static str,
    files: usize,
    bytes: u64,
    /// Copies started (more than 1 when the writer removed a file mid-copy).
    attempts: u32,
    /// What the check of the copy found.
    verified: apksift_index::backup::CopyCheck,
}

fn locked(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| c.to_string().contains("locked by another writer"))
}

pub fn run(loc: &StoreLoc, a: BackupArgs) -> Result<Status> {
    let p = util::existing_db(loc, "backup")?;
    if a.dest.exists() {
        if !a.dest.is_dir() {
            bail!("{}: exists and is not a directory", a.dest.display());
        }
        if std::fs::read_dir(&a.dest)?.next().is_some() {
            bail!("{}: directory is not empty", a.dest.display());
        }
    }
    let src = FsDirectory::open_existing(&p).with_context(|| p.display().to_string())?;
    let writer_running = match src.try_lock(apksift_index::engine::LOCK_FILE) {
        Ok(lock) => {
            drop(lock);
            false
        }
        Err(apksift_storage::Error::Locked(_)) => true,
        Err(e) => return Err(e).with_context(|| format!("opening the store {}", p.display())),
    };
    let dest =
        FsDirectory::create_dir_all(&a.dest).with_context(|| a.dest.display().to_string())?;
    let from_writer = if writer_running {
        None
    } else {
        // No background flushes or merges while copying.
        let opts = apksift_core::StoreOptions {
            engine: apksift_index::Options {
                background: false,
                ..apksift_index::Options::default()
            },
        };
        match util::open_writer_with(loc, opts) {
            Ok(store) => {
                let r = store
                    .database()
                    .backup(&dest)
                    .with_context(|| format!("backing up to {}", a.dest.display()))?;
                store.close()?;
                Some((r.files, r.bytes))
            }
            // A writer started after the probe: copy without the lock.
            Err(e) if locked(&e) => None,
            Err(e) => return Err(e),
        }
    };
    let (mode, files, bytes, attempts) = match from_writer {
        Some((files, bytes)) => ("writer", files, bytes, 1),
        None => {
            let r = apksift_index::backup::copy_store(&src, &dest).with_context(|| {
                format!(
                    "backing up {} (another process is the writer) to {}",
                    p.display(),
                    a.dest.display()
                )
            })?;
            ("read-only", r.files, r.bytes, r.attempts)
        }
    };
    let check_dir: Arc<dyn Directory> = Arc::new(dest);
    let verified = apksift_index::backup::check_copy(check_dir)
        .with_context(|| format!("the backup in {} does not check out", a.dest.display()))?;
    let r = Report {
        mode,
        files,
        bytes,
        attempts,
        verified,
    };
    if a.json {
        output::json_pretty(&r)?;
    } else {
        let rows: Vec<String> = r
            .verified
            .rows
            .iter()
            .map(|(c, n)| format!("{c} {n} rows"))
            .collect();
        output::print(&format!(
            "backed up {} files ({} bytes) to {}{}; verified: {} segments, {} WAL records, {}\n",
            r.files,
            r.bytes,
            a.dest.display(),
            if mode == "read-only" {
                " without the writer lock (another process is the writer)"
            } else {
                ""
            },
            r.verified.segments_checked,
            r.verified.wal_records,
            rows.join(", ")
        ))?;
    }
    Ok(Status::Clean)
}
