//! The connection to Redis: key names, the one runner of the cluster's Lua
//! scripts (`log.lua`, `stores/idempotency.lua`, `stores/tickets.lua`,
//! `stores/turns.lua`, `stores/feeds.lua`), and
//! the engine's health as every call sees it.
//!
//! Commands share one multiplexed connection (redis-rs' `ConnectionManager`,
//! which reconnects by itself; 500 ms response timeout). Blocking reads of
//! the log get a connection of their own without a timeout: a blocking
//! command on the shared connection would stall every other call behind it.
//! Every call through [`Engine::run`], [`Engine::pipe`] and
//! [`Engine::script`] counts in the health and the round-trip metric.
//!
//! Its health ([`super::health`]): unavailable from the first call that
//! cannot reach Redis or whose write Redis refuses, until one answers. Behind a
//! Sentinel ([`super::primary`]) such a failure also makes the next call ask
//! where the primary is, and [`Engine::watch`] asks every second anyway (a
//! switchover leaves the old primary up); when it moved, the shared
//! connection is opened there and [`Engine::moves`] tells the long-lived
//! connections (the mirror's read, pub/sub) to open theirs again.

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, FromRedisValue, RedisError, Script, ScriptInvocation, ToRedisArgs};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::health::{Health, is_engine_failure, refuses_writes};
use super::primary::{Source, address};

/// How long one engine call may take before it counts as failed.
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Asking the Sentinels where the primary is: at most this often.
const ASK_EVERY: Duration = Duration::from_millis(200);

/// Asking the Sentinels anyway, without a failure: a switchover leaves the
/// old primary up and taking writes until Sentinel turns it into a replica.
const WATCH_EVERY: Duration = Duration::from_secs(1);

use crate::metrics::{ENGINE_ERRORS as ERRORS, ENGINE_ROUND_TRIP as ROUND_TRIP};

/// The cluster's Lua scripts. Each takes its mode as `ARGV[1]` and the key
/// prefix as `ARGV[2]`; the rest is the mode's.
#[derive(Debug, Clone, Copy)]
pub(super) enum Lua {
    /// `log.lua`: every step that touches the shared log and the registry.
    Log,
    /// `stores/idempotency.lua`: claims and answers of Idempotency-Keys.
    Idempotency,
    /// `stores/tickets.lua`: stream tickets and their holds.
    Tickets,
    /// `stores/feeds.lua`: feeds, within their limits.
    Feeds,
    /// `stores/turns.lua`: turns that outlive a request.
    Turns,
    /// `stores/rates.lua`: per-credential token buckets.
    Rates,
    /// `webhooks/webhooks.lua`: hooks, their deliveries and the leader's lease.
    Webhooks,
}

/// Redis, as the cluster uses it.
pub(super) struct Engine {
    source: Source,
    /// The primary as last found, and the shared connection to it.
    current: RwLock<Current>,
    /// Counts the primary's moves (long-lived connections open again).
    moved: watch::Sender<u64>,
    /// Set by a failure: the next call asks where the primary is (Sentinel).
    stale: AtomicBool,
    /// When the Sentinels were last asked; held while asking.
    asked: tokio::sync::Mutex<Option<Instant>>,
    /// `lb:{<cluster>}:`: every key of the cluster, in one hash slot.
    prefix: String,
    log: Script,
    idempotency: Script,
    tickets: Script,
    feeds: Script,
    turns: Script,
    rates: Script,
    webhooks: Script,
    health: Health,
}

/// The primary and the shared connection to it.
#[derive(Clone)]
struct Current {
    client: Client,
    manager: ConnectionManager,
}

/// One script call being built (see [`Engine::script`]).
pub(super) struct Call<'a> {
    engine: &'a Engine,
    invocation: ScriptInvocation<'a>,
    /// True for a mode that always writes: its answer ends a refusal of writes.
    writes: bool,
}

impl Engine {
    /// Connects to `url` for the cluster `name`.
    pub(super) async fn connect(url: &str, name: &str) -> Result<Self, RedisError> {
        let source = Source::open(url)?;
        let client = source.primary(CONNECT_TIMEOUT * 3).await?;
        let manager = manager(client.clone()).await?;
        if source.moves() {
            tracing::info!(primary = %address(&client), "the Sentinels name the cluster's primary");
        }
        Ok(Self {
            source,
            current: RwLock::new(Current { client, manager }),
            moved: watch::Sender::new(0),
            stale: AtomicBool::new(false),
            asked: tokio::sync::Mutex::new(None),
            prefix: format!("lb:{{{name}}}:"),
            log: Script::new(include_str!("log.lua")),
            idempotency: Script::new(concat!(
                include_str!("stores/helpers.lua"),
                include_str!("stores/idempotency.lua")
            )),
            tickets: Script::new(concat!(include_str!("stores/helpers.lua"), include_str!("stores/tickets.lua"))),
            feeds: Script::new(concat!(include_str!("stores/helpers.lua"), include_str!("stores/feeds.lua"))),
            turns: Script::new(concat!(include_str!("stores/helpers.lua"), include_str!("stores/turns.lua"))),
            rates: Script::new(concat!(include_str!("stores/helpers.lua"), include_str!("stores/rates.lua"))),
            webhooks: Script::new(concat!(include_str!("stores/helpers.lua"), include_str!("webhooks/webhooks.lua"))),
            health: Health::default(),
        })
    }

    /// The full name of key `name`.
    pub(super) fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The pub/sub channel of instance `id`.
    pub(super) fn channel(&self, id: &str) -> String {
        self.key(&format!("node:{id}:inbox"))
    }

    /// A call of `mode` of script `lua`; add its keys and arguments, then run it.
    pub(super) fn script(&self, lua: Lua, mode: &str) -> Call<'_> {
        let script = match lua {
            Lua::Log => &self.log,
            Lua::Idempotency => &self.idempotency,
            Lua::Tickets => &self.tickets,
            Lua::Feeds => &self.feeds,
            Lua::Turns => &self.turns,
            Lua::Rates => &self.rates,
            Lua::Webhooks => &self.webhooks,
        };
        let mut invocation = script.prepare_invoke();
        invocation.arg(mode).arg(&self.prefix);
        // Scripts that read only run on a replica too: only one that
        // always writes can show that writes are taken again.
        let writes = matches!(lua, Lua::Log) && matches!(mode, "append" | "heartbeat" | "register" | "leave");
        Call { engine: self, invocation, writes }
    }

    /// Runs a plain command on the shared connection, recorded in health.
    pub(super) async fn run<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RedisError> {
        let mut con = self.connection().await;
        let started = Instant::now();
        let result = cmd.query_async(&mut con).await;
        self.observe(&result, started, false);
        result
    }

    /// Runs a pipeline on the shared connection, recorded in health.
    pub(super) async fn pipe<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, RedisError> {
        let mut con = self.connection().await;
        let started = Instant::now();
        let result = pipe.query_async(&mut con).await;
        self.observe(&result, started, false);
        result
    }

    /// A connection of its own, without a response timeout, for blocking reads.
    pub(super) async fn blocking_connection(&self) -> Result<MultiplexedConnection, RedisError> {
        let config =
            AsyncConnectionConfig::new().set_response_timeout(None).set_connection_timeout(Some(CONNECT_TIMEOUT));
        self.client().await.get_multiplexed_async_connection_with_config(&config).await
    }

    /// A connection for pub/sub.
    pub(super) async fn pubsub(&self) -> Result<redis::aio::PubSub, RedisError> {
        let client = self.client().await;
        tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub())
            .await
            .map_err(|_| RedisError::from((redis::ErrorKind::Io, "connecting for pub/sub timed out")))?
    }

    /// Changes each time the primary moves: a connection opened before
    /// (a blocking read, pub/sub) is then to be opened again.
    pub(super) fn moves(&self) -> watch::Receiver<u64> {
        self.moved.subscribe()
    }

    /// Ends at the primary's next move from now (pub/sub: take the messages
    /// until it, then subscribe again).
    pub(super) fn moved(&self) -> futures_util::future::BoxFuture<'static, ()> {
        let mut moves = self.moves();
        Box::pin(async move {
            let _ = moves.changed().await;
        })
    }

    /// The shared connection to the primary (found again first if needed).
    async fn connection(&self) -> ConnectionManager {
        self.follow().await;
        self.current.read().unwrap_or_else(|p| p.into_inner()).manager.clone()
    }

    /// A client for the primary (found again first if needed).
    async fn client(&self) -> Client {
        self.follow().await;
        self.current.read().unwrap_or_else(|p| p.into_inner()).client.clone()
    }

    /// Behind a Sentinel: asks where the primary is every [`WATCH_EVERY`]
    /// until `stop` (a task of the cluster's shutdown tree).
    pub(super) async fn watch(&self, stop: CancellationToken) {
        if !self.source.moves() {
            return;
        }
        let mut every = tokio::time::interval(WATCH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = every.tick() => self.ask().await,
            }
        }
    }

    /// After a failure, behind a Sentinel: asks where the primary is first.
    async fn follow(&self) {
        if self.source.moves() && self.stale.load(Ordering::Relaxed) {
            self.ask().await;
        }
    }

    /// Asks the Sentinels where the primary is, and moves the shared
    /// connection there if it moved. One ask at a time, at most one per
    /// [`ASK_EVERY`]; meanwhile calls go to the primary as last found (and
    /// fail fast while it is away).
    async fn ask(&self) {
        let Ok(mut asked) = self.asked.try_lock() else { return };
        if asked.is_some_and(|at| at.elapsed() < ASK_EVERY) {
            return;
        }
        *asked = Some(Instant::now());
        let client = match self.source.primary(CONNECT_TIMEOUT * 2).await {
            Ok(client) => client,
            Err(e) => {
                tracing::debug!(error = %e, "the Sentinels name no primary that answers yet");
                return;
            }
        };
        let (to, from) = (address(&client), address(&self.current.read().unwrap_or_else(|p| p.into_inner()).client));
        if to != from {
            let manager = match manager(client.clone()).await {
                Ok(manager) => manager,
                Err(e) => {
                    tracing::debug!(error = %e, primary = %to, "cannot connect to the primary the Sentinels name");
                    return;
                }
            };
            *self.current.write().unwrap_or_else(|p| p.into_inner()) = Current { client, manager };
            self.moved.send_modify(|n| *n += 1);
            ::metrics::counter!(crate::metrics::ENGINE_FAILOVERS).increment(1);
            tracing::warn!(%from, %to, "the cluster's primary moved (Sentinel); following it");
        }
        self.stale.store(false, Ordering::Relaxed);
    }

    /// Records the outcome and round trip of a call (`wrote`: a write
    /// that answered ends a refusal of writes).
    fn observe<T>(&self, result: &Result<T, RedisError>, started: Instant, wrote: bool) {
        if result.is_ok() {
            ::metrics::histogram!(ROUND_TRIP).record(started.elapsed().as_secs_f64());
        }
        self.record(result, wrote);
    }

    /// Records the outcome of a call made elsewhere, whose duration is not a
    /// round trip (a blocking read waits for events by design).
    pub(super) fn note<T>(&self, result: &Result<T, RedisError>) {
        self.record(result, false);
    }

    fn record<T>(&self, result: &Result<T, RedisError>, wrote: bool) {
        match result {
            Ok(_) => self.health.answered(wrote),
            Err(e) if is_engine_failure(e) || refuses_writes(e) => self.failed(e),
            // A script or reply error is not the engine being away.
            Err(_) => {}
        }
    }

    /// Records a failed call: the engine is unavailable from now on, until
    /// a call answers (a write, when this one's write was refused).
    pub(super) fn failed(&self, e: &RedisError) {
        ::metrics::counter!(ERRORS).increment(1);
        self.stale.store(true, Ordering::Relaxed);
        let refused = refuses_writes(e);
        if refused {
            self.health.refuse();
        }
        if self.health.failed() {
            if refused {
                tracing::warn!(error = %e, "the cluster's engine refuses writes (a replica, or too few replicas)");
            } else {
                tracing::warn!(error = %e, "the cluster's engine does not answer");
            }
        }
    }

    /// True while the last call succeeded.
    pub(super) fn healthy(&self) -> bool {
        self.health.ok()
    }

    /// How long the engine has been failing, if it is.
    pub(super) fn failing_for(&self) -> Option<Duration> {
        self.health.failing_for()
    }
}

impl Call<'_> {
    /// Adds a key (`KEYS[n]`).
    pub(super) fn key(mut self, key: impl ToRedisArgs) -> Self {
        self.invocation.key(key);
        self
    }

    /// Adds an argument (after the mode and prefix).
    pub(super) fn arg(mut self, arg: impl ToRedisArgs) -> Self {
        self.invocation.arg(arg);
        self
    }

    /// Runs the script on the shared connection, recorded in health.
    pub(super) async fn run<T: FromRedisValue>(self) -> Result<T, RedisError> {
        let mut con = self.engine.connection().await;
        let started = Instant::now();
        let result = self.invocation.invoke_async(&mut con).await;
        self.engine.observe(&result, started, self.writes);
        result
    }
}

/// The shared connection to `client`'s node.
async fn manager(client: Client) -> Result<ConnectionManager, RedisError> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1));
    ConnectionManager::new_with_config(client, config).await
}
