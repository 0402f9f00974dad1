//! The connection to Redis: key names, the one script (`log.lua`), and the
//! engine's health as every call sees it.
//!
//! Commands share one multiplexed connection (redis-rs' `ConnectionManager`,
//! which reconnects by itself; 500 ms response timeout). Blocking reads of
//! the log get a connection of their own without a timeout: a blocking
//! command on the shared connection would stall every other call behind it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, FromRedisValue, RedisError, Script};

/// How long one engine call may take before it counts as failed.
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) const ROUND_TRIP: &str = "letta_bridge_engine_round_trip_seconds";
pub(super) const ERRORS: &str = "letta_bridge_engine_errors_total";

/// Redis, as the cluster uses it.
pub(super) struct Engine {
    client: Client,
    manager: ConnectionManager,
    /// `lb:{<cluster>}:`: every key of the cluster, in one hash slot.
    prefix: String,
    script: Script,
    health: Health,
}

/// Whether the last engine calls succeeded.
struct Health {
    ok: AtomicBool,
    /// When the current run of failures began.
    failing_since: Mutex<Option<Instant>>,
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
            script: Script::new(include_str!("log.lua")),
            health: Health { ok: AtomicBool::new(true), failing_since: Mutex::new(None) },
        })
    }

    /// The full name of key `name`.
    pub(super) fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The shared connection, for commands (cheap to clone).
    pub(super) fn connection(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// Runs `log.lua` in `mode` with `args` after the mode and prefix.
    pub(super) async fn script<T: FromRedisValue>(&self, mode: &str, args: &[&str]) -> Result<T, RedisError> {
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(mode).arg(&self.prefix);
        for a in args {
            invocation.arg(*a);
        }
        let mut con = self.manager.clone();
        let started = Instant::now();
        let result = invocation.invoke_async(&mut con).await;
        self.observe(&result, started);
        result
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
            Ok(_) => {
                if !self.health.ok.swap(true, Ordering::Relaxed) {
                    *self.health.failing_since.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    tracing::info!("the cluster's engine answers again");
                }
            }
            Err(e) if is_engine_failure(e) => self.failed(e),
            // A script or reply error is not the engine being away.
            Err(_) => {}
        }
    }

    /// Records a failed call.
    pub(super) fn failed(&self, e: &RedisError) {
        ::metrics::counter!(ERRORS).increment(1);
        if self.health.ok.swap(false, Ordering::Relaxed) {
            *self.health.failing_since.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            tracing::warn!(error = %e, "the cluster's engine does not answer");
        }
    }

    /// True while the last call succeeded.
    pub(super) fn healthy(&self) -> bool {
        self.health.ok.load(Ordering::Relaxed)
    }

    /// How long the engine has been failing, if it is.
    pub(super) fn failing_for(&self) -> Option<Duration> {
        self.health.failing_since.lock().unwrap_or_else(|p| p.into_inner()).map(|t| t.elapsed())
    }
}

/// True for errors that mean the engine cannot be reached (as opposed to
/// an answer that is an error).
fn is_engine_failure(e: &RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
}
