//! Whether a step was *disturbed*: its endpoint failed for a while and then
//! recovered (an instance replaced, the endpoint briefly out of service, a
//! burst of 5xx or reset connections) — a fault of that moment, not of the
//! rate under test, so the step says so and the sizing run measures it again.
//!
//! The rule reads only the step's own per-second record, which every kind of
//! target has (a SageMaker endpoint, a `--url`, a shard), and which sees what
//! SageMaker's DescribeEndpoint does not: an instance replaced behind an
//! endpoint that stays InService. A step is disturbed when all of these hold
//! in its measured window:
//!
//! 1. it failed its error budget (otherwise nothing is in doubt);
//! 2. its *faulty* seconds — more server failures (5xx answers, broken
//!    connections) than the budget allows that second — lie in one burst
//!    (from the first faulty second to the last) no longer than
//!    [`MAX_BURST_SHARE`] of the window;
//! 3. at least [`RECOVERY_SECONDS`] *clean* seconds (answers, errors within
//!    the budget) follow the burst: the endpoint recovered, the fault was
//!    transient;
//! 4. outside the burst the step meets its error budget.
//!
//! An endpoint that is simply overloaded fails differently, and is never
//! flagged: its errors start when its queues fill and go on to the end of the
//! step (no recovery), or come and go all through it (no short burst); and at
//! a higher rate there are more of them. Errors the endpoint *answered* about
//! the request or the model (4xx: ModelError, throttling, validation) are no
//! disturbance either. What the rule cannot see: a fault that lasts to the end
//! of the step looks like a queue that filled, and is judged as measured.

use serde::{Deserialize, Serialize};

use crate::load::SecondStats;
use crate::vocab::Requirements;

/// The longest a burst may be, as a share of the measured window: beyond
/// it the errors are the step's, not a moment's.
pub const MAX_BURST_SHARE: f64 = 0.5;

/// Clean seconds that must follow a burst for the endpoint to count as
/// recovered: one could be a lull between two waves of an overload.
pub const RECOVERY_SECONDS: u32 = 2;

/// Where a disturbed step's errors were.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disturbance {
    /// The burst's first and last second since the schedule started, both included.
    pub from_second: u32,
    pub to_second: u32,
    /// Errors completed in the burst, and how many were server failures.
    pub burst_errors: u64,
    pub burst_server_errors: u64,
    /// Errors of the measured window outside the burst.
    pub errors_elsewhere: u64,
    /// Clean seconds after the burst, to the end of the window.
    pub clean_seconds_after: u32,
}

impl Disturbance {
    /// The disturbance in `series` (warm-up rows are skipped), if the step's
    /// errors — `error_percent` of its measured requests — broke
    /// `requirements` in a burst it recovered from (the module's rule).
    pub fn detect(series: &[SecondStats], requirements: &Requirements, error_percent: f64) -> Option<Disturbance> {
        if error_percent <= requirements.max_error_percent {
            return None;
        }
        let budget = requirements.max_error_percent / 100.0;
        let window: Vec<&SecondStats> = series.iter().filter(|s| !s.warmup).collect();
        let faulty = |s: &SecondStats| s.server_errors as f64 > budget * s.completed as f64;
        let first = window.iter().position(|s| faulty(s))?;
        let last = window.iter().rposition(|s| faulty(s))?;
        let burst_seconds = last - first + 1;
        if burst_seconds as f64 > MAX_BURST_SHARE * window.len() as f64 {
            return None;
        }
        let clean = |s: &SecondStats| s.completed > 0 && s.errors as f64 <= budget * s.completed as f64;
        let clean_seconds_after = window[last + 1..].iter().filter(|s| clean(s)).count() as u32;
        if clean_seconds_after < RECOVERY_SECONDS {
            return None;
        }
        let outside = window[..first].iter().chain(&window[last + 1..]);
        let (errors_elsewhere, completed_elsewhere) = outside.fold((0, 0), |(e, c), s| (e + s.errors, c + s.completed));
        if errors_elsewhere as f64 > budget * completed_elsewhere as f64 {
            return None;
        }
        let burst = &window[first..=last];
        Some(Disturbance {
            from_second: window[first].second,
            to_second: window[last].second,
            burst_errors: burst.iter().map(|s| s.errors).sum(),
            burst_server_errors: burst.iter().map(|s| s.server_errors).sum(),
            errors_elsewhere,
            clean_seconds_after,
        })
    }

    /// The disturbance in a sentence.
    pub fn describe(&self) -> String {
        let seconds = if self.from_second == self.to_second {
            format!("second {}", self.from_second)
        } else {
            format!("seconds {}–{}", self.from_second, self.to_second)
        };
        let elsewhere = match self.errors_elsewhere {
            0 => "none elsewhere".to_string(),
            n => format!("{n} elsewhere"),
        };
        format!(
            "disturbed: {} errors ({} of them 5xx or broken connections) in {seconds}, {elsewhere}; the endpoint recovered for the {} s after",
            self.burst_errors, self.burst_server_errors, self.clean_seconds_after
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 % error budget.
    fn requirements() -> Requirements {
        Requirements::new(200.0, 99.0, 1.0).unwrap()
    }

    /// A series at 100 requests a second, after one warm-up second, with
    /// `server[i]` server failures and `client[i]` 4xx in measured second i.
    fn series(server: &[u64], client: &[u64]) -> Vec<SecondStats> {
        let row = |second: u32, warmup: bool, server: u64, client: u64| SecondStats {
            second,
            warmup,
            offered: 100,
            completed: 100,
            errors: server + client,
            server_errors: server,
            in_flight: 5,
            p50_ms: Some(20.0),
            p99_ms: Some(50.0),
        };
        let measured = server.iter().zip(client).enumerate().map(|(i, (s, c))| row(i as u32 + 1, false, *s, *c));
        std::iter::once(row(0, true, 0, 0)).chain(measured).collect()
    }

    fn error_percent(series: &[SecondStats]) -> f64 {
        let window = series.iter().filter(|s| !s.warmup);
        let (errors, completed) = window.fold((0, 0), |(e, c), s| (e + s.errors, c + s.completed));
        errors as f64 / completed as f64 * 100.0
    }

    fn detect(server: &[u64], client: &[u64]) -> Option<Disturbance> {
        let series = series(server, client);
        Disturbance::detect(&series, &requirements(), error_percent(&series))
    }

    #[test]
    fn a_burst_of_server_errors_mid_step_that_the_endpoint_recovers_from_is_a_disturbance() {
        let d = detect(&[0, 0, 0, 60, 100, 40, 0, 0, 0, 0], &[0; 10]).expect("disturbed");
        assert_eq!((d.from_second, d.to_second), (4, 6), "seconds count from the schedule's start, warm-up included");
        assert_eq!((d.burst_errors, d.burst_server_errors, d.errors_elsewhere, d.clean_seconds_after), (200, 200, 0, 4));
        assert_eq!(
            d.describe(),
            "disturbed: 200 errors (200 of them 5xx or broken connections) in seconds 4–6, none elsewhere; the endpoint recovered for the 4 s after"
        );
        // A stray error outside, within the budget, and a burst from the first second.
        let d = detect(&[100, 100, 0, 1, 0, 0], &[0; 6]).expect("a burst from the start of the window");
        assert_eq!((d.from_second, d.to_second, d.errors_elsewhere), (1, 2, 1));
    }

    #[test]
    fn an_overloaded_step_is_not_disturbed() {
        // Errors from when the queue filled to the end: no recovery.
        assert_eq!(detect(&[0, 0, 0, 0, 0, 0, 5, 20, 40, 60], &[0; 10]), None);
        // Errors that come and go through the whole step: no short burst.
        assert_eq!(detect(&[3, 0, 8, 0, 0, 12, 0, 9, 0, 0], &[0; 10]), None);
        // Errors growing with the step's load, every second.
        assert_eq!(detect(&[2, 4, 6, 8, 10, 12, 14, 16, 18, 20], &[0; 10]), None);
    }

    #[test]
    fn a_burst_must_be_short_followed_by_recovery_and_alone() {
        // Half the window and more is the step's, not a moment's.
        assert_eq!(detect(&[0, 50, 50, 50, 50, 50, 50, 0, 0, 0], &[0; 10]), None);
        assert!(detect(&[0, 0, 50, 50, 50, 50, 50, 0, 0, 0], &[0; 10]).is_some(), "exactly half");
        // One clean second after could be a lull.
        assert_eq!(detect(&[0, 0, 0, 0, 0, 0, 0, 100, 100, 0], &[0; 10]), None);
        // Outside the burst the step must meet its budget.
        assert_eq!(detect(&[0, 0, 0, 100, 0, 0, 0, 0, 0, 0], &[0, 2, 2, 0, 2, 2, 2, 2, 0, 0]), None);
    }

    #[test]
    fn answers_about_the_request_and_steps_within_budget_are_no_disturbance() {
        // A burst of 4xx (ModelError, throttling): the endpoint answered.
        assert_eq!(detect(&[0; 10], &[0, 0, 0, 60, 100, 0, 0, 0, 0, 0]), None);
        // A burst the budget absorbs: nothing is in doubt.
        let within = series(&[0, 0, 0, 0, 5, 0, 0, 0, 0, 0], &[0; 10]);
        assert_eq!(Disturbance::detect(&within, &requirements(), error_percent(&within)), None);
        // A series written before server failures were counted has none.
        assert_eq!(detect(&[0; 10], &[0; 10]), None);
    }
}
