//! Each instance mirrors the shared log into its own hub: one blocking read
//! at a time on a connection of its own, every entry ([`LogEntry`]) applied
//! with the log's seq, then handed to the runtimes ([`Handle::on_applied`],
//! as the embedded sink does). Replay, resume, `reset`, `lagged`,
//! `?wait=true` and `?wait=completion` then run on the local ring as in one
//! process, and the log is the reply path: a waiter on any instance is
//! completed here. The epoch rules are [`super::epoch`]'s.
//!
//! [`Handle::on_applied`]: crate::runtime::Handle::on_applied

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use redis::{RedisError, Value};
use tokio::time::Instant;

use super::Node;
use super::appender::Appender;
use super::engine::Lua;
use super::entry::{EntryError, LogEntry};
use super::epoch::{Verdict, judge, new_epoch};
use crate::runtime::{Applied, Origin};

/// Longest one blocking read waits (and so the longest between epoch checks
/// on an idle log).
const BLOCK_MS: usize = 1000;

/// Entries per read.
const COUNT: usize = 512;

/// Subscribers are woken after this many entries of a read and at its end,
/// not after each: they read what came in larger batches (fewer polls and
/// writes), and the first entry of a full read (512) waits at most 64
/// applications (~0.3 ms at ~4 µs each) for its wake-up.
const WAKE_EVERY: usize = 64;

/// Between epoch checks on a busy log.
const CHECK_EVERY: Duration = Duration::from_secs(1);

use crate::metrics::EPOCH_CHANGES;

/// Follows the log until the instance leaves the cluster.
pub(super) async fn run(node: Arc<Node>, appender: Arc<Appender>) {
    let stop = node.stop.clone();
    let mut mirror = Mirror { node, appender, last: 0, first: true };
    let mut backoff = Duration::from_millis(50);
    loop {
        let followed = tokio::select! {
            () = stop.cancelled() => return,
            followed = mirror.follow() => followed,
        };
        match followed {
            Ok(()) => backoff = Duration::from_millis(50),
            Err(e) => {
                mirror.node.engine.failed(&e);
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

struct Mirror {
    node: Arc<Node>,
    /// This instance's appends, to time them until they are read back, and
    /// to announce its runtimes again after the log lost them.
    appender: Arc<Appender>,
    /// The seq of the last entry applied.
    last: u64,
    /// True until the first epoch is taken.
    first: bool,
}

impl Mirror {
    /// Follows the log until its epoch needs a fresh look; `Err` on engine errors.
    async fn follow(&mut self) -> Result<(), RedisError> {
        // After a failover the read goes to the new primary.
        let moves = self.node.engine.moves();
        let mut con = self.node.engine.blocking_connection().await?;
        let Some(target) = self.check_epoch().await? else { return Ok(()) };
        let events = self.node.engine.key("events");
        let mut checked = Instant::now();
        loop {
            if moves.has_changed().unwrap_or(true) {
                return Ok(());
            }
            if self.last >= target && !*self.node.loaded.borrow() {
                self.node.loaded.send_replace(true);
                tracing::info!(seq = self.last, epoch = %self.node.hub.epoch(), "the mirror of the shared log is loaded");
            }
            let mut xread = redis::cmd("XREAD");
            xread.arg("COUNT").arg(COUNT).arg("BLOCK").arg(BLOCK_MS).arg("STREAMS").arg(&events);
            let read: Result<Value, RedisError> = xread.arg(format!("{}-0", self.last)).query_async(&mut con).await;
            self.node.engine.note(&read);
            let epoch = self.node.hub.epoch();
            let entries = LogEntry::read(read?);
            let read_some = !entries.is_empty();
            let mut other_epoch = false;
            for (i, entry) in entries.into_iter().enumerate() {
                if !self.apply(&epoch, entry) {
                    other_epoch = true;
                    break;
                }
                if i % WAKE_EVERY == WAKE_EVERY - 1 {
                    self.node.hub.wake();
                }
            }
            if read_some {
                self.node.hub.wake();
            }
            if other_epoch {
                return Ok(()); // look again
            }
            if checked.elapsed() >= CHECK_EVERY {
                checked = Instant::now();
                if self.check_epoch().await?.is_none() {
                    return Ok(());
                }
            }
        }
    }

    /// Compares the log's epoch and length with the mirror's and acts on
    /// the verdict. `Some(seq)`: the log's length, keep reading; `None`:
    /// the epoch changed, start again.
    async fn check_epoch(&mut self) -> Result<Option<u64>, RedisError> {
        let mine = self.node.hub.epoch();
        let meta = self.node.engine.script(Lua::Log, "meta").arg(new_epoch()).arg(&self.node.id);
        let (epoch, seq): (String, u64) = meta.arg(&*mine).arg(self.last).run().await?;
        let first = std::mem::replace(&mut self.first, false);
        match judge(&mine, self.last, &epoch, seq) {
            Verdict::Follow => Ok(Some(seq)),
            Verdict::Rebase => {
                if !first {
                    ::metrics::counter!(EPOCH_CHANGES).increment(1);
                    tracing::warn!(from = %mine, to = %epoch, "the shared log lost its data; subscribers get a reset");
                }
                self.node.hub.rebase(&epoch);
                self.last = 0;
                if first {
                    self.load_registry().await?;
                } else {
                    self.node.runtimes.reannounce(&*self.appender);
                }
                Ok(Some(seq))
            }
            Verdict::Bump => {
                let now: String = self.node.engine.script(Lua::Log, "bump").arg(&epoch).arg(new_epoch()).run().await?;
                tracing::warn!(log = seq, mirror = self.last, epoch = %now, "the shared log is behind this mirror (an older copy); it starts again under a new epoch");
                Ok(None)
            }
        }
    }

    /// Stores one entry (subscribers are woken after the read) and hands it
    /// to the runtimes; false when it belongs to another epoch.
    fn apply(&mut self, epoch: &str, entry: Result<LogEntry, EntryError>) -> bool {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!(error = %e, "skipping an entry of the shared log");
                return true;
            }
        };
        if entry.epoch != epoch {
            return false;
        }
        let append_number = entry.append_number();
        let LogEntry { seq, node, generation, reply_to, engine_ms, draft, .. } = entry;
        let age = Duration::from_millis(self.node.lease.engine_now_ms().saturating_sub(engine_ms));
        let Some(event) = self.node.hub.store(seq, age, draft) else {
            self.last = self.last.max(seq);
            return true;
        };
        self.last = seq;
        let here = node == self.node.id;
        if here
            && let Some(n) = append_number
            && let Some(lag) = self.appender.appended(n)
        {
            ::metrics::histogram!(crate::metrics::APPEND_VISIBLE).record(lag.as_secs_f64());
        }
        let at = UNIX_EPOCH + Duration::from_millis(engine_ms);
        let origin = if here { Origin::Here } else { Origin::Instance { node: &node, at } };
        let applied = Applied { event: &event, generation, reply_to: reply_to.as_deref(), origin };
        self.node.runtimes.on_applied(&applied);
        true
    }

    /// Learns which instance holds which runtime from the engine (for
    /// runtimes whose `runtime_online` left the log long ago).
    async fn load_registry(&self) -> Result<(), RedisError> {
        let engine = &self.node.engine;
        let devices: Vec<String> = engine.run(redis::cmd("SMEMBERS").arg(engine.key("devices"))).await?;
        if devices.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for d in &devices {
            pipe.cmd("HMGET").arg(engine.key(&format!("rt:{d}"))).arg("node").arg("gen").arg("online_since");
        }
        let owners: Vec<(Option<String>, Option<u64>, Option<u64>)> = engine.pipe(&pipe).await?;
        for (device, (node, generation, since)) in devices.iter().zip(owners) {
            if let (Some(node), Some(generation)) = (node, generation)
                && node != self.node.id
            {
                let since = UNIX_EPOCH + Duration::from_millis(since.unwrap_or(0));
                self.node.runtimes.remote_online(device, &node, generation, since);
            }
        }
        tracing::info!(runtimes = devices.len(), "loaded the cluster's runtimes");
        Ok(())
    }
}
