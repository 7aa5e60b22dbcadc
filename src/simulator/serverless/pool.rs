//! The workers of one serverless variant: every request in flight holds one;
//! a request that finds no warm worker gets a cold one (and pays the model's
//! set-up time); an on-demand worker idle for the profile's idle time goes
//! cold; provisioned workers stay warm; and past MaxConcurrency requests are
//! throttled. The clock is the caller's (`now` in every call), so tests run
//! it on synthetic instants.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// The request would exceed the variant's MaxConcurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled;

/// How warm the worker a request got was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// It must load the model first.
    Cold,
    Warm,
}

#[derive(Debug)]
struct Workers {
    in_flight: u32,
    /// Provisioned workers not serving: always warm.
    provisioned_free: u32,
    /// On-demand workers not serving, with when each went idle, the most
    /// recently idle last (it is reused first, so the others may expire).
    idle_since: Vec<Instant>,
}

/// The workers of one serverless variant.
#[derive(Debug)]
pub struct Pool {
    max_concurrency: u32,
    idle_timeout: Duration,
    workers: Mutex<Workers>,
}

/// A worker held by one request, given back by [`Execution::finish`] — or,
/// if the request is dropped midway, when the execution is dropped.
#[derive(Debug)]
pub struct Execution<'p> {
    pool: &'p Pool,
    provisioned: bool,
    released: bool,
    pub start: Start,
}

impl Execution<'_> {
    /// The request is done at `now`: its worker is idle (and warm) from then.
    pub fn finish(mut self, now: Instant) {
        self.release(Some(now));
    }

    /// The worker never loaded the model (it does not fit): the place is
    /// free again, and no warm worker is left behind.
    pub fn abandon(mut self) {
        self.release(None);
    }

    /// Gives the place back; an on-demand worker stays warm from `warm_since`.
    fn release(&mut self, warm_since: Option<Instant>) {
        if std::mem::replace(&mut self.released, true) {
            return;
        }
        let mut workers = self.pool.lock();
        workers.in_flight -= 1;
        if self.provisioned {
            workers.provisioned_free += 1;
        } else if let Some(since) = warm_since {
            workers.idle_since.push(since);
        }
    }
}

impl Drop for Execution<'_> {
    fn drop(&mut self) {
        self.release(Some(Instant::now()));
    }
}

impl Pool {
    pub fn new(max_concurrency: u32, provisioned: u32, idle_timeout: Duration) -> Pool {
        let workers = Workers { in_flight: 0, provisioned_free: provisioned.min(max_concurrency), idle_since: Vec::new() };
        Pool { max_concurrency, idle_timeout, workers: Mutex::new(workers) }
    }

    fn lock(&self) -> MutexGuard<'_, Workers> {
        self.workers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A worker for a request arriving at `now`: a provisioned one if free,
    /// else the most recently idle warm one, else a cold one — or Throttled
    /// at MaxConcurrency.
    pub fn acquire(&self, now: Instant) -> Result<Execution<'_>, Throttled> {
        let mut workers = self.lock();
        if workers.in_flight >= self.max_concurrency {
            return Err(Throttled);
        }
        workers.in_flight += 1;
        let execution = |provisioned, start| Execution { pool: self, provisioned, released: false, start };
        if workers.provisioned_free > 0 {
            workers.provisioned_free -= 1;
            return Ok(execution(true, Start::Warm));
        }
        self.forget_expired(&mut workers, now);
        let start = if workers.idle_since.pop().is_some() { Start::Warm } else { Start::Cold };
        Ok(execution(false, start))
    }

    /// Drops the on-demand workers idle for the idle time at `now`: they went cold.
    fn forget_expired(&self, workers: &mut Workers, now: Instant) {
        workers.idle_since.retain(|&since| now.saturating_duration_since(since) < self.idle_timeout);
    }

    /// Warm workers not serving at `now` (provisioned ones included).
    #[cfg(test)]
    fn warm_idle(&self, now: Instant) -> u32 {
        let mut workers = self.lock();
        self.forget_expired(&mut workers, now);
        workers.provisioned_free + workers.idle_since.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(60);

    fn after(t0: Instant, seconds: u64) -> Instant {
        t0 + Duration::from_secs(seconds)
    }

    #[test]
    fn the_first_request_starts_cold_and_the_next_reuses_the_warm_worker() {
        let (pool, t0) = (Pool::new(4, 0, IDLE), Instant::now());
        let first = pool.acquire(t0).unwrap();
        assert_eq!(first.start, Start::Cold);
        first.finish(after(t0, 1));
        assert_eq!(pool.acquire(after(t0, 60)).unwrap().start, Start::Warm, "idle 59 s: still warm");
    }

    #[test]
    fn concurrent_requests_each_need_a_worker_of_their_own() {
        let (pool, t0) = (Pool::new(4, 0, IDLE), Instant::now());
        pool.acquire(t0).unwrap().finish(t0);
        let warm = pool.acquire(t0).unwrap();
        let cold = pool.acquire(t0).unwrap();
        assert_eq!((warm.start, cold.start), (Start::Warm, Start::Cold), "one warm worker serves one request at a time");
    }

    #[test]
    fn an_idle_worker_goes_cold_after_the_idle_time() {
        let (pool, t0) = (Pool::new(4, 0, IDLE), Instant::now());
        pool.acquire(t0).unwrap().finish(t0);
        assert_eq!(pool.warm_idle(after(t0, 59)), 1);
        assert_eq!(pool.warm_idle(after(t0, 60)), 0);
        assert_eq!(pool.acquire(after(t0, 60)).unwrap().start, Start::Cold);
    }

    #[test]
    fn provisioned_workers_never_go_cold() {
        let (pool, t0) = (Pool::new(4, 2, IDLE), Instant::now());
        let late = after(t0, 6000);
        let held: Vec<_> = (0..2).map(|_| pool.acquire(late).unwrap()).collect();
        assert!(held.iter().all(|e| e.start == Start::Warm));
        let on_demand = pool.acquire(late).unwrap();
        assert_eq!(on_demand.start, Start::Cold, "past the provisioned ones, on demand");
        on_demand.finish(late);
        held.into_iter().for_each(|e| e.finish(late));
        assert_eq!(pool.warm_idle(after(late, 6000)), 2, "the on-demand worker expired, the provisioned ones did not");
    }

    #[test]
    fn an_abandoned_worker_frees_its_place_but_stays_cold() {
        let (pool, t0) = (Pool::new(1, 0, IDLE), Instant::now());
        pool.acquire(t0).unwrap().abandon();
        assert_eq!(pool.acquire(t0).unwrap().start, Start::Cold);
    }

    #[test]
    fn requests_past_max_concurrency_are_throttled() {
        let (pool, t0) = (Pool::new(2, 1, IDLE), Instant::now());
        let held: Vec<_> = (0..2).map(|_| pool.acquire(t0).unwrap()).collect();
        assert_eq!(pool.acquire(t0).unwrap_err(), Throttled);
        drop(held);
        assert!(pool.acquire(t0).is_ok(), "capacity is back once requests finish, however they finish");
    }
}
