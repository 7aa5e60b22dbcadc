//! perfsizesagemaker's algorithm, step for step (its FirstSuccessStepManager
//! run twice, as its main() does):
//!
//! 1. Types are the outer loop and counts the inner loop; each type × count
//!    is tried at the first rate of the TPS walk. The first that passes is
//!    kept, and the rate climbs the walk one step per pass until the first
//!    failure or the walk's end. TPS per instance = last passing rate ÷ count.
//! 2. Instances needed = ⌈peak ÷ TPS per instance⌉; endurance at peak with
//!    that count, then one more, up to `endurance_retries` more; the first
//!    that passes is the recommendation.
//!
//! Differences kept on purpose: limits are inclusive (perfsizesagemaker's
//! strict `<` made `--percent_fail 0` impossible to meet) and the endurance
//! ramp flags are honoured (perfsizesagemaker parsed and ignored them).
//!
//! The capacity per instance is what the climb showed and no more: bracketed
//! by the walk's rate that ended the climb (to the walk's own spacing), or a
//! lower bound when the whole walk passed. No step is added to sharpen it:
//! this strategy exists to behave, and cost, exactly as perfsizesagemaker.

use super::{Capacity, Conclusion, Next, Outcome, Recommended, Strategy, TypeSummary};
use crate::format::trim_number;
use crate::vocab::{Fleet, Lane, Load, Phase, Probe};

#[derive(Debug, Clone, PartialEq)]
pub struct PerfsizeConfig {
    pub peak_tps: f64,
    /// Shapes to try in order (a type, and for an asynchronous endpoint
    /// how many requests each instance takes at once).
    pub types: Vec<Fleet>,
    pub count_walk: Vec<u32>,
    pub tps_walk: Vec<f64>,
    pub endurance_retries: u32,
}

#[derive(Debug, Clone, PartialEq)]
enum Stage {
    /// Trying type × count combinations at the first rate.
    FindType {
        type_index: usize,
        count_index: usize,
    },
    /// A combination passed; climbing the TPS walk.
    Climb {
        type_index: usize,
        count_index: usize,
        tps_index: usize,
    },
    /// Endurance at peak with `needed + extra` instances.
    Endurance {
        extra: u32,
    },
    Finished,
}

pub struct Perfsize {
    config: PerfsizeConfig,
    stage: Stage,
    waiting: bool,
    /// Phase 1's answer: type, count, highest passing rate.
    found: Option<(usize, u32, f64)>,
    /// The rate whose failure ended the climb, if one did.
    climb_failed_at: Option<f64>,
    needed: u32,
    recommended: Option<Fleet>,
    failures: Vec<(usize, String)>,
}

impl Perfsize {
    /// The walks come from a Plan: non-empty, counts ≥ 1, tried in the order given.
    pub fn new(config: PerfsizeConfig) -> Perfsize {
        Perfsize {
            config,
            stage: Stage::FindType { type_index: 0, count_index: 0 },
            waiting: false,
            found: None,
            climb_failed_at: None,
            needed: 0,
            recommended: None,
            failures: Vec::new(),
        }
    }

    fn tps_per_instance(&self) -> Option<f64> {
        self.found.map(|(_, count, tps)| tps / count as f64)
    }

    /// The climb's result per instance: its last pass, and the failure that ended it.
    fn capacity(&self) -> Option<Capacity> {
        self.found
            .map(|(_, count, tps)| Capacity::between(tps / count as f64, self.climb_failed_at.map(|fail| fail / count as f64)))
    }

    fn start_endurance(&mut self) {
        let per_instance = self.tps_per_instance().expect("endurance follows a found type");
        self.needed = super::instances_needed(self.config.peak_tps, per_instance);
        self.stage = Stage::Endurance { extra: 0 };
    }
}

impl Strategy for Perfsize {
    fn next(&mut self) -> Next {
        if self.waiting {
            return Next::Wait;
        }
        let probe = match &self.stage {
            Stage::FindType { type_index, count_index } => Probe {
                candidate: self.config.types[*type_index].with_count(self.config.count_walk[*count_index]).candidate(),
                load: Load::Rate(self.config.tps_walk[0]),
                phase: Phase::Search,
            },
            Stage::Climb { type_index, count_index, tps_index } => Probe {
                candidate: self.config.types[*type_index].with_count(self.config.count_walk[*count_index]).candidate(),
                load: Load::Rate(self.config.tps_walk[*tps_index]),
                phase: Phase::Search,
            },
            Stage::Endurance { extra } => {
                let (type_index, _, _) = self.found.expect("endurance follows a found type");
                Probe {
                    candidate: self.config.types[type_index].with_count(self.needed + extra).candidate(),
                    load: Load::Rate(self.config.peak_tps),
                    phase: Phase::Endurance,
                }
            }
            Stage::Finished => return Next::Done,
        };
        self.waiting = true;
        Next::Run(probe)
    }

    fn record(&mut self, probe: &Probe, outcome: &Outcome) {
        self.waiting = false;
        let passed = outcome.passed();
        self.stage = match self.stage.clone() {
            Stage::FindType { type_index, count_index } if passed => {
                self.found = Some((type_index, self.config.count_walk[count_index], probe.load.level()));
                if self.config.tps_walk.len() > 1 {
                    Stage::Climb { type_index, count_index, tps_index: 1 }
                } else {
                    self.start_endurance();
                    self.stage.clone()
                }
            }
            Stage::FindType { type_index, count_index } => {
                self.failures.push((type_index, outcome.reasons().join("; ")));
                if count_index + 1 < self.config.count_walk.len() {
                    Stage::FindType { type_index, count_index: count_index + 1 }
                } else if type_index + 1 < self.config.types.len() {
                    Stage::FindType { type_index: type_index + 1, count_index: 0 }
                } else {
                    Stage::Finished
                }
            }
            Stage::Climb { type_index, count_index, tps_index } => {
                if passed {
                    self.found = Some((type_index, self.config.count_walk[count_index], probe.load.level()));
                } else {
                    self.climb_failed_at = Some(probe.load.level());
                }
                if passed && tps_index + 1 < self.config.tps_walk.len() {
                    Stage::Climb { type_index, count_index, tps_index: tps_index + 1 }
                } else {
                    self.start_endurance();
                    self.stage.clone()
                }
            }
            Stage::Endurance { .. } if passed => {
                self.recommended = probe.candidate.fleet().cloned();
                Stage::Finished
            }
            Stage::Endurance { extra } if extra < self.config.endurance_retries => Stage::Endurance { extra: extra + 1 },
            Stage::Endurance { .. } | Stage::Finished => Stage::Finished,
        };
    }

    fn conclusion(&self) -> Conclusion {
        let capacity = self.capacity();
        let recommendation = self
            .recommended
            .clone()
            .map(|candidate| Recommended { candidate, capacity: capacity.unwrap_or(Capacity::bound(0.0)) });
        let types = self
            .config
            .types
            .iter()
            .enumerate()
            .map(|(i, shape)| {
                let found_here = self.found.filter(|(t, _, _)| *t == i);
                let failed_here: Vec<&str> = self.failures.iter().filter(|(t, _)| *t == i).map(|(_, why)| why.as_str()).collect();
                let verdict = match (found_here, &self.recommended) {
                    (Some((_, count, tps)), Some(rec)) => format!(
                        "passed {} TPS on {count}; {} instances verified at peak — recommended",
                        trim_number(tps),
                        rec.count
                    ),
                    (Some((_, count, tps)), None) => format!(
                        "passed {} TPS on {count}, but endurance at peak failed up to {} instances",
                        trim_number(tps),
                        self.needed + self.config.endurance_retries
                    ),
                    (None, _) if !failed_here.is_empty() => {
                        format!("failed the first rate of the walk: {}", failed_here.join("; "))
                    }
                    (None, _) => "not tried (an earlier type passed first)".to_string(),
                };
                TypeSummary {
                    instance_type: shape.instance_type.clone(),
                    max_concurrent_invocations: shape.max_concurrent_invocations,
                    capacity: found_here.and(capacity),
                    count_needed: found_here.map(|_| self.needed),
                    verified_count: found_here.and(self.recommended.as_ref().map(|r| r.count)),
                    verdict,
                }
            })
            .collect();
        Conclusion { recommendation, types, serverless: None }
    }

    fn keep(&self, lane: &Lane) -> bool {
        let Lane::Instances(shape) = lane else { return false };
        let current = match &self.stage {
            Stage::FindType { type_index, .. } | Stage::Climb { type_index, .. } => Some(*type_index),
            Stage::Endurance { .. } => self.found.map(|(t, _, _)| t),
            Stage::Finished => None,
        };
        current.is_some_and(|i| self.config.types[i].shape_of() == *shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::testing::*;

    fn jenkins_walk() -> Vec<f64> {
        vec![1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 20., 30., 40., 50., 60., 70., 80., 90., 100., 200., 300., 400.]
    }

    fn config(peak: f64, types: &[&str]) -> PerfsizeConfig {
        PerfsizeConfig {
            peak_tps: peak,
            types: types.iter().map(|n| Fleet::shape(t(n), None)).collect(),
            count_walk: vec![1],
            tps_walk: jenkins_walk(),
            endurance_retries: 3,
        }
    }

    #[test]
    fn the_first_type_that_passes_is_kept_and_climbed() {
        let mut world = World::new(&[("ml.m5.large", 94.0), ("ml.c5.large", 117.0)]);
        let conclusion = world.run(&mut Perfsize::new(config(100.0, &["ml.m5.large", "ml.c5.large"])));
        let rec = conclusion.recommendation.unwrap();
        // Climbs 1…90 (18 passes), fails 100; 100 / 90 → 2 instances.
        assert_eq!(rec.candidate, Fleet::new(t("ml.m5.large"), 2));
        assert_eq!(rec.capacity, Capacity::between(90.0, Some(100.0)), "bracketed by the walk's next rate");
        assert_eq!(world.steps(Phase::Search), 19);
        assert_eq!(world.steps(Phase::Endurance), 1);
        assert!(
            world.log.iter().all(|p| p.candidate.fleet().unwrap().instance_type == t("ml.m5.large")),
            "the cheaper c5 is never tried"
        );
    }

    #[test]
    fn combinations_are_tried_types_outer_counts_inner() {
        let mut world = World::new(&[("ml.m5.large", 0.2), ("ml.c5.large", 117.0)]);
        let mut cfg = config(100.0, &["ml.m5.large", "ml.c5.large"]);
        cfg.count_walk = vec![1, 2];
        let conclusion = world.run(&mut Perfsize::new(cfg));
        let first: Vec<String> = world.log.iter().take(3).map(|p| p.candidate.to_string()).collect();
        assert_eq!(first, ["ml.m5.large × 1", "ml.m5.large × 2", "ml.c5.large × 1"]);
        assert_eq!(conclusion.recommendation.unwrap().candidate.instance_type, t("ml.c5.large"));
    }

    #[test]
    fn endurance_retries_one_more_instance_at_a_time() {
        let mut world = World::new(&[("ml.m5.large", 60.0)]);
        world.efficiency = 0.8;
        let rec = world.run(&mut Perfsize::new(config(100.0, &["ml.m5.large"]))).recommendation.unwrap();
        // 60/s per instance → 2 needed; 2 × 60 × 0.8 = 96 fails; 3 passes.
        assert_eq!(rec.candidate.count, 3);
        assert_eq!(world.steps(Phase::Endurance), 2);
    }

    #[test]
    fn nothing_passing_the_first_rate_means_no_recommendation() {
        let mut world = World::new(&[("ml.m5.large", 0.5)]);
        let conclusion = world.run(&mut Perfsize::new(config(100.0, &["ml.m5.large"])));
        assert!(conclusion.recommendation.is_none());
        assert!(conclusion.types[0].verdict.starts_with("failed the first rate"));
    }

    #[test]
    fn a_noisy_failure_ends_the_climb_as_in_perfsizesagemaker() {
        // perfsizesagemaker trusts every result once: a fluke at 60/s stops the climb at 50.
        let mut world = World::new(&[("ml.m5.large", 94.0)]);
        world.flukes.push(("ml.m5.large".into(), 60.0));
        let rec = world.run(&mut Perfsize::new(config(100.0, &["ml.m5.large"]))).recommendation.unwrap();
        assert_eq!(rec.capacity, Capacity::between(50.0, Some(60.0)));
        assert_eq!(rec.candidate.count, 2);
    }

    #[test]
    fn a_climb_that_passes_the_whole_walk_leaves_a_bound() {
        // perfsizesagemaker's sample: the first type took every rate of the walk.
        let mut world = World::new(&[("ml.m5.large", 500.0)]);
        let rec = world.run(&mut Perfsize::new(config(100.0, &["ml.m5.large"]))).recommendation.unwrap();
        assert_eq!(rec.capacity, Capacity::bound(400.0));
        assert_eq!(rec.capacity.figure(), "≥ 400");
        assert_eq!(world.steps(Phase::Search), 22, "no step added to sharpen it: the walk, step for step");
    }
}
