//! `perfsize bench capacity`: what the load generator costs and how far it
//! goes, on a zero-service-time simulator in another process.
//!
//! 1. Each rate of `--rates`, in this process: CPU per request and whether
//!    it was sent on time (slip p99 ≤ 1 ms, nothing late or unsent); the
//!    highest such rate.
//! 2. At `--compare-at` (5,000 TPS), each generator as a child process
//!    driving the same endpoint for the same time, its CPU read from the
//!    kernel when it exits: this perfsize (`perfsize load`), a `--baseline`
//!    perfsize binary if given, and oha (SigV4, `--latency-correction`) when
//!    it is on PATH — the benchmark runs without it.
//! 3. At `--beyond` (far past any generator's reach): what perfsize reaches
//!    open-model (and whether it says it was generator-limited, and ends on
//!    time), and closed-loop with 256 in flight, next to oha's closed loop of
//!    256 connections.
//!
//! With two cores or more, the generators are pinned to core 0 and the
//! simulator to core 1, so that neither side's CPU muddles the other's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::tempfile_path::TempPath;
use super::{BODY, BenchEndpoint, SimulatorProcess, ZERO_SERVICE, cpu_counters, ms, own_cpu_seconds, steal_since};
use crate::load::{ClosedLoop, LoadRun, Pacing};
use crate::signals::Interrupts;

/// Credentials every generator signs with (the simulator checks the form, not the secret).
const ACCESS_KEY: &str = "AKIDPERFSIZEBENCH";
const SECRET_KEY: &str = "bench-secret";
const REGION: &str = "us-east-1";
/// In flight for the closed loops past the limit (the oha figure).
const CLOSED_LOOP: usize = 256;
const GENERATOR_CORE: usize = 0;
const SIMULATOR_CORE: usize = 1;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Capacity {
    pub seconds: f64,
    pub rates: Vec<f64>,
    pub max_in_flight: Option<usize>,
    /// The rate at which the generators are compared.
    pub compare_at: f64,
    /// A rate far past what a generator sends.
    pub beyond: f64,
    /// Another perfsize binary to measure beside this one (a build before a change).
    pub baseline: Option<PathBuf>,
}

/// A generator run as a child process: its requests and the CPU it used.
struct ChildRun {
    requests: u64,
    cpu_seconds: f64,
    /// Schedule slip p99 as the generator reports it (perfsize does; oha does not).
    slip_p99_ms: Option<f64>,
}

impl ChildRun {
    fn cpu_per_request_us(&self) -> f64 {
        self.cpu_seconds / (self.requests.max(1) as f64) * 1e6
    }

    fn rate(&self, seconds: f64) -> f64 {
        self.requests as f64 / seconds
    }

    /// Its row of the comparison, its CPU against oha's when known.
    fn row(&self, label: &str, seconds: f64, oha_cpu: Option<f64>) -> String {
        format!(
            "  {label:<34} {:>8.0} TPS {:>13.1} µs {:>8} {:>10}",
            self.rate(seconds),
            self.cpu_per_request_us(),
            oha_cpu.map_or("–".into(), |oha| format!("{:.2}", self.cpu_per_request_us() / oha)),
            self.slip_p99_ms.map_or("–".into(), |ms| format!("{ms:.3}ms"))
        )
    }
}

pub async fn capacity(options: Capacity, interrupts: &'static Interrupts) {
    let sim = SimulatorProcess::start(ZERO_SERVICE).expect("the simulator starts");
    let pinned = pin(&sim);
    let endpoint = BenchEndpoint::deploy(&sim, "ml.m5.large", interrupts).await;
    println!(
        "load generator capacity (signed requests, zero-service-time simulator in another process, {} s per rate{})",
        options.seconds,
        if pinned { "; generators on core 0, simulator on core 1" } else { "" }
    );
    let best = rates_in_process(&endpoint, &sim, &options).await;
    match best {
        Some((rate, cpu)) => println!(
            "  highest on-time rate (slip p99 ≤ 1 ms, none late, unsent or failed): {rate:.0} TPS ({cpu:.1} µs of CPU per request)"
        ),
        None => println!("  no rate was sent on time (slip p99 ≤ 1 ms)"),
    }
    let payload = TempPath::write("bench-capacity-payload.json", BODY).expect("a temp file");
    let url = format!("{}/endpoints/{}/invocations", sim.url, endpoint.name);
    compare_generators(&options, &sim.url, &endpoint.name, &url, payload.path());
    beyond_the_limit(&endpoint, &options, &url).await;
    endpoint.finish().await;
}

/// Each rate in this process; the highest sent on time, with its CPU per request.
async fn rates_in_process(endpoint: &BenchEndpoint, sim: &SimulatorProcess, options: &Capacity) -> Option<(f64, f64)> {
    println!(
        "  {:>8} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>12} {:>12} {:>7}",
        "offered",
        "achieved",
        "slip p50",
        "slip p99",
        "p99",
        "late",
        "unsent",
        "errors",
        "perfsize CPU",
        "simulator CPU",
        "steal"
    );
    let mut best = None;
    let warmup = 2.0;
    for &rate in &options.rates {
        let spec = match options.max_in_flight {
            Some(n) => endpoint.spec_with(rate, options.seconds, warmup, n),
            None => endpoint.spec(rate, options.seconds, warmup),
        };
        let (cpu_self, cpu_sim, steal) = (own_cpu_seconds(), sim.cpu_seconds(), cpu_counters());
        let run = endpoint.drive(spec).await;
        let steal = steal_since(steal);
        let sent = sent_with_warmup(&run, warmup).max(1.0);
        let (cpu_self, cpu_sim) = ((own_cpu_seconds() - cpu_self) / sent * 1e6, (sim.cpu_seconds() - cpu_sim) / sent * 1e6);
        let t = &run.totals;
        let achieved = (t.counts.succeeded + t.counts.answered_failures) as f64 / run.measured_seconds;
        let slip_p99 = ms(t.slip.value_at_quantile(0.99));
        println!(
            "  {rate:>8.0} {achieved:>10.1} {:>8.3}ms {slip_p99:>8.3}ms {:>8.2}ms {:>8} {:>8} {:>8} {cpu_self:>9.1} µs {cpu_sim:>10.1} µs {steal:>6.1}%",
            ms(t.slip.value_at_quantile(0.5)),
            ms(t.all.value_at_quantile(0.99)),
            t.counts.late_starts,
            t.counts.not_sent,
            t.counts.failed,
        );
        let on_time = slip_p99 <= 1.0 && t.counts.failed + t.counts.late_starts + t.counts.not_sent == 0;
        if on_time && achieved >= 0.99 * rate {
            best = Some((rate, cpu_self));
        }
    }
    best
}

/// Requests a run sent, its warm-up's included (they cost CPU too).
fn sent_with_warmup(run: &LoadRun, warmup: f64) -> f64 {
    run.totals.counts.sent as f64 * (run.measured_seconds + warmup) / run.measured_seconds
}

/// Every generator at `--compare-at`, each a child process on the same endpoint.
fn compare_generators(options: &Capacity, sim_url: &str, endpoint: &str, url: &str, payload: &Path) {
    let rate = options.compare_at;
    println!(
        "\n  at {rate:.0} signed TPS for {} s, each generator a process of its own (CPU from the kernel at exit):",
        options.seconds
    );
    println!("  {:<34} {:>12} {:>16} {:>8} {:>10}", "generator", "achieved", "CPU per request", "÷ oha", "slip p99");
    let oha = oha_on_path().then(|| run_oha(&oha_rate_args(rate, options.seconds), url));
    let perfsize = std::env::current_exe().ok().map(|exe| ("perfsize (this build)".to_string(), exe));
    let baseline = options.baseline.clone().map(|exe| (format!("perfsize ({})", exe.display()), exe));
    let oha_cpu = oha.as_ref().and_then(|r| r.as_ref().ok()).map(ChildRun::cpu_per_request_us);
    for (label, exe) in perfsize.into_iter().chain(baseline) {
        match run_perfsize(&exe, rate, options.seconds, sim_url, endpoint, payload) {
            Ok(run) => println!("{}", run.row(&label, options.seconds, oha_cpu)),
            Err(why) => println!("  {label:<34} {why}"),
        }
    }
    match oha {
        Some(Ok(run)) => println!("{}", run.row("oha (SigV4, --latency-correction)", options.seconds, oha_cpu)),
        Some(Err(why)) => println!("  oha: {why}"),
        None => println!("  (oha is not on PATH: `cargo install oha --locked` to measure it beside perfsize)"),
    }
}

/// Far past the limit: perfsize open-model and closed-loop, oha closed-loop.
async fn beyond_the_limit(endpoint: &BenchEndpoint, options: &Capacity, url: &str) {
    let (rate, seconds, warmup) = (options.beyond, options.seconds, 1.0);
    println!("\n  asked for {rate:.0} TPS (far past what one process sends), {seconds} s after {warmup} s of warm-up:");
    let started = Instant::now();
    let run = endpoint.drive(endpoint.spec(rate, seconds, warmup)).await;
    let wall = started.elapsed().as_secs_f64();
    let reached = run.totals.counts.sent as f64 / run.measured_seconds;
    let label = if run.totals.counts.not_sent > 0 { "generator-limited" } else { "all sent" };
    println!(
        "  {:<34} {reached:>8.0} TPS ({label}; {} never sent; step ended after {wall:.1} s of {:.1} s)",
        "perfsize, open model",
        run.totals.counts.not_sent,
        seconds + warmup
    );
    let length = Duration::from_secs_f64(seconds + warmup);
    let closed = Pacing::Closed(ClosedLoop { concurrency: CLOSED_LOOP, length });
    let run = endpoint.drive(endpoint.paced(closed, Duration::from_secs_f64(warmup))).await;
    println!(
        "  {:<34} {:>8.0} TPS",
        format!("perfsize, closed loop of {CLOSED_LOOP}"),
        run.totals.counts.sent as f64 / run.measured_seconds
    );
    if oha_on_path() {
        let args = ["-z".to_string(), format!("{seconds}s"), "-c".into(), CLOSED_LOOP.to_string()];
        match run_oha(&args, url) {
            Ok(run) => println!("  {:<34} {:>8.0} TPS", format!("oha, closed loop of {CLOSED_LOOP}"), run.rate(seconds)),
            Err(why) => println!("  oha: {why}"),
        }
    }
}

fn oha_on_path() -> bool {
    Command::new("oha").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// oha at a fixed rate, correcting for coordinated omission as perfsize does.
fn oha_rate_args(rate: f64, seconds: f64) -> Vec<String> {
    ["-z", &format!("{seconds}s"), "-q", &format!("{rate:.0}"), "--latency-correction"].map(String::from).to_vec()
}

/// oha with `args` against `url`, signing as perfsize does.
fn run_oha(args: &[String], url: &str) -> Result<ChildRun, String> {
    let mut command = Command::new("oha");
    command
        .args(args)
        .args(["--no-tui", "--output-format", "json", "-m", "POST", "-T", "application/json", "-d", BODY])
        .args(["--aws-sigv4", &format!("aws:amz:{REGION}:sagemaker"), "-a", &format!("{ACCESS_KEY}:{SECRET_KEY}")])
        .arg(url);
    let (output, cpu_seconds) = run_pinned(command)?;
    let report: serde_json::Value = serde_json::from_slice(&output).map_err(|e| format!("unreadable oha output: {e}"))?;
    let requests =
        report["statusCodeDistribution"].as_object().map_or(0, |codes| codes.values().filter_map(|n| n.as_u64()).sum());
    Ok(ChildRun { requests, cpu_seconds, slip_p99_ms: None })
}

/// `exe load` (a perfsize binary) at `rate` against the endpoint, as a user runs it.
fn run_perfsize(exe: &Path, rate: f64, seconds: f64, sim_url: &str, endpoint: &str, payload: &Path) -> Result<ChildRun, String> {
    let json = TempPath::write("bench-capacity-child.json", "").map_err(|e| e.to_string())?;
    let mut command = Command::new(exe);
    command
        .args(["load", "--endpoint-name", endpoint, "--tps", &format!("{rate}"), "--duration", &format!("{seconds}s")])
        .args(["--warmup", "0s", "--cloudwatch-wait", "0s", "--latency-p99-ms", "60000", "--max-error-percent", "100"])
        .arg("--payload")
        .arg(payload)
        .arg("--json")
        .arg(json.path())
        .env("AWS_ENDPOINT_URL", sim_url)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    let (_, cpu_seconds) = run_pinned(command)?;
    let step: serde_json::Value =
        std::fs::read(json.path()).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).ok_or("the run wrote no result")?;
    Ok(ChildRun {
        requests: step["requests"].as_u64().unwrap_or(0),
        cpu_seconds,
        slip_p99_ms: step["generator"]["slip_p99_ms"].as_f64(),
    })
}

/// Runs `command` on the generators' core and waits for it: its standard
/// output, and the CPU seconds (user + system) it took.
fn run_pinned(mut command: Command) -> Result<(Vec<u8>, f64), String> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    // SAFETY: sched_setaffinity on the child itself, between fork and exec,
    // calls nothing that allocates or locks.
    unsafe {
        command.pre_exec(|| {
            pin_thread(0, GENERATOR_CORE);
            Ok(())
        });
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().map_err(|e| e.to_string())?;
    let mut output = Vec::new();
    child.stdout.take().expect("piped").read_to_end(&mut output).map_err(|e| e.to_string())?;
    let (status, cpu_seconds) = wait_with_cpu(child.id());
    if status != 0 && status != 1 {
        return Err(format!("exited with status {status}"));
    }
    Ok((output, cpu_seconds))
}

/// Waits for child `pid`; its exit code and the CPU seconds it used.
fn wait_with_cpu(pid: u32) -> (i32, f64) {
    let mut status = 0;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: wait4 writes the status and the usage of the child it reaps
    // into the memory it is given.
    let usage = unsafe {
        libc::wait4(pid as libc::pid_t, &mut status, 0, usage.as_mut_ptr());
        usage.assume_init()
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (libc::WEXITSTATUS(status), seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

/// Pins every thread of this process to the generators' core and the
/// simulator to its own, when there are two cores; whether it did.
pub(super) fn pin(sim: &SimulatorProcess) -> bool {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return false;
    }
    pin_process(std::process::id(), GENERATOR_CORE);
    pin_process(sim.pid(), SIMULATOR_CORE);
    true
}

/// Restricts every thread process `pid` has now to `core` (threads it
/// starts later inherit it from the thread that starts them).
fn pin_process(pid: u32, core: usize) {
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.flatten().collect::<Vec<_>>()).unwrap_or_default();
    for thread in threads {
        if let Some(tid) = thread.file_name().to_str().and_then(|t| t.parse().ok()) {
            pin_thread(tid, core);
        }
    }
}

/// Restricts thread (or process) `tid` to `core`; 0 is the caller.
fn pin_thread(tid: libc::pid_t, core: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and
    // sched_setaffinity only read and write the set given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
