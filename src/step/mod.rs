//! The step manager: pure decision logic. Given the requirements and every
//! outcome so far, a [`Strategy`] names the next load step to run (instance
//! type × count, rate, phase) or concludes with a recommendation. No I/O: the
//! sizing run feeds it outcomes, and unit tests feed it hand-made ones.
//!
//! - [`adaptive`] (default): best-first branch and bound over instance types
//!   by the lowest cost each could still reach; a search per type that starts
//!   at the peak; endurance runs at peak; types that cannot beat a verified
//!   configuration are dropped; the winner's one-instance [`Capacity`] is
//!   bracketed for the auto-scaling target.
//! - [`perfsize`]: perfsizesagemaker's algorithm, step for step.
//!
//! A peak of both a rate and streams in flight is searched on each axis,
//! one after the other, and [`Joint`] recommends what holds both.
//!
//! Serverless candidates in the same walk are searched by
//! [`serverless::ServerlessSearch`] (memory × max concurrency: there is no
//! count), after the instance strategy: [`Walk`] runs both and joins their
//! conclusions.

pub mod adaptive;
mod joint;
pub mod perfsize;
mod search;
pub mod serverless;

use serde::{Deserialize, Serialize};

use crate::catalog::InstanceType;
use crate::format::tps;
use crate::result::{Miss, StepResult};
use crate::vocab::{Axis, Candidate, Fleet, Lane, Probe};
use serverless::{ServerlessConclusion, ServerlessSearch};

pub use adaptive::Adaptive;
pub use joint::Joint;
pub use perfsize::Perfsize;

/// What a probe showed, reduced to what decisions need.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Measured {
        passed: bool,
        /// Judged latency ÷ its limit (1.0 = exactly at the limit).
        latency_ratio: Option<f64>,
        /// Error percent ÷ the error budget (0 when there is no budget and no error).
        error_ratio: f64,
        /// Failed for a reason noise cannot explain (rate not delivered, a queue that grew through the
        /// step — already a statistical verdict —, generator saturated, no traffic).
        hard_failure: bool,
        /// Short reasons, for conclusions.
        reasons: Vec<String>,
    },
    /// The configuration could not be deployed.
    NotDeployed { reason: String },
}

/// Within this relative distance of a limit, a single measurement is not trusted.
pub const NOISE_BAND: f64 = 0.10;

/// Instances the peak needs when one sustains `per_instance` TPS. Floating
/// point must not turn an exact 15 into 16: the ratio is rounded a hair down
/// before the ceiling, as perfsizesagemaker's decimals would compute it.
pub fn instances_needed(peak_tps: f64, per_instance: f64) -> u32 {
    ((peak_tps / per_instance) * (1.0 - 1e-12)).ceil().clamp(1.0, u32::MAX as f64) as u32
}

impl Outcome {
    pub fn from_step(step: &StepResult) -> Outcome {
        let latency_ratio = step.judged_latency_ms.map(|l| l / step.requirements.latency_ms);
        let budget = step.requirements.max_error_percent;
        let error_ratio = if budget > 0.0 {
            step.error_percent / budget
        } else if step.error_percent > 0.0 {
            f64::INFINITY
        } else {
            0.0
        };
        let hard_failure = step.misses.iter().any(|m| {
            matches!(
                m,
                Miss::Rate { .. } | Miss::Generator { .. } | Miss::Unsustainable { .. } | Miss::NoTraffic | Miss::Interrupted
            )
        });
        Outcome::Measured { passed: step.passed, latency_ratio, error_ratio, hard_failure, reasons: step.reasons.clone() }
    }

    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Measured { passed: true, .. })
    }

    /// Whether the outcome sits so close to a limit that one measurement
    /// should not decide it.
    pub fn near_boundary(&self) -> bool {
        match self {
            Outcome::Measured { latency_ratio, error_ratio, hard_failure: false, .. } => {
                latency_ratio.is_some_and(|r| (r - 1.0).abs() <= NOISE_BAND)
                    || (error_ratio.is_finite() && *error_ratio > 0.0 && (error_ratio - 1.0).abs() <= 0.5)
            }
            _ => false,
        }
    }

    pub fn reasons(&self) -> Vec<String> {
        match self {
            Outcome::Measured { reasons, .. } => reasons.clone(),
            Outcome::NotDeployed { reason } => vec![reason.clone()],
        }
    }
}

/// What a strategy wants next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Run(Probe),
    /// Nothing can start until a running probe reports back.
    Wait,
    Done,
}

/// What one instance was measured to sustain within the requirements: the
/// highest rate it passed and, once a rate above it failed, the lowest such
/// rate. With both the capacity is bracketed; with only the first it is a
/// lower bound — no step pushed one instance past it — and is shown as one
/// ("≥ 100 TPS").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// Highest rate per instance that passed.
    pub at_least: f64,
    /// Lowest rate per instance above `at_least` that failed; None when none
    /// was measured.
    #[serde(default)]
    pub below: Option<f64>,
    /// What the figures count: TPS, or streams in flight.
    #[serde(default, skip_serializing_if = "Axis::is_rate")]
    pub axis: Axis,
}

impl Capacity {
    /// Only a lower bound: nothing above `at_least` was measured.
    pub fn bound(at_least: f64) -> Capacity {
        Capacity { at_least, below: None, axis: Axis::Rate }
    }

    /// Passed `at_least`, failed `below`; a failure at or below the pass
    /// brackets nothing, so it leaves a bound.
    pub fn between(at_least: f64, below: Option<f64>) -> Capacity {
        Capacity { at_least, below: below.filter(|b| *b > at_least), axis: Axis::Rate }
    }

    /// The same figures, counted on `axis`.
    pub fn on(self, axis: Axis) -> Capacity {
        Capacity { axis, ..self }
    }

    /// Why a bound is only a bound.
    pub fn unmeasured_beyond(&self) -> &'static str {
        match self.axis {
            Axis::Rate => "no higher rate was measured",
            Axis::Concurrency => "no more streams were measured",
        }
    }

    /// The unit of the figures: "TPS" or "streams".
    pub fn unit(&self) -> &'static str {
        self.axis.unit()
    }

    /// Whether a failing rate closes it from above.
    pub fn is_bracketed(&self) -> bool {
        self.below.is_some()
    }

    /// The bracket's width relative to its lower side.
    pub fn width(&self) -> Option<f64> {
        self.below.map(|b| (b - self.at_least) / self.at_least)
    }

    /// The figure without its unit: "118" when bracketed, "≥ 100" when a bound.
    pub fn figure(&self) -> String {
        if self.is_bracketed() { tps(self.at_least) } else { format!("≥ {}", tps(self.at_least)) }
    }

    /// The figure and how it is known: "118 TPS (fails at 121)" or
    /// "≥ 100 TPS (a lower bound: no higher rate was measured)".
    pub fn describe(&self) -> String {
        let unit = self.unit();
        match self.below {
            Some(below) => format!("{} {unit} (fails at {})", tps(self.at_least), tps(below)),
            None => format!("≥ {} {unit} (a lower bound: {})", tps(self.at_least), self.unmeasured_beyond()),
        }
    }
}

/// How one instance type fared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "TypeSummaryRecord", into = "TypeSummaryRecord")]
pub struct TypeSummary {
    pub instance_type: InstanceType,
    /// An asynchronous shape's MaxConcurrentInvocationsPerInstance, when the
    /// walk set one: the same type may be summarised once per value.
    pub max_concurrent_invocations: Option<u32>,
    /// What one instance sustained, once its search ended.
    pub capacity: Option<Capacity>,
    /// Instances the peak needs at that rate.
    pub count_needed: Option<u32>,
    /// The count an endurance run at peak verified.
    pub verified_count: Option<u32>,
    /// What happened, in a sentence.
    pub verdict: String,
}

impl TypeSummary {
    /// The type, with the MaxConcurrentInvocationsPerInstance it was tried at, if set.
    pub fn label(&self) -> String {
        self.shape().label()
    }

    /// One instance of the shape summarised.
    pub fn shape(&self) -> Fleet {
        Fleet::shape(self.instance_type.clone(), self.max_concurrent_invocations)
    }
}

/// A [`TypeSummary`] as summary.json spells it: `max_tps_per_instance` (the
/// capacity's lower side, the only figure summaries had before the bracket)
/// beside `capacity`. A summary without `capacity` reads as a lower bound.
#[derive(Serialize, Deserialize)]
struct TypeSummaryRecord {
    instance_type: InstanceType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_concurrent_invocations: Option<u32>,
    max_tps_per_instance: Option<f64>,
    #[serde(default)]
    capacity: Option<Capacity>,
    count_needed: Option<u32>,
    verified_count: Option<u32>,
    verdict: String,
}

impl From<TypeSummaryRecord> for TypeSummary {
    fn from(r: TypeSummaryRecord) -> TypeSummary {
        TypeSummary {
            instance_type: r.instance_type,
            max_concurrent_invocations: r.max_concurrent_invocations,
            capacity: r.capacity.or(r.max_tps_per_instance.map(Capacity::bound)),
            count_needed: r.count_needed,
            verified_count: r.verified_count,
            verdict: r.verdict,
        }
    }
}

impl From<TypeSummary> for TypeSummaryRecord {
    fn from(t: TypeSummary) -> TypeSummaryRecord {
        TypeSummaryRecord {
            instance_type: t.instance_type,
            max_concurrent_invocations: t.max_concurrent_invocations,
            max_tps_per_instance: t.capacity.map(|c| c.at_least),
            capacity: t.capacity,
            count_needed: t.count_needed,
            verified_count: t.verified_count,
            verdict: t.verdict,
        }
    }
}

/// The recommended configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommended {
    pub candidate: Fleet,
    /// One instance's capacity: what the auto-scaling target is built on.
    pub capacity: Capacity,
}

/// A strategy's final word.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conclusion {
    /// The instance configuration recommended.
    pub recommendation: Option<Recommended>,
    pub types: Vec<TypeSummary>,
    /// The serverless search's, when the walk had serverless candidates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverless: Option<ServerlessConclusion>,
}

/// A walk of instance types and serverless configurations: the instance
/// strategy first, then the serverless search, each told only of its own
/// probes.
pub struct Walk {
    instances: Option<Box<dyn Strategy>>,
    serverless: Option<ServerlessSearch>,
}

impl Walk {
    pub fn new(instances: Option<Box<dyn Strategy>>, serverless: Option<ServerlessSearch>) -> Walk {
        Walk { instances, serverless }
    }
}

impl Strategy for Walk {
    fn next(&mut self) -> Next {
        if let Some(instances) = &mut self.instances {
            match instances.next() {
                Next::Done => {}
                next => return next,
            }
        }
        self.serverless.as_mut().map_or(Next::Done, ServerlessSearch::next_probe)
    }

    fn record(&mut self, probe: &Probe, outcome: &Outcome) {
        match (&probe.candidate, &mut self.instances, &mut self.serverless) {
            (Candidate::Serverless(_), _, Some(serverless)) => serverless.record(probe, outcome),
            (Candidate::Instances(_), Some(instances), _) => instances.record(probe, outcome),
            _ => {}
        }
    }

    fn conclusion(&self) -> Conclusion {
        let mut conclusion = self
            .instances
            .as_ref()
            .map_or(Conclusion { recommendation: None, types: Vec::new(), serverless: None }, |s| s.conclusion());
        conclusion.serverless = self.serverless.as_ref().map(ServerlessSearch::conclusion);
        conclusion
    }

    fn keep(&self, lane: &Lane) -> bool {
        self.instances.as_ref().is_some_and(|s| s.keep(lane)) || self.serverless.as_ref().is_some_and(|s| s.keep(lane))
    }
}

/// A sizing strategy: asked for probes, told their outcomes.
pub trait Strategy: Send {
    /// The next probe to run; `Wait` while probes in flight must report first.
    fn next(&mut self) -> Next;
    /// The outcome of a probe `next` returned.
    fn record(&mut self, probe: &Probe, outcome: &Outcome);
    /// The conclusion once `next` said `Done` (or so far, if the run stops early).
    fn conclusion(&self) -> Conclusion;
    /// Whether the endpoint of `lane` may serve a coming probe; when not,
    /// the sizing run takes it down rather than pay for it idle.
    fn keep(&self, lane: &Lane) -> bool;
}

/// Strategies' names on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StrategyKind {
    /// Search each type's capacity, verify the cheapest configuration first.
    Adaptive,
    /// perfsizesagemaker's algorithm, for identical behaviour.
    Perfsize,
}

impl StrategyKind {
    pub const ALL: [StrategyKind; 2] = [StrategyKind::Adaptive, StrategyKind::Perfsize];

    pub fn as_str(self) -> &'static str {
        match self {
            StrategyKind::Adaptive => "adaptive",
            StrategyKind::Perfsize => "perfsize",
        }
    }
}

impl std::str::FromStr for StrategyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StrategyKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown strategy `{s}`: use adaptive or perfsize"))
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A synthetic world for strategy tests: each type has a true capacity per
    //! instance; a probe passes when its rate per instance is within it.

    use super::*;
    use crate::vocab::Phase;
    use std::collections::BTreeMap;

    pub struct World {
        pub capacity: BTreeMap<String, f64>,
        /// Types that fail to deploy.
        pub broken: Vec<String>,
        /// Scaling efficiency: n instances serve n × capacity × efficiency^(n-1).
        pub efficiency: f64,
        /// Probes (type, rate-per-instance) that fail once, whatever the capacity.
        pub flukes: Vec<(String, f64)>,
        /// Probes (type, rate-per-instance) that fail once on a burst of
        /// errors far over the budget: no noise near a limit, a clear failure.
        pub error_bursts: Vec<(String, f64)>,
        pub log: Vec<Probe>,
    }

    impl World {
        pub fn new(capacity: &[(&str, f64)]) -> World {
            World {
                capacity: capacity.iter().map(|(t, c)| (t.to_string(), *c)).collect(),
                broken: Vec::new(),
                efficiency: 1.0,
                flukes: Vec::new(),
                error_bursts: Vec::new(),
                log: Vec::new(),
            }
        }

        pub fn outcome(&mut self, probe: &Probe) -> Outcome {
            self.log.push(probe.clone());
            let fleet = probe.candidate.fleet().expect("the synthetic world has instances only");
            // A shape's capacity is listed by its label: the type, with its
            // MaxConcurrentInvocationsPerInstance when it has one.
            let label = fleet.label();
            let t = label.as_str();
            if self.broken.iter().any(|b| b == t) {
                return Outcome::NotDeployed { reason: format!("{t}: simulated capacity shortage") };
            }
            let n = fleet.count as f64;
            let capacity = self.capacity[t] * n * self.efficiency.powf(n - 1.0);
            let per_instance = probe.load.level() / n;
            if let Some(i) = self.flukes.iter().position(|(ft, r)| ft == t && (r - per_instance).abs() < 1e-9) {
                self.flukes.remove(i);
                return measured(false, 1.05);
            }
            if let Some(i) = self.error_bursts.iter().position(|(bt, r)| bt == t && (r - per_instance).abs() < 1e-9) {
                self.error_bursts.remove(i);
                return Outcome::Measured {
                    passed: false,
                    latency_ratio: Some(0.2),
                    error_ratio: 25.0,
                    hard_failure: false,
                    reasons: vec!["errors".into()],
                };
            }
            let load = probe.load.level() / capacity;
            // Latency rises steeply near saturation: ratio 1.0 at exactly full capacity.
            measured(load <= 1.0, load.powi(8))
        }

        pub fn run(&mut self, strategy: &mut dyn Strategy) -> Conclusion {
            assert_eq!(instances_needed(21.0, 7.0 / 5.0), 15, "no floating-point overshoot");
            for _ in 0..500 {
                match strategy.next() {
                    Next::Run(probe) => {
                        assert!(strategy.keep(&probe.candidate.lane()), "a type about to be probed is kept");
                        let outcome = self.outcome(&probe);
                        strategy.record(&probe, &outcome);
                    }
                    Next::Wait => panic!("a sequential driver never has probes in flight"),
                    Next::Done => return strategy.conclusion(),
                }
            }
            panic!("the strategy did not finish in 500 probes");
        }

        pub fn steps(&self, phase: Phase) -> usize {
            self.log.iter().filter(|p| p.phase == phase).count()
        }
    }

    pub fn measured(passed: bool, latency_ratio: f64) -> Outcome {
        Outcome::Measured {
            passed,
            latency_ratio: Some(latency_ratio),
            error_ratio: 0.0,
            hard_failure: false,
            reasons: if passed { vec![] } else { vec!["latency".into()] },
        }
    }

    pub fn t(name: &str) -> InstanceType {
        name.parse().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_reads_as_a_bound_and_a_bracket_as_a_figure() {
        let bound = Capacity::bound(100.0);
        assert!(!bound.is_bracketed());
        assert_eq!(bound.figure(), "≥ 100");
        assert!(bound.describe().starts_with("≥ 100 TPS (a lower bound"), "{}", bound.describe());
        let bracket = Capacity::between(117.5, Some(121.25));
        assert_eq!(bracket.figure(), "117.5");
        assert_eq!(bracket.describe(), "117.5 TPS (fails at 121.3)");
        assert!((bracket.width().unwrap() - 3.75 / 117.5).abs() < 1e-12);
        assert_eq!(Capacity::between(100.0, Some(90.0)), bound, "a failure below the pass brackets nothing");
    }

    #[test]
    fn summaries_keep_the_old_figure_and_read_old_ones_as_bounds() {
        let summary = TypeSummary {
            instance_type: "ml.c5.large".parse().unwrap(),
            max_concurrent_invocations: None,
            capacity: Some(Capacity::between(117.5, Some(121.25))),
            count_needed: Some(1),
            verified_count: Some(1),
            verdict: "recommended".into(),
        };
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["max_tps_per_instance"], 117.5, "readers of earlier summaries still find the figure");
        assert_eq!(json["capacity"], serde_json::json!({"at_least": 117.5, "below": 121.25}));
        assert_eq!(serde_json::from_value::<TypeSummary>(json).unwrap(), summary);
        // Written before the bracket existed: the figure was all there was.
        let old = serde_json::json!({
            "instance_type": "ml.c5.large", "max_tps_per_instance": 111.1,
            "count_needed": 1, "verified_count": 1, "verdict": "recommended"
        });
        assert_eq!(serde_json::from_value::<TypeSummary>(old).unwrap().capacity, Some(Capacity::bound(111.1)));
        let unsearched = serde_json::json!({
            "instance_type": "ml.c5.large", "max_tps_per_instance": null,
            "count_needed": null, "verified_count": null, "verdict": "not searched"
        });
        assert_eq!(serde_json::from_value::<TypeSummary>(unsearched).unwrap().capacity, None);
    }
}
