//! The environment manager: makes a candidate configuration (instance type ×
//! count, or a serverless memory size × max concurrency) real as a SageMaker
//! endpoint, resizes instances in place, and tears down everything it
//! created — on every path.
//!
//! It owns naming (`perfsize-<run id>-<type>-<count>`, or
//! `perfsize-<run id>-serverless-<MB>mb-c<max concurrency>`), tagging (every resource
//! carries `perfsize:run-id`), the ledger of instance-hours the run spends, and
//! the list of resources alive right now (what a forced exit prints). It never
//! touches a resource it did not create; [`cleanup`] finds what a killed run
//! left by its tags.

mod autoscaling;
pub mod cleanup;
mod sagemaker;
mod variant;

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::cost::{Spend, Usage};
use crate::error::{ErrorKind, HasKind};
use crate::sagemaker::AwsErrorKind;
use crate::scaling::{Activity, Instances, Policy};
use crate::vocab::{Candidate, Fleet};

pub use sagemaker::{AsyncServing, Clients, ModelSource, SageMakerEnvironment, inspect};

/// The tag that marks a resource as perfsize's, with the run id as value.
pub const RUN_TAG: &str = "perfsize:run-id";
pub use crate::vocab::NAME_PREFIX;

/// A run's identifier: `YYYYMMDD-HHMMSS-xxxx` by default, part of every name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

impl RunId {
    /// A new id from the current time and four random hex digits.
    pub fn generate() -> RunId {
        let suffix: u16 = rand::random();
        RunId(format!("{}-{suffix:04x}", Utc::now().format("%Y%m%d-%H%M%S")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid run id `{0}`: use letters, digits and single dashes, at most 32 characters")]
pub struct InvalidRunId(String);

impl HasKind for InvalidRunId {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Usage
    }
}

impl FromStr for RunId {
    type Err = InvalidRunId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() <= 32 && crate::sagemaker::valid_name(s) { Ok(RunId(s.to_string())) } else { Err(InvalidRunId(s.to_string())) }
    }
}

impl TryFrom<String> for RunId {
    type Error = InvalidRunId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `perfsize-<run>-<parts…>`, lowercased, with every character SageMaker
/// refuses turned into a dash, at most 63 characters.
pub fn resource_name(run: &RunId, parts: &[&str]) -> String {
    let mut name = format!("{NAME_PREFIX}{run}");
    for part in parts {
        name.push('-');
        name.push_str(part);
    }
    let mut clean = String::with_capacity(name.len());
    for c in name.to_lowercase().chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if !(c == '-' && clean.ends_with('-')) {
            clean.push(c);
        }
    }
    clean.truncate(63);
    clean.trim_end_matches('-').to_string()
}

/// The kinds of resource perfsize creates, in the order they are deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// An endpoint variant registered with Application Auto Scaling, named
    /// after its endpoint; deregistering it removes its policies and alarms.
    ScalableTarget,
    /// The CloudWatch alarm that wakes an asynchronous endpoint at zero
    /// instances (named after its endpoint). Application Auto Scaling does
    /// not own it, so deregistering leaves it: it is deleted on its own.
    Alarm,
    Endpoint,
    EndpointConfig,
    Model,
    /// A bucket perfsize created for an asynchronous run's objects (named
    /// after the run); emptied, then deleted.
    Bucket,
}

impl Kind {
    /// Scaling first (it would act on a deleting endpoint) with its alarm,
    /// then endpoints (they use configs), models (configs name them), and the
    /// bucket last (an endpoint may still be writing to it).
    pub const DELETION_ORDER: [Kind; 6] =
        [Kind::ScalableTarget, Kind::Alarm, Kind::Endpoint, Kind::EndpointConfig, Kind::Model, Kind::Bucket];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ScalableTarget => "scalable-target",
            Kind::Alarm => "alarm",
            Kind::Endpoint => "endpoint",
            Kind::EndpointConfig => "endpoint-config",
            Kind::Model => "model",
            Kind::Bucket => "bucket",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long a deletion AWS refuses for now — throttled past the SDK's own
/// retries, or an endpoint still updating — is retried, and how often,
/// before teardown gives up on it and says what is left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Patience {
    pub poll: Duration,
    pub within: Duration,
}

/// A failure to reach or use the SageMaker API.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} failed: {code}: {message}")]
pub struct ApiError {
    pub operation: &'static str,
    pub code: String,
    pub message: String,
}

impl ApiError {
    /// What the error code means, classified once in [`crate::sagemaker`].
    pub fn aws_kind(&self) -> AwsErrorKind {
        AwsErrorKind::classify(&self.code, &self.message)
    }
}

impl From<crate::s3::S3Error> for ApiError {
    fn from(e: crate::s3::S3Error) -> ApiError {
        let code = e.code.unwrap_or_else(|| "S3".into());
        ApiError { operation: e.operation, code, message: format!("s3://{}: {}", e.bucket, e.message) }
    }
}

impl HasKind for ApiError {
    fn kind(&self) -> ErrorKind {
        match self.aws_kind() {
            AwsErrorKind::Credentials => ErrorKind::Usage,
            _ => ErrorKind::Infrastructure,
        }
    }
}

/// Why a candidate could not be deployed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeployError {
    /// SageMaker refused or failed this configuration (Failed status, an
    /// instance limit, a validation error): the run goes on without it.
    #[error("{candidate} cannot be deployed: {reason}")]
    Rejected { candidate: Candidate, reason: String },
    #[error("deployment of {candidate} was interrupted")]
    Cancelled { candidate: Candidate },
    #[error("{candidate} was not InService after {waited:?}")]
    TimedOut { candidate: Candidate, waited: Duration },
    /// AWS itself failed us (credentials, network, throttling past retries).
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// An endpoint in service, as the environment made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployed {
    pub endpoint: String,
    pub config: String,
    pub candidate: Candidate,
    /// Seconds from CreateEndpoint (or the last resize) to InService.
    pub deploy_seconds: f64,
}

/// What the run has spent, and what is alive now. Shared with the Ctrl-C
/// handler, which prints the live part on a forced exit.
#[derive(Debug, Default)]
pub struct Ledger {
    usage: Vec<Usage>,
    live: Vec<(Kind, String)>,
    /// Endpoints deployed at zero instances, billing nothing for now.
    idle: HashSet<String>,
}

impl Ledger {
    /// A ledger that carries the billing periods of a run's earlier sessions
    /// (`--resume`), so that what it reports spent is the whole run's. A
    /// period still open when `earlier` was written belongs to a session that
    /// was killed; it counts up to then.
    pub fn resumed(earlier: &Spend) -> Ledger {
        let close = |u: &Usage| Usage { to: Some(u.to.unwrap_or(earlier.written_at)), ..u.clone() };
        Ledger { usage: earlier.usage.iter().map(close).collect(), ..Ledger::default() }
    }

    /// `candidate` starts billing by the hour on `endpoint`: its instances.
    /// A serverless variant bills by the request (and its provisioned
    /// concurrency by the hour, which the run's spend does not count yet).
    pub fn open(&mut self, endpoint: &str, candidate: &Candidate) {
        let Some(fleet) = candidate.fleet() else { return };
        self.usage.push(Usage {
            endpoint: endpoint.to_string(),
            instance_type: fleet.instance_type.clone(),
            count: fleet.count,
            from: Utc::now(),
            to: None,
        });
    }

    /// `endpoint` now bills for `fleet` (its count changed), if it did not already.
    pub fn rebill(&mut self, endpoint: &str, fleet: &Fleet) {
        let open = self.usage.iter().find(|u| u.endpoint == endpoint && u.to.is_none());
        if open.is_some_and(|u| u.count != fleet.count || u.instance_type != fleet.instance_type) {
            self.close(endpoint);
            self.open(endpoint, &fleet.candidate());
        }
        if self.idle.remove(endpoint) {
            self.open(endpoint, &fleet.candidate());
        }
    }

    /// `endpoint` stays deployed with no instance (an asynchronous endpoint
    /// scaled to zero): it bills nothing until [`Ledger::rebill`] sees instances again.
    pub fn idle(&mut self, endpoint: &str) {
        self.close(endpoint);
        self.idle.insert(endpoint.to_string());
    }

    /// Every open billing period of `endpoint` ends now.
    pub fn close(&mut self, endpoint: &str) {
        self.idle.remove(endpoint);
        let now = Utc::now();
        for usage in self.usage.iter_mut().filter(|u| u.endpoint == endpoint && u.to.is_none()) {
            usage.to = Some(now);
        }
    }

    /// A resource of `kind` exists until [`Ledger::deleted`].
    pub fn created(&mut self, kind: Kind, name: &str) {
        self.live.push((kind, name.to_string()));
    }

    pub fn deleted(&mut self, kind: Kind, name: &str) {
        self.live.retain(|(k, n)| !(*k == kind && n == name));
    }

    /// Whether a resource of `kind` named `name` is alive.
    pub fn holds(&self, kind: Kind, name: &str) -> bool {
        self.live.iter().any(|(k, n)| *k == kind && n == name)
    }

    pub fn usage(&self) -> &[Usage] {
        &self.usage
    }

    /// Resources alive now, as `kind name`.
    pub fn live(&self) -> Vec<String> {
        self.live.iter().map(|(kind, name)| format!("{kind} {name}")).collect()
    }
}

pub type SharedLedger = Arc<Mutex<Ledger>>;

/// Makes configurations real and takes them away.
#[allow(async_fn_in_trait)]
pub trait Environment {
    /// Creates what every configuration shares (the model, when perfsize makes one).
    async fn prepare(&self) -> Result<(), ApiError>;
    /// Deploys `candidate` on a new endpoint and waits until it serves.
    async fn deploy(&self, candidate: &Candidate, cancel: &CancellationToken) -> Result<Deployed, DeployError>;
    /// Changes the instance count of a deployed endpoint in place.
    async fn resize(&self, deployed: &mut Deployed, count: u32, cancel: &CancellationToken) -> Result<(), DeployError>;
    /// Deletes one endpoint and its config, waiting until they are gone.
    async fn release(&self, deployed: &Deployed) -> Result<(), ApiError>;
    /// Deletes everything still alive, the model last.
    async fn teardown(&self) -> Result<(), ApiError>;
    /// Instance-hours spent and resources alive.
    fn ledger(&self) -> SharedLedger;
}

/// Puts auto-scaling on endpoints the environment deployed, watches it act,
/// and takes it away — on every path, before the endpoint goes.
#[allow(async_fn_in_trait)]
pub trait Autoscaler {
    /// Registers the endpoint's variant as a scalable target within the
    /// policy's bounds and puts the policy on it.
    async fn apply_policy(&self, endpoint: &str, policy: &Policy) -> Result<(), ApiError>;
    /// Deregisters the endpoint's scalable target; its policies and their
    /// alarms go with it. One already gone is not an error.
    async fn remove_policy(&self, endpoint: &str) -> Result<(), ApiError>;
    /// Instances desired and in service now; the ledger bills what it sees.
    async fn instances(&self, deployed: &Deployed) -> Result<Instances, ApiError>;
    /// Takes an asynchronous endpoint to zero instances (after its policy,
    /// with a minimum of 0, is on) and waits until none serves — where a
    /// test of scaling from zero starts.
    async fn scale_to_zero(&self, deployed: &Deployed, cancel: &CancellationToken) -> Result<(), DeployError>;
    /// The scaling activities on the endpoint's variant, oldest first.
    async fn activities(&self, endpoint: &str) -> Result<Vec<Activity>, ApiError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::RunCost;

    #[test]
    fn names_are_valid_sagemaker_names_within_63_characters() {
        let run: RunId = "20261122-190512-a1b2".parse().unwrap();
        assert_eq!(resource_name(&run, &["ml.m5.large", "2"]), "perfsize-20261122-190512-a1b2-ml-m5-large-2");
        let long = resource_name(&run, &["ml.inf2.48xlarge", "12", "extra-long-suffix-for-testing"]);
        assert!(long.len() <= 63 && crate::sagemaker::valid_name(&long), "{long}");
        assert!("bad_id".parse::<RunId>().is_err());
        assert!(crate::sagemaker::valid_name(RunId::generate().as_str()));
    }

    #[test]
    fn a_resumed_ledger_bills_a_killed_session_up_to_its_last_record() {
        let from = Utc::now() - chrono::Duration::hours(2);
        let period = |endpoint: &str, to| Usage {
            endpoint: endpoint.into(),
            instance_type: "ml.m5.large".parse().unwrap(),
            count: 1,
            from,
            to,
        };
        let killed_at = from + chrono::Duration::minutes(30);
        let earlier = Spend {
            written_at: killed_at,
            run_cost: RunCost::default(),
            usage: vec![period("released", Some(from + chrono::Duration::minutes(6))), period("alive-when-killed", None)],
        };
        let mut ledger = Ledger::resumed(&earlier);
        let hours: f64 = ledger.usage().iter().map(|u| u.instance_hours(Utc::now())).sum();
        assert!((hours - 0.6).abs() < 1e-9, "6 + 30 minutes, not until now: {hours}");
        assert!(ledger.live().is_empty(), "the earlier session's resources are not this one's to delete");
        // This session reuses the killed session's endpoint name: only its own period closes.
        ledger.open("alive-when-killed", &Candidate::new("ml.m5.large".parse().unwrap(), 1));
        ledger.close("alive-when-killed");
        assert_eq!(ledger.usage()[1].to, Some(killed_at));
    }
}
