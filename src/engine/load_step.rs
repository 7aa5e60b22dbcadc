//! One judged load step at an endpoint — `perfsize load`, the quick
//! regression check of a Jenkins job — and the measuring half every step
//! shares with the sizing run: drive the traffic, judge what it measured.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Session;
use crate::environment::{ApiError, AsyncServing, DeployError, Environment, ModelSource, RunId, inspect};
use crate::error::{ErrorKind, HasKind};
use crate::load::{Driver, HttpEndpoint, LoadError, LoadRun, LoadSpec, ProgressFn, RateProfile, Shard, Target};
use crate::plan::{Asynchronous, Streaming, Traffic};
use crate::progress::Progress;
use crate::result::{ServerMetrics, StepContext, StepResult};
use crate::s3::RunStorage;
use crate::sagemaker::AwsErrorKind;
use crate::vocab::{Candidate, Phase, Requirements};

/// How far `perfsize load` projects the latency of a rate it cannot hold:
/// AWS's usual endurance run.
pub(super) const LOAD_HORIZON: Duration = Duration::from_secs(600);

/// Which SageMaker endpoint a load step drives (any other HTTP server is
/// [`run_at_url`]'s).
#[derive(Debug, Clone)]
pub enum LoadTarget {
    /// One that exists and is InService; never modified.
    Existing { endpoint: String, variant: String },
    /// One deployed for the step and always taken away after it.
    Deployed { candidate: Candidate, model: ModelSource },
}

/// How a load step sends its requests.
#[derive(Debug, Clone, Copy)]
pub enum LoadPace {
    /// At `rate` (warm-up included), this process sending its `shard` of it.
    Open { rate: RateProfile, shard: Shard },
    /// `concurrency` always in flight for `length` (warm-up included).
    Closed { concurrency: usize, length: Duration },
}

/// A load step: how fast, how long, what traffic, judged by what.
#[derive(Debug, Clone)]
pub struct LoadJob {
    pub pace: LoadPace,
    pub warmup: Duration,
    pub traffic: Traffic,
    pub requirements: Requirements,
    /// How long to wait for CloudWatch figures; zero skips them.
    pub cloudwatch_wait: Duration,
    /// Invoke asynchronously, through S3, instead of in real time.
    pub asynchronous: Option<Asynchronous>,
    /// Read each answer as a response stream, judged on goodput
    /// (`requirements` is then the streaming requirements' envelope).
    pub streaming: Option<Streaming>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadJobError {
    #[error(transparent)]
    Session(#[from] super::SessionError),
    #[error("endpoint {endpoint}: {source}")]
    Endpoint {
        endpoint: String,
        #[source]
        source: ApiError,
    },
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(
        "--async on an existing endpoint needs --input-bucket (or ASYNC_SM_INPUT_BUCKET): its outputs go where its endpoint config says, its inputs where you say"
    )]
    AsyncInputBucket,
}

impl LoadJob {
    /// The traffic of this job at `target`.
    fn spec(&self, target: Target) -> LoadSpec {
        match self.pace {
            LoadPace::Open { rate, shard } => self.traffic.sharded_spec(target, rate, self.warmup, 0, &self.requirements, shard),
            LoadPace::Closed { concurrency, length } => self.traffic.closed_loop_spec(target, concurrency, length, self.warmup),
        }
    }

    /// What this process offers: its share of the rate; nothing set in a closed loop.
    fn target_tps(&self) -> f64 {
        match self.pace {
            LoadPace::Open { rate, shard } => rate.target() * shard.share(),
            LoadPace::Closed { .. } => 0.0,
        }
    }
}

impl HasKind for LoadJobError {
    fn kind(&self) -> ErrorKind {
        match self {
            LoadJobError::Session(e) => e.kind(),
            // The endpoint the user named does not exist or does not serve.
            LoadJobError::Endpoint { source, .. }
                if matches!(source.aws_kind(), AwsErrorKind::NotFound | AwsErrorKind::Validation) =>
            {
                ErrorKind::Usage
            }
            LoadJobError::Endpoint { source, .. } | LoadJobError::Api(source) => source.kind(),
            LoadJobError::Deploy(_) => ErrorKind::Infrastructure,
            LoadJobError::Load(e) => e.kind(),
            LoadJobError::AsyncInputBucket => ErrorKind::Usage,
        }
    }
}

/// Runs `job` at `target` on `session`: deploys its endpoint if asked (and
/// always takes it away), sends each payload once, drives and judges the
/// step, and adds the server's CloudWatch figures.
pub async fn run(
    session: &Session,
    target: &LoadTarget,
    job: &LoadJob,
    progress: &Arc<Progress>,
) -> Result<(StepResult, LoadRun), LoadJobError> {
    let run_id = RunId::generate();
    let storage = job.asynchronous.as_ref().map(|a| a.buckets.for_run(run_id.as_str()));
    match target {
        LoadTarget::Existing { endpoint, variant } => {
            if storage.as_ref().is_some_and(|s| s.owned_bucket.is_some()) {
                return Err(LoadJobError::AsyncInputBucket);
            }
            let candidate = inspect(&session.aws.sagemaker, endpoint, variant)
                .await
                .map_err(|source| LoadJobError::Endpoint { endpoint: endpoint.clone(), source })?;
            measure(session, job, storage.as_ref(), endpoint, variant, Some(candidate), progress).await
        }
        LoadTarget::Deployed { candidate, model } => {
            let cleanup = format!("perfsize cleanup --run-id {run_id}");
            let mut env = session.environment(run_id, model.clone(), session.pace.poll, Default::default(), cleanup);
            if let Some(storage) = &storage {
                env = env.serving_async(AsyncServing::of(storage));
            }
            progress.activity(format!("deploying {candidate}"));
            let outcome = async {
                env.prepare().await?;
                let deployed = env.deploy(candidate, &session.cancel_token()).await?;
                let variant = crate::sagemaker::VARIANT_NAME;
                measure(session, job, storage.as_ref(), &deployed.endpoint, variant, Some(candidate.clone()), progress).await
            }
            .await;
            progress.activity("tearing down the endpoint deployed for the step");
            // A teardown that failed outranks the step's own error: it bills.
            env.teardown().await?;
            outcome
        }
    }
}

/// Runs `job` at an HTTP model server: sends each payload once, drives and
/// judges the step. Nothing is deployed and there is no CloudWatch to read.
pub async fn run_at_url(
    target: &HttpEndpoint,
    job: &LoadJob,
    cancel: &CancellationToken,
    progress: &Arc<Progress>,
) -> Result<(StepResult, LoadRun), LoadJobError> {
    let judged = Judged { simulated: false, cancel };
    let (mut step, run) = measure_with(target, &judged, job, target.url(), None, progress).await?;
    step.cloudwatch = ServerMetrics::unavailable("a --url target has no CloudWatch figures");
    Ok((step, run))
}

/// What a measured step is judged in: against a simulator or not, stopped by what.
struct Judged<'a> {
    simulated: bool,
    cancel: &'a CancellationToken,
}

/// Measures a SageMaker endpoint with the driver the job asks for (an
/// asynchronous step's objects under `storage`), and adds the server's
/// CloudWatch figures.
async fn measure(
    session: &Session,
    job: &LoadJob,
    storage: Option<&RunStorage>,
    endpoint: &str,
    variant: &str,
    candidate: Option<Candidate>,
    progress: &Arc<Progress>,
) -> Result<(StepResult, LoadRun), LoadJobError> {
    let cancel = session.cancel_token();
    let judged = Judged { simulated: session.simulated, cancel: &cancel };
    let (mut step, run) = match (&job.asynchronous, storage, job.streaming) {
        (Some(a), Some(storage), _) => {
            let driver = session.invoke_async(storage.input.clone(), a.client.clone());
            let measured = measure_with(&driver, &judged, job, endpoint, candidate, progress).await;
            // Delayed deletions finish before the command exits (at once on Ctrl-C).
            driver.settle(&cancel).await;
            measured?
        }
        (_, _, Some(streaming)) => {
            let driver = session.invoke_stream(streaming).await?;
            measure_with(&driver, &judged, job, endpoint, candidate, progress).await?
        }
        _ => {
            let driver = session.invoke_endpoint().await?;
            measure_with(&driver, &judged, job, endpoint, candidate, progress).await?
        }
    };
    // CloudWatch counts what was sent; requests never sent are never waited for.
    if !job.cloudwatch_wait.is_zero() && !run.cancelled {
        progress.activity("waiting for CloudWatch figures");
        step.cloudwatch = session.server_metrics(endpoint, Some(variant), &run, job.cloudwatch_wait).await;
    }
    Ok((step, run))
}

/// Sends each payload once, then drives and judges the step.
async fn measure_with<D: Driver>(
    driver: &D,
    judged: &Judged<'_>,
    job: &LoadJob,
    endpoint: &str,
    candidate: Option<Candidate>,
    progress: &Arc<Progress>,
) -> Result<(StepResult, LoadRun), LoadJobError> {
    let spec = job.spec(driver.target(endpoint));
    progress.activity(format!("preflight: sending each payload once to {endpoint}"));
    driver.preflight(&spec).await?;
    let pace = match job.pace {
        LoadPace::Open { .. } => format!("{} TPS", crate::format::trim_number(job.target_tps())),
        LoadPace::Closed { concurrency, .. } => format!("closed loop of {concurrency}"),
    };
    progress.activity(format!("{pace} at {endpoint} for {:?} (+{:?} warm-up)", spec.measured(), job.warmup));
    let context = StepContext {
        index: 1,
        phase: Phase::Load,
        simulated: judged.simulated,
        endpoint_name: endpoint.to_string(),
        candidate,
        target_tps: job.target_tps(),
        warmup_seconds: job.warmup.as_secs_f64(),
        requirements: job.requirements,
        horizon: LOAD_HORIZON,
        steady_from: None,
        streaming: job.streaming.as_ref().map(|s| s.requirements),
    };
    Ok(drive_and_judge(driver, spec, context, progress, judged.cancel).await?)
}

/// Drives `spec` with a live per-second view, and judges what it measured.
pub(super) async fn drive_and_judge<D: Driver>(
    driver: &D,
    spec: LoadSpec,
    context: StepContext,
    progress: &Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<(StepResult, LoadRun), LoadError> {
    let live = Arc::clone(progress);
    drive_and_judge_with(driver, spec, context, Arc::new(move |row| live.second(row)), cancel).await
}

/// Drives `spec`, handing each second to `live`, and judges what it measured.
pub(super) async fn drive_and_judge_with<D: Driver>(
    driver: &D,
    spec: LoadSpec,
    context: StepContext,
    live: ProgressFn,
    cancel: &CancellationToken,
) -> Result<(StepResult, LoadRun), LoadError> {
    let run = driver.drive(spec, cancel.clone(), Some(live)).await?;
    Ok((StepResult::from_run(context, &run), run))
}
