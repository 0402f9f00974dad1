//! The one task that owns a client socket (a relay socket or an
//! App-Server socket): it reads the event log from where the socket opened
//! and sends what [`Delivery`] lets through, answers the client's `ping`s
//! and takes its `ack`s (neither reaches the runtime), and hands every
//! other frame to the runtime as a command — under the socket's request-id
//! namespace (unguessable, in a form no other caller may use), after the
//! privilege check ([`Command::authorize`]), with an error frame carrying the
//! command's `request_id` when it is refused or cannot be sent. Its
//! commands in flight are a bounded set it polls itself ([`InFlight`]).
//! A socket an end user's token opened gets only what the user may read,
//! sends only what the user may send (on the socket's runtime), and closes
//! with [`REAUTH_CLOSE`] when the token expires or is revoked.

use std::future::Future;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{Duration, timeout};

use super::commands::{self, InFlight};
use super::delivery::{Channel, Delivery};
use super::frames::{self, Bookkeeping};
use super::sockets::Sockets;
use crate::hub::{Gap, Next, Start};
use crate::protocol::commands::new_socket_namespace;
use crate::protocol::{Command, Role};
use crate::quota::Quotas;
use crate::runtime::{Order, Runtimes, Wait};

/// Frames the socket task sends besides events (pongs, error frames) that
/// may wait: a client that floods commands faster than its socket drains
/// gets its socket closed (1008) rather than unbounded memory.
const QUEUE: usize = 256;

/// What the socket task owes the client besides the runtime's events.
enum Owed {
    /// The answer to a `ping`: relay bookkeeping, like `ack`, so never numbered.
    Pong,
    /// A refusal or an error frame: numbered like the runtime's frames on a
    /// relay socket (the client acks it like any reply).
    Frame(String),
}

/// The close code of a socket whose end user's token expired or was
/// revoked (reason `token_expired` or `token_revoked`): get a new token or
/// ticket and connect again. In the range RFC 6455 leaves to applications.
pub const REAUTH_CLOSE: u16 = 4001;

/// Why the door ends a client socket (besides shutdown and the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// Its ticket was opened again (close 1008, so the client does not
    /// reconnect to take it back).
    Taken,
    /// Its end user's token expired or was revoked: [`REAUTH_CLOSE`] with
    /// the reason (`token_expired`, `token_revoked`).
    Reauth(&'static str),
}

/// Longest one write to the client may take before it counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

use crate::metrics::{CLIENT_FRAMES_IN as FRAMES_IN, CLIENT_FRAMES_OUT as FRAMES_OUT, CLIENT_SOCKETS as SOCKETS};

/// What a client socket is.
pub struct ClientSocket {
    /// The runtime it drives (its device id).
    pub runtime_id: Arc<str>,
    /// The caller's role (client or admin token, or an end user: then
    /// what the user may read and send).
    pub role: Role,
    /// Its relay channel (`Both` for App-Server sockets).
    pub channel: Channel,
    /// Relay sockets number their frames (`seq`, acked by the client).
    pub sequenced: bool,
    /// `relay` or `app_server`, for metrics.
    pub kind: &'static str,
}

/// A command from the client, checked and namespaced, to send.
struct Outgoing {
    /// Its `type`, for the refusal if it cannot be sent.
    kind: String,
    /// The client's own `request_id`, for the refusal.
    request_id: Option<String>,
    command: Command,
}

/// The client broke the flow rule: too many frames owed at once.
struct Flooded;

impl ClientSocket {
    /// Serves `socket` until the client leaves, the bridge stops, or
    /// `ends` resolves (the ticket the socket opened with was opened again,
    /// or its end user's token expired or was revoked).
    #[tracing::instrument(name = "client", skip_all, fields(runtime = %self.runtime_id, kind = self.kind))]
    pub(super) async fn run(self, mut socket: WebSocket, ctx: &Sockets, ends: impl Future<Output = Closing>) {
        let _gauge = Gauge::up(self.kind);
        let mut delivery = Delivery::new(self.runtime_id.clone(), new_socket_namespace(), self.channel, self.sequenced)
            .of_user(self.role.user().cloned());
        let (mut reader, _) = ctx.hub.subscribe(Start::Live);
        let (tx, mut rx) = mpsc::channel::<Owed>(QUEUE);
        let mut in_flight = InFlight::new();
        tokio::pin!(ends);
        tracing::debug!("client socket open");
        loop {
            // Order: shutdown first; then what the bridge owes the client
            // (pongs, error frames), then events, then the client's frames —
            // a client flooding commands cannot starve its own replies.
            tokio::select! {
                biased;
                () = ctx.shutdown.cancelled() => {
                    close(&mut socket, 1001, "bridge shutting down").await;
                    tracing::debug!("client socket closed: bridge shutting down");
                    return;
                }
                closing = &mut ends => {
                    match closing {
                        Closing::Taken => {
                            close(&mut socket, 1008, "ticket opened by another connection").await;
                            tracing::debug!("client socket closed: its ticket was opened again");
                        }
                        Closing::Reauth(reason) => {
                            close(&mut socket, REAUTH_CLOSE, reason).await;
                            tracing::debug!(reason, "client socket closed: its end user's token ended");
                        }
                    }
                    return;
                }
                Some(owed) = rx.recv() => {
                    let text = match owed {
                        Owed::Pong => frames::pong(),
                        Owed::Frame(text) => delivery.numbered(&text),
                    };
                    if send(&mut socket, text, self.kind).await.is_err() { return; }
                }
                refused = in_flight.finished() => {
                    // Named here: the set's future type is inferred from the push below.
                    let refused: Option<String> = refused;
                    if let Some(text) = refused
                        && send(&mut socket, delivery.numbered(&text), self.kind).await.is_err()
                    {
                        return;
                    }
                }
                next = reader.next() => {
                    match next {
                        Next::Events => {}
                        // The client learns of the gap from the runtime's
                        // `event_seq`, which jumps (docs/clients.md); who
                        // owns each conversation may have changed meanwhile.
                        Next::Gap(Gap::Lagged { missed, .. }) => {
                            tracing::warn!(missed, "a client socket fell behind the replay ring; its client resyncs on the event_seq gap");
                            delivery.forget_owners();
                        }
                        Next::Gap(Gap::Rebased { previous, .. }) => {
                            tracing::debug!(%previous, "the event log restarted under a new epoch; the client socket goes on with it");
                            delivery.forget_owners();
                        }
                    }
                    for event in reader.batch().drain(..) {
                        if let Some(frame) = delivery.frame(&event)
                            && send(&mut socket, frame, self.kind).await.is_err()
                        {
                            return;
                        }
                    }
                }
                msg = socket.recv() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        ::metrics::counter!(FRAMES_IN, "kind" => self.kind).increment(1);
                        match self.on_frame(text.as_str(), delivery.prefix(), &tx) {
                            Ok(None) => {}
                            Ok(Some(out)) if in_flight.has_room() => {
                                let from = (ctx.quotas.clone(), self.role.clone());
                                in_flight.push(forward(ctx.runtimes.clone(), from, self.runtime_id.to_string(), out));
                            }
                            Ok(Some(out)) => {
                                let busy = frames::refusal(&out.kind, out.request_id.as_deref(), &commands::busy());
                                if owe(&tx, Owed::Frame(busy)).is_err() {
                                    close(&mut socket, 1008, "too many frames waiting").await;
                                    return;
                                }
                            }
                            Err(Flooded) => {
                                close(&mut socket, 1008, "too many frames waiting").await;
                                return;
                            }
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => return,
                    Some(Err(e)) => {
                        // A limit or a rule the client broke: say which (else the connection is gone).
                        if let Some((code, reason)) = crate::runtime::closing::close_for(&e) {
                            tracing::info!(code, %reason, "closing a client socket: its frame broke a limit (LETTA_BRIDGE_MAX_BODY_BYTES) or the protocol");
                            let frame = CloseFrame { code, reason: crate::runtime::closing::fit_reason(&reason).to_owned().into() };
                            let _ = timeout(WRITE_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
                        }
                        return;
                    }
                    // Binary frames are not part of the protocol; control frames are the library's.
                    Some(Ok(_)) => {}
                },
            }
        }
    }

    /// One frame from the client: bookkeeping and refusals are owed at
    /// once; a command that passed comes back to be sent.
    fn on_frame(&self, text: &str, prefix: &str, tx: &mpsc::Sender<Owed>) -> Result<Option<Outgoing>, Flooded> {
        let Ok(Value::Object(frame)) = serde_json::from_str::<Value>(text) else {
            let why = "a frame must be a JSON object with a string `type`";
            return owe(tx, Owed::Frame(frames::error(None, why))).map(|()| None);
        };
        let kind = frame.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
        match Bookkeeping::of(&kind) {
            // Relay bookkeeping: never forwarded to the runtime.
            Some(Bookkeeping::Ack) => return Ok(None),
            Some(Bookkeeping::Ping) => return owe(tx, Owed::Pong).map(|()| None),
            None => {}
        }
        let request_id = frame.get("request_id").and_then(Value::as_str).map(str::to_owned);
        let refuse =
            |why: &str| owe(tx, Owed::Frame(frames::refusal(&kind, request_id.as_deref(), why))).map(|()| None);
        // The client's own id must not be of the form the bridge keeps for
        // namespaces (`Command::new` refuses it), so no socket can answer
        // for another.
        let command = match Command::new(frame) {
            Ok(command) => command,
            Err(e) => return refuse(&e.to_string()),
        };
        // A command's id goes under this socket's namespace; an answer to the
        // runtime's own request (`*_response`) keeps the runtime's id. A
        // command sent without one (`AppServerClient.input()`) got a fresh
        // id, in the namespace too: its reply then still says which socket
        // owns the conversation (approvals go there).
        let command = if frames::answers_the_runtime(&kind) { command } else { command.within(prefix) };
        if let Err(refused) = command.authorize(&self.role, &self.runtime_id) {
            return refuse(&refused.to_string());
        }
        Ok(Some(Outgoing { kind, request_id, command }))
    }
}

/// Queues what the socket owes its client; a full queue means the client
/// floods faster than its socket drains.
fn owe(tx: &mpsc::Sender<Owed>, owed: Owed) -> Result<(), Flooded> {
    tx.try_send(owed).map_err(|_| Flooded)
}

/// Sends a client's command to its runtime once it passed its
/// credential's rate (the same check as every HTTP request's); the refusal
/// frame to send back when it could not be sent.
async fn forward(runtimes: Runtimes, from: (Arc<Quotas>, Role), runtime: String, out: Outgoing) -> Option<String> {
    let Outgoing { kind, request_id, command } = out;
    let (quotas, role) = from;
    if let Err(limited) = quotas.request(&role).await {
        return Some(frames::refusal(&kind, request_id.as_deref(), &limited.to_string()));
    }
    let order = Order { runtime: Some(runtime), command, wait: Wait::Written, written: None, progress: None };
    let sent = runtimes.dispatch(order).await;
    sent.err().map(|e| frames::refusal(&kind, request_id.as_deref(), &e.to_string()))
}

async fn send(socket: &mut WebSocket, text: String, kind: &'static str) -> Result<(), ()> {
    match timeout(WRITE_TIMEOUT, socket.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => {
            ::metrics::counter!(FRAMES_OUT, "kind" => kind).increment(1);
            Ok(())
        }
        _ => Err(()),
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
    let _ = timeout(WRITE_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
}

/// Counts open sockets by kind, down again on every exit.
struct Gauge(&'static str);

impl Gauge {
    fn up(kind: &'static str) -> Self {
        ::metrics::gauge!(SOCKETS, "kind" => kind).increment(1.0);
        Self(kind)
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        ::metrics::gauge!(SOCKETS, "kind" => self.0).decrement(1.0);
    }
}
