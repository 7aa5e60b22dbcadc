//! What summary.json says of serverless candidates: the configuration the
//! serverless search recommends with its cost at the user's traffic, how
//! each memory size fared, the cold-start test, and instances against
//! serverless on the same month.

use serde::{Deserialize, Serialize};

use crate::cost::compare::{Comparison, Kind};
use crate::result::ServerLatency;
use crate::step::serverless::MemoryVerdict;
use crate::vocab::ServerlessSize;

/// The serverless side of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerlessOutcome {
    pub recommended: Option<ServerlessRecommendation>,
    pub memory: Vec<MemoryVerdict>,
    /// Judged apart from the search: it never changes the recommendation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_start: Option<ColdStartReport>,
}

/// The recommended serverless configuration and what it costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerlessRecommendation {
    pub configuration: ServerlessSize,
    /// The endurance step at peak that verified it.
    pub verified_by_step: Option<u32>,
    /// Billed duration of one request, seconds: CloudWatch's average
    /// ModelLatency of that step, or the client's median when CloudWatch had none.
    pub seconds_per_request: f64,
    /// At the traffic profile.
    pub cost_per_month: f64,
    pub cost_per_million_inferences: f64,
    /// What it bills with no traffic: its provisioned concurrency.
    pub idle_cost_per_hour: f64,
}

/// The cold-start test: a burst at peak after the workers idled long
/// enough to go cold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColdStartReport {
    pub step: u32,
    pub idle_seconds: f64,
    /// Latency of the burst, as the client saw it.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Share of the burst's requests that met a cold worker, by CloudWatch
    /// (ModelSetupTime samples ÷ invocations).
    pub cold_share_cloudwatch: Option<f64>,
    /// The client's view: share of requests slower than the warm endurance step's slowest.
    pub cold_share_client: Option<f64>,
    pub model_setup_time_ms: Option<ServerLatency>,
    pub passed: bool,
    pub reasons: Vec<String>,
}

/// Which kind the run recommends: the one configuration it found, or the
/// cheaper of both at the user's traffic.
pub fn recommended_kind(instances: bool, serverless: bool, comparison: Option<&Comparison>) -> Option<Kind> {
    match (instances, serverless, comparison) {
        (true, true, Some(c)) => Some(c.cheaper),
        (true, _, _) => Some(Kind::Instances),
        (false, true, _) => Some(Kind::Serverless),
        (false, false, _) => None,
    }
}
