//! The sizing run end to end: in-process against --simulate, and as a real
//! process against a standalone simulator for the signal and cleanup paths.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use perfsize::cli::exit;

use crate::cli::{perfsize, quick_run, scratch};
use crate::support::*;

/// Capacities known by construction: one worker each, fixed service times.
/// ml.m5.large serves 50/s ($0.115/h), ml.c5.large 100/s ($0.102/h);
/// ml.t2.medium ($0.056/h, so tried first) never deploys.
pub const PROFILE: &str = r#"
deploy_seconds = 0.2
delete_seconds = 0.1
[default]
vcpus = 2
workers = 1
service_ms = { median = 10.0, p99 = 10.0 }
queue_limit = 20
[instance_types."ml.m5.large"]
service_ms = { median = 20.0, p99 = 20.0 }
[instance_types."ml.c5.large"]
service_ms = { median = 10.0, p99 = 10.0 }
[instance_types."ml.t2.medium"]
deploy_failure = "simulated: insufficient capacity for ml.t2.medium"
"#;

fn fixture(name: &str) -> (crate::cli::Scratch, String, String) {
    fixture_with(name, PROFILE)
}

/// A scratch directory with a payload and `profile`, and their paths.
pub fn fixture_with(name: &str, profile_text: &str) -> (crate::cli::Scratch, String, String) {
    let dir = scratch(name);
    let payload = dir.join("req.json");
    std::fs::write(&payload, br#"{"x": 1}"#).unwrap();
    let profile = dir.join("profile.toml");
    std::fs::write(&profile, profile_text).unwrap();
    let (payload, profile) = (payload.display().to_string(), profile.display().to_string());
    (dir, payload, profile)
}

/// One line per step of a summary, for assertion messages.
fn digest(summary: &serde_json::Value) -> String {
    let steps = summary["steps"].as_array().into_iter().flatten();
    steps
        .map(|st| {
            format!(
                "{} {} × {} at {} TPS: p99 {} ms, passed {} {}\n",
                st["phase"],
                st["instance_type"],
                st["instance_count"],
                st["target_tps"],
                st["latency_ms"]["p99"],
                st["passed"],
                st["reasons"]
            )
        })
        .collect()
}

/// Instances added because endurance failed: the counts of `instance_type`
/// whose every endurance run failed (one measured again and passed adds none).
fn endurance_failures(summary: &serde_json::Value, instance_type: &str) -> usize {
    let steps = summary["steps"].as_array().into_iter().flatten();
    let endurance: Vec<_> = steps.filter(|st| st["instance_type"] == instance_type && st["phase"] == "endurance").collect();
    let counts: std::collections::BTreeSet<u64> = endurance.iter().map(|st| st["instance_count"].as_u64().unwrap()).collect();
    let failed_at = |n: u64| endurance.iter().filter(|st| st["instance_count"] == n).all(|st| st["passed"] == false);
    counts.into_iter().filter(|n| failed_at(*n)).count()
}

/// The steps of `instance_type` in a summary.
fn steps_of<'s>(summary: &'s serde_json::Value, instance_type: &'s str) -> impl Iterator<Item = &'s serde_json::Value> {
    summary["steps"].as_array().into_iter().flatten().filter(move |st| st["instance_type"] == instance_type)
}

fn summary(results: &Path) -> serde_json::Value {
    let run = std::fs::read_dir(results).unwrap().next().expect("one run directory").unwrap().path();
    serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap()
}

#[tokio::test]
async fn a_two_type_run_recommends_the_cheapest_configuration_that_works() {
    let _turn = traffic_turn().await;
    let (dir, payload, profile) = fixture("sizing-two-types");
    let results = dir.join("results");
    let sizing = sixty_tps("ml.m5.large,ml.c5.large,ml.t2.medium");
    let (code, error) = perfsize(&quick_run(&profile, &payload, &results, &sizing)).await;
    assert_eq!(code, exit::OK, "{error}");
    let s = summary(&results);
    assert_eq!(s["simulated"], true);
    assert_eq!(s["status"], "completed");
    let log = digest(&s);
    // One c5 serves 100/s, so c5.large × 1 ($0.102/h) beats m5.large × 2
    // ($0.23/h). On a busy machine an endurance run may fail and add an
    // instance, as it should: c5.large × 2 ($0.204/h) still wins.
    let recommended = &s["recommendation"];
    assert_eq!(recommended["instance_type"], "ml.c5.large", "{log}");
    let per_instance = recommended["max_tps_per_instance"].as_f64().unwrap();
    // No instance may run above --max-utilization (0.9) of the rate one sustained.
    let count = (60.0 / (per_instance * 0.9) * (1.0 - 1e-12)).ceil() as usize + endurance_failures(&s, "ml.c5.large");
    assert_eq!(recommended["instance_count"], count, "{log}");
    assert!((recommended["cost_per_hour"].as_f64().unwrap() - 0.102 * count as f64).abs() < 1e-9);
    assert!(recommended["autoscaling"]["target_invocations_per_instance"].as_u64().unwrap() > 0);
    // The winner's capacity is bracketed to --tps-resolution (25 %), above the
    // peak too: a pass and a failure on one instance, the figure the
    // auto-scaling target is built on.
    let capacity = &recommended["capacity"];
    let (at_least, below) = (capacity["at_least"].as_f64().unwrap(), capacity["below"].as_f64());
    assert_eq!(at_least, per_instance);
    let below = below.unwrap_or_else(|| panic!("bracketed from above: {capacity} {log}"));
    assert!(below > at_least && (below - at_least) / at_least <= 0.25 + 1e-9, "{capacity} {log}");
    assert!(
        steps_of(&s, "ml.c5.large")
            .any(|st| st["instance_count"] == 1 && st["passed"] == false && st["target_tps"].as_f64() == Some(below)),
        "the failing side was measured on one instance: {log}"
    );
    let types = s["types"].as_array().unwrap();
    let broken = types.iter().find(|t| t["instance_type"] == "ml.t2.medium").unwrap();
    assert!(broken["verdict"].as_str().unwrap().contains("insufficient capacity"), "{broken}");
    let m5 = types.iter().find(|t| t["instance_type"] == "ml.m5.large").unwrap();
    let beaten = format!("no cheaper than the verified ml.c5.large × {count}");
    assert!(m5["verdict"].as_str().unwrap().contains(&beaten), "{m5}");
    let steps = s["steps"].as_array().unwrap();
    assert!(steps.iter().any(|st| st["phase"] == "endurance" && st["passed"] == true));
    for step in steps {
        for key in [
            "instance_type",
            "instance_count",
            "target_tps",
            "achieved_tps",
            "passed",
            "reasons",
            "error_percent",
            "started_at",
            "ended_at",
        ] {
            assert!(!step[key].is_null(), "step.{key}");
        }
        assert!(step["latency_ms"]["p99"].is_number());
    }
    assert!(s["run_cost"]["endpoint_hours"].as_f64().unwrap() > 0.0);
    assert!(s["run_cost"]["wall_seconds"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn the_perfsize_strategy_keeps_the_first_type_that_passes() {
    let _turn = traffic_turn().await;
    let (dir, payload, profile) = fixture("sizing-perfsize");
    let results = dir.join("results");
    let sizing = [
        "--strategy",
        "perfsize",
        "--peak-tps",
        "60",
        "--latency-p99-ms",
        "200",
        "--type-walk",
        "ml.m5.large,ml.c5.large",
        "--tps-walk",
        "10,30,45,70",
    ];
    let (code, error) = perfsize(&quick_run(&profile, &payload, &results, &sizing)).await;
    assert_eq!(code, exit::OK, "{error}");
    let s = summary(&results);
    let log = digest(&s);
    // m5.large passes 10, 30, 45 and fails 70: 45/s per instance → 2 instances
    // (and one more for each endurance run a busy machine fails).
    assert_eq!(s["recommendation"]["instance_type"], "ml.m5.large", "{log}");
    assert_eq!(s["recommendation"]["instance_count"], 2 + endurance_failures(&s, "ml.m5.large"), "{log}");
    // What the climb showed, and no step more: bracketed by the walk's 70.
    assert_eq!(s["recommendation"]["capacity"], serde_json::json!({"at_least": 45.0, "below": 70.0}), "{log}");
    // A step the load generator fell behind in is measured again at the same
    // rate (a busy machine), so the rates, not the steps, are counted.
    let mut rates: Vec<f64> =
        steps_of(&s, "ml.m5.large").filter(|st| st["phase"] == "search").map(|st| st["target_tps"].as_f64().unwrap()).collect();
    rates.dedup();
    assert_eq!(rates, [10.0, 30.0, 45.0, 70.0], "{log}");
}

#[tokio::test]
async fn bad_inputs_exit_2_before_anything_is_deployed() {
    let (dir, payload, _) = fixture("sizing-bad");
    let results = dir.join("results");
    let r = results.to_str().unwrap();
    for (args, expect) in [
        (
            vec![
                "--simulate",
                "--peak-tps",
                "10",
                "--type-walk",
                "ml.m5.large",
                "--payload",
                "/no/such/file.json",
                "--results-dir",
                r,
            ],
            "/no/such/file.json",
        ),
        (
            vec!["--simulate", "--peak-tps", "10", "--type-walk", "ml.m6g.large", "--payload", &payload, "--results-dir", r],
            "no price for ml.m6g.large",
        ),
        (
            vec![
                "--simulate",
                "--peak-tps",
                "10",
                "--type-walk",
                "ml.m5.large",
                "--payload",
                &payload,
                "--tps-resolution",
                "2",
                "--results-dir",
                r,
            ],
            "--tps-resolution",
        ),
        (vec!["--simulate", "--peak-tps", "10", "--payload", &payload, "--results-dir", r], "missing --type-walk"),
        (
            vec![
                "--peak-tps",
                "10",
                "--type-walk",
                "ml.m5.large",
                "--payload",
                &payload,
                "--results-dir",
                r,
                "--region",
                "us-west-2",
            ],
            "missing a model (--model-name",
        ),
    ] {
        let (code, error) = perfsize(&args).await;
        assert_eq!(code, exit::USAGE, "{args:?}: {error}");
        assert!(error.contains(expect), "{args:?}: {error}");
    }
    assert!(!results.exists() || std::fs::read_dir(&results).unwrap().next().is_none(), "no run directory for refused inputs");
}

/// Starts a long sizing run against `sim` and waits until it is mid-step.
pub async fn start_long_run(sim: &SimulatorProcess, dir: &Path, payload: &str) -> Child {
    start_long_run_of(sim, dir, payload, &["--peak-tps", "20", "--type-walk", "ml.m5.large"]).await
}

/// Starts a long sizing run of `walk` (the peak and the candidates) against
/// `sim` and waits until it is mid-step.
pub async fn start_long_run_of(sim: &SimulatorProcess, dir: &Path, payload: &str, walk: &[&str]) -> Child {
    let results = dir.join("results");
    let child = sim
        .perfsize(
            &[
                walk,
                &[
                    "--payload",
                    payload,
                    "--image",
                    "123456789012.dkr.ecr.us-west-2.amazonaws.com/model:1",
                    "--execution-role-arn",
                    "arn:aws:iam::123456789012:role/test",
                    "--duration",
                    "60s",
                    "--warmup",
                    "1s",
                    "--poll-interval",
                    "100ms",
                    "--results-dir",
                    results.to_str().unwrap(),
                ],
            ]
            .concat(),
        )
        .spawn()
        .expect("perfsize starts");
    let sm = sim.client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let serving = sm.list_endpoints().status_equals("InService".into()).send().await.unwrap();
        if !serving.endpoints().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the run never deployed its endpoint");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the first step's traffic start.
    tokio::time::sleep(Duration::from_secs(2)).await;
    child
}

#[tokio::test]
async fn ctrl_c_twice_mid_run_still_tears_down_everything_and_exits_130() {
    let _turn = traffic_turn().await;
    let (dir, payload, profile) = fixture("sizing-sigint");
    let sim = SimulatorProcess::start(&profile);
    let mut child = start_long_run(&sim, &dir, &payload).await;
    assert!(!everything(&sim.client()).await.is_empty());
    signal(&child, "INT");
    // A second Ctrl-C during teardown only says teardown is still running.
    std::thread::sleep(Duration::from_millis(200));
    signal(&child, "INT");
    let code = tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(60))).await.unwrap();
    assert_eq!(code, Some(exit::INTERRUPTED as i32));
    assert_eq!(everything(&sim.client()).await, Vec::<String>::new(), "nothing left behind");
    let s = summary(&dir.join("results"));
    assert_eq!(s["status"], "interrupted");
}

#[tokio::test]
async fn cleanup_removes_what_a_killed_run_left() {
    let _turn = traffic_turn().await;
    let (dir, payload, profile) = fixture("sizing-sigkill");
    let sim = SimulatorProcess::start(&profile);
    let mut child = start_long_run(&sim, &dir, &payload).await;
    signal(&child, "KILL");
    let _ = wait_exit(&mut child, Duration::from_secs(10));
    let left = everything(&sim.client()).await;
    assert_eq!(left.len(), 3, "endpoint, config and model survive a SIGKILL: {left:?}");

    let run_id =
        std::fs::read_dir(dir.join("results")).unwrap().next().unwrap().unwrap().file_name().to_string_lossy().into_owned();
    let dry = sim.perfsize(&["cleanup", "--run-id", &run_id, "--dry-run"]).status().unwrap();
    assert!(dry.success());
    assert_eq!(everything(&sim.client()).await.len(), 3, "--dry-run deletes nothing");
    let cleaned = sim.perfsize(&["cleanup", "--run-id", &run_id]).status().unwrap();
    assert!(cleaned.success());
    assert_eq!(everything(&sim.client()).await, Vec::<String>::new());
}

/// Peak 60 TPS within 200 ms over `types`: by PROFILE, one ml.c5.large.
fn sixty_tps(types: &str) -> [&str; 10] {
    ["--peak-tps", "60", "--latency-p99-ms", "200", "--type-walk", types, "--start-tps", "20", "--tps-resolution", "0.25"]
}

#[tokio::test]
async fn resume_skips_the_steps_an_interrupted_run_finished() {
    let _turn = traffic_turn().await;
    let (dir, payload, profile) = fixture("sizing-resume");
    let results = dir.join("results");
    let sizing = sixty_tps("ml.m5.large,ml.c5.large");
    let (code, error) = perfsize(&quick_run(&profile, &payload, &results, &sizing)).await;
    assert_eq!(code, exit::OK, "{error}");
    let run = std::fs::read_dir(&results).unwrap().next().unwrap().unwrap().path();
    let first = summary(&results);
    let finished = first["steps"].as_array().unwrap().len();

    // Pretend the run died before its last step and its summary.
    let mut steps: Vec<PathBuf> = std::fs::read_dir(run.join("steps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    steps.sort();
    let kept: Vec<String> = steps[..steps.len() - 1].iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
    std::fs::remove_file(steps.last().unwrap()).unwrap();
    std::fs::remove_file(run.join("summary.json")).unwrap();

    let mut args = quick_run(&profile, &payload, &results, &sizing);
    let resume = run.to_str().unwrap().to_string();
    args.extend(["--resume", &resume]);

    // The first session spent the whole budget: the resumed one knows it.
    // Its last step may be one bracketing the winner's capacity after its
    // endurance run passed: then the kept steps still verify a recommendation.
    let verified = kept.iter().any(|step| {
        let step: serde_json::Value = serde_json::from_str(step).unwrap();
        step["phase"] == "endurance" && step["passed"] == true
    });
    let spent = first["run_cost"]["dollars"].to_string();
    let over_budget = [args.as_slice(), &["--max-test-cost", &spent]].concat();
    let (code, error) = perfsize(&over_budget).await;
    assert_eq!(code, if verified { exit::OK } else { exit::NOT_MET }, "{error}");
    let stopped = summary(&results);
    assert_eq!(stopped["status"], "budget_reached", "{}", stopped["note"]);
    assert_eq!(stopped["steps"].as_array().unwrap().len(), finished - 1, "nothing new was measured");

    // A flag that changes what was measured is refused; the run's own plan
    // is all `--resume` needs.
    let (code, error) = perfsize(&["--resume", &resume, "--peak-tps", "999"]).await;
    assert_eq!(code, exit::USAGE, "{error}");
    assert!(error.contains("--peak-tps 999 contradicts the run's plan"), "{error}");
    let (code, error) = perfsize(&["--resume", &resume]).await;
    assert_eq!(code, exit::OK, "{error}");
    let second = summary(&results);
    assert_eq!(second["steps"].as_array().unwrap().len(), finished, "the same steps, no more");
    assert_eq!(second["recommendation"]["instance_type"], first["recommendation"]["instance_type"]);
    for figure in ["endpoint_hours", "wall_seconds"] {
        let (before, after) = (first["run_cost"][figure].as_f64().unwrap(), second["run_cost"][figure].as_f64().unwrap());
        assert!(after > before, "run_cost.{figure} counts every session: {before} then {after}");
    }
    let after: Vec<String> = steps[..steps.len() - 1].iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
    assert_eq!(kept.len(), after.len());
    for (before, now) in kept.iter().zip(&after) {
        let (b, n): (serde_json::Value, serde_json::Value) =
            (serde_json::from_str(before).unwrap(), serde_json::from_str(now).unwrap());
        assert_eq!(b["started_at"], n["started_at"], "finished steps are reused, not run again");
    }
    assert!(steps.last().unwrap().exists(), "the missing step was run again");
}

#[tokio::test]
async fn a_run_stops_cleanly_before_exceeding_its_budget() {
    let _turn = traffic_turn().await;
    let (dir, payload, profile) = fixture("sizing-budget");
    let results = dir.join("results");
    let sizing = sixty_tps("ml.m5.large,ml.c5.large");
    let mut args = quick_run(&profile, &payload, &results, &sizing);
    // Deploying and measuring the first candidate costs about $0.0002: too much.
    args.extend(["--max-test-cost", "0.00001"]);
    let (code, error) = perfsize(&args).await;
    assert_eq!(code, exit::NOT_MET, "{error}");
    let s = summary(&results);
    assert_eq!(s["status"], "budget_reached");
    assert!(s["note"].as_str().unwrap().contains("--max-test-cost"), "{}", s["note"]);
    assert_eq!(s["steps"].as_array().unwrap().len(), 0, "nothing was deployed or measured");
    assert!(s["run_cost"]["dollars"].as_f64().unwrap() <= 0.00001);
    let run = std::fs::read_dir(&results).unwrap().next().unwrap().unwrap().path();
    assert!(run.join("report.html").exists(), "the report is written all the same");
}

/// The sizing run of issue 10: one ml.c5.large holds about 126 requests a
/// second (see `KNOWN_CAPACITY_PROFILE`), the peak is 250 and the latency
/// limit a generous second. Two instances would run at 99 % — a queue that
/// grows without bound — so the run must recommend three (or a configuration
/// no dearer), with steps long enough to see a queue build.
#[tokio::test]
async fn a_peak_two_instances_could_only_hold_at_saturation_gets_three() {
    let _turn = traffic_turn().await;
    let (dir, payload, _) = fixture("sizing-sustainable");
    let profile = dir.join("capacity.toml");
    std::fs::write(&profile, crate::cli::KNOWN_CAPACITY_PROFILE).unwrap();
    let results = dir.join("results");
    let (code, error) = perfsize(&[
        "--simulate",
        "--sim-profile",
        profile.to_str().unwrap(),
        "--payload",
        &payload,
        "--peak-tps",
        "250",
        "--latency-p99-ms",
        "1000",
        "--type-walk",
        "ml.c5.large",
        "--duration",
        "10s",
        "--warmup",
        "1s",
        "--endurance-duration",
        "15s",
        // Bracketing capacity to 10 % rather than 5 % is fewer ten-second steps;
        // what is asserted needs no finer figure.
        "--tps-resolution",
        "0.1",
        "--results-dir",
        results.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, exit::OK, "{error}");
    let s = summary(&results);
    let log = digest(&s);
    let recommended = &s["recommendation"];
    assert_eq!(recommended["instance_type"], "ml.c5.large", "{log}");
    assert!(recommended["instance_count"].as_u64().unwrap() >= 3, "{log}");
    let per_instance = recommended["max_tps_per_instance"].as_f64().unwrap();
    assert!(per_instance < crate::cli::KNOWN_CAPACITY * 1.03, "the capacity found is one an instance can hold: {log}");
    let steps = s["steps"].as_array().unwrap();
    assert!(
        steps.iter().any(|st| st["stationary"] == false && st["reasons"].to_string().contains("not sustainable")),
        "a rate above capacity was found unsustainable: {log}"
    );
}
