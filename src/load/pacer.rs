//! The pacer: where workers take the next request to send, and when.
//!
//! Open model: one task releases each request of the [`schedule`] at its
//! due time, sleeping on a [`PreciseTimer`] (tokio's own timers would be a
//! millisecond or two late).
//!
//! Each wake-up costs context switches, which at a few thousand requests a
//! second are most of a request's CPU. So the pacer wakes at most once a
//! [`TICK`] and releases, in one batch and with one wake-up of one worker,
//! every request due within a tick of then: each is sent at its due time or
//! up to a millisecond before it, never late by design (a request sent
//! early counts its latency from its actual send, so nothing is hidden; oha,
//! for comparison, releases on tokio's millisecond timer, late, and starts
//! its clock at the release). Apart by more than a tick, requests are
//! released one by one, each on time. The woken worker takes what the batch
//! holds while it has free slots, and wakes another when it has none.
//!
//! Closed loop: no schedule; a worker takes the next request the moment it
//! asks, until the step's length has passed — each request ends, the next
//! starts.
//!
//! The pacer also tells who set the pace. A request released while every
//! in-flight slot is busy and picked up late is a *late start* (the endpoint
//! is slow, or the bound too low): it waits, and its wait counts in its
//! latency. When a released request has waited longer than [`BACKLOG`]
//! although slots were free, the generator cannot send as fast as the
//! schedule asks: rather than queue without end (and collapse, and overrun
//! the step), the pacer lets what falls due meanwhile go unsent and counts
//! it — sent at its own maximum, the step still ends on time, and the
//! result says the generator was the limit.
//!
//! [`schedule`]: super::schedule

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::schedule::{RateProfile, Schedule};
use super::timer::PreciseTimer;
use super::{LoadSpec, Pacing};

/// Requests are released this much before they are due: the time it takes a
/// waiting user to wake up. Sending a little early does not bias latency,
/// which is measured from the earlier of the due and the actual send.
const HAND_OFF: Duration = Duration::from_micros(30);
/// The pacer wakes at most this often, and releases every request due
/// within this of its wake-up.
const TICK: Duration = Duration::from_millis(1);
/// Between the pacer's start and the first due time.
const START_DELAY: Duration = Duration::from_millis(100);
/// Picked up this long after its due time, a request counts as a late start.
const LATE: Duration = Duration::from_millis(1);
/// Released requests may wait for a worker this long; beyond, the
/// generator is at its maximum.
const BACKLOG: Duration = Duration::from_millis(50);

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

/// What the pacer task and the workers share.
struct HandOff {
    queue: Mutex<VecDeque<Job>>,
    /// Wakes a worker when a batch is queued (and all of them when the schedule is over).
    ready: Notify,
    over: AtomicBool,
    /// Requests due in the measured window (sent or not): what was offered.
    measured: AtomicU64,
    /// Requests released and taken by a worker, since the start.
    released: AtomicU64,
    taken: AtomicU64,
    /// Taken and not yet done: the requests in flight.
    in_flight: AtomicUsize,
    slots: usize,
    /// Measured requests never sent although a slot was free: the generator's limit.
    not_sent: AtomicU64,
}

impl HandOff {
    fn new(slots: usize) -> HandOff {
        HandOff {
            queue: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            over: AtomicBool::new(false),
            measured: AtomicU64::new(0),
            released: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            slots,
            not_sent: AtomicU64::new(0),
        }
    }

    /// Queues `batch` (emptying it) and wakes one worker to take it.
    fn push(&self, batch: &mut Vec<Job>) {
        if batch.is_empty() {
            return;
        }
        let released = batch.len() as u64;
        crate::error::lock(&self.queue).extend(batch.drain(..));
        self.released.fetch_add(released, Ordering::AcqRel);
        self.ready.notify_one();
    }

    fn backlog(&self) -> u64 {
        self.released.load(Ordering::Acquire).saturating_sub(self.taken.load(Ordering::Acquire))
    }

    /// How long the oldest released request has been waiting for a worker at `now`.
    fn oldest_wait(&self, now: Instant) -> Duration {
        crate::error::lock(&self.queue).front().map_or(Duration::ZERO, |job| now.saturating_duration_since(job.intended))
    }

    fn slots_full(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) >= self.slots
    }

    /// Wakes every waiting worker: nothing more is coming.
    fn finish(&self) {
        self.over.store(true, Ordering::Release);
        self.ready.notify_waiters();
    }
}

/// How requests fall due.
enum Kind {
    /// Released by a task on the schedule (taken by `start`).
    Open { pending: Mutex<Option<Schedule>>, profile: RateProfile },
    /// Taken on demand until `length` has passed. The first request of
    /// each of the `streams` opens at its own time, spread over the
    /// warm-up: streams opened together stay in step (prefills together,
    /// decodes together) and hide how each request's work delays the others.
    Closed { length: Duration, streams: u64, opened: AtomicU64 },
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
            Pacing::Open(open) => Kind::Open { pending: Mutex::new(Some(open.schedule())), profile: open.rate },
            Pacing::Closed(closed) => {
                Kind::Closed { length: closed.length, streams: closed.concurrency as u64, opened: AtomicU64::new(0) }
            }
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
            Kind::Open { pending, .. } => {
                let Some(schedule) = crate::error::lock(pending).take() else { return };
                let start = Instant::now() + START_DELAY;
                let _ = self.start.set(start);
                let (hand_off, cancel) = (Arc::clone(&self.hand_off), self.cancel.clone());
                let release = Release { start, measured_from: self.measured_from };
                tokio::spawn(async move {
                    tokio::select! {
                        () = release.run(schedule, &hand_off) => {}
                        () = cancel.cancelled() => {}
                    }
                    hand_off.finish();
                });
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

    /// Requests taken off the queue (closed loop: handed out) since the start.
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

    /// Measured requests never sent: the generator was at its maximum.
    pub fn not_sent(&self) -> u64 {
        self.hand_off.not_sent.load(Ordering::Acquire)
    }

    /// A request taken with [`Pacer::next`] is done: its slot is free.
    pub fn done(&self) {
        self.hand_off.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// The next request to send; None once the schedule is over.
    pub async fn next(&self) -> Option<Job> {
        let job = match &self.kind {
            Kind::Open { .. } => self.next_released().await?,
            Kind::Closed { length, streams, opened } => {
                let start = self.started().await;
                let k = opened.fetch_add(1, Ordering::AcqRel);
                if k < *streams {
                    let opens = start + Duration::from_secs_f64(self.measured_from * k as f64 / *streams as f64);
                    tokio::select! {
                        () = tokio::time::sleep_until(opens.into()) => {}
                        () = self.cancel.cancelled() => return None,
                    }
                }
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
        loop {
            let notified = h.ready.notified();
            futures::pin_mut!(notified);
            // Registered before looking, so a batch queued in between is not missed.
            notified.as_mut().enable();
            if let Some(job) = self.pop_fresh() {
                return Some(job);
            }
            if h.over.load(Ordering::Acquire) {
                return None;
            }
            notified.await;
        }
    }

    /// The oldest released request, passing over those that waited longer
    /// than the backlog allows with slots free (counted unsent, as the pacer
    /// counts what it never releases). One that waited for a slot is sent
    /// late: its wait is the endpoint's, and counts in its latency.
    fn pop_fresh(&self) -> Option<Job> {
        let h = &self.hand_off;
        let now = Instant::now();
        let mut queue = crate::error::lock(&h.queue);
        while let Some(mut job) = queue.pop_front() {
            let waited = now.saturating_duration_since(job.intended);
            if job.late_start || waited <= BACKLOG {
                job.late_start = job.late_start && waited > LATE;
                return Some(job);
            }
            h.taken.fetch_add(1, Ordering::AcqRel);
            if job.due >= self.measured_from {
                h.not_sent.fetch_add(1, Ordering::AcqRel);
            }
        }
        None
    }

    /// A worker with no free slot calls this: if released requests wait,
    /// another worker is woken to take them.
    pub fn pass_on(&self) {
        if self.hand_off.backlog() > 0 {
            self.hand_off.ready.notify_one();
        }
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

/// The pacer task's part of an open schedule.
struct Release {
    start: Instant,
    measured_from: f64,
}

impl Release {
    async fn run(&self, mut schedule: Schedule, hand_off: &HandOff) {
        let timer = PreciseTimer::new();
        let mut batch = Vec::new();
        let mut next = schedule.claim();
        let mut last_wake = self.start.checked_sub(TICK).unwrap_or(self.start);
        while let Some((_, due)) = next {
            let first = self.intended(due);
            timer.sleep_until(first.checked_sub(HAND_OFF).unwrap_or(first).max(last_wake + TICK)).await;
            last_wake = Instant::now();
            let waited = hand_off.oldest_wait(last_wake);
            let slots_full = hand_off.slots_full();
            // Everything due within a tick of now goes in this wake-up's batch.
            while let Some((slot, due)) = next.filter(|&(_, due)| self.intended(due) < last_wake + TICK) {
                let job = Job { slot, due, intended: self.intended(due), late_start: slots_full };
                // A pacer that woke late is behind as well as a queue nobody took.
                let behind = waited.max(last_wake.saturating_duration_since(job.intended));
                self.release(job, self.admit(behind, slots_full), hand_off, &mut batch);
                next = schedule.claim();
            }
            hand_off.push(&mut batch);
        }
    }

    fn intended(&self, due: f64) -> Instant {
        self.start + Duration::from_secs_f64(due)
    }

    /// Adds `job` to `batch`, or counts it unsent, as `admit` decided.
    fn release(&self, job: Job, admit: Admit, hand_off: &HandOff, batch: &mut Vec<Job>) {
        let measured = job.due >= self.measured_from;
        if measured {
            hand_off.measured.fetch_add(1, Ordering::AcqRel);
        }
        match admit {
            Admit::Release => batch.push(job),
            Admit::Unsent if measured => _ = hand_off.not_sent.fetch_add(1, Ordering::AcqRel),
            Admit::Unsent => {}
        }
    }

    /// Whether a request falling due `behind` (the longest a released
    /// request has waited, or the pacer's own lateness) is released.
    fn admit(&self, behind: Duration, slots_full: bool) -> Admit {
        // Waiting for a slot is the endpoint's doing: the request waits, and
        // its wait counts in its latency. Workers with free slots that did
        // not take what fell due BACKLOG ago are the generator at its limit:
        // sending this one too would only queue it behind.
        if behind <= BACKLOG || slots_full { Admit::Release } else { Admit::Unsent }
    }
}

/// What becomes of a request that falls due.
#[derive(Debug, PartialEq, Eq)]
enum Admit {
    Release,
    /// The generator is at its maximum: not sent, and counted.
    Unsent,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::testing::spec;
    use crate::load::{ClosedLoop, Pacing};

    /// Waits (without a deadline) until the pacer task has released its whole schedule.
    async fn until_over(pacer: &Pacer) {
        while !pacer.hand_off.over.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Every slot of the schedule is released in order, or — should this
    /// thread be descheduled so long that releases pile up past the backlog
    /// on a busy machine — given up (counted unsent when it was measured);
    /// none is lost from the count, and the pacer ends.
    #[tokio::test]
    async fn releases_every_slot_in_order_then_ends() {
        let pacer = Pacer::for_spec(&spec(200.0, 0.1, 0.05, 100), CancellationToken::new());
        pacer.start();
        let mut slots = Vec::new();
        while let Some(job) = pacer.next().await {
            slots.push(job.slot);
            pacer.done();
        }
        assert!(slots.windows(2).all(|w| w[0] < w[1]), "in order: {slots:?}");
        assert!(slots.iter().all(|s| *s < 20), "{slots:?}");
        let measured_sent = slots.iter().filter(|s| **s >= 10).count() as u64;
        assert_eq!(measured_sent + pacer.not_sent(), 10, "every measured slot is sent or counted: {slots:?}");
        assert!(slots.len() >= 10, "a busy machine delays a few, not most: {slots:?}");
        assert_eq!(pacer.offered(), 10, "half the schedule falls after the warm-up");
    }

    #[tokio::test]
    async fn a_job_that_finds_every_slot_busy_and_waits_is_a_late_start() {
        // One slot, held by the first job until everything is due (10 ms
        // apart, so that each is released on its own).
        let pacer = Pacer::for_spec(&spec(100.0, 0.1, 0.0, 1), CancellationToken::new());
        pacer.start();
        // Whether the first job found the worker waiting depends on how soon
        // this thread got there (a busy machine): only the nine behind it are pinned.
        let _first = pacer.next().await.unwrap();
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
    fn past_the_backlog_a_request_goes_unsent_unless_it_waits_for_a_slot() {
        let release = Release { start: Instant::now(), measured_from: 0.0 };
        assert_eq!(release.admit(BACKLOG, false), Admit::Release, "a short wait is fine");
        let behind = BACKLOG + Duration::from_millis(1);
        assert_eq!(release.admit(behind, false), Admit::Unsent, "free slots, nobody taking: the generator's limit");
        assert_eq!(release.admit(behind, true), Admit::Release, "every slot busy: the endpoint's wait, measured");
    }

    #[tokio::test]
    async fn requests_nobody_takes_beyond_the_backlog_are_counted_not_sent() {
        // 1,000 due in half a second, nobody taking any, every slot free:
        // what falls due in the first 50 ms or so waits (about 100; fewer
        // when a busy machine wakes the pacer late), the rest go unsent,
        // and the schedule still ends.
        let pacer = Pacer::for_spec(&spec(2000.0, 0.5, 0.0, 10_000), CancellationToken::new());
        pacer.start();
        until_over(&pacer).await;
        let not_sent = pacer.not_sent();
        assert_eq!(pacer.offered(), 1000);
        let waiting = 1000 - not_sent;
        assert!(waiting < 500, "about 50 ms worth waits, never most of the schedule: {waiting}");
        assert_eq!(pacer.hand_off.backlog(), waiting);
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
    async fn a_closed_loops_streams_open_spread_over_the_warm_up_then_follow_each_other() {
        let mut closed = spec(1.0, 3.0, 2.0, 4);
        closed.pacing = Pacing::Closed(ClosedLoop { concurrency: 4, length: Duration::from_secs(3) });
        let pacer = Pacer::for_spec(&closed, CancellationToken::new());
        pacer.start();
        let t0 = Instant::now();
        let mut opened = Vec::new();
        for _ in 0..6 {
            pacer.next().await.expect("within the loop's length");
            opened.push(t0.elapsed());
        }
        // Sleeps end no earlier than asked: lower bounds hold on a busy machine.
        for (k, at) in opened.iter().take(4).enumerate() {
            assert!(*at >= Duration::from_millis(500 * k as u64), "stream {k} opened at {at:?}");
        }
        assert!(opened[4] - opened[3] < Duration::from_millis(400), "a stream's next request follows at once: {opened:?}");
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
