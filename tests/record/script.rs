//! What the recorder does with the runtime, in order: start it, capture
//! registration and the first frames, then one exchange per command, then
//! the ping cadence and the disconnect. Everything is kept raw here;
//! `write` normalises it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::server::{self, Captured, FakeServer};
use crate::session::{Received, Session, has};
use letta_bridge_testkit::letta::{LettaRuntime, RuntimeOptions, temp_dir};
use letta_bridge_testkit::model_server::{ModelServer, Reply};

/// The key the runtime is given (never written to a fixture).
pub const API_KEY: &str = "recorder-runtime-key-0000000001";

/// The scripted model reply of a normal turn.
pub const REPLY: [&str; 4] = ["Hello", " from the", " scripted", " model."];

/// How long to wait for the runtime's first JSON ping (it sends one every
/// 30 s); `RECORD_PINGS=n` waits for `n` of them (default 1).
const PING_WAIT: Duration = Duration::from_secs(45);

/// One command sent and what followed it.
pub struct Step {
    pub send: Option<Value>,
    /// Sent as raw text instead of `send` (e.g. a JSON ping).
    pub sent_at: Instant,
    pub frames: Vec<Received>,
    pub timed_out: bool,
    /// HTTP requests the runtime made to the server meanwhile.
    pub http: Vec<Captured>,
    /// Requests the model server got meanwhile (`METHOD uri`).
    pub model: Vec<String>,
}

pub struct Exchange {
    pub name: &'static str,
    pub about: &'static str,
    pub steps: Vec<Step>,
}

/// The server closed the socket: what the runtime did next.
pub struct Reconnection {
    pub name: &'static str,
    pub about: &'static str,
    pub close: (u16, &'static str),
    pub closed_at: Instant,
    /// What still came on the closed socket (the runtime's close reply).
    pub old_socket: Vec<Received>,
    /// HTTP requests until the next upgrade (included), in order.
    pub requests: Vec<Captured>,
    pub reconnected: bool,
    /// Frames on the new socket before any command.
    pub first_frames: Vec<Received>,
    /// Commands sent on the new socket.
    pub steps: Vec<Step>,
    /// Whether the runtime process was still running at the end.
    pub alive_after: bool,
}

pub struct Recording {
    pub started_at: Instant,
    pub connected_at: Instant,
    /// Health and registration, before the socket.
    pub http_before_socket: Vec<Captured>,
    pub upgrade: Captured,
    /// Frames in the first seconds after connecting, before any command.
    pub first_frames: Vec<Received>,
    pub exchanges: Vec<Exchange>,
    pub reconnections: Vec<Reconnection>,
    pub pings: Vec<Received>,
    pub control_pings: Vec<Instant>,
    /// What the server saw after the runtime was stopped by SIGTERM.
    pub after_stop: Vec<Received>,
    pub stopped_at: Instant,
    pub home: PathBuf,
    pub server: String,
    pub model_server: String,
    pub agent_id: String,
    pub conversation_id: String,
    pub finished_at: Instant,
}

struct Rec {
    server: FakeServer,
    session: Session,
    model: ModelServer,
    model_seen: usize,
}

impl Rec {
    fn http(&mut self) -> Vec<Captured> {
        let mut out = Vec::new();
        while let Ok(c) = self.server.requests.try_recv() {
            out.push(c);
        }
        out
    }

    fn model_requests(&mut self) -> Vec<String> {
        let all = self.model.requests();
        let new = all[self.model_seen.min(all.len())..].iter().map(|r| format!("{} {}", r.method, r.uri)).collect();
        self.model_seen = all.len();
        new
    }

    /// Sends `send` (if any), then collects until `done`, then `quiet`.
    async fn step(
        &mut self,
        send: Option<Value>,
        done: impl Fn(&[Received]) -> bool,
        quiet: Duration,
        max: Duration,
    ) -> Step {
        let sent_at = Instant::now();
        if let Some(frame) = &send {
            self.session.send(frame);
        }
        let (frames, timed_out) = self.session.collect(done, quiet, max).await;
        // Requests and frames race a little: let stragglers land.
        tokio::time::sleep(Duration::from_millis(50)).await;
        Step { send, sent_at, frames, timed_out, http: self.http(), model: self.model_requests() }
    }

    /// Closes the socket with `code`, then waits up to `max` for the
    /// runtime to connect again; on success the session is the new socket.
    async fn close_and_wait(
        &mut self,
        name: &'static str,
        about: &'static str,
        code: u16,
        reason: &'static str,
        max: Duration,
        immediate: Option<Value>,
    ) -> Reconnection {
        self.session.close(code, reason);
        let closed_at = Instant::now();
        let (old_socket, _) = self.session.collect(|_| false, SEC / 2, SEC / 2).await;
        let next = tokio::time::timeout(max, self.server.sockets.recv()).await.ok().flatten();
        let reconnected = next.is_some();
        let mut first_frames = Vec::new();
        let mut steps = Vec::new();
        // The upgrade's capture is queued before the socket is handed over.
        let requests = self.http();
        if let Some((at, socket)) = next {
            self.session = Session::start(at, socket);
            if immediate.is_some() {
                // Sent the moment the socket is up, as the bridge's re-sync is.
                steps.push(self.window(immediate, 3 * SEC).await);
            } else {
                first_frames = self.window(None, 2 * SEC).await.frames;
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

    /// Sends `send` (if any) and collects for a fixed `window` (for
    /// commands that may get no answer at all).
    async fn window(&mut self, send: Option<Value>, window: Duration) -> Step {
        let mut step = self.step(send, |_| false, window, window).await;
        step.timed_out = false;
        step
    }
}

const SEC: Duration = Duration::from_secs(1);

pub async fn run(launcher: PathBuf) -> Recording {
    let model = ModelServer::start(Reply::new(REPLY)).await;
    let mut server = server::start(API_KEY).await;
    let dir = temp_dir("record");
    let home = dir.join("home");
    let mut opts = RuntimeOptions::new(launcher, format!("http://{}", server.addr), API_KEY.into(), home.clone());
    opts.env_name = "recorder".into();
    opts.model_base_url = Some(model.base_url());
    let started_at = Instant::now();
    let mut runtime = LettaRuntime::start(&opts);

    let (connected_at, socket) = tokio::time::timeout(Duration::from_secs(60), server.sockets.recv())
        .await
        .unwrap_or_else(|_| panic!("the runtime did not connect in 60 s; log:\n{}", runtime.log()))
        .expect("server running");
    let mut before: Vec<Captured> = Vec::new();
    while let Ok(c) = server.requests.try_recv() {
        before.push(c);
    }
    let upgrade_at = before.iter().position(|c| c.status == 101).expect("the upgrade request was captured");
    let upgrade = before.remove(upgrade_at);
    let session = Session::start(connected_at, socket);
    let mut rec = Rec { server, session, model, model_seen: 0 };

    let first = rec.window(None, 3 * SEC).await;
    let mut exchanges = Vec::new();

    // runtime_start: creates the agent and conversation the turns use (§5).
    let start = rec
        .step(
            Some(json!({
                "type": "runtime_start", "request_id": "rec-runtime-start",
                "create_agent": {"body": {"name": "recorded", "model": "lmstudio/fake-model", "system": "You are a test agent."},
                                 "memfs": false, "pin_global": false},
                "create_conversation": {},
            })),
            |f| has(f, "runtime_start_response"),
            SEC,
            60 * SEC,
        )
        .await;
    let response = start.frames.iter().find(|r| r.frame["type"] == "runtime_start_response").map(|r| r.frame.clone());
    let response = response.unwrap_or_else(|| panic!("no runtime_start_response; log:\n{}", runtime.log()));
    let agent_id = response["runtime"]["agent_id"].as_str().expect("runtime_start_response names the agent").to_owned();
    let conversation_id = response["runtime"]["conversation_id"].as_str().expect("and the conversation").to_owned();
    exchanges.push(Exchange {
        name: "runtime_start",
        about: "runtime_start with create_agent (model lmstudio/fake-model) and create_conversation",
        steps: vec![start],
    });
    let scope = json!({"agent_id": agent_id, "conversation_id": conversation_id});

    let sync = rec
        .step(
            Some(json!({"type": "sync", "request_id": "rec-sync", "runtime": scope})),
            |f| has(f, "sync_response"),
            SEC / 2,
            20 * SEC,
        )
        .await;
    exchanges.push(Exchange { name: "sync", about: "sync for the agent's conversation", steps: vec![sync] });

    let input = |id: &str, text: &str| {
        json!({"type": "input", "request_id": id, "runtime": scope,
               "payload": {"kind": "create_message", "messages": [{"role": "user", "content": text}]}})
    };
    // With a client_message_id, as the bridge sends it.
    let mut hi = input("rec-input", "hi");
    hi["payload"]["messages"][0]["client_message_id"] = json!("cm-recorder-1");
    let turn = rec.step(Some(hi), |f| has(f, "turn_finished"), SEC / 2, 60 * SEC).await;
    exchanges.push(Exchange {
        name: "turn",
        about: "input create_message \"hi\" (with a client_message_id): a full turn, the model streams four text pieces",
        steps: vec![turn],
    });

    // Abort while the model is still streaming (a piece every 300 ms).
    let slow: Vec<String> = (0..30).map(|i| format!("slow{i} ")).collect();
    rec.model.set_reply(Reply::new(slow).with_delay(Duration::from_millis(300)));
    let started = rec
        .step(
            Some(input("rec-input-slow", "take your time")),
            |f| f.iter().any(is_assistant_delta),
            Duration::ZERO,
            60 * SEC,
        )
        .await;
    let abort = rec
        .step(
            Some(json!({"type": "abort_message", "request_id": "rec-abort", "runtime": scope})),
            |f| has(f, "abort_message_response") && has(f, "turn_finished"),
            SEC,
            30 * SEC,
        )
        .await;
    rec.model.set_reply(Reply::new(REPLY));
    exchanges.push(Exchange {
        name: "abort",
        about: "abort_message while the model streams slowly (first step: the input, up to the first assistant delta)",
        steps: vec![started, abort],
    });

    let after =
        rec.step(Some(input("rec-input-after-abort", "again")), |f| has(f, "turn_finished"), SEC, 60 * SEC).await;
    exchanges.push(Exchange { name: "turn_after_abort", about: "the next input after an abort", steps: vec![after] });

    let idle = rec
        .step(
            Some(json!({"type": "abort_message", "request_id": "rec-abort-idle", "runtime": scope})),
            |f| has(f, "abort_message_response"),
            SEC,
            20 * SEC,
        )
        .await;
    exchanges.push(Exchange { name: "abort_idle", about: "abort_message with no turn running", steps: vec![idle] });

    let unknown_scope = json!({"agent_id": "agent-recorder-unknown", "conversation_id": "conv-recorder-unknown"});
    let unknown_agent = rec
        .step(
            Some(json!({"type": "input", "request_id": "rec-input-unknown-agent", "runtime": unknown_scope,
                        "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "hi"}]}})),
            |f| has(f, "turn_finished"),
            SEC,
            30 * SEC,
        )
        .await;
    exchanges.push(Exchange {
        name: "unknown_agent",
        about: "input create_message for an agent the runtime does not have",
        steps: vec![unknown_agent],
    });

    let approval = rec
        .window(
            Some(json!({"type": "input", "request_id": "rec-approval-unknown", "runtime": scope,
                        "payload": {"kind": "approval_response", "request_id": "approval-recorder-unknown",
                                    "decision": {"behavior": "allow"}}})),
            3 * SEC,
        )
        .await;
    exchanges.push(Exchange {
        name: "approval_unknown",
        about: "input approval_response (allow) for an approval request that does not exist (no tool call was recorded)",
        steps: vec![approval],
    });

    let invalid = rec
        .window(
            Some(json!({"type": "input", "request_id": "rec-input-invalid", "runtime": scope,
                        "payload": {"kind": "create_message", "image_failure_mode": "bogus",
                                    "messages": [{"role": "user", "content": "hi"}]}})),
            3 * SEC,
        )
        .await;
    exchanges.push(Exchange {
        name: "invalid_input",
        about: "input whose payload breaks the runtime's validation (image_failure_mode \"bogus\")",
        steps: vec![invalid],
    });

    let unknown_command =
        rec.window(Some(json!({"type": "recorder_unknown_command", "request_id": "rec-unknown"})), 3 * SEC).await;
    exchanges.push(Exchange {
        name: "unknown_command",
        about: "a command type the runtime does not know, with a request_id",
        steps: vec![unknown_command],
    });

    let no_scope = rec.window(Some(json!({"type": "sync", "request_id": "rec-sync-no-runtime"})), 3 * SEC).await;
    exchanges.push(Exchange {
        name: "sync_without_runtime",
        about: "sync with no runtime scope (the bridge sends this for POST /sync without a body)",
        steps: vec![no_scope],
    });

    let change = rec
        .step(
            Some(json!({"type": "change_device_state", "request_id": "rec-change", "runtime": scope,
                        "payload": {"mode": "acceptEdits"}})),
            |f| has(f, "update_device_status"),
            SEC,
            5 * SEC,
        )
        .await;
    exchanges.push(Exchange {
        name: "change_device_state",
        about: "change_device_state to permission mode acceptEdits",
        steps: vec![change],
    });

    let ls = rec
        .step(
            Some(json!({"type": "list_in_directory", "request_id": "rec-ls", "path": home.to_string_lossy()})),
            |f| has(f, "list_in_directory_response"),
            SEC / 2,
            10 * SEC,
        )
        .await;
    exchanges.push(Exchange {
        name: "list_in_directory",
        about: "a device command with a reply of its own (list the runtime's HOME)",
        steps: vec![ls],
    });

    let ping = rec.window(Some(json!({"type": "ping"})), 2 * SEC).await;
    exchanges.push(Exchange { name: "server_ping", about: "a JSON ping sent to the runtime", steps: vec![ping] });

    // Ping cadence: the runtime's JSON pings (answered with pongs meanwhile).
    let want: usize = std::env::var("RECORD_PINGS").ok().and_then(|n| n.parse().ok()).unwrap_or(1);
    while rec.session.ping_log.len() < want {
        let deadline = rec.session.connected_at + PING_WAIT + 30 * SEC * rec.session.ping_log.len() as u32;
        if rec.session.wait_for_ping(deadline.saturating_duration_since(Instant::now())).await.is_none() {
            break;
        }
    }

    let pings = rec.session.ping_log.clone();
    let control_pings = rec.session.control_ping_log.clone();

    // Closes from the server side (PROTOCOL.md §1): the codes the bridge uses.
    let sync_again = |id: &str| json!({"type": "sync", "request_id": id, "runtime": scope});
    let mut reconnections = Vec::new();
    let mut r = rec
        .close_and_wait(
            "reconnect_after_1001",
            "the server closes with 1001 (the bridge shutting down): the runtime reconnects; a sync sent the moment \
             the socket is up (as the bridge re-syncs), then another",
            1001,
            "bridge shutting down",
            20 * SEC,
            Some(sync_again("rec-sync-at-once-after-1001")),
        )
        .await;
    if r.reconnected {
        r.steps.push(
            rec.step(Some(sync_again("rec-sync-after-1001")), |f| has(f, "sync_response"), SEC / 2, 10 * SEC).await,
        );
    }
    reconnections.push(r);
    let mut r = rec
        .close_and_wait(
            "reregister_after_1008",
            "the server closes with 1008 (environment not found): the runtime registers again; then a sync",
            1008,
            "environment not found; register again",
            20 * SEC,
            None,
        )
        .await;
    if r.reconnected {
        r.steps.push(
            rec.step(Some(sync_again("rec-sync-after-1008")), |f| has(f, "sync_response"), SEC / 2, 10 * SEC).await,
        );
    }
    reconnections.push(r);

    runtime.stop();
    let stopped_at = Instant::now();
    let (after_stop, _) = rec.session.collect(|_| false, SEC, 2 * SEC).await;

    // A second runtime on the same HOME (same device), replaced: 1000
    // "Replaced by new connection" should stop it for good.
    let mut second = LettaRuntime::start(&opts);
    let socket = tokio::time::timeout(Duration::from_secs(60), rec.server.sockets.recv()).await.ok().flatten();
    if let Some((at, socket)) = socket {
        rec.session = Session::start(at, socket);
        rec.http(); // its registration: as recorded above
        // A fresh process's first command, sent the moment its socket is up.
        let at_once = rec
            .step(
                Some(json!({"type": "input", "request_id": "rec-input-at-once", "runtime": unknown_scope,
                            "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "hi"}]}})),
                |f| has(f, "turn_finished"),
                SEC,
                10 * SEC,
            )
            .await;
        exchanges.push(Exchange {
            name: "first_command_at_once",
            about: "a new runtime process: input (unknown agent) sent the moment its socket is up. The outcome \
                    varies between recordings (a race in the runtime): either the whole error turn, or input_accepted, \
                    update_device_status, update_loop_status WAITING_ON_INPUT and no turn_finished at all",
            steps: vec![at_once],
        });
        let mut r = rec
            .close_and_wait(
                "replaced_1000",
                "the server closes with 1000 \"Replaced by new connection\": the runtime stops reconnecting",
                1000,
                "Replaced by new connection",
                8 * SEC,
                None,
            )
            .await;
        r.alive_after = second.alive();
        reconnections.push(r);
    }
    second.stop();

    Recording {
        started_at,
        connected_at,
        http_before_socket: before,
        upgrade,
        first_frames: first.frames,
        exchanges,
        reconnections,
        pings,
        control_pings,
        after_stop,
        stopped_at,
        home,
        server: rec.server.addr.to_string(),
        model_server: rec.model.addr.to_string(),
        agent_id,
        conversation_id,
        finished_at: Instant::now(),
    }
}

fn is_assistant_delta(r: &Received) -> bool {
    r.frame["type"] == "stream_delta" && r.frame["delta"]["message_type"] == "assistant_message"
}
