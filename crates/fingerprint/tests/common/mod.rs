//! Shared helpers for the corpus tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `$APKSIFT_TESTDATA` (default `../shared/data` next to the repository), if it holds the APK corpus.
pub fn apk_dir() -> Option<PathBuf> {
    let base = std::env::var_os("APKSIFT_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"))
        });
    let dir = base.join("apk");
    if dir.join("expected.jsonl").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIP: APK corpus not found at {} (set APKSIFT_TESTDATA)",
            dir.display()
        );
        None
    }
}

/// Every `.apk` under `dir`, sorted, as paths relative to `dir` with `/` separators.
pub fn all_apks(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "apk") {
                let rel = p
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}
