//! The auto-scaling test, after the fixed-scale answer: the recommended type
//! deployed at a candidate minimum count, the recommended policy applied,
//! traffic ramped from 0 to the peak and held, judged by the same
//! requirements. For each asked metric the minimum is bisected between the
//! lowest allowed count and the count verified at fixed scale, then a spike
//! is bisected the same way for a spike. Every trial runs on a fresh
//! endpoint; its scaling target goes before it does, on every path.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::run_loop::{GENERATOR_RETRIES, RunState, Shared, describe, generator_fell_behind};
use super::{Sizing, SizingError};
use crate::engine::load_step::drive_and_judge_with;
use crate::environment::{ApiError, Autoscaler, DeployError, Deployed, Environment};
use crate::format::trim_number;
use crate::load::{Driver, ProgressFn, SecondStats};
use crate::plan::{ScalingProcedure, ScalingTest};
use crate::record::{MetricVerdict, RunDirError, RunStatus, ScalingTrial, ScalingVerdict, Shape, TrialBrief};
use crate::result::{Miss, ServerMetrics, Settled, StepContext, StepResult};
use crate::scaling::{InstanceSample, Instances, MeasuredCapacity, MinimumSearch, Policy, ScalingMetric, Timeline, suggestion};
use crate::step::Recommended;
use crate::vocab::{Candidate, Load, Phase};

/// Why the test stopped before its end.
enum Stop {
    Interrupted,
    /// The budget, or a deployment SageMaker refused: the test ends, the run does not fail.
    Ended(String),
    /// AWS or the disk failed us: the run fails.
    Failed(SizingError),
}

impl From<SizingError> for Stop {
    fn from(e: SizingError) -> Stop {
        Stop::Failed(e)
    }
}

impl From<ApiError> for Stop {
    fn from(e: ApiError) -> Stop {
        Stop::Failed(e.into())
    }
}

impl From<RunDirError> for Stop {
    fn from(e: RunDirError) -> Stop {
        Stop::Failed(e.into())
    }
}

/// What the trials of one metric share.
struct Trials<'t> {
    test: &'t ScalingTest,
    /// The rate the trials ramp to.
    peak_tps: f64,
    recommended: &'t Recommended,
    capacity: MeasuredCapacity,
}

impl<E: Environment + Autoscaler, D: Driver> Sizing<'_, E, D> {
    /// Runs the auto-scaling test when the plan asks for one and the search
    /// recommended a configuration; None otherwise.
    pub(super) async fn test_scaling(&self, st: &mut RunState, shared: &Shared) -> Option<ScalingVerdict> {
        let test = self.plan.scaling()?;
        // Plan::new allows the test only with a peak rate to ramp to.
        let peak_tps = self.plan.peak_tps()?;
        let recommended = st.strategy.conclusion().recommendation?;
        if st.status != RunStatus::Completed || st.error.is_some() || shared.run_cancel.is_cancelled() {
            return None;
        }
        // The search's endpoints would bill idle through the whole test.
        let mut endpoint = None;
        for (_, deployed) in std::mem::take(&mut st.lanes) {
            if let Err(e) = self.env.release(&deployed).await {
                st.fail(e.into(), &shared.run_cancel);
                return None;
            }
        }
        let began = Utc::now();
        let trials = Trials { test, peak_tps, capacity: self.capacity(&recommended, &st.steps), recommended: &recommended };
        let mut verdict = ScalingVerdict {
            fixed_count: recommended.candidate.count,
            ramp_seconds: test.ramp.as_secs_f64(),
            hold_seconds: test.hold.as_secs_f64(),
            metrics: Vec::new(),
            note: None,
            cost: Default::default(),
        };
        for metric in &test.metrics {
            let (found, stop) = self.test_metric(*metric, &trials, &mut endpoint, st, shared).await;
            verdict.metrics.push(found);
            match stop {
                None => {}
                Some(Stop::Interrupted) => break,
                Some(Stop::Ended(reason)) => {
                    self.progress.line(format!("auto-scaling test stopped: {reason}"));
                    verdict.note = Some(reason);
                    break;
                }
                Some(Stop::Failed(e)) => {
                    verdict.note = Some(format!("stopped: {e}"));
                    st.fail(e, &shared.run_cancel);
                    break;
                }
            }
        }
        if let Some(deployed) = endpoint
            && let Err(e) = self.take_down(&deployed).await
        {
            st.fail(e, &shared.run_cancel);
        }
        let ledger = self.env.ledger();
        verdict.cost = self.plan.prices().cost_since(crate::error::lock(&ledger).usage(), began, Utc::now());
        self.progress.line(format!("auto-scaling: {}", verdict.conclusion()));
        Some(verdict)
    }

    /// Bisects the minimum of `metric`'s policy, then tries a spike at it.
    async fn test_metric(
        &self,
        metric: ScalingMetric,
        trials: &Trials<'_>,
        endpoint: &mut Option<Deployed>,
        st: &mut RunState,
        shared: &Shared,
    ) -> (MetricVerdict, Option<Stop>) {
        let fixed = trials.recommended.candidate.count;
        let cooldowns = trials.test.cooldowns();
        let (safety, peak) = (self.plan.safety_factor(), trials.peak_tps);
        let policy = |min| Policy::new(metric, &trials.capacity, safety, peak, fixed, min, cooldowns);
        let mut search = MinimumSearch::new(self.plan.min_instances(), fixed);
        let mut tried: Vec<ScalingTrial> = Vec::new();
        let mut stop = None;
        while let Some(min) = search.next() {
            match self.trial_for_sure(policy(min), Shape::Ramp, trials, endpoint, st, shared).await {
                Ok(trial) => {
                    search.record(min, trial.passed);
                    tried.push(trial);
                }
                Err(s) => {
                    stop = Some(s);
                    break;
                }
            }
        }
        let found = search.found();
        let scales = found < fixed && stop.is_none();
        let (spikes, spike_min) = if scales && trials.test.spike {
            self.bisect_spike(found, &policy, trials, endpoint, st, shared, &mut stop).await
        } else {
            (Vec::new(), None)
        };
        let mut verdict = MetricVerdict {
            policy: policy(found),
            scales,
            trials: tried.iter().map(ScalingTrial::brief).collect(),
            spikes,
            spike_min,
            suggestion: None,
        };
        if !scales && !tried.is_empty() && stop.is_none() {
            verdict.suggestion = Some(suggestion(
                metric,
                &trials.capacity,
                self.plan.safety_factor(),
                verdict.reaction().map(Duration::from_secs_f64),
                trials.peak_tps,
                trials.test.ramp,
                fixed,
            ));
        }
        (verdict, stop)
    }

    /// The lowest minimum from which the policy holds the peak at once: the
    /// minimum the ramp found first, then a bisection up to the fixed count.
    #[allow(clippy::too_many_arguments)]
    async fn bisect_spike(
        &self,
        found: u32,
        policy: &impl Fn(u32) -> Policy,
        trials: &Trials<'_>,
        endpoint: &mut Option<Deployed>,
        st: &mut RunState,
        shared: &Shared,
        stop: &mut Option<Stop>,
    ) -> (Vec<TrialBrief>, Option<u32>) {
        let mut search = MinimumSearch::new(found, trials.recommended.candidate.count);
        let mut spikes = Vec::new();
        let mut next = Some(found);
        while let Some(min) = next {
            match self.trial_for_sure(policy(min), Shape::Spike, trials, endpoint, st, shared).await {
                Ok(trial) => {
                    search.record(min, trial.passed);
                    spikes.push(trial.brief());
                }
                Err(s) => {
                    *stop = Some(s);
                    return (spikes, None);
                }
            }
            next = search.next();
        }
        (spikes, Some(search.found()))
    }

    /// One trial: the endpoint at `policy.min`, the policy on, the traffic
    /// of `shape` driven while the instances are watched, the policy off.
    /// A trial, run again when it failed while the load generator fell
    /// behind: this machine's CPU must not decide the minimum, as it must not
    /// decide a search step.
    async fn trial_for_sure(
        &self,
        policy: Policy,
        shape: Shape,
        trials: &Trials<'_>,
        endpoint: &mut Option<Deployed>,
        st: &mut RunState,
        shared: &Shared,
    ) -> Result<ScalingTrial, Stop> {
        for retry in 0.. {
            let (trial, step) = self.trial(policy.clone(), shape, trials, endpoint, st, shared).await?;
            if !generator_fell_behind(&step) {
                return Ok(trial);
            }
            if retry == GENERATOR_RETRIES {
                let load = Load::Rate(trials.peak_tps);
                return Err(Stop::Failed(SizingError::Generator { load, slip_p99_ms: step.generator.slip_p99_ms }));
            }
            self.progress.line(format!("step {}: the load generator fell behind; trying the trial again", step.index));
        }
        unreachable!("the loop returns by its last retry")
    }

    /// One trial; its record, and the step it measured.
    async fn trial(
        &self,
        policy: Policy,
        shape: Shape,
        trials: &Trials<'_>,
        endpoint: &mut Option<Deployed>,
        st: &mut RunState,
        shared: &Shared,
    ) -> Result<(ScalingTrial, StepResult), Stop> {
        let cancel = &shared.run_cancel;
        let instance_type = &trials.recommended.candidate.instance_type;
        // SageMaker deploys at least one instance: a trial from zero starts
        // at one and is taken to zero once the policy that wakes it is on.
        let candidate = Candidate::new(instance_type.clone(), policy.min.max(1));
        let rate = trials.test.rate(trials.peak_tps, shape == Shape::Spike);
        if let Some(reason) = self.over_budget_for(&trials.recommended.candidate.with_count(policy.max), rate.length()) {
            return Err(Stop::Ended(reason));
        }
        let deployed = self.fresh_endpoint(&candidate, endpoint, cancel).await?;
        self.env.apply_policy(&deployed.endpoint, &policy).await?;
        let index = st.next_index;
        st.next_index += 1;
        let target = self.driver.target(&deployed.endpoint);
        let spec = self.plan.traffic().load_spec(target, rate, Duration::ZERO, index, self.plan.requirements());
        if shared.preflighted.borrow_mut().insert(deployed.endpoint.clone()) {
            self.driver.preflight(&spec).await.map_err(SizingError::Load)?;
        }
        if policy.scales_to_zero() {
            self.progress.activity(format!("taking {} to zero instances", deployed.endpoint));
            self.env.scale_to_zero(&deployed, cancel).await.map_err(deploy_stop)?;
        }
        self.progress.activity(format!(
            "step {index} · auto-scaling {} {} from {} × {}: {} to {} TPS",
            policy.metric,
            shape.as_str(),
            instance_type,
            policy.min,
            if shape == Shape::Ramp { "0" } else { "straight" },
            trim_number(trials.peak_tps)
        ));
        let context = StepContext {
            index,
            phase: Phase::Scaling,
            simulated: self.simulated,
            endpoint_name: deployed.endpoint.clone(),
            candidate: Some(candidate),
            target_tps: trials.peak_tps,
            warmup_seconds: 0.0,
            requirements: *self.plan.requirements(),
            horizon: self.plan.durations().endurance,
            // Whether the policy caught up shows in the hold: a climb is not a queue.
            steady_from: Some(if shape == Shape::Ramp { trials.test.ramp } else { Duration::ZERO }),
            streaming: None,
        };
        let watching = CancellationToken::new();
        let early = cancel.child_token();
        let settled = Arc::new(Mutex::new((Settled::new(*self.plan.requirements(), rate.total()), None)));
        let drive = async {
            let live = match trials.test.procedure {
                ScalingProcedure::Perfsize => self.settling(Arc::clone(&settled), early.clone()),
                ScalingProcedure::Perfsizesagemaker => {
                    let progress = Arc::clone(&self.progress);
                    Arc::new(move |row: &SecondStats| progress.second(row)) as ProgressFn
                }
            };
            let judged = drive_and_judge_with(self.driver, spec, context, live, &early).await;
            watching.cancel();
            judged
        };
        let (judged, seen) = tokio::join!(drive, self.watch(&deployed, &watching));
        let (mut step, run) = judged.map_err(SizingError::Load)?;
        let settled_early = crate::error::lock(&settled).1.clone();
        if let Some((second, reason)) = settled_early.filter(|_| !cancel.is_cancelled()) {
            stopped_early(&mut step, second, &reason);
        }
        step.cloudwatch = ServerMetrics::unavailable("not read for auto-scaling tests: see the scaling timeline");
        self.dir.write_step(&step)?;
        self.dir.write_spend(&self.spend(shared.started_at))?;
        self.progress.line(format!("step {}: {}", step.index, describe(&step)));
        let activities = self.env.activities(&deployed.endpoint).await?;
        self.env.remove_policy(&deployed.endpoint).await?;
        st.steps.push(step.clone());
        if cancel.is_cancelled() {
            return Err(Stop::Interrupted);
        }
        let samples = samples_since(&seen, run.started_at);
        let trial = self.trial_record(policy, shape, trials.recommended.candidate.count, &step, &samples, activities);
        self.dir.write_trial(&trial)?;
        Ok((trial, step))
    }

    fn trial_record(
        &self,
        policy: Policy,
        shape: Shape,
        fixed: u32,
        step: &StepResult,
        samples: &[InstanceSample],
        activities: Vec<crate::scaling::Activity>,
    ) -> ScalingTrial {
        let started_at = step.started_at;
        let timeline = Timeline::build(&step.series, samples, policy.metric, policy.target, step.requirements.latency_ms);
        let price = self.plan.hourly(&step.candidate().expect("a step of a planned type")) / step.instance_count.max(1) as f64;
        ScalingTrial {
            index: step.index,
            shape,
            endpoint: step.endpoint_name.clone(),
            started_at,
            passed: step.passed,
            reasons: step.reasons.clone(),
            judged_latency_ms: step.judged_latency_ms,
            error_percent: step.error_percent,
            requests: step.requests,
            cost_per_hour: timeline.mean_instances * price,
            fixed_cost_per_hour: fixed as f64 * price,
            timeline,
            // The endpoint is the trial's own: all its activities are the trial's.
            activities,
            policy,
        }
    }

    /// A new endpoint at `candidate` for the next trial, the previous one
    /// (scaling first) taken down. Every trial starts on an endpoint without
    /// history: one that served load moments ago carries it in its metrics,
    /// and a policy put on it would scale out on the last trial's traffic —
    /// perfsizesagemaker redeploys for the same reason.
    async fn fresh_endpoint(
        &self,
        candidate: &Candidate,
        endpoint: &mut Option<Deployed>,
        cancel: &CancellationToken,
    ) -> Result<Deployed, Stop> {
        if let Some(previous) = endpoint.take() {
            self.take_down(&previous).await?;
        }
        self.progress.activity(format!("deploying {candidate} for the auto-scaling test"));
        let deployed = self.env.deploy(candidate, cancel).await.map_err(deploy_stop)?;
        Ok(endpoint.insert(deployed).clone())
    }

    /// The live view of a trial, which also stops it (through `early`) the
    /// second its failure is certain: the rest of a long ramp could not
    /// change the verdict, and would only bill.
    fn settling(&self, settled: SettledState, early: CancellationToken) -> ProgressFn {
        let progress = Arc::clone(&self.progress);
        Arc::new(move |row| {
            progress.second(row);
            let mut state = crate::error::lock(&settled);
            if state.1.is_none()
                && let Some(reason) = state.0.add(row)
            {
                state.1 = Some((row.second, reason));
                early.cancel();
            }
        })
    }

    /// The instances of `deployed`, sampled until `stop`; a failed look is
    /// skipped (the next one will do).
    async fn watch(&self, deployed: &Deployed, stop: &CancellationToken) -> Vec<(DateTime<Utc>, Instances)> {
        let mut seen = Vec::new();
        loop {
            match self.env.instances(deployed).await {
                Ok(now) => seen.push((Utc::now(), now)),
                Err(e) => tracing::warn!("cannot see the instances of {}: {e}", deployed.endpoint),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.pace.scaling_poll) => {}
                _ = stop.cancelled() => return seen,
            }
        }
    }

    /// Scaling first, then the endpoint and its config.
    async fn take_down(&self, deployed: &Deployed) -> Result<(), SizingError> {
        self.env.remove_policy(&deployed.endpoint).await?;
        self.env.release(deployed).await?;
        Ok(())
    }

    /// What one instance of the recommended type sustains, with the median
    /// latency of the passing step that measured it closest to that rate.
    fn capacity(&self, recommended: &Recommended, steps: &[StepResult]) -> MeasuredCapacity {
        // A bound is the most that is known to hold: the target stays on the safe side.
        let per_instance = recommended.capacity.at_least;
        let p50 = steps
            .iter()
            .filter(|s| {
                s.passed && s.candidate().is_some_and(|c| c.instance_type() == Some(&recommended.candidate.instance_type))
            })
            .filter_map(|s| Some(((s.target_tps / s.instance_count as f64 - per_instance).abs(), s.latency_ms?.p50)))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map_or(self.plan.requirements().latency_ms / 4.0, |(_, p50)| p50);
        MeasuredCapacity {
            tps_per_instance: per_instance,
            latency_p50_ms: p50,
            latency_limit_ms: self.plan.requirements().latency_ms,
        }
    }
}

/// What a trial's live view has counted, and the second and reason its
/// failure became certain.
type SettledState = Arc<Mutex<(Settled, Option<(u32, String)>)>>;

/// A trial stopped because its failure was certain is a failure, not an interruption.
fn stopped_early(step: &mut StepResult, second: u32, reason: &str) {
    step.misses.retain(|m| *m != Miss::Interrupted);
    step.reasons = step.misses.iter().map(Miss::describe).collect();
    step.reasons.push(format!("stopped after {} s: {reason}", second + 1));
    step.passed = false;
}

/// What the watch saw, in seconds since the traffic schedule started.
fn samples_since(seen: &[(DateTime<Utc>, Instances)], started_at: DateTime<Utc>) -> Vec<InstanceSample> {
    seen.iter()
        .map(|(at, i)| InstanceSample {
            at_seconds: (*at - started_at).num_milliseconds() as f64 / 1000.0,
            in_service: i.current,
            desired: i.desired,
        })
        .collect()
}

/// A deployment that did not happen ends the test; AWS failing us fails the run.
fn deploy_stop(e: DeployError) -> Stop {
    match e {
        DeployError::Cancelled { .. } => Stop::Interrupted,
        DeployError::Api(e) => Stop::Failed(e.into()),
        other => Stop::Ended(other.to_string()),
    }
}
