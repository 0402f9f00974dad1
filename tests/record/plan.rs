//! What the recorder asks of the runtime, as data: each exchange's name (its
//! fixture file), what it is about, the commands it sends and what ends each
//! one; then the closes from the server side and what follows them.
//! `script` plays these tables in order.

use std::time::Duration;

use letta_bridge_testkit::model_server::Reply;
use serde_json::{Value, json};

pub const SEC: Duration = Duration::from_secs(1);

/// The scripted model reply of a normal turn.
pub const REPLY: [&str; 4] = ["Hello", " from the", " scripted", " model."];

/// What ends a step (the frames go on being collected until then).
#[derive(Clone, Copy, Debug)]
pub enum Until {
    /// Frames of every one of these types came; then `quiet` passed without
    /// frames. Gives up after `max`.
    Got(&'static [&'static str], Duration, Duration),
    /// The first assistant delta came (the turn is streaming); at most `max`.
    Streaming(Duration),
    /// A fixed window, for commands that may get no answer at all.
    Window(Duration),
}

/// One exchange: a fixture file of `steps: [{send, frames, …}]`.
pub struct Planned {
    pub name: &'static str,
    pub about: &'static str,
    /// The model's reply while it runs (the normal [`REPLY`] otherwise).
    pub model: Option<Reply>,
    pub steps: Vec<(Value, Until)>,
}

/// The server closes the socket: what the runtime does next.
pub struct PlannedClose {
    pub name: &'static str,
    pub about: &'static str,
    pub code: u16,
    pub reason: &'static str,
    /// How long to wait for the runtime to connect again.
    pub wait: Duration,
    /// Sent the moment the new socket is up (as the bridge's re-sync is).
    pub at_once: Option<Value>,
    /// Sent on the new socket after that.
    pub then: Option<(Value, Until)>,
}

fn planned(name: &'static str, about: &'static str, steps: Vec<(Value, Until)>) -> Planned {
    Planned { name, about, model: None, steps }
}

/// The first exchange: it creates the agent and conversation the others use.
pub fn runtime_start() -> Planned {
    let start = json!({
        "type": "runtime_start", "request_id": "rec-runtime-start",
        "create_agent": {"body": {"name": "recorded", "model": "lmstudio/fake-model", "system": "You are a test agent."},
                         "memfs": false, "pin_global": false},
        "create_conversation": {},
    });
    let about = "runtime_start with create_agent (model lmstudio/fake-model) and create_conversation";
    planned("runtime_start", about, vec![(start, Until::Got(&["runtime_start_response"], SEC, 60 * SEC))])
}

/// An `input` with one user message for `scope`.
pub fn input(id: &str, scope: &Value, text: &str) -> Value {
    json!({"type": "input", "request_id": id, "runtime": scope,
           "payload": {"kind": "create_message", "messages": [{"role": "user", "content": text}]}})
}

/// A `sync` for `scope`.
pub fn sync(id: &str, scope: &Value) -> Value {
    json!({"type": "sync", "request_id": id, "runtime": scope})
}

/// A conversation the runtime does not have.
pub fn unknown_scope() -> Value {
    json!({"agent_id": "agent-recorder-unknown", "conversation_id": "conv-recorder-unknown"})
}

/// The exchanges on the agent's conversation (`scope`), in order; `home` is
/// the runtime's HOME (a folder to list).
pub fn exchanges(scope: &Value, home: &str) -> Vec<Planned> {
    use Until::{Got, Streaming, Window};
    let abort = json!({"type": "abort_message", "request_id": "rec-abort", "runtime": scope});
    let abort_idle = json!({"type": "abort_message", "request_id": "rec-abort-idle", "runtime": scope});
    // With a client_message_id, as the bridge sends it.
    let mut hi = input("rec-input", scope, "hi");
    hi["payload"]["messages"][0]["client_message_id"] = json!("cm-recorder-1");
    let approval = json!({"type": "input", "request_id": "rec-approval-unknown", "runtime": scope,
                          "payload": {"kind": "approval_response", "request_id": "approval-recorder-unknown",
                                      "decision": {"behavior": "allow"}}});
    let mut invalid = input("rec-input-invalid", scope, "hi");
    invalid["payload"]["image_failure_mode"] = json!("bogus");
    let change = json!({"type": "change_device_state", "request_id": "rec-change", "runtime": scope,
                        "payload": {"mode": "acceptEdits"}});
    let ls = json!({"type": "list_in_directory", "request_id": "rec-ls", "path": home});
    // A piece every 300 ms: the abort comes while the model still streams.
    let slow = Reply::new((0..30).map(|i| format!("slow{i} "))).with_delay(Duration::from_millis(300));
    vec![
        planned(
            "sync",
            "sync for the agent's conversation",
            vec![(sync("rec-sync", scope), Got(&["sync_response"], SEC / 2, 20 * SEC))],
        ),
        planned(
            "turn",
            "input create_message \"hi\" (with a client_message_id): a full turn, the model streams four text pieces",
            vec![(hi, Got(&["turn_finished"], SEC / 2, 60 * SEC))],
        ),
        Planned {
            model: Some(slow),
            ..planned(
                "abort",
                "abort_message while the model streams slowly (first step: the input, up to the first assistant delta)",
                vec![
                    (input("rec-input-slow", scope, "take your time"), Streaming(60 * SEC)),
                    (abort, Got(&["abort_message_response", "turn_finished"], SEC, 30 * SEC)),
                ],
            )
        },
        planned(
            "turn_after_abort",
            "the next input after an abort",
            vec![(input("rec-input-after-abort", scope, "again"), Got(&["turn_finished"], SEC, 60 * SEC))],
        ),
        planned(
            "abort_idle",
            "abort_message with no turn running",
            vec![(abort_idle, Got(&["abort_message_response"], SEC, 20 * SEC))],
        ),
        planned(
            "unknown_agent",
            "input create_message for an agent the runtime does not have",
            vec![(input("rec-input-unknown-agent", &unknown_scope(), "hi"), Got(&["turn_finished"], SEC, 30 * SEC))],
        ),
        planned(
            "approval_unknown",
            "input approval_response (allow) for an approval request that does not exist (no tool call was recorded)",
            vec![(approval, Window(3 * SEC))],
        ),
        planned(
            "invalid_input",
            "input whose payload breaks the runtime's validation (image_failure_mode \"bogus\")",
            vec![(invalid, Window(3 * SEC))],
        ),
        planned(
            "unknown_command",
            "a command type the runtime does not know, with a request_id",
            vec![(json!({"type": "recorder_unknown_command", "request_id": "rec-unknown"}), Window(3 * SEC))],
        ),
        planned(
            "sync_without_runtime",
            "sync with no runtime scope (the bridge sends this for POST /sync without a body)",
            vec![(json!({"type": "sync", "request_id": "rec-sync-no-runtime"}), Window(3 * SEC))],
        ),
        planned(
            "change_device_state",
            "change_device_state to permission mode acceptEdits",
            vec![(change, Got(&["update_device_status"], SEC, 5 * SEC))],
        ),
        planned(
            "list_in_directory",
            "a device command with a reply of its own (list the runtime's HOME)",
            vec![(ls, Got(&["list_in_directory_response"], SEC / 2, 10 * SEC))],
        ),
        planned("server_ping", "a JSON ping sent to the runtime", vec![(json!({"type": "ping"}), Window(2 * SEC))]),
    ]
    .into_iter()
    .chain(approvals(scope))
    .chain(clients(scope))
    .collect()
}

/// What Letta's own clients send besides the conversation commands
/// (`AppServerClient`, the Agent SDK; CLIENT-API.md): the App Server's
/// information, the `runtime_start` that attaches a client to an existing
/// agent and conversation, the `sync` that follows it, and a relay `ack`
/// that reached the runtime (the bridge never forwards one: this shows why).
pub fn clients(scope: &Value) -> Vec<Planned> {
    use Until::{Got, Window};
    let info = json!({"type": "app_server_info", "request_id": "rec-app-server-info"});
    let resume = json!({
        "type": "runtime_start", "request_id": "rec-runtime-start-resume",
        "agent_id": scope["agent_id"], "conversation_id": scope["conversation_id"],
        "recover_approvals": false, "force_device_status": true,
        "client_info": {"name": "letta-bridge-recorder", "title": "letta-bridge recorder"},
    });
    let recover = json!({"type": "sync", "request_id": "rec-sync-recover", "runtime": scope,
                         "recover_approvals": true, "force_device_status": true});
    vec![
        planned(
            "app_server_info",
            "app_server_info (AppServerClient.info()): the runtime describes itself as an App Server",
            vec![(info, Got(&["app_server_info_response"], SEC / 2, 10 * SEC))],
        ),
        planned(
            "runtime_start_resume",
            "runtime_start naming the existing agent and conversation (no create_agent): how a client attaches to \
             a conversation (AppServerClient.runtimeStart, the Agent SDK's resumeSession)",
            vec![(resume, Got(&["runtime_start_response"], SEC, 20 * SEC))],
        ),
        planned(
            "sync_recover",
            "sync with recover_approvals and force_device_status, as the Agent SDK sends after runtime_start",
            vec![(recover, Got(&["sync_response"], SEC / 2, 20 * SEC))],
        ),
        planned(
            "client_ack",
            "a relay ack ({type: ack, seq}) sent to the runtime: no answer (the runtime logs it as unparseable)",
            vec![(json!({"type": "ack", "seq": 1}), Window(2 * SEC))],
        ),
    ]
}

/// The tool call ids the scripted model uses in the approval exchanges: the
/// runtime's approval request for a call is `perm-<tool_call_id>`.
pub const ALLOWED_CALL: &str = "call-recorder-allow";
pub const DENIED_CALL: &str = "call-recorder-deny";

/// The model's reply in an approval exchange: a `Bash` call that writes a
/// file (so that permission mode `standard` asks), then, once the tool's
/// result comes back, `text`.
pub fn bash_call(id: &str, file: &str, text: &[&str]) -> Reply {
    let arguments = json!({"command": format!("touch {file}"), "description": format!("Create {file}")});
    Reply::tool_call(id, "Bash", arguments).then(Reply::new(text.iter().copied()))
}

/// An `input` answering approval request `approval` with `decision`.
pub fn approval_response(id: &str, scope: &Value, approval: &str, decision: Value) -> Value {
    json!({"type": "input", "request_id": id, "runtime": scope,
           "payload": {"kind": "approval_response", "request_id": approval, "decision": decision}})
}

/// Tool approvals (PROTOCOL.md §8): under permission mode `standard` the
/// runtime asks before running a writing `Bash` call; allowed, denied, and
/// answered twice (stale).
pub fn approvals(scope: &Value) -> Vec<Planned> {
    use Until::{Got, Window};
    let standard = json!({"type": "change_device_state", "request_id": "rec-change-standard", "runtime": scope,
                          "payload": {"mode": "standard"}});
    let allowed = format!("perm-{ALLOWED_CALL}");
    let denied = format!("perm-{DENIED_CALL}");
    let allow = approval_response("rec-approval-allow", scope, &allowed, json!({"behavior": "allow"}));
    let deny = approval_response(
        "rec-approval-deny",
        scope,
        &denied,
        json!({"behavior": "deny", "message": "Not in this test, thanks."}),
    );
    let again = approval_response("rec-approval-stale", scope, &allowed, json!({"behavior": "allow"}));
    // Up to the approval request and the status updates that follow it.
    let asks = Got(&["control_request"], SEC, 60 * SEC);
    vec![
        Planned {
            model: Some(bash_call(ALLOWED_CALL, "approval-allowed.txt", &["Created", " the file."])),
            ..planned(
                "approval_allow",
                "permission mode standard (change_device_state); input asking for a file: the model calls Bash \
                 `touch approval-allowed.txt`, the runtime asks for approval (control_request can_use_tool); the \
                 approval_response allows it: the tool runs, its result goes to the model, which answers with text",
                vec![
                    (standard, Got(&["update_device_status"], SEC, 5 * SEC)),
                    (input("rec-input-approval-allow", scope, "please create the file"), asks),
                    (allow, Got(&["turn_finished"], SEC, 60 * SEC)),
                ],
            )
        },
        Planned {
            model: Some(bash_call(DENIED_CALL, "approval-denied.txt", &["Understood,", " I will not."])),
            ..planned(
                "approval_deny",
                "still in mode standard: the model calls Bash `touch approval-denied.txt`, the runtime asks; the \
                 approval_response denies it with a message: the tool does not run, the denial goes to the model",
                vec![
                    (input("rec-input-approval-deny", scope, "please create another file"), asks),
                    (deny, Got(&["turn_finished"], SEC, 60 * SEC)),
                ],
            )
        },
        planned(
            "approval_stale",
            "the approval_response of approval_allow sent again, after its turn ended (a stale approval request)",
            vec![(again, Window(3 * SEC))],
        ),
    ]
}

/// The closes from the server side on the first runtime (PROTOCOL.md §1):
/// the codes the bridge uses.
pub fn closes(scope: &Value) -> Vec<PlannedClose> {
    let then = |id| Some((sync(id, scope), Until::Got(&["sync_response"], SEC / 2, 10 * SEC)));
    vec![
        PlannedClose {
            name: "reconnect_after_1001",
            about: "the server closes with 1001 (the bridge shutting down): the runtime reconnects; a sync sent the \
                    moment the socket is up (as the bridge re-syncs), then another",
            code: 1001,
            reason: "bridge shutting down",
            wait: 20 * SEC,
            at_once: Some(sync("rec-sync-at-once-after-1001", scope)),
            then: then("rec-sync-after-1001"),
        },
        PlannedClose {
            name: "reregister_after_1008",
            about: "the server closes with 1008 (environment not found): the runtime registers again; then a sync",
            code: 1008,
            reason: "environment not found; register again",
            wait: 20 * SEC,
            at_once: None,
            then: then("rec-sync-after-1008"),
        },
    ]
}

/// A second runtime process on the same HOME (the same device): its first
/// command, sent the moment its socket is up, then the close that replaces it.
pub fn second_runtime() -> (Planned, PlannedClose) {
    let at_once = planned(
        "first_command_at_once",
        "a new runtime process: input (unknown agent) sent the moment its socket is up. The outcome varies between \
         recordings (a race in the runtime): either the whole error turn, or input_accepted, update_device_status, \
         update_loop_status WAITING_ON_INPUT and no turn_finished at all",
        vec![(input("rec-input-at-once", &unknown_scope(), "hi"), Until::Got(&["turn_finished"], SEC, 10 * SEC))],
    );
    let replaced = PlannedClose {
        name: "replaced_1000",
        about: "the server closes with 1000 \"Replaced by new connection\": the runtime stops reconnecting",
        code: 1000,
        reason: "Replaced by new connection",
        wait: 8 * SEC,
        at_once: None,
        then: None,
    };
    (at_once, replaced)
}
