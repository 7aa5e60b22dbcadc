//! Shared helpers: a simulator with a test profile, SDK clients pointed at it.

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_sagemaker::config::{BehaviorVersion, Region};
use perfsize::simulator::{Profile, RunningSimulator};

pub const REGION: &str = "us-west-2";

/// Tests that drive real traffic take turns: on a busy 2-core machine,
/// several at once would starve each other's load generators.
pub async fn traffic_turn() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// A profile whose endpoints deploy in a fraction of a second.
pub fn fast_profile(types: &str) -> Profile {
    let text = format!(
        r#"
        deploy_seconds = 0.3
        delete_seconds = 0.1
        container_timeout_seconds = 60.0
        [default]
        vcpus = 2
        workers = 2
        service_ms = {{ median = 5.0, p99 = 10.0 }}
        queue_limit = 64
        max_instances = 10
        {types}
        "#
    );
    Profile::parse(&text, "test profile").expect("test profile is valid")
}

pub async fn simulator(profile: Profile) -> RunningSimulator {
    RunningSimulator::start(profile, "127.0.0.1", 0).await.expect("simulator starts on a free port")
}

fn credentials() -> Credentials {
    Credentials::new("AKIDPERFSIZETEST", "test-secret", None, None, "perfsize-tests")
}

pub fn sagemaker(sim: &RunningSimulator) -> aws_sdk_sagemaker::Client {
    let config = aws_sdk_sagemaker::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(credentials())
        .endpoint_url(sim.url())
        .build();
    aws_sdk_sagemaker::Client::from_conf(config)
}

pub fn runtime(sim: &RunningSimulator) -> aws_sdk_sagemakerruntime::Client {
    let config = aws_sdk_sagemakerruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(aws_sdk_sagemakerruntime::config::Region::new(REGION))
        .credentials_provider(credentials())
        .endpoint_url(sim.url())
        // Traffic under test is never retried: every 503 must be seen.
        .retry_config(aws_sdk_sagemakerruntime::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_sagemakerruntime::Client::from_conf(config)
}

pub fn cloudwatch(sim: &RunningSimulator) -> aws_sdk_cloudwatch::Client {
    let config = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(aws_sdk_cloudwatch::config::Region::new(REGION))
        .credentials_provider(credentials())
        .endpoint_url(sim.url())
        .build();
    aws_sdk_cloudwatch::Client::from_conf(config)
}

/// Creates model, config and endpoint `name` on `instance_type` × `count`.
pub async fn deploy(sm: &aws_sdk_sagemaker::Client, name: &str, instance_type: &str, count: i32) {
    use aws_sdk_sagemaker::types::{ContainerDefinition, ProductionVariant, ProductionVariantInstanceType};
    sm.create_model()
        .model_name(name)
        .execution_role_arn("arn:aws:iam::123456789012:role/test")
        .primary_container(ContainerDefinition::builder().image("123.dkr.ecr.us-west-2.amazonaws.com/model:1").build())
        .send()
        .await
        .expect("create model");
    sm.create_endpoint_config()
        .endpoint_config_name(name)
        .production_variants(
            ProductionVariant::builder()
                .variant_name("AllTraffic")
                .model_name(name)
                .instance_type(ProductionVariantInstanceType::from(instance_type))
                .initial_instance_count(count)
                .build(),
        )
        .send()
        .await
        .expect("create endpoint config");
    sm.create_endpoint().endpoint_name(name).endpoint_config_name(name).send().await.expect("create endpoint");
}

/// Polls DescribeEndpoint until the status is no longer `from`; returns the new status.
pub async fn wait_while(sm: &aws_sdk_sagemaker::Client, name: &str, from: &str) -> String {
    for _ in 0..200 {
        let status = sm
            .describe_endpoint()
            .endpoint_name(name)
            .send()
            .await
            .expect("describe endpoint")
            .endpoint_status
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        if status != from {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("endpoint {name} stayed {from} for 10 s");
}

/// The error code of an SDK error.
pub fn code<E: aws_sdk_sagemaker::error::ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or_default().to_string()
}

pub fn message<E: aws_sdk_sagemaker::error::ProvideErrorMetadata>(e: &E) -> String {
    e.message().unwrap_or_default().to_string()
}
