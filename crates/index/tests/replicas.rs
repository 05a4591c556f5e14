//! One writer (this process) and two read-only replica processes on the same
//! directory: read-your-writes on the writer, bounded lag on the replicas,
//! and stopping one replica does not disturb the other.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use apksift_index::{Batch, Column, Database, FieldSchema, FieldType, Options, Schema};

const CHILD_ENV: &str = "APKSIFT_REPLICA_CHILD_DIR";

fn schema() -> Schema {
    Schema::new(
        "k",
        vec![
            FieldSchema::new("t", FieldType::Tlsh),
            FieldSchema::new("v", FieldType::Int),
        ],
    )
}

#[test]
fn replica_child_entry() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let opts = Options {
        replica_poll: Duration::from_millis(50),
        ..Options::default()
    };
    let db = loop {
        match Database::open_read_only(&dir, opts.clone()) {
            Ok(db) => break db,
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    use std::io::Write;
    let out = std::io::stdout();
    loop {
        let n = db.count("c").unwrap_or(0);
        let mut o = out.lock();
        if writeln!(o, "COUNT {n}").is_err() || o.flush().is_err() {
            return;
        }
        drop(o);
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn spawn_replica(dir: &str) -> (Child, Receiver<u64>) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "replica_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("COUNT ").and_then(|n| n.parse().ok())
                && tx.send(n).is_err()
            {
                break;
            }
        }
    });
    (child, rx)
}

/// What a replica may show: the count after some prefix of the writer's
/// batches (every row of a batch or none, and no batch without the ones
/// before it), never decreasing.
struct Prefixes {
    sums: std::collections::BTreeSet<u64>,
    last: u64,
    seen: u64,
    name: &'static str,
}

impl Prefixes {
    fn new(batches: &[u64], name: &'static str) -> Prefixes {
        let mut sums = std::collections::BTreeSet::from([0]);
        let mut t = 0;
        for b in batches {
            t += b;
            sums.insert(t);
        }
        Prefixes {
            sums,
            last: 0,
            seen: 0,
            name,
        }
    }

    fn check(&mut self, n: u64) {
        self.seen += 1;
        assert!(
            self.sums.contains(&n),
            "{} showed {n} rows, which is not the count after any prefix of the writer's batches (a torn state)",
            self.name
        );
        assert!(
            n >= self.last,
            "{} went back from {} to {n} rows",
            self.name,
            self.last
        );
        self.last = n;
    }
}

/// Waits until the replica reports at least `want`, checking every count it
/// reports on the way; returns the lag.
fn wait_for(
    rx: &Receiver<u64>,
    p: &mut Prefixes,
    want: u64,
    since: Instant,
    limit: Duration,
) -> Option<Duration> {
    while since.elapsed() < limit {
        if let Ok(n) = rx.recv_timeout(Duration::from_millis(100)) {
            p.check(n);
            if n >= want {
                return Some(since.elapsed());
            }
        }
    }
    None
}

fn batch(start: u64, n: u64) -> Batch {
    Batch {
        keys: (start..start + n).map(|i| format!("key{i:07}")).collect(),
        columns: [(
            "v".to_string(),
            Column::Int((start..start + n).map(|i| Some(i as i64)).collect()),
        )]
        .into(),
    }
}

#[test]
fn replicas_follow_the_writer_with_bounded_lag() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap().to_string();
    let w = Database::open(
        &dir,
        Options {
            memtable_rows: 2000,
            // Small log files, so that checkpoints delete files while the
            // replicas reload (a replica must never skip the deleted records).
            wal: apksift_storage::wal::WalOptions {
                max_file_bytes: 8 << 10,
                ..Default::default()
            },
            ..Options::default()
        },
    )
    .unwrap();
    w.create_collection("c", schema()).unwrap();
    let (mut r1, rx1) = spawn_replica(&dir);
    let (mut r2, rx2) = spawn_replica(&dir);
    let mut sizes: Vec<u64> = (0..30u64).map(|round| 200 + round * 37).collect();
    sizes.push(10);
    let mut p1 = Prefixes::new(&sizes, "replica 1");
    let mut p2 = Prefixes::new(&sizes, "replica 2");
    let mut total = 0u64;
    let mut lags = Vec::new();
    for round in 0..30u64 {
        let n = sizes[round as usize];
        w.upsert("c", batch(total, n)).unwrap();
        total += n;
        // Read-your-writes on the writer: visible as soon as acknowledged.
        assert_eq!(w.count("c").unwrap(), total);
        let t = Instant::now();
        if round == 15 {
            // Stop one replica; the other must keep up.
            r1.kill().unwrap();
            let _ = r1.wait();
        }
        if round % 3 == 2 {
            w.flush().unwrap(); // manifest change + WAL checkpoint while replicas follow
        }
        if round % 10 == 9 {
            w.compact("c").unwrap(); // segments replaced while replicas follow
        }
        let l2 = wait_for(&rx2, &mut p2, total, t, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("replica 2 did not reach {total}"));
        lags.push(l2);
        if round < 15 {
            let l1 = wait_for(&rx1, &mut p1, total, t, Duration::from_secs(5))
                .unwrap_or_else(|| panic!("replica 1 did not reach {total}"));
            lags.push(l1);
        }
    }
    w.compact("c").unwrap();
    w.upsert("c", batch(total, 10)).unwrap();
    total += 10;
    let t = Instant::now();
    wait_for(&rx2, &mut p2, total, t, Duration::from_secs(5)).expect("replica 2 after compaction");
    let _ = r2.kill();
    let _ = r2.wait();
    // Every count either replica printed was checked.
    while let Ok(n) = rx2.try_recv() {
        p2.check(n);
    }
    eprintln!(
        "replica counts checked against the writer's batch prefixes: {} + {}",
        p1.seen, p2.seen
    );
    lags.sort();
    let max = *lags.last().unwrap();
    let p50 = lags[lags.len() / 2];
    eprintln!(
        "replica lag over {} observations: p50 {:?}, max {:?}",
        lags.len(),
        p50,
        max
    );
    assert!(
        max <= Duration::from_secs(1),
        "replica lag {max:?} exceeds 1 s"
    );
}
