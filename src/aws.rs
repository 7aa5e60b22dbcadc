//! AWS access for a command: one `SdkConfig` (region, credentials, endpoint
//! overrides) and the clients perfsize builds from it.
//!
//! Standard resolution applies (environment, profiles, `AWS_ENDPOINT_URL*`), so
//! pointing perfsize at a standalone simulator needs no flag. Control-plane
//! calls retry throttling with backoff; traffic under test is never retried
//! (it goes through the load manager, not these clients).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;

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
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(control_plane_retries()).timeout_config(
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
        if let Some(role) = &options.role_arn {
            let provider =
                aws_config::sts::AssumeRoleProvider::builder(role).session_name("perfsize").configure(&config).build().await;
            config = config.into_builder().credentials_provider(SharedCredentialsProvider::new(provider)).build();
        }
        Ok(Aws {
            sagemaker: aws_sdk_sagemaker::Client::new(&config),
            runtime: aws_sdk_sagemakerruntime::Client::new(&config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
            autoscaling: aws_sdk_applicationautoscaling::Client::new(&config),
            s3: s3_client(&config, options.endpoint_url.is_some()),
            runtime_url: runtime_url(options.endpoint_url.as_deref(), &region),
            region,
            config,
        })
    }

    /// The credentials provider every client uses (for signing traffic).
    pub fn credentials(&self) -> Result<SharedCredentialsProvider, AwsSetupError> {
        self.config.credentials_provider().ok_or_else(|| AwsSetupError::NoCredentials("no provider in the configuration".into()))
    }
}

/// S3 addressed by path when every service is at one URL (a simulator has
/// no DNS for `bucket.host`), by virtual host on AWS.
fn s3_client(config: &SdkConfig, one_url: bool) -> aws_sdk_s3::Client {
    let one_url = one_url || std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.trim().is_empty());
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(one_url).build())
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
