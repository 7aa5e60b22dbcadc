//! The vocabulary of a sizing run: candidate configurations, requirements,
//! and the validated [`Plan`] the CLI builds once from the command line.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::catalog::InstanceType;
use crate::cost::traffic::TrafficProfile;
use crate::cost::{CostError, PriceTable};
use crate::load::{Arrivals, AsyncClient, ClosedLoop, LoadSpec, OpenModel, Pacing, PayloadMix, RateProfile, Shard, Target};
use crate::s3::Buckets;
use crate::scaling::{Cooldowns, ScalingMetric};
use crate::step::adaptive::AdaptiveConfig;
use crate::step::perfsize::PerfsizeConfig;
use crate::step::serverless::ServerlessSearch;
pub use crate::step::serverless::ServerlessWalk;
use crate::step::{Adaptive, Joint, Perfsize, Strategy, StrategyKind, Walk};
use crate::vocab::{
    Axis, Candidate, Fleet, Load, Phase, Probe, Requirements, ServerlessError, ServerlessSize, StreamRequirements,
};

/// A streaming (LLM) workload: requests read as response streams, each
/// judged against the streaming limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Streaming {
    pub requirements: StreamRequirements,
    /// Characters a token, for counts the container does not report.
    pub characters_per_token: f64,
}

/// What the endpoint must serve at its busiest: a rate of new requests,
/// a number of streams in flight (streaming endpoints), or both — then the
/// run searches each and recommends a count that holds both.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Peak {
    Rate(f64),
    Concurrency(u32),
    Both { tps: f64, streams: u32 },
}

impl Peak {
    /// The peak the user named; None when they named neither.
    pub fn of(tps: Option<f64>, streams: Option<u32>) -> Option<Peak> {
        match (tps, streams) {
            (Some(tps), Some(streams)) => Some(Peak::Both { tps, streams }),
            (Some(tps), None) => Some(Peak::Rate(tps)),
            (None, Some(streams)) => Some(Peak::Concurrency(streams)),
            (None, None) => None,
        }
    }

    /// The peak rate, when one was named.
    pub fn tps(&self) -> Option<f64> {
        match *self {
            Peak::Rate(tps) | Peak::Both { tps, .. } => Some(tps),
            Peak::Concurrency(_) => None,
        }
    }

    /// The streams in flight at peak, when named.
    pub fn concurrency(&self) -> Option<u32> {
        match *self {
            Peak::Concurrency(streams) | Peak::Both { streams, .. } => Some(streams),
            Peak::Rate(_) => None,
        }
    }

    /// Each axis a run searches, with the peak on it: the rate first.
    pub fn axes(&self) -> Vec<(Axis, f64)> {
        let rate = self.tps().map(|tps| (Axis::Rate, tps));
        let streams = self.concurrency().map(|c| (Axis::Concurrency, f64::from(c)));
        rate.into_iter().chain(streams).collect()
    }

    /// "100 TPS", "32 streams", or "100 TPS and 32 streams".
    pub fn label(&self) -> String {
        let parts: Vec<String> = self.axes().iter().map(|(axis, level)| axis.load(*level).label()).collect();
        parts.join(" and ")
    }
}

/// What traffic every step sends.
#[derive(Debug, Clone)]
pub struct Traffic {
    pub payloads: Arc<PayloadMix>,
    pub content_type: String,
    pub accept: String,
    pub arrivals: Arrivals,
    pub seed: u64,
    /// None: derived from each step's rate and the latency limit.
    pub max_in_flight: Option<usize>,
    pub request_timeout: Duration,
}

impl Traffic {
    /// The load of one step: `rate` at `target`, its first `warmup` not
    /// measured, Poisson arrivals seeded afresh for each `step`, and the
    /// in-flight bound the user set or one derived from the rate and the
    /// latency limit of `requirements`.
    pub fn load_spec(
        &self,
        target: Target,
        rate: RateProfile,
        warmup: Duration,
        step: u32,
        requirements: &Requirements,
    ) -> LoadSpec {
        self.sharded_spec(target, rate, warmup, step, requirements, Shard::WHOLE)
    }

    /// The load of one step (as [`Traffic::load_spec`]) for `shard` of it:
    /// this process offers its share, and its slots are sized for that share.
    pub fn sharded_spec(
        &self,
        target: Target,
        rate: RateProfile,
        warmup: Duration,
        step: u32,
        requirements: &Requirements,
        shard: Shard,
    ) -> LoadSpec {
        let latency_limit = Duration::from_secs_f64(requirements.latency_ms / 1000.0);
        let own_rate = rate.target() * shard.share();
        let open = OpenModel {
            rate,
            arrivals: self.arrivals,
            seed: self.seed.wrapping_add(step as u64),
            max_in_flight: self
                .max_in_flight
                .unwrap_or_else(|| LoadSpec::derived_max_in_flight(own_rate, latency_limit, self.request_timeout)),
            shard,
        };
        self.spec(target, Pacing::Open(open), warmup)
    }

    /// A closed loop of `concurrency` for `length` (warm-up included) at `target`.
    pub fn closed_loop_spec(&self, target: Target, concurrency: usize, length: Duration, warmup: Duration) -> LoadSpec {
        self.spec(target, Pacing::Closed(ClosedLoop { concurrency, length }), warmup)
    }

    fn spec(&self, target: Target, pacing: Pacing, warmup: Duration) -> LoadSpec {
        LoadSpec {
            target,
            pacing,
            warmup,
            payloads: Arc::clone(&self.payloads),
            content_type: self.content_type.clone(),
            accept: self.accept.clone(),
            request_timeout: self.request_timeout,
        }
    }
}

/// How long each kind of step runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Durations {
    #[serde(with = "crate::format::humantime_text")]
    pub step: Duration,
    #[serde(with = "crate::format::humantime_text")]
    pub warmup: Duration,
    #[serde(with = "crate::format::humantime_text")]
    pub endurance: Duration,
    /// Endurance ramp: from this rate to the peak over `ramp`.
    pub endurance_ramp_start_tps: f64,
    #[serde(with = "crate::format::humantime_text")]
    pub endurance_ramp: Duration,
}

/// The auto-scaling test that follows the fixed-scale answer: the
/// recommended policy applied at candidate minimum counts, under traffic that
/// ramps from 0 to the peak and holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingTest {
    #[serde(with = "crate::format::humantime_text")]
    pub ramp: Duration,
    /// How long the peak is held after the ramp.
    #[serde(with = "crate::format::humantime_text")]
    pub hold: Duration,
    /// Also jump to the peak at once, at the minimum the ramp found.
    pub spike: bool,
    /// Each metric's policy is tested on its own.
    pub metrics: Vec<ScalingMetric>,
    #[serde(with = "crate::format::humantime_text")]
    pub scale_out_cooldown: Duration,
    #[serde(with = "crate::format::humantime_text")]
    pub scale_in_cooldown: Duration,
    #[serde(default)]
    pub procedure: ScalingProcedure,
}

/// How the trials of the auto-scaling test are run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScalingProcedure {
    /// A trial stops the second its failure is certain.
    #[default]
    Perfsize,
    /// perfsizesagemaker's ("How to test for auto scaling settings"): every
    /// trial runs to its end. Kept to measure perfsize against it.
    Perfsizesagemaker,
}

impl std::str::FromStr for ScalingProcedure {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "perfsize" => Ok(ScalingProcedure::Perfsize),
            "perfsizesagemaker" => Ok(ScalingProcedure::Perfsizesagemaker),
            other => Err(format!("`{other}` is not a scaling procedure: use perfsize or perfsizesagemaker")),
        }
    }
}

impl ScalingTest {
    pub fn cooldowns(&self) -> Cooldowns {
        Cooldowns { scale_out: self.scale_out_cooldown, scale_in: self.scale_in_cooldown }
    }

    /// The traffic of a test: a ramp from zero to `peak`, or a spike straight
    /// to it, then the hold.
    pub fn rate(&self, peak: f64, spike: bool) -> RateProfile {
        if spike {
            RateProfile::new(peak, None, self.hold)
        } else {
            RateProfile::new(peak, Some((0.0, self.ramp)), self.ramp + self.hold)
        }
    }
}

/// An asynchronous run: where its objects go, how each request is sent and
/// watched, and the endpoint's own concurrency setting.
#[derive(Debug, Clone)]
pub struct Asynchronous {
    pub buckets: Buckets,
    pub client: AsyncClient,
    /// MaxConcurrentInvocationsPerInstance: each value is a shape of every
    /// type the search walks (empty: SageMaker's choice).
    pub max_concurrent_invocations: Vec<u32>,
}

impl Asynchronous {
    /// The MaxConcurrentInvocationsPerInstance settings to try, in order;
    /// `[None]` lets SageMaker choose.
    pub fn concurrency_walk(&self) -> Vec<Option<u32>> {
        match self.max_concurrent_invocations.as_slice() {
            [] => vec![None],
            walk => walk.iter().copied().map(Some).collect(),
        }
    }
}

/// How the search behaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Search {
    pub strategy: StrategyKind,
    pub types: Vec<InstanceType>,
    /// Serverless candidates in the same walk, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverless: Option<ServerlessWalk>,
    pub count_walk: Option<Vec<u32>>,
    pub tps_walk: Option<Vec<f64>>,
    /// The streams in flight per instance a concurrency search may try;
    /// None: every whole number up to what holds the peak alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_walk: Option<Vec<u32>>,
    pub start_tps: f64,
    /// Relative precision of the capacity search (0.05 = 5 %).
    pub tps_resolution: f64,
    pub endurance_retries: u32,
    pub parallel: usize,
    /// The highest utilisation of the highest sustainable rate a recommended
    /// count may run at at peak (adaptive strategy).
    #[serde(default = "no_margin")]
    pub max_utilization: f64,
}

/// The max concurrencies searched when none are given: SageMaker's range, roughly doubling.
pub const DEFAULT_MAX_CONCURRENCY_WALK: [u32; 8] = [1, 2, 5, 10, 20, 50, 100, 200];

/// How long the cold-start test idles against AWS, which keeps an idle
/// serverless worker warm for minutes (not documented; about 5 observed).
pub const AWS_SERVERLESS_IDLE: Duration = Duration::from_secs(6 * 60);

/// SageMaker Serverless Inference's payload limit.
pub const SERVERLESS_MAX_PAYLOAD_BYTES: usize = 4 * 1024 * 1024;

/// Runs recorded before the margin existed were sized without one.
fn no_margin() -> f64 {
    1.0
}

/// A search step must measure at least this many requests to say anything.
pub const MIN_MEASURED_REQUESTS: f64 = 20.0;

/// perfsizesagemaker's Jenkins default TPS walk, used by `--strategy perfsize`
/// when no walk is given.
pub const PERFSIZE_DEFAULT_TPS_WALK: [f64; 22] =
    [1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 20., 30., 40., 50., 60., 70., 80., 90., 100., 200., 300., 400.];

/// Why the inputs cannot make a plan.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("--type-walk names no instance type")]
    NoTypes,
    #[error(transparent)]
    Serverless(#[from] ServerlessError),
    #[error(
        "serverless endpoints take payloads of at most 4 MB; {name} is {size} bytes: drop the serverless candidates or send a smaller payload"
    )]
    ServerlessPayload { name: String, size: usize },
    #[error(
        "serverless endpoints have no GPU and every instance type of --type-walk has one (so the model needs it): drop the serverless candidates or add CPU types"
    )]
    ServerlessGpu,
    #[error("serverless endpoints do not serve asynchronous inference (--async): drop the serverless candidates")]
    ServerlessAsync,
    #[error("--count-walk must list instance counts of at least 1, got {0:?}")]
    BadCountWalk(Vec<u32>),
    #[error("--tps-walk must list positive rates, got {0:?}")]
    BadTpsWalk(Vec<f64>),
    #[error("--tps-resolution must be between 0 and 1 (0.05 is 5 %), got {0}")]
    BadResolution(f64),
    #[error("--safety-factor must be above 0 and at most 1, got {0}")]
    BadSafetyFactor(f64),
    #[error("--max-utilization must be above 0 and at most 1 (0.9 is 90 %), got {0}")]
    BadUtilization(f64),
    #[error("--parallel must be at least 1")]
    BadParallel,
    #[error("--{name} must be longer than zero")]
    ZeroDuration { name: &'static str },
    #[error("--endurance-ramp-start-tps {start} is above the peak {peak}")]
    RampAbovePeak { start: f64, peak: f64 },
    #[error("--scaling-metric names no metric: use invocations, concurrency or both")]
    NoScalingMetric,
    #[error("--min-instances 0 is for asynchronous endpoints (--async): a real-time endpoint keeps at least one instance")]
    ZeroMinimum,
    #[error(
        "--scaling-metric {0} is not published by asynchronous endpoints: use --scaling-metric backlog (ApproximateBacklogSizePerInstance) with --async"
    )]
    RealTimeMetricOnAsync(ScalingMetric),
    #[error("--scaling-metric backlog is an asynchronous endpoint's metric: add --async, or use invocations or concurrency")]
    BacklogWithoutAsync,
    #[error("--stream sizes a real-time streaming endpoint: {0} cannot be used with it yet")]
    StreamingWith(&'static str),
    #[error("--peak-concurrency counts streams in flight: it sizes a streaming endpoint, so add --stream (or give --peak-tps)")]
    ConcurrencyWithoutStream,
    #[error("--peak-concurrency must be at least 1 stream")]
    ZeroConcurrency,
    #[error("--concurrency-walk must list streams in flight of at least 1, got {0:?}")]
    BadConcurrencyWalk(Vec<u32>),
    #[error("--concurrency-walk is what a search by concurrency walks: add --peak-concurrency")]
    ConcurrencyWalkWithoutPeak,
    #[error(
        "--strategy perfsize walks rates only, as perfsizesagemaker does: search --peak-concurrency with --strategy adaptive"
    )]
    ConcurrencyWithPerfsize,
    #[error("{0} needs a peak rate: add --peak-tps (with --peak-concurrency, both are sized)")]
    NeedsPeakRate(&'static str),
    #[error("--max-test-cost must be a positive number of dollars, got {0}")]
    BadBudget(f64),
    #[error(transparent)]
    Price(#[from] CostError),
}

/// A peak of streams in flight is a streaming run's, searched with the
/// adaptive strategy over whole numbers. (What a rate alone can size —
/// serverless candidates, the auto-scaling test — is refused without a peak
/// rate where it is checked.)
fn check_concurrency(peak: &Peak, search: &Search, streaming: bool) -> Result<(), PlanError> {
    if let Some(walk) = &search.concurrency_walk {
        if peak.concurrency().is_none() {
            return Err(PlanError::ConcurrencyWalkWithoutPeak);
        }
        if walk.is_empty() || walk.contains(&0) {
            return Err(PlanError::BadConcurrencyWalk(walk.clone()));
        }
    }
    let Some(streams) = peak.concurrency() else { return Ok(()) };
    if streams == 0 {
        return Err(PlanError::ZeroConcurrency);
    }
    if !streaming {
        return Err(PlanError::ConcurrencyWithoutStream);
    }
    if search.strategy == StrategyKind::Perfsize {
        return Err(PlanError::ConcurrencyWithPerfsize);
    }
    Ok(())
}

/// An asynchronous endpoint publishes its backlog and no invocation or
/// concurrency figure; a real-time one has no backlog.
fn check_scaling_metrics(metrics: &[ScalingMetric], asynchronous: bool) -> Result<(), PlanError> {
    match metrics.iter().find(|m| m.is_asynchronous() != asynchronous) {
        Some(&metric) if asynchronous => Err(PlanError::RealTimeMetricOnAsync(metric)),
        Some(_) => Err(PlanError::BacklogWithoutAsync),
        None => Ok(()),
    }
}

impl crate::error::HasKind for PlanError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Usage
    }
}

/// A serverless walk SageMaker would accept for this model and traffic:
/// every configuration valid, payloads within 4 MB, no GPU needed, real-time.
fn check_serverless(
    walk: &mut ServerlessWalk,
    types: &[InstanceType],
    traffic: &Traffic,
    asynchronous: bool,
) -> Result<(), PlanError> {
    walk.memory.sort();
    walk.memory.dedup();
    walk.max_concurrency.sort();
    walk.max_concurrency.dedup();
    for memory in &walk.memory {
        for &c in &walk.max_concurrency {
            ServerlessSize::new(*memory, c, walk.provisioned)?;
        }
    }
    if asynchronous {
        return Err(PlanError::ServerlessAsync);
    }
    if let Some(p) = traffic.payloads.payloads().iter().find(|p| p.body.len() > SERVERLESS_MAX_PAYLOAD_BYTES) {
        return Err(PlanError::ServerlessPayload { name: p.name.clone(), size: p.body.len() });
    }
    let has_gpu = |t: &InstanceType| t.spec().gpus > 0 || t.spec().accelerator.is_some();
    if !types.is_empty() && types.iter().all(has_gpu) {
        return Err(PlanError::ServerlessGpu);
    }
    Ok(())
}

/// A sizing run's inputs, checked. The only way to make one is [`Plan::new`],
/// so a `Plan` in hand is a plan that can run.
#[derive(Debug, Clone)]
pub struct Plan {
    peak: Peak,
    requirements: Requirements,
    search: Search,
    durations: Durations,
    traffic: Traffic,
    prices: PriceTable,
    safety_factor: f64,
    min_instances: u32,
    max_test_cost: Option<f64>,
    scaling: Option<ScalingTest>,
    asynchronous: Option<Asynchronous>,
    day: Option<TrafficProfile>,
    streaming: Option<Streaming>,
}

/// The raw parts [`Plan::new`] checks.
#[derive(Debug, Clone)]
pub struct PlanParts {
    pub peak: Peak,
    pub requirements: Requirements,
    pub search: Search,
    pub durations: Durations,
    pub traffic: Traffic,
    pub prices: PriceTable,
    pub safety_factor: f64,
    pub min_instances: u32,
    pub max_test_cost: Option<f64>,
    pub scaling: Option<ScalingTest>,
    /// Size an asynchronous endpoint instead of a real-time one.
    pub asynchronous: Option<Asynchronous>,
    /// The user's traffic over a day, on which instances and serverless are
    /// costed; None without a peak rate (a run sized by concurrency alone).
    pub day: Option<TrafficProfile>,
    /// Size a streaming (LLM) endpoint, judged on goodput; `requirements`
    /// is then the streaming requirements' envelope.
    pub streaming: Option<Streaming>,
}

impl Plan {
    pub fn new(parts: PlanParts) -> Result<Plan, PlanError> {
        let PlanParts {
            peak,
            requirements,
            mut search,
            durations,
            traffic,
            prices,
            safety_factor,
            min_instances,
            max_test_cost,
            mut scaling,
            asynchronous,
            day,
            streaming,
        } = parts;
        assert!(peak.tps().is_none_or(|t| t > 0.0 && t.is_finite()), "the CLI parses the peak as a positive number");
        check_concurrency(&peak, &search, streaming.is_some())?;
        let mut seen = std::collections::HashSet::new();
        search.types.retain(|t| seen.insert(t.clone()));
        if search.types.is_empty() && search.serverless.is_none() {
            return Err(PlanError::NoTypes);
        }
        if let Some(walk) = &mut search.serverless {
            if day.is_none() {
                return Err(PlanError::NeedsPeakRate("a serverless candidate"));
            }
            check_serverless(walk, &search.types, &traffic, asynchronous.is_some())?;
            prices.serverless()?;
        }
        if let Some(walk) = &search.count_walk
            && (walk.is_empty() || walk.contains(&0))
        {
            return Err(PlanError::BadCountWalk(walk.clone()));
        }
        if let Some(walk) = &search.tps_walk
            && (walk.is_empty() || walk.iter().any(|r| !(r.is_finite() && *r > 0.0)))
        {
            return Err(PlanError::BadTpsWalk(walk.clone()));
        }
        if !(search.tps_resolution > 0.0 && search.tps_resolution < 1.0) {
            return Err(PlanError::BadResolution(search.tps_resolution));
        }
        if !(safety_factor > 0.0 && safety_factor <= 1.0) {
            return Err(PlanError::BadSafetyFactor(safety_factor));
        }
        if !(search.max_utilization > 0.0 && search.max_utilization <= 1.0) {
            return Err(PlanError::BadUtilization(search.max_utilization));
        }
        if search.parallel == 0 {
            return Err(PlanError::BadParallel);
        }
        for (name, d) in [("duration", durations.step), ("endurance-duration", durations.endurance)] {
            if d.is_zero() {
                return Err(PlanError::ZeroDuration { name });
            }
        }
        if let Some(peak_tps) = peak.tps()
            && durations.endurance_ramp_start_tps > peak_tps
        {
            return Err(PlanError::RampAbovePeak { start: durations.endurance_ramp_start_tps, peak: peak_tps });
        }
        if let Some(budget) = max_test_cost
            && !(budget.is_finite() && budget > 0.0)
        {
            return Err(PlanError::BadBudget(budget));
        }
        if let Some(test) = &mut scaling {
            for (name, d) in [("scaling-ramp", test.ramp), ("ramp-hold", test.hold)] {
                if d.is_zero() {
                    return Err(PlanError::ZeroDuration { name });
                }
            }
            test.metrics.sort();
            test.metrics.dedup();
            if test.metrics.is_empty() {
                return Err(PlanError::NoScalingMetric);
            }
        }
        if asynchronous.is_none() && min_instances == 0 {
            return Err(PlanError::ZeroMinimum);
        }
        if let Some(test) = &scaling {
            check_scaling_metrics(&test.metrics, asynchronous.is_some())?;
        }
        if scaling.is_some() && peak.tps().is_none() {
            return Err(PlanError::NeedsPeakRate("--scaling-ramp"));
        }
        if streaming.is_some() && (asynchronous.is_some() || scaling.is_some()) {
            return Err(PlanError::StreamingWith(if asynchronous.is_some() { "--async" } else { "--scaling-ramp" }));
        }
        prices.check(&search.types)?;
        if search.strategy == StrategyKind::Perfsize {
            search.count_walk.get_or_insert_with(|| vec![1]);
            search.tps_walk.get_or_insert_with(|| PERFSIZE_DEFAULT_TPS_WALK.to_vec());
        }
        Ok(Plan {
            peak,
            requirements,
            search,
            durations,
            traffic,
            prices,
            safety_factor,
            min_instances,
            max_test_cost,
            scaling,
            asynchronous,
            day,
            streaming,
        })
    }

    /// What the endpoint must serve at its busiest.
    pub fn peak(&self) -> Peak {
        self.peak
    }
    /// The peak rate, when one was named (a run sized by concurrency alone has none).
    pub fn peak_tps(&self) -> Option<f64> {
        self.peak.tps()
    }
    pub fn requirements(&self) -> &Requirements {
        &self.requirements
    }
    pub fn search(&self) -> &Search {
        &self.search
    }
    pub fn durations(&self) -> &Durations {
        &self.durations
    }
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }
    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }
    pub fn safety_factor(&self) -> f64 {
        self.safety_factor
    }
    pub fn min_instances(&self) -> u32 {
        self.min_instances
    }
    pub fn max_test_cost(&self) -> Option<f64> {
        self.max_test_cost
    }
    /// The auto-scaling test, when asked for.
    pub fn scaling(&self) -> Option<&ScalingTest> {
        self.scaling.as_ref()
    }
    /// The user's traffic over a day, when a peak rate was named.
    pub fn day(&self) -> Option<&TrafficProfile> {
        self.day.as_ref()
    }
    /// Asynchronous inference settings, when the endpoint is sized as one.
    /// The streaming workload a streaming run is judged by.
    pub fn streaming(&self) -> Option<&Streaming> {
        self.streaming.as_ref()
    }
    pub fn asynchronous(&self) -> Option<&Asynchronous> {
        self.asynchronous.as_ref()
    }

    /// $/hour a planned candidate bills while deployed (Plan::new checked its prices).
    pub fn hourly(&self, candidate: &Candidate) -> f64 {
        self.prices.standing_per_hour(candidate).expect("Plan::new checked every candidate has a price")
    }

    /// $/hour of one instance of a planned type (every planned type has a price).
    /// What the instance search walks: each type at one instance, for an
    /// asynchronous run once per MaxConcurrentInvocationsPerInstance of its
    /// walk (the settings of a type side by side, then the next type).
    pub fn shapes(&self) -> Vec<Fleet> {
        let walk = self.asynchronous.as_ref().map_or(vec![None], Asynchronous::concurrency_walk);
        self.search.types.iter().flat_map(|t| walk.iter().map(|mci| Fleet::shape(t.clone(), *mci))).collect()
    }

    pub fn price(&self, instance_type: &InstanceType) -> f64 {
        self.prices.hourly(instance_type).expect("Plan::new checked every type has a price")
    }

    /// The lowest rate per instance the adaptive search tries before giving a
    /// type up: ten halvings below the start, but never so low that a step
    /// would measure fewer than [`MIN_MEASURED_REQUESTS`] requests.
    pub fn floor_tps(&self) -> f64 {
        let measurable = MIN_MEASURED_REQUESTS / self.durations.step.as_secs_f64();
        (self.search.start_tps / 1024.0).max(measurable).min(self.search.start_tps)
    }

    /// A fresh strategy for this plan: the instance strategy and the
    /// serverless search, over what the walk names.
    pub fn strategy(&self) -> Box<dyn Strategy> {
        let instances = (!self.search.types.is_empty()).then(|| self.instance_strategy());
        // Plan::new refuses serverless candidates without a peak rate.
        let serverless =
            self.search.serverless.clone().zip(self.peak.tps()).map(|(walk, peak)| ServerlessSearch::new(peak, walk));
        Box::new(Walk::new(instances, serverless))
    }

    /// The instance search: one per axis the peak names, joined when both.
    fn instance_strategy(&self) -> Box<dyn Strategy> {
        let axes = self.peak.axes();
        let joined = axes.len() > 1;
        let mut searches: Vec<Box<dyn Strategy>> =
            axes.into_iter().map(|(axis, peak)| self.axis_strategy(axis, peak, joined)).collect();
        match searches.len() {
            1 => searches.remove(0),
            _ => Box::new(Joint::new(searches, self.priced_shapes())),
        }
    }

    /// The instance search on `axis` for a peak of `peak` on it; `joined`
    /// when another axis's search joins it.
    fn axis_strategy(&self, axis: Axis, peak: f64, joined: bool) -> Box<dyn Strategy> {
        let s = &self.search;
        match s.strategy {
            StrategyKind::Adaptive => {
                let (start_tps, floor_tps, tps_walk) = match axis {
                    Axis::Rate => (s.start_tps, self.floor_tps(), s.tps_walk.clone()),
                    // Streams are whole: the search walks them, starting at the peak.
                    Axis::Concurrency => (peak, 1.0, Some(self.concurrency_walk(peak).into_iter().map(f64::from).collect())),
                };
                Box::new(Adaptive::new(AdaptiveConfig {
                    peak_tps: peak,
                    types: self.priced_shapes(),
                    start_tps,
                    floor_tps,
                    resolution: s.tps_resolution,
                    tps_walk,
                    count_walk: s.count_walk.clone(),
                    endurance_retries: s.endurance_retries,
                    parallel: s.parallel,
                    max_utilization: s.max_utilization,
                    axis,
                    verify_all: joined,
                }))
            }
            // Plan::new refuses a concurrency search with perfsizesagemaker's strategy.
            StrategyKind::Perfsize => Box::new(Perfsize::new(PerfsizeConfig {
                peak_tps: peak,
                types: self.shapes(),
                // Plan::new gave the perfsize strategy its default walks.
                count_walk: s.count_walk.clone().unwrap_or_default(),
                tps_walk: s.tps_walk.clone().unwrap_or_default(),
                endurance_retries: s.endurance_retries,
            })),
        }
    }

    /// The shapes the instance search walks, each with its $/hour.
    fn priced_shapes(&self) -> Vec<(Fleet, f64)> {
        self.shapes().into_iter().map(|shape| (shape.clone(), self.price(&shape.instance_type))).collect()
    }

    /// The streams in flight per instance a concurrency search may try: the
    /// user's walk, or every whole number up to the first that holds a
    /// `peak` of streams alone within the utilisation margin.
    pub fn concurrency_walk(&self, peak: f64) -> Vec<u32> {
        match &self.search.concurrency_walk {
            Some(walk) => walk.clone(),
            None => (1..=(peak / self.search.max_utilization).ceil().max(1.0) as u32).collect(),
        }
    }

    /// The load of `probe`'s step at `target` (`step` seeds its arrivals),
    /// and how much of its start is warm-up: a rate profile for a rate, a
    /// closed loop for streams in flight.
    pub fn step_spec(&self, probe: &Probe, target: Target, step: u32) -> (LoadSpec, Duration) {
        match probe.load {
            Load::Rate(_) => {
                let (rate, warmup) = self.rate_profile(probe);
                (self.traffic.load_spec(target, rate, warmup, step, &self.requirements), warmup)
            }
            // A closed loop has no ramp: its streams open over the warm-up
            // (so that they do not run in step), then it holds them.
            Load::Concurrency(streams) => {
                let spec =
                    self.traffic.closed_loop_spec(target, streams as usize, self.step_length(probe), self.durations.warmup);
                (spec, self.durations.warmup)
            }
        }
    }

    /// How long `probe`'s step drives traffic, warm-up (or ramp) included.
    pub fn step_length(&self, probe: &Probe) -> Duration {
        let d = &self.durations;
        match (probe.load, probe.phase) {
            (Load::Rate(_), _) => self.rate_profile(probe).0.length(),
            (Load::Concurrency(_), Phase::Endurance) => d.warmup + d.endurance,
            (Load::Concurrency(_), _) => d.warmup + d.step,
        }
    }

    /// How long a probe drives traffic (warm-up included) and at what shape.
    pub fn rate_profile(&self, probe: &Probe) -> (RateProfile, Duration) {
        let d = &self.durations;
        let level = probe.load.level();
        match probe.phase {
            // Workers that start cold are warmed first: their cold start is tested on its own.
            Phase::Endurance if d.endurance_ramp.is_zero() && probe.candidate.starts_cold() => {
                (RateProfile::new(level, None, d.warmup + d.endurance), d.warmup)
            }
            Phase::Endurance => {
                let ramp = (!d.endurance_ramp.is_zero()).then_some((d.endurance_ramp_start_tps, d.endurance_ramp));
                (RateProfile::new(level, ramp, d.endurance_ramp + d.endurance), d.endurance_ramp)
            }
            // A burst on cold workers: no warm-up, since warming them is what is measured.
            Phase::ColdStart => (RateProfile::new(level, None, d.step), Duration::ZERO),
            _ => (RateProfile::new(level, None, d.warmup + d.step), d.warmup),
        }
    }

    /// How long the endpoint must see no traffic before `probe` starts: a
    /// cold-start test waits until every on-demand worker has gone cold.
    pub fn idle_before(&self, probe: &Probe) -> Duration {
        match (probe.phase, &self.search.serverless) {
            (Phase::ColdStart, Some(walk)) => walk.idle,
            _ => Duration::ZERO,
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::load::{Payload, PayloadMix};

    /// The parts of a small plan: `peak` TPS on ml.m5.large, 500 ms at p99,
    /// 5 s search steps after 1 s of warm-up, 20 s endurance runs, one payload.
    pub fn parts(peak: f64) -> PlanParts {
        PlanParts {
            peak: Peak::Rate(peak),
            requirements: Requirements::new(500.0, 99.0, 0.1).unwrap(),
            search: Search {
                strategy: StrategyKind::Adaptive,
                serverless: None,
                types: vec!["ml.m5.large".parse().unwrap()],
                count_walk: None,
                tps_walk: None,
                concurrency_walk: None,
                start_tps: peak,
                tps_resolution: 0.05,
                endurance_retries: 3,
                parallel: 1,
                max_utilization: 0.9,
            },
            durations: Durations {
                step: Duration::from_secs(5),
                warmup: Duration::from_secs(1),
                endurance: Duration::from_secs(20),
                endurance_ramp_start_tps: 0.0,
                endurance_ramp: Duration::ZERO,
            },
            traffic: Traffic {
                payloads: Arc::new(PayloadMix::new(vec![Payload::new("p", &b"{}"[..], 1.0)]).unwrap()),
                content_type: "application/json".into(),
                accept: "application/json".into(),
                arrivals: Arrivals::Uniform,
                seed: 1,
                max_in_flight: None,
                request_timeout: Duration::from_secs(70),
            },
            prices: PriceTable::shipped("us-west-2").unwrap(),
            safety_factor: 0.5,
            min_instances: 1,
            max_test_cost: None,
            scaling: None,
            asynchronous: None,
            day: Some(TrafficProfile::peak_all_day(peak)),
            streaming: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(peak: f64, step: Duration) -> Plan {
        let mut parts = testing::parts(peak);
        parts.search.types.push("ml.m5.large".parse().unwrap());
        parts.durations.step = step;
        Plan::new(parts).unwrap()
    }

    #[test]
    fn a_search_never_probes_a_rate_its_steps_cannot_measure() {
        assert_eq!(plan(100.0, Duration::from_secs(5)).floor_tps(), 4.0, "20 requests in a 5 s step");
        assert!((plan(100.0, Duration::from_secs(60)).floor_tps() - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(plan(10_000.0, Duration::from_secs(60)).floor_tps(), 10_000.0 / 1024.0);
    }

    fn streaming() -> Streaming {
        use crate::vocab::{StreamLimits, TokenPace};
        let limits = StreamLimits {
            ttft_ms: Some(800.0),
            token_pace: Some(TokenPace::InterTokenP99 { ms: 60.0 }),
            e2e_ms: None,
            min_tokens_per_second: None,
        };
        Streaming { requirements: StreamRequirements::new(limits, 95.0, 0.1).unwrap(), characters_per_token: 4.0 }
    }

    /// A streaming plan at `peak`, its search changed by `search`.
    fn streaming_plan(peak: Peak, search: impl FnOnce(&mut Search)) -> Result<Plan, PlanError> {
        let mut parts = testing::parts(10.0);
        parts.peak = peak;
        parts.streaming = Some(streaming());
        if peak.tps().is_none() {
            parts.day = None;
        }
        search(&mut parts.search);
        Plan::new(parts)
    }

    #[test]
    fn a_peak_of_streams_is_searched_in_whole_streams_up_to_what_holds_it_alone() {
        let plan = streaming_plan(Peak::Concurrency(9), |_| {}).unwrap();
        assert_eq!(plan.concurrency_walk(9.0), (1..=10).collect::<Vec<_>>(), "9 ÷ 0.9 streams hold the peak alone");
        assert_eq!(plan.peak_tps(), None);
        assert_eq!(plan.peak().label(), "9 streams");
        assert_eq!(Peak::Both { tps: 2.0, streams: 8 }.label(), "2 TPS and 8 streams");
        let walked = streaming_plan(Peak::Concurrency(9), |s| s.concurrency_walk = Some(vec![1, 2, 4, 8, 16])).unwrap();
        assert_eq!(walked.concurrency_walk(9.0), [1, 2, 4, 8, 16]);
    }

    #[test]
    fn a_closed_loop_step_opens_its_streams_over_the_warm_up_and_runs_the_steps_length() {
        let plan = streaming_plan(Peak::Concurrency(9), |_| {}).unwrap();
        let probe = Probe {
            candidate: Fleet::new("ml.m5.large".parse().unwrap(), 1).candidate(),
            load: Load::Concurrency(4),
            phase: Phase::Search,
        };
        let target = Target { endpoint: "e".into(), runtime_url: "http://127.0.0.1:9".into() };
        let (spec, warmup) = plan.step_spec(&probe, target, 1);
        assert_eq!(warmup, Duration::from_secs(1));
        assert_eq!(spec.length(), Duration::from_secs(6), "1 s warm-up + a 5 s step");
        assert!(matches!(spec.pacing, Pacing::Closed(ClosedLoop { concurrency: 4, .. })));
    }

    #[test]
    fn a_peak_of_streams_is_refused_where_it_cannot_be_sized() {
        let refused = |peak, search: fn(&mut Search), streaming: bool| {
            let mut parts = testing::parts(10.0);
            parts.peak = peak;
            parts.streaming = streaming.then(super::tests::streaming);
            search(&mut parts.search);
            Plan::new(parts).err()
        };
        assert_eq!(refused(Peak::Concurrency(8), |_| {}, false), Some(PlanError::ConcurrencyWithoutStream));
        assert_eq!(refused(Peak::Concurrency(0), |_| {}, true), Some(PlanError::ZeroConcurrency));
        assert_eq!(
            refused(Peak::Concurrency(8), |s| s.strategy = StrategyKind::Perfsize, true),
            Some(PlanError::ConcurrencyWithPerfsize)
        );
        assert_eq!(
            refused(Peak::Concurrency(8), |s| s.concurrency_walk = Some(vec![0, 2]), true),
            Some(PlanError::BadConcurrencyWalk(vec![0, 2]))
        );
        assert_eq!(
            refused(Peak::Rate(8.0), |s| s.concurrency_walk = Some(vec![2]), true),
            Some(PlanError::ConcurrencyWalkWithoutPeak)
        );
    }

    #[test]
    fn a_plan_lists_each_type_once() {
        assert_eq!(plan(100.0, Duration::from_secs(5)).search().types.len(), 1);
    }
}
