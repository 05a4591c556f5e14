//! Importing known digests without the APKs: MalwareBazaar CSV exports, simple CSV/TSV/JSONL
//! (`sha256|sha1|md5,tlsh,family[,label,threat]`) and apksift's `all_digests.csv`.
//!
//! Every data row is accounted for in the [`ImportReport`]: stored (with or without a
//! digest), or skipped with a line number and a reason.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};

use apksift_tlsh::Digest;
use serde::Serialize;

use crate::meta::{
    Label, MAX_FAMILY_LEN, MAX_SOURCE_LEN, ThreatLevel, clean_text, normalize_hex, truncate,
};
use crate::schema::SAMPLES;
use crate::store::{SampleRow, Store, WRITE_CHUNK, all_sample_fields, now_unix, sample_from_row};
use crate::{Error, Result};

/// Input format of [`Store::import_digests`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportFormat {
    /// JSONL when the first non-blank line starts with `{`, else CSV/TSV.
    #[default]
    Auto,
    /// Comma- or tab-separated values (the delimiter is detected), with `#` comment lines.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl std::str::FromStr for ImportFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(ImportFormat::Auto),
            "csv" | "tsv" => Ok(ImportFormat::Csv),
            "jsonl" | "ndjson" | "json" => Ok(ImportFormat::Jsonl),
            o => Err(Error::invalid(format!(
                "unknown import format {o:?}: use auto|csv|jsonl"
            ))),
        }
    }
}

/// Options of [`Store::import_digests`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImportOptions {
    /// Label of rows that do not give one (default: `malware`, since digest feeds such as
    /// MalwareBazaar list malware).
    pub label: Option<Label>,
    /// Threat level of rows that do not give one.
    pub threat: Option<ThreatLevel>,
    /// Family of rows that do not give one.
    pub family: Option<String>,
    /// Source of rows without a `source` column (default `malwarebazaar` for MalwareBazaar
    /// exports, else `import`).
    pub source: Option<String>,
}

/// Why one row was skipped, or which field was ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowIssue {
    /// 1-based line number of the row's start.
    pub line: u64,
    /// What was wrong.
    pub message: String,
}

/// Most issues listed in a report (all are counted).
pub const MAX_ISSUES_LISTED: usize = 20;

/// What an import did. `rows == stored + duplicates + skipped`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ImportReport {
    /// Detected layout: `malwarebazaar_csv`, `all_digests_csv`, `csv`, `tsv`, `csv_no_header`,
    /// `jsonl`.
    pub format: String,
    /// Data rows read (comment and blank lines excluded).
    pub rows: u64,
    /// Distinct samples written (inserted or updated).
    pub stored: u64,
    /// Rows (not skipped) with a valid TLSH digest.
    pub with_digest: u64,
    /// Rows (not skipped) without a digest (TNULL, empty or invalid): stored for exact-hash
    /// matches.
    pub without_digest: u64,
    /// Rows whose digest was `TNULL` (the reference's "no digest").
    pub tnull: u64,
    /// Rows whose digest was missing or empty.
    pub empty_digest: u64,
    /// Rows whose digest text was not a valid TLSH digest (listed in `issues`).
    pub invalid_digest: u64,
    /// Rows skipped: neither a usable identifier nor a valid digest, or unreadable.
    pub skipped: u64,
    /// Rows whose key already appeared earlier in this import (the later row wins).
    pub duplicates: u64,
    /// Samples that were already in the store before the import and were updated (their
    /// APK-derived digests are kept).
    pub updated_existing: u64,
    /// Other fields ignored because they were malformed (first_seen, threat, sha256, ...).
    pub field_errors: u64,
    /// Rows (not skipped) per key type (`sha256`, `sha1`, `md5`, `tlsh`, or the import's id type).
    pub key_types: BTreeMap<String, u64>,
    /// The first [`MAX_ISSUES_LISTED`] problems (skipped rows, invalid digests, ignored fields).
    pub issues: Vec<RowIssue>,
}

impl ImportReport {
    fn issue(&mut self, line: u64, message: String) {
        if self.issues.len() < MAX_ISSUES_LISTED {
            self.issues.push(RowIssue { line, message });
        }
    }
}

/// One input row, field by field (before validation).
#[derive(Debug, Default, Clone)]
struct RawRow {
    line: u64,
    sha256: Option<String>,
    sha1: Option<String>,
    md5: Option<String>,
    id_type: Option<String>,
    id: Option<String>,
    tlsh: Option<String>,
    family: Option<String>,
    label: Option<String>,
    labelled: Option<String>,
    threat: Option<String>,
    source: Option<String>,
    first_seen: Option<String>,
    file_type: Option<String>,
    size: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Sha256,
    Sha1,
    Md5,
    IdType,
    Id,
    Tlsh,
    Family,
    Label,
    Labelled,
    Threat,
    Source,
    FirstSeen,
    FileType,
    Size,
}

fn column(name: &str) -> Option<Col> {
    let n = name.trim().trim_matches('"').trim().to_ascii_lowercase();
    Some(match n.as_str() {
        "sha256" | "sha256_hash" | "sha_256" => Col::Sha256,
        "sha1" | "sha1_hash" | "sha_1" => Col::Sha1,
        "md5" | "md5_hash" => Col::Md5,
        "id_type" => Col::IdType,
        "id" => Col::Id,
        "tlsh" | "tlsh_hash" | "digest" => Col::Tlsh,
        "family" | "signature" | "malware_family" => Col::Family,
        "label" | "classification" => Col::Label,
        "labelled" => Col::Labelled,
        "threat" | "threat_level" | "severity" => Col::Threat,
        "source" => Col::Source,
        "first_seen" | "first_seen_utc" | "firstseen" => Col::FirstSeen,
        "file_type" | "file_type_guess" | "file_kind" => Col::FileType,
        "size" | "file_size" => Col::Size,
        _ => return None,
    })
}

impl RawRow {
    fn set(&mut self, c: Col, v: String) {
        let slot = match c {
            Col::Sha256 => &mut self.sha256,
            Col::Sha1 => &mut self.sha1,
            Col::Md5 => &mut self.md5,
            Col::IdType => &mut self.id_type,
            Col::Id => &mut self.id,
            Col::Tlsh => &mut self.tlsh,
            Col::Family => &mut self.family,
            Col::Label => &mut self.label,
            Col::Labelled => &mut self.labelled,
            Col::Threat => &mut self.threat,
            Col::Source => &mut self.source,
            Col::FirstSeen => &mut self.first_seen,
            Col::FileType => &mut self.file_type,
            Col::Size => &mut self.size,
        };
        let v = v.trim();
        if !v.is_empty() {
            *slot = Some(v.to_string());
        }
    }
}

/// Values that mean "no value" in digest feeds.
fn is_null_word(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "" | "n/a" | "na" | "none" | "null" | "no_sig" | "-" | "nan"
    )
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DD[ T]HH:MM:SS[Z]`, `YYYY-MM-DD`, `YYYYMMDD` or unix seconds (UTC).
pub fn parse_time(s: &str) -> Option<i64> {
    let t = s.trim().trim_end_matches('Z').trim_end_matches(" UTC");
    if t.bytes().all(|b| b.is_ascii_digit()) && !t.is_empty() {
        if t.len() == 8 {
            let y: i64 = t[0..4].parse().ok()?;
            let m: i64 = t[4..6].parse().ok()?;
            let d: i64 = t[6..8].parse().ok()?;
            return valid_date(y, m, d).then(|| days_from_civil(y, m, d) * 86_400);
        }
        return t.parse().ok();
    }
    let (date, time) = match t.find([' ', 'T']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let mut dp = date.split('-');
    let y: i64 = dp.next()?.parse().ok()?;
    let m: i64 = dp.next()?.parse().ok()?;
    let d: i64 = dp.next()?.parse().ok()?;
    if dp.next().is_some() || !valid_date(y, m, d) {
        return None;
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if let Some(time) = time {
        let time = time.split('.').next()?;
        let mut tp = time.split(':');
        let h: i64 = tp.next()?.parse().ok()?;
        let mi: i64 = tp.next().unwrap_or("0").parse().ok()?;
        let se: i64 = tp.next().unwrap_or("0").parse().ok()?;
        if !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0..61).contains(&se) {
            return None;
        }
        secs += h * 3600 + mi * 60 + se;
    }
    Some(secs)
}

fn valid_date(y: i64, m: i64, d: i64) -> bool {
    (1970..=9999).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d)
}

enum DigestField {
    Valid(Digest),
    Tnull,
    Empty,
    Invalid(String),
}

fn parse_digest(v: Option<&str>) -> DigestField {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return DigestField::Empty;
    };
    if v.eq_ignore_ascii_case("tnull") {
        return DigestField::Tnull;
    }
    if is_null_word(v) {
        return DigestField::Empty;
    }
    match Digest::parse_lenient(v) {
        Ok(d) => DigestField::Valid(d),
        Err(e) => DigestField::Invalid(format!("invalid TLSH digest {:?}: {e}", truncate(v, 80))),
    }
}

/// Layout knowledge gathered from the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    MalwareBazaar,
    AllDigests,
    Plain,
}

struct Ctx<'a> {
    store: &'a Store,
    opts: &'a ImportOptions,
    flavor: Flavor,
    report: ImportReport,
    seen: HashSet<String>,
    written: HashSet<String>,
    pending: Vec<(SampleRow, u64)>,
    now: i64,
    default_family: Option<String>,
    default_source: Option<String>,
}

impl Ctx<'_> {
    fn row(&mut self, r: RawRow) -> Result<()> {
        self.report.rows += 1;
        let line = r.line;
        // Identifier.
        let mut key: Option<(String, String)> = None;
        let field_error = |rep: &mut ImportReport, msg: String| {
            rep.field_errors += 1;
            rep.issue(line, msg);
        };
        let mut ids: Vec<(&str, String)> = Vec::new();
        if let Some(v) = r.sha256.clone() {
            ids.push(("sha256", v));
        }
        if let (Some(t), Some(id)) = (&r.id_type, &r.id) {
            ids.push((t.as_str(), id.clone()));
        }
        if let Some(v) = r.sha1.clone() {
            ids.push(("sha1", v));
        }
        if let Some(v) = r.md5.clone() {
            ids.push(("md5", v));
        }
        for (ty, id) in ids {
            if is_null_word(&id) {
                continue;
            }
            let ty_l = ty.trim().to_ascii_lowercase();
            let k = match ty_l.as_str() {
                "sha256" => normalize_hex("sha256", &id, 64).map(|h| (h, "sha256".to_string())),
                "sha1" => {
                    normalize_hex("sha1", &id, 40).map(|h| (format!("sha1:{h}"), ty_l.clone()))
                }
                "md5" => normalize_hex("md5", &id, 32).map(|h| (format!("md5:{h}"), ty_l.clone())),
                _ => {
                    let ok_ty = !ty_l.is_empty()
                        && ty_l.len() <= 32
                        && ty_l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                    let id = id.trim();
                    if ok_ty && id.len() <= 400 && !id.chars().any(char::is_control) {
                        // Such ids (cluster labels, ...) need not be unique: the digest
                        // makes the key unique and re-imports idempotent.
                        let tag = match parse_digest(r.tlsh.as_deref()) {
                            DigestField::Valid(d) => format!("#{d}"),
                            _ => String::new(),
                        };
                        Ok((format!("{ty_l}:{id}{tag}"), ty_l.clone()))
                    } else {
                        Err(Error::invalid(format!(
                            "invalid identifier {:?} of type {:?}",
                            truncate(id, 80),
                            truncate(&ty_l, 40)
                        )))
                    }
                }
            };
            match k {
                Ok(k) => {
                    key = Some(k);
                    break;
                }
                Err(e) => field_error(&mut self.report, format!("{e}; ignored")),
            }
        }
        // Digest.
        let digest = match parse_digest(r.tlsh.as_deref()) {
            DigestField::Valid(d) => Some(d),
            DigestField::Tnull => {
                self.report.tnull += 1;
                None
            }
            DigestField::Empty => {
                self.report.empty_digest += 1;
                None
            }
            DigestField::Invalid(msg) => {
                self.report.invalid_digest += 1;
                self.report.issue(line, msg);
                None
            }
        };
        let (key, id_type) = match (key, digest) {
            (Some(k), _) => k,
            (None, Some(d)) => (format!("tlsh:{d}"), "tlsh".to_string()),
            (None, None) => {
                self.report.skipped += 1;
                self.report.issue(
                    line,
                    "skipped: no sha256/sha1/md5/id and no valid TLSH digest".into(),
                );
                return Ok(());
            }
        };
        // Label and family.
        let mut family = r.family.clone().filter(|f| !is_null_word(f));
        let mut label = None;
        if let Some(l) = &r.label {
            match l.parse::<Label>() {
                Ok(x) if !l.trim().is_empty() => label = Some(x),
                _ => {
                    // A label column holding a family name (tlshCluster, all_digests.csv).
                    let unlabelled = r.labelled.as_deref().map(str::trim) == Some("0");
                    if l.to_ascii_lowercase().starts_with("benign") {
                        label = Some(Label::Benign);
                    }
                    if family.is_none() && !unlabelled && !is_null_word(l) {
                        family = Some(l.clone());
                    }
                }
            }
        }
        let label = label.or(self.opts.label).unwrap_or(Label::Malware);
        let family = match clean_text("family", family.as_deref(), MAX_FAMILY_LEN) {
            Ok(f) => f.or_else(|| self.default_family.clone()),
            Err(e) => {
                field_error(&mut self.report, format!("{e}; ignored"));
                self.default_family.clone()
            }
        };
        let threat = match r.threat.as_deref().filter(|t| !is_null_word(t)) {
            None => self.opts.threat,
            Some(t) => match t.parse::<ThreatLevel>() {
                Ok(t) => Some(t),
                Err(e) => {
                    field_error(&mut self.report, format!("{e}; ignored"));
                    self.opts.threat
                }
            },
        };
        let source = match clean_text("source", r.source.as_deref(), MAX_SOURCE_LEN) {
            Ok(s) => s.or_else(|| self.default_source.clone()),
            Err(e) => {
                field_error(&mut self.report, format!("{e}; ignored"));
                self.default_source.clone()
            }
        };
        let first_seen = match r.first_seen.as_deref().filter(|t| !is_null_word(t)) {
            None => None,
            Some(t) => match parse_time(t) {
                Some(v) => Some(v),
                None => {
                    field_error(
                        &mut self.report,
                        format!("unreadable first_seen {:?}; ignored", truncate(t, 40)),
                    );
                    None
                }
            },
        };
        let size = r.size.as_deref().and_then(|s| s.trim().parse::<i64>().ok());
        let file_type = r
            .file_type
            .as_deref()
            .filter(|t| !is_null_word(t))
            .map(|t| truncate(t, 60));
        let row = SampleRow {
            key: key.clone(),
            whole: digest,
            id_type,
            label,
            family,
            threat,
            source,
            first_seen,
            ingested_at: self.now,
            size,
            file_type,
            ..SampleRow::default()
        };
        if digest.is_some() {
            self.report.with_digest += 1;
        } else {
            self.report.without_digest += 1;
        }
        *self
            .report
            .key_types
            .entry(row.id_type.clone())
            .or_default() += 1;
        if !self.seen.insert(key) {
            self.report.duplicates += 1;
        }
        self.pending.push((row, line));
        if self.pending.len() >= WRITE_CHUNK {
            self.write()?;
        }
        Ok(())
    }

    /// Writes the pending rows: the last row of a key wins; a sample already in the store
    /// keeps its APK-derived fields.
    fn write(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut last: HashMap<String, usize> = HashMap::new();
        for (i, (r, _)) in self.pending.iter().enumerate() {
            last.insert(r.key.clone(), i);
        }
        let rows: Vec<SampleRow> = std::mem::take(&mut self.pending)
            .into_iter()
            .enumerate()
            .filter(|(i, (r, _))| last.get(&r.key) == Some(i))
            .map(|(_, (r, _))| r)
            .collect();
        let keys: Vec<String> = rows.iter().map(|r| r.key.clone()).collect();
        let existing = self
            .store
            .backend()
            .get(SAMPLES, &keys, &all_sample_fields())?;
        let mut merged = Vec::with_capacity(rows.len());
        for (mut r, old) in rows.into_iter().zip(existing) {
            let first_write = self.written.insert(r.key.clone());
            if let Some(old) = old {
                if first_write {
                    self.report.updated_existing += 1;
                }
                let o = sample_from_row(r.key.clone(), &old);
                r.whole = r.whole.or(o.whole);
                r.manifest = o.manifest;
                r.resources = o.resources;
                r.dex = o.dex;
                if o.id_type == "sha256" && r.id_type == "sha256" {
                    r.package = o.package;
                    r.version_code = o.version_code;
                    r.cert_sha256 = (!o.cert_sha256.is_empty()).then(|| o.cert_sha256.join(","));
                    r.dex_count = o.dex_count.map(|v| v as i64);
                    r.native_count = o.native_count.map(|v| v as i64);
                    r.anomalies = (!o.anomalies.is_empty()).then(|| o.anomalies.join(","));
                    r.component_keys =
                        (!o.component_keys.is_empty()).then(|| o.component_keys.join("\n"));
                    r.size = r.size.or(o.size.map(|v| v as i64));
                    r.file_type = o.file_type.or(r.file_type);
                }
                r.family = r.family.or(o.family);
                r.threat = r.threat.or(o.threat);
                r.first_seen = match (r.first_seen, o.first_seen) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            merged.push(r);
        }
        self.report.stored = self.written.len() as u64;
        self.store
            .backend()
            .upsert(SAMPLES, crate::store::samples_batch(&merged))?;
        Ok(())
    }
}

/// Reads lines, dropping comment and blank lines outside quoted fields, lifting a commented
/// header (MalwareBazaar writes `# "first_seen_utc","sha256_hash",...`), and removing the
/// blanks that follow a delimiter outside quotes (MalwareBazaar writes `", "`).
struct Prep<R> {
    inner: R,
    delim: u8,
    in_quotes: bool,
    out: Vec<u8>,
    pos: usize,
    /// Input line number of each emitted line (for error messages).
    lines: Vec<u64>,
    line_no: u64,
    eof: bool,
}

impl<R: BufRead> Prep<R> {
    fn clean(&mut self, line: &[u8]) {
        let mut after_delim = false;
        for &b in line {
            if b == b'"' {
                self.in_quotes = !self.in_quotes;
            }
            if !self.in_quotes {
                if after_delim && (b == b' ' || (b == b'\t' && self.delim != b'\t')) {
                    continue;
                }
                after_delim = b == self.delim;
            } else {
                after_delim = false;
            }
            self.out.push(b);
        }
    }

    fn fill(&mut self) -> std::io::Result<()> {
        let mut line = Vec::new();
        while self.pos >= self.out.len() && !self.eof {
            self.out.clear();
            self.pos = 0;
            line.clear();
            let n = self.inner.read_until(b'\n', &mut line)?;
            if n == 0 {
                self.eof = true;
                break;
            }
            self.line_no += 1;
            if !self.in_quotes {
                let t = trim_ascii(&line);
                if t.is_empty() || t.starts_with(b"#") {
                    continue;
                }
                self.lines.push(self.line_no);
            }
            self.clean(&line);
            if !line.ends_with(b"\n") {
                self.out.push(b'\n');
            }
        }
        Ok(())
    }
}

impl<R: BufRead> Read for Prep<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.fill()?;
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let s = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let e = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(s, |e| e + 1);
    &b[s..e]
}

fn split_header(line: &str, delim: u8) -> Vec<String> {
    line.split(delim as char)
        .map(|f| f.trim().trim_matches('"').trim().to_string())
        .collect()
}

impl Store {
    /// Imports digest records into `samples` (see the module docs for the formats and
    /// `docs/ARCHITECTURE.md` for the key scheme). Rows are written in batches as they are
    /// read; an I/O error stops the import after the rows already written.
    pub fn import_digests(
        &self,
        reader: impl Read,
        format: ImportFormat,
        opts: &ImportOptions,
    ) -> Result<ImportReport> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        let default_family = clean_text("family", opts.family.as_deref(), MAX_FAMILY_LEN)?;
        let opt_source = clean_text("source", opts.source.as_deref(), MAX_SOURCE_LEN)?;
        let mut r = BufReader::with_capacity(1 << 16, reader);
        // Look at the start: comments, header, format.
        let mut line_no = 0u64;
        let mut last_comment: Option<String> = None;
        let mut first: Option<(u64, String)> = None;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = r
                .read_until(b'\n', &mut buf)
                .map_err(|e| Error::Read(e.to_string()))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let s = String::from_utf8_lossy(&buf).trim().to_string();
            if s.is_empty() {
                continue;
            }
            if let Some(c) = s.strip_prefix('#') {
                last_comment = Some(c.trim().to_string());
                continue;
            }
            first = Some((line_no, s));
            break;
        }
        let mut ctx = Ctx {
            store: self,
            opts,
            flavor: Flavor::Plain,
            report: ImportReport::default(),
            seen: HashSet::new(),
            written: HashSet::new(),
            pending: Vec::new(),
            now: now_unix(),
            default_family,
            default_source: opt_source.clone(),
        };
        let Some((first_line, first)) = first else {
            ctx.report.format = "empty".into();
            return Ok(ctx.report);
        };
        let jsonl = match format {
            ImportFormat::Jsonl => true,
            ImportFormat::Csv => false,
            ImportFormat::Auto => first.starts_with('{'),
        };
        if jsonl {
            ctx.report.format = "jsonl".into();
            let mut line = first_line;
            let mut text = first;
            loop {
                match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text) {
                    Ok(obj) => {
                        let mut raw = RawRow {
                            line,
                            ..RawRow::default()
                        };
                        for (k, v) in obj {
                            if let Some(c) = column(&k) {
                                let s = match v {
                                    serde_json::Value::String(s) => s,
                                    serde_json::Value::Null => continue,
                                    other => other.to_string(),
                                };
                                raw.set(c, s);
                            }
                        }
                        ctx.row(raw)?;
                    }
                    Err(e) => {
                        ctx.report.rows += 1;
                        ctx.report.skipped += 1;
                        ctx.report
                            .issue(line, format!("skipped: not a JSON object: {e}"));
                    }
                }
                // Next non-blank line.
                loop {
                    buf.clear();
                    let n = r
                        .read_until(b'\n', &mut buf)
                        .map_err(|e| read_error(e, &ctx.report))?;
                    if n == 0 {
                        ctx.write()?;
                        return Ok(ctx.report);
                    }
                    line_no += 1;
                    let s = String::from_utf8_lossy(&buf).trim().to_string();
                    if !s.is_empty() && !s.starts_with('#') {
                        line = line_no;
                        text = s;
                        break;
                    }
                }
            }
        }
        // CSV/TSV: delimiter and header.
        let delim = if first.contains('\t') && !first.contains(',') {
            b'\t'
        } else {
            b','
        };
        let mut header: Option<Vec<String>> = None;
        let first_fields = split_header(&first, delim);
        if first_fields.iter().any(|f| column(f).is_some()) {
            header = Some(first_fields.clone());
        } else if let Some(c) = &last_comment {
            let f = split_header(c, delim);
            if f.iter().any(|x| column(x).is_some()) && f.len() > 1 {
                header = Some(f);
            }
        }
        let header_in_data = header.as_ref() == Some(&first_fields);
        let cols: Vec<Option<Col>> = match &header {
            Some(h) => h.iter().map(|f| column(f)).collect(),
            None => Vec::new(),
        };
        let names: Vec<String> = header
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        ctx.flavor = if names.iter().any(|n| n == "sha256_hash")
            && names.iter().any(|n| n == "first_seen_utc")
        {
            Flavor::MalwareBazaar
        } else if names.iter().any(|n| n == "labelled") && names.iter().any(|n| n == "id_type") {
            Flavor::AllDigests
        } else {
            Flavor::Plain
        };
        ctx.report.format = match (ctx.flavor, header.is_some(), delim) {
            (Flavor::MalwareBazaar, _, _) => "malwarebazaar_csv",
            (Flavor::AllDigests, _, _) => "all_digests_csv",
            (_, false, b'\t') => "tsv_no_header",
            (_, false, _) => "csv_no_header",
            (_, true, b'\t') => "tsv",
            _ => "csv",
        }
        .into();
        if ctx.flavor == Flavor::MalwareBazaar && ctx.default_source.is_none() {
            ctx.default_source = Some("malwarebazaar".into());
        }
        if ctx.default_source.is_none() {
            ctx.default_source = Some("import".into());
        }
        // Re-feed the first line (unless it was the header) and read on.
        let head_line: Vec<u8> = if header_in_data {
            Vec::new()
        } else {
            let mut v = first.clone().into_bytes();
            v.push(b'\n');
            v
        };
        let mut prep = Prep {
            inner: r,
            delim,
            in_quotes: false,
            out: Vec::new(),
            pos: 0,
            lines: Vec::new(),
            line_no,
            eof: false,
        };
        if !head_line.is_empty() {
            prep.lines.push(first_line);
            prep.clean(&head_line);
        }
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .delimiter(delim)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(prep);
        let mut rec = csv::ByteRecord::new();
        let mut idx = 0usize;
        loop {
            let got = match rdr.read_byte_record(&mut rec) {
                Ok(g) => g,
                Err(e) => {
                    if let csv::ErrorKind::Io(io) = e.kind() {
                        return Err(read_error(
                            std::io::Error::new(io.kind(), io.to_string()),
                            &ctx.report,
                        ));
                    }
                    let line = rdr.get_ref().lines.get(idx).copied().unwrap_or(0);
                    idx += 1;
                    ctx.report.rows += 1;
                    ctx.report.skipped += 1;
                    ctx.report
                        .issue(line, format!("skipped: unreadable CSV record: {e}"));
                    continue;
                }
            };
            if !got {
                break;
            }
            let line = rdr.get_ref().lines.get(idx).copied().unwrap_or(0);
            idx += 1;
            let mut raw = RawRow {
                line,
                ..RawRow::default()
            };
            let field = |i: usize| -> String {
                let f = rec.get(i).unwrap_or(&[]);
                String::from_utf8_lossy(f)
                    .trim()
                    .trim_matches('"')
                    .trim()
                    .to_string()
            };
            if header.is_some() {
                for (i, c) in cols.iter().enumerate() {
                    if let Some(c) = c {
                        raw.set(*c, field(i));
                    }
                }
            } else {
                // No header: `<hash>,tlsh,family[,label,threat]`, or `tlsh[,family]`.
                let f0 = field(0);
                let mut rest = 1;
                match f0.len() {
                    64 => raw.set(Col::Sha256, f0),
                    40 => raw.set(Col::Sha1, f0),
                    32 => raw.set(Col::Md5, f0),
                    _ => {
                        raw.set(Col::Tlsh, f0);
                        rest = 0;
                    }
                }
                if rest == 1 {
                    raw.set(Col::Tlsh, field(1));
                }
                raw.set(Col::Family, field(rest + 1));
                raw.set(Col::Label, field(rest + 2));
                raw.set(Col::Threat, field(rest + 3));
            }
            ctx.row(raw)?;
        }
        ctx.write()?;
        Ok(ctx.report)
    }
}

fn read_error(e: std::io::Error, rep: &ImportReport) -> Error {
    Error::Read(format!(
        "{e} (after {} rows; {} were stored)",
        rep.rows, rep.stored
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        assert_eq!(parse_time("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_time("2020-02-24 09:14:48"), Some(1_582_535_688));
        assert_eq!(parse_time("20200313"), Some(1_584_057_600));
        assert_eq!(parse_time("2021-09-16"), Some(1_631_750_400));
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2020-13-01"), None);
    }
}
