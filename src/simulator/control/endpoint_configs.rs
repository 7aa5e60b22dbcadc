//! Endpoint configs: CreateEndpointConfig (and the production variants and
//! AsyncInferenceConfig it describes), DescribeEndpointConfig,
//! DeleteEndpointConfig and ListEndpointConfigs. A production variant is
//! served either by instances (InstanceType, InitialInstanceCount) or
//! serverlessly (ServerlessConfig), never both, never neither; a config's
//! variants are all of one kind, and a serverless config is real-time only.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::listing::{Row, list_page};
use super::tags::tags_member;
use super::validation::{constraint, instance_count, name_member, not_null, required_str, str_member};
use super::{Context, Meta, Registry};
use crate::simulator::async_inference::AsyncConfig;
use crate::simulator::runtime::{Routing, VariantCapacity, VariantSpec};
use crate::simulator::serverless::ServerlessConfig;
use crate::simulator::wire::{AwsError, timestamp};

#[derive(Debug)]
pub(super) struct EndpointConfig {
    pub(super) meta: Meta,
    pub(super) variants: Vec<VariantSpec>,
    /// Endpoints deployed from it serve InvokeEndpointAsync, not InvokeEndpoint.
    pub(super) asynchronous: Option<Arc<AsyncConfig>>,
}

impl Registry {
    pub(super) fn create_endpoint_config(&mut self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
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
        let asynchronous =
            input.get("AsyncInferenceConfig").filter(|c| !c.is_null()).map(AsyncConfig::parse).transpose()?.map(Arc::new);
        check_one_kind(&specs, asynchronous.is_some())?;
        self.configs.insert(
            name.to_string(),
            EndpointConfig {
                meta: Meta { arn: arn.clone(), created: SystemTime::now(), tags: tags_member(input)? },
                variants: specs,
                asynchronous,
            },
        );
        Ok(json!({ "EndpointConfigArn": arn }))
    }

    fn variant_spec(&self, ctx: &Context<'_>, index: usize, v: &Value) -> Result<VariantSpec, AwsError> {
        let member = |field: &str| format!("productionVariants.{index}.member.{field}");
        let name = name_member(v, "VariantName", &member("variantName"))?;
        let model_name = required_str(v, "ModelName", &member("modelName"))?;
        self.model(ctx, model_name)?;
        let capacity = variant_capacity(ctx, index, name, v)?;
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
        Ok(VariantSpec { name: name.to_string(), model_name: model_name.to_string(), capacity, weight, routing })
    }

    pub(super) fn config(&self, ctx: &Context<'_>, name: &str) -> Result<&EndpointConfig, AwsError> {
        self.configs.get(name).ok_or_else(|| {
            AwsError::validation(format!("Could not find endpoint configuration \"{}\".", ctx.arn("endpoint-config", name)))
        })
    }

    pub(super) fn describe_endpoint_config(&self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
        let name = required_str(input, "EndpointConfigName", "endpointConfigName")?;
        let config = self.config(ctx, name)?;
        let variants: Vec<Value> = config
            .variants
            .iter()
            .map(|v| {
                let mut variant = json!({
                    "VariantName": v.name,
                    "ModelName": v.model_name,
                    "InitialVariantWeight": v.weight,
                    "RoutingConfig": { "RoutingStrategy": v.routing.as_str() },
                });
                match &v.capacity {
                    VariantCapacity::Instances { instance_type, count } => {
                        variant["InstanceType"] = json!(instance_type);
                        variant["InitialInstanceCount"] = json!(count);
                    }
                    VariantCapacity::Serverless(config) => variant["ServerlessConfig"] = config.to_json(),
                }
                variant
            })
            .collect();
        let mut out = json!({
            "EndpointConfigName": name,
            "EndpointConfigArn": config.meta.arn,
            "ProductionVariants": variants,
            "CreationTime": timestamp(config.meta.created),
        });
        if let Some(asynchronous) = &config.asynchronous {
            out["AsyncInferenceConfig"] = asynchronous.to_json();
        }
        Ok(out)
    }

    pub(super) fn delete_endpoint_config(&mut self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
        let name = required_str(input, "EndpointConfigName", "endpointConfigName")?;
        // As in SageMaker, a config may go while endpoints use it: they keep
        // what they deployed.
        self.config(ctx, name)?;
        self.configs.remove(name);
        Ok(json!({}))
    }

    pub(super) fn list_endpoint_configs(&self, input: &Value) -> Result<Value, AwsError> {
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
                    "CreationTime": timestamp(c.meta.created),
                }),
            })
            .collect();
        list_page(input, rows, "EndpointConfigs")
    }
}

/// What serves production variant `index` (named `name`): its instances, or
/// its ServerlessConfig — exactly one of them.
fn variant_capacity(ctx: &Context<'_>, index: usize, name: &str, v: &Value) -> Result<VariantCapacity, AwsError> {
    let member = |field: &str| format!("productionVariants.{index}.member.{field}");
    let present = |key: &str| v.get(key).is_some_and(|value| !value.is_null());
    let serverless = v.get("ServerlessConfig").filter(|c| !c.is_null());
    let instances = present("InstanceType") || present("InitialInstanceCount");
    match (serverless, instances) {
        (Some(_), true) => Err(AwsError::validation(format!(
            "Production variant {name} specifies both ServerlessConfig and InstanceType or InitialInstanceCount: \
             a variant is served either by instances or serverlessly."
        ))),
        (None, false) => Err(AwsError::validation(format!(
            "Production variant {name} specifies neither InstanceType and InitialInstanceCount nor ServerlessConfig."
        ))),
        (Some(config), false) => Ok(VariantCapacity::Serverless(ServerlessConfig::parse(config, index, name)?)),
        (None, true) => {
            let instance_type = required_str(v, "InstanceType", &member("instanceType"))?;
            if ctx.profile.behaviour(instance_type).is_none() {
                return Err(constraint(
                    instance_type,
                    &member("instanceType"),
                    "Member must satisfy enum value set: [ml.t2.medium, ml.m5.large, ml.m5.xlarge, ml.c5.large, ml.g4dn.xlarge, …]",
                ));
            }
            let count = instance_count(v.get("InitialInstanceCount"), &member("initialInstanceCount"), 1)?;
            Ok(VariantCapacity::Instances { instance_type: instance_type.to_string(), count })
        }
    }
}

/// A config's variants are all serverless or all on instances, and only
/// instances serve asynchronous inference (as in SageMaker).
fn check_one_kind(specs: &[VariantSpec], asynchronous: bool) -> Result<(), AwsError> {
    let serverless = specs.iter().filter(|s| s.serverless().is_some()).count();
    if serverless > 0 && serverless < specs.len() {
        return Err(AwsError::validation(
            "An endpoint configuration cannot mix serverless production variants with instance-based ones.",
        ));
    }
    if serverless > 0 && asynchronous {
        return Err(AwsError::validation("AsyncInferenceConfig is not supported for serverless production variants."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(capacity: VariantCapacity) -> VariantSpec {
        VariantSpec { name: "v".into(), model_name: "m".into(), capacity, weight: 1.0, routing: Routing::Random }
    }

    fn serverless() -> VariantSpec {
        spec(VariantCapacity::Serverless(ServerlessConfig { memory_mb: 2048, max_concurrency: 5, provisioned: None }))
    }

    fn instances() -> VariantSpec {
        spec(VariantCapacity::Instances { instance_type: "ml.m5.large".into(), count: 1 })
    }

    #[test]
    fn a_config_is_all_serverless_or_all_instances_and_serverless_is_real_time_only() {
        assert!(check_one_kind(&[serverless(), serverless()], false).is_ok());
        assert!(check_one_kind(&[instances(), instances()], true).is_ok());
        let mixed = check_one_kind(&[instances(), serverless()], false).unwrap_err();
        assert!(mixed.message.contains("cannot mix"), "{}", mixed.message);
        let asynchronous = check_one_kind(&[serverless()], true).unwrap_err();
        assert_eq!(asynchronous.code, "ValidationException");
        assert!(asynchronous.message.contains("AsyncInferenceConfig"), "{}", asynchronous.message);
    }
}
