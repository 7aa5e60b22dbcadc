//! When each request is due: the open-model arrival schedule.
//!
//! Request k is due at its own time whatever happened to earlier requests
//! (wrk2's rule, which keeps measurements free of coordinated omission).
//! Arrivals are evenly spaced (`uniform`, reproducible) or a Poisson process
//! (`poisson`, closer to production), optionally under a linear ramp from a
//! start rate. Both map a unit-rate arrival sequence through the inverse of
//! the cumulative rate N(t) = ∫ rate, so a ramp shapes either kind.

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Exp1};
use serde::{Deserialize, Serialize};

/// How arrivals are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrivals {
    /// Evenly spaced: request k at N⁻¹(k).
    Uniform,
    /// Exponential gaps (seeded, so a run can be repeated).
    Poisson,
}

impl std::str::FromStr for Arrivals {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "uniform" => Ok(Arrivals::Uniform),
            "poisson" => Ok(Arrivals::Poisson),
            _ => Err(format!("unknown arrivals `{s}`: use uniform or poisson")),
        }
    }
}

/// The offered rate over time: `start` rising linearly to `target` over
/// `ramp`, then `target` until `length`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateProfile {
    start: f64,
    target: f64,
    ramp: f64,
    length: f64,
}

impl RateProfile {
    /// A rate profile; rates are requests per second, `target > 0`.
    /// Without a ramp, `start` is ignored.
    pub fn new(target: f64, ramp: Option<(f64, Duration)>, length: Duration) -> RateProfile {
        assert!(target > 0.0 && target.is_finite(), "the target rate is validated before it gets here");
        let (start, ramp) = match ramp {
            Some((start, ramp)) if !ramp.is_zero() => (start.clamp(0.0, target), ramp.as_secs_f64().min(length.as_secs_f64())),
            _ => (target, 0.0),
        };
        RateProfile { start, target, ramp, length: length.as_secs_f64() }
    }

    /// Offered rate at `t` seconds.
    #[cfg(test)]
    fn rate_at(&self, t: f64) -> f64 {
        if t < self.ramp { self.start + (self.target - self.start) * t / self.ramp } else { self.target }
    }

    /// Arrivals expected in [0, t): N(t).
    pub fn cumulative(&self, t: f64) -> f64 {
        let t = t.clamp(0.0, self.length);
        if self.ramp > 0.0 && t <= self.ramp {
            self.start * t + (self.target - self.start) * t * t / (2.0 * self.ramp)
        } else {
            self.cumulative_ramp() + self.target * (t - self.ramp)
        }
    }

    fn cumulative_ramp(&self) -> f64 {
        (self.start + self.target) * self.ramp / 2.0
    }

    /// The time at which N reaches `n`: N⁻¹(n), or None past the end.
    pub fn time_of(&self, n: f64) -> Option<f64> {
        let ramp_arrivals = self.cumulative_ramp();
        let t = if n <= ramp_arrivals && self.ramp > 0.0 {
            // Solve a t² + b t - n = 0 with a = (target - start) / (2 ramp), b = start.
            let a = (self.target - self.start) / (2.0 * self.ramp);
            let b = self.start;
            if a.abs() < 1e-12 { n / b } else { (-b + (b * b + 4.0 * a * n).sqrt()) / (2.0 * a) }
        } else {
            self.ramp + (n - ramp_arrivals) / self.target
        };
        (t < self.length).then_some(t)
    }

    /// Total expected arrivals: N(length).
    pub fn total(&self) -> f64 {
        self.cumulative(self.length)
    }

    pub fn length(&self) -> Duration {
        Duration::from_secs_f64(self.length)
    }

    /// The rate reached at the end of any ramp.
    pub fn target(&self) -> f64 {
        self.target
    }

    /// The same shape at `share` of the rate (a shard's part of it).
    pub fn scaled(&self, share: f64) -> RateProfile {
        RateProfile { start: self.start * share, target: self.target * share, ..*self }
    }
}

/// Hands out request slots in order: slot k and its due time (seconds from
/// the schedule's start). The pacer thread owns it and claims slots in order.
#[derive(Debug)]
pub struct Schedule {
    profile: RateProfile,
    arrivals: Arrivals,
    next: u64,
    /// Unit-rate arrival position of the next slot.
    position: f64,
    /// Where evenly spaced arrivals start, in (0, 1] of a gap: a shard's
    /// offset in the whole schedule.
    phase: f64,
    rng: SmallRng,
}

impl Schedule {
    pub fn new(profile: RateProfile, arrivals: Arrivals, seed: u64) -> Schedule {
        Schedule { profile, arrivals, next: 0, position: 0.0, phase: 0.0, rng: SmallRng::seed_from_u64(seed) }
    }

    /// The same schedule with evenly spaced arrivals shifted by `phase` of a gap.
    pub fn with_phase(self, phase: f64) -> Schedule {
        Schedule { phase, ..self }
    }

    /// The next slot and when it is due, or None once the schedule is over.
    pub fn claim(&mut self) -> Option<(u64, f64)> {
        let position = match self.arrivals {
            Arrivals::Uniform => self.next as f64 + self.phase,
            Arrivals::Poisson => {
                let gap: f64 = Exp1.sample(&mut self.rng);
                self.position += gap;
                self.position
            }
        };
        let due = self.profile.time_of(position)?;
        let slot = self.next;
        self.next += 1;
        Some((slot, due))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(mut schedule: Schedule) -> Vec<f64> {
        std::iter::from_fn(|| schedule.claim().map(|(_, due)| due)).collect()
    }

    #[test]
    fn uniform_arrivals_are_evenly_spaced() {
        let due = all(Schedule::new(RateProfile::new(100.0, None, Duration::from_secs(2)), Arrivals::Uniform, 1));
        assert_eq!(due.len(), 200);
        assert!(due.windows(2).all(|w| ((w[1] - w[0]) - 0.01).abs() < 1e-9));
        assert_eq!(due[0], 0.0);
    }

    #[test]
    fn a_ramp_rises_linearly_to_the_target() {
        let profile = RateProfile::new(100.0, Some((20.0, Duration::from_secs(10))), Duration::from_secs(20));
        // (20 + 100) / 2 × 10 s of ramp, then 100/s for 10 s.
        assert!((profile.total() - 1600.0).abs() < 1e-9);
        let due = all(Schedule::new(profile, Arrivals::Uniform, 1));
        assert_eq!(due.len(), 1600);
        let in_first_second = due.iter().filter(|&&t| t < 1.0).count();
        let in_last_second = due.iter().filter(|&&t| t >= 19.0).count();
        assert!((23..=25).contains(&in_first_second), "{in_first_second}");
        assert_eq!(in_last_second, 100);
        for (k, t) in due.iter().enumerate().step_by(97) {
            assert!((profile.cumulative(*t) - k as f64).abs() < 1e-6, "N(t_k) = k");
        }
    }

    #[test]
    fn poisson_arrivals_average_the_rate_and_are_reproducible() {
        let make = || Schedule::new(RateProfile::new(200.0, None, Duration::from_secs(60)), Arrivals::Poisson, 42);
        let due = all(make());
        assert_eq!(due, all(make()), "same seed, same arrivals");
        let n = due.len() as f64;
        assert!((n - 12_000.0).abs() < 400.0, "about rate × length arrivals: {n}");
        let gaps: Vec<f64> = due.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        // Exponential gaps: standard deviation equals the mean.
        assert!((var.sqrt() / mean - 1.0).abs() < 0.05);
    }

    #[test]
    fn arrivals_count_from_zero_without_a_ramp() {
        let profile = RateProfile::new(50.0, None, Duration::from_secs(10));
        assert_eq!(profile.cumulative(0.0), 0.0);
        assert_eq!(profile.cumulative(1.0), 50.0);
        assert_eq!(profile.total(), 500.0);
    }

    #[test]
    fn rate_at_follows_the_ramp() {
        let profile = RateProfile::new(50.0, Some((10.0, Duration::from_secs(4))), Duration::from_secs(8));
        assert_eq!(profile.rate_at(0.0), 10.0);
        assert_eq!(profile.rate_at(2.0), 30.0);
        assert_eq!(profile.rate_at(6.0), 50.0);
    }
}
