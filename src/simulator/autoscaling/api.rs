//! The Application Auto Scaling operations the simulator serves, with the
//! request and response members of the AWS API model (botocore
//! `application-autoscaling/2016-02-06`) and the errors AWS gives:
//! ValidationException, ObjectNotFoundException, InvalidNextTokenException.

use std::sync::PoisonError;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::policy::{
    AdjustmentType, Aggregation, CONCURRENT_REQUESTS_PER_MODEL, INVOCATIONS_PER_INSTANCE, PolicyConfig, Side, Step, StepScaling,
    TargetTracking, TrackedMetric, check_steps, tracking_alarm_rule,
};
use super::{Activity, Env, NAMESPACE, Policy, ScalableTarget, Scaling, Suspended, TargetKey, TrackingAlarms, VARIANT_DIMENSION};
use crate::simulator::ACCOUNT_ID;
use crate::simulator::alarms::evaluation::{MissingData, Rule};
use crate::simulator::alarms::{AlarmConfig, AlarmStore, Statistic};
use crate::simulator::control::validation::{constraint, int_member, not_null, required_str, str_member, strings_member};
use crate::simulator::wire::{AwsError, page, timestamp, uuid};

const NAMESPACES: &str = "[ecs, elasticmapreduce, ec2, appstream, dynamodb, rds, sagemaker, custom-resource, comprehend, \
    lambda, cassandra, kafka, elasticache, neptune, workspaces]";

const DIMENSIONS: &[&str] = &[
    "ecs:service:DesiredCount",
    "ec2:spot-fleet-request:TargetCapacity",
    "elasticmapreduce:instancegroup:InstanceCount",
    "appstream:fleet:DesiredCapacity",
    "dynamodb:table:ReadCapacityUnits",
    "dynamodb:table:WriteCapacityUnits",
    "dynamodb:index:ReadCapacityUnits",
    "dynamodb:index:WriteCapacityUnits",
    "rds:cluster:ReadReplicaCount",
    "sagemaker:variant:DesiredInstanceCount",
    "custom-resource:ResourceType:Property",
    "comprehend:document-classifier-endpoint:DesiredInferenceUnits",
    "comprehend:entity-recognizer-endpoint:DesiredInferenceUnits",
    "lambda:function:ProvisionedConcurrency",
    "cassandra:table:ReadCapacityUnits",
    "cassandra:table:WriteCapacityUnits",
    "kafka:broker-storage:VolumeSize",
    "elasticache:cache-cluster:Nodes",
    "elasticache:replication-group:NodeGroups",
    "elasticache:replication-group:Replicas",
    "neptune:cluster:ReadReplicaCount",
    "sagemaker:variant:DesiredProvisionedConcurrency",
    "sagemaker:inference-component:DesiredCopyCount",
    "workspaces:workspacespool:DesiredUserSessions",
];

const PREDEFINED_METRICS: &[&str] = &[
    "DynamoDBReadCapacityUtilization",
    "DynamoDBWriteCapacityUtilization",
    "ALBRequestCountPerTarget",
    "RDSReaderAverageCPUUtilization",
    "RDSReaderAverageDatabaseConnections",
    "EC2SpotFleetRequestAverageCPUUtilization",
    "EC2SpotFleetRequestAverageNetworkIn",
    "EC2SpotFleetRequestAverageNetworkOut",
    "SageMakerVariantInvocationsPerInstance",
    "ECSServiceAverageCPUUtilization",
    "ECSServiceAverageMemoryUtilization",
    "AppStreamAverageCapacityUtilization",
    "ComprehendInferenceUtilization",
    "LambdaProvisionedConcurrencyUtilization",
    "CassandraReadCapacityUtilization",
    "CassandraWriteCapacityUtilization",
    "KafkaBrokerStorageUtilization",
    "ElastiCacheEngineCPUUtilization",
    "ElastiCacheDatabaseMemoryUsagePercentage",
    "ElastiCachePrimaryEngineCPUUtilization",
    "ElastiCacheReplicaEngineCPUUtilization",
    "ElastiCacheDatabaseMemoryUsageCountedForEvictPercentage",
    "NeptuneReaderAverageCPUUtilization",
    "SageMakerVariantProvisionedConcurrencyUtilization",
    "ElastiCacheDatabaseCapacityUsageCountedForEvictPercentage",
    "SageMakerInferenceComponentInvocationsPerCopy",
    "WorkSpacesAverageUserSessionsCapacityUtilization",
    "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution",
    "SageMakerVariantConcurrentRequestsPerModelHighResolution",
];

/// The service-linked role Application Auto Scaling uses for SageMaker.
const SAGEMAKER_ROLE: &str = "role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/\
    AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint";

fn object_not_found(message: String) -> AwsError {
    AwsError::new(StatusCode::BAD_REQUEST, "ObjectNotFoundException", message)
}

fn unsupported() -> AwsError {
    AwsError::validation("Unsupported service namespace, resource type or scalable dimension")
}

fn namespace(input: &Value) -> Result<&str, AwsError> {
    let namespace = required_str(input, "ServiceNamespace", "serviceNamespace")?;
    if !NAMESPACES.trim_matches(['[', ']']).split(", ").any(|n| n == namespace) {
        return Err(constraint(namespace, "serviceNamespace", &format!("Member must satisfy enum value set: {NAMESPACES}")));
    }
    Ok(namespace)
}

fn dimension(input: &Value) -> Result<Option<&str>, AwsError> {
    match str_member(input, "ScalableDimension") {
        Some(d) if !DIMENSIONS.contains(&d) => {
            Err(constraint(d, "scalableDimension", &format!("Member must satisfy enum value set: [{}]", DIMENSIONS.join(", "))))
        }
        other => Ok(other),
    }
}

/// The namespace, resource and dimension every single-target operation names.
fn target_members(input: &Value) -> Result<(&str, &str, &str), AwsError> {
    let namespace = namespace(input)?;
    let resource_id = required_str(input, "ResourceId", "resourceId")?;
    let dimension = dimension(input)?.ok_or_else(|| not_null("scalableDimension"))?;
    Ok((namespace, resource_id, dimension))
}

fn key(resource_id: &str, dimension: &str) -> TargetKey {
    TargetKey { resource_id: resource_id.to_string(), dimension: dimension.to_string() }
}

/// The endpoint and variant a sagemaker scalable target names.
fn variant_of(resource_id: &str, dimension: &str) -> Result<(String, String), AwsError> {
    match dimension {
        VARIANT_DIMENSION => {
            let mut parts = resource_id.split('/');
            match (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some("endpoint"), Some(endpoint), Some("variant"), Some(variant), None)
                    if !endpoint.is_empty() && !variant.is_empty() =>
                {
                    Ok((endpoint.to_string(), variant.to_string()))
                }
                _ => Err(unsupported()),
            }
        }
        // The simulator hosts no inference components, and does not scale
        // serverless provisioned concurrency: such a target is refused.
        "sagemaker:inference-component:DesiredCopyCount" => match resource_id.strip_prefix("inference-component/") {
            Some(name) => Err(AwsError::validation(format!(
                "Inference component {name} does not exist (the simulator hosts endpoint variants only: \
                 scale sagemaker:variant:DesiredInstanceCount)."
            ))),
            None => Err(unsupported()),
        },
        "sagemaker:variant:DesiredProvisionedConcurrency" => Err(AwsError::validation(format!(
            "{resource_id}: the simulator does not scale the provisioned concurrency of serverless variants."
        ))),
        _ => Err(unsupported()),
    }
}

fn max_results(input: &Value, limit: i64) -> Result<usize, AwsError> {
    let max = int_member(input, "MaxResults", "maxResults")?.unwrap_or(limit);
    if !(1..=limit).contains(&max) {
        return Err(constraint(&max.to_string(), "maxResults", &format!("Member must have value between 1 and {limit}")));
    }
    Ok(max as usize)
}

/// One page of `items` as `key`, with NextToken when more remain.
fn paged(input: &Value, items: Vec<Value>, limit: i64, key: &str) -> Result<Value, AwsError> {
    let size = max_results(input, limit)?;
    let (shown, next) = page(items, str_member(input, "NextToken"), size)
        .map_err(|()| AwsError::new(StatusCode::BAD_REQUEST, "InvalidNextTokenException", "Invalid NextToken"))?;
    let mut out = json!({ key: shown });
    if let Some(next) = next {
        out["NextToken"] = json!(next);
    }
    Ok(out)
}

/// A capacity member: a whole number from 0 to 100,000.
fn capacity(input: &Value, key: &str, member: &str) -> Result<Option<u32>, AwsError> {
    match int_member(input, key, member)? {
        None => Ok(None),
        Some(n) if n < 0 => Err(constraint(&n.to_string(), member, "Member must have value greater than or equal to 0")),
        Some(n) if n > 100_000 => Err(constraint(&n.to_string(), member, "Member must have value less than or equal to 100000")),
        Some(n) => Ok(Some(n as u32)),
    }
}

fn cooldown(input: &Value, key: &str, member: &str) -> Result<Option<u32>, AwsError> {
    match int_member(input, key, member)? {
        Some(n) if !(0..=86_400).contains(&n) => {
            Err(constraint(&n.to_string(), member, "Member must have value between 0 and 86400"))
        }
        other => Ok(other.map(|n| n as u32)),
    }
}

fn lock_alarms<'a>(env: &'a Env<'_>) -> std::sync::MutexGuard<'a, AlarmStore> {
    env.alarms.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Scaling {
    /// Runs one Application Auto Scaling operation.
    pub fn call(&mut self, operation: &str, input: &Value, env: &mut Env<'_>) -> Result<Value, AwsError> {
        match operation {
            "RegisterScalableTarget" => self.register_scalable_target(input, env),
            "DescribeScalableTargets" => self.describe_scalable_targets(input),
            "DeregisterScalableTarget" => self.deregister_scalable_target(input, env),
            "PutScalingPolicy" => self.put_scaling_policy(input, env),
            "DescribeScalingPolicies" => self.describe_scaling_policies(input, env),
            "DeleteScalingPolicy" => self.delete_scaling_policy(input, env),
            "DescribeScalingActivities" => self.describe_scaling_activities(input),
            other => Err(AwsError::new(
                StatusCode::BAD_REQUEST,
                "UnknownOperationException",
                format!("The simulator does not implement AnyScaleFrontendService.{other}"),
            )),
        }
    }

    fn register_scalable_target(&mut self, input: &Value, env: &mut Env<'_>) -> Result<Value, AwsError> {
        let (namespace, resource_id, dimension) = target_members(input)?;
        if namespace != NAMESPACE {
            return Err(AwsError::validation(format!(
                "The simulator scales SageMaker resources only (ServiceNamespace sagemaker), not {namespace}."
            )));
        }
        let (endpoint, variant) = variant_of(resource_id, dimension)?;
        let view = env.endpoints.variant(&endpoint, &variant).map_err(|e| AwsError::validation(e.message))?;
        if view.instance_type.starts_with("ml.t2.") || view.instance_type.starts_with("ml.t3.") {
            return Err(AwsError::validation(format!(
                "You cannot register a variant with {} instance type as a scalable target. This is because the burstable \
                 performance of these instances can lead to unpredictable behavior with Auto Scaling.",
                view.instance_type
            )));
        }
        let key = key(resource_id, dimension);
        let existing = self.targets.get(&key);
        let min = capacity(input, "MinCapacity", "minCapacity")?.or(existing.map(|t| t.min));
        let max = capacity(input, "MaxCapacity", "maxCapacity")?.or(existing.map(|t| t.max));
        let (Some(min), Some(max)) = (min, max) else {
            return Err(AwsError::validation("MinCapacity and MaxCapacity are required when registering a new scalable target."));
        };
        // SageMaker takes a variant to zero instances only for asynchronous inference.
        if min == 0 && !view.asynchronous {
            return Err(AwsError::validation(format!(
                "The minimum capacity of variant {variant} of endpoint {endpoint} must be at least 1: only the variants of \
                 asynchronous inference endpoints scale to 0 instances."
            )));
        }
        if min > max {
            return Err(AwsError::validation(format!(
                "Minimum capacity ({min}) cannot be greater than maximum capacity ({max})."
            )));
        }
        let suspended = suspended_state(input.get("SuspendedState"), existing.map(|t| t.suspended).unwrap_or_default());
        let role_arn = str_member(input, "RoleARN")
            .map(str::to_string)
            .or_else(|| existing.map(|t| t.role_arn.clone()))
            .unwrap_or_else(|| format!("arn:aws:iam::{ACCOUNT_ID}:{SAGEMAKER_ROLE}"));
        let arn = existing.map(|t| t.arn.clone()).unwrap_or_else(|| {
            let id = format!("{}{}", uuid().replace('-', ""), &uuid()[..4]);
            format!("arn:aws:application-autoscaling:{}:{ACCOUNT_ID}:scalable-target/{id}", env.region)
        });
        let created = existing.map_or(env.now, |t| t.created);
        let last_known = Some(view.desired);
        self.targets.insert(
            key.clone(),
            ScalableTarget {
                key,
                endpoint,
                variant,
                min,
                max,
                role_arn,
                arn: arn.clone(),
                created,
                suspended,
                bounds_pending: true,
                last_known,
            },
        );
        Ok(json!({ "ScalableTargetARN": arn }))
    }

    fn describe_scalable_targets(&self, input: &Value) -> Result<Value, AwsError> {
        let namespace = namespace(input)?;
        let dimension = dimension(input)?;
        let ids = strings_member(input, "ResourceIds");
        if ids.len() > 50 {
            return Err(constraint(&ids.len().to_string(), "resourceIds", "Member must have length less than or equal to 50"));
        }
        let mut targets: Vec<&ScalableTarget> = self
            .targets
            .values()
            .filter(|_| namespace == NAMESPACE)
            .filter(|t| ids.is_empty() || ids.contains(&t.key.resource_id))
            .filter(|t| dimension.is_none_or(|d| d == t.key.dimension))
            .collect();
        targets.sort_by(|a, b| a.created.cmp(&b.created).then(a.key.cmp(&b.key)));
        paged(input, targets.into_iter().map(describe_target).collect(), 50, "ScalableTargets")
    }

    fn deregister_scalable_target(&mut self, input: &Value, env: &mut Env<'_>) -> Result<Value, AwsError> {
        let (namespace, resource_id, dimension) = target_members(input)?;
        let key = key(resource_id, dimension);
        if namespace != NAMESPACE || self.targets.remove(&key).is_none() {
            return Err(object_not_found(format!(
                "No scalable target found for service namespace: {namespace}, resource ID: {resource_id}, scalable dimension: {dimension}"
            )));
        }
        // As in AWS, the target's policies go with it, and their alarms with them.
        let arns: Vec<String> = self.policies.values().filter(|p| p.target == key).map(|p| p.arn.clone()).collect();
        for arn in arns {
            self.remove_policy(&arn, env);
        }
        self.activities.retain(|a| !(a.target == key && a.status == super::ActivityStatus::Pending));
        Ok(json!({}))
    }

    fn remove_policy(&mut self, arn: &str, env: &Env<'_>) {
        if let Some(policy) = self.policies.remove(arn) {
            lock_alarms(env).delete(&policy.owned_alarm_names());
        }
    }

    fn put_scaling_policy(&mut self, input: &Value, env: &mut Env<'_>) -> Result<Value, AwsError> {
        let name = required_str(input, "PolicyName", "policyName")?;
        if name.is_empty() || name.len() > 256 {
            return Err(constraint(name, "policyName", "Member must have length between 1 and 256"));
        }
        let (namespace, resource_id, dimension) = target_members(input)?;
        let key = key(resource_id, dimension);
        let Some(target) = self.targets.get(&key).filter(|_| namespace == NAMESPACE) else {
            return Err(object_not_found(format!(
                "No scalable target registered for service namespace: {namespace}, resource ID: {resource_id}, scalable dimension: {dimension}"
            )));
        };
        let existing = self.policies.values().find(|p| p.target == key && p.name == name);
        let policy_type = match (str_member(input, "PolicyType"), existing) {
            (Some(t), _) => t,
            (None, Some(existing)) => existing.config.type_name(),
            (None, None) => return Err(AwsError::validation("PolicyType is required when creating a scaling policy.")),
        };
        let config = match policy_type {
            "TargetTrackingScaling" => {
                let config = input
                    .get("TargetTrackingScalingPolicyConfiguration")
                    .ok_or_else(|| not_null("targetTrackingScalingPolicyConfiguration"))?;
                PolicyConfig::TargetTracking(target_tracking(config, target)?)
            }
            "StepScaling" => {
                let config =
                    input.get("StepScalingPolicyConfiguration").ok_or_else(|| not_null("stepScalingPolicyConfiguration"))?;
                PolicyConfig::Step(step_scaling(config)?)
            }
            "PredictiveScaling" => {
                return Err(AwsError::validation("PredictiveScaling policies are only supported for Amazon ECS services."));
            }
            other => {
                return Err(constraint(
                    other,
                    "policyType",
                    "Member must satisfy enum value set: [StepScaling, TargetTrackingScaling, PredictiveScaling]",
                ));
            }
        };
        let arn = existing.map(|p| p.arn.clone()).unwrap_or_else(|| {
            format!(
                "arn:aws:autoscaling:{}:{ACCOUNT_ID}:scalingPolicy:{}:resource/{NAMESPACE}/{resource_id}:policyName/{name}",
                env.region,
                uuid()
            )
        });
        let previous = existing.and_then(|p| p.owned.clone());
        let owned = match &config {
            PolicyConfig::TargetTracking(tt) => Some(self.put_tracking_alarms(&arn, target, tt, previous.as_ref(), env)),
            PolicyConfig::Step(_) => {
                // A policy that changes to step scaling leaves its own alarms behind.
                lock_alarms(env).delete(&previous.as_ref().map(TrackingAlarms::names).unwrap_or_default());
                None
            }
        };
        let (created, cooldowns) = match self.policies.remove(&arn) {
            Some(old) => (old.created, old.cooldowns),
            None => (env.now, Default::default()),
        };
        self.policies.insert(
            arn.clone(),
            Policy { arn: arn.clone(), name: name.to_string(), target: key, config, created, owned, cooldowns },
        );
        let mut out = json!({ "PolicyARN": arn });
        if policy_type == "TargetTrackingScaling" {
            out["Alarms"] = alarm_list(&lock_alarms(env), &arn);
        }
        Ok(out)
    }

    /// Creates (or updates in place) the AlarmHigh and AlarmLow alarms of a
    /// target tracking policy; without scale-in there is no AlarmLow.
    fn put_tracking_alarms(
        &self,
        policy_arn: &str,
        target: &ScalableTarget,
        tt: &TargetTracking,
        previous: Option<&TrackingAlarms>,
        env: &Env<'_>,
    ) -> TrackingAlarms {
        let name = |side: &str| format!("TargetTracking-{}-Alarm{side}-{}", target.key.resource_id, uuid());
        let high = previous.map(|p| p.high.clone()).unwrap_or_else(|| name("High"));
        let low = tt.scales_in().then(|| previous.and_then(|p| p.low.clone()).unwrap_or_else(|| name("Low")));
        let mut alarms = lock_alarms(env);
        alarms.put(tracking_alarm(policy_arn, target, tt, Side::High, &high), env.region, env.clock, env.now);
        match &low {
            Some(low) => {
                alarms.put(tracking_alarm(policy_arn, target, tt, Side::Low, low), env.region, env.clock, env.now);
            }
            None => alarms.delete(&previous.and_then(|p| p.low.clone()).into_iter().collect::<Vec<_>>()),
        }
        TrackingAlarms { high, low }
    }

    fn describe_scaling_policies(&self, input: &Value, env: &Env<'_>) -> Result<Value, AwsError> {
        let namespace = namespace(input)?;
        let (resource_id, dimension) = resource_filter(input)?;
        let names = strings_member(input, "PolicyNames");
        let mut policies: Vec<&Policy> = self
            .policies
            .values()
            .filter(|_| namespace == NAMESPACE)
            .filter(|p| names.is_empty() || names.contains(&p.name))
            .filter(|p| resource_id.is_none_or(|r| r == p.target.resource_id))
            .filter(|p| dimension.is_none_or(|d| d == p.target.dimension))
            .collect();
        policies.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        let alarms = lock_alarms(env);
        paged(input, policies.into_iter().map(|p| describe_policy(p, &alarms)).collect(), 10, "ScalingPolicies")
    }

    fn delete_scaling_policy(&mut self, input: &Value, env: &mut Env<'_>) -> Result<Value, AwsError> {
        let name = required_str(input, "PolicyName", "policyName")?;
        let (namespace, resource_id, dimension) = target_members(input)?;
        let key = key(resource_id, dimension);
        let arn =
            self.policies.values().find(|p| namespace == NAMESPACE && p.target == key && p.name == name).map(|p| p.arn.clone());
        let Some(arn) = arn else {
            return Err(object_not_found(format!(
                "No scaling policy found for service namespace: {namespace}, resource ID: {resource_id}, scalable dimension: \
                 {dimension}, policy name: {name}"
            )));
        };
        self.remove_policy(&arn, env);
        Ok(json!({}))
    }

    fn describe_scaling_activities(&self, input: &Value) -> Result<Value, AwsError> {
        let namespace = namespace(input)?;
        let (resource_id, dimension) = resource_filter(input)?;
        let activities: Vec<Value> = self
            .activities
            .iter()
            .rev()
            .filter(|_| namespace == NAMESPACE)
            .filter(|a| resource_id.is_none_or(|r| r == a.target.resource_id))
            .filter(|a| dimension.is_none_or(|d| d == a.target.dimension))
            .map(describe_activity)
            .collect();
        paged(input, activities, 50, "ScalingActivities")
    }
}

/// ResourceId and ScalableDimension as filters: "If you specify a scalable
/// dimension, you must also specify a resource ID."
fn resource_filter(input: &Value) -> Result<(Option<&str>, Option<&str>), AwsError> {
    let resource_id = str_member(input, "ResourceId");
    let dimension = dimension(input)?;
    if dimension.is_some() && resource_id.is_none() {
        return Err(AwsError::validation("If you specify a scalable dimension, you must also specify a resource ID."));
    }
    Ok((resource_id, dimension))
}

fn suspended_state(input: Option<&Value>, current: Suspended) -> Suspended {
    let flag = |key: &str, was: bool| input.and_then(|s| s.get(key)).and_then(Value::as_bool).unwrap_or(was);
    Suspended {
        dynamic_in: flag("DynamicScalingInSuspended", current.dynamic_in),
        dynamic_out: flag("DynamicScalingOutSuspended", current.dynamic_out),
        scheduled: flag("ScheduledScalingSuspended", current.scheduled),
    }
}

fn target_tracking(config: &Value, target: &ScalableTarget) -> Result<TargetTracking, AwsError> {
    let member = |field: &str| format!("targetTrackingScalingPolicyConfiguration.{field}");
    let target_value = config.get("TargetValue").and_then(Value::as_f64).ok_or_else(|| not_null(&member("targetValue")))?;
    if !(target_value.is_finite() && target_value > 0.0) {
        return Err(constraint(&target_value.to_string(), &member("targetValue"), "Member must be greater than 0"));
    }
    let metric = match (config.get("PredefinedMetricSpecification"), config.get("CustomizedMetricSpecification")) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(AwsError::validation(
                "Exactly one of PredefinedMetricSpecification and CustomizedMetricSpecification must be specified.",
            ));
        }
        (Some(predefined), None) => {
            let kind =
                required_str(predefined, "PredefinedMetricType", &member("predefinedMetricSpecification.predefinedMetricType"))?;
            if !PREDEFINED_METRICS.contains(&kind) {
                return Err(constraint(
                    kind,
                    &member("predefinedMetricSpecification.predefinedMetricType"),
                    &format!("Member must satisfy enum value set: [{}]", PREDEFINED_METRICS.join(", ")),
                ));
            }
            TrackedMetric::Predefined {
                kind: kind.to_string(),
                resource_label: str_member(predefined, "ResourceLabel").map(str::to_string),
            }
        }
        (None, Some(custom)) => customized_metric(custom)?,
    };
    if metric.alarm_metric(&target.endpoint, &target.variant).is_none() {
        return Err(AwsError::validation(format!(
            "The predefined metric type is not supported for scalable dimension {} (a variant tracks {INVOCATIONS_PER_INSTANCE} \
             or {CONCURRENT_REQUESTS_PER_MODEL}).",
            target.key.dimension
        )));
    }
    Ok(TargetTracking {
        target_value,
        metric,
        scale_out_cooldown: cooldown(config, "ScaleOutCooldown", &member("scaleOutCooldown"))?,
        scale_in_cooldown: cooldown(config, "ScaleInCooldown", &member("scaleInCooldown"))?,
        disable_scale_in: config.get("DisableScaleIn").and_then(Value::as_bool),
    })
}

fn customized_metric(custom: &Value) -> Result<TrackedMetric, AwsError> {
    if custom.get("Metrics").is_some() {
        return Err(AwsError::validation(
            "The simulator tracks single CloudWatch metrics (Namespace, MetricName, Dimensions, Statistic); \
             metric math (Metrics) is not supported.",
        ));
    }
    let member = |field: &str| format!("targetTrackingScalingPolicyConfiguration.customizedMetricSpecification.{field}");
    let statistic = required_str(custom, "Statistic", &member("statistic"))?;
    if !["Average", "Minimum", "Maximum", "SampleCount", "Sum"].contains(&statistic) {
        return Err(constraint(
            statistic,
            &member("statistic"),
            "Member must satisfy enum value set: [Average, Minimum, Maximum, SampleCount, Sum]",
        ));
    }
    let dimensions = custom
        .get("Dimensions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|d| {
            let name = required_str(d, "Name", &member("dimensions.member.name"))?;
            let value = required_str(d, "Value", &member("dimensions.member.value"))?;
            Ok((name.to_string(), value.to_string()))
        })
        .collect::<Result<Vec<_>, AwsError>>()?;
    Ok(TrackedMetric::Customized {
        namespace: required_str(custom, "Namespace", &member("namespace"))?.to_string(),
        metric_name: required_str(custom, "MetricName", &member("metricName"))?.to_string(),
        dimensions,
        statistic: statistic.to_string(),
        unit: str_member(custom, "Unit").map(str::to_string),
    })
}

fn step_scaling(config: &Value) -> Result<StepScaling, AwsError> {
    let member = |field: &str| format!("stepScalingPolicyConfiguration.{field}");
    let adjustment_text = str_member(config, "AdjustmentType")
        .ok_or_else(|| AwsError::validation("AdjustmentType is required when adding a new step scaling policy configuration."))?;
    let adjustment_type = AdjustmentType::parse(adjustment_text).ok_or_else(|| {
        constraint(
            adjustment_text,
            &member("adjustmentType"),
            "Member must satisfy enum value set: [ChangeInCapacity, PercentChangeInCapacity, ExactCapacity]",
        )
    })?;
    let steps = config
        .get("StepAdjustments")
        .and_then(Value::as_array)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            AwsError::validation("At least one step adjustment is required when adding a new step scaling policy configuration.")
        })?
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let adjustment =
                int_member(s, "ScalingAdjustment", &member(&format!("stepAdjustments.{}.member.scalingAdjustment", i + 1)))?
                    .ok_or_else(|| not_null(&member(&format!("stepAdjustments.{}.member.scalingAdjustment", i + 1))))?;
            Ok(Step {
                lower: s.get("MetricIntervalLowerBound").and_then(Value::as_f64),
                upper: s.get("MetricIntervalUpperBound").and_then(Value::as_f64),
                adjustment,
            })
        })
        .collect::<Result<Vec<_>, AwsError>>()?;
    check_steps(&steps).map_err(AwsError::validation)?;
    let min_adjustment_magnitude = int_member(config, "MinAdjustmentMagnitude", &member("minAdjustmentMagnitude"))?;
    if min_adjustment_magnitude.is_some() && adjustment_type != AdjustmentType::PercentChangeInCapacity {
        return Err(AwsError::validation(
            "MinAdjustmentMagnitude is only supported with the PercentChangeInCapacity adjustment type.",
        ));
    }
    let aggregation = match str_member(config, "MetricAggregationType") {
        None => None,
        Some(text) => Some(Aggregation::parse(text).ok_or_else(|| {
            constraint(text, &member("metricAggregationType"), "Member must satisfy enum value set: [Average, Minimum, Maximum]")
        })?),
    };
    Ok(StepScaling {
        adjustment_type,
        steps,
        min_adjustment_magnitude,
        cooldown: cooldown(config, "Cooldown", &member("cooldown"))?,
        aggregation,
    })
}

/// The CloudWatch alarm of one side of a target tracking policy, as AWS
/// creates it.
fn tracking_alarm(policy_arn: &str, target: &ScalableTarget, tt: &TargetTracking, side: Side, name: &str) -> AlarmConfig {
    let metric = tt.metric.alarm_metric(&target.endpoint, &target.variant).expect("checked by PutScalingPolicy");
    let (comparison, threshold, periods) = tracking_alarm_rule(side, tt.target_value, metric.period);
    AlarmConfig {
        name: name.to_string(),
        description: Some(format!("DO NOT EDIT OR DELETE. For TargetTrackingScaling policy {policy_arn}.")),
        actions_enabled: true,
        ok_actions: Vec::new(),
        alarm_actions: vec![policy_arn.to_string()],
        insufficient_data_actions: Vec::new(),
        namespace: metric.namespace,
        metric_name: metric.metric_name,
        dimensions: metric.dimensions,
        statistic: Statistic::Standard(metric.statistic),
        period: metric.period,
        unit: match &tt.metric {
            TrackedMetric::Customized { unit, .. } => unit.clone(),
            TrackedMetric::Predefined { .. } => None,
        },
        rule: Rule {
            comparison,
            threshold,
            evaluation_periods: periods,
            datapoints_to_alarm: periods,
            missing: MissingData::Missing,
        },
        datapoints_to_alarm: Some(periods as u32),
        treat_missing_data: None,
        evaluate_low_sample_count_percentile: None,
    }
}

fn alarm_list(alarms: &AlarmStore, policy_arn: &str) -> Value {
    Value::Array(
        alarms.referencing(policy_arn).into_iter().map(|(name, arn)| json!({"AlarmName": name, "AlarmARN": arn})).collect(),
    )
}

fn describe_target(t: &ScalableTarget) -> Value {
    json!({
        "ServiceNamespace": NAMESPACE,
        "ResourceId": t.key.resource_id,
        "ScalableDimension": t.key.dimension,
        "MinCapacity": t.min,
        "MaxCapacity": t.max,
        "RoleARN": t.role_arn,
        "CreationTime": timestamp(t.created),
        "SuspendedState": {
            "DynamicScalingInSuspended": t.suspended.dynamic_in,
            "DynamicScalingOutSuspended": t.suspended.dynamic_out,
            "ScheduledScalingSuspended": t.suspended.scheduled,
        },
        "ScalableTargetARN": t.arn,
    })
}

fn describe_policy(p: &Policy, alarms: &AlarmStore) -> Value {
    let mut out = json!({
        "PolicyARN": p.arn,
        "PolicyName": p.name,
        "ServiceNamespace": NAMESPACE,
        "ResourceId": p.target.resource_id,
        "ScalableDimension": p.target.dimension,
        "PolicyType": p.config.type_name(),
        "Alarms": alarm_list(alarms, &p.arn),
        "CreationTime": timestamp(p.created),
    });
    match &p.config {
        PolicyConfig::TargetTracking(tt) => out["TargetTrackingScalingPolicyConfiguration"] = describe_tracking(tt),
        PolicyConfig::Step(step) => out["StepScalingPolicyConfiguration"] = describe_step(step),
    }
    out
}

/// Inserts the members that are set.
fn with_optional(mut object: Map<String, Value>, members: Vec<(&str, Option<Value>)>) -> Value {
    for (key, value) in members {
        if let Some(value) = value {
            object.insert(key.to_string(), value);
        }
    }
    Value::Object(object)
}

fn describe_tracking(tt: &TargetTracking) -> Value {
    let mut object = Map::new();
    object.insert("TargetValue".into(), json!(tt.target_value));
    let metric = match &tt.metric {
        TrackedMetric::Predefined { kind, resource_label } => (
            "PredefinedMetricSpecification",
            with_optional(
                Map::from_iter([("PredefinedMetricType".to_string(), json!(kind))]),
                vec![("ResourceLabel", resource_label.clone().map(Value::from))],
            ),
        ),
        TrackedMetric::Customized { namespace, metric_name, dimensions, statistic, unit } => (
            "CustomizedMetricSpecification",
            with_optional(
                Map::from_iter([
                    ("MetricName".to_string(), json!(metric_name)),
                    ("Namespace".to_string(), json!(namespace)),
                    (
                        "Dimensions".to_string(),
                        json!(dimensions.iter().map(|(n, v)| json!({"Name": n, "Value": v})).collect::<Vec<_>>()),
                    ),
                    ("Statistic".to_string(), json!(statistic)),
                ]),
                vec![("Unit", unit.clone().map(Value::from))],
            ),
        ),
    };
    object.insert(metric.0.into(), metric.1);
    with_optional(
        object,
        vec![
            ("ScaleOutCooldown", tt.scale_out_cooldown.map(Value::from)),
            ("ScaleInCooldown", tt.scale_in_cooldown.map(Value::from)),
            ("DisableScaleIn", tt.disable_scale_in.map(Value::from)),
        ],
    )
}

fn describe_step(step: &StepScaling) -> Value {
    let steps: Vec<Value> = step
        .steps
        .iter()
        .map(|s| {
            with_optional(
                Map::from_iter([("ScalingAdjustment".to_string(), json!(s.adjustment))]),
                vec![
                    ("MetricIntervalLowerBound", s.lower.map(Value::from)),
                    ("MetricIntervalUpperBound", s.upper.map(Value::from)),
                ],
            )
        })
        .collect();
    with_optional(
        Map::from_iter([
            ("AdjustmentType".to_string(), json!(step.adjustment_type.as_str())),
            ("StepAdjustments".to_string(), json!(steps)),
        ]),
        vec![
            ("MinAdjustmentMagnitude", step.min_adjustment_magnitude.map(Value::from)),
            ("Cooldown", step.cooldown.map(Value::from)),
            ("MetricAggregationType", step.aggregation.map(|a| Value::from(a.as_str()))),
        ],
    )
}

fn describe_activity(a: &Activity) -> Value {
    with_optional(
        Map::from_iter([
            ("ActivityId".to_string(), json!(a.id)),
            ("ServiceNamespace".to_string(), json!(NAMESPACE)),
            ("ResourceId".to_string(), json!(a.target.resource_id)),
            ("ScalableDimension".to_string(), json!(a.target.dimension)),
            ("Description".to_string(), json!(format!("Setting desired instance count to {}.", a.to))),
            ("Cause".to_string(), json!(a.cause)),
            ("StartTime".to_string(), timestamp(a.start)),
            ("StatusCode".to_string(), json!(a.status.as_str())),
        ]),
        vec![("EndTime", a.end.map(timestamp)), ("StatusMessage", a.status_message.clone().map(Value::from))],
    )
}

#[cfg(test)]
mod tests {
    use super::super::fake::{Harness, RESOURCE};
    use super::*;

    fn invocations(target: f64) -> Value {
        json!({"TargetValue": target, "PredefinedMetricSpecification": {"PredefinedMetricType": INVOCATIONS_PER_INSTANCE}})
    }

    #[test]
    fn registering_validates_the_variant_and_updates_min_and_max() {
        let mut h = Harness::new();
        let arn = h.register(1, 4).unwrap()["ScalableTargetARN"].as_str().unwrap().to_string();
        assert!(arn.starts_with("arn:aws:application-autoscaling:us-east-1:123456789012:scalable-target/"), "{arn}");
        // Re-registering updates Min/Max and keeps the ARN.
        assert_eq!(h.register(2, 6).unwrap()["ScalableTargetARN"], arn);
        let targets = h.call("DescribeScalableTargets", json!({"ServiceNamespace": "sagemaker"})).unwrap();
        assert_eq!(
            (targets["ScalableTargets"][0]["MinCapacity"].as_u64(), targets["ScalableTargets"][0]["MaxCapacity"].as_u64()),
            (Some(2), Some(6))
        );
        assert_eq!(targets["ScalableTargets"][0]["SuspendedState"]["DynamicScalingInSuspended"], false);
        // Another namespace has none.
        let ecs = h.call("DescribeScalableTargets", json!({"ServiceNamespace": "ecs"})).unwrap();
        assert_eq!(ecs["ScalableTargets"], json!([]));
    }

    #[test]
    fn registering_refuses_what_aws_refuses() {
        let mut h = Harness::new();
        let refused = |h: &mut Harness, input: Value| h.call("RegisterScalableTarget", input).unwrap_err();
        let base = json!({"ServiceNamespace": "sagemaker", "ResourceId": RESOURCE, "ScalableDimension": VARIANT_DIMENSION,
                          "MinCapacity": 1, "MaxCapacity": 2});
        let with = |key: &str, value: Value| {
            let mut input = base.clone();
            input[key] = value;
            input
        };
        let e = refused(&mut h, with("ResourceId", json!("endpoint/missing/variant/AllTraffic")));
        assert_eq!(e.code, "ValidationException");
        assert!(e.message.contains("Could not find endpoint"), "{}", e.message);
        let e = refused(&mut h, with("ResourceId", json!("endpoint/e")));
        assert_eq!(e.message, "Unsupported service namespace, resource type or scalable dimension");
        let e = refused(&mut h, with("ScalableDimension", json!("sagemaker:variant:Bogus")));
        assert!(e.message.contains("failed to satisfy constraint: Member must satisfy enum value set"), "{}", e.message);
        let e = refused(&mut h, with("ServiceNamespace", json!("s3")));
        assert!(e.message.contains("'serviceNamespace'"), "{}", e.message);
        let e = refused(&mut h, with("MinCapacity", json!(5)));
        assert!(e.message.contains("cannot be greater than maximum"), "{}", e.message);
        let mut new_without_max = base.clone();
        new_without_max.as_object_mut().unwrap().remove("MaxCapacity");
        assert!(refused(&mut h, new_without_max).message.contains("required"));
        let e = refused(
            &mut h,
            json!({"ServiceNamespace": "sagemaker", "ResourceId": "inference-component/ic",
                   "ScalableDimension": "sagemaker:inference-component:DesiredCopyCount", "MinCapacity": 0, "MaxCapacity": 2}),
        );
        assert_eq!(e.code, "ValidationException");
        let e = refused(&mut h, with("MinCapacity", json!(0)));
        assert!(e.message.contains("only the variants of asynchronous inference endpoints scale to 0"), "{}", e.message);
        h.endpoints.asynchronous = true;
        assert!(h.call("RegisterScalableTarget", with("MinCapacity", json!(0))).is_ok());
        h.endpoints.instance_type = "ml.t2.medium".into();
        assert!(refused(&mut h, base.clone()).message.contains("burstable"));
    }

    #[test]
    fn target_tracking_creates_its_alarms_and_deletes_them_with_it() {
        let mut h = Harness::new();
        let e = h.put_tracking("p", invocations(100.0)).unwrap_err();
        assert_eq!(e.code, "ObjectNotFoundException");
        assert!(e.message.starts_with("No scalable target registered for service namespace: sagemaker"), "{}", e.message);
        h.register(1, 4).unwrap();
        let out = h.put_tracking("p", invocations(100.0)).unwrap();
        let arn = out["PolicyARN"].as_str().unwrap();
        assert!(arn.starts_with("arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:"), "{arn}");
        assert!(arn.ends_with(":resource/sagemaker/endpoint/e/variant/AllTraffic:policyName/p"), "{arn}");
        let alarms = out["Alarms"].as_array().unwrap();
        assert_eq!(alarms.len(), 2);
        let names: Vec<&str> = alarms.iter().map(|a| a["AlarmName"].as_str().unwrap()).collect();
        assert!(names.iter().any(|n| n.starts_with("TargetTracking-endpoint/e/variant/AllTraffic-AlarmHigh-")), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("TargetTracking-endpoint/e/variant/AllTraffic-AlarmLow-")), "{names:?}");
        {
            let store = h.alarms.lock().unwrap();
            let high = store.get(names.iter().find(|n| n.contains("AlarmHigh")).unwrap()).unwrap();
            assert_eq!(
                (high.config.metric_name.as_str(), high.config.period, high.config.rule.evaluation_periods),
                ("InvocationsPerInstance", 60, 3)
            );
            assert_eq!(high.config.rule.threshold, 100.0);
            let low = store.get(names.iter().find(|n| n.contains("AlarmLow")).unwrap()).unwrap();
            assert_eq!((low.config.rule.threshold, low.config.rule.evaluation_periods), (90.0, 15));
        }
        // Updating in place keeps the ARN and the alarm names; DisableScaleIn drops AlarmLow.
        let mut no_scale_in = invocations(200.0);
        no_scale_in["DisableScaleIn"] = json!(true);
        let updated = h.put_tracking("p", no_scale_in).unwrap();
        assert_eq!(updated["PolicyARN"], arn);
        assert_eq!(updated["Alarms"].as_array().unwrap().len(), 1);
        let described = h.call("DescribeScalingPolicies", json!({"ServiceNamespace": "sagemaker"})).unwrap();
        let policy = &described["ScalingPolicies"][0];
        assert_eq!(policy["PolicyType"], "TargetTrackingScaling");
        assert_eq!(policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"], 200.0);
        assert_eq!(policy["TargetTrackingScalingPolicyConfiguration"]["DisableScaleIn"], true);
        // Deregistering takes the policy and its alarms with it.
        h.call(
            "DeregisterScalableTarget",
            json!({"ServiceNamespace": "sagemaker", "ResourceId": RESOURCE, "ScalableDimension": VARIANT_DIMENSION}),
        )
        .unwrap();
        assert!(h.alarms.lock().unwrap().states().is_empty());
        let described = h.call("DescribeScalingPolicies", json!({"ServiceNamespace": "sagemaker"})).unwrap();
        assert_eq!(described["ScalingPolicies"], json!([]));
        let e = h
            .call(
                "DeregisterScalableTarget",
                json!({"ServiceNamespace": "sagemaker", "ResourceId": RESOURCE, "ScalableDimension": VARIANT_DIMENSION}),
            )
            .unwrap_err();
        assert_eq!(e.code, "ObjectNotFoundException");
    }

    #[test]
    fn policy_validation_errors() {
        let mut h = Harness::new();
        h.register(1, 4).unwrap();
        let e = h
            .put_tracking("p", json!({"TargetValue": 5.0, "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}}))
            .unwrap_err();
        assert!(e.message.contains("not supported for scalable dimension"), "{}", e.message);
        let e = h
            .put_tracking("p", json!({"PredefinedMetricSpecification": {"PredefinedMetricType": INVOCATIONS_PER_INSTANCE}}))
            .unwrap_err();
        assert!(e.message.contains("targetValue"), "{}", e.message);
        let e = h.put_tracking("p", json!({"TargetValue": 5.0})).unwrap_err();
        assert!(e.message.contains("Exactly one"), "{}", e.message);
        let step = |config: Value| {
            json!({"PolicyName": "s", "ServiceNamespace": "sagemaker", "ResourceId": RESOURCE, "ScalableDimension": VARIANT_DIMENSION,
                   "PolicyType": "StepScaling", "StepScalingPolicyConfiguration": config})
        };
        let e = h
            .call(
                "PutScalingPolicy",
                step(json!({"AdjustmentType": "ChangeInCapacity", "StepAdjustments": [
                {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 10, "ScalingAdjustment": 1},
                {"MetricIntervalLowerBound": 20, "ScalingAdjustment": 2}]})),
            )
            .unwrap_err();
        assert!(e.message.contains("gap"), "{}", e.message);
        let e = h
            .call(
                "PutScalingPolicy",
                step(json!({"AdjustmentType": "ExactCapacity", "MinAdjustmentMagnitude": 2,
                "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 2}]})),
            )
            .unwrap_err();
        assert!(e.message.contains("PercentChangeInCapacity"), "{}", e.message);
        let ok = h
            .call(
                "PutScalingPolicy",
                step(json!({"AdjustmentType": "ChangeInCapacity", "Cooldown": 60, "MetricAggregationType": "Maximum",
                "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 2}]})),
            )
            .unwrap();
        assert!(ok.get("Alarms").is_none(), "step scaling creates no alarms");
        let e = h
            .call("DeleteScalingPolicy", json!({"PolicyName": "nope", "ServiceNamespace": "sagemaker", "ResourceId": RESOURCE, "ScalableDimension": VARIANT_DIMENSION}))
            .unwrap_err();
        assert_eq!(e.code, "ObjectNotFoundException");
        assert!(e.message.contains("policy name: nope"), "{}", e.message);
        let e = h
            .call("DescribeScalingActivities", json!({"ServiceNamespace": "sagemaker", "ScalableDimension": VARIANT_DIMENSION}))
            .unwrap_err();
        assert!(e.message.contains("resource ID"), "{}", e.message);
        let e = h.call("DescribeScalingPolicies", json!({"ServiceNamespace": "sagemaker", "MaxResults": 11})).unwrap_err();
        assert!(e.message.contains("between 1 and 10"), "{}", e.message);
        let e = h.call("DescribeScalableTargets", json!({"ServiceNamespace": "sagemaker", "NextToken": "x"})).unwrap_err();
        assert_eq!(e.code, "InvalidNextTokenException");
    }

    #[test]
    fn describe_calls_page() {
        let mut h = Harness::new();
        h.register(1, 4).unwrap();
        for name in ["a", "b", "c"] {
            h.put_tracking(name, invocations(10.0)).unwrap();
        }
        let first = h.call("DescribeScalingPolicies", json!({"ServiceNamespace": "sagemaker", "MaxResults": 2})).unwrap();
        assert_eq!(first["ScalingPolicies"].as_array().unwrap().len(), 2);
        let rest = h
            .call(
                "DescribeScalingPolicies",
                json!({"ServiceNamespace": "sagemaker", "MaxResults": 2, "NextToken": first["NextToken"]}),
            )
            .unwrap();
        assert_eq!(rest["ScalingPolicies"][0]["PolicyName"], "c");
        assert!(rest.get("NextToken").is_none());
    }
}
