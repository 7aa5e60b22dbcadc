//! The charts and figures report.html adds for a streaming (LLM) run: each
//! streaming step's TTFT, inter-token and end-to-end distributions by
//! percentile; across the types searched, output tokens a second and TTFT
//! p99 against the streams each instance held, one line per type (LLM users
//! think in concurrency); per configuration, goodput, TTFT p99 and output
//! tokens a second against the offered rate (the goodput curve, and what load
//! does to the first token and the token rate); and the facts — goodput,
//! token figures, cost per million tokens, the ConcurrentRequestsPerModel
//! target.

use super::RunData;
use super::charts::{Axis, Canvas, Chart, Dot, nines};
use crate::format::{compact, ms, percent, trim_number};
use crate::record::{ConcurrencyFrom, StreamingSummary};
use crate::result::{StepResult, StreamResult, histogram};
use crate::vocab::{Phase, StreamRequirements, TokenPace};

/// A labelled value for the page.
pub(super) type Fact = (String, String);
/// A line of a chart: its class, its label and its points.
type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);
/// A streaming step and its streaming figures.
type Streamed<'a> = (&'a StepResult, &'a StreamResult);

/// The title of the chart of output tokens a second against concurrency.
pub(super) const TOKENS_BY_CONCURRENCY: &str = "Output tokens/s per instance vs streams in flight per instance";
/// The title of the chart of TTFT against concurrency.
pub(super) const TTFT_BY_CONCURRENCY: &str = "TTFT p99 vs streams in flight per instance";
/// One line per instance type, in turn.
const TYPE_CLASSES: [&str; 10] = [
    "c-completed",
    "c-tail",
    "c-p50",
    "c-inflight",
    "c-frontier",
    "c-completed dash",
    "c-tail dash",
    "c-p50 dash",
    "c-inflight dash",
    "c-frontier dash",
];

/// One line per figure of a distribution chart: (class, label, encoded histogram, limit).
fn distributions(st: &StreamResult) -> [(&'static str, &'static str, &str); 3] {
    [
        ("c-p50", "time to first token", &st.ttft_histogram),
        ("c-tail", "inter-token", &st.itl_histogram),
        ("c-completed", "end to end", &st.e2e_histogram),
    ]
}

/// TTFT, ITL and end-to-end time by percentile, limits drawn where set.
pub(super) fn token_distribution_chart(st: &StreamResult) -> Chart {
    const TITLE: &str = "Token timings by percentile";
    let decoded: Vec<_> = distributions(st)
        .into_iter()
        .filter_map(|(class, label, encoded)| Some((class, label, histogram::decode(encoded).ok().filter(|h| !h.is_empty())?)))
        .collect();
    let Some(most) = decoded.iter().map(|(_, _, h)| h.len()).max() else {
        return Chart::empty(TITLE, "no stream completed");
    };
    let x = Axis::nines(most);
    let lines: Vec<Series> = decoded
        .iter()
        .map(|(class, label, h)| {
            let points =
                h.iter_quantiles(4).map(|v| (nines(v.quantile_iterated_to(), &x), v.value_iterated_to() as f64 / 1000.0));
            (*class, *label, points.collect())
        })
        .collect();
    let y = Axis::latency(lines.iter().flat_map(|(_, _, p)| p.iter().map(|p| p.1)), "ms");
    let mut canvas = Canvas::new(TITLE, x, y);
    for (class, label, points) in lines {
        canvas.line(class, label, points.into_iter().map(Some));
    }
    let limits = st.requirements.limits;
    if let Some(ttft) = limits.ttft_ms {
        canvas.hrule(ttft, "c-limit", format!("TTFT limit {} ms", trim_number(ttft)));
    }
    if let Some(TokenPace::InterTokenP99 { ms }) = limits.token_pace {
        canvas.hrule(ms, "c-judged", format!("ITL limit {} ms", trim_number(ms)));
    }
    canvas.finish()
}

/// Across the types searched, output tokens a second and TTFT p99 against
/// streams in flight per instance ([`concurrency_charts`]); then per
/// configuration searched, goodput, TTFT p99 and output tokens a second
/// against the offered rate.
pub(super) fn load_charts(data: &RunData) -> Vec<Chart> {
    let streamed: Vec<Streamed> =
        data.steps.iter().filter(|s| s.phase == Phase::Search).filter_map(|s| Some((s, s.streaming.as_ref()?))).collect();
    if streamed.is_empty() {
        return Vec::new();
    }
    let mut charts = concurrency_charts(&streamed);
    let mut groups: Vec<((&str, u32), Vec<Streamed>)> = Vec::new();
    for (s, st) in &streamed {
        let key = (s.instance_type.as_str(), s.instance_count);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, steps)) => steps.push((s, st)),
            None => groups.push((key, vec![(s, st)])),
        }
    }
    let max_rate = streamed.iter().map(|(s, _)| s.offered_tps.max(s.target_tps)).fold(0.0, f64::max);
    let x = Axis::linear(0.0, max_rate * 1.05, "offered rate, requests/s", compact);
    for ((instance_type, count), mut steps) in groups {
        steps.sort_by(|a, b| a.0.offered_tps.total_cmp(&b.0.offered_tps));
        let configuration = format!("{instance_type} × {count}");
        let target = steps[0].1.requirements.goodput_percent;
        let mut goodput = Canvas::new(
            format!("{configuration}: goodput vs offered rate"),
            x.clone(),
            Axis::linear(0.0, 100.0, "goodput, %", compact),
        );
        goodput.hrule(target, "c-limit", format!("target {}", percent(target)));
        goodput.line("c-tail", "goodput", steps.iter().map(|(s, st)| Some((s.offered_tps, st.goodput_percent))));
        for (s, st) in &steps {
            goodput.dot(step_dot(s, (s.offered_tps, st.goodput_percent), format!("goodput {}", percent(st.goodput_percent))));
        }
        charts.push(goodput.finish());
        let ttft: Vec<Option<(f64, f64)>> = steps.iter().map(|(s, st)| st.ttft_ms.map(|p| (s.offered_tps, p.p99))).collect();
        let mut first = Canvas::new(
            format!("{configuration}: TTFT p99 vs offered rate"),
            x.clone(),
            Axis::latency(ttft.iter().flatten().map(|p| p.1), "TTFT p99, ms"),
        );
        first.line("c-p50", "TTFT p99", ttft);
        charts.push(first.finish());
        let rates: Vec<f64> = steps.iter().map(|(_, st)| st.output_tokens_per_second).collect();
        let top = rates.iter().copied().fold(1.0, f64::max);
        let mut tokens = Canvas::new(
            format!("{configuration}: output tokens/s vs offered rate"),
            x.clone(),
            Axis::linear(0.0, top * 1.1, "output tokens/s", compact),
        );
        tokens.line("c-completed", "output tokens/s", steps.iter().zip(&rates).map(|((s, _), &r)| Some((s.offered_tps, r))));
        charts.push(tokens.finish());
    }
    charts
}

/// Output tokens a second per instance, and TTFT p99, against streams in
/// flight per instance ([`StepResult::streams_per_instance`]): one line per
/// instance type through its search steps (of any count: per instance, they
/// compare), each step a dot linked to its details. What holding more streams
/// buys in throughput and costs in time to the first token.
fn concurrency_charts(streamed: &[Streamed]) -> Vec<Chart> {
    let mut types: Vec<(&str, Vec<(f64, Streamed)>)> = Vec::new();
    for &(s, st) in streamed {
        let Some(streams) = s.streams_per_instance() else { continue };
        match types.iter_mut().find(|(t, _)| *t == s.instance_type) {
            Some((_, steps)) => steps.push((streams, (s, st))),
            None => types.push((s.instance_type.as_str(), vec![(streams, (s, st))])),
        }
    }
    if types.is_empty() {
        return Vec::new();
    }
    for (_, steps) in &mut types {
        steps.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let points = || types.iter().flat_map(|(_, steps)| steps.iter());
    let max_streams = points().map(|(x, _)| *x).fold(0.0, f64::max);
    let x = Axis::linear(0.0, max_streams * 1.05, "streams in flight per instance", compact);
    let tokens_per_instance = |(s, st): &Streamed| st.output_tokens_per_second / f64::from(s.instance_count);
    let top = points().map(|(_, step)| tokens_per_instance(step)).fold(1.0, f64::max);
    let mut tokens =
        Canvas::new(TOKENS_BY_CONCURRENCY, x.clone(), Axis::linear(0.0, top * 1.1, "output tokens/s per instance", compact));
    let ttft = |(_, st): &Streamed| st.ttft_ms.map(|p| p.p99);
    let mut first =
        Canvas::new(TTFT_BY_CONCURRENCY, x, Axis::latency(points().filter_map(|(_, step)| ttft(step)), "TTFT p99, ms"));
    if let Some(limit) = streamed[0].1.requirements.limits.ttft_ms {
        first.hrule(limit, "c-limit", format!("TTFT limit {} ms", trim_number(limit)));
    }
    for (i, (instance_type, steps)) in types.iter().enumerate() {
        let class = TYPE_CLASSES[i % TYPE_CLASSES.len()];
        tokens.line(class, *instance_type, steps.iter().map(|(x, step)| Some((*x, tokens_per_instance(step)))));
        first.line(class, *instance_type, steps.iter().map(|(x, step)| ttft(step).map(|y| (*x, y))));
        for (streams, step @ (s, _)) in steps {
            let at = format!("{} × {} · {} streams per instance", s.instance_type, s.instance_count, trim_number(*streams));
            let rate = tokens_per_instance(step);
            tokens.dot(step_dot(s, (*streams, rate), format!("{at} · {} output tokens/s per instance", trim_number(rate))));
            if let Some(p99) = ttft(step) {
                first.dot(step_dot(s, (*streams, p99), format!("{at} · TTFT p99 {} ms", ms(p99))));
            }
        }
    }
    vec![tokens.finish(), first.finish()]
}

/// Step `s`'s dot at `at`, coloured by its verdict, linked to its details.
fn step_dot(s: &StepResult, at: (f64, f64), what: String) -> Dot {
    let (class, key) = if s.passed { ("c-pass", "pass") } else { ("c-fail", "fail") };
    Dot {
        class,
        key,
        at,
        title: format!("step {}: {} requests/s offered · {what}", s.index, trim_number(s.offered_tps)),
        href: Some(format!("#{}", super::page_charts::anchor(s.index))),
        label: None,
    }
}

/// "TTFT ≤ 800 ms, ITL p99 ≤ 60 ms for 95% of requests, errors ≤ 1% at 8 requests/s".
pub(super) fn requirements_sentence(r: &StreamRequirements, peak: &str) -> String {
    let l = &r.limits;
    let mut limits = Vec::new();
    if let Some(ms) = l.ttft_ms {
        limits.push(format!("TTFT ≤ {} ms", trim_number(ms)));
    }
    match l.token_pace {
        Some(TokenPace::InterTokenP99 { ms }) => limits.push(format!("ITL p99 ≤ {} ms", trim_number(ms))),
        Some(TokenPace::PerOutputToken { ms }) => limits.push(format!("TPOT ≤ {} ms", trim_number(ms))),
        None => {}
    }
    if let Some(ms) = l.e2e_ms {
        limits.push(format!("end to end ≤ {} ms", trim_number(ms)));
    }
    if let Some(rate) = l.min_tokens_per_second {
        limits.push(format!("≥ {} tokens/s a stream", trim_number(rate)));
    }
    format!(
        "{} for {} of requests, errors ≤ {} at {peak}",
        limits.join(", "),
        percent(r.goodput_percent),
        percent(r.max_error_percent)
    )
}

/// A streaming step's own facts.
pub(super) fn step_facts(st: &StreamResult) -> Vec<Fact> {
    let p =
        |p: Option<crate::result::Percentiles>| p.map_or("–".into(), |p| format!("p50 {} · p99 {} ms", ms(p.p50), ms(p.p99)));
    vec![
        ("goodput".into(), st.goodput_sentence()),
        ("time to first token".into(), p(st.ttft_ms)),
        ("inter-token latency".into(), p(st.itl_ms)),
        ("time per output token".into(), p(st.tpot_ms)),
        ("end to end".into(), p(st.e2e_ms)),
        (
            "tokens".into(),
            format!(
                "{} in · {} out · {} out/s ({})",
                st.input_tokens,
                st.output_tokens,
                trim_number(st.output_tokens_per_second),
                st.token_counting.describe()
            ),
        ),
    ]
}

/// The run's streaming facts: cost per million tokens of the recommendation
/// and its scaling target, and every type's cost per million tokens.
pub(super) fn run_facts(streaming: &StreamingSummary) -> Vec<Fact> {
    let dollars = |d: Option<f64>| d.map_or("–".into(), |d| format!("${}", trim_number((d * 100.0).round() / 100.0)));
    let mut facts = Vec::new();
    if let Some(rec) = &streaming.recommendation {
        facts.push((
            "cost per million tokens".into(),
            format!(
                "{} output · {} input, at the peak ({} output tokens/s)",
                dollars(rec.cost_per_million_output_tokens),
                dollars(rec.cost_per_million_input_tokens),
                trim_number(rec.output_tokens_per_second_at_peak)
            ),
        ));
        if let Some(scaling) = &rec.scaling {
            facts.push((
                "scaling target".into(),
                format!(
                    "{} {} per instance ({} streams held {} × safety {})",
                    scaling.metric,
                    trim_number(scaling.target_value),
                    trim_number(scaling.concurrency_per_instance),
                    match scaling.concurrency_from {
                        ConcurrencyFrom::Measured => "in a closed loop",
                        ConcurrencyFrom::LittlesLaw => "at the highest passing rate",
                    },
                    trim_number(scaling.safety_factor)
                ),
            ));
        }
    }
    for c in &streaming.candidates {
        facts.push((
            format!("{} × {}", c.instance_type, c.instance_count),
            format!(
                "{} per million output tokens · {} per million input · {} output tokens/s at {} requests/s (step {}, goodput {})",
                dollars(c.cost_per_million_output_tokens),
                dollars(c.cost_per_million_input_tokens),
                trim_number(c.output_tokens_per_second),
                trim_number(c.tps),
                c.step,
                percent(c.goodput_percent)
            ),
        ));
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::LoadModel;
    use crate::report::fixtures::{recommended_run, step, streaming_step};

    /// Two types searched by concurrency and by rate, at one and two
    /// instances, an endurance step and a step that did not stream.
    fn streamed_run() -> RunData {
        let closed = |concurrency| LoadModel::ClosedLoop { concurrency };
        let mut data = recommended_run();
        let mut endurance = streaming_step(7, "ml.g5.xlarge", 1, closed(64), 4.0, 500, 80, 100.0);
        endurance.phase = Phase::Endurance;
        data.steps = vec![
            // 8 streams on 2 instances (4 each), then 2 on 1 (2 each): drawn in that order of x.
            streaming_step(1, "ml.g5.xlarge", 2, closed(8), 16.0, 500, 120, 800.0),
            streaming_step(2, "ml.g5.xlarge", 1, closed(2), 4.0, 500, 60, 300.0),
            // Little's law: 6 a second of a second each, 3 instances: 2 each.
            streaming_step(3, "ml.g5.2xlarge", 3, LoadModel::Open, 6.0, 1_000, 90, 900.0),
            streaming_step(4, "ml.g5.2xlarge", 1, LoadModel::Open, 8.0, 1_000, 400, 700.0),
            step(5, Phase::Search, "ml.c5.large", 1, 50.0, 20),
            endurance,
        ];
        data
    }

    #[test]
    fn tokens_and_ttft_are_drawn_against_streams_per_instance_one_line_per_type() {
        let data = streamed_run();
        let charts = load_charts(&data);
        let titles: Vec<&str> = charts.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(&titles[..2], [TOKENS_BY_CONCURRENCY, TTFT_BY_CONCURRENCY], "{titles:?}");
        assert!(titles.contains(&"ml.g5.xlarge × 2: goodput vs offered rate"), "the per-configuration charts follow");
        for chart in &charts[..2] {
            assert_eq!(chart.lines.len(), 2, "one line per type: {}", chart.title);
            let lines: Vec<&str> = chart.legend.iter().filter(|k| k.shape != "dot").map(|k| k.label.as_str()).collect();
            assert_eq!(lines, ["ml.g5.xlarge", "ml.g5.2xlarge"]);
            assert_ne!(chart.lines[0].class, chart.lines[1].class, "the types are told apart");
            assert_eq!(chart.marks.len(), 4, "a dot per search step that streamed, not the endurance step");
            assert!(chart.marks.iter().all(|m| m.href.is_some()), "each dot links to its step");
        }
        let titles: Vec<&str> = charts[0].marks.iter().map(|m| m.title.as_str()).collect();
        assert!(titles[0].starts_with("step 2:") && titles[0].contains("2 streams per instance"), "{titles:?}");
        assert!(titles[1].contains("ml.g5.xlarge × 2 · 4 streams per instance · 400 output tokens/s per instance"), "{titles:?}");
        assert!(titles[2].contains("ml.g5.2xlarge × 3 · 2 streams per instance · 300 output tokens/s"), "{titles:?}");
        assert!(titles[3].contains("ml.g5.2xlarge × 1 · 8 streams per instance"), "{titles:?}");
        let ttft: Vec<&str> = charts[1].marks.iter().map(|m| m.title.as_str()).collect();
        assert!(ttft[1].ends_with("TTFT p99 120.0 ms") && ttft[3].ends_with("TTFT p99 400.0 ms"), "{ttft:?}");
        assert_eq!(charts[1].notes, ["TTFT limit 1000 ms is above this chart"], "the limit is named where it cannot be drawn");
    }

    #[test]
    fn a_run_whose_streams_never_completed_has_no_concurrency_charts() {
        let mut data = streamed_run();
        data.steps.retain(|s| s.load_model == LoadModel::Open && s.streaming.is_some());
        for s in &mut data.steps {
            s.streaming.as_mut().unwrap().e2e_ms = None;
        }
        let charts = load_charts(&data);
        assert!(!charts.is_empty() && charts.iter().all(|c| !c.title.contains("per instance")));
    }

    #[test]
    fn the_report_places_the_concurrency_charts() {
        let html = super::super::page::render_report(&streamed_run()).expect("the report renders");
        for title in [TOKENS_BY_CONCURRENCY, TTFT_BY_CONCURRENCY, "streams in flight per instance"] {
            assert!(html.contains(title), "report.html shows {title}");
        }
    }
}
