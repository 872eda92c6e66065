//! Order statistics over timing samples.

/// The value below which `p` percent of `sorted` lies, interpolating
/// linearly between the two nearest ranks (numpy's default, "linear").
///
/// `sorted` must be sorted ascending and not empty; `p` is clamped to
/// 0..=100.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of no samples");
    let p = p.clamp(0.0, 100.0);
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let frac = rank - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// Median, p10 and p90 of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The 50th percentile.
    pub median: f64,
    /// The 10th percentile.
    pub p10: f64,
    /// The 90th percentile.
    pub p90: f64,
    /// How many samples.
    pub n: usize,
}

impl Summary {
    /// Summarises `samples` (any order; must not be empty or contain NaN).
    pub fn of(samples: &[f64]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Self {
            median: percentile(&sorted, 50.0),
            p10: percentile(&sorted, 10.0),
            p90: percentile(&sorted, 90.0),
            n: sorted.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.5);
        assert_eq!(percentile(&[7.0], 50.0), 7.0);
    }

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let v: Vec<f64> = (0..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 10.0), 1.0);
        assert_eq!(percentile(&v, 90.0), 9.0);
        assert_eq!(percentile(&v, 0.0), 0.0);
        assert_eq!(percentile(&v, 100.0), 10.0);
        assert!((percentile(&[10.0, 20.0], 25.0) - 12.5).abs() < 1e-12);
        // Out-of-range p is clamped.
        assert_eq!(percentile(&v, 150.0), 10.0);
        assert_eq!(percentile(&v, -5.0), 0.0);
    }

    #[test]
    fn summary_sorts_its_input() {
        let s = Summary::of(&[9.0, 1.0, 5.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0, 10.0, 0.0]);
        assert_eq!(s.median, 5.0);
        assert_eq!(s.p10, 1.0);
        assert_eq!(s.p90, 9.0);
        assert_eq!(s.n, 11);
    }

    #[test]
    #[should_panic(expected = "no samples")]
    fn percentile_of_nothing_panics() {
        percentile(&[], 50.0);
    }
}
