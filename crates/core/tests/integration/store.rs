//! Store semantics on synthetic fingerprints: upserts, component replacement, deletes,
//! verdict policy, import merging, search order.

use apksift_core::{
    Digest, Fingerprint, ImportFormat, ImportOptions, Label, SampleMeta, ScanOptions,
    SearchOptions, ThreatLevel, VerdictKind,
};

use crate::common::*;

fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn digest(seed: u64) -> Digest {
    apksift_tlsh::hash(&bytes(seed, 4096)).unwrap()
}

/// A digest near `digest(seed)`: the same bytes with a few changed.
fn near(seed: u64, changes: usize) -> Digest {
    let mut b = bytes(seed, 4096);
    for i in 0..changes {
        b[i * 37 % 4096] ^= 0xff;
    }
    apksift_tlsh::hash(&b).unwrap()
}

fn fp(sha_byte: char, whole: Digest, comps: &[(&str, &str, Digest)]) -> Fingerprint {
    let comps: Vec<serde_json::Value> = comps
        .iter()
        .map(|(kind, name, d)| {
            serde_json::json!({"kind": kind, "name": name, "size": 4096,
                "sha256": "0".repeat(64), "tlsh": d.to_string(), "tlsh_error": null, "truncated": false})
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "sha256": sha_byte.to_string().repeat(64), "size": 10000, "tlsh": whole.to_string(),
        "tlsh_error": null, "zip": {"ok": true, "error": null, "entry_count": 4},
        "components": comps, "manifest": null, "manifest_error": null,
        "certificates": [], "anomalies": [], "entries": null
    }))
    .unwrap()
}

#[test]
fn store_reingest_replaces_rows_and_components() {
    let s = store("store_reingest_replaces_rows_and_components");
    let a = fp(
        'a',
        digest(1),
        &[
            ("dex", "classes.dex", digest(2)),
            ("dex", "classes2.dex", digest(3)),
            ("native", "lib/arm64-v8a/libx.so", digest(4)),
        ],
    );
    let meta = SampleMeta::new(Label::Malware)
        .family("Anubis")
        .threat(ThreatLevel::High);
    let o = s.ingest(&a, &meta).unwrap();
    assert!(!o.replaced);
    assert_eq!(o.components, 3);
    let st = s.stats().unwrap();
    assert_eq!((st.samples, st.components), (1, 3));
    let first_seen = s.get_sample(&a.sha256).unwrap().unwrap().first_seen;
    // Same sample, one component fewer: replaced, the stale row deleted, first_seen kept.
    let mut a2 = a.clone();
    a2.components.pop();
    let o = s
        .ingest(&a2, &SampleMeta::new(Label::Grayware).family("Anubis"))
        .unwrap();
    assert!(o.replaced);
    assert_eq!(o.components_removed, 1);
    let st = s.stats().unwrap();
    assert_eq!((st.samples, st.components), (1, 2));
    let got = s
        .get_sample(&a.sha256.to_ascii_uppercase())
        .unwrap()
        .unwrap();
    assert_eq!(got.label, Label::Grayware);
    assert_eq!(got.first_seen, first_seen);
    assert_eq!(got.dex, Some(digest(2)));
    assert_eq!(got.component_keys.len(), 2);
    assert!(got.component_keys[0].starts_with(&format!("{}/dex/classes", a.sha256)));
    // A batch with the same sample twice stores it once.
    let out = s
        .ingest_batch(&[(a.clone(), meta.clone()), (a.clone(), meta.clone())])
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(s.stats().unwrap().samples, 1);
    // Delete removes the sample and its components.
    assert!(s.delete_sample(&a.sha256).unwrap());
    assert!(!s.delete_sample(&a.sha256).unwrap());
    let st = s.stats().unwrap();
    assert_eq!((st.samples, st.components), (0, 0));
    assert!(s.get_sample(&a.sha256).unwrap().is_none());
    assert!(s.get_sample("xyz").is_err());
}

#[test]
fn store_verdict_policy() {
    let s = store("store_verdict_policy");
    let mal = fp(
        'a',
        digest(10),
        &[
            ("manifest", "AndroidManifest.xml", digest(11)),
            ("resources", "resources.arsc", digest(12)),
            ("dex", "classes.dex", digest(13)),
        ],
    );
    s.ingest(
        &mal,
        &SampleMeta::new(Label::Malware)
            .family("Kmin")
            .threat(ThreatLevel::Critical),
    )
    .unwrap();
    let benign = fp('b', digest(20), &[("dex", "classes.dex", digest(21))]);
    s.ingest(&benign, &SampleMeta::new(Label::Benign)).unwrap();
    let opts = ScanOptions::default();

    // Exact match.
    let v = s.scan(&mal, &opts).unwrap();
    assert_eq!(v.verdict, VerdictKind::Malicious);
    assert!(v.exact_match);
    assert_eq!(v.family.as_deref(), Some("Kmin"));
    assert_eq!(v.threat, Some(ThreatLevel::Critical));
    // A variant: whole file far, dex near -> malicious through the dex.
    let var = fp('c', digest(30), &[("dex", "classes.dex", near(13, 3))]);
    let v = s.scan(&var, &opts).unwrap();
    assert_eq!(v.verdict, VerdictKind::Malicious, "{}", v.reason);
    assert!(v.reason.contains("dex:classes.dex"), "{}", v.reason);
    assert_eq!(v.matched_sample.as_deref(), Some(mal.sha256.as_str()));
    let c = v
        .components
        .iter()
        .find(|c| c.component == "dex:classes.dex")
        .unwrap();
    assert!(c.matched);
    assert!(!v.components[0].matched); // whole
    // Only the manifest near: suspicious (single weak component below 30).
    let weak = fp(
        'd',
        digest(40),
        &[("manifest", "AndroidManifest.xml", near(11, 1))],
    );
    let v = s.scan(&weak, &opts).unwrap();
    assert_eq!(v.verdict, VerdictKind::Suspicious, "{}", v.reason);
    // The benign sample's own dex: listed, no verdict; its exact file: no_match.
    let b2 = fp('e', digest(50), &[("dex", "classes.dex", near(21, 1))]);
    let v = s.scan(&b2, &opts).unwrap();
    assert_eq!(v.verdict, VerdictKind::NoMatch);
    assert_eq!(v.nearest[0].label, Label::Benign);
    let v = s.scan(&benign, &opts).unwrap();
    assert_eq!(v.verdict, VerdictKind::NoMatch);
    assert!(v.exact_match);
    // Excluding the malware sample and filtering both work.
    let v = s
        .scan(
            &var,
            &ScanOptions {
                exclude: vec![mal.sha256.clone()],
                ..ScanOptions::default()
            },
        )
        .unwrap();
    assert_eq!(v.verdict, VerdictKind::NoMatch);
    let v = s
        .scan(
            &var,
            &ScanOptions {
                filter: Some("label == \"benign\"".into()),
                ..ScanOptions::default()
            },
        )
        .unwrap();
    assert_eq!(v.verdict, VerdictKind::NoMatch);
    // Bad options are client errors.
    let e = s
        .scan(
            &var,
            &ScanOptions {
                cutoff: 0,
                ..ScanOptions::default()
            },
        )
        .unwrap_err();
    assert!(e.is_client_error());
    // Paper rates come with the cutoff.
    let v = s
        .scan(
            &var,
            &ScanOptions {
                cutoff: 30,
                ..ScanOptions::default()
            },
        )
        .unwrap();
    assert_eq!(v.paper_rates.fp_rate_percent, Some(0.00181));
}

#[test]
fn store_import_keeps_apk_fields_and_search_orders_by_distance_then_key() {
    let s = store("store_import_keeps_apk_fields_and_search_orders_by_distance_then_key");
    let a = fp('a', digest(60), &[("dex", "classes.dex", digest(61))]);
    s.ingest(&a, &SampleMeta::new(Label::Unknown)).unwrap();
    // An import row for the same sha256 updates the label/family, keeps the dex digest and
    // the component rows.
    let csv = format!(
        "sha256,tlsh,family,label,threat\n{},{},Joker,malware,high\n",
        a.sha256,
        digest(60)
    );
    let rep = s
        .import_digests(
            csv.as_bytes(),
            ImportFormat::Auto,
            &ImportOptions::default(),
        )
        .unwrap();
    assert_eq!((rep.rows, rep.stored, rep.updated_existing), (1, 1, 1));
    let got = s.get_sample(&a.sha256).unwrap().unwrap();
    assert_eq!(got.family.as_deref(), Some("Joker"));
    assert_eq!(got.label, Label::Malware);
    assert_eq!(got.threat, Some(ThreatLevel::High));
    assert_eq!(got.dex, Some(digest(61)));
    assert_eq!(s.stats().unwrap().components, 1);
    // Ties at one distance are ordered by key.
    let d = digest(70);
    let rows: String = ["sha1:", "md5:"]
        .iter()
        .zip(["3".repeat(40), "2".repeat(32)])
        .map(|(t, h)| {
            format!(
                "{{\"{}\": \"{h}\", \"tlsh\": \"{d}\"}}\n",
                t.trim_end_matches(':')
            )
        })
        .collect();
    s.import_digests(
        rows.as_bytes(),
        ImportFormat::Jsonl,
        &ImportOptions::default(),
    )
    .unwrap();
    let hits = s
        .search_digests(
            &[d],
            &SearchOptions {
                k: 3,
                ..SearchOptions::default()
            },
        )
        .unwrap();
    let keys: Vec<&str> = hits[0].iter().map(|m| m.sha256.as_str()).collect();
    assert_eq!(
        keys[..2],
        [
            format!("md5:{}", "2".repeat(32)),
            format!("sha1:{}", "3".repeat(40))
        ]
    );
    assert_eq!(hits[0][0].distance, 0);
    assert!(hits[0][2].distance > 0);
    // cutoff: distance < cutoff.
    let hits = s
        .search_digests(
            &[d],
            &SearchOptions {
                cutoff: Some(1),
                ..SearchOptions::default()
            },
        )
        .unwrap();
    assert_eq!(hits[0].len(), 2);
}

#[test]
fn store_open_url_picks_the_backend() {
    use apksift_core::{Error, Store, StoreOptions};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let dir_s = dir.to_str().unwrap();
    // A directory that holds no store: nothing to read.
    assert!(matches!(
        Store::open_url_read_only(dir_s, StoreOptions::default()),
        Err(Error::NotFound(_))
    ));
    let s = Store::open_url(dir_s, StoreOptions::default()).unwrap();
    assert_eq!(s.backend_kind(), "embedded");
    assert!(s.embedded().is_some());
    s.ingest(&fp('a', digest(80), &[]), &SampleMeta::new(Label::Malware))
        .unwrap();
    s.close().unwrap();
    let r = Store::open_url_read_only(dir_s, StoreOptions::default()).unwrap();
    assert_eq!(r.stats().unwrap().samples, 1);
    assert!(matches!(
        r.ingest(&fp('b', digest(81), &[]), &SampleMeta::new(Label::Malware)),
        Err(Error::ReadOnly)
    ));
    // milvus:// addresses: a clear error without the feature.
    #[cfg(not(feature = "milvus"))]
    {
        let e = Store::open_url("milvus://127.0.0.1:1/x", StoreOptions::default()).unwrap_err();
        assert!(e.is_client_error());
        assert!(e.to_string().contains("feature `milvus`"), "{e}");
    }
    #[cfg(feature = "milvus")]
    {
        // Nothing listens on port 1: a server-side error naming the address.
        let e = Store::open_url("milvus://127.0.0.1:1/x?timeout=5", StoreOptions::default())
            .unwrap_err();
        assert!(matches!(e, Error::Backend(_)), "{e:?}");
        assert!(e.to_string().contains("milvus://127.0.0.1:1/x"), "{e}");
        let e = Store::open_url("milvus://127.0.0.1:1/bad-prefix", StoreOptions::default())
            .unwrap_err();
        assert!(e.is_client_error(), "{e:?}");
    }
}

/// On Milvus (`APKSIFT_TEST_STORE=milvus://…`): a read-only handle sees nothing before the
/// store exists, then reads another handle's writes (consistency=strong) and refuses writes.
#[cfg(feature = "milvus")]
#[test]
fn store_milvus_read_only_handle() {
    use apksift_core::{Error, Store, StoreOptions};
    let Some(_) = milvus_base() else {
        println!("SKIP: store_milvus_read_only_handle: APKSIFT_TEST_STORE is not milvus://…");
        return;
    };
    let w = store("store_milvus_read_only");
    let url = w.location();
    w.ingest(&fp('a', digest(90), &[]), &SampleMeta::new(Label::Malware))
        .unwrap();
    let r = Store::open_url_read_only(
        &format!("{url}?consistency=strong"),
        StoreOptions::default(),
    )
    .unwrap();
    assert!(r.is_read_only());
    assert_eq!(r.stats().unwrap().samples, 1);
    let v = r
        .scan(&fp('a', digest(90), &[]), &ScanOptions::default())
        .unwrap();
    assert_eq!(v.verdict, VerdictKind::Malicious);
    assert!(matches!(
        r.ingest(&fp('b', digest(91), &[]), &SampleMeta::new(Label::Malware)),
        Err(Error::ReadOnly)
    ));
    assert!(matches!(
        r.delete_sample(&"a".repeat(64)),
        Err(Error::ReadOnly)
    ));
    let missing = format!("{url}_none");
    assert!(matches!(
        Store::open_url_read_only(&missing, StoreOptions::default()),
        Err(Error::NotFound(_))
    ));
}
