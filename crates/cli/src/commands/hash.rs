//! `apksift hash`: fingerprints as JSON.

use anyhow::Result;
use apksift_core::FingerprintOptions;

use super::Status;
use crate::cli::HashArgs;
use crate::output;
use crate::util;

pub fn run(a: HashArgs) -> Result<Status> {
    let opts = FingerprintOptions {
        include_entries: a.entries,
        ..FingerprintOptions::default()
    };
    let mut status = Status::Clean;
    for p in &a.files {
        match util::read_file(p) {
            Ok(bytes) => {
                let fp = apksift_core::fingerprint(&bytes, &opts);
                if a.compact {
                    output::json_line(&fp)?;
                } else {
                    output::json_pretty(&fp)?;
                }
            }
            Err(e) => {
                output::file_error(&p.display().to_string(), &e, a.compact)?;
                status = Status::Error;
            }
        }
    }
    Ok(status)
}
