//! The serverless part of a run's conclusion: the configuration the search
//! verified, costed at the user's traffic from what its steps measured; its
//! cold-start test; and instances against serverless on the same month.

use crate::cost::compare::{self, Comparison, InstanceBill, ServerlessBill};
use crate::cost::round;
use crate::cost::traffic::TrafficProfile;
use crate::plan::Plan;
use crate::record::{ColdStartReport, Recommendation, ServerlessOutcome, ServerlessRecommendation};
use crate::result::{StepResult, histogram};
use crate::step::serverless::ServerlessConclusion;
use crate::vocab::{Candidate, Phase, ServerlessSize};

/// What the serverless search found, costed and with its cold start.
/// `day` is the user's traffic, which a plan with serverless candidates has.
pub(super) fn outcome(
    plan: &Plan,
    day: &TrafficProfile,
    conclusion: &ServerlessConclusion,
    steps: &[StepResult],
) -> ServerlessOutcome {
    let recommended = conclusion.recommended.map(|size| recommendation(plan, day, size, steps));
    let cold_start = conclusion.recommended.and_then(|size| cold_start(plan, size, steps));
    ServerlessOutcome { recommended, memory: conclusion.memory.clone(), cold_start }
}

/// The last step of `phase` on `size` (that passed, when `passed`).
fn last_step(steps: &[StepResult], size: ServerlessSize, phase: Phase, passed: bool) -> Option<&StepResult> {
    let on = Candidate::Serverless(size);
    steps.iter().rev().find(|s| s.phase == phase && (s.passed || !passed) && s.candidate().as_ref() == Some(&on))
}

fn recommendation(plan: &Plan, day: &TrafficProfile, size: ServerlessSize, steps: &[StepResult]) -> ServerlessRecommendation {
    let verified = last_step(steps, size, Phase::Endurance, true);
    let seconds_per_request = verified.map_or(0.0, billed_seconds);
    let bill = bill(plan, size, seconds_per_request);
    let per_month = bill.monthly(day);
    ServerlessRecommendation {
        configuration: size,
        verified_by_step: verified.map(|s| s.index),
        seconds_per_request,
        cost_per_month: round(per_month, 2),
        cost_per_million_inferences: round(per_month / day.monthly_requests().max(1.0) * 1e6, 4),
        idle_cost_per_hour: round(bill.prices.standing_per_hour(&size), 4),
    }
}

/// What AWS bills of one request: the model's time, as CloudWatch's average
/// ModelLatency says, or the client's median when CloudWatch had nothing.
fn billed_seconds(step: &StepResult) -> f64 {
    let server = step.cloudwatch.model_latency_ms.as_ref().map(|l| l.avg);
    let client = step.success_latency_ms.as_ref().map(|p| p.p50);
    server.or(client).unwrap_or(0.0) / 1000.0
}

/// The bill of `size` serving requests of `seconds`, with the plan's payloads
/// (request bytes: perfsize does not measure the answers' sizes).
fn bill(plan: &Plan, size: ServerlessSize, seconds: f64) -> ServerlessBill {
    let payloads = plan.traffic().payloads.payloads();
    let weight: f64 = payloads.iter().map(|p| p.weight).sum();
    let bytes = payloads.iter().map(|p| p.weight * p.body.len() as f64).sum::<f64>() / weight.max(f64::MIN_POSITIVE);
    let prices = plan.prices().serverless().expect("Plan::new checked serverless prices").clone();
    ServerlessBill { prices, size, seconds_per_request: seconds, bytes_per_request: bytes }
}

/// The cold-start test, judged apart: the burst's latency, and the share of
/// its requests that met a cold worker — by CloudWatch, and as the client saw it.
fn cold_start(plan: &Plan, size: ServerlessSize, steps: &[StepResult]) -> Option<ColdStartReport> {
    let burst = last_step(steps, size, Phase::ColdStart, false)?;
    let warm = last_step(steps, size, Phase::Endurance, true);
    let cw = &burst.cloudwatch;
    let cold_share_cloudwatch = match (cw.cold_starts, cw.invocations) {
        (Some(cold), Some(all)) if all > 0.0 => Some(round(cold / all, 4)),
        _ => None,
    };
    let slowest_warm_ms = warm.and_then(|w| w.latency_ms.map(|p| p.max));
    let cold_share_client = slowest_warm_ms.and_then(|ms| share_slower_than(burst, ms));
    Some(ColdStartReport {
        step: burst.index,
        idle_seconds: plan.search().serverless.as_ref().map_or(0.0, |w| w.idle.as_secs_f64()),
        p50_ms: burst.latency_ms.map(|p| p.p50),
        p99_ms: burst.latency_ms.map(|p| p.p99),
        cold_share_cloudwatch,
        cold_share_client,
        model_setup_time_ms: cw.model_setup_time_ms,
        passed: burst.passed,
        reasons: burst.reasons.clone(),
    })
}

/// The share of `step`'s requests slower than `ms`.
fn share_slower_than(step: &StepResult, ms: f64) -> Option<f64> {
    let h = histogram::decode(&step.histogram).ok()?;
    if h.is_empty() {
        return None;
    }
    let threshold = (ms * 1000.0) as u64 + 1;
    let slower = h.iter_recorded().filter(|v| v.value_iterated_to() >= threshold).map(|v| v.count_at_value()).sum::<u64>();
    Some(round(slower as f64 / h.len() as f64, 4))
}

/// Instances against serverless on the plan's month, when both found one.
pub(super) fn comparison(
    plan: &Plan,
    day: &TrafficProfile,
    instances: &Recommendation,
    scaled_minimum: Option<u32>,
    serverless: &ServerlessRecommendation,
) -> Comparison {
    let price_per_hour = instances.candidate().map_or(0.0, |fleet| plan.price(&fleet.instance_type));
    // What one instance was measured to sustain, with the margin the count was sized with.
    let per_instance_tps = (instances.capacity.at_least * plan.search().max_utilization)
        .max(plan.peak_tps().unwrap_or_else(|| day.busiest()) / f64::from(instances.instance_count.max(1)));
    let fleet = InstanceBill {
        price_per_hour,
        per_instance_tps,
        min_count: scaled_minimum.unwrap_or(1),
        scales: scaled_minimum.is_some(),
    };
    let serverless = bill(plan, serverless.configuration, serverless.seconds_per_request);
    compare::compare(day, &fleet, &serverless)
}
