//! Serverless Inference: production variants with a ServerlessConfig instead
//! of instances ([`ServerlessConfig`], validated at CreateEndpointConfig), and
//! the capacity model InvokeEndpoint meets on them ([`Serverless`]).
//!
//! - `config`: ServerlessConfig as the API takes it and describes it back;
//! - `pool`: the variant's workers — warm, cold, provisioned, throttled.
//!
//! A worker's compute is proportional to its memory up to the model's own
//! limit (the profile's `[serverless]`), so a 2 GB worker serves about twice
//! as fast as a 1 GB one. A request that meets a cold worker first waits for
//! the model's set-up time (CloudWatch's ModelSetupTime); past MaxConcurrency
//! requests are throttled; a worker with less memory than the model needs
//! fails every invocation as out of memory. Everything is recorded in the
//! variant's metrics by the runtime ([`crate::simulator::runtime`]).

mod config;
mod pool;

use std::time::Duration;

use rand_distr::{Distribution, LogNormal};
use tokio::time::Instant;

pub use config::ServerlessConfig;
use pool::{Execution, Pool, Start};

use super::metrics::{Capacity, Outcome, Served};
use super::profile::{LogNormalFit, ServerlessBehaviour};

/// A serverless variant in service: its configuration and its workers.
#[derive(Debug)]
pub struct Serverless {
    pub config: ServerlessConfig,
    pool: Pool,
    /// Service time at this variant's memory size.
    service: Option<LogNormal<f64>>,
    setup: Option<LogNormal<f64>>,
    /// The model does not fit: Some((needed, available)) in MB.
    out_of_memory: Option<(u32, u32)>,
    /// The share of a worker's memory the model takes.
    memory_percent: f64,
}

/// How one serverless request ended, for the caller to answer and record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ending {
    /// Past MaxConcurrency: no worker took it.
    Throttled,
    /// The model needs more memory than the worker has.
    OutOfMemory { needed_mb: u32, available_mb: u32 },
    /// Set-up and service did not end before the container timeout.
    TimedOut { setup: Option<Duration>, busy: Duration },
    /// Served in `service`, after a cold start of `setup` if it met a cold worker.
    Served { setup: Option<Duration>, service: Duration },
}

impl Ending {
    /// What CloudWatch records of it (the caller adds the time outside the model).
    pub fn served(self, overhead: Duration) -> Served {
        match self {
            Ending::Throttled => Served { outcome: Outcome::ClientError, model: None, overhead: None, busy: Duration::ZERO },
            Ending::OutOfMemory { .. } => Served {
                outcome: Outcome::ServerError,
                model: Some(Duration::ZERO),
                overhead: Some(overhead),
                busy: Duration::ZERO,
            },
            Ending::TimedOut { setup, busy } => Served {
                outcome: Outcome::ServerError,
                model: Some(busy.saturating_sub(setup.unwrap_or_default())),
                overhead: Some(overhead),
                busy,
            },
            Ending::Served { setup, service } => Served {
                outcome: Outcome::Success,
                model: Some(service),
                overhead: Some(overhead),
                busy: setup.unwrap_or_default() + service,
            },
        }
    }

    /// The cold start it paid, for ModelSetupTime.
    pub fn setup(self) -> Option<Duration> {
        match self {
            Ending::TimedOut { setup, .. } | Ending::Served { setup, .. } => setup,
            Ending::Throttled | Ending::OutOfMemory { .. } => None,
        }
    }
}

/// Divides every sample of a log-normal by `speedup`: the same shape, faster.
fn scaled(fit: &LogNormalFit, speedup: f64) -> Option<LogNormal<f64>> {
    let faster = LogNormalFit { median: fit.median / speedup, p99: fit.p99 / speedup };
    faster.sampler()
}

fn sample(distribution: &Option<LogNormal<f64>>) -> Duration {
    distribution.as_ref().map_or(Duration::ZERO, |d| Duration::from_secs_f64(d.sample(&mut rand::rng()) / 1000.0))
}

impl Serverless {
    /// Brings a serverless variant into service: its provisioned workers warm, no other.
    pub fn start(config: ServerlessConfig, behaviour: &ServerlessBehaviour) -> Serverless {
        let provisioned = config.provisioned.unwrap_or(0);
        Serverless {
            pool: Pool::new(config.max_concurrency, provisioned, behaviour.idle),
            service: scaled(&behaviour.service_ms, behaviour.speedup(config.memory_mb)),
            setup: behaviour.setup_ms.sampler(),
            out_of_memory: (config.memory_mb < behaviour.model_memory_mb)
                .then_some((behaviour.model_memory_mb, config.memory_mb)),
            memory_percent: (f64::from(behaviour.model_memory_mb) * 100.0 / f64::from(config.memory_mb)).min(100.0),
            config,
        }
    }

    /// What the metrics need to turn busy time into utilisation: one
    /// "instance" whose workers are the MaxConcurrency executions, and the
    /// memory the model takes of the worker's.
    pub fn capacity(&self) -> Capacity {
        Capacity {
            instances: 1,
            workers_per_instance: self.config.max_concurrency,
            vcpus: 0,
            memory_percent: self.memory_percent,
        }
    }

    /// What a request arriving at `now` meets: a worker and how long its
    /// cold start (if any) and its service take — or an ending at once.
    fn admit(&self, now: Instant) -> Result<(Execution<'_>, Option<Duration>, Duration), Ending> {
        let execution = self.pool.acquire(now).map_err(|_| Ending::Throttled)?;
        if let Some((needed_mb, available_mb)) = self.out_of_memory {
            execution.abandon();
            return Err(Ending::OutOfMemory { needed_mb, available_mb });
        }
        let setup = (execution.start == Start::Cold).then(|| sample(&self.setup));
        Ok((execution, setup, sample(&self.service)))
    }

    /// Serves one request on a worker of this variant, all before `deadline`.
    pub async fn serve(&self, deadline: Instant) -> Ending {
        let started = Instant::now();
        let (execution, setup, service) = match self.admit(started) {
            Ok(admitted) => admitted,
            Err(ending) => return ending,
        };
        let finish = started + setup.unwrap_or_default() + service;
        if finish > deadline {
            tokio::time::sleep_until(deadline).await;
            return Ending::TimedOut { setup, busy: started.elapsed() };
        }
        tokio::time::sleep_until(finish).await;
        execution.finish(Instant::now());
        Ending::Served { setup, service }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::profile::Profile;

    fn behaviour(entries: &str) -> ServerlessBehaviour {
        Profile::parse(&format!("[serverless]\n{entries}"), "test").unwrap().serverless
    }

    const FIXED: &str = "service_ms = { median = 100.0, p99 = 100.0 }\nsetup_ms = { median = 2000.0, p99 = 2000.0 }";

    fn config(memory_mb: u32, max_concurrency: u32) -> ServerlessConfig {
        ServerlessConfig { memory_mb, max_concurrency, provisioned: None }
    }

    /// The cold start and service time a request arriving at `at` would get.
    fn timings(serverless: &Serverless, at: Instant) -> (Option<Duration>, Duration) {
        let (execution, setup, service) = serverless.admit(at).expect("admitted");
        execution.finish(at + setup.unwrap_or_default() + service);
        (setup, service)
    }

    #[test]
    fn a_cold_start_pays_the_setup_time_once() {
        let (serverless, t0) = (Serverless::start(config(1024, 2), &behaviour(FIXED)), Instant::now());
        assert_eq!(timings(&serverless, t0), (Some(Duration::from_secs(2)), Duration::from_millis(100)));
        assert_eq!(timings(&serverless, t0 + Duration::from_secs(3)).0, None, "the worker is warm now");
    }

    #[test]
    fn more_memory_serves_faster_up_to_the_models_limit() {
        let profile = behaviour(&format!("{FIXED}\nfull_speed_memory_mb = 2048"));
        let service_at = |memory_mb| timings(&Serverless::start(config(memory_mb, 1), &profile), Instant::now()).1;
        assert_eq!(service_at(1024), Duration::from_millis(100));
        assert_eq!(service_at(2048), Duration::from_millis(50));
        assert_eq!(service_at(6144), Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_worker_too_small_for_the_model_runs_out_of_memory() {
        let needs_two = behaviour(&format!("{FIXED}\nmodel_memory_mb = 2048"));
        let serverless = Serverless::start(config(1024, 1), &needs_two);
        assert_eq!(serverless.serve(Instant::now()).await, Ending::OutOfMemory { needed_mb: 2048, available_mb: 1024 });
        assert!(Serverless::start(config(2048, 1), &needs_two).admit(Instant::now()).is_ok());
    }

    #[tokio::test]
    async fn requests_past_max_concurrency_are_throttled() {
        let (serverless, t0) = (Serverless::start(config(1024, 1), &behaviour(FIXED)), Instant::now());
        let _held = serverless.admit(t0).expect("the one worker");
        let ending = serverless.serve(Instant::now() + Duration::from_secs(3600)).await;
        assert_eq!(ending, Ending::Throttled);
        assert_eq!(ending.served(Duration::ZERO).outcome, Outcome::ClientError, "a throttle counts as a 4XX");
    }

    #[tokio::test]
    async fn a_cold_start_past_the_container_timeout_times_out() {
        let serverless = Serverless::start(config(1024, 1), &behaviour(FIXED));
        let ending = serverless.serve(Instant::now()).await;
        assert!(matches!(ending, Ending::TimedOut { setup: Some(setup), .. } if setup == Duration::from_secs(2)), "{ending:?}");
        assert_eq!(ending.served(Duration::ZERO).outcome, Outcome::ServerError);
    }
}
