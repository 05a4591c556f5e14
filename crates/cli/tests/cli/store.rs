//! `--store` (directories and Milvus addresses) and `apksift migrate`.
//!
//! The Milvus round trip runs with the cargo feature `milvus` and
//! `APKSIFT_TEST_STORE=milvus://HOST:PORT[/PREFIX]` (`bash .ci/milvus.sh start`).

use crate::util::*;

#[test]
fn cli_store_flag_names_a_directory_like_db() {
    let t = tempfile::tempdir().unwrap();
    let apks = t.path().join("apks");
    std::fs::create_dir_all(&apks).unwrap();
    let (known, variant) = demo_apks(&apks);
    let dir = t.path().join("store");
    let unused = t.path().join("unused");
    // --store wins over --db.
    let r = apksift(
        &unused,
        &[
            "--store",
            s(&dir),
            "ingest",
            "-q",
            "--label",
            "malware",
            s(&known),
        ],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(dir.is_dir() && !unused.exists());
    let r = apksift(&dir, &["scan", "--json", s(&variant)], None);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let st = apksift(&unused, &["stats", "--json", "--store", s(&dir)], None).json();
    assert_eq!(st["samples"], 1);
    assert!(!unused.exists());
}

#[cfg(not(feature = "milvus"))]
#[test]
fn cli_milvus_needs_the_feature() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("db");
    let r = apksift(&db, &["--store", "milvus://127.0.0.1:1/x", "stats"], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("feature `milvus`"), "{}", r.stderr);
    let r = apksift(
        &db,
        &["migrate", "--from", s(&db), "--to", "milvus://h/x"],
        None,
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("feature `milvus`"), "{}", r.stderr);
}

#[cfg(feature = "milvus")]
#[test]
fn cli_milvus_stores_refuse_directory_only_commands() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("db");
    for cmd in [&["inspect"][..], &["verify"], &["backup", s(&db)]] {
        let mut args = vec!["--store", "milvus://127.0.0.1:1/x"];
        args.extend_from_slice(cmd);
        let r = apksift(&db, &args, None);
        assert_eq!(r.code, 2, "{cmd:?}");
        assert!(
            r.stderr.contains("works on an embedded store directory"),
            "{cmd:?}: {}",
            r.stderr
        );
    }
    let r = apksift(&db, &["migrate", "--from", s(&db), "--to", s(&db)], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("the same store"), "{}", r.stderr);
}

/// Milvus round trip: ingest and scan on Milvus, migrate Milvus -> directory -> Milvus, the
/// same verdicts everywhere.
#[cfg(feature = "milvus")]
#[test]
fn cli_milvus_ingest_scan_and_migrate_both_ways() {
    let Some(base) = std::env::var("APKSIFT_TEST_STORE")
        .ok()
        .filter(|s| s.starts_with("milvus://"))
    else {
        println!(
            "SKIP: cli_milvus_ingest_scan_and_migrate_both_ways: APKSIFT_TEST_STORE is not milvus://…"
        );
        return;
    };
    let hostport = base["milvus://".len()..]
        .split(['/', '?'])
        .next()
        .unwrap()
        .to_string();
    let pid = std::process::id();
    let a = format!("milvus://{hostport}/cli_{pid}_a");
    let b = format!("milvus://{hostport}/cli_{pid}_b");
    let drop_all = || {
        for u in [&a, &b] {
            let e = apksift_milvus::MilvusEngine::connect(
                &apksift_milvus::MilvusUrl::parse(u).unwrap(),
            )
            .unwrap();
            for c in e.list_collections().unwrap() {
                e.drop_collection(&c).unwrap();
            }
        }
    };
    drop_all();
    let t = tempfile::tempdir().unwrap();
    let apks = t.path().join("apks");
    std::fs::create_dir_all(&apks).unwrap();
    let (known, variant) = demo_apks(&apks);
    let db = t.path().join("db");

    // A fresh Milvus prefix reads as empty; ingest creates it; a new process sees it.
    let r = apksift(&db, &["--store", &a, "scan", s(&variant)], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("no store at"), "{}", r.stderr);
    let r = apksift(
        &db,
        &[
            "--store",
            &a,
            "ingest",
            "-q",
            "--label",
            "malware",
            "--family",
            "Demo",
            s(&known),
        ],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let scan = |store: &str| {
        let r = apksift(
            &db,
            &["--store", store, "scan", "--json", s(&variant), s(&known)],
            None,
        );
        assert_eq!(r.code, 1, "{store}: {}", r.stderr);
        r.json_lines()
    };
    let on_a = scan(&a);
    assert_eq!(on_a[0]["verdict"], "malicious");
    assert_eq!(on_a[1]["exact_match"], true);
    let st = apksift(&db, &["--store", &a, "stats", "--json"], None).json();
    assert_eq!(
        (st["samples"].as_u64(), st["components"].as_u64()),
        (Some(1), Some(1))
    );

    // Milvus -> directory -> another Milvus prefix.
    let dir = t.path().join("copy");
    for (from, to) in [(a.as_str(), s(&dir)), (s(&dir), b.as_str())] {
        let r = apksift(
            &db,
            &["migrate", "--from", from, "--to", to, "--json"],
            None,
        );
        assert_eq!(r.code, 0, "{from} -> {to}: {}{}", r.stdout, r.stderr);
        let rep = r.json();
        assert_eq!(rep["ok"], true, "{rep}");
        let samples = rep["collections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "samples")
            .unwrap()
            .clone();
        assert_eq!(samples["destination_rows"], 1, "{rep}");
        assert!(rep["searches"].as_u64().unwrap() > 0, "{rep}");
    }
    // The same verdicts on the copies.
    assert_eq!(scan(s(&dir)), on_a);
    assert_eq!(scan(&b), on_a);

    // `apksift serve --store milvus://…`: ready, and the same verdict over HTTP.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_apksift"))
        .args(["--store", &b, "serve", "--no-auth", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env_remove("APKSIFT_API_KEYS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let ready = loop {
        if let Ok(r) = http(port, "GET", "/readyz", b"") {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline && server.try_wait().unwrap().is_none(),
            "apksift serve --store {b} did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(ready.0, 200, "{}", ready.1);
    let variant_bytes = std::fs::read(&variant).unwrap();
    let (code, body) = http(port, "POST", "/v1/scan", &variant_bytes).unwrap();
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["verdict"], on_a[0]["verdict"], "{v}");
    assert_eq!(
        v["nearest"][0]["sha256"], on_a[0]["nearest"][0]["sha256"],
        "{v}"
    );
    let (code, body) = http(port, "GET", "/v1/collections/samples/count", b"").unwrap();
    assert_eq!((code, body.contains("\"count\":1")), (200, true), "{body}");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let st = server.wait().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(server.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(st.success(), "serve exited with {st:?}: {log}");
    assert!(
        log.contains("engine=\"milvus\"") || log.contains("engine=milvus"),
        "{log}"
    );
    drop_all();
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
#[cfg(feature = "milvus")]
fn http(port: u16, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((code, body))
}
