//! How the fake runtime answers a command: with the frames the real runtime
//! answered it with in the recording. One behaviour, shared by the library's
//! [`super::FakeRuntime`] and the `fake-runtime` binary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::Value;

use crate::fixtures::is_runtime_scope;
use crate::replay::replay_where;

/// The frames the real runtime answered this command with, from the
/// recording (tests/fixtures): the exchange whose command matches, replayed
/// with this command's values. What the recording shows:
/// - `sync`, `input`, `abort_message`, `change_device_state` without a valid
///   runtime scope are dropped unanswered (`sync_without_runtime`);
/// - `sync` replays the state events, then `sync_response` (`sync`);
/// - `input` create_message: `input_accepted` (`accepted: true`, from
///   `turn`); with `full_turns`, the whole recorded turn (`turn`: loop
///   status, the assistant deltas, `turn_finished`), as the real runtime
///   runs a turn to its end after a message. With `ask_approval`, the
///   recorded turn that asks for a tool approval instead (`approval_allow`,
///   step 1: up to its `control_request` `perm-call-recorder-allow`, whole
///   with or without `full_turns`: the runtime sends nothing more until
///   it is answered);
/// - `input` approval_response: `input_accepted` (`accepted: true`, no
///   disposition, from `approval_allow`); with `full_turns`, the recorded
///   rest of the turn, allowed (`approval_allow`: the tool runs) or denied
///   (`approval_deny`, also for an answer with an `error`). Every approval
///   is answered as one that is pending, so that approval flows can be
///   tested without asking first: the refusal of one that is not
///   (`approval_unknown`, `approval_stale`) is played with `FakeRuntime::play`;
/// - `abort_message` with no turn running: `abort_message_response`
///   `aborted: false` (`abort_idle`);
/// - `runtime_start`, `change_device_state`, `list_in_directory`: recorded;
///   a `runtime_start` that names an agent and a conversation and creates
///   nothing (how Letta's clients attach to one): `runtime_start_resume`;
/// - `app_server_info` (Letta's `AppServerClient.info()`): recorded
///   (`app_server_info`); a `sync` with `recover_approvals`, as the Agent
///   SDK sends it: `sync_recover`;
/// - anything else, JSON pings and relay `ack`s included, gets no answer at
///   all (`unknown_command`, `server_ping`, `client_ack`).
pub fn replies_to(frame: &Value, settings: Settings, next_seq: &dyn Fn() -> u64) -> Vec<Value> {
    let kind = frame["type"].as_str().unwrap_or_default();
    let scoped = is_runtime_scope(&frame["runtime"]);
    let approval = frame["payload"]["kind"] == "approval_response";
    let denied = frame["payload"]["decision"]["behavior"] == "deny" || frame["payload"].get("error").is_some();
    let (exchange, step) = match kind {
        "sync" | "input" | "abort_message" | "change_device_state" if !scoped => return vec![],
        "input" if approval && denied => ("approval_deny", 1),
        "input" if approval => ("approval_allow", 2),
        "input" if settings.ask_approval => ("approval_allow", 1),
        "input" => ("turn", 0),
        "sync" if frame["recover_approvals"] == true => ("sync_recover", 0),
        "sync" => ("sync", 0),
        "abort_message" => ("abort_idle", 0),
        "runtime_start" if resumes(frame) => ("runtime_start_resume", 0),
        "runtime_start" => ("runtime_start", 0),
        "app_server_info" => ("app_server_info", 0),
        "change_device_state" => ("change_device_state", 0),
        "list_in_directory" => ("list_in_directory", 0),
        _ => return vec![],
    };
    let whole = kind != "input" || settings.full_turns || (settings.ask_approval && !approval);
    replay_where(exchange, step, frame, next_seq, |f| whole || f["type"] == "input_accepted")
}

/// True for a `runtime_start` that attaches to an existing agent and
/// conversation: both named, nothing created.
fn resumes(frame: &Value) -> bool {
    let named = |k: &str| frame[k].as_str().is_some_and(|s| !s.is_empty());
    named("agent_id")
        && named("conversation_id")
        && frame["create_agent"].is_null()
        && frame["create_conversation"].is_null()
}

/// How the fake runtime answers `input`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Settings {
    /// Play the whole recorded turn, not only `input_accepted`.
    pub full_turns: bool,
    /// Ask for a tool approval in every message's turn.
    pub ask_approval: bool,
}

/// The answering settings, shared between a runtime's handle and the task
/// that owns its socket (atomics: flipped by the handle, read per frame).
#[derive(Clone, Debug)]
pub struct Replies {
    auto: Arc<AtomicBool>,
    full_turns: Arc<AtomicBool>,
    ask_approval: Arc<AtomicBool>,
    /// The runtime's `event_seq`, shared by emitted events and replayed replies.
    seq: Arc<AtomicU64>,
}

impl Default for Replies {
    fn default() -> Self {
        Self {
            auto: Arc::new(AtomicBool::new(true)),
            full_turns: Arc::new(AtomicBool::new(false)),
            ask_approval: Arc::new(AtomicBool::new(false)),
            seq: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Replies {
    /// The next `event_seq`.
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Answer commands (the default) or only receive them.
    pub fn set_auto(&self, on: bool) {
        self.auto.store(on, Ordering::Relaxed);
    }

    /// Answer `input` with the whole recorded turn.
    pub fn set_full_turns(&self, on: bool) {
        self.full_turns.store(on, Ordering::Relaxed);
    }

    /// Answer messages with the recorded turn that asks for a tool approval.
    pub fn set_ask_approval(&self, on: bool) {
        self.ask_approval.store(on, Ordering::Relaxed);
    }

    /// The answer to `frame` under the current settings.
    pub fn to(&self, frame: &Value) -> Vec<Value> {
        if !self.auto.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let settings = Settings {
            full_turns: self.full_turns.load(Ordering::Relaxed),
            ask_approval: self.ask_approval.load(Ordering::Relaxed),
        };
        replies_to(frame, settings, &|| self.next_seq())
    }
}
