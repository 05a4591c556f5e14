//! Conformance: the same behaviour from every Directory implementation.
use apksift_storage::{Directory, Error, FaultyDirectory, FsDirectory, MemDirectory};

fn all_dirs() -> Vec<(Box<dyn Directory>, Option<tempfile::TempDir>)> {
    let tmp = tempfile::tempdir().unwrap();
    let fs = FsDirectory::create_dir_all(tmp.path()).unwrap();
    vec![
        (Box::new(fs), Some(tmp)),
        (Box::new(MemDirectory::new()), None),
        (Box::new(FaultyDirectory::new()), None),
    ]
}

#[test]
fn directory_write_read_append_truncate() {
    for (d, _keep) in all_dirs() {
        let mut w = d.create("f").unwrap();
        w.write_all(b"abc").unwrap();
        w.write_all(b"def").unwrap();
        w.sync().unwrap();
        assert_eq!(w.len(), 6);
        drop(w);
        assert_eq!(&*d.open_read("f").unwrap(), b"abcdef", "{}", d.describe());
        assert_eq!(d.read_at("f", 2, 3).unwrap(), b"cde");
        assert_eq!(d.read_at("f", 5, 100).unwrap(), b"f");
        assert_eq!(d.read_at("f", 50, 100).unwrap(), b"");
        let mut a = d.open_append("f").unwrap();
        assert_eq!(a.len(), 6);
        a.write_all(b"g").unwrap();
        a.sync().unwrap();
        drop(a);
        assert_eq!(d.file_len("f").unwrap(), 7);
        d.truncate("f", 2).unwrap();
        assert_eq!(&*d.open_read("f").unwrap(), b"ab");
        assert!(d.exists("f"));
        assert!(!d.exists("g"));
        assert!(matches!(d.open_read("g"), Err(Error::NotFound(_))));
        assert!(d.open_append("g").is_err());
    }
}

#[test]
fn directory_atomic_write_list_delete() {
    for (d, _keep) in all_dirs() {
        d.atomic_write("m", b"one").unwrap();
        d.atomic_write("m", b"two").unwrap();
        assert_eq!(&*d.open_read("m").unwrap(), b"two");
        d.create("b").unwrap();
        assert_eq!(
            d.list().unwrap(),
            vec!["b".to_string(), "m".to_string()],
            "{}",
            d.describe()
        );
        d.delete("b").unwrap();
        d.delete("never-there").unwrap();
        assert_eq!(d.list().unwrap(), vec!["m".to_string()]);
        d.sync_dir().unwrap();
    }
}

#[test]
fn directory_lock_is_exclusive_and_released_on_drop() {
    for (d, _keep) in all_dirs() {
        let l = d.try_lock("LOCK").unwrap();
        // flock is per open file description, so a second open conflicts even in-process.
        assert!(
            matches!(d.try_lock("LOCK"), Err(Error::Locked(_))),
            "{}",
            d.describe()
        );
        drop(l);
        let _again = d.try_lock("LOCK").unwrap();
    }
}

#[test]
fn fs_directory_rejects_path_like_names() {
    let tmp = tempfile::tempdir().unwrap();
    let d = FsDirectory::create_dir_all(tmp.path()).unwrap();
    for bad in ["../x", "a/b", "", "..", "a\\b"] {
        assert!(d.create(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn faulty_directory_loses_unsynced_bytes_and_names() {
    let d = FaultyDirectory::new();
    let mut w = d.create("a").unwrap();
    w.write_all(b"durable").unwrap();
    w.sync().unwrap();
    d.sync_dir().unwrap();
    w.write_all(b"-lost").unwrap();
    let mut w2 = d.create("b").unwrap();
    w2.write_all(b"x").unwrap();
    w2.sync().unwrap(); // file synced, but its name never was
    let img = d.crash_image();
    assert_eq!(img.get("a").map(|v| &v[..]), Some(&b"durable"[..]));
    assert!(!img.contains_key("b"));
}

#[test]
fn faulty_directory_freezes_after_nth_sync() {
    let d = FaultyDirectory::new();
    d.freeze_after_syncs(2);
    let mut w = d.create("a").unwrap();
    w.write_all(b"1").unwrap();
    w.sync().unwrap(); // sync 1
    d.sync_dir().unwrap(); // sync 2
    w.write_all(b"2").unwrap();
    w.sync().unwrap(); // sync 3: frozen, not durable
    assert_eq!(
        &*d.open_read("a").unwrap(),
        b"12",
        "the running process still sees live bytes"
    );
    assert_eq!(d.crash_image().get("a").map(|v| &v[..]), Some(&b"1"[..]));
}

#[test]
fn faulty_directory_fails_the_nth_sync() {
    let d = FaultyDirectory::new();
    d.fail_sync_at(2);
    let mut w = d.create("a").unwrap();
    w.write_all(b"1").unwrap();
    w.sync().unwrap();
    w.write_all(b"2").unwrap();
    assert!(w.sync().is_err());
}
