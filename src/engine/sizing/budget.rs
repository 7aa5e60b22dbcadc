//! What the run has spent, across its sessions, and whether the next probe
//! would take it past `--max-test-cost`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Sizing;
use crate::catalog::InstanceType;
use crate::cost::Spend;
use crate::environment::{Deployed, Environment};
use crate::load::Driver;
use crate::vocab::{Fleet, Lane, Probe};

impl<E: Environment, D: Driver> Sizing<'_, E, D> {
    /// What the whole run has spent up to now, all sessions included.
    pub(super) fn spend(&self, started_at: DateTime<Utc>) -> Spend {
        let now = Utc::now();
        let ledger = self.env.ledger();
        let ledger = crate::error::lock(&ledger);
        let mut run_cost = self.plan.prices().run_cost(ledger.usage(), now);
        run_cost.wall_seconds = self.earlier_wall_seconds + ((now - started_at).num_milliseconds() as f64 / 1000.0).max(0.0);
        Spend { written_at: now, run_cost, usage: ledger.usage().to_vec() }
    }

    /// Whether starting `probe` could take the run past --max-test-cost.
    pub(super) fn over_budget(&self, probe: &Probe, lanes: &BTreeMap<Lane, Deployed>) -> Option<String> {
        let current = lanes.get(&probe.candidate.lane()).map(|d| &d.candidate);
        // A lane's endpoint bills already: only what the probe adds to it counts.
        let added_per_hour = (self.plan.hourly(&probe.candidate) - current.map_or(0.0, |c| self.plan.hourly(c))).max(0.0);
        let waiting = if current == Some(&probe.candidate) { Duration::ZERO } else { self.pace.deploy_estimate };
        self.would_exceed(added_per_hour, self.plan.step_length(probe) + waiting, || {
            format!("the next step ({} at {})", probe.candidate, probe.load.label())
        })
    }

    /// Whether a trial of the auto-scaling test that runs `length` and may
    /// scale up to `most` could take the run past --max-test-cost.
    pub(super) fn over_budget_for(&self, most: &Fleet, length: Duration) -> Option<String> {
        let per_hour = self.plan.price(&most.instance_type) * most.count as f64;
        self.would_exceed(per_hour, length + self.pace.deploy_estimate, || format!("the next auto-scaling trial (up to {most})"))
    }

    /// Whether what is spent, plus everything alive and `added_per_hour`
    /// more billing for `length`, is past the budget; the reason if so.
    fn would_exceed(&self, added_per_hour: f64, length: Duration, what: impl Fn() -> String) -> Option<String> {
        let budget = self.plan.max_test_cost()?;
        let ledger = self.env.ledger();
        let ledger = crate::error::lock(&ledger);
        let spent = self.plan.prices().run_cost(ledger.usage(), Utc::now()).dollars;
        // Everything alive keeps billing meanwhile, including the endpoints
        // of probes still in flight.
        let price = |t: &InstanceType| self.plan.price(t);
        let alive_per_hour: f64 =
            ledger.usage().iter().filter(|u| u.to.is_none()).map(|u| price(&u.instance_type) * u.count as f64).sum();
        let estimate = spent + (alive_per_hour + added_per_hour) * length.as_secs_f64() / 3600.0;
        (estimate > budget).then(|| {
            format!(
                "{} would take the run to about ${estimate:.4}, past --max-test-cost ${budget:.4} (spent ${spent:.4})",
                what()
            )
        })
    }
}
