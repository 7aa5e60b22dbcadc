//! perfsize right-sizes Amazon SageMaker inference endpoints by experiment:
//! it deploys candidate configurations, drives real traffic at them, measures,
//! and recommends the cheapest configuration that meets the requirements.
//!
//! The pipeline:
//!
//! ```text
//! cli ─► Plan ─► engine ──────────────────────────────────────────► record ─► report
//!  (parse,        │  Session: clients, pace, interrupts, teardown      ▲   (plan.json, steps/,
//!   validate,     │                                                    │    usage.json,
//!   exit code)    ▼                                                    │    summary.json)
//!           step (strategy) ─► Probe ─► environment ─► load driver ─► result
//!                 ▲            (what is deployed)   (how requests   (judged StepResult)
//!                 └──────────── Outcome ◄─────────── are sent) ◄──────┘
//! ```
//!
//! Each command in [`cli`] parses, validates into a [`plan::Plan`], calls a
//! job of the [`engine`], and maps its outcome to an exit code. The engine
//! reaches endpoints through two seams, each a trait with today's one kind
//! behind it — a new kind of endpoint is a new module beside its sibling:
//!
//! - *what is deployed*: [`environment::Environment`] (a
//!   [`vocab::Candidate`] — instance type × count, real-time or asynchronous,
//!   or a serverless memory size × max concurrency — on a SageMaker
//!   endpoint: [`environment::SageMakerEnvironment`]);
//! - *how one request is sent and measured*: [`load::Driver`] (signed
//!   real-time InvokeEndpoint through goose: [`load::InvokeEndpoint`]; any
//!   HTTP model server: [`load::HttpEndpoint`]; asynchronous inference
//!   through S3: [`load::InvokeAsync`]; LLM response streams read token by
//!   token: [`load::InvokeStream`]).
//!
//! The managers, one module each:
//!
//! - [`vocab`]: the words they share — candidate, requirements, phase, probe
//!   and its load (a rate, or streams in flight).
//! - [`plan`]: a run's validated inputs.
//! - [`engine`]: the session, the sizing run and the single load step.
//! - [`step`]: the step manager — pure decision logic, two strategies for
//!   instances (searching rates, or streams in flight; both joined when the
//!   peak names both) and the serverless search beside them.
//! - [`environment`]: deploys candidates on SageMaker and tears them down.
//! - [`load`]: open-model, coordinated-omission-free traffic, or a closed
//!   loop; one process or a shard of several.
//! - [`result`]: a load run turned into a judged `StepResult`, with CloudWatch figures.
//! - [`record`]: the run directory — what a run writes and everything downstream reads.
//! - [`report`]: report.html, junit.xml, .hgrm files, and `compare`.
//! - [`scaling`]: the auto-scaling policy recommended and what a test of it showed.
//! - [`cost`]: prices per region (shipped or live), configuration cost,
//!   instances against serverless on the user's month, what the run spent.
//! - [`iam`]: the least-privilege policy a run needs.
//! - [`s3`]: where an asynchronous run keeps its objects, and how they go.
//!
//! Leaves they all use: [`catalog`] (instance types), [`sagemaker`]
//! (SageMaker's own facts and error codes), [`format`] (how numbers read),
//! [`error`] (the error kinds), [`aws`] (SDK configuration), [`credentials`]
//! (renewed when AWS refuses them as expired), [`signals`]
//! (Ctrl-C that never skips teardown), [`progress`] (what the terminal shows).
//!
//! Beside the product, never imported by it: [`simulator`], a
//! SageMaker-compatible server (control plane, runtime, CloudWatch) with a
//! capacity model, for tests, demos and benchmarks; and [`bench`].

pub mod aws;
pub mod bench;
pub mod catalog;
pub mod cli;
pub mod cost;
pub mod credentials;
pub mod engine;
pub mod environment;
pub mod error;
pub mod format;
pub mod iam;
pub mod load;
pub mod plan;
pub mod progress;
pub mod record;
pub mod report;
pub mod result;
pub mod s3;
pub mod sagemaker;
pub mod scaling;
pub mod signals;
pub mod simulator;
pub mod step;
pub mod vocab;

pub use error::error_chain;
