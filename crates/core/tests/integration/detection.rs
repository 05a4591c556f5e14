//! Detection on the real corpus (`docs/DETECTION.md`): groups of related APKs, and false
//! matches of benign apps against a store of the `malware/` samples.
//!
//! Reproduce the tables with
//! `cargo test --release -p apksift-core --test integration detection -- --nocapture`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use apksift_core::{Label, SampleMeta, ScanOptions, ThreatLevel, VerdictKind};

use crate::common::*;

const CUTOFFS: [u32; 3] = [30, 50, 100];
const KINDS: [&str; 5] = ["whole", "manifest", "resources", "dex", "native"];

/// With `APKSIFT_DETECTION_DUMP=<file>`, appends one JSON line per scan (for policy analysis).
fn dump(
    test: &str,
    file: &str,
    cutoff: u32,
    v: &apksift_core::Verdict,
    rel: impl Fn(&str) -> bool,
) {
    let Some(path) = std::env::var_os("APKSIFT_DETECTION_DUMP") else {
        return;
    };
    if cutoff != 100 {
        return;
    }
    use std::io::Write;
    let neighbours: Vec<serde_json::Value> = v
        .nearest
        .iter()
        .map(|n| {
            let mut best: BTreeMap<String, u32> = BTreeMap::new();
            for x in &n.via {
                let k = kind_of(&x.component).to_string();
                let e = best.entry(k).or_insert(u32::MAX);
                *e = (*e).min(x.distance);
            }
            serde_json::json!({"sample": n.sha256, "relative": rel(&n.sha256), "best": best})
        })
        .collect();
    let line = serde_json::json!({"test": test, "file": file, "neighbours": neighbours});
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

fn kind_of(component: &str) -> &str {
    component.split(':').next().unwrap_or(component)
}

/// The best distance per component kind of one stored sample, from a scan's `nearest`.
type Best = BTreeMap<String, u32>;

fn best_of(n: &apksift_core::Neighbour) -> Best {
    let mut best = Best::new();
    for x in &n.via {
        let e = best
            .entry(kind_of(&x.component).to_string())
            .or_insert(u32::MAX);
        *e = (*e).min(x.distance);
    }
    best
}

/// Verdict policies compared in `docs/DETECTION.md` ("Policies compared"), for evidence
/// against one stored `malware` sample. Strong = whole file or dex < cutoff; weak =
/// manifest, resources or native library < cutoff.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Policy {
    /// Strong → malicious; any weak → suspicious.
    P1,
    /// Strong or two weak → malicious; a single weak one is ignored.
    P3,
    /// Strong → malicious; two weak, or one weak < min(cutoff, 30) → suspicious (the policy
    /// `Store::scan` implements).
    P7,
}

/// 2 = malicious, 1 = suspicious, 0 = nothing.
fn outcome(p: Policy, cutoff: u32, best: &Best) -> u8 {
    let d = |k: &str| best.get(k).copied().unwrap_or(u32::MAX);
    let strong = d("whole") < cutoff || d("dex") < cutoff;
    let weak: Vec<u32> = ["manifest", "resources", "native"]
        .iter()
        .map(|k| d(k))
        .filter(|&x| x < cutoff)
        .collect();
    match p {
        Policy::P1 if strong => 2,
        Policy::P1 => u8::from(!weak.is_empty()),
        Policy::P3 => 2 * u8::from(strong || weak.len() >= 2),
        Policy::P7 if strong => 2,
        Policy::P7 => u8::from(weak.len() >= 2 || weak.iter().any(|&x| x < cutoff.min(30))),
    }
}

const POLICIES: [(Policy, u32); 7] = [
    (Policy::P1, 30),
    (Policy::P1, 50),
    (Policy::P1, 100),
    (Policy::P3, 50),
    (Policy::P7, 30),
    (Policy::P7, 50),
    (Policy::P7, 100),
];

/// Re-thresholds scans taken at cutoff 100 (k = 10) under each policy: for every scanned
/// file, the strongest outcome over the stored samples considered. Returns
/// (policy, cutoff, malicious, any verdict) rows and prints them.
fn compare_policies(what: &str, scans: &[Vec<Best>]) -> Vec<(Policy, u32, usize, usize)> {
    println!(
        "\n### Policies compared ({what}; {} scans at cutoff 100, k = 10, re-thresholded)\n",
        scans.len()
    );
    println!("| policy | cutoff | malicious | any verdict |");
    println!("|---|---|---|---|");
    let mut rows = Vec::new();
    for (p, cutoff) in POLICIES {
        let (mut mal, mut any) = (0, 0);
        for s in scans {
            let o = s.iter().map(|b| outcome(p, cutoff, b)).max().unwrap_or(0);
            mal += usize::from(o == 2);
            any += usize::from(o >= 1);
        }
        println!("| {p:?} | {cutoff} | {mal} | {any} |");
        rows.push((p, cutoff, mal, any));
    }
    rows
}

#[test]
fn detection_groups_members_match_a_relative() {
    let Some(dir) = apk_dir("detection_groups_members_match_a_relative") else {
        return;
    };
    let corpus = corpus(&dir);
    let groups: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("groups.json")).unwrap()).unwrap();
    let groups = groups["groups"].as_array().unwrap();
    let by_file: HashMap<&str, &apksift_core::Fingerprint> =
        corpus.iter().map(|(f, fp)| (f.as_str(), fp)).collect();
    // Family of a file = the first group it belongs to.
    let mut family: HashMap<&str, &str> = HashMap::new();
    for g in groups {
        for f in g["files"].as_array().unwrap() {
            family
                .entry(f.as_str().unwrap())
                .or_insert(g["id"].as_str().unwrap());
        }
    }
    // Groups that share a file are one family (e.g. apksig/original.apk is in both
    // apksig-tinyapp and malformed-from-original): relatives are the files of the union.
    let mut fam_files: Vec<BTreeSet<&str>> = Vec::new();
    for g in groups {
        let files: BTreeSet<&str> = g["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        let (mut merged, rest): (Vec<_>, Vec<_>) =
            fam_files.drain(..).partition(|s| !s.is_disjoint(&files));
        let mut u = files;
        for m in merged.drain(..) {
            u.extend(m);
        }
        fam_files = rest;
        fam_files.push(u);
    }
    let union_of = |f: &str| {
        fam_files
            .iter()
            .find(|s| s.contains(f))
            .cloned()
            .unwrap_or_default()
    };
    // Everything is stored as malware so that each match shows in the verdict.
    let store = store("detection_groups_members_match_a_relative");
    let items: Vec<_> = corpus
        .iter()
        .map(|(f, fp)| {
            let mut m = SampleMeta::new(Label::Malware)
                .threat(ThreatLevel::High)
                .source(f.clone());
            if let Some(fam) = family.get(f.as_str()) {
                m = m.family(*fam);
            }
            (fp.clone(), m)
        })
        .collect();
    store.ingest_batch(&items).unwrap();

    println!("\n## Groups: each member scanned against the corpus without itself\n");
    println!(
        "| cutoff | members | a component matched a relative | nearest sample is a relative | verdict decided by a relative | verdict malicious | verdict suspicious | via whole | via manifest | via resources | via dex | via native | whole only |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut per_group: BTreeMap<(u32, String), (usize, usize, BTreeSet<String>)> = BTreeMap::new();
    let mut totals: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
    // For the policy comparison: per non-identical member, its relatives' evidence at 100.
    let mut policy_scans: Vec<Vec<Best>> = Vec::new();
    // Members whose verdict (the store's own policy, P7) was decided by a relative, and was
    // malicious, per cutoff.
    let mut rel_verdicts: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
    for cutoff in CUTOFFS {
        let (mut members, mut matched, mut nearest_rel, mut mal, mut sus, mut whole_only) =
            (0, 0, 0, 0, 0, 0);
        let mut verdict_rel = 0;
        let mut via: BTreeMap<String, usize> = BTreeMap::new();
        for g in groups {
            let gid = g["id"].as_str().unwrap().to_string();
            let files: Vec<&str> = g["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap())
                .collect();
            for f in &files {
                let Some(fp) = by_file.get(f) else {
                    panic!("{f} of group {gid} is not in the corpus");
                };
                members += 1;
                let rel: BTreeSet<&str> = union_of(f)
                    .iter()
                    .filter(|o| *o != f)
                    .map(|o| by_file[o].sha256.as_str())
                    .collect();
                let entry =
                    per_group
                        .entry((cutoff, gid.clone()))
                        .or_insert((0, 0, BTreeSet::new()));
                entry.0 += 1;
                if rel.contains(fp.sha256.as_str()) {
                    // A byte-identical twin: an exact SHA-256 match.
                    matched += 1;
                    nearest_rel += 1;
                    mal += 1;
                    verdict_rel += 1;
                    entry.1 += 1;
                    entry.2.insert("sha256".into());
                    continue;
                }
                let opts = ScanOptions {
                    cutoff,
                    k: 10,
                    max_neighbours: 50,
                    exclude: vec![fp.sha256.clone()],
                    ..ScanOptions::default()
                };
                let v = store.scan(fp, &opts).unwrap();
                dump("group", f, cutoff, &v, |k| rel.contains(k));
                if cutoff == 100 {
                    policy_scans.push(
                        v.nearest
                            .iter()
                            .filter(|n| rel.contains(n.sha256.as_str()))
                            .map(best_of)
                            .collect(),
                    );
                }
                {
                    // The strongest outcome a relative alone raises, from this scan's own
                    // `nearest` (the store applies P7 to every stored sample).
                    let o = v
                        .nearest
                        .iter()
                        .filter(|n| rel.contains(n.sha256.as_str()))
                        .map(|n| outcome(Policy::P7, cutoff, &best_of(n)))
                        .max()
                        .unwrap_or(0);
                    let e = rel_verdicts.entry(cutoff).or_default();
                    e.0 += usize::from(o == 2);
                    e.1 += usize::from(o >= 1);
                }
                match v.verdict {
                    VerdictKind::Malicious => mal += 1,
                    VerdictKind::Suspicious => sus += 1,
                    VerdictKind::NoMatch => {}
                }
                if v.is_match() && v.matched_sample.as_deref().is_some_and(|k| rel.contains(k)) {
                    verdict_rel += 1;
                }
                if v.nearest
                    .first()
                    .is_some_and(|n| rel.contains(n.sha256.as_str()))
                {
                    nearest_rel += 1;
                }
                let kinds: BTreeSet<&str> = v
                    .nearest
                    .iter()
                    .filter(|n| rel.contains(n.sha256.as_str()))
                    .flat_map(|n| n.via.iter())
                    .filter(|x| x.distance < cutoff)
                    .map(|x| kind_of(&x.component))
                    .collect();
                if !kinds.is_empty() {
                    matched += 1;
                    entry.1 += 1;
                }
                if kinds.len() == 1 && kinds.contains("whole") {
                    whole_only += 1;
                }
                for k in &kinds {
                    *via.entry(k.to_string()).or_default() += 1;
                    entry.2.insert(k.to_string());
                }
            }
        }
        totals.insert(cutoff, (matched, verdict_rel));
        let v = |k: &str| via.get(k).copied().unwrap_or(0);
        println!(
            "| < {cutoff} | {members} | {matched} | {nearest_rel} | {verdict_rel} | {mal} | {sus} | {} | {} | {} | {} | {} | {whole_only} |",
            v("whole"),
            v("manifest"),
            v("resources"),
            v("dex"),
            v("native")
        );
    }
    println!("\n### Per group at cutoff 50 (members matched / members; components)\n");
    println!("| group | relation | matched | via |");
    println!("|---|---|---|---|");
    for g in groups {
        let gid = g["id"].as_str().unwrap();
        let (n, m, via) = &per_group[&(50, gid.to_string())];
        println!(
            "| {gid} | {} | {m}/{n} | {} |",
            g["relation"].as_str().unwrap(),
            via.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let rows = compare_policies("group members, evidence from relatives only", &policy_scans);
    // The model of P7 re-thresholded from the cutoff-100 scans must agree with scans taken at
    // each cutoff (evidence from relatives, same P7 rule applied to each scan's neighbours).
    for (p, cutoff, mal, any) in &rows {
        if *p == Policy::P7 {
            let (m, a) = rel_verdicts[cutoff];
            assert_eq!(
                (*mal, *any),
                (m, a),
                "P7 at {cutoff}: re-thresholded vs scanned"
            );
        }
    }
    // Floors (measured: see docs/DETECTION.md).
    for (cutoff, floor, verdict_floor) in [(30, 140, 135), (50, 145, 140), (100, 150, 145)] {
        let (m, v) = totals[&cutoff];
        assert!(
            m >= floor,
            "cutoff {cutoff}: {m} members matched a relative (floor {floor})"
        );
        assert!(
            v >= verdict_floor,
            "cutoff {cutoff}: {v} verdicts raised by a relative (floor {verdict_floor})"
        );
    }
}

#[test]
fn detection_benign_apps_against_malware_store() {
    let Some(dir) = apk_dir("detection_benign_apps_against_malware_store") else {
        return;
    };
    let corpus = corpus(&dir);
    let store = store("detection_benign_apps_against_malware_store");
    let items: Vec<_> = corpus
        .iter()
        .filter(|(f, _)| f.starts_with("malware/"))
        .map(|(f, fp)| {
            let fam = f
                .rsplit_once('/')
                .map_or("", |x| x.0)
                .rsplit('/')
                .next()
                .unwrap_or("");
            (
                fp.clone(),
                SampleMeta::new(Label::Malware)
                    .family(fam)
                    .source(f.clone()),
            )
        })
        .collect();
    let n_malware = items.len();
    store.ingest_batch(&items).unwrap();
    let benign: Vec<_> = corpus
        .iter()
        .filter(|(f, _)| !f.starts_with("malware/"))
        .collect();
    println!(
        "\n## Benign apps ({}) scanned against a store of the {n_malware} malware/ samples\n",
        benign.len()
    );
    println!(
        "| cutoff | files with any component match | malicious | suspicious | whole | manifest | resources | dex | native |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut results = BTreeMap::new();
    let mut policy_scans: Vec<Vec<Best>> = Vec::new();
    for cutoff in CUTOFFS {
        let (mut any, mut mal, mut sus) = (0, 0, 0);
        let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
        let mut examples = Vec::new();
        for (f, fp) in &benign {
            let opts = ScanOptions {
                cutoff,
                ..ScanOptions::default()
            };
            let v = store.scan(fp, &opts).unwrap();
            dump("benign", f, cutoff, &v, |_| false);
            if cutoff == 100 {
                policy_scans.push(v.nearest.iter().map(best_of).collect());
            }
            let kinds: BTreeSet<&str> = v
                .components
                .iter()
                .filter(|c| c.matched)
                .map(|c| c.kind.as_str())
                .collect();
            if !kinds.is_empty() {
                any += 1;
            }
            for k in &kinds {
                *by_kind.entry(k.to_string()).or_default() += 1;
            }
            match v.verdict {
                VerdictKind::Malicious => {
                    mal += 1;
                    examples.push(format!("{f}: malicious: {}", v.reason));
                }
                VerdictKind::Suspicious => {
                    sus += 1;
                    examples.push(format!("{f}: suspicious: {}", v.reason));
                }
                VerdictKind::NoMatch => {}
            }
        }
        let k = |x: &str| by_kind.get(x).copied().unwrap_or(0);
        println!(
            "| < {cutoff} | {any} | {mal} | {sus} | {} | {} | {} | {} | {} |",
            k(KINDS[0]),
            k(KINDS[1]),
            k(KINDS[2]),
            k(KINDS[3]),
            k(KINDS[4])
        );
        results.insert(cutoff, (mal, sus, examples));
    }
    for (cutoff, (_, _, ex)) in &results {
        for e in ex.iter().take(15) {
            println!("- cutoff {cutoff}: {e}");
        }
    }
    // The policy model, re-thresholded from the cutoff-100 scans, gives the store's own
    // verdict counts at every cutoff (P7 is what `Store::scan` implements).
    for (p, cutoff, mal, any) in compare_policies("benign files", &policy_scans) {
        if p == Policy::P7 {
            let (m, s, _) = &results[&cutoff];
            assert_eq!(
                (mal, any),
                (*m, m + s),
                "P7 at {cutoff}: model vs Store::scan"
            );
        }
    }
    // Ceilings (measured: see docs/DETECTION.md).
    assert_eq!(
        results[&30].0, 0,
        "cutoff 30: benign files judged malicious"
    );
    assert!(
        results[&30].1 <= 2,
        "cutoff 30: {} benign files suspicious",
        results[&30].1
    );
    assert!(
        results[&50].0 <= 2,
        "cutoff 50: {} benign files malicious",
        results[&50].0
    );
    assert!(
        results[&50].1 <= 3,
        "cutoff 50: {} benign files suspicious",
        results[&50].1
    );
}
