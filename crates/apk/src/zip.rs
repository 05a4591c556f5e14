//! The ZIP layer, following Android's `libziparchive` rules.
//!
//! # Why hand-written structures and not `rawzip` / `zip`
//!
//! `rawzip` (the survey's pick) is a good low-level reader, but three of its deliberate behaviours
//! are the opposite of what we must report: it silently re-bases offsets when data is prepended
//! (Janus layout: we must *flag* it), it iterates the whole central directory regardless of the
//! EOCD count (we must compare both), and it has no salvage path for a broken directory. The `zip`
//! crate collapses duplicate names before the caller sees them and refuses the encryption bit.
//! The structures themselves are small and fixed (EOCD, zip64 EOCD + locator, central and local
//! headers, data descriptor, zip64 extra): hand-writing them over `&[u8]` with bounds-checked reads
//! gives us every raw field of *both* headers for the comparisons Android makes, costs about as many
//! lines as an adapter would, and keeps the crate free of parsing dependencies. Raw deflate is
//! decoded by `flate2` (pure-Rust `miniz_oxide` backend), see [`crate::read`].
//!
//! # Rules (see `docs/APK.md` for the full table)
//!
//! * The EOCD is the *last* signature within the final 65 535 + 22 bytes (as `libziparchive` and
//!   Python's `zipfile`); bytes after its comment are flagged, not rejected.
//! * The zip64 EOCD (via its locator) supersedes the 32-bit EOCD values.
//! * The central directory is authoritative: names, method, CRC and sizes come from it. The local
//!   header only gives the data offset (`30 + name length + extra length`), and every difference
//!   between the two headers is reported.
//! * Every record inside the declared central-directory size is kept, in order, even when the EOCD
//!   count disagrees (flagged) or names repeat (flagged; entries are addressed by position).
//! * Nothing is ever allocated from a declared size: memory is proportional to the number of
//!   records, which is capped by [`Limits::max_entries`].

use std::cell::Cell;
use std::collections::HashMap;

use crate::Limits;
use crate::anomaly::{Anomalies, Anomaly, codes};
use crate::bytes::{slice, to_usize, u16_at, u32_at, u64_at};
use crate::names::{check_name, escape_name};

pub(crate) const LFH_SIG: u32 = 0x0403_4b50;
pub(crate) const CDH_SIG: u32 = 0x0201_4b50;
pub(crate) const EOCD_SIG: u32 = 0x0605_4b50;
pub(crate) const EOCD64_SIG: u32 = 0x0606_4b50;
pub(crate) const EOCD64_LOC_SIG: u32 = 0x0706_4b50;
pub(crate) const DD_SIG: u32 = 0x0807_4b50;

const EOCD_LEN: usize = 22;
const EOCD64_LOC_LEN: usize = 20;
const EOCD64_LEN: usize = 56;
const CDH_LEN: usize = 46;
const LFH_LEN: usize = 30;
const MAX_COMMENT: usize = 65_535;

/// Why the central directory could not be used. The caller still hashes the whole file, and may
/// [`salvage`](Archive::salvage) entries from local headers.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZipError {
    /// The input is empty.
    #[error("empty input (0 bytes)")]
    Empty,
    /// No end-of-central-directory record in the last 64 KiB.
    #[error(
        "not a ZIP archive: no end-of-central-directory record in the last {searched} bytes of {file_len}"
    )]
    EocdNotFound {
        /// Bytes searched from the end.
        searched: u64,
        /// File length.
        file_len: u64,
    },
    /// The central directory the EOCD points to lies outside the file.
    #[error(
        "central directory (offset {offset}, size {size}) lies outside the {file_len}-byte file"
    )]
    CdOutOfBounds {
        /// Declared offset.
        offset: u64,
        /// Declared size.
        size: u64,
        /// File length.
        file_len: u64,
    },
    /// The EOCD points inside the file, but no central-directory record is there.
    #[error("no central directory record at offset {offset} (declared size {size})")]
    CdNotFound {
        /// Declared offset.
        offset: u64,
        /// Declared size.
        size: u64,
    },
}

/// Where the archive's structures were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Offset of the (32-bit) EOCD record.
    pub eocd_offset: u64,
    /// Offset of the zip64 EOCD record, when one was used.
    pub zip64_eocd_offset: Option<u64>,
    /// Where the central directory actually starts (after any re-basing).
    pub cd_offset: u64,
    /// Declared central-directory size.
    pub cd_size: u64,
    /// Entry count declared by the EOCD (zip64 value when present).
    pub declared_entries: u64,
    /// Added to every recorded offset: non-zero when data was prepended without adjusting offsets.
    pub shift: u64,
    /// Length of the EOCD comment as declared.
    pub comment_len: u16,
}

/// One central-directory record (or, after salvage, one local header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Position in central-directory order (0-based). Names may repeat; positions do not.
    pub index: usize,
    /// The raw name bytes from the central directory. Never use them as a path.
    pub name: &'a [u8],
    /// Compression method from the central directory.
    pub method: u16,
    /// General-purpose flags from the central directory.
    pub flags: u16,
    /// Declared CRC-32.
    pub crc32: u32,
    /// Declared compressed size (zip64 value when present).
    pub compressed_size: u64,
    /// Declared uncompressed size (zip64 value when present).
    pub uncompressed_size: u64,
    /// Absolute offset of the local header (recorded offset + [`Layout::shift`]).
    pub local_header_offset: u64,
    /// Absolute offset of the data, when a local header was found there.
    pub data_offset: Option<u64>,
    /// Compression method named by the local header, when one was found.
    pub local_method: Option<u16>,
    /// Recovered by [`Archive::salvage`] rather than read from the central directory.
    pub salvaged: bool,
    /// The compressed size is unknown (salvaged entry with a data descriptor): the deflate stream
    /// is read until it ends.
    pub stream_sized: bool,
}

impl Entry<'_> {
    /// The escaped display form of the name (see [`crate::escape_name`]).
    pub fn display_name(&self) -> String {
        escape_name(self.name)
    }

    /// The name as UTF-8, if it is valid UTF-8.
    pub fn name_str(&self) -> Option<&str> {
        std::str::from_utf8(self.name).ok()
    }

    /// General-purpose bit 0 ("encrypted"), which Android ignores.
    pub fn encryption_flag(&self) -> bool {
        self.flags & 1 != 0
    }
}

/// A parsed archive over borrowed bytes.
#[derive(Debug)]
pub struct Archive<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) layout: Option<Layout>,
    pub(crate) entries: Vec<Entry<'a>>,
    pub(crate) anomalies: Vec<Anomaly>,
    pub(crate) limits: Limits,
    /// Decompressed bytes produced so far, against [`Limits::max_total_bytes`].
    pub(crate) used: Cell<u64>,
}

impl<'a> Archive<'a> {
    /// Parses the archive through its central directory, as Android does.
    ///
    /// Structural oddities become [`anomalies`](Archive::anomalies); an error is returned only when
    /// no central directory can be located at all.
    pub fn parse(data: &'a [u8], limits: &Limits) -> Result<Archive<'a>, ZipError> {
        let mut an = Anomalies::with_cap(limits.max_anomalies);
        let layout = locate(data, &mut an)?;
        let entries = walk_cd(data, &layout, limits, &mut an);
        let mut archive = Archive {
            data,
            layout: Some(layout),
            entries,
            anomalies: Vec::new(),
            limits: *limits,
            used: Cell::new(0),
        };
        archive.check_entries(&mut an);
        archive.anomalies = an.into_vec();
        Ok(archive)
    }

    /// Recovers entries by scanning forward for local file headers, for when the central directory
    /// is unusable. Every entry is marked [`Entry::salvaged`] and a [`codes::SALVAGED`] anomaly is
    /// added. Android would not read such an archive; this is for analysis only.
    pub fn salvage(data: &'a [u8], limits: &Limits) -> Archive<'a> {
        let mut an = Anomalies::with_cap(limits.max_anomalies);
        let entries = scan_local_headers(data, limits, &mut an);
        an.push(Anomaly::new(
            codes::SALVAGED,
            format!(
                "central directory unusable; {} entries recovered from local headers",
                entries.len()
            ),
        ));
        let mut archive = Archive {
            data,
            layout: None,
            entries,
            anomalies: Vec::new(),
            limits: *limits,
            used: Cell::new(0),
        };
        archive.check_entries(&mut an);
        archive.anomalies = an.into_vec();
        archive
    }

    /// The entries in central-directory order.
    pub fn entries(&self) -> &[Entry<'a>] {
        &self.entries
    }

    /// Structural anomalies found while parsing (reads add their own, see [`crate::ReadReport`]).
    pub fn anomalies(&self) -> &[Anomaly] {
        &self.anomalies
    }

    /// Where the structures were found; `None` for a salvaged archive.
    pub fn layout(&self) -> Option<&Layout> {
        self.layout.as_ref()
    }

    /// The whole input.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The limits this archive was opened with.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Decompressed bytes produced so far by reads of this archive (counts against
    /// [`Limits::max_total_bytes`]).
    pub fn bytes_read(&self) -> u64 {
        self.used.get()
    }

    /// Index of the first entry whose raw name equals `name`.
    pub fn find(&self, name: &[u8]) -> Option<usize> {
        self.entries.iter().position(|e| e.name == name)
    }

    /// Checks common to parsed and salvaged archives: names, duplicates, local headers,
    /// overlaps, prepended data.
    fn check_entries(&mut self, an: &mut Anomalies) {
        let data = self.data;
        let cd_start = self.layout.as_ref().map(|l| l.cd_offset);
        let mut seen: HashMap<&[u8], usize> = HashMap::with_capacity(self.entries.len());
        let mut names = Vec::new();
        let mut ranges: Vec<(u64, u64, usize)> = Vec::with_capacity(self.entries.len());
        let mut min_lfh: Option<u64> = None;
        for e in &mut self.entries {
            let display = escape_name(e.name);
            names.clear();
            check_name(e.name, &display, &mut names);
            an.extend(names.drain(..));
            if let Some(first) = seen.get(e.name) {
                an.push(Anomaly::entry(
                    codes::DUPLICATE_NAME,
                    display.clone(),
                    format!("entry {} repeats the name of entry {first} (Android rejects the archive; both are kept)", e.index),
                ));
            } else {
                seen.insert(e.name, e.index);
            }
            if e.encryption_flag() {
                an.push(Anomaly::entry(
                    codes::ENCRYPTION_FLAG,
                    display.clone(),
                    "general-purpose bit 0 (encrypted) is set; ignored as Android does",
                ));
            }
            if e.method != 0 && e.method != 8 {
                let how = if e.compressed_size == e.uncompressed_size {
                    "sizes agree, read as stored"
                } else {
                    "sizes differ, read as raw deflate"
                };
                an.push(Anomaly::entry(
                    codes::UNKNOWN_COMPRESSION_METHOD,
                    display.clone(),
                    format!("compression method {} is not 0 or 8; {how}", e.method),
                ));
            }
            if !e.salvaged {
                resolve_local(data, e, cd_start, &display, an);
            }
            if e.uncompressed_size > self.limits.max_entry_bytes {
                an.push(Anomaly::entry(
                    codes::DECLARED_SIZE_EXCEEDS_LIMIT,
                    display.clone(),
                    format!(
                        "declared uncompressed size {} exceeds the per-entry limit {}; reading stops there",
                        e.uncompressed_size, self.limits.max_entry_bytes
                    ),
                ));
            }
            let limits = &self.limits;
            if e.uncompressed_size > limits.ratio_grace_bytes
                && e.uncompressed_size > e.compressed_size.max(1).saturating_mul(limits.max_ratio)
            {
                an.push(Anomaly::entry(
                    codes::DECLARED_RATIO_EXCEEDS_LIMIT,
                    display.clone(),
                    format!(
                        "declares {} bytes from {} compressed (more than {}:1); reading stops at the ratio limit",
                        e.uncompressed_size, e.compressed_size, limits.max_ratio
                    ),
                ));
            }
            if let Some(d) = e.data_offset {
                min_lfh =
                    Some(min_lfh.map_or(e.local_header_offset, |m| m.min(e.local_header_offset)));
                let end = if e.stream_sized {
                    d
                } else {
                    d.saturating_add(e.compressed_size)
                };
                ranges.push((e.local_header_offset, end.max(d), e.index));
            }
        }
        if let Some(m) = min_lfh.filter(|&m| m > 0) {
            let dex = data.starts_with(b"dex\n");
            an.push(Anomaly::new(
                codes::PREPENDED_DATA,
                format!(
                    "{m} bytes precede the first local header{} (Janus-style layout; Android requires a local header at offset 0)",
                    if dex { ", starting with a DEX header" } else { "" }
                ),
            ));
        }
        ranges.sort_unstable();
        let mut max_end: Option<(u64, usize)> = None;
        for &(start, end, idx) in &ranges {
            if let Some((me, other)) = max_end
                && start < me
            {
                let name = self
                    .entries
                    .get(idx)
                    .map(|e| escape_name(e.name))
                    .unwrap_or_default();
                an.push(Anomaly::entry(
                    codes::OVERLAPPING_ENTRIES,
                    name,
                    format!("entry {idx} (local header at {start}) overlaps entry {other}"),
                ));
            }
            if max_end.is_none_or(|(me, _)| end > me) {
                max_end = Some((end, idx));
            }
        }
    }
}

/// Finds the EOCD (and zip64 EOCD) and the central directory.
fn locate(data: &[u8], an: &mut Anomalies) -> Result<Layout, ZipError> {
    let len = data.len();
    if len == 0 {
        return Err(ZipError::Empty);
    }
    let searched = (len.min(EOCD_LEN + MAX_COMMENT)) as u64;
    let not_found = ZipError::EocdNotFound {
        searched,
        file_len: len as u64,
    };
    let Some(last) = len.checked_sub(EOCD_LEN) else {
        return Err(not_found);
    };
    let first = last.saturating_sub(MAX_COMMENT);
    let Some(eocd) = (first..=last)
        .rev()
        .find(|&i| u32_at(data, i) == Some(EOCD_SIG))
    else {
        return Err(not_found);
    };
    let rd16 = |o: usize| u16_at(data, eocd + o).unwrap_or(0);
    let rd32 = |o: usize| u32_at(data, eocd + o).unwrap_or(0);
    let (disk, cd_disk) = (rd16(4), rd16(6));
    let mut declared = u64::from(rd16(10));
    let mut cd_size = u64::from(rd32(12));
    let mut cd_offset = u64::from(rd32(16));
    let comment_len = rd16(20);
    let end = eocd + EOCD_LEN + usize::from(comment_len);
    if end > len {
        an.push(Anomaly::new(
            codes::EOCD_COMMENT_TRUNCATED,
            format!(
                "EOCD comment declares {comment_len} bytes but only {} remain",
                len - eocd - EOCD_LEN
            ),
        ));
    } else if end < len {
        an.push(Anomaly::new(
            codes::TRAILING_DATA,
            format!("{} bytes follow the EOCD record and its comment (Android rejects: extraneous bytes)", len - end),
        ));
    }
    if disk != 0 || cd_disk != 0 {
        an.push(Anomaly::new(
            codes::MULTI_DISK,
            format!("EOCD names disk {disk}, central directory on disk {cd_disk}"),
        ));
    }

    // zip64: the locator sits right before the EOCD.
    let mut zip64_eocd_offset = None;
    let mut cd_limit = eocd as u64;
    if let Some(loc) = eocd.checked_sub(EOCD64_LOC_LEN)
        && u32_at(data, loc) == Some(EOCD64_LOC_SIG)
    {
        let recorded = u64_at(data, loc + 8).unwrap_or(u64::MAX);
        let at_recorded = to_usize(recorded).filter(|&o| u32_at(data, o) == Some(EOCD64_SIG));
        let adjacent = loc
            .checked_sub(EOCD64_LEN)
            .filter(|&o| u32_at(data, o) == Some(EOCD64_SIG));
        match at_recorded.or(adjacent) {
            Some(r) if r + EOCD64_LEN <= loc => {
                if at_recorded.is_none() {
                    an.push(Anomaly::new(
                        codes::ZIP64_EOCD_INVALID,
                        format!("zip64 EOCD locator points to {recorded}; record found at {r} instead"),
                    ));
                }
                declared = u64_at(data, r + 32).unwrap_or(declared);
                cd_size = u64_at(data, r + 40).unwrap_or(cd_size);
                cd_offset = u64_at(data, r + 48).unwrap_or(cd_offset);
                zip64_eocd_offset = Some(r as u64);
                cd_limit = r as u64;
                an.push(Anomaly::new(
                    codes::ZIP64,
                    format!("zip64 end of central directory at {r}: {declared} entries"),
                ));
            }
            _ => an.push(Anomaly::new(
                codes::ZIP64_EOCD_INVALID,
                format!("zip64 EOCD locator at {loc} points to {recorded}, where no zip64 EOCD record is"),
            )),
        }
    }

    let file_len = len as u64;
    let cd_sig_at = |o: u64| to_usize(o).is_some_and(|o| u32_at(data, o) == Some(CDH_SIG));
    let fits = cd_offset
        .checked_add(cd_size)
        .is_some_and(|e| e <= cd_limit);
    let layout = |cd: u64, shift: u64| Layout {
        eocd_offset: eocd as u64,
        zip64_eocd_offset,
        cd_offset: cd,
        cd_size,
        declared_entries: declared,
        shift,
        comment_len,
    };
    if cd_size == 0 && cd_offset <= cd_limit {
        return Ok(layout(cd_offset, 0));
    }
    if fits && cd_sig_at(cd_offset) {
        return Ok(layout(cd_offset, 0));
    }
    // Data prepended without adjusting offsets: the directory ends right before the EOCD.
    if let Some(computed) = cd_limit.checked_sub(cd_size)
        && computed > cd_offset
        && cd_sig_at(computed)
    {
        let shift = computed - cd_offset;
        an.push(Anomaly::new(
            codes::CD_OFFSET_SHIFTED,
            format!(
                "EOCD records the central directory at {cd_offset} but it starts at {computed}: \
                 {shift} bytes were prepended without adjusting offsets (Android rejects); offsets re-based"
            ),
        ));
        return Ok(layout(computed, shift));
    }
    if cd_offset < cd_limit && cd_sig_at(cd_offset) {
        an.push(Anomaly::new(
            codes::CD_SIZE_MISMATCH,
            format!("central directory at {cd_offset} declares {cd_size} bytes, running past the EOCD at {cd_limit}"),
        ));
        return Ok(layout(cd_offset, 0));
    }
    if cd_offset.checked_add(cd_size).is_none_or(|e| e > file_len) {
        return Err(ZipError::CdOutOfBounds {
            offset: cd_offset,
            size: cd_size,
            file_len,
        });
    }
    Err(ZipError::CdNotFound {
        offset: cd_offset,
        size: cd_size,
    })
}

/// Values from a zip64 extended-information extra field (header id 0x0001).
struct Zip64Values {
    usize: Option<u64>,
    csize: Option<u64>,
    offset: Option<u64>,
}

/// Walks the extra area, checking every (id, length) record fits, and decodes the zip64 record.
/// Only the fields whose 32-bit value is saturated are present in the zip64 record, in the order
/// uncompressed size, compressed size, local header offset.
fn parse_extra(
    extra: &[u8],
    need_u: bool,
    need_c: bool,
    need_o: bool,
) -> (Option<Zip64Values>, Option<String>) {
    let mut pos = 0usize;
    let mut z = None;
    let mut problem = None;
    while pos < extra.len() {
        let (Some(id), Some(sz)) = (u16_at(extra, pos), u16_at(extra, pos + 2)) else {
            problem = Some(format!(
                "{} stray bytes at the end of the extra field",
                extra.len() - pos
            ));
            break;
        };
        let body_start = pos + 4;
        let Some(body) = slice(extra, body_start, usize::from(sz)) else {
            problem = Some(format!(
                "extra record 0x{id:04x} declares {sz} bytes but only {} remain",
                extra.len().saturating_sub(body_start)
            ));
            break;
        };
        if id == 1 {
            let mut p = 0usize;
            let mut next = |want: bool| {
                if !want {
                    return None;
                }
                let v = u64_at(body, p);
                p += 8;
                v
            };
            let vals = Zip64Values {
                usize: next(need_u),
                csize: next(need_c),
                offset: next(need_o),
            };
            if (need_u && vals.usize.is_none())
                || (need_c && vals.csize.is_none())
                || (need_o && vals.offset.is_none())
            {
                problem = Some(format!("zip64 extra record too short ({sz} bytes)"));
            }
            z = Some(vals);
        }
        pos = body_start + usize::from(sz);
    }
    (z, problem)
}

/// Reads central-directory records inside the declared directory size.
fn walk_cd<'a>(
    data: &'a [u8],
    layout: &Layout,
    limits: &Limits,
    an: &mut Anomalies,
) -> Vec<Entry<'a>> {
    let mut entries = Vec::new();
    let Some(start) = to_usize(layout.cd_offset) else {
        return entries;
    };
    let limit = layout.zip64_eocd_offset.unwrap_or(layout.eocd_offset);
    let region_end = to_usize(layout.cd_offset.saturating_add(layout.cd_size).min(limit))
        .unwrap_or(data.len())
        .min(data.len());
    let mut pos = start;
    let mut stopped = false;
    while pos < region_end {
        if entries.len() >= limits.max_entries {
            an.push(Anomaly::new(
                codes::ENTRY_LIMIT,
                format!(
                    "more than {} central-directory records (EOCD declares {}); the rest were not processed",
                    limits.max_entries, layout.declared_entries
                ),
            ));
            stopped = true;
            break;
        }
        let sig = u32_at(data, pos);
        let fixed = slice(data, pos, CDH_LEN);
        let (Some(CDH_SIG), Some(_)) = (sig, fixed) else {
            an.push(Anomaly::new(
                codes::CD_RECORD_INVALID,
                format!(
                    "no central-directory record at {pos} ({} bytes before the declared end); walk stopped after {} records",
                    region_end - pos,
                    entries.len()
                ),
            ));
            stopped = true;
            break;
        };
        let r16 = |o: usize| u16_at(data, pos + o).unwrap_or(0);
        let r32 = |o: usize| u32_at(data, pos + o).unwrap_or(0);
        let flags = r16(8);
        let method = r16(10);
        let crc32 = r32(16);
        let csize32 = r32(20);
        let usize32 = r32(24);
        let nlen = usize::from(r16(28));
        let xlen = usize::from(r16(30));
        let clen = usize::from(r16(32));
        let off32 = r32(42);
        let var_len = nlen + xlen + clen;
        let Some(name) = slice(data, pos + CDH_LEN, nlen) else {
            an.push(Anomaly::new(
                codes::CD_RECORD_INVALID,
                format!(
                    "central-directory record at {pos} runs past the end of the file; walk stopped"
                ),
            ));
            stopped = true;
            break;
        };
        let extra = slice(data, pos + CDH_LEN + nlen, xlen).unwrap_or(&[]);
        let next = pos + CDH_LEN + var_len;
        if next > region_end {
            an.push(Anomaly::new(
                codes::CD_SIZE_MISMATCH,
                format!("central-directory record at {pos} runs past the declared directory end {region_end}"),
            ));
        }
        let (need_u, need_c, need_o) =
            (usize32 == u32::MAX, csize32 == u32::MAX, off32 == u32::MAX);
        let (z, problem) = parse_extra(extra, need_u, need_c, need_o);
        if let Some(p) = problem {
            an.push(Anomaly::entry(
                codes::EXTRA_FIELD_MALFORMED,
                escape_name(name),
                format!("central header: {p}"),
            ));
        }
        let z = z.unwrap_or(Zip64Values {
            usize: None,
            csize: None,
            offset: None,
        });
        let recorded_off = z.offset.unwrap_or(u64::from(off32));
        entries.push(Entry {
            index: entries.len(),
            name,
            method,
            flags,
            crc32,
            compressed_size: z.csize.unwrap_or(u64::from(csize32)),
            uncompressed_size: z.usize.unwrap_or(u64::from(usize32)),
            local_header_offset: recorded_off.saturating_add(layout.shift),
            data_offset: None,
            local_method: None,
            salvaged: false,
            stream_sized: false,
        });
        if next > region_end {
            pos = next;
            break;
        }
        pos = next;
    }
    let count = entries.len() as u64;
    if !stopped && count != layout.declared_entries {
        an.push(Anomaly::new(
            codes::EOCD_ENTRY_COUNT_MISMATCH,
            format!(
                "EOCD declares {} entries, the central directory holds {count} (Android walks the declared count)",
                layout.declared_entries
            ),
        ));
    } else if stopped && count < layout.declared_entries && entries.len() < limits.max_entries {
        an.push(Anomaly::new(
            codes::EOCD_ENTRY_COUNT_MISMATCH,
            format!(
                "EOCD declares {} entries, {count} could be read",
                layout.declared_entries
            ),
        ));
    }
    if !stopped && pos < region_end {
        an.push(Anomaly::new(
            codes::CD_SIZE_MISMATCH,
            format!(
                "{} unused bytes at the end of the central directory",
                region_end - pos
            ),
        ));
    }
    entries
}

/// The fields of a local file header that matter here.
struct Local<'a> {
    flags: u16,
    method: u16,
    crc32: u32,
    csize: u64,
    usize: u64,
    name: &'a [u8],
    data_offset: usize,
}

fn parse_local(data: &[u8], off: usize) -> Option<Local<'_>> {
    if u32_at(data, off)? != LFH_SIG {
        return None;
    }
    slice(data, off, LFH_LEN)?;
    let nlen = usize::from(u16_at(data, off + 26)?);
    let xlen = usize::from(u16_at(data, off + 28)?);
    let name = slice(data, off + LFH_LEN, nlen)?;
    let extra = slice(data, off + LFH_LEN + nlen, xlen).unwrap_or(&[]);
    let csize32 = u32_at(data, off + 18)?;
    let usize32 = u32_at(data, off + 22)?;
    let (z, _) = parse_extra(extra, usize32 == u32::MAX, csize32 == u32::MAX, false);
    let (zu, zc) = z.map_or((None, None), |z| (z.usize, z.csize));
    Some(Local {
        flags: u16_at(data, off + 6)?,
        method: u16_at(data, off + 8)?,
        crc32: u32_at(data, off + 14)?,
        csize: zc.unwrap_or(u64::from(csize32)),
        usize: zu.unwrap_or(u64::from(usize32)),
        name,
        data_offset: off + LFH_LEN + nlen + xlen,
    })
}

/// Finds the local header of a central-directory entry, sets its data offset, and reports every
/// difference between the two headers and the data descriptor.
fn resolve_local(
    data: &[u8],
    e: &mut Entry<'_>,
    cd_start: Option<u64>,
    display: &str,
    an: &mut Anomalies,
) {
    let off = e.local_header_offset;
    let mut flag =
        |code: &'static str, detail: String| an.push(Anomaly::entry(code, display, detail));
    if let Some(cd) = cd_start
        && off >= cd
    {
        flag(
            codes::LOCAL_HEADER_IN_CD,
            format!(
                "local header offset {off} is at or after the central directory ({cd}); Android rejects"
            ),
        );
    }
    let Some(lh) = to_usize(off).and_then(|o| parse_local(data, o)) else {
        flag(
            codes::LOCAL_HEADER_MISSING,
            format!("no local file header at offset {off}"),
        );
        return;
    };
    e.data_offset = Some(lh.data_offset as u64);
    e.local_method = Some(lh.method);
    if lh.name != e.name {
        flag(
            codes::LOCAL_NAME_MISMATCH,
            format!(
                "local header names '{}' (Android rejects the entry; the central name is used)",
                escape_name(lh.name)
            ),
        );
    }
    if lh.method != e.method {
        flag(
            codes::LOCAL_METHOD_MISMATCH,
            format!(
                "local header method {} vs central {} (the central method is used, as Android does)",
                lh.method, e.method
            ),
        );
    }
    if lh.flags != e.flags {
        flag(
            codes::LOCAL_FLAGS_MISMATCH,
            format!(
                "local flags 0x{:04x} vs central 0x{:04x}",
                lh.flags, e.flags
            ),
        );
    }
    if lh.flags & 0x8 == 0 {
        let mut diffs = Vec::new();
        if lh.crc32 != e.crc32 {
            diffs.push(format!("crc32 {:08x} vs {:08x}", lh.crc32, e.crc32));
        }
        if lh.csize != e.compressed_size {
            diffs.push(format!(
                "compressed size {} vs {}",
                lh.csize, e.compressed_size
            ));
        }
        if lh.usize != e.uncompressed_size {
            diffs.push(format!(
                "uncompressed size {} vs {}",
                lh.usize, e.uncompressed_size
            ));
        }
        if !diffs.is_empty() {
            flag(
                codes::LOCAL_HEADER_MISMATCH,
                format!(
                    "local header (bit 3 clear) disagrees with the central directory: {}",
                    diffs.join(", ")
                ),
            );
        }
    } else {
        check_descriptor(data, e, lh.data_offset, &mut flag);
    }
    let end = (lh.data_offset as u64).checked_add(e.compressed_size);
    if end.is_none_or(|end| end > data.len() as u64) {
        flag(
            codes::ENTRY_DATA_OUT_OF_BOUNDS,
            format!(
                "{} bytes of data at offset {} run past the end of the {}-byte file",
                e.compressed_size,
                lh.data_offset,
                data.len()
            ),
        );
    }
}

/// Checks the data descriptor that follows the data when local bit 3 is set.
fn check_descriptor(
    data: &[u8],
    e: &Entry<'_>,
    data_offset: usize,
    flag: &mut impl FnMut(&'static str, String),
) {
    let Some(mut p) = to_usize(e.compressed_size).and_then(|c| data_offset.checked_add(c)) else {
        flag(
            codes::DATA_DESCRIPTOR_MISSING,
            "data descriptor would lie outside the file".into(),
        );
        return;
    };
    if u32_at(data, p) == Some(DD_SIG) {
        p += 4;
    }
    let wide = e.compressed_size > u64::from(u32::MAX - 1)
        || e.uncompressed_size > u64::from(u32::MAX - 1);
    let vals = if wide {
        (u32_at(data, p), u64_at(data, p + 4), u64_at(data, p + 12))
    } else {
        (
            u32_at(data, p),
            u32_at(data, p + 4).map(u64::from),
            u32_at(data, p + 8).map(u64::from),
        )
    };
    match vals {
        (Some(crc), Some(c), Some(u)) => {
            if crc != e.crc32 || c != e.compressed_size || u != e.uncompressed_size {
                flag(
                    codes::DATA_DESCRIPTOR_MISMATCH,
                    format!(
                        "data descriptor crc32 {crc:08x}, sizes {c}/{u} vs central {:08x}, {}/{}",
                        e.crc32, e.compressed_size, e.uncompressed_size
                    ),
                );
            }
        }
        _ => flag(
            codes::DATA_DESCRIPTOR_MISSING,
            format!("bit 3 set but no data descriptor fits at offset {p}"),
        ),
    }
}

/// Salvage: scan forward for local headers.
fn scan_local_headers<'a>(data: &'a [u8], limits: &Limits, an: &mut Anomalies) -> Vec<Entry<'a>> {
    let mut entries = Vec::new();
    let mut pos = 0usize;
    let sig = LFH_SIG.to_le_bytes();
    let mut descriptors: Option<HashMap<usize, usize>> = None;
    while let Some(rel) = data
        .get(pos..)
        .and_then(|d| d.windows(4).position(|w| w == sig))
    {
        let off = pos + rel;
        pos = off + 4;
        let Some(lh) = parse_local(data, off) else {
            continue;
        };
        if entries.len() >= limits.max_entries {
            an.push(Anomaly::new(
                codes::ENTRY_LIMIT,
                format!(
                    "more than {} local headers; the rest were not processed",
                    limits.max_entries
                ),
            ));
            break;
        }
        let mut e = Entry {
            index: entries.len(),
            name: lh.name,
            method: lh.method,
            flags: lh.flags,
            crc32: lh.crc32,
            compressed_size: lh.csize,
            uncompressed_size: lh.usize,
            local_header_offset: off as u64,
            data_offset: Some(lh.data_offset as u64),
            local_method: Some(lh.method),
            salvaged: true,
            stream_sized: false,
        };
        if lh.flags & 0x8 != 0 && lh.csize == 0 {
            // Sizes follow the data: find the descriptor whose compressed size points back here.
            let index = descriptors.get_or_insert_with(|| index_descriptors(data));
            if let Some(at) = index.get(&lh.data_offset).copied()
                && let (Some(crc), Some(c), Some(u)) = (
                    u32_at(data, at + 4),
                    u32_at(data, at + 8),
                    u32_at(data, at + 12),
                )
            {
                e.crc32 = crc;
                e.compressed_size = u64::from(c);
                e.uncompressed_size = u64::from(u);
            } else if lh.method == 8 {
                e.stream_sized = true;
                e.compressed_size = (data.len() - lh.data_offset.min(data.len())) as u64;
            }
        }
        if !e.stream_sized
            && let Some(next) =
                to_usize(e.compressed_size).and_then(|c| lh.data_offset.checked_add(c))
            && next <= data.len()
        {
            pos = pos.max(next);
        } else {
            pos = pos.max(lh.data_offset.min(data.len()));
        }
        entries.push(e);
    }
    entries
}

/// Most data-descriptor signatures indexed by salvage.
const MAX_DESCRIPTORS: usize = 1 << 20;

/// Every data descriptor (with signature), keyed by the data start its compressed size points
/// back to (`position - compressed size`); the first one wins. Built once per salvage, so finding
/// the descriptor of each local header costs O(1) and salvage stays linear in the file size.
fn index_descriptors(data: &[u8]) -> HashMap<usize, usize> {
    let sig = DD_SIG.to_le_bytes();
    let mut map = HashMap::new();
    for (at, w) in data.windows(4).enumerate() {
        if w != sig {
            continue;
        }
        if let Some(c) = u32_at(data, at + 8).and_then(|c| to_usize(u64::from(c)))
            && let Some(start) = at.checked_sub(c)
        {
            map.entry(start).or_insert(at);
            if map.len() >= MAX_DESCRIPTORS {
                break;
            }
        }
    }
    map
}
