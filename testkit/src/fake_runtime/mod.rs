//! A Letta Code runtime stand-in over a real WebSocket: it answers commands
//! with the frames the real runtime sent in the recording ([`replies_to`])
//! unless told to be quiet, and emits events in the runtime's envelope. A
//! task owns the socket ([`socket`]); [`FakeRuntime`] is its handle.

mod replies;
mod socket;

use std::collections::VecDeque;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use replies::Replies;
pub use replies::{Settings, replies_to};
pub use socket::Seen;
use socket::{Ctl, drive};

use crate::WAIT;
use crate::fixtures;
use crate::replay::replay;

/// The handle of one fake runtime connection; dropping it stops the task.
pub struct FakeRuntime {
    ctl: mpsc::UnboundedSender<Ctl>,
    seen: mpsc::UnboundedReceiver<Seen>,
    replies: Replies,
    /// Frames that arrived before the readiness pong (e.g. re-sync commands).
    early: VecDeque<Value>,
}

impl FakeRuntime {
    /// Connects to `url` with `token` as bearer; fails if the upgrade does.
    pub async fn connect(url: &str, token: Option<&str>) -> Result<Self, WsError> {
        let mut req = url.into_client_request()?;
        if let Some(t) = token {
            req.headers_mut().insert(AUTHORIZATION, format!("Bearer {t}").parse().expect("a token is a header value"));
        }
        Self::connect_request(req).await
    }

    /// Connects with this upgrade request (URL and headers as given).
    pub async fn connect_request(req: Request) -> Result<Self, WsError> {
        let (socket, _) = tokio_tungstenite::connect_async(req).await?;
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let replies = Replies::default();
        tokio::spawn(drive(socket, ctl_rx, seen_tx, replies.clone()));
        Ok(Self { ctl, seen, replies, early: VecDeque::new() })
    }

    /// Connects and waits until the bridge answers a JSON ping; the frames
    /// before the pong wait in [`FakeRuntime::early_frames`].
    pub async fn connect_ready(url: &str, token: &str) -> Self {
        let mut rt = Self::connect(url, Some(token)).await.expect("runtime connects");
        rt.send(json!({"type": "ping"}));
        let mut early = VecDeque::new();
        loop {
            let frame = rt.next_frame().await;
            if frame == json!({"type": "pong"}) {
                break;
            }
            early.push_back(frame);
        }
        rt.early = early;
        rt
    }

    pub fn send(&self, frame: Value) {
        self.send_message(Message::text(frame.to_string()));
    }

    pub fn send_message(&self, msg: Message) {
        let _ = self.ctl.send(Ctl::Send(msg));
    }

    /// Emits a runtime event in the runtime's envelope (`event_seq`,
    /// `emitted_at`, `idempotency_key` as recorded, see [`fixtures::envelope`]).
    pub fn emit(&self, kind: &str, agent: &str, conversation: &str, fields: Value) {
        let mut frame = fixtures::envelope(kind, self.replies.next_seq());
        frame.insert("type".into(), kind.into());
        frame.insert("runtime".into(), json!({"agent_id": agent, "conversation_id": conversation}));
        if let Some(extra) = fields.as_object() {
            frame.extend(extra.clone());
        }
        self.send(Value::Object(frame));
    }

    /// Sends step `i` of a recorded exchange as the answer to `command`
    /// (the frames the real runtime sent, with this command's values).
    pub fn play(&self, exchange: &str, i: usize, command: &Value) {
        for frame in replay(exchange, i, command, &|| self.replies.next_seq()) {
            self.send(frame);
        }
    }

    /// From now on, answer `input` with the whole recorded turn (a message:
    /// fixture `turn`, `input_accepted`, loop status, the assistant deltas,
    /// `turn_finished`; an approval: the rest of the turn it answers,
    /// `approval_allow` or `approval_deny`), as the real runtime does; by
    /// default only `input_accepted`, so that tests can script the turn with
    /// `emit`.
    pub fn play_recorded_turns(&self) {
        self.replies.set_full_turns(true);
    }

    /// From now on, answer a message `input` with the recorded turn that
    /// asks for a tool approval (fixture `approval_allow`, step 1: deltas up
    /// to the `control_request` `perm-call-recorder-allow`); approvals are
    /// answered as pending ones (with [`FakeRuntime::play_recorded_turns`],
    /// with the rest of the recorded turn).
    pub fn ask_for_approvals(&self) {
        self.replies.set_ask_approval(true);
    }

    /// Keep receiving commands but stop answering them.
    pub fn quiet(&self) {
        self.replies.set_auto(false);
    }

    /// Frames that came before the readiness pong, not yet taken by `next_frame`.
    pub fn early_frames(&self) -> &VecDeque<Value> {
        &self.early
    }

    pub fn silence(&self) {
        let _ = self.ctl.send(Ctl::Silence);
    }

    pub fn drop_connection(&self) {
        let _ = self.ctl.send(Ctl::Drop);
    }

    pub fn close(&self) {
        self.send_message(Message::Close(None));
    }

    /// The next thing seen, however long it takes (`Ended` after the end).
    pub async fn recv(&mut self) -> Seen {
        self.seen.recv().await.unwrap_or(Seen::Ended)
    }

    /// The next thing seen (pings included); panics after [`WAIT`].
    pub async fn next_seen(&mut self) -> Seen {
        tokio::time::timeout(WAIT, self.recv()).await.expect("runtime saw nothing in time")
    }

    /// The next JSON frame, skipping ping control frames.
    pub async fn next_frame(&mut self) -> Value {
        if let Some(frame) = self.early.pop_front() {
            return frame;
        }
        loop {
            match self.next_seen().await {
                Seen::Frame(v) => return v,
                Seen::Ping => continue,
                other => panic!("expected a frame, the runtime saw {other:?}"),
            }
        }
    }

    /// Waits for the bridge to close the socket; returns its close frame.
    pub async fn closed(&mut self) -> Option<(u16, String)> {
        loop {
            match self.next_seen().await {
                Seen::Close(frame) => return frame,
                Seen::Ended => return None,
                _ => continue,
            }
        }
    }
}
