//! Awaited commands: `?wait=true` and `?wait=completion` count against one
//! bound (LETTA_BRIDGE_MAX_PENDING, `503` beyond) and a `request_id` is
//! awaited once at a time on a runtime (`409`), whichever way it waits.

use serde_json::{Value, json};

use crate::helpers::*;

fn message(request_id: &str) -> Value {
    json!({"request_id": request_id, "runtime": {"agent_id": "agent-1", "conversation_id": "conv-1"},
           "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "hi"}]}})
}

#[tokio::test]
async fn waits_for_completion_count_against_the_pending_bound() {
    let app = spawn_app_with(|c| c.max_pending = 2).await;
    let mut rt = app.runtime("dev-a").await;
    rt.quiet();
    let first = app.post_in_background("/input?wait=completion&timeout_ms=30000", message("turn-1"));
    let second = app.post_in_background("/input?wait=completion&timeout_ms=30000", message("turn-2"));
    // Written to the runtime: both are registered by now.
    rt.next_frame().await;
    rt.next_frame().await;
    assert_eq!(app.status().await["pending_replies"], 2);

    let refused = app.post("/input?wait=completion&timeout_ms=1000", message("turn-3")).await;
    assert_eq!(refused.headers()["retry-after"], "2");
    assert_problem(refused, 503).await;
    let sync = json!({"request_id": "sync-3", "runtime": {"agent_id": "agent-1", "conversation_id": "conv-1"}});
    let refused = app.post("/sync?wait=true&timeout_ms=1000", sync).await;
    assert_problem(refused, 503).await;
    first.abort();
    second.abort();
}

#[tokio::test]
async fn a_request_id_already_awaited_cannot_be_awaited_for_completion_again() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    rt.quiet();
    let first = app.post_in_background("/input?wait=completion&timeout_ms=30000", message("dup"));
    rt.next_frame().await;
    for wait in ["completion", "true"] {
        let again = app.post(&format!("/input?wait={wait}&timeout_ms=1000"), message("dup")).await;
        assert_problem(again, 409).await;
    }
    first.abort();

    let waiting = app.post_in_background("/input?wait=true&timeout_ms=30000", message("dup-2"));
    rt.next_frame().await;
    assert_problem(app.post("/input?wait=completion&timeout_ms=1000", message("dup-2")).await, 409).await;
    waiting.abort();
}
