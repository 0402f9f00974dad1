//! Tool approvals on the real runtime (PROTOCOL.md §8): under permission
//! mode `standard` a writing `Bash` call that the scripted model makes waits
//! for `POST /approval`.

use letta_bridge_testkit::SseEvent;
use serde_json::{Value, json};

use crate::harness::{Live, assistant_text, bash_call, message};

/// A command that writes a file (so `standard` asks) and prints a marker.
const COMMAND: &str = "touch approved.txt && echo created-by-approval";

/// True for an event of `kind` scoped to `scope`'s conversation.
fn in_scope(e: &SseEvent, kind: &str, scope: &Value) -> bool {
    e.event == kind && e.data["runtime"] == *scope
}

/// A runtime with an agent in permission mode `standard` whose model calls
/// `Bash` with [`COMMAND`] as `call_id`, then says `text`.
async fn asking(test: &str, call_id: &str, text: &[&str]) -> Option<(Live, Value)> {
    let mut live = Live::start(test).await?;
    let scope = live.create_agent().await;
    live.set_permission_mode(&scope, "standard").await;
    live.model.set_reply(bash_call(call_id, COMMAND, text));
    Some((live, scope))
}

fn answer(scope: &Value, request_id: &str, decision: Value) -> Value {
    json!({"runtime": scope, "payload": {"request_id": request_id, "decision": decision}})
}

#[tokio::test]
async fn approving_a_tool_call_runs_it_and_its_output_reaches_the_model() {
    let Some((mut live, scope)) = asking("approval_allow", "call_live_allow", &["Created", " it."]).await else {
        return;
    };
    assert_eq!(live.bridge.post("/input", &message(&scope, "please create the file")).await.status(), 202);

    // The approval request reaches GET /events: the tool call, then the question.
    let call = live
        .events
        .next_matching("the approval_request_message delta", |e| {
            in_scope(e, "stream_delta", &scope) && e.data["delta"]["message_type"] == "approval_request_message"
        })
        .await;
    let tool_call = &call.data["delta"]["tool_call"];
    assert_eq!(
        (tool_call["name"].as_str(), tool_call["tool_call_id"].as_str()),
        (Some("Bash"), Some("call_live_allow"))
    );
    let arguments: Value = serde_json::from_str(tool_call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments["command"], COMMAND, "{}", call.data);
    let asked = live.events.next_matching("the control_request", |e| in_scope(e, "control_request", &scope)).await;
    assert_eq!(asked.data["request_id"], "perm-call_live_allow", "{}", asked.data);
    let request = &asked.data["request"];
    assert_eq!((request["subtype"].as_str(), request["tool_name"].as_str()), (Some("can_use_tool"), Some("Bash")));
    assert_eq!(request["input"], arguments, "{}", asked.data);
    assert!(!live.opts.home.join("approved.txt").exists(), "nothing ran before the approval");

    let res = live
        .bridge
        .post(
            "/approval?wait=true&timeout_ms=15000",
            &answer(&scope, "perm-call_live_allow", json!({"behavior": "allow"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let reply: Value = res.json().await.unwrap();
    assert_eq!((reply["type"].as_str(), reply["accepted"].as_bool()), (Some("input_accepted"), Some(true)), "{reply}");

    let from = live.events.seen.len();
    let finished = live.events.next_matching("turn_finished", |e| in_scope(e, "turn_finished", &scope)).await;
    assert_eq!(finished.data["stop_reason"], "end_turn", "{}", finished.data);
    let rest = &live.events.seen[from..];
    assert_eq!(assistant_text(rest, finished.data["run_id"].as_str()), "Created it.");
    let returned = rest
        .iter()
        .find(|e| e.data["delta"]["message_type"] == "tool_return_message")
        .unwrap_or_else(|| panic!("a tool_return_message: {}", live.events.summary()));
    assert_eq!(returned.data["delta"]["status"], "success", "{}", returned.data);
    assert!(live.opts.home.join("approved.txt").exists(), "the tool ran in the runtime's working directory");
    let told = live.model.tool_result("call_live_allow").expect("the follow-up request carries the tool's result");
    assert!(told.contains("created-by-approval"), "the command's output reached the model: {told:?}");
}

#[tokio::test]
async fn denying_a_tool_call_ends_the_turn_with_the_denial_visible_to_clients_and_the_model() {
    let Some((mut live, scope)) = asking("approval_deny", "call_live_deny", &["Fine,", " I will not."]).await else {
        return;
    };
    assert_eq!(live.bridge.post("/input", &message(&scope, "please create the file")).await.status(), 202);
    let asked = live.events.next_matching("the control_request", |e| in_scope(e, "control_request", &scope)).await;
    let request_id = asked.data["request_id"].as_str().unwrap().to_owned();

    let deny = json!({"behavior": "deny", "message": "No files today."});
    let res = live.bridge.post("/approval?wait=completion&timeout_ms=30000", &answer(&scope, &request_id, deny)).await;
    assert_eq!(res.status(), 200);
    let turn: Value = res.json().await.unwrap();
    assert_eq!(turn["stop_reason"], "end_turn", "{turn}");
    assert_eq!(turn["text"], "Fine, I will not.", "{turn}");

    let denial = live
        .events
        .next_matching("the denial as a tool return", |e| {
            in_scope(e, "stream_delta", &scope) && e.data["delta"]["message_type"] == "tool_return_message"
        })
        .await;
    assert_eq!(denial.data["delta"]["status"], "error", "{}", denial.data);
    assert_eq!(denial.data["delta"]["tool_return"], "No files today.", "{}", denial.data);
    assert!(turn["event_ids"].as_array().unwrap().contains(&json!(denial.id)), "among the turn's events: {turn}");
    assert_eq!(live.model.tool_result("call_live_deny").as_deref(), Some("No files today."), "the model was told");
    assert!(!live.opts.home.join("approved.txt").exists(), "the denied command did not run");
}

#[tokio::test]
async fn input_wait_completion_stops_at_the_approval_request_and_the_approval_follows_the_rest() {
    let Some((mut live, scope)) = asking("approval_wait_completion", "call_live_wait", &["Done."]).await else {
        return;
    };
    let res = live.bridge.post("/input?wait=completion&timeout_ms=30000", &message(&scope, "please")).await;
    assert_eq!(res.status(), 200, "answered at the approval request, not at the timeout");
    let paused: Value = res.json().await.unwrap();
    assert_eq!(paused["stop_reason"], "requires_approval", "{paused}");
    assert!(paused["turn_finished"].is_null(), "{paused}");
    let approval = &paused["approval"];
    assert_eq!(approval["request_id"], "perm-call_live_wait", "{paused}");
    assert_eq!(
        (approval["tool_name"].as_str(), approval["tool_call_id"].as_str()),
        (Some("Bash"), Some("call_live_wait"))
    );
    assert_eq!(approval["input"]["command"], COMMAND, "{paused}");
    let asked = live.events.next_matching("the control_request", |e| in_scope(e, "control_request", &scope)).await;
    assert_eq!(paused["event_ids"].as_array().unwrap().last(), Some(&json!(asked.id)), "it ends at the question");

    let allow = answer(&scope, "perm-call_live_wait", json!({"behavior": "allow"}));
    let res = live.bridge.post("/approval?wait=completion&timeout_ms=30000", &allow).await;
    assert_eq!(res.status(), 200);
    let turn: Value = res.json().await.unwrap();
    assert_eq!((turn["stop_reason"].as_str(), turn["text"].as_str()), (Some("end_turn"), Some("Done.")), "{turn}");
    assert_eq!(turn["turn_finished"]["type"], "turn_finished", "{turn}");
    assert!(live.model.tool_result("call_live_wait").is_some_and(|t| t.contains("created-by-approval")));

    // The same answer again: the runtime no longer waits for it.
    let res = live.bridge.post("/approval?wait=true&timeout_ms=15000", &allow).await;
    assert_eq!(res.status(), 200);
    let reply: Value = res.json().await.unwrap();
    assert_eq!(reply["accepted"], false, "{reply}");
    assert_eq!(reply["error"], "Approval request is no longer pending", "{reply}");
    let res = live.bridge.post("/approval?wait=completion&timeout_ms=15000", &allow).await;
    assert_eq!(res.status(), 409);
    let problem: Value = res.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("perm-call_live_wait") && detail.contains("no longer pending"), "{problem}");
}

#[tokio::test]
async fn an_approval_for_a_request_that_was_never_made_gets_a_clear_answer() {
    let Some(live) = Live::start("approval_unknown").await else { return };
    let scope = live.create_agent().await;
    let unknown = answer(&scope, "perm-call_never_made", json!({"behavior": "allow"}));

    let started = std::time::Instant::now();
    let res = live.bridge.post("/approval?wait=true&timeout_ms=15000", &unknown).await;
    assert_eq!(res.status(), 200);
    let reply: Value = res.json().await.unwrap();
    assert_eq!(
        (reply["accepted"].as_bool(), reply["error"].as_str()),
        (Some(false), Some("Approval request is no longer pending"))
    );
    let res = live.bridge.post("/approval?wait=completion&timeout_ms=15000", &unknown).await;
    assert_eq!(res.status(), 409, "a client error, not a hang or a 5xx");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "answered at once, not at the timeout");
    assert!(live.model.chat_requests().is_empty(), "nothing ran");
}
