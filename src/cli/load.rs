//! `perfsize load`: one load step against an endpoint that already exists —
//! the quick regression check of a Jenkins job.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::args::{AwsArgs, RequirementArgs, SimArgs, TrafficArgs, parse_duration, parse_non_negative, parse_positive};
use super::{Failure, Session, exit};
use crate::catalog::InstanceType;
use crate::environment::{Environment, ModelSource, RunId, SageMakerEnvironment};
use crate::load::{self, RateProfile, RequestSigner, Target};
use crate::plan::{Candidate, Traffic};
use crate::progress::Progress;
use crate::result::{self, MetricsWindow, Phase, StepContext, StepResult, histogram};
use crate::signals;
use crate::sizing::Pace;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The endpoint to drive; it must be InService. With --simulate perfsize deploys one instead.
    #[arg(long, required_unless_present = "simulate")]
    pub endpoint_name: Option<String>,
    /// Its production variant (for CloudWatch figures).
    #[arg(long, default_value = "AllTraffic")]
    pub variant: String,
    /// Target rate, requests per second.
    #[arg(long, value_parser = parse_positive, value_name = "TPS")]
    pub tps: f64,
    /// How long to measure, after the warm-up.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub duration: Duration,
    /// Rise linearly from --ramp-start-tps to --tps over this long.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub ramp: Option<Duration>,
    #[arg(long, value_parser = parse_non_negative, default_value = "0", value_name = "TPS")]
    pub ramp_start_tps: f64,
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
    pub traffic: TrafficArgs,
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

/// A model that stands in for the user's under --simulate.
pub fn simulated_model() -> ModelSource {
    ModelSource::Create {
        image: "perfsize/simulated-model:latest".into(),
        model_data_url: None,
        execution_role_arn: format!("arn:aws:iam::{}:role/perfsize-simulated", crate::simulator::ACCOUNT_ID),
        environment: Vec::new(),
    }
}

pub async fn run(args: LoadArgs) -> Result<u8, Failure> {
    // Everything the user typed is checked before anything else happens.
    let requirements = args.requirements.requirements().map_err(Failure::usage)?;
    let traffic = args.traffic.traffic().map_err(Failure::usage)?;
    let profile = Session::simulator_profile(&args.sim)?;
    for (flag, path) in [("--json", &args.json), ("--hgrm", &args.hgrm)] {
        if let Some(path) = path {
            ensure_writable(flag, path)?;
        }
    }
    if args.ramp_start_tps > args.tps {
        return Err(Failure::usage(format!("--ramp-start-tps {} is above --tps {}", args.ramp_start_tps, args.tps)));
    }

    let interrupts = signals::install();
    let cancel = interrupts.token();
    let session = Session::open(&args.aws, profile).await?;
    let pace = Pace::for_session(session.simulated);
    let progress = Arc::new(Progress::new(session.simulated, false));

    // Under --simulate there is no endpoint yet: deploy one, and always take it away.
    let environment = session.simulated.then(|| {
        let env = SageMakerEnvironment::new(
            session.aws.sagemaker.clone(),
            RunId::generate(),
            simulated_model(),
            pace.poll,
            pace.deploy_timeout,
            Default::default(),
        );
        let ledger = env.ledger();
        interrupts.on_forced_exit(move || ledger.lock().map(|l| l.live()).unwrap_or_default());
        env
    });
    let outcome = measure(&args, &session, &pace, environment.as_ref(), requirements, &traffic, &progress, &cancel).await;
    if let Some(env) = &environment {
        progress.activity("tearing down the simulated endpoint");
        env.teardown().await.map_err(Failure::infrastructure)?;
    }
    progress.finish();
    let step = outcome?;

    println!("{}", step.summary());
    if let Some(path) = &args.json {
        result::write_json(path, &step).map_err(|e| Failure::infrastructure(format!("cannot write {}: {e}", path.display())))?;
    }
    if let Some(path) = &args.hgrm {
        let h = histogram::decode(&step.histogram).map_err(Failure::infrastructure)?;
        result::write_atomic(path, histogram::hgrm(&h).as_bytes())
            .map_err(|e| Failure::infrastructure(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(if interrupts.interrupted() {
        exit::INTERRUPTED
    } else if step.passed {
        exit::OK
    } else {
        exit::NOT_MET
    })
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    args: &LoadArgs,
    session: &Session,
    pace: &Pace,
    environment: Option<&SageMakerEnvironment>,
    requirements: crate::plan::Requirements,
    traffic: &Traffic,
    progress: &Arc<Progress>,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<StepResult, Failure> {
    let (endpoint, candidate) = match environment {
        Some(env) => {
            let candidate = Candidate::new(args.instance_type.clone(), args.instance_count);
            progress.activity(format!("deploying a simulated {candidate}"));
            env.prepare().await.map_err(Failure::infrastructure)?;
            (env.deploy(&candidate, cancel).await.map_err(Failure::infrastructure)?.endpoint, candidate)
        }
        None => {
            let endpoint = args.endpoint_name.clone().expect("clap requires --endpoint-name without --simulate");
            let candidate = crate::environment::inspect(&session.aws.sagemaker, &endpoint, &args.variant).await.map_err(|e| {
                if e.code == "NotUsable" || e.code == "ValidationException" {
                    Failure::usage(e)
                } else {
                    Failure::infrastructure(e)
                }
            })?;
            (endpoint, candidate)
        }
    };
    progress.activity(format!("preflight: sending each payload once to {endpoint}"));
    load::preflight::check_payloads(&session.aws.runtime, &endpoint, &traffic.payloads, &traffic.content_type, &traffic.accept)
        .await
        .map_err(Failure::usage)?;

    let credentials = session.aws.credentials().map_err(Failure::usage)?;
    let signer = RequestSigner::new(credentials, session.aws.region.clone()).await.map_err(Failure::usage)?;
    let refresher = signer.keep_fresh(cancel.child_token());
    let warmup = args.traffic.warmup.unwrap_or(Duration::from_secs(5));
    let target = Target { endpoint: endpoint.clone(), runtime_url: session.aws.runtime_url.clone() };
    let rate = RateProfile::new(args.tps, args.ramp.map(|ramp| (args.ramp_start_tps, ramp)), warmup + args.duration);
    let spec = traffic.load_spec(target, rate, warmup, 0, &requirements);
    progress.activity(format!("{} TPS at {endpoint} for {:?} (+{:?} warm-up)", args.tps, args.duration, warmup));
    let live = Arc::clone(progress);
    let run = load::drive(spec, signer, cancel.clone(), Some(Arc::new(move |row| live.second(row)))).await;
    refresher.abort();
    let run = run.map_err(Failure::infrastructure)?;

    let context = StepContext {
        index: 1,
        phase: Phase::Load,
        simulated: session.simulated,
        endpoint_name: endpoint.clone(),
        candidate,
        target_tps: args.tps,
        warmup_seconds: warmup.as_secs_f64(),
        requirements,
    };
    let mut step = StepResult::from_run(context, &run);
    let wait = args.cloudwatch_wait.unwrap_or(pace.metrics_wait);
    if !wait.is_zero() && !cancel.is_cancelled() {
        progress.activity("waiting for CloudWatch figures");
        let window = MetricsWindow {
            endpoint,
            variant: args.variant.clone(),
            from: run.measured_from,
            to: run.measured_to,
            period: pace.metrics_period,
            expected_invocations: step.requests,
        };
        step.cloudwatch = result::cloudwatch::fetch(&session.aws.cloudwatch, &window, wait, pace.metrics_poll, cancel).await;
    }
    Ok(step)
}
