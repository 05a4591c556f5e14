//! `apksift migrate --from A --to B [--sample N]`: copies a store between a directory and
//! Milvus (either way; cargo feature `milvus`), then checks the copy.
//!
//! The copy is [`apksift_milvus::migrate::migrate`]: every collection in key order, pages of
//! 2,000 rows, then row counts and `k = 10` searches of sampled rows on every TLSH field on
//! both sides. On top of that this command compares, through the sample store on both
//! sides, the store's counts, the sampled sample rows (`get_sample`) and their whole-file
//! and dex searches (which join `components` with `samples`).

#[cfg(not(feature = "milvus"))]
pub fn run(_a: crate::cli::MigrateArgs) -> anyhow::Result<super::Status> {
    anyhow::bail!(
        "`apksift migrate` copies stores to and from Milvus: this apksift was built without the cargo feature `milvus` (cargo build --release -p apksift --features milvus)"
    )
}

#[cfg(feature = "milvus")]
pub use imp::run;

#[cfg(feature = "milvus")]
mod imp {
    use std::time::Instant;

    use anyhow::{Context, Result, bail};
    use apksift_core::schema::SAMPLES;
    use apksift_core::{Match, SearchField, SearchOptions, Store, StoreOptions};
    use apksift_milvus::migrate::{Report, Side, migrate};
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use serde::Serialize;

    use crate::cli::MigrateArgs;
    use crate::commands::Status;
    use crate::output;
    use crate::util::StoreLoc;

    /// Keys read from the source to pick the sampled rows from.
    const KEY_POOL: usize = 10_000;

    #[derive(Debug, Serialize)]
    struct CollectionReport {
        name: String,
        copied: u64,
        source_rows: u64,
        destination_rows: u64,
    }

    #[derive(Debug, Serialize)]
    struct MigrateReport {
        from: String,
        to: String,
        seconds: f64,
        collections: Vec<CollectionReport>,
        /// Engine-level searches compared (k = 10, every TLSH field of the sampled rows).
        searches: u64,
        /// Sample rows compared through the store.
        sample_rows: u64,
        /// Store searches compared (whole and dex of the sampled rows).
        store_searches: u64,
        mismatches: Vec<String>,
        ok: bool,
    }

    /// A Milvus source is read with Strong consistency unless the address chooses: the copy
    /// must see every write acknowledged before it started, by any process.
    fn source_url(s: &str) -> String {
        if !apksift_core::is_milvus_url(s) || s.contains("consistency=") {
            return s.to_string();
        }
        let sep = if s.contains('?') { '&' } else { '?' };
        format!("{s}{sep}consistency=strong")
    }

    fn side(s: &Store) -> Side<'_> {
        match (s.embedded(), s.milvus()) {
            (Some(db), _) => Side::Embedded(db),
            (None, Some(m)) => Side::Milvus(m),
            (None, None) => unreachable!("a store is embedded or on Milvus"),
        }
    }

    fn brief(v: &[Match]) -> Vec<(String, u32, Option<String>)> {
        v.iter()
            .map(|m| (m.sha256.clone(), m.distance, m.component.clone()))
            .collect()
    }

    pub fn run(a: MigrateArgs) -> Result<Status> {
        let (from, to) = (StoreLoc::parse(&a.from), StoreLoc::parse(&a.to));
        if from.to_string() == to.to_string() {
            bail!("--from and --to are the same store ({from})");
        }
        let t0 = Instant::now();
        let src = match Store::open_url_read_only(&source_url(&a.from), StoreOptions::default()) {
            Ok(s) => s,
            Err(apksift_core::Error::NotFound(m)) => bail!("--from: {m}"),
            Err(e) => return Err(anyhow::anyhow!(e).context(format!("opening --from {from}"))),
        };
        let dst = Store::open_url(&a.to, StoreOptions::default())
            .with_context(|| format!("opening --to {to}"))?;
        let before = dst.stats()?;
        if before.samples + before.components > 0 {
            eprintln!(
                "apksift: note: {to} already holds {} samples and {} components: rows with the same keys are replaced, the others stay (and the count check reports them)",
                before.samples, before.components
            );
        }

        let pb = if a.quiet || a.json {
            ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden())
        } else {
            ProgressBar::new(0)
        };
        pb.set_style(
            ProgressStyle::with_template(
                "{msg:>12} [{bar:40}] {pos}/{len} rows {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let rep: Report = migrate(&side(&src), &side(&dst), a.sample, &mut |c, done, total| {
            pb.set_message(c.to_string());
            pb.set_length(total);
            pb.set_position(done);
        })
        .with_context(|| format!("copying {from} to {to}"))?;
        pb.finish_and_clear();

        let mut mismatches = rep.mismatches.clone();
        // Store level: counts, sampled rows, whole and dex searches.
        let (s1, s2) = (src.stats()?, dst.stats()?);
        if (s1.samples, s1.components) != (s2.samples, s2.components) {
            mismatches.push(format!(
                "store counts: source {} samples / {} components, destination {} / {}",
                s1.samples, s1.components, s2.samples, s2.components
            ));
        }
        let pool = src.backend().query(SAMPLES, None, &[], KEY_POOL, 0)?;
        let step = (pool.len() / a.sample.max(1)).max(1);
        let keys: Vec<&String> = pool
            .iter()
            .step_by(step)
            .take(a.sample)
            .map(|r| &r.0)
            .collect();
        let (mut rows, mut searches) = (0u64, 0u64);
        for key in keys {
            let (x, y) = (src.get_sample(key)?, dst.get_sample(key)?);
            rows += 1;
            if x != y {
                mismatches.push(format!("sample row {key}: differs"));
                continue;
            }
            let Some(x) = x else { continue };
            for (field, digest) in [(SearchField::Whole, x.whole), (SearchField::Dex, x.dex)] {
                let Some(d) = digest else { continue };
                let o = SearchOptions {
                    k: 10,
                    field,
                    ..SearchOptions::default()
                };
                let (p, q) = (
                    src.search_digests(&[d], &o)?.remove(0),
                    dst.search_digests(&[d], &o)?.remove(0),
                );
                searches += 1;
                if brief(&p) != brief(&q) {
                    mismatches.push(format!(
                        "store search {} {d}: source {:?}, destination {:?}",
                        field.name(),
                        brief(&p).first(),
                        brief(&q).first()
                    ));
                }
            }
        }
        let counts_ok = rep.collections.iter().all(|c| c.2 == c.3);
        let report = MigrateReport {
            from: from.to_string(),
            to: to.to_string(),
            seconds: t0.elapsed().as_secs_f64(),
            collections: rep
                .collections
                .iter()
                .map(|(name, copied, s, d)| CollectionReport {
                    name: name.clone(),
                    copied: *copied,
                    source_rows: *s,
                    destination_rows: *d,
                })
                .collect(),
            searches: rep.searches,
            sample_rows: rows,
            store_searches: searches,
            ok: counts_ok && mismatches.is_empty(),
            mismatches,
        };
        src.close()?;
        dst.close()?;
        if a.json {
            output::json_pretty(&report)?;
        } else {
            let mut s = format!("migrated {} to {}\n", report.from, report.to);
            for c in &report.collections {
                s.push_str(&format!(
                    "  {:<12} copied {:>9}  source {:>9} rows  destination {:>9} rows  {}\n",
                    c.name,
                    c.copied,
                    c.source_rows,
                    c.destination_rows,
                    if c.source_rows == c.destination_rows {
                        "ok"
                    } else {
                        "COUNT MISMATCH"
                    }
                ));
            }
            s.push_str(&format!(
                "  checks: {} engine searches (k=10, every TLSH field), {} sample rows, {} store searches (whole, dex): {} mismatches\n  took {:.1} s\n",
                report.searches,
                report.sample_rows,
                report.store_searches,
                report.mismatches.len(),
                report.seconds
            ));
            for m in report.mismatches.iter().take(20) {
                s.push_str(&format!("  mismatch: {m}\n"));
            }
            output::print(&s)?;
        }
        if !report.ok {
            eprintln!("apksift: error: the copy does not match its source (see above)");
            return Ok(Status::Error);
        }
        Ok(Status::Clean)
    }
}
