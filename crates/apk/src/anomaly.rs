//! Anomalies: structural oddities reported as data, never as errors.
//!
//! Every anomaly carries a stable snake_case [`code`](Anomaly::code) from [`codes`], the escaped name of
//! the entry it concerns (if any), and a human-readable detail. Codes never change meaning; new codes
//! may be added.

/// One structural oddity found while reading an APK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// Stable snake_case identifier, one of the constants in [`codes`].
    pub code: &'static str,
    /// Escaped name of the entry concerned (see [`crate::escape_name`]), if any.
    pub entry: Option<String>,
    /// Human-readable detail (offsets, declared vs. found values, ...).
    pub detail: String,
}

impl Anomaly {
    /// An archive-level anomaly.
    pub fn new(code: &'static str, detail: impl Into<String>) -> Self {
        Anomaly {
            code,
            entry: None,
            detail: detail.into(),
        }
    }

    /// An anomaly about one entry (`name` is the escaped display name).
    pub fn entry(code: &'static str, name: impl Into<String>, detail: impl Into<String>) -> Self {
        Anomaly {
            code,
            entry: Some(name.into()),
            detail: detail.into(),
        }
    }
}

/// Default cap on the number of anomalies kept per archive ([`crate::Limits::max_anomalies`]).
pub const DEFAULT_MAX_ANOMALIES: usize = 10_000;

/// A bounded anomaly list: past `cap` entries, anomalies are counted per code instead of stored.
#[derive(Debug, Clone)]
pub struct Anomalies {
    list: Vec<Anomaly>,
    cap: usize,
    dropped: u64,
}

impl Anomalies {
    /// An empty list keeping at most `cap` anomalies.
    pub fn with_cap(cap: usize) -> Self {
        Anomalies {
            list: Vec::new(),
            cap,
            dropped: 0,
        }
    }

    /// Adds one anomaly (or counts it as dropped when full).
    pub fn push(&mut self, a: Anomaly) {
        if self.list.len() < self.cap {
            self.list.push(a);
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }

    /// Adds every anomaly of `it`.
    pub fn extend(&mut self, it: impl IntoIterator<Item = Anomaly>) {
        for a in it {
            self.push(a);
        }
    }

    /// How many anomalies were not kept because the cap was reached.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The kept anomalies.
    pub fn as_slice(&self) -> &[Anomaly] {
        &self.list
    }

    /// The kept anomalies, plus one [`codes::ANOMALY_LIMIT`] anomaly if some were dropped.
    pub fn into_vec(mut self) -> Vec<Anomaly> {
        if self.dropped > 0 {
            self.list.push(Anomaly::new(
                codes::ANOMALY_LIMIT,
                format!(
                    "{} further anomalies were not listed (cap {})",
                    self.dropped, self.cap
                ),
            ));
        }
        self.list
    }
}

/// Stable anomaly codes. `docs/APK.md` has the same table with the Android behaviour for each.
pub mod codes {
    // ---- archive (end of central directory, central directory) ----
    /// The EOCD comment length runs past the end of the file.
    pub const EOCD_COMMENT_TRUNCATED: &str = "eocd_comment_truncated";
    /// Bytes follow the EOCD record and its comment (Android: "extraneous bytes", rejects).
    pub const TRAILING_DATA: &str = "trailing_data";
    /// The EOCD names a disk other than 0 (split archive).
    pub const MULTI_DISK: &str = "multi_disk";
    /// A zip64 EOCD locator is present but its zip64 EOCD record is missing or invalid.
    pub const ZIP64_EOCD_INVALID: &str = "zip64_eocd_invalid";
    /// The zip64 EOCD record is used (informational).
    pub const ZIP64: &str = "zip64";
    /// The recorded central-directory offset is wrong; the directory was found right before the
    /// EOCD and all offsets were re-based (data prepended without adjusting offsets).
    pub const CD_OFFSET_SHIFTED: &str = "cd_offset_shifted";
    /// Bytes precede the first local header (Janus CVE-2017-13156 layout; Android rejects).
    pub const PREPENDED_DATA: &str = "prepended_data";
    /// The declared central-directory size disagrees with the records found.
    pub const CD_SIZE_MISMATCH: &str = "cd_size_mismatch";
    /// A central-directory record is truncated or has a bad signature; the walk stopped there.
    pub const CD_RECORD_INVALID: &str = "cd_record_invalid";
    /// The EOCD entry count differs from the number of central-directory records.
    pub const EOCD_ENTRY_COUNT_MISMATCH: &str = "eocd_entry_count_mismatch";
    /// More entries than `Limits::max_entries`; the rest were not processed.
    pub const ENTRY_LIMIT: &str = "entry_limit";
    /// The central directory was unusable; entries were recovered by scanning local headers.
    pub const SALVAGED: &str = "salvaged";
    /// Two entries' data ranges overlap (overlapping-file zip bombs, header confusion).
    pub const OVERLAPPING_ENTRIES: &str = "overlapping_entries";
    /// More anomalies than `Limits::max_anomalies`; the rest were counted, not listed.
    pub const ANOMALY_LIMIT: &str = "anomaly_limit";

    // ---- entry names ----
    /// Two or more entries share a name (Android rejects the archive).
    pub const DUPLICATE_NAME: &str = "duplicate_name";
    /// The entry name is empty.
    pub const EMPTY_NAME: &str = "empty_name";
    /// The entry name contains a NUL byte (Android rejects the archive).
    pub const NAME_NUL: &str = "name_nul";
    /// The entry name contains control characters (other than NUL).
    pub const NAME_CONTROL_CHAR: &str = "name_control_char";
    /// The entry name is not valid UTF-8 (Android rejects the archive).
    pub const NAME_INVALID_UTF8: &str = "name_invalid_utf8";
    /// The entry name contains a `..` component (path traversal).
    pub const NAME_PATH_TRAVERSAL: &str = "name_path_traversal";
    /// The entry name is absolute (`/…`, `\…` or a drive letter).
    pub const NAME_ABSOLUTE: &str = "name_absolute";
    /// The entry name contains a backslash.
    pub const NAME_BACKSLASH: &str = "name_backslash";

    // ---- entry headers ----
    /// General-purpose bit 0 (encryption) is set; Android ignores it and so do we.
    pub const ENCRYPTION_FLAG: &str = "encryption_flag";
    /// The central-directory method is neither 0 nor 8; read as stored when the sizes agree,
    /// otherwise as raw deflate.
    pub const UNKNOWN_COMPRESSION_METHOD: &str = "unknown_compression_method";
    /// No local file header at the recorded offset.
    pub const LOCAL_HEADER_MISSING: &str = "local_header_missing";
    /// The local header lies at or after the start of the central directory (Android rejects).
    pub const LOCAL_HEADER_IN_CD: &str = "local_header_in_cd";
    /// Local and central names differ (Android rejects the entry; we use the central name).
    pub const LOCAL_NAME_MISMATCH: &str = "local_name_mismatch";
    /// Local and central compression methods differ (Android uses the central one).
    pub const LOCAL_METHOD_MISMATCH: &str = "local_method_mismatch";
    /// Local and central general-purpose flags differ.
    pub const LOCAL_FLAGS_MISMATCH: &str = "local_flags_mismatch";
    /// Local CRC or sizes differ from the central directory while bit 3 is clear.
    pub const LOCAL_HEADER_MISMATCH: &str = "local_header_mismatch";
    /// Bit 3 is set but the data descriptor disagrees with the central directory.
    pub const DATA_DESCRIPTOR_MISMATCH: &str = "data_descriptor_mismatch";
    /// Bit 3 is set but no data descriptor fits after the data.
    pub const DATA_DESCRIPTOR_MISSING: &str = "data_descriptor_missing";
    /// The entry data runs past the end of the file.
    pub const ENTRY_DATA_OUT_OF_BOUNDS: &str = "entry_data_out_of_bounds";
    /// An extra field's length runs past the extra area (or a zip64 field is short).
    pub const EXTRA_FIELD_MALFORMED: &str = "extra_field_malformed";
    /// The declared uncompressed size exceeds the per-entry read limit.
    pub const DECLARED_SIZE_EXCEEDS_LIMIT: &str = "declared_size_exceeds_limit";

    /// The declared sizes imply a compression ratio above `Limits::max_ratio` (zip bomb).
    pub const DECLARED_RATIO_EXCEEDS_LIMIT: &str = "declared_ratio_exceeds_limit";

    // ---- reading ----
    /// The CRC-32 of the data read differs from the central directory (Android does not check).
    pub const CRC_MISMATCH: &str = "crc_mismatch";
    /// The data read is shorter or longer than the declared uncompressed size.
    pub const UNCOMPRESSED_SIZE_MISMATCH: &str = "uncompressed_size_mismatch";
    /// The deflate stream did not end exactly at the declared compressed size.
    pub const COMPRESSED_SIZE_MISMATCH: &str = "compressed_size_mismatch";
    /// Reading stopped at the per-entry byte limit; the result is truncated.
    pub const ENTRY_SIZE_LIMIT: &str = "entry_size_limit";
    /// Reading stopped at the per-archive byte budget; the result is truncated.
    pub const TOTAL_SIZE_LIMIT: &str = "total_size_limit";
    /// Reading stopped at the compression-ratio limit; the result is truncated.
    pub const COMPRESSION_RATIO_LIMIT: &str = "compression_ratio_limit";
    /// The central directory says deflate, the data is stored (local header method 0, equal
    /// sizes): read as stored. Salvage; Android fails to read such an entry.
    pub const METHOD_FALLBACK_STORED: &str = "method_fallback_stored";
    /// The entry could not be read (inflate error, data missing); no content hash.
    pub const READ_ERROR: &str = "read_error";

    // ---- manifest ----
    /// No `AndroidManifest.xml` entry.
    pub const MANIFEST_MISSING: &str = "manifest_missing";
    /// The manifest is plain-text XML, not binary AXML.
    pub const MANIFEST_TEXT_XML: &str = "manifest_text_xml";
    /// The binary manifest is damaged; detail says where. Parsing went on as far as possible.
    pub const MANIFEST_MALFORMED: &str = "manifest_malformed";
    /// The manifest could not be parsed at all.
    pub const MANIFEST_UNPARSABLE: &str = "manifest_unparsable";

    // ---- signatures ----
    /// A v1 signature block file (`META-INF/*.RSA|DSA|EC`) has no matching `.SF` (ignored by Android).
    pub const V1_SIGNATURE_WITHOUT_SF: &str = "v1_signature_without_sf";
    /// A v1 signature block is not a parsable PKCS#7 SignedData.
    pub const V1_PKCS7_INVALID: &str = "v1_pkcs7_invalid";
    /// No certificate matched the PKCS#7 signer; every embedded certificate is reported.
    pub const V1_SIGNER_CERT_NOT_FOUND: &str = "v1_signer_cert_not_found";
    /// The APK Signing Block is malformed (sizes, lengths); it was not used.
    pub const SIGNING_BLOCK_INVALID: &str = "signing_block_invalid";
    /// A v2/v3/v3.1 scheme block inside the signing block is malformed.
    pub const SIGNATURE_SCHEME_INVALID: &str = "signature_scheme_invalid";
    /// The signing block holds a scheme id more than once; only the first is used (as Android).
    pub const SIGNATURE_SCHEME_DUPLICATE: &str = "signature_scheme_duplicate";
}
