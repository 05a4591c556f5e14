//! The binary/text manifest reader on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = apksift_apk::parse_manifest(data);
});
