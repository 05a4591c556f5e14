//! `apksift stats`.

use anyhow::Result;

use super::Status;
use crate::cli::JsonArgs;
use crate::output;
use crate::util::{self, StoreLoc};

pub fn run(loc: &StoreLoc, a: JsonArgs) -> Result<Status> {
    let (store, exists) = util::open_reader(loc)?;
    let mut st = store.stats()?;
    if !exists {
        st.location = format!("{loc} (does not exist yet)");
    }
    if a.json {
        output::json_pretty(&st)?;
    } else if exists && store.backend_kind() == "milvus" {
        output::print(&format!(
            "store:      {} (Milvus)\nsamples:    {}\ncomponents: {}\n",
            st.location, st.samples, st.components
        ))?;
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
