/*!
An Android-faithful, tolerant ZIP/APK reader over `&[u8]`.

Malware breaks parsers on purpose. This crate reads an APK the way Android's `libziparchive` and
package parser do where that is known, reports every deviation as an [`Anomaly`] (data, not an
error), and bounds everything: entry count, bytes inflated per entry and per archive, compression
ratio, nesting depth. It never touches the filesystem, never uses an entry name as a path, never
allocates from a declared size and never panics (the lints below deny the panicking constructs;
fuzzing and property tests look for the rest).

```
use apksift_apk::{Archive, Limits};

// A one-entry stored ZIP, built by hand.
let mut zip = Vec::new();
zip.extend_from_slice(b"PK\x03\x04\x14\x00\x00\x00\x00\x00\x00\x00\x00\x00");
zip.extend_from_slice(&0x3610a686u32.to_le_bytes()); // crc32("hello")
zip.extend_from_slice(&5u32.to_le_bytes());
zip.extend_from_slice(&5u32.to_le_bytes());
zip.extend_from_slice(&1u16.to_le_bytes());
zip.extend_from_slice(&0u16.to_le_bytes());
zip.extend_from_slice(b"ahello");
let cd = zip.len() as u32;
zip.extend_from_slice(b"PK\x01\x02\x14\x00\x14\x00\x00\x00\x00\x00\x00\x00\x00\x00");
zip.extend_from_slice(&0x3610a686u32.to_le_bytes());
zip.extend_from_slice(&5u32.to_le_bytes());
zip.extend_from_slice(&5u32.to_le_bytes());
zip.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
zip.extend_from_slice(b"a");
let cd_len = zip.len() as u32 - cd;
zip.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00\x01\x00\x01\x00");
zip.extend_from_slice(&cd_len.to_le_bytes());
zip.extend_from_slice(&cd.to_le_bytes());
zip.extend_from_slice(&[0, 0]);

let archive = Archive::parse(&zip, &Limits::default()).unwrap();
assert_eq!(archive.entries()[0].name, b"a");
let (bytes, report) = archive.read_to_vec(0, u64::MAX);
assert_eq!(bytes, b"hello");
assert!(report.is_complete() && report.anomalies.is_empty());
```

Layers: [`zip`] (structures and Android's rules), [`read`] (bounded decoding), [`manifest`]
(binary/text `AndroidManifest.xml`), [`signing`] (v1 PKCS#7 and the APK Signing Block), names
([`escape_name`]). `docs/APK.md` in the repository documents every rule, limit and anomaly code.
*/
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod anomaly;
mod bytes;
mod der;
pub mod manifest;
mod names;
pub mod read;
pub mod signing;
pub mod zip;

pub use anomaly::{Anomalies, Anomaly, DEFAULT_MAX_ANOMALIES, codes};
pub use bytes::hex;
pub use manifest::{Manifest, ManifestError, ManifestFormat, parse_manifest};
pub use names::{escape_name, needs_raw_hex};
pub use read::{Decoding, ReadError, ReadReport, Truncation};
pub use signing::{Scheme, SigningCert, certificates};
pub use zip::{Archive, Entry, Layout, ZipError};

/// Resource limits. Hitting one yields a flag and a truncated result, never an archive error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Central-directory records (or salvaged local headers) processed. Default 200 000.
    pub max_entries: usize,
    /// Bytes produced per entry read. Default 256 MiB (the reference data's cap).
    pub max_entry_bytes: u64,
    /// Bytes produced by all reads of one archive together. Default 1 GiB.
    pub max_total_bytes: u64,
    /// Largest output/input ratio tolerated while inflating (after [`Limits::ratio_grace_bytes`]).
    /// Default 100 (real APK entries stay below 10:1; deflate's maximum is about 1032:1).
    pub max_ratio: u64,
    /// Output below this size is never cut by the ratio limit. Default 1 MiB.
    pub ratio_grace_bytes: u64,
    /// Bytes of `AndroidManifest.xml` read for parsing. Default 16 MiB.
    pub max_manifest_bytes: u64,
    /// Bytes of one v1 signature block file read. Default 4 MiB.
    pub max_signature_file_bytes: u64,
    /// Anomalies listed per archive; the rest are counted. Default 10 000.
    pub max_anomalies: usize,
    /// Recover entries from local headers when the central directory is unusable. Default true.
    pub salvage: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 200_000,
            max_entry_bytes: 256 << 20,
            max_total_bytes: 1 << 30,
            max_ratio: 100,
            ratio_grace_bytes: 1 << 20,
            max_manifest_bytes: 16 << 20,
            max_signature_file_bytes: 4 << 20,
            max_anomalies: DEFAULT_MAX_ANOMALIES,
            salvage: true,
        }
    }
}

/// The APK components apksift fingerprints separately.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ComponentKind {
    /// Root `AndroidManifest.xml`.
    Manifest,
    /// Root `resources.arsc`.
    Resources,
    /// Root `classes.dex`, `classes2.dex`, … (any `classes<digits>.dex`).
    Dex,
    /// `lib/<abi>/<name>.so`.
    Native,
}

impl ComponentKind {
    /// Classifies a raw entry name; `None` for anything that is not a component.
    pub fn of(name: &[u8]) -> Option<ComponentKind> {
        match name {
            b"AndroidManifest.xml" => return Some(ComponentKind::Manifest),
            b"resources.arsc" => return Some(ComponentKind::Resources),
            _ => {}
        }
        if let Some(mid) = name
            .strip_prefix(b"classes")
            .and_then(|r| r.strip_suffix(b".dex"))
            && mid.iter().all(u8::is_ascii_digit)
        {
            return Some(ComponentKind::Dex);
        }
        let mut parts = name.split(|&b| b == b'/');
        if let (Some(b"lib"), Some(abi), Some(file), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
            && !abi.is_empty()
            && file.len() > 3
            && file.ends_with(b".so")
        {
            return Some(ComponentKind::Native);
        }
        None
    }

    /// `"manifest"`, `"resources"`, `"dex"` or `"native"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Manifest => "manifest",
            ComponentKind::Resources => "resources",
            ComponentKind::Dex => "dex",
            ComponentKind::Native => "native",
        }
    }
}

/// Why the manifest could not be read from the archive.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestReadError {
    /// No `AndroidManifest.xml` entry.
    #[error("no AndroidManifest.xml entry")]
    Missing,
    /// The entry could not be read.
    #[error("AndroidManifest.xml could not be read: {0}")]
    Read(ReadError),
    /// The entry is larger than [`Limits::max_manifest_bytes`] (or another limit was hit).
    #[error("AndroidManifest.xml exceeds a read limit ({0:?}); not parsed")]
    Truncated(Truncation),
    /// The bytes are not a parsable manifest.
    #[error("AndroidManifest.xml could not be parsed: {0}")]
    Parse(ManifestError),
}

/// The manifest of an archive, with the anomalies met on the way.
#[derive(Debug, Clone)]
pub struct ManifestRead {
    /// Index of the entry read (the first `AndroidManifest.xml`), if any.
    pub index: Option<usize>,
    /// What was read.
    pub result: Result<Manifest, ManifestReadError>,
    /// Anomalies: read problems, [`codes::MANIFEST_MALFORMED`] for each parse problem, etc.
    pub anomalies: Vec<Anomaly>,
}

impl Archive<'_> {
    /// Reads and parses the first root `AndroidManifest.xml` (Android refuses archives with a
    /// duplicate; the duplicate is flagged by the ZIP layer).
    pub fn manifest(&self) -> ManifestRead {
        let mut anomalies = Vec::new();
        let Some(index) = self.find(b"AndroidManifest.xml") else {
            anomalies.push(Anomaly::new(
                codes::MANIFEST_MISSING,
                "no AndroidManifest.xml entry",
            ));
            return ManifestRead {
                index: None,
                result: Err(ManifestReadError::Missing),
                anomalies,
            };
        };
        let name = "AndroidManifest.xml";
        let (buf, report) = self.read_to_vec(index, self.limits.max_manifest_bytes);
        let result = if let Some(e) = report.error {
            Err(ManifestReadError::Read(e))
        } else if let Some(t) = report.truncated {
            Err(ManifestReadError::Truncated(t))
        } else {
            parse_manifest(&buf).map_err(ManifestReadError::Parse)
        };
        match &result {
            Ok(m) => {
                if m.format == ManifestFormat::Text {
                    anomalies.push(Anomaly::entry(
                        codes::MANIFEST_TEXT_XML,
                        name,
                        "manifest is plain-text XML (Android installs only binary XML)",
                    ));
                }
                for p in m
                    .problems
                    .iter()
                    .filter(|_| m.format == ManifestFormat::Binary)
                {
                    anomalies.push(Anomaly::entry(codes::MANIFEST_MALFORMED, name, p.clone()));
                }
            }
            Err(ManifestReadError::Parse(e)) => anomalies.push(Anomaly::entry(
                codes::MANIFEST_UNPARSABLE,
                name,
                e.to_string(),
            )),
            Err(_) => {}
        }
        ManifestRead {
            index: Some(index),
            result,
            anomalies,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_kinds() {
        assert_eq!(ComponentKind::of(b"classes.dex"), Some(ComponentKind::Dex));
        assert_eq!(
            ComponentKind::of(b"classes12.dex"),
            Some(ComponentKind::Dex)
        );
        assert_eq!(ComponentKind::of(b"classesX.dex"), None);
        assert_eq!(ComponentKind::of(b"sub/classes.dex"), None);
        assert_eq!(
            ComponentKind::of(b"lib/arm64-v8a/libfoo.so"),
            Some(ComponentKind::Native)
        );
        assert_eq!(ComponentKind::of(b"lib/arm64-v8a/x/libfoo.so"), None);
        assert_eq!(ComponentKind::of(b"lib//libfoo.so"), None);
        assert_eq!(
            ComponentKind::of(b"AndroidManifest.xml"),
            Some(ComponentKind::Manifest)
        );
        assert_eq!(
            ComponentKind::of(b"resources.arsc"),
            Some(ComponentKind::Resources)
        );
    }
}
