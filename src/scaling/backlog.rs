//! The auto-scaling policy of an asynchronous endpoint: target tracking on
//! `ApproximateBacklogSizePerInstance`, and — when it may scale to zero — a
//! step-scaling policy on a `HasBacklogWithoutCapacity` alarm, without which
//! an endpoint at zero instances waits for the tracking target to notice a
//! backlog it has no instance to measure per.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Cooldowns, SCALABLE_DIMENSION, resource_id};

/// Target tracking on the backlog per instance, with its bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacklogPolicy {
    /// Requests waiting per instance that the policy holds.
    pub target: f64,
    pub min: u32,
    pub max: u32,
    #[serde(with = "super::seconds")]
    pub scale_out_cooldown: Duration,
    #[serde(with = "super::seconds")]
    pub scale_in_cooldown: Duration,
}

impl BacklogPolicy {
    /// The policy for a type one instance of which completes
    /// `tps_per_instance`, under an end-to-end limit of `latency_limit`:
    /// by Little's law a backlog of B per instance waits B / capacity, so the
    /// target is the backlog that drains within `safety_factor` of the
    /// limit. `verified` instances served the peak at fixed scale; the
    /// maximum is never below it.
    pub fn new(
        tps_per_instance: f64,
        latency_limit: Duration,
        safety_factor: f64,
        verified: u32,
        min: u32,
        cooldowns: Cooldowns,
    ) -> BacklogPolicy {
        let target = (tps_per_instance * latency_limit.as_secs_f64() * safety_factor).floor().max(1.0);
        BacklogPolicy {
            target,
            min,
            max: verified.max(min).max(1),
            scale_out_cooldown: cooldowns.scale_out,
            scale_in_cooldown: cooldowns.scale_in,
        }
    }

    /// Whether it may go to zero instances (and so needs the step policy).
    pub fn scales_to_zero(&self) -> bool {
        self.min == 0
    }

    /// `TargetTrackingScalingPolicyConfiguration` on the customized metric.
    pub fn configuration(&self, endpoint: &str) -> serde_json::Value {
        serde_json::json!({
            "TargetValue": self.target,
            "CustomizedMetricSpecification": {
                "MetricName": "ApproximateBacklogSizePerInstance",
                "Namespace": "AWS/SageMaker",
                "Dimensions": [{ "Name": "EndpointName", "Value": endpoint }],
                "Statistic": "Average",
            },
            "ScaleInCooldown": self.scale_in_cooldown.as_secs(),
            "ScaleOutCooldown": self.scale_out_cooldown.as_secs(),
        })
    }

    /// `StepScalingPolicyConfiguration` that adds one instance whenever the
    /// HasBacklogWithoutCapacity alarm fires.
    pub fn step_configuration(&self) -> serde_json::Value {
        serde_json::json!({
            "AdjustmentType": "ChangeInCapacity",
            "MetricAggregationType": "Average",
            "Cooldown": self.scale_out_cooldown.as_secs(),
            "StepAdjustments": [{ "MetricIntervalLowerBound": 0, "ScalingAdjustment": 1 }],
        })
    }

    /// The AWS CLI commands that apply the policy to `endpoint`: register,
    /// target tracking, and at min 0 the step policy and its alarm (whose
    /// action is the step policy's ARN, which the put-scaling-policy call prints).
    pub fn commands(&self, endpoint: &str, variant: &str) -> Vec<String> {
        let id = resource_id(endpoint, variant);
        let target = format!("--service-namespace sagemaker --resource-id {id} --scalable-dimension {SCALABLE_DIMENSION}");
        let mut commands = vec![
            format!(
                "aws application-autoscaling register-scalable-target {target} --min-capacity {} --max-capacity {}",
                self.min, self.max
            ),
            format!(
                "aws application-autoscaling put-scaling-policy {target} --policy-name perfsize-backlog-target --policy-type TargetTrackingScaling --target-tracking-scaling-policy-configuration '{}'",
                self.configuration(endpoint)
            ),
        ];
        if self.scales_to_zero() {
            commands.push(format!(
                "aws application-autoscaling put-scaling-policy {target} --policy-name perfsize-backlog-from-zero --policy-type StepScaling --step-scaling-policy-configuration '{}' --query PolicyARN --output text",
                self.step_configuration()
            ));
            commands.push(format!(
                "aws cloudwatch put-metric-alarm --alarm-name perfsize-{endpoint}-has-backlog-without-capacity --namespace AWS/SageMaker --metric-name HasBacklogWithoutCapacity --dimensions Name=EndpointName,Value={endpoint} --statistic Average --period 60 --evaluation-periods 2 --datapoints-to-alarm 2 --threshold 1 --comparison-operator GreaterThanOrEqualToThreshold --treat-missing-data missing --alarm-actions STEP-POLICY-ARN"
            ));
        }
        commands
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_the_backlog_that_drains_within_the_limit() {
        // 40 completions/s per instance, a 5 s limit, half of it: 100 waiting.
        let p = BacklogPolicy::new(40.0, Duration::from_secs(5), 0.5, 3, 1, Cooldowns::default());
        assert_eq!((p.target, p.min, p.max), (100.0, 1, 3));
        let slow = BacklogPolicy::new(0.05, Duration::from_secs(10), 0.5, 1, 0, Cooldowns::default());
        assert_eq!(slow.target, 1.0, "never below one request");
    }

    #[test]
    fn scaling_to_zero_adds_the_step_policy_and_its_alarm() {
        let at_one = BacklogPolicy::new(40.0, Duration::from_secs(5), 0.5, 3, 1, Cooldowns::default());
        assert_eq!(at_one.commands("ep", "AllTraffic").len(), 2);
        let at_zero = BacklogPolicy { min: 0, ..at_one };
        let commands = at_zero.commands("ep", "AllTraffic");
        assert_eq!(commands.len(), 4);
        assert!(commands[0].ends_with("--min-capacity 0 --max-capacity 3"), "{}", commands[0]);
        assert!(commands[1].contains(r#""MetricName":"ApproximateBacklogSizePerInstance""#), "{}", commands[1]);
        assert!(commands[2].contains("StepScaling") && commands[2].contains(r#""ScalingAdjustment":1"#), "{}", commands[2]);
        assert!(commands[3].contains("HasBacklogWithoutCapacity") && commands[3].contains("Value=ep"), "{}", commands[3]);
    }
}
