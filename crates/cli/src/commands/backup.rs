//! `apksift backup DEST`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use apksift_storage::FsDirectory;

use super::Status;
use crate::cli::BackupArgs;
use crate::output;
use crate::util;

pub fn run(db: Option<&Path>, a: BackupArgs) -> Result<Status> {
    util::existing_db(db)?;
    if a.dest.exists() {
        if !a.dest.is_dir() {
            bail!("{}: exists and is not a directory", a.dest.display());
        }
        if std::fs::read_dir(&a.dest)?.next().is_some() {
            bail!("{}: directory is not empty", a.dest.display());
        }
    }
    // No background flushes or merges while copying.
    let opts = apksift_core::StoreOptions {
        engine: apksift_index::Options {
            background: false,
            ..apksift_index::Options::default()
        },
    };
    // The engine's backup fails with "file not found" for a WAL file right after the writer
    // opened a store whose WAL was fully checkpointed (a WAL file removed on open is still
    // listed; reported to the engine owner). Reopening clears it: retry on an emptied
    // destination.
    let mut attempt = 0;
    let (store, r) = loop {
        attempt += 1;
        let store = util::open_writer_with(db, opts.clone())?;
        let dest =
            FsDirectory::create_dir_all(&a.dest).with_context(|| a.dest.display().to_string())?;
        match store.database().backup(&dest) {
            Ok(r) => break (store, r),
            Err(e) if attempt < 3 && e.to_string().contains("not found") => {
                drop(dest);
                store.close()?;
                for f in std::fs::read_dir(&a.dest)? {
                    std::fs::remove_file(f?.path())?;
                }
            }
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("backing up to {}", a.dest.display()))
                );
            }
        }
    };
    store.close()?;
    if a.json {
        output::json_pretty(&r)?;
    } else {
        output::print(&format!(
            "backed up {} files ({} bytes) to {}\n",
            r.files,
            r.bytes,
            a.dest.display()
        ))?;
    }
    Ok(Status::Clean)
}
