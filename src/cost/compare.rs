//! Instances or serverless, on the same month of the user's traffic: what
//! each costs as AWS bills it, which is cheaper, and the monthly volume at
//! which the answer flips (the break-even), with both cost curves against
//! monthly volume for the report.
//!
//! Instances bill by the hour whatever the traffic: a fixed fleet sized for
//! the day's busiest hour, or — where the run computed an auto-scaling
//! minimum — each hour the instances its rate needs, never fewer than the
//! minimum. Serverless bills each request's duration by memory size, the data
//! it moves, and provisioned concurrency by the hour.

use serde::{Deserialize, Serialize};

use super::traffic::{DAYS_PER_MONTH, TrafficProfile};
use super::{HOURS_PER_MONTH, ServerlessPrices, round};
use crate::vocab::ServerlessSize;

/// An instance recommendation, as a month of traffic bills it.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceBill {
    /// $/hour of one instance.
    pub price_per_hour: f64,
    /// The rate one instance carries: what one sustained, within the sizing's margin.
    pub per_instance_tps: f64,
    /// Fewest instances: the auto-scaling minimum, or 1 for a fixed fleet.
    pub min_count: u32,
    /// Whether the fleet follows the traffic (an auto-scaling minimum was computed).
    pub scales: bool,
}

impl InstanceBill {
    fn count_for(&self, tps: f64) -> f64 {
        let needed = (tps / self.per_instance_tps * (1.0 - 1e-12)).ceil();
        needed.max(f64::from(self.min_count)).max(1.0)
    }

    /// $ for a month of `day`.
    pub fn monthly(&self, day: &TrafficProfile) -> f64 {
        if self.scales {
            day.hourly_tps.iter().map(|&tps| self.count_for(tps) * self.price_per_hour).sum::<f64>() * DAYS_PER_MONTH
        } else {
            self.count_for(day.busiest()) * self.price_per_hour * HOURS_PER_MONTH
        }
    }
}

/// A serverless recommendation, as a month of traffic bills it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerlessBill {
    pub prices: ServerlessPrices,
    pub size: ServerlessSize,
    /// Billed duration of one request (the model's time), seconds.
    pub seconds_per_request: f64,
    /// Bytes one request moves in and out.
    pub bytes_per_request: f64,
}

impl ServerlessBill {
    /// $ for a month of `day`: provisioned concurrency for every hour, and
    /// each hour's requests — those the provisioned workers can carry at its
    /// compute rate, the rest on demand.
    pub fn monthly(&self, day: &TrafficProfile) -> f64 {
        let standing = self.prices.standing_per_hour(&self.size) * HOURS_PER_MONTH;
        let provisioned = f64::from(self.size.provisioned().unwrap_or(0));
        let hours: f64 = day
            .hourly_tps
            .iter()
            .map(|&tps| {
                let busy_workers = tps * self.seconds_per_request;
                let share = if busy_workers > 0.0 { (provisioned / busy_workers).min(1.0) } else { 1.0 };
                let requests = tps * 3600.0 * DAYS_PER_MONTH;
                self.prices.requests(&self.size, requests, self.seconds_per_request, self.bytes_per_request, share)
            })
            .sum();
        standing + hours
    }
}

/// Which kind an answer names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Instances,
    Serverless,
}

/// One point of both cost curves.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub requests_per_month: f64,
    pub instances: f64,
    pub serverless: f64,
}

/// Instances against serverless on the user's month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The traffic profile, in words.
    pub traffic: String,
    pub requests_per_month: f64,
    pub instances_per_month: f64,
    pub serverless_per_month: f64,
    /// The cheaper kind at this traffic.
    pub cheaper: Kind,
    /// The monthly volume (same daily shape) where the cheaper kind changes,
    /// nearest the user's; None when it does not change from a thousandth
    /// to a thousand times the volume.
    pub break_even_requests_per_month: Option<f64>,
    /// Both curves from a hundredth to a hundred times the volume.
    pub curve: Vec<CurvePoint>,
}

/// The volumes searched for a break-even, relative to the user's.
const SEARCH_DECADES: f64 = 3.0;
const CURVE_DECADES: f64 = 2.0;
const CURVE_POINTS: usize = 41;

/// Compares both kinds on `day`.
pub fn compare(day: &TrafficProfile, instances: &InstanceBill, serverless: &ServerlessBill) -> Comparison {
    let at = |factor: f64| {
        let scaled = day.scaled(factor);
        CurvePoint {
            requests_per_month: scaled.monthly_requests(),
            instances: instances.monthly(&scaled),
            serverless: serverless.monthly(&scaled),
        }
    };
    let here = at(1.0);
    let curve = log_grid(CURVE_DECADES, CURVE_POINTS).map(at).collect();
    let cheaper = if here.serverless < here.instances { Kind::Serverless } else { Kind::Instances };
    Comparison {
        traffic: day.description.clone(),
        requests_per_month: round(here.requests_per_month, 0),
        instances_per_month: round(here.instances, 2),
        serverless_per_month: round(here.serverless, 2),
        cheaper,
        break_even_requests_per_month: break_even(&|f| at(f).serverless - at(f).instances)
            .map(|f| round(day.monthly_requests() * f, 0)),
        curve,
    }
}

/// `points` factors spread evenly on a log scale over ± `decades` around 1.
fn log_grid(decades: f64, points: usize) -> impl Iterator<Item = f64> {
    let step = 2.0 * decades / (points - 1) as f64;
    (0..points).map(move |i| 10f64.powf(-decades + step * i as f64))
}

/// The factor nearest 1 (on a log scale) where `diff` changes sign, refined
/// by bisection; None when it never does within the searched range.
fn break_even(diff: &dyn Fn(f64) -> f64) -> Option<f64> {
    let grid: Vec<f64> = log_grid(SEARCH_DECADES, 121).collect();
    let signs: Vec<bool> = grid.iter().map(|&f| diff(f) < 0.0).collect();
    let crossing = (1..grid.len()).filter(|&i| signs[i] != signs[i - 1]).min_by(|&a, &b| {
        let distance = |i: usize| (grid[i - 1] * grid[i]).sqrt().ln().abs();
        distance(a).total_cmp(&distance(b))
    })?;
    let (mut low, mut high) = (grid[crossing - 1], grid[crossing]);
    let low_sign = signs[crossing - 1];
    for _ in 0..60 {
        let mid = (low * high).sqrt();
        if (diff(mid) < 0.0) == low_sign {
            low = mid;
        } else {
            high = mid;
        }
    }
    Some((low * high).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::MemorySize;

    fn prices() -> ServerlessPrices {
        ServerlessPrices {
            as_of: None,
            compute_per_gb_second: 0.00002,
            provisioned_per_gb_hour: 0.01728,
            provisioned_compute_per_gb_second: 0.000014,
            data_per_gb: 0.016,
        }
    }

    fn serverless(provisioned: Option<u32>) -> ServerlessBill {
        let size = ServerlessSize::new(MemorySize::try_from(2048).unwrap(), 10, provisioned).unwrap();
        ServerlessBill { prices: prices(), size, seconds_per_request: 0.05, bytes_per_request: 1000.0 }
    }

    fn fleet(scales: bool) -> InstanceBill {
        InstanceBill { price_per_hour: 0.115, per_instance_tps: 50.0, min_count: 1, scales }
    }

    #[test]
    fn serverless_bills_gb_seconds_data_and_provisioned_hours() {
        let day = TrafficProfile::parse("peak-hours=0,off-peak-tps=1", 10.0).unwrap();
        let requests = day.monthly_requests();
        let expected = requests * 0.05 * 2.0 * 0.00002 + requests * 1000.0 / 1e9 * 0.016;
        assert!((serverless(None).monthly(&day) - expected).abs() < 1e-9);
        // Two provisioned 2 GB workers kept all month carry all of 1 TPS × 50 ms.
        let provisioned = 2.0 * 2.0 * 0.01728 * HOURS_PER_MONTH + requests * 0.05 * 2.0 * 0.000014 + requests * 1e-6 * 0.016;
        assert!((serverless(Some(2)).monthly(&day) - provisioned).abs() < 1e-6);
    }

    #[test]
    fn a_fixed_fleet_bills_its_busiest_hour_all_month_and_a_scaling_one_follows_the_day() {
        let day = TrafficProfile::parse("peak-hours=6,off-peak-tps=10", 100.0).unwrap();
        assert!((fleet(false).monthly(&day) - 2.0 * 0.115 * 730.0).abs() < 1e-9);
        let scaling = (6.0 * 2.0 + 18.0 * 1.0) * 0.115 * 730.0 / 24.0;
        assert!((fleet(true).monthly(&day) - scaling).abs() < 1e-9);
    }

    #[test]
    fn low_traffic_is_cheaper_serverless_high_traffic_on_instances_and_the_break_even_sits_between() {
        // 1 TPS all day: 2.6 M requests a month, $5.3 serverless against $84 for an instance.
        let low = TrafficProfile::parse("peak-hours=24,off-peak-tps=0", 1.0).unwrap();
        let c = compare(&low, &fleet(false), &serverless(None));
        assert_eq!(c.cheaper, Kind::Serverless);
        let even = c.break_even_requests_per_month.expect("the curves cross");
        assert!(even > c.requests_per_month, "{c:?}");
        // At the break-even both cost the same (within the bisection's precision).
        let factor = even / low.monthly_requests();
        let (i, s) = (fleet(false).monthly(&low.scaled(factor)), serverless(None).monthly(&low.scaled(factor)));
        assert!((i - s).abs() / i < 0.02, "instances {i} serverless {s}");
        let high = low.scaled(even / low.monthly_requests() * 1.5);
        assert_eq!(compare(&high, &fleet(false), &serverless(None)).cheaper, Kind::Instances);
        assert_eq!(c.curve.len(), CURVE_POINTS);
        assert!(c.curve.windows(2).all(|w| w[0].requests_per_month < w[1].requests_per_month));
    }
}
