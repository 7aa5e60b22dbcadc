//! A session: the AWS clients of one command, the timing that differs
//! between AWS and the simulator, the interrupt token, and the pieces every
//! job builds from them — the environment manager (whose live resources a
//! forced exit prints), signed InvokeEndpoint traffic, CloudWatch figures.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::aws::{Aws, AwsOptions, AwsSetupError};
use crate::environment::{Clients, ModelSource, Patience, RunId, SageMakerEnvironment, SharedLedger};
use crate::error::{ErrorKind, HasKind};
use crate::load::{AsyncClient, InvokeAsync, InvokeEndpoint, InvokeStream, LoadRun, RequestSigner, SignerError, StreamOptions};
use crate::plan::Streaming;
use crate::result::{MetricsWindow, ServerMetrics, cloudwatch};
use crate::s3::{Buckets, S3Location};
use crate::sagemaker::VARIANT_NAME;
use crate::signals::Interrupts;

/// Timing that differs between AWS and the simulator.
#[derive(Debug, Clone)]
pub struct Pace {
    /// How often to ask SageMaker whether an endpoint is ready.
    pub poll: Duration,
    /// How long an endpoint may take to deploy before it counts as failed.
    pub deploy_timeout: Duration,
    /// How long teardown retries a deletion AWS refuses for now (throttled,
    /// an endpoint still updating) before it gives up and lists what is left.
    pub teardown_timeout: Duration,
    /// CloudWatch period: SageMaker publishes per minute on AWS.
    pub metrics_period: Duration,
    /// How long to wait for CloudWatch figures, which arrive late on AWS.
    pub metrics_wait: Duration,
    pub metrics_poll: Duration,
    /// Assumed time to deploy an endpoint, for budget and plan estimates.
    pub deploy_estimate: Duration,
    /// How often the auto-scaling test looks at the instances in service.
    pub scaling_poll: Duration,
}

impl Pace {
    /// How teardown retries what AWS refuses for now.
    pub fn teardown_patience(&self) -> Patience {
        Patience { poll: self.poll, within: self.teardown_timeout }
    }

    pub fn for_session(simulated: bool) -> Pace {
        if simulated {
            Pace {
                poll: Duration::from_millis(100),
                deploy_timeout: Duration::from_secs(120),
                teardown_timeout: Duration::from_secs(120),
                metrics_period: Duration::from_secs(1),
                metrics_wait: Duration::from_secs(3),
                metrics_poll: Duration::from_millis(250),
                deploy_estimate: Duration::from_secs(5),
                scaling_poll: Duration::from_millis(250),
            }
        } else {
            Pace {
                poll: Duration::from_secs(15),
                deploy_timeout: Duration::from_secs(60 * 60),
                teardown_timeout: Duration::from_secs(60 * 60),
                metrics_period: Duration::from_secs(60),
                metrics_wait: Duration::from_secs(180),
                metrics_poll: Duration::from_secs(20),
                deploy_estimate: Duration::from_secs(8 * 60),
                scaling_poll: Duration::from_secs(10),
            }
        }
    }
}

/// Why a session or one of its pieces could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Setup(#[from] AwsSetupError),
    #[error(transparent)]
    Signer(#[from] SignerError),
}

impl HasKind for SessionError {
    fn kind(&self) -> ErrorKind {
        match self {
            // Missing region or credentials: the user's configuration.
            SessionError::Setup(_) => ErrorKind::Usage,
            SessionError::Signer(e) => e.kind(),
        }
    }
}

/// The AWS side of one command.
pub struct Session {
    pub aws: Aws,
    /// Talking to perfsize's simulator: every figure says SIMULATED.
    pub simulated: bool,
    pub pace: Pace,
    interrupts: &'static Interrupts,
}

impl Session {
    pub async fn open(options: &AwsOptions, simulated: bool, interrupts: &'static Interrupts) -> Result<Session, SessionError> {
        let aws = Aws::connect(options).await?;
        Ok(Session { aws, simulated, pace: Pace::for_session(simulated), interrupts })
    }

    /// Cancelled at the first Ctrl-C.
    pub fn cancel_token(&self) -> CancellationToken {
        self.interrupts.token()
    }

    pub fn interrupted(&self) -> bool {
        self.interrupts.interrupted()
    }

    /// Signed InvokeEndpoint traffic with the session's credentials, renewed
    /// in the background while the returned driver lives.
    pub async fn invoke_endpoint(&self) -> Result<InvokeEndpoint, SessionError> {
        let signer = RequestSigner::new(self.aws.credentials.clone(), self.aws.region.clone()).await?;
        Ok(InvokeEndpoint::new(self.aws.runtime.clone(), self.aws.runtime_url.clone(), signer))
    }

    /// InvokeEndpointWithResponseStream traffic read token by token, with
    /// the session's credentials renewed while the returned driver lives.
    pub async fn invoke_stream(&self, streaming: Streaming) -> Result<InvokeStream, SessionError> {
        let signer = RequestSigner::new(self.aws.credentials.clone(), self.aws.region.clone()).await?;
        let options =
            StreamOptions { limits: streaming.requirements.limits, characters_per_token: streaming.characters_per_token };
        Ok(InvokeStream::new(self.aws.runtime_url.clone(), signer, options))
    }

    /// Asynchronous InvokeEndpointAsync traffic, its inputs uploaded under `input`.
    pub fn invoke_async(&self, input: S3Location, client: AsyncClient) -> InvokeAsync {
        InvokeAsync::new(self.aws.runtime.clone(), self.aws.s3.clone(), self.aws.runtime_url.clone(), input, client)
    }

    /// Whether the buckets the user named can be written where perfsize
    /// would write (a bucket perfsize creates needs no check); the reason
    /// they cannot, otherwise. Asked before anything is deployed.
    pub async fn check_buckets(&self, buckets: &Buckets) -> Result<(), String> {
        let Buckets::Named { input, output } = buckets else { return Ok(()) };
        self.check_writable(input).await?;
        if output != input { self.check_writable(output).await } else { Ok(()) }
    }

    /// Whether objects can be written under `location`: the bucket exists
    /// and a probe object under the prefix can be put and deleted. The
    /// reason it cannot, otherwise.
    async fn check_writable(&self, location: &S3Location) -> Result<(), String> {
        let s3 = &self.aws.s3;
        let explain = |what: &str, e: &(dyn std::error::Error + 'static)| {
            format!("{what} s3://{}/{}: {}", location.bucket, location.prefix, crate::error_chain(e))
        };
        s3.head_bucket().bucket(&location.bucket).send().await.map_err(|e| explain("cannot reach bucket", &e))?;
        let probe = format!("{}.perfsize-write-check", location.prefix);
        s3.put_object()
            .bucket(&location.bucket)
            .key(&probe)
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"perfsize"))
            .send()
            .await
            .map_err(|e| explain("cannot write to", &e))?;
        s3.delete_object().bucket(&location.bucket).key(&probe).send().await.map_err(|e| explain("cannot delete from", &e))?;
        Ok(())
    }

    /// The environment manager of run `run_id`. A forced exit (third Ctrl-C)
    /// prints what it still has alive and `cleanup`, the command that removes it.
    pub fn environment(
        &self,
        run_id: RunId,
        model: ModelSource,
        poll: Duration,
        ledger: SharedLedger,
        cleanup: String,
    ) -> SageMakerEnvironment {
        let live = Arc::clone(&ledger);
        self.interrupts.on_forced_exit(move || {
            let mut lines: Vec<String> =
                crate::error::lock(&live).live().into_iter().map(|r| format!("  still alive: {r}")).collect();
            if !lines.is_empty() {
                lines.push(format!("remove them with: {cleanup}"));
            }
            lines
        });
        SageMakerEnvironment::new(self.clients(), run_id, model, poll, self.pace.deploy_timeout, ledger)
            .teardown_within(self.pace.teardown_timeout)
    }

    /// The clients of what an environment creates (and cleanup deletes).
    pub fn clients(&self) -> Clients {
        Clients {
            sagemaker: self.aws.sagemaker.clone(),
            autoscaling: self.aws.autoscaling.clone(),
            s3: self.aws.s3.clone(),
            cloudwatch: self.aws.cloudwatch.clone(),
        }
    }

    /// The server's CloudWatch figures for the measured window of `run` on
    /// `endpoint`, waiting at most `wait` for them to arrive.
    pub async fn server_metrics(&self, endpoint: &str, variant: Option<&str>, run: &LoadRun, wait: Duration) -> ServerMetrics {
        let window = MetricsWindow::of_run(endpoint, variant.unwrap_or(VARIANT_NAME), run, self.pace.metrics_period);
        cloudwatch::fetch(&self.aws.cloudwatch, &window, wait, self.pace.metrics_poll, &self.cancel_token()).await
    }
}
