//! Tags: reading them from a request, and AddTags, ListTags and DeleteTags on
//! any resource by ARN.

use serde_json::{Value, json};

use super::Registry;
use super::validation::{not_null, required_str, str_member};
use crate::simulator::wire::AwsError;

pub(super) fn tags_member(input: &Value) -> Result<Vec<(String, String)>, AwsError> {
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

impl Registry {
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

    pub(super) fn add_tags(&mut self, input: &Value) -> Result<Value, AwsError> {
        let arn = required_str(input, "ResourceArn", "resourceArn")?;
        let new = tags_member(input)?;
        let tags = self.tags_mut(arn)?;
        merge_tags(tags, new);
        Ok(json!({ "Tags": tags_json(tags) }))
    }

    pub(super) fn list_tags(&mut self, input: &Value) -> Result<Value, AwsError> {
        let arn = required_str(input, "ResourceArn", "resourceArn")?;
        let tags = self.tags_mut(arn)?;
        Ok(json!({ "Tags": tags_json(tags) }))
    }

    pub(super) fn delete_tags(&mut self, input: &Value) -> Result<Value, AwsError> {
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
