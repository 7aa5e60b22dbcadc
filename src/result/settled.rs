//! When a step's failure is already certain: the requests it has seen fail or
//! run over the latency limit are more than the requirements allow of every
//! request it will send. A step that long trials drive (the auto-scaling test
//! ramps for minutes) can stop there: the rest could not change its verdict.

use crate::load::SecondStats;
use crate::vocab::Requirements;

/// Failures and over-limit requests seen so far, counted from below.
#[derive(Debug, Clone)]
pub struct Settled {
    requirements: Requirements,
    /// Every request the step will send.
    planned: f64,
    errors: u64,
    /// Requests certainly over the latency limit: from each second's own
    /// percentiles, at least half of them when its p50 is over, at least 1 %
    /// when its p99 is.
    slow: f64,
}

impl Settled {
    pub fn new(requirements: Requirements, planned_requests: f64) -> Settled {
        Settled { requirements, planned: planned_requests.max(1.0), errors: 0, slow: 0.0 }
    }

    /// Counts one more second; Some(reason) once the step can no longer pass.
    pub fn add(&mut self, second: &SecondStats) -> Option<String> {
        let limit = self.requirements.latency_ms;
        let completed = second.completed as f64;
        self.errors += second.errors;
        self.slow += match (second.p50_ms, second.p99_ms) {
            (Some(p50), _) if p50 > limit => (completed * 0.5).floor(),
            (_, Some(p99)) if p99 > limit => (completed * 0.01).floor(),
            _ => 0.0,
        };
        let error_budget = self.requirements.max_error_percent / 100.0 * self.planned;
        let slow_budget = (1.0 - self.requirements.percentile / 100.0) * self.planned;
        if self.errors as f64 > error_budget {
            return Some(format!(
                "{} requests failed, more than the {}% budget allows of all {:.0} the step would send",
                self.errors, self.requirements.max_error_percent, self.planned
            ));
        }
        if self.slow > slow_budget {
            return Some(format!(
                "at least {:.0} requests took over {} ms, more than {} allows of all {:.0} the step would send",
                self.slow,
                crate::format::trim_number(limit),
                self.requirements.percentile_label(),
                self.planned
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(completed: u64, errors: u64, p50: f64, p99: f64) -> SecondStats {
        SecondStats {
            second: 0,
            warmup: false,
            offered: completed,
            completed,
            errors,
            server_errors: errors,
            in_flight: 0,
            p50_ms: Some(p50),
            p99_ms: Some(p99),
        }
    }

    #[test]
    fn a_step_is_settled_once_its_failures_exceed_the_budget_of_all_it_will_send() {
        // 10,000 planned requests at 0.1 % errors: the 11th failure settles it.
        let mut s = Settled::new(Requirements::new(500.0, 99.0, 0.1).unwrap(), 10_000.0);
        assert_eq!(s.add(&second(100, 10, 20.0, 40.0)), None);
        let reason = s.add(&second(100, 1, 20.0, 40.0)).expect("settled");
        assert!(reason.contains("11 requests failed"), "{reason}");
    }

    #[test]
    fn slow_seconds_count_only_what_their_percentiles_prove() {
        // p99 of 10,000 allows 100 slow requests; a second whose p50 is over
        // the limit proves 50 of its 100 were, one whose p99 is over only 1.
        let mut s = Settled::new(Requirements::new(500.0, 99.0, 0.1).unwrap(), 10_000.0);
        assert_eq!(s.add(&second(100, 0, 20.0, 900.0)), None);
        assert_eq!(s.add(&second(100, 0, 600.0, 900.0)), None, "51 proven");
        let reason = s.add(&second(100, 0, 600.0, 900.0)).expect("101 proven");
        assert!(reason.contains("at least 101 requests took over 500 ms"), "{reason}");
    }

    #[test]
    fn a_step_within_its_requirements_never_settles() {
        let mut s = Settled::new(Requirements::new(500.0, 99.0, 0.1).unwrap(), 1_000.0);
        for _ in 0..100 {
            assert_eq!(s.add(&second(100, 0, 20.0, 400.0)), None);
        }
    }
}
