//! The SageMaker control plane (awsJson 1.1): models, endpoint configs and
//! endpoints, their lifecycle in real time, tags, listings, and the errors
//! SageMaker gives for each misuse.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::ACCOUNT_ID;
use super::metrics::{MetricStore, epoch_seconds};
use super::profile::Profile;
use super::runtime::{Deployment, Routing, VariantSpec};
use super::wire::AwsError;
use crate::sagemaker::valid_name;

/// What every SageMaker resource carries.
#[derive(Debug, Clone)]
struct Meta {
    arn: String,
    created: SystemTime,
    tags: Vec<(String, String)>,
}

#[derive(Debug)]
struct Model {
    meta: Meta,
    image: Option<String>,
    model_data_url: Option<String>,
    role: Option<String>,
    environment: Map<String, Value>,
}

#[derive(Debug)]
struct EndpointConfig {
    meta: Meta,
    variants: Vec<VariantSpec>,
}

/// Where an endpoint is in its lifecycle. Transitions happen when their time
/// has come, checked whenever the endpoint is looked at.
#[derive(Debug)]
enum Phase {
    Creating { until: Instant, plan: Vec<VariantSpec> },
    Updating { until: Instant, plan: Vec<VariantSpec>, config_name: String },
    InService,
    Failed,
    Deleting { until: Instant },
}

#[derive(Debug)]
struct Endpoint {
    meta: Meta,
    config_name: String,
    modified: SystemTime,
    phase: Phase,
    /// The variants as last deployed (or being created).
    variants: Vec<VariantSpec>,
    serving: Option<Arc<Deployment>>,
    failure_reason: Option<String>,
}

impl Endpoint {
    fn status(&self) -> &'static str {
        match self.phase {
            Phase::Creating { .. } => "Creating",
            Phase::Updating { .. } => "Updating",
            Phase::InService => "InService",
            Phase::Failed => "Failed",
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
            variants.iter().filter(|v| v.instance_type == instance_type).map(|v| v.count).sum()
        };
        count(&self.variants).max(count(self.desired()))
    }
}

/// Wall-clock time at which the monotonic instant `at` happened.
fn wall_time(at: Instant) -> SystemTime {
    let now = Instant::now();
    if at <= now { SystemTime::now() - (now - at) } else { SystemTime::now() + (at - now) }
}

/// The SageMaker resources of one simulator.
#[derive(Debug, Default)]
pub struct Registry {
    models: BTreeMap<String, Model>,
    configs: BTreeMap<String, EndpointConfig>,
    endpoints: BTreeMap<String, Endpoint>,
}

/// Everything an operation needs besides the registry.
pub struct Context<'a> {
    pub profile: &'a Profile,
    pub store: &'a MetricStore,
    pub region: &'a str,
}

impl Context<'_> {
    fn arn(&self, kind: &str, name: &str) -> String {
        format!("arn:aws:sagemaker:{}:{ACCOUNT_ID}:{kind}/{}", self.region, name.to_lowercase())
    }
}

fn constraint(value: &str, member: &str, rule: &str) -> AwsError {
    AwsError::validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {rule}"
    ))
}

fn not_null(member: &str) -> AwsError {
    AwsError::validation(format!(
        "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
    ))
}

fn str_member<'v>(input: &'v Value, key: &str) -> Option<&'v str> {
    input.get(key).and_then(Value::as_str)
}

fn required_str<'v>(input: &'v Value, key: &str, member: &str) -> Result<&'v str, AwsError> {
    str_member(input, key).ok_or_else(|| not_null(member))
}

/// A resource name from `key`, checked against SageMaker's naming rule.
fn name_member<'v>(input: &'v Value, key: &str, member: &str) -> Result<&'v str, AwsError> {
    let name = required_str(input, key, member)?;
    if name.len() > 63 {
        return Err(constraint(name, member, "Member must have length less than or equal to 63"));
    }
    if !valid_name(name) {
        return Err(constraint(
            name,
            member,
            "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
        ));
    }
    Ok(name)
}

/// An instance count member: a whole number from 1 to 100,000 (a bound far
/// above any account limit that keeps arithmetic on counts safe).
fn instance_count(value: Option<&Value>, member: &str) -> Result<u32, AwsError> {
    let value = value.ok_or_else(|| not_null(member))?;
    match value.as_i64() {
        Some(n) if n < 1 => Err(constraint(&n.to_string(), member, "Member must have value greater than or equal to 1")),
        Some(n) if n <= 100_000 => Ok(n as u32),
        _ => Err(constraint(&value.to_string(), member, "Member must have value less than or equal to 100000")),
    }
}

fn tags_member(input: &Value) -> Result<Vec<(String, String)>, AwsError> {
    let Some(tags) = input.get("Tags").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    tags.iter()
        .enumerate()
        .map(|(i, tag)| {
            let key = str_member(tag, "Key").ok_or_else(|| not_null(&format!("tags.{}.member.key", i + 1)))?;
            Ok((key.to_string(), str_member(tag, "Value").unwrap_or_default().to_string()))
        })
        .collect()
}

fn merge_tags(existing: &mut Vec<(String, String)>, new: Vec<(String, String)>) {
    for (key, value) in new {
        match existing.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => existing.push((key, value)),
        }
    }
}

fn tags_json(tags: &[(String, String)]) -> Value {
    Value::Array(tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect())
}

fn time(t: SystemTime) -> Value {
    json!((epoch_seconds(t) * 1000.0).round() / 1000.0)
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
            Phase::Updating { until, plan, config_name } if *until <= now => {
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

    /// The deployment serving `endpoint`, or the error InvokeEndpoint gives.
    pub fn serving(&mut self, ctx: &Context<'_>, endpoint: &str) -> Result<Arc<Deployment>, AwsError> {
        self.settle_one(ctx, endpoint);
        let not_found = || {
            AwsError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "ValidationError",
                format!("Endpoint {endpoint} of account {ACCOUNT_ID} not found."),
            )
        };
        let found = self.endpoints.get(endpoint).ok_or_else(not_found)?;
        match (&found.phase, &found.serving) {
            (Phase::InService | Phase::Updating { .. }, Some(deployment)) => Ok(deployment.clone()),
            (Phase::Deleting { .. }, _) => Err(not_found()),
            (phase, _) => Err(AwsError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "ValidationError",
                format!(
                    "Endpoint {endpoint} of account {ACCOUNT_ID} is not in service (status: {}).",
                    match phase {
                        Phase::Creating { .. } => "Creating",
                        _ => "Failed",
                    }
                ),
            )),
        }
    }

    /// Runs one control-plane operation.
    pub fn call(&mut self, ctx: &Context<'_>, operation: &str, input: &Value) -> Result<Value, AwsError> {
        self.settle(ctx);
        match operation {
            "CreateModel" => self.create_model(ctx, input),
            "DescribeModel" => self.describe_model(ctx, input),
            "DeleteModel" => self.delete_model(ctx, input),
            "ListModels" => Ok(self.list_models(input)?),
            "CreateEndpointConfig" => self.create_endpoint_config(ctx, input),
            "DescribeEndpointConfig" => self.describe_endpoint_config(ctx, input),
            "DeleteEndpointConfig" => self.delete_endpoint_config(ctx, input),
            "ListEndpointConfigs" => self.list_endpoint_configs(input),
            "CreateEndpoint" => self.create_endpoint(ctx, input),
            "DescribeEndpoint" => self.describe_endpoint(ctx, input),
            "UpdateEndpoint" => self.update_endpoint(ctx, input),
            "UpdateEndpointWeightsAndCapacities" => self.update_weights_and_capacities(ctx, input),
            "DeleteEndpoint" => self.delete_endpoint(ctx, input),
            "ListEndpoints" => self.list_endpoints(input),
            "AddTags" => self.add_tags(input),
            "ListTags" => self.list_tags(input),
            "DeleteTags" => self.delete_tags(input),
            other => Err(AwsError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "UnknownOperationException",
                format!("The simulator does not implement SageMaker.{other}"),
            )),
        }
    }

    fn create_model(&mut self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
        let name = name_member(input, "ModelName", "modelName")?;
        let arn = ctx.arn("model", name);
        if self.models.contains_key(name) {
            return Err(AwsError::validation(format!("Cannot create already existing model \"{arn}\".")));
        }
        let container = input
            .get("PrimaryContainer")
            .or_else(|| input.get("Containers").and_then(|c| c.get(0)))
            .cloned()
            .unwrap_or(Value::Null);
        self.models.insert(
            name.to_string(),
            Model {
                meta: Meta { arn: arn.clone(), created: SystemTime::now(), tags: tags_member(input)? },
                image: str_member(&container, "Image").map(str::to_string),
                model_data_url: str_member(&container, "ModelDataUrl").map(str::to_string),
                role: str_member(input, "ExecutionRoleArn").map(str::to_string),
                environment: container.get("Environment").and_then(Value::as_object).cloned().unwrap_or_default(),
            },
        );
        Ok(json!({ "ModelArn": arn }))
    }

    fn model(&self, ctx: &Context<'_>, name: &str) -> Result<&Model, AwsError> {
        self.models.get(name).ok_or_else(|| AwsError::validation(format!("Could not find model \"{}\".", ctx.arn("model", name))))
    }

    fn describe_model(&self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
        let name = required_str(input, "ModelName", "modelName")?;
        let model = self.model(ctx, name)?;
        let mut container = Map::new();
        if let Some(image) = &model.image {
            container.insert("Image".into(), image.clone().into());
        }
        if let Some(url) = &model.model_data_url {
            container.insert("ModelDataUrl".into(), url.clone().into());
        }
        container.insert("Environment".into(), Value::Object(model.environment.clone()));
        Ok(json!({
            "ModelName": name,
            "ModelArn": model.meta.arn,
            "PrimaryContainer": container,
            "ExecutionRoleArn": model.role,
            "CreationTime": time(model.meta.created),
        }))
    }

    fn delete_model(&mut self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
        let name = required_str(input, "ModelName", "modelName")?;
        self.model(ctx, name)?;
        self.models.remove(name);
        Ok(json!({}))
    }

    fn create_endpoint_config(&mut self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
        let name = name_member(input, "EndpointConfigName", "endpointConfigName")?;
        let arn = ctx.arn("endpoint-config", name);
        if self.configs.contains_key(name) {
            return Err(AwsError::validation(format!("Cannot create already existing endpoint configuration \"{arn}\".")));
        }
        let variants = input
            .get("ProductionVariants")
            .and_then(Value::as_array)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| not_null("productionVariants"))?;
        let specs = variants.iter().enumerate().map(|(i, v)| self.variant_spec(ctx, i + 1, v)).collect::<Result<Vec<_>, _>>()?;
        self.configs.insert(
            name.to_string(),
            EndpointConfig {
                meta: Meta { arn: arn.clone(), created: SystemTime::now(), tags: tags_member(input)? },
                variants: specs,
            },
        );
        Ok(json!({ "EndpointConfigArn": arn }))
    }

    fn variant_spec(&self, ctx: &Context<'_>, index: usize, v: &Value) -> Result<VariantSpec, AwsError> {
        let member = |field: &str| format!("productionVariants.{index}.member.{field}");
        let name = name_member(v, "VariantName", &member("variantName"))?;
        let model_name = required_str(v, "ModelName", &member("modelName"))?;
        self.model(ctx, model_name)?;
        let instance_type = required_str(v, "InstanceType", &member("instanceType"))?;
        if ctx.profile.behaviour(instance_type).is_none() {
            return Err(constraint(
                instance_type,
                &member("instanceType"),
                "Member must satisfy enum value set: [ml.t2.medium, ml.m5.large, ml.m5.xlarge, ml.c5.large, ml.g4dn.xlarge, …]",
            ));
        }
        let count = instance_count(v.get("InitialInstanceCount"), &member("initialInstanceCount"))?;
        let weight = v.get("InitialVariantWeight").and_then(Value::as_f64).unwrap_or(1.0);
        let routing = match v.get("RoutingConfig").and_then(|r| str_member(r, "RoutingStrategy")) {
            None | Some("RANDOM") => Routing::Random,
            Some("LEAST_OUTSTANDING_REQUESTS") => Routing::LeastOutstandingRequests,
            Some(other) => {
                return Err(constraint(
                    other,
                    &member("routingConfig.routingStrategy"),
                    "Member must satisfy enum value set: [LEAST_OUTSTANDING_REQUESTS, RANDOM]",
                ));
            }
        };
        Ok(VariantSpec {
            name: name.to_string(),
            model_name: model_name.to_string(),
            instance_type: instance_type.to_string(),
            count,
            weight,
            routing,
        })
    }

    fn config(&self, ctx: &Context<'_>, name: &str) -> Result<&EndpointConfig, AwsError> {
        self.configs.get(name).ok_or_else(|| {
            AwsError::validation(format!("Could not find endpoint configuration \"{}\".", ctx.arn("endpoint-config", name)))
        })
    }

    fn describe_endpoint_config(&self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
        let name = required_str(input, "EndpointConfigName", "endpointConfigName")?;
        let config = self.config(ctx, name)?;
        let variants: Vec<Value> = config
            .variants
            .iter()
            .map(|v| {
                json!({
                    "VariantName": v.name,
                    "ModelName": v.model_name,
                    "InitialInstanceCount": v.count,
                    "InstanceType": v.instance_type,
                    "InitialVariantWeight": v.weight,
                    "RoutingConfig": { "RoutingStrategy": v.routing.as_str() },
                })
            })
            .collect();
        Ok(json!({
            "EndpointConfigName": name,
            "EndpointConfigArn": config.meta.arn,
            "ProductionVariants": variants,
            "CreationTime": time(config.meta.created),
        }))
    }

    fn delete_endpoint_config(&mut self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
        let name = required_str(input, "EndpointConfigName", "endpointConfigName")?;
        // As in SageMaker, a config may go while endpoints use it: they keep
        // what they deployed.
        self.config(ctx, name)?;
        self.configs.remove(name);
        Ok(json!({}))
    }

    /// ResourceLimitExceeded when deploying `plan` in place of `current` would
    /// take an instance type past its account limit.
    fn check_limits(&self, ctx: &Context<'_>, plan: &[VariantSpec], current: &[VariantSpec]) -> Result<(), AwsError> {
        for spec in plan {
            let limit = ctx.profile.behaviour(&spec.instance_type).map_or(0, |b| b.max_instances);
            let used: u64 = self.endpoints.values().map(|e| e.instances_of(&spec.instance_type) as u64).sum();
            let count_in = |variants: &[VariantSpec]| -> u64 {
                variants.iter().filter(|v| v.instance_type == spec.instance_type).map(|v| v.count as u64).sum()
            };
            let delta = count_in(plan).saturating_sub(count_in(current));
            if used + delta > limit as u64 {
                return Err(AwsError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "ResourceLimitExceeded",
                    format!(
                        "The account-level service limit '{} for endpoint usage' is {limit} Instances, with current utilization of {used} Instances and a request delta of {delta} Instances. Please use AWS Service Quotas to request an increase to this quota.",
                        spec.instance_type
                    ),
                ));
            }
        }
        Ok(())
    }

    fn create_endpoint(&mut self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
        let name = name_member(input, "EndpointName", "endpointName")?;
        let config_name = required_str(input, "EndpointConfigName", "endpointConfigName")?;
        let arn = ctx.arn("endpoint", name);
        if self.endpoints.contains_key(name) {
            return Err(AwsError::validation(format!("Cannot create already existing endpoint \"{arn}\".")));
        }
        let plan = self.config(ctx, config_name)?.variants.clone();
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
            },
        );
        Ok(json!({ "EndpointArn": arn }))
    }

    fn endpoint(&self, ctx: &Context<'_>, name: &str) -> Result<&Endpoint, AwsError> {
        self.endpoints
            .get(name)
            .ok_or_else(|| AwsError::validation(format!("Could not find endpoint \"{}\".", ctx.arn("endpoint", name))))
    }

    fn describe_endpoint(&self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
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
                    "DesiredInstanceCount": desired.count,
                });
                if let Some(current) = current {
                    summary["CurrentWeight"] = json!(current.spec.weight);
                    summary["CurrentInstanceCount"] = json!(current.instance_count());
                    let image = models.get(&current.spec.model_name).and_then(|m| m.image.clone());
                    summary["DeployedImages"] = json!([{
                        "SpecifiedImage": image,
                        "ResolvedImage": image,
                        "ResolutionTime": time(endpoint.modified),
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
            "CreationTime": time(endpoint.meta.created),
            "LastModifiedTime": time(endpoint.modified),
        });
        if let Some(reason) = &endpoint.failure_reason {
            out["FailureReason"] = json!(reason);
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

    fn update_endpoint(&mut self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
        let name = required_str(input, "EndpointName", "endpointName")?;
        let config_name = required_str(input, "EndpointConfigName", "endpointConfigName")?;
        let endpoint = self.in_service_endpoint(ctx, name)?;
        if endpoint.config_name == config_name {
            return Err(AwsError::validation(format!(
                "Cannot update endpoint \"{}\" to endpoint configuration \"{config_name}\": the endpoint already uses it.",
                endpoint.meta.arn
            )));
        }
        let plan = self.config(ctx, config_name)?.variants.clone();
        self.check_limits(ctx, &plan, &endpoint.variants)?;
        let endpoint = self.endpoints.get_mut(name).expect("checked above");
        endpoint.phase =
            Phase::Updating { until: Instant::now() + ctx.profile.deploy, plan, config_name: config_name.to_string() };
        endpoint.modified = SystemTime::now();
        Ok(json!({ "EndpointArn": endpoint.meta.arn }))
    }

    fn update_weights_and_capacities(&mut self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
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
            let spec = plan.iter_mut().find(|v| v.name == variant).ok_or_else(|| {
                AwsError::validation(format!(
                    "The variant(s) \"[{variant}]\" are not present in the current endpoint \"{}\".",
                    endpoint.meta.arn
                ))
            })?;
            if let Some(count) = change.get("DesiredInstanceCount") {
                spec.count = instance_count(Some(count), "desiredInstanceCount")?;
            }
            if let Some(weight) = change.get("DesiredWeight").and_then(Value::as_f64) {
                spec.weight = weight;
            }
        }
        self.check_limits(ctx, &plan, &endpoint.variants)?;
        let endpoint = self.endpoints.get_mut(name).expect("checked above");
        endpoint.phase =
            Phase::Updating { until: Instant::now() + ctx.profile.deploy, plan, config_name: endpoint.config_name.clone() };
        endpoint.modified = SystemTime::now();
        Ok(json!({ "EndpointArn": endpoint.meta.arn }))
    }

    fn delete_endpoint(&mut self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
        let name = required_str(input, "EndpointName", "endpointName")?;
        let endpoint = self.endpoint(ctx, name)?;
        if !matches!(endpoint.phase, Phase::InService | Phase::Failed) {
            return Err(AwsError::validation(format!("Cannot update in-progress endpoint \"{}\".", endpoint.meta.arn)));
        }
        let endpoint = self.endpoints.get_mut(name).expect("checked above");
        endpoint.phase = Phase::Deleting { until: Instant::now() + ctx.profile.delete };
        endpoint.modified = SystemTime::now();
        Ok(json!({}))
    }

    fn list_endpoints(&self, input: &Value) -> Result<Value, AwsError> {
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
                    "CreationTime": time(e.meta.created),
                    "LastModifiedTime": time(e.modified),
                    "EndpointStatus": e.status(),
                }),
            })
            .collect();
        list_page(input, rows, "Endpoints")
    }

    fn list_models(&self, input: &Value) -> Result<Value, AwsError> {
        let rows = self
            .models
            .iter()
            .map(|(name, m)| Row {
                name,
                created: m.meta.created,
                modified: None,
                status: None,
                summary: json!({"ModelName": name, "ModelArn": m.meta.arn, "CreationTime": time(m.meta.created)}),
            })
            .collect();
        list_page(input, rows, "Models")
    }

    fn list_endpoint_configs(&self, input: &Value) -> Result<Value, AwsError> {
        let rows = self
            .configs
            .iter()
            .map(|(name, c)| Row {
                name,
                created: c.meta.created,
                modified: None,
                status: None,
                summary: json!({
                    "EndpointConfigName": name,
                    "EndpointConfigArn": c.meta.arn,
                    "CreationTime": time(c.meta.created),
                }),
            })
            .collect();
        list_page(input, rows, "EndpointConfigs")
    }

    /// The tags of the resource with this ARN.
    fn tags_mut(&mut self, arn: &str) -> Result<&mut Vec<(String, String)>, AwsError> {
        let meta = self
            .models
            .values_mut()
            .map(|m| &mut m.meta)
            .chain(self.configs.values_mut().map(|c| &mut c.meta))
            .chain(self.endpoints.values_mut().map(|e| &mut e.meta))
            .find(|meta| meta.arn == arn);
        meta.map(|m| &mut m.tags).ok_or_else(|| AwsError::validation(format!("Could not find resource \"{arn}\".")))
    }

    fn add_tags(&mut self, input: &Value) -> Result<Value, AwsError> {
        let arn = required_str(input, "ResourceArn", "resourceArn")?;
        let new = tags_member(input)?;
        let tags = self.tags_mut(arn)?;
        merge_tags(tags, new);
        Ok(json!({ "Tags": tags_json(tags) }))
    }

    fn list_tags(&mut self, input: &Value) -> Result<Value, AwsError> {
        let arn = required_str(input, "ResourceArn", "resourceArn")?;
        let tags = self.tags_mut(arn)?;
        Ok(json!({ "Tags": tags_json(tags) }))
    }

    fn delete_tags(&mut self, input: &Value) -> Result<Value, AwsError> {
        let arn = required_str(input, "ResourceArn", "resourceArn")?;
        let keys: Vec<&str> = input
            .get("TagKeys")
            .and_then(Value::as_array)
            .map(|keys| keys.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        self.tags_mut(arn)?.retain(|(k, _)| !keys.contains(&k.as_str()));
        Ok(json!({}))
    }
}

/// The failure reason when `plan` uses a type the profile says fails to deploy.
fn deploy_failure(profile: &Profile, plan: &[VariantSpec]) -> Option<String> {
    plan.iter().filter_map(|v| profile.behaviour(&v.instance_type)).map(|b| b.deploy_failure).find(|reason| !reason.is_empty())
}

/// One resource in a listing, with what filters and sorting look at.
struct Row<'a> {
    name: &'a str,
    created: SystemTime,
    modified: Option<SystemTime>,
    status: Option<&'static str>,
    summary: Value,
}

fn time_member(input: &Value, key: &str) -> Option<SystemTime> {
    let secs = input.get(key)?.as_f64()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs.max(0.0)))
}

/// Filters, sorts and pages a listing the way every SageMaker List* call does.
fn list_page(input: &Value, mut rows: Vec<Row<'_>>, key: &str) -> Result<Value, AwsError> {
    let contains = str_member(input, "NameContains");
    let before = time_member(input, "CreationTimeBefore");
    let after = time_member(input, "CreationTimeAfter");
    let modified_before = time_member(input, "LastModifiedTimeBefore");
    let modified_after = time_member(input, "LastModifiedTimeAfter");
    rows.retain(|r| {
        contains.is_none_or(|c| r.name.contains(c))
            && before.is_none_or(|t| r.created < t)
            && after.is_none_or(|t| r.created > t)
            && modified_before.is_none_or(|t| r.modified.is_some_and(|m| m < t))
            && modified_after.is_none_or(|t| r.modified.is_some_and(|m| m > t))
    });
    match str_member(input, "SortBy").unwrap_or("CreationTime") {
        "Name" => rows.sort_by(|a, b| a.name.cmp(b.name)),
        "Status" => rows.sort_by(|a, b| a.status.cmp(&b.status).then(a.name.cmp(b.name))),
        "CreationTime" => rows.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(b.name))),
        other => {
            return Err(constraint(other, "sortBy", "Member must satisfy enum value set: [Name, CreationTime, Status]"));
        }
    }
    match str_member(input, "SortOrder").unwrap_or("Descending") {
        "Descending" => rows.reverse(),
        "Ascending" => {}
        other => {
            return Err(constraint(other, "sortOrder", "Member must satisfy enum value set: [Ascending, Descending]"));
        }
    }
    let max = input.get("MaxResults").and_then(Value::as_i64).unwrap_or(10);
    if !(1..=100).contains(&max) {
        return Err(constraint(&max.to_string(), "maxResults", "Member must have value between 1 and 100"));
    }
    let start = match str_member(input, "NextToken") {
        None => 0,
        Some(token) => token
            .strip_prefix("page-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| AwsError::validation(format!("Invalid pagination token \"{token}\".")))?,
    };
    let end = start.saturating_add(max as usize).min(rows.len());
    let page: Vec<Value> = rows.get(start..end).unwrap_or_default().iter().map(|r| r.summary.clone()).collect();
    let mut out = json!({ key: page });
    if end < rows.len() {
        out["NextToken"] = json!(format!("page-{end}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_sagemaker_rules() {
        assert!(valid_name("perfsize-abc-ml-m5-large-2"));
        assert!(valid_name("a"));
        assert!(valid_name("a--b"));
        assert!(!valid_name("-a"));
        assert!(!valid_name("a-"));
        assert!(!valid_name("a_b"));
        assert!(!valid_name("ml.m5"));
        assert!(!valid_name(&"a".repeat(64)));
        assert!(valid_name(&"a".repeat(63)));
    }
}
