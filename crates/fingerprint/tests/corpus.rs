//! The fingerprint against the reference values of `shared/data/apk/expected.jsonl`
//! (Python zipfile, apkInspector 1.3.7, androguard 4.1.4, py-tlsh 5.0.0).
//!
//! Every disagreement must be listed in [`EXCEPTIONS`] with its reason, and every listed exception
//! must still occur: the test fails on an unexplained mismatch *and* on a stale exception.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use apksift_fingerprint::{Fingerprint, Options, fingerprint};
use serde_json::Value;

/// (file, check, reason). `check` is `zipfile:<name>`, `apkinspector:<name>` (entry content),
/// or `androguard:<field>`.
const EXCEPTIONS: &[(&str, &str, &str)] = &[
    // --- apkInspector follows the local header's compression method; Android and we follow the
    //     central directory (Python zipfile agrees with us on all three files).
    (
        "apksig/mismatched-compression-method.apk",
        "apkinspector:META-INF/CERT.RSA",
        "local header says stored, central directory says deflate: apkInspector returns the raw deflate bytes",
    ),
    (
        "malformed/method_lh_deflate_data_stored.apk",
        "apkinspector:AndroidManifest.xml",
        "local header says deflate, central directory says stored: apkInspector inflates stored bytes to nothing",
    ),
    (
        "malformed/method_lh_stored_data_deflated.apk",
        "apkinspector:AndroidManifest.xml",
        "local header says stored, central directory says deflate: apkInspector returns the raw deflate bytes",
    ),
    (
        "malformed/method_lh_stored_data_deflated.apk",
        "apkinspector:classes.dex",
        "local header says stored, central directory says deflate: apkInspector returns the raw deflate bytes",
    ),
    // --- zip bombs: we stop at the compression-ratio limit (100:1 after 1 MiB) and mark the
    //     entry truncated; the reference tools inflate everything.
    (
        "malformed/zip_bomb_ratio.apk",
        "zipfile:assets/zeros.bin",
        "128 MiB of zeros at ~1030:1: truncated at the ratio limit (compression_ratio_limit)",
    ),
    (
        "malformed/zip_bomb_ratio.apk",
        "apkinspector:assets/zeros.bin",
        "128 MiB of zeros at ~1030:1: truncated at the ratio limit (compression_ratio_limit)",
    ),
    (
        "malformed/zip_bomb_understated.apk",
        "apkinspector:assets/understated.bin",
        "declares 1 KiB, inflates to 16 MiB: truncated at the ratio limit; apkInspector inflates all (zipfile fails the CRC)",
    ),
    // --- duplicates: apkInspector keys entries by name, so androguard parses the *last*
    //     AndroidManifest.xml; we parse the first (Android refuses the archive; both copies are
    //     hashed as components and flagged duplicate_name).
    (
        "malformed/duplicate_entries.apk",
        "androguard:package",
        "androguard reads the last of two AndroidManifest.xml entries, we read the first",
    ),
    // --- v1 certificates: androguard 4.1.4 lists a v1 certificate only when the PKCS#7 signature
    //     verifies with Python cryptography; we report the signer's certificate without verifying.
    (
        "apksigcopier/v1v2v3-rsa-2048-negmod-in-cert.apk",
        "androguard:cert_sha256_v1",
        "the certificate's negative RSA modulus fails androguard's verification (its v2/v3 certificate is the same and matches)",
    ),
    (
        "fdroidserver/urzip-badcert.apk",
        "androguard:cert_sha256_v1",
        "the v1 signature does not verify, so androguard lists no certificate",
    ),
    // --- archives androguard cannot open where we still find the signature files.
    (
        "malformed/cd_offset_outside_file.apk",
        "androguard:cert_sha256_v1",
        "central-directory offset past the end of the file: androguard reads nothing, we salvage entries from local headers",
    ),
    (
        "malformed/prepended_junk.apk",
        "androguard:cert_sha256_v1",
        "4 KiB prepended without adjusting offsets: androguard finds no central directory, we re-base as zipfile does",
    ),
];

struct Tally {
    compared: usize,
    matched: usize,
    /// Per source (`whole`, `zipfile`, `apkinspector`, `androguard`): (compared, matched).
    by_source: BTreeMap<String, (usize, usize)>,
    mismatches: BTreeMap<(String, String), String>,
}

impl Tally {
    fn check(&mut self, file: &str, key: String, ok: bool, what: impl FnOnce() -> String) {
        self.compared += 1;
        let source = key.split_once(':').map_or("whole", |(s, _)| s).to_string();
        let slot = self.by_source.entry(source).or_default();
        slot.0 += 1;
        if ok {
            slot.1 += 1;
        }
        if ok {
            self.matched += 1;
        } else {
            self.mismatches.insert((file.to_string(), key), what());
        }
    }
}

fn tlsh_str(d: &Option<apksift_tlsh::Digest>) -> String {
    d.map_or_else(|| "TNULL".to_string(), |d| d.to_string())
}

/// Raw name bytes of a zipfile entry.
fn zipfile_raw(e: &Value) -> Vec<u8> {
    match e["raw_name_hex"].as_str() {
        Some(h) => common::unhex(h),
        None => e["name"].as_str().unwrap().as_bytes().to_vec(),
    }
}

/// apkInspector's name: UTF-8 with invalid bytes dropped.
fn drop_invalid(raw: &[u8]) -> String {
    let mut s = String::new();
    for c in raw.utf8_chunks() {
        s.push_str(c.valid());
    }
    s
}

fn raw_of(fp_entry: &apksift_fingerprint::EntryInfo) -> Vec<u8> {
    match &fp_entry.raw_name_hex {
        Some(h) => common::unhex(h),
        None => fp_entry.name.replace("\\\\", "\\").into_bytes(),
    }
}

fn compare(file: &str, exp: &Value, fp: &Fingerprint, t: &mut Tally) {
    // Whole file.
    t.check(
        file,
        "sha256".into(),
        exp["sha256"] == fp.sha256.as_str(),
        || format!("sha256 {}", fp.sha256),
    );
    t.check(file, "size".into(), exp["size"] == fp.size, || {
        format!("size {}", fp.size)
    });
    let tl = tlsh_str(&fp.tlsh);
    t.check(
        file,
        "tlsh_whole".into(),
        exp["tlsh_whole"] == tl.as_str(),
        || format!("tlsh {tl}"),
    );

    let ours = fp.entries.as_deref().unwrap_or(&[]);
    // zipfile: by position and raw name bytes.
    for (i, e) in exp["entries"].as_array().unwrap().iter().enumerate() {
        let Some(sha) = e["sha256"].as_str() else {
            continue;
        };
        let raw = zipfile_raw(e);
        let key = format!("zipfile:{}", apksift_apk::escape_name(&raw));
        let mine = ours.get(i).filter(|o| raw_of(o) == raw);
        let ok = mine.is_some_and(|o| {
            o.sha256.as_deref() == Some(sha) && tlsh_str(&o.tlsh) == e["tlsh"].as_str().unwrap()
        });
        t.check(file, key, ok, || match mine {
            None => format!("entry {i}: no entry with these name bytes at this position"),
            Some(o) => format!(
                "entry {i}: ours sha256 {:?} read {} err {:?} trunc {}, zipfile {sha}",
                o.sha256, o.read_size, o.error, o.truncated
            ),
        });
    }
    // apkInspector: by name (invalid UTF-8 dropped); it keeps one entry per name.
    if let Some(ai) = exp["apkinspector"]["entries"].as_array() {
        for e in ai {
            let Some(sha) = e["sha256"].as_str() else {
                continue;
            };
            let name = e["name"].as_str().unwrap();
            let cands: Vec<_> = ours
                .iter()
                .filter(|o| drop_invalid(&raw_of(o)) == name)
                .collect();
            let ok = cands.iter().any(|o| {
                o.sha256.as_deref() == Some(sha) && tlsh_str(&o.tlsh) == e["tlsh"].as_str().unwrap()
            });
            let key = format!("apkinspector:{}", apksift_apk::escape_name(name.as_bytes()));
            t.check(file, key, ok, || {
                format!(
                    "apkInspector {sha} (lh_method {} cd_method {}); ours {:?}",
                    e["lh_method"],
                    e["cd_method"],
                    cands
                        .iter()
                        .map(|o| (o.sha256.clone(), o.error.clone(), o.truncated))
                        .collect::<Vec<_>>()
                )
            });
        }
    }
    // androguard.
    let ag = &exp["androguard"];
    if ag["error"].is_null() {
        let errs = ag.get("field_errors").cloned().unwrap_or(Value::Null);
        let man = fp.manifest.as_ref();
        for field in ["package", "version_code", "min_sdk", "target_sdk"] {
            let Some(want) = ag[field].as_str().filter(|s| !s.is_empty()) else {
                continue;
            };
            if !errs[field].is_null() {
                continue;
            }
            let got = man.and_then(|m| match field {
                "package" => m.package.clone(),
                "version_code" => m.version_code.clone(),
                "min_sdk" => m.min_sdk.clone(),
                _ => m.target_sdk.clone(),
            });
            t.check(
                file,
                format!("androguard:{field}"),
                got.as_deref() == Some(want),
                || {
                    format!(
                        "ours {got:?}, androguard {want:?}; manifest_error {:?}",
                        fp.manifest_error
                    )
                },
            );
        }
        for (field, scheme) in [
            ("cert_sha256_v1", "v1"),
            ("cert_sha256_v2", "v2"),
            ("cert_sha256_v3", "v3"),
        ] {
            let Some(want) = ag[field].as_array() else {
                continue;
            };
            if !errs[field].is_null() {
                continue;
            }
            let want: BTreeSet<String> = want
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            let got: BTreeSet<String> = fp
                .certificates
                .iter()
                .filter(|c| c.scheme == scheme)
                .map(|c| c.sha256.clone())
                .collect();
            t.check(file, format!("androguard:{field}"), got == want, || {
                format!("ours {got:?}, androguard {want:?}")
            });
        }
    }
}

#[test]
fn corpus_matches_reference_tools() {
    let Some(dir) = common::apk_dir() else { return };
    let opts = Options {
        include_entries: true,
        ..Options::default()
    };
    let mut t = Tally {
        compared: 0,
        matched: 0,
        by_source: BTreeMap::new(),
        mismatches: BTreeMap::new(),
    };
    let mut files = 0;
    for line in std::fs::read_to_string(dir.join("expected.jsonl"))
        .unwrap()
        .lines()
    {
        let exp: Value = serde_json::from_str(line).unwrap();
        let file = exp["file"].as_str().unwrap().to_string();
        let bytes = std::fs::read(dir.join(&file)).unwrap();
        let fp = fingerprint(&bytes, &opts);
        assert!(
            !fp.anomalies.iter().any(|a| a.code == "internal_error"),
            "{file}: internal error"
        );
        compare(&file, &exp, &fp, &mut t);
        files += 1;
    }
    let mut explained = 0;
    let mut unexplained = Vec::new();
    for ((file, key), what) in &t.mismatches {
        if EXCEPTIONS.iter().any(|(f, k, _)| f == file && k == key) {
            explained += 1;
        } else {
            unexplained.push(format!("{file} | {key} | {what}"));
        }
    }
    let stale: Vec<_> = EXCEPTIONS
        .iter()
        .filter(|(f, k, _)| !t.mismatches.contains_key(&(f.to_string(), k.to_string())))
        .collect();
    eprintln!(
        "corpus: {files} files, {} checks, {} matched, {explained} explained differences, {} unexplained, {} stale exceptions",
        t.compared,
        t.matched,
        unexplained.len(),
        stale.len()
    );
    for (source, (c, m)) in &t.by_source {
        eprintln!("  {source}: {c} compared, {m} matched, {} explained", c - m);
    }
    for u in &unexplained {
        eprintln!("UNEXPLAINED {u}");
    }
    for s in &stale {
        eprintln!("STALE {s:?}");
    }
    assert!(unexplained.is_empty() && stale.is_empty());
}

/// Every file under `apk/` (including `malformed/` and `malware/`, and files not listed in
/// `expected.jsonl`) fingerprints without panic, with whole-file hashes and a TLSH or its reason.
#[test]
fn corpus_every_file_fingerprints() {
    let Some(dir) = common::apk_dir() else { return };
    let files = common::all_apks(&dir);
    assert!(files.len() >= 218, "only {} files found", files.len());
    for (i, with_entries) in [(0, false), (1, true)] {
        let _ = i;
        let opts = Options {
            include_entries: with_entries,
            ..Options::default()
        };
        for f in &files {
            let bytes = std::fs::read(dir.join(f)).unwrap();
            let fp = fingerprint(&bytes, &opts);
            assert_eq!(fp.size, bytes.len() as u64, "{f}");
            assert_eq!(fp.sha256.len(), 64, "{f}");
            assert!(
                fp.tlsh.is_some() != fp.tlsh_error.is_some(),
                "{f}: tlsh xor tlsh_error"
            );
            assert!(
                !fp.anomalies.iter().any(|a| a.code == "internal_error"),
                "{f}: internal error"
            );
            assert!(
                fp.zip.ok || fp.zip.error.is_some(),
                "{f}: zip error missing"
            );
            // Serialises and reads back identically.
            let json = serde_json::to_string(&fp).unwrap();
            let back: Fingerprint = serde_json::from_str(&json).unwrap();
            assert_eq!(back, fp, "{f}: JSON round trip");
        }
    }
    eprintln!(
        "corpus: {} files fingerprinted twice (with and without entries)",
        files.len()
    );
}

fn codes(fp: &Fingerprint) -> BTreeSet<&str> {
    fp.anomalies.iter().map(|a| a.code.as_str()).collect()
}

/// The generated malformed variants: each raises its anomaly, and the ZIP verdict and components
/// are as documented in docs/APK.md.
#[test]
fn corpus_malformed_variants_flagged() {
    let Some(dir) = common::apk_dir() else { return };
    // (file, zip ok, component count, anomaly codes that must be present)
    let table: &[(&str, bool, usize, &[&str])] = &[
        ("appended_junk", true, 3, &["trailing_data"]),
        ("bad_crc", true, 3, &["crc_mismatch"]),
        ("cd_lh_name_mismatch", true, 3, &["local_name_mismatch"]),
        ("cd_offset_outside_file", false, 3, &["salvaged"]),
        ("data_descriptor_entries", true, 3, &[]),
        ("duplicate_entries", true, 5, &["duplicate_name"]),
        ("empty_name_entry", true, 3, &["empty_name"]),
        (
            "eocd_entry_count_mismatch",
            true,
            3,
            &["eocd_entry_count_mismatch"],
        ),
        ("fake_encryption_flag", true, 3, &["encryption_flag"]),
        (
            "fake_encryption_flag_cd_only",
            true,
            3,
            &["encryption_flag", "local_flags_mismatch"],
        ),
        ("many_entries_100k", true, 3, &["zip64"]),
        (
            "method_cd_deflate_data_stored",
            true,
            3,
            &["local_method_mismatch", "method_fallback_stored"],
        ),
        (
            "method_lh_deflate_data_stored",
            true,
            3,
            &["local_method_mismatch"],
        ),
        (
            "method_lh_stored_data_deflated",
            true,
            3,
            &["local_method_mismatch"],
        ),
        (
            "method_unknown_data_stored",
            true,
            3,
            &["unknown_compression_method"],
        ),
        (
            "nul_and_control_in_name",
            true,
            3,
            &["name_nul", "name_control_char", "name_invalid_utf8"],
        ),
        (
            "path_traversal",
            true,
            3,
            &["name_path_traversal", "name_absolute", "name_backslash"],
        ),
        (
            "prepended_junk",
            true,
            3,
            &["cd_offset_shifted", "prepended_data"],
        ),
        ("random_bytes", false, 0, &[]),
        ("rebuilt_clean", true, 3, &[]),
        ("truncated_half", false, 3, &["salvaged"]),
        ("truncated_tail", false, 3, &["salvaged"]),
        ("zero_length", false, 0, &[]),
        (
            "zip_bomb_declared_10GiB",
            true,
            3,
            &[
                "declared_size_exceeds_limit",
                "declared_ratio_exceeds_limit",
            ],
        ),
        (
            "zip_bomb_declared_4GiB",
            true,
            3,
            &[
                "declared_size_exceeds_limit",
                "declared_ratio_exceeds_limit",
            ],
        ),
        ("zip_bomb_ratio", true, 3, &["declared_ratio_exceeds_limit"]),
        ("zip_bomb_understated", true, 3, &[]),
    ];
    let clean = fingerprint(
        &std::fs::read(dir.join("malformed/rebuilt_clean.apk")).unwrap(),
        &Options::default(),
    );
    for (name, ok, ncomp, want) in table {
        let bytes = std::fs::read(dir.join(format!("malformed/{name}.apk"))).unwrap();
        let fp = fingerprint(&bytes, &Options::default());
        let got = codes(&fp);
        assert_eq!(fp.zip.ok, *ok, "{name}: zip.ok ({:?})", fp.zip.error);
        assert_eq!(fp.components.len(), *ncomp, "{name}: components");
        for w in *want {
            assert!(got.contains(w), "{name}: missing anomaly {w}; got {got:?}");
        }
        if *name == "rebuilt_clean" || *name == "data_descriptor_entries" {
            assert!(got.is_empty(), "{name}: unexpected anomalies {got:?}");
        }
        // Whatever the damage, the readable components are the base APK's.
        if *ncomp == 3 && *name != "duplicate_entries" {
            for (a, b) in fp.components.iter().zip(&clean.components) {
                if *name == "truncated_half" && a.kind == apksift_fingerprint::ComponentKind::Dex {
                    continue;
                }
                assert_eq!(
                    (a.kind, &a.name, &a.sha256),
                    (b.kind, &b.name, &b.sha256),
                    "{name}: component differs"
                );
            }
        }
        if fp.components.len() == 3 {
            assert_eq!(
                fp.manifest.as_ref().and_then(|m| m.package.as_deref()),
                Some("android.appsecurity.cts.tinyapp"),
                "{name}"
            );
        }
    }
}

/// Zip bombs: output is bounded and the limit that stopped each read is flagged.
#[test]
fn corpus_zip_bombs_bounded() {
    let Some(dir) = common::apk_dir() else { return };
    let opts = Options {
        include_entries: true,
        ..Options::default()
    };
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "zip_bomb_ratio",
            "assets/zeros.bin",
            &["compression_ratio_limit"],
        ),
        (
            "zip_bomb_understated",
            "assets/understated.bin",
            &["compression_ratio_limit", "uncompressed_size_mismatch"],
        ),
        (
            "zip_bomb_declared_10GiB",
            "assets/bomb.bin",
            &["uncompressed_size_mismatch", "declared_size_exceeds_limit"],
        ),
        (
            "zip_bomb_declared_4GiB",
            "assets/bomb.bin",
            &["uncompressed_size_mismatch", "declared_size_exceeds_limit"],
        ),
    ];
    for (file, entry, want) in cases {
        let bytes = std::fs::read(dir.join(format!("malformed/{file}.apk"))).unwrap();
        let t = std::time::Instant::now();
        let fp = fingerprint(&bytes, &opts);
        let ms = t.elapsed().as_millis();
        let e = fp
            .entries
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.name == *entry)
            .unwrap();
        for w in *want {
            assert!(
                fp.anomalies
                    .iter()
                    .any(|a| a.code == *w && a.entry.as_deref() == Some(*entry)),
                "{file}: no {w} on {entry}"
            );
        }
        assert!(e.read_size <= 2 << 20, "{file}: read {} bytes", e.read_size);
        assert!(e.sha256.is_some(), "{file}: bytes read are still hashed");
        let json = serde_json::to_string(&fp).unwrap();
        assert!(
            json.len() < 64 << 10,
            "{file}: JSON of {} bytes",
            json.len()
        );
        eprintln!(
            "{file}: {entry} read {} bytes (truncated {}), {ms} ms, JSON {} bytes",
            e.read_size,
            e.truncated,
            json.len()
        );
    }
}

/// 100 006 entries (zip64 EOCD): time and output stay proportional.
#[test]
fn corpus_many_entries_bounded_time() {
    let Some(dir) = common::apk_dir() else { return };
    let bytes = std::fs::read(dir.join("malformed/many_entries_100k.apk")).unwrap();
    for include_entries in [false, true] {
        let t = std::time::Instant::now();
        let fp = fingerprint(
            &bytes,
            &Options {
                include_entries,
                ..Options::default()
            },
        );
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "many_entries_100k (entries: {include_entries}): {secs:.3} s in this build profile"
        );
        assert_eq!(fp.zip.entry_count, 100_006);
        assert_eq!(
            fp.entries.as_ref().map(Vec::len),
            include_entries.then_some(100_006)
        );
        // The test profile is lightly optimised; release takes a fraction of this (docs/APK.md).
        assert!(secs < 10.0, "took {secs} s");
    }
    // The entry cap holds: with a cap of 1000, 1000 entries are processed and the rest flagged.
    let limits = apksift_apk::Limits {
        max_entries: 1000,
        ..Default::default()
    };
    let fp = fingerprint(
        &bytes,
        &Options {
            limits,
            include_entries: false,
        },
    );
    assert_eq!(fp.zip.entry_count, 1000);
    assert!(codes(&fp).contains("entry_limit"));
}
