//! `apksift serve`: the HTTP service (see `apksift-server`), on a store directory or, with
//! the cargo feature `milvus`, on a Milvus server (`--store milvus://…`).

use anyhow::Result;

use super::Status;
use crate::util::StoreLoc;

pub fn run(loc: &StoreLoc, a: &apksift_server::ServeArgs) -> Result<Status> {
    if let StoreLoc::Milvus(u) = loc
        && !cfg!(feature = "milvus")
    {
        anyhow::bail!(
            "{u} is a Milvus store: this apksift was built without the cargo feature `milvus` (cargo build --release -p apksift --features milvus)"
        );
    }
    apksift_server::run(&loc.url()?, a)?;
    Ok(Status::Clean)
}
