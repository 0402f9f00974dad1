//! Answers that say what to do: with no runtime online, the `letta remote`
//! line that connects one to this bridge; the runtime token or a pasted
//! placeholder on the client API, said as such.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn with_no_runtime_online_a_command_says_how_to_connect_one_to_this_bridge() {
    let app = spawn_app().await;
    let res = app.post("/sync", scoped(json!({}))).await;
    assert_eq!(res.headers()["retry-after"], "2");
    let problem = assert_problem(res, 503).await;
    assert_eq!(problem["type"], "urn:letta-bridge:runtime-unavailable");
    let detail = problem["detail"].as_str().unwrap();
    let line = format!(
        "LETTA_BASE_URL=http://{} IGNORE_SELF_HOSTED_LISTENER_ERROR=1 LETTA_API_KEY=<runtime token> letta remote",
        app.addr
    );
    assert!(detail.starts_with("no runtime is online.") && detail.contains(&line), "{detail}");
    assert!(detail.contains("GET /runtimes"), "{detail}");

    // The public URL when one is set (what the runtime must reach).
    let public = spawn_app_with(|c| c.public_url = Some("https://bridge.example.com/".into())).await;
    let problem = assert_problem(public.post("/sync", scoped(json!({}))).await, 503).await;
    assert!(problem["detail"].as_str().unwrap().contains("LETTA_BASE_URL=https://bridge.example.com "), "{problem}");

    // And on the App-Server socket, in its error frame.
    let mut socket = app.client_socket("/app-server/ws", Some(CLIENT_TOKEN)).await;
    let error = socket.next().await;
    assert!(error["message"].as_str().unwrap().contains(&line), "{error}");
}

#[tokio::test]
async fn the_runtime_token_and_a_non_ascii_header_on_the_client_api_are_said_for_what_they_are() {
    let app = spawn_app().await;
    let problem = assert_problem(app.get_as(Some(RUNTIME_TOKEN), "/status").await, 401).await;
    assert!(problem["detail"].as_str().unwrap().contains("runtime token"), "{problem}");
    let problem = assert_problem(app.get_as(Some("not-a-token-of-this-bridge"), "/status").await, 401).await;
    assert!(problem["detail"].as_str().unwrap().starts_with("invalid token"), "{problem}");
    let pasted = reqwest::header::HeaderValue::from_bytes("Bearer lb_462d…".as_bytes()).unwrap();
    let res = app.http.get(app.url("/status")).header("authorization", pasted).send().await.unwrap();
    let problem = assert_problem(res, 401).await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("not plain ASCII") && !detail.contains("missing"), "{detail}");
}

#[tokio::test]
async fn an_event_stream_opens_saying_how_many_runtimes_are_online_and_with_none_what_to_do() {
    let app = spawn_app().await;
    let first = |app: &TestApp| {
        let req = app.http.get(app.url("/events")).bearer_auth(CLIENT_TOKEN);
        async move {
            let mut res = req.send().await.unwrap();
            let chunk = tokio::time::timeout(WAIT, res.chunk()).await.unwrap().unwrap().unwrap();
            String::from_utf8(chunk.to_vec()).unwrap()
        }
    };
    let none = first(&app).await;
    assert!(none.starts_with("retry: 1000\n: connected; no runtime online: start `letta remote`"), "{none:?}");
    let _a = app.runtime("dev-a").await;
    assert!(first(&app).await.starts_with("retry: 1000\n: connected; 1 runtime online\n\n"));
    let _b = app.runtime("dev-b").await;
    assert!(first(&app).await.starts_with("retry: 1000\n: connected; 2 runtimes online\n\n"));
}
