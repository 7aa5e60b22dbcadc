//! `perfsize bench …`: benchmarks that print figures (see BENCHMARKS.md).

use std::path::PathBuf;

use std::time::Duration;

use clap::{Args, Subcommand};

use super::args::parse_positive;
use super::{Failure, exit};
use crate::bench;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub which: Which,
}

#[derive(Debug, Subcommand)]
pub enum Which {
    /// InvokeEndpoint requests per second the simulator answers (zero service time).
    Simulator {
        #[arg(long, default_value = "10", value_parser = parse_positive)]
        seconds: f64,
    },
    /// CPU per request and the highest on-time signed rate; oha beside perfsize when it is on PATH.
    Capacity {
        #[arg(long, default_value = "10", value_parser = parse_positive)]
        seconds: f64,
        #[arg(long, value_delimiter = ',', default_value = "1000,2000,3000,4000,5000,6000,7000,8000", value_parser = parse_positive)]
        rates: Vec<f64>,
        /// In-flight slots; default rate × 2 s.
        #[arg(long)]
        max_in_flight: Option<usize>,
        /// The rate at which perfsize, a --baseline build and oha are measured side by side.
        #[arg(long, default_value = "5000", value_parser = parse_positive)]
        compare_at: f64,
        /// A rate far past what one process sends: what each generator reaches.
        #[arg(long, default_value = "40000", value_parser = parse_positive)]
        beyond: f64,
        /// Another perfsize binary (an earlier build) to measure beside this one.
        #[arg(long, value_name = "PATH")]
        baseline: Option<PathBuf>,
    },
    /// Client-side p50/p99 against the simulator's server-side ModelLatency.
    Accuracy {
        #[arg(long, default_value = "1000", value_parser = parse_positive)]
        tps: f64,
        #[arg(long, default_value = "30", value_parser = parse_positive)]
        seconds: f64,
        /// Repeat the measurement this many times (the machine's noise shows between runs).
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
    /// Asynchronous end-to-end time against the simulator's own, per polling interval, and S3 requests per inference.
    Async {
        #[arg(long, default_value = "20", value_parser = parse_positive)]
        tps: f64,
        #[arg(long, default_value = "20", value_parser = parse_positive)]
        seconds: f64,
        #[arg(long, value_delimiter = ',', default_value = "50ms,200ms,1s", value_parser = super::args::parse_duration)]
        polling_intervals: Vec<Duration>,
    },
    /// Percentiles through a periodic server stall, against the open-model prediction.
    Stall {
        #[arg(long, default_value = "200", value_parser = parse_positive)]
        tps: f64,
        #[arg(long, default_value = "1", value_parser = parse_positive)]
        stall: f64,
        #[arg(long, default_value = "10", value_parser = parse_positive)]
        every: f64,
        #[arg(long, default_value = "40", value_parser = parse_positive)]
        seconds: f64,
    },
    /// The adaptive and perfsize strategies on the same simulated scenario,
    /// with perfsizesagemaker's user TPS walk and without a walk.
    Strategies {
        #[arg(long, default_value = "perfsize-results/bench-strategies")]
        results_dir: PathBuf,
        #[arg(long, default_value = "ml.m5.large,ml.m5.xlarge")]
        types: String,
        /// Each search step, after --warmup. The defaults give every step
        /// 10 s of load, as perfsizesagemaker's demo gives each a minute.
        #[arg(long, default_value = "9s")]
        duration: String,
        #[arg(long, default_value = "1s")]
        warmup: String,
        #[arg(long, default_value = "10s")]
        endurance_duration: String,
    },
    /// Response streams held at once by one generator core, and its CPU per token received.
    Stream {
        #[arg(long, value_delimiter = ',', default_value = "100,300,1000,2000")]
        concurrencies: Vec<usize>,
        #[arg(long, default_value = "10", value_parser = parse_positive)]
        seconds: f64,
    },
    /// The auto-scaling test, perfsize's procedure next to perfsizesagemaker's, on one simulated model.
    Scaling {
        #[arg(long, default_value = "perfsize-results/bench-scaling")]
        results_dir: PathBuf,
    },
}

pub async fn run(args: BenchArgs) -> Result<u8, Failure> {
    if let Which::Stall { stall, every, .. } = args.which
        && stall >= every
    {
        return Err(Failure::usage("--stall must be shorter than --every"));
    }
    if let Which::Async { polling_intervals, .. } = &args.which
        && polling_intervals.iter().any(Duration::is_zero)
    {
        return Err(Failure::usage("--polling-intervals must be longer than zero"));
    }
    if let Which::Stream { concurrencies, .. } = &args.which
        && concurrencies.contains(&0)
    {
        return Err(Failure::usage("--concurrencies must all be at least 1"));
    }
    // Ctrl-C drops the benchmark, and with it the simulator process and the
    // temporary files it made: every benchmark runs on simulators alone.
    let interrupted = super::interrupts().token();
    tokio::select! {
        () = bench(args.which) => Ok(exit::OK),
        () = interrupted.cancelled() => Ok(exit::INTERRUPTED),
    }
}

async fn bench(which: Which) {
    let interrupts = super::interrupts();
    match which {
        Which::Simulator { seconds } => bench::simulator(seconds, interrupts).await,
        Which::Capacity { seconds, rates, max_in_flight, compare_at, beyond, baseline } => {
            let options = bench::Capacity { seconds, rates, max_in_flight, compare_at, beyond, baseline };
            bench::capacity(options, interrupts).await
        }
        Which::Accuracy { tps, seconds, runs } => bench::accuracy(tps, seconds, runs, interrupts).await,
        Which::Stall { tps, stall, every, seconds } => bench::stall(tps, stall, every, seconds, interrupts).await,
        Which::Async { tps, seconds, polling_intervals } => {
            bench::asynchronous(tps, seconds, &polling_intervals, interrupts).await
        }
        Which::Strategies { results_dir, types, duration, warmup, endurance_duration } => {
            let durations = bench::StepDurations { duration, warmup, endurance: endurance_duration };
            bench::strategies(results_dir, types, durations).await
        }
        Which::Scaling { results_dir } => bench::scaling(results_dir).await,
        Which::Stream { concurrencies, seconds } => bench::stream(&concurrencies, seconds, interrupts).await,
    }
}
