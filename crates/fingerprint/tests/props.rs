//! Property tests for `fingerprint`: random bytes and mutations of a real small APK (the corpus's
//! `apksig/original.apk`, or a generated one when the corpus is absent) never panic, and the
//! whole-file fields are always present and equal to the hashes of the raw bytes.

mod common;
#[path = "../../apk/tests/common/mod.rs"]
mod writer;

use apksift_fingerprint::{Options, Parallelism, fingerprint, fingerprint_with};
use proptest::prelude::*;
use sha2::Digest as _;

/// The sample is loaded (or generated) once, so the skip notice prints once.
fn small_apk() -> Vec<u8> {
    static SAMPLE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    SAMPLE
        .get_or_init(|| {
            if let Some(dir) = common::apk_dir()
                && let Ok(b) = std::fs::read(dir.join("apksig/original.apk"))
            {
                return b;
            }
            eprintln!("note: using a generated APK for the mutation tests");
            writer::zip(&[
                writer::Entry::deflated("AndroidManifest.xml", &writer::Axml::manifest().build()),
                writer::Entry::deflated(
                    "classes.dex",
                    &(0..5000u32)
                        .map(|i| (i * 31 % 253) as u8)
                        .collect::<Vec<_>>(),
                ),
                writer::Entry::stored(
                    "resources.arsc",
                    &(0..700u32)
                        .map(|i| (i * 13 % 241) as u8)
                        .collect::<Vec<_>>(),
                ),
            ])
        })
        .clone()
}

fn check(data: &[u8], include_entries: bool) {
    let opts = Options {
        include_entries,
        ..Options::default()
    };
    let fp = fingerprint(data, &opts);
    // The parallel path gives the same fingerprint for damaged archives too.
    let (par, _) = fingerprint_with(data, &opts, Parallelism::Always);
    assert_eq!(par, fp);
    assert_eq!(fp.size, data.len() as u64);
    assert_eq!(fp.sha256, apksift_apk::hex(&sha2::Sha256::digest(data)));
    match apksift_tlsh::hash(data) {
        Ok(d) => assert_eq!(fp.tlsh, Some(d)),
        Err(e) => assert_eq!(fp.tlsh_error.as_deref(), Some(e.reason())),
    }
    assert!(
        !fp.anomalies.iter().any(|a| a.code == "internal_error"),
        "reader panicked"
    );
    for c in &fp.components {
        assert!(c.tlsh.is_some() != c.tlsh_error.is_some());
        assert_eq!(c.sha256.len(), 64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(data in proptest::collection::vec(any::<u8>(), 0..8192)) {
        check(&data, true);
    }

    #[test]
    fn flipped_bytes(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16)) {
        let mut data = small_apk();
        for (i, b) in flips {
            let i = i.index(data.len());
            data[i] ^= b;
        }
        check(&data, true);
    }

    #[test]
    fn truncated(cut in any::<prop::sample::Index>(), from_front in any::<bool>()) {
        let data = small_apk();
        let cut = cut.index(data.len() + 1);
        if from_front {
            check(&data[cut..], false);
        } else {
            check(&data[..cut], true);
        }
    }

    #[test]
    fn inserted_bytes(at in any::<prop::sample::Index>(), insert in proptest::collection::vec(any::<u8>(), 1..256)) {
        let mut data = small_apk();
        let at = at.index(data.len() + 1);
        data.splice(at..at, insert);
        check(&data, true);
    }
}
