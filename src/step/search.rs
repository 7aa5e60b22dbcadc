//! Finding the highest rate that passes: a bracket between the highest
//! passing and the lowest failing rate, closed by growth then bisection —
//! over a continuous range or over a user's TPS walk — with noisy results
//! near a limit decided by majority over up to three measurements.

/// The rates a search may probe.
#[derive(Debug, Clone, PartialEq)]
pub enum Rates {
    /// Any rate: start, double until a failure (never past `cap`), halve
    /// below `start` down to `floor`, bisect (geometrically) until the
    /// bracket is within `resolution` (relative).
    Continuous { start: f64, floor: f64, cap: f64, resolution: f64 },
    /// Only these rates: the first probe is the one nearest `start`; then
    /// gallop up the walk or halve down it, then binary search.
    Walk { rates: Vec<f64>, start: f64 },
}

/// The state of one search.
#[derive(Debug, Clone, PartialEq)]
pub struct Bracket {
    rates: Rates,
    /// Decided rates and whether they passed.
    decided: Vec<(f64, bool)>,
    /// Lowest failing rate.
    fail: Option<f64>,
    /// Highest passing rate below `fail`: a pass above a failure was luck.
    pass: Option<f64>,
    /// The rate being decided, and its votes so far.
    voting: Option<f64>,
    votes: Vec<bool>,
}

/// Most measurements of one rate before the majority decides.
const MAX_VOTES: usize = 3;

/// Two rates closer than this are the same rate.
const SAME_RATE: f64 = 1e-9;

impl Bracket {
    pub fn new(rates: Rates) -> Bracket {
        Bracket { rates: sorted(rates), decided: Vec::new(), fail: None, pass: None, voting: None, votes: Vec::new() }
    }

    /// Lets the search go further with what it decided so far: a higher cap,
    /// or a walk that goes on above the old one (the old walk must be its
    /// beginning, so that every decided rate is still on it).
    pub fn widen(&mut self, rates: Rates) {
        let rates = sorted(rates);
        if let Rates::Walk { rates: walk, .. } = &rates {
            debug_assert!(self.decided.iter().all(|(r, _)| walk.iter().any(|w| (w - r).abs() < SAME_RATE)));
        }
        self.rates = rates;
    }

    /// The next rate to probe, or None once the search is over.
    pub fn next_rate(&self) -> Option<f64> {
        if let Some(rate) = self.voting {
            return Some(rate);
        }
        match &self.rates {
            Rates::Continuous { start, floor, cap, resolution } => match (self.pass, self.fail) {
                (None, None) => Some(start.min(*cap)),
                (Some(p), None) => (p < *cap).then(|| (p * 2.0).min(*cap)),
                (None, Some(f)) => (f / 2.0 >= *floor).then_some(f / 2.0),
                // The middle on a log scale: the resolution is relative.
                (Some(p), Some(f)) => ((f - p) / p > *resolution).then_some((p * f).sqrt()),
            },
            Rates::Walk { rates: walk, start } => {
                let last = walk.len().checked_sub(1)?;
                let index = match (self.pass.map(|p| self.index(p)), self.fail.map(|f| self.index(f))) {
                    (None, None) => Some(nearest(walk, *start)),
                    (Some(p), None) => (p < last).then(|| (2 * p + 1).min(last)),
                    (None, Some(f)) => (f > 0).then_some(f / 2),
                    (Some(p), Some(f)) => (f - p > 1).then(|| (p + f) / 2),
                };
                index.map(|i| walk[i])
            }
        }
    }

    /// A rate midway between `low` and the lowest failure (geometrically, or
    /// by position on the walk), no lower than `low`: for a search that knows
    /// which rates below the failure matter. None when no rate the search may
    /// probe lies in [low, failure) — with the floor at the failure, the
    /// middle would be the failure itself, measured again and again while
    /// it could never count as a pass.
    pub fn between(&self, low: f64) -> Option<f64> {
        let f = self.fail?;
        match &self.rates {
            Rates::Continuous { floor, .. } => {
                let mid = (low.max(*floor) * f).sqrt();
                (low < f && mid >= *floor && mid < f * (1.0 - SAME_RATE)).then_some(mid)
            }
            Rates::Walk { rates: walk, .. } => {
                let lo = walk.iter().position(|r| *r >= low - SAME_RATE)?;
                let hi = self.index(f);
                (lo < hi).then(|| walk[(lo + hi) / 2])
            }
        }
    }

    /// The lowest rate at or above `low` that the search may probe, below the
    /// lowest failure. None when there is none.
    pub fn at_or_above(&self, low: f64) -> Option<f64> {
        let f = self.fail?;
        let rate = match &self.rates {
            Rates::Continuous { floor, .. } => low.max(*floor),
            Rates::Walk { rates: walk, .. } => *walk.iter().find(|r| **r >= low - SAME_RATE)?,
        };
        (rate < f - SAME_RATE).then_some(rate)
    }

    /// The highest rate a search could still find passing below `rate`: the
    /// walk's rate before it, or (between walk rates, or off a walk) a hair
    /// below `rate` itself.
    pub fn highest_below(&self, rate: f64) -> f64 {
        let hair = rate * (1.0 - SAME_RATE);
        match &self.rates {
            Rates::Walk { rates: walk, .. } => walk.iter().copied().rfind(|r| *r < rate - SAME_RATE).unwrap_or(hair),
            Rates::Continuous { .. } => hair,
        }
    }

    /// Records one measurement of `rate`. `noisy` means it sat too close to
    /// a limit to trust alone. Returns true when the rate is decided.
    pub fn record(&mut self, rate: f64, passed: bool, noisy: bool) -> bool {
        if self.voting.is_some_and(|v| (v - rate).abs() >= SAME_RATE) {
            // Another rate: the votes pending were for a question no longer asked.
            self.votes.clear();
        }
        self.voting = Some(rate);
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
        self.voting = None;
        self.decided.push((rate, passed));
        self.fail = self.decided.iter().filter(|(_, ok)| !ok).map(|(at, _)| *at).reduce(f64::min);
        self.pass =
            self.decided.iter().filter(|(at, ok)| *ok && self.fail.is_none_or(|f| *at < f)).map(|(at, _)| *at).reduce(f64::max);
        true
    }

    /// The rate whose measurements disagree so far, if any.
    pub fn pending(&self) -> Option<f64> {
        self.voting
    }

    /// How many rates were decided so far.
    pub fn decisions(&self) -> usize {
        self.decided.len()
    }

    /// How many decided rates failed.
    pub fn failures(&self) -> usize {
        self.decided.iter().filter(|(_, ok)| !ok).count()
    }

    /// The highest rate that passed below every failure.
    pub fn best(&self) -> Option<f64> {
        self.pass
    }

    /// The lowest rate that failed.
    pub fn lowest_failure(&self) -> Option<f64> {
        self.fail
    }

    fn index(&self, rate: f64) -> usize {
        match &self.rates {
            Rates::Walk { rates: walk, .. } => {
                walk.iter().position(|r| (*r - rate).abs() < SAME_RATE).expect("probed rates come from the walk")
            }
            Rates::Continuous { .. } => unreachable!("only walks have positions"),
        }
    }
}

/// A walk in ascending order without repeats.
fn sorted(rates: Rates) -> Rates {
    match rates {
        Rates::Walk { rates: mut walk, start } => {
            walk.sort_by(f64::total_cmp);
            walk.dedup();
            Rates::Walk { rates: walk, start }
        }
        continuous => continuous,
    }
}

/// The position of the walk's rate nearest `rate` (the lower one on a tie).
fn nearest(walk: &[f64], rate: f64) -> usize {
    (0..walk.len()).min_by(|a, b| (walk[*a] - rate).abs().total_cmp(&(walk[*b] - rate).abs())).unwrap_or(0)
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
        let (best, probed) = search(Rates::Walk { rates: walk, start: 1.0 }, 94.0);
        assert_eq!(best, Some(90.0));
        // perfsizesagemaker's linear climb takes 19 steps to learn the same.
        assert_eq!(probed, vec![1.0, 2.0, 4.0, 8.0, 70.0, 400.0, 100.0, 80.0, 90.0]);
    }

    fn user_walk() -> Vec<f64> {
        vec![10., 20., 40., 60., 80., 100., 120., 140., 160., 180., 200.]
    }

    #[test]
    fn a_walk_starts_at_the_rate_nearest_the_start_and_bisects_within_itself() {
        let (best, probed) = search(Rates::Walk { rates: user_walk(), start: 100.0 }, 94.0);
        assert_eq!(best, Some(80.0));
        // 100 fails; half the way down the walk (40) passes; then 60, 80 between.
        assert_eq!(probed, vec![100.0, 40.0, 60.0, 80.0]);
        let (_, probed) = search(Rates::Walk { rates: user_walk(), start: 111.0 }, 94.0);
        assert_eq!(probed[0], 120.0, "the nearest rate, above or below");
        let (_, probed) = search(Rates::Walk { rates: user_walk(), start: 110.0 }, 94.0);
        assert_eq!(probed[0], 100.0, "a tie goes to the lower rate");
    }

    #[test]
    fn between_picks_the_middle_of_what_is_left_above_a_low_rate() {
        let mut walk = Bracket::new(Rates::Walk { rates: user_walk(), start: 100.0 });
        assert_eq!(walk.between(55.0), None, "nothing failed yet");
        walk.record(100.0, false, false);
        assert_eq!(walk.between(55.0), Some(80.0), "60 and 80 lie in [55, 100): the upper middle");
        assert_eq!(walk.between(80.0), Some(80.0));
        assert_eq!(walk.between(90.0), None, "no walk rate in [90, 100)");
        assert_eq!(walk.at_or_above(55.0), Some(60.0));
        assert_eq!(walk.at_or_above(90.0), None);
        assert_eq!(walk.highest_below(100.0), 80.0);
        assert_eq!(walk.highest_below(10.0), 10.0 * (1.0 - SAME_RATE), "nothing below the walk's first rate");
        let mut any = Bracket::new(Rates::Continuous { start: 100.0, floor: 1.0, cap: 111.0, resolution: 0.05 });
        any.record(100.0, false, false);
        assert!((any.between(50.0).unwrap() - 50f64.sqrt() * 10.0).abs() < 1e-9, "the geometric middle");
        assert_eq!(any.between(100.0), None);
        let mut at_the_floor = Bracket::new(Rates::Continuous { start: 10.0, floor: 10.0, cap: 100.0, resolution: 0.05 });
        at_the_floor.record(10.0, false, false);
        assert_eq!(at_the_floor.between(7.4), None, "never the failure itself");
        assert_eq!(at_the_floor.next_rate(), None, "nothing below the floor");
        assert_eq!(any.at_or_above(50.0), Some(50.0));
        assert_eq!(any.at_or_above(0.5), Some(1.0), "never below the floor");
        assert!(any.highest_below(100.0) < 100.0 && any.highest_below(100.0) > 99.999);
    }

    #[test]
    fn a_widened_search_goes_on_from_what_it_decided() {
        let mut bracket = Bracket::new(Rates::Continuous { start: 100.0, floor: 1.0, cap: 111.0, resolution: 0.05 });
        bracket.record(100.0, true, false);
        bracket.record(111.0, true, false);
        assert_eq!(bracket.next_rate(), None, "the cap passed: one instance is enough");
        bracket.widen(Rates::Continuous { start: 100.0, floor: 1.0, cap: 444.0, resolution: 0.05 });
        let mut probed = Vec::new();
        while let Some(rate) = bracket.next_rate() {
            probed.push(rate);
            bracket.record(rate, rate <= 118.0, false);
        }
        assert_eq!(probed[0], 222.0, "growth resumes above the old cap");
        let (pass, fail) = (bracket.best().unwrap(), bracket.lowest_failure().unwrap());
        assert!(pass <= 118.0 && fail > 118.0 && (fail - pass) / pass <= 0.05, "{pass}..{fail}");

        let mut walk = Bracket::new(Rates::Walk { rates: vec![10., 20., 40., 60., 80., 100., 120.], start: 100.0 });
        walk.record(100.0, true, false);
        walk.record(120.0, true, false);
        assert_eq!(walk.next_rate(), None);
        walk.widen(Rates::Walk { rates: user_walk(), start: 100.0 });
        assert_eq!(walk.next_rate(), Some(200.0), "galloping on up the longer walk");
    }

    #[test]
    fn votes_for_a_rate_no_longer_asked_are_dropped() {
        let mut bracket = Bracket::new(Rates::Continuous { start: 10.0, floor: 0.5, cap: 100.0, resolution: 0.05 });
        assert!(!bracket.record(10.0, false, true));
        assert_eq!(bracket.pending(), Some(10.0));
        assert!(bracket.record(20.0, true, false), "a clean measurement of another rate decides that rate");
        assert_eq!(bracket.pending(), None);
        assert_eq!(bracket.best(), Some(20.0));
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
        assert_eq!(bracket.next_rate(), Some(2000f64.sqrt()), "midway between 40 and 50 on a log scale");
    }
}
