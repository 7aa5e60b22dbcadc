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

mod estimate;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use super::load_step::drive_and_judge;
use super::{Pace, Session, SessionError};
use crate::catalog::InstanceType;
use crate::cost::Spend;
use crate::environment::{ApiError, DeployError, Deployed, Environment, Ledger, ModelSource, RunId, SharedLedger};
use crate::error::{ErrorKind, HasKind};
use crate::format::trim_number;
use crate::load::{Driver, LoadError};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::record::{Autoscaling, PlanRecord, Recommendation, RunDir, RunDirError, RunStatus, StepBrief, Summary, TypeOutcome};
use crate::result::{self, MetricsWindow, StepContext, StepResult};
use crate::sagemaker::{AwsErrorKind, VARIANT_NAME};
use crate::step::{Next, Outcome, Strategy};
use crate::vocab::{Candidate, Phase, Probe};

#[cfg(test)]
mod tests;

pub use estimate::estimate;

/// What stops a sizing run for good.
#[derive(Debug, thiserror::Error)]
pub enum SizingError {
    #[error(
        "--resume {0}: that run measured other things (simulated or not, region, peak, requirements, search, durations or payloads); resume it with the same inputs"
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
        "the load generator cannot keep up with {tps} TPS on this machine (schedule slip p99 {slip_p99_ms:.1} ms after {GENERATOR_RETRIES} retries): run perfsize on a bigger or quieter machine, or lower --max-in-flight"
    )]
    Generator { tps: f64, slip_p99_ms: f64 },
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
            _ if self.summary.recommendation.is_some() => None,
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

    let driver = session.invoke_endpoint().await?;
    let ledger: SharedLedger = Arc::new(Mutex::new(earlier.spend.as_ref().map(Ledger::resumed).unwrap_or_default()));
    let env = session.environment(run_id.clone(), model, poll, ledger, cleanup_command.clone());
    let sizing = Sizing {
        plan,
        env: &env,
        driver: &driver,
        cloudwatch: Some(session.aws.cloudwatch.clone()),
        region: session.aws.region.clone(),
        dir,
        progress: Arc::clone(&progress),
        pace: session.pace.clone(),
        simulated: session.simulated,
        cancel: session.cancel_token(),
        run_id: run_id.to_string(),
        command_line: record.command_line.clone(),
        resumed: earlier.steps,
        earlier_wall_seconds: earlier.spend.map_or(0.0, |s| s.run_cost.wall_seconds),
    };
    let (summary, error) = match AssertUnwindSafe(sizing.run()).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => {
            // A bug must not leave endpoints billing: tear down, then report it.
            progress.line("perfsize hit an internal error; tearing down everything this run deployed");
            let teardown = match env.teardown().await {
                Ok(()) => "everything the run deployed was torn down".to_string(),
                Err(e) => format!("teardown failed ({e}): run {cleanup_command}"),
            };
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            return Err(SizingError::Internal { message, teardown });
        }
    };
    drop(driver);
    progress.finish();
    let report_error = crate::report::write_all(dir).err();
    Ok(SizingOutcome { summary, error, report_error })
}

/// Deletes what an earlier, killed session of this run left behind.
async fn remove_leftovers(session: &Session, run_id: &RunId, progress: &Progress) -> Result<(), SizingError> {
    let client = &session.aws.sagemaker;
    let leftovers = crate::environment::cleanup::find(client, Some(run_id)).await?;
    if leftovers.is_empty() {
        return Ok(());
    }
    progress.activity(format!("removing {} resources the interrupted session left", leftovers.len()));
    let failed = crate::environment::cleanup::remove(client, &leftovers, session.pace.poll, |_, _| {}).await;
    if failed > 0 {
        return Err(SizingError::Leftovers { failed, run_id: run_id.clone() });
    }
    Ok(())
}

/// Everything a sizing run works with.
pub struct Sizing<'a, E: Environment, D: Driver> {
    pub plan: &'a Plan,
    /// What is deployed: the environment manager.
    pub env: &'a E,
    /// How requests are sent and measured.
    pub driver: &'a D,
    /// Where the server's figures come from (None: not fetched).
    pub cloudwatch: Option<aws_sdk_cloudwatch::Client>,
    pub region: String,
    pub dir: &'a RunDir,
    pub progress: Arc<Progress>,
    pub pace: Pace,
    pub simulated: bool,
    /// Cancelled by the first Ctrl-C.
    pub cancel: CancellationToken,
    pub run_id: String,
    pub command_line: Vec<String>,
    /// Steps of an interrupted run being resumed, reused instead of re-run.
    pub resumed: Vec<StepResult>,
    /// Wall time of the run's earlier sessions (`--resume`); their billing
    /// periods are in the environment's ledger.
    pub earlier_wall_seconds: f64,
}

/// What probes borrow for the whole run.
struct Shared {
    started_at: DateTime<Utc>,
    /// Cancelled by Ctrl-C or by a failure that ends the run.
    run_cancel: CancellationToken,
    /// Endpoints whose payloads were already sent once.
    preflighted: RefCell<HashSet<String>>,
    /// Background CloudWatch fetches, awaited before the summary.
    metrics_updates: RefCell<Vec<tokio::task::JoinHandle<()>>>,
}

/// The run loop's state.
struct RunState {
    strategy: Box<dyn Strategy>,
    steps: Vec<StepResult>,
    /// Steps of an earlier session not yet used to answer a probe.
    resumed: Vec<StepResult>,
    /// The endpoint of each instance type, while no probe uses it.
    lanes: BTreeMap<InstanceType, Deployed>,
    next_index: u32,
    status: RunStatus,
    note: Option<String>,
    error: Option<SizingError>,
    /// No more probes will be started.
    done: bool,
    generator_retries: std::collections::HashMap<String, u32>,
}

impl RunState {
    fn new(strategy: Box<dyn Strategy>, resumed: Vec<StepResult>) -> RunState {
        let next_index = resumed.iter().map(|s| s.index).max().unwrap_or(0) + 1;
        RunState {
            strategy,
            steps: Vec::new(),
            resumed,
            lanes: BTreeMap::new(),
            next_index,
            status: RunStatus::Completed,
            note: None,
            error: None,
            done: false,
            generator_retries: std::collections::HashMap::new(),
        }
    }

    /// Ends the run on an error; the first error is the one reported.
    fn fail(&mut self, error: SizingError, run_cancel: &CancellationToken) {
        if self.status == RunStatus::Completed {
            self.status = RunStatus::Failed;
        }
        self.error.get_or_insert(error);
        self.done = true;
        run_cancel.cancel();
    }

    fn interrupted(&mut self) {
        self.status = RunStatus::Interrupted;
        self.note = Some("interrupted by Ctrl-C".into());
    }
}

/// A probe that ran (or could not).
struct ProbeDone {
    probe: Probe,
    endpoint: Option<Deployed>,
    result: Result<ProbeResult, SizingError>,
}

enum ProbeResult {
    Measured(Box<StepResult>),
    NotDeployed(String),
    Interrupted,
}

enum Task {
    Probe(ProbeDone),
    Released(InstanceType, Result<(), ApiError>),
}

type TaskFuture<'a> = Pin<Box<dyn Future<Output = Task> + 'a>>;

impl<'a, E: Environment, D: Driver> Sizing<'a, E, D> {
    /// Runs to a conclusion (or until stopped), tears everything down and
    /// writes summary.json. The summary is returned even when AWS failed.
    pub async fn run(self) -> (Summary, Option<SizingError>) {
        // Declared before `tasks`, whose futures borrow it.
        let shared = Shared {
            started_at: Utc::now(),
            run_cancel: self.cancel.child_token(),
            preflighted: RefCell::new(HashSet::new()),
            metrics_updates: RefCell::new(Vec::new()),
        };
        let mut tasks: FuturesUnordered<TaskFuture<'_>> = FuturesUnordered::new();
        let mut st = RunState::new(self.plan.strategy(), self.resumed.clone());
        if let Err(e) = self.env.prepare().await {
            let not_found = e.aws_kind() == AwsErrorKind::NotFound;
            st.fail(if not_found { SizingError::ModelNotFound(e) } else { e.into() }, &shared.run_cancel);
        }
        loop {
            self.start_probes(&mut st, &mut tasks, &shared);
            self.release_idle(&mut st, &mut tasks);
            if tasks.is_empty() {
                break;
            }
            let task = tokio::select! {
                task = tasks.next() => task.expect("tasks is not empty"),
                _ = self.cancel.cancelled(), if st.status != RunStatus::Interrupted => {
                    st.interrupted();
                    shared.run_cancel.cancel();
                    continue;
                }
            };
            self.on_task(task, &mut st, &mut tasks, &shared);
        }
        drop(tasks);
        self.conclude(st, shared).await
    }

    /// Starts every probe the strategy allows now (answering those a resumed
    /// run already measured), until it waits, finishes, or the budget stops it.
    fn start_probes<'r>(&'r self, st: &mut RunState, tasks: &mut FuturesUnordered<TaskFuture<'r>>, shared: &'r Shared) {
        while !st.done && !shared.run_cancel.is_cancelled() {
            match st.strategy.next() {
                Next::Run(probe) => {
                    if let Some(i) = st.resumed.iter().position(|s| same_probe(s, &probe)) {
                        let step = st.resumed.remove(i);
                        self.progress.line(format!("resumed step {}: {}", step.index, describe(&step)));
                        st.strategy.record(&probe, &Outcome::from_step(&step));
                        st.steps.push(step);
                        continue;
                    }
                    if let Some(reason) = self.over_budget(&probe, &st.lanes) {
                        self.progress.line(format!("stopping: {reason}"));
                        st.status = RunStatus::BudgetReached;
                        st.note = Some(reason);
                        st.done = true;
                        return;
                    }
                    self.launch(probe, st, tasks, shared);
                }
                Next::Wait => return,
                Next::Done => {
                    st.done = true;
                    return;
                }
            }
        }
    }

    fn launch<'r>(&'r self, probe: Probe, st: &mut RunState, tasks: &mut FuturesUnordered<TaskFuture<'r>>, shared: &'r Shared) {
        let endpoint = st.lanes.remove(&probe.candidate.instance_type);
        let index = st.next_index;
        st.next_index += 1;
        tasks.push(Box::pin(self.probe(probe, endpoint, index, shared)));
    }

    /// Takes down endpoints no coming probe needs, rather than pay for them idle.
    fn release_idle<'r>(&'r self, st: &mut RunState, tasks: &mut FuturesUnordered<TaskFuture<'r>>) {
        let idle: Vec<InstanceType> = st.lanes.keys().filter(|t| !st.strategy.keep(t)).cloned().collect();
        for instance_type in idle {
            let deployed = st.lanes.remove(&instance_type).expect("listed above");
            tasks.push(Box::pin(async move {
                let result = self.env.release(&deployed).await;
                Task::Released(instance_type, result)
            }));
        }
    }

    /// Takes in whatever a task came back with.
    fn on_task<'r>(&'r self, task: Task, st: &mut RunState, tasks: &mut FuturesUnordered<TaskFuture<'r>>, shared: &'r Shared) {
        let ProbeDone { probe, endpoint, result } = match task {
            Task::Released(_, Ok(())) => return,
            Task::Released(instance_type, Err(e)) => {
                self.progress.line(format!("cannot take down the {instance_type} endpoint: {e}"));
                st.fail(e.into(), &shared.run_cancel);
                return;
            }
            Task::Probe(done) => done,
        };
        if let Some(endpoint) = endpoint {
            st.lanes.insert(endpoint.candidate.instance_type.clone(), endpoint);
        }
        match result {
            Ok(ProbeResult::Measured(step)) => self.on_measured(probe, *step, st, tasks, shared),
            Ok(ProbeResult::NotDeployed(reason)) => {
                self.progress.line(format!("{} cannot be deployed: {reason}", probe.candidate));
                st.strategy.record(&probe, &Outcome::NotDeployed { reason });
            }
            Ok(ProbeResult::Interrupted) => {}
            Err(e) => {
                self.progress.line(format!("stopping: {e}"));
                st.fail(e, &shared.run_cancel);
            }
        }
    }

    /// A step that measured something: judged by the strategy, unless it
    /// measured this machine's CPU rather than the endpoint.
    fn on_measured<'r>(
        &'r self,
        probe: Probe,
        step: StepResult,
        st: &mut RunState,
        tasks: &mut FuturesUnordered<TaskFuture<'r>>,
        shared: &'r Shared,
    ) {
        self.progress.line(format!("step {}: {}", step.index, describe(&step)));
        let behind = generator_fell_behind(&step);
        let retries = *st.generator_retries.get(&probe_key(&probe)).unwrap_or(&0);
        if behind && retries >= GENERATOR_RETRIES {
            // Blaming the endpoint would be wrong, and so would any answer.
            self.progress
                .line(format!("stopping: the load generator cannot keep up with {} TPS on this machine", trim_number(probe.tps)));
            st.fail(SizingError::Generator { tps: probe.tps, slip_p99_ms: step.generator.slip_p99_ms }, &shared.run_cancel);
        } else if behind && !shared.run_cancel.is_cancelled() && self.over_budget(&probe, &st.lanes).is_none() {
            st.generator_retries.insert(probe_key(&probe), retries + 1);
            self.progress.line(format!("step {}: the load generator fell behind; measuring again", step.index));
            self.launch(probe, st, tasks, shared);
        } else if !step.misses.contains(&result::Miss::Interrupted) {
            st.strategy.record(&probe, &Outcome::from_step(&step));
        }
        st.steps.push(step);
    }

    /// Tears down, waits for the last CloudWatch figures, and writes the summary.
    async fn conclude(&self, mut st: RunState, shared: Shared) -> (Summary, Option<SizingError>) {
        // Ctrl-C before the first probe, or in the same poll a task finished, ends the run too.
        if self.cancel.is_cancelled() && st.status == RunStatus::Completed {
            st.interrupted();
        }
        self.progress.activity("tearing down everything this run deployed");
        if let Err(e) = self.env.teardown().await {
            self.progress.line(format!("teardown failed: {e} — run `perfsize cleanup --run-id {}`", self.run_id));
            st.error.get_or_insert(e.into());
        }
        // CloudWatch figures trickle in after each step; wait for the last ones.
        for update in shared.metrics_updates.into_inner() {
            let _ = update.await;
        }
        let steps = match self.dir.steps() {
            Ok(on_disk) if on_disk.len() >= st.steps.len() => on_disk,
            _ => st.steps,
        };
        let spend = self.spend(shared.started_at);
        if let Err(e) = self.dir.write_spend(&spend) {
            st.error.get_or_insert(e.into());
        }
        let summary = self.summarise(st.strategy.as_ref(), &steps, st.status, st.note, shared.started_at, spend);
        if let Err(e) = self.dir.write_summary(&summary) {
            st.error.get_or_insert(e.into());
        }
        (summary, st.error)
    }

    /// What the whole run has spent up to now, all sessions included.
    fn spend(&self, started_at: DateTime<Utc>) -> Spend {
        let now = Utc::now();
        let ledger = self.env.ledger();
        let ledger = crate::error::lock(&ledger);
        let mut run_cost = self.plan.prices().run_cost(ledger.usage(), now);
        run_cost.wall_seconds = self.earlier_wall_seconds + ((now - started_at).num_milliseconds() as f64 / 1000.0).max(0.0);
        Spend { written_at: now, run_cost, usage: ledger.usage().to_vec() }
    }

    /// Whether starting `probe` could take the run past --max-test-cost.
    fn over_budget(&self, probe: &Probe, lanes: &BTreeMap<InstanceType, Deployed>) -> Option<String> {
        let budget = self.plan.max_test_cost()?;
        let ledger = self.env.ledger();
        let ledger = crate::error::lock(&ledger);
        let spent = self.plan.prices().run_cost(ledger.usage(), Utc::now()).dollars;
        // Everything alive keeps billing while the step runs, including the
        // endpoints of probes still in flight.
        let price = |t: &InstanceType| self.plan.price(t);
        let alive_per_hour: f64 =
            ledger.usage().iter().filter(|u| u.to.is_none()).map(|u| price(&u.instance_type) * u.count as f64).sum();
        let (profile, _) = self.plan.rate_profile(probe);
        let current = lanes.get(&probe.candidate.instance_type).map_or(0, |d| d.candidate.count);
        let added_per_hour = price(&probe.candidate.instance_type) * probe.candidate.count.saturating_sub(current) as f64;
        let waiting = if current == probe.candidate.count { Duration::ZERO } else { self.pace.deploy_estimate };
        let hours = (profile.length() + waiting).as_secs_f64() / 3600.0;
        let estimate = spent + (alive_per_hour + added_per_hour) * hours;
        (estimate > budget).then(|| {
            format!(
                "the next step ({} at {} TPS) would take the run to about ${estimate:.4}, past --max-test-cost ${budget:.4} (spent ${spent:.4})",
                probe.candidate,
                trim_number(probe.tps),
            )
        })
    }

    /// Deploys (or reuses, or resizes) the endpoint, then measures.
    async fn probe(&self, probe: Probe, endpoint: Option<Deployed>, index: u32, shared: &Shared) -> Task {
        let cancel = &shared.run_cancel;
        let candidate = probe.candidate.clone();
        let endpoint = match self.endpoint_for(&candidate, endpoint, cancel).await {
            Ok(endpoint) => endpoint,
            Err((kept, DeployError::Rejected { reason, .. })) => {
                return Task::Probe(ProbeDone { probe, endpoint: kept, result: Ok(ProbeResult::NotDeployed(reason)) });
            }
            Err((kept, DeployError::TimedOut { waited, .. })) => {
                let reason = format!("not InService after {waited:?}");
                return Task::Probe(ProbeDone { probe, endpoint: kept, result: Ok(ProbeResult::NotDeployed(reason)) });
            }
            Err((kept, DeployError::Cancelled { .. })) => {
                return Task::Probe(ProbeDone { probe, endpoint: kept, result: Ok(ProbeResult::Interrupted) });
            }
            Err((kept, DeployError::Api(e))) => return Task::Probe(ProbeDone { probe, endpoint: kept, result: Err(e.into()) }),
        };
        let result = self.measure(&probe, &endpoint, index, shared).await;
        Task::Probe(ProbeDone { probe, endpoint: Some(endpoint), result })
    }

    /// An endpoint serving `candidate`: the lane's own if it matches, resized
    /// in place if only the count differs, otherwise a new deployment. On
    /// failure, the endpoint still alive (if any) comes back with the error.
    async fn endpoint_for(
        &self,
        candidate: &Candidate,
        endpoint: Option<Deployed>,
        cancel: &CancellationToken,
    ) -> Result<Deployed, (Option<Deployed>, DeployError)> {
        match endpoint {
            Some(deployed) if deployed.candidate == *candidate => Ok(deployed),
            Some(mut deployed) => {
                self.progress.activity(format!("resizing {} to {candidate}", deployed.endpoint));
                match self.env.resize(&mut deployed, candidate.count, cancel).await {
                    Ok(()) => Ok(deployed),
                    Err(e) => Err((Some(deployed), e)),
                }
            }
            None => {
                self.progress.activity(format!("deploying {candidate}"));
                self.env.deploy(candidate, cancel).await.map_err(|e| (None, e))
            }
        }
    }

    async fn measure(&self, probe: &Probe, endpoint: &Deployed, index: u32, shared: &Shared) -> Result<ProbeResult, SizingError> {
        let (cancel, preflighted, metrics_updates) = (&shared.run_cancel, &shared.preflighted, &shared.metrics_updates);
        let (rate, warmup) = self.plan.rate_profile(probe);
        let target = self.driver.target(&endpoint.endpoint);
        let spec = self.plan.traffic().load_spec(target, rate, warmup, index, self.plan.requirements());
        if !preflighted.borrow().contains(&endpoint.endpoint) {
            self.driver.preflight(&spec).await.map_err(|e| match e {
                LoadError::PayloadRejected { .. } => SizingError::PayloadRejected(e),
                other => SizingError::Load(other),
            })?;
            preflighted.borrow_mut().insert(endpoint.endpoint.clone());
        }
        self.progress.activity(format!(
            "step {index} · {} {} at {} TPS for {}",
            probe.phase.as_str(),
            probe.candidate,
            trim_number(probe.tps),
            humantime::format_duration(Duration::from_secs(rate.length().as_secs()))
        ));
        let context = StepContext {
            index,
            phase: probe.phase,
            simulated: self.simulated,
            endpoint_name: endpoint.endpoint.clone(),
            candidate: probe.candidate.clone(),
            target_tps: probe.tps,
            warmup_seconds: warmup.as_secs_f64(),
            requirements: *self.plan.requirements(),
        };
        let (mut step, run) =
            drive_and_judge(self.driver, spec, context, &self.progress, cancel).await.map_err(SizingError::Load)?;
        step.cloudwatch = result::ServerMetrics::unavailable(if self.cloudwatch.is_some() {
            "waiting for CloudWatch"
        } else {
            "CloudWatch not read"
        });
        self.dir.write_step(&step)?;
        self.dir.write_spend(&self.spend(shared.started_at))?;
        if let Some(client) = self.cloudwatch.clone().filter(|_| !run.cancelled) {
            let window = MetricsWindow::of_run(&endpoint.endpoint, VARIANT_NAME, &run, self.pace.metrics_period);
            metrics_updates.borrow_mut().push(spawn_metrics_update(
                client,
                window,
                self.pace.clone(),
                step.clone(),
                self.dir.clone(),
                self.cancel.clone(),
            ));
        }
        Ok(ProbeResult::Measured(Box::new(step)))
    }

    fn summarise(
        &self,
        strategy: &dyn Strategy,
        steps: &[StepResult],
        status: RunStatus,
        note: Option<String>,
        started_at: DateTime<Utc>,
        spend: Spend,
    ) -> Summary {
        let conclusion = strategy.conclusion();
        let peak = self.plan.peak_tps();
        let prices = self.plan.prices();
        let recommendation = conclusion.recommendation.as_ref().map(|rec| {
            let cost = prices.of(&rec.candidate, peak).expect("planned types have prices");
            let verified_by_step = steps
                .iter()
                .rev()
                .find(|s| s.phase == Phase::Endurance && s.passed && s.candidate().as_ref() == Some(&rec.candidate))
                .map(|s| s.index);
            Recommendation {
                instance_type: rec.candidate.instance_type.to_string(),
                instance_count: rec.candidate.count,
                cost_per_hour: cost.per_hour,
                cost_per_month: cost.per_month,
                cost_per_million_inferences: cost.per_million_at_peak,
                max_tps_per_instance: rec.max_tps_per_instance,
                verified_by_step,
                autoscaling: Autoscaling::new(
                    "YOUR-ENDPOINT",
                    rec.max_tps_per_instance,
                    self.plan.safety_factor(),
                    peak,
                    rec.candidate.count,
                    self.plan.min_instances(),
                ),
            }
        });
        let types = conclusion
            .types
            .into_iter()
            .map(|summary| TypeOutcome {
                price_per_hour: self.plan.price(&summary.instance_type),
                cost_at_needed_count: summary
                    .count_needed
                    .and_then(|n| prices.of(&Candidate::new(summary.instance_type.clone(), n), peak).ok()),
                summary,
            })
            .collect();
        let ended_at = spend.written_at;
        let run_cost = spend.run_cost;
        Summary {
            perfsize_version: env!("CARGO_PKG_VERSION").to_string(),
            run_id: self.run_id.clone(),
            simulated: self.simulated,
            status,
            note,
            region: self.region.clone(),
            command_line: self.command_line.clone(),
            started_at,
            ended_at,
            peak_tps: peak,
            requirements: *self.plan.requirements(),
            strategy: self.plan.search().strategy,
            prices: prices.origin.clone(),
            recommendation,
            types,
            steps: steps.iter().map(StepBrief::from).collect(),
            run_cost,
        }
    }
}

/// Fetches a step's CloudWatch figures in the background and rewrites its file.
fn spawn_metrics_update(
    client: aws_sdk_cloudwatch::Client,
    window: MetricsWindow,
    pace: Pace,
    mut step: StepResult,
    dir: RunDir,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        step.cloudwatch = result::cloudwatch::fetch(&client, &window, pace.metrics_wait, pace.metrics_poll, &cancel).await;
        if let Err(e) = dir.write_step(&step) {
            tracing::warn!("cannot add CloudWatch figures to step {}: {e}", step.index);
        }
    })
}

/// How often a step whose load generator fell behind is measured again.
const GENERATOR_RETRIES: u32 = 2;

fn probe_key(probe: &Probe) -> String {
    format!("{:?}/{}/{}", probe.phase, probe.candidate, probe.tps)
}

/// Whether a step's failure may be this machine's CPU rather than the
/// endpoint: only schedule slip counts, since running out of in-flight slots
/// means the server is slow, and a pass despite slip is a pass.
fn generator_fell_behind(step: &StepResult) -> bool {
    !step.passed && step.generator.late_starts == 0 && step.generator.slipped(&step.requirements)
}

/// A resumed step answers a probe when it measured the same thing and the
/// run trusted it (not interrupted, not measured again for the generator).
fn same_probe(step: &StepResult, probe: &Probe) -> bool {
    step.phase == probe.phase
        && step.candidate().as_ref() == Some(&probe.candidate)
        && (step.target_tps - probe.tps).abs() < 1e-9
        && !step.misses.contains(&result::Miss::Interrupted)
        && !generator_fell_behind(step)
}

/// One line about a finished step.
pub fn describe(step: &StepResult) -> String {
    let p99 = step.latency_ms.map_or("-".into(), |l| format!("{:.1}", l.p99));
    format!(
        "{} {} × {} at {} TPS: {} (p99 {p99} ms, {:.3}% errors{})",
        step.phase.as_str(),
        step.instance_type,
        step.instance_count,
        trim_number(step.target_tps),
        if step.passed { "PASS" } else { "FAIL" },
        step.error_percent,
        if step.passed { String::new() } else { format!(" — {}", step.reasons.join("; ")) }
    )
}
