//! Shared helpers: in-memory stores, the corpus location, fingerprint builders.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use apksift_core::{Fingerprint, FingerprintOptions, Store};
use rayon::prelude::*;

/// An empty store in memory (no background threads).
pub fn mem_store() -> Store {
    let dir: Arc<dyn apksift_storage::Directory> = Arc::new(apksift_storage::MemDirectory::new());
    let opts = apksift_index::Options {
        background: false,
        ..apksift_index::Options::default()
    };
    Store::from_database(apksift_index::Database::open_dir(dir, opts).unwrap()).unwrap()
}

/// `$APKSIFT_TESTDATA` or `<workspace>/../shared/data`, if it exists.
pub fn testdata() -> Option<PathBuf> {
    let p = match std::env::var_os("APKSIFT_TESTDATA") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    };
    p.is_dir().then_some(p)
}

/// The APK corpus folder, or a printed SKIP.
pub fn apk_dir(test: &str) -> Option<PathBuf> {
    let d = testdata()
        .map(|d| d.join("apk"))
        .filter(|d| d.join("groups.json").is_file());
    if d.is_none() {
        println!("SKIP: {test}: APKSIFT_TESTDATA (default ../shared/data) has no apk/groups.json");
    }
    d
}

/// Every file of the corpus (relative path, fingerprint), sorted; fingerprinted once.
pub fn corpus(dir: &std::path::Path) -> &'static [(String, Fingerprint)] {
    static CORPUS: OnceLock<Vec<(String, Fingerprint)>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut files = Vec::new();
        walk(dir, dir, &mut files);
        files.sort();
        files
            .par_iter()
            .map(|rel| {
                let bytes = std::fs::read(dir.join(rel)).unwrap();
                (
                    rel.clone(),
                    apksift_core::fingerprint(&bytes, &FingerprintOptions::default()),
                )
            })
            .collect()
    })
}

fn walk(root: &std::path::Path, d: &std::path::Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(root, &p, out);
        } else if p.extension().is_some_and(|x| x == "apk") {
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        }
    }
}
