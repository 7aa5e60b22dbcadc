//! The serverless section of report.html: the configuration the serverless
//! search recommends and what it costs at the user's traffic, how each
//! memory size fared (a rejected one with the endpoint's reason), the
//! cold-start test, and instances against serverless on the same month —
//! both cost curves against monthly volume, the user's volume and the
//! break-even marked.

use super::RunData;
use super::charts::{Axis, Canvas, Chart};
use super::page_charts::anchor;
use crate::cost::compare::{Comparison, Kind};
use crate::format::{compact, compact_dollars, money, ms, thousands};
use crate::record::{ColdStartReport, ServerlessOutcome};

pub(super) struct ServerlessSection {
    /// The recommended configuration, or why there is none.
    pub headline: String,
    pub found: bool,
    pub facts: Vec<(String, String)>,
    pub verified: Option<(String, String)>,
    pub memory: Vec<MemoryRow>,
    pub cold_start: Option<String>,
    pub cold_start_passed: bool,
    /// Which kind is cheaper at the user's traffic, and where that flips.
    pub comparison: Option<String>,
    pub charts: Vec<Chart>,
}

pub(super) struct MemoryRow {
    pub memory: String,
    pub max_concurrency: String,
    pub verdict: String,
    pub rejected: bool,
}

impl ServerlessSection {
    pub(super) fn new(data: &RunData) -> Option<ServerlessSection> {
        let outcome = data.summary.serverless.as_ref()?;
        let comparison = data.summary.comparison.as_ref();
        Some(ServerlessSection {
            headline: outcome
                .recommended
                .as_ref()
                .map_or("No serverless configuration met the requirements".to_string(), |r| r.configuration.to_string()),
            found: outcome.recommended.is_some(),
            facts: facts(outcome),
            verified: outcome.recommended.as_ref().and_then(|r| r.verified_by_step).map(|i| (anchor(i), format!("step {i}"))),
            memory: outcome.memory.iter().map(memory_row).collect(),
            cold_start: outcome.cold_start.as_ref().map(cold_start_sentence),
            cold_start_passed: outcome.cold_start.as_ref().is_some_and(|c| c.passed),
            comparison: comparison.map(comparison_sentence),
            charts: comparison.map(cost_curves).into_iter().collect(),
        })
    }
}

fn facts(outcome: &ServerlessOutcome) -> Vec<(String, String)> {
    let Some(r) = &outcome.recommended else { return Vec::new() };
    vec![
        (money(r.cost_per_month), "per month at your traffic".into()),
        (money(r.cost_per_million_inferences), "per million inferences".into()),
        (money(r.idle_cost_per_hour), "per hour with no traffic (provisioned concurrency)".into()),
        (ms(r.seconds_per_request * 1000.0), "ms billed per request (ModelLatency)".into()),
    ]
}

fn memory_row(m: &crate::step::serverless::MemoryVerdict) -> MemoryRow {
    MemoryRow {
        memory: format!("{} MB", m.memory_size_mb),
        max_concurrency: m.max_concurrency.map_or("–".into(), |c| c.to_string()),
        verdict: m.verdict.clone(),
        rejected: m.rejected,
    }
}

fn cold_start_sentence(c: &ColdStartReport) -> String {
    let share = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:.1}%", v * 100.0));
    let setup = c.model_setup_time_ms.map_or(String::new(), |l| format!(" ModelSetupTime averaged {} ms.", ms(l.avg)));
    format!(
        "After {} s without traffic, a burst at peak (step {}) saw p50 {} ms and p99 {} ms; {} of its requests met a cold worker by CloudWatch, {} by the client (slower than any warm request).{setup}{}",
        compact(c.idle_seconds),
        c.step,
        c.p50_ms.map_or("–".into(), ms),
        c.p99_ms.map_or("–".into(), ms),
        share(c.cold_share_cloudwatch),
        share(c.cold_share_client),
        if c.passed { String::new() } else { format!(" It missed the requirements: {}.", c.reasons.join("; ")) }
    )
}

fn comparison_sentence(c: &Comparison) -> String {
    let cheaper = match c.cheaper {
        Kind::Instances => "Instances are cheaper",
        Kind::Serverless => "Serverless is cheaper",
    };
    let flip = c.break_even_requests_per_month.map_or_else(
        || "The answer does not change from a thousandth to a thousand times this volume.".to_string(),
        |v| format!("The answer flips at {} requests a month (the same daily shape).", thousands(v)),
    );
    format!(
        "{cheaper} at your traffic ({}: {} requests a month): instances {} a month, serverless {}. {flip}",
        c.traffic,
        thousands(c.requests_per_month),
        money(c.instances_per_month),
        money(c.serverless_per_month)
    )
}

/// Both kinds' monthly cost against monthly volume, on log scales.
fn cost_curves(c: &Comparison) -> Chart {
    let title = "Monthly cost against monthly volume";
    let costs = c.curve.iter().flat_map(|p| [p.instances, p.serverless]).filter(|v| *v > 0.0);
    let (lo, hi) = costs.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (Some(first), Some(last)) = (c.curve.first(), c.curve.last()) else { return Chart::empty(title, "no volumes costed") };
    if !lo.is_finite() {
        return Chart::empty(title, "nothing costs anything at these volumes");
    }
    let x = Axis::log(first.requests_per_month, last.requests_per_month, "requests per month", compact);
    let y = Axis::log(lo, hi, "$ per month", compact_dollars);
    let mut canvas = Canvas::new(title, x, y);
    let points =
        |f: fn(&crate::cost::compare::CurvePoint) -> f64| c.curve.iter().map(move |p| Some((p.requests_per_month, f(p))));
    canvas.line("c-capacity", "instances", points(|p| p.instances));
    canvas.line("c-tail", "serverless", points(|p| p.serverless));
    canvas.vrule(c.requests_per_month, "c-judged", "your traffic");
    if let Some(even) = c.break_even_requests_per_month {
        canvas.vrule(even, "c-limit", "break-even");
    }
    canvas.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::compare::CurvePoint;

    #[test]
    fn both_cost_curves_are_drawn_with_the_traffic_and_the_break_even_marked() {
        let curve: Vec<CurvePoint> = (0..5)
            .map(|i| {
                let volume = 1e5 * 10f64.powi(i);
                CurvePoint { requests_per_month: volume, instances: 74.46, serverless: volume * 2e-6 }
            })
            .collect();
        let c = Comparison {
            traffic: "the peak all day".into(),
            requests_per_month: 1e7,
            instances_per_month: 74.46,
            serverless_per_month: 20.0,
            cheaper: Kind::Serverless,
            break_even_requests_per_month: Some(3.7e7),
            curve,
        };
        let chart = cost_curves(&c);
        assert!(chart.empty.is_none());
        assert_eq!(chart.lines.len(), 2, "instances and serverless");
        assert_eq!(chart.rules.len(), 2, "your traffic and the break-even");
        let legend: Vec<&str> = chart.legend.iter().map(|k| k.label.as_str()).collect();
        assert_eq!(legend, ["instances", "serverless", "your traffic", "break-even"]);
        assert!(comparison_sentence(&c).contains("flips at 37,000,000 requests a month"), "{}", comparison_sentence(&c));
    }
}
