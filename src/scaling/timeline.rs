//! What a test of a scaling policy under a ramp shows, second by second: the
//! offered rate, the instances in service, latency and errors — and what users
//! ask of a policy that no dashboard answers: when the load first passed the
//! target, how long each new instance took to serve after that, and what the
//! scale-out cost in errors and slow seconds.

use serde::{Deserialize, Serialize};

use super::ScalingMetric;
use crate::load::SecondStats;

/// Instances of the variant as seen at one moment of the test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InstanceSample {
    /// Seconds since the traffic schedule started.
    pub at_seconds: f64,
    pub in_service: u32,
    pub desired: u32,
}

/// One second of the test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    pub second: u32,
    pub offered: u64,
    pub errors: u64,
    pub in_flight: u64,
    pub p99_ms: Option<f64>,
    pub in_service: u32,
    pub desired: u32,
}

/// New instances coming into service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleOut {
    pub from: u32,
    pub to: u32,
    /// Seconds since the schedule started.
    pub in_service_at: f64,
    /// Seconds from the first breach of the target until they served.
    pub after_breach: Option<f64>,
}

/// A scaling test, second by second, with what it tells about the policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub points: Vec<TimelinePoint>,
    /// The first second whose load per instance in service passed the target.
    pub first_breach: Option<u32>,
    pub scale_outs: Vec<ScaleOut>,
    /// From the first breach until the last new instance served (or the end,
    /// if none came): what the scale-out cost.
    pub disruption: Disruption,
    /// Time-weighted over the test.
    pub mean_instances: f64,
    pub peak_instances: u32,
    pub instance_hours: f64,
    /// The second the first successful answer arrived: for a test that
    /// starts at zero instances, how long the first request waited for the
    /// endpoint to wake (a cold start), to the second.
    #[serde(default)]
    pub first_answer: Option<u32>,
}

/// What a scale-out cost while the instances it asked for were not serving.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Disruption {
    pub seconds: u32,
    pub requests: u64,
    pub errors: u64,
    /// Seconds whose p99 was above the latency limit.
    pub slow_seconds: u32,
}

impl Timeline {
    /// Lines up the per-second `series` of the traffic with the instance
    /// `samples` taken while it ran, judged against `target` of `metric`.
    pub fn build(
        series: &[SecondStats],
        samples: &[InstanceSample],
        metric: ScalingMetric,
        target: f64,
        latency_limit_ms: f64,
    ) -> Timeline {
        let first_answer = series.iter().find(|s| s.completed > s.errors).map(|s| s.second);
        // The seconds after the last offered request only count stragglers.
        let series = &series[..series.iter().rposition(|s| s.offered > 0).map_or(0, |last| last + 1)];
        let points: Vec<TimelinePoint> = series
            .iter()
            .map(|s| {
                let seen = seen_at(samples, s.second as f64 + 0.5);
                TimelinePoint {
                    second: s.second,
                    offered: s.offered,
                    errors: s.errors,
                    in_flight: s.in_flight,
                    p99_ms: s.p99_ms,
                    in_service: seen.map_or(0, |x| x.in_service),
                    desired: seen.map_or(0, |x| x.desired),
                }
            })
            .collect();
        let first_breach =
            points.iter().find(|p| metric.breached(p.offered as f64, p.in_flight as f64, p.in_service, target)).map(|p| p.second);
        let scale_outs = scale_outs(samples, first_breach);
        let disruption = disruption(&points, first_breach, &scale_outs, latency_limit_ms);
        let (mean_instances, seconds) = time_weighted_instances(samples, series.len() as f64);
        Timeline {
            first_breach,
            disruption,
            mean_instances,
            peak_instances: samples.iter().map(|s| s.in_service).max().unwrap_or(0),
            instance_hours: mean_instances * seconds / 3600.0,
            first_answer,
            scale_outs,
            points,
        }
    }
}

/// The last sample taken at or before `at` (the first one before any was).
fn seen_at(samples: &[InstanceSample], at: f64) -> Option<&InstanceSample> {
    samples.iter().rev().find(|s| s.at_seconds <= at).or_else(|| samples.first())
}

/// Every rise of the instances in service.
fn scale_outs(samples: &[InstanceSample], first_breach: Option<u32>) -> Vec<ScaleOut> {
    samples
        .windows(2)
        .filter(|w| w[1].in_service > w[0].in_service)
        .map(|w| ScaleOut {
            from: w[0].in_service,
            to: w[1].in_service,
            in_service_at: w[1].at_seconds,
            after_breach: first_breach.map(|b| (w[1].at_seconds - b as f64).max(0.0)),
        })
        .collect()
}

fn disruption(points: &[TimelinePoint], first_breach: Option<u32>, outs: &[ScaleOut], limit_ms: f64) -> Disruption {
    let Some(from) = first_breach else { return Disruption::default() };
    let until = outs.last().map_or(f64::INFINITY, |o| o.in_service_at);
    let window: Vec<&TimelinePoint> = points.iter().filter(|p| p.second >= from && (p.second as f64) < until).collect();
    Disruption {
        seconds: window.len() as u32,
        requests: window.iter().map(|p| p.offered).sum(),
        errors: window.iter().map(|p| p.errors).sum(),
        slow_seconds: window.iter().filter(|p| p.p99_ms.is_some_and(|v| v > limit_ms)).count() as u32,
    }
}

/// The mean of the instances in service over `length` seconds, each sample
/// holding until the next, and the length it covers.
fn time_weighted_instances(samples: &[InstanceSample], length: f64) -> (f64, f64) {
    if samples.is_empty() || length <= 0.0 {
        return (0.0, length.max(0.0));
    }
    let mut area = 0.0;
    for (i, s) in samples.iter().enumerate() {
        let from = if i == 0 { 0.0 } else { s.at_seconds.clamp(0.0, length) };
        let to = samples.get(i + 1).map_or(length, |next| next.at_seconds.clamp(0.0, length));
        area += s.in_service as f64 * (to - from).max(0.0);
    }
    (area / length, length)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ramp of 10 more requests every second, with errors and slow seconds
    /// where `trouble` says so.
    fn ramp(seconds: u32, trouble: impl Fn(u32) -> bool) -> Vec<SecondStats> {
        (0..seconds)
            .map(|s| SecondStats {
                second: s,
                warmup: false,
                offered: 10 * s as u64,
                completed: 10 * s as u64,
                errors: if trouble(s) { 3 } else { 0 },
                server_errors: if trouble(s) { 3 } else { 0 },
                in_flight: s as u64,
                p50_ms: Some(10.0),
                p99_ms: Some(if trouble(s) { 900.0 } else { 40.0 }),
            })
            .collect()
    }

    fn sample(at: f64, in_service: u32, desired: u32) -> InstanceSample {
        InstanceSample { at_seconds: at, in_service, desired }
    }

    #[test]
    fn a_scale_out_is_timed_from_the_first_breach_of_the_target() {
        // Target 3000 invocations per instance per minute = 50 TPS: one
        // instance passes it at second 6 (60 TPS); a second serves at 14.5 s.
        let series = ramp(20, |s| (8..12).contains(&s));
        let samples = [sample(0.0, 1, 1), sample(9.0, 1, 2), sample(14.5, 2, 2)];
        let t = Timeline::build(&series, &samples, ScalingMetric::Invocations, 3000.0, 500.0);
        assert_eq!(t.first_breach, Some(6));
        assert_eq!(t.scale_outs.len(), 1);
        assert_eq!((t.scale_outs[0].from, t.scale_outs[0].to), (1, 2));
        assert_eq!(t.scale_outs[0].after_breach, Some(8.5));
        assert_eq!(t.points[10].desired, 2, "asked for at 9 s");
        assert_eq!(t.points[10].in_service, 1, "not serving before 14.5 s");
        assert_eq!(t.points[15].in_service, 2);
        // Seconds 6 to 14 were the scale-out: 4 of them had trouble.
        assert_eq!(t.disruption.seconds, 9);
        assert_eq!(t.disruption.errors, 12);
        assert_eq!(t.disruption.slow_seconds, 4);
        assert_eq!(t.peak_instances, 2);
        assert!((t.mean_instances - (14.5 + 2.0 * 5.5) / 20.0).abs() < 1e-9, "{}", t.mean_instances);
    }

    #[test]
    fn a_policy_that_never_scales_out_is_disrupted_until_the_end() {
        let series = ramp(20, |s| s >= 15);
        let samples = [sample(0.0, 1, 1)];
        let t = Timeline::build(&series, &samples, ScalingMetric::Invocations, 3000.0, 500.0);
        assert!(t.scale_outs.is_empty());
        assert_eq!(t.disruption.seconds, 14, "seconds 6 to 19");
        assert_eq!(t.disruption.errors, 15);
        assert_eq!(t.mean_instances, 1.0);
    }

    #[test]
    fn load_that_stays_under_the_target_never_breaches() {
        let series = ramp(5, |_| false);
        let t = Timeline::build(&series, &[sample(0.0, 2, 2)], ScalingMetric::Concurrency, 10.0, 500.0);
        assert_eq!(t.first_breach, None);
        assert_eq!(t.disruption, Disruption::default());
        assert!((t.instance_hours - 2.0 * 5.0 / 3600.0).abs() < 1e-12);
    }

    #[test]
    fn from_zero_the_backlog_breaches_at_once_and_the_first_answer_marks_the_cold_start() {
        // Nothing answers for 40 s while the endpoint wakes; then all do.
        let series: Vec<SecondStats> = (0..60)
            .map(|s| SecondStats {
                second: s,
                warmup: false,
                offered: 2,
                completed: if s < 40 { 0 } else { 3 },
                errors: 0,
                server_errors: 0,
                in_flight: if s < 40 { 2 * s as u64 + 2 } else { 4 },
                p50_ms: (s >= 40).then_some(5_000.0),
                p99_ms: (s >= 40).then_some(38_000.0),
            })
            .collect();
        let samples = [sample(0.0, 0, 0), sample(31.0, 0, 1), sample(39.5, 1, 1)];
        let t = Timeline::build(&series, &samples, ScalingMetric::Backlog, 100.0, 60_000.0);
        assert_eq!(t.first_breach, Some(0), "a backlog with no instance asks at once");
        assert_eq!(t.first_answer, Some(40));
        assert_eq!(t.scale_outs[0].after_breach, Some(39.5));
        let fails: Vec<SecondStats> = series.iter().map(|s| SecondStats { errors: s.completed, ..s.clone() }).collect();
        assert_eq!(Timeline::build(&fails, &samples, ScalingMetric::Backlog, 100.0, 1.0).first_answer, None);
    }

    #[test]
    fn concurrency_is_judged_per_instance_in_service() {
        // in_flight = second; 2 instances, target 3 per instance: second 7 passes 6.
        let series = ramp(10, |_| false);
        let t = Timeline::build(&series, &[sample(0.0, 2, 2)], ScalingMetric::Concurrency, 3.0, 500.0);
        assert_eq!(t.first_breach, Some(7));
    }
}
