//! How far a row's measurement can be trusted: the spread over seeds of a `mean(...)` row,
//! or a 95% binomial interval for one rate measured on a set of examples (an error rate, or
//! an agreement or rubbish rate, over the node's `examples`).
//!
//! An error rate on `n` test examples is a binomial proportion: the Wilson score interval
//! (Wilson 1927) keeps its coverage near 95% even at rates close to 0 or 1, where the normal
//! approximation's interval leaves [0, 1] or collapses to a point (0 errors).

use serde::Serialize;

/// `z` for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// A row's uncertainty.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Spread {
    /// Over the values a `mean(...)` row averages (one per seed): their sample standard
    /// deviation and their range.
    Seeds {
        /// Sample standard deviation (n - 1 in the denominator).
        sd: f64,
        /// The smallest value.
        min: f64,
        /// The largest value.
        max: f64,
    },
    /// A 95% Wilson score interval for an error rate measured on `n` examples.
    Binomial {
        /// Examples the rate was measured on.
        n: usize,
        /// Lower end.
        low: f64,
        /// Upper end.
        high: f64,
    },
}

impl Spread {
    /// The spread of `samples` (at least two).
    pub fn of_seeds(samples: &[f64]) -> Option<Spread> {
        if samples.len() < 2 {
            return None;
        }
        let n = samples.len() as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let var = samples.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        Some(Spread::Seeds {
            sd: var.sqrt(),
            min: samples.iter().copied().fold(f64::INFINITY, f64::min),
            max: samples.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }

    /// The 95% Wilson interval of a rate `p` measured on `n` examples.
    pub fn binomial(p: f64, n: usize) -> Option<Spread> {
        if n == 0 || !(0.0..=1.0).contains(&p) {
            return None;
        }
        let nf = n as f64;
        let z2 = Z95 * Z95;
        let centre = (p + z2 / (2.0 * nf)) / (1.0 + z2 / nf);
        let half = Z95 / (1.0 + z2 / nf) * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt();
        Some(Spread::Binomial {
            n,
            low: (centre - half).max(0.0),
            high: (centre + half).min(1.0),
        })
    }

    /// The interval it spans: the seeds' range, or the binomial interval.
    pub fn bounds(&self) -> (f64, f64) {
        match *self {
            Spread::Seeds { min, max, .. } => (min, max),
            Spread::Binomial { low, high, .. } => (low, high),
        }
    }

    /// Whether `value` lies inside [`Spread::bounds`].
    pub fn contains(&self, value: f64) -> bool {
        let (lo, hi) = self.bounds();
        lo - 1e-12 <= value && value <= hi + 1e-12
    }

    /// What the bounds are called in a verdict.
    pub fn name(&self) -> &'static str {
        match self {
            Spread::Seeds { .. } => "the seeds' range",
            Spread::Binomial { .. } => "the 95% interval",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(s: Option<Spread>) -> (f64, f64) {
        s.unwrap().bounds()
    }

    #[test]
    fn wilson_intervals_match_published_values() {
        // Newcombe (1998), table I: 81 of 263 -> 0.2553 to 0.3662; 0 of 10 -> 0 to 0.2775.
        let (lo, hi) = bounds(Spread::binomial(81.0 / 263.0, 263));
        assert!((lo - 0.2553).abs() < 1e-4 && (hi - 0.3662).abs() < 1e-4, "{lo} {hi}");
        let (lo, hi) = bounds(Spread::binomial(0.0, 10));
        assert!(lo == 0.0 && (hi - 0.2775).abs() < 1e-4, "{lo} {hi}");
        // 94 mistakes in 10,000 (the maxout recipe's result): about 0.77% to 1.15%.
        let (lo, hi) = bounds(Spread::binomial(0.0094, 10_000));
        assert!((lo - 0.00768).abs() < 5e-5 && (hi - 0.01150).abs() < 5e-5, "{lo} {hi}");
        assert_eq!(Spread::binomial(0.5, 0), None);
    }

    #[test]
    fn seeds_give_the_sample_standard_deviation_and_range() {
        let Some(Spread::Seeds { sd, min, max }) = Spread::of_seeds(&[0.1, 0.2, 0.3]) else {
            panic!()
        };
        assert!((sd - 0.1).abs() < 1e-12);
        assert_eq!((min, max), (0.1, 0.3));
        assert_eq!(Spread::of_seeds(&[0.1]), None);
        let s = Spread::of_seeds(&[0.1, 0.3]).unwrap();
        assert!(s.contains(0.2) && s.contains(0.1) && !s.contains(0.31));
    }
}
