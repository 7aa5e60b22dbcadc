//! Models: CreateModel, DescribeModel, DeleteModel and ListModels.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::listing::{Row, list_page};
use super::tags::tags_member;
use super::validation::{name_member, required_str, str_member};
use super::{Context, Meta, Registry};
use crate::simulator::wire::{AwsError, timestamp};

#[derive(Debug)]
pub(super) struct Model {
    pub(super) meta: Meta,
    pub(super) image: Option<String>,
    pub(super) model_data_url: Option<String>,
    pub(super) role: Option<String>,
    pub(super) environment: Map<String, Value>,
}

impl Registry {
    pub(super) fn create_model(&mut self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
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

    pub(super) fn model(&self, ctx: &Context<'_>, name: &str) -> Result<&Model, AwsError> {
        self.models.get(name).ok_or_else(|| AwsError::validation(format!("Could not find model \"{}\".", ctx.arn("model", name))))
    }

    pub(super) fn describe_model(&self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
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
            "CreationTime": timestamp(model.meta.created),
        }))
    }

    pub(super) fn delete_model(&mut self, ctx: &Context<'_>, input: &Value) -> Result<Value, AwsError> {
        let name = required_str(input, "ModelName", "modelName")?;
        self.model(ctx, name)?;
        self.models.remove(name);
        Ok(json!({}))
    }

    pub(super) fn list_models(&self, input: &Value) -> Result<Value, AwsError> {
        let rows = self
            .models
            .iter()
            .map(|(name, m)| Row {
                name,
                created: m.meta.created,
                modified: None,
                status: None,
                summary: json!({"ModelName": name, "ModelArn": m.meta.arn, "CreationTime": timestamp(m.meta.created)}),
            })
            .collect();
        list_page(input, rows, "Models")
    }
}
