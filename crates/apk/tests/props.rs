//! Property tests: arbitrary bytes and mutated archives never panic, reads stay within their
//! limits, and every reported anomaly has a non-empty code and detail.

mod common;

use apksift_apk::{Archive, Limits, parse_manifest};
use common::{Axml, Entry, zip};
use proptest::prelude::*;

fn sample() -> Vec<u8> {
    zip(&[
        Entry::deflated("AndroidManifest.xml", &Axml::manifest().build()),
        Entry::stored("classes.dex", &[7u8; 300]),
        Entry::deflated(
            "lib/x86/libz.so",
            &(0..2000u32)
                .map(|i| (i * 7 % 251) as u8)
                .collect::<Vec<_>>(),
        ),
        Entry::stored("META-INF/CERT.SF", b"x"),
        Entry::stored(
            "META-INF/CERT.RSA",
            &common::pkcs7(&[common::cert(1, "a", "a")], 1, "a"),
        ),
    ])
}

/// Everything a caller can do with an archive.
fn exercise(data: &[u8], limits: &Limits) {
    let archive = match Archive::parse(data, limits) {
        Ok(a) => a,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            Archive::salvage(data, limits)
        }
    };
    for a in archive.anomalies() {
        assert!(!a.code.is_empty() && !a.detail.is_empty());
    }
    for i in 0..archive.entries().len() {
        let mut n = 0u64;
        let r = archive.read(i, 1 << 20, &mut |c: &[u8]| n += c.len() as u64);
        assert_eq!(n, r.bytes);
        assert!(n <= 1 << 20);
        let _ = archive.entries()[i].display_name();
    }
    assert!(archive.bytes_read() <= limits.max_total_bytes);
    let _ = archive.manifest();
    let _ = apksift_apk::certificates(&archive);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        exercise(&data, &Limits::default());
        let _ = parse_manifest(&data);
    }

    #[test]
    fn random_bytes_with_zip_signatures_never_panic(
        parts in proptest::collection::vec(
            prop_oneof![
                Just(b"PK\x03\x04".to_vec()),
                Just(b"PK\x01\x02".to_vec()),
                Just(b"PK\x05\x06".to_vec()),
                Just(b"PK\x06\x06".to_vec()),
                Just(b"PK\x06\x07".to_vec()),
                Just(b"PK\x07\x08".to_vec()),
                Just(b"APK Sig Block 42".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..64),
            ],
            0..64,
        )
    ) {
        exercise(&parts.concat(), &Limits::default());
    }

    #[test]
    fn mutated_archive_never_panics(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        insert in proptest::collection::vec(any::<u8>(), 0..16),
        at in any::<prop::sample::Index>(),
    ) {
        let mut data = sample();
        for (i, b) in flips {
            let i = i.index(data.len());
            data[i] ^= b;
        }
        let at = at.index(data.len());
        data.splice(at..at, insert);
        exercise(&data, &Limits::default());
        let cut = cut.index(data.len() + 1);
        exercise(&data[..cut], &Limits { max_total_bytes: 5000, ..Limits::default() });
    }

    #[test]
    fn mutated_manifest_never_panics(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
    ) {
        let mut data = Axml::manifest().build();
        for (i, b) in flips {
            let i = i.index(data.len());
            data[i] ^= b;
        }
        if let Ok(m) = parse_manifest(&data) {
            prop_assert!(m.problems.len() <= 33);
        }
    }
}
