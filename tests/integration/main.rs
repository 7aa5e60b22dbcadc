//! perfsize's integration tests: one binary (each extra test binary would link
//! the whole AWS SDK again). Every test starts its own simulator on
//! 127.0.0.1:0 and leaves nothing behind.

mod support;

mod async_inference;
mod cli;
mod faults;
mod generator;
mod load;
mod report;
mod scaling;
mod serverless;
mod serverless_sizing;
mod simulator;
mod sizing;
mod stream_load;
mod streaming;
