//! AWS access for a command: one `SdkConfig` (region, credentials, endpoint
//! overrides) and the clients perfsize builds from it.
//!
//! Standard resolution applies (environment, profiles, `AWS_ENDPOINT_URL*`), so
//! pointing perfsize at a standalone simulator needs no flag. Control-plane
//! calls retry throttling with backoff, and a call refused for expired
//! credentials once they are renewed ([`crate::credentials`]); traffic under
//! test is never retried (it goes through the load manager, not these clients).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;

use crate::credentials::{RenewOnExpiry, RenewableCredentials};

/// Where and as whom to reach AWS.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    pub region: Option<String>,
    /// Named profile from ~/.aws/config.
    pub profile: Option<String>,
    /// Role to assume for every call.
    pub role_arn: Option<String>,
    /// One URL for every service (the simulator's).
    pub endpoint_url: Option<String>,
    /// Fixed credentials, for the in-process simulator.
    pub static_credentials: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AwsSetupError {
    #[error("no AWS region: pass --region or set AWS_REGION")]
    NoRegion,
    #[error("no AWS credentials found ({0}); configure them as for the AWS CLI, or pass --profile / --role-arn")]
    NoCredentials(String),
}

impl crate::error::HasKind for AwsSetupError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Usage
    }
}

/// The clients of one command.
#[derive(Debug, Clone)]
pub struct Aws {
    pub config: SdkConfig,
    /// What every client signs with, renewed when AWS refuses it as expired.
    pub credentials: RenewableCredentials,
    pub region: String,
    pub sagemaker: aws_sdk_sagemaker::Client,
    pub runtime: aws_sdk_sagemakerruntime::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// Application Auto Scaling: the policies the auto-scaling test applies.
    pub autoscaling: aws_sdk_applicationautoscaling::Client,
    /// S3: the inputs and outputs of asynchronous inference.
    pub s3: aws_sdk_s3::Client,
    /// Base URL InvokeEndpoint traffic goes to.
    pub runtime_url: String,
}

/// Control-plane calls: SageMaker throttles describe and list calls at a few per
/// second, so retry with backoff for long enough to ride out a burst.
fn control_plane_retries() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(8).with_max_backoff(Duration::from_secs(20))
}

impl Aws {
    /// Resolves region and credentials and builds the clients.
    pub async fn connect(options: &AwsOptions) -> Result<Aws, AwsSetupError> {
        // RenewableCredentials is the cache: the SDK's would keep credentials AWS refused.
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(control_plane_retries())
            .identity_cache(aws_config::identity::IdentityCache::no_cache())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(region) = &options.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(profile) = &options.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &options.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if options.static_credentials {
            loader = loader.credentials_provider(Credentials::new(
                "AKIDPERFSIZESIMULATED",
                "perfsize-simulated-secret",
                None,
                None,
                "perfsize-simulator",
            ));
        }
        let mut config = loader.load().await;
        let region = config.region().map(|r| r.to_string()).ok_or(AwsSetupError::NoRegion)?;
        let source = match &options.role_arn {
            Some(role) => SharedCredentialsProvider::new(
                aws_config::sts::AssumeRoleProvider::builder(role).session_name("perfsize").configure(&config).build().await,
            ),
            None => {
                config.credentials_provider().ok_or_else(|| AwsSetupError::NoCredentials("no credentials provider".into()))?
            }
        };
        let credentials = RenewableCredentials::new(source);
        config = config.into_builder().credentials_provider(credentials.shared()).build();
        let renew = RenewOnExpiry::new(credentials.clone());
        // Each service's builder takes the classifier: SdkConfig has no place for one.
        macro_rules! client {
            ($sdk:ident) => {
                $sdk::Client::from_conf($sdk::config::Builder::from(&config).retry_classifier(renew.clone()).build())
            };
        }
        Ok(Aws {
            sagemaker: client!(aws_sdk_sagemaker),
            runtime: client!(aws_sdk_sagemakerruntime),
            cloudwatch: client!(aws_sdk_cloudwatch),
            autoscaling: client!(aws_sdk_applicationautoscaling),
            s3: s3_client(&config, options.endpoint_url.is_some(), renew),
            runtime_url: runtime_url(options.endpoint_url.as_deref(), &region),
            credentials,
            region,
            config,
        })
    }
}

/// S3 addressed by path when every service is at one URL (a simulator has
/// no DNS for `bucket.host`), by virtual host on AWS.
fn s3_client(config: &SdkConfig, one_url: bool, renew: RenewOnExpiry) -> aws_sdk_s3::Client {
    let one_url = one_url || std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.trim().is_empty());
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config).force_path_style(one_url).retry_classifier(renew).build(),
    )
}

/// The runtime base URL: an explicit endpoint URL, then the standard
/// environment overrides, then the regional AWS endpoint.
pub fn runtime_url(explicit: Option<&str>, region: &str) -> String {
    runtime_url_with(explicit, region, |name| std::env::var(name).ok())
}

fn runtime_url_with(explicit: Option<&str>, region: &str, env: impl Fn(&str) -> Option<String>) -> String {
    let from_env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    explicit
        .map(str::to_string)
        .or_else(|| from_env("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"))
        .or_else(|| from_env("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|| format!("https://runtime.sagemaker.{region}.amazonaws.com"))
        .trim_end_matches('/')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_url_wins_then_the_environment_then_aws() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let both = env(&[("AWS_ENDPOINT_URL", "http://all:1"), ("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "http://rt:2/")]);
        assert_eq!(runtime_url_with(Some("http://127.0.0.1:9/"), "us-west-2", both), "http://127.0.0.1:9");
        assert_eq!(runtime_url_with(None, "us-west-2", both), "http://rt:2");
        assert_eq!(runtime_url_with(None, "us-west-2", env(&[("AWS_ENDPOINT_URL", "http://all:1")])), "http://all:1");
        assert_eq!(runtime_url_with(None, "eu-west-1", env(&[])), "https://runtime.sagemaker.eu-west-1.amazonaws.com");
    }
}
