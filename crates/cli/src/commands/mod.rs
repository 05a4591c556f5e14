//! One module per subcommand. A subcommand returns a [`Status`] (or an error, exit 2).
//!
//! To add a subcommand: a variant in `cli::Command`, a module here, a line in [`run`].

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command};

mod backup;
mod demo;
mod hash;
mod import;
mod ingest;
mod inspect;
mod scan;
mod search;
mod serve;
mod stats;
mod verify;

/// How a command ended (clamscan's exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// 0: done, nothing matched.
    Clean,
    /// 1: something matched.
    Match,
    /// 2: some input failed (the others were processed).
    Error,
}

impl Status {
    pub fn code(self) -> ExitCode {
        ExitCode::from(match self {
            Status::Clean => 0,
            Status::Match => 1,
            Status::Error => 2,
        })
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<Status> {
    let db = cli.db.as_deref();
    match cli.command {
        Command::Hash(a) => hash::run(a),
        Command::Ingest(a) => ingest::run(db, a),
        Command::Import(a) => import::run(db, a),
        Command::Scan(a) => scan::run(db, a),
        Command::Search(a) => search::run(db, a),
        Command::Stats(a) => stats::run(db, a),
        Command::Inspect(a) => inspect::run(db, a),
        Command::Verify(a) => verify::run(db, a),
        Command::Backup(a) => backup::run(db, a),
        Command::Demo(a) => demo::run(db, a),
        Command::Serve(a) => serve::run(db, &a),
    }
}
