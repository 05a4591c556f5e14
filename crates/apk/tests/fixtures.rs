//! Self-generated fixtures for every kind of CASES.md 19–27 (and the archive-level tricks around
//! them), so the behaviour is pinned without the shared corpus. Each test builds its archive in
//! memory with `common`'s writers.

mod common;

use apksift_apk::{
    Archive, Decoding, Limits, ManifestFormat, Scheme, Truncation, ZipError, codes, parse_manifest,
};
use common::{Axml, Entry, Zip, zip};

fn has(anoms: &[apksift_apk::Anomaly], code: &str) -> bool {
    anoms.iter().any(|a| a.code == code)
}

fn read_all(a: &Archive<'_>, i: usize) -> (Vec<u8>, apksift_apk::ReadReport) {
    a.read_to_vec(i, u64::MAX)
}

fn base() -> Vec<Entry> {
    vec![
        Entry::deflated("AndroidManifest.xml", &Axml::manifest().build()),
        Entry::stored("classes.dex", &[7u8; 3000]),
        Entry::deflated("res/raw/text.txt", b"hello hello hello hello"),
    ]
}

#[test]
fn baseline_reads_clean() {
    let z = zip(&base());
    let a = Archive::parse(&z, &Limits::default()).unwrap();
    assert!(a.anomalies().is_empty(), "{:?}", a.anomalies());
    assert_eq!(a.entries().len(), 3);
    let (d, r) = read_all(&a, 2);
    assert_eq!(d, b"hello hello hello hello");
    assert!(r.is_complete() && r.anomalies.is_empty());
    assert_eq!(r.decoding, Some(Decoding::Deflated));
    let m = a.manifest().result.unwrap();
    assert_eq!(m.package.as_deref(), Some("com.example.fixture"));
    assert_eq!(m.version_code.as_deref(), Some("42"));
    assert_eq!(m.version_name.as_deref(), Some("1.2.3"));
    assert_eq!(m.min_sdk.as_deref(), Some("21"));
    assert_eq!(m.target_sdk.as_deref(), Some("34"));
    assert!(m.problems.is_empty(), "{:?}", m.problems);
}

// ---- case 19: bad CRC-32 -------------------------------------------------------------------

#[test]
fn case19_bad_crc_is_read_and_flagged() {
    let mut es = base();
    es[1].cd_crc ^= 0xdead_beef;
    es[1].lh_crc = es[1].cd_crc;
    let z = zip(&es);
    let a = Archive::parse(&z, &Limits::default()).unwrap();
    let (d, r) = read_all(&a, 1);
    assert_eq!(d, vec![7u8; 3000], "data is returned as Android would");
    assert!(r.error.is_none());
    assert!(has(&r.anomalies, codes::CRC_MISMATCH));
}

// ---- case 20: invalid compression method on stored data --------------------------------------

#[test]
fn case20_unknown_method_equal_sizes_read_as_stored() {
    let mut es = base();
    es[1] = es[1].clone().method(0x5a);
    let z = zip(&es);
    let a = Archive::parse(&z, &Limits::default()).unwrap();
    assert!(has(a.anomalies(), codes::UNKNOWN_COMPRESSION_METHOD));
    let (d, r) = read_all(&a, 1);
    assert_eq!(r.decoding, Some(Decoding::UnknownAsStored));
    assert_eq!(d, vec![7u8; 3000]);
    assert!(r.anomalies.is_empty());
}

#[test]
fn case20_unknown_method_differing_sizes_tries_raw_deflate() {
    let mut es = base();
    es[2] = es[2].clone().method(0x7600);
    let z = zip(&es);
    let a = Archive::parse(&z, &Limits::default()).unwrap();
    let (d, r) = read_all(&a, 2);
    assert_eq!(r.decoding, Some(Decoding::UnknownAsDeflate));
    assert_eq!(d, b"hello hello hello hello");
}

// ---- case 21: fake encryption flag -----------------------------------------------------------

#[test]
fn case21_encryption_bit_ignored_and_flagged() {
    for cd_only in [false, true] {
        let es: Vec<Entry> = base()
            .into_iter()
            .map(|mut e| {
                e.cd_flags |= 1;
                if !cd_only {
                    e.lh_flags |= 1;
                }
                e
            })
            .collect();
        let z = zip(&es);
        let a = Archive::parse(&z, &Limits::default()).unwrap();
        assert!(has(a.anomalies(), codes::ENCRYPTION_FLAG));
        assert_eq!(has(a.anomalies(), codes::LOCAL_FLAGS_MISMATCH), cd_only);
        for (i, e) in es.iter().enumerate() {
            let (d, r) = read_all(&a, i);
            assert!(r.is_complete() && r.anomalies.is_empty());
            assert_eq!(d, e.data);
        }
    }
}

// ---- case 22: local header and central directory disagree -------------------------------------

#[test]
fn case22_local_method_ignored() {
    // Local says deflate, central says stored (data stored): read as stored.
    let mut es = base();
    es[1].lh_method = 8;
    // Local says stored, central says deflate (data deflated): inflated.
    es[2].lh_method = 0;
    let z = zip(&es);
    let a = Archive::parse(&z, &Limits::default()).unwrap();
    assert_eq!(
        a.anomalies()
            .iter()
            .filter(|x| x.code == codes::LOCAL_METHOD_MISMATCH)
            .count(),
        2
    );
    assert_eq!(read_all(&a, 1).0, vec![7u8; 3000]);
    assert_eq!(read_all(&a, 2).0, b"hello hello hello hello");
}

#[test]
fn case22_central_deflate_over_stored_data_falls_back_flagged() {
    let mut es = base();
    let data = es[0].data.clone();
    es[0].payload = data.clone();
    es[0].lh_csize = data.len() as u64;
    es[0].cd_csize = data.len() as u64;
    es[0].lh_method = 0;
    let z = zip(&es);
    let a = Archive::parse(&z, &Limits::default()).unwrap();
    let (d, r) = read_all(&a, 0);
    assert_eq!(r.decoding, Some(Decoding::FallbackStored));
    assert!(has(&r.anomalies, codes::METHOD_FALLBACK_STORED));
    assert_eq!(d, data);
    // Without the local header's hint the entry is unreadable, as on Android.
    let mut es = base();
    es[1].cd_method = 8;
    es[1].lh_method = 8;
    es[1].cd_usize = 2999;
    let z = zip(&es);
    let a = Archive::parse(&z, &Limits::default()).unwrap();
    let (_, r) = read_all(&a, 1);
    assert_ne!(r.decoding, Some(Decoding::FallbackStored));
    assert!(
        r.error.is_some(),
        "stored bytes are no deflate stream: {r:?}"
    );
    assert!(has(&r.anomalies, codes::READ_ERROR));
}

#[test]
fn case22_name_and_size_mismatch_flagged_central_wins() {
    let mut es = base();
    es[1].name_lh = b"classes.xex".to_vec();
    es[2].lh_usize = 0;
    es[2].lh_crc = 0;
    let z = zip(&es);
    let a = Archive::parse(&z, &Limits::default()).unwrap();
    assert!(has(a.anomalies(), codes::LOCAL_NAME_MISMATCH));
    assert!(has(a.anomalies(), codes::LOCAL_HEADER_MISMATCH));
    assert_eq!(a.entries()[1].name, b"classes.dex");
    assert_eq!(read_all(&a, 1).0, vec![7u8; 3000]);
    assert_eq!(read_all(&a, 2).0, b"hello hello hello hello");
}

#[test]
fn case22_data_descriptors_with_and_without_signature() {
    for with_sig in [true, false] {
        let es: Vec<Entry> = base()
            .into_iter()
            .map(|mut e| {
                e = e.flags(8);
                let mut dd = Vec::new();
                if with_sig {
                    dd.extend_from_slice(&common::SIG_DD.to_le_bytes());
                }
                dd.extend_from_slice(&e.cd_crc.to_le_bytes());
                dd.extend_from_slice(&(e.cd_csize as u32).to_le_bytes());
                dd.extend_from_slice(&(e.cd_usize as u32).to_le_bytes());
                e.descriptor = Some(dd);
                e.lh_crc = 0;
                e.lh_csize = 0;
                e.lh_usize = 0;
                e
            })
            .collect();
        let z = zip(&es);
        let a = Archive::parse(&z, &Limits::default()).unwrap();
        assert!(a.anomalies().is_empty(), "{:?}", a.anomalies());
        for (i, e) in es.iter().enumerate() {
            assert_eq!(read_all(&a, i).0, e.data);
        }
    }
    // A descriptor that disagrees with the central directory is flagged.
    let mut es = base();
    es[2] = es[2].clone().flags(8);
    let mut dd = common::SIG_DD.to_le_bytes().to_vec();
    dd.extend_from_slice(&[0; 12]);
    es[2].descriptor = Some(dd);
    let z = zip(&es);
    let a = Archive::parse(&z, &Limits::default()).unwrap();
    assert!(has(a.anomalies(), codes::DATA_DESCRIPTOR_MISMATCH));
}

// ---- case 23: corrupt binary manifest ----------------------------------------------------------

fn manifest_of(m: &Axml) -> apksift_apk::Manifest {
    parse_manifest(&m.build()).unwrap()
}

#[test]
fn case23_tampered_file_header_still_parses() {
    let mut m = Axml::manifest();
    m.file_type = 0;
    m.file_size_delta = 1000;
    let r = manifest_of(&m);
    assert_eq!(r.package.as_deref(), Some("com.example.fixture"));
    assert_eq!(r.version_code.as_deref(), Some("42"));
    assert!(r.problems.iter().any(|p| p.contains("file chunk type")));
    assert!(r.problems.iter().any(|p| p.contains("declares")));
}

#[test]
fn case23_bad_node_header_size_androguard_1137() {
    // The namespace node's header size is 0x1c01 (as in androguard#1137): ignored.
    let m = Axml::manifest();
    let mut bytes = m.build();
    let ns_at = bytes
        .windows(4)
        .position(|w| w == [0x00, 0x01, 0x10, 0x00])
        .unwrap();
    bytes[ns_at + 2..ns_at + 4].copy_from_slice(&0x1c01u16.to_le_bytes());
    let r = parse_manifest(&bytes).unwrap();
    assert_eq!(r.package.as_deref(), Some("com.example.fixture"));
    assert_eq!(r.target_sdk.as_deref(), Some("34"));
    assert!(!r.problems.is_empty());
}

#[test]
fn case23_element_header_size_20_and_attribute_size_24() {
    let mut m = Axml::manifest();
    m.node_header_size = 20;
    m.attr_size = 24;
    let r = manifest_of(&m);
    assert_eq!(r.package.as_deref(), Some("com.example.fixture"));
    assert_eq!(r.version_name.as_deref(), Some("1.2.3"));
    assert_eq!(r.min_sdk.as_deref(), Some("21"));
}

#[test]
fn case23_bad_element_size_and_string_count() {
    let mut m = Axml::manifest();
    m.element_size_override = Some(0x7fff_0000);
    m.string_count_override = Some(0xffff_fff0);
    let r = manifest_of(&m);
    assert_eq!(r.package.as_deref(), Some("com.example.fixture"));
    assert_eq!(r.version_code.as_deref(), Some("42"));
    assert!(r.problems.iter().any(|p| p.contains("size")));
}

#[test]
fn case23_renamed_attributes_resolved_by_resource_id() {
    // Obfuscated attribute names: Android resolves android: attributes by resource id.
    let mut m = Axml::manifest();
    m.strings[0] = "x".into();
    m.strings[2] = "yy".into();
    let r = manifest_of(&m);
    assert_eq!(r.version_code.as_deref(), Some("42"));
    assert_eq!(r.min_sdk.as_deref(), Some("21"));
    // A name that says versionCode but an id that says something else is not versionCode.
    let mut m = Axml::manifest();
    m.res_ids[0] = 0x0101_0001;
    assert_eq!(manifest_of(&m).version_code, None);
}

#[test]
fn case23_utf8_pool_and_text_manifest() {
    let mut m = Axml::manifest();
    m.utf8 = true;
    assert_eq!(
        manifest_of(&m).package.as_deref(),
        Some("com.example.fixture")
    );
    let text = br#"<?xml version="1.0"?><!-- c --><manifest xmlns:android="x" package="a.b" android:versionCode="7"><uses-sdk android:minSdkVersion="19" /></manifest>"#;
    let r = parse_manifest(text).unwrap();
    assert_eq!(r.format, ManifestFormat::Text);
    assert_eq!(
        (
            r.package.as_deref(),
            r.version_code.as_deref(),
            r.min_sdk.as_deref()
        ),
        (Some("a.b"), Some("7"), Some("19"))
    );
}

#[test]
fn case23_truncated_manifest_never_panics_and_reports() {
    let full = Axml::manifest().build();
    for cut in 0..full.len() {
        match parse_manifest(&full[..cut]) {
            Ok(m) => assert!(!m.problems.is_empty() || cut == full.len(), "cut {cut}"),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}

// ---- case 24: zip bombs ------------------------------------------------------------------------

#[test]
fn case24_declared_10gib_zip64_is_streamed_and_flagged() {
    let mut es = base();
    let mut bomb = Entry::deflated("assets/bomb.bin", &vec![0u8; 1 << 20]);
    let c = bomb.payload.len() as u64;
    bomb.lh_usize = u64::from(u32::MAX);
    bomb.cd_usize = u64::from(u32::MAX);
    bomb.lh_csize = u64::from(u32::MAX);
    bomb.cd_csize = u64::from(u32::MAX);
    bomb.lh_extra = common::zip64_extra(10 << 30, c);
    bomb.cd_extra = common::zip64_extra(10 << 30, c);
    es.push(bomb);
    let z = zip(&es);
    let a = Archive::parse(&z, &Limits::default()).unwrap();
    assert_eq!(a.entries()[3].uncompressed_size, 10 << 30);
    assert!(has(a.anomalies(), codes::DECLARED_SIZE_EXCEEDS_LIMIT));
    assert!(has(a.anomalies(), codes::DECLARED_RATIO_EXCEEDS_LIMIT));
    let mut n = 0u64;
    let r = a.read(3, u64::MAX, &mut |c: &[u8]| n += c.len() as u64);
    assert_eq!(n, 1 << 20);
    assert!(has(&r.anomalies, codes::UNCOMPRESSED_SIZE_MISMATCH));
}

#[test]
fn case24_ratio_entry_and_total_limits_truncate() {
    let mut es = base();
    es.push(Entry::deflated("assets/zeros.bin", &vec![0u8; 8 << 20]));
    let z = zip(&es);
    let a = Archive::parse(&z, &Limits::default()).unwrap();
    let mut n = 0u64;
    let r = a.read(3, u64::MAX, &mut |c: &[u8]| n += c.len() as u64);
    assert_eq!(r.truncated, Some(Truncation::RatioLimit));
    assert!(n <= 2 << 20 && n > 1 << 20, "{n}");
    assert!(has(&r.anomalies, codes::COMPRESSION_RATIO_LIMIT));
    assert!(r.error.is_none() && r.crc32.is_none());
    // Per-entry cap (the caller's cap).
    let (d, r) = a.read_to_vec(1, 100);
    assert_eq!((d.len(), r.truncated), (100, Some(Truncation::EntryLimit)));
    // Per-archive budget shared by all reads.
    let limits = Limits {
        max_total_bytes: 4000,
        ..Limits::default()
    };
    let a = Archive::parse(&z, &limits).unwrap();
    assert!(a.read_to_vec(1, u64::MAX).1.is_complete());
    let (d, r) = a.read_to_vec(1, u64::MAX);
    assert_eq!((d.len(), r.truncated), (1000, Some(Truncation::TotalLimit)));
    assert!(has(&r.anomalies, codes::TOTAL_SIZE_LIMIT));
    assert_eq!(a.bytes_read(), 4000);
}

#[test]
fn case24_understated_size_flagged() {
    let mut es = base();
    let mut e = Entry::deflated("assets/understated.bin", &vec![0u8; 4 << 20]);
    e.cd_usize = 1024;
    e.lh_usize = 1024;
    es.push(e);
    let z = zip(&es);
    let a = Archive::parse(&z, &Limits::default()).unwrap();
    let (d, r) = read_all(&a, 3);
    assert!(d.len() < (2 << 20));
    assert!(has(&r.anomalies, codes::UNCOMPRESSED_SIZE_MISMATCH));
    assert!(has(&r.anomalies, codes::COMPRESSION_RATIO_LIMIT));
}

// ---- case 25: hostile names ---------------------------------------------------------------------

#[test]
fn case25_hostile_names_flagged_and_escaped() {
    let names: &[&[u8]] = &[
        b"../../evil.txt",
        b"/sdcard/abs.txt",
        b"..\\..\\evil_backslash.txt",
        b"C:/evil_drive.txt",
        b"assets/nul\0name.txt",
        b"assets/cr\rlf\nname.txt",
        b"assets/bad-utf8-\xff\xfe.txt",
        b"",
    ];
    let mut es = base();
    for n in names {
        es.push(Entry::stored(n, b"x"));
    }
    let z = zip(&es);
    let a = Archive::parse(&z, &Limits::default()).unwrap();
    for code in [
        codes::NAME_PATH_TRAVERSAL,
        codes::NAME_ABSOLUTE,
        codes::NAME_BACKSLASH,
        codes::NAME_NUL,
        codes::NAME_CONTROL_CHAR,
        codes::NAME_INVALID_UTF8,
        codes::EMPTY_NAME,
    ] {
        assert!(has(a.anomalies(), code), "missing {code}");
    }
    let shown: Vec<String> = a.entries()[3..].iter().map(|e| e.display_name()).collect();
    assert_eq!(shown[2], "..\\\\..\\\\evil_backslash.txt");
    assert_eq!(shown[4], "assets/nul\\x00name.txt");
    assert_eq!(shown[5], "assets/cr\\x0dlf\\x0aname.txt");
    assert_eq!(shown[6], "assets/bad-utf8-\\xff\\xfe.txt");
    // Raw bytes are kept.
    assert_eq!(a.entries()[7].name, b"assets/nul\0name.txt");
    for s in &shown {
        assert!(s.chars().all(|c| !c.is_control()));
    }
}

// ---- case 26: huge entry counts, zip64 -----------------------------------------------------------

#[test]
fn case26_70k_entries_zip64_linear() {
    let mut es = base();
    for i in 0..70_000 {
        es.push(Entry::stored(format!("e/{i:05}"), b""));
    }
    let z = zip(&es);
    let t = std::time::Instant::now();
    let a = Archive::parse(&z, &Limits::default()).unwrap();
    assert_eq!(a.entries().len(), 70_003);
    assert!(has(a.anomalies(), codes::ZIP64));
    for i in 0..a.entries().len() {
        assert!(a.read_to_vec(i, u64::MAX).1.is_complete());
    }
    let secs = t.elapsed().as_secs_f64();
    assert!(secs < 10.0, "{secs} s");
    // The entry cap: processed entries and memory stay bounded, the excess is flagged.
    let a = Archive::parse(
        &z,
        &Limits {
            max_entries: 500,
            ..Limits::default()
        },
    )
    .unwrap();
    assert_eq!(a.entries().len(), 500);
    assert!(has(a.anomalies(), codes::ENTRY_LIMIT));
}

// ---- case 27: duplicate names ---------------------------------------------------------------------

#[test]
fn case27_duplicates_kept_by_position_and_flagged() {
    let mut es = base();
    es.push(Entry::stored("classes.dex", b"DUPLICATE-ENTRY!"));
    let z = zip(&es);
    let a = Archive::parse(&z, &Limits::default()).unwrap();
    assert!(has(a.anomalies(), codes::DUPLICATE_NAME));
    assert_eq!(a.entries().len(), 4);
    assert_eq!(a.find(b"classes.dex"), Some(1));
    assert_eq!(read_all(&a, 1).0, vec![7u8; 3000]);
    assert_eq!(read_all(&a, 3).0, b"DUPLICATE-ENTRY!");
}

// ---- archive-level tricks ------------------------------------------------------------------------

#[test]
fn janus_prepended_data_rebased_and_flagged() {
    let z = Zip {
        prefix: b"dex\n035\0".iter().copied().chain([0u8; 4088]).collect(),
        ..Zip::default()
    }
    .build(&base());
    let a = Archive::parse(&z, &Limits::default()).unwrap();
    assert!(has(a.anomalies(), codes::CD_OFFSET_SHIFTED));
    assert!(has(a.anomalies(), codes::PREPENDED_DATA));
    assert_eq!(a.layout().unwrap().shift, 4096);
    assert_eq!(read_all(&a, 1).0, vec![7u8; 3000]);
}

#[test]
fn appended_data_and_count_mismatch_flagged() {
    let z = Zip {
        trailer: b"TRAILING".repeat(8),
        count_override: Some(9),
        ..Zip::default()
    }
    .build(&base());
    let a = Archive::parse(&z, &Limits::default()).unwrap();
    assert!(has(a.anomalies(), codes::TRAILING_DATA));
    assert!(has(a.anomalies(), codes::EOCD_ENTRY_COUNT_MISMATCH));
    assert_eq!(a.entries().len(), 3);
}

#[test]
fn cd_outside_file_is_an_error_and_salvage_recovers() {
    let z = Zip {
        cd_offset_override: Some(1 << 20),
        ..Zip::default()
    }
    .build(&base());
    let err = Archive::parse(&z, &Limits::default()).unwrap_err();
    assert!(matches!(err, ZipError::CdOutOfBounds { .. }), "{err}");
    let a = Archive::salvage(&z, &Limits::default());
    assert!(has(a.anomalies(), codes::SALVAGED));
    assert_eq!(a.entries().len(), 3);
    assert!(a.entries().iter().all(|e| e.salvaged));
    assert_eq!(read_all(&a, 2).0, b"hello hello hello hello");
}

#[test]
fn truncated_and_empty_inputs() {
    assert_eq!(
        Archive::parse(b"", &Limits::default()).unwrap_err(),
        ZipError::Empty
    );
    let z = zip(&base());
    for cut in [z.len() - 10, z.len() / 2, 21, 3] {
        let err = Archive::parse(&z[..cut], &Limits::default()).unwrap_err();
        assert!(matches!(err, ZipError::EocdNotFound { .. }), "{cut}: {err}");
        let a = Archive::salvage(&z[..cut], &Limits::default());
        for i in 0..a.entries().len() {
            let _ = a.read_to_vec(i, u64::MAX);
        }
    }
    let a = Archive::salvage(&z[..z.len() / 2], &Limits::default());
    assert!(!a.entries().is_empty());
}

// ---- signatures ------------------------------------------------------------------------------------

#[test]
fn v1_signer_certificate_from_pkcs7() {
    let ca = common::cert(1, "ca", "ca");
    let leaf = common::cert(9, "ca", "leaf");
    let other = common::cert(9, "someone-else", "x");
    // Chain order CA first; the signer (issuer "ca", serial 9, named with PrintableString).
    let p7 = common::pkcs7(&[ca.clone(), other, leaf.clone()], 9, "CA");
    let mut es = base();
    es.push(Entry::stored(
        "META-INF/CERT.SF",
        b"Signature-Version: 1.0\r\n",
    ));
    es.push(Entry::deflated("META-INF/CERT.RSA", &p7));
    es.push(Entry::deflated("META-INF/ORPHAN.RSA", &p7));
    let z = zip(&es);
    let a = Archive::parse(&z, &Limits::default()).unwrap();
    let (certs, an) = apksift_apk::certificates(&a);
    assert_eq!(certs.len(), 1);
    assert_eq!((certs[0].scheme, &certs[0].der), (Scheme::V1, &leaf));
    assert!(has(&an, codes::V1_SIGNATURE_WITHOUT_SF));
}

#[test]
fn v2_v3_certificates_from_signing_block() {
    let c2 = common::cert(2, "a", "a");
    let c3 = common::cert(3, "b", "b");
    let block = common::signing_block(
        &[
            (
                0x7109_871a,
                common::scheme_block(std::slice::from_ref(&c2), false),
            ),
            (
                0xf053_68c0,
                common::scheme_block(std::slice::from_ref(&c3), true),
            ),
            (
                0x7109_871a,
                common::scheme_block(std::slice::from_ref(&c3), false),
            ),
            (0x4242_4242, vec![0; 16]),
        ],
        0,
    );
    let z = Zip {
        before_cd: block.clone(),
        ..Zip::default()
    }
    .build(&base());
    let a = Archive::parse(&z, &Limits::default()).unwrap();
    let (certs, an) = apksift_apk::certificates(&a);
    let got: Vec<_> = certs.iter().map(|c| (c.scheme, c.der.clone())).collect();
    assert_eq!(got, vec![(Scheme::V2, c2), (Scheme::V3, c3)]);
    assert!(has(&an, codes::SIGNATURE_SCHEME_DUPLICATE));
    // Header and footer sizes disagree: the block is not used.
    let bad = common::signing_block(
        &[(
            0x7109_871a,
            common::scheme_block(&[common::cert(2, "a", "a")], false),
        )],
        1,
    );
    let z = Zip {
        before_cd: bad,
        ..Zip::default()
    }
    .build(&base());
    let a = Archive::parse(&z, &Limits::default()).unwrap();
    let (certs, an) = apksift_apk::certificates(&a);
    assert!(certs.is_empty());
    assert!(has(&an, codes::SIGNING_BLOCK_INVALID));
    // Every truncation of the scheme block is reported, never a panic.
    let full = common::scheme_block(&[common::cert(2, "a", "a")], true);
    for cut in 0..full.len() {
        let block = common::signing_block(&[(0xf053_68c0, full[..cut].to_vec())], 0);
        let z = Zip {
            before_cd: block,
            ..Zip::default()
        }
        .build(&base());
        let a = Archive::parse(&z, &Limits::default()).unwrap();
        let (certs, an) = apksift_apk::certificates(&a);
        assert!(
            certs.is_empty() && has(&an, codes::SIGNATURE_SCHEME_INVALID),
            "cut {cut}"
        );
    }
}

// ---- adversarial shapes stay linear --------------------------------------------------------------

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = std::time::Instant::now();
    let r = f();
    let secs = t.elapsed().as_secs_f64();
    assert!(secs < 5.0, "{what}: {secs:.2} s");
    r
}

#[test]
fn many_signature_files_and_duplicates_linear() {
    let mut es = base();
    for i in 0..30_000 {
        es.push(Entry::stored(format!("META-INF/S{i}.RSA"), b"x"));
        es.push(Entry::stored("dup", b"y"));
    }
    let z = zip(&es);
    let a = timed("parse", || Archive::parse(&z, &Limits::default()).unwrap());
    let (certs, an) = timed("certificates", || apksift_apk::certificates(&a));
    assert!(certs.is_empty());
    assert!(has(&an, codes::V1_SIGNATURE_WITHOUT_SF));
    assert!(has(a.anomalies(), codes::DUPLICATE_NAME));
}

#[test]
fn salvage_of_descriptor_headers_before_a_gap_linear() {
    // 4 000 local headers with bit 3 set, large extra fields, no descriptor, then 8 MiB without
    // any signature: each header's descriptor search must not rescan the gap.
    let mut data = Vec::new();
    for i in 0..4_000u32 {
        let extra = vec![0u8; 60_000 - (i as usize * 13) % 50_000];
        data.extend_from_slice(&common::SIG_LFH.to_le_bytes());
        data.extend_from_slice(&[20, 0, 8, 0, 0, 0, 0, 0, 0, 0]);
        data.extend_from_slice(&[0; 12]);
        data.extend_from_slice(&1u16.to_le_bytes());
        data.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        data.push(b'a');
        if i % 2 == 0 {
            data.extend_from_slice(&extra[..16]);
        }
    }
    data.extend(std::iter::repeat_n(0x55u8, 8 << 20));
    let a = timed("salvage", || Archive::salvage(&data, &Limits::default()));
    assert!(!a.entries().is_empty());
    timed("reads", || {
        for i in 0..a.entries().len() {
            let _ = a.read_to_vec(i, 1 << 10);
        }
    });
}

#[test]
fn manifest_with_many_elements_linear() {
    let m = Axml::manifest();
    let one = m.build();
    // Repeat the element chunks (everything after the pool and resource map) many times.
    let body_at = one
        .windows(4)
        .position(|w| w == [0x00, 0x01, 0x10, 0x00])
        .unwrap();
    let mut data = one[..body_at].to_vec();
    for _ in 0..50_000 {
        data.extend_from_slice(&one[body_at..]);
    }
    let r = timed("manifest", || parse_manifest(&data).unwrap());
    assert_eq!(r.package.as_deref(), Some("com.example.fixture"));
}
