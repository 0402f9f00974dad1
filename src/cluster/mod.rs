//! Several bridge instances on one Redis (`LETTA_BRIDGE_CLUSTER_URL`).
//!
//! The design in one screen (the long form is docs/cluster.md):
//! - One Redis stream is the event log; one script (`log.lua`) appends in
//!   order, assigning the seq that becomes every event's id
//!   `<epoch>-<seq>` on every instance. Each instance appends the events of
//!   its runtime sockets through one bounded queue ([`appender`]) as typed
//!   records ([`entry`]) and mirrors the whole log into its own hub
//!   ([`mirror`], under the [`epoch`] rules): subscribers, resume, replies
//!   and followed turns work on the mirror as in one process.
//! - Who holds which runtime is in the log too (`runtime_online` /
//!   `runtime_offline`, written by the same script with the owner's record,
//!   [`records`]), so every instance routes without asking; commands for a
//!   runtime of another instance go to it over pub/sub ([`peers`],
//!   [`messages`]).
//! - Leases and a reaper notice lost instances ([`presence`]); an instance
//!   that cannot reach Redis fences itself ([`fencing`]); tickets,
//!   idempotency answers, revocations and feeds live in Redis ([`stores`],
//!   with the streams' ticket [`holds`]), and so do the turns that outlive
//!   a request and the [`webhooks`] (delivered by one leader at a time).
//!   Every call goes through the [`engine`], to the primary the URL or
//!   Redis Sentinel names ([`primary`]; followed after a failover), and
//!   counts in its [`health`].
//!
//! It plugs into the seams the embedded mode has: [`crate::runtime::EventSink`],
//! [`crate::runtime::Peers`], and the stores of [`crate::store`]; it calls
//! the runtimes back through their narrow [`crate::runtime::Handle`] only.
//! Its loops and tasks run under one token and tracker, stopped by
//! [`Cluster::leave`] (or when the cluster is dropped).

mod appender;
mod engine;
mod entry;
mod epoch;
mod fencing;
mod health;
mod holds;
mod messages;
mod mirror;
mod peers;
mod presence;
mod primary;
mod records;
mod stores;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use self::appender::Appender;
use self::engine::Engine;
use self::fencing::Fence;
use self::holds::{Takeover, TicketHolds, takeover};
use self::messages::Message;
use self::peers::ClusterPeers;
use self::presence::Lease;
use super::{ClusterStatus, ClusterView};
use crate::hub::{Hub, Limits};
use crate::runtime::{self, Handle, Runtimes};
use crate::store::{FeedStore, IdempotencyStore, RateStore, RevocationStore, TicketStore, TurnStore};

/// What a cluster instance is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The Redis URL.
    pub url: String,
    /// The cluster's name (key prefix and hash tag).
    pub name: String,
    /// This instance's id.
    pub node_id: String,
    /// The lease time.
    pub node_ttl: Duration,
    /// The replay limits: the shared log is trimmed like each ring.
    pub limits: Limits,
    /// A runtime offline this long leaves the cluster's registry.
    pub forget_offline_after: Duration,
}

/// One instance's part of the cluster.
pub struct Cluster {
    node: Arc<Node>,
    appender: Arc<Appender>,
    /// Stops the cluster's tasks when the last handle to it goes.
    _stop: DropGuard,
}

/// What the parts of a cluster instance share, by concept.
struct Node {
    engine: Engine,
    /// This instance's id.
    id: String,
    settings: Settings,
    /// The hub the mirror fills.
    hub: Hub,
    /// This instance's runtimes, as the cluster calls them back.
    runtimes: Handle,
    /// What the last renewal of this instance's lease learnt.
    lease: Lease,
    /// Whether this instance has fenced itself.
    fence: Fence,
    /// The ticket holds of this instance's streams.
    holds: TicketHolds,
    /// True once the mirror has read the log up to where it was at start.
    loaded: watch::Sender<bool>,
    /// Cancelled when the instance leaves: every loop and task below ends.
    stop: CancellationToken,
    /// The cluster's loops and tasks, awaited on leaving.
    tasks: TaskTracker,
}

impl Cluster {
    /// Describes the cluster's metrics (call once at start; names and
    /// descriptions: [`crate::metrics`]).
    pub fn describe_metrics() {
        crate::metrics::describe_cluster();
    }

    /// Connects, takes over what a previous process with this instance id
    /// left, starts the appender, mirror, listener and lease, and returns the
    /// runtimes of this instance and the hub its mirror fills.
    pub async fn start(settings: Settings, runtime_settings: runtime::Settings) -> anyhow::Result<(Self, Runtimes)> {
        let engine = Engine::connect(&settings.url, &settings.name)
            .await
            .context("cannot reach the cluster's Redis (LETTA_BRIDGE_CLUSTER_URL)")?;
        warn_about_eviction(&engine).await;
        let hub = Hub::new(settings.limits);
        let handle = Handle::new(runtime_settings, generation_base(&settings.node_id));
        let stop = CancellationToken::new();
        let node = Arc::new(Node {
            engine,
            id: settings.node_id.clone(),
            settings,
            hub: hub.clone(),
            runtimes: handle.clone(),
            lease: Lease::default(),
            fence: Fence::new(handle.clone()),
            holds: TicketHolds::default(),
            loaded: watch::Sender::new(false),
            stop: stop.clone(),
            tasks: TaskTracker::new(),
        });
        let last: Option<u64> = node
            .engine
            .run(redis::cmd("HGET").arg(node.engine.key("meta")).arg(format!("last:{}", node.id)))
            .await
            .context("cannot read the cluster's log")?;
        let appender = Appender::new(node.clone(), last.unwrap_or(0));
        let peers = ClusterPeers::new(node.clone());
        let runtimes = Runtimes::clustered(handle, hub, appender.clone(), peers.clone());
        // A process that ran under this id before left its runtimes behind.
        presence::take_over(&node).await.context("cannot take over this instance id's runtimes")?;
        presence::renew(&node).await.context("cannot take a lease in the cluster")?;
        node.tasks.spawn(appender.clone().run());
        node.tasks.spawn(mirror::run(node.clone(), appender.clone()));
        node.tasks.spawn(peers.listen());
        node.tasks.spawn(presence::run(node.clone(), appender.clone()));
        let watcher = node.clone();
        node.tasks.spawn(async move { watcher.engine.watch(watcher.stop.clone()).await });
        tracing::info!(node = %node.id, cluster = %node.settings.name, "joined the cluster");
        Ok((Self { node, appender, _stop: stop.drop_guard() }, runtimes))
    }

    /// The hub the mirror fills.
    pub fn hub(&self) -> Hub {
        self.node.hub.clone()
    }

    /// Waits until the mirror has read the log (at most `timeout`).
    pub async fn loaded(&self, timeout: Duration) -> bool {
        let mut loaded = self.node.loaded.subscribe();
        tokio::time::timeout(timeout, loaded.wait_for(|l| *l)).await.is_ok_and(|l| l.is_ok())
    }

    /// Idempotency answers shared by the cluster, at most `max_keys` of them.
    pub fn idempotency(&self, window: Duration, max_wait: Duration, max_keys: usize) -> Arc<dyn IdempotencyStore> {
        Arc::new(Arc::new(stores::RedisIdempotency::new(self.node.clone(), window, max_wait, max_keys)))
    }

    /// Stream tickets shared by the cluster.
    pub fn tickets(&self) -> Arc<dyn TicketStore> {
        Arc::new(stores::RedisTickets::new(self.node.clone()))
    }

    /// Revoked end-user tokens shared by the cluster.
    pub fn revocations(&self) -> Arc<dyn RevocationStore> {
        Arc::new(stores::RedisRevocations::new(self.node.clone()))
    }

    /// Per-credential rate buckets shared by the cluster.
    pub fn rates(&self) -> Arc<dyn RateStore> {
        Arc::new(stores::RedisRates::new(self.node.clone()))
    }

    /// Feeds shared by the cluster.
    pub fn feeds(&self) -> Arc<dyn FeedStore> {
        Arc::new(stores::RedisFeeds::new(self.node.clone()))
    }

    /// Turns that outlive a request, shared by the cluster.
    pub fn turns(&self) -> Arc<dyn TurnStore> {
        Arc::new(stores::RedisTurns::new(self.node.clone()))
    }

    /// Webhooks shared by the cluster (hooks and deliveries in Redis),
    /// delivered by whichever instance holds the webhooks lease; this
    /// instance starts trying to take it.
    pub fn webhooks(&self, settings: crate::webhooks::Settings) -> Arc<dyn crate::webhooks::WebhookStore> {
        let settings = Arc::new(settings);
        let node = self.node.clone();
        self.node.tasks.spawn(webhooks::lead(node.clone(), settings.clone(), self.revocations()));
        Arc::new(webhooks::RedisWebhooks::new(node, settings))
    }

    /// Leaves the cluster cleanly (after the runtime sockets closed): the
    /// queued events are appended (within `grace`), the cluster's loops and
    /// tasks stop (within `grace` again), then the lease goes.
    pub async fn leave(&self, grace: Duration) {
        if !self.appender.flush(grace).await {
            tracing::warn!(queued = self.appender.queued(), "stopping with events not yet in the shared log");
        }
        self.node.stop.cancel();
        self.node.tasks.close();
        if tokio::time::timeout(grace, self.node.tasks.wait()).await.is_err() {
            tracing::warn!(tasks = self.node.tasks.len(), "the cluster's tasks did not end in time");
        }
        presence::leave(&self.node).await;
    }
}

impl ClusterView for Cluster {
    fn status(&self) -> ClusterStatus {
        let node = &self.node;
        ClusterStatus {
            node: node.id.clone(),
            name: node.settings.name.clone(),
            engine: if node.engine.healthy() { "ok" } else { "unavailable" },
            instances: node.lease.instances(),
            mirror_loaded: *node.loaded.borrow(),
            fenced: node.fence.is_fenced(),
            append_queue: self.appender.queued(),
        }
    }

    fn ready(&self) -> bool {
        let node = &self.node;
        node.engine.healthy() && *node.loaded.borrow() && !node.fence.is_fenced()
    }
}

impl Node {
    /// Says `message` on instance `to`'s channel (at most once; a failure
    /// is logged, the engine's health notes it).
    async fn publish(&self, to: &str, message: &Message) {
        let publish = redis::cmd("PUBLISH").arg(self.engine.channel(to)).arg(message.to_json()).to_owned();
        if let Err(e) = self.engine.run::<i64>(&publish).await {
            tracing::debug!(error = %e, to, "could not tell another instance");
        }
    }

    /// A ticket was opened again: its earlier `holder`'s stream ends, here
    /// or on its own instance.
    fn ticket_taken(self: &Arc<Self>, holder: &str) {
        match takeover(holder, &self.id) {
            Takeover::Here => {
                self.holds.end(holder);
            }
            Takeover::Instance(node) => {
                let (this, to) = (self.clone(), node.to_owned());
                let message = Message::TicketTaken { holder: holder.to_owned() };
                self.tasks.spawn(async move { this.publish(&to, &message).await });
            }
            Takeover::Unknown => {}
        }
    }
}

/// Where this instance's connection generations start: apart from other
/// instances' (a hash of the id in the high bits, a random low start).
fn generation_base(node_id: &str) -> u64 {
    let hash = sha1_smol::Sha1::from(node_id).digest().bytes();
    let high = u64::from(u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]));
    (high << 32) | u64::from(uuid::Uuid::new_v4().as_u128() as u16)
}

/// Warns when Redis may evict keys: an evicted `meta` looks like data loss.
async fn warn_about_eviction(engine: &Engine) {
    let policy: Result<Vec<String>, _> = engine.run(redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy")).await;
    match policy.ok().and_then(|p| p.get(1).cloned()) {
        Some(p) if p == "noeviction" || p.starts_with("volatile-") => {}
        Some(p) => tracing::warn!(
            policy = %p,
            "Redis may evict the cluster's keys (maxmemory-policy); set it to noeviction, or events may be lost and subscribers reset"
        ),
        None => tracing::debug!("cannot read Redis' maxmemory-policy (CONFIG may be disabled)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_number_their_connections_apart() {
        let (a, b) = (generation_base("n-a"), generation_base("n-b"));
        assert_ne!(a >> 32, b >> 32, "the high bits come from the instance id");
        assert_eq!(generation_base("n-a") >> 32, a >> 32, "the same id, the same high bits");
        assert!(a & 0xffff_ffff < 1 << 16, "room below for 2^32 - 2^16 connections");
    }
}
