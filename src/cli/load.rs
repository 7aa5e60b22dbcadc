//! `perfsize load`: one load step against an endpoint that already exists —
//! the quick regression check of a Jenkins job — or against any HTTP model
//! server (`--url`); open-model at `--tps`, or closed-loop at
//! `--concurrency`; alone, or as one shard of several processes
//! (`--shard i/N`, combined afterwards by `perfsize merge`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::args::{
    AsyncArgs, AwsArgs, RequirementArgs, SimArgs, StreamArgs, TrafficArgs, parse_duration, parse_non_negative, parse_positive,
};
use super::{Failure, exit, simulated_model};
use crate::catalog::InstanceType;
use crate::engine::load_step::{self, LoadJob, LoadPace, LoadTarget};
use crate::load::{Auth, HttpEndpoint, RateProfile, Shard};
use crate::progress::Progress;
use crate::record;
use crate::result::{StepResult, histogram};
use crate::vocab::Fleet;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The endpoint to drive; it must be InService. With --simulate perfsize deploys one instead.
    #[arg(long, required_unless_present_any = ["simulate", "url"])]
    pub endpoint_name: Option<String>,
    /// Its production variant (for CloudWatch figures).
    #[arg(long, default_value = crate::sagemaker::VARIANT_NAME)]
    pub variant: String,
    /// Drive any HTTP model server instead (KServe, TorchServe, Triton, OpenAI-compatible): POST each payload to this URL.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// An extra request header for --url, 'Name: value'; repeatable.
    #[arg(long = "header", value_name = "'NAME: VALUE'", requires = "url")]
    pub headers: Vec<String>,
    /// Send `Authorization: Bearer TOKEN` to --url.
    #[arg(long, env = "PERFSIZE_BEARER_TOKEN", value_name = "TOKEN", requires = "url", hide_env_values = true)]
    pub bearer_token: Option<String>,
    /// Target rate, requests per second (open model: each request at its own time).
    #[arg(long, value_parser = parse_positive, value_name = "TPS", required_unless_present = "concurrency")]
    pub tps: Option<f64>,
    /// Closed loop instead: N requests always in flight, each starting the next when it ends; the N open one by one over the warm-up.
    #[arg(long, value_name = "N", conflicts_with_all = ["tps", "ramp", "max_in_flight"], value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: Option<u32>,
    /// How long to measure, after the warm-up.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub duration: Duration,
    /// Rise linearly from --ramp-start-tps to --tps over this long.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub ramp: Option<Duration>,
    #[arg(long, value_parser = parse_non_negative, default_value = "0", value_name = "TPS")]
    pub ramp_start_tps: f64,
    /// Be shard i of N processes that together offer --tps: this one sends --tps/N.
    #[arg(long, value_name = "i/N", requires = "shard_dir", conflicts_with = "concurrency", value_parser = |s: &str| s.parse::<Shard>())]
    pub shard: Option<Shard>,
    /// Where a shard writes its result and HdrHistogram interval log, for `perfsize merge`.
    #[arg(long, value_name = "DIR", requires = "shard")]
    pub shard_dir: Option<PathBuf>,
    /// Write the StepResult here (JSON).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write the latency percentile distribution here (HdrHistogram .hgrm text).
    #[arg(long, value_name = "PATH")]
    pub hgrm: Option<PathBuf>,
    /// How long to wait for CloudWatch figures (default 3m on AWS; 0 skips them).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub cloudwatch_wait: Option<Duration>,
    /// Instance type of the endpoint --simulate deploys.
    #[arg(long, default_value = "ml.m5.large", value_parser = |s: &str| s.parse::<InstanceType>().map_err(|e| e.to_string()))]
    pub instance_type: InstanceType,
    /// Instance count of the endpoint --simulate deploys.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub instance_count: u32,
    #[command(flatten)]
    pub asynchronous: AsyncArgs,
    #[command(flatten)]
    pub traffic: TrafficArgs,
    #[command(flatten)]
    pub stream: StreamArgs,
    #[command(flatten)]
    pub requirements: RequirementArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub sim: SimArgs,
}

/// Makes sure an output file can be written, creating its directory.
pub fn ensure_writable(flag: &str, path: &Path) -> Result<(), Failure> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Failure::usage(format!("cannot write {flag} {}: {e}", path.display())))?;
    if path.is_dir() {
        return Err(Failure::usage(format!("cannot write {flag} {}: it is a directory", path.display())));
    }
    Ok(())
}

/// The flags that make no sense together, each a usage error naming them.
fn refuse_combinations(args: &LoadArgs) -> Result<(), Failure> {
    let refuse = |message: &str| Err(Failure::usage(message.to_string()));
    if args.url.is_some() {
        let sagemaker_only = [
            (args.endpoint_name.is_some(), "--endpoint-name"),
            (args.sim.simulate, "--simulate"),
            (args.asynchronous.asynchronous, "--async"),
            (args.cloudwatch_wait.is_some(), "--cloudwatch-wait"),
        ];
        if let Some((_, flag)) = sagemaker_only.iter().find(|(given, _)| *given) {
            return refuse(&format!("--url drives a plain HTTP server: {flag} is for SageMaker endpoints"));
        }
    }
    if args.asynchronous.max_concurrent_invocations.len() > 1 {
        return refuse(
            "perfsize load deploys one endpoint: give --max-concurrent-invocations one value (a list is for sizing runs)",
        );
    }
    if args.stream.stream && args.url.is_some() {
        return refuse(
            "--stream reads SageMaker response streams (InvokeEndpointWithResponseStream); it cannot be used with --url",
        );
    }
    if args.stream.stream && args.shard.is_some() {
        return refuse("--stream runs in one process: --shard cannot split a streaming step yet");
    }
    if args.stream.stream && args.asynchronous.asynchronous {
        return refuse("--stream and --async are different endpoint kinds: choose one");
    }
    if args.concurrency.is_some() && args.asynchronous.asynchronous {
        return refuse("--concurrency runs a closed loop of real-time requests; --async endpoints are driven at --tps");
    }
    if let Some(tps) = args.tps
        && args.ramp_start_tps > tps
    {
        return refuse(&format!("--ramp-start-tps {} is above --tps {tps}", args.ramp_start_tps));
    }
    Ok(())
}

/// How the step sends its requests, as the flags say.
fn pace(args: &LoadArgs, warmup: Duration) -> LoadPace {
    let length = warmup + args.duration;
    match (args.concurrency, args.tps) {
        (Some(concurrency), _) => LoadPace::Closed { concurrency: concurrency as usize, length },
        (None, Some(tps)) => LoadPace::Open {
            rate: RateProfile::new(tps, args.ramp.map(|ramp| (args.ramp_start_tps, ramp)), length),
            shard: args.shard.unwrap_or(Shard::WHOLE),
        },
        (None, None) => unreachable!("clap requires --tps without --concurrency"),
    }
}

/// The `--url` target, checked before anything is sent.
fn http_target(args: &LoadArgs) -> Result<Option<HttpEndpoint>, Failure> {
    let Some(url) = &args.url else { return Ok(None) };
    let auth = args.bearer_token.clone().map_or(Auth::None, Auth::Bearer);
    Ok(Some(HttpEndpoint::new(url, &args.headers, auth)?))
}

pub async fn run(args: LoadArgs) -> Result<u8, Failure> {
    // Everything the user typed is checked before anything else happens.
    refuse_combinations(&args)?;
    let streaming = args.stream.streaming(args.requirements.max_error_percent)?;
    // A streaming step's latency envelope comes from its own requirements.
    let requirements = match &streaming {
        Some(s) => s.requirements.envelope(),
        None => args.requirements.requirements()?,
    };
    let traffic = args.stream.traffic(&args.traffic)?;
    let profile = super::simulator_profile(&args.sim)?;
    let url_target = http_target(&args)?;
    for (flag, path) in [("--json", &args.json), ("--hgrm", &args.hgrm)] {
        if let Some(path) = path {
            ensure_writable(flag, path)?;
        }
    }
    let shard_files = shard_files(&args)?;
    let asynchronous =
        args.asynchronous.asynchronous(Duration::from_secs_f64(requirements.latency_ms / 1000.0)).map_err(Failure::usage)?;
    let warmup = args.traffic.warmup.unwrap_or(Duration::from_secs(5));
    let job = LoadJob {
        pace: pace(&args, warmup),
        warmup,
        traffic,
        requirements,
        cloudwatch_wait: Duration::ZERO,
        asynchronous,
        streaming,
    };

    let (step, run, interrupted) = match &url_target {
        Some(target) => {
            let interrupts = super::interrupts();
            let progress = Arc::new(Progress::new(false, false));
            let outcome = load_step::run_at_url(target, &job, &interrupts.token(), &progress).await;
            progress.finish();
            let (step, run) = outcome?;
            (step, run, interrupts.interrupted())
        }
        None => {
            let session = super::open_session(&args.aws, profile).await?;
            if let Some(a) = &job.asynchronous {
                session.check_buckets(&a.buckets).await.map_err(Failure::usage)?;
            }
            let target = match &args.endpoint_name {
                // Under --simulate there is no endpoint yet: deploy one, and always take it away.
                _ if session.simulated => LoadTarget::Deployed {
                    candidate: Fleet {
                        max_concurrent_invocations: job.asynchronous.as_ref().and_then(|a| a.concurrency_walk()[0]),
                        ..Fleet::new(args.instance_type.clone(), args.instance_count)
                    }
                    .candidate(),
                    model: simulated_model(),
                },
                Some(endpoint) => LoadTarget::Existing { endpoint: endpoint.clone(), variant: args.variant.clone() },
                None => unreachable!("clap requires --endpoint-name without --simulate or --url"),
            };
            let job = LoadJob { cloudwatch_wait: args.cloudwatch_wait.unwrap_or(session.pace.metrics_wait), ..job };
            let progress = Arc::new(Progress::new(session.simulated, false));
            let outcome = load_step::run(&session, &target, &job, &progress).await;
            progress.finish();
            let (step, run) = outcome?;
            (step, run, session.interrupted())
        }
    };

    println!("{}", step.summary());
    write_outputs(&args, &step)?;
    if let Some((json, log)) = &shard_files {
        record::write_json(json, &step).map_err(|e| cannot_write(json, e))?;
        record::interval_log::write(log, &run, warmup).map_err(|e| cannot_write(log, e))?;
        println!("wrote {} and {} (combine the shards with `perfsize merge`)", json.display(), log.display());
    }
    Ok(if interrupted {
        exit::INTERRUPTED
    } else if step.passed {
        exit::OK
    } else {
        exit::NOT_MET
    })
}

/// Where a shard writes its result and interval log, checked writable.
fn shard_files(args: &LoadArgs) -> Result<Option<(PathBuf, PathBuf)>, Failure> {
    let (Some(shard), Some(dir)) = (args.shard, &args.shard_dir) else { return Ok(None) };
    let stem = dir.join(shard.file_stem());
    let files = (stem.with_extension("json"), stem.with_extension(record::interval_log::EXTENSION));
    ensure_writable("--shard-dir", &files.0)?;
    Ok(Some(files))
}

fn cannot_write(path: &Path, e: std::io::Error) -> Failure {
    Failure::infrastructure(format!("cannot write {}: {e}", path.display()))
}

/// Writes `--json` and `--hgrm` if asked (`perfsize merge` writes the same two).
pub fn write_outputs(args: &impl StepOutputs, step: &StepResult) -> Result<(), Failure> {
    if let Some(path) = args.json() {
        record::write_json(path, step).map_err(|e| cannot_write(path, e))?;
    }
    if let Some(path) = args.hgrm() {
        let h = histogram::decode(&step.histogram).map_err(Failure::infrastructure)?;
        record::write_atomic(path, histogram::hgrm(&h).as_bytes()).map_err(|e| cannot_write(path, e))?;
    }
    Ok(())
}

/// Commands that write a step's `--json` and `--hgrm`.
pub trait StepOutputs {
    fn json(&self) -> Option<&Path>;
    fn hgrm(&self) -> Option<&Path>;
}

impl StepOutputs for LoadArgs {
    fn json(&self) -> Option<&Path> {
        self.json.as_deref()
    }
    fn hgrm(&self) -> Option<&Path> {
        self.hgrm.as_deref()
    }
}
