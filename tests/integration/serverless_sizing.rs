//! Serverless candidates in the sizing walk, end to end on the simulator:
//! a low-traffic model gets a serverless recommendation and a high-traffic
//! one an instance configuration, each with the break-even volume; a memory
//! size too small for the model is rejected with its reason kept; Ctrl-C and
//! failed deployments leave no serverless endpoint or config; bad serverless
//! inputs exit 2 before anything is deployed.

use std::path::Path;
use std::time::Duration;

use perfsize::cli::exit;

use crate::cli::perfsize;
use crate::support::*;

/// The sizing tests' profile (ml.c5.large serves 100/s, $0.102/h), and a
/// serverless model that needs 2 GB, serves in 100 ms at 1 GB (50 ms at
/// 2 GB), sets up in 300 ms and goes cold after 2 s idle.
fn profile() -> String {
    format!(
        "{}{}",
        crate::sizing::PROFILE,
        r#"
[serverless]
service_ms = { median = 100.0, p99 = 100.0 }
setup_ms = { median = 300.0, p99 = 300.0 }
model_memory_mb = 2048
idle_seconds = 2.0
"#
    )
}

const IMAGE: &str = "123456789012.dkr.ecr.us-west-2.amazonaws.com/model:1";
const ROLE: &str = "arn:aws:iam::123456789012:role/test";

fn fixture(name: &str) -> (crate::cli::Scratch, String, String) {
    crate::sizing::fixture_with(name, &profile())
}

/// A short sizing run of c5.large, 1 GB and 2 GB serverless at `peak` TPS
/// against `sim`, the way a user would point perfsize at AWS.
fn sizing_args<'a>(peak: &'a str, payload: &'a str, results: &'a str) -> Vec<&'a str> {
    vec![
        "--peak-tps",
        peak,
        "--latency-p99-ms",
        "1000",
        "--max-error-percent",
        "1",
        "--type-walk",
        "ml.c5.large,serverless:1024,serverless:2048",
        "--serverless-max-concurrency",
        "2,5,10",
        "--serverless-idle",
        "3s",
        "--start-tps",
        peak,
        "--tps-resolution",
        "0.5",
        "--payload",
        payload,
        "--image",
        IMAGE,
        "--execution-role-arn",
        ROLE,
        "--duration",
        "1s",
        "--warmup",
        "0.5s",
        "--endurance-duration",
        "2s",
        "--poll-interval",
        "100ms",
        "--results-dir",
        results,
    ]
}

fn run_dir(results: &Path) -> std::path::PathBuf {
    std::fs::read_dir(results).unwrap().next().expect("one run directory").unwrap().path()
}

fn summary(results: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run_dir(results).join("summary.json")).unwrap()).unwrap()
}

fn assert_valid(summary: &serde_json::Value) {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/resources/summary.schema.json"))).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(summary).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// Runs a sizing run to its end against a simulator of its own; returns the
/// exit code, the summary, and what the simulator still holds.
async fn size(dir: &Path, payload: &str, profile: &str, peak: &str) -> (i32, serde_json::Value, Vec<String>) {
    let sim = SimulatorProcess::start(profile);
    let results = dir.join("results");
    let args = sizing_args(peak, payload, results.to_str().unwrap());
    let status = sim.perfsize(&args).status().unwrap();
    let left = everything(&sim.client()).await;
    (status.code().unwrap_or(-1), summary(&results), left)
}

fn memory_verdict(summary: &serde_json::Value, mb: u64) -> &serde_json::Value {
    let memory = summary["serverless"]["memory"].as_array().expect("serverless verdicts");
    memory.iter().find(|m| m["memory_size_mb"] == mb).unwrap_or_else(|| panic!("no verdict for {mb} MB: {summary:#}"))
}

#[tokio::test]
async fn a_low_traffic_model_is_recommended_serverless_with_the_break_even_and_its_cold_start() {
    let _turn = traffic_turn().await;
    let (dir, payload, profile) = fixture("serverless-low");
    let results = dir.join("results");
    let (code, s, left) = size(&dir, &payload, &profile, "4").await;
    assert_eq!(code, exit::OK as i32, "{s:#}");
    assert_eq!(left, Vec::<String>::new(), "nothing left behind, the rejected 1 GB endpoint included");
    assert_valid(&s);
    // A gigabyte is too small for the model: rejected, the endpoint's reason kept.
    let small = memory_verdict(&s, 1024);
    assert_eq!(small["rejected"], true, "{small}");
    assert!(small["verdict"].as_str().unwrap().contains("Out of memory"), "{small}");
    let rec = &s["serverless"]["recommended"];
    assert_eq!(rec["configuration"]["memory_size_mb"], 2048, "{s:#}");
    assert!(rec["configuration"]["max_concurrency"].as_u64().is_some());
    // CloudWatch's ModelLatency at 2 GB is the profile's 50 ms.
    let seconds = rec["seconds_per_request"].as_f64().unwrap();
    assert!((0.04..0.2).contains(&seconds), "{rec}");
    // 4 TPS all day: 10.5 M requests × 50 ms × 2 GB ≈ $21 against $74 for one c5.large.
    let c = &s["comparison"];
    assert_eq!(c["cheaper"], "serverless", "{c}");
    assert_eq!(s["recommended_kind"], "serverless");
    let (requests, even) = (c["requests_per_month"].as_f64().unwrap(), c["break_even_requests_per_month"].as_f64().unwrap());
    assert!(even > requests, "the answer flips above this traffic: {c}");
    assert!(c["instances_per_month"].as_f64().unwrap() > c["serverless_per_month"].as_f64().unwrap());
    assert!(c["curve"].as_array().unwrap().len() > 10);
    // The cold-start burst met cold workers, seen by CloudWatch and the client.
    let cold = &s["serverless"]["cold_start"];
    assert!(cold["cold_share_cloudwatch"].as_f64().unwrap() > 0.0, "{cold}");
    assert!(cold["p99_ms"].as_f64().unwrap() >= 300.0, "the set-up time shows at the tail: {cold}");
    assert!(cold["model_setup_time_ms"]["avg"].as_f64().unwrap() >= 250.0, "{cold}");
    let steps = s["steps"].as_array().unwrap();
    assert!(steps.iter().any(|st| st["phase"] == "cold-start" && st["instance_type"] == "serverless"));
    let report = std::fs::read_to_string(run_dir(&results).join("report.html")).unwrap();
    for part in ["Serverless recommendation", "Monthly cost against monthly volume", "break-even", "Out of memory", "cold start"]
    {
        assert!(report.contains(part), "report.html shows {part}");
    }
}

#[tokio::test]
async fn a_high_traffic_model_is_recommended_instances_with_the_break_even() {
    let _turn = traffic_turn().await;
    let (dir, payload, profile) = fixture("serverless-high");
    let (code, s, left) = size(&dir, &payload, &profile, "40").await;
    assert_eq!(code, exit::OK as i32, "{s:#}");
    assert_eq!(left, Vec::<String>::new());
    assert_valid(&s);
    assert_eq!(s["recommendation"]["instance_type"], "ml.c5.large", "{s:#}");
    // 40 TPS all day on 2 GB serverless: ≈ $210 a month against $74.
    let c = &s["comparison"];
    assert_eq!(c["cheaper"], "instances", "{c}");
    assert_eq!(s["recommended_kind"], "instances");
    let even = c["break_even_requests_per_month"].as_f64().unwrap();
    assert!(even < c["requests_per_month"].as_f64().unwrap(), "serverless was cheaper below: {c}");
}

#[tokio::test]
async fn ctrl_c_mid_step_leaves_no_serverless_endpoint_or_config() {
    let _turn = traffic_turn().await;
    let (dir, payload, profile) = fixture("serverless-sigint");
    let sim = SimulatorProcess::start(&profile);
    let walk = ["--peak-tps", "4", "--type-walk", "serverless:2048", "--serverless-max-concurrency", "10"];
    let mut child = crate::sizing::start_long_run_of(&sim, &dir, &payload, &walk).await;
    let alive = everything(&sim.client()).await;
    assert!(alive.iter().any(|r| r.starts_with("config perfsize-") && r.contains("serverless-2048mb-c10")), "{alive:?}");
    signal(&child, "INT");
    let code = tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(60))).await.unwrap();
    assert_eq!(code, Some(exit::INTERRUPTED as i32));
    assert_eq!(everything(&sim.client()).await, Vec::<String>::new(), "nothing left behind");
    assert_eq!(summary(&dir.join("results"))["status"], "interrupted");
}

#[tokio::test]
async fn bad_serverless_inputs_exit_2_before_anything_is_deployed() {
    let (dir, payload, _) = fixture("serverless-bad");
    let big = dir.join("big.json");
    std::fs::write(&big, vec![b' '; 5 * 1024 * 1024]).unwrap();
    let big = big.display().to_string();
    let results = dir.join("results");
    let r = results.to_str().unwrap();
    let base = |walk: &'static str, payload: &str| -> Vec<String> {
        ["--simulate", "--peak-tps", "5", "--type-walk", walk, "--payload", payload, "--results-dir", r]
            .map(String::from)
            .to_vec()
    };
    let with = |mut args: Vec<String>, more: &[&str]| {
        args.extend(more.iter().map(|s| s.to_string()));
        args
    };
    for (args, expect) in [
        (base("serverless:1500", &payload), "1024, 2048, 3072, 4096, 5120 or 6144"),
        (base("ml.m5.large,serverless", &payload), "needs a memory size"),
        (with(base("serverless:2048", &payload), &["--serverless-max-concurrency", "0"]), "from 1 to 200"),
        (
            with(
                base("serverless:2048", &payload),
                &["--serverless-max-concurrency", "2,5", "--serverless-provisioned-concurrency", "3"],
            ),
            "provisioned concurrency must be between 1 and the max concurrency (2)",
        ),
        (base("serverless:2048", &big), "at most 4 MB"),
        (base("ml.g4dn.xlarge,serverless:2048", &payload), "no GPU"),
        (with(base("serverless:2048", &payload), &["--region", "eu-west-1"]), "no serverless prices"),
        (with(base("serverless:2048", &payload), &["--traffic-profile", "peak-hours=30,off-peak-tps=1"]), "--traffic-profile"),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, error) = perfsize(&args).await;
        assert_eq!(code, exit::USAGE, "{args:?}: {error}");
        // One line says what was wrong (clap adds its --help hint below it).
        assert!(error.lines().next().unwrap().contains(expect), "{args:?}: {error}");
    }
    assert!(!results.exists() || std::fs::read_dir(&results).unwrap().next().is_none(), "no run directory for refused inputs");
}

#[tokio::test]
async fn perfsize_load_labels_an_existing_serverless_endpoint_by_its_configuration() {
    use aws_sdk_sagemaker::types::{ContainerDefinition, ProductionVariant, ProductionVariantServerlessConfig};
    let _turn = traffic_turn().await;
    let (dir, payload, profile) = fixture("serverless-load");
    let sim = SimulatorProcess::start(&profile);
    let sm = sim.client();
    let container = ContainerDefinition::builder().image(IMAGE).build();
    sm.create_model().model_name("sls").execution_role_arn(ROLE).primary_container(container).send().await.unwrap();
    let config = ProductionVariantServerlessConfig::builder().memory_size_in_mb(3072).max_concurrency(4).build();
    let variant = ProductionVariant::builder().variant_name("AllTraffic").model_name("sls").serverless_config(config).build();
    sm.create_endpoint_config().endpoint_config_name("sls").production_variants(variant).send().await.unwrap();
    sm.create_endpoint().endpoint_name("sls").endpoint_config_name("sls").send().await.unwrap();
    assert_eq!(wait_while(&sm, "sls", "Creating").await, "InService");
    let json = dir.join("step.json");
    let args =
        ["load", "--endpoint-name", "sls", "--tps", "2", "--duration", "1s", "--warmup", "0.5s", "--cloudwatch-wait", "0s"];
    let mut command = sim.perfsize(&[&args[..], &["--payload", &payload, "--json", json.to_str().unwrap()]].concat());
    let out = command.stderr(std::process::Stdio::piped()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let step: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(step["instance_type"], "serverless");
    assert_eq!(step["serverless"], serde_json::json!({"memory_size_mb": 3072, "max_concurrency": 4}));
}

/// A short serverless-only run against `sim` with `--prices live`; `pricing_url`
/// points the Price List API elsewhere. Returns the summary's prices.
async fn live_priced_run(name: &str, pricing_url: Option<&str>) -> (i32, String, String) {
    let (dir, payload, profile) = fixture(name);
    let sim = SimulatorProcess::start(&profile);
    let results = dir.join("results");
    let mut args = sizing_args("4", &payload, results.to_str().unwrap());
    let walk = args.iter().position(|a| *a == "--type-walk").unwrap() + 1;
    args[walk] = "serverless:2048";
    args.extend(["--serverless-max-concurrency", "10", "--prices", "live"]);
    let mut command = sim.perfsize(&args);
    if let Some(url) = pricing_url {
        command.env("AWS_ENDPOINT_URL_PRICING", url);
    }
    let out = command.stderr(std::process::Stdio::piped()).output().unwrap();
    let s = summary(&results);
    let prices = s["prices"].as_str().unwrap().to_string();
    (out.status.code().unwrap_or(-1), prices, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn live_prices_come_from_the_price_list_api_or_fall_back_to_the_shipped_ones() {
    let _turn = traffic_turn().await;
    let (code, prices, stderr) = live_priced_run("serverless-live", None).await;
    assert_eq!(code, exit::OK as i32, "{stderr}");
    assert!(prices.starts_with("AWS Price List API ("), "{prices}");
    assert!(prices.contains("as of 2026-11-29"), "the offer's publication date: {prices}");
    // Nothing listens there: the run goes on with the shipped prices, and says so.
    let (code, prices, stderr) = live_priced_run("serverless-live-down", Some("http://127.0.0.1:9")).await;
    assert_eq!(code, exit::OK as i32, "{stderr}");
    assert!(prices.starts_with("resources/cost/us-west-2.json (the Price List API could not be read"), "{prices}");
}

/// boto3's `pricing.get_products` against the simulator (tests/python/boto3_pricing.py).
#[tokio::test]
async fn boto3_reads_the_price_list_api() {
    let sim = simulator(perfsize::simulator::Profile::parse("", "empty").unwrap()).await;
    let _turn = traffic_turn().await;
    crate::simulator::run_python("boto3_pricing.py", &sim).await;
    sim.stop().await;
}
