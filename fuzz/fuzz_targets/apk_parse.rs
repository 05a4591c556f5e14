//! The whole fingerprint on arbitrary bytes: must never panic (the `fuzzing` feature lets a panic
//! inside the archive reader through instead of reporting it as an anomaly), and the whole-file
//! fields must always be present.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = apksift_fingerprint::Options { include_entries: true, ..Default::default() };
    let fp = apksift_fingerprint::fingerprint(data, &opts);
    assert_eq!(fp.size, data.len() as u64);
    assert_eq!(fp.sha256.len(), 64);
    assert!(fp.tlsh.is_some() != fp.tlsh_error.is_some());
});
