//! One process's share of a load step run by several (`--shard i/N`):
//! shard i of N offers rate/N, and its evenly spaced arrivals are shifted by
//! (i−1)/N of a gap, so that the N schedules interleave into the whole one
//! (with Poisson arrivals each shard draws its own stream, and independent
//! Poisson streams add up to one of the whole rate).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Shard `index` (from 1) of `count`; 1/1 is the whole step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 || index == 0 || index > count {
            return Err(format!("shard {index}/{count}: use i/N with 1 ≤ i ≤ N, e.g. 1/4"));
        }
        Ok(Shard { index, count })
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// This shard's part of the rate.
    pub fn share(&self) -> f64 {
        1.0 / self.count as f64
    }

    /// Where this shard's evenly spaced arrivals start, in gaps of its own schedule.
    pub fn phase(&self) -> f64 {
        (self.index - 1) as f64 / self.count as f64
    }

    /// This shard's seed for Poisson arrivals: its own stream.
    pub fn seed(&self, seed: u64) -> u64 {
        seed.wrapping_add((self.index - 1) as u64 * 0x9E37_79B9_7F4A_7C15)
    }

    /// A file name stem that sorts shards of one step together.
    pub fn file_stem(&self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(text: &str) -> Result<Shard, String> {
        let bad = || format!("`{text}` is not a shard: use i/N with 1 ≤ i ≤ N, e.g. 1/4");
        let (index, count) = text.trim().split_once('/').ok_or_else(bad)?;
        let (index, count) = (index.trim().parse().map_err(|_| bad())?, count.trim().parse().map_err(|_| bad())?);
        Shard::new(index, count).map_err(|_| bad())
    }
}

impl TryFrom<String> for Shard {
    type Error = String;
    fn try_from(text: String) -> Result<Shard, String> {
        text.parse()
    }
}

impl From<Shard> for String {
    fn from(shard: Shard) -> String {
        shard.to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::load::{Arrivals, RateProfile, Schedule};

    #[test]
    fn shards_read_as_i_of_n_and_refuse_the_impossible() {
        assert_eq!("2/4".parse::<Shard>().unwrap(), Shard { index: 2, count: 4 });
        for bad in ["3/2", "0/2", "1/0", "2", "a/b", "1/2/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_shards_of_a_uniform_schedule_interleave_into_the_whole() {
        let whole = RateProfile::new(300.0, Some((60.0, Duration::from_secs(2))), Duration::from_secs(4));
        let due = |schedule: Schedule| {
            let mut schedule = schedule;
            std::iter::from_fn(move || schedule.claim().map(|(_, t)| t)).collect::<Vec<f64>>()
        };
        let all = due(Schedule::new(whole, Arrivals::Uniform, 1));
        let mut union: Vec<f64> = (1..=3)
            .flat_map(|i| {
                let shard = Shard::new(i, 3).unwrap();
                due(Schedule::new(whole.scaled(shard.share()), Arrivals::Uniform, 1).with_phase(shard.phase()))
            })
            .collect();
        union.sort_by(f64::total_cmp);
        assert_eq!(union.len(), all.len());
        assert!(union.iter().zip(&all).all(|(a, b)| (a - b).abs() < 1e-9), "the union is the whole schedule");
    }
}
