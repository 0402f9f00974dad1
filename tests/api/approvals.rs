//! Tool approvals, with the fake runtime playing the recorded approval
//! exchanges (fixtures `approval_allow`, `approval_deny`, `approval_stale`):
//! the request reaches subscribers, `?wait=completion` stops at it with
//! `requires_approval`, `POST /approval` continues the turn, and an approval
//! the runtime no longer waits for gets a clear answer.

use serde_json::{Value, json};

use crate::helpers::*;

const SCOPE: (&str, &str) = ("agent-1", "conv-1");

fn scope() -> Value {
    json!({"agent_id": SCOPE.0, "conversation_id": SCOPE.1})
}

fn message(text: &str) -> Value {
    json!({"runtime": scope(), "payload": {"kind": "create_message", "messages": [{"role": "user", "content": text}]}})
}

fn answer(request_id: &Value, decision: Value) -> Value {
    json!({"runtime": scope(), "payload": {"request_id": request_id, "decision": decision}})
}

/// The recorded approval request: the model's `Bash` call (tests/record/plan.rs).
const RECORDED_REQUEST: &str = "perm-call-recorder-allow";
const RECORDED_COMMAND: &str = "touch approval-allowed.txt";

#[tokio::test]
async fn an_approval_request_reaches_subscribers_with_the_tool_name_and_arguments() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-a").await;
    rt.ask_for_approvals();
    let mut events = app.events("").await;
    assert_eq!(app.post("/input", message("please create the file")).await.status(), 202);

    let call = events
        .next_matching("the approval_request_message delta", |e| {
            e.event == "stream_delta" && e.data["delta"]["message_type"] == "approval_request_message"
        })
        .await;
    let tool_call = &call.data["delta"]["tool_call"];
    assert_eq!(tool_call["name"], "Bash");
    let arguments: Value = serde_json::from_str(tool_call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments["command"], RECORDED_COMMAND, "the arguments are a JSON string");

    let asked = events.next_of("control_request").await;
    assert_eq!(asked.data["runtime"], scope());
    assert_eq!(asked.data["request_id"], RECORDED_REQUEST);
    assert_eq!(asked.data["request_id"], format!("perm-{}", tool_call["tool_call_id"].as_str().unwrap()));
    let request = &asked.data["request"];
    assert_eq!((request["subtype"].as_str(), request["tool_name"].as_str()), (Some("can_use_tool"), Some("Bash")));
    assert_eq!(request["input"], arguments, "the same arguments, as an object");
}

#[tokio::test]
async fn input_wait_completion_stops_at_the_approval_request_with_requires_approval() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-a").await;
    rt.ask_for_approvals();
    let mut events = app.events("").await;

    let res = app.post("/input?wait=completion&timeout_ms=5000", message("please create the file")).await;
    assert_eq!(res.status(), 200, "answered at the approval request, not at the timeout");
    let turn: Value = res.json().await.unwrap();
    assert_eq!(turn["stop_reason"], "requires_approval", "{turn}");
    assert!(turn["turn_finished"].is_null(), "the runtime has not finished the turn: {turn}");
    let approval = &turn["approval"];
    assert_eq!(approval["request_id"], RECORDED_REQUEST, "{turn}");
    assert_eq!(
        (approval["tool_name"].as_str(), approval["tool_call_id"].as_str()),
        (Some("Bash"), Some("call-recorder-allow"))
    );
    assert_eq!(approval["input"]["command"], RECORDED_COMMAND, "{turn}");
    assert_eq!(approval["permission_suggestions"][0]["id"], "save-default", "{turn}");
    assert_eq!(approval["control_request"]["type"], "control_request", "{turn}");
    assert!(turn["run_id"].is_string(), "the run that asked: {turn}");

    let asked = events.next_of("control_request").await;
    let ids = turn["event_ids"].as_array().unwrap();
    assert_eq!(ids.last().unwrap(), &json!(asked.id), "the turn's events end with the control_request");
}

#[tokio::test]
async fn approval_wait_completion_follows_the_continued_turn_to_its_end() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-a").await;
    rt.ask_for_approvals();
    rt.play_recorded_turns();
    let paused: Value =
        app.post("/input?wait=completion&timeout_ms=5000", message("please")).await.json().await.unwrap();
    assert_eq!(paused["stop_reason"], "requires_approval", "{paused}");

    let res = app
        .post(
            "/approval?wait=completion&timeout_ms=5000",
            answer(&paused["approval"]["request_id"], json!({"behavior": "allow"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let turn: Value = res.json().await.unwrap();
    assert_eq!(turn["stop_reason"], "end_turn", "{turn}");
    assert_eq!(turn["text"], "Created the file.", "the recorded reply after the tool ran: {turn}");
    assert_eq!(turn["turn_finished"]["type"], "turn_finished", "{turn}");
    assert!(turn["disposition"].is_null(), "the runtime gives an approval no disposition: {turn}");
    assert!(turn.get("approval").is_none(), "{turn}");
}

#[tokio::test]
async fn a_denied_approval_ends_the_turn_with_the_denial_among_its_events() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-a").await;
    rt.ask_for_approvals();
    rt.play_recorded_turns();
    let mut events = app.events("").await;
    let paused: Value =
        app.post("/input?wait=completion&timeout_ms=5000", message("please")).await.json().await.unwrap();

    let deny = json!({"behavior": "deny", "message": "Not in this test, thanks."});
    let res =
        app.post("/approval?wait=completion&timeout_ms=5000", answer(&paused["approval"]["request_id"], deny)).await;
    let turn: Value = res.json().await.unwrap();
    assert_eq!(
        (turn["stop_reason"].as_str(), turn["text"].as_str()),
        (Some("end_turn"), Some("Understood, I will not."))
    );
    let denial = events
        .next_matching("the denied tool's return", |e| e.data["delta"]["message_type"] == "tool_return_message")
        .await;
    assert_eq!(denial.data["delta"]["status"], "error");
    assert_eq!(denial.data["delta"]["tool_return"], "Not in this test, thanks.", "the recorded denial message");
    assert!(turn["event_ids"].as_array().unwrap().contains(&json!(denial.id)), "{turn}");
}

/// Sends an approval to a quiet fake runtime and answers it as the real
/// runtime answers an approval it no longer waits for (fixture `approval_stale`).
async fn refused(app: &TestApp, rt: &mut FakeRuntime, query: &str) -> reqwest::Response {
    let pending = app.post_in_background(
        &format!("/approval{query}"),
        answer(&json!(RECORDED_REQUEST), json!({"behavior": "allow"})),
    );
    let sent = rt.next_frame().await;
    assert_eq!(sent["payload"]["request_id"], RECORDED_REQUEST);
    rt.play("approval_stale", 0, &sent);
    pending.await.unwrap()
}

#[tokio::test]
async fn an_approval_the_runtime_no_longer_waits_for_gets_a_clear_answer() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    rt.quiet();

    let res = refused(&app, &mut rt, "?wait=true").await;
    assert_eq!(res.status(), 200, "wait=true answers with the runtime's reply");
    let reply: Value = res.json().await.unwrap();
    assert_eq!((reply["type"].as_str(), reply["accepted"].as_bool()), (Some("input_accepted"), Some(false)));
    assert_eq!(reply["error"], "Approval request is no longer pending");

    let problem = assert_problem(refused(&app, &mut rt, "?wait=completion").await, 409).await;
    assert_eq!(problem["type"], "urn:letta-bridge:conflict");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains(RECORDED_REQUEST) && detail.contains("no longer pending"), "{detail}");
}

#[tokio::test]
async fn an_approval_whose_updated_input_is_not_an_object_is_refused_before_it_is_sent() {
    let app = spawn_app().await;
    let _rt = app.runtime("dev-a").await;
    let decision = json!({"behavior": "allow", "updated_input": ["touch", "x"]});
    let problem = assert_problem(app.post("/approval", answer(&json!(RECORDED_REQUEST), decision)).await, 422).await;
    assert!(problem["detail"].as_str().unwrap().contains("payload.decision"), "{problem}");
    let decision = json!({"behavior": "allow", "updated_input": {"command": "touch y"}});
    assert_eq!(app.post("/approval", answer(&json!(RECORDED_REQUEST), decision)).await.status(), 202);
}
