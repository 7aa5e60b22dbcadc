//! The adaptive strategy: best-first branch and bound over instance types.
//!
//! Every type has a lower bound on what it could cost: its price times the
//! fewest instances it could need, given what was measured so far (one,
//! until a rate fails). The next probe always goes to the type with the
//! lowest bound (up to `parallel` types at once), through two stages:
//!
//! 1. **Search**, on one instance: the highest rate it sustains within the
//!    requirements, from the start rate (the peak; with a TPS walk, the walk's
//!    rate nearest it), by growth then bisection (over the walk's rates when
//!    there is one). A first failure with nothing passed yet is followed by the
//!    rate midway between it and the lowest rate that would settle the fewest
//!    instances it allows (a pass there settles the count and narrows the
//!    bracket at once), a second by that rate itself, then halving. Results
//!    near a limit are measured again. The search
//!    ends as soon as the bracket fixes the instance count the peak needs,
//!    since a finer capacity could not change the configuration.
//! 2. **Verify**: an endurance run at peak with that count; a failure tries
//!    one more instance, up to `endurance_retries`.
//!
//! The run ends when a verified configuration costs no more than every other
//! type's bound: types that cannot beat it are dropped without another step.
//! The answer is the cheapest verified configuration across all types, as a
//! full search of every type would give, for a fraction of the load.
//!
//! 3. **Bracket the winner**: the auto-scaling target is built on one
//!    instance's capacity, so the recommended type's search goes on from what
//!    it decided — above the peak too, up to [`REFINE_HEADROOM`] times the rate
//!    the peak needs — until a passing and a failing rate lie within the
//!    resolution (with a walk: on neighbouring walk rates). Only the winner is
//!    bracketed, and only as far as its own steps have not already done it.

use super::search::{Bracket, Rates};
use super::{Capacity, Conclusion, Next, Outcome, Recommended, Strategy, TypeSummary};
use crate::format::{tps, trim_number};
use crate::vocab::{self, Axis, Fleet, Phase, Probe};

/// What the adaptive strategy needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveConfig {
    pub peak_tps: f64,
    /// Shapes to try (an instance type, and for an asynchronous endpoint
    /// how many requests each instance takes at once), each with its $/hour.
    pub types: Vec<(Fleet, f64)>,
    pub start_tps: f64,
    /// Below this rate per instance a type is given up.
    pub floor_tps: f64,
    /// Relative width at which bisection stops.
    pub resolution: f64,
    pub tps_walk: Option<Vec<f64>>,
    pub count_walk: Option<Vec<u32>>,
    pub endurance_retries: u32,
    pub parallel: usize,
    /// The highest utilisation a recommended count may run at at peak: the
    /// peak needs enough instances that each runs at most this share of the
    /// highest sustainable rate one was measured to hold.
    pub max_utilization: f64,
    /// What the search walks: rates, or streams in flight (then every
    /// "rate" here is a number of streams, and the walk is whole numbers).
    pub axis: Axis,
    /// Verify every shape rather than drop those that cannot beat the
    /// cheapest verified one: a search joined with another on a second
    /// axis does not know which shape is cheapest on both.
    pub verify_all: bool,
}

/// How far above the rate one instance needs to hold the peak the winner's
/// capacity is bracketed. Beyond it one instance runs below a quarter of its
/// capacity at peak, and a sizing run would drive traffic far past what it
/// was asked about (and what this machine was shown to generate): the figure
/// stays a lower bound, and says so.
pub const REFINE_HEADROOM: f64 = 4.0;

#[derive(Debug, Clone, PartialEq)]
enum Stage {
    Waiting,
    Searching,
    /// Endurance at peak with `count` instances (the `attempt`-th count tried).
    Verifying {
        count: u32,
        attempt: u32,
    },
    Verified {
        count: u32,
    },
    Failed {
        verdict: String,
    },
    /// Dropped: it cannot beat a verified configuration.
    Pruned {
        verdict: String,
    },
}

#[derive(Debug, Clone)]
struct Lane {
    /// One instance of it: the lane walks its counts.
    shape: Fleet,
    price: f64,
    bracket: Bracket,
    stage: Stage,
    running: bool,
    /// Highest rate one instance sustained, once the search ended.
    max_tps: Option<f64>,
    last_reasons: Vec<String>,
    /// Endurance counts tried: count, passed, reasons.
    tried: Vec<(u32, bool, Vec<String>)>,
}

pub struct Adaptive {
    config: AdaptiveConfig,
    /// In the walk's order.
    lanes: Vec<Lane>,
}

impl AdaptiveConfig {
    /// The rate one instance must sustain to hold the peak alone within the margin.
    fn enough(&self) -> f64 {
        self.peak_tps / self.max_utilization
    }
}

impl Adaptive {
    pub fn new(config: AdaptiveConfig) -> Adaptive {
        // Rates above what one instance needs to hold the peak within the
        // utilisation margin cannot change a count: one such instance is enough.
        let rates = Self::rates(&config, config.enough());
        let lanes: Vec<Lane> = config
            .types
            .iter()
            .map(|(shape, price)| Lane {
                shape: shape.shape_of(),
                price: *price,
                bracket: Bracket::new(rates.clone()),
                stage: Stage::Waiting,
                running: false,
                max_tps: None,
                last_reasons: Vec::new(),
                tried: Vec::new(),
            })
            .collect();
        Adaptive { config, lanes }
    }

    /// The rates a search may probe, up to the first at or above `cap`. A
    /// walk starts at its rate nearest the start (the peak, by default). Off a
    /// walk, a start at or above the peak asks the question the margin poses
    /// — does one instance sustain peak ÷ max-utilization? — which a pass at
    /// the peak alone would not answer.
    fn rates(config: &AdaptiveConfig, cap: f64) -> Rates {
        let enough = config.enough();
        match &config.tps_walk {
            Some(walk) => Rates::Walk { rates: walk_up_to(walk, cap), start: config.start_tps },
            None => Rates::Continuous {
                start: if config.start_tps >= config.peak_tps { enough.max(config.start_tps) } else { config.start_tps },
                floor: config.floor_tps,
                cap,
                resolution: config.resolution,
            },
        }
    }

    /// The smallest allowed count of at least `n` instances: the walk's
    /// counts, and any count past its largest — perfsizesagemaker too
    /// extrapolates past its count walk, so its default walk of `1` still
    /// lets the peak take two instances.
    fn allowed_count(&self, n: u32) -> Option<u32> {
        match &self.config.count_walk {
            Some(walk) => Some(walk.iter().copied().filter(|c| *c >= n).min().unwrap_or(n)),
            None => Some(n),
        }
    }

    /// The next allowed count above `n`.
    fn next_count(&self, n: u32) -> Option<u32> {
        self.allowed_count(n + 1)
    }

    /// Instances the peak needs when one sustains `tps`, none of them above
    /// the utilisation margin.
    fn needed(&self, tps: f64) -> u32 {
        super::instances_needed(self.config.peak_tps, tps * self.config.max_utilization)
    }

    /// The fewest instances the peak needs when one instance fails at `fail`:
    /// the best it can still pass is the rate below it (on a walk, the walk's
    /// rate below it — the search never measures between).
    fn fewest_below(&self, lane: &Lane, fail: f64) -> u32 {
        self.needed(lane.bracket.highest_below(fail))
    }

    /// The next rate the search of `lane` probes, if any.
    fn search_rate(&self, lane: &Lane) -> Option<f64> {
        let bracket = &lane.bracket;
        if let Some(rate) = bracket.pending() {
            return Some(rate);
        }
        match (bracket.best(), bracket.lowest_failure()) {
            // Nothing passed yet: the type's bound assumes the fewest instances
            // the lowest failure allows, and the lowest rate that would settle
            // that count is the one to aim at. After the first failure, midway
            // between it and that rate: a pass settles the count and narrows
            // the bracket at once. After the second, that rate itself. Then,
            // far below the peak, halving.
            (None, Some(fail)) if bracket.failures() <= 2 => {
                let fewest = self.fewest_below(lane, fail);
                let count = self.allowed_count(fewest).unwrap_or(fewest);
                let settles = self.config.peak_tps / (count as f64 * self.config.max_utilization);
                let aim = if bracket.failures() == 1 { bracket.between(settles) } else { bracket.at_or_above(settles) };
                aim.or_else(|| bracket.next_rate())
            }
            _ => bracket.next_rate(),
        }
    }

    /// The fewest instances a type could need, given what its search showed:
    /// capacity is below its lowest failing rate.
    fn fewest_needed(&self, lane: &Lane) -> u32 {
        match &lane.stage {
            Stage::Verifying { count, .. } | Stage::Verified { count } => *count,
            _ => match (lane.max_tps, lane.bracket.lowest_failure()) {
                (Some(max), _) => self.needed(max),
                (None, Some(fail)) => self.fewest_below(lane, fail),
                (None, None) => 1,
            },
        }
    }

    /// The cheapest verified configuration: (cost, count, lane).
    fn best(&self) -> Option<(f64, u32, usize)> {
        self.lanes
            .iter()
            .enumerate()
            .filter_map(|(i, l)| match l.stage {
                Stage::Verified { count } => Some((l.price * count as f64, count, i)),
                _ => None,
            })
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)))
    }

    /// Drops every idle type that cannot beat the best verified configuration.
    fn prune(&mut self) {
        let (best_cost, best_name) = match self.best() {
            Some((cost, count, lane)) => (cost, self.lanes[lane].shape.with_count(count).to_string()),
            None => (f64::INFINITY, String::new()),
        };
        for i in 0..self.lanes.len() {
            let lane = &self.lanes[i];
            if lane.running || !matches!(lane.stage, Stage::Waiting | Stage::Searching | Stage::Verifying { .. }) {
                continue;
            }
            let Some(fewest) = self.allowed_count(self.fewest_needed(lane)) else {
                let verdict = format!(
                    "needs more than {} instances, more than --count-walk allows",
                    self.fewest_needed(lane).saturating_sub(1)
                );
                self.lanes[i].stage = Stage::Failed { verdict };
                continue;
            };
            let bound = self.lower_bound(lane);
            if bound >= best_cost && !self.config.verify_all {
                let what = match lane.stage {
                    Stage::Waiting => "not searched".to_string(),
                    _ => format!("dropped after measuring {} rates", lane.tried.len() + lane.bracket.decisions()),
                };
                let verdict = format!(
                    "{what}: it needs at least {fewest} instance{} (${bound:.3}/h), no cheaper than the verified {best_name} (${best_cost:.3}/h)",
                    if fewest == 1 { "" } else { "s" }
                );
                self.lanes[i].stage = Stage::Pruned { verdict };
            }
        }
    }

    /// Whether the search of `lane` has nothing left to learn: its bracket is
    /// exhausted, or every rate inside it gives the same instance count.
    fn search_over(&self, lane: &Lane) -> bool {
        if self.search_rate(lane).is_none() {
            return true;
        }
        match (lane.bracket.best(), lane.bracket.lowest_failure()) {
            (Some(pass), _) if self.needed(pass) == 1 => true,
            (Some(pass), Some(fail)) => self.needed(pass) == self.fewest_below(lane, fail),
            _ => false,
        }
    }

    /// What `lane` costs at the fewest instances it could need; infinite
    /// when no allowed count is enough.
    fn lower_bound(&self, lane: &Lane) -> f64 {
        self.allowed_count(self.fewest_needed(lane)).map_or(f64::INFINITY, |n| lane.price * n as f64)
    }

    /// The idle, unfinished type with the lowest lower bound (cheaper
    /// instance, then walk order, on a tie).
    fn most_promising(&self) -> Option<usize> {
        (0..self.lanes.len())
            .filter(|i| {
                !self.lanes[*i].running
                    && matches!(self.lanes[*i].stage, Stage::Waiting | Stage::Searching | Stage::Verifying { .. })
            })
            .min_by(|a, b| self.lower_bound(&self.lanes[*a]).total_cmp(&self.lower_bound(&self.lanes[*b])).then(a.cmp(b)))
    }

    /// Moves a lane one stage on; returns the probe it needs next, if it is
    /// still the lane to probe (a stage change can raise its bound).
    fn step_lane(&mut self, i: usize) -> Option<Probe> {
        let lane = &self.lanes[i];
        match lane.stage.clone() {
            Stage::Waiting => self.lanes[i].stage = Stage::Searching,
            Stage::Searching if !self.search_over(lane) => {
                let rate = self.search_rate(lane).expect("the search is not over");
                return Some(Probe {
                    candidate: lane.shape.candidate(),
                    load: self.config.axis.load(rate),
                    phase: Phase::Search,
                });
            }
            Stage::Searching => {
                self.lanes[i].stage = match lane.bracket.best() {
                    Some(max) => {
                        self.lanes[i].max_tps = Some(max);
                        match self.allowed_count(self.needed(max)) {
                            Some(count) => Stage::Verifying { count, attempt: 0 },
                            None => Stage::Failed {
                                verdict: format!(
                                    "{} {} per instance needs {} instances, more than --count-walk allows",
                                    trim_number(max),
                                    self.config.axis.unit(),
                                    self.needed(max)
                                ),
                            },
                        }
                    }
                    None => Stage::Failed {
                        verdict: format!(
                            "one instance cannot sustain even {} {}: {}",
                            lane.bracket.lowest_failure().map(trim_number).unwrap_or_default(),
                            self.config.axis.unit(),
                            lane.last_reasons.join("; ")
                        ),
                    },
                };
            }
            Stage::Verifying { count, .. } => {
                return Some(Probe {
                    candidate: lane.shape.with_count(count).candidate(),
                    load: self.config.axis.load(self.config.peak_tps),
                    phase: Phase::Endurance,
                });
            }
            Stage::Verified { .. } | Stage::Failed { .. } | Stage::Pruned { .. } => {}
        }
        None
    }

    /// Once the recommendation is settled, the next probe that brackets its
    /// capacity per instance — the figure the auto-scaling target is built
    /// on — until a pass and a failure lie within the resolution.
    fn refinement(&self) -> Option<(usize, Probe)> {
        let (_, _, i) = self.best()?;
        let lane = &self.lanes[i];
        let rate = lane.bracket.next_rate()?;
        Some((i, Probe { candidate: lane.shape.candidate(), load: self.config.axis.load(rate), phase: Phase::Search }))
    }

    /// The lane of `fleet`'s shape, whatever its count.
    fn lane_of(&self, fleet: &Fleet) -> Option<usize> {
        let shape = fleet.shape_of();
        self.lanes.iter().position(|l| l.shape == shape)
    }
}

impl Strategy for Adaptive {
    fn next(&mut self) -> Next {
        loop {
            self.prune();
            let running = self.lanes.iter().filter(|l| l.running).count();
            if running >= self.config.parallel.max(1) {
                return Next::Wait;
            }
            let Some(i) = self.most_promising() else {
                if running > 0 {
                    return Next::Wait;
                }
                return match self.refinement() {
                    Some((i, probe)) => {
                        self.lanes[i].running = true;
                        Next::Run(probe)
                    }
                    None => Next::Done,
                };
            };
            if let Some(probe) = self.step_lane(i) {
                self.lanes[i].running = true;
                return Next::Run(probe);
            }
        }
    }

    fn record(&mut self, probe: &Probe, outcome: &Outcome) {
        let Some(i) = probe.candidate.fleet().and_then(|f| self.lane_of(f)) else { return };
        self.lanes[i].running = false;
        if let Outcome::NotDeployed { reason } = outcome {
            self.lanes[i].stage = Stage::Failed { verdict: format!("could not be deployed: {reason}") };
            return;
        }
        match (probe.phase, self.lanes[i].stage.clone()) {
            (Phase::Search, Stage::Searching) => {
                let lane = &mut self.lanes[i];
                if !outcome.passed() {
                    lane.last_reasons = outcome.reasons();
                }
                lane.bracket.record(probe.load.level(), outcome.passed(), outcome.near_boundary());
            }
            // Refining the winner's capacity: the count is settled, the figure is not.
            (Phase::Search, Stage::Verified { .. }) => {
                let lane = &mut self.lanes[i];
                lane.bracket.record(probe.load.level(), outcome.passed(), outcome.near_boundary());
                lane.max_tps = lane.bracket.best().or(lane.max_tps);
            }
            (Phase::Endurance, Stage::Verifying { count, attempt }) => {
                self.lanes[i].tried.push((count, outcome.passed(), outcome.reasons()));
                self.lanes[i].stage = if outcome.passed() {
                    // Should it win, its capacity is bracketed from what its
                    // search decided, above the peak too.
                    let wider = Self::rates(&self.config, self.config.enough() * REFINE_HEADROOM);
                    self.lanes[i].bracket.widen(wider);
                    Stage::Verified { count }
                } else {
                    match self.next_count(count).filter(|_| attempt < self.config.endurance_retries) {
                        Some(next) => Stage::Verifying { count: next, attempt: attempt + 1 },
                        None => Stage::Failed {
                            verdict: format!(
                                "{} {} per instance, but endurance at peak failed with {}",
                                self.lanes[i].max_tps.map(trim_number).unwrap_or_default(),
                                self.config.axis.unit(),
                                self.lanes[i]
                                    .tried
                                    .iter()
                                    .map(|(c, _, why)| format!("{c} ({})", why.join("; ")))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        },
                    }
                };
            }
            // A probe of a lane pruned while it ran: the outcome changes nothing.
            _ => {}
        }
    }

    fn conclusion(&self) -> Conclusion {
        let best = self.best();
        let recommendation = best.map(|(_, count, i)| Recommended {
            candidate: self.lanes[i].shape.with_count(count),
            capacity: self.capacity(i).unwrap_or(Capacity::bound(self.config.peak_tps / count as f64).on(self.config.axis)),
        });
        let types = (0..self.lanes.len()).map(|i| self.summarise(i, best.map(|(_, _, lane)| lane))).collect();
        Conclusion { recommendation, types, serverless: None }
    }

    fn keep(&self, lane: &vocab::Lane) -> bool {
        let vocab::Lane::Instances(shape) = lane else { return false };
        self.lane_of(shape).is_some_and(|i| {
            let lane = &self.lanes[i];
            lane.running
                || matches!(lane.stage, Stage::Waiting | Stage::Searching | Stage::Verifying { .. })
                || (self.best().is_some_and(|(_, _, winner)| winner == i) && lane.bracket.next_rate().is_some())
        })
    }
}

/// The walk's rates up to and including the first that reaches `enough`.
fn walk_up_to(walk: &[f64], enough: f64) -> Vec<f64> {
    let mut sorted = walk.to_vec();
    sorted.sort_by(f64::total_cmp);
    let keep = sorted.iter().position(|r| *r >= enough).map_or(sorted.len(), |i| i + 1);
    sorted.truncate(keep);
    sorted
}

impl Adaptive {
    /// What one instance of lane `i` sustained, once its search ended.
    fn capacity(&self, i: usize) -> Option<Capacity> {
        let lane = &self.lanes[i];
        lane.max_tps.map(|at_least| Capacity::between(at_least, lane.bracket.lowest_failure()).on(self.config.axis))
    }

    fn summarise(&self, i: usize, winner: Option<usize>) -> TypeSummary {
        let lane = &self.lanes[i];
        let capacity = self.capacity(i);
        let per = || match capacity {
            None => "no rate measured".to_string(),
            Some(c) => {
                let how = match c.below {
                    Some(below) => format!("fails at {}", tps(below)),
                    None if winner != Some(i) => "a lower bound: the search stops where one instance is enough".into(),
                    None if lane.bracket.next_rate().is_some() => "a lower bound: the run stopped before it was bracketed".into(),
                    None => "a lower bound: the highest rate tried passed".into(),
                };
                format!("{} {} per instance ({how})", c.figure(), c.unit())
            }
        };
        let verdict = match &lane.stage {
            Stage::Verified { count } if winner == Some(i) => {
                format!("{}; {count} instance{} verified at peak — recommended", per(), if *count == 1 { "" } else { "s" })
            }
            Stage::Verified { count } => format!("{}; {count} verified at peak, but not the cheapest", per()),
            Stage::Failed { verdict } | Stage::Pruned { verdict } => verdict.clone(),
            Stage::Waiting | Stage::Searching | Stage::Verifying { .. } => "not finished (the run stopped early)".to_string(),
        };
        TypeSummary {
            instance_type: lane.shape.instance_type.clone(),
            max_concurrent_invocations: lane.shape.max_concurrent_invocations,
            capacity,
            count_needed: lane.max_tps.and_then(|m| self.allowed_count(self.needed(m))),
            verified_count: match lane.stage {
                Stage::Verified { count } => Some(count),
                _ => None,
            },
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
            types: types.iter().map(|(n, p)| (Fleet::shape(t(n), None), *p)).collect(),
            start_tps: 10.0,
            floor_tps: 0.5,
            resolution: 0.05,
            tps_walk: None,
            count_walk: None,
            endurance_retries: 3,
            parallel: 1,
            max_utilization: 1.0,
            axis: Axis::Rate,
            verify_all: false,
        }
    }

    #[test]
    fn the_count_keeps_every_instance_below_the_utilisation_margin() {
        // One c5.large holds 126/s: two would run at 99 % for a peak of 250.
        let at = |max_utilization: f64| {
            let mut world = World::new(&[("ml.c5.large", 126.0)]);
            let config = AdaptiveConfig { max_utilization, start_tps: 250.0, ..config(250.0, &[("ml.c5.large", 0.102)]) };
            world.run(&mut Adaptive::new(config)).recommendation.unwrap().candidate.count
        };
        assert_eq!(at(1.0), 2);
        assert_eq!(at(0.9), 3);
    }

    #[test]
    fn recommends_the_cheapest_verified_configuration_across_types() {
        // c5.large: 117/s at $0.102 → 1 ($0.102); m5.large: 94/s at $0.115 → 2 ($0.23);
        // m5.xlarge $0.23 for one.
        let mut world = World::new(&[("ml.m5.large", 94.0), ("ml.c5.large", 117.0), ("ml.m5.xlarge", 188.0)]);
        let mut strategy =
            Adaptive::new(config(100.0, &[("ml.m5.large", 0.115), ("ml.c5.large", 0.102), ("ml.m5.xlarge", 0.23)]));
        let conclusion = world.run(&mut strategy);
        assert_eq!(conclusion.recommendation.unwrap().candidate, Fleet::new(t("ml.c5.large"), 1));
        assert!(
            world.log.iter().all(|p| p.candidate.fleet().unwrap().instance_type == t("ml.c5.large")),
            "types that cannot beat $0.102 are never deployed"
        );
        assert_eq!(world.steps(Phase::Endurance), 1);
        assert!(conclusion.types[0].verdict.contains("not searched"), "{}", conclusion.types[0].verdict);
        assert_eq!(conclusion.types[0].instance_type, t("ml.m5.large"), "summaries keep the walk's order");
    }

    #[test]
    fn the_type_with_the_lowest_bound_is_verified_first() {
        // The cheapest instance needs 3 ($0.30); a pricier one needs 1 ($0.20).
        // Once the cheap one fails a rate, its bound passes the other's price.
        let mut world = World::new(&[("ml.c5.large", 40.0), ("ml.c5.xlarge", 150.0)]);
        let mut strategy = Adaptive::new(config(100.0, &[("ml.c5.large", 0.10), ("ml.c5.xlarge", 0.20)]));
        let conclusion = world.run(&mut strategy);
        assert_eq!(conclusion.recommendation.unwrap().candidate, Fleet::new(t("ml.c5.xlarge"), 1));
        assert_eq!(world.steps(Phase::Endurance), 1, "the losing type is never verified");
        assert!(
            conclusion.types[0].verdict.contains("no cheaper than the verified ml.c5.xlarge × 1"),
            "{}",
            conclusion.types[0].verdict
        );
    }

    #[test]
    fn starting_at_the_peak_settles_a_count_in_few_steps() {
        let mut world = World::new(&[("ml.m5.large", 94.0)]);
        let conclusion =
            world.run(&mut Adaptive::new(AdaptiveConfig { start_tps: 100.0, ..config(100.0, &[("ml.m5.large", 0.115)]) }));
        assert_eq!(conclusion.recommendation.unwrap().candidate.count, 2);
        let rates: Vec<f64> = world.log.iter().filter(|p| p.phase == Phase::Search).map(|p| p.load.level()).collect();
        // Failing the peak leaves 2 instances possible; 50 would settle them.
        // Midway (geometrically) between 50 and 100 it passes: 2 instances
        // whatever lies between, and a bracket already half as wide.
        assert_eq!(rates[0], 100.0);
        assert!((rates[1] - 5000f64.sqrt()).abs() < 1e-9, "{rates:?}");
        assert_eq!(world.log[2].phase, Phase::Endurance, "so the count is verified straight away");
    }

    #[test]
    fn the_winners_capacity_is_refined_after_it_is_verified() {
        // The count settles at 2 after 100 fails and 50 passes; the auto-scaling
        // target needs the capacity itself, 94/s, not the 50 that settled it.
        let mut world = World::new(&[("ml.m5.large", 94.0)]);
        let conclusion =
            world.run(&mut Adaptive::new(AdaptiveConfig { start_tps: 100.0, ..config(100.0, &[("ml.m5.large", 0.115)]) }));
        let rec = conclusion.recommendation.unwrap();
        assert_eq!(rec.candidate.count, 2);
        assert!((94.0 / 1.05..=94.0).contains(&rec.capacity.at_least), "{:?}", rec.capacity);
        let endurance = world.log.iter().position(|p| p.phase == Phase::Endurance).unwrap();
        assert!(
            world.log[endurance + 1..].iter().all(|p| p.phase == Phase::Search && p.candidate.instance_count() == 1),
            "refinement comes after verification"
        );
    }

    #[test]
    fn a_tps_walk_stops_at_the_peak() {
        assert_eq!(walk_up_to(&[400.0, 1.0, 10.0, 100.0, 200.0], 150.0), vec![1.0, 10.0, 100.0, 200.0]);
        assert_eq!(walk_up_to(&[1.0, 10.0], 150.0), vec![1.0, 10.0]);
    }

    #[test]
    fn the_search_stops_once_the_count_is_settled() {
        // 94/s per instance: after 80 passes and 100 fails, the peak of 100 needs 2 whatever lies between.
        let mut world = World::new(&[("ml.m5.large", 94.0)]);
        let conclusion = world.run(&mut Adaptive::new(config(100.0, &[("ml.m5.large", 0.115)])));
        let before_verifying = world.log.iter().take_while(|p| p.phase == Phase::Search).count();
        assert_eq!(before_verifying, 5, "10, 20, 40, 80, 100, then the count is verified");
        assert_eq!(conclusion.recommendation.unwrap().candidate.count, 2);
    }

    #[test]
    fn a_high_peak_searches_capacity_to_the_resolution() {
        let mut world = World::new(&[("ml.m5.large", 94.0)]);
        let conclusion = world.run(&mut Adaptive::new(config(1000.0, &[("ml.m5.large", 0.115)])));
        let max = conclusion.types[0].capacity.unwrap().at_least;
        assert!((94.0 / 1.05..=94.0).contains(&max), "{max}");
        assert_eq!(conclusion.recommendation.unwrap().candidate.count, crate::step::instances_needed(1000.0, max));
    }

    #[test]
    fn an_endurance_failure_adds_one_instance() {
        // Scaling is sub-linear: 2 × 60 × 0.8 = 96 < 100 at 2 instances, 3 × 60 × 0.64 = 115 at 3.
        let mut world = World::new(&[("ml.m5.large", 60.0)]);
        world.efficiency = 0.8;
        let rec = world.run(&mut Adaptive::new(config(100.0, &[("ml.m5.large", 0.115)]))).recommendation.unwrap();
        assert_eq!(rec.candidate.count, 3);
        assert_eq!(world.steps(Phase::Endurance), 2);
    }

    #[test]
    fn a_type_that_cannot_deploy_is_skipped_with_its_reason() {
        let mut world = World::new(&[("ml.m5.large", 94.0), ("ml.c5.large", 117.0)]);
        world.broken.push("ml.c5.large".into());
        let conclusion = world.run(&mut Adaptive::new(config(100.0, &[("ml.m5.large", 0.115), ("ml.c5.large", 0.102)])));
        assert_eq!(conclusion.recommendation.unwrap().candidate, Fleet::new(t("ml.m5.large"), 2));
        assert!(conclusion.types[1].verdict.contains("simulated capacity shortage"), "{}", conclusion.types[1].verdict);
    }

    #[test]
    fn nothing_recommended_when_no_type_meets_the_requirements() {
        let mut world = World::new(&[("ml.m5.large", 0.2)]);
        let conclusion = world.run(&mut Adaptive::new(config(100.0, &[("ml.m5.large", 0.115)])));
        assert!(conclusion.recommendation.is_none());
        assert!(conclusion.types[0].verdict.contains("cannot sustain even"), "{}", conclusion.types[0].verdict);
    }

    #[test]
    fn a_fluke_near_the_limit_is_measured_again_instead_of_trusted() {
        // At 80/s one measurement fails just over the limit: trusted once, it
        // would make the peak of 100 look like it needs 2 instances of a type
        // that serves 150/s.
        let mut world = World::new(&[("ml.m5.large", 150.0)]);
        world.flukes.push(("ml.m5.large".into(), 80.0));
        let conclusion = world.run(&mut Adaptive::new(config(100.0, &[("ml.m5.large", 0.115)])));
        assert_eq!(conclusion.recommendation.unwrap().candidate.count, 1);
        assert_eq!(world.log.iter().filter(|p| p.load.level() == 80.0).count(), 3, "80/s measured until a majority decides");
    }

    #[test]
    fn a_first_step_at_the_floor_failed_by_an_error_burst_concludes_instead_of_repeating_itself() {
        // A 1 s step measures too few requests below the start: the floor is
        // the start. Its failure leaves no rate to try (the midway rate
        // towards what would settle three instances is the failure itself),
        // so the search must end there, not measure 10 again and again.
        let mut world = World::new(&[("ml.c5.large", 100.0)]);
        world.error_bursts.push(("ml.c5.large".into(), 10.0));
        let cfg =
            AdaptiveConfig { start_tps: 10.0, floor_tps: 10.0, max_utilization: 0.9, ..config(20.0, &[("ml.c5.large", 0.102)]) };
        let conclusion = world.run(&mut Adaptive::new(cfg));
        assert_eq!(trace(&world), [(Phase::Search, 1, 10.0)], "one measurement of 10, then a conclusion");
        assert!(conclusion.recommendation.is_none());
        assert!(conclusion.types[0].verdict.contains("cannot sustain even 10 TPS: errors"), "{}", conclusion.types[0].verdict);
    }

    #[test]
    fn past_the_count_walk_any_count_may_serve() {
        let mut world = World::new(&[("ml.m5.large", 60.0)]);
        let mut cfg = config(100.0, &[("ml.m5.large", 0.115)]);
        cfg.count_walk = Some(vec![1]);
        let rec = world.run(&mut Adaptive::new(cfg)).recommendation.unwrap();
        assert_eq!(rec.candidate.count, 2, "perfsizesagemaker's default walk of 1 does not forbid two");
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
        let mut strategy =
            Adaptive::new(AdaptiveConfig { parallel: 2, ..config(100.0, &[("ml.m5.large", 0.115), ("ml.c5.large", 0.102)]) });
        let (Next::Run(a), Next::Run(b)) = (strategy.next(), strategy.next()) else { panic!("two probes at once") };
        assert_ne!(a.candidate.fleet().unwrap().instance_type, b.candidate.fleet().unwrap().instance_type);
        assert_eq!(strategy.next(), Next::Wait, "both lanes busy");
        strategy.record(&a, &measured(true, 0.2));
        assert!(
            matches!(strategy.next(), Next::Run(p) if p.candidate.fleet().unwrap().instance_type == a.candidate.fleet().unwrap().instance_type)
        );
    }

    #[test]
    fn each_async_concurrency_setting_is_a_shape_of_its_own_and_the_cheapest_wins() {
        // One request at a time, an ml.c5.large completes 25/s; two at a
        // time, 50/s. At 30/s the first needs two instances, the second one.
        let mut world = World::new(&[("ml.c5.large (1 at once)", 25.0), ("ml.c5.large (2 at once)", 50.0)]);
        let c5 = |n| Fleet::shape(t("ml.c5.large"), Some(n));
        let config = AdaptiveConfig { types: vec![(c5(1), 0.102), (c5(2), 0.102)], ..config(30.0, &[]) };
        let conclusion = world.run(&mut Adaptive::new(config));
        let rec = conclusion.recommendation.unwrap();
        assert_eq!(rec.candidate, c5(2), "{:?}", conclusion.types);
        assert!(world.log.iter().any(|p| p.candidate.fleet() == Some(&c5(1))), "both settings are measured");
        let labels: Vec<String> = conclusion.types.iter().map(TypeSummary::label).collect();
        assert_eq!(labels, ["ml.c5.large (1 at once)", "ml.c5.large (2 at once)"]);
        assert!(conclusion.types[1].verdict.ends_with("recommended"), "{}", conclusion.types[1].verdict);
    }

    #[test]
    fn on_the_concurrency_axis_the_search_walks_whole_streams_and_counts_them() {
        // One m5.large holds 5 streams within the limits; the peak is 12 streams.
        let mut world = World::new(&[("ml.m5.large", 5.0)]);
        let cfg = AdaptiveConfig {
            axis: Axis::Concurrency,
            start_tps: 12.0,
            tps_walk: Some((1..=12).map(f64::from).collect()),
            ..config(12.0, &[("ml.m5.large", 0.115)])
        };
        let rec = world.run(&mut Adaptive::new(cfg)).recommendation.expect("5 streams an instance hold 12 with three");
        assert_eq!(rec.candidate.count, 3);
        assert_eq!((rec.capacity.at_least, rec.capacity.below, rec.capacity.axis), (5.0, Some(6.0), Axis::Concurrency));
        assert!(
            world.log.iter().all(|p| matches!(p.load, vocab::Load::Concurrency(n) if (1..=12).contains(&n))),
            "every probe is a whole number of streams: {:?}",
            world.log
        );
        assert!(world.log.iter().any(|p| p.phase == Phase::Endurance && p.load == vocab::Load::Concurrency(12)));
    }

    fn user_walk() -> Vec<f64> {
        vec![10., 20., 40., 60., 80., 100., 120., 140., 160., 180., 200.]
    }

    fn realistic(peak: f64, types: &[(&str, f64)]) -> AdaptiveConfig {
        AdaptiveConfig { start_tps: peak, max_utilization: 0.9, ..config(peak, types) }
    }

    fn trace(world: &World) -> Vec<(Phase, u32, f64)> {
        world.log.iter().map(|p| (p.phase, p.candidate.instance_count(), p.load.level())).collect()
    }

    #[test]
    fn a_capacity_above_the_peak_is_bracketed_to_the_resolution() {
        // One c5.large serves 118/s: it holds the peak of 100 alone. The
        // search stops there (the count is settled), but the auto-scaling
        // target needs the capacity: 118 within 5 %, not "at least 111".
        let mut world = World::new(&[("ml.c5.large", 118.0)]);
        let conclusion = world.run(&mut Adaptive::new(realistic(100.0, &[("ml.c5.large", 0.102)])));
        let rec = conclusion.recommendation.unwrap();
        assert_eq!(rec.candidate, Fleet::new(t("ml.c5.large"), 1));
        let (pass, fail) = (rec.capacity.at_least, rec.capacity.below.expect("bracketed"));
        assert!(pass <= 118.0 && fail > 118.0, "{:?}", rec.capacity);
        assert!(rec.capacity.width().unwrap() <= 0.05, "{:?}", rec.capacity);
        assert_eq!(rec.capacity.figure(), crate::format::tps(pass), "a bracketed figure reads as a number");
        assert_eq!(conclusion.types[0].capacity, Some(rec.capacity));
        assert!(conclusion.types[0].verdict.contains("(fails at"), "{}", conclusion.types[0].verdict);
        let endurance = world.log.iter().position(|p| p.phase == Phase::Endurance).unwrap();
        assert_eq!(endurance, 1, "a pass at 100 / 0.9 settles one instance; it is verified before anything else");
        assert!((world.log[0].load.level() - 100.0 / 0.9).abs() < 1e-9, "off a walk, the first question is the margin's");
        assert!(world.log[endurance + 1..].iter().all(|p| p.phase == Phase::Search && p.candidate.instance_count() == 1));
    }

    #[test]
    fn a_capacity_beyond_the_headroom_stays_a_labelled_bound() {
        let mut world = World::new(&[("ml.g4dn.xlarge", 5000.0)]);
        let conclusion = world.run(&mut Adaptive::new(realistic(100.0, &[("ml.g4dn.xlarge", 0.736)])));
        let rec = conclusion.recommendation.unwrap();
        let headroom = 100.0 / 0.9 * REFINE_HEADROOM;
        assert!(world.log.iter().all(|p| p.load.level() <= headroom + 1e-9), "never driven past {headroom}: {:?}", trace(&world));
        assert_eq!(rec.capacity, Capacity::bound(headroom));
        assert!(!rec.capacity.is_bracketed());
        assert_eq!(rec.capacity.figure(), "≥ 444.4");
        assert!(
            conclusion.types[0].verdict.starts_with("≥ 444.4 TPS per instance (a lower bound"),
            "{}",
            conclusion.types[0].verdict
        );
    }

    #[test]
    fn with_a_walk_the_first_probe_is_the_walk_rate_nearest_the_peak_then_bisection_within_it() {
        // perfsizesagemaker's user walk. One m5.large serves 94/s: 100 fails,
        // so the peak needs 2, which 60 would settle; 80, between 60 and 100,
        // passes: 2 instances, and the capacity bracketed on neighbouring rates.
        let mut world = World::new(&[("ml.m5.large", 94.0)]);
        let cfg = AdaptiveConfig { tps_walk: Some(user_walk()), ..realistic(100.0, &[("ml.m5.large", 0.115)]) };
        let rec = world.run(&mut Adaptive::new(cfg)).recommendation.unwrap();
        assert_eq!(trace(&world), [(Phase::Search, 1, 100.0), (Phase::Search, 1, 80.0), (Phase::Endurance, 2, 100.0)]);
        assert_eq!(rec.candidate.count, 2);
        assert_eq!(rec.capacity, Capacity::between(80.0, Some(100.0)));
    }

    #[test]
    fn with_a_walk_a_winner_that_holds_the_peak_alone_is_bracketed_up_the_walk() {
        let mut world = World::new(&[("ml.m5.xlarge", 188.0)]);
        let cfg = AdaptiveConfig { tps_walk: Some(user_walk()), ..realistic(100.0, &[("ml.m5.xlarge", 0.23)]) };
        let rec = world.run(&mut Adaptive::new(cfg)).recommendation.unwrap();
        // 100 passes, 120 (≥ 100 / 0.9) settles one instance, verified; then
        // the walk above it, galloping to its end and bisecting back.
        assert_eq!(
            trace(&world),
            [
                (Phase::Search, 1, 100.0),
                (Phase::Search, 1, 120.0),
                (Phase::Endurance, 1, 100.0),
                (Phase::Search, 1, 200.0),
                (Phase::Search, 1, 160.0),
                (Phase::Search, 1, 180.0)
            ]
        );
        assert_eq!(rec.capacity, Capacity::between(180.0, Some(200.0)));
    }

    #[test]
    fn adaptive_spends_at_most_half_the_load_of_perfsizesagemaker_with_and_without_a_walk() {
        // The benchmark's scenario: peak 100, ml.m5.large (94/s, $0.115) and
        // ml.m5.xlarge (188/s, $0.23). Load counts every step alike, as
        // perfsizesagemaker's own demo gives a search step and an endurance
        // run a minute each.
        let types = [("ml.m5.large", 94.0), ("ml.m5.xlarge", 188.0)];
        let prices = [("ml.m5.large", 0.115), ("ml.m5.xlarge", 0.23)];
        let price = |c: &Fleet| prices.iter().find(|(n, _)| *n == c.instance_type.as_str()).unwrap().1 * c.count as f64;
        for walk in [None, Some(user_walk())] {
            let mut baseline = World::new(&types);
            let perfsize_config = crate::step::perfsize::PerfsizeConfig {
                peak_tps: 100.0,
                types: prices.iter().map(|(n, _)| Fleet::shape(t(n), None)).collect(),
                count_walk: vec![1],
                tps_walk: walk.clone().unwrap_or(crate::plan::PERFSIZE_DEFAULT_TPS_WALK.to_vec()),
                endurance_retries: 3,
            };
            let theirs = baseline.run(&mut crate::step::Perfsize::new(perfsize_config)).recommendation.unwrap();
            let mut world = World::new(&types);
            let ours = world
                .run(&mut Adaptive::new(AdaptiveConfig { tps_walk: walk.clone(), ..realistic(100.0, &prices) }))
                .recommendation
                .unwrap();
            assert!(
                price(&ours.candidate) <= price(&theirs.candidate) + 1e-9,
                "{walk:?}: {} vs {}",
                ours.candidate,
                theirs.candidate
            );
            assert!(
                world.log.len() * 2 <= baseline.log.len(),
                "{walk:?}: {} steps against perfsizesagemaker's {}: {:?}",
                world.log.len(),
                baseline.log.len(),
                trace(&world)
            );
            assert!(ours.capacity.is_bracketed(), "{walk:?}: {:?}", ours.capacity);
        }
    }
}
