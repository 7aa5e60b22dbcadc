//! The run loop against a fake environment and a fake load driver: a
//! synthetic world where each instance type has a true capacity per
//! instance, deployments are instant, and a step "measures" 20 ms when the
//! rate per instance is within capacity and 2 s when it is not.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::engine::Pace;
use crate::environment::Kind as ResourceKind;
use crate::environment::{ApiError, Autoscaler, DeployError, Deployed, Environment, SharedLedger};
use crate::load::recorder::new_histogram;
use crate::load::{Counts, LoadRun, LoadSpec, ProgressFn, Target, Totals};
use crate::load::{Driver, LoadError};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::record::{RunDir, RunStatus, Summary};
use crate::result::StepResult;
use crate::vocab::{Candidate, Phase};

/// What the fakes saw, shared by the environment and the driver.
#[derive(Default)]
struct World {
    /// Requests per second one instance of each type sustains.
    capacity: BTreeMap<String, f64>,
    /// Endpoint name → what it serves now.
    endpoints: BTreeMap<String, Candidate>,
    drives: u32,
    /// Drives in flight now, and the most there ever were.
    in_flight: u32,
    most_in_flight: u32,
    /// The next drives report this much schedule slip (ms), one per entry.
    slips: Vec<f64>,
    /// The nth drive (from 1) fails as if the endpoint could not be reached.
    unreachable_at: Option<u32>,
    /// These drives (from 1) meet an endpoint that fails every request for
    /// two seconds mid-step, then recovers.
    disturbed: Vec<u32>,
    /// The nth drive (from 1) is interrupted by Ctrl-C half-way.
    interrupt_at: Option<u32>,
    /// What Ctrl-C cancels: the run's own token.
    ctrl_c: CancellationToken,
    torn_down: bool,
    /// Endpoint name → the scaling policy on it.
    policies: BTreeMap<String, crate::scaling::Policy>,
    /// Endpoints taken to zero instances.
    at_zero: std::collections::BTreeSet<String>,
    /// Auto-scaling trials pass when they start from at least this many instances.
    ramp_needs: u32,
    /// The first auto-scaling trial is interrupted by Ctrl-C.
    interrupt_scaling: bool,
    /// The next auto-scaling trials report this much schedule slip (ms), one per entry.
    scaling_slips: Vec<f64>,
}

type SharedWorld = Arc<Mutex<World>>;

struct FakeEnvironment {
    world: SharedWorld,
    ledger: SharedLedger,
}

impl Environment for FakeEnvironment {
    async fn prepare(&self) -> Result<(), ApiError> {
        Ok(())
    }

    async fn deploy(&self, candidate: &Candidate, _cancel: &CancellationToken) -> Result<Deployed, DeployError> {
        let name = format!("fake-{}", candidate.lane());
        let mut ledger = crate::error::lock(&self.ledger);
        ledger.created(ResourceKind::Endpoint, &name);
        ledger.open(&name, candidate);
        self.world.lock().unwrap().endpoints.insert(name.clone(), candidate.clone());
        Ok(Deployed { endpoint: name.clone(), config: name, candidate: candidate.clone(), deploy_seconds: 0.0 })
    }

    async fn resize(&self, deployed: &mut Deployed, count: u32, _cancel: &CancellationToken) -> Result<(), DeployError> {
        deployed.candidate = deployed.candidate.fleet().expect("the fake resizes instances").with_count(count).candidate();
        let mut ledger = crate::error::lock(&self.ledger);
        ledger.close(&deployed.endpoint);
        ledger.open(&deployed.endpoint, &deployed.candidate);
        self.world.lock().unwrap().endpoints.insert(deployed.endpoint.clone(), deployed.candidate.clone());
        Ok(())
    }

    async fn release(&self, deployed: &Deployed) -> Result<(), ApiError> {
        let mut ledger = crate::error::lock(&self.ledger);
        ledger.close(&deployed.endpoint);
        ledger.deleted(ResourceKind::Endpoint, &deployed.endpoint);
        self.world.lock().unwrap().endpoints.remove(&deployed.endpoint);
        Ok(())
    }

    async fn teardown(&self) -> Result<(), ApiError> {
        let mut world = self.world.lock().unwrap();
        let mut ledger = crate::error::lock(&self.ledger);
        for name in std::mem::take(&mut world.policies).into_keys() {
            ledger.deleted(ResourceKind::ScalableTarget, &name);
        }
        for name in std::mem::take(&mut world.endpoints).into_keys() {
            ledger.close(&name);
            ledger.deleted(ResourceKind::Endpoint, &name);
        }
        world.torn_down = true;
        Ok(())
    }

    fn ledger(&self) -> SharedLedger {
        Arc::clone(&self.ledger)
    }
}

/// Scaling acts at the end of each trial: the endpoint ends at the policy's maximum.
impl Autoscaler for FakeEnvironment {
    async fn apply_policy(&self, endpoint: &str, policy: &crate::scaling::Policy) -> Result<(), ApiError> {
        crate::error::lock(&self.ledger).created(ResourceKind::ScalableTarget, endpoint);
        self.world.lock().unwrap().policies.insert(endpoint.to_string(), policy.clone());
        Ok(())
    }

    async fn remove_policy(&self, endpoint: &str) -> Result<(), ApiError> {
        crate::error::lock(&self.ledger).deleted(ResourceKind::ScalableTarget, endpoint);
        self.world.lock().unwrap().policies.remove(endpoint);
        Ok(())
    }

    async fn instances(&self, deployed: &Deployed) -> Result<crate::scaling::Instances, ApiError> {
        let world = self.world.lock().unwrap();
        let count = match world.at_zero.contains(&deployed.endpoint) {
            true => 0,
            false => world.endpoints.get(&deployed.endpoint).map_or(0, Candidate::instance_count),
        };
        Ok(crate::scaling::Instances { desired: count, current: count })
    }

    async fn scale_to_zero(&self, deployed: &Deployed, _cancel: &CancellationToken) -> Result<(), DeployError> {
        self.world.lock().unwrap().at_zero.insert(deployed.endpoint.clone());
        Ok(())
    }

    async fn activities(&self, _endpoint: &str) -> Result<Vec<crate::scaling::Activity>, ApiError> {
        Ok(Vec::new())
    }
}

struct FakeDriver {
    world: SharedWorld,
}

impl Driver for FakeDriver {
    fn target(&self, endpoint: &str) -> Target {
        Target { endpoint: endpoint.to_string(), runtime_url: "http://fake".into() }
    }

    async fn preflight(&self, _spec: &LoadSpec) -> Result<(), LoadError> {
        Ok(())
    }

    async fn drive(&self, spec: LoadSpec, cancel: CancellationToken, _live: Option<ProgressFn>) -> Result<LoadRun, LoadError> {
        let (n, candidate, capacity, slip_ms, mut interrupt) = {
            let mut world = self.world.lock().unwrap();
            world.drives += 1;
            world.in_flight += 1;
            world.most_in_flight = world.most_in_flight.max(world.in_flight);
            let n = world.drives;
            let candidate = world.endpoints[&spec.target.endpoint].clone();
            let capacity = world.capacity[candidate.kind_label().as_str()];
            let slip_ms = if world.slips.is_empty() { 0.0 } else { world.slips.remove(0) };
            (n, candidate, capacity, slip_ms, world.interrupt_at == Some(n))
        };
        let policy = self.world.lock().unwrap().policies.get(&spec.target.endpoint).cloned();
        if let Some(policy) = policy {
            // An auto-scaling trial: it holds when it starts from enough instances.
            let mut world = self.world.lock().unwrap();
            world.in_flight -= 1;
            interrupt = std::mem::take(&mut world.interrupt_scaling);
            if interrupt {
                world.ctrl_c.cancel();
            }
            let holds = candidate.instance_count() >= world.ramp_needs;
            let slip_ms = if world.scaling_slips.is_empty() { 0.0 } else { world.scaling_slips.remove(0) };
            let scaled = world.endpoints[&spec.target.endpoint].fleet().expect("instances scale").with_count(policy.max);
            world.endpoints.insert(spec.target.endpoint.clone(), scaled.candidate());
            let latency_ms = if holds { 20.0 } else { 2_000.0 } + slip_ms;
            return Ok(synthetic_run(&spec, latency_ms, slip_ms, interrupt || cancel.is_cancelled()));
        }
        // Let another lane's drive start while this one "runs".
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.world.lock().unwrap().in_flight -= 1;
        if self.world.lock().unwrap().unreachable_at == Some(n) {
            return Err(LoadError::Unreachable { endpoint: spec.target.endpoint, reason: "connection refused".into() });
        }
        if interrupt {
            self.world.lock().unwrap().ctrl_c.cancel();
        }
        let within = spec.target_rate().unwrap_or_default() / candidate.instance_count() as f64 <= capacity;
        let mut run = synthetic_run(&spec, if within { 20.0 } else { 2_000.0 } + slip_ms, slip_ms, cancel.is_cancelled());
        if self.world.lock().unwrap().disturbed.contains(&n) {
            disturb(&mut run);
        }
        Ok(run)
    }
}

/// A measured window in which every request took `latency_ms`.
fn synthetic_run(spec: &LoadSpec, latency_ms: f64, slip_ms: f64, cancelled: bool) -> LoadRun {
    let seconds = spec.measured().as_secs_f64();
    let requests = (spec.target_rate().unwrap_or_default() * seconds).round().max(1.0) as u64;
    let mut totals = Totals {
        all: new_histogram(),
        success: new_histogram(),
        slip: new_histogram(),
        counts: Counts { sent: requests, succeeded: requests, ..Counts::default() },
        errors_by_status: BTreeMap::new(),
        errors_by_code: BTreeMap::new(),
    };
    let micros = (latency_ms * 1000.0) as u64;
    for h in [&mut totals.all, &mut totals.success] {
        h.record_n(micros, requests).unwrap();
    }
    totals.slip.record_n(((slip_ms * 1000.0) as u64).max(1), requests).unwrap();
    let now = SystemTime::now();
    LoadRun {
        started_at: Utc::now(),
        ended_at: Utc::now(),
        measured_from: now,
        measured_to: now,
        offered: requests,
        measured_seconds: seconds,
        totals,
        series: Vec::new(),
        intervals: Vec::new(),
        max_in_flight: spec.max_in_flight(),
        model: spec.pacing.model(),
        shard: None,
        cancelled,
        asynchronous: None,
        streaming: None,
    }
}

/// Ten measured seconds in which the endpoint failed every request of the
/// 4th and 5th (server errors), and answered the others.
fn disturb(run: &mut LoadRun) {
    let requests = run.totals.counts.sent;
    let per_second = (requests / 10).max(1);
    let failed = 2 * per_second;
    let counts = &mut run.totals.counts;
    counts.failed = failed;
    counts.answered_failures = failed;
    counts.succeeded = requests.saturating_sub(failed);
    run.totals.errors_by_status.insert("503".into(), failed);
    run.totals.errors_by_code.insert("ServiceUnavailable".into(), failed);
    run.series = (1..=10)
        .map(|second| {
            let errors = if (4..=5).contains(&second) { per_second } else { 0 };
            crate::load::SecondStats {
                second,
                warmup: false,
                offered: per_second,
                completed: per_second,
                errors,
                server_errors: errors,
                in_flight: 1,
                p50_ms: Some(20.0),
                p99_ms: Some(20.0),
            }
        })
        .collect();
}

fn plan(types: &[&str], parallel: usize, max_test_cost: Option<f64>) -> Plan {
    let mut parts = crate::plan::testing::parts(100.0);
    parts.search.types = types.iter().map(|t| t.parse().unwrap()).collect();
    parts.search.endurance_retries = 2;
    parts.search.parallel = parallel;
    parts.max_test_cost = max_test_cost;
    Plan::new(parts).unwrap()
}

/// A results directory of its own for each run of a test.
fn scratch() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("perfsize-engine-{}-{n}", std::process::id()))
}

struct Outcome {
    summary: Summary,
    error: Option<SizingError>,
    world: SharedWorld,
    ledger: SharedLedger,
    dir: RunDir,
}

/// Runs the loop on `plan` in a world where one instance of each type
/// sustains the given rate; `tweak` sets the world's faults.
async fn size(plan: &Plan, capacity: &[(&str, f64)], resumed: Vec<StepResult>, tweak: impl FnOnce(&mut World)) -> Outcome {
    let dir = RunDir::create(&scratch(), "run").unwrap();
    let cancel = CancellationToken::new();
    let world: SharedWorld =
        Arc::new(Mutex::new(World { capacity: capacity.iter().map(|(t, c)| (t.to_string(), *c)).collect(), ..World::default() }));
    world.lock().unwrap().ctrl_c = cancel.clone();
    tweak(&mut world.lock().unwrap());
    let ledger: SharedLedger = Arc::default();
    let env = FakeEnvironment { world: Arc::clone(&world), ledger: Arc::clone(&ledger) };
    let driver = FakeDriver { world: Arc::clone(&world) };
    let sizing = Sizing {
        plan,
        env: &env,
        driver: &driver,
        cloudwatch: None,
        region: "us-west-2".into(),
        dir: &dir,
        progress: Arc::new(Progress::new(true, true)),
        pace: Pace::for_session(true),
        simulated: true,
        cancel,
        run_id: "run".into(),
        cleanup_command: "perfsize cleanup --run-id run".into(),
        command_line: Vec::new(),
        resumed,
        earlier_wall_seconds: 0.0,
    };
    let (summary, error) = sizing.run().await;
    Outcome { summary, error, world, ledger, dir }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.dir.root().parent().expect("results/run"));
    }
}

impl Outcome {
    fn nothing_left(&self) {
        let world = self.world.lock().unwrap();
        assert!(world.torn_down, "teardown ran");
        assert!(world.endpoints.is_empty(), "no endpoint left: {:?}", world.endpoints);
        let ledger = crate::error::lock(&self.ledger);
        assert!(ledger.live().is_empty(), "nothing alive: {:?}", ledger.live());
        assert!(ledger.usage().iter().all(|u| u.to.is_some()), "every billing period closed");
    }

    fn recommended(&self) -> Option<String> {
        self.summary.recommendation.as_ref().map(|r| format!("{} × {}", r.instance_type, r.instance_count))
    }
}

#[tokio::test]
async fn a_run_recommends_the_cheapest_verified_configuration_and_tears_down() {
    let plan = plan(&["ml.m5.large", "ml.c5.large"], 1, None);
    let run = size(&plan, &[("ml.m5.large", 60.0), ("ml.c5.large", 120.0)], Vec::new(), |_| {}).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.summary.status, RunStatus::Completed);
    assert_eq!(run.recommended().as_deref(), Some("ml.c5.large × 1"), "one c5 ($0.102/h) beats two m5 ($0.23/h)");
    assert_eq!(run.dir.steps().unwrap().len(), run.summary.steps.len(), "every step is on disk");
    assert!(run.dir.summary().unwrap().is_some() && run.dir.spend().unwrap().is_some());
    run.nothing_left();
}

#[tokio::test]
async fn the_budget_stops_the_run_before_a_step_that_would_pass_it() {
    // A 6 s search step of one ml.m5.large costs about $0.0002; a 20 s
    // endurance run about $0.0006: the budget admits searches, not endurance.
    let plan = plan(&["ml.m5.large"], 1, Some(0.0005));
    let run = size(&plan, &[("ml.m5.large", 120.0)], Vec::new(), |_| {}).await;
    assert_eq!(run.summary.status, RunStatus::BudgetReached);
    assert!(run.summary.note.as_deref().is_some_and(|n| n.contains("--max-test-cost")), "{:?}", run.summary.note);
    assert!(run.summary.steps.iter().all(|s| s.phase == Phase::Search), "no endurance run started");
    assert!(run.error.is_none());
    run.nothing_left();
}

#[tokio::test]
async fn a_step_whose_generator_fell_behind_is_measured_again() {
    // The first step (at the peak ÷ --max-utilization) slips 700 ms: within
    // capacity but over the limit because of the slip, so the step is not
    // blamed on the endpoint.
    let plan = plan(&["ml.m5.large"], 1, None);
    let run = size(&plan, &[("ml.m5.large", 120.0)], Vec::new(), |w| w.slips = vec![700.0]).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    let first_two: Vec<_> = run.summary.steps.iter().take(2).map(|s| (s.phase, s.target_tps, s.passed)).collect();
    let first = plan.peak_tps().unwrap() / plan.search().max_utilization;
    assert_eq!(first_two, [(Phase::Search, first, false), (Phase::Search, first, true)], "the same probe again, then a pass");
    assert_eq!(run.recommended().as_deref(), Some("ml.m5.large × 1"));
    run.nothing_left();
}

#[tokio::test]
async fn a_step_disturbed_mid_way_is_measured_again_and_judged_on_the_second_measurement() {
    // The first step (at the peak ÷ --max-utilization) is within capacity,
    // but the endpoint failed for two seconds of it.
    let plan = plan(&["ml.m5.large"], 1, None);
    let run = size(&plan, &[("ml.m5.large", 120.0)], Vec::new(), |w| w.disturbed = vec![1]).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    let on_disk = run.dir.steps().unwrap();
    assert_eq!(on_disk.len(), run.summary.steps.len(), "both measurements are on disk");
    let (first, second) = (&on_disk[0], &on_disk[1]);
    assert!(!first.passed && first.disturbance.is_some(), "{:?}", first.reasons);
    assert_eq!((second.target_tps, second.remeasure_of, second.passed), (first.target_tps, Some(1), true));
    assert!(run.summary.steps[0].disturbed && !run.summary.steps[1].disturbed);
    assert_eq!(run.recommended().as_deref(), Some("ml.m5.large × 1"), "judged on the re-measurement");
    run.nothing_left();
}

#[tokio::test]
async fn a_disturbed_step_whose_generator_also_slipped_is_measured_again_as_disturbed() {
    let plan = plan(&["ml.m5.large"], 1, None);
    let run = size(&plan, &[("ml.m5.large", 120.0)], Vec::new(), |w| {
        w.disturbed = vec![1];
        w.slips = vec![700.0];
    })
    .await;
    let on_disk = run.dir.steps().unwrap();
    assert!(on_disk[0].disturbance.is_some() && super::run_loop::generator_fell_behind(&on_disk[0]), "both explanations apply");
    assert_eq!(on_disk[1].remeasure_of, Some(1), "the errors are the endpoint's: it is the disturbance that is re-measured");
    assert_eq!(run.recommended().as_deref(), Some("ml.m5.large × 1"));
    run.nothing_left();
}

#[tokio::test]
async fn a_step_disturbed_twice_is_judged_as_measured() {
    let plan = plan(&["ml.m5.large"], 1, None);
    let run = size(&plan, &[("ml.m5.large", 120.0)], Vec::new(), |w| w.disturbed = vec![1, 2]).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    let on_disk = run.dir.steps().unwrap();
    let second = &on_disk[1];
    assert_eq!(second.remeasure_of, Some(1));
    assert!(!second.passed && second.reasons.iter().any(|r| r.contains("disturbed twice")), "{:?}", second.reasons);
    assert_ne!(on_disk[2].target_tps, on_disk[0].target_tps, "the failure counts: the search moves on");
    run.nothing_left();
}

#[tokio::test]
async fn a_generator_that_never_keeps_up_stops_the_run_rather_than_blame_the_endpoint() {
    let plan = plan(&["ml.m5.large"], 1, None);
    let run = size(&plan, &[("ml.m5.large", 120.0)], Vec::new(), |w| w.slips = vec![700.0; 10]).await;
    assert!(matches!(run.error, Some(SizingError::Generator { .. })), "{:?}", run.error);
    assert_eq!(run.summary.status, RunStatus::Failed);
    assert_eq!(run.summary.steps.len(), 1 + GENERATOR_RETRIES as usize);
    assert!(run.summary.recommendation.is_none());
    run.nothing_left();
}

#[tokio::test]
async fn a_resumed_run_reuses_the_steps_it_already_measured() {
    let plan = plan(&["ml.m5.large", "ml.c5.large"], 1, None);
    // Neither type takes the peak on one instance: each is searched.
    let capacity = [("ml.m5.large", 40.0), ("ml.c5.large", 45.0)];
    let first = size(&plan, &capacity, Vec::new(), |_| {}).await;
    let earlier = first.dir.steps().unwrap();
    assert!(earlier.len() >= 4, "{}", earlier.len());
    // The session was killed half-way; the second one goes on from there.
    let kept: Vec<StepResult> = earlier.iter().take(earlier.len() / 2).cloned().collect();
    let resumed = size(&plan, &capacity, kept.clone(), |_| {}).await;
    assert_eq!(resumed.world.lock().unwrap().drives as usize, first.world.lock().unwrap().drives as usize - kept.len());
    assert_eq!(resumed.recommended(), first.recommended());
    let new_steps = resumed.dir.steps().unwrap();
    assert!(new_steps.iter().all(|s| s.index > kept.last().unwrap().index), "new steps number on");
    assert_eq!(resumed.summary.steps.len(), kept.len() + new_steps.len(), "the summary holds both sessions' steps");
    resumed.nothing_left();
}

#[tokio::test]
async fn parallel_lanes_measure_two_types_at_once_and_tear_both_down() {
    let plan = plan(&["ml.m5.large", "ml.c5.large"], 2, None);
    let run = size(&plan, &[("ml.m5.large", 60.0), ("ml.c5.large", 120.0)], Vec::new(), |_| {}).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.world.lock().unwrap().most_in_flight, 2, "two steps ran at once");
    let types: std::collections::BTreeSet<_> = run.summary.steps.iter().map(|s| s.instance_type.clone()).collect();
    assert_eq!(types.len(), 2);
    assert_eq!(run.recommended().as_deref(), Some("ml.c5.large × 1"));
    run.nothing_left();
}

#[tokio::test]
async fn an_error_mid_run_still_tears_everything_down() {
    let plan = plan(&["ml.m5.large"], 1, None);
    let run = size(&plan, &[("ml.m5.large", 120.0)], Vec::new(), |w| w.unreachable_at = Some(2)).await;
    assert!(matches!(run.error, Some(SizingError::Load(LoadError::Unreachable { .. }))), "{:?}", run.error);
    assert_eq!(run.summary.status, RunStatus::Failed);
    assert_eq!(run.summary.steps.len(), 1, "the step before the failure is kept");
    run.nothing_left();
}

#[tokio::test]
async fn an_interrupt_mid_step_stops_the_run_and_tears_everything_down() {
    let plan = plan(&["ml.m5.large"], 1, None);
    let run = size(&plan, &[("ml.m5.large", 120.0)], Vec::new(), |w| w.interrupt_at = Some(2)).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.summary.status, RunStatus::Interrupted);
    assert_eq!(run.world.lock().unwrap().drives, 2, "no step starts after the interrupt");
    let last = run.dir.steps().unwrap().pop().unwrap();
    assert!(last.misses.contains(&crate::result::Miss::Interrupted), "the cut step says so: {:?}", last.reasons);
    run.nothing_left();
}

/// A plan whose answer is four ml.m5.large (30 TPS each at 100 TPS), with
/// the auto-scaling test on.
fn scaling_plan(spike: bool) -> Plan {
    let mut parts = crate::plan::testing::parts(100.0);
    parts.scaling = Some(crate::plan::ScalingTest {
        ramp: Duration::from_secs(10),
        hold: Duration::from_secs(5),
        spike,
        metrics: vec![crate::scaling::ScalingMetric::Invocations],
        scale_out_cooldown: Duration::from_secs(60),
        scale_in_cooldown: Duration::from_secs(300),
        procedure: Default::default(),
    });
    Plan::new(parts).unwrap()
}

#[tokio::test]
async fn the_scaling_test_bisects_to_the_lowest_minimum_that_holds_the_ramp() {
    let run = size(&scaling_plan(true), &[("ml.m5.large", 30.0)], Vec::new(), |w| w.ramp_needs = 2).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.recommended().as_deref(), Some("ml.m5.large × 4"));
    let verdict = run.summary.scaling.as_ref().expect("the test ran");
    let m = &verdict.metrics[0];
    let tried: Vec<(u32, bool)> = m.trials.iter().map(|t| (t.min, t.passed)).collect();
    assert_eq!(tried, [(2, true), (1, false)]);
    assert!(m.scales && m.policy.min == 2 && m.suggestion.is_none());
    assert_eq!(m.spike_min, Some(2), "the fake holds a spike from where it holds a ramp");
    assert_eq!(m.spikes.len(), 1);
    assert_eq!(
        run.summary.recommendation.as_ref().unwrap().autoscaling.min_instances(),
        2,
        "the policy spelled out is the tested one"
    );
    assert_eq!(run.dir.trials().unwrap().len(), 3, "every trial is on disk");
    let phases: Vec<Phase> = run.summary.steps.iter().rev().take(3).map(|s| s.phase).collect();
    assert_eq!(phases, [Phase::Scaling; 3], "each trial is a step too");
    assert!(run.world.lock().unwrap().policies.is_empty());
    run.nothing_left();
}

#[tokio::test]
async fn a_scaling_trial_the_generator_fell_behind_in_is_run_again() {
    // The first trial holds the ramp but slips 700 ms past the 500 ms limit:
    // this machine's CPU, not the policy, failed it.
    let run = size(&scaling_plan(false), &[("ml.m5.large", 30.0)], Vec::new(), |w| {
        w.ramp_needs = 2;
        w.scaling_slips = vec![700.0];
    })
    .await;
    assert!(run.error.is_none(), "{:?}", run.error);
    let m = &run.summary.scaling.as_ref().unwrap().metrics[0];
    let tried: Vec<(u32, bool)> = m.trials.iter().map(|t| (t.min, t.passed)).collect();
    assert_eq!(tried, [(2, true), (1, false)], "the minimum is the policy's, not the slip's");
    assert_eq!(run.dir.trials().unwrap().len(), 3, "the slipped trial is on disk too");
    run.nothing_left();
}

#[tokio::test]
async fn a_ramp_no_minimum_holds_recommends_fixed_scale_and_says_what_would_help() {
    let run = size(&scaling_plan(true), &[("ml.m5.large", 30.0)], Vec::new(), |w| w.ramp_needs = 99).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert!(run.summary.recommendation.is_some(), "the fixed-scale answer stands");
    let verdict = run.summary.scaling.as_ref().unwrap();
    assert_eq!(verdict.conclusion(), "auto-scaling cannot meet this ramp; use fixed scale at 4");
    let m = &verdict.metrics[0];
    assert!(!m.scales && m.spikes.is_empty() && m.spike_min.is_none());
    assert!(m.suggestion.as_ref().is_some_and(|s| s.contains("fixed scale at 4")), "{:?}", m.suggestion);
    run.nothing_left();
}

#[tokio::test]
async fn an_interrupt_during_a_scaling_trial_leaves_no_policy_and_no_endpoint() {
    let run = size(&scaling_plan(false), &[("ml.m5.large", 30.0)], Vec::new(), |w| {
        w.ramp_needs = 1;
        w.interrupt_scaling = true;
    })
    .await;
    assert_eq!(run.summary.status, RunStatus::Interrupted);
    assert!(run.summary.recommendation.is_some());
    let last = run.dir.steps().unwrap().pop().unwrap();
    assert_eq!(last.phase, Phase::Scaling, "the cut trial is on disk");
    assert!(run.world.lock().unwrap().policies.is_empty(), "no scaling target left");
    run.nothing_left();
}
