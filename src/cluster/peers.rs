//! The other instances, as the runtime side needs them ([`Peers`]):
//! registrations any instance can read, the cluster's runtime list, pongs,
//! and commands routed to the instance holding a runtime's socket.
//!
//! Routing is pub/sub, at most once: each instance listens on its own
//! channel ([`super::messages`]). A command is published there with the
//! time it may still take; the holder writes it with the same call as its
//! own commands ([`crate::runtime::Handle::write_local`]), dropping it once
//! that time is up, and acks on the sender's channel. A publish that reaches
//! nobody is a `503` at once, and so is a command this instance would
//! forward while it is not subscribed to its own channel (its ack could not
//! arrive: after a failover, until the subscription moved too). The holder gives up [`MARGIN`] before the
//! sender does, so a command is never written after its client was told `504`.
//!
//! With traces on, the hop is a `forward` span on the sender, whose W3C
//! `traceparent` the message carries; the holder continues that trace in a
//! `forwarded` span around the write and the ack.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::Node;
use super::engine::Lua;
use super::messages::{self, Message};
use super::records;
use crate::runtime::{
    CommandFrame, DispatchError, ForwardFuture, PeerFuture, Peers, Registration, Remote, RuntimeInfo, RuntimePage,
    Unavailable,
};

/// How much earlier than the sender the holder of a runtime gives up.
const MARGIN: Duration = Duration::from_millis(250);

/// How long a registration is kept (renewed by each registration).
const REGISTRATION_TTL: Duration = Duration::from_secs(24 * 3600);

use crate::metrics::FORWARDED;
use crate::telemetry;

/// The cluster's [`Peers`].
pub(super) struct ClusterPeers {
    node: Arc<Node>,
    next: AtomicU64,
    /// True while this instance is subscribed to its channel: a command
    /// forwarded meanwhile could not get its ack (after a failover, until
    /// the subscription moved to the new primary).
    listening: AtomicBool,
    /// Commands this instance forwarded, awaiting their ack (by name).
    waiting: Mutex<HashMap<u64, oneshot::Sender<String>>>,
}

impl ClusterPeers {
    pub(super) fn new(node: Arc<Node>) -> Arc<Self> {
        Arc::new(Self { node, next: AtomicU64::new(1), listening: AtomicBool::new(false), waiting: Mutex::default() })
    }

    /// Listens on this instance's channel until the instance leaves the cluster.
    pub(super) async fn listen(self: Arc<Self>) {
        let stop = self.node.stop.clone();
        tokio::select! {
            () = stop.cancelled() => {}
            () = self.subscribe() => {}
        }
    }

    async fn subscribe(&self) {
        let channel = self.node.engine.channel(&self.node.id);
        loop {
            // Subscribed again on the new primary after a failover.
            let moved = self.node.engine.moved();
            match self.node.engine.pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                    Ok(()) => {
                        self.listening.store(true, Ordering::Relaxed);
                        let mut messages = pubsub.on_message().take_until(moved);
                        while let Some(msg) = messages.next().await {
                            let Ok(payload) = msg.get_payload::<String>() else { continue };
                            match serde_json::from_str::<Message>(&payload) {
                                Ok(message) => self.handle(message),
                                Err(e) => tracing::warn!(error = %e, "an unreadable message on the cluster channel"),
                            }
                        }
                        self.listening.store(false, Ordering::Relaxed);
                        tracing::debug!("the cluster channel closed; subscribing again");
                    }
                    Err(e) => self.node.engine.failed(&e),
                },
                Err(e) => self.node.engine.failed(&e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn handle(&self, message: Message) {
        match message {
            Message::TicketTaken { holder } => {
                self.node.holds.end(&holder);
            }
            Message::Ack { corr, outcome } => {
                if let Some(tx) = self.lock().remove(&corr) {
                    let _ = tx.send(outcome);
                }
            }
            Message::Command { corr, from, runtime, generation, ms, text, scope, request_id, traceparent } => {
                let frame = messages::frame(text, &scope, request_id);
                let budget = Duration::from_millis(ms).saturating_sub(MARGIN.min(Duration::from_millis(ms / 4)));
                let node = self.node.clone();
                let span = match traceparent.filter(|_| telemetry::traces_on()) {
                    Some(parent) => {
                        let span = tracing::info_span!(parent: None, "forwarded", runtime = %runtime, from = %from, outcome = Empty);
                        telemetry::continue_trace(&span, &parent);
                        span
                    }
                    None => Span::none(),
                };
                let forwarded = async move {
                    // The socket task drops the frame unsent once `budget` is over.
                    let deadline = Instant::now() + budget;
                    let written = node.runtimes.write_local(&runtime, generation, frame, deadline).await;
                    Span::current().record("outcome", DispatchError::write_outcome(&written));
                    node.publish(&from, &Message::ack(corr, &written)).await;
                };
                self.node.tasks.spawn(forwarded.instrument(span));
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<String>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes `frame` for `to`'s holder and waits for its ack (in `span`'s trace).
    async fn send(&self, to: &Remote, frame: CommandFrame, deadline: Instant, span: Span) -> Result<(), DispatchError> {
        if !self.listening.load(Ordering::Relaxed) {
            let why = "this instance is not subscribed to its channel yet (Redis failing over?); retry";
            return Err(Unavailable(why.into()).into());
        }
        let ms = deadline.saturating_duration_since(Instant::now()).as_millis() as u64;
        let corr = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.lock().insert(corr, tx);
        let _awaiting = Awaiting { peers: self, corr };
        let request_id = frame.request_id.clone();
        let payload = Message::command(corr, &self.node.id, to, ms, frame, telemetry::traceparent(&span)).to_json();
        let publish = redis::cmd("PUBLISH").arg(self.node.engine.channel(&to.node)).arg(payload).to_owned();
        let receivers: i64 = self.node.engine.run(&publish).await.map_err(unavailable)?;
        let unreachable = || DispatchError::Unreachable(to.node.to_string());
        let outcome = if receivers == 0 {
            Err(unreachable())
        } else {
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(outcome)) => DispatchError::from_write_outcome(&outcome, &request_id),
                Ok(Err(_)) => Err(unreachable()),
                Err(_) => Err(DispatchError::NotTaken(request_id)),
            }
        };
        let label = match &outcome {
            Err(DispatchError::Unreachable(_)) => "unreachable",
            written => DispatchError::write_outcome(written),
        };
        ::metrics::counter!(FORWARDED, "outcome" => label).increment(1);
        span.record("outcome", label);
        outcome
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
    fn check(&self) -> Result<(), Unavailable> {
        if self.node.engine.healthy() { Ok(()) } else { Err(Unavailable("the bridge cannot reach Redis".into())) }
    }

    fn register<'a>(&'a self, registration: &'a Registration) -> PeerFuture<'a, String> {
        Box::pin(async move {
            let json = serde_json::to_string(registration).expect("registrations serialise");
            let candidate = format!("conn-{}", uuid::Uuid::new_v4());
            let ttl = REGISTRATION_TTL.as_millis() as u64;
            let call = self.node.engine.script(Lua::Log, "register");
            call.arg(&registration.device_id).arg(candidate).arg(json).arg(ttl).run().await.map_err(unavailable)
        })
    }

    fn registration<'a>(&'a self, connection_id: &'a str) -> PeerFuture<'a, Option<Registration>> {
        Box::pin(async move {
            let key = self.node.engine.key(&format!("conn:{connection_id}"));
            let json: Option<String> = self.node.engine.run(redis::cmd("GET").arg(key)).await.map_err(unavailable)?;
            Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
        })
    }

    fn forward<'a>(&'a self, to: &'a Remote, frame: CommandFrame, deadline: Instant) -> ForwardFuture<'a> {
        if !telemetry::traces_on() {
            return Box::pin(self.send(to, frame, deadline, Span::none()));
        }
        let span = tracing::info_span!("forward", runtime = %to.runtime_id, node = %to.node, outcome = Empty);
        Box::pin(self.send(to, frame, deadline, span.clone()).instrument(span))
    }

    fn list(&self) -> PeerFuture<'_, Vec<RuntimeInfo>> {
        Box::pin(async move { records::list(&self.node.engine).await.map_err(unavailable) })
    }

    fn page<'a>(&'a self, after: Option<&'a str>, limit: usize) -> PeerFuture<'a, RuntimePage> {
        Box::pin(async move { records::page(&self.node.engine, after, limit).await.map_err(unavailable) })
    }

    fn pong(&self, runtime_id: &str, generation: u64, at: SystemTime) {
        let node = self.node.clone();
        let runtime_id = runtime_id.to_owned();
        let at = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        self.node.tasks.spawn(async move {
            let call = node.engine.script(Lua::Log, "pong").arg(runtime_id).arg(&node.id).arg(generation).arg(at);
            let _ = call.run::<i64>().await;
        });
    }
}

fn unavailable(e: redis::RedisError) -> Unavailable {
    Unavailable(e.to_string())
}
