//! Reliability: re-sync after reconnect, resume across disconnects and
//! restarts, reconnect storms, runtimes that drop mid-turn.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::helpers::*;

fn message(agent: &str, conversation: &str) -> Value {
    json!({
        "runtime": {"agent_id": agent, "conversation_id": conversation},
        "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "hi"}]}
    })
}

#[tokio::test]
async fn a_reconnecting_runtime_is_resynced_for_every_scope_seen_on_it() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    assert!(rt.early_frames().is_empty(), "a first connection is not re-synced");
    let mut sse = app.events("?types=marker,sync_response,runtime_offline").await;
    rt.emit("marker", "agent-1", "conv-1", json!({}));
    sse.next_of("marker").await;
    assert_eq!(app.post("/input", message("agent-2", "conv-2")).await.status(), 202);
    assert_eq!(rt.next_frame().await["type"], "input");
    rt.close();
    sse.next_of("runtime_offline").await;

    let mut again = app.runtime("dev-a").await;
    let mut scopes = BTreeSet::new();
    for _ in 0..2 {
        let frame = again.next_frame().await;
        assert_eq!(frame["type"], "sync");
        assert!(frame["request_id"].as_str().unwrap().starts_with("bridge-resync-"));
        scopes.insert((frame["runtime"]["agent_id"].to_string(), frame["runtime"]["conversation_id"].to_string()));
    }
    let expected: BTreeSet<_> = [("\"agent-1\"", "\"conv-1\""), ("\"agent-2\"", "\"conv-2\"")]
        .into_iter()
        .map(|(a, c)| (a.to_owned(), c.to_owned()))
        .collect();
    assert_eq!(scopes, expected);
    // The runtime's answers reach subscribers like any event.
    for _ in 0..2 {
        assert_eq!(sse.next_of("sync_response").await.data["runtime_id"], "dev-a");
    }
}

async fn post_keyed(app: &TestApp, path: &str, key: &str, body: Value) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .bearer_auth(CLIENT_TOKEN)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_first_answer_and_sends_nothing() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let first = post_keyed(&app, "/input", "key-1", message("a", "c")).await;
    assert_eq!(first.status(), 202);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = post_keyed(&app, "/input", "key-1", message("a", "c")).await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first, "same answer, same request_id");
    // The runtime got the input once: the next frame it sees is a later marker.
    assert_eq!(rt.next_frame().await["request_id"], first["request_id"]);
    app.post("/sync", scoped(json!({"request_id": "marker"}))).await;
    assert_eq!(rt.next_frame().await["request_id"], "marker");
}

#[tokio::test]
async fn the_same_key_with_a_different_request_is_422() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    assert_eq!(post_keyed(&app, "/input", "key-2", message("a", "c")).await.status(), 202);
    rt.next_frame().await;
    assert_problem(post_keyed(&app, "/input", "key-2", message("a", "other")).await, 422).await;
    assert_problem(post_keyed(&app, "/sync", "key-2", scoped(json!({}))).await, 422).await;
}

#[tokio::test]
async fn a_repeat_during_the_first_request_waits_for_its_answer() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    rt.quiet();
    let send = |app: &TestApp| {
        let req = app
            .http
            .post(app.url("/sync?wait=true"))
            .bearer_auth(CLIENT_TOKEN)
            .header("Idempotency-Key", "key-3")
            .json(&scoped(json!({"request_id": "s-3"})));
        tokio::spawn(async move { req.send().await.unwrap() })
    };
    let first = send(&app);
    assert_eq!(rt.next_frame().await["request_id"], "s-3");
    let second = send(&app);
    rt.send(json!({"type": "sync_response", "request_id": "s-3", "success": true}));
    let (a, b) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!((a.status(), b.status()), (reqwest::StatusCode::OK, reqwest::StatusCode::OK));
    assert_eq!(a.json::<Value>().await.unwrap(), b.json::<Value>().await.unwrap());
    app.post("/sync", scoped(json!({"request_id": "marker"}))).await;
    assert_eq!(rt.next_frame().await["request_id"], "marker", "the command went out once");
}

#[tokio::test]
async fn a_refusal_that_sent_nothing_frees_the_key_for_a_retry() {
    let app = spawn_app().await;
    let res = post_keyed(&app, "/input", "key-4", message("a", "c")).await;
    assert_problem(res, 503).await;
    let mut rt = app.runtime("dev-a").await;
    let res = post_keyed(&app, "/input", "key-4", message("a", "c")).await;
    assert_eq!(res.status(), 202);
    assert!(res.headers().get("idempotent-replayed").is_none());
    assert_eq!(rt.next_frame().await["type"], "input");
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_400() {
    let app = spawn_app().await;
    let _rt = app.runtime("dev-a").await;
    for key in ["", "has space", &"k".repeat(256)] {
        assert_problem(post_keyed(&app, "/sync", key, scoped(json!({}))).await, 400).await;
    }
}
