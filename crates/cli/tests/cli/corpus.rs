//! Every file of the APK corpus through the CLI: no panic, exit 0, 1 or 2 only.

use std::path::{Path, PathBuf};

use crate::util::*;

fn all_files(d: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn cli_corpus_every_file_scans_without_panic() {
    let Some(apk) = testdata()
        .map(|d| d.join("apk"))
        .filter(|d| d.join("malware").is_dir())
    else {
        println!("SKIP: cli_corpus_every_file_scans_without_panic: no apk/ in APKSIFT_TESTDATA");
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("db");
    let r = apksift(
        &db,
        &[
            "ingest",
            "--label",
            "malware",
            "-q",
            s(&apk.join("malware")),
        ],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("ingested 44 samples"), "{}", r.stdout);
    let mut files = Vec::new();
    all_files(&apk, &mut files);
    files.sort();
    let (mut counts, mut n) = ([0usize; 3], 0);
    // Two workers: every file in its own process.
    let chunks: Vec<Vec<PathBuf>> = files
        .chunks(files.len().div_ceil(2))
        .map(|c| c.to_vec())
        .collect();
    let results: Vec<Vec<(PathBuf, i32)>> = std::thread::scope(|sc| {
        let hs: Vec<_> = chunks
            .iter()
            .map(|c| {
                let db = db.clone();
                sc.spawn(move || {
                    c.iter()
                        .map(|f| {
                            (
                                f.clone(),
                                apksift(&db, &["scan", "--json", s(f)], None).code,
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (f, code) in results.into_iter().flatten() {
        n += 1;
        counts[code as usize] += 1;
        if f.starts_with(apk.join("malware")) && f.extension().is_some_and(|e| e == "apk") {
            assert_eq!(
                code,
                1,
                "{} is stored malware: exact match expected",
                f.display()
            );
        }
    }
    println!(
        "corpus through the CLI: {n} files: exit 0 (no match) {}, 1 (match) {}, 2 (error) {}",
        counts[0], counts[1], counts[2]
    );
    assert!(n >= 218);
}
