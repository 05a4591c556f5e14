//! `apksift backup` while another process is the writer.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use apksift_index::{Database, Value};

use crate::util::{apksift, s};

const CHILD_ENV: &str = "APKSIFT_BACKUP_WRITER_DIR";
/// New keys per batch.
const PER_BATCH: u64 = 40;

fn key(batch: u64, i: u64) -> String {
    format!("{batch:032x}{i:032x}")
}

/// Batch `j`: 40 new keys (family `b<j>`) and the keys of batch `j - 1` again
/// (family `u<j>`): one import, one engine write, one WAL record.
fn batch_csv(j: u64) -> String {
    let mut csv = String::from("sha256,family\n");
    for i in 0..PER_BATCH {
        csv.push_str(&format!("{},b{j}\n", key(j, i)));
    }
    if j > 0 {
        for i in 0..PER_BATCH {
            csv.push_str(&format!("{},u{j}\n", key(j - 1, i)));
        }
    }
    csv
}

/// The writer process: imports batches until killed (or 120 s), printing
/// `ACK j` after batch `j` is acknowledged. Small memtables, log files and
/// no grace period, so flushes, merges, log rotations and file deletions
/// happen all the time.
#[test]
fn backup_writer_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let opts = apksift_core::StoreOptions {
        engine: apksift_index::Options {
            memtable_rows: 300,
            max_segments: 3,
            wal: apksift_storage::wal::WalOptions {
                max_file_bytes: 16 << 10,
                ..Default::default()
            },
            obsolete_file_grace: Duration::ZERO,
            ..apksift_index::Options::default()
        },
    };
    let store = apksift_core::Store::open(&dir, opts).unwrap();
    let started = Instant::now();
    let mut out = std::io::stdout();
    for j in 0.. {
        store
            .import_digests(
                batch_csv(j).as_bytes(),
                apksift_core::ImportFormat::Csv,
                &apksift_core::ImportOptions::default(),
            )
            .unwrap();
        if writeln!(out, "ACK {j}").is_err() || out.flush().is_err() {
            return;
        }
        if started.elapsed() > Duration::from_secs(120) {
            return;
        }
    }
}

fn spawn_writer(dir: &Path) -> (Child, Receiver<u64>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "backup::backup_writer_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("ACK ").and_then(|n| n.parse().ok())
                && tx.send(n).is_err()
            {
                break;
            }
        }
    });
    (child, rx)
}

/// The newest acknowledged batch so far (waiting up to `wait` for a first one).
fn latest(rx: &Receiver<u64>, last: &mut Option<u64>, wait: Duration) -> Option<u64> {
    if let Ok(n) = rx.recv_timeout(wait) {
        *last = Some(n);
    }
    while let Ok(n) = rx.try_recv() {
        *last = Some(n);
    }
    *last
}

/// Checks that the store in `dest` holds exactly batches `0..=k` for some
/// `k` in `lo..=hi`, every row as that prefix left it; returns `k`.
fn check_prefix(dest: &Path, lo: u64, hi: u64) -> u64 {
    let db = Database::open_read_only(dest, apksift_index::Options::default()).unwrap();
    let family = |j: u64, i: u64| -> Option<String> {
        let r = db
            .get("samples", &[key(j, i)], &["family".to_string()])
            .unwrap();
        r[0].as_ref().map(|row| match &row["family"] {
            Value::Str(s) => s.clone(),
            other => panic!("family {other:?}"),
        })
    };
    let mut k = None;
    for j in 0..=hi + 2 {
        if family(j, 0).is_some() {
            k = Some(j);
        }
    }
    let k = k.expect("the backup holds no batch");
    for j in 0..=hi + 2 {
        for i in 0..PER_BATCH {
            let want = if j > k {
                None
            } else if j == k {
                Some(format!("b{j}"))
            } else {
                Some(format!("u{}", j + 1))
            };
            assert_eq!(
                family(j, i),
                want,
                "backup holding batches up to {k}: batch {j} row {i} (torn)"
            );
        }
    }
    assert_eq!(db.count("samples").unwrap(), (k + 1) * PER_BATCH);
    assert!(
        k >= lo,
        "the backup ends at batch {k}, before batch {lo} that was acknowledged when it started"
    );
    assert!(k <= hi, "the backup holds batch {k}, never written ({hi})");
    k
}

#[test]
fn cli_backup_while_another_process_writes() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("db");
    let (mut child, rx) = spawn_writer(&db);
    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while latest(&rx, &mut last, Duration::from_millis(200)).unwrap_or(0) < 30 {
        assert!(Instant::now() < deadline, "the writer made no progress");
    }
    let mut attempts = Vec::new();
    for b in 0..4 {
        let before = latest(&rx, &mut last, Duration::ZERO).unwrap();
        let dest = t.path().join(format!("backup-{b}"));
        // The writer holds the lock and keeps importing meanwhile.
        let r = apksift(&db, &["backup", "--json", s(&dest)], None);
        assert_eq!(r.code, 0, "backup {b}: {}", r.stderr);
        let rep = r.json();
        assert_eq!(rep["mode"], "read-only", "{rep}");
        attempts.push(rep["attempts"].as_u64().unwrap());
        // The writer keeps going; it may have written (not yet acknowledged)
        // one batch past the newest acknowledgement.
        let t0 = Instant::now();
        let mut newest = latest(&rx, &mut last, Duration::ZERO).unwrap();
        while newest <= before {
            assert!(t0.elapsed() < Duration::from_secs(20), "the writer stopped");
            newest = latest(&rx, &mut last, Duration::from_millis(200)).unwrap();
        }
        let after = newest + 1;
        let k = check_prefix(&dest, before, after);
        assert_eq!(
            rep["verified"]["rows"]["samples"].as_u64(),
            Some((k + 1) * PER_BATCH),
            "{rep}"
        );
        let v = apksift(&dest, &["verify"], None);
        assert_eq!(v.code, 0, "verify backup {b}: {} {}", v.stdout, v.stderr);
        assert!(v.stdout.contains("0 errors, 0 warnings"), "{}", v.stdout);
        eprintln!(
            "backup {b}: batches 0..={k} (acknowledged at start: {before}, writer at {after} after), {} attempt(s)",
            rep["attempts"]
        );
    }
    child.kill().unwrap();
    let _ = child.wait();
    eprintln!("backup attempts: {attempts:?}");
}
