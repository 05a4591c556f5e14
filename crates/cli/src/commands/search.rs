//! `apksift search`: nearest stored digests of TLSH digests.

use std::fmt::Write as _;
use std::io::BufRead;

use anyhow::{Context, Result, bail};
use apksift_core::{Digest, SearchField, SearchOptions};

use super::Status;
use crate::cli::SearchArgs;
use crate::output::{self, short};
use crate::util::{self, StoreLoc};

pub fn run(loc: &StoreLoc, a: SearchArgs) -> Result<Status> {
    let field: SearchField = a.field.parse()?;
    let mut texts: Vec<String> = Vec::new();
    for d in &a.digests {
        if d == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line.context("reading digests from standard input")?;
                for t in line.split([',', ' ', '\t']) {
                    let t = t.trim();
                    if !t.is_empty() && !t.starts_with('#') {
                        texts.push(t.to_string());
                    }
                }
            }
        } else {
            texts.push(d.clone());
        }
    }
    if texts.is_empty() {
        bail!("no digests given");
    }
    let mut digests = Vec::with_capacity(texts.len());
    let mut bad = Vec::new();
    for t in &texts {
        match Digest::parse_lenient(t) {
            Ok(d) => digests.push(d),
            Err(e) => bad.push(format!("{t:?}: {e}")),
        }
    }
    if !bad.is_empty() {
        bail!(
            "invalid TLSH digest{}: {} (expected T1 + 70 hex digits, t1…, or 70 hex digits)",
            if bad.len() > 1 { "s" } else { "" },
            bad.join("; ")
        );
    }
    let (store, _) = util::open_reader(loc)?;
    let opts = SearchOptions {
        k: a.k,
        cutoff: a.cutoff,
        field,
        xlen: a.xlen,
        filter: a.filter.clone(),
    };
    let results = store.search_digests(&digests, &opts)?;
    let mut any = false;
    for (d, matches) in digests.iter().zip(&results) {
        any |= !matches.is_empty();
        if a.json {
            output::json_line(&serde_json::json!({
                "query": d.to_string(),
                "field": field.name(),
                "cutoff": a.cutoff,
                "xlen": a.xlen,
                "matches": matches,
            }))?;
        } else {
            let mut s = String::new();
            let _ = writeln!(s, "{d}: {} matches", matches.len());
            for m in matches {
                let _ = writeln!(
                    s,
                    "  {:>4}  {}  {:<16} {:<8} {:<8} {}{}",
                    m.distance,
                    if m.sha256.len() > 24 {
                        format!("{}…", short(&m.sha256))
                    } else {
                        m.sha256.clone()
                    },
                    m.family.as_deref().unwrap_or("-"),
                    m.label.to_string(),
                    m.threat.map_or("-".to_string(), |t| t.to_string()),
                    m.source.as_deref().unwrap_or("-"),
                    m.component
                        .as_ref()
                        .map(|c| format!(" [{c}]"))
                        .unwrap_or_default()
                );
            }
            output::print(&s)?;
        }
    }
    Ok(if any { Status::Match } else { Status::Clean })
}
