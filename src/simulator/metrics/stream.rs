//! The streaming part of one second of a variant's series: what its response
//! streams that ended in it were (the simulator's own truth — time to first
//! token, the time of every token, the token counts — which perfsize's
//! streaming measurements are checked against), and what its LLM engines
//! looked like when looked at (in flight, batch, KV cache), and the
//! CloudWatch samples that follow from them. Pure arithmetic.

use std::time::Duration;

use super::names::MetricName;
use super::second::{Outcome, micros};

/// One response stream, as the simulator served it. The time of a PayloadPart
/// is when it was handed to the connection; a part of k tokens after the
/// first part counts as k tokens, its gap from the part before spread evenly
/// over them — as a client that counts tokens right measures them.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamServed {
    pub outcome: Outcome,
    /// From reaching the model to its last token (or its error).
    pub model: Duration,
    /// Time spent outside the model.
    pub overhead: Duration,
    /// From the request's arrival to its first part; None if none was sent.
    pub first_token: Option<Duration>,
    /// One gap per token after the first part's.
    pub token_gaps: Vec<Duration>,
    pub input_tokens: u32,
    /// Tokens sent (all of the output unless the stream failed).
    pub output_tokens: u32,
}

impl StreamServed {
    /// Time per output token: the mean gap after the first part, if there was one.
    fn time_per_output_token(&self) -> Option<Duration> {
        let count = u32::try_from(self.token_gaps.len()).ok().filter(|&n| n > 0)?;
        Some(self.token_gaps.iter().sum::<Duration>() / count)
    }
}

/// A look at a variant's LLM engines, averaged over its instances.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineLook {
    /// Requests in the model (waiting for the batch or in it) per instance.
    pub in_flight_per_instance: f64,
    /// GPUs per instance (0: no GPU metrics).
    pub gpus: u32,
    /// The share of the batch capacity at work (see `llm::Look`).
    pub compute_share: f64,
    /// The share of the KV cache in use.
    pub kv_share: f64,
    /// GPU memory the weights take, percent.
    pub weights_memory_percent: f64,
}

impl EngineLook {
    /// GPUUtilization: percent per GPU, summed over the GPUs (0–100 × GPUs),
    /// as SageMaker reports it.
    fn gpu_utilization(&self) -> f64 {
        self.compute_share * 100.0 * f64::from(self.gpus)
    }

    /// GPUMemoryUtilization: the weights, and the KV cache in use in the
    /// memory left to it; summed over the GPUs likewise.
    fn gpu_memory_utilization(&self) -> f64 {
        let per_gpu = self.weights_memory_percent + (100.0 - self.weights_memory_percent) * self.kv_share;
        per_gpu * f64::from(self.gpus)
    }
}

#[derive(Debug, Default)]
pub struct StreamSecond {
    model_us: Vec<u32>,
    first_token_us: Vec<u32>,
    token_gap_us: Vec<u32>,
    per_output_token_us: Vec<u32>,
    input_tokens: Vec<u32>,
    output_tokens: Vec<u32>,
    looks: Vec<EngineLook>,
}

impl StreamSecond {
    pub fn record(&mut self, served: &StreamServed) {
        self.model_us.push(micros(served.model));
        self.first_token_us.extend(served.first_token.map(micros));
        self.token_gap_us.extend(served.token_gaps.iter().copied().map(micros));
        self.per_output_token_us.extend(served.time_per_output_token().map(micros));
        self.input_tokens.push(served.input_tokens);
        self.output_tokens.push(served.output_tokens);
    }

    pub fn look(&mut self, look: EngineLook) {
        self.looks.push(look);
    }

    /// The streams' ModelLatency samples.
    pub fn model_latencies(&self) -> impl Iterator<Item = f64> + '_ {
        self.model_us.iter().map(|&us| f64::from(us))
    }

    /// Streams in the model per instance over this second's looks: the
    /// streams' share of ConcurrentRequestsPerModel, measured rather than
    /// inferred (a stream lasts longer than the second it ends in).
    pub fn mean_in_flight_per_instance(&self) -> f64 {
        if self.looks.is_empty() {
            return 0.0;
        }
        self.looks.iter().map(|l| l.in_flight_per_instance).sum::<f64>() / self.looks.len() as f64
    }

    /// This second's samples of a streaming-only `metric`, appended to `out`:
    /// one per stream, per token or per look.
    pub fn samples(&self, metric: MetricName, out: &mut Vec<f64>) {
        let as_f64 = |values: &[u32]| values.iter().map(|&v| f64::from(v)).collect::<Vec<_>>();
        let with_gpus = || self.looks.iter().filter(|l| l.gpus > 0);
        match metric {
            MetricName::GpuUtilization => out.extend(with_gpus().map(EngineLook::gpu_utilization)),
            MetricName::GpuMemoryUtilization => out.extend(with_gpus().map(EngineLook::gpu_memory_utilization)),
            MetricName::TimeToFirstToken => out.extend(as_f64(&self.first_token_us)),
            MetricName::InterTokenLatency => out.extend(as_f64(&self.token_gap_us)),
            MetricName::TimePerOutputToken => out.extend(as_f64(&self.per_output_token_us)),
            MetricName::InputTokens => out.extend(as_f64(&self.input_tokens)),
            MetricName::OutputTokens => out.extend(as_f64(&self.output_tokens)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(second: &StreamSecond, metric: MetricName) -> Vec<f64> {
        let mut out = Vec::new();
        second.samples(metric, &mut out);
        out
    }

    #[test]
    fn a_stream_records_its_first_token_every_token_and_its_counts() {
        let mut second = StreamSecond::default();
        second.record(&StreamServed {
            outcome: Outcome::Success,
            model: Duration::from_millis(100),
            overhead: Duration::from_micros(50),
            first_token: Some(Duration::from_millis(40)),
            token_gaps: vec![Duration::from_millis(10), Duration::from_millis(10), Duration::from_millis(40)],
            input_tokens: 12,
            output_tokens: 4,
        });
        assert_eq!(samples(&second, MetricName::TimeToFirstToken), vec![40_000.0]);
        assert_eq!(samples(&second, MetricName::InterTokenLatency), vec![10_000.0, 10_000.0, 40_000.0]);
        assert_eq!(samples(&second, MetricName::TimePerOutputToken), vec![20_000.0]);
        assert_eq!(samples(&second, MetricName::OutputTokens), vec![4.0]);
        assert_eq!(samples(&second, MetricName::InputTokens), vec![12.0]);
        assert_eq!(second.model_latencies().collect::<Vec<_>>(), vec![100_000.0]);
    }

    #[test]
    fn a_stream_that_failed_before_its_first_part_has_no_token_times() {
        let mut second = StreamSecond::default();
        let failed = StreamServed {
            outcome: Outcome::ServerError,
            model: Duration::from_millis(5),
            overhead: Duration::ZERO,
            first_token: None,
            token_gaps: Vec::new(),
            input_tokens: 3,
            output_tokens: 0,
        };
        second.record(&failed);
        assert!(samples(&second, MetricName::TimeToFirstToken).is_empty());
        assert!(samples(&second, MetricName::TimePerOutputToken).is_empty());
        assert_eq!(samples(&second, MetricName::OutputTokens), vec![0.0]);
    }

    #[test]
    fn gpu_metrics_follow_the_batch_and_the_cache_summed_over_gpus() {
        let mut second = StreamSecond::default();
        let look =
            EngineLook { in_flight_per_instance: 6.0, gpus: 4, compute_share: 0.5, kv_share: 0.25, weights_memory_percent: 20.0 };
        second.look(look);
        second.look(EngineLook { in_flight_per_instance: 2.0, compute_share: 0.0, kv_share: 0.0, ..look });
        assert_eq!(samples(&second, MetricName::GpuUtilization), vec![200.0, 0.0]);
        // 20 % weights + a quarter of the other 80 %, on each of 4 GPUs.
        assert_eq!(samples(&second, MetricName::GpuMemoryUtilization), vec![160.0, 80.0]);
        assert_eq!(second.mean_in_flight_per_instance(), 4.0);
        let mut cpu_only = StreamSecond::default();
        cpu_only.look(EngineLook { gpus: 0, ..look });
        assert!(samples(&cpu_only, MetricName::GpuUtilization).is_empty(), "no GPU, no GPU metrics");
    }
}
