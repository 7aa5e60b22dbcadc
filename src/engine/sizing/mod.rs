//! The sizing run: asks the step manager what to test, has the environment
//! manager deploy it (reusing or resizing an endpoint where it can), drives
//! it through the load driver, judges it with the result manager, writes each
//! step to the run's record the moment it ends, and concludes with a summary.
//!
//! [`run`] is the job the CLI calls: it opens the run (plan record, leftovers
//! of a resumed run, environment, traffic), runs the loop, survives a panic
//! with teardown, and writes the reports. [`Sizing`] is the loop itself, over
//! any environment and driver, so that it is unit-tested with fakes.
//!
//! Up to `--parallel` probes run at once, each on its own endpoint. Teardown
//! runs on every path — conclusion, budget, Ctrl-C, AWS failure, a bug —
//! before the summary is written.

mod budget;
mod conclusion;
mod estimate;
mod run_loop;
mod scaling;
mod serverless;

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use super::{Session, SessionError};
use crate::cost::Spend;
use crate::environment::{ApiError, AsyncServing, Environment, Ledger, ModelSource, RunId, SageMakerEnvironment, SharedLedger};
use crate::error::{ErrorKind, HasKind};
use crate::load::{Driver, LoadError};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::record::{PlanRecord, RunDir, RunDirError, RunStatus, Summary};
use crate::result::StepResult;
use crate::vocab::Load;

#[cfg(test)]
mod tests;

pub use estimate::estimate;
use run_loop::GENERATOR_RETRIES;
pub use run_loop::Sizing;

/// What stops a sizing run for good.
#[derive(Debug, thiserror::Error)]
pub enum SizingError {
    #[error(
        "--resume {0}: that run measured other things (simulated or not, region, peak, requirements, search or payloads); resume it with the same inputs"
    )]
    ResumeMismatch(PathBuf),
    #[error("{failed} resources of run {run_id} could not be deleted; run perfsize cleanup --run-id {run_id}")]
    Leftovers { failed: usize, run_id: RunId },
    #[error("internal error: {message}; {teardown}")]
    Internal { message: String, teardown: String },
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The model rejected a payload: the user's input, found after deploying.
    #[error(transparent)]
    PayloadRejected(LoadError),
    #[error(transparent)]
    Load(LoadError),
    #[error("the model to size does not exist: {0} (check --model-name)")]
    ModelNotFound(ApiError),
    #[error(
        "the load generator cannot keep up with {} on this machine (schedule slip p99 {slip_p99_ms:.1} ms after {GENERATOR_RETRIES} retries): run perfsize on a bigger or quieter machine, or lower --max-in-flight",
        load.label()
    )]
    Generator { load: Load, slip_p99_ms: f64 },
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    RunDir(#[from] RunDirError),
}

impl HasKind for SizingError {
    fn kind(&self) -> ErrorKind {
        match self {
            SizingError::PayloadRejected(_) | SizingError::ModelNotFound(_) | SizingError::ResumeMismatch(_) => ErrorKind::Usage,
            SizingError::Session(e) => e.kind(),
            SizingError::RunDir(e) => e.kind(),
            SizingError::Load(e) => e.kind(),
            SizingError::Api(e) => e.kind(),
            SizingError::Leftovers { .. } | SizingError::Internal { .. } | SizingError::Generator { .. } => {
                ErrorKind::Infrastructure
            }
        }
    }
}

/// What a run is, besides its plan: its id, the model it sizes, and what its
/// earlier sessions left when it is resumed.
pub struct RunSetup {
    pub run_id: RunId,
    pub model: ModelSource,
    /// How often to poll SageMaker while an endpoint deploys.
    pub poll: Duration,
    /// The effective arguments, as recorded in plan.json.
    pub arguments: Vec<String>,
    pub command_line: Vec<String>,
    /// `--resume`: the steps and spend of the run's earlier sessions.
    pub earlier: Option<Earlier>,
    /// The command that removes what a killed run leaves, for messages.
    pub cleanup_command: String,
}

/// What the earlier sessions of a resumed run left in its directory.
#[derive(Debug, Default)]
pub struct Earlier {
    pub steps: Vec<StepResult>,
    pub spend: Option<Spend>,
}

impl Earlier {
    pub fn read(dir: &RunDir) -> Result<Earlier, RunDirError> {
        Ok(Earlier { steps: dir.steps()?, spend: dir.spend()? })
    }
}

/// How a sizing run ended: its summary (written to the record), and the
/// error that stopped it early, if one did.
#[derive(Debug)]
pub struct SizingOutcome {
    pub summary: Summary,
    pub error: Option<SizingError>,
    /// The reports could not be written (the record is intact; `perfsize report` retries).
    pub report_error: Option<crate::report::ReportError>,
}

impl SizingOutcome {
    /// None when a configuration was recommended; otherwise what kind of
    /// failure the run was.
    pub fn failure(&self) -> Option<ErrorKind> {
        if let Some(e) = &self.error {
            return Some(e.kind());
        }
        match self.summary.status {
            RunStatus::Interrupted => Some(ErrorKind::Interrupted),
            _ if self.summary.recommends_something() => None,
            _ => Some(ErrorKind::NotMet),
        }
    }
}

/// The sizing job: runs `plan` in `dir` on `session` to a conclusion, tears
/// down everything it deployed whatever happens (a panic included), writes
/// the summary and the reports. Errors before the first deployment (a resume
/// of another run, leftovers that will not go) come back as `Err`.
pub async fn run(plan: &Plan, session: &Session, dir: &RunDir, setup: RunSetup) -> Result<SizingOutcome, SizingError> {
    let RunSetup { run_id, model, poll, arguments, command_line, earlier, cleanup_command } = setup;
    let progress = Arc::new(Progress::new(session.simulated, false));
    let mut record = PlanRecord::of(plan, run_id.as_str(), session.simulated, &session.aws.region, command_line, arguments);
    if earlier.is_some() {
        if let Some(previous) = dir.plan()? {
            if !previous.measures_like(&record) {
                return Err(SizingError::ResumeMismatch(dir.root().to_path_buf()));
            }
            // The run's settings stay those it started with: a budget or a
            // duration given to resume it applies to this session alone.
            if !previous.arguments.is_empty() {
                record.arguments = previous.arguments;
            }
        }
        // A killed run may have left resources under the names this run will use.
        remove_leftovers(session, &run_id, &progress).await?;
    }
    let earlier = earlier.unwrap_or_default();
    dir.write_plan(&record)?;
    progress.line(format!("run {run_id}: results in {}", dir.root().display()));
    let worst = estimate(plan, session.simulated, &session.pace);
    progress.line(worst.lines().find(|l| l.starts_with("worst case")).unwrap_or_default());

    let ledger: SharedLedger = Arc::new(Mutex::new(earlier.spend.as_ref().map(Ledger::resumed).unwrap_or_default()));
    let env = session.environment(run_id.clone(), model, poll, ledger, cleanup_command.clone());
    let run =
        Run { plan, session, dir, progress: &progress, run_id: &run_id, record: &record, cleanup_command: &cleanup_command };
    let (summary, error) = match (plan.asynchronous(), plan.streaming()) {
        (None, Some(streaming)) => {
            let driver = session.invoke_stream(*streaming).await?;
            run.drive(env, &driver, earlier).await?
        }
        (None, None) => {
            let driver = session.invoke_endpoint().await?;
            run.drive(env, &driver, earlier).await?
        }
        (Some(a), _) => {
            let storage = a.buckets.for_run(run_id.as_str());
            let env = env.serving_async(AsyncServing::of(&storage));
            let driver = session.invoke_async(storage.input.clone(), a.client.clone());
            run.drive(env, &driver, earlier).await?
        }
    };
    progress.finish();
    let report_error = crate::report::write_all(dir).err();
    Ok(SizingOutcome { summary, error, report_error })
}

/// What a run drives its loop with, whatever its driver.
struct Run<'a> {
    plan: &'a Plan,
    session: &'a Session,
    dir: &'a RunDir,
    progress: &'a Arc<Progress>,
    run_id: &'a RunId,
    record: &'a PlanRecord,
    cleanup_command: &'a str,
}

impl Run<'_> {
    /// Runs the loop on `env` through `driver`, and survives a panic with
    /// teardown.
    async fn drive<D: Driver>(
        &self,
        env: SageMakerEnvironment,
        driver: &D,
        earlier: Earlier,
    ) -> Result<(Summary, Option<SizingError>), SizingError> {
        let session = self.session;
        let sizing = Sizing {
            plan: self.plan,
            env: &env,
            driver,
            cloudwatch: Some(session.aws.cloudwatch.clone()),
            region: session.aws.region.clone(),
            dir: self.dir,
            progress: Arc::clone(self.progress),
            pace: session.pace.clone(),
            simulated: session.simulated,
            cancel: session.cancel_token(),
            run_id: self.run_id.to_string(),
            cleanup_command: self.cleanup_command.to_string(),
            command_line: self.record.command_line.clone(),
            resumed: earlier.steps,
            earlier_wall_seconds: earlier.spend.map_or(0.0, |s| s.run_cost.wall_seconds),
        };
        match AssertUnwindSafe(sizing.run()).catch_unwind().await {
            Ok(outcome) => Ok(outcome),
            Err(panic) => {
                // A bug must not leave endpoints billing: tear down, then report it.
                self.progress.line("perfsize hit an internal error; tearing down everything this run deployed");
                let now = CancellationToken::new();
                now.cancel();
                driver.settle(&now).await;
                let teardown = match env.teardown().await {
                    Ok(()) => "everything the run deployed was torn down".to_string(),
                    Err(e) => format!("teardown failed ({e}): run {}", self.cleanup_command),
                };
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(SizingError::Internal { message, teardown })
            }
        }
    }
}

/// Deletes what an earlier, killed session of this run left behind.
async fn remove_leftovers(session: &Session, run_id: &RunId, progress: &Progress) -> Result<(), SizingError> {
    let clients = session.clients();
    let leftovers = crate::environment::cleanup::find(&clients, Some(run_id)).await?;
    if leftovers.is_empty() {
        return Ok(());
    }
    progress.activity(format!("removing {} resources the interrupted session left", leftovers.len()));
    let failed = crate::environment::cleanup::remove(&clients, &leftovers, session.pace.teardown_patience(), |_, _| {}).await;
    if failed > 0 {
        return Err(SizingError::Leftovers { failed, run_id: run_id.clone() });
    }
    Ok(())
}
