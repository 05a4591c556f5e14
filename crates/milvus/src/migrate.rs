//! Copying an apksift store between the embedded engine and Milvus, then checking the copy.
//!
//! Works at the engine level, collection by collection, so it copies whatever the store
//! holds (`samples`, `components`, …) without knowing the domain: rows are read in key order
//! in pages and upserted in batches; afterwards every collection's row count is compared and
//! a sample of rows is searched on both sides, on every TLSH field, expecting the same
//! (key, distance) lists.

use std::collections::BTreeMap;

use apksift_index::{Batch, Database, QueryVector, Row, Schema, SearchParams, Value};

use crate::expr::quote;
use crate::{MilvusEngine, Result};

/// Rows read and written per step.
pub const PAGE: usize = 2000;

/// One side of a migration.
pub enum Side<'a> {
    /// An embedded store (`apksift_index::Database`).
    Embedded(&'a Database),
    /// A Milvus server.
    Milvus(&'a MilvusEngine),
}

impl Side<'_> {
    fn collections(&self) -> Result<Vec<String>> {
        Ok(match self {
            Side::Embedded(d) => d.list_collections(),
            Side::Milvus(m) => m.list_collections()?,
        })
    }
    fn schema(&self, c: &str) -> Result<Schema> {
        Ok(match self {
            Side::Embedded(d) => d.describe(c)?.schema,
            Side::Milvus(m) => m.describe(c)?,
        })
    }
    fn count(&self, c: &str) -> Result<u64> {
        Ok(match self {
            Side::Embedded(d) => d.count(c)?,
            Side::Milvus(m) => m.count(c)?,
        })
    }
    fn create(&self, c: &str, s: Schema) -> Result<()> {
        match self {
            Side::Embedded(d) => match d.create_collection(c, s) {
                Ok(()) | Err(apksift_index::Error::AlreadyExists(_)) => Ok(()),
                Err(e) => Err(e.into()),
            },
            Side::Milvus(m) => match m.create_collection(c, s) {
                Ok(()) | Err(crate::Error::AlreadyExists(_)) => Ok(()),
                Err(e) => Err(e),
            },
        }
    }
    fn page(
        &self,
        c: &str,
        schema: &Schema,
        after: Option<&str>,
    ) -> Result<Vec<(String, BTreeMap<String, Value>)>> {
        let fields: Vec<String> = schema.fields.iter().map(|f| f.name.clone()).collect();
        let filter = after.map(|k| format!("{} > {}", schema.primary_key, quote(k)));
        Ok(match self {
            Side::Embedded(d) => d.query(c, filter.as_deref(), &fields, PAGE, 0)?,
            Side::Milvus(m) => m.query(c, filter.as_deref(), &fields, PAGE, 0)?,
        })
    }
    fn upsert(&self, c: &str, b: Batch) -> Result<()> {
        match self {
            Side::Embedded(d) => {
                d.upsert(c, b)?;
            }
            Side::Milvus(m) => m.upsert(c, b)?,
        }
        Ok(())
    }
    fn search(
        &self,
        c: &str,
        f: &str,
        q: &[QueryVector],
        p: &SearchParams,
    ) -> Result<Vec<Vec<(String, u32)>>> {
        let r = match self {
            Side::Embedded(d) => d.search(c, f, q, p)?,
            Side::Milvus(m) => m.search(c, f, q, p)?,
        };
        Ok(r.hits
            .into_iter()
            .map(|h| h.into_iter().map(|h| (h.key, h.distance as u32)).collect())
            .collect())
    }
    /// A description for messages.
    pub fn location(&self) -> String {
        match self {
            Side::Embedded(d) => d.location(),
            Side::Milvus(m) => m.location(),
        }
    }
}

/// What a migration did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Per collection: (name, rows copied, rows at the source, rows at the destination).
    pub collections: Vec<(String, u64, u64, u64)>,
    /// Searches compared.
    pub searches: u64,
    /// Searches whose (key, distance) lists differed, with a description.
    pub mismatches: Vec<String>,
}

impl Report {
    /// True when the counts agree and every sampled search agreed.
    pub fn ok(&self) -> bool {
        self.mismatches.is_empty() && self.collections.iter().all(|c| c.2 == c.3)
    }
}

/// Copies every collection of `from` into `to` (creating them as needed; existing rows with
/// the same keys are replaced), calling `progress(collection, rows done, rows total)` along
/// the way, then checks counts and `sample` searches per TLSH field (k = 10).
pub fn migrate(
    from: &Side<'_>,
    to: &Side<'_>,
    sample: usize,
    progress: &mut dyn FnMut(&str, u64, u64),
) -> Result<Report> {
    let mut report = Report::default();
    let mut probes: Vec<(String, String, apksift_tlsh::Digest)> = Vec::new();
    for c in from.collections()? {
        let schema = from.schema(&c)?;
        to.create(&c, schema.clone())?;
        let total = from.count(&c)?;
        let tlsh: Vec<String> = crate::layout::tlsh_fields(&schema);
        let every = (total / sample.max(1) as u64).max(1);
        let mut done = 0u64;
        let mut after: Option<String> = None;
        progress(&c, 0, total);
        loop {
            let page = from.page(&c, &schema, after.as_deref())?;
            if page.is_empty() {
                break;
            }
            after = page.last().map(|r| r.0.clone());
            let rows: Vec<Row> = page
                .into_iter()
                .map(|(key, fields)| Row {
                    key,
                    fields: fields
                        .into_iter()
                        .filter(|(_, v)| !matches!(v, Value::Null))
                        .collect(),
                })
                .collect();
            for (i, r) in rows.iter().enumerate() {
                if (done + i as u64).is_multiple_of(every) && probes.len() < sample * 4 {
                    for f in &tlsh {
                        if let Some(Value::Tlsh(d)) = r.fields.get(f) {
                            probes.push((c.clone(), f.clone(), *d));
                        }
                    }
                }
            }
            let n = rows.len() as u64;
            to.upsert(&c, Batch::from_rows(&schema, &rows)?)?;
            done += n;
            progress(&c, done, total.max(done));
        }
        let after_count = to.count(&c)?;
        report
            .collections
            .push((c.clone(), done, total, after_count));
    }
    let p = SearchParams {
        k: 10,
        ..SearchParams::default()
    };
    for (c, f, d) in probes {
        let q = [QueryVector::Tlsh(d)];
        let a = from.search(&c, &f, &q, &p)?;
        let b = to.search(&c, &f, &q, &p)?;
        report.searches += 1;
        if a != b {
            report.mismatches.push(format!(
                "{c}.{f} {}: source {:?}, destination {:?}",
                d.to_canonical(),
                a.first(),
                b.first()
            ));
        }
    }
    Ok(report)
}
