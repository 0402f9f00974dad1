//! A subscriber's view of the ring: a cursor and a wake-up handle.
//!
//! Ordering guarantee: the start position is fixed under the ring lock, and
//! every later read takes events strictly after the cursor, so a resume is
//! replay-then-live with no gap and no duplicate at the boundary.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;

use super::reader::{Gap, Next};
use super::{Event, Hub, MAX_BATCH_BYTES, event::Cursor};

/// Where a subscription starts.
#[derive(Debug, Clone, Copy)]
pub enum Start<'a> {
    /// With the next event published.
    Live,
    /// With the event after this cursor (`Last-Event-ID`).
    After(&'a str),
}

/// Why a resume cursor was not honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// Not of the form `<epoch>-<seq>`.
    Malformed,
    /// Newer than any event of this epoch.
    Unknown,
    /// Events after it have already left the ring.
    Expired,
    /// From another run of the bridge (it restarted).
    OtherEpoch,
}

impl ResetReason {
    /// The `reason` clients see.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed_cursor",
            Self::Unknown => "unknown_cursor",
            Self::Expired => "expired_cursor",
            Self::OtherEpoch => "other_epoch",
        }
    }
}

/// One subscriber's place in the ring.
pub(super) struct Subscription {
    hub: Hub,
    /// Seq of the next event this subscriber wants.
    next: u64,
    /// The ring's era when `next` was last set (see [`Gap::Rebased`]).
    era: u64,
    wake: watch::Receiver<u64>,
}

/// A reset decided at subscribe time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetInfo {
    /// Why the cursor was not honoured.
    pub reason: ResetReason,
    /// The oldest seq still held, if any.
    pub oldest: Option<u64>,
    /// The seq after which the stream continues (live).
    pub resume_after: u64,
}

pub(super) fn resolve_start(
    epoch: &str,
    events: &VecDeque<Arc<Event>>,
    last_seq: u64,
    start: Start<'_>,
) -> (u64, Option<ResetInfo>) {
    let live = last_seq + 1;
    let Start::After(raw) = start else {
        return (live, None);
    };
    let oldest = events.front().map(|e| e.seq);
    let reset = |reason| (live, Some(ResetInfo { reason, oldest, resume_after: last_seq }));
    let Some(cursor) = Cursor::parse(raw) else {
        return reset(ResetReason::Malformed);
    };
    if cursor.epoch != epoch {
        return reset(ResetReason::OtherEpoch);
    }
    if cursor.seq > last_seq {
        return reset(ResetReason::Unknown);
    }
    // Every event after the cursor must still be in the ring.
    let first_needed = cursor.seq + 1;
    let held_from = oldest.unwrap_or(live);
    if first_needed < held_from {
        return reset(ResetReason::Expired);
    }
    (first_needed, None)
}

impl Subscription {
    pub(super) fn new(hub: Hub, next: u64, era: u64, wake: watch::Receiver<u64>) -> Self {
        Self { hub, next, era, wake }
    }

    /// Seq of the last event this subscriber has been given (or skipped).
    pub fn position(&self) -> u64 {
        self.next - 1
    }

    /// Waits until something is new, then moves up to `max` events, and at
    /// most [`MAX_BATCH_BYTES`] of them (but always one), into `buf`.
    pub async fn recv(&mut self, buf: &mut Vec<Arc<Event>>, max: usize) -> Next {
        loop {
            // Mark the wake-up seen before looking, so a publish after the
            // look makes `changed()` return at once.
            self.wake.borrow_and_update();
            if let Some(read) = self.try_read(buf, max) {
                return read;
            }
            if self.wake.changed().await.is_err() {
                // The hub is gone; nothing will ever be published again.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Reads without waiting; `None` when nothing is new.
    pub fn try_read(&mut self, buf: &mut Vec<Arc<Event>>, max: usize) -> Option<Next> {
        let ring = self.hub.read();
        if self.era != ring.era {
            let epoch = ring.previous_epoch.as_deref().unwrap_or_default();
            let previous = format!("{epoch}-{}", self.next - 1);
            self.era = ring.era;
            self.next = 1;
            let resume_from = format!("{}-0", ring.epoch);
            return Some(Next::Gap(Gap::Rebased { previous, resume_from }));
        }
        if self.next > ring.last_seq {
            return None;
        }
        let front = ring.events.front().map_or(ring.last_seq + 1, |e| e.seq);
        if self.next < front {
            let missed = front - self.next;
            self.next = front;
            let resume_from = format!("{}-{}", ring.epoch, front - 1);
            return Some(Next::Gap(Gap::Lagged { missed, resume_from }));
        }
        let skip = usize::try_from(self.next - front).expect("ring index fits in usize");
        // A batch stops at MAX_BATCH_BYTES, so a slow subscriber holds (and
        // its writer copies) about one batch, however large the events.
        let (mut taken, mut bytes) = (0, 0);
        for event in ring.events.range(skip..).take(max) {
            if taken > 0 && bytes + event.size() > MAX_BATCH_BYTES {
                break;
            }
            taken += 1;
            bytes += event.size();
            buf.push(event.clone());
        }
        self.next += taken as u64;
        Some(Next::Events)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.inner.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}
