//! The one task that owns a client socket (a relay socket or an
//! App-Server socket): it reads the event log from where the socket opened
//! and sends what [`Delivery`] lets through, answers the client's `ping`s
//! and takes its `ack`s (neither reaches the runtime), and hands every
//! other frame to the runtime as a command — under the socket's request-id
//! namespace (unguessable, in a form no other caller may use), after the
//! privilege check ([`Command::authorize`]), with an error frame carrying the
//! command's `request_id` when it is refused or cannot be sent.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::time::{Duration, timeout};
use tokio_util::sync::CancellationToken;

use super::delivery::{Channel, Delivery};
use crate::hub::{Hub, Read, Start};
use crate::protocol::commands::new_socket_namespace;
use crate::protocol::{Command, Role};
use crate::runtime::{Order, Runtimes, Wait};

/// Most events read from the ring per wake-up.
const BATCH: usize = 256;

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

/// Longest one write to the client may take before it counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) const SOCKETS: &str = "letta_bridge_client_sockets";
pub(super) const FRAMES_IN: &str = "letta_bridge_client_frames_in_total";
pub(super) const FRAMES_OUT: &str = "letta_bridge_client_frames_out_total";

/// What a client socket is.
pub struct ClientSocket {
    /// The runtime it drives (its device id).
    pub runtime_id: Arc<str>,
    /// The caller's role (client or admin token).
    pub role: Role,
    /// Its relay channel (`Both` for App-Server sockets).
    pub channel: Channel,
    /// Relay sockets number their frames (`seq`, acked by the client).
    pub sequenced: bool,
    /// `relay` or `app_server`, for metrics.
    pub kind: &'static str,
}

/// Ends the socket with the service.
pub struct Context {
    /// The runtimes commands go to.
    pub runtimes: Runtimes,
    /// The event log.
    pub hub: Hub,
    /// Cancelled at shutdown (after the runtimes' last events): close 1001.
    pub shutdown: CancellationToken,
    /// Cancelled when the ticket the socket opened with is opened again
    /// (by another socket or stream): close 1008, so the client does not
    /// reconnect to take it back.
    pub taken: CancellationToken,
}

impl ClientSocket {
    /// Serves `socket` until the client leaves or the bridge stops.
    #[tracing::instrument(name = "client", skip_all, fields(runtime = %self.runtime_id, kind = self.kind))]
    pub async fn run(self, mut socket: WebSocket, ctx: Context) {
        let _gauge = Gauge::up(self.kind);
        let mut delivery = Delivery::new(self.runtime_id.clone(), new_socket_namespace(), self.channel, self.sequenced);
        let (sub, _) = ctx.hub.subscribe(Start::Live);
        let mut sub = sub;
        let (tx, mut rx) = mpsc::channel::<Owed>(QUEUE);
        let mut batch = Vec::new();
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
                () = ctx.taken.cancelled() => {
                    close(&mut socket, 1008, "ticket opened by another connection").await;
                    tracing::debug!("client socket closed: its ticket was opened again");
                    return;
                }
                Some(owed) = rx.recv() => {
                    let text = match owed {
                        Owed::Pong => json!({"type": "pong"}).to_string(),
                        Owed::Frame(text) => delivery.numbered(&text),
                    };
                    if send(&mut socket, text, self.kind).await.is_err() { return; }
                }
                read = sub.recv(&mut batch, BATCH) => {
                    if let Read::Lagged { missed, .. } = read {
                        tracing::warn!(missed, "a client socket fell behind the replay ring; its client resyncs on the event_seq gap");
                    }
                    for event in batch.drain(..) {
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
                        if !self.on_frame(text.as_str(), &delivery, &ctx, &tx) {
                            close(&mut socket, 1008, "too many frames waiting").await;
                            return;
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

    /// One frame from the client; false when the socket must close.
    fn on_frame(&self, text: &str, delivery: &Delivery, ctx: &Context, tx: &mpsc::Sender<Owed>) -> bool {
        let Ok(Value::Object(frame)) = serde_json::from_str::<Value>(text) else {
            return tx.try_send(Owed::Frame(error(None, "a frame must be a JSON object with a string `type`"))).is_ok();
        };
        let kind = frame.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
        match kind.as_str() {
            // Relay bookkeeping: never forwarded to the runtime.
            "ack" => return true,
            "ping" => return tx.try_send(Owed::Pong).is_ok(),
            _ => {}
        }
        let request_id = frame.get("request_id").and_then(Value::as_str).map(str::to_owned);
        // The client's own id must not be of the form the bridge keeps for
        // namespaces (`Command::new` refuses it), so no socket can answer
        // for another.
        let command = match Command::new(frame) {
            Ok(command) => command,
            Err(e) => return tx.try_send(Owed::Frame(refusal(&kind, request_id.as_deref(), &e.to_string()))).is_ok(),
        };
        // A command's id goes under this socket's namespace; an answer to the
        // runtime's own request (`*_response`) keeps the runtime's id. A
        // command sent without one (`AppServerClient.input()`) got a fresh
        // id, in the namespace too: its reply then still says which socket
        // owns the conversation (approvals go there).
        let command = if kind.ends_with("_response") { command } else { command.within(delivery.prefix()) };
        if let Err(refused) = command.authorize(self.role) {
            return tx.try_send(Owed::Frame(refusal(&kind, request_id.as_deref(), &refused.to_string()))).is_ok();
        }
        let (runtimes, runtime, tx) = (ctx.runtimes.clone(), self.runtime_id.to_string(), tx.clone());
        tokio::spawn(async move {
            let order = Order { runtime: Some(runtime), command, wait: Wait::Written };
            if let Err(e) = runtimes.dispatch(order).await {
                let _ = tx.send(Owed::Frame(refusal(&kind, request_id.as_deref(), &e.to_string()))).await;
            }
        });
        true
    }
}

/// The frame that tells a client its command was not sent: the reply its
/// client library waits for (`input_accepted`, `<type>_response`) with the
/// command's `request_id` and the reason; a generic `error` without an id.
fn refusal(kind: &str, request_id: Option<&str>, why: &str) -> String {
    let Some(request_id) = request_id else { return error(None, why) };
    let mut frame = Map::new();
    match kind {
        "input" => {
            frame.insert("type".into(), "input_accepted".into());
            frame.insert("accepted".into(), false.into());
        }
        _ if kind.ends_with("_response") || kind.is_empty() => return error(Some(request_id), why),
        _ => {
            frame.insert("type".into(), format!("{kind}_response").into());
            frame.insert("success".into(), false.into());
        }
    }
    frame.insert("request_id".into(), request_id.into());
    frame.insert("error".into(), why.into());
    Value::Object(frame).to_string()
}

fn error(request_id: Option<&str>, why: &str) -> String {
    json!({"type": "error", "request_id": request_id, "message": why}).to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_the_reply_the_client_library_waits_for() {
        let input: Value = serde_json::from_str(&refusal("input", Some("input-1"), "no")).unwrap();
        assert_eq!(input, json!({"type": "input_accepted", "accepted": false, "request_id": "input-1", "error": "no"}));
        let start: Value = serde_json::from_str(&refusal("runtime_start", Some("rs-1"), "no")).unwrap();
        assert_eq!((start["type"].as_str(), start["success"].as_bool()), (Some("runtime_start_response"), Some(false)));
        let bare: Value = serde_json::from_str(&refusal("sync", None, "no")).unwrap();
        assert_eq!(bare["type"], "error");
    }
}
