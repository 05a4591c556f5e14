//! Write-ahead log: framed, checksummed records in numbered files, with group
//! commit.
//!
//! File `wal-<seq as 16 hex digits>.log`:
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic `APKSWAL1` |
//! | 8..12 | format version (u32 LE) |
//! | 12..16 | reserved, 0 |
//! | 16..24 | file sequence number (u64 LE) |
//! | 24..32 | salt (u64 LE, random per file) |
//! | 32..40 | LSN of the first record in the file (u64 LE) |
//! | 40..44 | CRC-32C of bytes 0..40 |
//! | 44..48 | reserved, 0 |
//!
//! then records: `len u32 LE | crc u32 LE | lsn u64 LE | payload[len]`, where
//! `crc = crc32c(salt LE ‖ lsn LE ‖ len LE ‖ payload)`. LSNs are consecutive
//! across files. The per-file salt makes bytes left over from an older file
//! (or another store) fail the checksum. Recovery stops at the first record
//! that does not verify; if nothing valid follows it in the last file, the tail
//! was torn by a crash and is truncated; otherwise the log is corrupt and the
//! store refuses to open (see `docs/FORMAT.md`).

use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::{Directory, Error, Result, WriteHandle};

/// Log sequence number: 1 for the first record ever written; 0 means "none".
pub type Lsn = u64;

const MAGIC: &[u8; 8] = b"APKSWAL1";
/// Current WAL format version.
pub const WAL_FORMAT_VERSION: u32 = 1;
/// Size of the file header.
pub const HEADER_LEN: usize = 48;
/// Size of a record header.
pub const RECORD_HEADER_LEN: usize = 16;
/// Largest payload accepted in one record.
pub const MAX_RECORD_LEN: usize = 512 << 20;

/// Options of the writer.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Start a new file once the current one exceeds this many bytes.
    pub max_file_bytes: u64,
    /// Writers wait while this many bytes are buffered and not yet written.
    pub max_buffer_bytes: usize,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            max_file_bytes: 64 << 20,
            max_buffer_bytes: 1 << 30,
        }
    }
}

/// File name of WAL file `seq`.
pub fn file_name(seq: u64) -> String {
    format!("wal-{seq:016x}.log")
}

/// Parses a WAL file name.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// A WAL file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// File sequence number.
    pub seq: u64,
    /// Checksum salt.
    pub salt: u64,
    /// LSN of the first record in the file.
    pub first_lsn: Lsn,
}

impl FileHeader {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&WAL_FORMAT_VERSION.to_le_bytes());
        h[16..24].copy_from_slice(&self.seq.to_le_bytes());
        h[24..32].copy_from_slice(&self.salt.to_le_bytes());
        h[32..40].copy_from_slice(&self.first_lsn.to_le_bytes());
        let crc = crc32c::crc32c(&h[0..40]);
        h[40..44].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes and checks a header.
    pub fn decode(name: &str, b: &[u8]) -> Result<FileHeader> {
        let h = b
            .get(..HEADER_LEN)
            .ok_or_else(|| Error::corrupt(name, 0, "WAL file shorter than its header"))?;
        if &h[0..8] != MAGIC {
            return Err(Error::corrupt(name, 0, "bad WAL magic"));
        }
        let crc = u32_at(h, 40);
        if crc != crc32c::crc32c(&h[0..40]) {
            return Err(Error::corrupt(name, 40, "WAL header checksum mismatch"));
        }
        let version = u32_at(h, 8);
        if version != WAL_FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                file: name.to_string(),
                found: version,
                oldest: WAL_FORMAT_VERSION,
                newest: WAL_FORMAT_VERSION,
            });
        }
        Ok(FileHeader {
            seq: u64_at(h, 16),
            salt: u64_at(h, 24),
            first_lsn: u64_at(h, 32),
        })
    }
}

#[allow(clippy::indexing_slicing)] // callers pass slices of checked length
fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

#[allow(clippy::indexing_slicing)]
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn record_crc(salt: u64, lsn: Lsn, payload: &[u8]) -> u32 {
    let mut c = crc32c::crc32c(&salt.to_le_bytes());
    c = crc32c::crc32c_append(c, &lsn.to_le_bytes());
    c = crc32c::crc32c_append(c, &(payload.len() as u32).to_le_bytes());
    crc32c::crc32c_append(c, payload)
}

fn encode_record(out: &mut Vec<u8>, salt: u64, lsn: Lsn, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&record_crc(salt, lsn, payload).to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Outcome of parsing one record at an offset.
#[derive(Debug)]
enum Parsed<'a> {
    Record {
        lsn: Lsn,
        payload: &'a [u8],
        next: usize,
    },
    /// Not enough bytes for a whole record (could still be being written).
    Incomplete,
    /// Bytes that do not form a valid record.
    Invalid(&'static str),
}

fn parse_record(buf: &[u8], at: usize, salt: u64) -> Parsed<'_> {
    let Some(h) = buf.get(at..at + RECORD_HEADER_LEN) else {
        return Parsed::Incomplete;
    };
    let len = u32_at(h, 0) as usize;
    let crc = u32_at(h, 4);
    let lsn = u64_at(h, 8);
    if len > MAX_RECORD_LEN {
        return Parsed::Invalid("record length exceeds the maximum");
    }
    let start = at + RECORD_HEADER_LEN;
    let Some(payload) = buf.get(start..start + len) else {
        return Parsed::Incomplete;
    };
    if record_crc(salt, lsn, payload) != crc {
        return Parsed::Invalid("record checksum mismatch");
    }
    Parsed::Record {
        lsn,
        payload,
        next: start + len,
    }
}

/// A WAL file found in a directory.
#[derive(Debug, Clone)]
pub struct WalFile {
    /// File name.
    pub name: String,
    /// Its header.
    pub header: FileHeader,
}

/// Lists the WAL files of a directory in sequence order, checking headers.
/// A last file whose header is torn (crash during rotation) is reported as
/// `torn_last = Some(name)` rather than as an error.
pub fn list_files(dir: &dyn Directory) -> Result<(Vec<WalFile>, Option<String>)> {
    let mut seqs: Vec<(u64, String)> = dir
        .list()?
        .into_iter()
        .filter_map(|n| parse_file_name(&n).map(|s| (s, n)))
        .collect();
    seqs.sort();
    let mut out = Vec::new();
    let mut torn = None;
    let count = seqs.len();
    for (i, (seq, name)) in seqs.into_iter().enumerate() {
        let head = dir.read_at(&name, 0, HEADER_LEN)?;
        match FileHeader::decode(&name, &head) {
            Ok(h) if h.seq == seq => out.push(WalFile { name, header: h }),
            Ok(_) => {
                return Err(Error::corrupt(
                    name,
                    16,
                    "WAL header sequence does not match the file name",
                ));
            }
            Err(e) => {
                if i + 1 == count && (head.len() < HEADER_LEN || matches!(e, Error::Corrupt { .. }))
                {
                    torn = Some(name);
                } else {
                    return Err(e);
                }
            }
        }
    }
    Ok((out, torn))
}

/// What recovery found.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    /// LSN of the last valid record (0 when the log is empty).
    pub last_lsn: Lsn,
    /// Records handed to the callback (those after `after_lsn`).
    pub replayed: u64,
    /// Records in the log in total.
    pub records: u64,
    /// Bytes cut from a torn tail.
    pub truncated_bytes: u64,
    /// Files with a torn header that were removed.
    pub removed_files: Vec<String>,
    /// WAL files present after recovery.
    pub files: Vec<String>,
}

/// Reads the whole log, hands every record with `lsn > after_lsn` to `apply`
/// in order, and repairs a torn tail when `repair` is true (the writer does;
/// read-only users never modify files).
///
/// When log files exist but the first one starts after `after_lsn + 1`, the
/// records in between are gone (checkpointed away under a reader holding an
/// older manifest): that is an error ("WAL gap"), never a silent skip.
pub fn recover(
    dir: &dyn Directory,
    after_lsn: Lsn,
    repair: bool,
    mut apply: impl FnMut(Lsn, &[u8]) -> Result<()>,
) -> Result<RecoveryReport> {
    let (files, torn) = list_files(dir)?;
    let mut report = RecoveryReport::default();
    if let Some(t) = torn {
        if repair {
            dir.delete(&t)?;
            dir.sync_dir()?;
        }
        report.removed_files.push(t);
    }
    // The first record still on disk must be at or before the first one the
    // caller needs. A later start means records after `after_lsn` were
    // removed: a reader that loaded an older manifest while the writer
    // checkpointed and deleted log files. Replaying what is left would skip
    // records silently; the caller must reload from a newer manifest.
    if let Some(first) = files.first()
        && first.header.first_lsn > after_lsn.saturating_add(1)
    {
        return Err(Error::corrupt(
            &first.name,
            32,
            format!(
                "WAL gap: the first record on disk is LSN {} but records after LSN {} are needed \
                 (the log was checkpointed past this manifest; reload from a newer one)",
                first.header.first_lsn, after_lsn
            ),
        ));
    }
    let mut expected: Option<Lsn> = None;
    let nfiles = files.len();
    for (fi, f) in files.iter().enumerate() {
        let is_last = fi + 1 == nfiles;
        let data = dir.open_read(&f.name)?;
        let buf: &[u8] = &data;
        if let Some(e) = expected
            && f.header.first_lsn != e
        {
            {
                return Err(Error::corrupt(
                    &f.name,
                    32,
                    format!(
                        "WAL gap: file starts at LSN {} but {} was expected",
                        f.header.first_lsn, e
                    ),
                ));
            }
        }
        let mut at = HEADER_LEN;
        let mut next_lsn = f.header.first_lsn;
        loop {
            match parse_record(buf, at, f.header.salt) {
                Parsed::Record { lsn, payload, next } => {
                    if lsn != next_lsn {
                        return Err(Error::corrupt(
                            &f.name,
                            at as u64,
                            format!("WAL record LSN {lsn} where {next_lsn} was expected"),
                        ));
                    }
                    report.records += 1;
                    if lsn > after_lsn {
                        apply(lsn, payload)?;
                        report.replayed += 1;
                    }
                    report.last_lsn = lsn;
                    next_lsn = lsn + 1;
                    at = next;
                }
                Parsed::Incomplete | Parsed::Invalid(_) => {
                    let reason = match parse_record(buf, at, f.header.salt) {
                        Parsed::Invalid(r) => r,
                        _ => "incomplete record",
                    };
                    if at == buf.len() {
                        break;
                    }
                    if !is_last {
                        return Err(Error::corrupt(
                            &f.name,
                            at as u64,
                            format!("{reason} before the end of a WAL file that is not the last"),
                        ));
                    }
                    if valid_record_after(buf, at + 1, f.header.salt, next_lsn) {
                        return Err(Error::corrupt(
                            &f.name,
                            at as u64,
                            format!(
                                "{reason}, and valid records follow: the log is damaged, not torn"
                            ),
                        ));
                    }
                    report.truncated_bytes = (buf.len() - at) as u64;
                    if repair {
                        drop(data);
                        dir.truncate(&f.name, at as u64)?;
                    }
                    break;
                }
            }
        }
        expected = Some(next_lsn);
        report.files.push(f.name.clone());
    }
    Ok(report)
}

/// The complete, verifying records at the start of the bytes of WAL file
/// `name` (for copying a log that a writer may still be appending to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidPrefix {
    /// The file header.
    pub header: FileHeader,
    /// Bytes from the start of the file to the end of the last valid record.
    pub len: usize,
    /// LSN after the last valid record (`header.first_lsn` when there is none).
    pub next_lsn: Lsn,
}

/// Finds the [`ValidPrefix`] of a WAL file's bytes: the header and every
/// record up to the first one that is incomplete or does not verify (a record
/// still being written). A record with an unexpected LSN is corruption.
pub fn valid_prefix(name: &str, buf: &[u8]) -> Result<ValidPrefix> {
    let header = FileHeader::decode(name, buf)?;
    let mut at = HEADER_LEN;
    let mut next_lsn = header.first_lsn;
    while let Parsed::Record { lsn, next, .. } = parse_record(buf, at, header.salt) {
        if lsn != next_lsn {
            return Err(Error::corrupt(
                name,
                at as u64,
                format!("WAL record LSN {lsn} where {next_lsn} was expected"),
            ));
        }
        next_lsn = lsn + 1;
        at = next;
    }
    Ok(ValidPrefix {
        header,
        len: at,
        next_lsn,
    })
}

/// True when a record with `lsn >= min_lsn` verifies anywhere at or after `from`.
fn valid_record_after(buf: &[u8], from: usize, salt: u64, min_lsn: Lsn) -> bool {
    let mut at = from;
    while at + RECORD_HEADER_LEN <= buf.len() {
        if let Parsed::Record { lsn, .. } = parse_record(buf, at, salt)
            && lsn >= min_lsn
        {
            return true;
        }
        at += 1;
    }
    false
}

struct Inner {
    next_lsn: Lsn,
    buf: Vec<u8>,
    buf_first_lsn: Lsn,
    buf_last_lsn: Lsn,
    durable_lsn: Lsn,
    syncing: bool,
    file: Option<Box<dyn WriteHandle>>,
    file_seq: u64,
    salt: u64,
    poisoned: Option<String>,
    /// (first_lsn, seq) of every file of this log, oldest first.
    files: Vec<(Lsn, u64)>,
}

/// The log writer. Appends are ordered by LSN; [`WalWriter::wait_durable`]
/// returns once the record is fsynced, and one fsync covers every record
/// buffered when it started (group commit).
pub struct WalWriter {
    dir: Arc<dyn Directory>,
    opts: WalOptions,
    inner: Mutex<Inner>,
    cond: Condvar,
    fsync_nanos: parking_lot::Mutex<Vec<u64>>,
}

impl std::fmt::Debug for WalWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.inner.lock();
        f.debug_struct("WalWriter")
            .field("next_lsn", &i.next_lsn)
            .field("durable_lsn", &i.durable_lsn)
            .field("file_seq", &i.file_seq)
            .finish()
    }
}

impl WalWriter {
    /// Opens a writer that continues after `last_lsn` in a fresh file.
    /// `existing` lists the files already in the directory (from [`recover`]).
    pub fn open(dir: Arc<dyn Directory>, last_lsn: Lsn, opts: WalOptions) -> Result<WalWriter> {
        let (existing, _) = list_files(&*dir)?;
        let next_seq = existing.last().map(|f| f.header.seq + 1).unwrap_or(1);
        let files = existing
            .iter()
            .map(|f| (f.header.first_lsn, f.header.seq))
            .collect();
        let w = WalWriter {
            dir,
            opts,
            inner: Mutex::new(Inner {
                next_lsn: last_lsn + 1,
                buf: Vec::new(),
                buf_first_lsn: 0,
                buf_last_lsn: 0,
                durable_lsn: last_lsn,
                syncing: false,
                file: None,
                file_seq: next_seq - 1,
                salt: 0,
                poisoned: None,
                files,
            }),
            cond: Condvar::new(),
            fsync_nanos: parking_lot::Mutex::new(Vec::new()),
        };
        {
            let mut inner = w.inner.lock();
            let first = inner.next_lsn;
            w.start_file(&mut inner, first)?;
        }
        Ok(w)
    }

    fn start_file(&self, inner: &mut Inner, first_lsn: Lsn) -> Result<()> {
        let seq = inner.file_seq + 1;
        let salt: u64 = rand::random();
        let name = file_name(seq);
        let mut f = self.dir.create(&name)?;
        let header = FileHeader {
            seq,
            salt,
            first_lsn,
        };
        f.write_all(&header.encode())?;
        f.sync()?;
        self.dir.sync_dir()?;
        inner.file = Some(f);
        inner.file_seq = seq;
        inner.salt = salt;
        inner.files.push((first_lsn, seq));
        Ok(())
    }

    /// Buffers a record and returns its LSN. It is not durable until
    /// [`WalWriter::wait_durable`] returns for it.
    pub fn append(&self, payload: &[u8]) -> Result<Lsn> {
        if payload.len() > MAX_RECORD_LEN {
            return Err(Error::TooLarge(payload.len() as u64, MAX_RECORD_LEN as u64));
        }
        let mut inner = self.inner.lock();
        while inner.buf.len() > self.opts.max_buffer_bytes
            && inner.syncing
            && inner.poisoned.is_none()
        {
            self.cond.wait(&mut inner);
        }
        if let Some(p) = &inner.poisoned {
            return Err(Error::Poisoned(p.clone()));
        }
        let lsn = inner.next_lsn;
        inner.next_lsn += 1;
        if inner.buf.is_empty() {
            inner.buf_first_lsn = lsn;
        }
        inner.buf_last_lsn = lsn;
        let salt = inner.salt;
        // Records are framed with the salt of the file they will land in; a
        // rotation re-frames the buffer (see `flush_buffer`).
        encode_record(&mut inner.buf, salt, lsn, payload);
        Ok(lsn)
    }

    /// Blocks until `lsn` is durable. The first waiter becomes the leader and
    /// writes and fsyncs everything buffered; the others wait for it.
    pub fn wait_durable(&self, lsn: Lsn) -> Result<()> {
        let mut inner = self.inner.lock();
        loop {
            if let Some(p) = &inner.poisoned {
                return Err(Error::Poisoned(p.clone()));
            }
            if inner.durable_lsn >= lsn {
                return Ok(());
            }
            if inner.syncing {
                self.cond.wait(&mut inner);
                continue;
            }
            if inner.buf.is_empty() {
                // Nothing buffered yet durable_lsn < lsn: the LSN was never appended.
                return Err(Error::corrupt(
                    "wal",
                    0,
                    format!("LSN {lsn} was never appended"),
                ));
            }
            inner.syncing = true;
            let buf = std::mem::take(&mut inner.buf);
            let first = inner.buf_first_lsn;
            let last = inner.buf_last_lsn;
            let mut file = inner.file.take();
            let rotate = file
                .as_ref()
                .map(|f| f.len() >= self.opts.max_file_bytes)
                .unwrap_or(true);
            let salt = inner.salt;
            drop(inner);

            let started = std::time::Instant::now();
            let result = self.write_group(&mut file, rotate, buf, salt, first, last);
            let nanos = started.elapsed().as_nanos() as u64;

            inner = self.inner.lock();
            inner.syncing = false;
            match result {
                Ok((f, new_salt, new_seq)) => {
                    if let Some((seq, salt)) = new_seq.zip(new_salt) {
                        inner.file_seq = seq;
                        inner.salt = salt;
                        inner.files.push((first, seq));
                        // Records buffered meanwhile were framed with the old salt.
                        if !inner.buf.is_empty() {
                            let old = std::mem::take(&mut inner.buf);
                            inner.buf = reframe(&old, salt);
                        }
                    }
                    inner.file = Some(f);
                    inner.durable_lsn = last;
                    self.fsync_nanos.lock().push(nanos);
                }
                Err(e) => {
                    inner.poisoned = Some(e.to_string());
                }
            }
            self.cond.notify_all();
        }
    }

    /// Writes one group; rotates first when asked. Returns the file and, on
    /// rotation, the new salt and sequence number.
    #[allow(clippy::type_complexity)]
    fn write_group(
        &self,
        file: &mut Option<Box<dyn WriteHandle>>,
        rotate: bool,
        buf: Vec<u8>,
        salt: u64,
        first: Lsn,
        _last: Lsn,
    ) -> Result<(Box<dyn WriteHandle>, Option<u64>, Option<u64>)> {
        let mut buf = buf;
        let mut new_salt = None;
        let mut new_seq = None;
        let mut f = match (rotate, file.take()) {
            (false, Some(f)) => f,
            (_, old) => {
                drop(old);
                let seq = self.inner.lock().file_seq + 1;
                let s: u64 = rand::random();
                let name = file_name(seq);
                let mut nf = self.dir.create(&name)?;
                nf.write_all(
                    &FileHeader {
                        seq,
                        salt: s,
                        first_lsn: first,
                    }
                    .encode(),
                )?;
                nf.sync()?;
                self.dir.sync_dir()?;
                if s != salt {
                    buf = reframe(&buf, s);
                }
                new_salt = Some(s);
                new_seq = Some(seq);
                nf
            }
        };
        f.write_all(&buf)?;
        f.sync()?;
        Ok((f, new_salt, new_seq))
    }

    /// LSN of the last record made durable.
    pub fn durable_lsn(&self) -> Lsn {
        self.inner.lock().durable_lsn
    }

    /// LSN of the last record appended.
    pub fn last_lsn(&self) -> Lsn {
        self.inner.lock().next_lsn - 1
    }

    /// The poison message, if an fsync failed.
    pub fn poisoned(&self) -> Option<String> {
        self.inner.lock().poisoned.clone()
    }

    /// Marks the log unusable (used when a write could not be applied).
    pub fn poison(&self, why: String) {
        let mut inner = self.inner.lock();
        inner.poisoned.get_or_insert(why);
        self.cond.notify_all();
    }

    /// Removes files whose records are all `<= checkpoint`, except the
    /// current file. Returns the names removed.
    pub fn remove_files_up_to(&self, checkpoint: Lsn) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        let victims: Vec<u64> = {
            let inner = self.inner.lock();
            let mut v = Vec::new();
            for (i, (_first, seq)) in inner.files.iter().enumerate() {
                if *seq == inner.file_seq {
                    break;
                }
                // All records of file i are < first LSN of file i+1.
                match inner.files.get(i + 1) {
                    Some((next_first, _)) if *next_first <= checkpoint + 1 => v.push(*seq),
                    _ => break,
                }
            }
            v
        };
        for seq in &victims {
            let name = file_name(*seq);
            self.dir.delete(&name)?;
            removed.push(name);
        }
        if !victims.is_empty() {
            self.dir.sync_dir()?;
            let mut inner = self.inner.lock();
            inner.files.retain(|(_, s)| !victims.contains(s));
        }
        Ok(removed)
    }

    /// Drains the fsync latencies observed since the last call (nanoseconds).
    pub fn take_fsync_nanos(&self) -> Vec<u64> {
        std::mem::take(&mut *self.fsync_nanos.lock())
    }

    /// Names of the live WAL files.
    pub fn file_names(&self) -> Vec<String> {
        self.inner
            .lock()
            .files
            .iter()
            .map(|(_, s)| file_name(*s))
            .collect()
    }
}

/// Re-frames encoded records with another salt.
fn reframe(buf: &[u8], salt: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(buf.len());
    let mut at = 0;
    while let Some(h) = buf.get(at..at + RECORD_HEADER_LEN) {
        let len = u32_at(h, 0) as usize;
        let lsn = u64_at(h, 8);
        let start = at + RECORD_HEADER_LEN;
        let Some(payload) = buf.get(start..start + len) else {
            break;
        };
        encode_record(&mut out, salt, lsn, payload);
        at = start + len;
    }
    out
}

/// Follows a log that another process writes (read replicas). It never
/// modifies files and never returns a partially written record.
#[derive(Debug)]
pub struct WalTailer {
    seq: u64,
    salt: u64,
    offset: u64,
    next_lsn: Lsn,
}

/// Result of a poll.
#[derive(Debug, PartialEq, Eq)]
pub enum TailStatus {
    /// Caught up with everything complete on disk.
    CaughtUp,
    /// The file holding the next record is gone (checkpointed away): reload
    /// from the manifest.
    NeedReload,
}

impl WalTailer {
    /// A tailer that hands out records with LSN `>= next_lsn`.
    pub fn new(next_lsn: Lsn) -> WalTailer {
        WalTailer {
            seq: 0,
            salt: 0,
            offset: 0,
            next_lsn,
        }
    }

    /// The next LSN it expects.
    pub fn next_lsn(&self) -> Lsn {
        self.next_lsn
    }

    /// Reads every complete record available and hands those with
    /// `lsn >= next_lsn` to `apply`.
    pub fn poll(
        &mut self,
        dir: &dyn Directory,
        mut apply: impl FnMut(Lsn, &[u8]) -> Result<()>,
    ) -> Result<TailStatus> {
        loop {
            if self.seq == 0 {
                // Find the file that holds next_lsn.
                let (files, _) = list_files(dir)?;
                let pos = files
                    .iter()
                    .rposition(|f| f.header.first_lsn <= self.next_lsn);
                match pos {
                    Some(i) => {
                        let f = &files[i.min(files.len() - 1)];
                        self.seq = f.header.seq;
                        self.salt = f.header.salt;
                        self.offset = HEADER_LEN as u64;
                    }
                    None => {
                        if files.is_empty() {
                            return Ok(TailStatus::CaughtUp);
                        }
                        return Ok(TailStatus::NeedReload);
                    }
                }
            }
            let name = file_name(self.seq);
            let data = match dir.read_at(&name, self.offset, usize::MAX) {
                Ok(d) => d,
                Err(e) if e.is_not_found() => return Ok(TailStatus::NeedReload),
                Err(e) => return Err(e),
            };
            let mut at = 0usize;
            while let Parsed::Record { lsn, payload, next } = parse_record(&data, at, self.salt) {
                if lsn >= self.next_lsn {
                    if lsn != self.next_lsn {
                        return Ok(TailStatus::NeedReload);
                    }
                    apply(lsn, payload)?;
                    self.next_lsn = lsn + 1;
                }
                at = next;
            }
            self.offset += at as u64;
            // Move on when a newer file continues the sequence.
            let next_name = file_name(self.seq + 1);
            if dir.exists(&next_name) {
                let head = dir.read_at(&next_name, 0, HEADER_LEN)?;
                if let Ok(h) = FileHeader::decode(&next_name, &head)
                    && h.first_lsn == self.next_lsn
                {
                    self.seq = h.seq;
                    self.salt = h.salt;
                    self.offset = HEADER_LEN as u64;
                    continue;
                }
            }
            return Ok(TailStatus::CaughtUp);
        }
    }
}
