//! Real process crashes: the test re-executes its own binary as a writer
//! child that upserts, deletes, flushes and merges while printing an `ACK`
//! line after every acknowledged write; the parent `kill -9`s it at a random
//! moment, reopens the store (the first restart must succeed), checks that
//! every acknowledged row is present with its value and every acknowledged
//! delete holds, runs `verify`, and repeats on the same directory.
//!
//! `APKSIFT_CRASH_POINTS` sets the number of kills (default 25; the full run
//! uses 200+, see docs/RELIABILITY.md).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use apksift_index::{Batch, Column, Database, FieldSchema, FieldType, Options, Schema, Value};
use rand::{Rng, SeedableRng};

const CHILD_ENV: &str = "APKSIFT_CRASH_CHILD_DIR";

fn schema() -> Schema {
    Schema::new(
        "sha256",
        vec![
            FieldSchema::new("tlsh", FieldType::Tlsh),
            FieldSchema::new("v", FieldType::Int),
        ],
    )
}

fn value_of(seq: u64) -> i64 {
    (seq as i64).wrapping_mul(7919) % 1_000_003
}

fn digest_of(seq: u64) -> apksift_tlsh::Digest {
    let mut a = [0u8; 35];
    let mut r = rand::rngs::StdRng::seed_from_u64(seq / 10);
    r.fill(&mut a[..]);
    a[3 + (seq % 32) as usize] ^= 1;
    apksift_tlsh::Digest::from_bytes(a)
}

fn opts() -> Options {
    Options {
        memtable_rows: 400,
        max_segments: 4,
        ..Options::default()
    }
}

/// The child: writes forever from `start`, printing what was acknowledged.
fn child(dir: &str, start: u64) {
    let db = Database::open(dir, opts()).expect("child open");
    let _ = db.create_collection("s", schema());
    let mut seq = start;
    let out = std::io::stdout();
    loop {
        let n = 1 + (seq % 37) as usize;
        let keys: Vec<String> = (seq..seq + n as u64).map(|s| format!("k{s:08}")).collect();
        let b = Batch {
            keys,
            columns: [
                (
                    "tlsh".to_string(),
                    Column::Tlsh((seq..seq + n as u64).map(|s| Some(digest_of(s))).collect()),
                ),
                (
                    "v".to_string(),
                    Column::Int((seq..seq + n as u64).map(|s| Some(value_of(s))).collect()),
                ),
            ]
            .into(),
        };
        db.upsert("s", b).expect("upsert");
        {
            use std::io::Write;
            let mut o = out.lock();
            let _ = writeln!(o, "ACK {seq} {n}");
            let _ = o.flush();
        }
        seq += n as u64;
        if seq.is_multiple_of(5) && seq > 100 {
            let victim = format!("k{:08}", seq - 60);
            db.delete("s", std::slice::from_ref(&victim))
                .expect("delete");
            use std::io::Write;
            let mut o = out.lock();
            let _ = writeln!(o, "DEL {victim}");
            let _ = o.flush();
        }
        if seq % 211 < 3 {
            db.flush().expect("flush");
        }
        if seq % 997 < 3 {
            db.compact("s").expect("compact");
        }
    }
}

#[test]
fn process_crash_child_entry() {
    // Only does something when re-executed by the parent test.
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let start: u64 = std::env::var("APKSIFT_CRASH_START")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        child(&dir, start);
    }
}

#[test]
fn process_crash_kill9_keeps_every_acknowledged_write() {
    let points: usize = std::env::var("APKSIFT_CRASH_POINTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap().to_string();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xdead);
    // key -> Some(value) acknowledged present, None acknowledged deleted.
    let mut acked: BTreeMap<String, Option<i64>> = BTreeMap::new();
    let mut next = 0u64;
    let mut restarts_ok = 0;
    let started = Instant::now();
    for point in 0..points {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "process_crash_child_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir)
            .env("APKSIFT_CRASH_START", next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Kill after a random delay: sometimes at once (during open/recovery), mostly mid-write.
        let delay = if point % 7 == 0 {
            rng.random_range(0..30)
        } else {
            rng.random_range(30..400)
        };
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        let _ = reader.join();
        let mut last_end = None;
        for line in rx.try_iter() {
            let mut it = line.split_whitespace();
            match (it.next(), it.next(), it.next()) {
                (Some("ACK"), Some(s), Some(n)) => {
                    let (s, n): (u64, u64) = (s.parse().unwrap(), n.parse().unwrap());
                    for x in s..s + n {
                        acked.insert(format!("k{x:08}"), Some(value_of(x)));
                    }
                    next = next.max(s + n);
                    last_end = Some(s + n);
                }
                (Some("DEL"), Some(k), _) => {
                    acked.insert(k.to_string(), None);
                }
                _ => {}
            }
        }
        // After its last ACK line the child may have deleted `end - 60` without
        // printing the DEL line yet: that key's state is unknown, not lost.
        let in_flight_delete = last_end
            .filter(|e| e % 5 == 0 && *e > 100)
            .map(|e| format!("k{:08}", e - 60));
        if let Some(k) = &in_flight_delete {
            acked.remove(k);
        }
        // The first restart must succeed and hold every acknowledged write.
        let db = Database::open(
            &dir,
            Options {
                background: false,
                ..opts()
            },
        )
        .unwrap_or_else(|e| panic!("restart after kill {point} failed: {e}"));
        restarts_ok += 1;
        if let Ok(count) = db.count("s") {
            let keys: Vec<String> = acked.keys().cloned().collect();
            for chunk in keys.chunks(500) {
                let got = db.get("s", chunk, &["v".into()]).unwrap();
                for (k, g) in chunk.iter().zip(got) {
                    match (&acked[k], g) {
                        (Some(v), Some(row)) => assert_eq!(
                            row["v"],
                            Value::Int(*v),
                            "kill {point}: {k} has a wrong value"
                        ),
                        (Some(_), None) => {
                            let missing: Vec<&String> = acked
                                .iter()
                                .filter(|(_, v)| v.is_some())
                                .map(|(k, _)| k)
                                .filter(|k| {
                                    db.get("s", std::slice::from_ref(*k), &[]).unwrap()[0].is_none()
                                })
                                .collect();
                            let keep = tmp.keep();
                            panic!(
                                "kill {point}: acknowledged row {k} lost; {} missing: first {:?} last {:?}; store kept at {}",
                                missing.len(),
                                missing.first(),
                                missing.last(),
                                keep.display()
                            )
                        }
                        (None, Some(_)) => {
                            panic!("kill {point}: acknowledged delete of {k} undone")
                        }
                        (None, None) => {}
                    }
                }
            }
            let present = acked.values().filter(|v| v.is_some()).count() as u64;
            assert!(
                count >= present,
                "kill {point}: count {count} < acknowledged rows {present}"
            );
        } else {
            assert!(
                acked.is_empty(),
                "kill {point}: collection missing after acknowledged writes"
            );
        }
        drop(db);
        let dirh = apksift_storage::FsDirectory::open_existing(&dir).unwrap();
        let rep = apksift_index::verify::verify_dir(&dirh).unwrap();
        assert!(
            rep.errors.is_empty(),
            "kill {point}: verify found {:?}",
            rep.errors
        );
        // Rows written after the last ACK line may also exist (acknowledged to
        // nobody); continue numbering after everything the child may have written.
        next += 1000;
    }
    eprintln!(
        "process crashes: {points} kill -9 points, {restarts_ok} first restarts succeeded, {} acknowledged rows checked, {:.1}s",
        acked.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(restarts_ok, points);
    assert!(
        acked.len() > 100,
        "too few writes were acknowledged to mean anything"
    );
}
