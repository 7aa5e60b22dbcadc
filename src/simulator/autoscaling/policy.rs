//! What a scaling policy decides, by Application Auto Scaling's documented
//! rules: pure functions of (policy, current capacity, metric, cooldowns,
//! now), so unit tests pin the rules with synthetic inputs and no real time.
//!
//! Sources: the Application Auto Scaling User Guide ("How target tracking
//! scaling works", "Define cooldown periods", "Step scaling policies") and
//! the API reference of TargetTrackingScalingPolicyConfiguration,
//! StepScalingPolicyConfiguration and StepAdjustment.

use std::time::{Duration, SystemTime};

use crate::simulator::alarms::evaluation::Comparison;

/// The cooldown Application Auto Scaling applies to SageMaker endpoint
/// variants when a policy sets none ("Define cooldown periods": 300 seconds;
/// the API reference of StepScalingPolicyConfiguration.Cooldown: 300).
pub const DEFAULT_COOLDOWN_SECS: u32 = 300;

/// A target tracking policy's alarms scale in below this share of the target
/// ("usually more than 10% lower").
pub const SCALE_IN_SHARE: f64 = 0.9;

/// Whether a policy adds or removes capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Out,
    In,
}

/// The capacity limits of a scalable target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
}

impl Bounds {
    fn clamp(self, capacity: i64) -> u32 {
        capacity.clamp(i64::from(self.min), i64::from(self.max.max(self.min))) as u32
    }
}

/// Which of a target tracking policy's two alarms is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Metric above the target: scale out.
    High,
    /// Metric well below the target: scale in.
    Low,
}

/// An alarm invoking a policy: which side (target tracking only), its
/// threshold and the datapoints that decided it, oldest first.
#[derive(Debug, Clone, Copy)]
pub struct Trigger<'a> {
    pub side: Option<Side>,
    pub threshold: f64,
    pub values: &'a [f64],
}

/// What a policy wants done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Set the capacity to `to`; `base` is the capacity the change is
    /// measured from (during a scale-out cooldown, the capacity before it).
    Scale {
        to: u32,
        direction: Direction,
        base: u32,
    },
    Hold,
}

/// The cooldowns a policy is in after its own scaling activities.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cooldowns {
    scale_out: Option<(SystemTime, u32)>,
    scale_in_until: Option<SystemTime>,
}

impl Cooldowns {
    /// Starts the cooldown of an activity that completed at `end`. `length`
    /// is already on the scaling clock.
    pub fn start(&mut self, direction: Direction, base: u32, end: SystemTime, length: Duration) {
        match direction {
            Direction::Out => {
                self.scale_out = Some((end + length, base));
                self.scale_in_until = None;
            }
            Direction::In => self.scale_in_until = Some(end + length),
        }
    }

    /// "If another alarm triggers a scale-out activity during the scale-in
    /// cooldown period, Application Auto Scaling scales out the target
    /// immediately. In this case, the scale-in cooldown period stops."
    pub fn end_scale_in(&mut self) {
        self.scale_in_until = None;
    }

    /// While a scale-out cooldown runs, the capacity before it: the next
    /// scale-out counts what that one added ("only if larger").
    fn scale_out_base(&self, now: SystemTime) -> Option<u32> {
        self.scale_out.filter(|(until, _)| now < *until).map(|(_, base)| base)
    }

    /// Scale-in waits out both cooldowns: its own, and the scale-out one, so
    /// capacity just added is not removed before it has taken effect.
    fn blocks_scale_in(&self, now: SystemTime) -> bool {
        self.scale_in_until.is_some_and(|until| now < until) || self.scale_out_base(now).is_some()
    }
}

/// A target tracking policy's metric.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackedMetric {
    Predefined {
        kind: String,
        resource_label: Option<String>,
    },
    Customized {
        namespace: String,
        metric_name: String,
        dimensions: Vec<(String, String)>,
        statistic: String,
        unit: Option<String>,
    },
}

/// The predefined metrics a SageMaker endpoint variant can track.
pub const INVOCATIONS_PER_INSTANCE: &str = "SageMakerVariantInvocationsPerInstance";
pub const CONCURRENT_REQUESTS_PER_MODEL: &str = "SageMakerVariantConcurrentRequestsPerModelHighResolution";

/// What a target tracking alarm watches.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmMetric {
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: Vec<(String, String)>,
    pub statistic: String,
    /// Seconds, in AWS time.
    pub period: u32,
}

impl TrackedMetric {
    /// The CloudWatch metric behind it for variant `variant` of `endpoint`;
    /// None for a predefined metric a variant cannot track.
    pub fn alarm_metric(&self, endpoint: &str, variant: &str) -> Option<AlarmMetric> {
        let variant_dimensions =
            vec![("EndpointName".to_string(), endpoint.to_string()), ("VariantName".to_string(), variant.to_string())];
        let sagemaker = |metric_name: &str, statistic: &str, period: u32| AlarmMetric {
            namespace: "AWS/SageMaker".to_string(),
            metric_name: metric_name.to_string(),
            dimensions: variant_dimensions.clone(),
            statistic: statistic.to_string(),
            period,
        };
        match self {
            // Invocations per minute per instance: the minute's Sum of InvocationsPerInstance.
            TrackedMetric::Predefined { kind, .. } if kind == INVOCATIONS_PER_INSTANCE => {
                Some(sagemaker("InvocationsPerInstance", "Sum", 60))
            }
            // A high-resolution metric, published every 10 seconds.
            TrackedMetric::Predefined { kind, .. } if kind == CONCURRENT_REQUESTS_PER_MODEL => {
                Some(sagemaker("ConcurrentRequestsPerModel", "Average", 10))
            }
            TrackedMetric::Predefined { .. } => None,
            TrackedMetric::Customized { namespace, metric_name, dimensions, statistic, .. } => Some(AlarmMetric {
                namespace: namespace.clone(),
                metric_name: metric_name.clone(),
                dimensions: dimensions.clone(),
                statistic: statistic.clone(),
                period: 60,
            }),
        }
    }
}

/// The alarm of one side of a target tracking policy: how it compares, its
/// threshold, and how many consecutive datapoints of `period` seconds it
/// needs. Scale out after 3 datapoints above the target; scale in after 15
/// minutes below 90 % of it (15 one-minute datapoints). For a 10-second
/// high-resolution metric the simulator uses 3 datapoints (30 s) to scale
/// out and keeps scale-in at 15 minutes (90 datapoints): AWS documents the
/// faster scale-out, not the high-resolution datapoint counts.
pub fn tracking_alarm_rule(side: Side, target: f64, period: u32) -> (Comparison, f64, usize) {
    match side {
        Side::High => (Comparison::GreaterThanThreshold, target, 3),
        Side::Low => (Comparison::LessThanThreshold, target * SCALE_IN_SHARE, (15 * 60 / period.clamp(1, 60)) as usize),
    }
}

/// A TargetTrackingScaling policy.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetTracking {
    pub target_value: f64,
    pub metric: TrackedMetric,
    pub scale_out_cooldown: Option<u32>,
    pub scale_in_cooldown: Option<u32>,
    pub disable_scale_in: Option<bool>,
}

impl TargetTracking {
    pub fn scales_in(&self) -> bool {
        self.disable_scale_in != Some(true)
    }

    fn decide(&self, trigger: &Trigger<'_>, current: u32, bounds: Bounds, cooldowns: &Cooldowns, now: SystemTime) -> Decision {
        let Some(&metric) = trigger.values.last() else { return Decision::Hold };
        match trigger.side {
            // Proportional, and as fast as it can: the capacity that brings the
            // metric back to the target, rounded up.
            Some(Side::High) => {
                let base = cooldowns.scale_out_base(now).unwrap_or(current);
                scale_out(bounds.clamp(proportional(base, metric, self.target_value)), current, base)
            }
            // Conservative: only if removing capacity would not bring the metric
            // back above the target (rounding up keeps it at or below).
            Some(Side::Low) if self.scales_in() && !cooldowns.blocks_scale_in(now) => {
                let to = bounds.clamp(proportional(current, metric, self.target_value));
                if to < current { Decision::Scale { to, direction: Direction::In, base: current } } else { Decision::Hold }
            }
            _ => Decision::Hold,
        }
    }
}

/// ceil(capacity × metric / target), tolerant of floating-point noise.
fn proportional(capacity: u32, metric: f64, target: f64) -> i64 {
    let exact = f64::from(capacity) * metric / target;
    if exact.is_finite() { (exact - 1e-9).ceil().clamp(0.0, 1e9) as i64 } else { i64::from(capacity) }
}

fn scale_out(to: u32, current: u32, base: u32) -> Decision {
    if to > current { Decision::Scale { to, direction: Direction::Out, base } } else { Decision::Hold }
}

/// AdjustmentType.
// The variants are named as the API names the values.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdjustmentType {
    ChangeInCapacity,
    ExactCapacity,
    PercentChangeInCapacity,
}

impl AdjustmentType {
    pub fn as_str(self) -> &'static str {
        match self {
            AdjustmentType::ChangeInCapacity => "ChangeInCapacity",
            AdjustmentType::ExactCapacity => "ExactCapacity",
            AdjustmentType::PercentChangeInCapacity => "PercentChangeInCapacity",
        }
    }

    pub fn parse(text: &str) -> Option<AdjustmentType> {
        [AdjustmentType::ChangeInCapacity, AdjustmentType::ExactCapacity, AdjustmentType::PercentChangeInCapacity]
            .into_iter()
            .find(|t| t.as_str() == text)
    }
}

/// MetricAggregationType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    Average,
    Minimum,
    Maximum,
}

impl Aggregation {
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Average => "Average",
            Aggregation::Minimum => "Minimum",
            Aggregation::Maximum => "Maximum",
        }
    }

    pub fn parse(text: &str) -> Option<Aggregation> {
        [Aggregation::Average, Aggregation::Minimum, Aggregation::Maximum].into_iter().find(|a| a.as_str() == text)
    }

    fn apply(self, values: &[f64]) -> f64 {
        match self {
            Aggregation::Average => values.iter().sum::<f64>() / values.len() as f64,
            Aggregation::Minimum => values.iter().copied().fold(f64::INFINITY, f64::min),
            Aggregation::Maximum => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// One StepAdjustment: bounds relative to the alarm threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub adjustment: i64,
}

impl Step {
    /// Above the threshold the lower bound is inclusive and the upper
    /// exclusive; below it, the other way round.
    fn contains(&self, breach: f64) -> bool {
        if breach >= 0.0 {
            self.lower.is_none_or(|l| breach >= l) && self.upper.is_none_or(|u| breach < u)
        } else {
            self.lower.is_none_or(|l| breach > l) && self.upper.is_none_or(|u| breach <= u)
        }
    }
}

/// Checks StepAdjustment's rules: no overlap and no gap, at most one
/// unbounded end each way, never both ends unbounded, a negative lower bound
/// needs an unbounded-below step and a positive upper bound an unbounded-above one.
pub fn check_steps(steps: &[Step]) -> Result<(), String> {
    if steps.iter().any(|s| s.lower.is_none() && s.upper.is_none()) {
        return Err("The upper and lower bound can't be null in the same step adjustment.".into());
    }
    if steps.iter().filter(|s| s.lower.is_none()).count() > 1 || steps.iter().filter(|s| s.upper.is_none()).count() > 1 {
        return Err("At most one step adjustment can have a null lower bound, and at most one a null upper bound.".into());
    }
    if steps.iter().any(|s| s.lower.zip(s.upper).is_some_and(|(l, u)| l >= u)) {
        return Err("A step adjustment's lower bound must be below its upper bound.".into());
    }
    let mut sorted = steps.to_vec();
    sorted.sort_by(|a, b| a.lower.unwrap_or(f64::NEG_INFINITY).total_cmp(&b.lower.unwrap_or(f64::NEG_INFINITY)));
    if sorted.windows(2).any(|pair| pair[0].upper != pair[1].lower) {
        return Err("The ranges of your step adjustments can't overlap or have a gap.".into());
    }
    let unbounded_below = steps.iter().any(|s| s.lower.is_none());
    let unbounded_above = steps.iter().any(|s| s.upper.is_none());
    if steps.iter().any(|s| s.lower.is_some_and(|l| l < 0.0)) && !unbounded_below {
        return Err("A step adjustment with a negative lower bound needs a step adjustment with a null lower bound.".into());
    }
    if steps.iter().any(|s| s.upper.is_some_and(|u| u > 0.0)) && !unbounded_above {
        return Err("A step adjustment with a positive upper bound needs a step adjustment with a null upper bound.".into());
    }
    Ok(())
}

/// A StepScaling policy.
#[derive(Debug, Clone, PartialEq)]
pub struct StepScaling {
    pub adjustment_type: AdjustmentType,
    pub steps: Vec<Step>,
    pub min_adjustment_magnitude: Option<i64>,
    pub cooldown: Option<u32>,
    pub aggregation: Option<Aggregation>,
}

impl StepScaling {
    /// The capacity `step` asks for, starting from `capacity`.
    fn apply(&self, step: &Step, capacity: u32) -> i64 {
        let capacity = i64::from(capacity);
        match self.adjustment_type {
            AdjustmentType::ChangeInCapacity => capacity + step.adjustment,
            AdjustmentType::ExactCapacity => step.adjustment,
            AdjustmentType::PercentChangeInCapacity => {
                let change = percent_change(capacity, step.adjustment);
                let floor = self.min_adjustment_magnitude.unwrap_or(0);
                capacity + if change.abs() < floor { change.signum() * floor } else { change }
            }
        }
    }

    fn decide(&self, trigger: &Trigger<'_>, current: u32, bounds: Bounds, cooldowns: &Cooldowns, now: SystemTime) -> Decision {
        if trigger.values.is_empty() {
            return Decision::Hold;
        }
        let metric = self.aggregation.unwrap_or(Aggregation::Average).apply(trigger.values);
        let Some(step) = self.steps.iter().find(|s| s.contains(metric - trigger.threshold)) else { return Decision::Hold };
        let to = bounds.clamp(self.apply(step, current));
        if to > current {
            // During a scale-out cooldown the step counts from the capacity
            // before it: +2 then +3 adds only 1 more.
            let base = cooldowns.scale_out_base(now).unwrap_or(current);
            scale_out(bounds.clamp(self.apply(step, base)), current, base)
        } else if to < current && !cooldowns.blocks_scale_in(now) {
            Decision::Scale { to, direction: Direction::In, base: current }
        } else {
            Decision::Hold
        }
    }
}

/// PercentChangeInCapacity's rounding: above 1 rounds down, between 0 and 1
/// is 1, between -1 and 0 is -1, below -1 rounds up (towards zero).
fn percent_change(capacity: i64, percent: i64) -> i64 {
    let change = capacity as f64 * percent as f64 / 100.0;
    if change == 0.0 {
        0
    } else if change.abs() < 1.0 {
        change.signum() as i64
    } else {
        change.trunc() as i64
    }
}

/// A policy's configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyConfig {
    TargetTracking(TargetTracking),
    Step(StepScaling),
}

impl PolicyConfig {
    pub fn type_name(&self) -> &'static str {
        match self {
            PolicyConfig::TargetTracking(_) => "TargetTrackingScaling",
            PolicyConfig::Step(_) => "StepScaling",
        }
    }

    /// The cooldown after an activity in `direction` (AWS time).
    pub fn cooldown(&self, direction: Direction) -> Duration {
        let secs = match (self, direction) {
            (PolicyConfig::TargetTracking(tt), Direction::Out) => tt.scale_out_cooldown,
            (PolicyConfig::TargetTracking(tt), Direction::In) => tt.scale_in_cooldown,
            (PolicyConfig::Step(step), _) => step.cooldown,
        };
        Duration::from_secs(u64::from(secs.unwrap_or(DEFAULT_COOLDOWN_SECS)))
    }

    /// What the policy wants done when `trigger` invokes it.
    pub fn decide(
        &self,
        trigger: &Trigger<'_>,
        current: u32,
        bounds: Bounds,
        cooldowns: &Cooldowns,
        now: SystemTime,
    ) -> Decision {
        match self {
            PolicyConfig::TargetTracking(tt) => tt.decide(trigger, current, bounds, cooldowns, now),
            PolicyConfig::Step(step) => step.decide(trigger, current, bounds, cooldowns, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds { min: 1, max: 8 };

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn tracking(target: f64) -> TargetTracking {
        TargetTracking {
            target_value: target,
            metric: TrackedMetric::Predefined { kind: INVOCATIONS_PER_INSTANCE.into(), resource_label: None },
            scale_out_cooldown: None,
            scale_in_cooldown: None,
            disable_scale_in: None,
        }
    }

    fn high(values: &[f64]) -> Trigger<'_> {
        Trigger { side: Some(Side::High), threshold: 100.0, values }
    }

    fn low(values: &[f64]) -> Trigger<'_> {
        Trigger { side: Some(Side::Low), threshold: 90.0, values }
    }

    fn scale(to: u32, direction: Direction, base: u32) -> Decision {
        Decision::Scale { to, direction, base }
    }

    #[test]
    fn target_tracking_scales_out_in_proportion_to_the_metric() {
        let tt = tracking(100.0);
        let none = Cooldowns::default();
        // 2 instances at 250 invocations/min each need ceil(2 × 2.5) = 5.
        assert_eq!(tt.decide(&high(&[240.0, 260.0, 250.0]), 2, BOUNDS, &none, at(0)), scale(5, Direction::Out, 2));
        // Exactly proportional lands on a whole number without rounding noise.
        assert_eq!(tt.decide(&high(&[300.0]), 1, BOUNDS, &none, at(0)), scale(3, Direction::Out, 1));
        // Bounded by MaxCapacity; at the max nothing happens.
        assert_eq!(tt.decide(&high(&[1000.0]), 4, BOUNDS, &none, at(0)), scale(8, Direction::Out, 4));
        assert_eq!(tt.decide(&high(&[1000.0]), 8, BOUNDS, &none, at(0)), Decision::Hold);
    }

    #[test]
    fn target_tracking_scales_in_conservatively_and_not_below_min() {
        let tt = tracking(100.0);
        let none = Cooldowns::default();
        // 4 instances at 40/min each: ceil(1.6) = 2 keeps the metric under the target.
        assert_eq!(tt.decide(&low(&[40.0]), 4, BOUNDS, &none, at(0)), scale(2, Direction::In, 4));
        // 2 instances at 85/min: removing one would overshoot the target, so hold.
        assert_eq!(tt.decide(&low(&[85.0]), 2, BOUNDS, &none, at(0)), Decision::Hold);
        // Never below MinCapacity.
        let bounds = Bounds { min: 3, max: 8 };
        assert_eq!(tt.decide(&low(&[1.0]), 6, bounds, &none, at(0)), scale(3, Direction::In, 6));
        assert_eq!(tt.decide(&low(&[1.0]), 3, bounds, &none, at(0)), Decision::Hold);
        // DisableScaleIn.
        let no_in = TargetTracking { disable_scale_in: Some(true), ..tracking(100.0) };
        assert_eq!(no_in.decide(&low(&[1.0]), 4, BOUNDS, &none, at(0)), Decision::Hold);
    }

    #[test]
    fn cooldowns_follow_the_user_guide() {
        let tt = tracking(100.0);
        let mut cooldowns = Cooldowns::default();
        // Scaled out 2 → 4, completed at t=100, 300 s cooldown.
        cooldowns.start(Direction::Out, 2, at(100), Duration::from_secs(300));
        // During it, a further scale-out counts from the capacity before (2):
        // 2 × 1.5 = 3 is not larger than the 4 already there.
        assert_eq!(tt.decide(&high(&[150.0]), 4, BOUNDS, &cooldowns, at(200)), Decision::Hold);
        // A larger one goes ahead, still measured from 2.
        assert_eq!(tt.decide(&high(&[350.0]), 4, BOUNDS, &cooldowns, at(200)), scale(7, Direction::Out, 2));
        // Scale-in waits the scale-out cooldown out...
        assert_eq!(tt.decide(&low(&[10.0]), 4, BOUNDS, &cooldowns, at(399)), Decision::Hold);
        // ...and then its own.
        assert_eq!(tt.decide(&low(&[10.0]), 4, BOUNDS, &cooldowns, at(400)), scale(1, Direction::In, 4));
        cooldowns.start(Direction::In, 4, at(500), Duration::from_secs(300));
        assert_eq!(tt.decide(&low(&[10.0]), 2, BOUNDS, &cooldowns, at(700)), Decision::Hold);
        // A scale-out is never blocked by the scale-in cooldown, and ends it.
        assert_eq!(tt.decide(&high(&[250.0]), 2, BOUNDS, &cooldowns, at(700)), scale(5, Direction::Out, 2));
        cooldowns.end_scale_in();
        cooldowns.scale_out = None;
        assert_eq!(tt.decide(&low(&[10.0]), 2, BOUNDS, &cooldowns, at(701)), scale(1, Direction::In, 2));
    }

    fn stepped(adjustment_type: AdjustmentType, steps: &[(Option<f64>, Option<f64>, i64)]) -> StepScaling {
        StepScaling {
            adjustment_type,
            steps: steps.iter().map(|&(lower, upper, adjustment)| Step { lower, upper, adjustment }).collect(),
            min_adjustment_magnitude: None,
            cooldown: None,
            aggregation: None,
        }
    }

    fn breach(threshold: f64, values: &[f64]) -> Trigger<'_> {
        Trigger { side: None, threshold, values }
    }

    #[test]
    fn step_adjustments_pick_the_step_the_breach_falls_in() {
        // Threshold 50: [0, 10) adds 1, [10, ∞) adds 3.
        let policy = stepped(AdjustmentType::ChangeInCapacity, &[(Some(0.0), Some(10.0), 1), (Some(10.0), None, 3)]);
        let none = Cooldowns::default();
        assert_eq!(policy.decide(&breach(50.0, &[50.0]), 2, BOUNDS, &none, at(0)), scale(3, Direction::Out, 2));
        assert_eq!(policy.decide(&breach(50.0, &[59.9]), 2, BOUNDS, &none, at(0)), scale(3, Direction::Out, 2));
        assert_eq!(policy.decide(&breach(50.0, &[60.0]), 2, BOUNDS, &none, at(0)), scale(5, Direction::Out, 2));
        // The average of the datapoints is what breaches (MetricAggregationType's default).
        assert_eq!(policy.decide(&breach(50.0, &[40.0, 80.0]), 2, BOUNDS, &none, at(0)), scale(5, Direction::Out, 2));
        let max = StepScaling { aggregation: Some(Aggregation::Minimum), ..policy.clone() };
        assert_eq!(max.decide(&breach(50.0, &[55.0, 80.0]), 2, BOUNDS, &none, at(0)), scale(3, Direction::Out, 2));
        // Below the threshold: lower bound exclusive, upper inclusive.
        let scale_in = stepped(AdjustmentType::ChangeInCapacity, &[(None, Some(-10.0), -2), (Some(-10.0), Some(0.0), -1)]);
        assert_eq!(scale_in.decide(&breach(50.0, &[40.0]), 4, BOUNDS, &none, at(0)), scale(2, Direction::In, 4));
        assert_eq!(scale_in.decide(&breach(50.0, &[45.0]), 4, BOUNDS, &none, at(0)), scale(3, Direction::In, 4));
    }

    #[test]
    fn adjustment_types_and_bounds() {
        let none = Cooldowns::default();
        let exact = stepped(AdjustmentType::ExactCapacity, &[(Some(0.0), None, 6)]);
        assert_eq!(exact.decide(&breach(1.0, &[2.0]), 2, BOUNDS, &none, at(0)), scale(6, Direction::Out, 2));
        let too_many = stepped(AdjustmentType::ExactCapacity, &[(Some(0.0), None, 60)]);
        assert_eq!(too_many.decide(&breach(1.0, &[2.0]), 2, BOUNDS, &none, at(0)), scale(8, Direction::Out, 2));
        let to_zero = stepped(AdjustmentType::ChangeInCapacity, &[(None, Some(0.0), -10)]);
        assert_eq!(to_zero.decide(&breach(1.0, &[0.0]), 3, BOUNDS, &none, at(0)), scale(1, Direction::In, 3));
        // 25 % of 4 is 1; of 10, 2.5 rounds down to 2; 25 % of 2 is 0.5, which is 1.
        let percent = stepped(AdjustmentType::PercentChangeInCapacity, &[(Some(0.0), None, 25)]);
        let wide = Bounds { min: 1, max: 100 };
        assert_eq!(percent.decide(&breach(1.0, &[2.0]), 4, wide, &none, at(0)), scale(5, Direction::Out, 4));
        assert_eq!(percent.decide(&breach(1.0, &[2.0]), 10, wide, &none, at(0)), scale(12, Direction::Out, 10));
        assert_eq!(percent.decide(&breach(1.0, &[2.0]), 2, wide, &none, at(0)), scale(3, Direction::Out, 2));
        // MinAdjustmentMagnitude 2 lifts the 1 to 2.
        let magnitude = StepScaling { min_adjustment_magnitude: Some(2), ..percent };
        assert_eq!(magnitude.decide(&breach(1.0, &[2.0]), 4, wide, &none, at(0)), scale(6, Direction::Out, 4));
        // -6.67 rounds up to -6.
        assert_eq!(percent_change(20, -33), -6);
    }

    #[test]
    fn only_step_scaling_brings_a_variant_out_of_zero_instances() {
        // An asynchronous variant at 0 instances with a backlog of 3 (per
        // instance: 3, see metrics::Backlog). Target tracking asks for
        // ceil(0 × 3 ÷ 1) = 0: it cannot scale out of zero.
        let from_zero = Bounds { min: 0, max: 4 };
        let none = Cooldowns::default();
        assert_eq!(tracking(1.0).decide(&high(&[3.0, 3.0, 3.0]), 0, from_zero, &none, at(0)), Decision::Hold);
        // The guide's step policy on HasBacklogWithoutCapacity (threshold 1): +1.
        let step = stepped(AdjustmentType::ChangeInCapacity, &[(Some(0.0), None, 1)]);
        assert_eq!(step.decide(&breach(1.0, &[1.0, 1.0]), 0, from_zero, &none, at(0)), scale(1, Direction::Out, 0));
        // And target tracking scales an idle variant in to zero when MinCapacity allows it.
        assert_eq!(tracking(1.0).decide(&low(&[0.0]), 1, from_zero, &none, at(0)), scale(0, Direction::In, 1));
    }

    #[test]
    fn a_step_scale_out_during_cooldown_counts_what_was_added() {
        // The User Guide's example: +2 completes, the alarm fires again for +3: only 1 more.
        let policy = stepped(AdjustmentType::ChangeInCapacity, &[(Some(0.0), Some(10.0), 2), (Some(10.0), None, 3)]);
        let mut cooldowns = Cooldowns::default();
        cooldowns.start(Direction::Out, 2, at(0), Duration::from_secs(300));
        assert_eq!(policy.decide(&breach(50.0, &[55.0]), 4, BOUNDS, &cooldowns, at(60)), Decision::Hold);
        assert_eq!(policy.decide(&breach(50.0, &[65.0]), 4, BOUNDS, &cooldowns, at(60)), scale(5, Direction::Out, 2));
        assert_eq!(policy.decide(&breach(50.0, &[65.0]), 4, BOUNDS, &cooldowns, at(300)), scale(7, Direction::Out, 4));
    }

    #[test]
    fn step_rules_are_checked() {
        let steps = |list: &[(Option<f64>, Option<f64>)]| -> Vec<Step> {
            list.iter().map(|&(lower, upper)| Step { lower, upper, adjustment: 1 }).collect()
        };
        assert!(check_steps(&steps(&[(Some(0.0), Some(10.0)), (Some(10.0), None)])).is_ok());
        assert!(check_steps(&steps(&[(None, Some(0.0)), (Some(0.0), None)])).is_ok());
        assert!(check_steps(&steps(&[(None, None)])).unwrap_err().contains("can't be null"));
        assert!(check_steps(&steps(&[(Some(0.0), Some(10.0)), (Some(20.0), None)])).unwrap_err().contains("gap"));
        assert!(check_steps(&steps(&[(Some(0.0), Some(10.0)), (Some(5.0), None)])).unwrap_err().contains("overlap"));
        assert!(check_steps(&steps(&[(Some(0.0), Some(10.0))])).unwrap_err().contains("null upper bound"));
        assert!(check_steps(&steps(&[(Some(-5.0), Some(0.0))])).unwrap_err().contains("null lower bound"));
    }

    #[test]
    fn tracking_alarms_follow_aws_datapoint_counts() {
        assert_eq!(tracking_alarm_rule(Side::High, 70.0, 60), (Comparison::GreaterThanThreshold, 70.0, 3));
        assert_eq!(tracking_alarm_rule(Side::Low, 70.0, 60), (Comparison::LessThanThreshold, 63.0, 15));
        assert_eq!(tracking_alarm_rule(Side::High, 4.0, 10).2, 3);
        assert_eq!(tracking_alarm_rule(Side::Low, 4.0, 10).2, 90);
        let cooldowns = PolicyConfig::TargetTracking(tracking(1.0));
        assert_eq!(cooldowns.cooldown(Direction::In), Duration::from_secs(300), "SageMaker variants' default");
    }
}
