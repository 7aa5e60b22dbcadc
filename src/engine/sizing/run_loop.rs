//! The run loop: asks the strategy for probes, starts up to `--parallel` of
//! them at once (each on its own endpoint, reused or resized where it can),
//! measures each through the driver, records every step the moment it ends,
//! and feeds the outcomes back; on Ctrl-C, an error or the budget it stops
//! starting probes, lets the running ones end, and concludes.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use super::SizingError;
use crate::engine::Pace;
use crate::engine::load_step::drive_and_judge;
use crate::environment::{ApiError, Autoscaler, DeployError, Deployed, Environment};
use crate::load::{Driver, LoadError};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::record::{RunDir, RunDirError, RunStatus, Summary};
use crate::result::{self, MetricsWindow, StepContext, StepResult};
use crate::sagemaker::{AwsErrorKind, VARIANT_NAME};
use crate::step::{Next, Outcome, Strategy};
use crate::vocab::{Candidate, Lane, Probe};

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
    /// The `perfsize cleanup` command that removes what teardown could not.
    pub cleanup_command: String,
    pub command_line: Vec<String>,
    /// Steps of an interrupted run being resumed, reused instead of re-run.
    pub resumed: Vec<StepResult>,
    /// Wall time of the run's earlier sessions (`--resume`); their billing
    /// periods are in the environment's ledger.
    pub earlier_wall_seconds: f64,
}

/// What probes borrow for the whole run.
pub(super) struct Shared {
    pub(super) started_at: DateTime<Utc>,
    /// Cancelled by Ctrl-C or by a failure that ends the run.
    pub(super) run_cancel: CancellationToken,
    /// Endpoints whose payloads were already sent once.
    pub(super) preflighted: RefCell<HashSet<String>>,
    /// Background CloudWatch fetches, awaited before the summary.
    pub(super) metrics_updates: RefCell<Vec<tokio::task::JoinHandle<()>>>,
}

/// The run loop's state.
pub(super) struct RunState {
    pub(super) strategy: Box<dyn Strategy>,
    pub(super) steps: Vec<StepResult>,
    /// Steps of an earlier session not yet used to answer a probe.
    pub(super) resumed: Vec<StepResult>,
    /// The endpoint of each instance type, while no probe uses it.
    pub(super) lanes: BTreeMap<Lane, Deployed>,
    pub(super) next_index: u32,
    pub(super) status: RunStatus,
    pub(super) note: Option<String>,
    pub(super) error: Option<SizingError>,
    /// No more probes will be started.
    pub(super) done: bool,
    pub(super) generator_retries: std::collections::HashMap<String, u32>,
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
    pub(super) fn fail(&mut self, error: SizingError, run_cancel: &CancellationToken) {
        if self.status == RunStatus::Completed {
            self.status = RunStatus::Failed;
        }
        self.error.get_or_insert(error);
        self.done = true;
        run_cancel.cancel();
    }

    pub(super) fn interrupted(&mut self) {
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
    /// Measured, but the run directory refused its file (a full or
    /// unwritable disk): the step is kept in memory, and the run stops.
    Unrecorded(Box<StepResult>, RunDirError),
    NotDeployed(String),
    Interrupted,
}

enum Task {
    Probe(ProbeDone),
    Released(Lane, Result<(), ApiError>),
}

type TaskFuture<'a> = Pin<Box<dyn Future<Output = Task> + 'a>>;

impl<'a, E: Environment + Autoscaler, D: Driver> Sizing<'a, E, D> {
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
        let scaling = self.test_scaling(&mut st, &shared).await;
        self.conclude(st, shared, scaling).await
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
                    self.launch(probe, None, st, tasks, shared);
                }
                Next::Wait => return,
                Next::Done => {
                    st.done = true;
                    return;
                }
            }
        }
    }

    /// Starts `probe` as the next step; `remeasure_of` names the disturbed
    /// step it measures again, if it does.
    fn launch<'r>(
        &'r self,
        probe: Probe,
        remeasure_of: Option<u32>,
        st: &mut RunState,
        tasks: &mut FuturesUnordered<TaskFuture<'r>>,
        shared: &'r Shared,
    ) {
        let endpoint = st.lanes.remove(&probe.candidate.lane());
        let index = st.next_index;
        st.next_index += 1;
        tasks.push(Box::pin(self.probe(probe, endpoint, Step { index, remeasure_of }, shared)));
    }

    /// Takes down endpoints no coming probe needs, rather than pay for them idle.
    fn release_idle<'r>(&'r self, st: &mut RunState, tasks: &mut FuturesUnordered<TaskFuture<'r>>) {
        let idle: Vec<Lane> = st.lanes.keys().filter(|lane| !st.strategy.keep(lane)).cloned().collect();
        for lane in idle {
            let deployed = st.lanes.remove(&lane).expect("listed above");
            tasks.push(Box::pin(async move {
                let result = self.env.release(&deployed).await;
                Task::Released(lane, result)
            }));
        }
    }

    /// Takes in whatever a task came back with.
    fn on_task<'r>(&'r self, task: Task, st: &mut RunState, tasks: &mut FuturesUnordered<TaskFuture<'r>>, shared: &'r Shared) {
        let ProbeDone { probe, endpoint, result } = match task {
            Task::Released(_, Ok(())) => return,
            Task::Released(lane, Err(e)) => {
                self.progress.line(format!("cannot take down the {lane} endpoint: {e}"));
                st.fail(e.into(), &shared.run_cancel);
                return;
            }
            Task::Probe(done) => done,
        };
        if let Some(endpoint) = endpoint {
            st.lanes.insert(endpoint.candidate.lane(), endpoint);
        }
        match result {
            Ok(ProbeResult::Measured(step)) => self.on_measured(probe, *step, st, tasks, shared),
            Ok(ProbeResult::Unrecorded(step, e)) => {
                self.progress.line(format!("stopping: {e}; step {} is kept in memory, nothing more is written", step.index));
                st.steps.push(*step);
                st.fail(e.into(), &shared.run_cancel);
            }
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
    /// measured this machine's CPU rather than the endpoint, or failed on a
    /// disturbance of the endpoint (measured again once, then judged).
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
        // A disturbance explains a failure better than a slow generator: its
        // errors are the endpoint's answers, which no slip produces.
        if let Some(disturbance) = step.disturbance.as_ref().filter(|_| step.awaits_remeasure())
            && self.may_measure_again(&probe, st, shared)
        {
            self.progress.line(format!("step {}: {}; measuring again", step.index, disturbance.describe()));
            self.launch(probe, Some(step.index), st, tasks, shared);
        } else if behind && retries >= GENERATOR_RETRIES {
            // Blaming the endpoint would be wrong, and so would any answer.
            self.progress
                .line(format!("stopping: the load generator cannot keep up with {} on this machine", probe.load.label()));
            st.fail(SizingError::Generator { load: probe.load, slip_p99_ms: step.generator.slip_p99_ms }, &shared.run_cancel);
        } else if behind && self.may_measure_again(&probe, st, shared) {
            st.generator_retries.insert(probe_key(&probe), retries + 1);
            self.progress.line(format!("step {}: the load generator fell behind; measuring again", step.index));
            self.launch(probe, None, st, tasks, shared);
        } else if !step.misses.contains(&result::Miss::Interrupted) {
            st.strategy.record(&probe, &Outcome::from_step(&step));
        }
        st.steps.push(step);
    }

    /// Whether `probe` may be measured once more: the run goes on and the
    /// budget allows it.
    fn may_measure_again(&self, probe: &Probe, st: &RunState, shared: &Shared) -> bool {
        !shared.run_cancel.is_cancelled() && self.over_budget(probe, &st.lanes).is_none()
    }

    /// Deploys (or reuses, or resizes) the endpoint, then measures.
    async fn probe(&self, probe: Probe, endpoint: Option<Deployed>, step: Step, shared: &Shared) -> Task {
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
        let result = self.measure(&probe, &endpoint, step, shared).await;
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
                let count = candidate.fleet().expect("only an instance lane holds another candidate").count;
                match self.env.resize(&mut deployed, count, cancel).await {
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

    async fn measure(&self, probe: &Probe, endpoint: &Deployed, step: Step, shared: &Shared) -> Result<ProbeResult, SizingError> {
        let Step { index, remeasure_of } = step;
        let (cancel, preflighted, metrics_updates) = (&shared.run_cancel, &shared.preflighted, &shared.metrics_updates);
        let target = self.driver.target(&endpoint.endpoint);
        let (spec, warmup) = self.plan.step_spec(probe, target, index);
        if !preflighted.borrow().contains(&endpoint.endpoint) {
            match self.driver.preflight(&spec).await {
                Ok(()) => {}
                // The configuration, not the payload, is what the model refused.
                Err(LoadError::PayloadRejected { code, message, .. }) if probe.candidate.refusals_are_its_own() => {
                    return Ok(ProbeResult::NotDeployed(format!("the model refused every request: {code}: {message}")));
                }
                Err(e @ LoadError::PayloadRejected { .. }) => return Err(SizingError::PayloadRejected(e)),
                Err(other) => return Err(SizingError::Load(other)),
            }
            preflighted.borrow_mut().insert(endpoint.endpoint.clone());
        }
        let idle = self.plan.idle_before(probe);
        if !idle.is_zero() {
            self.progress.activity(format!(
                "step {index} · waiting {} with no traffic so that {} goes cold",
                humantime::format_duration(Duration::from_secs(idle.as_secs())),
                probe.candidate
            ));
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                _ = cancel.cancelled() => return Ok(ProbeResult::Interrupted),
            }
        }
        self.progress.activity(format!(
            "step {index} · {} {} at {} for {}",
            probe.phase.as_str(),
            probe.candidate,
            probe.load.label(),
            humantime::format_duration(Duration::from_secs(spec.length().as_secs()))
        ));
        let context = StepContext {
            index,
            phase: probe.phase,
            simulated: self.simulated,
            endpoint_name: endpoint.endpoint.clone(),
            candidate: Some(probe.candidate.clone()),
            // A closed loop sets no rate: its streams take what the endpoint gives.
            target_tps: probe.load.rate().unwrap_or(0.0),
            warmup_seconds: warmup.as_secs_f64(),
            requirements: *self.plan.requirements(),
            horizon: self.plan.durations().endurance,
            steady_from: None,
            streaming: self.plan.streaming().map(|s| s.requirements),
        };
        let (mut step, run) =
            drive_and_judge(self.driver, spec, context, &self.progress, cancel).await.map_err(SizingError::Load)?;
        if let Some(first) = remeasure_of {
            step.remeasures(first);
        }
        step.cloudwatch = result::ServerMetrics::unavailable(if self.cloudwatch.is_some() {
            "waiting for CloudWatch"
        } else {
            "CloudWatch not read"
        });
        let recorded = self.dir.write_step(&step).and_then(|_| self.dir.write_spend(&self.spend(shared.started_at)));
        if let Err(e) = recorded {
            return Ok(ProbeResult::Unrecorded(Box::new(step), e));
        }
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

/// A step about to be run: its index, and the disturbed step it measures
/// again, if it does.
#[derive(Debug, Clone, Copy)]
struct Step {
    index: u32,
    remeasure_of: Option<u32>,
}

/// How often a step whose load generator fell behind is measured again.
pub(super) const GENERATOR_RETRIES: u32 = 2;

fn probe_key(probe: &Probe) -> String {
    format!("{:?}/{}/{}", probe.phase, probe.candidate, probe.load.label())
}

/// Whether a step's failure may be this machine's CPU rather than the
/// endpoint: only schedule slip counts, since running out of in-flight slots
/// means the server is slow, and a pass despite slip is a pass.
pub(super) fn generator_fell_behind(step: &StepResult) -> bool {
    let g = &step.generator;
    // Generator-limited: requests went unsent, so the endpoint was not measured at the rate.
    !step.passed && (g.limited.is_some() || (g.late_starts == 0 && g.slipped(&step.requirements)))
}

/// A resumed step answers a probe when it measured the same thing and the
/// run trusted it (not interrupted, not measured again for the generator or
/// for a disturbance).
fn same_probe(step: &StepResult, probe: &Probe) -> bool {
    step.phase == probe.phase
        && step.candidate().as_ref() == Some(&probe.candidate)
        && step.load().level_matches(&probe.load)
        && !step.misses.contains(&result::Miss::Interrupted)
        && !generator_fell_behind(step)
        && !step.awaits_remeasure()
}

/// One line about a finished step.
pub(super) fn describe(step: &StepResult) -> String {
    let p99 = step.latency_ms.map_or("-".into(), |l| format!("{:.1}", l.p99));
    let what = step.candidate().map_or_else(|| format!("{} × {}", step.instance_type, step.instance_count), |c| c.to_string());
    format!(
        "{} {what} at {}: {}{} (p99 {p99} ms, {:.3}% errors{})",
        step.phase.as_str(),
        step.load().label(),
        if step.passed { "PASS" } else { "FAIL" },
        if step.disturbance.is_some() { " [disturbed]" } else { "" },
        step.error_percent,
        if step.passed { String::new() } else { format!(" — {}", step.reasons.join("; ")) }
    )
}
