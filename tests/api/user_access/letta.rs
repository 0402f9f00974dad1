//! Letta's clients with a user token: the environments API, `GET
//! /runtimes` and `/status`, the relay and App-Server sockets see and send
//! only what the token's grants allow.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;

fn ids(list: &Value, field: &str) -> Vec<String> {
    list.as_array().unwrap().iter().map(|c| c[field].as_str().unwrap().to_owned()).collect()
}

/// The status of a WebSocket upgrade to `path` with `token` that is refused.
async fn upgrade_status(app: &TestApp, path: &str, token: &str) -> u16 {
    use tokio_tungstenite::tungstenite::{Error, client::IntoClientRequest};
    let mut req = app.ws_url(path).into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(Error::Http(res)) => res.status().as_u16(),
        other => panic!("expected a refused upgrade, got {:?}", other.map(|_| ())),
    }
}

async fn json_as(app: &TestApp, token: &str, path: &str) -> Value {
    let res = app.get_as(Some(token), path).await;
    assert_eq!(res.status(), 200, "GET {path}");
    res.json().await.unwrap()
}

#[tokio::test]
async fn environments_and_runtimes_show_a_user_only_the_runtimes_its_scopes_may_lie_on() {
    let app = spawn_with_users().await;
    let _one = app.runtime("dev-1").await;
    let _two = app.runtime("dev-2").await;
    let list = json_as(&app, &alice(), "/v1/environments").await;
    assert_eq!(ids(&list["connections"], "deviceId"), ["dev-1"]);
    assert_problem(app.get_as(Some(&alice()), "/v1/environments/dev-2").await, 404).await;
    assert_eq!(ids(&json_as(&app, &alice(), "/runtimes").await, "id"), ["dev-1"]);
    let problem = assert_problem(app.get_as(Some(&alice()), "/status").await, 403).await;
    assert!(problem["detail"].as_str().unwrap().contains("GET /runtimes"), "{problem}");
    let problem = assert_problem(app.get_as(Some(&alice()), "/metrics").await, 403).await;
    assert!(problem["detail"].as_str().unwrap().contains("operator"), "{problem}");
    let anywhere =
        token("erin", 600, "erin-1", &["read"], json!([{"agent_id": "agent-1", "conversation_id": "conv-a"}]));
    let list = json_as(&app, &anywhere, "/v1/environments").await;
    assert_eq!(ids(&list["connections"], "deviceId"), ["dev-1", "dev-2"], "a scope without runtime: any");
}

#[tokio::test]
async fn a_users_message_through_the_environments_api_is_authorised_on_its_runtime() {
    let app = spawn_with_users().await;
    let _rt = app.runtime("dev-1").await;
    let _other = app.runtime("dev-2").await;
    let body = |conversation: &str| json!({"agentId": "agent-1", "conversationId": conversation, "messages": [{"role": "user", "content": "hi"}]});
    let res = app.post_as(Some(&alice()), "/v1/environments/dev-1/messages", body("conv-b")).await;
    assert_eq!(assert_problem(res, 403).await["missing"]["conversation_id"], "conv-b");
    let res = app.post_as(Some(&alice()), "/v1/environments/dev-2/messages", body("conv-a")).await;
    assert_problem(res, 404).await;
    let res = app.post_as(Some(&alice()), "/v1/environments/dev-1/messages", body("conv-a")).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_users_relay_socket_gets_only_its_grants_and_sends_only_what_they_allow() {
    let app = spawn_with_users().await;
    let mut rt = app.runtime("dev-1").await;
    let path = format!("/v1/environments/dev-1/status/ws?agentId=agent-1&conversationId=conv-a&token={}", alice());
    let mut relay = app.client_socket(&path, None).await;
    relay.send(json!({"type": "sync", "request_id": "s-1", "runtime": conv("conv-b")})).await;
    let refused = relay.next_of("sync_response").await;
    assert_eq!((refused["request_id"].as_str(), refused["success"].as_bool()), (Some("s-1"), Some(false)));
    assert!(refused["error"].as_str().unwrap().contains("`sync` action"), "{refused}");
    relay.send(json!({"type": "conversation_list", "request_id": "l-1"})).await;
    assert_eq!(relay.next_of("conversation_list_response").await["success"], false);
    rt.emit("update_queue", "agent-1", "conv-b", json!({"n": 1}));
    rt.send(json!({"type": "update_device_status", "device_status": {}, "n": 2}));
    rt.emit("update_queue", "agent-1", "conv-a", json!({"n": 3}));
    let event = relay.next_of("update_queue").await;
    assert_eq!(event["n"], 3, "Bob's conversation and the device's state never came");
    relay.send(json!({"type": "sync", "request_id": "s-2", "runtime": conv("conv-a")})).await;
    let sent = rt.next_frame().await;
    assert_eq!((sent["type"].as_str(), &sent["runtime"]), (Some("sync"), &conv("conv-a")), "only the allowed one");
    assert_eq!(relay.next_of("sync_response").await["request_id"], "s-2");
}

#[tokio::test]
async fn a_users_app_server_socket_opens_only_on_its_runtime_and_closes_with_4001_at_exp() {
    let app = spawn_with_users().await;
    let _one = app.runtime("dev-1").await;
    let _two = app.runtime("dev-2").await;
    let short = token(
        "alice",
        2,
        "a-9",
        ALL,
        json!([{"runtime": "dev-1", "agent_id": "agent-1", "conversation_id": "conv-a"}]),
    );
    let mut refused = app.client_socket("/app-server/ws", Some(&short)).await;
    let frame = refused.next().await;
    assert_eq!(frame["candidates"], json!(["dev-1"]), "only the runtime she may see: {frame}");
    assert_eq!(upgrade_status(&app, "/app-server/ws?runtime=dev-2", &short).await, 404, "dev-2 is not hers");
    let mut socket = app.client_socket("/app-server/ws?runtime=dev-1", Some(&short)).await;
    socket.send(json!({"type": "app_server_info", "request_id": "i-1"})).await;
    assert_eq!(socket.next_of("app_server_info_response").await["success"], true);
    let closed = tokio::time::timeout(Duration::from_secs(5), socket.closed()).await.expect("closed at exp");
    assert_eq!(closed, Some((4001, "token_expired".into())));
}
