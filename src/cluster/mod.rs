//! Several bridge instances on one Redis (`LETTA_BRIDGE_CLUSTER_URL`).
//!
//! The design in one screen (the long form is docs/cluster.md):
//! - One Redis stream is the event log; one script (`log.lua`) appends in
//!   order, assigning the seq that becomes every event's id
//!   `<epoch>-<seq>` on every instance. Each instance appends the events of
//!   its runtime sockets through one bounded queue ([`appender`]) and
//!   mirrors the whole log into its own hub ([`mirror`]): subscribers,
//!   resume, replies and followed turns work on the mirror as in one process.
//! - Who holds which runtime is in the log too (`runtime_online` /
//!   `runtime_offline`, written by the same script with the owner's record),
//!   so every instance routes without asking; commands for a runtime of
//!   another instance go to it over pub/sub ([`peers`]).
//! - Leases and a reaper notice lost instances ([`presence`]); tickets and
//!   idempotency answers live in Redis ([`stores`]).
//!
//! It plugs into the seams the embedded mode has: [`crate::runtime::EventSink`],
//! [`crate::runtime::Peers`], and the stores of [`crate::store`].

mod appender;
mod engine;
mod mirror;
mod peers;
mod presence;
mod stores;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context;

use self::appender::Appender;
use self::engine::Engine;
use self::peers::ClusterPeers;
use crate::http::{ClusterStatus, ClusterView};
use crate::hub::{Hub, Limits};
use crate::runtime::{self, Pending, RuntimeInfo, RuntimePage, Runtimes};
use crate::store::{IdempotencyStore, RevocationStore, TicketStore};

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
}

/// What the parts of a cluster instance share.
pub(crate) struct Node {
    engine: Engine,
    /// This instance's id.
    id: String,
    settings: Settings,
    hub: Hub,
    runtimes: OnceLock<Runtimes>,
    appender: OnceLock<Arc<Appender>>,
    /// Engine time minus local time, from the last renewal.
    clock_offset_ms: AtomicI64,
    /// The instances holding a lease, from the last renewal.
    instances: Mutex<Vec<String>>,
    /// True once the mirror has read the log up to where it was at start.
    ready: AtomicBool,
    /// True while this instance has fenced itself.
    fenced: AtomicBool,
    /// The ticket holds of this instance's streams, by holder id: another
    /// instance taking a ticket over says so on this instance's channel.
    ticket_holds: Mutex<std::collections::HashMap<String, tokio_util::sync::CancellationToken>>,
}

impl Cluster {
    /// Describes the cluster's metrics (call once at start).
    pub fn describe_metrics() {
        use ::metrics::{describe_counter, describe_gauge, describe_histogram};
        describe_histogram!(engine::ROUND_TRIP, ::metrics::Unit::Seconds, "Redis round trip of the cluster's calls");
        describe_counter!(engine::ERRORS, "Redis calls that failed because Redis did not answer");
        describe_histogram!(
            appender::APPEND_LAG,
            ::metrics::Unit::Seconds,
            "From a local runtime's event to its being visible in this instance's mirror"
        );
        describe_gauge!(appender::QUEUED, "Events waiting to be appended to the shared log");
        describe_counter!(appender::DROPPED, "Events dropped because the append queue was full");
        describe_counter!(
            appender::FENCED_APPENDS,
            "Appends refused because another instance or connection holds the runtime"
        );
        describe_counter!(peers::FORWARDED, "Commands sent to the instance holding their runtime, by outcome");
        describe_gauge!(presence::INSTANCES, "Bridge instances holding a lease");
        describe_counter!(presence::REAPED, "Lost instances whose runtimes were marked offline");
        describe_counter!(mirror::EPOCH_CHANGES, "Times the shared log started again under a new epoch (data loss)");
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
        let node = Arc::new(Node {
            engine,
            id: settings.node_id.clone(),
            settings,
            hub: hub.clone(),
            runtimes: OnceLock::new(),
            appender: OnceLock::new(),
            clock_offset_ms: AtomicI64::new(0),
            instances: Mutex::default(),
            ready: AtomicBool::new(false),
            fenced: AtomicBool::new(false),
            ticket_holds: Mutex::default(),
        });
        let last: Option<u64> = node
            .engine
            .run(redis::cmd("HGET").arg(node.engine.key("meta")).arg(format!("last:{}", node.id)))
            .await
            .context("cannot read the cluster's log")?;
        let appender = Appender::new(node.clone(), last.unwrap_or(0));
        let peers = ClusterPeers::new(node.clone());
        let first_generation = generation_base(&node.id);
        let pending = Pending::new(runtime_settings.max_pending);
        let runtimes =
            Runtimes::clustered(runtime_settings, hub, pending, appender.clone(), peers.clone(), first_generation);
        let _ = node.runtimes.set(runtimes.clone());
        let _ = node.appender.set(appender.clone());
        // A process that ran under this id before left its runtimes behind.
        presence::reap(&node, &node.id).await.context("cannot take over this instance id's runtimes")?;
        presence::renew(&node).await.context("cannot take a lease in the cluster")?;
        tokio::spawn(appender.run());
        tokio::spawn(mirror::run(node.clone()));
        tokio::spawn(peers.listen());
        tokio::spawn(presence::run(node.clone()));
        tracing::info!(node = %node.id, cluster = %node.settings.name, "joined the cluster");
        Ok((Self { node }, runtimes))
    }

    /// The hub the mirror fills.
    pub fn hub(&self) -> Hub {
        self.node.hub.clone()
    }

    /// Waits until the mirror has read the log (at most `timeout`).
    pub async fn loaded(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.node.ready.load(Ordering::Relaxed) {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
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

    /// Leaves the cluster cleanly (after the runtime sockets closed): the
    /// queued events are appended (within `grace`), then the lease goes.
    pub async fn leave(&self, grace: Duration) {
        if !self.node.appender().flush(grace).await {
            tracing::warn!(queued = self.node.appender().queued(), "stopping with events not yet in the shared log");
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
            instances: node.instances.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            mirror_loaded: node.ready.load(Ordering::Relaxed),
            fenced: node.fenced.load(Ordering::Relaxed),
            append_queue: node.appender().queued(),
        }
    }

    fn ready(&self) -> bool {
        let node = &self.node;
        node.engine.healthy() && node.ready.load(Ordering::Relaxed) && !node.fenced.load(Ordering::Relaxed)
    }
}

impl Node {
    fn runtimes(&self) -> &Runtimes {
        self.runtimes.get().expect("set at start")
    }

    fn appender(&self) -> &Arc<Appender> {
        self.appender.get().expect("set at start")
    }

    /// The pub/sub channel of instance `id`.
    fn channel(&self, id: &str) -> String {
        self.engine.key(&format!("node:{id}:inbox"))
    }

    /// Engine time now (local time corrected by the last renewal).
    fn engine_now_ms(&self) -> u64 {
        let local = mirror::unix_ms() as i64;
        (local + self.clock_offset_ms.load(Ordering::Relaxed)).max(0) as u64
    }

    /// A local runtime's registration as JSON, for the record every instance reads.
    fn registration_of(&self, runtime_id: &str) -> String {
        let info = self.runtimes.get().and_then(|r| r.info(runtime_id));
        info.map_or_else(String::new, |i| {
            serde_json::json!({
                "connection_id": i.connection_id,
                "connection_name": i.connection_name,
                "version": i.version,
                "os": i.os,
                "node_version": i.node_version,
            })
            .to_string()
        })
    }

    /// Every runtime the engine records, sorted by id.
    async fn runtime_list(&self) -> Result<Vec<RuntimeInfo>, redis::RedisError> {
        let devices: Vec<String> = self.engine.run(redis::cmd("SMEMBERS").arg(self.engine.key("devices"))).await?;
        self.runtime_records(devices).await
    }

    /// At most `limit` runtimes the engine records with ids after `after`,
    /// sorted by id: only their records are read.
    async fn runtime_page(&self, after: Option<&str>, limit: usize) -> Result<RuntimePage, redis::RedisError> {
        let devices: Vec<String> = self.engine.run(redis::cmd("SMEMBERS").arg(self.engine.key("devices"))).await?;
        let mut devices: Vec<String> =
            devices.into_iter().filter(|d| after.is_none_or(|after| d.as_str() > after)).collect();
        devices.sort_unstable();
        let more = devices.len() > limit;
        devices.truncate(limit);
        Ok(RuntimePage { runtimes: self.runtime_records(devices).await?, more })
    }

    /// The engine's records of `devices`, sorted by id.
    async fn runtime_records(&self, devices: Vec<String>) -> Result<Vec<RuntimeInfo>, redis::RedisError> {
        let mut pipe = redis::pipe();
        for d in &devices {
            pipe.cmd("HGETALL").arg(self.engine.key(&format!("rt:{d}")));
        }
        let records: Vec<std::collections::HashMap<String, String>> =
            if devices.is_empty() { Vec::new() } else { self.engine.pipe(&pipe).await? };
        let mut list: Vec<RuntimeInfo> =
            devices.iter().zip(records).map(|(d, fields)| peers::runtime_info(d, &fields)).collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(list)
    }

    /// Records a hold of this instance's on a ticket.
    fn hold_ticket(&self, holder: &str, taken: tokio_util::sync::CancellationToken) {
        self.ticket_holds.lock().unwrap_or_else(|p| p.into_inner()).insert(holder.to_owned(), taken);
    }

    /// A hold of this instance's ended.
    fn release_ticket(&self, holder: &str) {
        self.ticket_holds.lock().unwrap_or_else(|p| p.into_inner()).remove(holder);
    }

    /// A ticket was opened again: its earlier `holder`'s stream ends, here
    /// or on its own instance.
    fn ticket_taken(self: &Arc<Self>, holder: &str) {
        let Some((node, _)) = holder.rsplit_once(':') else { return };
        if node == self.id {
            self.end_hold(holder);
            return;
        }
        let message = serde_json::json!({"t": "ticket_taken", "holder": holder}).to_string();
        let publish = redis::cmd("PUBLISH").arg(self.channel(node)).arg(message).to_owned();
        let this = self.clone();
        tokio::spawn(async move {
            let _ = this.engine.run::<i64>(&publish).await;
        });
    }

    /// Ends this instance's stream holding `holder`'s ticket.
    fn end_hold(&self, holder: &str) {
        if let Some(taken) = self.ticket_holds.lock().unwrap_or_else(|p| p.into_inner()).remove(holder) {
            taken.cancel();
        }
    }

    /// Closes every local runtime socket so that the runtimes reconnect to
    /// an instance that can reach the engine.
    fn fence(&self, why: &str) {
        if !self.fenced.swap(true, Ordering::Relaxed) {
            tracing::error!(why, "fencing this instance: closing its runtime sockets");
            if let Some(runtimes) = self.runtimes.get() {
                runtimes.fence();
            }
        }
    }

    /// The engine answers again: runtimes may connect here again.
    fn unfence(&self) {
        if self.fenced.swap(false, Ordering::Relaxed) {
            tracing::info!("the engine answers again; this instance takes runtimes again");
        }
    }
}

/// A fresh epoch: 10 hex characters, like the embedded hub's.
fn new_epoch() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
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
