//! The charts of report.html, assembled from a run's steps: the overview
//! (cost against latency at peak, latency against offered rate per
//! configuration) and each step's distribution, rate and latency series. Data
//! goes in here as values; [`super::charts`] turns it into chart geometry.

use std::collections::BTreeMap;

use super::RunData;
use super::charts::{Axis, Canvas, Chart, Dot, nines};
use crate::format::{compact, compact_dollars, money, ms, tps, trim_number};
use crate::load::SecondStats;
use crate::result::{StepResult, histogram};
use crate::step::Capacity;
use crate::vocab::{Phase, Requirements};

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

pub(super) fn overview_charts(data: &RunData) -> Vec<Chart> {
    let mut charts = vec![frontier_chart(data)];
    charts.extend(latency_vs_rate_charts(data));
    charts
}

/// Cost per hour against the judged latency of every configuration measured
/// at the peak rate, with the cheapest-for-its-latency frontier drawn through
/// the passing ones and the recommendation marked.
fn frontier_chart(data: &RunData) -> Chart {
    let s = &data.summary;
    let r = &s.requirements;
    let title = format!("Cost vs {} at peak ({})", r.percentile_label(), s.peak_label());
    let prices: BTreeMap<String, f64> = s.types.iter().map(|t| (t.summary.instance_type.to_string(), t.price_per_hour)).collect();
    let points: Vec<(&StepResult, f64, f64)> = data
        .steps
        .iter()
        .filter(|st| s.at_peak(st.load()))
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
    let x = Axis::linear(0.0, max_cost * 1.15, "configuration cost, $ per hour", compact_dollars);
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
    // Serverless searches run at the peak (their dimension is memory × max concurrency), not over rates.
    let search: Vec<&StepResult> =
        data.steps.iter().filter(|s| s.phase == Phase::Search && s.latency_ms.is_some() && s.serverless.is_none()).collect();
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
    let x = Axis::linear(0.0, max_rate * 1.05, "offered rate, TPS", compact);
    // Only a capacity in TPS goes on a rate axis (not one in streams in flight).
    let capacity: BTreeMap<String, Capacity> = data
        .summary
        .types
        .iter()
        .filter_map(|t| Some((t.summary.instance_type.to_string(), t.summary.capacity.filter(|c| c.axis.is_rate())?)))
        .collect();
    groups
        .into_iter()
        .map(|((instance_type, count), mut steps)| {
            steps.sort_by(|a, b| a.offered_tps.total_cmp(&b.offered_tps));
            let mut canvas = Canvas::new(format!("{instance_type} × {count}: latency vs offered rate"), x.clone(), y.clone());
            canvas.hrule(r.latency_ms, "c-limit", limit_label(r));
            if let Some(per_instance) = capacity.get(instance_type) {
                let rate = per_instance.at_least * count as f64;
                let bound = if per_instance.is_bracketed() { "" } else { "≥ " };
                canvas.vrule(rate, "c-capacity", format!("capacity {bound}{} TPS", tps(rate)));
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
pub(super) fn distribution_chart(s: &StepResult) -> Chart {
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
    let mut canvas = Canvas::new(title, Axis::exact(0.0, rows.len() as f64, "seconds", compact), y);
    let warmup = rows.iter().filter(|row| row.warmup).count();
    canvas.band(0.0, warmup as f64, "warm-up");
    canvas
}

/// Each second's figure is drawn at the middle of that second.
fn mid(row: &SecondStats) -> f64 {
    row.second as f64 + 0.5
}

/// Requests offered, completed and failed per second, the requests in
/// flight at the end of each, and where in-flight began to climb when the
/// step could not hold its rate.
pub(super) fn rate_chart(s: &StepResult) -> Chart {
    // An asynchronous step's work in flight is its backlog: submitted, no output seen yet.
    let (title, offered, in_flight) = match s.asynchronous {
        Some(_) => ("Submissions, completions and backlog per second", "submitted", "backlog"),
        None => ("Rate per second", "offered", "in flight"),
    };
    let rows = schedule(s);
    if rows.is_empty() {
        return Chart::empty(title, "no per-second figures recorded");
    }
    let max = rows.iter().map(|row| row.offered.max(row.completed).max(row.in_flight)).max().unwrap_or(1) as f64;
    let axis = Axis::linear(0.0, max, format!("requests per second · {in_flight}"), compact);
    let mut canvas = seconds_canvas(title, rows, axis);
    // Offered goes over completed: dashed, it stays visible where they agree.
    canvas.line("c-completed", "completed", rows.iter().map(|row| Some((mid(row), row.completed as f64))));
    canvas.line("c-offered dash", offered, rows.iter().map(|row| Some((mid(row), row.offered as f64))));
    canvas.line("c-errors", "errors", rows.iter().map(|row| Some((mid(row), row.errors as f64))));
    canvas.line("c-inflight", in_flight, rows.iter().map(|row| Some((row.second as f64 + 1.0, row.in_flight as f64))));
    if let Some(onset) = s.stationarity.as_ref().and_then(|st| st.onset_second) {
        canvas.vrule(onset as f64, "c-limit", format!("{in_flight} began to climb"));
    }
    canvas.finish()
}

/// p50 and p99 of the requests completed in each second.
pub(super) fn latency_series_chart(s: &StepResult) -> Chart {
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

/// The id of a step's detail section, which the step table and the charts link to.
pub(super) fn anchor(index: u32) -> String {
    format!("step-{index}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::step;

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
}
