//! Entry names: raw bytes in, escaped display text and name anomalies out.
//!
//! Names are never used as paths. The display form is reversible: printable ASCII stays as is, a
//! backslash becomes `\\`, and every other byte of a control character, of an invalid UTF-8
//! sequence, or of an invisible / bidirectional-override code point becomes `\xNN`.

use crate::anomaly::{Anomaly, codes};

/// Escapes raw name bytes for display (see the module docs). Never fails.
pub fn escape_name(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else if needs_escape(c) {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    push_hex(&mut out, b);
                }
            } else {
                out.push(c);
            }
        }
        for &b in chunk.invalid() {
            push_hex(&mut out, b);
        }
    }
    out
}

fn push_hex(out: &mut String, b: u8) {
    out.push_str("\\x");
    out.push(crate::bytes::hex_digit(b >> 4));
    out.push(crate::bytes::hex_digit(b));
}

/// Control characters, non-ASCII white space, and invisible or direction-changing code points
/// that can make a displayed name lie about its bytes.
fn needs_escape(c: char) -> bool {
    if c.is_control() || (c.is_whitespace() && c != ' ') {
        return true;
    }
    matches!(u32::from(c),
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFFB | 0x1D173..=0x1D17A | 0xE0000..=0xE0FFF)
}

/// True when `raw` has a byte outside printable ASCII (then a raw hex form is worth reporting).
pub fn needs_raw_hex(raw: &[u8]) -> bool {
    raw.iter().any(|&b| !(0x20..=0x7e).contains(&b))
}

/// Name anomalies for one entry (empty, NUL, control characters, invalid UTF-8, traversal,
/// absolute, backslash).
pub(crate) fn check_name(raw: &[u8], display: &str, out: &mut Vec<Anomaly>) {
    let mut push = |code: &'static str, detail: &str| {
        out.push(Anomaly::entry(code, display, detail));
    };
    if raw.is_empty() {
        push(codes::EMPTY_NAME, "entry name is empty");
        return;
    }
    if raw.contains(&0) {
        push(
            codes::NAME_NUL,
            "entry name contains a NUL byte (Android rejects the archive)",
        );
    }
    if raw.iter().any(|&b| (b < 0x20 && b != 0) || b == 0x7f) {
        push(
            codes::NAME_CONTROL_CHAR,
            "entry name contains control characters",
        );
    }
    if std::str::from_utf8(raw).is_err() {
        push(
            codes::NAME_INVALID_UTF8,
            "entry name is not valid UTF-8 (Android rejects the archive)",
        );
    }
    if raw.contains(&b'\\') {
        push(codes::NAME_BACKSLASH, "entry name contains a backslash");
    }
    let absolute = matches!(raw.first(), Some(b'/') | Some(b'\\'))
        || (raw.len() >= 2
            && raw.get(1) == Some(&b':')
            && raw.first().is_some_and(u8::is_ascii_alphabetic));
    if absolute {
        push(codes::NAME_ABSOLUTE, "entry name is an absolute path");
    }
    if raw.split(|&b| b == b'/' || b == b'\\').any(|c| c == b"..") {
        push(
            codes::NAME_PATH_TRAVERSAL,
            "entry name has a '..' component",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_examples() {
        assert_eq!(escape_name(b"classes.dex"), "classes.dex");
        assert_eq!(escape_name(b"a\0b"), "a\\x00b");
        assert_eq!(escape_name(b"..\\..\\x"), "..\\\\..\\\\x");
        assert_eq!(escape_name(b"bad-\xff\xfe.txt"), "bad-\\xff\\xfe.txt");
        assert_eq!(escape_name(b"cr\rlf\n"), "cr\\x0dlf\\x0a");
        assert_eq!(
            escape_name("r\u{202e}txt.exe".as_bytes()),
            "r\\xe2\\x80\\xaetxt.exe"
        );
        assert_eq!(escape_name("caf\u{e9}".as_bytes()), "caf\u{e9}");
    }

    #[test]
    fn name_checks() {
        let mut v = Vec::new();
        check_name(b"../../evil.txt", "x", &mut v);
        assert!(v.iter().any(|a| a.code == codes::NAME_PATH_TRAVERSAL));
        v.clear();
        check_name(b"C:/evil", "x", &mut v);
        assert!(v.iter().any(|a| a.code == codes::NAME_ABSOLUTE));
        v.clear();
        check_name(b"res/..foo/ok", "x", &mut v);
        assert!(v.is_empty());
    }
}
