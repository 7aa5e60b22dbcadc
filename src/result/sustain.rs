//! Whether a step's rate could be held indefinitely. An endpoint that keeps
//! up answers as many requests as arrive, so the work in flight stays level;
//! one that does not builds a queue that grows for as long as the load lasts,
//! and a short step only passes because it ended first. The test is on the
//! measured window's per-second series: the seconds of work in flight
//! (requests in flight ÷ the rate, by Little's law, so that a ramp does not
//! look like a queue) must not trend upward beyond what chance explains, nor
//! by more than noise on a busy machine could add.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::trend::Trend;
use crate::load::SecondStats;

/// A rising trend (see [`Trend::rises`]) must grow the work in flight by at
/// least this share of where it started,
const MIN_RELATIVE_GROWTH: f64 = 0.5;
/// ... and by at least this many requests.
const MIN_GROWTH_REQUESTS: f64 = 5.0;
/// The climb starts where the work in flight passes this share of its growth.
const ONSET_SHARE: f64 = 0.25;

/// What the measured window says about holding its rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stationarity {
    /// The work in flight stayed level: the rate is sustainable.
    pub stationary: bool,
    /// Seconds judged.
    pub seconds: u32,
    /// Requests in flight at the start and at the end of the window
    /// (the robust line through the series, at its ends).
    pub in_flight_from: f64,
    pub in_flight_to: f64,
    /// How fast the work in flight grew: seconds of waiting added per second.
    pub backlog_growth: f64,
    /// The two tests of a rising trend in the work in flight: Mann–Kendall z
    /// and the least-squares slope's t.
    pub z: f64,
    pub t: f64,
    /// Per-second median latency, at the end of the window over its start.
    pub latency_ratio: Option<f64>,
    /// The second (from the schedule start) from which the work in flight
    /// stayed above where it started: where the queue began to build.
    pub onset_second: Option<u32>,
}

impl Stationarity {
    /// Judges the seconds of `series` that lie wholly in the measured window,
    /// `[from, to)` seconds after the schedule started; None when the window
    /// is too short to tell (fewer than five whole seconds).
    pub fn assess(series: &[SecondStats], from: Duration, to: Duration) -> Option<Stationarity> {
        let window: Vec<&SecondStats> = series
            .iter()
            .filter(|r| r.second as f64 >= from.as_secs_f64() && (r.second + 1) as f64 <= to.as_secs_f64() + 1e-9)
            .filter(|r| r.offered > 0)
            .collect();
        let work: Vec<f64> = window.iter().map(|r| r.in_flight as f64 / r.offered as f64).collect();
        let in_flight: Vec<f64> = window.iter().map(|r| r.in_flight as f64).collect();
        let (work_trend, requests) = (Trend::of(&work)?, Trend::of(&in_flight)?);
        let growth = work_trend.last - work_trend.first;
        let stationary = !(work_trend.rises()
            && growth >= MIN_RELATIVE_GROWTH * work_trend.first
            && requests.last - requests.first >= MIN_GROWTH_REQUESTS);
        let onset = (!stationary).then(|| {
            let mark = work_trend.first + ONSET_SHARE * growth;
            let last_below = work.iter().rposition(|w| *w < mark);
            window[last_below.map_or(0, |i| (i + 1).min(window.len() - 1))].second
        });
        let latencies: Vec<f64> = window.iter().filter_map(|r| r.p50_ms).collect();
        let latency_ratio = Trend::of(&latencies).filter(|t| t.first > 0.0).map(|t| (t.last / t.first).max(0.0));
        Some(Stationarity {
            stationary,
            seconds: window.len() as u32,
            // The fitted line may start below zero; requests in flight cannot.
            in_flight_from: requests.first.max(0.0),
            in_flight_to: requests.last.max(0.0),
            backlog_growth: work_trend.slope.max(0.0),
            z: work_trend.z,
            t: work_trend.t,
            latency_ratio,
            onset_second: onset,
        })
    }

    /// Latency after `horizon` more at this rate, from `now_ms`: each second
    /// adds `backlog_growth` seconds of waiting.
    pub fn projected_latency_ms(&self, now_ms: f64, horizon: Duration) -> f64 {
        now_ms + self.backlog_growth * horizon.as_secs_f64() * 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A series of `n` seconds at `rate`, whose in-flight count and median
    /// latency each second come from `shape`.
    fn series(n: u32, rate: u64, shape: impl Fn(u32) -> (u64, f64)) -> Vec<SecondStats> {
        (0..n)
            .map(|second| {
                let (in_flight, p50) = shape(second);
                SecondStats {
                    second,
                    warmup: second < 1,
                    offered: rate,
                    completed: rate,
                    errors: 0,
                    server_errors: 0,
                    in_flight,
                    p50_ms: Some(p50),
                    p99_ms: Some(p50 * 1.3),
                }
            })
            .collect()
    }

    const WINDOW: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(11));

    #[test]
    fn a_queue_that_grows_through_the_step_is_not_sustainable() {
        // 5 % over a capacity of 126/s: the queue gains about 6.6 requests a second.
        let rows = series(12, 132, |s| (12 + (s as f64 * 6.6) as u64 + [0, 2, 1][s as usize % 3], 95.0 + 50.0 * s as f64));
        let judged = Stationarity::assess(&rows, WINDOW.0, WINDOW.1).unwrap();
        assert!(!judged.stationary, "{judged:?}");
        assert_eq!(judged.seconds, 10, "whole seconds after the warm-up, none after the schedule");
        assert!(judged.in_flight_to > judged.in_flight_from + 40.0, "{judged:?}");
        assert!(judged.latency_ratio.unwrap() > 2.0, "{judged:?}");
        assert!(judged.onset_second.is_some_and(|s| s <= 4), "{judged:?}");
        // 6.6 requests a second at 132/s is 0.05 s of waiting added each second.
        let projected = judged.projected_latency_ms(600.0, Duration::from_secs(600));
        assert!((25_000.0..35_000.0).contains(&projected), "{projected}");
    }

    #[test]
    fn a_level_queue_is_sustainable_however_noisy() {
        let noise = [3, 0, 5, 1, 7, 2, 0, 4, 6, 1, 3, 2];
        let rows = series(12, 107, |s| (9 + noise[s as usize], 95.0 + noise[s as usize] as f64));
        let judged = Stationarity::assess(&rows, WINDOW.0, WINDOW.1).unwrap();
        assert!(judged.stationary, "{judged:?}");
        assert_eq!(judged.onset_second, None);
    }

    #[test]
    fn a_stall_the_endpoint_recovers_from_is_sustainable() {
        let rows = series(12, 100, |s| if s == 5 { (90, 900.0) } else { (10, 20.0) });
        assert!(Stationarity::assess(&rows, WINDOW.0, WINDOW.1).unwrap().stationary);
    }

    #[test]
    fn a_slow_drift_of_a_few_requests_is_noise_not_a_queue() {
        // Rising every second, but by three requests in all: no queue to speak of.
        let rows = series(12, 2, |s| (s as u64 / 4, 500.0));
        assert!(Stationarity::assess(&rows, WINDOW.0, WINDOW.1).unwrap().stationary);
    }

    #[test]
    fn a_ramp_is_not_a_queue() {
        // The rate climbs from 10 to 120 /s with 100 ms answers: in flight
        // climbs with it, the seconds of work in flight do not.
        let rows: Vec<SecondStats> = (0..12u32)
            .map(|second| {
                let rate = 10 + 10 * second as u64;
                SecondStats {
                    second,
                    warmup: false,
                    offered: rate,
                    completed: rate,
                    errors: 0,
                    server_errors: 0,
                    in_flight: rate / 10 + (second as u64 % 2),
                    p50_ms: Some(100.0),
                    p99_ms: Some(120.0),
                }
            })
            .collect();
        assert!(Stationarity::assess(&rows, Duration::ZERO, Duration::from_secs(12)).unwrap().stationary);
    }

    #[test]
    fn a_window_of_a_few_seconds_is_not_judged() {
        let rows = series(5, 100, |_| (10, 20.0));
        assert_eq!(Stationarity::assess(&rows, Duration::from_secs(1), Duration::from_secs(5)), None);
    }
}
