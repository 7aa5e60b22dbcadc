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
pub mod engine;
pub mod environment;
pub mod error;
pub mod format;
pub mod load;
pub mod plan;
pub mod progress;
pub mod record;
pub mod report;
pub mod result;
pub mod sagemaker;
pub mod signals;
pub mod simulator;
pub mod step;
pub mod vocab;

pub use error::error_chain;
