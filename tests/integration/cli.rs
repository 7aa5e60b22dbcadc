//! The command line, run in-process: exit codes, checked inputs, outputs.

use std::path::{Path, PathBuf};

use perfsize::cli::config::parse_with_config;
use perfsize::cli::{exit, run};

/// Runs a perfsize command line in this process; returns the exit code and
/// the error text, if any.
pub async fn perfsize(args: &[&str]) -> (u8, String) {
    let mut argv = vec!["perfsize"];
    argv.extend_from_slice(args);
    let cli = match parse_with_config(argv) {
        Ok(cli) => cli,
        Err(e) => return (e.exit_code(), e.to_string()),
    };
    match run(cli).await {
        Ok(code) => (code, String::new()),
        Err(failure) => (exit::code(failure.kind), perfsize::error_chain(failure.error.as_ref())),
    }
}

/// A simulated sizing run with one-second steps, sized by `sizing`.
pub fn quick_run<'a>(profile: &'a str, payload: &'a str, results: &'a Path, sizing: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--simulate",
        "--sim-profile",
        profile,
        "--payload",
        payload,
        "--duration",
        "1s",
        "--warmup",
        "0.3s",
        "--endurance-duration",
        "2s",
        "--results-dir",
        results.to_str().expect("test paths are UTF-8"),
    ];
    args.extend_from_slice(sizing);
    args
}

/// A directory of one test's own, removed when the test ends, passed or failed.
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("perfsize-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

#[tokio::test]
async fn load_simulate_writes_the_step_result_and_hgrm() {
    let _turn = crate::support::traffic_turn().await;
    let dir = scratch("load-ok");
    let payload = dir.join("req.json");
    std::fs::write(&payload, br#"{"x": 1}"#).unwrap();
    let json = dir.join("out/step.json");
    let hgrm = dir.join("out/step.hgrm");
    let (code, error) = perfsize(&[
        "load",
        "--simulate",
        "--tps",
        "20",
        "--duration",
        "2s",
        "--warmup",
        "0.5s",
        "--payload",
        payload.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--hgrm",
        hgrm.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, exit::OK, "{error}");
    let step: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for key in ["p50", "p90", "p95", "p99", "p99_9", "max"] {
        assert!(step["latency_ms"][key].is_number(), "latency_ms.{key}");
        assert!(step["success_latency_ms"][key].is_number(), "success_latency_ms.{key}");
    }
    assert_eq!(step["target_tps"], 20.0);
    assert!(step["achieved_tps"].as_f64().unwrap() > 15.0);
    assert_eq!(step["cloudwatch"]["available"], true, "{}", step["cloudwatch"]);
    assert!(step["cloudwatch"]["model_latency_ms"]["avg"].is_number());
    assert!(std::fs::read_to_string(&hgrm).unwrap().contains("1/(1-Percentile)"));
}

#[tokio::test]
async fn bad_payloads_are_usage_errors_before_any_traffic() {
    let dir = scratch("load-bad");
    let payload = dir.join("req.json");
    std::fs::write(&payload, b"{}").unwrap();
    let missing = dir.join("missing.json");
    let (code, error) = perfsize(&["load", "--simulate", "--tps", "5", "--payload", missing.to_str().unwrap()]).await;
    assert_eq!(code, exit::USAGE);
    assert!(error.contains("missing.json"), "{error}");

    let weighted = format!("{}:heavy", payload.display());
    let (code, error) = perfsize(&["load", "--simulate", "--tps", "5", "--payload", &weighted]).await;
    assert_eq!(code, exit::USAGE);
    assert!(error.contains("bad weight `heavy`"), "{error}");

    let (code, _) = perfsize(&["load", "--simulate", "--tps", "0", "--payload", payload.to_str().unwrap()]).await;
    assert_eq!(code, exit::USAGE, "a zero rate is refused by the parser");
    let (code, error) = perfsize(&["load", "--tps", "5", "--payload", payload.to_str().unwrap()]).await;
    assert_eq!(code, exit::USAGE, "no endpoint and no --simulate: {error}");
}

#[tokio::test]
async fn a_payload_the_model_rejects_is_one_clear_error() {
    let dir = scratch("load-rejected");
    let payload = dir.join("bad-input.json");
    std::fs::write(&payload, b"{}").unwrap();
    let profile = dir.join("profile.toml");
    std::fs::write(
        &profile,
        "deploy_seconds = 0.2\ndelete_seconds = 0.1\n[default]\nvcpus = 2\nworkers = 2\nservice_ms = { median = 1.0, p99 = 2.0 }\nerror_rate = 1.0\nerror_status = 400\n",
    )
    .unwrap();
    let (code, error) = perfsize(&[
        "load",
        "--simulate",
        "--sim-profile",
        profile.to_str().unwrap(),
        "--tps",
        "5",
        "--payload",
        payload.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, exit::USAGE, "{error}");
    assert!(error.contains("bad-input.json") && error.contains("ModelError"), "{error}");
}

/// The `perfsize` binary run in `dir` with no AWS configuration at all, as
/// on a newcomer's machine; returns the exit code, stdout and stderr.
fn perfsize_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_perfsize"));
    command.args(args).current_dir(dir).env("HOME", dir).env("NO_COLOR", "1");
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("AWS_")) {
        command.env_remove(name);
    }
    let out = command.output().expect("the perfsize binary runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn the_mission_command_without_aws_names_every_missing_input_in_one_line() {
    let dir = scratch("missing-inputs");
    let (code, stdout, stderr) = perfsize_in(&dir, &["--peak-tps", "100", "--type-walk", "ml.m5.large,ml.m5.xlarge"]);
    assert_eq!(code, exit::USAGE as i32, "{stdout}{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line, no SDK warnings: {stderr}");
    for input in ["a region", "a model (--model-name", "--image", "a payload (--payload"] {
        assert!(stderr.contains(input), "{input} is named: {stderr}");
    }
    assert!(std::fs::read_dir(&*dir).unwrap().all(|e| e.unwrap().file_name() != "perfsize-results"), "nothing was created");
}

#[test]
fn a_run_reads_its_settings_from_perfsize_toml_and_flags_override_them() {
    let dir = scratch("config-file");
    std::fs::write(
        dir.join("perfsize.toml"),
        "simulate = true\npeak-tps = 40\ntype-walk = [\"ml.m5.large\", \"ml.c5.large\"]\nlatency-p99-ms = 300\nduration = \"2s\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = perfsize_in(&dir, &["plan"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("peak 40 TPS, p99 ≤ 300 ms"), "{stdout}");
    assert!(stdout.contains("ml.m5.large") && stdout.contains("ml.c5.large"), "{stdout}");
    assert!(stderr.contains("sample payload"), "--simulate without a payload says what it sends: {stderr}");

    let (code, stdout, stderr) = perfsize_in(&dir, &["plan", "--peak-tps", "25", "--type-walk", "ml.c5.xlarge"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("peak 25 TPS") && stdout.contains("ml.c5.xlarge") && !stdout.contains("ml.m5.large"), "{stdout}");

    // An explicit --config wins over the working directory's file; its keys are checked like flags.
    std::fs::write(dir.join("bad.toml"), "peak-tps = 40\npeek-tps = 50\n").unwrap();
    let (code, _, stderr) = perfsize_in(&dir, &["plan", "--config", "bad.toml"]);
    assert_eq!(code, exit::USAGE as i32, "{stderr}");
    assert!(stderr.contains("unknown key `peek-tps`"), "{stderr}");
    std::fs::write(dir.join("bad.toml"), "simulate = true\npeak-tps = \"lots\"\ntype-walk = [\"ml.m5.large\"]\n").unwrap();
    let (code, _, stderr) = perfsize_in(&dir, &["plan", "--config", "bad.toml"]);
    assert_eq!(code, exit::USAGE as i32, "{stderr}");
    assert!(stderr.contains("--peak-tps") && stderr.contains("lots"), "a bad value reads as a bad flag: {stderr}");
}

/// One ml.c5.large serves 12 requests at once in about 95.5 ms each (median
/// 95 ms, p99 120 ms): its capacity is 12 / 0.0955 s ≈ 126 requests a second.
/// Its queue is deep enough that an overload queues rather than sheds.
pub const KNOWN_CAPACITY: f64 = 125.7;
pub const KNOWN_CAPACITY_PROFILE: &str = r#"
deploy_seconds = 0.2
delete_seconds = 0.1
[instance_types."ml.c5.large"]
workers = 12
service_ms = { median = 95.0, p99 = 120.0 }
queue_limit = 100000
"#;

/// `perfsize load --simulate` with `args`, a one-line payload and no
/// CloudWatch wait, in `dir`: its exit code, error text and StepResult.
pub async fn simulated_load(dir: &Path, args: &[&str]) -> (u8, String, serde_json::Value) {
    let payload = dir.join("req.json");
    std::fs::write(&payload, br#"{"x": 1}"#).unwrap();
    let json = dir.join("step.json");
    let mut argv = vec!["load", "--simulate", "--cloudwatch-wait", "0s"];
    argv.extend_from_slice(args);
    argv.extend(["--payload", payload.to_str().unwrap(), "--json", json.to_str().unwrap()]);
    let (code, error) = perfsize(&argv).await;
    let step = std::fs::read_to_string(&json).map_or(serde_json::Value::Null, |text| serde_json::from_str(&text).unwrap());
    (code, error, step)
}

/// A ten-second `perfsize load` at `share` of the known capacity, judged
/// against a latency limit so generous that only sustainability can fail it.
/// A step this machine's generator could not drive (a busy machine) says
/// nothing of the endpoint: it is measured again, as a sizing run would.
async fn step_at_share_of_capacity(dir: &Path, share: f64) -> serde_json::Value {
    let mut step = serde_json::Value::Null;
    for _ in 0..3 {
        step = one_step_at_share_of_capacity(dir, share).await;
        let reasons = step["reasons"].to_string();
        if !(reasons.contains("load generator could not keep up") || reasons.contains("generator-limited")) {
            break;
        }
    }
    step
}

async fn one_step_at_share_of_capacity(dir: &Path, share: f64) -> serde_json::Value {
    let profile = dir.join("profile.toml");
    std::fs::write(&profile, KNOWN_CAPACITY_PROFILE).unwrap();
    let tps = format!("{:.1}", KNOWN_CAPACITY * share);
    let (code, error, step) = simulated_load(
        dir,
        &[
            "--sim-profile",
            profile.to_str().unwrap(),
            "--instance-type",
            "ml.c5.large",
            "--tps",
            &tps,
            "--duration",
            "10s",
            "--warmup",
            "2s",
            "--latency-p99-ms",
            "60000",
        ],
    )
    .await;
    assert!(code == exit::OK || code == exit::NOT_MET, "{error}");
    step
}

#[tokio::test]
async fn a_rate_above_capacity_is_unsustainable_whatever_the_latency_limit() {
    let _turn = crate::support::traffic_turn().await;
    let dir = scratch("unsustainable");
    let step = step_at_share_of_capacity(&dir, 1.05).await;
    assert_eq!(step["passed"], false, "{}", step["reasons"]);
    assert_eq!(step["stationarity"]["stationary"], false, "{}", step["stationarity"]);
    let reasons = step["reasons"].to_string();
    assert!(reasons.contains("not sustainable: in-flight grew from"), "{reasons}");
    assert!(reasons.contains("projected"), "{reasons}");
}

#[tokio::test]
async fn a_rate_well_below_capacity_is_sustainable() {
    let _turn = crate::support::traffic_turn().await;
    let dir = scratch("sustainable");
    let step = step_at_share_of_capacity(&dir, 0.85).await;
    assert_eq!(step["stationarity"]["stationary"], true, "{}", step["stationarity"]);
    assert_eq!(step["passed"], true, "{}", step["reasons"]);
}
