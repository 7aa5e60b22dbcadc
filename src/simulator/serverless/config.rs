//! A production variant's ServerlessConfig, as CreateEndpointConfig takes it
//! and DescribeEndpointConfig / DescribeEndpoint give it back, checked as the
//! SageMaker API model bounds it (ProductionVariantServerlessConfig):
//! MemorySizeInMB 1024–6144 in whole gigabytes, MaxConcurrency 1–200, and an
//! optional ProvisionedConcurrency from 1 to MaxConcurrency.

use serde_json::{Value, json};

use crate::simulator::control::validation::{bounded_int_member, constraint, not_null};
use crate::simulator::wire::AwsError;

pub const MEMORY_SIZES_MB: [u32; 6] = [1024, 2048, 3072, 4096, 5120, 6144];
const MAX_CONCURRENCY: i64 = 200;

/// A variant's ServerlessConfig, valid by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerlessConfig {
    pub memory_mb: u32,
    /// Requests served at once; beyond it they are throttled.
    pub max_concurrency: u32,
    /// Workers kept warm whatever the traffic (at most `max_concurrency`).
    pub provisioned: Option<u32>,
}

impl ServerlessConfig {
    /// Reads the ServerlessConfig of production variant `index` (1-based, as
    /// SageMaker's messages number members).
    pub fn parse(config: &Value, index: usize, variant: &str) -> Result<ServerlessConfig, AwsError> {
        let member = |field: &str| format!("productionVariants.{index}.member.serverlessConfig.{field}");
        let memory_mb = bounded_int_member(config, "MemorySizeInMB", &member("memorySizeInMB"), 1024, 6144)?
            .ok_or_else(|| not_null(&member("memorySizeInMB")))?;
        if !MEMORY_SIZES_MB.contains(&memory_mb) {
            return Err(constraint(
                &memory_mb.to_string(),
                &member("memorySizeInMB"),
                "Member must satisfy enum value set: [1024, 2048, 3072, 4096, 5120, 6144]",
            ));
        }
        let max_concurrency = bounded_int_member(config, "MaxConcurrency", &member("maxConcurrency"), 1, MAX_CONCURRENCY)?
            .ok_or_else(|| not_null(&member("maxConcurrency")))?;
        let provisioned =
            bounded_int_member(config, "ProvisionedConcurrency", &member("provisionedConcurrency"), 1, MAX_CONCURRENCY)?;
        if let Some(provisioned) = provisioned.filter(|&p| p > max_concurrency) {
            return Err(AwsError::validation(format!(
                "ProvisionedConcurrency ({provisioned}) of production variant {variant} must be less than or equal to its MaxConcurrency ({max_concurrency})."
            )));
        }
        Ok(ServerlessConfig { memory_mb, max_concurrency, provisioned })
    }

    /// The ServerlessConfig as SageMaker describes it back.
    pub fn to_json(self) -> Value {
        let mut out = json!({ "MemorySizeInMB": self.memory_mb, "MaxConcurrency": self.max_concurrency });
        if let Some(provisioned) = self.provisioned {
            out["ProvisionedConcurrency"] = json!(provisioned);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(config: Value) -> Result<ServerlessConfig, String> {
        ServerlessConfig::parse(&config, 1, "AllTraffic").map_err(|e| e.message)
    }

    #[test]
    fn a_valid_config_is_read_and_described_back() {
        let config = parse(json!({"MemorySizeInMB": 2048, "MaxConcurrency": 5, "ProvisionedConcurrency": 2})).unwrap();
        assert_eq!(config, ServerlessConfig { memory_mb: 2048, max_concurrency: 5, provisioned: Some(2) });
        assert_eq!(config.to_json(), json!({"MemorySizeInMB": 2048, "MaxConcurrency": 5, "ProvisionedConcurrency": 2}));
        let on_demand = parse(json!({"MemorySizeInMB": 6144, "MaxConcurrency": 200})).unwrap();
        assert_eq!(on_demand.to_json(), json!({"MemorySizeInMB": 6144, "MaxConcurrency": 200}));
    }

    #[test]
    fn memory_is_whole_gigabytes_from_one_to_six() {
        let at = "'productionVariants.1.member.serverlessConfig.memorySizeInMB'";
        let message = parse(json!({"MemorySizeInMB": 512, "MaxConcurrency": 1})).unwrap_err();
        assert_eq!(
            message,
            format!(
                "1 validation error detected: Value '512' at {at} failed to satisfy constraint: Member must have value greater than or equal to 1024"
            )
        );
        let message = parse(json!({"MemorySizeInMB": 8192, "MaxConcurrency": 1})).unwrap_err();
        assert!(message.ends_with("Member must have value less than or equal to 6144"), "{message}");
        let message = parse(json!({"MemorySizeInMB": 1500, "MaxConcurrency": 1})).unwrap_err();
        assert!(message.contains(&format!("Value '1500' at {at}")) && message.contains("enum value set"), "{message}");
        let message = parse(json!({"MaxConcurrency": 1})).unwrap_err();
        assert!(message.contains(&format!("Value null at {at}")), "{message}");
    }

    #[test]
    fn concurrency_is_bounded_and_provisioned_within_it() {
        let message = parse(json!({"MemorySizeInMB": 1024, "MaxConcurrency": 0})).unwrap_err();
        assert!(
            message.contains("maxConcurrency' failed to satisfy constraint: Member must have value greater than or equal to 1")
        );
        let message = parse(json!({"MemorySizeInMB": 1024, "MaxConcurrency": 201})).unwrap_err();
        assert!(message.ends_with("Member must have value less than or equal to 200"), "{message}");
        let message = parse(json!({"MemorySizeInMB": 1024, "MaxConcurrency": 2, "ProvisionedConcurrency": 0})).unwrap_err();
        assert!(message.contains("provisionedConcurrency"), "{message}");
        let message = parse(json!({"MemorySizeInMB": 1024, "MaxConcurrency": 2, "ProvisionedConcurrency": 3})).unwrap_err();
        assert!(message.contains("must be less than or equal to its MaxConcurrency (2)"), "{message}");
    }
}
