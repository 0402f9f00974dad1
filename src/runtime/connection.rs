//! The one task that owns a runtime's socket: it writes queued commands,
//! answers JSON pings, checks liveness with ping control frames, and turns
//! every frame the runtime sends into a hub event (and a reply, when one is
//! awaited). Nothing else touches the socket.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, interval_at, timeout};
use tokio_util::sync::CancellationToken;

use super::awaited::{Awaited, DRAIN_ANSWERS};
use super::link::{Link, Outgoing};
use super::registry::{Joined, unix_millis_now};
use super::runtimes::Runtimes;
use super::scopes::ScopeCache;
use crate::hub::Draft;
use crate::protocol::bridge::RESERVED_EVENTS;
use crate::protocol::{Scope, commands::is_reply, parse_runtime_frame};

/// Longest a single socket write may take before the runtime counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest the socket task holds commands after the upgrade while it waits
/// for the runtime's first pong (see `serve`); then they go anyway.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

/// The JSON pong the runtime expects for each of its JSON pings.
const JSON_PONG: &str = r#"{"type":"pong"}"#;

/// Everything the socket task needs.
pub(super) struct Connection {
    runtimes: Runtimes,
    link: Link,
    commands: mpsc::Receiver<Outgoing>,
    /// Cancelled when a newer connection of the same device takes over.
    replaced: CancellationToken,
    /// Cancelled when this instance fences itself (cluster mode).
    fenced: CancellationToken,
    /// Cancelled when the runtime's token no longer grants its device.
    revoked: CancellationToken,
    /// Unix millis of the last pong control frame (0: none yet).
    last_pong: Arc<AtomicU64>,
    /// Scopes seen on this device (events and commands), for re-sync.
    scopes: ScopeCache,
    /// Scopes to `sync` as soon as the socket is served (a reconnect).
    resync: Vec<Scope>,
    /// Commands written and not answered yet (awaited at shutdown).
    awaited: Awaited,
}

/// How a connection ended (the `reason` of `runtime_offline`).
#[derive(Debug, Clone, Copy)]
enum End {
    Closed,
    /// The connection broke without a close frame (what the real runtime
    /// does when stopped by a signal).
    ConnectionLost,
    Replaced,
    HeartbeatTimeout,
    Shutdown,
    /// This instance fenced itself (cluster mode).
    Fenced,
    /// Its token was taken away (LETTA_BRIDGE_RUNTIME_TOKENS_FILE reloaded).
    Revoked,
    Error,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::ConnectionLost => "connection_lost",
            Self::Replaced => "replaced",
            Self::HeartbeatTimeout => "heartbeat_timeout",
            Self::Shutdown => "shutdown",
            Self::Fenced => "fenced",
            Self::Revoked => "revoked",
            Self::Error => "error",
        }
    }
}

/// Marks the connection gone however the task ends, panics included.
struct OnGone<'a> {
    runtimes: &'a Runtimes,
    link: &'a Link,
    end: End,
}

impl Drop for OnGone<'_> {
    fn drop(&mut self) {
        self.runtimes.disconnected(self.link, self.end.as_str());
    }
}

impl Connection {
    /// Makes a new connection `device_id`'s current one.
    pub(super) fn open(runtimes: &Runtimes, device_id: &str, connection_name: Option<String>) -> Self {
        let Joined { link, commands, replaced, last_pong, scopes, resync } =
            runtimes.connect(device_id, connection_name);
        let scopes = ScopeCache::new(scopes);
        let fenced = runtimes.fence_token();
        let revoked = CancellationToken::new();
        let awaited = Awaited::default();
        Self {
            runtimes: runtimes.clone(),
            link,
            commands,
            replaced,
            fenced,
            revoked,
            last_pong,
            scopes,
            resync,
            awaited,
        }
    }

    /// Cancel it to close the socket because its token was taken away.
    pub(super) fn revoke_token(&self) -> CancellationToken {
        self.revoked.clone()
    }

    /// Serves the socket until it closes, is replaced, or the bridge stops.
    #[tracing::instrument(name = "runtime", skip_all, fields(device = %self.link.runtime_id, generation = self.link.generation))]
    pub(super) async fn run(mut self, mut socket: WebSocket) {
        tracing::info!("runtime connected");
        let runtimes = self.runtimes.clone();
        let link = self.link.clone();
        let mut gone = OnGone { runtimes: &runtimes, link: &link, end: End::Error };
        gone.end = self.serve(&mut socket).await;
        tracing::info!(reason = gone.end.as_str(), "runtime disconnected");
    }

    async fn serve(&mut self, socket: &mut WebSocket) -> End {
        let settings = self.runtimes.settings();
        let shutdown = self.runtimes.inner.shutdown.clone();
        let period = settings.ping_interval;
        let mut ping = interval_at(Instant::now() + period, period);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut dropped = 0u64;
        // The runtime sets up its side of a new connection just after the
        // upgrade: a command that reaches it before then is accepted, but the
        // events of its turn go nowhere (seen with letta-code 0.32.18). Its
        // WebSocket library answers a ping control frame as soon as the
        // socket is open, so commands (and re-syncs) wait for that first
        // pong, or for SETTLE_TIMEOUT with a runtime that does not answer.
        if write(socket, Message::Ping(Default::default())).await.is_err() {
            return End::Error;
        }
        let mut unanswered = 1u32;
        let mut settled = false;
        // Set while the event sink is full: the runtime is not read until it has room.
        let mut full: Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>> = None;
        let settle = tokio::time::sleep(SETTLE_TIMEOUT);
        tokio::pin!(settle);
        loop {
            if !settled && (unanswered == 0 || settle.is_elapsed()) {
                settled = true;
                if self.resync(socket).await.is_err() {
                    return End::Error;
                }
            }
            if full.is_none() {
                full = self.runtimes.inner.events.backpressure();
            }
            // Order matters under load: commands (bounded by the queue) and
            // the heartbeat go before reading, so a runtime that floods frames
            // cannot starve either; reading waits while the sink is full.
            tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    self.await_answers(socket, &mut dropped).await;
                    close(socket, 1001, "bridge shutting down").await;
                    return End::Shutdown;
                }
                () = self.replaced.cancelled() => {
                    close(socket, 1000, "Replaced by new connection").await;
                    return End::Replaced;
                }
                () = self.fenced.cancelled() => {
                    close(socket, 1012, "bridge instance lost its engine; reconnect").await;
                    return End::Fenced;
                }
                () = self.revoked.cancelled() => {
                    close(socket, 1008, "runtime token revoked").await;
                    return End::Revoked;
                }
                () = &mut settle, if !settled => {}
                Some(out) = self.commands.recv(), if settled => {
                    // Its HTTP request already answered 504 ("not taken in
                    // time"): sending it now would be a send the client was
                    // told did not happen, and might retry.
                    if out.written.is_closed() {
                        tracing::debug!("dropping a command whose request gave up before it was written");
                        continue;
                    }
                    if let Some(scope) = out.scope {
                        self.scopes.note(scope);
                    }
                    if write(socket, Message::Text(out.text.into())).await.is_err() {
                        return End::Error;
                    }
                    self.awaited.written(out.answered_by);
                    let _ = out.written.send(());
                }
                _ = ping.tick() => {
                    if unanswered >= settings.max_missed_pongs {
                        tracing::warn!(missed = unanswered, "runtime stopped answering pings");
                        close(socket, 1011, "heartbeat timeout").await;
                        return End::HeartbeatTimeout;
                    }
                    unanswered += 1;
                    if write(socket, Message::Ping(Default::default())).await.is_err() {
                        return End::Error;
                    }
                }
                () = async { full.as_mut().expect("guarded").await }, if full.is_some() => full = None,
                msg = socket.recv(), if full.is_none() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        if self.on_text(socket, text.as_str(), &mut dropped).await.is_err() {
                            return End::Error;
                        }
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        let Ok(text) = std::str::from_utf8(&bytes) else {
                            note_dropped(&mut dropped, "binary frame that is not UTF-8");
                            continue;
                        };
                        if self.on_text(socket, text, &mut dropped).await.is_err() {
                            return End::Error;
                        }
                    }
                    Some(Ok(Message::Pong(_))) => {
                        unanswered = 0;
                        self.last_pong.store(unix_millis_now(), Ordering::Relaxed);
                        self.runtimes.pong(&self.link, std::time::SystemTime::now());
                    }
                    // The WebSocket layer answers ping control frames itself.
                    Some(Ok(Message::Ping(_))) => {}
                    Some(Ok(Message::Close(_))) | None => return End::Closed,
                    Some(Err(e)) => {
                        let Some((code, reason)) = super::closing::close_for(&e) else {
                            tracing::debug!(error = %e, "runtime socket broke");
                            return End::ConnectionLost;
                        };
                        // A limit or a rule the runtime broke: say which.
                        tracing::warn!(code, %reason, "closing a runtime socket: its frame broke a limit (LETTA_BRIDGE_MAX_FRAME_BYTES) or the protocol");
                        let frame = CloseFrame { code, reason: super::closing::fit_reason(&reason).to_owned().into() };
                        let _ = write(socket, Message::Close(Some(frame))).await;
                        return End::Error;
                    }
                },
            }
        }
    }

    /// Before a shutdown's close: reads the socket until every command it
    /// wrote is answered, for at most [`DRAIN_ANSWERS`]. It takes no new
    /// command: those still queued fail unsent when the task ends (`503`,
    /// so their clients retry, with the same `Idempotency-Key`, once the
    /// runtime has reconnected elsewhere).
    async fn await_answers(&mut self, socket: &mut WebSocket, dropped: &mut u64) {
        let deadline = Instant::now() + DRAIN_ANSWERS;
        while !self.awaited.is_empty() {
            let Ok(msg) = tokio::time::timeout_at(deadline, socket.recv()).await else {
                tracing::warn!(unanswered = self.awaited.len(), "closing for shutdown with commands unanswered");
                return;
            };
            let text = match &msg {
                Some(Ok(Message::Text(text))) => text.as_str(),
                Some(Ok(Message::Binary(bytes))) => std::str::from_utf8(bytes).unwrap_or_default(),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return,
            };
            if self.on_text(socket, text, dropped).await.is_err() {
                return;
            }
        }
    }

    /// After a reconnect: one `sync` per scope seen before, so subscribers
    /// get the current state without noticing the gap. The replies flow like
    /// any event; nothing waits for them.
    async fn resync(&mut self, socket: &mut WebSocket) -> Result<(), ()> {
        if self.resync.is_empty() {
            return Ok(());
        }
        tracing::info!(scopes = self.resync.len(), "re-syncing the runtime after its reconnect");
        for scope in std::mem::take(&mut self.resync) {
            let request_id = format!("bridge-resync-{}", uuid::Uuid::new_v4());
            write(socket, Message::Text(scope.sync_frame(&request_id).into())).await?;
        }
        Ok(())
    }

    /// One text frame from the runtime. `Err` only when the socket failed.
    async fn on_text(&mut self, socket: &mut WebSocket, text: &str, dropped: &mut u64) -> Result<(), ()> {
        let frame = match parse_runtime_frame(text, &self.link.runtime_id) {
            Ok(frame) => frame,
            Err(e) => {
                note_dropped(dropped, &e.to_string());
                return Ok(());
            }
        };
        match frame.kind.as_str() {
            "ping" => return write(socket, Message::Text(Utf8Bytes::from_static(JSON_PONG))).await,
            "pong" => return Ok(()),
            kind if RESERVED_EVENTS.contains(&kind) => {
                note_dropped(dropped, "frame uses a type reserved for the bridge's own events");
                return Ok(());
            }
            _ => {}
        }
        self.scopes.note_event(frame.agent_id.as_deref(), frame.conversation_id.as_deref());
        let reply_to = frame.request_id.filter(|_| is_reply(&frame.kind));
        if let Some(request_id) = &reply_to {
            self.awaited.answered(request_id);
        }
        let draft = Draft {
            kind: frame.kind,
            runtime_id: Some(self.link.runtime_id.clone()),
            agent_id: frame.agent_id,
            conversation_id: frame.conversation_id,
            data: frame.data,
        };
        self.runtimes.inner.events.append(&self.link, draft, reply_to);
        Ok(())
    }
}

/// Logs dropped frames without letting a flood flood the log: the 1st, 2nd,
/// 4th, 8th, ... are logged with the running count.
fn note_dropped(count: &mut u64, why: &str) {
    *count += 1;
    if count.is_power_of_two() {
        tracing::warn!(dropped = *count, why, "dropped a runtime frame");
    }
}

async fn write(socket: &mut WebSocket, msg: Message) -> Result<(), ()> {
    match timeout(WRITE_TIMEOUT, socket.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "runtime socket write failed");
            Err(())
        }
        Err(_) => {
            tracing::warn!("runtime socket write timed out");
            Err(())
        }
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
    let _ = write(socket, Message::Close(Some(frame))).await;
}
