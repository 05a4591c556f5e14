//! Subcommands, exit codes, JSON shape and bad input on generated APKs.

use crate::util::*;

#[test]
fn cli_demo_on_a_fresh_store_is_malicious() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("db");
    let r = apksift(&db, &["demo", "--json"], None);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v = &r.json_lines()[0];
    assert_eq!(v["verdict"], "malicious");
    assert_eq!(v["family"], "Demo.Trojan");
    // The whole file of the re-signed variant is far; its dex is near.
    let comps = v["components"].as_array().unwrap();
    let dex = comps
        .iter()
        .find(|c| c["component"] == "dex:classes.dex")
        .unwrap();
    assert_eq!(dex["matched"], true);
    let whole = comps.iter().find(|c| c["component"] == "whole").unwrap();
    assert_eq!(whole["matched"], false);
}

#[test]
fn cli_hash_prints_fingerprint_json() {
    let t = tempfile::tempdir().unwrap();
    let (known, _) = demo_apks(t.path());
    let r = apksift(&t.path().join("db"), &["hash", s(&known)], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let fp = r.json();
    assert_eq!(fp["sha256"].as_str().unwrap().len(), 64);
    assert!(fp["tlsh"].as_str().unwrap().starts_with("T1"));
    let kinds: Vec<&str> = fp["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["manifest", "resources", "dex"]);
    // Compact: one object per line, several files.
    let r = apksift(
        &t.path().join("db"),
        &["hash", "--compact", s(&known), s(&known)],
        None,
    );
    assert_eq!(r.json_lines().len(), 2);
    // A missing file: exit 2, a clear message, the other file still hashed.
    let r = apksift(
        &t.path().join("db"),
        &["hash", "--compact", "/nonexistent/x.apk", s(&known)],
        None,
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("/nonexistent/x.apk"), "{}", r.stderr);
    assert!(r.stderr.contains("No such file"), "{}", r.stderr);
    let lines = r.json_lines();
    assert_eq!(lines.len(), 2);
    assert!(lines[0]["error"].is_string());
    assert_eq!(lines[1]["sha256"], fp["sha256"]);
}

#[test]
fn cli_ingest_scan_search_stats_verify_backup() {
    let t = tempfile::tempdir().unwrap();
    let apks = t.path().join("apks");
    std::fs::create_dir_all(&apks).unwrap();
    let (known, variant) = demo_apks(&apks);
    let lib = t.path().join("lib");
    std::fs::create_dir_all(lib.join("sub")).unwrap();
    std::fs::copy(&known, lib.join("sub/known.apk")).unwrap();
    std::fs::write(lib.join("README.txt"), b"not an apk").unwrap();
    let db = t.path().join("db");

    // Empty store: scan works and finds nothing.
    let r = apksift(&db, &["scan", s(&variant)], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("no match"));

    // Ingest a directory (recursive; the text file is skipped), twice: no duplicates.
    for round in 0..2 {
        let r = apksift(
            &db,
            &[
                "ingest",
                "--label",
                "malware",
                "--family",
                "Anubis",
                "--threat",
                "high",
                "-q",
                s(&lib),
            ],
            None,
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout.contains("ingested 1 samples"), "{}", r.stdout);
        assert!(r.stdout.contains("1 non-APK files skipped"), "{}", r.stdout);
        if round == 1 {
            assert!(r.stdout.contains("1 replaced"), "{}", r.stdout);
        }
    }
    let st = apksift(&db, &["stats", "--json"], None).json();
    assert_eq!(st["samples"], 1);
    assert_eq!(st["components"], 1);

    // Scan: the variant matches through its dex; exit 1; JSON shape.
    let r = apksift(&db, &["scan", "--json", s(&variant), s(&known)], None);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v = r.json_lines();
    assert_eq!(v.len(), 2);
    for key in [
        "file",
        "sha256",
        "verdict",
        "reason",
        "family",
        "threat",
        "label",
        "exact_match",
        "cutoff",
        "match_rule",
        "paper_rates",
        "nearest",
        "components",
        "warnings",
    ] {
        assert!(v[0].get(key).is_some(), "verdict lacks {key}: {}", v[0]);
    }
    assert_eq!(v[0]["verdict"], "malicious");
    assert_eq!(v[0]["family"], "Anubis");
    assert_eq!(v[0]["threat"], "high");
    assert_eq!(v[0]["exact_match"], false);
    assert_eq!(v[0]["cutoff"], 50);
    assert_eq!(v[0]["paper_rates"]["fp_rate_percent"], 0.52);
    assert_eq!(v[0]["paper_rates"]["detection_rate_percent"], 65.3);
    assert_eq!(v[0]["nearest"][0]["label"], "malware");
    assert_eq!(v[1]["exact_match"], true);
    // --cutoff 30 cites the 30 row; a filter that excludes everything gives exit 0.
    let r = apksift(
        &db,
        &["scan", "--json", "--cutoff", "30", s(&variant)],
        None,
    );
    assert_eq!(r.json_lines()[0]["paper_rates"]["fp_rate_percent"], 0.00181);
    let r = apksift(
        &db,
        &["scan", "--filter", "label == \"benign\"", s(&variant)],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Human output names the verdict, the family and the matching component.
    let r = apksift(&db, &["scan", s(&variant)], None);
    assert!(
        r.stdout.contains("MALICIOUS (Anubis, threat high)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("dex:classes.dex"), "{}", r.stdout);
    assert!(r.stdout.contains("false positives 0.52%"), "{}", r.stdout);

    // Search by digest: the stored whole-file digest is at 0; stdin works.
    let fp = apksift(&db, &["hash", s(&known)], None).json();
    let digest = fp["tlsh"].as_str().unwrap().to_string();
    let r = apksift(&db, &["search", "--json", &digest], None);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let m = &r.json_lines()[0]["matches"][0];
    assert_eq!(m["distance"], 0);
    assert_eq!(m["family"], "Anubis");
    let lower = format!("t1{}", digest[2..].to_ascii_lowercase());
    let r = apksift(
        &db,
        &["search", "--json", "-"],
        Some(format!("{lower}\n").as_bytes()),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.json_lines()[0]["matches"][0]["distance"], 0);
    let dex = fp["components"][2]["tlsh"].as_str().unwrap();
    let r = apksift(&db, &["search", "--field", "dex", "--json", dex], None);
    assert_eq!(r.json_lines()[0]["matches"][0]["component"], "classes.dex");
    // Bad digests: exit 2, named.
    let r = apksift(&db, &["search", "T1XYZ"], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("invalid TLSH digest"), "{}", r.stderr);
    assert!(r.stderr.contains("T1XYZ"), "{}", r.stderr);

    // Store tools.
    let r = apksift(&db, &["verify"], None);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("0 errors"), "{}", r.stdout);
    let r = apksift(&db, &["inspect", "--json"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.json()["collections"].as_array().unwrap().len() == 2);
    let dest = t.path().join("backup");
    let r = apksift(&db, &["backup", s(&dest)], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(apksift(&dest, &["verify"], None).code, 0);
    assert_eq!(
        apksift(&dest, &["stats", "--json"], None).json()["samples"],
        1
    );
    let r = apksift(&dest, &["scan", "--json", s(&variant)], None);
    assert_eq!(r.json_lines()[0]["verdict"], "malicious");
    let r = apksift(&db, &["backup", s(&dest)], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not empty"), "{}", r.stderr);
}

#[test]
fn cli_import_malwarebazaar_csv_and_jsonl() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("db");
    let d1 = "T1C6E2E143C6D5ECA3EAD00DB7EC72B11417B62A3C2CC2B006652189A1DD93417B7FCA96";
    let d2 = "F043026683DA20B4FCB6687DD797961BF4EC0B3AC1B0324273555A45EB4390CFBE4286"; // legacy
    let sha_a = "a".repeat(64);
    let csv = format!(
        "################################################################\n\
         # MalwareBazaar Recent Additions (CSV)                         #\n\
         ################################################################\n\
         #\n\
         # \"first_seen_utc\",\"sha256_hash\",\"md5_hash\",\"sha1_hash\",\"reporter\",\"file_name\",\"file_type_guess\",\"mime_type\",\"signature\",\"clamav\",\"vtpercent\",\"imphash\",\"ssdeep\",\"tlsh\"\n\
         \"2024-01-02 03:04:05\", \"{sha_a}\", \"{}\", \"{}\", \"someone\", \"a, b.apk\", \"apk\", \"application/zip\", \"Anubis\", \"n/a\", \"n/a\", \"n/a\", \"n/a\", \"{d1}\"\n\
         \"2024-01-02 03:04:06\", \"\", \"\", \"{}\", \"someone\", \"c.apk\", \"apk\", \"application/zip\", \"n/a\", \"n/a\", \"n/a\", \"n/a\", \"n/a\", \"{d2}\"\n\
         \"2024-01-02 03:04:07\", \"{}\", \"\", \"\", \"someone\", \"d.apk\", \"apk\", \"application/zip\", \"Cerberus\", \"n/a\", \"n/a\", \"n/a\", \"n/a\", \"TNULL\"\n\
         \"2024-01-02 03:04:08\", \"\", \"\", \"\", \"someone\", \"e.apk\", \"apk\", \"application/zip\", \"Joker\", \"n/a\", \"n/a\", \"n/a\", \"n/a\", \"T1NOTADIGEST\"\n",
        "b".repeat(32),
        "c".repeat(40),
        "d".repeat(40),
        "e".repeat(64),
    );
    let f = t.path().join("mb.csv");
    std::fs::write(&f, csv).unwrap();
    let r = apksift(&db, &["import", "--json", s(&f)], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rep = r.json();
    assert_eq!(rep["format"], "malwarebazaar_csv");
    assert_eq!(rep["rows"], 4);
    assert_eq!(rep["stored"], 3);
    assert_eq!(rep["skipped"], 1);
    assert_eq!(rep["tnull"], 1);
    assert_eq!(rep["invalid_digest"], 1);
    assert_eq!(rep["with_digest"], 2);
    assert_eq!(rep["key_types"]["sha1"], 1);
    assert_eq!(rep["key_types"]["sha256"], 2);
    assert_eq!(rep["issues"].as_array().unwrap().len(), 2);
    // Found by digest, with family, label malware, source malwarebazaar.
    let r = apksift(&db, &["search", "--json", d1], None);
    let m = &r.json_lines()[0]["matches"][0];
    assert_eq!(m["sha256"], sha_a.as_str());
    assert_eq!(m["family"], "Anubis");
    assert_eq!(m["label"], "malware");
    assert_eq!(m["source"], "malwarebazaar");
    let r = apksift(&db, &["search", "--json", d2], None);
    assert_eq!(
        r.json_lines()[0]["matches"][0]["sha256"],
        format!("sha1:{}", "d".repeat(40))
    );
    // Simple CSV without header, and JSONL from stdin.
    let simple = format!("{},{d1},Hydra,malware,critical\n", "f".repeat(64));
    let r = apksift(&db, &["import", "--json", "-"], Some(simple.as_bytes()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["format"], "csv_no_header");
    let jsonl = format!(
        "{{\"sha1\": \"{}\", \"tlsh\": \"{d2}\", \"family\": \"Joker\", \"threat\": 2}}\n",
        "9".repeat(40)
    );
    let r = apksift(&db, &["import", "--json", "-"], Some(jsonl.as_bytes()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["format"], "jsonl");
    assert_eq!(
        apksift(&db, &["stats", "--json"], None).json()["samples"],
        5
    );
    // Bad imports: exit 2.
    let r = apksift(&db, &["import", "/nonexistent.csv"], None);
    assert_eq!(r.code, 2);
    let r = apksift(&db, &["import", "-"], Some(b""));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no data rows"), "{}", r.stderr);
    let r = apksift(&db, &["import", "-"], Some(b"hello,world\nfoo,bar\n"));
    assert_eq!(r.code, 2);
}

#[test]
fn cli_bad_inputs_exit_2_with_clear_messages() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("db");
    let junk = t.path().join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("a.txt"), b"hello").unwrap();
    std::fs::write(junk.join("b.bin"), [7u8; 300]).unwrap();
    let rnd = t.path().join("random.apk");
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&rnd, &bytes).unwrap();
    for (args, needle) in [
        (vec!["verify"], "no apksift store"),
        (vec!["inspect"], "no apksift store"),
        (vec!["backup", "/tmp/x"], "no apksift store"),
        (vec!["scan", "/nonexistent/app.apk"], "No such file"),
        (vec!["scan", s(&junk)], "no APK files found"),
        (vec!["scan", s(&rnd)], "not an APK"),
        (
            vec!["ingest", "--label", "malware", s(&junk)],
            "no APK files found",
        ),
        (vec!["ingest", "--label", "malware", s(&rnd)], "not an APK"),
        (vec!["ingest", "--label", "evil", s(&rnd)], "unknown label"),
        (
            vec!["ingest", "--threat", "severe", s(&rnd)],
            "unknown threat level",
        ),
        (
            vec!["scan", "--cutoff", "0", s(&rnd), "--any-file"],
            "cutoff 0",
        ),
        (
            vec![
                "scan",
                "--filter",
                "nosuchfield == 1",
                "--any-file",
                s(&rnd),
            ],
            "unknown field",
        ),
        (
            vec!["search", "--field", "icons", "T1AB"],
            "unknown search field",
        ),
    ] {
        let r = apksift(&db, &args, None);
        assert_eq!(r.code, 2, "{args:?}: {} {}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains(needle),
            "{args:?}: {:?} lacks {needle:?}",
            r.stderr
        );
    }
    // Failed ingests created no store.
    assert!(!db.exists());
    // --any-file scans the whole-file hashes of a non-ZIP.
    let r = apksift(&db, &["scan", "--any-file", "--json", s(&rnd)], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json_lines()[0]["verdict"], "no_match");
    // In JSON mode an unreadable file is an error object.
    let r = apksift(&db, &["scan", "--json", s(&rnd)], None);
    assert_eq!(r.code, 2);
    assert!(
        r.json_lines()[0]["error"]
            .as_str()
            .unwrap()
            .contains("not an APK")
    );
}
