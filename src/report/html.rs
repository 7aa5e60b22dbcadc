//! report.html and the comparison page. A run's data is turned into view
//! models here — figures formatted, misses measured, chart geometry computed
//! by [`super::charts`] — and the askama templates in `templates/` lay them
//! out: `report.html` and `compare.html` extend `base.html` (inline CSS and
//! script, a Content-Security-Policy that forbids every request) and call the
//! macros of `parts.html` (the one chart template, the misses and figures
//! tables).
//!
//! Every template is `.html`, so askama HTML-escapes every value, including
//! the ones inside the SVG charts: run ids, command lines, error codes and
//! server notes may come from anyone.

use std::collections::BTreeMap;

use askama::Template;
use chrono::{DateTime, Utc};

use super::charts::{Axis, Canvas, Chart, Dot, dollar_tick, ms_tick, nines};
use super::compare::{Better, Comparison, Figure};
use super::{CostKnown, RunData};
use crate::format::trim_number;
use crate::load::SecondStats;
use crate::record::{Recommendation, RunStatus, TypeOutcome};
use crate::result::{MAX_LATE_SHARE, MIN_ACHIEVED_SHARE, Miss, StepResult, histogram, slip_limit_ms};
use crate::vocab::{Phase, Requirements};

/// The run's report page.
pub fn render_report(data: &RunData) -> Result<String, askama::Error> {
    ReportPage::new(data).render()
}

/// The comparison page.
pub fn render_comparison(c: &Comparison) -> Result<String, askama::Error> {
    ComparePage::new(c).render()
}

// ---------------------------------------------------------------------------
// The report page

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
    register: String,
    policy: String,
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
            overview: overview_charts(data),
            steps: data.steps.iter().map(|step| step_view(step, Some(step.index) == recommended_step)).collect(),
            version: s.perfsize_version.clone(),
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
fn requirements_sentence(r: &Requirements, peak_tps: f64) -> String {
    format!(
        "{} ≤ {} ms and errors ≤ {}% at {} TPS",
        r.percentile_label(),
        trim_number(r.latency_ms),
        trim_number(r.max_error_percent),
        tps(peak_tps)
    )
}

fn verdict_view(data: &RunData) -> VerdictView {
    let s = &data.summary;
    let wanted = requirements_sentence(&s.requirements, s.peak_tps);
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
            let (headline, explanation) = match s.status {
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
            "step {}: {} TPS for {}, {} {} ms, {} errors",
            step.index,
            tps(step.target_tps),
            duration(step.duration_seconds),
            step.requirements.percentile_label(),
            step.judged_latency_ms.map_or("–".into(), ms),
            percent(step.error_percent)
        ),
    });
    let a = &rec.autoscaling;
    RecommendationView {
        configuration: format!("{} × {}", rec.instance_type, rec.instance_count),
        figures: vec![
            fact("per hour", money(rec.cost_per_hour)),
            fact("per month", money(rec.cost_per_month)),
            fact("per million inferences at peak", money(rec.cost_per_million_inferences)),
            fact("max TPS per instance, measured", tps(rec.max_tps_per_instance)),
        ],
        verified,
        autoscaling: AutoscalingView {
            summary: format!(
                "Target tracking on {}: {} invocations per instance per minute ({}% of the measured {} TPS per instance), from {} to {} instances.",
                a.metric,
                a.target_invocations_per_instance,
                trim_number(a.safety_factor * 100.0),
                tps(rec.max_tps_per_instance),
                a.min_instances,
                a.max_instances
            ),
            hint: a
                .resource_id
                .contains("YOUR-ENDPOINT")
                .then(|| "Replace YOUR-ENDPOINT with the name of your endpoint.".to_string()),
            register: a.register_command.clone(),
            policy: a.policy_command.clone(),
        },
    }
}

/// Every instance type the run considered. A run killed before its summary
/// has no per-type outcomes: the types then come from the plan or the steps.
fn candidate_views(data: &RunData) -> Vec<CandidateView> {
    let s = &data.summary;
    if !s.types.is_empty() {
        let recommended = s.recommendation.as_ref().map(|r| r.instance_type.as_str());
        return s.types.iter().map(|t| outcome_view(t, recommended == Some(t.summary.instance_type.as_str()))).collect();
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
        instance_type: t.summary.instance_type.to_string(),
        price: money(t.price_per_hour),
        max_tps: t.summary.max_tps_per_instance.map_or("–".into(), tps),
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
    let measured = data.steps.iter().map(|s| s.instance_type.clone());
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
                format!("≥ {} TPS ({}% of {} offered)", tps(needed), trim_number(MIN_ACHIEVED_SHARE * 100.0), tps(offered_tps)),
                format!("−{} TPS (−{:.0}%)", tps(needed - achieved_tps), (1.0 - achieved_tps / needed) * 100.0),
            )
        }
        Miss::Generator { late_starts, slip_p99_ms } => row(
            "load generator".into(),
            format!("{late_starts} late starts, slip p99 {} ms", ms(slip_p99_ms)),
            format!("≤ {}% late, slip p99 ≤ {} ms", trim_number(MAX_LATE_SHARE * 100.0), trim_number(slip_limit_ms(r))),
            "the generator, not the endpoint, set the pace".into(),
        ),
        Miss::NoTraffic => {
            row("traffic".into(), "no request measured".into(), format!("{} requirements", r.percentile_label()), "–".into())
        }
        Miss::Interrupted => row("completion".into(), "interrupted".into(), "the whole step".into(), "–".into()),
    }
}

fn run_facts(data: &RunData) -> Vec<Fact> {
    let s = &data.summary;
    let mut facts = vec![
        fact("requirements", requirements_sentence(&s.requirements, s.peak_tps)),
        fact("status", status_label(s.status)),
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
    ];
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
        if let Some(budget) = plan.max_test_cost {
            facts.push(fact("test budget", money(budget)));
        }
    }
    facts
}

fn anchor(index: u32) -> String {
    format!("step-{index}")
}

/// "step 13 · search · ml.m5.large × 1 at 95 TPS".
fn step_heading(s: &StepResult) -> String {
    format!("step {} · {} · {} × {} at {} TPS", s.index, s.phase.as_str(), s.instance_type, s.instance_count, tps(s.target_tps))
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
        configuration: format!("{} × {}", s.instance_type, s.instance_count),
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
        recommended,
        server,
        server_note: cw.note.clone(),
        facts: step_facts(s),
        error_counts: error_counts(s),
        misses: s.misses.iter().map(|m| miss_view(m, &s.requirements)).collect(),
        charts: vec![distribution_chart(s), rate_chart(s), latency_series_chart(s)],
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
    facts.push(fact("endpoint", s.endpoint_name.clone()));
    facts
}

/// Failed requests by HTTP status and by error code.
fn error_counts(s: &StepResult) -> Vec<Fact> {
    let by_status = s.errors_by_status.iter().map(|(status, n)| fact(format!("HTTP {status}"), n.to_string()));
    let by_code = s.errors_by_code.iter().map(|(code, n)| fact(code.clone(), n.to_string()));
    by_status.chain(by_code).collect()
}

// ---------------------------------------------------------------------------
// Charts

/// Latency axis for a chart with a limit line: the limit joins the domain
/// when it is near the data; far above it, it would squash the data into the
/// bottom of the plot, so it stays off (and the chart says so).
fn latency_axis(values: impl IntoIterator<Item = f64>, limit: f64, label: impl Into<String>) -> Axis {
    let mut values: Vec<f64> = values.into_iter().collect();
    let max = values.iter().copied().fold(0.0, f64::max);
    if limit <= 3.0 * max {
        values.push(limit);
    }
    Axis::latency(values, label)
}

fn limit_label(r: &Requirements) -> String {
    format!("{} limit {} ms", r.percentile_label(), trim_number(r.latency_ms))
}

fn overview_charts(data: &RunData) -> Vec<Chart> {
    let mut charts = vec![frontier_chart(data)];
    charts.extend(latency_vs_rate_charts(data));
    charts
}

/// Whether a step ran at the run's peak rate.
fn at_peak(s: &StepResult, peak_tps: f64) -> bool {
    s.target_tps >= peak_tps * 0.999
}

/// Cost per hour against the judged latency of every configuration measured
/// at the peak rate, with the cheapest-for-its-latency frontier drawn through
/// the passing ones and the recommendation marked.
fn frontier_chart(data: &RunData) -> Chart {
    let s = &data.summary;
    let r = &s.requirements;
    let title = format!("Cost vs {} at peak ({} TPS)", r.percentile_label(), tps(s.peak_tps));
    let prices: BTreeMap<String, f64> = s.types.iter().map(|t| (t.summary.instance_type.to_string(), t.price_per_hour)).collect();
    let points: Vec<(&StepResult, f64, f64)> = data
        .steps
        .iter()
        .filter(|st| at_peak(st, s.peak_tps))
        .filter_map(|st| Some((st, prices.get(&st.instance_type)? * st.instance_count as f64, st.judged_latency_ms?)))
        .collect();
    if points.is_empty() {
        let why = if prices.is_empty() {
            "no prices recorded (the run never wrote its summary)"
        } else {
            "no configuration was measured at the peak rate"
        };
        return Chart::empty(title, why);
    }
    let max_cost = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let x = Axis::linear(0.0, max_cost * 1.15, "configuration cost, $ per hour", dollar_tick);
    let budget_end = x.hi();
    let y = latency_axis(points.iter().map(|p| p.2), r.latency_ms, format!("{} at peak, ms", r.percentile_label()));
    let mut canvas = Canvas::new(title, x, y);
    canvas.hrule(r.latency_ms, "c-limit", limit_label(r));
    canvas.line("c-frontier", "cheapest for its latency", frontier(&points, budget_end).into_iter().map(Some));
    let recommended = s.recommendation.as_ref().and_then(|rec| rec.verified_by_step);
    for &(step, cost, latency) in &points {
        let is_rec = Some(step.index) == recommended;
        let (class, key) = if is_rec { ("c-rec rec", "recommended") } else { verdict_dot(step) };
        let title = format!(
            "step {}: {} × {} · {}/h · {} {} ms · {}",
            step.index,
            step.instance_type,
            step.instance_count,
            money(cost),
            r.percentile_label(),
            ms(latency),
            if step.passed { "pass" } else { "fail" }
        );
        let label = is_rec.then(|| format!("{} × {}", step.instance_type, step.instance_count));
        canvas.dot(Dot { class, key, at: (cost, latency), title, href: Some(format!("#{}", anchor(step.index))), label });
    }
    canvas.finish()
}

/// A step's dot: class and legend entry.
fn verdict_dot(step: &StepResult) -> (&'static str, &'static str) {
    if step.passed { ("c-pass", "passed") } else { ("c-fail", "failed") }
}

/// The staircase through the passing points that no cheaper passing point
/// beats on latency, continued to `right_end`: for any budget, the best
/// latency measured within it.
fn frontier(points: &[(&StepResult, f64, f64)], right_end: f64) -> Vec<(f64, f64)> {
    let mut passing: Vec<(f64, f64)> = points.iter().filter(|p| p.0.passed).map(|p| (p.1, p.2)).collect();
    passing.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut stairs: Vec<(f64, f64)> = Vec::new();
    for (cost, latency) in passing {
        match stairs.last() {
            Some(&(_, best)) if latency >= best => {}
            Some(&(_, best)) => stairs.extend([(cost, best), (cost, latency)]),
            None => stairs.push((cost, latency)),
        }
    }
    if let Some(&(_, best)) = stairs.last() {
        stairs.push((right_end, best));
    }
    stairs
}

/// One chart per searched configuration (type × count): p50 and the judged
/// percentile against the offered rate, all on the same axes so that they
/// compare at a glance.
fn latency_vs_rate_charts(data: &RunData) -> Vec<Chart> {
    let search: Vec<&StepResult> = data.steps.iter().filter(|s| s.phase == Phase::Search && s.latency_ms.is_some()).collect();
    let r = &data.summary.requirements;
    if search.is_empty() {
        return vec![Chart::empty("Latency vs offered rate", "no search step measured any latency")];
    }
    let mut groups: Vec<((&str, u32), Vec<&StepResult>)> = Vec::new();
    for s in &search {
        let key = (s.instance_type.as_str(), s.instance_count);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, steps)) => steps.push(s),
            None => groups.push((key, vec![s])),
        }
    }
    let max_rate = search.iter().map(|s| s.offered_tps.max(s.target_tps)).fold(0.0, f64::max);
    let latencies = search.iter().filter_map(|s| s.latency_ms).flat_map(|p| [p.p50, p.p99]);
    let y = latency_axis(latencies, r.latency_ms, "latency, ms");
    // Room on the right: the last probes sit at the peak, often on the capacity line.
    let x = Axis::linear(0.0, max_rate * 1.05, "offered rate, TPS", ms_tick);
    let capacity: BTreeMap<String, f64> = data
        .summary
        .types
        .iter()
        .filter_map(|t| Some((t.summary.instance_type.to_string(), t.summary.max_tps_per_instance?)))
        .collect();
    groups
        .into_iter()
        .map(|((instance_type, count), mut steps)| {
            steps.sort_by(|a, b| a.offered_tps.total_cmp(&b.offered_tps));
            let mut canvas = Canvas::new(format!("{instance_type} × {count}: latency vs offered rate"), x.clone(), y.clone());
            canvas.hrule(r.latency_ms, "c-limit", limit_label(r));
            if let Some(per_instance) = capacity.get(instance_type) {
                canvas.vrule(
                    per_instance * count as f64,
                    "c-capacity",
                    format!("capacity {} TPS", tps(per_instance * count as f64)),
                );
            }
            let series = |f: fn(&crate::result::Percentiles) -> f64| {
                steps.iter().map(move |s| s.latency_ms.map(|p| (s.offered_tps, f(&p)))).collect::<Vec<_>>()
            };
            canvas.line("c-p50 dash", "p50", series(|p| p.p50));
            canvas.line("c-tail", "p99", series(|p| p.p99));
            for s in &steps {
                let Some(p) = s.latency_ms else { continue };
                let title = format!(
                    "step {}: {} TPS offered · p50 {} · p99 {} ms · {}",
                    s.index,
                    tps(s.offered_tps),
                    ms(p.p50),
                    ms(p.p99),
                    if s.passed { "pass" } else { "fail" }
                );
                let (class, key) = verdict_dot(s);
                canvas.dot(Dot {
                    class,
                    key,
                    at: (s.offered_tps, p.p99),
                    title,
                    href: Some(format!("#{}", anchor(s.index))),
                    label: None,
                });
            }
            canvas.finish()
        })
        .collect()
}

/// The step's latency distribution, HdrHistogram-plotter style: percentiles
/// on a "nines" axis so that the tail is as wide as the body.
fn distribution_chart(s: &StepResult) -> Chart {
    const TITLE: &str = "Latency by percentile";
    let h = match histogram::decode(&s.histogram) {
        Ok(h) if !h.is_empty() => h,
        Ok(_) => return Chart::empty(TITLE, "no request was measured"),
        Err(e) => return Chart::empty(TITLE, format!("the step's histogram is unreadable: {e}")),
    };
    let x = Axis::nines(h.len());
    let points: Vec<(f64, f64)> =
        h.iter_quantiles(4).map(|v| (nines(v.quantile_iterated_to(), &x), v.value_iterated_to() as f64 / 1000.0)).collect();
    let r = &s.requirements;
    let y = latency_axis(points.iter().map(|p| p.1), r.latency_ms, "latency, ms");
    let judged_at = nines(r.percentile / 100.0, &x);
    let mut canvas = Canvas::new(TITLE, x, y);
    canvas.line("c-tail", "all requests", points.into_iter().map(Some));
    canvas.vrule(judged_at, "c-judged", format!("judged {}", r.percentile_label()));
    canvas.hrule(r.latency_ms, "c-limit", limit_label(r));
    canvas.finish()
}

/// The per-second rows of the step's schedule: the rows after its last
/// offered request only count stragglers, and would draw a false collapse.
fn schedule(s: &StepResult) -> &[SecondStats] {
    let end = s.series.iter().rposition(|row| row.offered > 0).map_or(0, |last| last + 1);
    &s.series[..end]
}

/// A chart over the seconds of the step's schedule, warm-up shaded.
fn seconds_canvas(title: &str, rows: &[SecondStats], y: Axis) -> Canvas {
    let mut canvas = Canvas::new(title, Axis::exact(0.0, rows.len() as f64, "seconds", ms_tick), y);
    let warmup = rows.iter().filter(|row| row.warmup).count();
    canvas.band(0.0, warmup as f64, "warm-up");
    canvas
}

/// Each second's figure is drawn at the middle of that second.
fn mid(row: &SecondStats) -> f64 {
    row.second as f64 + 0.5
}

/// Requests offered, completed and failed, per second.
fn rate_chart(s: &StepResult) -> Chart {
    const TITLE: &str = "Rate per second";
    let rows = schedule(s);
    if rows.is_empty() {
        return Chart::empty(TITLE, "no per-second figures recorded");
    }
    let max = rows.iter().map(|row| row.offered.max(row.completed)).max().unwrap_or(1) as f64;
    let mut canvas = seconds_canvas(TITLE, rows, Axis::linear(0.0, max, "requests per second", ms_tick));
    // Offered goes over completed: dashed, it stays visible where they agree.
    canvas.line("c-completed", "completed", rows.iter().map(|row| Some((mid(row), row.completed as f64))));
    canvas.line("c-offered dash", "offered", rows.iter().map(|row| Some((mid(row), row.offered as f64))));
    canvas.line("c-errors", "errors", rows.iter().map(|row| Some((mid(row), row.errors as f64))));
    canvas.finish()
}

/// p50 and p99 of the requests completed in each second.
fn latency_series_chart(s: &StepResult) -> Chart {
    const TITLE: &str = "Latency per second";
    let rows = schedule(s);
    if rows.iter().all(|row| row.p99_ms.is_none()) {
        return Chart::empty(TITLE, "no request completed");
    }
    let r = &s.requirements;
    let values = rows.iter().flat_map(|row| [row.p50_ms, row.p99_ms]).flatten();
    let mut canvas = seconds_canvas(TITLE, rows, latency_axis(values, r.latency_ms, "latency, ms"));
    canvas.hrule(r.latency_ms, "c-limit", limit_label(r));
    canvas.line("c-p50 dash", "p50", rows.iter().map(|row| row.p50_ms.map(|v| (mid(row), v))));
    canvas.line("c-tail", "p99", rows.iter().map(|row| row.p99_ms.map(|v| (mid(row), v))));
    canvas.finish()
}

// ---------------------------------------------------------------------------
// The comparison page

#[derive(Template)]
#[template(path = "compare.html", whitespace = "minimize")]
struct ComparePage {
    baseline: String,
    current: String,
    bound: String,
    regressions: usize,
    improvements: usize,
    compared: usize,
    /// The regressed figures alone, first: what a reviewer must look at.
    regressed: Vec<FigureRow>,
    groups: Vec<FigureGroup>,
}

struct FigureGroup {
    name: String,
    rows: Vec<FigureRow>,
}

struct FigureRow {
    group: String,
    name: String,
    better: &'static str,
    baseline: String,
    current: String,
    change: String,
    /// CSS class: regressed, worse (within the bound), better or same.
    trend: &'static str,
    regressed: bool,
    note: Option<String>,
}

impl ComparePage {
    fn new(c: &Comparison) -> ComparePage {
        let mut groups: Vec<FigureGroup> = Vec::new();
        for f in &c.figures {
            let row = figure_row(f);
            match groups.last_mut() {
                Some(group) if group.name == f.group => group.rows.push(row),
                _ => groups.push(FigureGroup { name: f.group.clone(), rows: vec![row] }),
            }
        }
        ComparePage {
            baseline: c.baseline.clone(),
            current: c.current.clone(),
            bound: format!("{}%", trim_number(c.max_regression_percent)),
            regressions: c.regressions,
            improvements: c.figures.iter().filter(|f| trend(f) == "better").count(),
            compared: c.figures.len(),
            regressed: c.figures.iter().filter(|f| f.regressed).map(figure_row).collect(),
            groups,
        }
    }
}

/// How a figure moved: past the bound, the worse way within it, the better way, or not at all.
fn trend(f: &Figure) -> &'static str {
    match f.change_percent {
        _ if f.regressed => "regressed",
        Some(change) if change.abs() < 0.05 => "same",
        Some(change) if (change < 0.0) == (f.better == Better::Lower) => "better",
        Some(_) => "worse",
        None => "same",
    }
}

fn figure_row(f: &Figure) -> FigureRow {
    let value = |v: Option<f64>| v.map_or("–".to_string(), |v| figure_value(v, f.unit));
    FigureRow {
        group: f.group.clone(),
        name: f.name.clone(),
        better: match f.better {
            Better::Lower => "lower is better",
            Better::Higher => "higher is better",
        },
        baseline: value(f.baseline),
        current: value(f.current),
        // A verdict is pass or fail: its "change" is no percentage.
        change: f.change_percent.filter(|_| !f.unit.is_empty()).map_or("–".into(), |p| format!("{p:+.1}%")),
        trend: trend(f),
        regressed: f.regressed,
        note: f.note.clone(),
    }
}

/// A compared value with its unit.
fn figure_value(v: f64, unit: &str) -> String {
    match unit {
        "$/h" => format!("{}/h", money(v)),
        "ms" => format!("{} ms", ms(v)),
        "TPS" => format!("{} TPS", tps(v)),
        "%" => percent(v),
        // A verdict: 1 passed, 0 failed.
        "" => (if v >= 1.0 { "pass" } else { "fail" }).to_string(),
        _ => format!("{} {unit}", trim_number(v)),
    }
}

// ---------------------------------------------------------------------------
// Figures as people read them

/// Milliseconds: three decimals under 1 ms (server overheads), one above.
fn ms(v: f64) -> String {
    if v.abs() < 1.0 {
        format!("{v:.3}")
    } else if v.abs() < 10_000.0 {
        format!("{v:.1}")
    } else {
        thousands(v.round())
    }
}

/// A rate: to a tenth, or to three decimals for the small rates of a search
/// that went down to find any capacity at all.
fn tps(v: f64) -> String {
    if v.abs() < 10.0 { trim_number(v) } else { trim_number((v * 10.0).round() / 10.0) }
}

fn percent(v: f64) -> String {
    format!("{}%", trim_number(v))
}

/// Dollars: cents for whole amounts, four decimals for the small prices of an
/// hour or a million inferences.
fn money(v: f64) -> String {
    if v >= 1000.0 {
        format!("${}", thousands(v.round()))
    } else if v >= 1.0 {
        format!("${v:.2}")
    } else {
        let text = format!("{v:.4}");
        format!("${}", text.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// 12345 → "12,345".
fn thousands(v: f64) -> String {
    let digits = format!("{}", v.abs() as u64);
    let grouped: Vec<&str> = digits.as_bytes().rchunks(3).rev().map(|c| std::str::from_utf8(c).expect("ASCII digits")).collect();
    format!("{}{}", if v < 0.0 { "-" } else { "" }, grouped.join(","))
}

/// 115.3 → "1 m 55 s".
fn duration(seconds: f64) -> String {
    let total = seconds.round() as u64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    match (h, m) {
        (0, 0) => format!("{s} s"),
        (0, _) => format!("{m} m {s:02} s"),
        _ => format!("{h} h {m:02} m"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::{ConfigCost, RunCost};
    use crate::load::recorder::new_histogram;
    use crate::record::{Autoscaling, StepBrief, Summary};
    use crate::result::cloudwatch::ServerLatency;
    use crate::result::{Generator, Percentiles, ServerMetrics};
    use crate::step::{StrategyKind, TypeSummary};

    const HOSTILE: &str = "<script>alert(1)</script>";
    const ESCAPED: &str = "&#60;script&#62;alert(1)&#60;/script&#62;";

    fn requirements() -> Requirements {
        Requirements::new(500.0, 99.0, 0.1).unwrap()
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap().with_timezone(&Utc)
    }

    /// A step whose requests took `base_ms` .. `base_ms × 3`, judged against the usual requirements.
    fn step(index: u32, phase: Phase, instance_type: &str, count: u32, target_tps: f64, base_ms: u64) -> StepResult {
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
            generator: Generator { max_in_flight: 100, late_starts: 0, slip_p50_ms: 0.1, slip_p99_ms: 0.5, saturated: false },
            requirements: r,
            passed: misses.is_empty(),
            reasons: misses.iter().map(Miss::describe).collect(),
            misses,
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
            },
            series,
            histogram: histogram::encode(&h),
            success_histogram: histogram::encode(&h),
        }
    }

    fn outcome(instance_type: &str, price: f64, max_tps: Option<f64>, verdict: &str) -> TypeOutcome {
        TypeOutcome {
            summary: TypeSummary {
                instance_type: instance_type.parse().unwrap(),
                max_tps_per_instance: max_tps,
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
    fn recommended_run() -> RunData {
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
            max_tps_per_instance: 100.0,
            verified_by_step: Some(5),
            autoscaling: Autoscaling::new("YOUR-ENDPOINT", 100.0, 0.5, 100.0, 1, 1),
        };
        let types = vec![
            outcome("ml.m5.large", 0.115, None, "fails at 100 TPS"),
            outcome("ml.c5.large", 0.102, Some(100.0), "100 TPS per instance — recommended"),
        ];
        run(steps, Some(recommendation), types)
    }

    /// A completed run in which every step missed a 10 ms limit.
    fn unmet_run() -> RunData {
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
            peak_tps: 100.0,
            requirements: requirements(),
            strategy: StrategyKind::Adaptive,
            prices: "resources/cost/us-east-1.json".into(),
            recommendation,
            types,
            steps: steps.iter().map(StepBrief::from).collect(),
            run_cost: RunCost { endpoint_hours: 0.05, dollars: 0.0052, wall_seconds: 115.0 },
        };
        RunData { summary, plan: None, steps, cost: CostKnown::Complete }
    }

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
    fn the_frontier_keeps_only_configurations_no_cheaper_one_beats() {
        let (a, b, c) = (
            step(1, Phase::Search, "ml.m5.large", 1, 100.0, 10),
            step(2, Phase::Search, "ml.m5.large", 2, 100.0, 5),
            step(3, Phase::Search, "ml.m5.large", 3, 100.0, 8),
        );
        let stairs = frontier(&[(&c, 0.3, 8.0), (&a, 0.1, 10.0), (&b, 0.2, 5.0)], 0.4);
        assert_eq!(
            stairs,
            [(0.1, 10.0), (0.2, 10.0), (0.2, 5.0), (0.4, 5.0)],
            "the dearer, slower configuration is off the frontier"
        );
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
    fn figures_read_naturally() {
        assert_eq!(money(0.102), "$0.102");
        assert_eq!(money(74.46), "$74.46");
        assert_eq!(money(16790.0), "$16,790");
        assert_eq!(ms(0.019), "0.019");
        assert_eq!(ms(424.447), "424.4");
        assert_eq!(tps(97.46), "97.5");
        assert_eq!(tps(0.15625), "0.156");
        assert_eq!(duration(115.3), "1 m 55 s");
        assert_eq!(duration(20.0), "20 s");
        assert_eq!(
            shell_line(&["perfsize".into(), "--payload".into(), "my file.json".into()]),
            "perfsize --payload 'my file.json'"
        );
    }

    fn comparison() -> Comparison {
        let figure = |group: &str, name: &str, unit: &'static str, better, baseline: f64, current: f64, regressed| Figure {
            group: group.into(),
            name: name.into(),
            unit,
            better,
            baseline: Some(baseline),
            current: Some(current),
            change_percent: Some((current - baseline) / baseline * 100.0),
            regressed,
            note: None,
        };
        let mut figures = vec![
            figure("recommendation", "recommended $/hour", "$/h", Better::Lower, 0.102, 0.102, false),
            figure("search ml.m5.large × 1 at 100 TPS", "p99", "ms", Better::Lower, 100.0, 150.0, true),
            figure("search ml.m5.large × 1 at 100 TPS", "achieved TPS", "TPS", Better::Higher, 100.0, 101.0, false),
        ];
        figures[1].note = Some(HOSTILE.into());
        Comparison {
            baseline: HOSTILE.into(),
            current: "runs/current".into(),
            max_regression_percent: 10.0,
            figures,
            regressions: 1,
        }
    }

    #[test]
    fn the_comparison_page_highlights_regressions() {
        let html = render_comparison(&comparison()).unwrap();
        assert!(html.contains("1 regression"), "the total");
        assert!(html.contains("<tr class=\"regressed\">"), "the regressed row is highlighted");
        assert!(html.contains("150.0 ms"), "values carry their unit");
        assert!(html.contains("+50.0%"));
        assert!(html.contains("10%"), "the bound");
        assert!(!html.contains(HOSTILE) && html.contains(ESCAPED));
        assert!(!html.to_lowercase().contains("href=\"http"));
    }
}
