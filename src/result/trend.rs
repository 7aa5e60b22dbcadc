//! Whether a per-second series trends upward, decided by a statistical test
//! rather than by any single sample: the Mann–Kendall test for a monotonic
//! trend, with the Theil–Sen slope for its size. Both are rank-based, so a
//! stall of one second on a busy machine moves them little. One mechanism for
//! every series perfsize must see level: requests in flight during a load
//! step, the backlog of an asynchronous endpoint.

/// A series shorter than this says nothing about a trend.
pub const MIN_POINTS: usize = 5;

/// The trend of a series of equally spaced values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// Theil–Sen slope: the median of the slopes between every pair of
    /// points, in value units per step.
    pub slope: f64,
    /// Mann–Kendall statistic, normalised: above 3 is a rising trend that
    /// chance alone would produce about once in a thousand series.
    pub z: f64,
    /// Median of the first and of the last third of the series.
    pub first: f64,
    pub last: f64,
}

impl Trend {
    /// The trend of `values`, or None for fewer than [`MIN_POINTS`] values.
    pub fn of(values: &[f64]) -> Option<Trend> {
        let n = values.len();
        if n < MIN_POINTS {
            return None;
        }
        let mut slopes = Vec::with_capacity(n * (n - 1) / 2);
        let mut s = 0i64;
        for i in 0..n {
            for j in i + 1..n {
                let rise = values[j] - values[i];
                slopes.push(rise / (j - i) as f64);
                s += (rise > 0.0) as i64 - (rise < 0.0) as i64;
            }
        }
        let n_f = n as f64;
        let variance = n_f * (n_f - 1.0) * (2.0 * n_f + 5.0) / 18.0;
        // The continuity correction moves S one step towards zero.
        let z = (s - s.signum()) as f64 / variance.sqrt();
        let third = (n / 3).max(1);
        Some(Trend {
            slope: median(&mut slopes),
            z,
            first: median(&mut values[..third].to_vec()),
            last: median(&mut values[n - third..].to_vec()),
        })
    }

    /// Rising beyond what chance explains (z above `z_limit`).
    pub fn rises(&self, z_limit: f64) -> bool {
        self.z > z_limit && self.slope > 0.0
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic, noisy but level series around `level`.
    fn level(level: f64, n: usize) -> Vec<f64> {
        (0..n).map(|i| level + [3.0, -2.0, 4.0, -3.0, 1.0, -4.0, 2.0, 0.0, -1.0][i % 9]).collect()
    }

    #[test]
    fn a_steady_climb_is_a_trend_of_its_own_slope() {
        let climbing: Vec<f64> = (0..10).map(|i| 12.0 + 6.6 * i as f64 + [0.5, -0.8, 0.3][i % 3]).collect();
        let trend = Trend::of(&climbing).unwrap();
        assert!(trend.rises(3.0), "{trend:?}");
        assert!((trend.slope - 6.6).abs() < 0.5, "{trend:?}");
        assert!(trend.last > trend.first + 40.0);
    }

    #[test]
    fn a_level_series_does_not_rise_however_noisy() {
        for n in [5, 10, 30, 120] {
            let trend = Trend::of(&level(100.0, n)).unwrap();
            assert!(!trend.rises(3.0), "{n} points: {trend:?}");
        }
    }

    #[test]
    fn one_stalled_second_is_not_a_trend() {
        let mut series = level(10.0, 10);
        series[4] = 80.0;
        let trend = Trend::of(&series).unwrap();
        assert!(!trend.rises(3.0), "{trend:?}");
        assert!(trend.slope.abs() < 1.0, "the slope ignores the outlier: {trend:?}");
    }

    #[test]
    fn a_falling_series_does_not_rise() {
        let falling: Vec<f64> = (0..10).map(|i| 100.0 - 5.0 * i as f64).collect();
        let trend = Trend::of(&falling).unwrap();
        assert!(trend.z < -3.0 && !trend.rises(3.0));
    }

    #[test]
    fn too_short_a_series_says_nothing() {
        assert_eq!(Trend::of(&[1.0, 2.0, 3.0, 4.0]), None);
    }
}
