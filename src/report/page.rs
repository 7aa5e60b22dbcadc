//! report.html: the run's report page. A run's data is turned into the view
//! models of the `report.html` template here — figures formatted (by
//! [`crate::format`]), misses measured, charts assembled by
//! [`super::page_charts`] — and askama lays them out: `report.html` extends
//! `base.html` (inline CSS and script, a Content-Security-Policy that forbids
//! every request) and calls the macros of `parts.html` (the one chart
//! template, the misses table).
//!
//! Every template is `.html`, so askama HTML-escapes every value, including
//! the ones inside the SVG charts: run ids, command lines, error codes and
//! server notes may come from anyone.

use std::collections::BTreeMap;

use askama::Template;
use chrono::{DateTime, Utc};

use super::charts::Chart;
use super::page_charts::{anchor, distribution_chart, latency_series_chart, overview_charts, rate_chart};
use super::scaling_page::ScalingSection;
use super::serverless_page::ServerlessSection;
use super::stream_charts;
use super::{CostKnown, RunData};
use crate::format::{duration, money, ms, percent, tps, trim_number};
use crate::load::AsyncFigures;
use crate::record::{AsyncRecommendation, AsyncRecord, Recommendation, RunStatus, ScalingAdvice, Summary, TypeOutcome};
use crate::result::cloudwatch::{AsyncServerMetrics, ServerLatency};
use crate::result::{MAX_LATE_SHARE, MIN_ACHIEVED_SHARE, Miss, StepResult, slip_limit_ms};
use crate::s3::Buckets;
use crate::step::Capacity;
use crate::vocab::{Axis, Phase, Requirements};

/// The run's report page.
pub fn render_report(data: &RunData) -> Result<String, askama::Error> {
    ReportPage::new(data).render()
}

#[derive(Template)]
#[template(path = "report.html", whitespace = "minimize")]
struct ReportPage {
    run_id: String,
    simulated: bool,
    partial: bool,
    status: StatusView,
    subtitle: String,
    verdict: VerdictView,
    facts: Vec<Fact>,
    command_line: String,
    overview: Vec<Chart>,
    steps: Vec<StepView>,
    version: String,
    /// The auto-scaling test, when one ran.
    scaling: Option<ScalingSection>,
    /// Serverless candidates, when the walk had them.
    serverless: Option<ServerlessSection>,
}

/// A labelled value.
struct Fact {
    label: String,
    value: String,
}

fn fact(label: impl Into<String>, value: impl Into<String>) -> Fact {
    Fact { label: label.into(), value: value.into() }
}

struct StatusView {
    label: &'static str,
    /// CSS class: ok, warn or bad.
    class: &'static str,
    note: Option<String>,
}

struct VerdictView {
    recommendation: Option<RecommendationView>,
    /// Without a recommendation: why, in a few words.
    headline: &'static str,
    /// One sentence: what the recommendation satisfies, or why there is none.
    explanation: String,
    candidates: Vec<CandidateView>,
    /// Without a recommendation: each candidate's closest attempt and what it missed.
    misses: Vec<CandidateMisses>,
}

struct RecommendationView {
    configuration: String,
    figures: Vec<Fact>,
    verified: Option<StepLink>,
    autoscaling: AutoscalingView,
}

struct AutoscalingView {
    summary: String,
    hint: Option<String>,
    commands: Vec<String>,
}

struct StepLink {
    anchor: String,
    label: String,
}

struct CandidateView {
    instance_type: String,
    price: String,
    max_tps: String,
    count_needed: String,
    verified: String,
    per_hour: String,
    per_month: String,
    per_million: String,
    verdict: String,
    recommended: bool,
}

struct CandidateMisses {
    instance_type: String,
    verdict: String,
    step: Option<StepLink>,
    misses: Vec<MissView>,
}

/// A missed requirement as a table row: what, measured, limit, by how much.
struct MissView {
    requirement: String,
    measured: String,
    limit: String,
    by: String,
}

/// One step: its row in the table and its detail section.
struct StepView {
    index: u32,
    anchor: String,
    heading: String,
    phase: &'static str,
    configuration: String,
    offered: String,
    achieved: String,
    p50: String,
    p90: String,
    p99: String,
    max: String,
    p99_over: bool,
    errors: String,
    errors_over: bool,
    passed: bool,
    reasons: Vec<String>,
    /// Where the burst of errors was, when the step was disturbed.
    disturbed: Option<String>,
    /// The disturbed step this one measures again.
    remeasure_of: Option<u32>,
    recommended: bool,
    server: Option<ServerView>,
    server_note: Option<String>,
    facts: Vec<Fact>,
    error_counts: Vec<Fact>,
    misses: Vec<MissView>,
    charts: Vec<Chart>,
}

/// The CloudWatch columns of a step.
struct ServerView {
    model_avg: String,
    model_p99: String,
    overhead_avg: String,
    cpu: String,
    memory: String,
}

impl ReportPage {
    fn new(data: &RunData) -> ReportPage {
        let s = &data.summary;
        let recommended_step = s.recommendation.as_ref().and_then(|r| r.verified_by_step);
        ReportPage {
            run_id: s.run_id.clone(),
            simulated: s.simulated,
            partial: data.partial(),
            status: status_view(s.status, s.note.clone()),
            subtitle: format!("{} · {} · {}", s.region, timestamp(s.started_at), duration(run_seconds(data))),
            verdict: verdict_view(data),
            facts: run_facts(data),
            command_line: shell_line(&s.command_line),
            overview: overview_charts(data).into_iter().chain(stream_charts::load_charts(data)).collect(),
            steps: data.steps.iter().map(|step| step_view(step, Some(step.index) == recommended_step)).collect(),
            version: s.perfsize_version.clone(),
            scaling: ScalingSection::new(data),
            serverless: ServerlessSection::new(data),
        }
    }
}

fn status_view(status: RunStatus, note: Option<String>) -> StatusView {
    let class = match status {
        RunStatus::Completed => "ok",
        RunStatus::Interrupted | RunStatus::BudgetReached => "warn",
        RunStatus::Failed => "bad",
    };
    StatusView { label: status_label(status), class, note }
}

fn status_label(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Completed => "completed",
        RunStatus::Interrupted => "interrupted",
        RunStatus::BudgetReached => "budget reached",
        RunStatus::Failed => "failed",
    }
}

/// The run's wall time: as the run measured it, else from its timestamps.
fn run_seconds(data: &RunData) -> f64 {
    let s = &data.summary;
    if s.run_cost.wall_seconds > 0.0 {
        s.run_cost.wall_seconds
    } else {
        (s.ended_at - s.started_at).num_milliseconds() as f64 / 1000.0
    }
}

/// "p99 ≤ 500 ms and errors ≤ 0.1% at 100 TPS".
fn requirements_sentence(r: &Requirements, peak: &str) -> String {
    format!("{} ≤ {} ms and errors ≤ {} at {peak}", r.percentile_label(), trim_number(r.latency_ms), percent(r.max_error_percent))
}

/// What the run was asked for, in a sentence: a streaming run's goodput
/// limits, or a latency percentile and an error budget; at its peak.
fn wanted_sentence(s: &Summary) -> String {
    match &s.streaming {
        Some(streaming) => stream_charts::requirements_sentence(&streaming.requirements, &s.peak_label()),
        None => requirements_sentence(&s.requirements, &s.peak_label()),
    }
}

fn verdict_view(data: &RunData) -> VerdictView {
    let s = &data.summary;
    let wanted = wanted_sentence(s);
    let candidates = candidate_views(data);
    match &s.recommendation {
        Some(rec) => VerdictView {
            headline: "",
            explanation: format!("The cheapest configuration measured to serve {wanted}."),
            recommendation: Some(recommendation_view(rec, data)),
            candidates,
            misses: Vec::new(),
        },
        None => {
            let serverless_found = s.serverless.as_ref().is_some_and(|sv| sv.recommended.is_some());
            let (headline, explanation) = match s.status {
                _ if serverless_found => (
                    "Serverless: see below",
                    format!("No instance configuration was verified to serve {wanted}; a serverless one was (below)."),
                ),
                RunStatus::Completed => ("Nothing met the requirements", format!("No configuration tried served {wanted}.")),
                _ => (
                    "No verdict: the run stopped early",
                    format!(
                        "The run stopped ({}) before any configuration was verified to serve {wanted}.",
                        status_label(s.status)
                    ),
                ),
            };
            VerdictView { recommendation: None, headline, explanation, candidates, misses: candidate_misses(data) }
        }
    }
}

fn recommendation_view(rec: &Recommendation, data: &RunData) -> RecommendationView {
    let verified = rec.verified_by_step.and_then(|index| data.steps.iter().find(|s| s.index == index)).map(|step| StepLink {
        anchor: anchor(step.index),
        label: format!(
            "step {}: {} for {}, {} {} ms, {} errors",
            step.index,
            step.load().label(),
            duration(step.duration_seconds),
            step.requirements.percentile_label(),
            step.judged_latency_ms.map_or("–".into(), ms),
            percent(step.error_percent)
        ),
    });
    let mut figures = vec![
        fact("per hour", money(rec.cost_per_hour)),
        fact("per month", money(rec.cost_per_month)),
        fact("per million inferences at peak", money(rec.cost_per_million_inferences)),
        fact(format!("max {} per instance, measured", rec.capacity.unit()), capacity_fact(&rec.capacity)),
    ];
    if let Some(a) = &rec.asynchronous {
        figures.extend(async_facts(a));
    }
    RecommendationView {
        configuration: format!("{} × {}", rec.instance_type, rec.instance_count),
        figures,
        verified,
        autoscaling: AutoscalingView {
            summary: scaling_summary(&rec.autoscaling, &rec.capacity),
            hint: rec
                .autoscaling
                .resource_id()
                .contains("YOUR-ENDPOINT")
                .then(|| "Replace YOUR-ENDPOINT with the name of your endpoint.".to_string()),
            commands: rec.autoscaling.commands(),
        },
    }
}

/// The policy in a sentence: its metric, target, where the target comes from, its bounds.
fn scaling_summary(advice: &ScalingAdvice, capacity: &Capacity) -> String {
    let bound = if capacity.is_bracketed() { "" } else { ", a lower bound: the target is conservative" };
    match advice {
        ScalingAdvice::Invocations(a) => format!(
            "Target tracking on {}: {} invocations per instance per minute ({} of {}), from {} to {} instances.",
            a.metric,
            a.target_invocations_per_instance,
            percent(a.safety_factor * 100.0),
            match capacity.axis {
                Axis::Rate => format!("the measured {} TPS per instance{bound}", capacity.figure()),
                Axis::Concurrency => format!("the rate one instance completed holding {} streams", capacity.figure()),
            },
            a.min_instances,
            a.max_instances
        ),
        ScalingAdvice::Backlog(b) => format!(
            "Target tracking on {}: {} requests waiting per instance (what {} TPS per instance{bound} completes in {} of the end-to-end limit), from {} to {} instances{}.",
            b.metric,
            trim_number(b.target_backlog_per_instance),
            capacity.figure(),
            percent(b.safety_factor * 100.0),
            b.min_instances,
            b.max_instances,
            if b.step_policy.is_some() {
                "; at zero instances a step policy on the HasBacklogWithoutCapacity alarm adds the first one"
            } else {
                ""
            }
        ),
    }
}

/// An asynchronous recommendation's cost per request and standing idle.
fn async_facts(a: &AsyncRecommendation) -> Vec<Fact> {
    let mut facts = Vec::new();
    if let Some(c) = &a.cost_per_1000_requests {
        facts.push(fact(
            format!(
                "per 1,000 requests at peak: endpoint {} + S3 requests {} + S3 storage {}",
                money(c.endpoint),
                money(c.s3_requests),
                money(c.s3_storage)
            ),
            money(c.total),
        ));
    }
    if let Some(n) = a.s3_requests_per_inference {
        facts.push(fact("S3 requests per inference", trim_number(n)));
    }
    if let Some(month) = a.cost_per_month_at_peak {
        facts.push(fact("per month at peak, with S3", money(month)));
    }
    facts.push(fact("idle, per hour", money(a.idle_cost_per_hour)));
    facts.push(fact(
        "MaxConcurrentInvocationsPerInstance",
        a.max_concurrent_invocations_per_instance.map_or("SageMaker's choice".into(), |n| n.to_string()),
    ));
    facts
}

/// One instance's capacity as a fact: "118 (fails at 121)", "≥ 100 (a lower bound)".
fn capacity_fact(c: &Capacity) -> String {
    match c.below {
        Some(below) => format!("{} (fails at {})", tps(c.at_least), tps(below)),
        None => format!("{} (a lower bound)", c.figure()),
    }
}

/// Every instance type the run considered. A run killed before its summary
/// has no per-type outcomes: the types then come from the plan or the steps.
fn candidate_views(data: &RunData) -> Vec<CandidateView> {
    let s = &data.summary;
    if !s.types.is_empty() {
        let recommended = s.recommendation.as_ref().map(|r| {
            let mci = r.asynchronous.as_ref().and_then(|a| a.max_concurrent_invocations_per_instance);
            (r.instance_type.as_str(), mci)
        });
        let is_recommended =
            |t: &TypeOutcome| recommended == Some((t.summary.instance_type.as_str(), t.summary.max_concurrent_invocations));
        return s.types.iter().map(|t| outcome_view(t, is_recommended(t))).collect();
    }
    type_names(data)
        .into_iter()
        .map(|instance_type| CandidateView {
            instance_type,
            price: "–".into(),
            max_tps: "–".into(),
            count_needed: "–".into(),
            verified: "–".into(),
            per_hour: "–".into(),
            per_month: "–".into(),
            per_million: "–".into(),
            verdict: "no conclusion: the run stopped before it".into(),
            recommended: false,
        })
        .collect()
}

fn outcome_view(t: &TypeOutcome, recommended: bool) -> CandidateView {
    let cost = t.cost_at_needed_count.as_ref();
    let count = |c: Option<u32>| c.map_or("–".to_string(), |c| c.to_string());
    CandidateView {
        instance_type: t.summary.label(),
        price: money(t.price_per_hour),
        // The column is in TPS: a capacity in streams says so.
        max_tps: t.summary.capacity.map_or("–".into(), |c| match c.axis {
            Axis::Rate => c.figure(),
            Axis::Concurrency => format!("{} {}", c.figure(), c.unit()),
        }),
        count_needed: count(t.summary.count_needed),
        verified: count(t.summary.verified_count),
        per_hour: cost.map_or("–".into(), |c| money(c.per_hour)),
        per_month: cost.map_or("–".into(), |c| money(c.per_month)),
        per_million: cost.map_or("–".into(), |c| money(c.per_million_at_peak)),
        verdict: t.summary.verdict.clone(),
        recommended,
    }
}

/// Instance types in the order the run first used them.
fn type_names(data: &RunData) -> Vec<String> {
    let planned = data.plan.iter().flat_map(|p| p.search.types.iter().map(|t| t.to_string()));
    // Serverless steps have their own section.
    let measured = data.steps.iter().filter(|s| s.serverless.is_none()).map(|s| s.instance_type.clone());
    let mut names: Vec<String> = Vec::new();
    for name in planned.chain(measured) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

fn candidate_misses(data: &RunData) -> Vec<CandidateMisses> {
    let verdicts: BTreeMap<String, String> =
        data.summary.types.iter().map(|t| (t.summary.instance_type.to_string(), t.summary.verdict.clone())).collect();
    type_names(data)
        .into_iter()
        .map(|instance_type| {
            let closest = closest_failure(&data.steps, &instance_type);
            CandidateMisses {
                verdict: verdicts.get(&instance_type).cloned().unwrap_or_else(|| "not concluded".into()),
                step: closest.map(|s| StepLink { anchor: anchor(s.index), label: step_heading(s) }),
                misses: closest.map(|s| s.misses.iter().map(|m| miss_view(m, &s.requirements)).collect()).unwrap_or_default(),
                instance_type,
            }
        })
        .collect()
}

/// The failed step of a type that says most about why it failed: at peak the
/// last endurance run decides; before that, the search step that came
/// closest to meeting the requirements.
fn closest_failure<'a>(steps: &'a [StepResult], instance_type: &str) -> Option<&'a StepResult> {
    let failed = || steps.iter().filter(move |s| s.instance_type == instance_type && !s.passed);
    failed().rfind(|s| s.phase == Phase::Endurance).or_else(|| failed().min_by(|a, b| shortfall(a).total_cmp(&shortfall(b))))
}

/// How far a step is from passing: its worst miss, relative to the limit.
fn shortfall(step: &StepResult) -> f64 {
    step.misses
        .iter()
        .map(|m| match *m {
            Miss::Latency { measured_ms, limit_ms, .. } => measured_ms / limit_ms - 1.0,
            Miss::Errors { measured_percent, limit_percent } => (measured_percent - limit_percent) / limit_percent.max(0.01),
            Miss::Rate { achieved_tps, offered_tps } => 1.0 - achieved_tps / (MIN_ACHIEVED_SHARE * offered_tps),
            // How far the queue grew relative to where it started.
            Miss::Unsustainable { in_flight_from, in_flight_to, .. } => in_flight_to / in_flight_from.max(1.0) - 1.0,
            Miss::Goodput { measured_percent, target_percent } => 1.0 - measured_percent / target_percent.max(0.01),
            // Not a measurement of the endpoint: the last resort as a "closest attempt".
            Miss::Generator { .. } | Miss::NoTraffic | Miss::Interrupted => f64::INFINITY,
        })
        .fold(0.0, f64::max)
}

fn miss_view(m: &Miss, r: &Requirements) -> MissView {
    let row = |requirement: String, measured: String, limit: String, by: String| MissView { requirement, measured, limit, by };
    match *m {
        Miss::Latency { percentile, measured_ms, limit_ms } => row(
            format!("p{} latency", trim_number(percentile)),
            format!("{} ms", ms(measured_ms)),
            format!("≤ {} ms", trim_number(limit_ms)),
            format!("+{} ms (+{:.0}%)", ms(measured_ms - limit_ms), (measured_ms / limit_ms - 1.0) * 100.0),
        ),
        Miss::Errors { measured_percent, limit_percent } => row(
            "errors".into(),
            percent(measured_percent),
            format!("≤ {}", percent(limit_percent)),
            format!("+{} points", trim_number(measured_percent - limit_percent)),
        ),
        Miss::Rate { achieved_tps, offered_tps } => {
            let needed = MIN_ACHIEVED_SHARE * offered_tps;
            row(
                "throughput".into(),
                format!("{} TPS", tps(achieved_tps)),
                format!("≥ {} TPS ({} of {} offered)", tps(needed), percent(MIN_ACHIEVED_SHARE * 100.0), tps(offered_tps)),
                format!("−{} TPS (−{:.0}%)", tps(needed - achieved_tps), (1.0 - achieved_tps / needed) * 100.0),
            )
        }
        Miss::Generator { limited: Some(limit), .. } => row(
            "load generator".into(),
            format!("sent {} TPS of {} offered", tps(limit.reached_tps), tps(limit.offered_tps)),
            "the offered rate".into(),
            "generator-limited: the endpoint was not measured at the offered rate".into(),
        ),
        Miss::Generator { late_starts, slip_p99_ms, limited: None } => row(
            "load generator".into(),
            format!("{late_starts} late starts, slip p99 {} ms", ms(slip_p99_ms)),
            format!("≤ {} late, slip p99 ≤ {} ms", percent(MAX_LATE_SHARE * 100.0), trim_number(slip_limit_ms(r))),
            "the generator, not the endpoint, set the pace".into(),
        ),
        Miss::Unsustainable { in_flight_from, in_flight_to, seconds, latency_ratio, projected_latency_ms, horizon_seconds } => {
            row(
                "sustainable rate".into(),
                format!(
                    "in flight {in_flight_from:.0} → {in_flight_to:.0} over {seconds} s{}",
                    latency_ratio.map_or(String::new(), |r| format!(", latency ×{r:.1}"))
                ),
                "work in flight level through the step".into(),
                format!(
                    "{} {} ms after {} at this rate",
                    r.percentile_label(),
                    ms(projected_latency_ms),
                    crate::format::duration(horizon_seconds)
                ),
            )
        }
        Miss::Goodput { measured_percent, target_percent } => row(
            "goodput".into(),
            percent(measured_percent),
            format!("≥ {}", percent(target_percent)),
            format!("−{} points", trim_number(target_percent - measured_percent)),
        ),
        Miss::NoTraffic => {
            row("traffic".into(), "no request measured".into(), format!("{} requirements", r.percentile_label()), "–".into())
        }
        Miss::Interrupted => row("completion".into(), "interrupted".into(), "the whole step".into(), "–".into()),
    }
}

fn run_facts(data: &RunData) -> Vec<Fact> {
    let s = &data.summary;
    let mut facts = vec![fact("requirements", wanted_sentence(s)), fact("status", status_label(s.status))];
    if let Some(streaming) = &s.streaming {
        facts.extend(stream_charts::run_facts(streaming).into_iter().map(|(label, value)| fact(label, value)));
    }
    facts.extend([
        fact("started", timestamp(s.started_at)),
        fact("ended", timestamp(s.ended_at)),
        fact("duration", duration(run_seconds(data))),
        fact(
            "cost of this run",
            match data.cost {
                CostKnown::Complete => {
                    format!("{} for {} endpoint-hours", money(s.run_cost.dollars), trim_number(s.run_cost.endpoint_hours))
                }
                CostKnown::AtLeast(at) => format!(
                    "at least {} for {} endpoint-hours, up to {}: what the run left running bills until it is removed",
                    money(s.run_cost.dollars),
                    trim_number(s.run_cost.endpoint_hours),
                    timestamp(at)
                ),
                CostKnown::Unknown => "unknown: the run never wrote its summary".to_string(),
            },
        ),
        fact("steps", format!("{} ({} passed)", data.steps.len(), data.steps.iter().filter(|st| st.passed).count())),
        fact("region", s.region.clone()),
        fact("prices", s.prices.clone()),
        fact("strategy", format!("{:?}", s.strategy).to_lowercase()),
        fact("perfsize", s.perfsize_version.clone()),
        fact("run id", s.run_id.clone()),
    ]);
    if let Some(plan) = &data.plan {
        let types: Vec<String> = plan.search.types.iter().map(|t| t.to_string()).collect();
        facts.push(fact("instance types", types.join(", ")));
        let d = &plan.durations;
        facts.push(fact(
            "durations",
            format!(
                "steps {} after {} warm-up; endurance {}",
                duration(d.step.as_secs_f64()),
                duration(d.warmup.as_secs_f64()),
                duration(d.endurance.as_secs_f64())
            ),
        ));
        let payloads: Vec<String> = plan
            .payloads
            .iter()
            .map(|(name, weight, bytes)| format!("{name} (weight {}, {bytes} bytes)", trim_number(*weight)))
            .collect();
        facts.push(fact("payloads", payloads.join("; ")));
        facts.push(fact("auto-scaling safety factor", trim_number(plan.safety_factor)));
        facts.push(fact("highest utilisation at peak", percent(plan.search.max_utilization * 100.0)));
        if let Some(a) = &plan.asynchronous {
            facts.push(fact("asynchronous", describe_async(a)));
        }
        if let Some(budget) = plan.max_test_cost {
            facts.push(fact("test budget", money(budget)));
        }
    }
    facts
}

/// "step 13 · search · ml.m5.large × 1 at 95 TPS".
fn step_heading(s: &StepResult) -> String {
    format!("step {} · {} · {} at {}", s.index, s.phase.as_str(), configuration(s), s.load().label())
}

/// What a step ran on: `ml.m5.large × 2`, or the serverless configuration.
fn configuration(s: &StepResult) -> String {
    s.candidate().map_or_else(|| format!("{} × {}", s.instance_type, s.instance_count), |c| c.to_string())
}

fn step_view(s: &StepResult, recommended: bool) -> StepView {
    let latency = |f: fn(&crate::result::Percentiles) -> f64| s.latency_ms.as_ref().map_or("–".to_string(), |p| ms(f(p)));
    let cw = &s.cloudwatch;
    let server = (cw.available && cw.model_latency_ms.is_some()).then(|| ServerView {
        model_avg: cw.model_latency_ms.map_or("–".into(), |l| ms(l.avg)),
        model_p99: cw.model_latency_ms.map_or("–".into(), |l| ms(l.p99)),
        overhead_avg: cw.overhead_latency_ms.map_or("–".into(), |l| ms(l.avg)),
        cpu: cw.cpu_utilization_avg.map_or("–".into(), |v| format!("{v:.0}%")),
        memory: cw.memory_utilization_avg.map_or("–".into(), |v| format!("{v:.0}%")),
    });
    StepView {
        index: s.index,
        anchor: anchor(s.index),
        heading: step_heading(s),
        phase: s.phase.as_str(),
        configuration: configuration(s),
        offered: tps(s.offered_tps),
        achieved: tps(s.achieved_tps),
        p50: latency(|p| p.p50),
        p90: latency(|p| p.p90),
        p99: latency(|p| p.p99),
        max: latency(|p| p.max),
        p99_over: s.latency_ms.is_some_and(|p| p.p99 > s.requirements.latency_ms),
        errors: percent(s.error_percent),
        errors_over: s.error_percent > s.requirements.max_error_percent,
        passed: s.passed,
        reasons: s.reasons.clone(),
        disturbed: s.disturbance.as_ref().map(|d| d.describe()),
        remeasure_of: s.remeasure_of,
        recommended,
        server,
        server_note: cw.note.clone(),
        facts: step_facts(s),
        error_counts: error_counts(s),
        misses: s.misses.iter().map(|m| miss_view(m, &s.requirements)).collect(),
        charts: s
            .streaming
            .as_ref()
            .map(stream_charts::token_distribution_chart)
            .into_iter()
            .chain([distribution_chart(s), rate_chart(s), latency_series_chart(s)])
            .collect(),
    }
}

fn step_facts(s: &StepResult) -> Vec<Fact> {
    let mut facts = vec![
        fact("window", format!("{} – {}", timestamp(s.started_at), s.ended_at.format("%H:%M:%S UTC"))),
        fact(
            "measured",
            if s.warmup_seconds > 0.0 {
                format!("{} after {} warm-up", duration(s.duration_seconds), duration(s.warmup_seconds))
            } else {
                format!("{}, no warm-up", duration(s.duration_seconds))
            },
        ),
        fact("requests", format!("{} sent · {} succeeded · {} failed", s.requests, s.succeeded, s.failed)),
    ];
    if let Some(p) = &s.latency_ms {
        facts.push(fact("latency", format!("mean {} · p95 {} · p99.9 {} ms", ms(p.mean), ms(p.p95), ms(p.p99_9))));
    }
    if let Some(judged) = s.judged_latency_ms {
        facts.push(fact(
            "judged",
            format!(
                "{} {} ms (limit {} ms)",
                s.requirements.percentile_label(),
                ms(judged),
                trim_number(s.requirements.latency_ms)
            ),
        ));
    }
    facts.push(fact("sustainable", sustainability(s)));
    if let Some(d) = &s.disturbance {
        facts.push(fact("disturbed", d.describe()));
    }
    if let Some(first) = s.remeasure_of {
        facts.push(fact("re-measure", format!("measures disturbed step {first} again; the verdict uses this one")));
    }
    let g = &s.generator;
    facts.push(fact(
        "load generator",
        format!(
            "up to {} in flight · {} late starts · slip p50 {} / p99 {} ms",
            g.max_in_flight,
            g.late_starts,
            ms(g.slip_p50_ms),
            ms(g.slip_p99_ms)
        ),
    ));
    let cw = &s.cloudwatch;
    let server = match (cw.available, cw.invocations) {
        (true, Some(invocations)) => format!(
            "{} invocations · 4xx {} · 5xx {} · {} s periods",
            trim_number(invocations),
            cw.invocations_4xx.map_or("–".into(), trim_number),
            cw.invocations_5xx.map_or("–".into(), trim_number),
            cw.period_seconds
        ),
        _ => "not available".into(),
    };
    let server = match &cw.note {
        Some(note) => format!("{server} ({note})"),
        None => server,
    };
    facts.push(fact("CloudWatch", server));
    if let Some(a) = &s.asynchronous {
        facts.extend(async_step_facts(a, cw.asynchronous.as_ref()));
    }
    if let Some(st) = &s.streaming {
        facts.extend(stream_charts::step_facts(st).into_iter().map(|(label, value)| fact(label, value)));
    }
    facts.push(fact("endpoint", s.endpoint_name.clone()));
    facts
}

/// An asynchronous step's own figures: how finely completion was seen, the
/// parts of each request, the S3 work, and the queue as SageMaker saw it.
fn async_step_facts(a: &AsyncFigures, server: Option<&AsyncServerMetrics>) -> Vec<Fact> {
    let mut facts = vec![
        fact(
            "end-to-end resolution",
            format!(
                "outputs looked for every {} ms, backing off to {} ms: an output is seen up to that late",
                trim_number(a.polling_interval_ms),
                trim_number(a.max_polling_interval_ms)
            ),
        ),
        fact(
            "per request",
            format!(
                "upload p50 {} / p99 {} ms · submission p50 {} / p99 {} ms",
                ms(a.upload_ms.p50),
                ms(a.upload_ms.p99),
                ms(a.submit_ms.p50),
                ms(a.submit_ms.p99)
            ),
        ),
        fact(
            "S3 requests",
            format!(
                "{} per inference: {} PUT · {} HEAD · {} GET · {} DELETE; cleanup {}{}",
                trim_number(a.s3_requests_per_inference),
                a.s3_put,
                a.s3_head,
                a.s3_get,
                a.s3_delete,
                a.cleanup,
                if a.kept_objects > 0 { format!(", {} objects kept", a.kept_objects) } else { String::new() }
            ),
        ),
    ];
    if let Some(q) = server {
        let latency = |l: Option<ServerLatency>| l.map_or("–".into(), |l| format!("avg {} / p99 {} ms", ms(l.avg), ms(l.p99)));
        facts.push(fact(
            "queue (CloudWatch)",
            format!(
                "time in backlog {} · total processing {} · backlog up to {} · oldest request up to {} s",
                latency(q.time_in_backlog_ms),
                latency(q.total_processing_ms),
                q.backlog_max.map_or("–".into(), trim_number),
                q.oldest_request_age_max_s.map_or("–".into(), trim_number)
            ),
        ));
    }
    facts
}

/// Whether the step's rate could be held: the work in flight stayed level.
fn sustainability(s: &StepResult) -> String {
    match &s.stationarity {
        None => "not judged (fewer than five whole seconds measured)".into(),
        Some(st) if st.stationary => {
            format!("yes: in flight level over {} s ({:.0} → {:.0})", st.seconds, st.in_flight_from, st.in_flight_to)
        }
        Some(st) => format!(
            "no: in flight grew {:.0} → {:.0} over {} s{}",
            st.in_flight_from,
            st.in_flight_to,
            st.seconds,
            st.onset_second.map_or(String::new(), |at| format!(", climbing from second {at}"))
        ),
    }
}

/// Failed requests by HTTP status and by error code.
fn error_counts(s: &StepResult) -> Vec<Fact> {
    let by_status = s.errors_by_status.iter().map(|(status, n)| fact(format!("HTTP {status}"), n.to_string()));
    let by_code = s.errors_by_code.iter().map(|(code, n)| fact(code.clone(), n.to_string()));
    by_status.chain(by_code).collect()
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The command line as a shell would take it back: arguments with spaces or
/// shell characters single-quoted.
fn shell_line(args: &[String]) -> String {
    let plain = |a: &str| !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
    args.iter()
        .map(|a| if plain(a) { a.clone() } else { format!("'{}'", a.replace('\'', r"'\''")) })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An asynchronous run's settings in a sentence.
fn describe_async(a: &AsyncRecord) -> String {
    let objects = match &a.buckets {
        Buckets::RunOwned => "a bucket of the run's own".to_string(),
        Buckets::Named { input, output } if input == output => format!("{input}<run id>/"),
        Buckets::Named { input, output } => format!("{input}<run id>/ and {output}<run id>/"),
    };
    format!(
        "objects in {objects}; outputs looked for from {} ms ×{} up to {} ms, for at most {} s; cleanup {}; MaxConcurrentInvocationsPerInstance {}",
        trim_number(a.polling_interval_ms),
        trim_number(a.backoff_multiplier),
        trim_number(a.max_polling_interval_ms),
        trim_number(a.max_wait_seconds),
        a.cleanup,
        match a.max_concurrent_invocations.as_slice() {
            [] => "SageMaker's choice".to_string(),
            [one] => one.to_string(),
            walk => format!("{} (searched)", walk.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")),
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{ESCAPED, HOSTILE, recommended_run, requirements, unmet_run};
    use crate::result::ServerMetrics;

    fn render(data: &RunData) -> String {
        render_report(data).expect("the report renders")
    }

    #[test]
    fn the_report_has_every_section() {
        let html = render(&recommended_run());
        for section in ["id=\"verdict\"", "id=\"run\"", "id=\"charts\"", "id=\"steps\"", "id=\"details\""] {
            assert!(html.contains(section), "missing {section}");
        }
        for step in 1..=5 {
            assert!(html.contains(&format!("id=\"step-{step}\"")), "no detail section for step {step}");
            assert!(html.contains(&format!("href=\"#step-{step}\"")), "no link to step {step}");
        }
        assert!(html.contains("ml.c5.large × 1"), "the recommended configuration");
        assert!(html.contains("$74.46"), "the monthly cost");
        assert!(html.contains("$0.2833"), "the cost per million inferences");
        assert!(html.contains("aws application-autoscaling register-scalable-target"));
        assert!(html.contains("aws application-autoscaling put-scaling-policy"));
        assert!(html.contains("Cost vs p99 at peak"), "the frontier chart");
        assert!(html.contains("ml.m5.large × 1: latency vs offered rate"), "latency vs rate per type");
        let charts_titled = |title: &str| html.matches(&format!("<span class=\"chart-title\">{title}</span>")).count();
        assert_eq!(charts_titled("Latency by percentile"), 5, "a distribution per step");
        assert_eq!(charts_titled("Rate per second"), 5, "a rate series per step");
        assert_eq!(charts_titled("Latency per second"), 5, "a latency series per step");
        assert!(html.contains("ModelLatency"), "the server-side columns");
        assert!(html.contains("perfsize --peak-tps 100 --type-walk ml.m5.large,ml.c5.large"), "the command line");
        assert!(html.contains("completed"), "the status");
        assert!(!html.contains("Partial report"));
    }

    #[test]
    fn a_capacity_that_is_only_a_bound_is_shown_as_one() {
        // The fixture's ml.c5.large passed 100 TPS and was pushed no further.
        let mut data = recommended_run();
        let html = render(&data);
        assert!(html.contains("≥ 100 (a lower bound)"), "the recommendation's figure");
        assert!(html.contains("of the measured ≥ 100 TPS per instance, a lower bound: the target is conservative"));
        assert!(html.contains("data-label=\"max TPS per instance\">≥ 100<"), "the candidates table");
        assert!(html.contains("capacity ≥ 100 TPS"), "the latency-vs-rate chart");
        let bracket = Capacity::between(117.5, Some(121.25));
        data.summary.recommendation.as_mut().unwrap().capacity = bracket;
        data.summary.types[1].summary.capacity = Some(bracket);
        let html = render(&data);
        assert!(html.contains("117.5 (fails at 121.3)"));
        assert!(html.contains("of the measured 117.5 TPS per instance)"));
        assert!(html.contains("data-label=\"max TPS per instance\">117.5<"));
        assert!(html.contains("capacity 117.5 TPS"));
        assert!(!html.contains("≥ 117.5"));
    }

    #[test]
    fn the_simulated_banner_appears_only_for_simulated_runs() {
        let mut data = recommended_run();
        assert!(!render(&data).contains("class=\"banner simulated\""));
        data.summary.simulated = true;
        assert!(render(&data).contains("class=\"banner simulated\""));
    }

    #[test]
    fn a_partial_run_says_so() {
        let mut data = recommended_run();
        data.cost = CostKnown::Unknown;
        data.summary.types.clear();
        data.summary.recommendation = None;
        data.summary.status = RunStatus::Interrupted;
        let html = render(&data);
        assert!(html.contains("Partial report"));
        assert!(html.contains("No verdict: the run stopped early"));
        assert!(html.contains("The run stopped (interrupted)"));
        assert!(html.contains("unknown: the run never wrote its summary"), "no made-up run cost");

        data.cost = CostKnown::AtLeast(data.summary.ended_at);
        assert!(render(&data).contains("at least $0.0052 for 0.05 endpoint-hours, up to"), "a lower bound, said as one");
    }

    #[test]
    fn a_run_without_recommendation_shows_what_each_candidate_missed() {
        let html = render(&unmet_run());
        assert!(html.contains("Nothing met the requirements"));
        assert!(!html.contains("register-scalable-target"), "no policy without a recommendation");
        // The closest attempt of each type is its fastest step: steps 1 and 2 (20 and 15 ms base).
        for (instance_type, step) in [("ml.m5.large", 1), ("ml.c5.large", 2)] {
            let card = html
                .split("class=\"miss-card\"")
                .find(|c| c.contains(&format!("<h4>{instance_type}</h4>")))
                .expect("a card per type");
            assert!(card.contains(&format!("href=\"#step-{step}\"")), "{instance_type} closest attempt: {card}");
            assert!(card.contains("p99 latency") && card.contains("≤ 10 ms") && card.contains("(+"), "by how much: {card}");
        }
    }

    #[test]
    fn hostile_strings_are_escaped_everywhere() {
        let mut data = recommended_run();
        data.summary.simulated = true;
        data.summary.run_id = HOSTILE.into();
        data.summary.note = Some(HOSTILE.into());
        data.summary.command_line.push(HOSTILE.into());
        let s = &mut data.steps[2];
        s.reasons.push(HOSTILE.into());
        s.errors_by_code.insert(HOSTILE.into(), 3);
        s.errors_by_status.insert(HOSTILE.into(), 3);
        s.cloudwatch = ServerMetrics::unavailable(HOSTILE);
        s.endpoint_name = HOSTILE.into();
        // A step file can name any type; it reaches chart titles and tooltips.
        data.steps[0].instance_type = HOSTILE.into();
        let html = render(&data);
        assert!(!html.contains(HOSTILE), "an unescaped hostile string");
        assert!(!html.contains("<script>alert"), "an unescaped script tag");
        assert!(html.matches(ESCAPED).count() >= 8, "the escaped strings are shown: {}", html.matches(ESCAPED).count());

        let mut unmet = unmet_run();
        unmet.steps[0].misses.push(Miss::NoTraffic);
        unmet.summary.types[0].summary.verdict = HOSTILE.into();
        let html = render(&unmet);
        assert!(!html.contains(HOSTILE));
        assert!(html.contains(ESCAPED));
    }

    #[test]
    fn the_page_requests_nothing_from_the_network() {
        let html = render(&recommended_run());
        let lower = html.to_lowercase();
        for needle in [
            "src=\"http",
            "href=\"http",
            "src='http",
            "href='http",
            "url(http",
            "url(\"http",
            "url('http",
            "@import",
            "<link",
            "<img",
            "<iframe",
        ] {
            assert!(!lower.contains(needle), "the page references {needle}");
        }
        assert!(lower.contains("content-security-policy"), "a policy that forbids requests");
    }

    #[test]
    fn every_svg_is_closed() {
        for data in [recommended_run(), unmet_run()] {
            let html = render(&data);
            let opened = html.matches("<svg").count();
            assert!(opened > 5);
            assert_eq!(opened, html.matches("</svg>").count());
            assert_eq!(opened, html.matches("<svg viewBox=").count(), "every chart scales to its column");
            assert_eq!(html.matches("<figure").count(), html.matches("</figure>").count());
            assert_eq!(html.matches("<table").count(), html.matches("</table>").count());
        }
    }

    #[test]
    fn the_rendering_is_deterministic() {
        assert_eq!(render(&recommended_run()), render(&recommended_run()));
    }

    #[test]
    fn misses_say_by_how_much() {
        let r = requirements();
        let latency = miss_view(&Miss::Latency { percentile: 99.0, measured_ms: 750.0, limit_ms: 500.0 }, &r);
        assert_eq!(
            (latency.measured.as_str(), latency.limit.as_str(), latency.by.as_str()),
            ("750.0 ms", "≤ 500 ms", "+250.0 ms (+50%)")
        );
        let rate = miss_view(&Miss::Rate { achieved_tps: 76.0, offered_tps: 100.0 }, &r);
        assert_eq!(rate.by, "−19 TPS (−20%)");
        let errors = miss_view(&Miss::Errors { measured_percent: 2.5, limit_percent: 0.1 }, &r);
        assert_eq!(errors.by, "+2.4 points");
    }

    #[test]
    fn command_lines_read_as_a_shell_takes_them() {
        assert_eq!(
            shell_line(&["perfsize".into(), "--payload".into(), "my file.json".into()]),
            "perfsize --payload 'my file.json'"
        );
    }
}
