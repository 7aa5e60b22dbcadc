//! A search on each axis the peak names — the rate, and streams in flight —
//! run one after the other in the same run, on the same endpoints, and
//! joined: a configuration is recommended when it holds both peaks, at the
//! larger of the counts the two searches verified.

use super::{Conclusion, Next, Outcome, Recommended, Strategy};
use crate::vocab::{Fleet, Lane, Probe};

/// Searches that each size the same shapes on their own axis.
pub struct Joint {
    /// In the order they run: the rate first.
    searches: Vec<Box<dyn Strategy>>,
    /// The search whose probes run now; the ones before it are done.
    current: usize,
    /// Each shape's $/hour for one instance.
    prices: Vec<(Fleet, f64)>,
}

impl Joint {
    pub fn new(searches: Vec<Box<dyn Strategy>>, prices: Vec<(Fleet, f64)>) -> Joint {
        Joint { searches, current: 0, prices }
    }

    fn price(&self, shape: &Fleet) -> f64 {
        self.prices.iter().find(|(s, _)| s == shape).map_or(f64::INFINITY, |(_, p)| *p)
    }

    /// The cheapest shape every search verified, at the largest count any
    /// of them verified: more instances only hold a peak more easily. Its
    /// capacity is the first search's (the rate's, which the invocations
    /// target is built on); at equal cost the earlier shape wins.
    fn recommendation(&self, conclusions: &[Conclusion]) -> Option<Recommended> {
        let first = conclusions.first()?;
        let joint = first.types.iter().filter_map(|summary| {
            let shape = summary.shape();
            let counts: Option<Vec<u32>> = conclusions.iter().map(|c| verified_count(c, &shape)).collect();
            let count = counts?.into_iter().max()?;
            let cost = self.price(&shape) * f64::from(count);
            Some((cost, Recommended { candidate: shape.with_count(count), capacity: summary.capacity? }))
        });
        joint
            .fold(None, |best: Option<(f64, Recommended)>, (cost, rec)| match best {
                Some((c, _)) if c <= cost => best,
                _ => Some((cost, rec)),
            })
            .map(|(_, rec)| rec)
    }
}

impl Strategy for Joint {
    /// One search at a time: two probes on one shape at once would deploy
    /// a second endpoint of it.
    fn next(&mut self) -> Next {
        while let Some(search) = self.searches.get_mut(self.current) {
            match search.next() {
                Next::Done => self.current += 1,
                next => return next,
            }
        }
        Next::Done
    }

    fn record(&mut self, probe: &Probe, outcome: &Outcome) {
        if let Some(search) = self.searches.get_mut(self.current) {
            search.record(probe, outcome);
        }
    }

    fn conclusion(&self) -> Conclusion {
        let conclusions: Vec<Conclusion> = self.searches.iter().map(|s| s.conclusion()).collect();
        let recommendation = self.recommendation(&conclusions);
        let types = conclusions.into_iter().flat_map(|c| c.types).collect();
        Conclusion { recommendation, types, serverless: None }
    }

    /// A search not yet started keeps every shape it will probe, so the
    /// endpoints of the first search serve the next one.
    fn keep(&self, lane: &Lane) -> bool {
        self.searches[self.current.min(self.searches.len() - 1)..].iter().any(|s| s.keep(lane))
    }
}

/// The count `conclusion` verified for `shape`, if it did.
fn verified_count(conclusion: &Conclusion, shape: &Fleet) -> Option<u32> {
    conclusion.types.iter().find(|t| &t.shape() == shape)?.verified_count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::adaptive::{Adaptive, AdaptiveConfig};
    use crate::step::testing::*;
    use crate::vocab::{Axis, Load};

    const PRICES: [(&str, f64); 2] = [("ml.m5.large", 0.115), ("ml.c5.large", 0.102)];

    fn search(axis: Axis, peak: f64) -> Box<dyn Strategy> {
        let walk = (axis == Axis::Concurrency).then(|| (1..=peak as u32).map(f64::from).collect());
        Box::new(Adaptive::new(AdaptiveConfig {
            peak_tps: peak,
            types: prices(),
            start_tps: peak,
            floor_tps: 1.0,
            resolution: 0.05,
            tps_walk: walk,
            count_walk: None,
            endurance_retries: 8,
            parallel: 1,
            max_utilization: 1.0,
            axis,
            verify_all: true,
        }))
    }

    fn prices() -> Vec<(Fleet, f64)> {
        PRICES.iter().map(|(n, p)| (Fleet::shape(t(n), None), *p)).collect()
    }

    /// Runs `joint` against one synthetic world per axis.
    fn run(joint: &mut Joint, rate: &mut World, streams: &mut World) -> Conclusion {
        for _ in 0..500 {
            match joint.next() {
                Next::Run(probe) => {
                    assert!(joint.keep(&probe.candidate.lane()), "a shape about to be probed is kept");
                    let outcome = match probe.load {
                        Load::Rate(_) => rate.outcome(&probe),
                        Load::Concurrency(_) => streams.outcome(&probe),
                    };
                    joint.record(&probe, &outcome);
                }
                Next::Wait => panic!("a sequential driver never has probes in flight"),
                Next::Done => return joint.conclusion(),
            }
        }
        panic!("the joint search did not finish in 500 probes");
    }

    #[test]
    fn a_peak_of_both_is_held_at_the_larger_count_either_search_verified() {
        // At 100 TPS and 12 streams: an m5.large holds 50/s and 4 streams
        // (2 and 3 instances), a cheaper c5.large 60/s but 2 streams (2 and 6).
        let mut rate = World::new(&[("ml.m5.large", 50.0), ("ml.c5.large", 60.0)]);
        let mut streams = World::new(&[("ml.m5.large", 4.0), ("ml.c5.large", 2.0)]);
        let mut joint = Joint::new(vec![search(Axis::Rate, 100.0), search(Axis::Concurrency, 12.0)], prices());
        let conclusion = run(&mut joint, &mut rate, &mut streams);
        let rec = conclusion.recommendation.expect("both searches verified a count");
        assert_eq!(rec.candidate, Fleet::new(t("ml.m5.large"), 3), "the rate alone would pick c5.large × 2");
        assert!(rec.capacity.axis.is_rate(), "the capacity the invocations target is built on");
        assert_eq!(conclusion.types.len(), 4, "each shape summarised once per axis");
        assert!(rate.log.iter().all(|p| matches!(p.load, Load::Rate(_))), "rates go to the rate search");
        assert!(streams.log.iter().all(|p| matches!(p.load, Load::Concurrency(_))), "streams to the concurrency search");
    }

    #[test]
    fn nothing_is_recommended_unless_every_search_verified_the_shape() {
        // The c5.large holds the rate but no stream at all within the limits.
        let mut rate = World::new(&[("ml.m5.large", 10.0), ("ml.c5.large", 60.0)]);
        let mut streams = World::new(&[("ml.m5.large", 0.5), ("ml.c5.large", 0.5)]);
        let mut joint = Joint::new(vec![search(Axis::Rate, 50.0), search(Axis::Concurrency, 4.0)], prices());
        let conclusion = run(&mut joint, &mut rate, &mut streams);
        assert_eq!(conclusion.recommendation, None);
    }
}
