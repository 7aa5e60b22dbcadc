//! Continuous batching as pure bookkeeping: which waiting sequences join the
//! running batch (in arrival order, while the batch has a free slot and the
//! KV cache can hold the newcomer's prompt and output tokens), which gain a
//! token at a prefill or a decode step, and which leave and free their
//! cache. No clock and no I/O: the engine ([`super::engine`]) owns time.

use std::collections::VecDeque;

/// What bounds one instance's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sequences decoded together at most.
    pub max_batch: usize,
    /// Tokens the KV cache holds.
    pub kv_cache_tokens: u32,
    /// Sequences that may wait beyond those the batch has room for.
    pub queue_limit: usize,
}

/// A request's token counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lengths {
    pub prompt: u32,
    /// At least one: the prefill yields the first token.
    pub output: u32,
}

impl Lengths {
    /// The KV cache a sequence holds while it runs: as TGI reserves it, for
    /// its whole prompt and output at admission.
    fn kv_tokens(&self) -> u32 {
        self.prompt.saturating_add(self.output)
    }
}

/// The queue is full: the request is refused before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

struct Waiting<T> {
    lengths: Lengths,
    tag: T,
}

struct Running<T> {
    lengths: Lengths,
    /// Tokens produced so far; 0 until its prefill is done.
    produced: u32,
    tag: T,
}

/// A prefill to run: the sequences just admitted and their prompt tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefill {
    pub sequences: usize,
    pub prompt_tokens: u32,
}

/// One instance's waiting queue and running batch; `T` is what the engine
/// keeps per sequence (where its tokens go).
pub struct Batch<T> {
    limits: Limits,
    waiting: VecDeque<Waiting<T>>,
    running: Vec<Running<T>>,
    kv_used: u32,
}

impl<T> Batch<T> {
    pub fn new(limits: Limits) -> Batch<T> {
        Batch { limits, waiting: VecDeque::new(), running: Vec::new(), kv_used: 0 }
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    pub fn running(&self) -> usize {
        self.running.len()
    }

    pub fn kv_used(&self) -> u32 {
        self.kv_used
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Queues a request, or refuses it when `queue_limit` requests already
    /// wait beyond what the batch could take now.
    pub fn enqueue(&mut self, lengths: Lengths, tag: T) -> Result<(), QueueFull> {
        self.waiting.push_back(Waiting { lengths, tag });
        if self.beyond_room() > self.limits.queue_limit {
            self.waiting.pop_back();
            return Err(QueueFull);
        }
        Ok(())
    }

    /// How many waiting sequences an admission now would leave waiting.
    fn beyond_room(&self) -> usize {
        self.waiting.len() - self.admissible()
    }

    /// How many sequences at the head of the queue fit in the batch now.
    fn admissible(&self) -> usize {
        let mut slots = self.limits.max_batch.saturating_sub(self.running.len());
        let mut kv_free = self.limits.kv_cache_tokens.saturating_sub(self.kv_used);
        let mut admitted = 0;
        for waiting in &self.waiting {
            let need = waiting.lengths.kv_tokens();
            // An empty batch always takes its head, however long: a request
            // alone must run, or it would wait for ever.
            let alone = self.running.is_empty() && admitted == 0;
            if slots == 0 || (need > kv_free && !alone) {
                break;
            }
            slots -= 1;
            kv_free = kv_free.saturating_sub(need);
            admitted += 1;
        }
        admitted
    }

    /// Moves the sequences at the head of the queue that fit into the batch;
    /// the prefill they need comes next.
    pub fn admit(&mut self) -> Prefill {
        let count = self.admissible();
        let mut prefill = Prefill { sequences: count, prompt_tokens: 0 };
        for Waiting { lengths, tag } in self.waiting.drain(..count) {
            self.kv_used = self.kv_used.saturating_add(lengths.kv_tokens());
            prefill.prompt_tokens = prefill.prompt_tokens.saturating_add(lengths.prompt);
            self.running.push(Running { lengths, produced: 0, tag });
        }
        prefill
    }

    /// The prefill is done: each sequence admitted for it has its first token.
    /// `deliver` hands a token over and says whether anyone still wants more.
    pub fn complete_prefill(&mut self, deliver: impl FnMut(&T) -> bool) {
        self.give_tokens(|running| running.produced == 0, deliver);
    }

    /// A decode step is done: every prefilled sequence has one more token.
    pub fn decode(&mut self, deliver: impl FnMut(&T) -> bool) {
        self.give_tokens(|running| running.produced > 0, deliver);
    }

    /// Prefilled sequences that a decode step would advance.
    pub fn decoding(&self) -> usize {
        self.running.iter().filter(|r| r.produced > 0).count()
    }

    /// Forgets the sequences nobody waits for any more (`gone`), waiting or
    /// running, and frees their cache.
    pub fn forget(&mut self, mut gone: impl FnMut(&T) -> bool) {
        self.waiting.retain(|waiting| !gone(&waiting.tag));
        let kv_used = &mut self.kv_used;
        self.running.retain(|running| {
            let keep = !gone(&running.tag);
            if !keep {
                *kv_used = kv_used.saturating_sub(running.lengths.kv_tokens());
            }
            keep
        });
    }

    fn give_tokens(&mut self, due: impl Fn(&Running<T>) -> bool, mut deliver: impl FnMut(&T) -> bool) {
        let kv_used = &mut self.kv_used;
        self.running.retain_mut(|running| {
            if !due(running) {
                return true;
            }
            running.produced += 1;
            let wanted = deliver(&running.tag);
            let keep = wanted && running.produced < running.lengths.output;
            if !keep {
                *kv_used = kv_used.saturating_sub(running.lengths.kv_tokens());
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOMY: Limits = Limits { max_batch: 4, kv_cache_tokens: 10_000, queue_limit: 10 };

    fn lengths(prompt: u32, output: u32) -> Lengths {
        Lengths { prompt, output }
    }

    /// Runs decode steps until the batch is idle, recording each sequence's tokens.
    fn tokens_by_tag(batch: &mut Batch<usize>, n: usize) -> Vec<u32> {
        let mut tokens = vec![0; n];
        batch.complete_prefill(|&tag| {
            tokens[tag] += 1;
            true
        });
        while batch.decoding() > 0 {
            batch.decode(|&tag| {
                tokens[tag] += 1;
                true
            });
        }
        tokens
    }

    #[test]
    fn the_batch_takes_waiting_sequences_in_order_up_to_max_batch() {
        let mut batch = Batch::new(ROOMY);
        for tag in 0..6 {
            batch.enqueue(lengths(10, 3), tag).unwrap();
        }
        let prefill = batch.admit();
        assert_eq!(prefill, Prefill { sequences: 4, prompt_tokens: 40 });
        assert_eq!((batch.running(), batch.waiting(), batch.kv_used()), (4, 2, 52));
        assert_eq!(tokens_by_tag(&mut batch, 6), vec![3, 3, 3, 3, 0, 0], "each gets exactly its output");
        assert_eq!((batch.running(), batch.kv_used()), (0, 0), "finished sequences free their cache");
        assert_eq!(batch.admit().sequences, 2, "the rest join when there is room");
    }

    #[test]
    fn the_kv_cache_limits_concurrent_sequences_and_the_rest_queue() {
        // Room for two sequences of 100 + 100 tokens, though the batch could take four.
        let limits = Limits { kv_cache_tokens: 450, ..ROOMY };
        let mut batch = Batch::new(limits);
        for tag in 0..3 {
            batch.enqueue(lengths(100, 100), tag).unwrap();
        }
        assert_eq!(batch.admit().sequences, 2);
        assert_eq!((batch.running(), batch.waiting()), (2, 1), "the third waits for cache");
        batch.complete_prefill(|_| true);
        assert_eq!(batch.admit().sequences, 0, "still no room while both run");
        // Once one finishes, the third joins.
        let mut first_done = false;
        while !first_done {
            batch.decode(|&tag| {
                first_done |= tag == 0;
                tag != 0
            });
        }
        assert_eq!(batch.admit().sequences, 1);
    }

    #[test]
    fn a_head_that_does_not_fit_blocks_those_behind_it() {
        // Arrival order is kept: a short request does not overtake a long one.
        let mut batch = Batch::new(Limits { kv_cache_tokens: 300, ..ROOMY });
        batch.enqueue(lengths(100, 100), 0).unwrap();
        batch.admit();
        batch.enqueue(lengths(150, 100), 1).unwrap();
        batch.enqueue(lengths(10, 10), 2).unwrap();
        assert_eq!(batch.admit().sequences, 0);
        assert_eq!(batch.waiting(), 2);
    }

    #[test]
    fn a_request_larger_than_the_cache_still_runs_alone() {
        let mut batch = Batch::new(Limits { kv_cache_tokens: 50, ..ROOMY });
        batch.enqueue(lengths(100, 2), 0).unwrap();
        batch.enqueue(lengths(1, 1), 1).unwrap();
        assert_eq!(batch.admit(), Prefill { sequences: 1, prompt_tokens: 100 });
        assert_eq!(tokens_by_tag(&mut batch, 2), vec![2, 0]);
    }

    #[test]
    fn the_queue_limit_counts_only_those_the_batch_cannot_take() {
        let mut batch = Batch::new(Limits { max_batch: 2, kv_cache_tokens: 10_000, queue_limit: 1 });
        batch.enqueue(lengths(1, 5), 0).unwrap();
        batch.enqueue(lengths(1, 5), 1).unwrap();
        batch.enqueue(lengths(1, 5), 2).unwrap();
        assert_eq!(batch.enqueue(lengths(1, 5), 3), Err(QueueFull), "two fit, one waits, the fourth is one too many");
        assert_eq!(batch.waiting(), 3);
        let mut no_queue = Batch::new(Limits { max_batch: 1, kv_cache_tokens: 10_000, queue_limit: 0 });
        no_queue.enqueue(lengths(1, 5), 0).unwrap();
        assert_eq!(no_queue.enqueue(lengths(1, 5), 1), Err(QueueFull));
    }

    #[test]
    fn sequences_nobody_reads_leave_and_free_their_cache() {
        let mut batch = Batch::new(ROOMY);
        for tag in 0..3 {
            batch.enqueue(lengths(10, 10), tag).unwrap();
        }
        batch.admit();
        batch.enqueue(lengths(10, 10), 3).unwrap();
        batch.forget(|&tag| tag == 1 || tag == 3);
        assert_eq!((batch.running(), batch.waiting(), batch.kv_used()), (2, 0, 40));
        // A sequence whose reader went away at delivery leaves too.
        batch.complete_prefill(|&tag| tag != 0);
        assert_eq!((batch.running(), batch.kv_used()), (1, 20));
    }
}
