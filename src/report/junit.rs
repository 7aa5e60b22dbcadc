//! `junit.xml`: one test case per step and one for the overall requirement,
//! as Jenkins' JUnit step shows and trends them.
//!
//! Search steps above a type's capacity are how the search finds the limit,
//! not test failures: they are reported as skipped, with the reason. An
//! endurance or load step that misses a requirement is a failure, and so is
//! a run without a recommendation.

use std::fmt::Write;

use super::RunData;
use crate::format::xml_escape as escape;
use crate::result::{Miss, StepResult};
use crate::vocab::Phase;

/// What a step measured, without its place in the run: the same name in
/// every build, so Jenkins can trend it.
fn case_name(step: &StepResult) -> String {
    format!("{} {} x{} at {}", step.phase.as_str(), step.instance_type, step.instance_count, step.load().label())
}

/// Whether a step missed only requirements — what a search is there to find.
fn missed_only_requirements(step: &StepResult) -> bool {
    step.misses.iter().all(|m| {
        matches!(
            m,
            Miss::Latency { .. } | Miss::Errors { .. } | Miss::Rate { .. } | Miss::Unsustainable { .. } | Miss::Goodput { .. }
        )
    })
}

/// How a step shows in JUnit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Passed,
    /// A search probe above the type's capacity, or an auto-scaling trial
    /// from too few instances: how the search finds its limit.
    Skipped,
    /// A requirement missed where it had to be met.
    Failure,
    /// The step measured nothing trustworthy (interrupted, no traffic, generator behind).
    Error,
}

fn verdict(step: &StepResult) -> Verdict {
    match (step.passed, missed_only_requirements(step), step.phase) {
        (true, _, _) => Verdict::Passed,
        (false, false, _) => Verdict::Error,
        (false, true, Phase::Search | Phase::Scaling) => Verdict::Skipped,
        (false, true, _) => Verdict::Failure,
    }
}

fn step_case(out: &mut String, step: &StepResult, name: &str) {
    let time = (step.ended_at - step.started_at).num_milliseconds().max(0) as f64 / 1000.0;
    let _ = write!(
        out,
        r#"    <testcase classname="perfsize.{}" name="{}" time="{time:.3}">"#,
        escape(&step.instance_type.replace('.', "_")),
        escape(name)
    );
    let reasons = escape(&step.reasons.join("; "));
    match verdict(step) {
        Verdict::Passed => {}
        Verdict::Skipped => {
            let limit =
                if step.phase == Phase::Scaling { "below the minimum auto-scaling needs" } else { "above this type's capacity" };
            let _ = write!(out, r#"<skipped message="{limit}: {reasons}"/>"#);
        }
        Verdict::Failure => {
            let _ = write!(out, r#"<failure message="{reasons}" type="requirement">{reasons}</failure>"#);
        }
        Verdict::Error => {
            let _ = write!(out, r#"<error message="{reasons}" type="measurement">{reasons}</error>"#);
        }
    }
    let p = step.latency_ms.map(|l| format!("p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", l.p50, l.p99, l.max)).unwrap_or_default();
    let _ = writeln!(
        out,
        "<system-out>{}</system-out></testcase>",
        escape(&format!(
            "offered {} TPS, achieved {} TPS, {} requests, {}% errors, {p}",
            step.offered_tps, step.achieved_tps, step.requests, step.error_percent
        ))
    );
}

pub fn render(data: &RunData) -> String {
    let s = &data.summary;
    let count = |v: Verdict| data.steps.iter().filter(|st| verdict(st) == v).count();
    let failures = count(Verdict::Failure) + !s.recommends_something() as usize;
    let errors = count(Verdict::Error);
    let skipped = count(Verdict::Skipped);
    let tests = data.steps.len() + 1;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        r#"<testsuites name="perfsize" tests="{tests}" failures="{failures}" errors="{errors}" skipped="{skipped}">"#
    );
    let _ = writeln!(
        out,
        r#"  <testsuite name="perfsize.{}" tests="{tests}" failures="{failures}" errors="{errors}" skipped="{skipped}" time="{:.3}" timestamp="{}">"#,
        escape(&s.run_id),
        s.run_cost.wall_seconds,
        s.started_at.format("%Y-%m-%dT%H:%M:%S")
    );
    // A probe measured again keeps its name with a count, so names stay unique.
    let mut seen = std::collections::HashMap::new();
    for step in &data.steps {
        let name = case_name(step);
        let n = seen.entry(name.clone()).and_modify(|n| *n += 1).or_insert(1);
        let name = if *n == 1 { name } else { format!("{name} ({n})") };
        step_case(&mut out, step, &name);
    }
    let requirement = format!(
        "peak {} with {} at most {} ms and at most {}% errors",
        s.peak_label(),
        s.requirements.percentile_label(),
        s.requirements.latency_ms,
        s.requirements.max_error_percent
    );
    let _ = write!(out, r#"    <testcase classname="perfsize" name="{}">"#, escape(&format!("recommendation: {requirement}")));
    match &s.recommendation {
        Some(rec) => {
            let _ = write!(
                out,
                "<system-out>{}</system-out>",
                escape(&format!("{} x {} at ${}/hour", rec.instance_type, rec.instance_count, rec.cost_per_hour))
            );
        }
        None => {
            let why: Vec<String> = s.types.iter().map(|t| format!("{}: {}", t.summary.label(), t.summary.verdict)).collect();
            let message = if why.is_empty() {
                s.note.clone().unwrap_or_else(|| "no configuration met the requirements".into())
            } else {
                why.join("; ")
            };
            let _ = write!(
                out,
                r#"<failure message="no configuration met the requirements" type="requirement">{}</failure>"#,
                escape(&message)
            );
        }
    }
    out.push_str("</testcase>\n  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_step_above_a_sustainable_rate_is_skipped_an_endurance_run_fails() {
        let mut step = crate::report::fixtures::step(1, Phase::Search, "ml.c5.large", 1, 133.0, 90);
        step.passed = false;
        step.misses = vec![Miss::Unsustainable {
            in_flight_from: 40.0,
            in_flight_to: 99.0,
            seconds: 10,
            latency_ratio: Some(2.6),
            projected_latency_ms: 1822.0,
            horizon_seconds: 15.0,
        }];
        assert_eq!(verdict(&step), Verdict::Skipped, "finding the limit is what a search is for");
        step.phase = Phase::Endurance;
        assert_eq!(verdict(&step), Verdict::Failure);
    }

    #[test]
    fn hostile_text_is_escaped() {
        assert_eq!(escape(r#"<script>"a" & 'b'</script>"#), "&lt;script&gt;&quot;a&quot; &amp; &apos;b&apos;&lt;/script&gt;");
        assert_eq!(escape("bell\u{7}"), "bell?");
    }
}
