//! Who may send what holds on every instance: the client token's
//! allow-lists, and `Idempotency-Key`s that belong to their caller in the
//! shared store.

use letta_bridge_testkit::bridge::CLIENT_TOKEN;
use serde_json::{Value, json};

use crate::harness::{Cluster, admin, online_on};

#[tokio::test]
async fn an_admins_keyed_answer_is_never_replayed_to_the_client_token_on_another_instance() {
    let Some(cluster) = Cluster::start("keys_per_principal", 3) else { return };
    let mut on2 = cluster.events(2, "").await;
    let mut on3 = cluster.events(3, "").await;
    let mut rt = cluster.runtime(1, "dev-k").await;
    online_on(&mut [&mut on2, &mut on3], "dev-k").await;
    let frame = json!({"type": "list_in_directory", "path": "/tmp"});
    let post = |i: usize, token: &str| {
        let b = cluster.at(i);
        let req = b.http.post(b.url("/commands?wait=true")).bearer_auth(token);
        req.header("Idempotency-Key", "key-1").json(&frame).send()
    };
    let first = post(2, admin()).await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(rt.next_frame().await["type"], "list_in_directory");

    let other = post(3, CLIENT_TOKEN).await.unwrap();
    assert!(other.headers().get("idempotent-replayed").is_none(), "no replay for another principal");
    assert_eq!(other.status(), 403);
    let replay = post(3, admin()).await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true", "the admin's own key still replays everywhere");
}

#[tokio::test]
async fn a_client_token_cannot_set_a_permission_mode_on_any_instance() {
    let Some(cluster) = Cluster::start("allow_lists_across", 2) else { return };
    let mut on2 = cluster.events(2, "").await;
    let mut rt = cluster.runtime(1, "dev-m").await;
    online_on(&mut [&mut on2], "dev-m").await;
    let scope = json!({"agent_id": "agent-1", "conversation_id": "conv-1"});
    let frame =
        json!({"type": "change_device_state", "runtime": scope, "payload": {"mode": "unrestricted", "cwd": "/"}});
    for i in [1, 2] {
        let res = cluster.at(i).post("/commands", &frame).await;
        assert_eq!(res.status(), 403, "on instance {i}");
        let problem: Value = res.json().await.unwrap();
        assert!(problem["detail"].as_str().unwrap().contains("`change_device_state` with `payload."), "{problem}");
    }
    assert_eq!(cluster.at(2).post_as(admin(), "/commands", &frame).await.status(), 202);
    let sent = rt.next_frame().await;
    assert_eq!(sent["payload"]["mode"], "unrestricted", "only the admin's command reached the runtime: {sent}");
}
