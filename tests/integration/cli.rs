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
