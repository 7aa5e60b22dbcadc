//! What an asynchronous endpoint's policy needs beyond target tracking:
//! its metric, `ApproximateBacklogSizePerInstance`, is a customized one; and
//! when it may scale to zero, a step-scaling policy on a
//! `HasBacklogWithoutCapacity` alarm — without which an endpoint at zero
//! instances waits for the tracking target to notice a backlog it has no
//! instance to measure per (and ⌈0 × anything⌉ is still 0).

use std::time::Duration;

/// The name of the step policy that wakes an endpoint at zero.
pub const STEP_POLICY_NAME: &str = "perfsize-backlog-from-zero";

/// The alarm's metric: 1 while requests wait and no instance serves.
pub const ALARM_METRIC: &str = "HasBacklogWithoutCapacity";

/// How the alarm looks at its metric: two one-minute periods at 1 (as the
/// SageMaker guide sets it up), so a single stray sample does not wake
/// the endpoint.
pub const ALARM_PERIOD_SECONDS: i32 = 60;
pub const ALARM_EVALUATION_PERIODS: i32 = 2;
pub const ALARM_THRESHOLD: f64 = 1.0;

/// `CustomizedMetricSpecification` of `endpoint`'s backlog per instance.
pub fn metric_specification(endpoint: &str) -> serde_json::Value {
    serde_json::json!({
        "MetricName": "ApproximateBacklogSizePerInstance",
        "Namespace": "AWS/SageMaker",
        "Dimensions": [{ "Name": "EndpointName", "Value": endpoint }],
        "Statistic": "Average",
    })
}

/// What [`alarm_name`] appends to its endpoint's name.
pub const ALARM_SUFFIX: &str = "-has-backlog-without-capacity";

/// The alarm on `endpoint`'s HasBacklogWithoutCapacity. perfsize's own
/// endpoints start with `perfsize-<run id>`, so their alarms do too, and
/// `perfsize cleanup` finds them by that prefix.
pub fn alarm_name(endpoint: &str) -> String {
    format!("{endpoint}{ALARM_SUFFIX}")
}

/// `StepScalingPolicyConfiguration` that adds one instance whenever the
/// alarm fires.
pub fn step_configuration(cooldown: Duration) -> serde_json::Value {
    serde_json::json!({
        "AdjustmentType": "ChangeInCapacity",
        "MetricAggregationType": "Average",
        "Cooldown": cooldown.as_secs(),
        "StepAdjustments": [{ "MetricIntervalLowerBound": 0, "ScalingAdjustment": 1 }],
    })
}

/// The CLI commands that wake `endpoint` from zero: the step policy, then
/// the alarm whose action is the step policy's ARN (which the first prints).
/// `target` is the scalable target's `--service-namespace … --scalable-dimension …`.
pub fn from_zero_commands(target: &str, endpoint: &str, cooldown: Duration) -> [String; 2] {
    [
        format!(
            "aws application-autoscaling put-scaling-policy {target} --policy-name {STEP_POLICY_NAME} --policy-type StepScaling --step-scaling-policy-configuration '{}' --query PolicyARN --output text",
            step_configuration(cooldown)
        ),
        format!(
            "aws cloudwatch put-metric-alarm --alarm-name {} --namespace AWS/SageMaker --metric-name {ALARM_METRIC} --dimensions Name=EndpointName,Value={endpoint} --statistic Average --period {ALARM_PERIOD_SECONDS} --evaluation-periods {ALARM_EVALUATION_PERIODS} --datapoints-to-alarm {ALARM_EVALUATION_PERIODS} --threshold {ALARM_THRESHOLD} --comparison-operator GreaterThanOrEqualToThreshold --treat-missing-data missing --alarm-actions STEP-POLICY-ARN",
            alarm_name(endpoint)
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::{Cooldowns, MeasuredCapacity, Policy, ScalingMetric};

    /// 40 completions/s per instance under a 5 s limit.
    const ASYNC: MeasuredCapacity = MeasuredCapacity { tps_per_instance: 40.0, latency_p50_ms: 900.0, latency_limit_ms: 5000.0 };

    fn backlog_policy(capacity: &MeasuredCapacity, verified: u32, min: u32) -> Policy {
        Policy::new(ScalingMetric::Backlog, capacity, 0.5, 100.0, verified, min, Cooldowns::default())
    }

    #[test]
    fn the_target_is_the_backlog_that_drains_within_the_limit() {
        // 40 completions/s per instance, a 5 s limit, half of it: 100 waiting.
        let p = backlog_policy(&ASYNC, 3, 1);
        assert_eq!((p.target, p.min, p.max), (100.0, 1, 3), "100 TPS ÷ 40 each is 3, as verified");
        let slow = MeasuredCapacity { tps_per_instance: 0.05, latency_limit_ms: 10_000.0, ..ASYNC };
        assert_eq!(backlog_policy(&slow, 1, 0).target, 1.0, "never below one request");
    }

    #[test]
    fn scaling_to_zero_adds_the_step_policy_and_its_alarm() {
        let at_one = backlog_policy(&ASYNC, 3, 1);
        assert_eq!(at_one.commands("ep", "AllTraffic").len(), 2);
        let at_zero = Policy { min: 0, ..at_one };
        let commands = at_zero.commands("ep", "AllTraffic");
        assert_eq!(commands.len(), 4);
        assert!(commands[0].ends_with("--min-capacity 0 --max-capacity 3"), "{}", commands[0]);
        assert!(commands[1].contains(r#""MetricName":"ApproximateBacklogSizePerInstance""#), "{}", commands[1]);
        assert!(commands[1].contains(r#""CustomizedMetricSpecification""#), "{}", commands[1]);
        assert!(commands[2].contains("StepScaling") && commands[2].contains(r#""ScalingAdjustment":1"#), "{}", commands[2]);
        assert!(commands[3].contains("--alarm-name ep-has-backlog-without-capacity"), "{}", commands[3]);
        assert!(commands[3].contains("HasBacklogWithoutCapacity") && commands[3].contains("Value=ep"), "{}", commands[3]);
    }

    #[test]
    fn only_a_backlog_wakes_an_endpoint_at_zero() {
        assert!(ScalingMetric::Backlog.breached(0.0, 3.0, 0, 100.0), "work waits and nothing serves it");
        assert!(!ScalingMetric::Backlog.breached(5.0, 0.0, 0, 100.0), "nothing waits yet");
        assert!(!ScalingMetric::Invocations.breached(500.0, 3.0, 0, 100.0), "no instance to measure per");
        assert!(ScalingMetric::Backlog.breached(0.0, 201.0, 2, 100.0));
    }
}
