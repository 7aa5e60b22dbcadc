//! One asynchronous endpoint's backlog: requests in arrival order (FIFO),
//! those being processed, requests whose RequestTTLSeconds ran out while they
//! waited, and what CloudWatch's backlog metrics see of it. Pure: instants in,
//! requests and figures out.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::simulator::metrics::Backlog as BacklogLook;
use crate::simulator::s3::S3Uri;

/// A request accepted by InvokeEndpointAsync, and where its result goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub inference_id: String,
    pub input: S3Uri,
    pub output: S3Uri,
    pub failure: S3Uri,
    /// The Content-Type its output is written with.
    pub output_type: String,
    pub enqueued: Instant,
    pub ttl: Duration,
    pub timeout: Duration,
}

impl Queued {
    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.enqueued) >= self.ttl
    }
}

/// A request taken out of the backlog to be processed, until it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

#[derive(Debug, Default)]
pub struct Backlog {
    waiting: VecDeque<Queued>,
    /// When each request being processed was enqueued.
    processing: BTreeMap<Ticket, Instant>,
    next_ticket: u64,
}

impl Backlog {
    pub fn push(&mut self, request: Queued) {
        self.waiting.push_back(request);
    }

    pub fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// The oldest waiting request, now being processed.
    pub fn take(&mut self) -> Option<(Ticket, Queued)> {
        let request = self.waiting.pop_front()?;
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += 1;
        self.processing.insert(ticket, request.enqueued);
        Some((ticket, request))
    }

    /// A processed request leaves the backlog.
    pub fn done(&mut self, ticket: Ticket) {
        self.processing.remove(&ticket);
    }

    /// Takes out every waiting request whose TTL ran out by `now` (requests
    /// may carry different TTLs, so not only from the front).
    pub fn expire(&mut self, now: Instant) -> Vec<Queued> {
        let (expired, waiting): (Vec<Queued>, Vec<Queued>) =
            std::mem::take(&mut self.waiting).into_iter().partition(|r| r.expired(now));
        self.waiting = waiting.into();
        expired
    }

    /// What CloudWatch's backlog metrics see at `now` with `instances` in
    /// service: ApproximateBacklogSize counts the requests "currently being
    /// processed or yet to be processed", and the age is that of the oldest
    /// of them.
    pub fn look(&self, now: Instant, instances: u32) -> BacklogLook {
        let oldest = self.waiting.iter().map(|r| r.enqueued).chain(self.processing.values().copied()).min();
        BacklogLook {
            size: (self.waiting.len() + self.processing.len()) as u64,
            instances,
            oldest: oldest.map_or(Duration::ZERO, |at| now.saturating_duration_since(at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(id: &str, enqueued: Instant, ttl_secs: u64) -> Queued {
        let uri = S3Uri::parse("s3://b/k").unwrap();
        Queued {
            inference_id: id.to_string(),
            input: uri.clone(),
            output: uri.clone(),
            failure: uri,
            output_type: "application/json".into(),
            enqueued,
            ttl: Duration::from_secs(ttl_secs),
            timeout: Duration::from_secs(900),
        }
    }

    #[test]
    fn requests_leave_in_arrival_order() {
        let t0 = Instant::now();
        let mut backlog = Backlog::default();
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            backlog.push(queued(id, t0 + Duration::from_secs(i as u64), 600));
        }
        let (first, a) = backlog.take().unwrap();
        let (_, b) = backlog.take().unwrap();
        assert_eq!((a.inference_id.as_str(), b.inference_id.as_str()), ("a", "b"));
        // Two processing, one waiting; the oldest is the first, still processing.
        let look = backlog.look(t0 + Duration::from_secs(10), 2);
        assert_eq!(look, BacklogLook { size: 3, instances: 2, oldest: Duration::from_secs(10) });
        backlog.done(first);
        assert_eq!(backlog.look(t0 + Duration::from_secs(10), 2).oldest, Duration::from_secs(9));
        assert_eq!(backlog.take().unwrap().1.inference_id, "c");
        assert!(backlog.take().is_none());
    }

    #[test]
    fn requests_past_their_ttl_expire_wherever_they_wait() {
        let t0 = Instant::now();
        let mut backlog = Backlog::default();
        backlog.push(queued("long", t0, 3600));
        backlog.push(queued("short", t0, 60));
        backlog.push(queued("later", t0 + Duration::from_secs(30), 60));
        assert!(backlog.expire(t0 + Duration::from_secs(59)).is_empty());
        let expired: Vec<String> = backlog.expire(t0 + Duration::from_secs(60)).into_iter().map(|r| r.inference_id).collect();
        assert_eq!(expired, vec!["short"]);
        let look = backlog.look(t0 + Duration::from_secs(60), 0);
        assert_eq!((look.size, look.without_capacity(), look.per_instance()), (2, 1.0, 2.0));
        assert_eq!(Backlog::default().look(t0, 0), BacklogLook { size: 0, instances: 0, oldest: Duration::ZERO });
    }
}
