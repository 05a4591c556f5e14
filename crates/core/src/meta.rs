//! Sample metadata: labels, threat levels, sample keys.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How dangerous a sample is. Stored as an integer (0–4); accepted by name or number.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum ThreatLevel {
    /// 0: no threat (benign, or a label without danger).
    #[default]
    None = 0,
    /// 1: low (adware, riskware, PUPs).
    Low = 1,
    /// 2: medium (spyware, aggressive adware, droppers without payload).
    Medium = 2,
    /// 3: high (banking trojans, RATs, SMS fraud, ransomware).
    High = 3,
    /// 4: critical (root exploits, active campaigns).
    Critical = 4,
}

impl ThreatLevel {
    /// All levels, lowest first.
    pub const ALL: [ThreatLevel; 5] = [
        ThreatLevel::None,
        ThreatLevel::Low,
        ThreatLevel::Medium,
        ThreatLevel::High,
        ThreatLevel::Critical,
    ];

    /// The stored integer (0–4).
    pub const fn as_i64(self) -> i64 {
        self as i64
    }

    /// From the stored integer.
    pub fn from_i64(v: i64) -> Option<ThreatLevel> {
        ThreatLevel::ALL.into_iter().find(|t| t.as_i64() == v)
    }

    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            ThreatLevel::None => "none",
            ThreatLevel::Low => "low",
            ThreatLevel::Medium => "medium",
            ThreatLevel::High => "high",
            ThreatLevel::Critical => "critical",
        }
    }
}

impl fmt::Display for ThreatLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ThreatLevel {
    type Err = Error;

    /// Accepts `none|low|medium|high|critical` (any case) or `0`–`4`.
    fn from_str(s: &str) -> Result<ThreatLevel> {
        let t = s.trim();
        if let Ok(n) = t.parse::<i64>() {
            return ThreatLevel::from_i64(n).ok_or_else(|| {
                Error::invalid(format!(
                    "threat level {n} is out of range: use 0-4 or none|low|medium|high|critical"
                ))
            });
        }
        ThreatLevel::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(t))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown threat level {t:?}: use none|low|medium|high|critical or 0-4"
                ))
            })
    }
}

/// What a stored sample is known to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// Known malware: a match makes a verdict.
    Malware,
    /// Potentially unwanted: a match is reported as suspicious.
    Grayware,
    /// Known good: a match never raises a verdict; it is listed for context.
    Benign,
    /// Not classified: a match is reported as suspicious.
    #[default]
    Unknown,
}

impl Label {
    /// All labels.
    pub const ALL: [Label; 4] = [
        Label::Malware,
        Label::Grayware,
        Label::Benign,
        Label::Unknown,
    ];

    /// Lower-case name (the stored value).
    pub const fn name(self) -> &'static str {
        match self {
            Label::Malware => "malware",
            Label::Grayware => "grayware",
            Label::Benign => "benign",
            Label::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Label {
    type Err = Error;

    /// Accepts `malware|grayware|benign|unknown` (any case; `malicious` = malware,
    /// `clean`/`goodware` = benign, `pup`/`adware` = grayware).
    fn from_str(s: &str) -> Result<Label> {
        let t = s.trim().to_ascii_lowercase();
        Ok(match t.as_str() {
            "malware" | "malicious" => Label::Malware,
            "grayware" | "greyware" | "pup" | "adware" => Label::Grayware,
            "benign" | "clean" | "goodware" => Label::Benign,
            "unknown" | "" => Label::Unknown,
            _ => {
                return Err(Error::invalid(format!(
                    "unknown label {s:?}: use malware|grayware|benign|unknown"
                )));
            }
        })
    }
}

/// Longest family name stored (bytes).
pub const MAX_FAMILY_LEN: usize = 256;
/// Longest source stored (bytes).
pub const MAX_SOURCE_LEN: usize = 1024;

/// What the caller knows about a sample being ingested.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SampleMeta {
    /// Label (default `unknown`).
    #[serde(default)]
    pub label: Label,
    /// Family name (e.g. `Anubis`); trimmed, empty means none.
    #[serde(default)]
    pub family: Option<String>,
    /// Threat level; `None` stores no level.
    #[serde(default)]
    pub threat: Option<ThreatLevel>,
    /// Where the sample came from (feed name, file path, ...).
    #[serde(default)]
    pub source: Option<String>,
    /// First-seen time, unix seconds. When absent, ingest keeps the stored value of an
    /// already known sample, or uses the current time.
    #[serde(default)]
    pub first_seen: Option<i64>,
}

impl SampleMeta {
    /// Metadata with a label.
    pub fn new(label: Label) -> SampleMeta {
        SampleMeta {
            label,
            ..SampleMeta::default()
        }
    }

    /// Sets the family.
    pub fn family(mut self, family: impl Into<String>) -> SampleMeta {
        self.family = Some(family.into());
        self
    }

    /// Sets the threat level.
    pub fn threat(mut self, threat: ThreatLevel) -> SampleMeta {
        self.threat = Some(threat);
        self
    }

    /// Sets the source.
    pub fn source(mut self, source: impl Into<String>) -> SampleMeta {
        self.source = Some(source.into());
        self
    }

    /// Checks lengths and normalises empty strings to `None`.
    pub fn normalized(&self) -> Result<SampleMeta> {
        let family = clean_text("family", self.family.as_deref(), MAX_FAMILY_LEN)?;
        let source = clean_text("source", self.source.as_deref(), MAX_SOURCE_LEN)?;
        Ok(SampleMeta {
            label: self.label,
            family,
            threat: self.threat,
            source,
            first_seen: self.first_seen,
        })
    }
}

/// Trims, maps empty to `None`, rejects over-long values and control characters.
pub(crate) fn clean_text(what: &str, v: Option<&str>, max: usize) -> Result<Option<String>> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.len() > max {
        return Err(Error::invalid(format!(
            "{what} of {} bytes exceeds the maximum of {max} bytes",
            v.len()
        )));
    }
    if v.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{what} {v:?} contains control characters"
        )));
    }
    Ok(Some(v.to_string()))
}

/// Checks a SHA-256 given as hex (any case) and returns it in lower case.
pub fn normalize_sha256(s: &str) -> Result<String> {
    normalize_hex("sha256", s, 64)
}

pub(crate) fn normalize_hex(what: &str, s: &str, len: usize) -> Result<String> {
    let t = s.trim();
    if t.len() != len || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid(format!(
            "invalid {what} {:?}: expected {len} hex digits",
            truncate(t, 80)
        )));
    }
    Ok(t.to_ascii_lowercase())
}

/// Normalises a sample key as accepted by [`crate::Store::get_sample`] and
/// [`crate::Store::delete_sample`]: a SHA-256 (64 hex digits, any case) becomes lower-case
/// hex; `sha1:<40 hex>` and `md5:<32 hex>` are lower-cased; other `<type>:<id>` keys made by
/// an import are returned as given.
pub fn normalize_key(s: &str) -> Result<String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(Error::invalid("empty sample key"));
    }
    if !t.contains(':') {
        return normalize_sha256(t);
    }
    let (ty, id) = t.split_once(':').unwrap_or((t, ""));
    match ty.to_ascii_lowercase().as_str() {
        "sha256" => normalize_sha256(id),
        "sha1" => Ok(format!("sha1:{}", normalize_hex("sha1", id, 40)?)),
        "md5" => Ok(format!("md5:{}", normalize_hex("md5", id, 32)?)),
        _ => {
            if t.len() > apksift_index::schema::MAX_KEY_LEN || t.contains('\0') {
                return Err(Error::invalid(format!(
                    "invalid sample key {:?}",
                    truncate(t, 80)
                )));
            }
            Ok(t.to_string())
        }
    }
}

pub(crate) fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threat_levels_parse_by_name_and_number() {
        assert_eq!("high".parse::<ThreatLevel>().unwrap(), ThreatLevel::High);
        assert_eq!(
            "CRITICAL".parse::<ThreatLevel>().unwrap(),
            ThreatLevel::Critical
        );
        assert_eq!("0".parse::<ThreatLevel>().unwrap(), ThreatLevel::None);
        assert_eq!("3".parse::<ThreatLevel>().unwrap(), ThreatLevel::High);
        assert!("5".parse::<ThreatLevel>().is_err());
        assert!("severe".parse::<ThreatLevel>().is_err());
        assert_eq!(ThreatLevel::from_i64(2), Some(ThreatLevel::Medium));
    }

    #[test]
    fn labels_parse() {
        assert_eq!("Malware".parse::<Label>().unwrap(), Label::Malware);
        assert_eq!("clean".parse::<Label>().unwrap(), Label::Benign);
        assert!("evil".parse::<Label>().is_err());
    }

    #[test]
    fn keys_normalise() {
        let s = "AB".repeat(32);
        assert_eq!(normalize_key(&s).unwrap(), "ab".repeat(32));
        assert_eq!(
            normalize_key(&format!("SHA1:{}", "C".repeat(40))).unwrap(),
            format!("sha1:{}", "c".repeat(40))
        );
        assert!(normalize_key("abc").is_err());
        assert!(normalize_key(&"g".repeat(64)).is_err());
        assert!(normalize_key("md5:123").is_err());
        assert_eq!(normalize_key("tlsh:T1AB").unwrap(), "tlsh:T1AB");
    }

    #[test]
    fn meta_is_cleaned() {
        let m = SampleMeta::new(Label::Malware).family("  Anubis ");
        assert_eq!(m.normalized().unwrap().family.as_deref(), Some("Anubis"));
        assert!(
            SampleMeta::new(Label::Malware)
                .family("x".repeat(300))
                .normalized()
                .is_err()
        );
        assert!(
            SampleMeta::new(Label::Malware)
                .family("a\nb")
                .normalized()
                .is_err()
        );
    }
}
