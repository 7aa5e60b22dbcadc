//! A streaming step's own figures, as its result carries them: time to
//! first token, inter-token latency, time per output token and end-to-end
//! distributions; tokens in and out and their rates; where the token counts
//! came from; and goodput — the share of requests that met every streaming
//! limit — which is what the step is judged on. Also the streams a step held
//! in flight per instance ([`StepResult::streams_per_instance`]), the x of
//! LLM users' "tokens/s and TTFT against concurrency".

use serde::{Deserialize, Serialize};

use super::histogram::{self, Percentiles};
use super::{StepResult, round3};
use crate::format::trim_number;
use crate::load::{LoadModel, MissCounts, StreamRecording};
use crate::vocab::StreamRequirements;

/// Per-stream output tokens a second: the low tail is the one that hurts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StreamRate {
    pub p50: f64,
    /// One stream in ten was this slow or slower.
    pub p10: f64,
    pub p1: f64,
}

/// How output tokens were counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// The container reported every stream's count (TGI/LMI details, OpenAI usage).
    Reported,
    /// No count was reported: estimated from the text at a number of characters a token.
    Estimated,
    /// Some streams reported, some estimated.
    Mixed,
}

/// Where the token counts came from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenCounting {
    pub source: TokenSource,
    pub reported_streams: u64,
    pub estimated_streams: u64,
    /// The estimate's characters a token (`--chars-per-token`).
    pub characters_per_token: f64,
}

/// What a streaming step measured, and its goodput.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamResult {
    pub requirements: StreamRequirements,
    /// Share of the measured requests that met every limit, percent.
    pub goodput_percent: f64,
    pub good: u64,
    pub judged: u64,
    /// Requests that missed each limit (one may miss several), and those that failed outright.
    pub missed: MissCounts,
    /// From the intended start to the first token.
    pub ttft_ms: Option<Percentiles>,
    /// Every output token after each stream's first part, a part of k tokens k gaps.
    pub itl_ms: Option<Percentiles>,
    pub tpot_ms: Option<Percentiles>,
    pub e2e_ms: Option<Percentiles>,
    pub stream_tokens_per_second: Option<StreamRate>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Over the measured window.
    pub input_tokens_per_second: f64,
    pub output_tokens_per_second: f64,
    pub token_counting: TokenCounting,
    /// Encoded HdrHistograms (µs) of TTFT, ITL and end-to-end time, for the report.
    pub ttft_histogram: String,
    pub itl_histogram: String,
    pub e2e_histogram: String,
}

impl TokenCounting {
    /// Where the counts came from, in words.
    pub fn describe(&self) -> String {
        let per_token = trim_number(self.characters_per_token);
        match self.source {
            TokenSource::Reported => "reported by the container".to_string(),
            TokenSource::Estimated => format!("estimated at {per_token} characters a token"),
            TokenSource::Mixed => format!(
                "{} streams reported, {} estimated at {per_token} characters a token",
                self.reported_streams, self.estimated_streams
            ),
        }
    }
}

impl StreamResult {
    /// "98% of 120 requests met every limit (target 95%; missed …)".
    pub fn goodput_sentence(&self) -> String {
        let m = &self.missed;
        format!(
            "{}% of {} requests met every limit (target {}%; missed TTFT {} · token pace {} · e2e {} · tokens/s {} · failed {})",
            trim_number(self.goodput_percent),
            self.judged,
            trim_number(self.requirements.goodput_percent),
            m.ttft,
            m.token_pace,
            m.e2e,
            m.tokens_per_second,
            m.failed
        )
    }

    /// The figures of `recording` over `seconds` measured, judged by `requirements`.
    pub fn of(recording: &StreamRecording, requirements: StreamRequirements, seconds: f64) -> StreamResult {
        let r = recording;
        let rate = |q: f64| r.stream_rate.value_at_quantile(q) as f64 / 1000.0;
        let source = match (r.reported_streams, r.estimated_streams) {
            (_, 0) => TokenSource::Reported,
            (0, _) => TokenSource::Estimated,
            _ => TokenSource::Mixed,
        };
        let per_second = |n: u64| round3(n as f64 / seconds.max(1e-9));
        StreamResult {
            requirements,
            goodput_percent: if r.judged == 0 { 0.0 } else { round3(r.good as f64 / r.judged as f64 * 100.0) },
            good: r.good,
            judged: r.judged,
            missed: r.missed,
            ttft_ms: Percentiles::of(&r.ttft),
            itl_ms: Percentiles::of(&r.itl),
            tpot_ms: Percentiles::of(&r.tpot),
            e2e_ms: Percentiles::of(&r.e2e),
            stream_tokens_per_second: (!r.stream_rate.is_empty()).then(|| StreamRate {
                p50: rate(0.5),
                p10: rate(0.1),
                p1: rate(0.01),
            }),
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            input_tokens_per_second: per_second(r.input_tokens),
            output_tokens_per_second: per_second(r.output_tokens),
            token_counting: TokenCounting {
                source,
                reported_streams: r.reported_streams,
                estimated_streams: r.estimated_streams,
                characters_per_token: r.characters_per_token,
            },
            ttft_histogram: histogram::encode(&r.ttft),
            itl_histogram: histogram::encode(&r.itl),
            e2e_histogram: histogram::encode(&r.e2e),
        }
    }

    /// Goodput below its target.
    pub fn short_of_goodput(&self) -> bool {
        self.goodput_percent < self.requirements.goodput_percent
    }

    /// A few lines for a terminal.
    pub fn summary(&self) -> String {
        use crate::format::ms;
        let line = |name: &str, p: &Option<Percentiles>| {
            p.as_ref().map_or(String::new(), |p| {
                format!("  {name:<9} p50 {} · p90 {} · p99 {} · max {} ms\n", ms(p.p50), ms(p.p90), ms(p.p99), ms(p.max))
            })
        };
        let mut out = String::new();
        out.push_str(&line("TTFT", &self.ttft_ms));
        out.push_str(&line("ITL", &self.itl_ms));
        out.push_str(&line("TPOT", &self.tpot_ms));
        out.push_str(&line("e2e", &self.e2e_ms));
        let counted = self.token_counting.describe();
        out.push_str(&format!(
            "  tokens    {} in · {} out · {} out/s ({counted})\n",
            self.input_tokens,
            self.output_tokens,
            trim_number(self.output_tokens_per_second)
        ));
        if let Some(rate) = &self.stream_tokens_per_second {
            out.push_str(&format!(
                "  per stream  p50 {} · p10 {} · p1 {} tokens/s\n",
                trim_number(rate.p50),
                trim_number(rate.p10),
                trim_number(rate.p1)
            ));
        }
        out.push_str(&format!("  goodput   {}\n", self.goodput_sentence()));
        out
    }
}

impl StepResult {
    /// Streams in flight per instance during a step that streamed: a closed
    /// loop's concurrency over the instances; an open model's by Little's law,
    /// achieved rate × mean end-to-end time, over the instances. None for a
    /// step that did not stream, that has no instances of its own (`--url`),
    /// or whose open-model streams never completed (no end-to-end time).
    pub fn streams_per_instance(&self) -> Option<f64> {
        let stream = self.streaming.as_ref()?;
        let instances = f64::from(self.instance_count);
        if instances <= 0.0 {
            return None;
        }
        let in_flight = match self.load_model {
            LoadModel::ClosedLoop { concurrency } => concurrency as f64,
            LoadModel::Open => self.achieved_tps * stream.e2e_ms?.mean / 1000.0,
        };
        Some(in_flight / instances)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{StreamLimits, TokenPace};

    fn requirements(goodput: f64) -> StreamRequirements {
        let limits = StreamLimits {
            ttft_ms: Some(100.0),
            token_pace: Some(TokenPace::InterTokenP99 { ms: 50.0 }),
            e2e_ms: None,
            min_tokens_per_second: None,
        };
        StreamRequirements::new(limits, goodput, 1.0).unwrap()
    }

    #[test]
    fn goodput_is_the_share_of_good_requests_and_says_where_counts_came_from() {
        let mut recording = StreamRecording::new(requirements(90.0).limits, 4.0);
        recording.good = 9;
        recording.judged = 10;
        recording.estimated_streams = 10;
        recording.output_tokens = 1000;
        let result = StreamResult::of(&recording, requirements(90.0), 10.0);
        assert_eq!(result.goodput_percent, 90.0);
        assert!(!result.short_of_goodput(), "90% meets a 90% target");
        assert!(StreamResult::of(&recording, requirements(95.0), 10.0).short_of_goodput());
        assert_eq!(result.token_counting.source, TokenSource::Estimated);
        assert_eq!(result.output_tokens_per_second, 100.0);
        assert!(result.summary().contains("estimated at 4 characters a token"), "{}", result.summary());
    }

    #[test]
    fn streams_per_instance_are_a_closed_loops_concurrency_or_littles_law_over_the_instances() {
        use crate::report::fixtures::{step, streaming_step};
        use crate::vocab::Phase;
        let closed = streaming_step(1, "ml.g5.xlarge", 2, LoadModel::ClosedLoop { concurrency: 8 }, 10.0, 500, 80, 400.0);
        assert_eq!(closed.streams_per_instance(), Some(4.0), "8 streams held over 2 instances");
        // 10 streams a second of half a second each: 5 in flight, over 2 instances.
        let open = streaming_step(2, "ml.g5.xlarge", 2, LoadModel::Open, 10.0, 500, 80, 400.0);
        assert_eq!(open.streams_per_instance(), Some(2.5));
        let mut none_completed = open.clone();
        none_completed.streaming.as_mut().unwrap().e2e_ms = None;
        assert_eq!(none_completed.streams_per_instance(), None, "no stream ended: nothing to apply Little's law to");
        let mut no_instances = closed.clone();
        no_instances.instance_count = 0;
        assert_eq!(no_instances.streams_per_instance(), None, "a --url target has no instances of its own");
        assert_eq!(step(3, Phase::Search, "ml.g5.xlarge", 1, 10.0, 50).streams_per_instance(), None, "did not stream");
    }
}
