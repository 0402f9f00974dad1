//! The event sink of a cluster instance: the events of its runtime sockets
//! go, in order, through one bounded queue to the shared log, appended in
//! batches by one task (one script call per batch).
//!
//! Queue policy: from half of [`MAX_QUEUED`] events or [`MAX_QUEUED_BYTES`]
//! bytes on, the runtime sockets stop reading (backpressure: TCP pushes
//! back on the runtimes) until it drains below a quarter; so a runtime that
//! writes faster than Redis appends is slowed, not cut. While the engine is
//! away events wait there, and are flushed in order once it answers again.
//! An event that still finds the queue full (many sockets at once) is
//! dropped (counted and logged) and the instance fences itself: its runtime
//! sockets close so that the runtimes reconnect to an instance that can
//! append. Each event carries an append id, so a batch retried after a
//! broken connection is appended once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Value;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Node;
use super::engine::Lua;
use super::entry::Append;
use super::epoch::new_epoch;
use super::records::RegistrationRecord;
use crate::hub::Draft;
use crate::runtime::{EventSink, Link};

/// Most events waiting for the engine.
pub(super) const MAX_QUEUED: usize = 10_000;

/// Most bytes of event data waiting for the engine.
pub(super) const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;

/// Most events per script call.
const BATCH: usize = 128;

/// Most bytes per script call (a bigger single event still goes alone).
const BATCH_BYTES: usize = 1024 * 1024;

/// Longest pause between retries while the engine is away.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

use crate::metrics::{APPEND_DROPPED as DROPPED, APPEND_FENCED as FENCED_APPENDS};

/// One event on its way to the log.
struct Entry {
    /// Its append id (this instance's sequence).
    n: u64,
    event: Append,
    enqueued: Instant,
}

#[derive(Default)]
struct Queue {
    entries: VecDeque<Entry>,
    bytes: usize,
    /// The next append id.
    next_n: u64,
}

/// The sink that appends to the shared log.
pub(super) struct Appender {
    node: Arc<Node>,
    queue: Mutex<Queue>,
    wake: Notify,
    /// Events taken from the queue and not yet appended.
    in_flight: AtomicUsize,
    /// Set when the queue overflowed, until the instance fenced itself.
    overflowed: AtomicBool,
    /// When local appends were queued, by append id: the mirror measures
    /// the time until it reads them back. Bounded like the queue.
    sent: Mutex<VecDeque<(u64, Instant)>>,
    /// Events and bytes waiting (taken batches included), for backpressure
    /// without the queue's lock.
    waiting: Arc<(AtomicUsize, AtomicUsize)>,
    /// Woken when the queue drains below the low mark.
    room: Arc<Notify>,
}

impl Appender {
    /// An appender whose append ids follow `last` (the highest one the log
    /// recorded for this instance id).
    pub(super) fn new(node: Arc<Node>, last: u64) -> Arc<Self> {
        Arc::new(Self {
            node,
            queue: Mutex::new(Queue { next_n: last + 1, ..Queue::default() }),
            wake: Notify::new(),
            in_flight: AtomicUsize::new(0),
            overflowed: AtomicBool::new(false),
            sent: Mutex::default(),
            waiting: Arc::default(),
            room: Arc::new(Notify::new()),
        })
    }

    /// Appends queued events until the instance leaves the cluster (after
    /// [`Appender::flush`]).
    pub(super) async fn run(self: Arc<Self>) {
        let stop = self.node.stop.clone();
        let mut backoff = Duration::from_millis(50);
        loop {
            let batch = self.take();
            if batch.is_empty() {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = self.wake.notified() => {}
                }
                continue;
            }
            // Noted before the call: this instance's mirror may read the
            // batch back before the call returns (the lag metric was then
            // never recorded: a flaky tests/cluster/commands.rs).
            self.note_sent(&batch);
            match self.send(&batch).await {
                Ok(results) => {
                    backoff = Duration::from_millis(50);
                    self.done(batch, &results);
                }
                Err(e) => {
                    tracing::debug!(error = %e, events = batch.len(), "appending to the shared log failed; retrying");
                    self.put_back(batch);
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Waits until every queued event is appended, at most `timeout`.
    pub(super) async fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let empty = self.lock().entries.is_empty() && self.in_flight.load(Ordering::Acquire) == 0;
            if empty {
                return true;
            }
            self.wake.notify_one();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Events waiting.
    pub(super) fn queued(&self) -> usize {
        self.lock().entries.len() + self.in_flight.load(Ordering::Relaxed)
    }

    /// The time since `n` (an append id of this instance) was queued.
    pub(super) fn appended(&self, n: u64) -> Option<Duration> {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(&(m, at)) = sent.front() {
            if m > n {
                return None;
            }
            sent.pop_front();
            if m == n {
                return Some(at.elapsed());
            }
        }
        None
    }

    fn take(&self) -> Vec<Entry> {
        let mut queue = self.lock();
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(front) = queue.entries.front() {
            let size = front.event.draft.data.len();
            if !batch.is_empty() && (batch.len() == BATCH || bytes + size > BATCH_BYTES) {
                break;
            }
            bytes += size;
            batch.push(queue.entries.pop_front().expect("checked"));
        }
        self.in_flight.store(batch.len(), Ordering::Release);
        batch
    }

    fn put_back(&self, batch: Vec<Entry>) {
        let mut queue = self.lock();
        for entry in batch.into_iter().rev() {
            queue.entries.push_front(entry);
        }
        self.in_flight.store(0, Ordering::Release);
    }

    async fn send(&self, batch: &[Entry]) -> Result<Vec<i64>, redis::RedisError> {
        let limits = self.node.settings.limits;
        // The runtime's registration, for `on` (read here, not when queued:
        // `append` runs under the registry's lock).
        let registrations: Vec<String> = batch
            .iter()
            .map(|e| match e.event.op() {
                "on" => self.node.runtimes.info(&e.event.runtime).map(|i| RegistrationRecord::of(&i).to_json()),
                _ => None,
            })
            .map(Option::unwrap_or_default)
            .collect();
        let mut call = self
            .node
            .engine
            .script(Lua::Log, "append")
            .arg(&self.node.id)
            .arg(new_epoch())
            .arg(limits.events)
            .arg(limits.bytes)
            .arg(limits.max_age.as_millis() as u64)
            .arg(batch[0].n);
        for (entry, registration) in batch.iter().zip(&registrations) {
            for arg in entry.event.to_args(registration) {
                call = call.arg(arg.as_ref());
            }
        }
        let reply: Value = call.run().await?;
        Ok(redis::from_redis_value(reply).unwrap_or_default())
    }

    /// Remembers when each entry of `batch` was queued, for the lag its
    /// read-back shows ([`Appender::appended`]); bounded, oldest out. An
    /// entry the log refuses is never read back: a later one pops it.
    fn note_sent(&self, batch: &[Entry]) {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        for entry in batch {
            if sent.len() >= MAX_QUEUED {
                sent.pop_front();
            }
            sent.push_back((entry.n, entry.enqueued));
        }
    }

    fn done(&self, batch: Vec<Entry>, results: &[i64]) {
        let mut bytes = 0;
        for (entry, result) in batch.iter().zip(results.iter().copied().chain(std::iter::repeat(1))) {
            bytes += entry.event.draft.data.len();
            if result == 0 {
                ::metrics::counter!(FENCED_APPENDS).increment(1);
                tracing::debug!(runtime = %entry.event.runtime, kind = %entry.event.draft.kind, "append refused: another instance or connection holds the runtime");
            }
        }
        let mut queue = self.lock();
        queue.bytes -= bytes.min(queue.bytes);
        drop(queue);
        self.in_flight.store(0, Ordering::Release);
        self.waiting.0.fetch_sub(batch.len(), Ordering::AcqRel);
        self.waiting.1.fetch_sub(bytes, Ordering::AcqRel);
        if below(&self.waiting, 4) {
            self.room.notify_waiters();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl EventSink for Appender {
    fn append(&self, link: &Link, draft: Draft, reply_to: Option<String>) {
        let size = draft.data.len();
        let mut queue = self.lock();
        if queue.entries.len() >= MAX_QUEUED || queue.bytes + size > MAX_QUEUED_BYTES {
            drop(queue);
            ::metrics::counter!(DROPPED).increment(1);
            if !self.overflowed.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    max_events = MAX_QUEUED,
                    max_bytes = MAX_QUEUED_BYTES,
                    "the append queue is full (the engine is away): dropping events and closing runtime sockets so that they reconnect elsewhere"
                );
                self.node.fence.fence("append queue full");
            }
            return;
        }
        self.overflowed.store(false, Ordering::Relaxed);
        let n = queue.next_n;
        queue.next_n += 1;
        queue.bytes += size;
        self.waiting.0.fetch_add(1, Ordering::AcqRel);
        self.waiting.1.fetch_add(size, Ordering::AcqRel);
        let event = Append { runtime: link.runtime_id.clone(), generation: link.generation, draft, reply_to };
        queue.entries.push_back(Entry { n, event, enqueued: Instant::now() });
        drop(queue);
        self.wake.notify_one();
    }

    fn backpressure(&self) -> Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>>> {
        if below(&self.waiting, 2) {
            return None;
        }
        let (waiting, room) = (self.waiting.clone(), self.room.clone());
        Some(Box::pin(async move {
            loop {
                let drained = room.notified();
                tokio::pin!(drained);
                // Registered before the check, so a drain in between wakes it.
                drained.as_mut().enable();
                if below(&waiting, 4) {
                    return;
                }
                drained.await;
            }
        }))
    }
}

/// True while fewer than `1/part` of the queue's events and bytes wait.
fn below(waiting: &(AtomicUsize, AtomicUsize), part: usize) -> bool {
    waiting.0.load(Ordering::Acquire) < MAX_QUEUED / part && waiting.1.load(Ordering::Acquire) < MAX_QUEUED_BYTES / part
}
