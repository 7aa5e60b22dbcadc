//! The adaptive strategy.
//!
//! 1. Search, per instance type (up to `parallel` types at once, one endpoint
//!    each): the highest rate one instance sustains within the requirements,
//!    by geometric growth from a start rate then bisection to a resolution
//!    (or over the user's TPS walk). Results near a limit are measured again.
//! 2. Count: the instances the peak needs at that rate (from the count walk,
//!    if one is given).
//! 3. Verify, best-first by $/hour: an endurance run at peak on the cheapest
//!    untried configuration; a failure queues the same type with one more
//!    instance (up to `endurance_retries`). Because configurations are tried
//!    in price order, the first one verified is the cheapest that works —
//!    the others are never deployed at full size.

use std::cmp::Ordering;

use super::search::{Bracket, Rates};
use super::{Conclusion, Next, Outcome, Probe, Recommended, Strategy, TypeSummary};
use crate::catalog::InstanceType;
use crate::plan::Candidate;
use crate::result::{Phase, trim_number};

/// What the adaptive strategy needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveConfig {
    pub peak_tps: f64,
    /// Types to try, each with its $/hour.
    pub types: Vec<(InstanceType, f64)>,
    pub start_tps: f64,
    /// Below this rate per instance a type is given up.
    pub floor_tps: f64,
    /// Relative width at which bisection stops.
    pub resolution: f64,
    pub tps_walk: Option<Vec<f64>>,
    pub count_walk: Option<Vec<u32>>,
    pub endurance_retries: u32,
    pub parallel: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Stage {
    Searching,
    Searched { max_tps: f64 },
    Failed { verdict: String },
}

#[derive(Debug, Clone)]
struct Lane {
    instance_type: InstanceType,
    price: f64,
    bracket: Bracket,
    stage: Stage,
    last_reasons: Vec<String>,
    /// Endurance counts still to try, in order.
    counts: Vec<u32>,
    /// Endurance counts tried and whether they passed.
    tried: Vec<(u32, bool, Vec<String>)>,
}

/// An endurance configuration in the best-first queue.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Contender {
    lane: usize,
    count: u32,
    cost: f64,
}

impl Contender {
    fn order(&self, other: &Contender, lanes: &[Lane]) -> Ordering {
        self.cost
            .total_cmp(&other.cost)
            .then(self.count.cmp(&other.count))
            .then(lanes[self.lane].instance_type.cmp(&lanes[other.lane].instance_type))
    }
}

pub struct Adaptive {
    config: AdaptiveConfig,
    lanes: Vec<Lane>,
    /// Probes in flight: (lane, phase, count).
    running: Vec<(usize, Phase, u32)>,
    queue: Vec<Contender>,
    queued: bool,
    verified: Vec<Contender>,
}

impl Adaptive {
    pub fn new(config: AdaptiveConfig) -> Adaptive {
        let rates = match &config.tps_walk {
            Some(walk) => Rates::Walk(walk.clone()),
            None => Rates::Continuous { start: config.start_tps, floor: config.floor_tps, cap: config.peak_tps, resolution: config.resolution },
        };
        let lanes = config
            .types
            .iter()
            .map(|(t, price)| Lane {
                instance_type: t.clone(),
                price: *price,
                bracket: Bracket::new(rates.clone()),
                stage: Stage::Searching,
                last_reasons: Vec::new(),
                counts: Vec::new(),
                tried: Vec::new(),
            })
            .collect();
        Adaptive { config, lanes, running: Vec::new(), queue: Vec::new(), queued: false, verified: Vec::new() }
    }

    fn is_running(&self, lane: usize) -> bool {
        self.running.iter().any(|(l, _, _)| *l == lane)
    }

    fn lane_of(&self, probe: &Probe) -> usize {
        self.lanes.iter().position(|l| l.instance_type == probe.candidate.instance_type).expect("probes come from lanes")
    }

    /// Ends a lane's search once its bracket has nothing left to probe.
    fn settle_search(&mut self, lane: usize) {
        let l = &mut self.lanes[lane];
        if l.stage != Stage::Searching || l.bracket.next_rate().is_some() {
            return;
        }
        l.stage = match l.bracket.best() {
            Some(max_tps) => Stage::Searched { max_tps },
            None => {
                let lowest = l.bracket.lowest_failure().map(trim_number).unwrap_or_default();
                Stage::Failed {
                    verdict: format!("one instance cannot sustain even {lowest} TPS: {}", l.last_reasons.join("; ")),
                }
            }
        };
    }

    /// Endurance counts for a type that sustains `max_tps` per instance.
    fn counts_for(&self, max_tps: f64) -> Vec<u32> {
        let needed = (self.config.peak_tps / max_tps).ceil().max(1.0) as u32;
        let tries = self.config.endurance_retries as usize + 1;
        match &self.config.count_walk {
            Some(walk) => {
                let mut walk = walk.clone();
                walk.sort_unstable();
                walk.dedup();
                walk.into_iter().filter(|c| *c >= needed).take(tries).collect()
            }
            None => (needed..needed + tries as u32).collect(),
        }
    }

    fn build_queue(&mut self) {
        for lane in 0..self.lanes.len() {
            if let Stage::Searched { max_tps } = self.lanes[lane].stage {
                let counts = self.counts_for(max_tps);
                if counts.is_empty() {
                    self.lanes[lane].stage = Stage::Failed {
                        verdict: format!(
                            "needs {} instances for the peak, more than any count in --count-walk",
                            (self.config.peak_tps / max_tps).ceil()
                        ),
                    };
                    continue;
                }
                self.lanes[lane].counts = counts;
                self.enqueue_next(lane);
            }
        }
        self.queued = true;
    }

    fn enqueue_next(&mut self, lane: usize) {
        if !self.lanes[lane].counts.is_empty() {
            let count = self.lanes[lane].counts.remove(0);
            let cost = self.lanes[lane].price * count as f64;
            self.queue.push(Contender { lane, count, cost });
        }
    }

    fn cheapest_queued(&self) -> Option<usize> {
        (0..self.queue.len()).min_by(|a, b| self.queue[*a].order(&self.queue[*b], &self.lanes))
    }

    /// The cheapest verified option, if nothing cheaper is untried or running.
    fn settled_winner(&self) -> Option<Contender> {
        let best = self.verified.iter().min_by(|a, b| a.order(b, &self.lanes))?;
        let cheaper_pending = self.queue.iter().any(|q| q.order(best, &self.lanes) == Ordering::Less)
            || self.running.iter().any(|(lane, phase, count)| {
                *phase == Phase::Endurance
                    && Contender { lane: *lane, count: *count, cost: self.lanes[*lane].price * *count as f64 }.order(best, &self.lanes) == Ordering::Less
            });
        (!cheaper_pending).then_some(*best)
    }

    fn searching_lanes(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.lanes.len()).filter(|l| self.lanes[*l].stage == Stage::Searching)
    }
}

impl Strategy for Adaptive {
    fn next(&mut self) -> Next {
        let parallel = self.config.parallel.max(1);
        // 1. Search: one probe per lane at a time, up to `parallel` lanes.
        let idle: Vec<usize> = self.searching_lanes().filter(|l| !self.is_running(*l)).collect();
        for lane in idle {
            if self.running.len() >= parallel {
                return Next::Wait;
            }
            self.settle_search(lane);
            if let Some(rate) = self.lanes[lane].bracket.next_rate().filter(|_| self.lanes[lane].stage == Stage::Searching) {
                self.running.push((lane, Phase::Search, 1));
                return Next::Run(Probe { candidate: Candidate::new(self.lanes[lane].instance_type.clone(), 1), tps: rate, phase: Phase::Search });
            }
        }
        if self.searching_lanes().next().is_some() {
            return Next::Wait;
        }
        // 2. Verify, cheapest first.
        if !self.queued {
            self.build_queue();
        }
        if self.settled_winner().is_some() {
            return if self.running.is_empty() { Next::Done } else { Next::Wait };
        }
        if self.running.len() < parallel
            && let Some(i) = self.cheapest_queued()
        {
            let option = self.queue.remove(i);
            self.running.push((option.lane, Phase::Endurance, option.count));
            return Next::Run(Probe {
                candidate: Candidate::new(self.lanes[option.lane].instance_type.clone(), option.count),
                tps: self.config.peak_tps,
                phase: Phase::Endurance,
            });
        }
        if self.running.is_empty() { Next::Done } else { Next::Wait }
    }

    fn record(&mut self, probe: &Probe, outcome: &Outcome) {
        let lane = self.lane_of(probe);
        if let Some(i) = self.running.iter().position(|(l, phase, count)| *l == lane && *phase == probe.phase && *count == probe.candidate.count) {
            self.running.remove(i);
        }
        match probe.phase {
            Phase::Search => {
                let l = &mut self.lanes[lane];
                if let Outcome::NotDeployed { reason } = outcome {
                    l.stage = Stage::Failed { verdict: format!("could not be deployed: {reason}") };
                    return;
                }
                if !outcome.passed() {
                    l.last_reasons = outcome.reasons();
                }
                l.bracket.record(probe.tps, outcome.passed(), outcome.near_boundary());
                self.settle_search(lane);
            }
            Phase::Endurance | Phase::Load => {
                let option = Contender { lane, count: probe.candidate.count, cost: self.lanes[lane].price * probe.candidate.count as f64 };
                self.lanes[lane].tried.push((probe.candidate.count, outcome.passed(), outcome.reasons()));
                match outcome {
                    _ if outcome.passed() => self.verified.push(option),
                    // A larger count of a type that cannot be deployed will not deploy either.
                    Outcome::NotDeployed { .. } => self.lanes[lane].counts.clear(),
                    _ => self.enqueue_next(lane),
                }
            }
        }
    }

    fn conclusion(&self) -> Conclusion {
        let winner = self.settled_winner().or_else(|| self.verified.iter().min_by(|a, b| a.order(b, &self.lanes)).copied());
        let recommendation = winner.map(|w| {
            let lane = &self.lanes[w.lane];
            let max_tps = match lane.stage {
                Stage::Searched { max_tps } => max_tps,
                _ => self.config.peak_tps / w.count as f64,
            };
            Recommended { candidate: Candidate::new(lane.instance_type.clone(), w.count), max_tps_per_instance: max_tps }
        });
        let types = self
            .lanes
            .iter()
            .enumerate()
            .map(|(i, lane)| self.summarise(i, lane, winner))
            .collect();
        Conclusion { recommendation, types }
    }

    fn keep(&self, instance_type: &InstanceType) -> bool {
        self.lanes.iter().position(|l| &l.instance_type == instance_type).is_some_and(|lane| self.keep_lane(lane))
    }
}

impl Adaptive {
    fn keep_lane(&self, lane: usize) -> bool {
        match self.lanes[lane].stage {
            Stage::Searching => true,
            Stage::Failed { .. } => false,
            Stage::Searched { .. } => {
                self.running.iter().any(|(l, _, _)| *l == lane)
                    || (self.settled_winner().is_none() && self.cheapest_queued().is_some_and(|i| self.queue[i].lane == lane))
            }
        }
    }

    fn summarise(&self, index: usize, lane: &Lane, winner: Option<Contender>) -> TypeSummary {
        let (max_tps, verdict) = match &lane.stage {
            Stage::Failed { verdict } => (None, verdict.clone()),
            Stage::Searching => (lane.bracket.best(), "search not finished".to_string()),
            Stage::Searched { max_tps } => {
                let per = if *max_tps >= self.config.peak_tps {
                    format!("at least {} (the search stops at the peak)", trim_number(*max_tps))
                } else {
                    trim_number(*max_tps)
                };
                let passed = lane.tried.iter().find(|(_, ok, _)| *ok).map(|(c, _, _)| *c);
                let failed: Vec<String> = lane.tried.iter().filter(|(_, ok, _)| !ok).map(|(c, _, why)| format!("{c} ({})", why.join("; "))).collect();
                let verdict = match (passed, winner) {
                    (Some(count), Some(w)) if w.lane == index => format!("{per} TPS per instance; {count} instances verified at peak — recommended"),
                    (Some(count), _) => format!("{per} TPS per instance; {count} instances verified at peak, but not the cheapest"),
                    (None, _) if !failed.is_empty() => format!("{per} TPS per instance, but endurance at peak failed with {}", failed.join(", ")),
                    (None, Some(w)) => {
                        let needed = self.counts_for(*max_tps).first().copied().unwrap_or(0);
                        format!(
                            "{per} TPS per instance; needs {needed} instances (${:.3}/h), not cheaper than the recommendation (${:.3}/h), so not verified",
                            lane.price * needed as f64,
                            w.cost
                        )
                    }
                    (None, None) => format!("{per} TPS per instance; not verified"),
                };
                (Some(*max_tps), verdict)
            }
        };
        TypeSummary {
            instance_type: lane.instance_type.clone(),
            max_tps_per_instance: max_tps,
            count_needed: max_tps.and_then(|m| self.counts_for(m).first().copied()),
            verified_count: lane.tried.iter().find(|(_, ok, _)| *ok).map(|(c, _, _)| *c),
            verdict,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::testing::*;

    fn config(peak: f64, types: &[(&str, f64)]) -> AdaptiveConfig {
        AdaptiveConfig {
            peak_tps: peak,
            types: types.iter().map(|(n, p)| (t(n), *p)).collect(),
            start_tps: 10.0,
            floor_tps: 0.5,
            resolution: 0.05,
            tps_walk: None,
            count_walk: None,
            endurance_retries: 3,
            parallel: 1,
        }
    }

    #[test]
    fn recommends_the_cheapest_verified_configuration_across_types() {
        // m5.large: 94/s at $0.115 → 2 needed ($0.23); c5.large: 117/s at $0.102 → 1 ($0.102).
        let mut world = World::new(&[("ml.m5.large", 94.0), ("ml.c5.large", 117.0)]);
        let mut strategy = Adaptive::new(config(100.0, &[("ml.m5.large", 0.115), ("ml.c5.large", 0.102)]));
        let conclusion = world.run(&mut strategy);
        let rec = conclusion.recommendation.unwrap();
        assert_eq!(rec.candidate, Candidate::new(t("ml.c5.large"), 1));
        assert_eq!(world.steps(Phase::Endurance), 1, "the cheapest estimate verified first: nothing else needs an endurance run");
        assert!(conclusion.types[0].verdict.contains("not cheaper"), "{}", conclusion.types[0].verdict);
    }

    #[test]
    fn the_search_finds_capacity_within_the_resolution() {
        let mut world = World::new(&[("ml.m5.large", 94.0)]);
        let mut strategy = Adaptive::new(config(1000.0, &[("ml.m5.large", 0.115)]));
        let conclusion = world.run(&mut strategy);
        let max = conclusion.types[0].max_tps_per_instance.unwrap();
        assert!(max <= 94.0 && max >= 94.0 / 1.05, "{max}");
        assert_eq!(conclusion.recommendation.unwrap().candidate.count, (1000.0 / max).ceil() as u32);
        assert!(world.steps(Phase::Search) <= 12, "{}", world.steps(Phase::Search));
    }

    #[test]
    fn an_endurance_failure_adds_one_instance() {
        // Scaling is sub-linear: 2 × 60 × 0.8 = 96 < 100 at 2 instances, 3 × 60 × 0.64 = 115 at 3.
        let mut world = World::new(&[("ml.m5.large", 60.0)]);
        world.efficiency = 0.8;
        let mut strategy = Adaptive::new(config(100.0, &[("ml.m5.large", 0.115)]));
        let rec = world.run(&mut strategy).recommendation.unwrap();
        assert_eq!(rec.candidate.count, 3);
        assert_eq!(world.steps(Phase::Endurance), 2);
    }

    #[test]
    fn a_type_that_cannot_deploy_is_skipped_with_its_reason() {
        let mut world = World::new(&[("ml.m5.large", 94.0), ("ml.c5.large", 117.0)]);
        world.broken.push("ml.c5.large".into());
        let mut strategy = Adaptive::new(config(100.0, &[("ml.m5.large", 0.115), ("ml.c5.large", 0.102)]));
        let conclusion = world.run(&mut strategy);
        assert_eq!(conclusion.recommendation.unwrap().candidate, Candidate::new(t("ml.m5.large"), 2));
        assert!(conclusion.types[1].verdict.contains("simulated capacity shortage"), "{}", conclusion.types[1].verdict);
    }

    #[test]
    fn nothing_recommended_when_no_type_meets_the_requirements() {
        let mut world = World::new(&[("ml.m5.large", 0.2)]);
        let mut strategy = Adaptive::new(config(100.0, &[("ml.m5.large", 0.115)]));
        let conclusion = world.run(&mut strategy);
        assert!(conclusion.recommendation.is_none());
        assert!(conclusion.types[0].verdict.contains("cannot sustain even"), "{}", conclusion.types[0].verdict);
    }

    #[test]
    fn a_fluke_near_the_limit_is_measured_again_instead_of_trusted() {
        // At 80/s, one measurement fails just over the limit (ratio 1.05): a
        // single trust would put capacity below 80; re-measuring finds ~94.
        let mut world = World::new(&[("ml.m5.large", 94.0)]);
        world.flukes.push(("ml.m5.large".into(), 80.0));
        let mut strategy = Adaptive::new(config(1000.0, &[("ml.m5.large", 0.115)]));
        let conclusion = world.run(&mut strategy);
        let max = conclusion.types[0].max_tps_per_instance.unwrap();
        assert!(max >= 94.0 / 1.05, "{max}");
        // The fluke and the clean pass disagree: a third measurement decides.
        assert_eq!(world.log.iter().filter(|p| p.tps == 80.0).count(), 3, "80/s measured until a majority decides");
    }

    #[test]
    fn counts_come_from_the_count_walk_when_given() {
        let mut world = World::new(&[("ml.m5.large", 30.0)]);
        let mut cfg = config(100.0, &[("ml.m5.large", 0.115)]);
        cfg.count_walk = Some(vec![2, 4, 8]);
        let rec = world.run(&mut Adaptive::new(cfg)).recommendation.unwrap();
        assert_eq!(rec.candidate.count, 4, "needs 4 (3.4 rounded up), the first walk count ≥ 4");
    }

    #[test]
    fn parallel_lanes_search_types_at_once() {
        let mut strategy = Adaptive::new(AdaptiveConfig { parallel: 2, ..config(100.0, &[("ml.m5.large", 0.115), ("ml.c5.large", 0.102)]) });
        let (Next::Run(a), Next::Run(b)) = (strategy.next(), strategy.next()) else { panic!("two probes at once") };
        assert_ne!(a.candidate.instance_type, b.candidate.instance_type);
        assert_eq!(strategy.next(), Next::Wait, "both lanes busy");
        strategy.record(&a, &measured(true, 0.2));
        assert!(matches!(strategy.next(), Next::Run(p) if p.candidate.instance_type == a.candidate.instance_type));
    }
}
