//! Argument groups shared by several commands, and the parsers that turn
//! their text into checked values. perfsizesagemaker's snake_case names are
//! accepted as aliases so existing Jenkins jobs move over unchanged.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::aws::AwsOptions;
use crate::load::{Arrivals, AsyncIo, Cleanup, PayloadMix, PayloadSpec, Polling, S3Location, payload};
use crate::plan::Traffic;
use crate::vocab::Requirements;

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

/// Asynchronous inference: where inputs go and how outputs are looked for.
/// Each flag also reads the environment variable of the async guides.
#[derive(Debug, Clone, Args)]
pub struct AsyncArgs {
    /// Invoke asynchronously (InvokeEndpointAsync, inputs and outputs in S3).
    #[arg(long = "async")]
    pub asynchronous: bool,
    /// Bucket the inputs are uploaded to (it must exist).
    #[arg(long, env = "ASYNC_SM_INPUT_BUCKET", value_name = "BUCKET")]
    pub input_bucket: Option<String>,
    /// Prefix of the inputs; perfsize writes only under it, in a folder per step.
    #[arg(long, env = "ASYNC_SM_INPUT_PREFIX", default_value = "perfsize/", value_name = "PREFIX")]
    pub input_prefix: String,
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
    /// Tasks that upload and submit (outputs are watched apart from them).
    #[arg(long, env = "ASYNC_SM_SUBMISSION_WORKERS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub submission_workers: u32,
    /// What becomes of the objects a request wrote: deleted at once, or kept.
    #[arg(long, env = "ASYNC_SM_CLEANUP_POLICY", default_value = "immediate", value_parser = parse_cleanup, value_name = "immediate|disabled")]
    pub cleanup_policy: Cleanup,
}

fn parse_cleanup(text: &str) -> Result<Cleanup, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "immediate" => Ok(Cleanup::Immediate),
        "disabled" => Ok(Cleanup::Disabled),
        other => Err(format!("`{other}` is not a cleanup policy: use immediate or disabled")),
    }
}

impl AsyncArgs {
    /// The asynchronous settings, None without `--async`; a setting that
    /// cannot work is a usage error naming it.
    pub fn io(&self) -> Result<Option<AsyncIo>, String> {
        if !self.asynchronous {
            return Ok(None);
        }
        let bucket = self
            .input_bucket
            .as_deref()
            .filter(|b| !b.trim().is_empty())
            .ok_or("--async needs --input-bucket (or ASYNC_SM_INPUT_BUCKET): the bucket inputs are uploaded to")?;
        let input = S3Location::parse(&format!("s3://{bucket}/{}", self.input_prefix.trim_start_matches('/')))
            .ok_or_else(|| format!("--input-bucket {bucket}: not a bucket name"))?;
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
        Ok(Some(AsyncIo {
            input,
            polling: Polling {
                interval: self.polling_interval,
                max_interval: self.max_polling_interval,
                multiplier: self.backoff_multiplier,
                max_wait: self.max_wait,
            },
            submission_workers: self.submission_workers as usize,
            cleanup: self.cleanup_policy,
        }))
    }
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
