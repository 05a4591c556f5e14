//! Bounded reading of entry data: stored copy or raw inflate, streamed to a caller sink.
//!
//! Memory stays constant per read (one output buffer of at most 64 KiB); the declared sizes are
//! only compared, never used to allocate. Three limits stop a read early, each yielding a
//! truncated result plus an anomaly, never an error: the per-entry byte cap, the per-archive budget
//! ([`Limits::max_total_bytes`](crate::Limits::max_total_bytes), shared by all reads of one [`Archive`]) and the compression-ratio
//! limit (checked once the output passes [`Limits::ratio_grace_bytes`](crate::Limits::ratio_grace_bytes)).

use flate2::{Decompress, FlushDecompress, Status};

use crate::anomaly::{Anomaly, codes};
use crate::bytes::to_usize;
use crate::zip::{Archive, Entry};

const CHUNK: usize = 64 * 1024;

/// How the bytes of an entry were decoded.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoding {
    /// Method 0.
    Stored,
    /// Method 8, raw deflate.
    Deflated,
    /// Unknown method, read as stored because compressed and uncompressed sizes agree.
    UnknownAsStored,
    /// Unknown method, read as raw deflate because the sizes differ.
    UnknownAsDeflate,
    /// The central directory says deflate, but the data is not a deflate stream of the declared
    /// sizes while the local header says stored and the sizes agree: read as stored (salvage;
    /// Android fails to read such an entry). Flagged [`codes::METHOD_FALLBACK_STORED`].
    FallbackStored,
}

/// Which limit stopped a read.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    /// The per-entry cap ([`Limits::max_entry_bytes`](crate::Limits::max_entry_bytes) or the caller's smaller cap).
    EntryLimit,
    /// The per-archive budget ([`Limits::max_total_bytes`](crate::Limits::max_total_bytes)).
    TotalLimit,
    /// The compression-ratio limit ([`Limits::max_ratio`](crate::Limits::max_ratio)).
    RatioLimit,
}

/// Why an entry could not be read. Bytes already passed to the sink must then be discarded.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// No entry at that index.
    #[error("no entry with index {0}")]
    NoSuchEntry(usize),
    /// No local file header at the recorded offset, so the data cannot be located.
    #[error("no local file header at offset {offset}")]
    LocalHeaderMissing {
        /// Absolute offset of the missing header.
        offset: u64,
    },
    /// The data runs past the end of the file.
    #[error("entry data ({size} bytes at offset {offset}) runs past the end of the file")]
    DataOutOfBounds {
        /// Absolute data offset.
        offset: u64,
        /// Declared compressed size.
        size: u64,
    },
    /// The deflate stream is invalid.
    #[error(
        "invalid deflate data after {consumed} compressed bytes ({produced} bytes produced): {reason}"
    )]
    Inflate {
        /// Compressed bytes consumed before the error.
        consumed: u64,
        /// Bytes produced before the error.
        produced: u64,
        /// Decoder message.
        reason: String,
    },
    /// The deflate stream stops before its end block.
    #[error(
        "deflate stream cut short after {consumed} compressed bytes ({produced} bytes produced)"
    )]
    TruncatedDeflate {
        /// Compressed bytes consumed.
        consumed: u64,
        /// Bytes produced.
        produced: u64,
    },
}

/// The outcome of one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadReport {
    /// Bytes passed to the sink.
    pub bytes: u64,
    /// How the data was decoded (`None` when it could not be located).
    pub decoding: Option<Decoding>,
    /// Which limit stopped the read early, if any. The bytes read are then a prefix.
    pub truncated: Option<Truncation>,
    /// Why the read failed, if it did. Bytes passed to the sink before the failure are not content.
    pub error: Option<ReadError>,
    /// CRC-32 of the bytes read, when the read was complete.
    pub crc32: Option<u32>,
    /// Anomalies found while reading (CRC, size mismatches, limits, errors).
    pub anomalies: Vec<Anomaly>,
}

impl ReadReport {
    fn failed(error: ReadError) -> Self {
        ReadReport {
            bytes: 0,
            decoding: None,
            truncated: None,
            error: Some(error),
            crc32: None,
            anomalies: Vec::new(),
        }
    }

    /// True when every byte was read without error or truncation.
    pub fn is_complete(&self) -> bool {
        self.error.is_none() && self.truncated.is_none()
    }
}

/// Tracks output against the limits and forwards chunks to the sink.
struct Out<'s, 'a> {
    archive: &'s Archive<'a>,
    sink: &'s mut dyn FnMut(&[u8]),
    cap: u64,
    ratio_checked: bool,
    written: u64,
    crc: crc32fast::Hasher,
    truncated: Option<Truncation>,
}

impl Out<'_, '_> {
    /// Forwards `chunk` within the limits; returns false once a limit is hit.
    fn push(&mut self, chunk: &[u8], consumed: u64) -> bool {
        let limits = &self.archive.limits;
        let mut allowed = chunk.len() as u64;
        let entry_left = self.cap.saturating_sub(self.written);
        if allowed > entry_left {
            allowed = entry_left;
            self.truncated = Some(Truncation::EntryLimit);
        }
        let total_left = limits
            .max_total_bytes
            .saturating_sub(self.archive.used.get());
        if allowed > total_left {
            allowed = total_left;
            self.truncated = Some(Truncation::TotalLimit);
        }
        let n = to_usize(allowed).unwrap_or(0).min(chunk.len());
        if let Some(part) = chunk.get(..n)
            && !part.is_empty()
        {
            (self.sink)(part);
            self.crc.update(part);
        }
        self.written += n as u64;
        self.archive
            .used
            .set(self.archive.used.get().saturating_add(n as u64));
        if self.truncated.is_some() {
            return false;
        }
        if self.ratio_checked
            && self.written > limits.ratio_grace_bytes
            && self.written > consumed.max(1).saturating_mul(limits.max_ratio)
        {
            self.truncated = Some(Truncation::RatioLimit);
            return false;
        }
        true
    }
}

impl<'a> Archive<'a> {
    /// Reads entry `index`, passing its bytes to `sink` in chunks of at most 64 KiB, and stops after
    /// `cap` bytes (further bounded by [`Limits::max_entry_bytes`](crate::Limits::max_entry_bytes) and the archive budget).
    ///
    /// The method comes from the central directory: 8 inflates; 0 copies; any other value is read
    /// as stored when the compressed and uncompressed sizes agree, otherwise as raw deflate. The
    /// encryption bit is ignored. The CRC-32 is checked after a complete read and a mismatch is
    /// reported, not enforced (Android does not check it).
    pub fn read(&self, index: usize, cap: u64, sink: &mut dyn FnMut(&[u8])) -> ReadReport {
        let Some(e) = self.entries.get(index) else {
            return ReadReport::failed(ReadError::NoSuchEntry(index));
        };
        let Some(start) = e.data_offset else {
            return ReadReport::failed(ReadError::LocalHeaderMissing {
                offset: e.local_header_offset,
            });
        };
        let display = e.display_name();
        let decoding = match e.method {
            0 => Decoding::Stored,
            8 => Decoding::Deflated,
            _ if e.compressed_size == e.uncompressed_size => Decoding::UnknownAsStored,
            _ => Decoding::UnknownAsDeflate,
        };
        let decoding = if decoding == Decoding::Deflated
            && e.local_method == Some(0)
            && e.compressed_size == e.uncompressed_size
            && !input_slice(self.data, e, start, true)
                .is_some_and(|i| inflates_exactly(i, e.uncompressed_size))
        {
            Decoding::FallbackStored
        } else {
            decoding
        };
        let stored = matches!(
            decoding,
            Decoding::Stored | Decoding::UnknownAsStored | Decoding::FallbackStored
        );
        let input = input_slice(self.data, e, start, stored);
        let mut report = ReadReport {
            bytes: 0,
            decoding: Some(decoding),
            truncated: None,
            error: None,
            crc32: None,
            anomalies: Vec::new(),
        };
        let Some(input) = input else {
            report.error = Some(ReadError::DataOutOfBounds {
                offset: start,
                size: e.compressed_size,
            });
            push_error(&mut report, &display);
            return report;
        };
        if decoding == Decoding::FallbackStored {
            report.anomalies.push(Anomaly::entry(
                codes::METHOD_FALLBACK_STORED,
                display.clone(),
                "central directory says deflate but the data is no deflate stream of the declared sizes; \
                 the local header says stored and the sizes agree, so it was read as stored \
                 (salvage: Android fails to read this entry)",
            ));
        }
        let mut out = Out {
            archive: self,
            sink,
            cap: cap.min(self.limits.max_entry_bytes),
            ratio_checked: !stored,
            written: 0,
            crc: crc32fast::Hasher::new(),
            truncated: None,
        };
        let consumed = if stored {
            for chunk in input.chunks(CHUNK) {
                if !out.push(chunk, chunk.len() as u64) {
                    break;
                }
            }
            input.len() as u64
        } else {
            match inflate(input, &mut out) {
                Ok(c) => c,
                Err(err) => {
                    report.error = Some(err);
                    0
                }
            }
        };
        report.bytes = out.written;
        report.truncated = out.truncated;
        let crc = out.crc.finalize();
        if report.error.is_some() {
            push_error(&mut report, &display);
            return report;
        }
        if let Some(t) = report.truncated {
            let (code, what) = match t {
                Truncation::EntryLimit => (
                    codes::ENTRY_SIZE_LIMIT,
                    format!("per-entry limit of {} bytes", out.cap),
                ),
                Truncation::TotalLimit => (
                    codes::TOTAL_SIZE_LIMIT,
                    format!(
                        "per-archive budget of {} bytes",
                        self.limits.max_total_bytes
                    ),
                ),
                Truncation::RatioLimit => (
                    codes::COMPRESSION_RATIO_LIMIT,
                    format!(
                        "compression-ratio limit of {}:1 (after {consumed} compressed bytes)",
                        self.limits.max_ratio
                    ),
                ),
            };
            report.anomalies.push(Anomaly::entry(
                code,
                display.clone(),
                format!(
                    "reading stopped at {} bytes: {what}; declared size {}",
                    report.bytes, e.uncompressed_size
                ),
            ));
            if report.bytes > e.uncompressed_size {
                report.anomalies.push(Anomaly::entry(
                    codes::UNCOMPRESSED_SIZE_MISMATCH,
                    display,
                    format!(
                        "already {} bytes inflated, more than the declared {}",
                        report.bytes, e.uncompressed_size
                    ),
                ));
            }
            return report;
        }
        report.crc32 = Some(crc);
        if crc != e.crc32 {
            report.anomalies.push(Anomaly::entry(
                codes::CRC_MISMATCH,
                display.clone(),
                format!("CRC-32 of the data is {crc:08x}, declared {:08x} (Android does not check; data kept)", e.crc32),
            ));
        }
        if report.bytes != e.uncompressed_size && !e.stream_sized {
            report.anomalies.push(Anomaly::entry(
                codes::UNCOMPRESSED_SIZE_MISMATCH,
                display.clone(),
                format!(
                    "read {} bytes, declared {}",
                    report.bytes, e.uncompressed_size
                ),
            ));
        }
        if !stored && !e.stream_sized && consumed != e.compressed_size {
            report.anomalies.push(Anomaly::entry(
                codes::COMPRESSED_SIZE_MISMATCH,
                display,
                format!(
                    "deflate stream ended after {consumed} of {} declared compressed bytes",
                    e.compressed_size
                ),
            ));
        }
        report
    }

    /// Reads entry `index` into memory, at most `cap` bytes (see [`Archive::read`]). The vector
    /// grows with the data actually produced, never with a declared size.
    pub fn read_to_vec(&self, index: usize, cap: u64) -> (Vec<u8>, ReadReport) {
        let mut buf = Vec::new();
        let report = self.read(index, cap, &mut |c: &[u8]| buf.extend_from_slice(c));
        (buf, report)
    }
}

fn push_error(report: &mut ReadReport, display: &str) {
    if let Some(err) = &report.error {
        report
            .anomalies
            .push(Anomaly::entry(codes::READ_ERROR, display, err.to_string()));
    }
}

/// The compressed bytes of an entry. Stored data must lie wholly inside the file; a deflate stream
/// may be cut short (the decoder then reports the truncation itself).
fn input_slice<'d>(data: &'d [u8], e: &Entry<'_>, start: u64, stored: bool) -> Option<&'d [u8]> {
    let start = to_usize(start)?;
    if start > data.len() {
        return None;
    }
    let end = start as u64 + e.compressed_size;
    if e.stream_sized {
        return data.get(start..);
    }
    match to_usize(end).filter(|&end| end <= data.len()) {
        Some(end) => data.get(start..end),
        None if stored => None,
        None => data.get(start..),
    }
}

/// True when `input` is exactly one raw deflate stream producing exactly `size` bytes. Output is
/// discarded and bounded by `size + 1`, so the probe costs at most one pass over the input.
fn inflates_exactly(input: &[u8], size: u64) -> bool {
    let mut d = Decompress::new(false);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let before = (d.total_in(), d.total_out());
        let rest = input
            .get(to_usize(before.0).unwrap_or(usize::MAX)..)
            .unwrap_or(&[]);
        let status = d.decompress(rest, &mut buf, FlushDecompress::None);
        if d.total_out() > size {
            return false;
        }
        match status {
            Ok(Status::StreamEnd) => {
                return d.total_out() == size && d.total_in() == input.len() as u64;
            }
            Ok(_) if (d.total_in(), d.total_out()) == before => return false,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

/// Raw inflate of `input` into `out`; returns the compressed bytes consumed.
fn inflate(input: &[u8], out: &mut Out<'_, '_>) -> Result<u64, ReadError> {
    let mut d = Decompress::new(false);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let before_in = d.total_in();
        let before_out = d.total_out();
        let rest = input
            .get(to_usize(before_in).unwrap_or(usize::MAX)..)
            .unwrap_or(&[]);
        let status = d.decompress(rest, &mut buf, FlushDecompress::None);
        let produced = to_usize(d.total_out() - before_out).unwrap_or(0);
        let consumed = d.total_in();
        if let Some(chunk) = buf.get(..produced)
            && !chunk.is_empty()
            && !out.push(chunk, consumed)
        {
            return Ok(consumed);
        }
        match status {
            Ok(Status::StreamEnd) => return Ok(consumed),
            Ok(_) if produced == 0 && consumed == before_in => {
                return Err(ReadError::TruncatedDeflate {
                    consumed,
                    produced: out.written,
                });
            }
            Ok(_) => {}
            Err(e) => {
                return Err(ReadError::Inflate {
                    consumed,
                    produced: out.written,
                    reason: e.to_string(),
                });
            }
        }
    }
}
