//! Command-line definitions. Each subcommand has its own module in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// apksift: Android malware detection by similarity (SHA-256 + TLSH of APKs and their
/// components, searched in an embedded store or on Milvus).
#[derive(Debug, Parser)]
#[command(name = "apksift", version, about, long_about = None)]
pub struct Cli {
    /// Store directory (default: the per-user data directory, e.g.
    /// ~/.local/share/apksift/db).
    #[arg(long, global = true, env = "APKSIFT_DB", value_name = "DIR")]
    pub db: Option<PathBuf>,

    /// The store: a directory (same as --db) or a Milvus address
    /// milvus://HOST:PORT/PREFIX[?consistency=session|strong|bounded|eventually&index=bin_flat|bin_ivf_flat&…]
    /// (needs apksift built with the cargo feature `milvus`). Wins over --db.
    #[arg(long, global = true, env = "APKSIFT_STORE", value_name = "URL_OR_DIR")]
    pub store: Option<String>,

    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the fingerprint of APK files as JSON (SHA-256, TLSH, components, manifest,
    /// certificates, anomalies).
    Hash(HashArgs),
    /// Add APKs (files or directories, recursively) to the store as known samples.
    Ingest(IngestArgs),
    /// Import known digests without the APKs (MalwareBazaar CSV export, CSV/TSV/JSONL).
    Import(ImportArgs),
    /// Scan APKs against the store and print a verdict per file.
    Scan(ScanArgs),
    /// Look up TLSH digests directly.
    Search(SearchArgs),
    /// Show what the store holds.
    Stats(JsonArgs),
    /// Show the store's files: manifest, segments, indexes, WAL.
    Inspect(JsonArgs),
    /// Check every checksum and structure of the store.
    Verify(JsonArgs),
    /// Copy a consistent snapshot of the store into an empty directory (also while a server
    /// writes to it), then verify the copy.
    Backup(BackupArgs),
    /// Generate two related demo APKs, ingest one as malware and scan the other.
    Demo(DemoArgs),
    /// Copy a store between a directory and Milvus (either way), then check row counts,
    /// sample rows and sample searches on both sides (cargo feature `milvus`).
    Migrate(MigrateArgs),
    /// Run the HTTP service (REST/JSON API under /v1, /metrics, /healthz, /readyz).
    Serve(apksift_server::ServeArgs),
}

/// `--json`.
#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `apksift hash`.
#[derive(Debug, Args)]
pub struct HashArgs {
    /// APK files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Also hash and list every entry.
    #[arg(long)]
    pub entries: bool,
    /// One JSON object per line instead of pretty-printed JSON.
    #[arg(long)]
    pub compact: bool,
}

/// `apksift ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// APK files or directories (searched recursively for `*.apk` and ZIP files).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Label: malware, grayware, benign or unknown.
    #[arg(long, default_value = "unknown")]
    pub label: String,
    /// Family name (e.g. Anubis).
    #[arg(long)]
    pub family: Option<String>,
    /// Threat level: none, low, medium, high, critical (or 0-4).
    #[arg(long)]
    pub threat: Option<String>,
    /// Source (feed name, case number...).
    #[arg(long)]
    pub source: Option<String>,
    /// First-seen time (YYYY-MM-DD[ HH:MM:SS] UTC or unix seconds).
    #[arg(long, value_name = "TIME")]
    pub first_seen: Option<String>,
    /// Also ingest files that are not ZIP archives (whole-file hashes only).
    #[arg(long)]
    pub any_file: bool,
    /// Samples per engine write.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Hashing threads (default: all cores).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// One JSON object per file instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Push the run's metrics to this Prometheus Pushgateway (job="apksift_ingest").
    #[arg(long, env = "APKSIFT_PUSHGATEWAY", value_name = "URL")]
    pub pushgateway: Option<String>,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `apksift import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// File to import, or `-` for standard input.
    #[arg(value_name = "FILE")]
    pub file: String,
    /// auto, csv (also TSV) or jsonl.
    #[arg(long, default_value = "auto")]
    pub format: String,
    /// Label of rows without one (default malware).
    #[arg(long)]
    pub label: Option<String>,
    /// Family of rows without one.
    #[arg(long)]
    pub family: Option<String>,
    /// Threat level of rows without one.
    #[arg(long)]
    pub threat: Option<String>,
    /// Source of rows without a source column.
    #[arg(long)]
    pub source: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Push the run's metrics to this Prometheus Pushgateway (job="apksift_import").
    #[arg(long, env = "APKSIFT_PUSHGATEWAY", value_name = "URL")]
    pub pushgateway: Option<String>,
}

/// `apksift scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// APK files or directories (searched recursively).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// A component matches when its TLSH distance is < CUTOFF (the TLSH paper's rule).
    #[arg(long, default_value_t = apksift_core::DEFAULT_CUTOFF)]
    pub cutoff: u32,
    /// Nearest stored digests per component.
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Only compare with samples matching this filter (fields label, family, threat), e.g.
    /// 'label == "malware"'.
    #[arg(long)]
    pub filter: Option<String>,
    /// Also scan files that are not ZIP archives (whole-file hashes only).
    #[arg(long)]
    pub any_file: bool,
    /// One JSON verdict per line.
    #[arg(long)]
    pub json: bool,
}

/// `apksift search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// TLSH digests (T1 + 70 hex, t1…, or legacy 70 hex), or `-` to read them from standard
    /// input (one per line).
    #[arg(required = true, value_name = "DIGEST")]
    pub digests: Vec<String>,
    /// Results per digest.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Only results with distance < CUTOFF.
    #[arg(long)]
    pub cutoff: Option<u32>,
    /// Stored digests to compare with: whole, manifest, resources, dex, native.
    #[arg(long, default_value = "whole")]
    pub field: String,
    /// Distance without the length term (diffxlen).
    #[arg(long)]
    pub xlen: bool,
    /// Filter expression (e.g. 'family == "Anubis"').
    #[arg(long)]
    pub filter: Option<String>,
    /// One JSON object per digest.
    #[arg(long)]
    pub json: bool,
}

/// `apksift backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Destination directory (new or empty).
    #[arg(value_name = "DEST")]
    pub dest: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `apksift demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the demo APKs (default: `<db>.demo-apks`; for a Milvus store, a
    /// directory under the system's temporary directory).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the verdict as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `apksift migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Source store: a directory or milvus://HOST:PORT/PREFIX (read only; a Milvus source
    /// is read with consistency=strong unless the address sets a level).
    #[arg(long, value_name = "URL_OR_DIR")]
    pub from: String,
    /// Destination store: a directory or milvus://HOST:PORT/PREFIX (created when missing;
    /// rows with the same keys are replaced).
    #[arg(long, value_name = "URL_OR_DIR")]
    pub to: String,
    /// Rows sampled for the checks after the copy: their searches (k = 10, every TLSH
    /// field) and their sample rows are compared on both sides.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub sample: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}
