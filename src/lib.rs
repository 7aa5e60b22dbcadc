//! perfsize right-sizes Amazon SageMaker inference endpoints by experiment:
//! it deploys candidate configurations, drives real traffic at them, measures,
//! and recommends the cheapest configuration that meets the requirements.
//!
//! The pipeline, one module each:
//!
//! ```text
//! cli ──► Plan ──► step ──► environment ──► load ──► result ──► report
//!                   ▲                                   │
//!                   └────────── StepResult ◄────────────┘
//! ```
//!
//! - [`cli`]: clap types, turned once into validated inputs; the exit codes.
//! - [`plan`]: the validated inputs of a run — candidates, requirements, walks.
//! - [`sizing`]: the sizing run that drives the loop and writes the results.
//! - [`step`]: the step manager — pure decision logic, two strategies.
//! - [`environment`]: deploys candidates on SageMaker and tears them down.
//! - [`load`]: open-model, coordinated-omission-free traffic through goose.
//! - [`result`]: a load run turned into a judged `StepResult`, with CloudWatch figures.
//! - [`run_dir`]: the results directory every step is written to as it ends.
//! - [`report`]: report.html, junit.xml, .hgrm files, and `compare`.
//! - [`simulator`]: a SageMaker-compatible server (control plane, runtime,
//!   CloudWatch) with a capacity model, for tests, demos and benchmarks.
//! - [`cost`]: prices per region, configuration cost, what the run spent.
//! - [`catalog`]: the instance types that exist and their hardware.
//! - [`aws`]: the SDK configuration and clients of a command.
//! - [`signals`]: Ctrl-C handling that never skips teardown.

pub mod aws;
pub mod bench;
pub mod catalog;
pub mod cli;
pub mod cost;
pub mod environment;
pub mod load;
pub mod plan;
pub mod progress;
pub mod report;
pub mod result;
pub mod run_dir;
pub mod signals;
pub mod simulator;
pub mod sizing;
pub mod step;

/// An error and all its causes on one line, for logs and messages that must
/// stay one line (`a: b: c`).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
