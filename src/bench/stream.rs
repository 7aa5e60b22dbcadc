//! `perfsize bench stream`: what holding response streams costs the load
//! generator — how many streams one generator core holds at once while its
//! token timings stay true, and the CPU it spends per token received.
//!
//! The simulator (another process, on its own core when there are two)
//! serves an LLM that decodes every stream at a fixed 50 ms a step with no
//! batch limit, one token a PayloadPart — the most parts per token, the
//! worst case for the reader. Each concurrency of `--concurrencies` is held
//! as a closed loop for `--seconds`: the generator's CPU over the tokens
//! received, and its inter-token p50/p99 against the 50 ms the server keeps
//! (a generator that cannot keep up reads parts late, and its gaps spread).

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{SimulatorProcess, bench_environment, cpu_counters, deploy_one, own_cpu_seconds, steal_since};
use crate::environment::{Environment, RunId};
use crate::load::prompts::{StreamFormat, SyntheticPrompts};
use crate::load::{ClosedLoop, Driver, LoadSpec, Pacing, Target};
use crate::plan::Streaming;
use crate::result::histogram::Percentiles;
use crate::signals::Interrupts;
use crate::vocab::{StreamLimits, StreamRequirements};

/// Every decode step of the benchmark's model.
const DECODE_STEP_MS: f64 = 50.0;
/// A stream lasts a second: many start within each measured window.
const OUTPUT_TOKENS: u32 = 20;

const LLM: &str = r#"
deploy_seconds = 0.1
delete_seconds = 0.1
[llm]
tokens_per_chunk = 1
stream_timeout_seconds = 600.0
[llm.default]
gpus = 1
max_batch = 100000
kv_cache_tokens = 100000000
max_total_tokens = 100000
prefill_ms_per_token = 0.0
decode_step_ms = 50.0
decode_step_ms_per_sequence = 0.0
queue_limit = 100000
weights_memory_percent = 10.0
"#;

pub async fn stream(concurrencies: &[usize], seconds: f64, interrupts: &'static Interrupts) {
    let sim = SimulatorProcess::start(LLM).expect("the simulator starts");
    let pinned = super::capacity::pin(&sim);
    let session = sim.session(interrupts).await;
    let env = bench_environment(&session, &sim, RunId::generate());
    let limits = StreamLimits { ttft_ms: Some(60_000.0), token_pace: None, e2e_ms: None, min_tokens_per_second: None };
    let requirements = StreamRequirements::new(limits, 50.0, 100.0).expect("valid limits");
    let driver =
        session.invoke_stream(Streaming { requirements, characters_per_token: 4.0 }).await.expect("static credentials sign");
    let prompts = SyntheticPrompts {
        prompt_tokens: 16,
        output_tokens: OUTPUT_TOKENS,
        spread_percent: 0.0,
        format: StreamFormat::Tgi,
        characters_per_token: 4.0,
        seed: 1,
    };
    let payloads = std::sync::Arc::new(prompts.mix().expect("synthetic prompts"));
    println!(
        "streams held by the generator ({OUTPUT_TOKENS} tokens a stream, one a part, {DECODE_STEP_MS} ms a token, {seconds} s per concurrency{})",
        if pinned { "; generator on core 0, simulator on core 1" } else { "" }
    );
    println!(
        "  {:>8} {:>10} {:>10} {:>14} {:>10} {:>22} {:>22} {:>7} {:>7}",
        "streams",
        "tokens/s",
        "gen CPU",
        "CPU per token",
        "sim CPU",
        "perfsize ITL p50/p99",
        "simulator ITL p50/p99",
        "errors",
        "steal"
    );
    for &concurrency in concurrencies {
        // An endpoint each: the simulator's own figures are then this concurrency's alone.
        let name = deploy_one(&env, "ml.g5.xlarge").await;
        let spec = LoadSpec {
            target: Target { endpoint: name.clone(), runtime_url: sim.url.clone() },
            pacing: Pacing::Closed(ClosedLoop { concurrency, length: Duration::from_secs_f64(seconds + 2.0) }),
            warmup: Duration::from_secs(2),
            payloads: std::sync::Arc::clone(&payloads),
            content_type: "application/json".into(),
            accept: "application/json".into(),
            request_timeout: Duration::from_secs(120),
        };
        let (cpu, sim_cpu, steal, started) = (own_cpu_seconds(), sim.cpu_seconds(), cpu_counters(), Instant::now());
        let run = driver.drive(spec, CancellationToken::new(), None).await.expect("the streams run");
        let wall = started.elapsed().as_secs_f64();
        let (cpu, sim_cpu, steal) = (own_cpu_seconds() - cpu, sim.cpu_seconds() - sim_cpu, steal_since(steal));
        let recording = run.streaming.expect("a streaming run records streams");
        // Tokens of the measured window only; CPU over the whole run, warm-up
        // included, so per token it errs high.
        let tokens_per_second = recording.output_tokens as f64 / seconds;
        let all_tokens = tokens_per_second * wall;
        let itl = Percentiles::of(&recording.itl);
        // Each second's figures are published once it is over.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let truth = simulator_percentiles(&session, &name, "InterTokenLatency").await;
        let ttft_truth = simulator_percentiles(&session, &name, "TimeToFirstToken").await;
        let ttft = Percentiles::of(&recording.ttft);
        println!(
            "  {concurrency:>8} {tokens_per_second:>10.0} {:>9.0}% {:>11.1} µs {:>9.0}% {:>22} {:>22} {:>7} {steal:>6.1}%",
            cpu / wall * 100.0,
            cpu / all_tokens.max(1.0) * 1e6,
            sim_cpu / wall * 100.0,
            itl.map_or("–".into(), |p| format!("{:.1} / {:.1} ms", p.p50, p.p99)),
            truth.map_or("–".into(), |(p50, p99)| format!("{p50:.1} / {p99:.1} ms")),
            run.totals.counts.failed,
        );
        println!(
            "  {:>8} TTFT p50/p99: perfsize {} · simulator {}",
            "",
            ttft.map_or("–".into(), |p| format!("{:.1} / {:.1} ms", p.p50, p.p99)),
            ttft_truth.map_or("–".into(), |(p50, p99)| format!("{p50:.1} / {p99:.1} ms"))
        );
    }
    println!(
        "  the server decodes every {DECODE_STEP_MS} ms; the simulator's ITL is when it handed each part to the connection (warm-up included)"
    );
    let _ = env.teardown().await;
}

/// The simulator's own p50 and p99 (ms) of `metric` (namespace
/// perfsize/Simulator, microseconds) over everything `endpoint` served.
async fn simulator_percentiles(session: &crate::engine::Session, endpoint: &str, metric: &str) -> Option<(f64, f64)> {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
    // One period, aligned far in the past, holds the whole benchmark.
    const ONE_PERIOD: i32 = 999_999_960;
    let now = std::time::SystemTime::now();
    let metric = Metric::builder()
        .namespace("perfsize/Simulator")
        .metric_name(metric)
        .dimensions(Dimension::builder().name("EndpointName").value(endpoint).build())
        .dimensions(Dimension::builder().name("VariantName").value(crate::sagemaker::VARIANT_NAME).build())
        .build();
    let mut request = session
        .aws
        .cloudwatch
        .get_metric_data()
        .start_time(DateTime::from(now - Duration::from_secs(3600)))
        .end_time(DateTime::from(now + Duration::from_secs(60)));
    for stat in ["p50", "p99"] {
        let stat_query = MetricStat::builder().metric(metric.clone()).period(ONE_PERIOD).stat(stat).build();
        request = request.metric_data_queries(MetricDataQuery::builder().id(stat).metric_stat(stat_query).build());
    }
    let out = request.send().await.ok()?;
    let value = |id: &str| {
        let result = out.metric_data_results().iter().find(|r| r.id() == Some(id))?;
        result.values().first().map(|us| us / 1000.0)
    };
    Some((value("p50")?, value("p99")?))
}
