//! Where events, runtimes and the shared stores live: in this process
//! (embedded, the default), or shared with other instances through Redis
//! (cluster mode, LETTA_BRIDGE_CLUSTER_URL). The one file that knows the
//! cargo feature `cluster`: it declares the cluster module, builds either
//! backend, and says what `/status` and `/readyz` show of a cluster
//! ([`ClusterView`]), so that neither `http` nor `startup` needs the feature.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use crate::config::Config;
use crate::hub::{self, Hub};
use crate::runtime::{self, Runtimes};
use crate::store::{
    FeedStore, IdempotencyStore, MemoryFeeds, MemoryIdempotency, MemoryRates, MemoryRevocations, MemoryTickets,
    MemoryTurns, RateStore, RevocationStore, TicketStore, TurnStore,
};
use crate::webhooks::{self, WebhookStore, Webhooks};

#[cfg(feature = "cluster")]
#[path = "cluster/mod.rs"]
pub mod cluster;

/// How long start-up waits for a cluster instance's mirror to read the log.
const LOAD_WAIT: Duration = Duration::from_secs(10);

/// This instance's view of its cluster (`LETTA_BRIDGE_CLUSTER_URL`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterStatus {
    /// This instance's id.
    pub node: String,
    /// The cluster's name.
    pub name: String,
    /// `ok`, or `unavailable` while Redis does not answer or refuses writes
    /// (`READONLY`, `NOREPLICAS`).
    pub engine: &'static str,
    /// The instances holding a lease (this one included), as of the last renewal.
    pub instances: Vec<String>,
    /// True once this instance's mirror has read the shared log.
    pub mirror_loaded: bool,
    /// True while this instance has closed its runtime sockets for want of Redis.
    pub fenced: bool,
    /// Events of local runtimes waiting to be appended to the shared log.
    pub append_queue: usize,
}

/// What `/status` and `/readyz` show of a cluster (the cluster implements it).
pub trait ClusterView: Send + Sync + 'static {
    /// The cluster as this instance sees it.
    fn status(&self) -> ClusterStatus;
    /// True while this instance can serve: Redis answers, its mirror is loaded, it is not fenced.
    fn ready(&self) -> bool;
}

/// The event log, the runtimes and the stores of this instance.
pub struct Backend {
    /// The event log subscribers read (a cluster's mirror fills it).
    pub hub: Hub,
    /// The runtimes, whose events go to the log.
    pub runtimes: Runtimes,
    /// Idempotency answers.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Stream tickets.
    pub tickets: Arc<dyn TicketStore>,
    /// Revoked end-user tokens.
    pub revocations: Arc<dyn RevocationStore>,
    /// Feeds (`POST /feeds`).
    pub feeds: Arc<dyn FeedStore>,
    /// Turns that outlive a request.
    pub turns: Arc<dyn TurnStore>,
    /// Per-credential rate buckets.
    pub rates: Arc<dyn RateStore>,
    /// Webhooks: in memory, or in Redis delivered by the cluster's one
    /// webhooks leader.
    pub webhooks: Arc<dyn WebhookStore>,
    /// The cluster, as `/status` and `/readyz` show it (none embedded).
    pub view: Option<Arc<dyn ClusterView>>,
    /// What leaving takes at shutdown.
    pub membership: Membership,
}

/// The cluster this instance joined, if any: left at shutdown.
#[derive(Default)]
pub struct Membership {
    #[cfg(feature = "cluster")]
    cluster: Option<Arc<cluster::Cluster>>,
}

impl Membership {
    /// Leaves the cluster (after the runtime sockets closed): the queued
    /// events are appended and the cluster's tasks stopped, within `grace`;
    /// then the lease goes. Nothing to do embedded.
    pub async fn leave(&self, grace: Duration) {
        #[cfg(feature = "cluster")]
        if let Some(cluster) = &self.cluster {
            cluster.leave(grace).await;
        }
        #[cfg(not(feature = "cluster"))]
        let _ = grace;
    }
}

impl Backend {
    /// The backend `config` asks for: a cluster's when it names one.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let limits = hub::Limits {
            events: usize::try_from(config.replay_events).unwrap_or(usize::MAX),
            bytes: config.replay_bytes,
            max_age: config.replay_max_age,
        };
        let runtime_settings = runtime::Settings {
            ping_interval: config.ping_interval,
            max_missed_pongs: config.max_missed_pongs,
            command_queue: config.command_queue as usize,
            max_pending: config.max_pending,
            forget_offline_after: config.forget_offline_after,
        };
        if let Some(url) = &config.cluster_url {
            return Self::clustered(config, url, limits, runtime_settings).await;
        }
        let hub = Hub::new(limits);
        Ok(Self {
            webhooks: Arc::new(Webhooks::new(&hub, webhook_settings(config)?)),
            runtimes: Runtimes::new(runtime_settings, hub.clone()),
            hub,
            idempotency: Arc::new(MemoryIdempotency::new(config.idempotency_window, config.idempotency_keys as usize)),
            tickets: Arc::new(MemoryTickets::new()),
            revocations: Arc::new(MemoryRevocations::new()),
            feeds: Arc::new(MemoryFeeds::new()),
            turns: Arc::new(MemoryTurns::new()),
            rates: Arc::new(MemoryRates::default()),
            view: None,
            membership: Membership::default(),
        })
    }

    #[cfg(feature = "cluster")]
    async fn clustered(
        config: &Config,
        url: &str,
        limits: hub::Limits,
        runtime_settings: runtime::Settings,
    ) -> anyhow::Result<Self> {
        use cluster::{Cluster, Settings};
        let settings = Settings {
            url: url.to_owned(),
            name: config.cluster_name.clone(),
            node_id: config.node_id.clone().unwrap_or_else(crate::config::random_node_id),
            node_ttl: config.node_ttl,
            limits,
            forget_offline_after: config.forget_offline_after,
        };
        Cluster::describe_metrics();
        let (cluster, runtimes) = Cluster::start(settings, runtime_settings).await?;
        if !cluster.loaded(LOAD_WAIT).await {
            tracing::warn!(?LOAD_WAIT, "the mirror of the shared log is not loaded yet; /readyz stays 503 until it is");
        }
        let max_wait = config.max_wait_timeout + runtime::WRITE_WAIT;
        let cluster = Arc::new(cluster);
        Ok(Self {
            hub: cluster.hub(),
            runtimes,
            idempotency: cluster.idempotency(config.idempotency_window, max_wait, config.idempotency_keys as usize),
            tickets: cluster.tickets(),
            revocations: cluster.revocations(),
            feeds: cluster.feeds(),
            turns: cluster.turns(),
            rates: cluster.rates(),
            webhooks: cluster.webhooks(webhook_settings(config)?),
            view: Some(cluster.clone()),
            membership: Membership { cluster: Some(cluster) },
        })
    }

    #[cfg(not(feature = "cluster"))]
    async fn clustered(_: &Config, _: &str, _: hub::Limits, _: runtime::Settings) -> anyhow::Result<Self> {
        let _ = LOAD_WAIT;
        anyhow::bail!(
            "LETTA_BRIDGE_CLUSTER_URL is set, but this build has no cluster support (cargo feature `cluster`)"
        )
    }
}

/// How hooks deliver, from `config`.
fn webhook_settings(config: &Config) -> anyhow::Result<webhooks::Settings> {
    Ok(webhooks::Settings {
        allow: webhooks::target::Allow::parse(&config.webhook_allow)
            .map_err(|e| anyhow::anyhow!("LETTA_BRIDGE_WEBHOOK_ALLOW: {e}"))?,
        schedule: config.webhook_schedule.clone().unwrap_or_else(|| webhooks::SCHEDULE.to_vec()),
    })
}
