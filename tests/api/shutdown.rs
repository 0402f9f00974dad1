//! Graceful shutdown: SSE streams end, runtime sockets close with 1001 once
//! the commands they wrote are answered; a command never written is `503`.

use crate::helpers::*;

#[tokio::test]
async fn shutdown_ends_streams_and_closes_runtime_sockets_with_1001() {
    let mut app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let mut sse = app.events("").await;
    app.shutdown.cancel();
    assert_eq!(rt.closed().await, Some((1001, "bridge shutting down".into())));
    let offline = sse.next_of("runtime_offline").await;
    assert_eq!(offline.data["reason"], "shutdown", "subscribers see the runtime go before their stream ends");
    assert!(sse.ends().await, "the SSE stream ends");
    let server = app.server.take().unwrap();
    let result = tokio::time::timeout(WAIT, server).await.expect("the server stops in time").unwrap();
    assert!(result.is_ok(), "{result:?}");
}

fn message(text: &str) -> serde_json::Value {
    serde_json::json!({
        "runtime": {"agent_id": "agent-1", "conversation_id": "conv-1"},
        "payload": {"kind": "create_message", "messages": [{"role": "user", "content": text}]}
    })
}

#[tokio::test]
async fn a_command_written_before_shutdown_gets_its_answer_before_the_runtime_socket_closes() {
    use letta_bridge_testkit::fake_runtime::{Settings, replies_to};
    let mut app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    rt.quiet();
    let waiting = app.post_in_background("/input?wait=true", message("just in time"));
    let command = rt.next_frame().await;
    assert_eq!(command["type"], "input");
    app.shutdown.cancel();
    // A runtime that takes a moment to answer: the socket must still be read.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for reply in replies_to(&command, Settings::default(), &|| 1) {
        rt.send(reply);
    }
    let res = waiting.await.unwrap();
    assert_eq!(res.status(), 200, "the answer the runtime sent during the drain, not a 502");
    let reply: serde_json::Value = res.json().await.unwrap();
    assert_eq!(reply["type"], "input_accepted");
    assert_eq!(rt.closed().await, Some((1001, "bridge shutting down".into())), "then the socket closes");
    let server = app.server.take().unwrap();
    assert!(tokio::time::timeout(WAIT, server).await.expect("the server stops in time").unwrap().is_ok());
}

#[tokio::test]
async fn a_command_still_queued_when_its_runtime_goes_is_503_and_a_retry_with_its_key_runs_it() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = spawn_app().await;
    // A socket that never reads: no pong, so the bridge holds commands
    // (until the first pong, at most 2 s) and this one stays queued.
    let mut req = app.ws_url("/ws?deviceId=dev-q").into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {RUNTIME_TOKEN}").parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let send = |app: &TestApp| {
        app.http
            .post(app.url("/input?wait=true"))
            .bearer_auth(CLIENT_TOKEN)
            .header("Idempotency-Key", "queued-once")
            .json(&message("queued"))
            .send()
    };
    let first = send(&app);
    let gone = async {
        // The command is queued once the bridge has counted it as awaited.
        let deadline = tokio::time::Instant::now() + WAIT;
        while app.status().await["pending_replies"] != 1 {
            assert!(tokio::time::Instant::now() < deadline, "the command was never queued");
            tokio::task::yield_now().await;
        }
        drop(socket);
    };
    let (res, ()) = tokio::join!(first, gone);
    let problem = assert_problem(res.unwrap(), 503).await;
    assert_eq!(problem["type"], "urn:letta-bridge:runtime-unavailable", "nothing was sent: {problem}");
    let mut rt = app.direct_runtime(Some("dev-q")).await;
    let res = send(&app).await.unwrap();
    assert_eq!(res.status(), 200, "the key was freed: the retry runs the command");
    assert!(res.headers().get("idempotent-replayed").is_none());
    assert_eq!(rt.next_frame().await["payload"]["messages"][0]["content"], "queued", "the runtime gets it once");
}
