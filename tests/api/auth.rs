//! Who may do what: runtime token, client token, admin token.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn registration_with_the_runtime_token_answers_a_connection_id_and_ws_url() {
    let app = spawn_app().await;
    let res = app.register_as(Some(RUNTIME_TOKEN), "dev-a").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    let conn = body["connectionId"].as_str().unwrap();
    assert!(conn.starts_with("conn-"));
    assert_eq!(body["wsUrl"], format!("ws://{}/ws/{conn}", app.addr));
    assert_eq!(body["supportsSplitStatusChannels"], false);
    // Re-registering the same device keeps its connection id.
    let again: serde_json::Value = app.register_as(Some(RUNTIME_TOKEN), "dev-a").await.json().await.unwrap();
    assert_eq!(again["connectionId"], conn);
}

#[tokio::test]
async fn registration_with_a_bad_or_missing_key_is_401() {
    let app = spawn_app().await;
    for token in [None, Some("wrong"), Some(CLIENT_TOKEN), Some(ADMIN_TOKEN)] {
        let res = app.register_as(token, "dev-a").await;
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        assert_problem(res, 401).await;
    }
}

#[tokio::test]
async fn the_public_url_setting_shapes_the_ws_url() {
    let app = spawn_app_with(|c| c.public_url = Some("https://bridge.example.com/prefix/".into())).await;
    let body: serde_json::Value = app.register_as(Some(RUNTIME_TOKEN), "dev-a").await.json().await.unwrap();
    let url = body["wsUrl"].as_str().unwrap();
    assert!(url.starts_with("wss://bridge.example.com/prefix/ws/conn-"), "{url}");
}

#[tokio::test]
async fn a_runtime_socket_with_a_bad_or_missing_token_is_closed_1008_unauthorized() {
    let app = spawn_app().await;
    for token in [None, Some("wrong"), Some(CLIENT_TOKEN)] {
        let mut rt = FakeRuntime::connect(&app.ws_url("/ws?deviceId=dev-x"), token).await.unwrap();
        assert_eq!(rt.closed().await, Some((1008, "unauthorized".into())));
    }
    let runtimes = app.get_json("/runtimes").await;
    assert_eq!(runtimes, json!([]), "refused sockets leave no runtime behind");
}

#[tokio::test]
async fn a_socket_for_an_unknown_connection_id_is_closed_1008_so_the_runtime_registers_again() {
    let app = spawn_app().await;
    let mut rt =
        FakeRuntime::connect(&app.ws_url("/ws/conn-unknown?deviceId=dev-x"), Some(RUNTIME_TOKEN)).await.unwrap();
    let (code, _) = rt.closed().await.expect("a close frame");
    assert_eq!(code, 1008);
}

#[tokio::test]
async fn client_endpoints_refuse_missing_wrong_and_runtime_tokens() {
    let app = spawn_app().await;
    for token in [None, Some("wrong"), Some(RUNTIME_TOKEN)] {
        for path in ["/status", "/runtimes", "/events"] {
            let res = app.get_as(token, path).await;
            assert_eq!(res.headers()["www-authenticate"], "Bearer", "{path}");
            assert_problem(res, 401).await;
        }
        let res = app.post_as(token, "/sync", scoped(json!({}))).await;
        assert_problem(res, 401).await;
    }
}

#[tokio::test]
async fn probes_and_the_openapi_document_need_no_token() {
    let app = spawn_app().await;
    for path in ["/healthz", "/v1/health", "/openapi.json"] {
        assert_eq!(app.get_as(None, path).await.status(), 200, "{path}");
    }
    assert_eq!(app.get_as(None, "/readyz").await.status(), 503);
}

#[tokio::test]
async fn conversation_commands_are_open_to_client_tokens_but_device_commands_need_admin() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    for frame in [
        json!({"type": "read_file", "path": "/etc/passwd"}),
        json!({"type": "terminal_spawn"}),
        json!({"type": "secret_list"}),
        json!({"type": "write_memory_file", "path": "x", "content": "y"}),
        json!({"type": "runtime_start", "create_agent": {}}),
    ] {
        let res = app.post("/commands", frame.clone()).await;
        let problem = assert_problem(res, 403).await;
        assert!(problem["detail"].as_str().unwrap().contains("admin token"), "{problem}");
    }
    // The admin token may send them, and they reach the runtime.
    let res = app.post_as(Some(ADMIN_TOKEN), "/commands", json!({"type": "read_file", "path": "/tmp/x"})).await;
    assert_eq!(res.status(), 202);
    assert_eq!(rt.next_frame().await["type"], "read_file");
    // Conversation commands pass with the client token, through /commands too
    // (the fields it may set: tests/api/privileges.rs).
    let payload = json!({"agent_id": "agent-1", "conversation_id": "conv-1"});
    let res = app.post("/commands", scoped(json!({"type": "change_device_state", "payload": payload}))).await;
    assert_eq!(res.status(), 202);
    assert_eq!(rt.next_frame().await["type"], "change_device_state");
}

#[tokio::test]
async fn without_an_admin_token_privileged_commands_are_refused_for_everyone() {
    // On a loopback bind a missing admin token is generated; elsewhere it stays unset.
    let app = spawn_app_with(|c| {
        c.admin_token = None;
        c.listen = "0.0.0.0:0".parse().unwrap();
    })
    .await;
    let _rt = app.runtime("dev-a").await;
    let res = app.post("/commands", json!({"type": "read_file"})).await;
    let problem = assert_problem(res, 403).await;
    assert!(problem["detail"].as_str().unwrap().contains("no LETTA_BRIDGE_ADMIN_TOKEN"), "{problem}");
}

#[tokio::test]
async fn registration_bodies_must_be_objects_with_a_valid_device_id() {
    let app = spawn_app().await;
    let post = |body: serde_json::Value| {
        app.http.post(app.url("/v1/environments/register")).bearer_auth(RUNTIME_TOKEN).json(&body).send()
    };
    for body in [json!(["dev-a", "name"]), json!({}), json!({"deviceId": "has space"}), json!({"deviceId": ""})] {
        assert_problem(post(body.clone()).await.unwrap(), 422).await;
    }
}
