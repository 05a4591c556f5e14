//! `apksift inspect`: the store's files, read without modifying anything.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use apksift_storage::FsDirectory;

use super::Status;
use crate::cli::JsonArgs;
use crate::output;
use crate::util::{self, StoreLoc};

pub fn run(loc: &StoreLoc, a: JsonArgs) -> Result<Status> {
    let p = util::existing_db(loc, "inspect")?;
    let dir = FsDirectory::open_existing(&p).with_context(|| p.display().to_string())?;
    let r = apksift_index::verify::inspect_dir(&dir).context("inspecting the store")?;
    if a.json {
        output::json_pretty(&r)?;
        return Ok(Status::Clean);
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "store {}: manifest generation {}, checkpoint LSN {}",
        r.location, r.generation, r.checkpoint_lsn
    );
    for c in &r.collections {
        let _ = writeln!(
            s,
            "collection {} (id {}): {} segments",
            c.name,
            c.id,
            c.segments.len()
        );
        for seg in &c.segments {
            let idx: Vec<String> = seg
                .indexes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(
                s,
                "  {}: {} rows, {} deleted, {} bytes; {}",
                seg.file,
                seg.rows,
                seg.deleted,
                seg.bytes,
                idx.join(" ")
            );
        }
    }
    for (name, first, bytes) in &r.wal_files {
        let _ = writeln!(s, "wal {name}: first LSN {first}, {bytes} bytes");
    }
    for u in &r.unreferenced {
        let _ = writeln!(s, "unreferenced file: {u}");
    }
    output::print(&s)?;
    Ok(Status::Clean)
}
