//! The sizing run: asks the step manager what to test, has the environment
//! manager deploy it (reusing or resizing an endpoint where it can), drives
//! it with the load manager, judges it with the result manager, writes each
//! step to disk the moment it ends, and concludes with a summary.
//!
//! Up to `--parallel` probes run at once, each on its own endpoint. Teardown
//! runs on every path — conclusion, budget, Ctrl-C, AWS failure — before the
//! summary is written.

pub mod summary;

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

use crate::aws::Aws;
use crate::catalog::InstanceType;
use crate::environment::{ApiError, DeployError, Deployed, Environment, Spend};
use crate::load::{self, LoadError, RequestSigner, Target};
use crate::plan::{Candidate, Plan};
use crate::progress::Progress;
use crate::result::{self, MetricsWindow, Phase, StepContext, StepResult, trim_number};
use crate::run_dir::{RunDir, RunDirError, SPEND_FILE};
use crate::step::{Next, Outcome, Probe, Strategy};

pub use summary::{Autoscaling, PlanRecord, Recommendation, RunStatus, StepBrief, Summary, TypeOutcome};

/// What stops a sizing run for good.
#[derive(Debug, thiserror::Error)]
pub enum SizingError {
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

/// Timing that differs between AWS and the simulator.
#[derive(Debug, Clone)]
pub struct Pace {
    /// How often to ask SageMaker whether an endpoint is ready.
    pub poll: Duration,
    /// How long an endpoint may take to deploy before it counts as failed.
    pub deploy_timeout: Duration,
    /// CloudWatch period: SageMaker publishes per minute on AWS.
    pub metrics_period: Duration,
    /// How long to wait for CloudWatch figures, which arrive late on AWS.
    pub metrics_wait: Duration,
    pub metrics_poll: Duration,
    /// Assumed time to deploy an endpoint, for budget and plan estimates.
    pub deploy_estimate: Duration,
}

impl Pace {
    pub fn for_session(simulated: bool) -> Pace {
        if simulated {
            Pace {
                poll: Duration::from_millis(100),
                deploy_timeout: Duration::from_secs(120),
                metrics_period: Duration::from_secs(1),
                metrics_wait: Duration::from_secs(3),
                metrics_poll: Duration::from_millis(250),
                deploy_estimate: Duration::from_secs(5),
            }
        } else {
            Pace {
                poll: Duration::from_secs(15),
                deploy_timeout: Duration::from_secs(60 * 60),
                metrics_period: Duration::from_secs(60),
                metrics_wait: Duration::from_secs(180),
                metrics_poll: Duration::from_secs(20),
                deploy_estimate: Duration::from_secs(8 * 60),
            }
        }
    }
}

/// Everything a sizing run works with.
pub struct Sizing<'a, E: Environment> {
    pub plan: &'a Plan,
    pub env: &'a E,
    pub aws: &'a Aws,
    pub dir: &'a RunDir,
    pub progress: Arc<Progress>,
    pub pace: Pace,
    pub simulated: bool,
    pub signer: Arc<RequestSigner>,
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

impl<'a, E: Environment> Sizing<'a, E> {
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
            let not_found = e.code == "ValidationException" && e.message.contains("Could not find");
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
        if let Err(e) = self.dir.write_json(SPEND_FILE, &spend) {
            st.error.get_or_insert(e.into());
        }
        let summary = self.summarise(st.strategy.as_ref(), &steps, st.status, st.note, shared.started_at, spend);
        if let Err(e) = self.dir.write_json("summary.json", &summary) {
            st.error.get_or_insert(e.into());
        }
        (summary, st.error)
    }

    /// What the whole run has spent up to now, all sessions included.
    fn spend(&self, started_at: DateTime<Utc>) -> Spend {
        let now = Utc::now();
        let ledger = self.env.ledger();
        let ledger = ledger.lock().expect("ledger lock");
        let mut run_cost = self.plan.prices().run_cost(ledger.usage(), now);
        run_cost.wall_seconds = self.earlier_wall_seconds + ((now - started_at).num_milliseconds() as f64 / 1000.0).max(0.0);
        Spend { written_at: now, run_cost, usage: ledger.usage().to_vec() }
    }

    /// Whether starting `probe` could take the run past --max-test-cost.
    fn over_budget(&self, probe: &Probe, lanes: &BTreeMap<InstanceType, Deployed>) -> Option<String> {
        let budget = self.plan.max_test_cost()?;
        let ledger = self.env.ledger();
        let ledger = ledger.lock().expect("ledger lock");
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
        let traffic = self.plan.traffic();
        if !preflighted.borrow().contains(&endpoint.endpoint) {
            load::preflight::check_payloads(
                &self.aws.runtime,
                &endpoint.endpoint,
                &traffic.payloads,
                &traffic.content_type,
                &traffic.accept,
            )
            .await
            .map_err(|e| match e {
                LoadError::PayloadRejected { .. } => SizingError::PayloadRejected(e),
                other => SizingError::Load(other),
            })?;
            preflighted.borrow_mut().insert(endpoint.endpoint.clone());
        }
        let (rate, warmup) = self.plan.rate_profile(probe);
        let target = Target { endpoint: endpoint.endpoint.clone(), runtime_url: self.aws.runtime_url.clone() };
        let spec = traffic.load_spec(target, rate, warmup, index, self.plan.requirements());
        self.progress.activity(format!(
            "step {index} · {} {} at {} TPS for {}",
            probe.phase.as_str(),
            probe.candidate,
            trim_number(probe.tps),
            humantime::format_duration(Duration::from_secs(rate.length().as_secs()))
        ));
        let progress = Arc::clone(&self.progress);
        let live: load::ProgressFn = Arc::new(move |row| progress.second(row));
        let run = load::drive(spec, Arc::clone(&self.signer), cancel.clone(), Some(live)).await.map_err(SizingError::Load)?;
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
        let mut step = StepResult::from_run(context, &run);
        step.cloudwatch = result::ServerMetrics::unavailable("waiting for CloudWatch");
        let path = self.dir.write_step(&step)?;
        self.dir.write_json(SPEND_FILE, &self.spend(shared.started_at))?;
        if !run.cancelled {
            let window = MetricsWindow {
                endpoint: endpoint.endpoint.clone(),
                variant: "AllTraffic".into(),
                from: run.measured_from,
                to: run.measured_to,
                period: self.pace.metrics_period,
                expected_invocations: step.requests,
            };
            metrics_updates.borrow_mut().push(spawn_metrics_update(
                self.aws.cloudwatch.clone(),
                window,
                self.pace.clone(),
                step.clone(),
                path,
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
            region: self.aws.region.clone(),
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
    path: std::path::PathBuf,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        step.cloudwatch = result::cloudwatch::fetch(&client, &window, pace.metrics_wait, pace.metrics_poll, &cancel).await;
        if let Err(e) = result::write_json(&path, &step) {
            tracing::warn!("cannot add CloudWatch figures to {}: {e}", path.display());
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
