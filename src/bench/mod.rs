//! `perfsize bench …`: the benchmarks behind BENCHMARKS.md. Each prints its
//! figures; none asserts a timing (these machines are shared and noisy).
//!
//! The simulator runs as a separate `perfsize simulator` process, so the CPU
//! each side spends per request is measured on its own.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::aws::AwsOptions;
use crate::engine::Session;
use crate::environment::{AsyncServing, Environment, ModelSource, RunId, SageMakerEnvironment};
use crate::load::{
    Arrivals, AsyncClient, Cleanup, Driver, InvokeEndpoint, LoadRun, LoadSpec, OpenModel, Pacing, Payload, PayloadMix, Polling,
    RateProfile, Shard, Target,
};
use crate::result::{MetricsWindow, histogram};
use crate::s3::Buckets;
use crate::sagemaker::VARIANT_NAME;
use crate::signals::Interrupts;
use crate::vocab::Candidate;

mod capacity;
mod stream;

pub use capacity::{Capacity, capacity};
pub use stream::stream;

/// CPU seconds (user + system) this process has used.
fn own_cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// CPU seconds another process has used, from /proc.
fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ")".
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of /proc/pid/stat (11 and 12 after the name).
    (field(11) + field(12)) / ticks
}

/// The machine's CPU counters: (steal, total) jiffies from /proc/stat. Steal is
/// time the hypervisor gave this VM's CPUs to someone else: on a shared
/// machine it explains runs that are slow on both sides at once.
fn cpu_counters() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    (fields.get(7).copied().unwrap_or(0), fields.iter().take(8).sum())
}

/// Share of CPU time stolen by the hypervisor since `before`, in percent.
fn steal_since(before: (u64, u64)) -> f64 {
    let after = cpu_counters();
    let total = after.1.saturating_sub(before.1).max(1) as f64;
    after.0.saturating_sub(before.0) as f64 / total * 100.0
}

/// A `perfsize simulator` process with a given profile; killed on drop.
pub struct SimulatorProcess {
    child: Child,
    pub url: String,
    _profile: tempfile_path::TempPath,
}

mod tempfile_path {
    //! A file removed when dropped.
    use std::path::{Path, PathBuf};

    pub struct TempPath(PathBuf);

    impl TempPath {
        pub fn write(name: &str, text: &str) -> std::io::Result<TempPath> {
            let path = std::env::temp_dir().join(format!("perfsize-{}-{name}", std::process::id()));
            std::fs::write(&path, text)?;
            Ok(TempPath(path))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

impl SimulatorProcess {
    pub fn start(profile: &str) -> std::io::Result<SimulatorProcess> {
        let file = tempfile_path::TempPath::write("bench-profile.toml", profile)?;
        let mut child = Command::new(std::env::current_exe()?)
            .args(["simulator", "--port", "0", "--profile"])
            .arg(file.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        Ok(SimulatorProcess { child, url: line.trim().to_string(), _profile: file })
    }

    pub fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(self.child.id())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An engine session on this simulator, as `perfsize --simulate` opens one.
    async fn session(&self, interrupts: &'static Interrupts) -> Session {
        let options = AwsOptions {
            region: Some("us-east-1".into()),
            endpoint_url: Some(self.url.clone()),
            static_credentials: true,
            ..Default::default()
        };
        Session::open(&options, true, interrupts).await.expect("static options always connect")
    }
}

impl Drop for SimulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An endpoint deployed for a benchmark through the engine's own pieces,
/// taken down with `finish`.
struct BenchEndpoint {
    session: Session,
    env: SageMakerEnvironment,
    driver: InvokeEndpoint,
    name: String,
}

impl BenchEndpoint {
    async fn deploy(sim: &SimulatorProcess, instance_type: &str, interrupts: &'static Interrupts) -> BenchEndpoint {
        let session = sim.session(interrupts).await;
        let env = bench_environment(&session, sim, RunId::generate());
        let name = deploy_one(&env, instance_type).await;
        let driver = session.invoke_endpoint().await.expect("static credentials sign");
        BenchEndpoint { session, env, driver, name }
    }

    fn spec(&self, tps: f64, seconds: f64, warmup: f64) -> LoadSpec {
        self.spec_with(
            tps,
            seconds,
            warmup,
            LoadSpec::derived_max_in_flight(tps, Duration::from_millis(500), Duration::from_secs(10)),
        )
    }

    fn spec_with(&self, tps: f64, seconds: f64, warmup: f64, max_in_flight: usize) -> LoadSpec {
        let open = OpenModel {
            rate: RateProfile::new(tps, None, Duration::from_secs_f64(warmup + seconds)),
            arrivals: Arrivals::Uniform,
            seed: 1,
            max_in_flight,
            shard: Shard::WHOLE,
        };
        self.paced(Pacing::Open(open), Duration::from_secs_f64(warmup))
    }

    /// The benchmark's traffic at this endpoint, paced by `pacing`, its first `warmup` not measured.
    fn paced(&self, pacing: Pacing, warmup: Duration) -> LoadSpec {
        bench_spec(self.driver.target(&self.name), pacing, warmup)
    }

    async fn drive(&self, spec: LoadSpec) -> LoadRun {
        self.driver.drive(spec, CancellationToken::new(), None).await.expect("the load step runs")
    }

    async fn finish(self) {
        let _ = self.env.teardown().await;
    }
}

/// The benchmark's traffic at `target`, paced by `pacing`, its first
/// `warmup` not measured.
fn bench_spec(target: Target, pacing: Pacing, warmup: Duration) -> LoadSpec {
    LoadSpec {
        target,
        pacing,
        warmup,
        payloads: Arc::new(PayloadMix::new(vec![Payload::new("bench.json", BODY.as_bytes(), 1.0)]).expect("one payload")),
        content_type: "application/json".into(),
        accept: "application/json".into(),
        request_timeout: Duration::from_secs(10),
    }
}

/// What every benchmark request carries.
const BODY: &str = r#"{"features":[1,2,3,4]}"#;

/// The environment manager of a benchmark on `sim`, with a model of its own.
fn bench_environment(session: &Session, sim: &SimulatorProcess, run_id: RunId) -> SageMakerEnvironment {
    let model = ModelSource::Create {
        image: "bench".into(),
        model_data_url: None,
        execution_role_arn: "arn:aws:iam::123456789012:role/bench".into(),
        environment: vec![],
    };
    let cleanup = format!("perfsize cleanup --run-id {run_id} --endpoint-url {}", sim.url);
    session.environment(run_id, model, Duration::from_millis(50), Default::default(), cleanup)
}

/// Prepares `env` and deploys one instance of `instance_type`; its endpoint's name.
async fn deploy_one(env: &SageMakerEnvironment, instance_type: &str) -> String {
    env.prepare().await.expect("the simulator creates the model");
    let candidate = Candidate::new(instance_type.parse().expect("a catalog type"), 1);
    env.deploy(&candidate, &CancellationToken::new()).await.expect("the simulator deploys").endpoint
}

/// A model that serves in 20 ms at the median and 45 ms at p99, with room
/// for every request at once: what is measured is the measuring.
const NO_QUEUEING: &str = r#"
deploy_seconds = 0.1
delete_seconds = 0.1
[default]
vcpus = 2
workers = 1024
service_ms = { median = 20.0, p99 = 45.0 }
queue_limit = 100000
"#;

const ZERO_SERVICE: &str = r#"
deploy_seconds = 0.1
delete_seconds = 0.1
[default]
vcpus = 2
workers = 256
service_ms = { median = 0.0, p99 = 0.0 }
queue_limit = 100000
"#;

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The simulator's InvokeEndpoint throughput with a zero service time,
/// driven by a closed-loop client in this process.
pub async fn simulator(seconds: f64, interrupts: &'static Interrupts) {
    let sim = SimulatorProcess::start(ZERO_SERVICE).expect("the simulator starts");
    let endpoint = BenchEndpoint::deploy(&sim, "ml.m5.large", interrupts).await;
    let url = format!("{}/endpoints/{}/invocations", sim.url, endpoint.name);
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().expect("a client builds");
    let done = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let (cpu_client, cpu_sim) = (own_cpu_seconds(), sim.cpu_seconds());
    let started = Instant::now();
    let workers: Vec<_> = (0..64)
        .map(|_| {
            let (client, url, done, stop) = (client.clone(), url.clone(), Arc::clone(&done), stop.clone());
            tokio::spawn(async move {
                while !stop.is_cancelled() {
                    let sent = client
                        .post(&url)
                        .header("authorization", "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/sagemaker/aws4_request, SignedHeaders=host, Signature=0")
                        .header("content-type", "application/json")
                        .body(r#"{"x":1}"#)
                        .send()
                        .await;
                    let answered = match sent {
                        Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if answered {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        // Do not spin on a refused connection.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.cancel();
    let elapsed = started.elapsed().as_secs_f64();
    for w in workers {
        let _ = w.await;
    }
    let n = done.load(Ordering::Relaxed) as f64;
    let (client_cpu, sim_cpu) = (own_cpu_seconds() - cpu_client, sim.cpu_seconds() - cpu_sim);
    println!("simulator throughput (zero service time, 64 closed-loop connections, client and simulator sharing this machine)");
    println!("  {:.0} InvokeEndpoint requests/s answered 200 over {elapsed:.1} s", n / elapsed);
    println!("  simulator CPU {:.1} µs/request · client CPU {:.1} µs/request", sim_cpu / n * 1e6, client_cpu / n * 1e6);
    endpoint.finish().await;
}

/// Client-side percentiles against the simulator's own ModelLatency, `runs` times.
pub async fn accuracy(tps: f64, seconds: f64, runs: u32, interrupts: &'static Interrupts) {
    let sim = SimulatorProcess::start(NO_QUEUEING).expect("the simulator starts");
    let endpoint = BenchEndpoint::deploy(&sim, "ml.m5.large", interrupts).await;
    println!("measurement accuracy: {tps:.0} TPS for {seconds} s, service time median 20 ms / p99 45 ms, no queueing");
    println!(
        "  {:<4} {:>22} {:>22} {:>22} {:>7}",
        "run", "perfsize p50 / p99", "ModelLatency p50 / p99", "difference p50 / p99", "steal"
    );
    for run in 1..=runs {
        let steal = cpu_counters();
        let (client, server) = accuracy_run(&endpoint, tps, seconds).await;
        let steal = steal_since(steal);
        match server.model_latency_ms {
            Some(model) => {
                let p50 = model.p50.unwrap_or(f64::NAN);
                println!(
                    "  {run:<4} {:>10.3} / {:>8.3} {:>10.3} / {:>8.3} {:>+10.3} / {:>+8.3} {steal:>6.1}%",
                    client.p50,
                    client.p99,
                    p50,
                    model.p99,
                    client.p50 - p50,
                    client.p99 - model.p99
                );
            }
            None => println!("  {run:<4} CloudWatch figures not available: {}", server.note.unwrap_or_default()),
        }
    }
    println!("  targets: the difference (perfsize's own overhead) within 1 ms at p50 and 2 ms at p99");
    endpoint.finish().await;
}

async fn accuracy_run(
    endpoint: &BenchEndpoint,
    tps: f64,
    seconds: f64,
) -> (histogram::Percentiles, crate::result::ServerMetrics) {
    let run = endpoint.drive(endpoint.spec(tps, seconds, 3.0)).await;
    // One period for the whole window: its percentiles are exact.
    let window = MetricsWindow::of_run(&endpoint.name, VARIANT_NAME, &run, Duration::from_secs(86_400));
    let server = crate::result::cloudwatch::fetch(
        &endpoint.session.aws.cloudwatch,
        &window,
        Duration::from_secs(5),
        Duration::from_millis(200),
        &CancellationToken::new(),
    )
    .await;
    (histogram::Percentiles::of(&run.totals.all).expect("requests were measured"), server)
}

/// Asynchronous end-to-end time against the simulator's own (submission →
/// output written, TotalProcessingTime), at fixed polling intervals, and
/// the S3 requests each inference took.
pub async fn asynchronous(tps: f64, seconds: f64, intervals: &[Duration], interrupts: &'static Interrupts) {
    let sim = SimulatorProcess::start(NO_QUEUEING).expect("the simulator starts");
    let session = sim.session(interrupts).await;
    let run_id = RunId::generate();
    let storage = Buckets::RunOwned.for_run(run_id.as_str());
    let env = bench_environment(&session, &sim, run_id).serving_async(AsyncServing::of(&storage));
    let name = deploy_one(&env, "ml.m5.large").await;
    println!("asynchronous end to end: {tps:.0} TPS for {seconds} s, service time median 20 ms / p99 45 ms, no queueing");
    println!(
        "  {:>8} {:>22} {:>26} {:>22} {:>16}",
        "polling", "perfsize p50 / p99", "TotalProcessingTime p50/p99", "difference p50 / p99", "S3 req/inference"
    );
    for interval in intervals {
        let client = AsyncClient {
            // A fixed interval: the resolution is the interval itself.
            polling: Polling { interval: *interval, max_interval: *interval, multiplier: 1.0, max_wait: Duration::from_secs(60) },
            submission_workers: 16,
            polling_workers: 1024,
            max_concurrent_jobs: None,
            max_retries: 3,
            request_ttl: None,
            cleanup: Cleanup::Immediate,
        };
        let driver = session.invoke_async(storage.input.clone(), client);
        let warmup = Duration::from_secs(2);
        let open = OpenModel {
            rate: RateProfile::new(tps, None, warmup + Duration::from_secs_f64(seconds)),
            arrivals: Arrivals::Uniform,
            seed: 1,
            max_in_flight: LoadSpec::derived_max_in_flight(tps, Duration::from_secs(10), Duration::from_secs(60)),
            shard: Shard::WHOLE,
        };
        let spec = bench_spec(driver.target(&name), Pacing::Open(open), warmup);
        let run = driver.drive(spec, CancellationToken::new(), None).await.expect("the load step runs");
        let window = MetricsWindow::of_run(&name, VARIANT_NAME, &run, Duration::from_secs(86_400));
        let wait = Duration::from_secs(5);
        let cw = crate::result::cloudwatch::fetch(
            &session.aws.cloudwatch,
            &window,
            wait,
            Duration::from_millis(200),
            &CancellationToken::new(),
        )
        .await;
        let client_side = histogram::Percentiles::of(&run.totals.all).expect("requests were measured");
        let per_inference = run.asynchronous.as_ref().map_or(f64::NAN, |a| a.s3_requests_per_inference);
        let label = humantime::format_duration(*interval).to_string();
        match cw.asynchronous.and_then(|a| a.total_processing_ms) {
            Some(server) => {
                let p50 = server.p50.unwrap_or(f64::NAN);
                println!(
                    "  {label:>8} {:>10.1} / {:>9.1} {:>12.1} / {:>11.1} {:>+10.1} / {:>+9.1} {per_inference:>16.2}",
                    client_side.p50,
                    client_side.p99,
                    p50,
                    server.p99,
                    client_side.p50 - p50,
                    client_side.p99 - server.p99
                );
            }
            None => println!("  {label:>8} CloudWatch figures not available: {}", cw.note.unwrap_or_default()),
        }
    }
    println!(
        "  the difference is upload + submission + the wait for the next look: at most one polling interval more than the first two"
    );
    let _ = env.teardown().await;
}

/// Percentiles through a periodic stall, against the open-model prediction.
pub async fn stall(tps: f64, stall: f64, every: f64, seconds: f64, interrupts: &'static Interrupts) {
    let profile = format!(
        r#"
deploy_seconds = 0.1
delete_seconds = 0.1
[default]
vcpus = 2
workers = 4096
service_ms = {{ median = 1.0, p99 = 1.0 }}
queue_limit = 1000000
[stall]
seconds = {stall}
every_seconds = {every}
"#
    );
    let sim = SimulatorProcess::start(&profile).expect("the simulator starts");
    let endpoint = BenchEndpoint::deploy(&sim, "ml.m5.large", interrupts).await;
    let run = endpoint.drive(endpoint.spec(tps, seconds, 0.0)).await;
    let t = &run.totals;
    let share = stall / every;
    // Requests due during a stall wait out the rest of it: uniform on (0, stall].
    let predicted = |q: f64| if q <= 1.0 - share { 1.0 } else { 1.0 + stall * 1000.0 * (q - (1.0 - share)) / share };
    println!(
        "honesty under a stall: {tps:.0} TPS for {seconds} s; every {every} s the server stops for {stall} s ({:.0}% of the time)",
        share * 100.0
    );
    println!("  {:<10} {:>14} {:>14}", "", "open model", "perfsize");
    for (label, q) in [("p50", 0.50), ("p90", 0.90), ("p95", 0.95), ("p99", 0.99), ("p99.9", 0.999)] {
        println!("  {label:<10} {:>11.1} ms {:>11.1} ms", predicted(q), ms(t.all.value_at_quantile(q)));
    }
    println!("  max        {:>11.1} ms {:>11.1} ms", 1.0 + stall * 1000.0, ms(t.all.max()));
    endpoint.finish().await;
}

/// How long each step of the strategies benchmark drives traffic.
#[derive(Debug, Clone)]
pub struct StepDurations {
    pub duration: String,
    pub warmup: String,
    pub endurance: String,
}

/// perfsizesagemaker's user walk, as the issue measured it.
const USER_TPS_WALK: &str = "10,20,40,60,80,100,120,140,160,180,200";

/// What one sizing run of the strategies benchmark spent and concluded.
struct RunFigures {
    search_steps: usize,
    endurance_steps: usize,
    search_seconds: f64,
    endurance_seconds: f64,
    wall: f64,
    /// Configuration, $/hour, capacity per instance.
    recommendation: Option<(String, f64, crate::step::Capacity)>,
}

impl RunFigures {
    fn load_seconds(&self) -> f64 {
        self.search_seconds + self.endurance_seconds
    }
}

/// One sizing run of the strategies benchmark, with `args` and its results in `dir`.
async fn sizing_run(args: &[String], dir: &std::path::Path) -> Result<RunFigures, String> {
    let mut args = args.to_vec();
    args.extend(["--results-dir".to_string(), dir.display().to_string()]);
    let (data, wall) = perfsize_child(&args, dir).await?;
    let load = |phase: crate::vocab::Phase| {
        let steps = data.steps.iter().filter(|s| s.phase == phase);
        (steps.clone().count(), steps.map(|s| s.duration_seconds + s.warmup_seconds).sum::<f64>())
    };
    let ((search_steps, search_seconds), (endurance_steps, endurance_seconds)) =
        (load(crate::vocab::Phase::Search), load(crate::vocab::Phase::Endurance));
    let recommendation = data
        .summary
        .recommendation
        .as_ref()
        .map(|r| (format!("{} × {}", r.instance_type, r.instance_count), r.cost_per_hour, r.capacity));
    Ok(RunFigures { search_steps, endurance_steps, search_seconds, endurance_seconds, wall, recommendation })
}

/// Both strategies on one simulated scenario, with perfsizesagemaker's user
/// walk and without a walk: steps, seconds of load, and what each recommends.
pub async fn strategies(results: PathBuf, types: String, durations: StepDurations) {
    let payload = tempfile_path::TempPath::write("bench-payload.json", r#"{"features":[1,2,3,4]}"#).expect("a temp file");
    // A fresh directory each time, so the figures are this invocation's runs.
    let results = results.join(chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string());
    let common: Vec<String> = [
        "--simulate",
        "--peak-tps",
        "100",
        "--latency-p99-ms",
        "500",
        "--type-walk",
        &types,
        "--duration",
        &durations.duration,
        "--warmup",
        &durations.warmup,
        "--endurance-duration",
        &durations.endurance,
        "--payload",
        &payload.path().display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // (mode, row label, strategy, extra arguments). The first row of a mode
    // is perfsizesagemaker's, the baseline of the ratio. `--count-walk 1` is
    // the perfsize strategy's default; to the adaptive strategy it means
    // "never more than one instance", which perfsizesagemaker's count walk
    // never meant: its row shows what that costs.
    let walk = ["--tps-walk", USER_TPS_WALK];
    let rows: [(&str, &str, &str, &[&str]); 5] = [
        ("no walk", "perfsize", "perfsize", &[]),
        ("no walk", "adaptive", "adaptive", &[]),
        ("walk", "perfsize", "perfsize", &["--count-walk", "1", walk[0], walk[1]]),
        ("walk", "adaptive", "adaptive", &walk),
        ("walk", "adaptive --count-walk 1", "adaptive", &["--count-walk", "1", walk[0], walk[1]]),
    ];
    let mut table = Vec::new();
    let mut baseline: Option<f64> = None;
    let mut baseline_cost: Option<f64> = None;
    let mut verdicts = Vec::new();
    for (n, (mode, label, strategy, extra)) in rows.iter().enumerate() {
        let mut args = common.clone();
        args.extend(["--strategy".to_string(), strategy.to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let dir = results.join(format!("{n}-{}-{}", mode.replace(' ', "-"), label.replace([' ', '-'], "")));
        eprintln!("  running {mode} · {label} …");
        let figures = match sizing_run(&args, &dir).await {
            Ok(figures) => figures,
            Err(why) => {
                table.push(format!("  {mode:<8} {label:<24} {why}"));
                continue;
            }
        };
        if *strategy == "perfsize" {
            baseline = Some(figures.load_seconds());
            baseline_cost = figures.recommendation.as_ref().map(|r| r.1);
        }
        let ratio = baseline.map(|b| figures.load_seconds() / b);
        let cost = figures.recommendation.as_ref().map(|r| r.1);
        if *strategy == "adaptive"
            && let (Some(ratio), Some(cost), Some(theirs)) = (ratio, cost, baseline_cost)
        {
            verdicts
                .push(format!("  {mode}, {label}: {ratio:.2} of perfsizesagemaker's load, {:.2} of its $/hour", cost / theirs));
        }
        let (rec, capacity) = figures
            .recommendation
            .as_ref()
            .map_or(("none".to_string(), "–".to_string()), |(name, cost, c)| (format!("{name} (${cost:.3})"), c.describe()));
        table.push(format!(
            "  {mode:<8} {label:<24} {:>3} + {} {:>9.1} {:>11.1} {:>7.1} {:>10} {:>7.0}s  {rec:<26} {capacity}",
            figures.search_steps,
            figures.endurance_steps,
            figures.search_seconds,
            figures.endurance_seconds,
            figures.load_seconds(),
            ratio.map_or("–".to_string(), |r| format!("{r:.2}")),
            figures.wall,
        ));
    }
    // Printed after every run, whose own output would interleave with the table.
    println!(
        "\nstrategies on the simulator: peak 100 TPS, p99 ≤ 500 ms, types {types}; search steps of {} after {} of warm-up, endurance {}",
        durations.duration, durations.warmup, durations.endurance
    );
    println!("  walk: --tps-walk {USER_TPS_WALK}; no walk: the perfsize strategy climbs its Jenkins default 1…400");
    println!(
        "  {:<8} {:<24} {:>7} {:>9} {:>11} {:>7} {:>10} {:>8}  {:<26} capacity per instance",
        "mode", "strategy", "steps", "search s", "endurance s", "load s", "÷ perfsize", "wall", "recommended ($/hour)"
    );
    for row in table {
        println!("{row}");
    }
    println!("  targets: adaptive ≤ 0.5 of perfsizesagemaker's load, ≤ 1.0 of its $/hour");
    for verdict in verdicts {
        println!("{verdict}");
    }
}

/// Runs perfsize itself, as a user runs it, with `args` (after the program
/// name): a child process that an interrupt of the benchmark stops (and that
/// tears down on its own). Its run directory under `dir`, and its wall time.
async fn perfsize_child(args: &[String], dir: &std::path::Path) -> Result<(crate::report::RunData, f64), String> {
    let started = Instant::now();
    let exe = std::env::current_exe().map_err(|e| format!("no perfsize binary: {e}"))?;
    let status = tokio::process::Command::new(exe)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await;
    match status {
        Ok(status) if status.code().is_some_and(|c| c <= 1) => {}
        other => return Err(format!("the run failed ({other:?})")),
    }
    let wall = started.elapsed().as_secs_f64();
    let run = std::fs::read_dir(dir)
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.path())
        .ok_or("the run left no results")?;
    let run = crate::record::RunDir::open(&run).map_err(|e| e.to_string())?;
    Ok((crate::report::RunData::load(&run).map_err(|e| e.to_string())?, wall))
}

/// The auto-scaling test on one simulated model, perfsize's procedure next
/// to perfsizesagemaker's ("How to test for auto scaling settings": the same
/// bisection, every trial run to its end): the test's own wall time,
/// instance-hours and dollars, and the minimum each found.
pub async fn scaling(results: PathBuf) {
    let payload = tempfile_path::TempPath::write("bench-payload.json", r#"{"features":[1,2,3,4]}"#).expect("a temp file");
    let profile = tempfile_path::TempPath::write("bench-scaling.toml", "deploy_seconds = 5.0\nscaling_time_scale = 60\n")
        .expect("a temp file");
    let results = results.join(chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string());
    let mut rows = Vec::new();
    let mut costs = Vec::new();
    for procedure in ["perfsizesagemaker", "perfsize"] {
        let dir = results.join(procedure);
        let mut args: Vec<String> = [
            "--simulate",
            "--peak-tps",
            "400",
            "--type-walk",
            "ml.c5.large",
            "--duration",
            "3s",
            "--endurance-duration",
            "10s",
            "--scaling-ramp",
            "30s",
            "--ramp-hold",
            "30s",
            "--scaling-procedure",
            procedure,
        ]
        .map(String::from)
        .to_vec();
        for (flag, value) in [("--sim-profile", profile.path()), ("--payload", payload.path()), ("--results-dir", &dir)] {
            args.extend([flag.to_string(), value.display().to_string()]);
        }
        let (data, _) = match perfsize_child(&args, &dir).await {
            Ok(done) => done,
            Err(why) => {
                println!("  {procedure}: {why}");
                continue;
            }
        };
        let Some(verdict) = data.summary.scaling.as_ref() else {
            println!("  {procedure}: the run did not reach its auto-scaling test");
            continue;
        };
        let trials: usize = verdict.metrics.iter().map(|m| m.trials.len()).sum();
        let found = verdict.best().map_or(format!("fixed {}", verdict.fixed_count), |m| m.policy.min.to_string());
        rows.push(format!(
            "  {procedure:<18} {trials:>6} {:>9.0}s {:>15.4} {:>9.4} {found:>9}",
            verdict.cost.wall_seconds, verdict.cost.endpoint_hours, verdict.cost.dollars
        ));
        costs.push(verdict.cost);
    }
    println!("\nauto-scaling test on one simulated model: 400 TPS on ml.c5.large, a 30 s ramp then 30 s at peak,");
    println!("  the scaling clock 60× AWS's, instances in service 5 s after they are asked for");
    println!("  {:<18} {:>6} {:>10} {:>15} {:>9} {:>9}", "procedure", "trials", "wall", "endpoint-hours", "dollars", "minimum");
    for row in rows {
        println!("{row}");
    }
    if let [theirs, ours] = costs[..] {
        println!(
            "  perfsize / perfsizesagemaker: {:.2} of the wall time, {:.2} of the instance-hours",
            ours.wall_seconds / theirs.wall_seconds,
            ours.endpoint_hours / theirs.endpoint_hours
        );
    }
}
