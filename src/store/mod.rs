//! The stores behind six HTTP features, each a small interface with its
//! in-memory implementation: answers remembered by `Idempotency-Key`
//! ([`IdempotencyStore`]), stream tickets ([`TicketStore`]), revoked
//! end-user tokens ([`RevocationStore`]), turns that outlive a request
//! ([`TurnStore`]), feeds ([`FeedStore`]) and per-credential rates
//! ([`RateStore`]). A shared
//! store (for several bridge instances) implements the same interfaces;
//! its calls can fail, hence [`StoreError`].

mod feeds;
mod idempotency;
mod rates;
mod revocations;
mod tickets;
mod turns;

use std::pin::Pin;

pub use feeds::{
    FEED_PREFIX, FeedFilter, FeedHold, FeedRecord, FeedStore, FeedStreams, FeedsFull, MAX_FEEDS, MAX_FEEDS_PER_USER,
    MemoryFeeds, is_feed_id, newest_first, parse_credential,
};
pub use idempotency::{Begin, Claim, Claimed, IdempotencyStore, MAX_STORED_BYTES, MemoryIdempotency, Stored};
pub use rates::{MAX_BUCKETS, MemoryRates, Rate, RateStore};
pub use revocations::{MAX_REVOCATIONS, MemoryRevocations, RevocationStore, RevokedFuture, unix_now};
pub use tickets::{MAX_TICKETS, MemoryTickets, RECONNECT_GRACE, TICKET_TTL, TicketHold, TicketStore, TicketUser};
pub use turns::{
    Finished, Listed, MAX_TURNS, MemoryTurns, Position, RUNNING_GRACE, TURN_RETENTION, TurnRecord, TurnStore,
};

/// A store call in flight.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why a store could not answer (never from the in-memory stores).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The shared store cannot be reached; retry later.
    #[error("the shared store is unavailable: {0}")]
    Unavailable(String),
}
