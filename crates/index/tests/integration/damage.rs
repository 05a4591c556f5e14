//! `verify` finds damage in a real (file system) store: a flipped byte in a
//! segment's data section, a truncated segment, a damaged manifest, a damaged
//! delete file. Each is reported as an error naming the file.
use std::path::{Path, PathBuf};

use apksift_index::{Database, Options};
use apksift_storage::FsDirectory;
use apksift_storage::container::ContainerReader;

use crate::common::*;

/// A store with two segments, one of them with a delete file.
fn build(root: &Path) -> PathBuf {
    let p = root.join("store");
    let db = Database::open(
        &p,
        Options {
            background: false,
            ..Options::default()
        },
    )
    .unwrap();
    db.create_collection("s", sample_schema()).unwrap();
    db.upsert("s", batch(&rows(300, 1, "a"))).unwrap();
    db.flush().unwrap();
    db.upsert("s", batch(&rows(100, 2, "b"))).unwrap();
    db.delete("s", &["a000003".to_string(), "a000004".to_string()])
        .unwrap();
    db.close().unwrap();
    p
}

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

fn section_offset(p: &Path, file: &str, kind: u32, id: u32) -> (u64, u64) {
    let dir = FsDirectory::open_existing(p).unwrap();
    let c = ContainerReader::open(&dir, file, kind, 1, 1).unwrap();
    let s = c.sections()[&id];
    (s.offset, s.len)
}

/// Damages a copy of `clean` one way; returns the directory and the file.
pub fn damaged(clean: &Path, to: &Path, how: &str) -> String {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(clean).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
    }
    match how {
        "segment data" => {
            let seg = files(to, "seg-").remove(0);
            // DATA of field 0 (the TLSH digests): checked only by verify.
            let (off, len) = section_offset(to, &seg, apksift_index::segment::SEGMENT_KIND, 0x100);
            flip(&to.join(&seg), off + len / 2);
            seg
        }
        "segment truncated" => {
            let seg = files(to, "seg-").remove(0);
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(to.join(&seg))
                .unwrap();
            let len = f.metadata().unwrap().len();
            f.set_len(len - 100).unwrap();
            seg
        }
        "manifest" => {
            let len = std::fs::metadata(to.join("MANIFEST")).unwrap().len();
            flip(&to.join("MANIFEST"), len - 40);
            "MANIFEST".into()
        }
        "delete file" => {
            let del = files(to, "del-").remove(0);
            let (off, _) = section_offset(to, &del, 0x534C_4544, 0x02);
            flip(&to.join(&del), off);
            del
        }
        other => panic!("{other}"),
    }
}

#[test]
fn damage_is_found_by_verify_and_named() {
    let t = tempfile::tempdir().unwrap();
    let clean = build(t.path());
    assert_eq!(files(&clean, "seg-").len(), 2);
    assert_eq!(files(&clean, "del-").len(), 1);
    let r =
        apksift_index::verify::verify_dir(&FsDirectory::open_existing(&clean).unwrap()).unwrap();
    assert!(r.errors.is_empty() && r.warnings.is_empty(), "{r:?}");
    assert_eq!(r.segments_checked, 2);
    assert_eq!(r.delete_files_checked, 1);
    for (i, how) in [
        "segment data",
        "segment truncated",
        "manifest",
        "delete file",
    ]
    .into_iter()
    .enumerate()
    {
        let to = t.path().join(format!("damaged-{i}"));
        let file = damaged(&clean, &to, how);
        let r =
            apksift_index::verify::verify_dir(&FsDirectory::open_existing(&to).unwrap()).unwrap();
        assert!(!r.errors.is_empty(), "{how}: verify found nothing");
        assert!(
            r.errors.iter().any(|e| e.contains(&file)),
            "{how}: no error names {file}: {:?}",
            r.errors
        );
        eprintln!("{how}: {}", r.errors.join("; "));
    }
}
