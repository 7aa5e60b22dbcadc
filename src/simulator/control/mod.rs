//! The SageMaker control plane (awsJson 1.1): the registry of resources and
//! the dispatch of each operation to the submodule that owns it.
//!
//! - `models`: CreateModel, DescribeModel, DeleteModel, ListModels;
//! - `endpoint_configs`: CreateEndpointConfig and its production variants,
//!   DescribeEndpointConfig, DeleteEndpointConfig, ListEndpointConfigs;
//! - `endpoints`: endpoints and their lifecycle in real time, account limits,
//!   and what InvokeEndpoint may serve;
//! - `tags`: AddTags, ListTags, DeleteTags;
//! - `listing`: the filtering, sorting and paging every List* call shares;
//! - `validation`: reading request members, and the errors SageMaker gives
//!   for each misuse (Application Auto Scaling and CloudWatch alarms share it).
//!
//! Application Auto Scaling reads a variant's capacity and sets it through
//! [`Registry::variant_scaling`] and [`Registry::set_desired_instance_count`].

mod endpoint_configs;
mod endpoints;
mod listing;
mod models;
mod tags;
pub(super) mod validation;

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::Value;

use super::ACCOUNT_ID;
use super::faults::UpdateEnding;
use super::metrics::MetricStore;
use super::profile::Profile;
use super::wire::AwsError;
use endpoint_configs::EndpointConfig;
use endpoints::Endpoint;
pub use endpoints::VariantScaling;
use models::Model;

/// What every SageMaker resource carries.
#[derive(Debug, Clone)]
struct Meta {
    arn: String,
    created: SystemTime,
    tags: Vec<(String, String)>,
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
    /// A fault makes the update this call starts end badly.
    pub update_ending: Option<UpdateEnding>,
}

impl Context<'_> {
    fn arn(&self, kind: &str, name: &str) -> String {
        format!("arn:aws:sagemaker:{}:{ACCOUNT_ID}:{kind}/{}", self.region, name.to_lowercase())
    }
}

impl Registry {
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
}
