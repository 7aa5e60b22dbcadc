//! The auto-scaling manager: the Application Auto Scaling policy perfsize
//! recommends for an endpoint variant — its metric, target, bounds and
//! cooldowns, as AWS takes them and as ready-to-paste CLI commands — and what
//! a test of that policy under a ramp measured ([`timeline`]). Pure: the calls
//! that apply a policy to a real endpoint are the environment's
//! (`environment::Autoscaler`), the test that drives traffic is the engine's.

pub mod backlog;
pub mod minimum;
pub mod timeline;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use minimum::{MinimumSearch, suggestion};
pub use timeline::{InstanceSample, ScaleOut, Timeline, TimelinePoint};

/// The scalable dimension of a real-time endpoint's variant.
pub const SCALABLE_DIMENSION: &str = "sagemaker:variant:DesiredInstanceCount";

/// What target tracking follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScalingMetric {
    /// `SageMakerVariantInvocationsPerInstance`: invocations per instance per
    /// minute, a 1-minute metric (scale-out after three minutes above target).
    Invocations,
    /// `SageMakerVariantConcurrentRequestsPerModelHighResolution`: requests in
    /// flight per model copy, a 10-second metric that reacts sooner.
    Concurrency,
    /// `ApproximateBacklogSizePerInstance` of an asynchronous endpoint
    /// (customized, 1-minute): requests waiting per instance. The only one
    /// an asynchronous endpoint publishes, and the only one that may start
    /// from zero instances (with the step policy of [`backlog`]).
    Backlog,
}

impl ScalingMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            ScalingMetric::Invocations => "invocations",
            ScalingMetric::Concurrency => "concurrency",
            ScalingMetric::Backlog => "backlog",
        }
    }

    /// The predefined metric type Application Auto Scaling knows it by; None
    /// for the backlog, a customized metric ([`backlog::metric_specification`]).
    pub fn predefined_type(self) -> Option<&'static str> {
        match self {
            ScalingMetric::Invocations => Some("SageMakerVariantInvocationsPerInstance"),
            ScalingMetric::Concurrency => Some("SageMakerVariantConcurrentRequestsPerModelHighResolution"),
            ScalingMetric::Backlog => None,
        }
    }

    /// Whether it is an asynchronous endpoint's metric (and the only one it has).
    pub fn is_asynchronous(self) -> bool {
        self == ScalingMetric::Backlog
    }

    /// The unit of its target, for people.
    pub fn unit(self) -> &'static str {
        match self {
            ScalingMetric::Invocations => "invocations per instance per minute",
            ScalingMetric::Concurrency => "concurrent requests per instance",
            ScalingMetric::Backlog => "requests waiting per instance",
        }
    }

    /// The target that keeps each instance at `safety_factor` of what one
    /// instance was measured to sustain. Invocations: the rate, per minute.
    /// Concurrency: by Little's law, requests in flight at that rate are the
    /// rate × the time each spends in the system (its median latency there).
    /// Backlog: a backlog of B per instance waits B ÷ capacity, so the target
    /// is the backlog that drains within the safety factor of the limit.
    pub fn target(self, capacity: &MeasuredCapacity, safety_factor: f64) -> f64 {
        match self {
            ScalingMetric::Invocations => (capacity.tps_per_instance * 60.0 * safety_factor).floor().max(1.0),
            ScalingMetric::Concurrency => {
                let in_flight = capacity.tps_per_instance * capacity.latency_p50_ms / 1000.0;
                // AWS takes fractional targets; two decimals is what a person can act on.
                ((in_flight * safety_factor * 100.0).round() / 100.0).max(0.01)
            }
            ScalingMetric::Backlog => {
                (capacity.tps_per_instance * capacity.latency_limit_ms / 1000.0 * safety_factor).floor().max(1.0)
            }
        }
    }

    /// How much of this metric one second of traffic puts on each instance:
    /// what is compared with the target to tell when a policy should act.
    /// The backlog is seen from the client: requests submitted and not yet
    /// answered.
    pub fn load_per_instance(self, offered_per_second: f64, in_flight: f64, instances: u32) -> f64 {
        let n = instances.max(1) as f64;
        match self {
            ScalingMetric::Invocations => offered_per_second * 60.0 / n,
            ScalingMetric::Concurrency | ScalingMetric::Backlog => in_flight / n,
        }
    }

    /// Whether a second with this load on `instances` in service asks the
    /// policy for more. With none in service, only a backlog can ask (it is
    /// what wakes an endpoint at zero); the others have no instance to
    /// measure per.
    pub fn breached(self, offered_per_second: f64, in_flight: f64, instances: u32, target: f64) -> bool {
        if instances == 0 {
            return self == ScalingMetric::Backlog && in_flight > 0.0;
        }
        self.load_per_instance(offered_per_second, in_flight, instances) > target
    }
}

impl fmt::Display for ScalingMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ScalingMetric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "invocations" => Ok(ScalingMetric::Invocations),
            "concurrency" => Ok(ScalingMetric::Concurrency),
            "backlog" => Ok(ScalingMetric::Backlog),
            other => Err(format!(
                "`{other}` is not a scaling metric: use invocations or concurrency (real-time), or backlog (--async)"
            )),
        }
    }
}

/// What one instance of the recommended type was measured to sustain.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeasuredCapacity {
    pub tps_per_instance: f64,
    /// Median latency at that rate, for the concurrency target.
    pub latency_p50_ms: f64,
    /// The latency limit of the requirements: how long a request may take,
    /// waiting included, for the backlog target.
    pub latency_limit_ms: f64,
}

/// A target-tracking policy on one endpoint variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub metric: ScalingMetric,
    pub target: f64,
    pub min: u32,
    pub max: u32,
    #[serde(with = "seconds")]
    pub scale_out_cooldown: Duration,
    #[serde(with = "seconds")]
    pub scale_in_cooldown: Duration,
}

/// Cooldowns as AWS writes them: whole seconds.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

/// The ResourceId of an endpoint's variant in Application Auto Scaling.
pub fn resource_id(endpoint: &str, variant: &str) -> String {
    format!("endpoint/{endpoint}/variant/{variant}")
}

/// How long a policy waits after scaling out and in before it may again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cooldowns {
    pub scale_out: Duration,
    pub scale_in: Duration,
}

impl Default for Cooldowns {
    /// perfsize's defaults: out quickly (a minute), in slowly (five).
    fn default() -> Cooldowns {
        Cooldowns { scale_out: Duration::from_secs(60), scale_in: Duration::from_secs(300) }
    }
}

impl Policy {
    /// The target-tracking policy on `metric` for a type one instance of
    /// which sustains `capacity`: target at `safety_factor` of it, enough
    /// instances at peak, never fewer than the verified count.
    pub fn new(
        metric: ScalingMetric,
        capacity: &MeasuredCapacity,
        safety_factor: f64,
        peak_tps: f64,
        verified: u32,
        min: u32,
        cooldowns: Cooldowns,
    ) -> Policy {
        let target = metric.target(capacity, safety_factor);
        Policy {
            metric,
            target,
            min,
            max: Policy::max_for(metric, capacity, target, peak_tps, verified).max(min),
            scale_out_cooldown: cooldowns.scale_out,
            scale_in_cooldown: cooldowns.scale_in,
        }
    }

    /// The most instances the policy may need: enough for every instance to
    /// sit at its target at peak, and never fewer than the count verified at
    /// fixed scale.
    pub fn max_for(metric: ScalingMetric, capacity: &MeasuredCapacity, target: f64, peak_tps: f64, verified: u32) -> u32 {
        let needed = match metric {
            ScalingMetric::Invocations => peak_tps * 60.0 / target,
            ScalingMetric::Concurrency => peak_tps * capacity.latency_p50_ms / 1000.0 / target,
            // A backlog at its target drains at capacity: the count that
            // completes the peak is what it needs.
            ScalingMetric::Backlog => peak_tps / capacity.tps_per_instance.max(f64::MIN_POSITIVE),
        };
        (needed.ceil() as u32).max(verified).max(1)
    }

    /// The name perfsize gives the policy.
    pub fn name(&self) -> String {
        format!("perfsize-{}-target", self.metric)
    }

    /// The metric as `TargetTrackingScalingPolicyConfiguration` names it:
    /// predefined, or the backlog of `endpoint` as a customized metric.
    fn metric_specification(&self, endpoint: &str) -> (&'static str, serde_json::Value) {
        match self.metric.predefined_type() {
            Some(predefined) => ("PredefinedMetricSpecification", serde_json::json!({ "PredefinedMetricType": predefined })),
            None => ("CustomizedMetricSpecification", backlog::metric_specification(endpoint)),
        }
    }

    /// `TargetTrackingScalingPolicyConfiguration` as the API and CLI take it.
    pub fn configuration(&self, endpoint: &str) -> serde_json::Value {
        let (key, metric) = self.metric_specification(endpoint);
        serde_json::json!({
            "TargetValue": self.target,
            key: metric,
            "ScaleInCooldown": self.scale_in_cooldown.as_secs(),
            "ScaleOutCooldown": self.scale_out_cooldown.as_secs(),
        })
    }

    /// Whether the policy may leave the endpoint at zero instances, and so
    /// needs the step policy that wakes it ([`backlog::step_configuration`]).
    pub fn scales_to_zero(&self) -> bool {
        self.min == 0
    }

    /// The AWS CLI commands that apply this policy to `endpoint`: register,
    /// target tracking, and from zero the step policy and its alarm.
    pub fn commands(&self, endpoint: &str, variant: &str) -> Vec<String> {
        let id = resource_id(endpoint, variant);
        let target = format!("--service-namespace sagemaker --resource-id {id} --scalable-dimension {SCALABLE_DIMENSION}");
        let mut commands = vec![
            format!(
                "aws application-autoscaling register-scalable-target {target} --min-capacity {} --max-capacity {}",
                self.min, self.max
            ),
            format!(
                "aws application-autoscaling put-scaling-policy {target} --policy-name {} --policy-type TargetTrackingScaling --target-tracking-scaling-policy-configuration '{}'",
                self.name(),
                self.configuration(endpoint)
            ),
        ];
        if self.scales_to_zero() {
            commands.extend(backlog::from_zero_commands(&target, endpoint, self.scale_out_cooldown));
        }
        commands
    }
}

/// Instances behind an endpoint variant right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instances {
    pub desired: u32,
    /// In service: serving traffic.
    pub current: u32,
}

/// One scaling activity, as Application Auto Scaling records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub description: String,
    pub cause: String,
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const M5: MeasuredCapacity = MeasuredCapacity { tps_per_instance: 118.0, latency_p50_ms: 20.0, latency_limit_ms: 500.0 };

    #[test]
    fn the_invocations_target_is_measured_capacity_per_minute_times_the_safety_factor() {
        assert_eq!(ScalingMetric::Invocations.target(&M5, 0.5), 3540.0);
        assert_eq!(ScalingMetric::Invocations.target(&MeasuredCapacity { tps_per_instance: 0.001, ..M5 }, 0.5), 1.0);
    }

    #[test]
    fn the_concurrency_target_follows_littles_law() {
        // 118 TPS × 20 ms = 2.36 requests in flight; half of it.
        assert_eq!(ScalingMetric::Concurrency.target(&M5, 0.5), 1.18);
    }

    #[test]
    fn the_maximum_lets_every_instance_sit_at_its_target_at_peak() {
        let target = ScalingMetric::Invocations.target(&M5, 0.5);
        assert_eq!(Policy::max_for(ScalingMetric::Invocations, &M5, target, 400.0, 4), 7, "400 TPS / 59 TPS each");
        assert_eq!(Policy::max_for(ScalingMetric::Invocations, &M5, target, 50.0, 2), 2, "never below the verified count");
        let target = ScalingMetric::Concurrency.target(&M5, 0.5);
        assert_eq!(Policy::max_for(ScalingMetric::Concurrency, &M5, target, 400.0, 4), 7);
    }

    #[test]
    fn commands_name_the_variant_metric_and_bounds() {
        let policy = Policy {
            metric: ScalingMetric::Concurrency,
            target: 1.18,
            min: 2,
            max: 7,
            scale_out_cooldown: Duration::from_secs(60),
            scale_in_cooldown: Duration::from_secs(300),
        };
        let [register, put] = <[String; 2]>::try_from(policy.commands("my-endpoint", "AllTraffic")).unwrap();
        assert!(register.contains("--resource-id endpoint/my-endpoint/variant/AllTraffic"), "{register}");
        assert!(register.ends_with("--min-capacity 2 --max-capacity 7"), "{register}");
        assert!(put.contains("SageMakerVariantConcurrentRequestsPerModelHighResolution"), "{put}");
        assert!(put.contains(r#""TargetValue":1.18"#) && put.contains(r#""ScaleOutCooldown":60"#), "{put}");
        assert_eq!("concurrency".parse::<ScalingMetric>(), Ok(ScalingMetric::Concurrency));
        assert!("cpu".parse::<ScalingMetric>().unwrap_err().contains("invocations or concurrency"));
    }
}
