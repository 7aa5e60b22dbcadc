//! The main job, `perfsize --peak-tps … --type-walk …`, and `perfsize plan`
//! (the same flags; prints what the run may cost and deploys nothing).

mod output;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::args::{
    AsyncArgs, AwsArgs, RequirementArgs, SimArgs, StreamArgs, TrafficArgs, parse_duration, parse_minutes, parse_non_negative,
    parse_positive,
};
use super::{Failure, exit, simulated_model};
use crate::catalog::InstanceType;
use crate::cost::PriceTable;
use crate::cost::traffic::TrafficProfile;
use crate::engine::Pace;
use crate::engine::sizing::{self, Earlier, RunSetup};
use crate::environment::{ModelSource, RunId};
use crate::plan::{
    AWS_SERVERLESS_IDLE, Asynchronous, DEFAULT_MAX_CONCURRENCY_WALK, Durations, Peak, Plan, PlanParts, ScalingProcedure,
    ScalingTest, Search, ServerlessWalk,
};
use crate::record::{RunDir, RunLock};
use crate::s3::Buckets;
use crate::scaling::ScalingMetric;
use crate::step::StrategyKind;
use crate::vocab::{MAX_CONCURRENCY, MemorySize};

/// `--prices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Prices {
    Shipped,
    Live,
}

/// One entry of `--type-walk`: an instance type, or `serverless:<MB>`.
#[derive(Debug, Clone, PartialEq)]
pub enum WalkEntry {
    Instances(InstanceType),
    Serverless(MemorySize),
}

fn parse_walk_entry(text: &str) -> Result<WalkEntry, String> {
    match text.trim().strip_prefix("serverless:") {
        Some(memory) => parse_memory(memory).map(WalkEntry::Serverless),
        None if text.trim() == "serverless" => {
            Err("`serverless` needs a memory size: serverless:2048 (MB: 1024, 2048, … 6144)".to_string())
        }
        None => text.parse::<InstanceType>().map(WalkEntry::Instances).map_err(|e| e.to_string()),
    }
}

fn parse_memory(text: &str) -> Result<MemorySize, String> {
    let mb =
        text.trim().parse::<u32>().map_err(|_| format!("`{text}` is not a serverless memory size in MB (1024, 2048, … 6144)"))?;
    MemorySize::try_from(mb).map_err(|e| e.to_string())
}

fn parse_max_concurrency(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Ok(n),
        _ => Err(format!("`{text}` is not a serverless max concurrency (a whole number from 1 to {MAX_CONCURRENCY})")),
    }
}

fn parse_strategy(text: &str) -> Result<StrategyKind, String> {
    text.parse()
}

/// A parser of whole numbers ≥ 1 of `what`.
fn parse_count_of(what: &'static str) -> impl Fn(&str) -> Result<u32, String> + Clone {
    move |text| match text.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{text}` is not a number of {what} (a whole number ≥ 1)")),
    }
}

fn parse_count(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{text}` is not an instance count (a whole number ≥ 1)")),
    }
}

#[derive(Debug, Clone, Args)]
pub struct SizingArgs {
    /// Highest rate the endpoint must serve, requests per second.
    #[arg(long, alias = "peak_tps", value_parser = parse_positive, value_name = "TPS")]
    pub peak_tps: Option<f64>,
    /// Streaming: most streams the endpoint must hold in flight at once. The search then walks
    /// streams per instance (closed loops); with --peak-tps as well, both are sized in one run.
    #[arg(long, value_name = "STREAMS", requires = "stream", value_parser = parse_count_of("streams"))]
    pub peak_concurrency: Option<u32>,
    /// Streams per instance the concurrency search may try, comma separated (default: every
    /// whole number up to what holds --peak-concurrency alone).
    #[arg(long, value_delimiter = ',', value_name = "STREAMS", requires = "peak_concurrency", value_parser = parse_count_of("streams"))]
    pub concurrency_walk: Vec<u32>,
    /// Instance types to try, comma separated; `serverless:<MB>` adds a serverless memory size to the same walk.
    #[arg(long, alias = "type_walk", value_parser = parse_walk_entry, value_delimiter = ',', value_name = "TYPES")]
    pub type_walk: Vec<WalkEntry>,
    /// Serverless memory sizes to try (MB: 1024, 2048, … 6144), comma separated, beside --type-walk.
    #[arg(long, value_parser = parse_memory, value_delimiter = ',', value_name = "MB")]
    pub serverless_memory_walk: Vec<MemorySize>,
    /// Serverless MaxConcurrency: one value, or the values to search (1–200), comma separated (default 1,2,5,10,20,50,100,200).
    #[arg(long, value_parser = parse_max_concurrency, value_delimiter = ',', value_name = "N")]
    pub serverless_max_concurrency: Vec<u32>,
    /// Serverless ProvisionedConcurrency of every serverless candidate (at most its max concurrency; default none).
    #[arg(long, value_parser = parse_max_concurrency, value_name = "N")]
    pub serverless_provisioned_concurrency: Option<u32>,
    /// Your traffic over a day, on which instances and serverless are costed for the same month:
    /// `peak-hours=H,off-peak-tps=R` (H hours at --peak-tps, R TPS the rest), or a CSV file of
    /// `hour,requests` (requests per hour, hours 0–23). Default: the peak all day.
    #[arg(long, value_name = "PROFILE")]
    pub traffic_profile: Option<String>,
    /// How long serverless workers idle before the cold-start test's burst (default: 6m against AWS; the simulator profile's idle time, plus a second, with --simulate).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub serverless_idle: Option<Duration>,
    /// Instance counts allowed, comma separated (perfsize strategy: the counts to try).
    #[arg(long, alias = "count_walk", value_parser = parse_count, value_delimiter = ',', value_name = "COUNTS")]
    pub count_walk: Vec<u32>,
    /// Rates allowed, comma separated (perfsize strategy: the rates to climb).
    #[arg(long, alias = "tps_walk", value_parser = parse_positive, value_delimiter = ',', value_name = "RATES")]
    pub tps_walk: Vec<f64>,
    /// How to search.
    #[arg(long, default_value = "adaptive", value_parser = parse_strategy, value_name = "adaptive|perfsize")]
    pub strategy: StrategyKind,
    /// First rate the adaptive search tries on one instance (default: can one instance take the peak? — at
    /// peak ÷ --max-utilization; with --tps-walk, the walk's rate nearest the peak).
    #[arg(long, value_parser = parse_positive, value_name = "TPS")]
    pub start_tps: Option<f64>,
    /// Precision of the adaptive capacity search, as a fraction (0.05 = 5 %).
    #[arg(long, value_parser = parse_positive, default_value = "0.05")]
    pub tps_resolution: f64,
    #[command(flatten)]
    pub requirements: RequirementArgs,
    /// Length of each search step, after the warm-up (default 60s; 5s with --simulate).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<Duration>,
    /// perfsizesagemaker's --duration_minutes.
    #[arg(long = "duration_minutes", value_parser = parse_minutes, hide = true, conflicts_with = "duration")]
    pub duration_minutes: Option<Duration>,
    /// Length of an endurance run at peak, after its ramp (default 10m; 20s with --simulate).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub endurance_duration: Option<Duration>,
    #[arg(long = "endurance_steady_state_minutes", value_parser = parse_minutes, hide = true, conflicts_with = "endurance_duration")]
    pub endurance_minutes: Option<Duration>,
    /// Ramp up to the peak at the start of an endurance run.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub endurance_ramp: Option<Duration>,
    /// Test the recommended auto-scaling policy: from a minimum count, traffic ramps from 0 to the peak over this long, then holds it; the lowest minimum that meets the requirements is found by bisection.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub scaling_ramp: Option<Duration>,
    /// perfsizesagemaker's --endurance_ramp_minutes: above 0, it turns the auto-scaling test on, as it does there.
    #[arg(long = "endurance_ramp_minutes", value_parser = parse_minutes, hide = true, conflicts_with = "scaling_ramp")]
    pub endurance_ramp_minutes: Option<Duration>,
    /// How long the auto-scaling test holds the peak after its ramp (default: --endurance-duration).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub ramp_hold: Option<Duration>,
    /// Auto-scaling test: also jump to the peak at once (a spike), at the minimum the ramp found.
    #[arg(long)]
    pub spike: bool,
    /// What the tested policy tracks: invocations (per instance per minute, the default), concurrency (high-resolution, reacts sooner), or both to compare; with --async, backlog (per instance, the only one).
    #[arg(long, value_delimiter = ',', value_parser = |s: &str| s.parse::<ScalingMetric>(), value_name = "invocations|concurrency|backlog")]
    pub scaling_metric: Vec<ScalingMetric>,
    /// The tested policy's ScaleOutCooldown.
    #[arg(long, value_parser = parse_duration, default_value = "60s", value_name = "DURATION")]
    pub scale_out_cooldown: Duration,
    /// The tested policy's ScaleInCooldown.
    #[arg(long, value_parser = parse_duration, default_value = "300s", value_name = "DURATION")]
    pub scale_in_cooldown: Duration,
    /// How trials run: perfsize's, or perfsizesagemaker's (every trial to its end) for `perfsize bench scaling`.
    #[arg(long, hide = true, default_value = "perfsize", value_parser = |s: &str| s.parse::<ScalingProcedure>())]
    pub scaling_procedure: ScalingProcedure,
    /// Rate the endurance ramp starts from.
    #[arg(long, alias = "endurance_ramp_start_tps", value_parser = parse_non_negative, default_value = "0", value_name = "TPS")]
    pub endurance_ramp_start_tps: f64,
    /// Extra instances to try when an endurance run fails.
    #[arg(long, alias = "endurance_retries", default_value_t = 3)]
    pub endurance_retries: u32,
    /// Recommend enough instances that none runs above this share of the highest rate one sustained (adaptive strategy).
    #[arg(long, value_parser = parse_positive, default_value = "0.9", value_name = "FRACTION")]
    pub max_utilization: f64,
    /// Test up to N instance types at once, each on its own endpoint.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub parallel: u32,
    /// Auto-scaling target = max TPS per instance × 60 × this.
    #[arg(long, value_parser = parse_positive, default_value = "0.5")]
    pub safety_factor: f64,
    /// Smallest instance count of the auto-scaling policy (0, scale to zero, for --async).
    #[arg(long, default_value_t = 1)]
    pub min_instances: u32,
    /// Stop (cleanly, with a report) before the run would spend more than this many dollars.
    #[arg(long, value_parser = parse_positive, value_name = "USD")]
    pub max_test_cost: Option<f64>,
    /// Where run directories go.
    #[arg(long, alias = "perfsize_results_dir", default_value = "perfsize-results", value_name = "DIR")]
    pub results_dir: PathBuf,
    /// Continue an interrupted run with its own settings: steps already in RUN_DIR are not run again.
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Read settings from this TOML file (keys named like the long flags; flags override them).
    #[arg(long, value_name = "FILE", default_value = None, long_help = "Read settings from this TOML file: keys named like the long flags (peak-tps = 100, type-walk = [\"ml.m5.large\"], simulate = true); a flag on the command line overrides its key. Default: perfsize.toml in the working directory, if there is one.")]
    pub config: Option<PathBuf>,
    /// The effective arguments (command line and config file), filled in after parsing.
    #[arg(skip)]
    pub arguments: Vec<String>,
    /// Prices (perfsize's format or perfsizesagemaker's flat map); default: shipped for the region.
    #[arg(long, alias = "cost_file", value_name = "FILE")]
    pub cost_file: Option<PathBuf>,
    /// Where prices come from: the files shipped with perfsize (dated), or `live` from the AWS Price List API (the shipped figures where it lists none or cannot be reached).
    #[arg(long, value_enum, default_value = "shipped", conflicts_with = "cost_file")]
    pub prices: Prices,
    /// An existing SageMaker model to size (never modified or deleted).
    #[arg(long, alias = "model_name", value_name = "NAME")]
    pub model_name: Option<String>,
    /// Or: a container image to create a model from for the run (deleted at the end).
    #[arg(long, value_name = "URI", conflicts_with = "model_name")]
    pub image: Option<String>,
    /// The model artifact for --image (s3://…/model.tar.gz).
    #[arg(long, value_name = "S3_URI", requires = "image")]
    pub model_data_url: Option<String>,
    /// Execution role of a model created from --image (default: --role-arn).
    #[arg(long, value_name = "ARN", requires = "image")]
    pub execution_role_arn: Option<String>,
    /// How often to poll SageMaker while an endpoint deploys (default 15s; 100ms with --simulate).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub poll_interval: Option<Duration>,
    /// How long to wait for each step's CloudWatch figures (default 3m on AWS, 3s with --simulate);
    /// a CloudWatch that errs or is silent leaves the step without server figures, never later.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub cloudwatch_wait: Option<Duration>,
    /// How long teardown keeps retrying a deletion AWS refuses (throttled, an endpoint still updating)
    /// before it gives up, exits non-zero and lists what is left (default 1h; 2m with --simulate).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub teardown_timeout: Option<Duration>,
    /// perfsizesagemaker's flags that perfsize does not need; accepted so Jenkins jobs move over unchanged.
    #[arg(long = "host", hide = true)]
    pub legacy_host: Option<String>,
    #[arg(long = "endpoint_name", hide = true)]
    pub legacy_endpoint_name: Option<String>,
    #[arg(long = "endpoint_config_name", hide = true)]
    pub legacy_endpoint_config_name: Option<String>,
    #[arg(long = "jar_file", hide = true)]
    pub legacy_jar_file: Option<String>,
    #[arg(long = "logging_config", hide = true)]
    pub legacy_logging_config: Option<String>,
    #[command(flatten)]
    pub traffic: TrafficArgs,
    #[command(flatten)]
    pub stream: StreamArgs,
    #[command(flatten)]
    pub asynchronous: AsyncArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub sim: SimArgs,
}

struct Checked {
    plan: Plan,
    model: ModelSource,
    poll: Duration,
}

impl SizingArgs {
    fn durations(&self) -> Durations {
        let simulated = self.sim.simulate;
        let pick = |explicit: Option<Duration>, legacy: Option<Duration>, aws: u64, sim: u64| {
            explicit.or(legacy).unwrap_or(Duration::from_secs(if simulated { sim } else { aws }))
        };
        Durations {
            step: pick(self.duration, self.duration_minutes, 60, 5),
            warmup: self.traffic.warmup.unwrap_or(Duration::from_secs(if simulated { 1 } else { 10 })),
            endurance: pick(self.endurance_duration, self.endurance_minutes, 600, 20),
            endurance_ramp_start_tps: self.endurance_ramp_start_tps,
            endurance_ramp: self.endurance_ramp.unwrap_or(Duration::ZERO),
        }
    }

    /// The auto-scaling test, when `--scaling-ramp` (or perfsizesagemaker's
    /// `--endurance_ramp_minutes` above 0) asks for one.
    fn scaling_test(&self, endurance: Duration) -> Result<Option<ScalingTest>, Failure> {
        let ramp = self.scaling_ramp.or(self.endurance_ramp_minutes.filter(|d| !d.is_zero()));
        let Some(ramp) = ramp else {
            if self.spike || self.ramp_hold.is_some() {
                return Err(Failure::usage(
                    "--spike and --ramp-hold belong to the auto-scaling test: add --scaling-ramp DURATION",
                ));
            }
            return Ok(None);
        };
        Ok(Some(ScalingTest {
            ramp,
            hold: self.ramp_hold.unwrap_or(endurance),
            spike: self.spike,
            metrics: match self.scaling_metric.as_slice() {
                [] if self.asynchronous.asynchronous => vec![ScalingMetric::Backlog],
                [] => vec![ScalingMetric::Invocations],
                named => named.to_vec(),
            },
            scale_out_cooldown: self.scale_out_cooldown,
            scale_in_cooldown: self.scale_in_cooldown,
            procedure: self.scaling_procedure,
        }))
    }

    /// The model to size; None when none is given (a missing input).
    fn model(&self) -> Result<Option<ModelSource>, Failure> {
        if self.sim.simulate {
            return Ok(Some(simulated_model()));
        }
        match (&self.model_name, &self.image) {
            (Some(name), _) => Ok(Some(ModelSource::Existing(name.clone()))),
            (None, Some(image)) => {
                let role = self.execution_role_arn.clone().or_else(|| self.aws.role_arn.clone()).ok_or_else(|| {
                    Failure::usage("--image needs an execution role for the model: pass --execution-role-arn (or --role-arn)")
                })?;
                Ok(Some(ModelSource::Create {
                    image: image.clone(),
                    model_data_url: self.model_data_url.clone(),
                    execution_role_arn: role,
                    environment: Vec::new(),
                }))
            }
            (None, None) => Ok(None),
        }
    }

    fn instance_types(&self) -> Vec<InstanceType> {
        let types = self.type_walk.iter().filter_map(|entry| match entry {
            WalkEntry::Instances(t) => Some(t.clone()),
            WalkEntry::Serverless(_) => None,
        });
        types.collect()
    }

    /// The serverless part of the walk, if any: memory sizes from --type-walk
    /// and --serverless-memory-walk, with their concurrency settings.
    fn serverless_walk(&self) -> Result<Option<ServerlessWalk>, Failure> {
        let in_type_walk = self.type_walk.iter().filter_map(|entry| match entry {
            WalkEntry::Serverless(m) => Some(*m),
            WalkEntry::Instances(_) => None,
        });
        let mut memory: Vec<MemorySize> = in_type_walk.chain(self.serverless_memory_walk.iter().copied()).collect();
        memory.sort();
        memory.dedup();
        if memory.is_empty() {
            return Ok(None);
        }
        Ok(Some(ServerlessWalk {
            memory,
            max_concurrency: if self.serverless_max_concurrency.is_empty() {
                DEFAULT_MAX_CONCURRENCY_WALK.to_vec()
            } else {
                self.serverless_max_concurrency.clone()
            },
            provisioned: self.serverless_provisioned_concurrency,
            idle: self.serverless_idle()?,
        }))
    }

    /// --serverless-idle, or long enough for workers to go cold: on the
    /// simulator its profile's idle time and a second more, on AWS six minutes.
    fn serverless_idle(&self) -> Result<Duration, Failure> {
        if let Some(idle) = self.serverless_idle {
            return Ok(idle);
        }
        Ok(match super::simulator_profile(&self.sim)? {
            Some(profile) => profile.serverless.idle + Duration::from_secs(1),
            None => AWS_SERVERLESS_IDLE,
        })
    }

    fn has_payload(&self) -> bool {
        !self.traffic.payloads.is_empty() || self.traffic.scenario_requests.is_some() || self.stream.prompt_tokens.is_some()
    }

    /// Checks everything that needs no AWS call, and builds the plan for
    /// `region`. Every required input that is missing is named in one error.
    fn check(&self, region: Option<&str>) -> Result<Checked, Failure> {
        self.check_with(region, None)
    }

    /// [`Self::check`] with `live` prices in place of the shipped or --cost-file ones.
    fn check_with(&self, region: Option<&str>, live: Option<PriceTable>) -> Result<Checked, Failure> {
        let model = self.model()?;
        let mut missing = Vec::new();
        if self.peak_tps.is_none() && self.peak_concurrency.is_none() {
            missing.push("--peak-tps (the highest rate the endpoint must serve; streaming: or --peak-concurrency)");
        }
        if self.type_walk.is_empty() && self.serverless_memory_walk.is_empty() {
            missing.push("--type-walk (instance types to try, e.g. ml.m5.large,ml.c5.large,serverless:2048)");
        }
        if region.is_none() {
            missing.push("a region (--region or AWS_REGION)");
        }
        if model.is_none() {
            missing.push("a model (--model-name of an existing SageMaker model, or --image to create one)");
        }
        if !self.has_payload() && !self.sim.simulate {
            missing.push("a payload (--payload FILE, or --scenario-requests JSON)");
        }
        if !missing.is_empty() {
            let simulate = if self.sim.simulate { "" } else { ", or try perfsize on its built-in simulator with --simulate" };
            return Err(Failure::usage(format!(
                "missing {} (as flags or keys of {}){simulate}",
                missing.join(", "),
                super::config::DEFAULT_CONFIG
            )));
        }
        let (Some(peak), Some(region), Some(model)) = (Peak::of(self.peak_tps, self.peak_concurrency), region, model) else {
            unreachable!("each is in `missing` when absent")
        };
        if self.traffic_profile.is_some() && peak.tps().is_none() {
            return Err(Failure::usage("--traffic-profile describes a day of request rates: add --peak-tps"));
        }
        let streaming = self.stream.streaming(self.requirements.max_error_percent)?;
        // A streaming run's latency envelope comes from its own requirements.
        let requirements = match &streaming {
            Some(s) => s.requirements.envelope(),
            None => self.requirements.requirements()?,
        };
        let traffic = if self.has_payload() {
            self.stream.traffic(&self.traffic)?
        } else {
            self.traffic.traffic_of(std::sync::Arc::new(crate::load::PayloadMix::new(vec![sample_payload()])?))
        };
        for (flag, value) in [
            ("--endpoint_name", &self.legacy_endpoint_name),
            ("--endpoint_config_name", &self.legacy_endpoint_config_name),
            ("--jar_file", &self.legacy_jar_file),
            ("--logging_config", &self.legacy_logging_config),
        ] {
            if value.is_some() {
                eprintln!("note: {flag} is ignored: perfsize names its own endpoints and needs no Gatling jar or logging file");
            }
        }
        let prices = match (live, &self.cost_file) {
            (Some(live), _) => Ok(live),
            (None, Some(path)) => PriceTable::load(path),
            (None, None) => PriceTable::shipped(region),
        }?;
        let durations = self.durations();
        let scaling = self.scaling_test(durations.endurance)?;
        let asynchronous =
            self.asynchronous.asynchronous(Duration::from_secs_f64(requirements.latency_ms / 1000.0)).map_err(Failure::usage)?;
        let plan = Plan::new(PlanParts {
            peak,
            requirements,
            search: Search {
                strategy: self.strategy,
                types: self.instance_types(),
                serverless: self.serverless_walk()?,
                count_walk: (!self.count_walk.is_empty()).then(|| self.count_walk.clone()),
                tps_walk: (!self.tps_walk.is_empty()).then(|| self.tps_walk.clone()),
                concurrency_walk: (!self.concurrency_walk.is_empty()).then(|| self.concurrency_walk.clone()),
                start_tps: self.start_tps.or(peak.tps()).unwrap_or(1.0),
                tps_resolution: self.tps_resolution,
                endurance_retries: self.endurance_retries,
                parallel: self.parallel as usize,
                max_utilization: self.max_utilization,
            },
            durations,
            traffic,
            prices,
            safety_factor: self.safety_factor,
            min_instances: self.min_instances,
            max_test_cost: self.max_test_cost,
            scaling,
            asynchronous,
            day: match (&self.traffic_profile, peak.tps()) {
                (Some(text), Some(tps)) => Some(TrafficProfile::parse(text, tps)?),
                (None, Some(tps)) => Some(TrafficProfile::peak_all_day(tps)),
                (_, None) => None,
            },
            streaming,
        })?;
        // Said once the inputs are known good: a refused input stays one line.
        if !self.has_payload() {
            eprintln!("note: no --payload given; sending perfsize's sample payload {SAMPLE_PAYLOAD_NAME} to the simulated model");
        }
        let poll = self.poll_interval.unwrap_or(Pace::for_session(self.sim.simulate).poll);
        Ok(Checked { plan, model, poll })
    }

    /// The region prices are looked up for, from the flag, the environment or
    /// the AWS config file — never from the instance metadata service, whose
    /// probe would print a page of warnings on a machine outside AWS.
    async fn region(&self) -> Option<String> {
        if self.sim.simulate {
            return Some(self.aws.region.clone().unwrap_or_else(|| super::SIMULATED_REGION.into()));
        }
        if let Some(region) = &self.aws.region {
            return Some(region.clone());
        }
        use aws_config::meta::region::ProvideRegion;
        if let Some(region) = aws_config::environment::region::EnvironmentVariableRegionProvider::new().region().await {
            return Some(region.to_string());
        }
        let mut profile = aws_config::profile::ProfileFileRegionProvider::builder();
        if let Some(name) = &self.aws.aws_profile {
            profile = profile.profile_name(name);
        }
        profile.build().region().await.map(|r| r.to_string())
    }
}

/// The body sent to a simulated model when no payload is given.
const SAMPLE_PAYLOAD_NAME: &str = "samples/payloads/small.json";

fn sample_payload() -> crate::load::Payload {
    crate::load::Payload::new(SAMPLE_PAYLOAD_NAME, &include_bytes!("../../../samples/payloads/small.json")[..], 1.0)
}

/// `perfsize plan`: the steps the run may take and what they may cost.
pub async fn plan(args: SizingArgs) -> Result<u8, Failure> {
    let region = args.region().await;
    let checked = args.check(region.as_deref())?;
    print!("{}", sizing::estimate(&checked.plan, args.sim.simulate, &Pace::for_session(args.sim.simulate)));
    Ok(exit::OK)
}

/// `perfsize --peak-tps …`: the sizing run.
pub async fn run(args: SizingArgs) -> Result<u8, Failure> {
    let region = args.region().await;
    let checked = args.check(region.as_deref())?;
    let profile = super::simulator_profile(&args.sim)?;
    let mut session = super::open_session(&args.aws, profile).await?;
    let checked = match args.prices {
        Prices::Shipped => checked,
        Prices::Live => {
            let region = region.as_deref().expect("check found a region");
            let wait = Duration::from_secs(30);
            let live = crate::cost::live::read(&session.session.aws.config, region, checked.plan.prices(), wait).await;
            eprintln!("prices: {}", live.describe());
            args.check_with(Some(region), Some(live))?
        }
    };
    if let Some(wait) = args.cloudwatch_wait {
        session.session.pace.metrics_wait = wait;
    }
    if let Some(timeout) = args.teardown_timeout {
        session.session.pace.teardown_timeout = timeout;
    }
    if let Some(a) = checked.plan.asynchronous() {
        session.check_buckets(&a.buckets).await.map_err(Failure::usage)?;
    }
    let (run_id, dir, _lock, earlier) = open_run_dir(&args)?;
    let setup = RunSetup {
        cleanup_command: cleanup_command(&run_id, &args.aws, checked.plan.asynchronous()),
        run_id,
        model: checked.model,
        poll: checked.poll,
        arguments: output::redacted(&args.arguments),
        command_line: output::redacted_command_line(),
        earlier,
    };
    let outcome = sizing::run(&checked.plan, &session, &dir, setup).await?;
    if let Some(e) = &outcome.report_error {
        eprintln!("cannot write the reports: {e} (perfsize report {} retries)", dir.root().display());
    }
    println!("{}", output::conclusion_text(&outcome.summary, dir.root()));
    let failure = outcome.failure();
    match outcome.error {
        Some(error) => Err(error.into()),
        None => Ok(exit::of(failure)),
    }
}

/// The run's id and directory: new, or the one `--resume` names with what
/// its earlier sessions left.
/// The directory is locked for this session before anything is read from
/// it: a run still going refuses a `--resume` of itself.
fn open_run_dir(args: &SizingArgs) -> Result<(RunId, RunDir, RunLock, Option<Earlier>), Failure> {
    match &args.resume {
        Some(path) => {
            let dir = RunDir::open(path)?;
            let lock = dir.lock()?;
            let run_id: RunId = dir.run_id().parse()?;
            let earlier = Earlier::read(&dir)?;
            Ok((run_id, dir, lock, Some(earlier)))
        }
        None => {
            let run_id = RunId::generate();
            let dir = RunDir::create(&args.results_dir, run_id.as_str())?;
            let lock = dir.lock()?;
            Ok((run_id, dir, lock, None))
        }
    }
}

fn cleanup_command(run_id: &RunId, aws: &AwsArgs, asynchronous: Option<&Asynchronous>) -> String {
    let mut command = format!("perfsize cleanup --run-id {run_id}");
    // The run's objects in the user's own buckets go too.
    if let Some(Asynchronous { buckets: Buckets::Named { input, output }, .. }) = asynchronous {
        command.push_str(&format!(" --objects {input}"));
        if output != input {
            command.push_str(&format!(" --objects {output}"));
        }
    }
    for (flag, value) in [("--region", &aws.region), ("--profile", &aws.aws_profile), ("--endpoint-url", &aws.endpoint_url)] {
        if let Some(v) = value {
            command.push_str(&format!(" {flag} {v}"));
        }
    }
    command
}
