//! Direct TLSH digest look-ups (`apksift search`).

use apksift_index::metric::Metric;
use apksift_index::{QueryVector, SearchParams, Value};
use apksift_tlsh::Digest;
use serde::Serialize;

use crate::meta::{Label, ThreatLevel};
use crate::schema::{COMPONENTS, SAMPLES};
use crate::store::{Store, v_label, v_str, v_threat, v_tlsh};
use crate::{Error, Result};

/// Which stored digests a search compares with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchField {
    /// Whole-file digests of `samples` (APKs and imported records).
    #[default]
    Whole,
    /// `AndroidManifest.xml` digests.
    Manifest,
    /// `resources.arsc` digests.
    Resources,
    /// Every stored `classes*.dex` digest (`components`).
    Dex,
    /// Every stored native library digest (`components`).
    Native,
}

impl SearchField {
    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            SearchField::Whole => "whole",
            SearchField::Manifest => "manifest",
            SearchField::Resources => "resources",
            SearchField::Dex => "dex",
            SearchField::Native => "native",
        }
    }
}

impl std::str::FromStr for SearchField {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "whole" | "file" => SearchField::Whole,
            "manifest" => SearchField::Manifest,
            "resources" => SearchField::Resources,
            "dex" => SearchField::Dex,
            "native" => SearchField::Native,
            other => {
                return Err(Error::invalid(format!(
                    "unknown search field {other:?}: use whole|manifest|resources|dex|native"
                )));
            }
        })
    }
}

/// Options of [`Store::search_digests`].
#[derive(Debug, Clone, PartialEq)]
pub struct SearchOptions {
    /// Results per digest (1..=16,384; default 10).
    pub k: usize,
    /// Only results with `distance < cutoff` (the TLSH paper's convention); `None`: the k
    /// nearest whatever their distance.
    pub cutoff: Option<u32>,
    /// Which stored digests to compare with.
    pub field: SearchField,
    /// Use `diffxlen` (no file-length term) instead of `diff`.
    pub xlen: bool,
    /// Filter expression over `label`, `family`, `threat` (and, for whole/manifest/resources,
    /// every `samples` field such as `source`).
    pub filter: Option<String>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            k: 10,
            cutoff: None,
            field: SearchField::Whole,
            xlen: false,
            filter: None,
        }
    }
}

/// One result of [`Store::search_digests`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    /// Key of the stored sample.
    pub sha256: String,
    /// TLSH distance.
    pub distance: u32,
    /// The stored digest.
    pub tlsh: Option<Digest>,
    /// The stored component's name (dex and native searches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// Label of the sample.
    pub label: Label,
    /// Family of the sample.
    pub family: Option<String>,
    /// Threat level of the sample.
    pub threat: Option<ThreatLevel>,
    /// Source of the sample.
    pub source: Option<String>,
}

impl Store {
    /// For each digest, the nearest stored digests, ordered by (distance, key): exact TLSH
    /// distance over every stored digest of the chosen field.
    pub fn search_digests(
        &self,
        digests: &[Digest],
        opts: &SearchOptions,
    ) -> Result<Vec<Vec<Match>>> {
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        if opts.cutoff == Some(0) {
            return Err(Error::invalid(
                "cutoff 0 matches nothing (match rule: distance < cutoff)",
            ));
        }
        let vectors: Vec<QueryVector> = digests.iter().map(|d| QueryVector::Tlsh(*d)).collect();
        let metric = opts.xlen.then_some(Metric::TlshXlen);
        let radius = opts.cutoff.map(f64::from);
        match opts.field {
            SearchField::Whole | SearchField::Manifest | SearchField::Resources => {
                let field = opts.field.name();
                let params = SearchParams {
                    k: opts.k,
                    metric,
                    radius,
                    filter: opts.filter.clone(),
                    output_fields: vec![
                        field.to_string(),
                        "label".into(),
                        "family".into(),
                        "threat".into(),
                        "source".into(),
                    ],
                    ..SearchParams::default()
                };
                let res = self.backend().search(SAMPLES, field, &vectors, &params)?;
                Ok(res
                    .hits
                    .into_iter()
                    .map(|hits| {
                        hits.into_iter()
                            .map(|h| Match {
                                distance: h.distance as u32,
                                tlsh: v_tlsh(&h.fields, field),
                                component: None,
                                label: v_label(&h.fields),
                                family: v_str(&h.fields, "family"),
                                threat: v_threat(&h.fields),
                                source: v_str(&h.fields, "source"),
                                sha256: h.key,
                            })
                            .collect()
                    })
                    .collect())
            }
            SearchField::Dex | SearchField::Native => {
                let kind = opts.field.name();
                let filter = match &opts.filter {
                    Some(f) => format!("kind == \"{kind}\" and ({f})"),
                    None => format!("kind == \"{kind}\""),
                };
                // One view for the component search and the sample rows (a snapshot on the
                // embedded engine; on Milvus two requests, and a component whose sample row
                // is gone by the second one is dropped).
                let view = self.backend().view();
                let params = SearchParams {
                    k: opts.k,
                    metric,
                    radius,
                    filter: Some(filter),
                    output_fields: vec![
                        "tlsh".into(),
                        "sample".into(),
                        "name".into(),
                        "label".into(),
                        "family".into(),
                        "threat".into(),
                    ],
                    ..SearchParams::default()
                };
                let res = view.search(COMPONENTS, "tlsh", &vectors, &params)?;
                let mut out = Vec::with_capacity(res.hits.len());
                for hits in res.hits {
                    let keys: Vec<String> = hits
                        .iter()
                        .map(|h| v_str(&h.fields, "sample").unwrap_or_default())
                        .collect();
                    let rows = view.get(SAMPLES, &keys, &["source".to_string()])?;
                    let mut v = Vec::with_capacity(hits.len());
                    for ((h, key), row) in hits.into_iter().zip(keys).zip(rows) {
                        // Only components whose sample row exists.
                        let Some(row) = row else { continue };
                        v.push(Match {
                            sha256: key,
                            distance: h.distance as u32,
                            tlsh: v_tlsh(&h.fields, "tlsh"),
                            component: v_str(&h.fields, "name"),
                            label: v_label(&h.fields),
                            family: v_str(&h.fields, "family"),
                            threat: v_threat(&h.fields),
                            source: match row.get("source") {
                                Some(Value::Str(s)) => Some(s.clone()),
                                _ => None,
                            },
                        });
                    }
                    out.push(v);
                }
                Ok(out)
            }
        }
    }
}
