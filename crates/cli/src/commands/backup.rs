//! `apksift backup DEST`.

use anyhow::{Context, Result, bail};
use apksift_storage::FsDirectory;

use super::Status;
use crate::cli::BackupArgs;
use crate::output;
use crate::util::{self, StoreLoc};

pub fn run(loc: &StoreLoc, a: BackupArgs) -> Result<Status> {
    util::existing_db(loc, "backup")?;
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
    let store = util::open_writer_with(loc, opts)?;
    let dest =
        FsDirectory::create_dir_all(&a.dest).with_context(|| a.dest.display().to_string())?;
    let r = store
        .database()
        .backup(&dest)
        .with_context(|| format!("backing up to {}", a.dest.display()))?;
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
