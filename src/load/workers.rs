//! The goose run loop every HTTP driver shares, open-model or closed-loop.
//!
//! goose owns the users, the scenario and its one transaction; each user is
//! a *worker* that carries a share of the step's in-flight slots: it takes
//! the next request from the [`Pacer`] whenever one of its slots is free,
//! keeps its requests in flight side by side, and records each answer into
//! a recorder lane of its own. So the number of users follows the machine
//! (one per core), not the rate: 20,000 slots cost 20,000 slots, not
//! 20,000 goose users, and a worker's hot path takes no shared lock.
//!
//! What differs between kinds of target — how a request is built (signed
//! or not) and how an error answer names itself — is a [`Wire`].

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::{Fuse, FusedFuture, FutureExt};
use futures::stream::{FuturesUnordered, StreamExt};
use goose::GooseAttack;
use goose::client::GooseClientBuilder;
use goose::config::{GooseConfiguration, GooseDefault, GooseDefaultType};
use goose::goose::{GooseUser, Scenario, Transaction, TransactionResult};
use tokio_util::sync::CancellationToken;

use super::pacer::Job;
use super::recorder::{Observation, Outcome};
use super::{Clock, LoadError, LoadRun, LoadSpec, Paced, ProgressFn, RequestSigner, tick_seconds};

/// If some users never start (goose launching slowly), pace anyway after this.
const LAUNCH_WAIT: Duration = Duration::from_secs(3);
/// How long a user whose work is over waits before handing back to goose.
const EXHAUSTED_PAUSE: Duration = Duration::from_millis(200);
/// Workers per core: enough to keep every core busy, few enough that each
/// wake-up hands a worker as much as it can take.
const WORKERS_PER_CORE: usize = 1;
/// A worker that takes this many requests back to back lets the runtime
/// read the network before it takes more.
const TAKE_BEFORE_YIELD: u32 = 8;

/// How one kind of target turns a request slot into an HTTP request and
/// reads an error answer.
pub(super) trait Wire: Send + Sync + 'static {
    /// What each worker keeps between its requests (a signature cache).
    type Local: Send;
    fn local(&self) -> Self::Local;
    /// The request request slot `slot` sends.
    fn request(&self, local: &mut Self::Local, slot: u64) -> Result<reqwest::Request, LoadError>;
    /// The error code an answer other than 2xx names, if any.
    fn error_code(&self, headers: &http::HeaderMap) -> Option<String>;
    /// What signs the requests, if anything: a request it signed that is
    /// refused for expired credentials is sent again once they are renewed
    /// ([`RequestSigner::resend_while_expired`]).
    fn signer(&self) -> Option<&RequestSigner> {
        None
    }
}

/// The goose scenario's name for a kind of target.
pub(super) struct Named<W> {
    pub scenario: &'static str,
    pub wire: W,
}

/// State shared by every worker of one step.
struct Step<W: Wire> {
    wire: W,
    spec: LoadSpec,
    clock: Clock,
    /// In-flight slots of each worker.
    slots: Vec<usize>,
    /// Users that have started; the last one to start starts the pacer.
    launched: AtomicUsize,
    failure: Mutex<Option<LoadError>>,
}

impl<W: Wire> Paced for Step<W> {
    fn clock(&self) -> &Clock {
        &self.clock
    }
}

/// Splits `slots` over at most `workers` workers, as evenly as can be.
fn share_slots(slots: usize, workers: usize) -> Vec<usize> {
    let workers = workers.clamp(1, slots.max(1));
    (0..workers).map(|i| slots / workers + usize::from(i < slots % workers)).collect()
}

fn workers_for_this_machine() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * WORKERS_PER_CORE
}

impl<W: Wire> Step<W> {
    /// One goose user: the worker of `slots` in-flight slots, until the
    /// pacer has nothing more or the step is cancelled.
    async fn run_user(&self, user: &mut GooseUser) {
        let index = self.launched.fetch_add(1, Ordering::AcqRel);
        if index + 1 == self.slots.len() {
            self.clock.pacer.start();
        }
        match self.slots.get(index) {
            Some(&slots) => self.work(&user.client, slots).await,
            // goose runs the transaction again until it tells the user to
            // exit; pause so a finished user does not spin meanwhile.
            None => {
                tokio::select! {
                    _ = tokio::time::sleep(EXHAUSTED_PAUSE) => {}
                    _ = self.clock.cancel.cancelled() => {}
                }
            }
        }
    }

    async fn work(&self, client: &reqwest::Client, slots: usize) {
        let lane = self.clock.recorder.lane();
        let mut local = self.wire.local();
        let mut in_flight = FuturesUnordered::new();
        // Registered once for the worker's life, not once per request.
        let cancelled = self.clock.cancel.cancelled().fuse();
        let next = self.clock.pacer.next().fuse();
        futures::pin_mut!(cancelled, next);
        let mut over = false;
        let mut taken_in_a_row = 0;
        loop {
            if taken_in_a_row >= TAKE_BEFORE_YIELD {
                // A backlog is waiting (the generator is behind): answers
                // and connections must be processed too, or requests pile up
                // in flight unsent, each opening a connection of its own.
                // yield_now returns only after the runtime has polled its I/O.
                taken_in_a_row = 0;
                tokio::task::yield_now().await;
            }
            let free = in_flight.len() < slots && !over;
            if next.is_terminated() && free {
                next.set(self.clock.pacer.next().fuse());
            } else if !free {
                // Every slot busy: let another worker take what falls due.
                next.set(Fuse::terminated());
                self.clock.pacer.pass_on();
            }
            if over && in_flight.is_empty() {
                return;
            }
            tokio::select! {
                biased;
                _ = &mut cancelled => return,
                Some((job, sent, outcome)) = in_flight.next(), if !in_flight.is_empty() => {
                    taken_in_a_row = 0;
                    self.clock.pacer.done();
                    lane.record(&observe(job, sent, Instant::now(), outcome));
                }
                job = &mut next, if !next.is_terminated() => match job {
                    None => over = true,
                    Some(job) => match (self.credentials_generation(), self.wire.request(&mut local, job.slot)) {
                        (generation, Ok(request)) => {
                            taken_in_a_row += 1;
                            self.clock.recorder.sent();
                            in_flight.push(self.exchange(client, request, job, generation));
                        }
                        (_, Err(e)) => return self.fail(e),
                    },
                },
            }
        }
    }

    /// Which credentials the next request is signed with; 0 for a wire that signs nothing.
    fn credentials_generation(&self) -> u64 {
        self.wire.signer().map_or(0, RequestSigner::generation)
    }

    /// Sends `request`, signed at credentials `generation`, and reads the
    /// whole answer (the clock stops after the body, not the first byte). A
    /// request refused for expired credentials that could be renewed is sent
    /// again ([`RequestSigner::resend_while_expired`]): the last answer
    /// counts, its latency from the first send.
    fn exchange(
        &self,
        client: &reqwest::Client,
        request: reqwest::Request,
        job: Job,
        generation: u64,
    ) -> impl Future<Output = (Job, Instant, Outcome)> {
        let sent = Instant::now();
        let response = client.execute(request);
        async move {
            let outcome = self.classify(response.await).await;
            let outcome = match self.wire.signer() {
                Some(signer) => {
                    let resend = || async move {
                        let request = self.wire.request(&mut self.wire.local(), job.slot).ok()?;
                        Some(self.classify(client.execute(request).await).await)
                    };
                    signer.resend_while_expired(outcome, generation, |o| o, resend).await
                }
                None => outcome,
            };
            (job, sent, outcome)
        }
    }

    async fn classify(&self, response: Result<reqwest::Response, reqwest::Error>) -> Outcome {
        let mut response = match response {
            Ok(response) => response,
            Err(e) if e.is_timeout() => return Outcome::Timeout,
            Err(_) => return Outcome::Connection,
        };
        let status = response.status();
        loop {
            match response.chunk().await {
                Ok(Some(_)) => continue,
                Ok(None) if status.is_success() => return Outcome::Success,
                Ok(None) => return Outcome::Http { status: status.as_u16(), code: self.wire.error_code(response.headers()) },
                Err(e) if e.is_timeout() => return Outcome::Timeout,
                Err(_) => return Outcome::Connection,
            }
        }
    }

    /// A step that cannot build its requests measures nothing: stop it and say why.
    fn fail(&self, e: LoadError) {
        crate::error::lock(&self.failure).get_or_insert(e);
        self.clock.cancel.cancel();
    }
}

/// One request as measured: latency from the intended start when sent late
/// (the wait counts, as a real client's would), from the actual send when
/// sent early.
fn observe(job: Job, sent: Instant, done: Instant, outcome: Outcome) -> Observation {
    Observation {
        due: job.due,
        latency: done - job.intended.min(sent),
        slip: sent.saturating_duration_since(job.intended),
        late_start: job.late_start,
        outcome,
    }
}

fn goose_error(e: goose::GooseError) -> LoadError {
    LoadError::Goose(Box::new(e))
}

/// Runs one load step over `named`'s wire. Cancelling `cancel` stops it
/// within milliseconds; the run so far is returned with `cancelled` set.
///
/// The step runs on a runtime of its own, on threads of its own: the pacer
/// wakes its worker threads on time whatever else the process's runtime is
/// busy with (the SDK, the progress display, an in-process simulator),
/// since tokio never preempts a task but the kernel preempts a thread.
pub(super) async fn drive<W: Wire>(
    named: Named<W>,
    spec: LoadSpec,
    cancel: CancellationToken,
    progress: Option<ProgressFn>,
) -> Result<LoadRun, LoadError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("perfsize-load")
        .build()
        .map_err(|e| LoadError::Runtime(e.to_string()))?;
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("perfsize-step".into())
        .spawn(move || {
            let _ = done.send(runtime.block_on(run_step(named, spec, cancel, progress)));
            // Anything goose left running stops with the step.
            runtime.shutdown_timeout(Duration::from_secs(1));
        })
        .map_err(|e| LoadError::Runtime(e.to_string()))?;
    result.await.map_err(|_| LoadError::Runtime("the load step's thread ended without a result".into()))?
}

async fn run_step<W: Wire>(
    named: Named<W>,
    spec: LoadSpec,
    cancel: CancellationToken,
    progress: Option<ProgressFn>,
) -> Result<LoadRun, LoadError> {
    let started_at = Utc::now();
    let step_cancel = cancel.child_token();
    // Whatever way this function returns, the pacer, the ticker and the
    // launch fallback stop with it.
    let _stop_step = step_cancel.clone().drop_guard();
    let step = Arc::new(Step {
        wire: named.wire,
        clock: Clock::for_spec(&spec, step_cancel),
        slots: share_slots(spec.max_in_flight(), workers_for_this_machine()),
        launched: AtomicUsize::new(0),
        failure: Mutex::new(None),
        spec,
    });
    let ticker = tokio::spawn(tick_seconds(Arc::clone(&step), progress));
    let launch_fallback = tokio::spawn({
        let step = Arc::clone(&step);
        async move {
            tokio::time::sleep(LAUNCH_WAIT).await;
            step.clock.pacer.start();
        }
    });
    let result = attack(&step, named.scenario).await;
    // Every user is done: stop the clock for the per-second series too.
    step.clock.cancel.cancel();
    launch_fallback.abort();
    let _ = launch_fallback.await;
    let _ = ticker.await;
    result?;
    if let Some(e) = crate::error::lock(&step.failure).take() {
        return Err(e);
    }
    Ok(LoadRun::collect(started_at, &step.spec, &step.clock.pacer, &step.clock.recorder, cancel.is_cancelled(), None))
}

/// One goose attack whose users are `step`'s workers.
async fn attack<W: Wire>(step: &Arc<Step<W>>, scenario: &'static str) -> Result<(), LoadError> {
    let user_step = Arc::clone(step);
    let transaction = Transaction::new(Arc::new(move |user: &mut GooseUser| {
        let step = Arc::clone(&user_step);
        Box::pin(async move {
            step.run_user(user).await;
            TransactionResult::Ok(())
        })
    }));
    let users = step.slots.len();
    let host = step.spec.target.runtime_url.clone();
    let attack = GooseAttack::initialize_with_config(GooseConfiguration::default())
        .map_err(goose_error)?
        .register_scenario(Scenario::new(scenario).register_transaction(transaction))
        .set_client_builder_without_cookies(
            GooseClientBuilder::new().without_cookies().timeout(step.spec.request_timeout).gzip(false),
        )
        .map_err(goose_error)?;
    configure(attack, &host, users).map_err(goose_error)?.execute().await.map(drop).map_err(goose_error)
}

fn configure(attack: GooseAttack, host: &str, users: usize) -> Result<Box<GooseAttack>, goose::GooseError> {
    let attack = attack
        .set_default(GooseDefault::Host, host)?
        .set_default(GooseDefault::Users, users)?
        // Launch every user at once: each is a worker, idle until its requests are due.
        .set_default(GooseDefault::IncreaseRate, format!("{}", users.max(1) * 20).as_str())?
        .set_default(GooseDefault::DecreaseRate, format!("{}", users.max(1) * 20).as_str())?
        // A user's transaction runs until the schedule is over, and goose waits
        // for running transactions when it stops; so a short run time only
        // means "tell every user to exit once its transaction returns".
        .set_default(GooseDefault::RunTime, 1usize)?
        .set_default(GooseDefault::Quiet, 1usize)?;
    let attack = attack
        .set_default(GooseDefault::NoTelnet, true)?
        // Our histograms are the measurement; goose's bucketed metrics would only cost CPU.
        .set_default(GooseDefault::NoMetrics, true)?
        .set_default(GooseDefault::NoPrintMetrics, true)?;
    Ok(attack)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_shared_evenly_and_never_by_more_workers_than_slots() {
        assert_eq!(share_slots(10, 4), [3, 3, 2, 2]);
        assert_eq!(share_slots(2, 4), [1, 1], "one slot per worker at least");
        assert_eq!(share_slots(20_000, 4).iter().sum::<usize>(), 20_000);
        assert_eq!(share_slots(1, 4), [1]);
    }

    #[test]
    fn a_late_request_counts_from_its_intended_start_an_early_one_from_its_send() {
        let t0 = Instant::now();
        let job = |intended: Instant| Job { slot: 0, due: 0.0, intended, late_start: false };
        let late = observe(job(t0), t0 + Duration::from_millis(5), t0 + Duration::from_millis(15), Outcome::Success);
        assert_eq!((late.latency, late.slip), (Duration::from_millis(15), Duration::from_millis(5)));
        let early = observe(job(t0 + Duration::from_micros(30)), t0, t0 + Duration::from_millis(10), Outcome::Success);
        assert_eq!((early.latency, early.slip), (Duration::from_millis(10), Duration::ZERO));
    }
}
