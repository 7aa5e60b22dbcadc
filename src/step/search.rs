//! Finding the highest rate that passes: a bracket between the highest
//! passing and the lowest failing rate, closed by growth then bisection —
//! over a continuous range or over a user's TPS walk — with noisy results
//! near a limit decided by majority over up to three measurements.

/// The rates a search may probe.
#[derive(Debug, Clone, PartialEq)]
pub enum Rates {
    /// Any rate: start, double until a failure (never past `cap`), halve
    /// below `start` down to `floor`, bisect until the bracket is within
    /// `resolution` (relative).
    Continuous { start: f64, floor: f64, cap: f64, resolution: f64 },
    /// Only these rates, ascending: gallop up the walk, then binary search.
    Walk(Vec<f64>),
}

/// The state of one search.
#[derive(Debug, Clone, PartialEq)]
pub struct Bracket {
    rates: Rates,
    /// Decided rates (or walk indexes) and whether they passed.
    decided: Vec<(f64, bool)>,
    /// Lowest failing position.
    fail: Option<f64>,
    /// Highest passing position below `fail`: a pass above a failure was luck.
    pass: Option<f64>,
    /// Votes at the rate being decided.
    votes: Vec<bool>,
}

/// Most measurements of one rate before the majority decides.
const MAX_VOTES: usize = 3;

impl Bracket {
    pub fn new(rates: Rates) -> Bracket {
        let rates = match rates {
            Rates::Walk(mut walk) => {
                walk.sort_by(f64::total_cmp);
                walk.dedup();
                Rates::Walk(walk)
            }
            continuous => continuous,
        };
        Bracket { rates, decided: Vec::new(), fail: None, pass: None, votes: Vec::new() }
    }

    /// The next rate to probe, or None once the search is over.
    pub fn next_rate(&self) -> Option<f64> {
        match &self.rates {
            Rates::Continuous { start, floor, cap, resolution } => match (self.pass, self.fail) {
                (None, None) => Some(start.min(*cap)),
                (Some(p), None) => (p < *cap).then(|| (p * 2.0).min(*cap)),
                (None, Some(f)) => (f / 2.0 >= *floor).then_some(f / 2.0),
                (Some(p), Some(f)) => ((f - p) / p > *resolution).then_some((p + f) / 2.0),
            },
            Rates::Walk(walk) => {
                let last = walk.len() as f64 - 1.0;
                let index = match (self.pass, self.fail) {
                    (None, None) => Some(0.0),
                    (Some(p), None) => (p < last).then(|| (2.0 * p + 1.0).min(last)),
                    (None, Some(f)) => (f > 0.0).then(|| (f / 2.0).floor()),
                    (Some(p), Some(f)) => (f - p > 1.0).then(|| ((p + f) / 2.0).floor()),
                };
                index.map(|i| walk[i as usize])
            }
        }
    }

    /// Records one measurement of `rate`. `noisy` means it sat too close to
    /// a limit to trust alone. Returns true when the rate is decided.
    pub fn record(&mut self, rate: f64, passed: bool, noisy: bool) -> bool {
        self.votes.push(passed);
        let yes = self.votes.iter().filter(|v| **v).count();
        let no = self.votes.len() - yes;
        let decided = match self.votes.len() {
            1 => !noisy,
            n => yes.max(no) * 2 > n || n >= MAX_VOTES,
        };
        if !decided {
            return false;
        }
        let passed = yes * 2 > self.votes.len() || (yes * 2 == self.votes.len() && passed);
        self.votes.clear();
        self.decided.push((self.position(rate), passed));
        self.fail = self.decided.iter().filter(|(_, ok)| !ok).map(|(at, _)| *at).reduce(f64::min);
        self.pass =
            self.decided.iter().filter(|(at, ok)| *ok && self.fail.is_none_or(|f| *at < f)).map(|(at, _)| *at).reduce(f64::max);
        true
    }

    /// How many rates were decided so far.
    pub fn decisions(&self) -> usize {
        self.decided.len()
    }

    /// The highest rate that passed, once the search is over.
    pub fn best(&self) -> Option<f64> {
        let p = self.pass?;
        Some(match &self.rates {
            Rates::Continuous { .. } => p,
            Rates::Walk(walk) => walk[p as usize],
        })
    }

    /// The lowest rate that failed.
    pub fn lowest_failure(&self) -> Option<f64> {
        let f = self.fail?;
        Some(match &self.rates {
            Rates::Continuous { .. } => f,
            Rates::Walk(walk) => walk[f as usize],
        })
    }

    fn position(&self, rate: f64) -> f64 {
        match &self.rates {
            Rates::Continuous { .. } => rate,
            Rates::Walk(walk) => {
                walk.iter().position(|r| (*r - rate).abs() < 1e-9).expect("probed rates come from the walk") as f64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(rates: Rates, capacity: f64) -> (Option<f64>, Vec<f64>) {
        let mut bracket = Bracket::new(rates);
        let mut probed = Vec::new();
        while let Some(rate) = bracket.next_rate() {
            probed.push(rate);
            assert!(bracket.record(rate, rate <= capacity, false));
            assert!(probed.len() < 100);
        }
        (bracket.best(), probed)
    }

    #[test]
    fn continuous_search_grows_then_bisects_to_the_resolution() {
        let (best, probed) = search(Rates::Continuous { start: 10.0, floor: 0.5, cap: 1000.0, resolution: 0.05 }, 94.0);
        let best = best.unwrap();
        assert!((94.0 / 1.05..=94.0).contains(&best), "{best}");
        assert_eq!(&probed[..5], &[10.0, 20.0, 40.0, 80.0, 160.0]);
        assert!(probed.len() <= 10, "{probed:?}");
    }

    #[test]
    fn a_passing_cap_ends_the_search() {
        let (best, probed) = search(Rates::Continuous { start: 30.0, floor: 0.5, cap: 100.0, resolution: 0.05 }, 500.0);
        assert_eq!(best, Some(100.0));
        assert_eq!(probed, vec![30.0, 60.0, 100.0]);
    }

    #[test]
    fn a_failing_start_halves_down_to_the_floor() {
        let (best, probed) = search(Rates::Continuous { start: 10.0, floor: 1.0, cap: 100.0, resolution: 0.05 }, 3.0);
        assert!(best.unwrap() >= 3.0 / 1.05 && best.unwrap() <= 3.0);
        assert_eq!(&probed[..3], &[10.0, 5.0, 2.5]);
        let (best, _) = search(Rates::Continuous { start: 10.0, floor: 1.0, cap: 100.0, resolution: 0.05 }, 0.1);
        assert_eq!(best, None, "nothing at or above the floor passes");
    }

    #[test]
    fn a_walk_is_galloped_then_bisected() {
        let walk: Vec<f64> =
            vec![1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 20., 30., 40., 50., 60., 70., 80., 90., 100., 200., 300., 400.];
        let (best, probed) = search(Rates::Walk(walk), 94.0);
        assert_eq!(best, Some(90.0));
        // perfsizesagemaker's linear climb takes 19 steps to learn the same.
        assert_eq!(probed, vec![1.0, 2.0, 4.0, 8.0, 70.0, 400.0, 100.0, 80.0, 90.0]);
    }

    #[test]
    fn a_noisy_result_is_measured_again_and_the_majority_decides() {
        let mut bracket = Bracket::new(Rates::Continuous { start: 10.0, floor: 0.5, cap: 100.0, resolution: 0.05 });
        assert!(!bracket.record(10.0, false, true), "one noisy failure decides nothing");
        assert_eq!(bracket.next_rate(), Some(10.0), "the same rate again");
        assert!(!bracket.record(10.0, true, true), "one each: a third measurement decides");
        assert!(bracket.record(10.0, true, false));
        assert_eq!(bracket.best(), Some(10.0));
    }

    #[test]
    fn a_failure_below_a_pass_disproves_the_pass() {
        let mut bracket = Bracket::new(Rates::Continuous { start: 40.0, floor: 0.5, cap: 100.0, resolution: 0.05 });
        bracket.record(40.0, true, false);
        bracket.record(80.0, false, false);
        bracket.record(60.0, true, false);
        // A later, lower failure: the 60 pass was luck; 40 still stands.
        bracket.record(50.0, false, false);
        assert_eq!(bracket.best(), Some(40.0));
        assert_eq!(bracket.next_rate(), Some(45.0));
    }
}
