//! Rows stay visible while background flushes and merges run: readers check
//! every acknowledged key (get and search) against one snapshot while a writer
//! inserts, deletes and forces flushes and merges.
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use apksift_index::{Database, Options, QueryVector, SearchParams};
use apksift_tlsh::Digest;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};

use crate::common::*;

#[derive(Default, Clone)]
struct State {
    /// Acknowledged inserts not (yet) being deleted.
    live: Vec<(String, Digest)>,
    /// Deletes issued but not yet acknowledged.
    deleting: HashSet<String>,
    /// Acknowledged deletes.
    deleted: Vec<(String, Digest)>,
}

fn reader(db: Database, st: Arc<Mutex<State>>, stop: Arc<AtomicBool>, seed: u64) -> (u64, u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut gets, mut searches) = (0u64, 0u64);
    while !stop.load(Ordering::Acquire) {
        // What was acknowledged before the snapshot …
        let before = st.lock().clone();
        let snap = db.snapshot();
        // … minus what may have been deleted since.
        let gone: HashSet<String> = {
            let s = st.lock();
            s.deleting
                .iter()
                .cloned()
                .chain(s.deleted.iter().map(|(k, _)| k.clone()))
                .collect()
        };
        let c = snap.collection("s").unwrap();
        let live: Vec<&(String, Digest)> = before
            .live
            .iter()
            .filter(|(k, _)| !gone.contains(k))
            .collect();
        let keys: Vec<String> = live.iter().map(|(k, _)| k.clone()).collect();
        for (k, got) in keys.iter().zip(c.get(&keys, &[]).unwrap()) {
            assert!(
                got.is_some(),
                "acknowledged key {k} not visible (snapshot lsn {})",
                snap.lsn
            );
        }
        let dkeys: Vec<String> = before.deleted.iter().map(|(k, _)| k.clone()).collect();
        for (k, got) in dkeys.iter().zip(c.get(&dkeys, &[]).unwrap()) {
            assert!(
                got.is_none(),
                "deleted key {k} reappeared (snapshot lsn {})",
                snap.lsn
            );
        }
        gets += (keys.len() + dkeys.len()) as u64;
        // Search: a sample of live keys finds itself at distance 0, a sample
        // of deleted keys does not.
        let mut probe: Vec<(&String, &Digest, bool)> = Vec::new();
        for _ in 0..16 {
            if !live.is_empty() {
                let (k, d) = live[rng.random_range(0..live.len())];
                probe.push((k, d, true));
            }
            if !before.deleted.is_empty() {
                let (k, d) = &before.deleted[rng.random_range(0..before.deleted.len())];
                probe.push((k, d, false));
            }
        }
        if probe.is_empty() {
            continue;
        }
        let vectors: Vec<QueryVector> = probe
            .iter()
            .map(|(_, d, _)| QueryVector::Tlsh(**d))
            .collect();
        let params = SearchParams {
            k: 3,
            ..SearchParams::default()
        };
        let res = c.search("tlsh", &vectors, &params).unwrap();
        for ((k, _, alive), hits) in probe.iter().zip(&res.hits) {
            let found = hits.iter().any(|h| &h.key == *k);
            if *alive {
                assert!(
                    found && hits[0].distance == 0.0,
                    "search for acknowledged key {k} returned {hits:?}"
                );
            } else {
                assert!(!found, "search returned deleted key {k}: {hits:?}");
            }
        }
        searches += probe.len() as u64;
    }
    (gets, searches)
}

#[test]
fn visibility_rows_stay_visible_through_background_flushes_and_merges() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::open(
        tmp.path(),
        Options {
            background: true,
            memtable_rows: 150,
            max_segments: 3,
            max_deleted_ratio: 0.2,
            obsolete_file_grace: Duration::ZERO,
            ..Options::default()
        },
    )
    .unwrap();
    db.create_collection("s", sample_schema()).unwrap();
    let st = Arc::new(Mutex::new(State::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|i| {
            let (db, st, stop) = (db.clone(), st.clone(), stop.clone());
            std::thread::spawn(move || reader(db, st, stop, i))
        })
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let started = Instant::now();
    let rounds = 80u64;
    let deletes = AtomicU64::new(0);
    let mut explicit = 0u64;
    for round in 0..rounds {
        let mut r = rows(40, 1000 + round, &format!("r{round:03}-"));
        for x in r.iter_mut() {
            x.tlsh = Some(digest(&mut rng)); // unique: a search finds exactly this row at 0
        }
        db.upsert("s", batch(&r)).unwrap();
        {
            let mut s = st.lock();
            s.live
                .extend(r.iter().map(|x| (x.key.clone(), x.tlsh.unwrap())));
        }
        // Delete a few older keys (in segments or memtables).
        let victims: Vec<(String, Digest)> = {
            let mut s = st.lock();
            let mut v = Vec::new();
            for _ in 0..8 {
                if s.live.len() > 20 {
                    let i = rng.random_range(0..s.live.len() - 10);
                    let x = s.live.swap_remove(i);
                    s.deleting.insert(x.0.clone());
                    v.push(x);
                }
            }
            v
        };
        let keys: Vec<String> = victims.iter().map(|(k, _)| k.clone()).collect();
        let ack = db.delete("s", &keys).unwrap();
        assert_eq!(ack.rows, keys.len() as u64);
        deletes.fetch_add(ack.rows, Ordering::Relaxed);
        {
            let mut s = st.lock();
            for v in victims {
                s.deleting.remove(&v.0);
                s.deleted.push(v);
            }
        }
        if round % 9 == 4 {
            db.flush().unwrap();
            explicit += 1;
        }
        if round % 20 == 13 {
            db.compact("s").unwrap();
        }
    }
    // Let background work settle while the readers keep checking.
    std::thread::sleep(Duration::from_millis(400));
    stop.store(true, Ordering::Release);
    let mut gets = 0;
    let mut searches = 0;
    for r in readers {
        let (g, s) = r
            .join()
            .expect("a reader found a missing or resurrected row");
        gets += g;
        searches += s;
    }
    let stats = db.stats();
    let s = st.lock();
    assert_eq!(db.count("s").unwrap(), s.live.len() as u64);
    eprintln!(
        "visibility: {} rows written, {} deleted, {} flushes, {} merges in {:?}; readers checked {gets} gets and {searches} searches",
        rounds * 40,
        deletes.load(Ordering::Relaxed),
        stats.flushes,
        stats.merges,
        started.elapsed()
    );
    // `explicit` flushes are forced above; the rest are background flushes, woken when the
    // memtable reaches 150 rows. How many there are depends on how many rows the writer adds
    // before the background thread takes the memtable (22 on a quiet machine, 19 under load),
    // so the bound asks only that background flushes happened at all.
    assert!(
        stats.flushes > explicit,
        "no background flush: {} flushes, {explicit} of them explicit",
        stats.flushes
    );
    assert!(stats.merges >= 3, "too few merges: {}", stats.merges);
    assert!(gets > 0 && searches > 0);
}
