//! The simulator, driven by the official AWS SDKs as perfsize and its users drive AWS.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    Dimension, DimensionFilter, Metric, MetricDataQuery, MetricStat, RecentlyActive, ScanBy, StandardUnit, Statistic,
};
use aws_sdk_sagemaker::types::{DesiredWeightAndCapacity, EndpointStatus, Tag};
use aws_sdk_sagemakerruntime::primitives::Blob;

use crate::support::*;

async fn invoke(rt: &aws_sdk_sagemakerruntime::Client, endpoint: &str) -> Result<String, (String, String)> {
    match rt
        .invoke_endpoint()
        .endpoint_name(endpoint)
        .content_type("application/json")
        .body(Blob::new(br#"{"x":1}"#.to_vec()))
        .send()
        .await
    {
        Ok(out) => Ok(out.invoked_production_variant.unwrap_or_default()),
        Err(e) => {
            let e = e.into_service_error();
            Err((code(&e), message(&e)))
        }
    }
}

#[tokio::test]
async fn endpoint_lifecycle_runs_through_every_status() {
    let sim = simulator(fast_profile("")).await;
    let sm = sagemaker(&sim);
    let rt = runtime(&sim);

    deploy(&sm, "life", "ml.m5.large", 1).await;
    let created = sm.describe_endpoint().endpoint_name("life").send().await.unwrap();
    assert_eq!(created.endpoint_status, Some(EndpointStatus::Creating));
    assert_eq!(created.endpoint_arn.as_deref(), Some("arn:aws:sagemaker:us-west-2:123456789012:endpoint/life"));
    let (not_ready, why) = invoke(&rt, "life").await.unwrap_err();
    assert_eq!(not_ready, "ValidationError", "{why}");

    assert_eq!(wait_while(&sm, "life", "Creating").await, "InService");
    let described = sm.describe_endpoint().endpoint_name("life").send().await.unwrap();
    let variant = &described.production_variants()[0];
    assert_eq!(variant.current_instance_count, Some(1));
    assert_eq!(variant.desired_instance_count, Some(1));
    assert_eq!(invoke(&rt, "life").await.unwrap(), "AllTraffic");

    // Capacity changes in place: Updating, still serving, then the new count.
    sm.update_endpoint_weights_and_capacities()
        .endpoint_name("life")
        .desired_weights_and_capacities(
            DesiredWeightAndCapacity::builder().variant_name("AllTraffic").desired_instance_count(3).build(),
        )
        .send()
        .await
        .unwrap();
    let updating = sm.describe_endpoint().endpoint_name("life").send().await.unwrap();
    assert_eq!(updating.endpoint_status, Some(EndpointStatus::Updating));
    assert_eq!(updating.production_variants()[0].current_instance_count, Some(1));
    assert_eq!(updating.production_variants()[0].desired_instance_count, Some(3));
    assert!(invoke(&rt, "life").await.is_ok(), "an updating endpoint keeps serving");
    assert_eq!(wait_while(&sm, "life", "Updating").await, "InService");
    let scaled = sm.describe_endpoint().endpoint_name("life").send().await.unwrap();
    assert_eq!(scaled.production_variants()[0].current_instance_count, Some(3));

    sm.delete_endpoint().endpoint_name("life").send().await.unwrap();
    let deleting = sm.describe_endpoint().endpoint_name("life").send().await.unwrap();
    assert_eq!(deleting.endpoint_status, Some(EndpointStatus::Deleting));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let gone = sm.describe_endpoint().endpoint_name("life").send().await.unwrap_err().into_service_error();
    assert_eq!(crate::support::code(&gone), "ValidationException");
    assert!(message(&gone).contains("Could not find endpoint"), "{}", message(&gone));

    sm.delete_endpoint_config().endpoint_config_name("life").send().await.unwrap();
    sm.delete_model().model_name("life").send().await.unwrap();
    assert!(sm.list_endpoints().send().await.unwrap().endpoints().is_empty());
    assert!(sm.list_endpoint_configs().send().await.unwrap().endpoint_configs().is_empty());
    assert!(sm.list_models().send().await.unwrap().models().is_empty());
    sim.stop().await;
}

#[tokio::test]
async fn update_endpoint_moves_to_a_new_config() {
    let sim = simulator(fast_profile("")).await;
    let sm = sagemaker(&sim);
    deploy(&sm, "blue", "ml.m5.large", 1).await;
    deploy(&sm, "green", "ml.m5.xlarge", 2).await;
    wait_while(&sm, "blue", "Creating").await;
    sm.update_endpoint().endpoint_name("blue").endpoint_config_name("green").send().await.unwrap();
    assert_eq!(wait_while(&sm, "blue", "Updating").await, "InService");
    let blue = sm.describe_endpoint().endpoint_name("blue").send().await.unwrap();
    assert_eq!(blue.endpoint_config_name.as_deref(), Some("green"));
    assert_eq!(blue.production_variants()[0].current_instance_count, Some(2));
    sim.stop().await;
}

#[tokio::test]
async fn control_plane_errors_are_those_sagemaker_gives() {
    let sim = simulator(fast_profile(
        r#"[instance_types."ml.m5.large"]
           max_instances = 3"#,
    ))
    .await;
    let sm = sagemaker(&sim);

    let missing = sm.describe_endpoint().endpoint_name("nope").send().await.unwrap_err().into_service_error();
    assert_eq!(code(&missing), "ValidationException");
    let missing = sm.delete_model().model_name("nope").send().await.unwrap_err().into_service_error();
    assert!(message(&missing).contains("Could not find model"), "{}", message(&missing));
    let missing = sm.describe_endpoint_config().endpoint_config_name("nope").send().await.unwrap_err().into_service_error();
    assert!(message(&missing).contains("Could not find endpoint configuration"));

    let bad_name = sm
        .create_model()
        .model_name("bad_name")
        .execution_role_arn("arn:aws:iam::123456789012:role/test")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&bad_name), "ValidationException");
    assert!(message(&bad_name).contains("regular expression pattern"), "{}", message(&bad_name));
    let too_long = sm
        .create_model()
        .model_name("a".repeat(64))
        .execution_role_arn("arn:aws:iam::123456789012:role/test")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(message(&too_long).contains("length less than or equal to 63"));

    deploy(&sm, "first", "ml.m5.large", 2).await;
    let duplicate =
        sm.create_endpoint().endpoint_name("first").endpoint_config_name("first").send().await.unwrap_err().into_service_error();
    assert!(message(&duplicate).contains("Cannot create already existing endpoint"));

    let in_progress = sm
        .update_endpoint_weights_and_capacities()
        .endpoint_name("first")
        .desired_weights_and_capacities(
            DesiredWeightAndCapacity::builder().variant_name("AllTraffic").desired_instance_count(1).build(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(message(&in_progress).contains("in-progress"), "{}", message(&in_progress));
    let deleting_too_early = sm.delete_endpoint().endpoint_name("first").send().await.unwrap_err().into_service_error();
    assert!(message(&deleting_too_early).contains("in-progress"), "a Creating endpoint cannot be deleted yet");
    wait_while(&sm, "first", "Creating").await;
    let same_config =
        sm.update_endpoint().endpoint_name("first").endpoint_config_name("first").send().await.unwrap_err().into_service_error();
    assert_eq!(code(&same_config), "ValidationException", "an endpoint cannot be updated to the config it already uses");

    // 2 instances used, limit 3: another 2 is over.
    sm.create_endpoint_config()
        .endpoint_config_name("second")
        .production_variants(
            aws_sdk_sagemaker::types::ProductionVariant::builder()
                .variant_name("AllTraffic")
                .model_name("first")
                .instance_type("ml.m5.large".into())
                .initial_instance_count(2)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let limit = sm
        .create_endpoint()
        .endpoint_name("second")
        .endpoint_config_name("second")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&limit), "ResourceLimitExceeded");
    assert!(message(&limit).contains("current utilization of 2 Instances"), "{}", message(&limit));

    let unknown_type = sm
        .create_endpoint_config()
        .endpoint_config_name("weird")
        .production_variants(
            aws_sdk_sagemaker::types::ProductionVariant::builder()
                .variant_name("AllTraffic")
                .model_name("first")
                .instance_type("ml.nope.large".into())
                .initial_instance_count(1)
                .build(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(message(&unknown_type).contains("enum value set"));
    sim.stop().await;
}

#[tokio::test]
async fn a_type_that_fails_to_deploy_ends_failed_with_its_reason() {
    let sim = simulator(fast_profile(
        r#"[instance_types."ml.c5.large"]
           deploy_failure = "simulated: not enough ml.c5.large capacity""#,
    ))
    .await;
    let sm = sagemaker(&sim);
    deploy(&sm, "doomed", "ml.c5.large", 1).await;
    assert_eq!(wait_while(&sm, "doomed", "Creating").await, "Failed");
    let failed = sm.describe_endpoint().endpoint_name("doomed").send().await.unwrap();
    assert_eq!(failed.failure_reason.as_deref(), Some("simulated: not enough ml.c5.large capacity"));
    sm.delete_endpoint().endpoint_name("doomed").send().await.unwrap();
    sim.stop().await;
}

#[tokio::test]
async fn listings_filter_sort_and_page() {
    let sim = simulator(fast_profile("")).await;
    let sm = sagemaker(&sim);
    for i in 0..5 {
        deploy(&sm, &format!("run-a-{i}"), "ml.m5.large", 1).await;
    }
    deploy(&sm, "other", "ml.m5.large", 1).await;

    let mut names = Vec::new();
    let mut token = None;
    loop {
        let page = sm
            .list_endpoints()
            .name_contains("run-a")
            .sort_by("Name".into())
            .sort_order("Ascending".into())
            .max_results(2)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        assert!(page.endpoints().len() <= 2);
        names.extend(page.endpoints().iter().map(|e| e.endpoint_name.clone().unwrap_or_default()));
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(names, vec!["run-a-0", "run-a-1", "run-a-2", "run-a-3", "run-a-4"]);

    let creating = sm.list_endpoints().status_equals("Creating".into()).max_results(100).send().await.unwrap();
    assert_eq!(creating.endpoints().len(), 6);
    let in_service = sm.list_endpoints().status_equals("InService".into()).send().await.unwrap();
    assert!(in_service.endpoints().is_empty());
    sim.stop().await;
}

#[tokio::test]
async fn tags_are_added_listed_and_deleted() {
    let sim = simulator(fast_profile("")).await;
    let sm = sagemaker(&sim);
    deploy(&sm, "tagged", "ml.m5.large", 1).await;
    let arn = sm.describe_endpoint().endpoint_name("tagged").send().await.unwrap().endpoint_arn.unwrap();
    sm.add_tags()
        .resource_arn(&arn)
        .tags(Tag::builder().key("perfsize:run-id").value("r1").build())
        .tags(Tag::builder().key("team").value("ml").build())
        .send()
        .await
        .unwrap();
    let tags = sm.list_tags().resource_arn(&arn).send().await.unwrap();
    assert_eq!(tags.tags().len(), 2);
    sm.delete_tags().resource_arn(&arn).tag_keys("team").send().await.unwrap();
    let tags = sm.list_tags().resource_arn(&arn).send().await.unwrap();
    assert_eq!(tags.tags().iter().map(|t| t.key()).collect::<Vec<_>>(), vec![Some("perfsize:run-id")]);
    sim.stop().await;
}

#[tokio::test]
async fn invoke_errors_are_those_the_runtime_gives() {
    let sim = simulator(fast_profile(
        r#"[instance_types."ml.c5.large"]
           error_rate = 1.0"#,
    ))
    .await;
    let sm = sagemaker(&sim);
    let rt = runtime(&sim);

    let (code, message) = invoke(&rt, "ghost").await.unwrap_err();
    assert_eq!(code, "ValidationError");
    assert!(message.contains("Endpoint ghost of account 123456789012 not found"), "{message}");

    deploy(&sm, "broken", "ml.c5.large", 1).await;
    wait_while(&sm, "broken", "Creating").await;
    let failure = rt
        .invoke_endpoint()
        .endpoint_name("broken")
        .body(Blob::new(b"{}".to_vec()))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    match failure {
        aws_sdk_sagemakerruntime::operation::invoke_endpoint::InvokeEndpointError::ModelError(e) => {
            assert_eq!(e.original_status_code, Some(500));
        }
        other => panic!("expected ModelError, got {other:?}"),
    }

    let huge = vec![b'x'; perfsize::sagemaker::MAX_PAYLOAD_BYTES + 1];
    let refused = rt.invoke_endpoint().endpoint_name("broken").body(Blob::new(huge)).send().await;
    assert!(refused.is_err(), "a payload over 6 MB is refused");

    // No signature at all: 403, as AWS answers before anything else.
    let unsigned =
        reqwest::Client::new().post(format!("{}/endpoints/broken/invocations", sim.url())).body("{}").send().await.unwrap();
    assert_eq!(unsigned.status().as_u16(), 403);
    sim.stop().await;
}

#[tokio::test]
async fn a_request_the_container_cannot_answer_in_time_is_a_model_error() {
    let sim = simulator(timeout_profile()).await;
    let sm = sagemaker(&sim);
    let rt = runtime(&sim);
    deploy(&sm, "slow", "ml.m5.large", 1).await;
    wait_while(&sm, "slow", "Creating").await;
    let started = std::time::Instant::now();
    let (code, message) = invoke(&rt, "slow").await.unwrap_err();
    assert_eq!(code, "ModelError");
    assert!(message.contains("timed out"), "{message}");
    assert!(started.elapsed() >= Duration::from_millis(900), "answered at the container timeout, not before");
    sim.stop().await;
}

fn timeout_profile() -> perfsize::simulator::Profile {
    perfsize::simulator::Profile::parse(
        r#"
        deploy_seconds = 0.2
        delete_seconds = 0.1
        container_timeout_seconds = 1.0
        [default]
        vcpus = 2
        workers = 1
        service_ms = { median = 5000.0, p99 = 6000.0 }
        "#,
        "timeout profile",
    )
    .unwrap()
}

#[tokio::test]
async fn load_above_capacity_queues_then_answers_503() {
    // One instance, two workers of 100 ms, room for four in the queue: of 30
    // requests sent at once, 6 are held and the rest turned away.
    let sim = simulator(fast_profile(
        r#"[instance_types."ml.m5.large"]
           workers = 2
           service_ms = { median = 100.0, p99 = 100.0 }
           queue_limit = 4"#,
    ))
    .await;
    let sm = sagemaker(&sim);
    let rt = runtime(&sim);
    // A burst of 30 at once would disturb a neighbour's measured step.
    let _turn = traffic_turn().await;
    deploy(&sm, "busy", "ml.m5.large", 1).await;
    wait_while(&sm, "busy", "Creating").await;

    let calls = (0..30).map(|_| {
        let rt = rt.clone();
        async move {
            let started = std::time::Instant::now();
            let result = invoke(&rt, "busy").await;
            (result, started.elapsed())
        }
    });
    let results = futures_join_all(calls).await;
    let ok: Vec<Duration> = results.iter().filter(|(r, _)| r.is_ok()).map(|(_, d)| *d).collect();
    let unavailable = results.iter().filter(|(r, _)| matches!(r, Err((code, _)) if code == "ServiceUnavailable")).count();
    assert_eq!(ok.len() + unavailable, 30, "every request either served or refused with 503");
    assert!(unavailable >= 20, "a full queue answers 503 ({unavailable} of 30)");
    assert!(ok.len() >= 6, "two in service and four queued are served ({} served)", ok.len());
    let slowest = ok.iter().max().unwrap();
    assert!(*slowest >= Duration::from_millis(250), "queued requests wait for a worker ({slowest:?})");

    // CloudWatch saw the same: 30 invocations, the 503s as 5XX errors.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cw = cloudwatch(&sim);
    let sums = metric_sums(&cw, "busy", &["Invocations", "Invocation5XXErrors"]).await;
    assert_eq!(sums, vec![30.0, unavailable as f64]);
    sim.stop().await;
}

#[tokio::test]
async fn cloudwatch_reports_what_was_served() {
    let sim = simulator(fast_profile(
        r#"[instance_types."ml.m5.large"]
           service_ms = { median = 20.0, p99 = 20.0 }"#,
    ))
    .await;
    let sm = sagemaker(&sim);
    let rt = runtime(&sim);
    deploy(&sm, "measured", "ml.m5.large", 2).await;
    wait_while(&sm, "measured", "Creating").await;
    for _ in 0..25 {
        invoke(&rt, "measured").await.unwrap();
    }
    let cw = cloudwatch(&sim);
    let sums =
        metric_sums(&cw, "measured", &["Invocations", "Invocation4XXErrors", "Invocation5XXErrors", "InvocationsPerInstance"])
            .await;
    assert_eq!(sums, vec![25.0, 0.0, 0.0, 12.5]);

    let latency = |stat: &str| {
        MetricDataQuery::builder()
            .id(format!("m{}", stat.replace('.', "_")))
            .metric_stat(
                MetricStat::builder().metric(metric("AWS/SageMaker", "ModelLatency", "measured")).period(60).stat(stat).build(),
            )
            .build()
    };
    let (start, end) = window();
    let out = cw
        .get_metric_data()
        .start_time(start)
        .end_time(end)
        .scan_by(ScanBy::TimestampAscending)
        .metric_data_queries(latency("p50"))
        .metric_data_queries(latency("SampleCount"))
        .metric_data_queries(latency("Maximum"))
        .send()
        .await
        .unwrap();
    let total = |i: usize| out.metric_data_results()[i].values().iter().sum::<f64>();
    assert_eq!(total(1), 25.0, "one ModelLatency sample per request");
    let p50 = out.metric_data_results()[0].values()[0];
    assert!((19_000.0..40_000.0).contains(&p50), "ModelLatency is in microseconds and near the 20 ms service time: {p50}");
    assert!(!out.metric_data_results()[0].timestamps().is_empty());
    sim.stop().await;
}

#[tokio::test]
async fn cloudwatch_answers_awsjson_1_0_too() {
    let sim = simulator(fast_profile("")).await;
    let sm = sagemaker(&sim);
    let rt = runtime(&sim);
    deploy(&sm, "json", "ml.m5.large", 1).await;
    wait_while(&sm, "json", "Creating").await;
    for _ in 0..3 {
        invoke(&rt, "json").await.unwrap();
    }
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64();
    let body = serde_json::json!({
        "StartTime": now - 120.0,
        "EndTime": now + 60.0,
        "MetricDataQueries": [{"Id": "inv", "MetricStat": {
            "Metric": {"Namespace": "AWS/SageMaker", "MetricName": "Invocations",
                       "Dimensions": [{"Name": "EndpointName", "Value": "json"}, {"Name": "VariantName", "Value": "AllTraffic"}]},
            "Period": 60, "Stat": "Sum"}}]
    });
    let answer: serde_json::Value = reqwest::Client::new()
        .post(sim.url())
        .header("x-amz-target", "GraniteServiceVersion20100801.GetMetricData")
        .header("content-type", "application/x-amz-json-1.0")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/20261122/us-west-2/monitoring/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let values = answer["MetricDataResults"][0]["Values"].as_array().unwrap();
    assert_eq!(values.iter().map(|v| v.as_f64().unwrap()).sum::<f64>(), 3.0);
    sim.stop().await;
}

/// The AWS/SageMaker metrics of a variant that served requests, by name.
const SAGEMAKER_METRICS: [&str; 7] = [
    "ConcurrentRequestsPerModel",
    "Invocation4XXErrors",
    "Invocation5XXErrors",
    "Invocations",
    "InvocationsPerInstance",
    "ModelLatency",
    "OverheadLatency",
];

/// aws-sdk-cloudwatch (RPC v2 CBOR) lists the metrics a variant published
/// and reads the same figures through GetMetricStatistics as through GetMetricData.
#[tokio::test]
async fn the_rust_sdk_lists_metrics_and_reads_statistics() {
    let sim = simulator(fast_profile("")).await;
    let sm = sagemaker(&sim);
    let rt = runtime(&sim);
    deploy(&sm, "listed", "ml.m5.large", 1).await;
    wait_while(&sm, "listed", "Creating").await;
    for _ in 0..4 {
        invoke(&rt, "listed").await.unwrap();
    }
    let cw = cloudwatch(&sim);

    let listed = cw
        .list_metrics()
        .namespace("AWS/SageMaker")
        .dimensions(DimensionFilter::builder().name("EndpointName").value("listed").build())
        .send()
        .await
        .expect("ListMetrics");
    let mut names: Vec<&str> = listed.metrics().iter().filter_map(|m| m.metric_name()).collect();
    names.sort();
    assert_eq!(names, SAGEMAKER_METRICS);
    let dimensions: Vec<(&str, &str)> =
        listed.metrics()[0].dimensions().iter().map(|d| (d.name().unwrap_or_default(), d.value().unwrap_or_default())).collect();
    assert_eq!(dimensions, [("EndpointName", "listed"), ("VariantName", "AllTraffic")]);
    let pages = cw.list_metrics().recently_active(RecentlyActive::Pt3H).into_paginator().send().try_collect().await.unwrap();
    let every: usize = pages.iter().map(|page| page.metrics().len()).sum();
    assert_eq!(every, SAGEMAKER_METRICS.len() + 2, "and CPUUtilization, MemoryUtilization");

    let (start, end) = window();
    let statistics = |name: &str| {
        cw.get_metric_statistics()
            .namespace("AWS/SageMaker")
            .metric_name(name)
            .dimensions(Dimension::builder().name("EndpointName").value("listed").build())
            .dimensions(Dimension::builder().name("VariantName").value("AllTraffic").build())
            .start_time(start)
            .end_time(end)
            .period(60)
    };
    let invocations =
        statistics("Invocations").statistics(Statistic::Sum).statistics(Statistic::SampleCount).send().await.unwrap();
    assert_eq!(invocations.label(), Some("Invocations"));
    assert_eq!(invocations.datapoints().iter().filter_map(|d| d.sum()).sum::<f64>(), 4.0);
    assert!(invocations.datapoints().iter().all(|d| d.unit() == Some(&StandardUnit::None) && d.timestamp().is_some()));

    let latency = statistics("ModelLatency").statistics(Statistic::Maximum).send().await.unwrap();
    assert!(latency.datapoints().iter().all(|d| d.unit() == Some(&StandardUnit::Microseconds)));
    let slowest = latency.datapoints().iter().filter_map(|d| d.maximum()).fold(0.0, f64::max);
    let highest_p100 = statistics("ModelLatency")
        .extended_statistics("p100")
        .send()
        .await
        .unwrap()
        .datapoints()
        .iter()
        .filter_map(|d| d.extended_statistics()?.get("p100").copied())
        .fold(0.0, f64::max);
    let out = cw
        .get_metric_data()
        .start_time(start)
        .end_time(end)
        .metric_data_queries(
            MetricDataQuery::builder()
                .id("slowest")
                .metric_stat(
                    MetricStat::builder()
                        .metric(metric("AWS/SageMaker", "ModelLatency", "listed"))
                        .period(60)
                        .stat("Maximum")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let slowest_by_data = out.metric_data_results()[0].values().iter().copied().fold(0.0, f64::max);
    assert!(slowest > 1000.0, "ModelLatency is in microseconds: {slowest}");
    assert_eq!((slowest, highest_p100), (slowest_by_data, slowest_by_data), "one path serves both operations");

    let neither = statistics("Invocations").send().await.unwrap_err().into_service_error();
    assert!(neither.is_invalid_parameter_combination_exception(), "{neither:?}");
    let too_many = statistics("Invocations")
        .start_time(DateTime::from_secs(0))
        .end_time(DateTime::from_secs(2 * 86_400))
        .statistics(Statistic::Sum)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(too_many.is_invalid_parameter_combination_exception(), "{too_many:?}");
    assert!(message(&too_many).contains("exceeds the limit of 1440"), "{}", message(&too_many));
    sim.stop().await;
}

/// The AWS CLI (botocore, awsJson 1.0) lists the simulator's metrics and
/// reads their statistics as a user at a shell would.
#[tokio::test]
async fn the_aws_cli_lists_metrics_and_reads_statistics() {
    if !aws_cli_installed().await {
        println!("skipped: the AWS CLI (`aws`) is not installed");
        return;
    }
    let sim = simulator(fast_profile("")).await;
    let sm = sagemaker(&sim);
    let rt = runtime(&sim);
    deploy(&sm, "cli", "ml.m5.large", 1).await;
    wait_while(&sm, "cli", "Creating").await;
    for _ in 0..3 {
        invoke(&rt, "cli").await.unwrap();
    }
    // Each CLI run starts Python: a core for a second, not while a neighbour measures.
    let _turn = traffic_turn().await;

    let listed = aws_cli(
        &sim,
        &["cloudwatch", "list-metrics", "--namespace", "AWS/SageMaker", "--dimensions", "Name=EndpointName,Value=cli"],
    )
    .await
    .expect("list-metrics");
    let mut names: Vec<&str> = listed["Metrics"].as_array().unwrap().iter().filter_map(|m| m["MetricName"].as_str()).collect();
    names.sort();
    assert_eq!(names, SAGEMAKER_METRICS);

    let now = chrono::Utc::now();
    let iso = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let window = (iso(now - chrono::Duration::minutes(5)), iso(now + chrono::Duration::minutes(1)));
    let statistics = |name: &'static str, asked: &'static [&'static str]| cli_statistics(&sim, name, &window, asked);
    let invocations = statistics("Invocations", &["--statistics", "Sum", "SampleCount"]).await.expect("get-metric-statistics");
    assert_eq!(invocations["Label"], "Invocations");
    let points = invocations["Datapoints"].as_array().unwrap();
    assert_eq!(points.iter().filter_map(|d| d["Sum"].as_f64()).sum::<f64>(), 3.0, "{invocations}");
    assert!(points.iter().all(|d| d["Unit"] == "None" && !d["Timestamp"].is_null()), "{invocations}");

    let latency = statistics("ModelLatency", &["--extended-statistics", "p50"]).await.expect("get-metric-statistics");
    let points = latency["Datapoints"].as_array().unwrap();
    assert!(!points.is_empty());
    assert!(
        points.iter().all(|d| d["Unit"] == "Microseconds" && d["ExtendedStatistics"]["p50"].as_f64() > Some(1000.0)),
        "{latency}"
    );

    let refused = statistics("Invocations", &[]).await.expect_err("neither statistics nor percentiles");
    assert!(refused.contains("(InvalidParameterCombination)"), "{refused}");
    sim.stop().await;
}

/// Whether the AWS CLI can be run here (tests that need it skip, saying so, when not).
pub(crate) async fn aws_cli_installed() -> bool {
    tokio::process::Command::new("aws").arg("--version").output().await.is_ok()
}

/// `aws cloudwatch get-metric-statistics` of variant AllTraffic of endpoint
/// "cli" over `window` (ISO 8601 start and end), per minute.
async fn cli_statistics(
    sim: &perfsize::simulator::RunningSimulator,
    metric: &str,
    window: &(String, String),
    asked: &[&str],
) -> Result<serde_json::Value, String> {
    let mut args = vec!["cloudwatch", "get-metric-statistics", "--namespace", "AWS/SageMaker", "--metric-name", metric];
    args.extend(["--dimensions", "Name=EndpointName,Value=cli", "Name=VariantName,Value=AllTraffic"]);
    args.extend(["--start-time", &window.0, "--end-time", &window.1, "--period", "60"]);
    args.extend(asked);
    aws_cli(sim, &args).await
}

/// Runs `aws ARGS` against the simulator with throwaway credentials: its
/// JSON output (an empty object for none), or its error output.
async fn aws_cli(sim: &perfsize::simulator::RunningSimulator, args: &[&str]) -> Result<serde_json::Value, String> {
    let stdout = aws_cli_text(sim, args).await?;
    Ok(if stdout.trim().is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_str(&stdout).expect("the AWS CLI prints JSON")
    })
}

/// Runs `aws ARGS` against the simulator with throwaway credentials: what it
/// printed, or its error output.
pub(crate) async fn aws_cli_text(sim: &perfsize::simulator::RunningSimulator, args: &[&str]) -> Result<String, String> {
    let output = tokio::process::Command::new("aws")
        .args(args)
        .args(["--region", "us-east-1", "--endpoint-url", &sim.url(), "--output", "json"])
        .env("AWS_ACCESS_KEY_ID", "AKIDPERFSIZETEST")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_PAGER", "")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .kill_on_drop(true)
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .await
        .expect("aws runs");
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// aws-sdk-cloudwatch (RPC v2 CBOR) puts an alarm on what an endpoint serves,
/// sees it go to ALARM once traffic breaches it — evaluated by the simulator
/// itself, on a compressed clock — and deletes it.
#[tokio::test]
async fn a_cloudwatch_alarm_on_served_traffic_goes_to_alarm() {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
    let sim = simulator(scaling_profile()).await;
    let sm = sagemaker(&sim);
    let rt = runtime(&sim);
    let cw = cloudwatch(&sim);
    deploy(&sm, "alarmed", "ml.m5.large", 1).await;
    wait_while(&sm, "alarmed", "Creating").await;
    cw.put_metric_alarm()
        .alarm_name("any-traffic")
        .namespace("AWS/SageMaker")
        .metric_name("Invocations")
        .dimensions(Dimension::builder().name("EndpointName").value("alarmed").build())
        .dimensions(Dimension::builder().name("VariantName").value("AllTraffic").build())
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(0.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");
    let state = || async {
        let out = cw.describe_alarms().alarm_names("any-traffic").send().await.expect("DescribeAlarms");
        let alarm = out.metric_alarms()[0].clone();
        (alarm.state_value().cloned(), alarm.state_reason().unwrap_or_default().to_string(), alarm.threshold())
    };
    let (initial, reason, threshold) = state().await;
    assert_eq!(
        (initial, reason.as_str(), threshold),
        (Some(StateValue::InsufficientData), "Unchecked: Initial alarm creation", Some(0.0))
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        invoke(&rt, "alarmed").await.expect("invoke");
        let (now, reason, _) = state().await;
        if now == Some(StateValue::Alarm) {
            assert!(reason.starts_with("Threshold Crossed: 1 datapoint ["), "{reason}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the alarm stayed {now:?}: {reason}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cw.delete_alarms().alarm_names("any-traffic").send().await.expect("DeleteAlarms");
    assert!(cw.describe_alarms().send().await.expect("DescribeAlarms").metric_alarms().is_empty());
    sim.stop().await;
}

fn metric(namespace: &str, name: &str, endpoint: &str) -> Metric {
    Metric::builder()
        .namespace(namespace)
        .metric_name(name)
        .dimensions(Dimension::builder().name("EndpointName").value(endpoint).build())
        .dimensions(Dimension::builder().name("VariantName").value("AllTraffic").build())
        .build()
}

fn window() -> (DateTime, DateTime) {
    let now = SystemTime::now();
    (DateTime::from(now - Duration::from_secs(300)), DateTime::from(now + Duration::from_secs(60)))
}

/// The Sum over the last few minutes of each AWS/SageMaker metric in `names`.
async fn metric_sums(cw: &aws_sdk_cloudwatch::Client, endpoint: &str, names: &[&str]) -> Vec<f64> {
    let (start, end) = window();
    let mut request = cw.get_metric_data().start_time(start).end_time(end);
    for (i, name) in names.iter().enumerate() {
        request = request.metric_data_queries(
            MetricDataQuery::builder()
                .id(format!("q{i}"))
                .metric_stat(MetricStat::builder().metric(metric("AWS/SageMaker", name, endpoint)).period(60).stat("Sum").build())
                .build(),
        );
    }
    let out = request.send().await.expect("GetMetricData");
    out.metric_data_results().iter().map(|r| r.values().iter().sum()).collect()
}

async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

/// boto3 (as Python users and the AWS CLI v1 drive SageMaker) works against
/// the simulator unchanged. boto3 is installed into target/ when missing.
#[tokio::test]
async fn boto3_creates_invokes_reads_metrics_and_deletes() {
    let sim = simulator(fast_profile("")).await;
    // Installing boto3 and starting Python take a core for seconds: not while a
    // neighbour measures.
    let _turn = traffic_turn().await;
    run_python("boto3_smoke.py", &sim).await;
    sim.stop().await;
}

/// A profile whose scaling clock runs 60 times as fast as AWS's: a CloudWatch
/// minute lasts a second and the default 300-s cooldowns 5 s.
pub(crate) fn scaling_profile() -> perfsize::simulator::Profile {
    perfsize::simulator::Profile::parse(
        "scaling_time_scale = 60\ndeploy_seconds = 1.0\ndelete_seconds = 0.2\n",
        "scaling test profile",
    )
    .expect("scaling test profile is valid")
}

/// A boto3 client registers a scalable target and a target tracking policy,
/// then sends nothing but InvokeEndpoint: the endpoint scales out under load
/// and back in when the load drops, DescribeScalingActivities says why, and
/// deregistering takes the policy and its alarms away. The script polls for
/// each state with generous deadlines (tests/python/boto3_autoscaling.py).
#[tokio::test]
async fn boto3_load_scales_an_endpoint_out_and_back_in() {
    let sim = simulator(scaling_profile()).await;
    let _turn = traffic_turn().await;
    run_python("boto3_autoscaling.py", &sim).await;
    sim.stop().await;
}

/// Runs tests/python/`script` against `sim` with boto3 importable, and fails
/// with its output if it fails.
pub(crate) async fn run_python(script: &str, sim: &perfsize::simulator::RunningSimulator) {
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let pythonpath = python_with_boto3().await;
    let run = tokio::process::Command::new("python3")
        .arg(&path)
        .arg(sim.url())
        .env("PYTHONPATH", pythonpath)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(900), run)
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish in 15 minutes"))
        .expect("python3 runs");
    assert!(output.status.success(), "{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
}

/// The AWS CLI (botocore's CBOR for CloudWatch, JSON 1.1 for Application
/// Auto Scaling) registers a target and a policy, and lists the target and
/// the policy's alarms. Skipped, saying so, where `aws` is not installed.
#[tokio::test]
async fn the_aws_cli_lists_scalable_targets_and_alarms() {
    if !aws_cli_installed().await {
        eprintln!("skipped: the AWS CLI (`aws`) is not installed");
        return;
    }
    let sim = simulator(fast_profile("")).await;
    let sm = sagemaker(&sim);
    deploy(&sm, "cli", "ml.m5.large", 1).await;
    wait_while(&sm, "cli", "Creating").await;
    let _turn = traffic_turn().await;
    let target = [
        "--service-namespace",
        "sagemaker",
        "--resource-id",
        "endpoint/cli/variant/AllTraffic",
        "--scalable-dimension",
        "sagemaker:variant:DesiredInstanceCount",
    ];
    aws_cli(
        &sim,
        &[&["application-autoscaling", "register-scalable-target", "--min-capacity", "1", "--max-capacity", "2"], &target[..]]
            .concat(),
    )
    .await
    .expect("register-scalable-target");
    let policy = aws_cli(
        &sim,
        &[
            &["application-autoscaling", "put-scaling-policy", "--policy-name", "cli", "--policy-type", "TargetTrackingScaling"],
            &target[..],
            &[
                "--target-tracking-scaling-policy-configuration",
                r#"{"TargetValue": 70, "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}}"#,
            ],
        ]
        .concat(),
    )
    .await
    .expect("put-scaling-policy");
    assert_eq!(policy["Alarms"].as_array().map(Vec::len), Some(2), "{policy}");

    let targets = aws_cli(&sim, &["application-autoscaling", "describe-scalable-targets", "--service-namespace", "sagemaker"])
        .await
        .unwrap();
    let listed = &targets["ScalableTargets"][0];
    assert_eq!(listed["ResourceId"], "endpoint/cli/variant/AllTraffic", "{targets}");
    assert_eq!((listed["MinCapacity"].as_u64(), listed["MaxCapacity"].as_u64()), (Some(1), Some(2)));

    let alarms = aws_cli(&sim, &["cloudwatch", "describe-alarms"]).await.unwrap();
    let alarms = alarms["MetricAlarms"].as_array().expect("MetricAlarms").clone();
    let mut described: Vec<(String, String, f64)> = alarms
        .iter()
        .map(|a| {
            let name = a["AlarmName"].as_str().unwrap_or_default();
            let side = if name.contains("-AlarmHigh-") { "high" } else { "low" };
            assert!(name.starts_with("TargetTracking-endpoint/cli/variant/AllTraffic-Alarm"), "{name}");
            (
                side.to_string(),
                a["ComparisonOperator"].as_str().unwrap_or_default().to_string(),
                a["Threshold"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    described.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        described,
        [
            ("high".to_string(), "GreaterThanThreshold".to_string(), 70.0),
            ("low".to_string(), "LessThanThreshold".to_string(), 63.0)
        ]
    );

    aws_cli(&sim, &[&["application-autoscaling", "deregister-scalable-target"], &target[..]].concat()).await.unwrap();
    let alarms = aws_cli(&sim, &["cloudwatch", "describe-alarms"]).await.unwrap();
    assert_eq!(alarms["MetricAlarms"], serde_json::json!([]), "the policy's alarms go with its target");
    sim.stop().await;
}

/// A PYTHONPATH under which `import boto3` works, installing it into
/// target/python-deps when the machine's Python lacks it.
async fn python_with_boto3() -> String {
    let deps = concat!(env!("CARGO_MANIFEST_DIR"), "/target/python-deps");
    let importable = |path: &'static str| async move {
        tokio::process::Command::new("python3")
            .args(["-c", "import boto3"])
            .env("PYTHONPATH", path)
            .status()
            .await
            .is_ok_and(|s| s.success())
    };
    if importable(deps).await {
        return deps.to_string();
    }
    let installed = tokio::process::Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--target", deps, "boto3"])
        .status()
        .await
        .expect("python3 -m pip runs");
    assert!(installed.success(), "could not install boto3 into {deps}");
    deps.to_string()
}
