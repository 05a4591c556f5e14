//! Binary codes of TLSH records, byte-identical to the peer benchmark's
//! `tlshfmt.py` (`thermo_codes`, `raw_codes`), so that apksift and Faiss
//! search the same bytes.
//!
//! * raw: the 32 body bytes as they are (256 bits).
//! * thermometer: each 2-bit bucket value v becomes 3 bits with v ones,
//!   `(1 << v) - 1`; body byte j gives 12 bits `g(4j) g(4j+1) g(4j+2) g(4j+3)`
//!   (MSB first), and two consecutive body bytes (24 bits) give 3 code bytes,
//!   big-endian (384 bits). Hamming(thermo a, thermo b) = Σ|va − vb|.

use apksift_tlsh::DIGEST_LEN;

/// Code kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Enc {
    /// 384-bit thermometer code.
    Thermo,
    /// 256 raw body bits.
    Raw,
}

impl Enc {
    /// Bytes per code.
    pub fn width(self) -> usize {
        match self {
            Enc::Thermo => 48,
            Enc::Raw => 32,
        }
    }

    /// Name as the peer scripts spell it.
    pub fn name(self) -> &'static str {
        match self {
            Enc::Thermo => "thermo",
            Enc::Raw => "raw",
        }
    }

    /// Codes of every record in `recs` (n × 35 bytes).
    pub fn encode(self, recs: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(recs.len() / DIGEST_LEN * self.width());
        for r in recs.chunks_exact(DIGEST_LEN) {
            match self {
                Enc::Raw => out.extend_from_slice(&r[3..]),
                Enc::Thermo => thermo_into(r, &mut out),
            }
        }
        out
    }
}

fn thermo12(byte: u8) -> u32 {
    let mut v = 0u32;
    for k in 0..4 {
        let c = (byte >> (6 - 2 * k)) & 3;
        v = (v << 3) | ((1u32 << c) - 1);
    }
    v
}

fn thermo_into(rec: &[u8], out: &mut Vec<u8>) {
    for pair in rec[3..].chunks_exact(2) {
        let p = (thermo12(pair[0]) << 12) | thermo12(pair[1]);
        out.extend_from_slice(&[(p >> 16) as u8, (p >> 8) as u8, p as u8]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Expected code computed by `tlshfmt.thermo_codes` (Python) on the first
    /// query of bench/data/ours/n1m.
    #[test]
    fn thermo_matches_tlshfmt() {
        let rec = unhex("9bd4f1316a80c029f9f726f45dfa6378a5197af54b34600b67d51eee07346e9ec21b96");
        let want = unhex(
            "1c12db600e000d9fd9fcf0cbfc8279fdb2c73d86c90593dbfc921f1c82c001f2cfe4907befb00f1c82fb67be0305f64b",
        );
        assert_eq!(Enc::Thermo.encode(&rec), want);
        assert_eq!(Enc::Raw.encode(&rec), rec[3..].to_vec());
    }

    #[test]
    fn thermo_hamming_is_bucket_l1() {
        let a = unhex("9bd4f1316a80c029f9f726f45dfa6378a5197af54b34600b67d51eee07346e9ec21b96");
        let mut b = a.clone();
        for (i, x) in b.iter_mut().enumerate().skip(3) {
            *x = x.wrapping_mul(31).wrapping_add(i as u8);
        }
        let (ta, tb) = (Enc::Thermo.encode(&a), Enc::Thermo.encode(&b));
        let ham: u32 = ta.iter().zip(&tb).map(|(x, y)| (x ^ y).count_ones()).sum();
        let l1: u32 = (0..128)
            .map(|k| {
                let va = (a[3 + k / 4] >> (6 - 2 * (k % 4))) & 3;
                let vb = (b[3 + k / 4] >> (6 - 2 * (k % 4))) & 3;
                u32::from(va.abs_diff(vb))
            })
            .sum();
        assert_eq!(ham, l1);
    }
}
