//! The one way to read the hub, and its one lag policy. Every reader — an
//! SSE stream, a client socket of Letta's, the follower of a turn — gets
//! the same three outcomes and handles each:
//!
//! - **events**, oldest first, in batches of at most [`BATCH`] events and
//!   [`super::MAX_BATCH_BYTES`] (but always one);
//! - **a lag**: the publisher never waits for a reader and keeps no queue
//!   per reader, so a reader the ring overtook skips to the oldest event
//!   still held, and is told how many it missed ([`Gap::Lagged`]) once,
//!   before the events after the gap;
//! - **a rebase**: the shared log this hub mirrors lost its data and
//!   restarted under a new epoch; the reader is told ([`Gap::Rebased`])
//!   once, before the new epoch's first event.
//!
//! A reader never passes a gap in silence, and never gets an event twice.
//! What it tells its own audience is its door's business: SSE sends a
//! `lagged` or `reset` event, a client socket lets the runtime's
//! `event_seq` show the gap, the turn follower fails its wait.

use std::sync::Arc;

use super::Event;
use super::subscription::Subscription;

/// Most events one read yields (the hub also stops a batch at
/// [`super::MAX_BATCH_BYTES`]).
pub const BATCH: usize = 256;

/// A break in the events a reader gets; reading goes on after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gap {
    /// `missed` events left the ring before this reader read them; it goes
    /// on with the oldest event held, the one after `resume_from`.
    Lagged {
        /// How many.
        missed: u64,
        /// The id after which reading goes on.
        resume_from: String,
    },
    /// The log restarted under a new epoch: whatever followed `previous`
    /// (the old epoch's id of this reader's position) is gone; reading goes
    /// on with the new epoch's first event, after `resume_from`
    /// (`<new epoch>-0`).
    Rebased {
        /// The old epoch's id of this reader's position.
        previous: String,
        /// The id after which reading goes on.
        resume_from: String,
    },
}

/// What one read yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// New events, oldest first: [`Reader::batch`].
    Events,
    /// A break before the next events.
    Gap(Gap),
}

/// One reader of the hub: its place in the ring and its batch.
pub struct Reader {
    sub: Subscription,
    /// Grows on the first events: an idle reader holds no batch buffer.
    batch: Vec<Arc<Event>>,
}

impl Reader {
    pub(super) fn new(sub: Subscription) -> Self {
        Self { sub, batch: Vec::new() }
    }

    /// Seq of the last event this reader has been given (or skipped).
    pub fn position(&self) -> u64 {
        self.sub.position()
    }

    /// Waits until something is new. The batch of the read before is
    /// cleared first.
    pub async fn next(&mut self) -> Next {
        self.batch.clear();
        self.sub.recv(&mut self.batch, BATCH).await
    }

    /// Reads without waiting; `None` when nothing is new.
    pub fn try_next(&mut self) -> Option<Next> {
        self.batch.clear();
        self.sub.try_read(&mut self.batch, BATCH)
    }

    /// The events of the last [`Next::Events`], oldest first, to take or
    /// filter (the next read clears what is left).
    pub fn batch(&mut self) -> &mut Vec<Arc<Event>> {
        &mut self.batch
    }
}
