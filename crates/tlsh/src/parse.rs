//! Parsing and printing digests.
//!
//! Two parsers, on purpose (`shared/guides/CASES.md` item 5b):
//!
//! | input | [`Digest::parse`] (strict, = reference `fromTlshStr`) | [`Digest::parse_lenient`] (user input) |
//! |---|---|---|
//! | `T1` + 70 hex (any case of hex digits) | yes | yes |
//! | 70 hex, no prefix (pre-4.0 "legacy") | yes | yes |
//! | lower-case `t1` prefix | **no** | yes |
//! | surrounding whitespace | no | yes (trimmed) |
//! | text after the 70 hex digits (`\n`, `\tfile`, `G`) | yes (ignored, as the reference) | **no** |
//! | `T0`/`T2` prefix, `TNULL`, empty, 69 or 71+ hex digits, non-hex inside | no | no |
//!
//! The strict parser is bit-for-bit the decision of py-tlsh 5.0.0 (`tlsh.diff` accepting a
//! string) and is what to use when reproducing reference behaviour. The lenient one is for whole
//! fields typed or imported by people and other tools (CLI, API, CSV/JSON importers), which print
//! `t1…` or the legacy form; it normalises every accepted spelling to the canonical `T1` form.

use crate::digest::{DIGEST_LEN, Digest};
use core::fmt;
use core::str::FromStr;

/// Number of hex digits in a digest without its prefix.
pub const HEX_LEN: usize = 2 * DIGEST_LEN;

/// Why a string is not a TLSH digest. `Display` names the rule that was broken.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The string is empty (after trimming, for the lenient parser).
    Empty,
    /// The string is `TNULL`, the reference's marker for "no digest".
    Null,
    /// A lower-case `t1` prefix (only [`Digest::parse_lenient`] accepts it).
    LowercasePrefix,
    /// A `T` prefix other than `T1` (e.g. `T0`, `T2`): another digest version or layout.
    UnsupportedVersion {
        /// The two prefix characters.
        prefix: String,
    },
    /// Not exactly 70 hex digits after the optional prefix.
    WrongLength {
        /// How many hex digits were found in a row.
        hex_digits: usize,
    },
    /// A character that is not a hex digit where one was required.
    InvalidChar {
        /// Byte offset in the (trimmed, for the lenient parser) input.
        offset: usize,
        /// The offending character.
        found: char,
    },
    /// Text after the 70 hex digits (only the strict parser ignores it).
    TrailingText {
        /// Byte offset where the extra text starts.
        offset: usize,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => f.write_str("not a TLSH digest: empty string"),
            ParseError::Null => {
                f.write_str("not a TLSH digest: TNULL marks an input that had no digest")
            }
            ParseError::LowercasePrefix => f.write_str(
                "not a TLSH digest for the strict parser: lower-case \"t1\" prefix \
                 (the reference accepts only \"T1\"; use the lenient parser for user input)",
            ),
            ParseError::UnsupportedVersion { prefix } => write!(
                f,
                "not a TLSH digest: unsupported version prefix {prefix:?} (only \"T1\", \
                 128 buckets with a 1-byte checksum, or no prefix)"
            ),
            ParseError::WrongLength { hex_digits } => write!(
                f,
                "not a TLSH digest: expected exactly {HEX_LEN} hex digits after the optional \
                 \"T1\" prefix, found {hex_digits}"
            ),
            ParseError::InvalidChar { offset, found } => write!(
                f,
                "not a TLSH digest: {found:?} at byte {offset} is not a hex digit"
            ),
            ParseError::TrailingText { offset } => write!(
                f,
                "not a TLSH digest: unexpected text after the {HEX_LEN} hex digits at byte {offset}"
            ),
        }
    }
}

impl std::error::Error for ParseError {}

impl Digest {
    /// Strict parse, identical in what it accepts to the reference (`Tlsh::fromTlshStr` in
    /// TLSH 4.12.1 / py-tlsh 5.0.0): an optional upper-case `T1`, then 70 hex digits (either
    /// case), then anything that does not start with a hex digit. See the module table.
    pub fn parse(s: &str) -> Result<Digest, ParseError> {
        let bytes = s.as_bytes();
        let start = if bytes.starts_with(b"T1") { 2 } else { 0 };
        let hex = bytes.get(start..).unwrap_or(&[]);
        let run = hex_run(hex);
        if run < HEX_LEN {
            return Err(explain(s, start, run));
        }
        if run > HEX_LEN {
            return Err(ParseError::WrongLength { hex_digits: run });
        }
        Ok(decode(hex))
    }

    /// Lenient parse for whole user-supplied fields: trims surrounding whitespace, accepts `T1`,
    /// `t1` or no prefix, then exactly 70 hex digits and nothing else. See the module table.
    pub fn parse_lenient(s: &str) -> Result<Digest, ParseError> {
        let s = s.trim();
        let bytes = s.as_bytes();
        let start = if bytes.starts_with(b"T1") || bytes.starts_with(b"t1") {
            2
        } else {
            0
        };
        let hex = bytes.get(start..).unwrap_or(&[]);
        let run = hex_run(hex);
        if run < HEX_LEN {
            return Err(match explain(s, start, run) {
                ParseError::LowercasePrefix => ParseError::WrongLength { hex_digits: run },
                e => e,
            });
        }
        if run > HEX_LEN {
            return Err(ParseError::WrongLength { hex_digits: run });
        }
        if hex.len() > HEX_LEN {
            return Err(ParseError::TrailingText {
                offset: start + HEX_LEN,
            });
        }
        Ok(decode(hex))
    }

    /// The 70 upper-case hex digits without the `T1` prefix (the pre-4.0 "old" form).
    pub fn to_legacy_hex(&self) -> String {
        let mut out = String::with_capacity(HEX_LEN);
        push_hex(&mut out, &self.0);
        out
    }

    /// The canonical form, `T1` + 70 upper-case hex digits (same as `to_string()`).
    pub fn to_canonical(&self) -> String {
        let mut out = String::with_capacity(HEX_LEN + 2);
        out.push_str("T1");
        push_hex(&mut out, &self.0);
        out
    }
}

/// Length of the run of ASCII hex digits at the start of `s`.
fn hex_run(s: &[u8]) -> usize {
    s.iter().take_while(|b| b.is_ascii_hexdigit()).count()
}

/// The error for a string whose hex run (from `start`) is shorter than 70 digits.
fn explain(s: &str, start: usize, run: usize) -> ParseError {
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return ParseError::Empty;
    }
    if s == "TNULL" {
        return ParseError::Null;
    }
    if start == 0 {
        if bytes.starts_with(b"t1") && hex_run(bytes.get(2..).unwrap_or(&[])) >= HEX_LEN {
            return ParseError::LowercasePrefix;
        }
        if let [b'T' | b't', v, ..] = bytes
            && v.is_ascii_digit()
        {
            let prefix = s.get(..2).unwrap_or_default().to_owned();
            return ParseError::UnsupportedVersion { prefix };
        }
    }
    let offset = start + run;
    match s.get(offset..).and_then(|rest| rest.chars().next()) {
        // A non-hex character before 70 digits: either inside a would-be digest or at its end.
        Some(found) if run > 0 && offset < s.len() && !looks_like_end(found) => {
            ParseError::InvalidChar { offset, found }
        }
        Some(found) if run == 0 => ParseError::InvalidChar { offset, found },
        _ => ParseError::WrongLength { hex_digits: run },
    }
}

/// Characters that plausibly end a (too short) digest rather than corrupt it.
fn looks_like_end(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | ';' | '"' | '\'')
}

/// Decode the first 70 hex digits of `hex` (callers checked they are hex).
fn decode(hex: &[u8]) -> Digest {
    let mut rec = [0u8; DIGEST_LEN];
    for (out, pair) in rec.iter_mut().zip(hex.chunks_exact(2)) {
        if let [hi, lo] = pair {
            *out = (nibble(*hi) << 4) | nibble(*lo);
        }
    }
    Digest(rec)
}

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        for n in [b >> 4, b & 0x0f] {
            if let Some(&d) = DIGITS.get(usize::from(n)) {
                out.push(char::from(d));
            }
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_canonical())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = ParseError;

    /// Same as [`Digest::parse`] (strict).
    fn from_str(s: &str) -> Result<Digest, ParseError> {
        Digest::parse(s)
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    use super::Digest;
    use core::fmt;
    use serde::de::{self, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serialised as the canonical string `T1` + 70 upper-case hex digits.
    impl Serialize for Digest {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_str(&self.to_canonical())
        }
    }

    /// Deserialised with [`Digest::parse_lenient`] (a whole field: `T1`, `t1` or legacy form).
    impl<'de> Deserialize<'de> for Digest {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Digest;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a TLSH digest string (T1 + 70 hex digits)")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Digest, E> {
                    Digest::parse_lenient(v).map_err(E::custom)
                }
            }
            deserializer.deserialize_str(V)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "T145D18407A78523B35A030267671FA2C2F725402973629B25545EB43C3356679477F7FC";

    #[test]
    fn round_trip_and_forms() {
        let d = Digest::parse(BASE).unwrap();
        assert_eq!(d.to_string(), BASE);
        assert_eq!(d.to_legacy_hex(), &BASE[2..]);
        assert_eq!(format!("{d:?}"), format!("Digest({BASE})"));
        assert_eq!(d.checksum(), 84);
        assert_eq!(d.lvalue(), 29);
        assert_eq!((d.q1(), d.q2()), (8, 4));
        assert_eq!(BASE.parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn strict_errors_name_the_rule() {
        assert_eq!(Digest::parse(""), Err(ParseError::Empty));
        assert_eq!(Digest::parse("TNULL"), Err(ParseError::Null));
        let lower = format!("t1{}", &BASE[2..]);
        assert_eq!(Digest::parse(&lower), Err(ParseError::LowercasePrefix));
        let t2 = format!("T2{}", &BASE[2..]);
        assert_eq!(
            Digest::parse(&t2),
            Err(ParseError::UnsupportedVersion {
                prefix: "T2".into()
            })
        );
        assert_eq!(
            Digest::parse(&BASE[..71]),
            Err(ParseError::WrongLength { hex_digits: 69 })
        );
        assert_eq!(
            Digest::parse(&format!("{BASE}0")),
            Err(ParseError::WrongLength { hex_digits: 71 })
        );
        let mut inner = BASE.to_owned();
        inner.replace_range(40..41, "G");
        assert_eq!(
            Digest::parse(&inner),
            Err(ParseError::InvalidChar {
                offset: 40,
                found: 'G'
            })
        );
        assert_eq!(
            Digest::parse(&format!(" {BASE}")),
            Err(ParseError::InvalidChar {
                offset: 0,
                found: ' '
            })
        );
        for e in [
            ParseError::Empty,
            ParseError::WrongLength { hex_digits: 3 },
            ParseError::LowercasePrefix,
        ] {
            assert!(e.to_string().starts_with("not a TLSH digest"), "{e}");
        }
    }

    #[test]
    fn lenient_accepts_user_spellings_and_rejects_junk() {
        let d = Digest::parse(BASE).unwrap();
        for s in [
            BASE.to_owned(),
            format!("t1{}", &BASE[2..]),
            format!("  {BASE}\n"),
            BASE[2..].to_ascii_lowercase(),
            format!("\tt1{}  ", BASE[2..].to_ascii_lowercase()),
        ] {
            assert_eq!(Digest::parse_lenient(&s), Ok(d), "{s:?}");
        }
        assert_eq!(
            Digest::parse_lenient(&format!("{BASE}G")),
            Err(ParseError::TrailingText { offset: 72 })
        );
        assert_eq!(
            Digest::parse_lenient(&format!("{BASE}\tfile.apk")),
            Err(ParseError::TrailingText { offset: 72 })
        );
        assert_eq!(Digest::parse_lenient("   "), Err(ParseError::Empty));
        assert_eq!(Digest::parse_lenient("TNULL"), Err(ParseError::Null));
        assert_eq!(
            Digest::parse_lenient(&BASE[..70]),
            Err(ParseError::WrongLength { hex_digits: 68 })
        );
        assert!(Digest::parse_lenient(&format!("T0{}", &BASE[2..])).is_err());
        assert!(Digest::parse_lenient(&format!("{BASE}00")).is_err());
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "T",
            "T1",
            "t",
            "t1",
            "é",
            "T1é",
            "\u{0}",
            "T1\u{0}",
            "TTTT",
            "🦀🦀🦀",
        ] {
            assert!(Digest::parse(s).is_err());
            assert!(Digest::parse_lenient(s).is_err());
        }
    }
}
