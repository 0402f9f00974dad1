//! Idempotency answers, stream tickets, revoked user tokens, turns that
//! outlive a request, feeds and per-credential rates in Redis, so that every instance honours
//! them: a ticket issued on one instance is accepted once on any, a request
//! repeated on another instance gets the stored answer, a token revoked on
//! one is refused by all, a turn followed on one is polled on any, and a
//! feed made on one is served by all until it is deleted on any. Each
//! store's limit is applied in Redis, by the script that adds: a sorted
//! set per store indexes what it holds, and the script makes room in it
//! first (`make_room` in `helpers.lua`; feeds refuse instead, `feeds.lua`).
//! Their scripts (`idempotency.lua`, `tickets.lua`, `turns.lua`,
//! `feeds.lua`, `rates.lua`) run through the engine like every other call.

mod feeds;
mod idempotency;
mod rates;
mod revocations;
mod tickets;
mod turns;

use crate::store::StoreError;

pub(super) use feeds::RedisFeeds;
pub(super) use idempotency::RedisIdempotency;
pub(super) use rates::RedisRates;
pub(super) use revocations::RedisRevocations;
pub(super) use tickets::RedisTickets;
pub(super) use turns::RedisTurns;

/// A Redis failure as the stores report it.
fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}
