//! End users' tokens on the OpenAI-compatible API: the one privilege
//! decision, as on every door — a user token drives only the agents and
//! conversations its grants allow, and lists only those.

use serde_json::json;

use super::*;
use crate::user_access::{SECRET, token};

#[tokio::test]
async fn a_user_token_drives_only_the_agents_and_conversations_its_grants_allow() {
    let app = spawn_app_with(|c| c.user_token_secret = Some(SECRET.into())).await;
    let mut rt = runtime_with_agent(&app, "dev-1", "conv-a").await;
    let scopes = json!([{"runtime": "dev-1", "agent_id": AGENT, "conversation_id": "conv-a"}]);
    let alice = token("alice", 600, "alice-openai", &["read", "input"], scopes);

    let pending = tokio::spawn(chat(&app, &alice, &ask("hi"), &[("X-Letta-Conversation-Id", "conv-a")]).send());
    assert_eq!(rt.next_frame().await["runtime"]["conversation_id"], "conv-a");
    finished(&rt, "conv-a", "end_turn");
    assert_eq!(pending.await.unwrap().unwrap().status(), 200);

    let res = chat(&app, &alice, &ask("hi"), &[("X-Letta-Conversation-Id", "conv-b")]).send().await.unwrap();
    let error = assert_openai_error(res, 403, "insufficient_scope").await;
    assert_eq!(error["type"], "permission_error");
    // An agent outside her grants is refused before the bridge says whether it knows it.
    let other = json!({"model": "agent-9", "messages": [{"role": "user", "content": "hi"}]});
    let res = chat(&app, &alice, &other, &[("X-Letta-Conversation-Id", "conv-a")]).send().await.unwrap();
    assert_openai_error(res, 403, "insufficient_scope").await;
}

#[tokio::test]
async fn models_lists_only_the_agents_a_user_token_may_send_to() {
    let app = spawn_app_with(|c| c.user_token_secret = Some(SECRET.into())).await;
    let rt = runtime_with_agent(&app, "dev-1", "conv-a").await;
    let mut events = app.events("").await;
    rt.emit("update_loop_status", "agent-2", "conv-z", json!({"loop_status": {"status": "WAITING_ON_INPUT"}}));
    events.next_matching("agent-2's scope", |e| e.data["runtime"]["agent_id"] == "agent-2").await;
    let all: Value = app.get("/v1/models").await.json().await.unwrap();
    assert_eq!(all["data"].as_array().unwrap().len(), 2);
    let scopes = json!([{"agent_id": AGENT, "conversation_id": "*"}]);
    let alice = token("alice", 600, "alice-models", &["input"], scopes);
    let mine: Value = app.get_as(Some(&alice), "/v1/models").await.json().await.unwrap();
    let ids: Vec<&str> = mine["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [AGENT]);
    let reader = token("bob", 600, "bob-models", &["read"], json!([{"agent_id": AGENT, "conversation_id": "*"}]));
    let none: Value = app.get_as(Some(&reader), "/v1/models").await.json().await.unwrap();
    assert_eq!(none["data"], json!([]), "reading is not sending");
    assert_openai_error(app.get_as(Some(&reader), &format!("/v1/models/{AGENT}")).await, 404, "model_not_found").await;
}
