//! The `[serverless]` section of a simulator profile: how the model behaves
//! behind SageMaker Serverless Inference — its service time at 1 GB, the
//! memory beyond which more memory no longer speeds it up, the memory it
//! needs at all, its cold start (model set-up time) and how long an idle
//! worker stays warm. Every key falls back key by key to the shipped profile.

use std::time::Duration;

use serde::Deserialize;

use super::layers::layered;
use super::{LogNormalFit, ServiceTime, duration_seconds};

// Used when neither the file nor the shipped profile sets the key.
const DEFAULT_SERVICE_MS: ServiceTime = LogNormalFit { median: 80.0, p99: 180.0 };
const DEFAULT_FULL_SPEED_MEMORY_MB: u32 = 4096;
const DEFAULT_MODEL_MEMORY_MB: u32 = 1024;
const DEFAULT_SETUP_MS: LogNormalFit = LogNormalFit { median: 1500.0, p99: 4000.0 };
const DEFAULT_IDLE_SECONDS: f64 = 300.0;

/// Serverless memory sizes are whole gigabytes from 1 to 6 (the API's limits).
const MEMORY_STEP_MB: u32 = 1024;
const MAX_MEMORY_MB: u32 = 6144;

/// The model behind a serverless variant.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerlessBehaviour {
    /// Service time of a worker with 1024 MB: a serverless worker's vCPUs
    /// grow with its memory, so it serves proportionally faster up to
    /// `full_speed_memory_mb`.
    pub service_ms: ServiceTime,
    /// The memory past which the model cannot use more compute.
    pub full_speed_memory_mb: u32,
    /// The memory the model needs loaded: less fails every invocation.
    pub model_memory_mb: u32,
    /// Time a cold worker takes to download and load the model.
    pub setup_ms: LogNormalFit,
    /// How long a worker stays warm with no request.
    pub idle: Duration,
}

impl ServerlessBehaviour {
    /// How much faster than a 1024 MB worker one of `memory_mb` serves.
    pub fn speedup(&self, memory_mb: u32) -> f64 {
        f64::from(memory_mb.min(self.full_speed_memory_mb).max(MEMORY_STEP_MB)) / f64::from(MEMORY_STEP_MB)
    }
}

/// `[serverless]` as written: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerlessFile {
    service_ms: Option<ServiceTime>,
    full_speed_memory_mb: Option<u32>,
    model_memory_mb: Option<u32>,
    setup_ms: Option<LogNormalFit>,
    idle_seconds: Option<f64>,
}

layered!(ServerlessFile { service_ms, full_speed_memory_mb, model_memory_mb, setup_ms, idle_seconds });

/// A memory key's value, or what is wrong with it: a size a serverless
/// worker may have (whole gigabytes up to 6).
fn memory_mb(key: &str, value: u32) -> Result<u32, String> {
    if (MEMORY_STEP_MB..=MAX_MEMORY_MB).contains(&value) && value.is_multiple_of(MEMORY_STEP_MB) {
        Ok(value)
    } else {
        Err(format!("`serverless.{key}` must be one of 1024, 2048, 3072, 4096, 5120 or 6144 (MB), got {value}"))
    }
}

fn ordered(key: &str, fit: LogNormalFit) -> Result<LogNormalFit, String> {
    if fit.is_ordered() {
        Ok(fit)
    } else {
        Err(format!("`serverless.{key}` needs 0 <= median <= p99, got median {} and p99 {}", fit.median, fit.p99))
    }
}

impl ServerlessBehaviour {
    /// Validates a complete (merged) `[serverless]` table.
    pub(super) fn build(file: ServerlessFile) -> Result<ServerlessBehaviour, String> {
        let idle_seconds = file.idle_seconds.unwrap_or(DEFAULT_IDLE_SECONDS);
        Ok(ServerlessBehaviour {
            service_ms: ordered("service_ms", file.service_ms.unwrap_or(DEFAULT_SERVICE_MS))?,
            full_speed_memory_mb: memory_mb(
                "full_speed_memory_mb",
                file.full_speed_memory_mb.unwrap_or(DEFAULT_FULL_SPEED_MEMORY_MB),
            )?,
            model_memory_mb: memory_mb("model_memory_mb", file.model_memory_mb.unwrap_or(DEFAULT_MODEL_MEMORY_MB))?,
            setup_ms: ordered("setup_ms", file.setup_ms.unwrap_or(DEFAULT_SETUP_MS))?,
            idle: duration_seconds("serverless.idle_seconds", idle_seconds, false)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_speeds_the_model_up_to_its_own_limit() {
        let behaviour = ServerlessBehaviour::build(ServerlessFile::default()).unwrap();
        assert_eq!(behaviour.speedup(1024), 1.0);
        assert_eq!(behaviour.speedup(2048), 2.0);
        assert_eq!(behaviour.speedup(6144), 4.0, "no faster past full_speed_memory_mb (4096)");
    }

    #[test]
    fn sizes_and_distributions_are_checked() {
        let bad_memory = ServerlessFile { model_memory_mb: Some(1500), ..Default::default() };
        assert!(ServerlessBehaviour::build(bad_memory).unwrap_err().contains("model_memory_mb"));
        let bad_setup = ServerlessFile { setup_ms: Some(LogNormalFit { median: 9.0, p99: 1.0 }), ..Default::default() };
        assert!(ServerlessBehaviour::build(bad_setup).unwrap_err().contains("setup_ms"));
        let no_idle = ServerlessFile { idle_seconds: Some(0.0), ..Default::default() };
        assert!(ServerlessBehaviour::build(no_idle).unwrap_err().contains("idle_seconds"));
    }
}
