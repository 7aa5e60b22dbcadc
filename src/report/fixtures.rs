//! Test fixtures shared by the report's tests: steps with real histograms
//! and per-second series, and whole runs — one with a recommendation, one in
//! which nothing met the requirements — plus a hostile string to escape.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{CostKnown, RunData};
use crate::cost::{ConfigCost, RunCost};
use crate::load::recorder::new_histogram;
use crate::load::{LoadModel, SecondStats, StreamRecording};
use crate::record::{Autoscaling, Recommendation, RunStatus, ScalingAdvice, StepBrief, Summary, TypeOutcome};
use crate::result::cloudwatch::ServerLatency;
use crate::result::{Generator, Miss, Percentiles, ServerMetrics, StepResult, StreamResult, histogram};
use crate::step::{Capacity, StrategyKind, TypeSummary};
use crate::vocab::{Phase, Requirements, StreamLimits, StreamRequirements, TokenPace};

pub(super) const HOSTILE: &str = "<script>alert(1)</script>";
pub(super) const ESCAPED: &str = "&#60;script&#62;alert(1)&#60;/script&#62;";

pub(super) fn requirements() -> Requirements {
    Requirements::new(500.0, 99.0, 0.1).unwrap()
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap().with_timezone(&Utc)
}

/// A step whose requests took `base_ms` .. `base_ms × 3`, judged against the usual requirements.
pub(crate) fn step(index: u32, phase: Phase, instance_type: &str, count: u32, target_tps: f64, base_ms: u64) -> StepResult {
    let mut h = new_histogram();
    for i in 0..500u64 {
        h.record((base_ms * 1000) + i * base_ms * 4).unwrap();
    }
    let latency = Percentiles::of(&h);
    let judged = histogram::at_percentile(&h, 99.0);
    let r = requirements();
    let misses = match judged {
        Some(j) if j > r.latency_ms => vec![Miss::Latency { percentile: 99.0, measured_ms: j, limit_ms: r.latency_ms }],
        _ => Vec::new(),
    };
    let series = (0..6u32)
        .map(|second| SecondStats {
            second,
            warmup: second == 0,
            offered: target_tps as u64,
            completed: target_tps as u64,
            errors: 0,
            server_errors: 0,
            in_flight: target_tps as u64 / 10,
            p50_ms: Some(base_ms as f64 * 2.0),
            p99_ms: Some(base_ms as f64 * 3.0),
        })
        .collect();
    StepResult {
        index,
        phase,
        simulated: true,
        endpoint_name: format!("perfsize-test-{index}"),
        instance_type: instance_type.into(),
        serverless: None,
        max_concurrent_invocations: None,
        instance_count: count,
        target_tps,
        offered_tps: target_tps,
        achieved_tps: target_tps,
        started_at: t0(),
        ended_at: t0() + chrono::Duration::seconds(6),
        duration_seconds: 5.0,
        warmup_seconds: 1.0,
        requests: 500,
        succeeded: 500,
        failed: 0,
        error_percent: 0.0,
        latency_ms: latency,
        success_latency_ms: latency,
        judged_latency_ms: judged,
        errors_by_status: BTreeMap::new(),
        errors_by_code: BTreeMap::new(),
        generator: Generator {
            max_in_flight: 100,
            late_starts: 0,
            slip_p50_ms: 0.1,
            slip_p99_ms: 0.5,
            saturated: false,
            limited: None,
        },
        load_model: Default::default(),
        shard: None,
        stationarity: None,
        requirements: r,
        passed: misses.is_empty(),
        reasons: misses.iter().map(Miss::describe).collect(),
        misses,
        disturbance: None,
        remeasure_of: None,
        cloudwatch: ServerMetrics {
            available: true,
            note: None,
            period_seconds: 60,
            invocations: Some(500.0),
            invocations_4xx: Some(0.0),
            invocations_5xx: Some(0.0),
            model_latency_ms: Some(ServerLatency { avg: base_ms as f64, p50: None, p99: base_ms as f64 * 2.5 }),
            overhead_latency_ms: Some(ServerLatency { avg: 0.02, p50: None, p99: 0.1 }),
            cpu_utilization_avg: Some(80.0),
            memory_utilization_avg: Some(30.0),
            model_setup_time_ms: None,
            cold_starts: None,
            asynchronous: None,
        },
        series,
        asynchronous: None,
        streaming: None,
        histogram: histogram::encode(&h),
        success_histogram: histogram::encode(&h),
    }
}

/// `value` ms at every percentile and on average.
fn flat(value: f64) -> Percentiles {
    Percentiles { p50: value, p90: value, p95: value, p99: value, p99_9: value, max: value, mean: value, count: 100 }
}

/// A search step of `instance_type` × `count` that streamed under
/// `load_model` at `achieved_tps` requests a second: 100 streams of `e2e_ms`
/// end to end whose first token came after `ttft_ms`, `output_tps` output
/// tokens a second over every instance, all good.
#[allow(clippy::too_many_arguments)]
pub(crate) fn streaming_step(
    index: u32,
    instance_type: &str,
    count: u32,
    load_model: LoadModel,
    achieved_tps: f64,
    e2e_ms: u64,
    ttft_ms: u64,
    output_tps: f64,
) -> StepResult {
    let mut s = step(index, Phase::Search, instance_type, count, achieved_tps, e2e_ms);
    s.load_model = load_model;
    let limits = StreamLimits {
        ttft_ms: Some(1_000.0),
        token_pace: Some(TokenPace::InterTokenP99 { ms: 100.0 }),
        e2e_ms: None,
        min_tokens_per_second: None,
    };
    let requirements = StreamRequirements::new(limits, 95.0, 1.0).unwrap();
    let mut recording = StreamRecording::new(limits, 4.0);
    for i in 0..100 {
        recording.ttft.record(ttft_ms * 1000 + i).unwrap();
        recording.itl.record(20_000 + i).unwrap();
        recording.e2e.record(e2e_ms * 1000 + i).unwrap();
    }
    (recording.good, recording.judged, recording.reported_streams) = (100, 100, 100);
    recording.output_tokens = (output_tps * 10.0) as u64;
    let mut stream = StreamResult::of(&recording, requirements, 10.0);
    // Exact figures for the tests, where the histograms round.
    (stream.ttft_ms, stream.e2e_ms) = (Some(flat(ttft_ms as f64)), Some(flat(e2e_ms as f64)));
    s.streaming = Some(stream);
    s
}

fn outcome(instance_type: &str, price: f64, max_tps: Option<f64>, verdict: &str) -> TypeOutcome {
    TypeOutcome {
        summary: TypeSummary {
            instance_type: instance_type.parse().unwrap(),
            max_concurrent_invocations: None,
            capacity: max_tps.map(Capacity::bound),
            count_needed: max_tps.map(|_| 1),
            verified_count: max_tps.map(|_| 1),
            verdict: verdict.into(),
        },
        price_per_hour: price,
        cost_at_needed_count: max_tps.map(|_| ConfigCost {
            per_hour: price,
            per_month: price * 730.0,
            per_million_at_peak: 0.28,
        }),
    }
}

/// A completed run: two types searched, ml.c5.large × 1 verified at peak and recommended.
pub(crate) fn recommended_run() -> RunData {
    let steps = vec![
        step(1, Phase::Search, "ml.m5.large", 1, 50.0, 20),
        step(2, Phase::Search, "ml.c5.large", 1, 50.0, 15),
        step(3, Phase::Search, "ml.m5.large", 1, 100.0, 200),
        step(4, Phase::Search, "ml.c5.large", 1, 100.0, 40),
        step(5, Phase::Endurance, "ml.c5.large", 1, 100.0, 45),
    ];
    let recommendation = Recommendation {
        instance_type: "ml.c5.large".into(),
        instance_count: 1,
        cost_per_hour: 0.102,
        cost_per_month: 74.46,
        cost_per_million_inferences: 0.2833,
        capacity: Capacity::bound(100.0),
        verified_by_step: Some(5),
        autoscaling: ScalingAdvice::Invocations(Autoscaling::new(
            "YOUR-ENDPOINT",
            &crate::scaling::Policy::new(
                crate::scaling::ScalingMetric::Invocations,
                &crate::scaling::MeasuredCapacity { tps_per_instance: 100.0, latency_p50_ms: 0.0, latency_limit_ms: 500.0 },
                0.5,
                100.0,
                1,
                1,
                Default::default(),
            ),
            0.5,
        )),
        asynchronous: None,
    };
    let types = vec![
        outcome("ml.m5.large", 0.115, None, "fails at 100 TPS"),
        outcome("ml.c5.large", 0.102, Some(100.0), "100 TPS per instance — recommended"),
    ];
    run(steps, Some(recommendation), types)
}

/// A completed run in which every step missed a 10 ms limit.
pub(super) fn unmet_run() -> RunData {
    let mut data = recommended_run();
    data.summary.requirements = Requirements::new(10.0, 99.0, 0.1).unwrap();
    for s in &mut data.steps {
        s.requirements = data.summary.requirements;
        let measured_ms = s.judged_latency_ms.unwrap();
        s.misses = vec![Miss::Latency { percentile: 99.0, measured_ms, limit_ms: 10.0 }];
        s.reasons = s.misses.iter().map(Miss::describe).collect();
        s.passed = false;
    }
    data.summary.recommendation = None;
    data.summary.types = vec![
        outcome("ml.m5.large", 0.115, None, "one instance cannot sustain even 50 TPS"),
        outcome("ml.c5.large", 0.102, None, "one instance cannot sustain even 50 TPS"),
    ];
    data
}

fn run(steps: Vec<StepResult>, recommendation: Option<Recommendation>, types: Vec<TypeOutcome>) -> RunData {
    let summary = Summary {
        perfsize_version: "0.1.0".into(),
        run_id: "20260102-030405-abcd".into(),
        simulated: false,
        status: RunStatus::Completed,
        note: None,
        region: "us-east-1".into(),
        command_line: ["perfsize", "--peak-tps", "100", "--type-walk", "ml.m5.large,ml.c5.large"].map(String::from).to_vec(),
        started_at: t0(),
        ended_at: t0() + chrono::Duration::seconds(115),
        peak_tps: Some(100.0),
        peak_concurrency: None,
        requirements: requirements(),
        strategy: StrategyKind::Adaptive,
        prices: "resources/cost/us-east-1.json".into(),
        recommendation,
        types,
        steps: steps.iter().map(StepBrief::from).collect(),
        run_cost: RunCost { endpoint_hours: 0.05, dollars: 0.0052, wall_seconds: 115.0 },
        scaling: None,
        objects: None,
        leftovers: None,
        serverless: None,
        comparison: None,
        recommended_kind: None,
        streaming: None,
    };
    RunData { summary, plan: None, steps, trials: Vec::new(), cost: CostKnown::Complete }
}

/// `recommended_run` sized for 300 TPS on three ml.c5.large, with an
/// auto-scaling test that found a minimum of 2 (step 6 held, step 7 failed).
pub(super) fn scaled_run() -> RunData {
    use crate::record::{MetricVerdict, ScalingTrial, ScalingVerdict, Shape};
    use crate::scaling::{Activity, InstanceSample, Policy, ScalingMetric, Timeline};
    let mut data = recommended_run();
    let policy = |min| Policy {
        metric: ScalingMetric::Invocations,
        target: 3000.0,
        min,
        max: 6,
        scale_out_cooldown: std::time::Duration::from_secs(60),
        scale_in_cooldown: std::time::Duration::from_secs(300),
    };
    let mut trial = |index: u32, min: u32, passed: bool| {
        let mut step = step(index, Phase::Scaling, "ml.c5.large", min, 300.0, if passed { 40 } else { 900 });
        step.passed = passed;
        let samples = [
            InstanceSample { at_seconds: 0.0, in_service: min, desired: min },
            InstanceSample { at_seconds: 2.0, in_service: min, desired: min + 1 },
            InstanceSample { at_seconds: 4.0, in_service: min + 1, desired: min + 1 },
        ];
        let timeline = Timeline::build(&step.series, &samples, ScalingMetric::Invocations, 3000.0, 500.0);
        data.steps.push(step);
        ScalingTrial {
            index,
            shape: Shape::Ramp,
            policy: policy(min),
            endpoint: "perfsize-x-ml-c5-large-2".into(),
            started_at: t0(),
            passed,
            reasons: if passed { Vec::new() } else { vec!["p99 latency 900.0 ms is above the 500 ms limit".into()] },
            judged_latency_ms: Some(if passed { 40.0 } else { 900.0 }),
            error_percent: 0.0,
            requests: 1500,
            timeline,
            activities: vec![Activity {
                started_at: t0() + chrono::Duration::seconds(2),
                ended_at: Some(t0() + chrono::Duration::seconds(4)),
                description: format!("Setting desired instance count to {}.", min + 1),
                cause: "monitor alarm TargetTracking-AlarmHigh in state ALARM triggered policy perfsize-invocations-target"
                    .into(),
                status: "Successful".into(),
            }],
            cost_per_hour: 0.25,
            fixed_cost_per_hour: 0.306,
        }
    };
    let trials = vec![trial(6, 2, true), trial(7, 1, false)];
    data.summary.peak_tps = Some(300.0);
    let rec = data.summary.recommendation.as_mut().unwrap();
    rec.instance_count = 3;
    data.summary.scaling = Some(ScalingVerdict {
        fixed_count: 3,
        ramp_seconds: 60.0,
        hold_seconds: 30.0,
        metrics: vec![MetricVerdict {
            policy: policy(2),
            scales: true,
            trials: trials.iter().map(ScalingTrial::brief).collect(),
            spikes: Vec::new(),
            spike_min: None,
            suggestion: None,
        }],
        note: None,
        cost: RunCost { endpoint_hours: 0.1, dollars: 0.0102, wall_seconds: 400.0 },
    });
    data.summary.steps = data.steps.iter().map(StepBrief::from).collect();
    data.trials = trials;
    data
}
