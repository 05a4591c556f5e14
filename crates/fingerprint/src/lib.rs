/*!
The apksift fingerprint of one APK: SHA-256 and TLSH of the whole file and of each component
(`AndroidManifest.xml`, `resources.arsc`, `classes*.dex`, `lib/<abi>/<name>.so`), the manifest's
identity fields, the SHA-256 of each signing certificate (v1, v2, v3, v3.1), and the anomalies
the ZIP layer found.

[`fingerprint`] never fails and never panics: whatever breaks becomes a field (`zip.error`,
`manifest_error`, `tlsh_error`, an entry's `error`) or an anomaly. The whole-file hashes are
computed from the raw bytes before any parsing, so they exist for every input.

```
use apksift_fingerprint::{fingerprint, Options};

let fp = fingerprint(b"not a zip at all", &Options::default());
assert_eq!(fp.size, 16);
assert_eq!(fp.sha256.len(), 64);
assert!(fp.tlsh.is_none());
assert_eq!(fp.tlsh_error.as_deref(), Some("too short"));
assert!(!fp.zip.ok);
```

Content is hashed as it is inflated (SHA-256 via `sha2`, TLSH via the streaming
[`apksift_tlsh::Hasher`]), so memory stays bounded however large an entry claims or turns out to be.
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

use std::collections::HashSet;

use apksift_apk::{self as apk, Archive, ComponentKind as Kind, Limits, hex};
use apksift_tlsh::{Digest, Hasher};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// What to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Bounds on the ZIP layer (entries, bytes inflated, ratio, ...).
    pub limits: Limits,
    /// Also hash every entry and list it in [`Fingerprint::entries`].
    pub include_entries: bool,
}

/// The fingerprint of one APK (or of any bytes: a non-ZIP input still gets the whole-file fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Lower-case hex SHA-256 of the raw file bytes.
    pub sha256: String,
    /// File size in bytes.
    pub size: u64,
    /// TLSH of the raw file bytes (`null` when the input has no digest). Never depends on parsing.
    pub tlsh: Option<Digest>,
    /// Why there is no whole-file TLSH: `"too short"` or `"too little variety"`.
    pub tlsh_error: Option<String>,
    /// How the ZIP structure read.
    pub zip: ZipSummary,
    /// The components, in the order manifest, resources, dex files (central-directory order),
    /// native libraries (central-directory order). Duplicated names give one component per copy.
    pub components: Vec<Component>,
    /// Identity fields of `AndroidManifest.xml`, when a root element could be read.
    pub manifest: Option<ManifestInfo>,
    /// Why the manifest is missing or incomplete (set together with `manifest` for a partial parse).
    pub manifest_error: Option<String>,
    /// Signing certificates, v1 first, then v2, v3, v3.1; no duplicates within a scheme.
    pub certificates: Vec<Certificate>,
    /// Structural anomalies (see `docs/APK.md` for the codes).
    pub anomalies: Vec<Anomaly>,
    /// Every entry with its content hashes; only with [`Options::include_entries`].
    pub entries: Option<Vec<EntryInfo>>,
}

/// The ZIP layer's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZipSummary {
    /// The central directory was found and read.
    pub ok: bool,
    /// Why it was not (entries may still come from a salvage scan, flagged `salvaged`).
    pub error: Option<String>,
    /// Entries processed (central-directory records, or salvaged local headers).
    pub entry_count: u64,
}

/// The kind of a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentKind {
    /// `AndroidManifest.xml`.
    Manifest,
    /// `resources.arsc`.
    Resources,
    /// `classes*.dex`.
    Dex,
    /// `lib/<abi>/*.so`.
    Native,
}

impl ComponentKind {
    fn from_apk(k: Kind) -> Option<Self> {
        Some(match k {
            Kind::Manifest => ComponentKind::Manifest,
            Kind::Resources => ComponentKind::Resources,
            Kind::Dex => ComponentKind::Dex,
            Kind::Native => ComponentKind::Native,
            _ => return None,
        })
    }
}

/// One hashed component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// What it is.
    pub kind: ComponentKind,
    /// Escaped entry name.
    pub name: String,
    /// Bytes actually read (and hashed).
    pub size: u64,
    /// Lower-case hex SHA-256 of the bytes read.
    pub sha256: String,
    /// TLSH of the bytes read.
    pub tlsh: Option<Digest>,
    /// Why there is no TLSH.
    pub tlsh_error: Option<String>,
    /// A limit stopped the read: the hashes cover a prefix of the content.
    pub truncated: bool,
}

/// Identity fields of the manifest, as written there (integers in decimal, references as
/// `@XXXXXXXX`, codenames as text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestInfo {
    /// `package`.
    pub package: Option<String>,
    /// `android:versionCode`.
    pub version_code: Option<String>,
    /// `android:versionName`.
    pub version_name: Option<String>,
    /// `<uses-sdk android:minSdkVersion>`.
    pub min_sdk: Option<String>,
    /// `<uses-sdk android:targetSdkVersion>`.
    pub target_sdk: Option<String>,
    /// `<uses-sdk android:maxSdkVersion>`.
    pub max_sdk: Option<String>,
}

/// One signing certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Certificate {
    /// `"v1"`, `"v2"`, `"v3"` or `"v3.1"`.
    pub scheme: String,
    /// Lower-case hex SHA-256 of the DER certificate.
    pub sha256: String,
}

/// A structural anomaly (see [`apksift_apk::codes`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Anomaly {
    /// Stable snake_case code.
    pub code: String,
    /// Escaped name of the entry concerned.
    pub entry: Option<String>,
    /// Human-readable detail.
    pub detail: String,
}

impl From<apk::Anomaly> for Anomaly {
    fn from(a: apk::Anomaly) -> Self {
        Anomaly {
            code: a.code.to_string(),
            entry: a.entry,
            detail: a.detail,
        }
    }
}

/// One entry (with [`Options::include_entries`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryInfo {
    /// Escaped name.
    pub name: String,
    /// Hex of the raw name bytes, when they include bytes outside printable ASCII.
    pub raw_name_hex: Option<String>,
    /// Compression method from the central directory.
    pub method: u16,
    /// Declared compressed size.
    pub compressed_size: u64,
    /// Declared uncompressed size.
    pub uncompressed_size: u64,
    /// Declared CRC-32, 8 lower-case hex digits.
    pub crc32: String,
    /// SHA-256 of the bytes read; `null` when the read failed.
    pub sha256: Option<String>,
    /// TLSH of the bytes read.
    pub tlsh: Option<Digest>,
    /// Bytes read (before an error, or up to a limit).
    pub read_size: u64,
    /// A limit stopped the read (the hashes cover a prefix).
    pub truncated: bool,
    /// Why the read failed.
    pub error: Option<String>,
}

/// Computes the fingerprint of `bytes`. Never fails, never panics.
pub fn fingerprint(bytes: &[u8], opts: &Options) -> Fingerprint {
    let sha256 = hex(&Sha256::digest(bytes));
    let (tlsh, tlsh_error) = split_tlsh(apksift_tlsh::hash(bytes));
    let mut fp = Fingerprint {
        sha256,
        size: bytes.len() as u64,
        tlsh,
        tlsh_error,
        zip: ZipSummary {
            ok: false,
            error: None,
            entry_count: 0,
        },
        components: Vec::new(),
        manifest: None,
        manifest_error: None,
        certificates: Vec::new(),
        anomalies: Vec::new(),
        entries: None,
    };
    contents_guarded(bytes, opts, &mut fp);
    fp
}

/// Runs the ZIP-dependent part. Without the `fuzzing` feature, a panic there (a bug: the code is written
/// not to panic) is caught and reported as an `internal_error` anomaly so that a scan never dies;
/// fuzzing builds let it through so the fuzzer sees it.
fn contents_guarded(bytes: &[u8], opts: &Options, fp: &mut Fingerprint) {
    #[cfg(not(feature = "fuzzing"))]
    {
        let mut part = fp.clone();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            contents(bytes, opts, &mut part)
        })) {
            Ok(()) => *fp = part,
            Err(_) => {
                fp.zip.error = Some("internal error while reading the archive".into());
                fp.anomalies.push(Anomaly {
                    code: "internal_error".into(),
                    entry: None,
                    detail:
                        "the archive reader panicked (a bug); only whole-file hashes are reported"
                            .into(),
                });
            }
        }
    }
    #[cfg(feature = "fuzzing")]
    contents(bytes, opts, fp);
}

fn split_tlsh(r: Result<Digest, apksift_tlsh::NoDigest>) -> (Option<Digest>, Option<String>) {
    match r {
        Ok(d) => (Some(d), None),
        Err(e) => (None, Some(e.reason().to_string())),
    }
}

/// Anomalies without exact repeats (a read reports the same CRC mismatch each time).
struct AnomalyList {
    seen: HashSet<Anomaly>,
    list: Vec<Anomaly>,
    cap: usize,
    dropped: u64,
}

impl AnomalyList {
    fn push(&mut self, a: impl Into<Anomaly>) {
        let a = a.into();
        if self.seen.contains(&a) {
            return;
        }
        if self.list.len() >= self.cap {
            self.dropped += 1;
            return;
        }
        self.seen.insert(a.clone());
        self.list.push(a);
    }

    fn finish(mut self) -> Vec<Anomaly> {
        if self.dropped > 0 {
            self.list.push(Anomaly {
                code: apk::codes::ANOMALY_LIMIT.into(),
                entry: None,
                detail: format!(
                    "{} further anomalies were not listed (cap {})",
                    self.dropped, self.cap
                ),
            });
        }
        self.list
    }
}

/// Content hashes of one read.
struct Hashed {
    sha256: String,
    tlsh: Result<Digest, apksift_tlsh::NoDigest>,
    bytes: u64,
    truncated: bool,
    error: Option<String>,
}

fn hash_entry(archive: &Archive<'_>, index: usize, an: &mut AnomalyList) -> Hashed {
    let mut sha = Sha256::new();
    let mut th = Hasher::new();
    let report = archive.read(index, u64::MAX, &mut |c: &[u8]| {
        sha.update(c);
        th.update(c);
    });
    for a in report.anomalies {
        an.push(a);
    }
    Hashed {
        sha256: hex(&sha.finalize()),
        tlsh: th.finish(),
        bytes: report.bytes,
        truncated: report.truncated.is_some(),
        error: report.error.map(|e| e.to_string()),
    }
}

fn contents(bytes: &[u8], opts: &Options, fp: &mut Fingerprint) {
    let limits = &opts.limits;
    let mut an = AnomalyList {
        seen: HashSet::new(),
        list: Vec::new(),
        cap: limits.max_anomalies,
        dropped: 0,
    };
    let archive = match Archive::parse(bytes, limits) {
        Ok(a) => {
            fp.zip.ok = true;
            Some(a)
        }
        Err(e) => {
            fp.zip.error = Some(e.to_string());
            let salvageable = !matches!(e, apk::ZipError::Empty);
            (limits.salvage && salvageable)
                .then(|| Archive::salvage(bytes, limits))
                .filter(|a| !a.entries().is_empty())
        }
    };
    let Some(archive) = archive else {
        fp.manifest_error = Some(match &fp.zip.error {
            Some(e) => format!("no archive: {e}"),
            None => "no archive".into(),
        });
        fp.anomalies = an.finish();
        return;
    };
    fp.zip.entry_count = archive.entries().len() as u64;
    for a in archive.anomalies() {
        an.push(a.clone());
    }

    // Identity first, so that the byte budget cannot starve it.
    let m = archive.manifest();
    for a in m.anomalies {
        an.push(a);
    }
    match m.result {
        Ok(man) => {
            if !man.problems.is_empty() {
                fp.manifest_error = Some(format!(
                    "manifest partly unreadable: {}",
                    man.problems.join("; ")
                ));
            }
            fp.manifest = Some(ManifestInfo {
                package: man.package,
                version_code: man.version_code,
                version_name: man.version_name,
                min_sdk: man.min_sdk,
                target_sdk: man.target_sdk,
                max_sdk: man.max_sdk,
            });
        }
        Err(e) => fp.manifest_error = Some(e.to_string()),
    }
    let (certs, cert_anomalies) = apk::certificates(&archive);
    for a in cert_anomalies {
        an.push(a);
    }
    fp.certificates = certs
        .iter()
        .map(|c| Certificate {
            scheme: c.scheme.as_str().to_string(),
            sha256: hex(&Sha256::digest(&c.der)),
        })
        .collect();

    // Components, then (optionally) every other entry; each entry is read once.
    let mut comps: Vec<(ComponentKind, usize)> = archive
        .entries()
        .iter()
        .filter_map(|e| {
            Kind::of(e.name)
                .and_then(ComponentKind::from_apk)
                .map(|k| (k, e.index))
        })
        .collect();
    comps.sort_by_key(|&(k, i)| (k, i));
    let n = archive.entries().len();
    let mut hashed: Vec<Option<Hashed>> = Vec::new();
    if opts.include_entries {
        hashed.resize_with(n, || None);
    }
    for &(kind, index) in &comps {
        let h = hash_entry(&archive, index, &mut an);
        let name = archive
            .entries()
            .get(index)
            .map(|e| e.display_name())
            .unwrap_or_default();
        if h.error.is_none() {
            let (tlsh, tlsh_error) = split_tlsh(h.tlsh);
            fp.components.push(Component {
                kind,
                name,
                size: h.bytes,
                sha256: h.sha256.clone(),
                tlsh,
                tlsh_error,
                truncated: h.truncated,
            });
        }
        if let Some(slot) = hashed.get_mut(index) {
            *slot = Some(h);
        }
    }
    if opts.include_entries {
        let mut list = Vec::with_capacity(n);
        for (e, slot) in archive.entries().iter().zip(hashed) {
            let h = slot.unwrap_or_else(|| hash_entry(&archive, e.index, &mut an));
            let ok = h.error.is_none();
            list.push(EntryInfo {
                name: e.display_name(),
                raw_name_hex: apk::needs_raw_hex(e.name).then(|| hex(e.name)),
                method: e.method,
                compressed_size: e.compressed_size,
                uncompressed_size: e.uncompressed_size,
                crc32: format!("{:08x}", e.crc32),
                sha256: ok.then_some(h.sha256),
                tlsh: if ok { h.tlsh.ok() } else { None },
                read_size: h.bytes,
                truncated: h.truncated,
                error: h.error,
            });
        }
        fp.entries = Some(list);
    }
    fp.anomalies = an.finish();
}
