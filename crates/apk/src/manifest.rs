//! A small, tolerant reader for `AndroidManifest.xml` (binary AXML, or plain-text XML).
//!
//! # Why our own reader
//!
//! The survey (CRATES.md §2.4) found that `abxml`, `axmldecoder` and `rusty-axml` *panic* on
//! tampered manifests; for us a panic is a bug. `apk-info-axml` handled every tampered sample, but it
//! comes with the whole apk-info stack (its own ZIP layer, a `cms` pre-release) and returns nothing
//! partial on failure. We need six attributes, a report of *what* broke, and whatever could be read
//! before and after the break, so the reader below walks chunks itself with bounds-checked reads:
//!
//! * the file header's type and size are checked but never trusted (malware tampers both);
//! * a chunk with an impossible size is resynchronised to the next plausible XML node header;
//! * a node's `headerSize` is used when it makes sense and otherwise the fixed 16-byte node header
//!   is assumed (androguard#1137: header size 0x1c01 on a namespace node; jadx#1232: 0x14);
//! * the string pool's declared count is not trusted: strings are decoded on demand, bounded by
//!   the chunk, and a broken string only loses that string (androguard stops at the first);
//! * attributes are matched the way Android's package parser does: by resource id through the
//!   resource map when the attribute has one (`versionCode` = 0x0101021b, …), so renamed attribute
//!   strings do not fool it, and by name otherwise (`package` has no id);
//! * the attribute stride comes from `attributeSize` (at least 20; jadx#2210 saw 24).
//!
//! Every problem is recorded in [`Manifest::problems`]; the parse fails only when no root element
//! can be found at all.

use crate::bytes::{slice, to_usize, u8_at, u16_at, u32_at};

const RES_STRING_POOL: u16 = 0x0001;
const RES_XML: u16 = 0x0003;
const RES_XML_RESOURCE_MAP: u16 = 0x0180;
const RES_XML_FIRST_NODE: u16 = 0x0100;
const RES_XML_START_ELEMENT: u16 = 0x0102;
const RES_XML_END_ELEMENT: u16 = 0x0103;
const RES_XML_LAST_NODE: u16 = 0x0104;
const NODE_HEADER: usize = 16;
const ATTR_EXT: usize = 20;
const ATTR_MIN: usize = 20;
const NO_INDEX: u32 = u32::MAX;
const MAX_PROBLEMS: usize = 32;

const ATTR_VERSION_CODE: u32 = 0x0101_021b;
const ATTR_VERSION_NAME: u32 = 0x0101_021c;
const ATTR_MIN_SDK: u32 = 0x0101_020c;
const ATTR_TARGET_SDK: u32 = 0x0101_0270;
const ATTR_MAX_SDK: u32 = 0x0101_0271;

/// Which encoding the manifest used.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    /// Compiled binary XML (AXML), as in every installable APK.
    Binary,
    /// Plain-text XML (source manifests packed by hand; Android cannot install these).
    Text,
}

/// What was read from the manifest. Values are strings as written in the manifest: integers in
/// decimal, references as `@XXXXXXXX` (`@android:XXXXXXXX` for framework ids), codenames as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `package` attribute of the root element.
    pub package: Option<String>,
    /// `android:versionCode`.
    pub version_code: Option<String>,
    /// `android:versionName`.
    pub version_name: Option<String>,
    /// `android:minSdkVersion` of `<uses-sdk>`.
    pub min_sdk: Option<String>,
    /// `android:targetSdkVersion` of `<uses-sdk>`.
    pub target_sdk: Option<String>,
    /// `android:maxSdkVersion` of `<uses-sdk>`.
    pub max_sdk: Option<String>,
    /// Binary or text.
    pub format: ManifestFormat,
    /// What was wrong, in the order found (empty for a clean manifest). At most 32 are listed.
    pub problems: Vec<String>,
}

/// Why nothing could be read from the manifest.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Zero bytes.
    #[error("manifest is empty")]
    Empty,
    /// Neither binary XML nor text XML.
    #[error("manifest is neither binary XML nor text XML ({len} bytes, starts with {head})")]
    NotXml {
        /// Length.
        len: usize,
        /// First bytes in hex.
        head: String,
    },
    /// No root element could be found.
    #[error("no root element found in the manifest: {}", problems.join("; "))]
    NoRootElement {
        /// What went wrong on the way.
        problems: Vec<String>,
    },
}

/// Parses a manifest, binary or text, as far as possible.
pub fn parse_manifest(data: &[u8]) -> Result<Manifest, ManifestError> {
    if data.is_empty() {
        return Err(ManifestError::Empty);
    }
    if looks_like_text_xml(data) {
        return crate::manifest::text::parse(data);
    }
    if data.len() < 8 {
        return Err(ManifestError::NotXml {
            len: data.len(),
            head: crate::bytes::hex(data),
        });
    }
    Axml::new(data).parse()
}

fn looks_like_text_xml(data: &[u8]) -> bool {
    let d = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    d.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<')
}

struct Problems(Vec<String>, usize);

impl Problems {
    fn add(&mut self, p: String) {
        if self.0.len() < MAX_PROBLEMS {
            self.0.push(p);
        } else {
            self.1 += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.1 > 0 {
            self.0.push(format!("... and {} more problems", self.1));
        }
        self.0
    }
}

/// A string pool chunk, decoded on demand.
struct StringPool<'a> {
    /// The chunk bytes (bounded by the file).
    chunk: &'a [u8],
    offsets_at: usize,
    strings_at: usize,
    utf8: bool,
}

impl<'a> StringPool<'a> {
    fn new(chunk: &'a [u8], header_size: usize, p: &mut Problems, at: usize) -> Option<Self> {
        let declared_count = u32_at(chunk, 8)?;
        let flags = u32_at(chunk, 16)?;
        let strings_start = to_usize(u64::from(u32_at(chunk, 20)?))?;
        let offsets_at = if (28..chunk.len()).contains(&header_size) {
            header_size
        } else {
            28
        };
        if offsets_at != header_size {
            p.add(format!(
                "string pool at {at}: header size {header_size} is not usable, assuming 28"
            ));
        }
        let table_end = u64::from(declared_count) * 4 + offsets_at as u64;
        if table_end > chunk.len() as u64 {
            p.add(format!(
                "string pool at {at}: declared {declared_count} strings do not fit in the chunk"
            ));
        }
        if strings_start > chunk.len() {
            p.add(format!(
                "string pool at {at}: strings start {strings_start} lies outside the chunk"
            ));
        }
        Some(StringPool {
            chunk,
            offsets_at,
            strings_at: strings_start,
            utf8: flags & 0x100 != 0,
        })
    }

    /// The string's bytes and length in code units, after its length prefix.
    fn locate(&self, idx: u32) -> Result<(usize, usize), String> {
        if idx == NO_INDEX {
            return Err("no string (index -1)".into());
        }
        let slot = to_usize(u64::from(idx) * 4).and_then(|o| o.checked_add(self.offsets_at));
        let off = slot
            .and_then(|s| u32_at(self.chunk, s))
            .ok_or_else(|| format!("string index {idx} is outside the pool"))?;
        let mut p = self
            .strings_at
            .saturating_add(to_usize(u64::from(off)).unwrap_or(usize::MAX));
        let bad = || format!("string {idx} at pool offset {off} lies outside the pool");
        if self.utf8 {
            // UTF-16 length (skipped), then UTF-8 byte length; each 1 or 2 bytes.
            let (_, n) = utf8_len(self.chunk, p).ok_or_else(bad)?;
            p += n;
            let (len, n) = utf8_len(self.chunk, p).ok_or_else(bad)?;
            Ok((p + n, len))
        } else {
            let first = usize::from(u16_at(self.chunk, p).ok_or_else(bad)?);
            if first & 0x8000 != 0 {
                let second = usize::from(u16_at(self.chunk, p + 2).ok_or_else(bad)?);
                Ok((p + 4, ((first & 0x7fff) << 16) | second))
            } else {
                Ok((p + 2, first))
            }
        }
    }

    fn get(&self, idx: u32) -> Result<String, String> {
        let (start, len) = self.locate(idx)?;
        if self.utf8 {
            let b = slice(self.chunk, start, len)
                .ok_or_else(|| format!("string {idx} ({len} bytes) runs past the pool"))?;
            Ok(String::from_utf8_lossy(b).into_owned())
        } else {
            let b = len
                .checked_mul(2)
                .and_then(|n| slice(self.chunk, start, n))
                .ok_or_else(|| format!("string {idx} ({len} UTF-16 units) runs past the pool"))?;
            let units = b.chunks_exact(2).map(|c| {
                u16::from_le_bytes([
                    c.first().copied().unwrap_or(0),
                    c.get(1).copied().unwrap_or(0),
                ])
            });
            Ok(char::decode_utf16(units)
                .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect())
        }
    }

    /// True when string `idx` equals the ASCII `s`, without decoding strings of another length.
    fn is(&self, idx: u32, s: &str) -> bool {
        match self.locate(idx) {
            Ok((_, len)) if len == s.len() => self.get(idx).is_ok_and(|v| v == s),
            _ => false,
        }
    }
}

fn utf8_len(d: &[u8], p: usize) -> Option<(usize, usize)> {
    let a = usize::from(u8_at(d, p)?);
    if a & 0x80 != 0 {
        let b = usize::from(u8_at(d, p + 1)?);
        Some((((a & 0x7f) << 8) | b, 2))
    } else {
        Some((a, 1))
    }
}

/// One attribute of a start element.
struct Attr {
    name: u32,
    raw: u32,
    dtype: u8,
    data: u32,
}

struct Axml<'a> {
    d: &'a [u8],
    pool: Option<StringPool<'a>>,
    res_ids: &'a [u8],
    p: Problems,
}

impl<'a> Axml<'a> {
    fn new(d: &'a [u8]) -> Self {
        Axml {
            d,
            pool: None,
            res_ids: &[],
            p: Problems(Vec::new(), 0),
        }
    }

    fn parse(mut self) -> Result<Manifest, ManifestError> {
        let d = self.d;
        let end = d.len();
        let ftype = u16_at(d, 0).unwrap_or(0);
        let fhsize = usize::from(u16_at(d, 2).unwrap_or(0));
        let fsize = u32_at(d, 4).unwrap_or(0);
        if ftype != RES_XML {
            self.p.add(format!(
                "file chunk type is 0x{ftype:04x}, not 0x0003 (RES_XML_TYPE)"
            ));
        }
        if u64::from(fsize) != end as u64 {
            self.p.add(format!(
                "file header declares {fsize} bytes, the manifest has {end}"
            ));
        }
        let mut pos = if fhsize >= 8 && fhsize.is_multiple_of(4) && fhsize < end {
            fhsize
        } else {
            self.p.add(format!(
                "file header size {fhsize} is not usable, assuming 8"
            ));
            8
        };
        let mut m = Manifest {
            package: None,
            version_code: None,
            version_name: None,
            min_sdk: None,
            target_sdk: None,
            max_sdk: None,
            format: ManifestFormat::Binary,
            problems: Vec::new(),
        };
        let mut depth = 0usize;
        let mut root_seen = false;
        let mut uses_sdk_seen = false;
        while pos.saturating_add(8) <= end {
            let ctype = u16_at(d, pos).unwrap_or(0);
            let hsize = usize::from(u16_at(d, pos + 2).unwrap_or(0));
            let csize = to_usize(u64::from(u32_at(d, pos + 4).unwrap_or(0))).unwrap_or(usize::MAX);
            let is_node = (RES_XML_FIRST_NODE..=RES_XML_LAST_NODE).contains(&ctype);
            let min = if ctype == RES_XML_START_ELEMENT {
                NODE_HEADER + ATTR_EXT
            } else {
                8
            };
            let size_ok = csize >= min && pos.checked_add(csize).is_some_and(|e| e <= end);
            if size_ok && !csize.is_multiple_of(4) {
                self.p.add(format!(
                    "chunk 0x{ctype:04x} at {pos}: size {csize} is not a multiple of 4"
                ));
            }
            let size = if size_ok {
                csize
            } else if ctype == RES_XML_START_ELEMENT {
                // Recompute from the attribute extension (fixed layout).
                let ext = pos + NODE_HEADER;
                let start = usize::from(u16_at(d, ext + 8).unwrap_or(20));
                let stride = usize::from(u16_at(d, ext + 10).unwrap_or(20)).max(ATTR_MIN);
                let count = usize::from(u16_at(d, ext + 12).unwrap_or(0));
                let s = NODE_HEADER + start.max(ATTR_EXT) + count * stride;
                self.p.add(format!(
                    "start element at {pos}: chunk size {csize} is invalid, using {s}"
                ));
                s
            } else {
                self.p.add(format!(
                    "chunk 0x{ctype:04x} at {pos}: size {csize} is invalid"
                ));
                match self.resync(pos + 4) {
                    Some(next) => {
                        self.p
                            .add(format!("resynchronised at the node header at {next}"));
                        pos = next;
                        continue;
                    }
                    None => break,
                }
            };
            let chunk_end = pos.saturating_add(size).min(end);
            match ctype {
                RES_STRING_POOL if !root_seen => {
                    if let Some(chunk) = d.get(pos..chunk_end) {
                        self.pool = StringPool::new(chunk, hsize, &mut self.p, pos);
                    }
                }
                RES_XML_RESOURCE_MAP if !root_seen => {
                    let from = if hsize >= 8 && hsize <= size {
                        hsize
                    } else {
                        8
                    };
                    self.res_ids = d.get(pos + from..chunk_end).unwrap_or(&[]);
                }
                RES_XML_START_ELEMENT => {
                    let ext = self.ext_offset(pos, hsize, size, true);
                    let name = u32_at(d, ext + 4).unwrap_or(NO_INDEX);
                    if !root_seen {
                        root_seen = true;
                        if !self.pool_is(name, "manifest") {
                            let n = self.string(name).unwrap_or_else(|e| format!("<{e}>"));
                            self.p.add(format!(
                                "root element is '{n}', not 'manifest' (Android refuses)"
                            ));
                        }
                        for a in self.attrs(ext, chunk_end, pos) {
                            self.root_attr(&a, &mut m);
                        }
                    } else if depth == 1 && !uses_sdk_seen && self.pool_is(name, "uses-sdk") {
                        uses_sdk_seen = true;
                        for a in self.attrs(ext, chunk_end, pos) {
                            self.sdk_attr(&a, &mut m);
                        }
                    }
                    depth += 1;
                }
                RES_XML_END_ELEMENT => depth = depth.saturating_sub(1),
                RES_STRING_POOL | RES_XML_RESOURCE_MAP => {}
                _ if is_node => {
                    if hsize != NODE_HEADER {
                        self.p.add(format!("node 0x{ctype:04x} at {pos}: header size {hsize}, expected 16 (ignored)"));
                    }
                }
                _ => self
                    .p
                    .add(format!("unknown chunk type 0x{ctype:04x} at {pos} skipped")),
            }
            pos = pos.saturating_add(size.max(8));
        }
        if pos < end && pos + 8 > end {
            self.p.add(format!("{} stray bytes at the end", end - pos));
        }
        if self.pool.is_none() {
            self.p.add("no string pool before the first element".into());
        }
        if !root_seen {
            return Err(ManifestError::NoRootElement {
                problems: self.p.finish(),
            });
        }
        m.problems = self.p.finish();
        Ok(m)
    }

    /// Finds the next plausible XML node header at or after `from` (4-byte steps).
    fn resync(&self, from: usize) -> Option<usize> {
        let end = self.d.len();
        let mut p = from.checked_add(3)? & !3;
        while p + NODE_HEADER <= end {
            let t = u16_at(self.d, p)?;
            if (RES_XML_FIRST_NODE..=RES_XML_LAST_NODE).contains(&t)
                && u16_at(self.d, p + 2) == Some(NODE_HEADER as u16)
                && u32_at(self.d, p + 4)
                    .and_then(|s| to_usize(u64::from(s)))
                    .is_some_and(|s| s >= NODE_HEADER && s.is_multiple_of(4) && p + s <= end)
            {
                return Some(p);
            }
            p += 4;
        }
        None
    }

    /// Where a node's extension starts: after `headerSize` when that is sane, otherwise after the
    /// fixed 16-byte node header.
    fn ext_offset(&mut self, pos: usize, hsize: usize, size: usize, element: bool) -> usize {
        if hsize == NODE_HEADER {
            return pos + NODE_HEADER;
        }
        let plausible = |at: usize| {
            let start = usize::from(u16_at(self.d, at + 8).unwrap_or(0));
            let stride = usize::from(u16_at(self.d, at + 10).unwrap_or(0));
            start >= ATTR_EXT && stride >= ATTR_MIN
        };
        let use_declared = hsize > NODE_HEADER
            && hsize.is_multiple_of(4)
            && hsize + ATTR_EXT <= size
            && (!element || plausible(pos + hsize));
        let at = if use_declared {
            pos + hsize
        } else {
            pos + NODE_HEADER
        };
        self.p.add(format!(
            "element at {pos}: header size {hsize}, expected 16; extension read at offset {}",
            at - pos
        ));
        at
    }

    /// The attributes of a start element whose extension is at `ext`.
    fn attrs(&mut self, ext: usize, chunk_end: usize, pos: usize) -> Vec<Attr> {
        let d = self.d;
        let start = usize::from(u16_at(d, ext + 8).unwrap_or(20));
        let mut stride = usize::from(u16_at(d, ext + 10).unwrap_or(20));
        let count = usize::from(u16_at(d, ext + 12).unwrap_or(0));
        if stride < ATTR_MIN {
            self.p.add(format!(
                "element at {pos}: attribute size {stride} < 20, using 20"
            ));
            stride = ATTR_MIN;
        }
        let first = ext + start;
        let mut out = Vec::new();
        for i in 0..count {
            let a = first + i * stride;
            if a + ATTR_MIN > chunk_end {
                self.p.add(format!(
                    "element at {pos}: attribute {i} of {count} lies outside the chunk"
                ));
                break;
            }
            let (Some(name), Some(raw), Some(dtype), Some(data)) = (
                u32_at(d, a + 4),
                u32_at(d, a + 8),
                u8_at(d, a + 15),
                u32_at(d, a + 16),
            ) else {
                break;
            };
            out.push(Attr {
                name,
                raw,
                dtype,
                data,
            });
        }
        out
    }

    fn string(&self, idx: u32) -> Result<String, String> {
        match &self.pool {
            Some(p) => p.get(idx),
            None => Err("no string pool".into()),
        }
    }

    fn pool_is(&self, idx: u32, s: &str) -> bool {
        self.pool.as_ref().is_some_and(|p| p.is(idx, s))
    }

    /// The framework resource id of attribute-name string `idx`, if the resource map has one.
    fn res_id(&self, idx: u32) -> Option<u32> {
        let off = to_usize(u64::from(idx) * 4)?;
        u32_at(self.res_ids, off).filter(|&id| id != 0)
    }

    /// True when the attribute is the framework attribute `id` (by resource id when it has one,
    /// by name otherwise).
    fn attr_is(&self, a: &Attr, id: u32, name: &str) -> bool {
        match self.res_id(a.name) {
            Some(r) => r == id,
            None => self.pool_is(a.name, name),
        }
    }

    fn value(&mut self, a: &Attr, what: &str) -> Option<String> {
        let v = match a.dtype {
            0x03 => {
                let idx = if a.raw != NO_INDEX { a.raw } else { a.data };
                self.string(idx)
            }
            0x00 if a.raw != NO_INDEX => self.string(a.raw),
            0x10 | 0x11 => Ok((a.data as i32).to_string()),
            0x12 => Ok(if a.data == 0 { "false" } else { "true" }.to_string()),
            0x01 => Ok(format!(
                "@{}{:08X}",
                if a.data >> 24 == 1 { "android:" } else { "" },
                a.data
            )),
            0x02 => Ok(format!(
                "?{}{:08X}",
                if a.data >> 24 == 1 { "android:" } else { "" },
                a.data
            )),
            t => Ok(format!("<0x{:X}, type 0x{t:02X}>", a.data)),
        };
        match v {
            Ok(s) => Some(s),
            Err(e) => {
                self.p.add(format!("{what}: {e}"));
                None
            }
        }
    }

    fn root_attr(&mut self, a: &Attr, m: &mut Manifest) {
        if m.package.is_none() && self.res_id(a.name).is_none() && self.pool_is(a.name, "package") {
            m.package = self.value(a, "package");
        } else if m.version_code.is_none() && self.attr_is(a, ATTR_VERSION_CODE, "versionCode") {
            m.version_code = self.value(a, "versionCode");
        } else if m.version_name.is_none() && self.attr_is(a, ATTR_VERSION_NAME, "versionName") {
            m.version_name = self.value(a, "versionName");
        }
    }

    fn sdk_attr(&mut self, a: &Attr, m: &mut Manifest) {
        if m.min_sdk.is_none() && self.attr_is(a, ATTR_MIN_SDK, "minSdkVersion") {
            m.min_sdk = self.value(a, "minSdkVersion");
        } else if m.target_sdk.is_none() && self.attr_is(a, ATTR_TARGET_SDK, "targetSdkVersion") {
            m.target_sdk = self.value(a, "targetSdkVersion");
        } else if m.max_sdk.is_none() && self.attr_is(a, ATTR_MAX_SDK, "maxSdkVersion") {
            m.max_sdk = self.value(a, "maxSdkVersion");
        }
    }
}

/// Plain-text manifests: a minimal tag/attribute scanner (no DTDs, no entities beyond the five
/// predefined ones). Android cannot install these; they occur in hand-packed samples.
mod text {
    use super::{Manifest, ManifestError, ManifestFormat};

    pub(super) fn parse(data: &[u8]) -> Result<Manifest, ManifestError> {
        let s = String::from_utf8_lossy(data);
        let s = s.trim_start_matches('\u{feff}');
        let mut m = Manifest {
            package: None,
            version_code: None,
            version_name: None,
            min_sdk: None,
            target_sdk: None,
            max_sdk: None,
            format: ManifestFormat::Text,
            problems: vec!["manifest is plain-text XML, not compiled binary XML".into()],
        };
        let mut depth = 0usize;
        let mut root = false;
        let mut rest: &str = s;
        while let Some(i) = rest.find('<') {
            rest = rest.get(i + 1..).unwrap_or("");
            if let Some(r) = rest.strip_prefix("!--") {
                rest = r.find("-->").and_then(|j| r.get(j + 3..)).unwrap_or("");
                continue;
            }
            if rest.starts_with('?') || rest.starts_with('!') {
                continue;
            }
            if rest.starts_with('/') {
                depth = depth.saturating_sub(1);
                continue;
            }
            let (tag, close) = split_tag(rest);
            let name_end = tag
                .find(|c: char| c.is_whitespace() || c == '/')
                .unwrap_or(tag.len());
            let name = tag.get(..name_end).unwrap_or("");
            let attrs = attributes(tag.get(name_end..).unwrap_or(""));
            let self_closing = tag.trim_end().ends_with('/');
            if !root {
                root = true;
                if name != "manifest" {
                    m.problems
                        .push(format!("root element is '{name}', not 'manifest'"));
                }
                for (k, v) in &attrs {
                    match *k {
                        "package" => m.package = m.package.take().or(Some(v.clone())),
                        "android:versionCode" => {
                            m.version_code = m.version_code.take().or(Some(v.clone()))
                        }
                        "android:versionName" => {
                            m.version_name = m.version_name.take().or(Some(v.clone()))
                        }
                        _ => {}
                    }
                }
            } else if depth == 1
                && name == "uses-sdk"
                && m.min_sdk.is_none()
                && m.target_sdk.is_none()
            {
                for (k, v) in &attrs {
                    match *k {
                        "android:minSdkVersion" => m.min_sdk = Some(v.clone()),
                        "android:targetSdkVersion" => m.target_sdk = Some(v.clone()),
                        "android:maxSdkVersion" => m.max_sdk = Some(v.clone()),
                        _ => {}
                    }
                }
            }
            if !self_closing {
                depth += 1;
            }
            rest = close;
        }
        if !root {
            return Err(ManifestError::NoRootElement {
                problems: m.problems,
            });
        }
        Ok(m)
    }

    /// Splits `rest` (just after `<`) at the end of the tag, honouring quotes.
    fn split_tag(rest: &str) -> (&str, &str) {
        let mut quote = None;
        for (i, c) in rest.char_indices() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '>') => {
                    return (rest.get(..i).unwrap_or(""), rest.get(i + 1..).unwrap_or(""));
                }
                _ => {}
            }
        }
        (rest, "")
    }

    fn attributes(mut s: &str) -> Vec<(&str, String)> {
        let mut out = Vec::new();
        loop {
            s = s.trim_start();
            let Some(eq) = s.find('=') else { break };
            let key = s.get(..eq).unwrap_or("").trim();
            let after = s.get(eq + 1..).unwrap_or("").trim_start();
            let Some(q) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
                break;
            };
            let body = after.get(1..).unwrap_or("");
            let Some(close) = body.find(q) else { break };
            out.push((key, unescape(body.get(..close).unwrap_or(""))));
            s = body.get(close + 1..).unwrap_or("");
        }
        out
    }

    fn unescape(v: &str) -> String {
        v.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&")
    }
}
