//! Whether a per-second series trends upward, decided by statistical tests
//! rather than by any single sample. Two tests, for the two ways a queue
//! shows: the Mann–Kendall test for a monotonic trend (rank-based, so a stall
//! of one second on a busy machine moves it little) and the t-test of the
//! least-squares slope (which sees a steady climb in as few as five points,
//! where ranks alone cannot reach significance). The size of the trend is the
//! Theil–Sen line: the median of the slopes between every pair of points, and
//! the median intercept under it — robust to the same outliers. One mechanism
//! for every series perfsize must see level: requests in flight during a load
//! step, the backlog of an asynchronous endpoint.

/// A series shorter than this says nothing about a trend.
pub const MIN_POINTS: usize = 5;

/// The trend of a series of equally spaced values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// Theil–Sen slope, in value units per step.
    pub slope: f64,
    /// The Theil–Sen line at the first and at the last point: where the
    /// series started and ended, outliers aside.
    pub first: f64,
    pub last: f64,
    /// Mann–Kendall statistic, normalised (about N(0, 1) for a level series).
    pub z: f64,
    /// The least-squares slope over its standard error.
    pub t: f64,
    pub points: usize,
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
        let slope = median(&mut slopes);
        let mut intercepts: Vec<f64> = values.iter().enumerate().map(|(k, v)| v - slope * k as f64).collect();
        let intercept = median(&mut intercepts);
        let n_f = n as f64;
        let variance = n_f * (n_f - 1.0) * (2.0 * n_f + 5.0) / 18.0;
        // The continuity correction moves S one step towards zero.
        let z = (s - s.signum()) as f64 / variance.sqrt();
        Some(Trend { slope, first: intercept, last: intercept + slope * (n_f - 1.0), z, t: slope_t(values), points: n })
    }

    /// Rising beyond what chance explains: either test significant at about
    /// one chance in a hundred, and the robust slope upward.
    pub fn rises(&self) -> bool {
        self.slope > 0.0 && (self.z > MANN_KENDALL_Z || self.t > t_critical(self.points - 2))
    }
}

/// Mann–Kendall z for about one chance in sixty: five points that all rise
/// (z 2.2) reach it.
const MANN_KENDALL_Z: f64 = 2.1;

/// The least-squares slope of `values` against their index, over its
/// standard error (infinite for points exactly on a rising line).
fn slope_t(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = values.iter().sum::<f64>() / n;
    let sxx: f64 = (0..values.len()).map(|k| (k as f64 - mean_x).powi(2)).sum();
    let sxy: f64 = values.iter().enumerate().map(|(k, y)| (k as f64 - mean_x) * (y - mean_y)).sum();
    let b = sxy / sxx;
    let residual: f64 = values.iter().enumerate().map(|(k, y)| (y - mean_y - b * (k as f64 - mean_x)).powi(2)).sum();
    let standard_error = (residual / (n - 2.0) / sxx).sqrt();
    if standard_error > 0.0 {
        b / standard_error
    } else if b > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

/// Student's t, one-sided, for one chance in two hundred, by degrees of freedom.
fn t_critical(dof: usize) -> f64 {
    const TABLE: [f64; 10] = [63.66, 9.925, 5.841, 4.604, 4.032, 3.707, 3.499, 3.355, 3.250, 3.169];
    match dof {
        0 => f64::INFINITY,
        1..=10 => TABLE[dof - 1],
        11..=15 => 2.947,
        16..=20 => 2.845,
        21..=30 => 2.750,
        _ => 2.576,
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
        assert!(trend.rises(), "{trend:?}");
        assert!((trend.slope - 6.6).abs() < 0.5, "{trend:?}");
        assert!(trend.last > trend.first + 40.0);
    }

    #[test]
    fn a_level_series_does_not_rise_however_noisy() {
        for n in [5, 10, 30, 120] {
            let trend = Trend::of(&level(100.0, n)).unwrap();
            assert!(!trend.rises(), "{n} points: {trend:?}");
        }
    }

    #[test]
    fn one_stalled_second_is_not_a_trend() {
        let mut series = level(10.0, 10);
        series[4] = 80.0;
        let trend = Trend::of(&series).unwrap();
        assert!(!trend.rises(), "{trend:?}");
        assert!(trend.slope.abs() < 1.0, "the slope ignores the outlier: {trend:?}");
    }

    #[test]
    fn a_falling_series_does_not_rise() {
        let falling: Vec<f64> = (0..10).map(|i| 100.0 - 5.0 * i as f64).collect();
        let trend = Trend::of(&falling).unwrap();
        assert!(trend.z < -3.0 && !trend.rises());
    }

    #[test]
    fn five_seconds_of_a_queue_that_climbs_with_one_dip_are_a_trend() {
        // An overloaded instance seen for five seconds; the last second dips.
        let trend = Trend::of(&[0.28, 0.37, 0.52, 0.64, 0.63]).unwrap();
        assert!(trend.z < MANN_KENDALL_Z, "ranks alone cannot tell: {trend:?}");
        assert!(trend.rises(), "{trend:?}");
        assert!(trend.last - trend.first > 0.3, "{trend:?}");
    }

    #[test]
    fn a_spike_in_the_last_second_is_not_a_trend() {
        let mut series = level(10.0, 10);
        series[9] = 60.0;
        let trend = Trend::of(&series).unwrap();
        assert!(trend.last - trend.first < 5.0, "the robust line ignores it: {trend:?}");
    }

    #[test]
    fn too_short_a_series_says_nothing() {
        assert_eq!(Trend::of(&[1.0, 2.0, 3.0, 4.0]), None);
    }
}
