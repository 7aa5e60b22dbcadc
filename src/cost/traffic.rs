//! The user's traffic over a day: the rate each hour, from which a month of
//! requests is costed the same way for instances and serverless.
//!
//! Given as `--traffic-profile peak-hours=4,off-peak-tps=5` (so many hours a
//! day at the peak, the rest at the off-peak rate) or as a CSV file of
//! requests per hour (`hour,requests`, 24 rows, a header allowed). Without
//! one, the peak all day long.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::HOURS_PER_MONTH;

/// Days in a month, as AWS's 730 hours count them.
pub const DAYS_PER_MONTH: f64 = HOURS_PER_MONTH / 24.0;

/// Requests per second in each hour of a day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficProfile {
    /// 24 rates, hour 0 first.
    pub hourly_tps: Vec<f64>,
    /// How it was given, for the report.
    pub description: String,
}

/// Why a traffic profile was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrafficError {
    #[error(
        "--traffic-profile `{0}`: use peak-hours=H,off-peak-tps=R (H from 0 to 24, R at least 0 and at most the peak) or a CSV file of requests per hour"
    )]
    Malformed(String),
    #[error("--traffic-profile {path}: {reason}; the file lists `hour,requests` for hours 0 to 23")]
    Csv { path: String, reason: String },
}

impl crate::error::HasKind for TrafficError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Usage
    }
}

impl TrafficProfile {
    /// The peak all day: what a fixed fleet sized for the peak is built for.
    pub fn peak_all_day(peak_tps: f64) -> TrafficProfile {
        TrafficProfile { hourly_tps: vec![peak_tps; 24], description: "the peak all day (no --traffic-profile)".into() }
    }

    /// `peak-hours=H,off-peak-tps=R`, or a path to a CSV file.
    pub fn parse(text: &str, peak_tps: f64) -> Result<TrafficProfile, TrafficError> {
        if text.contains('=') {
            return Self::from_pairs(text, peak_tps);
        }
        Self::from_csv(Path::new(text))
    }

    fn from_pairs(text: &str, peak_tps: f64) -> Result<TrafficProfile, TrafficError> {
        let malformed = || TrafficError::Malformed(text.to_string());
        let (mut hours, mut off_peak) = (None, None);
        for pair in text.split(',') {
            let (key, value) = pair.split_once('=').ok_or_else(malformed)?;
            let value: f64 = value.trim().parse().map_err(|_| malformed())?;
            match key.trim() {
                "peak-hours" if value.fract() == 0.0 && (0.0..=24.0).contains(&value) => hours = Some(value as usize),
                "off-peak-tps" if value.is_finite() && (0.0..=peak_tps).contains(&value) => off_peak = Some(value),
                _ => return Err(malformed()),
            }
        }
        let (Some(hours), Some(off_peak)) = (hours, off_peak) else { return Err(malformed()) };
        let hourly_tps = (0..24).map(|h| if h < hours { peak_tps } else { off_peak }).collect();
        let description = format!("{hours} h a day at the peak, {} TPS the rest", crate::format::trim_number(off_peak));
        Ok(TrafficProfile { hourly_tps, description })
    }

    fn from_csv(path: &Path) -> Result<TrafficProfile, TrafficError> {
        let fail = |reason: String| TrafficError::Csv { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let mut requests = [None; 24];
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let parsed =
                line.split_once(',').and_then(|(h, r)| Some((h.trim().parse::<usize>().ok()?, r.trim().parse::<f64>().ok()?)));
            match parsed {
                Some((hour, r)) if hour < 24 && r.is_finite() && r >= 0.0 && requests[hour].is_none() => requests[hour] = Some(r),
                Some(_) => return Err(fail(format!("line {} is out of range or repeats an hour: `{line}`", n + 1))),
                None if n == 0 => {} // a header
                None => return Err(fail(format!("line {} is not `hour,requests`: `{line}`", n + 1))),
            }
        }
        let hourly_tps = requests
            .iter()
            .enumerate()
            .map(|(hour, r)| r.map(|r| r / 3600.0).ok_or_else(|| fail(format!("hour {hour} is missing"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrafficProfile { hourly_tps, description: format!("requests per hour from {}", path.display()) })
    }

    /// Requests in a month of this profile.
    pub fn monthly_requests(&self) -> f64 {
        self.hourly_tps.iter().sum::<f64>() * 3600.0 * DAYS_PER_MONTH
    }

    /// The same shape, `factor` times the volume.
    pub fn scaled(&self, factor: f64) -> TrafficProfile {
        TrafficProfile { hourly_tps: self.hourly_tps.iter().map(|r| r * factor).collect(), description: self.description.clone() }
    }

    /// The highest hourly rate.
    pub fn busiest(&self) -> f64 {
        self.hourly_tps.iter().copied().fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_at_peak_and_an_off_peak_rate_make_a_day() {
        let day = TrafficProfile::parse("peak-hours=4,off-peak-tps=5", 50.0).unwrap();
        assert_eq!(day.hourly_tps.iter().filter(|r| **r == 50.0).count(), 4);
        let expected = (4.0 * 50.0 + 20.0 * 5.0) * 3600.0 * 730.0 / 24.0;
        assert!((day.monthly_requests() - expected).abs() < 1e-6);
        assert!((day.scaled(2.0).monthly_requests() - 2.0 * expected).abs() < 1e-6);
        for bad in [
            "peak-hours=25,off-peak-tps=5",
            "peak-hours=4",
            "peak-hours=4,off-peak-tps=60",
            "hours=4,off-peak-tps=1",
            "peak-hours=2.5,off-peak-tps=1",
        ] {
            assert!(matches!(TrafficProfile::parse(bad, 50.0), Err(TrafficError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn a_csv_gives_requests_per_hour() {
        let path = std::env::temp_dir().join(format!("perfsize-traffic-{}.csv", std::process::id()));
        let rows: String = (0..24).map(|h| format!("{h},{}\n", if h == 12 { 36_000 } else { 3600 })).collect();
        std::fs::write(&path, format!("hour,requests\n{rows}")).unwrap();
        let day = TrafficProfile::parse(path.to_str().unwrap(), 50.0).unwrap();
        assert_eq!(day.hourly_tps[12], 10.0);
        assert_eq!(day.busiest(), 10.0);
        std::fs::write(&path, "0,5\n1,5\n").unwrap();
        let err = TrafficProfile::parse(path.to_str().unwrap(), 50.0).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(err.contains("hour 2 is missing"), "{err}");
    }
}
