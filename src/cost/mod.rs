//! Cost: on-demand prices per region (`resources/cost/<region>.json`, or a
//! `--cost-file`), what a configuration costs per hour, per month and per
//! million inferences, and what the sizing run itself spent; serverless
//! prices, the user's daily traffic ([`traffic`]) and instances against
//! serverless on the same month ([`compare`]).

pub mod compare;
pub mod live;
pub mod traffic;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::InstanceType;
use crate::vocab::{Candidate, Fleet, ServerlessSize};

/// Hours in a month, as AWS's pricing pages count them.
pub const HOURS_PER_MONTH: f64 = 730.0;

/// The price files shipped with perfsize.
const SHIPPED: [(&str, &str); 7] = [
    ("us-east-1", include_str!("../../resources/cost/us-east-1.json")),
    ("us-east-2", include_str!("../../resources/cost/us-east-2.json")),
    ("us-west-2", include_str!("../../resources/cost/us-west-2.json")),
    ("eu-west-1", include_str!("../../resources/cost/eu-west-1.json")),
    ("eu-central-1", include_str!("../../resources/cost/eu-central-1.json")),
    ("ap-northeast-1", include_str!("../../resources/cost/ap-northeast-1.json")),
    ("ap-southeast-2", include_str!("../../resources/cost/ap-southeast-2.json")),
];

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CostError {
    #[error("no prices shipped for region {region} (perfsize ships {}); pass --cost-file FILE", shipped_regions())]
    UnknownRegion { region: String },
    #[error("cannot read cost file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error(
        "cost file {path} is neither perfsize's format ({{\"prices_per_hour\": {{…}}}}) nor a flat {{\"ml.m5.large\": 0.115}} map: {reason}"
    )]
    Malformed { path: String, reason: String },
    #[error("no price for {instance_type} in {origin}; add it to a --cost-file")]
    NoPrice { instance_type: String, origin: String },
    #[error(
        "no serverless prices in {origin}; add a \"serverless\" section to a --cost-file (see resources/cost/us-east-1.json)"
    )]
    NoServerlessPrices { origin: String },
}

impl crate::error::HasKind for CostError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Usage
    }
}

fn shipped_regions() -> String {
    SHIPPED.iter().map(|(r, _)| *r).collect::<Vec<_>>().join(", ")
}

#[derive(Debug, Deserialize)]
struct PriceFile {
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    as_of: Option<String>,
    prices_per_hour: BTreeMap<String, f64>,
    #[serde(default)]
    s3: Option<S3Prices>,
    #[serde(default)]
    serverless: Option<ServerlessPrices>,
}

/// SageMaker Serverless Inference's prices, as AWS bills it: compute by
/// memory size × request duration; provisioned concurrency by the hour
/// it is kept (whether used or not) plus its own, lower compute rate; and
/// the data processed in and out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerlessPrices {
    /// When these figures were read, if the file says.
    #[serde(default)]
    pub as_of: Option<String>,
    /// On-demand compute, $ per GB-second of request duration.
    pub compute_per_gb_second: f64,
    /// Provisioned concurrency kept warm, $ per GB-hour.
    pub provisioned_per_gb_hour: f64,
    /// Compute of requests served by provisioned workers, $ per GB-second.
    pub provisioned_compute_per_gb_second: f64,
    /// Data processed (request plus response), $ per GB.
    pub data_per_gb: f64,
}

impl ServerlessPrices {
    /// $ per hour that `size` bills with no traffic at all: its provisioned concurrency.
    pub fn standing_per_hour(&self, size: &ServerlessSize) -> f64 {
        f64::from(size.provisioned().unwrap_or(0)) * size.memory().gb() * self.provisioned_per_gb_hour
    }

    /// What `requests` requests cost on `size` when each runs `seconds` and
    /// moves `bytes` in and out; those within the provisioned workers' reach
    /// (`provisioned_share`) at the provisioned compute rate.
    pub fn requests(&self, size: &ServerlessSize, requests: f64, seconds: f64, bytes: f64, provisioned_share: f64) -> f64 {
        let gb_seconds = requests * seconds * size.memory().gb();
        let share = if size.provisioned().is_some() { provisioned_share.clamp(0.0, 1.0) } else { 0.0 };
        let compute = gb_seconds * (share * self.provisioned_compute_per_gb_second + (1.0 - share) * self.compute_per_gb_second);
        compute + requests * bytes / 1e9 * self.data_per_gb
    }
}
/// S3 Standard's prices: what an asynchronous request's objects cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct S3Prices {
    /// PUT (and COPY, POST, LIST) requests, $ per 1,000.
    pub put_per_1000: f64,
    /// GET and HEAD requests, $ per 1,000.
    pub get_per_1000: f64,
    pub storage_per_gb_month: f64,
}

impl Default for S3Prices {
    /// us-east-1's, for a cost file that names none.
    fn default() -> S3Prices {
        S3Prices { put_per_1000: 0.005, get_per_1000: 0.0004, storage_per_gb_month: 0.023 }
    }
}

/// $/instance-hour for each priced type, and S3's prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    /// Where the prices came from (region file or path).
    pub origin: String,
    pub as_of: Option<String>,
    pub prices: BTreeMap<String, f64>,
    #[serde(default)]
    pub s3: S3Prices,
    /// Serverless Inference's prices, when the file has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverless: Option<ServerlessPrices>,
}

/// The S3 work of one asynchronous request, on average: what its cost is
/// made of besides the endpoint's time.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct S3Work {
    pub puts: f64,
    /// GET and HEAD requests (polling is most of them).
    pub gets: f64,
    /// Gigabytes stored × seconds held.
    pub gb_seconds: f64,
}

/// What asynchronous requests cost, per 1,000, as the async guide computes
/// it: endpoint time + S3 requests + storage for the time held.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RequestCost {
    pub endpoint: f64,
    pub s3_requests: f64,
    pub s3_storage: f64,
    pub total: f64,
}

impl PriceTable {
    /// The prices shipped for `region`.
    pub fn shipped(region: &str) -> Result<PriceTable, CostError> {
        let (_, text) =
            SHIPPED.iter().find(|(r, _)| *r == region).ok_or_else(|| CostError::UnknownRegion { region: region.to_string() })?;
        PriceTable::parse(text, &format!("resources/cost/{region}.json"))
    }

    /// A cost file: perfsize's format, or perfsizesagemaker's flat map.
    pub fn load(path: &Path) -> Result<PriceTable, CostError> {
        let origin = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| CostError::Unreadable { path: origin.clone(), reason: e.to_string() })?;
        PriceTable::parse(&text, &origin)
    }

    fn parse(text: &str, origin: &str) -> Result<PriceTable, CostError> {
        let malformed = |reason: String| CostError::Malformed { path: origin.to_string(), reason };
        let (prices, as_of, region, s3, serverless) = match serde_json::from_str::<PriceFile>(text) {
            Ok(file) => (file.prices_per_hour, file.as_of, file.region, file.s3.unwrap_or_default(), file.serverless),
            Err(_) => (
                serde_json::from_str::<BTreeMap<String, f64>>(text).map_err(|e| malformed(e.to_string()))?,
                None,
                None,
                S3Prices::default(),
                None,
            ),
        };
        if let Some(s) = &serverless {
            let figures =
                [s.compute_per_gb_second, s.provisioned_per_gb_hour, s.provisioned_compute_per_gb_second, s.data_per_gb];
            if figures.iter().any(|p| !(p.is_finite() && *p >= 0.0)) {
                return Err(malformed(format!("serverless prices must be numbers of at least 0, got {s:?}")));
            }
        }
        if let Some((name, price)) = prices.iter().find(|(_, p)| !(p.is_finite() && **p > 0.0)) {
            return Err(malformed(format!("the price of {name} must be a positive number, got {price}")));
        }
        let origin = match region {
            Some(region) if !origin.contains(&region) => format!("{origin} ({region})"),
            _ => origin.to_string(),
        };
        Ok(PriceTable { origin, as_of, prices, s3, serverless })
    }

    /// $/hour of one instance of `instance_type`.
    pub fn hourly(&self, instance_type: &InstanceType) -> Result<f64, CostError> {
        self.prices
            .get(instance_type.as_str())
            .copied()
            .ok_or_else(|| CostError::NoPrice { instance_type: instance_type.to_string(), origin: self.origin.clone() })
    }

    /// Which prices these are and as of when, for summaries and reports:
    /// "resources/cost/us-west-2.json, as of 2026-11-22 (serverless as of 2026-11-29)".
    pub fn describe(&self) -> String {
        let mut text = self.origin.clone();
        if let Some(date) = &self.as_of {
            text.push_str(&format!(", as of {date}"));
        }
        if let Some(date) = self.serverless.as_ref().and_then(|s| s.as_of.as_ref()) {
            text.push_str(&format!(" (serverless as of {date})"));
        }
        text
    }

    /// Serverless Inference's prices, or why there are none.
    pub fn serverless(&self) -> Result<&ServerlessPrices, CostError> {
        self.serverless.as_ref().ok_or_else(|| CostError::NoServerlessPrices { origin: self.origin.clone() })
    }

    /// $/hour `candidate` bills while it is deployed, with no traffic:
    /// its instances, or a serverless variant's provisioned concurrency.
    pub fn standing_per_hour(&self, candidate: &Candidate) -> Result<f64, CostError> {
        match candidate {
            Candidate::Instances(fleet) => Ok(self.hourly(&fleet.instance_type)? * fleet.count as f64),
            Candidate::Serverless(size) => Ok(self.serverless()?.standing_per_hour(size)),
        }
    }

    /// Every type of `types` must have a price (checked before anything runs).
    pub fn check(&self, types: &[InstanceType]) -> Result<(), CostError> {
        types.iter().try_for_each(|t| self.hourly(t).map(|_| ()))
    }

    /// What a configuration costs.
    pub fn of(&self, candidate: &Fleet, peak_tps: f64) -> Result<ConfigCost, CostError> {
        let per_hour = self.hourly(&candidate.instance_type)? * candidate.count as f64;
        Ok(ConfigCost {
            per_hour: round(per_hour, 4),
            per_month: round(per_hour * HOURS_PER_MONTH, 2),
            per_million_at_peak: round(per_hour / (peak_tps * 3600.0) * 1e6, 4),
        })
    }

    /// What 1,000 asynchronous requests cost on `candidate` serving `rate`
    /// requests per second, each doing `work` in S3.
    pub fn per_thousand_requests(&self, candidate: &Fleet, rate: f64, work: &S3Work) -> Result<RequestCost, CostError> {
        let per_hour = self.hourly(&candidate.instance_type)? * candidate.count as f64;
        let endpoint = per_hour / (rate * 3600.0) * 1000.0;
        let s3_requests = work.puts * self.s3.put_per_1000 + work.gets * self.s3.get_per_1000;
        let month_seconds = HOURS_PER_MONTH * 3600.0;
        let s3_storage = work.gb_seconds / month_seconds * self.s3.storage_per_gb_month * 1000.0;
        // Not rounded: storage for seconds is a millionth of a cent, and still a part.
        Ok(RequestCost { endpoint, s3_requests, s3_storage, total: endpoint + s3_requests + s3_storage })
    }

    /// What the sizing run spent on endpoints, as of `now`.
    pub fn run_cost(&self, usage: &[Usage], now: DateTime<Utc>) -> RunCost {
        let mut cost = RunCost::default();
        for u in usage {
            let hours = u.instance_hours(now);
            cost.endpoint_hours += hours;
            cost.dollars += hours * self.hourly(&u.instance_type).unwrap_or(0.0);
        }
        cost.endpoint_hours = round(cost.endpoint_hours, 4);
        cost.dollars = round(cost.dollars, 4);
        cost
    }

    /// What was spent on endpoints from `since` to `now` (one stage of a run).
    pub fn cost_since(&self, usage: &[Usage], since: DateTime<Utc>, now: DateTime<Utc>) -> RunCost {
        let clipped: Vec<Usage> = usage
            .iter()
            .filter(|u| u.to.is_none_or(|to| to > since))
            .map(|u| Usage { from: u.from.max(since), ..u.clone() })
            .collect();
        let mut cost = self.run_cost(&clipped, now);
        cost.wall_seconds = round((now - since).num_milliseconds().max(0) as f64 / 1000.0, 3);
        cost
    }
}

/// What a configuration costs to run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConfigCost {
    pub per_hour: f64,
    pub per_month: f64,
    /// Dollars per million inferences when serving the peak rate all the time.
    pub per_million_at_peak: f64,
}

/// What a sizing run spent.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RunCost {
    /// Instance-hours of every endpoint the run deployed (named for what
    /// perfsizesagemaker users call them; an endpoint of 2 instances for an
    /// hour counts 2).
    pub endpoint_hours: f64,
    pub dollars: f64,
    pub wall_seconds: f64,
}

/// One period during which instances were billed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub endpoint: String,
    pub instance_type: InstanceType,
    pub count: u32,
    pub from: DateTime<Utc>,
    pub to: Option<DateTime<Utc>>,
}

impl Usage {
    pub fn instance_hours(&self, now: DateTime<Utc>) -> f64 {
        let end = self.to.unwrap_or(now);
        (end - self.from).num_milliseconds().max(0) as f64 / 3_600_000.0 * self.count as f64
    }
}

/// What a run has spent so far, across all its sessions: `usage.json` in the
/// run directory, rewritten as each step ends and when the run concludes, so
/// that `--resume` and the report of a killed run know it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spend {
    pub written_at: DateTime<Utc>,
    /// Up to `written_at`; `wall_seconds` sums the sessions.
    pub run_cost: RunCost,
    pub usage: Vec<Usage>,
}

/// `x` to `digits` decimals: how costs are written.
pub fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_costs_what_billed_after_it_began() {
        let table = PriceTable::shipped("us-west-2").unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-11-29T00:00:00Z").unwrap().with_timezone(&Utc);
        let h = chrono::Duration::hours;
        let period = |from, to: Option<DateTime<Utc>>, count| Usage {
            endpoint: "e".into(),
            instance_type: "ml.m5.large".parse().unwrap(),
            count,
            from,
            to,
        };
        let usage = [period(t0, Some(t0 + h(1)), 1), period(t0 + h(1), Some(t0 + h(3)), 2), period(t0 + h(3), None, 3)];
        let stage = table.cost_since(&usage, t0 + h(2), t0 + h(4));
        assert_eq!(stage.endpoint_hours, 2.0 + 3.0, "an hour of 2, then an hour of 3");
        assert_eq!(stage.wall_seconds, 7200.0);
    }

    #[test]
    fn shipped_prices_cover_the_common_types() {
        let table = PriceTable::shipped("us-west-2").unwrap();
        assert_eq!(table.hourly(&"ml.m5.large".parse().unwrap()).unwrap(), 0.115);
        assert!(table.as_of.is_some());
        assert_eq!(
            table.describe(),
            "resources/cost/us-west-2.json, as of 2026-11-22 (serverless as of 2026-11-29)",
            "which prices, and as of when"
        );
        let err = PriceTable::shipped("mars-north-1").unwrap_err().to_string();
        assert!(err.contains("--cost-file"), "{err}");
    }

    #[test]
    fn a_configuration_costs_per_hour_month_and_million() {
        let table = PriceTable::shipped("us-west-2").unwrap();
        let cost = table.of(&Fleet::new("ml.m5.large".parse().unwrap(), 2), 100.0).unwrap();
        assert_eq!(cost.per_hour, 0.23);
        assert_eq!(cost.per_month, 167.9);
        // $0.23 buys 360,000 inferences at 100/s.
        assert!((cost.per_million_at_peak - 0.6389).abs() < 1e-4, "{cost:?}");
    }

    #[test]
    fn an_async_request_costs_endpoint_time_s3_requests_and_storage() {
        let table = PriceTable::shipped("us-east-1").unwrap();
        let m5 = Fleet::new("ml.m5.large".parse().unwrap(), 1);
        // A PUT, three HEADs and a GET; 2 × 1 MB held for 10 s.
        let work = S3Work { puts: 1.0, gets: 4.0, gb_seconds: 0.002 * 10.0 };
        let cost = table.per_thousand_requests(&m5, 10.0, &work).unwrap();
        let hourly = table.hourly(&m5.instance_type).unwrap();
        assert!((cost.endpoint - hourly / 36.0).abs() < 1e-6, "{cost:?}");
        assert!((cost.s3_requests - (0.005 + 4.0 * 0.0004)).abs() < 1e-9, "{cost:?}");
        assert!(cost.s3_storage > 0.0 && cost.s3_storage < 1e-5, "seconds of storage cost next to nothing: {cost:?}");
        assert!((cost.total - (cost.endpoint + cost.s3_requests + cost.s3_storage)).abs() < 1e-5);
        assert_eq!(PriceTable::shipped("eu-central-1").unwrap().s3.put_per_1000, 0.0054);
    }

    #[test]
    fn perfsizesagemaker_cost_files_are_read_too() {
        let dir = std::env::temp_dir().join(format!("perfsize-cost-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let flat = dir.join("flat.json");
        std::fs::write(&flat, r#"{"ml.m5.large": 0.2}"#).unwrap();
        assert_eq!(PriceTable::load(&flat).unwrap().prices["ml.m5.large"], 0.2);
        let bad = dir.join("bad.json");
        std::fs::write(&bad, r#"{"ml.m5.large": -1}"#).unwrap();
        assert!(PriceTable::load(&bad).unwrap_err().to_string().contains("positive"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn usage_counts_instance_hours() {
        let from = Utc::now() - chrono::Duration::minutes(30);
        let usage = Usage {
            endpoint: "e".into(),
            instance_type: "ml.m5.large".parse().unwrap(),
            count: 2,
            from,
            to: Some(from + chrono::Duration::minutes(15)),
        };
        assert!((usage.instance_hours(Utc::now()) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn the_run_costs_its_instance_hours() {
        let table = PriceTable::shipped("us-west-2").unwrap();
        let now = Utc::now();
        let usage = vec![Usage {
            endpoint: "e".into(),
            instance_type: "ml.m5.large".parse().unwrap(),
            count: 2,
            from: now - chrono::Duration::minutes(30),
            to: None,
        }];
        let cost = table.run_cost(&usage, now);
        assert_eq!(cost.endpoint_hours, 1.0);
        assert_eq!(cost.dollars, 0.115);
    }
}
