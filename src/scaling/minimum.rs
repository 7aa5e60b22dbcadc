//! Finding the lowest minimum count a policy may start from: a bisection
//! between the lowest allowed count and the fixed-scale count (known to hold
//! the peak), and, when none below works, the change that would let one.

use std::time::Duration;

use super::{MeasuredCapacity, ScalingMetric};
use crate::format::trim_number;

/// Bisection of the minimum: every count at or above `known_good` holds the
/// peak; the answer is the lowest count whose trial passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinimumSearch {
    lo: u32,
    hi: u32,
}

impl MinimumSearch {
    /// Searches `floor..=known_good`. A floor of 0 is an asynchronous
    /// endpoint's: it may rest at zero instances.
    pub fn new(floor: u32, known_good: u32) -> MinimumSearch {
        MinimumSearch { lo: floor.min(known_good.max(1)), hi: known_good.max(1) }
    }

    /// The next minimum to try, None once the answer is known.
    pub fn next(&self) -> Option<u32> {
        (self.lo < self.hi).then(|| self.lo + (self.hi - self.lo) / 2)
    }

    pub fn record(&mut self, min: u32, passed: bool) {
        if passed {
            self.hi = self.hi.min(min);
        } else {
            self.lo = self.lo.max(min + 1);
        }
    }

    /// The lowest minimum known to hold (the fixed count if none below did).
    pub fn found(&self) -> u32 {
        self.hi
    }
}

/// What would let a policy absorb the ramp when no minimum below `fixed`
/// did: a lower target, so that it asks for instances early enough, or a
/// longer ramp. `reaction` is how long the trials took from the first breach
/// of the target to the first new instance serving (None: none came).
pub fn suggestion(
    metric: ScalingMetric,
    capacity: &MeasuredCapacity,
    safety_factor: f64,
    reaction: Option<Duration>,
    peak_tps: f64,
    ramp: Duration,
    fixed: u32,
) -> String {
    let Some(reaction) = reaction else {
        return format!(
            "the policy added no instance during the test: lower its target, shorten --scale-out-cooldown or lengthen --scaling-ramp — or use fixed scale at {fixed}"
        );
    };
    let instances = fixed.saturating_sub(1).max(1) as f64;
    let climb = peak_tps / ramp.as_secs_f64().max(1e-9);
    let cap = capacity.tps_per_instance;
    // Breaching at x TPS per instance leaves (cap − x) per instance of
    // headroom; the ramp eats it at climb / instances per second, and must
    // not before the new instances serve.
    let per_instance = cap - reaction.as_secs_f64() * climb / instances;
    if per_instance >= cap * safety_factor {
        return format!(
            "the target was passed early enough for new instances to serve in time, yet the ramp failed: the scale-outs were too small or too far apart — shorten --scale-out-cooldown, or use fixed scale at {fixed}"
        );
    }
    if per_instance >= 0.05 * cap {
        let target = metric.target(&MeasuredCapacity { tps_per_instance: per_instance, ..*capacity }, 1.0);
        return format!(
            "from {} instances, new ones took {} to serve after the target was passed: a target of {} {} (instead of {}) would ask for them in time — or use fixed scale at {fixed}",
            instances,
            humantime::format_duration(Duration::from_secs(reaction.as_secs())),
            trim_number(target),
            metric.unit(),
            trim_number(metric.target(capacity, safety_factor)),
        );
    }
    let headroom = (cap * (1.0 - safety_factor)).max(1e-9);
    let ramp_needed = Duration::from_secs_f64(reaction.as_secs_f64() * peak_tps / (instances * headroom));
    format!(
        "new instances took {} to serve: no target lets {} instances absorb a ramp this steep; a ramp of at least {} would — otherwise use fixed scale at {fixed}",
        humantime::format_duration(Duration::from_secs(reaction.as_secs())),
        instances,
        humantime::format_duration(Duration::from_secs(ramp_needed.as_secs().max(1))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(floor: u32, known_good: u32, lowest_passing: u32) -> (u32, Vec<u32>) {
        let mut s = MinimumSearch::new(floor, known_good);
        let mut tried = Vec::new();
        while let Some(min) = s.next() {
            tried.push(min);
            s.record(min, min >= lowest_passing);
        }
        (s.found(), tried)
    }

    #[test]
    fn bisection_finds_the_lowest_passing_minimum_in_few_trials() {
        assert_eq!(search(1, 4, 2), (2, vec![2, 1]));
        assert_eq!(search(1, 8, 3), (3, vec![4, 2, 3]));
        assert_eq!(search(1, 8, 1), (1, vec![4, 2, 1]));
        assert_eq!(search(1, 5, 5), (5, vec![3, 4]), "nothing below the fixed count works");
        assert_eq!(search(3, 8, 1), (3, vec![5, 4, 3]), "never below the user's floor");
    }

    #[test]
    fn one_instance_leaves_nothing_to_search() {
        assert_eq!(search(1, 1, 1), (1, vec![]));
    }

    #[test]
    fn an_asynchronous_floor_of_zero_is_tried() {
        assert_eq!(search(0, 1, 0), (0, vec![0]), "zero holds: the endpoint may rest at zero");
        assert_eq!(search(0, 1, 1), (1, vec![0]));
        assert_eq!(search(0, 4, 1), (1, vec![2, 1, 0]));
    }

    const CAP: MeasuredCapacity = MeasuredCapacity { tps_per_instance: 100.0, latency_p50_ms: 20.0, latency_limit_ms: 500.0 };

    #[test]
    fn a_lower_target_is_suggested_when_one_can_ask_in_time() {
        // 400 TPS over 120 s climbs 3.33 TPS/s; 3 instances lose 1.11 TPS/s
        // each; 60 s of reaction costs 67 TPS: a target of 33.3 TPS, 1999 per minute.
        let text =
            suggestion(ScalingMetric::Invocations, &CAP, 0.5, Some(Duration::from_secs(60)), 400.0, Duration::from_secs(120), 4);
        assert!(text.contains("a target of 1999 invocations per instance per minute (instead of 3000)"), "{text}");
        assert!(text.ends_with("use fixed scale at 4"), "{text}");
        let in_time =
            suggestion(ScalingMetric::Invocations, &CAP, 0.5, Some(Duration::from_secs(5)), 400.0, Duration::from_secs(120), 4);
        assert!(in_time.contains("scale-outs were too small or too far apart"), "{in_time}");
    }

    #[test]
    fn a_longer_ramp_is_suggested_when_no_target_can() {
        let text =
            suggestion(ScalingMetric::Invocations, &CAP, 0.5, Some(Duration::from_secs(120)), 400.0, Duration::from_secs(10), 4);
        // 120 s × 400 TPS / (3 instances × 50 TPS of headroom) = 320 s.
        assert!(text.contains("a ramp of at least 5m 20s"), "{text}");
        let never = suggestion(ScalingMetric::Invocations, &CAP, 0.5, None, 400.0, Duration::from_secs(10), 4);
        assert!(never.contains("added no instance"), "{never}");
    }
}
