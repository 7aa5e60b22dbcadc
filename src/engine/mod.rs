//! The engine the commands call. A [`Session`] holds what a command works
//! with (clients, timing, interrupts); the jobs run on it and return typed
//! outcomes, and the CLI only parses, validates, calls and maps to an exit
//! code:
//!
//! - [`sizing`]: the sizing run — deploy, drive, judge, record, conclude.
//! - [`load_step`]: one judged load step at an endpoint (`perfsize load`).
//! - [`shards`]: the shards of one load step, run by several processes,
//!   merged into its one result (`perfsize merge`).
//!
//! Both reach an endpoint through the two seams: the environment manager
//! ([`crate::environment::Environment`], *what is deployed*) and a load
//! driver ([`crate::load::Driver`], *how a request is sent and measured*).

pub mod load_step;
mod session;
pub mod shards;
pub mod sizing;

pub use session::{Pace, Session, SessionError};
