//! `apksift verify` on damaged stores: exit 2 and the damaged file named.

use std::path::{Path, PathBuf};

use apksift_storage::FsDirectory;
use apksift_storage::container::ContainerReader;

use crate::util::{apksift, s};

fn files(p: &Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

fn flip(path: &Path, at: u64) {
    let mut b = std::fs::read(path).unwrap();
    b[at as usize] ^= 0x5a;
    std::fs::write(path, b).unwrap();
}

fn section(p: &Path, file: &str, kind: u32, id: u32) -> (u64, u64) {
    let dir = FsDirectory::open_existing(p).unwrap();
    let c = ContainerReader::open(&dir, file, kind, 1, 1).unwrap();
    let s = c.sections()[&id];
    (s.offset, s.len)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
    }
}

/// A store made by the CLI: 20 digest rows imported, then 2 of them
/// imported again (replaced), so the first segment has a delete file.
fn cli_store(t: &Path) -> PathBuf {
    let db = t.join("db");
    let d = "T1C6E2E143C6D5ECA3EAD00DB7EC72B11417B62A3C2CC2B006652189A1DD93417B7FCA96";
    let mut first = String::from("sha256,tlsh,family\n");
    for i in 0..20 {
        first.push_str(&format!("{i:064x},{d},Anubis\n"));
    }
    let second = format!(
        "sha256,tlsh,family\n{:064x},{d},Kmin\n{:064x},{d},Kmin\n",
        3, 4
    );
    for csv in [first, second] {
        let f = t.join("rows.csv");
        std::fs::write(&f, csv).unwrap();
        let r = apksift(&db, &["import", s(&f)], None);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    db
}

/// (segment, its delete file) named by the store's manifest.
fn named(p: &Path) -> (String, String) {
    let dir = FsDirectory::open_existing(p).unwrap();
    let m = apksift_index::manifest::ManifestData::load(&dir)
        .unwrap()
        .unwrap();
    m.collections
        .iter()
        .flat_map(|c| c.segments.iter())
        .find_map(|s| s.del_file.clone().map(|d| (s.file.clone(), d)))
        .expect("no segment with a delete file")
}

/// The largest data section of a segment.
fn data_section(p: &Path, seg: &str) -> (u64, u64) {
    let dir = FsDirectory::open_existing(p).unwrap();
    let c = ContainerReader::open(&dir, seg, 0x4D47_4553, 1, 1).unwrap();
    c.sections()
        .iter()
        .filter(|(id, _)| **id >= 0x100 && **id & 0xff == 0)
        .map(|(_, s)| (s.offset, s.len))
        .max_by_key(|s| s.1)
        .unwrap()
}

/// Damages the store in a directory; returns the file it damaged.
type Damage = dyn Fn(&Path) -> String;

#[test]
fn cli_verify_reports_damage_with_exit_2() {
    let t = tempfile::tempdir().unwrap();
    let db = cli_store(t.path());
    let r = apksift(&db, &["verify"], None);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("0 errors, 0 warnings"), "{}", r.stdout);
    assert!(!files(&db, "seg-").is_empty());
    assert!(
        !files(&db, "del-").is_empty(),
        "no delete file: {:?}",
        files(&db, "")
    );
    let cases: [(&str, &Damage); 4] = [
        ("segment data", &|p: &Path| {
            let (seg, _) = named(p);
            let (off, len) = data_section(p, &seg);
            flip(&p.join(&seg), off + len / 2);
            seg
        }),
        ("segment truncated", &|p: &Path| {
            let (seg, _) = named(p);
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(p.join(&seg))
                .unwrap();
            let len = f.metadata().unwrap().len();
            f.set_len(len / 2).unwrap();
            seg
        }),
        ("manifest", &|p: &Path| {
            let len = std::fs::metadata(p.join("MANIFEST")).unwrap().len();
            flip(&p.join("MANIFEST"), len - 30);
            "MANIFEST".to_string()
        }),
        ("delete file", &|p: &Path| {
            let (_, del) = named(p);
            let (off, _) = section(p, &del, 0x534C_4544, 0x02);
            flip(&p.join(&del), off);
            del
        }),
    ];
    for (i, (how, damage)) in cases.iter().enumerate() {
        let to = t.path().join(format!("damaged-{i}"));
        copy_dir(&db, &to);
        let file = damage(&to);
        let r = apksift(&to, &["verify"], None);
        assert_eq!(r.code, 2, "{how}: {} {}", r.stdout, r.stderr);
        assert!(
            r.stdout.contains("error:") && r.stdout.contains(&file),
            "{how}: the report does not name {file}: {}",
            r.stdout
        );
        assert!(r.stderr.contains("is damaged"), "{how}: {}", r.stderr);
        eprintln!("{how}: {}", r.stdout.lines().nth(1).unwrap_or(""));
    }
}
