//! `apksift ingest`: fingerprint files in parallel and upsert them in batches.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use apksift_core::{Fingerprint, Label, SampleMeta, ThreatLevel};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use super::Status;
use crate::cli::IngestArgs;
use crate::output;
use crate::util::{self, StoreLoc};

pub fn run(loc: &StoreLoc, a: IngestArgs) -> Result<Status> {
    let mut job = apksift_server::push::JobMetrics::new("apksift_ingest");
    let label: Label = a.label.parse()?;
    let threat: Option<ThreatLevel> = a.threat.as_deref().map(str::parse).transpose()?;
    let first_seen = match a.first_seen.as_deref() {
        Some(t) => Some(apksift_core::import::parse_time(t).ok_or_else(|| {
            anyhow!("--first-seen {t:?}: expected YYYY-MM-DD[ HH:MM:SS] or unix seconds")
        })?),
        None => None,
    };
    let meta = SampleMeta {
        label,
        family: a.family.clone(),
        threat,
        source: a.source.clone(),
        first_seen,
    }
    .normalized()?;
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let inputs = util::collect_inputs(&a.paths);
    let mut errors = 0u64;
    for e in &inputs.errors {
        eprintln!("apksift: {e}");
        if a.json {
            output::json_line(&serde_json::json!({ "error": e }))?;
        }
        errors += 1;
    }
    if inputs.files.is_empty() {
        bail!(
            "no APK files found in {} ({} other files skipped)",
            a.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            inputs.skipped
        );
    }
    // Opened at the first fingerprint that can be stored: failing input creates no store.
    let mut store: Option<apksift_core::Store> = None;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.jobs.unwrap_or(0))
        .build()
        .context("starting the hashing threads")?;
    let pb = if a.quiet || a.json {
        ProgressBar::with_draw_target(
            Some(inputs.files.len() as u64),
            ProgressDrawTarget::hidden(),
        )
    } else {
        ProgressBar::new(inputs.files.len() as u64)
    };
    pb.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut new, mut replaced, mut comps) = (0u64, 0u64, 0u64);
    for chunk in inputs.files.chunks(a.batch) {
        let results: Vec<(PathBuf, Result<Fingerprint>)> = pool.install(|| {
            chunk
                .par_iter()
                .map(|p| {
                    let r = util::fingerprint_file(p, a.any_file);
                    pb.inc(1);
                    (p.clone(), r)
                })
                .collect()
        });
        let mut ok = Vec::new();
        let mut names = Vec::new();
        for (p, r) in results {
            match r {
                Ok(fp) => {
                    names.push(p);
                    ok.push((fp, meta.clone()));
                }
                Err(e) => {
                    pb.suspend(|| {
                        let _ = output::file_error(&p.display().to_string(), &e, a.json);
                    });
                    errors += 1;
                }
            }
        }
        if ok.is_empty() {
            continue;
        }
        if store.is_none() {
            store = Some(util::open_writer(loc)?);
        }
        let Some(st) = store.as_ref() else {
            continue;
        };
        let outcomes = st.ingest_batch(&ok).context("writing to the store")?;
        for o in &outcomes {
            if o.replaced {
                replaced += 1;
            } else {
                new += 1;
            }
            comps += o.components as u64;
        }
        if a.json {
            // Outcomes are per distinct SHA-256; report every file.
            for (p, (fp, _)) in names.iter().zip(&ok) {
                let o = outcomes.iter().find(|o| o.sha256 == fp.sha256);
                output::json_line(&serde_json::json!({
                    "file": p.display().to_string(),
                    "sha256": fp.sha256,
                    "replaced": o.map(|o| o.replaced),
                    "components": o.map(|o| o.components),
                    "components_dropped": o.map(|o| o.components_dropped),
                }))?;
            }
        }
    }
    pb.finish_and_clear();
    if !a.json {
        output::print(&format!(
            "ingested {} samples ({new} new, {replaced} replaced), {comps} component rows, label {}{}; {} non-APK files skipped; {errors} errors\n",
            new + replaced,
            meta.label,
            meta.family
                .as_ref()
                .map(|f| format!(", family {f}"))
                .unwrap_or_default(),
            inputs.skipped
        ))?;
    }
    if let Some(st) = store {
        st.close().context("closing the store")?;
    }
    if let Some(url) = &a.pushgateway {
        job.counter(
            "apksift_ingest_files_total",
            "APK files read.",
            inputs.files.len() as u64,
        )
        .counter(
            "apksift_ingest_samples_total",
            "Samples stored (new or replaced).",
            new + replaced,
        )
        .counter(
            "apksift_ingest_samples_new_total",
            "Samples not stored before.",
            new,
        )
        .counter(
            "apksift_ingest_component_rows_total",
            "Component rows written.",
            comps,
        )
        .counter("apksift_ingest_errors_total", "Inputs that failed.", errors)
        .counter(
            "apksift_ingest_skipped_files_total",
            "Non-APK files skipped.",
            inputs.skipped,
        );
        apksift_server::push::push_or_warn(url, &job, errors == 0);
    }
    Ok(if errors > 0 {
        Status::Error
    } else {
        Status::Clean
    })
}
