//! Plays one row of the plan against the runtime: sends its commands, collects
//! until what ends each one, and keeps what the runtime and the model server
//! got meanwhile.

use std::time::{Duration, Instant};

use letta_bridge_testkit::model_server::{ModelServer, Reply};
use serde_json::Value;

use crate::plan::{Planned, PlannedClose, REPLY, SEC, Until};
use crate::recording::{Exchange, Reconnection, Step};
use crate::server::{Captured, FakeServer};
use crate::session::{Received, Session, has};

pub struct Recorder {
    pub server: FakeServer,
    pub session: Session,
    pub model: ModelServer,
    /// Model requests already handed out with an earlier step.
    model_seen: usize,
}

impl Recorder {
    pub fn new(server: FakeServer, session: Session, model: ModelServer) -> Self {
        Self { server, session, model, model_seen: 0 }
    }

    /// The HTTP requests the server got since the last call.
    pub fn http(&mut self) -> Vec<Captured> {
        let mut out = Vec::new();
        while let Ok(c) = self.server.requests.try_recv() {
            out.push(c);
        }
        out
    }

    /// The model server's requests since the last call (`METHOD uri`), and
    /// the tool results among them: the last message of each chat request
    /// that ends with one (`role: "tool"`: what the model was told a call returned).
    fn model_requests(&mut self) -> (Vec<String>, Vec<Value>) {
        let all = self.model.requests();
        let new = &all[self.model_seen.min(all.len())..];
        let lines = new.iter().map(|r| format!("{} {}", r.method, r.uri)).collect();
        let tool_results = new
            .iter()
            .filter_map(|r| r.body["messages"].as_array()?.last().filter(|m| m["role"] == "tool").cloned())
            .collect();
        self.model_seen = all.len();
        (lines, tool_results)
    }

    /// Plays a planned exchange, under its model reply.
    pub async fn exchange(&mut self, planned: Planned) -> Exchange {
        if let Some(reply) = planned.model {
            self.model.set_reply(reply);
        }
        let mut steps = Vec::new();
        for (send, until) in planned.steps {
            steps.push(self.step(Some(send), until).await);
        }
        self.model.set_reply(Reply::new(REPLY));
        Exchange { name: planned.name, about: planned.about, steps }
    }

    /// Sends `send` (if any), then collects frames until `until`.
    pub async fn step(&mut self, send: Option<Value>, until: Until) -> Step {
        let sent_at = Instant::now();
        if let Some(frame) = &send {
            self.session.send(frame);
        }
        let (frames, timed_out) = match until {
            Until::Got(kinds, quiet, max) => {
                self.session.collect(|f| kinds.iter().all(|k| has(f, k)), quiet, max).await
            }
            Until::Streaming(max) => {
                self.session.collect(|f| f.iter().any(is_assistant_delta), Duration::ZERO, max).await
            }
            // A window has no end to miss.
            Until::Window(window) => (self.session.collect(|_| false, window, window).await.0, false),
        };
        // Requests and frames race a little: let stragglers land.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (model, tool_results) = self.model_requests();
        Step { send, sent_at, frames, timed_out, http: self.http(), model, tool_results }
    }

    /// Closes the socket as planned, then waits for the runtime to connect
    /// again; on success the session is the new socket.
    pub async fn close(&mut self, planned: PlannedClose) -> Reconnection {
        let PlannedClose { name, about, code, reason, wait, at_once, then } = planned;
        self.session.close(code, reason);
        let closed_at = Instant::now();
        let (old_socket, _) = self.session.collect(|_| false, SEC / 2, SEC / 2).await;
        let next = tokio::time::timeout(wait, self.server.sockets.recv()).await.ok().flatten();
        let reconnected = next.is_some();
        let mut first_frames = Vec::new();
        let mut steps = Vec::new();
        // The upgrade's capture is queued before the socket is handed over.
        let requests = self.http();
        if let Some((at, socket)) = next {
            self.session = Session::start(at, socket);
            match at_once {
                Some(command) => steps.push(self.step(Some(command), Until::Window(3 * SEC)).await),
                None => first_frames = self.step(None, Until::Window(2 * SEC)).await.frames,
            }
            if let Some((command, until)) = then {
                steps.push(self.step(Some(command), until).await);
            }
        }
        Reconnection {
            name,
            about,
            close: (code, reason),
            closed_at,
            old_socket,
            requests,
            reconnected,
            first_frames,
            steps,
            alive_after: true,
        }
    }
}

fn is_assistant_delta(r: &Received) -> bool {
    r.frame["type"] == "stream_delta" && r.frame["delta"]["message_type"] == "assistant_message"
}
