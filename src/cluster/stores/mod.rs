//! Idempotency answers, stream tickets, revoked user tokens and turns that
//! outlive a request in Redis, so that every instance honours them: a
//! ticket issued on one instance is accepted once on any, a request
//! repeated on another instance gets the stored answer, a token revoked on
//! one is refused by all, and a turn followed on one is polled on any. Each
//! store's limit is applied in Redis, by the script that adds: a sorted
//! set per store indexes what it holds, and the script makes room in it
//! first (`make_room` in `helpers.lua`). Their scripts (`idempotency.lua`,
//! `tickets.lua`, `turns.lua`) run through the engine like every other call.

mod idempotency;
mod revocations;
mod tickets;
mod turns;

use crate::store::StoreError;

pub(super) use idempotency::RedisIdempotency;
pub(super) use revocations::RedisRevocations;
pub(super) use tickets::RedisTickets;
pub(super) use turns::RedisTurns;

/// A Redis failure as the stores report it.
fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}
