//! Who may send what, on every way in: the client token's allow-lists (REST,
//! the relay socket, the App-Server socket), `Idempotency-Key`s that belong
//! to their caller, and socket namespaces no other caller can use.

use serde_json::{Value, json};

use crate::helpers::*;

fn scope() -> Value {
    json!({"agent_id": "agent-1", "conversation_id": "conv-1"})
}

/// The frame that hands the device to every tool without asking (issue 18, hole 3).
fn unrestricted() -> Value {
    json!({"type": "change_device_state", "runtime": scope(), "payload": {"mode": "unrestricted", "cwd": "/"}})
}

/// Sends an admin `sync` with request id `marker` and asserts it is the next
/// frame the runtime gets: nothing refused before it reached the runtime.
async fn assert_nothing_else_reached(app: &TestApp, rt: &mut FakeRuntime) {
    let marker = json!({"type": "sync", "request_id": "marker", "runtime": scope()});
    assert_eq!(app.post_as(Some(ADMIN_TOKEN), "/commands", marker).await.status(), 202);
    let next = rt.next_frame().await;
    assert_eq!(next["request_id"], "marker", "a refused command reached the runtime: {next}");
}

#[tokio::test]
async fn a_client_token_cannot_set_the_devices_permission_mode_or_directory_over_rest() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let problem = assert_problem(app.post("/commands", unrestricted()).await, 403).await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("`change_device_state` with `payload."), "{detail}");
    assert!(detail.contains("admin token"), "{detail}");
    assert_nothing_else_reached(&app, &mut rt).await;

    assert_eq!(app.post_as(Some(ADMIN_TOKEN), "/commands", unrestricted()).await.status(), 202);
    let sent = rt.next_frame().await;
    assert_eq!((sent["type"].as_str(), &sent["payload"]), (Some("change_device_state"), &unrestricted()["payload"]));
}

#[tokio::test]
async fn a_client_token_cannot_set_the_devices_permission_mode_or_directory_on_either_socket() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let relay = "/v1/environments/dev-a/status/ws";
    for path in [relay, "/app-server/ws"] {
        let mut client = app.client_socket(path, Some(CLIENT_TOKEN)).await;
        let mut frame = unrestricted();
        frame["request_id"] = json!("cds-1");
        client.send(frame).await;
        let refused = client.next_of("change_device_state_response").await;
        assert_eq!((refused["success"].as_bool(), refused["request_id"].as_str()), (Some(false), Some("cds-1")));
        assert!(refused["error"].as_str().unwrap().contains("needs the admin token"), "{path}: {refused}");
        assert_nothing_else_reached(&app, &mut rt).await;

        let mut admin = app.client_socket(path, Some(ADMIN_TOKEN)).await;
        admin.send(unrestricted()).await;
        let sent = rt.next_frame().await;
        assert_eq!(
            (sent["type"].as_str(), &sent["payload"]["mode"]),
            (Some("change_device_state"), &json!("unrestricted"))
        );
    }
}

#[tokio::test]
async fn a_resuming_runtime_start_with_a_permission_mode_or_directory_needs_the_admin_token() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let mut socket = app.app_server().await;
    for (field, value) in [("permission_mode", json!("unrestricted")), ("working_directory", json!("/"))] {
        let mut start = json!({"type": "runtime_start", "agent_id": "agent-1", "conversation_id": "conv-1",
                               "client_info": {"name": "test"}});
        start[field] = value;
        let problem = assert_problem(app.post("/commands", start.clone()).await, 403).await;
        assert!(problem["detail"].as_str().unwrap().contains(&format!("`runtime_start` with `{field}`")), "{problem}");

        start["request_id"] = json!(format!("start-{field}"));
        socket.send(start).await;
        let refused = socket.next_of("runtime_start_response").await;
        assert_eq!(refused["success"], false, "{refused}");
        assert!(refused["error"].as_str().unwrap().contains(field), "{refused}");
    }
    assert_nothing_else_reached(&app, &mut rt).await;
}

#[tokio::test]
async fn a_field_the_bridge_has_never_heard_of_needs_the_admin_token() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let body = json!({"runtime": scope(), "a_future_option": true});
    let problem = assert_problem(app.post("/sync", body.clone()).await, 403).await;
    assert!(problem["detail"].as_str().unwrap().contains("`sync` with `a_future_option`"), "{problem}");
    assert_nothing_else_reached(&app, &mut rt).await;
    assert_eq!(app.post_as(Some(ADMIN_TOKEN), "/sync", body).await.status(), 202);
    assert_eq!(rt.next_frame().await["a_future_option"], true, "the admin's option goes to the runtime untouched");
}

/// POSTs `body` to `path` with `token` and an `Idempotency-Key`.
async fn post_keyed(app: &TestApp, token: &str, path: &str, key: &str, body: Value) -> reqwest::Response {
    let req = app.http.post(app.url(path)).bearer_auth(token).header("Idempotency-Key", key).json(&body);
    req.send().await.expect("request sent")
}

#[tokio::test]
async fn a_client_token_cannot_replay_an_admin_answer() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let read = json!({"type": "read_file", "request_id": "rf-1", "path": "/home/me/.ssh/id_ed25519"});
    let admin = {
        let req = app.http.post(app.url("/commands?wait=true")).bearer_auth(ADMIN_TOKEN);
        let req = req.header("Idempotency-Key", "key-1").json(&read);
        tokio::spawn(async move { req.send().await.unwrap() })
    };
    assert_eq!(rt.next_frame().await["type"], "read_file");
    rt.send(json!({"type": "read_file_response", "request_id": "rf-1", "success": true, "content": "secret"}));
    let answered = admin.await.unwrap();
    assert_eq!(answered.status(), 200);
    assert_eq!(answered.json::<Value>().await.unwrap()["content"], "secret", "the admin got the runtime's reply");

    let res = post_keyed(&app, CLIENT_TOKEN, "/commands?wait=true", "key-1", read).await;
    assert!(res.headers().get("idempotent-replayed").is_none(), "no replay for another principal");
    let problem = assert_problem(res, 403).await;
    assert!(!problem.to_string().contains("secret"), "{problem}");
}

#[tokio::test]
async fn the_same_key_from_two_principals_is_two_requests() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let sync = json!({"runtime": scope(), "request_id": "s-1"});
    let first = post_keyed(&app, CLIENT_TOKEN, "/sync", "key-2", sync.clone()).await;
    assert_eq!(first.status(), 202);
    assert_eq!(rt.next_frame().await["request_id"], "s-1");

    let second = post_keyed(&app, ADMIN_TOKEN, "/sync", "key-2", sync.clone()).await;
    assert_eq!(second.status(), 202);
    assert!(second.headers().get("idempotent-replayed").is_none(), "the client's answer is not the admin's");
    assert_eq!(rt.next_frame().await["request_id"], "s-1", "the admin's request went to the runtime too");

    // Each principal still gets its own answer replayed.
    for token in [CLIENT_TOKEN, ADMIN_TOKEN] {
        let again = post_keyed(&app, token, "/sync", "key-2", sync.clone()).await;
        assert_eq!(again.headers()["idempotent-replayed"], "true");
    }
    assert_nothing_else_reached(&app, &mut rt).await;
}

#[tokio::test]
async fn a_rest_command_in_a_sockets_namespace_is_refused_and_the_socket_still_gets_its_reply() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    rt.quiet();
    let mut socket = app.relay("dev-a", None).await;
    socket.send(json!({"type": "sync", "request_id": "sync-1", "runtime": scope()})).await;
    let namespaced = rt.next_frame().await["request_id"].as_str().unwrap().to_owned();
    assert!(namespaced.ends_with(":sync-1"), "{namespaced}");

    // A REST caller who read the id (on GET /events, say) cannot wait for its reply.
    let forged = json!({"runtime": scope(), "request_id": namespaced});
    let problem = assert_problem(app.post("/sync?wait=true&timeout_ms=5000", forged).await, 422).await;
    assert!(problem["detail"].as_str().unwrap().contains("reserved"), "{problem}");

    rt.send(json!({"type": "sync_response", "request_id": namespaced, "runtime": scope(), "success": true}));
    let reply = socket.next_of("sync_response").await;
    assert_eq!((reply["request_id"].as_str(), reply["success"].as_bool()), (Some("sync-1"), Some(true)));

    // Nor can another socket send in it.
    let mut other = app.app_server().await;
    other.send(json!({"type": "sync", "request_id": format!("{namespaced}-2"), "runtime": scope()})).await;
    let refused = other.next_of("sync_response").await;
    assert_eq!(refused["success"], false, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("reserved"), "{refused}");
    assert_nothing_else_reached(&app, &mut rt).await;
}
