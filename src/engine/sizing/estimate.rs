//! `perfsize plan`: the worst case of a plan — steps, endpoint-hours, wall
//! time and dollars — before anything is deployed.

use std::time::Duration;

use crate::engine::Pace;
use crate::format::trim_number;
use crate::plan::{Plan, ServerlessWalk};
use crate::step::StrategyKind;
use crate::step::adaptive::REFINE_HEADROOM;
use crate::vocab::{Axis, Candidate};

/// How many instances of any type the worst case assumes the peak needs.
const ASSUMED_MAX_INSTANCES: u32 = 8;

/// The search decisions one shape takes on `axis` for a peak of `level` on it.
fn decisions(plan: &Plan, axis: Axis, level: f64) -> usize {
    let s = plan.search();
    let on_walk = |len: usize| 2 * (len as f64).log2().ceil() as usize + 1;
    match (s.strategy, &s.tps_walk, axis) {
        (_, _, Axis::Concurrency) => on_walk(plan.concurrency_walk(level).len()),
        (StrategyKind::Perfsize, walk, _) => s.count_walk.as_ref().map_or(1, Vec::len) + walk.as_ref().map_or(1, Vec::len),
        (StrategyKind::Adaptive, Some(walk), _) => on_walk(walk.len()),
        // Halving from the start down to the floor, then bisecting to the resolution.
        (StrategyKind::Adaptive, None, _) => {
            (s.start_tps / plan.floor_tps()).log2().ceil() as usize + (1.0 / s.tps_resolution).log2().ceil() as usize + 1
        }
    }
}

/// The worst case of a plan, in steps, endpoint-hours, wall time and dollars.
pub fn estimate(plan: &Plan, simulated: bool, pace: &Pace) -> String {
    let s = plan.search();
    let d = plan.durations();
    let peak = plan.peak();
    let step_hours = (d.warmup + d.step).as_secs_f64() / 3600.0;
    let endurance_hours = (d.endurance_ramp + d.endurance).as_secs_f64() / 3600.0;
    let deploy_hours = pace.deploy_estimate.as_secs_f64() / 3600.0;
    let mut out = format!(
        "perfsize plan{}: peak {}, {} ≤ {} ms, errors ≤ {}%, strategy {:?}\n\n",
        if simulated { " (SIMULATED)" } else { "" },
        peak.label(),
        plan.requirements().percentile_label(),
        plan.requirements().latency_ms,
        plan.requirements().max_error_percent,
        s.strategy
    );
    out.push_str(&format!(
        "{:<20} {:>9} {:>14} {:>16} {:>12}\n",
        "instance type", "$/hour", "search steps", "endurance runs", "worst $"
    ));
    // Endurance runs try the count the peak needs, then up to `retries`
    // more, on each axis the peak names.
    let counts: Vec<u32> =
        peak.axes().iter().flat_map(|_| ASSUMED_MAX_INSTANCES..=ASSUMED_MAX_INSTANCES + s.endurance_retries).collect();
    let (mut total_steps, mut total_endurance, mut total_hours, mut total_dollars) = (0usize, 0usize, 0.0, 0.0);
    // Each shape (a type, at each MaxConcurrentInvocationsPerInstance of an
    // asynchronous walk) is searched on its own.
    let shapes = plan.shapes();
    for shape in &shapes {
        let price = plan.price(&shape.instance_type);
        let decisions: usize = peak.axes().into_iter().map(|(axis, level)| decisions(plan, axis, level)).sum();
        // The adaptive search measures a near-limit rate up to three times;
        // perfsizesagemaker trusts every result once.
        let search_steps = if s.strategy == StrategyKind::Adaptive { decisions * 3 } else { decisions };
        let hours = search_steps as f64 * step_hours
            + deploy_hours
            + counts.iter().map(|c| *c as f64 * (endurance_hours + deploy_hours)).sum::<f64>();
        let dollars = hours * price;
        out.push_str(&format!(
            "{:<20} {:>9.3} {:>14} {:>16} {:>12.2}\n",
            shape.label(),
            price,
            search_steps,
            counts.len(),
            dollars
        ));
        total_steps += search_steps;
        total_endurance += counts.len();
        total_hours += hours;
        total_dollars += dollars;
    }
    let mut serverless_wall = 0.0;
    if let Some(walk) = &s.serverless {
        let worst = serverless_worst_case(plan, walk);
        out.push_str(&format!(
            "{:<20} {:>9} {:>14} {:>16} {:>12.2}\n",
            "serverless", "per request", worst.search_steps, worst.endurance_runs, worst.dollars
        ));
        total_steps += worst.search_steps;
        total_endurance += worst.endurance_runs;
        total_dollars += worst.dollars;
        serverless_wall = worst.wall_seconds(walk, d, pace);
    }
    if s.strategy == StrategyKind::Adaptive && !s.types.is_empty() {
        // The winner's capacity is then bracketed: growth up to the headroom
        // above the peak's need, then bisection (or, on a walk, a binary search).
        let decisions = match &s.tps_walk {
            Some(walk) => (walk.len() as f64).log2().ceil() as usize + 1,
            None => REFINE_HEADROOM.log2().ceil() as usize + (1.0 / s.tps_resolution).log2().ceil() as usize,
        };
        let steps = decisions * 3;
        let hours = steps as f64 * step_hours;
        let dollars = hours * dearest_price(plan);
        out.push_str(&format!("{:<20} {:>9} {:>14} {:>16} {:>12.2}\n", "bracket the winner", "", steps, 0, dollars));
        total_steps += steps;
        total_hours += hours;
        total_dollars += dollars;
    }
    let parallel = if s.strategy == StrategyKind::Adaptive { s.parallel } else { 1 };
    let mut wall = total_steps as f64 * (step_hours * 3600.0 + 5.0) / parallel as f64
        + total_endurance as f64 * (endurance_hours * 3600.0 + pace.deploy_estimate.as_secs_f64())
        + shapes.len() as f64 * pace.deploy_estimate.as_secs_f64()
        + serverless_wall;
    let mut trials = String::new();
    if let Some(test) = plan.scaling() {
        let scaling = scaling_worst_case(plan, test, pace);
        trials = format!(", {} auto-scaling trials of {}", scaling.trials, humantime::format_duration(test.ramp + test.hold));
        out.push_str(&format!(
            "{:<20} {:>9} {:>14} {:>16} {:>12.2}\n",
            "auto-scaling test",
            "",
            format!("{} trials", scaling.trials),
            format!("≤ {} instances", scaling.instances),
            scaling.dollars
        ));
        total_hours += scaling.hours;
        total_dollars += scaling.dollars;
        wall += scaling.wall_seconds;
    }
    out.push_str(&format!(
        "\nworst case: {total_steps} search steps of {} and {total_endurance} endurance runs of {}{trials}; {:.2} endpoint-hours, {}, ${:.2}\n",
        humantime::format_duration(d.warmup + d.step),
        humantime::format_duration(d.endurance_ramp + d.endurance),
        total_hours,
        humantime::format_duration(Duration::from_secs(wall as u64)),
        total_dollars
    ));
    out.push_str(&format!(
        "(assuming the peak needs at most {ASSUMED_MAX_INSTANCES} instances of any type, i.e. one sustains at least {}; --max-test-cost caps what a run may spend)\n",
        peak.axes()
            .iter()
            .map(|(axis, level)| format!("{} {}", trim_number(level / ASSUMED_MAX_INSTANCES as f64), axis.unit()))
            .collect::<Vec<_>>()
            .join(" and ")
    ));
    if s.strategy == StrategyKind::Adaptive {
        out.push_str("expected: far fewer — the type with the lowest possible cost goes first, and types that cannot beat a verified configuration are dropped\n");
    }
    out
}

/// The $/hour of one instance of the dearest planned type.
/// The serverless search at its worst: at every memory size the top of the
/// concurrency walk, a bisection of it, and endurance runs up the whole
/// walk; then the cold-start burst after its idle time. Dollars: the
/// provisioned concurrency for that long (requests bill a few cents more).
struct ServerlessWorstCase {
    search_steps: usize,
    endurance_runs: usize,
    dollars: f64,
}

fn serverless_worst_case(plan: &Plan, walk: &ServerlessWalk) -> ServerlessWorstCase {
    let d = plan.durations();
    let bisection = (walk.max_concurrency.len() as f64).log2().ceil() as usize;
    let search_steps = walk.memory.len() * (1 + bisection) + 1;
    let endurance_runs = walk.memory.len() * walk.max_concurrency.len();
    let hours = (search_steps as f64 * (d.warmup + d.step).as_secs_f64()
        + endurance_runs as f64 * (d.warmup + d.endurance).as_secs_f64()
        + walk.idle.as_secs_f64())
        / 3600.0;
    let dearest =
        walk.memory.iter().flat_map(|m| walk.sizes(*m)).map(|size| plan.hourly(&Candidate::Serverless(size))).fold(0.0, f64::max);
    ServerlessWorstCase { search_steps, endurance_runs, dollars: hours * dearest }
}

impl ServerlessWorstCase {
    /// Its wall time: the steps, a deployment per configuration, the idle wait.
    fn wall_seconds(&self, walk: &ServerlessWalk, d: &crate::plan::Durations, pace: &Pace) -> f64 {
        self.search_steps as f64 * (d.warmup + d.step).as_secs_f64()
            + self.endurance_runs as f64 * (d.warmup + d.endurance).as_secs_f64()
            + (self.search_steps + self.endurance_runs) as f64 * pace.deploy_estimate.as_secs_f64()
            + walk.idle.as_secs_f64()
    }
}

fn dearest_price(plan: &Plan) -> f64 {
    plan.search().types.iter().map(|t| plan.price(t)).fold(0.0, f64::max)
}

/// The auto-scaling test at its worst: a bisection over every count up to
/// the assumed fixed-scale answer for each metric (and another for the spike,
/// when asked), each trial on a fresh deployment at the policy's maximum (the
/// fixed count over the safety factor) of the dearest planned type for its
/// whole ramp and hold.
struct ScalingWorstCase {
    trials: usize,
    instances: u32,
    hours: f64,
    dollars: f64,
    wall_seconds: f64,
}

fn scaling_worst_case(plan: &Plan, test: &crate::plan::ScalingTest, pace: &Pace) -> ScalingWorstCase {
    let bisection = (ASSUMED_MAX_INSTANCES as f64).log2().ceil() as usize;
    let trials = test.metrics.len() * bisection * (1 + test.spike as usize);
    let instances = (ASSUMED_MAX_INSTANCES as f64 / plan.safety_factor()).ceil() as u32;
    let price = dearest_price(plan);
    let wall_seconds = trials as f64 * (test.ramp + test.hold + pace.deploy_estimate).as_secs_f64();
    let hours = instances as f64 * wall_seconds / 3600.0;
    ScalingWorstCase { trials, instances, hours, dollars: hours * price, wall_seconds }
}
