//! `apksift scan`: a verdict per file.

use std::fmt::Write as _;

use anyhow::Result;
use apksift_core::{ScanOptions, Verdict, VerdictKind};

use super::Status;
use crate::cli::ScanArgs;
use crate::output::{self, short};
use crate::util::{self, StoreLoc};

pub fn run(loc: &StoreLoc, a: ScanArgs) -> Result<Status> {
    let opts = ScanOptions {
        cutoff: a.cutoff,
        k: a.k,
        filter: a.filter.clone(),
        ..ScanOptions::default()
    };
    let inputs = util::collect_inputs(&a.paths);
    let (store, exists) = util::open_reader(loc)?;
    if !exists {
        eprintln!("apksift: note: no store at {loc} yet: nothing to compare with");
    }
    let mut status = Status::Clean;
    for e in &inputs.errors {
        output::file_error(
            e.split(':').next().unwrap_or(e),
            &anyhow::anyhow!("{e}"),
            a.json,
        )?;
        status = Status::Error;
    }
    if inputs.files.is_empty() && inputs.errors.is_empty() {
        anyhow::bail!(
            "no APK files found ({} other files skipped)",
            inputs.skipped
        );
    }
    for p in &inputs.files {
        let name = p.display().to_string();
        let r = util::fingerprint_file(p, a.any_file).and_then(|fp| Ok(store.scan(&fp, &opts)?));
        match r {
            Ok(mut v) => {
                v.file = Some(name);
                if a.json {
                    output::json_line(&v)?;
                } else {
                    output::print(&human(&v))?;
                }
                if v.is_match() && status == Status::Clean {
                    status = Status::Match;
                }
            }
            Err(e) => {
                output::file_error(&name, &e, a.json)?;
                status = Status::Error;
            }
        }
    }
    Ok(status)
}

pub(crate) fn human(v: &Verdict) -> String {
    let mut s = String::new();
    let file = v.file.as_deref().unwrap_or(&v.sha256);
    let head = match v.verdict {
        VerdictKind::Malicious => "MALICIOUS",
        VerdictKind::Suspicious => "SUSPICIOUS",
        VerdictKind::NoMatch => "no match",
    };
    let mut tag = Vec::new();
    if let Some(f) = &v.family {
        tag.push(f.clone());
    }
    if let Some(t) = v.threat {
        tag.push(format!("threat {t}"));
    }
    if v.exact_match {
        tag.push("exact sha256".into());
    }
    let tag = if tag.is_empty() {
        String::new()
    } else {
        format!(" ({})", tag.join(", "))
    };
    let _ = writeln!(s, "{file}: {head}{tag}");
    let _ = writeln!(s, "  reason:  {}", v.reason);
    let _ = writeln!(
        s,
        "  sha256:  {}  size {}  package {}",
        v.sha256,
        v.size,
        v.package.as_deref().unwrap_or("-")
    );
    let r = &v.paper_rates;
    let fmt = |x: Option<f64>| x.map_or("n/a".to_string(), |x| format!("{x}%"));
    let rates = if r.exact {
        format!(
            "false positives {}, detection {}",
            fmt(r.fp_rate_percent),
            fmt(r.detection_rate_percent)
        )
    } else {
        format!(
            "false positives <= {} (row < {}), detection >= {} (row < {})",
            fmt(r.fp_rate_percent),
            r.fp_row.map_or("-".into(), |x| x.to_string()),
            fmt(r.detection_rate_percent),
            r.detection_row.map_or("-".into(), |x| x.to_string())
        )
    };
    let _ = writeln!(
        s,
        "  cutoff:  distance < {}; TLSH paper (CTC 2013, Table II): {rates}",
        v.cutoff
    );
    let _ = writeln!(s, "  components:");
    for c in &v.components {
        let what = match (&c.tlsh, &c.no_digest) {
            (None, Some(why)) => format!("no digest ({why})"),
            (None, None) => "no digest".into(),
            (Some(_), _) => match c.nearest.first() {
                Some(h) => format!(
                    "{} {:>4}  {}… {} {}{}",
                    if h.within_cutoff { "MATCH" } else { "     " },
                    h.distance,
                    short(&h.sha256),
                    h.family.as_deref().unwrap_or("-"),
                    h.label,
                    h.stored_name
                        .as_ref()
                        .map(|n| format!(" [{n}]"))
                        .unwrap_or_default()
                ),
                None => "nothing stored to compare".into(),
            },
        };
        let _ = writeln!(s, "    {:<28} {what}", trunc(&c.component, 28));
    }
    if !v.nearest.is_empty() {
        let _ = writeln!(s, "  nearest samples:");
        for n in &v.nearest {
            let via: Vec<String> = n
                .via
                .iter()
                .take(4)
                .map(|x| format!("{} {}", x.component, x.distance))
                .collect();
            let _ = writeln!(
                s,
                "    {:>4}  {}…  {:<16} {:<8} {:<8} via {}",
                n.distance,
                short(&n.sha256),
                trunc(n.family.as_deref().unwrap_or("-"), 16),
                n.label.to_string(),
                n.threat.map_or("-".to_string(), |t| t.to_string()),
                via.join(", ")
            );
        }
    }
    for w in &v.warnings {
        let _ = writeln!(s, "  warning: {w}");
    }
    s
}

fn trunc(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let t: String = s.chars().take(n - 1).collect();
        format!("{t}…")
    }
}
