//! Serverless endpoints on the simulator, as the Rust SDK and boto3 use
//! them: a ServerlessConfig validated at CreateEndpointConfig and described
//! back, a cold start seen in ModelSetupTime, throttling past
//! MaxConcurrency, and a memory size too small for the model failing its
//! invocations.

use std::time::Duration;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use aws_sdk_sagemaker::types::{ContainerDefinition, ProductionVariant, ProductionVariantServerlessConfig};
use aws_sdk_sagemakerruntime::primitives::Blob;
use perfsize::simulator::{Profile, RunningSimulator};

use crate::support::*;

/// A model that needs 2 GB, serves in 100 ms at 1 GB (so 50 ms at 2 GB) and
/// takes 2 s to set up on a cold worker: long enough that a burst sent at
/// once all arrives while the first executions are still running.
fn serverless_profile() -> Profile {
    fast_profile(
        r#"
        [serverless]
        service_ms = { median = 100.0, p99 = 100.0 }
        setup_ms = { median = 2000.0, p99 = 2000.0 }
        model_memory_mb = 2048
        idle_seconds = 60.0
        "#,
    )
}

fn serverless_config(memory_mb: i32, max_concurrency: i32) -> ProductionVariantServerlessConfig {
    ProductionVariantServerlessConfig::builder().memory_size_in_mb(memory_mb).max_concurrency(max_concurrency).build()
}

async fn create_model(sm: &aws_sdk_sagemaker::Client, name: &str) {
    sm.create_model()
        .model_name(name)
        .execution_role_arn("arn:aws:iam::123456789012:role/test")
        .primary_container(ContainerDefinition::builder().image("123.dkr.ecr.us-west-2.amazonaws.com/model:1").build())
        .send()
        .await
        .expect("create model");
}

/// Creates model, serverless config and endpoint `name`, and waits until it serves.
async fn deploy_serverless(sim: &RunningSimulator, name: &str, config: ProductionVariantServerlessConfig) {
    let sm = sagemaker(sim);
    create_model(&sm, name).await;
    let variant = ProductionVariant::builder().variant_name("AllTraffic").model_name(name).serverless_config(config).build();
    sm.create_endpoint_config().endpoint_config_name(name).production_variants(variant).send().await.expect("config");
    sm.create_endpoint().endpoint_name(name).endpoint_config_name(name).send().await.expect("create endpoint");
    assert_eq!(wait_while(&sm, name, "Creating").await, "InService");
}

/// Invokes `endpoint` once: Ok, or the error code and HTTP status.
async fn invoke(rt: &aws_sdk_sagemakerruntime::Client, endpoint: &str) -> Result<(), (String, u16)> {
    let sent = rt.invoke_endpoint().endpoint_name(endpoint).content_type("application/json").body(Blob::new("{}"));
    match sent.send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let status = e.raw_response().map_or(0, |r| r.status().as_u16());
            Err((code(&e.into_service_error()), status))
        }
    }
}

/// The values of one statistic of `name` (AWS/SageMaker) over the last minutes.
async fn statistic(sim: &RunningSimulator, endpoint: &str, name: &str, stat: &str) -> Vec<f64> {
    let metric = Metric::builder()
        .namespace("AWS/SageMaker")
        .metric_name(name)
        .dimensions(Dimension::builder().name("EndpointName").value(endpoint).build())
        .dimensions(Dimension::builder().name("VariantName").value("AllTraffic").build())
        .build();
    let now = std::time::SystemTime::now();
    let query = MetricDataQuery::builder()
        .id("q")
        .metric_stat(MetricStat::builder().metric(metric).period(3600).stat(stat).build())
        .build();
    let out = cloudwatch(sim)
        .get_metric_data()
        .start_time(DateTime::from(now - Duration::from_secs(300)))
        .end_time(DateTime::from(now + Duration::from_secs(60)))
        .metric_data_queries(query)
        .send()
        .await
        .expect("GetMetricData");
    out.metric_data_results().first().map(|r| r.values().to_vec()).unwrap_or_default()
}

#[tokio::test]
async fn a_serverless_endpoint_starts_cold_is_described_and_throttles_past_max_concurrency() {
    let sim = simulator(serverless_profile()).await;
    deploy_serverless(&sim, "sls", serverless_config(2048, 2)).await;
    let sm = sagemaker(&sim);

    let described = sm.describe_endpoint_config().endpoint_config_name("sls").send().await.unwrap();
    let variant = &described.production_variants()[0];
    let echoed = variant.serverless_config().expect("ServerlessConfig described back");
    assert_eq!((echoed.memory_size_in_mb(), echoed.max_concurrency()), (Some(2048), Some(2)));
    assert!(variant.instance_type().is_none() && variant.initial_instance_count().is_none());
    let endpoint = sm.describe_endpoint().endpoint_name("sls").send().await.unwrap();
    let summary = &endpoint.production_variants()[0];
    assert_eq!(summary.current_serverless_config().and_then(|c| c.max_concurrency()), Some(2));
    assert_eq!(summary.desired_serverless_config().and_then(|c| c.memory_size_in_mb()), Some(2048));
    assert!(summary.current_instance_count().is_none(), "a serverless variant has no instances");

    let _turn = traffic_turn().await;
    let rt = runtime(&sim);
    invoke(&rt, "sls").await.expect("the first invocation, on a cold worker");
    invoke(&rt, "sls").await.expect("the second, on the now warm worker");
    assert_eq!(statistic(&sim, "sls", "ModelSetupTime", "SampleCount").await, vec![1.0], "one cold start");
    let setup = statistic(&sim, "sls", "ModelSetupTime", "Maximum").await;
    assert_eq!(setup, vec![2_000_000.0], "the profile's set-up time, in microseconds");

    // Six at once on MaxConcurrency 2: one cold worker's 2 s set-up keeps a
    // place taken while the burst arrives.
    let burst = futures::future::join_all((0..6).map(|_| invoke(&rt, "sls"))).await;
    let throttled: Vec<_> = burst.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(burst.iter().filter(|r| r.is_ok()).count() <= 2, "{burst:?}");
    assert!(!throttled.is_empty(), "{burst:?}");
    for error in &throttled {
        assert_eq!(error, &&("ThrottlingException".to_string(), 400), "as the runtime answers a throttle");
    }
    let errors_4xx: f64 = statistic(&sim, "sls", "Invocation4XXErrors", "Sum").await.iter().sum();
    assert_eq!(errors_4xx, throttled.len() as f64, "throttles are counted as 4XX errors");
    let utilisation = statistic(&sim, "sls", "ServerlessConcurrentExecutionsUtilization", "Maximum").await;
    assert!(utilisation.first().is_some_and(|&u| u > 0.0 && u <= 1.0), "{utilisation:?}");
    sim.stop().await;
}

#[tokio::test]
async fn serverless_configs_are_refused_as_sagemaker_refuses_them() {
    let sim = simulator(serverless_profile()).await;
    let sm = sagemaker(&sim);
    create_model(&sm, "m").await;
    let refused = |variant: ProductionVariant| {
        let sm = sm.clone();
        async move {
            let e = sm.create_endpoint_config().endpoint_config_name("bad").production_variants(variant).send().await;
            let e = e.expect_err("refused").into_service_error();
            (code(&e), message(&e))
        }
    };
    let variant = || ProductionVariant::builder().variant_name("AllTraffic").model_name("m");
    let (code, text) = refused(variant().serverless_config(serverless_config(1500, 2)).build()).await;
    assert_eq!(code, "ValidationException");
    assert!(
        text.starts_with(
            "1 validation error detected: Value '1500' at 'productionVariants.1.member.serverlessConfig.memorySizeInMB' failed to satisfy constraint"
        ),
        "{text}"
    );
    let (_, text) = refused(variant().serverless_config(serverless_config(2048, 201)).build()).await;
    assert!(text.contains("maxConcurrency") && text.ends_with("less than or equal to 200"), "{text}");
    let both = variant()
        .serverless_config(serverless_config(2048, 2))
        .instance_type(aws_sdk_sagemaker::types::ProductionVariantInstanceType::MlM5Large)
        .initial_instance_count(1)
        .build();
    let (code, text) = refused(both).await;
    assert_eq!(code, "ValidationException");
    assert!(text.contains("both ServerlessConfig and InstanceType"), "{text}");
    let (_, text) = refused(variant().build()).await;
    assert!(text.contains("neither"), "{text}");
    sim.stop().await;
}

#[tokio::test]
async fn a_memory_size_too_small_for_the_model_fails_as_out_of_memory() {
    let sim = simulator(serverless_profile()).await;
    deploy_serverless(&sim, "small", serverless_config(1024, 2)).await;
    let error = invoke(&runtime(&sim), "small").await.expect_err("the model needs 2048 MB");
    assert_eq!(error, ("ModelError".to_string(), 424));
    let errors_5xx: f64 = statistic(&sim, "small", "Invocation5XXErrors", "Sum").await.iter().sum();
    assert_eq!(errors_5xx, 1.0);
    sim.stop().await;
}

/// The issue's "done when", in boto3 (tests/python/boto3_serverless.py):
/// create a serverless endpoint, invoke it, see the cold start in
/// ModelSetupTime, be throttled past MaxConcurrency.
#[tokio::test]
async fn boto3_creates_invokes_and_is_throttled_by_a_serverless_endpoint() {
    let sim = simulator(serverless_profile()).await;
    let _turn = traffic_turn().await;
    crate::simulator::run_python("boto3_serverless.py", &sim).await;
    sim.stop().await;
}
