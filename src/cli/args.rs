//! Argument groups shared by several commands, and the parsers that turn
//! their text into checked values. perfsizesagemaker's snake_case names are
//! accepted as aliases so existing Jenkins jobs move over unchanged.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::Failure;
use crate::aws::AwsOptions;
use crate::load::prompts::{StreamFormat, SyntheticPrompts};
use crate::load::{Arrivals, AsyncClient, Cleanup, PayloadMix, PayloadSpec, Polling, payload};
use crate::plan::{Asynchronous, Streaming, Traffic};
use crate::s3::{Buckets, S3Location};
use crate::vocab::{Requirements, StreamLimits, StreamRequirements, TokenPace};

/// A duration as people write it: "90s", "3m", "1h 30m", "250ms"; a bare
/// number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return if seconds.is_finite() && seconds >= 0.0 {
            Ok(Duration::from_secs_f64(seconds))
        } else {
            Err(format!("`{text}` is not a duration"))
        };
    }
    humantime::parse_duration(text).map_err(|e| format!("`{text}` is not a duration like 90s, 3m or 1h30m ({e})"))
}

/// Minutes as perfsizesagemaker's `--*_minutes` flags take them.
pub fn parse_minutes(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(minutes) if minutes.is_finite() && minutes >= 0.0 => Ok(Duration::from_secs_f64(minutes * 60.0)),
        _ => Err(format!("`{text}` is not a number of minutes")),
    }
}

/// A positive, finite number (a rate, a limit).
pub fn parse_positive(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("`{text}` is not a positive number")),
    }
}

/// A finite number ≥ 0.
pub fn parse_non_negative(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("`{text}` is not a number ≥ 0")),
    }
}

/// Where and as whom to reach AWS.
#[derive(Debug, Clone, Args)]
pub struct AwsArgs {
    /// AWS region (default: the standard chain, e.g. AWS_REGION).
    #[arg(long)]
    pub region: Option<String>,
    /// Named AWS profile for credentials and region.
    #[arg(long = "profile", value_name = "NAME")]
    pub aws_profile: Option<String>,
    /// IAM role to assume for every AWS call.
    #[arg(long, alias = "iam_role_arn", value_name = "ARN")]
    pub role_arn: Option<String>,
    /// Send every AWS call to this URL (a standalone `perfsize simulator`, say).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

impl AwsArgs {
    pub fn options(&self) -> AwsOptions {
        AwsOptions {
            region: self.region.clone(),
            profile: self.aws_profile.clone(),
            role_arn: self.role_arn.clone(),
            endpoint_url: self.endpoint_url.clone(),
            static_credentials: false,
        }
    }
}

/// Running against the built-in simulator.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Run against the built-in SageMaker simulator, in-process on loopback.
    #[arg(long)]
    pub simulate: bool,
    /// Simulator profile (TOML) for --simulate; the shipped default otherwise.
    #[arg(long, value_name = "FILE", requires = "simulate")]
    pub sim_profile: Option<PathBuf>,
}

/// What the traffic carries and how it is paced.
#[derive(Debug, Clone, Args)]
pub struct TrafficArgs {
    /// Request body file, with an optional weight (FILE or FILE:WEIGHT); repeatable.
    #[arg(long = "payload", value_name = "FILE[:WEIGHT]")]
    pub payloads: Vec<String>,
    /// perfsizesagemaker's payload list: '[{"path": "req.json", "weight": 100}]'.
    #[arg(long, alias = "scenario_requests", value_name = "JSON")]
    pub scenario_requests: Option<String>,
    /// Content-Type of the requests.
    #[arg(long, default_value = "application/json")]
    pub content_type: String,
    /// Accept header of the requests.
    #[arg(long, default_value = "application/json")]
    pub accept: String,
    /// How arrivals are spaced.
    #[arg(long, default_value = "uniform", value_parser = |s: &str| s.parse::<Arrivals>(), value_name = "uniform|poisson")]
    pub arrivals: Arrivals,
    /// Traffic driven before measuring starts, excluded from the statistics.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub warmup: Option<Duration>,
    /// Most requests in flight at once (default: rate × 4 × the latency limit, at least 2 s worth).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_in_flight: Option<u32>,
    /// A request not answered by then counts as a timeout.
    #[arg(long, value_parser = parse_duration, default_value = "70s", value_name = "DURATION")]
    pub request_timeout: Duration,
    /// Seed of Poisson arrivals.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl TrafficArgs {
    /// The traffic these flags describe, every payload file read; a missing
    /// file or bad weight is a usage error.
    pub fn traffic(&self) -> Result<Traffic, payload::PayloadError> {
        Ok(self.traffic_of(self.payloads()?))
    }

    /// The traffic these flags describe, carrying `payloads`.
    pub fn traffic_of(&self, payloads: Arc<PayloadMix>) -> Traffic {
        Traffic {
            payloads,
            content_type: self.content_type.clone(),
            accept: self.accept.clone(),
            arrivals: self.arrivals,
            seed: self.seed,
            max_in_flight: self.max_in_flight.map(|n| n as usize),
            request_timeout: self.request_timeout,
        }
    }

    fn payloads(&self) -> Result<Arc<PayloadMix>, payload::PayloadError> {
        let mut specs: Vec<PayloadSpec> = self.payloads.iter().map(|p| p.parse()).collect::<Result<_, _>>()?;
        if let Some(json) = &self.scenario_requests {
            specs.extend(payload::parse_scenario_requests(json)?);
        }
        Ok(Arc::new(PayloadMix::read(&specs)?))
    }
}

/// Where an asynchronous run's objects go: the user's buckets and prefixes,
/// or (none named) a bucket perfsize creates for the run.
#[derive(Debug, Clone, Args)]
pub struct BucketArgs {
    /// Bucket the inputs are uploaded to (it must exist). Without it, and
    /// without --output-bucket, perfsize creates a bucket for the run and
    /// deletes it with the run.
    #[arg(long, env = "ASYNC_SM_INPUT_BUCKET", value_name = "BUCKET")]
    pub input_bucket: Option<String>,
    /// Prefix of the inputs; perfsize writes only under <prefix><run id>/.
    #[arg(long, env = "ASYNC_SM_INPUT_PREFIX", default_value = "perfsize/", value_name = "PREFIX")]
    pub input_prefix: String,
    /// Bucket the endpoint writes outputs and failure files to (default: the input bucket).
    #[arg(long, env = "ASYNC_SM_OUTPUT_BUCKET", value_name = "BUCKET")]
    pub output_bucket: Option<String>,
    /// Prefix of the outputs; the endpoint writes under <prefix><run id>/.
    #[arg(long, env = "ASYNC_SM_OUTPUT_PREFIX", default_value = "perfsize/", value_name = "PREFIX")]
    pub output_prefix: String,
}

impl BucketArgs {
    /// The user's buckets, or one perfsize creates when none is named.
    pub fn buckets(&self) -> Result<Buckets, String> {
        let named = |bucket: &Option<String>| bucket.as_deref().map(str::trim).filter(|b| !b.is_empty()).map(str::to_string);
        let (input, output) = match (named(&self.input_bucket), named(&self.output_bucket)) {
            (None, None) => return Ok(Buckets::RunOwned),
            (Some(i), None) => (i.clone(), i),
            (None, Some(o)) => (o.clone(), o),
            (Some(i), Some(o)) => (i, o),
        };
        Ok(Buckets::Named {
            input: location("--input", &input, &self.input_prefix)?,
            output: location("--output", &output, &self.output_prefix)?,
        })
    }
}

/// Asynchronous inference: where inputs and outputs go, how each request is
/// sent and watched, and what becomes of the objects. Each flag also reads
/// the environment variable of the async guides (ASYNC_SM_…).
#[derive(Debug, Clone, Args)]
pub struct AsyncArgs {
    /// Invoke asynchronously (InvokeEndpointAsync, inputs and outputs in S3).
    #[arg(long = "async")]
    pub asynchronous: bool,
    #[command(flatten)]
    pub buckets: BucketArgs,
    /// First wait between looks for an output.
    #[arg(long, env = "ASYNC_SM_POLLING_INTERVAL", value_parser = parse_duration, default_value = "1s", value_name = "DURATION")]
    pub polling_interval: Duration,
    /// Longest wait between looks.
    #[arg(long, env = "ASYNC_SM_MAX_POLLING_INTERVAL", value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    pub max_polling_interval: Duration,
    /// Each miss multiplies the wait by this.
    #[arg(long, env = "ASYNC_SM_BACKOFF_MULTIPLIER", value_parser = parse_positive, default_value = "1.5", value_name = "X")]
    pub backoff_multiplier: f64,
    /// A request whose output has not appeared by then is a timeout.
    #[arg(long, env = "ASYNC_SM_MAX_WAIT_TIME", value_parser = parse_duration, default_value = "15m", value_name = "DURATION")]
    pub max_wait: Duration,
    /// Attempts after the first for a throttled or failed S3 or InvokeEndpointAsync call.
    #[arg(long, env = "ASYNC_SM_MAX_RETRIES", default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=20))]
    pub max_retries: u32,
    /// Tasks that upload and submit (outputs are watched apart from them).
    #[arg(long, env = "ASYNC_SM_SUBMISSION_WORKERS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub submission_workers: u32,
    /// Most looks at S3 for outputs at once.
    #[arg(long, env = "ASYNC_SM_POLLING_WORKERS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub polling_workers: u32,
    /// Most requests submitted and not yet done; one due beyond it waits, and its wait counts.
    #[arg(long, env = "ASYNC_SM_MAX_CONCURRENT_JOBS", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_concurrent_jobs: Option<u32>,
    /// How long a request may wait in the endpoint's queue (X-Amzn-SageMaker-RequestTTLSeconds, 60s–6h).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub request_ttl: Option<Duration>,
    /// What becomes of the objects a request wrote: deleted at once, after --cleanup-delay, or kept.
    #[arg(long, env = "ASYNC_SM_CLEANUP_POLICY", default_value = "immediate", value_parser = ["immediate", "delayed", "disabled"], ignore_case = true, value_name = "immediate|delayed|disabled")]
    pub cleanup_policy: String,
    /// How long the delayed policy keeps each request's objects (still deleted before the run exits).
    #[arg(long, env = "ASYNC_SM_CLEANUP_DELAY_SECONDS", value_parser = parse_duration, default_value = "300", value_name = "DURATION")]
    pub cleanup_delay: Duration,
    /// MaxConcurrentInvocationsPerInstance of the endpoints deployed (default: SageMaker's choice); a list (1,2,4) is searched like the types.
    #[arg(long, value_name = "N[,N…]", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_concurrent_invocations: Vec<u32>,
}

impl AsyncArgs {
    /// The asynchronous settings, None without `--async`; a setting that
    /// cannot work with an end-to-end limit of `latency_limit` is a usage
    /// error naming it.
    pub fn asynchronous(&self, latency_limit: Duration) -> Result<Option<Asynchronous>, String> {
        if !self.asynchronous {
            return Ok(None);
        }
        let buckets = self.buckets.buckets()?;
        let cleanup = match self.cleanup_policy.to_ascii_lowercase().as_str() {
            "immediate" => Cleanup::Immediate,
            "delayed" => Cleanup::Delayed(self.cleanup_delay),
            _ => Cleanup::Disabled,
        };
        if cleanup.keeps() && buckets == Buckets::RunOwned {
            return Err("--cleanup-policy disabled keeps the objects, but the bucket perfsize creates goes with its run: name your own with --input-bucket".into());
        }
        if self.polling_interval.is_zero() || self.polling_interval > self.max_polling_interval {
            return Err(format!(
                "--polling-interval {} must be above zero and at most --max-polling-interval {}",
                humantime::format_duration(self.polling_interval),
                humantime::format_duration(self.max_polling_interval)
            ));
        }
        if self.backoff_multiplier < 1.0 {
            return Err(format!("--backoff-multiplier {} would poll ever faster: use 1 or more", self.backoff_multiplier));
        }
        if self.max_wait < self.polling_interval {
            return Err("--max-wait is shorter than one --polling-interval: no output could ever be seen".into());
        }
        if self.max_wait < latency_limit {
            return Err(format!(
                "--max-wait {} is shorter than the end-to-end limit {}: a request would time out before it could be judged slow; raise --max-wait",
                humantime::format_duration(self.max_wait),
                humantime::format_duration(latency_limit)
            ));
        }
        if let Some(ttl) = self.request_ttl
            && !(60..=21_600).contains(&ttl.as_secs())
        {
            return Err(format!(
                "--request-ttl {} must be between 60s and 6h, as SageMaker takes it",
                humantime::format_duration(ttl)
            ));
        }
        Ok(Some(Asynchronous {
            buckets,
            client: AsyncClient {
                polling: Polling {
                    interval: self.polling_interval,
                    max_interval: self.max_polling_interval,
                    multiplier: self.backoff_multiplier,
                    max_wait: self.max_wait,
                },
                submission_workers: self.submission_workers as usize,
                polling_workers: self.polling_workers as usize,
                max_concurrent_jobs: self.max_concurrent_jobs.map(|n| n as usize),
                max_retries: self.max_retries,
                request_ttl: self.request_ttl,
                cleanup,
            },
            max_concurrent_invocations: dedup_in_order(&self.max_concurrent_invocations),
        }))
    }
}

/// `walk` without repeats, in the order given.
fn dedup_in_order(walk: &[u32]) -> Vec<u32> {
    let mut seen = std::collections::HashSet::new();
    walk.iter().copied().filter(|n| seen.insert(*n)).collect()
}

/// `bucket` with `prefix`, both checked: a prefix names a folder in that
/// bucket, never another bucket or a way out of it.
fn location(flag: &str, bucket: &str, prefix: &str) -> Result<S3Location, String> {
    if prefix.starts_with("s3://") || prefix.split('/').any(|part| part == "..") {
        return Err(format!(
            "{flag}-prefix `{prefix}` is outside {flag}-bucket {bucket}: give a folder inside it, like perfsize/"
        ));
    }
    S3Location::new(bucket, prefix).ok_or_else(|| {
        format!("{flag}-bucket `{bucket}` is not a bucket name S3 accepts (3–63 lowercase letters, digits, dots, dashes)")
    })
}

/// What a configuration must achieve.
#[derive(Debug, Clone, Args)]
pub struct RequirementArgs {
    /// Latency limit in milliseconds at --latency-percentile.
    #[arg(long, alias = "latency_success_p99", value_parser = parse_positive, default_value = "500", value_name = "MS")]
    pub latency_p99_ms: f64,
    /// Which latency percentile is judged.
    #[arg(long, value_parser = parse_positive, default_value = "99", value_name = "P")]
    pub latency_percentile: f64,
    /// Largest acceptable share of failed requests, in percent.
    #[arg(long, alias = "percent_fail", value_parser = parse_non_negative, default_value = "0.1", value_name = "PERCENT")]
    pub max_error_percent: f64,
}

impl RequirementArgs {
    pub fn requirements(&self) -> Result<Requirements, crate::vocab::RequirementError> {
        Requirements::new(self.latency_p99_ms, self.latency_percentile, self.max_error_percent)
    }
}

/// A streaming (LLM) workload: `--stream`, the limits each streamed request
/// is held to, and synthetic prompts of given token lengths.
#[derive(Debug, Clone, Args)]
pub struct StreamArgs {
    /// Stream each answer (InvokeEndpointWithResponseStream) and judge the step on goodput: the share of requests meeting every streaming limit.
    #[arg(long)]
    pub stream: bool,
    /// Time to first token limit per request, from its intended start.
    #[arg(long, value_parser = parse_positive, value_name = "MS", requires = "stream")]
    pub ttft_p99_ms: Option<f64>,
    /// Inter-token latency limit: each request's own p99 gap between tokens.
    #[arg(long, value_parser = parse_positive, value_name = "MS", requires = "stream", conflicts_with = "tpot_p99_ms")]
    pub itl_p99_ms: Option<f64>,
    /// Time per output token limit instead: each request's mean gap after its first token.
    #[arg(long, value_parser = parse_positive, value_name = "MS", requires = "stream")]
    pub tpot_p99_ms: Option<f64>,
    /// End-to-end limit per request, intended start to the stream's end.
    #[arg(long, value_parser = parse_positive, value_name = "MS", requires = "stream")]
    pub e2e_p99_ms: Option<f64>,
    /// Least output tokens a second per stream (its tokens over its end-to-end time).
    #[arg(long, value_parser = parse_positive, value_name = "TOKENS", requires = "stream")]
    pub min_tokens_per_second: Option<f64>,
    /// Least share of requests that must meet every limit, percent.
    #[arg(long, value_parser = parse_positive, default_value = "95", value_name = "PERCENT")]
    pub goodput: f64,
    /// Characters a token, for token counts the container does not report (calibrate for your tokenizer).
    #[arg(long, value_parser = parse_positive, default_value = "4", value_name = "N")]
    pub chars_per_token: f64,
    /// Send synthetic prompts of this many tokens instead of payload files.
    #[arg(long, value_name = "N", requires = "stream", conflicts_with_all = ["payloads", "scenario_requests"], value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub prompt_tokens: Option<u32>,
    /// Output tokens each synthetic prompt asks for.
    #[arg(long, value_name = "N", requires = "prompt_tokens", default_value = "128", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub output_tokens: u32,
    /// Vary synthetic prompt and output lengths uniformly by up to this percent either way.
    #[arg(long, value_parser = parse_non_negative, default_value = "0", value_name = "PERCENT", requires = "prompt_tokens")]
    pub token_spread: f64,
    /// The API shape of synthetic prompts: tgi (TGI/LMI: inputs + parameters.max_new_tokens) or chat (OpenAI chat completions).
    #[arg(long, default_value = "tgi", value_parser = |s: &str| s.parse::<StreamFormat>(), value_name = "tgi|chat", requires = "prompt_tokens")]
    pub stream_format: StreamFormat,
}

impl StreamArgs {
    /// The streaming workload, if `--stream`, its limits checked; the error
    /// budget is the run's.
    pub fn streaming(&self, max_error_percent: f64) -> Result<Option<Streaming>, crate::vocab::RequirementError> {
        if !self.stream {
            return Ok(None);
        }
        let token_pace = match (self.itl_p99_ms, self.tpot_p99_ms) {
            (Some(ms), _) => Some(TokenPace::InterTokenP99 { ms }),
            (None, Some(ms)) => Some(TokenPace::PerOutputToken { ms }),
            (None, None) => None,
        };
        let limits = StreamLimits {
            ttft_ms: self.ttft_p99_ms,
            token_pace,
            e2e_ms: self.e2e_p99_ms,
            min_tokens_per_second: self.min_tokens_per_second,
        };
        let requirements = StreamRequirements::new(limits, self.goodput, max_error_percent)?;
        Ok(Some(Streaming { requirements, characters_per_token: self.chars_per_token }))
    }

    /// Synthetic prompts, if asked for; a spread of 100% or more is a usage error.
    pub fn synthetic(&self, seed: u64) -> Result<Option<SyntheticPrompts>, String> {
        let Some(prompt_tokens) = self.prompt_tokens else { return Ok(None) };
        if self.token_spread >= 100.0 {
            return Err(format!("--token-spread must be below 100 (percent either way), got {}", self.token_spread));
        }
        Ok(Some(SyntheticPrompts {
            prompt_tokens,
            output_tokens: self.output_tokens,
            spread_percent: self.token_spread,
            format: self.stream_format,
            characters_per_token: self.chars_per_token,
            seed,
        }))
    }

    /// The traffic of `traffic`'s flags, its payloads synthetic prompts when asked for.
    pub fn traffic(&self, traffic: &TrafficArgs) -> Result<Traffic, Failure> {
        match self.synthetic(traffic.seed).map_err(Failure::usage)? {
            Some(prompts) => Ok(traffic.traffic_of(Arc::new(prompts.mix()?))),
            None => Ok(traffic.traffic()?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("3m"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").unwrap_err().contains("not a duration"));
        assert!(parse_duration("-3").is_err());
        assert_eq!(parse_minutes("0.5"), Ok(Duration::from_secs(30)));
    }

    #[test]
    fn numbers_must_make_sense() {
        assert!(parse_positive("0").is_err());
        assert!(parse_positive("NaN").is_err());
        assert_eq!(parse_non_negative("0"), Ok(0.0));
        assert!(parse_non_negative("-1").is_err());
    }
}
