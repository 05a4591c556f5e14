//! Shared helpers: store location and opening, reading and walking input files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use apksift_core::{Fingerprint, FingerprintOptions, Store, StoreOptions};

/// Largest input file read (bytes).
pub const MAX_FILE_BYTES: u64 = 4 << 30;

/// The store directory: `--db`, `$APKSIFT_DB`, or the per-user data directory.
pub fn db_path(db: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = db {
        return Ok(p.to_path_buf());
    }
    let dirs = directories::ProjectDirs::from("", "", "apksift").ok_or_else(|| {
        anyhow!("no home directory to put the store in; pass --db DIR or set APKSIFT_DB")
    })?;
    Ok(dirs.data_dir().join("db"))
}

fn store_exists(p: &Path) -> bool {
    p.join(apksift_index::manifest::MANIFEST).is_file()
}

/// Opens the store as its writer (creating it).
pub fn open_writer(db: Option<&Path>) -> Result<Store> {
    open_writer_with(db, StoreOptions::default())
}

/// Opens the store as its writer with options.
pub fn open_writer_with(db: Option<&Path>, opts: StoreOptions) -> Result<Store> {
    let p = db_path(db)?;
    Store::open(&p, opts).map_err(|e| locked_hint(e, &p))
}

fn locked_hint(e: apksift_core::Error, p: &Path) -> anyhow::Error {
    let msg = e.to_string();
    if msg.to_ascii_lowercase().contains("lock") {
        anyhow!(
            "cannot open the store {} for writing: {msg} (is another apksift process, e.g. a server, using it?)",
            p.display()
        )
    } else {
        anyhow!(e).context(format!("opening the store {}", p.display()))
    }
}

/// Opens the store for reading. A store that does not exist yet reads as empty (an
/// in-memory store), so that `scan` and `search` work on a fresh machine; `None` is
/// returned in the second slot then.
pub fn open_reader(db: Option<&Path>) -> Result<(Store, Option<PathBuf>)> {
    let p = db_path(db)?;
    if !store_exists(&p) {
        let dir: Arc<dyn apksift_storage::Directory> =
            Arc::new(apksift_storage::MemDirectory::new());
        let opts = apksift_index::Options {
            background: false,
            ..apksift_index::Options::default()
        };
        let db = apksift_index::Database::open_dir(dir, opts)?;
        return Ok((Store::from_database(db)?, None));
    }
    let store = Store::open_read_only(&p, StoreOptions::default())
        .with_context(|| format!("opening the store {}", p.display()))?;
    Ok((store, Some(p)))
}

/// Requires an existing store directory (inspect, verify).
pub fn existing_db(db: Option<&Path>) -> Result<PathBuf> {
    let p = db_path(db)?;
    if !store_exists(&p) {
        bail!(
            "no apksift store at {} (nothing ingested or imported yet)",
            p.display()
        );
    }
    Ok(p)
}

/// Reads a whole input file with a size cap.
pub fn read_file(p: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(p).with_context(|| format!("{}", p.display()))?;
    if meta.is_dir() {
        bail!("{}: is a directory", p.display());
    }
    if meta.len() > MAX_FILE_BYTES {
        bail!(
            "{}: {} bytes is over the {} byte limit",
            p.display(),
            meta.len(),
            MAX_FILE_BYTES
        );
    }
    std::fs::read(p).with_context(|| format!("{}", p.display()))
}

/// True when the fingerprint found a ZIP structure (or salvaged entries).
pub fn looks_like_apk(fp: &Fingerprint) -> bool {
    fp.zip.ok || fp.zip.entry_count > 0 || !fp.components.is_empty()
}

/// Reads and fingerprints a file; `any_file` lets non-ZIP input through.
pub fn fingerprint_file(p: &Path, any_file: bool) -> Result<Fingerprint> {
    let bytes = read_file(p)?;
    let fp = apksift_core::fingerprint(&bytes, &FingerprintOptions::default());
    if !any_file && !looks_like_apk(&fp) {
        let why = fp
            .zip
            .error
            .clone()
            .unwrap_or_else(|| "no ZIP structure".into());
        bail!(
            "{}: not an APK ({why}); pass --any-file to use its whole-file hashes anyway",
            p.display()
        );
    }
    Ok(fp)
}

/// Input files: explicit files as given; directories walked recursively (sorted, symlinked
/// directories not followed), keeping `*.apk` files and files that start like a ZIP.
pub struct Inputs {
    /// Files to process.
    pub files: Vec<PathBuf>,
    /// Files found in directories and left out (not APK-like).
    pub skipped: u64,
    /// Paths that could not be read (missing, unreadable directories).
    pub errors: Vec<String>,
}

pub fn collect_inputs(paths: &[PathBuf]) -> Inputs {
    let mut out = Inputs {
        files: Vec::new(),
        skipped: 0,
        errors: Vec::new(),
    };
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &mut out),
            Ok(_) => out.files.push(p.clone()),
            Err(e) => out.errors.push(format!("{}: {e}", p.display())),
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Inputs) {
    let rd = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) => {
            out.errors.push(format!("{}: {e}", dir.display()));
            return;
        }
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        let Ok(lm) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if lm.is_dir() {
            walk(&p, out);
        } else if lm.is_file() || lm.file_type().is_symlink() {
            if std::fs::metadata(&p).is_ok_and(|m| m.is_dir()) {
                continue; // symlinked directory: not followed
            }
            if is_apk_like(&p) {
                out.files.push(p);
            } else {
                out.skipped += 1;
            }
        }
    }
}

fn is_apk_like(p: &Path) -> bool {
    if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("apk")) {
        return true;
    }
    use std::io::Read;
    let mut head = [0u8; 4];
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head == *b"PK\x03\x04"
}
