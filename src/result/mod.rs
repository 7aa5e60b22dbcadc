//! The result manager: turns a [`LoadRun`] into a [`StepResult`] — rates,
//! percentiles, errors by status and code, the per-second series, the
//! histograms themselves, the server's CloudWatch figures — and judges it
//! against the requirements, spelling out every reason it fails.

pub mod cloudwatch;
pub mod disturbance;
pub mod histogram;
pub mod settled;
pub mod stream;
pub mod sustain;
pub mod trend;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::format::{ms, tps, trim_number};
use crate::load::{AsyncFigures, LoadModel, LoadRun, SecondStats, Shard};
use crate::vocab::{Candidate, Fleet, Load, Phase, Requirements, ServerlessSize, StreamRequirements};

pub use cloudwatch::{MetricsWindow, ServerLatency, ServerMetrics};
pub use disturbance::Disturbance;
pub use histogram::Percentiles;
pub use settled::Settled;
pub use stream::StreamResult;
pub use sustain::Stationarity;

/// A step whose achieved rate is below this share of the offered rate fails.
pub const MIN_ACHIEVED_SHARE: f64 = 0.95;
/// More than this share of requests starting late (no free in-flight slot)
/// means the generator, not the endpoint, set the pace.
pub const MAX_LATE_SHARE: f64 = 0.001;
/// More than this share of the offered requests never sent (with in-flight
/// slots free) means the generator was at its own maximum.
pub const MAX_UNSENT_SHARE: f64 = 0.01;
/// Schedule slip p99 beyond this means the generator's CPU could not keep up.
pub const MAX_SLIP_P99_MS: f64 = 10.0;
/// ... or beyond this share of the latency limit, when that is more: slip
/// counts into latency, and only matters next to the latency being judged.
pub const MAX_SLIP_SHARE_OF_LIMIT: f64 = 0.05;

/// The schedule slip p99 a step may show before its generator counts as
/// having fallen behind.
pub fn slip_limit_ms(requirements: &Requirements) -> f64 {
    MAX_SLIP_P99_MS.max(MAX_SLIP_SHARE_OF_LIMIT * requirements.latency_ms)
}

/// What the load generator itself looked like during the step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generator {
    pub max_in_flight: usize,
    /// Requests due while every in-flight slot was busy.
    pub late_starts: u64,
    /// Send time minus due time, milliseconds.
    pub slip_p50_ms: f64,
    pub slip_p99_ms: f64,
    /// Too many late starts, or slip beyond the limit: the generator fell
    /// behind, and the step's latencies include its delay.
    pub saturated: bool,
    /// The offered rate was beyond what this machine can send: it sent at
    /// its own maximum, this one. Nothing about the endpoint was measured
    /// at the offered rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limited: Option<GeneratorLimit>,
}

/// The rate a generator-limited step reached.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeneratorLimit {
    /// Requests sent per second of the measured window: the generator's maximum here.
    pub reached_tps: f64,
    pub offered_tps: f64,
    /// Requests offered in the measured window and never sent.
    pub not_sent: u64,
}

impl GeneratorLimit {
    /// The limit a run shows: more than MAX_UNSENT_SHARE of what it offered
    /// never sent although slots were free.
    fn of(run: &LoadRun) -> Option<GeneratorLimit> {
        let counts = &run.totals.counts;
        let seconds = run.measured_seconds.max(1e-9);
        (counts.not_sent as f64 > MAX_UNSENT_SHARE * run.offered as f64).then(|| GeneratorLimit {
            reached_tps: round3(counts.sent as f64 / seconds),
            offered_tps: round3(run.offered as f64 / seconds),
            not_sent: counts.not_sent,
        })
    }
}

impl Generator {
    /// Requests waited for an in-flight slot beyond MAX_LATE_SHARE: the server is slow.
    pub fn ran_out_of_slots(&self, requests: u64) -> bool {
        self.late_starts as f64 > MAX_LATE_SHARE * requests as f64
    }

    /// Sends fell behind schedule beyond what `requirements` tolerate.
    pub fn slipped(&self, requirements: &Requirements) -> bool {
        self.slip_p99_ms > slip_limit_ms(requirements)
    }
}

/// One requirement a step missed, and by how much.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "requirement", rename_all = "snake_case")]
pub enum Miss {
    Latency {
        percentile: f64,
        measured_ms: f64,
        limit_ms: f64,
    },
    Errors {
        measured_percent: f64,
        limit_percent: f64,
    },
    Rate {
        achieved_tps: f64,
        offered_tps: f64,
    },
    Generator {
        late_starts: u64,
        slip_p99_ms: f64,
        /// The generator sent at its own maximum, below the offered rate.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limited: Option<GeneratorLimit>,
    },
    /// The work in flight grew through the step: the rate cannot be held.
    Unsustainable {
        in_flight_from: f64,
        in_flight_to: f64,
        seconds: u32,
        latency_ratio: Option<f64>,
        /// The judged latency projected to the end of `horizon_seconds` more at this rate.
        projected_latency_ms: f64,
        horizon_seconds: f64,
    },
    /// Too few streamed requests met every streaming limit.
    Goodput {
        measured_percent: f64,
        target_percent: f64,
    },
    NoTraffic,
    Interrupted,
}

impl Miss {
    /// The reason as a sentence, for tables, logs and JUnit.
    pub fn describe(&self) -> String {
        match self {
            Miss::Latency { percentile, measured_ms, limit_ms } => format!(
                "p{percentile} latency {measured_ms:.1} ms is above the {limit_ms} ms limit (+{:.0}%)",
                (measured_ms / limit_ms - 1.0) * 100.0
            ),
            Miss::Errors { measured_percent, limit_percent } => {
                format!("{measured_percent:.3}% of requests failed, above the {limit_percent}% budget")
            }
            Miss::Rate { achieved_tps, offered_tps } => format!(
                "achieved {achieved_tps:.1} TPS of {offered_tps:.1} offered ({:.0}%, below {:.0}%)",
                achieved_tps / offered_tps * 100.0,
                MIN_ACHIEVED_SHARE * 100.0
            ),
            Miss::Generator { limited: Some(limit), .. } => format!(
                "generator-limited: this machine sent {} TPS of {} offered ({} requests never sent); the endpoint was not measured at the offered rate: split the rate over machines (--shard i/N) or use a bigger one",
                tps(limit.reached_tps),
                tps(limit.offered_tps),
                limit.not_sent
            ),
            Miss::Generator { late_starts, slip_p99_ms, limited: None } => format!(
                "the load generator could not keep up ({late_starts} late starts, schedule slip p99 {slip_p99_ms:.1} ms): raise --max-in-flight or use a bigger machine"
            ),
            Miss::Unsustainable {
                in_flight_from,
                in_flight_to,
                seconds,
                latency_ratio,
                projected_latency_ms,
                horizon_seconds,
            } => {
                let latency = latency_ratio.map_or(String::new(), |r| format!("; latency rose {r:.1}×"));
                format!(
                    "not sustainable: in-flight grew from {in_flight_from:.0} to {in_flight_to:.0} over {seconds} s{latency}; projected {} ms after {} at this rate",
                    crate::format::ms(*projected_latency_ms),
                    humantime::format_duration(std::time::Duration::from_secs(*horizon_seconds as u64))
                )
            }
            Miss::Goodput { measured_percent, target_percent } => {
                format!(
                    "goodput {measured_percent:.1}% of requests met every streaming limit, below the {target_percent}% target"
                )
            }
            Miss::NoTraffic => "no request was measured".to_string(),
            Miss::Interrupted => "interrupted before the end of the step".to_string(),
        }
    }
}

/// One load step, as written to `<results>/steps/NNN-….json` the moment it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    /// Order within the run, from 1.
    pub index: u32,
    pub phase: Phase,
    pub simulated: bool,
    pub endpoint_name: String,
    /// The instance type, or `serverless` (then `instance_count` is 0 and
    /// `serverless` holds the configuration).
    pub instance_type: String,
    pub instance_count: u32,
    /// A serverless step's memory size and concurrency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverless: Option<ServerlessSize>,
    /// An asynchronous step's MaxConcurrentInvocationsPerInstance, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_invocations: Option<u32>,
    pub target_tps: f64,
    /// Requests released in the measured window, per second.
    pub offered_tps: f64,
    /// Requests of the measured window that got an answer (of any status),
    /// per second: below offered only when requests time out or connections
    /// fail — an overloaded endpoint that answers 503 still achieves the rate.
    pub achieved_tps: f64,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub duration_seconds: f64,
    pub warmup_seconds: f64,
    pub requests: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub error_percent: f64,
    /// All requests, failures at their latency.
    pub latency_ms: Option<Percentiles>,
    pub success_latency_ms: Option<Percentiles>,
    /// Latency at the judged percentile.
    pub judged_latency_ms: Option<f64>,
    pub errors_by_status: BTreeMap<String, u64>,
    pub errors_by_code: BTreeMap<String, u64>,
    pub generator: Generator,
    /// Open model (latency from the intended start) or closed loop (from
    /// the actual send, a fixed number in flight): never compared across.
    #[serde(default)]
    pub load_model: LoadModel,
    /// This process's part of a step run by several (`--shard i/N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// Whether the rate could be held indefinitely; None for a window too
    /// short to tell (and for results written before perfsize judged it).
    #[serde(default)]
    pub stationarity: Option<Stationarity>,
    pub requirements: Requirements,
    pub passed: bool,
    pub reasons: Vec<String>,
    pub misses: Vec<Miss>,
    /// A burst of errors the endpoint recovered from, when the step failed
    /// on one (see [`disturbance`]): a fault of that moment, not the rate's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disturbance: Option<Disturbance>,
    /// The disturbed step this one measures again; the strategy judged the
    /// probe on this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remeasure_of: Option<u32>,
    pub cloudwatch: ServerMetrics,
    pub series: Vec<SecondStats>,
    /// Asynchronous steps: latency is submission → output seen, this finely;
    /// and the S3 requests it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asynchronous: Option<AsyncFigures>,
    /// Streaming steps: token timings, tokens and goodput, which the step is
    /// judged on (`requirements` is then only its error budget and envelope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming: Option<StreamResult>,
    /// The all-requests latency histogram (µs), base64 of HdrHistogram V2-deflate.
    pub histogram: String,
    pub success_histogram: String,
}

/// What the step was, besides what was measured.
#[derive(Debug, Clone)]
pub struct StepContext {
    pub index: u32,
    pub phase: Phase,
    pub simulated: bool,
    pub endpoint_name: String,
    /// What serves the endpoint; None for a target perfsize did not deploy
    /// and cannot see into (`--url`).
    pub candidate: Option<Candidate>,
    pub target_tps: f64,
    pub warmup_seconds: f64,
    pub requirements: Requirements,
    /// How long the rate would have to be held (the endurance duration): how
    /// far an unsustainable step's latency is projected.
    pub horizon: std::time::Duration,
    /// From when the rate is steady and must be held, if not from the end of
    /// the warm-up: a ramp's climb is judged by latency and errors, only its
    /// hold by whether the work in flight stays level.
    pub steady_from: Option<std::time::Duration>,
    /// A streaming step is judged on goodput against these; `requirements`
    /// is then their envelope ([`StreamRequirements::envelope`]).
    pub streaming: Option<StreamRequirements>,
}

/// The figures a step is judged on.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub judged_latency_ms: Option<f64>,
    pub error_percent: f64,
    pub offered_tps: f64,
    pub achieved_tps: f64,
    pub requests: u64,
    pub interrupted: bool,
    pub stationarity: Option<Stationarity>,
    pub horizon: std::time::Duration,
}

/// Judges measured figures against `requirements`; empty means passed.
pub fn judge(requirements: &Requirements, measured: &Measured, generator: &Generator) -> Vec<Miss> {
    let Measured {
        judged_latency_ms,
        error_percent,
        offered_tps,
        achieved_tps,
        requests,
        interrupted,
        ref stationarity,
        horizon,
    } = *measured;
    let mut misses = Vec::new();
    if interrupted {
        misses.push(Miss::Interrupted);
    }
    if requests == 0 {
        misses.push(Miss::NoTraffic);
        return misses;
    }
    // The endpoint's own answers still count; its latency and rate were
    // not measured at the offered rate, so they are nobody's verdict.
    if let Some(limited) = generator.limited {
        if error_percent > requirements.max_error_percent {
            misses.push(Miss::Errors { measured_percent: error_percent, limit_percent: requirements.max_error_percent });
        }
        misses.push(Miss::Generator {
            late_starts: generator.late_starts,
            slip_p99_ms: generator.slip_p99_ms,
            limited: Some(limited),
        });
        return misses;
    }
    if let Some(measured) = judged_latency_ms
        && measured > requirements.latency_ms
    {
        misses.push(Miss::Latency {
            percentile: requirements.percentile,
            measured_ms: measured,
            limit_ms: requirements.latency_ms,
        });
    }
    if error_percent > requirements.max_error_percent {
        misses.push(Miss::Errors { measured_percent: error_percent, limit_percent: requirements.max_error_percent });
    }
    if achieved_tps < MIN_ACHIEVED_SHARE * offered_tps {
        misses.push(Miss::Rate { achieved_tps, offered_tps });
    }
    if let Some(s) = stationarity.as_ref().filter(|s| !s.stationary) {
        misses.push(Miss::Unsustainable {
            in_flight_from: s.in_flight_from,
            in_flight_to: s.in_flight_to,
            seconds: s.seconds,
            latency_ratio: s.latency_ratio,
            projected_latency_ms: s.projected_latency_ms(judged_latency_ms.unwrap_or(0.0), horizon),
            horizon_seconds: horizon.as_secs_f64(),
        });
    }
    // Latency counts from the intended start, so schedule slip only makes a
    // step look worse: it casts doubt on a failure, never on a pass.
    if generator.ran_out_of_slots(requests) || (generator.slipped(requirements) && !misses.is_empty()) {
        misses.push(Miss::Generator { late_starts: generator.late_starts, slip_p99_ms: generator.slip_p99_ms, limited: None });
    }
    misses
}

impl StepResult {
    /// The result of `run` in `context`; CloudWatch figures are filled in later.
    pub fn from_run(context: StepContext, run: &LoadRun) -> StepResult {
        let t = &run.totals;
        let seconds = run.measured_seconds.max(1e-9);
        let requests = t.counts.sent;
        let offered_tps = run.offered as f64 / seconds;
        let achieved_tps = (t.counts.succeeded + t.counts.answered_failures) as f64 / seconds;
        let error_percent = if requests == 0 { 0.0 } else { t.counts.failed as f64 / requests as f64 * 100.0 };
        let mut generator = Generator {
            max_in_flight: run.max_in_flight,
            late_starts: t.counts.late_starts,
            slip_p50_ms: histogram::at_percentile(&t.slip, 50.0).unwrap_or(0.0),
            slip_p99_ms: histogram::at_percentile(&t.slip, 99.0).unwrap_or(0.0),
            saturated: false,
            limited: GeneratorLimit::of(run),
        };
        generator.saturated =
            generator.ran_out_of_slots(requests) || generator.slipped(&context.requirements) || generator.limited.is_some();
        let streaming = context
            .streaming
            .zip(run.streaming.as_ref())
            .map(|(requirements, recording)| StreamResult::of(recording, requirements, run.measured_seconds));
        // A streaming step is judged on goodput, not on a latency percentile.
        let judged_latency_ms = match streaming {
            Some(_) => None,
            None => histogram::at_percentile(&t.all, context.requirements.percentile),
        };
        let warmup = std::time::Duration::from_secs_f64(context.warmup_seconds);
        let end = warmup + std::time::Duration::from_secs_f64(run.measured_seconds);
        // A closed loop keeps its in-flight count fixed: a slower server gets
        // fewer requests, never a queue, so there is no backlog to judge.
        let stationarity = match run.model {
            LoadModel::Open => Stationarity::assess(&run.series, context.steady_from.unwrap_or(warmup), end),
            LoadModel::ClosedLoop { .. } => None,
        };
        let measured = Measured {
            judged_latency_ms,
            error_percent,
            offered_tps,
            achieved_tps,
            requests,
            interrupted: run.cancelled,
            stationarity: stationarity.clone(),
            horizon: context.horizon,
        };
        let mut misses = judge(&context.requirements, &measured, &generator);
        if let Some(stream) = streaming.as_ref().filter(|s| s.short_of_goodput() && requests > 0) {
            misses.push(Miss::Goodput {
                measured_percent: stream.goodput_percent,
                target_percent: stream.requirements.goodput_percent,
            });
        }
        let disturbance = Disturbance::detect(&run.series, &context.requirements, error_percent);
        StepResult {
            index: context.index,
            phase: context.phase,
            simulated: context.simulated,
            endpoint_name: context.endpoint_name,
            instance_type: context.candidate.as_ref().map_or(String::new(), Candidate::kind_label),
            instance_count: context.candidate.as_ref().map_or(0, Candidate::instance_count),
            serverless: context.candidate.as_ref().and_then(Candidate::serverless).copied(),
            max_concurrent_invocations: context
                .candidate
                .as_ref()
                .and_then(Candidate::fleet)
                .and_then(|f| f.max_concurrent_invocations),
            target_tps: context.target_tps,
            offered_tps: round3(offered_tps),
            achieved_tps: round3(achieved_tps),
            started_at: run.started_at,
            ended_at: run.ended_at,
            duration_seconds: run.measured_seconds,
            warmup_seconds: context.warmup_seconds,
            requests,
            succeeded: t.counts.succeeded,
            failed: t.counts.failed,
            error_percent: round3(error_percent),
            latency_ms: Percentiles::of(&t.all),
            success_latency_ms: Percentiles::of(&t.success),
            judged_latency_ms,
            errors_by_status: t.errors_by_status.clone(),
            errors_by_code: t.errors_by_code.clone(),
            generator,
            load_model: run.model,
            shard: run.shard,
            stationarity,
            requirements: context.requirements,
            passed: misses.is_empty(),
            reasons: misses.iter().map(Miss::describe).collect(),
            misses,
            disturbance,
            remeasure_of: None,
            cloudwatch: ServerMetrics::unavailable("not fetched yet"),
            series: run.series.clone(),
            asynchronous: run.asynchronous.clone(),
            streaming,
            histogram: histogram::encode(&t.all),
            success_histogram: histogram::encode(&t.success),
        }
    }

    /// A few lines for a terminal: rate, requests and errors, percentiles,
    /// the server's view, and the verdict.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let errors = if self.failed == 0 {
            String::new()
        } else {
            let codes: Vec<String> = self.errors_by_code.iter().map(|(code, n)| format!("{code} ×{n}")).collect();
            format!(": {}", codes.join(", "))
        };
        out.push_str(&match self.load_model {
            LoadModel::Open => format!(
                "  rate      offered {}/s · achieved {}/s (target {})\n",
                tps(self.offered_tps),
                tps(self.achieved_tps),
                tps(self.target_tps)
            ),
            LoadModel::ClosedLoop { concurrency } => {
                format!("  rate      achieved {}/s (closed loop: {concurrency} always in flight)\n", tps(self.achieved_tps))
            }
        });
        out.push_str(&format!("  requests  {} · failed {} ({:.3}%){errors}\n", self.requests, self.failed, self.error_percent));
        if let Some(p) = &self.latency_ms {
            out.push_str(&format!(
                "  latency   p50 {} · p90 {} · p95 {} · p99 {} · p99.9 {} · max {} ms (all requests, {})\n",
                ms(p.p50),
                ms(p.p90),
                ms(p.p95),
                ms(p.p99),
                ms(p.p99_9),
                ms(p.max),
                self.load_model.latency_label()
            ));
        }
        if let Some(a) = &self.asynchronous {
            out.push_str(&format!(
                "  async     latency is submission → output seen, looked for every {}–{} ms · S3 requests {} per inference (PUT {} · HEAD {} · GET {} · DELETE {})\n",
                trim_number(a.polling_interval_ms),
                trim_number(a.max_polling_interval_ms),
                trim_number(a.s3_requests_per_inference),
                a.s3_put,
                a.s3_head,
                a.s3_get,
                a.s3_delete
            ));
        }
        if let Some(stream) = &self.streaming {
            out.push_str(&stream.summary());
        }
        let cw = &self.cloudwatch;
        match (&cw.model_latency_ms, cw.available) {
            (Some(model), true) => {
                out.push_str(&format!("  server    ModelLatency avg {} · p99 {} ms", ms(model.avg), ms(model.p99)));
                if let Some(overhead) = &cw.overhead_latency_ms {
                    out.push_str(&format!(" · OverheadLatency avg {} ms", ms(overhead.avg)));
                }
                if let Some(cpu) = cw.cpu_utilization_avg {
                    out.push_str(&format!(" · CPU {cpu:.0}%"));
                }
                out.push('\n');
            }
            _ => out.push_str(&format!("  server    CloudWatch: {}\n", cw.note.as_deref().unwrap_or("not available"))),
        }
        if let (true, Some(stream)) = (self.passed, &self.streaming) {
            out.push_str(&format!(
                "  verdict   PASS (goodput {}% ≥ {}%, errors {:.3}% ≤ {}%)\n",
                trim_number(stream.goodput_percent),
                trim_number(stream.requirements.goodput_percent),
                self.error_percent,
                self.requirements.max_error_percent
            ));
        } else if self.passed {
            out.push_str(&format!(
                "  verdict   PASS ({} {} ms ≤ {} ms, errors {:.3}% ≤ {}%)\n",
                self.requirements.percentile_label(),
                ms(self.judged_latency_ms.unwrap_or(0.0)),
                trim_number(self.requirements.latency_ms),
                self.error_percent,
                self.requirements.max_error_percent
            ));
            if self.generator.saturated && self.generator.limited.is_none() {
                out.push_str(&format!(
                    "            the load generator fell behind (slip p99 {} ms); latency counts it, so the pass stands\n",
                    ms(self.generator.slip_p99_ms)
                ));
            }
        } else {
            out.push_str("  verdict   FAIL\n");
            for reason in &self.reasons {
                out.push_str(&format!("            - {reason}\n"));
            }
        }
        if let Some(d) = &self.disturbance {
            out.push_str(&format!("  note      {}\n", d.describe()));
        }
        if let Some(first) = self.remeasure_of {
            out.push_str(&format!("  note      measures disturbed step {first} again\n"));
        }
        out
    }

    /// Whether the sizing run should measure this step again before judging
    /// its probe: it failed on a disturbance, and is not itself the second
    /// measurement (a step disturbed twice is judged as measured).
    pub fn awaits_remeasure(&self) -> bool {
        !self.passed && self.disturbance.is_some() && self.remeasure_of.is_none()
    }

    /// Marks this step as the second measurement of disturbed step `first`.
    /// Disturbed again, it is judged as measured, and its reasons say so.
    pub fn remeasures(&mut self, first: u32) {
        self.remeasure_of = Some(first);
        if !self.passed && self.disturbance.is_some() {
            self.reasons.push(format!("disturbed twice (step {first} too): judged as measured"));
        }
    }

    /// The load the step offered: its rate, or its closed loop's streams.
    pub fn load(&self) -> Load {
        match self.load_model {
            LoadModel::Open => Load::Rate(self.target_tps),
            LoadModel::ClosedLoop { concurrency } => Load::Concurrency(concurrency as u32),
        }
    }

    pub fn candidate(&self) -> Option<Candidate> {
        match self.serverless {
            Some(size) => Some(Candidate::Serverless(size)),
            None => {
                let fleet = Candidate::parse(&self.instance_type, self.instance_count)?.fleet()?.clone();
                Some(Fleet { max_concurrent_invocations: self.max_concurrent_invocations, ..fleet }.candidate())
            }
        }
    }

    /// A file name that sorts in run order and says what the step was.
    pub fn file_name(&self) -> String {
        let load = match self.load() {
            Load::Rate(tps) => format!("{}tps", trim_number(tps)),
            Load::Concurrency(streams) => format!("{streams}streams"),
        };
        format!("{:03}-{}-{}-x{}-{load}.json", self.index, self.phase.as_str(), self.instance_type, self.instance_count)
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(saturated: bool) -> Generator {
        Generator {
            max_in_flight: 100,
            late_starts: if saturated { 50 } else { 0 },
            slip_p50_ms: 0.1,
            slip_p99_ms: 0.5,
            saturated,
            limited: None,
        }
    }

    fn measured(latency: Option<f64>, errors: f64, offered: f64, achieved: f64, requests: u64, interrupted: bool) -> Measured {
        Measured {
            judged_latency_ms: latency,
            error_percent: errors,
            offered_tps: offered,
            achieved_tps: achieved,
            requests,
            interrupted,
            stationarity: None,
            horizon: std::time::Duration::from_secs(600),
        }
    }

    fn requirements() -> Requirements {
        Requirements::new(500.0, 99.0, 0.1).unwrap()
    }

    #[test]
    fn a_step_within_every_requirement_passes() {
        assert!(judge(&requirements(), &measured(Some(120.0), 0.0, 100.0, 99.9, 6000, false), &generator(false)).is_empty());
    }

    #[test]
    fn every_missed_requirement_is_a_reason() {
        let misses = judge(&requirements(), &measured(Some(900.0), 2.5, 100.0, 80.0, 6000, false), &generator(true));
        let kinds: Vec<&str> = misses
            .iter()
            .map(|m| match m {
                Miss::Latency { .. } => "latency",
                Miss::Errors { .. } => "errors",
                Miss::Rate { .. } => "rate",
                Miss::Generator { .. } => "generator",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["latency", "errors", "rate", "generator"]);
        assert_eq!(misses[0].describe(), "p99 latency 900.0 ms is above the 500 ms limit (+80%)");
        assert!(misses[1].describe().starts_with("2.500% of requests failed"));
    }

    #[test]
    fn limits_are_inclusive() {
        assert!(judge(&requirements(), &measured(Some(500.0), 0.1, 100.0, 95.0, 10, false), &generator(false)).is_empty());
    }

    #[test]
    fn an_interrupted_or_empty_step_never_passes() {
        assert_eq!(judge(&requirements(), &measured(None, 0.0, 100.0, 0.0, 0, false), &generator(false)), vec![Miss::NoTraffic]);
        assert!(
            judge(&requirements(), &measured(Some(1.0), 0.0, 100.0, 100.0, 10, true), &generator(false))
                .contains(&Miss::Interrupted)
        );
    }

    #[test]
    fn slip_casts_doubt_on_a_failure_but_never_on_a_pass() {
        let slow_client = Generator { slip_p99_ms: 30.0, saturated: true, ..generator(false) };
        let within = measured(Some(400.0), 0.0, 100.0, 100.0, 6000, false);
        assert!(
            judge(&requirements(), &within, &slow_client).is_empty(),
            "the latency includes the slip and still meets the limit"
        );
        let above = measured(Some(520.0), 0.0, 100.0, 100.0, 6000, false);
        let misses = judge(&requirements(), &above, &slow_client);
        assert!(matches!(misses[..], [Miss::Latency { .. }, Miss::Generator { late_starts: 0, .. }]), "{misses:?}");
    }

    #[test]
    fn a_generator_limited_step_blames_the_generator_and_only_the_errors_on_the_endpoint() {
        let limit = GeneratorLimit { reached_tps: 9_000.0, offered_tps: 40_000.0, not_sent: 310_000 };
        let limited = Generator { limited: Some(limit), saturated: true, slip_p99_ms: 60.0, ..generator(false) };
        let slow_and_short = measured(Some(900.0), 0.0, 40_000.0, 9_000.0, 90_000, false);
        let misses = judge(&requirements(), &slow_and_short, &limited);
        assert_eq!(misses, vec![Miss::Generator { late_starts: 0, slip_p99_ms: 60.0, limited: Some(limit) }]);
        assert!(misses[0].describe().starts_with("generator-limited: this machine sent 9"), "{}", misses[0].describe());
        let failing = measured(Some(900.0), 5.0, 40_000.0, 9_000.0, 90_000, false);
        assert!(matches!(judge(&requirements(), &failing, &limited)[..], [Miss::Errors { .. }, Miss::Generator { .. }]));
    }

    #[test]
    fn slip_is_judged_against_the_latency_limit() {
        assert_eq!(slip_limit_ms(&Requirements::new(100.0, 99.0, 0.1).unwrap()), 10.0);
        assert_eq!(slip_limit_ms(&Requirements::new(1000.0, 99.0, 0.1).unwrap()), 50.0);
    }

    #[test]
    fn numbers_print_without_trailing_zeros() {
        assert_eq!(trim_number(100.0), "100");
        assert_eq!(trim_number(12.5), "12.5");
        assert_eq!(trim_number(0.125), "0.125");
    }
}
