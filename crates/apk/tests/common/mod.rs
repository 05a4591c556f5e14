//! Test-only writers: a ZIP writer where every header field can be set independently (after
//! `make_malformed.py` in the shared corpus), a minimal binary-XML (AXML) manifest writer, and a
//! tiny DER writer for PKCS#7 and the APK Signing Block. Nothing here touches the filesystem.
#![allow(dead_code)]

use std::io::Write;

pub const SIG_LFH: u32 = 0x0403_4b50;
pub const SIG_CDH: u32 = 0x0201_4b50;
pub const SIG_EOCD: u32 = 0x0605_4b50;
pub const SIG_EOCD64: u32 = 0x0606_4b50;
pub const SIG_LOC64: u32 = 0x0706_4b50;
pub const SIG_DD: u32 = 0x0807_4b50;

pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn crc(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// One entry; `lh_*` and `cd_*` fields are written to the local and central headers.
#[derive(Clone)]
pub struct Entry {
    pub name_cd: Vec<u8>,
    pub name_lh: Vec<u8>,
    pub data: Vec<u8>,
    pub payload: Vec<u8>,
    pub lh_method: u16,
    pub cd_method: u16,
    pub lh_flags: u16,
    pub cd_flags: u16,
    pub lh_crc: u32,
    pub cd_crc: u32,
    pub lh_csize: u64,
    pub cd_csize: u64,
    pub lh_usize: u64,
    pub cd_usize: u64,
    pub lh_extra: Vec<u8>,
    pub cd_extra: Vec<u8>,
    pub descriptor: Option<Vec<u8>>,
    pub offset_override: Option<u64>,
}

impl Entry {
    pub fn new(name: impl AsRef<[u8]>, data: &[u8], method: u16) -> Entry {
        let payload = if method == 8 {
            deflate(data)
        } else {
            data.to_vec()
        };
        let name = name.as_ref().to_vec();
        let c = crc(data);
        Entry {
            name_cd: name.clone(),
            name_lh: name,
            data: data.to_vec(),
            lh_csize: payload.len() as u64,
            cd_csize: payload.len() as u64,
            payload,
            lh_method: method,
            cd_method: method,
            lh_flags: 0,
            cd_flags: 0,
            lh_crc: c,
            cd_crc: c,
            lh_usize: data.len() as u64,
            cd_usize: data.len() as u64,
            lh_extra: Vec::new(),
            cd_extra: Vec::new(),
            descriptor: None,
            offset_override: None,
        }
    }

    pub fn stored(name: impl AsRef<[u8]>, data: &[u8]) -> Entry {
        Entry::new(name, data, 0)
    }

    pub fn deflated(name: impl AsRef<[u8]>, data: &[u8]) -> Entry {
        Entry::new(name, data, 8)
    }

    pub fn method(mut self, m: u16) -> Entry {
        self.lh_method = m;
        self.cd_method = m;
        self
    }

    pub fn flags(mut self, f: u16) -> Entry {
        self.lh_flags = f;
        self.cd_flags = f;
        self
    }
}

#[derive(Default)]
pub struct Zip {
    pub prefix: Vec<u8>,
    pub trailer: Vec<u8>,
    pub comment: Vec<u8>,
    pub cd_offset_override: Option<u64>,
    pub count_override: Option<u16>,
    pub force_zip64: bool,
    /// Bytes inserted between the last entry and the central directory (signing block).
    pub before_cd: Vec<u8>,
}

fn u16le(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn u32le(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn u64le(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn zip64_extra(usize: u64, csize: u64) -> Vec<u8> {
    let mut v = Vec::new();
    u16le(&mut v, 1);
    u16le(&mut v, 16);
    u64le(&mut v, usize);
    u64le(&mut v, csize);
    v
}

impl Zip {
    pub fn build(&self, entries: &[Entry]) -> Vec<u8> {
        let mut out = self.prefix.clone();
        let base = self.prefix.len() as u64;
        let mut offsets = Vec::new();
        for e in entries {
            offsets.push(e.offset_override.unwrap_or(out.len() as u64 - base));
            u32le(&mut out, SIG_LFH);
            u16le(&mut out, 20);
            u16le(&mut out, e.lh_flags);
            u16le(&mut out, e.lh_method);
            u16le(&mut out, 0);
            u16le(&mut out, 0x3a21);
            u32le(&mut out, e.lh_crc);
            u32le(&mut out, e.lh_csize.min(u32::MAX as u64) as u32);
            u32le(&mut out, e.lh_usize.min(u32::MAX as u64) as u32);
            u16le(&mut out, e.name_lh.len() as u16);
            u16le(&mut out, e.lh_extra.len() as u16);
            out.extend_from_slice(&e.name_lh);
            out.extend_from_slice(&e.lh_extra);
            out.extend_from_slice(&e.payload);
            if let Some(dd) = &e.descriptor {
                out.extend_from_slice(dd);
            }
        }
        out.extend_from_slice(&self.before_cd);
        let cd_start = out.len() as u64 - base;
        let mut cd = Vec::new();
        for (e, off) in entries.iter().zip(&offsets) {
            u32le(&mut cd, SIG_CDH);
            u16le(&mut cd, 0x0314);
            u16le(&mut cd, 20);
            u16le(&mut cd, e.cd_flags);
            u16le(&mut cd, e.cd_method);
            u16le(&mut cd, 0);
            u16le(&mut cd, 0x3a21);
            u32le(&mut cd, e.cd_crc);
            u32le(&mut cd, e.cd_csize.min(u32::MAX as u64) as u32);
            u32le(&mut cd, e.cd_usize.min(u32::MAX as u64) as u32);
            u16le(&mut cd, e.name_cd.len() as u16);
            u16le(&mut cd, e.cd_extra.len() as u16);
            u16le(&mut cd, 0);
            u16le(&mut cd, 0);
            u16le(&mut cd, 0);
            u32le(&mut cd, 0);
            u32le(&mut cd, (*off).min(u32::MAX as u64) as u32);
            cd.extend_from_slice(&e.name_cd);
            cd.extend_from_slice(&e.cd_extra);
        }
        out.extend_from_slice(&cd);
        let n = entries.len() as u64;
        let cd_off = self.cd_offset_override.unwrap_or(cd_start);
        let count = if n > 0xfffe || self.force_zip64 {
            let eocd64 = out.len() as u64 - base;
            u32le(&mut out, SIG_EOCD64);
            u64le(&mut out, 44);
            u16le(&mut out, 45);
            u16le(&mut out, 45);
            u32le(&mut out, 0);
            u32le(&mut out, 0);
            u64le(&mut out, n);
            u64le(&mut out, n);
            u64le(&mut out, cd.len() as u64);
            u64le(&mut out, cd_off);
            u32le(&mut out, SIG_LOC64);
            u32le(&mut out, 0);
            u64le(&mut out, eocd64);
            u32le(&mut out, 1);
            0xffff
        } else {
            self.count_override.unwrap_or(n as u16)
        };
        u32le(&mut out, SIG_EOCD);
        u16le(&mut out, 0);
        u16le(&mut out, 0);
        u16le(&mut out, count);
        u16le(&mut out, count);
        u32le(&mut out, cd.len() as u32);
        u32le(&mut out, cd_off.min(u32::MAX as u64) as u32);
        u16le(&mut out, self.comment.len() as u16);
        out.extend_from_slice(&self.comment);
        out.extend_from_slice(&self.trailer);
        out
    }
}

pub fn zip(entries: &[Entry]) -> Vec<u8> {
    Zip::default().build(entries)
}

// ---------------------------------------------------------------------------------------------
// AXML
// ---------------------------------------------------------------------------------------------

/// A typed attribute value.
#[derive(Clone, Copy)]
pub enum Val {
    Str(u32),
    Int(u32),
}

#[derive(Clone)]
pub struct Attr {
    pub ns: u32,
    pub name: u32,
    pub val: Val,
}

pub const NO: u32 = u32::MAX;

/// A minimal manifest: strings, resource map, <manifest package versionCode versionName>
/// <uses-sdk minSdkVersion targetSdkVersion/></manifest>. Knobs let tests damage it.
pub struct Axml {
    pub strings: Vec<String>,
    pub res_ids: Vec<u32>,
    pub file_type: u16,
    pub file_size_delta: i64,
    pub node_header_size: u16,
    pub attr_size: u16,
    pub string_count_override: Option<u32>,
    pub element_size_override: Option<u32>,
    pub utf8: bool,
}

// String indices used by `Axml::manifest()`.
pub const S_VERSION_CODE: u32 = 0;
pub const S_VERSION_NAME: u32 = 1;
pub const S_MIN_SDK: u32 = 2;
pub const S_TARGET_SDK: u32 = 3;
pub const S_ANDROID: u32 = 4;
pub const S_URI: u32 = 5;
pub const S_MANIFEST: u32 = 6;
pub const S_PACKAGE: u32 = 7;
pub const S_PKG_VALUE: u32 = 8;
pub const S_USES_SDK: u32 = 9;
pub const S_VNAME_VALUE: u32 = 10;

impl Axml {
    pub fn manifest() -> Axml {
        let strings = [
            "versionCode",
            "versionName",
            "minSdkVersion",
            "targetSdkVersion",
            "android",
            "http://schemas.android.com/apk/res/android",
            "manifest",
            "package",
            "com.example.fixture",
            "uses-sdk",
            "1.2.3",
        ];
        Axml {
            strings: strings.iter().map(|s| s.to_string()).collect(),
            res_ids: vec![0x0101_021b, 0x0101_021c, 0x0101_020c, 0x0101_0270],
            file_type: 3,
            file_size_delta: 0,
            node_header_size: 16,
            attr_size: 20,
            string_count_override: None,
            element_size_override: None,
            utf8: false,
        }
    }

    fn pool(&self) -> Vec<u8> {
        let mut data = Vec::new();
        let mut offs = Vec::new();
        for s in &self.strings {
            offs.push(data.len() as u32);
            if self.utf8 {
                data.push(s.chars().count() as u8);
                data.push(s.len() as u8);
                data.extend_from_slice(s.as_bytes());
                data.push(0);
            } else {
                let u: Vec<u16> = s.encode_utf16().collect();
                u16le(&mut data, u.len() as u16);
                for c in u {
                    u16le(&mut data, c);
                }
                u16le(&mut data, 0);
            }
        }
        while data.len() % 4 != 0 {
            data.push(0);
        }
        let header = 28u32;
        let strings_start = header + 4 * offs.len() as u32;
        let size = strings_start + data.len() as u32;
        let mut c = Vec::new();
        u16le(&mut c, 1);
        u16le(&mut c, header as u16);
        u32le(&mut c, size);
        u32le(
            &mut c,
            self.string_count_override.unwrap_or(offs.len() as u32),
        );
        u32le(&mut c, 0);
        u32le(&mut c, if self.utf8 { 0x100 } else { 0 });
        u32le(&mut c, strings_start);
        u32le(&mut c, 0);
        for o in offs {
            u32le(&mut c, o);
        }
        c.extend_from_slice(&data);
        c
    }

    fn start(&self, name: u32, attrs: &[Attr]) -> Vec<u8> {
        let hs = self.node_header_size as usize;
        let stride = self.attr_size as usize;
        let size = hs + 20 + attrs.len() * stride;
        let mut c = Vec::new();
        u16le(&mut c, 0x0102);
        u16le(&mut c, self.node_header_size);
        u32le(&mut c, self.element_size_override.unwrap_or(size as u32));
        u32le(&mut c, 1);
        u32le(&mut c, NO);
        c.resize(hs, 0);
        u32le(&mut c, NO);
        u32le(&mut c, name);
        u16le(&mut c, 20);
        u16le(&mut c, self.attr_size);
        u16le(&mut c, attrs.len() as u16);
        u16le(&mut c, 0);
        u16le(&mut c, 0);
        u16le(&mut c, 0);
        for a in attrs {
            let start = c.len();
            u32le(&mut c, a.ns);
            u32le(&mut c, a.name);
            match a.val {
                Val::Str(i) => {
                    u32le(&mut c, i);
                    u16le(&mut c, 8);
                    c.push(0);
                    c.push(3);
                    u32le(&mut c, i);
                }
                Val::Int(v) => {
                    u32le(&mut c, NO);
                    u16le(&mut c, 8);
                    c.push(0);
                    c.push(0x10);
                    u32le(&mut c, v);
                }
            }
            c.resize(start + stride, 0);
        }
        c
    }

    fn end(&self, name: u32) -> Vec<u8> {
        let mut c = Vec::new();
        u16le(&mut c, 0x0103);
        u16le(&mut c, 16);
        u32le(&mut c, 24);
        u32le(&mut c, 1);
        u32le(&mut c, NO);
        u32le(&mut c, NO);
        u32le(&mut c, name);
        c
    }

    fn ns(&self, ty: u16) -> Vec<u8> {
        let mut c = Vec::new();
        u16le(&mut c, ty);
        u16le(&mut c, self.node_header_size);
        u32le(&mut c, 24);
        u32le(&mut c, 1);
        u32le(&mut c, NO);
        u32le(&mut c, S_ANDROID);
        u32le(&mut c, S_URI);
        c
    }

    pub fn build(&self) -> Vec<u8> {
        self.build_with(
            &[
                Attr {
                    ns: S_URI,
                    name: S_VERSION_CODE,
                    val: Val::Int(42),
                },
                Attr {
                    ns: S_URI,
                    name: S_VERSION_NAME,
                    val: Val::Str(S_VNAME_VALUE),
                },
                Attr {
                    ns: NO,
                    name: S_PACKAGE,
                    val: Val::Str(S_PKG_VALUE),
                },
            ],
            &[
                Attr {
                    ns: S_URI,
                    name: S_MIN_SDK,
                    val: Val::Int(21),
                },
                Attr {
                    ns: S_URI,
                    name: S_TARGET_SDK,
                    val: Val::Int(34),
                },
            ],
        )
    }

    pub fn build_with(&self, root: &[Attr], sdk: &[Attr]) -> Vec<u8> {
        let mut body = self.pool();
        let mut rm = Vec::new();
        u16le(&mut rm, 0x0180);
        u16le(&mut rm, 8);
        u32le(&mut rm, 8 + 4 * self.res_ids.len() as u32);
        for id in &self.res_ids {
            u32le(&mut rm, *id);
        }
        body.extend_from_slice(&rm);
        body.extend_from_slice(&self.ns(0x0100));
        body.extend_from_slice(&self.start(S_MANIFEST, root));
        body.extend_from_slice(&self.start(S_USES_SDK, sdk));
        body.extend_from_slice(&self.end(S_USES_SDK));
        body.extend_from_slice(&self.end(S_MANIFEST));
        body.extend_from_slice(&self.ns(0x0101));
        let mut out = Vec::new();
        u16le(&mut out, self.file_type);
        u16le(&mut out, 8);
        u32le(
            &mut out,
            ((body.len() + 8) as i64 + self.file_size_delta) as u32,
        );
        out.extend_from_slice(&body);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// DER, PKCS#7, APK Signing Block
// ---------------------------------------------------------------------------------------------

pub fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 0x80 {
        v.push(n as u8);
    } else if n < 0x100 {
        v.extend_from_slice(&[0x81, n as u8]);
    } else {
        v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    v.extend_from_slice(content);
    v
}

pub fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    der(0x30, &parts.concat())
}

/// An X.500 name with one CN, as UTF8String (0x0c) or PrintableString (0x13).
pub fn name(cn: &str, string_tag: u8) -> Vec<u8> {
    let atv = seq(&[
        der(0x06, &[0x55, 0x04, 0x03]),
        der(string_tag, cn.as_bytes()),
    ]);
    seq(&[der(0x31, &atv)])
}

/// A certificate-shaped DER value (not a valid signature, only the structure the walker needs).
pub fn cert(serial: u8, issuer_cn: &str, subject_cn: &str) -> Vec<u8> {
    let tbs = seq(&[
        der(0xa0, &der(0x02, &[2])),
        der(0x02, &[serial]),
        seq(&[der(
            0x06,
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b],
        )]),
        name(issuer_cn, 0x0c),
        seq(&[]),
        name(subject_cn, 0x0c),
    ]);
    seq(&[tbs, seq(&[]), der(0x03, &[0])])
}

/// PKCS#7 SignedData holding `certs`, signed (per SignerInfo) by the cert with `signer_serial`
/// issued by `issuer_cn` (named with PrintableString, as real signers often do).
pub fn pkcs7(certs: &[Vec<u8>], signer_serial: u8, issuer_cn: &str) -> Vec<u8> {
    let signer_info = seq(&[
        der(0x02, &[1]),
        seq(&[name(issuer_cn, 0x13), der(0x02, &[signer_serial])]),
        seq(&[]),
        seq(&[]),
        der(0x04, &[0; 8]),
    ]);
    let signed = seq(&[
        der(0x02, &[1]),
        der(0x31, &[]),
        seq(&[der(
            0x06,
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01],
        )]),
        der(0xa0, &certs.concat()),
        der(0x31, &signer_info),
    ]);
    seq(&[
        der(
            0x06,
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02],
        ),
        der(0xa0, &signed),
    ])
}

fn prefixed(v: &[u8]) -> Vec<u8> {
    let mut o = (v.len() as u32).to_le_bytes().to_vec();
    o.extend_from_slice(v);
    o
}

/// A v2/v3 scheme block with one signer holding `certs`.
pub fn scheme_block(certs: &[Vec<u8>], v3: bool) -> Vec<u8> {
    let cert_list: Vec<u8> = certs.iter().flat_map(|c| prefixed(c)).collect();
    let mut signed = prefixed(&[]);
    signed.extend(prefixed(&cert_list));
    if v3 {
        signed.extend_from_slice(&24u32.to_le_bytes());
        signed.extend_from_slice(&0x7fff_ffffu32.to_le_bytes());
    }
    signed.extend(prefixed(&[]));
    let mut signer = prefixed(&signed);
    if v3 {
        signer.extend_from_slice(&24u32.to_le_bytes());
        signer.extend_from_slice(&0x7fff_ffffu32.to_le_bytes());
    }
    signer.extend(prefixed(&[]));
    signer.extend(prefixed(&[]));
    prefixed(&prefixed(&signer))
}

/// An APK Signing Block with the given (id, value) pairs; `footer_delta` damages the footer size.
pub fn signing_block(pairs: &[(u32, Vec<u8>)], footer_delta: i64) -> Vec<u8> {
    let mut body = Vec::new();
    for (id, v) in pairs {
        u64le(&mut body, v.len() as u64 + 4);
        u32le(&mut body, *id);
        body.extend_from_slice(v);
    }
    let size = body.len() as u64 + 24;
    let mut out = Vec::new();
    u64le(&mut out, size);
    out.extend_from_slice(&body);
    u64le(&mut out, (size as i64 + footer_delta) as u64);
    out.extend_from_slice(b"APK Sig Block 42");
    out
}
