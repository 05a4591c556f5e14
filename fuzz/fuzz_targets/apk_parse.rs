//! The whole fingerprint on arbitrary bytes: must never panic (the `fuzzing` feature lets a panic
//! inside the archive reader through instead of reporting it as an anomaly), and the whole-file
//! fields must always be present. The byte limits are lowered so that each run stays fast; the
//! code paths are the same as with the defaults.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = apksift_apk::Limits {
        max_entry_bytes: 1 << 20,
        max_total_bytes: 4 << 20,
        ratio_grace_bytes: 64 << 10,
        ..Default::default()
    };
    let opts = apksift_fingerprint::Options { limits, include_entries: true };
    let fp = apksift_fingerprint::fingerprint(data, &opts);
    assert_eq!(fp.size, data.len() as u64);
    assert_eq!(fp.sha256.len(), 64);
    assert!(fp.tlsh.is_some() != fp.tlsh_error.is_some());
});
