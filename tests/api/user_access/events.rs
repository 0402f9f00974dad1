//! What an end user's stream reads: only the events of its grants — with
//! the query's filters removed or pointed elsewhere, in replay, after a
//! `reset`, through a ticket — and of the unscoped ones only its runtime's
//! `runtime_online`.

use serde_json::json;

use super::*;

/// Emits on `rt` one event of Bob's conversation, one of the device, one of
/// Alice's, numbered `n`, `n + 1`, `n + 2`.
fn three(rt: &FakeRuntime, n: u64) {
    rt.emit("update_queue", "agent-1", "conv-b", json!({"n": n}));
    rt.send(json!({"type": "update_device_status", "device_status": {}, "n": n + 1}));
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": n + 2}));
}

#[tokio::test]
async fn alices_stream_never_sees_bobs_conversation_live_with_its_filters_removed_or_pointed_at_bob() {
    let app = spawn_with_users().await;
    let rt = app.runtime("dev-1").await;
    let mut plain = events_as(&app, &alice(), "", None).await;
    let at_bob = events_as(&app, &alice(), "?conversation_id=conv-b&types=update_queue,turn_finished", None).await;
    let mut client = app.events("?types=update_queue,turn_finished").await;
    three(&rt, 1);
    rt.emit("turn_finished", "agent-1", "conv-b", json!({"stop_reason": "end_turn", "n": 4}));
    rt.emit("turn_finished", "agent-1", "conv-a", json!({"stop_reason": "end_turn", "n": 5}));
    while client.next().await.data["n"] != 5 {}
    assert_eq!(plain.next().await.data["n"], 3, "Alice's first event; nothing of Bob's or the device's before it");
    assert_eq!(plain.next().await.data["n"], 5);
    assert_eq!(conversations(&plain), ["conv-a", "conv-a"]);
    // Her filter names Bob's conversation: narrower than her grants, so nothing.
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": 6}));
    rt.emit("update_queue", "agent-1", "conv-b", json!({"n": 7}));
    assert_eq!(plain.next().await.data["n"], 6);
    let mut at_bob = at_bob.waiting(std::time::Duration::from_millis(300));
    assert!(!at_bob.ends().await, "open, and nothing came: {}", at_bob.summary());
    assert!(at_bob.seen.is_empty(), "{}", at_bob.summary());
}

#[tokio::test]
async fn alices_replay_and_her_stream_after_a_reset_hold_only_her_conversation() {
    let app = spawn_with_users().await;
    let rt = app.runtime("dev-1").await;
    let mut client = app.events("").await;
    let first = client.next_of("update_queue");
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": 0}));
    let cursor = first.await.id;
    three(&rt, 1);
    while client.next().await.data["n"] != 3 {}
    let mut replay = events_as(&app, &alice(), "", Some(&cursor)).await;
    assert_eq!(replay.next().await.data["n"], 3, "the replay skips Bob's and the device's events");
    let mut reset = events_as(&app, &alice(), "", Some("0123456789-1")).await;
    let first = reset.next().await;
    assert_eq!((first.event.as_str(), first.data["reason"].as_str()), ("reset", Some("other_epoch")));
    three(&rt, 10);
    assert_eq!(reset.next().await.data["n"], 12, "after the reset, still only hers");
    assert_eq!(replay.next().await.data["n"], 12);
}

#[tokio::test]
async fn a_ticket_minted_with_a_user_token_carries_its_grants() {
    let app = spawn_with_users().await;
    let rt = app.runtime("dev-1").await;
    let ticket = ticket(&app, &alice()).await;
    let sse = Sse::open(app.http.get(app.url(&format!("/events?ticket={ticket}&conversation_id=conv-b")))).await;
    let mut all =
        Sse::open(app.http.get(app.url(&format!("/events?ticket={}", super::ticket(&app, &alice()).await)))).await;
    three(&rt, 1);
    assert_eq!(all.next().await.data["n"], 3, "only Alice's, though the ticket is in the URL");
    let mut sse = sse.waiting(std::time::Duration::from_millis(300));
    assert!(!sse.ends().await && sse.seen.is_empty(), "{}", sse.summary());
}

#[tokio::test]
async fn a_user_sees_runtime_online_only_of_a_runtime_its_scopes_name() {
    let app = spawn_with_users().await;
    let mut named = events_as(&app, &alice(), "", None).await;
    let anywhere =
        token("erin", 600, "erin-1", &["read"], json!([{"agent_id": "agent-1", "conversation_id": "conv-a"}]));
    let mut unnamed = events_as(&app, &anywhere, "", None).await;
    let rt2 = app.runtime("dev-2").await;
    let rt1 = app.runtime("dev-1").await;
    let online = named.next().await;
    assert_eq!((online.event.as_str(), online.data["runtime_id"].as_str()), ("runtime_online", Some("dev-1")));
    rt2.emit("update_queue", "agent-1", "conv-a", json!({"n": 1}));
    rt1.emit("update_queue", "agent-1", "conv-a", json!({"n": 2}));
    let first = unnamed.next().await;
    assert_eq!(first.event, "update_queue", "no runtime_online for a scope that names no runtime");
    assert_eq!(named.next().await.data["n"], 2, "not dev-2's event: her scope names dev-1");
}
