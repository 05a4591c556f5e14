//! `apksift import`: known digests from CSV/TSV/JSONL.

use std::path::Path;

use anyhow::{Context, Result, bail};
use apksift_core::{ImportFormat, ImportOptions, Label, ThreatLevel};

use super::Status;
use crate::cli::ImportArgs;
use crate::output;
use crate::util::{self, StoreLoc};

pub fn run(loc: &StoreLoc, a: ImportArgs) -> Result<Status> {
    let mut job = apksift_server::push::JobMetrics::new("apksift_import");
    let format: ImportFormat = a.format.parse()?;
    let label: Option<Label> = a.label.as_deref().map(str::parse).transpose()?;
    let threat: Option<ThreatLevel> = a.threat.as_deref().map(str::parse).transpose()?;
    let source = a.source.clone();
    let reader: Box<dyn std::io::Read> = if a.file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let p = Path::new(&a.file);
        if p.is_dir() {
            bail!("{}: is a directory", p.display());
        }
        Box::new(std::fs::File::open(p).with_context(|| a.file.clone())?)
    };
    let store = util::open_writer(loc)?;
    let opts = ImportOptions {
        label,
        threat,
        family: a.family.clone(),
        source,
    };
    let report = store
        .import_digests(reader, format, &opts)
        .with_context(|| format!("importing {}", a.file))?;
    store.close().context("closing the store")?;
    if a.json {
        output::json_pretty(&report)?;
    } else {
        let mut s = format!(
            "{}: {} rows ({}) -> {} stored ({} with a TLSH digest, {} without), {} skipped\n",
            a.file,
            report.rows,
            report.format,
            report.stored,
            report.with_digest,
            report.without_digest,
            report.skipped
        );
        s.push_str(&format!(
            "  digests: {} TNULL, {} empty, {} invalid; {} duplicate keys (later row kept); {} updated existing samples; {} ignored fields\n",
            report.tnull,
            report.empty_digest,
            report.invalid_digest,
            report.duplicates,
            report.updated_existing,
            report.field_errors
        ));
        let kinds: Vec<String> = report
            .key_types
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if !kinds.is_empty() {
            s.push_str(&format!("  keys: {}\n", kinds.join(", ")));
        }
        for i in &report.issues {
            s.push_str(&format!("  line {}: {}\n", i.line, i.message));
        }
        output::print(&s)?;
    }
    if let Some(url) = &a.pushgateway {
        job.counter("apksift_import_rows_total", "Data rows read.", report.rows)
            .counter("apksift_import_stored_total", "Rows stored.", report.stored)
            .counter(
                "apksift_import_skipped_total",
                "Rows skipped.",
                report.skipped,
            )
            .counter(
                "apksift_import_invalid_digests_total",
                "Rows with an invalid TLSH digest.",
                report.invalid_digest,
            );
        apksift_server::push::push_or_warn(url, &job, report.stored > 0);
    }
    if report.rows == 0 {
        bail!("{}: no data rows found", a.file);
    }
    if report.stored == 0 {
        bail!(
            "{}: none of the {} rows could be stored (see the issues above)",
            a.file,
            report.rows
        );
    }
    Ok(Status::Clean)
}
