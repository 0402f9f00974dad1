//! Turns that outlive a request, in Redis (see [`RedisTurns`]).

use std::sync::Arc;
use std::time::Duration;

use super::super::Node;
use super::super::engine::Lua;
use super::unavailable;
use crate::store::{Listed, MAX_TURNS, Position, StoreFuture, TURN_RETENTION, TurnRecord, TurnStore};

/// Turns shared by the cluster, so that any instance answers a poll:
/// `turn:<id>` is a hash holding the turn's principal (`p`), its record
/// (`r`, [`TurnRecord`] as JSON) and, once finished, its position (`s`);
/// a running turn's hash lives until its deadline plus the grace, a
/// finished one for [`TURN_RETENTION`]. `turns` (a sorted set: finished
/// turns by position) bounds them to [`MAX_TURNS`] across the cluster, the
/// earliest finished going first, as in memory; `turns-meta` holds the
/// epoch and the last position. Every step is one call of `turns.lua`.
pub(in crate::backend::cluster) struct RedisTurns {
    node: Arc<Node>,
}

impl RedisTurns {
    pub(in crate::backend::cluster) fn new(node: Arc<Node>) -> Arc<Self> {
        Arc::new(Self { node })
    }

    fn key(&self, id: &str) -> String {
        self.node.engine.key(&format!("turn:{id}"))
    }

    /// An epoch for a store that has none yet.
    fn fresh_epoch() -> String {
        uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
    }
}

impl TurnStore for Arc<RedisTurns> {
    fn start<'a>(&'a self, record: &'a TurnRecord, keep: Duration) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let engine = &self.node.engine;
            let call = engine.script(Lua::Turns, "start").key(self.key(&record.id)).key(engine.key("turns"));
            let call = call.key(engine.key("turns-meta")).arg(&record.principal).arg(record.to_json());
            let _: i64 = call.arg(keep.as_millis().max(1) as u64).run().await.map_err(unavailable)?;
            Ok(())
        })
    }

    fn finish<'a>(&'a self, record: &'a TurnRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let engine = &self.node.engine;
            let call = engine.script(Lua::Turns, "finish").key(self.key(&record.id)).key(engine.key("turns"));
            let call = call.key(engine.key("turns-meta")).arg(&record.principal).arg(record.to_json());
            let call = call.arg(TURN_RETENTION.as_millis() as u64).arg(MAX_TURNS).arg(RedisTurns::fresh_epoch());
            let _: i64 = call.run().await.map_err(unavailable)?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<TurnRecord>> {
        Box::pin(async move {
            let record: Option<String> = self
                .node
                .engine
                .run(&redis::cmd("HGET").arg(self.key(id)).arg("r").to_owned())
                .await
                .map_err(unavailable)?;
            Ok(record.as_deref().and_then(TurnRecord::from_json))
        })
    }

    fn list<'a>(
        &'a self,
        principal: Option<&'a str>,
        after: Option<&'a Position>,
        limit: usize,
    ) -> StoreFuture<'a, Listed> {
        Box::pin(async move {
            let engine = &self.node.engine;
            let call = engine.script(Lua::Turns, "list").key(self.key("-")).key(engine.key("turns"));
            let call = call.key(engine.key("turns-meta")).arg(principal.unwrap_or(""));
            let call = call.arg(after.map_or("", |a| a.epoch.as_str())).arg(after.map_or(0, |a| a.seq));
            let reply: Vec<String> = call.arg(limit).arg(RedisTurns::fresh_epoch()).run().await.map_err(unavailable)?;
            let mut reply = reply.into_iter();
            let epoch = reply.next().unwrap_or_default();
            let seq = reply.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let turns = reply.filter_map(|r| TurnRecord::from_json(&r)).collect();
            Ok(Listed { turns, next: Position { epoch, seq } })
        })
    }
}
