//! What the sizing run shows: the conclusion on the terminal, and the
//! command line as recorded (secrets hidden).

use std::path::Path;
use std::time::Duration;

use crate::cost::compare::{Comparison, Kind};
use crate::format::{money, tps, trim_number};
use crate::record::{AsyncRecommendation, REPORT_FILE, ScalingVerdict, ServerlessOutcome, StreamingRecommendation, Summary};
use crate::vocab::Phase;

/// What an asynchronous recommendation costs per request and standing idle.
fn async_text(a: &AsyncRecommendation) -> String {
    let mut out = String::new();
    if let Some(n) = a.max_concurrent_invocations_per_instance {
        out.push_str(&format!("  MaxConcurrentInvocationsPerInstance: {n}\n"));
    }
    if let Some(c) = &a.cost_per_1000_requests {
        out.push_str(&format!(
            "  per 1,000 requests: {} (endpoint {} + S3 requests {} + storage {}); {} S3 requests per inference\n",
            money(c.total),
            money(c.endpoint),
            money(c.s3_requests),
            money(c.s3_storage),
            a.s3_requests_per_inference.map_or("?".into(), trim_number)
        ));
    }
    out.push_str(&format!(
        "  idle: {}/hour{}\n",
        money(a.idle_cost_per_hour),
        if a.idle_cost_per_hour == 0.0 { " (scales to zero)" } else { "" }
    ));
    out
}

/// A streaming recommendation in tokens: cost per million and the scaling target.
fn streaming_text(rec: &StreamingRecommendation) -> String {
    let dollars = |d: Option<f64>| d.map_or("?".into(), money);
    let mut out = format!(
        "  per million tokens: {} output · {} input ({} output tokens/s at the peak)\n",
        dollars(rec.cost_per_million_output_tokens),
        dollars(rec.cost_per_million_input_tokens),
        trim_number(rec.output_tokens_per_second_at_peak)
    );
    if let Some(scaling) = &rec.scaling {
        out.push_str(&format!(
            "  streaming auto-scaling: {} target {} per instance ({} streams held × safety {})\n",
            scaling.metric,
            trim_number(scaling.target_value),
            trim_number(scaling.concurrency_per_instance),
            trim_number(scaling.safety_factor)
        ));
    }
    out
}

/// The command line as recorded: URL credentials and secret-looking values hidden.
pub fn redacted_command_line() -> Vec<String> {
    redacted(&std::env::args().collect::<Vec<_>>())
}

/// `args` with URL credentials and the values of secret-looking flags hidden.
pub fn redacted(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut hide_next = false;
    for arg in args.iter().cloned() {
        if hide_next {
            out.push("***".to_string());
            hide_next = false;
            continue;
        }
        let lower = arg.to_lowercase();
        let secret_flag = lower.starts_with("--") && ["secret", "token", "password", "key"].iter().any(|w| lower.contains(w));
        if secret_flag && !arg.contains('=') {
            hide_next = true;
            out.push(arg);
        } else if secret_flag {
            out.push(format!("{}=***", arg.split('=').next().unwrap_or_default()));
        } else {
            out.push(hide_url_credentials(&arg));
        }
    }
    out
}

fn hide_url_credentials(arg: &str) -> String {
    match (arg.find("://"), arg.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***@{}", &arg[..scheme], &arg[at + 1..]),
        _ => arg.to_string(),
    }
}

/// What the run concluded, for the terminal.
pub fn conclusion_text(summary: &Summary, dir: &Path) -> String {
    let mut out = String::new();
    if summary.simulated {
        out.push_str("SIMULATED RUN — figures come from perfsize's simulator, not AWS\n");
    }
    match &summary.recommendation {
        Some(rec) => {
            out.push_str(&format!(
                "recommendation: {} × {}  {}/hour · {}/month · {} per million inferences at {}\n",
                rec.instance_type,
                rec.instance_count,
                money(rec.cost_per_hour),
                money(rec.cost_per_month),
                money(rec.cost_per_million_inferences),
                summary.peak_label()
            ));
            let capacity = &rec.capacity;
            out.push_str(&format!(
                "  one instance sustains {} {} within the requirements ({}); auto-scaling: target {}{}, {}–{} instances\n",
                capacity.figure(),
                capacity.unit(),
                match capacity.below {
                    Some(below) => format!("fails at {}", tps(below)),
                    None => format!("a lower bound: {}", capacity.unmeasured_beyond()),
                },
                rec.autoscaling.target_text(),
                if capacity.is_bracketed() { "" } else { " (built on the bound: conservative)" },
                rec.autoscaling.min_instances(),
                rec.autoscaling.max_instances()
            ));
            if let Some(a) = &rec.asynchronous {
                out.push_str(&async_text(a));
            }
            if let Some(streaming) = summary.streaming.as_ref().and_then(|s| s.recommendation.as_ref()) {
                out.push_str(&streaming_text(streaming));
            }
        }
        None if !summary.types.is_empty() || summary.serverless.is_none() => {
            let kind = if summary.serverless.is_some() { "instance " } else { "" };
            out.push_str(&format!("no {kind}configuration met the requirements:\n"));
            for t in &summary.types {
                out.push_str(&format!("  {}: {}\n", t.summary.label(), t.summary.verdict));
            }
        }
        None => {}
    }
    if let Some(serverless) = &summary.serverless {
        out.push_str(&serverless_text(serverless));
    }
    if let Some(c) = &summary.comparison {
        out.push_str(&comparison_text(c));
    }
    if let Some(verdict) = &summary.scaling {
        out.push_str(&scaling_text(verdict, summary.peak_tps.unwrap_or_default()));
    }
    if let Some(note) = &summary.note {
        out.push_str(&format!("run ended early: {note}\n"));
    }
    let endurance = summary.steps.iter().filter(|s| s.phase == Phase::Endurance).count();
    out.push_str(&format!(
        "{} steps ({} endurance), {:.3} endpoint-hours, {}, {}\nreport: {}",
        summary.steps.len(),
        endurance,
        summary.run_cost.endpoint_hours,
        money(summary.run_cost.dollars),
        humantime::format_duration(Duration::from_secs(summary.run_cost.wall_seconds as u64)),
        dir.join(REPORT_FILE).display()
    ));
    out
}

/// The serverless search: its recommendation and cost, or why each memory size failed; the cold start.
fn serverless_text(s: &ServerlessOutcome) -> String {
    let mut out = String::new();
    match &s.recommended {
        Some(rec) => out.push_str(&format!(
            "serverless: {}  {}/month · {} per million inferences at your traffic · {}/hour idle\n",
            rec.configuration,
            money(rec.cost_per_month),
            money(rec.cost_per_million_inferences),
            money(rec.idle_cost_per_hour)
        )),
        None => out.push_str("no serverless configuration met the requirements:\n"),
    }
    for m in s.memory.iter().filter(|m| m.max_concurrency.is_none()) {
        out.push_str(&format!("  serverless {} MB: {}\n", m.memory_size_mb, m.verdict));
    }
    if let Some(c) = &s.cold_start {
        let share = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
        out.push_str(&format!(
            "  cold start after {} idle: p50 {} · p99 {} ms; {} of requests met a cold worker (CloudWatch), {} (client) — {}\n",
            humantime::format_duration(Duration::from_secs(c.idle_seconds as u64)),
            c.p50_ms.map_or("-".into(), crate::format::ms),
            c.p99_ms.map_or("-".into(), crate::format::ms),
            share(c.cold_share_cloudwatch),
            share(c.cold_share_client),
            if c.passed { "within the requirements".to_string() } else { format!("misses: {}", c.reasons.join("; ")) }
        ));
    }
    out
}

/// Instances against serverless on the user's month.
fn comparison_text(c: &Comparison) -> String {
    let even = c.break_even_requests_per_month.map_or_else(
        || "the answer does not change from a thousandth to a thousand times this volume".to_string(),
        |v| format!("break-even at {} requests/month", crate::format::thousands(v)),
    );
    format!(
        "at your traffic ({}, {} requests/month): instances {}/month, serverless {}/month — {} is cheaper; {even}\n",
        c.traffic,
        crate::format::thousands(c.requests_per_month),
        money(c.instances_per_month),
        money(c.serverless_per_month),
        match c.cheaper {
            Kind::Instances => "instances",
            Kind::Serverless => "serverless",
        }
    )
}

/// The auto-scaling test: each metric's minimum and how it was found.
fn scaling_text(verdict: &ScalingVerdict, peak_tps: f64) -> String {
    let mut out = format!(
        "auto-scaling, tested under a {} ramp to {} TPS, then {} at peak:\n",
        humantime::format_duration(Duration::from_secs(verdict.ramp_seconds as u64)),
        trim_number(peak_tps),
        humantime::format_duration(Duration::from_secs(verdict.hold_seconds as u64)),
    );
    for m in &verdict.metrics {
        let tried: Vec<String> =
            m.trials.iter().map(|t| format!("{} {}", t.min, if t.passed { "PASS" } else { "FAIL" })).collect();
        let found = if m.scales {
            format!("min {} holds", m.policy.min)
        } else if m.trials.is_empty() {
            "not tested".to_string()
        } else {
            format!("no minimum below {} holds", verdict.fixed_count)
        };
        out.push_str(&format!(
            "  {} (target {} {}, max {}): {found}; tried {}\n",
            m.policy.metric,
            trim_number(m.policy.target),
            m.policy.metric.unit(),
            m.policy.max,
            if tried.is_empty() { "nothing".to_string() } else { tried.join(", ") },
        ));
        if let Some(reaction) = m.trials.iter().find(|t| t.passed).and_then(|t| t.first_scale_out_after_breach) {
            out.push_str(&format!("    first new instance served {:.0} s after the target was passed\n", reaction));
        }
        if let Some(spike_min) = m.spike_min {
            let tried: Vec<String> =
                m.spikes.iter().map(|t| format!("{} {}", t.min, if t.passed { "PASS" } else { "FAIL" })).collect();
            out.push_str(&format!("    a spike straight to the peak needs min {spike_min}; tried {}\n", tried.join(", ")));
        }
        if let Some(suggestion) = &m.suggestion {
            out.push_str(&format!("    {suggestion}\n"));
        }
    }
    if let Some(note) = &verdict.note {
        out.push_str(&format!("  the test stopped early: {note}\n"));
    }
    if let Some(difference) = verdict.difference() {
        out.push_str(&format!("  {difference}\n"));
    }
    out.push_str(&format!("  → {}\n", verdict.conclusion()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conclusion_shows_a_bound_as_a_bound() {
        let mut summary = crate::report::fixtures::recommended_run().summary;
        let text = conclusion_text(&summary, Path::new("run"));
        assert!(
            text.contains("one instance sustains ≥ 100 TPS within the requirements (a lower bound: no higher rate was measured)"),
            "{text}"
        );
        assert!(text.contains("(built on the bound: conservative)"), "{text}");
        summary.recommendation.as_mut().unwrap().capacity = crate::step::Capacity::between(117.5, Some(121.25));
        let text = conclusion_text(&summary, Path::new("run"));
        assert!(text.contains("one instance sustains 117.5 TPS within the requirements (fails at 121.3)"), "{text}");
        assert!(!text.contains("conservative"), "{text}");
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(hide_url_credentials("http://user:pw@host:1/x"), "http://***@host:1/x");
        assert_eq!(hide_url_credentials("http://host:1"), "http://host:1");
    }
}
