//! A search on each axis the peak names — the rate, and streams in flight —
//! run one after the other in the same run, on the same endpoints, and
//! joined: a configuration is recommended when it holds both peaks, at the
//! larger of the counts the two searches verified.

use super::{Conclusion, Next, Outcome, Recommended, Strategy, TypeSummary};
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
            let shape = shape(summary);
            let counts: Option<Vec<u32>> = conclusions.iter().map(|c| verified_count(c, &shape)).collect();
            let count = counts?.into_iter().max()?;
            let cost = self.price(&shape) * f64::from(count);
            Some((cost, Recommended { candidate: shape.with_count(count), capacity: summary.capacity? }))
        });
        joint.fold(None, |best: Option<(f64, Recommended)>, (cost, rec)| match best {
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

fn shape(summary: &TypeSummary) -> Fleet {
    Fleet::shape(summary.instance_type.clone(), summary.max_concurrent_invocations)
}

/// The count `conclusion` verified for `shape`, if it did.
fn verified_count(conclusion: &Conclusion, shape: &Fleet) -> Option<u32> {
    conclusion.types.iter().find(|t| &self::shape(t) == shape)?.verified_count
}
