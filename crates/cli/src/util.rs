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

/// Where the store is: a directory (`--db DIR`, `--store DIR`, the default) or a Milvus
/// address (`--store milvus://…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLoc {
    /// An embedded store directory.
    Dir(PathBuf),
    /// A `milvus://HOST:PORT/PREFIX?…` address.
    Milvus(String),
}

impl StoreLoc {
    /// From `--store` (wins) or `--db`; the per-user directory when neither is given.
    pub fn resolve(db: Option<&Path>, store: Option<&str>) -> Result<StoreLoc> {
        Ok(match (store, db) {
            (Some(s), _) => StoreLoc::parse(s),
            (None, Some(p)) => match p.to_str() {
                Some(s) if apksift_core::is_milvus_url(s) => StoreLoc::Milvus(s.to_string()),
                _ => StoreLoc::Dir(p.to_path_buf()),
            },
            (None, None) => StoreLoc::Dir(db_path(None)?),
        })
    }

    /// A `milvus://` address or a directory.
    pub fn parse(s: &str) -> StoreLoc {
        if apksift_core::is_milvus_url(s) {
            StoreLoc::Milvus(s.to_string())
        } else {
            StoreLoc::Dir(PathBuf::from(s))
        }
    }

    /// The directory, or an error naming `command` for a Milvus store.
    pub fn dir(&self, command: &str) -> Result<&Path> {
        match self {
            StoreLoc::Dir(p) => Ok(p),
            StoreLoc::Milvus(u) => bail!(
                "`apksift {command}` works on an embedded store directory (--db DIR); {u} is a Milvus store"
            ),
        }
    }

    /// The string [`Store::open_url`] takes.
    pub fn url(&self) -> Result<String> {
        match self {
            StoreLoc::Milvus(u) => Ok(u.clone()),
            StoreLoc::Dir(p) => p
                .to_str()
                .map(str::to_string)
                .ok_or_else(|| anyhow!("{}: the store path is not valid UTF-8", p.display())),
        }
    }
}

impl std::fmt::Display for StoreLoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLoc::Dir(p) => write!(f, "{}", p.display()),
            StoreLoc::Milvus(u) => write!(f, "{}", u.split('?').next().unwrap_or(u)),
        }
    }
}

fn store_exists(p: &Path) -> bool {
    p.join(apksift_index::manifest::MANIFEST).is_file()
}

/// Opens the store as its writer (creating it).
pub fn open_writer(loc: &StoreLoc) -> Result<Store> {
    open_writer_with(loc, StoreOptions::default())
}

/// Opens the store as its writer with options.
pub fn open_writer_with(loc: &StoreLoc, opts: StoreOptions) -> Result<Store> {
    match loc {
        StoreLoc::Dir(p) => Store::open(p, opts).map_err(|e| locked_hint(e, p)),
        StoreLoc::Milvus(_) => {
            Store::open_url(&loc.url()?, opts).with_context(|| format!("opening the store {loc}"))
        }
    }
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

/// An empty store in memory (what a store that does not exist yet reads as).
fn empty_store() -> Result<Store> {
    let dir: Arc<dyn apksift_storage::Directory> = Arc::new(apksift_storage::MemDirectory::new());
    let opts = apksift_index::Options {
        background: false,
        ..apksift_index::Options::default()
    };
    let db = apksift_index::Database::open_dir(dir, opts)?;
    Ok(Store::from_database(db)?)
}

/// Opens the store for reading. A store that does not exist yet (no directory, or no
/// collections under the Milvus prefix) reads as empty (an in-memory store), so that `scan`
/// and `search` work on a fresh machine; the second slot is `false` then.
pub fn open_reader(loc: &StoreLoc) -> Result<(Store, bool)> {
    match loc {
        StoreLoc::Dir(p) => {
            if !store_exists(p) {
                return Ok((empty_store()?, false));
            }
            let store = Store::open_read_only(p, StoreOptions::default())
                .with_context(|| format!("opening the store {}", p.display()))?;
            Ok((store, true))
        }
        StoreLoc::Milvus(_) => {
            match Store::open_url_read_only(&loc.url()?, StoreOptions::default()) {
                Ok(s) => Ok((s, true)),
                Err(apksift_core::Error::NotFound(_)) => Ok((empty_store()?, false)),
                Err(e) => Err(anyhow!(e).context(format!("opening the store {loc}"))),
            }
        }
    }
}

/// Requires an existing store directory (inspect, verify, backup).
pub fn existing_db(loc: &StoreLoc, command: &str) -> Result<PathBuf> {
    let p = loc.dir(command)?;
    if !store_exists(p) {
        bail!(
            "no apksift store at {} (nothing ingested or imported yet)",
            p.display()
        );
    }
    Ok(p.to_path_buf())
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
