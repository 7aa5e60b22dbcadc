//! The charts and figures report.html adds for a streaming (LLM) run: each
//! streaming step's TTFT, inter-token and end-to-end distributions by
//! percentile; per configuration, goodput, TTFT p99 and output tokens a
//! second against the offered rate (the goodput curve, and what load does to
//! the first token and the token rate); and the facts — goodput, token
//! figures, cost per million tokens, the ConcurrentRequestsPerModel target.

use super::RunData;
use super::charts::{Axis, Canvas, Chart, Dot, nines};
use crate::format::{compact, ms, percent, trim_number};
use crate::record::StreamingSummary;
use crate::result::{StepResult, StreamResult, histogram};
use crate::vocab::{Phase, StreamRequirements, TokenPace};

/// A labelled value for the page.
pub(super) type Fact = (String, String);
/// A line of a chart: its class, its label and its points.
type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);
/// A streaming step and its streaming figures.
type Streamed<'a> = (&'a StepResult, &'a StreamResult);

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

/// Per configuration searched: goodput, TTFT p99 and output tokens a second
/// against the offered rate.
pub(super) fn load_charts(data: &RunData) -> Vec<Chart> {
    let streamed: Vec<Streamed> =
        data.steps.iter().filter(|s| s.phase == Phase::Search).filter_map(|s| Some((s, s.streaming.as_ref()?))).collect();
    if streamed.is_empty() {
        return Vec::new();
    }
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
    let mut charts = Vec::new();
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
            goodput.dot(step_dot(s, st.goodput_percent, format!("goodput {}", percent(st.goodput_percent))));
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

fn step_dot(s: &StepResult, y: f64, what: String) -> Dot {
    let (class, key) = if s.passed { ("c-pass", "pass") } else { ("c-fail", "fail") };
    Dot {
        class,
        key,
        at: (s.offered_tps, y),
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
                    "{} {} per instance ({} streams held at the highest passing rate × safety {})",
                    scaling.metric,
                    trim_number(scaling.target_value),
                    trim_number(scaling.concurrency_per_instance),
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
