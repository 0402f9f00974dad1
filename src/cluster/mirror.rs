//! Each instance mirrors the shared log into its own hub: one blocking read
//! at a time on a connection of its own, every entry applied with the log's
//! seq. Replay, resume, `reset`, `lagged`, `?wait=true` and
//! `?wait=completion` then run on the local ring as in one process, and the
//! log is the reply path: a waiter on any instance is completed here.
//!
//! Epoch rules (what a restarted or failed-over engine looks like):
//! - the log's epoch changed (its data was lost): the hub rebases, every
//!   subscriber gets `reset` (`other_epoch`), the mirror reads the new log
//!   from its start, and this instance announces its runtimes again;
//! - same epoch but fewer events than the mirror has read (the engine came
//!   back with an older copy): the log starts again under a new epoch
//!   rather than give old ids to new events, then as above.
//!
//! The epoch is checked on every (re)connection and at least every second.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, RedisError, Value};

use super::Node;
use crate::hub::Draft;
use crate::runtime::Logged;

/// Longest one blocking read waits (and so the longest between epoch checks
/// on an idle log).
const BLOCK_MS: usize = 1000;

/// Entries per read.
const COUNT: usize = 512;

/// Between epoch checks on a busy log.
const CHECK_EVERY: Duration = Duration::from_secs(1);

pub(super) const EPOCH_CHANGES: &str = "letta_bridge_epoch_changes_total";

/// Follows the log until the process ends.
pub(super) async fn run(node: Arc<Node>) {
    let mut mirror = Mirror { node, last: 0, first: true };
    let mut backoff = Duration::from_millis(50);
    loop {
        match mirror.follow().await {
            Ok(()) => backoff = Duration::from_millis(50),
            Err(e) => {
                mirror.node.engine.failed(&e);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

struct Mirror {
    node: Arc<Node>,
    /// The seq of the last entry applied.
    last: u64,
    /// True until the first epoch is taken.
    first: bool,
}

impl Mirror {
    /// Follows the log until its epoch needs a fresh look; `Err` on engine errors.
    async fn follow(&mut self) -> Result<(), RedisError> {
        let mut con = self.node.engine.blocking_connection().await?;
        let Some(target) = self.check_epoch().await? else { return Ok(()) };
        let events = self.node.engine.key("events");
        let options = StreamReadOptions::default().block(BLOCK_MS).count(COUNT);
        let mut checked = Instant::now();
        loop {
            if !self.node.ready.load(Ordering::Relaxed) && self.last >= target {
                self.node.ready.store(true, Ordering::Relaxed);
                tracing::info!(seq = self.last, epoch = %self.node.hub.epoch(), "the mirror of the shared log is loaded");
            }
            let read: Result<StreamReadReply, RedisError> =
                con.xread_options(&[&events], &[format!("{}-0", self.last)], &options).await;
            self.node.engine.note(&read);
            let epoch = self.node.hub.epoch();
            for key in read?.keys {
                for entry in key.ids {
                    if !self.apply(&epoch, &entry.id, &entry.map) {
                        return Ok(()); // an entry of another epoch: look again
                    }
                }
            }
            if checked.elapsed() >= CHECK_EVERY {
                checked = Instant::now();
                if self.check_epoch().await?.is_none() {
                    return Ok(());
                }
            }
        }
    }

    /// Compares the log's epoch and length with the mirror's; rebases or
    /// bumps as the module doc says. `Some(seq)`: the log's length, keep
    /// reading; `None`: the epoch changed, start again.
    async fn check_epoch(&mut self) -> Result<Option<u64>, RedisError> {
        let (epoch, seq): (String, u64) = self.node.engine.script("meta", &[&super::new_epoch()]).await?;
        let mine = self.node.hub.epoch();
        let first = std::mem::replace(&mut self.first, false);
        if *mine != *epoch {
            if !first {
                ::metrics::counter!(EPOCH_CHANGES).increment(1);
                tracing::warn!(from = %mine, to = %epoch, "the shared log lost its data; subscribers get a reset");
            }
            self.node.hub.rebase(&epoch);
            self.last = 0;
            if first {
                self.load_registry().await?;
            } else {
                self.node.runtimes().reannounce();
            }
            return Ok(Some(seq));
        }
        if seq < self.last {
            let fresh = super::new_epoch();
            let now: String = self.node.engine.script("bump", &[&epoch, &fresh]).await?;
            tracing::warn!(log = seq, mirror = self.last, epoch = %now, "the shared log is behind this mirror (an older copy); it starts again under a new epoch");
            return Ok(None);
        }
        Ok(Some(seq))
    }

    /// Applies one entry; false when it belongs to another epoch.
    fn apply(&mut self, epoch: &str, id: &str, map: &HashMap<String, Value>) -> bool {
        let text = |name: &str| match map.get(name) {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            _ => String::new(),
        };
        if text("e") != epoch {
            return false;
        }
        let Some(seq) = id.split_once('-').and_then(|(s, _)| s.parse::<u64>().ok()) else { return true };
        let number = |name: &str| text(name).parse::<u64>().unwrap_or(0);
        let optional = |name: &str| Some(text(name)).filter(|s| !s.is_empty());
        let runtime_id: Arc<str> = Arc::from(text("r"));
        let engine_ms = number("t");
        let age = Duration::from_millis(self.node.engine_now_ms().saturating_sub(engine_ms));
        let draft = Draft {
            kind: text("k"),
            runtime_id: Some(runtime_id.clone()),
            agent_id: optional("a"),
            conversation_id: optional("v"),
            data: text("d"),
        };
        let Some(event) = self.node.hub.apply(seq, age, draft) else {
            self.last = self.last.max(seq);
            return true;
        };
        self.last = seq;
        let node = text("n");
        if node == self.node.id
            && let Some((_, n)) = text("i").rsplit_once(':')
            && let Ok(n) = n.parse::<u64>()
            && let Some(lag) = self.node.appender().appended(n)
        {
            ::metrics::histogram!(super::appender::APPEND_LAG).record(lag.as_secs_f64());
        }
        let reply_to = optional("q");
        let logged = Logged {
            runtime_id: &runtime_id,
            kind: &event.kind,
            node: &node,
            generation: number("g"),
            reply_to: reply_to.as_deref(),
            agent_id: event.agent_id.as_deref(),
            conversation_id: event.conversation_id.as_deref(),
            at: UNIX_EPOCH + Duration::from_millis(engine_ms),
            data: event.data(),
        };
        self.node.runtimes().on_logged(&logged, &self.node.id);
        true
    }

    /// Learns which instance holds which runtime from the engine (for
    /// runtimes whose `runtime_online` left the log long ago).
    async fn load_registry(&self) -> Result<(), RedisError> {
        let devices: Vec<String> =
            self.node.engine.run(redis::cmd("SMEMBERS").arg(self.node.engine.key("devices"))).await?;
        if devices.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for d in &devices {
            pipe.cmd("HMGET").arg(self.node.engine.key(&format!("rt:{d}"))).arg("node").arg("gen").arg("online_since");
        }
        let owners: Vec<(Option<String>, Option<u64>, Option<u64>)> = self.node.engine.pipe(&pipe).await?;
        for (device, (node, generation, since)) in devices.iter().zip(owners) {
            if let (Some(node), Some(generation)) = (node, generation)
                && node != self.node.id
            {
                let since = UNIX_EPOCH + Duration::from_millis(since.unwrap_or(0));
                self.node.runtimes().remote_online(device, &node, generation, since);
            }
        }
        tracing::info!(runtimes = devices.len(), "loaded the cluster's runtimes");
        Ok(())
    }
}

/// Now as Unix milliseconds.
pub(super) fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
