//! What a receiver gets: signed deliveries of flat and raw events, retries
//! after `500`s, `410` disabling the hook, order, redelivery.

use std::time::Duration;

use serde_json::json;

use super::*;

#[tokio::test]
async fn a_turn_and_an_approval_are_delivered_flat_and_signed_as_the_spec_verifies() {
    let app = spawn_hooks().await;
    let rt = app.runtime("dev-1").await;
    let mut receiver = Receiver::start("127.0.0.1", &[]).await;
    let events = json!(["turn.finished", "approval.requested", "turn_finished"]);
    let hook = make(&app, ADMIN_TOKEN, &receiver, events, json!({})).await;
    assert!(hook["secret"].as_str().unwrap().starts_with("whsec_") && hook["id"].as_str().unwrap().starts_with("wh_"));
    let delta =
        |id: &str, text: &str| json!({"delta": {"message_type": "assistant_message", "id": id, "content": text}});
    rt.emit("stream_delta", "agent-1", "conv-a", delta("m1", "Hello, "));
    rt.emit("stream_delta", "agent-1", "conv-a", delta("m1", "world"));
    rt.emit("control_request", "agent-1", "conv-a", json!({"request_id": "perm-call-1",
        "request": {"subtype": "can_use_tool", "tool_name": "Bash", "input": {"command": "ls"}, "tool_call_id": "call-1"}}));
    rt.emit(
        "turn_finished",
        "agent-1",
        "conv-a",
        json!({"stop_reason": "end_turn", "turn_id": "turn-1", "run_id": "run-1"}),
    );
    let approval = receiver.next().await["body"].clone();
    assert_eq!(approval["type"], "approval.requested", "{approval}");
    let data = &approval["data"];
    assert_eq!(
        (&data["tool_name"], &data["request_id"], &data["arguments"]["command"]),
        (&json!("Bash"), &json!("perm-call-1"), &json!("ls"))
    );
    let raw = receiver.next().await["body"].clone();
    assert_eq!(
        (&raw["type"], &raw["data"]["turn_id"]),
        (&json!("turn_finished"), &json!("turn-1")),
        "the raw event: {raw}"
    );
    let flat = receiver.next().await["body"].clone();
    assert_eq!(flat["type"], "turn.finished", "{flat}");
    let data = &flat["data"];
    assert_eq!(
        (&data["text"], &data["stop_reason"], &data["turn_id"]),
        (&json!("Hello, world"), &json!("end_turn"), &json!("turn-1"))
    );
    assert_eq!(
        (&data["runtime"], &data["agent_id"], &data["conversation_id"]),
        (&json!("dev-1"), &json!("agent-1"), &json!("conv-a"))
    );
    assert!(receiver.quiet(Duration::from_millis(200)).await, "stream_delta was not asked for");
}

#[tokio::test]
async fn a_delivery_answered_500_is_retried_with_the_same_id_until_it_is_delivered() {
    let app = spawn_hooks().await;
    let rt = app.runtime("dev-1").await;
    let mut receiver = Receiver::start("127.0.0.1", &[500, 500]).await;
    let hook = make(&app, ADMIN_TOKEN, &receiver, json!(["update_queue"]), json!({})).await;
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": 1}));
    let attempts = [receiver.next().await, receiver.next().await, receiver.next().await];
    assert_eq!(attempts.iter().map(|a| a["answered"].as_u64().unwrap()).collect::<Vec<_>>(), [500, 500, 200]);
    assert!(attempts.iter().all(|a| a["id"] == attempts[0]["id"]), "one webhook-id for every attempt");
    until("the delivery is recorded as delivered", || async {
        let d = deliveries(&app, &hook).await;
        d.len() == 1 && d[0]["status"] == "delivered" && d[0]["attempts"] == 3 && d[0]["id"] == attempts[0]["id"]
    })
    .await;
    assert_eq!(listed(&app, &hook).await["enabled"], true);
}

#[tokio::test]
async fn a_410_disables_the_hook_and_a_redelivery_enables_it_with_the_same_id() {
    let app = spawn_hooks().await;
    let rt = app.runtime("dev-1").await;
    let mut receiver = Receiver::start("127.0.0.1", &[410]).await;
    let hook = make(&app, ADMIN_TOKEN, &receiver, json!(["update_queue"]), json!({})).await;
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": 1}));
    let gone = receiver.next().await;
    assert_eq!(gone["answered"], 410);
    until("the hook is disabled", || async { listed(&app, &hook).await["enabled"] == false }).await;
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": 2}));
    assert!(receiver.quiet(Duration::from_millis(300)).await, "a disabled hook receives nothing");
    let failed = deliveries(&app, &hook).await;
    assert_eq!(
        (failed.len(), &failed[0]["status"], &failed[0]["attempts"]),
        (1, &json!("failed"), &json!(1)),
        "{failed:?}"
    );
    let retry = format!("/webhooks/{}/deliveries/{}/retry", hook["id"].as_str().unwrap(), gone["id"].as_str().unwrap());
    assert_eq!(app.post_as(Some(ADMIN_TOKEN), &retry, json!({})).await.status(), 202);
    let again = receiver.next().await;
    assert_eq!((&again["id"], &again["body"]["data"]["n"], &again["answered"]), (&gone["id"], &json!(1), &json!(200)));
    until("the hook is enabled again", || async { listed(&app, &hook).await["enabled"] == true }).await;
    let unknown = format!("/webhooks/{}/deliveries/msg_nope/retry", hook["id"].as_str().unwrap());
    assert_problem(app.post_as(Some(ADMIN_TOKEN), &unknown, json!({})).await, 404).await;
}

#[tokio::test]
async fn a_hook_failing_the_whole_schedule_is_disabled_and_says_why() {
    let app = spawn_hooks().await;
    let rt = app.runtime("dev-1").await;
    let mut receiver = Receiver::start("127.0.0.1", &[500, 503, 500, 502]).await;
    let hook = make(&app, ADMIN_TOKEN, &receiver, json!(["update_queue"]), json!({})).await;
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": 1}));
    for _ in 0..4 {
        receiver.next().await;
    }
    until("the hook is disabled", || async { listed(&app, &hook).await["enabled"] == false }).await;
    let listed = listed(&app, &hook).await;
    assert!(listed["disabled_reason"].as_str().unwrap().contains("all 4 attempts"), "{listed}");
}

#[tokio::test]
async fn deliveries_keep_the_order_of_their_events_across_retries() {
    let app = spawn_hooks().await;
    let rt = app.runtime("dev-1").await;
    let mut receiver = Receiver::start("127.0.0.1", &[500, 200, 500]).await;
    make(&app, ADMIN_TOKEN, &receiver, json!(["update_queue"]), json!({})).await;
    for n in 1..=5 {
        rt.emit("update_queue", "agent-1", "conv-a", json!({"n": n}));
    }
    let mut delivered = Vec::new();
    while delivered.len() < 5 {
        let got = receiver.next().await;
        if got["answered"] == 200 {
            delivered.push(got["body"]["data"]["n"].as_u64().unwrap());
        }
    }
    assert_eq!(delivered, [1, 2, 3, 4, 5]);
}
