//! Per-credential token buckets in Redis (see [`RedisRates`]).

use std::sync::Arc;
use std::time::Duration;

use super::super::Node;
use super::super::engine::Lua;
use super::unavailable;
use crate::store::{Rate, RateStore, StoreFuture};

/// Buckets shared by the cluster: `rate:<sha-1 of the key>` holds a
/// bucket's tokens and when they were counted, by Redis's clock, and
/// expires once it would be full again (`rates.lua`). One script call per
/// request of a credential: a user who spent their budget on one instance
/// is refused on every other.
pub(in crate::backend::cluster) struct RedisRates {
    node: Arc<Node>,
}

impl RedisRates {
    pub(in crate::backend::cluster) fn new(node: Arc<Node>) -> Arc<Self> {
        Arc::new(Self { node })
    }
}

impl RateStore for Arc<RedisRates> {
    fn take<'a>(&'a self, key: &'a str, rate: Rate) -> StoreFuture<'a, Option<Duration>> {
        Box::pin(async move {
            let engine = &self.node.engine;
            let bucket = engine.key(&format!("rate:{}", sha1_smol::Sha1::from(key).digest()));
            let call = engine.script(Lua::Rates, "take").key(bucket).arg(rate.per_second).arg(rate.burst.max(1));
            let wait_ms: u64 = call.run().await.map_err(unavailable)?;
            Ok((wait_ms > 0).then(|| Duration::from_millis(wait_ms)))
        })
    }
}
