//! `apksift verify`: every checksum and structure.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use apksift_storage::FsDirectory;

use super::Status;
use crate::cli::JsonArgs;
use crate::output;
use crate::util::{self, StoreLoc};

pub fn run(loc: &StoreLoc, a: JsonArgs) -> Result<Status> {
    let p = util::existing_db(loc, "verify")?;
    let dir = FsDirectory::open_existing(&p).with_context(|| p.display().to_string())?;
    let r = apksift_index::verify::verify_dir(&dir).context("verifying the store")?;
    if a.json {
        output::json_pretty(&r)?;
    } else {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: {} segments ({} rows), {} delete files, {} WAL records checked; {} errors, {} warnings",
            p.display(),
            r.segments_checked,
            r.segment_rows,
            r.delete_files_checked,
            r.wal_records,
            r.errors.len(),
            r.warnings.len()
        );
        for e in &r.errors {
            let _ = writeln!(s, "  error: {e}");
        }
        for w in &r.warnings {
            let _ = writeln!(s, "  warning: {w}");
        }
        output::print(&s)?;
    }
    if r.errors.is_empty() {
        Ok(Status::Clean)
    } else {
        eprintln!("apksift: the store at {} is damaged", p.display());
        Ok(Status::Error)
    }
}
