//! `apksift stats`.

use std::path::Path;

use anyhow::Result;

use super::Status;
use crate::cli::JsonArgs;
use crate::output;
use crate::util;

pub fn run(db: Option<&Path>, a: JsonArgs) -> Result<Status> {
    let (store, location) = util::open_reader(db)?;
    let mut st = store.stats()?;
    if location.is_none() {
        st.location = format!("{} (does not exist yet)", util::db_path(db)?.display());
    }
    if a.json {
        output::json_pretty(&st)?;
    } else {
        output::print(&format!(
            "store:      {}\nsamples:    {}\ncomponents: {}\nsegments:   {} ({} bytes), {} rows in memtables\nwal:        durable LSN {}, manifest generation {}\n",
            st.location,
            st.samples,
            st.components,
            st.engine.segments,
            st.engine.segment_bytes,
            st.engine.memtable_rows,
            st.engine.durable_lsn,
            st.engine.generation
        ))?;
    }
    Ok(Status::Clean)
}
