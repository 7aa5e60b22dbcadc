//! The words every manager shares: the configuration a step tries
//! ([`Candidate`]), what it must achieve ([`Requirements`]), why a step runs
//! ([`Phase`]) and the step a strategy asks for ([`Probe`]). A leaf: it imports
//! no manager, so every manager can import it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::catalog::InstanceType;

/// Every resource perfsize creates (endpoint, config, model, bucket) starts with this.
pub const NAME_PREFIX: &str = "perfsize-";

/// One configuration to try: an instance type and how many instances.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Candidate {
    pub instance_type: InstanceType,
    pub count: u32,
}

impl Candidate {
    pub fn new(instance_type: InstanceType, count: u32) -> Candidate {
        assert!(count >= 1, "a candidate has at least one instance");
        Candidate { instance_type, count }
    }

    /// The candidate a result file names, if its type is one perfsize knows.
    pub fn parse(instance_type: &str, count: u32) -> Option<Candidate> {
        (count >= 1).then_some(())?;
        Some(Candidate::new(instance_type.parse().ok()?, count))
    }
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} × {}", self.instance_type, self.count)
    }
}

/// What a configuration must achieve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Requirements {
    /// Latency limit in milliseconds at `percentile`.
    pub latency_ms: f64,
    /// The latency percentile judged, 0 < p < 100 (99 by default).
    pub percentile: f64,
    /// Largest acceptable share of failed requests, in percent.
    pub max_error_percent: f64,
}

/// A requirement that cannot be met by any measurement.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequirementError {
    #[error("the latency limit must be a positive number of milliseconds, got {0}")]
    Latency(f64),
    #[error("the latency percentile must be between 0 and 100 (exclusive), got {0}")]
    Percentile(f64),
    #[error("the error budget must be a percentage between 0 and 100, got {0}")]
    ErrorPercent(f64),
    #[error(
        "--stream needs at least one limit: --ttft-p99-ms, --itl-p99-ms, --tpot-p99-ms, --e2e-p99-ms or --min-tokens-per-second"
    )]
    NoStreamLimit,
    #[error("every streaming limit must be a positive number, got {0}")]
    StreamLimit(f64),
    #[error("--goodput must be a percentage above 0 and at most 100, got {0}")]
    Goodput(f64),
}

impl crate::error::HasKind for RequirementError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Usage
    }
}

impl Requirements {
    pub fn new(latency_ms: f64, percentile: f64, max_error_percent: f64) -> Result<Requirements, RequirementError> {
        if !(latency_ms.is_finite() && latency_ms > 0.0) {
            return Err(RequirementError::Latency(latency_ms));
        }
        if !(percentile > 0.0 && percentile < 100.0) {
            return Err(RequirementError::Percentile(percentile));
        }
        if !(0.0..=100.0).contains(&max_error_percent) {
            return Err(RequirementError::ErrorPercent(max_error_percent));
        }
        Ok(Requirements { latency_ms, percentile, max_error_percent })
    }

    /// `p99`, `p99.9`: how the judged percentile is written.
    pub fn percentile_label(&self) -> String {
        format!("p{}", self.percentile)
    }
}

/// How fast the tokens after the first must come, per request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TokenPace {
    /// The request's own p99 inter-token gap, a part of k tokens counting as k gaps.
    InterTokenP99 { ms: f64 },
    /// The request's time per output token: its mean gap after the first token.
    PerOutputToken { ms: f64 },
}

/// The limits each streamed request is held to; a request that meets every
/// one that is set is *good*. At least one is set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StreamLimits {
    /// Time to first token, from the request's intended start.
    pub ttft_ms: Option<f64>,
    pub token_pace: Option<TokenPace>,
    /// Intended start to the stream's end.
    pub e2e_ms: Option<f64>,
    /// Output tokens over the end-to-end time, per stream.
    pub min_tokens_per_second: Option<f64>,
}

/// What a streaming (LLM) configuration must achieve: its own kind of
/// requirement — a step passes on the share of requests meeting every limit
/// (goodput), not on one latency percentile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StreamRequirements {
    pub limits: StreamLimits,
    /// Least share of requests that must be good, percent.
    pub goodput_percent: f64,
    /// Largest acceptable share of failed requests, percent.
    pub max_error_percent: f64,
}

/// The end-to-end time a stream is given when no limit on it is set: what
/// bounds the requests in flight and the generator's tolerated slip.
const STREAM_ENVELOPE_MS: f64 = 60_000.0;

impl StreamRequirements {
    pub fn new(
        limits: StreamLimits,
        goodput_percent: f64,
        max_error_percent: f64,
    ) -> Result<StreamRequirements, RequirementError> {
        let pace = limits.token_pace.map(|p| match p {
            TokenPace::InterTokenP99 { ms } | TokenPace::PerOutputToken { ms } => ms,
        });
        let set = [limits.ttft_ms, pace, limits.e2e_ms, limits.min_tokens_per_second];
        if set.iter().all(Option::is_none) {
            return Err(RequirementError::NoStreamLimit);
        }
        if let Some(bad) = set.into_iter().flatten().find(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(RequirementError::StreamLimit(bad));
        }
        if !(goodput_percent > 0.0 && goodput_percent <= 100.0) {
            return Err(RequirementError::Goodput(goodput_percent));
        }
        if !(0.0..=100.0).contains(&max_error_percent) {
            return Err(RequirementError::ErrorPercent(max_error_percent));
        }
        Ok(StreamRequirements { limits, goodput_percent, max_error_percent })
    }

    /// The real-time envelope the shared parts of a step are judged in: the
    /// error budget, and the end-to-end limit (or a minute) as the latency
    /// that sizes the in-flight bound and the generator's tolerated slip.
    /// No streaming step is judged on its latency percentile.
    pub fn envelope(&self) -> Requirements {
        Requirements {
            latency_ms: self.limits.e2e_ms.unwrap_or(STREAM_ENVELOPE_MS),
            percentile: 99.0,
            max_error_percent: self.max_error_percent,
        }
    }
}

/// Why a step is in the results: sizing search, endurance at peak, a test
/// of the auto-scaling policy, or a stand-alone `perfsize load`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Search,
    Endurance,
    Scaling,
    Load,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Search => "search",
            Phase::Endurance => "endurance",
            Phase::Scaling => "scaling",
            Phase::Load => "load",
        }
    }
}

/// One load step a strategy asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub candidate: Candidate,
    pub tps: f64,
    pub phase: Phase,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(ttft_ms: Option<f64>, e2e_ms: Option<f64>) -> StreamLimits {
        StreamLimits { ttft_ms, token_pace: None, e2e_ms, min_tokens_per_second: None }
    }

    #[test]
    fn streaming_requirements_need_a_usable_limit_and_goodput() {
        assert_eq!(StreamRequirements::new(limits(None, None), 95.0, 1.0), Err(RequirementError::NoStreamLimit));
        assert_eq!(StreamRequirements::new(limits(Some(-5.0), None), 95.0, 1.0), Err(RequirementError::StreamLimit(-5.0)));
        let pace = StreamLimits { token_pace: Some(TokenPace::PerOutputToken { ms: 0.0 }), ..limits(None, None) };
        assert_eq!(StreamRequirements::new(pace, 95.0, 1.0), Err(RequirementError::StreamLimit(0.0)));
        assert_eq!(StreamRequirements::new(limits(Some(100.0), None), 0.0, 1.0), Err(RequirementError::Goodput(0.0)));
        assert_eq!(StreamRequirements::new(limits(Some(100.0), None), 95.0, 101.0), Err(RequirementError::ErrorPercent(101.0)));
        assert!(StreamRequirements::new(limits(Some(100.0), None), 100.0, 0.0).is_ok(), "every request good is a target");
    }

    #[test]
    fn the_envelope_carries_the_error_budget_and_the_end_to_end_limit() {
        let with_e2e = StreamRequirements::new(limits(Some(100.0), Some(8_000.0)), 95.0, 2.0).unwrap().envelope();
        assert_eq!((with_e2e.latency_ms, with_e2e.max_error_percent), (8_000.0, 2.0));
        let without = StreamRequirements::new(limits(Some(100.0), None), 95.0, 2.0).unwrap().envelope();
        assert_eq!(without.latency_ms, STREAM_ENVELOPE_MS);
    }
}
