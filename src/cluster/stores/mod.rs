//! Idempotency answers, stream tickets and revoked user tokens in Redis, so
//! that every instance honours them: a ticket issued on one instance is
//! accepted once on any, a request repeated on another instance gets the
//! stored answer, and a token revoked on one is refused by all. Each
//! store's limit is applied in Redis, by the script that adds: a sorted
//! set per store indexes what it holds, and the script makes room in it
//! first ([`MAKE_ROOM`]).

mod idempotency;
mod revocations;
mod tickets;

use redis::Script;

use crate::store::StoreError;

pub(in crate::cluster) use idempotency::RedisIdempotency;
pub(in crate::cluster) use revocations::RedisRevocations;
pub(in crate::cluster) use tickets::RedisTickets;

/// Redis's clock in milliseconds (the same for every instance); scripts
/// start with it.
pub(super) const NOW_MS: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"#;

/// Makes room for one more member of the sorted set KEYS[2], bounded to
/// `max`: members scored at or below `stale` are gone already and leave
/// the set; beyond that the lowest-scored go, each with its key deleted.
pub(super) const MAKE_ROOM: &str = r#"
local function make_room(max, stale)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', stale)
  local over = redis.call('ZCARD', KEYS[2]) - max + 1
  if over > 0 then
    local oldest = redis.call('ZPOPMIN', KEYS[2], over)
    for i = 1, #oldest, 2 do redis.call('DEL', oldest[i]) end
  end
end
"#;

/// A script with the helpers it uses.
pub(super) fn script(helpers: &[&str], body: &str) -> Script {
    Script::new(&[helpers.concat(), body.to_owned()].concat())
}

/// A Redis failure as the stores report it.
fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}
