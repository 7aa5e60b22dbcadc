//! The simulator profile: how the simulated model behaves on each instance type
//! (TOML; `resources/simulator/default.toml` is the shipped default).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::catalog;

/// The longest duration a profile may set, in seconds (one day).
const MAX_SECONDS: f64 = 86_400.0;

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

/// Log-normal service time fitted to a median and a p99, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceTime {
    pub median: f64,
    pub p99: f64,
}

impl ServiceTime {
    /// z-score of the 99th percentile of a standard normal distribution.
    const Z99: f64 = 2.326_347_874;

    /// Parameters (mu, sigma) of the log-normal in ln-milliseconds, or None for a
    /// zero service time.
    pub fn lognormal_params(&self) -> Option<(f64, f64)> {
        (self.median > 0.0).then(|| {
            let mu = self.median.ln();
            (mu, (self.p99.ln() - mu) / Self::Z99)
        })
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

/// A validated profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub deploy: Duration,
    pub delete: Duration,
    pub container_timeout: Duration,
    pub stall: Option<Stall>,
    pub metrics_retention: Duration,
    default: EntryFile,
    default_vcpus: u32,
    types: BTreeMap<String, EntryFile>,
    /// Where it came from, for messages.
    pub origin: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    #[serde(default = "default_deploy")]
    deploy_seconds: f64,
    #[serde(default = "default_delete")]
    delete_seconds: f64,
    #[serde(default = "default_timeout")]
    container_timeout_seconds: f64,
    #[serde(default = "default_retention")]
    metrics_retention_minutes: f64,
    default: DefaultFile,
    #[serde(default)]
    instance_types: BTreeMap<String, EntryFile>,
    #[serde(default)]
    stall: Option<StallFile>,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultFile {
    vcpus: u32,
    #[serde(flatten)]
    entry: EntryFile,
}

/// One `[instance_types."…"]` table; every field is optional and falls back to
/// `[default]` scaled by vCPUs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    workers: Option<usize>,
    service_ms: Option<ServiceTime>,
    queue_limit: Option<usize>,
    error_rate: Option<f64>,
    error_status: Option<u16>,
    deploy_failure: Option<String>,
    max_instances: Option<u32>,
    memory_percent: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StallFile {
    seconds: f64,
    every_seconds: f64,
}

impl Profile {
    /// The shipped default profile.
    pub fn builtin() -> Profile {
        Profile::parse(DEFAULT_PROFILE, "resources/simulator/default.toml")
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

    /// Parses and validates profile text; `origin` names it in messages.
    pub fn parse(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let invalid = |message: String| ProfileError::Invalid { origin: origin.to_string(), message };
        let file: ProfileFile = toml::from_str(text).map_err(|e| invalid(e.to_string().trim_end().replace('\n', " ")))?;
        // A day bounds every duration: far beyond any use, and safe to add to an Instant.
        let seconds = |key: &str, value: f64, allow_zero: bool| {
            if value.is_finite() && (value > 0.0 || (allow_zero && value == 0.0)) && value <= MAX_SECONDS {
                Ok(Duration::from_secs_f64(value))
            } else {
                Err(invalid(format!(
                    "`{key}` must be a {} number of seconds up to {MAX_SECONDS}, got {value}",
                    if allow_zero { "non-negative" } else { "positive" }
                )))
            }
        };
        let deploy = seconds("deploy_seconds", file.deploy_seconds, true)?;
        let delete = seconds("delete_seconds", file.delete_seconds, true)?;
        let container_timeout = seconds("container_timeout_seconds", file.container_timeout_seconds, false)?;
        let metrics_retention = seconds("metrics_retention_minutes", file.metrics_retention_minutes * 60.0, false)?;
        let stall = match file.stall {
            Some(s) if s.seconds > 0.0 => {
                let duration = seconds("stall.seconds", s.seconds, false)?;
                let every = seconds("stall.every_seconds", s.every_seconds, false)?;
                if duration >= every {
                    return Err(invalid(format!(
                        "`stall.seconds` ({}) must be shorter than `stall.every_seconds` ({})",
                        s.seconds, s.every_seconds
                    )));
                }
                Some(Stall { duration, every })
            }
            Some(s) => {
                seconds("stall.seconds", s.seconds, true)?;
                None
            }
            None => None,
        };
        if file.default.vcpus == 0 {
            return Err(invalid("`default.vcpus` must be at least 1".into()));
        }
        let missing: Vec<&str> =
            [("workers", file.default.entry.workers.is_none()), ("service_ms", file.default.entry.service_ms.is_none())]
                .iter()
                .filter_map(|(k, missing)| missing.then_some(*k))
                .collect();
        if !missing.is_empty() {
            return Err(invalid(format!(
                "`[default]` must set {} (it describes types not listed under [instance_types])",
                missing.join(" and ")
            )));
        }
        for name in file.instance_types.keys() {
            if catalog::spec(name).is_none() {
                return Err(invalid(format!(
                    "`instance_types.\"{name}\"`: {}",
                    catalog::UnknownInstanceType { name: name.clone() }
                )));
            }
        }
        let profile = Profile {
            deploy,
            delete,
            container_timeout,
            stall,
            metrics_retention,
            default: file.default.entry,
            default_vcpus: file.default.vcpus,
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
            && !(s.median >= 0.0 && s.p99.is_finite() && s.p99 >= s.median)
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

    /// How the model behaves on `instance_type`: its own entry where it sets a
    /// field, otherwise `[default]` scaled by vCPU count. None for a type the
    /// catalog does not know.
    pub fn behaviour(&self, instance_type: &str) -> Option<TypeBehaviour> {
        let vcpus = catalog::spec(instance_type)?.vcpus;
        let own = self.types.get(instance_type).cloned().unwrap_or_default();
        let base = &self.default;
        let scale = |n: usize| ((n as f64 * vcpus as f64 / self.default_vcpus as f64).round() as usize).max(1);
        Some(TypeBehaviour {
            workers: own.workers.unwrap_or_else(|| scale(base.workers.unwrap_or(1))),
            service_ms: own.service_ms.or(base.service_ms).unwrap_or(ServiceTime { median: 0.0, p99: 0.0 }),
            queue_limit: own.queue_limit.unwrap_or_else(|| scale(base.queue_limit.unwrap_or(64))),
            error_rate: own.error_rate.or(base.error_rate).unwrap_or(0.0),
            error_status: own.error_status.or(base.error_status).unwrap_or(500),
            deploy_failure: own.deploy_failure.or_else(|| base.deploy_failure.clone()).unwrap_or_default(),
            max_instances: own.max_instances.or(base.max_instances).unwrap_or(20),
            memory_percent: own.memory_percent.or(base.memory_percent).unwrap_or(30.0),
            vcpus,
        })
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
