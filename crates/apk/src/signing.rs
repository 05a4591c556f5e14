//! Signing certificates: v1 (JAR signing, PKCS#7 in `META-INF/`) and the APK Signing Block
//! (v2 0x7109871a, v3 0xf05368c0, v3.1 0x1b93ad61).
//!
//! The signing block is located as Android's `apksig` does: its footer (size + magic
//! `APK Sig Block 42`) ends exactly where the central directory starts, and the size in its header
//! must equal the size in its footer. Every length is checked against its enclosing block; a broken
//! block or scheme is reported and whatever was read before the break is kept.

use crate::anomaly::{Anomaly, codes};
use crate::bytes::{Cursor, slice, to_usize, u64_at};
use crate::der::pkcs7;
use crate::names::escape_name;
use crate::zip::Archive;

const MAGIC: &[u8; 16] = b"APK Sig Block 42";
const MAX_CERTS_PER_SCHEME: usize = 1_000;

/// Which signature scheme a certificate came from.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// JAR signing (`META-INF/*.RSA|DSA|EC`).
    V1,
    /// APK Signature Scheme v2 (block id 0x7109871a).
    V2,
    /// APK Signature Scheme v3 (block id 0xf05368c0).
    V3,
    /// APK Signature Scheme v3.1 (block id 0x1b93ad61).
    V31,
}

impl Scheme {
    /// `"v1"`, `"v2"`, `"v3"` or `"v3.1"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::V1 => "v1",
            Scheme::V2 => "v2",
            Scheme::V3 => "v3",
            Scheme::V31 => "v3.1",
        }
    }

    fn block_id(self) -> Option<u32> {
        match self {
            Scheme::V1 => None,
            Scheme::V2 => Some(0x7109_871a),
            Scheme::V3 => Some(0xf053_68c0),
            Scheme::V31 => Some(0x1b93_ad61),
        }
    }
}

/// One signing certificate, DER (as stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningCert {
    /// The scheme it came from.
    pub scheme: Scheme,
    /// The certificate bytes exactly as stored (hash these for the fingerprint).
    pub der: Vec<u8>,
}

/// The certificates found, per scheme in order v1, v2, v3, v3.1, without duplicates within a
/// scheme, plus anomalies.
pub fn certificates(archive: &Archive<'_>) -> (Vec<SigningCert>, Vec<Anomaly>) {
    let mut certs = Vec::new();
    let mut an = Vec::new();
    v1(archive, &mut certs, &mut an);
    if let Some(layout) = archive.layout() {
        match signing_block(archive.data(), layout.cd_offset) {
            Ok(Some(pairs)) => {
                for scheme in [Scheme::V2, Scheme::V3, Scheme::V31] {
                    // Android's apksig uses the first pair with the scheme's id; later copies are
                    // ignored by the platform but read by other tools (fdroidserver#1128).
                    let mut values = pairs
                        .iter()
                        .filter(|(id, _)| Some(*id) == scheme.block_id())
                        .map(|(_, v)| v);
                    if let Some(first) = values.next() {
                        scheme_certs(scheme, first, &mut certs, &mut an);
                    }
                    let extra = values.count();
                    if extra > 0 {
                        an.push(Anomaly::new(
                            codes::SIGNATURE_SCHEME_DUPLICATE,
                            format!(
                                "{extra} further {} block(s) in the APK Signing Block; only the first is used, as Android does",
                                scheme.as_str()
                            ),
                        ));
                    }
                }
                if let Some(e) = pairs.error {
                    an.push(Anomaly::new(codes::SIGNING_BLOCK_INVALID, e));
                }
            }
            Ok(None) => {}
            Err(e) => an.push(Anomaly::new(codes::SIGNING_BLOCK_INVALID, e)),
        }
    }
    (certs, an)
}

fn push_cert(certs: &mut Vec<SigningCert>, scheme: Scheme, der: &[u8]) {
    if !certs.iter().any(|c| c.scheme == scheme && c.der == der) {
        certs.push(SigningCert {
            scheme,
            der: der.to_vec(),
        });
    }
}

/// v1: for each `META-INF/<name>.SF`, the signature block `META-INF/<name>.RSA|.DSA|.EC` (as
/// Android's verifier pairs them); the signer's certificate as named by the PKCS#7 SignerInfo.
fn v1(archive: &Archive<'_>, certs: &mut Vec<SigningCert>, an: &mut Vec<Anomaly>) {
    let cap = archive.limits().max_signature_file_bytes;
    let names: std::collections::HashSet<&[u8]> =
        archive.entries().iter().map(|e| e.name).collect();
    for e in archive.entries() {
        let Some(base) = e.name.strip_prefix(b"META-INF/") else {
            continue;
        };
        if base.contains(&b'/') {
            continue;
        }
        let stem = [&b".RSA"[..], b".DSA", b".EC"]
            .iter()
            .find_map(|ext| base.strip_suffix(*ext));
        let Some(stem) = stem else { continue };
        let display = e.display_name();
        let mut sf = b"META-INF/".to_vec();
        sf.extend_from_slice(stem);
        sf.extend_from_slice(b".SF");
        if !names.contains(sf.as_slice()) {
            an.push(Anomaly::entry(
                codes::V1_SIGNATURE_WITHOUT_SF,
                display,
                format!(
                    "no {} next to this signature block; ignored as Android does",
                    escape_name(&sf)
                ),
            ));
            continue;
        }
        let (buf, report) = archive.read_to_vec(e.index, cap);
        an.extend(report.anomalies.iter().cloned());
        if !report.is_complete() {
            an.push(Anomaly::entry(
                codes::V1_PKCS7_INVALID,
                display,
                "signature block could not be read completely",
            ));
            continue;
        }
        match pkcs7(&buf) {
            Ok(p) if p.certs.is_empty() => {
                an.push(Anomaly::entry(
                    codes::V1_PKCS7_INVALID,
                    display,
                    "PKCS#7 SignedData holds no certificate",
                ));
            }
            Ok(p) if p.signers.is_empty() => {
                an.push(Anomaly::entry(
                    codes::V1_SIGNER_CERT_NOT_FOUND,
                    display,
                    format!(
                        "no certificate matches a SignerInfo; all {} certificates reported",
                        p.certs.len()
                    ),
                ));
                for c in p.certs.iter().take(MAX_CERTS_PER_SCHEME) {
                    push_cert(certs, Scheme::V1, c);
                }
            }
            Ok(p) => {
                for c in p.signers.iter().filter_map(|&i| p.certs.get(i)) {
                    push_cert(certs, Scheme::V1, c);
                }
            }
            Err(err) => an.push(Anomaly::entry(codes::V1_PKCS7_INVALID, display, err)),
        }
    }
}

/// ID-value pairs of the signing block; `error` says why the walk stopped early, if it did.
struct Pairs<'a> {
    list: Vec<(u32, &'a [u8])>,
    error: Option<String>,
}

impl<'a> Pairs<'a> {
    fn iter(&self) -> impl Iterator<Item = &(u32, &'a [u8])> {
        self.list.iter()
    }
}

/// Finds the APK Signing Block right before the central directory. `Ok(None)` when there is none.
fn signing_block(data: &[u8], cd_offset: u64) -> Result<Option<Pairs<'_>>, String> {
    let Some(cd) = to_usize(cd_offset).filter(|&c| c <= data.len()) else {
        return Ok(None);
    };
    let Some(footer) = cd.checked_sub(24) else {
        return Ok(None);
    };
    if slice(data, footer + 8, 16) != Some(&MAGIC[..]) {
        return Ok(None);
    }
    let size = u64_at(data, footer).unwrap_or(0);
    let start = (cd as u64).checked_sub(size).and_then(|s| s.checked_sub(8));
    let Some(start) = start.filter(|_| size >= 24).and_then(to_usize) else {
        return Err(format!(
            "APK Signing Block size {size} in the footer is impossible (block would start before the file)"
        ));
    };
    let header = u64_at(data, start).unwrap_or(0);
    if header != size {
        return Err(format!(
            "APK Signing Block sizes in header ({header}) and footer ({size}) do not match; not used (Android rejects)"
        ));
    }
    let body = data.get(start + 8..footer).unwrap_or(&[]);
    let mut c = Cursor::new(body);
    let mut list = Vec::new();
    let mut error = None;
    while c.remaining() > 0 {
        let at = body.len() - c.remaining();
        let Some(len) = c.u64() else {
            error = Some(format!("APK Signing Block: truncated pair header at {at}"));
            break;
        };
        let value_len = to_usize(len).filter(|&l| l >= 4 && l <= c.remaining());
        let Some(vl) = value_len else {
            error = Some(format!(
                "APK Signing Block: pair at {at} declares {len} bytes, {} remain",
                c.remaining()
            ));
            break;
        };
        let (Some(id), Some(value)) = (c.u32(), c.take(vl - 4)) else {
            error = Some(format!("APK Signing Block: pair at {at} is truncated"));
            break;
        };
        list.push((id, value));
    }
    Ok(Some(Pairs { list, error }))
}

/// v2/v3/v3.1 scheme block: signers → signed data → certificates (the second field of signed
/// data in every version).
fn scheme_certs(scheme: Scheme, value: &[u8], certs: &mut Vec<SigningCert>, an: &mut Vec<Anomaly>) {
    let mut bad = |what: &str| {
        an.push(Anomaly::new(
            codes::SIGNATURE_SCHEME_INVALID,
            format!("{} block: {what}", scheme.as_str()),
        ));
    };
    let mut outer = Cursor::new(value);
    let Some(signers) = outer.prefixed() else {
        bad("signer sequence length runs past the block");
        return;
    };
    let mut s = Cursor::new(signers);
    let mut n = 0usize;
    while s.remaining() > 0 {
        let Some(signer) = s.prefixed() else {
            bad("signer length runs past the signer sequence");
            return;
        };
        let Some(signed_data) = Cursor::new(signer).prefixed() else {
            bad("signed data length runs past the signer");
            return;
        };
        let mut sd = Cursor::new(signed_data);
        let (Some(_digests), Some(list)) = (sd.prefixed(), sd.prefixed()) else {
            bad("digests or certificates run past the signed data");
            return;
        };
        let mut cl = Cursor::new(list);
        while cl.remaining() > 0 {
            let Some(der) = cl.prefixed() else {
                bad("certificate length runs past the certificate list");
                return;
            };
            n += 1;
            if n > MAX_CERTS_PER_SCHEME {
                bad("more than 1000 certificates; the rest ignored");
                return;
            }
            push_cert(certs, scheme, der);
        }
    }
}
