//! `perfsize merge`: the shards of one load step, each run by its own
//! process (`perfsize load --shard i/N --shard-dir DIR`), combined into the
//! step's one result — the same JSON and .hgrm a single `perfsize load`
//! writes, judged the same way. Latency comes from the shards' interval
//! logs, whose HdrHistograms add up losslessly; counts and errors from
//! their results.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{ErrorKind, HasKind};
use crate::load::{Counts, Interval, LoadRun, SecondStats, Shard, Totals};
use crate::record::interval_log;
use crate::result::{Miss, ServerMetrics, StepContext, StepResult, histogram};
use crate::vocab::{Candidate, Phase};

use super::load_step::LOAD_HORIZON;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no shard results (shard-i-of-N.json with its .hlog) in {0}")]
    NoShards(String),
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error(transparent)]
    Log(#[from] interval_log::IntervalLogError),
    #[error("the shards are not of one step: {0}")]
    Mismatch(String),
}

impl HasKind for MergeError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Usage
    }
}

/// One shard as its process wrote it.
struct ShardFiles {
    shard: Shard,
    result: StepResult,
    intervals: Vec<Interval>,
    schedule_start: Option<SystemTime>,
}

/// Reads every shard in `dirs` and merges them into one judged result.
pub fn merge(dirs: &[PathBuf]) -> Result<StepResult, MergeError> {
    let mut shards = Vec::new();
    for dir in dirs {
        shards.extend(read_dir(dir)?);
    }
    if shards.is_empty() {
        let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        return Err(MergeError::NoShards(names.join(", ")));
    }
    check_complete(&shards)?;
    Ok(merged(&shards))
}

/// The shards one directory holds: every `shard-i-of-N.json` with its log.
fn read_dir(dir: &Path) -> Result<Vec<ShardFiles>, MergeError> {
    let read_error = |path: &Path, reason: String| MergeError::Read { path: path.display().to_string(), reason };
    let entries = std::fs::read_dir(dir).map_err(|e| read_error(dir, e.to_string()))?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| read_error(dir, e.to_string()))?.path();
        let is_shard = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("shard-") && n.ends_with(".json"));
        if !is_shard {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| read_error(&path, e.to_string()))?;
        let result: StepResult = serde_json::from_slice(&bytes).map_err(|e| read_error(&path, e.to_string()))?;
        let shard = result.shard.ok_or_else(|| read_error(&path, "not a shard's result (no shard field)".into()))?;
        let (intervals, schedule_start) = interval_log::read(&path.with_extension(interval_log::EXTENSION))?;
        found.push(ShardFiles { shard, result, intervals, schedule_start });
    }
    Ok(found)
}

/// Every shard 1..N of one N exactly once, all of the same step.
fn check_complete(shards: &[ShardFiles]) -> Result<(), MergeError> {
    let mismatch = |what: String| Err(MergeError::Mismatch(what));
    let first = &shards[0];
    let count = first.shard.count();
    let mut seen: Vec<u32> = shards.iter().map(|s| s.shard.index()).collect();
    seen.sort_unstable();
    if shards.iter().any(|s| s.shard.count() != count) {
        return mismatch("shards of different counts (i/N with different N)".into());
    }
    if seen != (1..=count).collect::<Vec<_>>() {
        let have: Vec<String> = seen.iter().map(|i| format!("{i}/{count}")).collect();
        return mismatch(format!("expected shards 1/{count} to {count}/{count} once each, found {}", have.join(", ")));
    }
    let key = |r: &StepResult| {
        (r.endpoint_name.clone(), r.instance_type.clone(), r.instance_count, r.load_model, r.warmup_seconds, r.duration_seconds)
    };
    if let Some(other) =
        shards.iter().find(|s| key(&s.result) != key(&first.result) || s.result.requirements != first.result.requirements)
    {
        return mismatch(format!("shard {} measured something else than shard {}", other.shard, first.shard));
    }
    Ok(())
}

/// The whole step the shards ran between them.
fn merged(shards: &[ShardFiles]) -> StepResult {
    let first = &shards[0].result;
    let seconds = first.duration_seconds;
    let intervals = merged_intervals(shards);
    let mut whole = Interval::empty(0);
    for interval in &intervals {
        whole.add(interval);
    }
    let mut totals = Totals { all: whole.all, success: whole.success, slip: whole.slip, ..Totals::default() };
    for s in shards.iter().map(|s| &s.result) {
        totals.merge(&Totals {
            counts: counts_of(s),
            errors_by_status: s.errors_by_status.clone(),
            errors_by_code: s.errors_by_code.clone(),
            ..Totals::default()
        });
    }
    let schedule_start = shards.iter().filter_map(|s| s.schedule_start).min().unwrap_or_else(SystemTime::now);
    let warmup = Duration::from_secs_f64(first.warmup_seconds);
    let run = LoadRun {
        started_at: shards.iter().map(|s| s.result.started_at).min().expect("at least one shard"),
        ended_at: shards.iter().map(|s| s.result.ended_at).max().expect("at least one shard"),
        measured_from: schedule_start + warmup,
        measured_to: schedule_start + warmup + Duration::from_secs_f64(seconds),
        offered: shards.iter().map(|s| (s.result.offered_tps * seconds).round() as u64).sum(),
        measured_seconds: seconds,
        series: merged_series(shards, &intervals),
        intervals,
        totals,
        max_in_flight: shards.iter().map(|s| s.result.generator.max_in_flight).sum(),
        model: first.load_model,
        shard: None,
        cancelled: shards.iter().any(|s| s.result.misses.contains(&Miss::Interrupted)),
        asynchronous: None,
        streaming: None,
    };
    let context = StepContext {
        index: first.index,
        phase: Phase::Load,
        simulated: shards.iter().any(|s| s.result.simulated),
        endpoint_name: first.endpoint_name.clone(),
        candidate: Candidate::parse(&first.instance_type, first.instance_count),
        target_tps: shards.iter().map(|s| s.result.target_tps).sum(),
        warmup_seconds: first.warmup_seconds,
        requirements: first.requirements,
        horizon: LOAD_HORIZON,
        steady_from: None,
        streaming: None,
    };
    let mut step = StepResult::from_run(context, &run);
    step.cloudwatch = ServerMetrics::unavailable(format!("merged from {} shards: see each shard's result", shards.len()));
    step
}

/// The counts a shard's result carries.
fn counts_of(s: &StepResult) -> Counts {
    // Answered failures are what the achieved rate counts beyond successes.
    let answered = ((s.achieved_tps * s.duration_seconds).round() as u64).saturating_sub(s.succeeded);
    Counts {
        sent: s.requests,
        succeeded: s.succeeded,
        failed: s.failed,
        answered_failures: answered.min(s.failed),
        late_starts: s.generator.late_starts,
        not_sent: s.generator.limited.map_or(0, |l| l.not_sent),
    }
}

/// Each second's histograms summed over the shards.
fn merged_intervals(shards: &[ShardFiles]) -> Vec<Interval> {
    let mut seconds: BTreeMap<u32, Interval> = BTreeMap::new();
    for interval in shards.iter().flat_map(|s| &s.intervals) {
        seconds.entry(interval.second).or_insert_with(|| Interval::empty(interval.second)).add(interval);
    }
    seconds.into_values().collect()
}

/// The per-second series of the whole step: counts summed by second, the
/// measured seconds' percentiles from their merged histograms.
fn merged_series(shards: &[ShardFiles], intervals: &[Interval]) -> Vec<SecondStats> {
    let mut rows: BTreeMap<u32, SecondStats> = BTreeMap::new();
    for row in shards.iter().flat_map(|s| &s.result.series) {
        let into = rows.entry(row.second).or_insert_with(|| SecondStats {
            second: row.second,
            warmup: row.warmup,
            offered: 0,
            completed: 0,
            errors: 0,
            server_errors: 0,
            in_flight: 0,
            p50_ms: None,
            p99_ms: None,
        });
        into.offered += row.offered;
        into.completed += row.completed;
        into.errors += row.errors;
        into.server_errors += row.server_errors;
        into.in_flight += row.in_flight;
    }
    for interval in intervals {
        if let Some(row) = rows.get_mut(&interval.second) {
            row.p50_ms = histogram::at_percentile(&interval.all, 50.0);
            row.p99_ms = histogram::at_percentile(&interval.all, 99.0);
        }
    }
    rows.into_values().collect()
}
