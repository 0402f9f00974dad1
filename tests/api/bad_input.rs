//! Bad input gets a clear problem+json answer, and the service keeps serving.

use serde_json::json;

use crate::helpers::*;

/// The service still answers and still delivers commands.
async fn still_serving(app: &TestApp, rt: &mut FakeRuntime) {
    assert_eq!(app.get_as(None, "/healthz").await.status(), 200);
    let res = app.post("/sync", scoped(json!({"request_id": "still-ok"}))).await;
    assert_eq!(res.status(), 202);
    assert_eq!(rt.next_frame().await["request_id"], "still-ok");
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    for body in [&b"{"[..], b"{\"payload\": }", b"[1,2", b"\xff\xfe{}", b"{} {}"] {
        let res = app.post_raw("/input", Some("application/json"), body.to_vec()).await;
        let problem = assert_problem(res, 400).await;
        assert_eq!(problem["type"], "urn:letta-bridge:malformed-json");
    }
    still_serving(&app, &mut rt).await;
}

#[tokio::test]
async fn invalid_utf8_inside_a_value_and_nesting_beyond_the_parser_are_400_not_422() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let deep = format!(
        r#"{{"runtime":{{"agent_id":"a","conversation_id":"c"}},"x":{}1{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let cases: [(&str, Vec<u8>); 4] = [
        ("/sync", b"{\"runtime\":{\"agent_id\":\"\xff\",\"conversation_id\":\"c\"}}".to_vec()),
        ("/sync", b"{\"runtime\":{\"agent_id\":\"a\",\"conversation_id\":\"c\"},\"ignored\":\"\xfe\"}".to_vec()),
        ("/sync", deep.clone().into_bytes()),
        ("/commands", format!(r#"{{"type":"read_file","x":{}1{}}}"#, "[".repeat(200), "]".repeat(200)).into_bytes()),
    ];
    for (path, body) in cases {
        let res = app.post_raw(path, Some("application/json"), body.clone()).await;
        let problem = assert_problem(res, 400).await;
        assert_eq!(problem["type"], "urn:letta-bridge:malformed-json", "{}", String::from_utf8_lossy(&body));
    }
    still_serving(&app, &mut rt).await;
}

#[tokio::test]
async fn a_request_line_over_hypers_limit_is_414_and_many_short_query_parameters_are_fine() {
    let app = spawn_app().await;
    let many: String = (0..2000).map(|i| format!("p{i}=1&")).collect();
    assert_eq!(app.get(&format!("/status?{many}")).await.status(), 200, "unknown parameters are ignored");
    // 10,000 of them: a request line over 64 KiB, which hyper answers itself.
    let too_long: String = (0..10_000).map(|i| format!("p{i}=1&")).collect();
    let mut raw = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!("GET /status?{too_long} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CLIENT_TOKEN}\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut raw, head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read(&mut raw, &mut answer)).await.unwrap().unwrap();
    let line = String::from_utf8_lossy(&answer[..n]);
    assert!(line.starts_with("HTTP/1.1 414"), "{line}");
}

#[tokio::test]
async fn valid_json_of_the_wrong_shape_is_422_naming_the_field() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let cases = [
        ("/input", scoped(json!({})), "payload"),
        (
            "/input",
            json!({"payload": {"kind": "create_message", "messages": [{"role": "robot", "content": "x"}]}}),
            "payload",
        ),
        ("/input", scoped(json!({"payload": {"kind": "create_message", "messages": []}})), "at least one message"),
        ("/input", json!({"payload": {"kind": "nope"}}), "payload"),
        (
            "/input",
            scoped(
                json!({"type": "sync", "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "x"}]}}),
            ),
            "POST /commands",
        ),
        ("/sync", json!({}), "runtime"),
        ("/abort", json!({"runtime": {"agent_id": "agent-1"}}), "conversation_id"),
        ("/sync", json!({"runtime": {"agent_id": "", "conversation_id": "c"}}), "must not be empty"),
        ("/sync", json!({"recover_approvals": "yes"}), "recover_approvals"),
        ("/sync", json!([1, 2]), "wrong shape"),
        ("/sync", json!([null, "req-by-position"]), "wrong shape"),
        (
            "/input",
            json!([null, null, null, {"kind": "create_message", "messages": [{"role": "user", "content": "x"}]}]),
            "wrong shape",
        ),
        ("/sync", scoped(json!({"request_id": 7})), "request_id"),
        ("/approval", scoped(json!({"payload": {"request_id": "a"}})), "exactly one"),
        ("/commands", json!({"no_type": true}), "type"),
        ("/commands", json!({"type": "has space"}), "type"),
        ("/commands", json!({"type": "sync"}), "needs `runtime`"),
        ("/commands", json!({"type": "input", "runtime": {"agent_id": "a"}, "payload": {}}), "conversation_id"),
        ("/commands", scoped(json!({"type": "approval_response"})), "POST /approval"),
        ("/commands", json!("just a string"), "wrong shape"),
    ];
    for (path, body, hint) in cases {
        let res = app.post(path, body.clone()).await;
        let problem = assert_problem(res, 422).await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(hint), "{path} {body}: {detail}");
    }
    still_serving(&app, &mut rt).await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = spawn_app_with(|c| c.max_body_bytes = 4096).await;
    let mut rt = app.runtime("dev-a").await;
    let big = scoped(
        json!({"payload": {"kind": "create_message", "messages": [{"role": "user", "content": "x".repeat(10_000)}]}}),
    );
    let problem = assert_problem(app.post("/input", big).await, 413).await;
    assert!(problem["detail"].as_str().unwrap().contains("4096"));
    still_serving(&app, &mut rt).await;
}

#[tokio::test]
async fn a_non_json_content_type_is_415_and_a_missing_one_is_read_as_json() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let res = app.post_raw("/sync", Some("application/x-www-form-urlencoded"), "a=b").await;
    assert_problem(res, 415).await;
    let scoped_body = r#"{"request_id":"no-ct","runtime":{"agent_id":"agent-1","conversation_id":"conv-1"}}"#;
    let res = app.post_raw("/sync", None, scoped_body).await;
    assert_eq!(res.status(), 202);
    assert_eq!(rt.next_frame().await["request_id"], "no-ct");
    // An empty or null body is an empty object: no runtime scope, so 422.
    let res = app.post_raw("/sync", Some("application/json; charset=utf-8"), "").await;
    assert!(assert_problem(res, 422).await["detail"].as_str().unwrap().contains("runtime"));
    let res = app.post_raw("/abort", Some("application/json"), "null").await;
    assert!(assert_problem(res, 422).await["detail"].as_str().unwrap().contains("runtime"));
    still_serving(&app, &mut rt).await;
}

#[tokio::test]
async fn bad_query_strings_unknown_paths_and_wrong_methods_are_problems() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    assert_problem(app.post("/sync?wait=maybe", scoped(json!({}))).await, 400).await;
    assert_problem(app.post("/sync?timeout_ms=-1", scoped(json!({}))).await, 400).await;
    for ms in ["0", "99", "3600001"] {
        let problem =
            assert_problem(app.post(&format!("/sync?wait=true&timeout_ms={ms}"), scoped(json!({}))).await, 400).await;
        assert!(problem["detail"].as_str().unwrap().contains("between 100 and 3600000"));
    }
    assert_problem(app.get("/nope").await, 404).await;
    assert_problem(app.get("/input").await, 405).await;
    assert_problem(app.get("/ws").await, 400).await;
    let many = "a=1&".repeat(10_000);
    assert_eq!(
        app.post(&format!("/sync?{many}"), scoped(json!({}))).await.status(),
        202,
        "unknown parameters are ignored"
    );
    rt.next_frame().await;
    still_serving(&app, &mut rt).await;
}

#[tokio::test]
async fn runtime_frames_that_are_not_json_objects_are_dropped_and_the_socket_stays() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let mut sse = app.events("").await;
    use tokio_tungstenite::tungstenite::Message;
    // Frames using the bridge's reserved event names are dropped too.
    let reserved =
        [r#"{"type":"runtime_offline","runtime_id":"dev-a"}"#, r#"{"type":"reset"}"#, r#"{"type":"lagged"}"#];
    let malformed =
        ["not json", "[1,2,3]", "42", "\"str\"", "{}", r#"{"type": 5}"#, r#"{"type": "bad type"}"#, "{\"type\":\"x\""];
    for bad in malformed.into_iter().chain(reserved) {
        rt.send_message(Message::text(bad));
    }
    rt.send_message(Message::binary(vec![0xff, 0x00, 0xfe]));
    let deep = format!(r#"{{"type":"deep","v":{}{}}}"#, "[".repeat(5000), "]".repeat(5000));
    rt.send_message(Message::text(deep));
    rt.emit("still_here", "a", "c", json!({}));
    let e = sse.next().await;
    assert_eq!(e.event, "still_here", "bad frames were dropped, not published");
    still_serving(&app, &mut rt).await;
}
