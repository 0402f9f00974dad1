//! The other instances, as the runtime side needs them ([`Peers`]):
//! registrations any instance can read, the cluster's runtime list, pongs,
//! and commands routed to the instance holding a runtime's socket.
//!
//! Routing is pub/sub, at most once: each instance listens on its own
//! channel. A command is published there with the time it may still take;
//! the holder writes it to the socket, or drops it once that time is up, and
//! answers on the sender's channel. A publish that reaches nobody is a `503`
//! at once. The holder gives up [`MARGIN`] before the sender does, so a
//! command is never written after its client was told `504`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Node;
use crate::protocol::Scope;
use crate::runtime::{
    PeerError, PeerFuture, Peers, Registration, Remote, RuntimeInfo, RuntimePage, SendError, Target, rfc3339,
};

/// How much earlier than the sender the holder of a runtime gives up.
const MARGIN: Duration = Duration::from_millis(250);

/// How long a registration is kept (renewed by each registration).
const REGISTRATION_TTL: Duration = Duration::from_secs(24 * 3600);

pub(super) const FORWARDED: &str = "letta_bridge_forwarded_commands_total";

/// What instances say to each other on their channels.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Message {
    /// Write `text` to `runtime`'s connection `generation`, within `ms` milliseconds.
    Command { corr: u64, from: String, runtime: String, generation: u64, ms: u64, text: String, scope: Value },
    /// What became of command `corr`.
    Ack { corr: u64, outcome: Outcome },
    /// A stream of another instance took over the ticket `holder` held here.
    TicketTaken { holder: String },
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Written,
    Gone,
    Full,
    Late,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Written => "written",
            Self::Gone => "gone",
            Self::Full => "full",
            Self::Late => "late",
        }
    }
}

/// The cluster's [`Peers`].
pub(super) struct ClusterPeers {
    node: Arc<Node>,
    next: AtomicU64,
    /// Commands this instance forwarded, awaiting their ack.
    waiting: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
}

impl ClusterPeers {
    pub(super) fn new(node: Arc<Node>) -> Arc<Self> {
        Arc::new(Self { node, next: AtomicU64::new(1), waiting: Mutex::default() })
    }

    /// Listens on this instance's channel until the process ends.
    pub(super) async fn listen(self: Arc<Self>) {
        let channel = self.node.channel(&self.node.id);
        loop {
            match self.node.engine.pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                    Ok(()) => {
                        let mut messages = pubsub.on_message();
                        while let Some(msg) = messages.next().await {
                            let Ok(payload) = msg.get_payload::<String>() else { continue };
                            match serde_json::from_str::<Message>(&payload) {
                                Ok(message) => self.clone().handle(message),
                                Err(e) => tracing::warn!(error = %e, "an unreadable message on the cluster channel"),
                            }
                        }
                        tracing::debug!("the cluster channel closed; subscribing again");
                    }
                    Err(e) => self.node.engine.failed(&e),
                },
                Err(e) => self.node.engine.failed(&e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn handle(self: Arc<Self>, message: Message) {
        match message {
            Message::TicketTaken { holder } => self.node.end_hold(&holder),
            Message::Ack { corr, outcome } => {
                if let Some(tx) = self.lock().remove(&corr) {
                    let _ = tx.send(outcome);
                }
            }
            Message::Command { corr, from, runtime, generation, ms, text, scope } => {
                let link = match self.node.runtimes().route(Some(&runtime)) {
                    Ok(Target::Local(link)) if link.generation == generation => link,
                    _ => return self.ack(from, corr, Outcome::Gone),
                };
                let budget = Duration::from_millis(ms).saturating_sub(MARGIN.min(Duration::from_millis(ms / 4)));
                match link.send(text, Scope::of_value(&scope)) {
                    Ok(written) => {
                        tokio::spawn(async move {
                            // Dropping `written` at the deadline makes the
                            // socket task drop the frame unsent.
                            let outcome = match tokio::time::timeout(budget, written).await {
                                Ok(Ok(())) => Outcome::Written,
                                Ok(Err(_)) => Outcome::Gone,
                                Err(_) => Outcome::Late,
                            };
                            self.ack(from, corr, outcome);
                        });
                    }
                    Err(SendError::Full) => self.ack(from, corr, Outcome::Full),
                    Err(SendError::Gone) => self.ack(from, corr, Outcome::Gone),
                }
            }
        }
    }

    fn ack(self: Arc<Self>, to: String, corr: u64, outcome: Outcome) {
        tokio::spawn(async move {
            let payload = serde_json::to_string(&Message::Ack { corr, outcome }).expect("messages serialise");
            let publish = redis::cmd("PUBLISH").arg(self.node.channel(&to)).arg(payload).to_owned();
            if let Err(e) = self.node.engine.run::<i64>(&publish).await {
                tracing::debug!(error = %e, "could not answer a forwarded command");
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Outcome>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes a forwarded command's entry on every path.
struct Awaiting<'a> {
    peers: &'a ClusterPeers,
    corr: u64,
}

impl Drop for Awaiting<'_> {
    fn drop(&mut self) {
        self.peers.lock().remove(&self.corr);
    }
}

impl Peers for ClusterPeers {
    fn check(&self) -> Result<(), PeerError> {
        if self.node.engine.healthy() {
            Ok(())
        } else {
            Err(PeerError::Unavailable("the bridge cannot reach Redis".into()))
        }
    }

    fn register<'a>(&'a self, registration: &'a Registration) -> PeerFuture<'a, String> {
        Box::pin(async move {
            let json = serde_json::to_string(registration).expect("registrations serialise");
            let candidate = format!("conn-{}", uuid::Uuid::new_v4());
            let ttl = REGISTRATION_TTL.as_millis().to_string();
            let args = [registration.device_id.as_str(), candidate.as_str(), json.as_str(), ttl.as_str()];
            self.node.engine.script::<String>("register", &args).await.map_err(unavailable)
        })
    }

    fn registration<'a>(&'a self, connection_id: &'a str) -> PeerFuture<'a, Option<Registration>> {
        Box::pin(async move {
            let key = self.node.engine.key(&format!("conn:{connection_id}"));
            let json: Option<String> = self.node.engine.run(redis::cmd("GET").arg(key)).await.map_err(unavailable)?;
            Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
        })
    }

    fn forward<'a>(
        &'a self,
        to: &'a Remote,
        text: String,
        scope: Option<Scope>,
        deadline: Instant,
    ) -> PeerFuture<'a, ()> {
        Box::pin(async move {
            let ms = deadline.saturating_duration_since(Instant::now()).as_millis() as u64;
            let corr = self.next.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            self.lock().insert(corr, tx);
            let _awaiting = Awaiting { peers: self, corr };
            let message = Message::Command {
                corr,
                from: self.node.id.clone(),
                runtime: to.runtime_id.to_string(),
                generation: to.generation,
                ms,
                text,
                scope: scope.map_or(Value::Null, |s| s.to_value()),
            };
            let payload = serde_json::to_string(&message).expect("messages serialise");
            let publish = redis::cmd("PUBLISH").arg(self.node.channel(&to.node)).arg(payload).to_owned();
            let receivers: i64 = self.node.engine.run(&publish).await.map_err(unavailable)?;
            let outcome = if receivers == 0 {
                Err(PeerError::Unreachable(to.node.to_string()))
            } else {
                match tokio::time::timeout_at(deadline, rx).await {
                    Ok(Ok(Outcome::Written)) => Ok(()),
                    Ok(Ok(Outcome::Gone)) => Err(PeerError::Gone),
                    Ok(Ok(Outcome::Full)) => Err(PeerError::Full),
                    Ok(Ok(Outcome::Late)) | Err(_) => Err(PeerError::Late),
                    Ok(Err(_)) => Err(PeerError::Unreachable(to.node.to_string())),
                }
            };
            let label = match &outcome {
                Ok(()) => Outcome::Written.as_str(),
                Err(PeerError::Unreachable(_)) => "unreachable",
                Err(PeerError::Gone) => Outcome::Gone.as_str(),
                Err(PeerError::Full) => Outcome::Full.as_str(),
                Err(_) => Outcome::Late.as_str(),
            };
            ::metrics::counter!(FORWARDED, "outcome" => label).increment(1);
            outcome
        })
    }

    fn list(&self) -> PeerFuture<'_, Vec<RuntimeInfo>> {
        Box::pin(async move { self.node.runtime_list().await.map_err(unavailable) })
    }

    fn page<'a>(&'a self, after: Option<&'a str>, limit: usize) -> PeerFuture<'a, RuntimePage> {
        Box::pin(async move { self.node.runtime_page(after, limit).await.map_err(unavailable) })
    }

    fn pong(&self, runtime_id: &str, generation: u64, at: SystemTime) {
        let node = self.node.clone();
        let args = [
            runtime_id.to_owned(),
            node.id.clone(),
            generation.to_string(),
            at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis()).to_string(),
        ];
        tokio::spawn(async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let _ = node.engine.script::<i64>("pong", &args).await;
        });
    }
}

fn unavailable(e: redis::RedisError) -> PeerError {
    PeerError::Unavailable(e.to_string())
}

/// A runtime as the engine records it (`rt:<device>`), for `GET /runtimes`.
pub(super) fn runtime_info(id: &str, fields: &HashMap<String, String>) -> RuntimeInfo {
    let registration: Option<Value> = fields.get("info").and_then(|i| serde_json::from_str(i).ok());
    let text = |name: &str| registration.as_ref().and_then(|r| r.get(name)).and_then(Value::as_str).map(str::to_owned);
    let time = |name: &str| {
        fields.get(name).and_then(|v| v.parse::<u64>().ok()).map(|ms| rfc3339(UNIX_EPOCH + Duration::from_millis(ms)))
    };
    let online = fields.get("online").is_some_and(|v| v == "1");
    RuntimeInfo {
        id: id.to_owned(),
        online,
        connection_id: text("connection_id"),
        connection_name: text("connection_name"),
        online_since: time("online_since").filter(|_| online),
        last_pong_at: time("last_pong").filter(|_| online),
        offline_since: time("offline_since").filter(|_| !online),
        version: text("version"),
        os: text("os"),
        node_version: text("node_version"),
        instance: fields.get("node").filter(|_| online).cloned(),
    }
}
