//! One instance's model server in time. [`Core`] runs the continuous batch
//! ([`Batch`]) phase by phase on a clock it is handed — a prefill for the
//! sequences just admitted (the running ones pause for it, as in TGI), else a
//! decode step for all of them — so tests drive it in virtual time.
//! [`Engine`] runs a core in a task on the real clock and hands each request
//! its tokens as they are produced.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::batch::{Batch, Lengths, Limits, QueueFull};
use crate::simulator::profile::{LlmBehaviour, LlmTiming};

/// What the engine is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    /// The sequences admitted last are read; their first tokens come at `ends`.
    Prefill {
        ends: Instant,
    },
    /// Every prefilled sequence gains a token at `ends`.
    Decode {
        ends: Instant,
    },
}

/// The engine at one instant, as GPU metrics see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Look {
    /// Requests waiting and running: those in the model.
    pub in_flight: usize,
    /// The share of the GPU's batch capacity at work: all of it during a
    /// prefill, the running share of `max_batch` during a decode step.
    pub compute_share: f64,
    /// The share of the KV cache held by running sequences.
    pub kv_share: f64,
}

/// The batch and its phases on a clock it is handed.
pub struct Core<T> {
    batch: Batch<T>,
    timing: LlmTiming,
    phase: Phase,
}

impl<T> Core<T> {
    pub fn new(limits: Limits, timing: LlmTiming) -> Core<T> {
        Core { batch: Batch::new(limits), timing, phase: Phase::Idle }
    }

    pub fn enqueue(&mut self, lengths: Lengths, tag: T) -> Result<(), QueueFull> {
        self.batch.enqueue(lengths, tag)
    }

    /// Brings the engine up to `now`: finishes the phase that ended by then
    /// (`deliver` hands each of its tokens over and says whether the sequence
    /// is still read), forgets sequences nobody reads (`gone`), and starts the
    /// next phase. Returns when the phase under way ends; None when there is
    /// nothing to do until a request arrives.
    pub fn advance(&mut self, now: Instant, deliver: impl FnMut(&T) -> bool, gone: impl FnMut(&T) -> bool) -> Option<Instant> {
        let finished = match self.phase {
            Phase::Prefill { ends } | Phase::Decode { ends } if now < ends => return Some(ends),
            Phase::Prefill { ends } => {
                self.batch.complete_prefill(deliver);
                Some(ends)
            }
            Phase::Decode { ends } => {
                self.batch.decode(deliver);
                Some(ends)
            }
            Phase::Idle => None,
        };
        self.batch.forget(gone);
        // Back to back, the next phase starts when the last one ended, not
        // when the task woke up: a late wake-up must not slow the model down.
        let starts = finished.unwrap_or(now);
        let prefill = self.batch.admit();
        self.phase = if prefill.sequences > 0 {
            Phase::Prefill { ends: starts + self.timing.prefill(prefill.prompt_tokens) }
        } else if self.batch.decoding() > 0 {
            Phase::Decode { ends: starts + self.timing.decode_step(self.batch.decoding()) }
        } else {
            Phase::Idle
        };
        match self.phase {
            Phase::Prefill { ends } | Phase::Decode { ends } => Some(ends),
            Phase::Idle => None,
        }
    }

    pub fn look(&self) -> Look {
        let limits = self.batch.limits();
        let compute_share = match self.phase {
            Phase::Idle => 0.0,
            Phase::Prefill { .. } => 1.0,
            Phase::Decode { .. } => self.batch.decoding() as f64 / limits.max_batch as f64,
        };
        Look {
            in_flight: self.batch.waiting() + self.batch.running(),
            compute_share: compute_share.min(1.0),
            kv_share: (f64::from(self.batch.kv_used()) / f64::from(limits.kv_cache_tokens)).min(1.0),
        }
    }
}

/// Where a sequence's tokens go: the number produced so far. The request's
/// stream holds the receiver; when it is dropped the sequence is forgotten.
type Reader = watch::Sender<u32>;

struct Shared {
    core: Mutex<Core<Reader>>,
    /// A request arrived, or the engine's instance went away.
    wake: Notify,
    closed: AtomicBool,
}

impl Shared {
    fn core(&self) -> MutexGuard<'_, Core<Reader>> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One instance's running model server. Dropping it stops the task once the
/// requests it holds are done.
pub struct Engine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("look", &self.look()).finish()
    }
}

/// The tokens of one request, as its engine produces them.
pub struct Tokens {
    produced: watch::Receiver<u32>,
}

/// The engine stopped before producing the tokens waited for: its instance
/// went away (the endpoint was deleted, the simulator is stopping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineGone;

impl Tokens {
    /// Waits until at least `count` tokens exist; returns how many do.
    pub async fn reach(&mut self, count: u32) -> Result<u32, EngineGone> {
        self.produced.wait_for(|&produced| produced >= count).await.map(|n| *n).map_err(|_| EngineGone)
    }
}

impl Engine {
    /// Starts the model server of one instance with `behaviour`.
    pub fn start(behaviour: &LlmBehaviour) -> Engine {
        let limits = Limits {
            max_batch: behaviour.max_batch,
            kv_cache_tokens: behaviour.kv_cache_tokens,
            queue_limit: behaviour.queue_limit,
        };
        let shared = Arc::new(Shared {
            core: Mutex::new(Core::new(limits, behaviour.timing)),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(serve(shared.clone()));
        Engine { shared }
    }

    /// Queues a request for the batch, or refuses it when the queue is full.
    pub fn submit(&self, lengths: Lengths) -> Result<Tokens, QueueFull> {
        let (reader, produced) = watch::channel(0);
        self.shared.core().enqueue(lengths, reader)?;
        self.shared.wake.notify_one();
        Ok(Tokens { produced })
    }

    pub fn look(&self) -> Look {
        self.shared.core().look()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

/// The engine's task: advances the core whenever a phase ends or a request
/// arrives, until its instance is gone and nothing is left to do.
async fn serve(shared: Arc<Shared>) {
    let deliver = |reader: &Reader| {
        reader.send_modify(|produced| *produced += 1);
        !reader.is_closed()
    };
    loop {
        let next = shared.core().advance(Instant::now(), deliver, Reader::is_closed);
        match next {
            Some(ends) => tokio::time::sleep_until(ends).await,
            None if shared.closed.load(Ordering::Acquire) => return,
            None => shared.wake.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const TIMING: LlmTiming = LlmTiming {
        prefill_per_token: Duration::from_micros(100),
        decode_step: Duration::from_millis(20),
        decode_per_sequence: Duration::from_millis(2),
    };

    const ROOMY: Limits = Limits { max_batch: 8, kv_cache_tokens: 100_000, queue_limit: 100 };

    /// Runs a core in virtual time over requests arriving at the given
    /// offsets; returns each request's token times from the start.
    fn token_times(limits: Limits, arrivals: &[(Duration, Lengths)]) -> Vec<Vec<Duration>> {
        let t0 = Instant::now();
        let mut core: Core<usize> = Core::new(limits, TIMING);
        let mut times = vec![Vec::new(); arrivals.len()];
        let mut next_arrival = 0;
        let mut wake: Option<Instant> = None;
        loop {
            let arrival = arrivals.get(next_arrival).map(|(at, _)| t0 + *at);
            let now = match (arrival, wake) {
                (Some(a), Some(w)) => a.min(w),
                (Some(a), None) => a,
                (None, Some(w)) => w,
                (None, None) => return times,
            };
            while let Some((at, lengths)) = arrivals.get(next_arrival)
                && t0 + *at <= now
            {
                core.enqueue(*lengths, next_arrival).expect("the queue has room");
                next_arrival += 1;
            }
            wake = core.advance(
                now,
                |&tag| {
                    times[tag].push(now - t0);
                    true
                },
                |_| false,
            );
        }
    }

    fn at(ms: u64, prompt: u32, output: u32) -> (Duration, Lengths) {
        (Duration::from_millis(ms), Lengths { prompt, output })
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_first_token_comes_after_the_prefill_and_the_rest_one_per_step() {
        let times = token_times(ROOMY, &[at(0, 1000, 3)]);
        // 1000 prompt tokens × 0.1 ms, then steps of 20 ms for a batch of one.
        assert_eq!(times[0], vec![ms(100), ms(120), ms(140)]);
    }

    #[test]
    fn the_first_token_waits_longer_for_a_longer_prompt() {
        let short = token_times(ROOMY, &[at(0, 100, 1)]);
        let long = token_times(ROOMY, &[at(0, 2000, 1)]);
        assert_eq!((short[0][0], long[0][0]), (ms(10), ms(200)));
    }

    #[test]
    fn a_decode_step_slows_as_the_batch_grows() {
        let alone = token_times(ROOMY, &[at(0, 10, 5)]);
        let four: Vec<_> = (0..4).map(|_| at(0, 10, 5)).collect();
        let together = token_times(ROOMY, &four);
        let gap = |tokens: &[Duration]| tokens[2] - tokens[1];
        assert_eq!(gap(&alone[0]), ms(20));
        assert_eq!(gap(&together[0]), ms(26), "20 ms + 2 ms for each of 3 more sequences");
        assert!(together.iter().all(|t| t.len() == 5));
    }

    #[test]
    fn a_newcomer_pauses_the_running_batch_for_its_prefill() {
        // The first request decodes alone; the second arrives at 15 ms and is
        // prefilled (10 ms) as soon as the step under way ends (at 21 ms).
        let times = token_times(ROOMY, &[at(0, 10, 4), at(15, 100, 2)]);
        assert_eq!(times[0], vec![ms(1), ms(21), ms(53), ms(73)]);
        assert_eq!(times[1], vec![ms(31), ms(53)]);
    }

    #[test]
    fn time_to_first_token_grows_with_the_queue() {
        // One sequence at a time: each waits for all before it.
        let one = Limits { max_batch: 1, ..ROOMY };
        let times = token_times(one, &[at(0, 100, 2), at(0, 100, 2), at(0, 100, 2)]);
        let first: Vec<Duration> = times.iter().map(|t| t[0]).collect();
        // Each takes a 10 ms prefill and one 20 ms step.
        assert_eq!(first, vec![ms(10), ms(40), ms(70)]);
    }

    #[test]
    fn the_kv_cache_queues_what_the_batch_would_take() {
        // The batch could take both, the cache holds one at a time.
        let small_cache = Limits { kv_cache_tokens: 150, ..ROOMY };
        let times = token_times(small_cache, &[at(0, 100, 2), at(0, 50, 2)]);
        assert_eq!(times[0], vec![ms(10), ms(30)]);
        assert_eq!(times[1], vec![ms(35), ms(55)], "admitted once the first freed its cache");
    }

    #[test]
    fn looks_follow_the_batch_and_the_cache() {
        let mut core: Core<usize> = Core::new(Limits { max_batch: 4, kv_cache_tokens: 1000, queue_limit: 10 }, TIMING);
        assert_eq!(core.look(), Look { in_flight: 0, compute_share: 0.0, kv_share: 0.0 });
        let t0 = Instant::now();
        core.enqueue(Lengths { prompt: 100, output: 100 }, 0).unwrap();
        core.enqueue(Lengths { prompt: 100, output: 100 }, 1).unwrap();
        let prefill_ends = core.advance(t0, |_| true, |_| false).unwrap();
        assert_eq!(core.look(), Look { in_flight: 2, compute_share: 1.0, kv_share: 0.4 });
        core.advance(prefill_ends, |_| true, |_| false);
        assert_eq!(core.look(), Look { in_flight: 2, compute_share: 0.5, kv_share: 0.4 });
    }

    #[tokio::test]
    async fn an_engine_hands_each_request_its_tokens() {
        let behaviour = LlmBehaviour {
            gpus: 1,
            max_batch: 4,
            kv_cache_tokens: 1000,
            max_total_tokens: 1000,
            timing: LlmTiming {
                prefill_per_token: Duration::ZERO,
                decode_step: Duration::from_micros(100),
                decode_per_sequence: Duration::ZERO,
            },
            queue_limit: 0,
            weights_memory_percent: 50.0,
            stream_broken_rate: 0.0,
            internal_failure_rate: 0.0,
        };
        let engine = Engine::start(&behaviour);
        let mut streams: Vec<Tokens> = (0..4).map(|_| engine.submit(Lengths { prompt: 5, output: 7 }).unwrap()).collect();
        assert!(engine.submit(Lengths { prompt: 5, output: 7 }).is_err(), "a full batch and no queue: refused");
        for tokens in &mut streams {
            assert_eq!(tokens.reach(7).await, Ok(7));
        }
        let mut gone = engine.submit(Lengths { prompt: 5, output: 7 }).unwrap();
        drop(engine);
        assert_eq!(gone.reach(7).await, Ok(7), "a request accepted before the instance went away is served");
        assert_eq!(gone.reach(8).await, Err(EngineGone), "no token beyond its output");
    }
}
