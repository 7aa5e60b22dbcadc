//! Auto-scaling on the endpoints the environment deployed, through
//! aws-sdk-applicationautoscaling: register the variant as a scalable target,
//! put a target-tracking policy (and, for an asynchronous endpoint that may
//! sit at zero, the step policy and the CloudWatch alarm that wake it), read
//! the activities, deregister. Every registration and alarm is in the ledger
//! before the call, so teardown (and a forced exit's message) knows it —
//! scaling goes before its endpoint.

use std::time::Instant;

use aws_sdk_applicationautoscaling::error::BuildError;
use aws_sdk_applicationautoscaling::types::{
    AdjustmentType, CustomizedMetricSpecification, MetricAggregationType, MetricDimension, MetricStatistic, MetricType,
    PolicyType, PredefinedMetricSpecification, ScalableDimension, ServiceNamespace, StepAdjustment,
    StepScalingPolicyConfiguration, TargetTrackingScalingPolicyConfiguration,
};
use aws_sdk_sagemaker::types::DesiredWeightAndCapacity;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::sagemaker::{already_gone_is_fine, api_error, describe_endpoint};
use super::{ApiError, Autoscaler, DeployError, Deployed, Kind, SageMakerEnvironment};
use crate::sagemaker::VARIANT_NAME;
use crate::scaling::backlog::{self, ALARM_EVALUATION_PERIODS, ALARM_METRIC, ALARM_PERIOD_SECONDS, ALARM_THRESHOLD};
use crate::scaling::{Activity, Instances, Policy, ScalingMetric, resource_id};

fn dimension() -> ScalableDimension {
    ScalableDimension::SageMakerVariantDesiredInstanceCount
}

/// What target tracking follows: a predefined metric, or the backlog of
/// `endpoint` (a customized one).
fn tracked_metric(
    metric: ScalingMetric,
    endpoint: &str,
) -> Result<aws_sdk_applicationautoscaling::types::builders::TargetTrackingScalingPolicyConfigurationBuilder, BuildError> {
    let builder = TargetTrackingScalingPolicyConfiguration::builder();
    let builder = match metric {
        ScalingMetric::Invocations | ScalingMetric::Concurrency => {
            let predefined = match metric {
                ScalingMetric::Invocations => MetricType::SageMakerVariantInvocationsPerInstance,
                _ => MetricType::SageMakerVariantConcurrentRequestsPerModelHighResolution,
            };
            builder.predefined_metric_specification(
                PredefinedMetricSpecification::builder().predefined_metric_type(predefined).build()?,
            )
        }
        ScalingMetric::Backlog => builder.customized_metric_specification(
            CustomizedMetricSpecification::builder()
                .metric_name("ApproximateBacklogSizePerInstance")
                .namespace("AWS/SageMaker")
                .dimensions(MetricDimension::builder().name("EndpointName").value(endpoint).build()?)
                .statistic(MetricStatistic::Average)
                .build(),
        ),
    };
    Ok(builder)
}

/// A builder that refused its input: a bug of ours, reported as an API error
/// rather than a panic so that teardown still runs.
fn invalid(operation: &'static str, e: impl std::fmt::Display) -> ApiError {
    ApiError { operation, code: "InvalidRequest".into(), message: e.to_string() }
}

fn date(t: &aws_smithy_types::DateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos()).unwrap_or_default()
}

/// Deregisters the scalable target of `endpoint`'s variant; one that is not
/// registered (any more) is not an error.
pub(super) async fn deregister(client: &aws_sdk_applicationautoscaling::Client, endpoint: &str) -> Result<(), ApiError> {
    let result = client
        .deregister_scalable_target()
        .service_namespace(ServiceNamespace::Sagemaker)
        .resource_id(resource_id(endpoint, VARIANT_NAME))
        .scalable_dimension(dimension())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| api_error("DeregisterScalableTarget", &e));
    already_gone_is_fine(result)
}

/// The endpoints whose variants are registered as scalable targets.
pub(super) async fn registered_endpoints(client: &aws_sdk_applicationautoscaling::Client) -> Result<Vec<String>, ApiError> {
    let mut endpoints = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .describe_scalable_targets()
            .service_namespace(ServiceNamespace::Sagemaker)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| api_error("DescribeScalableTargets", &e))?;
        endpoints.extend(page.scalable_targets().iter().filter_map(|t| {
            let rest = t.resource_id().strip_prefix("endpoint/")?;
            Some(rest.split_once("/variant/")?.0.to_string())
        }));
        match page.next_token.filter(|t| !t.is_empty()) {
            Some(next) => token = Some(next),
            None => return Ok(endpoints),
        }
    }
}

/// Deletes the alarm `name`; one already gone is not an error.
pub(super) async fn delete_alarm(client: &aws_sdk_cloudwatch::Client, name: &str) -> Result<(), ApiError> {
    let result = client.delete_alarms().alarm_names(name).send().await.map(|_| ()).map_err(|e| api_error("DeleteAlarms", &e));
    already_gone_is_fine(result)
}

/// The alarms whose names start with `prefix`.
pub(super) async fn alarms_named(client: &aws_sdk_cloudwatch::Client, prefix: &str) -> Result<Vec<String>, ApiError> {
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .describe_alarms()
            .alarm_name_prefix(prefix)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| api_error("DescribeAlarms", &e))?;
        names.extend(page.metric_alarms().iter().filter_map(|a| a.alarm_name().map(str::to_string)));
        match page.next_token.filter(|t| !t.is_empty()) {
            Some(next) => token = Some(next),
            None => return Ok(names),
        }
    }
}

impl SageMakerEnvironment {
    /// The step policy that adds an instance whenever `endpoint` has a
    /// backlog and none to serve it, and the alarm that fires it.
    async fn wake_from_zero(&self, endpoint: &str, id: &str, policy: &Policy) -> Result<(), ApiError> {
        let step = StepScalingPolicyConfiguration::builder()
            .adjustment_type(AdjustmentType::ChangeInCapacity)
            .metric_aggregation_type(MetricAggregationType::Average)
            .cooldown(policy.scale_out_cooldown.as_secs() as i32)
            .step_adjustments(
                StepAdjustment::builder()
                    .metric_interval_lower_bound(0.0)
                    .scaling_adjustment(1)
                    .build()
                    .map_err(|e| invalid("PutScalingPolicy", e))?,
            )
            .build();
        let put = self
            .autoscaling
            .put_scaling_policy()
            .policy_name(backlog::STEP_POLICY_NAME)
            .service_namespace(ServiceNamespace::Sagemaker)
            .resource_id(id)
            .scalable_dimension(dimension())
            .policy_type(PolicyType::StepScaling)
            .step_scaling_policy_configuration(step)
            .send()
            .await
            .map_err(|e| api_error("PutScalingPolicy", &e))?;
        let alarm = backlog::alarm_name(endpoint);
        self.record_created(Kind::Alarm, &alarm);
        self.cloudwatch
            .put_metric_alarm()
            .alarm_name(&alarm)
            .namespace("AWS/SageMaker")
            .metric_name(ALARM_METRIC)
            .dimensions(aws_sdk_cloudwatch::types::Dimension::builder().name("EndpointName").value(endpoint).build())
            .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
            .period(ALARM_PERIOD_SECONDS)
            .evaluation_periods(ALARM_EVALUATION_PERIODS)
            .datapoints_to_alarm(ALARM_EVALUATION_PERIODS)
            .threshold(ALARM_THRESHOLD)
            .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanOrEqualToThreshold)
            .treat_missing_data("missing")
            .alarm_actions(put.policy_arn())
            .send()
            .await
            .map_err(|e| api_error("PutMetricAlarm", &e))?;
        Ok(())
    }
}

impl Autoscaler for SageMakerEnvironment {
    async fn apply_policy(&self, endpoint: &str, policy: &Policy) -> Result<(), ApiError> {
        let id = resource_id(endpoint, VARIANT_NAME);
        self.record_created(Kind::ScalableTarget, endpoint);
        self.autoscaling
            .register_scalable_target()
            .service_namespace(ServiceNamespace::Sagemaker)
            .resource_id(&id)
            .scalable_dimension(dimension())
            .min_capacity(policy.min as i32)
            .max_capacity(policy.max as i32)
            .send()
            .await
            .map_err(|e| api_error("RegisterScalableTarget", &e))?;
        let configuration = tracked_metric(policy.metric, endpoint)
            .map_err(|e| invalid("PutScalingPolicy", e))?
            .target_value(policy.target)
            .scale_out_cooldown(policy.scale_out_cooldown.as_secs() as i32)
            .scale_in_cooldown(policy.scale_in_cooldown.as_secs() as i32)
            .build()
            .map_err(|e| invalid("PutScalingPolicy", e))?;
        self.autoscaling
            .put_scaling_policy()
            .policy_name(policy.name())
            .service_namespace(ServiceNamespace::Sagemaker)
            .resource_id(&id)
            .scalable_dimension(dimension())
            .policy_type(PolicyType::TargetTrackingScaling)
            .target_tracking_scaling_policy_configuration(configuration)
            .send()
            .await
            .map_err(|e| api_error("PutScalingPolicy", &e))?;
        if policy.scales_to_zero() {
            self.wake_from_zero(endpoint, &id, policy).await?;
        }
        Ok(())
    }

    async fn remove_policy(&self, endpoint: &str) -> Result<(), ApiError> {
        deregister(&self.autoscaling, endpoint).await?;
        self.record_deleted(Kind::ScalableTarget, endpoint);
        let alarm = backlog::alarm_name(endpoint);
        if crate::error::lock(&self.ledger).holds(Kind::Alarm, &alarm) {
            delete_alarm(&self.cloudwatch, &alarm).await?;
            self.record_deleted(Kind::Alarm, &alarm);
        }
        Ok(())
    }

    async fn instances(&self, deployed: &Deployed) -> Result<Instances, ApiError> {
        let state = describe_endpoint(&self.client, &deployed.endpoint).await?.ok_or_else(|| ApiError {
            operation: "DescribeEndpoint",
            code: "ValidationException".into(),
            message: format!("Could not find endpoint \"{}\".", deployed.endpoint),
        })?;
        let count = |n: Option<i32>| n.unwrap_or(0).max(0) as u32;
        let (desired, current) = (count(state.desired), count(state.current));
        let instances = Instances { desired, current };
        // Instances being launched bill too: the ledger follows the larger count.
        if let Some(fleet) = deployed.candidate.fleet() {
            let mut ledger = crate::error::lock(&self.ledger);
            match desired.max(current) {
                0 => ledger.idle(&deployed.endpoint),
                n => ledger.rebill(&deployed.endpoint, &fleet.with_count(n)),
            }
        }
        Ok(instances)
    }

    async fn scale_to_zero(&self, deployed: &Deployed, cancel: &CancellationToken) -> Result<(), DeployError> {
        let started = Instant::now();
        self.client
            .update_endpoint_weights_and_capacities()
            .endpoint_name(&deployed.endpoint)
            .desired_weights_and_capacities(
                DesiredWeightAndCapacity::builder().variant_name(VARIANT_NAME).desired_instance_count(0).build(),
            )
            .send()
            .await
            .map_err(|e| api_error("UpdateEndpointWeightsAndCapacities", &e))?;
        loop {
            if self.instances(deployed).await? == (Instances { desired: 0, current: 0 }) {
                return Ok(());
            }
            if started.elapsed() > self.deploy_timeout {
                return Err(DeployError::TimedOut { candidate: deployed.candidate.clone(), waited: started.elapsed() });
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = cancel.cancelled() => return Err(DeployError::Cancelled { candidate: deployed.candidate.clone() }),
            }
        }
    }

    async fn activities(&self, endpoint: &str) -> Result<Vec<Activity>, ApiError> {
        let mut activities = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .autoscaling
                .describe_scaling_activities()
                .service_namespace(ServiceNamespace::Sagemaker)
                .resource_id(resource_id(endpoint, VARIANT_NAME))
                .scalable_dimension(dimension())
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| api_error("DescribeScalingActivities", &e))?;
            activities.extend(page.scaling_activities().iter().map(|a| Activity {
                started_at: date(a.start_time()),
                ended_at: a.end_time().map(date),
                description: a.description().to_string(),
                cause: a.cause().to_string(),
                status: a.status_code().as_str().to_string(),
            }));
            match page.next_token.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        // AWS lists the newest first.
        activities.sort_by_key(|a| a.started_at);
        Ok(activities)
    }
}
