//! One module per subcommand. A subcommand returns a [`Status`] (or an error, exit 2).
//!
//! To add a subcommand: a variant in `cli::Command`, a module here, a line in [`run`].

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::util::StoreLoc;

mod backup;
mod demo;
mod hash;
mod import;
mod ingest;
mod inspect;
mod migrate;
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
    let loc = || StoreLoc::resolve(cli.db.as_deref(), cli.store.as_deref());
    match cli.command {
        Command::Hash(a) => hash::run(a),
        Command::Ingest(a) => ingest::run(&loc()?, a),
        Command::Import(a) => import::run(&loc()?, a),
        Command::Scan(a) => scan::run(&loc()?, a),
        Command::Search(a) => search::run(&loc()?, a),
        Command::Stats(a) => stats::run(&loc()?, a),
        Command::Inspect(a) => inspect::run(&loc()?, a),
        Command::Verify(a) => verify::run(&loc()?, a),
        Command::Backup(a) => backup::run(&loc()?, a),
        Command::Demo(a) => demo::run(&loc()?, a),
        Command::Migrate(a) => migrate::run(a),
        Command::Serve(a) => serve::run(&loc()?, &a),
    }
}
