//! Auto-scaling on the endpoints the environment deployed, through
//! aws-sdk-applicationautoscaling: register the variant as a scalable target,
//! put a target-tracking policy, read the activities, deregister. Every
//! registration is in the ledger before the call, so teardown (and a forced
//! exit's message) knows it — scaling goes before its endpoint.

use aws_sdk_applicationautoscaling::types::{
    MetricType, PredefinedMetricSpecification, ScalableDimension, ServiceNamespace, TargetTrackingScalingPolicyConfiguration,
};
use chrono::{DateTime, Utc};

use super::sagemaker::{already_gone_is_fine, api_error, describe_endpoint};
use super::{ApiError, Autoscaler, Deployed, Kind, SageMakerEnvironment};
use crate::sagemaker::VARIANT_NAME;
use crate::scaling::{Activity, Instances, Policy, ScalingMetric, resource_id};

fn dimension() -> ScalableDimension {
    ScalableDimension::SageMakerVariantDesiredInstanceCount
}

fn metric_type(metric: ScalingMetric) -> MetricType {
    match metric {
        ScalingMetric::Invocations => MetricType::SageMakerVariantInvocationsPerInstance,
        ScalingMetric::Concurrency => MetricType::SageMakerVariantConcurrentRequestsPerModelHighResolution,
    }
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
        let metric = PredefinedMetricSpecification::builder()
            .predefined_metric_type(metric_type(policy.metric))
            .build()
            .map_err(|e| invalid("PutScalingPolicy", e))?;
        let configuration = TargetTrackingScalingPolicyConfiguration::builder()
            .target_value(policy.target)
            .predefined_metric_specification(metric)
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
            .policy_type(aws_sdk_applicationautoscaling::types::PolicyType::TargetTrackingScaling)
            .target_tracking_scaling_policy_configuration(configuration)
            .send()
            .await
            .map_err(|e| api_error("PutScalingPolicy", &e))?;
        Ok(())
    }

    async fn remove_policy(&self, endpoint: &str) -> Result<(), ApiError> {
        deregister(&self.autoscaling, endpoint).await?;
        self.record_deleted(Kind::ScalableTarget, endpoint);
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
            let billed = fleet.with_count(desired.max(current).max(1));
            crate::error::lock(&self.ledger).rebill(&deployed.endpoint, &billed);
        }
        Ok(instances)
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
