//! The false-positive and detection rates that the TLSH paper measured for each distance
//! cutoff, cited as data.
//!
//! Source: J. Oliver, C. Cheng, Y. Chen, "TLSH – A Locality Sensitive Hash", 4th Cybercrime
//! and Trustworthy Computing Workshop (CTC 2013), Table II (`TLSH_CTC_final.pdf` in
//! trendmicro/tlsh); 8,766 similar and 55,822 dissimilar file pairs. Copied from
//! `shared/guides/ANCHORS.md` §1.3. The paper's rows are for **distance < T**, which is
//! exactly apksift's match rule, so a cutoff that is a row of the table gets its rates
//! exactly; any other cutoff gets the rows around it as bounds.

use serde::Serialize;

/// Where the rates come from.
pub const SOURCE: &str = "Oliver, Cheng, Chen: TLSH - A Locality Sensitive Hash (CTC 2013), \
Table II: 8,766 similar + 55,822 dissimilar file pairs (trendmicro/tlsh TLSH_CTC_final.pdf)";

/// One row of the paper's table: pairs at distance `< cutoff`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RateRow {
    /// The table's threshold T (pairs with distance < T count as matches).
    pub cutoff: u32,
    /// Share of dissimilar pairs matched, in percent.
    pub fp_rate_percent: f64,
    /// Share of similar pairs matched, in percent.
    pub detection_rate_percent: f64,
}

const fn row(cutoff: u32, fp: f64, det: f64) -> RateRow {
    RateRow {
        cutoff,
        fp_rate_percent: fp,
        detection_rate_percent: det,
    }
}

/// The paper's table (ANCHORS §1.3).
pub const TABLE: [RateRow; 13] = [
    row(10, 0.00181, 6.4),
    row(20, 0.00181, 17.3),
    row(30, 0.00181, 32.2),
    row(40, 0.07, 49.6),
    row(50, 0.52, 65.3),
    row(60, 1.09, 76.0),
    row(70, 1.84, 83.6),
    row(80, 2.93, 89.0),
    row(90, 4.49, 92.3),
    row(100, 6.43, 94.5),
    row(150, 24.33, 98.1),
    row(200, 50.10, 98.8),
    row(300, 79.30, 98.8),
];

/// The paper's rates for a cutoff (match rule `distance < cutoff`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaperRates {
    /// The cutoff asked about.
    pub cutoff: u32,
    /// The cutoff is a row of the table: `fp_rate_percent` and `detection_rate_percent` are
    /// the measured values. Otherwise they are bounds from the neighbouring rows.
    pub exact: bool,
    /// False-positive rate in percent: measured (exact) or an upper bound (the next row
    /// above the cutoff). `None` above the last row (300).
    pub fp_rate_percent: Option<f64>,
    /// Detection rate in percent: measured (exact) or a lower bound (the row below the
    /// cutoff). `None` below the first row (10).
    pub detection_rate_percent: Option<f64>,
    /// The row the false-positive figure comes from.
    pub fp_row: Option<u32>,
    /// The row the detection figure comes from.
    pub detection_row: Option<u32>,
    /// Citation.
    pub source: &'static str,
}

/// Looks up the rates of `cutoff`.
pub fn for_cutoff(cutoff: u32) -> PaperRates {
    if let Some(r) = TABLE.iter().find(|r| r.cutoff == cutoff) {
        return PaperRates {
            cutoff,
            exact: true,
            fp_rate_percent: Some(r.fp_rate_percent),
            detection_rate_percent: Some(r.detection_rate_percent),
            fp_row: Some(r.cutoff),
            detection_row: Some(r.cutoff),
            source: SOURCE,
        };
    }
    // Fewer pairs match at a smaller cutoff: FP(<c) <= FP(next row up), detection(<c) >=
    // detection(row below).
    let above = TABLE.iter().find(|r| r.cutoff > cutoff);
    let below = TABLE.iter().rev().find(|r| r.cutoff < cutoff);
    PaperRates {
        cutoff,
        exact: false,
        fp_rate_percent: above.map(|r| r.fp_rate_percent),
        detection_rate_percent: below.map(|r| r.detection_rate_percent),
        fp_row: above.map(|r| r.cutoff),
        detection_row: below.map(|r| r.cutoff),
        source: SOURCE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_are_exact() {
        let r = for_cutoff(50);
        assert!(r.exact);
        assert_eq!(r.fp_rate_percent, Some(0.52));
        assert_eq!(r.detection_rate_percent, Some(65.3));
        let r = for_cutoff(30);
        assert_eq!(r.fp_rate_percent, Some(0.00181));
        assert_eq!(r.detection_rate_percent, Some(32.2));
        let r = for_cutoff(100);
        assert_eq!(r.fp_rate_percent, Some(6.43));
        assert_eq!(r.detection_rate_percent, Some(94.5));
    }

    #[test]
    fn other_cutoffs_get_bounds() {
        let r = for_cutoff(45);
        assert!(!r.exact);
        assert_eq!(r.fp_rate_percent, Some(0.52));
        assert_eq!(r.fp_row, Some(50));
        assert_eq!(r.detection_rate_percent, Some(49.6));
        assert_eq!(r.detection_row, Some(40));
        let r = for_cutoff(5);
        assert_eq!(r.detection_rate_percent, None);
        assert_eq!(r.fp_rate_percent, Some(0.00181));
        let r = for_cutoff(400);
        assert_eq!(r.fp_rate_percent, None);
        assert_eq!(r.detection_rate_percent, Some(98.8));
    }
}
