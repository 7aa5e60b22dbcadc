//! The main job, `perfsize --peak-tps … --type-walk …`, and `perfsize plan`
//! (the same flags; prints what the run may cost and deploys nothing).

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use futures::FutureExt;

use super::args::{
    AwsArgs, RequirementArgs, SimArgs, TrafficArgs, parse_duration, parse_minutes, parse_non_negative, parse_positive,
};
use super::load::simulated_model;
use super::{Failure, Session, exit};
use crate::catalog::InstanceType;
use crate::cost::PriceTable;
use crate::environment::{Environment, Ledger, ModelSource, RunId, SageMakerEnvironment, SharedLedger, Spend};
use crate::load::RequestSigner;
use crate::plan::{Durations, Plan, PlanParts, Search};
use crate::progress::Progress;
use crate::result::{Phase, trim_number};
use crate::run_dir::{RunDir, SPEND_FILE};
use crate::signals;
use crate::sizing::{Pace, PlanRecord, RunStatus, Sizing, SizingError, Summary};
use crate::step::StrategyKind;

fn parse_type(text: &str) -> Result<InstanceType, String> {
    text.parse::<InstanceType>().map_err(|e| e.to_string())
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
    /// Instance types to try, comma separated.
    #[arg(long, alias = "type_walk", value_parser = parse_type, value_delimiter = ',', value_name = "TYPES")]
    pub type_walk: Vec<InstanceType>,
    /// Instance counts allowed, comma separated (perfsize strategy: the counts to try).
    #[arg(long, alias = "count_walk", value_parser = parse_count, value_delimiter = ',', value_name = "COUNTS")]
    pub count_walk: Vec<u32>,
    /// Rates allowed, comma separated (perfsize strategy: the rates to climb).
    #[arg(long, alias = "tps_walk", value_parser = parse_positive, value_delimiter = ',', value_name = "RATES")]
    pub tps_walk: Vec<f64>,
    /// How to search.
    #[arg(long, value_enum, default_value_t = StrategyKind::Adaptive)]
    pub strategy: StrategyKind,
    /// First rate the adaptive search tries on one instance (default: the peak — can one instance take it?).
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
    #[arg(long = "endurance_ramp_minutes", value_parser = parse_minutes, hide = true, conflicts_with = "endurance_ramp")]
    pub endurance_ramp_minutes: Option<Duration>,
    /// Rate the endurance ramp starts from.
    #[arg(long, alias = "endurance_ramp_start_tps", value_parser = parse_non_negative, default_value = "0", value_name = "TPS")]
    pub endurance_ramp_start_tps: f64,
    /// Extra instances to try when an endurance run fails.
    #[arg(long, alias = "endurance_retries", default_value_t = 3)]
    pub endurance_retries: u32,
    /// Test up to N instance types at once, each on its own endpoint.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub parallel: u32,
    /// Auto-scaling target = max TPS per instance × 60 × this.
    #[arg(long, value_parser = parse_positive, default_value = "0.5")]
    pub safety_factor: f64,
    /// Smallest instance count of the auto-scaling policy.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub min_instances: u32,
    /// Stop (cleanly, with a report) before the run would spend more than this many dollars.
    #[arg(long, value_parser = parse_positive, value_name = "USD")]
    pub max_test_cost: Option<f64>,
    /// Where run directories go.
    #[arg(long, alias = "perfsize_results_dir", default_value = "perfsize-results", value_name = "DIR")]
    pub results_dir: PathBuf,
    /// Continue an interrupted run: steps already in RUN_DIR are not run again.
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Prices (perfsize's format or perfsizesagemaker's flat map); default: shipped for the region.
    #[arg(long, alias = "cost_file", value_name = "FILE")]
    pub cost_file: Option<PathBuf>,
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
    pub aws: AwsArgs,
    #[command(flatten)]
    pub sim: SimArgs,
}

/// The command line as recorded: URL credentials and secret-looking values hidden.
pub fn redacted_command_line() -> Vec<String> {
    let mut out = Vec::new();
    let mut hide_next = false;
    for arg in std::env::args() {
        if hide_next {
            out.push("***".to_string());
            hide_next = false;
            continue;
        }
        let lower = arg.to_lowercase();
        let secret_flag = lower.starts_with("--") && ["secret", "token", "password", "key"].iter().any(|w| lower.contains(w));
        if secret_flag && !arg.contains('=') {
            hide_next = true;
            out.push(arg);
        } else if secret_flag {
            out.push(format!("{}=***", arg.split('=').next().unwrap_or_default()));
        } else {
            out.push(hide_url_credentials(&arg));
        }
    }
    out
}

fn hide_url_credentials(arg: &str) -> String {
    match (arg.find("://"), arg.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***@{}", &arg[..scheme], &arg[at + 1..]),
        _ => arg.to_string(),
    }
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
            endurance_ramp: self.endurance_ramp.or(self.endurance_ramp_minutes).unwrap_or(Duration::ZERO),
        }
    }

    fn model(&self) -> Result<ModelSource, Failure> {
        if self.sim.simulate {
            return Ok(simulated_model());
        }
        match (&self.model_name, &self.image) {
            (Some(name), _) => Ok(ModelSource::Existing(name.clone())),
            (None, Some(image)) => {
                let role = self.execution_role_arn.clone().or_else(|| self.aws.role_arn.clone()).ok_or_else(|| {
                    Failure::usage("--image needs an execution role for the model: pass --execution-role-arn (or --role-arn)")
                })?;
                Ok(ModelSource::Create {
                    image: image.clone(),
                    model_data_url: self.model_data_url.clone(),
                    execution_role_arn: role,
                    environment: Vec::new(),
                })
            }
            (None, None) => Err(Failure::usage(
                "no model: pass --model-name of an existing SageMaker model, or --image to create one (or --simulate)",
            )),
        }
    }

    /// Checks everything that needs no AWS call, and builds the plan for `region`.
    fn check(&self, region: &str) -> Result<Checked, Failure> {
        let peak_tps =
            self.peak_tps.ok_or_else(|| Failure::usage("--peak-tps is required (the highest rate the endpoint must serve)"))?;
        let types = self.type_walk.clone();
        if types.is_empty() {
            return Err(Failure::usage("--type-walk is required (instance types to try, e.g. ml.m5.large,ml.c5.large)"));
        }
        let requirements = self.requirements.requirements().map_err(Failure::usage)?;
        let traffic = self.traffic.traffic().map_err(Failure::usage)?;
        let model = self.model()?;
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
        let prices = match &self.cost_file {
            Some(path) => PriceTable::load(path),
            None => PriceTable::shipped(region),
        }
        .map_err(Failure::usage)?;
        let plan = Plan::new(PlanParts {
            peak_tps,
            requirements,
            search: Search {
                strategy: self.strategy,
                types,
                count_walk: (!self.count_walk.is_empty()).then(|| self.count_walk.clone()),
                tps_walk: (!self.tps_walk.is_empty()).then(|| self.tps_walk.clone()),
                start_tps: self.start_tps.unwrap_or(peak_tps),
                tps_resolution: self.tps_resolution,
                endurance_retries: self.endurance_retries,
                parallel: self.parallel as usize,
            },
            durations: self.durations(),
            traffic,
            prices,
            safety_factor: self.safety_factor,
            min_instances: self.min_instances,
            max_test_cost: self.max_test_cost,
        })
        .map_err(Failure::usage)?;
        let poll =
            self.poll_interval.unwrap_or(if self.sim.simulate { Duration::from_millis(100) } else { Duration::from_secs(15) });
        Ok(Checked { plan, model, poll })
    }

    /// The region prices are looked up for, resolved without any AWS call
    /// beyond the standard configuration chain.
    async fn region(&self) -> Result<String, Failure> {
        if self.sim.simulate {
            return Ok(self.aws.region.clone().unwrap_or_else(|| "us-east-1".into()));
        }
        if let Some(region) = &self.aws.region {
            return Ok(region.clone());
        }
        let mut provider = aws_config::default_provider::region::DefaultRegionChain::builder();
        if let Some(profile) = &self.aws.aws_profile {
            provider = provider.profile_name(profile);
        }
        provider
            .build()
            .region()
            .await
            .map(|r| r.to_string())
            .ok_or_else(|| Failure::usage("no AWS region: pass --region or set AWS_REGION"))
    }
}

/// `perfsize plan`: the steps the run may take and what they may cost.
pub async fn plan(args: SizingArgs) -> Result<u8, Failure> {
    let region = args.region().await?;
    let checked = args.check(&region)?;
    print!("{}", estimate(&checked.plan, args.sim.simulate, &Pace::for_session(args.sim.simulate)));
    Ok(exit::OK)
}

/// How many instances of any type the worst case assumes the peak needs.
const ASSUMED_MAX_INSTANCES: u32 = 8;

/// The worst case of a plan, in steps, endpoint-hours, wall time and dollars.
pub fn estimate(plan: &Plan, simulated: bool, pace: &Pace) -> String {
    let s = plan.search();
    let d = plan.durations();
    let peak = plan.peak_tps();
    let step_hours = (d.warmup + d.step).as_secs_f64() / 3600.0;
    let endurance_hours = (d.endurance_ramp + d.endurance).as_secs_f64() / 3600.0;
    let deploy_hours = pace.deploy_estimate.as_secs_f64() / 3600.0;
    let mut out = format!(
        "perfsize plan{}: peak {} TPS, {} ≤ {} ms, errors ≤ {}%, strategy {:?}\n\n",
        if simulated { " (SIMULATED)" } else { "" },
        trim_number(peak),
        plan.requirements().percentile_label(),
        plan.requirements().latency_ms,
        plan.requirements().max_error_percent,
        s.strategy
    );
    out.push_str(&format!(
        "{:<20} {:>9} {:>14} {:>16} {:>12}\n",
        "instance type", "$/hour", "search steps", "endurance runs", "worst $"
    ));
    // Endurance runs try the count the peak needs, then up to `retries` more.
    let counts: Vec<u32> = (ASSUMED_MAX_INSTANCES..=ASSUMED_MAX_INSTANCES + s.endurance_retries).collect();
    let (mut total_steps, mut total_endurance, mut total_hours, mut total_dollars) = (0usize, 0usize, 0.0, 0.0);
    for t in &s.types {
        let price = plan.price(t);
        let decisions = match (s.strategy, &s.tps_walk) {
            (StrategyKind::Perfsize, walk) => s.count_walk.as_ref().map_or(1, Vec::len) + walk.as_ref().map_or(1, Vec::len),
            (StrategyKind::Adaptive, Some(walk)) => 2 * (walk.len() as f64).log2().ceil() as usize + 1,
            // Halving from the start down to the floor, then bisecting to the resolution.
            (StrategyKind::Adaptive, None) => {
                (s.start_tps / plan.floor_tps()).log2().ceil() as usize + (1.0 / s.tps_resolution).log2().ceil() as usize + 1
            }
        };
        // The adaptive search measures a near-limit rate up to three times;
        // perfsizesagemaker trusts every result once.
        let search_steps = if s.strategy == StrategyKind::Adaptive { decisions * 3 } else { decisions };
        let hours = search_steps as f64 * step_hours
            + deploy_hours
            + counts.iter().map(|c| *c as f64 * (endurance_hours + deploy_hours)).sum::<f64>();
        let dollars = hours * price;
        out.push_str(&format!("{:<20} {:>9.3} {:>14} {:>16} {:>12.2}\n", t.as_str(), price, search_steps, counts.len(), dollars));
        total_steps += search_steps;
        total_endurance += counts.len();
        total_hours += hours;
        total_dollars += dollars;
    }
    let parallel = if s.strategy == StrategyKind::Adaptive { s.parallel } else { 1 };
    let wall = total_steps as f64 * (step_hours * 3600.0 + 5.0) / parallel as f64
        + total_endurance as f64 * (endurance_hours * 3600.0 + pace.deploy_estimate.as_secs_f64())
        + s.types.len() as f64 * pace.deploy_estimate.as_secs_f64();
    out.push_str(&format!(
        "\nworst case: {total_steps} search steps of {} and {total_endurance} endurance runs of {}; {:.2} endpoint-hours, {}, ${:.2}\n",
        humantime::format_duration(d.warmup + d.step),
        humantime::format_duration(d.endurance_ramp + d.endurance),
        total_hours,
        humantime::format_duration(Duration::from_secs(wall as u64)),
        total_dollars
    ));
    out.push_str(&format!(
        "(assuming the peak needs at most {ASSUMED_MAX_INSTANCES} instances of any type, i.e. one sustains at least {} TPS; --max-test-cost caps what a run may spend)\n",
        trim_number(peak / ASSUMED_MAX_INSTANCES as f64)
    ));
    if s.strategy == StrategyKind::Adaptive {
        out.push_str("expected: far fewer — the type with the lowest possible cost goes first, and types that cannot beat a verified configuration are dropped\n");
    }
    out
}

/// `perfsize --peak-tps …`: the sizing run.
pub async fn run(args: SizingArgs) -> Result<u8, Failure> {
    let region = args.region().await?;
    let checked = args.check(&region)?;
    let profile = Session::simulator_profile(&args.sim)?;
    let (run_id, dir, earlier) = open_run_dir(&args)?;

    let interrupts = signals::install();
    let session = Session::open(&args.aws, profile).await?;
    let progress = Arc::new(Progress::new(session.simulated, false));
    let ledger: SharedLedger = Arc::new(Mutex::new(earlier.spend.as_ref().map(Ledger::resumed).unwrap_or_default()));
    let env = SageMakerEnvironment::new(
        session.aws.sagemaker.clone(),
        run_id.clone(),
        checked.model,
        checked.poll,
        Pace::for_session(session.simulated).deploy_timeout,
        Arc::clone(&ledger),
    );
    {
        let ledger = Arc::clone(&ledger);
        let cleanup = cleanup_command(&run_id, &args.aws);
        interrupts.on_forced_exit(move || {
            let mut lines: Vec<String> =
                ledger.lock().map(|l| l.live()).unwrap_or_default().into_iter().map(|r| format!("  still alive: {r}")).collect();
            if !lines.is_empty() {
                lines.push(format!("remove them with: {cleanup}"));
            }
            lines
        });
    }
    let record = PlanRecord {
        run_id: run_id.to_string(),
        perfsize_version: env!("CARGO_PKG_VERSION").into(),
        simulated: session.simulated,
        region: session.aws.region.clone(),
        command_line: redacted_command_line(),
        peak_tps: checked.plan.peak_tps(),
        requirements: *checked.plan.requirements(),
        search: checked.plan.search().clone(),
        durations: *checked.plan.durations(),
        payloads: checked.plan.traffic().payloads.payloads().iter().map(|p| (p.name.clone(), p.weight, p.body.len())).collect(),
        content_type: checked.plan.traffic().content_type.clone(),
        accept: checked.plan.traffic().accept.clone(),
        prices: checked.plan.prices().origin.clone(),
        safety_factor: checked.plan.safety_factor(),
        max_test_cost: checked.plan.max_test_cost(),
    };
    if args.resume.is_some() {
        let previous = dir.read_json::<PlanRecord>("plan.json").map_err(Failure::usage)?;
        if previous.is_some_and(|previous| !previous.measures_like(&record)) {
            return Err(Failure::usage(format!(
                "--resume {}: that run measured other things (simulated or not, region, peak, requirements, search, durations or payloads); resume it with the same flags",
                dir.root().display()
            )));
        }
        // A killed run may have left resources under the names this run will use.
        remove_leftovers(&session, &run_id, &progress).await?;
    }
    dir.write_json("plan.json", &record).map_err(Failure::usage)?;
    progress.line(format!("run {run_id}: results in {}", dir.root().display()));
    let estimate = estimate(&checked.plan, session.simulated, &Pace::for_session(session.simulated));
    progress.line(estimate.lines().find(|l| l.starts_with("worst case")).unwrap_or_default());

    let credentials = session.aws.credentials().map_err(Failure::usage)?;
    let signer = RequestSigner::new(credentials, session.aws.region.clone()).await.map_err(Failure::usage)?;
    let refresher = signer.keep_fresh(interrupts.token().child_token());
    let sizing = Sizing {
        plan: &checked.plan,
        env: &env,
        aws: &session.aws,
        dir: &dir,
        progress: Arc::clone(&progress),
        pace: Pace::for_session(session.simulated),
        simulated: session.simulated,
        signer,
        cancel: interrupts.token(),
        run_id: run_id.to_string(),
        command_line: record.command_line.clone(),
        resumed: earlier.steps,
        earlier_wall_seconds: earlier.spend.map_or(0.0, |s| s.run_cost.wall_seconds),
    };
    let (summary, error) = match AssertUnwindSafe(sizing.run()).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => {
            // A bug must not leave endpoints billing: tear down, then report it.
            progress.line("perfsize hit an internal error; tearing down everything this run deployed");
            let teardown = env.teardown().await;
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            return Err(Failure::infrastructure(format!(
                "internal error: {message}; {}",
                match teardown {
                    Ok(()) => "everything the run deployed was torn down".to_string(),
                    Err(e) => format!("teardown failed ({e}): run {}", cleanup_command(&run_id, &args.aws)),
                }
            )));
        }
    };
    refresher.abort();
    progress.finish();
    drop(env);

    if let Err(e) = crate::report::write_all(&dir) {
        progress.line(format!("cannot write the reports: {e} (perfsize report {} retries)", dir.root().display()));
    }
    println!("{}", conclusion_text(&summary, dir.root()));
    if let Some(e) = error {
        let code = if matches!(e, SizingError::PayloadRejected(_) | SizingError::ModelNotFound(_)) {
            exit::USAGE
        } else {
            exit::INFRASTRUCTURE
        };
        return Err(Failure { code, error: Box::new(e) });
    }
    Ok(match summary.status {
        RunStatus::Interrupted => exit::INTERRUPTED,
        _ if summary.recommendation.is_some() => exit::OK,
        _ => exit::NOT_MET,
    })
}

/// Deletes what an earlier, killed session of this run left behind.
async fn remove_leftovers(session: &Session, run_id: &RunId, progress: &Progress) -> Result<(), Failure> {
    let client = &session.aws.sagemaker;
    let leftovers = crate::environment::cleanup::find(client, Some(run_id)).await.map_err(Failure::infrastructure)?;
    if leftovers.is_empty() {
        return Ok(());
    }
    progress.activity(format!("removing {} resources the interrupted session left", leftovers.len()));
    let failed =
        crate::environment::cleanup::remove(client, &leftovers, Pace::for_session(session.simulated).poll, |_, _| {}).await;
    if failed > 0 {
        return Err(Failure::infrastructure(format!(
            "{failed} resources of run {run_id} could not be deleted; run perfsize cleanup --run-id {run_id}"
        )));
    }
    Ok(())
}

/// What the earlier sessions of a resumed run left in its directory.
#[derive(Default)]
struct Earlier {
    steps: Vec<crate::result::StepResult>,
    spend: Option<Spend>,
}

fn open_run_dir(args: &SizingArgs) -> Result<(RunId, RunDir, Earlier), Failure> {
    match &args.resume {
        Some(path) => {
            let dir = RunDir::open(path).map_err(Failure::usage)?;
            let run_id: RunId = dir.run_id().parse().map_err(Failure::usage)?;
            let steps = dir.steps().map_err(Failure::usage)?;
            let spend = dir.read_json(SPEND_FILE).map_err(Failure::usage)?;
            Ok((run_id, dir, Earlier { steps, spend }))
        }
        None => {
            let run_id = RunId::generate();
            let dir = RunDir::create(&args.results_dir, run_id.as_str()).map_err(Failure::usage)?;
            Ok((run_id, dir, Earlier::default()))
        }
    }
}

fn cleanup_command(run_id: &RunId, aws: &AwsArgs) -> String {
    let mut command = format!("perfsize cleanup --run-id {run_id}");
    for (flag, value) in [("--region", &aws.region), ("--profile", &aws.aws_profile), ("--endpoint-url", &aws.endpoint_url)] {
        if let Some(v) = value {
            command.push_str(&format!(" {flag} {v}"));
        }
    }
    command
}

/// What the run concluded, for the terminal.
pub fn conclusion_text(summary: &Summary, dir: &Path) -> String {
    let mut out = String::new();
    if summary.simulated {
        out.push_str("SIMULATED RUN — figures come from perfsize's simulator, not AWS\n");
    }
    match &summary.recommendation {
        Some(rec) => {
            out.push_str(&format!(
                "recommendation: {} × {}  ${:.3}/hour · ${:.2}/month · ${:.4} per million inferences at {} TPS\n",
                rec.instance_type,
                rec.instance_count,
                rec.cost_per_hour,
                rec.cost_per_month,
                rec.cost_per_million_inferences,
                trim_number(summary.peak_tps)
            ));
            out.push_str(&format!(
                "  one instance sustains {} TPS within the requirements; auto-scaling: target {} invocations/instance/minute, {}–{} instances\n",
                trim_number(rec.max_tps_per_instance),
                rec.autoscaling.target_invocations_per_instance,
                rec.autoscaling.min_instances,
                rec.autoscaling.max_instances
            ));
        }
        None => {
            out.push_str("no configuration met the requirements:\n");
            for t in &summary.types {
                out.push_str(&format!("  {}: {}\n", t.summary.instance_type, t.summary.verdict));
            }
        }
    }
    if let Some(note) = &summary.note {
        out.push_str(&format!("run ended early: {note}\n"));
    }
    let endurance = summary.steps.iter().filter(|s| s.phase == Phase::Endurance).count();
    out.push_str(&format!(
        "{} steps ({} endurance), {:.3} endpoint-hours, {}, {}\nreport: {}",
        summary.steps.len(),
        endurance,
        summary.run_cost.endpoint_hours,
        dollars(summary.run_cost.dollars),
        humantime::format_duration(Duration::from_secs(summary.run_cost.wall_seconds as u64)),
        dir.join("report.html").display()
    ));
    out
}

/// Dollars with cents, or with four decimals when under a dollar.
pub fn dollars(x: f64) -> String {
    if x < 1.0 { format!("${x:.4}") } else { format!("${x:.2}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(hide_url_credentials("http://user:pw@host:1/x"), "http://***@host:1/x");
        assert_eq!(hide_url_credentials("http://host:1"), "http://host:1");
    }
}
