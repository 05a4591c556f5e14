//! The parallel fingerprint is the sequential one, bit for bit: on the whole APK corpus, with and
//! without entries, on pools of 1–4 threads, nested inside a pool's tasks, and at every per-archive
//! byte budget that cuts a generated archive between or inside its components (the case where the
//! parallel reads must give way to the sequential order).

mod common;
#[path = "../../apk/tests/common/mod.rs"]
mod writer;

use apksift_apk::Limits;
use apksift_fingerprint::{
    Options, Parallelism, fingerprint, fingerprint_sequential, fingerprint_with,
};
use rayon::prelude::*;

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

fn opts(include_entries: bool, max_total_bytes: u64) -> Options {
    Options {
        limits: Limits {
            max_total_bytes,
            ..Limits::default()
        },
        include_entries,
    }
}

/// Every way of computing the fingerprint of `data` with `o` gives the sequential one.
fn check_all_modes(data: &[u8], o: &Options, pools: &[rayon::ThreadPool], what: &str) {
    let want = fingerprint_sequential(data, o);
    for p in pools {
        let (got, t) = p.install(|| fingerprint_with(data, o, Parallelism::Always));
        assert_eq!(got, want, "{what}: {} threads", p.current_num_threads());
        assert!(t.wall > std::time::Duration::ZERO);
    }
    assert_eq!(fingerprint(data, o), want, "{what}: Auto");
}

fn rnd(len: usize, mut s: u64, alphabet: u8) -> Vec<u8> {
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 24) as u8) % alphabet
        })
        .collect()
}

/// An APK with a manifest, resources, several dex files and native libraries of different sizes
/// (stored and deflated), and other entries.
fn many_components() -> Vec<u8> {
    use writer::Entry;
    let mut entries = vec![
        Entry::deflated("AndroidManifest.xml", &writer::Axml::manifest().build()),
        Entry::stored("resources.arsc", &rnd(9_000, 1, 251)),
        Entry::deflated("classes.dex", &rnd(300_000, 2, 40)),
        Entry::deflated("assets/a.bin", &rnd(50_000, 3, 7)),
        Entry::deflated("classes2.dex", &rnd(120_000, 4, 200)),
        Entry::stored("lib/arm64-v8a/libx.so", &rnd(200_000, 5, 255)),
        Entry::deflated("lib/armeabi-v7a/libx.so", &rnd(80_000, 6, 16)),
        Entry::stored("res/raw/b.bin", &rnd(3_000, 7, 255)),
        Entry::deflated("classes3.dex", &rnd(40, 8, 255)),
        Entry::deflated("lib/x86/liby.so", &[]),
    ];
    for i in 0..12 {
        entries.push(Entry::deflated(
            format!("lib/x86_64/lib{i}.so"),
            &rnd(1_000 + i * 7_777, 100 + i as u64, 64),
        ));
    }
    writer::zip(&entries)
}

#[test]
fn generated_apk_every_budget_boundary() {
    let apk = many_components();
    let pools = [pool(1), pool(2), pool(3), pool(4)];
    for include_entries in [false, true] {
        let full = fingerprint_sequential(&apk, &opts(include_entries, u64::MAX));
        assert!(full.components.len() >= 15);
        // The bytes read in the sequential order: the manifest (for its fields), then the
        // components (and entries) one after the other.
        let mut sizes: Vec<u64> = full.components.iter().map(|c| c.size).collect();
        if let Some(entries) = &full.entries {
            let comps: std::collections::HashSet<&str> =
                full.components.iter().map(|c| c.name.as_str()).collect();
            sizes.extend(
                entries
                    .iter()
                    .filter(|e| !comps.contains(e.name.as_str()))
                    .map(|e| e.read_size),
            );
        }
        let manifest = full.components.first().map_or(0, |c| c.size);
        let mut budgets = vec![0, 1, manifest, u64::MAX];
        let mut used = manifest;
        for s in sizes {
            for b in [
                used,
                used + 1,
                used + s / 2,
                used + s - 1,
                used + s,
                used + s + 1,
            ] {
                budgets.push(b);
            }
            used += s;
        }
        budgets.sort_unstable();
        budgets.dedup();
        for b in budgets {
            check_all_modes(
                &apk,
                &opts(include_entries, b),
                &pools,
                &format!("budget {b}, entries {include_entries}"),
            );
        }
    }
}

#[test]
fn corpus_parallel_equals_sequential() {
    let Some(dir) = common::apk_dir() else { return };
    let pools = [pool(2), pool(3)];
    let files = common::all_apks(&dir);
    assert!(!files.is_empty());
    for (n, rel) in files.iter().enumerate() {
        let data = std::fs::read(dir.join(rel)).unwrap();
        check_all_modes(&data, &opts(false, 1 << 30), &pools, rel);
        check_all_modes(&data, &opts(true, 1 << 30), &pools, rel);
        // Budgets that cut somewhere, on a sample of the files.
        if n % 8 == 0 {
            for b in [0, 4096, data.len() as u64 / 3, data.len() as u64] {
                check_all_modes(
                    &data,
                    &opts(true, b),
                    &pools[..1],
                    &format!("{rel} budget {b}"),
                );
            }
        }
    }
}

#[test]
fn nested_in_a_busy_pool() {
    // Like the CLI's ingest: fingerprints inside a pool's tasks, with the pool's threads busy.
    let apk = many_components();
    let want = fingerprint_sequential(&apk, &Options::default());
    for threads in [1, 2, 4] {
        let got: Vec<_> = pool(threads).install(|| {
            (0..8)
                .into_par_iter()
                .map(|_| fingerprint_with(&apk, &Options::default(), Parallelism::Always).0)
                .collect()
        });
        assert!(got.iter().all(|g| *g == want), "{threads} threads");
    }
}

#[test]
fn timings_cover_unzip_and_hash() {
    let apk = many_components();
    for par in [Parallelism::Sequential, Parallelism::Always] {
        let (_, t) = fingerprint_with(&apk, &Options::default(), par);
        assert!(t.unzip > std::time::Duration::ZERO, "{par:?}: {t:?}");
        assert!(t.hash > std::time::Duration::ZERO, "{par:?}: {t:?}");
        if par == Parallelism::Sequential {
            assert!(t.unzip + t.hash <= t.wall, "{t:?}");
        }
    }
    let (_, t) = fingerprint_with(b"not a zip", &Options::default(), Parallelism::Auto);
    assert!(t.hash > std::time::Duration::ZERO);
}
