//! What the recorder does with the runtime, in order: start it, capture
//! registration and the first frames, then the exchanges of the plan
//! (`plan`), the ping cadence, the closes, the disconnect, and a second
//! runtime that gets replaced. Everything is kept raw here; `write`
//! normalises it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use letta_bridge_testkit::letta::{LettaRuntime, RuntimeOptions, temp_dir};
use letta_bridge_testkit::model_server::{ModelServer, Reply};
use serde_json::json;

use crate::plan::{self, REPLY, SEC, Until};
use crate::recorder::Recorder;
use crate::recording::Recording;
use crate::server::{self, Captured};
use crate::session::Session;

/// The key the runtime is given (never written to a fixture).
pub const API_KEY: &str = "recorder-runtime-key-0000000001";

/// How long to wait for the runtime's first JSON ping (it sends one every
/// 30 s); `RECORD_PINGS=n` waits for `n` of them (default 1).
const PING_WAIT: Duration = Duration::from_secs(45);

/// How long a runtime may take to connect after it starts.
const CONNECT_WAIT: Duration = Duration::from_secs(60);

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

    let (connected_at, socket) = tokio::time::timeout(CONNECT_WAIT, server.sockets.recv())
        .await
        .unwrap_or_else(|_| panic!("the runtime did not connect in 60 s; log:\n{}", runtime.log()))
        .expect("server running");
    let mut rec = Recorder::new(server, Session::start(connected_at, socket), model);
    let mut before: Vec<Captured> = rec.http();
    let upgrade_at = before.iter().position(|c| c.status == 101).expect("the upgrade request was captured");
    let upgrade = before.remove(upgrade_at);
    let first = rec.step(None, Until::Window(3 * SEC)).await;

    // runtime_start creates the agent and conversation the other exchanges use (§5).
    let start = rec.exchange(plan::runtime_start()).await;
    let response = start.steps[0].frames.iter().find(|r| r.frame["type"] == "runtime_start_response");
    let response = response.unwrap_or_else(|| panic!("no runtime_start_response; log:\n{}", runtime.log()));
    let agent_id = response.frame["runtime"]["agent_id"].as_str().expect("runtime_start_response names the agent");
    let conversation_id = response.frame["runtime"]["conversation_id"].as_str().expect("and the conversation");
    let (agent_id, conversation_id) = (agent_id.to_owned(), conversation_id.to_owned());
    let scope = json!({"agent_id": agent_id, "conversation_id": conversation_id});
    let mut exchanges = vec![start];
    for planned in plan::exchanges(&scope, &home.to_string_lossy()) {
        exchanges.push(rec.exchange(planned).await);
    }

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

    let mut reconnections = Vec::new();
    for planned in plan::closes(&scope) {
        reconnections.push(rec.close(planned).await);
    }

    runtime.stop();
    let stopped_at = Instant::now();
    let (after_stop, _) = rec.session.collect(|_| false, SEC, 2 * SEC).await;

    // A second runtime on the same HOME (same device), replaced: 1000
    // "Replaced by new connection" should stop it for good.
    let mut second = LettaRuntime::start(&opts);
    let socket = tokio::time::timeout(CONNECT_WAIT, rec.server.sockets.recv()).await.ok().flatten();
    if let Some((at, socket)) = socket {
        rec.session = Session::start(at, socket);
        rec.http(); // its registration: as recorded above
        let (at_once, replaced) = plan::second_runtime();
        exchanges.push(rec.exchange(at_once).await);
        let mut r = rec.close(replaced).await;
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
