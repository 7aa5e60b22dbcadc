//! Shared helpers: a simulator with a test profile, SDK clients pointed at it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    runtime_at(&sim.url())
}

/// The SageMaker runtime at `url`, retries off.
fn runtime_at(url: &str) -> aws_sdk_sagemakerruntime::Client {
    let config = aws_sdk_sagemakerruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(aws_sdk_sagemakerruntime::config::Region::new(REGION))
        .credentials_provider(credentials())
        .endpoint_url(url)
        // Traffic under test is never retried: every 503 must be seen.
        .retry_config(aws_sdk_sagemakerruntime::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_sagemakerruntime::Client::from_conf(config)
}

pub fn cloudwatch(sim: &RunningSimulator) -> aws_sdk_cloudwatch::Client {
    cloudwatch_at(&sim.url())
}

/// CloudWatch on a simulator at `url`.
pub fn cloudwatch_at(url: &str) -> aws_sdk_cloudwatch::Client {
    let config = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(aws_sdk_cloudwatch::config::Region::new(REGION))
        .credentials_provider(credentials())
        .endpoint_url(url)
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

/// A standalone `perfsize simulator` process; killed on drop.
pub struct SimulatorProcess {
    child: Child,
    pub url: String,
}

impl SimulatorProcess {
    pub fn start(profile: &str) -> SimulatorProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_perfsize"))
            .args(["simulator", "--port", "0", "--profile", profile])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the simulator starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("http://127.0.0.1:"), "{line}");
        SimulatorProcess { child, url: line.trim().to_string() }
    }

    /// A perfsize command pointed at this simulator the standard AWS way.
    pub fn perfsize(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_perfsize"));
        command
            .args(args)
            .env("AWS_ENDPOINT_URL", &self.url)
            .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
            .env("AWS_SECRET_ACCESS_KEY", "secret")
            .env("AWS_REGION", REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    pub fn client(&self) -> aws_sdk_sagemaker::Client {
        let config = aws_sdk_sagemaker::Config::builder()
            .behavior_version(aws_sdk_sagemaker::config::BehaviorVersion::latest())
            .region(aws_sdk_sagemaker::config::Region::new(REGION))
            .credentials_provider(aws_credential_types::Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .endpoint_url(&self.url)
            .build();
        aws_sdk_sagemaker::Client::from_conf(config)
    }

    /// The SageMaker runtime on this simulator, retries off.
    pub fn runtime(&self) -> aws_sdk_sagemakerruntime::Client {
        runtime_at(&self.url)
    }

    /// Application Auto Scaling on this simulator.
    pub fn autoscaling(&self) -> aws_sdk_applicationautoscaling::Client {
        let config = aws_sdk_applicationautoscaling::Config::builder()
            .behavior_version(aws_sdk_applicationautoscaling::config::BehaviorVersion::latest())
            .region(aws_sdk_applicationautoscaling::config::Region::new(REGION))
            .credentials_provider(aws_credential_types::Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .endpoint_url(&self.url)
            .build();
        aws_sdk_applicationautoscaling::Client::from_conf(config)
    }

    /// How many SageMaker scalable targets are registered on this simulator.
    pub async fn scalable_targets(&self) -> usize {
        let targets = self
            .autoscaling()
            .describe_scalable_targets()
            .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Sagemaker)
            .send()
            .await
            .expect("DescribeScalableTargets");
        targets.scalable_targets().len()
    }
}

impl Drop for SimulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// aws-sdk-s3 on a simulator at `url`, path-style (virtual-host-style would
/// need `bucket.127.0.0.1` to resolve; boto3's test covers it).
pub fn s3_client(url: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(REGION))
            .credentials_provider(aws_credential_types::Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .endpoint_url(url)
            .force_path_style(true)
            .build(),
    )
}

/// Names of every endpoint, config and model in the simulator.
pub async fn everything(sm: &aws_sdk_sagemaker::Client) -> Vec<String> {
    let mut names = Vec::new();
    let endpoints = sm.list_endpoints().max_results(100).send().await.unwrap();
    names.extend(endpoints.endpoints().iter().map(|e| format!("endpoint {}", e.endpoint_name().unwrap_or_default())));
    let configs = sm.list_endpoint_configs().max_results(100).send().await.unwrap();
    names.extend(configs.endpoint_configs().iter().map(|c| format!("config {}", c.endpoint_config_name().unwrap_or_default())));
    let models = sm.list_models().max_results(100).send().await.unwrap();
    names.extend(models.models().iter().map(|m| format!("model {}", m.model_name().unwrap_or_default())));
    names
}

pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

pub fn wait_exit(child: &mut Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("perfsize did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What keeps `summary` from validating against the shipped
/// resources/summary.schema.json; empty when it validates.
pub fn schema_errors(summary: &serde_json::Value) -> Vec<String> {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/resources/summary.schema.json"))).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema is valid");
    validator.iter_errors(summary).map(|e| format!("{e} at {}", e.instance_path)).collect()
}
