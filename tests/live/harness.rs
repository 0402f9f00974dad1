//! One live setup per test: a scripted model server, the bridge binary, and
//! the real runtime pointed at both, with a subscriber on `GET /events` that
//! saw the runtime come online.

use std::path::PathBuf;
use std::time::Duration;

use letta_bridge_testkit::bridge::{ADMIN_TOKEN, BridgeProcess, RUNTIME_TOKEN};
use letta_bridge_testkit::letta::{self, LettaRuntime, RuntimeOptions};
use letta_bridge_testkit::model_server::{ModelServer, Reply};
use letta_bridge_testkit::{Sse, SseEvent};
use serde_json::{Value, json};

/// How long any single expectation on the live runtime may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// The reply the model server streams unless a test scripts another.
pub fn greeting() -> Reply {
    Reply::new(["Hello", " from", " the", " scripted", " model", "."])
}

/// Fields drop in order: the runtime stops before the bridge, the temp
/// folder goes last (kept when the test failed).
pub struct Live {
    pub runtime: LettaRuntime,
    /// A subscriber opened before the runtime started.
    pub events: Sse,
    pub bridge: BridgeProcess,
    pub model: ModelServer,
    pub opts: RuntimeOptions,
    /// The runtime's id at the bridge (its `deviceId`).
    pub runtime_id: String,
    _dir: TempDir,
}

impl Live {
    /// Starts everything, or returns `None` (after printing `SKIPPED`) when
    /// the runtime is not installed and `CI` is unset.
    pub async fn start(test: &str) -> Option<Self> {
        Self::start_with(test, |_| {}).await
    }

    pub async fn start_with(test: &str, tweak: impl FnOnce(&mut RuntimeOptions)) -> Option<Self> {
        let live = Self::launch(test, tweak, None, &[]).await?.0;
        live.runtime_ready().await;
        Some(live)
    }

    /// Starts everything with end users' tokens on: the bridge verifies
    /// them with the HS256 secret `secret` (`LETTA_BRIDGE_USER_TOKEN_SECRET`).
    pub async fn start_with_users(test: &str, secret: &str) -> Option<Self> {
        let live = Self::launch(test, |_| {}, None, &[("LETTA_BRIDGE_USER_TOKEN_SECRET", secret)]).await?.0;
        live.runtime_ready().await;
        Some(live)
    }

    /// Starts everything and sends `input` to `path` again and again while
    /// the bridge answers `503` (no runtime online yet), so that the first
    /// accepted one reaches the bridge the moment the runtime's socket is
    /// up; returns the setup and that first answer that is not a 503.
    pub async fn start_racing(test: &str, path: &str, input: &Value) -> Option<(Self, reqwest::Response)> {
        let (live, first) = Self::launch(test, |_| {}, Some((path, input)), &[]).await?;
        Some((live, first.expect("an answer")))
    }

    async fn launch(
        test: &str,
        tweak: impl FnOnce(&mut RuntimeOptions),
        race: Option<(&str, &Value)>,
        bridge_env: &[(&str, &str)],
    ) -> Option<(Self, Option<reqwest::Response>)> {
        let launcher = letta::launcher_or_skip(test)?;
        assert!(letta::git_available(), "the runtime needs git on PATH");
        let dir = TempDir(letta::temp_dir(test));
        let model = ModelServer::start(greeting()).await;
        let bridge = BridgeProcess::start_with_env(
            env!("CARGO_BIN_EXE_letta-bridge"),
            dir.0.join("bridge.log"),
            &[],
            bridge_env,
        );
        let mut events = bridge.events("").await.waiting(WAIT);
        let mut opts = RuntimeOptions::new(launcher, bridge.base_url(), RUNTIME_TOKEN.into(), dir.0.join("home"));
        opts.model_base_url = Some(model.base_url());
        tweak(&mut opts);
        let runtime = LettaRuntime::start(&opts);
        let mut first = None;
        if let Some((path, input)) = race {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                let res = bridge.post(path, input).await;
                if res.status() != 503 {
                    first = Some(res);
                    break;
                }
                assert!(tokio::time::Instant::now() < deadline, "the runtime never came online");
                // 503 until the runtime connects; retry at once, bounded by the deadline.
                tokio::task::yield_now().await;
            }
        }
        let online = events.next_of("runtime_online").await;
        let runtime_id = online.data["runtime_id"].as_str().expect("runtime_online names the runtime").to_owned();
        Some((Self { runtime, events, bridge, model, opts, runtime_id, _dir: dir }, first))
    }

    /// Waits until the runtime answers a `sync`. The bridge reports it online
    /// at the upgrade, but the runtime registers its side of the connection a
    /// few milliseconds later, asynchronously: a command that arrives before
    /// that is handled, yet the events of its scope go nowhere (seen: an
    /// input for an unknown agent got `input_accepted` but never its
    /// `turn_finished`). The bridge now holds commands until the runtime's
    /// first pong (`start_racing` tests that); tests other than that one
    /// still start once a sync round trip worked, so they test one thing.
    pub async fn runtime_ready(&self) {
        self.runtime_ready_at("").await;
    }

    /// [`Live::runtime_ready`] for the runtime `runtime_id` (`""`: the only one online).
    async fn runtime_ready_at(&self, runtime_id: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let probe = json!({"runtime": {"agent_id": "agent-readiness-probe", "conversation_id": "default"}});
        let path = format!("/sync?runtime={runtime_id}&wait=true&timeout_ms=1000");
        loop {
            let res = self.bridge.post(&path, &probe).await;
            if res.status() == 200 {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "the runtime never answered a sync: {}", res.status());
        }
    }

    /// Starts the runtime again with the same options (same `HOME`, so the
    /// same `deviceId`).
    pub fn restart_runtime(&mut self) {
        self.runtime.stop();
        self.runtime = LettaRuntime::start(&self.opts);
    }

    /// Starts a second runtime (its own `HOME`, so its own `deviceId`;
    /// `--env-name` `env_name`) against the same bridge and model server,
    /// and waits until it answers a `sync`. With two online, commands name
    /// their runtime (`create_agent_at`).
    pub async fn start_another_runtime(&mut self, env_name: &str) -> OtherRuntime {
        let mut opts = self.opts.clone();
        opts.env_name = env_name.to_owned();
        opts.home = self._dir.0.join(env_name);
        let runtime = LettaRuntime::start(&opts);
        let first = self.runtime_id.clone();
        let online = self
            .events
            .next_matching("the second runtime online", |e| {
                e.event == "runtime_online" && e.data["runtime_id"].as_str().is_some_and(|id| id != first)
            })
            .await;
        let id = online.data["runtime_id"].as_str().unwrap().to_owned();
        self.runtime_ready_at(&id).await;
        OtherRuntime { runtime, id }
    }

    /// Creates an agent on the model server's `fake-model` and a conversation
    /// with `runtime_start` (admin token, awaited); returns the scope
    /// `{agent_id, conversation_id}` the runtime assigned.
    pub async fn create_agent(&self) -> Value {
        self.create_agent_on("lmstudio/fake-model").await
    }

    /// Like [`Live::create_agent`], on another model handle.
    pub async fn create_agent_on(&self, model: &str) -> Value {
        self.create_agent_at("", model).await
    }

    /// Like [`Live::create_agent_on`], on the runtime `runtime_id` (`""`: the only one online).
    pub async fn create_agent_at(&self, runtime_id: &str, model: &str) -> Value {
        let res = self
            .bridge
            .post_as(
                ADMIN_TOKEN,
                &format!("/commands?runtime={runtime_id}&wait=true&timeout_ms=30000"),
                &json!({
                    "type": "runtime_start",
                    "create_agent": {
                        "body": {"name": "probe", "model": model, "system": "You are a test agent."},
                        "memfs": false,
                        "pin_global": false
                    },
                    "create_conversation": {}
                }),
            )
            .await;
        assert_eq!(res.status(), 200, "runtime_start answered");
        let reply: Value = res.json().await.unwrap();
        assert_eq!(reply["type"], "runtime_start_response", "{reply}");
        assert_eq!(reply["success"], true, "{reply}");
        let scope = reply["runtime"].clone();
        assert!(scope["agent_id"].as_str().is_some_and(|a| a.starts_with("agent-")), "{reply}");
        assert!(scope["conversation_id"].is_string(), "{reply}");
        scope
    }
}

impl Live {
    /// Sets `scope`'s permission mode with `change_device_state` (with the
    /// admin token: a mode is the admin's; the runtime answers only with
    /// `update_device_status`) and waits until the runtime reports it.
    pub async fn set_permission_mode(&mut self, scope: &Value, mode: &str) {
        let command = json!({"type": "change_device_state", "runtime": scope, "payload": {"mode": mode}});
        assert_eq!(self.bridge.post_as(ADMIN_TOKEN, "/commands", &command).await.status(), 202);
        self.events
            .next_matching("update_device_status with the new permission mode", |e| {
                e.event == "update_device_status"
                    && e.data["runtime"] == *scope
                    && e.data["device_status"]["current_permission_mode"] == mode
            })
            .await;
    }
}

/// A runtime started after the first one ([`Live::start_another_runtime`]);
/// declare it after the [`Live`] it belongs to, so that it stops first.
pub struct OtherRuntime {
    pub runtime: LettaRuntime,
    /// Its id at the bridge (its `deviceId`).
    pub id: String,
}

/// A model reply that calls `Bash` with `command` (id `call_id`), then
/// answers `text` once the tool's result (or its denial) comes back.
pub fn bash_call(call_id: &str, command: &str, text: &[&str]) -> Reply {
    let arguments = json!({"command": command, "description": "A command the test asks for"});
    Reply::tool_call(call_id, "Bash", arguments).then(Reply::new(text.iter().copied()))
}

/// An `input` body with one user message for `scope`.
pub fn message(scope: &Value, text: &str) -> Value {
    json!({
        "runtime": scope,
        "payload": {"kind": "create_message", "messages": [{"role": "user", "content": text}]}
    })
}

/// The assistant text carried by the `stream_delta` events of one turn, in order.
pub fn assistant_text(events: &[SseEvent], run_id: Option<&str>) -> String {
    events
        .iter()
        .filter(|e| e.event == "stream_delta" && e.data["delta"]["message_type"] == "assistant_message")
        .filter(|e| run_id.is_none_or(|r| e.data["delta"]["run_id"] == r))
        .flat_map(|e| match &e.data["delta"]["content"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str().map(str::to_owned)).collect(),
            _ => vec![],
        })
        .collect()
}

/// A temp folder removed on drop unless the test failed or `LETTA_LIVE_KEEP`
/// is set (then the runtime's and the bridge's logs stay there).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("LETTA_LIVE_KEEP").is_some() {
            eprintln!("--- kept for diagnosis: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
