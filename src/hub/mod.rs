//! The event hub: gives every event an id `<epoch>-<seq>`, keeps the newest
//! ones in a bounded replay ring, and lets subscribers read the ring from
//! their own cursor.
//!
//! There is no per-subscriber queue: the ring is the queue. A subscriber holds
//! only a cursor and a wake-up handle, reads whatever is new in batches
//! bounded by count and bytes ([`MAX_BATCH_BYTES`]), and so can never slow
//! the publisher or another subscriber. A subscriber whose
//! unread events leave the ring gets an explicit `reset` (resume) answer,
//! or a gap while it reads: every reader reads through a [`Reader`], under
//! one lag policy. The hub knows nothing of HTTP or runtimes.

mod event;
mod mirror;
mod reader;
mod subscription;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub use event::{Cursor, Draft, Event, control_frame};
pub use reader::{BATCH, Gap, Next, Reader};
use subscription::Subscription;
pub use subscription::{ResetInfo, ResetReason, Start};

/// Most bytes of events (SSE frames) one read moves into a subscriber's
/// buffer, unless a single event is larger: then it comes alone (and an
/// SSE stream sends it without copying). A stream copies each batch into
/// one chunk, which a slow client's connection holds: with batches bounded
/// only by count (256), 10 stalled subscribers resuming over 60 events of
/// 1 MiB took a bridge from 99 to 687 MB; with this bound, 86 to 86 MB
/// (debug builds). The recorded runtime's `stream_delta` events are ~470
/// bytes (611 at most), so a batch still carries over 100 of them.
pub const MAX_BATCH_BYTES: usize = 64 * 1024;

/// Bounds of the replay ring; the oldest events leave first when any is hit.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most events kept.
    pub events: usize,
    /// Most bytes (SSE frames) kept.
    pub bytes: usize,
    /// Oldest age kept (checked when publishing).
    pub max_age: Duration,
}

/// Cheap to clone; all clones share one ring.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    limits: Limits,
    /// Readers (subscribers copying `Arc`s out) far outnumber the one writer
    /// per publish, and both hold it only for memory work, never across `.await`.
    ring: RwLock<Ring>,
    /// Bumped after each publish to wake subscribers; they read the ring, not this.
    wake: watch::Sender<u64>,
    subscribers: AtomicUsize,
}

struct Ring {
    /// This run of the log: the `<epoch>` of every id. Changes only when a
    /// mirror follows a shared log that lost its data ([`Hub::rebase`]).
    epoch: Arc<str>,
    /// Counts rebases, so that a subscriber can tell it missed one.
    era: u64,
    /// The epoch before the last rebase (for the `reset` a subscriber gets).
    previous_epoch: Option<Arc<str>>,
    events: VecDeque<Arc<Event>>,
    bytes: usize,
    /// Seq of the newest event ever published (0: none yet).
    last_seq: u64,
}

/// Counts for `/status`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct HubStats {
    /// This run of the log.
    pub epoch: String,
    /// Id of the newest event (`<epoch>-0` before the first).
    pub cursor: String,
    /// Events published since start.
    pub events_published: u64,
    /// Events held in the ring.
    pub replay_events: usize,
    /// Bytes held in the ring.
    pub replay_bytes: usize,
    /// Oldest event id still in the ring.
    pub replay_oldest: Option<String>,
    /// Open subscriptions.
    pub subscribers: usize,
}

impl Hub {
    /// A hub with a fresh random epoch.
    pub fn new(limits: Limits) -> Self {
        let epoch = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        Self::with_epoch(epoch, limits)
    }

    /// A hub whose ids start with `epoch`.
    pub fn with_epoch(epoch: String, limits: Limits) -> Self {
        let (wake, _) = watch::channel(0);
        let ring =
            Ring { epoch: epoch.into(), era: 0, previous_epoch: None, events: VecDeque::new(), bytes: 0, last_seq: 0 };
        Self { inner: Arc::new(Inner { limits, ring: RwLock::new(ring), wake, subscribers: AtomicUsize::new(0) }) }
    }

    /// This run of the log: the `<epoch>` of every id.
    pub fn epoch(&self) -> Arc<str> {
        self.read().epoch.clone()
    }

    /// The id clients see for `seq`.
    pub fn event_id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.read().epoch)
    }

    /// Id of the newest event: resuming from it yields only later events.
    pub fn cursor(&self) -> String {
        let ring = self.read();
        format!("{}-{}", ring.epoch, ring.last_seq)
    }

    /// Gives `draft` the next id, stores it and wakes subscribers.
    pub fn publish(&self, draft: Draft) -> Arc<Event> {
        let now = Instant::now();
        let event = {
            let mut ring = self.inner.ring.write().unwrap_or_else(|p| p.into_inner());
            let seq = ring.last_seq + 1;
            ring.push(seq, draft, now, &self.inner.limits)
        };
        self.inner.wake.send_modify(|n| *n = n.wrapping_add(1));
        event
    }

    /// Starts reading at `start`; see [`Start`].
    pub fn subscribe(&self, start: Start<'_>) -> (Reader, Option<ResetInfo>) {
        let (sub, reset) = self.open(start);
        (Reader::new(sub), reset)
    }

    /// A subscription at `start`, read by a [`Reader`] (the hub's tests
    /// read it in batches of their own size).
    fn open(&self, start: Start<'_>) -> (Subscription, Option<ResetInfo>) {
        let wake = self.inner.wake.subscribe();
        // Apply the age limit now too: an idle ring must not resume from
        // events older than it promises to keep.
        let mut ring = self.inner.ring.write().unwrap_or_else(|p| p.into_inner());
        ring.evict(&self.inner.limits, Instant::now());
        let (next, reset) = subscription::resolve_start(&ring.epoch, &ring.events, ring.last_seq, start);
        let era = ring.era;
        drop(ring);
        self.inner.subscribers.fetch_add(1, Ordering::Relaxed);
        (Subscription::new(self.clone(), next, era, wake), reset)
    }

    /// Counts for `/status` and `/metrics`.
    pub fn stats(&self) -> HubStats {
        let ring = self.read();
        let id = |seq: u64| format!("{}-{seq}", ring.epoch);
        HubStats {
            epoch: ring.epoch.to_string(),
            cursor: id(ring.last_seq),
            events_published: ring.last_seq,
            replay_events: ring.events.len(),
            replay_bytes: ring.bytes,
            replay_oldest: ring.events.front().map(|e| id(e.seq)),
            subscribers: self.inner.subscribers.load(Ordering::Relaxed),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        self.inner.ring.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl Ring {
    /// Stores the event `seq` (the next one) and applies the limits.
    fn push(&mut self, seq: u64, draft: Draft, at: Instant, limits: &Limits) -> Arc<Event> {
        let event = Arc::new(Event::new(&self.epoch, seq, draft, at));
        self.last_seq = seq;
        self.bytes += event.size();
        self.events.push_back(event.clone());
        self.evict(limits, Instant::now());
        event
    }

    fn evict(&mut self, limits: &Limits, now: Instant) {
        while let Some(front) = self.events.front() {
            let too_many = self.events.len() > limits.events;
            let too_big = self.bytes > limits.bytes && self.events.len() > 1;
            let too_old = now.duration_since(front.at) > limits.max_age;
            if !(too_many || too_big || too_old) {
                break;
            }
            self.bytes -= front.size();
            self.events.pop_front();
        }
    }
}

#[cfg(test)]
mod tests;
