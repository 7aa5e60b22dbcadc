//! From the moments a stream's parts arrived to what the request measured —
//! time to first token, every inter-token gap (a part of k tokens is k
//! tokens: the gap before it spread evenly over them, the first part's
//! tokens having none), time per output token, end-to-end time, token counts
//! — whether it met every streaming limit (good), and the step's sum of them
//! in HdrHistograms. All from the request's *intended* start, like every
//! latency perfsize measures.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::events::{Reported, estimate_tokens};
use crate::load::recorder::new_histogram;
use crate::vocab::{StreamLimits, TokenPace};

/// One stream as it arrived: when each part carrying text came and how
/// many tokens its text is by the estimate, and what the container reported.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub parts: Vec<(Instant, u32)>,
    pub reported: Reported,
}

impl Timeline {
    /// A part with `tokens` estimated tokens arrived at `at` (a part with
    /// none — a usage chunk, `[DONE]` — is no token's arrival).
    pub fn arrived(&mut self, at: Instant, tokens: u32) {
        if tokens > 0 {
            self.parts.push((at, tokens));
        }
    }

    /// Each part's tokens, rescaled so they add up to the count the
    /// container reported when it reported one.
    fn tokens_per_part(&self) -> Vec<u32> {
        let estimated: u32 = self.parts.iter().map(|&(_, k)| k).sum();
        let Some(reported) = self.reported.output.filter(|&r| r > 0 && estimated > 0 && r != estimated) else {
            return self.parts.iter().map(|&(_, k)| k).collect();
        };
        let scale = f64::from(reported) / f64::from(estimated);
        // Largest remainder: whole tokens that add up to the reported count.
        let exact: Vec<f64> = self.parts.iter().map(|&(_, k)| f64::from(k) * scale).collect();
        let mut tokens: Vec<u32> = exact.iter().map(|x| x.floor() as u32).collect();
        let mut order: Vec<usize> = (0..exact.len()).collect();
        order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
        let short = reported.saturating_sub(tokens.iter().sum());
        for &i in order.iter().cycle().take(short as usize) {
            tokens[i] += 1;
        }
        tokens
    }
}

/// What one completed stream measured.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSample {
    pub ttft: Option<Duration>,
    /// (gap per token, tokens) for each part after the first.
    pub gaps: Vec<(Duration, u32)>,
    /// Mean gap per token after the first part.
    pub tpot: Option<Duration>,
    pub e2e: Duration,
    pub output_tokens: u32,
    pub prompt_tokens: u32,
    /// The output count came from the container's own report.
    pub reported: bool,
}

impl StreamSample {
    /// The stream of `timeline`, intended to start at `start`, ended at `end`;
    /// `prompt_characters` of prompt at `characters_per_token` when the
    /// container reported no prompt count.
    pub fn of(
        timeline: &Timeline,
        start: Instant,
        end: Instant,
        prompt_characters: usize,
        characters_per_token: f64,
    ) -> StreamSample {
        let tokens = timeline.tokens_per_part();
        let ttft = timeline.parts.first().map(|&(at, _)| at.saturating_duration_since(start));
        let gaps: Vec<(Duration, u32)> = timeline
            .parts
            .windows(2)
            .zip(&tokens[1.min(tokens.len())..])
            .filter(|&(_, &k)| k > 0)
            .map(|(pair, &k)| (pair[1].0.saturating_duration_since(pair[0].0) / k, k))
            .collect();
        let after_first: u32 = gaps.iter().map(|&(_, k)| k).sum();
        let tpot = match (timeline.parts.first(), timeline.parts.last()) {
            (Some(first), Some(last)) if after_first > 0 => Some(last.0.saturating_duration_since(first.0) / after_first),
            _ => None,
        };
        StreamSample {
            ttft,
            gaps,
            tpot,
            e2e: end.saturating_duration_since(start),
            output_tokens: timeline.reported.output.unwrap_or(tokens.iter().sum()),
            prompt_tokens: timeline.reported.prompt.unwrap_or_else(|| estimate_tokens(prompt_characters, characters_per_token)),
            reported: timeline.reported.output.is_some(),
        }
    }

    /// The request's own p99 gap (nearest rank, a part's k tokens k gaps).
    fn p99_gap(&self) -> Option<Duration> {
        let total: u32 = self.gaps.iter().map(|&(_, k)| k).sum();
        if total == 0 {
            return None;
        }
        let mut gaps = self.gaps.clone();
        gaps.sort_unstable();
        let rank = ((0.99 * f64::from(total)).ceil() as u32).max(1);
        let mut seen = 0;
        gaps.into_iter()
            .find(|&(_, k)| {
                seen += k;
                seen >= rank
            })
            .map(|(gap, _)| gap)
    }

    /// Output tokens over the end-to-end time.
    pub fn tokens_per_second(&self) -> f64 {
        f64::from(self.output_tokens) / self.e2e.as_secs_f64().max(1e-9)
    }

    /// The limits this stream missed; empty means it was good.
    pub fn misses(&self, limits: &StreamLimits) -> Vec<LimitMissed> {
        let over = |limit: Option<f64>, measured: Option<Duration>| match (limit, measured) {
            (Some(ms), Some(d)) => d.as_secs_f64() * 1000.0 > ms,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let mut missed = Vec::new();
        if over(limits.ttft_ms, self.ttft) {
            missed.push(LimitMissed::Ttft);
        }
        let pace = match limits.token_pace {
            Some(TokenPace::InterTokenP99 { ms }) => over(Some(ms), self.p99_gap().or(Some(Duration::ZERO))),
            Some(TokenPace::PerOutputToken { ms }) => over(Some(ms), self.tpot.or(Some(Duration::ZERO))),
            None => false,
        };
        if pace {
            missed.push(LimitMissed::TokenPace);
        }
        if over(limits.e2e_ms, Some(self.e2e)) {
            missed.push(LimitMissed::E2e);
        }
        if limits.min_tokens_per_second.is_some_and(|min| self.tokens_per_second() < min) {
            missed.push(LimitMissed::TokensPerSecond);
        }
        missed
    }
}

/// A limit a stream missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitMissed {
    Ttft,
    TokenPace,
    E2e,
    TokensPerSecond,
}

/// Streams that missed each limit (a stream may miss several), and failed ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MissCounts {
    pub ttft: u64,
    pub token_pace: u64,
    pub e2e: u64,
    pub tokens_per_second: u64,
    pub failed: u64,
}

/// What a streaming step measured, over its measured window: the
/// distributions of its completed streams, the tokens, and how many
/// requests were good.
#[derive(Debug, Clone)]
pub struct StreamRecording {
    pub ttft: Histogram<u64>,
    /// One value per output token after each stream's first part.
    pub itl: Histogram<u64>,
    pub tpot: Histogram<u64>,
    pub e2e: Histogram<u64>,
    /// Per-stream output tokens per second, in milli-tokens a second.
    pub stream_rate: Histogram<u64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Completed streams whose output count the container reported, and
    /// those counted by the estimate.
    pub reported_streams: u64,
    pub estimated_streams: u64,
    pub characters_per_token: f64,
    /// Requests of the measured window that met every limit, and all of them.
    pub good: u64,
    pub judged: u64,
    pub missed: MissCounts,
    pub limits: StreamLimits,
}

impl StreamRecording {
    pub fn new(limits: StreamLimits, characters_per_token: f64) -> StreamRecording {
        StreamRecording {
            ttft: new_histogram(),
            itl: new_histogram(),
            tpot: new_histogram(),
            e2e: new_histogram(),
            stream_rate: Histogram::new_with_bounds(1, 1_000_000_000, 3).expect("valid histogram bounds"),
            input_tokens: 0,
            output_tokens: 0,
            reported_streams: 0,
            estimated_streams: 0,
            characters_per_token,
            good: 0,
            judged: 0,
            missed: MissCounts::default(),
            limits,
        }
    }

    /// A measured request that failed (before or during its stream): never good.
    pub fn failed(&mut self) {
        self.judged += 1;
        self.missed.failed += 1;
    }

    /// A measured stream that ran to its end.
    pub fn completed(&mut self, sample: &StreamSample) {
        let micros = |d: Duration| (d.as_micros() as u64).max(1);
        self.judged += 1;
        let misses = sample.misses(&self.limits);
        self.good += misses.is_empty() as u64;
        for missed in misses {
            match missed {
                LimitMissed::Ttft => self.missed.ttft += 1,
                LimitMissed::TokenPace => self.missed.token_pace += 1,
                LimitMissed::E2e => self.missed.e2e += 1,
                LimitMissed::TokensPerSecond => self.missed.tokens_per_second += 1,
            }
        }
        if let Some(ttft) = sample.ttft {
            self.ttft.saturating_record(micros(ttft));
        }
        for &(gap, k) in &sample.gaps {
            self.itl.saturating_record_n(micros(gap), u64::from(k));
        }
        if let Some(tpot) = sample.tpot {
            self.tpot.saturating_record(micros(tpot));
        }
        self.e2e.saturating_record(micros(sample.e2e));
        self.stream_rate.saturating_record(((sample.tokens_per_second() * 1000.0).round() as u64).max(1));
        self.input_tokens += u64::from(sample.prompt_tokens);
        self.output_tokens += u64::from(sample.output_tokens);
        if sample.reported {
            self.reported_streams += 1;
        } else {
            self.estimated_streams += 1;
        }
    }

    /// Adds what `other` recorded (the shards of one step).
    pub fn merge(&mut self, other: &StreamRecording) {
        for (into, from) in [
            (&mut self.ttft, &other.ttft),
            (&mut self.itl, &other.itl),
            (&mut self.tpot, &other.tpot),
            (&mut self.e2e, &other.e2e),
            (&mut self.stream_rate, &other.stream_rate),
        ] {
            into.add(from).expect("histograms of one step share their bounds");
        }
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.reported_streams += other.reported_streams;
        self.estimated_streams += other.estimated_streams;
        self.good += other.good;
        self.judged += other.judged;
        let (m, o) = (&mut self.missed, &other.missed);
        m.ttft += o.ttft;
        m.token_pace += o.token_pace;
        m.e2e += o.e2e;
        m.tokens_per_second += o.tokens_per_second;
        m.failed += o.failed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Parts of `tokens` each arriving at `at_ms` after the start.
    fn timeline(start: Instant, parts: &[(u64, u32)], reported: Reported) -> Timeline {
        Timeline { parts: parts.iter().map(|&(at, k)| (start + ms(at), k)).collect(), reported }
    }

    #[test]
    fn a_part_of_k_tokens_is_k_tokens_its_gap_spread_over_them() {
        let start = Instant::now();
        let t = timeline(start, &[(100, 3), (130, 3), (190, 2)], Reported::default());
        let s = StreamSample::of(&t, start, start + ms(200), 40, 4.0);
        assert_eq!(s.ttft, Some(ms(100)));
        assert_eq!(s.gaps, vec![(ms(10), 3), (ms(30), 2)], "30 ms over 3 tokens, 60 ms over 2");
        assert_eq!(s.tpot, Some(ms(18)), "90 ms over the 5 tokens after the first part");
        assert_eq!((s.output_tokens, s.prompt_tokens, s.reported), (8, 10, false));
        assert_eq!(s.e2e, ms(200));
        assert_eq!(s.p99_gap(), Some(ms(30)));
    }

    #[test]
    fn a_reported_count_rescales_the_estimate_part_by_part() {
        let start = Instant::now();
        let t = timeline(start, &[(10, 2), (20, 2), (30, 2)], Reported { output: Some(9), prompt: Some(5) });
        assert_eq!(t.tokens_per_part(), vec![3, 3, 3]);
        let s = StreamSample::of(&t, start, start + ms(40), 400, 4.0);
        assert_eq!((s.output_tokens, s.prompt_tokens, s.reported), (9, 5, true), "the container's counts win");
        let uneven = timeline(start, &[(10, 1), (20, 1), (30, 1)], Reported { output: Some(4), prompt: None });
        assert_eq!(uneven.tokens_per_part().iter().sum::<u32>(), 4, "whole tokens adding up to the report");
    }

    #[test]
    fn a_stream_is_good_only_when_it_meets_every_limit_set() {
        let start = Instant::now();
        let t = timeline(start, &[(100, 1), (120, 1), (140, 1), (160, 1)], Reported::default());
        let s = StreamSample::of(&t, start, start + ms(200), 0, 4.0);
        let none = StreamLimits { ttft_ms: None, token_pace: None, e2e_ms: None, min_tokens_per_second: None };
        assert!(s.misses(&none).is_empty());
        let tight = StreamLimits {
            ttft_ms: Some(50.0),
            token_pace: Some(TokenPace::InterTokenP99 { ms: 10.0 }),
            e2e_ms: Some(150.0),
            min_tokens_per_second: Some(100.0),
        };
        assert_eq!(
            s.misses(&tight),
            vec![LimitMissed::Ttft, LimitMissed::TokenPace, LimitMissed::E2e, LimitMissed::TokensPerSecond]
        );
        let loose = StreamLimits {
            ttft_ms: Some(100.0),
            token_pace: Some(TokenPace::PerOutputToken { ms: 20.0 }),
            e2e_ms: Some(200.0),
            min_tokens_per_second: Some(20.0),
        };
        assert!(s.misses(&loose).is_empty(), "limits are inclusive: 4 tokens in 200 ms is 20/s");
    }

    #[test]
    fn the_step_records_every_token_gap_and_counts_goodput() {
        let start = Instant::now();
        let limits = StreamLimits { ttft_ms: Some(150.0), token_pace: None, e2e_ms: None, min_tokens_per_second: None };
        let mut step = StreamRecording::new(limits, 4.0);
        let fast = StreamSample::of(&timeline(start, &[(100, 4), (140, 4)], Reported::default()), start, start + ms(150), 8, 4.0);
        let slow = StreamSample::of(&timeline(start, &[(200, 4)], Reported::default()), start, start + ms(210), 8, 4.0);
        step.completed(&fast);
        step.completed(&slow);
        step.failed();
        assert_eq!((step.good, step.judged), (1, 3));
        assert_eq!(step.missed, MissCounts { ttft: 1, failed: 1, ..MissCounts::default() });
        assert_eq!(step.itl.len(), 4, "a part of 4 tokens after the first is 4 gaps");
        assert_eq!(step.itl.value_at_quantile(0.5) / 1000, 10);
        assert_eq!((step.output_tokens, step.input_tokens, step.estimated_streams), (12, 4, 2));
    }
}
