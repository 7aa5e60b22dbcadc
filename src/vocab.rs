//! The words every manager shares: the configuration a step tries
//! ([`Candidate`]: instances or a serverless variant), what it must achieve ([`Requirements`]), why a step runs
//! ([`Phase`]) and the step a strategy asks for ([`Probe`]). A leaf: it imports
//! no manager, so every manager can import it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::catalog::InstanceType;

/// Every resource perfsize creates (endpoint, config, model, bucket) starts with this.
pub const NAME_PREFIX: &str = "perfsize-";

/// One configuration to try: instances of one type, or a serverless
/// variant. A sum type, so that a serverless candidate never carries an
/// instance count nor an instance candidate a memory size. Serialized
/// untagged: an instance candidate reads as it always did
/// (`{"instance_type", "count"}`), a serverless one by its own fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Candidate {
    Instances(Fleet),
    Serverless(ServerlessSize),
}

/// Instances of one type behind a production variant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fleet {
    pub instance_type: InstanceType,
    pub count: u32,
    /// An asynchronous endpoint's MaxConcurrentInvocationsPerInstance: how
    /// many requests each instance takes at once (None: SageMaker's choice;
    /// always None in real time). Part of what is sized: it sets what one
    /// instance completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_invocations: Option<u32>,
}

impl Fleet {
    pub fn new(instance_type: InstanceType, count: u32) -> Fleet {
        assert!(count >= 1, "a fleet has at least one instance");
        Fleet { instance_type, count, max_concurrent_invocations: None }
    }

    /// One instance of `instance_type` taking `max_concurrent_invocations`
    /// at once: a shape the search walks counts of.
    pub fn shape(instance_type: InstanceType, max_concurrent_invocations: Option<u32>) -> Fleet {
        Fleet { instance_type, count: 1, max_concurrent_invocations }
    }

    /// The same instances, as a candidate to deploy.
    pub fn candidate(&self) -> Candidate {
        Candidate::Instances(self.clone())
    }

    /// The same type and settings at another count.
    pub fn with_count(&self, count: u32) -> Fleet {
        assert!(count >= 1, "a fleet has at least one instance");
        Fleet { count, ..self.clone() }
    }

    /// Its type and settings, whatever the count: what an endpoint is resized within.
    pub fn shape_of(&self) -> Fleet {
        self.with_count(1)
    }

    /// The type, with the settings that set its capacity when there are any.
    pub fn label(&self) -> String {
        match self.max_concurrent_invocations {
            Some(n) => format!("{} ({n} at once)", self.instance_type),
            None => self.instance_type.to_string(),
        }
    }
}

impl fmt::Display for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} × {}", self.instance_type, self.count)?;
        match self.max_concurrent_invocations {
            Some(n) => write!(f, " ({n} at once per instance)"),
            None => Ok(()),
        }
    }
}

/// What one candidate's endpoint is kept for between probes: the endpoint of
/// an instance shape (type and settings, at one instance) is resized in
/// place for another count; a serverless configuration is its own endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    Instances(Fleet),
    Serverless(ServerlessSize),
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lane::Instances(shape) => f.write_str(&shape.label()),
            Lane::Serverless(s) => write!(f, "{s}"),
        }
    }
}

impl Candidate {
    /// Instances of `instance_type`, at least one.
    pub fn new(instance_type: InstanceType, count: u32) -> Candidate {
        Candidate::Instances(Fleet::new(instance_type, count))
    }

    /// The candidate a result file names, if its type is one perfsize knows.
    pub fn parse(instance_type: &str, count: u32) -> Option<Candidate> {
        (count >= 1).then_some(())?;
        Some(Candidate::new(instance_type.parse().ok()?, count))
    }

    /// The instances, for a candidate that has them.
    pub fn fleet(&self) -> Option<&Fleet> {
        match self {
            Candidate::Instances(fleet) => Some(fleet),
            Candidate::Serverless(_) => None,
        }
    }

    /// The serverless configuration, for a candidate that is one.
    pub fn serverless(&self) -> Option<&ServerlessSize> {
        match self {
            Candidate::Serverless(size) => Some(size),
            Candidate::Instances(_) => None,
        }
    }

    pub fn is_serverless(&self) -> bool {
        matches!(self, Candidate::Serverless(_))
    }

    /// The instance type, or None for a serverless candidate.
    pub fn instance_type(&self) -> Option<&InstanceType> {
        self.fleet().map(|f| &f.instance_type)
    }

    /// Instances billed: none for a serverless candidate.
    pub fn instance_count(&self) -> u32 {
        self.fleet().map_or(0, |f| f.count)
    }

    /// Whether a request the model refuses on this candidate says the
    /// candidate cannot serve it, rather than that the payload is wrong: a
    /// serverless worker with less memory than the model needs fails every
    /// request, where an instance type that loads the model would not.
    pub fn refusals_are_its_own(&self) -> bool {
        self.is_serverless()
    }

    /// Whether its capacity starts cold after idling: serverless workers go
    /// cold after minutes without traffic, instances stay loaded.
    pub fn starts_cold(&self) -> bool {
        self.is_serverless()
    }

    /// What the endpoint is kept for between probes.
    pub fn lane(&self) -> Lane {
        match self {
            Candidate::Instances(f) => Lane::Instances(f.shape_of()),
            Candidate::Serverless(s) => Lane::Serverless(*s),
        }
    }

    /// What a result file and summary.json write as `instance_type`: the
    /// type, or `serverless` (its configuration is written beside it).
    pub fn kind_label(&self) -> String {
        match self {
            Candidate::Instances(f) => f.instance_type.to_string(),
            Candidate::Serverless(_) => SERVERLESS.to_string(),
        }
    }

    /// The parts of resource names and file names that say what it is:
    /// `ml.m5.large`, `2` or `serverless`, `2048mb`, `c8` (and `p2`).
    pub fn name_parts(&self) -> Vec<String> {
        match self {
            Candidate::Instances(f) => {
                let mut parts = vec![f.instance_type.to_string(), f.count.to_string()];
                parts.extend(f.max_concurrent_invocations.map(|n| format!("mci{n}")));
                parts
            }
            Candidate::Serverless(s) => s.name_parts(),
        }
    }
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Candidate::Instances(fleet) => write!(f, "{fleet}"),
            Candidate::Serverless(size) => write!(f, "{size}"),
        }
    }
}

/// How a serverless candidate is named where an instance type would be.
pub const SERVERLESS: &str = "serverless";

/// A serverless worker's memory: whole gigabytes from 1 to 6 (SageMaker's
/// `MemorySizeInMB` accepts 1024, 2048, … 6144 and nothing else).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct MemorySize(u32);

impl MemorySize {
    pub const STEP_MB: u32 = 1024;
    pub const MAX_MB: u32 = 6144;

    pub fn mb(self) -> u32 {
        self.0
    }

    pub fn gb(self) -> f64 {
        f64::from(self.0) / 1024.0
    }

    /// Every size SageMaker accepts, smallest first.
    pub fn all() -> impl Iterator<Item = MemorySize> {
        (1..=Self::MAX_MB / Self::STEP_MB).map(|n| MemorySize(n * Self::STEP_MB))
    }
}

impl TryFrom<u32> for MemorySize {
    type Error = ServerlessError;
    fn try_from(mb: u32) -> Result<MemorySize, ServerlessError> {
        if (Self::STEP_MB..=Self::MAX_MB).contains(&mb) && mb.is_multiple_of(Self::STEP_MB) {
            Ok(MemorySize(mb))
        } else {
            Err(ServerlessError::Memory(mb))
        }
    }
}

impl From<MemorySize> for u32 {
    fn from(m: MemorySize) -> u32 {
        m.0
    }
}

/// A serverless variant's configuration, checked as SageMaker checks it at
/// CreateEndpointConfig: MaxConcurrency 1–200, ProvisionedConcurrency at
/// most MaxConcurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "ServerlessRecord", into = "ServerlessRecord")]
pub struct ServerlessSize {
    memory: MemorySize,
    max_concurrency: u32,
    provisioned: Option<u32>,
}

/// Why a serverless configuration was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ServerlessError {
    #[error("serverless memory must be 1024, 2048, 3072, 4096, 5120 or 6144 MB, got {0}")]
    Memory(u32),
    #[error("serverless max concurrency must be between 1 and {MAX_CONCURRENCY}, got {0}")]
    MaxConcurrency(u32),
    #[error("serverless provisioned concurrency must be between 1 and the max concurrency ({max}), got {provisioned}")]
    Provisioned { provisioned: u32, max: u32 },
}

impl crate::error::HasKind for ServerlessError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Usage
    }
}

/// SageMaker's limit on a serverless variant's MaxConcurrency.
pub const MAX_CONCURRENCY: u32 = 200;

impl ServerlessSize {
    pub fn new(memory: MemorySize, max_concurrency: u32, provisioned: Option<u32>) -> Result<ServerlessSize, ServerlessError> {
        if !(1..=MAX_CONCURRENCY).contains(&max_concurrency) {
            return Err(ServerlessError::MaxConcurrency(max_concurrency));
        }
        if let Some(p) = provisioned
            && !(1..=max_concurrency).contains(&p)
        {
            return Err(ServerlessError::Provisioned { provisioned: p, max: max_concurrency });
        }
        Ok(ServerlessSize { memory, max_concurrency, provisioned })
    }

    pub fn memory(&self) -> MemorySize {
        self.memory
    }

    pub fn max_concurrency(&self) -> u32 {
        self.max_concurrency
    }

    /// Workers kept warm (and billed by the hour); None: all on demand.
    pub fn provisioned(&self) -> Option<u32> {
        self.provisioned
    }

    fn name_parts(&self) -> Vec<String> {
        let mut parts = vec![SERVERLESS.to_string(), format!("{}mb", self.memory.mb()), format!("c{}", self.max_concurrency)];
        parts.extend(self.provisioned.map(|p| format!("p{p}")));
        parts
    }
}

impl fmt::Display for ServerlessSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "serverless {} MB × max concurrency {}", self.memory.mb(), self.max_concurrency)?;
        match self.provisioned {
            Some(p) => write!(f, " ({p} provisioned)"),
            None => Ok(()),
        }
    }
}

/// A [`ServerlessSize`] as files spell it, checked when read.
#[derive(Serialize, Deserialize)]
struct ServerlessRecord {
    memory_size_mb: u32,
    max_concurrency: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provisioned_concurrency: Option<u32>,
}

impl TryFrom<ServerlessRecord> for ServerlessSize {
    type Error = ServerlessError;
    fn try_from(r: ServerlessRecord) -> Result<ServerlessSize, ServerlessError> {
        ServerlessSize::new(MemorySize::try_from(r.memory_size_mb)?, r.max_concurrency, r.provisioned_concurrency)
    }
}

impl From<ServerlessSize> for ServerlessRecord {
    fn from(s: ServerlessSize) -> ServerlessRecord {
        ServerlessRecord {
            memory_size_mb: s.memory.mb(),
            max_concurrency: s.max_concurrency,
            provisioned_concurrency: s.provisioned,
        }
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
    /// A serverless configuration's cold start: a burst after every worker went cold.
    #[serde(rename = "cold-start")]
    ColdStart,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Search => "search",
            Phase::Endurance => "endurance",
            Phase::Scaling => "scaling",
            Phase::Load => "load",
            Phase::ColdStart => "cold-start",
        }
    }
}

/// What a search walks to find a configuration's capacity: the rate of new
/// requests (the open model), or — for streaming endpoints, whose users
/// think in streams — how many streams are always in flight (a closed loop:
/// each stream starts the next request when it ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Axis {
    #[default]
    Rate,
    Concurrency,
}

impl Axis {
    /// The load at `level` on this axis; a concurrency is a whole number of streams.
    pub fn load(self, level: f64) -> Load {
        match self {
            Axis::Rate => Load::Rate(level),
            Axis::Concurrency => Load::Concurrency(level.round().clamp(1.0, u32::MAX as f64) as u32),
        }
    }

    /// The unit a level on this axis is counted in.
    pub fn unit(self) -> &'static str {
        match self {
            Axis::Rate => "TPS",
            Axis::Concurrency => "streams",
        }
    }

    pub fn is_rate(&self) -> bool {
        *self == Axis::Rate
    }
}

/// How much load a probe offers the whole endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Load {
    /// New requests a second.
    Rate(f64),
    /// Streams always in flight.
    Concurrency(u32),
}

impl Load {
    /// The number a search compares: TPS or streams.
    pub fn level(&self) -> f64 {
        match *self {
            Load::Rate(tps) => tps,
            Load::Concurrency(streams) => f64::from(streams),
        }
    }

    pub fn axis(&self) -> Axis {
        match self {
            Load::Rate(_) => Axis::Rate,
            Load::Concurrency(_) => Axis::Concurrency,
        }
    }

    /// The rate offered; None for a closed loop, which sets none.
    pub fn rate(&self) -> Option<f64> {
        match *self {
            Load::Rate(tps) => Some(tps),
            Load::Concurrency(_) => None,
        }
    }

    /// The same load: the same axis at the same level.
    pub fn level_matches(&self, other: &Load) -> bool {
        self.axis() == other.axis() && (self.level() - other.level()).abs() < 1e-9
    }

    /// "12.5 TPS", "8 streams" or "1 stream".
    pub fn label(&self) -> String {
        match self {
            Load::Concurrency(1) => "1 stream".into(),
            _ => format!("{} {}", crate::format::trim_number(self.level()), self.axis().unit()),
        }
    }
}

/// One load step a strategy asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub candidate: Candidate,
    pub load: Load,
    pub phase: Phase,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(mb: u32, max: u32, provisioned: Option<u32>) -> ServerlessSize {
        ServerlessSize::new(MemorySize::try_from(mb).unwrap(), max, provisioned).unwrap()
    }

    #[test]
    fn serverless_limits_are_sagemakers() {
        assert_eq!(MemorySize::try_from(1536), Err(ServerlessError::Memory(1536)));
        assert_eq!(MemorySize::try_from(7168), Err(ServerlessError::Memory(7168)));
        assert_eq!(MemorySize::all().map(u32::from).collect::<Vec<_>>(), [1024, 2048, 3072, 4096, 5120, 6144]);
        let m = MemorySize::try_from(2048).unwrap();
        assert_eq!(ServerlessSize::new(m, 0, None), Err(ServerlessError::MaxConcurrency(0)));
        assert_eq!(ServerlessSize::new(m, 201, None), Err(ServerlessError::MaxConcurrency(201)));
        assert_eq!(ServerlessSize::new(m, 4, Some(5)), Err(ServerlessError::Provisioned { provisioned: 5, max: 4 }));
        assert!(ServerlessSize::new(m, 200, Some(200)).is_ok());
    }

    #[test]
    fn candidates_keep_their_files_and_names() {
        let instances = Candidate::new("ml.m5.large".parse().unwrap(), 2);
        let json = serde_json::to_value(&instances).unwrap();
        assert_eq!(json, serde_json::json!({"instance_type": "ml.m5.large", "count": 2}), "as before the sum type");
        assert_eq!(serde_json::from_value::<Candidate>(json).unwrap(), instances);
        let serverless = Candidate::Serverless(size(2048, 8, Some(2)));
        let json = serde_json::to_value(&serverless).unwrap();
        assert_eq!(json, serde_json::json!({"memory_size_mb": 2048, "max_concurrency": 8, "provisioned_concurrency": 2}));
        assert_eq!(serde_json::from_value::<Candidate>(json).unwrap(), serverless);
        let bad = serde_json::json!({"memory_size_mb": 1000, "max_concurrency": 8});
        assert!(serde_json::from_value::<Candidate>(bad).is_err(), "a file cannot smuggle in an invalid size");
        assert_eq!(serverless.name_parts(), ["serverless", "2048mb", "c8", "p2"]);
        assert_eq!(serverless.to_string(), "serverless 2048 MB × max concurrency 8 (2 provisioned)");
        assert_eq!(serverless.instance_count(), 0);
        assert_eq!(serverless.kind_label(), "serverless");
        assert_ne!(
            serverless.lane(),
            Candidate::Serverless(size(2048, 9, Some(2))).lane(),
            "each configuration is its own endpoint"
        );
        assert_eq!(instances.lane(), Candidate::new("ml.m5.large".parse().unwrap(), 5).lane(), "a count is resized in place");
    }

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
