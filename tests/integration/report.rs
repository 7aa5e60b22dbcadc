//! Reports rebuilt from run directories, the JUnit file Jenkins reads, the
//! summary's JSON Schema, and `compare` as a regression gate.

use std::path::{Path, PathBuf};

use perfsize::cli::exit;

use crate::cli::{perfsize, quick_run, scratch};
use crate::support::traffic_turn;

/// A finished simulated sizing run: its run directory.
async fn sizing_run(dir: &Path) -> PathBuf {
    let payload = dir.join("req.json");
    std::fs::write(&payload, br#"{"x": 1}"#).unwrap();
    let profile = dir.join("profile.toml");
    std::fs::write(
        &profile,
        "deploy_seconds = 0.2\ndelete_seconds = 0.1\n[default]\nvcpus = 2\nworkers = 1\nservice_ms = { median = 10.0, p99 = 10.0 }\nqueue_limit = 20\n",
    )
    .unwrap();
    let results = dir.join("results");
    let _turn = traffic_turn().await;
    let (profile, payload) = (profile.display().to_string(), payload.display().to_string());
    let sizing = ["--peak-tps", "150", "--latency-p99-ms", "400", "--type-walk", "ml.m5.large", "--tps-resolution", "0.3"];
    let (code, error) = perfsize(&quick_run(&profile, &payload, &results, &sizing)).await;
    assert_eq!(code, exit::OK, "{error}");
    std::fs::read_dir(&results).unwrap().next().unwrap().unwrap().path()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn a_run_directory_yields_every_report_and_a_schema_valid_summary() {
    let dir = scratch("report-run");
    let run = sizing_run(&dir).await;

    // summary.json as written by a real run validates against the shipped schema.
    let summary: serde_json::Value = serde_json::from_str(&read(&run.join("summary.json"))).unwrap();
    let errors = crate::support::schema_errors(&summary);
    assert!(errors.is_empty(), "{errors:#?}");

    // The run wrote its reports; every step has a .hgrm beside it.
    for name in ["report.html", "junit.xml", "plan.json"] {
        assert!(run.join(name).exists(), "{name}");
    }
    let steps: Vec<PathBuf> = std::fs::read_dir(run.join("steps")).unwrap().map(|e| e.unwrap().path()).collect();
    let json = steps.iter().filter(|p| p.extension().is_some_and(|e| e == "json")).count();
    let hgrm = steps.iter().filter(|p| p.extension().is_some_and(|e| e == "hgrm")).count();
    assert!(json > 0 && json == hgrm, "{json} steps, {hgrm} .hgrm files");

    // junit.xml: one case per step plus the overall requirement, well formed.
    let junit = read(&run.join("junit.xml"));
    assert_eq!(junit.matches("<testcase ").count(), json + 1);
    assert!(junit.contains("recommendation: peak 150 TPS"), "{junit}");
    let overall = junit.split("<testcase ").last().unwrap();
    assert!(overall.contains("recommendation:") && !overall.contains("<failure"), "the overall requirement is met: {overall}");
    let parsed = std::process::Command::new("python3")
        .args(["-c", "import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])"])
        .arg(run.join("junit.xml"))
        .status()
        .unwrap();
    assert!(parsed.success(), "junit.xml parses as XML");
}

#[tokio::test]
async fn report_rebuilds_a_run_killed_before_its_summary() {
    let dir = scratch("report-partial");
    let run = sizing_run(&dir).await;
    for name in ["summary.json", "report.html", "junit.xml"] {
        std::fs::remove_file(run.join(name)).unwrap();
    }
    let (code, error) = perfsize(&["report", run.to_str().unwrap()]).await;
    assert_eq!(code, exit::OK, "{error}");
    let html = read(&run.join("report.html"));
    assert!(html.to_lowercase().contains("partial"), "the page says the run did not finish");
    assert!(html.contains("at least $"), "what the run spent before it stopped, from usage.json");
    let junit = read(&run.join("junit.xml"));
    assert!(junit.contains("no configuration met the requirements"), "an unfinished run recommends nothing");

    let (code, _) = perfsize(&["report", dir.join("nowhere").to_str().unwrap()]).await;
    assert_eq!(code, exit::USAGE);
}

/// A copy of run directory `run` at `to`.
fn copy_run(run: &Path, to: &Path) {
    for entry in walk(run) {
        let target = to.join(entry.strip_prefix(run).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &target).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).flat_map(|p| if p.is_dir() { walk(&p) } else { vec![p] }).collect()
}

#[tokio::test]
async fn compare_gates_one_run_directory_against_another() {
    let dir = scratch("compare-runs");
    let run = sizing_run(&dir).await;
    let (code, error) = perfsize(&["compare", run.to_str().unwrap(), run.to_str().unwrap()]).await;
    assert_eq!(code, exit::OK, "a run against itself regresses nothing: {error}");

    // The same run, had the model become half as fast per instance.
    let slower = dir.join("slower");
    copy_run(&run, &slower);
    let mut summary: serde_json::Value = serde_json::from_str(&read(&slower.join("summary.json"))).unwrap();
    let half = |v: &serde_json::Value| v.as_f64().map(|v| serde_json::json!(v / 2.0)).unwrap_or(serde_json::Value::Null);
    for t in summary["types"].as_array_mut().unwrap() {
        assert!(t["capacity"]["below"].is_number(), "one instance cannot hold 150 TPS: its capacity is bracketed: {t}");
        t["max_tps_per_instance"] = half(&t["max_tps_per_instance"]);
        t["capacity"]["at_least"] = half(&t["capacity"]["at_least"]);
        t["capacity"]["below"] = half(&t["capacity"]["below"]);
    }
    std::fs::write(slower.join("summary.json"), serde_json::to_vec(&summary).unwrap()).unwrap();
    let (code, _) = perfsize(&["compare", run.to_str().unwrap(), slower.to_str().unwrap(), "--max-regression", "10%"]).await;
    assert_eq!(code, exit::NOT_MET, "half the capacity per instance is a regression");
    let page = read(&slower.join("comparison.html"));
    assert!(page.contains("max TPS per instance, ml.m5.large"), "the page names the figure that regressed");
}

/// A real StepResult from `perfsize load --json`.
async fn load_result(dir: &Path) -> serde_json::Value {
    let _turn = traffic_turn().await;
    let (code, error, step) = crate::cli::simulated_load(dir, &["--tps", "20", "--duration", "1s", "--warmup", "0.3s"]).await;
    assert_eq!(code, exit::OK, "{error}");
    step
}

/// `step` with its latency percentiles scaled by `factor`.
fn slower(step: &serde_json::Value, factor: f64) -> serde_json::Value {
    let mut step = step.clone();
    for key in ["p50", "p90", "p95", "p99", "p99_9", "max", "mean"] {
        let v = step["latency_ms"][key].as_f64().unwrap();
        step["latency_ms"][key] = serde_json::json!(v * factor);
    }
    step
}

#[tokio::test]
async fn compare_catches_a_regression_and_lets_noise_pass() {
    let dir = scratch("compare");
    let baseline = load_result(&dir).await;
    let write = |name: &str, value: &serde_json::Value| {
        let path = dir.join(name);
        std::fs::write(&path, serde_json::to_vec(value).unwrap()).unwrap();
        path
    };
    let base = write("baseline.json", &baseline);
    let noisy = write("noisy.json", &slower(&baseline, 1.05));
    let regressed = write("regressed.json", &slower(&baseline, 1.5));

    let (code, error) = perfsize(&["compare", base.to_str().unwrap(), noisy.to_str().unwrap(), "--max-regression", "10%"]).await;
    assert_eq!(code, exit::OK, "5% slower is within a 10% bound: {error}");
    let (code, _) = perfsize(&["compare", base.to_str().unwrap(), regressed.to_str().unwrap(), "--max-regression", "10%"]).await;
    assert_eq!(code, exit::NOT_MET, "50% slower is a regression");
    let page = read(&dir.join("regressed.comparison.html"));
    assert!(page.contains("regress") || page.contains("REGRESS"), "the comparison page shows the regression");

    let mut failing = baseline.clone();
    failing["passed"] = serde_json::json!(false);
    failing["reasons"] = serde_json::json!(["p99 latency 900 ms is above the 500 ms limit"]);
    let failing = write("failing.json", &failing);
    let (code, _) = perfsize(&["compare", base.to_str().unwrap(), failing.to_str().unwrap()]).await;
    assert_eq!(code, exit::NOT_MET, "a step that passed and now fails is a regression");
}
