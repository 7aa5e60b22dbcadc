//! How a run concludes: teardown, the last CloudWatch figures, the spend,
//! and the summary with its recommendation, cost and auto-scaling policy.

use chrono::{DateTime, Utc};

use super::run_loop::{RunState, Shared};
use super::{Sizing, SizingError};

use crate::cost::{HOURS_PER_MONTH, S3Work, Spend};
use crate::environment::{Autoscaler, Environment};
use crate::load::{Cleanup, Driver};
use crate::record::{
    AsyncRecommendation, Autoscaling, BacklogAutoscaling, Leftovers, Recommendation, RecommendedStreams, RunObjects, RunStatus,
    ScalingAdvice, ScalingVerdict, StepBrief, StreamingSummary, Summary, TypeOutcome, recommended_kind,
};
use crate::result::StepResult;
use crate::scaling::{Cooldowns, MeasuredCapacity, Policy, ScalingMetric};
use crate::step::{Capacity, Recommended, Strategy, TypeSummary};
use crate::vocab::{Axis, Candidate, Fleet, Load, Phase};

/// How the run ended, besides its steps.
struct Ending {
    status: RunStatus,
    note: Option<String>,
    started_at: DateTime<Utc>,
    spend: Spend,
    scaling: Option<ScalingVerdict>,
    leftovers: Option<Leftovers>,
}

impl<E: Environment + Autoscaler, D: Driver> Sizing<'_, E, D> {
    /// Tears down, waits for the last CloudWatch figures, and writes the summary.
    pub(super) async fn conclude(
        &self,
        mut st: RunState,
        shared: Shared,
        scaling: Option<ScalingVerdict>,
    ) -> (Summary, Option<SizingError>) {
        // Ctrl-C before the first probe, or in the same poll a task finished, ends the run too.
        if self.cancel.is_cancelled() && st.status == RunStatus::Completed {
            st.interrupted();
        }
        if self.plan.asynchronous().is_some_and(|a| matches!(a.client.cleanup, Cleanup::Delayed(_))) {
            self.progress.activity("finishing the delayed cleanup of the run's objects");
        }
        self.driver.settle(&self.cancel).await;
        self.progress.activity("tearing down everything this run deployed");
        if let Err(e) = self.env.teardown().await {
            st.error.get_or_insert(e.into());
        }
        let leftovers = self.leftovers();
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
        let ending = Ending { status: st.status, note: st.note, started_at: shared.started_at, spend, scaling, leftovers };
        let summary = self.summarise(st.strategy.as_ref(), &steps, ending);
        if let Err(e) = self.dir.write_summary(&summary) {
            st.error.get_or_insert(e.into());
        }
        (summary, st.error)
    }

    fn summarise(&self, strategy: &dyn Strategy, steps: &[StepResult], ending: Ending) -> Summary {
        let Ending { status, note, started_at, spend, scaling, leftovers } = ending;
        let conclusion = strategy.conclusion();
        let prices = self.plan.prices();
        // A run sized by streams alone costs its requests at the rate the
        // recommended configuration completed at the peak.
        let peak_rate = |verified: Option<&StepResult>| self.plan.peak_tps().or(verified.map(|s| s.achieved_tps));
        let verified = conclusion.recommendation.as_ref().and_then(|rec| verifying_step(steps, &rec.candidate));
        let rate_at_peak = peak_rate(verified);
        let recommendation = conclusion.recommendation.as_ref().zip(rate_at_peak).map(|(rec, rate)| {
            let cost = prices.of(&rec.candidate, rate).expect("planned types have prices");
            let capacity = rate_capacity(rec, steps);
            Recommendation {
                instance_type: rec.candidate.instance_type.to_string(),
                instance_count: rec.candidate.count,
                cost_per_hour: cost.per_hour,
                cost_per_month: cost.per_month,
                cost_per_million_inferences: cost.per_million_at_peak,
                capacity: rec.capacity,
                verified_by_step: verified.map(|s| s.index),
                autoscaling: self.scaling_advice(&rec.candidate, capacity, scaling.as_ref()),
                asynchronous: None,
            }
        });
        let recommendation = recommendation.map(|mut rec| {
            rec.asynchronous = self.async_recommendation(&rec, steps);
            rec
        });
        let types = conclusion
            .types
            .iter()
            .cloned()
            .map(|summary| TypeOutcome {
                price_per_hour: self.plan.price(&summary.instance_type),
                cost_at_needed_count: summary.count_needed.and_then(|n| {
                    let fleet = Fleet::new(summary.instance_type.clone(), n);
                    prices.of(&fleet, peak_rate(verifying_step(steps, &fleet))?).ok()
                }),
                summary,
            })
            .collect();
        let day = self.plan.day();
        let serverless =
            conclusion.serverless.as_ref().zip(day).map(|(c, day)| super::serverless::outcome(self.plan, day, c, steps));
        let serverless_rec = serverless.as_ref().and_then(|s| s.recommended.as_ref());
        let comparison = recommendation.as_ref().zip(serverless_rec).zip(day).map(|((i, s), day)| {
            super::serverless::comparison(self.plan, day, i, tested_minimum(ScalingMetric::Invocations, scaling.as_ref()), s)
        });
        let recommended_kind = recommended_kind(recommendation.is_some(), serverless_rec.is_some(), comparison.as_ref());
        let streaming = self.plan.streaming().map(|streaming| {
            let recommended =
                recommendation.as_ref().zip(conclusion.recommendation.as_ref()).zip(rate_at_peak).map(|((r, rec), peak_tps)| {
                    RecommendedStreams {
                        instance_type: r.instance_type.as_str(),
                        cost_per_hour: r.cost_per_hour,
                        peak_tps,
                        streams_per_instance: streams_capacity(rec, &conclusion.types),
                    }
                });
            let price = |t: &str| t.parse().map_or(0.0, |t| self.plan.price(&t));
            StreamingSummary::of(streaming.requirements, steps, price, recommended, self.plan.safety_factor())
        });
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
            peak_tps: self.plan.peak_tps(),
            peak_concurrency: self.plan.peak().concurrency(),
            requirements: *self.plan.requirements(),
            strategy: self.plan.search().strategy,
            prices: prices.describe(),
            recommendation,
            types,
            steps: steps.iter().map(StepBrief::from).collect(),
            run_cost,
            scaling,
            objects: self.objects(steps),
            leftovers,
            serverless,
            comparison,
            recommended_kind,
            streaming,
        }
    }

    /// What is still alive after teardown, said on the terminal with the
    /// command that removes it; None when teardown removed everything.
    fn leftovers(&self) -> Option<Leftovers> {
        let resources = crate::error::lock(&self.env.ledger()).live();
        if resources.is_empty() {
            return None;
        }
        self.progress.line(format!("teardown gave up; still alive: {}", resources.join(", ")));
        self.progress.line(format!("remove them with: {}", self.cleanup_command));
        Some(Leftovers { resources, cleanup_command: self.cleanup_command.clone() })
    }

    /// The policy the recommendation comes with: on invocations, or for an
    /// asynchronous endpoint on its backlog (from zero when `--min-instances 0`).
    /// `capacity` is one instance's, as a rate.
    fn scaling_advice(&self, candidate: &Fleet, capacity: Capacity, scaling: Option<&ScalingVerdict>) -> ScalingAdvice {
        let plan = self.plan;
        let cooldowns = plan.scaling().map_or_else(Cooldowns::default, |t| t.cooldowns());
        let metric = if plan.asynchronous().is_some() { ScalingMetric::Backlog } else { ScalingMetric::Invocations };
        let capacity = MeasuredCapacity {
            tps_per_instance: capacity.at_least,
            latency_p50_ms: 0.0,
            latency_limit_ms: plan.requirements().latency_ms,
        };
        let policy = Policy::new(
            metric,
            &capacity,
            plan.safety_factor(),
            // Without a peak rate, the count verified at the peak of streams is the most needed.
            plan.peak_tps().unwrap_or(0.0),
            candidate.count,
            tested_minimum(metric, scaling).unwrap_or(plan.min_instances()),
            cooldowns,
        );
        match metric {
            ScalingMetric::Backlog => {
                ScalingAdvice::Backlog(BacklogAutoscaling::new("YOUR-ENDPOINT", &policy, plan.safety_factor()))
            }
            _ => ScalingAdvice::Invocations(Autoscaling::new("YOUR-ENDPOINT", &policy, plan.safety_factor())),
        }
    }

    /// Cost per request and idle cost of an asynchronous recommendation,
    /// from the S3 work of the step that verified it.
    fn async_recommendation(&self, rec: &Recommendation, steps: &[StepResult]) -> Option<AsyncRecommendation> {
        self.plan.asynchronous()?;
        let candidate = rec.candidate()?;
        let verified = rec.verified_by_step.and_then(|index| steps.iter().find(|s| s.index == index));
        let figures = verified
            .and_then(|s| s.asynchronous.as_ref())
            // Every request uploads its input once: the PUTs count them.
            .map(|f| (f, f.s3_put.max(1) as f64));
        let peak = self.plan.peak_tps()?;
        let prices = self.plan.prices();
        let cost = figures.and_then(|(f, requests)| {
            let work =
                S3Work { puts: 1.0, gets: (f.s3_head + f.s3_get) as f64 / requests, gb_seconds: f.stored_gb_seconds / requests };
            prices.per_thousand_requests(&candidate, peak, &work).ok()
        });
        let idle_instances = rec.autoscaling.min_instances();
        Some(AsyncRecommendation {
            // The setting the verifying step's endpoint had: the walk's winner.
            max_concurrent_invocations_per_instance: verified.and_then(|s| s.max_concurrent_invocations),
            s3_requests_per_inference: figures.map(|(f, _)| f.s3_requests_per_inference),
            cost_per_month_at_peak: cost.map(|c| (c.total / 1000.0 * peak * 3600.0 * HOURS_PER_MONTH * 100.0).round() / 100.0),
            cost_per_1000_requests: cost,
            idle_cost_per_hour: self.plan.price(&candidate.instance_type) * idle_instances as f64,
        })
    }

    /// Where an asynchronous run's objects went, and how many were kept.
    fn objects(&self, steps: &[StepResult]) -> Option<RunObjects> {
        let settings = self.plan.asynchronous()?;
        let storage = settings.buckets.for_run(&self.run_id);
        Some(RunObjects {
            cleanup: settings.client.cleanup.to_string(),
            folders: storage.folders().iter().map(ToString::to_string).collect(),
            bucket_created: storage.owned_bucket,
            kept: steps.iter().filter_map(|s| s.asynchronous.as_ref()).map(|f| f.kept_objects).sum(),
        })
    }
}

/// The last passing endurance step of `fleet`: the one that verified it.
fn verifying_step<'s>(steps: &'s [StepResult], fleet: &Fleet) -> Option<&'s StepResult> {
    steps
        .iter()
        .rev()
        .find(|s| s.phase == Phase::Endurance && s.passed && s.candidate().as_ref().and_then(Candidate::fleet) == Some(fleet))
}

/// One instance's capacity as a rate, which the invocations target is
/// built on: the recommendation's own, or — found in streams — the rate
/// one instance completed while holding them (a lower bound).
fn rate_capacity(rec: &Recommended, steps: &[StepResult]) -> Capacity {
    if rec.capacity.axis.is_rate() {
        return rec.capacity;
    }
    let one = rec.candidate.with_count(1);
    let held = Load::Concurrency(rec.capacity.at_least.round() as u32);
    let rate = steps
        .iter()
        .filter(|s| s.passed && s.load() == held && s.candidate().as_ref().and_then(Candidate::fleet) == Some(&one))
        .map(|s| s.achieved_tps)
        .fold(0.0, f64::max);
    Capacity::bound(rate)
}

/// The streams one instance of the recommended shape held, when a search
/// walked streams: the recommendation's capacity, or its shape's summary.
fn streams_capacity(rec: &Recommended, types: &[TypeSummary]) -> Option<f64> {
    if rec.capacity.axis == Axis::Concurrency {
        return Some(rec.capacity.at_least);
    }
    let shape = rec.candidate.shape_of();
    types
        .iter()
        .filter_map(|t| t.capacity.filter(|c| c.axis == Axis::Concurrency).map(|c| (t, c)))
        .find(|(t, _)| t.shape() == shape)
        .map(|(_, c)| c.at_least)
}

/// The minimum the auto-scaling test found for `metric`'s policy, the one
/// the recommendation spells out, when one below fixed scale held.
fn tested_minimum(metric: ScalingMetric, scaling: Option<&ScalingVerdict>) -> Option<u32> {
    scaling?.metrics.iter().find(|m| m.policy.metric == metric && m.scales).map(|m| m.policy.min)
}
