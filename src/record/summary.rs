//! `summary.json`: the run's conclusion — the recommendation with its cost
//! and auto-scaling policy, every step in brief, and what the run spent.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ScalingVerdict, ServerlessOutcome};
use crate::cost::compare::{Comparison, Kind};
use crate::cost::{ConfigCost, RequestCost, RunCost};
use crate::plan::{Asynchronous, Durations, Peak, Plan, ScalingTest, Search};
use crate::result::{Percentiles, StepResult};
use crate::s3::Buckets;
use crate::scaling::backlog::step_configuration;
use crate::scaling::{Policy, resource_id};
use crate::step::{Capacity, StrategyKind, TypeSummary};
use crate::vocab::{Candidate, Fleet, Load, Phase, Requirements, ServerlessSize};

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The strategy reached its conclusion.
    Completed,
    /// Ctrl-C: stopped, torn down, concluded from what was measured.
    Interrupted,
    /// --max-test-cost would have been exceeded by the next step.
    BudgetReached,
    /// AWS failed us mid-run.
    Failed,
}

/// An application-autoscaling target-tracking policy for the recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Autoscaling {
    pub metric: String,
    /// SageMakerVariantInvocationsPerInstance target: invocations per instance per minute.
    pub target_invocations_per_instance: u64,
    pub safety_factor: f64,
    pub min_instances: u32,
    pub max_instances: u32,
    pub resource_id: String,
    /// Ready-to-paste AWS CLI commands.
    pub register_command: String,
    pub policy_command: String,
    pub policy: serde_json::Value,
}

impl Autoscaling {
    /// The recommendation's policy on `endpoint`, as summary.json spells it.
    pub fn new(endpoint: &str, policy: &Policy, safety_factor: f64) -> Autoscaling {
        let mut commands = policy.commands(endpoint, crate::sagemaker::VARIANT_NAME).into_iter();
        let (register_command, policy_command) = (commands.next().unwrap_or_default(), commands.next().unwrap_or_default());
        Autoscaling {
            metric: policy.metric.predefined_type().unwrap_or("ApproximateBacklogSizePerInstance").into(),
            target_invocations_per_instance: policy.target as u64,
            safety_factor,
            min_instances: policy.min,
            max_instances: policy.max,
            resource_id: resource_id(endpoint, crate::sagemaker::VARIANT_NAME),
            register_command,
            policy_command,
            policy: policy.configuration(endpoint),
        }
    }
}

/// The auto-scaling policy of an asynchronous endpoint: target tracking on
/// its backlog per instance, and the step policy that wakes it from zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacklogAutoscaling {
    /// ApproximateBacklogSizePerInstance.
    pub metric: String,
    /// Requests waiting per instance that the policy holds.
    pub target_backlog_per_instance: f64,
    pub safety_factor: f64,
    /// 0: the endpoint scales to zero when idle.
    pub min_instances: u32,
    pub max_instances: u32,
    pub resource_id: String,
    /// Ready-to-paste AWS CLI commands, in order.
    pub commands: Vec<String>,
    pub policy: serde_json::Value,
    /// The HasBacklogWithoutCapacity step policy, when min is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_policy: Option<serde_json::Value>,
}

impl BacklogAutoscaling {
    pub fn new(endpoint: &str, policy: &Policy, safety_factor: f64) -> BacklogAutoscaling {
        BacklogAutoscaling {
            metric: "ApproximateBacklogSizePerInstance".into(),
            target_backlog_per_instance: policy.target,
            safety_factor,
            min_instances: policy.min,
            max_instances: policy.max,
            resource_id: resource_id(endpoint, crate::sagemaker::VARIANT_NAME),
            commands: policy.commands(endpoint, crate::sagemaker::VARIANT_NAME),
            policy: policy.configuration(endpoint),
            step_policy: policy.scales_to_zero().then(|| step_configuration(policy.scale_out_cooldown)),
        }
    }
}

/// The policy a recommendation comes with: on invocations for a real-time
/// endpoint, on the backlog for an asynchronous one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScalingAdvice {
    Invocations(Autoscaling),
    Backlog(BacklogAutoscaling),
}

impl ScalingAdvice {
    pub fn min_instances(&self) -> u32 {
        match self {
            ScalingAdvice::Invocations(a) => a.min_instances,
            ScalingAdvice::Backlog(b) => b.min_instances,
        }
    }

    pub fn max_instances(&self) -> u32 {
        match self {
            ScalingAdvice::Invocations(a) => a.max_instances,
            ScalingAdvice::Backlog(b) => b.max_instances,
        }
    }

    /// Its target as people read it: "1969 invocations/instance/minute".
    pub fn target_text(&self) -> String {
        match self {
            ScalingAdvice::Invocations(a) => format!("{} invocations/instance/minute", a.target_invocations_per_instance),
            ScalingAdvice::Backlog(b) => {
                format!("{} waiting requests/instance", crate::format::trim_number(b.target_backlog_per_instance))
            }
        }
    }

    /// The commands that apply it, in order.
    pub fn commands(&self) -> Vec<String> {
        match self {
            ScalingAdvice::Invocations(a) => vec![a.register_command.clone(), a.policy_command.clone()],
            ScalingAdvice::Backlog(b) => b.commands.clone(),
        }
    }

    pub fn resource_id(&self) -> &str {
        match self {
            ScalingAdvice::Invocations(a) => &a.resource_id,
            ScalingAdvice::Backlog(b) => &b.resource_id,
        }
    }
}

/// What an asynchronous recommendation adds: the endpoint's own setting,
/// what each request costs with its S3 work, and the cost of standing idle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AsyncRecommendation {
    /// MaxConcurrentInvocationsPerInstance it was measured with (None: SageMaker's choice).
    pub max_concurrent_invocations_per_instance: Option<u32>,
    /// Per 1,000 requests at peak: endpoint time, S3 requests, S3 storage.
    pub cost_per_1000_requests: Option<RequestCost>,
    /// S3 requests each inference took (PUT, HEADs while polling, GETs, DELETEs).
    pub s3_requests_per_inference: Option<f64>,
    /// Endpoint and S3 for a month of the peak rate.
    pub cost_per_month_at_peak: Option<f64>,
    /// $/hour with no traffic: zero when the policy scales to zero.
    pub idle_cost_per_hour: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RecommendationRecord", into = "RecommendationRecord")]
pub struct Recommendation {
    pub instance_type: String,
    pub instance_count: u32,
    pub cost_per_hour: f64,
    pub cost_per_month: f64,
    pub cost_per_million_inferences: f64,
    /// One instance's capacity, bracketed or only a lower bound: what the
    /// auto-scaling target is built on (its lower side).
    pub capacity: Capacity,
    /// The endurance step that verified it.
    pub verified_by_step: Option<u32>,
    pub autoscaling: ScalingAdvice,
    /// Asynchronous endpoints: cost per request and idle cost.
    pub asynchronous: Option<AsyncRecommendation>,
}

/// A [`Recommendation`] as summary.json spells it: `max_tps_per_instance`
/// (the capacity's lower side, all that summaries held before the bracket)
/// beside `capacity`. A summary without `capacity` reads as a lower bound.
#[derive(Serialize, Deserialize)]
struct RecommendationRecord {
    instance_type: String,
    instance_count: u32,
    cost_per_hour: f64,
    cost_per_month: f64,
    cost_per_million_inferences: f64,
    max_tps_per_instance: f64,
    #[serde(default)]
    capacity: Option<Capacity>,
    verified_by_step: Option<u32>,
    autoscaling: ScalingAdvice,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    asynchronous: Option<AsyncRecommendation>,
}

impl From<RecommendationRecord> for Recommendation {
    fn from(r: RecommendationRecord) -> Recommendation {
        Recommendation {
            instance_type: r.instance_type,
            instance_count: r.instance_count,
            cost_per_hour: r.cost_per_hour,
            cost_per_month: r.cost_per_month,
            cost_per_million_inferences: r.cost_per_million_inferences,
            capacity: r.capacity.unwrap_or(Capacity::bound(r.max_tps_per_instance)),
            verified_by_step: r.verified_by_step,
            autoscaling: r.autoscaling,
            asynchronous: r.asynchronous,
        }
    }
}

impl From<Recommendation> for RecommendationRecord {
    fn from(r: Recommendation) -> RecommendationRecord {
        RecommendationRecord {
            instance_type: r.instance_type,
            instance_count: r.instance_count,
            cost_per_hour: r.cost_per_hour,
            cost_per_month: r.cost_per_month,
            cost_per_million_inferences: r.cost_per_million_inferences,
            max_tps_per_instance: r.capacity.at_least,
            capacity: Some(r.capacity),
            verified_by_step: r.verified_by_step,
            autoscaling: r.autoscaling,
            asynchronous: r.asynchronous,
        }
    }
}

impl Recommendation {
    pub fn candidate(&self) -> Option<Fleet> {
        Candidate::parse(&self.instance_type, self.instance_count).and_then(|c| c.fleet().cloned())
    }
}

/// One step in brief.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepBrief {
    pub index: u32,
    pub phase: Phase,
    pub instance_type: String,
    pub instance_count: u32,
    /// A serverless step's configuration (then `instance_type` is `serverless`, `instance_count` 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverless: Option<ServerlessSize>,
    pub target_tps: f64,
    pub achieved_tps: f64,
    pub passed: bool,
    pub reasons: Vec<String>,
    pub latency_ms: Option<Percentiles>,
    pub error_percent: f64,
    /// Whether the rate could be held (the work in flight stayed level);
    /// None when the window was too short to tell.
    #[serde(default)]
    pub stationary: Option<bool>,
    /// Streaming steps: the share of requests that met every limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput_percent: Option<f64>,
    /// It failed on a burst of errors the endpoint recovered from (the
    /// step's file says where): the sizing run measured it again.
    #[serde(default)]
    pub disturbed: bool,
    /// The disturbed step this one measures again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remeasure_of: Option<u32>,
    /// A closed loop's streams always in flight (its `target_tps` is 0: it sets no rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub file: String,
}

impl From<&StepResult> for StepBrief {
    fn from(s: &StepResult) -> StepBrief {
        StepBrief {
            index: s.index,
            phase: s.phase,
            instance_type: s.instance_type.clone(),
            instance_count: s.instance_count,
            serverless: s.serverless,
            target_tps: s.target_tps,
            achieved_tps: s.achieved_tps,
            passed: s.passed,
            reasons: s.reasons.clone(),
            latency_ms: s.latency_ms,
            error_percent: s.error_percent,
            stationary: s.stationarity.as_ref().map(|st| st.stationary),
            goodput_percent: s.streaming.as_ref().map(|st| st.goodput_percent),
            disturbed: s.disturbance.is_some(),
            remeasure_of: s.remeasure_of,
            concurrency: match s.load() {
                Load::Concurrency(streams) => Some(streams),
                Load::Rate(_) => None,
            },
            started_at: s.started_at,
            ended_at: s.ended_at,
            file: super::RunDir::step_file(s),
        }
    }
}

/// Per-type outcome with its cost at the count the peak needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeOutcome {
    #[serde(flatten)]
    pub summary: TypeSummary,
    pub price_per_hour: f64,
    pub cost_at_needed_count: Option<ConfigCost>,
}

/// What plan.json records: the inputs of the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanRecord {
    pub run_id: String,
    pub perfsize_version: String,
    pub simulated: bool,
    pub region: String,
    pub command_line: Vec<String>,
    /// The run's effective settings as arguments (command line and
    /// perfsize.toml together): what `--resume RUN_DIR` continues with.
    #[serde(default)]
    pub arguments: Vec<String>,
    /// None for a run sized by streams in flight alone.
    pub peak_tps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_concurrency: Option<u32>,
    pub requirements: Requirements,
    pub search: Search,
    pub durations: Durations,
    pub payloads: Vec<(String, f64, usize)>,
    pub content_type: String,
    pub accept: String,
    pub prices: String,
    pub safety_factor: f64,
    pub max_test_cost: Option<f64>,
    /// The auto-scaling test, when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<ScalingTest>,
    /// Asynchronous runs: their settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asynchronous: Option<AsyncRecord>,
}

/// An asynchronous run's settings, as plan.json keeps them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AsyncRecord {
    pub buckets: Buckets,
    pub polling_interval_ms: f64,
    pub max_polling_interval_ms: f64,
    pub backoff_multiplier: f64,
    pub max_wait_seconds: f64,
    pub cleanup: String,
    /// MaxConcurrentInvocationsPerInstance walked (empty: SageMaker's choice).
    #[serde(default)]
    pub max_concurrent_invocations: Vec<u32>,
}

impl AsyncRecord {
    pub fn of(a: &Asynchronous) -> AsyncRecord {
        let polling = &a.client.polling;
        AsyncRecord {
            buckets: a.buckets.clone(),
            polling_interval_ms: polling.interval.as_secs_f64() * 1000.0,
            max_polling_interval_ms: polling.max_interval.as_secs_f64() * 1000.0,
            backoff_multiplier: polling.multiplier,
            max_wait_seconds: polling.max_wait.as_secs_f64(),
            cleanup: a.client.cleanup.to_string(),
            max_concurrent_invocations: a.max_concurrent_invocations.clone(),
        }
    }
}

impl PlanRecord {
    /// The record of `plan`, as run `run_id` runs it.
    pub fn of(
        plan: &Plan,
        run_id: &str,
        simulated: bool,
        region: &str,
        command_line: Vec<String>,
        arguments: Vec<String>,
    ) -> PlanRecord {
        let traffic = plan.traffic();
        PlanRecord {
            run_id: run_id.to_string(),
            perfsize_version: env!("CARGO_PKG_VERSION").into(),
            simulated,
            region: region.to_string(),
            command_line,
            arguments,
            peak_tps: plan.peak_tps(),
            peak_concurrency: plan.peak().concurrency(),
            requirements: *plan.requirements(),
            search: plan.search().clone(),
            durations: *plan.durations(),
            payloads: traffic.payloads.payloads().iter().map(|p| (p.name.clone(), p.weight, p.body.len())).collect(),
            content_type: traffic.content_type.clone(),
            accept: traffic.accept.clone(),
            prices: plan.prices().describe(),
            safety_factor: plan.safety_factor(),
            max_test_cost: plan.max_test_cost(),
            scaling: plan.scaling().cloned(),
            asynchronous: plan.asynchronous().map(AsyncRecord::of),
        }
    }

    /// Whether steps measured under `other` answer this plan's probes too:
    /// everything that shapes a measurement matches (not `--parallel`, not
    /// the budget, not the durations of what is left, not the command line).
    pub fn measures_like(&self, other: &PlanRecord) -> bool {
        let search = |r: &PlanRecord| Search { parallel: 1, ..r.search.clone() };
        self.simulated == other.simulated
            && self.region == other.region
            && self.peak_tps == other.peak_tps
            && self.peak_concurrency == other.peak_concurrency
            && self.requirements == other.requirements
            && search(self) == search(other)
            && self.payloads == other.payloads
            && self.content_type == other.content_type
            && self.accept == other.accept
            && self.asynchronous == other.asynchronous
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub perfsize_version: String,
    pub run_id: String,
    pub simulated: bool,
    pub status: RunStatus,
    /// Why the run ended early, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub region: String,
    pub command_line: Vec<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    /// The peak rate; None for a run sized by streams in flight alone.
    pub peak_tps: Option<f64>,
    /// The streams in flight at peak, for a run that sized them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_concurrency: Option<u32>,
    pub requirements: Requirements,
    pub strategy: StrategyKind,
    pub prices: String,
    pub recommendation: Option<Recommendation>,
    pub types: Vec<TypeOutcome>,
    pub steps: Vec<StepBrief>,
    pub run_cost: RunCost,
    /// The auto-scaling test, when one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<ScalingVerdict>,
    /// Asynchronous runs: where their objects went and what is left of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<RunObjects>,
    /// What teardown could not remove (absent when it removed everything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leftovers: Option<Leftovers>,
    /// Streaming (LLM) runs: goodput limits, cost per million tokens, the
    /// scaling target on ConcurrentRequestsPerModel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming: Option<super::StreamingSummary>,
    /// Runs with serverless candidates: what the serverless search found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverless: Option<ServerlessOutcome>,
    /// Instances against serverless on the user's month, when both found a configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    /// The kind recommended: the cheaper at the user's traffic when both were found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_kind: Option<Kind>,
}

impl Summary {
    /// The peak the run sized: "100 TPS", "32 streams", or both.
    pub fn peak_label(&self) -> String {
        Peak::of(self.peak_tps, self.peak_concurrency).map_or_else(|| "no peak".into(), |p| p.label())
    }

    /// Whether `load` is the peak on its axis.
    pub fn at_peak(&self, load: Load) -> bool {
        let peak = match load {
            Load::Rate(_) => self.peak_tps,
            Load::Concurrency(_) => self.peak_concurrency.map(f64::from),
        };
        peak.is_some_and(|peak| load.level() >= peak * 0.999)
    }

    /// Whether the run found a configuration of either kind.
    pub fn recommends_something(&self) -> bool {
        self.recommended_kind.is_some() || self.recommendation.is_some()
    }
}

/// Resources still alive after the run's teardown gave up on them, and the
/// command that removes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leftovers {
    /// `<kind> <name>`, in deletion order.
    pub resources: Vec<String>,
    pub cleanup_command: String,
}

/// The S3 objects of an asynchronous run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunObjects {
    /// immediate, delayed N, or disabled.
    pub cleanup: String,
    /// The folders the run wrote under (`s3://bucket/prefix/`).
    pub folders: Vec<String>,
    /// The bucket perfsize created for the run (deleted with it).
    pub bucket_created: Option<String>,
    /// Objects the cleanup policy left for the user to inspect, in `folders`.
    pub kept: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scaling::{Cooldowns, MeasuredCapacity, ScalingMetric};

    /// The invocations policy of a type measured at `tps` per instance.
    fn policy(tps: f64, safety: f64, peak: f64, verified: u32, min: u32) -> Policy {
        let capacity = MeasuredCapacity { tps_per_instance: tps, latency_p50_ms: 0.0, latency_limit_ms: 500.0 };
        Policy::new(ScalingMetric::Invocations, &capacity, safety, peak, verified, min, Cooldowns::default())
    }

    #[test]
    fn the_policy_targets_half_the_measured_capacity_per_minute() {
        let a = Autoscaling::new("e", &policy(94.0, 0.5, 100.0, 2, 1), 0.5);
        assert_eq!(a.target_invocations_per_instance, 2820);
        // 100/s × 60 = 6000 per minute at peak; 6000 / 2820 → 3 instances.
        assert_eq!(a.max_instances, 3);
        assert!(a.policy_command.contains("\"TargetValue\":2820.0"), "{}", a.policy_command);
        assert!(a.register_command.contains("--resource-id endpoint/e/variant/AllTraffic"));
    }

    #[test]
    fn the_maximum_never_drops_below_the_verified_count() {
        let a = Autoscaling::new("e", &policy(10.0, 1.0, 100.0, 12, 2), 1.0);
        assert_eq!(a.max_instances, 12);
        assert_eq!(a.min_instances, 2);
    }

    #[test]
    fn a_recommendation_keeps_the_old_figure_and_reads_old_ones_as_bounds() {
        let rec = Recommendation {
            instance_type: "ml.c5.large".into(),
            instance_count: 1,
            cost_per_hour: 0.102,
            cost_per_month: 74.46,
            cost_per_million_inferences: 0.28,
            capacity: Capacity::between(117.5, Some(121.25)),
            verified_by_step: Some(3),
            autoscaling: ScalingAdvice::Invocations(Autoscaling::new("e", &policy(117.5, 0.5, 100.0, 1, 1), 0.5)),
            asynchronous: None,
        };
        let mut json = serde_json::to_value(&rec).unwrap();
        assert_eq!(json["max_tps_per_instance"], 117.5);
        assert_eq!(json["capacity"]["below"], 121.25);
        assert_eq!(serde_json::from_value::<Recommendation>(json.clone()).unwrap(), rec);
        json.as_object_mut().unwrap().remove("capacity");
        assert_eq!(serde_json::from_value::<Recommendation>(json).unwrap().capacity, Capacity::bound(117.5));
    }
}
