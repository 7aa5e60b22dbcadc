//! The pacer: one thread that releases each request at its due time and
//! hands it to an idle goose user.
//!
//! tokio's timers tick in whole milliseconds and `epoll_wait` rounds up
//! again, so a task that sleeps until its due time wakes 1–2 ms late. A
//! single thread sleeping on the kernel's high-resolution timer (timer slack
//! set to 1 ns) releases requests within tens of microseconds instead, and
//! thousands of idle users cost nothing while they wait.
//!
//! It also tells when the in-flight bound is hit: a request that was already
//! waiting in the queue when a user came for it found no user free at its
//! due time — a late start.
//!
//! The hand-off is a queue plus a tokio semaphore with one permit per queued
//! request: the semaphore wakes one waiter in O(1) however many thousand
//! users wait (a channel that scans its waiting receivers on every message
//! would cost more per request than the request itself).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, TryAcquireError};
use tokio_util::sync::CancellationToken;

use super::schedule::Schedule;

/// Requests are released this much before they are due: the time it takes a
/// waiting user to wake up. Sending a little early does not bias latency,
/// which is measured from the earlier of the due and the actual send.
const HAND_OFF: Duration = Duration::from_micros(30);
/// Between the pacer's start and the first due time.
const START_DELAY: Duration = Duration::from_millis(100);
/// Picked up this long after its due time, a request counts as a late start.
const LATE: Duration = Duration::from_millis(1);
/// The pacer checks for cancellation at least this often while it sleeps.
const CANCEL_CHECK: Duration = Duration::from_millis(20);

/// One request to send.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    pub slot: u64,
    /// Seconds from the schedule's start.
    pub due: f64,
    pub intended: Instant,
    /// No user was free when it fell due: every in-flight slot was busy.
    pub late_start: bool,
}

/// What the pacer thread and the users share.
struct HandOff {
    queue: Mutex<VecDeque<Job>>,
    /// One permit per queued job, plus one per user once the schedule is over.
    ready: Semaphore,
    over: AtomicBool,
    /// Jobs released that are due at or after the measured window's start.
    measured: AtomicU64,
}

impl HandOff {
    fn push(&self, job: Job) {
        self.queue.lock().expect("pacer queue").push_back(job);
        self.ready.add_permits(1);
    }

    /// Wakes every waiting user: nothing more is coming.
    fn finish(&self) {
        self.over.store(true, Ordering::Release);
        self.ready.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

pub struct Pacer {
    hand_off: Arc<HandOff>,
    start: Arc<OnceLock<Instant>>,
    pending: Mutex<Option<Schedule>>,
    /// Seconds from the schedule's start at which measuring begins (the warm-up).
    measured_from: f64,
    cancel: CancellationToken,
}

impl Pacer {
    /// A pacer for `schedule`; requests due before `warmup` are released but
    /// not counted as offered.
    pub fn new(schedule: Schedule, warmup: Duration, cancel: CancellationToken) -> Pacer {
        let hand_off = HandOff {
            queue: Mutex::new(VecDeque::new()),
            ready: Semaphore::new(0),
            over: AtomicBool::new(false),
            measured: AtomicU64::new(0),
        };
        Pacer {
            hand_off: Arc::new(hand_off),
            start: Arc::new(OnceLock::new()),
            pending: Mutex::new(Some(schedule)),
            measured_from: warmup.as_secs_f64(),
            cancel,
        }
    }

    /// Starts releasing requests (the first call only).
    pub fn start(&self) {
        let Some(schedule) = self.pending.lock().expect("pacer lock").take() else { return };
        let start = Instant::now() + START_DELAY;
        let _ = self.start.set(start);
        let (hand_off, cancel, measured_from) = (Arc::clone(&self.hand_off), self.cancel.clone(), self.measured_from);
        std::thread::Builder::new()
            .name("perfsize-pacer".into())
            .spawn(move || {
                release(schedule, start, measured_from, &hand_off, &cancel);
                hand_off.finish();
            })
            .expect("the pacer thread starts");
    }

    /// When the schedule's second zero is, once started.
    pub fn start_time(&self) -> Option<Instant> {
        self.start.get().copied()
    }

    /// Requests released so far that fall in the measured window: what was
    /// really offered (with Poisson arrivals, not the expected count).
    pub fn offered(&self) -> u64 {
        self.hand_off.measured.load(Ordering::Acquire)
    }

    /// The next request to send; None once the schedule is over.
    pub async fn next(&self) -> Option<Job> {
        let h = &self.hand_off;
        // The semaphore hands new permits to waiting users first, so a permit
        // free for the taking belongs to a job that found nobody waiting.
        let waited_in_queue = match h.ready.try_acquire() {
            Ok(permit) => {
                permit.forget();
                true
            }
            Err(TryAcquireError::NoPermits) => {
                h.ready.acquire().await.ok()?.forget();
                false
            }
            Err(TryAcquireError::Closed) => return None,
        };
        // Every permit stands for a queued job until the schedule is over.
        let mut job = h.queue.lock().expect("pacer queue").pop_front()?;
        job.late_start = waited_in_queue && Instant::now() > job.intended + LATE;
        Some(job)
    }
}

fn release(mut schedule: Schedule, start: Instant, measured_from: f64, hand_off: &HandOff, cancel: &CancellationToken) {
    fine_timer_slack();
    while let Some((slot, due)) = schedule.claim() {
        let intended = start + Duration::from_secs_f64(due);
        if !sleep_until(intended.checked_sub(HAND_OFF).unwrap_or(intended), cancel) {
            return;
        }
        if due >= measured_from {
            hand_off.measured.fetch_add(1, Ordering::AcqRel);
        }
        hand_off.push(Job { slot, due, intended, late_start: false });
    }
}

/// Sleeps until `at` unless cancelled first; true when `at` was reached.
fn sleep_until(at: Instant, cancel: &CancellationToken) -> bool {
    loop {
        if cancel.is_cancelled() {
            return false;
        }
        let now = Instant::now();
        if now >= at {
            return true;
        }
        std::thread::sleep((at - now).min(CANCEL_CHECK));
    }
}

/// Asks the kernel to wake this thread on time rather than within its
/// default 50 µs slack.
fn fine_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and affects only
    // the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::schedule::{Arrivals, RateProfile};

    #[tokio::test]
    async fn releases_every_slot_in_order_then_ends() {
        let schedule = Schedule::new(RateProfile::new(200.0, None, Duration::from_millis(100)), Arrivals::Uniform, 1);
        let pacer = Pacer::new(schedule, Duration::from_millis(50), CancellationToken::new());
        pacer.start();
        let mut slots = Vec::new();
        while let Some(job) = pacer.next().await {
            slots.push(job.slot);
        }
        assert_eq!(slots, (0..20).collect::<Vec<_>>());
        assert_eq!(pacer.offered(), 10, "half the schedule falls after the warm-up");
    }

    #[tokio::test]
    async fn every_job_nobody_was_waiting_for_is_a_late_start() {
        let schedule = Schedule::new(RateProfile::new(1000.0, None, Duration::from_millis(10)), Arrivals::Uniform, 1);
        let pacer = Pacer::new(schedule, Duration::ZERO, CancellationToken::new());
        pacer.start();
        // Every user is busy until everything is due: all ten start late.
        tokio::time::sleep(START_DELAY + Duration::from_millis(50)).await;
        let mut late = 0;
        while let Some(job) = pacer.next().await {
            late += job.late_start as u32;
        }
        assert_eq!(late, 10);
    }
}
