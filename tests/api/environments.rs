//! Letta's environments API on the bridge (what `letta-client` and `letta
//! computers list` read): the runtimes in Letta's shapes, `onlineOnly`,
//! pages, one environment by device id, and `POST …/messages` turned into
//! the runtime's `input` commands.

use serde_json::{Value, json};

use crate::helpers::*;

async fn environments(app: &TestApp, query: &str) -> Value {
    app.get_json(&format!("/v1/environments{query}")).await
}

fn ids(list: &Value) -> Vec<&str> {
    list["connections"].as_array().unwrap().iter().map(|c| c["deviceId"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_connected_runtime_is_listed_in_lettas_shape_as_online() {
    let app = spawn_app().await;
    let _rt = app.runtime("dev-a").await;
    let list = environments(&app, "").await;
    assert_eq!(list["hasNextPage"], false);
    let env = &list["connections"][0];
    assert_eq!((env["id"].as_str(), env["deviceId"].as_str()), (Some("dev-a"), Some("dev-a")));
    assert!(env["connectionId"].as_str().is_some_and(|c| c.starts_with("conn-")), "its registration's: {env}");
    assert_eq!(env["connectionName"], "dev-a-name");
    assert_eq!((env["organizationId"].as_str(), &env["podId"]), (Some("local"), &Value::Null));
    assert_eq!(env["metadata"]["lettaCodeVersion"], fixtures::RUNTIME_VERSION, "from the registration");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    for field in ["connectedAt", "lastHeartbeat", "lastSeenAt", "firstSeenAt"] {
        let ms = env[field].as_u64().unwrap_or_else(|| panic!("{field} in ms: {env}"));
        assert!(now.abs_diff(ms) < 60_000, "{field} is a Unix time in ms: {env}");
    }
    assert_eq!(app.get_json("/v1/environments/dev-a").await, *env, "one environment by its device id");
}

#[tokio::test]
async fn online_only_leaves_out_a_runtime_that_is_gone_and_pages_follow_after() {
    let app = spawn_app().await;
    let _a = app.runtime("dev-a").await;
    let b = app.runtime("dev-b").await;
    let mut events = app.events("?types=runtime_offline").await;
    b.close();
    events.next_of("runtime_offline").await;

    let all = environments(&app, "").await;
    assert_eq!(ids(&all), ["dev-a", "dev-b"]);
    assert_eq!(all["connections"][1]["connectionId"], Value::Null, "offline: no connection id");
    assert_eq!(ids(&environments(&app, "?onlineOnly=true").await), ["dev-a"]);
    let first = environments(&app, "?limit=1").await;
    assert_eq!((ids(&first), first["hasNextPage"].as_bool()), (vec!["dev-a"], Some(true)));
    let next = environments(&app, "?limit=1&after=dev-a").await;
    assert_eq!((ids(&next), next["hasNextPage"].as_bool()), (vec!["dev-b"], Some(false)));
}

#[tokio::test]
async fn bad_parameters_unknown_devices_and_other_tokens_are_refused() {
    let app = spawn_app().await;
    let _rt = app.runtime("dev-a").await;
    for query in ["?limit=0", "?limit=101", "?limit=many", "?onlineOnly=maybe"] {
        assert_problem(app.get(&format!("/v1/environments{query}")).await, 400).await;
    }
    assert_problem(app.get("/v1/environments/no-such-device").await, 404).await;
    assert_eq!(app.get_as(None, "/v1/environments").await.status(), 401);
    assert_eq!(app.get_as(Some(RUNTIME_TOKEN), "/v1/environments").await.status(), 401, "not the runtime's");
    assert_eq!(app.get_as(Some(ADMIN_TOKEN), "/v1/environments").await.status(), 200);
}

#[tokio::test]
async fn a_message_becomes_an_input_for_the_runtime_of_that_connection() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let connection = environments(&app, "").await["connections"][0]["connectionId"].as_str().unwrap().to_owned();
    let body = json!({"messages": [{"role": "user", "content": "hi", "client_message_id": "cm-1"}],
                      "agentId": "agent-1", "conversationId": "conv-1"});
    let res = app.post(&format!("/v1/environments/{connection}/messages"), body).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"success": true, "message": "sent 1 input"}));
    let sent = rt.next_frame().await;
    assert_eq!(sent["type"], "input");
    assert_eq!(sent["runtime"], json!({"agent_id": "agent-1", "conversation_id": "conv-1"}));
    assert_eq!(sent["payload"]["kind"], "create_message");
    assert_eq!(sent["payload"]["messages"][0]["client_message_id"], "cm-1", "{sent}");

    // No agent or conversation named: the runtime's default agent, its default conversation.
    let bare = json!({"messages": [{"role": "user", "content": "hi", "client_message_id": "cm-2"}]});
    assert_eq!(app.post("/v1/environments/dev-a/messages", bare).await.status(), 200, "a device id works too");
    assert_eq!(rt.next_frame().await["runtime"], json!({"agent_id": null, "conversation_id": "default"}));
}

#[tokio::test]
async fn approvals_become_one_approval_response_each() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let body = json!({"agentId": "agent-1", "conversationId": "conv-1", "messages": [{"type": "approval", "approvals": [
        {"tool_call_id": "call-1", "approve": true},
        {"tool_call_id": "call-2", "approve": false, "reason": "not now"}
    ]}]});
    let res = app.post("/v1/environments/dev-a/messages", body).await;
    assert_eq!(res.json::<Value>().await.unwrap()["message"], "sent 2 inputs");
    let (allow, deny) = (rt.next_frame().await, rt.next_frame().await);
    assert_eq!(
        allow["payload"],
        json!({"kind": "approval_response", "request_id": "perm-call-1",
                                         "decision": {"behavior": "allow"}})
    );
    assert_eq!(deny["payload"]["decision"], json!({"behavior": "deny", "message": "not now"}));
}

#[tokio::test]
async fn a_bad_message_body_is_422_and_an_unknown_connection_404() {
    let app = spawn_app().await;
    let _rt = app.runtime("dev-a").await;
    let path = "/v1/environments/dev-a/messages";
    for body in [
        json!({"messages": []}),
        json!({"messages": [{"role": "system", "content": "x"}]}),
        json!({"messages": [{"type": "approval", "approvals": [{"tool_call_id": "c"}]}]}),
    ] {
        assert_problem(app.post(path, body).await, 422).await;
    }
    let fine = json!({"messages": [{"role": "user", "content": "hi", "client_message_id": "cm"}]});
    assert_problem(app.post("/v1/environments/conn-nowhere/messages", fine).await, 404).await;
}
