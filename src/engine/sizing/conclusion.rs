//! How a run concludes: teardown, the last CloudWatch figures, the spend,
//! and the summary with its recommendation, cost and auto-scaling policy.

use chrono::{DateTime, Utc};

use super::run_loop::{RunState, Shared};
use super::{Sizing, SizingError};
use crate::cost::Spend;
use crate::environment::Environment;
use crate::load::Driver;
use crate::record::{Autoscaling, Recommendation, RunStatus, StepBrief, Summary, TypeOutcome};
use crate::result::StepResult;
use crate::step::Strategy;
use crate::vocab::{Candidate, Phase};

impl<E: Environment, D: Driver> Sizing<'_, E, D> {
    /// Tears down, waits for the last CloudWatch figures, and writes the summary.
    pub(super) async fn conclude(&self, mut st: RunState, shared: Shared) -> (Summary, Option<SizingError>) {
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
                capacity: rec.capacity,
                verified_by_step,
                autoscaling: Autoscaling::new(
                    "YOUR-ENDPOINT",
                    rec.capacity.at_least,
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
