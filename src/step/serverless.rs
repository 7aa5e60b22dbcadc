//! The serverless search: the lowest memory size, and the lowest max
//! concurrency at it, that hold the requirements at peak. A serverless
//! candidate has no instance count, so its search dimension is memory ×
//! max concurrency: memory sizes are tried smallest first; at each, the
//! highest max concurrency of the walk is tried first (can this memory take
//! the peak at all?), then the walk is bisected down to the lowest max
//! concurrency that still passes (throttles past it count as errors). An
//! endurance run at peak verifies the choice (one step up the concurrency
//! walk when it fails), and a cold-start test — idle until every worker is
//! cold, then a burst at peak — is judged apart and reported.
//!
//! A memory size the model does not fit in is rejected with the reason the
//! endpoint gave, kept in its verdict.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Next, Outcome};
use crate::format::trim_number;
use crate::vocab::{Candidate, Lane, Load, MemorySize, Phase, Probe, ServerlessSize};

/// The serverless part of a walk: the memory sizes and max concurrencies
/// searched (the search dimension of a serverless candidate, which has no
/// instance count), with the provisioned concurrency of every candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerlessWalk {
    /// Smallest first.
    pub memory: Vec<MemorySize>,
    /// Smallest first.
    pub max_concurrency: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned: Option<u32>,
    /// How long workers idle before the cold-start burst: long enough that
    /// every on-demand worker has gone cold.
    #[serde(with = "crate::format::humantime_text")]
    pub idle: Duration,
}

impl ServerlessWalk {
    /// Every configuration of the walk: memory × max concurrency.
    pub fn sizes(&self, memory: MemorySize) -> Vec<ServerlessSize> {
        let valid = self.max_concurrency.iter().map(|&c| ServerlessSize::new(memory, c, self.provisioned));
        valid.collect::<Result<_, _>>().expect("the plan checked every configuration")
    }
}

/// How one memory size fared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryVerdict {
    pub memory_size_mb: u32,
    /// The lowest max concurrency that held the peak, once found.
    pub max_concurrency: Option<u32>,
    /// Whether the endpoint rejected it (the model does not fit, a quota):
    /// the reason is in `verdict`.
    #[serde(default)]
    pub rejected: bool,
    pub verdict: String,
}

/// The serverless search's final word.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerlessConclusion {
    /// The configuration an endurance run at peak verified.
    pub recommended: Option<ServerlessSize>,
    pub memory: Vec<MemoryVerdict>,
    /// Whether the cold-start test ran (its step is in the results).
    #[serde(default)]
    pub cold_start_tested: bool,
}

/// Where the search of one memory size stands.
#[derive(Debug, Clone, PartialEq)]
enum Stage {
    NotTried,
    /// Bisecting the concurrency walk: `fail` is the index of the highest
    /// max concurrency that failed (None: none yet), `pass` of the lowest
    /// that passed (None: the top of the walk is still to be tried).
    Searching {
        fail: Option<usize>,
        pass: Option<usize>,
    },
    /// An endurance run at peak on the walk's `index`.
    Verifying {
        index: usize,
    },
    Verified {
        index: usize,
    },
    /// Did not hold the peak (or could not be deployed): why.
    Failed {
        verdict: String,
        rejected: bool,
    },
}

/// The cold-start test of the verified configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ColdStart {
    Pending,
    Running,
    Done,
}

/// The search over a [`ServerlessWalk`].
#[derive(Debug, Clone)]
pub struct ServerlessSearch {
    peak_tps: f64,
    walk: ServerlessWalk,
    stages: Vec<Stage>,
    running: bool,
    cold_start: ColdStart,
}

impl ServerlessSearch {
    pub fn new(peak_tps: f64, walk: ServerlessWalk) -> ServerlessSearch {
        let stages = vec![Stage::NotTried; walk.memory.len()];
        ServerlessSearch { peak_tps, walk, stages, running: false, cold_start: ColdStart::Pending }
    }

    fn size(&self, memory: usize, index: usize) -> ServerlessSize {
        self.walk.sizes(self.walk.memory[memory])[index]
    }

    fn probe(&self, memory: usize, index: usize, phase: Phase) -> Probe {
        Probe { candidate: Candidate::Serverless(self.size(memory, index)), load: Load::Rate(self.peak_tps), phase }
    }

    /// The memory size being searched: the first not yet failed, once none verified.
    fn current(&self) -> Option<usize> {
        if self.verified().is_some() {
            return None;
        }
        self.stages.iter().position(|s| !matches!(s, Stage::Failed { .. }))
    }

    fn verified(&self) -> Option<(usize, usize)> {
        self.stages.iter().enumerate().find_map(|(m, s)| match s {
            Stage::Verified { index } => Some((m, *index)),
            _ => None,
        })
    }

    /// The next probe of memory `m`, advancing its stage when a bracket closes.
    fn step(&mut self, m: usize) -> Option<Probe> {
        let top = self.walk.max_concurrency.len() - 1;
        match self.stages[m].clone() {
            Stage::NotTried => {
                self.stages[m] = Stage::Searching { fail: None, pass: None };
                Some(self.probe(m, top, Phase::Search))
            }
            Stage::Searching { pass: None, .. } => Some(self.probe(m, top, Phase::Search)),
            Stage::Searching { fail, pass: Some(pass) } => {
                let low = fail.map_or(0, |f| f + 1);
                if low >= pass {
                    self.stages[m] = Stage::Verifying { index: pass };
                    return Some(self.probe(m, pass, Phase::Endurance));
                }
                Some(self.probe(m, (low + pass) / 2, Phase::Search))
            }
            Stage::Verifying { index } => Some(self.probe(m, index, Phase::Endurance)),
            Stage::Verified { .. } | Stage::Failed { .. } => None,
        }
    }

    pub fn next_probe(&mut self) -> Next {
        if self.running {
            return Next::Wait;
        }
        let probe = match self.current() {
            Some(m) => self.step(m),
            None => self.cold_start_probe(),
        };
        match probe {
            Some(probe) => {
                self.running = true;
                Next::Run(probe)
            }
            None => Next::Done,
        }
    }

    fn cold_start_probe(&mut self) -> Option<Probe> {
        let (m, index) = self.verified()?;
        (self.cold_start == ColdStart::Pending).then(|| {
            self.cold_start = ColdStart::Running;
            self.probe(m, index, Phase::ColdStart)
        })
    }

    pub fn record(&mut self, probe: &Probe, outcome: &Outcome) {
        self.running = false;
        let Some(size) = probe.candidate.serverless() else { return };
        if probe.phase == Phase::ColdStart {
            self.cold_start = ColdStart::Done;
            return;
        }
        let Some(m) = self.walk.memory.iter().position(|&mem| mem == size.memory()) else { return };
        let Some(index) = self.walk.max_concurrency.iter().position(|&c| c == size.max_concurrency()) else { return };
        let top = self.walk.max_concurrency.len() - 1;
        self.stages[m] = match (outcome, self.stages[m].clone()) {
            (Outcome::NotDeployed { reason }, _) => Stage::Failed { verdict: format!("rejected: {reason}"), rejected: true },
            (_, Stage::Searching { fail, .. }) if outcome.passed() => Stage::Searching { fail, pass: Some(index) },
            (_, Stage::Searching { pass: None, .. }) => Stage::Failed {
                verdict: format!(
                    "fails at {} TPS even at max concurrency {}: {}",
                    trim_number(self.peak_tps),
                    self.walk.max_concurrency[top],
                    outcome.reasons().join("; ")
                ),
                rejected: false,
            },
            (_, Stage::Searching { pass, .. }) => Stage::Searching { fail: Some(index), pass },
            (_, Stage::Verifying { .. }) if outcome.passed() => Stage::Verified { index },
            (_, Stage::Verifying { index }) if index < top => Stage::Verifying { index: index + 1 },
            (_, Stage::Verifying { .. }) => Stage::Failed {
                verdict: format!("endurance at peak failed up to max concurrency {}", self.walk.max_concurrency[top]),
                rejected: false,
            },
            (_, stage) => stage,
        };
    }

    pub fn keep(&self, lane: &Lane) -> bool {
        let Lane::Serverless(size) = lane else { return false };
        let kept = |m: usize, index: usize| self.size(m, index) == *size;
        match (self.current(), self.verified()) {
            // The lowest passing configuration is the one an endurance run will verify.
            (Some(m), _) => match self.stages[m] {
                Stage::Searching { pass: Some(index), .. } | Stage::Verifying { index } => kept(m, index),
                _ => false,
            },
            (None, Some((m, index))) => self.cold_start != ColdStart::Done && kept(m, index),
            (None, None) => false,
        }
    }

    pub fn conclusion(&self) -> ServerlessConclusion {
        let recommended = self.verified().map(|(m, index)| self.size(m, index));
        let memory = self.walk.memory.iter().zip(&self.stages).map(|(mem, stage)| self.verdict(*mem, stage)).collect();
        ServerlessConclusion { recommended, memory, cold_start_tested: self.cold_start == ColdStart::Done }
    }

    fn verdict(&self, memory: MemorySize, stage: &Stage) -> MemoryVerdict {
        let concurrency = |index: usize| self.walk.max_concurrency[index];
        let (max_concurrency, rejected, verdict) = match stage {
            Stage::NotTried => (None, false, "not tried (a smaller memory size held the peak)".to_string()),
            Stage::Searching { .. } | Stage::Verifying { .. } => (None, false, "search not finished".to_string()),
            Stage::Verified { index } => (
                Some(concurrency(*index)),
                false,
                format!("holds {} TPS at max concurrency {} — recommended", trim_number(self.peak_tps), concurrency(*index)),
            ),
            Stage::Failed { verdict, rejected } => (None, *rejected, verdict.clone()),
        };
        MemoryVerdict { memory_size_mb: memory.mb(), max_concurrency, rejected, verdict }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::testing::measured;
    use std::time::Duration;

    fn walk(memory: &[u32], concurrency: &[u32]) -> ServerlessWalk {
        ServerlessWalk {
            memory: memory.iter().map(|&m| MemorySize::try_from(m).unwrap()).collect(),
            max_concurrency: concurrency.to_vec(),
            provisioned: None,
            idle: Duration::from_secs(1),
        }
    }

    /// A synthetic model: `needs_mb` to load, and at `peak` TPS each request
    /// takes `busy_s` seconds at 1 GB (faster with memory), so the peak needs
    /// peak × busy ÷ GB concurrent workers; fewer are throttled.
    fn outcome(probe: &Probe, needs_mb: u32, busy_s: f64, slowest_ok_s: f64) -> Outcome {
        let size = probe.candidate.serverless().unwrap();
        if size.memory().mb() < needs_mb {
            return Outcome::NotDeployed { reason: "ModelError: Out of memory".into() };
        }
        let busy = busy_s / size.memory().gb();
        let needed = probe.load.level() * busy;
        measured(busy <= slowest_ok_s && f64::from(size.max_concurrency()) >= needed, 0.5)
    }

    fn run(search: &mut ServerlessSearch, needs_mb: u32, busy_s: f64, slowest_ok_s: f64) -> Vec<Probe> {
        let mut log = Vec::new();
        for _ in 0..100 {
            match search.next_probe() {
                Next::Run(probe) => {
                    let o = if probe.phase == Phase::ColdStart {
                        measured(true, 0.5)
                    } else {
                        outcome(&probe, needs_mb, busy_s, slowest_ok_s)
                    };
                    search.record(&probe, &o);
                    log.push(probe);
                }
                Next::Wait => panic!("one probe at a time"),
                Next::Done => return log,
            }
        }
        panic!("the search did not end");
    }

    #[test]
    fn finds_the_lowest_memory_and_then_the_lowest_max_concurrency_that_hold_the_peak() {
        // 20 TPS, 0.4 s per request at 1 GB: latency fits from 2 GB (0.2 s),
        // which needs 20 × 0.2 = 4 workers: max concurrency 5 of the walk.
        let mut search = ServerlessSearch::new(20.0, walk(&[1024, 2048, 4096], &[1, 2, 5, 10, 20, 50, 100, 200]));
        let log = run(&mut search, 1024, 0.4, 0.25);
        let conclusion = search.conclusion();
        let chosen = conclusion.recommended.unwrap();
        assert_eq!((chosen.memory().mb(), chosen.max_concurrency()), (2048, 5));
        assert!(
            conclusion.memory[0].verdict.starts_with("fails at 20 TPS even at max concurrency 200"),
            "{:?}",
            conclusion.memory
        );
        assert_eq!(conclusion.memory[1].max_concurrency, Some(5));
        assert!(conclusion.memory[2].verdict.starts_with("not tried"));
        assert!(log.iter().all(|p| p.candidate.serverless().unwrap().memory().mb() <= 2048), "4096 is never deployed");
        assert_eq!(log.iter().filter(|p| p.phase == Phase::Endurance).count(), 1);
        assert_eq!(log.last().unwrap().phase, Phase::ColdStart, "the chosen configuration's cold start is tested last");
        assert!(conclusion.cold_start_tested);
        assert!(log.len() <= 1 + 1 + 3 + 1 + 1, "bisection, not a sweep: {} probes", log.len());
    }

    #[test]
    fn a_memory_size_too_small_for_the_model_is_rejected_with_its_reason() {
        let mut search = ServerlessSearch::new(5.0, walk(&[1024, 3072], &[10]));
        run(&mut search, 3072, 0.1, 1.0);
        let conclusion = search.conclusion();
        assert!(conclusion.memory[0].rejected);
        assert_eq!(conclusion.memory[0].verdict, "rejected: ModelError: Out of memory");
        assert_eq!(conclusion.recommended.unwrap().memory().mb(), 3072);
    }

    #[test]
    fn nothing_holding_the_peak_recommends_nothing_and_tests_no_cold_start() {
        let mut search = ServerlessSearch::new(500.0, walk(&[1024, 2048], &[1, 2]));
        let log = run(&mut search, 1024, 0.1, 1.0);
        assert_eq!(log.len(), 2, "one probe at the top of the walk per memory size");
        let conclusion = search.conclusion();
        assert!(conclusion.recommended.is_none() && !conclusion.cold_start_tested);
    }

    #[test]
    fn only_the_configuration_still_needed_is_kept_deployed() {
        let mut search = ServerlessSearch::new(20.0, walk(&[2048], &[5, 10]));
        let Next::Run(first) = search.next_probe() else { panic!() };
        search.record(&first, &measured(true, 0.5));
        let Next::Run(second) = search.next_probe() else { panic!() };
        assert!(search.keep(&first.candidate.lane()), "the lowest pass so far is what an endurance run would verify");
        search.record(&second, &measured(true, 0.5));
        assert!(!search.keep(&first.candidate.lane()), "done with once a lower max concurrency passed");
        let Next::Run(endurance) = search.next_probe() else { panic!() };
        assert_eq!((endurance.phase, &endurance.candidate), (Phase::Endurance, &second.candidate));
        assert!(search.keep(&endurance.candidate.lane()));
        assert!(!search.keep(&Lane::Instances(crate::vocab::Fleet::new("ml.m5.large".parse().unwrap(), 1))));
    }
}
