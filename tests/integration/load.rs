//! The load manager against the simulator: real traffic at modest rates,
//! asserting behaviour (503s appear, p99 exceeds the stall), not tight timings.

use std::sync::Arc;
use std::time::Duration;

use perfsize::load::{
    Arrivals, Driver, InvokeEndpoint, LoadSpec, OpenModel, Pacing, Payload, PayloadMix, RateProfile, RequestSigner, Shard, Target,
};
use perfsize::result::{Miss, StepContext, StepResult};
use perfsize::simulator::RunningSimulator;
use perfsize::vocab::{Candidate, Phase, Requirements};
use tokio_util::sync::CancellationToken;

use crate::support::*;

struct Drive {
    tps: f64,
    seconds: f64,
    warmup: f64,
    ramp: Option<(f64, f64)>,
    arrivals: Arrivals,
    max_in_flight: usize,
}

impl Default for Drive {
    fn default() -> Self {
        Drive { tps: 40.0, seconds: 3.0, warmup: 0.5, ramp: None, arrivals: Arrivals::Uniform, max_in_flight: 200 }
    }
}

/// Deploys `name` on ml.m5.large × 1 and drives it; returns the judged step.
async fn drive(sim: &RunningSimulator, name: &str, how: Drive, requirements: Requirements) -> StepResult {
    let _turn = traffic_turn().await;
    let sm = sagemaker(sim);
    deploy(&sm, name, "ml.m5.large", 1).await;
    assert_eq!(wait_while(&sm, name, "Creating").await, "InService");
    let warmup = Duration::from_secs_f64(how.warmup);
    let spec = LoadSpec {
        target: Target { endpoint: name.to_string(), runtime_url: sim.url() },
        pacing: Pacing::Open(OpenModel {
            rate: RateProfile::new(
                how.tps,
                how.ramp.map(|(start, secs)| (start, Duration::from_secs_f64(secs))),
                warmup + Duration::from_secs_f64(how.seconds),
            ),
            arrivals: how.arrivals,
            seed: 7,
            max_in_flight: how.max_in_flight,
            shard: Shard::WHOLE,
        }),
        warmup,
        payloads: Arc::new(PayloadMix::new(vec![Payload::new("inline.json", &br#"{"x":1}"#[..], 1.0)]).unwrap()),
        content_type: "application/json".into(),
        accept: "application/json".into(),
        request_timeout: Duration::from_secs(10),
    };
    let signer = RequestSigner::fixed(aws_credential_types::Credentials::new("AKID", "secret", None, None, "test"), REGION);
    let driver = InvokeEndpoint::new(runtime(sim), sim.url(), signer);
    let run = driver.drive(spec, CancellationToken::new(), None).await.expect("load runs");
    let context = StepContext {
        index: 1,
        phase: Phase::Load,
        simulated: true,
        endpoint_name: name.to_string(),
        candidate: Some(Candidate::new("ml.m5.large".parse().unwrap(), 1)),
        target_tps: how.tps,
        warmup_seconds: how.warmup,
        requirements,
        horizon: Duration::from_secs(600),
        steady_from: None,
        streaming: None,
    };
    StepResult::from_run(context, &run)
}

fn lenient() -> Requirements {
    Requirements::new(1000.0, 99.0, 1.0).unwrap()
}

#[tokio::test]
async fn a_modest_rate_is_delivered_on_schedule_and_served() {
    let sim = simulator(fast_profile(
        r#"[instance_types."ml.m5.large"]
           workers = 4
           service_ms = { median = 10.0, p99 = 20.0 }"#,
    ))
    .await;
    let step = drive(&sim, "steady", Drive::default(), lenient()).await;
    assert!(step.passed, "{:?}", step.reasons);
    assert_eq!(step.requests, 120, "40 TPS × 3 s measured, warm-up excluded");
    assert_eq!(step.failed, 0);
    assert!((step.achieved_tps - 40.0).abs() < 2.0, "{}", step.achieved_tps);
    let p50 = step.latency_ms.unwrap().p50;
    assert!((9.0..200.0).contains(&p50), "client p50 is at least the service time: {p50}");
    assert!(!step.generator.saturated);
    assert!(step.series.iter().any(|s| s.warmup) && step.series.iter().any(|s| !s.warmup));
    sim.stop().await;
}

#[tokio::test]
async fn a_rate_above_capacity_fails_with_503s_and_a_long_p99_not_a_lower_rate() {
    // One worker of 25 ms serves 40/s; a queue of 8 holds 200 ms of work.
    let sim = simulator(fast_profile(
        r#"[instance_types."ml.m5.large"]
           workers = 1
           service_ms = { median = 25.0, p99 = 25.0 }
           queue_limit = 8"#,
    ))
    .await;
    let strict = Requirements::new(100.0, 99.0, 0.1).unwrap();
    let step = drive(&sim, "overload", Drive { tps: 120.0, ..Drive::default() }, strict).await;
    assert!(!step.passed);
    assert!(step.errors_by_code.get("ServiceUnavailable").copied().unwrap_or(0) > 50, "{:?}", step.errors_by_code);
    assert_eq!(step.errors_by_status.get("503"), step.errors_by_code.get("ServiceUnavailable"));
    assert!(step.misses.iter().any(|m| matches!(m, Miss::Errors { .. })), "{:?}", step.misses);
    assert!(step.misses.iter().any(|m| matches!(m, Miss::Latency { .. })), "queued requests make p99 long: {:?}", step.misses);
    assert!(!step.misses.iter().any(|m| matches!(m, Miss::Rate { .. })), "the rate was delivered: {:?}", step.misses);
    assert!(step.achieved_tps > 0.9 * step.offered_tps, "{} of {}", step.achieved_tps, step.offered_tps);
    assert!(step.judged_latency_ms.unwrap() > 150.0, "{:?}", step.judged_latency_ms);
    sim.stop().await;
}

#[tokio::test]
async fn a_server_stall_shows_in_the_percentiles() {
    // Every 2 s the instance stops serving for 0.6 s: requests due then wait.
    let sim = simulator(fast_profile(
        r#"[instance_types."ml.m5.large"]
           workers = 4
           service_ms = { median = 5.0, p99 = 10.0 }
           [stall]
           seconds = 0.6
           every_seconds = 2.0"#,
    ))
    .await;
    let step = drive(&sim, "stall", Drive { tps: 50.0, seconds: 4.0, ..Drive::default() }, lenient()).await;
    let latency = step.latency_ms.unwrap();
    assert!(latency.max >= 400.0, "a request due at the stall's start waits it out: max {}", latency.max);
    assert!(latency.p99 >= 250.0, "p99 reflects the stalled requests: {}", latency.p99);
    assert!(latency.p50 < 100.0, "most requests are not stalled: {}", latency.p50);
    sim.stop().await;
}

#[tokio::test]
async fn a_ramp_offers_the_integral_of_its_rate() {
    let sim = simulator(fast_profile("")).await;
    let how =
        Drive { tps: 60.0, seconds: 3.0, warmup: 0.0, ramp: Some((10.0, 2.0)), arrivals: Arrivals::Poisson, ..Drive::default() };
    let step = drive(&sim, "ramp", how, lenient()).await;
    // (10 + 60) / 2 × 2 s + 60 × 1 s = 130 expected arrivals; Poisson varies around it.
    assert!((90..=170).contains(&step.requests), "{}", step.requests);
    assert_eq!(step.failed, 0);
    sim.stop().await;
}

#[tokio::test]
async fn running_out_of_in_flight_slots_is_reported_as_the_generator_falling_behind() {
    let sim = simulator(fast_profile(
        r#"[instance_types."ml.m5.large"]
           workers = 8
           service_ms = { median = 100.0, p99 = 100.0 }"#,
    ))
    .await;
    // 40/s × 0.1 s needs 4 in flight; 2 cannot keep up.
    let step = drive(&sim, "starved", Drive { max_in_flight: 2, ..Drive::default() }, lenient()).await;
    assert!(step.generator.late_starts > 0);
    assert!(step.generator.saturated);
    assert!(step.misses.iter().any(|m| matches!(m, Miss::Generator { .. })), "{:?}", step.misses);
    assert!(step.latency_ms.unwrap().p99 > 200.0, "late starts count against latency from the intended start");
    sim.stop().await;
}
