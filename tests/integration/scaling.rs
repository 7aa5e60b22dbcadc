//! The auto-scaling test end to end: perfsize as a process against a
//! standalone simulator whose scaling clock runs 60× faster than AWS's (an
//! alarm period is a second) and whose instances take 8 s to come into
//! service, so that the right minimum follows from the ramp: one ml.c5.large
//! serves 100 TPS; a policy targets half of what one instance sustains, so a
//! minimum of m asks for help at 50·m TPS and has until 100·m TPS to get it.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use perfsize::cli::exit;

use crate::cli::scratch;
use crate::support::*;

const PROFILE: &str = r#"
deploy_seconds = 8.0
delete_seconds = 0.1
scaling_time_scale = 60
[default]
vcpus = 2
workers = 1
service_ms = { median = 10.0, p99 = 10.0 }
queue_limit = 64
max_instances = 20
"#;

/// A sizing run of `peak` TPS on ml.c5.large with the auto-scaling test over
/// `ramp`. No utilisation margin: the fixed-scale count is the fewest
/// instances whose measured capacity holds the peak, so one fewer cannot
/// hold it without scaling — however busy the machine makes the measurement.
fn scaling_run(sim: &SimulatorProcess, dir: &Path, peak: &str, ramp: &str) -> Child {
    let payload = dir.join("req.json");
    std::fs::write(&payload, br#"{"x":1}"#).unwrap();
    let results = dir.join("results");
    sim.perfsize(&[
        "--peak-tps",
        peak,
        "--max-utilization",
        "1",
        "--latency-p99-ms",
        "200",
        "--type-walk",
        "ml.c5.large",
        "--start-tps",
        "100",
        "--tps-resolution",
        "0.25",
        "--duration",
        "3s",
        "--warmup",
        "1s",
        "--endurance-duration",
        "5s",
        "--scaling-ramp",
        ramp,
        "--ramp-hold",
        "3s",
        "--payload",
        payload.to_str().unwrap(),
        "--image",
        "123456789012.dkr.ecr.us-west-2.amazonaws.com/model:1",
        "--execution-role-arn",
        "arn:aws:iam::123456789012:role/test",
        "--poll-interval",
        "100ms",
        "--results-dir",
        results.to_str().unwrap(),
    ])
    .spawn()
    .expect("perfsize starts")
}

fn summary(dir: &Path) -> serde_json::Value {
    let run = std::fs::read_dir(dir.join("results")).unwrap().next().unwrap().unwrap().path();
    serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap()
}

async fn finish(child: Child) -> Option<i32> {
    let mut child = child;
    tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(300))).await.unwrap()
}

#[tokio::test]
async fn the_scaling_test_keeps_the_lowest_minimum_that_holds_the_ramp() {
    let _turn = traffic_turn().await;
    let dir = scratch("scaling-ramp");
    let profile = dir.join("profile.toml");
    std::fs::write(&profile, PROFILE).unwrap();
    let sim = SimulatorProcess::start(profile.to_str().unwrap());
    // 250 TPS over 40 s climbs 6.25 TPS/s. From one instance, help is asked
    // for at 50 TPS (8 s) and serves about 12 s later, after one instance
    // saturated at 100 TPS (16 s); from two, it is asked for at 16 s and
    // serves well before two saturate (32 s).
    let code = finish(scaling_run(&sim, &dir, "250", "40s")).await;
    assert_eq!(code, Some(exit::OK as i32));
    let s = summary(&dir);
    let metric = &s["scaling"]["metrics"][0];
    assert_eq!(metric["scales"], true, "{metric:#}");
    assert_eq!(metric["policy"]["min"], 2, "{metric:#}");
    let tried: Vec<(u64, bool)> =
        metric["trials"].as_array().unwrap().iter().map(|t| (t["min"].as_u64().unwrap(), t["passed"] == true)).collect();
    assert!(tried.contains(&(1, false)) && tried.contains(&(2, true)), "{tried:?}");
    assert!(metric["trials"].as_array().unwrap().iter().any(|t| t["first_scale_out_after_breach"].is_number()));
    assert_eq!(s["recommendation"]["autoscaling"]["min_instances"], 2);
    assert_eq!(everything(&sim.client()).await, Vec::<String>::new(), "nothing left behind");
    assert_eq!(sim.scalable_targets().await, 0, "no scalable target left behind");
}

#[tokio::test]
async fn a_ramp_too_steep_for_any_minimum_recommends_fixed_scale_and_exits_0() {
    let _turn = traffic_turn().await;
    let dir = scratch("scaling-steep");
    let profile = dir.join("profile.toml");
    std::fs::write(&profile, PROFILE).unwrap();
    let sim = SimulatorProcess::start(profile.to_str().unwrap());
    // 160 TPS in 4 s: two instances hold it at fixed scale (one serves at
    // most 100), and one cannot get help in time: nothing below two scales.
    let code = finish(scaling_run(&sim, &dir, "160", "4s")).await;
    assert_eq!(code, Some(exit::OK as i32), "the fixed-scale answer stands");
    let s = summary(&dir);
    let fixed = s["scaling"]["fixed_count"].as_u64().unwrap();
    let metric = &s["scaling"]["metrics"][0];
    assert_eq!(metric["scales"], false, "{metric:#}");
    assert!(metric["suggestion"].as_str().unwrap().contains(&format!("fixed scale at {fixed}")), "{metric:#}");
    assert!(metric["trials"].as_array().unwrap().iter().all(|t| t["passed"] == false));
    let report = std::fs::read_to_string(
        std::fs::read_dir(dir.join("results")).unwrap().next().unwrap().unwrap().path().join("report.html"),
    )
    .unwrap();
    assert!(report.contains(&format!("auto-scaling cannot meet this ramp; use fixed scale at {fixed}")));
    assert_eq!(everything(&sim.client()).await, Vec::<String>::new());
    assert_eq!(sim.scalable_targets().await, 0);
}

#[tokio::test]
async fn ctrl_c_during_a_ramp_leaves_no_endpoint_and_no_scaling() {
    let _turn = traffic_turn().await;
    let dir = scratch("scaling-sigint");
    let profile = dir.join("profile.toml");
    // What is tested is the interruption, not when instances serve: quick deployments.
    std::fs::write(&profile, PROFILE.replace("deploy_seconds = 8.0", "deploy_seconds = 1.0")).unwrap();
    let sim = SimulatorProcess::start(profile.to_str().unwrap());
    let child = scaling_run(&sim, &dir, "250", "120s");
    let deadline = Instant::now() + Duration::from_secs(240);
    while sim.scalable_targets().await == 0 {
        assert!(Instant::now() < deadline, "the run never reached its auto-scaling test");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the ramp start.
    tokio::time::sleep(Duration::from_secs(2)).await;
    signal(&child, "INT");
    assert_eq!(finish(child).await, Some(exit::INTERRUPTED as i32));
    assert_eq!(everything(&sim.client()).await, Vec::<String>::new(), "nothing left behind");
    assert_eq!(sim.scalable_targets().await, 0, "no scalable target or policy left behind");
    assert_eq!(summary(&dir)["status"], "interrupted");
}
