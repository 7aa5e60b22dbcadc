//! The load generator on its own: a plain HTTP server as a target (`--url`),
//! the closed loop, a step asked for far more than the generator can send,
//! two shards merged, and the inputs refused before anything happens.
//! Behaviour is asserted, not tight timings.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use perfsize::cli::exit;
use perfsize::result::{Percentiles, StepResult, histogram};
use tokio_util::sync::CancellationToken;

use crate::cli::{perfsize, scratch};
use crate::support::*;

/// What the plain server saw.
#[derive(Default)]
struct Seen {
    requests: AtomicU64,
    unauthorized: AtomicU64,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

/// A model server of nothing but HTTP on 127.0.0.1:0: answers 200 to a POST
/// that carries the bearer token and the tenant header, 401 otherwise,
/// after 2 ms. Stops when the returned token is cancelled.
async fn plain_server() -> (String, Arc<Seen>, CancellationToken) {
    async fn infer(State(seen): State<Arc<Seen>>, headers: HeaderMap) -> StatusCode {
        seen.requests.fetch_add(1, Ordering::Relaxed);
        let now = seen.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        seen.most_in_flight.fetch_max(now, Ordering::AcqRel);
        tokio::time::sleep(Duration::from_millis(2)).await;
        seen.in_flight.fetch_sub(1, Ordering::AcqRel);
        let authorized = headers.get("authorization").is_some_and(|v| v == "Bearer tok")
            && headers.get("x-tenant").is_some_and(|v| v == "t1")
            && headers.get("x-amz-date").is_none();
        if authorized {
            StatusCode::OK
        } else {
            seen.unauthorized.fetch_add(1, Ordering::Relaxed);
            StatusCode::UNAUTHORIZED
        }
    }
    let seen = Arc::new(Seen::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v2/models/m/infer", listener.local_addr().unwrap());
    let app = Router::new().route("/v2/models/m/infer", post(infer)).with_state(Arc::clone(&seen));
    let stop = CancellationToken::new();
    let until = stop.clone();
    tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(until.cancelled_owned()).await });
    (url, seen, stop)
}

fn read_step(path: &Path) -> StepResult {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn write_payload(dir: &Path) -> String {
    let payload = dir.join("req.json");
    std::fs::write(&payload, br#"{"inputs": [1, 2, 3]}"#).unwrap();
    payload.display().to_string()
}

#[tokio::test]
async fn a_plain_http_server_is_driven_paced_recorded_judged_and_compared() {
    let _turn = traffic_turn().await;
    let dir = scratch("url");
    let payload = write_payload(&dir);
    let (url, seen, stop) = plain_server().await;
    let (json, hgrm) = (dir.join("url.json"), dir.join("url.hgrm"));
    let common = ["--url", &url, "--header", "X-Tenant: t1", "--bearer-token", "tok", "--payload", &payload];
    let mut args = vec!["load", "--tps", "40", "--duration", "2s", "--warmup", "0.5s"];
    args.extend(common);
    args.extend(["--json", json.to_str().unwrap(), "--hgrm", hgrm.to_str().unwrap()]);
    let (code, error) = perfsize(&args).await;
    assert_eq!(code, exit::OK, "{error}");
    let step = read_step(&json);
    assert_eq!(step.requests, 80, "40 TPS × 2 s measured");
    assert_eq!((step.failed, seen.unauthorized.load(Ordering::Relaxed)), (0, 0), "every request carried the headers, no SigV4");
    assert!(seen.requests.load(Ordering::Relaxed) > 100, "the preflight, the warm-up and the step");
    assert_eq!(step.endpoint_name, url);
    assert_eq!((step.instance_type.as_str(), step.instance_count), ("", 0), "perfsize deployed nothing here");
    assert!(step.latency_ms.unwrap().p50 >= 2.0);
    assert!(std::fs::read_to_string(&hgrm).unwrap().contains("Total count    =           80]"));
    let (code, error) = perfsize(&["compare", json.to_str().unwrap(), json.to_str().unwrap()]).await;
    assert_eq!(code, exit::OK, "a result compares with itself: {error}");

    // The same server closed-loop: never more than N at once, labelled as such.
    let closed = dir.join("closed.json");
    let mut args = vec!["load", "--concurrency", "3", "--duration", "1s", "--warmup", "0s"];
    args.extend(common);
    args.extend(["--json", closed.to_str().unwrap()]);
    seen.most_in_flight.store(0, Ordering::Relaxed);
    let (code, error) = perfsize(&args).await;
    assert_eq!(code, exit::OK, "{error}");
    let step = read_step(&closed);
    assert_eq!(step.load_model, perfsize::load::LoadModel::ClosedLoop { concurrency: 3 });
    assert!(step.summary().contains("closed loop of 3, from actual send"), "{}", step.summary());
    assert!(step.requests > 100, "3 in flight of ~2 ms each for a second: {}", step.requests);
    assert!(seen.most_in_flight.load(Ordering::Relaxed) <= 3);
    let (code, error) = perfsize(&["compare", json.to_str().unwrap(), closed.to_str().unwrap()]).await;
    assert_eq!(code, exit::USAGE, "open-model and closed-loop figures never mix: {error}");
    assert!(error.contains("closed loop"), "{error}");
    stop.cancel();
}

#[tokio::test]
async fn a_step_asked_for_far_more_than_the_generator_sends_ends_on_time_labelled_generator_limited() {
    let _turn = traffic_turn().await;
    let dir = scratch("beyond");
    let payload = write_payload(&dir);
    // A simulator in a process of its own, answering at once: the endpoint
    // is never the limit here, the generator is.
    let profile = dir.join("profile.toml");
    std::fs::write(&profile, "deploy_seconds = 0.2\ndelete_seconds = 0.1\n[default]\nworkers = 256\nservice_ms = { median = 0.0, p99 = 0.0 }\nqueue_limit = 100000\n")
        .unwrap();
    let sim = SimulatorProcess::start(profile.to_str().unwrap());
    deploy(&sim.client(), "beyond", "ml.m5.large", 1).await;
    assert_eq!(wait_while(&sim.client(), "beyond", "Creating").await, "InService");
    let json = dir.join("beyond.json");
    let (warmup, duration) = (0.5, 3.0);
    let args = [
        "load",
        "--endpoint-name",
        "beyond",
        "--tps",
        "60000",
        "--duration",
        "3s",
        "--warmup",
        "0.5s",
        "--cloudwatch-wait",
        "0s",
        "--payload",
        &payload,
        "--json",
        json.to_str().unwrap(),
    ];
    let mut command = sim.perfsize(&args);
    on_one_core(&mut command);
    let started = Instant::now();
    let mut generator = command.spawn().expect("perfsize starts");
    // Far beyond what one (debug-built) process on one core sends.
    assert_eq!(wait_exit(&mut generator, Duration::from_secs(120)), Some(exit::NOT_MET as i32));
    let wall = started.elapsed().as_secs_f64();
    let step = read_step(&json);
    let limit = step.generator.limited.expect("the step is generator-limited");
    assert!(limit.reached_tps > 0.0 && limit.reached_tps < 0.9 * limit.offered_tps, "{limit:?}");
    assert!(step.reasons.iter().any(|r| r.starts_with("generator-limited")), "{:?}", step.reasons);
    let blamed_on_the_endpoint = step
        .misses
        .iter()
        .filter(|m| matches!(m, perfsize::result::Miss::Latency { .. } | perfsize::result::Miss::Rate { .. }))
        .count();
    assert_eq!(blamed_on_the_endpoint, 0, "{:?}", step.reasons);
    let step_seconds = (step.ended_at - step.started_at).num_milliseconds() as f64 / 1000.0;
    assert!(step_seconds < warmup + duration + 5.0, "the step ended on time: {step_seconds} s");
    assert!(wall < warmup + duration + 20.0, "and so did the command: {wall} s");
}

/// Keeps `command`'s process on core 0, so that its own capacity, not the
/// machine's, is what a step runs into.
fn on_one_core(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec the child only sets its own affinity,
    // which allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(|| {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            Ok(())
        });
    }
}

#[tokio::test]
async fn two_shards_merge_into_one_histogram_of_the_same_requests() {
    let _turn = traffic_turn().await;
    let dir = scratch("shards");
    let payload = write_payload(&dir);
    let profile = dir.join("profile.toml");
    std::fs::write(
        &profile,
        "deploy_seconds = 0.2\ndelete_seconds = 0.1\n[default]\nworkers = 8\nservice_ms = { median = 3.0, p99 = 9.0 }\n",
    )
    .unwrap();
    let sim = SimulatorProcess::start(profile.to_str().unwrap());
    deploy(&sim.client(), "sharded", "ml.m5.large", 1).await;
    assert_eq!(wait_while(&sim.client(), "sharded", "Creating").await, "InService");
    let shard_dir = dir.join("shards");
    let shard = |i: &str| {
        let args = [
            "load",
            "--endpoint-name",
            "sharded",
            "--tps",
            "60",
            "--duration",
            "2s",
            "--warmup",
            "0.5s",
            "--cloudwatch-wait",
            "0s",
            "--shard",
            i,
            "--shard-dir",
            shard_dir.to_str().unwrap(),
            "--payload",
            &payload,
        ];
        sim.perfsize(&args).spawn().expect("a shard starts")
    };
    let mut shards = [shard("1/2"), shard("2/2")];
    for child in &mut shards {
        assert_eq!(wait_exit(child, Duration::from_secs(60)), Some(exit::OK as i32));
    }
    let merged = dir.join("merged.json");
    let (code, error) = perfsize(&["merge", shard_dir.to_str().unwrap(), "--json", merged.to_str().unwrap()]).await;
    assert_eq!(code, exit::OK, "{error}");

    let parts: Vec<StepResult> = (1..=2).map(|i| read_step(&shard_dir.join(format!("shard-{i}-of-2.json")))).collect();
    let merged = read_step(&merged);
    assert_eq!(merged.requests, parts.iter().map(|p| p.requests).sum::<u64>());
    assert_eq!(merged.requests, 120, "the union is the whole rate: 60 TPS × 2 s");
    assert_eq!(merged.target_tps, 60.0);
    assert_eq!(merged.shard, None);
    let mut combined = histogram::decode(&parts[0].histogram).unwrap();
    combined.add(histogram::decode(&parts[1].histogram).unwrap()).unwrap();
    let whole = histogram::decode(&merged.histogram).unwrap();
    assert_eq!(whole.len(), combined.len());
    for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
        assert_eq!(whole.value_at_quantile(q), combined.value_at_quantile(q), "q {q}");
    }
    assert_eq!(merged.latency_ms, Percentiles::of(&combined), "percentiles from the merged histogram");

    // An incomplete set is refused, naming what is missing.
    std::fs::remove_file(shard_dir.join("shard-2-of-2.json")).unwrap();
    let (code, error) = perfsize(&["merge", shard_dir.to_str().unwrap()]).await;
    assert_eq!(code, exit::USAGE, "{error}");
    assert!(error.contains("1/2 to 2/2"), "{error}");
}

#[tokio::test]
async fn impossible_generator_inputs_are_usage_errors_before_anything_happens() {
    let dir = scratch("generator-inputs");
    let payload = write_payload(&dir);
    let url = "http://127.0.0.1:9/infer";
    for (args, says) in [
        (vec!["load", "--url", url, "--concurrency", "0"], "--concurrency"),
        (vec!["load", "--url", url, "--tps", "5", "--shard", "3/2", "--shard-dir", "x"], "3/2"),
        (vec!["load", "--url", url, "--tps", "5", "--async"], "--async"),
        (vec!["load", "--url", url, "--tps", "5", "--header", "no colon"], "--header"),
        (vec!["load", "--url", "grpc://127.0.0.1:9", "--tps", "5"], "HTTP/1.1"),
        (vec!["load", "--url", url, "--tps", "5", "--concurrency", "2"], "--concurrency"),
    ] {
        let mut argv = args.clone();
        argv.extend(["--payload", &payload]);
        let (code, error) = perfsize(&argv).await;
        assert_eq!(code, exit::USAGE, "{args:?}: {error}");
        assert!(error.contains(says), "{args:?}: {error}");
    }
}
