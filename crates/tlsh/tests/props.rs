//! Property tests: streaming equals one-shot for any chunking, text round trips, distance laws.

use apksift_tlsh::{Digest, Hasher, Options, hash, hash_with_options};
use proptest::prelude::*;

/// Split `data` at the given cut lengths (cycled), never producing empty chunks past the end.
fn chunks<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    for &c in cuts.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (a, b) = rest.split_at(c.min(rest.len()));
        out.push(a);
        rest = b;
    }
    out
}

/// Input with enough variety for a digest most of the time, but also low-variety cases.
fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..3000),
        proptest::collection::vec(0u8..4, 0..3000),
        proptest::collection::vec(b'a'..=b'z', 40..600),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn streaming_equals_one_shot(
        data in input(),
        first in proptest::collection::vec(0usize..5, 0..4),
        cuts in proptest::collection::vec(1usize..700, 1..8),
        conservative in any::<bool>(),
    ) {
        let options = Options { conservative };
        let want = hash_with_options(&data, options);
        let mut h = Hasher::with_options(options);
        // First chunks of 0..4 bytes (the C++ core's trendmicro/tlsh#151 quirk), then the rest.
        let mut rest: &[u8] = &data;
        for n in first {
            let (a, b) = rest.split_at(n.min(rest.len()));
            h.update(a);
            rest = b;
        }
        for c in chunks(rest, &cuts) {
            h.update(c);
        }
        prop_assert_eq!(h.len(), data.len() as u64);
        prop_assert_eq!(h.finish(), want);
        // finish() does not consume: more input continues the same stream.
        h.update(b"tail");
        prop_assert_eq!(h.finalize(), hash_with_options(&[&data[..], b"tail"].concat(), options));
    }

    #[test]
    fn display_parse_round_trip(bytes in proptest::array::uniform32(any::<u8>()), head in any::<[u8; 3]>()) {
        let mut rec = [0u8; 35];
        rec[..3].copy_from_slice(&head);
        rec[3..].copy_from_slice(&bytes);
        let d = Digest::from_bytes(rec);
        let s = d.to_string();
        prop_assert_eq!(s.len(), 72);
        prop_assert!(s.starts_with("T1"));
        prop_assert_eq!(Digest::parse(&s), Ok(d));
        prop_assert_eq!(Digest::parse_lenient(&s.to_lowercase()), Ok(d));
        prop_assert_eq!(Digest::parse(&d.to_legacy_hex()), Ok(d));
        prop_assert_eq!(s.parse::<Digest>(), Ok(d));
    }

    #[test]
    fn distance_symmetric_and_zero_on_self(a in any::<[u8; 35]>(), b in any::<[u8; 35]>()) {
        let (x, y) = (Digest::from_bytes(a), Digest::from_bytes(b));
        for len in [true, false] {
            prop_assert_eq!(x.distance(&x, len), 0);
            prop_assert_eq!(x.distance(&y, len), y.distance(&x, len));
            let max = if len { 2473 } else { 937 };
            prop_assert!(x.distance(&y, len) <= max);
        }
        prop_assert_eq!(
            x.distance(&y, true) - x.distance(&y, false),
            apksift_tlsh::l_cost(x.lvalue(), y.lvalue())
        );
    }

    #[test]
    fn parsers_never_panic(s in ".{0,90}") {
        let strict = Digest::parse(&s);
        let lenient = Digest::parse_lenient(&s);
        if let Ok(d) = &strict {
            prop_assert!(s.len() >= 70);
            prop_assert_eq!(Digest::parse(&d.to_string()), Ok(*d));
        }
        if let Err(e) = &lenient {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn hash_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        match hash(&data) {
            Ok(d) => prop_assert!(data.len() >= 50 && d.lvalue() >= 9),
            Err(e) => prop_assert!(!e.reason().is_empty()),
        }
    }
}
