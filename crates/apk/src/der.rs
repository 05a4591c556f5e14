//! A bounded BER/DER walker, just enough to pull certificates out of PKCS#7 SignedData.
//!
//! # Why not `cms` / `x509-cert`
//!
//! v1 signature blocks in the wild are not always DER: old signing tools emit BER with
//! indefinite lengths, which the RustCrypto `der`-based crates reject by design (they are strict
//! DER decoders). We need only the raw bytes of each certificate (to hash them exactly as they are
//! stored, as androguard does) and the issuer/serial of each signer, so a 100-line walker that
//! accepts definite and indefinite lengths, caps nesting depth, and checks every length against the
//! enclosing buffer is both more tolerant and smaller than the dependency.

const MAX_DEPTH: u32 = 32;

/// One TLV: identifier byte, whole encoding, content.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tlv<'a> {
    pub(crate) tag: u8,
    pub(crate) raw: &'a [u8],
    pub(crate) content: &'a [u8],
}

/// Reads the TLV starting at `pos`; returns it and the offset just after it.
pub(crate) fn read_tlv(d: &[u8], pos: usize, depth: u32) -> Option<(Tlv<'_>, usize)> {
    if depth > MAX_DEPTH {
        return None;
    }
    let tag = *d.get(pos)?;
    let mut p = pos + 1;
    if tag & 0x1f == 0x1f {
        // High tag number: base-128 continuation bytes (at most 4).
        let mut n = 0;
        while *d.get(p)? & 0x80 != 0 {
            p += 1;
            n += 1;
            if n > 4 {
                return None;
            }
        }
        p += 1;
    }
    let first = *d.get(p)?;
    p += 1;
    if first == 0x80 {
        // Indefinite length (BER, constructed only): children up to the end-of-contents marker.
        if tag & 0x20 == 0 {
            return None;
        }
        let start = p;
        loop {
            if d.get(p..p + 2)? == [0, 0] {
                let content = d.get(start..p)?;
                let raw = d.get(pos..p + 2)?;
                return Some((Tlv { tag, raw, content }, p + 2));
            }
            let (_, next) = read_tlv(d, p, depth + 1)?;
            p = next;
        }
    }
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n > 4 {
            return None;
        }
        let mut v = 0usize;
        for _ in 0..n {
            v = (v << 8) | usize::from(*d.get(p)?);
            p += 1;
        }
        v
    };
    let end = p.checked_add(len)?;
    let content = d.get(p..end)?;
    let raw = d.get(pos..end)?;
    Some((Tlv { tag, raw, content }, end))
}

/// The children of a constructed value (stops at the first malformed child).
pub(crate) fn children(content: &[u8], depth: u32) -> Vec<Tlv<'_>> {
    let mut out = Vec::new();
    let mut p = 0;
    while p < content.len() {
        match read_tlv(content, p, depth + 1) {
            Some((t, next)) => {
                out.push(t);
                p = next;
            }
            None => break,
        }
    }
    out
}

const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];

/// Certificates of a PKCS#7 SignedData, and which of them sign it.
#[derive(Debug)]
pub(crate) struct Pkcs7<'a> {
    /// Every certificate in the `certificates` set, raw, in order.
    pub(crate) certs: Vec<&'a [u8]>,
    /// Indices into `certs` of the certificates named by a SignerInfo (issuer + serial).
    pub(crate) signers: Vec<usize>,
}

/// Parses a PKCS#7 ContentInfo holding SignedData.
pub(crate) fn pkcs7(d: &[u8]) -> Result<Pkcs7<'_>, String> {
    let (ci, _) = read_tlv(d, 0, 0).ok_or("not a BER/DER value")?;
    if ci.tag != 0x30 {
        return Err(format!(
            "ContentInfo is tag 0x{:02x}, not a SEQUENCE",
            ci.tag
        ));
    }
    let parts = children(ci.content, 1);
    let oid = parts
        .first()
        .filter(|t| t.tag == 0x06)
        .ok_or("ContentInfo has no content type")?;
    if oid.content != OID_SIGNED_DATA {
        return Err("content type is not signedData (1.2.840.113549.1.7.2)".into());
    }
    let explicit = parts
        .get(1)
        .filter(|t| t.tag == 0xa0)
        .ok_or("ContentInfo has no [0] content")?;
    let sd = children(explicit.content, 2);
    let sd = sd
        .first()
        .filter(|t| t.tag == 0x30)
        .ok_or("SignedData is not a SEQUENCE")?;
    let fields = children(sd.content, 3);
    let certs: Vec<&[u8]> = fields
        .iter()
        .find(|t| t.tag == 0xa0)
        .map(|set| {
            children(set.content, 4)
                .into_iter()
                .filter(|c| c.tag == 0x30)
                .map(|c| c.raw)
                .collect()
        })
        .unwrap_or_default();
    let mut signers = Vec::new();
    if let Some(infos) = fields.iter().rev().find(|t| t.tag == 0x31) {
        for si in children(infos.content, 4) {
            let f = children(si.content, 5);
            let Some(sid) = f.get(1).filter(|t| t.tag == 0x30) else {
                continue;
            };
            let ias = children(sid.content, 6);
            let (Some(issuer), Some(serial)) = (ias.first(), ias.get(1)) else {
                continue;
            };
            let want = canonical_name(issuer.content);
            for (i, c) in certs.iter().enumerate() {
                if let Some((is, se)) = issuer_serial(c)
                    && se == serial.content
                    && (is == issuer.raw || canonical_name(children_of(is)) == want)
                    && !signers.contains(&i)
                {
                    signers.push(i);
                }
            }
        }
    }
    Ok(Pkcs7 { certs, signers })
}

/// The content of the single TLV in `raw` (or nothing).
fn children_of(raw: &[u8]) -> &[u8] {
    read_tlv(raw, 0, 0).map_or(&[], |(t, _)| t.content)
}

/// A comparison form of an X.500 Name: per attribute, the type OID and the value with its string
/// type ignored, ASCII case folded and white space collapsed (close to RFC 5280 §7.1 matching,
/// which Java's `X500Principal.equals` used by Android implements). Signers often name their
/// issuer with PrintableString where the certificate says UTF8String.
fn canonical_name(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for rdn in children(content, 1) {
        for atv in children(rdn.content, 2) {
            let parts = children(atv.content, 3);
            let (Some(oid), Some(value)) = (parts.first(), parts.get(1)) else {
                continue;
            };
            out.extend_from_slice(oid.content);
            out.push(0);
            let text = String::from_utf8_lossy(value.content).to_ascii_lowercase();
            out.extend_from_slice(
                text.split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .as_bytes(),
            );
            out.push(0);
        }
        out.push(1);
    }
    out
}

/// Raw issuer Name and serial-number content of a certificate.
fn issuer_serial(cert: &[u8]) -> Option<(&[u8], &[u8])> {
    let (c, _) = read_tlv(cert, 0, 0)?;
    let parts = children(c.content, 1);
    let tbs = parts.first()?;
    let f = children(tbs.content, 2);
    let skip = usize::from(f.first()?.tag == 0xa0);
    let serial = f.get(skip).filter(|t| t.tag == 0x02)?;
    let issuer = f.get(skip + 2).filter(|t| t.tag == 0x30)?;
    Some((issuer.raw, serial.content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indefinite_length() {
        // SEQUENCE (indefinite) { INTEGER 5 } EOC
        let d = [0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00];
        let (t, end) = read_tlv(&d, 0, 0).unwrap();
        assert_eq!(end, 7);
        assert_eq!(t.content, &[0x02, 0x01, 0x05]);
    }

    #[test]
    fn rejects_overlong() {
        assert!(read_tlv(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], 0, 0).is_none());
        assert!(read_tlv(&[0x30, 0x89], 0, 0).is_none());
        // Deeply nested indefinite lengths stop at the depth cap.
        let mut d = Vec::new();
        for _ in 0..100 {
            d.extend_from_slice(&[0x30, 0x80]);
        }
        assert!(read_tlv(&d, 0, 0).is_none());
    }
}
