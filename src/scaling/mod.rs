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

pub use backlog::BacklogPolicy;
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
}

impl ScalingMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            ScalingMetric::Invocations => "invocations",
            ScalingMetric::Concurrency => "concurrency",
        }
    }

    /// The predefined metric type Application Auto Scaling knows it by.
    pub fn predefined_type(self) -> &'static str {
        match self {
            ScalingMetric::Invocations => "SageMakerVariantInvocationsPerInstance",
            ScalingMetric::Concurrency => "SageMakerVariantConcurrentRequestsPerModelHighResolution",
        }
    }

    /// The unit of its target, for people.
    pub fn unit(self) -> &'static str {
        match self {
            ScalingMetric::Invocations => "invocations per instance per minute",
            ScalingMetric::Concurrency => "concurrent requests per instance",
        }
    }

    /// The target that keeps each instance at `safety_factor` of what one
    /// instance was measured to sustain. Invocations: the rate, per minute.
    /// Concurrency: by Little's law, requests in flight at that rate are the
    /// rate × the time each spends in the system (its median latency there).
    pub fn target(self, capacity: &MeasuredCapacity, safety_factor: f64) -> f64 {
        match self {
            ScalingMetric::Invocations => (capacity.tps_per_instance * 60.0 * safety_factor).floor().max(1.0),
            ScalingMetric::Concurrency => {
                let in_flight = capacity.tps_per_instance * capacity.latency_p50_ms / 1000.0;
                // AWS takes fractional targets; two decimals is what a person can act on.
                ((in_flight * safety_factor * 100.0).round() / 100.0).max(0.01)
            }
        }
    }

    /// How much of this metric one second of traffic puts on each instance:
    /// what is compared with the target to tell when a policy should act.
    pub fn load_per_instance(self, offered_per_second: f64, in_flight: f64, instances: u32) -> f64 {
        let n = instances.max(1) as f64;
        match self {
            ScalingMetric::Invocations => offered_per_second * 60.0 / n,
            ScalingMetric::Concurrency => in_flight / n,
        }
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
            other => Err(format!("`{other}` is not a scaling metric: use invocations or concurrency")),
        }
    }
}

/// What one instance of the recommended type was measured to sustain.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeasuredCapacity {
    pub tps_per_instance: f64,
    /// Median latency at that rate, for the concurrency target.
    pub latency_p50_ms: f64,
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
        };
        (needed.ceil() as u32).max(verified).max(1)
    }

    /// The name perfsize gives the policy.
    pub fn name(&self) -> String {
        format!("perfsize-{}-target", self.metric)
    }

    /// `TargetTrackingScalingPolicyConfiguration` as the API and CLI take it.
    pub fn configuration(&self) -> serde_json::Value {
        serde_json::json!({
            "TargetValue": self.target,
            "PredefinedMetricSpecification": { "PredefinedMetricType": self.metric.predefined_type() },
            "ScaleInCooldown": self.scale_in_cooldown.as_secs(),
            "ScaleOutCooldown": self.scale_out_cooldown.as_secs(),
        })
    }

    /// The AWS CLI commands that apply this policy to `endpoint`.
    pub fn commands(&self, endpoint: &str, variant: &str) -> [String; 2] {
        let id = resource_id(endpoint, variant);
        [
            format!(
                "aws application-autoscaling register-scalable-target --service-namespace sagemaker --resource-id {id} --scalable-dimension {SCALABLE_DIMENSION} --min-capacity {} --max-capacity {}",
                self.min, self.max
            ),
            format!(
                "aws application-autoscaling put-scaling-policy --service-namespace sagemaker --resource-id {id} --scalable-dimension {SCALABLE_DIMENSION} --policy-name {} --policy-type TargetTrackingScaling --target-tracking-scaling-policy-configuration '{}'",
                self.name(),
                self.configuration()
            ),
        ]
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

    const M5: MeasuredCapacity = MeasuredCapacity { tps_per_instance: 118.0, latency_p50_ms: 20.0 };

    #[test]
    fn the_invocations_target_is_measured_capacity_per_minute_times_the_safety_factor() {
        assert_eq!(ScalingMetric::Invocations.target(&M5, 0.5), 3540.0);
        assert_eq!(
            ScalingMetric::Invocations.target(&MeasuredCapacity { tps_per_instance: 0.001, latency_p50_ms: 1.0 }, 0.5),
            1.0
        );
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
        let [register, put] = policy.commands("my-endpoint", "AllTraffic");
        assert!(register.contains("--resource-id endpoint/my-endpoint/variant/AllTraffic"), "{register}");
        assert!(register.ends_with("--min-capacity 2 --max-capacity 7"), "{register}");
        assert!(put.contains("SageMakerVariantConcurrentRequestsPerModelHighResolution"), "{put}");
        assert!(put.contains(r#""TargetValue":1.18"#) && put.contains(r#""ScaleOutCooldown":60"#), "{put}");
        assert_eq!("concurrency".parse::<ScalingMetric>(), Ok(ScalingMetric::Concurrency));
        assert!("cpu".parse::<ScalingMetric>().unwrap_err().contains("invocations or concurrency"));
    }
}
