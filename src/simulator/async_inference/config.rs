//! AsyncInferenceConfig, as CreateEndpointConfig takes it and
//! DescribeEndpointConfig / DescribeEndpoint give it back, checked against
//! the SageMaker API model (botocore `sagemaker/2017-07-24`): OutputConfig
//! (S3OutputPath, S3FailurePath, KmsKeyId, NotificationConfig) and
//! ClientConfig.MaxConcurrentInvocationsPerInstance (1–1000).

use serde_json::{Map, Value, json};

use crate::simulator::control::validation::{constraint, not_null, str_member};
use crate::simulator::s3::S3Uri;
use crate::simulator::wire::AwsError;

/// An endpoint config's AsyncInferenceConfig.
#[derive(Debug, Clone, PartialEq)]
pub struct AsyncConfig {
    pub output: S3Uri,
    pub failure: Option<S3Uri>,
    /// Accepted and described back; the simulator encrypts nothing.
    kms_key_id: Option<String>,
    /// Accepted and described back; the simulator publishes to no SNS topic.
    notification: Option<Value>,
    /// None: "SageMaker chooses an optimal value" (API reference of
    /// AsyncInferenceClientConfig). The simulator's choice is the instance's
    /// workers: as many requests as the model serves at once, none waiting in
    /// the container.
    pub max_concurrent_per_instance: Option<u32>,
    /// The paths as given, to describe them back unchanged.
    output_text: String,
    failure_text: Option<String>,
}

const MEMBER: &str = "asyncInferenceConfig";

fn member(path: &str) -> String {
    format!("{MEMBER}.{path}")
}

/// A DestinationS3Uri member: at most 512 characters matching
/// `(https|s3)://([^/])/?(.*)`; the simulator's S3 takes s3:// URIs only.
fn destination(value: &str, path: &str) -> Result<S3Uri, AwsError> {
    if value.len() > 512 {
        return Err(constraint(value, &member(path), "Member must have length less than or equal to 512"));
    }
    if !(value.starts_with("s3://") || value.starts_with("https://")) {
        return Err(constraint(
            value,
            &member(path),
            "Member must satisfy regular expression pattern: (https|s3)://([^/])/?(.*)",
        ));
    }
    S3Uri::parse(value).ok_or_else(|| {
        AwsError::validation(format!(
            "{} {value} is not an s3:// URI: the simulator writes asynchronous results to its own S3, named s3://bucket/prefix.",
            member(path)
        ))
    })
}

/// An SnsTopicArn member: `arn:aws[a-z-]*:sns:[a-z0-9-]*:[0-9]{12}:[a-zA-Z0-9_.-]+`.
fn topic(value: &str, path: &str) -> Result<(), AwsError> {
    let parts: Vec<&str> = value.split(':').collect();
    let ok = matches!(parts.as_slice(), [arn, partition, sns, region, account, name]
        if *arn == "arn"
            && partition.strip_prefix("aws").is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
            && *sns == "sns"
            && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
            && !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)));
    if ok && value.len() <= 2048 {
        Ok(())
    } else {
        Err(constraint(
            value,
            &member(path),
            "Member must satisfy regular expression pattern: arn:aws[a-z\\-]*:sns:[a-z0-9\\-]*:[0-9]{12}:[a-zA-Z0-9_.-]+",
        ))
    }
}

fn notification(config: &Value) -> Result<(), AwsError> {
    for key in ["SuccessTopic", "ErrorTopic"] {
        if let Some(arn) = str_member(config, key) {
            let camel = format!("{}{}", key[..1].to_ascii_lowercase(), &key[1..]);
            topic(arn, &format!("outputConfig.notificationConfig.{camel}"))?;
        }
    }
    let included = config.get("IncludeInferenceResponseIn").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let path = member("outputConfig.notificationConfig.includeInferenceResponseIn");
    if included.len() > 2 {
        return Err(constraint(&included.len().to_string(), &path, "Member must have length less than or equal to 2"));
    }
    for value in included {
        let text = value.as_str().unwrap_or_default();
        if !["SUCCESS_NOTIFICATION_TOPIC", "ERROR_NOTIFICATION_TOPIC"].contains(&text) {
            return Err(constraint(
                text,
                &path,
                "Member must satisfy enum value set: [SUCCESS_NOTIFICATION_TOPIC, ERROR_NOTIFICATION_TOPIC]",
            ));
        }
    }
    Ok(())
}

fn kms_key(value: &str) -> Result<(), AwsError> {
    let path = member("outputConfig.kmsKeyId");
    if value.len() > 2048 {
        return Err(constraint(value, &path, "Member must have length less than or equal to 2048"));
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b":/_-".contains(&b)) {
        return Err(constraint(value, &path, "Member must satisfy regular expression pattern: [a-zA-Z0-9:/_-]*"));
    }
    Ok(())
}

fn max_concurrent(client: Option<&Value>) -> Result<Option<u32>, AwsError> {
    let path = member("clientConfig.maxConcurrentInvocationsPerInstance");
    let Some(value) = client.and_then(|c| c.get("MaxConcurrentInvocationsPerInstance")).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    match value.as_i64() {
        Some(n) if n < 1 => Err(constraint(&n.to_string(), &path, "Member must have value greater than or equal to 1")),
        Some(n) if n <= 1000 => Ok(Some(n as u32)),
        _ => Err(constraint(&value.to_string(), &path, "Member must have value less than or equal to 1000")),
    }
}

impl AsyncConfig {
    /// Reads and checks an AsyncInferenceConfig member.
    pub fn parse(input: &Value) -> Result<AsyncConfig, AwsError> {
        let output = input.get("OutputConfig").filter(|o| o.is_object()).ok_or_else(|| not_null(&member("outputConfig")))?;
        // The model leaves S3OutputPath optional (results may go to SNS alone);
        // the simulator publishes to no topic, so it needs somewhere to write.
        let output_text = str_member(output, "S3OutputPath").ok_or_else(|| {
            AwsError::validation(format!(
                "{} is required: the simulator writes asynchronous results to S3 only.",
                member("outputConfig.s3OutputPath")
            ))
        })?;
        let failure_text = str_member(output, "S3FailurePath");
        let kms_key_id = str_member(output, "KmsKeyId");
        if let Some(key) = kms_key_id {
            kms_key(key)?;
        }
        let notification_config = output.get("NotificationConfig").filter(|n| !n.is_null());
        if let Some(config) = notification_config {
            notification(config)?;
        }
        Ok(AsyncConfig {
            output: destination(output_text, "outputConfig.s3OutputPath")?,
            failure: failure_text.map(|f| destination(f, "outputConfig.s3FailurePath")).transpose()?,
            kms_key_id: kms_key_id.map(str::to_string),
            notification: notification_config.cloned(),
            max_concurrent_per_instance: max_concurrent(input.get("ClientConfig"))?,
            output_text: output_text.to_string(),
            failure_text: failure_text.map(str::to_string),
        })
    }

    /// The member as DescribeEndpointConfig and DescribeEndpoint give it.
    pub fn to_json(&self) -> Value {
        let mut output = Map::new();
        output.insert("S3OutputPath".into(), json!(self.output_text));
        if let Some(failure) = &self.failure_text {
            output.insert("S3FailurePath".into(), json!(failure));
        }
        if let Some(key) = &self.kms_key_id {
            output.insert("KmsKeyId".into(), json!(key));
        }
        if let Some(notification) = &self.notification {
            output.insert("NotificationConfig".into(), notification.clone());
        }
        let mut config = json!({ "OutputConfig": output });
        if let Some(n) = self.max_concurrent_per_instance {
            config["ClientConfig"] = json!({ "MaxConcurrentInvocationsPerInstance": n });
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(config: Value) -> Result<AsyncConfig, String> {
        AsyncConfig::parse(&config).map_err(|e| format!("{}: {}", e.code, e.message))
    }

    #[test]
    fn a_full_config_is_described_back_as_given() {
        let given = json!({
            "OutputConfig": {
                "S3OutputPath": "s3://bucket/out/",
                "S3FailurePath": "s3://bucket/failed",
                "KmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/abc-123",
                "NotificationConfig": {"SuccessTopic": "arn:aws:sns:us-east-1:123456789012:done",
                    "IncludeInferenceResponseIn": ["SUCCESS_NOTIFICATION_TOPIC"]},
            },
            "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 4},
        });
        let config = parse(given.clone()).unwrap();
        assert_eq!(config.to_json(), given);
        assert_eq!(config.output.join("x.out").to_string(), "s3://bucket/out/x.out");
        assert_eq!(config.failure.as_ref().unwrap().join("x-error.out").to_string(), "s3://bucket/failed/x-error.out");
        assert_eq!(config.max_concurrent_per_instance, Some(4));
        let minimal = parse(json!({"OutputConfig": {"S3OutputPath": "s3://b"}})).unwrap();
        assert_eq!((minimal.failure, minimal.max_concurrent_per_instance), (None, None));
    }

    #[test]
    fn misuse_gets_the_errors_sagemaker_gives() {
        let error = |config: Value| parse(config).unwrap_err();
        assert!(error(json!({})).contains("Value null at 'asyncInferenceConfig.outputConfig'"));
        assert!(error(json!({"OutputConfig": {}})).contains("asyncInferenceConfig.outputConfig.s3OutputPath is required"));
        assert!(error(json!({"OutputConfig": {"S3OutputPath": "bucket/out"}})).contains("regular expression pattern"));
        assert!(error(json!({"OutputConfig": {"S3OutputPath": "https://b.s3.amazonaws.com/o"}})).contains("not an s3:// URI"));
        let long = format!("s3://b/{}", "k".repeat(510));
        assert!(error(json!({"OutputConfig": {"S3OutputPath": long}})).contains("length less than or equal to 512"));
        let with_client = |n: Value| json!({"OutputConfig": {"S3OutputPath": "s3://b"}, "ClientConfig": {"MaxConcurrentInvocationsPerInstance": n}});
        assert!(error(with_client(json!(0))).contains("greater than or equal to 1"));
        assert!(error(with_client(json!(1001))).contains("less than or equal to 1000"));
        assert_eq!(parse(with_client(json!(1000))).unwrap().max_concurrent_per_instance, Some(1000));
        let topic = json!({"OutputConfig": {"S3OutputPath": "s3://b", "NotificationConfig": {"ErrorTopic": "arn:aws:sns:us-east-1:42:t"}}});
        assert!(error(topic).contains("'asyncInferenceConfig.outputConfig.notificationConfig.errorTopic'"));
        let kms = json!({"OutputConfig": {"S3OutputPath": "s3://b", "KmsKeyId": "key with spaces"}});
        assert!(error(kms).contains("kmsKeyId"));
    }
}
