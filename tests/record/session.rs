//! The recorder's end of the runtime socket: one task reads everything the
//! runtime sends (timestamped), answers its JSON pings like the bridge does,
//! and keeps pings apart so they do not land in the middle of an exchange.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Something the runtime sent, with when it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub frame: Value,
}

pub struct Session {
    pub connected_at: Instant,
    out: mpsc::UnboundedSender<Message>,
    frames: mpsc::UnboundedReceiver<Received>,
    pings: mpsc::UnboundedReceiver<Received>,
    /// JSON pings seen so far (the reader answers each with a JSON pong).
    pub ping_log: Vec<Received>,
    /// WebSocket control pings from the runtime, if any.
    control_pings: mpsc::UnboundedReceiver<Instant>,
    pub control_ping_log: Vec<Instant>,
    pub ended: Option<Instant>,
}

impl Session {
    pub fn start(connected_at: Instant, socket: WebSocket) -> Self {
        let (mut sink, mut stream) = socket.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (frames_tx, frames) = mpsc::unbounded_channel();
        let (pings_tx, pings) = mpsc::unbounded_channel();
        let (control_tx, control_pings) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                let closing = matches!(msg, Message::Close(_));
                if sink.send(msg).await.is_err() || closing {
                    // Dropping our half ends the TCP connection once the
                    // reader has the runtime's close reply: until then the
                    // runtime's `ws` does not report the close (it waited
                    // ~20 s when the server kept the connection open).
                    return;
                }
            }
        });
        let pong = out.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let at = Instant::now();
                match msg {
                    Message::Text(text) => {
                        let frame = serde_json::from_str::<Value>(text.as_str())
                            .unwrap_or_else(|_| json!({"_recorder": "not JSON", "text": text.as_str()}));
                        if frame["type"] == "ping" {
                            let _ = pong.send(Message::text(r#"{"type":"pong"}"#));
                            let _ = pings_tx.send(Received { at, frame });
                        } else {
                            let _ = frames_tx.send(Received { at, frame });
                        }
                    }
                    Message::Binary(b) => {
                        let _ = frames_tx.send(Received { at, frame: json!({"_recorder": "binary", "len": b.len()}) });
                    }
                    Message::Ping(_) => {
                        let _ = control_tx.send(at);
                    }
                    Message::Pong(_) => {}
                    Message::Close(c) => {
                        let frame = json!({"_recorder": "close", "code": c.as_ref().map(|c| c.code), "reason": c.as_ref().map(|c| c.reason.to_string())});
                        let _ = frames_tx.send(Received { at, frame });
                        return;
                    }
                }
            }
        });
        Self {
            connected_at,
            out,
            frames,
            pings,
            ping_log: Vec::new(),
            control_pings,
            control_ping_log: Vec::new(),
            ended: None,
        }
    }

    pub fn send(&self, frame: &Value) {
        let _ = self.out.send(Message::text(frame.to_string()));
    }

    /// Closes the socket from the server side with this code and reason.
    pub fn close(&self, code: u16, reason: &str) {
        let _ = self.out.send(Message::Close(Some(CloseFrame { code, reason: reason.to_owned().into() })));
    }

    fn drain_pings(&mut self) {
        while let Ok(p) = self.pings.try_recv() {
            self.ping_log.push(p);
        }
        while let Ok(p) = self.control_pings.try_recv() {
            self.control_ping_log.push(p);
        }
    }

    /// Frames until `done` holds for what was collected, then until the
    /// runtime has been quiet for `quiet`; gives up after `max`.
    pub async fn collect(
        &mut self,
        done: impl Fn(&[Received]) -> bool,
        quiet: Duration,
        max: Duration,
    ) -> (Vec<Received>, bool) {
        let deadline = tokio::time::Instant::now() + max;
        let mut got = Vec::new();
        let mut finished = done(&got);
        loop {
            let wait = if finished { quiet } else { deadline.saturating_duration_since(tokio::time::Instant::now()) };
            let until = (tokio::time::Instant::now() + wait).min(deadline);
            match tokio::time::timeout_at(until, self.frames.recv()).await {
                Ok(Some(r)) => {
                    got.push(r);
                    finished = finished || done(&got);
                }
                Ok(None) => {
                    self.ended.get_or_insert_with(Instant::now);
                    break;
                }
                Err(_) => break,
            }
        }
        self.drain_pings();
        let timed_out = !finished;
        (got, timed_out)
    }

    /// Waits (up to `max`) for the runtime's next JSON ping.
    pub async fn wait_for_ping(&mut self, max: Duration) -> Option<Received> {
        self.drain_pings();
        let ping = tokio::time::timeout(max, self.pings.recv()).await.ok().flatten();
        if let Some(p) = &ping {
            self.ping_log.push(p.clone());
        }
        ping
    }
}

/// True once a frame of type `kind` arrived.
pub fn has(frames: &[Received], kind: &str) -> bool {
    frames.iter().any(|r| r.frame["type"] == kind)
}
