//! Response streaming on the simulator, read as LLM users read it: the Rust
//! SDK's InvokeEndpointWithResponseStream and boto3's
//! invoke_endpoint_with_response_stream, to the end or to a mid-stream error;
//! the runtime's errors before a stream starts; CloudWatch's view of
//! streams; and the sample LLM profile served by a standalone simulator.

use std::time::Duration;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use aws_sdk_sagemakerruntime::operation::invoke_endpoint_with_response_stream::InvokeEndpointWithResponseStreamError as InvokeError;
use aws_sdk_sagemakerruntime::primitives::Blob;
use aws_sdk_sagemakerruntime::types::ResponseStream;
use aws_sdk_sagemakerruntime::types::error::ResponseStreamError;
use perfsize::simulator::{Profile, RunningSimulator};
use serde_json::{Value, json};

use crate::support::*;

/// An LLM that streams fast, three tokens a part, and types that misbehave:
/// ml.g5.2xlarge breaks every stream, ml.g5.4xlarge fails inside SageMaker,
/// ml.g5.8xlarge decodes too slowly for the stream timeout, ml.g5.16xlarge
/// serves one stream at a time with no queue, and ml.g6.xlarge streams slowly
/// enough to be seen in flight, with a small KV cache.
fn llm_profile() -> Profile {
    fast_profile(
        r#"
        [llm]
        tokens_per_chunk = 3
        stream_timeout_seconds = 3.0
        [llm.default]
        gpus = 1
        max_batch = 8
        kv_cache_tokens = 100000
        max_total_tokens = 4096
        prefill_ms_per_token = 0.01
        decode_step_ms = 2.0
        decode_step_ms_per_sequence = 0.1
        queue_limit = 16
        weights_memory_percent = 50.0
        [llm.instance_types."ml.g5.2xlarge"]
        stream_broken_rate = 1.0
        [llm.instance_types."ml.g5.4xlarge"]
        internal_failure_rate = 1.0
        [llm.instance_types."ml.g5.8xlarge"]
        decode_step_ms = 1000.0
        [llm.instance_types."ml.g5.16xlarge"]
        max_batch = 1
        queue_limit = 0
        decode_step_ms = 100.0
        [llm.instance_types."ml.g6.xlarge"]
        decode_step_ms = 40.0
        kv_cache_tokens = 1000
        "#,
    )
}

/// Deploys `name` on `instance_type` and waits until it is in service.
pub(crate) async fn endpoint(sim: &RunningSimulator, name: &str, instance_type: &str) {
    let sm = sagemaker(sim);
    deploy(&sm, name, instance_type, 1).await;
    assert_eq!(wait_while(&sm, name, "Creating").await, "InService");
}

async fn start_stream(
    rt: &aws_sdk_sagemakerruntime::Client,
    endpoint: &str,
    body: Value,
) -> Result<
    aws_sdk_sagemakerruntime::operation::invoke_endpoint_with_response_stream::InvokeEndpointWithResponseStreamOutput,
    InvokeError,
> {
    rt.invoke_endpoint_with_response_stream()
        .endpoint_name(endpoint)
        .content_type("application/json")
        .custom_attributes("trace=1")
        .body(Blob::new(body.to_string()))
        .send()
        .await
        .map_err(|e| e.into_service_error())
}

/// What a stream carried: each PayloadPart's bytes, and how it ended.
struct Read {
    parts: Vec<Vec<u8>>,
    error: Option<ResponseStreamError>,
}

impl Read {
    /// The server-sent events of all parts, cut from their bytes: `[DONE]`
    /// as a string, the rest as JSON.
    fn events(&self) -> Vec<Value> {
        let text = String::from_utf8(self.parts.concat()).expect("UTF-8");
        assert!(text.is_empty() || text.ends_with("\n\n"), "{text:?}");
        text.split("\n\n")
            .filter(|event| !event.is_empty())
            .map(|event| event.strip_prefix("data:").expect("SSE data").trim())
            .map(|data| if data == "[DONE]" { json!("[DONE]") } else { serde_json::from_str(data).unwrap() })
            .collect()
    }
}

async fn read_to_end(
    mut body: aws_sdk_sagemakerruntime::primitives::event_stream::EventReceiver<ResponseStream, ResponseStreamError>,
) -> Read {
    let mut parts = Vec::new();
    loop {
        match body.recv().await {
            Ok(Some(ResponseStream::PayloadPart(part))) => parts.push(part.bytes.expect("a part has bytes").into_inner()),
            Ok(Some(other)) => panic!("unexpected event {other:?}"),
            Ok(None) => return Read { parts, error: None },
            Err(e) => return Read { parts, error: Some(e.into_service_error()) },
        }
    }
}

/// Tokens in the simulator's text: four characters each.
fn tokens_in(text: &str) -> usize {
    assert_eq!(text.len() % 4, 0, "{text:?}");
    text.len() / 4
}

#[tokio::test]
async fn the_sdk_reads_a_tgi_stream_to_the_end_counting_every_token_of_each_part() {
    let sim = simulator(llm_profile()).await;
    endpoint(&sim, "tgi", "ml.g5.xlarge").await;
    let rt = runtime(&sim);
    let body = json!({"inputs": "Tell me a story about a cat.", "parameters": {"max_new_tokens": 10, "details": true}});
    let out = start_stream(&rt, "tgi", body).await.expect("the stream starts");
    assert_eq!(out.invoked_production_variant.as_deref(), Some("AllTraffic"));
    assert_eq!(out.content_type.as_deref(), Some("text/event-stream"));
    assert_eq!(out.custom_attributes.as_deref(), Some("trace=1"));
    let read = read_to_end(out.body).await;
    assert!(read.error.is_none(), "{:?}", read.error);
    assert_eq!(read.parts.len(), 4, "10 tokens in parts of 3");
    let events = read.events();
    let per_part: Vec<usize> = events.iter().map(|e| tokens_in(e["token"]["text"].as_str().unwrap())).collect();
    assert_eq!(per_part, vec![3, 3, 3, 1]);
    let last = events.last().unwrap();
    assert_eq!(last["details"]["generated_tokens"], 10);
    assert_eq!(last["details"]["input_length"], 7, "28 characters of prompt");
    assert_eq!(tokens_in(last["generated_text"].as_str().unwrap()), 10);
    assert!(events[..3].iter().all(|e| e["generated_text"].is_null()));
    sim.stop().await;
}

#[tokio::test]
async fn the_sdk_reads_a_chat_completion_stream_with_its_usage() {
    let sim = simulator(llm_profile()).await;
    endpoint(&sim, "chat", "ml.g5.xlarge").await;
    let rt = runtime(&sim);
    let body =
        json!({"model": "llama", "messages": [{"role": "user", "content": "Hello there!"}], "max_tokens": 7, "stream": true});
    let read = read_to_end(start_stream(&rt, "chat", body).await.unwrap().body).await;
    assert!(read.error.is_none(), "{:?}", read.error);
    let events = read.events();
    assert_eq!(events.last(), Some(&json!("[DONE]")));
    let deltas: Vec<&Value> = events.iter().filter(|e| e["choices"].as_array().is_some_and(|c| !c.is_empty())).collect();
    let per_chunk: Vec<usize> = deltas.iter().map(|e| tokens_in(e["choices"][0]["delta"]["content"].as_str().unwrap())).collect();
    assert_eq!(per_chunk, vec![3, 3, 1]);
    assert_eq!(deltas[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(deltas[2]["choices"][0]["finish_reason"], "length");
    let usage = &events[events.len() - 2]["usage"];
    assert_eq!(*usage, json!({"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10}));
    sim.stop().await;
}

#[tokio::test]
async fn failures_midway_reach_the_sdk_as_stream_errors_after_parts() {
    let sim = simulator(llm_profile()).await;
    for (name, instance_type) in [("broken", "ml.g5.2xlarge"), ("internal", "ml.g5.4xlarge"), ("slow", "ml.g5.8xlarge")] {
        endpoint(&sim, name, instance_type).await;
    }
    let rt = runtime(&sim);
    let body = json!({"inputs": "Tell me a long story.", "parameters": {"max_new_tokens": 40}});

    let broken = read_to_end(start_stream(&rt, "broken", body.clone()).await.unwrap().body).await;
    assert!(!broken.parts.is_empty(), "the stream started before it broke");
    match broken.error {
        Some(ResponseStreamError::ModelStreamError(e)) => assert_eq!(e.error_code(), Some("StreamBroken")),
        other => panic!("expected ModelStreamError, got {other:?}"),
    }

    let internal = read_to_end(start_stream(&rt, "internal", body.clone()).await.unwrap().body).await;
    assert!(!internal.parts.is_empty());
    assert!(matches!(internal.error, Some(ResponseStreamError::InternalStreamFailure(_))), "{:?}", internal.error);

    // One token a second against a 3-second stream timeout.
    let slow = read_to_end(start_stream(&rt, "slow", body).await.unwrap().body).await;
    assert!(!slow.parts.is_empty());
    match slow.error {
        Some(ResponseStreamError::ModelStreamError(e)) => {
            assert_eq!(e.error_code(), Some("ModelInvocationTimeExceeded"));
            assert!(e.message().is_some_and(|m| m.contains("allotted time")), "{e:?}");
        }
        other => panic!("expected ModelStreamError, got {other:?}"),
    }
    sim.stop().await;
}

#[tokio::test]
async fn errors_before_a_stream_starts_are_the_runtimes() {
    let sim = simulator(llm_profile()).await;
    endpoint(&sim, "single", "ml.g5.16xlarge").await;
    let rt = runtime(&sim);
    let short = json!({"inputs": "Hi", "parameters": {"max_new_tokens": 20}});

    let missing = start_stream(&rt, "ghost", short.clone()).await.expect_err("no such endpoint");
    assert!(matches!(missing, InvokeError::ValidationError(_)), "{missing:?}");

    let too_long = json!({"inputs": "Hi", "parameters": {"max_new_tokens": 100_000}});
    match start_stream(&rt, "single", too_long).await.err() {
        Some(InvokeError::ModelError(e)) => {
            assert_eq!(e.original_status_code, Some(422));
            assert!(e.original_message.as_deref().is_some_and(|m| m.contains("<= 4096")), "{e:?}");
        }
        other => panic!("expected ModelError, got {other:?}"),
    }

    // One sequence at a time and no queue: while a stream runs, the next is refused.
    let mut running = start_stream(&rt, "single", short.clone()).await.unwrap().body;
    assert!(matches!(running.recv().await, Ok(Some(ResponseStream::PayloadPart(_)))), "the first stream is under way");
    let refused = start_stream(&rt, "single", short.clone()).await.expect_err("refused");
    assert_eq!(code(&refused), "ServiceUnavailable", "{refused:?}");
    drop(running);

    let unsigned = reqwest::Client::new()
        .post(format!("{}/endpoints/single/invocations-response-stream", sim.url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 403);
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

/// One statistic over the last few minutes of each (namespace, name), in order.
async fn statistics(cw: &aws_sdk_cloudwatch::Client, endpoint: &str, queries: &[(&str, &str, &str)]) -> Vec<Vec<f64>> {
    let now = std::time::SystemTime::now();
    let mut request = cw
        .get_metric_data()
        .start_time(DateTime::from(now - Duration::from_secs(300)))
        .end_time(DateTime::from(now + Duration::from_secs(60)));
    for (i, (namespace, name, stat)) in queries.iter().enumerate() {
        let stat = MetricStat::builder().metric(metric(namespace, name, endpoint)).period(3600).stat(*stat).build();
        request = request.metric_data_queries(MetricDataQuery::builder().id(format!("q{i}")).metric_stat(stat).build());
    }
    let out = request.send().await.expect("GetMetricData");
    out.metric_data_results().iter().map(|r| r.values().to_vec()).collect()
}

#[tokio::test]
async fn cloudwatch_reports_streams_gpus_and_the_simulators_own_token_times() {
    let sim = simulator(llm_profile()).await;
    endpoint(&sim, "watched", "ml.g6.xlarge").await;
    let rt = runtime(&sim);
    // Three streams of 30 tokens at 40 ms a step: over a second each, so the
    // engine is looked at while they run.
    let streams = (0..3).map(|_| {
        let rt = rt.clone();
        async move {
            let body = json!({"inputs": "Tell me a story about a dog.", "parameters": {"max_new_tokens": 30}});
            read_to_end(start_stream(&rt, "watched", body).await.unwrap().body).await
        }
    });
    for read in futures::future::join_all(streams).await {
        assert!(read.error.is_none(), "{:?}", read.error);
    }
    let cw = cloudwatch(&sim);
    let sum = |values: &Vec<f64>| values.iter().sum::<f64>();
    let max = |values: &Vec<f64>| values.iter().copied().fold(0.0, f64::max);
    let got = statistics(
        &cw,
        "watched",
        &[
            ("AWS/SageMaker", "Invocations", "Sum"),
            ("AWS/SageMaker", "ModelLatency", "SampleCount"),
            ("AWS/SageMaker", "ModelLatency", "Minimum"),
            ("AWS/SageMaker", "ConcurrentRequestsPerModel", "Maximum"),
            ("/aws/sagemaker/Endpoints", "GPUUtilization", "Maximum"),
            ("/aws/sagemaker/Endpoints", "GPUMemoryUtilization", "Maximum"),
            ("perfsize/Simulator", "OutputTokens", "Sum"),
            ("perfsize/Simulator", "InputTokens", "Sum"),
            ("perfsize/Simulator", "TimeToFirstToken", "SampleCount"),
            ("perfsize/Simulator", "InterTokenLatency", "SampleCount"),
            ("perfsize/Simulator", "InterTokenLatency", "p50"),
        ],
    )
    .await;
    assert_eq!(sum(&got[0]), 3.0, "a stream is an invocation");
    assert_eq!(sum(&got[1]), 3.0);
    assert!(max(&got[2]) >= 1_000_000.0, "ModelLatency covers the whole stream, in microseconds: {:?}", got[2]);
    assert!(max(&got[3]) > 0.0, "streams in flight are concurrent requests: {:?}", got[3]);
    assert!(max(&got[4]) > 0.0, "the GPU works while streams run: {:?}", got[4]);
    assert!(max(&got[5]) > 50.0, "the KV cache fills GPU memory beyond the weights: {:?}", got[5]);
    assert_eq!(sum(&got[6]), 90.0, "the simulator counts every token it sent");
    assert_eq!(sum(&got[7]), 21.0, "7 prompt tokens each");
    assert_eq!(sum(&got[8]), 3.0, "one time to first token per stream");
    assert_eq!(sum(&got[9]), 81.0, "one gap per token after each stream's first part of 3");
    // A gap is a decode step of the batch, spread over the part's tokens.
    assert!((20_000.0..200_000.0).contains(&max(&got[10])), "{:?}", got[10]);
    sim.stop().await;
}

/// boto3 reads a stream to the end, counting its tokens, and sees a broken
/// one end in ModelStreamError (tests/python/boto3_stream.py).
#[tokio::test]
async fn boto3_reads_streams_and_sees_model_stream_error() {
    let sim = simulator(llm_profile()).await;
    let _turn = traffic_turn().await;
    crate::simulator::run_python("boto3_stream.py", &sim).await;
    sim.stop().await;
}

/// The sample LLM profile, served by a standalone `perfsize simulator`,
/// streams chat completions in parts of several tokens.
#[tokio::test]
async fn the_sample_llm_profile_streams_from_a_standalone_simulator() {
    let profile = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/simulator-llm.toml");
    let sim = SimulatorProcess::start(profile);
    let sm = sim.client();
    deploy(&sm, "sample", "ml.g5.xlarge", 1).await;
    assert_eq!(wait_while(&sm, "sample", "Creating").await, "InService");
    let rt = sim.runtime();
    let body = json!({"messages": [{"role": "user", "content": "Write a haiku."}], "max_tokens": 9});
    let read = read_to_end(start_stream(&rt, "sample", body).await.expect("the stream starts").body).await;
    assert!(read.error.is_none(), "{:?}", read.error);
    let events = read.events();
    let usage = &events[events.len() - 2]["usage"];
    assert_eq!(usage["completion_tokens"], 9);
    assert!(read.parts.len() < 9 + 1, "several tokens a part: {} parts", read.parts.len());
}
