//! Scanning a fingerprint against the store: the verdict and its policy
//! (`docs/DETECTION.md`).

use std::collections::{BTreeMap, HashMap};

use apksift_fingerprint::{ComponentKind, Fingerprint};
use apksift_index::{QueryVector, SearchParams, Value};
use apksift_tlsh::Digest;
use serde::Serialize;

use crate::meta::{Label, ThreatLevel};
use crate::rates::{self, PaperRates};
use crate::schema::{COMPONENTS, SAMPLES};
use crate::store::{Store, kind_name, v_label, v_str, v_threat};
use crate::{Error, Result};

/// Default cutoff of `scan` (match rule `distance < cutoff`); see `docs/DETECTION.md`.
pub const DEFAULT_CUTOFF: u32 = 50;
/// Largest cutoff accepted (above the largest TLSH distance, 2473).
pub const MAX_CUTOFF: u32 = 2500;
/// A single weak component (manifest, resources or a native library) raises `suspicious`
/// only below this distance (and below the cutoff); two weak components matching the same
/// sample raise it at the cutoff. See `docs/DETECTION.md`.
pub const WEAK_SINGLE_CUTOFF: u32 = 30;
/// The match rule, as reported in every verdict.
pub const MATCH_RULE: &str = "distance < cutoff";

/// Options of [`Store::scan`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScanOptions {
    /// A component matches a stored one when their TLSH distance is **< cutoff** (the TLSH
    /// paper's convention, so its rates apply). 1..=2500; default [`DEFAULT_CUTOFF`].
    pub cutoff: u32,
    /// Nearest stored digests looked up per component (1..=1000; default 5).
    pub k: usize,
    /// Most samples listed in [`Verdict::nearest`] (default 10).
    pub max_neighbours: usize,
    /// Only consider stored samples matching this filter expression. It may use the fields
    /// both collections have: `label`, `family`, `threat` (e.g. `label == "malware"`).
    pub filter: Option<String>,
    /// Ignore these stored samples (keys), e.g. the scanned file itself.
    pub exclude: Vec<String>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            cutoff: DEFAULT_CUTOFF,
            k: 5,
            max_neighbours: 10,
            filter: None,
            exclude: Vec::new(),
        }
    }
}

/// The outcome class of a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    /// Nothing known-bad matched (or the file is a known benign sample).
    NoMatch,
    /// Weak evidence only (manifest/resources/native libraries), or a match with a
    /// grayware/unknown sample.
    Suspicious,
    /// The exact SHA-256, the whole file or a dex file of a sample labelled malware matched.
    Malicious,
}

impl VerdictKind {
    /// `malicious`, `suspicious` or `no_match`.
    pub fn name(self) -> &'static str {
        match self {
            VerdictKind::Malicious => "malicious",
            VerdictKind::Suspicious => "suspicious",
            VerdictKind::NoMatch => "no_match",
        }
    }
}

/// One stored component close to a scanned component.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentHit {
    /// Key of the stored sample.
    pub sha256: String,
    /// TLSH distance (`tlsh.diff`, with the length term).
    pub distance: u32,
    /// The stored component's entry name (dex and native components).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_name: Option<String>,
    /// The stored sample's label.
    pub label: Label,
    /// The stored sample's family.
    pub family: Option<String>,
    /// The stored sample's threat level.
    pub threat: Option<ThreatLevel>,
    /// `distance < cutoff`.
    pub within_cutoff: bool,
}

/// How one component of the scanned file compared with the store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentResult {
    /// `whole`, `manifest`, `resources`, `dex:<name>` or `native:<name>`.
    pub component: String,
    /// `whole`, `manifest`, `resources`, `dex` or `native`.
    pub kind: String,
    /// Entry name (not for `whole`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its TLSH digest.
    pub tlsh: Option<Digest>,
    /// Why it has no digest (`too short`, `too little variety`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_digest: Option<String>,
    /// Some stored component is within the cutoff.
    pub matched: bool,
    /// The nearest stored components (at most `k`), nearest first, within the cutoff or not.
    pub nearest: Vec<ComponentHit>,
}

/// One way a stored sample matched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Via {
    /// The scanned component (`sha256` for an exact file match, else as in
    /// [`ComponentResult::component`]).
    pub component: String,
    /// Its distance.
    pub distance: u32,
    /// The stored component's entry name (dex and native).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_name: Option<String>,
}

/// A stored sample near the scanned file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Neighbour {
    /// Key of the stored sample (its SHA-256 for APKs).
    pub sha256: String,
    /// Family.
    pub family: Option<String>,
    /// Threat level.
    pub threat: Option<ThreatLevel>,
    /// Label.
    pub label: Label,
    /// Source.
    pub source: Option<String>,
    /// Package name.
    pub package: Option<String>,
    /// Smallest distance over the components that compared.
    pub distance: u32,
    /// Some component is within the cutoff (or the SHA-256 is equal).
    pub within_cutoff: bool,
    /// Every component comparison with this sample, nearest first.
    pub via: Vec<Via>,
}

/// The answer of [`Store::scan`]. `apksift scan --json` prints exactly this, one object per
/// file, and the HTTP API returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The file as the caller named it (set by the CLI/API; `None` from [`Store::scan`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// SHA-256 of the scanned file.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its whole-file TLSH.
    pub tlsh: Option<Digest>,
    /// Its package name.
    pub package: Option<String>,
    /// `malicious`, `suspicious` or `no_match`.
    pub verdict: VerdictKind,
    /// One sentence on why.
    pub reason: String,
    /// Family of the sample that decided the verdict.
    pub family: Option<String>,
    /// Threat level of the sample that decided the verdict.
    pub threat: Option<ThreatLevel>,
    /// Label of the sample that decided the verdict.
    pub label: Option<Label>,
    /// Key of the sample that decided the verdict (also set for an exact benign match).
    pub matched_sample: Option<String>,
    /// The file's SHA-256 is stored.
    pub exact_match: bool,
    /// The cutoff used.
    pub cutoff: u32,
    /// Always `"distance < cutoff"`.
    pub match_rule: &'static str,
    /// What the TLSH paper measured for this cutoff.
    pub paper_rates: PaperRates,
    /// The nearest stored samples, nearest first (at most `max_neighbours`).
    pub nearest: Vec<Neighbour>,
    /// Every component of the scanned file and how it compared.
    pub components: Vec<ComponentResult>,
    /// Problems with the scanned file (not a ZIP, manifest unreadable, anomalies...).
    pub warnings: Vec<String>,
}

impl Verdict {
    /// True when the verdict is `malicious` or `suspicious` (the CLI's exit code 1).
    pub fn is_match(&self) -> bool {
        self.verdict != VerdictKind::NoMatch
    }
}

/// How strong a match through a component kind is (`docs/DETECTION.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Strength {
    /// Manifest, resources, native libraries: shared by unrelated apps (templates, support
    /// libraries, common native libraries).
    Weak,
    /// Whole file or a dex file: the app's code.
    Strong,
}

fn kind_of(component: &str) -> &str {
    component.split(':').next().unwrap_or(component)
}

fn strength(kind: &str) -> Strength {
    match kind {
        "whole" | "dex" | "sha256" => Strength::Strong,
        _ => Strength::Weak,
    }
}

struct Query {
    component: String,
    kind: &'static str,
    name: Option<String>,
    digest: Option<Digest>,
    no_digest: Option<String>,
}

fn queries(fp: &Fingerprint) -> Vec<Query> {
    let mut q = vec![Query {
        component: "whole".into(),
        kind: "whole",
        name: None,
        digest: fp.tlsh,
        no_digest: fp.tlsh_error.clone(),
    }];
    let mut seen_manifest = false;
    let mut seen_resources = false;
    for c in &fp.components {
        let kind = kind_name(c.kind);
        let component = match c.kind {
            ComponentKind::Manifest | ComponentKind::Resources => {
                let seen = if c.kind == ComponentKind::Manifest {
                    &mut seen_manifest
                } else {
                    &mut seen_resources
                };
                if *seen {
                    // Duplicate entry: only the first is compared (as stored).
                    continue;
                }
                *seen = true;
                kind.to_string()
            }
            ComponentKind::Dex | ComponentKind::Native => format!("{kind}:{}", c.name),
        };
        q.push(Query {
            component,
            kind,
            name: Some(c.name.clone()),
            digest: c.tlsh,
            no_digest: c.tlsh_error.clone(),
        });
    }
    q
}

fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        if ch == '"' || ch == '\\' {
            o.push('\\');
        }
        o.push(ch);
    }
    o.push('"');
    o
}

fn combine(parts: &[Option<String>]) -> Option<String> {
    let v: Vec<String> = parts.iter().flatten().map(|p| format!("({p})")).collect();
    (!v.is_empty()).then(|| v.join(" and "))
}

fn exclusion(field: &str, keys: &[String]) -> Option<String> {
    (!keys.is_empty()).then(|| {
        format!(
            "{field} not in [{}]",
            keys.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ")
        )
    })
}

/// A raw hit before sample metadata is attached.
struct RawHit {
    query: usize,
    sample: String,
    distance: u32,
    stored_name: Option<String>,
}

impl Store {
    /// Scans a fingerprint: exact SHA-256 lookup, then the nearest stored digests of each
    /// component (whole file, manifest, resources, every dex and native library), then the
    /// verdict policy of `docs/DETECTION.md`.
    pub fn scan(&self, fp: &Fingerprint, opts: &ScanOptions) -> Result<Verdict> {
        if opts.cutoff == 0 || opts.cutoff > MAX_CUTOFF {
            return Err(Error::invalid(format!(
                "cutoff {} must be between 1 and {MAX_CUTOFF} (match rule: {MATCH_RULE})",
                opts.cutoff
            )));
        }
        if opts.k == 0 || opts.k > 1000 {
            return Err(Error::invalid(format!(
                "k {} must be between 1 and 1000",
                opts.k
            )));
        }
        let exclude: Vec<String> = opts
            .exclude
            .iter()
            .map(|k| crate::meta::normalize_key(k))
            .collect::<Result<_>>()?;
        let qs = queries(fp);
        // Every read of this scan goes through one view: a snapshot of both collections on
        // the embedded engine; on Milvus separate requests (see `backend`), where the rule
        // that a component hit only counts when its sample row exists keeps the verdict
        // right.
        let view = self.backend().view();
        let sample_filter = combine(&[opts.filter.clone(), exclusion("key", &exclude)]);

        let mut raw: Vec<RawHit> = Vec::new();
        // Exact file match.
        let sha = fp.sha256.to_ascii_lowercase();
        let exact_row = if exclude.contains(&sha) {
            None
        } else {
            view.get(SAMPLES, std::slice::from_ref(&sha), &["label".to_string()])?
                .pop()
                .flatten()
        };
        // Optional user filter applies to the exact match too.
        let exact = match (&exact_row, &opts.filter) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(_), Some(f)) => {
                let flt = format!("({f}) and key == {}", quote(&sha));
                !view.query(SAMPLES, Some(&flt), &[], 1, 0)?.is_empty()
            }
        };

        // Sample-level fields.
        for field in ["whole", "manifest", "resources"] {
            let idx: Vec<usize> = (0..qs.len())
                .filter(|&i| qs[i].kind == field && qs[i].digest.is_some())
                .collect();
            if idx.is_empty() {
                continue;
            }
            let vectors: Vec<QueryVector> = idx
                .iter()
                .filter_map(|&i| qs[i].digest.map(QueryVector::Tlsh))
                .collect();
            let params = SearchParams {
                k: opts.k,
                filter: sample_filter.clone(),
                ..SearchParams::default()
            };
            let res = view.search(SAMPLES, field, &vectors, &params)?;
            for (qi, hits) in idx.iter().zip(res.hits) {
                for h in hits {
                    raw.push(RawHit {
                        query: *qi,
                        sample: h.key,
                        distance: h.distance as u32,
                        stored_name: None,
                    });
                }
            }
        }
        // Components.
        for kind in ["dex", "native"] {
            let idx: Vec<usize> = (0..qs.len())
                .filter(|&i| qs[i].kind == kind && qs[i].digest.is_some())
                .collect();
            if idx.is_empty() {
                continue;
            }
            let vectors: Vec<QueryVector> = idx
                .iter()
                .filter_map(|&i| qs[i].digest.map(QueryVector::Tlsh))
                .collect();
            let params = SearchParams {
                k: opts.k,
                filter: combine(&[
                    Some(format!("kind == {}", quote(kind))),
                    opts.filter.clone(),
                    exclusion("sample", &exclude),
                ]),
                output_fields: vec!["sample".into(), "name".into()],
                ..SearchParams::default()
            };
            let res = view.search(COMPONENTS, "tlsh", &vectors, &params)?;
            for (qi, hits) in idx.iter().zip(res.hits) {
                for h in hits {
                    let Some(sample) = h.fields.get("sample").and_then(|v| match v {
                        Value::Str(s) => Some(s.clone()),
                        _ => None,
                    }) else {
                        continue;
                    };
                    raw.push(RawHit {
                        query: *qi,
                        sample,
                        distance: h.distance as u32,
                        stored_name: h.fields.get("name").and_then(|v| match v {
                            Value::Str(s) => Some(s.clone()),
                            _ => None,
                        }),
                    });
                }
            }
        }

        // Sample metadata for every sample hit.
        let mut keys: Vec<String> = raw.iter().map(|h| h.sample.clone()).collect();
        if exact {
            keys.push(sha.clone());
        }
        keys.sort();
        keys.dedup();
        let fields: Vec<String> = ["label", "family", "threat", "source", "package"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let rows = view.get(SAMPLES, &keys, &fields)?;
        let meta: HashMap<String, BTreeMap<String, Value>> = keys
            .into_iter()
            .zip(rows)
            .filter_map(|(k, r)| r.map(|r| (k, r)))
            .collect();

        let cutoff = opts.cutoff;
        let mut results: Vec<ComponentResult> = qs
            .iter()
            .map(|q| ComponentResult {
                component: q.component.clone(),
                kind: q.kind.to_string(),
                name: q.name.clone(),
                tlsh: q.digest,
                no_digest: q.no_digest.clone(),
                matched: false,
                nearest: Vec::new(),
            })
            .collect();
        let mut neigh: HashMap<String, Neighbour> = HashMap::new();
        let mk_neighbour = |key: &str, m: &BTreeMap<String, Value>| Neighbour {
            sha256: key.to_string(),
            family: v_str(m, "family"),
            threat: v_threat(m),
            label: v_label(m),
            source: v_str(m, "source"),
            package: v_str(m, "package"),
            distance: u32::MAX,
            within_cutoff: false,
            via: Vec::new(),
        };
        if exact && let Some(m) = meta.get(&sha) {
            let mut n = mk_neighbour(&sha, m);
            n.distance = 0;
            n.within_cutoff = true;
            n.via.push(Via {
                component: "sha256".into(),
                distance: 0,
                stored_name: None,
            });
            neigh.insert(sha.clone(), n);
        }
        for h in raw {
            // A component row whose sample row is gone (deleted, or a write interrupted
            // before its sample row) is not reported.
            let Some(m) = meta.get(&h.sample) else {
                continue;
            };
            let within = h.distance < cutoff;
            let r = &mut results[h.query];
            r.matched |= within;
            r.nearest.push(ComponentHit {
                sha256: h.sample.clone(),
                distance: h.distance,
                stored_name: h.stored_name.clone(),
                label: v_label(m),
                family: v_str(m, "family"),
                threat: v_threat(m),
                within_cutoff: within,
            });
            let n = neigh
                .entry(h.sample.clone())
                .or_insert_with(|| mk_neighbour(&h.sample, m));
            n.distance = n.distance.min(h.distance);
            n.within_cutoff |= within;
            n.via.push(Via {
                component: qs[h.query].component.clone(),
                distance: h.distance,
                stored_name: h.stored_name,
            });
        }
        for r in &mut results {
            r.nearest.sort_by(|a, b| {
                (a.distance, &a.sha256, &a.stored_name).cmp(&(
                    b.distance,
                    &b.sha256,
                    &b.stored_name,
                ))
            });
            r.nearest.truncate(opts.k);
        }
        let mut nearest: Vec<Neighbour> = neigh.into_values().collect();
        for n in &mut nearest {
            n.via
                .sort_by(|a, b| (a.distance, &a.component).cmp(&(b.distance, &b.component)));
        }
        nearest.sort_by(|a, b| (a.distance, &a.sha256).cmp(&(b.distance, &b.sha256)));

        let (verdict, decider, reason) = decide(exact, &sha, &nearest, cutoff);
        let (family, threat, label) = match decider
            .as_ref()
            .and_then(|k| nearest.iter().find(|n| &n.sha256 == k))
        {
            Some(n) => (n.family.clone(), n.threat, Some(n.label)),
            None => (None, None, None),
        };
        nearest.truncate(opts.max_neighbours);

        let mut warnings = Vec::new();
        if let Some(e) = &fp.zip.error {
            warnings.push(format!("ZIP structure: {e}"));
        }
        if let Some(e) = &fp.manifest_error {
            warnings.push(format!("manifest: {e}"));
        }
        if !fp.anomalies.is_empty() {
            let mut codes: Vec<&str> = fp.anomalies.iter().map(|a| a.code.as_str()).collect();
            codes.sort();
            codes.dedup();
            warnings.push(format!(
                "{} anomalies: {}",
                fp.anomalies.len(),
                codes.join(", ")
            ));
        }
        Ok(Verdict {
            file: None,
            sha256: sha,
            size: fp.size,
            tlsh: fp.tlsh,
            package: fp.manifest.as_ref().and_then(|m| m.package.clone()),
            verdict,
            reason,
            family,
            threat,
            label,
            matched_sample: decider,
            exact_match: exact,
            cutoff,
            match_rule: MATCH_RULE,
            paper_rates: rates::for_cutoff(cutoff),
            nearest,
            components: results,
            warnings,
        })
    }
}

fn short(k: &str) -> &str {
    k.get(..16).unwrap_or(k)
}

fn describe(n: &Neighbour) -> String {
    let fam = n.family.as_deref().unwrap_or("unnamed");
    let threat = n
        .threat
        .map(|t| format!(", threat {t}"))
        .unwrap_or_default();
    format!("{fam} sample {}… ({}{threat})", short(&n.sha256), n.label)
}

/// The verdict policy: returns the verdict, the key of the deciding sample and the reason.
fn decide(
    exact: bool,
    sha: &str,
    nearest: &[Neighbour],
    cutoff: u32,
) -> (VerdictKind, Option<String>, String) {
    if exact && let Some(n) = nearest.iter().find(|n| n.sha256 == sha) {
        return match n.label {
            Label::Malware => (
                VerdictKind::Malicious,
                Some(n.sha256.clone()),
                format!("exact SHA-256 match: {}", describe(n)),
            ),
            Label::Benign => (
                VerdictKind::NoMatch,
                Some(n.sha256.clone()),
                format!(
                    "exact SHA-256 match with a known benign sample: {}",
                    describe(n)
                ),
            ),
            Label::Grayware | Label::Unknown => (
                VerdictKind::Suspicious,
                Some(n.sha256.clone()),
                format!("exact SHA-256 match: {}", describe(n)),
            ),
        };
    }
    // Evidence per stored sample (docs/DETECTION.md, policy "P7"):
    //   whole file or a dex < cutoff                      -> strong
    //   two or more of manifest/resources/native < cutoff -> weak, agreeing
    //   one of them < min(cutoff, WEAK_SINGLE_CUTOFF)     -> weak, single
    // malware + strong -> malicious; any other evidence -> suspicious; benign -> nothing.
    let mut best: Option<(VerdictKind, Strength, u32, &Neighbour, &Via)> = None;
    for n in nearest {
        if n.label == Label::Benign {
            continue;
        }
        let within: Vec<&Via> = n.via.iter().filter(|v| v.distance < cutoff).collect();
        let strong = within
            .iter()
            .filter(|v| strength(kind_of(&v.component)) == Strength::Strong)
            .min_by_key(|v| v.distance);
        let weak_kinds: std::collections::BTreeSet<&str> = within
            .iter()
            .map(|v| kind_of(&v.component))
            .filter(|k| strength(k) == Strength::Weak)
            .collect();
        let weak_best = within
            .iter()
            .filter(|v| strength(kind_of(&v.component)) == Strength::Weak)
            .min_by_key(|v| v.distance);
        let cand = match (strong, weak_best) {
            (Some(v), _) => Some((
                if n.label == Label::Malware {
                    VerdictKind::Malicious
                } else {
                    VerdictKind::Suspicious
                },
                Strength::Strong,
                *v,
            )),
            (None, Some(v))
                if weak_kinds.len() >= 2 || v.distance < cutoff.min(WEAK_SINGLE_CUTOFF) =>
            {
                Some((VerdictKind::Suspicious, Strength::Weak, *v))
            }
            _ => None,
        };
        if let Some((vk, s, v)) = cand {
            let better = match &best {
                None => true,
                Some((bv, bs, bd, _, _)) => {
                    (vk, s, std::cmp::Reverse(v.distance)) > (*bv, *bs, std::cmp::Reverse(*bd))
                }
            };
            if better {
                best = Some((vk, s, v.distance, n, v));
            }
        }
    }
    match best {
        Some((vk, _, d, n, v)) => (
            vk,
            Some(n.sha256.clone()),
            format!(
                "{} is {d} from {}{}",
                v.component,
                describe(n),
                v.stored_name
                    .as_ref()
                    .map(|s| format!(" [{s}]"))
                    .unwrap_or_default()
            ),
        ),
        None => {
            let why = match nearest.first() {
                Some(n) => format!(
                    "no stored malware, grayware or unknown sample within distance < {cutoff}; nearest: {} at {}",
                    describe(n),
                    n.distance
                ),
                None => "no stored sample to compare with".into(),
            };
            (VerdictKind::NoMatch, None, why)
        }
    }
}
