//! What summary.json says about a streaming (LLM) run: the limits it was
//! judged by, what the recommended configuration costs per million output
//! and input tokens at the peak, the auto-scaling target on
//! ConcurrentRequestsPerModel, and each type's cost per million tokens at
//! the highest rate it kept goodput at. Pure arithmetic over the steps.

use serde::{Deserialize, Serialize};

use crate::result::StepResult;
use crate::vocab::Load;
use crate::vocab::StreamRequirements;

const SECONDS_PER_HOUR: f64 = 3600.0;

/// A target-tracking policy on SageMaker's ConcurrentRequestsPerModel: the
/// streams one instance held while keeping goodput, times the safety factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConcurrencyScaling {
    /// Always `ConcurrentRequestsPerModel`.
    pub metric: String,
    /// Streams in flight per instance: measured, when a search walked
    /// streams; otherwise at the highest passing rate (rate per instance ×
    /// mean end-to-end time, Little's law).
    pub concurrency_per_instance: f64,
    /// How `concurrency_per_instance` is known.
    #[serde(default)]
    pub concurrency_from: ConcurrencyFrom,
    pub safety_factor: f64,
    pub target_value: f64,
}

/// One type at the highest rate it kept goodput at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenCost {
    pub instance_type: String,
    pub instance_count: u32,
    /// The step it was measured in.
    pub step: u32,
    pub tps: f64,
    pub goodput_percent: f64,
    pub output_tokens_per_second: f64,
    pub input_tokens_per_second: f64,
    pub ttft_p99_ms: Option<f64>,
    pub itl_p99_ms: Option<f64>,
    pub cost_per_hour: f64,
    /// What a million tokens cost with the configuration kept this busy.
    pub cost_per_million_output_tokens: Option<f64>,
    pub cost_per_million_input_tokens: Option<f64>,
}

/// The recommended configuration serving the peak, in tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamingRecommendation {
    /// Mean tokens per request, as measured on the recommended type.
    pub output_tokens_per_request: f64,
    pub input_tokens_per_request: f64,
    pub output_tokens_per_second_at_peak: f64,
    pub cost_per_million_output_tokens: Option<f64>,
    pub cost_per_million_input_tokens: Option<f64>,
    pub scaling: Option<ConcurrencyScaling>,
}

/// summary.json's `streaming` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamingSummary {
    pub requirements: StreamRequirements,
    pub recommendation: Option<StreamingRecommendation>,
    /// Each type tried, cheapest per million output tokens first.
    pub candidates: Vec<TokenCost>,
}

/// How the streams one instance held are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConcurrencyFrom {
    /// A closed loop held them.
    Measured,
    /// Rate per instance × mean end-to-end time, at the highest passing rate
    /// (all summaries written before closed loops were searched).
    #[default]
    LittlesLaw,
}

impl ConcurrencyFrom {
    /// How a step held its streams: a closed loop's are measured.
    fn of(load: Load) -> ConcurrencyFrom {
        match load {
            Load::Concurrency(_) => ConcurrencyFrom::Measured,
            Load::Rate(_) => ConcurrencyFrom::LittlesLaw,
        }
    }
}

/// The recommended configuration, as the streaming section needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecommendedStreams<'a> {
    pub instance_type: &'a str,
    /// The configuration's $/hour.
    pub cost_per_hour: f64,
    /// Requests a second at the peak: the peak rate, or the rate the
    /// configuration completed at the peak of streams.
    pub peak_tps: f64,
    /// Streams one instance held, when a search walked streams.
    pub streams_per_instance: Option<f64>,
}

/// Dollars per million tokens at `per_second` tokens for `per_hour` dollars.
fn per_million(per_hour: f64, per_second: f64) -> Option<f64> {
    (per_second > 0.0).then(|| round4(per_hour / (per_second * SECONDS_PER_HOUR) * 1e6))
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// The highest-rate passing streaming step of `instance_type`.
fn best_step<'a>(steps: &'a [StepResult], instance_type: &str) -> Option<&'a StepResult> {
    steps
        .iter()
        .filter(|s| s.passed && s.instance_type == instance_type && s.streaming.is_some())
        .max_by(|a, b| (a.achieved_tps / a.instance_count as f64).total_cmp(&(b.achieved_tps / b.instance_count as f64)))
}

/// A type's cost per million tokens at its best step; `price` is one instance's hourly price.
fn token_cost(step: &StepResult, price: f64) -> Option<TokenCost> {
    let stream = step.streaming.as_ref()?;
    let cost_per_hour = price * step.instance_count as f64;
    Some(TokenCost {
        instance_type: step.instance_type.clone(),
        instance_count: step.instance_count,
        step: step.index,
        tps: step.achieved_tps,
        goodput_percent: stream.goodput_percent,
        output_tokens_per_second: stream.output_tokens_per_second,
        input_tokens_per_second: stream.input_tokens_per_second,
        ttft_p99_ms: stream.ttft_ms.map(|p| p.p99),
        itl_p99_ms: stream.itl_ms.map(|p| p.p99),
        cost_per_hour,
        cost_per_million_output_tokens: per_million(cost_per_hour, stream.output_tokens_per_second),
        cost_per_million_input_tokens: per_million(cost_per_hour, stream.input_tokens_per_second),
    })
}

/// The recommended configuration at its peak, in tokens, with its scaling target.
fn recommendation(steps: &[StepResult], rec: RecommendedStreams, safety: f64) -> Option<StreamingRecommendation> {
    let RecommendedStreams { instance_type, cost_per_hour, peak_tps: peak, streams_per_instance } = rec;
    let step = best_step(steps, instance_type)?;
    let stream = step.streaming.as_ref()?;
    let completed = (stream.token_counting.reported_streams + stream.token_counting.estimated_streams).max(1) as f64;
    let (output, input) = (stream.output_tokens as f64 / completed, stream.input_tokens as f64 / completed);
    let searched = streams_per_instance.map(|n| (n, ConcurrencyFrom::Measured));
    let from_step = step.streams_per_instance().map(|n| (n, ConcurrencyFrom::of(step.load())));
    let scaling = searched.or(from_step).map(|(per_instance, from)| ConcurrencyScaling {
        metric: "ConcurrentRequestsPerModel".into(),
        concurrency_per_instance: round4(per_instance),
        concurrency_from: from,
        safety_factor: safety,
        target_value: round4(per_instance * safety),
    });
    Some(StreamingRecommendation {
        output_tokens_per_request: round4(output),
        input_tokens_per_request: round4(input),
        output_tokens_per_second_at_peak: round4(output * peak),
        cost_per_million_output_tokens: per_million(cost_per_hour, output * peak),
        cost_per_million_input_tokens: per_million(cost_per_hour, input * peak),
        scaling,
    })
}

impl StreamingSummary {
    /// The streaming section of a run judged by `requirements`: `price` gives
    /// one instance's hourly price, `recommended` the recommended configuration.
    pub fn of(
        requirements: StreamRequirements,
        steps: &[StepResult],
        price: impl Fn(&str) -> f64,
        recommended: Option<RecommendedStreams>,
        safety: f64,
    ) -> StreamingSummary {
        let mut types: Vec<&str> = steps.iter().map(|s| s.instance_type.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        let mut candidates: Vec<TokenCost> =
            types.into_iter().filter_map(|t| best_step(steps, t).and_then(|s| token_cost(s, price(t)))).collect();
        candidates.sort_by(|a, b| {
            let cost = |c: &TokenCost| c.cost_per_million_output_tokens.unwrap_or(f64::INFINITY);
            cost(a).total_cmp(&cost(b))
        });
        StreamingSummary {
            requirements,
            recommendation: recommended.and_then(|rec| recommendation(steps, rec, safety)),
            candidates,
        }
    }
}
