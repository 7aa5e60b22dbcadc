//! The pacer: where workers take the next request to send, and when.
//!
//! Open model: one thread releases each request of the [`schedule`] at its
//! due time. tokio's timers tick in whole milliseconds and `epoll_wait`
//! rounds up again, so a task that sleeps until its due time wakes 1–2 ms
//! late; a single thread sleeping on the kernel's high-resolution timer
//! (timer slack set to 1 ns) releases requests within tens of microseconds.
//! The hand-off is a queue plus a tokio semaphore with one permit per queued
//! request: the semaphore wakes one waiter in O(1).
//!
//! Closed loop: no schedule; a worker takes the next request the moment it
//! asks, until the step's length has passed — each request ends, the next
//! starts.
//!
//! The pacer also tells who set the pace. A request released while every
//! in-flight slot is busy and picked up late is a *late start* (the endpoint
//! is slow, or the bound too low). When released requests pile up beyond a
//! short backlog, the generator cannot send as fast as the schedule asks:
//! rather than queue without end (and collapse, and overrun the step), the
//! pacer lets the excess go unsent and counts it — sent at its own maximum,
//! the step still ends on time, and the result says the generator was the
//! limit.
//!
//! [`schedule`]: super::schedule

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, TryAcquireError};
use tokio_util::sync::CancellationToken;

use super::schedule::{RateProfile, Schedule};
use super::{LoadSpec, Pacing};

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
/// Released requests may wait for a worker this long (at the target rate)…
const BACKLOG: Duration = Duration::from_millis(50);
/// … and at least this many; beyond, the generator is at its maximum.
const MIN_BACKLOG: usize = 64;

/// One request to send.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    pub slot: u64,
    /// Seconds from the schedule's start.
    pub due: f64,
    pub intended: Instant,
    /// No in-flight slot was free when it fell due, and it started late.
    pub late_start: bool,
}

/// What the pacer thread and the workers share.
struct HandOff {
    queue: Mutex<VecDeque<Job>>,
    /// One permit per queued job, plus one per worker once the schedule is over.
    ready: Semaphore,
    over: AtomicBool,
    /// Requests due in the measured window (sent or not): what was offered.
    measured: AtomicU64,
    /// Requests released and taken by a worker, since the start.
    released: AtomicU64,
    taken: AtomicU64,
    /// Taken and not yet done: the requests in flight.
    in_flight: AtomicUsize,
    slots: usize,
    /// Measured requests never sent: with a slot free (the generator's
    /// limit), and with every slot busy (the endpoint's).
    not_sent: AtomicU64,
    no_slot: AtomicU64,
}

impl HandOff {
    fn new(slots: usize) -> HandOff {
        HandOff {
            queue: Mutex::new(VecDeque::new()),
            ready: Semaphore::new(0),
            over: AtomicBool::new(false),
            measured: AtomicU64::new(0),
            released: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            slots,
            not_sent: AtomicU64::new(0),
            no_slot: AtomicU64::new(0),
        }
    }

    fn push(&self, job: Job) {
        crate::error::lock(&self.queue).push_back(job);
        self.released.fetch_add(1, Ordering::AcqRel);
        self.ready.add_permits(1);
    }

    fn backlog(&self) -> u64 {
        self.released.load(Ordering::Acquire).saturating_sub(self.taken.load(Ordering::Acquire))
    }

    fn slots_full(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) >= self.slots
    }

    /// Wakes every waiting worker: nothing more is coming.
    fn finish(&self) {
        self.over.store(true, Ordering::Release);
        self.ready.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

/// How requests fall due.
enum Kind {
    /// Released by a thread on the schedule (taken by `start`).
    Open { pending: Mutex<Option<Schedule>>, profile: RateProfile, backlog: u64 },
    /// Taken on demand until `length` has passed.
    Closed { length: Duration },
}

pub struct Pacer {
    hand_off: Arc<HandOff>,
    start: Arc<OnceLock<Instant>>,
    /// Wakes the workers that asked before the start.
    started: Notify,
    kind: Kind,
    /// Seconds from the schedule's start at which measuring begins (the warm-up).
    measured_from: f64,
    cancel: CancellationToken,
}

impl Pacer {
    /// The pacer of `spec`: its open-model schedule (with its in-flight
    /// bound) or its closed loop.
    pub fn for_spec(spec: &LoadSpec, cancel: CancellationToken) -> Pacer {
        let kind = match &spec.pacing {
            Pacing::Open(open) => Kind::Open {
                pending: Mutex::new(Some(open.schedule())),
                profile: open.rate,
                backlog: ((open.rate.target() * BACKLOG.as_secs_f64()).ceil() as u64).max(MIN_BACKLOG as u64),
            },
            Pacing::Closed(closed) => Kind::Closed { length: closed.length },
        };
        Pacer {
            hand_off: Arc::new(HandOff::new(spec.max_in_flight())),
            start: Arc::new(OnceLock::new()),
            started: Notify::new(),
            kind,
            measured_from: spec.warmup.as_secs_f64(),
            cancel,
        }
    }

    /// Starts the clock (the first call only); an open schedule starts
    /// releasing requests shortly after.
    pub fn start(&self) {
        match &self.kind {
            Kind::Closed { .. } => {
                let _ = self.start.set(Instant::now());
                self.started.notify_waiters();
            }
            Kind::Open { pending, backlog, .. } => {
                let Some(schedule) = crate::error::lock(pending).take() else { return };
                let start = Instant::now() + START_DELAY;
                let _ = self.start.set(start);
                let (hand_off, cancel) = (Arc::clone(&self.hand_off), self.cancel.clone());
                let release = Release { start, measured_from: self.measured_from, backlog: *backlog };
                std::thread::Builder::new()
                    .name("perfsize-pacer".into())
                    .spawn(move || {
                        release.run(schedule, &hand_off, &cancel);
                        hand_off.finish();
                    })
                    .expect("the pacer thread starts");
            }
        }
    }

    /// When the schedule's second zero is, once started.
    pub fn start_time(&self) -> Option<Instant> {
        self.start.get().copied()
    }

    /// Requests that fell due in the measured window, sent or not: what was
    /// really offered (with Poisson arrivals, not the expected count).
    pub fn offered(&self) -> u64 {
        self.hand_off.measured.load(Ordering::Acquire)
    }

    /// Requests handed to workers since the start.
    pub fn released(&self) -> u64 {
        self.hand_off.taken.load(Ordering::Acquire)
    }

    /// Requests expected in second `second` of an open schedule; None in a
    /// closed loop, which offers what it sends.
    pub fn expected_in(&self, second: u32) -> Option<u64> {
        match &self.kind {
            Kind::Open { profile, .. } => {
                let s = second as f64;
                Some((profile.cumulative(s + 1.0) - profile.cumulative(s)).round() as u64)
            }
            Kind::Closed { .. } => None,
        }
    }

    /// Measured requests never sent: (generator at its maximum with a slot
    /// free, every in-flight slot busy).
    pub fn unsent(&self) -> (u64, u64) {
        let h = &self.hand_off;
        (h.not_sent.load(Ordering::Acquire), h.no_slot.load(Ordering::Acquire))
    }

    /// A request taken with [`Pacer::next`] is done: its slot is free.
    pub fn done(&self) {
        self.hand_off.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// The next request to send; None once the schedule is over.
    pub async fn next(&self) -> Option<Job> {
        let job = match &self.kind {
            Kind::Open { .. } => self.next_released().await?,
            Kind::Closed { length } => {
                let start = self.started().await;
                self.next_closed(start, *length, Instant::now())?
            }
        };
        let h = &self.hand_off;
        h.taken.fetch_add(1, Ordering::AcqRel);
        h.in_flight.fetch_add(1, Ordering::AcqRel);
        Some(job)
    }

    async fn next_released(&self) -> Option<Job> {
        let h = &self.hand_off;
        // The semaphore hands new permits to waiting workers first, so a
        // permit free for the taking belongs to a job that found nobody waiting.
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
        let mut job = crate::error::lock(&h.queue).pop_front()?;
        job.late_start = job.late_start && waited_in_queue && Instant::now() > job.intended + LATE;
        Some(job)
    }

    /// When the clock started, once it has.
    async fn started(&self) -> Instant {
        loop {
            let notified = self.started.notified();
            futures::pin_mut!(notified);
            // Registered before looking, so a start in between is not missed.
            notified.as_mut().enable();
            if let Some(start) = self.start_time() {
                return start;
            }
            notified.await;
        }
    }

    /// The closed loop's next request, asked for at `now` of a loop started at `start`.
    fn next_closed(&self, start: Instant, length: Duration, now: Instant) -> Option<Job> {
        if now >= start + length || self.cancel.is_cancelled() {
            return None;
        }
        let due = (now - start).as_secs_f64();
        if due >= self.measured_from {
            self.hand_off.measured.fetch_add(1, Ordering::AcqRel);
        }
        let slot = self.hand_off.released.fetch_add(1, Ordering::AcqRel);
        Some(Job { slot, due, intended: now, late_start: false })
    }
}

/// The pacer thread's part of an open schedule.
struct Release {
    start: Instant,
    measured_from: f64,
    /// Most released requests that may wait for a worker.
    backlog: u64,
}

impl Release {
    fn run(&self, mut schedule: Schedule, hand_off: &HandOff, cancel: &CancellationToken) {
        fine_timer_slack();
        while let Some((slot, due)) = schedule.claim() {
            let intended = self.start + Duration::from_secs_f64(due);
            if !sleep_until(intended.checked_sub(HAND_OFF).unwrap_or(intended), cancel) {
                return;
            }
            let measured = due >= self.measured_from;
            if measured {
                hand_off.measured.fetch_add(1, Ordering::AcqRel);
            }
            let slots_full = hand_off.slots_full();
            match self.admit(hand_off.backlog(), slots_full) {
                Admit::Release => hand_off.push(Job { slot, due, intended, late_start: slots_full }),
                Admit::Unsent(_) if !measured => {}
                Admit::Unsent(Unsent::GeneratorLimit) => _ = hand_off.not_sent.fetch_add(1, Ordering::AcqRel),
                Admit::Unsent(Unsent::NoSlot) => _ = hand_off.no_slot.fetch_add(1, Ordering::AcqRel),
            }
        }
    }

    /// Whether a request falling due with `backlog` released requests not
    /// yet taken is released, or goes unsent and why.
    fn admit(&self, backlog: u64, slots_full: bool) -> Admit {
        if backlog < self.backlog {
            Admit::Release
        } else if slots_full {
            Admit::Unsent(Unsent::NoSlot)
        } else {
            // Nobody took the last `backlog` requests although slots were
            // free: sending this one too would only queue it behind them.
            Admit::Unsent(Unsent::GeneratorLimit)
        }
    }
}

/// What becomes of a request that falls due.
#[derive(Debug, PartialEq, Eq)]
enum Admit {
    Release,
    Unsent(Unsent),
}

/// Why a request that fell due was never sent.
#[derive(Debug, PartialEq, Eq)]
enum Unsent {
    /// Workers with free slots did not keep up: the generator's own maximum.
    GeneratorLimit,
    /// Every in-flight slot was busy: the endpoint is slow (or the bound low).
    NoSlot,
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
    use crate::load::testing::spec;
    use crate::load::{ClosedLoop, Pacing};

    /// Waits (without a deadline) until the pacer thread has released its whole schedule.
    async fn until_over(pacer: &Pacer) {
        while !pacer.hand_off.over.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn releases_every_slot_in_order_then_ends() {
        let pacer = Pacer::for_spec(&spec(200.0, 0.1, 0.05, 100), CancellationToken::new());
        pacer.start();
        let mut slots = Vec::new();
        while let Some(job) = pacer.next().await {
            slots.push(job.slot);
            pacer.done();
        }
        assert_eq!(slots, (0..20).collect::<Vec<_>>());
        assert_eq!(pacer.offered(), 10, "half the schedule falls after the warm-up");
        assert_eq!(pacer.unsent(), (0, 0));
    }

    #[tokio::test]
    async fn a_job_that_finds_every_slot_busy_and_waits_is_a_late_start() {
        // One slot, held by the first job until everything is due.
        let pacer = Pacer::for_spec(&spec(1000.0, 0.01, 0.0, 1), CancellationToken::new());
        pacer.start();
        let first = pacer.next().await.unwrap();
        assert!(!first.late_start);
        until_over(&pacer).await;
        pacer.done();
        let mut late = 0;
        while let Some(job) = pacer.next().await {
            late += job.late_start as u32;
            pacer.done();
        }
        assert_eq!(late, 9);
    }

    #[test]
    fn past_the_backlog_a_request_goes_unsent_and_says_whose_limit_it_met() {
        let release = Release { start: Instant::now(), measured_from: 0.0, backlog: 100 };
        assert_eq!(release.admit(99, true), Admit::Release, "a short backlog waits, slots or not");
        assert_eq!(release.admit(100, false), Admit::Unsent(Unsent::GeneratorLimit));
        assert_eq!(release.admit(100, true), Admit::Unsent(Unsent::NoSlot));
    }

    #[tokio::test]
    async fn requests_nobody_takes_beyond_the_backlog_are_counted_not_sent() {
        // 2,000 due in a second, nobody taking any, every slot free: 100
        // (50 ms worth) wait, the rest go unsent, and the schedule still ends.
        let pacer = Pacer::for_spec(&spec(2000.0, 1.0, 0.0, 10_000), CancellationToken::new());
        pacer.start();
        until_over(&pacer).await;
        assert_eq!(pacer.unsent(), (1900, 0));
        assert_eq!(pacer.offered(), 2000);
    }

    #[test]
    fn a_closed_loop_hands_out_requests_until_its_length_has_passed() {
        let mut closed = spec(1.0, 2.0, 0.5, 4);
        closed.pacing = Pacing::Closed(ClosedLoop { concurrency: 4, length: Duration::from_secs(2) });
        let pacer = Pacer::for_spec(&closed, CancellationToken::new());
        let (start, length) = (Instant::now(), Duration::from_secs(2));
        for k in 0..10u64 {
            let job = pacer.next_closed(start, length, start + Duration::from_millis(100 * k)).unwrap();
            assert_eq!((job.slot, job.late_start), (k, false));
            assert!((job.due - k as f64 / 10.0).abs() < 1e-9);
        }
        assert_eq!(pacer.expected_in(0), None, "a closed loop offers what it sends");
        assert_eq!(pacer.offered(), 5, "the last five fall after the warm-up");
        assert!(pacer.next_closed(start, length, start + length).is_none());
    }

    #[tokio::test]
    async fn a_worker_that_asks_before_the_start_waits_for_it() {
        let mut closed = spec(1.0, 2.0, 0.0, 2);
        closed.pacing = Pacing::Closed(ClosedLoop { concurrency: 2, length: Duration::from_secs(2) });
        let pacer = Arc::new(Pacer::for_spec(&closed, CancellationToken::new()));
        let early = tokio::spawn({
            let pacer = Arc::clone(&pacer);
            async move { pacer.next().await.map(|job| job.slot) }
        });
        tokio::task::yield_now().await;
        pacer.start();
        assert_eq!(early.await.unwrap(), Some(0));
    }
}
