//! perfsize's streaming (LLM) load, checked against the simulator's own
//! truth: time to first token and inter-token latency as perfsize measures
//! them match what the simulator recorded for the same streams (CloudWatch
//! `perfsize/Simulator`), parts of several tokens counting as several;
//! goodput judges the step; mid-stream failures count by kind; a closed
//! loop holds its streams; credentials refused as expired are renewed and the
//! stream sent again; bad streaming inputs exit 2 before deploying.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use perfsize::cli::exit;
use perfsize::load::prompts::{StreamFormat, SyntheticPrompts};
use perfsize::load::{
    Arrivals, ClosedLoop, Driver, InvokeStream, LoadError, LoadRun, LoadSpec, OpenModel, Pacing, RateProfile, RequestSigner,
    Shard, StreamOptions, Target,
};
use perfsize::result::{Miss, StepContext, StepResult};
use perfsize::simulator::{Profile, RunningSimulator};
use perfsize::vocab::{Candidate, Phase, StreamLimits, StreamRequirements, TokenPace};
use tokio_util::sync::CancellationToken;

use crate::streaming::endpoint;
use crate::support::*;

/// An LLM whose first token takes about 20 ms (100 prompt tokens at 0.2 ms)
/// and each decode step 15 ms, three tokens a part; ml.g5.2xlarge breaks
/// every stream, ml.g5.4xlarge fails inside SageMaker.
fn llm_profile() -> Profile {
    llm_profile_with("")
}

/// [`llm_profile`] with `more` tables (`[[faults]]`, say) after its own.
fn llm_profile_with(more: &str) -> Profile {
    fast_profile(&format!(
        r#"
        [llm]
        tokens_per_chunk = 3
        stream_timeout_seconds = 30.0
        [llm.default]
        gpus = 1
        max_batch = 16
        kv_cache_tokens = 100000
        max_total_tokens = 4096
        prefill_ms_per_token = 0.2
        decode_step_ms = 15.0
        decode_step_ms_per_sequence = 0.2
        queue_limit = 64
        weights_memory_percent = 50.0
        [llm.instance_types."ml.g5.2xlarge"]
        stream_broken_rate = 1.0
        [llm.instance_types."ml.g5.4xlarge"]
        internal_failure_rate = 1.0
        {more}
        "#,
    ))
}

fn limits(ttft_ms: f64, itl_ms: f64) -> StreamLimits {
    StreamLimits {
        ttft_ms: Some(ttft_ms),
        token_pace: Some(TokenPace::InterTokenP99 { ms: itl_ms }),
        e2e_ms: None,
        min_tokens_per_second: None,
    }
}

fn driver(sim: &RunningSimulator, limits: StreamLimits) -> InvokeStream {
    let signer = RequestSigner::fixed(aws_credential_types::Credentials::new("AKID", "secret", None, None, "test"), REGION);
    InvokeStream::new(sim.url(), signer, StreamOptions { limits, characters_per_token: 4.0 })
}

/// Synthetic TGI prompts of 100 tokens asking for 30, no warm-up.
fn spec(sim: &RunningSimulator, endpoint: &str, pacing: Pacing) -> LoadSpec {
    let prompts = SyntheticPrompts {
        prompt_tokens: 100,
        output_tokens: 30,
        spread_percent: 0.0,
        format: StreamFormat::Tgi,
        characters_per_token: 4.0,
        seed: 1,
    };
    LoadSpec {
        target: Target { endpoint: endpoint.into(), runtime_url: sim.url() },
        pacing,
        warmup: Duration::ZERO,
        payloads: Arc::new(prompts.mix().unwrap()),
        content_type: "application/json".into(),
        accept: "application/json".into(),
        request_timeout: Duration::from_secs(20),
    }
}

fn open(tps: f64, seconds: u64) -> Pacing {
    Pacing::Open(OpenModel {
        rate: RateProfile::new(tps, None, Duration::from_secs(seconds)),
        arrivals: Arrivals::Uniform,
        seed: 1,
        max_in_flight: 32,
        shard: Shard::WHOLE,
    })
}

fn judged(run: &LoadRun, endpoint: &str, requirements: StreamRequirements) -> StepResult {
    let context = StepContext {
        index: 1,
        phase: Phase::Load,
        simulated: true,
        endpoint_name: endpoint.into(),
        candidate: Some(Candidate::new("ml.g5.xlarge".parse().unwrap(), 1)),
        target_tps: 0.0,
        warmup_seconds: 0.0,
        requirements: requirements.envelope(),
        horizon: Duration::from_secs(600),
        steady_from: None,
        streaming: Some(requirements),
    };
    StepResult::from_run(context, run)
}

/// The simulator's own statistic of `name` (namespace perfsize/Simulator)
/// over everything `endpoint` served: one period wide enough for all of it.
async fn truth(sim: &RunningSimulator, endpoint: &str, name: &str, stat: &str) -> Option<f64> {
    const ONE_PERIOD: i32 = 999_999_960;
    let now = std::time::SystemTime::now();
    let metric = Metric::builder()
        .namespace("perfsize/Simulator")
        .metric_name(name)
        .dimensions(Dimension::builder().name("EndpointName").value(endpoint).build())
        .dimensions(Dimension::builder().name("VariantName").value("AllTraffic").build())
        .build();
    let stat = MetricStat::builder().metric(metric).period(ONE_PERIOD).stat(stat).build();
    let out = cloudwatch(sim)
        .get_metric_data()
        .start_time(DateTime::from(now - Duration::from_secs(600)))
        .end_time(DateTime::from(now + Duration::from_secs(60)))
        .metric_data_queries(MetricDataQuery::builder().id("q").metric_stat(stat).build())
        .send()
        .await
        .expect("GetMetricData");
    let values = out.metric_data_results().first()?.values().to_vec();
    assert!(values.len() <= 1, "one period holds the whole test: {values:?}");
    values.first().copied()
}

/// Waits until the simulator has published every stream (each second's
/// figures appear once the second is over).
async fn until_published(sim: &RunningSimulator, endpoint: &str, streams: u64) {
    for _ in 0..200 {
        if truth(sim, endpoint, "TimeToFirstToken", "SampleCount").await == Some(streams as f64) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the simulator never published {streams} streams");
}

// Two worker threads: the simulator and the reader each get one, as they
// would in two processes, rather than queueing behind each other's wake-ups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttft_and_itl_match_the_simulators_own_within_milliseconds_counting_every_token() {
    let _turn = traffic_turn().await;
    let sim = simulator(llm_profile()).await;
    endpoint(&sim, "truth", "ml.g5.xlarge").await;
    let requirements = StreamRequirements::new(limits(2_000.0, 1_000.0), 95.0, 1.0).unwrap();
    // A busy 2-core machine can hold the client back a millisecond or two
    // (other tests' threads): the distributions must match in one of two runs.
    let mut misses = Vec::new();
    for endpoint_name in ["truth", "truth-again"] {
        if endpoint_name != "truth" {
            endpoint(&sim, endpoint_name, "ml.g5.xlarge").await;
        }
        let (step, compared) = measure_against_truth(&sim, endpoint_name, requirements).await;
        misses = compared
            .into_iter()
            .filter(|(_, _, measured, truth_ms, bound)| (measured - truth_ms).abs() > *bound)
            .map(|(name, p, measured, truth_ms, _)| format!("{name} {p}: perfsize {measured} ms, simulator {truth_ms} ms"))
            .collect();
        let ttft = step.streaming.as_ref().and_then(|s| s.ttft_ms).expect("first tokens were measured");
        // The first part carries three tokens: 20 ms of prefill, then two decode steps of 15 ms.
        assert!((45.0..90.0).contains(&ttft.p50), "{ttft:?}");
        assert_eq!(step.streaming.as_ref().unwrap().goodput_percent, 100.0);
        assert!(step.passed, "{}", step.summary());
        if misses.is_empty() {
            break;
        }
    }
    assert!(misses.is_empty(), "{misses:?}");
    sim.stop().await;
}

/// One step of streams at 4/s on `endpoint`, its token counts checked
/// exactly against the simulator's, and its TTFT and ITL p50/p99 beside the
/// simulator's own: (name, percentile, perfsize's, simulator's, bound).
async fn measure_against_truth(
    sim: &RunningSimulator,
    endpoint: &str,
    requirements: StreamRequirements,
) -> (StepResult, Vec<(&'static str, &'static str, f64, f64, f64)>) {
    let run = driver(sim, requirements.limits)
        .drive(spec(sim, endpoint, open(4.0, 8)), CancellationToken::new(), None)
        .await
        .expect("the streams run");
    let step = judged(&run, endpoint, requirements);
    assert_eq!(step.failed, 0, "{}", step.summary());
    let stream = step.streaming.as_ref().expect("a streaming step has streaming figures");
    until_published(sim, endpoint, step.requests).await;

    // Every token counted: parts carry three, each counts.
    let output_truth = truth(sim, endpoint, "OutputTokens", "Sum").await.unwrap();
    assert_eq!(stream.output_tokens as f64, output_truth);
    assert_eq!(stream.output_tokens, 30 * step.requests, "the container's details report 30 a stream");
    let itl = stream.itl_ms.expect("gaps were measured");
    let gaps_truth = truth(sim, endpoint, "InterTokenLatency", "SampleCount").await.unwrap();
    assert_eq!(itl.count as f64, gaps_truth, "one gap per token after each stream's first part");
    assert_eq!(itl.count, 27 * step.requests, "a part of 3 tokens is 3 gaps");
    assert_eq!(stream.input_tokens as f64, truth(sim, endpoint, "InputTokens", "Sum").await.unwrap());

    // The same distributions, within 2 ms at p50 and 5 ms at p99.
    let ttft = stream.ttft_ms.expect("first tokens were measured");
    eprintln!("schedule slip p50 {} / p99 {} ms", step.generator.slip_p50_ms, step.generator.slip_p99_ms);
    let mut compared = Vec::new();
    for (name, measured, p, bound) in [
        ("TimeToFirstToken", ttft.p50, "p50", 2.0),
        ("TimeToFirstToken", ttft.p99, "p99", 5.0),
        ("InterTokenLatency", itl.p50, "p50", 2.0),
        ("InterTokenLatency", itl.p99, "p99", 5.0),
    ] {
        let truth_ms = truth(sim, endpoint, name, p).await.unwrap() / 1000.0;
        eprintln!("{name} {p}: perfsize {measured:.3} ms, simulator {truth_ms:.3} ms");
        compared.push((name, p, measured, truth_ms, bound));
    }
    (step, compared)
}

#[tokio::test]
async fn goodput_judges_a_closed_loop_and_stream_failures_count_by_kind() {
    let _turn = traffic_turn().await;
    let sim = simulator(llm_profile()).await;
    endpoint(&sim, "held", "ml.g5.xlarge").await;
    endpoint(&sim, "broken", "ml.g5.2xlarge").await;
    endpoint(&sim, "internal", "ml.g5.4xlarge").await;
    // A first token within 1 ms cannot happen: nothing is good.
    let tight = StreamRequirements::new(limits(1.0, 1_000.0), 90.0, 5.0).unwrap();
    let closed = Pacing::Closed(ClosedLoop { concurrency: 3, length: Duration::from_secs(3) });
    let run = driver(&sim, tight.limits).drive(spec(&sim, "held", closed), CancellationToken::new(), None).await.unwrap();
    let step = judged(&run, "held", tight);
    assert!(step.requests >= 6, "three streams of about half a second held for 3 s: {}", step.summary());
    assert_eq!(step.series.iter().map(|s| s.in_flight).max(), Some(3), "the loop holds its three");
    let stream = step.streaming.as_ref().unwrap();
    assert_eq!((stream.goodput_percent, stream.missed.ttft), (0.0, step.requests));
    assert!(step.misses.contains(&Miss::Goodput { measured_percent: 0.0, target_percent: 90.0 }), "{:?}", step.misses);
    assert!(!step.misses.iter().any(|m| matches!(m, Miss::Latency { .. })), "no latency percentile is judged");

    for (endpoint, code) in [("broken", "ModelStreamError/StreamBroken"), ("internal", "InternalStreamFailure")] {
        let requirements = StreamRequirements::new(limits(2_000.0, 1_000.0), 90.0, 5.0).unwrap();
        let run = driver(&sim, requirements.limits)
            .drive(spec(&sim, endpoint, open(3.0, 2)), CancellationToken::new(), None)
            .await
            .unwrap();
        let step = judged(&run, endpoint, requirements);
        assert_eq!(step.errors_by_code.get(code), Some(&step.requests), "{endpoint}: {:?}", step.errors_by_code);
        assert_eq!(step.streaming.as_ref().unwrap().missed.failed, step.requests);
        assert!(step.misses.iter().any(|m| matches!(m, Miss::Errors { .. })), "{:?}", step.misses);
    }
    sim.stop().await;
}

/// A signer whose credentials come from a source that hands out a new access
/// key at each fetch, as a role or an SSO session does; counts the fetches.
async fn rotating_signer(fetches: Arc<AtomicU64>) -> Arc<RequestSigner> {
    let source = aws_credential_types::credential_fn::provide_credentials_fn(move || {
        let n = fetches.fetch_add(1, Ordering::SeqCst);
        async move { Ok(aws_credential_types::Credentials::new(format!("AKIDROTATING{n}"), "secret", None, None, "test")) }
    });
    let source =
        perfsize::credentials::RenewableCredentials::new(aws_credential_types::provider::SharedCredentialsProvider::new(source));
    RequestSigner::new(source, REGION).await.unwrap()
}

/// Streams refused before they start because their key expired (every key
/// expires a second after its first stream) are sent again once the key is
/// renewed: the step completes with no refusal counted as the endpoint's
/// error. A key renewing cannot replace stops the run instead, naming the
/// refusals left.
#[tokio::test]
async fn streams_refused_as_expired_are_sent_again_with_renewed_credentials() {
    let _turn = traffic_turn().await;
    let faults = "
        [[faults]]
        operation = \"InvokeEndpointWithResponseStream\"
        seconds = [0.0, 100000.0]
        answer = \"ExpiredTokenException\"
        access_keys_older_than_seconds = 1.0
        ";
    let profile = llm_profile_with(faults);
    let sim = simulator(profile).await;
    endpoint(&sim, "renewed", "ml.g5.xlarge").await;
    let requirements = StreamRequirements::new(limits(2_000.0, 1_000.0), 95.0, 1.0).unwrap();
    let options = StreamOptions { limits: requirements.limits, characters_per_token: 4.0 };
    let fetches = Arc::new(AtomicU64::new(0));
    let signer = rotating_signer(Arc::clone(&fetches)).await;
    let driver = InvokeStream::new(sim.url(), Arc::clone(&signer), options);
    let spec = spec(&sim, "renewed", open(4.0, 4));
    let run = driver.drive(spec.clone(), CancellationToken::new(), None).await.expect("no refusal is left over");
    let step = judged(&run, "renewed", requirements);
    assert!(!step.errors_by_code.keys().any(|c| c.starts_with("ExpiredToken")), "{:?}", step.errors_by_code);
    assert_eq!(step.failed, 0, "every stream ran, sent again where refused: {}", step.summary());
    assert!(step.requests >= 12, "{}", step.summary());
    let renewals = signer.generation();
    assert!(renewals >= 2, "a key that expires every second was renewed during the step: {renewals} renewals");
    assert_eq!(fetches.load(Ordering::SeqCst), renewals + 1, "one fetch at the start, one per renewal");
    // The preflight renews too: the key last used is old by now.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    driver.preflight(&spec).await.expect("the preflight's refused stream is sent again");
    assert!(signer.generation() > renewals, "renewed for the preflight");

    // Static keys come back the same from a renewal: nothing to send again,
    // once the key is a second old.
    let fixed = RequestSigner::fixed(aws_credential_types::Credentials::new("AKIDSTATIC", "secret", None, None, "test"), REGION);
    match InvokeStream::new(sim.url(), fixed, options).drive(spec, CancellationToken::new(), None).await {
        Err(LoadError::CredentialsExpired { endpoint, refused }) => {
            assert_eq!(endpoint, "renewed");
            assert!(refused > 0);
        }
        other => panic!("refusals left stop the run: {:?}", other.map(|run| run.totals.errors_by_code)),
    }
    sim.stop().await;
}

/// Streaming inputs that cannot work exit 2 before anything is deployed.
#[tokio::test]
async fn bad_streaming_inputs_exit_2_before_deploying() {
    let base = ["load", "--simulate", "--instance-type", "ml.g5.xlarge", "--tps", "1", "--duration", "1s"];
    for (extra, says) in [
        (&["--stream", "--prompt-tokens", "10"][..], "needs at least one limit"),
        (&["--stream", "--ttft-p99-ms", "100", "--goodput", "150"][..], "--goodput"),
        (&["--stream", "--ttft-p99-ms", "100", "--prompt-tokens", "10", "--token-spread", "100"][..], "--token-spread"),
        (&["--stream", "--ttft-p99-ms", "100", "--prompt-tokens", "10", "--stream-format", "xml"][..], "not a stream format"),
        (&["--ttft-p99-ms", "100", "--prompt-tokens", "10"][..], "--stream"),
        (&["--stream", "--ttft-p99-ms", "100", "--itl-p99-ms", "5", "--tpot-p99-ms", "5"][..], "--tpot-p99-ms"),
        (&["--stream", "--ttft-p99-ms", "100", "--async", "--prompt-tokens", "10"][..], "--async"),
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let (code, message) = crate::cli::perfsize(&args).await;
        assert_eq!(code, exit::USAGE, "{extra:?}: {message}");
        assert!(message.contains(says), "{extra:?}: {message}");
    }
    let sizing = ["--simulate", "--type-walk", "ml.g5.xlarge", "--results-dir", "/nonexistent/never-written"];
    let stream = ["--stream", "--ttft-p99-ms", "100", "--prompt-tokens", "10"];
    for (extra, says) in [
        (&["--peak-concurrency", "8"][..], "--stream"),
        (&["--peak-concurrency", "0", "--stream", "--ttft-p99-ms", "100"][..], "number of streams"),
        (&["--peak-tps", "2", "--concurrency-walk", "2,4", "--stream", "--ttft-p99-ms", "100"][..], "--peak-concurrency"),
        (&["--peak-concurrency", "8", "--strategy", "perfsize"][..], "--strategy adaptive"),
        (&["--peak-concurrency", "8", "--traffic-profile", "peak-hours=4,off-peak-tps=1"][..], "--peak-tps"),
        (&["--peak-concurrency", "8", "--type-walk", "serverless:2048"][..], "peak rate"),
    ] {
        let mut args = sizing.to_vec();
        args.extend_from_slice(extra);
        if extra.contains(&"--strategy") || extra.contains(&"--traffic-profile") || extra.contains(&"serverless:2048") {
            args.extend_from_slice(&stream);
        }
        let (code, message) = crate::cli::perfsize(&args).await;
        assert_eq!(code, exit::USAGE, "{extra:?}: {message}");
        assert!(message.contains(says), "{extra:?}: {message}");
    }
}

/// An LLM profile for sizing: ml.g5.xlarge serves one stream at a time
/// (a few requests a second an instance), ml.g5.2xlarge batches sixteen —
/// barely dearer an hour, far cheaper a token.
const SIZING_PROFILE: &str = r#"
deploy_seconds = 0.2
delete_seconds = 0.1
[llm]
tokens_per_chunk = 2
[llm.default]
gpus = 1
max_batch = 16
kv_cache_tokens = 100000
max_total_tokens = 4096
prefill_ms_per_token = 0.1
decode_step_ms = 15.0
decode_step_ms_per_sequence = 0.1
queue_limit = 64
weights_memory_percent = 50.0
[llm.instance_types."ml.g5.xlarge"]
max_batch = 1
"#;

/// `perfsize load --stream` by concurrency, OpenAI chat prompts: the step
/// says its goodput, its token counts (reported by the `usage` chunk) and
/// its distributions.
#[tokio::test]
async fn perfsize_load_streams_chat_prompts_at_a_concurrency() {
    let _turn = traffic_turn().await;
    let dir = crate::cli::scratch("stream-load");
    let profile = dir.join("profile.toml");
    std::fs::write(&profile, SIZING_PROFILE).unwrap();
    let json = dir.join("step.json");
    let args = [
        "load",
        "--simulate",
        "--sim-profile",
        profile.to_str().unwrap(),
        "--instance-type",
        "ml.g5.2xlarge",
        "--stream",
        "--stream-format",
        "chat",
        "--prompt-tokens",
        "40",
        "--output-tokens",
        "12",
        "--token-spread",
        "50",
        "--ttft-p99-ms",
        "1000",
        "--tpot-p99-ms",
        "200",
        "--min-tokens-per-second",
        "5",
        "--concurrency",
        "3",
        "--duration",
        "2s",
        "--warmup",
        "0.5s",
        "--json",
        json.to_str().unwrap(),
    ];
    let (code, error) = crate::cli::perfsize(&args).await;
    assert_eq!(code, exit::OK, "{error}");
    let step: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let stream = &step["streaming"];
    assert_eq!(stream["goodput_percent"], 100.0, "{stream:#}");
    assert_eq!(stream["token_counting"]["source"], "reported", "OpenAI's usage chunk counts the tokens");
    assert_eq!(stream["requirements"]["limits"]["token_pace"]["kind"], "per_output_token");
    let (requests, output) = (step["requests"].as_u64().unwrap(), stream["output_tokens"].as_u64().unwrap());
    assert!(requests >= 6, "{step:#}");
    assert!(output >= 6 * requests && output <= 18 * requests, "12 tokens ± 50% each: {output} for {requests}");
    for figure in ["ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"] {
        assert!(stream[figure]["p99"].as_f64().unwrap() > 0.0, "{figure}: {stream:#}");
    }
    assert_eq!(step["load_model"]["kind"], "closed-loop");
}

/// A peak of streams in flight and a peak rate, sized in one run: each
/// searched on its own axis — closed loops of whole streams for the first —
/// and the configuration recommended holds both.
#[tokio::test]
async fn simulated_sizing_by_streams_in_flight_and_rate_recommends_what_holds_both() {
    let _turn = traffic_turn().await;
    let dir = crate::cli::scratch("stream-concurrency-sizing");
    let profile = dir.join("profile.toml");
    std::fs::write(&profile, SIZING_PROFILE).unwrap();
    let results = dir.join("results");
    let args = [
        "--simulate",
        "--sim-profile",
        profile.to_str().unwrap(),
        "--stream",
        "--prompt-tokens",
        "32",
        "--output-tokens",
        "16",
        "--ttft-p99-ms",
        "400",
        "--itl-p99-ms",
        "100",
        "--peak-concurrency",
        "4",
        "--peak-tps",
        "2",
        "--type-walk",
        "ml.g5.xlarge,ml.g5.2xlarge",
        "--duration",
        "2s",
        "--warmup",
        "0.5s",
        "--endurance-duration",
        "2s",
        "--endurance-retries",
        "1",
        // A coarse bracket of the rate search's winner: what is asserted needs no finer figure.
        "--tps-resolution",
        "0.3",
        "--results-dir",
        results.to_str().unwrap(),
    ];
    let (code, error) = crate::cli::perfsize(&args).await;
    let run = std::fs::read_dir(&results).unwrap().next().expect("one run directory").unwrap().path();
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    let steps = summary["steps"].as_array().unwrap();
    let trace: String = steps
        .iter()
        .map(|s| format!("{} {}×{} {} {}\n", s["phase"], s["instance_type"], s["instance_count"], s["file"], s["passed"]))
        .collect();
    assert_eq!(code, exit::OK, "{error}\n{trace}");
    // One xlarge decodes one stream at a time: 2/s takes one, but 4
    // streams in flight take three or more. One 2xlarge batches them all.
    assert_eq!(summary["recommendation"]["instance_type"], "ml.g5.2xlarge", "{trace}");
    assert_eq!(summary["recommendation"]["instance_count"], 1, "{trace}");
    assert_eq!((summary["peak_tps"].as_f64(), summary["peak_concurrency"].as_u64()), (Some(2.0), Some(4)));
    let on_disk: Vec<String> = std::fs::read_dir(run.join("steps"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert!(on_disk.iter().any(|n| n.ends_with("tps.json")), "the rate search ran: {on_disk:?}");
    assert!(on_disk.iter().any(|n| n.ends_with("streams.json")), "and the search by streams: {on_disk:?}");
    let types = summary["types"].as_array().unwrap();
    let streams_capacity = types
        .iter()
        .find(|t| t["instance_type"] == "ml.g5.xlarge" && t["capacity"]["axis"] == "concurrency")
        .map(|t| t["capacity"]["at_least"].as_f64().unwrap());
    // The second stream waits out the first (16 steps of 15 ms) within the
    // 400 ms TTFT limit; a third waits twice as long.
    assert_eq!(streams_capacity, Some(2.0), "one xlarge holds two streams within the limits: {types:?}");
    let streaming = &summary["streaming"];
    assert_eq!(streaming["requirements"]["goodput_percent"], 95.0);
    assert!(steps.iter().all(|s| s["goodput_percent"].is_number()), "{trace}");
    let rec = &streaming["recommendation"];
    assert_eq!(rec["output_tokens_per_request"], 16.0, "the container reports 16 tokens a stream");
    let per_hour = summary["recommendation"]["cost_per_hour"].as_f64().unwrap();
    let per_million = rec["cost_per_million_output_tokens"].as_f64().unwrap();
    assert!((per_million - per_hour / (16.0 * 2.0 * 3600.0) * 1e6).abs() < 1e-3, "at the peak rate: {rec}");
    assert!(rec["cost_per_million_input_tokens"].as_f64().unwrap() > 0.0, "{rec}");
    let scaling = &rec["scaling"];
    assert_eq!(scaling["metric"], "ConcurrentRequestsPerModel");
    assert_eq!(scaling["concurrency_from"], "measured", "{scaling}");
    let held = scaling["concurrency_per_instance"].as_f64().unwrap();
    assert!(held >= 4.0, "one 2xlarge held the peak's streams: {scaling}");
    assert!((scaling["target_value"].as_f64().unwrap() - held * scaling["safety_factor"].as_f64().unwrap()).abs() < 1e-3);
    let candidates = streaming["candidates"].as_array().unwrap();
    assert_eq!(candidates[0]["instance_type"], "ml.g5.2xlarge", "cheapest per million output tokens first: {candidates:?}");
    let schema: serde_json::Value =
        serde_json::from_str(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/resources/summary.schema.json"))).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let problems: Vec<String> = validator.iter_errors(&summary).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(problems.is_empty(), "{problems:?}");
    let report = std::fs::read_to_string(run.join("report.html")).unwrap();
    for shown in [
        "2 TPS and 4 streams",
        "goodput vs offered rate",
        "TTFT p99 vs offered rate",
        "output tokens/s vs offered rate",
        "Output tokens/s per instance vs streams in flight per instance",
        "TTFT p99 vs streams in flight per instance",
        "Token timings by percentile",
        "per million output tokens",
        "ConcurrentRequestsPerModel",
        "requests met every limit",
    ] {
        assert!(report.contains(shown), "report.html shows {shown}");
    }
    // Nothing leaked: the run tore down every endpoint it deployed.
    assert!(summary.get("leftovers").is_none(), "{summary}");
}
