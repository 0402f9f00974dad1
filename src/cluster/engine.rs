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

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, FromRedisValue, RedisError, Script, ScriptInvocation, ToRedisArgs};
use tokio::time::Instant;

/// How long one engine call may take before it counts as failed.
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

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
    client: Client,
    manager: ConnectionManager,
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

/// One script call being built (see [`Engine::script`]).
pub(super) struct Call<'a> {
    engine: &'a Engine,
    invocation: ScriptInvocation<'a>,
}

impl Engine {
    /// Connects to `url` for the cluster `name`.
    pub(super) async fn connect(url: &str, name: &str) -> Result<Self, RedisError> {
        let client = Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let manager = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(Self {
            client,
            manager,
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
        Call { engine: self, invocation }
    }

    /// Runs a plain command on the shared connection, recorded in health.
    pub(super) async fn run<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RedisError> {
        let mut con = self.manager.clone();
        let started = Instant::now();
        let result = cmd.query_async(&mut con).await;
        self.observe(&result, started);
        result
    }

    /// Runs a pipeline on the shared connection, recorded in health.
    pub(super) async fn pipe<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, RedisError> {
        let mut con = self.manager.clone();
        let started = Instant::now();
        let result = pipe.query_async(&mut con).await;
        self.observe(&result, started);
        result
    }

    /// A connection of its own, without a response timeout, for blocking reads.
    pub(super) async fn blocking_connection(&self) -> Result<MultiplexedConnection, RedisError> {
        let config =
            AsyncConnectionConfig::new().set_response_timeout(None).set_connection_timeout(Some(CONNECT_TIMEOUT));
        self.client.get_multiplexed_async_connection_with_config(&config).await
    }

    /// A connection for pub/sub.
    pub(super) async fn pubsub(&self) -> Result<redis::aio::PubSub, RedisError> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.client.get_async_pubsub())
            .await
            .map_err(|_| RedisError::from((redis::ErrorKind::Io, "connecting for pub/sub timed out")))?
    }

    /// Records the outcome and round trip of a call.
    fn observe<T>(&self, result: &Result<T, RedisError>, started: Instant) {
        if result.is_ok() {
            ::metrics::histogram!(ROUND_TRIP).record(started.elapsed().as_secs_f64());
        }
        self.note(result);
    }

    /// Records the outcome of a call made elsewhere, whose duration is not a
    /// round trip (a blocking read waits for events by design).
    pub(super) fn note<T>(&self, result: &Result<T, RedisError>) {
        match result {
            Ok(_) => self.health.answered(),
            Err(e) if is_engine_failure(e) => self.failed(e),
            // A script or reply error is not the engine being away.
            Err(_) => {}
        }
    }

    /// Records a failed call.
    pub(super) fn failed(&self, e: &RedisError) {
        ::metrics::counter!(ERRORS).increment(1);
        if self.health.failed() {
            tracing::warn!(error = %e, "the cluster's engine does not answer");
        }
    }

    /// True while the last call succeeded.
    pub(super) fn healthy(&self) -> bool {
        self.health.ok.load(Ordering::Relaxed)
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
        let mut con = self.engine.manager.clone();
        let started = Instant::now();
        let result = self.invocation.invoke_async(&mut con).await;
        self.engine.observe(&result, started);
        result
    }
}

/// Whether the last engine calls succeeded, and since when they fail.
struct Health {
    ok: AtomicBool,
    /// When the current run of failures began (tokio's clock).
    failing_since: Mutex<Option<Instant>>,
}

impl Default for Health {
    fn default() -> Self {
        Self { ok: AtomicBool::new(true), failing_since: Mutex::new(None) }
    }
}

impl Health {
    /// A call succeeded: a run of failures ends.
    fn answered(&self) {
        if !self.ok.swap(true, Ordering::Relaxed) {
            *self.failing_since.lock().unwrap_or_else(|p| p.into_inner()) = None;
            tracing::info!("the cluster's engine answers again");
        }
    }

    /// A call failed; true when it starts a run of failures.
    fn failed(&self) -> bool {
        let first = self.ok.swap(false, Ordering::Relaxed);
        if first {
            *self.failing_since.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
        first
    }

    fn failing_for(&self) -> Option<Duration> {
        self.failing_since.lock().unwrap_or_else(|p| p.into_inner()).map(|t| t.elapsed())
    }
}

/// True for errors that mean the engine cannot be reached (as opposed to
/// an answer that is an error).
fn is_engine_failure(e: &RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_run_of_failures_is_timed_from_its_first_failure_until_an_answer() {
        let health = Health::default();
        assert_eq!(health.failing_for(), None);
        assert!(health.failed(), "the first failure starts the run");
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(!health.failed(), "a later failure continues it");
        assert_eq!(health.failing_for(), Some(Duration::from_secs(3)));
        health.answered();
        assert_eq!(health.failing_for(), None);
        assert!(health.ok.load(Ordering::Relaxed));
    }

    #[test]
    fn a_refused_connection_is_the_engine_away_and_a_script_error_is_not() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_engine_failure(&refused));
        let answer = RedisError::from((redis::ErrorKind::Client, "script", "unknown mode".to_owned()));
        assert!(!is_engine_failure(&answer));
    }
}
