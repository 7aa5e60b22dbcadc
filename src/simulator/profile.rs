//! The simulator profile: how the simulated model behaves on each instance type
//! (TOML; `resources/simulator/default.toml` is the shipped default).
//!
//! A profile file names only what differs from the shipped profile; every key
//! is optional. For instance type X and field f the first of these that sets f
//! wins:
//!
//! 1. the file's `[instance_types."X"]`;
//! 2. the file's `[default]` (workers and queue_limit scaled by vCPUs);
//! 3. the shipped `[instance_types."X"]`;
//! 4. the shipped `[default]` (scaled likewise; `vcpus` too comes from the
//!    file's `[default]` if it sets it, else from the shipped one).
//!
//! So a file's `[default]` reaches every type, shipped entries included, and a
//! full profile written for an earlier version means what it meant then.
//! Top-level keys and `[stall]` fall back key by key to the shipped profile.
//!
//! The top-level `scaling_time_scale` (default 1, AWS's timing) runs
//! CloudWatch alarms and Application Auto Scaling that many times faster: see
//! [`ScalingClock`]. `s3_capacity_megabytes` bounds the in-memory S3.
//!
//! `[llm]` describes the large language model that response streaming meets,
//! layered the same way over its own `[llm.default]` and
//! `[llm.instance_types."X"]` tables (see [`llm`]). `[serverless]` describes
//! the model behind serverless variants: compute by memory, cold starts,
//! idle expiry (see [`serverless`]).
//!
//! `[[faults]]` tables schedule faults ([`super::faults`]); a file's come
//! before the shipped profile's (which has none).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand_distr::LogNormal;
use serde::Deserialize;

use super::faults::{self, Fault, FaultFile};
use crate::catalog;
pub use llm::{LlmBehaviour, LlmProfile, LlmTiming};
pub use serverless::ServerlessBehaviour;

mod layers;
mod llm;
mod serverless;

use layers::{Layered, layered, types_over};

/// The longest duration a profile may set, in seconds (one day).
const MAX_SECONDS: f64 = 86_400.0;

/// The largest in-memory S3 a profile may ask for (64 GiB): a bound on memory,
/// not a limit anyone should reach.
const MAX_S3_MEGABYTES: u64 = 65_536;

const DEFAULT_PROFILE: &str = include_str!("../../resources/simulator/default.toml");

/// A malformed or unreadable profile. The message names the file, the key and
/// what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read simulator profile {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("simulator profile {origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// A log-normal distribution fitted to a median and a p99: service times in
/// milliseconds, token counts in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogNormalFit {
    pub median: f64,
    pub p99: f64,
}

/// Log-normal service time fitted to a median and a p99, in milliseconds.
pub type ServiceTime = LogNormalFit;

impl LogNormalFit {
    /// z-score of the 99th percentile of a standard normal distribution.
    const Z99: f64 = 2.326_347_874;

    /// Parameters (mu, sigma) of the log-normal in ln-units, or None for a
    /// distribution that is always zero.
    pub fn lognormal_params(&self) -> Option<(f64, f64)> {
        (self.median > 0.0).then(|| {
            let mu = self.median.ln();
            (mu, (self.p99.ln() - mu) / Self::Z99)
        })
    }

    /// The distribution to sample, or None for one that is always zero.
    pub fn sampler(&self) -> Option<LogNormal<f64>> {
        self.lognormal_params().map(|(mu, sigma)| LogNormal::new(mu, sigma).expect("sigma >= 0 is validated"))
    }

    /// Whether it is a distribution at all: 0 <= median <= p99, both finite.
    fn is_ordered(&self) -> bool {
        self.median >= 0.0 && self.p99.is_finite() && self.p99 >= self.median
    }

    /// Mean of the distribution in milliseconds.
    #[cfg(test)]
    fn mean_ms(&self) -> f64 {
        match self.lognormal_params() {
            Some((mu, sigma)) => (mu + sigma * sigma / 2.0).exp(),
            None => 0.0,
        }
    }
}

/// Behaviour of the model on one instance type, after `[default]` was applied.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeBehaviour {
    pub workers: usize,
    pub service_ms: ServiceTime,
    pub queue_limit: usize,
    pub error_rate: f64,
    /// Status the model answers those errors with (400–599): 4xx count as
    /// Invocation4XXErrors, 5xx as Invocation5XXErrors.
    pub error_status: u16,
    /// Non-empty: CreateEndpoint ends Failed with this reason.
    pub deploy_failure: String,
    pub max_instances: u32,
    pub memory_percent: f64,
    pub vcpus: u32,
}

impl TypeBehaviour {
    /// Requests per second one instance serves when saturated.
    #[cfg(test)]
    fn capacity_per_instance(&self) -> f64 {
        let mean = self.service_ms.mean_ms();
        if mean == 0.0 { f64::INFINITY } else { self.workers as f64 * 1000.0 / mean }
    }
}

/// A periodic stall: every instance stops serving for `seconds` at the end of
/// every `every_seconds` window, counted from the moment it went into service.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stall {
    pub duration: Duration,
    pub every: Duration,
}

impl Stall {
    /// When `elapsed` (time since the instance went into service) falls inside a
    /// stall, how long until serving resumes.
    pub fn remaining(&self, elapsed: Duration) -> Option<Duration> {
        if self.duration.is_zero() {
            return None;
        }
        let every = self.every.as_nanos();
        let into_window = elapsed.as_nanos() % every;
        let stall_starts = every - self.duration.as_nanos();
        (into_window >= stall_starts).then(|| Duration::from_nanos((every - into_window) as u64))
    }
}

/// How fast the simulator's scaling clock runs: CloudWatch alarm periods,
/// Application Auto Scaling cooldowns and every other scaling wait take
/// 1/`scale` of their AWS duration. Metric values keep their AWS meaning (a
/// per-minute count is still read as per minute), and instance deploy time is
/// untouched. 1 (the default) is AWS's own timing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalingClock {
    scale: f64,
}

impl ScalingClock {
    /// The clock that runs `scale` times as fast as AWS's (at least 1).
    pub fn new(scale: f64) -> ScalingClock {
        ScalingClock { scale: if scale.is_finite() { scale.max(1.0) } else { 1.0 } }
    }

    /// How long an AWS wait of `aws` lasts here.
    pub fn real(&self, aws: Duration) -> Duration {
        aws.div_f64(self.scale)
    }

    /// The whole seconds an alarm period of `aws_period` seconds lasts here:
    /// never below one, the resolution of what the simulator records.
    pub fn period_secs(&self, aws_period: u32) -> i64 {
        ((f64::from(aws_period) / self.scale).round() as i64).max(1)
    }
}

/// A validated profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub deploy: Duration,
    pub delete: Duration,
    pub container_timeout: Duration,
    pub stall: Option<Stall>,
    pub metrics_retention: Duration,
    /// See [`ScalingClock`]; `scaling_time_scale` in the file.
    pub scaling_clock: ScalingClock,
    /// How many bytes the simulator's S3 holds at most (`s3_capacity_megabytes`).
    pub s3_capacity_bytes: u64,
    /// How a large language model behind response streaming behaves (`[llm]`).
    pub llm: LlmProfile,
    /// How the model behaves behind serverless variants (`[serverless]`).
    pub serverless: ServerlessBehaviour,
    default: EntryFile,
    default_vcpus: u32,
    types: BTreeMap<String, EntryFile>,
    /// Faults to inject, in the order listed (`[[faults]]`; see [`super::faults`]).
    pub faults: Vec<Fault>,
    /// Where it came from, for messages.
    pub origin: String,
}

/// A profile file as written: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    deploy_seconds: Option<f64>,
    delete_seconds: Option<f64>,
    container_timeout_seconds: Option<f64>,
    metrics_retention_minutes: Option<f64>,
    scaling_time_scale: Option<f64>,
    s3_capacity_megabytes: Option<u64>,
    #[serde(default)]
    default: EntryFile,
    #[serde(default)]
    instance_types: BTreeMap<String, EntryFile>,
    stall: Option<StallFile>,
    #[serde(default)]
    llm: llm::LlmFile,
    #[serde(default)]
    serverless: serverless::ServerlessFile,
    #[serde(default)]
    faults: Vec<FaultFile>,
}

impl ProfileFile {
    fn parse(text: &str) -> Result<ProfileFile, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().replace('\n', " "))
    }

    /// The shipped profile file.
    fn shipped() -> ProfileFile {
        ProfileFile::parse(DEFAULT_PROFILE).expect("the shipped profile is valid (checked by a unit test)")
    }

    /// This file laid over `base` (see the module documentation for the order).
    fn over(self, base: ProfileFile) -> ProfileFile {
        let types = types_over(self.instance_types, base.instance_types, &self.default);
        ProfileFile {
            deploy_seconds: self.deploy_seconds.or(base.deploy_seconds),
            delete_seconds: self.delete_seconds.or(base.delete_seconds),
            container_timeout_seconds: self.container_timeout_seconds.or(base.container_timeout_seconds),
            metrics_retention_minutes: self.metrics_retention_minutes.or(base.metrics_retention_minutes),
            scaling_time_scale: self.scaling_time_scale.or(base.scaling_time_scale),
            s3_capacity_megabytes: self.s3_capacity_megabytes.or(base.s3_capacity_megabytes),
            default: self.default.over(base.default),
            instance_types: types,
            stall: match (self.stall, base.stall) {
                (Some(stall), Some(below)) => Some(stall.over(below)),
                (stall, below) => stall.or(below),
            },
            llm: self.llm.over(base.llm),
            serverless: self.serverless.over(base.serverless),
            // The file's faults come first: the first one listed that strikes a call wins.
            faults: self.faults.into_iter().chain(base.faults).collect(),
        }
    }
}

// Used when neither the file nor the shipped profile sets the key.
fn default_deploy() -> f64 {
    3.0
}
fn default_delete() -> f64 {
    1.0
}
fn default_timeout() -> f64 {
    60.0
}
fn default_retention() -> f64 {
    60.0
}
fn default_s3_capacity() -> u64 {
    256
}

/// `[default]` or one `[instance_types."…"]` table; every field is optional.
/// `vcpus` belongs to `[default]` only (a listed type's vCPUs come from the
/// catalog); it is accepted here so that misuse gets a message of its own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    vcpus: Option<u32>,
    workers: Option<usize>,
    service_ms: Option<ServiceTime>,
    queue_limit: Option<usize>,
    error_rate: Option<f64>,
    error_status: Option<u16>,
    deploy_failure: Option<String>,
    max_instances: Option<u32>,
    memory_percent: Option<f64>,
}

layered!(EntryFile {
    vcpus,
    workers,
    service_ms,
    queue_limit,
    error_rate,
    error_status,
    deploy_failure,
    max_instances,
    memory_percent,
});

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StallFile {
    seconds: Option<f64>,
    every_seconds: Option<f64>,
}

layered!(StallFile { seconds, every_seconds });

/// A duration key's value, or what is wrong with it. A day bounds every
/// duration: far beyond any use, and safe to add to an Instant.
fn duration_seconds(key: &str, value: f64, allow_zero: bool) -> Result<Duration, String> {
    if value.is_finite() && (value > 0.0 || (allow_zero && value == 0.0)) && value <= MAX_SECONDS {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(format!(
            "`{key}` must be a {} number of seconds up to {MAX_SECONDS}, got {value}",
            if allow_zero { "non-negative" } else { "positive" }
        ))
    }
}

impl Profile {
    /// The shipped default profile.
    pub fn builtin() -> Profile {
        Profile::build(ProfileFile::shipped(), "resources/simulator/default.toml")
            .expect("the shipped profile is valid (checked by a unit test)")
    }

    /// Reads and validates a profile file.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read { path: path.to_path_buf(), source })?;
        Profile::parse(&text, &path.display().to_string())
    }

    /// The shipped profile or the file at `path`.
    pub fn load_or_builtin(path: Option<&Path>) -> Result<Profile, ProfileError> {
        path.map_or_else(|| Ok(Profile::builtin()), Profile::load)
    }

    /// Parses and validates profile text, laid over the shipped profile;
    /// `origin` names it in messages.
    pub fn parse(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let file = ProfileFile::parse(text).map_err(|message| ProfileError::Invalid { origin: origin.to_string(), message })?;
        Profile::build(file.over(ProfileFile::shipped()), origin)
    }

    /// Validates a complete (merged) profile file.
    fn build(file: ProfileFile, origin: &str) -> Result<Profile, ProfileError> {
        let invalid = |message: String| ProfileError::Invalid { origin: origin.to_string(), message };
        let seconds = |key: &str, value: f64, allow_zero: bool| duration_seconds(key, value, allow_zero).map_err(invalid);
        let deploy = seconds("deploy_seconds", file.deploy_seconds.unwrap_or_else(default_deploy), true)?;
        let delete = seconds("delete_seconds", file.delete_seconds.unwrap_or_else(default_delete), true)?;
        let container_timeout =
            seconds("container_timeout_seconds", file.container_timeout_seconds.unwrap_or_else(default_timeout), false)?;
        let metrics_retention =
            seconds("metrics_retention_minutes", file.metrics_retention_minutes.unwrap_or_else(default_retention) * 60.0, false)?;
        let scale = file.scaling_time_scale.unwrap_or(1.0);
        // A day of AWS time in a second is far beyond any use; below 1 would slow AWS down.
        if !(scale.is_finite() && (1.0..=MAX_SECONDS).contains(&scale)) {
            return Err(invalid(format!(
                "`scaling_time_scale` must be a number from 1 (AWS's timing) to {MAX_SECONDS}, got {scale}"
            )));
        }
        let s3_megabytes = file.s3_capacity_megabytes.unwrap_or_else(default_s3_capacity);
        if !(1..=MAX_S3_MEGABYTES).contains(&s3_megabytes) {
            return Err(invalid(format!(
                "`s3_capacity_megabytes` must be a whole number from 1 to {MAX_S3_MEGABYTES}, got {s3_megabytes}"
            )));
        }
        let stall = match file.stall {
            Some(StallFile { seconds: Some(stall_seconds), every_seconds }) if stall_seconds > 0.0 => {
                let Some(every_seconds) = every_seconds else {
                    return Err(invalid("`stall.every_seconds` must be set when `stall.seconds` is above 0".into()));
                };
                let duration = seconds("stall.seconds", stall_seconds, false)?;
                let every = seconds("stall.every_seconds", every_seconds, false)?;
                if duration >= every {
                    return Err(invalid(format!(
                        "`stall.seconds` ({stall_seconds}) must be shorter than `stall.every_seconds` ({every_seconds})"
                    )));
                }
                Some(Stall { duration, every })
            }
            Some(StallFile { seconds: Some(stall_seconds), .. }) => {
                seconds("stall.seconds", stall_seconds, true)?;
                None
            }
            _ => None,
        };
        let default_vcpus = match file.default.vcpus {
            Some(vcpus) if vcpus >= 1 => vcpus,
            _ => return Err(invalid("`default.vcpus` must be at least 1".into())),
        };
        for (name, entry) in &file.instance_types {
            if catalog::spec(name).is_none() {
                return Err(invalid(format!(
                    "`instance_types.\"{name}\"`: {}",
                    catalog::UnknownInstanceType { name: name.clone() }
                )));
            }
            if entry.vcpus.is_some() {
                return Err(invalid(format!(
                    "`instance_types.\"{name}\"`: `vcpus` belongs in `[default]` only; \
                     the vCPUs of {name} come from resources/instances.json"
                )));
            }
        }
        let faults = faults::validate(&file.faults).map_err(invalid)?;
        let profile = Profile {
            faults,
            deploy,
            delete,
            container_timeout,
            stall,
            metrics_retention,
            scaling_clock: ScalingClock::new(scale),
            s3_capacity_bytes: s3_megabytes * 1024 * 1024,
            llm: LlmProfile::build(file.llm).map_err(invalid)?,
            serverless: ServerlessBehaviour::build(file.serverless).map_err(invalid)?,
            default: file.default,
            default_vcpus,
            types: file.instance_types,
            origin: origin.to_string(),
        };
        profile.validate_entry("default", &profile.default)?;
        for (name, entry) in &profile.types {
            profile.validate_entry(&format!("instance_types.\"{name}\""), entry)?;
        }
        Ok(profile)
    }

    fn validate_entry(&self, key: &str, entry: &EntryFile) -> Result<(), ProfileError> {
        let problem = if entry.workers == Some(0) {
            Some("`workers` must be at least 1".to_string())
        } else if let Some(s) = entry.service_ms
            && !s.is_ordered()
        {
            Some(format!("`service_ms` needs 0 <= median <= p99, got median {} and p99 {}", s.median, s.p99))
        } else if let Some(rate) = entry.error_rate
            && !(0.0..=1.0).contains(&rate)
        {
            Some(format!("`error_rate` is a fraction between 0 and 1, got {rate}"))
        } else if let Some(status) = entry.error_status
            && !(400..=599).contains(&status)
        {
            Some(format!("`error_status` is an HTTP error status (400–599), got {status}"))
        } else if let Some(m) = entry.memory_percent
            && !(0.0..=100.0).contains(&m)
        {
            Some(format!("`memory_percent` must be between 0 and 100, got {m}"))
        } else {
            None
        };
        match problem {
            Some(message) => Err(ProfileError::Invalid { origin: self.origin.clone(), message: format!("`{key}`: {message}") }),
            None => Ok(()),
        }
    }

    /// How the model behaves on `instance_type`: its own (merged) entry where it
    /// sets a field, otherwise the (merged) `[default]` scaled by vCPU count. None for a type the
    /// catalog does not know.
    pub fn behaviour(&self, instance_type: &str) -> Option<TypeBehaviour> {
        let vcpus = catalog::spec(instance_type)?.vcpus;
        let own = self.types.get(instance_type).cloned().unwrap_or_default();
        Some(self.layered_behaviour(own, vcpus))
    }

    /// The model as `[default]` describes it, on no instance type in
    /// particular: what a serverless variant serves (its error rate and
    /// status; `[serverless]` has its timings).
    pub fn model_behaviour(&self) -> TypeBehaviour {
        self.layered_behaviour(EntryFile::default(), self.default_vcpus)
    }

    /// `own` over `[default]`, for a machine of `vcpus`.
    fn layered_behaviour(&self, own: EntryFile, vcpus: u32) -> TypeBehaviour {
        let base = &self.default;
        let scale = |n: usize| ((n as f64 * vcpus as f64 / self.default_vcpus as f64).round() as usize).max(1);
        TypeBehaviour {
            workers: own.workers.unwrap_or_else(|| scale(base.workers.unwrap_or(1))),
            service_ms: own.service_ms.or(base.service_ms).unwrap_or(ServiceTime { median: 0.0, p99: 0.0 }),
            queue_limit: own.queue_limit.unwrap_or_else(|| scale(base.queue_limit.unwrap_or(64))),
            error_rate: own.error_rate.or(base.error_rate).unwrap_or(0.0),
            error_status: own.error_status.or(base.error_status).unwrap_or(500),
            deploy_failure: own.deploy_failure.or_else(|| base.deploy_failure.clone()).unwrap_or_default(),
            max_instances: own.max_instances.or(base.max_instances).unwrap_or(20),
            memory_percent: own.memory_percent.or(base.memory_percent).unwrap_or(30.0),
            vcpus,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [default]
        vcpus = 2
        workers = 2
        service_ms = { median = 10.0, p99 = 30.0 }
    "#;

    #[test]
    fn builtin_profile_is_valid_and_plausible() {
        let p = Profile::builtin();
        let m5 = p.behaviour("ml.m5.large").unwrap();
        let c5 = p.behaviour("ml.c5.large").unwrap();
        assert!(c5.capacity_per_instance() > m5.capacity_per_instance());
        assert!((90.0..100.0).contains(&m5.capacity_per_instance()), "{m5:?}");
    }

    #[test]
    fn unlisted_types_scale_from_default_by_vcpus() {
        let p = Profile::parse(MINIMAL, "test").unwrap();
        let large = p.behaviour("ml.m5.large").unwrap();
        let xl4 = p.behaviour("ml.m5.4xlarge").unwrap();
        assert_eq!(large.workers, 2);
        assert_eq!(xl4.workers, 16);
        assert_eq!(xl4.queue_limit, 8 * 64);
        assert_eq!(xl4.service_ms, large.service_ms);
        assert!(p.behaviour("ml.nope.large").is_none());
    }

    #[test]
    fn malformed_profile_names_file_key_and_expectation() {
        let err = Profile::parse(&format!("{MINIMAL}\n[instance_types.\"ml.m5.large\"]\nworkers = \"two\"\n"), "my.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("my.toml") && err.contains("workers"), "{err}");

        let err = Profile::parse(&format!("{MINIMAL}\n[instance_types.\"ml.m5.large\"]\nwrkers = 2\n"), "my.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("wrkers"), "{err}");

        let err = Profile::parse(
            &format!("{MINIMAL}\n[instance_types.\"ml.m5.large\"]\nservice_ms = {{ median = 50.0, p99 = 10.0 }}\n"),
            "my.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("instance_types.\"ml.m5.large\"") && err.contains("median"), "{err}");

        let err =
            Profile::parse(&format!("{MINIMAL}\n[instance_types.\"ml.bogus.large\"]\n"), "my.toml").unwrap_err().to_string();
        assert!(err.contains("unknown instance type"), "{err}");
    }

    /// Every shipped instance type and a few unlisted ones.
    fn some_types() -> Vec<&'static str> {
        let mut types: Vec<&str> =
            DEFAULT_PROFILE.lines().filter_map(|line| line.strip_prefix("[instance_types.\"")?.strip_suffix("\"]")).collect();
        assert!(types.len() >= 5, "{types:?}");
        types.extend(["ml.t2.medium", "ml.r5.large", "ml.m5.12xlarge", "ml.c6i.8xlarge"]);
        types
    }

    #[test]
    fn one_instance_type_table_is_a_whole_profile() {
        let shipped = Profile::builtin();
        let p = Profile::parse("[instance_types.\"ml.m5.large\"]\nworkers = 3\n", "one.toml").unwrap();
        let m5 = p.behaviour("ml.m5.large").unwrap();
        assert_eq!(m5, TypeBehaviour { workers: 3, ..shipped.behaviour("ml.m5.large").unwrap() });
        assert_eq!(m5.service_ms, ServiceTime { median: 20.0, p99: 45.0 }, "from the shipped entry");
        for name in some_types().into_iter().filter(|t| *t != "ml.m5.large") {
            assert_eq!(p.behaviour(name), shipped.behaviour(name), "{name}");
        }
        assert_eq!(
            (p.deploy, p.delete, p.container_timeout, p.metrics_retention, p.stall),
            (shipped.deploy, shipped.delete, shipped.container_timeout, shipped.metrics_retention, shipped.stall)
        );

        // A shipped entry is overridden field by field: the rest of it stays.
        let p = Profile::parse("[instance_types.\"ml.g4dn.xlarge\"]\nqueue_limit = 8\n", "one.toml").unwrap();
        let gpu = p.behaviour("ml.g4dn.xlarge").unwrap();
        assert_eq!(gpu, TypeBehaviour { queue_limit: 8, ..shipped.behaviour("ml.g4dn.xlarge").unwrap() });
        assert_eq!((gpu.workers, gpu.max_instances), (8, 4));

        // A type the shipped profile does not list starts from the default.
        let p = Profile::parse("[instance_types.\"ml.r5.large\"]\nerror_rate = 0.5\n", "one.toml").unwrap();
        assert_eq!(
            p.behaviour("ml.r5.large").unwrap(),
            TypeBehaviour { error_rate: 0.5, ..shipped.behaviour("ml.r5.large").unwrap() }
        );

        // Nothing at all is the shipped profile.
        let p = Profile::parse("", "empty.toml").unwrap();
        for name in some_types() {
            assert_eq!(p.behaviour(name), shipped.behaviour(name), "{name}");
        }
    }

    #[test]
    fn a_default_key_overrides_that_key_only_for_every_type() {
        let shipped = Profile::builtin();
        let p = Profile::parse("[default]\nerror_rate = 0.25\n", "d.toml").unwrap();
        for name in some_types() {
            let expected = TypeBehaviour { error_rate: 0.25, ..shipped.behaviour(name).unwrap() };
            assert_eq!(p.behaviour(name).unwrap(), expected, "{name}");
        }

        // A key the shipped entries set too: the file's [default] wins over them,
        // and workers still scale by vCPUs.
        let p = Profile::parse("[default]\nworkers = 1\nservice_ms = { median = 5.0, p99 = 9.0 }\n", "d.toml").unwrap();
        for name in some_types() {
            let before = shipped.behaviour(name).unwrap();
            let expected = TypeBehaviour {
                workers: (before.vcpus as usize / 2).max(1),
                service_ms: ServiceTime { median: 5.0, p99: 9.0 },
                ..before
            };
            assert_eq!(p.behaviour(name).unwrap(), expected, "{name}");
        }

        // A file's own entry still beats its [default].
        let p = Profile::parse("[default]\nmax_instances = 2\n[instance_types.\"ml.c5.large\"]\nmax_instances = 7\n", "d.toml")
            .unwrap();
        assert_eq!(p.behaviour("ml.c5.large").unwrap().max_instances, 7);
        assert_eq!(p.behaviour("ml.g4dn.xlarge").unwrap().max_instances, 2);

        // Top-level keys and [stall] likewise, key by key.
        let p = Profile::parse("deploy_seconds = 0.5\n[stall]\nseconds = 2.0\n", "d.toml").unwrap();
        assert_eq!((p.deploy, p.delete), (Duration::from_millis(500), shipped.delete));
        assert_eq!(p.stall, Some(Stall { duration: Duration::from_secs(2), every: Duration::from_secs(60) }));
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        for (text, key) in [
            ("deploy_secs = 1.0\n", "deploy_secs"),
            ("[default]\nwrkers = 2\n", "wrkers"),
            ("[instance_types.\"ml.m5.large\"]\nqueue_limt = 2\n", "queue_limt"),
            ("[stall]\nsecond = 2.0\n", "second"),
            ("[default]\nservice_ms = { median = 1.0, p99 = 2.0, p50 = 1.0 }\n", "p50"),
        ] {
            let err = Profile::parse(text, "typo.toml").unwrap_err().to_string();
            assert!(err.contains("typo.toml") && err.contains(&format!("unknown field `{key}`")), "{text}: {err}");
        }
        let err = Profile::parse("[instance_types.\"ml.m5.large\"]\nvcpus = 4\n", "typo.toml").unwrap_err().to_string();
        assert!(err.contains("instance_types.\"ml.m5.large\"") && err.contains("`vcpus` belongs in `[default]`"), "{err}");
    }

    #[test]
    fn a_full_profile_means_what_it_says() {
        // Every key set, as before profiles were layered: nothing shipped shows through.
        let p = Profile::parse(
            r#"
            deploy_seconds = 0.2
            delete_seconds = 0.1
            container_timeout_seconds = 5.0
            metrics_retention_minutes = 10
            [default]
            vcpus = 2
            workers = 1
            service_ms = { median = 10.0, p99 = 10.0 }
            queue_limit = 20
            error_rate = 0.0
            error_status = 503
            deploy_failure = ""
            max_instances = 20
            memory_percent = 40.0
            [instance_types."ml.m5.large"]
            service_ms = { median = 20.0, p99 = 20.0 }
            [stall]
            seconds = 0.0
            every_seconds = 60.0
            "#,
            "full.toml",
        )
        .unwrap();
        let m5 = p.behaviour("ml.m5.large").unwrap();
        assert_eq!((m5.workers, m5.service_ms.median, m5.queue_limit, m5.memory_percent), (1, 20.0, 20, 40.0));
        let c5 = p.behaviour("ml.c5.2xlarge").unwrap();
        assert_eq!((c5.workers, c5.service_ms.median, c5.queue_limit, c5.max_instances), (4, 10.0, 80, 20));
        assert_eq!(c5.error_status, 503);
    }

    #[test]
    fn the_scaling_clock_compresses_waits_but_not_below_a_second_per_period() {
        assert_eq!(Profile::builtin().scaling_clock, ScalingClock::new(1.0), "AWS's timing by default");
        let p = Profile::parse("scaling_time_scale = 60\n", "fast.toml").unwrap();
        assert_eq!(p.scaling_clock.real(Duration::from_secs(300)), Duration::from_secs(5));
        assert_eq!(p.scaling_clock.period_secs(60), 1);
        assert_eq!(p.scaling_clock.period_secs(10), 1, "a high-resolution period stays one recorded second");
        assert_eq!(p.scaling_clock.period_secs(300), 5);
        assert_eq!(p.deploy, Profile::builtin().deploy, "deploy time is not scaled");
        for bad in ["0.5", "0", "-3", "1e9"] {
            let err = Profile::parse(&format!("scaling_time_scale = {bad}\n"), "fast.toml").unwrap_err().to_string();
            assert!(err.contains("scaling_time_scale"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_s3_capacity_is_bounded() {
        assert_eq!(Profile::builtin().s3_capacity_bytes, 256 * 1024 * 1024);
        assert_eq!(Profile::parse("s3_capacity_megabytes = 1\n", "s3.toml").unwrap().s3_capacity_bytes, 1024 * 1024);
        for bad in ["0", "70000"] {
            let err = Profile::parse(&format!("s3_capacity_megabytes = {bad}\n"), "s3.toml").unwrap_err().to_string();
            assert!(err.contains("s3_capacity_megabytes"), "{bad}: {err}");
        }
    }

    #[test]
    fn lognormal_fit_reproduces_median_and_p99() {
        let s = ServiceTime { median: 20.0, p99: 45.0 };
        let (mu, sigma) = s.lognormal_params().unwrap();
        assert!((mu.exp() - 20.0).abs() < 1e-9);
        assert!(((mu + sigma * ServiceTime::Z99).exp() - 45.0).abs() < 1e-6);
        assert_eq!(ServiceTime { median: 0.0, p99: 0.0 }.mean_ms(), 0.0);
    }

    #[test]
    fn stall_windows_sit_at_the_end_of_each_period() {
        let stall = Stall { duration: Duration::from_secs(2), every: Duration::from_secs(10) };
        assert_eq!(stall.remaining(Duration::from_secs(3)), None);
        assert_eq!(stall.remaining(Duration::from_secs(8)), Some(Duration::from_secs(2)));
        assert_eq!(stall.remaining(Duration::from_millis(19_500)), Some(Duration::from_millis(500)));
        assert_eq!(stall.remaining(Duration::from_secs(20)), None);
    }
}
