//! The environment manager on aws-sdk-sagemaker.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_sagemaker::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sagemaker::types::{
    AsyncInferenceClientConfig, AsyncInferenceConfig, AsyncInferenceOutputConfig, ContainerDefinition, DesiredWeightAndCapacity,
    EndpointStatus, Tag,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{ApiError, DeployError, Deployed, Environment, Kind, Patience, RUN_TAG, RunId, SharedLedger, resource_name};
use crate::s3::{RunStorage, S3Location};
use crate::sagemaker::AwsErrorKind;
use crate::vocab::{Candidate, MemorySize, ServerlessError, ServerlessSize};

/// The variant every perfsize endpoint serves through.
use crate::sagemaker::VARIANT_NAME as VARIANT;

/// Where the model under test comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// A SageMaker model that exists already; perfsize never modifies or deletes it.
    Existing(String),
    /// A model perfsize creates for the run and deletes at the end.
    Create { image: String, model_data_url: Option<String>, execution_role_arn: String, environment: Vec<(String, String)> },
}

/// The clients of what the environment creates.
#[derive(Debug, Clone)]
pub struct Clients {
    pub sagemaker: aws_sdk_sagemaker::Client,
    pub autoscaling: aws_sdk_applicationautoscaling::Client,
    pub s3: aws_sdk_s3::Client,
    /// For the alarm that wakes an asynchronous endpoint at zero.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

/// An asynchronous endpoint's own settings: where it writes answers and
/// failure files. How many requests each instance takes at once is the
/// candidate's (`Fleet::max_concurrent_invocations`): it is sized.
#[derive(Debug, Clone, PartialEq)]
pub struct AsyncServing {
    pub output: S3Location,
    pub failure: S3Location,
    /// The bucket to create in `prepare` and delete in teardown.
    pub owned_bucket: Option<String>,
}

impl AsyncServing {
    /// The settings of an asynchronous run whose objects are in `storage`.
    pub fn of(storage: &RunStorage) -> AsyncServing {
        AsyncServing {
            output: storage.output.clone(),
            failure: storage.failure.clone(),
            owned_bucket: storage.owned_bucket.clone(),
        }
    }

    /// The AsyncInferenceConfig of `candidate`'s endpoint config.
    fn config(&self, candidate: &Candidate) -> AsyncInferenceConfig {
        let output = AsyncInferenceOutputConfig::builder()
            .s3_output_path(self.output.to_string())
            .s3_failure_path(self.failure.to_string())
            .build();
        let client = candidate
            .fleet()
            .and_then(|f| f.max_concurrent_invocations)
            .map(|n| AsyncInferenceClientConfig::builder().max_concurrent_invocations_per_instance(n as i32).build());
        AsyncInferenceConfig::builder().output_config(output).set_client_config(client).build()
    }
}

/// Deploys candidates as SageMaker endpoints.
pub struct SageMakerEnvironment {
    pub(super) client: aws_sdk_sagemaker::Client,
    pub(super) autoscaling: aws_sdk_applicationautoscaling::Client,
    s3: aws_sdk_s3::Client,
    pub(super) cloudwatch: aws_sdk_cloudwatch::Client,
    run: RunId,
    model: ModelSource,
    model_name: String,
    pub(super) poll: Duration,
    pub(super) deploy_timeout: Duration,
    /// How long teardown retries a deletion AWS refuses for now.
    teardown_timeout: Duration,
    pub(super) ledger: SharedLedger,
    used_names: Mutex<HashSet<String>>,
    /// Asynchronous endpoints: their settings. None: real-time.
    asynchronous: Option<AsyncServing>,
}

pub(super) fn api_error<E, R>(operation: &'static str, e: &SdkError<E, R>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match e.as_service_error() {
        Some(service) => ApiError {
            operation,
            code: service.code().unwrap_or("Unknown").to_string(),
            message: service.message().unwrap_or_default().to_string(),
        },
        None => ApiError { operation, code: "transport".into(), message: crate::error_chain(e) },
    }
}

/// What DescribeEndpoint says of an endpoint and its variant.
pub(super) struct EndpointState {
    pub(super) status: EndpointStatus,
    pub(super) failure_reason: Option<String>,
    /// Instances in service, and asked for (they differ while it scales).
    pub(super) current: Option<i32>,
    pub(super) desired: Option<i32>,
}

/// The endpoint's state, or None once it no longer exists.
pub(super) async fn describe_endpoint(
    client: &aws_sdk_sagemaker::Client,
    endpoint: &str,
) -> Result<Option<EndpointState>, ApiError> {
    match client.describe_endpoint().endpoint_name(endpoint).send().await {
        Ok(out) => {
            let variant = out.production_variants().iter().find(|v| v.variant_name() == Some(VARIANT));
            Ok(Some(EndpointState {
                status: out.endpoint_status.clone().unwrap_or_else(|| EndpointStatus::from("missing")),
                failure_reason: out.failure_reason.clone(),
                current: variant.and_then(|v| v.current_instance_count),
                desired: variant.and_then(|v| v.desired_instance_count),
            }))
        }
        Err(e) => {
            let e = api_error("DescribeEndpoint", &e);
            if is_not_found(&e) { Ok(None) } else { Err(e) }
        }
    }
}

/// Deletes an endpoint, waiting out any deployment in progress (SageMaker
/// refuses to delete those) and throttling, then waits until it is gone —
/// all within `patience`. An endpoint that is already gone is not an error.
pub(super) async fn delete_endpoint(
    client: &aws_sdk_sagemaker::Client,
    endpoint: &str,
    patience: Patience,
) -> Result<(), ApiError> {
    let deadline = Instant::now() + patience.within;
    let deleted = until_accepted(deadline, patience.poll, endpoint, || async {
        client.delete_endpoint().endpoint_name(endpoint).send().await.map(|_| ()).map_err(|e| api_error("DeleteEndpoint", &e))
    })
    .await;
    already_gone_is_fine(deleted)?;
    while until_accepted(deadline, patience.poll, endpoint, || describe_endpoint(client, endpoint)).await?.is_some() {
        if Instant::now() + patience.poll > deadline {
            return Err(ApiError {
                operation: "DeleteEndpoint",
                code: "StillDeleting".into(),
                message: format!("{endpoint} still exists after {}", humantime::format_duration(patience.within)),
            });
        }
        tokio::time::sleep(patience.poll).await;
    }
    Ok(())
}

/// Makes `call` until SageMaker accepts it, retrying every `poll` while the
/// refusal is one for now (see [`refused_for_now`]) and `deadline` is ahead;
/// the last refusal is the error after that.
async fn until_accepted<T, F, Fut>(deadline: Instant, poll: Duration, resource: &str, mut call: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    loop {
        match call().await {
            Err(e) if refused_for_now(&e) && Instant::now() + poll <= deadline => {
                tracing::info!("{resource}: {e}; trying again");
                tokio::time::sleep(poll).await;
            }
            answer => return answer,
        }
    }
}

/// A refusal that time cures: an operation in progress on the resource, or
/// throttling that outlasted the SDK's retries.
fn refused_for_now(e: &ApiError) -> bool {
    matches!(e.aws_kind(), AwsErrorKind::InProgress | AwsErrorKind::Throttled)
}

/// Deletes one resource, endpoints waiting until they are gone; something
/// already gone is not an error.
pub(super) async fn delete(clients: &Clients, kind: Kind, name: &str, patience: Patience) -> Result<(), ApiError> {
    match kind {
        Kind::ScalableTarget => super::autoscaling::deregister(&clients.autoscaling, name).await,
        Kind::Alarm => super::autoscaling::delete_alarm(&clients.cloudwatch, name).await,
        Kind::Endpoint => delete_endpoint(&clients.sagemaker, name, patience).await,
        Kind::EndpointConfig => delete_endpoint_config(&clients.sagemaker, name).await,
        Kind::Model => delete_model(&clients.sagemaker, name).await,
        Kind::Bucket => Ok(crate::s3::delete_bucket(&clients.s3, name).await?),
    }
}

pub(super) async fn delete_endpoint_config(client: &aws_sdk_sagemaker::Client, config: &str) -> Result<(), ApiError> {
    already_gone_is_fine(
        client
            .delete_endpoint_config()
            .endpoint_config_name(config)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| api_error("DeleteEndpointConfig", &e)),
    )
}

pub(super) async fn delete_model(client: &aws_sdk_sagemaker::Client, model: &str) -> Result<(), ApiError> {
    already_gone_is_fine(
        client.delete_model().model_name(model).send().await.map(|_| ()).map_err(|e| api_error("DeleteModel", &e)),
    )
}

/// A deletion that finds nothing to delete has done its job.
pub(super) fn already_gone_is_fine(result: Result<(), ApiError>) -> Result<(), ApiError> {
    match result {
        Err(e) if is_not_found(&e) => Ok(()),
        other => other,
    }
}

/// A create call that finds our own uniquely named resource already there
/// succeeded earlier: its answer was lost and the SDK retried.
fn created_or_ours(result: Result<(), ApiError>) -> Result<(), ApiError> {
    match result {
        Err(e) if e.aws_kind() == AwsErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

fn is_not_found(e: &ApiError) -> bool {
    e.aws_kind() == AwsErrorKind::NotFound
}

/// SageMaker's own refusals of a configuration (a quota, a validation), as
/// opposed to AWS failing us (throttling past retries, credentials, outages).
fn is_rejection(e: &ApiError) -> bool {
    !matches!(e.aws_kind(), AwsErrorKind::Throttled | AwsErrorKind::Credentials | AwsErrorKind::Other)
}

/// A failed create or resize of `candidate`: SageMaker refusing the
/// configuration makes it not deployable (the run goes on without it);
/// anything else is AWS failing the run.
fn deploy_error(candidate: &Candidate, e: ApiError) -> DeployError {
    if !is_rejection(&e) {
        return e.into();
    }
    let reason = match e.aws_kind() {
        AwsErrorKind::LimitExceeded => quota_reached(candidate, &e),
        _ => e.message,
    };
    DeployError::Rejected { candidate: candidate.clone(), reason }
}

/// A quota refusal names the quota and how to raise it: SageMaker's quotas
/// per instance type are called "<type> for endpoint usage" in Service
/// Quotas, whose codes differ per type and are found by that name.
fn quota_reached(candidate: &Candidate, e: &ApiError) -> String {
    let quota = match candidate {
        Candidate::Instances(fleet) => format!("{} for endpoint usage", fleet.instance_type),
        // Serverless quotas are per account: total concurrency and endpoints.
        Candidate::Serverless(_) => "Total concurrency that can be allocated across all serverless endpoints".to_string(),
    };
    format!(
        "{}: {} — the account quota \"{quota}\" is reached; find its code with \
         `aws service-quotas list-service-quotas --service-code sagemaker \
         --query \"Quotas[?QuotaName=='{quota}'].QuotaCode\"` and raise it with \
         `aws service-quotas request-service-quota-increase --service-code sagemaker --quota-code CODE --desired-value N`",
        e.code, e.message
    )
}

impl SageMakerEnvironment {
    pub fn new(
        clients: Clients,
        run: RunId,
        model: ModelSource,
        poll: Duration,
        deploy_timeout: Duration,
        ledger: SharedLedger,
    ) -> SageMakerEnvironment {
        let model_name = match &model {
            ModelSource::Existing(name) => name.clone(),
            ModelSource::Create { .. } => resource_name(&run, &["model"]),
        };
        SageMakerEnvironment {
            client: clients.sagemaker,
            autoscaling: clients.autoscaling,
            s3: clients.s3,
            cloudwatch: clients.cloudwatch,
            run,
            model,
            model_name,
            poll,
            deploy_timeout,
            // As long as a deployment may take, unless told otherwise.
            teardown_timeout: deploy_timeout,
            ledger,
            used_names: Mutex::new(HashSet::new()),
            asynchronous: None,
        }
    }

    /// Deploys asynchronous endpoints with `serving`'s settings from now on.
    /// Teardown gives up on a deletion AWS keeps refusing after `timeout`.
    pub fn teardown_within(mut self, timeout: Duration) -> SageMakerEnvironment {
        self.teardown_timeout = timeout;
        self
    }

    pub fn serving_async(mut self, serving: AsyncServing) -> SageMakerEnvironment {
        self.asynchronous = Some(serving);
        self
    }

    fn tags(&self) -> Vec<Tag> {
        vec![
            Tag::builder().key(RUN_TAG).value(self.run.as_str()).build(),
            Tag::builder().key("perfsize:version").value(env!("CARGO_PKG_VERSION")).build(),
        ]
    }

    /// A fresh name for `candidate` (a second deployment of the same candidate
    /// in one run gets a suffix, since the first may still be deleting).
    fn name_for(&self, candidate: &Candidate) -> String {
        let parts = candidate.name_parts();
        let base = resource_name(&self.run, &parts.iter().map(String::as_str).collect::<Vec<_>>());
        let mut used = crate::error::lock(&self.used_names);
        // The suffix goes on after the base is cut to fit, so names stay distinct.
        let with_suffix = |n: u32| {
            let suffix = format!("-r{n}");
            let mut name = base.clone();
            name.truncate(63 - suffix.len());
            format!("{}{suffix}", name.trim_end_matches('-'))
        };
        let name = std::iter::once(base.clone())
            .chain((2..).map(with_suffix))
            .find(|name| !used.contains(name))
            .expect("an unused name exists");
        used.insert(name.clone());
        name
    }

    pub(super) fn record_created(&self, kind: Kind, name: &str) {
        crate::error::lock(&self.ledger).created(kind, name);
    }

    pub(super) fn record_deleted(&self, kind: Kind, name: &str) {
        crate::error::lock(&self.ledger).deleted(kind, name);
    }

    fn clients(&self) -> Clients {
        Clients {
            sagemaker: self.client.clone(),
            autoscaling: self.autoscaling.clone(),
            s3: self.s3.clone(),
            cloudwatch: self.cloudwatch.clone(),
        }
    }

    async fn describe(&self, endpoint: &str) -> Result<Option<EndpointState>, ApiError> {
        describe_endpoint(&self.client, endpoint).await
    }

    /// Polls until the endpoint leaves Creating/Updating, then returns its
    /// status, failure reason and current instance count.
    async fn wait_settled(
        &self,
        candidate: &Candidate,
        endpoint: &str,
        cancel: &CancellationToken,
    ) -> Result<EndpointState, DeployError> {
        let started = Instant::now();
        loop {
            let state = self.describe(endpoint).await?;
            match state {
                Some(state)
                    if !matches!(
                        state.status,
                        EndpointStatus::Creating
                            | EndpointStatus::Updating
                            | EndpointStatus::SystemUpdating
                            | EndpointStatus::RollingBack
                    ) =>
                {
                    return Ok(state);
                }
                None => {
                    return Err(DeployError::Rejected {
                        candidate: candidate.clone(),
                        reason: format!("endpoint {endpoint} disappeared"),
                    });
                }
                _ => {}
            }
            if started.elapsed() > self.deploy_timeout {
                return Err(DeployError::TimedOut { candidate: candidate.clone(), waited: started.elapsed() });
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = cancel.cancelled() => return Err(DeployError::Cancelled { candidate: candidate.clone() }),
            }
        }
    }

    fn patience(&self) -> Patience {
        Patience { poll: self.poll, within: self.teardown_timeout }
    }

    async fn delete_endpoint(&self, endpoint: &str) -> Result<(), ApiError> {
        delete_endpoint(&self.client, endpoint, self.patience()).await?;
        let mut ledger = crate::error::lock(&self.ledger);
        ledger.close(endpoint);
        ledger.deleted(Kind::Endpoint, endpoint);
        Ok(())
    }

    async fn delete_config(&self, config: &str) -> Result<(), ApiError> {
        delete_endpoint_config(&self.client, config).await?;
        self.record_deleted(Kind::EndpointConfig, config);
        Ok(())
    }

    /// Removes a deployment that did not make it, keeping the first error.
    async fn abandon(&self, endpoint: Option<&str>, config: &str, error: DeployError) -> DeployError {
        if let Some(endpoint) = endpoint
            && let Err(e) = self.delete_endpoint(endpoint).await
        {
            tracing::warn!("cannot delete {endpoint} after a failed deployment: {e}");
        }
        if let Err(e) = self.delete_config(config).await {
            tracing::warn!("cannot delete {config} after a failed deployment: {e}");
        }
        error
    }
}

impl SageMakerEnvironment {
    /// Creates the run's own bucket, when an asynchronous run needs one.
    async fn create_bucket(&self) -> Result<(), ApiError> {
        let Some(bucket) = self.asynchronous.as_ref().and_then(|a| a.owned_bucket.as_deref()) else { return Ok(()) };
        self.record_created(Kind::Bucket, bucket);
        Ok(crate::s3::create_bucket(&self.s3, bucket).await?)
    }

    async fn prepare_model(&self) -> Result<(), ApiError> {
        let ModelSource::Create { image, model_data_url, execution_role_arn, environment } = &self.model else {
            // An existing model must exist before anything is deployed for it.
            return self
                .client
                .describe_model()
                .model_name(&self.model_name)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| api_error("DescribeModel", &e));
        };
        let mut container = ContainerDefinition::builder().image(image);
        if let Some(url) = model_data_url {
            container = container.model_data_url(url);
        }
        for (k, v) in environment {
            container = container.environment(k, v);
        }
        // In the ledger before the call: if the answer is lost, teardown still deletes it.
        self.record_created(Kind::Model, &self.model_name);
        let created = self
            .client
            .create_model()
            .model_name(&self.model_name)
            .execution_role_arn(execution_role_arn)
            .primary_container(container.build())
            .set_tags(Some(self.tags()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| api_error("CreateModel", &e));
        created_or_ours(created)
    }
}

impl Environment for SageMakerEnvironment {
    async fn prepare(&self) -> Result<(), ApiError> {
        self.create_bucket().await?;
        self.prepare_model().await
    }

    async fn deploy(&self, candidate: &Candidate, cancel: &CancellationToken) -> Result<Deployed, DeployError> {
        let name = self.name_for(candidate);
        let started = Instant::now();
        let variant = super::variant::production_variant(candidate, &self.model_name);
        // Each resource is in the ledger before its create call: if the answer
        // is lost, teardown still deletes it (deleting what is not there is fine).
        self.record_created(Kind::EndpointConfig, &name);
        let created = self
            .client
            .create_endpoint_config()
            .endpoint_config_name(&name)
            .production_variants(variant)
            .set_async_inference_config(self.asynchronous.as_ref().map(|a| a.config(candidate)))
            .set_tags(Some(self.tags()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| api_error("CreateEndpointConfig", &e));
        if let Err(e) = created_or_ours(created) {
            return Err(self.abandon(None, &name, deploy_error(candidate, e)).await);
        }
        {
            let mut ledger = crate::error::lock(&self.ledger);
            ledger.created(Kind::Endpoint, &name);
            ledger.open(&name, candidate);
        }
        let created = self
            .client
            .create_endpoint()
            .endpoint_name(&name)
            .endpoint_config_name(&name)
            .set_tags(Some(self.tags()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| api_error("CreateEndpoint", &e));
        if let Err(e) = created_or_ours(created) {
            return Err(self.abandon(Some(&name), &name, deploy_error(candidate, e)).await);
        }
        match self.wait_settled(candidate, &name, cancel).await {
            Ok(EndpointState { status: EndpointStatus::InService, .. }) => Ok(Deployed {
                endpoint: name.clone(),
                config: name,
                candidate: candidate.clone(),
                deploy_seconds: started.elapsed().as_secs_f64(),
            }),
            Ok(EndpointState { status, failure_reason, .. }) => {
                let reason = failure_reason.unwrap_or_else(|| format!("endpoint ended {status:?}"));
                Err(self.abandon(Some(&name), &name, DeployError::Rejected { candidate: candidate.clone(), reason }).await)
            }
            Err(error) => Err(self.abandon(Some(&name), &name, error).await),
        }
    }

    async fn resize(&self, deployed: &mut Deployed, count: u32, cancel: &CancellationToken) -> Result<(), DeployError> {
        let Some(fleet) = deployed.candidate.fleet() else {
            let reason = "a serverless endpoint has no instances to resize".to_string();
            return Err(DeployError::Rejected { candidate: deployed.candidate.clone(), reason });
        };
        let target = fleet.with_count(count).candidate();
        let started = Instant::now();
        let updated = self
            .client
            .update_endpoint_weights_and_capacities()
            .endpoint_name(&deployed.endpoint)
            .desired_weights_and_capacities(
                DesiredWeightAndCapacity::builder().variant_name(VARIANT).desired_instance_count(count as i32).build(),
            )
            .send()
            .await;
        if let Err(e) = updated {
            return Err(deploy_error(&target, api_error("UpdateEndpointWeightsAndCapacities", &e)));
        }
        let EndpointState { status, failure_reason: reason, current, .. } =
            self.wait_settled(&target, &deployed.endpoint, cancel).await?;
        if status != EndpointStatus::InService || current != Some(count as i32) {
            return Err(DeployError::Rejected {
                candidate: target,
                reason: reason.unwrap_or_else(|| format!("the endpoint stayed at {current:?} instances ({status:?})")),
            });
        }
        {
            let mut ledger = crate::error::lock(&self.ledger);
            ledger.close(&deployed.endpoint);
            ledger.open(&deployed.endpoint, &target);
        }
        deployed.candidate = target;
        deployed.deploy_seconds = started.elapsed().as_secs_f64();
        Ok(())
    }

    async fn release(&self, deployed: &Deployed) -> Result<(), ApiError> {
        self.delete_endpoint(&deployed.endpoint).await?;
        self.delete_config(&deployed.config).await
    }

    async fn teardown(&self) -> Result<(), ApiError> {
        let live: Vec<(Kind, String)> = crate::error::lock(&self.ledger).live.clone();
        let mut first_error = None;
        for kind in Kind::DELETION_ORDER {
            for (_, name) in live.iter().filter(|(k, _)| *k == kind) {
                let result = match kind {
                    // An endpoint also closes its billing period in the ledger.
                    Kind::Endpoint => self.delete_endpoint(name).await,
                    _ => delete(&self.clients(), kind, name, self.patience()).await.map(|()| self.record_deleted(kind, name)),
                };
                if let Err(e) = result {
                    tracing::error!("teardown: cannot delete {kind} {name}: {e}");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn ledger(&self) -> SharedLedger {
        self.ledger.clone()
    }
}

/// A described ServerlessConfig, checked as perfsize's own.
fn serverless_size(c: &aws_sdk_sagemaker::types::ProductionVariantServerlessConfig) -> Result<ServerlessSize, ServerlessError> {
    let number = |v: Option<i32>| v.unwrap_or(0).max(0) as u32;
    let memory = MemorySize::try_from(number(c.memory_size_in_mb()))?;
    ServerlessSize::new(memory, number(c.max_concurrency()), c.provisioned_concurrency().map(|p| p.max(0) as u32))
}

/// The instance type and count (or the serverless configuration) behind `variant` of an existing endpoint,
/// which must be InService. Reads only; perfsize load uses it to label results.
pub async fn inspect(client: &aws_sdk_sagemaker::Client, endpoint: &str, variant: &str) -> Result<Candidate, ApiError> {
    let refuse = |message: String| ApiError { operation: "DescribeEndpoint", code: "NotUsable".into(), message };
    let described =
        client.describe_endpoint().endpoint_name(endpoint).send().await.map_err(|e| api_error("DescribeEndpoint", &e))?;
    let status = described.endpoint_status.clone().map(|s| s.as_str().to_string()).unwrap_or_default();
    if status != "InService" && status != "Updating" {
        return Err(refuse(format!("endpoint {endpoint} is {status}; it must be InService")));
    }
    let current = described
        .production_variants()
        .iter()
        .find(|v| v.variant_name() == Some(variant))
        .ok_or_else(|| refuse(format!("endpoint {endpoint} has no variant {variant} (pass --variant)")))?
        .current_instance_count
        .unwrap_or(1);
    let config_name = described.endpoint_config_name().unwrap_or_default();
    let config = client
        .describe_endpoint_config()
        .endpoint_config_name(config_name)
        .send()
        .await
        .map_err(|e| api_error("DescribeEndpointConfig", &e))?;
    let described_variant = config.production_variants().iter().find(|v| v.variant_name() == Some(variant));
    if let Some(serverless) = described_variant.and_then(|v| v.serverless_config()) {
        return serverless_size(serverless).map(Candidate::Serverless).map_err(|e| refuse(e.to_string()));
    }
    let instance_type = described_variant.and_then(|v| v.instance_type()).map(|t| t.as_str().to_string()).ok_or_else(|| {
        refuse(format!("endpoint config {config_name} names neither instances nor a serverless config for {variant}"))
    })?;
    let instance_type = instance_type.parse().map_err(|e: crate::catalog::UnknownInstanceType| refuse(e.to_string()))?;
    Ok(Candidate::new(instance_type, current.max(1) as u32))
}
