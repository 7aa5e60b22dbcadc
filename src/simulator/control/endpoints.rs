//! Endpoints: their lifecycle in real time (Creating, Updating, InService,
//! Failed, Deleting), the account limit on instances, what InvokeEndpoint and
//! InvokeEndpointAsync may be served by, and CreateEndpoint, DescribeEndpoint,
//! UpdateEndpoint, UpdateEndpointWeightsAndCapacities, DeleteEndpoint and
//! ListEndpoints. An asynchronous endpoint's variants may have no instance at
//! all; a real-time one's always have one; a serverless one's have none and
//! count against no instance limit.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::listing::{Row, list_page};
use super::tags::tags_member;
use super::validation::{instance_count, name_member, not_null, required_str, str_member};
use super::{Context, Meta, Registry};
use crate::simulator::ACCOUNT_ID;
use crate::simulator::async_inference::{AsyncConfig, Deployed};
use crate::simulator::faults::UpdateEnding;
use crate::simulator::profile::Profile;
use crate::simulator::runtime::{Deployment, VariantCapacity, VariantSpec};
use crate::simulator::wire::{AwsError, timestamp};

/// Where an endpoint is in its lifecycle. Transitions happen when their time
/// has come, checked whenever the endpoint is looked at.
#[derive(Debug)]
enum Phase {
    Creating {
        until: Instant,
        plan: Vec<VariantSpec>,
    },
    Updating {
        until: Instant,
        plan: Vec<VariantSpec>,
        config_name: String,
        asynchronous: Option<Arc<AsyncConfig>>,
        /// Set by a fault: the update ends this way instead.
        ending: Option<UpdateEnding>,
    },
    InService,
    Failed,
    /// An update failed and so did its rollback; the old deployment serves on.
    UpdateRollbackFailed,
    Deleting {
        until: Instant,
    },
}

#[derive(Debug)]
pub(super) struct Endpoint {
    pub(super) meta: Meta,
    config_name: String,
    modified: SystemTime,
    phase: Phase,
    /// The variants as last deployed (or being created).
    variants: Vec<VariantSpec>,
    serving: Option<Arc<Deployment>>,
    failure_reason: Option<String>,
    /// The AsyncInferenceConfig of the config it serves, if asynchronous.
    asynchronous: Option<Arc<AsyncConfig>>,
}

impl Endpoint {
    fn status(&self) -> &'static str {
        match self.phase {
            Phase::Creating { .. } => "Creating",
            Phase::Updating { .. } => "Updating",
            Phase::InService => "InService",
            Phase::Failed => "Failed",
            Phase::UpdateRollbackFailed => "UpdateRollbackFailed",
            Phase::Deleting { .. } => "Deleting",
        }
    }

    /// The variants this endpoint will have when its current transition ends.
    fn desired(&self) -> &[VariantSpec] {
        match &self.phase {
            Phase::Creating { plan, .. } | Phase::Updating { plan, .. } => plan,
            _ => &self.variants,
        }
    }

    /// Instances of `instance_type` this endpoint holds against the account limit.
    fn instances_of(&self, instance_type: &str) -> u32 {
        // Counts are at most 100,000 per variant (`instance_count`), so sums fit.
        if matches!(self.phase, Phase::Failed | Phase::Deleting { .. }) {
            return 0;
        }
        let count = |variants: &[VariantSpec]| -> u32 {
            variants.iter().filter(|v| v.instance_type() == Some(instance_type)).map(VariantSpec::instance_count).sum()
        };
        count(&self.variants).max(count(self.desired()))
    }
}

/// What Application Auto Scaling sees of one production variant.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantScaling {
    pub status: &'static str,
    pub instance_type: String,
    /// The count the endpoint is heading to: DescribeEndpoint's DesiredInstanceCount.
    pub desired: u32,
    /// Instances in service, while the endpoint serves: CurrentInstanceCount.
    pub current: Option<u32>,
    /// Why the last deployment failed, if it did.
    pub failure_reason: Option<String>,
    /// An asynchronous endpoint's variant, which may scale to zero instances.
    pub asynchronous: bool,
}

fn variant_not_found(variant: &str, endpoint_arn: &str) -> AwsError {
    AwsError::validation(format!("The variant(s) \"[{variant}]\" are not present in the current endpoint \"{endpoint_arn}\"."))
}

/// Wall-clock time at which the monotonic instant `at` happened.
fn wall_time(at: Instant) -> SystemTime {
    let now = Instant::now();
    if at <= now { SystemTime::now() - (now - at) } else { SystemTime::now() + (at - now) }
}

impl Registry {
    /// Applies every transition whose time has come; endpoints whose deletion
    /// finished disappear.
    pub fn settle(&mut self, ctx: &Context<'_>) {
        let names: Vec<String> = self.endpoints.keys().cloned().collect();
        for name in names {
            self.settle_one(ctx, &name);
        }
    }

    /// Applies the transition of one endpoint if its time has come.
    fn settle_one(&mut self, ctx: &Context<'_>, name: &str) {
        let now = Instant::now();
        let Some(endpoint) = self.endpoints.get_mut(name) else { return };
        match &mut endpoint.phase {
            Phase::Creating { until, plan } if *until <= now => {
                endpoint.modified = wall_time(*until);
                let plan = std::mem::take(plan);
                match deploy_failure(ctx.profile, &plan) {
                    Some(reason) => {
                        endpoint.failure_reason = Some(reason);
                        endpoint.phase = Phase::Failed;
                    }
                    None => {
                        endpoint.serving = Some(Arc::new(Deployment::start(name, &plan, ctx.profile, ctx.store, None)));
                        endpoint.phase = Phase::InService;
                    }
                }
                endpoint.variants = plan;
            }
            Phase::Updating { until, ending: Some(ending), .. } if *until <= now => {
                endpoint.modified = wall_time(*until);
                let ending = *ending;
                fail_update(endpoint, ending);
            }
            Phase::Updating { until, plan, config_name, asynchronous, ending: None } if *until <= now => {
                endpoint.modified = wall_time(*until);
                let plan = std::mem::take(plan);
                match deploy_failure(ctx.profile, &plan) {
                    // The update rolls back: the old deployment keeps serving.
                    Some(reason) => endpoint.failure_reason = Some(reason),
                    None => {
                        let previous = endpoint.serving.take();
                        endpoint.serving =
                            Some(Arc::new(Deployment::start(name, &plan, ctx.profile, ctx.store, previous.as_deref())));
                        endpoint.config_name = std::mem::take(config_name);
                        endpoint.asynchronous = asynchronous.take();
                        endpoint.variants = plan;
                        endpoint.failure_reason = None;
                    }
                }
                endpoint.phase = Phase::InService;
            }
            Phase::Deleting { until } if *until <= now => {
                self.endpoints.remove(name);
            }
            _ => {}
        }
    }

    /// The endpoint and the deployment serving it, or the error the runtime gives.
    fn live(&mut self, ctx: &Context<'_>, endpoint: &str) -> Result<(&Endpoint, Arc<Deployment>), AwsError> {
        self.settle_one(ctx, endpoint);
        let not_found = || runtime_error(format!("Endpoint {endpoint} of account {ACCOUNT_ID} not found."));
        let found = self.endpoints.get(endpoint).ok_or_else(not_found)?;
        match (&found.phase, &found.serving) {
            (Phase::InService | Phase::Updating { .. } | Phase::UpdateRollbackFailed, Some(deployment)) => {
                Ok((found, deployment.clone()))
            }
            (Phase::Deleting { .. }, _) => Err(not_found()),
            (phase, _) => Err(runtime_error(format!(
                "Endpoint {endpoint} of account {ACCOUNT_ID} is not in service (status: {}).",
                match phase {
                    Phase::Creating { .. } => "Creating",
                    _ => "Failed",
                }
            ))),
        }
    }

    /// Every real-time variant in service marks this second in its metrics
    /// (asynchronous endpoints publish no invocation counters while idle).
    pub fn heartbeat(&mut self, ctx: &Context<'_>) {
        self.settle(ctx);
        let serving = self
            .endpoints
            .values()
            .filter(|e| e.asynchronous.is_none() && matches!(e.phase, Phase::InService | Phase::Updating { .. }));
        for deployment in serving.filter_map(|e| e.serving.as_ref()) {
            deployment.variants.iter().for_each(|v| v.heartbeat());
        }
    }

    /// The deployment serving `endpoint`, or the error InvokeEndpoint gives.
    pub fn serving(&mut self, ctx: &Context<'_>, endpoint: &str) -> Result<Arc<Deployment>, AwsError> {
        let (found, deployment) = self.live(ctx, endpoint)?;
        if found.asynchronous.is_some() {
            return Err(runtime_error(format!(
                "Endpoint {endpoint} of account {ACCOUNT_ID} is an asynchronous endpoint: invoke it with InvokeEndpointAsync."
            )));
        }
        Ok(deployment)
    }

    /// The AsyncInferenceConfig of `endpoint` if it takes asynchronous
    /// requests now, or the error InvokeEndpointAsync gives.
    pub fn accepting_async(&mut self, ctx: &Context<'_>, endpoint: &str) -> Result<Arc<AsyncConfig>, AwsError> {
        let (found, _) = self.live(ctx, endpoint)?;
        found.asynchronous.clone().ok_or_else(|| {
            runtime_error(format!(
                "Endpoint {endpoint} of account {ACCOUNT_ID} is not configured for asynchronous inference: \
                 its endpoint configuration has no AsyncInferenceConfig."
            ))
        })
    }

    /// What serves asynchronous `endpoint` now, for its worker.
    pub fn async_deployment(&mut self, ctx: &Context<'_>, endpoint: &str) -> Deployed {
        self.settle_one(ctx, endpoint);
        let Some(found) = self.endpoints.get(endpoint) else { return Deployed::Gone };
        match (&found.phase, &found.serving, &found.asynchronous) {
            (Phase::Deleting { .. }, _, _) | (_, _, None) => Deployed::Gone,
            (Phase::InService | Phase::Updating { .. }, Some(deployment), Some(config)) => {
                Deployed::Serving { deployment: deployment.clone(), config: config.clone() }
            }
            _ => Deployed::NotServing,
        }
    }

    /// ResourceLimitExceeded when deploying `plan` in place of `current` would
    /// take an instance type past its account limit.
    fn check_limits(&self, ctx: &Context<'_>, plan: &[VariantSpec], current: &[VariantSpec]) -> Result<(), AwsError> {
        for instance_type in plan.iter().filter_map(VariantSpec::instance_type) {
            let limit = ctx.profile.behaviour(instance_type).map_or(0, |b| b.max_instances);
            let used: u64 = self.endpoints.values().map(|e| e.instances_of(instance_type) as u64).sum();
            let count_in = |variants: &[VariantSpec]| -> u64 {
                variants.iter().filter(|v| v.instance_type() == Some(instance_type)).map(|v| v.instance_count() as u64).sum()
            };
            let delta = count_in(plan).saturating_sub(count_in(current));
            if used + delta > limit as u64 {
                return Err(AwsError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "ResourceLimitExceeded",
                    format!(
                        "The account-level service limit '{instance_type} for endpoint usage' is {limit} Instances, with current utilization of {used} Instances and a request delta of {delta} Instances. Please use AWS Service Quotas to request an increase to this quota.",
                    ),
                ));
            }
        }
        Ok(())
    }

    pub(super) fn create_endpoint(&mut self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
        let name = name_member(input, "EndpointName", "endpointName")?;
        let config_name = required_str(input, "EndpointConfigName", "endpointConfigName")?;
        let arn = ctx.arn("endpoint", name);
        if self.endpoints.contains_key(name) {
            return Err(AwsError::validation(format!("Cannot create already existing endpoint \"{arn}\".")));
        }
        let config = self.config(ctx, config_name)?;
        let (plan, asynchronous) = (config.variants.clone(), config.asynchronous.clone());
        self.check_limits(ctx, &plan, &[])?;
        let now = SystemTime::now();
        self.endpoints.insert(
            name.to_string(),
            Endpoint {
                meta: Meta { arn: arn.clone(), created: now, tags: tags_member(input)? },
                config_name: config_name.to_string(),
                modified: now,
                phase: Phase::Creating { until: Instant::now() + ctx.profile.deploy, plan: plan.clone() },
                variants: plan,
                serving: None,
                failure_reason: None,
                asynchronous,
            },
        );
        Ok(json!({ "EndpointArn": arn }))
    }

    fn endpoint(&self, ctx: &Context<'_>, name: &str) -> Result<&Endpoint, AwsError> {
        self.endpoints
            .get(name)
            .ok_or_else(|| AwsError::validation(format!("Could not find endpoint \"{}\".", ctx.arn("endpoint", name))))
    }

    pub(super) fn describe_endpoint(&self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
        let name = required_str(input, "EndpointName", "endpointName")?;
        let endpoint = self.endpoint(ctx, name)?;
        let models = &self.models;
        let variants: Vec<Value> = endpoint
            .desired()
            .iter()
            .map(|desired| {
                let current = endpoint.serving.as_ref().and_then(|d| d.variants.iter().find(|v| v.spec.name == desired.name));
                let mut summary = json!({
                    "VariantName": desired.name,
                    "DesiredWeight": desired.weight,
                });
                match desired.serverless() {
                    Some(config) => summary["DesiredServerlessConfig"] = config.to_json(),
                    None => summary["DesiredInstanceCount"] = json!(desired.instance_count()),
                }
                if let Some(current) = current {
                    summary["CurrentWeight"] = json!(current.spec.weight);
                    match current.spec.serverless() {
                        Some(config) => summary["CurrentServerlessConfig"] = config.to_json(),
                        None => summary["CurrentInstanceCount"] = json!(current.instance_count()),
                    }
                    let image = models.get(&current.spec.model_name).and_then(|m| m.image.clone());
                    summary["DeployedImages"] = json!([{
                        "SpecifiedImage": image,
                        "ResolvedImage": image,
                        "ResolutionTime": timestamp(endpoint.modified),
                    }]);
                }
                summary
            })
            .collect();
        let mut out = json!({
            "EndpointName": name,
            "EndpointArn": endpoint.meta.arn,
            "EndpointConfigName": endpoint.config_name,
            "ProductionVariants": variants,
            "EndpointStatus": endpoint.status(),
            "CreationTime": timestamp(endpoint.meta.created),
            "LastModifiedTime": timestamp(endpoint.modified),
        });
        if let Some(reason) = &endpoint.failure_reason {
            out["FailureReason"] = json!(reason);
        }
        if let Some(asynchronous) = &endpoint.asynchronous {
            out["AsyncInferenceConfig"] = asynchronous.to_json();
        }
        Ok(out)
    }

    fn in_service_endpoint(&self, ctx: &Context<'_>, name: &str) -> Result<&Endpoint, AwsError> {
        let endpoint = self.endpoint(ctx, name)?;
        if !matches!(endpoint.phase, Phase::InService) {
            return Err(AwsError::validation(format!("Cannot update in-progress endpoint \"{}\".", endpoint.meta.arn)));
        }
        Ok(endpoint)
    }

    pub(super) fn update_endpoint(&mut self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
        let name = required_str(input, "EndpointName", "endpointName")?;
        let config_name = required_str(input, "EndpointConfigName", "endpointConfigName")?;
        let endpoint = self.in_service_endpoint(ctx, name)?;
        if endpoint.config_name == config_name {
            return Err(AwsError::validation(format!(
                "Cannot update endpoint \"{}\" to endpoint configuration \"{config_name}\": the endpoint already uses it.",
                endpoint.meta.arn
            )));
        }
        let config = self.config(ctx, config_name)?;
        let (plan, asynchronous) = (config.variants.clone(), config.asynchronous.clone());
        self.check_limits(ctx, &plan, &endpoint.variants)?;
        let endpoint = self.endpoints.get_mut(name).expect("checked above");
        let until = Instant::now() + ctx.profile.deploy;
        endpoint.phase =
            Phase::Updating { until, plan, config_name: config_name.to_string(), asynchronous, ending: ctx.update_ending };
        endpoint.modified = SystemTime::now();
        Ok(json!({ "EndpointArn": endpoint.meta.arn }))
    }

    pub(super) fn update_weights_and_capacities(&mut self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
        let name = required_str(input, "EndpointName", "endpointName")?;
        let endpoint = self.in_service_endpoint(ctx, name)?;
        let changes = input
            .get("DesiredWeightsAndCapacities")
            .and_then(Value::as_array)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| not_null("desiredWeightsAndCapacities"))?;
        let mut plan = endpoint.variants.clone();
        for (i, change) in changes.iter().enumerate() {
            let variant =
                required_str(change, "VariantName", &format!("desiredWeightsAndCapacities.{}.member.variantName", i + 1))?;
            let spec =
                plan.iter_mut().find(|v| v.name == variant).ok_or_else(|| variant_not_found(variant, &endpoint.meta.arn))?;
            if let Some(count) = change.get("DesiredInstanceCount") {
                // Only asynchronous inference scales a variant to no instance at all.
                let min = if endpoint.asynchronous.is_some() { 0 } else { 1 };
                let count = instance_count(Some(count), "desiredInstanceCount", min)?;
                match &mut spec.capacity {
                    VariantCapacity::Instances { count: current, .. } => *current = count,
                    VariantCapacity::Serverless(_) => {
                        return Err(AwsError::validation(format!(
                            "Production variant {variant} of endpoint \"{}\" is serverless: it has no instance count to change.",
                            endpoint.meta.arn
                        )));
                    }
                }
            }
            if let Some(weight) = change.get("DesiredWeight").and_then(Value::as_f64) {
                spec.weight = weight;
            }
        }
        self.check_limits(ctx, &plan, &endpoint.variants)?;
        let endpoint = self.endpoints.get_mut(name).expect("checked above");
        endpoint.phase = Phase::Updating {
            until: Instant::now() + ctx.profile.deploy,
            plan,
            config_name: endpoint.config_name.clone(),
            asynchronous: endpoint.asynchronous.clone(),
            ending: ctx.update_ending,
        };
        endpoint.modified = SystemTime::now();
        Ok(json!({ "EndpointArn": endpoint.meta.arn }))
    }

    /// The capacity of `variant` of `endpoint`, as its transitions stand now.
    pub fn variant_scaling(&mut self, ctx: &Context<'_>, endpoint: &str, variant: &str) -> Result<VariantScaling, AwsError> {
        self.settle_one(ctx, endpoint);
        let found = self.endpoint(ctx, endpoint)?;
        let desired =
            found.desired().iter().find(|v| v.name == variant).ok_or_else(|| variant_not_found(variant, &found.meta.arn))?;
        // Application Auto Scaling scales a serverless variant's provisioned
        // concurrency, which the simulator does not; instance counts it has none.
        let instance_type = desired.instance_type().ok_or_else(|| {
            AwsError::validation(format!(
                "Production variant {variant} of endpoint \"{}\" is serverless: the simulator scales instance counts only.",
                found.meta.arn
            ))
        })?;
        let current =
            found.serving.as_ref().and_then(|d| d.variants.iter().find(|v| v.spec.name == variant)).map(|v| v.instance_count());
        Ok(VariantScaling {
            status: found.status(),
            instance_type: instance_type.to_string(),
            desired: desired.instance_count(),
            current,
            failure_reason: found.failure_reason.clone(),
            asynchronous: found.asynchronous.is_some(),
        })
    }

    /// Sets the desired instance count of `variant` through
    /// UpdateEndpointWeightsAndCapacities itself, as Application Auto Scaling does.
    pub fn set_desired_instance_count(
        &mut self,
        ctx: &Context<'_>,
        endpoint: &str,
        variant: &str,
        count: u32,
    ) -> Result<(), AwsError> {
        self.settle_one(ctx, endpoint);
        let input = json!({
            "EndpointName": endpoint,
            "DesiredWeightsAndCapacities": [{"VariantName": variant, "DesiredInstanceCount": count}],
        });
        self.update_weights_and_capacities(ctx, &input).map(drop)
    }

    pub(super) fn delete_endpoint(&mut self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
        let name = required_str(input, "EndpointName", "endpointName")?;
        let endpoint = self.endpoint(ctx, name)?;
        if !matches!(endpoint.phase, Phase::InService | Phase::Failed | Phase::UpdateRollbackFailed) {
            return Err(AwsError::validation(format!("Cannot update in-progress endpoint \"{}\".", endpoint.meta.arn)));
        }
        let endpoint = self.endpoints.get_mut(name).expect("checked above");
        endpoint.phase = Phase::Deleting { until: Instant::now() + ctx.profile.delete };
        endpoint.modified = SystemTime::now();
        Ok(json!({}))
    }

    pub(super) fn list_endpoints(&self, input: &Value) -> Result<Value, AwsError> {
        let status = str_member(input, "StatusEquals");
        let rows: Vec<Row> = self
            .endpoints
            .iter()
            .filter(|(_, e)| status.is_none_or(|s| s == e.status()))
            .map(|(name, e)| Row {
                name,
                created: e.meta.created,
                modified: Some(e.modified),
                status: Some(e.status()),
                summary: json!({
                    "EndpointName": name,
                    "EndpointArn": e.meta.arn,
                    "CreationTime": timestamp(e.meta.created),
                    "LastModifiedTime": timestamp(e.modified),
                    "EndpointStatus": e.status(),
                }),
            })
            .collect();
        list_page(input, rows, "Endpoints")
    }
}

/// The runtime's client error (restJson1 `ValidationError`).
/// Ends an update the way a fault said: Failed takes the endpoint out of
/// service; UpdateRollbackFailed leaves the old deployment serving.
fn fail_update(endpoint: &mut Endpoint, ending: UpdateEnding) {
    let (phase, reason) = match ending {
        UpdateEnding::Failed => {
            endpoint.serving = None;
            (Phase::Failed, "simulated fault: the update failed and the endpoint is out of service")
        }
        UpdateEnding::RollbackFailed => {
            (Phase::UpdateRollbackFailed, "simulated fault: the update failed, and so did its rollback")
        }
    };
    endpoint.phase = phase;
    endpoint.failure_reason = Some(reason.to_string());
}

fn runtime_error(message: String) -> AwsError {
    AwsError::new(axum::http::StatusCode::BAD_REQUEST, "ValidationError", message)
}

/// The failure reason when `plan` uses a type the profile says fails to deploy.
fn deploy_failure(profile: &Profile, plan: &[VariantSpec]) -> Option<String> {
    plan.iter()
        .filter_map(|v| v.instance_type().and_then(|t| profile.behaviour(t)))
        .map(|b| b.deploy_failure)
        .find(|reason| !reason.is_empty())
}
