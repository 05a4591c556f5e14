//! Shared helpers: test stores (embedded in memory, or Milvus), the corpus location,
//! fingerprint builders.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use apksift_core::{Fingerprint, FingerprintOptions, Store};
use rayon::prelude::*;

/// An empty embedded store in memory (no background threads).
pub fn mem_store() -> Store {
    let dir: Arc<dyn apksift_storage::Directory> = Arc::new(apksift_storage::MemDirectory::new());
    let opts = apksift_index::Options {
        background: false,
        ..apksift_index::Options::default()
    };
    Store::from_database(apksift_index::Database::open_dir(dir, opts).unwrap()).unwrap()
}

/// A store for one test; derefs to [`Store`]. By default an embedded store in memory. With
/// `APKSIFT_TEST_STORE=milvus://HOST:PORT/PREFIX` (and the cargo feature `milvus`) a fresh
/// set of Milvus collections under `PREFIX_<pid>_<test>`, dropped when the test ends (also
/// on a panic).
pub struct TestStore {
    store: Store,
    #[cfg(feature = "milvus")]
    milvus: Option<apksift_milvus::MilvusEngine>,
}

impl std::ops::Deref for TestStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

/// `APKSIFT_TEST_STORE`, when it names a Milvus server.
pub fn milvus_base() -> Option<String> {
    std::env::var("APKSIFT_TEST_STORE")
        .ok()
        .filter(|s| apksift_core::is_milvus_url(s))
}

/// The test store (see [`TestStore`]); `test` names the Milvus collections.
pub fn store(test: &str) -> TestStore {
    let Some(base) = milvus_base() else {
        return TestStore {
            store: mem_store(),
            #[cfg(feature = "milvus")]
            milvus: None,
        };
    };
    milvus_store(&base, test)
}

#[cfg(not(feature = "milvus"))]
fn milvus_store(base: &str, _test: &str) -> TestStore {
    panic!("APKSIFT_TEST_STORE={base} needs the cargo feature: --features milvus")
}

#[cfg(feature = "milvus")]
fn milvus_store(base: &str, test: &str) -> TestStore {
    // milvus://HOST:PORT/PREFIX?OPTIONS -> milvus://HOST:PORT/PREFIX_<pid>_<test>?OPTIONS
    let (addr, query) = base.split_once('?').unwrap_or((base, ""));
    let rest = &addr["milvus://".len()..];
    let (hostport, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = match prefix.trim_matches('/') {
        "" => "apksift_test",
        p => p,
    };
    let tag: String = test
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(24)
        .collect();
    let mut url = format!("milvus://{hostport}/{prefix}_{}_{tag}", std::process::id());
    if !query.is_empty() {
        url = format!("{url}?{query}");
    }
    let parsed = apksift_milvus::MilvusUrl::parse(&url).unwrap();
    let engine = apksift_milvus::MilvusEngine::connect(&parsed)
        .unwrap_or_else(|e| panic!("{url}: {e} (is Milvus running? bash .ci/milvus.sh start)"));
    for c in engine.list_collections().unwrap() {
        engine.drop_collection(&c).unwrap();
    }
    let store = Store::open_url(&url, apksift_core::StoreOptions::default()).unwrap();
    assert_eq!(store.backend_kind(), "milvus");
    TestStore {
        store,
        milvus: Some(engine),
    }
}

#[cfg(feature = "milvus")]
impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some(e) = &self.milvus {
            for c in e.list_collections().unwrap_or_default() {
                let _ = e.drop_collection(&c);
            }
        }
    }
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
