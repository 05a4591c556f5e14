//! `apksift serve`: the HTTP service (see `apksift-server`).

use std::path::Path;

use anyhow::Result;

use super::Status;
use crate::util;

pub fn run(db: Option<&Path>, a: &apksift_server::ServeArgs) -> Result<Status> {
    let dir = util::db_path(db)?;
    apksift_server::run(&dir, a)?;
    Ok(Status::Clean)
}
